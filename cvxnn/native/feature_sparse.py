"""Native solvers for the feature-sparse penalties, certified by duality gaps
(docs/feature-sparsity.md, "Solvers").

The programs (docs/math.md, "The convex programs", with a penalty ``R`` of
:mod:`cvxnn.feature_penalties` on the weight matrix)::

    C-GReLU:  min_U  h(A U) + lam * R(U),                 A U = sum_i D_i X_a u_i
    C-ReLU:   min_{V,W}  h(A (V - W)) + lam * R([V, W])   s.t.  Xt_i v_i >= 0, Xt_i w_i >= 0

with ``h(z) = L(z, y)`` smooth. Vector output (``c`` outputs) has ``d_a x c`` blocks and ``R`` acts
on the ``d_a x (p c)`` weight matrix (:mod:`cvxnn.feature_penalties`).

**C-GReLU** is composite (``h`` smooth, ``R`` a norm with a closed-form prox):
:func:`~cvxnn.native.fista.rfista` runs on it unchanged through :class:`FeatureSparseProblem`.

**C-ReLU** runs the augmented Lagrangian of :mod:`cvxnn.native.al` with this penalty:
:class:`FeatureALProblem` is its subproblem (loss plus the cone term
``1/(2 delta) ||(gamma - delta Xt T)_+||^2``, smooth) with ``R``'s prox, minimised by R-FISTA;
the multipliers are then updated, ``gamma <- (gamma - delta Xt T)_+``, and ``delta`` grows when
the cone violation stalls (the rules of :func:`cvxnn.native.al.solve_relu`, whose problem
object takes only the block penalties).

**Certificates.** With ``theta = grad h(z)`` at the fit, Fenchel duality gives the dual
``max -h*(nu)`` subject to ``R*(A^T nu) <= lam`` (C-GReLU), and for C-ReLU, with cone
multipliers ``rho >= 0``,

    R*([ X_a^T (D_i nu - S_i rho^v_i) ]_i, [ -X_a^T (D_i nu + S_i rho^w_i) ]_i) <= lam

(``S_i = 2 D_i - I``): the gradient of the Lagrangian in ``(V, W)`` at ``(nu, rho)``. Every scaled
pair ``s (theta, rho)`` with ``s <= lam / R*(...)`` is feasible, the loss picks the best ``s``
(:meth:`~cvxnn.losses.Loss.best_dual_scale`), and ``P - (-h*(s theta))`` bounds ``P - P*`` for a
cone-feasible point; the C-ReLU point is reported with its cone violation, and it is
``"optimal"`` only when the relative gap is ``<= tol`` and the violation ``<= feas_tol``. The
multipliers are the AL's ``(gamma - delta Xt T)_+`` at the returned point. ``R*`` is
:meth:`~cvxnn.feature_penalties.GroupSparsePenalty.dual_norm_value`.

**Start point.** Before iterating, the start point (zero, or the warm start with its
multipliers) is certified and returned with ``iterations == 0`` when its gap is within ``tol``.
Zero is cone feasible, and at ``lam >= lam_max`` its C-ReLU certificate needs the multipliers of
the ``lam_max`` program: :func:`_relu_zero_check` tries ``rho = 0``, the multipliers of the
columnwise cone projections (which also bound ``lam_max`` from below and so stop the check far
below it) and then those of :func:`feature_relu_lam_max` (Clarabel). Without them the augmented
Lagrangian leaves zero for blocks of ~1e-3 and certifies its way back only as fast as its
multipliers converge.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np
from scipy.optimize import nnls

from .._validation import callback_stops, check_lam, check_positive_int, check_solver_options, check_Xy
from ..activations import get_activation
from ..backends.cvxpy_adapter import run_problem
from ..errors import ConvergenceWarning, InvalidParameterError, PatternMismatchError, ShapeError, SolverError
from ..feature_penalties import GroupSparsePenalty
from ..losses import Loss, get_loss
from ..operators import ImplicitDesign, adjoint
from ..patterns import Patterns
from ..solution import ConvexModel, ConvexSolution
from . import al
from ._losses import SmoothKernel, make_kernel
from .al import ALProblem
from .certificates import GapCertificate, _scaled_dual, feature_relu_certificate, feature_sparse_certificate
from .fista import FistaStep, SmoothPlusNorm, initial_step, rfista

__all__ = ["FeatureALProblem", "FeatureSparseProblem", "feature_relu_certificate", "feature_relu_lam_max",
           "feature_sparse_certificate", "solve_feature_sparse_native"]

logger = logging.getLogger(__name__)


class _ProxWithValue:
    """The ``penalty`` R-FISTA and the AL call: ``prox(V, t) -> (prox_{tR}(V), R(prox))`` on
    ``(d, m, c)`` iterates, and ``norms`` / ``dual_norms`` whose sum / max are ``R`` / ``R*``."""

    def __init__(self, penalty: GroupSparsePenalty) -> None:
        self.penalty = penalty

    def prox(self, V: np.ndarray, t: float) -> tuple[np.ndarray, float]:
        X = self.penalty.prox(V, t)
        return X, self.penalty.value(X)

    def norms(self, B: np.ndarray) -> np.ndarray:
        return self.penalty.group_norms(B)

    def dual_norms(self, G: np.ndarray) -> np.ndarray:
        return self.penalty.dual_norm(G)


class FeatureSparseProblem(SmoothPlusNorm):
    """C-GReLU with a :class:`~cvxnn.feature_penalties.GroupSparsePenalty` as a composite
    problem for :func:`~cvxnn.native.fista.rfista` (iterates ``(d_a, p, c)``).

    Parameters
    ----------
    op : ImplicitDesign
        The implicit design ``A = [D_1 X_a, ..., D_p X_a]``.
    kernel : SmoothKernel
        The smooth loss bound to its targets.
    lam : float
    penalty : GroupSparsePenalty
    """

    def __init__(self, op: ImplicitDesign, kernel: SmoothKernel, lam: float, penalty: GroupSparsePenalty) -> None:
        self.op = op
        self.kernel = kernel
        self.lam = float(lam)
        self.norm = penalty
        self.penalty = _ProxWithValue(penalty)

    def dual_norm(self, grad: np.ndarray) -> float:
        """``R^*(A^T theta)`` of the feature-sparse penalty."""
        return self.norm.dual_norm_value(grad)


class FeatureALProblem(ALProblem):
    """The augmented-Lagrangian subproblem of C-ReLU (:class:`cvxnn.native.al.ALProblem`) with a
    feature-sparse penalty of ``T = [V, W]`` (``d_a x 2p x c``) in place of the block norms."""

    def __init__(self, Xa: np.ndarray, mask: np.ndarray, kernel: SmoothKernel, lam: float, gamma: np.ndarray,
                 delta: float, penalty: GroupSparsePenalty) -> None:
        super().__init__(Xa, mask, kernel, lam, gamma, delta)
        self.norm = penalty
        self.penalty = _ProxWithValue(penalty)

    def dual(self, grad: np.ndarray) -> tuple[float, float]:
        """C-ReLU dual value of the rescaled ``(theta, rho)`` behind ``grad`` and the scale."""
        return _scaled_dual(self.kernel, self.theta, self.norm.dual_norm_value(grad), self.lam)


def _solve_relu_al(problem: FeatureALProblem, T0: np.ndarray, *, tol: float, feas_tol: float, max_iter: int,
                   eta0: float, callback) -> dict[str, Any]:
    """The outer loop of :func:`cvxnn.native.al.solve_relu` on :class:`FeatureALProblem`."""
    lam, p = problem.lam, problem.p
    T = T0
    img = problem.forward(T)
    # the objective of the zero model: once a dual bound comes within tol of it, zero is certified
    # (at lam >= lam_max the iterates otherwise drift to blocks of about 1e-4, or run out of
    # iterations next to the optimum they started from)
    zero_img = problem.forward(np.zeros_like(T0))
    F0 = problem.loss_value(zero_img)
    state = {"D": -np.inf, "viol": problem.violation(img), "it": 0, "done": False, "callback_stop": False,
             "zero": False}
    total, outer, eta = 0, 0, float(eta0)
    inner_tol = al.INNER_TOL0
    # the first outer step never raises delta: a warm start is often feasible already, and
    # measuring the next violation against it doubled delta at every step (to 1e13 on a path)
    viol_prev, t_dual, gamma_prev = math.inf, 1.0, problem.gamma
    while total < max_iter:
        def monitor(step: FistaStep) -> bool:
            P = problem.loss_value(step.img) + lam * step.penalty
            if not math.isfinite(P):
                raise SolverError("the augmented Lagrangian produced a non-finite objective; rescale the data.",
                                  status="numerical_error")
            D, s = problem.dual(step.grad_y)
            state["D"] = max(state["D"], D)
            state["it"] += 1
            rel = (P - state["D"]) / max(abs(P), np.finfo(float).tiny)
            check = state["it"] % al.CHECK_EVERY == 0 or rel <= tol
            if check:
                state["viol"] = problem.violation(step.img)
            if callback is not None:
                info = {"iteration": state["it"], "outer": outer + 1, "objective": P, "dual": state["D"],  # noqa: B023
                        "gap": P - state["D"], "rel_gap": rel, "violation": state["viol"], "delta": problem.delta}
                if callback_stops(callback(info)):
                    state["callback_stop"] = True
                    return True
            if check and rel <= tol and state["viol"] <= feas_tol:
                state["done"] = True
                return True
            if check and F0 - state["D"] <= tol * max(abs(F0), np.finfo(float).tiny):
                state["done"] = state["zero"] = True
                return True
            # inner stop: relative gap of the AL subproblem (its Fenchel dual at the y-point)
            return check and problem.subproblem_rel_gap(P, D, s) <= inner_tol  # noqa: B023

        out = rfista(problem, T, img, eta0=eta, max_iter=min(max_iter - total, al.INNER_MAX), monitor=monitor)
        total += out.iterations
        T, img, eta = out.x, out.img, out.eta
        if state["zero"]:
            T, img = np.zeros_like(T0), zero_img
        outer += 1
        if state["done"] or state["callback_stop"]:
            break
        gamma_new = problem._rho(img[:, : 2 * p, :])
        viol = problem.violation(img)
        if viol <= viol_prev:  # accelerated proximal point on the dual
            t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t_dual * t_dual))
            beta, t_dual = (t_dual - 1.0) / t_new, t_new
        else:
            beta, t_dual = 0.0, 1.0
        problem.gamma = gamma_new + beta * (gamma_new - gamma_prev) if beta > 0.0 else gamma_new
        gamma_prev = gamma_new
        if viol > al.VIOL_DECREASE * viol_prev:
            problem.set_delta(problem.delta * al.DELTA_GROWTH)
            eta /= al.DELTA_GROWTH
            t_dual = 1.0
        viol_prev = max(viol, np.finfo(float).tiny)
        inner_tol = max(inner_tol * al.INNER_DECREASE, 0.1 * tol)
        logger.debug("feature AL outer %d: it %d, viol %.3e, delta %.3e", outer, total, viol, problem.delta)
    rho = problem._rho(img[:, : 2 * p, :])  # the multipliers (gamma - delta Xt T)_+ at the returned point
    return {"T": T, "rho": rho, "dual": state["D"], "iterations": total, "outer": outer, "eta": eta,
            "callback_stop": state["callback_stop"]}


def _check_penalty(penalty) -> GroupSparsePenalty:
    if not isinstance(penalty, GroupSparsePenalty):
        raise InvalidParameterError(
            "penalty must be a cvxnn.feature_penalties penalty (FeatureGroupL2 or SparseGroupL2), "
            f"got {type(penalty).__name__}; the block penalties run through cvxnn.solve."
        )
    return penalty


def _check_warm(warm_start, patterns: Patterns, activation: str) -> None:
    if not isinstance(warm_start, ConvexModel) or warm_start.activation != activation:
        raise InvalidParameterError(f"warm_start must be a ConvexModel with activation={activation!r}.")
    if warm_start.patterns is not patterns and not (
            np.array_equal(warm_start.patterns.mask, patterns.mask)
            and np.array_equal(warm_start.patterns.gates, patterns.gates)):
        raise PatternMismatchError("warm_start was computed on other patterns; pass a model on these patterns.")


#: The zero check stops (zero is not optimal) when ``lam`` is below ``1 - ZERO_SCREEN_MARGIN``
#: times the lower bound on ``lam_max`` of the cone projections (feasible up to rounding).
ZERO_SCREEN_MARGIN = 1e-6


def _pair_signs(mask: np.ndarray, c: int) -> np.ndarray:
    """``n x 2pc`` cone signs of the columns of ``[V, W]`` in the ``d_a x 2pc`` layout (column
    ``j c + k`` is output ``k`` of block ``j``, whose pattern is ``j mod p``)."""
    S = 2.0 * np.asarray(mask, dtype=np.float64) - 1.0
    return np.repeat(np.concatenate([S, S], axis=1), c, axis=1)


def _pair_correlations(C: np.ndarray) -> np.ndarray:
    """``[C, -C]`` in the ``d_a x 2pc`` layout, from correlations of shape ``(d_a, p)`` or ``(d_a, p, c)``."""
    C3 = C[:, :, None] if C.ndim == 2 else C
    return np.concatenate([C3, -C3], axis=1).reshape(C3.shape[0], -1)


#: Constraint generation for :func:`feature_relu_lam_max`: the run stops once the multipliers'
#: value and a cone-feasible lower bound agree to this relative tolerance (Clarabel's accuracy on
#: the whole program is about the same).
LAM_MAX_RTOL = 1e-8
#: Rows added per column and round (times ``d_a``): the most violated ones among those not yet in.
LAM_MAX_ROWS_PER_ROUND = 3
#: A row counts as violated when ``-(S_i Xt theta_j)_r`` exceeds this fraction of the column's
#: largest ``|S_i Xt theta_j|``.
LAM_MAX_VIOLATION = 1e-7
#: Rounds before the whole program is solved instead.
LAM_MAX_ROUNDS = 30


def _cone_rows_program(Xs: np.ndarray, S2: np.ndarray, CCs: np.ndarray, penalty: GroupSparsePenalty, c: int,
                       rows: np.ndarray, cols: np.ndarray):
    """``max <CCs, Theta>`` over ``R(Theta) <= 1`` and the cone rows ``(rows, cols)`` only:
    ``S2[r, j] Xs[r] theta_j >= 0``. Returns the problem, ``Theta`` and the cone constraint (None
    without rows)."""
    import scipy.sparse as sp

    d, m = CCs.shape
    Theta = cp.Variable((d, m), name="Theta")
    cons = [penalty.cvxpy(Theta, n_outputs=c).expression <= 1]
    cone = None
    if rows.size:
        vals = (S2[rows, cols][:, None] * Xs[rows]).ravel()
        A = sp.csr_matrix((vals, (np.repeat(np.arange(rows.size), d), (cols[:, None] * d + np.arange(d)).ravel())),
                          shape=(rows.size, d * m))
        cone = A @ cp.vec(Theta, order="F") >= 0
        cons.append(cone)
    return cp.Problem(cp.Maximize(cp.sum(cp.multiply(CCs, Theta))), cons), Theta, cone


def _cone_projection(B: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection of ``t`` onto the cone ``{u : B u >= 0}`` and its multipliers ``mu >= 0``:
    ``proj = t + B^T mu`` with ``mu`` the non-negative least squares of ``B^T mu ~ -t`` (Moreau:
    ``-B^T mu`` is the projection onto the polar cone)."""
    mu, _ = nnls(B.T, -t, maxiter=50 * (B.shape[0] + 1))
    return t + B.T @ mu, mu


