"""Native C-GReLU with a feature-sparse penalty: R-FISTA with the penalty's prox, certified by a
duality gap (docs/feature-sparsity.md, "Native solver").

The program (docs/math.md, "The convex programs", with the penalty of
:mod:`cvxnn.feature_penalties` on the weight matrix ``U = [u_1 .. u_p]``)::

    min_U  h(A U) + lam * R(U),     A U = sum_i D_i X_a u_i,   h(z) = L(z, y)

is composite: ``h`` smooth, ``R`` a norm with a closed-form prox (row-wise or blockwise
sparse-group soft-threshold). :func:`~cvxnn.native.fista.rfista` runs on it unchanged: the
problem object below gives ``forward`` / ``adjoint`` on the matrix-free
:class:`~cvxnn.operators.ImplicitDesign`, the loss kernel's gradient and Bregman divergence,
and a ``penalty`` whose ``prox(V, t)`` returns the prox and ``R`` of the result.

**Certificate.** With the loss gradient ``theta = grad h(z)`` at the fit and the correlations
``G = A^T theta`` (the gradient of the smooth part), Fenchel duality gives the dual
``max_nu -h*(nu)`` subject to ``R*(A^T nu) <= lam``; every ``nu = s theta`` with
``0 <= s <= lam / R*(G)`` is feasible, the loss picks the best ``s``
(:meth:`~cvxnn.losses.Loss.best_dual_scale`), and ``P(U) - (-h*(nu)) >= P(U) - P*``. ``R*`` is
:meth:`~cvxnn.feature_penalties.GroupSparsePenalty.dual_norm_value` (largest row 2-norm for the
feature group lasso; the sparse-group dual norm by one sort per group).

C-ReLU with these penalties has cone constraints; it is solved through CVXPY (Clarabel) by
:func:`cvxnn.feature_sparsity.solve_feature_sparse`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_lam, check_positive_int, check_Xy
from ..errors import ConvergenceWarning, InvalidParameterError, PatternMismatchError, SolverError
from ..feature_penalties import GroupSparsePenalty
from ..losses import Loss, get_loss
from ..operators import ImplicitDesign
from ..patterns import Patterns
from ..solution import ConvexModel, ConvexSolution
from ._losses import SmoothKernel, make_kernel
from .certificates import GapCertificate
from .fista import FistaStep, SmoothPlusNorm, initial_step, rfista

__all__ = ["FeatureSparseProblem", "feature_sparse_certificate", "solve_feature_sparse_native"]

logger = logging.getLogger(__name__)


class _ProxWithValue:
    """The ``penalty`` R-FISTA calls: ``prox(V, t) -> (prox_{tR}(V), R(prox))`` on ``(d, p, 1)``."""

    def __init__(self, penalty: GroupSparsePenalty) -> None:
        self.penalty = penalty

    def prox(self, V: np.ndarray, t: float) -> tuple[np.ndarray, float]:
        X = self.penalty.prox(V[:, :, 0], t)
        return X[:, :, None], self.penalty.value(X)


class FeatureSparseProblem(SmoothPlusNorm):
    """C-GReLU with a :class:`~cvxnn.feature_penalties.GroupSparsePenalty` as a composite
    problem for :func:`~cvxnn.native.fista.rfista` (scalar output; iterates ``(d_a, p, 1)``).

    Parameters
    ----------
    op : ImplicitDesign
        The implicit design ``A = [D_1 X_a, ..., D_p X_a]`` (``n_outputs=1``).
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


def feature_sparse_certificate(op: ImplicitDesign, kernel: SmoothKernel, lam: float, U: np.ndarray,
                               penalty: GroupSparsePenalty) -> GapCertificate:
    """Duality-gap certificate of a C-GReLU point ``U`` (``d_a x p``) under ``lam * R``.

    ``nu = s grad h(z)`` with ``s = min(1, lam / R*(A^T grad h(z)))`` (see the module docstring).
    """
    U3 = np.asarray(U, dtype=np.float64).reshape(op.d, op.p, 1)
    z = op.forward(U3)
    P = kernel.value(z) + lam * penalty.value(U3)
    theta = kernel.grad(z)
    dn = penalty.dual_norm_value(op.adjoint(theta))
    s = 1.0 if dn <= lam else lam / dn
    D = kernel.dual_value(s * theta)
    gap = max(P - D, 0.0)
    return GapCertificate(primal=P, dual=D, gap=gap, rel_gap=gap / max(abs(P), np.finfo(float).tiny), scale=s)


def _check_penalty(penalty) -> GroupSparsePenalty:
    if not isinstance(penalty, GroupSparsePenalty):
        raise InvalidParameterError(
            "penalty must be a cvxnn.feature_penalties penalty (FeatureGroupL2 or SparseGroupL2), "
            f"got {type(penalty).__name__}; the block penalties run through cvxnn.solve."
        )
    return penalty


