"""Native solver, certificates and optimality report of the convolutional programs (``docs/conv.md``).

The convolutional C-GReLU program is a group lasso over the composite operator
``Pool o A``, with ``A = [D_1 Z_a, ..., D_p Z_a]`` the implicit design on the patch matrix::

    minimize  h(Pool A U) + lam * sum_i ||U_i||,        h(z) = L(z, y)

:class:`PooledDesign` composes the library's :class:`~cvxnn.operators.ImplicitDesign` with the
pooling map (forward ``Pool(A U)``, adjoint ``A^T Pool^T R``, never forming either), so the
problem is the existing :class:`~cvxnn.native.fista.GatedProblem` on that operator, solved by
:func:`~cvxnn.native.fista.solve_gated` (R-FISTA stopped by the relative duality gap) and
certified by :func:`~cvxnn.native.certificates.gated_certificate`. The support polish of
:mod:`cvxnn.native.polish` works on the unpooled design and is switched off.

For C-ReLU the dual point ``(nu, rho)`` (``nu = grad h(z)`` rescaled, ``rho >= 0`` the cone
multipliers on ``Z``) is feasible when, for every pattern,

    ||Z_a^T (D_i Pool^T nu - S_i rho^v_i)|| <= lam,   ||Z_a^T (-D_i Pool^T nu - S_i rho^w_i)|| <= lam

(``S_i = 2 D_i - I``), the conditions of :func:`cvxnn.native.certificates.relu_certificate` with
``r = Pool^T nu`` in place of ``nu``; :func:`conv_certificate` computes that gap with the solver's
multipliers (CVXPY's cone duals) or ``rho = 0``. :func:`conv_report` puts the gap, the cone
violation, the convex objective and the objective of the mapped CNN side by side.

The cone-constrained (ReLU) program is solved through CVXPY (:func:`cvxnn.conv.build_conv_program`).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_lam, check_positive_int
from ..conv import (
    ConvModel,
    ConvNetwork,
    ConvSolution,
    PooledDesign,
    _as3,
    _check_pooling,
    check_formulation,
    conv_certificate,
    prepare_conv_data,
)
from ..errors import ConvergenceWarning, InvalidParameterError, ShapeError
from ..losses import Loss, get_loss
from ..operators import ImplicitDesign
from ..solution import ConvexSolution
from ._losses import make_kernel
from .fista import GatedProblem, initial_step, solve_gated

__all__ = ["ConvReport", "PooledDesign", "conv_certificate", "conv_report", "solve_conv_native"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvReport:
    """Optimality report of a convolutional convex point and its mapped CNN.

    Attributes
    ----------
    convex_objective : float
        ``L(Pool(sum_i D_i Z theta_i), y) + lam * penalty``.
    network_objective : float
        Objective of the mapped :class:`~cvxnn.conv.ConvNetwork` (equal to the convex objective for
        a cone-feasible point: the map is exact).
    dual_value : float
        ``D <= p*`` of the certificate.
    gap, rel_gap : float
        ``convex_objective - dual_value`` and its ratio to the objective.
    max_cone_violation : float
        Largest violation of the cones ``(2 D_i - I) Z_a theta_i >= 0`` (0 for the gated variant).
    max_prediction_error : float
        ``max |f_network(X) - f_convex(X)|`` on the training inputs.
    n_filters : int
        Width of the mapped CNN.
    status : str or None
        The solver's status (None for a point that is not a solution).
    network : ConvNetwork
    """

    convex_objective: float
    network_objective: float
    dual_value: float
    gap: float
    rel_gap: float
    max_cone_violation: float
    max_prediction_error: float
    n_filters: int
    status: str | None = None
    network: Any = None

    def summary(self) -> str:
        """The report as a few aligned lines."""
        return "\n".join([
            f"convex objective        : {self.convex_objective:.10g}",
            f"mapped CNN objective    : {self.network_objective:.10g} ({self.n_filters} filters)",
            f"dual value (lower bound): {self.dual_value:.10g}",
            f"duality gap             : {self.gap:.3e} (relative {self.rel_gap:.3e})",
            f"max cone violation      : {self.max_cone_violation:.3e}",
            f"max |f_CNN - f_convex|  : {self.max_prediction_error:.3e}",
            f"status                  : {self.status}",
        ])


def conv_report(model: ConvModel, X, y, *, lam: float | None = None, loss: str | Loss | None = None,
                multipliers: np.ndarray | None = None, tol: float = 0.0) -> ConvReport:
    """Certificate, cone violation and the mapped CNN's objective of a convolutional point.

    Parameters
    ----------
    model : ConvModel
    X, y : arrays
        Training inputs and targets.
    lam, loss : optional
        Default to the solution's.
    multipliers : optional
        See :func:`conv_certificate`.
    tol : float
        Passed to :meth:`~cvxnn.conv.ConvModel.to_network`.

    Returns
    -------
    ConvReport
    """
    if lam is None:
        lam = getattr(model, "lam", None)
    if loss is None:
        loss = getattr(model, "loss", None) or "squared"
    if lam is None:
        raise InvalidParameterError("lam is needed for a point that is not a solution (pass lam=...).")
    loss = get_loss(loss)
    cert = conv_certificate(model, X, y, lam, loss, multipliers=multipliers)
    net: ConvNetwork = model.to_network(tol=tol)
    f_net, f_cvx = net.predict(X), model.train_predict(X)
    return ConvReport(
        convex_objective=float(model.objective(X, y, lam, loss)),
        network_objective=float(net.objective(X, y, lam, loss)),
        dual_value=cert.dual,
        gap=cert.gap,
        rel_gap=cert.rel_gap,
        max_cone_violation=cert.max_violation,
        max_prediction_error=float(np.max(np.abs(f_net - f_cvx), initial=0.0)),
        n_filters=net.n_filters,
        status=getattr(model, "status", None),
        network=net,
    )


def solve_conv_native(
    X,
    y,
    *,
    image_shape,
    patch_size,
    stride=1,
    pooling: str = "sum",
    loss: str | Loss = "squared",
    lam: float = 1.0,
    patterns=None,
    n_gates: int = 100,
    bias: bool = False,
    seed=None,
    formulation: str = "one_vs_all",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    dtype=np.float64,
    warm_start: ConvModel | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
    memory_budget: int | None = None,
) -> ConvSolution:
    """Solve the convolutional C-GReLU program natively (R-FISTA on ``Pool o A``, gap-certified).

    Parameters
    ----------
    X, y, image_shape, patch_size, stride, pooling, loss, lam, patterns, n_gates, bias, seed
        As in :func:`cvxnn.conv.build_conv_program` (``activation="gated_relu"``); the loss must
        be smooth with a conjugate and ``lam > 0``.
    formulation : {"one_vs_all", "nuclear"}
        Vector output: column norms (``c`` scalar networks sharing the patterns) or nuclear norms.
    tol : float
        Relative duality gap at which to stop.
    max_iter : int
    dtype : numpy.float64 or numpy.float32
        Compute dtype of the products (objective and gap accumulate in float64).
    warm_start : ConvModel, optional
        A gated point on the same patterns to start from.
    callback : callable, optional
        Called every iteration with ``iteration``, ``objective``, ``dual``, ``gap``, ``rel_gap``,
        ``step``; returning True stops.
    memory_budget : int, optional
        Bytes for the operator (:class:`~cvxnn.operators.ImplicitDesign`).

    Returns
    -------
    ConvSolution
        ``status="optimal"`` when the relative gap reached ``tol``, else ``"max_iterations"``
        (with a :class:`~cvxnn.errors.ConvergenceWarning`); ``gap``, ``rel_gap``, ``dual_value``
        certify the point.
    """
    lam = check_lam(lam, allow_zero=False)
    max_iter = check_positive_int(max_iter, "max_iter", maximum=None)
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise InvalidParameterError(f"tol must be a positive number, got {tol!r}.")
    pooling = _check_pooling(pooling)
    data = prepare_conv_data(X, y, image_shape=image_shape, patch_size=patch_size, stride=stride,
                             patterns=patterns, n_gates=n_gates, bias=bias, seed=seed, loss=loss)
    c = data.n_outputs
    if c > 1:
        check_formulation(formulation, "gated_relu")
    kind = "nuclear" if c == 1 or formulation == "nuclear" else "columnwise"
    pats = data.patterns
    y2 = data.y[:, None] if data.y.ndim == 1 else data.y
    kernel = make_kernel(data.loss, y2, dtype)
    d_a, p = pats.design_dim, pats.n_patterns
    iterate_bytes = 6 * d_a * p * c * np.dtype(dtype).itemsize  # iterates, gradient, prox of R-FISTA
    op = PooledDesign(ImplicitDesign(pats.design(data.Z), pats.mask, n_outputs=c, dtype=dtype,
                                     memory_budget=memory_budget, reserve_bytes=iterate_bytes),
                      data.geometry.n_patches, pooling)
    U0 = np.zeros((d_a, p, c), dtype=dtype)
    if warm_start is not None:
        if not isinstance(warm_start, ConvModel) or warm_start.activation != "gated_relu" \
                or warm_start.patterns.n_patterns != p or not np.array_equal(warm_start.patterns.gates, pats.gates):
            raise InvalidParameterError("warm_start must be a gated ConvModel on the same patterns.")
        U0 = _as3(np.asarray(warm_start.model.U, dtype=dtype)).copy()
        if U0.shape != (d_a, p, c):
            raise ShapeError(f"warm_start blocks have shape {U0.shape}, expected {(d_a, p, c)}.")
    problem = GatedProblem(op, kernel, lam, penalty=kind)
    t0 = time.perf_counter()
    res = solve_gated(problem, U0, tol=tol, max_iter=max_iter, eta0=initial_step(op, kernel),
                      callback=callback, polish=False)
    seconds = time.perf_counter() - t0
    U = np.asarray(res.U, dtype=np.float64)
    gap = max(res.primal - res.dual, 0.0)
    status = "optimal" if res.converged else "max_iterations"
    logger.debug("conv C-GReLU: %s after %d iterations, objective %.10g, gap %.3e", status, res.iterations,
                 res.primal, gap)
    sol = ConvexSolution(
        activation="gated_relu", patterns=pats, U=U[:, :, 0] if c == 1 else U, status=status,
        objective_value=float(res.primal), lam=lam, loss=data.loss, backend="native", solver="rfista",
        solve_time=seconds, iterations=res.iterations, gap=gap, dual_value=float(res.dual),
        rel_gap=gap / max(abs(res.primal), np.finfo(float).tiny), step_size=float(res.eta),
        formulation=formulation if c > 1 else None,
        extra={"flops": op.flops, "backtracks": res.backtracks, "restarts": res.restarts,
               "stopped_by_callback": res.stopped_by_callback},
    )
    out = ConvSolution.from_convex(sol, data.geometry, pooling)
    if not out.converged and not res.stopped_by_callback:
        warnings.warn(f"rfista stopped after {res.iterations} iterations at relative gap {out.rel_gap:.2e} "
                      f"> tol={tol:g}; raise max_iter or loosen tol.", ConvergenceWarning, stacklevel=2)
    return out

