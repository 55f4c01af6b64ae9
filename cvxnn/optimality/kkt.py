"""Dual recovery and KKT certificates for C-ReLU / C-GReLU solutions (``docs/math.md``,
"Optimality conditions"; Mishkin & Pilanci, ICML 2023).

Blocks are indexed ``k in [m]``: for C-GReLU ``m = p`` (block ``k`` is ``u_k``, sign ``s_k = +1``);
for C-ReLU ``m = 2p`` (block ``k < p`` is ``v_k`` with ``s_k = +1``, block ``p + k`` is ``w_k`` with
``s_k = -1``). With the residual ``r = -grad L(yhat)`` (``y - yhat`` for the squared loss) the
KKT conditions read

* ``c_k = s_k X^T D_k r`` (block correlation), ``q_k = c_k + Xt_k^T rho_k`` (``rho_k >= 0``,
  C-ReLU only; ``q_k = c_k`` for C-GReLU);
* ``||q_k|| <= lam`` for every block, ``theta_k = alpha_k q_k`` with ``alpha_k > 0`` and
  ``||q_k|| = lam`` for every active block (stationarity);
* ``rho_k . (Xt_k theta_k) = 0`` (complementarity) and ``Xt_k theta_k >= 0`` (primal feasibility).

Multipliers returned by solvers are not unique; :func:`recover_duals` computes its own,
the minimum-norm ones consistent with the given point (see its docstring), so that reports
do not depend on which solver produced the point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

from .._validation import check_lam, check_nonnegative_float, check_X, check_y
from ..activations import get_activation
from ..errors import InvalidParameterError, PatternMismatchError, ShapeError
from ..losses import Loss, get_loss
from ..operators import adjoint, forward
from ..solution import ConvexModel, ConvexSolution

__all__ = [
    "DEFAULT_ACTIVE_TOL",
    "DEFAULT_EQUICORRELATION_TOL",
    "DualCertificate",
    "KKTReport",
    "recover_duals",
    "kkt_report",
    "block_layout",
    "model_from_blocks",
    "solution_from_blocks",
]

logger = logging.getLogger(__name__)

#: A block ``theta_k`` is *active* when ``||theta_k|| > DEFAULT_ACTIVE_TOL * max_j ||theta_j||``.
#: Interior-point solvers (Clarabel) return blocks of norm ~1e-10..1e-8 (relative) for blocks
#: that are zero at the optimum; 1e-6 separates these from genuinely active blocks.
DEFAULT_ACTIVE_TOL = 1e-6
#: Block ``k`` is in the equicorrelation set when ``||q_k|| >= lam * (1 - DEFAULT_EQUICORRELATION_TOL)``.
DEFAULT_EQUICORRELATION_TOL = 1e-5
#: A cone row ``j`` of block ``k`` counts as tight when ``(Xt_k theta_k)_j <= TIGHT_TOL ||x_j|| ||theta_k||``;
#: only tight rows may carry a multiplier (complementary slackness).
TIGHT_TOL = 1e-6
#: Rows with relative slack up to this may carry a multiplier when the tight rows cannot explain
#: ``q_k`` (interior-point solvers leave slacks of ~1e-5 on rows that are tight at the optimum).
LOOSE_TIGHT_TOL = 1e-3
#: Blocks above ``NOISE_CEILING * max ||theta_j||`` are always active. Blocks between the activity
#: threshold and this ceiling are active only if they are in ``S``: interior-point solvers leave
#: blocks of relative size up to ~1e-5 on blocks just outside ``S`` (``||q_k|| / lam ~ 0.999``).
NOISE_CEILING = 1e-3
#: ... provided ``||q_k|| >= lam (1 - NEAR_S_TOL)``: a block whose correlation is clearly below
#: ``lam`` is zero at every optimum whatever its size (e.g. all blocks of a noise-level solution).
NEAR_S_TOL = 1e-2


# ----------------------------------------------------------------------------- blocks
def block_layout(model: ConvexModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blocks of a model as one array with their pattern index and output sign.

    Returns
    -------
    theta : ndarray, shape (d_a, m) or (d_a, m, c)
        ``[U]`` (C-GReLU, ``m = p``) or ``[V, W]`` (C-ReLU, ``m = 2p``).
    pattern : ndarray of int, shape (m,)
        Pattern ``D_i`` of each block.
    sign : ndarray of float, shape (m,)
        ``s_k``: +1 for ``u``/``v`` blocks, -1 for ``w`` blocks.
    """
    p = model.patterns.n_patterns
    spec = model.spec
    theta = np.concatenate([getattr(model, name) for name in spec.blocks], axis=1)
    pattern = np.tile(np.arange(p), len(spec.blocks))
    sign = np.repeat(np.asarray(spec.signs, dtype=float), p)
    return theta, pattern, sign


