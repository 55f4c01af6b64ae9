"""The one regularisation-path engine and the one ``lam_max`` (docs/math.md,
"lam_max and regularisation paths").

``lam_max`` is the smallest ``lam`` for which the zero model is optimal: the largest dual norm of
the correlations of the gradient of the loss at zero. With ``r0 = -grad L(0, y)`` (``= y`` for
the summed squared loss; any loss with a gradient at zero, ``reduction="mean"`` included) and
``C_i = X_a^T D_i r0`` (``d_a`` or ``d_a x c``):

* C-GReLU: ``lam_max = max_i ||C_i||^D`` with the dual norm of the penalty
  (:meth:`cvxnn.penalties.Penalty.dual_norm`): the 2-norm (scalar output), the spectral norm
  (nuclear penalty, vector output) or the largest column norm (``"one_vs_all"``);
* C-ReLU: the cone multipliers ``rho_i >= 0`` of ``Xt_i theta_i >= 0`` may lower each
  correlation: ``lam_max = max_i max_{s = +-1} min_{rho >= 0} ||s C_i + Xt_i^T rho||^D``, one
  NNLS per block and sign (per output column for ``"one_vs_all"``; skipped when ``rho = 0`` is
  already optimal, ``Xt_i (s c_i) >= 0``, checked for all blocks at once), and for the nuclear
  vector program a small spectral-norm program per block and sign (CVXPY, only for blocks whose
  upper bound ``||C_i||_2`` can raise the maximum).

The engine, :func:`walk_path`, walks a grid in decreasing order, hands each solve the previous
solution as its warm start, and calls a callback after each step (returning True stops). Its
default step, used by :func:`solve_path` and :func:`regularization_path`, calls
:func:`cvxnn.solve`: on a CVXPY solver the program is compiled once and only its ``lam`` changes
(DPP), on the native solvers each solve is warm-started from the previous one, and grid points
with ``lam >= lam_max`` get the exact zero solution without a solve. Cross-validation
(:func:`cvxnn.estimators.cross_validate_lam`) and the CLI's ``path`` command walk their grids with
the same engine and an estimator's fit as the step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from . import builders as _builders
from ._lam_max import _prepare, lam_max
from ._validation import callback_stops, check_bool, check_lam, check_lams, check_positive_int
from .activations import get_activation
from .backends.registry import resolve_solver, solve
from .errors import InvalidParameterError
from .losses import Loss, get_loss
from .patterns import Patterns
from .solution import ConvexSolution

__all__ = [
    "PathStep",
    "RegularizationPath",
    "LAM_MAX_ROUNDING",
    "lam_grid",
    "lam_max",
    "lam_max_is_zero",
    "regularization_path",
    "solve_path",
    "walk_path",
]

logger = logging.getLogger(__name__)


def lam_grid(lam_max_value: float, n_lams: int = 20, lam_min_ratio: float = 1e-3) -> np.ndarray:
    """Geometric grid ``lam_max * logspace(0, log10(lam_min_ratio), n_lams)`` (decreasing)."""
    n_lams = check_positive_int(n_lams, "n_lams")
    if isinstance(lam_min_ratio, (bool, np.bool_)) or not isinstance(lam_min_ratio, (int, float, np.number)) \
            or not (0 < lam_min_ratio <= 1):
        raise InvalidParameterError(f"lam_min_ratio must be a number in (0, 1], got {lam_min_ratio!r}.")
    lam_max_value = check_lam(lam_max_value, name="lam_max", allow_zero=False)
    # float64 whatever the inputs' types (a float32 ratio made the grid float32: its first point
    # fell below lam_max, and the exact zero at lam_max was solved instead)
    grid = float(lam_max_value) * np.logspace(0.0, np.log10(float(lam_min_ratio)), n_lams, dtype=np.float64)
    grid[0] = float(lam_max_value)
    return grid


@dataclass(eq=False)
class RegularizationPath:
    """Solutions along a decreasing ``lam`` grid.

    Attributes
    ----------
    lams : ndarray
        The grid actually solved (decreasing).
    solutions : list of ConvexSolution
    lam_max : float
        Exact ``lam_max`` of the problem (``inf`` where it is not available: a loss that is not
        differentiable at the zero prediction for these targets, e.g. the absolute loss with a
        target ``0``).
    activation, backend, solver : str
    total_time : float
        Wall-clock seconds for the whole path (including compilation).
    """

    lams: np.ndarray
    solutions: list[ConvexSolution] = field(repr=False)
    lam_max: float
    activation: str
    backend: str
    solver: str
    total_time: float

    def __len__(self) -> int:
        return len(self.solutions)

    @property
    def objectives(self) -> np.ndarray:
        """Objective value at each ``lam``."""
        return np.array([s.objective_value for s in self.solutions])

    @property
    def penalties(self) -> np.ndarray:
        """Group-lasso penalty (without ``lam``) at each ``lam``."""
        return np.array([s.penalty() for s in self.solutions])

    def n_active(self, tol: float = 1e-6) -> np.ndarray:
        """Active blocks at each ``lam``: norm ``> tol *`` the largest block norm on the whole path
        (a per-solution threshold would count solver noise as active at ``lam >= lam_max``)."""
        norms = self.block_norms()
        top = norms.max(initial=0.0)
        return (norms > tol * top).sum(axis=1) if top > 0 else np.zeros(len(self), dtype=int)

    @property
    def statuses(self) -> list[str]:
        """Solver status at each ``lam``."""
        return [s.status for s in self.solutions]

    def coefficients(self) -> np.ndarray:
        """Effective blocks (``U`` or ``V - W``) stacked: ``(n_lams, d_a, p[, c])``."""
        return np.stack([s.effective_weights for s in self.solutions])

    def block_norms(self) -> np.ndarray:
        """Block norms at each ``lam``: ``(n_lams, m)`` in the layout of
        :func:`~cvxnn.optimality.kkt.block_layout`."""
        return np.stack([s.block_norms().ravel() for s in self.solutions])


#: A ``lam_max`` at most this fraction of ``||X_a||_F ||grad L(0)||`` (the scale of the
#: correlations ``X_a^T D_i r0`` it is the largest dual norm of) is the rounding of an exact 0:
#: every input twice with opposite labels gave 5e-15, and a default grid down to 5e-18.
LAM_MAX_ROUNDING = 1e-10


def lam_max_is_zero(lmax: float, Xa: np.ndarray, y: np.ndarray, loss) -> bool:
    """Whether ``lmax`` is 0 up to the rounding of its correlations (:data:`LAM_MAX_ROUNDING`):
    then the zero model is optimal at every ``lam`` and no default grid starts from it. ``loss``
    is differentiable at the zero prediction for ``y`` (:meth:`~cvxnn.losses.Loss.grad_at_zero`),
    as for :func:`lam_max`."""
    r0 = loss.grad_at_zero(y)
    return not lmax > LAM_MAX_ROUNDING * float(np.linalg.norm(Xa)) * float(np.linalg.norm(r0))


def _zero_solution(X, y, patterns, activation, loss, lam, backend, formulation=None) -> ConvexSolution:
    """The exact optimum ``0`` for ``lam >= lam_max`` (certified by :func:`lam_max`, no solve).
    A vector solution carries its program's ``formulation``, as the other solutions of its path
    (None made :func:`~cvxnn.native.duality_gap` certify it for the nuclear program).

    ``gap = 0`` is exact for every loss differentiable at the zero prediction, non-smooth ones
    (hinge, absolute) included: the dual point ``-grad L(0, y)`` is feasible for ``lam >= lam_max``
    and its dual value is ``L(0, y)``. It is the subdifferential argument of :func:`lam_max`, not
    a native certificate (:func:`~cvxnn.native.duality_gap` takes smooth losses only), which
    ``extra["certified_by"] == "lam_max"`` records."""
    shape = (patterns.design_dim, patterns.n_patterns) + (() if y.ndim == 1 else (y.shape[1],))
    spec = get_activation(activation)
    return ConvexSolution(
        activation=spec.name, patterns=patterns, **spec.zero_blocks(shape), status="optimal",
        objective_value=loss.value(np.zeros_like(y), y), lam=float(lam), loss=loss, backend=backend,
        solver="lam_max", solve_time=0.0, iterations=0, gap=0.0, rel_gap=0.0,
        max_violation=0.0 if spec.constrained else None,
        formulation=formulation if y.ndim == 2 else None,
        extra={"certified_by": "lam_max"},
    )


@dataclass(frozen=True, eq=False)
class PathStep:
    """One step of :func:`walk_path`.

    Attributes
    ----------
    index : int
        Position of ``lam`` in the grid as given.
    step : int
        Position in the walk (0 for the largest ``lam``).
    lam : float
    solution : ConvexSolution
        What the step function returned.
    """

    index: int
    step: int
    lam: float
    solution: ConvexSolution


def _check_grid(lams) -> np.ndarray:
    return check_lams(lams)


def _check_callback(callback):
    """``callback`` of a path: None or a callable (checked before any solve: an int was called
    after the first solve and failed with a bare TypeError)."""
    if callback is not None and not callable(callback):
        raise InvalidParameterError(f"callback must be callable or None, got {type(callback).__name__}.")
    return callback


def _check_solver_opts(solver_opts) -> dict:
    """``solver_opts`` of a path: None or a dict of keyword options (a list or an int failed
    with a bare TypeError)."""
    if solver_opts is None:
        return {}
    if not isinstance(solver_opts, Mapping) or not all(isinstance(k, str) for k in solver_opts):
        raise InvalidParameterError(
            f"solver_opts must be a dict of keyword options (str keys) or None, got {solver_opts!r:.60}.")
    return dict(solver_opts)


def walk_path(
    lams,
    step: Callable[[float, ConvexSolution | None], ConvexSolution],
    *,
    warm_start: bool = True,
    callback: Callable[[int, float, ConvexSolution], bool | None] | None = None,
) -> Iterator[PathStep]:
    """The path engine: call ``step`` on ``lams`` in decreasing order, warm-started.

    Parameters
    ----------
    lams : array-like of float
        The grid (any order; each value ``>= 0``); walked from the largest value down.
    step : callable
        ``step(lam, warm) -> ConvexSolution``; ``warm`` is the previous step's solution (None for
        the first step, or always None with ``warm_start=False``).
    warm_start : bool
        Pass the previous solution to the next step. A solution's ``check_state`` (native
        C-GReLU) is dropped once the next step has run, so a path holds one at a time.
    callback : callable, optional
        ``callback(k, lam, solution)`` after step ``k``; returning True stops the walk.

    Yields
    ------
    PathStep
        In decreasing ``lam``; ``index`` maps back to the grid as given.
    """
    grid = _check_grid(lams)
    warm_start = check_bool(warm_start, "warm_start")
    callback = _check_callback(callback)
    order = np.argsort(-grid, kind="stable")
    prev = None
    for k, idx in enumerate(order):
        lam = float(grid[idx])
        sol = step(lam, prev if warm_start else None)
        if prev is not None and getattr(prev, "check_state", None) is not None:
            prev.check_state = None  # used (or not) by this step: free its adjoint
        prev = sol
        yield PathStep(index=int(idx), step=k, lam=lam, solution=sol)
        if callback is not None and callback_stops(callback(k, lam, sol)):
            return


def _backend_solver(backend) -> tuple[str, str]:
    """``(solver name for cvxnn.solve, backend label)`` for a path's ``backend`` argument."""
    if not isinstance(backend, str) or not backend:
        raise InvalidParameterError(f"backend must be a solver name such as 'clarabel' or 'native', got {backend!r}.")
    name = "CLARABEL" if backend.lower() == "cvxpy" else backend
    adapter, resolved = resolve_solver(name)
    return resolved, adapter.backend


