"""The one adapter between cvxnn and every CVXPY solver.

Everything cvxnn solves with CVXPY (the convex programs, the cone decompositions, the
minimum-norm QP of the optimal set, the copositive relaxation) goes through :func:`run_problem`,
which

* checks the solver name (:func:`check_cvxpy_solver`) and fills in cvxnn's default options
  (:data:`DEFAULT_SCS_OPTIONS`; ``canon_backend``);
* turns CVXPY's exceptions into typed :mod:`cvxnn.errors` (a failing solver, a bad option, an
  iteration limit too large for the solver, a solver that cannot take the program's cones);
* maps CVXPY's status with the one table :data:`CVXPY_STATUS_MAP`. A status not in the table is
  never guessed: it raises :class:`~cvxnn.errors.SolverError` naming it. ``"infeasible"`` and
  ``"unbounded"`` raise :class:`~cvxnn.errors.InfeasibleError` /
  :class:`~cvxnn.errors.UnboundedError`, ``"numerical_error"`` raises
  :class:`~cvxnn.errors.SolverError`; only ``"optimal"``, ``"optimal_inaccurate"`` and
  ``"max_iterations"`` come back as a status (the last two with an
  :class:`~cvxnn.errors.InaccurateSolutionWarning`).

:func:`solve_program` does that for a :class:`~cvxnn.program.ConvexProgram` and reads the
weights, the cone multipliers and the statistics back into a
:class:`~cvxnn.solution.ConvexSolution`. Before the first compilation it estimates the memory
CVXPY will need (about :data:`BYTES_PER_NONZERO` bytes per nonzero of the compiled problem,
:func:`estimate_nonzeros`) and refuses with :class:`~cvxnn.errors.MemoryBudgetError` when that
exceeds the budget (:func:`cvxnn.operators.default_memory_budget`: half of the memory this process
may use, cgroup limits included).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from .._validation import check_lam, check_positive_int
from ..activations import get_activation
from ..errors import (
    InaccurateSolutionWarning,
    InfeasibleError,
    InvalidParameterError,
    MemoryBudgetError,
    SolverError,
    UnboundedError,
)
from ..operators import default_memory_budget
from ..solution import STATUSES, ConvexSolution
from .capabilities import native_supports

__all__ = [
    "BYTES_PER_NONZERO",
    "CVXPY_STATUS_MAP",
    "DEFAULT_CANON_BACKEND",
    "DEFAULT_SCS_OPTIONS",
    "CvxpyRun",
    "check_cvxpy_solver",
    "check_memory",
    "compile_program",
    "estimate_nonzeros",
    "map_status",
    "psd_solver_bytes",
    "run_problem",
    "solve_program",
]

logger = logging.getLogger(__name__)

#: CVXPY status -> cvxnn status (:data:`cvxnn.solution.STATUSES`). Anything else raises.
CVXPY_STATUS_MAP: dict[str, str] = {
    cp.OPTIMAL: "optimal",
    cp.OPTIMAL_INACCURATE: "optimal_inaccurate",
    cp.USER_LIMIT: "max_iterations",
    cp.INFEASIBLE: "infeasible",
    cp.INFEASIBLE_INACCURATE: "infeasible",
    cp.UNBOUNDED: "unbounded",
    cp.UNBOUNDED_INACCURATE: "unbounded",
    cp.settings.INFEASIBLE_OR_UNBOUNDED: "infeasible",
    cp.SOLVER_ERROR: "numerical_error",
}
assert set(CVXPY_STATUS_MAP.values()) <= set(STATUSES)

#: Options used for SCS unless the caller passes their own (SCS's defaults are loose).
#: Iteration-limit option name of common CVXPY solvers (``max_iter`` of :func:`cvxnn.solve`
#: becomes this option; a run that reaches it is ``"max_iterations"``, whatever the solver says).
CVXPY_ITER_OPTION = {"CLARABEL": "max_iter", "SCS": "max_iters", "ECOS": "max_iters",
                     "OSQP": "max_iter", "PIQP": "max_iter"}

#: Time-limit option of CVXPY solvers that report a run stopped by it as "inaccurate" (SCS);
#: such a run is ``"max_iterations"`` (Clarabel reports its own ``time_limit`` as ``user_limit``).
CVXPY_TIME_OPTION = {"SCS": "time_limit_secs"}

DEFAULT_SCS_OPTIONS = {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 200_000}
#: CVXPY canonicalisation backend used for cvxnn's programs unless the caller passes
#: ``canon_backend``. Measured on the C-ReLU program (n=1000, d=20, p=100..1000;
#: ``benchmarks/bench_builders.py``): CVXPY's default C++ backend spends about 1.5x the CPU time
#: of the SciPy backend at p >= 400, and its time grows faster in p. Only the first compilation
#: uses it; DPP re-solves reuse the compiled problem.
DEFAULT_CANON_BACKEND = "SCIPY"
_CANON_BACKENDS = ("SCIPY", "CPP", "COO")
#: Bytes CVXPY holds per nonzero of the compiled problem while compiling (measured order of
#: magnitude: the canonicalised tensors, the parameter map and the solver's copy).
BYTES_PER_NONZERO = 500
#: Bytes an interior-point solver holds per entry of the dense Hessian block of each
#: semidefinite cone (``t x t`` with ``t = m (m + 1) / 2`` for an ``m x m`` cone): Clarabel 0.11
#: peaked at 52-54 bytes per entry (the block, its place in the KKT matrix and its factor) on
#: nuclear-norm programs with cones of size 44 to 84, and on ``20 x 200`` data with three outputs
#: and 8 gates (cones of size 204) it asked for 24 GB and was killed, where the compiled problem
#: was estimated at 40 MB.
PSD_BYTES_PER_ENTRY = 64
#: CVXPY solvers that form the dense Hessian blocks of semidefinite cones (interior points).
PSD_DENSE_SOLVERS = ("CLARABEL", "CVXOPT", "MOSEK")


# ----------------------------------------------------------------------------- names, statuses
def check_cvxpy_solver(solver: str | None) -> str:
    """An installed CVXPY solver name in upper case (default ``"CLARABEL"``).

    Raises
    ------
    InvalidParameterError
        For a non-string or an unknown / uninstalled solver (the message lists the installed ones).
    """
    if solver is None:
        return "CLARABEL"
    if not isinstance(solver, str):
        raise InvalidParameterError(f"solver must be a string such as 'CLARABEL', got {solver!r}.")
    name = solver.upper()
    installed = cp.installed_solvers()
    if name not in installed:
        raise InvalidParameterError(
            f"unknown or uninstalled CVXPY solver {solver!r}; installed: {installed}."
        )
    return name


def map_status(cvxpy_status: str | None, solver: str, what: str = "the program", *, feasible: bool = False) -> str:
    """cvxnn's status for a CVXPY status; raise for failures and for statuses not in the map.

    Returns
    -------
    str
        ``"optimal"``, ``"optimal_inaccurate"`` or ``"max_iterations"``.

    Raises
    ------
    InfeasibleError, UnboundedError
        ``"infeasible"`` / ``"unbounded"`` (and their inaccurate variants).
    SolverError
        ``"numerical_error"``, no status, or a status cvxnn does not know (named in the message);
        also an infeasibility certificate for a program known to have a feasible point
        (``feasible=True``: the regularized programs, where zero is feasible), which can only be
        a numerical failure (badly scaled data).
    """
    if cvxpy_status not in CVXPY_STATUS_MAP:
        raise SolverError(
            f"{solver} ended {what} with status {cvxpy_status!r}, which cvxnn does not know how to "
            f"read (known: {sorted(CVXPY_STATUS_MAP)}); the result is not used.",
            status="numerical_error",
        )
    status = CVXPY_STATUS_MAP[cvxpy_status]
    if status == "infeasible" and feasible:
        raise SolverError(
            f"{solver} reports {what} {cvxpy_status}, but it has a feasible point (zero): the solver "
            "failed numerically, typically on badly scaled data (targets or features of very "
            "different magnitudes); standardize y and X, or scale lam with them.",
            status="numerical_error")
    if status == "infeasible":
        raise InfeasibleError(f"{solver} reports {what} {cvxpy_status}.", status="infeasible")
    if status == "unbounded":
        raise UnboundedError(f"{solver} reports {what} {cvxpy_status}.", status="unbounded")
    if status == "numerical_error":
        raise SolverError(f"{solver} failed on {what} (status {cvxpy_status!r}).", status="numerical_error")
    return status


# ----------------------------------------------------------------------------- memory
def estimate_nonzeros(*, n: int, d_a: int, p: int, c: int = 1, activation: str = "relu",
                      nuclear: bool = False, mask_ones: int | None = None) -> int:
    """Nonzeros of a compiled cvxnn program (its constraint matrix), estimated before compiling.

    * the prediction ``sum_i D_i X_a theta_i``: ``d_a`` per active entry of the mask, per output
      and per sign (``mask_ones`` entries; ``n p`` when not given) -- the ``n d p c`` term;
    * C-ReLU cones ``Xt_i v_i >= 0`` (columnwise for vector output): ``2 n p c`` rows of ``d_a``;
    * the group norms: ``d_a p c`` per sign; the nuclear norms' PSD blocks ``p (d_a + c)^2``
      per sign.

    Returns
    -------
    int
    """
    spec = get_activation(activation)
    signs = len(spec.blocks)
    ones = n * p if mask_ones is None else int(mask_ones)
    total = signs * ones * d_a * c  # prediction
    if spec.constrained:
        total += signs * n * p * c * d_a  # cone rows, one set per block
    total += signs * d_a * p * c  # norms
    if nuclear:
        total += signs * p * (d_a + c) ** 2
    return int(total)


def psd_solver_bytes(*, n_cones: int, size: int, solver: str) -> int:
    """Bytes an interior-point ``solver`` (:data:`PSD_DENSE_SOLVERS`) needs for the dense Hessian
    blocks of ``n_cones`` semidefinite cones of ``size x size``: ``t^2`` entries each with
    ``t = size (size + 1) / 2``, at :data:`PSD_BYTES_PER_ENTRY` bytes; 0 for other solvers (SCS
    projects onto the cones with an eigendecomposition of ``size x size``).

    Raises
    ------
    InvalidParameterError
        ``n_cones`` or ``size`` is negative or not an integer.
    """
    for name, value in (("n_cones", n_cones), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InvalidParameterError(f"{name} must be a non-negative integer, got {value!r}.")
    if str(solver).upper() not in PSD_DENSE_SOLVERS:
        return 0
    t = int(size) * (int(size) + 1) // 2
    return int(n_cones) * t * t * PSD_BYTES_PER_ENTRY


def check_memory(nonzeros: int, *, memory_budget: int | None = None, what: str = "this program",
                 solver_bytes: int = 0) -> int:
    """Refuse a CVXPY compilation whose estimated memory exceeds the budget.

    Parameters
    ----------
    nonzeros : int
        Estimated nonzeros (:func:`estimate_nonzeros`).
    memory_budget : int, optional
        Bytes; default :func:`cvxnn.operators.default_memory_budget`.
    what : str
        What is compiled, for the error message (``"this program"``).
    solver_bytes : int
        Bytes the solver itself needs beyond the compiled problem (:func:`psd_solver_bytes`).

    Returns
    -------
    int
        The estimated bytes.

    Raises
    ------
    MemoryBudgetError
        With the estimate, the budget, and what to do instead.
    InvalidParameterError
        ``memory_budget`` is not a positive integer.
    """
    # validated as the native solvers validate it: "abc", NaN and [1] raised bare ValueError /
    # TypeError from int(), and 0, -5, 1.5 or True read as a budget of a few bytes
    budget = (default_memory_budget() if memory_budget is None
              else check_positive_int(memory_budget, "memory_budget", maximum=None))
    need = BYTES_PER_NONZERO * int(nonzeros) + int(solver_bytes)
    if need > budget:
        dense = (f" plus {int(solver_bytes) / 2**30:.2f} GiB for the solver's dense blocks of the semidefinite "
                 "cones" if solver_bytes else "")
        raise MemoryBudgetError(
            f"compiling {what} with CVXPY needs about {need / 2**30:.2f} GiB ({nonzeros:,} nonzeros x "
            f"{BYTES_PER_NONZERO} bytes{dense}), more than the budget of {budget / 2**30:.2f} GiB (half the "
            "memory available to this process). Use the native backend (cvxnn.solve(..., solver='auto'), "
            "estimators with backend='native'), which never forms the design, or fewer samples / "
            "patterns; pass memory_budget=<bytes> to override."
        )
    return need


# ----------------------------------------------------------------------------- one solve
@dataclass(frozen=True)
class CvxpyRun:
    """What one CVXPY solve reported.

    Attributes
    ----------
    status : str
        cvxnn's status (``"optimal"``, ``"optimal_inaccurate"``, ``"max_iterations"``).
    cvxpy_status : str
        CVXPY's own status string.
    solver : str
    solve_time, compile_time : float or None
        Seconds (the solver's own solve time when it reports one, else wall-clock).
    iterations : int or None
    """

    status: str
    cvxpy_status: str
    solver: str
    solve_time: float | None
    compile_time: float | None
    iterations: int | None


def _take_own_solver(problem: cp.Problem, name: str, opts: dict[str, Any]) -> None:
    """Put back in ``problem``'s CVXPY solver cache the solver of cvxnn's last solve with the same
    options, and nothing else.

    CVXPY keeps the solver object of the last solve and, on the next one (``warm_start=True``,
    its default), updates its data and overlays only the options passed this time on its old
    settings. A program solved once with ``max_iter=2`` or loose tolerances would keep them in
    every later ``solve()`` (and report ``"optimal"`` at the loose tolerance); so would one
    whose ``problem`` the user solved directly with such options (cvxnn cannot see that solve:
    Clarabel updates its settings in place). So cvxnn parks its solver outside the cache after
    each solve (:func:`_park_own_solver`) and drops whatever the cache holds before the next:
    a ``lam`` path with the same options still reuses its factorisation structure, and neither
    cvxnn's options nor the user's leak into the other's solves.
    """
    cache = getattr(problem, "_solver_cache", None)
    if not isinstance(cache, dict):
        return
    cache.pop(name, None)  # a direct problem.solve() left it, with its own settings
    own = getattr(problem, "_cvxnn_own_solver", None)
    key = (name, repr(sorted((k, repr(v)) for k, v in opts.items())))
    if own is not None and own[0] == key:
        cache[name] = own[1]


def _park_own_solver(problem: cp.Problem, name: str, opts: dict[str, Any]) -> None:
    """Move the solver of this solve out of ``problem``'s CVXPY cache (see :func:`_take_own_solver`)."""
    cache = getattr(problem, "_solver_cache", None)
    if not isinstance(cache, dict):
        return
    solver = cache.pop(name, None)
    key = (name, repr(sorted((k, repr(v)) for k, v in opts.items())))
    try:
        problem._cvxnn_own_solver = None if solver is None else (key, solver)
    except AttributeError:  # a Problem subclass with __slots__: never reuse a solver
        pass


#: Installed CVXPY solvers that take every cvxnn program (second-order, exponential and
#: semidefinite cones), advised when another solver cannot take a program.
_GENERAL_CONIC_SOLVERS = ("CLARABEL", "SCS", "MOSEK")


def _raise_if_incapable(exc: Exception, name: str, what: str) -> None:
    """Raise :class:`~cvxnn.errors.InvalidParameterError` when CVXPY refused ``name`` because it
    cannot take the problem's class (an LP or QP solver such as SCIPY, HIGHS or OSQP on a program
    with norms): a wrong choice of solver, not a numerical failure. Other errors pass."""
    if "cannot solve this problem" not in str(exc):
        return
    able = [s for s in _GENERAL_CONIC_SOLVERS if s in cp.installed_solvers() and s != name]
    raise InvalidParameterError(
        f"the CVXPY solver {name} cannot solve {what}: it does not take the cones the program needs "
        f"(second-order cones for the norms; exponential or semidefinite cones for some losses and "
        f"penalties). Use {' or '.join(repr(s.lower()) for s in able) or 'a conic solver'} instead."
    ) from exc


def _options(solver: str, opts: dict[str, Any], defaults: dict[str, Any] | None) -> dict[str, Any]:
    opts = {**(defaults or {}), **opts}
    if solver == "SCS" and not ({"eps_abs", "eps_rel", "eps"} & opts.keys()):
        opts = {**DEFAULT_SCS_OPTIONS, **opts}
    backend = opts.get("canon_backend")
    if backend is not None:
        if not isinstance(backend, str) or backend.upper() not in _CANON_BACKENDS:
            raise InvalidParameterError(f"canon_backend must be one of {_CANON_BACKENDS}, got {backend!r}.")
        opts["canon_backend"] = backend.upper()
    return opts


def run_problem(
    problem: cp.Problem,
    solver: str | None = None,
    *,
    what: str = "the program",
    advice: str = "",
    defaults: dict[str, Any] | None = None,
    quiet: bool = True,
    allow: tuple[str, ...] = ("optimal", "optimal_inaccurate", "max_iterations"),
    warn: bool = True,
    feasible: bool = False,
    **options,
) -> CvxpyRun:
    """Solve a CVXPY problem with cvxnn's status map; the one place cvxnn calls ``problem.solve``.

    Parameters
    ----------
    problem : cvxpy.Problem
    solver : str, optional
        Installed CVXPY solver (default ``"CLARABEL"``).
    what : str
        Names the problem in messages (``"the C-ReLU program"``, ``"the decomposition program"``).
    advice : str
        What to try when the solver fails; appended to the :class:`SolverError` message.
    defaults : dict, optional
        Options used unless ``options`` sets them.
    quiet : bool
        Silence CVXPY's "Solution may be inaccurate" warning (cvxnn warns with the status
        instead). ``False`` leaves the warning filters alone (worker threads, where the caller
        installs the filter once).
    allow : tuple of str
        Statuses returned without raising; ``"optimal_inaccurate"`` / ``"max_iterations"``
        outside it raise :class:`SolverError`.
    warn : bool
        Emit an :class:`~cvxnn.errors.InaccurateSolutionWarning` for a status other than optimal.
    feasible : bool
        The problem is known to have a feasible point: an infeasibility certificate is a
        numerical failure (:class:`SolverError`), not an :class:`InfeasibleError`.
    **options
        Passed to :meth:`cvxpy.Problem.solve`.

    Returns
    -------
    CvxpyRun

    Raises
    ------
    InvalidParameterError
        Unknown solver, a solver that cannot take the problem's cones (an LP / QP solver such as
        SCIPY, HIGHS or OSQP on a program with norms), bad option, or an option value the solver
        cannot take.
    SolverError, InfeasibleError, UnboundedError
        See :func:`map_status`.
    """
    name = check_cvxpy_solver(solver)
    opts = _options(name, options, defaults)
    method = opts.get("method")
    if method is not None and method not in cp.Problem.REGISTERED_SOLVE_METHODS:
        # CVXPY looks it up in its registry of solve methods: a bare KeyError
        raise InvalidParameterError(f"method={method!r} is no registered CVXPY solve method (registered: "
                                    f"{sorted(cp.Problem.REGISTERED_SOLVE_METHODS)}); omit it.")
    _take_own_solver(problem, name, opts)
    t0 = time.perf_counter()
    try:
        try:
            if quiet:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    problem.solve(solver=name, **opts)
            else:
                problem.solve(solver=name, **opts)
        finally:
            _park_own_solver(problem, name, opts)
    except cp.error.SolverError as exc:
        _raise_if_incapable(exc, name, what)
        raise SolverError(f"{name} failed on {what} ({exc}).{(' ' + advice) if advice else ''}",
                          status="numerical_error") from exc
    except (cp.error.DGPError, cp.error.DQCPError) as exc:  # gp=True / qcp=True on a DCP program
        raise InvalidParameterError(f"{what} is a DCP program: solve it without gp= or qcp= "
                                    f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    except (TypeError, OverflowError) as exc:
        raise InvalidParameterError(f"bad solver option for {name}: {exc}") from exc
    except ValueError as exc:  # e.g. older SCS: "Error parsing inputs" for an overflowing option
        raise InvalidParameterError(f"{name} rejected the options or the data of {what}: {exc}") from exc
    wall = time.perf_counter() - t0
    status = map_status(problem.status, name, what, feasible=feasible)
    stats = problem.solver_stats
    limit = opts.get(CVXPY_ITER_OPTION.get(name, ""))
    if (status == "optimal_inaccurate" and limit is not None and stats is not None
            and stats.num_iters is not None and stats.num_iters >= limit):
        # SCS (and others) report a run stopped by its iteration limit as "inaccurate"
        status = "max_iterations"
    time_limit = opts.get(CVXPY_TIME_OPTION.get(name, ""))
    if (status == "optimal_inaccurate" and isinstance(time_limit, (int, float)) and time_limit > 0
            and stats is not None and stats.solve_time is not None and stats.solve_time >= time_limit):
        # SCS reports a run stopped by time_limit_secs as "inaccurate" too
        status = "max_iterations"
    if status not in allow:
        limited = " at its iteration limit" if status == "max_iterations" else ""
        raise SolverError(f"{name} ended {what} with status {problem.status!r}{limited}."
                          f"{(' ' + advice) if advice else ''}", status=status)
    if status != "optimal" and warn:
        warnings.warn(
            f"{name} finished {what} with status {problem.status!r}: the solution is not certified "
            "optimal; raise the iteration limit, loosen or tighten the solver tolerances, or "
            "rescale the data.",
            InaccurateSolutionWarning,
            stacklevel=3,
        )
    solve_time = float(stats.solve_time) if stats is not None and stats.solve_time is not None else wall
    return CvxpyRun(
        status=status,
        cvxpy_status=problem.status,
        solver=name,
        solve_time=solve_time,
        compile_time=problem.compilation_time,
        iterations=None if stats is None else stats.num_iters,
    )


# ----------------------------------------------------------------------------- programs
def _program_name(program) -> str:
    out = "vector " if program.n_outputs > 1 else ""
    return f"the {program.form} {out}{program.activation} program"


def _failure_advice(program, solver: str) -> str:
    """Advice for a failed program solve: the native backend where it takes the program, else
    another installed conic solver."""
    lam = None if program.lam is None else program.lam.value
    # the native nuclear C-ReLU program (the augmented Lagrangian) rarely certifies: not advised
    nuclear_relu = (program.activation == "relu" and getattr(program, "n_outputs", 1) > 1
                    and getattr(program, "formulation", None) == "nuclear")
    if (program.form == "regularized" and program.loss is not None and lam is not None and lam > 0
            and native_supports(program.loss) and not nuclear_relu):
        return ("The native solvers take this program: cvxnn.solve(X, y, patterns, ..., solver='auto'), "
                "or backend='native' in the estimators.")
    others = [s for s in ("CLARABEL", "SCS") if s != solver and s in cp.installed_solvers()]
    advice = f"Try solver={others[0]!r}." if others else "No other installed CVXPY solver takes this program."
    if program.form in ("min_norm", "max_margin"):
        # Clarabel often fails (InsufficientProgress) rather than certify infeasibility here
        why = ("the patterns may not interpolate y exactly" if program.form == "min_norm"
               else "the labels may not be separable on these patterns")
        advice = (f"The {program.form} program may be infeasible ({why}). {advice} "
                  "More patterns may make it feasible; the regularized form always has a solution.")
    return advice


def _solver_bytes(program, solver: str) -> int:
    """``program.estimated_solver_bytes(solver)`` where the program has it, else 0."""
    estimate = getattr(program, "estimated_solver_bytes", None)
    return int(estimate(solver)) if callable(estimate) else 0


def compile_program(program, solver: str | None = None, *, canon_backend: str | None = None,
                    memory_budget: int | None = None) -> float:
    """Compile a :class:`~cvxnn.program.ConvexProgram` for ``solver``; return the seconds taken.

    See :meth:`cvxnn.program.ConvexProgram.compile`.
    """
    name = check_cvxpy_solver(solver)
    opts = _options(name, {"canon_backend": canon_backend or DEFAULT_CANON_BACKEND}, None)
    check_memory(program.estimated_nonzeros(), memory_budget=memory_budget, what=_program_name(program),
                 solver_bytes=_solver_bytes(program, name))
    t0 = time.perf_counter()
    try:
        program.problem.get_problem_data(name, canon_backend=opts["canon_backend"])
    except cp.error.SolverError as exc:
        _raise_if_incapable(exc, name, _program_name(program))
        raise SolverError(f"CVXPY cannot compile this problem for {name} ({exc}).",
                          status="numerical_error") from exc
    seconds = time.perf_counter() - t0
    logger.debug("compiled %s for %s with the %s backend in %.3f s", _program_name(program), name,
                 opts["canon_backend"], seconds)
    return seconds


def solve_program(program, solver: str | None = None, *, memory_budget: int | None = None,
                  **solver_opts) -> ConvexSolution:
    """Solve a :class:`~cvxnn.program.ConvexProgram` and read the result back.

    Parameters
    ----------
    program : ConvexProgram
    solver : str, optional
        Installed CVXPY solver (default ``"CLARABEL"``).
    memory_budget : int, optional
        Bytes for the pre-compile size check (default
        :func:`cvxnn.operators.default_memory_budget`).
    **solver_opts
        Passed to :meth:`cvxpy.Problem.solve`; ``canon_backend`` defaults to
        :data:`DEFAULT_CANON_BACKEND`, and the program's
        :meth:`~cvxnn.program.ConvexProgram.default_solver_options` apply unless overridden.

    Returns
    -------
    ConvexSolution
        With ``cone_duals`` (C-ReLU) and ``extra["cvxpy_status"]``.

    Raises
    ------
    InvalidParameterError, NonFiniteError
        ``program.lam.value`` not a finite number ``>= 0`` (e.g. set to None or inf on the
        parameter directly), or the errors of :func:`run_problem`.

    Notes
    -----
    When the program names retry settings
    (:meth:`~cvxnn.program.ConvexProgram.retry_solver_options`: Clarabel on exponential-cone
    programs) and a solve ends neither optimal nor infeasible/unbounded, the solver runs again
    with the next settings (the compiled problem is reused). The first optimal result is returned;
    otherwise the first result with a point, with an
    :class:`~cvxnn.errors.InaccurateSolutionWarning`; when every attempt fails, the
    :class:`~cvxnn.errors.SolverError` lists the settings tried. ``extra["attempts"]`` records
    them. Passing any of the retried options yourself turns the retries off.
    """
    name = check_cvxpy_solver(solver)
    what = _program_name(program)
    if program.lam is not None:
        # a value set on the cvxpy.Parameter directly: None raised CVXPY's ParameterError, inf
        # reached the solver ("rejected the options or the data")
        check_lam(program.lam.value, name="program.lam.value")
    check_memory(program.estimated_nonzeros(), memory_budget=memory_budget, what=what,
                 solver_bytes=_solver_bytes(program, name))
    defaults = {"canon_backend": DEFAULT_CANON_BACKEND, **program.default_solver_options(name)}
    if any(k.startswith("tol_") for k in solver_opts):  # the caller chose the tolerances
        defaults = {k: v for k, v in defaults.items() if not k.startswith("tol_")}
    retries = tuple(program.retry_solver_options(name))
    if any(key in solver_opts for r in retries for key in r):
        retries = ()  # the caller set what the retries would change: no second guessing
    advice = _failure_advice(program, name)
    attempts: list[dict[str, Any]] = []
    kept = None  # (run, values, duals, objective) of the first attempt that returned a point
    for k, retry in enumerate(((),) + retries):
        settings = {**defaults, **dict(retry)}
        last = k == len(retries)
        try:
            run = run_problem(program.problem, name, what=what, advice=advice, defaults=settings,
                              warn=False, feasible=getattr(program, "form", None) == "regularized",
                              **solver_opts)
        except SolverError as exc:
            if isinstance(exc, (InfeasibleError, UnboundedError)) or (last and kept is None):
                if attempts:
                    raise type(exc)(f"{exc} Settings tried: {attempts + [dict(retry)]}.",
                                    status=exc.status) from exc
                raise
            attempts.append({"options": dict(retry), "status": "numerical_error"})
            continue
        values = {key: var.value for key, var in program.variables.items()}
        attempts.append({"options": dict(retry), "status": run.status})
        if kept is None or run.status == "optimal":
            duals = [con.dual_value for con in program.cone_constraints]
            # the objective at the returned point (the expression evaluated at the variables):
            # the solver's own value (``problem.value``) is that of its conic form, which an
            # inaccurate solve may leave below the optimum (e.g. a nuclear norm's epigraph)
            kept = (run, values, duals, (program._point_objective(), program.problem.value))
        if run.status == "optimal":
            break
        if not last:
            logger.info("%s ended %s with status %r; retrying with %s", name, what, run.cvxpy_status,
                        retries[k])
    run, values, duals, (objective, solver_objective) = kept
    if run.status != "optimal":
        warnings.warn(
            f"{name} finished {what} with status {run.cvxpy_status!r}"
            + (f" (settings tried: {attempts})" if len(attempts) > 1 else "")
            + ": the solution is not certified optimal; raise the iteration limit, loosen or "
            "tighten the solver tolerances, or rescale the data. " + advice,
            InaccurateSolutionWarning,
            stacklevel=3,
        )
    if any(v is None for v in values.values()):
        raise SolverError(f"{name} returned no solution for {what} (status {run.cvxpy_status!r}).",
                          status="numerical_error")
    if any(not np.all(np.isfinite(v)) for v in values.values()):
        raise SolverError(f"{name} returned NaN or inf weights for {what} (status {run.cvxpy_status!r}).",
                          status="numerical_error")
    blocks = program._weight_blocks(values)
    max_violation = None
    cone_duals = None
    spec = get_activation(program.activation)
    if spec.constrained:
        Xa = program.patterns.design(program.X)
        max_violation = spec.max_violation(Xa, program.patterns.mask, blocks)
        if duals and all(d is not None for d in duals):
            shape = (program.X.shape[0],) + blocks[spec.blocks[0]].shape[1:]
            cone_duals = tuple(np.asarray(d, dtype=float).reshape(shape) for d in duals)
    extra: dict[str, Any] = {"cvxpy_status": run.cvxpy_status}
    if solver_objective is not None and np.isfinite(solver_objective):
        extra["solver_objective"] = float(solver_objective)
    if len(attempts) > 1:
        extra["attempts"] = attempts
    if cone_duals is not None:
        extra["cone_duals"] = cone_duals  # mirrored for cvxnn.io; library code reads sol.cone_duals
    fields = program._solution_fields(blocks, cone_duals)
    extra.update(fields)  # mirrored for cvxnn.io, which saves ``extra``; library code reads the fields
    labels = getattr(program, "_solution_extra", None)
    if callable(labels):
        extra.update(labels())
    lam = None if program.lam is None else float(program.lam.value)
    sol = ConvexSolution(
        activation=program.activation,
        patterns=program.patterns,
        U=blocks.get("U"),
        V=blocks.get("V"),
        W=blocks.get("W"),
        status=run.status,
        objective_value=float(objective),
        lam=lam,
        loss=program.loss,
        backend="cvxpy",
        solver=name,
        solve_time=run.solve_time,
        compile_time=run.compile_time,
        iterations=run.iterations,
        gap=None,
        max_violation=max_violation,
        cone_duals=cone_duals,
        multipliers=None if cone_duals is None else np.concatenate(cone_duals, axis=1),
        extra=extra,
        **fields,
    )
    return sol
