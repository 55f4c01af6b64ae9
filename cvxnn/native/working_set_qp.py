"""Working-set interior-point solver for scalar-output C-ReLU with a quadratic loss.

The restricted programs of a quadratic loss are quadratic programs with second-order and
linear cones, which Clarabel solves directly (no CVXPY compile) with cone rows generated as
needed. For other losses (and the one-vs-all vector program) :mod:`cvxnn.native.working_set`
runs a barrier method with the loss's Hessian instead; both share the KKT check and the
certificate.

C-ReLU optima are sparse: only a few of the ``2p`` blocks ``v_i, w_i`` are non-zero. This
solver keeps a *working set* ``W`` of blocks and alternates

1. an interior-point solve of C-ReLU restricted to ``W`` (Clarabel's primal-dual method
   called directly on the conic program, no CVXPY compilation), and
2. a KKT check of every block outside ``W`` at the restricted optimum; blocks that violate it
   join ``W``.

It stops when no block violates the KKT conditions and the certified relative duality gap of
the *full* problem (:func:`~cvxnn.native.certificates.relu_certificate`, with the interior
point's cone multipliers on ``W`` and NNLS multipliers elsewhere) is below ``tol``.

Restricted program (block ``j`` of pattern ``i(j)`` with sign ``s_j = +1`` for ``v`` and
``-1`` for ``w``; ``Xt_i = (2 D_i - I) X``; ``A_W = [s_j D_i X]_{j in W}``)::

    min  scale/2 ||A_W u - y||^2 + lam sum_j t_j   s.t.  Xt_i u_j >= 0,  ||u_j|| <= t_j

KKT check of a block ``j`` outside ``W`` (``u_j = 0``). In the notation of ``docs/math.md``,
"Notation", the residual is ``r = -grad h(z)`` (the code's ``theta`` is the dual point
``nu = grad h(z) = -r``) and the block correlation is ``c_j = s_j X^T D_i r``; zero is optimal
for the block iff

    dist(-c_j, K_i^*) = min_{rho >= 0} || c_j + Xt_i^T rho || <= lam

(``K_i^*`` is the dual cone of ``K_i = {u : Xt_i u >= 0}``). Cheap bounds decide most blocks
without solving this NNLS: any ``rho >= 0`` gives the upper bound ``||c_j + Xt_i^T rho||``
(the previous multipliers, or zero), and the gate ``g_i`` (a point of ``K_i``) gives the lower
bound ``<c_j, g_i> / ||g_i||``.

Cost per round: one conic solve with ``|W| (d + 1)`` variables and ``|W| n`` linear cone rows
(``|W| n d`` non-zeros), one GEMM for the correlations and a few NNLS. Memory is checked
against the budget before the conic program is formed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import callback_stops
from ..errors import ShapeError
from ..operators import default_memory_budget
from ._losses import SmoothKernel
from .certificates import relu_certificate
from .working_set import KKTScan, WorkingSetResult, check_working_set_memory

__all__ = ["solve_relu_working_set_qp", "working_set_bytes_qp"]

logger = logging.getLogger(__name__)

#: Default cap on ``|W| d`` (the interior point factorises a dense ``|W| d`` Gram block).
MAX_VARS = 4000
#: Blocks added per round: at least this many, at most the current working-set size.
MIN_ADD = 8
#: Cone-row generation: rows per block in the first conic solve (times d), rows added per block
#: and cut (times d), violation threshold (relative to the largest |X u|), cap on cuts.
ROWS0 = 8
CUT_ADD = 4
CUT_TOL = 1e-10
MAX_CUTS = 30
#: Blocks below this fraction of the largest block norm are set to exactly zero.
ZERO_BLOCK = 1e-9
#: Cap on working-set rounds.
MAX_ROUNDS = 50
#: Blocks in the first working set (from the KKT scan at zero or the warm start's support).
FIRST_ADD = 16
#: Tolerance of the restricted interior-point solves relative to ``tol`` (the certificate of
#: the full problem is computed from their multipliers), clipped to [1e-12, 1e-8].
INNER_FRACTION = 1e-3


def working_set_bytes_qp(n: int, d: int, k: int) -> int:
    """Approximate bytes of one restricted conic program with ``k`` blocks (matrix and solver
    workspace: about four copies of the ``k n d`` non-zeros plus the dense ``(k d)^2`` Gram)."""
    return 4 * 16 * k * n * d + 3 * 8 * (k * d) ** 2


class _Restricted:
    """C-ReLU restricted to the blocks ``blocks``: the quadratic part (dense Gram, formed once)
    and the cone rows, of which only a subset ``rows[j]`` per block enters each conic solve."""

    def __init__(self, Xa, M, S, y, blocks, lam, scale):
        n, d = Xa.shape
        p = M.shape[1]
        self.Xa, self.n, self.d = Xa, n, d
        self.blocks = blocks
        self.k = k = len(blocks)
        pat = blocks % p
        self.Mw = M[:, pat] * np.where(blocks < p, 1.0, -1.0)  # n x k prediction weights
        self.Sw = np.ascontiguousarray(S[:, pat])  # n x k cone signs
        kd = k * d
        # dense Gram of the restricted design, in row chunks (never the n x kd design at once)
        G = np.zeros((kd, kd))
        Aty = np.zeros(kd)
        chunk = max(1, int(32 * 2**20 // (8 * max(kd, 1))))
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            A = (self.Mw[a:b, :, None] * Xa[a:b, None, :]).reshape(b - a, kd)
            G += A.T @ A
            Aty += A.T @ y[a:b]
        self.nv = kd + k
        self.P = sp.csc_matrix(np.triu(np.pad(scale * G, ((0, k), (0, k)))))
        self.q = np.concatenate([-scale * Aty, np.full(k, lam)])
        # second-order cones: -(t_j, u_j) + s = 0, s in Q^{d+1}
        soc_cols = np.empty((k, d + 1), dtype=np.intp)
        soc_cols[:, 0] = kd + np.arange(k)
        soc_cols[:, 1:] = np.arange(kd).reshape(k, d)
        self.soc = sp.csc_matrix((-np.ones(k * (d + 1)), (np.arange(k * (d + 1)), soc_cols.ravel())),
                                 shape=(k * (d + 1), self.nv))

    def solve(self, rows, tol):
        """One conic solve with the cone rows ``rows`` (a list of index arrays, one per block)."""
        import clarabel

        d, k = self.d, self.k
        counts = np.array([r.size for r in rows])
        r_all = np.concatenate(rows)
        b_all = np.repeat(np.arange(k), counts)
        m = int(counts.sum())
        # -(Xt_i u_j)_r + s = 0, s >= 0
        vals = -(self.Sw[r_all, b_all][:, None] * self.Xa[r_all])  # m x d
        cols = b_all[:, None] * d + np.arange(d)[None, :]
        lin = sp.csc_matrix((vals.ravel(), (np.repeat(np.arange(m), d), cols.ravel())), shape=(m, self.nv))
        A = sp.vstack([lin, self.soc], format="csc")
        cones = [clarabel.NonnegativeConeT(m)] + [clarabel.SecondOrderConeT(d + 1)] * k
        st = clarabel.DefaultSettings()
        st.verbose = False
        st.tol_gap_abs = tol
        st.tol_gap_rel = tol
        st.tol_feas = tol
        st.max_threads = 1
        sol = clarabel.DefaultSolver(self.P, self.q, A, np.zeros(A.shape[0]), cones, st).solve()
        x = np.asarray(sol.x)
        U = x[: k * d].reshape(k, d).T.copy()
        rho = np.zeros((self.n, k))
        rho[r_all, b_all] = np.maximum(np.asarray(sol.z)[:m], 0.0)
        return U, rho, int(sol.iterations), str(sol.status)


def _solve_restricted(R: _Restricted, rows, tol, *, max_cuts=MAX_CUTS):
    """Interior point on the restricted program with cone-row generation.

    Only the rows ``rows[j]`` of each block's cone enter the conic solve; after each solve every
    row is checked (one ``n x k`` GEMM) and the most violated ones join, until none is
    violated. Rows left out get zero multipliers, which keeps the certificate valid. Returns
    ``(U, rho, iterations, status, cuts, rows)``."""
    n, d, k = R.n, R.d, R.k
    total = 0
    status = "Unsolved"
    U = np.zeros((d, k))
    rho = np.zeros((n, k))
    for cut in range(max_cuts + 1):
        if cut == max_cuts:  # give up generating: all rows
            rows = [np.arange(n) for _ in range(k)]
        U, rho, its, status = R.solve(rows, tol)
        total += its
        if status not in ("Solved", "AlmostSolved") or not np.all(np.isfinite(U)):
            return U, rho, total, status, cut, rows
        Z = R.Xa @ U
        slack = R.Sw * Z
        thr = -CUT_TOL * float(np.abs(Z).max(initial=0.0))  # relative: data of any scale
        new_rows = []
        added = 0
        for j in range(k):
            viol = np.flatnonzero(slack[:, j] < thr)
            if viol.size:
                viol = np.setdiff1d(viol, rows[j], assume_unique=False)
            if viol.size:
                viol = viol[np.argsort(slack[viol, j])[: CUT_ADD * d]]
                added += viol.size
                new_rows.append(np.union1d(rows[j], viol))
            else:
                new_rows.append(rows[j])
        rows = new_rows
        if added == 0:
            return U, rho, total, status, cut, rows
    return U, rho, total, status, max_cuts, rows


def _initial_rows(Xa, S, rn, block, direction, rho_prev, m0):
    """Cone rows to start a block with: the support of its previous multipliers and the ``m0``
    rows with the smallest normalised slack along ``direction`` (a point of the cone)."""
    p = S.shape[1]
    i = block % p
    parts = []
    if rho_prev is not None:
        parts.append(np.flatnonzero(rho_prev > 0))
    if direction is not None and np.any(direction):
        sl = S[:, i] * (Xa @ direction) / rn
        m0 = min(m0, sl.size)
        parts.append(np.argpartition(sl, m0 - 1)[:m0])
    if not parts:
        return np.arange(Xa.shape[0])
    return np.unique(np.concatenate(parts))


def solve_relu_working_set_qp(
    Xa: np.ndarray,
    mask: np.ndarray,
    kernel: SmoothKernel,
    lam: float,
    *,
    gates: np.ndarray | None = None,
    tol: float = 1e-6,
    feas_tol: float = 1e-6,
    max_iter: int = 10_000,
    T0: np.ndarray | None = None,
    max_vars: int | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    memory_budget: int | None = None,
) -> WorkingSetResult:
    """Working-set interior-point method for scalar-output C-ReLU with a quadratic loss.

    Parameters
    ----------
    Xa : ndarray (n, d)
        Design (float64).
    mask : ndarray of bool (n, p)
    kernel : SmoothKernel
        Scalar-output squared-loss kernel (float64).
    lam : float
    gates : ndarray (d, p), optional
        Gates of the patterns (used for the cheap lower bound of the KKT check).
    tol : float
        Relative duality-gap tolerance of the certificate of the full problem.
    feas_tol : float
        Cone-violation tolerance (the interior point is feasible to about 1e-10).
    max_iter : int
        Limit on the total number of interior-point iterations.
    T0 : ndarray (d, 2p, 1), optional
        A previous point (warm start); its non-zero blocks seed the working set.
    max_vars : int, optional
        Cap on ``|W| d`` (default :data:`MAX_VARS`); past it the solver stops with
        ``reason="working_set_too_large"``.
    callback : callable, optional
        Called after every round with a dict (``iteration`` (the round), ``objective``,
        ``dual``, ``gap``, ``rel_gap``, ``violation``, ``working_set``, ``violators``);
        returning True stops.
    memory_budget : int, optional
        Bytes allowed (default: half the physical memory).

    Returns
    -------
    WorkingSetResult
    """
    max_vars = MAX_VARS if max_vars is None else int(max_vars)
    if not kernel.loss.quadratic or kernel.y64.shape[1] != 1:
        raise ValueError("the QP working-set solver is for scalar output with a quadratic loss")
    Xa = np.ascontiguousarray(Xa, dtype=np.float64)
    n, d = Xa.shape
    p = mask.shape[1]
    lam = float(lam)
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    check_working_set_memory(n, d, p, 1, budget)
    M = mask.astype(np.float64)
    S = 2.0 * M - 1.0
    y = kernel.y64[:, 0]
    scale = kernel.scale
    scanner = KKTScan(Xa, M, lam, 1, gates)
    Gn = scanner.gates
    in_cone = None if Gn is None else scanner.lb_ok[:p]
    rho_out = scanner.rho_out
    counters = scanner.counters
    rn = np.maximum(np.linalg.norm(Xa, axis=1), np.finfo(float).tiny)
    cand_dir = scanner.directions  # steepest feasible direction -(c_j - Xt_i^T rho_j) from the NNLS
    prev: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # block -> (u_j, rho_j) of the last round

    def kkt_scan(theta: np.ndarray, in_W: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        return scanner.scan(theta, in_W, want)

    in_W = np.zeros(2 * p, dtype=bool)
    if T0 is not None and np.asarray(T0).size != d * 2 * p:
        raise ShapeError(f"T0 must have shape {(d, 2 * p, 1)} (the blocks [V, W]), got {np.shape(T0)}.")
    if T0 is not None:
        in_W |= np.linalg.norm(np.asarray(T0).reshape(d, 2 * p, -1), axis=(0, 2)) > 0
    T = np.zeros((d, 2 * p, 1))
    rho_W = np.zeros((n, 0))
    theta = kernel.grad(np.zeros((n, 1)))[:, 0].astype(np.float64)
    total = rounds = 0
    reason = "max_iterations"
    history: list[dict] = []
    cert = None
    tol_inner = min(1e-8, max(1e-12, INNER_FRACTION * tol))
    while rounds < MAX_ROUNDS:
        want = max(MIN_ADD if rounds else FIRST_ADD, int(in_W.sum()))
        viol, _ = kkt_scan(theta, in_W, want) if (rounds > 0 or not in_W.any()) else (np.zeros(0, np.intp), None)
        if rounds > 0 and viol.size == 0:
            cert = _certify(Xa, mask, kernel, lam, T, rho_out, in_W, rho_W)
            history[-1]["rel_gap"] = cert.rel_gap
            if cert.rel_gap <= tol and cert.max_violation <= feas_tol:
                reason = "optimal"
                break
            if tol_inner <= 1e-12:
                reason = "not_certified"
                break
            tol_inner = max(1e-12, tol_inner * 1e-2)  # not accurate enough: tighten and redo
        elif rounds == 0 and viol.size == 0 and not in_W.any():
            cert = _certify(Xa, mask, kernel, lam, T, rho_out, in_W, rho_W)
            reason = "optimal" if cert.rel_gap <= tol else "not_certified"
            break
        add = viol[:want]
        if (int(in_W.sum()) + add.size) * d > max_vars:
            reason = "working_set_too_large"
            break
        in_W[add] = True
        blocks = np.flatnonzero(in_W)
        need = working_set_bytes_qp(n, d, blocks.size)
        if need > budget:
            reason = "memory"
            logger.info("working set of %d blocks needs about %d bytes (budget %d)", blocks.size, need, budget)
            break
        R = _Restricted(Xa, M, S, y, blocks, lam, scale)
        rows = []
        for j in blocks:
            if j in prev and np.any(prev[j][0]):
                direction, rho_prev = prev[j]
            else:
                direction, rho_prev = cand_dir.get(int(j)), None
                if direction is None and gates is not None and in_cone[j % p]:
                    direction = Gn[:, j % p]
            rows.append(_initial_rows(Xa, S, rn, int(j), direction, rho_prev, ROWS0 * d))
        U, rho_W, its, status, cuts, rows = _solve_restricted(R, rows, tol_inner)
        total += its
        rounds += 1
        prev = {int(j): (U[:, pos].copy(), rho_W[:, pos].copy()) for pos, j in enumerate(blocks)}
        if not np.all(np.isfinite(U)) or status not in ("Solved", "AlmostSolved"):
            reason = "inner_solver"
            logger.info("restricted interior-point solve returned %s", status)
            break
        # interior points leave inactive blocks at ~1e-10 of the active ones: make them exact zeros
        # (the certificate below is computed for the thresholded point)
        nrm = np.linalg.norm(U, axis=0)
        U[:, nrm <= ZERO_BLOCK * max(float(nrm.max(initial=0.0)), np.finfo(float).tiny)] = 0.0
        T[:] = 0.0
        T[:, blocks, 0] = U
        z = np.einsum("nk,nk->n", M[:, blocks % p] * np.where(blocks < p, 1.0, -1.0), Xa @ U)
        theta = kernel.grad(z[:, None])[:, 0].astype(np.float64)
        history.append({"round": rounds, "working_set": int(blocks.size), "ipm_iterations": its,
                        "status": status, "added": int(add.size), "cuts": cuts,
                        "cone_rows": int(sum(r.size for r in rows))})
        if callback is not None:
            cert_cb = _certify(Xa, mask, kernel, lam, T, rho_out, in_W, rho_W)
            info = {"iteration": rounds, "objective": cert_cb.primal, "dual": cert_cb.dual, "gap": cert_cb.gap,
                    "rel_gap": cert_cb.rel_gap, "violation": cert_cb.max_violation,
                    "working_set": int(blocks.size), "violators": int(add.size)}
            if callback_stops(callback(info)):
                reason = "callback"
                cert = cert_cb
                break
        if total >= max_iter:
            reason = "max_iterations"
            break
    if cert is None or reason not in ("optimal", "not_certified", "callback"):
        cert = _certify(Xa, mask, kernel, lam, T, rho_out, in_W, rho_W)
    rho = rho_out.copy()
    blocks = np.flatnonzero(in_W)
    if rho_W.shape[1] == blocks.size and blocks.size:
        rho[:, blocks] = rho_W
    converged = reason == "optimal"
    logger.debug("working set: %d rounds, %d IPM iterations, |W| = %d, rel gap %.3e (%s)", rounds, total,
                 blocks.size, cert.rel_gap, reason)
    return WorkingSetResult(T=T, rho=rho[:, :, None], primal=cert.primal, dual=cert.dual, rel_gap=cert.rel_gap,
                            violation=cert.max_violation, iterations=total, rounds=rounds, working_set=blocks,
                            converged=converged, reason=reason, nnls_solves=counters["nnls"], history=history)


def _certify(Xa, mask, kernel, lam, T, rho_out, in_W, rho_W):
    p = mask.shape[1]
    rho = rho_out.copy()
    blocks = np.flatnonzero(in_W)
    if blocks.size and rho_W.shape[1] == blocks.size:
        rho[:, blocks] = rho_W
    return relu_certificate(Xa, mask, kernel, lam, T[:, :p], T[:, p:], rho[:, :, None])