def _check_solver_loss(name: str, backend: str, loss: Loss, grid: np.ndarray, lmax: float) -> None:
    """Refuse, before any solve, a native solver for a loss it does not take (hinge, absolute:
    the native solvers need a smooth loss with a conjugate) when a grid point below ``lmax``
    needs a solve; the points at or above ``lmax`` are the exact zero model and need none."""
    if backend == "cvxpy" or (loss.smooth and loss.has_conjugate) or not np.any(grid < lmax):
        return
    raise InvalidParameterError(
        f"the {loss.name} loss is not smooth: the native solvers ({name!r}) do not take it; solve its path "
        "with a CVXPY backend (backend='clarabel' or 'scs').")


def solve_path(
    X,
    y,
    patterns: Patterns,
    lams,
    *,
    activation: str = "relu",
    loss: str | Loss = "squared",
    solver: str = "clarabel",
    tol: float = 1e-6,
    lam_max_value: float | None = None,
    callback: Callable[[int, float, ConvexSolution], bool | None] | None = None,
    solver_opts: dict | None = None,
    formulation: str | None = None,
) -> Iterator[PathStep]:
    """Solve the convex program along ``lams`` (decreasing) with :func:`cvxnn.solve`.

    The default step of :func:`walk_path`: a CVXPY solver compiles the program once
    (:func:`cvxnn.builders.build_program`) and re-solves it with the new ``lam`` (DPP; CVXPY gets
    ``warm_start=True``); the native solvers start from the previous solution. Grid points with
    ``lam >= lam_max_value`` get the exact zero solution (``solver == "lam_max"``) without a solve.

    Parameters
    ----------
    X, y, patterns, activation, loss
        The problem (``X``, ``y`` validated, ``loss`` a :class:`~cvxnn.losses.Loss`).
    lams : array-like
    solver : str
        Any name :func:`cvxnn.solve` accepts (``"native"`` / ``"auto"``, ``"clarabel"``, ...).
    tol : float
        Native solvers' relative gap tolerance.
    lam_max_value : float, optional
        Exact ``lam_max`` (no zero shortcut when None).
    callback : callable, optional
        See :func:`walk_path`.
    solver_opts : dict, optional
        Passed to :func:`cvxnn.solve`.
    formulation : {"nuclear", "one_vs_all"}, optional
        Vector output: the program's penalty on every backend. Default: ``"one_vs_all"`` for
        C-ReLU (exact for the returned network), ``"nuclear"`` for C-GReLU.

    Yields
    ------
    PathStep
    """
    adapter, name = resolve_solver("CLARABEL" if str(solver).lower() == "cvxpy" else solver)
    loss = get_loss(loss)
    _check_callback(callback)
    opts = _check_solver_opts(solver_opts)
    if "formulation" in opts:  # lam_max and the zero shortcut would be those of another program
        raise InvalidParameterError(
            f"pass formulation={opts['formulation']!r} as the path's own argument, not in solver_opts: the "
            "path's lam_max and its zero solutions depend on it.")
    program = None
    vector = np.ndim(y) == 2
    if formulation is None:
        formulation = get_activation(activation).vector_formulation
    if vector and adapter.backend != "cvxpy":
        opts.setdefault("formulation", formulation)
    if adapter.backend == "cvxpy":
        first = float(np.max(_check_grid(lams)))
        program = _builders.build_program(X, y, activation=activation, loss=loss, lam=first, patterns=patterns,
                                          formulation=formulation)
    lmax = float("inf") if lam_max_value is None else float(lam_max_value)
    _check_solver_loss(name, adapter.backend, loss, _check_grid(lams), lmax)

    def step(lam: float, warm: ConvexSolution | None) -> ConvexSolution:
        if lam >= lmax:
            return _zero_solution(X, y, patterns, activation, loss, lam, adapter.backend, formulation)
        if warm is not None and warm.solver == "lam_max":
            warm = None  # nothing to start from
        return solve(X, y, patterns, activation=activation, loss=loss, lam=lam, solver=name, tol=tol,
                     warm_start=warm, program=program, **opts)

    yield from walk_path(lams, step, callback=callback)


