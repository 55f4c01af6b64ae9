"""The implicit design ``A = [D_1 X, ..., D_p X]`` as matrix-free operators (MATH.md, "Convex programs").

Never forms the ``n x p d`` design:

* forward ``A u = sum_i D_i X u_i = rowsum(M * (X U))`` (one GEMM, ``U`` is ``d x p``);
* adjoint ``A^T r = [X^T D_i r]_i = X^T (M * r) = (X * r[:, None]).T @ M`` (one GEMM).

Vector output (``U`` of shape ``d x p x c``, ``R`` of shape ``n x c``) applies the same per output.
Work is chunked over rows so the ``n x p`` float temporary stays bounded.
"""

from __future__ import annotations

import numpy as np

__all__ = ["forward", "adjoint", "block_norms"]

#: Bytes of float temporaries allowed per chunk (``rows x p x c`` entries).
CHUNK_BYTES = 32 * 2**20


def _rows_per_chunk(n: int, width: int, itemsize: int) -> int:
    return max(1, min(n, CHUNK_BYTES // max(1, width * itemsize)))


def forward(Xa: np.ndarray, mask: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``sum_i D_i X_a U_i``: ``(n,)`` for ``U`` of shape ``(d, p)``, ``(n, c)`` for ``(d, p, c)``."""
    n = Xa.shape[0]
    if U.ndim == 2:
        d, p = U.shape
        out = np.empty(n, dtype=np.result_type(Xa, U))
        rows = _rows_per_chunk(n, p, out.itemsize)
        for s in range(0, n, rows):
            e = min(n, s + rows)
            Z = Xa[s:e] @ U
            out[s:e] = np.einsum("ij,ij->i", Z, mask[s:e], optimize=False) if Z.size else 0.0
        return out
    d, p, c = U.shape
    U2 = U.reshape(d, p * c)
    out = np.empty((n, c), dtype=np.result_type(Xa, U))
    rows = _rows_per_chunk(n, p * c, out.itemsize)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        Z = (Xa[s:e] @ U2).reshape(e - s, p, c)
        out[s:e] = np.einsum("ipc,ip->ic", Z, mask[s:e])
    return out


def adjoint(Xa: np.ndarray, mask: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``[X_a^T D_i r]_i``: ``(d, p)`` for ``r`` of shape ``(n,)``, ``(d, p, c)`` for ``(n, c)``."""
    if R.ndim == 1:
        return (Xa * R[:, None]).T @ mask.astype(Xa.dtype, copy=False)
    c = R.shape[1]
    Mf = mask.astype(Xa.dtype, copy=False)
    return np.stack([(Xa * R[:, k : k + 1]).T @ Mf for k in range(c)], axis=2)


def block_norms(U: np.ndarray) -> np.ndarray:
    """Group norms of the blocks ``U_i``: ``||u_i||_2`` (``U`` is ``d x p``) or the nuclear
    norm ``||U_i||_*`` (``U`` is ``d x p x c``). Returns ``(p,)``."""
    if U.ndim == 2:
        return np.linalg.norm(U, axis=0)
    return np.linalg.svd(np.transpose(U, (1, 0, 2)), compute_uv=False).sum(axis=-1)
