"""Optimality certificates for the convex programs (docs/math.md, "Solvers and certificates", "Optimality conditions").

* :func:`duality_gap` -- a certified upper bound on the suboptimality of any point.
  For C-GReLU (a group lasso over the implicit design) the dual point is the loss gradient
  at the fit, rescaled into the dual feasible set (``docs/math.md``, "Solvers and certificates";
  the code calls this dual point ``theta``, ``docs/math.md`` writes ``nu``)::

      nu = s grad h(z),   0 <= s <= lam / max_i ||(D_i X)^T grad h(z)||_*,   D(nu) = -h*(nu)

  with the ``s`` that maximises ``D`` (:meth:`~cvxnn.losses.Loss.best_dual_scale`; ``s = 1`` at
  the optimum) (``||.||_*`` is the 2-norm, or the spectral norm for vector output). For C-ReLU the dual
  also carries cone multipliers ``rho_i >= 0`` (e.g. the augmented-Lagrangian multipliers):
  ``(nu, rho)`` is feasible when ``||X^T D_i nu - Xt_i^T rho^v_i|| <= lam`` and
  ``||X^T D_i nu + Xt_i^T rho^w_i|| <= lam``, and both are scaled together. By weak duality
  ``P(x) - D <= gap`` bounds ``P(x) - p*`` for every ``x`` (for C-ReLU, for cone-feasible ``x``;
  an infeasible ``x`` is reported with its cone violation).
* :func:`min_norm_subgradient` -- ``dist(0, grad h + lam * subdiff penalty)`` for C-GReLU
  (scalar: group lasso; vector: nuclear norm).
* :func:`lam_max_gated` -- the smallest ``lam`` for which ``U = 0`` solves C-GReLU:
  ``max_i ||X^T D_i grad h(0)||_*`` (``max_i ||X^T D_i y||`` for squared loss).

All computations here run in float64 on the matrix-free operator.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from .._validation import check_lam, check_X, check_y
from ..errors import InaccurateSolutionWarning, InvalidParameterError, NonFiniteError, ShapeError
from ..feature_penalties import GroupSparsePenalty
from ..losses import Loss, get_loss
from ..operators import ImplicitDesign
from ..patterns import Patterns
from ..penalties import Columnwise, GroupL2, Nuclear
from ..solution import ConvexModel
from ._losses import SmoothKernel, make_kernel
from .prox import BlockPenalty, penalty_norms

logger = logging.getLogger(__name__)

#: A CVXPY solution with status ``"optimal"`` whose certified relative duality gap exceeds this
#: gets an :class:`~cvxnn.errors.InaccurateSolutionWarning` (:func:`attach_certificate`). The
#: certificate of an interior point can be loose by orders of magnitude (up to about ``1e-3``
#: measured on solutions within ``3e-5`` of the optimum), so the threshold sits well above that;
#: Clarabel's "optimal" on separable logistic data (30 rows, 10 gates, C-GReLU) at ``lam = 1e-6``
#: and ``1e-10`` certified ``0.16`` and ``0.60``, the latter at 1.7 times the optimal objective.
CERTIFIED_WARN_RTOL = 1e-2
#: A C-ReLU point whose cone violation exceeds this fraction of its largest cone row
#: ``max |X_a theta_i|`` is outside its cones: :func:`solution_gap` gives it no gap, since its
#: objective can lie below the optimum (an SCS run stopped by ``max_iter=15`` had an objective
#: 44 % below it, violation 0.34, and a "certified" gap of 0.0 after the clip at zero).
#: Solvers' optimal points measured ``1e-8`` of that scale at most.
INFEASIBLE_RTOL = 1e-6

__all__ = ["GapCertificate", "attach_certificate", "duality_gap", "feature_relu_certificate",
           "feature_sparse_certificate", "lam_max_gated", "min_norm_subgradient", "solution_gap"]


@dataclass(frozen=True)
class GapCertificate:
    """A duality-gap certificate.

    Attributes
    ----------
    primal : float
        Objective ``P(x)`` of the point (the convention of docs/math.md).
    dual : float
        Dual value ``D <= p*`` of the rescaled dual point.
    gap : float
        ``P(x) - D`` (an upper bound on ``P(x) - p*``).
    rel_gap : float
        ``gap / |P(x)|``.
    scale : float
        Factor in ``(0, 1]`` that made the dual point feasible.
    max_violation : float
        Largest cone violation of ``x`` (0 for C-GReLU).
    """

    primal: float
    dual: float
    gap: float
    rel_gap: float
    scale: float
    max_violation: float = 0.0


def _as3(B: np.ndarray) -> np.ndarray:
    return B[:, :, None] if B.ndim == 2 else B


def _setup(X, y, patterns: Patterns, loss):
    if not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    X = check_X(X)
    y = check_y(y, X.shape[0])
    patterns.check_data(X)
    loss_obj = get_loss(loss)
    y = loss_obj.check_targets(y)
    y2 = y[:, None] if y.ndim == 1 else y
    kernel = make_kernel(loss_obj, y2, np.float64)
    Xa = patterns.design(X)
    op = ImplicitDesign(Xa, patterns.mask, n_outputs=y2.shape[1], dtype=np.float64)
    return Xa, y2, kernel, op


def gated_certificate(op: ImplicitDesign, kernel: SmoothKernel, lam: float, U3: np.ndarray, *,
                      penalty: str = "nuclear") -> GapCertificate:
    """Gap certificate of C-GReLU blocks ``U3`` (``d x p x c``) on an existing float64 operator
    (``penalty`` as in :class:`~cvxnn.native.prox.BlockPenalty`)."""
    pen = BlockPenalty(penalty)
    U3 = np.asarray(U3, dtype=op.dtype)
    z = op.forward(U3)
    P = kernel.value(z) + lam * float(pen.norms(U3).sum())
    theta = kernel.grad(z)
    dn = float(pen.dual_norms(op.adjoint(theta)).max(initial=0.0))
    D, s = _scaled_dual(kernel, theta, dn, lam)
    gap = max(P - D, 0.0)
    return GapCertificate(primal=P, dual=D, gap=gap, rel_gap=gap / max(abs(P), np.finfo(float).tiny),
                          scale=s)


def relu_certificate(
    Xa: np.ndarray,
    mask: np.ndarray,
    kernel: SmoothKernel,
    lam: float,
    V3: np.ndarray,
    W3: np.ndarray,
    rho: np.ndarray | None,
    *,
    penalty: str = "nuclear",
) -> GapCertificate:
    """Gap certificate of C-ReLU blocks with cone multipliers ``rho`` (``n x 2p x c``, >= 0,
    the ``v`` multipliers first) or none (``rho = 0``). Dense ``n x 2p x c`` work, float64.

    ``penalty`` is ``"nuclear"`` (nuclear norms of the ``d x c`` blocks) or ``"columnwise"``
    (the sum of their column norms, the one-vs-all program); both are the group lasso for
    ``c == 1``."""
    Xa = np.asarray(Xa, dtype=np.float64)
    V3 = np.asarray(V3, dtype=np.float64)
    W3 = np.asarray(W3, dtype=np.float64)
    n, d = Xa.shape
    p, c = V3.shape[1], V3.shape[2]
    M = mask.astype(np.float64)
    S = 2.0 * M - 1.0
    ZV = (Xa @ V3.reshape(d, p * c)).reshape(n, p, c)
    ZW = (Xa @ W3.reshape(d, p * c)).reshape(n, p, c)
    z = np.einsum("npc,np->nc", ZV - ZW, M)
    pen = BlockPenalty(penalty)
    pen_norms, dual_norm = pen.norms, pen.dual_norms
    P = kernel.value(z) + lam * float(pen_norms(V3).sum() + pen_norms(W3).sum())
    viol = float(max(0.0, -min((S[:, :, None] * ZV).min(initial=0.0), (S[:, :, None] * ZW).min(initial=0.0))))
    theta = kernel.grad(z)
    base = M[:, :, None] * theta[:, None, :]  # n x p x c
    if rho is None:
        GV = base
        GW = -base
    else:
        rho = np.maximum(np.asarray(rho, dtype=np.float64), 0.0)
        if rho.shape != (n, 2 * p, c):
            raise ShapeError(f"multipliers must have shape {(n, 2 * p, c)}, got {rho.shape}.")
        GV = base - S[:, :, None] * rho[:, :p]
        GW = -base - S[:, :, None] * rho[:, p:]
    gV = (Xa.T @ GV.reshape(n, p * c)).reshape(d, p, c)
    gW = (Xa.T @ GW.reshape(n, p * c)).reshape(d, p, c)
    dn = float(max(dual_norm(gV).max(initial=0.0), dual_norm(gW).max(initial=0.0)))
    D, s = _scaled_dual(kernel, theta, dn, lam)  # (theta, rho) scaled together; D reads theta only
    gap = max(P - D, 0.0)
    return GapCertificate(primal=P, dual=D, gap=gap, rel_gap=gap / max(abs(P), np.finfo(float).tiny),
                          scale=s, max_violation=viol)


def duality_gap(
    X,
    y,
    model: ConvexModel,
    lam: float,
    loss: str | Loss = "squared",
    *,
    multipliers: np.ndarray | None = None,
    penalty=None,
) -> GapCertificate:
    """Certified duality gap of a C-GReLU or C-ReLU point (docs/math.md, "Solvers and certificates").

    Parameters
    ----------
    X : array of shape (n, d)
        The training data of ``model.patterns``.
    y : array of shape (n,) or (n, c)
    model : ConvexModel
        Any point (a :class:`~cvxnn.solution.ConvexSolution` of any backend works).
    lam : float
        Regularisation strength (> 0).
    loss : str or Loss
        ``"squared"``, ``"logistic"`` or ``"cross_entropy"`` (smooth losses with a conjugate).
    multipliers : ndarray of shape (n, 2p) or (n, 2p, c), optional
        C-ReLU only: cone multipliers ``rho >= 0`` (``v`` blocks first). Defaults to the
        solution's :attr:`~cvxnn.solution.ConvexSolution.multipliers` when present, else zero
        (a valid but looser bound: the C-GReLU dual).
    penalty : FeatureGroupL2 or SparseGroupL2, optional
        The program's feature-sparse penalty (:mod:`cvxnn.feature_sparsity`); default the
        group norm of the blocks (nuclear or column norms for vector output, as
        ``model.formulation``). A solution of a feature-sparse program without ``penalty`` is
        refused: its certificate is that of another program.

    Returns
    -------
    GapCertificate
        ``gap >= P(model) - p*`` whenever the model is cone feasible.
    """
    if not isinstance(model, ConvexModel):
        raise InvalidParameterError(f"model must be a cvxnn ConvexModel, got {type(model).__name__}.")
    lam = check_lam(lam, allow_zero=False)
    Xa, y2, kernel, op = _setup(X, y, model.patterns, loss)
    if model.n_outputs != y2.shape[1]:
        raise ShapeError(f"the model has {model.n_outputs} outputs but y has {y2.shape[1]}.")
    if penalty is not None:
        return _feature_gap(Xa, op, kernel, lam, model, multipliers, penalty)
    used = (getattr(model, "extra", None) or {}).get("penalty")
    if isinstance(used, str) and used.startswith(("FeatureGroupL2", "SparseGroupL2")):
        raise InvalidParameterError(
            f"this solution is of the feature-sparse program ({used}); pass that penalty "
            "(duality_gap(..., penalty=...)) to certify it, not the group lasso of its blocks.")
    penalty = "columnwise" if getattr(model, "formulation", None) == "one_vs_all" else "nuclear"
    if not model.spec.constrained:  # no cone multipliers: the gap of the group lasso
        return gated_certificate(op, kernel, lam, _as3(model.effective_weights), penalty=penalty)
    if multipliers is None:
        multipliers = getattr(model, "multipliers", None)
    if multipliers is not None:
        multipliers = np.asarray(multipliers, dtype=np.float64)
        if not np.all(np.isfinite(multipliers)):  # NaN survives the clip at 0 and voids the bound
            raise NonFiniteError("multipliers contain NaN or infinity.")
        if multipliers.ndim == 2:
            multipliers = multipliers[:, :, None]
    return relu_certificate(Xa, model.patterns.mask, kernel, lam, _as3(model.V), _as3(model.W), multipliers,
                            penalty=penalty)


def _scaled_dual(kernel: SmoothKernel, theta: np.ndarray, dn: float, lam: float) -> tuple[float, float]:
    """``(-h*(s theta), s)`` with the best ``s`` in ``[0, lam / dn]``."""
    s_max = np.inf if dn == 0.0 else lam / dn
    s = kernel.best_dual_scale(theta, s_max)
    return kernel.dual_value(s * theta), s


def feature_sparse_certificate(op: ImplicitDesign, kernel: SmoothKernel, lam: float, U: np.ndarray,
                               penalty: GroupSparsePenalty) -> GapCertificate:
    """Duality-gap certificate of a C-GReLU point ``U`` (``d_a x p`` or ``d_a x p x c``) under
    ``lam * R``: ``nu = s grad h(z)`` with the best ``s <= lam / R*(A^T grad h(z))``."""
    U3 = np.asarray(U, dtype=np.float64).reshape(op.d, op.p, op.c)
    z = op.forward(U3)
    P = kernel.value(z) + lam * penalty.value(U3)
    theta = kernel.grad(z)
    D, s = _scaled_dual(kernel, theta, penalty.dual_norm_value(op.adjoint(theta)), lam)
    gap = max(P - D, 0.0)
    return GapCertificate(primal=P, dual=D, gap=gap, rel_gap=gap / max(abs(P), np.finfo(float).tiny), scale=s)


def feature_relu_certificate(Xa: np.ndarray, mask: np.ndarray, kernel: SmoothKernel, lam: float, T: np.ndarray,
                             rho: np.ndarray | None, penalty: GroupSparsePenalty) -> GapCertificate:
    """Gap certificate of a C-ReLU point ``T = [V, W]`` (``d_a x 2p x c``, the ``V`` blocks first)
    with cone multipliers ``rho`` (``n x 2p x c``, clipped at 0; None: zero), float64.

    The dual constraint is ``R*(G) <= lam`` with ``G`` the Lagrangian's gradient (module
    docstring); ``max_violation`` is the largest cone violation ``max(0, -min Xt_i t_i)``.
    """
    Xa = np.asarray(Xa, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    n, d = Xa.shape
    P2, c = T.shape[1], T.shape[2]
    M = mask.astype(np.float64)
    M2 = np.concatenate([M, -M], axis=1)
    S2 = np.concatenate([2.0 * M - 1.0, 2.0 * M - 1.0], axis=1)[:, :, None]
    Z = (Xa @ T.reshape(d, P2 * c)).reshape(n, P2, c)
    z = np.einsum("npc,np->nc", Z, M2)
    P = kernel.value(z) + lam * penalty.value(T)
    viol = max(0.0, -float((S2 * Z).min(initial=0.0)))
    theta = kernel.grad(z)
    G = M2[:, :, None] * theta[:, None, :]
    if rho is not None:
        rho = np.asarray(rho, dtype=np.float64).reshape(n, P2, c)
        G -= S2 * np.maximum(rho, 0.0)
    g = (Xa.T @ G.reshape(n, P2 * c)).reshape(d, P2, c)
    D, s = _scaled_dual(kernel, theta, penalty.dual_norm_value(g), lam)
    gap = max(P - D, 0.0)
    return GapCertificate(primal=P, dual=D, gap=gap, rel_gap=gap / max(abs(P), np.finfo(float).tiny), scale=s,
                          max_violation=viol)


def _feature_gap(Xa, op, kernel, lam: float, model: ConvexModel, multipliers, penalty) -> GapCertificate:
    """:func:`duality_gap` under a feature-sparse penalty (the certificates of
    :mod:`cvxnn.native.feature_sparse`)."""
    if not isinstance(penalty, GroupSparsePenalty):
        raise InvalidParameterError("penalty must be a feature-sparse penalty (FeatureGroupL2 or SparseGroupL2), "
                                    f"got {type(penalty).__name__}.")
    if not model.spec.constrained:
        return feature_sparse_certificate(op, kernel, lam, _as3(model.effective_weights), penalty)
    if multipliers is None:
        multipliers = getattr(model, "multipliers", None)
    if multipliers is not None and not np.all(np.isfinite(multipliers)):
        raise NonFiniteError("multipliers contain NaN or infinity.")
    T = np.concatenate([_as3(model.V), _as3(model.W)], axis=1)
    return feature_relu_certificate(Xa, model.patterns.mask, kernel, lam, T, multipliers, penalty)


def min_norm_subgradient(X, y, model: ConvexModel, lam: float, loss: str | Loss = "squared") -> float:
    """Norm of the minimum-norm subgradient of the C-GReLU objective at ``model``.

    Blockwise, with ``g_i = (D_i X)^T grad h(z)``: for ``u_i != 0`` (scalar)
    ``||g_i + lam u_i / ||u_i||||``, for ``u_i = 0`` ``max(0, ||g_i|| - lam)``; for vector
    output, with ``U_i = P S Q^T`` (rank ``r``), the distance of ``-g_i`` to
    ``lam (P Q^T + {W : P^T W = 0, W Q = 0, ||W||_2 <= 1})`` (nuclear norm), or the scalar
    formula on each column for a one-vs-all model (``model.formulation == "one_vs_all"``: the
    sum of column norms). Returns the Frobenius norm over all blocks; zero exactly at an
    optimum.

    Parameters
    ----------
    X, y, model, lam, loss
        As in :func:`duality_gap`; ``model`` must be a C-GReLU model.

    Returns
    -------
    float
    """
    if not isinstance(model, ConvexModel) or model.spec.constrained:
        raise InvalidParameterError("min_norm_subgradient needs a C-GReLU (gated_relu) ConvexModel: the "
                                    "subgradient of a cone-constrained program needs its multipliers.")
    lam = check_lam(lam, allow_zero=False)
    _, y2, kernel, op = _setup(X, y, model.patterns, loss)
    if model.n_outputs != y2.shape[1]:
        raise ShapeError(f"the model has {model.n_outputs} outputs but y has {y2.shape[1]}.")
    U3 = _as3(np.asarray(model.U, dtype=np.float64))
    G = op.adjoint(kernel.grad(op.forward(U3)))  # d x p x c
    if U3.shape[2] == 1 or getattr(model, "formulation", None) == "one_vs_all":
        # scalar blocks, or the columns of the blocks (one-vs-all: a group norm per column)
        u, g = U3.reshape(U3.shape[0], -1), G.reshape(G.shape[0], -1)
        nu = np.linalg.norm(u, axis=0)
        ng = np.linalg.norm(g, axis=0)
        active = nu > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            res_active = np.linalg.norm(g + lam * u / np.where(active, nu, 1.0), axis=0)
        res = np.where(active, res_active, np.maximum(ng - lam, 0.0))
        return float(np.sqrt(np.sum(res**2)))
    total = 0.0
    for i in np.flatnonzero(penalty_norms(U3) > 0):  # loop over active blocks only (small)
        A, s, Bt = np.linalg.svd(U3[:, i, :], full_matrices=False)
        r = int((s > s[0] * 1e-12).sum())
        Pm, Qm = A[:, :r], Bt[:r].T
        R = -G[:, i, :] - lam * Pm @ Qm.T
        perp = R - Pm @ (Pm.T @ R)
        perp = perp - (perp @ Qm) @ Qm.T
        par = R - perp
        sv = np.linalg.svd(perp, compute_uv=False)
        total += float(np.sum(par**2) + np.sum(np.maximum(sv - lam, 0.0) ** 2))
    inactive = penalty_norms(U3) == 0
    if inactive.any():
        sv = np.linalg.svd(np.transpose(G[:, inactive, :], (1, 0, 2)), compute_uv=False)
        total += float(np.sum(np.maximum(sv - lam, 0.0) ** 2))
    return float(np.sqrt(total))


def lam_max_gated(X, y, patterns: Patterns, loss: str | Loss = "squared") -> float:
    """Smallest ``lam`` with ``U = 0`` optimal for C-GReLU: ``max_i ||X^T D_i grad h(0)||_*``.

    For the squared loss this is ``max_i ||X^T D_i y||`` (docs/math.md, "lam_max and
    regularisation paths"); vector output uses the spectral norm of ``X^T D_i grad h(0)``
    (``d x c``). This is :func:`cvxnn.path.lam_max` with ``activation="gated_relu"``.

    Parameters
    ----------
    X : array of shape (n, d)
    y : array of shape (n,) or (n, c)
    patterns : Patterns
    loss : str or Loss

    Returns
    -------
    float
    """
    from .._lam_max import lam_max

    return lam_max(X, y, patterns, "gated_relu", loss)


def solution_gap(sol: ConvexModel, X, y, lam: float, loss: str | Loss, penalty=None) -> float | None:
    """Absolute duality gap (float64) certifying a solution that carries no gap of its own, e.g. a
    CVXPY solver's: from the point and, for C-ReLU, the solver's cone multipliers
    (``sol.multipliers``); the one-vs-all C-ReLU program by its column norms; a program with a
    feature-sparse ``penalty`` (FeatureGroupL2, SparseGroupL2) by that penalty. None when no
    certificate applies (``lam <= 0``, a loss without a smooth conjugate, a C-ReLU point without
    multipliers, a penalty :func:`duality_gap` does not take), when it is not finite, and for a
    C-ReLU point outside its cones (violation above :data:`INFEASIBLE_RTOL` of its largest cone
    row), whose objective can lie below the optimum.
    """
    from ..errors import CvxnnError

    loss = get_loss(loss)
    if lam is None or lam <= 0 or not loss.smooth:
        return None
    multipliers = None
    if sol.spec.constrained:  # the gap of a cone-constrained point needs its multipliers
        multipliers = getattr(sol, "multipliers", None)
        if multipliers is None:
            return None
    try:
        if (penalty is None and sol.spec.constrained and sol.n_outputs > 1
                and getattr(sol, "formulation", None) == "one_vs_all"):
            y2 = loss.check_targets(check_y(y, np.asarray(X).shape[0]))
            y2 = y2[:, None] if y2.ndim == 1 else y2
            rho = np.asarray(multipliers, dtype=np.float64)
            rho = rho[:, :, None] if rho.ndim == 2 else rho
            cert = relu_certificate(sol.patterns.design(np.asarray(X, dtype=np.float64)), sol.patterns.mask,
                                    make_kernel(loss, y2, np.float64), lam, sol.V, sol.W, rho, penalty="columnwise")
        else:
            cert = duality_gap(X, y, sol, lam, loss, multipliers=multipliers, penalty=penalty)
    except (CvxnnError, ValueError) as exc:  # e.g. a loss without a conjugate, a feature penalty
        logger.debug("no duality gap for this solution: %s", exc)
        return None
    if sol.spec.constrained and cert.max_violation > 0.0:
        Xa = sol.patterns.design(np.asarray(X, dtype=np.float64))
        rows = max(float(np.abs(np.tensordot(Xa, np.asarray(B, dtype=np.float64), axes=(1, 0))).max(initial=0.0))
                   for B in (sol.V, sol.W))
        if cert.max_violation > INFEASIBLE_RTOL * rows:
            # outside its cones: the objective can lie below p*, so P - D bounds nothing
            logger.debug("no duality gap for this solution: cone violation %.3e of rows up to %.3e",
                         cert.max_violation, rows)
            return None
    return float(max(cert.gap, 0.0)) if np.isfinite(cert.gap) else None


def attach_certificate(program, sol, *, stacklevel: int = 3):
    """Add cvxnn's float64 duality gap of a CVXPY solution of a regularized program
    (:func:`solution_gap`) as ``extra["certified_gap"]`` and ``extra["certified_rel_gap"]`` when a
    certificate applies; returns ``sol``. The status stays the solver's: the certificate is an
    upper bound that is first order in the error of an interior point's fit, so it can exceed the
    true suboptimality by orders of magnitude (a Clarabel solution ``3.6e-8`` above the optimum
    certified ``2.2e-5`` on a small cross-entropy program); it is reported, not used to overrule
    the solver (docs/solvers.md). A solution the solver calls ``"optimal"`` whose certified relative
    gap exceeds :data:`CERTIFIED_WARN_RTOL` gets an
    :class:`~cvxnn.errors.InaccurateSolutionWarning` that says so (``stacklevel`` as in
    :func:`warnings.warn`, counted from this function: 3 names the caller of the caller)."""
    if program.lam is None or getattr(program, "form", "regularized") != "regularized" or program.loss is None:
        return sol
    penalty = getattr(program, "weight_penalty", None)
    if isinstance(penalty, (GroupL2, Nuclear, Columnwise)) and np.ndim(program.y) == 1:
        penalty = None  # one output: a block is a column, and these norms are its 2-norm (the group lasso)
    if penalty is not None and not isinstance(penalty, GroupSparsePenalty):
        return sol  # a block penalty of its own (nuclear, columnwise): its certificate is not this one
    gap = solution_gap(sol, program.X, program.y, float(program.lam.value), program.loss, penalty=penalty)
    if gap is not None:
        rel = gap / max(abs(float(sol.objective_value)), np.finfo(float).tiny)
        sol.extra["certified_gap"] = gap
        sol.extra["certified_rel_gap"] = rel
        if sol.status == "optimal" and rel > CERTIFIED_WARN_RTOL:
            warnings.warn(_certified_gap_message(sol.solver, rel), InaccurateSolutionWarning, stacklevel=stacklevel)
    return sol


def _certified_gap_message(solver: str, rel_gap: float, advice: str | None = None) -> str:
    """The warning of a CVXPY solution that its solver calls optimal but whose certified relative
    duality gap exceeds :data:`CERTIFIED_WARN_RTOL`; ``advice`` replaces the default what-to-do
    (tighter tolerances passed to ``solve``, or the native solvers)."""
    if advice is None:
        advice = ("tighten its tolerances (for Clarabel, pass tol_gap_rel=1e-10, tol_gap_abs=1e-10, "
                  "tol_feas=1e-10 to solve) or use the native solvers, whose status is their certificate")
    return (f"{solver} reported status 'optimal', but cvxnn's certified duality gap of its solution is "
            f"{rel_gap:.3g} of its objective: the solution may be that far from the optimum (the solver's "
            f"tolerances act on its own conic form). The status is the solver's; {advice}")
