"""``lam_max``: the smallest ``lam`` with the zero model optimal (docs/math.md, "lam_max and
regularisation paths"). The public home is :func:`cvxnn.path.lam_max`; the implementation lives
here, below the solver registry, so that the native solvers can use it without an import cycle
(``cvxnn.path`` imports :func:`cvxnn.solve`, whose registry imports the native solvers).

See :mod:`cvxnn.path` for the formulas.
"""

from __future__ import annotations

import logging

import cvxpy as cp
import numpy as np
from scipy.optimize import nnls

from ._nnls import nnls_batched_admm
from ._validation import check_X, check_y
from .activations import get_activation
from .backends.cvxpy_adapter import run_problem
from .errors import InvalidParameterError
from .losses import Loss, get_loss
from .operators import adjoint
from .patterns import Patterns
from .penalties import get_penalty

__all__ = ["lam_max"]

logger = logging.getLogger(__name__)

#: Vector-output penalties (``formulation``).
_FORMULATIONS = ("nuclear", "one_vs_all")


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


def _nnls_cone_norm(Xa: np.ndarray, signs: np.ndarray, g: np.ndarray) -> float:
    """``min_{rho >= 0} ||g + Xt^T rho||_2`` with ``Xt = diag(signs) X_a`` (one NNLS)."""
    A = (signs[:, None] * Xa).T
    _, res = nnls(A, -g, maxiter=50 * (Xa.shape[0] + 1))
    return float(res)


#: Exact NNLS solves of the largest upper bounds that :func:`_relu_lam_max_columns` runs before
#: the batched ADMM (a good current maximum lets the ADMM drop most columns).
LAM_MAX_SEED_SOLVES = 4
#: ADMM iterations that bound the remaining columns (float32 search; float64 bounds).
LAM_MAX_ADMM_ITERATIONS = 200


def _relu_lam_max_columns(Xa: np.ndarray, S: np.ndarray, C: np.ndarray) -> float:
    """C-ReLU ``lam_max`` with 2-norm blocks, one column of correlations per block (``C`` is
    ``d_a x q``, ``S`` the signs of each column's pattern, ``n x q``).

    Branch and bound over the ``2 q`` problems ``min_{rho >= 0} ||s c_i + Xt_i^T rho||`` (each at
    most ``||c_i||``, exactly that when ``Xt_i (s c_i) >= 0``): exact NNLS for the few largest
    upper bounds, then one batched ADMM (:func:`cvxnn._nnls.nnls_batched_admm`) lowers the
    bounds of the rest (any ``rho >= 0`` gives one, evaluated in float64) and drops those below
    the current maximum, then exact NNLS in decreasing order of the bounds until the next bound
    is below the maximum. On 10-class digits (2000 problems, ``n = 1257``, ``d_a = 65``) this
    replaced 2000 NNLS solves (20.7 s) by a few dozen.
    """
    norms = np.linalg.norm(C, axis=0)
    G = S * (Xa @ C)  # Xt_i c_i for every column
    tiny = -1e-14 * np.abs(G).max(initial=0.0)  # relative: the program is homogeneous in (X, y)
    best = 0.0
    cols, sgn = [], []
    for s in (1.0, -1.0):
        trivially = (s * G).min(axis=0, initial=0.0) >= tiny
        best = max(best, float(norms[trivially].max(initial=0.0)))
        rest = np.flatnonzero(~trivially)
        cols.append(rest)
        sgn.append(np.full(rest.size, s))
    cols, sgn = np.concatenate(cols), np.concatenate(sgn)
    ub = norms[cols]
    keep = ub > best
    cols, sgn, ub = cols[keep], sgn[keep], ub[keep]
    n_nnls = 0

    def exact(k: int) -> float:
        nonlocal n_nnls
        n_nnls += 1
        return _nnls_cone_norm(Xa, S[:, cols[k]], sgn[k] * C[:, cols[k]])

    order = np.argsort(-ub)
    seeded = order[:LAM_MAX_SEED_SOLVES]
    for k in seeded:
        best = max(best, exact(int(k)))
    rest = order[LAM_MAX_SEED_SOLVES:]
    rest = rest[ub[rest] > best]
    if rest.size > LAM_MAX_SEED_SOLVES:
        _, res = nnls_batched_admm(Xa, S[:, cols[rest]], -sgn[rest] * C[:, cols[rest]],
                                   np.zeros((Xa.shape[0], rest.size)), iterations=LAM_MAX_ADMM_ITERATIONS,
                                   target=best, rho_scale=10.0, relax=1.6, check_every=10, dtype=np.float32)
        ub[rest] = np.minimum(ub[rest], res)
    for k in rest[np.argsort(-ub[rest])]:
        if ub[k] <= best:
            break
        best = max(best, exact(int(k)))
    logger.debug("lam_max (relu): %d NNLS solves for %d columns", n_nnls, C.shape[1])
    return best


