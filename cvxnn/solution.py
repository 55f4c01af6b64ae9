"""Convex models and solve results, shared by every backend (CVXPY and native).

* :class:`ConvexModel`: a point of C-ReLU (blocks ``V``, ``W``) or C-GReLU (blocks ``U``) on
  given patterns, with its predictions, penalty and objective; feasible or not.
* :class:`ConvexSolution`: a :class:`ConvexModel` returned by a solver, with the solver's
  status and statistics. The status is never hidden: :attr:`ConvexSolution.converged` is False
  unless the solver certified the requested accuracy, and :meth:`ConvexSolution.raise_for_status`
  turns any other status into an exception.

Weights are arrays of shape ``(d_a, p)`` (scalar output) or ``(d_a, p, c)`` (vector output),
column ``i`` being the block of pattern ``D_i``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._readout import to_network
from ._validation import (
    as_float_array,
    check_lam,
    check_nonnegative_float,
    check_X,
    check_y,
)
from .activations import ACTIVATIONS as _ACTIVATION_OBJECTS
from .activations import Activation, get_activation
from .constraints import ConeConstraint
from .errors import ConvergenceWarning, CvxnnError, InvalidParameterError, NonFiniteError, ShapeError, SolverError
from .losses import Loss, get_loss
from .operators import forward
from .patterns import Patterns
from .penalties import get_penalty

__all__ = ["ConvexModel", "ConvexSolution", "EXTRA_KEYS", "STATUSES", "cone_violation"]

#: Status strings used across backends.
STATUSES = (
    "optimal",  # certified to the requested tolerance
    "optimal_inaccurate",  # solver returned a point it could not certify
    "max_iterations",  # iteration / time limit reached before the tolerance
    "infeasible",
    "unbounded",
    "numerical_error",
    "approximate",  # derived from an optimum by an approximation (pruning past minimal): not an optimum
)

#: Public activation names (:data:`cvxnn.activations.ACTIVATIONS` holds their objects).
ACTIVATIONS = tuple(_ACTIVATION_OBJECTS)

#: Typed :class:`ConvexSolution` field -> ``extra`` keys it is filled from when left None.
EXTRA_KEYS: dict[str, tuple[str, ...]] = {
    "multipliers": ("multipliers",),
    "cone_duals": ("cone_duals",),
    "dual_value": ("dual_value",),
    "rel_gap": ("rel_gap",),
    "step_size": ("step_size",),
    "al_delta": ("al_delta", "delta"),
    "training_X": ("training_X",),
    "program_penalty": ("program_penalty",),
    "formulation": ("formulation",),
}


def cone_violation(Xa: np.ndarray, mask: np.ndarray, B: np.ndarray) -> float:
    """Largest violation ``max(0, -min Xt_i b_i)`` of the cone constraints of the blocks ``B``.

    ``B`` is ``(d_a, p)`` or ``(d_a, p, c)`` (columnwise constraints for vector output); see
    :meth:`cvxnn.constraints.ConeConstraint.violation`.
    """
    return ConeConstraint().violation(Xa, mask, B)


@dataclass(eq=False)
class ConvexModel:
    """A point of a convex reformulation on fixed patterns.

    Attributes
    ----------
    activation : {"relu", "gated_relu"}
    patterns : Patterns
    U : ndarray or None
        C-GReLU blocks ``u_i`` (``d_a x p`` or ``d_a x p x c``).
    V, W : ndarray or None
        C-ReLU blocks ``v_i``, ``w_i`` (positive / negative output neurons).
    formulation : {None, "nuclear", "one_vs_all"}
        Vector output: the program's block penalty (nuclear norms, or column norms for
        ``"one_vs_all"``); None reads as nuclear norms. :meth:`penalty`, :meth:`block_norms` and
        :meth:`objective` follow it.
    """

    activation: str
    patterns: Patterns
    U: np.ndarray | None = None
    V: np.ndarray | None = None
    W: np.ndarray | None = None
    formulation: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise InvalidParameterError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}.")
        if self.formulation is not None and self.formulation not in ("nuclear", "one_vs_all"):
            raise InvalidParameterError(
                f"formulation must be None, 'nuclear' or 'one_vs_all', got {self.formulation!r}.")
        if not isinstance(self.patterns, Patterns):
            raise InvalidParameterError(
                f"patterns must be a cvxnn Patterns object (cvxnn.sample_patterns / enumerate_patterns), "
                f"got {type(self.patterns).__name__}.")
        for name in ("U", "V", "W"):  # array-likes -> float arrays (solver outputs pass through)
            B = getattr(self, name)
            if B is not None and not (isinstance(B, np.ndarray) and B.dtype.kind == "f"):
                setattr(self, name, as_float_array(B, name))
        spec = self.spec
        if any(getattr(self, name) is None for name in spec.blocks):
            raise ShapeError(f"a {spec.label} model needs {' and '.join(spec.blocks)}.")
        other = [name for name in ("U", "V", "W") if name not in spec.blocks and getattr(self, name) is not None]
        if other:
            raise InvalidParameterError(
                f"a {spec.label} model has blocks {' and '.join(spec.blocks)} only; got {' and '.join(other)} too.")
        blocks = tuple(getattr(self, name) for name in spec.blocks)
        shape = blocks[0].shape
        for B in blocks:
            if B.shape != shape or B.ndim not in (2, 3) or B.shape[:2] != (
                self.patterns.design_dim,
                self.patterns.n_patterns,
            ) or (B.ndim == 3 and B.shape[2] == 0):
                raise ShapeError(
                    f"weight blocks must have shape ({self.patterns.design_dim}, "
                    f"{self.patterns.n_patterns}[, c]) with c >= 1; got {B.shape}."
                )
            if not np.all(np.isfinite(B)):
                raise self._non_finite("weight blocks contain NaN or infinity.")

    @staticmethod
    def _non_finite(message: str) -> CvxnnError:
        """The error for non-finite blocks: bad input for a model built by hand."""
        return NonFiniteError(message)

    # ---------------------------------------------------------------- sizes
    @property
    def n_outputs(self) -> int:
        """1 for scalar output, ``c`` for vector output."""
        B = self.U if self.U is not None else self.V
        return 1 if B.ndim == 2 else B.shape[2]

    @property
    def spec(self) -> Activation:
        """The :class:`~cvxnn.activations.Activation` object of :attr:`activation`."""
        return get_activation(self.activation)

    @property
    def blocks(self) -> dict[str, np.ndarray]:
        """The weight blocks by name (``{"U": U}`` or ``{"V": V, "W": W}``)."""
        return {name: getattr(self, name) for name in self.spec.blocks}

    @property
    def effective_weights(self) -> np.ndarray:
        """``U`` (C-GReLU) or ``V - W`` (C-ReLU): the blocks that multiply ``D_i X``."""
        return self.spec.effective_weights(self.blocks)

    # ----------------------------------------------------------- evaluation
    def predict(self, X) -> np.ndarray:
        """Convex-model predictions ``sum_i D_i(X) X_a theta_i`` with the stored gates.

        On the training data this is the convex fit; on new data the patterns are
        recomputed from the gates (the gated-ReLU reading; for C-ReLU the mapped network's
        :meth:`~cvxnn.networks.ReLUNetwork.predict` is the ReLU reading).
        """
        Xa = self.patterns.design(X)
        mask = self.patterns.mask_for(X)
        return forward(Xa, mask, self.effective_weights)

    def train_predict(self, X) -> np.ndarray:
        """Predictions on the training data using the stored mask (checks ``X`` is that data)."""
        self.patterns.check_data(X)
        Xa = self.patterns.design(X)
        return forward(Xa, self.patterns.mask, self.effective_weights)

    def _block_penalty(self):
        """The :class:`~cvxnn.penalties.Penalty` of this model's program: group 2-norms (scalar
        output), column norms for a ``formulation="one_vs_all"`` solution, else nuclear norms."""
        if self.n_outputs == 1:
            return get_penalty("group_l2")
        if getattr(self, "formulation", None) == "one_vs_all":
            return get_penalty("one_vs_all")
        return get_penalty("nuclear")

    def block_norms(self) -> np.ndarray:
        """Group norms: ``(p,)`` for C-GReLU, ``(2, p)`` rows ``||v_i||``, ``||w_i||`` for C-ReLU.

        Vector output: the nuclear norms of the ``d x c`` blocks, or for a solution of the
        one-vs-all program (``formulation == "one_vs_all"``) the sums of their column norms.
        """
        pen = self._block_penalty()
        norms = [pen.block_norms(B) for B in self.blocks.values()]
        return norms[0] if len(norms) == 1 else np.vstack(norms)

    def penalty(self) -> float:
        """Penalty without ``lam`` of the program this point belongs to: ``sum ||u_i||`` or
        ``sum ||v_i|| + ||w_i||`` (vector output: nuclear norms, or column norms for a
        ``formulation="one_vs_all"`` solution)."""
        return float(self.block_norms().sum())

    def objective(self, X, y, lam: float, loss: str | Loss | None = None) -> float:
        """Convex objective ``L(sum_i D_i X theta_i, y) + lam * penalty`` on the training data.

        ``loss`` defaults to the loss the point was solved with (:attr:`ConvexSolution.loss`,
        sample weights and reduction included), and to the squared loss for a model that
        records none, so that ``sol.objective(X, y, sol.lam)`` is ``sol.objective_value``. The
        penalty is :meth:`penalty`; a program with a feature penalty
        (:mod:`cvxnn.feature_sparsity`) has the objective ``L + lam * program_penalty`` instead."""
        lam = check_lam(lam)
        if loss is None:
            loss = getattr(self, "loss", None) or "squared"
        loss = get_loss(loss)
        X = check_X(X)
        y = loss.check_targets(check_y(y, X.shape[0]))  # a LabelError for labels the loss cannot take
        pred = self.train_predict(X)
        if pred.ndim == 2 and pred.shape[1] == 1 and y.ndim == 1:  # blocks (d_a, p, 1): one output
            pred = pred[:, 0]
        return loss.value(pred, y) + lam * self.penalty()

    def max_cone_violation(self, X) -> float:
        """Largest violation of ``Xt_i v_i >= 0``, ``Xt_i w_i >= 0`` (0 for C-GReLU)."""
        if not self.spec.constrained:
            return 0.0
        self.patterns.check_data(X)
        return self.spec.max_violation(self.patterns.design(X), self.patterns.mask, self.blocks)

    def n_active(self, tol: float = 1e-8) -> int:
        """Number of blocks with norm above ``tol * max block norm`` (neurons before splitting)."""
        tol = check_nonnegative_float(tol, "tol")
        norms = self.block_norms().ravel()
        if norms.size == 0 or norms.max() == 0:
            return 0
        return int((norms > tol * norms.max()).sum())

    # ----------------------------------------------------------------- maps
    def to_network(self, *, tol: float = 0.0, split: str = "auto"):
        """The non-convex network of this point by the exact maps of docs/math.md, "Solution maps".

        Blocks with norm ``<= tol * max norm`` are dropped, and for vector output the singular
        factors (or block columns) of the kept blocks below the same threshold (``tol=0`` keeps
        every nonzero block and factor, so predictions and objective are reproduced exactly).
        ``split="columns"`` (vector output)
        gives one neuron per nonzero block column instead of the SVD factors (see
        :func:`cvxnn.maps.to_network`).
        """
        return to_network(self, tol=tol, split=split)


@dataclass(eq=False)
class ConvexSolution(ConvexModel):
    """A :class:`ConvexModel` returned by a solver, with its status and statistics.

    Attributes
    ----------
    status : str
        One of :data:`STATUSES`.
    objective_value : float
        Objective at the returned point, in the convention of docs/math.md, "Conventions cvxnn fixes".
    lam : float or None
        Regularisation strength (None for the constrained forms).
    loss : Loss or None
    backend : str
        ``"cvxpy"`` or ``"native"``.
    solver : str
        Solver name (``"CLARABEL"``, ``"SCS"``, ``"rfista"``, ``"al"``, ...).
    solve_time, compile_time : float or None
        Seconds (compile time for CVXPY backends).
    iterations : int or None
    gap : float or None
        Certified duality gap (absolute), when available.
    max_violation : float or None
        Largest cone-constraint violation (C-ReLU).
    multipliers : ndarray or None
        Cone multipliers ``rho_i >= 0`` of ``Xt_i theta_i >= 0`` (C-ReLU), shape ``(n, 2p)`` or
        ``(n, 2p, c)``: the ``V`` blocks, then the ``W`` blocks (docs/math.md, "Optimality conditions").
    cone_duals : tuple of ndarray or None
        CVXPY's dual values of the two cone constraints ``(rho_V, rho_W)``, each ``(n, p[, c])``.
    dual_value : float or None
        Value of the dual point behind :attr:`gap` (native solvers).
    rel_gap : float or None
        :attr:`gap` relative to the objective (native solvers).
    step_size : float or None
        Last step size of the first-order solvers (reused by warm starts).
    al_delta : float or None
        Penalty parameter ``delta`` of the augmented Lagrangian (reused by warm starts).
    training_X : ndarray or None
        The training data the solution was fitted on (vector-output ReLU programs keep it so the
        map can test the cones ``K_i``); a reference, not a copy.
    program_penalty : float or None
        The penalty of the program that was solved (vector output: nuclear or columnwise).
    formulation : str or None
        Vector-output penalty, ``"nuclear"`` or ``"one_vs_all"``.
    check_state : object or None
        Native C-GReLU solves: the loss gradient at the blocks and its adjoint, from the
        working set's check of them (:class:`cvxnn.native.gated_working_set.CheckState`). A warm
        start from this solution on the same data reuses it instead of checking its start (it
        steers the first round only; no certificate reads it). Not part of the model: dropped by
        warm starts moved to other data, by :func:`cvxnn.path.walk_path` once the next step has
        used it, and by :func:`cvxnn.io` files.
    extra : dict
        Backend diagnostics (``cvxpy_status``, iteration counts, flops, ...). Library code reads
        the typed fields above; a typed field left None is filled from ``extra`` when the key is
        there (:data:`EXTRA_KEYS`), and ``multipliers`` from ``cone_duals``.
    """

    status: str = "optimal"
    objective_value: float = float("nan")
    lam: float | None = None
    loss: Loss | None = None
    backend: str = ""
    solver: str = ""
    solve_time: float | None = None
    compile_time: float | None = None
    iterations: int | None = None
    gap: float | None = None
    max_violation: float | None = None
    multipliers: np.ndarray | None = field(default=None, repr=False)
    cone_duals: tuple | None = field(default=None, repr=False)
    dual_value: float | None = None
    rel_gap: float | None = None
    step_size: float | None = None
    al_delta: float | None = None
    training_X: np.ndarray | None = field(default=None, repr=False)
    program_penalty: float | None = None
    check_state: Any = field(default=None, repr=False, compare=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def _non_finite(message: str) -> CvxnnError:
        """A solution with non-finite blocks is a failed solve."""
        return SolverError(message, status="numerical_error")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.extra is None:
            self.extra = {}
        for name, keys in EXTRA_KEYS.items():
            if getattr(self, name) is None:
                for key in keys:
                    if self.extra.get(key) is not None:
                        setattr(self, name, self.extra[key])
                        break
        if self.multipliers is None and self.cone_duals is not None:
            # CVXPY's duals of the two cone constraints are the multipliers, V blocks then W blocks
            self.multipliers = np.concatenate([np.asarray(d, dtype=float) for d in self.cone_duals], axis=1)

    @property
    def converged(self) -> bool:
        """True only when the solver certified the requested accuracy (status ``"optimal"``)."""
        return self.status == "optimal"

    def raise_for_status(self) -> ConvexSolution:
        """Raise :class:`~cvxnn.errors.SolverError` unless the status is ``"optimal"``."""
        if not self.converged:
            raise SolverError(
                f"the {self.solver} solve ended with status {self.status!r} "
                f"(objective {self.objective_value:.6g}, gap {self.gap}); tighten the solver "
                "settings, raise max_iter, or rescale the data.",
                status=self.status,
            )
        return self

    def warn_if_not_converged(self, stacklevel: int = 2) -> None:
        """Emit a :class:`~cvxnn.errors.ConvergenceWarning` unless converged."""
        if not self.converged:
            warnings.warn(
                f"{self.solver} finished with status {self.status!r} (gap={self.gap}); "
                "the result is not certified optimal.",
                ConvergenceWarning,
                stacklevel=stacklevel + 1,
            )

    def summary(self) -> str:
        """A few lines describing the solve (status, objective, time, active neurons)."""
        lines = [
            f"activation   : {self.activation} ({self.patterns.n_patterns} patterns, "
            f"{self.n_outputs} output{'s' if self.n_outputs > 1 else ''})",
            f"backend      : {self.backend} / {self.solver}",
            f"status       : {self.status}",
            f"objective    : {self.objective_value:.10g}",
            f"active blocks: {self.n_active()}",
        ]
        if self.formulation == "nuclear" and get_activation(self.activation).constraint is not None:
            # with cone constraints (C-ReLU) the nuclear-norm program relaxes the network's problem
            lines[3] += ("  (convex value: a lower bound on the objective of to_network()'s network; "
                         "cvxnn verify prints both)")
        if self.gap is not None:
            lines.append(f"duality gap  : {self.gap:.3e}")
        if self.max_violation is not None:
            lines.append(f"cone viol.   : {self.max_violation:.3e}")
        if self.solve_time is not None:
            lines.append(f"solve time   : {self.solve_time:.4f} s")
        if self.compile_time is not None:
            lines.append(f"compile time : {self.compile_time:.4f} s")
        return "\n".join(lines)
