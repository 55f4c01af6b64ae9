"""Native solver and certificates of the polynomial-activation programs (docs/polynomial.md).

* :func:`solve_quadratic_native` -- the quadratic-activation program
  ``min_Z h(A Z) + lam ||Z||_*`` over symmetric ``Z``, with ``A Z = diag(X Z X^T)``,
  by R-FISTA (:func:`cvxnn.native.fista.rfista`): the adjoint is ``A^T g = X^T diag(g) X``
  and the prox of ``t ||.||_*`` on symmetric matrices soft-thresholds the eigenvalues
  (:class:`SymmetricNuclear`). It stops on a certified relative duality gap. On ill-conditioned
  data (raw features of very different scales) R-FISTA alone needs a number of iterations that
  grows with the condition number of ``A``; a Newton polish on the factored program
  (:func:`polish_factored`) then converges in tens of steps and certifies the point.
* :func:`polynomial_duality_gap` -- a duality-gap certificate for any network or program point,
  quadratic or general activation ``sigma(t) = a t^2 + b t + c``. The dual point is the loss
  gradient ``theta = grad L(yhat)`` rescaled by ``s`` so that the dual constraint

      max_{||w|| = 1} | sum_i theta_i sigma(w^T x_i) | <= lam

  holds; then ``-L*(s theta)`` is a lower bound on the global optimum ``p*`` over networks of
  any width (weak duality; docs/polynomial.md, "Certificates"). The maximum over the sphere is a
  trust-region subproblem with an equality constraint, solved exactly by
  :func:`max_on_sphere` (eigendecomposition and the secular equation). For ``sigma(t) = t^2``
  it is the spectral norm of ``X^T diag(theta) X``.

The smooth part and the dual value come from the loss objects through
:class:`~cvxnn.native._losses.SmoothKernel`; nothing here asks which loss it has.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq

from .._validation import (
    _as_real_scalar,
    as_float_array,
    callback_stops,
    check_lam,
    check_positive_int,
    check_solver_options,
    check_X,
    check_y,
)
from ..errors import ConvergenceWarning, InvalidParameterError, NonFiniteError, ShapeError
from ..losses import Loss, get_loss
from ..polynomial import PolynomialNetwork, PolynomialSolution, check_coefficients, quadratic_solution
from ._losses import SmoothKernel, make_kernel
from .certificates import GapCertificate
from .fista import FistaStep, SmoothPlusNorm, rfista

__all__ = [
    "QuadraticProblem",
    "SymmetricNuclear",
    "max_on_sphere",
    "polish_factored",
    "polynomial_duality_gap",
    "polynomial_dual_norm",
    "solve_quadratic_native",
]

logger = logging.getLogger(__name__)

#: Newton polish of :func:`solve_quadratic_native` (see :func:`polish_factored`): first R-FISTA
#: iteration and period of the polish checks, its work cap as a multiple of the R-FISTA work so
#: far (so a polish that never certifies at most doubles the time), the fewest Newton steps worth
#: starting, and the largest factor size ``d * rank`` (its Hessian is ``(d rank)^2``).
POLISH_START = 20
POLISH_CHECK = 10
POLISH_COST = 1.0
POLISH_MIN_STEPS = 4
POLISH_MAX_SIZE = 1600
#: Relative eigenvalue threshold of the factorization a polish starts from.
POLISH_RANK_TOL = 1e-9


def _sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + A.T)


class SymmetricNuclear:
    """``||Z||_* = sum_k |e_k(Z)|`` on symmetric matrices, with its prox and dual norm."""

    name = "symmetric_nuclear"

    @staticmethod
    def prox(V: np.ndarray, t: float) -> tuple[np.ndarray, float]:
        """``argmin_Z t ||Z||_* + 1/2 ||Z - V||_F^2`` over symmetric ``Z`` (eigenvalue
        soft-threshold of the symmetric part of ``V``) and ``||Z||_*`` of the result."""
        e, Q = np.linalg.eigh(_sym(V))
        e_new = np.sign(e) * np.maximum(np.abs(e) - t, 0.0)
        return (Q * e_new) @ Q.T, float(np.abs(e_new).sum())

    @staticmethod
    def value(Z: np.ndarray) -> float:
        """``||Z||_*`` of the symmetric part of ``Z``."""
        return float(np.abs(np.linalg.eigvalsh(_sym(Z))).sum())

    @staticmethod
    def dual_norm(G: np.ndarray) -> float:
        """Spectral norm ``max_k |e_k(G)|`` (``= max_{||w||=1} |w^T G w|`` for symmetric ``G``)."""
        e = np.linalg.eigvalsh(_sym(G))
        return float(max(abs(e[0]), abs(e[-1])))


class QuadraticProblem(SmoothPlusNorm):
    """The quadratic-activation program as a composite problem for
    :func:`~cvxnn.native.fista.rfista`: ``h(A Z) + lam ||Z||_*`` with ``A Z = diag(X Z X^T)``
    (an ``(n, 1)`` image) and ``h = L(., y)``.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    kernel : SmoothKernel
        The loss bound to ``y`` (shape ``(n, 1)``).
    lam : float
    """

    def __init__(self, X: np.ndarray, kernel: SmoothKernel, lam: float) -> None:
        self.X = X
        self.kernel = kernel
        self.lam = float(lam)
        self.penalty = SymmetricNuclear()

    def forward(self, Z: np.ndarray) -> np.ndarray:
        """``diag(X Z X^T)`` as ``(n, 1)``."""
        return np.einsum("ij,ij->i", self.X @ Z, self.X)[:, None]

    def adjoint(self, g: np.ndarray) -> np.ndarray:
        """``X^T diag(g) X`` (symmetric ``d x d``)."""
        return _sym(self.X.T @ (g[:, :1] * self.X))

    def dual_norm(self, grad: np.ndarray) -> float:
        """``||A^T theta||_2`` (the spectral norm, dual of the nuclear norm)."""
        return self.penalty.dual_norm(grad)

    def operator_norm_sq(self, n_iter: int = 20) -> float:
        """``||A||^2 = lambda_max((X X^T) o (X X^T))`` by power iteration on ``A A^T``."""
        n = self.X.shape[0]
        v = np.ones((n, 1)) / math.sqrt(n)
        est = 0.0
        for _ in range(n_iter):
            w = self.forward(self.adjoint(v))
            est = float(np.linalg.norm(w))
            if est == 0.0:
                return 0.0
            v = w / est
        return est


@dataclass
class FactoredPolish:
    """Outcome of :func:`polish_factored`.

    Attributes
    ----------
    Z : ndarray of shape (d, d)
        The point of smallest objective met (the start when no step improved it).
    primal : float
        Its objective ``h(A Z) + lam ||Z||_*``.
    dual : float
        The best dual value met (a lower bound on the optimum).
    steps : int
        Newton steps taken.
    work : float
        Estimated floating-point work spent (the unit of ``max_work``).
    rank : int
        Number of factor columns at the end.
    """

    Z: np.ndarray
    primal: float
    dual: float
    steps: int
    work: float
    rank: int


def _newton_work(n: int, d: int, r: int) -> float:
    """Estimated flops of one factored Newton step: ``J^T D J`` (``2 n m^2``), the Cholesky or
    eigendecomposition of the ``m x m`` Hessian, the gradient and the certificate."""
    m = d * r
    return 2.0 * n * m * m + 3.0 * m ** 3 + 4.0 * n * d * d + 8.0 * d ** 3 + 6.0 * n * m


def _fista_work(n: int, d: int) -> float:
    """Estimated flops of one R-FISTA iteration (forward, adjoint, one ``d x d`` eigendecomposition)."""
    return 4.0 * n * d * d + 9.0 * d ** 3


def _newton_direction(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``-H^{-1} g`` by Cholesky when ``H`` is positive definite, else with ``|H|`` (the absolute
    values of its eigenvalues, so the step descends along negative curvature); eigenvalues below
    ``1e-14`` of the largest (the rotations ``U -> U R`` that leave ``Z`` unchanged) are skipped."""
    scale = float(np.max(np.abs(np.diag(H)), initial=0.0))
    try:
        L = np.linalg.cholesky(H + (1e-14 * scale) * np.eye(H.shape[0]))
        step = -np.linalg.solve(L.T, np.linalg.solve(L, g))
        if np.all(np.isfinite(step)):
            return step
    except np.linalg.LinAlgError:
        pass
    w, V = np.linalg.eigh(H)
    wa = np.abs(w)
    cut = 1e-14 * float(wa.max(initial=0.0))
    coef = np.where(wa > cut, (V.T @ g) / np.maximum(wa, np.finfo(float).tiny), 0.0)
    return -(V @ coef)


