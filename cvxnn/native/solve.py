"""``solve_native``: the native backend's entry point (docs/math.md, "Solvers and certificates").

One call validates the data, builds the matrix-free operator in the compute dtype, runs
R-FISTA (C-GReLU) or the augmented Lagrangian (C-ReLU), certifies the result in float64
and returns the same :class:`~cvxnn.solution.ConvexSolution` as the CVXPY backend, so
switching backend is one argument.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import numpy as np

from .._validation import check_lam, check_positive_int, check_solver_options, check_Xy
from ..activations import Activation, get_activation
from ..errors import (
    ConvergenceWarning,
    InvalidParameterError,
    MemoryBudgetError,
    NonFiniteError,
    PatternMismatchError,
    ShapeError,
)
from ..losses import Loss, get_loss
from ..operators import ImplicitDesign, default_memory_budget
from ..patterns import Patterns
from ..solution import ConvexModel, ConvexSolution
from . import gated_conic as _gc
from . import working_set as _ws
from ._losses import make_kernel
from .al import solve_relu
from .certificates import gated_certificate, relu_certificate
from .fista import GatedProblem, initial_step, solve_gated
from .prox import BlockPenalty
from .working_set import solve_relu_working_set
from .working_set_qp import solve_relu_working_set_qp

__all__ = ["solve_native"]

logger = logging.getLogger("cvxnn.native")

#: Tolerance of the float32 stage of the augmented Lagrangian before the float64 polish.
_F32_AL_TOL = 1e-3
#: Tolerance of the float32 stage of R-FISTA before the float64 polish.
_F32_GATED_TOL = 1e-5
#: Share of ``max_iter`` a float32 stage (R-FISTA or the augmented Lagrangian, ``dtype=float32``)
#: may use before the float64 continuation takes over: a stage stalled above its floor used the
#: whole budget, so the float64 polish that certifies never ran (diabetes, 150 rows, C-GReLU at
#: ``0.003 lam_max``, ``tol=1e-8``: ``max_iterations`` after 20000 float32 iterations where float64
#: certifies in 944).
F32_STAGE_SHARE = 0.5
#: A C-GReLU program that the working set hands over to R-FISTA as "dense" (float64,
#: ``solver="auto"``, programs too large for the interior-point finish) continues on the float32
#: twin of the design when ``tol >= CONTINUE_FLOAT32_MIN_TOL`` (the estimators' default ``1e-4``;
#: ten times float32's floor ``_F32_GATED_TOL``, so that its own stopping test is reliable). Its
#: products are GEMMs at about twice the float64 speed; its dual values are estimates, so the
#: result is certified in float64 (its point's certificate and the working set's float64 duals)
#: and polished in float64 when that misses ``tol``. Measured (one BLAS thread, tol ``1e-4``,
#: minimum of 2 runs): the synthetic 11-class program of ``bench_multiclass.py`` (``n = 5000``,
#: ``d = 40``, 100 gates, ``lam = 0.01 n``) 6.68 -> 5.06 s, 289 -> 288 iterations, the same
#: objective to ``2.3e-8``; scalar ``planted_teacher(10000, 50)``, 200 gates, ``lam = 0.1 lam_max``,
#: 0.98 -> 0.72 s (6 float64 polish iterations). Programs that certify in the working set do not
#: change.
CONTINUE_FLOAT32 = True
CONTINUE_FLOAT32_MIN_TOL = 1e-4


@contextmanager
def _verbosity(verbose: bool, target: logging.Logger | None = None, label: str = "cvxnn.native"):
    """With ``verbose``, route the INFO records of ``target`` (default this package's logger) to
    stderr for the duration, each line prefixed by ``[label]``."""
    if not verbose:
        yield
        return
    target = logger if target is None else target
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"[{label}] %(message)s"))
    old = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield
    finally:
        target.removeHandler(handler)
        target.setLevel(old)


def _same_patterns(a: Patterns, b: Patterns) -> bool:
    if a is b:
        return True
    return (a.bias == b.bias and a.gates.shape == b.gates.shape and a.mask.shape == b.mask.shape
            and np.array_equal(a.gates, b.gates) and np.array_equal(a.mask, b.mask))


def _as3(B: np.ndarray) -> np.ndarray:
    return B[:, :, None] if B.ndim == 2 else B


def solve_native(
    X,
    y,
    patterns: Patterns,
    *,
    activation: str = "gated_relu",
    loss: str | Loss = "squared",
    lam: float = 1.0,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    warm_start: ConvexModel | None = None,
    dtype=np.float64,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    verbose: bool = False,
    feas_tol: float | None = None,
    memory_budget: int | None = None,
    solver: str = "auto",
    formulation: str = "auto",
) -> ConvexSolution:
    """Solve C-GReLU (R-FISTA) or C-ReLU (working set or augmented Lagrangian) natively, with a
    certificate.

    Parameters
    ----------
    X : array of shape (n, d)
        Training data (the data ``patterns`` were built on).
    y : array of shape (n,) or (n, c)
        Targets; 2-D for vector output (nuclear-norm penalty, columnwise cones for ReLU).
    patterns : Patterns
        Activation patterns ``D_i`` built on ``X``.
    activation : {"gated_relu", "relu"}
        C-GReLU (solver ``"rfista"``) or C-ReLU (solver ``"working_set"`` or ``"al"``).
    loss : str or Loss
        ``"squared"`` (``1/2 ||.||^2``), ``"logistic"`` (labels in {-1, +1}, scalar output),
        ``"huber"`` or ``"cross_entropy"`` (one-hot ``y``, vector output): every loss object that
        is ``smooth`` and ``has_conjugate``; ``reduction="mean"`` losses work too.
    lam : float
        Regularisation strength ``> 0`` (the programs carry ``lam * sum of block norms``).
    tol : float
        Relative duality-gap tolerance: ``status == "optimal"`` iff ``gap <= tol * |objective|``
        (and, for C-ReLU, ``max_violation <= feas_tol``).
    max_iter : int
        Limit on R-FISTA iterations (for C-ReLU: total inner iterations).
    warm_start : ConvexModel, optional
        A point on the same patterns (any backend). C-GReLU accepts a C-ReLU point (``V - W``).
        A native C-ReLU solution also passes its multipliers and penalty.
    dtype : {numpy.float64, numpy.float32}
        Compute dtype of the GEMMs. Certificates are always evaluated in float64; when a
        float32 run is not certified in float64 the solve continues in float64 ("polish").
    callback : callable, optional
        ``callback(info: dict)`` after every iteration, with the keys ``iteration``,
        ``objective``, ``dual``, ``gap`` and ``rel_gap``, and per solver: R-FISTA ``step``
        (the C-GReLU working set ``step`` and ``round``);
        the augmented Lagrangian ``outer``, ``violation``, ``delta``; the C-ReLU working set
        (called after every round, ``iteration`` counting rounds, with the full program's
        certificate) ``violation``, ``working_set`` (its blocks) and ``violators`` (blocks
        added). Returning ``True`` stops the solve (status ``"max_iterations"``).
    verbose : bool
        Log progress to stderr (through the ``cvxnn.native`` logger).
    feas_tol : float, optional
        C-ReLU cone-violation tolerance ``max(0, -min Xt_i theta_i)`` (absolute, prediction
        units); defaults to ``tol``.
    memory_budget : int, optional
        Bytes the solver may allocate (default: half the physical memory). Raises
        :class:`~cvxnn.errors.MemoryBudgetError` (naming the bytes) before allocating more.
    solver : {"auto", "rfista", "working_set", "al"}
        C-GReLU: ``"rfista"`` runs R-FISTA; ``"auto"`` runs, in float64 (scalar or vector
        output), the working set of rank-one atoms (:mod:`cvxnn.native.gated_working_set`) first
        and R-FISTA only when that does not certify, and hands a small float64 program that
        neither has certified after :func:`~cvxnn.native.gated_conic.finish_after` iterations
        (when ``max_iter`` allows more) to Clarabel, whose result is certified on the full
        program (:mod:`cvxnn.native.gated_conic`; ``extra["finish"]``). For C-ReLU,
        ``"working_set"`` solves the program
        restricted to a growing working set of blocks by a primal active-set method (Newton steps
        on the cone faces; a barrier interior point as its fallback) and checks every other block
        against its KKT condition (:mod:`cvxnn.native.working_set`; every native loss, scalar
        output or the columnwise vector program, float64; ``max_iter`` caps its Newton steps; a
        squared-loss scalar run that stops uncertified is finished by the Clarabel QP working set,
        :mod:`cvxnn.native.working_set_qp`), and ``"al"`` the
        augmented Lagrangian (any output and penalty, float32 or float64). ``"auto"`` picks
        ``"working_set"`` where it applies and ``"al"`` otherwise; when the working set cannot
        finish (it outgrows its cap or the memory budget, or is not certified) the augmented
        Lagrangian continues from its point and multipliers (``extra["fallback"]`` says why).
    formulation : {"auto", "nuclear", "one_vs_all"}
        Vector-output penalty: the sum of nuclear norms of the ``d x c`` blocks, or the sum of
        their column norms (one-vs-all). ``"auto"`` is ``"nuclear"`` for C-GReLU (exact for
        gated networks) and ``"one_vs_all"`` for C-ReLU, where it is exact for the returned
        network: its value is the network's objective (``docs/vector.md``). Ignored for scalar
        output.

    Returns
    -------
    ConvexSolution
        ``backend="native"``, ``solver`` ``"rfista"``, ``"working_set"`` or ``"al"``, ``status`` ``"optimal"`` or
        ``"max_iterations"`` (with a :class:`~cvxnn.errors.ConvergenceWarning`),
        ``objective_value`` (same convention as CVXPY's ``problem.value``), ``gap`` (certified
        absolute duality gap), ``iterations``, ``solve_time``, ``max_violation`` (C-ReLU) and
        ``extra`` (``rel_gap``, ``dual_value``, ``step_size``, ``gflops``, ``multipliers`` ...).

    Raises
    ------
    InvalidParameterError, ShapeError, NonFiniteError, LabelError, PatternMismatchError
        For bad inputs.
    MemoryBudgetError
        When the solve cannot fit ``memory_budget``.
    SolverError
        When the iteration breaks down numerically (never a NaN solution).
    """
    # ------------------------------------------------------------------ validation
    activation = get_activation(activation).name  # raises InvalidParameterError naming the choices
    opts = check_solver_options(tol=tol, feas_tol=feas_tol, dtype=dtype, callback=callback,
                                memory_budget=memory_budget)
    dt, tol = opts["dtype"], opts["tol"]
    feas_tol = tol if feas_tol is None else opts["feas_tol"]
    max_iter = check_positive_int(max_iter, "max_iter")
    if verbose is not None and not isinstance(verbose, (bool, np.bool_, int, np.integer)):
        raise InvalidParameterError(f"verbose must be a bool (or an int level), got {type(verbose).__name__} "
                                    f"{verbose!r:.40}.")
    lam = check_lam(lam, allow_zero=False)
    if not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    X, y = check_Xy(X, y)
    patterns.check_data(X)
    loss_obj = get_loss(loss)
    make_kernel(loss_obj, np.zeros((1, 1)), np.float64)  # refuse non-smooth losses before label checks
    solver = _check_solver(solver, activation)
    if not isinstance(formulation, str) or formulation not in _FORMULATIONS:
        raise InvalidParameterError(f"formulation must be one of {_FORMULATIONS}, got {formulation!r}.")
    y = loss_obj.check_targets(y)
    y2 = y[:, None] if y.ndim == 1 else y
    c = y2.shape[1]
    kernel = make_kernel(loss_obj, y2, dt)
    spec = get_activation(activation)
    warm = _check_warm(warm_start, patterns, spec, c)
    if formulation == "auto":
        formulation = spec.vector_formulation
    penalty = "columnwise" if (formulation == "one_vs_all" and c > 1) else "nuclear"
    if solver == "auto" and spec.constrained:  # unconstrained (C-GReLU): _run_gated decides
        solver = (
            "working_set" if penalty == "columnwise" or c == 1 else "al")
    if solver == "working_set" and c > 1 and penalty != "columnwise":
        raise InvalidParameterError(
            "solver='working_set' solves the one-vs-all vector program; pass "
            "formulation='one_vs_all' or use solver='al' for the nuclear-norm program."
        )

    with _verbosity(verbose):
        t0 = time.perf_counter()
        Xa64 = patterns.design(X)
        # C-ReLU only: C-GReLU fits of such data take a fraction of a second already, and its
        # interior-point finish, timed by a cost model fitted on full designs, went from not
        # running to a 20 s run on a reduced one (50 x 120, 16 gates, 2 outputs)
        basis = (_row_space(Xa64) if ROW_SPACE and spec.constrained and Xa64.shape[1] > Xa64.shape[0]
                 else None)
        run_patterns = patterns
        if basis is not None:
            # more features than samples: every optimal block lies in the row space of [X, 1]
            # (the loss, the cones and every dual norm see X u only; a component outside it adds
            # penalty and nothing else), so the program in its coordinates is the same program
            logger.info("design %d x %d: solving in its %d-dimensional row space", *Xa64.shape, basis.shape[1])
            Xa64 = np.ascontiguousarray(Xa64 @ basis)
            warm = _reduce_warm(warm, basis)
            # what the runs read of the patterns; the gates (interior directions of the cones)
            # projected keep X g, hence their patterns
            run_patterns = SimpleNamespace(mask=patterns.mask, n_patterns=patterns.n_patterns,
                                           gates=basis.T @ np.asarray(patterns.gates, dtype=np.float64))
        if not spec.constrained:
            sol_kw = _run_gated(Xa64, run_patterns, kernel, loss_obj, y2, lam, warm, tol=tol, max_iter=max_iter,
                                dtype=dt, callback=callback, verbose=verbose, memory_budget=memory_budget,
                                penalty=penalty, solver=solver)
        else:
            sol_kw = _run_relu(Xa64, run_patterns, kernel, loss_obj, y2, lam, warm, tol=tol, feas_tol=feas_tol,
                               max_iter=max_iter, dtype=dt, callback=callback, verbose=verbose,
                               memory_budget=memory_budget, solver=solver, penalty=penalty)
        elapsed = time.perf_counter() - t0
    extra = sol_kw.pop("extra")
    extra["dtype"] = dt.name
    flops = extra.get("flops", 0.0)
    extra["gflops"] = flops / elapsed / 1e9 if elapsed > 0 else float("nan")
    scalar = y.ndim == 1
    weights = sol_kw.pop("weights")
    if basis is not None:  # back to the coordinates of [X, 1]; the check state is in the others
        weights = {k: np.tensordot(basis, v, axes=(1, 0)) for k, v in weights.items()}
        sol_kw["check_state"] = None
        extra["row_space_dim"] = int(basis.shape[1])
    weights = {k: (v[:, :, 0] if scalar else v) for k, v in weights.items()}
    if c > 1:
        extra["formulation"] = formulation
        state = sol_kw.get("check_state")
        if state is not None:  # the working set's check of these blocks holds their penalty
            extra["program_penalty"] = float(state.penalty)
        else:
            pen = BlockPenalty(penalty)
            extra["program_penalty"] = float(sum(pen.norms(weights[name]).sum() for name in spec.blocks))
    sol = ConvexSolution(
        activation=activation,
        patterns=patterns,
        **weights,
        lam=lam,
        loss=loss_obj,
        backend="native",
        solve_time=elapsed,
        compile_time=None,
        extra=extra,
        **sol_kw,
    )
    if logger.isEnabledFor(logging.DEBUG):  # summary() costs a batched SVD of the blocks
        logger.debug("native %s solve: %s", activation, sol.summary().replace("\n", "; "))
    if not sol.converged:
        warnings.warn(
            f"native {sol.solver} stopped after {sol.iterations} iterations with "
            + ("no certified gap (the point is outside the cones)" if extra.get("rel_gap") is None
               else f"relative gap {extra['rel_gap']:.3e}") + f" (tol {tol:.1e})"
            + (f" and cone violation {sol.max_violation:.3e} (feas_tol {feas_tol:.1e})"
               if sol.max_violation is not None else "")
            + ("; its line search found no step (status 'numerical_error'): more iterations do not help; "
               "a larger lam or rescaled data may" if extra.get("stalled")
               else "; raise max_iter, loosen tol, or warm-start from this solution."),
            ConvergenceWarning,
            stacklevel=2,
        )
    return sol


#: Stop reasons of the working set after which, for a quadratic loss with scalar output, the
#: Clarabel QP working set continues from its point (size and memory go to the augmented
#: Lagrangian instead; a program within ``working_set.CONIC_MAX_ROWS`` goes to Clarabel whole).
#: The active-set working set is the default for that case too: measured
#: on diabetes (``lam`` from 0.1 n to 1e-3 n, 32 and 100 gates) and on planted and Friedman
#: problems up to n=5000 it was 1.1x to 13x faster than the QP working set. At ``lam = 1e-4 n``
#: on diabetes the optimum is dense: with 100 gates the active set ran out of rounds (this
#: continuation finished it), with 32 it certified in 8.7 s against 2.6 s for the QP working set
#: (benchmarks/bench_native.py, docs/native.md "Working set for C-ReLU").
QP_CONTINUE_REASONS = ("max_iterations", "max_rounds", "not_certified", "inner_solver")
#: From this many samples on, a quadratic loss with scalar output runs the Clarabel QP working
#: set first: its restricted programs carry only the generated cone rows, while each active-set
#: Newton step makes several passes over ``n x |W|`` arrays. Measured on make_friedman1 (d=10,
#: 32 and 100 gates, lam from 1e-4 n to 0.01 n): at n=5000 the active set was 1.1-2.4x faster,
#: at n=10000 the QP working set 1.4-2.5x faster with 32 gates and as fast with 100.
QP_FIRST_ROWS = 8000
#: Stop reasons of the working set (after the QP continuation, where it ran) after which a
#: program with at most ``working_set.CONIC_MAX_ROWS`` cone rows (``2 p c n``, the largest
#: restricted program the working set hands to Clarabel) is solved whole by Clarabel
#: and the working set certifies that point (from the optimum it needs one round). Measured:
#: 200 rows with sample weights 1e6 and 1, 32 gates: the active set and the QP working set
#: failed (16 s, then the augmented Lagrangian, uncertified); Clarabel took 0.3 s and the
#: working set certified its point in 0.03 s.
CONIC_FINISH_REASONS = ("max_iterations", "max_rounds", "not_certified", "inner_solver")
#: On a program small enough for Clarabel whole (``working_set.CONIC_MAX_ROWS`` cone rows), a
#: quadratic loss with scalar output gives the active-set working set at most this many Newton
#: steps before Clarabel solves the whole program (CONIC_FINISH_REASONS): rows of very different
#: weights (sample weights 1e6 and 1) make the active set crawl through face changes (10000
#: steps, 39 s, uncertified, on 200 rows, where Clarabel needs 0.3 s; now 1.5 s, certified).
#: Ordinary fits take fewer (diabetes, 32 gates: 213 steps at ``lam = 1e-3 n``, 674 at
#: ``1e-4 n``). Larger programs keep the whole budget: diabetes with 100 gates at ``1e-4 n``
#: (a dense optimum) certifies by the active set alone in 1607 steps, 7.6 s, and the QP
#: working set after 1000 of them took 23.6 s.
QP_HANDOFF_NEWTON = 1000
#: The augmented Lagrangian hands its point to the working set's Newton finish (C-ReLU with a
#: Hessian: scalar output or the one-vs-all program) at this relative gap when ``tol`` is below it...
AL_HANDOFF_TOL = 1e-4
#: ... or after this many iterations, whichever comes first, at any ``tol`` it has not certified
#: by then (the finish needs the support, not an accurate point; the augmented Lagrangian
#: continues if the finish fails).
AL_HANDOFF_ITERS = 2000

_SOLVERS = {"gated_relu": ("auto", "rfista"), "relu": ("auto", "working_set", "al")}
_FORMULATIONS = ("auto", "nuclear", "one_vs_all")


def _check_solver(solver, activation: str) -> str:
    if not isinstance(solver, str) or solver not in _SOLVERS[activation]:
        raise InvalidParameterError(
            f"solver must be one of {_SOLVERS[activation]} for activation={activation!r}, got {solver!r}."
        )
    return solver


#: Solve a C-ReLU program whose design ``[X, 1]`` has more columns than rows in the coordinates
#: of its row space (:func:`_row_space`): the same program, with blocks of dimension
#: ``rank <= n`` instead of ``d``. Measured (binary make_classification, 100 x 500,
#: ConvexReLUClassifier): 1.3-1.9 s in ``R^501``, 0.63 s in the row space (docs/native.md).
ROW_SPACE = True


def _row_space(Xa: np.ndarray) -> np.ndarray | None:
    """An orthonormal basis ``(d, r)`` of the row space of ``Xa`` (right singular vectors above
    ``max(n, d) eps`` of the largest singular value), or None when it is all of ``R^d``."""
    _, s, Vt = np.linalg.svd(Xa, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        return None
    r = int(np.sum(s > s[0] * max(Xa.shape) * np.finfo(float).eps))
    if r >= Xa.shape[1]:
        return None
    return np.ascontiguousarray(Vt[:r].T)


def _reduce_warm(warm, basis: np.ndarray):
    """A C-ReLU warm start in the row-space coordinates (its blocks projected by ``basis^T``;
    what the C-ReLU runs read of it: blocks, multipliers, step size)."""
    if warm is None:
        return None

    def red(B):
        return np.tensordot(basis.T, np.asarray(B, dtype=np.float64), axes=(1, 0))

    return SimpleNamespace(V=red(warm.V), W=red(warm.W), multipliers=getattr(warm, "multipliers", None),
                           step_size=getattr(warm, "step_size", None))


def _check_warm(warm, patterns: Patterns, spec: Activation, c: int):
    if warm is None:
        return None
    if not isinstance(warm, ConvexModel):
        raise InvalidParameterError(f"warm_start must be a cvxnn ConvexModel, got {type(warm).__name__}.")
    if not _same_patterns(warm.patterns, patterns):
        raise PatternMismatchError("warm_start was computed on other patterns; pass a model on these patterns.")
    if warm.n_outputs != c:
        raise ShapeError(f"warm_start has {warm.n_outputs} outputs but y has {c}.")
    if spec.constrained and not warm.spec.constrained:
        raise InvalidParameterError(
            f"a {spec.label} solve needs a {spec.label} warm start ({', '.join(spec.blocks)}); a "
            f"{warm.activation} point does not satisfy its constraints (it is not cone feasible)."
        )
    for name in ("U", "V", "W"):
        value = getattr(warm, name, None)
        if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise NonFiniteError(f"warm_start has non-finite weights in {name} (NaN or inf); "
                                 "pass a finite model or no warm start.")
    return warm


def _run_gated(Xa64, patterns, kernel, loss_obj, y2, lam, warm, *, tol, max_iter, dtype, callback, verbose,
               memory_budget, penalty="nuclear", solver="auto") -> dict:
    """C-GReLU: in float64 (``solver="auto"``) by the working set of rank-one atoms
    (:mod:`cvxnn.native.gated_working_set`; scalar output too, ``SCALAR_OUTPUT``), continued by
    R-FISTA from its point when it does not certify (in float32 at ``tol >= CONTINUE_FLOAT32_MIN_TOL``
    on large programs, then certified and if needed polished in float64); float32 (and ``solver="rfista"``) by R-FISTA
    with the support polish; and (``"auto"``, float64) small programs that the working set and
    R-FISTA do not certify soon by the interior-point finish (:func:`_gated_finish`)."""
    from . import gated_working_set as _gws
    from .fista import GatedResult
    from .gated_working_set import DENSE_MIN_FLOPS, MAX_COST_RATIO, solve_gated_working_set

    n, c = y2.shape
    d, p = Xa64.shape[1], patterns.n_patterns
    finish = None
    op32 = None
    isz = dtype.itemsize
    reserve = 10 * d * p * c * isz + 8 * n * c * isz
    op = ImplicitDesign(Xa64, patterns.mask, n_outputs=c, dtype=dtype, memory_budget=memory_budget,
                        reserve_bytes=reserve)
    problem = GatedProblem(op, kernel, lam, penalty=penalty)
    if warm is not None:
        U0 = _as3(np.asarray(warm.effective_weights, dtype=dtype))
        eta0 = getattr(warm, "step_size", None)
    else:
        U0 = np.zeros((d, p, c), dtype=dtype)
        eta0 = None
    log_every = 100 if verbose else 0
    # small programs that the first-order methods do not certify within the finish's cost
    # (counted in iterations of the working set and R-FISTA together) go to an interior point;
    # max_iter is the caller's budget, so the finish only replaces iterations it allowed
    after = (_gc.finish_after(n, d, p, c, penalty=penalty, exponential=loss_obj.exponential_cones,
                              memory_budget=memory_budget)
             if solver == "auto" and dtype == np.float64 else None)
    if after is not None and after >= max_iter:
        after = None
    cap = max_iter if after is None else after
    ws = None
    atoms_need = _gws.atoms_bytes(n, p, c)
    atoms_fit = atoms_need <= (default_memory_budget() if memory_budget is None else int(memory_budget))
    if not atoms_fit:
        logger.info("gated working set skipped: its atom arrays could take %s bytes, above the memory budget; "
                    "R-FISTA solves the program", f"{atoms_need:,}")
    if solver == "auto" and dtype == np.float64 and (c > 1 or _gws.SCALAR_OUTPUT) and atoms_fit:
        # the cost cap of the atoms only where the design's products are costly (DENSE_MIN_FLOPS)
        cost_ratio = MAX_COST_RATIO if 2.0 * n * d * p * c >= DENSE_MIN_FLOPS else np.inf
        ws = solve_gated_working_set(op, kernel, lam, U0, tol=tol, max_iter=cap, penalty=penalty,
                                     callback=callback, max_cost_ratio=cost_ratio,
                                     start_state=getattr(warm, "check_state", None))
        logger.info("gated working set: %s after %d L-BFGS iterations, %d rounds, %d atoms, relative gap %.3e",
                    ws.reason, ws.iterations, ws.rounds, ws.atoms,
                    (ws.primal - ws.dual) / max(abs(ws.primal), np.finfo(float).tiny))
    if ws is not None and (ws.converged or ws.stopped_by_callback or (after is None and ws.iterations >= max_iter)):
        res = GatedResult(U=ws.U, primal=ws.primal, dual=ws.dual, iterations=ws.iterations,
                          converged=ws.converged, eta=eta0 if eta0 is not None else float("nan"),
                          stopped_by_callback=ws.stopped_by_callback)
    else:
        if eta0 is None or not np.isfinite(eta0) or eta0 <= 0:
            eta0 = initial_step(op, kernel)
        # float32 cannot certify much below its rounding level: its stage stops at _F32_GATED_TOL and
        # the float64 polish below takes the solve to tol
        tol_run = max(tol, _F32_GATED_TOL) if dtype != np.float64 else tol
        start = U0 if ws is None else ws.U.astype(dtype)
        done = ws.iterations if ws else 0
        budget = max_iter - done
        # a dense program handed over by the working set continues in float32 (its products are
        # GEMMs at twice the speed) when tol allows; the float64 certificate and polish follow
        op32 = (_gws._float32_twin(op) if CONTINUE_FLOAT32 and ws is not None and after is None
                and tol >= CONTINUE_FLOAT32_MIN_TOL else None)
        flops32 = op32.flops if op32 is not None else 0.0  # the working set counted its own
        if op32 is not None and cap - done > 0:
            problem32 = GatedProblem(op32, make_kernel(loss_obj, y2, np.float32), lam, penalty=penalty)
            res = solve_gated(problem32, start.astype(np.float32), tol=tol, max_iter=cap - done, eta0=eta0,
                              callback=callback, log_every=log_every)
            res.dual = -np.inf  # a float32 dual value is an estimate, not a bound
        elif cap - done > 0:
            # a float32 stage can stall above its floor (diabetes at 0.003 lam_max: gap 6e-5 for
            # all 20000 iterations, and the float64 polish never ran): it gets part of the budget
            stage = cap - done if dtype == np.float64 else max(1, int((cap - done) * F32_STAGE_SHARE))
            res = solve_gated(problem, start, tol=tol_run, max_iter=stage, eta0=eta0, callback=callback,
                              log_every=log_every)
        else:  # the working set used the iterations before the finish
            res = GatedResult(U=ws.U, primal=ws.primal, dual=ws.dual, iterations=0, converged=False, eta=eta0)
        if after is not None and not res.converged and not res.stopped_by_callback:
            res, finish = _gated_finish(problem, res, Xa64, patterns, kernel, lam, tol, penalty, budget, callback,
                                        log_every)
        if ws is not None:
            res.iterations += ws.iterations
            res.dual = max(res.dual, ws.dual)  # both are valid lower bounds of the same program
    iterations, flops = res.iterations, op.flops
    polish = 0
    # certify in float64
    if dtype == np.float64:
        op64, kernel64 = op, kernel
    else:
        op64 = ImplicitDesign(Xa64, patterns.mask, n_outputs=c, dtype=np.float64, memory_budget=memory_budget,
                              reserve_bytes=reserve * 2, cache_mask=False)
        kernel64 = make_kernel(loss_obj, y2, np.float64)
    U64 = np.asarray(res.U, dtype=np.float64)
    if ws is not None and ws.converged and res.U is ws.U:
        # the working set certified this point with float64 values (its objective and the best
        # dual value of its float64 checks): a second certificate would repeat them
        primal, dual = ws.primal, ws.dual
    else:
        cert = gated_certificate(op64, kernel64, lam, U64, penalty=penalty)
        primal = cert.primal
        dual = max(cert.dual, res.dual) if dtype == np.float64 else cert.dual
    gap = max(primal - dual, 0.0)
    rel = gap / max(abs(primal), np.finfo(float).tiny)
    eta = res.eta
    ran32 = dtype != np.float64 or op32 is not None
    if ran32 and rel > tol and iterations < max_iter and not res.stopped_by_callback:
        logger.info("float32 result has relative gap %.3e in float64; polishing in float64", rel)
        prob64 = GatedProblem(op64, kernel64, lam, penalty=penalty)
        res = solve_gated(prob64, U64, tol=tol, max_iter=max_iter - iterations, eta0=res.eta, callback=callback,
                          log_every=log_every)
        polish = res.iterations
        iterations += polish
        U64 = res.U
        cert = gated_certificate(op64, kernel64, lam, U64, penalty=penalty)
        primal, dual = cert.primal, max(cert.dual, res.dual)
        gap = max(primal - dual, 0.0)
        rel = gap / max(abs(primal), np.finfo(float).tiny)
        eta = res.eta
    flops = op.flops + (op64.flops if op64 is not op else 0.0) + (op32.flops - flops32 if op32 is not None else 0.0)
    converged = rel <= tol and not res.stopped_by_callback
    extra = {
        "rel_gap": rel,
        "dual_value": dual,
        "step_size": eta,
        "flops": flops,
        "n_forward": op.n_forward,
        "n_adjoint": op.n_adjoint,
        "restarts": res.restarts,
        "backtracks": res.backtracks,
        "mask_cached": op.mask_cached,
        "operator_bytes": op.bytes_held,
        "polish_iterations": polish,
        "support_polishes": res.polishes,
        "support_polish_products": res.polish_products,
        "stopped_by_callback": res.stopped_by_callback,
    }
    if finish is not None:
        extra.update(finish)
    if ws is not None:
        extra.update({"working_set_rounds": ws.rounds, "working_set_atoms": ws.atoms,
                      "working_set_checks": ws.checks, "working_set_iterations": ws.iterations,
                      "working_set_stop": ws.reason, "working_set_polishes": ws.polishes,
                      "working_set_fallback": not (ws.converged or ws.stopped_by_callback)})
    # the working set's check of the returned blocks, for the next warm start
    check_state = ws.state if ws is not None and ws.state is not None and U64 is ws.state.U else None
    return {
        "weights": {"U": U64},
        "check_state": check_state,
        "status": "optimal" if converged else "max_iterations",
        "solver": "rfista",
        "objective_value": primal,
        "iterations": iterations,
        "gap": gap,
        "max_violation": None,
        "extra": extra,
    }


def _gated_finish(problem, res, Xa64, patterns, kernel, lam, tol, penalty, budget, callback, log_every):
    """The interior-point finish of a small C-GReLU program (:mod:`cvxnn.native.gated_conic`)
    after ``res``, an uncertified R-FISTA run: Clarabel's blocks are certified on the full program;
    when they are not certified, R-FISTA continues from the better of the two points with the
    rest of ``budget``. Returns the result and the ``extra`` entries of the finish."""
    from .fista import GatedResult

    tiny = np.finfo(float).tiny
    t0 = time.perf_counter()
    Uc = _gc.gated_conic_finish(Xa64, patterns.mask, kernel, lam, tol, penalty=penalty)
    info: dict[str, Any] = {"finish": "clarabel", "finish_certified": False}
    best, dual = res, res.dual
    if Uc is not None:
        cert = gated_certificate(problem.op, kernel, lam, Uc, penalty=penalty)
        # an interior point has no exact zeros (blocks, columns, singular values): one proximal
        # gradient step from it sets the directions that the optimum lacks to zero, and the
        # plain truncation of its rounding-level parts is the second try; either is kept only
        # if it still certifies (at small lam the dual norms react strongly to such changes)
        Up = _gc.proximal_step(problem, Uc)
        exact = False
        for Uz in (Up, _gc.zero_small_blocks(Uc, penalty=penalty)[0]):
            if Uz is None or np.array_equal(Uz, Uc):
                continue
            cert_z = gated_certificate(problem.op, kernel, lam, Uz, penalty=penalty)
            if cert_z.rel_gap <= tol:
                Uc, cert, exact = Uz, cert_z, True
                break
        left = budget - res.iterations
        if not exact and Up is not None and cert.rel_gap <= tol and left > 0:
            # neither certifies by itself: R-FISTA from the proximal step keeps its exact zeros
            # (every iterate is a prox) and usually certifies within a few hundred iterations
            pol = solve_gated(problem, Up, tol=tol, max_iter=min(_gc.POLISH_ITERATIONS, left), eta0=res.eta,
                              callback=None, log_every=log_every)
            res.iterations += pol.iterations
            info.update(finish_polish_iterations=pol.iterations)
            if pol.converged:
                Uc = pol.U
                cert = gated_certificate(problem.op, kernel, lam, Uc, penalty=penalty)
                dual = max(dual, pol.dual)
        dual = max(cert.dual, dual)  # every one is a valid lower bound of the same program
        rel = (cert.primal - dual) / max(abs(cert.primal), tiny)
        info.update(finish_rel_gap=cert.rel_gap)
        logger.info("gated conic finish: relative gap %.3e -> %.3e (%.3fs, %d R-FISTA iterations from its "
                    "proximal step)", (res.primal - res.dual) / max(abs(res.primal), tiny), rel,
                    time.perf_counter() - t0, info.get("finish_polish_iterations", 0))
        if cert.primal < res.primal:
            best = GatedResult(U=Uc, primal=cert.primal, dual=dual, iterations=res.iterations, converged=False,
                               eta=res.eta, backtracks=res.backtracks, restarts=res.restarts,
                               polishes=res.polishes, polish_products=res.polish_products)
    best.dual = dual
    best.converged = (best.primal - dual) / max(abs(best.primal), tiny) <= tol
    info.update(finish_certified=bool(best.converged), finish_time=time.perf_counter() - t0)
    if best.converged or budget - res.iterations <= 0:
        return best, info
    # not certified: R-FISTA goes on from the better point with the rest of its budget
    more = solve_gated(problem, best.U, tol=tol, max_iter=budget - res.iterations, eta0=res.eta, callback=callback,
                       log_every=log_every)
    more.iterations += res.iterations
    more.dual = max(more.dual, dual)
    more.backtracks += res.backtracks
    more.restarts += res.restarts
    more.polishes += res.polishes
    more.polish_products += res.polish_products
    return more, info


def _continued(first, then):
    """The working-set result ``then`` of a run that continued from ``first``'s point, with the
    counts (Newton steps, rounds, NNLS solves) and the history of both."""
    then.iterations += first.iterations
    then.rounds += first.rounds
    then.nnls_solves += first.nnls_solves
    then.history = first.history + then.history
    return then


def _run_working_set(Xa64, patterns, loss_obj, y2, lam, warm, *, tol, feas_tol, max_iter, callback,
                     memory_budget):
    """The working set; returns (solution kwargs, result).

    Every loss runs :func:`~cvxnn.native.working_set.solve_relu_working_set` (restricted programs
    by the active-set method, the barrier as its fallback), except a quadratic loss with scalar
    output on ``QP_FIRST_ROWS`` samples or more, which runs the Clarabel QP working set
    (:func:`~cvxnn.native.working_set_qp.solve_relu_working_set_qp`). For a quadratic loss with
    scalar output, an active-set run that stops uncertified for a reason other than size or the
    iteration budget (the dense optima of a very small ``lam``, where the active set cycles
    through face changes) is continued from its point by the QP working set.
    """
    kernel64 = make_kernel(loss_obj, y2, np.float64)
    T0 = None
    if warm is not None:
        T0 = np.concatenate([_as3(warm.V), _as3(warm.W)], axis=1).astype(np.float64)
    c = y2.shape[1]
    kw_run = dict(gates=patterns.gates, tol=tol, feas_tol=feas_tol, callback=callback, memory_budget=memory_budget)
    quadratic = loss_obj.quadratic and c == 1
    small = 2 * patterns.n_patterns * c * Xa64.shape[0] <= _ws.CONIC_MAX_ROWS  # Clarabel takes it whole
    if quadratic and Xa64.shape[0] >= QP_FIRST_ROWS:
        res = solve_relu_working_set_qp(Xa64, patterns.mask, kernel64, lam, max_iter=max_iter, T0=T0, **kw_run)
        inner = "clarabel_qp"
    else:
        # a small program with a quadratic loss hands a long active-set run to Clarabel (rows of
        # very different scales); larger ones keep the whole budget (dense optima take long)
        budget = min(max_iter, QP_HANDOFF_NEWTON) if quadratic and small and QP_HANDOFF_NEWTON else max_iter
        res = solve_relu_working_set(Xa64, patterns.mask, kernel64, lam, max_iter=budget, T0=T0, **kw_run)
        inner = "active_set" if _ws.ACTIVE_SET else "barrier"
    if (quadratic and inner != "clarabel_qp" and not res.converged and res.reason in QP_CONTINUE_REASONS
            and res.iterations < max_iter and not small):
        logger.info("working set stopped (%s) at relative gap %.3e after %d Newton steps; the Clarabel QP "
                    "working set continues from its point", res.reason, res.rel_gap, res.iterations)
        res = _continued(res, solve_relu_working_set_qp(Xa64, patterns.mask, kernel64, lam, T0=res.T,
                                                        max_iter=max_iter - res.iterations, **kw_run))
        inner = "active_set+clarabel_qp"
    d = Xa64.shape[1]
    p = patterns.n_patterns
    if not res.converged and res.reason in CONIC_FINISH_REASONS and res.iterations < max_iter and small:
        # a small program the working set could not certify (badly conditioned rows): Clarabel
        # solves the whole program, and the working set certifies its point on the full program
        nb = 2 * p * c
        M = patterns.mask.astype(np.float64)
        Uc = _ws._restricted_conic(Xa64, M, 2.0 * M - 1.0, kernel64, lam, np.arange(nb) // c, np.arange(nb) % c,
                                   max(1e-9, min(1e-6, 1e-2 * tol)))  # near the optimum is enough
        if Uc is not None:
            logger.info("working set stopped (%s) at relative gap %.3e; Clarabel solved the whole program, the "
                        "working set certifies its point", res.reason, res.rel_gap)
            fin = solve_relu_working_set(Xa64, patterns.mask, kernel64, lam, T0=Uc.reshape(d, 2 * p, c),
                                         max_iter=max(1, max_iter - res.iterations), **kw_run)
            if fin.converged or fin.rel_gap < res.rel_gap:
                res = _continued(res, fin)
                inner += "+clarabel"
    if not res.converged and res.reason == "max_iterations" and res.iterations < max_iter:
        # stopped by QP_HANDOFF_NEWTON and neither Clarabel run finished: the rest of the budget
        res = _continued(res, solve_relu_working_set(Xa64, patterns.mask, kernel64, lam, T0=res.T,
                                                     max_iter=max_iter - res.iterations, **kw_run))
    extra = {
        "rel_gap": res.rel_gap,
        "dual_value": res.dual,
        "multipliers": res.rho[:, :, 0] if res.rho.shape[2] == 1 else res.rho,
        "rounds": res.rounds,
        "working_set": res.working_set,
        "nnls_solves": res.nnls_solves,
        "history": res.history,
        "inner_solver": inner,
        "stop_reason": res.reason,
        "feas_tol": feas_tol,
        "stopped_by_callback": res.reason == "callback",
    }
    kw = {
        "weights": {"V": np.ascontiguousarray(res.T[:, :p]), "W": np.ascontiguousarray(res.T[:, p:])},
        "status": "optimal" if res.converged else "max_iterations",
        "solver": "working_set",
        "objective_value": res.primal,
        "iterations": res.iterations,
        "gap": max(res.primal - res.dual, 0.0),
        "max_violation": res.violation,
        "extra": extra,
    }
    return kw, res


def _run_relu(Xa64, patterns, kernel, loss_obj, y2, lam, warm, *, tol, feas_tol, max_iter, dtype, callback,
              verbose, memory_budget, solver="al", penalty="nuclear") -> dict:
    n, c = y2.shape
    d, p = Xa64.shape[1], patterns.n_patterns
    fallback = None
    ws = None  # the working set's result, when it ran (its memory check can send the program straight to the AL)
    if solver == "working_set":
        try:
            _ws.check_working_set_memory(n, d, p, c, memory_budget)
        except MemoryBudgetError as exc:
            # the augmented Lagrangian's arrays may still fit (it checks them itself)
            logger.info("%s; the augmented Lagrangian solves the program", exc)
            solver, fallback = "al", "memory"
    if solver == "working_set":
        kw, ws = _run_working_set(Xa64, patterns, loss_obj, y2, lam, warm, tol=tol, feas_tol=feas_tol,
                                  max_iter=max_iter, callback=callback, memory_budget=memory_budget)
        if ws.converged or ws.reason in ("callback", "max_iterations"):
            return kw
        # the working set could not finish: the augmented Lagrangian continues from its point
        logger.info("working set stopped (%s); continuing with the augmented Lagrangian", ws.reason)
        fallback = ws.reason
        warm = SimpleNamespace(V=kw["weights"]["V"], W=kw["weights"]["W"], multipliers=ws.rho)
    Xa = np.ascontiguousarray(Xa64, dtype=dtype)
    delta0 = eta0 = None
    gamma0 = None
    if warm is not None:
        T0 = np.concatenate([_as3(warm.V), _as3(warm.W)], axis=1).astype(dtype)
        mult = getattr(warm, "multipliers", None)
        if mult is not None:
            mult = np.asarray(mult)
            mult = mult[:, :, None] if mult.ndim == 2 else mult
            if mult.shape == (n, 2 * p, c):
                gamma0 = mult.astype(dtype)
        # delta restarts from its rule (as in the feature-sparse AL): inherited along a path it
        # only grew (9e3 to 4.8e6 over a nuclear-norm path), the subproblems became ill-conditioned
        # and the warm-started steps ended uncertified where cold solves certified
        eta0 = getattr(warm, "step_size", None)
    else:
        T0 = np.zeros((d, 2 * p, c), dtype=dtype)
    # float32 runs the augmented Lagrangian to a loose tolerance (its precision limit), then
    # polishes in float64 from the float32 iterate and multipliers. Below AL_HANDOFF_TOL the
    # AL hands its support to the working set's Newton finish (first-order convergence to 1e-8
    # took 50000 iterations and did not get there on wine), where that applies and the working
    # set did not just fail for its size.
    # A float32 stage hands over too (the finish runs in float64 from its point): without it a
    # float32 AL went on alone in float64 and ended uncertified after 20000 iterations where the
    # float64 run certified in 2017 (diabetes, 80 rows, 10 gates).
    # At a looser tol the AL run for itself (not after a working set that failed) also hands over
    # after AL_HANDOFF_ITERS iterations: alone it ended max_iterations after 10000 iterations at tol
    # 1e-2 to 1e-4 (iris, wine, breast cancer, 10 gates) where tol 9e-5, handed over, certified in 2045.
    loose = dtype != np.float64
    handoff = (loss_obj.has_hessian and (c == 1 or penalty == "columnwise")
               and fallback not in ("memory", "working_set_too_large")
               and (tol < AL_HANDOFF_TOL or fallback is None))
    floor = max(_F32_AL_TOL if loose else 0.0, AL_HANDOFF_TOL if handoff and tol < AL_HANDOFF_TOL else 0.0)
    tol_run, feas_run = max(tol, floor), max(feas_tol, floor)
    stage_iter = max(1, int(max_iter * F32_STAGE_SHARE)) if loose else max_iter
    res = solve_relu(Xa, patterns.mask, kernel, lam, T0,
                     gamma0 if gamma0 is not None else _zeros_checked(n, p, c, d, dtype, memory_budget),
                     tol=tol_run, feas_tol=feas_run,
                     max_iter=min(stage_iter, AL_HANDOFF_ITERS) if handoff else stage_iter,
                     delta0=delta0, eta0=eta0, callback=callback,
                     log_every=100 if verbose else 0, memory_budget=memory_budget, penalty=penalty)
    iterations = res.iterations
    last64 = dtype == np.float64  # whether res (and its dual bound) comes from a float64 run
    certified_run = res.converged and tol_run <= tol and feas_run <= feas_tol  # no finish needed
    if handoff and not certified_run and not res.stopped_by_callback and iterations < max_iter:
        T_al = res.T.astype(np.float64)
        kw_ws, ws_fin = _run_working_set(
            Xa64, patterns, loss_obj, y2, lam, SimpleNamespace(V=T_al[:, :p], W=T_al[:, p:]), tol=tol,
            feas_tol=feas_tol, max_iter=max(1, max_iter - iterations), callback=callback,
            memory_budget=memory_budget)
        if ws_fin.converged:
            kw_ws["solver"] = "al"
            kw_ws["iterations"] = iterations + ws_fin.iterations
            # the augmented Lagrangian's own keys (docs/native.md) are kept: delta, step size, flops
            kw_ws["extra"].update(finish="working_set", al_iterations=iterations,
                                  finish_iterations=ws_fin.iterations, outer_iterations=res.outer_iterations,
                                  delta=res.delta, step_size=res.eta, flops=_al_flops(n, d, p, c, iterations))
            if fallback is not None:
                kw_ws["extra"]["fallback"] = fallback
            return kw_ws
        logger.info("the Newton finish stopped (%s); the augmented Lagrangian continues", ws_fin.reason)
    if (loose or handoff) and (tol_run > tol or feas_run > feas_tol or not res.converged) \
            and not res.stopped_by_callback and iterations < max_iter:
        logger.info("augmented Lagrangian not certified at tol; continuing in float64")
        res = solve_relu(Xa64, patterns.mask, make_kernel(loss_obj, y2, np.float64), lam,
                         res.T.astype(np.float64), res.gamma.astype(np.float64), tol=tol, feas_tol=feas_tol,
                         max_iter=max_iter - iterations, delta0=res.delta, eta0=res.eta, callback=callback,
                         log_every=100 if verbose else 0, memory_budget=memory_budget, penalty=penalty)
        iterations += res.iterations
        last64 = True
    T64 = res.T.astype(np.float64)
    V64, W64 = np.ascontiguousarray(T64[:, :p]), np.ascontiguousarray(T64[:, p:])
    kernel64 = make_kernel(loss_obj, y2, np.float64) if dtype != np.float64 else kernel
    # final multipliers (gamma - delta S Z)_+ at the returned point, in float64
    M = patterns.mask
    S = (2.0 * M - 1.0)
    Z = (Xa64 @ T64.reshape(d, 2 * p * c)).reshape(n, 2 * p, c)
    S2 = np.concatenate([S, S], axis=1)[:, :, None]
    rho = np.maximum(res.gamma.astype(np.float64) - res.delta * S2 * Z, 0.0)
    del Z
    cert = relu_certificate(Xa64, M, kernel64, lam, V64, W64, rho, penalty=penalty)
    # a float64 run's own best dual bound counts (a float32 stage's is not trusted)
    dual = max(cert.dual, res.dual) if last64 else cert.dual
    gap = max(cert.primal - dual, 0.0)
    rel = gap / max(abs(cert.primal), np.finfo(float).tiny)
    converged = rel <= tol and cert.max_violation <= feas_tol and not res.stopped_by_callback
    mult = rho[:, :, 0] if c == 1 else rho
    extra = {
        "rel_gap": rel,
        "dual_value": dual,
        "step_size": res.eta,
        "delta": res.delta,
        "multipliers": mult,
        "outer_iterations": res.outer_iterations,
        "flops": _al_flops(n, d, p, c, iterations),
        "feas_tol": feas_tol,
        "stopped_by_callback": res.stopped_by_callback,
        "stalled": res.stalled,
    }
    if fallback is not None:
        extra["fallback"] = fallback
        extra["working_set_iterations"] = 0 if ws is None else ws.iterations
    if cert.max_violation > feas_tol:
        # the point is outside the cones: its objective can lie below the optimum, so primal - dual
        # bounds nothing (clipped at zero it read as a perfect certificate); kept as a diagnostic
        extra["gap_at_infeasible_point"] = cert.primal - dual
        gap = None
        extra["rel_gap"] = None  # no certificate, so no relative gap either (0.0 read as perfect)
    return {
        "weights": {"V": V64, "W": W64},
        "status": "optimal" if converged else "numerical_error" if res.stalled else "max_iterations",
        "solver": "al",
        "objective_value": cert.primal,
        "iterations": iterations,
        "gap": gap,
        "max_violation": cert.max_violation,
        "extra": extra,
    }


def _zeros_checked(n, p, c, d, dtype, memory_budget):
    from .al import check_al_memory

    check_al_memory(n, d, p, c, dtype.itemsize, memory_budget)
    return np.zeros((n, 2 * p, c), dtype=dtype)


def _al_flops(n, d, p, c, iterations) -> float:
    # one forward and one adjoint GEMM of 2 n d (2p) c flops per iteration (line-search trials extra)
    return 2.0 * 2.0 * n * d * 2 * p * c * iterations
