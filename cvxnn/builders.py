"""CVXPY builders: a network spec and data become a real :class:`cvxpy.Problem`.

The programs (MATH.md, "Convex programs") are written in vectorised form, one matrix
variable per sign, so compile time grows linearly in the number of patterns ``p``:

C-ReLU::

    minimize   L( rowsum(M * (X_a (V - W))), y ) + lam * (sum_i ||V[:, i]|| + ||W[:, i]||)
    subject to S * (X_a V) >= 0,  S * (X_a W) >= 0          (S = 2M - 1, elementwise)

C-GReLU::

    minimize   L( rowsum(M * (X_a U)), y ) + lam * sum_i ||U[:, i]||

``lam`` is a :class:`cvxpy.Parameter` (``nonneg=True``); the problem is DPP, so changing
``program.lam.value`` and solving again reuses the compiled problem.

Constrained forms (``lam -> 0``): ``form="min_norm"`` (minimum-norm interpolation,
``fit == y``) and ``form="max_margin"`` (``y * fit >= 1``); they have no ``lam``.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from ._validation import check_lam, check_X, check_y
from .errors import (
    InaccurateSolutionWarning,
    InfeasibleError,
    InvalidParameterError,
    LabelError,
    SolverError,
    UnboundedError,
)
from .losses import Loss, get_loss
from .patterns import Patterns, sample_patterns
from .solution import ConvexSolution, cone_violation

__all__ = ["DEFAULT_CANON_BACKEND", "DEFAULT_SCS_OPTIONS", "FORMS", "ConvexProgram", "build_program"]

logger = logging.getLogger(__name__)

FORMS = ("regularized", "min_norm", "max_margin")

#: Options used for SCS unless the caller passes their own (SCS's defaults are loose).
DEFAULT_SCS_OPTIONS = {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 200_000}
#: CVXPY canonicalisation backend used by :meth:`ConvexProgram.solve` and
#: :meth:`ConvexProgram.compile` unless the caller passes ``canon_backend``. Measured on the
#: C-ReLU program (n=1000, d=20, p=100..1000; ``benchmarks/bench_builders.py``): CVXPY's
#: default C++ backend spends about 1.5x the CPU time of the SciPy backend at p >= 400, most of
#: it in the kernel (it touches about 5x as many fresh 4 KiB pages), and its time grows faster
#: in p. Only the first compilation uses it; DPP re-solves reuse the compiled problem.
DEFAULT_CANON_BACKEND = "SCIPY"
_CANON_BACKENDS = ("SCIPY", "CPP", "COO")
#: Clarabel runs with its own defaults (feasibility tolerance 1e-8). Measured on small
#: C-ReLU programs: cone violations of that order make the mapped network's objective differ
#: from the convex one by up to ~2e-8 relative; pass ``tol_feas=1e-10`` for tighter maps
#: (tighter tolerances end more often in "almost solved", reported as optimal_inaccurate).


@dataclass(eq=False)
class ConvexProgram:
    """A compiled-once CVXPY program for a convex two-layer network.

    Attributes
    ----------
    problem : cvxpy.Problem
        The real CVXPY problem; solve it yourself or through :meth:`solve`.
    variables : dict of str -> cvxpy.Variable
        ``{"V": ..., "W": ...}`` (C-ReLU) or ``{"U": ...}`` (C-GReLU), each ``d_a x p``.
    lam : cvxpy.Parameter or None
        Regularisation strength (``nonneg=True``); None for constrained forms.
    cone_constraints : list of cvxpy.Constraint
        ``S * (X_a V) >= 0`` and ``S * (X_a W) >= 0`` (empty for C-GReLU).
    prediction : cvxpy.Expression
        ``sum_i D_i X_a theta_i`` on the training data.
    activation, form : str
    loss : Loss or None
        None for the constrained forms.
    patterns : Patterns
    X, y : ndarray
        Validated training data (raw ``X``, not the design).
    """

    problem: cp.Problem
    variables: dict[str, cp.Variable]
    lam: cp.Parameter | None
    cone_constraints: list
    prediction: cp.Expression
    activation: str
    form: str
    loss: Loss | None
    patterns: Patterns
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)

    # Convenience accessors named as in the paper.
    @property
    def U(self) -> cp.Variable:
        """C-GReLU blocks ``u_i`` (columns)."""
        return self._var("U")

    @property
    def V(self) -> cp.Variable:
        """C-ReLU positive-output blocks ``v_i`` (columns)."""
        return self._var("V")

    @property
    def W(self) -> cp.Variable:
        """C-ReLU negative-output blocks ``w_i`` (columns)."""
        return self._var("W")

    def _var(self, name: str) -> cp.Variable:
        if name not in self.variables:
            raise AttributeError(f"a {self.activation} program has no variable {name!r}; "
                                 f"it has {sorted(self.variables)}.")
        return self.variables[name]

    @property
    def constraints(self) -> list:
        """All constraints of the problem (cone constraints and, for constrained forms, fit)."""
        return list(self.problem.constraints)

    def compile(self, solver: str | None = None, *, canon_backend: str | None = None) -> float:
        """Compile the problem for ``solver`` now, without solving it; return the seconds taken.

        CVXPY caches the compiled (DPP) problem, so the next :meth:`solve` with the same solver
        only fills in ``lam`` and calls the solver. Use it to separate compile time from solve
        time, or to pay the compile cost ahead of a path of solves.

        Parameters
        ----------
        solver : str, optional
            Installed CVXPY solver name; default ``"CLARABEL"``.
        canon_backend : str, optional
            CVXPY canonicalisation backend (``"SCIPY"``, ``"CPP"``, ``"COO"``); default
            :data:`DEFAULT_CANON_BACKEND`.

        Returns
        -------
        float
            Wall-clock seconds spent in :meth:`cvxpy.Problem.get_problem_data`; about 0 when the
            problem was already compiled for this solver.

        Raises
        ------
        InvalidParameterError
            For an unknown or uninstalled solver or canonicalisation backend.
        SolverError
            When CVXPY cannot compile the problem for this solver.
        """
        name = _check_solver(solver)
        backend = DEFAULT_CANON_BACKEND if canon_backend is None else canon_backend
        if not isinstance(backend, str) or backend.upper() not in _CANON_BACKENDS:
            raise InvalidParameterError(
                f"canon_backend must be one of {_CANON_BACKENDS}, got {canon_backend!r}.")
        t0 = time.perf_counter()
        try:
            self.problem.get_problem_data(name, canon_backend=backend.upper())
        except cp.error.SolverError as exc:
            raise SolverError(f"CVXPY cannot compile this problem for {name} ({exc}).",
                              status="numerical_error") from exc
        seconds = time.perf_counter() - t0
        logger.debug("compiled %s %s program for %s with the %s backend in %.3f s",
                     self.form, self.activation, name, backend, seconds)
        return seconds

    def solve(self, solver: str | None = None, *, lam: float | None = None, **solver_opts) -> ConvexSolution:
        """Solve with a CVXPY solver and return a :class:`~cvxnn.solution.ConvexSolution`.

        Parameters
        ----------
        solver : str, optional
            Any installed CVXPY solver name (case-insensitive); default ``"CLARABEL"``.
            ``"SCS"`` gets :data:`DEFAULT_SCS_OPTIONS` unless you pass your own tolerances;
            Clarabel runs with its defaults.
        lam : float, optional
            Set ``self.lam.value`` first (no recompilation: the problem is DPP).
        **solver_opts
            Passed straight to :meth:`cvxpy.Problem.solve` (``verbose``, ``eps_abs``, ...).
            ``canon_backend`` defaults to :data:`DEFAULT_CANON_BACKEND` (it only matters for the
            first, compiling solve).

        Returns
        -------
        ConvexSolution
            ``status`` is ``"optimal"`` or ``"optimal_inaccurate"`` (with an
            :class:`~cvxnn.errors.InaccurateSolutionWarning`) or ``"max_iterations"``.

        Raises
        ------
        InfeasibleError, UnboundedError
            When CVXPY reports the problem infeasible / unbounded.
        SolverError
            When the solver fails or returns no point.
        InvalidParameterError
            For an unknown or uninstalled solver.
        """
        if lam is not None:
            if self.lam is None:
                raise InvalidParameterError(f"the {self.form} form has no lam parameter.")
            self.lam.value = check_lam(lam)
        name = _check_solver(solver)
        opts = dict(solver_opts)
        opts.setdefault("canon_backend", DEFAULT_CANON_BACKEND)
        if name == "SCS" and not ({"eps_abs", "eps_rel", "eps"} & opts.keys()):
            opts = {**DEFAULT_SCS_OPTIONS, **opts}
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # cvxnn emits its own InaccurateSolutionWarning with the status below
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                self.problem.solve(solver=name, **opts)
        except cp.error.SolverError as exc:
            raise SolverError(
                f"{name} failed on this problem ({exc}); try another solver "
                "(solver='SCS' or 'CLARABEL') or rescale the data.",
                status="numerical_error",
            ) from exc
        except TypeError as exc:
            raise InvalidParameterError(f"bad solver option for {name}: {exc}") from exc
        wall = time.perf_counter() - t0
        return self._collect(name, wall)

    # ------------------------------------------------------------------------------
    def _weight_blocks(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Turn the solver's variable values into weight blocks ``(d_a, p)`` or ``(d_a, p, c)``.

        The identity here; programs that lay out their variables differently (the vector-output
        programs of :mod:`cvxnn.vector` use one ``d_a x (p c)`` matrix per sign) override it.
        """
        return values

    def _collect(self, solver: str, wall: float) -> ConvexSolution:
        status = self.problem.status
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            raise InfeasibleError(
                f"{solver} reports the {self.form} {self.activation} program {status}"
                + (" (no network interpolates / separates the data with these patterns; add "
                   "patterns or use the regularized form)" if self.form != "regularized" else ""),
                status="infeasible",
            )
        if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
            raise UnboundedError(f"{solver} reports the program {status}.", status="unbounded")
        values = {k: v.value for k, v in self.variables.items()}
        if any(v is None for v in values.values()) or status is None:
            raise SolverError(f"{solver} returned no solution (status {status!r}).", status="numerical_error")
        if any(not np.all(np.isfinite(v)) for v in values.values()):
            raise SolverError(f"{solver} returned NaN or inf weights (status {status!r}).",
                              status="numerical_error")
        values = self._weight_blocks(values)
        mapped = {cp.OPTIMAL: "optimal", cp.OPTIMAL_INACCURATE: "optimal_inaccurate",
                  cp.USER_LIMIT: "max_iterations"}.get(status, "numerical_error")
        if mapped != "optimal":
            warnings.warn(
                f"{solver} finished with status {status!r}: the solution is not certified "
                "optimal; loosen or tighten the solver tolerances, raise the iteration limit, "
                f"rescale the data, or try {'SCS' if solver == 'CLARABEL' else 'CLARABEL'}.",
                InaccurateSolutionWarning,
                stacklevel=3,
            )
        stats = self.problem.solver_stats
        Xa = self.patterns.design(self.X)
        extra: dict[str, Any] = {"cvxpy_status": status}
        max_violation = None
        if self.activation == "relu":
            max_violation = max(cone_violation(Xa, self.patterns.mask, values["V"]),
                                cone_violation(Xa, self.patterns.mask, values["W"]))
            duals = [c.dual_value for c in self.cone_constraints]
            if all(d is not None for d in duals):
                extra["cone_duals"] = tuple(np.asarray(d, dtype=float) for d in duals)
        lam = None if self.lam is None else float(self.lam.value)
        return ConvexSolution(
            activation=self.activation,
            patterns=self.patterns,
            U=values.get("U"),
            V=values.get("V"),
            W=values.get("W"),
            status=mapped,
            objective_value=float(self.problem.value),
            lam=lam,
            loss=self.loss,
            backend="cvxpy",
            solver=solver,
            solve_time=float(stats.solve_time) if stats.solve_time is not None else wall,
            compile_time=self.problem.compilation_time,
            iterations=stats.num_iters,
            gap=None,
            max_violation=max_violation,
            extra=extra,
        )


