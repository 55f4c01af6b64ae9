"""Block norms, their duals and proximal operators of the group penalties (docs/math.md, "Solvers and certificates").

Blocks are stored as arrays of shape ``(d, P, c)``: ``P`` blocks of size ``d x c``.
For ``c == 1`` the penalty is the group lasso ``sum_i ||u_i||_2`` and its prox the group
soft-threshold ``u_i <- max(0, 1 - t / ||u_i||) u_i``; for ``c > 1`` it is the sum of nuclear
norms ``sum_i ||U_i||_*`` and the prox soft-thresholds the singular values of each block:
one batched ``eigh`` of the ``c x c`` Gram matrices when ``c < d`` (zero blocks skipped), else
one batched SVD over the ``P`` blocks.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BlockPenalty",
    "column_norms",
    "dual_norms",
    "gram_spectral",
    "penalty_norms",
    "prox_columns",
    "prox_penalty",
]


def penalty_norms(B: np.ndarray) -> np.ndarray:
    """Norms of the blocks of ``B`` (``d x P x c``): 2-norms (``c == 1``) or nuclear norms."""
    if B.shape[2] == 1:
        return np.sqrt(np.einsum("dp,dp->p", B[:, :, 0], B[:, :, 0], dtype=np.float64))
    return np.linalg.svd(np.transpose(B, (1, 0, 2)), compute_uv=False).sum(axis=-1).astype(np.float64)


def dual_norms(G: np.ndarray) -> np.ndarray:
    """Dual norms of the blocks of ``G``: 2-norms (``c == 1``) or spectral norms (``c > 1``)."""
    if G.shape[2] == 1:
        return np.sqrt(np.einsum("dp,dp->p", G[:, :, 0], G[:, :, 0], dtype=np.float64))
    return np.linalg.svd(np.transpose(G, (1, 0, 2)), compute_uv=False)[:, 0].astype(np.float64)


def prox_penalty(V: np.ndarray, t: float) -> tuple[np.ndarray, float]:
    """``prox_{t * sum ||.||}(V)`` blockwise, and the penalty ``sum ||.||`` of the result.

    Parameters
    ----------
    V : ndarray of shape (d, P, c)
    t : float
        Threshold ``step * lam`` (``>= 0``).

    Returns
    -------
    X : ndarray of shape (d, P, c)
        Group soft-threshold (``c == 1``) or singular-value soft-threshold (``c > 1``) of ``V``.
    penalty : float
        ``sum_i ||X_i||`` (2-norms or nuclear norms).
    """
    if V.shape[2] == 1:
        norms = np.sqrt(np.einsum("dp,dp->p", V[:, :, 0], V[:, :, 0]))
        shrunk = np.maximum(norms - V.dtype.type(t), 0)
        factor = shrunk / np.maximum(norms, np.finfo(V.dtype).tiny)
        X = V * factor[None, :, None]
        return X, float(shrunk.sum(dtype=np.float64))
    if V.shape[2] < V.shape[0]:
        out = _prox_nuclear_gram(V, t)
        if out is not None:
            return out
    Bt = np.transpose(V, (1, 0, 2))  # P x d x c
    Ul, s, Vt = np.linalg.svd(Bt, full_matrices=False)
    s_new = np.maximum(s - t, 0.0)
    Xt = np.matmul(Ul * s_new[:, None, :].astype(V.dtype), Vt)
    return np.ascontiguousarray(np.transpose(Xt, (1, 0, 2))), float(s_new.astype(np.float64).sum())


#: The Gram-matrix prox is used when the threshold is at least this fraction of the largest
#: singular value: the eigenvalues of ``B^T B`` carry an absolute error of about
#: ``eps ||B||^2``, so singular values below ``sqrt(eps) ||B||`` are inaccurate, and they must
#: all be thresholded to zero.
GRAM_MIN_THRESHOLD = 1e-6


def _prox_nuclear_gram(V: np.ndarray, t: float) -> tuple[np.ndarray, float] | None:
    """Singular-value soft-threshold of ``d x c`` blocks (``c < d``) through one batched
    ``eigh`` of the ``c x c`` Gram matrices ``V_i^T V_i = Q diag(s^2) Q^T``:
    ``prox(V_i) = V_i Q diag(max(s - t, 0) / s) Q^T``. The factor is in ``[0, 1]`` and zero for
    ``s <= t``, so small (inaccurate) singular values never reach the result; returns None (use
    the SVD) when ``t`` is below ``GRAM_MIN_THRESHOLD`` times the largest singular value, where
    they could."""
    Bt = np.transpose(V, (1, 0, 2))  # P x d x c
    # the Gram in float64 even for float32 blocks: formed in float32 its eigenvalues carry an
    # error of eps32 ||B||^2, and singular values up to sqrt(eps32) ||B|| ~ 3e-4 ||B|| (far above
    # GRAM_MIN_THRESHOLD) would be wrong by their own size
    B64 = Bt.astype(np.float64, copy=False)
    gram = np.matmul(np.transpose(B64, (0, 2, 1)), B64)
    w, Q = np.linalg.eigh(gram)
    s = np.sqrt(np.maximum(w, 0.0))
    smax = float(s.max(initial=0.0))
    if smax == 0.0:
        return np.zeros_like(V), 0.0
    if t < GRAM_MIN_THRESHOLD * smax:
        return None
    s_new = np.maximum(s - t, 0.0)
    f = np.where(s > t, s_new / np.maximum(s, np.finfo(np.float64).tiny), 0.0)
    live = f.any(axis=1)
    out = np.zeros_like(V)
    if live.any():
        Ql = Q[live]
        M = np.matmul(Ql * f[live][:, None, :], np.transpose(Ql, (0, 2, 1))).astype(V.dtype, copy=False)
        out[:, live, :] = np.transpose(np.matmul(Bt[live], M), (1, 0, 2))
    return out, float(s_new.sum())


def gram_spectral(G: np.ndarray, vectors: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Spectral norms and top right singular vectors of the ``d x c`` blocks of ``G`` (``d x P x c``).

    One batched ``eigh`` of the ``c x c`` Gram matrices ``G_i^T G_i`` (cheaper than ``P`` SVDs of
    ``d x c`` blocks when ``c < d``): ``||G_i||_2 = sqrt(lambda_max)``. The squared Gram matrix
    loses relative accuracy only in the *small* singular values; the largest one has relative
    error of the order of the machine epsilon.

    Returns
    -------
    sigma : ndarray of shape (P,)
        ``||G_i||_2`` (float64).
    v : ndarray of shape (P, c), or None
        Unit vectors with ``||G_i v_i|| = sigma_i`` (None with ``vectors=False``: eigenvalues
        only, half the time).
    """
    G = np.asarray(G, dtype=np.float64)
    # each block scaled by its largest entry: the squares neither underflow (blocks ~1e-160
    # had norm 0) nor overflow (~1e160 gave inf)
    m = np.abs(G).max(axis=(0, 2), initial=0.0)
    m = np.where(m > 0.0, m, 1.0)
    G = G / m[None, :, None]
    gram = np.einsum("dpc,dpe->pce", G, G, optimize=True)  # a batched GEMM (9x the plain loop)
    if not vectors:
        return m * np.sqrt(np.maximum(np.linalg.eigvalsh(gram)[:, -1], 0.0)), None
    w, V = np.linalg.eigh(gram)
    return m * np.sqrt(np.maximum(w[:, -1], 0.0)), V[:, :, -1]


