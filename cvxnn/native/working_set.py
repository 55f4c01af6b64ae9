"""Working-set interior-point solver for C-ReLU: every smooth loss, scalar or vector output.

C-ReLU optima are sparse: only a few of the blocks are non-zero. This solver keeps a
*working set* ``W`` of blocks and alternates

1. a barrier interior-point solve of C-ReLU restricted to ``W``
   (:func:`~cvxnn.native.ipm.solve_restricted_barrier`: Newton's method on dense
   ``|W| d``-dimensional systems, with the loss's Hessian), and
2. a KKT check of every block outside ``W`` at the restricted optimum; blocks that violate it
   join ``W``.

It stops when no block violates the KKT conditions and the certified relative duality gap of
the *full* problem (:func:`~cvxnn.native.certificates.relu_certificate`, with the barrier's
cone multipliers on ``W`` and NNLS multipliers elsewhere) is below ``tol``.

Blocks. Scalar output has the ``2p`` blocks ``v_i, w_i``. Vector output (``c`` outputs) uses
the columnwise program: block ``(i, k, s)`` is a column ``u`` in ``K_i`` feeding output ``k``
with sign ``s``, penalised by ``lam ||u||``. Its value is exactly the objective of the ReLU
network it maps to (each neuron has one output), so nothing is lost between the convex value
and the returned network. Block ``b`` of the flattened ``(2p, c)`` layout has column
``b // c`` (``< p``: a ``v`` block) and output ``b % c``.

KKT check of a block ``j`` outside ``W`` (``u_j = 0``). In the notation of ``docs/math.md``,
"Notation", the residual is ``r = -grad h(Z)`` (the code's ``theta`` is the dual point
``nu = grad h(Z) = -r``) and the block correlation is ``c_j = s_j X^T D_i r``; zero is optimal
for the block iff

    dist(-c_j, K_i^*) = min_{rho >= 0} || c_j + Xt_i^T rho || <= lam

(``K_i^*`` is the dual cone of ``K_i = {u : Xt_i u >= 0}``). Cheap bounds decide most blocks
without solving this NNLS: any ``rho >= 0`` gives the upper bound ``||c_j + Xt_i^T rho||``
(the previous multipliers, or zero), and the gate ``g_i`` (a point of ``K_i``) gives the lower
bound ``<c_j, g_i> / ||g_i||``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import nnls

from .._validation import callback_stops
from ..errors import InvalidParameterError, MemoryBudgetError, ShapeError
from ..operators import default_memory_budget
from ._losses import SmoothKernel
from .certificates import relu_certificate
from .ipm import (
    AS_GAIN,
    AS_GAIN_FINE,
    barrier_bytes,
    barrier_objective,
    polish_on_faces,
    row_space_basis,
    solve_restricted_active_set,
    solve_restricted_barrier,
)
from .nnls import nnls_batched_admm, nnls_warm

__all__ = ["KKTScan", "WorkingSetResult", "check_working_set_memory", "solve_relu_working_set", "working_set_bytes",
           "working_set_fixed_bytes"]

logger = logging.getLogger(__name__)

#: Default cap on ``|W| d``. Large working sets are solved by conjugate gradients (matrix-free);
#: memory is checked separately (:func:`working_set_bytes`). Measured: digits, one-vs-all
#: cross-entropy with 100 gates, peaks at 179 blocks of 65 (11635 variables) and certifies.
MAX_VARS = 100_000
#: Blocks added per round: at least this many (at most GROWTH times the working-set size).
MIN_ADD = 8
#: Size of the interior push of blocks entering the working set (prediction units).
EPS0 = 1e-3
#: First barrier parameter of a round that adds blocks, times |objective| / nu.
MU0_ADD = 1e-3
#: Scale the interior push of entering blocks by the factor of PUSH_GRID with the least
#: barrier value at the round's first ``mu``: a better-centred start (measured on breast
#: cancer, 3 gate seeds: 316 Newton steps instead of 420).
PUSH_SEARCH = True
PUSH_GRID = tuple(10.0 ** np.arange(-1.0, 4.01, 0.5))
#: Start entering blocks along their steepest feasible direction ``Pi_{K_i}(c_b)`` (from the KKT
#: check's NNLS) at the factor of STEP_GRID times their one-dimensional Newton step with the
#: least barrier value, instead of along the gate alone.
STEEPEST_START = True
STEP_GRID = tuple(2.0 ** -np.arange(0.0, 10.0))
#: Further halvings of the entering blocks' step below STEP_GRID when no factor of the grid
#: lowers the objective of the active set's start (the Newton step of a direction with almost no
#: loss curvature, e.g. Huber's linear part, can be 1e20 times too long).
ENTRY_HALVINGS = 120
#: ADMM iterations run on the undecided blocks of a KKT scan before exact NNLS
#: (:func:`~cvxnn.native.nnls.nnls_batched_admm`, float32; it stops earlier once a round of
#: SCAN_CHECK_EVERY iterations decides fewer than 5 % of the rest).
SCAN_ITERATIONS = 200
#: Its penalty parameter (relative to the mean eigenvalue of ``X^T X``) and over-relaxation.
#: Against an accelerated projected gradient (step ``1 / ||X||_2^2``), measured (minimum of
#: 3 interleaved runs; ConvexReLUClassifier, ``lam = 0.01 n``, 100 gates): breast cancer gate
#: seeds 0-3 0.508 -> 0.412 s, wine 0.274 -> 0.257 s, iris 0.287 -> 0.268 s; digits seeds 0-1
#: 18.4 -> 15.1 s (the first full scan: 1.39 -> 0.51 s, 84 blocks left undecided instead of 215,
#: 79 of them true violators); twelve squared-loss fits at ``n=1000, d=10, p=50`` 8.22 -> 7.84 s.
#: ``rho_scale`` 3 and 10 were alike on the small sets, 3 slower on digits (10.0 against 8.5 s,
#: one fit), 30 slower on breast cancer (0.508 s); relax 1.0 against 1.6 alike on the small
#: sets, digits seeds 0-1 15.1 s against 14.5 s.
SCAN_RHO = 10.0
SCAN_RELAX = 1.6
#: Iterations between the batched ADMM's checks, which drop the decided blocks from the batch.
#: Most blocks outside ``W`` are optimal at zero by a wide margin (on digits the median
#: ``dist(-c_b, K_i^*)`` is ``0.15 lam`` at the optimum) and are decided in a few iterations.
#: Measured (ConvexReLUClassifier, ``lam = 0.01 n``, 100 gates, minimum of 2-3 interleaved
#: runs), 10 against 25: digits gate seeds 0-3 23.1 against 23.5 s (faster on every seed, the
#: same 584 Newton steps); breast cancer, wine and iris (gate seeds 0-5) 1.30 against 1.34 s;
#: twelve squared-loss fits at ``n=1000, d=10, p=50`` 7.50 against 7.58 s. On digits' largest
#: scans the ADMM took 0.54 s against 0.66 s and left 93 blocks to exact NNLS instead of 89.
SCAN_CHECK_EVERY = 10
#: Exact NNLS of a scan starts Lawson-Hanson from the ``d`` largest multipliers of the ADMM when
#: they have more than ``d`` positive entries only on cones of at least this many entries
#: (``n d``); on smaller ones SciPy's cold solve is faster (see :func:`_nnls`).
NNLS_WARM_TOP_MIN = 8000
#: Before exact NNLS on cones of at least REFINE_MIN_ENTRIES entries, this many ADMM iterations
#: (float32, ``rho_scale = REFINE_RHO``) refine the multipliers of the blocks about to be solved,
#: all at once (:meth:`KKTScan.refine`): the entering blocks' steepest directions and the
#: blocks a scan leaves undecided. Lawson-Hanson then starts from nearly the right support.
#: Measured on the NNLS problems of a digits fit (``lam = 0.01 n``, 100 gates, gate seed 0;
#: the same solutions to rounding): the 82 entering directions took 0.83 s cold and 0.28 s
#: refined (300 iterations: 0.15 s of ADMM, 0.14 s of Lawson-Hanson); the 56 undecided blocks
#: of its scans took 0.41 s from the scan's multipliers and 0.20 s refined. ``rho_scale`` 30 and
#: 300 left worse supports (0.33 and 0.46 s for the 82), 200 iterations 0.35 s and 400 0.28 s.
REFINE_ITERATIONS = 300
REFINE_RHO = 100.0
#: ... on cones of at least this many entries (``n d``): on smaller ones the exact solves are
#: cheap and the refinement costs more than it saves. Time in NNLS and ADMM, without and with it
#: (ConvexReLUClassifier, ``lam = 0.01 n``): breast cancer (``n d = 12338``, gate seeds 0-5) 0.18
#: against 0.27 s; twelve squared-loss fits at ``n=1000, d=10, p=50`` (11000) 1.04 against 1.28 s;
#: ``make_classification`` with 3 classes, 50 gates, data and gate seeds 0-1: ``n = 400, d = 40``
#: (16400) 1.32-1.70 against 0.74-0.77 s, ``n = 600, d = 50`` (30600) 2.83-3.68 against 1.40 s.
REFINE_MIN_ENTRIES = 15000
#: Blocks added per round: at most this fraction of the working set (at least MIN_ADD).
#: Measured on digits (100 gates, gate seeds 0-4): 0.5 took 16-19 s per fit against 18-38 s for
#: doubling (1.0), whose large rounds carried up to 60 blocks that ended at zero; breast cancer,
#: wine and iris (working sets of 10-30 blocks) are unchanged.
GROWTH = 0.5
#: A warm start keeps only the blocks above this fraction of its largest block norm: an
#: augmented-Lagrangian point carries many small blocks that would each cost the first
#: active-set round a face basis and Newton coordinates (the KKT scan brings back any that
#: matter). Measured on the AL's Newton finish at n=1000, d=10, p=50 (bench_native section 2):
#: 71 Newton steps in 4 rounds at 1e-6, 35 in 2 rounds at 1e-3; the warm-started CV paths
#: (ConvexReLURegressorCV on diabetes, ConvexReLUClassifierCV on breast cancer and wine) took
#: the same time and chose the same lam.
WARM_RTOL = 1e-3
#: Cap on working-set rounds.
MAX_ROUNDS = 60
#: Blocks in the first working set (from the KKT scan at zero or the warm start's support).
#: Measured with AS_EARLY_NEWTON (2026-11-30, min of 3 interleaved runs, gate seeds 0-5): 10 and
#: 10 against 16 and 15 took breast cancer, wine and iris from 1.87 to 1.69 s in all (995 -> 878
#: Newton steps), twelve squared-loss fits at ``n=1000, d=10, p=50`` from 8.90 to 8.25 s, and
#: digits (gate seeds 0-3, one run) from 40.8 to 39.0 s.
FIRST_ADD = 10
#: Target of the restricted solves' duality gap relative to ``tol * |objective|``.
INNER_FRACTION = 0.05
#: Barrier parameter used to read the faces of a Clarabel point (rows with slack below
#: ``sqrt(CONIC_MU)`` are on the face).
CONIC_MU = 1e-14
#: Largest restricted program (cone rows ``|W| n``) handed to Clarabel when Newton on the faces
#: fails; larger ones tighten the barrier instead.
CONIC_MAX_ROWS = 50_000
#: Relative duality gap the barrier aims at before Newton's method on the identified faces
#: takes over (:func:`~cvxnn.native.ipm.polish_on_faces`).
BARRIER_REL = 1e-3
#: Solve the restricted programs by the primal active-set method
#: (:func:`~cvxnn.native.ipm.solve_restricted_active_set`), warm-started from the previous
#: round's point and faces; the barrier takes over when it fails or its point does not certify.
ACTIVE_SET = True
#: Newton steps allowed to the active-set solve of a round whose KKT scan found at least as many
#: violators as the round adds (the working set is known to be incomplete, so its restricted
#: optimum is only a stepping stone): the capped point is feasible and the next round goes on
#: from it, with its faces. None: every round runs to its face optimum. A round that adds more
#: blocks than this gets as many steps as it adds blocks: with 10 steps for rounds of 16-23 new
#: blocks, digits subsamples (300 rows, 20 gates) overgrew their working sets (69 blocks against
#: 51) and took 5.84 s against 4.96 s for four of them; full digits (gate seeds 0-3) 35.6 -> 33.7 s,
#: twelve squared-loss fits 8.25 -> 7.81 s, breast cancer, wine and iris unchanged (their rounds
#: add at most 10). See FIRST_ADD for the choice of 10 itself.
AS_EARLY_NEWTON: int | None = 10
#: Newton steps of any other round's active-set solve. A solve that uses them all (many face
#: changes on a large working set) has still moved to a better feasible point: the next round
#: continues from it, after the KKT scan and after its zero blocks have left ``W``, at most
#: AS_MAX_CONTINUE times in a row before the barrier takes over. Measured on digits (100 gates,
#: gate seeds 0-4): 30 steps took 9.2-15.0 s per fit (mean 11.9 s) against 12.6-14.4 s (13.3 s)
#: for 400 steps and 13.5 s for 20; breast cancer, wine and iris never reach 30. With 400 steps
#: and no continuation, gate seed 1 ran a 167-block round past 400 steps and the barrier that took
#: over cost 45 s of a 78 s fit.
AS_ROUND_NEWTON = 30
AS_MAX_CONTINUE = 50


def working_set_bytes(n: int, d: int, k: int, c: int = 1) -> int:
    """Approximate bytes of one restricted barrier solve with ``k`` blocks."""
    return barrier_bytes(n, d, k, c)


def working_set_fixed_bytes(n: int, d: int, p: int, c: int = 1) -> int:
    """Approximate bytes of the arrays the C-ReLU working set holds for the whole problem,
    whatever its working set: the float64 mask and signs (``2 n p``), the KKT scan's multipliers,
    products and correlations (about ``4 n p c + n p``), the certificate's multipliers
    (``2 n p c``) and the row products ``x x^T`` (``n d^2``), 8 bytes each."""
    return 8 * (3 * n * p + 6 * n * p * c + n * d * d)


def check_working_set_memory(n: int, d: int, p: int, c: int, memory_budget: int | None) -> None:
    """Raise :class:`~cvxnn.errors.MemoryBudgetError` when :func:`working_set_fixed_bytes`
    exceeds the budget (default: half the physical memory), before anything is allocated."""
    need = working_set_fixed_bytes(n, d, p, c)
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    if need > budget:
        raise MemoryBudgetError(
            f"the C-ReLU working set needs about {need:,} bytes for its n x p arrays (n={n}, p={p}, c={c}, "
            f"d={d}) but the memory budget is {budget:,} bytes; use fewer patterns, the gated_relu "
            "activation, or raise memory_budget.")


@dataclass
class WorkingSetResult:
    """Raw result of :func:`solve_relu_working_set`.

    Attributes
    ----------
    T : ndarray (d, 2p, c)
        Blocks ``[V, W]`` (columnwise for vector output).
    rho : ndarray (n, 2p, c)
        Cone multipliers (barrier on ``W``, NNLS or a bound-certifying choice elsewhere).
    primal, dual, rel_gap : float
        Certified values of the full problem.
    violation : float
        Largest cone violation of ``T``.
    iterations : int
        Newton steps over all rounds.
    rounds : int
        Working-set rounds.
    working_set : ndarray of int
        Final working set (flattened block indices ``col * c + k``).
    converged : bool
    reason : str
        ``"optimal"``, ``"max_iterations"`` (the Newton-step budget), ``"max_rounds"``
        (:data:`MAX_ROUNDS` rounds with steps left), ``"working_set_too_large"``, ``"memory"``,
        ``"inner_solver"``, ``"not_certified"``, ``"degenerate_cone"`` or ``"callback"``.
    nnls_solves : int
        NNLS problems solved by the KKT checks.
    history : list of dict
        Per round: working-set size, Newton steps, certified relative gap, violators.
    """

    T: np.ndarray
    rho: np.ndarray
    primal: float
    dual: float
    rel_gap: float
    violation: float
    iterations: int
    rounds: int
    working_set: np.ndarray
    converged: bool
    reason: str
    nnls_solves: int = 0
    history: list = field(default_factory=list)


class KKTScan:
    """The KKT check of the blocks outside the working set, shared by both working-set solvers.

    Block ``b`` of the flattened ``(2p, c)`` layout has pattern ``(b // c) % p``, sign ``+1``
    for ``b // c < p`` and output ``b % c``; its correlation is ``c_b = s_b X^T D_i r`` with
    ``r = -theta`` (module docstring). Zero is optimal for the block iff ``dist(-c_b, K_i^*) <= lam``:
    the gate gives a lower bound,
    any ``rho >= 0`` an upper bound, and an NNLS decides the rest (module docstring).

    Attributes
    ----------
    rho_out : ndarray (n, 2 p c)
        Multipliers that certify the non-violating blocks outside ``W``.
    has_rho : ndarray of bool (2 p c,)
        Which columns of ``rho_out`` are non-zero (a scan bounds only those blocks by their
        earlier multipliers; reading it off ``rho_out`` costs a pass over ``n x 2pc`` entries).
    counters : dict
        ``{"nnls": NNLS problems solved}``.
    directions : dict
        Block -> ``Pi_{K_i}(-c_b)`` from its last NNLS (the steepest feasible direction).
    gates : ndarray (d, p) or None
        Unit gates (interior points of the cones).
    """

    def __init__(self, Xa: np.ndarray, M: np.ndarray, lam: float, c: int, gates: np.ndarray | None) -> None:
        self.Xa, self.M, self.lam, self.c = Xa, M, float(lam), int(c)
        self.n, self.d = Xa.shape
        self.p = M.shape[1]
        self.S = 2.0 * M - 1.0
        nb = 2 * self.p * self.c
        self.bpat = (np.arange(nb) // self.c) % self.p
        self.rho_out = np.zeros((self.n, nb))
        self.has_rho = np.zeros(nb, dtype=bool)
        self.counters = {"nnls": 0}
        self.directions: dict[int, np.ndarray] = {}
        self.gates = None
        self.lb_ok = np.zeros(nb, dtype=bool)
        self.fresh: set[int] = set()
        if gates is not None:
            Gn = np.asarray(gates, dtype=np.float64)
            self.gates = Gn / np.maximum(np.linalg.norm(Gn, axis=0), np.finfo(float).tiny)
            in_cone = (self.S * (Xa @ self.gates)).min(axis=0, initial=0.0) >= 0.0
            self.lb_ok = in_cone[self.bpat]

    def correlations(self, theta: np.ndarray) -> np.ndarray:
        """``-c_b = s_b X^T D_i theta`` for every block, ``d x 2pc`` (``theta = -r`` is ``(n, c)``, or
        ``(n,)`` for ``c = 1``)."""
        n, p, c = self.n, self.p, self.c
        theta = theta.reshape(n, c)
        C = (self.Xa.T @ (self.M[:, :, None] * theta[:, None, :]).reshape(n, p * c)).reshape(self.d, p * c)
        return np.concatenate([C, -C], axis=1)

    def scan(self, theta: np.ndarray, in_W: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        """Violating blocks outside ``W`` (by score, descending) and their scores; may stop
        after ``want`` violators. Empty: every block outside ``W`` is optimal at zero, and
        ``rho_out`` certifies it (``||c_b - Xt_i^T rho_b|| <= lam`` up to rounding)."""
        lam = self.lam
        self.fresh = set()
        out = np.flatnonzero(~in_W)
        if out.size == 0:
            return out, np.zeros(0)
        Cout = self.correlations(theta)[:, out]
        ub0 = np.linalg.norm(Cout, axis=0)
        ub = ub0.copy()
        # the previous multipliers bound only the blocks that have any (most have none before
        # the first batched ADMM)
        had = np.flatnonzero(self.has_rho[out])
        if had.size:
            Sh = self.S[:, self.bpat[out[had]]]
            ub_prev = np.linalg.norm(Cout[:, had] - self.Xa.T @ (Sh * self.rho_out[:, out[had]]), axis=0)
            use0 = ub0[had] <= ub_prev
            self.rho_out[:, out[had[use0]]] = 0.0
            self.has_rho[out[had[use0]]] = False
            ub[had] = np.minimum(ub0[had], ub_prev)
        if self.gates is not None:
            lb = np.where(self.lb_ok[out], -np.einsum("dk,dk->k", Cout, self.gates[:, self.bpat[out]]), 0.0)
        else:
            lb = np.zeros(out.size)
        score = np.where(lb > lam, lb, 0.0)
        certain = score > lam
        undecided = (ub > lam) & ~certain
        if certain.sum() >= MIN_ADD:
            order = np.argsort(-score)[: int(certain.sum())]
            return out[order], score[order]
        found = int(certain.sum())
        if SCAN_ITERATIONS and undecided.any():
            # a batched ADMM decides the blocks that are optimal at zero by a margin
            und = np.flatnonzero(undecided)
            Sout = self.S[:, self.bpat[out[und]]]
            R, res = nnls_batched_admm(self.Xa, Sout, Cout[:, und], self.rho_out[:, out[und]],
                                       iterations=SCAN_ITERATIONS, target=lam, rho_scale=SCAN_RHO,
                                       relax=SCAN_RELAX, check_every=SCAN_CHECK_EVERY, dtype=np.float32)
            improved = res < ub[und]
            self.rho_out[:, out[und[improved]]] = R[:, improved]
            self.has_rho[out[und[improved]]] = R[:, improved].any(axis=0)
            ub[und[improved]] = res[improved]
            undecided = (ub > lam) & ~certain
            logger.debug("KKT scan: %d blocks outside W, %d undecided by the bounds, %d after the batched ADMM",
                         out.size, und.size, int(undecided.sum()))
        # largest upper bounds first; stop once enough violators are known (every block is
        # decided in the last round, where none violates)
        cand = np.flatnonzero(undecided)
        cand = cand[np.argsort(-ub[cand])]
        if cand.size:
            # the blocks the loop below may solve: all of them in the last round (no violator),
            # else the first ones, about twice as many as violators are still wanted
            first = cand[: max(2 * (want - found), 0)]
            self.refine(out[first], C=Cout[:, first])
        for pos in cand:
            if found >= want:
                break
            j = out[pos]
            At = (self.S[:, self.bpat[j], None] * self.Xa).T
            r, res = _nnls(At, Cout[:, pos], self.rho_out[:, j])
            self.counters["nnls"] += 1
            self.rho_out[:, j] = r
            self.has_rho[j] = bool(r.any())
            score[pos] = res
            self.directions[int(j)] = At @ r - Cout[:, pos]  # = Pi_K(-c_b)
            self.fresh.add(int(j))
            found += int(res > lam * (1.0 + 1e-9))
        viol = score > lam * (1.0 + 1e-9)
        order = np.argsort(-score)
        order = order[viol[order]]
        return out[order], score[order]


    def refine(self, blocks: np.ndarray, theta: np.ndarray | None = None, C: np.ndarray | None = None) -> None:
        """Refine ``rho_out`` of ``blocks`` by a batched ADMM (``REFINE_ITERATIONS``), before their
        exact NNLS: Lawson-Hanson from the ``d`` largest refined multipliers starts near the
        solution's support. ``C`` holds the blocks' ``-c_b`` (else computed from ``theta``). Only on
        cones of at least ``REFINE_MIN_ENTRIES`` entries and for at least two blocks; the result
        only steers the exact solve, whose residual is what certifies."""
        if theta is None and C is None:
            raise InvalidParameterError("refine needs the dual point theta or the blocks' correlations C.")
        blocks = np.asarray(blocks, dtype=np.intp)
        if not REFINE_ITERATIONS or blocks.size < 2 or self.n * self.d < REFINE_MIN_ENTRIES:
            return
        if C is None:  # -c_b of these blocks only (not the full d x 2pc correlations)
            c = self.c
            sign = np.where(blocks // c < self.p, 1.0, -1.0)
            C = sign * (self.Xa.T @ (self.M[:, self.bpat[blocks]] * theta.reshape(self.n, c)[:, blocks % c]))
        R, _ = nnls_batched_admm(self.Xa, self.S[:, self.bpat[blocks]], C, self.rho_out[:, blocks],
                                 iterations=REFINE_ITERATIONS, target=0.0, rho_scale=REFINE_RHO,
                                 relax=SCAN_RELAX, check_every=REFINE_ITERATIONS, min_progress=0.0,
                                 dtype=np.float32)
        self.rho_out[:, blocks] = R
        self.has_rho[blocks] = R.any(axis=0)

    def steepest(self, b: int, theta: np.ndarray) -> np.ndarray:
        """``Pi_{K_i}(c_b)``, the steepest feasible direction of block ``b`` at the dual point
        ``theta`` (Moreau: ``c_b + Xt_i^T rho`` with ``rho`` the NNLS solution of the KKT check);
        from the last scan when it solved this block's NNLS at the same ``theta``."""
        b = int(b)
        if b in self.fresh:
            return self.directions[b]
        i, c, n = int(self.bpat[b]), self.c, self.n
        th = theta.reshape(n, c)[:, b % c]
        cb = (1.0 if b // c < self.p else -1.0) * (self.Xa.T @ (self.M[:, i] * th))  # = -c_b
        At = (self.S[:, i, None] * self.Xa).T
        r, _ = _nnls(At, cb, self.rho_out[:, b])
        self.counters["nnls"] += 1
        self.rho_out[:, b] = r
        self.has_rho[b] = bool(r.any())
        self.directions[b] = At @ r - cb
        self.fresh.add(b)
        return self.directions[b]


def _nnls(At: np.ndarray, c: np.ndarray, x0: np.ndarray | None) -> tuple[np.ndarray, float]:
    """``argmin_{rho >= 0} ||At rho - c||`` and its residual: warm-started Lawson-Hanson
    (:func:`~cvxnn.native.nnls.nnls_warm`) from the support of ``x0`` when it has at most ``d``
    positive entries (an earlier NNLS solution), or from its ``d`` largest entries on a cone of
    at least ``NNLS_WARM_TOP_MIN`` entries; SciPy's cold solver otherwise.

    Measured on the KKT checks of breast cancer and digits fits (``lam = 0.01 n``, 100 gates):
    from an earlier solution the warm start took 0.18 ms against 1.1 ms cold (breast cancer,
    ``d = 31``, ``n = 398``) and 0.48 ms against 9.0 ms (digits, ``d = 65``, ``n = 1257``). From the
    multipliers of the scan's batched ADMM (sparse, but often more than ``d`` positive entries)
    it took 5.8 against 10.4 ms for the 14 blocks that the first scan of breast cancer left
    undecided and 551 against 783 ms for the 84 of digits (digits seeds 0-1: 14.5 s against
    16.0 s in all), but 18.5 against 10.7 ms on diabetes (``d = 11``, ``n = 309``) and 2.0 against
    2.1 ms on wine (``d = 14``, ``n = 124``), where cold solves are cheap.
    """
    if x0 is not None and np.any(x0 > 0):
        k = int(np.count_nonzero(x0 > 0))
        if k <= At.shape[0] or At.size >= NNLS_WARM_TOP_MIN:
            return nnls_warm(At, c, x0)
    return nnls(At, c, maxiter=50 * (At.shape[1] + 1))


def _feasible_warm_start(T: np.ndarray, Xa: np.ndarray, S: np.ndarray, bpat: np.ndarray,
                         direction: Callable[[int], np.ndarray | None]) -> np.ndarray:
    """A warm start made fit for the active set: blocks below ``WARM_RTOL`` of the largest
    block norm become zero, and a block outside its cone (an augmented-Lagrangian point, or a
    solution moved onto other data) is moved inside along the cone's interior direction, by the
    least step that makes every row's slack non-negative (zero when the cone has no interior).
    """
    T = T.copy()
    nrm = np.linalg.norm(T, axis=0)
    T[:, nrm <= WARM_RTOL * float(nrm.max(initial=0.0))] = 0.0
    live = np.flatnonzero(np.linalg.norm(T, axis=0) > 0)
    if live.size == 0:
        return T
    sl = S[:, bpat[live]] * (Xa @ T[:, live])
    scale = np.maximum(np.abs(sl).max(axis=0), np.finfo(float).tiny)
    for pos in np.flatnonzero(sl.min(axis=0) < 0.0):
        b = int(live[pos])
        g = direction(int(bpat[b]))
        if g is None:
            T[:, b] = 0.0
            continue
        sg = S[:, bpat[b]] * (Xa @ g)
        # sg > 0 on every non-zero row (g is interior; a zero row has slack 0 whatever the
        # block); a relative margin keeps rounding from leaving the pushed rows a hair below zero
        need = np.divide(np.maximum(-sl[:, pos], 0.0), sg, out=np.zeros_like(sg), where=sg > 0.0)
        t = float(need.max(initial=0.0)) * (1.0 + 1e-9) + 1e-12 * scale[pos] / float(sg.max())
        T[:, b] += t * g
    return T


def _entering_steps(scanner, kernel, Xa, M, S, bpat, bsign, bout, new, theta, Z, lam) -> np.ndarray | None:
    """``t_b Pi_K(c_b)`` for the entering blocks ``new`` (``d x |new|``): the steepest feasible
    direction at its one-dimensional Newton step, ``t_b = ||dir|| (||dir|| - lam) / dir^T H_b dir``
    (the slope along ``dir`` is ``-||dir||^2 + lam ||dir||`` since ``<c_b, Pi_K(c_b)> = ||Pi_K(c_b)||^2``;
    ``H_b`` the loss curvature of the block). None when no block has a usable direction."""
    D, V = kernel.hessian_parts(Z)
    out = np.zeros((Xa.shape[1], new.size))
    cold = np.array([b for b in new if int(b) not in scanner.fresh and not scanner.has_rho[b]], dtype=np.intp)
    scanner.refine(cold, theta)
    for pos, b in enumerate(new):
        dvec = scanner.steepest(int(b), theta)
        dn = float(np.linalg.norm(dvec))
        if not dn > lam:
            continue
        a = M[:, bpat[b]] * bsign[b] * (Xa @ dvec)
        k = int(bout[b])
        quad = float(D[:, k] @ (a * a)) - (float((V[:, k] * a) @ (V[:, k] * a)) if V is not None else 0.0)
        if quad <= 0.0 or not np.isfinite(quad):
            continue
        # rounding can leave the projection a hair outside its cone: those rows stay at zero slack
        sl = S[:, bpat[b]] * (Xa @ dvec)
        if sl.min(initial=0.0) < -1e-9 * max(float(np.abs(sl).max(initial=0.0)), np.finfo(float).tiny):
            continue
        out[:, pos] = (dn * (dn - lam) / quad) * dvec
    return out if np.any(out) else None


def _active_set_round(scanner, kernel, Xa, M, S, lam, bpat, bsign, bcol, bout, blocks, add, U_full, faces,
                      theta, Z, basis, max_newton, gain=AS_GAIN, partial=False):
    """One restricted solve by the active-set method from the previous point: the blocks keep
    their values and faces, entering blocks start along their steepest feasible direction
    ``Pi_K(c_b)`` at their one-dimensional Newton step, scaled together by the factor of
    ``STEP_GRID`` with the least objective. Returns ``(U, faces, rho, newton)`` or None
    when the method did not converge (``partial``: a point that used all ``max_newton`` steps
    is returned too; it is feasible and not worse than the start)."""
    c = Z.shape[1]
    U0 = U_full[:, blocks].copy()
    tight0 = faces[:, blocks].copy()
    isnew = np.isin(blocks, add)
    tight0[:, isnew] = False
    if add.size:
        steep = _entering_steps(scanner, kernel, Xa, M, S, bpat, bsign, bout, blocks[isnew], theta, Z, lam)
        if steep is not None:
            E = np.eye(c)[bout[blocks]]
            coef = M[:, bpat[blocks]] * bsign[blocks]
            # the predictions along the grid are Z0 + f dZ; the penalty is linear in f too
            Z0 = (coef * (Xa @ U0)) @ E
            dZ = (coef[:, isnew] * (Xa @ steep)) @ E[isnew]
            pen0 = float(np.linalg.norm(U0[:, ~isnew], axis=0).sum())
            dpen = float(np.linalg.norm(steep, axis=0).sum())
            vals = [kernel.value(Z0 + f * dZ) + lam * (pen0 + f * dpen) for f in STEP_GRID]
            best = STEP_GRID[int(np.argmin(vals))]
            F0 = kernel.value(Z0) + lam * pen0
            if not min(vals) < F0:
                # a loss with (nearly) no curvature along the direction (Huber's linear part)
                # makes the one-dimensional Newton step far too long: halve on until the
                # objective descends (it does near zero: the direction is one of descent), else
                # the blocks enter at zero
                best, f = 0.0, STEP_GRID[-1]
                for _ in range(ENTRY_HALVINGS):
                    f *= 0.5
                    if kernel.value(Z0 + f * dZ) + lam * (pen0 + f * dpen) < F0:
                        best = f
                        break
            U0[:, isnew] += best * steep
            # a direction a hair outside its cone (rounding) starts at zero instead
            sl = S[:, bpat[blocks]] * (Xa @ U0)
            sc = np.maximum(np.abs(Xa @ U0).max(axis=0, initial=0.0), np.finfo(float).tiny)
            bad = isnew & (sl.min(axis=0, initial=0.0) < -1e-9 * sc)
            U0[:, bad] = 0.0
    try:
        res = solve_restricted_active_set(Xa, M, S, kernel, lam, bcol[blocks], bout[blocks], U0,
                                          tight0=tight0, basis=basis, max_newton=max_newton, gain=gain)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
        logger.debug("active-set restricted solve failed: %s", exc)
        return None
    logger.debug("active set on %d blocks (%d new): %d Newton steps, %d face changes, converged=%s",
                 blocks.size, add.size, res.newton, res.changes, res.converged)
    if not res.converged and not (partial and res.newton >= max_newton):
        return None
    return res.U, res.tight, res.rho, res.newton


def _interior_point(Xa: np.ndarray, S: np.ndarray, i: int, gate: np.ndarray | None) -> np.ndarray | None:
    """A unit direction strictly inside ``K_i`` (the gate when it is interior, else from an LP),
    or None when the cone has an empty interior. Zero rows of ``Xa`` (``0 >= 0``) constrain
    nothing and are left out."""
    rows = S[:, i, None] * Xa
    rows = rows[np.any(rows != 0.0, axis=1)]
    if gate is not None:
        g = gate / max(float(np.linalg.norm(gate)), np.finfo(float).tiny)
        if float((rows @ g).min(initial=1.0)) > 1e-12 * float(np.abs(rows @ g).max(initial=0.0)):
            return g
    from scipy.optimize import linprog

    n, d = rows.shape
    # max t  s.t.  rows u >= t, -1 <= u <= 1
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=np.c_[-rows, np.ones(n)], b_ub=np.zeros(n),
                  bounds=[(-1, 1)] * d + [(None, 1)], method="highs")
    if res.status != 0 or -res.fun <= 1e-10:
        return None
    u = res.x[:d]
    return u / np.linalg.norm(u)


#: Clarabel settings for the restricted conic fallback, tried in turn (the values of
#: cvxnn.program.EXP_CONE_CLARABEL_OPTIONS and its retries; kept here so the native layer does
#: not import the CVXPY program layer).
_CONIC_SETTINGS = (
    {"max_step_fraction": 0.9, "static_regularization_constant": 1e-7},
    {"max_step_fraction": 0.99, "static_regularization_constant": 1e-8, "equilibrate_enable": False},
    {"max_step_fraction": 0.9, "static_regularization_constant": 1e-8, "direct_solve_method": "qdldl"},
)


def _restricted_conic(Xa, M, S, kernel, lam, cols, outs, tol):
    """C-ReLU restricted to the blocks ``(cols, outs)`` as a conic program solved by Clarabel
    (through CVXPY, with the loss's own CVXPY expression): the reference solve the working set
    falls back on when Newton on the identified faces does not certify. Returns the blocks
    ``(d, k)`` or None when Clarabel fails."""
    import cvxpy as cp

    n, d = Xa.shape
    p = M.shape[1]
    k = cols.size
    pat = cols % p
    coef = M[:, pat] * np.where(cols < p, 1.0, -1.0)
    c = kernel.y64.shape[1]
    E = np.eye(c)[outs]
    U = cp.Variable((d, k))
    XU = Xa @ U
    Z = cp.multiply(coef, XU) @ E
    y = kernel.y64
    loss = kernel.loss
    if c == 1:
        Z, y = Z[:, 0], y[:, 0]
    obj = loss.cvxpy(Z, y) + lam * cp.sum(cp.norm(U, 2, axis=0))
    prob = cp.Problem(cp.Minimize(obj), [cp.multiply(S[:, pat], XU) >= 0])
    Uv = None
    # Clarabel on exponential cones: the settings of cvxnn.program first, then its retries
    for opts in _CONIC_SETTINGS if not kernel.loss.quadratic else ({},):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the status below is what counts
                prob.solve(solver="CLARABEL", tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol, **opts)
        except (cp.error.SolverError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            logger.info("restricted conic solve failed (%s): %s", opts, exc)
            continue
        if U.value is not None and prob.status == "optimal":
            Uv = np.asarray(U.value, dtype=np.float64)
            break
    if Uv is None:
        return None
    # project the tiny cone violations of the interior point away by zeroing tiny blocks
    nrm = np.linalg.norm(Uv, axis=0)
    Uv[:, nrm <= 1e-7 * max(float(nrm.max(initial=0.0)), np.finfo(float).tiny)] = 0.0
    return Uv


def _end_of_round(callback, certify_now, rounds: int, n_blocks: int, n_added: int, total: int, max_iter: int):
    """What ends the loop after a working-set round: ``callback`` (called with the full-program
    certificate of the current point, from ``certify_now()``) returning True, or the Newton-step
    budget. Returns ``(reason, certified)``: ``reason`` is None to go on; ``certified`` is the
    ``(certificate, multipliers)`` pair the callback saw when it stopped the loop, else None."""
    logger.info("working set round %d: %d blocks, %d violators added, %d Newton steps", rounds, n_blocks, n_added,
                total)
    if callback is not None:
        cert, rho = certify_now()
        info = {"iteration": rounds, "objective": cert.primal, "dual": cert.dual, "gap": cert.gap,
                "rel_gap": cert.rel_gap, "violation": cert.max_violation, "working_set": int(n_blocks),
                "violators": int(n_added)}
        if callback_stops(callback(info)):
            return "callback", (cert, rho)
    if total >= max_iter:
        return "max_iterations", None
    return None, None


def solve_relu_working_set(
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
    """Working-set barrier method for C-ReLU (columnwise for vector output), any smooth loss.

    Parameters
    ----------
    Xa : ndarray (n, d)
        Design (float64).
    mask : ndarray of bool (n, p)
    kernel : SmoothKernel
        The loss bound to ``y`` of shape ``(n, c)`` (float64).
    lam : float
    gates : ndarray (d, p), optional
        Gates of the patterns: interior points of the cones and the cheap lower bound of the
        KKT check.
    tol : float
        Relative duality-gap tolerance of the certificate of the full problem.
    feas_tol : float
        Cone-violation tolerance (absolute, prediction units). The barrier iterates are
        strictly feasible; only blocks set to zero touch the boundary.
    max_iter : int
        Limit on the total number of Newton steps.
    T0 : ndarray (d, 2p, c), optional
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
    Xa = np.ascontiguousarray(Xa, dtype=np.float64)
    n, d = Xa.shape
    p = mask.shape[1]
    c = kernel.y64.shape[1]
    nb = 2 * p * c
    lam = float(lam)
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    check_working_set_memory(n, d, p, c, budget)
    M = mask.astype(np.float64)
    S = 2.0 * M - 1.0
    bcol = np.arange(nb) // c
    bout = np.arange(nb) % c
    bpat = bcol % p
    bsign = np.where(bcol < p, 1.0, -1.0)
    scanner = KKTScan(Xa, M, lam, c, gates)
    rho_out = scanner.rho_out
    counters = scanner.counters
    XX = (Xa[:, :, None] * Xa[:, None, :]).reshape(n, d * d)
    interior: dict[int, np.ndarray | None] = {}
    Gn = scanner.gates

    def direction(i: int) -> np.ndarray | None:
        if i not in interior:
            interior[i] = _interior_point(Xa, S, i, None if Gn is None else Gn[:, i])
        return interior[i]

    correlations = scanner.correlations

    rho_cert = np.zeros((n, nb))

    def kkt_scan(theta: np.ndarray, in_W: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        return scanner.scan(theta, in_W, want)

    def certify(U_full: np.ndarray, rho_W: np.ndarray, blocks: np.ndarray):
        """Certificate of the full problem. Blocks in ``W`` get their best multipliers (the
        NNLS ``argmin_{rho >= 0} ||c_j + Xt_i^T rho||``), not the barrier's ``mu / slack``,
        so the certificate does not depend on how well the last barrier step was centred."""
        rho = rho_out.copy()
        if blocks.size:
            T = U_full.reshape(d, 2 * p, c)
            Zc = np.einsum("npc,np->nc", (Xa @ (T[:, :p] - T[:, p:]).reshape(d, p * c)).reshape(n, p, c), M)
            Cb = correlations(kernel.grad(Zc).astype(np.float64))
            aligned = rho_W.shape[1] == blocks.size
            for pos, b in enumerate(blocks):
                # warm start: this block's last certificate, else the barrier's multipliers
                x0 = rho_cert[:, b] if rho_cert[:, b].any() else (rho_W[:, pos] if aligned else None)
                r, _ = _nnls((S[:, bpat[b], None] * Xa).T, Cb[:, b], x0)
                counters["nnls"] += 1
                rho[:, b] = r
                rho_cert[:, b] = r
        T = U_full.reshape(d, 2 * p, c)
        return relu_certificate(Xa, mask, kernel, lam, T[:, :p], T[:, p:], rho.reshape(n, 2 * p, c),
                                penalty="columnwise"), rho

    in_W = np.zeros(nb, dtype=bool)
    U_full = np.zeros((d, nb))
    if T0 is not None and np.asarray(T0).size != d * nb:
        raise ShapeError(f"T0 must have shape {(d, 2 * p, c)} (the blocks [V, W]), got {np.shape(T0)}.")
    if T0 is not None:
        U_full[:] = _feasible_warm_start(np.asarray(T0, dtype=np.float64).reshape(d, nb), Xa, S, bpat, direction)
        in_W |= np.linalg.norm(U_full, axis=0) > 0
    rho_W = np.zeros((n, 0))
    Z = np.zeros((n, c))
    if in_W.any():
        blocks = np.flatnonzero(in_W)
        Z = ((M[:, bpat[blocks]] * bsign[blocks] * (Xa @ U_full[:, blocks]))
             @ np.eye(c)[bout[blocks]])
    theta = kernel.grad(Z).astype(np.float64)
    total = rounds = 0
    reason = "max_iterations"
    history: list[dict] = []
    cert = None
    rho_full = rho_out
    gap_scale = 1.0
    first = True
    pending = None
    returned = np.zeros(nb, dtype=bool)
    best = None  # (certificate, multipliers, blocks, working set) of the best certified point
    polish_failed = polished_since = conic_done = False
    use_as, as_last = ACTIVE_SET, False
    capped = False  # the last active-set round stopped at its Newton-step cap
    continues = 0  # consecutive rounds that ended at AS_ROUND_NEWTON
    as_gain, as_refines = AS_GAIN, 0
    faces = np.zeros((n, nb), dtype=bool)
    basis = row_space_basis(Xa) if ACTIVE_SET else None
    barrier_floor = 1e-3
    while rounds < MAX_ROUNDS:
        want = max(MIN_ADD if rounds else FIRST_ADD, int(GROWTH * in_W.sum()))
        if first and in_W.any():
            viol = np.zeros(0, np.intp)
        else:
            viol, _ = kkt_scan(theta, in_W, want)
        first = False
        if viol.size == 0 and pending is not None:
            # no block outside W violates: Newton on the faces finishes the restricted problem
            pb, pmu, ptarget = pending
            pending = None
            pol = polish_on_faces(Xa, M, S, kernel, lam, bcol[pb], bout[pb], U_full[:, pb], pmu)
            logger.debug("face Newton on %d blocks: %d steps, converged=%s", pb.size, pol.newton, pol.converged)
            polished_since = True
            total += pol.newton
            if history:
                history[-1]["polish_newton"] = pol.newton
            if pol.converged:
                Ep = np.eye(c)[bout[pb]]
                coefp = M[:, bpat[pb]] * bsign[pb]
                F_old = kernel.value(Z) + lam * float(np.linalg.norm(U_full, axis=0).sum())
                XU_try = Xa @ pol.U
                F_new = kernel.value((coefp * XU_try) @ Ep) + lam * float(np.linalg.norm(pol.U, axis=0).sum())
                if F_new <= F_old:
                    U_full[:, pb] = pol.U
                    Z = (coefp * XU_try) @ Ep
                    theta = kernel.grad(Z).astype(np.float64)
                    zero = pb[(np.linalg.norm(pol.U, axis=0) == 0.0) & ~returned[pb]]
                    returned[zero] = True
                    if zero.size:
                        keep = ~np.isin(np.flatnonzero(in_W), zero)
                        in_W[zero] = False
                        rho_W = rho_W[:, keep]
            continue
        if viol.size == 0 and capped:
            # the last round stopped early and nothing outside W violates: the active set
            # finishes the restricted program before the (costly) certificate
            capped = False
            add = np.zeros(0, np.intp)
        elif viol.size == 0 and (rounds > 0 or not in_W.any()):
            cert, rho_full = certify(U_full, rho_W, np.flatnonzero(in_W))
            logger.debug("certificate: rel gap %.3e, violation %.3e", cert.rel_gap, cert.max_violation)
            if history:
                history[-1]["rel_gap"] = cert.rel_gap
            if best is None or cert.rel_gap < best[0].rel_gap:
                best = (cert, rho_full.copy(), U_full.copy(), in_W.copy())
            if cert.rel_gap <= tol and cert.max_violation <= feas_tol:
                reason = "optimal"
                break
            if not in_W.any():
                reason = "not_certified"
                break
            if as_last and as_refines < 2:
                # the active-set point did not certify: the active set goes on from it with a smaller
                # gain threshold for steps off the faces
                as_refines += 1
                as_gain = AS_GAIN_FINE
                logger.debug("active-set point not certified (rel gap %.3e); refining", cert.rel_gap)
            elif as_last:
                # still not certified: the barrier re-solves the restricted program
                use_as = as_last = False
                logger.debug("active-set point not certified (rel gap %.3e); the barrier takes over", cert.rel_gap)
            if gap_scale < 1e-6:
                reason = "not_certified"
                break
            if polished_since and not conic_done and int(in_W.sum()) * n > CONIC_MAX_ROWS:
                # too large for Clarabel (measured: digits, 139 blocks x 1257 rows did not finish in
                # minutes): the barrier goes 100x deeper below and Newton on the faces of that
                # better-centred point tries again
                conic_done = True
                barrier_floor = 0.0
                logger.debug("restricted program too large for the conic fallback; tightening the barrier")
            elif polished_since and not conic_done:
                # Newton on the faces ended on a wrong face: solve the restricted program with
                # Clarabel instead (then certify again; the KKT scan runs first). The barrier
                # alone at tight targets was measured to stall short of a certificate.
                conic_done = True
                blocks_now = np.flatnonzero(in_W)
                Uc = _restricted_conic(Xa, M, S, kernel, lam, bcol[blocks_now], bout[blocks_now],
                                       max(1e-12, min(1e-9, 1e-3 * tol)))
                if Uc is not None:
                    slack_c = S[:, bpat[blocks_now]] * (Xa @ Uc)
                    if slack_c.min(initial=0.0) >= -feas_tol:
                        U_full[:] = 0.0
                        U_full[:, blocks_now] = Uc
                        Zc = (M[:, bpat[blocks_now]] * bsign[blocks_now] * (Xa @ Uc)) @ np.eye(c)[bout[blocks_now]]
                        Z = Zc
                        theta = kernel.grad(Z).astype(np.float64)
                        rho_W = np.zeros((n, blocks_now.size))
                        polished_since = False
                        first = False
                        # Newton on the faces of Clarabel's (accurate) point finishes it
                        live = blocks_now[np.linalg.norm(Uc, axis=0) > 0]
                        pending = (live, CONIC_MU, 0.0) if live.size else None
                        continue
                polish_failed = True
                barrier_floor = 0.0
            gap_scale *= 1e-2  # restricted solve not accurate enough: tighten and redo
            add = np.zeros(0, np.intp)
        else:
            add = viol[:want]
        if (int(in_W.sum()) + add.size) * d > max_vars:
            reason = "working_set_too_large"
            break
        bad = [int(b) for b in add if direction(int(bpat[b])) is None]
        if bad:
            reason = "degenerate_cone"
            logger.info("cones of blocks %s have an empty interior", bad[:5])
            break
        in_W[add] = True
        blocks = np.flatnonzero(in_W)
        need = working_set_bytes(n, d, blocks.size, c)
        if need > budget:
            reason = "memory"
            logger.info("working set of %d blocks needs about %d bytes (budget %d)", blocks.size, need, budget)
            break
        if use_as:
            # a round whose scan found at least as many violators as it adds only moves towards
            # a working set that is still incomplete: a few Newton steps do
            early = AS_EARLY_NEWTON is not None and add.size > 0 and viol.size >= want
            # (a round that adds many blocks gets at least one Newton step per block)
            cap = min(max(AS_EARLY_NEWTON, add.size) if early else AS_ROUND_NEWTON, max(1, max_iter - total))
            step = _active_set_round(scanner, kernel, Xa, M, S, lam, bpat, bsign, bcol, bout, blocks, add,
                                     U_full, faces, theta, Z, basis, cap, as_gain,
                                     partial=early or continues < AS_MAX_CONTINUE)
            as_gain = AS_GAIN
            if step is not None:
                U, tight, rho_as, newton_as = step
                capped = newton_as >= cap and total + newton_as < max_iter
                continues = continues + 1 if capped and not early else 0
                if capped and not early:
                    logger.debug("active set used its %d Newton steps; the next round continues from its point", cap)
                total += newton_as
                rounds += 1
                faces[:, blocks] = tight
                U_full[:] = 0.0
                U_full[:, blocks] = U
                E = np.eye(c)[bout[blocks]]
                Z = (M[:, bpat[blocks]] * bsign[blocks] * (Xa @ U)) @ E
                theta = kernel.grad(Z).astype(np.float64)
                # zero blocks leave W (the KKT scan brings them back if they violate); a block
                # that came back once stays, so the working set cannot cycle
                small = (np.linalg.norm(U, axis=0) == 0.0) & ~returned[blocks]
                returned[blocks[small]] = True
                in_W[blocks[small]] = False
                rho_W = rho_as[:, ~small]
                as_last = True
                history.append({"round": rounds, "working_set": int(blocks.size), "newton": newton_as,
                                "status": "active_set", "added": int(add.size), "mu": 0.0, "polish_newton": 0})
                end, seen = _end_of_round(callback, lambda r=rho_W: certify(U_full, r, np.flatnonzero(in_W)),
                                          rounds, blocks.size, add.size, total, max_iter)
                if end is not None:
                    reason = end
                    if seen is not None:
                        cert, rho_full = seen
                    break
                continue
            use_as = as_last = False
            logger.debug("active-set restricted solve failed; the barrier takes over")
        # starting point: the current blocks pushed strictly inside their cones
        U0 = U_full[:, blocks].copy()
        zscale = max(float(np.abs(Z).max(initial=0.0)), float(np.abs(kernel.y64).max(initial=0.0)),
                     np.finfo(float).tiny)  # the predictions' scale (the targets' at the zero model)
        for pos, b in enumerate(blocks):
            g = direction(int(bpat[b]))
            xg = float(np.abs(Xa @ g).max(initial=1.0))
            U0[:, pos] += (EPS0 * zscale / max(xg, np.finfo(float).tiny)) * g
            # a warm start may violate its cone (an augmented-Lagrangian point): move it inside
            sg = S[:, bpat[b]] * (Xa @ g)
            su = S[:, bpat[b]] * (Xa @ U0[:, pos])
            if su.min(initial=1.0) <= 0.0:
                U0[:, pos] += (float(np.max((EPS0 * zscale - su) / sg)) if sg.min() > 0 else 0.0) * g
        obj_scale = max(abs(kernel.value(Z)), lam * float(np.linalg.norm(U_full, axis=0).sum()), 1e-300)
        gap_target = INNER_FRACTION * gap_scale * tol * obj_scale
        barrier_target = max(gap_target, BARRIER_REL * max(gap_scale, barrier_floor) * obj_scale)
        polished_since = False
        remaining = max(1, max_iter - total)
        nu = blocks.size * (n + 2.0)
        if add.size or cert is None:
            mu0 = max(MU0_ADD * obj_scale, gap_target) / nu
        else:
            mu0 = max(cert.gap, gap_target) / nu
        if STEEPEST_START and add.size:
            # entering blocks start along their steepest feasible direction Pi_K(c_b), each at
            # its own one-dimensional Newton step, scaled together by the best factor of a grid
            isnew = np.isin(blocks, add)
            steep = _entering_steps(scanner, kernel, Xa, M, S, bpat, bsign, bout, blocks[isnew], theta, Z, lam)
            if steep is not None:
                base_s = U0.copy()
                best_f, best_v = 0.0, barrier_objective(Xa, M, S, kernel, lam, bcol[blocks], bout[blocks], U0, mu0)
                for f in STEP_GRID:
                    Ut = base_s.copy()
                    Ut[:, isnew] += f * steep
                    v = barrier_objective(Xa, M, S, kernel, lam, bcol[blocks], bout[blocks], Ut, mu0)
                    if v < best_v:
                        best_f, best_v = f, v
                U0[:, isnew] += best_f * steep
                logger.debug("entering blocks start along their steepest directions, step factor %g", best_f)
        if PUSH_SEARCH and add.size:
            # scale the push of the new blocks to (roughly) centre the start at mu0
            isnew = np.isin(blocks, add)
            base = U_full[:, blocks].copy()
            if STEEPEST_START and steep is not None:
                base[:, isnew] += best_f * steep
            pushdir = U0 - base
            best_f, best_v = 1.0, np.inf
            for f in PUSH_GRID:
                Ut = base + pushdir * np.where(isnew, f, 1.0)
                v = barrier_objective(Xa, M, S, kernel, lam, bcol[blocks], bout[blocks], Ut, mu0)
                if v < best_v:
                    best_f, best_v = f, v
            U0 = base + pushdir * np.where(isnew, best_f, 1.0)
            logger.debug("interior push of the entering blocks scaled by %g", best_f)
        try:
            res = solve_restricted_barrier(Xa, M, S, kernel, lam, bcol[blocks], bout[blocks], U0,
                                           gap_target=barrier_target, max_newton=remaining, XX=XX, mu0=mu0)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            reason = "inner_solver"
            logger.info("restricted barrier solve failed: %s", exc)
            break
        total += res.newton
        rounds += 1
        U = res.U
        if not np.all(np.isfinite(U)):
            reason = "inner_solver"
            break
        # blocks the barrier keeps at the scale of mu become exact zeros when that does not
        # raise the objective by more than a tenth of the target gap
        E = np.eye(c)[bout[blocks]]
        coef = M[:, bpat[blocks]] * bsign[blocks]
        XU = Xa @ U
        nrm = np.linalg.norm(U, axis=0)
        F_keep = kernel.value((coef * XU) @ E) + lam * float(nrm.sum())
        small = nrm <= 1e-3 * float(nrm.max(initial=0.0))
        if small.any():
            keep = ~small
            F_drop = kernel.value((coef[:, keep] * XU[:, keep]) @ E[keep]) + lam * float(nrm[keep].sum())
            if F_drop <= F_keep + 0.1 * gap_target:
                U[:, small] = 0.0
                XU[:, small] = 0.0
            else:
                small[:] = False
        pending = ((blocks[~small], res.mu, gap_target)
                   if barrier_target > gap_target and (~small).any() and not polish_failed else None)
        U_full[:] = 0.0
        U_full[:, blocks] = U
        Z = (coef * XU) @ E
        theta = kernel.grad(Z).astype(np.float64)
        # zero blocks leave the working set (the KKT scan brings them back if they violate);
        # a block that came back once stays, so the working set cannot cycle
        small &= ~returned[blocks]
        returned[blocks[small]] = True
        in_W[blocks[small]] = False
        res.rho = res.rho[:, ~small]
        rho_W = res.rho
        history.append({"round": rounds, "working_set": int(blocks.size), "newton": res.newton,
                        "status": res.status, "added": int(add.size), "mu": res.mu,
                        "polish_newton": 0})
        end, seen = _end_of_round(callback, lambda r=rho_W, b=blocks: certify(U_full, r, b), rounds, blocks.size,
                                  add.size, total, max_iter)
        if end is not None:
            reason = end
            if seen is not None:
                cert, rho_full = seen
            break
    else:  # MAX_ROUNDS rounds without a certificate, with Newton steps left: the caller may continue
        reason = "max_rounds"
    if cert is None or reason not in ("optimal", "not_certified", "callback"):
        cert, rho_full = certify(U_full, rho_W if rho_W.shape[1] == int(in_W.sum()) else np.zeros((n, 0)),
                                 np.flatnonzero(in_W) if rho_W.shape[1] == int(in_W.sum()) else np.zeros(0, np.intp))
    if reason != "optimal" and best is not None and best[0].rel_gap < cert.rel_gap:
        # the tightening rounds did not improve on an earlier point: return that one
        cert, rho_full, U_full, in_W = best
    blocks = np.flatnonzero(in_W)
    converged = reason == "optimal"
    logger.info("working set: %d rounds, %d Newton steps, |W| = %d, rel gap %.3e (%s)", rounds, total,
                 blocks.size, cert.rel_gap, reason)
    return WorkingSetResult(T=U_full.reshape(d, 2 * p, c).copy(), rho=rho_full.reshape(n, 2 * p, c),
                            primal=cert.primal, dual=cert.dual, rel_gap=cert.rel_gap,
                            violation=cert.max_violation, iterations=total, rounds=rounds, working_set=blocks,
                            converged=converged, reason=reason, nnls_solves=counters["nnls"], history=history)
