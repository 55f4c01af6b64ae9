"""Smooth-loss kernels of the native solvers, in the compute dtype.

Each kernel evaluates ``h(z) = scale * L(z, y)`` (the library's :class:`~cvxnn.losses.Loss`
with its reduction), its gradient, the Bregman divergence used by the line search, and the
dual value ``-h*(theta)`` used by the duality gap. Sums are accumulated in float64 so the
objective and the gap keep full precision when the GEMMs run in float32.

The Bregman divergence ``h(a) - h(b) - <grad h(b), a - b>`` is evaluated termwise (each
term is non-negative), which is far more accurate near convergence than subtracting two
nearly equal objective values; the line search of R-FISTA tests exactly this quantity.
"""

from __future__ import annotations

import numpy as np
from scipy.special import entr, expit, log_expit, logsumexp, softmax

from ..errors import InvalidParameterError
from ..losses import CrossEntropyLoss, LogisticLoss, Loss, SquaredLoss

__all__ = ["NATIVE_LOSSES", "SmoothKernel", "make_kernel"]

#: Loss names the native solvers accept.
NATIVE_LOSSES = ("squared", "logistic", "cross_entropy")


def _xlogx(t: np.ndarray) -> np.ndarray:
    """``t log t`` with ``0 log 0 = 0``."""
    return -entr(t)


