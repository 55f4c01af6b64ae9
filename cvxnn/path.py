"""``lam_max`` and warm-started regularisation paths (MATH.md, "lam_max", "Regularisation path").

``lam_max`` is the smallest ``lam`` for which the zero model is optimal. With
``r0 = -grad L(0, y)`` (``= y`` for the summed squared loss) and ``c_i = X^T D_i r0``:

* C-GReLU: ``lam_max = max_i ||c_i||`` (vector output: ``max_i ||X^T D_i R0||_2``, the spectral
  norm, dual of the nuclear norm);
* C-ReLU: ``lam_max = max_i max_{s = +-1} min_{rho >= 0} || s c_i + Xt_i^T rho ||``, one NNLS
  per block and sign (skipped when ``rho = 0`` is already optimal, ``Xt_i (s c_i) >= 0``,
  which is checked for all blocks at once).

:func:`regularization_path` solves on a decreasing grid below ``lam_max``. On a CVXPY backend
the program is compiled once and only ``program.lam.value`` changes (the problem is DPP);
``warm_start=True`` is passed to the solver (SCS uses it, interior-point solvers ignore it).
On the native backend each solve is warm-started from the previous solution.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import nnls

from ._validation import check_lam, check_positive_int, check_X, check_y
from .errors import InvalidParameterError
from .losses import Loss, get_loss
from .operators import adjoint
from .patterns import Patterns
from .solution import ConvexSolution

__all__ = ["lam_max", "regularization_path", "RegularizationPath", "lam_grid"]

logger = logging.getLogger(__name__)


def _prepare(X, y, patterns, activation, loss):
    if not isinstance(activation, str) or activation not in ("relu", "gated_relu"):
        raise InvalidParameterError(f"activation must be 'relu' or 'gated_relu', got {activation!r}.")
    if not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    X = check_X(X)
    y = check_y(y, X.shape[0])
    patterns.check_data(X)
    loss = get_loss(loss)
    y = loss.check_targets(y)
    return X, y, loss


def lam_max(X, y, patterns: Patterns, activation: str = "relu", loss: "str | Loss" = "squared") -> float:
    """The smallest ``lam`` at which the zero model is optimal (see the module docstring).

    Parameters
    ----------
    X, y : arrays
        Training data (``y`` 2-D for vector output, C-GReLU only).
    patterns : Patterns
        Patterns built on ``X``.
    activation : {"relu", "gated_relu"}
    loss : str or Loss
        A differentiable loss (squared, logistic, huber, cross_entropy).

    Returns
    -------
    float
        For every ``lam >= lam_max`` the zero model is optimal, for every ``lam < lam_max`` it is not.
    """
    if not get_loss(loss).smooth:
        raise InvalidParameterError(f"lam_max needs a differentiable loss; {get_loss(loss).name!r} is not.")
    X, y, loss = _prepare(X, y, patterns, activation, loss)
    Xa = patterns.design(X)
    mask = patterns.mask
    r0 = -loss.grad(np.zeros_like(y), y)
    C = adjoint(Xa, mask, r0)
    if y.ndim == 2:
        if activation != "gated_relu":
            raise InvalidParameterError(
                "lam_max for vector-output C-ReLU is not implemented (its exact program is copositive); "
                "use the gated value as a lower bound."
            )
        return float(np.linalg.norm(np.transpose(C, (1, 0, 2)), ord=2, axis=(1, 2)).max(initial=0.0))
    norms = np.linalg.norm(C, axis=0)
    if activation == "gated_relu":
        return float(norms.max(initial=0.0))
    S = patterns.signs()
    G = S * (Xa @ C)  # Xt_i c_i for every pattern
    best = 0.0
    n_nnls = 0
    for s in (1.0, -1.0):
        trivially = (s * G).min(axis=0, initial=0.0) >= -1e-14 * (1.0 + np.abs(G).max(initial=0.0))
        vals = np.where(trivially, norms, 0.0)
        # a block can only raise the maximum if ||c_i|| (an upper bound) exceeds the current best
        cur = vals.max(initial=0.0)
        for i in np.flatnonzero(~trivially & (norms > max(best, cur))):
            A = (S[:, i, None] * Xa).T
            _, res = nnls(A, -s * C[:, i], maxiter=50 * (Xa.shape[0] + 1))
            vals[i] = res
            n_nnls += 1
        best = max(best, float(vals.max(initial=0.0)))
    logger.debug("lam_max (relu): %d NNLS solves for %d patterns", n_nnls, patterns.n_patterns)
    return best


def lam_grid(lam_max_value: float, n_lams: int = 20, lam_min_ratio: float = 1e-3) -> np.ndarray:
    """Geometric grid ``lam_max * logspace(0, log10(lam_min_ratio), n_lams)`` (decreasing)."""
    n_lams = check_positive_int(n_lams, "n_lams")
    if not (0 < lam_min_ratio <= 1):
        raise InvalidParameterError(f"lam_min_ratio must be in (0, 1], got {lam_min_ratio}.")
    check_lam(lam_max_value, name="lam_max", allow_zero=False)
    return lam_max_value * np.logspace(0.0, np.log10(lam_min_ratio), n_lams)


@dataclass(eq=False)
class RegularizationPath:
    """Solutions along a decreasing ``lam`` grid.

    Attributes
    ----------
    lams : ndarray
        The grid actually solved (decreasing).
    solutions : list of ConvexSolution
    lam_max : float
        Exact ``lam_max`` of the problem (``inf`` where it is not available: non-smooth loss,
        vector-output C-ReLU).
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


