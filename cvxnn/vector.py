"""Vector-output (``c`` outputs) convex programs and their maps to networks (``docs/math.md``, "Vector output").

Programs (``U_i``, ``V_i``, ``W_i`` are ``d_a x c`` blocks, one per pattern ``D_i``):

C-GReLU, ``formulation="nuclear"`` (exact for gated ReLU networks)::

    minimize  L( sum_i D_i X U_i, Y ) + lam * sum_i ||U_i||_*

C-ReLU, ``formulation="nuclear"`` (Sahiner et al. 2021; columns of ``V_i``, ``W_i`` in ``K_i``)::

    minimize  L( sum_i D_i X (V_i - W_i), Y ) + lam * sum_i (||V_i||_* + ||W_i||_*)
    s.t.      Xt_i V_i >= 0,  Xt_i W_i >= 0           (columnwise, Xt_i = (2 D_i - I) X)

``formulation="one_vs_all"`` replaces each nuclear norm by the sum of the column norms
``sum_k ||U_i[:, k]||_2``: ``c`` independent scalar-output networks that share the patterns (what
``scnn`` does); with a separable loss (squared) it is exactly ``c`` scalar problems.

Layout. Each sign is one CVXPY variable of shape ``(d_a, p c)``: column ``i c + k`` is output ``k``
of block ``i``, so ``B.reshape(d_a, p, c)`` gives the ``(d_a, p, c)`` blocks. The fit is
``(M_c * (X_a B)) E`` with the mask repeated ``c`` times (``M_c``, ``n x p c``) and the 0/1
summation matrix ``E`` (``p c x c``). The nuclear norms use the SDP epigraph form

    ||U||_* = min { (tr P + tr Q) / 2 :  [[P, U], [U^T, Q]] PSD }

for all blocks at once: batched variables ``P`` (``p x d_a x d_a``), ``Q`` (``p x c x c``), one
batched matrix assembled by concatenation and a single CVXPY constraint ``>> 0``. Compile time
grows linearly in ``p`` and is several times below ``p`` separate ``normNuc`` atoms (measurements
in ``docs/vector.md``).

Maps back. C-GReLU: balanced SVD factors (in :mod:`cvxnn.maps`). C-ReLU: :func:`relu_vector_to_network`
uses the balanced SVD factors of a block when its left singular vectors lie in ``+-K_i`` (penalty
``||V_i||_*``), and otherwise the columnwise split (neurons ``(v_ik / sqrt||v_ik||, sqrt||v_ik|| e_k)``,
penalty ``sum_k ||v_ik||``); both reproduce the convex predictions. :func:`relu_vector_report` puts
the convex value, the mapped network's objective and the gated lower bound side by side.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from ._readout import (
    ReLUVectorFactors,
    _check_tolerance,  # noqa: F401 - re-exported for cvxnn.decomposition
    relu_vector_factors,
    relu_vector_to_network,
)
from ._validation import check_lam, check_positive_int, check_X, check_y
from .activations import get_activation
from .backends.cvxpy_adapter import estimate_nonzeros, psd_solver_bytes
from .errors import InaccurateSolutionWarning, InvalidParameterError, LabelError, ShapeError
from .losses import Loss, _same_loss, get_loss
from .patterns import Patterns, sample_patterns
from .penalties import Columnwise, Nuclear, get_penalty
from .program import FORMS, ConvexProgram
from .solution import ConvexModel, ConvexSolution

__all__ = [
    "FORMULATIONS",
    "CROSS_ENTROPY_CLARABEL_OPTIONS",
    "VectorConvexProgram",
    "build_vector_program",
    "one_hot",
    "relu_vector_to_network",
    "relu_vector_factors",
    "ReLUVectorFactors",
    "ReLUVectorReport",
    "relu_vector_report",
    "program_penalty",
]

logger = logging.getLogger(__name__)

#: Clarabel gap tolerances used with the cross-entropy loss (exponential cones) by default.
CROSS_ENTROPY_CLARABEL_OPTIONS = {"tol_gap_abs": 1e-7, "tol_gap_rel": 1e-7}

#: Penalties for vector output: nuclear norm per block, or column norms (independent outputs).
FORMULATIONS = ("nuclear", "one_vs_all")


# ----------------------------------------------------------------------------- helpers
def one_hot(labels, n_classes: int | None = None) -> np.ndarray:
    """One-hot encode integer class labels for the ``cross_entropy`` loss.

    Parameters
    ----------
    labels : array of shape (n,)
        Integer labels in ``{0, ..., n_classes - 1}`` (floats with integer values are accepted).
    n_classes : int, optional
        Number of classes; ``labels.max() + 1`` when omitted.

    Returns
    -------
    ndarray of shape (n, n_classes)
        Rows with a single 1 (float).

    Raises
    ------
    LabelError
        For negative, non-integer or out-of-range labels.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise LabelError(f"labels must be a non-empty 1-D array, got shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
        raise LabelError("labels must be finite integers 0, 1, ..., n_classes - 1.")
    yi = y.astype(np.int64)
    if np.any(yi != y) or np.any(yi < 0):
        raise LabelError("labels must be non-negative integers 0, 1, ..., n_classes - 1.")
    k = int(yi.max()) + 1 if n_classes is None else check_positive_int(n_classes, "n_classes")
    if yi.max() >= k:
        raise LabelError(f"labels go up to {int(yi.max())}, which does not fit n_classes={n_classes}.")
    out = np.zeros((yi.size, k))
    out[np.arange(yi.size), yi] = 1.0
    return out


def _nuclear_blocks(d_a: int, p: int, c: int, name: str):
    """Blocks ``B`` (``d_a x p c``) with ``sum_i ||B_i||_*`` in SDP epigraph form
    (:meth:`cvxnn.penalties.Nuclear.cvxpy`).

    Returns
    -------
    B : cvxpy.Variable of shape (d_a, p c)
    penalty : cvxpy.Expression
        ``1/2 sum_i (tr P_i + tr Q_i)``.
    constraints : list
        ``[[[P, B], [B^T, Q]] >> 0]``.
    aux : tuple of cvxpy.Variable
        ``(P, Q)``.
    """
    B = cp.Variable((d_a, p * c), name=name)
    term = Nuclear().cvxpy(B, c, name=name)
    return B, term.expression, term.constraints, term.auxiliary


def _check_formulation(formulation: str) -> str:
    if not isinstance(formulation, str) or formulation not in FORMULATIONS:
        raise InvalidParameterError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}.")
    return formulation


