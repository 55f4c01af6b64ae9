"""Loss functions ``L(z, y)`` (docs/math.md, "Conventions cvxnn fixes").

Each loss is a small class that owns everything a solver needs (skglm's "datafit" idea), so
no solver asks which loss it has:

* :meth:`Loss.cvxpy` -- the loss as a CVXPY expression of the prediction ``z`` (builders);
* :meth:`Loss.value` -- the loss in numpy (objectives of networks);
* :meth:`Loss.grad`, :meth:`Loss.hessian_parts` -- gradient and Hessian (per sample
  ``diag(D) - v v^T``), used by first- and second-order native solvers;
* :meth:`Loss.grad_at_zero` -- the gradient at ``z = 0`` wherever the loss is differentiable
  there (smooth losses; hinge; absolute without a zero target), what ``lam_max`` needs;
* :meth:`Loss.conjugate` -- the Fenchel conjugate (duality-gap certificates), with
  :meth:`Loss.best_dual_scale` for the best rescaling of a dual point;
* :meth:`Loss.bregman` -- the termwise Bregman divergence (line searches);
* :meth:`Loss.check_targets` -- validates labels (e.g. logistic needs labels in {-1, +1});
* capability flags :attr:`Loss.smooth`, :attr:`Loss.has_hessian`, :attr:`Loss.has_conjugate`,
  :attr:`Loss.separable`, :attr:`Loss.strictly_convex_fit` -- what a solver may rely on.

The numpy methods come in two layers: the public ones validate their inputs; the ``*_sum``
methods (used in the native solvers' hot loops) take float arrays of shape ``(n, c)`` and
return the *summed* loss's quantities without checks. :class:`~cvxnn.native._losses.SmoothKernel`
binds a loss to its targets, dtype and reduction.

Convention: losses are **sums** over samples; squared loss is ``1/2 ||z - y||^2``.
``reduction="mean"`` divides by ``n`` (a documented option, never a silent change).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import cvxpy as cp
import numpy as np
from scipy.special import entr, expit, log_expit

from ._validation import as_float_array
from .errors import InvalidParameterError, LabelError, ShapeError

__all__ = [
    "Loss",
    "SquaredLoss",
    "LogisticLoss",
    "HingeLoss",
    "HuberLoss",
    "AbsoluteLoss",
    "CrossEntropyLoss",
    "get_loss",
    "LOSSES",
    "DOMAIN_TOL",
]

_REDUCTIONS = ("sum", "mean")

#: Distance to the domain of a conjugate below which a dual point is projected onto it
#: (dual points are rescaled gradients, exact up to rounding).
DOMAIN_TOL = 1e-6


def _xlogx(t: np.ndarray) -> np.ndarray:
    """``t log t`` with ``0 log 0 = 0``."""
    return -entr(t)


def _softplus_bregman(dl: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Termwise Bregman divergence of ``softplus`` between ``v + dl`` and ``v``:
    ``log(1 - sig + sig e^dl) - sig dl`` with ``sig = sigmoid(v)``, by its Taylor series where
    ``|dl|`` is small (the closed form cancels catastrophically there). ``sig`` and ``1 - sig``
    are both taken from ``v`` (``1 - sig`` computed from ``sig`` loses every digit for
    ``v >> 1``); where ``1 + sig expm1(dl)`` would cancel or overflow, the log is a ``logaddexp``."""
    sig, sigc = expit(v), expit(-v)
    s1 = sig * sigc
    series = s1 * dl * dl * (0.5 + dl * (sigc - sig) / 6.0 + dl * dl * (1.0 - 6.0 * s1) / 24.0)
    small = np.abs(dl) < 1e-3
    if small.all():
        return series
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        x = sig * np.expm1(dl)
        log_term = np.where(np.abs(x) <= 0.5, np.log1p(x), np.logaddexp(log_expit(-v), log_expit(v) + dl))
    exact = log_term - sig * dl
    return np.where(small, series, exact)


