"""The cone constraint of C-ReLU as an object: ``Xt_i b_i >= 0`` (docs/math.md, "The convex programs").

For pattern ``D_i`` the signed data ``Xt_i = (2 D_i - I) X_a`` defines the polyhedral cone
``K_i = {w : Xt_i w >= 0}`` of first-layer weights whose ReLU pattern is ``D_i``; on ``K_i``,
``(X_a w)_+ = D_i X_a w``, which is what makes the C-ReLU program exact. With the ``n x p`` 0/1
mask ``M`` and the signs ``S = 2 M - 1`` all constraints of a sign are one elementwise inequality

    S * (X_a B) >= 0          (B is d_a x p; column i is b_i)

and for ``c`` outputs (Sahiner et al. 2021) every column of every block lies in ``K_i``
("columnwise"): with ``B`` of shape ``d_a x p c`` (column ``i c + k`` is output ``k`` of block
``i``) and the signs repeated ``c`` times, ``S_c * (X_a B) >= 0``.

:class:`ConeConstraint` gives the same constraint in numpy (:meth:`~ConeConstraint.slack`,
:meth:`~ConeConstraint.violation`, used for certificates and checks) and in CVXPY
(:meth:`~ConeConstraint.cvxpy`, one vectorised constraint per block matrix, DPP-compatible).
The multipliers ``rho_i >= 0`` of these constraints enter the optimality conditions as
``q_i = s_i X^T D_i r + Xt_i^T rho_i`` (docs/math.md, "Optimality conditions").
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from .errors import ShapeError

__all__ = ["ConeConstraint"]


class ConeConstraint:
    """``Xt_i b_i >= 0`` for every block (columnwise for vector output).

    Stateless: the data (``Xa``, the design with a bias column if any) and the mask are passed
    to each method, so one object serves the CVXPY builders and the numpy checks.
    """

    name = "cone"

    @staticmethod
    def signs(mask: np.ndarray) -> np.ndarray:
        """``S = 2 M - 1`` (``+1`` where ``D_i`` is active, ``-1`` elsewhere), float ``n x p``."""
        return 2.0 * np.asarray(mask, dtype=float) - 1.0

    def slack(self, Xa: np.ndarray, mask: np.ndarray, B: np.ndarray) -> np.ndarray:
        """``Xt_i b_i`` for every block: ``(n, p)``, or ``(n, p, c)`` for blocks ``(d_a, p, c)``.

        Raises
        ------
        ShapeError
            When ``Xa`` (``n x d_a``), ``mask`` (``n x p``) and ``B`` (``d_a x p [x c]``) do not fit.
        """
        Xa = np.asarray(Xa, dtype=float)
        B = np.asarray(B, dtype=float)
        S = self.signs(mask)
        _check_design(Xa, S, B)
        if B.ndim == 2:
            if B.shape[1] != S.shape[1]:
                raise ShapeError(f"blocks have {B.shape[1]} columns but the mask has {S.shape[1]} patterns.")
            return S * (Xa @ B)
        if B.ndim != 3 or B.shape[1] != S.shape[1]:
            raise ShapeError(f"blocks must have shape (d_a, {S.shape[1]}[, c]), got {B.shape}.")
        d, p, c = B.shape
        return S[:, :, None] * (Xa @ B.reshape(d, p * c)).reshape(-1, p, c)

    def violation(self, Xa: np.ndarray, mask: np.ndarray, B: np.ndarray) -> float:
        """Largest violation ``max(0, -min_i Xt_i b_i)`` (prediction units)."""
        worst = -float(self.slack(Xa, mask, B).min(initial=0.0))
        return worst if np.isnan(worst) else max(0.0, worst)  # NaN weights: NaN, never "feasible"

    def cvxpy(self, Xa: np.ndarray, mask: np.ndarray, B: cp.Expression, n_outputs: int = 1) -> list:
        """The constraint on the program variable ``B`` (``d_a x p c``) as a one-element list
        ``[S_c * (X_a B) >= 0]``; its dual value is ``rho`` in the layout of ``B``'s columns."""
        S = self.signs(mask)
        if n_outputs > 1:
            S = np.repeat(S, int(n_outputs), axis=1)
        Xa = np.asarray(Xa, dtype=float)
        if Xa.ndim != 2 or Xa.shape[0] != S.shape[0] or len(B.shape) != 2 or B.shape != (Xa.shape[1], S.shape[1]):
            raise ShapeError(f"the cone constraint needs Xa (n, d_a), mask (n, p) and B (d_a, p * n_outputs); "
                             f"got Xa {Xa.shape}, mask {np.shape(mask)}, n_outputs={n_outputs} and B {B.shape}.")
        return [cp.multiply(S, Xa @ B) >= 0]

    def __repr__(self) -> str:
        return "ConeConstraint()"


def _check_design(Xa: np.ndarray, S: np.ndarray, B: np.ndarray) -> None:
    """``Xa`` is ``n x d_a``, the signs ``n x p``, the blocks ``d_a x p [x c]``."""
    if Xa.ndim != 2 or S.ndim != 2 or Xa.shape[0] != S.shape[0]:
        raise ShapeError(f"Xa must be (n, d_a) and the mask (n, p) with the same n; got Xa {Xa.shape} and "
                         f"mask {S.shape}.")
    if B.ndim in (2, 3) and B.shape[0] != Xa.shape[1]:
        raise ShapeError(f"blocks have {B.shape[0]} rows but Xa has {Xa.shape[1]} columns (d_a).")
