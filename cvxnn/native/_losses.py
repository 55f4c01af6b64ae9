"""A loss bound to its targets, dtype and reduction: what the native solvers evaluate.

The mathematics lives in the :class:`~cvxnn.losses.Loss` objects (value, gradient, Hessian,
conjugate, Bregman divergence, best dual rescaling, capability flags). A
:class:`SmoothKernel` evaluates ``h(z) = scale * L(z, y)`` with that loss, in the compute
dtype, accumulating sums in float64 so the objective and the gap keep full precision when the
GEMMs run in float32. It never asks which loss it has.

The Bregman divergence ``h(a) - h(b) - <grad h(b), a - b>`` is evaluated termwise by the loss
(each term is non-negative), which is far more accurate near convergence than subtracting two
nearly equal objective values; the line search of R-FISTA tests exactly this quantity.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError
from ..losses import LOSSES, Loss

__all__ = ["NATIVE_LOSSES", "SmoothKernel", "make_kernel"]

#: Loss names the native solvers accept (smooth, with a conjugate for the certificates).
NATIVE_LOSSES = tuple(name for name, cls in LOSSES.items() if cls.smooth and cls.has_conjugate)


class SmoothKernel:
    """``h(z) = scale * L(z, y)`` for one smooth loss; ``z`` and ``y`` are ``(n, c)``.

    Parameters
    ----------
    loss : Loss
        A smooth loss with a conjugate (``loss.smooth and loss.has_conjugate``).
    y : ndarray of shape (n, c)
        Targets (already validated by the loss).
    dtype : numpy dtype
        Compute dtype.
    """

    def __init__(self, loss: Loss, y: np.ndarray, dtype) -> None:
        self.loss = loss
        #: the loss's name (for messages and logs only)
        self.kind = loss.name
        self.dtype = np.dtype(dtype)
        self.y = np.ascontiguousarray(y, dtype=self.dtype)
        self.y64 = np.asarray(y, dtype=np.float64)
        self.scale = float(loss.scale(y.shape[0]))
        #: curvature bound of h (Lipschitz constant of its gradient)
        self.curvature = float(loss.lipschitz) * self.scale

    def _y(self, z: np.ndarray) -> np.ndarray:
        return self.y64 if z.dtype == np.float64 else self.y

    # ------------------------------------------------------------------ values
    def value(self, z: np.ndarray) -> float:
        """``h(z)`` (float64 accumulation)."""
        return self.scale * self.loss._value_sum(z, self._y(z))

    def grad(self, z: np.ndarray) -> np.ndarray:
        """``grad h(z)`` in the compute dtype."""
        g = self.loss._grad_sum(z, self._y(z))
        if self.scale != 1.0:
            g = g * self.dtype.type(self.scale)
        return g.astype(self.dtype, copy=False)

    def value_and_grad(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """``(value(z), grad(z))``, sharing the work the loss can share (cross-entropy: one
        exponential); the gradient in the compute dtype."""
        v, g = self.loss._value_grad_sum(z, self._y(z))
        if self.scale != 1.0:
            g = g * self.dtype.type(self.scale)
        return self.scale * float(v), g.astype(self.dtype, copy=False)

    def hessian_parts(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The Hessian of ``h`` at ``z`` per sample as ``diag(D_n) - v_n v_n^T`` (float64).

        Returns ``(D, v)`` of shape ``(n, c)``; ``v`` is None for separable losses."""
        D, V = self.loss._hessian_sum(np.asarray(z, dtype=np.float64), self.y64)
        return self.scale * D, (None if V is None else np.sqrt(self.scale) * V)

    def bregman(self, a: np.ndarray, b: np.ndarray, gb: np.ndarray) -> float:
        """``h(a) - h(b) - <grad h(b), a - b>`` evaluated termwise (>= 0); ``gb = grad h(b)``."""
        g = gb.astype(np.float64, copy=False) / self.scale
        return self.scale * self.loss._bregman_sum(a, b, g, self.y64)

    # -------------------------------------------------------------------- dual
    def dual_value(self, theta: np.ndarray) -> float:
        """``-h*(theta)`` for a dual point ``theta`` (``grad h(z)`` scaled by a factor in [0, 1]).

        Returns ``-inf`` when ``theta`` is outside the domain of ``h*``.
        """
        th = np.asarray(theta, dtype=np.float64)
        c = self.scale
        return -c * self.loss._conjugate_sum(th / c, self.y64)

    def best_dual_scale(self, theta: np.ndarray, s_max: float) -> float:
        """The factor in ``[0, s_max]`` that maximises :meth:`dual_value` of ``s theta``."""
        return self.loss.best_dual_scale(np.asarray(theta, dtype=np.float64), self.y64, self.scale, s_max)


def make_kernel(loss: Loss, y2: np.ndarray, dtype) -> SmoothKernel:
    """Return the kernel of a smooth loss the native solvers support.

    Raises
    ------
    InvalidParameterError
        For losses without a gradient or conjugate (hinge, absolute, ...).
    """
    if not (isinstance(loss, Loss) and loss.smooth and loss.has_conjugate):
        name = getattr(loss, "name", type(loss).__name__)
        raise InvalidParameterError(
            f"the native solvers support the losses {NATIVE_LOSSES}, got {name!r}; "
            "non-smooth losses need a CVXPY solver: backend='clarabel' in the estimators, "
            "solver='CLARABEL' in cvxnn.solve, or cvxnn.build_program(...).solve()."
        )
    return SmoothKernel(loss, y2, dtype)
