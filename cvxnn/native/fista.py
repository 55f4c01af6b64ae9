"""R-FISTA: accelerated proximal gradient with backtracking, step growth and adaptive restart.

Solves composite problems ``min_x  h(A x) + lam * sum_i ||x_i||`` (docs/math.md, "Solvers and certificates")
where ``A`` is linear, ``h`` smooth and the penalty is a group norm (2-norms or nuclear
norms of ``d x c`` blocks). The iterate is carried together with its *image* ``A x``, and the
image of the extrapolated point is formed from images already computed,

    y_k = x_k + beta_k (x_k - x_{k-1})   =>   A y_k = A x_k + beta_k (A x_k - A x_{k-1}),

so one iteration costs one adjoint (the gradient at ``y_k``) plus one forward per line-search
trial (usually one). Steps (Beck & Teboulle):

* backtracking on ``h(A x+) - h(A y) - <grad, x+ - y> <= ||x+ - y||^2 / (2 eta)``; the left
  side is the Bregman divergence of ``h`` between the two images, evaluated termwise;
* step growth ``eta <- growth * eta`` after every accepted step (so a too-small step recovers);
* adaptive gradient restart [O'Donoghue & Candes 2015]: momentum is reset when
  ``<y_k - x_{k+1}, x_{k+1} - x_k> > 0`` (the step moved against the gradient mapping).

:func:`rfista` is the engine shared by the C-GReLU solver (:func:`solve_gated`) and the inner
solves of the augmented Lagrangian (:mod:`cvxnn.native.al`). Every iteration it hands the
caller the gradient at ``y_k`` so a dual point (and a duality gap) is available at no extra
GEMM.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .._validation import callback_stops
from ..errors import SolverError
from ..operators import ImplicitDesign
from ._losses import SmoothKernel
from .polish import polish_support
from .prox import BlockPenalty, prox_penalty

__all__ = ["CompositeProblem", "FistaStep", "GatedProblem", "GatedResult", "rfista", "solve_gated"]

logger = logging.getLogger(__name__)

#: Step growth after an accepted step and backtracking factor.
GROWTH = 1.25
#: Support polish (see :mod:`cvxnn.native.polish`): first iteration, support-stability check
#: period, relative-gap threshold below which it runs, and iterations between two polishes.
POLISH_START = 20
POLISH_CHECK = 10
POLISH_GAP = 1e-2
POLISH_COOLDOWN = 30
#: Consecutive support checks (POLISH_CHECK iterations apart) with an unchanged support.
POLISH_STABLE = 2
#: Work cap of one polish in full-operator applications per R-FISTA iteration so far (an
#: iteration costs about 2.5 of them), so a polish that does not pay off costs at most ~60%.
POLISH_COST = 1.5
SHRINK = 0.5
_MAX_BACKTRACKS = 60


class CompositeProblem(Protocol):  # pragma: no cover - typing only
    """What :func:`rfista` needs from a problem ``min h(A x) + lam * penalty(x)``."""

    lam: float

    def forward(self, x: np.ndarray) -> np.ndarray: ...

    def smooth_grad(self, img: np.ndarray) -> np.ndarray: ...

    def adjoint(self, gimg: np.ndarray) -> np.ndarray: ...

    def bregman(self, img_new: np.ndarray, img_y: np.ndarray, gimg_y: np.ndarray) -> float: ...


@dataclass
class FistaStep:
    """What :func:`rfista` reports after iteration ``k`` (passed to its ``monitor``).

    Attributes
    ----------
    k : int
        Iteration index (0-based).
    x, img : ndarray
        The new iterate ``x_{k+1}`` and its image ``A x_{k+1}``.
    penalty : float
        ``sum_i ||x_i||`` at ``x_{k+1}``.
    gimg_y, grad_y : ndarray
        ``grad h(A y_k)`` and the gradient ``A^T grad h(A y_k)`` at the extrapolated point.
    eta : float
        Accepted step size.
    grad_map : float
        Norm of the gradient mapping ``||y_k - x_{k+1}|| / eta`` (a subgradient-norm surrogate).
    restarted : bool
        Whether momentum was reset at this iteration.
    backtracks : int
        Line-search trials rejected at this iteration.
    """

    k: int
    x: np.ndarray
    img: np.ndarray
    penalty: float
    gimg_y: np.ndarray
    grad_y: np.ndarray
    eta: float
    grad_map: float
    restarted: bool
    backtracks: int


@dataclass
class FistaOutcome:
    """Result of :func:`rfista`: the last iterate, its image, the step and the count."""

    x: np.ndarray
    img: np.ndarray
    penalty: float
    eta: float
    iterations: int
    stopped: bool
    backtracks: int = 0
    restarts: int = 0


def rfista(
    problem: CompositeProblem,
    x0: np.ndarray,
    img0: np.ndarray,
    *,
    eta0: float,
    max_iter: int,
    monitor: Callable[[FistaStep], bool],
    growth: float = GROWTH,
    shrink: float = SHRINK,
) -> FistaOutcome:
    """Run R-FISTA from ``x0`` (with image ``img0 = A x0``) until ``monitor`` returns True.

    Parameters
    ----------
    problem : CompositeProblem
        Provides ``forward``, ``adjoint``, ``smooth_grad``, ``bregman`` and ``lam``.
    x0, img0 : ndarray
        Start point and its image.
    eta0 : float
        Initial step size.
    max_iter : int
        Iteration limit (the count of accepted steps).
    monitor : callable
        ``monitor(step: FistaStep) -> bool``; True stops the run.
    growth, shrink : float
        Step growth after acceptance and backtracking factor.

    Returns
    -------
    FistaOutcome

    Raises
    ------
    SolverError
        If the iterates become non-finite or the line search cannot find a step.
    """
    lam = problem.lam
    x = x0
    ax = img0
    y, ay = x, ax
    t = 1.0
    eta = float(eta0)
    pen = float("nan")
    total_bt = 0
    restarts = 0
    pen_obj = getattr(problem, "penalty", None)
    prox = pen_obj.prox if pen_obj is not None else prox_penalty
    for k in range(max_iter):
        gimg = problem.smooth_grad(ay)
        g = problem.adjoint(gimg)
        backtracks = 0
        while True:
            v = y - eta * g
            x_new, pen_new = prox(v, eta * lam)
            ax_new = problem.forward(x_new)
            diff = x_new - y
            q = float(np.vdot(diff, diff))
            br = problem.bregman(ax_new, ay, gimg)
            if br <= q / (2.0 * eta) * (1.0 + 1e-9) or q == 0.0:
                break
            if not math.isfinite(br):
                raise SolverError("R-FISTA produced non-finite values; rescale the data.",
                                  status="numerical_error")
            backtracks += 1
            eta *= shrink
            if backtracks > _MAX_BACKTRACKS:
                raise SolverError("the R-FISTA line search found no acceptable step; "
                                  "rescale the data or use dtype=numpy.float64.",
                                  status="numerical_error")
        total_bt += backtracks
        restart = float(np.vdot(y - x_new, x_new - x)) > 0.0
        if restart:
            t = 1.0
            restarts += 1
        step = FistaStep(k=k, x=x_new, img=ax_new, penalty=pen_new, gimg_y=gimg, grad_y=g, eta=eta,
                         grad_map=math.sqrt(q) / eta, restarted=restart, backtracks=backtracks)
        stop = monitor(step)
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_new
        if beta > 0.0:
            bt = x_new.dtype.type(beta)
            y = x_new + bt * (x_new - x)
            ay = ax_new + bt * (ax_new - ax)
        else:
            y, ay = x_new, ax_new
        x, ax, pen, t = x_new, ax_new, pen_new, t_new
        if stop:
            return FistaOutcome(x=x, img=ax, penalty=pen, eta=eta, iterations=k + 1, stopped=True,
                                backtracks=total_bt, restarts=restarts)
        if backtracks == 0:
            eta *= growth
    return FistaOutcome(x=x, img=ax, penalty=pen, eta=eta, iterations=max_iter, stopped=False,
                        backtracks=total_bt, restarts=restarts)


# ---------------------------------------------------------------------- composite problems
class SmoothPlusNorm:
    """``h(A x) + lam * R(x)`` for R-FISTA: the loss terms shared by the native problems.

    A subclass sets ``kernel`` (a :class:`~cvxnn.native._losses.SmoothKernel`), ``lam`` and
    ``op`` (``forward`` / ``adjoint``), and implements :meth:`dual_norm` (``R^*`` of a gradient
    ``A^T theta``). The dual value rescales ``theta`` into the dual-feasible set
    ``{s theta : 0 <= s <= lam / R^*(A^T theta)}`` and lets the loss pick the best ``s``
    (:meth:`~cvxnn.losses.Loss.best_dual_scale`).
    """

    kernel: SmoothKernel
    lam: float

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.op.forward(x)

    def adjoint(self, gimg: np.ndarray) -> np.ndarray:
        return self.op.adjoint(gimg)

    def smooth_grad(self, img: np.ndarray) -> np.ndarray:
        return self.kernel.grad(img)

    def bregman(self, img_new: np.ndarray, img_y: np.ndarray, gimg_y: np.ndarray) -> float:
        return self.kernel.bregman(img_new, img_y, gimg_y)

    def primal(self, img: np.ndarray, penalty: float) -> float:
        """``h(z) + lam * penalty``."""
        return self.kernel.value(img) + self.lam * penalty

    def dual_norm(self, grad: np.ndarray) -> float:  # pragma: no cover - abstract
        """``R^*(A^T theta)``: every subclass defines it for its penalty."""
        raise NotImplementedError(f"{type(self).__name__} must define dual_norm(grad)")

    def dual(self, theta: np.ndarray, grad: np.ndarray) -> float:
        """Dual value of the best rescaled point ``s theta`` (``grad = A^T theta``)."""
        dn = float(self.dual_norm(grad))
        s_max = np.inf if dn == 0.0 else self.lam / dn
        return self.kernel.dual_value(self.kernel.best_dual_scale(theta, s_max) * theta)


# ---------------------------------------------------------------------- C-GReLU
class GatedProblem(SmoothPlusNorm):
    """C-GReLU as a composite problem: ``h(A U) + lam * sum_i ||U_i||`` with ``A`` the
    implicit design and ``h`` the smooth loss (docs/math.md, "The convex programs", [MSP22]).

    The image is the prediction ``z = A U`` (``n x c``).
    """

    def __init__(self, op: ImplicitDesign, kernel: SmoothKernel, lam: float, penalty: str = "nuclear") -> None:
        self.penalty = BlockPenalty(penalty)
        self.op = op
        self.kernel = kernel
        self.lam = float(lam)

    def dual_norm(self, grad: np.ndarray) -> float:
        """``max_i ||A_i^T theta||_*`` (the blockwise dual norm)."""
        return float(self.penalty.dual_norms(grad).max(initial=0.0))


@dataclass
class GatedResult:
    """Raw result of :func:`solve_gated` (wrapped into a ConvexSolution by ``solve_native``)."""

    U: np.ndarray
    primal: float
    dual: float
    iterations: int
    converged: bool
    eta: float
    history: list[dict[str, Any]] = field(default_factory=list)
    backtracks: int = 0
    restarts: int = 0
    stopped_by_callback: bool = False
    polishes: int = 0
    polish_products: int = 0
    polished: bool = False


def initial_step(op: ImplicitDesign, kernel: SmoothKernel, factor: float = 2.0) -> float:
    """``factor / (curvature * ||A||^2)``: a step slightly above ``1/L`` (the line search
    shrinks it if needed; a power-iteration estimate of ``||A||^2`` is used).

    A zero design (every pattern inactive on the data, or ``X_a = 0``) has ``L = 0`` and every
    step is exact there: the step is then ``factor`` (``factor / (curvature * tiny)`` overflowed
    to ``inf`` for curvatures below 1, logistic or mean-reduced losses, and the first step was
    ``0 * inf = NaN``)."""
    norm_sq = float(op.spectral_norm_sq(n_iter=4))
    L = float(kernel.curvature) * norm_sq
    step = factor / L if L > 0.0 else math.inf
    return step if math.isfinite(step) else float(factor)


def solve_gated(
    problem: GatedProblem,
    U0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    eta0: float,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    check_every: int = 1,
    log_every: int = 0,
    polish: bool = True,
) -> GatedResult:
    """R-FISTA on C-GReLU, stopped by the relative duality gap.

    The gap at iteration ``k`` is ``P(best x) - max_j D(nu_j)``: every dual point
    ``nu_j = grad h(A y_j)`` (rescaled into the dual feasible set) gives a valid lower
    bound, and the best primal iterate is kept (FISTA is not monotone).

    Parameters
    ----------
    problem : GatedProblem
    U0 : ndarray of shape (d, p, c)
        Start point (zeros or a warm start).
    tol : float
        Relative gap tolerance: stop when ``P - D <= tol * |P|``.
    max_iter : int
    eta0 : float
        Initial step.
    callback : callable, optional
        Called every iteration with a dict (``iteration``, ``objective``, ``dual``, ``gap``,
        ``rel_gap``, ``step``); returning True stops the solve.
    check_every : int
        Compute the gap every ``check_every`` iterations.
    log_every : int
        Log progress (INFO) every ``log_every`` iterations (0: never).
    polish : bool
        Scalar output, squared or logistic loss, float64: once the support has been stable for
        ``POLISH_CHECK`` iterations and the relative gap is below ``POLISH_GAP``, run a Newton
        polish on the support (:func:`~cvxnn.native.polish.polish_support`); its objective and
        dual value are used when better, so the certificate stays valid.

    Returns
    -------
    GatedResult
    """
    U0 = np.ascontiguousarray(U0, dtype=problem.op.dtype)
    img0 = problem.forward(U0) if np.any(U0) else np.zeros((problem.op.n, problem.op.c), problem.op.dtype)
    best = {"P": problem.primal(img0, float(problem.penalty.norms(U0).sum())), "U": U0, "D": -np.inf}
    state = {"callback_stop": False, "support": None, "next_polish": POLISH_START, "polishes": 0,
             "polish_products": 0, "polished": False, "cooldown": POLISH_COOLDOWN,
             "stable_checks": 0}
    can_polish = (polish and problem.op.dtype == np.float64 and problem.op.c == 1
                  and problem.kernel.loss.separable and problem.kernel.loss.has_hessian)

    def try_polish(step: FistaStep) -> None:
        """Newton polish on the support once it is stable (see :mod:`cvxnn.native.polish`)."""
        support = np.linalg.norm(step.x[:, :, 0], axis=0) > 0
        same = state["support"] is not None and np.array_equal(support, state["support"])
        state["stable_checks"] = state["stable_checks"] + 1 if same else 0
        state["support"] = support
        rel = (best["P"] - best["D"]) / max(abs(best["P"]), np.finfo(float).tiny)
        if not (state["stable_checks"] >= POLISH_STABLE and step.k >= state["next_polish"]
                and tol < rel <= POLISH_GAP):
            return
        state["next_polish"] = step.k + state["cooldown"]
        res = polish_support(problem.op, problem.kernel, problem.lam, np.asarray(best["U"], dtype=np.float64),
                             step.eta, problem.dual, 0.5 * tol * abs(best["P"]),
                             max_cost=POLISH_COST * (step.k + 1))
        state["polishes"] += 1
        if res is None or res.primal - res.dual > 0.5 * tol * abs(best["P"]):
            state["cooldown"] *= 2  # a polish that does not certify waits twice as long next time
        if res is None:
            return
        state["polish_products"] += res.products
        best["D"] = max(best["D"], res.dual)
        if res.primal < best["P"]:
            best["P"], best["U"] = res.primal, res.U
            state["polished"] = True

    def monitor(step: FistaStep) -> bool:
        P = problem.primal(step.img, step.penalty)
        if not math.isfinite(P):
            raise SolverError("R-FISTA produced a non-finite objective; rescale the data.",
                              status="numerical_error")
        if P < best["P"]:
            best["P"], best["U"] = P, step.x
        if step.k % check_every == 0:
            D = problem.dual(step.gimg_y, step.grad_y)
            best["D"] = max(best["D"], D)
        if can_polish and step.k % POLISH_CHECK == 0:
            try_polish(step)
        gap = best["P"] - best["D"]
        rel = gap / max(abs(best["P"]), np.finfo(float).tiny)
        if log_every and step.k % log_every == 0:
            logger.info("it %6d  obj %.10e  gap %.3e  rel %.3e  step %.3e", step.k, best["P"], gap, rel,
                        step.eta)
        if callback is not None:
            info = {"iteration": step.k + 1, "objective": best["P"], "dual": best["D"], "gap": gap,
                    "rel_gap": rel, "step": step.eta}
            if callback_stops(callback(info)):
                state["callback_stop"] = True
                return True
        return rel <= tol

    out = rfista(problem, U0, img0, eta0=eta0, max_iter=max_iter, monitor=monitor)
    gap = best["P"] - best["D"]
    converged = gap <= tol * max(abs(best["P"]), np.finfo(float).tiny) and not state["callback_stop"]
    return GatedResult(U=best["U"], primal=best["P"], dual=best["D"], iterations=out.iterations,
                       converged=converged, eta=out.eta, backtracks=out.backtracks, restarts=out.restarts,
                       stopped_by_callback=state["callback_stop"], polishes=state["polishes"],
                       polish_products=state["polish_products"], polished=state["polished"])


