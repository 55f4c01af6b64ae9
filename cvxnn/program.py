"""The compiled convex program object shared by the scalar and vector builders.

:class:`ConvexProgram` holds a real :class:`cvxpy.Problem` built once by
:func:`cvxnn.builders.build_program` (or :func:`cvxnn.vector.build_vector_program`) with
``lam`` as a DPP :class:`cvxpy.Parameter`. Solving it goes through the one CVXPY adapter,
:mod:`cvxnn.backends.cvxpy_adapter`, which maps CVXPY's status to cvxnn's and reads the point,
the cone multipliers and the statistics back into a :class:`~cvxnn.solution.ConvexSolution`.

This module sits between the builders and the backends: the builders import it, the CVXPY
adapter is called by it, and neither of them imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from ._validation import check_lam
from .backends import cvxpy_adapter
from .errors import InvalidParameterError
from .feature_penalties import GroupSparsePenalty
from .losses import Loss
from .patterns import Patterns
from .solution import ConvexSolution

__all__ = [
    "DEFAULT_CANON_BACKEND",
    "DEFAULT_SCS_OPTIONS",
    "EXP_CONE_CLARABEL_OPTIONS",
    "EXP_CONE_CLARABEL_RETRIES",
    "FORMS",
    "ConvexProgram",
    "uses_exponential_cones",
]

#: Program forms: weight decay, minimum-norm interpolation, max-margin classification.
FORMS = ("regularized", "min_norm", "max_margin")

DEFAULT_SCS_OPTIONS = cvxpy_adapter.DEFAULT_SCS_OPTIONS
DEFAULT_CANON_BACKEND = cvxpy_adapter.DEFAULT_CANON_BACKEND

#: Clarabel options for programs with exponential cones (logistic, cross-entropy losses).
#: With Clarabel's defaults (``max_step_fraction=0.99``, static regularisation ``1e-8``) the
#: C-ReLU programs of these losses end in ``InsufficientProgress`` (which CVXPY raises as a
#: SolverError) or "almost solved" at a point wrong in the 4th to 5th digit, depending only on the
#: order of rows and variables. Stopping at 90% of the step to the cone boundary with ten times the
#: static regularisation solved 18 of 19 measured instances (docs/solvers.md).
EXP_CONE_CLARABEL_OPTIONS = {"max_step_fraction": 0.9, "static_regularization_constant": 1e-7}
#: Clarabel settings tried in turn when an exponential-cone program ends neither optimal nor
#: infeasible with :data:`EXP_CONE_CLARABEL_OPTIONS` (measured: each solved instances the others
#: did not; docs/solvers.md).
EXP_CONE_CLARABEL_RETRIES: tuple[dict[str, Any], ...] = (
    {"max_step_fraction": 0.99, "static_regularization_constant": 1e-8, "equilibrate_enable": False},
    {"max_step_fraction": 0.9, "static_regularization_constant": 1e-8, "direct_solve_method": "qdldl"},
)
#: CVXPY atoms canonicalised with exponential cones.
_EXP_CONE_ATOMS = (cp.logistic, cp.log_sum_exp, cp.exp, cp.log, cp.entr, cp.log1p, cp.kl_div, cp.rel_entr)


def uses_exponential_cones(problem: cp.Problem) -> bool:
    """Whether CVXPY will compile ``problem`` with exponential cones (looks at its atoms)."""
    return any(issubclass(atom, _EXP_CONE_ATOMS) for atom in problem.atoms())


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
    #: A penalty of the whole weight matrix (``U``, or ``[V, W]``) that replaced the block
    #: penalty, e.g. :class:`~cvxnn.feature_penalties.FeatureGroupL2`; None for the block programs.
    weight_penalty: Any = None

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

    @property
    def n_outputs(self) -> int:
        """1 for scalar output, ``c`` for vector output."""
        return 1

    def set_lam(self, lam: float) -> None:
        """Set ``self.lam.value`` (no recompilation: the problem is DPP)."""
        if self.lam is None:
            raise InvalidParameterError(f"the {self.form} form has no lam parameter.")
        self.lam.value = check_lam(lam)

    def estimated_solver_bytes(self, solver: str) -> int:
        """Bytes ``solver`` needs beyond the compiled problem: 0 here (second-order and
        exponential cones); the nuclear-norm programs count their semidefinite cones
        (:func:`cvxnn.backends.cvxpy_adapter.psd_solver_bytes`)."""
        return 0

    def estimated_nonzeros(self) -> int:
        """Estimated nonzeros of the compiled problem (see
        :func:`cvxnn.backends.cvxpy_adapter.estimate_nonzeros`)."""
        return cvxpy_adapter.estimate_nonzeros(
            n=self.X.shape[0], d_a=self.patterns.design_dim, p=self.patterns.n_patterns,
            c=self.n_outputs, activation=self.activation, nuclear=False,
            mask_ones=int(np.count_nonzero(self.patterns.mask)))

    def compile(self, solver: str | None = None, *, canon_backend: str | None = None,
                memory_budget: int | None = None) -> float:
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
        memory_budget : int, optional
            Bytes for the pre-compile size check (default
            :func:`cvxnn.operators.default_memory_budget`).

        Returns
        -------
        float
            Wall-clock seconds spent in :meth:`cvxpy.Problem.get_problem_data`; about 0 when the
            problem was already compiled for this solver.

        Raises
        ------
        InvalidParameterError
            For an unknown or uninstalled solver, a solver that cannot take the program's cones,
            or an unknown canonicalisation backend.
        MemoryBudgetError
            When the compiled problem would not fit in memory (see :meth:`estimated_nonzeros`).
        SolverError
            When CVXPY cannot compile the problem for this solver.
        """
        return cvxpy_adapter.compile_program(self, solver, canon_backend=canon_backend,
                                             memory_budget=memory_budget)

    def solve(self, solver: str | None = None, *, lam: float | None = None, **solver_opts) -> ConvexSolution:
        """Solve with a CVXPY solver and return a :class:`~cvxnn.solution.ConvexSolution`.

        A thin caller of :func:`cvxnn.backends.cvxpy_adapter.solve_program`.

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
            first, compiling solve). ``memory_budget`` (bytes) overrides the budget of the
            pre-compile size check.

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
            When the solver fails, returns no point, or reports a status cvxnn does not know.
        MemoryBudgetError
            When the compiled problem would not fit in memory.
        InvalidParameterError
            For an unknown or uninstalled solver, a solver that cannot take the program's cones
            (SCIPY, HIGHS, OSQP: the norms need second-order cones), or a bad option.
        """
        from .native.certificates import attach_certificate

        if lam is not None:
            self.set_lam(lam)
        sol = cvxpy_adapter.solve_program(self, solver, **solver_opts)
        return attach_certificate(self, sol)

    # ---------------------------------------------------------------- adapter hooks
    def default_solver_options(self, solver: str) -> dict[str, Any]:
        """Options this program wants for ``solver`` unless the caller passes their own:
        :data:`EXP_CONE_CLARABEL_OPTIONS` for Clarabel on programs with exponential cones."""
        if solver == "CLARABEL" and uses_exponential_cones(self.problem):
            return dict(EXP_CONE_CLARABEL_OPTIONS)
        return {}

    def retry_solver_options(self, solver: str) -> tuple[dict[str, Any], ...]:
        """Settings to try in turn when a solve with ``solver`` ends neither optimal nor infeasible:
        :data:`EXP_CONE_CLARABEL_RETRIES` for Clarabel on programs with exponential cones."""
        if solver == "CLARABEL" and uses_exponential_cones(self.problem):
            return EXP_CONE_CLARABEL_RETRIES
        return ()

    def _point_objective(self) -> float:
        """The objective at the variables' current values (the expression evaluated there, not
        the solver's reported value). With a :attr:`weight_penalty` (whose CVXPY form is an
        epigraph: a nuclear norm's ``(tr P + tr Q) / 2``, a feature penalty's ``t``) the penalty
        is evaluated at the weights themselves: an inaccurate solve leaves the epigraph loose,
        and its value can then fall below the optimum. Programs with an epigraph block penalty
        override it likewise."""
        value = self.problem.objective.value
        if value is None:
            return float("nan")
        if self.weight_penalty is None or any(v.value is None for v in self.variables.values()):
            return float(value)
        blocks = self._weight_blocks({name: v.value for name, v in self.variables.items()})
        penalty = self._weight_penalty_at(blocks)
        if self.form != "regularized" or self.loss is None or self.lam is None:
            return penalty  # min_norm / max_margin: the penalty is the objective
        prediction = self.prediction.value
        if prediction is None:
            return float(value)
        return float(self.loss.value(np.asarray(prediction, dtype=float), self.y)) + float(self.lam.value) * penalty

    def _weight_penalty_at(self, blocks: dict[str, np.ndarray]) -> float:
        """:attr:`weight_penalty` of the weight matrix ``[U]`` or ``[V, W]`` (``blocks`` as
        :meth:`_weight_blocks` returns them)."""
        theta = np.hstack([blocks[name] for name in ("U", "V", "W") if name in blocks])
        return float(self.weight_penalty.value(theta))

    def _weight_blocks(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Turn the solver's variable values into weight blocks ``(d_a, p)`` or ``(d_a, p, c)``.

        The identity here; programs that lay out their variables differently (the vector-output
        programs of :mod:`cvxnn.vector` use one ``d_a x (p c)`` matrix per sign) override it.
        """
        return values

    def _solution_extra(self) -> dict[str, Any]:
        """Entries of ``extra`` that label every solution of this program (however it was solved:
        :meth:`solve` or :func:`cvxnn.solve` with ``program=``): ``"penalty"`` for a feature penalty
        (:class:`~cvxnn.feature_penalties.GroupSparsePenalty`), whose solutions the block-norm
        certificate must not judge (``duality_gap`` refuses them without ``penalty=``: the block-norm
        certificate is another program's, and shows a gap of tens of percent at such an optimum)."""
        if isinstance(self.weight_penalty, GroupSparsePenalty):
            return {"penalty": repr(self.weight_penalty)}
        return {}

    def _solution_fields(self, blocks: dict[str, np.ndarray], cone_duals) -> dict[str, Any]:
        """Typed :class:`~cvxnn.solution.ConvexSolution` fields this program adds (the vector
        programs add ``formulation``, ``training_X``, ``program_penalty``); with a
        :attr:`weight_penalty`, ``program_penalty`` is its value at the weights."""
        if self.weight_penalty is None:
            return {}
        return {"program_penalty": self._weight_penalty_at(blocks)}
