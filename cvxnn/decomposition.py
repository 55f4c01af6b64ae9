"""Cone decompositions: ReLU models from gated ReLU models (``docs/math.md``, "Cone decomposition"; [MSP22] §3-4).

Given a C-GReLU point ``u`` (blocks ``u_i``, scalar or vector output), find for each block

    v_i, w_i in K_i = {w : Xt_i w >= 0}   with   v_i - w_i = u_i          (Xt_i = (2 D_i - I) X_a)

so that ``sum_i D_i X (v_i - w_i)`` is the gated fit and ``(v, w)`` is a C-ReLU point, i.e. a ReLU
network with the same predictions on the training data. Three methods, each solving every block at
once as one vectorised program (optionally in parallel chunks):

* ``"socp"``: ``min sum_i ||v_i|| + ||w_i||`` (the decomposition with the smallest ReLU penalty);
* ``"lp"``: the feasibility LP (zero objective; an interior-point solver returns a strictly
  feasible point when one exists);
* ``"gate"``: closed form along the gate ``g_i in K_i``: ``w_i = t_i g_i``, ``v_i = u_i + t_i g_i``
  with the smallest ``t_i >= 0`` that makes both cone-feasible (no solver; blocks whose cone is
  singular fall back to the LP).

Vector output (``U_i`` is ``d_a x c``) is decomposed through the SVD factors of each block
(``vector_mode="svd"``: ``U_i = sum_k s_k a_k b_k^T``, decompose ``s_k a_k``) or column by column
(``"columns"``); both give a columnwise C-ReLU point of :mod:`cvxnn.vector` and a ReLU network.

Existence: the decomposition of ``u_i`` exists iff ``u_i in K_i - K_i = span(K_i) =
{w : X_J w = 0}`` where ``J`` are the rows that vanish on all of ``K_i`` (the implicit equalities,
:func:`implicit_equalities`). A sampled gate with no ties (``x_j^T g != 0``) is interior to ``K_i``, so
every block decomposes; singular cones appear with ties (gates orthogonal to data points). Such
blocks are detected before solving (the blocks within ``tol`` of ``span(K_i)``, relative to the largest
block, are projected onto it; blocks of solver-noise size are zero); ``on_infeasible`` chooses to
raise, to report (drop them), or to refit them approximately (a small C-ReLU fit of their
contribution to the gated fit).

The report carries ``d*`` (gated objective), the ReLU objective of the decomposed network, and
the Theorem 3.7 bound ``d* + 2 lam kappa(X) sum ||u_i||`` where ``X_a`` has full row rank (so that
``kappa`` is its condition number and every block decomposes, Prop. 3.1).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from ._readout import _check_tolerance, relu_vector_to_network
from ._validation import as_float_array, check_lam, check_X, check_y
from .backends.cvxpy_adapter import check_cvxpy_solver, run_problem
from .errors import (
    InaccurateSolutionWarning,
    InfeasibleError,
    InvalidParameterError,
    NonFiniteError,
    ShapeError,
    SolverError,
)
from .losses import Loss, _same_loss, get_loss
from .operators import block_norms, forward
from .optimality.kkt import DEFAULT_ACTIVE_TOL
from .patterns import Patterns
from .solution import ConvexModel, cone_violation

__all__ = [
    "METHODS",
    "VECTOR_MODES",
    "DecompositionResult",
    "decompose",
    "implicit_equalities",
    "decomposable_blocks",
    "DEFAULT_DECOMPOSITION_CLARABEL_OPTIONS",
    "SPAN_TOL",
]

logger = logging.getLogger(__name__)

METHODS = ("socp", "lp", "gate")
ON_INFEASIBLE = ("raise", "refit", "report")
VECTOR_MODES = ("svd", "columns")

#: Default ``tol`` of the span test (:func:`decomposable_blocks`, :func:`decompose`): a block ``u_i``
#: lies in ``span(K_i)`` when ``|x_j^T u_i| <= SPAN_TOL ||x_j|| max_k ||u_k||`` on the implicit rows.
#: Measured on C-ReLU solutions ``U = V - W`` with ties (docs/decomposition.md): Clarabel's blocks lie
#: up to 8e-10 (of the largest block) off their spans, the native solver's up to 4e-5 at ``tol=1e-4``
#: and 9e-5 when stopped at its iteration limit; gated optima are off by 0.5 to 0.97.
SPAN_TOL = 1e-4
#: Blocks with norm at most this times the largest are solver noise (as in :mod:`cvxnn.optimality`,
#: :data:`~cvxnn.optimality.kkt.DEFAULT_ACTIVE_TOL`): one that fails the span test is treated as
#: zero, never reported infeasible.
ACTIVE_TOL = DEFAULT_ACTIVE_TOL

#: Extra Clarabel options for the decomposition programs (none: Clarabel's defaults, 1e-8; tighter
#: tolerances often end in "almost solved". The solver's residual cone violations are removed
#: afterwards by a shift along the gates, see :func:`decompose`).
DEFAULT_DECOMPOSITION_CLARABEL_OPTIONS: dict[str, float] = {}


# ----------------------------------------------------------------------------- solver plumbing
def _solver_name(solver: str | None) -> str:
    return check_cvxpy_solver(solver)


def _solve(problem: cp.Problem, solver: str, opts: dict, quiet: bool = True) -> str:
    """Solve through the CVXPY adapter with cvxnn's default tolerances and return cvxnn's status
    (``"optimal"``, ``"optimal_inaccurate"`` or ``"max_iterations"``)
    (``quiet=False`` leaves the warning filters alone: used inside worker threads, where the caller
    installs the filter once). Infeasible, unbounded and failed solves raise."""
    defaults: dict = {}
    if solver == "CLARABEL":
        defaults = dict(DEFAULT_DECOMPOSITION_CLARABEL_OPTIONS)
    elif solver == "SCS":
        defaults = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}
    if any(k.startswith("tol_") for k in opts):
        defaults = {k: v for k, v in defaults.items() if not k.startswith("tol_")}
    run = run_problem(problem, solver, what="the decomposition program", defaults=defaults, quiet=quiet,
                      warn=False, advice="Try solver='SCS' or method='gate'.", **opts)
    return run.status


# ----------------------------------------------------------------------------- cone structure
def implicit_equalities(X, patterns: Patterns, *, solver: str | None = None, **solver_opts) -> np.ndarray:
    """Rows ``j`` with ``x_j^T w = 0`` for every ``w in K_i`` (the implicit equalities of each cone).

    ``span(K_i) = K_i - K_i = {w : x_j^T w = 0, j in J_i}``; ``K_i - K_i = R^d`` iff ``J_i`` is empty.
    Rows where the gate is strict (``x_j^T g_i != 0``) are never implicit, and zero rows are
    ignored, so only patterns with ties need work: one vectorised LP over them,

        max sum_j s_j   s.t.  Xt_i w_i >= s_i,  0 <= s_i <= 1,

    whose optimum has ``s_j = 1`` exactly on the non-implicit rows.

    Parameters
    ----------
    X : array of shape (n, d)
        The training data of ``patterns``.
    patterns : Patterns
    solver : str, optional
        CVXPY solver for the LP (default Clarabel).

    Returns
    -------
    ndarray of bool, shape (n, p)
        ``True`` at the implicit-equality rows of each pattern.
    """
    if not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    patterns.check_data(X)
    Xa = patterns.design(X)
    S = patterns.signs()
    R = S * (Xa @ patterns.gates)
    nonzero_row = np.any(Xa != 0, axis=1)
    candidate = (R <= 0) & nonzero_row[:, None]
    out = np.zeros_like(candidate)
    tied = np.flatnonzero(candidate.any(axis=0))
    if tied.size == 0:
        return out
    name = _solver_name(solver)
    Wg = cp.Variable((Xa.shape[1], tied.size))
    s = cp.Variable((Xa.shape[0], tied.size))
    prob = cp.Problem(cp.Maximize(cp.sum(s)), [cp.multiply(S[:, tied], Xa @ Wg) >= s, s >= 0, s <= 1])
    status = _solve(prob, name, solver_opts)
    if s.value is None or status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise SolverError(f"the cone-structure LP ended with status {status!r}.", status="numerical_error")
    out[:, tied] = candidate[:, tied] & (s.value < 0.5)
    logger.debug("%d patterns with ties; %d have implicit equalities", tied.size,
                 int(out.any(axis=0).sum()))
    return out


def _flat(U: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Blocks as columns: ``(d_a, p c)``, the pattern of each column, and ``c`` (1 for scalar)."""
    if U.ndim == 2:
        return U, np.arange(U.shape[1]), 1
    d_a, p, c = U.shape
    return U.reshape(d_a, p * c), np.repeat(np.arange(p), c), c