def polish_factored(problem: QuadraticProblem, Z, *, target_gap: float, max_work: float = math.inf,
                    max_steps: int = 200, min_steps: int = 1) -> FactoredPolish | None:
    """Newton's method on the factored quadratic program, started from ``Z``.

    With ``Z = U diag(s) U^T`` (``s_k = +-1``, from the eigendecomposition of ``Z``), the
    smooth function

        F(U) = h(A(U diag(s) U^T)) + lam ||U||_F^2

    has ``F(U) >= h(A Z) + lam ||Z||_*`` with equality at the eigen-factors, and its minimum over
    ``U`` with enough columns is the program's optimum (docs/polynomial.md, "Native solver").
    Its gradient is ``2 G U diag(s) + 2 lam U`` with ``G = A^T grad h = X^T diag(theta) X``, its
    Hessian ``J^T diag(h'') J + G (x) 2 diag(s) + 2 lam I`` with ``J`` the Jacobian of
    ``U -> A(U diag(s) U^T)``. Newton's method with an Armijo line search on ``F`` is invariant to
    the scaling of the features, which is what makes R-FISTA slow on raw data. When it stalls
    short of a certificate, the eigenvector of ``G`` that violates the dual constraint
    ``||G||_2 <= lam`` most on each side (``e_min(G) < -lam`` for a positive term,
    ``e_max(G) > lam`` for a negative one) joins ``U`` at the step that minimises the quadratic
    model of ``F`` along it. Every iterate's objective and dual value (the rescaled gradient, as
    in R-FISTA) are evaluated, so the result is certified exactly as R-FISTA's points are.

    Parameters
    ----------
    problem : QuadraticProblem
        With a loss that has a Hessian (squared, logistic, Huber).
    Z : ndarray of shape (d, d)
        Start point (its symmetric part).
    target_gap : float
        Stop once ``primal - dual <= target_gap``.
    max_work : float
        Work cap in estimated flops; no step starts that would exceed it.
    max_steps : int
        Newton-step limit.
    min_steps : int
        Return None (no work done) when ``max_work`` does not cover this many steps at the
        starting rank.

    Returns
    -------
    FactoredPolish or None
    """
    X, kernel, lam = problem.X, problem.kernel, problem.lam
    n, d = X.shape
    Z = _sym(np.asarray(Z, dtype=np.float64))
    e, Q = np.linalg.eigh(Z)
    top = float(np.abs(e).max(initial=0.0))
    keep = np.abs(e) > POLISH_RANK_TOL * top
    if max_work < min_steps * _newton_work(n, d, max(int(keep.sum()), 1)):
        return None
    U = Q[:, keep] * np.sqrt(np.abs(e[keep]))
    sg = np.sign(e[keep])

    def value(U: np.ndarray, sg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        T = X @ U
        z = ((T * T) @ sg)[:, None]
        return kernel.value(z) + lam * float(np.vdot(U, U)), T, z

    work = 9.0 * d ** 3
    best_P, best_Z, best_D = math.inf, Z, -math.inf
    steps = 0
    stalled = False
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        F, T, z = value(U, sg)
        while math.isfinite(F):
            theta = kernel.grad(z)
            G = problem.adjoint(theta)
            Zc = (U * sg) @ U.T
            P = problem.primal(z, SymmetricNuclear.value(Zc))
            if P < best_P:
                best_P, best_Z = P, Zc
            best_D = max(best_D, problem.dual(theta, G))
            if best_P - best_D <= target_gap or steps >= max_steps:
                break
            hd = kernel.hessian_parts(z)[0][:, 0]
            if stalled or U.shape[1] == 0:
                ge, gQ = np.linalg.eigh(G)
                work += 9.0 * d ** 3
                added = False
                for idx, sign in ((0, 1.0), (-1, -1.0)):
                    if not sign * ge[idx] < -lam:
                        continue
                    v = gQ[:, idx]
                    a = (X @ v) ** 2
                    t2 = (abs(float(ge[idx])) - lam) / max(float(a @ (hd * a)), np.finfo(float).tiny)
                    for _ in range(60):
                        U_new, sg_new = np.column_stack([U, math.sqrt(t2) * v]), np.append(sg, sign)
                        F_new, T_new, z_new = value(U_new, sg_new)
                        if F_new < F:
                            U, sg, F, T, z, added = U_new, sg_new, F_new, T_new, z_new, True
                            break
                        t2 *= 0.25
                if not added:
                    break
                stalled = False
                theta = kernel.grad(z)
                G = problem.adjoint(theta)
                hd = kernel.hessian_parts(z)[0][:, 0]
            r = U.shape[1]
            m = d * r
            cost = _newton_work(n, d, r)
            if m > POLISH_MAX_SIZE or work + cost > max_work:
                break
            work += cost
            steps += 1
            g = (2.0 * (G @ U) * sg + 2.0 * lam * U).ravel()
            J = (2.0 * X[:, :, None] * (T * sg)[:, None, :]).reshape(n, m)
            H = J.T @ (hd[:, None] * J) + np.kron(G, np.diag(2.0 * sg)) + 2.0 * lam * np.eye(m)
            step = _newton_direction(H, g).reshape(d, r)
            slope = float(np.vdot(g, step))
            if not (slope < 0.0 and np.all(np.isfinite(step))):
                stalled = True
                continue
            t = 1.0
            for _ in range(40):
                F_new, T_new, z_new = value(U + t * step, sg)
                if F_new <= F + 1e-4 * t * slope:
                    break
                t *= 0.5
            else:
                stalled = True
                continue
            stalled = F - F_new <= 1e-13 * abs(F)
            U, F, T, z = U + t * step, F_new, T_new, z_new
    logger.debug("factored Newton polish: %d steps, rank %d, objective %.12g, gap %.3e", steps, U.shape[1],
                 best_P, best_P - best_D)
    return FactoredPolish(Z=best_Z, primal=float(best_P), dual=float(best_D), steps=steps, work=work,
                          rank=int(U.shape[1]))


def solve_quadratic_native(
    X,
    y,
    *,
    loss: str | Loss = "squared",
    lam: float = 1.0,
    tol: float = 1e-7,
    max_iter: int = 20_000,
    Z0=None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> PolynomialSolution:
    """Solve the quadratic-activation program natively (R-FISTA) with a duality-gap certificate.

    ``min_Z L(diag(X Z X^T), y) + lam ||Z||_*`` over symmetric ``Z`` (docs/polynomial.md,
    "Native solver"); the same value as :func:`cvxnn.polynomial.build_quadratic_program`.

    Parameters
    ----------
    X : array_like of shape (n, d)
    y : array_like of shape (n,)
    loss : str or Loss
        A smooth loss with a conjugate (squared, logistic, Huber).
    lam : float
        Penalty weight ``> 0`` (at ``lam = 0`` no iterate can be certified; use
        :func:`cvxnn.polynomial.build_quadratic_program` with Clarabel).
    tol : float
        Relative duality gap: ``status == "optimal"`` iff ``P - D <= tol * |P|``.
    max_iter : int
        R-FISTA iteration limit.
    Z0 : array_like of shape (d, d), optional
        Warm start (its symmetric part).
    callback : callable, optional
        Called every iteration with ``iteration``, ``objective``, ``dual``, ``gap``, ``rel_gap``,
        ``step``; returning True stops the solve.

    Returns
    -------
    PolynomialSolution
        ``program == "quadratic"``, ``dual_value`` and ``rel_gap`` set; ``status`` is
        ``"optimal"`` or ``"max_iterations"`` (with a :class:`~cvxnn.errors.ConvergenceWarning`).

    Raises
    ------
    InvalidParameterError
        Non-smooth loss, bad ``tol`` / ``max_iter`` / ``lam``.
    SolverError
        Non-finite iterates.
    """
    Xc = check_X(X)
    yc = check_y(y, Xc.shape[0], allow_matrix=False)
    loss_obj = get_loss(loss)
    yc = loss_obj.check_targets(yc)
    # lam = 0 has a dual that asks X^T diag(theta) X = 0 exactly, which no iterate reaches: the
    # solve could never certify (Clarabel takes it: build_quadratic_program)
    lam = check_lam(lam)
    if lam == 0:
        raise InvalidParameterError("lam must be > 0 for the native quadratic solver (at lam = 0 no point can "
                                    "be certified); solve lam = 0 with cvxnn.polynomial.build_quadratic_program"
                                    "(X, y, lam=0).solve().")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_solver_options(tol=tol, callback=callback)["tol"]
    d = Xc.shape[1]
    kernel = make_kernel(loss_obj, yc[:, None], np.float64)
    problem = QuadraticProblem(Xc, kernel, lam)
    if Z0 is None:
        Z = np.zeros((d, d))
    else:
        try:
            Z = np.asarray(Z0, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"Z0 must be a ({d}, {d}) array of numbers, got {type(Z0).__name__}.") from exc
        if Z.shape != (d, d):
            raise ShapeError(f"Z0 must have shape ({d}, {d}), got {Z.shape}.")
        if not np.all(np.isfinite(Z)):
            raise NonFiniteError("Z0 contains NaN or infinity.")
        Z = _sym(Z)
    img0 = problem.forward(Z)
    best: dict[str, Any] = {"P": problem.primal(img0, problem.penalty.value(Z)), "Z": Z, "D": -np.inf}
    stopped = {"callback": False}
    eta0 = 2.0 / max(kernel.curvature * problem.operator_norm_sq(), np.finfo(float).tiny)
    n = Xc.shape[0]
    can_polish = loss_obj.has_hessian and loss_obj.separable
    polish = {"work": 0.0, "next": POLISH_START, "steps": 0, "runs": 0}

    def try_polish(k: int) -> None:
        """Newton polish of the best point within its work share (docs/polynomial.md, "Native solver")."""
        budget = POLISH_COST * _fista_work(n, d) * (k + 1) - polish["work"]
        res = polish_factored(problem, best["Z"], target_gap=0.5 * tol * abs(best["P"]), max_work=budget,
                              min_steps=POLISH_MIN_STEPS)
        polish["next"] = k + 1 + POLISH_CHECK
        if res is None:
            return
        polish["work"] += res.work
        polish["steps"] += res.steps
        polish["runs"] += 1
        best["D"] = max(best["D"], res.dual)
        if res.primal < best["P"]:
            best["P"], best["Z"] = res.primal, res.Z

    def monitor(step: FistaStep) -> bool:
        P = problem.primal(step.img, step.penalty)
        if P < best["P"]:
            best["P"], best["Z"] = P, step.x
        best["D"] = max(best["D"], problem.dual(step.gimg_y, step.grad_y))
        gap = best["P"] - best["D"]
        rel = gap / max(abs(best["P"]), np.finfo(float).tiny)
        if can_polish and rel > tol and step.k + 1 >= polish["next"]:
            try_polish(step.k)
            gap = best["P"] - best["D"]
            rel = gap / max(abs(best["P"]), np.finfo(float).tiny)
        if callback is not None and callback_stops(callback({"iteration": step.k + 1, "objective": best["P"],
                                                             "dual": best["D"], "gap": gap, "rel_gap": rel,
                                                             "step": step.eta})):
            stopped["callback"] = True
            return True
        return rel <= tol

    out = rfista(problem, Z, img0, eta0=eta0, max_iter=max_iter, monitor=monitor)
    # the dual point at the returned iterate itself (often the best one near convergence)
    img = problem.forward(best["Z"])
    g = problem.smooth_grad(img)
    best["D"] = max(best["D"], problem.dual(g, problem.adjoint(g)))
    gap = best["P"] - best["D"]
    rel = gap / max(abs(best["P"]), np.finfo(float).tiny)
    status = "optimal" if rel <= tol and not stopped["callback"] else "max_iterations"
    if status != "optimal":
        why = ("stopped by the callback" if stopped["callback"] else
               "raise max_iter or warm-start with Z0=solution.Z")
        warnings.warn(f"the native quadratic-program solve stopped at relative gap {rel:.3e} (tol {tol:.1e}) "
                      f"after {out.iterations} iterations; {why}.", ConvergenceWarning, stacklevel=2)
    logger.info("native quadratic program: %d iterations, %d Newton polish steps in %d polishes, objective %.10g, "
                "rel gap %.2e", out.iterations, polish["steps"], polish["runs"], best["P"], rel)
    return quadratic_solution(best["Z"], Xc, yc, loss_obj, lam, status=status, solver="native",
                              iterations=out.iterations, dual_value=float(best["D"]), rel_gap=float(rel))


# ----------------------------------------------------------------------------- certificates
def max_on_sphere(A, g, const: float = 0.0) -> tuple[float, np.ndarray]:
    """``max_{||w|| = 1} w^T A w + g^T w + const`` exactly, and a maximiser.

    With ``A = Q diag(e) Q^T`` and ``h = Q^T g / 2``, a maximiser is ``w = (mu I - A)^{-1} g / 2``
    for the ``mu > e_max`` that solves the secular equation ``sum_k h_k^2 / (mu - e_k)^2 = 1``
    (unique: the left side decreases from ``+inf`` to ``<= 1`` on ``(e_max, e_max + ||h||]``).
    In the *hard case* (``h`` orthogonal to the top eigenspace and the equation at ``mu = e_max``
    already ``<= 1``), ``mu = e_max`` and a top eigenvector completes ``w`` to unit norm.

    Parameters
    ----------
    A : array_like of shape (d, d)
        Symmetric.
    g : array_like of shape (d,)
    const : float

    Returns
    -------
    (value, w) : tuple of float and ndarray of shape (d,)
    """
    A = as_float_array(A, "A")
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ShapeError(f"A must be a non-empty square matrix, got shape {A.shape}.")
    g = as_float_array(g, "g").reshape(-1)
    if g.shape != (A.shape[0],):
        raise ShapeError(f"g must have {A.shape[0]} entries (the size of A), got {g.size}.")
    const = _as_real_scalar(const, "const")
    for name, arr in (("A", A), ("g", g), ("const", np.asarray(const))):
        if not np.all(np.isfinite(arr)):
            raise NonFiniteError(f"{name} contains NaN or infinity.")
    A = _sym(A)
    e, Q = np.linalg.eigh(A)
    h = Q.T @ g / 2.0
    e_max = float(e[-1])
    scale = max(float(np.abs(e).max(initial=0.0)), float(np.linalg.norm(h)), np.finfo(float).tiny)
    top = e >= e_max - 1e-12 * scale
    h_top = float(np.linalg.norm(h[top]))

    def phi(mu: float) -> float:
        return float(np.sum((h / (mu - e)) ** 2))

    if h_top <= 1e-12 * scale:
        rest = ~top
        z = np.zeros_like(h)
        z[rest] = h[rest] / (e_max - e[rest])
        zz = float(z @ z)
        if zz <= 1.0:  # hard case: mu = e_max
            z[np.flatnonzero(top)[0]] = math.sqrt(1.0 - zz)
            w = Q @ z
            return float(w @ A @ w + g @ w + const), w
    hn = float(np.linalg.norm(h))
    lo = e_max + max(1e-14 * scale, h_top * 1e-8)
    while phi(lo) <= 1.0 and lo - e_max > 1e-300:
        lo = e_max + (lo - e_max) / 16.0
    if not lo > e_max or not phi(lo) > 1.0:
        # mu indistinguishable from e_max: the hard case up to rounding
        z = np.zeros_like(h)
        z[~top] = h[~top] / (e_max - e[~top])
        z[np.flatnonzero(top)[0]] = math.sqrt(max(1.0 - float(z @ z), 0.0))
        z /= max(float(np.linalg.norm(z)), np.finfo(float).tiny)
        w = Q @ z
        return float(w @ A @ w + g @ w + const), w
    hi = e_max + hn
    mu = hi if phi(hi) >= 1.0 else brentq(lambda t: 1.0 / math.sqrt(phi(t)) - 1.0, lo, hi, xtol=1e-15 * scale,
                                         rtol=4 * np.finfo(float).eps, maxiter=200)
    z = h / (mu - e)
    z /= max(float(np.linalg.norm(z)), np.finfo(float).tiny)
    w = Q @ z
    return float(w @ A @ w + g @ w + const), w


def polynomial_dual_norm(X, theta, a: float, b: float, c: float) -> float:
    """``max_{||w|| = 1} |sum_i theta_i sigma(w^T x_i)|``: the largest correlation of a unit
    neuron with ``theta`` (the dual norm of the program's penalty at ``theta``).

    ``sum_i theta_i sigma(w^T x_i) = w^T (a X^T diag(theta) X) w + (b X^T theta)^T w + c sum(theta)``;
    the maximum of its absolute value is the larger of two :func:`max_on_sphere` calls.
    """
    X = check_X(X)
    theta = as_float_array(theta, "theta").reshape(-1)
    if theta.shape[0] != X.shape[0]:
        raise ShapeError(f"theta has {theta.shape[0]} entries, X has {X.shape[0]} rows.")
    if not np.all(np.isfinite(theta)):
        raise NonFiniteError("theta contains NaN or infinity.")
    for name, v in (("a", a), ("b", b), ("c", c)):
        if not np.isfinite(_as_real_scalar(v, name)):
            raise NonFiniteError(f"{name} must be finite, got {v}.")
    A = a * (X.T @ (theta[:, None] * X))
    g = b * (X.T @ theta)
    k = c * float(theta.sum())
    up, _ = max_on_sphere(A, g, k)
    down, _ = max_on_sphere(-A, -g, -k)
    return max(up, down, 0.0)


def polynomial_duality_gap(point: PolynomialNetwork | PolynomialSolution, X, y, *, lam: float,
                           loss: str | Loss = "squared") -> GapCertificate:
    """Duality-gap certificate of a network or program point (docs/polynomial.md, "Certificates").

    ``primal`` is the objective ``L(yhat, y) + lam * penalty`` of the point (for a solution, its
    program objective); ``dual = -L*(s theta)`` with ``theta = grad L(yhat)`` and ``s`` the best
    factor with ``s * max_{||w||=1} |theta^T sigma(X w)| <= lam``. ``dual <= p*``, the global
    optimum over networks of any width, so ``primal - dual`` bounds the suboptimality.

    Parameters
    ----------
    point : PolynomialNetwork or PolynomialSolution
    X, y : array_like
    lam : float
    loss : str or Loss
        A smooth loss with a conjugate.

    Returns
    -------
    GapCertificate
    """
    Xc = check_X(X)
    yc = check_y(y, Xc.shape[0], allow_matrix=False)
    loss_obj = get_loss(loss)
    yc = loss_obj.check_targets(yc)
    lam = check_lam(lam)
    if not (loss_obj.smooth and loss_obj.has_conjugate):
        raise InvalidParameterError(f"the duality gap needs a smooth loss with a conjugate, got {loss_obj.name!r}.")
    if isinstance(point, PolynomialNetwork):
        penalty, (a, b, c) = point.penalty(), (point.a, point.b, point.c)
    elif isinstance(point, PolynomialSolution):
        penalty, (a, b, c) = point.penalty, (point.a, point.b, point.c)
    else:
        raise InvalidParameterError("point must be a PolynomialNetwork or PolynomialSolution, "
                                    f"got {type(point).__name__}.")
    a, b, c = check_coefficients(a, b, c)
    yhat = point.predict(Xc)
    primal = loss_obj.value(yhat, yc) + lam * penalty
    theta = loss_obj.grad(yhat, yc)
    dn = polynomial_dual_norm(Xc, theta, a, b, c)
    s_max = np.inf if dn == 0.0 else lam / dn
    scale = loss_obj.scale(yc.shape[0])
    s = loss_obj.best_dual_scale(theta, yc, scale, s_max)
    dual = -loss_obj.conjugate(s * theta, yc)
    gap = primal - dual
    return GapCertificate(primal=float(primal), dual=float(dual), gap=float(gap),
                          rel_gap=float(gap / max(abs(primal), np.finfo(float).tiny)), scale=float(s))
