"""Penalty objects of the convex programs: value, block norms, prox, dual norm, CVXPY form.

Weights are blocks ``B_i``, one per activation pattern ``D_i``, stored as an array of shape
``(d, p)`` (scalar output, block ``i`` is the column ``b_i``) or ``(d, p, c)`` (vector output,
block ``i`` is the ``d x c`` matrix ``B[:, i, :]``). A penalty is ``sum_i ||B_i||`` for a norm
``||.||`` on blocks (docs/math.md, "The convex programs", "Vector output"):

* :class:`GroupL2` -- ``||B_i||_2`` (the Frobenius norm of a ``d x c`` block): the group lasso of
  C-ReLU / C-GReLU with scalar output;
* :class:`Nuclear` -- ``||B_i||_*``, the sum of singular values: vector-output C-GReLU, exact for
  gated ReLU networks;
* :class:`Columnwise` -- ``sum_k ||B_i[:, k]||_2``: the ``"one_vs_all"`` formulation (``c``
  scalar networks sharing the patterns).

Each object gives, in numpy, vectorised over blocks (the nuclear norm through one batched SVD):

* :meth:`~Penalty.block_norms` and :meth:`~Penalty.value` (``sum_i ||B_i||``);
* :meth:`~Penalty.prox` -- ``prox_{t ||.||}(B) = argmin_X t sum_i ||X_i|| + 1/2 ||X - B||^2``
  (group soft-threshold; singular-value soft-threshold; columnwise soft-threshold);
* :meth:`~Penalty.dual_norm` -- blockwise dual norms ``||G_i||^D = sup_{||B_i|| <= 1} <G_i, B_i>``
  (2-norm; spectral norm; largest column norm), the quantity ``lam`` is compared with in the
  optimality conditions and in ``lam_max``;
* :meth:`~Penalty.project_dual_ball` -- the projection onto ``{G : ||G_i||^D <= r}``; with the prox
  it satisfies Moreau's identity ``prox_{t||.||}(B) + proj_{||.||^D <= t}(B) = B``;

and :meth:`~Penalty.cvxpy`, the same penalty as a CVXPY expression of the program's variable
(``d x p``, or ``d x p c`` with column ``i c + k`` holding output ``k`` of block ``i``), written
in the vectorised forms that keep compile time linear in ``p`` (one ``norm(., 2, axis=0)``; the
nuclear norms as one batched SDP epigraph).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import cvxpy as cp
import numpy as np

from .errors import InvalidParameterError, ShapeError

__all__ = ["Columnwise", "CvxpyTerm", "GroupL2", "Nuclear", "PENALTIES", "Penalty", "get_penalty"]


def _as3(B) -> tuple[np.ndarray, bool]:
    """Blocks as ``(d, p, c)`` and whether the input was 2-D."""
    B = np.asarray(B)
    if B.ndim == 2:
        return B[:, :, None], True
    if B.ndim == 3:
        return B, False
    raise ShapeError(f"blocks must have shape (d, p) or (d, p, c), got {B.shape}.")


def _cvxpy_layout(B, n_outputs) -> tuple[int, int, int]:
    """``(d, p, c)`` of a program variable ``B`` of shape ``(d, p c)`` with ``c = n_outputs``."""
    if isinstance(n_outputs, (bool, np.bool_)) or not isinstance(n_outputs, (int, np.integer)) or n_outputs < 1:
        raise InvalidParameterError(f"n_outputs must be an integer >= 1, got {n_outputs!r}.")
    shape = tuple(B.shape)
    c = int(n_outputs)
    if len(shape) != 2 or shape[1] % c:
        raise ShapeError(f"the program variable must have shape (d, p * n_outputs) with n_outputs={c}, got {shape}.")
    return shape[0], shape[1] // c, c


def _back(B3: np.ndarray, flat: bool) -> np.ndarray:
    return B3[:, :, 0] if flat else B3


def _check_t(t) -> float:
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"the prox threshold t must be a real number, got {type(t).__name__} "
                                    f"{t!r:.40}.") from None
    if not np.isfinite(t) or t < 0:
        raise InvalidParameterError(f"the prox threshold t must be a finite number >= 0, got {t!r}.")
    return t


#: Block norms below this are recomputed after scaling (their squares may have lost digits).
_SAFE_NORM_LOW = 1e-140


def _norms(B3: np.ndarray, per_column: bool) -> np.ndarray:
    """2-norms of the blocks ``B3[:, i, :]`` (shape ``(p,)``) or of the columns ``B3[:, i, k]``
    (``per_column``, shape ``(p, c)``), in float64.

    The sums of squares are formed directly; where they overflow (entries above ~1e154) or
    underflow (a norm below :data:`_SAFE_NORM_LOW`, zero blocks included) the norms are
    recomputed after dividing by the largest entry, so that they are accurate for every finite
    input (without it a block of 1e200 entries has the norm inf and a prox of NaN, one of 1e-200
    entries the norm 0).
    """
    norms = np.sqrt(np.einsum("dpc,dpc->pc" if per_column else "dpc,dpc->p", B3, B3, dtype=np.float64))
    redo = np.isinf(norms) | (norms < _SAFE_NORM_LOW)
    if not np.any(redo):
        return norms
    sub = (B3[:, redo] if per_column else B3[:, redo, :].reshape(B3.shape[0], -1, B3.shape[2]))
    sub = np.abs(sub.astype(np.float64, copy=False))
    axes = (0,) if per_column else (0, 2)
    scale = sub.max(axis=axes, initial=0.0)
    ok = np.isfinite(scale) & (scale > 0.0)
    safe = np.where(ok, scale, 1.0)
    scaled = sub / (safe[None, :] if per_column else safe[None, :, None])
    again = np.sqrt(np.einsum("dk,dk->k" if per_column else "dkc,dkc->k", scaled, scaled)) * safe
    norms[redo] = np.where(ok, again, norms[redo])
    return norms


@dataclass(frozen=True, eq=False)
class CvxpyTerm:
    """A penalty in CVXPY form.

    Attributes
    ----------
    expression : cvxpy.Expression
        ``sum_i ||B_i||`` (or its epigraph objective).
    constraints : list
        Constraints the expression needs (the nuclear norms' PSD constraint); empty otherwise.
    auxiliary : tuple of cvxpy.Variable
        Epigraph variables (nuclear norm: ``(P, Q)``).
    """

    expression: cp.Expression
    constraints: list = field(default_factory=list)
    auxiliary: tuple = ()


class Penalty:
    """Base class: ``sum_i ||B_i||`` for a norm on blocks (see the module docstring)."""

    name: ClassVar[str] = "penalty"

    def block_norms(self, B) -> np.ndarray:
        """``||B_i||`` for every block, shape ``(p,)``."""
        raise NotImplementedError  # pragma: no cover

    def value(self, B) -> float:
        """``sum_i ||B_i||``."""
        return float(self.block_norms(B).sum())

    def dual_norm(self, G) -> np.ndarray:
        """Blockwise dual norms ``||G_i||^D``, shape ``(p,)``."""
        raise NotImplementedError  # pragma: no cover

    def prox(self, B, t: float) -> np.ndarray:
        """``argmin_X t sum_i ||X_i|| + 1/2 ||X - B||_F^2`` (same shape as ``B``)."""
        raise NotImplementedError  # pragma: no cover

    def project_dual_ball(self, G, radius: float = 1.0) -> np.ndarray:
        """Projection of ``G`` onto ``{G : ||G_i||^D <= radius for every i}`` (Moreau:
        ``prox(B, t) + project_dual_ball(B, t) == B``)."""
        G = np.asarray(G, dtype=float)
        return G - self.prox(G, radius)

    def cvxpy(self, B: cp.Expression, n_outputs: int = 1, *, name: str = "B") -> CvxpyTerm:
        """The penalty of the program variable ``B`` (``d x p c``) as a :class:`CvxpyTerm`."""
        raise NotImplementedError  # pragma: no cover

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GroupL2(Penalty):
    """``sum_i ||B_i||_2`` (Frobenius norm of each block): the group lasso."""

    name = "group_l2"

    def block_norms(self, B) -> np.ndarray:
        B3, _ = _as3(B)
        return _norms(B3, per_column=False)

    def dual_norm(self, G) -> np.ndarray:
        return self.block_norms(G)

    def prox(self, B, t: float) -> np.ndarray:
        t = _check_t(t)
        B3, flat = _as3(B)
        norms = self.block_norms(B3)
        factor = np.maximum(norms - t, 0.0) / np.maximum(norms, np.finfo(float).tiny)
        return _back(B3 * factor[None, :, None], flat)

    def cvxpy(self, B, n_outputs: int = 1, *, name: str = "B") -> CvxpyTerm:
        d, p, c = _cvxpy_layout(B, n_outputs)
        cols = B if c == 1 else cp.reshape(B, (d * c, p), order="F")
        return CvxpyTerm(cp.sum(cp.norm(cols, 2, axis=0)))


class Columnwise(Penalty):
    """``sum_i sum_k ||B_i[:, k]||_2``: every output's column is its own group (one-vs-all)."""

    name = "columnwise"

    def _col_norms(self, B) -> np.ndarray:
        B3, _ = _as3(B)
        return _norms(B3, per_column=True)  # (p, c)

    def block_norms(self, B) -> np.ndarray:
        return self._col_norms(B).sum(axis=1)

    def dual_norm(self, G) -> np.ndarray:
        return self._col_norms(G).max(axis=1, initial=0.0)

    def prox(self, B, t: float) -> np.ndarray:
        t = _check_t(t)
        B3, flat = _as3(B)
        norms = self._col_norms(B3)
        factor = np.maximum(norms - t, 0.0) / np.maximum(norms, np.finfo(float).tiny)
        return _back(B3 * factor[None, :, :], flat)

    def cvxpy(self, B, n_outputs: int = 1, *, name: str = "B") -> CvxpyTerm:
        _cvxpy_layout(B, n_outputs)
        return CvxpyTerm(cp.sum(cp.norm(B, 2, axis=0)))


class Nuclear(Penalty):
    """``sum_i ||B_i||_*`` (sum of singular values of each ``d x c`` block)."""

    name = "nuclear"

    @staticmethod
    def _svals(B) -> np.ndarray:
        """Singular values of every block, ``(p, min(d, c))``; NaN for a block with NaN or inf
        entries, as the other penalties' norms (LAPACK does not converge on them)."""
        B3, _ = _as3(B)
        stack = np.transpose(B3, (1, 0, 2))
        bad = ~np.isfinite(stack).all(axis=(1, 2))
        if not bad.any():
            return np.linalg.svd(stack, compute_uv=False)
        s = np.full((stack.shape[0], min(stack.shape[1:])), np.nan)
        if (~bad).any():
            s[~bad] = np.linalg.svd(stack[~bad], compute_uv=False)
        return s

    def block_norms(self, B) -> np.ndarray:
        return self._svals(B).sum(axis=1).astype(np.float64)

    def dual_norm(self, G) -> np.ndarray:
        s = self._svals(G)
        return (s[:, 0] if s.shape[1] else np.zeros(s.shape[0])).astype(np.float64)

    def prox(self, B, t: float) -> np.ndarray:
        """Singular-value soft-threshold of every block (one batched SVD)."""
        t = _check_t(t)
        B3, flat = _as3(B)
        stack = np.transpose(B3, (1, 0, 2))
        bad = ~np.isfinite(stack).all(axis=(1, 2))

        def shrink(blocks):
            U, s, Vt = np.linalg.svd(blocks, full_matrices=False)
            return np.matmul(U * np.maximum(s - t, 0.0)[:, None, :], Vt)

        if not bad.any():
            Xt = shrink(stack)
        else:  # NaN for a block with NaN or inf entries
            Xt = np.full(stack.shape, np.nan, dtype=np.result_type(stack.dtype, np.float32))
            if (~bad).any():
                Xt[~bad] = shrink(stack[~bad])
        return _back(np.ascontiguousarray(np.transpose(Xt, (1, 0, 2))), flat)

    def cvxpy(self, B, n_outputs: int = 1, *, name: str = "B") -> CvxpyTerm:
        """``sum_i ||B_i||_*`` in SDP epigraph form for all blocks at once.

        ``||B_i||_* = min { (tr P_i + tr Q_i) / 2 : [[P_i, B_i], [B_i^T, Q_i]] PSD }`` with batched
        variables ``P`` (``p x d x d``) and ``Q`` (``p x c x c``), the batched matrix assembled by
        concatenation and a single constraint ``>> 0`` (compile time linear in ``p``, several
        times below ``p`` separate ``normNuc`` atoms).
        """
        d, p, c = _cvxpy_layout(B, n_outputs)
        P = cp.Variable((p, d, d), name=f"P_{name}")
        Q = cp.Variable((p, c, c), name=f"Q_{name}")
        B3 = cp.transpose(cp.reshape(B, (d, p, c), order="C"), (1, 0, 2))  # (p, d, c)
        top = cp.concatenate([P, B3], axis=2)
        bottom = cp.concatenate([cp.transpose(B3, (0, 2, 1)), Q], axis=2)
        lifted = cp.concatenate([top, bottom], axis=1)  # (p, d + c, d + c)
        trace = (cp.sum(cp.multiply(np.broadcast_to(np.eye(d), (p, d, d)), P))
                 + cp.sum(cp.multiply(np.broadcast_to(np.eye(c), (p, c, c)), Q)))
        return CvxpyTerm(0.5 * trace, [lifted >> 0], (P, Q))


#: Penalty name (and vector-output formulation name) -> class.
PENALTIES: dict[str, type[Penalty]] = {
    "group_l2": GroupL2,
    "nuclear": Nuclear,
    "columnwise": Columnwise,
    "one_vs_all": Columnwise,
}


def get_penalty(penalty: str | Penalty) -> Penalty:
    """A :class:`Penalty` from a name (``"group_l2"``, ``"nuclear"``, ``"columnwise"`` /
    ``"one_vs_all"``) or pass one through."""
    if isinstance(penalty, Penalty):
        return penalty
    if not isinstance(penalty, str) or penalty not in PENALTIES:
        raise InvalidParameterError(f"unknown penalty {penalty!r}; choose one of {sorted(PENALTIES)}.")
    return PENALTIES[penalty]()