def model_from_blocks(model: ConvexModel, theta: np.ndarray) -> ConvexModel:
    """Inverse of :func:`block_layout`: a new :class:`ConvexModel` with the blocks ``theta``."""
    p = model.patterns.n_patterns
    theta = np.array(theta, dtype=float, copy=True)
    blocks = {name: theta[:, k * p:(k + 1) * p] for k, name in enumerate(model.spec.blocks)}
    # a vector-output model keeps its program's penalty (one-vs-all: column norms)
    formulation = getattr(model, "formulation", None) if theta.ndim == 3 else None
    return ConvexModel(activation=model.activation, patterns=model.patterns, formulation=formulation, **blocks)


def solution_from_blocks(
    source: ConvexModel,
    theta: np.ndarray,
    *,
    multipliers: np.ndarray | None = None,
    status: str | None = None,
    objective_value: float = float("nan"),
    gap: float | None = None,
    dual_value: float | None = None,
    max_violation: float | None = None,
    lam: float | None = None,
    loss: Loss | None = None,
    derived: str = "",
) -> ConvexModel:
    """:func:`model_from_blocks` that keeps a solution a solution: for a
    :class:`~cvxnn.solution.ConvexSolution` ``source``, a ConvexSolution of the same program with
    the blocks ``theta`` (for a plain :class:`ConvexModel`, the model of :func:`model_from_blocks`).

    What describes the program (``lam``, ``loss``, ``formulation``, ``training_X``, a
    feature-sparse ``extra["penalty"]``) and the solve it came from (``backend``, ``solver``,
    times, iterations) is kept; what describes the source *point* is replaced by the arguments:
    its status (default the source's), objective (default NaN: unknown), certificate (``gap``,
    ``dual_value``; ``rel_gap`` follows), cone violation and cone multipliers. CVXPY's
    ``cone_duals``, ``program_penalty`` (the source's penalty value), the warm-start state
    ``check_state`` and the other solver diagnostics in ``extra`` (whose keys would refill the
    cleared fields) are dropped; ``extra["derived"]`` says what the point is (e.g.
    ``"exact pruning"``).

    The C-ReLU multipliers ``rho_i >= 0`` may be the source's: the dual constraint of
    :func:`~cvxnn.native.certificates.duality_gap`, ``||X^T D_i nu -+ Xt_i^T rho_i|| <= lam``,
    reads the dual point ``nu = grad L(fit)`` and ``rho`` only, never the primal blocks, so any
    ``rho >= 0`` gives a valid bound (weak duality) for every cone-feasible point, and the
    source's bound is as tight for a point with the source's fit.
    """
    if not isinstance(source, ConvexSolution):
        return model_from_blocks(source, theta)
    import dataclasses

    p = source.patterns.n_patterns
    theta = np.array(theta, dtype=float, copy=True)
    blocks = {name: theta[:, k * p:(k + 1) * p] for k, name in enumerate(source.spec.blocks)}
    objective_value = float(objective_value)
    extra = {"penalty": source.extra["penalty"]} if "penalty" in source.extra else {}
    if derived:
        extra["derived"] = derived
    rel_gap = None
    if gap is not None and np.isfinite(objective_value):
        rel_gap = float(gap) / max(abs(objective_value), np.finfo(float).tiny)
    return dataclasses.replace(
        source, **blocks,
        status=source.status if status is None else status,
        objective_value=objective_value,
        lam=source.lam if lam is None else float(lam),
        loss=source.loss if loss is None else loss,
        gap=None if gap is None else float(gap),
        rel_gap=rel_gap,
        dual_value=None if dual_value is None else float(dual_value),
        max_violation=max_violation,
        multipliers=multipliers if source.spec.constrained else None,
        cone_duals=None,
        check_state=None,
        program_penalty=None,
        extra=extra,
    )


