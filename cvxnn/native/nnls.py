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
an earlier solution (no support, or a projected-gradient point with many small positive
entries) SciPy's solver is faster; the working sets use it then.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

__all__ = ["nnls_batched_pg", "nnls_warm"]


def _ls(A: np.ndarray, b: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Least-squares solution on the columns ``P`` (minimum norm when rank deficient)."""
    return sla.lstsq(A[:, P], b, lapack_driver="gelsy", check_finite=False)[0]


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


def nnls_batched_pg(X: np.ndarray, S: np.ndarray, C: np.ndarray, R0: np.ndarray, *, lipschitz: float,
                    iterations: int, target: float = 0.0, check_every: int = 25,
                    min_progress: float = 0.05, min_rounds: int = 2,
                    dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Accelerated projected gradient on many NNLS problems of one family at once.

    Problem ``k`` is ``min_{rho >= 0} ||X^T (s_k * rho) - c_k||`` (``s_k`` a column of signs
    ``S``, ``c_k`` a column of ``C``): the KKT check of a block whose cone has rows ``s_k x_r``.
    All share the Lipschitz constant ``||X||_2^2``, so one iteration is two GEMMs for the whole
    batch. The caller only needs to know which residuals fall to ``target`` (blocks optimal
    at zero); those problems leave the batch, and after ``min_rounds`` rounds of
    ``check_every`` iterations the run stops at the first round that decides fewer than
    ``min_progress`` of the rest. The caller
    solves the remaining problems exactly.

    Parameters
    ----------
    X : ndarray (n, d)
    S : ndarray (n, k)
        Signs of the cone rows of each problem.
    C : ndarray (d, k)
    R0 : ndarray (n, k)
        Starting points (``>= 0``).
    lipschitz : float
        ``||X||_2^2``.
    iterations : int
        Cap on iterations.
    target : float
        Residual at which a problem is decided.
    check_every, min_progress, min_rounds
        The stopping rule above.
    dtype : numpy float type
        Precision of the iterations (``np.float32``: GEMMs at twice the speed). The returned
        residuals are always recomputed in float64 for the returned points, so they are exact
        upper bounds whatever the precision of the search.

    Returns
    -------
    R : ndarray (n, k)
        The best point found for each problem (``>= 0``).
    residual : ndarray (k,)
        Its residual norm.
    """
    X64, S64, C64 = X, S, C
    best = np.maximum(np.asarray(R0, dtype=np.float64), 0.0)
    best_res = np.linalg.norm(X.T @ (S * best) - C, axis=0)
    live0 = best_res > target
    live = np.flatnonzero(live0)
    # problems are rows (k x n, contiguous): gathers of the live problems are contiguous, and
    # every n x k pass of an iteration runs in place in preallocated buffers
    X = np.asarray(X, dtype=dtype)
    XT = np.ascontiguousarray(X.T)
    St_all = np.ascontiguousarray(np.asarray(S, dtype=dtype).T)
    Ct_all = np.ascontiguousarray(np.asarray(C, dtype=dtype).T)
    best_t = np.ascontiguousarray(best.T, dtype=dtype)
    step = 1.0 / max(float(lipschitz), np.finfo(float).tiny)
    k = rounds = 0
    while live.size and k < iterations:
        St, Ct = St_all[live], Ct_all[live]
        Rt = best_t[live]
        Yt = Rt.copy()
        Gt = np.empty_like(Rt)
        Tt = np.empty_like(Rt)
        # the residual of the extrapolated point is the same combination of the residuals of the
        # last two iterates: two GEMMs per iteration (the gradient's and the residual's)
        ER = (St * Rt) @ X - Ct
        EY = ER.copy()
        t = 1.0
        start = live.size
        for _ in range(min(check_every, iterations - k)):
            np.matmul(EY, XT, out=Gt)
            Gt *= St
            Gt *= -step
            Gt += Yt
            np.maximum(Gt, 0.0, out=Gt)  # the new iterate
            np.multiply(St, Gt, out=Tt)
            ER_new = Tt @ X
            ER_new -= Ct
            res = np.sqrt(np.einsum("kd,kd->k", ER_new, ER_new))
            better = res < best_res[live]
            if better.any():
                best_t[live[better]] = Gt[better]
                best_res[live[better]] = res[better]
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_new
            np.subtract(Gt, Rt, out=Yt)  # Y = G + beta (G - R)
            Yt *= beta
            Yt += Gt
            EY = ER_new + beta * (ER_new - ER)
            Rt, Gt = Gt, Rt
            ER, t = ER_new, t_new
            k += 1
        live = live[best_res[live] > target]
        rounds += 1
        if rounds >= min_rounds and start - live.size < min_progress * start:
            break
    best = np.maximum(best_t.T.astype(np.float64), 0.0)
    if dtype is not np.float64:
        moved = np.flatnonzero(live0)
        best_res[moved] = np.linalg.norm(X64.T @ (S64[:, moved] * best[:, moved]) - C64[:, moved], axis=0)
    return best, best_res