def solve_feature_sparse_native(
    X,
    y,
    patterns: Patterns,
    *,
    penalty: GroupSparsePenalty,
    lam: float,
    loss: str | Loss = "squared",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    warm_start: ConvexModel | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    memory_budget: int | None = None,
) -> ConvexSolution:
    """Solve C-GReLU with a feature-sparse penalty by R-FISTA, stopped on the relative duality gap.

    Parameters
    ----------
    X : array of shape (n, d)
    y : array of shape (n,)
        Scalar targets (labels in {-1, +1} for the logistic loss).
    patterns : Patterns
        Built on ``X``.
    penalty : FeatureGroupL2 or SparseGroupL2
    lam : float
        ``> 0``.
    loss : str or Loss
        A smooth loss with a conjugate (squared, logistic, Huber).
    tol : float
        Relative gap tolerance: ``status == "optimal"`` iff ``gap <= tol * |objective|``.
    max_iter : int
    warm_start : ConvexModel, optional
        A C-GReLU point on the same patterns (its ``step_size`` is reused when present).
    callback : callable, optional
        ``callback(info)`` every iteration (``iteration``, ``objective``, ``dual``, ``gap``,
        ``rel_gap``, ``step``); returning True stops the solve.
    memory_budget : int, optional
        Bytes for the matrix-free operator (see :class:`~cvxnn.operators.ImplicitDesign`).

    Returns
    -------
    ConvexSolution
        ``backend="native"``, ``solver="rfista"``, ``objective_value = L + lam R(U)``,
        ``program_penalty = R(U)``, ``gap``, ``rel_gap``, ``dual_value``, ``step_size``; ``extra``
        has ``penalty`` (the repr) and ``restarts`` / ``backtracks``.

    Raises
    ------
    InvalidParameterError, ShapeError, LabelError, PatternMismatchError
        For bad inputs (vector targets are refused).
    SolverError
        If the iteration breaks down numerically.
    """
    penalty = _check_penalty(penalty)
    lam = check_lam(lam, allow_zero=False)
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise InvalidParameterError(f"tol must be positive and finite, got {tol!r}.")
    if not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    if callback is not None and not callable(callback):
        raise InvalidParameterError("callback must be callable or None.")
    X, y = check_Xy(X, y)
    if y.ndim != 1:
        raise InvalidParameterError("the feature-sparse penalties support scalar output only; y must be 1-D.")
    patterns.check_data(X)
    loss_obj = get_loss(loss)
    make_kernel(loss_obj, np.zeros((1, 1)), np.float64)  # refuse non-smooth losses before label checks
    y = loss_obj.check_targets(y)
    kernel = make_kernel(loss_obj, y[:, None], np.float64)
    d, p = patterns.design_dim, patterns.n_patterns

    t0 = time.perf_counter()
    op = ImplicitDesign(patterns.design(X), patterns.mask, n_outputs=1, dtype=np.float64,
                        memory_budget=memory_budget, reserve_bytes=10 * d * p * 8 + 8 * X.shape[0] * 8)
    problem = FeatureSparseProblem(op, kernel, lam, penalty)
    eta0 = None
    if warm_start is not None:
        if not isinstance(warm_start, ConvexModel) or warm_start.activation != "gated_relu":
            raise InvalidParameterError("warm_start must be a C-GReLU ConvexModel (activation='gated_relu').")
        if warm_start.patterns is not patterns and not (
                np.array_equal(warm_start.patterns.mask, patterns.mask)
                and np.array_equal(warm_start.patterns.gates, patterns.gates)):
            raise PatternMismatchError("warm_start was computed on other patterns; pass a model on these patterns.")
        U0 = np.asarray(warm_start.U, dtype=np.float64).reshape(d, p, 1).copy()
        eta0 = getattr(warm_start, "step_size", None)
    else:
        U0 = np.zeros((d, p, 1))
    if eta0 is None or not np.isfinite(eta0) or eta0 <= 0:
        eta0 = initial_step(op, kernel)

    img0 = op.forward(U0) if np.any(U0) else np.zeros((op.n, 1))
    best: dict[str, Any] = {"P": problem.primal(img0, penalty.value(U0)), "U": U0, "D": -np.inf}
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
            if callback(info) is True:
                state["callback_stop"] = True
                return True
        return rel <= tol

    out = rfista(problem, U0, img0, eta0=eta0, max_iter=max_iter, monitor=monitor)
    U = np.ascontiguousarray(best["U"][:, :, 0])
    cert = feature_sparse_certificate(op, kernel, lam, U, penalty)
    dual = max(cert.dual, best["D"])
    gap = max(cert.primal - dual, 0.0)
    rel = gap / max(abs(cert.primal), np.finfo(float).tiny)
    converged = rel <= tol and not state["callback_stop"]
    elapsed = time.perf_counter() - t0
    logger.debug("feature-sparse rfista: %d iterations, rel gap %.3e, %.3f s", out.iterations, rel, elapsed)
    if not converged and not state["callback_stop"]:
        warnings.warn(f"feature-sparse R-FISTA stopped after {out.iterations} iterations with relative gap "
                      f"{rel:.3e} (tol {tol:.1e}); raise max_iter, loosen tol, or warm-start from this solution.",
                      ConvergenceWarning, stacklevel=2)
    return ConvexSolution(
        activation="gated_relu", patterns=patterns, U=U,
        status="optimal" if converged else "max_iterations",
        objective_value=cert.primal, lam=lam, loss=loss_obj, backend="native", solver="rfista",
        solve_time=elapsed, compile_time=None, iterations=out.iterations, gap=gap,
        dual_value=dual, rel_gap=rel, step_size=out.eta, program_penalty=penalty.value(U),
        extra={"penalty": repr(penalty), "restarts": out.restarts, "backtracks": out.backtracks,
               "stopped_by_callback": state["callback_stop"], "n_forward": op.n_forward,
               "n_adjoint": op.n_adjoint},
    )