def _relu_lam_max_nuclear(Xa: np.ndarray, S: np.ndarray, C: np.ndarray) -> float:
    """C-ReLU vector-output ``lam_max`` with nuclear blocks: ``max_{i,s} min_{rho >= 0}
    ||s C_i + Xt_i^T rho||_2`` (spectral norm), a small CVXPY program per block and sign, solved
    only where the upper bound ``||C_i||_2`` (``rho = 0``) exceeds the current maximum."""
    n, d_a = Xa.shape
    _, p, c = C.shape
    upper = np.linalg.norm(np.transpose(C, (1, 0, 2)), ord=2, axis=(1, 2))
    rho = cp.Variable((n, c), nonneg=True)
    signs = cp.Parameter(n)
    target = cp.Parameter((d_a, c))
    # Xt_i^T rho = X_a^T diag(s_i) rho
    prob = cp.Problem(cp.Minimize(cp.sigma_max(target + Xa.T @ cp.multiply(cp.reshape(signs, (n, 1), order="C")
                                                                            @ np.ones((1, c)), rho))))
    best = 0.0
    for i in np.argsort(-upper):
        if upper[i] <= best:
            break
        for s in (1.0, -1.0):
            signs.value = S[:, i]
            target.value = s * C[:, i, :]
            run_problem(prob, "CLARABEL", what="the lam_max program of a vector C-ReLU block", warn=False,
                        allow=("optimal", "optimal_inaccurate"))
            best = max(best, float(prob.value))
    return best


def lam_max(X, y, patterns: Patterns, activation: str = "relu", loss: str | Loss = "squared",
            *, formulation: str | None = None) -> float:
    """The smallest ``lam`` at which the zero model is optimal (see the module docstring).

    Parameters
    ----------
    X, y : arrays
        Training data (``y`` 2-D for vector output).
    patterns : Patterns
        Patterns built on ``X``.
    activation : {"relu", "gated_relu"}
    loss : str or Loss
        A loss differentiable at the zero prediction for these targets
        (:meth:`~cvxnn.losses.Loss.grad_at_zero`): squared, logistic, huber, cross_entropy,
        hinge (labels ``+-1``: gradient ``-y`` at ``0``), absolute when no target is ``0``
        (gradient ``-sign(y)``). Zero is optimal iff ``0`` is in the subdifferential of the
        objective at ``0``; where the loss is differentiable at ``0`` its gradient is the only
        subgradient, so the formulas of :mod:`cvxnn.path` are exact for these losses too.
    formulation : {"nuclear", "one_vs_all"}, optional
        Vector output only: the penalty of the program (nuclear norms, or column norms). Default:
        the activation's default program, as in :func:`cvxnn.solve` (one-vs-all for C-ReLU,
        nuclear for C-GReLU).

    Returns
    -------
    float
        For every ``lam >= lam_max`` the zero model is optimal, for every ``lam < lam_max`` it is not.

    Raises
    ------
    InvalidParameterError
        For a loss not differentiable at the zero prediction (the absolute loss with a target
        ``0``, or a loss without :meth:`~cvxnn.losses.Loss.grad_at_zero`), an unknown activation
        or formulation.
    LabelError
        Targets the loss does not accept (e.g. hinge labels other than ``+-1``).
    """
    X, y, loss = _prepare(X, y, patterns, activation, loss)
    try:
        g0 = loss.grad_at_zero(y)
    except InvalidParameterError as exc:
        raise InvalidParameterError(
            f"lam_max needs a loss differentiable at the zero model (its gradient there decides whether "
            f"zero is optimal): {exc} Pass a grid of lam values yourself.") from None
    if formulation is None:
        formulation = get_activation(activation).vector_formulation
    if not isinstance(formulation, str) or formulation not in _FORMULATIONS:
        raise InvalidParameterError(f"formulation must be one of {_FORMULATIONS}, got {formulation!r}.")
    Xa = patterns.design(X)
    mask = patterns.mask
    r0 = -g0
    C = adjoint(Xa, mask, r0)  # (d_a, p) or (d_a, p, c): the correlations X_a^T D_i r0
    penalty = get_penalty("group_l2" if y.ndim == 1 else formulation)
    if not get_activation(activation).constrained:  # lam_max of the group lasso: the largest dual norm
        return float(penalty.dual_norm(C).max(initial=0.0))
    S = patterns.signs()
    if y.ndim == 1:
        return _relu_lam_max_columns(Xa, S, C)
    d_a, p, c = C.shape
    if formulation == "one_vs_all":
        return _relu_lam_max_columns(Xa, np.repeat(S, c, axis=1), C.reshape(d_a, p * c))
    return _relu_lam_max_nuclear(Xa, S, C)
