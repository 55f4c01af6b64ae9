"""Augmented Lagrangian for C-ReLU (docs/math.md, "Solvers and certificates"; [MSP22] Sec. 5).

The cone constraints ``Xt_i v_i >= 0``, ``Xt_i w_i >= 0`` (columnwise for vector output) are
moved into the objective::

    L_delta(v, w) = h(sum_i D_i X (v_i - w_i)) + lam sum_i (||v_i|| + ||w_i||)
                    + 1/(2 delta) sum_i ( ||(gamma_i - delta Xt_i v_i)_+||^2 + ||(zeta_i - delta Xt_i w_i)_+||^2 )

(which is docs/math.md's ``delta/2 ||(gamma/delta - Xt v)_+||^2`` form), minimised by R-FISTA
warm-started from the previous outer iterate, then the multipliers are updated,
``gamma <- (gamma - delta Xt v)_+`` and ``zeta <- (zeta - delta Xt w)_+``.

The blocks ``T = [V, W]`` are one ``d x 2p x c`` array and the image carried by R-FISTA is
``Z = X_a T`` (``n x 2p x c``) with the prediction ``z`` stored in an extra slot, so the
extrapolated image is formed from stored ones (product reuse) and one iteration costs one
GEMM each way.

Certificate. At every inner iterate the gradient of the smooth part is
``X^T D_i nu - Xt_i^T rho_i`` (``v`` blocks) with the dual point ``nu = grad h(z)`` (``theta``
in the code) and ``rho = (gamma - delta Xt v)_+ >= 0``: exactly the C-ReLU dual constraint of
:func:`~cvxnn.native.certificates.duality_gap`, so rescaling ``(nu, rho)`` gives a valid
lower bound ``D`` on the C-ReLU optimum for free. The solver stops when
``P(T) - max D <= tol |P(T)|`` and the cone violation is ``<= feas_tol``.

Penalty rule (tuning-free): ``delta_0 = 50 * curvature(h) * ||A||^2 / ||X_a||_2^2`` (a
scale-free ratio of the loss curvature along the fit to the curvature of the cone residuals,
both in prediction units); after each outer step ``delta`` doubles whenever the cone
violation fell by less than a factor 4. The multiplier sequence is extrapolated as in an
accelerated proximal-point method on the dual (reset when the violation grows or ``delta``
changes). Inner solves stop on the relative gap of the augmented-Lagrangian subproblem (its
own Fenchel dual, free from the same gradient), with a tolerance that shrinks tenfold per
outer step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import callback_stops
from ..errors import MemoryBudgetError, SolverError
from ..operators import ImplicitDesign, default_memory_budget
from ._losses import SmoothKernel
from .fista import FistaStep, rfista
from .prox import BlockPenalty

__all__ = ["ALProblem", "ALResult", "al_memory_bytes", "check_al_memory", "initial_al_step", "solve_relu"]

logger = logging.getLogger(__name__)

#: n x 2p x c arrays the AL holds at once (images of x, x_prev, y, trial, gradient, temporaries).
_AL_ARRAYS = 10
#: delta_0 = DELTA_SCALE * curvature(h) * ||A||^2 / ||X_a||^2 (scale-free initial penalty).
DELTA_SCALE = 50.0
#: Penalty rule: multiply delta by DELTA_GROWTH when the violation fell by less than VIOL_DECREASE.
DELTA_GROWTH = 2.0
VIOL_DECREASE = 0.25
#: Inner relative-gap tolerance of the first subproblem and its decrease per outer step.
INNER_TOL0 = 1e-1
INNER_DECREASE = 0.1
#: Nesterov extrapolation of the multipliers (accelerated proximal point on the dual).
ACCEL_DUAL = True
#: Cap on the iterations of one inner solve (multipliers are updated at least this often).
INNER_MAX = 5000
#: Violation and subproblem gap are evaluated every CHECK_EVERY inner iterations.
CHECK_EVERY = 5


def al_memory_bytes(n: int, d: int, p: int, c: int, itemsize: int) -> int:
    """Bytes the augmented Lagrangian needs for ``n`` samples, ``p`` patterns, ``c`` outputs."""
    return _AL_ARRAYS * n * (2 * p + 1) * c * itemsize + n * d * itemsize + 2 * n * p * itemsize


def check_al_memory(n: int, d: int, p: int, c: int, itemsize: int, memory_budget: int | None) -> int:
    """The memory budget in bytes (default: half the physical memory), after checking that the
    augmented Lagrangian's arrays fit it.

    Raises
    ------
    MemoryBudgetError
        Naming the bytes needed and the budget.
    """
    need = al_memory_bytes(n, d, p, c, itemsize)
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    if need > budget:
        raise MemoryBudgetError(
            f"the C-ReLU augmented Lagrangian needs about {need:,} bytes for its n x 2p x c arrays "
            f"(n={n}, p={p}, c={c}) but the memory budget is {budget:,} bytes; use "
            "dtype=numpy.float32, fewer patterns, the gated_relu activation, or raise memory_budget."
        )
    return budget


class ALProblem:
    """The augmented-Lagrangian subproblem as a composite problem for :func:`rfista`.

    Parameters
    ----------
    Xa : ndarray (n, d), compute dtype
    mask : ndarray of bool (n, p)
    kernel : SmoothKernel
    lam : float
    gamma : ndarray (n, 2p, c)
        Multipliers (``v`` blocks first), ``>= 0``.
    delta : float
        Penalty parameter.
    penalty : {"nuclear", "columnwise"}
        The block penalty (:class:`~cvxnn.native.prox.BlockPenalty`).
    """

    def __init__(self, Xa: np.ndarray, mask: np.ndarray, kernel: SmoothKernel, lam: float,
                 gamma: np.ndarray, delta: float, penalty: str = "nuclear") -> None:
        self.penalty = BlockPenalty(penalty)
        self.Xa = Xa
        self.dtype = Xa.dtype
        self.n, self.d = Xa.shape
        self.p = mask.shape[1]
        self.c = gamma.shape[2]
        M = mask.astype(self.dtype)
        self.M2 = np.concatenate([M, -M], axis=1)  # n x 2p: prediction weights of [V, W]
        S = 2 * M - 1
        self.S2 = np.concatenate([S, S], axis=1)[:, :, None]  # n x 2p x 1: cone signs
        self.kernel = kernel
        self.lam = float(lam)
        self.gamma = gamma
        self.set_delta(delta)
        self.theta: np.ndarray | None = None
        self.rho_y: np.ndarray | None = None
        self.flops = 0.0

    # image layout: img[:, :2p, :] = X_a T, img[:, 2p, :] = z
    def forward(self, T: np.ndarray) -> np.ndarray:
        n, d, P, c = self.n, self.d, 2 * self.p, self.c
        img = np.empty((n, P + 1, c), dtype=self.dtype)
        img[:, :P, :] = (self.Xa @ T.reshape(d, P * c)).reshape(n, P, c)
        np.einsum("npc,np->nc", img[:, :P, :], self.M2, out=img[:, P, :])
        self.flops += 2.0 * n * d * P * c
        return img

    def adjoint(self, gimg: np.ndarray) -> np.ndarray:
        n, d, P, c = self.n, self.d, 2 * self.p, self.c
        self.flops += 2.0 * n * d * P * c
        return (self.Xa.T @ gimg.reshape(n, P * c)).reshape(d, P, c)

    def set_delta(self, delta: float) -> None:
        """Change the penalty parameter ``delta``."""
        self.delta = float(delta)
        self._negSdelta = (-self.delta * self.S2).astype(self.dtype)

    def _rho(self, Zc: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(gamma - delta S * Z)_+`` (n x 2p x c), three in-place passes."""
        R = np.multiply(self._negSdelta, Zc, out=out)
        R += self.gamma
        np.maximum(R, 0, out=R)
        return R

    def smooth_grad(self, img: np.ndarray) -> np.ndarray:
        P = 2 * self.p
        theta = self.kernel.grad(img[:, P, :])
        self.theta = theta
        rho = self._rho(img[:, :P, :])
        self.rho_y = rho
        G = np.multiply(self.S2, rho)
        np.negative(G, out=G)
        G += self.M2[:, :, None] * theta[:, None, :]
        return G

    def cone_value(self, img: np.ndarray) -> float:
        """``1/(2 delta) ||(gamma - delta S Z)_+||^2``."""
        rho = self._rho(img[:, : 2 * self.p, :])
        return float(np.vdot(rho, rho)) / (2.0 * self.delta)

    def bregman(self, img_new: np.ndarray, img_y: np.ndarray, gimg_y: np.ndarray) -> float:
        """Exact Bregman divergence of the smooth part between two images, termwise >= 0.

        Cone part, with ``a = gamma - delta S Z`` and ``r = a_+``: each term is
        ``((r_new - r_y)^2 + 2 r_y (a_new)_-) / (2 delta)``, summed as ``||r_new - r_y||^2`` plus
        a sum of non-negative terms, so no large terms cancel (expanded as
        ``r.r - 2 r.r_y + r_y.r_y``, the difference is lost to rounding when the multipliers are
        large and the steps small: the line search then rejects every step and the step size
        collapses). Only active constraints contribute, so steps are not limited by
        ``delta ||X||^2``.
        """
        P = 2 * self.p
        br = self.kernel.bregman(img_new[:, P, :], img_y[:, P, :], self.theta)
        a = np.multiply(self._negSdelta, img_new[:, :P, :])
        a += self.gamma
        r = np.maximum(a, 0)
        a -= r  # now -(a)_-  (<= 0)
        self.rho_new = r
        dr = r - self.rho_y
        part = float(np.vdot(dr, dr)) - 2.0 * float(np.vdot(self.rho_y, a))
        return br + max(part, 0.0) / (2.0 * self.delta)

    # ------------------------------------------------------------- evaluation
    def loss_value(self, img: np.ndarray) -> float:
        return self.kernel.value(img[:, 2 * self.p, :])

    def violation(self, img: np.ndarray) -> float:
        """``max(0, -min S * Z)``: largest cone violation."""
        m = float(np.multiply(self.S2, img[:, : 2 * self.p, :]).min(initial=0.0))
        return max(0.0, -m)

    def dual(self, grad: np.ndarray) -> tuple[float, float]:
        """Original C-ReLU dual value of the rescaled ``(theta, rho)`` behind ``grad``, and the
        subproblem dual value (with ``-phi*(-rho) = (rho gamma - rho^2 / 2) / delta``)."""
        dn = float(self.penalty.dual_norms(grad).max(initial=0.0))
        s = 1.0 if dn <= self.lam else self.lam / dn
        D = self.kernel.dual_value(s * self.theta)
        return D, s

    def subproblem_rel_gap(self, P: float, D: float, s: float) -> float:
        """Relative gap of the augmented-Lagrangian subproblem at the y-point (its Fenchel dual:
        the original dual value ``D`` of the rescaled point plus ``-phi*(-s rho)``), given the
        original objective ``P`` and the rescaling ``s`` of :meth:`dual`; the inner stopping rule."""
        P_sub = P + float(np.vdot(self.rho_new, self.rho_new)) / (2.0 * self.delta)
        r = self.rho_y
        D_sub = D + float(s * np.vdot(r, self.gamma) - 0.5 * s * s * np.vdot(r, r)) / self.delta
        return (P_sub - D_sub) / max(abs(P_sub), np.finfo(float).tiny)


