"""Warm-started non-negative least squares for the KKT checks of the C-ReLU working sets
(public as :mod:`cvxnn.native.nnls`; it lives here, below the solver packages, because
:func:`cvxnn.path.lam_max` bounds its NNLS problems with :func:`nnls_batched_admm` too).

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
an earlier solution SciPy's solver is faster; the working sets use it then.

:func:`nnls_batched_admm` runs ADMM on the NNLS problems of all undecided blocks of a scan at
once, to decide most of them without an exact solve; its multipliers are sparse, and
Lawson-Hanson from their ``d`` largest entries beats a cold solve.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .errors import InvalidParameterError, NonFiniteError, ShapeError

__all__ = ["nnls_batched_admm", "nnls_warm"]


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
        ``1e-12 ||A||_F ||b||``).

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
        tol = 1e-12 * float(np.linalg.norm(A)) * float(np.linalg.norm(b))  # relative: data of any scale
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


def nnls_batched_admm(X: np.ndarray, S: np.ndarray, C: np.ndarray, R0: np.ndarray, *, iterations: int,
                      target: float = 0.0, rho_scale: float = 10.0, relax: float = 1.0, check_every: int = 25,
                      min_progress: float = 0.05, min_rounds: int = 2,
                      dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """ADMM on many NNLS problems of one family at once, through their dual projections.

    Problem ``k`` is ``min_{rho >= 0} ||X^T (s_k * rho) - c_k||`` (``s_k`` a column of signs
    ``S``, ``c_k`` a column of ``C``): the KKT check of a block whose cone has rows ``s_k x_r``.
    Its dual is the projection of ``v_k = -c_k`` onto the cone ``K_k = {u : B_k u >= 0}``,
    ``B_k = diag(s_k) X``, whose multipliers are ``rho``; ADMM splits ``z = B_k u >= 0``:

        u <- (I + r B_k^T B_k)^{-1} (v_k + r B_k^T (z - w)),
        z <- max(B_k u + w, 0),   w <- w + B_k u - z,

    and ``rho = -r w`` (``w <= 0`` after every update, and zero on the rows where
    ``B_k u + w > 0``: the multipliers are sparse, which suits the warm-started Lawson-Hanson
    solve that may follow). Because ``s_k`` is a vector of signs, ``B_k^T B_k = X^T X`` for
    *every* problem: one ``d x d`` inverse serves them all, and an iteration is two GEMMs for
    the whole batch, as for the projected gradient. The u-step solves the coupling of the rows
    exactly, so the iteration does not depend on the conditioning of ``X`` as the projected
    gradient does (step ``1 / ||X||_2^2``): on the first full KKT scan of a ``load_digits`` fit
    (1917 problems, ``n = 1257``, ``d = 65``; ``rho_scale=10``, ``relax=1.6``, float32, the
    stopping rule below) it left 84 problems above ``target`` (79 of them truly above it) in
    0.51 s, where an accelerated projected gradient (200 iterations, the same rule) left 215
    in 1.39 s.

    ``r = rho_scale / mean(eig(X^T X))``. The caller only needs to know which residuals fall to
    ``target``: those problems leave the batch, and after ``min_rounds`` rounds of
    ``check_every`` iterations the run stops at the first round that decides fewer than
    ``min_progress`` of the rest. With ``dtype=np.float32`` the iterations are a search only:
    every returned residual is recomputed in float64 for the returned point, so it is an exact
    upper bound of the problem's NNLS residual.

    Parameters
    ----------
    X : ndarray (n, d)
    S : ndarray (n, k)
        Signs of the cone rows of each problem.
    C : ndarray (d, k)
    R0 : ndarray (n, k)
        Starting multipliers (``>= 0``); the ADMM state starts at ``w = -R0 / r`` and the
        matching ``z``.
    iterations : int
        Cap on iterations.
    target : float
        Residual at which a problem is decided (it leaves the batch).
    rho_scale : float
        The penalty parameter, relative to the mean eigenvalue of ``X^T X``.
    relax : float
        Over-relaxation (``1``: none; ``B u`` is replaced by ``relax B u + (1 - relax) z``).
    check_every, min_progress, min_rounds
        The stopping rule above.
    dtype : numpy float type
        Precision of the iterations.

    Returns
    -------
    R : ndarray (n, k)
        The best multipliers found for each problem (``>= 0``).
    residual : ndarray (k,)
        Its residual norm (float64).

    Raises
    ------
    ShapeError
        The shapes of ``X``, ``S``, ``C`` and ``R0`` do not agree.
    NonFiniteError
        An input holds NaN or infinite entries.
    InvalidParameterError
        ``iterations < 0``, ``rho_scale <= 0``, ``relax`` outside ``(0, 2)``, or
        ``check_every < 1``.
    """
    X64, S64, C64 = np.asarray(X, dtype=np.float64), np.asarray(S, dtype=np.float64), np.asarray(C, dtype=np.float64)
    R0 = np.asarray(R0, dtype=np.float64)
    if X64.ndim != 2 or S64.ndim != 2 or C64.ndim != 2 or R0.ndim != 2:
        raise ShapeError("X, S, C and R0 must be 2-D arrays, got "
                         f"{X64.shape}, {S64.shape}, {C64.shape} and {R0.shape}.")
    n, d = X64.shape
    if S64.shape[0] != n or C64.shape != (d, S64.shape[1]) or R0.shape != S64.shape:
        raise ShapeError(f"with X of shape {(n, d)}, S and R0 must be (n, k) and C (d, k); got S {S64.shape}, "
                         f"C {C64.shape}, R0 {R0.shape}.")
    for name, arr in (("X", X64), ("S", S64), ("C", C64), ("R0", R0)):
        if not np.all(np.isfinite(arr)):
            raise NonFiniteError(f"{name} contains NaN or infinite entries.")
    if int(iterations) < 0:
        raise InvalidParameterError(f"iterations must be non-negative, got {iterations}.")
    if not float(rho_scale) > 0.0:
        raise InvalidParameterError(f"rho_scale must be positive, got {rho_scale}.")
    if not 0.0 < float(relax) < 2.0:
        raise InvalidParameterError(f"relax must lie in (0, 2), got {relax}.")
    if int(check_every) < 1:
        raise InvalidParameterError(f"check_every must be at least 1, got {check_every}.")
    best = np.maximum(R0, 0.0)
    best_res = np.linalg.norm(X64.T @ (S64 * best) - C64, axis=0)
    live = np.flatnonzero(best_res > target)
    if live.size == 0 or iterations <= 0:
        return best, best_res
    ev, Q = np.linalg.eigh(X64.T @ X64)
    ev = np.maximum(ev, 0.0)
    if not float(ev.max(initial=0.0)) > 0.0:
        return best, best_res  # X = 0 (or no rows): no multiplier changes a residual
    r = float(rho_scale) / float(ev.mean())
    Minv = np.asarray((Q / (1.0 + r * ev)) @ Q.T, dtype=dtype)  # (I + r X^T X)^{-1}, symmetric
    # problems are rows (k x n, contiguous): gathers of the live problems are contiguous
    Xf = np.asarray(X64, dtype=dtype)
    XT = np.ascontiguousarray(Xf.T)
    St_all = np.ascontiguousarray(S64.T, dtype=dtype)
    Vt_all = np.ascontiguousarray(-C64.T, dtype=dtype)
    Wt_all = np.ascontiguousarray(-best.T / r, dtype=dtype)
    # the z matching the starting multipliers: z = max(B u0 + w, 0) at u0 = v + B^T rho0
    U0 = Vt_all[live] + ((St_all[live] * -r * Wt_all[live]) @ Xf)
    Zt_all = np.zeros_like(Wt_all)
    Zt_all[live] = np.maximum(St_all[live] * (U0 @ XT) + Wt_all[live], 0.0)
    moved = np.zeros(best.shape[1], dtype=bool)
    k = rounds = 0
    relax = float(relax)
    while live.size and k < iterations:
        St, Vt = St_all[live], Vt_all[live]
        Zt, Wt = Zt_all[live], Wt_all[live]
        start = live.size
        for _ in range(min(check_every, iterations - k)):
            Ut = (Vt + r * ((St * (Zt - Wt)) @ Xf)) @ Minv
            BU = St * (Ut @ XT)
            if relax != 1.0:
                BU *= relax
                BU += (1.0 - relax) * Zt
            BU += Wt  # B u + w
            Zt = np.maximum(BU, 0.0)
            Wt = np.minimum(BU, 0.0)  # w + B u - z
            k += 1
        Zt_all[live], Wt_all[live] = Zt, Wt
        Rt = -r * Wt
        E = (St * Rt) @ Xf + Vt  # the residuals X^T (s * rho) - c
        res = np.sqrt(np.einsum("kd,kd->k", E, E))
        better = res < best_res[live]
        if better.any():
            idx = live[better]
            best[:, idx] = Rt[better].T.astype(np.float64)
            best_res[idx] = res[better]
            moved[idx] = True
        live = live[best_res[live] > target]
        rounds += 1
        if rounds >= min_rounds and start - live.size < min_progress * start:
            break
    best = np.maximum(best, 0.0)
    if dtype is not np.float64 and moved.any():
        idx = np.flatnonzero(moved)
        best_res[idx] = np.linalg.norm(X64.T @ (S64[:, idx] * best[:, idx]) - C64[:, idx], axis=0)
    return best, best_res