def _block_norms(theta: np.ndarray, formulation: str | None = None) -> np.ndarray:
    """Penalty of each block: its 2-norm (scalar output), nuclear norm (vector output), or the
    sum of its column norms (``formulation="one_vs_all"``)."""
    if theta.ndim == 2:
        return np.linalg.norm(theta, axis=0)
    if formulation == "one_vs_all":
        return np.linalg.norm(theta, axis=0).sum(axis=-1)
    return np.linalg.svd(np.transpose(theta, (1, 0, 2)), compute_uv=False).sum(axis=-1)


def _check_unit_tol(value, name: str) -> float:
    """A relative tolerance: a real number in ``[0, 1)`` (NaN, negative, ``>= 1`` refused)."""
    value = check_nonnegative_float(value, name)
    if value >= 1:
        from ..errors import InvalidParameterError

        raise InvalidParameterError(f"{name} is relative to the largest block and must be in [0, 1), got {value}.")
    return value


def _active_mask(norms: np.ndarray, active_tol: float) -> np.ndarray:
    active_tol = _check_unit_tol(active_tol, "active_tol")
    top = norms.max(initial=0.0)
    if top <= 0:
        return np.zeros(norms.shape, dtype=bool)
    return norms > active_tol * top


#: Added to a PatternMismatchError on the data: the usual cause with an estimator.
_STANDARDIZED_HINT = (" An estimator's solution_ is a program on its standardized data: pass "
                      "est.standardizer_.transform(X) (and, for a regressor, est.standardizer_.transform_y(y); "
                      "for a classifier the labels encoded as -1 / +1 or one-hot).")


def _check_data(model: ConvexModel, X) -> np.ndarray:
    """``X`` validated and checked against the model's patterns (a mismatch says how an
    estimator's solution is analysed)."""
    X = check_X(X)
    try:
        model.patterns.check_data(X)
    except PatternMismatchError as exc:
        raise PatternMismatchError(str(exc) + _STANDARDIZED_HINT) from None
    return X


def _check_inputs(model, X, y, lam, loss):
    if not isinstance(model, ConvexModel):
        raise InvalidParameterError(f"expected a ConvexModel / ConvexSolution, got {type(model).__name__}.")
    X = _check_data(model, X)
    y = check_y(y, X.shape[0])
    if lam is None:
        lam = getattr(model, "lam", None)
        if lam is None:
            raise InvalidParameterError("pass lam (the model carries none).")
    lam = check_lam(lam, allow_zero=False)
    if loss is None:
        loss = getattr(model, "loss", None) or "squared"
    loss = get_loss(loss)
    if not loss.smooth:
        raise InvalidParameterError(
            f"the KKT analysis needs a differentiable loss; {loss.name!r} is not "
            "(use squared, logistic or huber)."
        )
    if model.n_outputs == 1 and y.ndim != 1:  # a scalar model: y of several columns is no fit for it
        raise ShapeError(f"the model has one output but y has shape {y.shape}; pass the target it was "
                         "trained on (shape (n,)).")
    if model.n_outputs != 1 or y.ndim != 1:
        raise ShapeError(
            "the KKT / optimal-set analysis is implemented for scalar outputs; for vector outputs "
            "use prune_exact (which handles them) or analyse each output separately."
        )
    y = loss.check_targets(y)
    return X, y, lam, loss


