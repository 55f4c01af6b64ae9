"""Warm-started non-negative least squares for the KKT checks of the C-ReLU working sets.

The KKT check of a block ``b`` of pattern ``i`` (:mod:`cvxnn.native.working_set`) solves

    min_{rho >= 0} || A rho - c ||,     A = Xt_i^T   (d x n, one column per sample)

for every block that the cheap bounds leave undecided, once per working-set round. The
problems of successive rounds differ only in ``c`` (the residual moves a little), and their
solutions have at most ``d`` positive entries (the rows on the face of the cone), so the
previous solution's support is an excellent first guess. :func:`nnls_warm` is the
Lawson-Hanson active-set method started from that support: least-squares solves on the
support (at most ``d`` columns), negative entries removed by the usual interpolation step,
then the standard outer loop adds the column of largest gradient until the KKT conditions of
the NNLS hold. From a good support it ends after a few ``d x |P|`` solves instead of
rebuilding the support one column at a time from zero (measured on a cone of 1257 samples in
65 dimensions: 0.6 ms from the previous support against 18 ms for SciPy's cold solve). Without
a support SciPy's solver is faster; the working sets use it then.
"""

from __future__ import annotations

import numpy as np

__all__ = ["nnls_warm"]


def _ls(A: np.ndarray, b: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Least-squares solution on the columns ``P`` (minimum norm when rank deficient)."""
    return np.linalg.lstsq(A[:, P], b, rcond=None)[0]


def nnls_warm(A: np.ndarray, b: np.ndarray, x0: np.ndarray | None = None, *,
              max_iter: int | None = None, tol: float | None = None) -> tuple[np.ndarray, float]:
    """Solve ``min_{x >= 0} ||A x - b||`` by Lawson-Hanson from the support of ``x0``.

    Parameters
    ----------
    A : ndarray (m, n)
    b : ndarray (m,)
    x0 : ndarray (n,), optional
        A previous solution; its positive entries are the starting support.
    max_iter : int, optional
        Cap on outer iterations (default ``3 n``).
    tol : float, optional
        Optimality tolerance on the gradient ``A^T (b - A x)`` of the zero entries (default
        ``1e-12 * max(1, ||A||_F ||b||)``).

    Returns
    -------
    x : ndarray (n,)
        The solution (exactly zero off its support).
    residual : float
        ``||A x - b||``.
    """
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m, n = A.shape
    if max_iter is None:
        max_iter = 3 * n
    if tol is None:
        tol = 1e-12 * max(1.0, float(np.linalg.norm(A)) * float(np.linalg.norm(b)))
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    if x0 is not None:
        passive = np.asarray(x0) > 0
        # at most m columns can be linearly independent: keep the largest
        if passive.sum() > m:
            keep = np.argsort(-np.asarray(x0))[:m]
            passive = np.zeros(n, dtype=bool)
            passive[keep] = True
        # the least-squares solution on the support, shrunk until it is positive
        while passive.any():
            P = np.flatnonzero(passive)
            z = _ls(A, b, P)
            if np.all(z > 0):
                x[P] = z
                break
            passive[P[z <= 0]] = False
    for _ in range(max_iter):
        w = A.T @ (b - A @ x)
        w[passive] = -np.inf
        j = int(np.argmax(w))
        if w[j] <= tol:
            break
        passive[j] = True
        x_before = x.copy()
        while True:  # inner loop: keep x feasible
            P = np.flatnonzero(passive)
            z = _ls(A, b, P)
            if np.all(z > 0):
                x[:] = 0.0
                x[P] = z
                break
            neg = z <= 0
            xP = x[P]
            ratio = xP[neg] / np.maximum(xP[neg] - z[neg], np.finfo(float).tiny)
            alpha = float(np.min(ratio)) if ratio.size else 0.0
            xP = xP + alpha * (z - xP)
            blocking = np.zeros(P.size, dtype=bool)
            blocking[np.flatnonzero(neg)[ratio <= alpha]] = True
            drop = (xP <= 1e-15 * max(1.0, float(np.abs(xP).max(initial=0.0)))) | blocking
            xP[drop] = 0.0
            x[:] = 0.0
            x[P] = xP
            passive[P[drop]] = False
            if not passive.any():
                break
        if not passive[j] and np.array_equal(x, x_before):
            break  # the entering column cannot move at this precision: optimal to rounding
    x = np.maximum(x, 0.0)
    return x, float(np.linalg.norm(A @ x - b))
