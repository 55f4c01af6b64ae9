"""CVXPY builders: a network spec and data become a real :class:`cvxpy.Problem`.

The programs (docs/math.md, "The convex programs") are written in vectorised form, one matrix
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

import cvxpy as cp
import numpy as np

from ._validation import check_lam, check_X, check_y
from .activations import get_activation
from .backends.cvxpy_adapter import check_cvxpy_solver as _check_solver  # noqa: F401 - kept name
from .errors import InvalidParameterError, LabelError
from .losses import Loss, get_loss
from .patterns import Patterns, sample_patterns
from .penalties import Columnwise, GroupL2, Nuclear, Penalty, get_penalty
from .program import DEFAULT_CANON_BACKEND, DEFAULT_SCS_OPTIONS, FORMS, ConvexProgram
from .vector import _check_formulation, build_vector_program

__all__ = ["DEFAULT_CANON_BACKEND", "DEFAULT_SCS_OPTIONS", "FORMS", "ConvexProgram", "build_program",
           "check_targets"]

logger = logging.getLogger(__name__)

#: Block penalties that are the group lasso ``sum_i ||b_i||_2`` of docs/math.md for scalar output.
_SCALAR_GROUP_LASSO = (GroupL2, Nuclear, Columnwise)

#: Clarabel runs with its own defaults (feasibility tolerance 1e-8). Measured on small
#: C-ReLU programs: cone violations of that order make the mapped network's objective differ
#: from the convex one by up to ~2e-8 relative; pass ``tol_feas=1e-10`` for tighter maps
#: (tighter tolerances end more often in "almost solved", reported as optimal_inaccurate).


def check_targets(y: np.ndarray, loss) -> np.ndarray:
    """Validate (already shape-checked) targets against a loss.

    Parameters
    ----------
    y : ndarray
        Output of :func:`check_y`.
    loss : str or Loss
        Resolved with :func:`cvxnn.losses.get_loss`.

    Returns
    -------
    ndarray
        The targets as the loss wants them (never the caller's array).

    Raises
    ------
    LabelError
        E.g. logistic / hinge loss with labels outside {-1, +1} or a single class, non-one-hot
        cross-entropy targets.
    InvalidParameterError
        Vector targets for a scalar-only loss (docs/vector.md).
    """
    loss = get_loss(loss)
    if y.ndim == 2 and not loss.supports_vector:
        raise InvalidParameterError(
            f"the {loss.name} loss supports scalar targets only, got y of shape {y.shape}; "
            "use cross_entropy (one-hot) or squared loss for vector outputs."
        )
    return loss.check_targets(np.array(y, copy=True))


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
    formulation: str = "nuclear",
    penalty: str | Penalty | None = None,
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
        The last two have no loss and no ``lam``: ``loss`` and ``lam`` are still validated
        (a misspelt name or a negative value raises), and otherwise unused.
    formulation : {"nuclear", "one_vs_all"}
        Vector output only: the penalty of the program (:func:`cvxnn.vector.build_vector_program`).
        The name is validated for scalar targets too, where the two programs coincide.
    penalty : str or Penalty, optional
        Replaces the group penalty by ``penalty.cvxpy`` of the weight matrix (``U``, or ``[V, W]``
        for C-ReLU; ``d_a x (p c)`` for vector output, see :func:`cvxnn.vector.build_vector_program`),
        e.g. :class:`~cvxnn.feature_penalties.FeatureGroupL2` (docs/feature-sparsity.md).
        Default: the group lasso of docs/math.md. For scalar targets ``"group_l2"``, ``"nuclear"``
        and ``"columnwise"`` (``"one_vs_all"``) are that group lasso (a block is one column): the
        program of the default, with ``program_penalty`` reported.

    Returns
    -------
    ConvexProgram
    """
    if not isinstance(activation, str) or activation not in ("relu", "gated_relu"):
        raise InvalidParameterError(f"activation must be 'relu' or 'gated_relu', got {activation!r}.")
    if not isinstance(form, str) or form not in FORMS:
        raise InvalidParameterError(f"form must be one of {FORMS}, got {form!r}.")
    # options that a form or an output count does not use are still checked: a misspelt
    # name or a negative lam was accepted silently (scalar formulation="foo", min_norm loss="foo")
    _check_formulation(formulation)
    if form != "regularized":
        get_loss(loss)
        check_lam(lam)
    X = check_X(X)
    y = check_y(y, X.shape[0])
    if patterns is None:
        patterns = sample_patterns(X, n_gates, seed=seed, bias=bias)
    elif not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    patterns.check_data(X)
    pen_obj = None if penalty is None else get_penalty(penalty)
    if y.ndim == 2:  # vector outputs: nuclear-norm or one-vs-all programs, or a weight penalty
        return build_vector_program(X, y, activation=activation, loss=loss, lam=lam,
                                    patterns=patterns, form=form, formulation=formulation, penalty=pen_obj)
    Xa = patterns.design(X)
    M = patterns.mask.astype(float)
    d_a, p = patterns.design_dim, patterns.n_patterns

    group, spec = GroupL2(), get_activation(activation)

    def make_block(name):
        B = cp.Variable((d_a, p), name=name)
        return B, group.cvxpy(B).expression, [], ()

    parts = spec.cvxpy_blocks(make_block, Xa, patterns.mask)
    variables, cones, penalty = parts.variables, parts.cones, parts.penalty
    constraints = list(parts.constraints)
    prediction = _masked_prediction(Xa, M, parts.weights)
    blocks = list(variables.values())
    if pen_obj is not None and type(pen_obj) not in _SCALAR_GROUP_LASSO:
        # a penalty of the whole weight matrix [V, W] or U (it may couple V and W)
        term = pen_obj.cvxpy(cp.hstack(blocks) if len(blocks) > 1 else blocks[0])
        penalty = term.expression
        constraints += term.constraints
    # else: with one output a block is a column, and its Frobenius, nuclear and column norms are
    # all its 2-norm: the group lasso above (second-order cones). Nuclear's own CVXPY form is a
    # semidefinite epigraph per block: measured 40x slower in Clarabel, and ending inaccurate.
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
        weight_penalty=pen_obj,
    )