#: joblib backends ``decompose`` accepts for ``n_jobs != 1``.
_JOBLIB_BACKENDS = ("loky", "threading", "multiprocessing", "dask", "ray", "sequential")


def decomposable_blocks(X, patterns: Patterns, U, *, tol: float = SPAN_TOL, implicit: np.ndarray | None = None,
                        solver: str | None = None) -> np.ndarray:
    """Which blocks ``u_i`` (columns, for vector output) lie in ``K_i - K_i`` (up to ``tol``).

    A block is decomposable iff ``|x_j^T u_i| <= tol * ||x_j|| * max_k ||u_k||`` on the
    implicit-equality rows ``J_i`` of its cone (see :func:`implicit_equalities`): the test is
    relative to the largest block, the scale of a solver's absolute errors (a C-ReLU solution's
    ``V - W`` lies off the spans by its cone violations, relative to the solution, not to each block).
    Blocks of norm at most ``ACTIVE_TOL`` (1e-6) times the largest are solver noise and count
    as decomposable (as zero: :func:`decompose` gives them ``v = w = 0``).

    Parameters
    ----------
    X : array (n, d)
    patterns : Patterns
    U : array (d_a, p) or (d_a, p, c)
    tol : float
        Tolerance of the membership test, relative to the largest block (default :data:`SPAN_TOL`).
    implicit : array of bool (n, p), optional
        Precomputed :func:`implicit_equalities`.
    solver : str, optional
        The LP solver of :func:`implicit_equalities` when ``implicit`` is not given.

    Returns
    -------
    ndarray of bool, shape (p,) or (p, c)

    Raises
    ------
    ShapeError
        ``U`` of the wrong shape.
    NonFiniteError
        ``U`` with NaN or infinity (such a block is in no span).
    """
    tol = _check_tolerance(tol, "tol")
    if not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    U = as_float_array(U, "U")
    if U.ndim not in (2, 3) or U.shape[:2] != (patterns.design_dim, patterns.n_patterns):
        raise ShapeError(f"U must have shape ({patterns.design_dim}, {patterns.n_patterns}[, c]), got {U.shape}.")
    if not np.all(np.isfinite(U)):  # NaN blocks passed every span test (|x^T u| > lim is False)
        raise NonFiniteError("U contains NaN or infinity.")
    if implicit is None:
        implicit = implicit_equalities(X, patterns, solver=solver)
    Xa = patterns.design(X)
    U2, owner, c = _flat(U)
    in_span, noise, _, _ = _span_test(Xa, implicit, U2, owner, tol)
    ok = in_span | noise
    return ok if U.ndim == 2 else ok.reshape(U.shape[1], c)


