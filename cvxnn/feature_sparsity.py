"""Feature-sparse two-layer networks: ``lam_max``, one solve, and the path on which features enter
(docs/feature-sparsity.md).

The programs are those of docs/math.md, "The convex programs", with the group lasso replaced by
a penalty ``R`` of :mod:`cvxnn.feature_penalties` on the weight matrix ``Theta`` (``U``, or
``[V, W]`` for C-ReLU)::

    min  L( sum_i D_i X_a theta_i, y ) + lam * R(Theta)      (C-ReLU: s.t. Xt_i v_i >= 0, Xt_i w_i >= 0)

* :func:`feature_lam_max` -- the smallest ``lam`` with the zero model optimal. With
  ``r0 = -grad L(0, y)`` and the correlations ``C = [X_a^T D_i r0]_i`` (``d_a x p``): C-GReLU
  ``lam_max = R*(C)``; C-ReLU ``lam_max = min_{rho >= 0} R*([C + Xa^T (S * rho^v), -C + Xa^T (S * rho^w)])``
  (``S = 2M - 1``, so the columns are ``+-c_i + Xt_i^T rho_i``), one SOCP through Clarabel
  (:func:`cvxnn.native.feature_sparse.feature_relu_lam_max`, which also returns the multipliers
  ``rho``; the feature group norm couples all blocks, so the per-block NNLS of
  :func:`cvxnn.path.lam_max` does not apply). The value is ``R*`` at those multipliers, so the
  zero model is certified at ``lam = lam_max`` itself.
* :func:`solve_feature_sparse` -- one solve: natively (:mod:`cvxnn.native.feature_sparse`:
  R-FISTA with the penalty's prox for C-GReLU, an augmented Lagrangian on the cone constraints
  for C-ReLU, both certified by duality gaps) or through CVXPY on the program of
  :func:`cvxnn.builders.build_program` with ``penalty=``. Vector output (``y`` of shape
  ``n x c``) uses the ``d_a x (p c)`` weight matrix.
* :func:`feature_path` -- a warm-started path from ``lam_max`` down, walked by the library's path
  engine :func:`cvxnn.path.walk_path`, with the features active at each ``lam`` (a feature is
  active when its row of ``Theta`` is nonzero) and the order in which they enter.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from . import builders as _builders
from ._lam_max import _prepare
from ._validation import check_lam, check_lams, check_nonnegative_float, check_positive_int
from .activations import get_activation
from .backends.cvxpy_adapter import CVXPY_ITER_OPTION
from .backends.registry import _cvxpy_run_options
from .errors import InvalidParameterError
from .feature_penalties import GroupSparsePenalty
from .losses import Loss, get_loss
from .native.feature_sparse import feature_relu_lam_max, solve_feature_sparse_native
from .operators import adjoint
from .path import lam_grid, lam_max_is_zero, walk_path
from .patterns import Patterns, sample_patterns
from .program import ConvexProgram
from .solution import ConvexModel, ConvexSolution

__all__ = ["FeaturePath", "feature_lam_max", "feature_path", "feature_support", "solve_feature_sparse",
           "weight_matrix"]

logger = logging.getLogger(__name__)

_NATIVE = ("auto", "native", "rfista")


def _check_penalty(penalty) -> GroupSparsePenalty:
    if not isinstance(penalty, GroupSparsePenalty):
        raise InvalidParameterError(
            "penalty must be a cvxnn.feature_penalties penalty (FeatureGroupL2 or SparseGroupL2), "
            f"got {type(penalty).__name__}."
        )
    return penalty


def weight_matrix(model: ConvexModel) -> np.ndarray:
    """The program's weight matrix ``Theta``: ``U`` (C-GReLU) or ``[V, W]`` (C-ReLU), ``d_a x m``;
    for ``c`` outputs ``d_a x (p c)`` or ``d_a x (2 p c)`` (row ``j``: feature ``j`` in every block
    and output)."""
    if not isinstance(model, ConvexModel):
        raise InvalidParameterError(f"model must be a cvxnn ConvexModel, got {type(model).__name__}.")
    return np.hstack([B.reshape(B.shape[0], -1) for B in model.blocks.values()])


def feature_support(model: ConvexModel, tol: float = 1e-6, *, scale: float | None = None) -> np.ndarray:
    """Boolean mask of the input features a model uses: row ``j`` of ``Theta`` has 2-norm
    ``> tol * scale`` (``scale`` defaults to the largest row norm of this model). The bias row,
    when the patterns have one, is not a feature and is left out: the mask has ``d`` entries.
    An explicit ``scale`` must be finite and ``> 0`` (NaN or a negative one returned no feature)."""
    tol = check_nonnegative_float(tol, "tol")
    rows = np.linalg.norm(weight_matrix(model), axis=1)[: model.patterns.design_dim - int(model.patterns.bias)]
    top = rows.max(initial=0.0) if scale is None else check_nonnegative_float(scale, "scale", allow_zero=False)
    return rows > tol * top if top > 0 else np.zeros(rows.shape, dtype=bool)


def feature_lam_max(X, y, patterns: Patterns, penalty: GroupSparsePenalty, *, activation: str = "gated_relu",
                    loss: str | Loss = "squared") -> float:
    """The smallest ``lam`` at which the zero model is optimal (see the module docstring).

    Parameters
    ----------
    X, y : arrays
        Training data; targets of shape (n,) or (n, c).
    patterns : Patterns
    penalty : FeatureGroupL2 or SparseGroupL2
    activation : {"gated_relu", "relu"}
    loss : str or Loss
        A loss differentiable at the zero prediction for these targets
        (:meth:`~cvxnn.losses.Loss.grad_at_zero`): the smooth losses, hinge (labels ``+-1``),
        absolute without a target ``0``. Zero is optimal iff ``0`` is in the subdifferential of
        the objective at ``0``, and there the loss's gradient is its only subgradient.

    Returns
    -------
    float
        Zero is optimal for every ``lam >= lam_max`` and for no ``lam < lam_max``. For C-ReLU
        the value is ``R*`` at the multipliers of the ``lam_max`` program, i.e. what they
        certify (within Clarabel's accuracy, ~1e-8 relative, of the exact value), so the native
        solver certifies zero at ``lam = lam_max`` itself.

    Raises
    ------
    InvalidParameterError
        A loss not differentiable at the zero prediction (the absolute loss with a target ``0``).
    """
    return _feature_lam_max(X, y, patterns, penalty, activation, loss)[0]


def _feature_lam_max(X, y, patterns: Patterns, penalty: GroupSparsePenalty, activation: str,
                     loss: str | Loss, *, missing_ok: bool = False) -> tuple[float, np.ndarray | None]:
    """:func:`feature_lam_max` and, for C-ReLU, cone multipliers ``rho`` (``n x 2p[ x c]``) that
    certify the zero model at every ``lam >= lam_max`` (None for C-GReLU). With ``missing_ok``,
    a loss not differentiable at the zero prediction gives ``(inf, None)`` (no zero shortcut)."""
    penalty = _check_penalty(penalty)
    X, y, loss = _prepare(X, y, patterns, activation, loss)
    try:
        g0 = loss.grad_at_zero(y)
    except InvalidParameterError as exc:
        if missing_ok:
            return float("inf"), None
        raise InvalidParameterError(
            f"lam_max needs a loss differentiable at the zero model (its gradient there decides whether zero is "
            f"optimal): {exc} Pass a grid of lam values yourself (lams=[...]).") from None
    Xa = patterns.design(X)
    r0 = -g0
    C = adjoint(Xa, patterns.mask, r0)  # (d_a, p[, c]): c_i = X_a^T D_i r0
    gated = penalty.dual_norm_value(C)  # the dual norm of the correlations: the C-GReLU value
    if not get_activation(activation).constrained:
        return gated, None
    zero_rho = np.zeros((Xa.shape[0], 2 * patterns.n_patterns) + y.shape[1:])
    if gated == 0.0:
        # the cone multipliers can only lower it, so zero is exact (the SOCP would return its
        # solver's rounding, ~1e-10)
        return gated, zero_rho
    value, rho = feature_relu_lam_max(Xa, patterns.mask, C, penalty)
    if value > gated:  # rho = 0 certifies the C-GReLU value, an upper bound
        return gated, zero_rho
    return value, rho.reshape(zero_rho.shape)


def _lam_max_is_zero(X, y, patterns: Patterns, activation: str, loss, lmax: float) -> bool:
    """Whether ``lmax`` (of :func:`feature_lam_max`) is 0 up to the rounding of its correlations
    (:func:`cvxnn.path.lam_max_is_zero`): a grid down from it would solve programs at ``lam`` of
    ``1e-16`` (every input twice with opposite targets gave ``lam_max = 1.7e-15``)."""
    if not np.isfinite(lmax):
        return False
    Xp, yp, loss_obj = _prepare(X, y, patterns, activation, loss)
    return lam_max_is_zero(lmax, patterns.design(Xp), yp, loss_obj)


def _check_program(program, X, y, activation: str, loss, patterns: Patterns, penalty: GroupSparsePenalty) -> None:
    """``program`` is the one :func:`solve_feature_sparse` would build: same activation,
    patterns, penalty, loss and data (only ``lam`` may differ). A program of another penalty was
    solved and its result labelled with this one's (objective 7.73 against an optimum of 10.74)."""
    if program.activation != activation or program.patterns is not patterns:
        raise InvalidParameterError("program was built for another activation or other patterns.")
    built = getattr(program, "weight_penalty", None)
    if built is None or type(built) is not type(penalty) or built.alpha != penalty.alpha:
        raise InvalidParameterError(f"program was built with the penalty {built!r}, not {penalty!r}.")
    loss_obj = get_loss(loss)
    if program.loss is None or repr(program.loss) != repr(loss_obj):
        raise InvalidParameterError(f"program was built with the loss {program.loss!r}, not {loss_obj!r}.")
    try:
        Xc = np.asarray(X, dtype=float)
        yc = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        same = False
    else:
        same = (Xc.shape == program.X.shape and np.array_equal(Xc, program.X)
                and yc.size == np.size(program.y)
                and np.array_equal(loss_obj.check_targets(yc.reshape(np.shape(program.y))), program.y))
    if not same:
        raise InvalidParameterError("program was built on other data (X or y differ); build it on these data.")


def _zero_solution(patterns: Patterns, activation: str, loss: Loss, y: np.ndarray, lam: float,
                   penalty: GroupSparsePenalty, multipliers: np.ndarray | None = None) -> ConvexSolution:
    """The zero model at ``lam >= lam_max``; for C-ReLU with the multipliers of the ``lam_max``
    program, which certify it (:func:`cvxnn.duality_gap` with ``penalty=``, for smooth losses).
    ``gap = 0`` is exact for every loss differentiable at the zero prediction, non-smooth ones
    included (the subdifferential argument of :func:`feature_lam_max`; ``extra["certified_by"]``
    says so), though :func:`cvxnn.duality_gap` takes smooth losses only."""
    shape = (patterns.design_dim, patterns.n_patterns) + (() if y.ndim == 1 else (y.shape[1],))
    spec = get_activation(activation)
    return ConvexSolution(activation=activation, patterns=patterns, **spec.zero_blocks(shape), status="optimal",
                          formulation=None if y.ndim == 1 else "one_vs_all",
                          objective_value=loss.value(np.zeros_like(y), y), lam=float(lam), loss=loss,
                          backend="exact", solver="lam_max", solve_time=0.0, iterations=0, gap=0.0,
                          max_violation=0.0 if spec.constrained else None, program_penalty=0.0,
                          multipliers=multipliers, extra={"certified_by": "lam_max", "penalty": repr(penalty)})


def _native_solver(activation: str) -> str:
    """The native solver of an activation: the augmented Lagrangian for a cone-constrained
    program, R-FISTA for an unconstrained one."""
    return "al" if get_activation(activation).constrained else "rfista"


def _native_takes(loss) -> bool:
    """Whether the native solvers take ``loss`` (smooth, with a conjugate); None: the default."""
    if loss is None:
        return True
    obj = get_loss(loss)
    return bool(obj.smooth and obj.has_conjugate)


def _route(solver, activation: str, penalty: GroupSparsePenalty, loss=None) -> str:
    """``"native"`` or a CVXPY solver name. ``"auto"`` is native for C-GReLU and Clarabel for
    C-ReLU: the augmented Lagrangian was 20-24x faster than Clarabel with the feature group norm
    on the planted problem (d = 40) but 6x slower on diabetes (d = 10), and 4-6x slower with
    :class:`SparseGroupL2` (docs/feature-sparsity.md, "Measured"); ask for it with
    ``solver="native"``. With a loss the native solvers do not take (hinge, absolute), ``"auto"``
    is Clarabel."""
    if not isinstance(solver, str) or not solver:
        raise InvalidParameterError(f"solver must be 'auto', 'native' or a CVXPY solver name, got {solver!r}.")
    low = solver.lower()
    constrained = get_activation(activation).constrained
    if low == "auto" and (constrained or not _native_takes(loss)):
        return "CLARABEL"
    if low in _NATIVE or low == "al":
        if low in ("rfista", "al") and low != _native_solver(activation):
            raise InvalidParameterError(f"solver {solver!r} is for {'C-GReLU' if low == 'rfista' else 'C-ReLU'}; "
                                        "use solver='native' (or 'auto') to pick the native solver of the activation.")
        return "native"
    return "CLARABEL" if low == "cvxpy" else solver.upper()


def solve_feature_sparse(
    X,
    y,
    *,
    penalty: GroupSparsePenalty,
    lam: float,
    activation: str = "gated_relu",
    patterns: Patterns | None = None,
    n_gates: int = 100,
    bias: bool = False,
    seed=None,
    loss: str | Loss = "squared",
    solver: str = "auto",
    tol: float = 1e-6,
    max_iter: int | None = None,
    warm_start: ConvexModel | None = None,
    program: ConvexProgram | None = None,
    feas_tol: float | None = None,
    **solver_opts,
) -> ConvexSolution:
    """Solve C-GReLU or C-ReLU with a feature-sparse penalty.

    Parameters
    ----------
    X : array of shape (n, d)
    y : array of shape (n,) or (n, c)
        Targets; ``c`` outputs use the ``d_a x (p c)`` weight matrix (docs/feature-sparsity.md).
    penalty : FeatureGroupL2 or SparseGroupL2
    lam : float
        ``> 0`` for the native solver, ``>= 0`` for CVXPY.
    activation : {"gated_relu", "relu"}
    patterns : Patterns, optional
        Sampled with ``n_gates``, ``bias``, ``seed`` when omitted.
    n_gates, bias, seed
        The gates sampled when ``patterns`` is omitted (:func:`cvxnn.patterns.sample_patterns`).
    loss : str or Loss
        Native: a smooth loss (squared, logistic, Huber); CVXPY: any loss of the builders
        (``solver="auto"`` is Clarabel for the hinge and absolute losses).
    solver : str
        ``"native"``: the native solver of the activation (R-FISTA for C-GReLU, the augmented
        Lagrangian for C-ReLU, :mod:`cvxnn.native.feature_sparse`); ``"rfista"`` / ``"al"`` name
        them; ``"auto"``: native for C-GReLU, Clarabel for C-ReLU (which is faster depends on the
        problem, measured in docs/feature-sparsity.md); or any installed CVXPY solver name
        (``"CLARABEL"``, ``"SCS"``, ...).
    tol, max_iter, warm_start, feas_tol
        Native solver: relative gap tolerance, iteration limit (default 10 000 for C-GReLU,
        100 000 inner iterations for C-ReLU), start point, cone-violation tolerance (C-ReLU,
        default ``tol``). CVXPY solvers, as in :func:`cvxnn.solve`: ``max_iter`` becomes the
        solver's iteration limit (``"max_iterations"`` when reached), a ``warm_start`` turns on
        CVXPY's ``warm_start=True``, ``tol`` is not used (the solvers keep cvxnn's tight defaults;
        pass their own tolerances in ``solver_opts``), and ``feas_tol`` is refused.
    program : ConvexProgram, optional
        A program built by :func:`cvxnn.builders.build_program` with this ``penalty`` on these
        data and patterns (a path reuses one compiled program; only ``lam`` changes); CVXPY
        solvers only (``solver="auto"`` then means Clarabel; ``"native"`` refuses it). Without
        ``patterns`` the program's are used.
    **solver_opts
        Passed to :meth:`cvxnn.program.ConvexProgram.solve` (CVXPY solvers).

    Returns
    -------
    ConvexSolution
        ``objective_value`` is ``L + lam R(Theta)``; ``program_penalty`` is ``R(Theta)``
        (:meth:`~cvxnn.solution.ConvexModel.penalty` is still the group lasso of the blocks);
        :meth:`~cvxnn.solution.ConvexModel.to_network` gives the network (see
        :meth:`~cvxnn.feature_penalties.GroupSparsePenalty.network_penalty` for its penalty).
    """
    penalty = _check_penalty(penalty)
    if not isinstance(activation, str) or activation not in ("relu", "gated_relu"):
        raise InvalidParameterError(f"activation must be 'relu' or 'gated_relu', got {activation!r}.")
    if program is not None and not isinstance(program, ConvexProgram):
        raise InvalidParameterError(f"program must be a cvxnn ConvexProgram (build_program(..., penalty=...)) or "
                                    f"None, got {type(program).__name__}.")
    route = _route(solver, activation, penalty, loss)
    if route == "native" and program is not None and solver.lower() == "auto":
        route = "CLARABEL"  # the caller compiled a CVXPY program: "auto" solves it
    if route == "native" and program is not None:
        raise InvalidParameterError(
            "program= is a compiled CVXPY program, which the native solver does not use; pass it with a "
            "CVXPY solver (solver='clarabel', ...), or drop it.")
    if patterns is None:
        # a given program fixes the patterns (it was built on them); others would be refused
        patterns = program.patterns if program is not None else sample_patterns(X, n_gates, seed=seed, bias=bias)
    if route == "native":
        if solver_opts:
            raise InvalidParameterError(f"the native solver takes no options {sorted(solver_opts)}.")
        if max_iter is None:
            max_iter = 100_000 if get_activation(activation).constrained else 10_000
        return solve_feature_sparse_native(X, y, patterns, penalty=penalty, lam=lam, activation=activation,
                                           loss=loss, tol=tol, feas_tol=feas_tol, max_iter=max_iter,
                                           warm_start=warm_start)
    lam = check_lam(lam)
    if feas_tol is not None:
        raise InvalidParameterError(
            f"feas_tol is an option of the native solvers; {route} takes its own tolerances in solver_opts.")
    if program is None:
        program = _builders.build_program(X, y, activation=activation, loss=loss, lam=lam, patterns=patterns,
                                          penalty=penalty)
    else:
        _check_program(program, X, y, activation, loss, patterns, penalty)
    if max_iter is not None:
        max_iter = check_positive_int(max_iter, "max_iter")
        if route.upper() not in CVXPY_ITER_OPTION:
            raise InvalidParameterError(
                f"max_iter: cvxnn does not know the iteration option of {route}; pass it in solver_opts.")
    opts = _cvxpy_run_options(route.upper(), solver_opts, program, activation, max_iter=max_iter,
                             warm_start=warm_start)
    sol = program.solve(route, lam=lam, **opts)
    sol.program_penalty = penalty.value(weight_matrix(sol))
    sol.extra["penalty"] = repr(penalty)
    return sol


@dataclass(eq=False)
class FeaturePath:
    """Solutions along a decreasing ``lam`` grid and the features active at each ``lam``.

    Attributes
    ----------
    lams : ndarray
        Decreasing grid.
    solutions : list of ConvexSolution
    lam_max : float
    supports : ndarray of bool, shape (n_lams, d)
        Feature ``j`` active at ``lams[k]``: row ``j`` of ``Theta`` has norm ``> support_tol``
        times the largest row norm on the whole path.
    row_norms : ndarray, shape (n_lams, d)
        Row 2-norms of ``Theta`` (features only, no bias row).
    activation, solver : str
    penalty : GroupSparsePenalty
    total_time : float
        Seconds for the whole path (``lam_max`` included).
    """

    lams: np.ndarray
    solutions: list[ConvexSolution] = field(repr=False)
    lam_max: float
    supports: np.ndarray
    row_norms: np.ndarray = field(repr=False)
    activation: str
    solver: str
    penalty: GroupSparsePenalty
    total_time: float

    def __len__(self) -> int:
        return len(self.solutions)

    @property
    def objectives(self) -> np.ndarray:
        """Objective ``L + lam R`` at each ``lam``."""
        return np.array([s.objective_value for s in self.solutions])

    @property
    def n_features(self) -> np.ndarray:
        """Number of active features at each ``lam``."""
        return self.supports.sum(axis=1)

    def entry_lams(self) -> np.ndarray:
        """For each feature the largest ``lam`` of the grid at which it is active (NaN: never)."""
        first = np.argmax(self.supports, axis=0)
        return np.where(self.supports.any(axis=0), self.lams[first], np.nan)

    def entry_order(self) -> np.ndarray:
        """Features that enter on the path, earliest (largest ``lam``) first; ties by index."""
        lams = self.entry_lams()
        entered = np.flatnonzero(~np.isnan(lams))
        return entered[np.argsort(-lams[entered], kind="stable")]


def feature_path(
    X,
    y,
    *,
    penalty: GroupSparsePenalty,
    patterns: Patterns,
    activation: str = "gated_relu",
    loss: str | Loss = "squared",
    lams=None,
    n_lams: int = 20,
    lam_min_ratio: float = 1e-2,
    solver: str = "auto",
    tol: float = 1e-6,
    max_iter: int | None = None,
    support_tol: float = 1e-6,
    **solver_opts,
) -> FeaturePath:
    """A warm-started path from ``lam_max`` down, and the features active at each ``lam``.

    Walks the grid with :func:`cvxnn.path.walk_path`: grid points ``>= lam_max`` (``lam_max``
    itself included) get the exact zero model without a solve (``solver == "lam_max"``; for C-ReLU
    it carries the multipliers of the ``lam_max`` program, which certify it through
    :func:`cvxnn.duality_gap`), the first grid point below ``lam_max`` starts cold, later ones
    start the native solver from the previous solution (and its step, and for C-ReLU its
    multipliers), and a CVXPY solver reuses one compiled program and changes only ``lam``.
    The default grid and the zero model above ``lam_max`` work for every loss differentiable at
    the zero prediction (hinge with labels ``+-1``, absolute without a target ``0`` too; their
    other points are solved by a CVXPY solver, Clarabel for ``solver="auto"``); for another loss
    pass ``lams`` (no point then gets the zero model without a solve).

    Parameters
    ----------
    X, y, patterns, activation, loss, penalty
        The problem (see :func:`solve_feature_sparse`).
    lams : array-like, optional
        The grid; default ``lam_grid(lam_max, n_lams, lam_min_ratio)`` (geometric, from ``lam_max``).
    n_lams, lam_min_ratio
        Size and smallest ratio of the default grid.
    solver, tol, max_iter, **solver_opts
        As in :func:`solve_feature_sparse`.
    support_tol : float
        Relative threshold of :attr:`FeaturePath.supports`.

    Returns
    -------
    FeaturePath
    """
    penalty = _check_penalty(penalty)
    support_tol = check_nonnegative_float(support_tol, "support_tol")
    lams = None if lams is None else check_lams(lams)
    t0 = time.perf_counter()
    route = _route(solver, activation, penalty, loss)
    lmax, rho_max = _feature_lam_max(X, y, patterns, penalty, activation, loss, missing_ok=lams is not None)
    if lams is None and _lam_max_is_zero(X, y, patterns, activation, loss, lmax):
        raise InvalidParameterError(
            f"cannot build a default grid: lam_max is 0 up to rounding ({lmax:.3g}; the zero model is optimal "
            "for every lam, e.g. y = 0 or a gradient orthogonal to the data); pass lams.")
    grid = lam_grid(lmax, n_lams, lam_min_ratio) if lams is None else lams
    loss_obj = get_loss(loss)
    if route == "native" and not _native_takes(loss_obj) and np.any(np.asarray(grid) < lmax):
        # refused before any solve (the points >= lam_max are the exact zero model, no solver)
        raise InvalidParameterError(
            f"the {loss_obj.name} loss is not smooth: the native solver does not take it; use solver='auto' or a "
            "CVXPY solver ('clarabel', 'scs').")
    y_checked = loss_obj.check_targets(np.asarray(y, dtype=float))
    program = None
    if route != "native":
        first = float(np.max(np.asarray(grid, dtype=float)))
        program = _builders.build_program(X, y, activation=activation, loss=loss_obj, lam=first,
                                          patterns=patterns, penalty=penalty)

    def step(lam: float, warm: ConvexSolution | None) -> ConvexSolution:
        if lam >= lmax:
            return _zero_solution(patterns, activation, loss_obj, y_checked, lam, penalty, rho_max)
        if warm is not None and warm.solver == "lam_max":
            # a cold start below lam_max: starting the C-ReLU augmented Lagrangian from the
            # multipliers of the lam_max program was slower as often as faster (0.6 lam_max)
            warm = None
        return solve_feature_sparse(X, y, penalty=penalty, lam=lam, activation=activation, patterns=patterns,
                                    loss=loss_obj, solver=solver, tol=tol, max_iter=max_iter,
                                    warm_start=warm if route == "native" else None, program=program,
                                    **solver_opts)

    steps = list(walk_path(grid, step))
    sols = [s.solution for s in steps]
    d = patterns.design_dim - int(patterns.bias)
    rows = np.array([np.linalg.norm(weight_matrix(s), axis=1)[:d] for s in sols])
    top = rows.max(initial=0.0)
    supports = rows > support_tol * top if top > 0 else np.zeros(rows.shape, dtype=bool)
    logger.debug("feature path: %d lams, lam_max %.4g, features at the end %d", len(sols), lmax,
                 int(supports[-1].sum()))
    return FeaturePath(lams=np.array([s.lam for s in steps]), solutions=sols, lam_max=lmax, supports=supports,
                       row_norms=rows, activation=activation,
                       solver=_native_solver(activation) if route == "native" else route,
                       penalty=penalty,
                       total_time=time.perf_counter() - t0)