def program_penalty(blocks: np.ndarray, formulation: str = "nuclear") -> float:
    """Penalty of ``(d_a, p, c)`` blocks without ``lam``: ``sum_i ||B_i||_*`` (``"nuclear"``) or
    ``sum_i sum_k ||B_i[:, k]||_2`` (``"one_vs_all"``)."""
    _check_formulation(formulation)
    blocks = np.asarray(blocks, dtype=float)
    if blocks.ndim != 3:
        raise ShapeError(f"vector-output blocks have shape (d_a, p, c), got {blocks.shape}.")
    return get_penalty(formulation).value(blocks)


# ----------------------------------------------------------------------------- program
@dataclass(eq=False)
class VectorConvexProgram(ConvexProgram):
    """A :class:`~cvxnn.builders.ConvexProgram` for ``c`` outputs.

    The variables in :attr:`variables` are ``d_a x (p c)`` matrices (column ``i c + k`` is output
    ``k`` of block ``i``); :meth:`solve` returns blocks of shape ``(d_a, p, c)``.

    Attributes
    ----------
    n_outputs : int
        ``c``.
    formulation : {"nuclear", "one_vs_all"}
    auxiliary : dict of str -> tuple of cvxpy.Variable
        The epigraph variables ``(P, Q)`` of each nuclear-norm block matrix (``"nuclear"``;
        batched, ``p x d_a x d_a`` and ``p x c x c``); empty tuples for ``"one_vs_all"``.
    """

    n_outputs: int = 2
    formulation: str = "nuclear"
    auxiliary: dict[str, tuple] = field(default_factory=dict, repr=False)

    def default_solver_options(self, solver: str) -> dict[str, Any]:
        """Those of :meth:`ConvexProgram.default_solver_options`; with the ``cross_entropy`` loss and
        Clarabel (exponential cones, whose default 1e-8 gap tolerance Clarabel often misses by a few
        digits and then reports "almost solved") the gap tolerances also default to
        :data:`CROSS_ENTROPY_CLARABEL_OPTIONS` unless you pass any ``tol_*`` option. The batched
        PSD variable is 3-D, which CVXPY canonicalises with its SciPy backend (the default
        ``canon_backend``)."""
        options = super().default_solver_options(solver)
        if self.loss is not None and self.loss.name == "cross_entropy" and solver == "CLARABEL":
            options.update(CROSS_ENTROPY_CLARABEL_OPTIONS)
        return options

    def estimated_nonzeros(self) -> int:
        """Estimated nonzeros of the compiled problem (``n d p c`` for the fit, cone rows, PSD blocks)."""
        return estimate_nonzeros(n=self.X.shape[0], d_a=self.patterns.design_dim, p=self.patterns.n_patterns,
                                 c=self.n_outputs, activation=self.activation,
                                 nuclear=self.formulation == "nuclear",
                                 mask_ones=int(np.count_nonzero(self.patterns.mask)))

    def estimated_solver_bytes(self, solver: str) -> int:
        """Bytes an interior-point ``solver`` needs for the dense Hessian blocks of the nuclear
        norms' semidefinite cones (one of size ``d_a + c`` per block and sign,
        :func:`~cvxnn.backends.cvxpy_adapter.psd_solver_bytes`); 0 for ``"one_vs_all"``."""
        if self.formulation != "nuclear":
            return 0
        n_cones = len(get_activation(self.activation).blocks) * self.patterns.n_patterns
        return psd_solver_bytes(n_cones=n_cones, size=self.patterns.design_dim + self.n_outputs, solver=solver)

    def _point_objective(self) -> float:
        """The objective at the variables' current values with each nuclear norm evaluated at
        its block (not its epigraph ``(tr P + tr Q) / 2``, which an inaccurate solve can leave
        below the norm)."""
        value = super()._point_objective()
        if self.formulation != "nuclear" or self.weight_penalty is not None or not np.isfinite(value):
            return value
        slack = 0.0
        for name, aux in self.auxiliary.items():
            if not aux or self.variables[name].value is None or any(a.value is None for a in aux):
                continue
            P, Q = (np.asarray(a.value, dtype=float) for a in aux)
            epigraph = 0.5 * (np.trace(P, axis1=1, axis2=2).sum() + np.trace(Q, axis1=1, axis2=2).sum())
            blocks = self._weight_blocks({name: self.variables[name].value})[name]
            slack += get_penalty("nuclear").value(blocks) - epigraph
        scale = 1.0 if self.lam is None else float(self.lam.value)
        return value + scale * slack

    def _weight_blocks(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        d_a, p, c = self.patterns.design_dim, self.patterns.n_patterns, self.n_outputs
        return {k: np.asarray(v, dtype=float).reshape(d_a, p, c) for k, v in values.items()}

    def _weight_penalty_at(self, blocks: dict[str, np.ndarray]) -> float:
        # [V, W] is (d_a, 2p, c): the V blocks, then W
        return float(self.weight_penalty.value(np.concatenate(list(blocks.values()), axis=1)))

    def _solution_fields(self, blocks: dict[str, np.ndarray], cone_duals) -> dict[str, Any]:
        penalty = get_penalty(self.formulation)
        fields: dict[str, Any] = {
            "formulation": self.formulation,
            "program_penalty": sum(penalty.value(B) for B in blocks.values()),
        }
        if self.weight_penalty is not None:
            fields["program_penalty"] = self._weight_penalty_at(blocks)
        if get_activation(self.activation).constrained:
            fields["training_X"] = self.X  # lets the ReLU map test the cones K_i
        return fields


def _check_max_margin_targets(Y: np.ndarray) -> None:
    if np.any((Y != 0) & (Y != 1)) or np.any(Y.sum(axis=1) != 1):
        raise LabelError("the vector max_margin form needs one-hot targets (use cvxnn.vector.one_hot).")


def build_vector_program(
    X,
    Y,
    *,
    activation: str = "relu",
    loss: str | Loss = "squared",
    lam: float = 1.0,
    patterns: Patterns | None = None,
    form: str = "regularized",
    formulation: str = "nuclear",
    n_gates: int = 100,
    bias: bool = False,
    seed=None,
    penalty=None,
) -> VectorConvexProgram:
    """Build the vector-output convex program (``Y`` is ``n x c``) as a CVXPY problem.

    Parameters
    ----------
    X : array of shape (n, d)
    Y : array of shape (n, c), c >= 2
        Targets; one-hot rows for ``loss="cross_entropy"`` and ``form="max_margin"``
        (see :func:`one_hot`).
    activation : {"relu", "gated_relu"}
    loss : str or Loss
        ``"squared"`` (Frobenius, ``1/2 ||F - Y||_F^2``), ``"cross_entropy"`` (softmax),
        ``"huber"``, ``"absolute"`` (elementwise). Scalar-only losses (logistic, hinge) are refused.
    lam : float
        Initial value of the ``lam`` parameter (DPP: change it and solve again without recompiling).
    patterns : Patterns, optional
        Built on this ``X``; sampled with ``n_gates``, ``bias``, ``seed`` when omitted.
    n_gates, bias, seed
        The gates sampled when ``patterns`` is omitted (:func:`cvxnn.patterns.sample_patterns`).
    form : {"regularized", "min_norm", "max_margin"}
        Weight decay; minimum-norm interpolation (``F = Y``); multi-class hard margin
        (``F[j, y_j] - F[j, k] >= 1`` for ``k != y_j``, one-hot ``Y``). The last two have no loss
        and no ``lam``: ``loss`` and ``lam`` are still validated, and otherwise unused.
    formulation : {"nuclear", "one_vs_all"}
        Nuclear norm per block (exact for gated ReLU networks) or per-output column norms
        (independent scalar networks sharing the patterns).
    penalty : Penalty, optional
        ``"nuclear"`` or ``"columnwise"`` / ``"one_vs_all"`` (or their objects) select that
        formulation (the same program as ``formulation=``). Any other penalty replaces the block
        penalty by ``penalty.cvxpy`` of the whole ``d_a x (p c)`` weight matrix (``U``, or
        ``[V, W]`` for C-ReLU), e.g. ``"group_l2"`` (Frobenius norms of the blocks) or
        :class:`~cvxnn.feature_penalties.FeatureGroupL2` (docs/feature-sparsity.md); the program
        is then labelled ``formulation="one_vs_all"`` (no nuclear epigraph; the maps split blocks
        by columns): its ``objective_value`` is ``L + lam R`` and ``program_penalty`` is ``R``,
        while ``penalty()``, ``objective()`` and the maps use the column norms.

    Returns
    -------
    VectorConvexProgram
    """
    spec = get_activation(activation)  # raises InvalidParameterError naming the choices
    if form not in FORMS:
        raise InvalidParameterError(f"form must be one of {FORMS}, got {form!r}.")
    _check_formulation(formulation)
    if form != "regularized":  # unused by the constrained forms, still checked (as build_program does)
        get_loss(loss)
        check_lam(lam)
    weight_penalty = None if penalty is None else get_penalty(penalty)
    if type(weight_penalty) is Nuclear and formulation == "one_vs_all":
        # the default formulation is "nuclear", so only this contradiction can be told from a default
        raise InvalidParameterError("formulation='one_vs_all' and penalty='nuclear' name different programs "
                                    "(column norms against nuclear norms); pass one of them.")
    if type(weight_penalty) is Nuclear or type(weight_penalty) is Columnwise:
        # a block penalty of its own: the program of that formulation, labelled as such (so that
        # the solution's penalty(), objective() and maps follow the program that was solved)
        formulation = "nuclear" if type(weight_penalty) is Nuclear else "one_vs_all"
        weight_penalty = None
    if weight_penalty is not None:
        formulation = "one_vs_all"
    X = check_X(X)
    given = np.shape(Y)  # check_y squeezes (n, 1): the message names what the caller passed
    Y = check_y(Y, X.shape[0])
    if Y.ndim != 2:
        raise ShapeError(
            f"build_vector_program needs Y of shape (n, c) with c >= 2, got {given}; "
            "use cvxnn.build_program for scalar targets."
        )
    if patterns is None:
        patterns = sample_patterns(X, n_gates, seed=seed, bias=bias)
    elif not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    patterns.check_data(X)
    n, c = Y.shape
    Xa = patterns.design(X)
    M = patterns.mask.astype(float)
    d_a, p = patterns.design_dim, patterns.n_patterns
    Mc = np.repeat(M, c, axis=1)  # n x pc, column i c + k is D_i
    E = np.tile(np.eye(c), (p, 1))  # pc x c, sums the blocks per output

    def fit_of(B):
        return cp.multiply(Mc, Xa @ B) @ E

    def blocks_of(name):
        """A ``d_a x p c`` block matrix, its penalty, its constraints and its variable."""
        if weight_penalty is not None:  # penalised as a whole below
            return cp.Variable((d_a, p * c), name=name), 0.0, [], ()
        if formulation == "one_vs_all":
            B = cp.Variable((d_a, p * c), name=name)
            return B, Columnwise().cvxpy(B, c).expression, [], ()
        return _nuclear_blocks(d_a, p, c, name)

    parts = spec.cvxpy_blocks(blocks_of, Xa, patterns.mask, c)
    variables, auxiliary, cones, penalty = parts.variables, parts.auxiliary, parts.cones, parts.penalty
    prediction = fit_of(parts.weights)
    constraints: list = list(parts.constraints)
    if weight_penalty is not None:  # [V, W] (the V blocks, then W) or U
        blocks = list(variables.values())
        term = weight_penalty.cvxpy(cp.hstack(blocks) if len(blocks) > 1 else blocks[0], c)
        penalty = term.expression
        constraints += term.constraints

    lam_param = None
    loss_obj = None
    if form == "regularized":
        loss_obj = get_loss(loss)
        if not loss_obj.supports_vector:
            raise InvalidParameterError(
                f"the {loss_obj.name} loss is for scalar labels; for {c} outputs use 'squared' or "
                "'cross_entropy' (one-hot targets), or fit one output at a time."
            )
        Y = loss_obj.check_targets(Y)
        lam_param = cp.Parameter(nonneg=True, name="lam", value=check_lam(lam))
        objective = loss_obj.cvxpy(prediction, Y) + lam_param * penalty
    else:
        objective = penalty
        if form == "min_norm":
            constraints.append(prediction == Y)
        else:
            _check_max_margin_targets(Y)
            true_score = cp.reshape(cp.sum(cp.multiply(Y, prediction), axis=1), (n, 1), order="C")
            constraints.append(true_score @ np.ones((1, c)) - prediction >= 1.0 - Y)
    problem = cp.Problem(cp.Minimize(objective), constraints)
    logger.debug("built %s %s vector program (%s): d_a=%d, p=%d, c=%d, n=%d",
                 form, activation, formulation, d_a, p, c, n)
    return VectorConvexProgram(
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
        y=Y,
        n_outputs=c,
        formulation=formulation,
        auxiliary=auxiliary,
        weight_penalty=weight_penalty,
    )


# ----------------------------------------------------------------------------- ReLU map
# ReLUVectorFactors, relu_vector_factors and relu_vector_to_network live in cvxnn._readout (below
# cvxnn.solution, which needs them for ConvexModel.to_network) and are re-exported here.


# ----------------------------------------------------------------------------- report
@dataclass(frozen=True)
class ReLUVectorReport:
    """Side by side: C-ReLU vector program, its mapped ReLU network, and the gated lower bound.

    All three are objectives ``L + lam * penalty`` on the same data, ``lam``, loss and patterns.

    Attributes
    ----------
    convex_value : float
        Optimal value of the nuclear C-ReLU program (columnwise cone constraints). A lower bound on
        :attr:`network_objective`, but neither an upper nor a lower bound on the ReLU optimum ``p*``
        in general (``docs/math.md``, "Vector output").
    network_objective : float
        Objective of the mapped ReLU network: an upper bound on ``p*`` (achieved by a network).
    gated_lower_bound : float
        A lower bound on ``d*``, the optimal value of C-GReLU (nuclear) on the same patterns,
        itself a lower bound on the objective of every ReLU network whose neurons use these
        patterns: the gated solution's objective minus its certified duality gap (native
        solutions, and CVXPY solutions whose certificate was computed); without a gap, the
        objective of an ``"optimal"`` solution, or of another with an
        :class:`~cvxnn.errors.InaccurateSolutionWarning` (then not a certified bound).
    n_neurons : int
    n_svd_blocks, n_split_blocks : int
        Blocks mapped by their SVD factors / by the columnwise split.
    max_prediction_error : float
        ``max |f_network(X) - f_convex(X)|`` (the map is exact up to solver accuracy).
    statuses : tuple of str
        Solver statuses of the ReLU and gated solves.
    network : ReLUNetwork
        The mapped network.
    """

    convex_value: float
    network_objective: float
    gated_lower_bound: float
    n_neurons: int
    n_svd_blocks: int
    n_split_blocks: int
    max_prediction_error: float
    statuses: tuple[str, str]
    network: Any = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """``network_objective - gated_lower_bound`` (>= 0): how far the network can be from the
        best ReLU network on these patterns."""
        return self.network_objective - self.gated_lower_bound

    @property
    def relative_gap(self) -> float:
        """:attr:`gap` divided by ``max(|network_objective|, tiny)``."""
        return self.gap / max(abs(self.network_objective), np.finfo(float).tiny)

    def summary(self) -> str:
        """A small table of the three values and the gap."""
        return "\n".join([
            f"C-ReLU (nuclear) convex value    : {self.convex_value:.10g}",
            f"mapped ReLU network objective    : {self.network_objective:.10g}"
            f"  ({self.n_neurons} neurons; {self.n_svd_blocks} SVD blocks, {self.n_split_blocks} split)",
            f"gated ReLU lower bound d*        : {self.gated_lower_bound:.10g}",
            f"gap network - d*                 : {self.gap:.3e} (relative {self.relative_gap:.3e})",
            f"max |f_net - f_convex|           : {self.max_prediction_error:.3e}",
            f"statuses (relu, gated)           : {self.statuses}",
        ])


def _check_report_solution(sol, activation: str, patterns: Patterns, lam: float, c: int, loss: Loss) -> None:
    """A solution handed to :func:`relu_vector_report` solves the program it stands for: the
    nuclear program of ``activation`` on ``patterns`` at ``lam`` with ``c`` outputs and ``loss``
    (one at ``lam = 100`` was reported as a "lower bound" 8x above the network's objective; a
    squared-loss gated solution in a cross-entropy report gave a "lower bound" above the network)."""
    if not isinstance(sol, ConvexModel) or sol.activation != activation or not np.array_equal(
            sol.patterns.mask, patterns.mask):
        raise InvalidParameterError(f"the {activation} solution must be a {activation} solution on the same patterns.")
    blocks = sol.U if activation == "gated_relu" else sol.V
    if blocks.ndim != 3 or blocks.shape[2] != c:
        raise InvalidParameterError(f"the {activation} solution has {1 if blocks.ndim == 2 else blocks.shape[2]} "
                                    f"output(s); Y has {c}.")
    form = getattr(sol, "formulation", None)
    if form is not None and form != "nuclear":
        raise InvalidParameterError(f"the {activation} solution is of the {form!r} program; the report compares "
                                    "the nuclear programs (formulation='nuclear').")
    sol_lam = getattr(sol, "lam", None)
    if sol_lam is not None and not np.isclose(float(sol_lam), lam, rtol=1e-12, atol=0.0):
        raise InvalidParameterError(f"the {activation} solution was solved at lam={float(sol_lam):g}, not lam={lam:g}.")
    sol_loss = getattr(sol, "loss", None)
    if sol_loss is not None:
        if not _same_loss(get_loss(sol_loss), loss):
            raise InvalidParameterError(f"the {activation} solution was solved with {get_loss(sol_loss)!r}; "
                                        f"the report uses {loss!r}.")


def _reused_gated_gap(gated, X, Y, lam: float, loss: Loss) -> float | None:
    """Certified duality gap of a gated solution the caller passed, computed on the report's own
    ``X``, ``Y``, ``lam`` and loss (weak duality: ``objective - gap <= d*`` for any point), or None
    for a loss without a certificate. A solution's stored gap certifies the data it was solved
    on: one solved on other targets was reported as a "lower bound" twice the network's objective."""
    from .native.certificates import duality_gap  # lazy: the native package imports this module's users

    try:
        return float(duality_gap(X, Y, gated, lam, loss).gap)
    except InvalidParameterError:  # a non-smooth loss (absolute): no certificate
        return None


def relu_vector_report(
    X,
    Y,
    *,
    lam: float,
    loss: str | Loss = "squared",
    patterns: Patterns,
    solver: str | None = None,
    relu_solution: ConvexSolution | None = None,
    gated_solution: ConvexSolution | None = None,
    **solver_opts,
) -> ReLUVectorReport:
    """Solve (or reuse) the vector C-ReLU and C-GReLU programs on ``patterns`` and compare them.

    Parameters
    ----------
    X, Y : arrays
        Training data; ``Y`` is ``n x c``.
    lam : float
    loss : str or Loss
    patterns : Patterns
        Shared by both programs (the gated value is a lower bound only on the same patterns).
    solver : str, optional
        CVXPY solver (default Clarabel).
    relu_solution, gated_solution : ConvexSolution, optional
        Already computed solutions (nuclear formulation, same data, ``lam``, loss and patterns) to
        reuse. A reused gated solution is certified on ``X``, ``Y`` (its duality gap on these
        data, for losses with a certificate), so one solved on other targets cannot raise the bound.

    Returns
    -------
    ReLUVectorReport
    """
    lam = check_lam(lam)
    loss_obj = get_loss(loss)
    X = check_X(X)
    given_shape = np.shape(Y)  # check_y squeezes (n, 1): the message names what the caller passed
    Y = check_y(Y, X.shape[0])
    if Y.ndim != 2:
        raise ShapeError(f"relu_vector_report needs Y of shape (n, c) with c >= 2, got {given_shape}.")
    sols = {}
    for act, given in (("relu", relu_solution), ("gated_relu", gated_solution)):
        if given is None:
            prog = build_vector_program(X, Y, activation=act, loss=loss_obj, lam=lam, patterns=patterns)
            given = prog.solve(solver, **solver_opts)
        else:
            _check_report_solution(given, act, patterns, lam, Y.shape[1], loss_obj)
        sols[act] = given
    relu, gated = sols["relu"], sols["gated_relu"]
    factors = relu_vector_factors(relu, X)
    net = factors.network
    f_convex = relu.train_predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net_obj = net.objective(X, Y, lam, loss_obj)
    d_value = float(gated.objective(X, Y, lam, loss_obj))
    # a ConvexModel passed in (no solve behind it) has no gap, status or extra: it raised AttributeError
    gap = getattr(gated, "gap", None)
    if gap is None:
        gap = (getattr(gated, "extra", None) or {}).get("certified_gap")
    statuses = (getattr(relu, "status", "n/a"), getattr(gated, "status", "n/a"))
    if gated_solution is not None and lam > 0:  # reused: certify it on these data, not on its own
        certified = _reused_gated_gap(gated, X, Y, lam, loss_obj)
        gap = gap if certified is None else certified
    if gap is not None and np.isfinite(gap) and gap >= 0:
        # the primal minus its duality gap: a certified lower bound on d* (an "optimal" native
        # solution at tol=1e-2 is up to 1 % above d*, and its objective is no bound)
        d_value -= float(gap)
    elif statuses[1] != "optimal":
        warnings.warn(
            f"the gated solution has status {statuses[1]!r} and no certified gap: gated_lower_bound is "
            "its objective, not a certified lower bound.", InaccurateSolutionWarning, stacklevel=2)
    return ReLUVectorReport(
        convex_value=float(relu.objective(X, Y, lam, loss_obj)),
        network_objective=float(net_obj),
        gated_lower_bound=d_value,
        n_neurons=net.n_neurons,
        n_svd_blocks=int(factors.svd_blocks.sum()),
        n_split_blocks=int(factors.split_blocks.sum()),
        max_prediction_error=float(np.max(np.abs(net.predict(X) - f_convex))),
        statuses=statuses,
        network=net,
        extra={"solver_values": (getattr(relu, "objective_value", None), getattr(gated, "objective_value", None))},
    )