def regularization_path(
    X,
    y,
    patterns: Patterns,
    *,
    activation: str = "relu",
    loss: str | Loss = "squared",
    lams=None,
    n_lams: int = 20,
    lam_min_ratio: float = 1e-3,
    backend: str = "clarabel",
    tol: float = 1e-6,
    callback: Callable[[int, float, ConvexSolution], bool | None] | None = None,
    solver_opts: dict | None = None,
    formulation: str | None = None,
) -> RegularizationPath:
    """Solve the convex program on a decreasing ``lam`` grid, warm-started.

    Parameters
    ----------
    X, y : arrays
        Training data.
    patterns : Patterns
        Patterns built on ``X`` (shared by every ``lam``).
    activation : {"relu", "gated_relu"}
    loss : str or Loss
    lams : array-like, optional
        Grid to solve; sorted decreasing. Default: :func:`lam_grid` with ``n_lams`` values from
        the exact :func:`lam_max` down to ``lam_min_ratio * lam_max``, for every loss
        differentiable at the zero prediction for ``y`` (:meth:`~cvxnn.losses.Loss.grad_at_zero`:
        the smooth losses, hinge with labels ``+-1``, absolute without a target ``0``); for
        another one pass ``lams``.
    n_lams, lam_min_ratio
        Used when ``lams`` is None.
    backend : str
        ``"clarabel"`` (default), ``"native"`` (the native solvers, also ``"rfista"``,
        ``"working_set"``, ``"al"``), or any installed CVXPY solver name (``"scs"``, ...): any
        name :func:`cvxnn.solve` accepts.
    tol : float
        Relative duality-gap tolerance of the native solver (CVXPY solvers use their own options).
    callback : callable, optional
        ``callback(i, lam, solution)`` after each solve; returning True stops the path early.
    solver_opts : dict, optional
        Extra options for :func:`cvxnn.solve` (CVXPY solver options or ``solve_native`` keywords).
    formulation : {"nuclear", "one_vs_all"}, optional
        Vector output: the program's penalty (default ``"one_vs_all"`` for C-ReLU, exact for the
        returned network; ``"nuclear"`` for C-GReLU).

    Notes
    -----
    Grid points with ``lam >= lam_max`` are not sent to a solver: the zero model is the exact
    optimum there (``solution.solver == "lam_max"``, ``extra["certified_by"] == "lam_max"``,
    ``gap == 0``), for non-smooth losses too (the subdifferential argument of :func:`lam_max`).
    The other points need a solver that takes the loss: a CVXPY backend for the hinge and
    absolute losses (a native ``backend`` is refused before any solve).

    Raises
    ------
    InvalidParameterError
        No ``lams`` and a loss not differentiable at the zero prediction for ``y``, or a
        ``lam_max`` of 0; a native ``backend`` with a non-smooth loss.

    Returns
    -------
    RegularizationPath
    """
    t0 = time.perf_counter()
    X, y, loss_obj = _prepare(X, y, patterns, activation, loss)
    name, backend_name = _backend_solver(backend)
    _check_callback(callback)
    _check_solver_opts(solver_opts)
    if formulation is None:
        formulation = get_activation(activation).vector_formulation
    grid = None if lams is None else np.sort(_check_grid(lams))[::-1]
    try:
        loss_obj.grad_at_zero(y)
    except InvalidParameterError as exc:  # no gradient at zero: no lam_max, no zero shortcut
        if grid is None:
            raise InvalidParameterError(
                f"cannot build a default grid: it starts at lam_max, which needs a loss differentiable at the "
                f"zero model ({exc}); pass lams.") from None
        lmax = float("inf")
    else:
        lmax = lam_max(X, y, patterns, activation, loss_obj, formulation=formulation)
    if grid is None:
        if lam_max_is_zero(lmax, patterns.design(X), y, loss_obj):
            raise InvalidParameterError(
                "cannot build a default grid: lam_max is unavailable or 0 (here 0: the zero model is optimal at "
                "every lam); pass lams.")
        grid = lam_grid(lmax, n_lams, lam_min_ratio)
    _check_solver_loss(name, backend_name, loss_obj, grid, lmax)
    steps = list(solve_path(X, y, patterns, grid, activation=activation, loss=loss_obj, solver=name, tol=tol,
                            lam_max_value=lmax, callback=callback, solver_opts=solver_opts,
                            formulation=formulation))
    solutions = [st.solution for st in steps]
    solved = [s.solver for s in solutions if s.solver != "lam_max"]
    solver_name = solved[-1] if solved else (name.upper() if backend_name == "cvxpy" else name)
    total = time.perf_counter() - t0
    logger.debug("regularization_path: %d solves on %s in %.3fs", len(solutions), solver_name, total)
    return RegularizationPath(
        lams=grid[: len(solutions)],
        solutions=solutions,
        lam_max=lmax,
        activation=activation,
        backend=backend_name,
        solver=solver_name,
        total_time=total,
    )