def _zero_solution(X, y, patterns, activation, loss, lam, backend) -> ConvexSolution:
    """The exact optimum ``0`` for ``lam >= lam_max`` (certified by :func:`lam_max`, no solve)."""
    shape = (patterns.design_dim, patterns.n_patterns) + (() if y.ndim == 1 else (y.shape[1],))
    blocks = {"U": np.zeros(shape)} if activation == "gated_relu" else {"V": np.zeros(shape), "W": np.zeros(shape)}
    return ConvexSolution(
        activation=activation, patterns=patterns, **blocks, status="optimal",
        objective_value=loss.value(np.zeros_like(y), y), lam=float(lam), loss=loss, backend=backend,
        solver="lam_max", solve_time=0.0, iterations=0, gap=0.0,
        max_violation=None if activation == "gated_relu" else 0.0,
        extra={"certified_by": "lam_max"},
    )


def _native_solver():
    try:
        from .native import solve_native  # noqa: PLC0415 - optional backend
    except ImportError as exc:  # pragma: no cover - depends on the installed package
        raise InvalidParameterError(
            "backend='native' needs cvxnn.native, which is not available in this installation; "
            "use backend='clarabel' or another CVXPY solver."
        ) from exc
    return solve_native


def regularization_path(
    X,
    y,
    patterns: Patterns,
    *,
    activation: str = "relu",
    loss: "str | Loss" = "squared",
    lams=None,
    n_lams: int = 20,
    lam_min_ratio: float = 1e-3,
    backend: str = "clarabel",
    tol: float = 1e-6,
    callback: Callable[[int, float, ConvexSolution], bool | None] | None = None,
    solver_opts: dict | None = None,
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
        the exact :func:`lam_max` down to ``lam_min_ratio * lam_max``.
    n_lams, lam_min_ratio
        Used when ``lams`` is None.
    backend : str
        ``"clarabel"`` (default), ``"native"`` (:func:`cvxnn.native.solve_native`), or any
        installed CVXPY solver name (``"scs"``, ...).
    tol : float
        Relative duality-gap tolerance of the native solver (CVXPY solvers use their own options).
    callback : callable, optional
        ``callback(i, lam, solution)`` after each solve; returning True stops the path early.

    Notes
    -----
    Grid points with ``lam >= lam_max`` are not sent to a solver: the zero model is the exact
    optimum there (``solution.solver == "lam_max"``, ``extra["certified_by"] == "lam_max"``).
    solver_opts : dict, optional
        Extra options for :meth:`~cvxnn.builders.ConvexProgram.solve` or ``solve_native``.

    Returns
    -------
    RegularizationPath
    """
    t0 = time.perf_counter()
    X, y, loss_obj = _prepare(X, y, patterns, activation, loss)
    exact_lmax = loss_obj.smooth and (y.ndim == 1 or activation == "gated_relu")
    lmax = lam_max(X, y, patterns, activation, loss_obj) if exact_lmax else float("inf")
    if lams is None:
        if not np.isfinite(lmax) or lmax <= 0:
            raise InvalidParameterError("cannot build a default grid (lam_max is unavailable or 0); pass lams.")
        grid = lam_grid(lmax, n_lams, lam_min_ratio)
    else:
        grid = np.array([check_lam(v) for v in np.atleast_1d(np.asarray(lams, dtype=float))])
        if grid.size == 0:
            raise InvalidParameterError("lams is empty.")
        grid = np.sort(grid)[::-1]
    if not isinstance(backend, str):
        raise InvalidParameterError(f"backend must be a string, got {backend!r}.")
    opts = dict(solver_opts or {})
    solutions: list[ConvexSolution] = []
    if backend.lower() == "native":
        solve_native = _native_solver()
        prev = None
        for i, lam in enumerate(grid):
            if lam >= lmax:
                sol = _zero_solution(X, y, patterns, activation, loss_obj, lam, "native")
            else:
                sol = solve_native(X, y, patterns, activation=activation, loss=loss_obj, lam=float(lam),
                                   tol=tol, warm_start=prev, **opts)
                prev = sol
            solutions.append(sol)
            if callback is not None and callback(i, float(lam), sol):
                break
        solver_name = next((s.solver for s in reversed(solutions) if s.solver != "lam_max"), "native")
        backend_name = "native"
    else:
        from .builders import build_program

        solver_name = "CLARABEL" if backend.lower() in ("clarabel", "cvxpy") else backend.upper()
        program = build_program(X, y, activation=activation, loss=loss_obj, lam=float(grid[0]), patterns=patterns)
        opts.setdefault("warm_start", True)
        for i, lam in enumerate(grid):
            if lam >= lmax:
                sol = _zero_solution(X, y, patterns, activation, loss_obj, lam, "cvxpy")
            else:
                sol = program.solve(solver_name, lam=float(lam), **opts)
            solutions.append(sol)
            if callback is not None and callback(i, float(lam), sol):
                break
        backend_name = "cvxpy"
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