def column_norms(B: np.ndarray) -> np.ndarray:
    """2-norms of the columns ``B[:, i, k]`` of ``d x P x c`` blocks, flattened to ``P c``."""
    return np.sqrt(np.einsum("dpc,dpc->pc", B, B, dtype=np.float64)).ravel()


def prox_columns(V: np.ndarray, t: float) -> tuple[np.ndarray, float]:
    """``prox_{t * sum_{i,k} ||.||}(V)``: group soft-threshold of every column ``V[:, i, k]``."""
    norms = np.sqrt(np.einsum("dpc,dpc->pc", V, V))
    shrunk = np.maximum(norms - V.dtype.type(t), 0)
    factor = shrunk / np.maximum(norms, np.finfo(V.dtype).tiny)
    return V * factor[None, :, :], float(shrunk.sum(dtype=np.float64))


class BlockPenalty:
    """The penalty of the native solvers: the library's :mod:`cvxnn.penalties` object for
    block norms and dual norms, with the dtype-preserving prox of the hot loop (which also
    returns the penalty of its result, so R-FISTA needs no second pass).

    ``kind="nuclear"`` is :class:`~cvxnn.penalties.GroupL2` for scalar output and
    :class:`~cvxnn.penalties.Nuclear` for vector output; ``kind="columnwise"`` is
    :class:`~cvxnn.penalties.Columnwise` (the one-vs-all program, identical to the group lasso
    for ``c == 1``).
    """

    KINDS = ("nuclear", "columnwise")

    def __init__(self, kind: str = "nuclear") -> None:
        if kind not in self.KINDS:
            raise ValueError(f"penalty must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        self._penalties = {}

    def _library(self, B: np.ndarray):
        from ..penalties import Columnwise, GroupL2, Nuclear

        c = B.shape[2]
        key = (self.kind, c == 1)
        if key not in self._penalties:
            self._penalties[key] = GroupL2() if c == 1 else (Columnwise() if self.kind == "columnwise" else Nuclear())
        return self._penalties[key]

    def norms(self, B: np.ndarray) -> np.ndarray:
        """Block norms (per pattern) in float64."""
        return self._library(B).block_norms(B)

    def dual_norms(self, G: np.ndarray) -> np.ndarray:
        """Dual norms (per pattern) in float64."""
        return self._library(G).dual_norm(G)

    def prox(self, V: np.ndarray, t: float) -> tuple[np.ndarray, float]:
        """``prox_{t * penalty}(V)`` in the dtype of ``V``, and the penalty of the result."""
        return prox_columns(V, t) if self.kind == "columnwise" else prox_penalty(V, t)