# ----------------------------------------------------------------------------- duals
@dataclass(eq=False)
class DualCertificate:
    """Dual quantities of a convex model at a given ``lam`` (scalar output).

    Attributes
    ----------
    activation : str
    lam : float
    loss : Loss
    fit : ndarray (n,)
        ``yhat = sum_k s_k D_k X theta_k``.
    residual : ndarray (n,)
        ``r = -grad L(yhat)`` (``y - yhat`` for the summed squared loss).
    theta : ndarray (d_a, m)
        The blocks (see :func:`block_layout`); blocks below the activity threshold are kept as given.
    pattern, sign : ndarray (m,)
        Pattern index and output sign of each block.
    active : ndarray of bool (m,)
        Blocks treated as nonzero: ``||theta_k|| > active_tol * max ||theta_j||`` **and** ``k in S``,
        or ``||theta_k|| > NOISE_CEILING * max ||theta_j||`` (1e-3) with
        ``||q_k|| >= lam (1 - NEAR_S_TOL)`` (an inaccurate solve of a block of ``S``). Other blocks
        above the activity threshold are zero at every optimum: solver noise, or the point is
        not optimal; they are listed in :attr:`spurious`.
    spurious : ndarray of bool (m,)
        Blocks above the norm threshold that the KKT conditions say must be zero.
    correlations : ndarray (d_a, m)
        ``c_k = s_k X^T D_k r``.
    rho : ndarray (n, m)
        Cone multipliers (zeros for C-GReLU): the minimum-norm choice described in
        :func:`recover_duals`.
    q : ndarray (d_a, m)
        ``q_k = c_k + Xt_k^T rho_k``.
    q_norms : ndarray (m,)
        ``||q_k||``.
    active_tol, equicorrelation_tol : float
        The thresholds used.
    """

    activation: str
    lam: float
    loss: Loss
    fit: np.ndarray
    residual: np.ndarray
    theta: np.ndarray
    pattern: np.ndarray
    sign: np.ndarray
    active: np.ndarray
    spurious: np.ndarray
    correlations: np.ndarray
    rho: np.ndarray
    q: np.ndarray
    q_norms: np.ndarray
    active_tol: float
    equicorrelation_tol: float

    @property
    def equicorrelation(self) -> np.ndarray:
        """Indices ``S = {k : ||q_k|| >= lam (1 - equicorrelation_tol)}`` (always includes active blocks)."""
        in_s = (self.q_norms >= self.lam * (1.0 - self.equicorrelation_tol)) | self.active
        return np.flatnonzero(in_s)


def _signed_rows(Xa: np.ndarray, signs_col: np.ndarray) -> np.ndarray:
    return signs_col[:, None] * Xa


def _min_norm_point(A: np.ndarray, v: np.ndarray, x0: np.ndarray, max_iter: int = 60) -> np.ndarray:
    """Minimum-norm ``x >= 0`` with ``A x = v`` (``v`` reachable, ``x0`` a feasible point).

    Semismooth Newton on the dual ``max_l  l^T v - 1/2 ||(A^T l)_+||^2`` (``d`` variables, where
    ``A`` is ``d x m``), whose maximiser gives ``x = (A^T l)_+``, finished by the minimum-norm
    solution of ``A_P x_P = v`` on the support ``P`` it found. Returns ``x0`` if neither reaches
    a point with the same ``A x`` (to ``1e-10`` relative) and no larger norm.
    """
    d = A.shape[0]
    scale = max(np.linalg.norm(v), 1e-300)
    lam_ = np.zeros(d)
    mu = 1e-8 * max(np.linalg.norm(A, 2) ** 2, 1e-300)  # Levenberg-Marquardt damping

    def dual(u):
        z = np.maximum(A.T @ u, 0.0)
        return u @ v - 0.5 * z @ z, z

    f, z = dual(lam_)
    anorm = np.linalg.norm(A, 2)
    for _ in range(max_iter):
        g = v - A @ z
        if np.linalg.norm(g) <= 1e-11 * (scale + anorm * np.linalg.norm(z)):
            break
        P = z > 0
        H = A[:, P] @ A[:, P].T
        step = np.linalg.solve(H + mu * np.eye(d), g)
        slope = g @ step
        t = 1.0
        for _ in range(30):
            f_new, z_new = dual(lam_ + t * step)
            if f_new >= f + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        lam_, f, z = lam_ + t * step, f_new, z_new

    def accept(x: np.ndarray) -> bool:
        return bool(np.linalg.norm(A @ x - v) <= 1e-10 * (scale + anorm * np.linalg.norm(x))
                    and x @ x <= (x0 @ x0) * (1.0 + 1e-12))

    if accept(z):
        return z
    # finish on the support the iteration found: the minimum-norm x >= 0 with support P is the
    # minimum-norm solution of A_P x_P = v when that is non-negative (near the optimum the line
    # search can stall on rounding in the dual values, a hair above the tolerance)
    P = z > 0
    if P.any():
        xP = np.linalg.lstsq(A[:, P], v, rcond=None)[0]
        if xP.min() >= -1e-12 * max(float(np.abs(xP).max()), 1e-300):
            x = np.zeros_like(z)
            x[P] = np.maximum(xP, 0.0)
            if accept(x):
                return x
    return x0


