"""Native solver and certificates of the polynomial-activation programs (docs/polynomial.md).

* :func:`solve_quadratic_native` -- the quadratic-activation program
  ``min_Z h(A Z) + lam ||Z||_*`` over symmetric ``Z``, with ``A Z = diag(X Z X^T)``,
  by R-FISTA (:func:`cvxnn.native.fista.rfista`): the adjoint is ``A^T g = X^T diag(g) X``
  and the prox of ``t ||.||_*`` on symmetric matrices soft-thresholds the eigenvalues
  (:class:`SymmetricNuclear`). It stops on a certified relative duality gap.
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
    "polynomial_duality_gap",
    "polynomial_dual_norm",
    "solve_quadratic_native",
]

logger = logging.getLogger(__name__)


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

    def monitor(step: FistaStep) -> bool:
        P = problem.primal(step.img, step.penalty)
        if P < best["P"]:
            best["P"], best["Z"] = P, step.x
        best["D"] = max(best["D"], problem.dual(step.gimg_y, step.grad_y))
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
    logger.info("native quadratic program: %d iterations, objective %.10g, rel gap %.2e", out.iterations,
                best["P"], rel)
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