def _softplus_bregman(dl: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """Termwise Bregman divergence of ``softplus`` between ``v + dl`` and ``v``, ``sig = sigmoid(v)``:
    ``log(1 - sig + sig e^dl) - sig dl``, by its Taylor series where ``|dl|`` is small
    (the closed form cancels catastrophically there)."""
    dl = dl.astype(np.float64, copy=False)
    sig = sig.astype(np.float64, copy=False)
    s1 = sig * (1.0 - sig)
    series = s1 * dl * dl * (0.5 + dl * (1.0 - 2.0 * sig) / 6.0
                             + dl * dl * (1.0 - 6.0 * s1) / 24.0)
    small = np.abs(dl) < 1e-3
    if small.all():
        return series
    with np.errstate(over="ignore"):
        exact = np.log1p(sig * np.expm1(dl)) - sig * dl
    exact = np.where(np.isfinite(exact), exact, np.abs(dl))
    return np.where(small, series, exact)


class SmoothKernel:
    """``h(z) = scale * L(z, y)`` for one smooth loss; ``z`` and ``y`` are ``(n, c)``.

    Parameters
    ----------
    loss : Loss
        A :class:`~cvxnn.losses.SquaredLoss`, :class:`~cvxnn.losses.LogisticLoss` or
        :class:`~cvxnn.losses.CrossEntropyLoss`.
    y : ndarray of shape (n, c)
        Targets (already validated by the loss).
    dtype : numpy dtype
        Compute dtype.
    """

    def __init__(self, loss: Loss, y: np.ndarray, dtype) -> None:
        self.loss = loss
        self.kind = loss.name
        self.dtype = np.dtype(dtype)
        self.y = np.ascontiguousarray(y, dtype=self.dtype)
        self.y64 = np.asarray(y, dtype=np.float64)
        self.scale = float(loss.scale(y.shape[0]))
        #: curvature bound of h (Lipschitz constant of its gradient)
        self.curvature = float(loss.lipschitz) * self.scale

    # ------------------------------------------------------------------ values
    def value(self, z: np.ndarray) -> float:
        """``h(z)`` (float64 accumulation)."""
        if self.kind == "squared":
            r = (z - self.y).astype(np.float64, copy=False)
            return 0.5 * self.scale * float(np.vdot(r, r))
        if self.kind == "logistic":
            return -self.scale * float(np.sum(log_expit(self.y * z), dtype=np.float64))
        return self.scale * float(
            np.sum(logsumexp(z.astype(np.float64, copy=False), axis=1)) - np.vdot(self.y64, z)
        )

    def grad(self, z: np.ndarray) -> np.ndarray:
        """``grad h(z)`` in the compute dtype."""
        if self.kind == "squared":
            g = z - self.y
        elif self.kind == "logistic":
            g = -self.y * expit(-self.y * z)
        else:
            g = softmax(z, axis=1) - self.y
        if self.scale != 1.0:
            g *= self.dtype.type(self.scale)
        return g.astype(self.dtype, copy=False)

    def bregman(self, a: np.ndarray, b: np.ndarray, gb: np.ndarray) -> float:
        """``h(a) - h(b) - <grad h(b), a - b>`` evaluated termwise (>= 0)."""
        if self.kind == "squared":
            diff = (a - b).astype(np.float64, copy=False)
            return 0.5 * self.scale * float(np.vdot(diff, diff))
        if self.kind == "logistic":
            # softplus(u) with u = -y z: Bregman in u, sigma(v) = |grad| / scale
            dl = (-self.y * (a - b)).astype(np.float64)
            sig = np.abs(gb).astype(np.float64) / self.scale
            return self.scale * float(np.maximum(_softplus_bregman(dl, sig), 0.0).sum())
        b64 = b.astype(np.float64, copy=False)
        dl = a.astype(np.float64, copy=False) - b64
        pb = softmax(b64, axis=1)
        # lse(b + dl) - lse(b) - <p, dl> = log1p(m) - <p, dl>, m = sum p expm1(dl); stable form
        e = np.expm1(dl)
        m = np.einsum("ij,ij->i", pb, e)
        small = np.abs(dl).max(axis=1) < 1e-3
        corr = np.einsum("ij,ij->i", pb, dl * dl * (0.5 + dl / 6.0 + dl * dl / 24.0))  # sum p (e^x - 1 - x)
        series = corr - m * m / 2.0 + m**3 / 3.0
        with np.errstate(invalid="ignore", divide="ignore"):
            exact = np.log1p(m) - np.einsum("ij,ij->i", pb, dl)
        terms = np.where(small, series, exact)
        return self.scale * float(np.maximum(terms, 0.0).sum())

    def hessian_parts(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The Hessian of ``h`` at ``z`` per sample as ``diag(D_n) - v_n v_n^T`` (float64).

        Returns ``(D, v)`` of shape ``(n, c)``; ``v`` is None for losses separable across
        outputs."""
        z = np.asarray(z, dtype=np.float64)
        if self.kind == "squared":
            return np.full(z.shape, self.scale), None
        if self.kind == "logistic":
            s = expit(self.y64 * z)
            return self.scale * s * (1.0 - s), None
        P = softmax(z, axis=1)
        return self.scale * P, np.sqrt(self.scale) * P

    # -------------------------------------------------------------------- dual
    def dual_value(self, theta: np.ndarray) -> float:
        """``-h*(theta)`` for a dual point ``theta`` (``grad h(z)`` scaled by a factor in [0, 1]).

        Returns ``-inf`` when ``theta`` is outside the domain of ``h*``.
        """
        th = np.asarray(theta, dtype=np.float64)
        c = self.scale
        if self.kind == "squared":
            # h*(s) = ||s||^2 / (2c) + <s, y>
            return -(float(np.vdot(th, th)) / (2 * c) + float(np.vdot(th, self.y64)))
        if self.kind == "logistic":
            t = -th * self.y64 / c
            if np.any(t < -1e-6) or np.any(t > 1 + 1e-6):
                return float("-inf")
            t = np.clip(t, 0.0, 1.0)
            return -c * float(np.sum(_xlogx(t) + _xlogx(1.0 - t)))
        P = th / c + self.y64
        if np.any(P < -1e-6) or np.any(np.abs(P.sum(axis=1) - 1.0) > 1e-5):
            return float("-inf")
        P = np.clip(P, 0.0, None)
        P /= P.sum(axis=1, keepdims=True)
        return -c * float(np.sum(_xlogx(P)))


def make_kernel(loss: Loss, y2: np.ndarray, dtype) -> SmoothKernel:
    """Return the kernel of a smooth loss the native solvers support.

    Raises
    ------
    InvalidParameterError
        For losses without a native kernel (hinge, absolute, Huber, ...).
    """
    if not isinstance(loss, (SquaredLoss, LogisticLoss, CrossEntropyLoss)):
        raise InvalidParameterError(
            f"the native solvers support the losses {NATIVE_LOSSES}, got {loss.name!r}; "
            "use the CVXPY backend (cvxnn.build_program) for non-smooth losses."
        )
    return SmoothKernel(loss, y2, dtype)
