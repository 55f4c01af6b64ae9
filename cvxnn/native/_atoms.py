"""Rank-one atoms of C-GReLU blocks: ``U_i = sum_{j: blk[j] = i} a_j b_j^T``, and the balanced
minimal atoms of given blocks (shared by the gated working set and the subspace polish)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DROP_RTOL", "Atoms", "atoms_from_blocks", "atoms_penalty", "blocks_from_atoms"]

#: A singular value of a re-factored block below this fraction of the largest one is dropped.
DROP_RTOL = 1e-9


@dataclass
class Atoms:
    """Rank-one atoms of C-GReLU blocks: ``U_i = sum_{j: blk[j] = i} A[:, j] B[j]^T``.

    Attributes
    ----------
    blk : ndarray of int, shape (R,)
        Block (pattern) of each atom.
    A : ndarray of shape (d, R)
        Input factors ``a_j``.
    B : ndarray of shape (R, c)
        Output factors ``b_j``.
    col : ndarray of int, shape (R,), or None
        One-vs-all penalty: the output column ``k`` of each atom (``b_j = beta_j e_k``).
    """

    blk: np.ndarray
    A: np.ndarray
    B: np.ndarray
    col: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.blk.size)


def _levels(blk: np.ndarray) -> list[np.ndarray]:
    """Atom indices by level: level ``k`` holds the ``k``-th atom of every block that has more
    than ``k`` (so the blocks within one level are distinct)."""
    order = np.argsort(blk, kind="stable")
    b = blk[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    level = np.arange(b.size) - np.repeat(starts, np.diff(np.r_[starts, b.size]))
    return [order[level == k] for k in range(int(level.max(initial=-1)) + 1)]


def blocks_from_atoms(atoms: Atoms, d: int, p: int, c: int) -> np.ndarray:
    """The blocks ``U`` (``d x p x c``, float64) of a set of atoms."""
    U = np.zeros((d, p, c))
    if atoms.size:
        # one fancy-indexed update per level (distinct blocks), not an unbuffered np.add.at
        for sel in _levels(atoms.blk):
            U[:, atoms.blk[sel], :] += atoms.A[:, sel, None] * atoms.B[None, sel, :]
    return U


def atoms_penalty(atoms: Atoms, columnwise: bool = False) -> float:
    """The penalty ``sum_i ||U_i||`` of the blocks of ``atoms`` (nuclear norms; for scalar output
    and the one-vs-all penalty, where every atom spans its own block or column, the norms of the
    atoms), from the factors: a block of ``r`` atoms ``U_i = A_i B_i^T`` has the singular values of
    ``R_A R_B^T`` (``A_i = Q_A R_A``, ``B_i = Q_B R_B``), ``||a|| ||b||`` when ``r = 1``.

    The atoms must be as the working set keeps them: at most one per block when ``c == 1``, one per
    block and column for the one-vs-all penalty."""
    if atoms.size == 0:
        return 0.0
    na = np.sqrt(np.einsum("dr,dr->r", atoms.A, atoms.A))
    nb = np.sqrt(np.einsum("rc,rc->r", atoms.B, atoms.B))
    if columnwise or atoms.B.shape[1] == 1:
        return float(na @ nb)
    counts = np.bincount(atoms.blk)
    single = counts[atoms.blk] == 1
    total = float(na[single] @ nb[single])
    order = np.argsort(atoms.blk, kind="stable")
    sorted_blk = atoms.blk[order]
    for r in np.unique(counts[counts > 1]):  # blocks of r atoms: one batched QR and SVD
        bs = np.flatnonzero(counts == r)
        at = order[np.searchsorted(sorted_blk, bs)[:, None] + np.arange(r)]  # blocks x r
        RA = np.linalg.qr(np.transpose(atoms.A[:, at], (1, 0, 2)), mode="r")
        RB = np.linalg.qr(np.transpose(atoms.B[at], (0, 2, 1)), mode="r")
        total += float(np.linalg.svd(RA @ np.transpose(RB, (0, 2, 1)), compute_uv=False).sum())
    return total


def atoms_from_blocks(U: np.ndarray, columnwise: bool = False, rtol: float = DROP_RTOL) -> Atoms:
    """Balanced minimal atoms of the blocks ``U`` (``d x p x c``).

    Nuclear norm (``c > 1``): the SVD of every non-zero block, ``a = sqrt(s) u``, ``b = sqrt(s) v``,
    dropping singular values below ``rtol`` times the largest of all blocks. Scalar output: one atom
    ``(u_i / sqrt||u_i||, sqrt||u_i||)`` per non-zero block. One-vs-all (``columnwise``): one atom per
    non-zero column. The penalty ``lam/2 sum (||a||^2 + ||b||^2)`` of the result equals the penalty of
    ``U`` (up to the dropped values).
    """
    U = np.asarray(U, dtype=np.float64)
    d, p, c = U.shape
    if c == 1 or columnwise:
        nrm = np.sqrt(np.einsum("dpc,dpc->pc", U, U))  # p x c
        keep = nrm > rtol * nrm.max(initial=0.0)
        blk, col = np.nonzero(keep)
        s = np.sqrt(nrm[blk, col])
        A = U[:, blk, col] / s
        B = np.zeros((blk.size, c))
        B[np.arange(blk.size), col] = s
        return Atoms(blk=blk.astype(np.intp), A=A, B=B, col=col.astype(np.intp) if columnwise else None)
    active = np.flatnonzero(np.abs(U).max(axis=(0, 2)) > 0)
    if active.size == 0:
        return Atoms(blk=np.zeros(0, np.intp), A=np.zeros((d, 0)), B=np.zeros((0, c)))
    L, s, Rt = np.linalg.svd(np.transpose(U[:, active, :], (1, 0, 2)), full_matrices=False)
    keep = s > rtol * s.max()
    bi, ki = np.nonzero(keep)
    root = np.sqrt(s[bi, ki])
    A = (L[bi, :, ki] * root[:, None]).T
    B = Rt[bi, ki, :] * root[:, None]
    return Atoms(blk=active[bi].astype(np.intp), A=np.ascontiguousarray(A), B=B)
