"""Minimal models and pruning (``docs/math.md``, "Optimal set, minimal models and pruning"; [MP23]).

Write ``a_k = s_k D_k X theta_k`` for the contribution of block ``k`` to the fit (``n``-vectors;
``n c``-vectors, flattened, for vector output).

**Exact pruning** (:func:`prune_exact`). While the active ``a_k`` are linearly dependent, take
``beta != 0`` with ``sum_k beta_k a_k = 0``, orient it so that the penalty does not increase
(``sum_k beta_k ||theta_k|| >= 0``), scale it so that its largest positive entry is 1 and set
``theta_k <- (1 - beta_k) theta_k``. One block drops out, the fit is unchanged, every factor stays
``>= 0`` (cone feasibility is kept: C-ReLU blocks are first projected onto their cones, since a
factor, which can be large, scales a block's violation with it; a solver's ~1e-9 on a block of
norm ~1e-6 would otherwise grow to ~1e-4) and the penalty changes by
``-sum_k beta_k ||theta_k|| <= 0``:
at an optimum it is unchanged, so the objective is unchanged. The result has linearly
independent ``a_k`` (a *minimal* model, a vertex of the optimal set) and at most ``n`` active
blocks. Blocks enter one at a time (largest norm first); an entering unit-normalised column is
dependent when its residual against an orthonormal basis of the current set is
``<= rank_tol`` (``O(n k)``; the basis is refactored, ``O(n k^2)``, only when one of its columns
leaves), so the cost is at most ``O(n d m + n^3 m)`` for ``m`` blocks. A final SVD check uses the
criterion of :func:`is_minimal`: dependent when the smallest singular value is
``<= rank_tol * largest`` (default :data:`DEFAULT_RANK_TOL`). Each step moves the fit by at most
``rank_tol`` times the size of the step, which keeps the objective to ~1e-9 relative.

**Merging blocks of one pattern** (vector output, :func:`prune_exact`, before the step above).
Two active blocks ``k != l`` with the same output sign whose masks are identical columns of
``patterns.mask`` (``D_k = D_l`` on the training data, with the bias column when there is one)
are replaced by one block ``theta_k + theta_l`` (kept in the larger of the two; the other is set
to zero):

* fit: ``s D_k X theta_k + s D_l X theta_l = s D_k X (theta_k + theta_l)``, exactly;
* cones (C-ReLU): ``D_k = D_l`` gives ``K_k = K_l``, a convex cone, so the sum is feasible
  (columnwise for vector output);
* penalty: the nuclear norm and the sum of column norms (one-vs-all) are norms, so
  ``||theta_k + theta_l|| <= ||theta_k|| + ||theta_l||`` (triangle inequality).

The objective therefore does not increase. At an optimum it cannot decrease, so equality holds;
a strict decrease shows that the input was not an optimum (and the merged point is better).
The number of blocks drops by one per merge, and the neurons of the merged block (its rank,
:func:`~cvxnn.maps.to_network`) are at most the sum of those of the two: fewer whenever the two
blocks share singular directions without being parallel (``U_k = A diag(a) B^T``,
``U_l = A diag(b) B^T`` with ``a / b`` not constant: two blocks of rank ``r``, independent
contributions, ``2 r`` neurons; merged, ``r``). The linear-dependence step alone removes only
parallel blocks (``theta_l = t theta_k``), and only when their directions agree to ``rank_tol``;
mask identity is exact. Scalar output is left to that step: for a group lasso (C-GReLU) the
blocks of one pattern have the same correlation ``q = X^T D r``, so at an optimum they are
parallel and the dependence step already removes all but one. Blocks of opposite signs (``v_k``
and ``w_k`` of C-ReLU) are not merged: ``v_k - w_k`` lies in neither cone in general.
Off the training data a merged gated block uses the gate of the block it is kept in (two gates
with the same training mask can differ elsewhere), as any pruning step changes the model off
the training data.

**Certificates.** A pruned solution (a :class:`~cvxnn.solution.ConvexSolution` input) is a
solution of the same program that keeps the input's C-ReLU cone multipliers ``rho``. The dual
constraint of the C-ReLU certificate (:func:`~cvxnn.native.certificates.duality_gap`),
``||X^T D_i nu - Xt_i^T rho^v_i|| <= lam`` and ``||X^T D_i nu + Xt_i^T rho^w_i|| <= lam`` with
``nu = grad L(fit)``, reads the dual point and ``rho`` only, never the primal blocks; merging,
removing or rescaling blocks does not touch it. Any ``rho >= 0`` gives a lower bound on the
optimum (weak duality), so the input's multipliers are valid for every cone-feasible point,
and for a point with the input's fit (exact pruning) they give the input's dual value, hence a
gap no larger than the input's. Without them the certificate falls back to ``rho = 0``
(valid, loose: relative gaps near 0.9 at optima of standardized iris, wine, breast cancer and
diabetes). Where the fit does move (sub-threshold blocks set to zero, a C-ReLU projection onto
the cones, an approximate step), the dual point ``grad L(fit)`` moves with it to first order
while the objective moves to second order, so a gap computed from the pruned point alone can
grow by orders of magnitude at an unchanged objective; with the targets (``prune_exact(...,
y=y)``, :func:`pruning_path`) the reported gap uses the larger of the pruned point's dual value
and the input's.

**Approximate pruning past minimal** (:func:`pruning_path`). From a minimal model, remove one
block ``j`` and correct the others by least squares,
``beta = argmin || sum_{i != j} beta_i a_i - a_j ||``, ``theta_i <- (1 + beta_i) theta_i``, so the fit
moves by the least-squares residual ``e_j``. A negative factor on a C-ReLU block moves it to the
opposite-sign block of the same pattern (``-v_i in -K_i`` is ``w_i = |1 + beta_i| v_i in K_i``),
so every step stays feasible. The block is chosen by

* ``criterion="residual"``: brute force, smallest ``||e_j||`` (all candidates at once from the
  inverse Gram matrix: ``||e_j||^2 = 1 / (G^-1)_jj``, ``O(n k^2)`` per step);
* ``criterion="objective"``: brute force, smallest objective after the correction
  (``k`` loss evaluations per step);
* ``criterion="magnitude"``: cheap heuristic, smallest ``||a_j||``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

from .._validation import check_lam, check_nonnegative_float, check_positive_int, check_y
from ..activations import get_activation
from ..errors import InaccurateSolutionWarning, InvalidParameterError, ShapeError
from ..losses import Loss, get_loss
from ..patterns import group_columns
from ..solution import ConvexModel, ConvexSolution, cone_violation
from .kkt import (
    DEFAULT_ACTIVE_TOL,
    _active_mask,
    _block_norms,
    _check_data,
    _check_unit_tol,
    block_layout,
    model_from_blocks,
    solution_from_blocks,
)

__all__ = [
    "DEFAULT_RANK_TOL",
    "PruneResult",
    "PruningStep",
    "PruningPath",
    "prune_exact",
    "is_minimal",
    "pruning_path",
    "prune_to_width",
    "CRITERIA",
]

logger = logging.getLogger(__name__)

#: Relative singular-value tolerance of the rank decisions in exact pruning.
DEFAULT_RANK_TOL = 1e-9
#: Block-selection rules of approximate pruning.
CRITERIA = ("residual", "objective", "magnitude")


def _contributions(model: ConvexModel, Xa: np.ndarray, theta: np.ndarray, pattern, sign, idx) -> np.ndarray:
    """Columns ``a_k = s_k D_k X theta_k`` for blocks ``idx``: ``(n, k)`` or ``(n c, k)``."""
    mask = model.patterns.mask[:, pattern[idx]]
    if theta.ndim == 2:
        return sign[idx] * mask * (Xa @ theta[:, idx])
    d, _, c = theta.shape
    Z = (Xa @ theta[:, idx, :].reshape(d, -1)).reshape(Xa.shape[0], idx.size, c)
    Z = Z * (sign[idx] * mask)[:, :, None]
    return np.transpose(Z, (0, 2, 1)).reshape(-1, idx.size)


def _partner(k: np.ndarray | int, activation: str, p: int):
    """Index of the opposite-sign block of the same pattern (C-ReLU)."""
    return (k + p) % (2 * p)


@dataclass(eq=False)
class PruneResult:
    """Result of :func:`prune_exact`.

    Attributes
    ----------
    model : ConvexModel
        The pruned (minimal) model.
    n_before, n_after : int
        Active blocks before (above the activity threshold) and after.
    removed : list of int
        Removed block indices (see :func:`~cvxnn.optimality.kkt.block_layout`), in order.
    fit_change : float
        ``||fit_after - fit_before|| / max(1, ||fit_before||)``.
    penalty_change : float
        ``penalty_after - penalty_before`` (``<= 0`` up to rounding).
    merged : list of (int, int)
        Vector output: ``(removed, kept)`` for each block added to another block of the same
        pattern and sign (see the module docstring); these blocks are also in ``removed``.
        Empty for scalar output.
    """

    model: ConvexModel
    n_before: int
    n_after: int
    removed: list[int]
    fit_change: float
    penalty_change: float
    merged: list[tuple[int, int]] = field(default_factory=list)


def _check_model_X(model, X):
    if not isinstance(model, ConvexModel):
        raise InvalidParameterError(f"expected a ConvexModel / ConvexSolution, got {type(model).__name__}.")
    X = _check_data(model, X)
    return X, model.patterns.design(X)


def _active(model, norms: np.ndarray, active_tol: float) -> np.ndarray:
    """The active blocks of ``model``: norm above ``active_tol`` times the largest
    (:func:`~cvxnn.optimality.kkt._active_mask`) and, for a solution that records its objective
    and ``lam``, above ``active_tol * objective_value / lam``. The second rule has an absolute
    scale (any optimum has penalty ``<= objective / lam``): at ``lam >= lam_max`` an
    interior-point solver returns blocks of ~1e-10 only, which the relative rule alone keeps as
    neurons (Clarabel, 40 rows, 16 gates, ``1.5 lam_max``: 32 "active" C-ReLU blocks)."""
    active_tol = _check_unit_tol(active_tol, "active_tol")
    active = _active_mask(norms, active_tol)
    try:
        obj, lam = float(getattr(model, "objective_value", np.nan)), float(getattr(model, "lam", np.nan))
    except (TypeError, ValueError):
        return active
    if np.isfinite(obj) and np.isfinite(lam) and obj > 0 and lam > 0:
        active &= norms > active_tol * obj / lam
    return active


def _check_targets(model: ConvexModel, X: np.ndarray, y, lam, loss) -> tuple[np.ndarray, float, Loss]:
    """``y``, ``lam`` and ``loss`` validated for ``model`` (``lam`` and ``loss`` default to the
    solution's own, ``loss`` to squared)."""
    y = check_y(y, X.shape[0])
    if lam is None:
        lam = getattr(model, "lam", None)
        if lam is None:
            raise InvalidParameterError("pass lam (the model carries none).")
    lam = check_lam(lam)
    if loss is None:
        loss = getattr(model, "loss", None) or "squared"
    loss = get_loss(loss)
    y = loss.check_targets(y)
    c = model.n_outputs
    if (c == 1 and y.ndim != 1) or (c > 1 and (y.ndim != 2 or y.shape[1] != c)):
        want = "(n,)" if c == 1 else f"(n, {c}) (one column per output, e.g. one-hot rows)"
        raise ShapeError(f"the model has {c} output{'s' if c > 1 else ''} but y has shape {y.shape}; pass the "
                         f"targets it was trained on, of shape {want}.")
    return y, lam, loss


def _objective(model: ConvexModel, Xa: np.ndarray, y: np.ndarray, lam: float, loss: Loss) -> float:
    """``L(fit, y) + lam * penalty`` (the penalty of the model's formulation)."""
    return float(loss.value(_fit(model, Xa).reshape(y.shape), y) + lam * model.penalty())


def _warn_uncertified(model, what: str) -> None:
    """Warn (:class:`~cvxnn.errors.InaccurateSolutionWarning`) when ``model`` is a solution whose
    solver did not certify it (status other than ``"optimal"``): pruning keeps its fit and does not
    increase its penalty, so the result is a minimal model *of this point*, not an optimum."""
    status = getattr(model, "status", None)
    if status is None or status == "optimal":
        return
    warnings.warn(
        f"{what}: the solution has status {status!r}, not 'optimal': it is no certified optimum, so the "
        f"pruned model (same fit, no larger penalty) is a minimal model of this point, not an optimal "
        f"network. Re-solve to optimality first (kkt_report measures how far the point is from one).",
        InaccurateSolutionWarning, stacklevel=3)


def _pruned(source: ConvexModel, theta: np.ndarray, Xa: np.ndarray, status: str | None, *,
            derived: str = "exact pruning", **fields) -> ConvexModel:
    """The pruned blocks ``theta`` as a model, or, for a solution ``source``, as a solution of its
    program (:func:`~cvxnn.optimality.kkt.solution_from_blocks`) that keeps the source's cone
    multipliers: the dual constraint of the C-ReLU certificate reads the dual point and ``rho``
    only, so the pruned point, whose fit (hence dual point) is the source's, is certified as
    tightly as the source (without them the certificate takes ``rho = 0``: at the iris, wine,
    breast-cancer and diabetes optima a relative gap near 0.9 instead of ~1e-8). Its status is
    the source's unless ``status`` says otherwise; its objective is NaN and its gap None unless
    given in ``fields`` (:func:`prune_exact` has no targets), and its cone violation is measured."""
    viol = None
    if isinstance(source, ConvexSolution) and source.spec.constrained:
        mask = source.patterns.mask
        p = source.patterns.n_patterns
        viol = max(cone_violation(Xa, mask, theta[:, :p]), cone_violation(Xa, mask, theta[:, p:]))
    return solution_from_blocks(source, theta, multipliers=getattr(source, "multipliers", None), status=status,
                                max_violation=viol, derived=derived, **fields)


def _pruned_certified(source: ConvexModel, theta: np.ndarray, X: np.ndarray, Xa: np.ndarray, status: str | None,
                      program: tuple | None) -> ConvexModel:
    """:func:`_pruned`, with the objective and certificate (:func:`_certified`) of a solution
    ``source`` when ``program`` holds its ``(y, lam, loss)`` (from :func:`_check_targets`)."""
    pruned = _pruned(source, theta, Xa, status)
    if program is None or not isinstance(source, ConvexSolution):
        return pruned
    y, lam, loss = program
    source_cert = _dual_bound(source, X, y, lam, loss)
    fields = _certified(pruned, X, Xa, y, lam, loss, _objective(pruned, Xa, y, lam, loss),
                        None if source_cert is None else source_cert.dual)
    return _pruned(source, theta, Xa, status, **fields)


def _dual_bound(model: ConvexModel, X: np.ndarray, y: np.ndarray, lam: float, loss: Loss):
    """The certificate of ``model`` (:func:`~cvxnn.native.certificates.duality_gap`, with the
    model's multipliers) or None where none applies (a loss without a conjugate, a feature-sparse
    program). Its ``dual`` bounds the optimum from below whatever the point; its ``gap`` bounds
    the point's suboptimality only for a cone-feasible point."""
    from ..errors import CvxnnError
    from ..native.certificates import duality_gap

    try:
        cert = duality_gap(X, y, model, lam, loss)
    except (CvxnnError, ValueError) as exc:
        logger.debug("no duality gap for the pruned model: %s", exc)
        return None
    return cert if np.isfinite(cert.dual) else None


def _certified(model: ConvexModel, X: np.ndarray, Xa: np.ndarray, y: np.ndarray, lam: float, loss: Loss,
               objective: float, floor: float | None) -> dict:
    """``objective_value``, ``gap`` and ``dual_value`` of a pruned solution: the gap is
    ``objective - D`` with ``D`` the larger of its own dual value and ``floor``, the dual value of
    the solution it was pruned from (any dual-feasible point bounds ``p*``: weak duality). Its own
    dual point ``grad L(fit)`` moves to first order with the fit, so dropping a solver's blocks
    of ~1e-6 can loosen its own certificate by orders of magnitude (a Clarabel iris optimum,
    relative 6.5e-8 -> 7.6e-4) while the objective moves to second order only (2e-8 absolute);
    the source's dual point keeps the bound at ``gap_source + objective change``. No gap (None)
    for a C-ReLU point outside its cones (violation above
    :data:`~cvxnn.native.certificates.INFEASIBLE_RTOL` of its largest cone row)."""
    from ..native.certificates import INFEASIBLE_RTOL

    fields: dict = {"objective_value": float(objective), "lam": lam, "loss": loss}
    cert = _dual_bound(model, X, y, lam, loss)
    duals = [d for d in (None if cert is None else cert.dual, floor) if d is not None]
    if not duals or not np.isfinite(objective):
        return fields
    if cert is not None and model.spec.constrained and cert.max_violation > 0.0:
        rows = max(float(np.abs(np.tensordot(Xa, np.asarray(getattr(model, name), dtype=float), axes=(1, 0)))
                         .max(initial=0.0)) for name in model.spec.blocks)
        if cert.max_violation > INFEASIBLE_RTOL * rows:  # its objective can lie below p*
            return fields
    dual = max(duals)
    fields.update(gap=max(float(objective) - dual, 0.0), dual_value=dual)
    return fields


def _fit(model: ConvexModel, Xa: np.ndarray) -> np.ndarray:
    from ..operators import forward

    return forward(Xa, model.patterns.mask, model.effective_weights)


#: Relative cone violation (to the largest ``|Xt b|`` of the block) treated as rounding.
_ROUNDING = 1e-12
#: :func:`prune_exact` warns when projecting a C-ReLU model onto its cones moves its fit by more
#: than this (relative): the input was infeasible (an uncertified solve measured 0.98), and the
#: pruned model keeps the projected fit, not the input's. Clarabel's "optimal" solutions of small
#: programs, feasible to its tolerance, moved it by up to 2e-6.
PROJECTION_FIT_WARN = 1e-4
#: Cap on the row-growing rounds of one projection.
_PROJECTION_ROUNDS = 50


def _project_to_cones(Xa: np.ndarray, mask: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Euclidean projection of each block ``b_k`` of ``B`` (``(d_a, k)``, or ``(d_a, k, c)`` with
    columnwise constraints) onto its cone ``{b : Xt_k b >= 0}``, ``Xt_k = (2 D_k - I) X_a``
    (``mask`` holds the ``k`` patterns). Feasible blocks are returned unchanged.

    Moreau: ``P_K(b) = b + A^T mu`` with ``mu = argmin_{mu >= 0} ||A^T mu + b||`` (NNLS, ``A = Xt_k``),
    over a working set of rows (the violated ones, grown until no row is violated). The result is
    feasible to rounding, so scaling it by any factor ``>= 0`` keeps it feasible.
    """
    out = np.array(B, dtype=float, order="C", copy=True)
    k = out.shape[1]
    cols = out.reshape(out.shape[0], k, -1)  # a view: columns (block, output)
    signs = 2.0 * mask - 1.0
    G = signs[:, :, None] * np.einsum("nd,dkc->nkc", Xa, cols)
    # violations at the rounding level of the block's own image are left alone: the NNLS on the
    # (degenerate) face rows of an exact optimum is worse conditioned than the violation it removes
    scale = np.abs(G).max(axis=0, initial=0.0)
    for i, j in zip(*np.nonzero(G.min(axis=0) < -_ROUNDING * scale), strict=True):
        A = signs[:, i, None] * Xa
        b = cols[:, i, j].copy()
        viol0 = -float(min((A @ b).min(), 0.0))
        rows = np.flatnonzero(A @ b < 0)
        t = b
        for _ in range(_PROJECTION_ROUNDS):
            mu, _ = nnls(A[rows].T, -b, maxiter=50 * (rows.size + 1))
            t = b + A[rows].T @ mu
            new = np.setdiff1d(np.flatnonzero(A @ t < 0), rows)
            if new.size == 0:
                break
            rows = np.union1d(rows, new)
        if -float(min((A @ t).min(), 0.0)) < viol0:  # keep the projection only where it helps
            cols[:, i, j] = t
    return out


def _same_pattern_groups(model: ConvexModel, pattern: np.ndarray, sign: np.ndarray, idx: np.ndarray) -> list:
    """Groups (arrays of block indices, two or more each) of the blocks ``idx`` that have the
    same output sign and identical masks ``D_k`` (identical columns of ``patterns.mask``)."""
    if idx.size < 2:
        return []
    _, group = group_columns(np.asarray(model.patterns.mask))
    key = group[pattern[idx]] * 2 + (sign[idx] < 0)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return [idx[inverse.ravel() == g] for g in np.flatnonzero(counts > 1)]


def _merge_same_pattern(model: ConvexModel, theta: np.ndarray, pattern: np.ndarray, sign: np.ndarray,
                        idx: np.ndarray, norms: np.ndarray) -> list[tuple[int, int]]:
    """Add each group of :func:`_same_pattern_groups` into its largest block, in place on
    ``theta``; returns the ``(removed, kept)`` pairs. The fit is unchanged, a C-ReLU sum stays in
    the common cone, and the penalty does not increase (module docstring)."""
    merged: list[tuple[int, int]] = []
    for members in _same_pattern_groups(model, pattern, sign, idx):
        keep = int(members[np.argmax(norms[members])])
        others = [int(k) for k in members if k != keep]
        theta[:, keep] = theta[:, keep] + theta[:, others].sum(axis=1)
        theta[:, others] = 0.0
        merged.extend((k, keep) for k in others)
    return merged


def _null_vector(M: np.ndarray, rank_tol: float) -> np.ndarray | None:
    """A unit null vector of ``M`` (columns of unit norm) if it is numerically rank deficient."""
    nrows, ncols = M.shape
    if ncols > nrows:
        _, _, Vt = np.linalg.svd(M, full_matrices=True)
        return Vt[-1]
    _, s, Vt = np.linalg.svd(M, full_matrices=False)
    if s[-1] <= rank_tol * s[0]:
        return Vt[-1]
    return None


def _prune_blocks(cols, idx, norms, rank_tol):
    """Core of exact pruning on the active blocks ``idx`` (columns ``cols``, ``norms`` indexed by
    block); returns the scale factors of the blocks and the removed blocks.

    Blocks enter one at a time. A fast test first: the residual of the entering unit column
    against an orthonormal basis ``Q`` of the current (independent) set (twice-orthogonalised
    Gram-Schmidt, ``O(n k)``); a residual ``<= rank_tol`` gives the null vector from the triangular
    factor. ``Q`` is recomputed (``O(n k^2)``) only after a basis column leaves. A final SVD
    check (the criterion of :func:`is_minimal`) removes any dependency the residual test missed.
    """
    nrows = cols.shape[0]
    w = np.linalg.norm(cols, axis=0)
    keep = w > 0
    f = np.ones(idx.size)
    f[~keep] = 0.0
    removed: list[int] = [int(b) for b in idx[~keep]]
    dirs = np.where(keep, cols / np.where(keep, w, 1.0), 0.0)
    pen = np.where(keep, norms[idx] / np.where(keep, w, 1.0), 0.0)  # penalty per unit of ||a_k||

    def step(cand: list[int], v: np.ndarray) -> list[int]:
        """Move along the null vector ``v`` of ``dirs[:, cand]`` until one block leaves."""
        if v @ pen[cand] < 0 or not np.any(v > 0):
            v = -v
        c = f[cand] * w[cand]
        pos = v > 1e-12 * np.abs(v).max()
        ratios = np.full(v.size, np.inf)
        ratios[pos] = c[pos] / v[pos]
        out = int(np.argmin(ratios))
        f[cand] = np.maximum(c - ratios[out] * v, 0.0) / w[cand]
        f[cand[out]] = 0.0
        removed.append(int(idx[cand[out]]))
        return [b for i, b in enumerate(cand) if i != out]

    order = np.argsort(-norms[idx], kind="stable")
    basis: list[int] = []
    Q = np.zeros((nrows, 0))
    R = np.zeros((0, 0))
    for j in order:
        if not keep[j]:
            continue
        a = dirs[:, j]
        h = Q.T @ a
        r = a - Q @ h
        h2 = Q.T @ r
        r -= Q @ h2
        h += h2
        res = np.linalg.norm(r)
        if res > rank_tol and len(basis) < nrows:
            basis.append(int(j))
            Q = np.hstack([Q, (r / res)[:, None]])
            R = np.block([[R, h[:, None]], [np.zeros((1, R.shape[1])), np.array([[res]])]])
            continue
        coef = np.linalg.lstsq(R, h, rcond=None)[0] if R.size else np.zeros(0)
        v = np.append(-coef, 1.0)
        cand = step(basis + [int(j)], v / np.linalg.norm(v))
        if cand != basis:  # a basis column left: the new set is independent, refactor it
            basis = cand
            Q, R = np.linalg.qr(dirs[:, basis]) if basis else (np.zeros((nrows, 0)), np.zeros((0, 0)))
    # final check with the SVD criterion of is_minimal
    while basis:
        v = _null_vector(dirs[:, basis], rank_tol)
        if v is None:
            break
        basis = step(basis, v)
    return f, removed


def prune_exact(
    model: ConvexModel,
    X,
    *,
    y=None,
    rank_tol: float = DEFAULT_RANK_TOL,
    active_tol: float = DEFAULT_ACTIVE_TOL,
) -> PruneResult:
    """Prune a model to a minimal one with the same fit and no larger penalty (see module docstring).

    Works for C-ReLU and C-GReLU, scalar and vector output (blocks scale as wholes, so the
    fit is linear and the group / nuclear penalty is positively homogeneous in the factors).
    Blocks with norm ``<= active_tol * max`` are set to zero first (solver noise; see
    :data:`~cvxnn.optimality.kkt.DEFAULT_ACTIVE_TOL`). For vector output, active blocks of the
    same sign on identical masks are first added into one block (exact for the fit, triangle
    inequality for the penalty; ``result.merged``).

    Parameters
    ----------
    model : ConvexModel or ConvexSolution
    X : array (n, d)
        Training data of the patterns.
    y : array (n,) or (n, c), optional
        The solution's training targets: the pruned solution then carries its objective and
        certificate (see Returns). Only for a :class:`~cvxnn.solution.ConvexSolution` with a
        ``lam``.
    rank_tol : float
        Relative singular-value tolerance of the dependency test.
    active_tol : float
        Activity threshold.

    Returns
    -------
    PruneResult
        ``result.model`` has linearly independent contributions ``a_k`` (at most ``n`` blocks,
        ``n c`` for vector output); at an optimum it is an optimum, and a vertex of the optimal set.
        For a :class:`~cvxnn.solution.ConvexSolution` it is a ConvexSolution of the same program
        (:func:`~cvxnn.optimality.kkt.solution_from_blocks`) with the input's status
        (``"optimal_inaccurate"`` for an ``"optimal"`` input whose projection onto the cones moved
        the fit by more than :data:`PROJECTION_FIT_WARN`), its own cone violation, and the input's
        cone multipliers, so that :func:`cvxnn.duality_gap` certifies it with them (the pruned
        fit is the input's, so its dual point is too). Without ``y`` its ``objective_value`` is
        NaN and its ``gap`` None; with ``y`` they are its objective and
        ``objective - max(D, D_input)``, the larger of its own dual value and the input's (both
        bound the optimum below), so the gap is at most the input's plus the objective change,
        also where dropping a solver's sub-threshold blocks moved the fit, which moves its own
        dual point (module docstring, "Certificates").

    Warns
    -----
    InaccurateSolutionWarning
        A C-ReLU model outside its cones: its blocks are projected onto them first, and when that
        moves the fit by more than :data:`PROJECTION_FIT_WARN` (relative) the result keeps the
        projected point's fit (``fit_change`` reports it), not the input's. Also a solution whose
        status is not ``"optimal"`` (``"max_iterations"``, ``"optimal_inaccurate"``, ...): the
        result is a minimal model of that point, not an optimum.
    """
    X, Xa = _check_model_X(model, X)
    rank_tol = check_nonnegative_float(rank_tol, "rank_tol")
    if not (0 <= rank_tol < 1):
        raise InvalidParameterError(f"rank_tol must be in [0, 1), got {rank_tol}.")
    program = None
    if y is not None:
        if not isinstance(model, ConvexSolution) or model.lam is None:
            raise InvalidParameterError(
                "prune_exact: y certifies a solution of a regularized program (its lam and loss); this "
                f"{type(model).__name__} has no lam. Call prune_exact(model, X) and certify the result with "
                "cvxnn.duality_gap(X, y, result.model, lam).")
        program = _check_targets(model, X, y, None, None)
    theta, pattern, sign = block_layout(model)
    theta = theta.copy()
    form = getattr(model, "formulation", None)
    norms = _block_norms(theta, form)
    active = _active(model, norms, active_tol)
    _warn_uncertified(model, "prune_exact")
    theta[:, ~active] = 0.0
    idx = np.flatnonzero(active)
    fit0 = _fit(model, Xa)
    pen0 = float(norms.sum())
    if idx.size == 0:  # the zero model (e.g. at lam >= lam_max) is minimal: nothing to prune
        return PruneResult(model=_pruned_certified(model, theta, X, Xa, None, program),
                           n_before=0, n_after=0, removed=[],
                           fit_change=float(np.linalg.norm(_fit(model_from_blocks(model, theta), Xa) - fit0)
                                            / max(1.0, np.linalg.norm(fit0))),
                           penalty_change=-pen0)
    if model.spec.constrained:
        # The factors below can be large (a small block may grow to carry a removed one), and a
        # factor scales the block's cone violation with it: a solver's ~1e-9 absolute violation
        # on a block of norm ~1e-6 (relative 1e-3) becomes ~1e-4, and its infeasible direction
        # can even lower the penalty below the optimum. Start from exactly feasible blocks.
        theta[:, idx] = _project_to_cones(Xa, model.patterns.mask[:, pattern[idx]], theta[:, idx])
        norms = _block_norms(theta, form)
        moved = float(np.linalg.norm(_fit(model_from_blocks(model, theta), Xa) - fit0)
                      / max(float(np.linalg.norm(fit0)), np.finfo(float).tiny))
        if moved > PROJECTION_FIT_WARN:
            warnings.warn(
                f"prune_exact: the model is outside its cones (not a feasible C-ReLU point, e.g. an uncertified "
                f"solve); projecting its blocks onto them changed its fit by {moved:.1e} (relative), so the "
                f"pruned model has the projected point's fit, not the input's (see fit_change). Prune a "
                f"certified solution instead.", InaccurateSolutionWarning, stacklevel=2)
    else:
        moved = 0.0
    n_before = int(idx.size)
    merged: list[tuple[int, int]] = []
    if theta.ndim == 3:  # vector output: blocks of one pattern and sign into one (module docstring)
        merged = _merge_same_pattern(model, theta, pattern, sign, idx, norms)
        if merged:
            idx = np.setdiff1d(idx, [k for k, _ in merged])
            norms = _block_norms(theta, form)
    cols = _contributions(model, Xa, theta, pattern, sign, idx)
    f, removed = _prune_blocks(cols, idx, norms, rank_tol)
    theta[:, idx] = theta[:, idx] * (f if theta.ndim == 2 else f[:, None])
    theta[:, idx[f == 0]] = 0.0
    status = "optimal_inaccurate" if moved > PROJECTION_FIT_WARN and getattr(model, "status", None) == "optimal" \
        else None
    pruned = _pruned_certified(model, theta, X, Xa, status, program)
    fit1 = _fit(pruned, Xa)
    res = PruneResult(
        model=pruned,
        n_before=n_before,
        n_after=int(np.count_nonzero(f)),
        removed=[k for k, _ in merged] + removed,
        fit_change=float(np.linalg.norm(fit1 - fit0) / max(1.0, np.linalg.norm(fit0))),
        penalty_change=float(_block_norms(theta, form).sum() - pen0),
        merged=merged,
    )
    logger.debug("prune_exact: %d -> %d blocks (%d merged), fit change %.2e, penalty change %.2e",
                 res.n_before, res.n_after, len(merged), res.fit_change, res.penalty_change)
    return res


def is_minimal(model: ConvexModel, X, *, rank_tol: float = DEFAULT_RANK_TOL,
               active_tol: float = DEFAULT_ACTIVE_TOL) -> bool:
    """Whether the active contributions ``a_k`` are linearly independent (SVD, ``rank_tol``) and,
    for vector output, no two active blocks of the same sign have identical masks (they would
    merge into one, see :func:`prune_exact`)."""
    rank_tol = check_nonnegative_float(rank_tol, "rank_tol")
    if not (0 <= rank_tol < 1):
        raise InvalidParameterError(f"rank_tol must be in [0, 1), got {rank_tol}.")
    X, Xa = _check_model_X(model, X)
    theta, pattern, sign = block_layout(model)
    idx = np.flatnonzero(_active(model, _block_norms(theta, getattr(model, "formulation", None)),
                                 active_tol))
    if idx.size == 0:
        return True
    if theta.ndim == 3 and _same_pattern_groups(model, pattern, sign, idx):
        return False
    cols = _contributions(model, Xa, theta, pattern, sign, idx)
    if idx.size > cols.shape[0]:
        return False
    w = np.linalg.norm(cols, axis=0)
    if np.any(w == 0):
        return False
    s = np.linalg.svd(cols / w, compute_uv=False)
    return bool(s[-1] > rank_tol * s[0])


# ------------------------------------------------------------------- approximate pruning
@dataclass(eq=False)
class PruningStep:
    """One model on a pruning path.

    Attributes
    ----------
    width : int
        Active blocks (= neurons of the mapped network for scalar output).
    objective : float
        Convex objective ``L(fit, y) + lam * penalty``.
    increase : float
        Objective increase over the previous step.
    removed : int or None
        Block removed to reach this step (None for the start and the exact-pruning step).
    kind : str
        ``"start"``, ``"exact"`` or ``"approximate"``.
    score : float or None
        ``score(model)`` when a score function was given (e.g. test accuracy).
    model : ConvexModel
    """

    width: int
    objective: float
    increase: float
    removed: int | None
    kind: str
    score: float | None
    model: ConvexModel = field(repr=False)


@dataclass(eq=False)
class PruningPath:
    """Models from an optimum down to ``min_width`` blocks (see :func:`pruning_path`)."""

    steps: list[PruningStep]
    criterion: str
    lam: float

    @property
    def widths(self) -> np.ndarray:
        """Width at each step."""
        return np.array([s.width for s in self.steps])

    @property
    def objectives(self) -> np.ndarray:
        """Objective at each step."""
        return np.array([s.objective for s in self.steps])

    @property
    def scores(self) -> np.ndarray:
        """Score at each step (NaN where none was computed)."""
        return np.array([np.nan if s.score is None else s.score for s in self.steps])

    def model_at_width(self, width: int) -> ConvexModel:
        """The first model on the path with at most ``width`` blocks."""
        width = check_positive_int(width, "width", minimum=0)
        for s in self.steps:
            if s.width <= width:
                return s.model
        raise InvalidParameterError(f"the path never reaches width {width}.")


def _ls_candidates(A: np.ndarray):
    """For full-column-rank ``A`` (``N x k``): ``Ginv`` (``k x k``) of ``G = A^T A`` via the SVD."""
    _, s, Vt = np.linalg.svd(A, full_matrices=False)
    return (Vt.T / s**2) @ Vt


def _apply_removal(theta, j_block, idx, factors, activation, p):
    """Scale blocks ``idx`` by ``factors`` and zero ``j_block``. A negative factor on a C-ReLU
    block moves it, scaled by ``|factor|``, onto the opposite-sign block of its pattern."""
    new = theta.copy()
    keep = idx != j_block
    kidx, f = idx[keep], factors[keep]
    shape = (1, -1) + (1,) * (theta.ndim - 2)
    new[:, j_block] = 0.0
    if len(get_activation(activation).blocks) == 1:  # no opposite-sign partner block
        new[:, kidx] = theta[:, kidx] * f.reshape(shape)
        return new
    pos = f >= 0
    new[:, kidx[pos]] = theta[:, kidx[pos]] * f[pos].reshape(shape)
    neg = kidx[~pos]
    new[:, neg] = 0.0
    new[:, _partner(neg, activation, p)] += theta[:, neg] * (-f[~pos]).reshape(shape)  # partners are distinct
    return new


def pruning_path(
    model: ConvexModel,
    X,
    y,
    lam: float | None = None,
    loss: str | Loss | None = None,
    *,
    criterion: str = "residual",
    min_width: int = 0,
    score: Callable[[ConvexModel], float] | None = None,
    rank_tol: float = DEFAULT_RANK_TOL,
    active_tol: float = DEFAULT_ACTIVE_TOL,
) -> PruningPath:
    """Exact pruning to a minimal model, then approximate pruning one block at a time.

    Parameters
    ----------
    model : ConvexModel or ConvexSolution
        Usually an optimum (scalar or vector output).
    X, y : arrays
        Training data.
    lam, loss
        Default to the solution's own (``loss`` to squared).
    criterion : {"residual", "objective", "magnitude"}
        Block selection (see the module docstring).
    min_width : int
        Stop at this many blocks.
    score : callable, optional
        ``score(model) -> float`` recorded at each step (e.g. test accuracy of the network).
    rank_tol, active_tol
        As in :func:`prune_exact`.

    Returns
    -------
    PruningPath
        ``steps[0]`` is the input (after zeroing sub-threshold blocks), ``steps[1]`` the
        minimal model, then one step per removed block with the objective increase. For a
        :class:`~cvxnn.solution.ConvexSolution` the step models are ConvexSolutions of the same
        program (``lam`` and ``loss`` as used here) with their objective, the input's cone
        multipliers and the certificate of :func:`prune_exact` with ``y`` (gap against the larger
        of their own dual value and the input's); the status is the input's for the first two
        steps and ``"approximate"`` after.

    Raises
    ------
    ShapeError
        ``y`` does not match the model's outputs (``(n,)`` for scalar output, ``(n, c)`` for ``c``
        outputs).

    Warns
    -----
    InaccurateSolutionWarning
        A solution whose status is not ``"optimal"``: the path starts from a point that is no
        certified optimum, so its increases are not measured from the optimal objective.
    """
    if criterion not in CRITERIA:
        raise InvalidParameterError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    rank_tol = check_nonnegative_float(rank_tol, "rank_tol")
    X, Xa = _check_model_X(model, X)
    y, lam, loss = _check_targets(model, X, y, lam, loss)
    min_width = check_positive_int(min_width, "min_width", minimum=0)
    if score is not None and not callable(score):  # before any pruning (it failed after, bare TypeError)
        raise InvalidParameterError(f"score must be a callable score(model) -> float or None, got "
                                    f"{type(score).__name__}.")
    p = model.patterns.n_patterns
    _warn_uncertified(model, "pruning_path")

    def objective(m: ConvexModel) -> float:
        return _objective(m, Xa, y, lam, loss)

    def scored(m) -> float | None:
        if score is None:
            return None
        value = score(m)
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"score(model) must return a number, got {value!r:.60}.") from exc

    # the input's dual value bounds p* below for every step (weak duality): a step's gap is its
    # objective minus the larger of that and its own dual value (_certified)
    source_cert = _dual_bound(model, X, y, lam, loss) if isinstance(model, ConvexSolution) else None
    floor = None if source_cert is None else source_cert.dual

    def record(m, kind, removed, prev, status=None):
        obj = objective(m)
        width = int(np.count_nonzero(_block_norms(block_layout(m)[0], form)))
        if isinstance(model, ConvexSolution):  # a solution of the same program, with its certificate
            theta_m = block_layout(m)[0]
            m = _pruned(model, theta_m, Xa, status, derived=f"{kind} pruning" if kind != "start" else "")
            m = _pruned(model, theta_m, Xa, status, derived=f"{kind} pruning" if kind != "start" else "",
                        **_certified(m, X, Xa, y, lam, loss, obj, floor))
        return PruningStep(width=width, objective=obj, increase=0.0 if prev is None else obj - prev,
                           removed=removed, kind=kind, score=scored(m), model=m)

    theta, pattern, sign = block_layout(model)
    theta = theta.copy()
    form = getattr(model, "formulation", None)
    theta[:, ~_active(model, _block_norms(theta, form), active_tol)] = 0.0
    start = model_from_blocks(model, theta)
    steps = [record(start, "start", None, None)]
    exact = prune_exact(start, X, rank_tol=rank_tol, active_tol=0.0)
    current = exact.model
    moved = exact.fit_change > PROJECTION_FIT_WARN and getattr(model, "status", None) == "optimal"
    steps.append(record(current, "exact", None, steps[-1].objective, "optimal_inaccurate" if moved else None))
    while steps[-1].width > min_width:
        theta, _, _ = block_layout(current)
        norms = _block_norms(theta, form)
        idx = np.flatnonzero(norms > 0)
        A = _contributions(current, Xa, theta, pattern, sign, idx)
        if idx.size > 1 and not is_minimal(current, X, rank_tol=rank_tol, active_tol=0.0):
            current = prune_exact(current, X, rank_tol=rank_tol, active_tol=0.0).model
            continue
        if idx.size == 1:
            j, factors = 0, np.zeros(1)
        else:
            Ginv = _ls_candidates(A)
            diag = np.diag(Ginv)
            if criterion == "residual":
                j = int(np.argmax(diag))
            elif criterion == "magnitude":
                j = int(np.argmin(np.linalg.norm(A, axis=0)))
            else:
                fit = _fit(current, Xa).reshape(-1)
                R = A @ Ginv / diag  # residual vectors e_j
                F = 1.0 - Ginv / diag  # F[i, j] = 1 + beta_i for the removal of j
                objs = []
                for jj in range(idx.size):
                    pen = float(np.abs(F[:, jj]) @ norms[idx] - np.abs(F[jj, jj]) * norms[idx[jj]])
                    objs.append(loss.value((fit - R[:, jj]).reshape(y.shape), y) + lam * pen)
                j = int(np.argmin(objs))
            factors = 1.0 - Ginv[:, j] / diag[j]
            factors[j] = 0.0
        theta_new = _apply_removal(theta, idx[j], idx, factors, current.activation, p)
        current = model_from_blocks(current, theta_new)
        steps.append(record(current, "approximate", int(idx[j]), steps[-1].objective, "approximate"))
        logger.debug("pruning_path: removed block %d -> width %d, objective %.6g (+%.3e)",
                     idx[j], steps[-1].width, steps[-1].objective, steps[-1].increase)
    return PruningPath(steps=steps, criterion=criterion, lam=lam)


def prune_to_width(model: ConvexModel, X, y, width: int, lam: float | None = None, loss=None,
                   **kwargs) -> ConvexModel:
    """The model with at most ``width`` blocks on :func:`pruning_path` (kwargs go there)."""
    width = check_positive_int(width, "width", minimum=0)
    return pruning_path(model, X, y, lam, loss, min_width=width, **kwargs).model_at_width(width)