def _min_norm_nnls(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The minimum-norm minimiser of ``||A x - b||`` over ``x >= 0``.

    Lawson-Hanson NNLS (``scipy.optimize.nnls``) gives a minimiser ``x0`` (a basic one, at most
    ``d`` nonzeros); ``A x`` is the same for every minimiser, and :func:`_min_norm_point` then
    finds the minimum-norm one among them (a ``d``-dimensional semismooth Newton solve).
    """
    k = A.shape[1]
    if k == 0:
        return np.zeros(0)
    if not np.any(A):
        return np.zeros(k)
    x0, _ = nnls(A, b, maxiter=50 * (k + 1))
    if np.count_nonzero(x0) == 0:
        return x0
    return _min_norm_point(A, A @ x0, x0)


def recover_duals(
    model: ConvexModel,
    X,
    y,
    lam: float | None = None,
    loss: str | Loss | None = None,
    *,
    active_tol: float = DEFAULT_ACTIVE_TOL,
    equicorrelation_tol: float = DEFAULT_EQUICORRELATION_TOL,
) -> DualCertificate:
    """Recover ``r``, ``c_k``, ``rho_k`` and ``q_k`` from any (approximate) optimum.

    Multipliers (C-ReLU) are chosen block by block, independently of any solver duals:

    1. **membership of S**: for every block that could be in ``S`` (norm above the activity
       threshold, or ``||c_k|| >= lam (1 - equicorrelation_tol)``), ``rho_k`` is the minimum-norm
       minimiser of ``||c_k + Xt_k^T rho||`` over ``rho >= 0``, the smallest ``||q_k||`` any
       valid multiplier allows; ``k in S`` iff it is ``>= lam (1 - equicorrelation_tol)``. Its
       optimality conditions give ``Xt_k q_k >= 0`` and ``rho_k . Xt_k q_k = 0``, so ``q_k`` is a
       feasible direction for the optimal-set polytope. Other blocks keep ``rho_k = 0`` (the
       minimum-norm valid multiplier: ``||c_k|| < lam``).
    2. **active blocks** (norm above ``active_tol * max`` and in ``S``, or above
       ``NOISE_CEILING * max`` with ``||q_k|| >= lam (1 - NEAR_S_TOL)``): ``rho_k`` is re-chosen as
       the minimum-norm minimiser of ``|| c_k + Xt_k^T rho - lam theta_k / ||theta_k|| ||`` over
       ``rho >= 0`` supported on the tight rows of ``Xt_k theta_k`` (relative slack ``<= 1e-6``;
       complementary slackness); if that leaves a residual above ``1e-8 lam``, rows with relative
       slack up to ``1e-3`` are allowed as well when this halves the residual (the report's
       complementarity measure then shows the product ``rho . slack``).

    The minimum-norm minimiser: Lawson-Hanson NNLS gives one minimiser; all minimisers share
    ``Xt_k^T rho``, and the one of minimum norm is found by a semismooth Newton method on the
    ``d``-dimensional dual of ``min ||rho||^2 s.t. Xt_k^T rho = Xt_k^T rho_0, rho >= 0``. Blocks
    whose NNLS is solved by ``rho = 0`` (``Xt_k c_k >= 0``, checked for all blocks at once) skip it.

    Parameters
    ----------
    model : ConvexModel or ConvexSolution
        Scalar-output point (C-ReLU or C-GReLU) on patterns built on ``X``.
    X, y : arrays
        Training data.
    lam : float, optional
        Defaults to ``model.lam`` for a :class:`~cvxnn.solution.ConvexSolution`.
    loss : str or Loss, optional
        Differentiable loss (defaults to the solution's, else squared).
    active_tol, equicorrelation_tol : float
        See :data:`DEFAULT_ACTIVE_TOL` and :data:`DEFAULT_EQUICORRELATION_TOL`.

    Returns
    -------
    DualCertificate
    """
    X, y, lam, loss = _check_inputs(model, X, y, lam, loss)
    pats = model.patterns
    Xa = pats.design(X)
    mask = pats.mask
    S = pats.signs()
    fit = forward(Xa, mask, model.effective_weights)
    r = -loss.grad(fit, y)
    theta, pattern, sign = block_layout(model)
    C = adjoint(Xa, mask, r)[:, pattern] * sign  # d_a x m
    norms = np.linalg.norm(theta, axis=0)
    candidate = _active_mask(norms, active_tol)
    c_norms = np.linalg.norm(C, axis=0)
    equicorrelation_tol = _check_unit_tol(equicorrelation_tol, "equicorrelation_tol")
    lam_lo = lam * (1.0 - equicorrelation_tol)
    n, m = Xa.shape[0], theta.shape[1]
    rho = np.zeros((n, m))
    Q = C.copy()
    if model.spec.constrained:  # cone multipliers rho >= 0 enter q_k = c_k + Xt_k^T rho_k
        Srows = S[:, pattern]  # n x m  (row signs of Xt_k)
        row_norms = np.linalg.norm(Xa, axis=1)
        # (1) smallest ||q_k|| over all rho >= 0: decides membership of S for every block that
        #     could be in it (candidates and blocks with ||c_k|| near lam).
        grad0 = Srows * (Xa @ C)  # Xt_k c_k; rho = 0 is the NNLS optimum iff it is >= 0
        thresh = 1e-14 * np.abs(grad0).max(initial=0.0)  # relative (no absolute floor): data of any scale
        need = (grad0.min(axis=0, initial=0.0) < -thresh) & (candidate | (c_norms >= lam_lo))
        for k in np.flatnonzero(need):
            A = _signed_rows(Xa, Srows[:, k]).T
            rho[:, k] = _min_norm_nnls(A, -C[:, k])
        Q = C + Xa.T @ (Srows * rho)
        qn = np.linalg.norm(Q, axis=0)
        big = (norms > NOISE_CEILING * norms.max(initial=0.0)) & (qn >= lam * (1.0 - NEAR_S_TOL))
        active = candidate & ((qn >= lam_lo) | big)
        # (2) active blocks: q_k as close as possible to lam theta_k / ||theta_k||, rho_k supported
        #     on the tight rows of Xt_k theta_k (complementary slackness).
        if active.any():
            idx = np.flatnonzero(active)
            target = lam * theta[:, idx] / norms[idx] - C[:, idx]
            cone = Srows[:, idx] * (Xa @ theta[:, idx])
            rel_slack = cone / (row_norms[:, None] * norms[None, idx] + 1e-300)
            for j, k in enumerate(idx):
                rho[:, k] = 0.0
                best = np.linalg.norm(target[:, j])
                # tight rows first; if they cannot explain q_k (the solver left slacks above
                # TIGHT_TOL on rows that are tight at the optimum), allow nearly tight rows too.
                # The complementarity measure of the report shows what that costs.
                for tol_rows in (TIGHT_TOL, LOOSE_TIGHT_TOL):
                    if best <= 1e-8 * lam:
                        break
                    J = np.flatnonzero(rel_slack[:, j] <= tol_rows)
                    if J.size == 0:
                        continue
                    A = _signed_rows(Xa[J], Srows[J, k]).T  # d_a x |J|
                    cand = _min_norm_nnls(A, target[:, j])
                    err = np.linalg.norm(A @ cand - target[:, j])
                    if err < 0.5 * best:
                        rho[:, k] = 0.0
                        rho[J, k] = cand
                        best = err
            Q[:, idx] = C[:, idx] + Xa.T @ (Srows[:, idx] * rho[:, idx])
        logger.debug("recover_duals: %d + %d NNLS solves for %d blocks", int(need.sum()),
                     int(active.sum()), m)
    else:
        big = (norms > NOISE_CEILING * norms.max(initial=0.0)) & (c_norms >= lam * (1.0 - NEAR_S_TOL))
        active = candidate & ((c_norms >= lam_lo) | big)
    return DualCertificate(
        activation=model.activation,
        lam=lam,
        loss=loss,
        fit=fit,
        residual=r,
        theta=theta,
        pattern=pattern,
        sign=sign,
        active=active,
        spurious=candidate & ~active,
        correlations=C,
        rho=rho,
        q=Q,
        q_norms=np.linalg.norm(Q, axis=0),
        active_tol=float(active_tol),
        equicorrelation_tol=float(equicorrelation_tol),
    )


# ----------------------------------------------------------------------------- report
@dataclass(eq=False)
class KKTReport:
    """A KKT certificate of (approximate) optimality. All measures are dimensionless and 0 at an
    exact optimum.

    Attributes
    ----------
    stationarity : float
        ``max_{k active} || q_k - lam theta_k / ||theta_k|| || / lam``.
    dual_feasibility : float
        ``max_k (||q_k|| / lam - 1)_+`` (every block, active or not).
    complementarity : float
        ``sum_k |rho_k . Xt_k theta_k| / objective`` (0 for C-GReLU).
    primal_feasibility : float
        ``max_{k, j} (-(Xt_k theta_k)_j)_+ / max(||y||_inf, ||yhat||_inf)`` (0 for C-GReLU).
    spurious : float
        ``lam sum_k ||theta_k|| / objective`` over blocks above the activity threshold that the
        KKT conditions say must be zero (0 if none): the share of the objective they carry.
    equicorrelation : ndarray of int
        Block indices ``S`` (see :class:`DualCertificate`).
    active : ndarray of int
        Indices of the active blocks.
    separation : float
        ``min_{k not in S} (1 - ||q_k|| / lam)``: how clearly the blocks outside ``S`` are
        outside (``inf`` when every block is in ``S``); small values mean ``S`` depends on
        the tolerance.
    objective : float
        Convex objective of the model.
    certificate : DualCertificate
        ``r``, ``rho``, ``q`` used for the report.
    """

    stationarity: float
    dual_feasibility: float
    complementarity: float
    primal_feasibility: float
    spurious: float
    equicorrelation: np.ndarray
    active: np.ndarray
    separation: float
    objective: float
    certificate: DualCertificate = field(repr=False)

    @property
    def max_violation(self) -> float:
        """The largest of the five measures."""
        return max(self.stationarity, self.dual_feasibility, self.complementarity,
                   self.primal_feasibility, self.spurious)

    def is_optimal(self, tol: float = 1e-6) -> bool:
        """Whether every KKT measure is at most ``tol``."""
        return self.max_violation <= check_nonnegative_float(tol, "tol")

    def block_labels(self, index) -> list[str]:
        """Human-readable names (``"v[3]"``, ``"w[7]"``, ``"u[2]"``) of block indices."""
        c = self.certificate
        out = []
        nb = c.sign.shape[0]
        for k in np.atleast_1d(index):
            if not (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)) and -nb <= k < nb):
                from ..errors import InvalidParameterError

                raise InvalidParameterError(f"block indices must be integers in [0, {nb}), got {k!r}.")
            spec = get_activation(c.activation)
            name = spec.blocks[spec.signs.index(int(c.sign[k]))].lower()
            out.append(f"{name}[{int(c.pattern[k])}]")
        return out

    def summary(self) -> str:
        """A few lines suitable for a paper's appendix or a reviewer."""
        c = self.certificate
        lines = [
            f"KKT certificate ({c.activation}, loss={c.loss.name}, lam={c.lam:.6g})",
            f"objective            : {self.objective:.12g}",
            f"stationarity / lam   : {self.stationarity:.3e}",
            f"dual feasibility     : {self.dual_feasibility:.3e}",
            f"complementarity      : {self.complementarity:.3e}",
            f"primal feasibility   : {self.primal_feasibility:.3e}",
            f"spurious blocks      : {int(c.spurious.sum())} (share of the objective {self.spurious:.3e})",
            f"active blocks        : {self.active.size} (tol {c.active_tol:g} x max norm)",
            f"equicorrelation |S|  : {self.equicorrelation.size} (tol {c.equicorrelation_tol:g})",
            f"separation of S      : {self.separation:.3e}",
        ]
        return "\n".join(lines)


def kkt_report(
    model: ConvexModel,
    X,
    y,
    lam: float | None = None,
    loss: str | Loss | None = None,
    *,
    active_tol: float = DEFAULT_ACTIVE_TOL,
    equicorrelation_tol: float = DEFAULT_EQUICORRELATION_TOL,
) -> KKTReport:
    """KKT report of a scalar-output C-ReLU / C-GReLU point (see the module docstring).

    Uses the minimum-norm multipliers of :func:`recover_duals` (solver duals are ignored:
    they are not unique). Blocks with ``||theta_k|| <= active_tol * max ||theta_j||`` are
    treated as zero: they enter only the dual-feasibility test. Blocks above that threshold
    that cannot be in ``S`` are measured by :attr:`KKTReport.spurious`.

    Returns
    -------
    KKTReport
    """
    cert = recover_duals(model, X, y, lam, loss, active_tol=active_tol, equicorrelation_tol=equicorrelation_tol)
    X = check_X(X)
    y = cert.loss.check_targets(check_y(y, X.shape[0]))
    lam = cert.lam
    pats = model.patterns
    Xa = pats.design(X)
    theta, q = cert.theta, cert.q
    norms = np.linalg.norm(theta, axis=0)
    act = cert.active
    if act.any():
        dirs = theta[:, act] / norms[act]
        stationarity = float(np.max(np.linalg.norm(q[:, act] - lam * dirs, axis=0)) / lam)
    else:
        stationarity = 0.0
    dual_feas = float(max(0.0, np.max(cert.q_norms / lam - 1.0, initial=0.0)))
    objective = cert.loss.value(cert.fit, y) + lam * float(norms.sum())
    obj_scale = objective if objective > 0 else 1.0
    comp = 0.0
    primal = 0.0
    if get_activation(cert.activation).constrained:
        Srows = pats.signs()[:, cert.pattern]
        cone = Srows * (Xa @ theta)
        comp = float(np.abs(np.sum(cert.rho * cone, axis=0)).sum() / obj_scale)
        fit_scale = max(np.abs(y).max(initial=0.0), np.abs(cert.fit).max(initial=0.0))
        primal = float(max(0.0, -cone.min(initial=0.0)) / fit_scale) if fit_scale > 0 else 0.0
    S = cert.equicorrelation
    outside = np.setdiff1d(np.arange(theta.shape[1]), S)
    separation = float(np.min(1.0 - cert.q_norms[outside] / lam)) if outside.size else float("inf")
    spurious = float(lam * norms[cert.spurious].sum() / obj_scale)
    report = KKTReport(
        stationarity=stationarity,
        dual_feasibility=dual_feas,
        complementarity=comp,
        primal_feasibility=primal,
        spurious=spurious,
        equicorrelation=S,
        active=np.flatnonzero(act),
        separation=separation,
        objective=objective,
        certificate=cert,
    )
    logger.debug("kkt_report: max violation %.3e, |S|=%d", report.max_violation, S.size)
    return report