def _span_distances(Xa: np.ndarray, implicit: np.ndarray, cols: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """``max_j |x_j^T u| / ||x_j||`` over the implicit rows ``j in J_i`` of each column's cone
    (0 where ``J_i`` is empty): how far the column lies off ``span(K_i)`` along the rows that define it."""
    J = implicit[:, owner]
    dist = np.zeros(cols.shape[1])
    sel = np.flatnonzero(J.any(axis=0))
    if sel.size:
        rows = np.flatnonzero(J[:, sel].any(axis=1))
        nx = np.linalg.norm(Xa[rows], axis=1)
        A = np.abs(Xa[rows] @ cols[:, sel]) / np.where(nx > 0, nx, 1.0)[:, None]
        dist[sel] = np.max(np.where(J[np.ix_(rows, sel)], A, 0.0), axis=0)
    return dist


def _span_test(Xa: np.ndarray, implicit: np.ndarray, cols: np.ndarray, owner: np.ndarray,
               tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The span test of :func:`decomposable_blocks` on the columns ``cols``.

    Returns ``(in_span, noise, dist, top)``: ``dist <= tol * top`` (``dist`` from
    :func:`_span_distances`, ``top`` the largest column norm); and the columns that fail it but
    are solver noise (norm at most :data:`ACTIVE_TOL` times ``top``), which are treated as zero.
    """
    norms = np.linalg.norm(cols, axis=0)
    top = float(norms.max(initial=0.0))
    dist = _span_distances(Xa, implicit, cols, owner)
    in_span = dist <= tol * top
    noise = ~in_span & (norms <= ACTIVE_TOL * top)
    return in_span, noise, dist, top


def _project_to_spans(Xa: np.ndarray, implicit: np.ndarray, cols: np.ndarray, owner: np.ndarray,
                      which: np.ndarray) -> np.ndarray:
    """Copy of ``cols`` with the columns ``which`` projected onto ``span(K_i) = {w : X_{J_i} w = 0}``
    of their cone (unchanged where ``J_i`` is empty)."""
    out = cols.copy()
    for i in np.unique(owner[which]):
        rows = np.flatnonzero(implicit[:, i])
        if rows.size == 0:
            continue
        sel = np.flatnonzero(which & (owner == i))
        _, s, Vt = np.linalg.svd(Xa[rows], full_matrices=False)
        basis = Vt[s > s.max(initial=0.0) * max(Vt.shape) * np.finfo(float).eps]  # row space of X_J
        out[:, sel] -= basis.T @ (basis @ out[:, sel])
    return out


# ----------------------------------------------------------------------------- block solvers
#: ``method="gate"`` hands a block to the LP when its shift along the gate exceeds this multiple
#: of the block (``t ||g|| > GATE_SHIFT_MAX ||u||``): ``v - w = u`` then keeps about
#: ``eps * GATE_SHIFT_MAX`` relative accuracy (a margin of 1e-15 asked for t = 1e15 and lost u).
GATE_SHIFT_MAX = 1e6
#: A decomposition is reported exact only when its network reproduces the gated fit, and
#: ``v - w`` the blocks ``u``, to this relative accuracy (otherwise ``approximate=True`` and an
#: :class:`~cvxnn.errors.InaccurateSolutionWarning`).
EXACT_CHECK_TOL = 1e-6


def _gate_shift(Ab: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest ``t >= 0`` with ``Ab + t R >= 0`` per column (``R >= 0``); and where it exists."""
    pos = R > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pos, -Ab / np.where(pos, R, 1.0), -np.inf)
    t = np.maximum(0.0, ratio.max(axis=0, initial=0.0))
    ok = np.all(pos | (Ab >= 0), axis=0)
    return t, ok


def _solve_chunk(Xa: np.ndarray, S: np.ndarray, Ub: np.ndarray, method: str, solver: str,
                 opts: dict, quiet: bool = True) -> tuple[np.ndarray, str, float]:
    """Solve the decomposition program for the columns ``Ub`` (``d_a x q``) of one chunk.

    Variables: ``W`` (``d_a x q``); ``V = W + Ub`` is eliminated. Returns ``(W, status, seconds)``.
    The blocks are independent and each program is homogeneous in its block ``u_i``, so it is
    solved on unit-norm columns and ``W`` scaled back: the solver's absolute tolerances (~1e-8)
    otherwise swamp small blocks (``u * 1e-8`` gave a prediction gap of 25 % and a wrong minimum
    norm). The cone constraints are homogeneous in ``X_a`` too: data with entries below 1 are
    scaled up to a largest entry of 1 (``X * 1e-8`` left the constraints inside the solver's
    tolerance: a 4 % prediction gap); larger data are left alone (scaling raw wine data down
    to 1 gave cone violations of 1e-5).
    """
    col_scale = np.linalg.norm(Ub, axis=0)
    col_scale = np.where(col_scale > 0, col_scale, 1.0)
    Ub = Ub / col_scale
    x_max = float(np.abs(Xa).max(initial=0.0))
    if 0.0 < x_max < 1.0:
        Xa = Xa / x_max
    W = cp.Variable(Ub.shape)
    C = Xa @ Ub
    cons = [cp.multiply(S, Xa @ W) >= 0, cp.multiply(S, Xa @ W + C) >= 0]
    if method == "socp":
        objective = cp.Minimize(cp.sum(cp.norm(W + Ub, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0)))
    else:
        objective = cp.Minimize(0)
    prob = cp.Problem(objective, cons)
    t0 = time.perf_counter()
    try:
        status = _solve(prob, solver, opts, quiet=quiet)
    except InfeasibleError as exc:
        raise InfeasibleError(
            f"{solver} reports a decomposition chunk infeasible although every block passed the "
            "span test; the cones are nearly singular. Use method='gate', or another solver.",
            status="infeasible") from exc
    wall = time.perf_counter() - t0
    if W.value is None or not np.all(np.isfinite(W.value)):
        raise SolverError(f"{solver} returned no decomposition (status {status!r}).", status="numerical_error")
    return np.asarray(W.value) * col_scale, str(status), wall


def _polish(Xa, S, R, G, Ub, Wb, rel: float = 1e-6) -> np.ndarray:
    """Remove solver-size cone violations by moving ``v``, ``w`` together along the gate.

    ``w <- w + t g``, ``v = w + u`` keeps ``v - w = u``; ``t`` is the smallest shift that makes both
    feasible on the rows where the gate is strict; applied only when ``t ||g|| <= rel * scale`` with
    ``scale = max(||w|| + ||u||, largest such value in the chunk)``.
    """
    Aw = S * (Xa @ Wb)
    Av = Aw + S * (Xa @ Ub)
    tw, _ = _gate_shift(np.minimum(Aw, 0.0), R)
    tv, _ = _gate_shift(np.minimum(Av, 0.0), R)
    t = np.maximum(tw, tv)
    size = np.linalg.norm(Wb, axis=0) + np.linalg.norm(Ub, axis=0)
    size = np.maximum(size, size.max(initial=0.0))  # tiny (numerically zero) blocks: absolute scale
    apply = (t > 0) & (t * np.linalg.norm(G, axis=0) <= rel * size)
    return Wb + G * np.where(apply, t, 0.0)


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class DecompositionResult:
    """A ReLU model from a gated ReLU model, with the report of [MSP22] Thm 3.7.

    See ``docs/math.md``, "Cone decomposition".

    Attributes
    ----------
    model : ConvexModel
        The C-ReLU point ``(V, W)`` (``activation="relu"``, same patterns, same block shape).
    network : ReLUNetwork
        Its ReLU network (exact map; vector output via :func:`cvxnn.vector.relu_vector_to_network`).
    method : str
    feasible : ndarray of bool, shape (p,), (p, r) or (p, c)
        Blocks that lie in ``K_i - K_i`` (within ``tol``; solver-noise blocks treated as zero count
        as feasible): scalar blocks; for vector output the left singular factors
        ``k < r = min(d_a, c)`` (``vector_mode="svd"``) or the columns (``"columns"``).
    infeasible_blocks : list of tuple
        ``(i,)`` or ``(i, k)`` (factor or column ``k`` of block ``i``) that do not decompose.
    approximate : bool
        True when infeasible blocks were dropped (``"report"``) or refitted (``"refit"``), or a
        decomposition program ended short of optimal (see :attr:`statuses`): the ReLU point may
        then violate its cones (:attr:`max_violation`) and its predictions differ from the gated
        ones (:attr:`prediction_gap`).
    d_star : float or None
        Objective of the gated model (``d*`` at an optimum).
    relu_objective : float or None
        Objective of :attr:`network`.
    bound : float or None
        ``d* + 2 lam kappa sum_i ||u_i||`` (scalar; nuclear norms for ``vector_mode="svd"``) or the
        columnwise analogue ``d* + lam ((1 + 2 kappa) sum_{i,k} ||u_ik|| - sum_i ||U_i||_*)``, when
        ``X_a`` has full row rank; None otherwise (see :attr:`notes`). An upper bound on the
        ReLU optimum ``p*`` and on the objective of the SOCP's network (``method="socp"``
        minimises the norms); the LP and gate methods do not minimise them, and their network
        can lie above it.
    kappa : float or None
        Condition number of ``X_a`` when it has full row rank.
    max_violation : float
        Largest cone violation of ``V``, ``W``.
    reconstruction_error : float
        ``max |(v_i - w_i) - u_i|`` over the decomposed blocks: rounding, plus the projection onto
        ``span(K_i)`` of the blocks of singular cones that pass the span test within ``tol``, and
        the solver-noise blocks off the span set to zero.
    prediction_gap : float
        ``max |f_ReLU(X) - f_gated(X)|`` on the training data.
    solve_time : float
        Seconds in the decomposition programs.
    statuses : tuple of str
        cvxnn statuses of the programs (one per chunk: ``"optimal"``, ``"optimal_inaccurate"``,
        ``"max_iterations"``; ``"closed_form"`` for the gate shift).
    notes : list of str
    """

    model: ConvexModel
    network: Any
    method: str
    feasible: np.ndarray
    infeasible_blocks: list
    approximate: bool
    d_star: float | None
    relu_objective: float | None
    bound: float | None
    kappa: float | None
    max_violation: float
    reconstruction_error: float
    prediction_gap: float
    solve_time: float
    statuses: tuple
    notes: list = field(default_factory=list)

    @property
    def all_feasible(self) -> bool:
        """Whether every block lies in ``K_i - K_i`` (decomposes in principle); whether the
        decomposition returned is exact is :attr:`approximate`."""
        return not self.infeasible_blocks

    def summary(self) -> str:
        """A few lines: feasibility, d*, ReLU objective, bound, accuracy."""
        def fmt(v):
            return "n/a" if v is None else f"{v:.10g}"

        lines = [
            f"method            : {self.method} ({len(self.statuses)} program(s), {self.solve_time:.3f} s)",
            f"blocks decomposed : {int(self.feasible.sum())} / {self.feasible.size}"
            + ("" if self.all_feasible else f"  infeasible: {self.infeasible_blocks[:10]}")
            + (" (approximate)" if self.approximate else " (exact)"),
            f"gated d*          : {fmt(self.d_star)}",
            f"ReLU objective    : {fmt(self.relu_objective)}",
            f"Thm 3.7 bound (p*): {fmt(self.bound)}" + ("" if self.kappa is None else f"  (kappa {self.kappa:.4g})"),
            f"cone violation    : {self.max_violation:.2e}",
            f"|v - w - u|       : {self.reconstruction_error:.2e}",
            f"prediction gap    : {self.prediction_gap:.2e}",
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- main entry
def _full_row_rank_kappa(Xa: np.ndarray) -> float | None:
    n, d = Xa.shape
    if n > d:
        return None
    s = np.linalg.svd(Xa, compute_uv=False)
    if s.size == 0 or s[-1] <= s[0] * max(n, d) * np.finfo(float).eps:
        return None
    return float(s[0] / s[-1])


def decompose(
    solution_or_model: ConvexModel,
    X,
    y=None,
    *,
    lam: float | None = None,
    loss: str | Loss | None = None,
    method: str = "socp",
    solver: str | None = None,
    n_jobs: int = 1,
    chunk_size: int | None = None,
    backend: str | None = None,
    vector_mode: str = "svd",
    on_infeasible: str = "raise",
    tol: float = SPAN_TOL,
    refit_lam: float | None = None,
    **solver_opts,
) -> DecompositionResult:
    """Decompose a C-GReLU point into a C-ReLU point and a ReLU network (cone decomposition).

    Parameters
    ----------
    solution_or_model : ConvexModel or ConvexSolution
        ``activation="gated_relu"``, blocks ``(d_a, p)`` or ``(d_a, p, c)``.
    X : array of shape (n, d)
        Its training data.
    y : array, optional
        Targets, one column per output of the model; needed for the objectives when blocks are
        refitted / dropped, and for ``d*`` when the model is not a solution with an objective value.
    lam : float, optional
        Regularisation (default: the solution's ``lam``).
    loss : str or Loss, optional
        Default: the solution's loss, else ``"squared"``.
    method : {"socp", "lp", "gate"}
        Minimum-norm SOCP, feasibility LP, or closed form along the gates.
    solver : str, optional
        CVXPY solver (default Clarabel with its default tolerances). Residual cone violations of the
        solver's point are removed by moving ``v_i`` and ``w_i`` together along the gate ``g_i``
        (``v_i - w_i`` unchanged) when the shift is below ``1e-6`` of the block scale.
    n_jobs : int
        Solve the blocks in this many parallel chunks (joblib processes); 1 = one program.
    chunk_size : int, optional
        Blocks per program (default: all blocks split evenly over ``n_jobs``).
    backend : str, optional
        joblib backend for ``n_jobs != 1`` (default joblib's, processes; ``"threading"`` avoids the
        process start-up, worthwhile for small programs).
    vector_mode : {"svd", "columns"}
        Vector output only. ``"svd"`` (default): decompose the left singular factors ``s_k a_k``
        of each block ``U_i = sum_k s_k a_k b_k^T``; the network has neurons ``(v_k, b_k)`` and
        ``(w_k, -b_k)`` with penalty ``sum_k s_k (||v_k|| + ||w_k||)`` -- up to ``sqrt(c)`` times
        smaller than columnwise, and the Theorem 3.7 bound keeps its scalar form with
        ``sum_i ||U_i||_*``. ``"columns"``: decompose every column of ``U_i`` (the columnwise
        C-ReLU blocks of :mod:`cvxnn.vector`). Either way :attr:`DecompositionResult.model` is a
        columnwise C-ReLU point with ``V - W = U`` (for ``"svd"`` by the sign split
        ``V_i = sum_k v_k (b_k)_+^T + w_k (b_k)_-^T``, ``W_i = sum_k w_k (b_k)_+^T + v_k (b_k)_-^T``).
    on_infeasible : {"raise", "refit", "report"}
        What to do with blocks ``u_i`` outside ``K_i - K_i``: raise
        :class:`~cvxnn.errors.InfeasibleError` naming them; refit their contribution to the gated
        fit with a C-ReLU program on their patterns (squared loss, ``refit_lam``; approximate); or
        drop them and report.
    tol : float
        Tolerance of the span test (:func:`decomposable_blocks`), relative to the largest item
        (block, column, or SVD factor ``s_k a_k``); default :data:`SPAN_TOL` (1e-4), above the
        distances of solver-produced blocks (C-ReLU solutions ``V - W``) from their spans.
        Items that pass it are projected onto ``span(K_i)`` before solving;
        :attr:`DecompositionResult.reconstruction_error` reports the change, and a change above
        ``1e-6`` (relative) makes the result ``approximate`` with an
        :class:`~cvxnn.errors.InaccurateSolutionWarning`. Items of norm at most ``ACTIVE_TOL``
        (1e-6) times the largest that fail it are solver noise: treated as zero (noted), never
        infeasible.
    refit_lam : float, optional
        ``lam`` of the refit (default: ``lam``, or 1e-6 when that is None or 0).
    **solver_opts
        Passed to :meth:`cvxpy.Problem.solve`.

    Returns
    -------
    DecompositionResult

    Raises
    ------
    InvalidParameterError, ShapeError, LabelError
        Bad arguments, ``y`` with another number of outputs than the model, labels the loss
        cannot take: all checked before the first solve.
    InfeasibleError
        ``on_infeasible="raise"`` and items off ``span(K_i)`` (named, with their distances).
    """
    model = solution_or_model
    if not isinstance(model, ConvexModel):
        raise InvalidParameterError(f"expected a ConvexModel / ConvexSolution, got {type(model).__name__}.")
    if not model.spec.gated:
        raise InvalidParameterError("decompose needs a gated ReLU (C-GReLU) model; a C-ReLU model is already "
                                    "a ReLU model (use model.to_network()).")
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidParameterError(f"method must be one of {METHODS}, got {method!r}.")
    if not isinstance(vector_mode, str) or vector_mode not in VECTOR_MODES:
        raise InvalidParameterError(f"vector_mode must be one of {VECTOR_MODES}, got {vector_mode!r}.")
    if not isinstance(on_infeasible, str) or on_infeasible not in ON_INFEASIBLE:
        raise InvalidParameterError(f"on_infeasible must be one of {ON_INFEASIBLE}, got {on_infeasible!r}.")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0 or n_jobs < -1:
        raise InvalidParameterError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}.")
    if chunk_size is not None and (isinstance(chunk_size, (bool, np.bool_))
                                   or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise InvalidParameterError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    tol = _check_tolerance(tol, "tol")
    if refit_lam is not None:
        refit_lam = check_lam(refit_lam, name="refit_lam")
    X = check_X(X)
    pats = model.patterns
    pats.check_data(X)
    U = np.asarray(model.U, dtype=float)
    if y is not None:
        # every input is checked before the first solve (implicit_equalities runs an LP)
        y = check_y(y, X.shape[0])
        n_out = 1 if U.ndim == 2 else U.shape[2]
        y_out = 1 if y.ndim == 1 else y.shape[1]
        if y_out != n_out:
            raise ShapeError(f"y has {y_out} output(s) (shape {y.shape}) but the model has {n_out} "
                             f"(blocks of shape {U.shape}).")
    if lam is None:
        lam = getattr(model, "lam", None)
    lam = None if lam is None else check_lam(lam)
    if loss is None:
        loss = getattr(model, "loss", None) or "squared"
    loss_obj = get_loss(loss)
    if y is not None:
        y = loss_obj.check_targets(y)  # labels of the loss, as build_program requires
    if backend is not None and backend not in _JOBLIB_BACKENDS:
        raise InvalidParameterError(f"backend must be None or one of {_JOBLIB_BACKENDS} (joblib), got {backend!r}.")
    if backend is not None and n_jobs != 1:
        from joblib import parallel_config

        try:
            with parallel_config(backend=backend):
                logger.debug("decompose: the joblib backend %r is available", backend)
        except ValueError as exc:  # e.g. "ray" without ray installed, "dask" without a client
            raise InvalidParameterError(f"the joblib backend {backend!r} is not available here ({exc}); "
                                        "install it or use 'loky' or 'threading'.") from None
    name = _solver_name(solver) if method != "gate" else (None if solver is None else _solver_name(solver))

    Xa = pats.design(X)
    d_a, p = U.shape[:2]
    svd_mode = U.ndim == 3 and vector_mode == "svd"
    if svd_mode:
        # rank-one pieces s_k a_k b_k^T of every block; the left factors s_k a_k are decomposed
        A, sv, Bt = np.linalg.svd(np.transpose(U, (1, 0, 2)), full_matrices=False)
        width = sv.shape[1]
        cols = np.transpose(A * sv[:, None, :], (1, 0, 2)).reshape(d_a, p * width)
        owner = np.repeat(np.arange(p), width)
        right = Bt.reshape(p * width, -1)
    else:
        cols, owner, width = _flat(U)
        right = None
    S_all = pats.signs()[:, owner]
    G_all = pats.gates[:, owner]
    R_all = S_all * (Xa @ G_all)  # >= 0 up to rounding: the gate lies in its cone

    implicit = implicit_equalities(X, pats, solver=name)
    # the test is relative to the largest item (block, column, or SVD factor s_k a_k): a solver's
    # errors are absolute at the scale of its solution (C-ReLU solutions V - W: up to 4e-5 of the
    # largest block at the native solver's tol=1e-4, but 6e-2 of some smaller blocks' own norms),
    # and the SVD's rounding factors (~eps s_1, arbitrary directions) stay far below it
    ref = np.repeat(sv[:, 0], width) if svd_mode else np.linalg.norm(cols, axis=0)
    in_span, noise, dist, top = _span_test(Xa, implicit, cols, owner, tol)
    nonzero = np.linalg.norm(cols, axis=0) > 0
    noise &= nonzero
    feasible_flat = in_span | noise
    bad = np.flatnonzero(~feasible_flat & nonzero)
    work = cols
    if implicit.any():
        # the columns that pass go into span(K_i) exactly (each moves by about its distance from the
        # span; reconstruction_error shows it): the program on unit-norm columns is infeasible for a
        # column off the span by more than the solver's tolerance (1e-3 off, passing tol=1e-2);
        # noise columns off the span are zero
        work = _project_to_spans(Xa, implicit, cols, owner, in_span & nonzero)
        work[:, noise] = 0.0
        work[:, np.linalg.norm(work, axis=0) <= 16 * np.finfo(float).eps * ref] = 0.0
    infeasible_blocks = [tuple(int(v) for v in divmod(j, width)) if U.ndim == 3 else (int(j),) for j in bad]
    what = "left singular factor(s)" if svd_mode else ("column(s)" if U.ndim == 3 else "block(s)")
    if bad.size and on_infeasible == "raise":
        shown = ", ".join(str(b) for b in infeasible_blocks[:10])
        raise InfeasibleError(
            f"{bad.size} {what} of u lie outside K_i - K_i (singular cones): {shown}"
            f"{' ...' if bad.size > 10 else ''}, off span(K_i) by {dist[bad].min() / top:.1e} to "
            f"{dist[bad].max() / top:.1e} of the largest (tol={tol:g}). Use on_infeasible='refit' "
            "(approximate ReLU fit of their contribution) or 'report' (drop them), or sample gates without ties.",
            status="infeasible",
        )
    notes: list[str] = []
    if noise.any():
        notes.append(f"{int(noise.sum())} {what} of norm at most {ACTIVE_TOL:g} of the largest lie off "
                     "span(K_i): solver noise, treated as zero.")
    checked = np.flatnonzero(feasible_flat & nonzero)  # reconstruction measured against the input
    todo = np.flatnonzero(feasible_flat & (np.linalg.norm(work, axis=0) > 0))
    Wf = np.zeros_like(cols)
    statuses: list[str] = []
    solve_time = 0.0

    if todo.size:
        lp_cols = todo
        if method == "gate":
            A_t = S_all[:, todo] * (Xa @ work[:, todo])
            t, ok = _gate_shift(A_t, R_all[:, todo])
            # a tiny margin (a data point nearly orthogonal to the gate) asks for a huge shift, and
            # v - w = u is then lost to rounding (t = 1e15: an O(1) prediction error called exact)
            far = ok & (t * np.linalg.norm(G_all[:, todo], axis=0)
                        > GATE_SHIFT_MAX * np.linalg.norm(work[:, todo], axis=0))
            ok &= ~far
            Wf[:, todo[ok]] = G_all[:, todo[ok]] * t[ok]
            lp_cols = todo[~ok]
            statuses.append("closed_form")
            if lp_cols.size - int(far.sum()):
                notes.append(f"{lp_cols.size - int(far.sum())} block(s) with singular cones used the LP instead "
                             "of the gate.")
            if far.any():
                notes.append(f"{int(far.sum())} block(s) whose gate has a margin too small for an accurate shift "
                             f"(over {GATE_SHIFT_MAX:g} times the block) used the LP instead of the gate.")
        if lp_cols.size:
            sub = "socp" if method == "socp" else "lp"
            n_chunks = 1
            if chunk_size is not None:
                n_chunks = math.ceil(lp_cols.size / chunk_size)
            elif n_jobs != 1:
                from joblib import effective_n_jobs

                n_chunks = min(lp_cols.size, effective_n_jobs(n_jobs))
            chunks = [ch for ch in np.array_split(lp_cols, n_chunks) if ch.size]
            args = [(Xa, S_all[:, ch], work[:, ch], sub, name, solver_opts) for ch in chunks]
            if n_jobs == 1 or len(chunks) == 1:
                results = [_solve_chunk(*a) for a in args]
            else:
                from joblib import Parallel, delayed, parallel_config

                # "dask" / "ray" are joblib backends of a context (Parallel(backend="dask") raised);
                # process workers silence CVXPY's inaccuracy warning themselves (the parent's filter
                # does not reach them), threads share the filter set once here
                threads = backend == "threading"
                try:
                    context = parallel_config(backend=backend) if backend is not None else contextlib.nullcontext()
                except ValueError as exc:  # e.g. "ray" without ray installed
                    raise InvalidParameterError(f"the joblib backend {backend!r} is not available here ({exc}); "
                                                "install it or use 'loky' or 'threading'.") from None
                with warnings.catch_warnings(), context:
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    results = Parallel(n_jobs=n_jobs)(delayed(_solve_chunk)(*a, quiet=not threads) for a in args)
            for ch, (Wb, st, sec) in zip(chunks, results, strict=True):
                Wf[:, ch] = _polish(Xa, S_all[:, ch], R_all[:, ch], G_all[:, ch], work[:, ch], Wb)
                statuses.append(st)
                solve_time += sec
    inexact = [st for st in statuses if st not in ("optimal", "closed_form")]
    if inexact:
        warnings.warn(
            f"{len(inexact)} decomposition program(s) ended with status {inexact[0]!r}; the cone "
            "violation and prediction gap in the result show the accuracy reached.",
            InaccurateSolutionWarning, stacklevel=2)
    Vf = Wf + work
    Vf[:, ~feasible_flat | ~nonzero] = 0.0
    Wf[:, ~feasible_flat | ~nonzero] = 0.0
    recon = float(np.abs((Vf - Wf) - cols)[:, checked].max(initial=0.0))

    if svd_mode:
        V, W = _sign_split(Vf, Wf, right, owner, p)
        network = _rank_one_network(Vf, Wf, right, pats.bias)
    else:
        V, W = Vf.reshape(U.shape), Wf.reshape(U.shape)
        network = None
    # not exact either when a program stopped short of its optimum (its point is not in the cones)
    approximate = bool(bad.size) or bool(inexact)
    refit_model = None
    if bad.size and on_infeasible == "refit":
        if svd_mode:
            Vs, Ws = _sign_split(cols[:, bad], np.zeros((d_a, bad.size)), right[bad], owner[bad], p)
            Ubad = Vs - Ws  # sum over the bad factors of s_k a_k b_k^T
        else:
            Ubad_cols = np.zeros_like(cols)
            Ubad_cols[:, bad] = cols[:, bad]
            Ubad = Ubad_cols.reshape(U.shape)
        Vr, Wr, idx = _refit(X, pats, Ubad, np.unique(owner[bad]), lam, refit_lam, name, solver_opts, notes)
        V, W = V.copy(), W.copy()
        V[:, idx] += Vr
        W[:, idx] += Wr
        refit_model = (Vr, Wr, idx)
    elif bad.size:
        notes.append(f"{bad.size} infeasible {'factor' if svd_mode else 'block'}(s) dropped "
                     "(on_infeasible='report').")
    relu_model = ConvexModel(activation="relu", patterns=pats, V=V, W=W)
    if svd_mode:
        if refit_model is not None:
            Vr, Wr, idx = refit_model
            part = ConvexModel(activation="relu", patterns=pats.subset(idx), V=Vr, W=Wr)
            network = _concat_networks(network, relu_vector_to_network(part, X=X))
    elif U.ndim == 3:
        network = relu_vector_to_network(relu_model, X=X)
    else:
        network = relu_model.to_network()

    f_gated = forward(Xa, pats.mask, U)
    prediction_gap = float(np.max(np.abs(network.predict(X) - f_gated), initial=0.0))
    max_violation = max(cone_violation(Xa, pats.mask, V), cone_violation(Xa, pats.mask, W))
    # the result is checked, not trusted: a decomposition whose network misses the gated fit (or
    # its blocks u) beyond rounding is not exact, whatever produced it
    f_scale = max(float(np.abs(f_gated).max(initial=0.0)), np.finfo(float).tiny)
    u_scale = max(float(np.abs(cols[:, checked]).max(initial=0.0)), np.finfo(float).tiny)
    if not approximate and (prediction_gap > EXACT_CHECK_TOL * f_scale or recon > EXACT_CHECK_TOL * u_scale):
        approximate = True
        msg = (f"the decomposition misses the gated model: prediction gap {prediction_gap:.2e} "
               f"({prediction_gap / f_scale:.1e} relative), |v - w - u| {recon:.2e}; it is approximate.")
        notes.append(msg)
        warnings.warn(msg, InaccurateSolutionWarning, stacklevel=2)

    # --- report: d*, ReLU objective, bound
    d_star = relu_obj = bound = None
    gated_pen = model.penalty()
    if lam is not None:
        if y is not None:
            d_star = float(model.objective(X, y, lam, loss_obj))
            relu_obj = float(network.objective(X, y, lam, loss_obj))
        elif (getattr(model, "objective_value", None) is not None and np.isfinite(model.objective_value)
              and getattr(model, "lam", None) is not None
              and _same_loss(get_loss(getattr(model, "loss", None) or "squared"), loss_obj)):
            prog_pen = getattr(model, "program_penalty", None)
            prog_pen = gated_pen if prog_pen is None else prog_pen
            # the loss term is the solution's objective less *its own* lam times its penalty (with
            # the lam passed here, decompose(sol, X, lam=0.5) reported d* at the solution's lam)
            d_star = float(model.objective_value - model.lam * prog_pen + lam * gated_pen)
            if not approximate:
                relu_obj = float(d_star + lam * (network.penalty() - gated_pen))
            else:
                notes.append("pass y to evaluate the ReLU objective of an approximate decomposition.")
        else:
            notes.append("pass y (or a solution with an objective value, lam and this loss) to get d* and the ReLU "
                         "objective.")
    else:
        notes.append("lam unknown: pass lam to get d*, the ReLU objective and the bound.")
    kappa = _full_row_rank_kappa(Xa)
    if kappa is None:
        notes.append("Thm 3.7 bound not computed: X_a is not of full row rank, so kappa(X_J) of [MSP22] "
                     "is not available here.")
    elif d_star is not None:
        if U.ndim == 2 or svd_mode:
            bound = float(d_star + 2.0 * lam * kappa * block_norms(U).sum())
        else:
            cols = float(np.linalg.norm(U, axis=0).sum())
            bound = float(d_star + lam * ((1.0 + 2.0 * kappa) * cols - gated_pen))
    logger.debug("decomposed %d blocks (%d infeasible) by %s in %.3f s", todo.size, bad.size, method, solve_time)
    if svd_mode:
        notes.append("vector output decomposed through the SVD factors of each block (vector_mode='svd').")
    feasible = feasible_flat | ~nonzero
    return DecompositionResult(
        model=relu_model,
        network=network,
        method=method,
        feasible=feasible if U.ndim == 2 else feasible.reshape(p, width),
        infeasible_blocks=infeasible_blocks,
        approximate=approximate,
        d_star=d_star,
        relu_objective=relu_obj,
        bound=bound,
        kappa=kappa,
        max_violation=float(max_violation),
        reconstruction_error=recon,
        prediction_gap=prediction_gap,
        solve_time=solve_time,
        statuses=tuple(statuses),
        notes=notes,
    )


def _refit(X, pats, Ubad, idx, lam, refit_lam, solver, solver_opts, notes):
    """Approximate path: fit the infeasible part ``Ubad`` of the gated model (its contribution
    ``sum_i D_i X Ubad_i``) with a C-ReLU program on the patterns ``idx`` (squared loss)."""
    from .builders import build_program

    Xa = pats.design(X)
    target = forward(Xa, pats.mask, Ubad)
    rl = refit_lam if refit_lam is not None else (lam if lam else 1e-6)
    rl = check_lam(rl)
    prog = build_program(X, target, activation="relu", loss="squared", lam=rl, patterns=pats.subset(idx))
    sol = prog.solve(solver or "CLARABEL", **solver_opts)
    Vr, Wr = sol.V, sol.W
    if Ubad.ndim == 3 and Vr.ndim == 2:  # a single output column: keep the (d_a, q, c) layout
        Vr, Wr = Vr[:, :, None], Wr[:, :, None]
    err = float(np.abs(sol.train_predict(X) - target).max())
    # a refit stopped short is said here too (statuses holds the decomposition programs only)
    stopped = "" if sol.status == "optimal" else f"; the refit program ended with status {sol.status!r}"
    notes.append(f"infeasible part on {idx.size} pattern(s) refitted by C-ReLU (squared loss, lam={rl:g}); "
                 f"max refit error {err:.2e} (approximate{stopped}).")
    return Vr, Wr, idx


def _sign_split(Vf: np.ndarray, Wf: np.ndarray, right: np.ndarray, owner: np.ndarray, p: int):
    """Columnwise C-ReLU blocks of rank-one pieces ``(v_q - w_q) b_q^T`` (``v_q, w_q in K_i``).

    ``V_i = sum_q v_q (b_q)_+^T + w_q (b_q)_-^T`` and ``W_i = sum_q w_q (b_q)_+^T + v_q (b_q)_-^T``
    have every column in ``K_i`` (nonnegative combinations) and ``V_i - W_i = sum_q (v_q - w_q) b_q^T``.
    """
    d_a, c = Vf.shape[0], right.shape[1]
    bp, bn = np.maximum(right, 0.0), np.maximum(-right, 0.0)
    V = np.zeros((p, d_a, c))
    W = np.zeros((p, d_a, c))
    np.add.at(V, owner, np.einsum("dq,qc->qdc", Vf, bp) + np.einsum("dq,qc->qdc", Wf, bn))
    np.add.at(W, owner, np.einsum("dq,qc->qdc", Wf, bp) + np.einsum("dq,qc->qdc", Vf, bn))
    return np.transpose(V, (1, 0, 2)), np.transpose(W, (1, 0, 2))


def _rank_one_network(Vf: np.ndarray, Wf: np.ndarray, right: np.ndarray, bias: bool):
    """ReLU network with neurons ``(v_q / sqrt||v_q||, +sqrt||v_q|| b_q)`` and
    ``(w_q / sqrt||w_q||, -sqrt||w_q|| b_q)`` (``||b_q|| = 1``): penalty ``sum ||v_q|| + ||w_q||``."""
    from .networks import ReLUNetwork

    firsts, seconds = [], []
    for F, sgn in ((Vf, 1.0), (Wf, -1.0)):
        nv = np.linalg.norm(F, axis=0)
        k = nv > 0
        root = np.sqrt(nv[k])
        firsts.append(F[:, k] / root)
        seconds.append(sgn * right[k] * root[:, None])
    A = np.hstack(firsts)
    w2 = np.vstack(seconds)
    if bias:
        return ReLUNetwork(W1=A[:-1], w2=w2, b1=A[-1])
    return ReLUNetwork(W1=A, w2=w2)


def _concat_networks(a, b):
    """A ReLU network with the neurons of ``a`` and ``b`` (same input and output sizes)."""
    from .networks import ReLUNetwork

    if (a.b1 is None) != (b.b1 is None):
        raise ShapeError("cannot concatenate networks with and without a bias.")  # pragma: no cover
    b1 = None if a.b1 is None else np.concatenate([a.b1, b.b1])
    return ReLUNetwork(W1=np.hstack([a.W1, b.W1]), w2=np.vstack([a.w2, b.w2]), b1=b1)