def _zy(z, y) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets as float arrays of the same shape (cheap for float ndarrays)."""
    if not (isinstance(z, np.ndarray) and z.dtype.kind == "f"):
        z = as_float_array(z, "z")
    if not (isinstance(y, np.ndarray) and y.dtype.kind == "f"):
        y = as_float_array(y, "y")
    if z.shape != y.shape or z.ndim not in (1, 2):
        raise ShapeError(
            f"predictions z {z.shape} and targets y {y.shape} must have the same shape (n,) or (n, c)."
        )
    return z, y


@dataclass(frozen=True)
class Loss:
    """Base class. ``reduction`` is ``"sum"`` (the library convention) or ``"mean"``."""

    reduction: str = "sum"

    name = "loss"
    #: differentiable with a Lipschitz gradient (first-order native solvers)
    smooth = False
    #: provides :meth:`hessian_parts` (second-order native solvers)
    has_hessian = False
    #: provides :meth:`conjugate` (duality-gap certificates)
    has_conjugate = False
    #: the Hessian is diagonal (the loss is a sum over the entries of ``z``)
    separable = True
    #: a quadratic function of ``z`` (restricted programs are quadratic programs)
    quadratic = False
    #: strictly convex in the fit ``z``, so every optimum has the same fit (the optimal-set
    #: polytope of :func:`cvxnn.optimality.optimal_set`); softmax cross-entropy is not (a
    #: constant added to a row of ``z`` changes nothing), Huber and the non-smooth losses are not
    strictly_convex_fit = False
    #: its CVXPY expression needs exponential cones (``log``/``exp``): interior points solve
    #: such programs several times slower than second-order cone programs of the same size
    exponential_cones = False
    #: Lipschitz constant of ``grad`` w.r.t. ``z`` (per sample, before reduction); None if not smooth.
    lipschitz: ClassVar[float | None] = None
    classification = False
    supports_vector = True
    #: provides the per-sample terms (:meth:`_value_rows`, :meth:`_conjugate_rows`,
    #: :meth:`_bregman_rows`) whose sums are the summed methods: what a loss with arbitrary
    #: per-sample weights needs (:class:`cvxnn.estimators.WeightedLoss`)
    has_rows = False

    def __post_init__(self) -> None:
        if self.reduction not in _REDUCTIONS:
            raise InvalidParameterError(
                f"reduction must be one of {_REDUCTIONS}, got {self.reduction!r}."
            )

    def scale(self, n: int) -> float:
        """Factor applied to the summed loss: 1 or ``1/n``."""
        return 1.0 / n if self.reduction == "mean" else 1.0

    # -- to be provided by subclasses -------------------------------------------------
    def _cvxpy_sum(self, z, y):  # pragma: no cover - abstract
        raise NotImplementedError

    def _value_sum(self, z: np.ndarray, y: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public API --------------------------------------------------------------------
    def cvxpy(self, z, y) -> cp.Expression:
        """The loss as a convex CVXPY expression of the prediction ``z`` (shape of ``y``)."""
        return self.scale(y.shape[0]) * self._cvxpy_sum(z, y)

    def value(self, z, y) -> float:
        """The loss of predictions ``z`` against targets ``y`` (numpy)."""
        z, y = _zy(z, y)
        return float(self.scale(y.shape[0]) * self._value_sum(z, y))

    def grad(self, z, y) -> np.ndarray:
        """Gradient of :meth:`value` with respect to ``z`` (smooth losses only)."""
        if not self.smooth:
            raise InvalidParameterError(f"the {self.name} loss is not differentiable; use a smooth loss.")
        z, y = _zy(z, y)
        return self.scale(y.shape[0]) * self._grad_sum(np.asarray(z, dtype=float), y)

    def grad_at_zero(self, y) -> np.ndarray:
        """Gradient of :meth:`value` at the zero prediction ``z = 0`` for the targets ``y``
        (same shape as ``y``), where the loss is differentiable there.

        This is what ``lam_max`` needs: the zero model is optimal iff ``0`` lies in the
        subdifferential of the objective at ``0``, and at a point where the loss is
        differentiable its only subgradient is this gradient (docs/math.md, "lam_max and
        regularisation paths"). Smooth losses give :meth:`grad` at ``0``; the hinge loss is
        differentiable at ``0`` for labels ``+-1`` (its kink is at ``y_j z_j = 1``) and the
        absolute loss where no target is ``0``. Both scale with ``reduction`` as :meth:`grad`.

        Raises
        ------
        InvalidParameterError
            The loss is not differentiable at ``z = 0`` (for these targets).
        LabelError
            Targets the loss does not accept (e.g. hinge labels other than ``+-1``).
        """
        if not self.smooth:
            raise InvalidParameterError(
                f"the {self.name} loss is not differentiable at z = 0, so it has no gradient there.")
        y = as_float_array(y, "y")
        return self.grad(np.zeros_like(y), y)

    def hessian_parts(self, z, y) -> tuple[np.ndarray, np.ndarray | None]:
        """The Hessian of :meth:`value` at ``z`` as ``diag(D_j) - v_j v_j^T`` per sample ``j``.

        Returns ``(D, v)`` with the shape of ``z`` (``v`` is None for separable losses)."""
        if not self.has_hessian:
            raise InvalidParameterError(f"no Hessian is implemented for the {self.name} loss.")
        z, y = _zy(z, y)
        sc = self.scale(y.shape[0])
        D, V = self._hessian_sum(np.asarray(z, dtype=float), y)
        return sc * D, (None if V is None else np.sqrt(sc) * V)

    def conjugate(self, s, y) -> float:
        """Fenchel conjugate ``L*(s) = sup_z <s, z> - L(z, y)``; ``inf`` outside its domain
        (points within :data:`DOMAIN_TOL` of the domain are projected onto it)."""
        if not self.has_conjugate:
            raise InvalidParameterError(f"no conjugate is implemented for the {self.name} loss.")
        s, y = _zy(s, y)
        c = self.scale(y.shape[0])
        # (c L)*(s) = c L*(s / c)
        return float(c * self._conjugate_sum(np.asarray(s, dtype=float) / c, y))

    # -- native layer: summed loss, float arrays (n, c), no validation -------------------
    def _grad_sum(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _value_grad_sum(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """``(_value_sum, _grad_sum)`` at once; a loss overrides it when the two share work."""
        return self._value_sum(z, y), self._grad_sum(z, y)

    def _hessian_sum(self, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _conjugate_sum(self, s: np.ndarray, y: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _bregman_sum(self, a: np.ndarray, b: np.ndarray, gb: np.ndarray, y: np.ndarray) -> float:
        """``L(a) - L(b) - <grad L(b), a - b>`` of the summed loss (``gb`` its gradient at ``b``);
        subclasses override it with termwise forms that do not cancel near convergence."""
        diff = (a - b).astype(np.float64, copy=False)
        return max(self._value_sum(a, y) - self._value_sum(b, y) - float(np.vdot(gb, diff)), 0.0)

    # per-sample terms (has_rows): shape (n,), the sum over a row's outputs for (n, c) arrays
    def _value_rows(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-sample loss terms (a loss with ``has_rows = True`` defines it)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-sample terms (has_rows is False)")

    def _conjugate_rows(self, s: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-sample conjugate terms; ``inf`` for a sample outside the domain."""
        raise NotImplementedError(f"{type(self).__name__} has no per-sample terms (has_rows is False)")

    def _bregman_rows(self, a: np.ndarray, b: np.ndarray, gb: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-sample Bregman terms of :meth:`_bregman_sum`."""
        raise NotImplementedError(f"{type(self).__name__} has no per-sample terms (has_rows is False)")

    def best_dual_scale(self, theta: np.ndarray, y: np.ndarray, scale: float, s_max: float) -> float:
        """The factor ``s in [0, s_max]`` that maximises the dual value ``-(c L)*(s theta)``
        (``c = scale``); ``s_max`` is the largest factor that keeps the penalty's dual
        constraint. ``s -> -(c L)*(s theta)`` is concave: the built-in losses maximise it in
        closed form or by a safeguarded Newton iteration; this default (any other loss with a
        conjugate, e.g. sample-weighted ones) by a golden-section search, never returning a
        worse factor than ``min(1, s_max)`` (exact at the optimum, where ``theta`` is the
        gradient of the loss). Without a conjugate it is ``min(1, s_max)``."""
        s0 = min(1.0, s_max)
        if not self.has_conjugate:
            return s0
        th = np.asarray(theta, dtype=np.float64)
        return _golden_max(lambda s: -scale * self._conjugate_sum(s * th / scale, y), s0, s_max)

    def _not_worse(self, s: float, theta: np.ndarray, y: np.ndarray, scale: float, s_max: float) -> float:
        """``s``, or ``min(1, s_max)`` where that gives a dual value at least as large (or ``s``'s is
        not finite): what the closed forms and Newton iterations of the subclasses return, so that
        no rounding (a row sum of a cross-entropy gradient times a huge ``s``) can make a bound
        worse than the plain rescaling."""
        s0 = min(1.0, s_max)
        if s == s0:
            return s
        th = np.asarray(theta, dtype=np.float64)
        with np.errstate(all="ignore"):
            v = -scale * self._conjugate_sum(s * th / scale, y)
            v0 = -scale * self._conjugate_sum(s0 * th / scale, y)
        return s if np.isfinite(v) and not v < v0 else s0

    def check_targets(self, y: np.ndarray) -> np.ndarray:
        """Validate targets for this loss; returns them (possibly re-encoded), never in place."""
        return y


@dataclass(frozen=True)
class SquaredLoss(Loss):
    """``L(z, y) = 1/2 ||z - y||^2`` (Frobenius for matrix outputs)."""

    name = "squared"
    smooth = True
    quadratic = True
    strictly_convex_fit = True
    has_hessian = True
    has_conjugate = True
    lipschitz = 1.0

    def _cvxpy_sum(self, z, y):
        return 0.5 * cp.sum_squares(z - y)

    def _value_sum(self, z, y):
        r = (z - y).astype(np.float64, copy=False)
        return 0.5 * float(np.vdot(r, r))

    def _grad_sum(self, z, y):
        return z - y

    def _hessian_sum(self, z, y):
        return np.ones(z.shape), None

    def _conjugate_sum(self, s, y):
        # L*(s) = ||s||^2 / 2 + <s, y>
        s = s.astype(np.float64, copy=False)
        return float(np.vdot(s, s) / 2 + np.vdot(s, y))

    def _bregman_sum(self, a, b, gb, y):
        diff = (a - b).astype(np.float64, copy=False)
        return 0.5 * float(np.vdot(diff, diff))

    has_rows = True

    def _value_rows(self, z, y):
        r = (z - y).astype(np.float64, copy=False)
        return _row_sums(0.5 * r * r)

    def _conjugate_rows(self, s, y):
        s = s.astype(np.float64, copy=False)
        return _row_sums(0.5 * s * s + s * y)

    def _bregman_rows(self, a, b, gb, y):
        diff = (a - b).astype(np.float64, copy=False)
        return _row_sums(0.5 * diff * diff)

    def best_dual_scale(self, theta, y, scale, s_max):
        # -(cL)*(s theta) = -(s^2 |theta|^2 / (2c) + s <theta, y>) is a concave quadratic in s
        th = theta.astype(np.float64, copy=False)
        tt = float(np.vdot(th, th))
        if tt == 0.0:
            return 0.0
        return min(max(-scale * float(np.vdot(th, y)) / tt, 0.0), s_max)


def _check_pm1(y: np.ndarray, name: str) -> np.ndarray:
    if y.ndim != 1:
        raise LabelError(f"the {name} loss needs a 1-D label vector, got shape {y.shape}.")
    vals = np.unique(y)
    if not np.all(np.isin(vals, (-1.0, 1.0))):
        raise LabelError(
            f"the {name} loss needs labels in {{-1, +1}}, got values {vals[:5]}; "
            "encode the two classes as -1 and +1 (the classifiers do this for you)."
        )
    if vals.size < 2:
        raise LabelError(f"the {name} loss needs both classes present; only {vals} found.")
    return y


@dataclass(frozen=True)
class LogisticLoss(Loss):
    """``L(z, y) = sum_j log(1 + exp(-y_j z_j))``, labels in {-1, +1}."""

    name = "logistic"
    smooth = True
    strictly_convex_fit = True
    has_hessian = True
    has_conjugate = True
    lipschitz = 0.25
    classification = True
    supports_vector = False
    exponential_cones = True

    def _cvxpy_sum(self, z, y):
        return cp.sum(cp.logistic(-cp.multiply(y, z)))

    def _value_sum(self, z, y):
        return float(-np.sum(log_expit(y * z), dtype=np.float64))

    def _grad_sum(self, z, y):
        return -y * expit(-y * z)

    def _hessian_sum(self, z, y):
        sg = expit(y * z)
        return sg * (1.0 - sg), None

    def _conjugate_sum(self, s, y):
        # per sample, with t = -s_j y_j in [0, 1]: L*(s) = sum t log t + (1 - t) log(1 - t)
        t = -s.astype(np.float64, copy=False) * y
        if np.any(t < -DOMAIN_TOL) or np.any(t > 1 + DOMAIN_TOL):
            return float("inf")
        t = np.clip(t, 0.0, 1.0)
        return float(np.sum(_xlogx(t) + _xlogx(1.0 - t)))

    def _bregman_sum(self, a, b, gb, y):
        # softplus(u) with u = -y z: Bregman in u; sigma(v) = |grad| at b
        return float(self._bregman_rows(a, b, gb, y).sum())

    has_rows = True

    def _value_rows(self, z, y):
        return _row_sums(-log_expit(y * z).astype(np.float64, copy=False))

    def _conjugate_rows(self, s, y):
        t = -s.astype(np.float64, copy=False) * y
        out = np.where((t < -DOMAIN_TOL) | (t > 1 + DOMAIN_TOL), np.inf, 0.0)
        t = np.clip(t, 0.0, 1.0)
        return _row_sums(out + _xlogx(t) + _xlogx(1.0 - t))

    def _bregman_rows(self, a, b, gb, y):
        # in u = -y z; the sigmoid is recomputed from b (|gb| near 1 cannot give 1 - sigma)
        dl = (-y * (a - b)).astype(np.float64)
        v = (-y * b).astype(np.float64)
        return _row_sums(np.maximum(_softplus_bregman(dl, v), 0.0))

    def best_dual_scale(self, theta, y, scale, s_max):
        # -(cL)*(s theta) = -c sum f(s t_j), f(u) = u log u + (1 - u) log(1 - u), t = -theta y / c:
        # concave on [0, 1 / max t], derivative -c sum t_j logit(s t_j) (+inf at 0+, -inf at the end)
        t = (-np.asarray(theta, dtype=np.float64) * y / scale).ravel()
        tmax = float(t.max(initial=0.0))
        if np.any(t < 0.0) or tmax == 0.0:
            return super().best_dual_scale(theta, y, scale, s_max)
        t = t[t > 0.0]

        def derivs(s):
            u = s * t
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                g = -float(np.dot(t, np.log(u) - np.log1p(-u)))
                h = -float(np.sum(t / (s * (1.0 - u))))
            return g, h

        with np.errstate(over="ignore"):
            hi = min(s_max, 1.0 / tmax)
        return self._not_worse(_newton_max(derivs, hi, min(1.0, s_max)), theta, y, scale, s_max)

    def check_targets(self, y):
        return _check_pm1(y, self.name)


@dataclass(frozen=True)
class HingeLoss(Loss):
    """``L(z, y) = sum_j max(0, 1 - y_j z_j)``, labels in {-1, +1}."""

    name = "hinge"
    classification = True
    supports_vector = False

    def _cvxpy_sum(self, z, y):
        return cp.sum(cp.pos(1 - cp.multiply(y, z)))

    def _value_sum(self, z, y):
        return float(np.sum(np.maximum(0.0, 1.0 - y * z)))

    def grad_at_zero(self, y) -> np.ndarray:
        """``-y`` (times ``1/n`` for ``reduction="mean"``): at ``z = 0`` every term is
        ``1 - y_j z_j > 0``, away from the kink at ``y_j z_j = 1``."""
        y = self.check_targets(as_float_array(y, "y"))
        return -self.scale(y.shape[0]) * y

    def check_targets(self, y):
        return _check_pm1(y, self.name)


@dataclass(frozen=True)
class HuberLoss(Loss):
    """``L(z, y) = sum_j h(z_j - y_j)`` with ``h(r) = r^2/2`` for ``|r| <= delta``, else
    ``delta (|r| - delta/2)`` (continuous with the squared loss's ``1/2`` convention)."""

    delta: float = 1.0
    name = "huber"
    smooth = True
    has_hessian = True
    has_conjugate = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (np.isfinite(self.delta) and self.delta > 0):
            raise InvalidParameterError(f"Huber delta must be positive and finite, got {self.delta}.")

    lipschitz = 1.0

    def _cvxpy_sum(self, z, y):
        return 0.5 * cp.sum(cp.huber(z - y, self.delta))

    def _value_sum(self, z, y):
        return float(np.sum(self._value_rows(z, y)))

    def _grad_sum(self, z, y):
        return np.clip(z - y, -self.delta, self.delta)

    def _hessian_sum(self, z, y):
        return (np.abs(z - y) <= self.delta).astype(np.float64), None

    def _conjugate_sum(self, s, y):
        # h*(s) = s^2 / 2 on |s| <= delta (+inf outside), shifted by <s, y>
        s = s.astype(np.float64, copy=False)
        if np.any(np.abs(s) > self.delta * (1 + DOMAIN_TOL)):
            return float("inf")
        s = np.clip(s, -self.delta, self.delta)
        return float(np.vdot(s, s) / 2 + np.vdot(s, y))

    def _bregman_sum(self, a, b, gb, y):
        return float(self._bregman_rows(a, b, gb, y).sum())

    def best_dual_scale(self, theta, y, scale, s_max):
        # the squared loss's concave quadratic, on the domain s |theta_j| <= c delta
        th = np.asarray(theta, dtype=np.float64)
        tt = float(np.vdot(th, th))
        if tt == 0.0:
            return 0.0
        cap = min(s_max, scale * self.delta / float(np.abs(th).max()))
        return min(max(-scale * float(np.vdot(th, y)) / tt, 0.0), cap)

    has_rows = True

    def _value_rows(self, z, y):
        r = np.abs(z - y).astype(np.float64, copy=False)
        q = np.minimum(r, self.delta)  # h(r) = q (r - q / 2): no r**2 (overflow) where |r| > delta
        return _row_sums(q * (r - 0.5 * q))

    def _conjugate_rows(self, s, y):
        s = s.astype(np.float64, copy=False)
        out = _row_sums(np.where(np.abs(s) > self.delta * (1 + DOMAIN_TOL), np.inf, 0.0))
        s = np.clip(s, -self.delta, self.delta)
        return out + _row_sums(0.5 * s * s + s * y)

    def _bregman_rows(self, a, b, gb, y):
        # Without cancellation: with c = clip(r, -delta, delta), h(r) = c r - c^2 / 2, so
        # h(ra) - h(rb) - c_b (ra - rb) = dc (ra - c_a) + dc^2 / 2, dc = c_a - c_b, both terms
        # >= 0; inside the quadratic zone dc = a - b, taken directly. (The difference of the
        # values lost every digit near convergence, and R-FISTA's backtracking stalled.)
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        ra, rb = a - y, b - y
        d = self.delta
        ca, cb = np.clip(ra, -d, d), np.clip(rb, -d, d)
        inside = (np.abs(ra) <= d) & (np.abs(rb) <= d)
        dc = np.where(inside, a - b, ca - cb)
        return _row_sums(dc * (ra - ca) + 0.5 * dc * dc)


@dataclass(frozen=True)
class AbsoluteLoss(Loss):
    """``L(z, y) = ||z - y||_1``."""

    name = "absolute"

    def _cvxpy_sum(self, z, y):
        return cp.sum(cp.abs(z - y))

    def _value_sum(self, z, y):
        return float(np.sum(np.abs(z - y)))

    def grad_at_zero(self, y) -> np.ndarray:
        """``-sign(y)`` (times ``1/n`` for ``reduction="mean"``) when no target is 0; a target
        ``y_j = 0`` puts the kink of ``|z_j - y_j|`` at ``z_j = 0`` (subdifferential
        ``[-1, 1]``), where there is no gradient."""
        y = as_float_array(y, "y")
        zeros = int(np.count_nonzero(y == 0))
        if zeros:
            raise InvalidParameterError(
                f"the absolute loss |z - y| is not differentiable at z = 0 where a target is 0 "
                f"({zeros} of {y.size} targets are 0).")
        return -self.scale(y.shape[0]) * np.sign(y)


def _same_loss(a: Loss, b: Loss) -> bool:
    """Whether two loss objects define the same loss (field by field; arrays compared by value)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    for f in dataclasses.fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, Loss) or isinstance(vb, Loss):
            if not (isinstance(va, Loss) and isinstance(vb, Loss) and _same_loss(va, vb)):
                return False
        elif isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            if not np.array_equal(np.asarray(va), np.asarray(vb)):
                return False
        elif va != vb:
            return False
    return True


def _golden_max(phi, s0: float, s_max: float, iters: int = 60) -> float:
    """A maximiser over ``[0, s_max]`` of the concave ``phi`` (``-inf`` outside its domain, an
    interval containing 0), by golden-section search; never worse than ``s0``."""
    hi = float(s_max)
    # the common case first, in two or three evaluations (R-FISTA certifies every iteration, and
    # 60 evaluations of a weighted conjugate each time made small weighted fits several times slower):
    # by concavity s0 is the maximiser when phi does not increase on either side of it
    f0 = phi(s0)
    h = 1e-6 * max(s0, 1e-300)
    if np.isfinite(f0) and s0 > 0.0 and phi(s0 - h) <= f0 and (s0 >= hi or phi(min(s0 + h, hi)) <= f0):
        return s0
    if not np.isfinite(hi):  # bracket: double until phi stops increasing
        hi, f = 1.0, phi(1.0)
        while hi < 1e15:
            f2 = phi(2.0 * hi)
            if not f2 > f:
                break
            hi, f = 2.0 * hi, f2
        hi *= 2.0
    r = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = 0.0, hi
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = phi(c), phi(d)
    for _ in range(iters):
        if fc >= fd:  # both -inf: the domain ends left of c
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = phi(c)
        else:
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = phi(d)
    s, f = (c, fc) if fc >= fd else (d, fd)
    f_zero = phi(0.0)  # the search never evaluates its end point 0, the maximiser far from the optimum
    if f_zero > f:
        s, f = 0.0, f_zero
    return s if f > f0 else s0


def _newton_max(derivs, hi: float, s0: float) -> float:
    """The maximiser over ``[0, hi]`` of a concave function of ``s`` whose derivative is
    ``+inf`` at ``0+``, from ``derivs(s) = (phi'(s), phi''(s))``: Newton's method from ``s0``,
    safeguarded by bisection of the bracket ``[lo, up]`` of the root of ``phi'``."""
    if not hi > 0.0:
        return 0.0
    if not np.isfinite(hi):  # (a subnormal scale gave 1 / t = inf): no finite bracket, keep s0
        return s0
    g, _ = derivs(hi)
    if g >= 0.0:
        return hi
    lo, up = 0.0, hi
    s = min(max(s0, 0.0), hi)
    if not 0.0 < s < hi:
        s = 0.5 * hi
    for _ in range(100):
        g, h = derivs(s)
        if g > 0.0:
            lo = s
        else:
            up = s
        # (g and h are Python floats: h that underflowed to 0 raised ZeroDivisionError)
        nxt = s - g / h if h < 0.0 and np.isfinite(h) and np.isfinite(g) else 0.5 * (lo + up)
        if not lo < nxt < up:
            nxt = 0.5 * (lo + up)
        if abs(nxt - s) <= 1e-13 * s or up - lo <= 1e-15 * up:
            return nxt
        s = nxt
    return s


def _row_sums(a: np.ndarray) -> np.ndarray:
    """Per-sample sums: ``a`` itself for a vector, its row sums for an ``(n, c)`` array."""
    return a if a.ndim == 1 else a.sum(axis=1)


def _need_classes(shape: tuple[int, ...]) -> None:
    """Refuse an ``(n, c)`` shape with ``c < 2``: softmax cross-entropy of one column is identically 0."""
    if len(shape) == 2 and shape[1] < 2:
        raise ShapeError(
            f"cross_entropy needs at least 2 classes (columns), got shape {tuple(shape)}: the softmax of a "
            "single column is 1, so the loss is 0 for every prediction. For two classes use the logistic "
            "loss (LogisticLoss, labels in {-1, +1}) or one-hot targets with 2 columns."
        )


def _need_matrix(z: np.ndarray) -> None:
    if z.ndim != 2:
        raise ShapeError(
            f"cross_entropy needs predictions and one-hot targets of shape (n, n_classes), got {z.shape}."
        )
    _need_classes(z.shape)


def _logsumexp_rows(z: np.ndarray) -> np.ndarray:
    """``log sum_k exp(z_jk)`` per row, shifted by the row maximum (numpy only: SciPy's
    ``logsumexp`` costs several times more per call on the small arrays of the solvers)."""
    m = z.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class CrossEntropyLoss(Loss):
    """Multinomial (softmax) cross-entropy for vector outputs ``Z`` (``n x c``), one-hot ``Y``:
    ``L(Z, Y) = sum_j [logsumexp(Z_j) - <Y_j, Z_j>]``.

    Needs ``c >= 2`` classes (a :class:`~cvxnn.errors.ShapeError` otherwise: with one column the
    loss is 0 for every ``Z``); two classes are also the :class:`LogisticLoss` on ``+-1`` labels."""

    name = "cross_entropy"
    smooth = True
    has_hessian = True
    has_conjugate = True
    separable = False
    lipschitz = 1.0
    classification = True
    exponential_cones = True

    def _cvxpy_sum(self, z, y):
        _need_classes(np.shape(y))
        return cp.sum(cp.log_sum_exp(z, axis=1)) - cp.sum(cp.multiply(y, z))

    def _value_sum(self, z, y):
        _need_matrix(z)
        z = z.astype(np.float64, copy=False)
        return float(np.sum(_logsumexp_rows(z)) - np.vdot(y, z))

    def _grad_sum(self, z, y):
        _need_matrix(z)
        return _softmax_rows(z) - y

    def _value_grad_sum(self, z, y):
        # one exponential for both: logsumexp and softmax share the shifted exp(z - max)
        _need_matrix(z)
        z = z.astype(np.float64, copy=False)
        m = z.max(axis=1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        value = float(np.sum(np.log(s[:, 0]) + m[:, 0]) - np.vdot(y, z))
        return value, e / s - y

    def _hessian_sum(self, z, y):
        _need_matrix(z)
        P = _softmax_rows(z.astype(np.float64, copy=False))
        return P, P

    def _conjugate_sum(self, s, y):
        # L*(S) = sum_jk P_jk log P_jk with P = S + Y on the simplex (else +inf)
        _need_matrix(s)
        P = s.astype(np.float64, copy=False) + y
        if np.any(P < -DOMAIN_TOL) or np.any(np.abs(P.sum(axis=1) - 1.0) > 10 * DOMAIN_TOL):
            return float("inf")
        P = np.clip(P, 0.0, None)
        P /= P.sum(axis=1, keepdims=True)
        return float(np.sum(_xlogx(P)))

    def _bregman_sum(self, a, b, gb, y):
        return float(self._bregman_rows(a, b, gb, y).sum())

    has_rows = True

    def _value_rows(self, z, y):
        _need_matrix(z)
        z = z.astype(np.float64, copy=False)
        return _logsumexp_rows(z) - np.einsum("ij,ij->i", y, z)

    def _conjugate_rows(self, s, y):
        _need_matrix(s)
        P = s.astype(np.float64, copy=False) + y
        out = np.where((P < -DOMAIN_TOL).any(axis=1) | (np.abs(P.sum(axis=1) - 1.0) > 10 * DOMAIN_TOL), np.inf, 0.0)
        P = np.clip(P, 0.0, None)
        tot = P.sum(axis=1, keepdims=True)
        P = P / np.where(tot > 0, tot, 1.0)
        return out + _xlogx(P).sum(axis=1)

    def _bregman_rows(self, a, b, gb, y):
        b64 = b.astype(np.float64, copy=False)
        dl = a.astype(np.float64, copy=False) - b64
        pb = _softmax_rows(b64)
        # lse(b + dl) - lse(b) - <p, dl> = log1p(m) - <p, dl>, m = sum p expm1(dl); stable form
        small = np.abs(dl).max(axis=1) < 1e-3
        with np.errstate(over="ignore", invalid="ignore"):  # large steps: the rows are not `small`
            e = np.expm1(dl)
            m = np.einsum("ij,ij->i", pb, e)
            corr = np.einsum("ij,ij->i", pb, dl * dl * (0.5 + dl / 6.0 + dl * dl / 24.0))
            series = corr - m * m / 2.0 + m**3 / 3.0
        with np.errstate(invalid="ignore", divide="ignore"):
            exact = np.log1p(m) - np.einsum("ij,ij->i", pb, dl)
        big = ~np.isfinite(exact)
        if big.any():  # e^dl overflowed (a step of ~700 or more): the shifted log-sum-exp form
            ab = a[big].astype(np.float64, copy=False)
            bb = b64[big]
            exact[big] = (_logsumexp_rows(ab) - _logsumexp_rows(bb)
                          - np.einsum("ij,ij->i", pb[big], ab - bb))
        return np.maximum(np.where(small, series, exact), 0.0)

    def best_dual_scale(self, theta, y, scale, s_max):
        # -(cL)*(s theta) = -c sum xlogx(P), P = Y + s G, G = theta / c (rows summing to 0):
        # concave on {P >= 0}, derivative -c sum G log P, second derivative -c sum G^2 / P
        G = np.asarray(theta, dtype=np.float64) / scale
        if G.ndim != 2 or np.any(np.abs(G.sum(axis=1)) > DOMAIN_TOL) or not np.any(G):
            return super().best_dual_scale(theta, y, scale, s_max)
        neg = G < 0
        if np.any(neg & (y <= 0)):  # a zero target pushed below 0: only s = 0 is strictly feasible
            return self._not_worse(0.0, theta, y, scale, s_max)
        hi = min(s_max, float(np.min(y[neg] / -G[neg], initial=np.inf)))
        # the rows of P = Y + s G must sum to 1: the rounding of G's row sums grows with s (a factor
        # of 1e15 left the conjugate's domain, a dual value of -inf)
        rs = float(np.abs(G.sum(axis=1)).max(initial=0.0))
        if rs > 0.0:
            hi = min(hi, 1e-3 * DOMAIN_TOL / rs)
        live = G != 0
        Gl, Yl = G[live], y[live]

        def derivs(s):
            P = Yl + s * Gl
            with np.errstate(divide="ignore", invalid="ignore"):
                g = -float(np.dot(Gl, np.log(P)))
                h = -float(np.sum(Gl * Gl / P))
            return g, h

        if not np.isfinite(hi):
            return super().best_dual_scale(theta, y, scale, s_max)
        return self._not_worse(_newton_max(derivs, hi, min(1.0, s_max)), theta, y, scale, s_max)

    def check_targets(self, y):
        if y.ndim != 2:
            raise LabelError(
                "cross_entropy needs one-hot targets of shape (n, n_classes); "
                "encode integer labels with np.eye(n_classes)[labels]."
            )
        _need_classes(y.shape)
        if np.any((y != 0) & (y != 1)) or np.any(y.sum(axis=1) != 1):
            raise LabelError("cross_entropy targets must be one-hot rows (a single 1 per row).")
        return y


LOSSES: dict[str, type[Loss]] = {
    "squared": SquaredLoss,
    "logistic": LogisticLoss,
    "hinge": HingeLoss,
    "huber": HuberLoss,
    "absolute": AbsoluteLoss,
    "cross_entropy": CrossEntropyLoss,
}


def get_loss(loss: str | Loss = "squared", **options) -> Loss:
    """Return a :class:`Loss` instance from a name (``"squared"``, ``"logistic"``,
    ``"hinge"``, ``"huber"``, ``"absolute"``, ``"cross_entropy"``) or pass one through.

    ``options`` (``reduction``, and ``delta`` for Huber) go to the loss's constructor.
    """
    if isinstance(loss, Loss):
        if options:
            raise InvalidParameterError("pass options to the Loss constructor, not with an instance.")
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise InvalidParameterError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}.")
    try:
        return LOSSES[loss](**options)
    except TypeError as exc:
        raise InvalidParameterError(f"bad options for the {loss} loss: {exc}") from exc
