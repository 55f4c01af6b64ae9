"""Loss functions ``L(z, y)`` (MATH.md, "Convention for objectives", "Other losses").

Each loss is a small class with a narrow interface (skglm's "datafit" idea):

* :meth:`Loss.cvxpy` -- the loss as a CVXPY expression of the prediction ``z``;
* :meth:`Loss.value` -- the loss in numpy (used to evaluate objectives of networks);
* :meth:`Loss.grad`, :meth:`Loss.conjugate` -- for smooth losses, used by the native
  solvers and duality gaps;
* :meth:`Loss.check_targets` -- validates labels (e.g. logistic needs labels in {-1, +1}).

Convention: losses are **sums** over samples; squared loss is ``1/2 ||z - y||^2``.
``reduction="mean"`` divides by ``n`` (a documented option, never a silent change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cvxpy as cp
import numpy as np
from scipy.special import expit, log_expit, logsumexp

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
]

_REDUCTIONS = ("sum", "mean")


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
    smooth = False
    #: Lipschitz constant of ``grad`` w.r.t. ``z`` (per sample, before reduction); None if not smooth.
    lipschitz: ClassVar[float | None] = None
    classification = False
    supports_vector = True

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
        raise InvalidParameterError(f"the {self.name} loss is not differentiable; use a smooth loss.")

    def conjugate(self, s, y) -> float:
        """Fenchel conjugate ``L*(s) = sup_z <s, z> - L(z, y)`` (smooth losses only)."""
        raise InvalidParameterError(f"no conjugate is implemented for the {self.name} loss.")

    def check_targets(self, y: np.ndarray) -> np.ndarray:
        """Validate targets for this loss; returns them (possibly re-encoded), never in place."""
        return y


@dataclass(frozen=True)
class SquaredLoss(Loss):
    """``L(z, y) = 1/2 ||z - y||^2`` (Frobenius for matrix outputs)."""

    name = "squared"
    smooth = True
    lipschitz = 1.0

    def _cvxpy_sum(self, z, y):
        return 0.5 * cp.sum_squares(z - y)

    def _value_sum(self, z, y):
        return 0.5 * float(np.sum((z - y) ** 2))

    def grad(self, z, y):
        z, y = _zy(z, y)
        return self.scale(y.shape[0]) * (np.asarray(z) - y)

    def conjugate(self, s, y):
        s, y = _zy(s, y)
        # L = c/2 ||z - y||^2 with c = scale:  L*(s) = ||s||^2 / (2c) + <s, y>
        c = self.scale(y.shape[0])
        s = np.asarray(s)
        return float(np.sum(s * s) / (2 * c) + np.sum(s * y))


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
    lipschitz = 0.25
    classification = True
    supports_vector = False

    def _cvxpy_sum(self, z, y):
        return cp.sum(cp.logistic(-cp.multiply(y, z)))

    def _value_sum(self, z, y):
        return float(-np.sum(log_expit(y * z)))

    def grad(self, z, y):
        z, y = _zy(z, y)
        return self.scale(y.shape[0]) * (-y * expit(-y * np.asarray(z)))

    def conjugate(self, s, y):
        s, y = _zy(s, y)
        # per sample: with t = -s_j y_j / c in [0, 1], c L*(s/c) = c (t log t + (1-t) log(1-t))
        c = self.scale(y.shape[0])
        t = -np.asarray(s) * y / c
        if np.any(t < -1e-12) or np.any(t > 1 + 1e-12):
            return float("inf")
        t = np.clip(t, 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = np.where(t > 0, t * np.log(t), 0.0) + np.where(t < 1, (1 - t) * np.log1p(-t), 0.0)
        return float(c * np.sum(ent))

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

    def check_targets(self, y):
        return _check_pm1(y, self.name)


@dataclass(frozen=True)
class HuberLoss(Loss):
    """``L(z, y) = sum_j h(z_j - y_j)`` with ``h(r) = r^2/2`` for ``|r| <= delta``, else
    ``delta (|r| - delta/2)`` (continuous with the squared loss's ``1/2`` convention)."""

    delta: float = 1.0
    name = "huber"
    smooth = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (np.isfinite(self.delta) and self.delta > 0):
            raise InvalidParameterError(f"Huber delta must be positive and finite, got {self.delta}.")

    lipschitz = 1.0

    def _cvxpy_sum(self, z, y):
        return 0.5 * cp.sum(cp.huber(z - y, self.delta))

    def _value_sum(self, z, y):
        r = np.abs(z - y)
        return float(np.sum(np.where(r <= self.delta, 0.5 * r**2, self.delta * (r - 0.5 * self.delta))))

    def grad(self, z, y):
        z, y = _zy(z, y)
        return self.scale(y.shape[0]) * np.clip(np.asarray(z) - y, -self.delta, self.delta)


@dataclass(frozen=True)
class AbsoluteLoss(Loss):
    """``L(z, y) = ||z - y||_1``."""

    name = "absolute"

    def _cvxpy_sum(self, z, y):
        return cp.sum(cp.abs(z - y))

    def _value_sum(self, z, y):
        return float(np.sum(np.abs(z - y)))


def _need_matrix(z: np.ndarray) -> None:
    if z.ndim != 2:
        raise ShapeError(
            f"cross_entropy needs predictions and one-hot targets of shape (n, n_classes), got {z.shape}."
        )


@dataclass(frozen=True)
class CrossEntropyLoss(Loss):
    """Multinomial (softmax) cross-entropy for vector outputs ``Z`` (``n x c``), one-hot ``Y``:
    ``L(Z, Y) = sum_j [logsumexp(Z_j) - <Y_j, Z_j>]``."""

    name = "cross_entropy"
    smooth = True
    lipschitz = 1.0
    classification = True

    def _cvxpy_sum(self, z, y):
        return cp.sum(cp.log_sum_exp(z, axis=1)) - cp.sum(cp.multiply(y, z))

    def _value_sum(self, z, y):
        _need_matrix(z)
        return float(np.sum(logsumexp(z, axis=1)) - np.sum(y * z))

    def grad(self, z, y):
        z, y = _zy(z, y)
        _need_matrix(z)
        P = np.exp(z - logsumexp(z, axis=1, keepdims=True))
        return self.scale(y.shape[0]) * (P - y)

    def conjugate(self, s, y):
        s, y = _zy(s, y)
        # L*(S) = sum_j sum_k P_jk log P_jk with P = S/c + Y on the simplex (else +inf)
        _need_matrix(s)
        c = self.scale(y.shape[0])
        P = np.asarray(s) / c + y
        if np.any(P < -1e-12) or np.any(np.abs(P.sum(axis=1) - 1) > 1e-9):
            return float("inf")
        P = np.clip(P, 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = np.where(P > 0, P * np.log(P), 0.0)
        return float(c * np.sum(ent))

    def check_targets(self, y):
        if y.ndim != 2:
            raise LabelError(
                "cross_entropy needs one-hot targets of shape (n, n_classes); "
                "encode integer labels with np.eye(n_classes)[labels]."
            )
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


def get_loss(loss: "str | Loss" = "squared", **options) -> Loss:
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
