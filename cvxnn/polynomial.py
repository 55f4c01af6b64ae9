"""Two-layer networks with a polynomial activation, trained by semidefinite programming
(docs/polynomial.md; notation of docs/math.md, "Notation").

The network is

    f(x) = sum_j alpha_j sigma(w_j^T x),   sigma(t) = a t^2 + b t + c,   ||w_j||_2 = 1,

trained with the penalty ``lam * sum_j |alpha_j|`` (``lam`` is the ``beta`` of the polynomial
papers; every cvxnn program calls its regularisation Parameter ``lam``):

    p* = min_{m, W, alpha}  L(f(X), y) + lam * sum_j |alpha_j| .

Unit-norm first layers with an l1 penalty on the output weights is the form whose convex
reformulation is exact; weight decay with a quadratic activation induces the concave penalty
``const * lam * sum_j |gamma_j|^(2/3)`` on the unit-norm coefficients (docs/polynomial.md,
"Why not weight decay").

* **Quadratic activation** (``sigma(t) = t^2``, :func:`build_quadratic_program`): with
  ``Z = sum_j alpha_j w_j w_j^T`` the prediction is ``x^T Z x`` and the smallest
  ``sum_j |alpha_j|`` representing ``Z`` is the nuclear norm ``||Z||_*``, so

      min_Z  L(diag(X Z X^T), y) + lam ||Z||_* ,

  written as the SDP ``Z = P - N``, ``P, N`` PSD, penalty ``tr P + tr N``. The
  eigendecomposition of the optimal ``Z`` is an optimal network of width ``<= d``.
* **General activation** (:func:`build_polynomial_program`): two PSD matrices ``M+`` and
  ``M-`` of size ``(d+1) x (d+1)`` with ``tr(M_11) = M_22`` (``<J, M> = 0`` for
  ``J = diag(I_d, -1)``); the prediction is
  ``a x^T (M+_11 - M-_11) x + b x^T (M+_12 - M-_12) + c (M+_22 - M-_22)`` and the penalty
  ``lam (M+_22 + M-_22)``. The value equals ``p*``.
* **Map to neurons** (:func:`rank_one_decomposition`, :func:`network_from_lift`): a
  decomposition ``M = sum_k m_k m_k^T`` with ``m_k^T J m_k = 0`` (Sturm & Zhang 2003), so
  ``m_k = t_k (w_k, 1)`` with ``||w_k|| = 1``, gives the neuron ``(w_k, +-t_k^2)``; the
  network's objective equals the program's.

The CVXPY programs are built once with ``lam`` a DPP :class:`cvxpy.Parameter` and solved through
the library's one CVXPY adapter (:func:`cvxnn.backends.cvxpy_adapter.run_problem`), so statuses
are those of every other program. The native solver of the quadratic program and the
duality-gap certificates are in :mod:`cvxnn.native.polynomial`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
from scipy.optimize import minimize

from ._validation import (
    _as_real_scalar,
    as_float_array,
    as_generator,
    check_allocation,
    check_bool,
    check_lam,
    check_nonnegative_float,
    check_positive_int,
    check_X,
    check_y,
)
from .backends import cvxpy_adapter
from .errors import (
    InaccurateSolutionWarning,
    InfeasibleError,
    InvalidParameterError,
    NonFiniteError,
    ShapeError,
    SolverError,
    UnboundedError,
)
from .losses import Loss, get_loss
from .program import EXP_CONE_CLARABEL_OPTIONS, uses_exponential_cones

__all__ = [
    "PolynomialNetwork",
    "PolynomialProgram",
    "PolynomialSolution",
    "build_polynomial_program",
    "build_quadratic_program",
    "fit_nonconvex",
    "lift_features",
    "lorentz_matrix",
    "network_from_lift",
    "network_from_quadratic",
    "network_to_lift",
    "rank_one_decomposition",
]

logger = logging.getLogger(__name__)

#: Largest deviation of ``||w_j||`` from 1 accepted by :class:`PolynomialNetwork`.
UNIT_NORM_TOL = 1e-6
#: Clarabel settings tried in turn when a polynomial program (no caller options) ends neither
#: optimal nor infeasible. Measured on the lift at n=200, d=40 (benchmarks/bench_polynomial.py):
#: with the defaults Clarabel stops at its first iteration with NumericalError; without
#: equilibration it solves it ('optimal', 4.7 s); a larger static regularisation also does (12.6 s).
PSD_CLARABEL_RETRIES: tuple[tuple[tuple[str, Any], ...], ...] = (
    (("equilibrate_enable", False),),
    (("static_regularization_constant", 1e-7),),
)
#: Default relative eigenvalue threshold of the maps to networks (solver noise, see
#: :func:`network_from_lift`).
RANK_TOL = 1e-8


# ----------------------------------------------------------------------------- validation
def check_coefficients(a, b, c) -> tuple[float, float, float]:
    """Validate the activation ``sigma(t) = a t^2 + b t + c``: finite reals, not all zero.

    Raises
    ------
    InvalidParameterError
        A coefficient is not a real number, or all three are zero (every network is then 0).
    NonFiniteError
        A coefficient is NaN or infinite.
    """
    out = []
    for name, value in (("a", a), ("b", b), ("c", c)):
        v = _as_real_scalar(value, name)
        if not np.isfinite(v):
            raise NonFiniteError(f"the activation coefficient {name} must be finite, got {v}.")
        out.append(v)
    if not any(out):
        raise InvalidParameterError("the activation a t^2 + b t + c is identically zero; "
                                    "set at least one of a, b, c.")
    return out[0], out[1], out[2]


def _check_data(X, y, loss) -> tuple[np.ndarray, np.ndarray, Loss]:
    Xc = check_X(X)
    yc = check_y(y, Xc.shape[0], allow_matrix=False)
    loss_obj = get_loss(loss)
    return Xc, loss_obj.check_targets(yc), loss_obj


def lorentz_matrix(d: int) -> np.ndarray:
    """``J = diag(I_d, -1)``: ``m^T J m = ||u||^2 - t^2`` for ``m = (u, t)``; a PSD ``M`` of the
    lift satisfies ``<J, M> = tr(M_11) - M_22 = 0``."""
    d = check_positive_int(d, "d")
    J = np.eye(d + 1)
    J[d, d] = -1.0
    return J


def lift_features(X: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """Rows ``vec(A_i)`` with ``A_i = [[a x_i x_i^T, b x_i / 2], [b x_i^T / 2, c]]``, so that
    the lifted prediction is ``<A_i, M> = a x_i^T M_11 x_i + b x_i^T M_12 + c M_22``.

    Returns
    -------
    ndarray of shape (n, (d+1)^2)
        ``A_i`` is symmetric, so row- and column-major ``vec`` agree.
    """
    a, b, c = check_coefficients(a, b, c)
    X = check_X(X)
    n, d = X.shape
    check_allocation((n, (d + 1) ** 2), what="the lifted features of the polynomial program")
    Xo = np.hstack([X, np.ones((n, 1))])
    A = Xo[:, :, None] * Xo[:, None, :]
    A[:, :d, :d] *= a
    A[:, :d, d] *= b / 2.0
    A[:, d, :d] *= b / 2.0
    A[:, d, d] = c
    return A.reshape(n, (d + 1) ** 2)


def _quadratic_features(X: np.ndarray) -> np.ndarray:
    """Rows ``vec(x_i x_i^T)`` (``n x d^2``): ``<x_i x_i^T, Z> = x_i^T Z x_i``."""
    n, d = X.shape
    check_allocation((n, d * d), what="the features of the quadratic program")
    return (X[:, :, None] * X[:, None, :]).reshape(n, d * d)


def _sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + A.T)


# ----------------------------------------------------------------------------- network
@dataclass(frozen=True, eq=False)
class PolynomialNetwork:
    """``f(x) = sum_j alpha_j sigma(w_j^T x)`` with ``sigma(t) = a t^2 + b t + c`` and unit-norm
    first-layer weights ``w_j`` (the columns of ``W``).

    Parameters
    ----------
    W : array_like of shape (d, m)
        Neurons as columns, each of Euclidean norm 1 (within :data:`UNIT_NORM_TOL`).
    alpha : array_like of shape (m,)
        Output weights.
    a, b, c : float
        Activation coefficients.

    Raises
    ------
    ShapeError
        ``W`` not 2-D or ``alpha`` not of length ``m``.
    NonFiniteError
        NaN or infinity in the weights.
    InvalidParameterError
        A column of ``W`` is not of unit norm, or bad coefficients.
    """

    W: np.ndarray
    alpha: np.ndarray
    a: float = 1.0
    b: float = 0.0
    c: float = 0.0

    def __post_init__(self) -> None:
        W = as_float_array(self.W, "W")
        alpha = as_float_array(self.alpha, "alpha").reshape(-1)
        if W.ndim != 2:
            raise ShapeError(f"W must be 2-D (n_features, n_neurons), got shape {W.shape}.")
        if alpha.shape != (W.shape[1],):
            raise ShapeError(f"alpha must have shape ({W.shape[1]},), got {alpha.shape}.")
        for name, arr in (("W", W), ("alpha", alpha)):
            if not np.all(np.isfinite(arr)):
                raise NonFiniteError(f"{name} contains NaN or infinity.")
        norms = np.linalg.norm(W, axis=0)
        if np.any(np.abs(norms - 1.0) > UNIT_NORM_TOL):
            worst = int(np.argmax(np.abs(norms - 1.0)))
            raise InvalidParameterError(
                f"the first-layer weights must have unit norm; column {worst} has norm {norms[worst]:.6g} "
                "(normalise the columns and move the scale into alpha: sigma is not homogeneous)."
            )
        a, b, c = check_coefficients(self.a, self.b, self.c)
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)

    @property
    def n_neurons(self) -> int:
        """Width ``m``."""
        return int(self.W.shape[1])

    @property
    def n_features(self) -> int:
        """Input dimension ``d``."""
        return int(self.W.shape[0])

    def activations(self, X) -> np.ndarray:
        """``sigma(X W)``, shape ``(n, m)``."""
        X = check_X(X)
        if X.shape[1] != self.n_features:
            raise ShapeError(f"X has {X.shape[1]} features, the network {self.n_features}.")
        T = X @ self.W
        return self.a * T * T + self.b * T + self.c

    def predict(self, X) -> np.ndarray:
        """``f(X) = sigma(X W) alpha``, shape ``(n,)``."""
        return self.activations(X) @ self.alpha

    def penalty(self) -> float:
        """``sum_j |alpha_j|``."""
        return float(np.abs(self.alpha).sum())

    def objective(self, X, y, loss: str | Loss = "squared", lam: float = 1.0) -> float:
        """``L(f(X), y) + lam * sum_j |alpha_j|`` (the program's convention)."""
        lam = check_lam(lam)
        Xc, yc, loss_obj = _check_data(X, y, loss)
        return loss_obj.value(self.predict(Xc), yc) + lam * self.penalty()

    def quadratic_form(self) -> np.ndarray:
        """``Z = sum_j alpha_j w_j w_j^T`` (``d x d``): the quadratic part is ``a x^T Z x``."""
        return (self.W * self.alpha) @ self.W.T


def network_to_lift(network: PolynomialNetwork) -> tuple[np.ndarray, np.ndarray]:
    """The lifted point of a network: ``M+ = sum_{alpha_j > 0} alpha_j (w_j, 1)(w_j, 1)^T`` and
    ``M- = sum_{alpha_j < 0} |alpha_j| (w_j, 1)(w_j, 1)^T``.

    Both are PSD with ``tr(M_11) = M_22`` (unit-norm ``w_j``); the lifted prediction equals the
    network's and ``M+_22 + M-_22 = sum_j |alpha_j|``, so the program's objective at this point
    equals the network's (hence the program's value is at most ``p*``).

    Returns
    -------
    (M_plus, M_minus) : tuple of ndarray of shape (d+1, d+1)
    """
    d, m = network.W.shape
    E = np.vstack([network.W, np.ones((1, m))])
    pos = np.clip(network.alpha, 0.0, None)
    neg = np.clip(-network.alpha, 0.0, None)
    return (E * pos) @ E.T, (E * neg) @ E.T


# ----------------------------------------------------------------------------- decomposition
def _isotropic_columns(V: np.ndarray, J: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotate the columns of ``V`` (``V V^T`` unchanged) so that each ``v_k^T J v_k = 0``,
    given ``tr(V^T J V) = 0``; returns the rotated copy and the largest ``|v_k^T J v_k|`` left
    (rounding, or the trace residual of an inexact input, which ends on one column)."""
    V = np.array(V, dtype=float, copy=True)
    r = V.shape[1]
    if r == 0:
        return V, 0.0
    G = V.T @ J @ V
    G = _sym(G)
    scale = float(np.abs(np.diag(G)).sum()) + float(np.einsum("ij,ij->", V, V))
    eps = 1e-15 * scale
    active = np.ones(r, dtype=bool)
    for _ in range(r - 1):
        g = np.where(active, np.diag(G), np.nan)
        i = int(np.nanargmax(g))
        j = int(np.nanargmin(g))
        gi, gj, gij = G[i, i], G[j, j], G[i, j]
        if gi <= eps or gj >= -eps:
            break
        # tan(theta) solves gi + 2 gij t + gj t^2 = 0; gi gj < 0 so both roots are real; take
        # the smaller one in the cancellation-free form t = gi / q.
        disc = np.sqrt(gij * gij - gi * gj)
        q = -(gij + (disc if gij >= 0 else -disc))
        t = gi / q
        cs = 1.0 / np.sqrt(1.0 + t * t)
        sn = t * cs
        R = np.array([[cs, -sn], [sn, cs]])
        idx = [i, j]
        V[:, idx] = V[:, idx] @ R
        G[:, idx] = G[:, idx] @ R
        G[idx, :] = R.T @ G[idx, :]
        G[i, i] = 0.0  # isotropic by construction (removes the rounding of the update)
        active[i] = False
    resid = float(np.max(np.abs(np.einsum("ik,ij,jk->k", V, J, V)), initial=0.0))
    return V, resid


def rank_one_decomposition(M, J=None, *, tol: float = 1e-6) -> np.ndarray:
    """Sturm-Zhang rank-one decomposition: ``M = sum_k m_k m_k^T`` with ``m_k^T J m_k = 0``.

    For a PSD ``M`` with ``<J, M> = 0`` (docs/polynomial.md, "Rank-one decomposition"):
    factor ``M = V V^T`` (eigendecomposition, ``r = rank M`` columns), so ``G = V^T J V`` has
    trace 0. While some column has ``g_ii = v_i^T J v_i > 0`` and another ``g_jj < 0``, rotate
    the pair, ``v_i <- cos(theta) v_i + sin(theta) v_j``, ``v_j <- -sin(theta) v_i + cos(theta) v_j``,
    by the angle with ``v_i^T J v_i = 0`` (a quadratic in ``tan(theta)`` with a positive
    discriminant); ``V V^T`` is unchanged and ``v_i`` is retired. At most ``r - 1`` rotations,
    each ``O(d + r)``; the last column is isotropic because the trace is 0.

    Parameters
    ----------
    M : array_like of shape (N, N)
        Symmetric positive semidefinite.
    J : array_like of shape (N, N), optional
        Symmetric; default :func:`lorentz_matrix` ``diag(I_{N-1}, -1)``.
    tol : float
        Relative tolerance for ``M`` PSD (``lambda_min >= -tol * ||M||``) and for
        ``|<J, M>| <= tol * tr(M) * ||J||_2``.

    Returns
    -------
    ndarray of shape (N, r)
        The vectors ``m_k`` as columns; ``r = rank(M)`` (eigenvalues above ``1e-12 ||M||``).

    Raises
    ------
    ShapeError
        ``M`` or ``J`` not square of the same size.
    NonFiniteError
        NaN or infinity.
    InvalidParameterError
        ``M`` not symmetric PSD, or ``<J, M> != 0``: no such decomposition exists.
    """
    M = as_float_array(M, "M")
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ShapeError(f"M must be a non-empty square matrix, got shape {M.shape}.")
    N = M.shape[0]
    J = lorentz_matrix(N - 1) if J is None else as_float_array(J, "J")
    if J.shape != M.shape:
        raise ShapeError(f"J must have the shape of M {M.shape}, got {J.shape}.")
    tol = check_nonnegative_float(tol, "tol")
    for name, arr in (("M", M), ("J", J)):
        if not np.all(np.isfinite(arr)):
            raise NonFiniteError(f"{name} contains NaN or infinity.")
    # work on M / ||M|| and J / ||J|| (the decomposition of c M is sqrt(c) times that of M, and
    # isotropy does not see the scale of J): M * 1e-170 or 1e160 would under- or overflow
    scale = float(np.abs(M).max())
    if scale == 0.0:
        return np.zeros((N, 0))
    M = M / scale
    j_scale = float(np.abs(J).max())
    J = J / j_scale if j_scale > 0 else J
    norm = float(np.linalg.norm(M, 2))
    if not np.allclose(M, M.T, rtol=0.0, atol=tol * max(norm, np.finfo(float).tiny)):
        raise InvalidParameterError("M must be symmetric.")
    if not np.allclose(J, J.T, rtol=0.0, atol=0.0):
        raise InvalidParameterError("J must be symmetric.")
    evals, Q = np.linalg.eigh(_sym(M))
    if evals[0] < -tol * norm:
        raise InvalidParameterError(
            f"M must be positive semidefinite; its smallest eigenvalue is {evals[0] * scale:.3e}.")
    inner = float(np.vdot(J, M))
    if abs(inner) > tol * float(np.trace(M)) * float(np.linalg.norm(J, 2)) + np.finfo(float).tiny:
        raise InvalidParameterError(
            f"<J, M> = {inner * scale * (j_scale or 1.0):.3e} is not 0: a decomposition into J-isotropic "
            "rank-one terms exists only when <J, M> = 0 (for the lift: trace(M_11) = M_22)."
        )
    keep = evals > 1e-12 * norm
    V = Q[:, keep] * np.sqrt(evals[keep])
    out, resid = _isotropic_columns(V, J)
    out = out * np.sqrt(scale)
    logger.debug("rank-one decomposition: rank %d, largest |m^T J m| %.3e", out.shape[1], resid)
    return out


#: :func:`network_from_lift` refuses a lifted matrix farther than this from the lift's set
#: (relative to its largest eigenvalue: its most negative eigenvalue, or ``|tr(M_11) - M_22|``),
#: which no network realises: ``M+ = I_4`` mapped to a network predicting 0.016 where the lift
#: predicts 0.443. Solvers' certified points are feasible to about 1e-8.
LIFT_FEASIBILITY_TOL = 1e-5


def network_from_lift(M_plus, M_minus, a: float, b: float, c: float, *,
                      rank_tol: float = RANK_TOL, check: bool = True) -> PolynomialNetwork:
    """The network of a lifted point ``(M+, M-)`` (docs/polynomial.md, "Map to neurons").

    Each factor ``m_k = (u_k, t_k)`` of :func:`rank_one_decomposition` has ``||u_k|| = |t_k|``,
    hence ``m_k m_k^T = t_k^2 (w_k, 1)(w_k, 1)^T`` with ``w_k = u_k / t_k`` of unit norm: the
    neuron ``(w_k, +t_k^2)`` from ``M+`` and ``(w_k, -t_k^2)`` from ``M-``. ``t_k = 0`` forces
    ``u_k = 0``: a J-isotropic factor is never degenerate, it is zero. On a solver's point
    ``<J, M>`` is 0 only to tolerance; the factors are then nearly isotropic and the neuron gets
    ``w_k = sign(t_k) u_k / ||u_k||`` and ``|alpha_k| = |t_k| ||u_k||`` (exact for the linear term,
    within the residual for the others). The decomposition runs without the feasibility check,
    so the returned network's objective can be compared with the program's.

    Parameters
    ----------
    M_plus, M_minus : array_like of shape (d+1, d+1)
        PSD with ``tr(M_11) = M_22`` (to solver tolerance).
    a, b, c : float
        Activation coefficients.
    rank_tol : float
        Eigenvalues of ``M+`` and ``M-`` at most ``rank_tol`` times the largest are treated as 0
        before the decomposition: an interior-point solution has all its eigenvalues positive,
        and the rotations would mix those at the solver's noise level (``~1e-9``) into neurons
        of small but non-negligible weight. The change in the objective is of the order of the
        dropped eigenvalues. ``0`` decomposes the point exactly as given.
    check : bool
        Refuse matrices farther than :data:`LIFT_FEASIBILITY_TOL` (relative) from the lift's
        set (PSD, ``tr(M_11) = M_22``), whose network would predict something else.
        :meth:`PolynomialSolution.to_network` passes False: an unconverged solver's point maps
        to a network within its residual.

    Returns
    -------
    PolynomialNetwork
        Width ``rank(M+) + rank(M-) <= 2 (d + 1)`` (numerical ranks at ``rank_tol``).

    Raises
    ------
    InvalidParameterError
        With ``check``, a matrix that is not PSD or has ``tr(M_11) != M_22`` beyond the
        tolerance.
    """
    a, b, c = check_coefficients(a, b, c)
    rank_tol = check_nonnegative_float(rank_tol, "rank_tol")
    check = check_bool(check, "check")
    Ws, alphas = [], []
    for sign, M in ((1.0, M_plus), (-1.0, M_minus)):
        M = as_float_array(M, "M")
        if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] < 2:
            raise ShapeError(f"the lifted matrices must be (d+1) x (d+1) with d >= 1, got {M.shape}.")
        if not np.all(np.isfinite(M)):
            raise NonFiniteError("a lifted matrix contains NaN or infinity.")
        D = M.shape[0]
        scale = float(np.abs(M).max())  # rotate M / scale: squares of 1e160 entries overflow
        evals, Q = np.linalg.eigh(_sym(M / scale if scale > 0 else M))
        if check and scale > 0:
            top = max(float(np.abs(evals).max()), np.finfo(float).tiny)
            Ms = M / scale
            trace_gap = abs(float(np.trace(Ms[:-1, :-1]) - Ms[-1, -1])) / top
            if float(evals[0]) < -LIFT_FEASIBILITY_TOL * top or trace_gap > LIFT_FEASIBILITY_TOL:
                name = "M_plus" if sign > 0 else "M_minus"
                raise InvalidParameterError(
                    f"{name} is not a lifted point (PSD with tr(M_11) = M_22): its smallest eigenvalue is "
                    f"{float(evals[0]) / top:.2e} and |tr(M_11) - M_22| {trace_gap:.2e} of its largest eigenvalue "
                    f"(tolerance {LIFT_FEASIBILITY_TOL:g}); no network realises it. Pass check=False to map it "
                    "anyway (the network then predicts something else).")
        keep = evals > max(rank_tol * float(evals[-1]), 0.0)
        V, _ = _isotropic_columns(Q[:, keep] * np.sqrt(evals[keep]), lorentz_matrix(D - 1))
        V = V * np.sqrt(scale)
        u, t = V[:-1], V[-1]
        un = np.linalg.norm(u, axis=0)
        ok = un > 0
        Ws.append(u[:, ok] / un[ok] * np.where(t[ok] < 0, -1.0, 1.0))
        alphas.append(sign * np.abs(t[ok]) * un[ok])
    if Ws[0].shape[0] != Ws[1].shape[0]:
        raise ShapeError("M_plus and M_minus must have the same size.")
    W = np.hstack(Ws)
    alpha = np.concatenate(alphas)
    keep = alpha != 0.0
    return PolynomialNetwork(W[:, keep], alpha[keep], a, b, c)


def network_from_quadratic(Z, a: float = 1.0, *, rank_tol: float = RANK_TOL) -> PolynomialNetwork:
    """The network ``sum_k (e_k / a) (q_k^T x)^2`` of the eigendecomposition ``Z = sum_k e_k q_k q_k^T``
    (activation ``a t^2``; docs/polynomial.md, "Quadratic activation").

    Its prediction is ``x^T Z x`` and its penalty ``sum_k |e_k| / |a| = ||Z||_* / |a|``, the
    smallest over networks with this prediction.

    Parameters
    ----------
    Z : array_like of shape (d, d)
        Symmetric (the symmetric part is used: ``x^T Z x`` only depends on it).
    a : float
        Coefficient of the quadratic activation.
    rank_tol : float
        Eigenvalues with ``|e_k| <= rank_tol * max |e|`` are dropped (solver noise); ``0`` keeps
        every non-zero one.
    """
    a, _, _ = check_coefficients(a, 0.0, 0.0)
    rank_tol = check_nonnegative_float(rank_tol, "rank_tol")
    Z = as_float_array(Z, "Z")
    if Z.ndim != 2 or Z.shape[0] != Z.shape[1] or Z.shape[0] == 0:
        raise ShapeError(f"Z must be a non-empty square matrix, got shape {Z.shape}.")
    if not np.all(np.isfinite(Z)):
        raise NonFiniteError("Z contains NaN or infinity.")
    e, Q = np.linalg.eigh(_sym(Z))
    keep = np.abs(e) > max(rank_tol * float(np.abs(e).max(initial=0.0)), 0.0)
    return PolynomialNetwork(Q[:, keep], e[keep] / a, a, 0.0, 0.0)


# ----------------------------------------------------------------------------- solution
@dataclass(frozen=True, eq=False)
class PolynomialSolution:
    """A point of a polynomial-activation program returned by a solver, with its status.

    Attributes
    ----------
    Z : ndarray of shape (d, d)
        ``M+_11 - M-_11`` (lift) or ``P - N`` (quadratic program): the quadratic part of the
        prediction is ``a x^T Z x``.
    v : ndarray of shape (d,)
        ``M+_12 - M-_12`` (zero for the quadratic program): the linear part is ``b x^T v``.
    s : float
        ``M+_22 - M-_22`` (zero for the quadratic program): the constant is ``c s``.
    penalty : float
        ``M+_22 + M-_22`` (lift) or ``tr P + tr N`` (quadratic; ``||Z||_*`` when larger, which
        happens only for ``P``, ``N`` that are not PSD, as an unconverged solver's may be: no
        network with this ``Z`` has a smaller penalty).
    objective : float
        ``L(prediction, y) + lam * penalty`` at the returned point, in numpy.
    status : str
        cvxnn's status (``"optimal"``, ``"optimal_inaccurate"``, ``"max_iterations"``).
    program : str
        ``"quadratic"`` or ``"lift"``.
    a, b, c, lam : float
    loss : Loss
    X, y : ndarray
        Training data.
    P, N : ndarray or None
        The PSD parts of the quadratic program.
    M_plus, M_minus : ndarray or None
        The PSD matrices of the lift, with ``tr(M_11) = M_22``: the solver's point with its
        negative eigenvalues and its trace residual removed (an unconverged solver's matrices need
        be neither; their program value could undercut every network).
    solver : str
    cvxpy_status : str or None
    solve_time, compile_time : float or None
    iterations : int or None
    dual_value, rel_gap : float or None
        Duality-gap certificate (native solver; see
        :func:`cvxnn.native.polynomial.polynomial_duality_gap` for any point).
    """

    Z: np.ndarray
    v: np.ndarray
    s: float
    penalty: float
    objective: float
    status: str
    program: str
    a: float
    b: float
    c: float
    lam: float
    loss: Loss
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    P: np.ndarray | None = field(default=None, repr=False)
    N: np.ndarray | None = field(default=None, repr=False)
    M_plus: np.ndarray | None = field(default=None, repr=False)
    M_minus: np.ndarray | None = field(default=None, repr=False)
    solver: str = ""
    cvxpy_status: str | None = None
    solve_time: float | None = None
    compile_time: float | None = None
    iterations: int | None = None
    dual_value: float | None = None
    rel_gap: float | None = None

    @property
    def converged(self) -> bool:
        """True when the solver certified the requested accuracy."""
        return self.status == "optimal"

    def predict(self, X) -> np.ndarray:
        """``a x^T Z x + b x^T v + c s`` for every row of ``X``."""
        X = check_X(X)
        if X.shape[1] != self.Z.shape[0]:
            raise ShapeError(f"X has {X.shape[1]} features, the solution {self.Z.shape[0]}.")
        return self.a * np.einsum("ij,jk,ik->i", X, self.Z, X) + self.b * (X @ self.v) + self.c * self.s

    def to_network(self, *, rank_tol: float = RANK_TOL) -> PolynomialNetwork:
        """The network of this point: the eigendecomposition of ``Z`` (quadratic program) or the
        rank-one decomposition of ``M+`` and ``M-`` (lift); see :func:`network_from_quadratic`
        and :func:`network_from_lift` for ``rank_tol``. With ``rank_tol=0`` the network's
        objective equals :attr:`objective` for the lift (up to the residual of
        ``tr(M_11) = M_22``) and is at most :attr:`objective` for the quadratic program; the
        default drops directions at the solver's noise level, which changes it by about as much."""
        if self.program == "lift":
            return network_from_lift(self.M_plus, self.M_minus, self.a, self.b, self.c, rank_tol=rank_tol,
                                     check=False)
        return network_from_quadratic(self.Z, self.a, rank_tol=rank_tol)


def _feasible_lift(M: np.ndarray) -> np.ndarray:
    """A point of the lift's set ``{M PSD, tr(M_11) = M_22}`` next to a solver's ``M``: negative
    eigenvalues set to 0, then the smaller side of ``tr(M_11) = M_22`` raised (``M_22``, or
    ``M_11`` by a multiple of the identity; both keep ``M`` PSD). A solver's certified point moves
    by its residual (about 1e-9); an unconverged one becomes the lift of a network
    (:func:`network_from_lift`), so its objective is never below ``p*``."""
    M = _sym(np.asarray(M, dtype=float))
    e, Q = np.linalg.eigh(M)
    if e[0] < 0.0:
        M = _sym((Q * np.clip(e, 0.0, None)) @ Q.T)
    d = M.shape[0] - 1
    excess = float(np.trace(M[:d, :d]) - M[d, d])
    if excess > 0.0:
        M[d, d] += excess
    elif excess < 0.0:
        M[:d, :d] += (-excess / d) * np.eye(d)
    return M


def quadratic_solution(Z: np.ndarray, X: np.ndarray, y: np.ndarray, loss: Loss, lam: float,
                       **fields: Any) -> PolynomialSolution:
    """A :class:`PolynomialSolution` of the quadratic program at a symmetric ``Z`` (``P``, ``N``
    its positive and negative parts unless given, so the penalty is ``||Z||_*``)."""
    Z = _sym(Z)
    P, N = fields.pop("P", None), fields.pop("N", None)
    if P is None or N is None:
        e, Q = np.linalg.eigh(Z)
        P = (Q * np.clip(e, 0.0, None)) @ Q.T
        N = (Q * np.clip(-e, 0.0, None)) @ Q.T
    pen = float(np.trace(P) + np.trace(N))
    # an unconverged solver's P, N need not be PSD; then tr P + tr N can undercut every network
    # with this Z (a negative duality gap on wine): no split of Z costs less than ||Z||_*
    pen = max(pen, float(np.abs(np.linalg.eigvalsh(Z)).sum()))
    pred = np.einsum("ij,jk,ik->i", X, Z, X)
    obj = loss.value(pred, y) + lam * pen
    return PolynomialSolution(Z=Z, v=np.zeros(X.shape[1]), s=0.0, penalty=pen, objective=obj,
                              program="quadratic", a=1.0, b=0.0, c=0.0, lam=lam, loss=loss, X=X, y=y,
                              P=P, N=N, **fields)


# ----------------------------------------------------------------------------- programs
@dataclass(eq=False)
class PolynomialProgram:
    """A compiled-once CVXPY program of a polynomial-activation network.

    Attributes
    ----------
    problem : cvxpy.Problem
        The real CVXPY problem (DPP in ``lam``); solve it yourself or through :meth:`solve`.
    variables : dict of str -> cvxpy.Variable
        ``{"P": ..., "N": ...}`` (quadratic, ``d x d`` PSD) or ``{"M_plus": ..., "M_minus": ...}``
        (lift, ``(d+1) x (d+1)`` PSD).
    lam : cvxpy.Parameter
        The penalty weight (``beta`` in the papers), ``nonneg=True``.
    prediction : cvxpy.Expression
        The prediction on the training data.
    penalty : cvxpy.Expression
        ``tr P + tr N`` or ``M+_22 + M-_22``.
    program : str
        ``"quadratic"`` or ``"lift"``.
    a, b, c : float
    loss : Loss
    X, y : ndarray
    """

    problem: cp.Problem
    variables: dict[str, cp.Variable]
    lam: cp.Parameter
    prediction: cp.Expression
    penalty: cp.Expression
    program: str
    a: float
    b: float
    c: float
    loss: Loss
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)

    @property
    def Z(self) -> cp.Expression:
        """``P - N`` (quadratic) or ``M+_11 - M-_11`` (lift)."""
        if self.program == "quadratic":
            return self.variables["P"] - self.variables["N"]
        d = self.X.shape[1]
        return self.variables["M_plus"][:d, :d] - self.variables["M_minus"][:d, :d]

    def set_lam(self, lam: float) -> None:
        """Set ``self.lam.value`` (no recompilation: the problem is DPP)."""
        self.lam.value = check_lam(lam)

    def solve(self, solver: str | None = None, *, lam: float | None = None, **solver_opts) -> PolynomialSolution:
        """Solve with a CVXPY solver (default Clarabel) through
        :func:`cvxnn.backends.cvxpy_adapter.run_problem`.

        Parameters
        ----------
        solver : str, optional
            An installed CVXPY solver with PSD cones (``"CLARABEL"``, ``"SCS"``, ...).
        lam : float, optional
            Set ``self.lam.value`` first.
        **solver_opts
            Passed to :meth:`cvxpy.Problem.solve`.

        Returns
        -------
        PolynomialSolution
            ``status`` is ``"optimal"``, ``"optimal_inaccurate"`` or ``"max_iterations"`` (the
            last two with an :class:`~cvxnn.errors.InaccurateSolutionWarning`).

        Raises
        ------
        InfeasibleError, UnboundedError, SolverError, InvalidParameterError
            As :func:`~cvxnn.backends.cvxpy_adapter.run_problem` (the one status map).
        """
        if lam is not None:
            self.set_lam(lam)
        what = f"the {self.program} polynomial-activation program"
        name = cvxpy_adapter.check_cvxpy_solver(solver)
        # the library's Clarabel settings for exponential cones (logistic loss; docs/solvers.md)
        defaults = (dict(EXP_CONE_CLARABEL_OPTIONS)
                    if name == "CLARABEL" and uses_exponential_cones(self.problem) else {})
        retries = PSD_CLARABEL_RETRIES if name == "CLARABEL" and not solver_opts else ()
        kept = None
        for k, extra in enumerate(((), *retries)):
            try:
                with warnings.catch_warnings():  # warned below, once, for the attempt kept
                    warnings.simplefilter("ignore", InaccurateSolutionWarning)
                    # zero is feasible (penalised programs): an infeasibility certificate is numerical
                    run = cvxpy_adapter.run_problem(self.problem, name, what=what, feasible=True,
                                                    defaults={**defaults, **dict(extra)}, **solver_opts)
            except SolverError as exc:
                if isinstance(exc, (InfeasibleError, UnboundedError)) or (k == len(retries) and kept is None):
                    raise
                logger.info("%s failed on %s (%s)", name, what, exc)
                continue
            if kept is None or run.status == "optimal":
                kept = (run, {key: var.value for key, var in self.variables.items()})
            if run.status == "optimal":
                break
            logger.info("%s ended %s with status %r", name, what, run.cvxpy_status)
        run, values = kept
        if run.status != "optimal":
            warnings.warn(f"{name} finished {what} with status {run.cvxpy_status!r}: the solution is not "
                          "certified optimal; check it with cvxnn.native.polynomial.polynomial_duality_gap, "
                          "or rescale the data.", InaccurateSolutionWarning, stacklevel=2)
        if any(v is None for v in values.values()):
            raise SolverError(f"{run.solver} returned no point for {what} (status {run.cvxpy_status!r}).",
                              status="numerical_error")
        if not all(np.all(np.isfinite(v)) for v in values.values()):
            raise SolverError(f"{run.solver} returned NaN or inf for {what}.", status="numerical_error")
        stats = {"status": run.status, "solver": run.solver, "cvxpy_status": run.cvxpy_status,
                 "solve_time": run.solve_time, "compile_time": run.compile_time, "iterations": run.iterations}
        lam_v = float(self.lam.value)
        if self.program == "quadratic":
            P, N = _sym(values["P"]), _sym(values["N"])
            return quadratic_solution(P - N, self.X, self.y, self.loss, lam_v, P=P, N=N, **stats)
        # an unconverged point need not be PSD with tr(M_11) = M_22; its program value can then be
        # below every network (wine, 1 Clarabel iteration: 2.393 against p* = 3.700, a negative gap):
        # report the nearest lifted point of its kind, whose network attains the objective
        Mp, Mm = _feasible_lift(values["M_plus"]), _feasible_lift(values["M_minus"])
        d = self.X.shape[1]
        Z, v, s = Mp[:d, :d] - Mm[:d, :d], Mp[:d, d] - Mm[:d, d], float(Mp[d, d] - Mm[d, d])
        pen = float(Mp[d, d] + Mm[d, d])
        pred = (self.a * np.einsum("ij,jk,ik->i", self.X, Z, self.X) + self.b * (self.X @ v) + self.c * s)
        obj = self.loss.value(pred, self.y) + lam_v * pen
        return PolynomialSolution(Z=Z, v=v, s=s, penalty=pen, objective=obj, program="lift", a=self.a,
                                  b=self.b, c=self.c, lam=lam_v, loss=self.loss, X=self.X, y=self.y,
                                  M_plus=Mp, M_minus=Mm, **stats)


def build_quadratic_program(X, y, *, loss: str | Loss = "squared", lam: float = 1.0) -> PolynomialProgram:
    """The convex program of a quadratic-activation network (``sigma(t) = t^2``)::

        min_{P, N PSD}  L(diag(X (P - N) X^T), y) + lam (tr P + tr N)

    which equals ``min_Z L(diag(X Z X^T), y) + lam ||Z||_*`` over symmetric ``Z = P - N``
    (docs/polynomial.md, "Quadratic activation"); its value is the global optimum ``p*`` of the
    network with unit-norm neurons and penalty ``lam sum_j |alpha_j|``.

    Parameters
    ----------
    X : array_like of shape (n, d)
    y : array_like of shape (n,)
    loss : str or Loss
        Any scalar-output loss of :mod:`cvxnn.losses`.
    lam : float
        Penalty weight (``beta``), ``>= 0``; a DPP Parameter of the problem.

    Returns
    -------
    PolynomialProgram

    Raises
    ------
    ShapeError, NonFiniteError, InvalidParameterError, LabelError
        Bad data, ``lam`` or loss.
    """
    Xc, yc, loss_obj = _check_data(X, y, loss)
    lam_p = cp.Parameter(nonneg=True, name="lam", value=check_lam(lam))
    d = Xc.shape[1]
    P = cp.Variable((d, d), PSD=True, name="P")
    N = cp.Variable((d, d), PSD=True, name="N")
    pred = _quadratic_features(Xc) @ cp.vec(P - N, order="F")
    penalty = cp.trace(P) + cp.trace(N)
    problem = cp.Problem(cp.Minimize(loss_obj.cvxpy(pred, yc) + lam_p * penalty))
    return PolynomialProgram(problem=problem, variables={"P": P, "N": N}, lam=lam_p, prediction=pred,
                             penalty=penalty, program="quadratic", a=1.0, b=0.0, c=0.0, loss=loss_obj,
                             X=Xc, y=yc)


def build_polynomial_program(X, y, *, a: float = 1.0, b: float = 0.0, c: float = 0.0,
                             loss: str | Loss = "squared", lam: float = 1.0) -> PolynomialProgram:
    """The semidefinite lift of a network with activation ``sigma(t) = a t^2 + b t + c``::

        min   L(a x^T (M+_11 - M-_11) x + b x^T (M+_12 - M-_12) + c (M+_22 - M-_22), y)
              + lam (M+_22 + M-_22)
        s.t.  M+, M- PSD ((d+1) x (d+1)),  tr(M+_11) = M+_22,  tr(M-_11) = M-_22

    (docs/polynomial.md, "Semidefinite lift"). Its value is the global optimum ``p*`` of the
    network with unit-norm neurons and penalty ``lam sum_j |alpha_j|``; :meth:`PolynomialSolution.to_network`
    reads an optimal network off the solution.

    Parameters
    ----------
    X : array_like of shape (n, d)
    y : array_like of shape (n,)
    a, b, c : float
        Activation coefficients (finite, not all zero).
    loss : str or Loss
    lam : float
        Penalty weight (``beta``), ``>= 0``.

    Returns
    -------
    PolynomialProgram
    """
    a, b, c = check_coefficients(a, b, c)
    Xc, yc, loss_obj = _check_data(X, y, loss)
    lam_p = cp.Parameter(nonneg=True, name="lam", value=check_lam(lam))
    d = Xc.shape[1]
    Mp = cp.Variable((d + 1, d + 1), PSD=True, name="M_plus")
    Mm = cp.Variable((d + 1, d + 1), PSD=True, name="M_minus")
    pred = lift_features(Xc, a, b, c) @ cp.vec(Mp - Mm, order="F")
    penalty = Mp[d, d] + Mm[d, d]
    constraints = [cp.trace(Mp[:d, :d]) == Mp[d, d], cp.trace(Mm[:d, :d]) == Mm[d, d]]
    problem = cp.Problem(cp.Minimize(loss_obj.cvxpy(pred, yc) + lam_p * penalty), constraints)
    return PolynomialProgram(problem=problem, variables={"M_plus": Mp, "M_minus": Mm}, lam=lam_p,
                             prediction=pred, penalty=penalty, program="lift", a=a, b=b, c=c,
                             loss=loss_obj, X=Xc, y=yc)


# ----------------------------------------------------------------------------- non-convex baseline
def _nc_unpack(theta: np.ndarray, d: int, m: int):
    U = theta[: d * m].reshape(d, m)
    p = theta[d * m: d * m + m]
    q = theta[d * m + m:]
    return U, p, q


def fit_nonconvex(X, y, *, width: int, a: float = 1.0, b: float = 0.0, c: float = 0.0,
                  loss: str | Loss = "squared", lam: float = 1.0, seed=None, max_iter: int = 2000,
                  init_scale: float = 0.1) -> PolynomialNetwork:
    """Train the non-convex network directly with L-BFGS-B (the baseline the SDP is compared with).

    Parametrisation: ``w_j = u_j / ||u_j||`` (unit norm exactly) and ``alpha = p - q`` with
    ``p, q >= 0`` (bounds), so the objective ``L(f(X), y) + lam sum_j (p_j + q_j)`` is smooth and
    its minimum over ``p, q`` is the network objective with ``lam sum_j |alpha_j|``. The result
    is a local minimum (or a saddle) from a random start; its objective is never below the
    program's value ``p*``.

    Parameters
    ----------
    X, y : array_like
    width : int
        Number of neurons ``m``.
    a, b, c : float
    loss : str or Loss
        A smooth loss (squared, logistic, Huber).
    lam : float
    seed : int, Generator or None
        Random start: ``u_j ~ N(0, I)``, ``alpha_j ~ init_scale * N(0, 1)``.
    max_iter : int
        L-BFGS-B iteration limit.
    init_scale : float
        Scale of the initial output weights.

    Returns
    -------
    PolynomialNetwork
    """
    a, b, c = check_coefficients(a, b, c)
    Xc, yc, loss_obj = _check_data(X, y, loss)
    if not loss_obj.smooth:
        raise InvalidParameterError(f"fit_nonconvex needs a smooth loss, got {loss_obj.name!r}.")
    lam = check_lam(lam)
    m = check_positive_int(width, "width")
    max_iter = check_positive_int(max_iter, "max_iter")
    init_scale = check_nonnegative_float(init_scale, "init_scale")
    rng = as_generator(seed)
    d = Xc.shape[1]

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        U, p, q = _nc_unpack(theta, d, m)
        un = np.maximum(np.linalg.norm(U, axis=0), np.finfo(float).tiny)
        W = U / un
        T = Xc @ W
        S = a * T * T + b * T + c
        alpha = p - q
        z = S @ alpha
        g = loss_obj.grad(z, yc)
        val = loss_obj.value(z, yc) + lam * float(p.sum() + q.sum())
        ga = S.T @ g
        gW = Xc.T @ (g[:, None] * alpha[None, :] * (2.0 * a * T + b))
        gU = (gW - W * np.einsum("ij,ij->j", W, gW)) / un
        return val, np.concatenate([gU.ravel(), ga + lam, -ga + lam])

    alpha0 = init_scale * rng.standard_normal(m)
    theta0 = np.concatenate([rng.standard_normal(d * m), np.clip(alpha0, 0, None), np.clip(-alpha0, 0, None)])
    bounds = [(None, None)] * (d * m) + [(0.0, None)] * (2 * m)
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": max_iter, "maxfun": 4 * max_iter, "ftol": 1e-15, "gtol": 1e-10})
    logger.debug("fit_nonconvex: %s after %d iterations, objective %.10g", res.message, res.nit, res.fun)
    U, p, q = _nc_unpack(res.x, d, m)
    un = np.linalg.norm(U, axis=0)
    W = U / np.maximum(un, np.finfo(float).tiny)
    W[:, un == 0] = np.eye(d)[:, :1]
    return PolynomialNetwork(W, p - q, a, b, c)