def _check_solver(solver: str | None) -> str:
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


def _masked_prediction(Xa: np.ndarray, M: np.ndarray, B) -> cp.Expression:
    """``sum_i D_i X_a b_i = rowsum(M * (X_a B))`` with a dense float mask ``M``.

    The same linear map can be written ``rowsum(X_a * (M_sparse B^T))``, but CVXPY's
    canonicalisation forms ``I_d kron M_sparse``, and SciPy's ``kron`` switches to a block (BSR)
    format with dense ``n x p`` blocks as soon as half of the mask is ones, which happens for about
    half of all pattern draws: compile time then doubled (n=1000, d=20, p=400: 13 s against
    7 s of CPU time). ``X_a @ B`` is the product the cone constraints already use, and its cost
    does not depend on the mask.
    """
    return cp.sum(cp.multiply(M, Xa @ B), axis=1)


def _check_form_targets(form: str, y: np.ndarray) -> None:
    if form == "max_margin":
        if y.ndim != 1 or not np.all(np.isin(y, (-1.0, 1.0))):
            raise LabelError("max_margin needs a label vector with values in {-1, +1}.")


def build_program(
    X,
    y,
    *,
    activation: str = "relu",
    loss: str | Loss = "squared",
    lam: float = 1.0,
    patterns: Patterns | None = None,
    n_gates: int = 100,
    bias: bool = False,
    seed=None,
    form: str = "regularized",
) -> ConvexProgram:
    """Build the convex program of a two-layer network as a :class:`cvxpy.Problem`.

    Parameters
    ----------
    X : array of shape (n, d)
        Training data.
    y : array of shape (n,)
        Targets (labels in {-1, +1} for logistic / hinge / max-margin).
    activation : {"relu", "gated_relu"}
        C-ReLU (cone-constrained, exact for ReLU networks) or C-GReLU (unconstrained).
    loss : str or Loss
        ``"squared"`` (default, ``1/2 ||.||^2``), ``"logistic"``, ``"hinge"``, ``"huber"``,
        ``"absolute"``, or a :class:`~cvxnn.losses.Loss` (e.g. ``SquaredLoss(reduction="mean")``).
    lam : float
        Initial value of the ``lam`` parameter (``>= 0``).
    patterns : Patterns, optional
        Activation patterns built on this ``X``; sampled with ``n_gates``, ``bias`` and ``seed``
        when omitted.
    n_gates, bias, seed
        Used only when ``patterns`` is None (see :func:`~cvxnn.patterns.sample_patterns`).
    form : {"regularized", "min_norm", "max_margin"}
        The weight-decay program, minimum-norm interpolation, or max-margin classification.

    Returns
    -------
    ConvexProgram
    """
    if not isinstance(activation, str) or activation not in ("relu", "gated_relu"):
        raise InvalidParameterError(f"activation must be 'relu' or 'gated_relu', got {activation!r}.")
    if not isinstance(form, str) or form not in FORMS:
        raise InvalidParameterError(f"form must be one of {FORMS}, got {form!r}.")
    X = check_X(X)
    y = check_y(y, X.shape[0])
    if patterns is None:
        patterns = sample_patterns(X, n_gates, seed=seed, bias=bias)
    elif not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    patterns.check_data(X)
    if y.ndim == 2:
        from .vector import (
            build_vector_program,  # vector outputs: nuclear-norm programs
        )

        return build_vector_program(X, y, activation=activation, loss=loss, lam=lam,
                                    patterns=patterns, form=form)
    Xa = patterns.design(X)
    M = patterns.mask.astype(float)
    d_a, p = patterns.design_dim, patterns.n_patterns

    if activation == "relu":
        V = cp.Variable((d_a, p), name="V")
        W = cp.Variable((d_a, p), name="W")
        variables = {"V": V, "W": W}
        S = 2.0 * M - 1.0
        cones = [cp.multiply(S, Xa @ V) >= 0, cp.multiply(S, Xa @ W) >= 0]
        prediction = _masked_prediction(Xa, M, V - W)
        penalty = cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0))
    else:
        U = cp.Variable((d_a, p), name="U")
        variables = {"U": U}
        cones = []
        prediction = _masked_prediction(Xa, M, U)
        penalty = cp.sum(cp.norm(U, 2, axis=0))

    constraints = list(cones)
    lam_param = None
    loss_obj = None
    if form == "regularized":
        loss_obj = get_loss(loss)
        y = loss_obj.check_targets(y)
        lam_param = cp.Parameter(nonneg=True, name="lam", value=check_lam(lam))
        objective = loss_obj.cvxpy(prediction, y) + lam_param * penalty
    else:
        _check_form_targets(form, y)
        objective = penalty
        if form == "min_norm":
            constraints.append(prediction == y)
        else:
            constraints.append(cp.multiply(y, prediction) >= 1)
    problem = cp.Problem(cp.Minimize(objective), constraints)
    logger.debug("built %s %s program: d_a=%d, p=%d, n=%d", form, activation, d_a, p, X.shape[0])
    return ConvexProgram(
        problem=problem,
        variables=variables,
        lam=lam_param,
        cone_constraints=cones,
        prediction=prediction,
        activation=activation,
        form=form,
        loss=loss_obj,
        patterns=patterns,
        X=X,
        y=y,
    )