@dataclass
class ALResult:
    """Raw result of :func:`solve_relu`."""

    T: np.ndarray
    gamma: np.ndarray
    primal: float
    dual: float
    violation: float
    iterations: int
    outer_iterations: int
    converged: bool
    delta: float
    eta: float
    stopped_by_callback: bool = False
    #: the inner R-FISTA line search found no step (a tiny ``lam``, badly scaled data): the result
    #: is the last multiplier update's point, uncertified (status ``"numerical_error"``)
    stalled: bool = False


def initial_al_step(curvature: float, sx2: float, p: int, delta: float) -> float:
    """``2 / L`` with ``L <= 2 curvature ||A||^2 + delta ||X_a||_2^2`` and
    ``||A||^2 <= ||X_a||_2^2 * max row count`` (``sx2 = ||X_a||_2^2``).

    ``X_a = 0`` (data of zeros without a bias) makes ``L = 0``: every step is exact there, and
    the step is ``2`` (``2 / 0`` gave an infinite step and a NaN first iterate).
    """
    L = float(curvature) * 2.0 * float(sx2) * max(1.0, math.sqrt(p)) + float(delta) * float(sx2)
    step = 2.0 / L if L > 0.0 else math.inf
    return step if math.isfinite(step) else 2.0


def solve_relu(
    Xa: np.ndarray,
    mask: np.ndarray,
    kernel: SmoothKernel,
    lam: float,
    T0: np.ndarray,
    gamma0: np.ndarray,
    *,
    tol: float,
    feas_tol: float,
    max_iter: int,
    delta0: float | None = None,
    eta0: float | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    log_every: int = 0,
    memory_budget: int | None = None,
    penalty: str = "nuclear",
) -> ALResult:
    """Augmented Lagrangian with R-FISTA inner solves for C-ReLU.

    ``penalty`` is ``"nuclear"`` or ``"columnwise"`` (:class:`~cvxnn.native.prox.BlockPenalty`).

    Parameters
    ----------
    Xa : ndarray (n, d)
        Design in the compute dtype.
    mask : ndarray of bool (n, p)
    kernel : SmoothKernel
    lam : float
    T0 : ndarray (d, 2p, c)
        Start blocks ``[V, W]``.
    gamma0 : ndarray (n, 2p, c)
        Start multipliers (zeros, or those of a previous solve for warm starts).
    tol : float
        Relative duality-gap tolerance.
    feas_tol : float
        Cone-violation tolerance (absolute, in prediction units).
    max_iter : int
        Limit on the total number of inner R-FISTA iterations.
    delta0, eta0 : float, optional
        Initial penalty and step (defaults: loss curvature; ``2 / L`` from a norm estimate).
    callback : callable, optional
        Called after every inner iteration with a dict (``iteration``, ``outer``,
        ``objective``, ``dual``, ``gap``, ``rel_gap``, ``violation``, ``delta``); True stops.
    log_every : int
        Log progress every ``log_every`` inner iterations (0: outer steps only, at DEBUG).
    memory_budget : int, optional
        Bytes allowed (default: half the physical memory).
    penalty : {"nuclear", "columnwise"}
        The block penalty (see above).

    Returns
    -------
    ALResult

    Raises
    ------
    MemoryBudgetError
        When the ``n x 2p x c`` arrays of the method cannot fit the budget.
    """
    n, d = Xa.shape
    p = mask.shape[1]
    c = T0.shape[2]
    budget = check_al_memory(n, d, p, c, Xa.dtype.itemsize, memory_budget)
    sx2 = float(np.linalg.norm(Xa.astype(np.float64), 2) ** 2)
    if delta0 is None:
        # loss curvature along the fit relative to the cone-residual curvature, times DELTA_SCALE
        a2 = ImplicitDesign(Xa, mask, dtype=Xa.dtype, memory_budget=budget).spectral_norm_sq(n_iter=4)
        delta0 = DELTA_SCALE * kernel.curvature * a2 / max(sx2, np.finfo(float).tiny)
    delta = max(float(delta0), np.finfo(float).tiny)
    problem = ALProblem(Xa, mask, kernel, lam, np.ascontiguousarray(gamma0, dtype=Xa.dtype), delta,
                        penalty=penalty)
    if eta0 is None:
        eta0 = initial_al_step(kernel.curvature, sx2, p, delta)
    eta = float(eta0)
    T = np.ascontiguousarray(T0, dtype=Xa.dtype)
    img = problem.forward(T)
    state = {"D": -np.inf, "P": math.inf, "viol": problem.violation(img), "rel": math.inf,
             "callback_stop": False, "done": False, "it": 0, "outer": 0}
    total = 0
    outer = 0
    inner_tol = INNER_TOL0
    viol_prev = state["viol"]
    t_dual = 1.0
    gamma_prev = problem.gamma
    stalled = False
    while total < max_iter:
        def monitor(step: FistaStep) -> bool:
            P = problem.loss_value(step.img) + lam * step.penalty
            if not math.isfinite(P):
                raise SolverError("the augmented Lagrangian produced a non-finite objective; rescale "
                                  "the data.", status="numerical_error")
            D, s = problem.dual(step.grad_y)
            state["D"] = max(state["D"], D)
            state["it"] += 1
            gap = P - state["D"]
            rel = gap / max(abs(P), np.finfo(float).tiny)
            state.update(P=P, rel=rel)
            check = (state["it"] % CHECK_EVERY == 0) or rel <= tol
            if check:
                state["viol"] = problem.violation(step.img)
            if log_every and state["it"] % log_every == 0:
                logger.info("it %6d outer %3d  obj %.10e  rel gap %.3e  viol %.3e  delta %.3e",
                            state["it"], outer, P, rel, state["viol"], problem.delta)  # noqa: B023 (called in this pass)
            if callback is not None:
                info = {"iteration": state["it"], "outer": outer + 1, "objective": P, "dual": state["D"],  # noqa: B023
                        "gap": gap, "rel_gap": rel, "violation": state["viol"], "delta": problem.delta}
                if callback_stops(callback(info)):
                    state["callback_stop"] = True
                    return True
            if check and rel <= tol and state["viol"] <= feas_tol:
                state["done"] = True
                return True
            # inner stop: relative gap of the augmented-Lagrangian subproblem
            return check and problem.subproblem_rel_gap(P, D, s) <= inner_tol  # noqa: B023

        try:
            out = rfista(problem, T, img, eta0=eta, max_iter=min(max_iter - total, INNER_MAX), monitor=monitor)
        except SolverError as exc:
            if exc.status != "numerical_error" or "line search" not in str(exc):
                raise
            # no step decreases the subproblem any more: return the last multiplier update's point
            logger.info("augmented Lagrangian stopped after %d iterations: %s", total, exc)
            stalled = True
            break
        total += out.iterations
        T, img, eta = out.x, out.img, out.eta
        outer += 1
        if state["done"] or state["callback_stop"]:
            break
        # multiplier update (accelerated proximal point on the dual) and penalty rule
        gamma_new = problem._rho(img[:, : 2 * p, :])
        viol = problem.violation(img)
        if ACCEL_DUAL and viol <= viol_prev:
            t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t_dual * t_dual))
            beta = (t_dual - 1.0) / t_new
            t_dual = t_new
        else:
            beta, t_dual = 0.0, 1.0
        if beta > 0.0:
            problem.gamma = gamma_new + gamma_new.dtype.type(beta) * (gamma_new - gamma_prev)
        else:
            problem.gamma = gamma_new
        gamma_prev = gamma_new
        if viol > VIOL_DECREASE * viol_prev:
            problem.set_delta(problem.delta * DELTA_GROWTH)
            eta /= DELTA_GROWTH
            t_dual = 1.0
        viol_prev = max(viol, np.finfo(float).tiny)
        inner_tol = max(inner_tol * INNER_DECREASE, 0.1 * tol)
        logger.debug("AL outer %d: it %d, obj %.10e, rel gap %.3e, viol %.3e, delta %.3e", outer, total,
                     state["P"], state["rel"], viol, problem.delta)
    P = problem.loss_value(img) + lam * float(problem.penalty.norms(T).sum())
    viol = problem.violation(img)
    converged = (not state["callback_stop"]) and viol <= feas_tol and \
        (P - state["D"]) <= tol * max(abs(P), np.finfo(float).tiny)
    return ALResult(T=T, gamma=problem.gamma, primal=P, dual=state["D"], violation=viol, iterations=total,
                    outer_iterations=outer, converged=converged, delta=problem.delta, eta=eta,
                    stopped_by_callback=state["callback_stop"], stalled=stalled)
