"""``cvxnn.solve``: one entry point, a registry of solver adapters.

Every solve in cvxnn (estimators, paths, CLI) ends here::

    solution = cvxnn.solve(X, y, patterns, activation="relu", loss="logistic", lam=1.0,
                           solver="auto")

The ``solver`` name selects an adapter:

* ``"auto"``, ``"native"``, ``"rfista"``, ``"working_set"``, ``"al"``: the native solvers
  (:class:`~cvxnn.backends.native_adapter.NativeAdapter`);
* any installed CVXPY solver (``"clarabel"``, ``"scs"``, ...; case-insensitive): the CVXPY
  adapter (:class:`CvxpyAdapter`), which builds the program with
  :func:`cvxnn.builders.build_program` (or reuses ``program=``) and solves it through
  :func:`cvxnn.backends.cvxpy_adapter.solve_program`, with one status map.

Other adapters can be added with :func:`register_adapter`. An unknown name raises
:class:`~cvxnn.errors.InvalidParameterError` listing the choices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import cvxpy as cp
import numpy as np

from .._validation import check_positive_int, check_solver_options, check_X, check_y
from ..activations import get_activation
from ..errors import InvalidParameterError
from ..losses import Loss, _same_loss, get_loss
from ..patterns import Patterns
from ..solution import ConvexModel, ConvexSolution
from . import cvxpy_adapter
from .native_adapter import NATIVE_SOLVERS, NativeAdapter

__all__ = [
    "AUTO_CVXPY_MAX_BYTES",
    "Adapter",
    "CVXPY_ITER_OPTION",
    "CvxpyAdapter",
    "SolveRequest",
    "register_adapter",
    "resolve_solver",
    "solve",
    "solver_names",
]

logger = logging.getLogger(__name__)

#: Iteration-limit option name of common CVXPY solvers (``max_iter`` is passed through).
CVXPY_ITER_OPTION = cvxpy_adapter.CVXPY_ITER_OPTION


@dataclass(eq=False)
class SolveRequest:
    """One solve, as an adapter receives it (validated names, the rest as given)."""

    X: Any
    y: Any
    patterns: Patterns | None
    activation: str
    loss: Loss
    lam: float
    solver: str
    tol: float
    max_iter: int | None
    warm_start: ConvexModel | None
    callback: Callable | None
    verbose: bool | int
    program: Any = None
    options: dict[str, Any] = field(default_factory=dict)


class Adapter(Protocol):
    """What a solver backend provides: a ``backend`` label and ``solve(request)``."""

    backend: str

    def solve(self, request: SolveRequest) -> ConvexSolution:  # pragma: no cover - protocol
        ...


class CvxpyAdapter:
    """Every installed CVXPY solver: build (or reuse) the program and solve it."""

    backend = "cvxpy"

    def solve(self, request: SolveRequest) -> ConvexSolution:
        """Solve ``request`` with the CVXPY solver it names.

        ``tol`` and ``callback`` are ignored (CVXPY solvers keep cvxnn's tight defaults and take
        their own options); ``max_iter`` becomes the solver's iteration limit; a ``warm_start``
        point turns on CVXPY's ``warm_start=True`` (the solver's last point, used by SCS).
        """
        from ..builders import build_program

        name = request.solver.upper()
        program = request.program
        opts = dict(request.options)
        build_only = sorted(_BUILD_OPTIONS & opts.keys())
        if build_only:
            # CVXPY would hand them to the solver as settings ("unrecognized solver setting 'penalty'")
            raise InvalidParameterError(
                f"cvxnn.solve does not take {build_only}: they choose the program, not the solver. Build "
                "it with cvxnn.build_program(X, y, ..., " + ", ".join(f"{k}=..." for k in build_only)
                + ") and call its solve()"
                + (" (feature penalties also: cvxnn.solve_feature_sparse)." if "penalty" in build_only else "."))
        # vector output: the same program as the native solvers ("auto": one-vs-all for C-ReLU,
        # nuclear norms for C-GReLU), so that switching the solver does not switch the program
        formulation = opts.pop("formulation", "auto")
        if formulation == "auto":
            formulation = get_activation(request.activation).vector_formulation
        if program is None:
            if request.patterns is None:
                raise InvalidParameterError("solve needs patterns (or program=) for a CVXPY solver.")
            program = build_program(request.X, request.y, activation=request.activation, loss=request.loss,
                                    lam=request.lam, patterns=request.patterns, formulation=formulation)
        else:
            if "formulation" in request.options and np.ndim(request.y) == 2 and (
                    getattr(program, "formulation", formulation) != formulation):
                raise InvalidParameterError(
                    f"formulation={formulation!r} differs from program='s {program.formulation!r}.")
            if program.form != "regularized" or program.activation != request.activation:
                raise InvalidParameterError(
                    f"program= is a {program.form} {program.activation} program; this solve asks for "
                    f"a regularized {request.activation} one.")
            if request.patterns is not None and request.patterns is not program.patterns:
                raise InvalidParameterError("program= was built on other patterns than the ones given.")
            _check_program_data(program, request)
            program.set_lam(request.lam)
        opts.setdefault("verbose", bool(request.verbose))
        opts = _cvxpy_run_options(name, opts, program, request.activation, max_iter=request.max_iter,
                                 warm_start=request.warm_start)
        from ..native.certificates import attach_certificate

        return attach_certificate(program, cvxpy_adapter.solve_program(program, name, **opts), stacklevel=4)


#: Options of :func:`cvxnn.builders.build_program` that choose the program; passed to
#: :func:`solve` with a CVXPY solver they are refused by name (they are no solver settings).
_BUILD_OPTIONS = frozenset({"penalty", "form"})


def _cvxpy_run_options(name: str, opts: dict, program, activation: str, *, max_iter: int | None,
                      warm_start) -> dict:
    """``opts`` for a CVXPY solve of ``program`` with cvxnn's run options: ``max_iter`` becomes
    the solver's iteration option (:data:`CVXPY_ITER_OPTION`; solvers not listed there take
    theirs in ``opts``), and a ``warm_start`` model, checked as the native solvers check it (a
    string or a model of other patterns was accepted and ignored), turns on CVXPY's
    ``warm_start=True`` (the solver's last point: SCS uses it, interior points ignore it)."""
    opts = dict(opts)
    if warm_start is not None:
        from ..native.solve import _check_warm

        _check_warm(warm_start, program.patterns, get_activation(activation),
                    1 if np.ndim(program.y) == 1 else int(np.shape(program.y)[1]))
        opts.setdefault("warm_start", True)
    if max_iter is not None and name in CVXPY_ITER_OPTION:
        opts.setdefault(CVXPY_ITER_OPTION[name], int(max_iter))
    return opts


def _check_program_data(program, request: SolveRequest) -> None:
    """``program=`` is solved on its own data and loss: refuse a request for other ones (it
    would silently return the program's solution, not the one asked for).

    Raises
    ------
    InvalidParameterError
        When ``X``, ``y`` or the loss differ from the program's.
    """
    X = check_X(request.X)
    if X.shape != program.X.shape or not np.array_equal(X, program.X):
        raise InvalidParameterError(
            f"program= was built on other data: {_difference(X, program.X, 'X')}; build a program on "
            "this X, or pass program=None.")
    if program.loss is not None and not _same_loss(request.loss, program.loss):
        raise InvalidParameterError(
            f"program= was built with the {program.loss.name} loss ({program.loss!r}); this solve asks for "
            f"{request.loss!r}. Omit loss= to use the program's, or build a program with this loss.")
    y = check_y(request.y, X.shape[0])
    if program.loss is not None:
        y = program.loss.check_targets(y)
    if y.shape != program.y.shape or not np.array_equal(y, program.y):
        raise InvalidParameterError(
            f"program= was built on other targets: {_difference(y, program.y, 'y')}; build a program "
            "on this y, or pass program=None.")


def _difference(given: np.ndarray, built: np.ndarray, name: str) -> str:
    if given.shape != built.shape:
        return f"{name} has shape {given.shape}, the program's {built.shape}"
    return f"{name} differs from the program's in {int(np.count_nonzero(given != built))} entries"



#: ``solver="auto"`` solves the nuclear-norm C-ReLU program (``activation="relu"``, vector output,
#: ``formulation="nuclear"``) with Clarabel when its estimated CVXPY memory
#: (:func:`~cvxnn.backends.cvxpy_adapter.check_memory`: compiled nonzeros plus the dense blocks of
#: the semidefinite cones) is at most this many bytes and within the memory budget; the native
#: solvers have only the augmented Lagrangian for this program, without a Newton finish, and it
#: rarely certifies (standardized iris, 150 rows, 16 gates, ``lam = 0.01 n``: "max_iterations"
#: after 10000 iterations in 10.7 s, outside the cones by 1.6e-4, where Clarabel certifies
#: ``2.1e-7`` in 2.8 s; wine, 178 rows: 12.7 s uncertified against 6.1 s certified, an estimate
#: of 279 MiB). Larger programs, and calls with a ``callback`` or native-only options, stay native.
AUTO_CVXPY_MAX_BYTES = 2**30


def _auto_cvxpy(request: SolveRequest) -> bool:
    """Whether ``solver="auto"`` hands ``request`` to Clarabel (see :data:`AUTO_CVXPY_MAX_BYTES`)."""
    opts = request.options
    if (request.solver != "auto" or request.activation != "relu" or request.program is not None
            or request.callback is not None or request.patterns is None or opts.get("formulation") != "nuclear"
            or not set(opts) <= {"formulation", "memory_budget"} or not isinstance(request.patterns, Patterns)):
        return False
    if np.ndim(request.y) != 2 or np.shape(request.y)[1] < 2:
        return False
    pats = request.patterns
    nonzeros = cvxpy_adapter.estimate_nonzeros(
        n=pats.n_samples, d_a=pats.design_dim, p=pats.n_patterns, c=int(np.shape(request.y)[1]),
        activation="relu", nuclear=True, mask_ones=int(np.count_nonzero(pats.mask)))
    solver_bytes = cvxpy_adapter.psd_solver_bytes(
        n_cones=len(get_activation("relu").blocks) * pats.n_patterns,
        size=pats.design_dim + int(np.shape(request.y)[1]), solver="CLARABEL")
    need = cvxpy_adapter.BYTES_PER_NONZERO * nonzeros + solver_bytes
    budget = opts.get("memory_budget")
    try:
        budget = AUTO_CVXPY_MAX_BYTES if budget is None else min(AUTO_CVXPY_MAX_BYTES, int(budget))
    except (TypeError, ValueError):
        return False  # the native solver names the bad value
    return need <= budget


_NATIVE = NativeAdapter()
_CVXPY = CvxpyAdapter()
_REGISTRY: dict[str, Adapter] = {name: _NATIVE for name in NATIVE_SOLVERS}


def register_adapter(name: str, adapter: Adapter) -> None:
    """Make ``solve(..., solver=name)`` use ``adapter`` (names are case-insensitive).

    Raises
    ------
    InvalidParameterError
        For a non-string name, a name already served by the native or CVXPY adapters, or an
        object without ``solve``.
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"an adapter name must be a non-empty string, got {name!r}.")
    key = name.lower()
    if key in NATIVE_SOLVERS or key.upper() in cp.installed_solvers():
        raise InvalidParameterError(f"the solver name {name!r} is taken by a built-in adapter.")
    if not callable(getattr(adapter, "solve", None)):
        raise InvalidParameterError(f"an adapter needs a solve(request) method; got {type(adapter).__name__}.")
    _REGISTRY[key] = adapter


def solver_names() -> tuple[str, ...]:
    """Every name :func:`solve` accepts: native names, registered adapters, installed CVXPY solvers."""
    cvx = tuple(s.lower() for s in cp.installed_solvers())
    return tuple(_REGISTRY) + tuple(s for s in cvx if s not in _REGISTRY)


def resolve_solver(solver: str) -> tuple[Adapter, str]:
    """The adapter serving ``solver`` and the name it knows it by.

    Raises
    ------
    InvalidParameterError
        For a non-string or unknown name (the message lists :func:`solver_names`).
    """
    if not isinstance(solver, str) or not solver:
        raise InvalidParameterError(f"solver must be a name such as 'auto' or 'clarabel', got {solver!r}.")
    key = solver.lower()
    if key in _REGISTRY:
        return _REGISTRY[key], key
    if solver.upper() in cp.installed_solvers():
        return _CVXPY, solver.upper()
    raise InvalidParameterError(f"unknown solver {solver!r}; choose one of {list(solver_names())}.")


def solve(
    X,
    y,
    patterns: Patterns | None = None,
    *,
    activation: str = "relu",
    loss: str | Loss | None = None,
    lam: float = 1.0,
    solver: str = "auto",
    tol: float = 1e-6,
    max_iter: int | None = None,
    warm_start: ConvexModel | None = None,
    callback: Callable[[dict], Any] | None = None,
    verbose: bool | int = False,
    program=None,
    **solver_opts,
) -> ConvexSolution:
    """Solve the convex program of a two-layer network with any registered solver.

    Parameters
    ----------
    X : array of shape (n, d)
        Training data.
    y : array of shape (n,) or (n, c)
        Targets as the loss expects them (``{-1, +1}`` labels for logistic, one-hot rows for
        cross-entropy).
    patterns : Patterns
        Activation patterns built on ``X`` (optional for CVXPY solvers when ``program`` is given).
    activation : {"relu", "gated_relu"}
    loss : str or Loss, optional
        The loss (default ``"squared"``; with ``program=``, the program's loss, and any other
        raises).
    lam : float
        Regularisation strength.
    solver : str
        ``"auto"`` (default; the native solvers, except for the nuclear-norm C-ReLU program,
        which goes to Clarabel while its estimated memory is at most :data:`AUTO_CVXPY_MAX_BYTES`),
        ``"native"``, ``"rfista"``, ``"working_set"``, ``"al"``, or an installed CVXPY solver
        (``"clarabel"``, ``"scs"``, ...); see :func:`solver_names`.
    tol : float
        Relative duality-gap tolerance of the native solvers, in ``(0, 1)`` (CVXPY solvers keep
        their defaults; the value is validated for every solver).
    max_iter : int, optional
        Iteration limit (native; the iteration option of Clarabel, SCS, ECOS, OSQP, PIQP).
    warm_start : ConvexModel, optional
        Initial point (native solvers; CVXPY's interior-point solvers cannot use one).
    callback : callable, optional
        Progress callback of the native solvers (see :func:`cvxnn.native.solve_native`); CVXPY
        solvers do not call it (it must still be callable or None).
    verbose : bool or int
    program : ConvexProgram, optional
        A program already built on ``X``, ``y`` and these patterns (CVXPY solvers): only ``lam``
        changes, the compiled problem is reused (DPP). ``X``, ``y`` and ``loss`` must be the
        program's.
    **solver_opts
        Passed to the backend (``solve_native`` keywords, or CVXPY solver options).

    Returns
    -------
    ConvexSolution

    Raises
    ------
    InvalidParameterError
        For an unknown solver (listing the choices), a CVXPY solver that cannot take the
        program's cones (SCIPY, HIGHS, OSQP), an option the backend rejects, ``tol`` outside
        ``(0, 1)``, a ``callback`` that is not callable, a ``program`` that is not a
        :class:`~cvxnn.program.ConvexProgram`, or one built on other data, targets, loss or
        patterns than the ones given.
    SolverError, InfeasibleError, UnboundedError, MemoryBudgetError
        As raised by the backend.
    """
    adapter, name = resolve_solver(solver)
    if not isinstance(activation, str) or activation not in ("relu", "gated_relu"):
        raise InvalidParameterError(f"activation must be 'relu' or 'gated_relu', got {activation!r}.")
    if program is not None:
        from ..program import ConvexProgram

        if not isinstance(program, ConvexProgram):  # an int or a cvxpy.Problem raised AttributeError
            raise InvalidParameterError(
                f"program must be a cvxnn ConvexProgram (cvxnn.build_program(...)) or None, got "
                f"{type(program).__module__}.{type(program).__qualname__}.")
    # checked for every adapter, as the native solvers check them, although CVXPY solvers ignore
    # them (tol=-1, tol=nan, callback=3 were accepted there silently)
    check_solver_options(tol=tol, callback=callback)
    if loss is None:
        loss = program.loss if program is not None and getattr(program, "loss", None) is not None else "squared"
    if max_iter is not None:  # one check for every adapter (CVXPY solvers truncated 2.5, took 0)
        max_iter = check_positive_int(max_iter, "max_iter")
    if verbose is not None and not isinstance(verbose, (bool, np.bool_, int, np.integer)):
        raise InvalidParameterError(f"verbose must be a bool (or an int level), got {type(verbose).__name__} "
                                    f"{verbose!r:.40}.")  # "no" was truthy
    loss = get_loss(loss)
    if np.ndim(y) == 2 and np.shape(y)[1] > 1 and not loss.supports_vector:
        # every adapter alike (the native solvers' label check raised LabelError)
        raise InvalidParameterError(
            f"the {loss.name} loss supports scalar targets only, got y of shape {np.shape(y)}; use "
            "cross_entropy (one-hot) or squared loss for vector outputs, or fit one output at a time.")
    request = SolveRequest(
        X=X, y=y, patterns=patterns, activation=activation, loss=loss, lam=lam, solver=name,
        tol=tol, max_iter=max_iter, warm_start=warm_start, callback=callback, verbose=verbose,
        program=program, options=solver_opts,
    )
    if _auto_cvxpy(request):
        logger.info("solve: solver='auto' solves the nuclear-norm C-ReLU program with Clarabel (the native "
                    "augmented Lagrangian has no Newton finish for it)")
        request.solver, adapter = "CLARABEL", _CVXPY
    logger.debug("solve: %s %s with %s (%s adapter)", activation, request.loss.name, request.solver,
                 getattr(adapter, "backend", type(adapter).__name__))
    return adapter.solve(request)