def feature_relu_lam_max(Xa: np.ndarray, mask: np.ndarray, C: np.ndarray, penalty: GroupSparsePenalty, *,
                         start_rows: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """C-ReLU ``lam_max`` under a feature-sparse penalty, and cone multipliers that attain it.

    ``lam_max = min_{rho >= 0} R*(G(rho))`` with ``G(rho) = [c_i + Xt_i^T rho^v_i]_i,
    [-c_i + Xt_i^T rho^w_i]_i`` (docs/feature-sparsity.md, "lam_max"). It is solved through its
    conic dual ``max { <[C, -C], Theta> : Xt_i theta_i >= 0, R(Theta) <= 1 }`` with Clarabel, on
    unit scales (the value is homogeneous in ``C`` and invariant to a scale of ``X_a``, which the
    multipliers absorb); ``rho`` are the duals of the cone constraints.

    The ``n x 2pc`` cone rows are generated, not all posed: the first program holds the rows on
    which the projection of each column ``+-c_i`` onto its cone is tight (one NNLS per column),
    and each round adds, per column, the ``LAM_MAX_ROWS_PER_ROUND d_a`` most violated rows. Each
    program is a relaxation, so its value (the ``R*`` of its multipliers, zero on the rows left
    out) bounds ``lam_max`` from above; the projections of its ``Theta``'s columns onto their
    cones are feasible and bound it from below. The run stops when the two agree to
    ``LAM_MAX_RTOL`` (or no row is violated); after ``LAM_MAX_ROUNDS`` rounds the whole program
    is solved. On ``n = 2000, d = 20``, 50 gates two rounds certified ``5e-9``, with 8 % of the
    rows posed (docs/feature-sparsity.md).

    Parameters
    ----------
    Xa : ndarray of shape (n, d_a)
    mask : ndarray of bool, shape (n, p)
    C : ndarray of shape (d_a, p) or (d_a, p, c)
        The correlations ``c_i = X_a^T D_i r0`` with ``r0 = -grad L(0, y)``.
    penalty : GroupSparsePenalty
    start_rows : ndarray of bool, shape (n, 2pc), optional
        The cone rows of the first program (column ``j c + k`` is output ``k`` of block ``j``,
        the ``v`` blocks first). By default the rows on which the cone projections of the columns
        of ``[C, -C]`` are tight; :func:`_relu_zero_check` passes those it has computed.

    Returns
    -------
    value : float
        ``R*(G(rho))`` evaluated in float64 at the returned multipliers: an upper bound on
        ``lam_max`` (within ``LAM_MAX_RTOL`` of it, or Clarabel's accuracy) that ``rho`` attains,
        so that the zero model with these multipliers has a zero duality gap at every
        ``lam >= value``.
    rho : ndarray of shape (n, 2p, c)
        Cone multipliers ``>= 0`` (the ``v`` blocks first), in the layout of
        :func:`~cvxnn.native.certificates.feature_relu_certificate`.

    Raises
    ------
    SolverError
        If Clarabel fails on the program.
    """
    Xa = np.asarray(Xa, dtype=np.float64)
    n, d = Xa.shape
    p = mask.shape[1]
    c = 1 if C.ndim == 2 else C.shape[2]
    CC = _pair_correlations(np.asarray(C, dtype=np.float64))
    S2 = _pair_signs(mask, c)
    m = CC.shape[1]
    c_scale = float(np.abs(CC).max(initial=0.0))
    if c_scale == 0.0:
        return 0.0, np.zeros((n, 2 * p, c))
    # unit scales: Clarabel called the program on X * 1e-6, y * 1e6 "optimal" at twice the value
    x_scale = max(float(np.abs(Xa).max(initial=0.0)), np.finfo(float).tiny)
    Xs, CCs = Xa / x_scale, CC / c_scale

    def multipliers_value(rows, cols, cone) -> tuple[float, np.ndarray]:
        rho = np.zeros((n, m))
        if cone is not None:
            duals = np.asarray(cone.dual_value, dtype=np.float64).ravel()
            rho[rows, cols] = np.maximum(duals, 0.0) * (c_scale / x_scale)
        return penalty.dual_norm_value(CC + Xa.T @ (S2 * rho)), rho

    if start_rows is not None:
        if np.size(start_rows) != n * m:
            raise ShapeError(f"start_rows has {np.size(start_rows)} entries; the program has {n} x {m} cone rows.")
        posed = np.array(start_rows, dtype=bool).reshape(n, m)
    else:
        posed = np.zeros((n, m), dtype=bool)
        for j in np.nonzero((S2 * (Xs @ CCs)).min(axis=0) < 0.0)[0]:  # columns outside their cones
            _, mu = _cone_projection(S2[:, j, None] * Xs, CCs[:, j])
            posed[:, j] = mu > 0.0
    best, best_rho, lower = math.inf, None, 0.0
    k = max(LAM_MAX_ROWS_PER_ROUND * d, 1)
    for rnd in range(LAM_MAX_ROUNDS):
        rows, cols = np.nonzero(posed)
        prob, Theta, cone = _cone_rows_program(Xs, S2, CCs, penalty, c, rows, cols)
        run_problem(prob, "CLARABEL", what="the C-ReLU lam_max program", warn=False,
                    allow=("optimal", "optimal_inaccurate"))
        value, rho = multipliers_value(rows, cols, cone)
        if value < best:
            best, best_rho = value, rho
        T = np.asarray(Theta.value, dtype=np.float64)
        Z = S2 * (Xs @ T)
        Z /= np.maximum(np.abs(Z).max(axis=0), np.finfo(float).tiny)
        violated = (Z < -LAM_MAX_VIOLATION) & ~posed
        if not violated.any():
            lower = best  # Theta lies in every cone (to the row tolerance): the relaxation is exact
            break
        Tp = T.copy()
        for j in np.nonzero(violated.any(axis=0))[0]:
            Tp[:, j], _ = _cone_projection(S2[:, j, None] * Xs, T[:, j])
        r_tp = penalty.value(Tp)
        if r_tp > 0.0:
            lower = max(lower, float(np.sum(CC * Tp)) / r_tp)
        logger.debug("C-ReLU feature lam_max, round %d: %d of %d rows, bounds [%.12g, %.12g]",
                     rnd, rows.size, n * m, lower, best)
        if best - lower <= LAM_MAX_RTOL * best:
            break
        Z[~violated] = np.inf
        add = np.zeros_like(posed)
        np.put_along_axis(add, np.argsort(Z, axis=0, kind="stable")[:k], True, axis=0)
        posed |= add & violated
    else:
        logger.info("C-ReLU feature lam_max: %d rounds left bounds [%.12g, %.12g]; solving the whole program",
                    LAM_MAX_ROUNDS, lower, best)
        Theta = cp.Variable((d, m), name="Theta")
        cone = cp.multiply(S2, Xs @ Theta) >= 0
        prob = cp.Problem(cp.Maximize(cp.sum(cp.multiply(CCs, Theta))),
                          [cone, penalty.cvxpy(Theta, n_outputs=c).expression <= 1])
        run_problem(prob, "CLARABEL", what="the C-ReLU lam_max program", warn=False,
                    allow=("optimal", "optimal_inaccurate"))
        rho = np.maximum(np.asarray(cone.dual_value, dtype=np.float64), 0.0) * (c_scale / x_scale)
        value = penalty.dual_norm_value(CC + Xa.T @ (S2 * rho))
        if value < best:
            best, best_rho = value, rho
    logger.debug("C-ReLU feature lam_max: %.12g (lower bound %.12g)", best, lower)
    return best, best_rho.reshape(n, 2 * p, c)


def _relu_zero_check(Xa: np.ndarray, mask: np.ndarray, kernel: SmoothKernel, lam: float,
                     penalty: GroupSparsePenalty, tol: float, rho0: np.ndarray | None,
                     rho0_exact: bool = False) -> tuple[GapCertificate | None, np.ndarray | None, str]:
    """Certify the zero model of C-ReLU at ``lam`` before iterating.

    The zero point is cone feasible; its gap is that of :func:`feature_relu_certificate` with
    some multipliers ``rho``, tried from the cheapest: ``rho0`` (a warm start's), ``rho = 0``
    (certifies ``lam >= R*([C, -C])``, the C-GReLU ``lam_max``), the multipliers of the
    columnwise cone projections ``pi_i = proj_{K_i}(+-c_i)`` (one NNLS per column, largest
    correlation first), and the exact multipliers of :func:`feature_relu_lam_max`. The
    projections also give a lower bound on ``lam_max``: ``Theta`` made of any of them lies in the
    cones, so ``<[C, -C], Theta> / R(Theta) <= lam_max``; once ``lam`` is below it zero is not
    optimal and the check stops, so the exact program runs only where ``lam`` is at least that
    bound. ``rho0_exact`` says that ``rho0`` are the multipliers of that program (a zero model
    certified by it): if they do not certify, no multipliers do, and nothing more is tried.

    Returns
    -------
    cert, rho, how
        The certificate and multipliers when zero is certified (``rel_gap <= tol``), with
        ``how`` naming the multipliers; otherwise ``(None, rho, how)`` with the exact
        multipliers when they were computed (``how == "lam_max"``), else ``(None, None, "")``.
    """
    n, d = Xa.shape
    p, c = mask.shape[1], kernel.y.shape[1]
    zero = np.zeros((d, 2 * p, c))

    def certified(rho) -> GapCertificate | None:
        cert = feature_relu_certificate(Xa, mask, kernel, lam, zero, rho, penalty)
        return cert if cert.rel_gap <= tol else None

    for rho, how in ((rho0, "warm_start"), (None, "zero")):
        if how == "warm_start" and rho0 is None:
            continue
        cert = certified(rho)
        if cert is not None:
            return cert, rho, how
        if rho0_exact:
            return None, rho0, "lam_max"
    C = adjoint(Xa, mask, -kernel.grad(np.zeros((n, c))))  # c_i = X_a^T D_i r0
    CC = _pair_correlations(C)
    S2 = _pair_signs(mask, c)
    norms = np.linalg.norm(CC, axis=0)
    rho = np.zeros((n, 2 * p * c))
    Theta = np.zeros_like(CC)  # the projections so far: a point of the cones
    num, lower, checkpoint = 0.0, 0.0, 1
    for k, j in enumerate(np.argsort(-norms, kind="stable")):
        if norms[j] == 0.0:
            break
        if float((S2[:, j] * (Xa @ CC[:, j])).min()) < 0.0:  # c_j outside its cone: project
            A = (S2[:, j, None] * Xa).T
            rho[:, j], _ = nnls(A, -CC[:, j], maxiter=50 * (n + 1))
            pj = CC[:, j] + A @ rho[:, j]
        else:
            pj = CC[:, j]
        if np.linalg.norm(pj) <= 1e-9 * norms[j]:
            continue  # c_j is (up to rounding) in the polar cone: it contributes nothing
        Theta[:, j] = pj
        num += float(CC[:, j] @ pj)
        lower = max(lower, float(CC[:, j] @ pj) / penalty.value(pj[:, None]))
        if k + 1 == checkpoint:  # the prefix as one point of the cones, at k = 1, 2, 4, ...
            lower = max(lower, num / penalty.value(Theta))
            checkpoint *= 2
        if lam < lower * (1.0 - ZERO_SCREEN_MARGIN):
            logger.debug("zero check: lam %.6g below the lower bound %.6g on lam_max", lam, lower)
            return None, None, ""
    lower = max(lower, num / penalty.value(Theta)) if num > 0.0 else lower
    if lam < lower * (1.0 - ZERO_SCREEN_MARGIN):
        return None, None, ""
    rho = rho.reshape(n, 2 * p, c)
    cert = certified(rho)
    if cert is not None:
        return cert, rho, "cone_projections"
    try:
        _, rho = feature_relu_lam_max(Xa, mask, C, penalty, start_rows=rho.reshape(n, -1) > 0.0)
    except SolverError as exc:  # the iteration still runs and certifies what it can
        logger.info("zero check: the lam_max program failed (%s)", exc)
        return None, None, ""
    cert = certified(rho)
    return cert, rho, "lam_max"


def solve_feature_sparse_native(
    X,
    y,
    patterns: Patterns,
    *,
    penalty: GroupSparsePenalty,
    lam: float,
    activation: str = "gated_relu",
    loss: str | Loss = "squared",
    tol: float = 1e-6,
    feas_tol: float | None = None,
    max_iter: int = 10_000,
    warm_start: ConvexModel | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    memory_budget: int | None = None,
) -> ConvexSolution:
    """Solve C-GReLU (R-FISTA) or C-ReLU (augmented Lagrangian) with a feature-sparse penalty,
    stopped on the relative duality gap (and, for C-ReLU, the cone violation).

    Parameters
    ----------
    X : array of shape (n, d)
    y : array of shape (n,) or (n, c)
        Targets (labels in {-1, +1} for the logistic loss; one-hot for cross-entropy).
    patterns : Patterns
        Built on ``X``.
    penalty : FeatureGroupL2 or SparseGroupL2
    lam : float
        ``> 0``.
    activation : {"gated_relu", "relu"}
    loss : str or Loss
        A smooth loss with a conjugate (squared, logistic, Huber, cross-entropy).
    tol : float
        Relative gap tolerance: ``status == "optimal"`` iff ``gap <= tol * |objective|`` (and
        ``max_violation <= feas_tol`` for C-ReLU).
    feas_tol : float, optional
        C-ReLU: cone-violation tolerance in prediction units (default ``tol``).
    max_iter : int
        R-FISTA iterations (C-ReLU: inner iterations over all outer steps).
    warm_start : ConvexModel, optional
        A point of the same activation on the same patterns (its ``step_size``, and for C-ReLU its
        ``multipliers``, are reused when present). A start point (zero without it) whose gap is
        within ``tol`` is returned as it is, with ``iterations == 0`` and
        ``extra["certified_by"]`` (``"zero"``, ``"warm_start"``, ``"cone_projections"`` or
        ``"lam_max"``: the multipliers that certified it; see the module docstring).
    callback : callable, optional
        ``callback(info)`` every iteration (``iteration``, ``objective``, ``dual``, ``gap``,
        ``rel_gap``, and ``step`` or ``violation``); returning True stops the solve.
    memory_budget : int, optional
        Bytes for the matrix-free operator / the AL arrays.

    Returns
    -------
    ConvexSolution
        ``backend="native"``, ``solver="rfista"`` or ``"al"``, ``objective_value = L + lam R``,
        ``program_penalty = R``, ``gap``, ``rel_gap``, ``dual_value``; C-ReLU also
        ``max_violation``, ``multipliers`` and ``al_delta``. Vector output is labelled
        ``formulation="one_vs_all"`` (its blocks are mapped by columns).

    Raises
    ------
    InvalidParameterError, ShapeError, LabelError, PatternMismatchError
        For bad inputs.
    SolverError
        If the iteration breaks down numerically.
    """
    penalty = _check_penalty(penalty)
    if not isinstance(activation, str) or activation not in ("relu", "gated_relu"):
        raise InvalidParameterError(f"activation must be 'relu' or 'gated_relu', got {activation!r}.")
    lam = check_lam(lam, allow_zero=False)
    max_iter = check_positive_int(max_iter, "max_iter")
    opts = check_solver_options(tol=tol, feas_tol=feas_tol, callback=callback, memory_budget=memory_budget)
    tol = opts["tol"]
    feas_tol = tol if feas_tol is None else opts["feas_tol"]
    if not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    X, y = check_Xy(X, y)
    patterns.check_data(X)
    loss_obj = get_loss(loss)
    make_kernel(loss_obj, np.zeros((1, 1)), np.float64)  # refuse non-smooth losses before label checks
    if y.ndim == 2 and not loss_obj.supports_vector:
        raise InvalidParameterError(f"the {loss_obj.name} loss supports scalar targets only, got y of shape {y.shape}.")
    y = loss_obj.check_targets(y)
    y2 = y[:, None] if y.ndim == 1 else y
    c = y2.shape[1]
    kernel = make_kernel(loss_obj, y2, np.float64)
    if warm_start is not None:
        _check_warm(warm_start, patterns, activation)
    t0 = time.perf_counter()
    spec = get_activation(activation)
    if not spec.constrained:
        fields = _gated(X, patterns, kernel, lam, penalty, tol, max_iter, warm_start, callback, memory_budget)
    else:
        fields = _relu(X, patterns, kernel, lam, penalty, tol, feas_tol, max_iter, warm_start, callback,
                       memory_budget)
    elapsed = time.perf_counter() - t0
    rel, viol = fields.pop("rel_gap"), fields.get("max_violation") or 0.0
    stopped = fields["extra"]["stopped_by_callback"]
    converged = rel is not None and rel <= tol and viol <= feas_tol and not stopped
    weights = fields.pop("weights")
    if c == 1:
        weights = {k: np.ascontiguousarray(v[:, :, 0]) for k, v in weights.items()}
    gap_text = "no certified gap (outside the cones)" if rel is None else f"relative gap {rel:.3e}"
    logger.debug("feature-sparse %s: %d iterations, %s, viol %.1e, %.3f s", fields["solver"],
                 fields["iterations"], gap_text, viol, elapsed)
    if not converged and not stopped:
        warnings.warn(f"the feature-sparse {activation} solver stopped after {fields['iterations']} iterations with "
                      f"{gap_text} (tol {tol:.1e}) and cone violation {viol:.1e}; raise max_iter, "
                      "loosen tol, or warm-start from this solution.", ConvergenceWarning, stacklevel=2)
    fields["extra"].update(penalty=repr(penalty))
    return ConvexSolution(
        activation=activation, patterns=patterns, **weights,
        status="optimal" if converged else "max_iterations",
        lam=lam, loss=loss_obj, backend="native", solve_time=elapsed, compile_time=None, rel_gap=rel,
        formulation="one_vs_all" if c > 1 else None, training_X=X if spec.constrained and c > 1 else None,
        **fields,
    )


def _gated(X, patterns, kernel, lam, penalty, tol, max_iter, warm_start, callback, memory_budget) -> dict[str, Any]:
    d, p, c = patterns.design_dim, patterns.n_patterns, kernel.y.shape[1]
    op = ImplicitDesign(patterns.design(X), patterns.mask, n_outputs=c, dtype=np.float64,
                        memory_budget=memory_budget, reserve_bytes=10 * d * p * c * 8 + 8 * X.shape[0] * c * 8)
    problem = FeatureSparseProblem(op, kernel, lam, penalty)
    eta0 = None
    if warm_start is not None:
        U0 = np.asarray(warm_start.U, dtype=np.float64).reshape(d, p, c).copy()
        eta0 = getattr(warm_start, "step_size", None)
    else:
        U0 = np.zeros((d, p, c))
    if eta0 is None or not np.isfinite(eta0) or eta0 <= 0:
        eta0 = initial_step(op, kernel)
    # the start point (zero, or the warm start) may be optimal already: certified, it is returned
    # without an iteration (at lam >= lam_max for zero)
    cert0 = feature_sparse_certificate(op, kernel, lam, U0, penalty)
    if cert0.rel_gap <= tol:
        return _gated_fields(op, U0, cert0, cert0.dual, penalty, iterations=0, eta=eta0,
                             extra={"restarts": 0, "backtracks": 0, "stopped_by_callback": False,
                                    "certified_by": "zero" if not np.any(U0) else "warm_start"})
    img0 = op.forward(U0) if np.any(U0) else np.zeros((op.n, c))
    best: dict[str, Any] = {"P": problem.primal(img0, penalty.value(U0)), "U": U0, "D": cert0.dual}
    state = {"callback_stop": False}

    def monitor(step: FistaStep) -> bool:
        P = problem.primal(step.img, step.penalty)
        if not math.isfinite(P):
            raise SolverError("R-FISTA produced a non-finite objective; rescale the data.", status="numerical_error")
        if P < best["P"]:  # FISTA is not monotone: keep the best iterate
            best["P"], best["U"] = P, step.x
        best["D"] = max(best["D"], problem.dual(step.gimg_y, step.grad_y))
        gap = best["P"] - best["D"]
        rel = gap / max(abs(best["P"]), np.finfo(float).tiny)
        if callback is not None:
            info = {"iteration": step.k + 1, "objective": best["P"], "dual": best["D"], "gap": gap,
                    "rel_gap": rel, "step": step.eta}
            if callback_stops(callback(info)):
                state["callback_stop"] = True
                return True
        return rel <= tol

    out = rfista(problem, U0, img0, eta0=eta0, max_iter=max_iter, monitor=monitor)
    U = np.ascontiguousarray(best["U"])
    cert = feature_sparse_certificate(op, kernel, lam, U, penalty)
    return _gated_fields(op, U, cert, best["D"], penalty, iterations=out.iterations, eta=out.eta,
                         extra={"restarts": out.restarts, "backtracks": out.backtracks,
                                "stopped_by_callback": state["callback_stop"]})


def _gated_fields(op, U, cert, dual_bound, penalty, *, iterations, eta, extra) -> dict[str, Any]:
    """The result fields of a C-GReLU point ``U`` with its certificate and the best dual bound."""
    dual = max(cert.dual, dual_bound)
    gap = max(cert.primal - dual, 0.0)
    extra.update(n_forward=op.n_forward, n_adjoint=op.n_adjoint)
    return {"weights": {"U": np.ascontiguousarray(U)}, "solver": "rfista", "objective_value": cert.primal,
            "iterations": iterations, "gap": gap, "dual_value": dual,
            "rel_gap": gap / max(abs(cert.primal), np.finfo(float).tiny), "step_size": eta,
            "program_penalty": penalty.value(U), "extra": extra}


def _relu(X, patterns, kernel, lam, penalty, tol, feas_tol, max_iter, warm_start, callback,
          memory_budget) -> dict[str, Any]:
    Xa = np.ascontiguousarray(patterns.design(X), dtype=np.float64)
    n, d = Xa.shape
    p, c = patterns.n_patterns, kernel.y.shape[1]
    budget = al.check_al_memory(n, d, p, c, 8, memory_budget)
    gamma0, delta0, eta0, rho_warm = np.zeros((n, 2 * p, c)), None, None, None
    if warm_start is not None:
        T0 = np.concatenate([np.asarray(warm_start.V, dtype=np.float64).reshape(d, p, c),
                             np.asarray(warm_start.W, dtype=np.float64).reshape(d, p, c)], axis=1)
        mult = getattr(warm_start, "multipliers", None)
        if mult is not None and np.size(mult) == n * 2 * p * c:
            gamma0 = rho_warm = np.maximum(np.asarray(mult, dtype=np.float64).reshape(n, 2 * p, c), 0.0)
        eta0 = getattr(warm_start, "step_size", None)  # delta restarts from its rule: see _solve_relu_al
    else:
        T0 = np.zeros((d, 2 * p, c))
    sx2 = float(np.linalg.norm(Xa, 2) ** 2)
    if delta0 is None or not np.isfinite(delta0) or delta0 <= 0:
        a2 = ImplicitDesign(Xa, patterns.mask, dtype=np.float64, memory_budget=budget).spectral_norm_sq(n_iter=4)
        delta0 = al.DELTA_SCALE * kernel.curvature * a2 / max(sx2, np.finfo(float).tiny)
    # a zero design (X_a = 0) gives delta0 = 0, and the penalty term divides by delta (as in solve_relu)
    delta0 = max(float(delta0), np.finfo(float).tiny)
    if eta0 is None or not np.isfinite(eta0) or eta0 <= 0:
        eta0 = al.initial_al_step(kernel.curvature, sx2, p, delta0)
    # the start point may be optimal already. Zero (cone feasible) is certified with the cheapest
    # multipliers that do (_relu_zero_check); at lam >= lam_max the iteration would otherwise
    # leave it for blocks of ~1e-3 and return to it only as fast as its multipliers converge
    if not np.any(T0):
        # a zero model certified by the lam_max program carries the optimal multipliers of zero
        exact = rho_warm is not None and (getattr(warm_start, "extra", None) or {}).get("certified_by") == "lam_max"
        cert0, rho0, how = _relu_zero_check(Xa, patterns.mask, kernel, lam, penalty, tol, rho_warm, exact)
        if cert0 is not None:
            rho0 = np.zeros((n, 2 * p, c)) if rho0 is None else rho0
            return _relu_fields(T0, rho0, cert0, cert0.dual, penalty, p, c, feas_tol, iterations=0, outer=0,
                                delta=delta0, eta=eta0, stopped=False, certified_by=how)
        if how == "lam_max":
            gamma0 = rho0  # the multipliers of zero at lam_max: the start of the path below it
    else:
        cert0 = feature_relu_certificate(Xa, patterns.mask, kernel, lam, T0, gamma0, penalty)
        if cert0.rel_gap <= tol and cert0.max_violation <= feas_tol:
            return _relu_fields(T0, gamma0, cert0, cert0.dual, penalty, p, c, feas_tol, iterations=0, outer=0,
                                delta=delta0, eta=eta0, stopped=False, certified_by="warm_start")
    problem = FeatureALProblem(Xa, patterns.mask, kernel, lam, gamma0, delta0, penalty)
    res = _solve_relu_al(problem, np.ascontiguousarray(T0), tol=tol, feas_tol=feas_tol, max_iter=max_iter,
                         eta0=eta0, callback=callback)
    T = res["T"]
    cert = feature_relu_certificate(Xa, patterns.mask, kernel, lam, T, res["rho"], penalty)
    return _relu_fields(T, res["rho"], cert, res["dual"], penalty, p, c, feas_tol, iterations=res["iterations"],
                        outer=res["outer"], delta=problem.delta, eta=res["eta"], stopped=res["callback_stop"])


def _relu_fields(T, rho, cert, dual_bound, penalty, p, c, feas_tol, *, iterations, outer, delta, eta, stopped,
                 certified_by=None) -> dict[str, Any]:
    """The result fields of a C-ReLU point ``T = [V, W]`` with multipliers ``rho``, its
    certificate and the best dual bound."""
    dual = max(cert.dual, dual_bound)
    gap = max(cert.primal - dual, 0.0)
    rel = gap / max(abs(cert.primal), np.finfo(float).tiny)
    extra = {"outer_iterations": outer, "feas_tol": feas_tol, "stopped_by_callback": stopped}
    if certified_by is not None:
        extra["certified_by"] = certified_by
    if cert.max_violation > feas_tol:
        # outside the cones the objective can lie below the optimum: primal - dual bounds nothing
        # (clipped at zero it read as a perfect certificate); kept as a diagnostic
        extra["gap_at_infeasible_point"] = cert.primal - dual
        gap = rel = None  # no certificate, so no relative gap either (0.0 read as perfect)
    return {"weights": {"V": np.ascontiguousarray(T[:, :p]), "W": np.ascontiguousarray(T[:, p:])}, "solver": "al",
            "objective_value": cert.primal, "iterations": iterations, "gap": gap, "dual_value": dual,
            "rel_gap": rel, "max_violation": cert.max_violation,
            "multipliers": rho[:, :, 0] if c == 1 else rho, "al_delta": delta, "step_size": eta,
            "program_penalty": penalty.value(T), "extra": extra}
