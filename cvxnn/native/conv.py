"""Native solver, certificates and optimality report of the convolutional programs (``docs/conv.md``).

The convolutional C-GReLU program is a group lasso over the composite operator
``Pool o A``, with ``A = [D_1 Z_a, ..., D_p Z_a]`` the implicit design on the patch matrix::

    minimize  h(Pool A U) + lam * sum_i ||U_i||,        h(z) = L(z, y)

Pooling makes the design small: block ``i`` acts through ``B_i = Pool D_i Z_a``, an ``n x d_a``
matrix (per sample, the sum of its patches that gate ``i`` switches on), so ``Pool o A`` is the
dense ``n x d_a p`` matrix ``[B_1, ..., B_p]``: ``K`` times fewer rows than ``A`` and, with
small filters, only a few hundred columns (:class:`~cvxnn.conv.DensePooledDesign`, formed by
:func:`~cvxnn.conv.pooled_blocks` when it fits the memory budget; otherwise the matrix-free
:class:`~cvxnn.conv.PooledDesign`). The program is a group lasso on that matrix, badly
conditioned (overlapping patches summed over the image: ``cond(B^T B) ~ 3e5`` on digits), so
first-order methods crawl, while the few ``d_a p`` unknowns per output make Newton cheap:

* ``solver="newton"`` (the default where it applies: a loss that is separable with a Hessian,
  scalar output or the one-vs-all penalty, whose outputs then decouple, and ``d_a p <=``
  :data:`NEWTON_MAX_COLUMNS`): a barrier method. The group norm is replaced by the smoothed
  norm ``psi_mu`` of the second-order-cone barrier (:func:`cvxnn.native.ipm._psi`,
  ``psi_mu' < lam``), and Newton's method with an Armijo line search centres
  ``h(B u) + sum_i psi_mu(||u_i||)`` for each output (dense ``d_a p x d_a p`` systems by
  Cholesky; ``B^T B`` is formed once for the squared loss). ``mu`` drops tenfold per centring.
  At a centre ``||B_i^T grad h|| = psi_mu'(||u_i||) < lam``, so the loss gradient is a feasible
  dual point, and the gap is at most ``mu`` per block. After each centring, blocks the barrier
  left at ``O(mu)`` whose optimality condition holds at zero are held at zero (and freed again
  if it fails later), so the solution has exact zeros.
* ``solver="rfista"``: :func:`~cvxnn.native.fista.solve_gated` (R-FISTA stopped by the relative
  duality gap) on the same operator, for the other cases (nuclear norms, the softmax loss) and
  where the float64 pooled design of Newton does not fit the memory budget. It runs in the
  requested ``dtype``; a float32 run is certified in float64 and continued in float64 when that
  certificate misses ``tol`` (as in :func:`~cvxnn.native.solve.solve_native`).

Either way the point is judged by :func:`~cvxnn.native.certificates.gated_certificate` on the
full pooled program. The support polish of :mod:`cvxnn.native.polish` works on the unpooled
design and is switched off.

For C-ReLU the dual point ``(nu, rho)`` (``nu = grad h(z)`` rescaled, ``rho >= 0`` the cone
multipliers on ``Z``) is feasible when, for every pattern,

    ||Z_a^T (D_i Pool^T nu - S_i rho^v_i)|| <= lam,   ||Z_a^T (-D_i Pool^T nu - S_i rho^w_i)|| <= lam

(``S_i = 2 D_i - I``), the conditions of :func:`cvxnn.native.certificates.relu_certificate` with
``r = Pool^T nu`` in place of ``nu``; :func:`conv_certificate` computes that gap with the solver's
multipliers (CVXPY's cone duals) or ``rho = 0``. :func:`conv_report` puts the gap, the cone
violation, the convex objective and the objective of the mapped CNN side by side.

**C-ReLU** (``activation="relu"``). The cones ``(2 D_i - I) Z_a t_j >= 0`` have ``n K`` rows
per block, but only ``d_a`` unknowns, so the same per-output Newton method applies with a log
barrier on the cones::

    Phi_mu(T) = h(B (v - w)) + sum_j psi_mu(||t_j||) - mu sum_j sum_r m_r log(s_ri z_r^T t_j)

over the ``2p`` blocks ``T = [v, w]`` of an output (:class:`_ReluBarrierOutput`):

* duplicate rows of ``[Z_a, mask]`` give the same constraint; they are merged with their
  multiplicities ``m_r`` (:class:`ReluCones`);
* the cone Hessian is block diagonal, one ``d_a x d_a`` matrix ``Z_u^T diag(w_j) Z_u`` per block,
  all of them one GEMM of the row products ``z_r z_r^T`` (formed once) with the weights; the
  weights are the primal-dual ``rho / slack`` (``rho`` the multipliers carried from step to
  step) rather than the primal ``mu m / slack^2``, so a tenfold or hundredfold drop of ``mu``
  costs a few steps;
* the loss couples only ``v - w`` through ``B``: the system ``[[Hv + Q, -Q], [-Q, Hw + Q]]``
  (``2 d_a p`` unknowns) is solved by Cholesky;
* for one-vs-all output the ``c`` programs share ``Z_u``, the signs and the row products;
* the certificate uses the multipliers of the Newton equations, ``rho + drho`` with
  ``drho = mu m / s - rho - (rho / s) ds``, which pair with the loss gradient at the new point.
  :func:`conv_certificate` on every patch row gives the same gap (each merged multiplier spread
  evenly over its rows). ``status="optimal"`` needs that gap and the cone violation below
  ``tol`` and ``feas_tol``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla

from .._validation import callback_stops, check_lam, check_positive_int, check_solver_options
from ..conv import (
    ConvModel,
    ConvNetwork,
    ConvSolution,
    DensePooledDesign,
    PooledDesign,
    _as3,
    _check_activation,
    _check_pooling,
    check_formulation,
    conv_certificate,
    prepare_conv_data,
)
from ..errors import ConvergenceWarning, InvalidParameterError, MemoryBudgetError, ShapeError
from ..losses import Loss, get_loss
from ..operators import ImplicitDesign, default_memory_budget
from ..solution import ConvexSolution
from ._losses import NATIVE_LOSSES, SmoothKernel, make_kernel
from .certificates import GapCertificate, gated_certificate
from .fista import GatedProblem, initial_step, solve_gated
from .ipm import _psi
from .solve import F32_STAGE_SHARE

__all__ = ["ConvReport", "PooledDesign", "ReluCones", "conv_certificate", "conv_report", "solve_conv_native"]

logger = logging.getLogger(__name__)

#: Solvers of :func:`solve_conv_native`.
SOLVERS = ("auto", "newton", "rfista")
#: Largest ``d_a p`` (unknowns per output) for which the barrier Newton systems are formed.
NEWTON_MAX_COLUMNS = 2500
#: Largest ``n (d_a p)^2`` (flops of one Hessian ``B^T diag(h'') B``) for a loss that is not
#: quadratic, whose Hessian is formed again at every Newton step.
NEWTON_MAX_HESSIAN_FLOPS = 5e9
#: Factor by which ``mu`` drops after each centring.
MU_DECREASE = 10.0
#: First barrier parameter of the ReLU barrier relative to ``h(0) / nu`` (``nu`` the barrier's
#: parameter, ``2 p c (n K + 2)``).
MU0_REL = 0.1
#: ... and at most what centres the starting blocks at START_SCALE times ``||y|| / ||B||_1``
#: (:func:`_solve_relu_barrier`): small ``lam`` otherwise started the blocks far outside the
#: optimum's scale.
START_SCALE = 1e4
#: Relative gap (float32 estimate) at which a float32 R-FISTA run hands over to float64 (or
#: ``tol`` when that is larger). The fully connected ``_F32_GATED_TOL`` (``1e-5``) is below the
#: floor of float32 on these badly conditioned programs: 200 digits (3 against the rest, 3x3
#: patches, 20 gates, ``lam=1``, dense design) stalled at an estimated ``1.6e-4`` (certified
#: ``2.5e-4``) for 10000 iterations, where float32 and float64 had matched each other down to
#: ``1e-3`` in about 2800 (``docs/conv.md``, "Native solver").
F32_HANDOFF_TOL = 1e-3
#: Newton steps per centring.
MAX_CENTERING = 50
#: An output is centred when its Newton decrement ``-g^T dx`` is below this multiple of ``mu``.
CENTERED = 2.5e-4
#: Armijo constant of the line search.
ARMIJO = 1e-4
#: After a centring, a block is held at zero when its norm is below this fraction of the largest
#: block of its output and zero satisfies its optimality condition (freed again if that fails).
PRUNE_RTOL = 1e-6


@dataclass(frozen=True)
class ConvReport:
    """Optimality report of a convolutional convex point and its mapped CNN.

    Attributes
    ----------
    convex_objective : float
        ``L(Pool(sum_i D_i Z theta_i), y) + lam * penalty``.
    network_objective : float
        Objective of the mapped :class:`~cvxnn.conv.ConvNetwork` (equal to the convex objective for
        a cone-feasible point: the map is exact; below it for a gated one-vs-all point with vector
        output, whose blocks map by their balanced SVD factors, the nuclear norm <= the column norms).
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
                multipliers: np.ndarray | None = None, tol: float = 0.0, penalty=None) -> ConvReport:
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
    penalty : FeatureGroupL2 or SparseGroupL2, optional
        The feature-sparse penalty of a ``build_conv_program(..., penalty=...)`` point (see
        :func:`conv_certificate`, which refuses such a point without it); the convex objective
        is then ``L + lam R(Theta)``.

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
    cert = conv_certificate(model, X, y, lam, loss, multipliers=multipliers, penalty=penalty)
    net: ConvNetwork = model.to_network(tol=tol)
    f_net, f_cvx = net.predict(X), model.train_predict(X)
    convex = float(model.objective(X, y, lam, loss))
    if penalty is not None:  # the program's R(Theta) in place of the block norms
        convex += float(lam) * (penalty.value(np.hstack([B.reshape(B.shape[0], -1)
                                                         for B in model.model.blocks.values()]))
                                - model.penalty())
    return ConvReport(
        convex_objective=convex,
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


def _center_outputs(outs, mu: float, max_steps: int, centered: float, iterations: int, max_iter: int) -> int:
    """Newton steps at barrier weight ``mu`` on every output whose decrement is still above
    ``centered * mu`` (at most ``max_steps`` rounds, and ``max_iter`` steps in all); returns the
    updated step count. The outputs are independent programs (one-vs-all) sharing the data."""
    live = list(range(len(outs)))
    for _ in range(max_steps):
        if not live or iterations >= max_iter:
            break
        iterations += 1
        live = [k for k in live if outs[k].step(mu) > centered * mu]
    return iterations


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
    solver: str = "auto",
    activation: str = "gated_relu",
    feas_tol: float = 1e-6,
) -> ConvSolution:
    """Solve the convolutional C-GReLU or C-ReLU program natively (barrier Newton or R-FISTA on
    ``Pool o A``, gap-certified).

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
        Limit on R-FISTA iterations, or on Newton steps (one step on every output that is not
        yet centred counts once).
    dtype : numpy.float64 or numpy.float32
        Compute dtype of R-FISTA (``solver="rfista"``, or the fallback of ``"auto"``); the Newton
        solvers (C-GReLU and C-ReLU) always run in float64. A float32 run stops at a relative
        gap of ``max(tol, F32_HANDOFF_TOL)`` (``1e-3``) within ``F32_STAGE_SHARE`` (half) of
        ``max_iter``, its point is certified in float64, and R-FISTA continues in float64 from it
        when that certificate misses ``tol`` (as in :func:`~cvxnn.native.solve.solve_native`,
        whose float32 stage goes down to ``1e-5``: below about ``1e-3`` float32 stalls on these
        badly conditioned programs);
        ``objective_value``, ``gap`` and ``status`` are those of the float64 certificate.
        ``extra["dtype"]`` names the dtype the solver ran in. The float32 operator holds a float32
        copy of the patch design next to the float64 one.
    warm_start : ConvModel, optional
        A gated point on the same patterns to start from.
    callback : callable, optional
        Called every R-FISTA iteration (every centring of the Newton solver) with ``iteration``,
        ``objective``, ``dual``, ``gap``, ``rel_gap``, ``step``; returning True stops.
    memory_budget : int, optional
        Bytes for the operator (:class:`~cvxnn.operators.ImplicitDesign`) and the pooled design.
    solver : {"auto", "newton", "rfista"}
        ``"newton"``: the barrier method on the pooled design (module docstring); it needs a
        separable loss with a Hessian, scalar output or ``formulation="one_vs_all"``, and
        ``d_a p <= NEWTON_MAX_COLUMNS``. ``"rfista"``: R-FISTA (gated only). ``"auto"``: Newton
        where it applies and its float64 pooled design fits ``memory_budget``, else R-FISTA in
        ``dtype`` (on the pooled design in ``dtype`` where that fits, else matrix-free).
    activation : {"gated_relu", "relu"}
        ``"relu"``: the cone-constrained program, by the barrier method on the pooled design with
        the log barrier of the cones on the unique patch rows (module docstring, "C-ReLU"); it
        has the requirements of ``solver="newton"``, and ``warm_start`` must then be a ReLU point.
    feas_tol : float
        C-ReLU: largest cone violation (absolute, patch-activation units) of an ``"optimal"``
        point. The barrier iterates are strictly feasible (blocks that are zero at the optimum
        end at about ``1e-8`` of the largest of their output; ``to_network(tol=...)`` or
        ``model.n_active(tol)`` leave them out).

    Returns
    -------
    ConvSolution
        ``status="optimal"`` when the relative gap reached ``tol`` (and, for C-ReLU, the cone
        violation ``feas_tol``), else ``"max_iterations"`` (with a
        :class:`~cvxnn.errors.ConvergenceWarning`); ``gap``, ``rel_gap``, ``dual_value``
        certify the point (in float64); ``solver`` is ``"newton"`` or ``"rfista"``; ``extra``
        holds ``dtype``, ``design`` (``"dense"`` or ``"matrix_free"``) and, for R-FISTA,
        ``polish_iterations`` (float64 iterations after a float32 run). C-ReLU solutions carry
        ``max_violation`` and, when they take at most :data:`MULTIPLIER_MAX_BYTES`, the cone
        multipliers of every patch row (``model.multipliers``, reused by :func:`conv_certificate`).
    """
    lam = check_lam(lam, allow_zero=False)
    max_iter = check_positive_int(max_iter, "max_iter", maximum=None)
    opts = check_solver_options(tol=tol, feas_tol=feas_tol, dtype=dtype, callback=callback,
                                memory_budget=memory_budget)
    tol, feas_tol, dtype = opts["tol"], opts["feas_tol"], opts["dtype"].type
    if solver not in SOLVERS:
        raise InvalidParameterError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    pooling = _check_pooling(pooling)
    activation = _check_activation(activation)
    data = prepare_conv_data(X, y, image_shape=image_shape, patch_size=patch_size, stride=stride,
                             patterns=patterns, n_gates=n_gates, bias=bias, seed=seed, loss=loss)
    if not (data.loss.smooth and data.loss.has_conjugate):  # make_kernel's advice names the dense builders
        raise InvalidParameterError(
            f"the native convolutional solvers support the losses {NATIVE_LOSSES}, got {data.loss.name!r}; "
            "solve this program with cvxnn.conv.build_conv_program(..., loss=...).solve() (Clarabel) instead.")
    if activation == "relu":
        return _solve_conv_relu(data, pooling, lam=lam, formulation=formulation, tol=tol, feas_tol=feas_tol,
                                max_iter=max_iter, warm_start=warm_start, callback=callback,
                                memory_budget=memory_budget, solver=solver)
    c = data.n_outputs
    check_formulation(formulation, "gated_relu", c)
    kind = "nuclear" if c == 1 or formulation == "nuclear" else "columnwise"
    pats = data.patterns
    y2 = data.y[:, None] if data.y.ndim == 1 else data.y
    d_a, p = pats.design_dim, pats.n_patterns
    newton_ok, why = _newton_applies(data.loss, c, kind, data.X.shape[0], d_a * p)
    if solver == "newton" and not newton_ok:
        raise InvalidParameterError(f"solver='newton' does not apply here: {why}; use solver='rfista'.")
    use_newton = newton_ok and solver != "rfista"
    Za = pats.design(data.Z)
    K = data.geometry.n_patches

    def operator(dt, **kw) -> PooledDesign:
        """``Pool o A`` in dtype ``dt``, with room for the R-FISTA iterates, gradient and prox."""
        reserve = 6 * d_a * p * c * np.dtype(dt).itemsize
        try:
            inner = ImplicitDesign(Za, pats.mask, n_outputs=c, dtype=dt, memory_budget=memory_budget,
                                   reserve_bytes=reserve, **kw)
        except MemoryBudgetError as exc:
            if np.dtype(dt) == np.float64:
                raise
            # the operator's own hint ("use dtype=numpy.float32") does not help a float32 request
            budget = default_memory_budget() if memory_budget is None else int(memory_budget)
            try:  # whether float64, which needs no copy, fits (no mask cache: nothing large is allocated)
                ImplicitDesign(Za, pats.mask, n_outputs=c, memory_budget=memory_budget, cache_mask=False,
                               reserve_bytes=2 * reserve)
                instead = "pass dtype=numpy.float64 (R-FISTA then runs on the float64 design without a copy), "
            except MemoryBudgetError:
                instead = ""
            raise MemoryBudgetError(
                f"R-FISTA in float32 holds a float32 copy of the {Za.shape[0]:,} x {d_a} patch design "
                f"({Za.size * 4:,} bytes) next to the float64 one, and with it does not fit memory_budget="
                f"{budget:,} bytes; {instead}raise memory_budget, or use fewer patterns.") from exc
        return PooledDesign(inner, K, pooling)

    U0 = np.zeros((d_a, p, c))
    if warm_start is not None:
        if not isinstance(warm_start, ConvModel) or warm_start.activation != "gated_relu" \
                or warm_start.patterns.n_patterns != p or not np.array_equal(warm_start.patterns.gates, pats.gates):
            raise InvalidParameterError("warm_start must be a gated ConvModel on the same patterns.")
        U0 = _as3(np.asarray(warm_start.model.U, dtype=np.float64)).copy()
        if U0.shape != (d_a, p, c):
            raise ShapeError(f"warm_start blocks have shape {U0.shape}, expected {(d_a, p, c)}.")
    t0 = time.perf_counter()
    design: DensePooledDesign | None = None
    if use_newton:  # the barrier method runs in float64 on the dense pooled design
        try:
            design = operator(np.float64).dense()
        except MemoryBudgetError as exc:
            if solver == "newton":
                raise
            # "auto" falls back to R-FISTA in the requested dtype, which needs no pooled design
            use_newton = False
            logger.info("conv C-GReLU: pooled design not formed (%s); R-FISTA runs in %s", exc,
                        np.dtype(dtype).name)
    if use_newton:
        res = _solve_newton(design, data.loss, y2, lam, U0, kind, tol=tol, max_iter=max_iter, callback=callback)
        solver_name, eta = "newton", None
        primal, dual, iterations, converged = res.primal, res.dual, res.iterations, res.converged
        stalled = res.stalled
        extra = {"flops": design.flops, "centerings": res.centerings, "mu": res.mu, "pruned": res.pruned,
                 "design": "dense", "dtype": "float64", "stopped_by_callback": res.stopped_by_callback,
                 "stalled": stalled}
    else:
        run = _solve_rfista(operator, dtype, data.loss, y2, lam, U0, kind, tol=tol, max_iter=max_iter,
                            callback=callback)
        res, primal, dual, iterations = run.result, run.primal, run.dual, run.iterations
        converged = primal - dual <= tol * max(abs(primal), np.finfo(float).tiny) and not res.stopped_by_callback
        solver_name, eta, stalled = "rfista", float(res.eta), False
        extra = {"flops": run.flops, "backtracks": run.backtracks, "restarts": run.restarts,
                 "design": run.design, "dtype": np.dtype(dtype).name, "polish_iterations": run.polish_iterations,
                 "stopped_by_callback": res.stopped_by_callback}
    seconds = time.perf_counter() - t0
    U = np.asarray(res.U, dtype=np.float64)
    gap = max(primal - dual, 0.0)
    rel_gap = gap / max(abs(primal), np.finfo(float).tiny)
    # as for the ReLU barrier: a stall is "optimal_inaccurate" only near an optimum
    status = "optimal" if converged else "max_iterations" if not stalled \
        else "optimal_inaccurate" if rel_gap <= STALL_MAX_REL_GAP else "numerical_error"
    logger.debug("conv C-GReLU (%s): %s after %d iterations, objective %.10g, gap %.3e", solver_name, status,
                 iterations, primal, gap)
    sol = ConvexSolution(
        activation="gated_relu", patterns=pats, U=U[:, :, 0] if c == 1 else U, status=status,
        objective_value=float(primal), lam=lam, loss=data.loss, backend="native", solver=solver_name,
        solve_time=seconds, iterations=iterations, gap=gap, dual_value=float(dual),
        rel_gap=rel_gap, step_size=eta,
        formulation=formulation if c > 1 else None, extra=extra,
    )
    out = ConvSolution.from_convex(sol, data.geometry, pooling)
    if not out.converged and not res.stopped_by_callback:
        why = ("the gap stopped decreasing at the smallest barrier parameter (rounding); loosen tol or use a "
               "larger lam") if stalled else "raise max_iter or loosen tol"
        warnings.warn(f"{solver_name} stopped ({status}) after {iterations} iterations at relative gap "
                      f"{out.rel_gap:.2e} > tol={tol:g}; {why}.", ConvergenceWarning, stacklevel=2)
    return out


@dataclass
class _RfistaRun:
    """What :func:`_solve_rfista` returns: the last R-FISTA result (its ``U`` is the point), the
    float64 objective and lower bound of that point, and the counts."""

    result: Any
    primal: float
    dual: float
    iterations: int
    polish_iterations: int
    flops: float
    design: str
    backtracks: int = 0
    restarts: int = 0


def _solve_rfista(operator: Callable[..., PooledDesign], dtype, loss: Loss, y2: np.ndarray, lam: float,
                  U0: np.ndarray, kind: str, *, tol: float, max_iter: int, callback) -> _RfistaRun:
    """R-FISTA on ``Pool o A`` in ``dtype`` (``operator(dtype)``: the dense pooled design where it
    fits the memory budget, else matrix-free) from ``U0``, certified in float64.

    A float64 run is certified by its own values. A float32 run (as in
    :func:`cvxnn.native.solve.solve_native`) stops at ``max(tol, F32_HANDOFF_TOL)`` within
    ``F32_STAGE_SHARE`` of ``max_iter``; its objective and dual values are float32 estimates, so
    its point is certified by :func:`~cvxnn.native.certificates.gated_certificate` on the float64
    operator, and when that misses ``tol`` R-FISTA continues in float64 from it with the rest of
    ``max_iter`` (on the dense float64 design where the float32 one was dense and it fits).
    """
    op = operator(dtype)
    design: PooledDesign | DensePooledDesign = op
    try:  # in float32 the dense design takes half the bytes of the float64 one
        design = op.dense()
    except MemoryBudgetError:
        logger.debug("conv C-GReLU: the dense %s pooled design exceeds the memory budget; matrix-free",
                     np.dtype(dtype).name)
    kind_of_design = "matrix_free" if design is op else "dense"
    del op
    low = design.dtype != np.float64
    kernel = make_kernel(loss, y2, design.dtype)
    problem = GatedProblem(design, kernel, lam, penalty=kind)
    res = solve_gated(problem, U0.astype(design.dtype), tol=max(tol, F32_HANDOFF_TOL) if low else tol,
                      max_iter=max(1, int(max_iter * F32_STAGE_SHARE)) if low else max_iter,
                      eta0=initial_step(design, kernel), callback=callback, polish=False)
    flops, iterations = design.flops, res.iterations
    backtracks, restarts = res.backtracks, res.restarts
    if not low:
        return _RfistaRun(res, float(res.primal), float(res.dual), iterations, 0, flops, kind_of_design,
                          backtracks, restarts)
    del problem, design  # the float32 operator is not needed any more
    kernel64 = make_kernel(loss, y2, np.float64)
    op64 = operator(np.float64, cache_mask=False)
    U64 = np.asarray(res.U, dtype=np.float64)
    cert = gated_certificate(op64, kernel64, lam, U64, penalty=kind)  # the float32 dual values are estimates
    primal, dual, polish = cert.primal, cert.dual, 0
    if cert.rel_gap > tol and iterations < max_iter and not res.stopped_by_callback:
        logger.info("conv C-GReLU: the float32 R-FISTA point has relative gap %.3e in float64; polishing in "
                    "float64", cert.rel_gap)
        design64: PooledDesign | DensePooledDesign = op64
        if kind_of_design == "dense":
            try:
                design64 = op64.dense()
            except MemoryBudgetError:
                logger.debug("conv C-GReLU: the dense float64 pooled design exceeds the memory budget; "
                             "the float64 polish runs matrix-free")
        res = solve_gated(GatedProblem(design64, kernel64, lam, penalty=kind), U64, tol=tol,
                          max_iter=max_iter - iterations, eta0=res.eta, callback=callback, polish=False)
        polish = res.iterations
        iterations += polish
        backtracks, restarts = backtracks + res.backtracks, restarts + res.restarts
        # the float64 run's best point and its dual bound; the certificate of its start bounds it too
        primal, dual = float(res.primal), max(float(res.dual), dual)
        if design64 is not op64:
            flops += design64.flops
    return _RfistaRun(res, primal, dual, iterations, polish, flops + op64.flops, kind_of_design, backtracks,
                      restarts)


def _solve_conv_relu(data, pooling: str, *, lam: float, formulation: str, tol: float, feas_tol: float,
                     max_iter: int, warm_start, callback, memory_budget, solver: str) -> ConvSolution:
    """:func:`solve_conv_native` for ``activation="relu"`` (validated inputs in ``data``)."""
    feas_tol = float(feas_tol)
    if not (np.isfinite(feas_tol) and feas_tol >= 0):
        raise InvalidParameterError(f"feas_tol must be a non-negative number, got {feas_tol!r}.")
    c = data.n_outputs
    check_formulation(formulation, "relu", c)
    pats = data.patterns
    y2 = data.y[:, None] if data.y.ndim == 1 else data.y
    d_a, p = pats.design_dim, pats.n_patterns
    ok, why = _newton_applies(data.loss, c, "columnwise", data.X.shape[0], d_a * p)
    if solver == "rfista" or not ok:
        raise InvalidParameterError(
            "the native convolutional C-ReLU solver is the barrier Newton method "
            f"({why or 'solver=' + repr(solver) + ' is for the gated program'}); solve this program "
            "with cvxnn.conv.build_conv_program(...).solve() instead.")
    Za = pats.design(data.Z)
    op = PooledDesign(ImplicitDesign(Za, pats.mask, n_outputs=c, dtype=np.float64, memory_budget=memory_budget),
                      data.geometry.n_patches, pooling)
    T0 = None
    if warm_start is not None:
        if not isinstance(warm_start, ConvModel) or warm_start.activation != "relu" \
                or warm_start.patterns.n_patterns != p or not np.array_equal(warm_start.patterns.gates, pats.gates):
            raise InvalidParameterError("warm_start must be a ReLU ConvModel on the same patterns.")
        T0 = np.concatenate([_as3(np.asarray(warm_start.model.V, dtype=np.float64)),
                             _as3(np.asarray(warm_start.model.W, dtype=np.float64))], axis=1)
        rho_w = getattr(warm_start.model, "multipliers", None)
        if T0.shape != (d_a, 2 * p, c):
            raise ShapeError(f"warm_start blocks have shape {T0.shape[:1] + (p,) + T0.shape[2:]}, "
                             f"expected {(d_a, p, c)}.")
    t0 = time.perf_counter()
    design = op.dense()
    cones = ReluCones.make(Za, pats.mask)
    rho0 = None
    if T0 is not None:
        if rho_w is not None and np.shape(rho_w)[:2] == (cones.inverse.size, 2 * p) and np.all(np.isfinite(rho_w)):
            # its multipliers on the unique rows (a merged row carries the sum of its rows')
            rho0 = np.zeros((cones.Zu.shape[0] + 1, 2 * p, c))  # (+ the zero rows' slot, dropped)
            np.add.at(rho0, cones.inverse, _as3(np.maximum(np.asarray(rho_w, dtype=np.float64), 0.0)))
            rho0 = rho0[:-1]
            cert_w = _relu_gap_unique(design.matrix, cones, make_kernel(data.loss, y2, np.float64), lam, T0, rho0)
            if cert_w.rel_gap > tol or cert_w.max_violation > feas_tol:
                rho0 = None  # not certified as it is: restart the barrier near it
        if rho0 is None:  # move it strictly inside its cones, along the interior directions
            E = cones.interior_directions(pats.gates)
            norms = np.sqrt(np.einsum("djc,djc->jc", T0, T0))
            T0 = T0 + WARM_PUSH * max(float(norms.max(initial=0.0)), 1e-8) * np.concatenate([E, E], axis=1)[:, :, None]
    res = _solve_relu_barrier(design, cones, pats.gates, data.loss, y2, lam, T0, tol=tol, feas_tol=feas_tol,
                              max_iter=max_iter, callback=callback, rho0=rho0)
    seconds = time.perf_counter() - t0
    cert = res.cert
    T = res.T
    V, W = T[:, :p], T[:, p:]
    nK = cones.inverse.size
    multipliers = None
    if nK * 2 * p * c * 8 <= MULTIPLIER_MAX_BYTES:  # spread each merged row's multiplier evenly
        per_row = res.rho / cones.m[:, None, None]
        per_row = np.concatenate([per_row, np.zeros((1,) + per_row.shape[1:])])  # zero patch rows
        multipliers = per_row[cones.inverse]
        multipliers = multipliers[:, :, 0] if c == 1 else multipliers
    # a stall is "optimal_inaccurate" only near an optimum; with a gap above STALL_MAX_REL_GAP the
    # point is no optimum of any accuracy (a gap of 1.0 was labelled "optimal_inaccurate")
    status = "optimal" if res.converged else (
        "max_iterations" if not res.stalled
        else "optimal_inaccurate" if cert.rel_gap <= STALL_MAX_REL_GAP else "numerical_error")
    logger.debug("conv C-ReLU (newton): %s after %d steps, objective %.10g, gap %.3e, violation %.2e", status,
                 res.iterations, cert.primal, cert.gap, cert.max_violation)
    sol = ConvexSolution(
        activation="relu", patterns=pats, V=V[:, :, 0] if c == 1 else V, W=W[:, :, 0] if c == 1 else W,
        status=status, objective_value=float(cert.primal), lam=lam, loss=data.loss, backend="native",
        solver="newton", solve_time=seconds, iterations=res.iterations, gap=cert.gap, dual_value=float(cert.dual),
        rel_gap=cert.rel_gap, max_violation=cert.max_violation, multipliers=multipliers,
        formulation=formulation if c > 1 else None, training_X=data.Z if c > 1 else None,
        extra={"flops": design.flops, "centerings": res.centerings, "mu": res.mu,
               "design": "dense", "dtype": "float64", "unique_rows": int(cones.Zu.shape[0]), "rows": int(nK),
               "stopped_by_callback": res.stopped_by_callback},
    )
    out = ConvSolution.from_convex(sol, data.geometry, pooling)
    if not out.converged and not res.stopped_by_callback:
        why = "the gap stopped decreasing at the smallest barrier parameter; loosen tol" if res.stalled \
            else "raise max_iter or loosen tol"
        warnings.warn(f"newton (C-ReLU) stopped ({status}) after {res.iterations} steps at relative gap "
                      f"{out.rel_gap:.2e} (tol={tol:g}) and cone violation {cert.max_violation:.1e} "
                      f"(feas_tol={feas_tol:g}); {why}.", ConvergenceWarning, stacklevel=3)
    return out


def _newton_applies(loss: Loss, c: int, kind: str, n: int, m: int) -> tuple[bool, str]:
    """Whether the barrier Newton solver applies (``m = d_a p``), and why not."""
    if not (loss.separable and loss.has_hessian):
        return False, f"the {loss.name} loss is not separable with a Hessian"
    if c > 1 and kind != "columnwise":
        return False, "the nuclear-norm formulation couples the outputs"
    if m > NEWTON_MAX_COLUMNS:
        return False, f"d_a p = {m} > NEWTON_MAX_COLUMNS = {NEWTON_MAX_COLUMNS}"
    if not loss.quadratic and n * float(m) ** 2 > NEWTON_MAX_HESSIAN_FLOPS:
        return False, f"one Hessian costs n (d_a p)^2 = {n * float(m) ** 2:.2g} > {NEWTON_MAX_HESSIAN_FLOPS:g} flops"
    return True, ""


@dataclass
class _NewtonResult:
    U: np.ndarray
    primal: float
    dual: float
    iterations: int
    converged: bool
    centerings: int
    mu: float
    pruned: int = 0
    stopped_by_callback: bool = False
    stalled: bool = False


class _BarrierOutput:
    """The barrier problem of one output ``k``: ``h_k(B u) + sum_i psi_mu(||u_i||)``, with ``u``
    in the layout of ``U[:, :, k].ravel()`` (``d_a x p``, block ``i`` is column ``i``)."""

    def __init__(self, Bm: np.ndarray, Q: np.ndarray | None, kernel: SmoothKernel, lam: float,
                 d: int, p: int, u: np.ndarray) -> None:
        self.Bm, self.Q, self.kernel, self.lam, self.d, self.p = Bm, Q, kernel, lam, d, p
        self.u = np.array(u, dtype=np.float64)
        self.z = Bm @ self.u
        self.idx = np.arange(p)
        self.eye = np.eye(d)
        #: blocks held at zero (pruned): their Newton rows are the identity and their gradient zero
        self.fixed = np.zeros(p, dtype=bool)

    def fix(self, fixed: np.ndarray) -> None:
        """Hold the blocks ``fixed`` at zero (the others are free, starting where they are)."""
        self.fixed = np.asarray(fixed, dtype=bool).copy()
        W = self.u.reshape(self.d, self.p)
        if np.any(W[:, self.fixed]):
            W[:, self.fixed] = 0.0
            self.z = self.Bm @ self.u

    def _norms(self, u: np.ndarray) -> np.ndarray:
        W = u.reshape(self.d, self.p)
        return np.sqrt(np.einsum("dp,dp->p", W, W))

    def value(self, u: np.ndarray, z: np.ndarray, mu: float) -> float:
        return self.kernel.value(z[:, None]) + float(_psi(self._norms(u), mu, self.lam)[0].sum())

    def step(self, mu: float) -> float:
        """One damped Newton step at ``mu``; returns the Newton decrement ``-g^T dx`` (before it)."""
        d, p, lam = self.d, self.p, self.lam
        W = self.u.reshape(d, p)
        r = self._norms(self.u)
        _, _, a, b = _psi(r, mu, lam)
        theta = self.kernel.grad(self.z[:, None])[:, 0]
        g = self.Bm.T @ theta + (W * a).ravel()
        if self.Q is not None:
            H = self.Q.copy()
        else:
            D, _ = self.kernel.hessian_parts(self.z[:, None])
            H = self.Bm.T @ (D[:, :1] * self.Bm)
        # penalty Hessian of block i: a_i I + (b_i - a_i) uh_i uh_i^T
        Uh = W / np.maximum(r, np.finfo(float).tiny)
        Hr = H.reshape(d, p, d, p)
        Hr[:, self.idx, :, self.idx] += (a[:, None, None] * self.eye
                                         + (b - a)[:, None, None] * np.einsum("ip,jp->pij", Uh, Uh))
        if self.fixed.any():
            cols = np.tile(self.fixed, d)
            g[cols] = 0.0
            H[cols, :] = 0.0
            H[:, cols] = 0.0
            H[cols, cols] = 1.0
        try:
            dx = -sla.cho_solve(sla.cho_factor(H, check_finite=False), g, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            dx = -np.linalg.lstsq(H, g, rcond=None)[0]
        dec = -float(g @ dx)
        if not (dec > 0 and np.isfinite(dec)):
            return 0.0
        F = self.value(self.u, self.z, mu)
        dz = self.Bm @ dx
        t = 1.0
        while t > 1e-12:
            un, zn = self.u + t * dx, self.z + t * dz
            if self.value(un, zn, mu) <= F - ARMIJO * t * dec:
                self.u, self.z = un, zn
                break
            t *= 0.5
        return dec


def _solve_newton(design: DensePooledDesign, loss: Loss, y2: np.ndarray, lam: float, U0: np.ndarray, kind: str,
                  *, tol: float, max_iter: int, callback) -> _NewtonResult:
    """The barrier method of the module docstring on the pooled design (outputs decoupled)."""
    n, d, p, c = design.n, design.d, design.p, design.c
    Bm = design.matrix
    kernel = make_kernel(loss, y2, np.float64)
    Q = Bm.T @ Bm if loss.quadratic else None
    if Q is not None:
        Q *= make_kernel(loss, y2[:, :1], np.float64).hessian_parts(np.zeros((n, 1)))[0][0, 0]
    outs = [_BarrierOutput(Bm, Q, make_kernel(loss, y2[:, k:k + 1], np.float64), lam, d, p, U0[:, :, k].ravel())
            for k in range(c)]

    def blocks() -> np.ndarray:
        return np.stack([o.u.reshape(d, p) for o in outs], axis=2)

    U = blocks()
    cert = gated_certificate(design, kernel, lam, U, penalty=kind)
    mu = 0.1 * max(cert.gap, np.finfo(float).tiny) / (p * c)
    iterations = centerings = 0
    stopped = False
    best = (U, cert, mu)
    stalled = 0
    while cert.rel_gap > tol and iterations < max_iter and not stopped and stalled < STALL_CHECKS:
        iterations = _center_outputs(outs, mu, MAX_CENTERING, CENTERED, iterations, max_iter)
        centerings += 1
        _prune(outs, design, kernel, lam)
        U = blocks()
        cert = gated_certificate(design, kernel, lam, U, penalty=kind)
        # a centre's gap is at most mu per block: below MU_FLOOR_REL tol |P| / (p c) the barrier's
        # share is negligible and what is left is rounding (lam = 1e-9 on 40 digits: a relative gap
        # of 1e-3 from mu = 3e-13 on, while mu fell to 1e-228 over 10000 idle steps). mu stays at
        # the floor, and STALL_CHECKS centrings there that do not halve the best gap end the solve.
        floor = MU_FLOOR_REL * tol * abs(cert.primal) / (p * c)
        if cert.rel_gap < 0.5 * best[1].rel_gap:
            stalled = 0
        elif mu <= floor:
            stalled += 1
        if cert.rel_gap < best[1].rel_gap:
            best = (U, cert, mu)
        logger.debug("conv newton: mu %.3e, %d steps, objective %.12g, rel gap %.3e, %d blocks at zero", mu,
                     iterations, cert.primal, cert.rel_gap, sum(int(o.fixed.sum()) for o in outs))
        if callback is not None:
            info = {"iteration": iterations, "objective": cert.primal, "dual": cert.dual, "gap": cert.gap,
                    "rel_gap": cert.rel_gap, "step": float("nan"), "mu": mu}
            stopped = callback_stops(callback(info))
        mu = max(mu / MU_DECREASE, floor)
    U, cert, mu = best
    return _NewtonResult(U=U, primal=cert.primal, dual=cert.dual, iterations=iterations,
                         converged=cert.rel_gap <= tol and not stopped, centerings=centerings, mu=mu,
                         pruned=int(sum(o.fixed.sum() for o in outs)), stopped_by_callback=stopped,
                         stalled=stalled >= STALL_CHECKS)


def _prune(outs: list[_BarrierOutput], design: DensePooledDesign, kernel: SmoothKernel, lam: float) -> None:
    """Hold at zero the blocks the barrier left at ``O(mu)`` whose optimality condition holds at
    zero (norm below ``PRUNE_RTOL`` times the largest of their output, ``||B_i^T grad h|| <= lam``);
    free again a held block whose condition fails."""
    d, p = outs[0].d, outs[0].p
    U = np.stack([o.u.reshape(d, p) for o in outs], axis=2)
    G = design.adjoint(kernel.grad(np.stack([o.z for o in outs], axis=1)))
    norms = np.sqrt(np.einsum("dpc,dpc->pc", U, U))
    dn = np.sqrt(np.einsum("dpc,dpc->pc", G, G))
    for k, o in enumerate(outs):
        small = (norms[:, k] <= PRUNE_RTOL * norms[:, k].max(initial=0.0)) & (dn[:, k] <= lam)
        fixed = (o.fixed & (dn[:, k] <= lam)) | small
        if not np.array_equal(fixed, o.fixed):
            o.fix(fixed)


# ----------------------------------------------------------------------------- C-ReLU: barrier on the cones
#: Newton steps of the ReLU barrier per centring.
RELU_MAX_CENTERING = 40
#: A ReLU output is centred when its Newton decrement ``-g^T dx`` is below this multiple of ``mu``
#: (the barrier ``Phi / mu`` is self-concordant, so the decrement is measured in units of ``mu``).
RELU_CENTERED = 1e-3
#: Factor by which the ReLU barrier's ``mu`` drops after each centring (the primal-dual cone
#: curvature makes long steps cheap: on 200 digits 4 centrings of 100x took 74 Newton steps,
#: 7 of 10x took 115).
RELU_MU_DECREASE = 100.0
#: Smallest ``mu`` of the ReLU barrier, relative to ``tol |P| / nu`` (of the gated barrier, relative
#: to ``tol |P| / (p c)``); once there, STALL_CHECKS centrings in a row that do not halve the best
#: gap stop the solve (``status="optimal_inaccurate"``, or ``"numerical_error"`` above
#: STALL_MAX_REL_GAP).
MU_FLOOR_REL = 1e-2
STALL_CHECKS = 5
#: A stalled barrier (ReLU or gated) reports ``"optimal_inaccurate"`` up to this relative gap, and
#: ``"numerical_error"`` beyond it.
STALL_MAX_REL_GAP = 0.1
#: Fraction-to-the-boundary factor of the ReLU line search (slacks stay positive).
BOUNDARY = 0.99
#: Largest ``n K 2p c`` multipliers (bytes, float64) stored on the solution (``multipliers``) so
#: that :func:`conv_certificate` can reuse them; above it they are dropped (the solver's own
#: certificate, on the unique rows, is in ``gap``).
MULTIPLIER_MAX_BYTES = 2**26
#: A ReLU warm start is moved inside its cones by this fraction of its largest block along the
#: interior directions.
WARM_PUSH = 1e-6


@dataclass(frozen=True, eq=False)
class ReluCones:
    """The cone data of the convolutional C-ReLU program on the **unique** rows of ``[Z_a, mask]``.

    Duplicate patches (equal rows of ``Z_a`` with equal patterns) give equal constraints, so the
    ``n K`` rows merge into ``r`` unique rows with multiplicities ``m`` (42,438 of 45,252 on
    digits, 3x3 patches). The barrier of the merged rows is ``-mu sum_r m_r log(s_r z_r^T v)``,
    and its multiplier ``mu m_r / slack_r`` is the sum of those of the merged rows.

    Attributes
    ----------
    Zu : ndarray (r, d_a)
        Unique rows of ``Z_a``.
    S : ndarray (r, 2p)
        ``S_i = 2 D_i - I`` on those rows, twice (``v`` blocks, then ``w`` blocks).
    m : ndarray (r,)
        Multiplicities.
    inverse : ndarray (n K,)
        Row of ``Zu`` of every patch row; ``r`` (one past the last) for a zero patch row, which
        constrains nothing and is not among the unique rows.
    products : ndarray (r, d_a (d_a + 1) / 2)
        ``z_r z_r^T`` (upper triangle): the barrier Hessians of all blocks are one GEMM.
    Sm : ndarray (r, 2p)
        ``S * m`` (the barrier gradient is ``-mu Zu^T (Sm / slack)``).
    """

    Zu: np.ndarray
    S: np.ndarray
    m: np.ndarray
    inverse: np.ndarray
    products: np.ndarray
    Sm: np.ndarray

    @classmethod
    def make(cls, Za: np.ndarray, mask: np.ndarray) -> ReluCones:
        d = Za.shape[1]
        key = np.concatenate([np.asarray(Za, dtype=np.float64), mask.astype(np.float64)], axis=1)
        uniq, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        # a zero patch row (a blank region of an image, without a bias column) constrains nothing
        # (0 >= 0): it is left out, or no cone would have an interior and the barrier no start.
        # Its patch rows point one past the last unique row, where the multipliers are zero.
        live = np.any(uniq[:, :d] != 0.0, axis=1)
        if not live.all():
            where = np.full(live.size, int(live.sum()))
            where[live] = np.arange(int(live.sum()))
            inverse = where[inverse]
            uniq, counts = uniq[live], counts[live]
        Zu = np.ascontiguousarray(uniq[:, :d])
        S = 2.0 * uniq[:, d:] - 1.0
        iu, ju = np.triu_indices(d)
        S2 = np.ascontiguousarray(np.concatenate([S, S], axis=1))
        m = counts.astype(np.float64)
        return cls(Zu=Zu, S=S2, m=m, inverse=inverse, products=np.ascontiguousarray(Zu[:, iu] * Zu[:, ju]),
                   Sm=S2 * m[:, None])

    @property
    def d(self) -> int:
        return self.Zu.shape[1]

    @property
    def p(self) -> int:
        return self.S.shape[1] // 2

    @property
    def n_rows(self) -> float:
        """``n K`` (sum of the multiplicities)."""
        return float(self.m.sum())

    def slacks(self, T: np.ndarray) -> np.ndarray:
        """``S_i Z_a t_j`` for the ``2p`` blocks ``T`` (``d_a x 2p``), on the unique rows."""
        return self.S * (self.Zu @ T)

    def hessians(self, weights: np.ndarray) -> np.ndarray:
        """``Zu^T diag(w_j) Zu`` for every column ``w_j`` of ``weights`` (``r x k``): ``(k, d_a, d_a)``."""
        d = self.d
        up = self.products.T @ weights  # (d(d+1)/2, k)
        H = np.empty((weights.shape[1], d, d))
        iu, ju = np.triu_indices(d)
        H[:, iu, ju] = up.T
        H[:, ju, iu] = up.T
        return H

    def interior_directions(self, gates: np.ndarray) -> np.ndarray:
        """A unit direction strictly inside every cone ``K_i`` (``d_a x p``): the gate when it is
        interior, else the centre of an LP; a column of zeros where the cone has an empty interior."""
        p = self.p
        out = np.zeros((self.d, p))
        G = np.asarray(gates, dtype=np.float64)
        Gn = G / np.maximum(np.linalg.norm(G, axis=0), np.finfo(float).tiny)
        if self.Zu.shape[0] == 0:  # every patch row is zero: no constraint, every direction is inside
            out[0, :] = 1.0
            return np.where(np.linalg.norm(Gn, axis=0) > 0, Gn, out)
        sl = self.S[:, :p] * (self.Zu @ Gn)
        scale = np.maximum(np.abs(sl).max(axis=0), 1.0)
        for i in range(p):
            if sl[:, i].min() > 1e-12 * scale[i]:
                out[:, i] = Gn[:, i]
                continue
            from scipy.optimize import linprog

            rows = self.S[:, i, None] * self.Zu
            d = self.d
            # max t  s.t.  rows u >= t, -1 <= u <= 1
            res = linprog(np.r_[np.zeros(d), -1.0], A_ub=np.c_[-rows, np.ones(rows.shape[0])],
                          b_ub=np.zeros(rows.shape[0]), bounds=[(-1, 1)] * d + [(None, 1)], method="highs")
            if res.status == 0 and -res.fun > 1e-10:
                out[:, i] = res.x[:d] / np.linalg.norm(res.x[:d])
        return out


class _ReluBarrierOutput:
    """The barrier problem of one output ``k`` of the convolutional C-ReLU program::

        Phi_mu(T) = h_k(B (v - w)) + sum_j psi_mu(||t_j||) - mu sum_j sum_r m_r log(s_ri z_r^T t_j)

    over the ``2p`` blocks ``T = [v_1..v_p, w_1..w_p]`` (``d_a x 2p``). ``B`` is the pooled design
    in block-major column order (block ``i`` is columns ``i d_a .. (i+1) d_a - 1``). Blocks in
    ``fixed`` (cones with an empty interior) stay at zero; their slacks are held at 1 (no barrier
    term) and their multipliers at 0."""

    def __init__(self, Bb: np.ndarray, Qb: np.ndarray | None, kernel: SmoothKernel, cones: ReluCones, lam: float,
                 T: np.ndarray, fixed: np.ndarray, work: np.ndarray | None = None) -> None:
        self.Bb, self.Qb, self.kernel, self.cones, self.lam = Bb, Qb, kernel, cones, lam
        self.d, self.p = cones.d, cones.p
        #: three ``r x 2p`` scratch arrays, shared by the outputs (they step one at a time): the
        #: row passes of a step run in place instead of allocating 20 MB temporaries on digits
        self.work = np.empty((3,) + cones.S.shape) if work is None else work
        self.fixed = fixed
        self.rho: np.ndarray | None = None
        self.set(T)

    def set(self, T: np.ndarray) -> None:
        self.rho = None
        self.T = np.array(T, dtype=np.float64)
        self.T[:, self.fixed] = 0.0
        self.slack = self.cones.slacks(self.T)
        self.slack[:, self.fixed] = 1.0
        self.z = self.Bb @ self._u(self.T)

    def _u(self, T: np.ndarray) -> np.ndarray:
        p = self.p
        return (T[:, :p] - T[:, p:]).T.ravel()  # block-major

    def value(self, T: np.ndarray, z: np.ndarray, slack: np.ndarray, mu: float) -> float:
        if slack.min(initial=1.0) <= 0.0:
            return np.inf
        r = np.sqrt(np.einsum("dj,dj->j", T, T))
        logs = float(self.cones.m @ np.log(slack).sum(axis=1))
        return self.kernel.value(z[:, None]) + float(_psi(r, mu, self.lam)[0].sum()) - mu * logs

    def multipliers(self, mu: float) -> np.ndarray:
        """The cone multipliers ``rho`` on the unique rows (``r x 2p``; zero for fixed blocks)."""
        if self.rho is None:
            self.rho = mu * self.cones.m[:, None] / self.slack
        if self.fixed.any():
            self.rho[:, self.fixed] = 0.0
        return self.rho

    def step(self, mu: float) -> float:
        """One damped Newton step at ``mu``; returns the Newton decrement ``-g^T dx`` (before it)."""
        d, p, lam, cones = self.d, self.p, self.lam, self.cones
        T = self.T
        r = np.sqrt(np.einsum("dj,dj->j", T, T))
        _, _, a, b = _psi(r, mu, lam)
        theta = self.kernel.grad(self.z[:, None])[:, 0]
        gu = (self.Bb.T @ theta).reshape(p, d).T  # (d, p)
        rho = self.multipliers(mu)
        wr, tmp, u = self.work
        np.divide(1.0, self.slack, out=wr)
        G = np.concatenate([gu, -gu], axis=1) + a * T - mu * (cones.Zu.T @ np.multiply(cones.Sm, wr, out=tmp))
        # primal-dual cone curvature rho / slack (the primal barrier's is mu m / slack^2): after
        # mu drops, the rows that stay active keep their curvature, so the centring takes a
        # few steps instead of crawling along the boundary
        Hb = cones.hessians(np.multiply(rho, wr, out=tmp))  # (2p, d, d)
        Th = T / np.maximum(r, np.finfo(float).tiny)
        Hb += a[:, None, None] * np.eye(d) + (b - a)[:, None, None] * np.einsum("dj,ej->jde", Th, Th)
        Hb[self.fixed] = np.eye(d)
        G[:, self.fixed] = 0.0
        if self.Qb is not None:
            Q = self.Qb
        else:
            D, _ = self.kernel.hessian_parts(self.z[:, None])
            Q = self.Bb.T @ (D[:, :1] * self.Bb)
        # Newton system [[Hv + Q, -Q], [-Q, Hw + Q]] (block-major: v_1..v_p, then w_1..w_p), by
        # Cholesky; Hv, Hw are block diagonal (the cone barriers and the penalty, d_a x d_a each)
        m = p * d
        A = np.empty((2 * m, 2 * m))
        A[:m, :m] = Q
        A[m:, m:] = Q
        A[:m, m:] = -Q
        A[m:, :m] = -Q
        Ar = A.reshape(2 * p, d, 2 * p, d)
        idx = np.arange(2 * p)
        Ar[idx, :, idx, :] += Hb
        if self.fixed.any():
            cols = np.repeat(self.fixed, d)
            A[cols, :] = 0.0
            A[:, cols] = 0.0
            A[cols, cols] = 1.0
        rhs = -G.T.ravel()
        try:
            dx = sla.cho_solve(sla.cho_factor(A, check_finite=False), rhs, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            dx = np.linalg.lstsq(A, rhs, rcond=None)[0]
        dT = np.concatenate([dx[:m].reshape(p, d).T, dx[m:].reshape(p, d).T], axis=1)
        dT[:, self.fixed] = 0.0
        dec = -float(np.vdot(G, dT))
        if not (dec > 0 and np.isfinite(dec)):
            return 0.0
        q = cones.Zu @ dT
        q *= cones.S
        q *= wr  # ds / slack
        # never past BOUNDARY of the way to the cone boundary
        qmin = float(q.min())
        t = 1.0 if qmin >= -BOUNDARY else BOUNDARY / -qmin
        dz = self.Bb @ self._u(dT)
        dTT = np.einsum("dj,dj->j", T, dT)
        dTdT = np.einsum("dj,dj->j", dT, dT)
        F = None
        while t > 1e-14:
            Tn, zn = T + t * dT, self.z + t * dz
            # Phi is convex along dT: a non-positive slope at t means Phi decreased on [0, t];
            # otherwise Armijo, or (where Phi changes by less than its rounding) a curvature test
            an = _psi(np.sqrt(np.einsum("dj,dj->j", Tn, Tn)), mu, lam)[2]
            np.multiply(q, t, out=u)
            u += 1.0  # slack_new / slack
            slope = (float(self.kernel.grad(zn[:, None])[:, 0] @ dz) + float((dTT + t * dTdT) @ an)
                     - mu * float((cones.m @ np.divide(q, u, out=tmp)).sum()))
            ok = slope <= 0.0
            if not ok:
                sn = self.slack * u
                F = self.value(T, self.z, self.slack, mu) if F is None else F
                Fn = self.value(Tn, zn, sn, mu)
                ok = Fn <= F - ARMIJO * t * dec or (abs(Fn - F) <= 1e-12 * (abs(F) + 1.0) and abs(slope) <= 0.9 * dec)
            if ok:
                # the multipliers of the Newton equations: rho + drho = mu m / slack - rho ds / slack
                # (drho = mu m / slack - rho - (rho / slack) ds), a step t of the way, each kept
                # above 1/100 of its old value (a componentwise fraction to the boundary)
                full = np.multiply(wr, mu * cones.m[:, None], out=tmp)
                full -= np.multiply(rho, q, out=q)
                if t != 1.0:
                    full *= t
                    full += (1.0 - t) * rho
                rho *= 0.01
                self.rho = np.maximum(full, rho, out=rho)
                self.T, self.z = Tn, zn
                self.slack *= u
                break
            t *= 0.5
        return dec


def _relu_gap_unique(Bm: np.ndarray, cones: ReluCones, kernel: SmoothKernel, lam: float, T3: np.ndarray,
                     rho: np.ndarray) -> GapCertificate:
    """The certificate of :func:`cvxnn.conv.conv_certificate` for C-ReLU (blocks ``T3`` =
    ``[V, W]``, ``d_a x 2p x c``), with the multipliers ``rho`` (``r x 2p x c``) on the unique rows
    (a merged row's multiplier is the sum over the rows it stands for, so the value is the one of
    the full program with the multiplier spread evenly)."""
    d, p = cones.d, cones.p
    c = T3.shape[2]
    U = T3[:, :p] - T3[:, p:]
    z = Bm @ U.reshape(d * p, c)
    norms = np.sqrt(np.einsum("djc,djc->jc", T3, T3))
    P = kernel.value(z) + lam * float(norms.sum())
    theta = kernel.grad(z)
    base = (Bm.T @ theta).reshape(d, p, c)
    viol, dn = 0.0, 0.0
    for k in range(c):
        sl = cones.slacks(T3[:, :, k])
        viol = max(viol, -float(sl.min(initial=0.0)))
        g = np.concatenate([base[:, :, k], -base[:, :, k]], axis=1) \
            - cones.Zu.T @ (cones.S * np.maximum(rho[:, :, k], 0.0))
        dn = max(dn, float(np.sqrt(np.einsum("dj,dj->j", g, g)).max(initial=0.0)))
    if not np.all(np.isfinite(rho)):  # no bound on the dual norm: the dual point 0 only
        dn = np.inf
    s = kernel.best_dual_scale(theta, np.inf if dn == 0.0 else lam / dn)
    D = kernel.dual_value(s * theta)
    gap = max(P - D, 0.0)
    return GapCertificate(primal=P, dual=D, gap=gap, rel_gap=gap / max(abs(P), np.finfo(float).tiny),
                          scale=s, max_violation=max(viol, 0.0))


@dataclass
class _ReluResult:
    T: np.ndarray
    rho: np.ndarray
    cert: GapCertificate
    iterations: int
    converged: bool
    centerings: int
    mu: float
    stopped_by_callback: bool = False
    stalled: bool = False


def _solve_relu_barrier(design: DensePooledDesign, cones: ReluCones, gates: np.ndarray, loss: Loss,
                        y2: np.ndarray, lam: float, T0: np.ndarray | None, *, tol: float, feas_tol: float,
                        max_iter: int, callback, rho0: np.ndarray | None = None) -> _ReluResult:
    """The barrier method of the module docstring for the convolutional C-ReLU program."""
    n, d, p, c = design.n, design.d, design.p, design.c
    Bm = design.matrix
    Bb = np.ascontiguousarray(Bm.reshape(n, d, p).transpose(0, 2, 1).reshape(n, p * d))
    kernel = make_kernel(loss, y2, np.float64)
    Qb = None
    if loss.quadratic:
        Qb = Bb.T @ Bb
        Qb *= make_kernel(loss, y2[:, :1], np.float64).hessian_parts(np.zeros((n, 1)))[0][0, 0]
    E = cones.interior_directions(gates)
    empty = ~np.any(E, axis=0)
    fixed = np.concatenate([empty, empty])
    nu = float(2 * p * c * (cones.n_rows + 2))
    h0 = kernel.value(np.zeros((n, c)))
    if T0 is None:
        # the zero model (cone feasible, multipliers 0) may be optimal already (lam >= lam_max,
        # y = 0): the barrier would only approach it, with a relative gap of a vanishing objective
        zero = np.zeros((d, 2 * p, c))
        rho_zero = np.zeros((cones.Zu.shape[0], 2 * p, c))
        cert0 = _relu_gap_unique(Bm, cones, kernel, lam, zero, rho_zero)
        if cert0.gap == 0.0 or cert0.rel_gap <= tol:
            return _ReluResult(T=zero, rho=rho_zero, cert=cert0, iterations=0, converged=True, centerings=0, mu=0.0)
        mu = MU0_REL * max(abs(h0), 1e-12) / nu
        # each block on the centre of its ray eps e_i: psi'(eps) eps = mu n K, so eps ~ mu n K / lam.
        # At a small lam that centre is far out (lam = 1e-8 on digits: blocks of norm 2e7 whose
        # V - W cancel in the fit but cost a penalty 1e6 times the optimum, which the Newton steps
        # never shrank): mu starts no larger than what puts eps at the blocks' natural scale,
        # ||y|| / ||B|| (a block that alone fits y)
        scale = np.sqrt(2.0 * max(abs(h0), 1e-300)) / max(float(np.abs(Bb).sum(axis=0).max()), 1e-300)
        mu = min(mu, START_SCALE * scale * lam / cones.n_rows)
        eps = mu * cones.n_rows / lam
        T0 = np.repeat(np.concatenate([E, E], axis=1)[:, :, None] * eps, c, axis=2)
    else:
        mu = None
    work = np.empty((3,) + cones.S.shape)
    outs = [_ReluBarrierOutput(Bb, Qb, make_kernel(loss, y2[:, k:k + 1], np.float64), cones, lam, T0[:, :, k],
                               fixed, work) for k in range(c)]

    def state(mu_: float) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([o.T for o in outs], axis=2), np.stack([o.multipliers(mu_) for o in outs], axis=2))

    if mu is None:  # a warm start: mu from its gap (with its multipliers, when it has them)
        T = np.stack([o.T for o in outs], axis=2)
        cert0 = _relu_gap_unique(Bm, cones, kernel, lam, T, np.zeros((cones.Zu.shape[0], 2 * p, c))
                                 if rho0 is None else rho0)
        if rho0 is not None and cert0.rel_gap <= tol and cert0.max_violation <= feas_tol:
            return _ReluResult(T=T, rho=rho0, cert=cert0, iterations=0, converged=True, centerings=0, mu=0.0)
        mu = MU0_REL * max(cert0.gap, 1e-12 * max(abs(h0), 1.0)) / nu
    iterations = centerings = 0
    stopped = converged = False
    best: tuple | None = None
    stalled = 0
    while iterations < max_iter and not stopped:
        iterations = _center_outputs(outs, mu, RELU_MAX_CENTERING, RELU_CENTERED, iterations, max_iter)
        centerings += 1
        T, rho = state(mu)
        cert = _relu_gap_unique(Bm, cones, kernel, lam, T, rho)
        # below MU_FLOOR_REL tol |P| / nu the barrier's share of the gap is negligible: mu stays
        # there, and STALL_CHECKS centrings that do not halve the best gap end the solve
        floor = MU_FLOOR_REL * tol * abs(cert.primal) / nu
        if best is None or cert.rel_gap < 0.5 * best[2].rel_gap:
            stalled = 0
        elif mu <= floor:
            stalled += 1
        if best is None or cert.rel_gap < best[2].rel_gap:
            best = (T, rho, cert, mu)
        logger.debug("conv relu barrier: mu %.3e, %d steps, objective %.12g, rel gap %.3e, violation %.2e", mu,
                     iterations, cert.primal, cert.rel_gap, cert.max_violation)
        if callback is not None:
            info = {"iteration": iterations, "objective": cert.primal, "dual": cert.dual, "gap": cert.gap,
                    "rel_gap": cert.rel_gap, "step": float("nan"), "mu": mu, "violation": cert.max_violation}
            stopped = callback_stops(callback(info))
        if cert.rel_gap <= tol and cert.max_violation <= feas_tol:
            converged = not stopped
            best = (T, rho, cert, mu)
            break
        if stalled >= STALL_CHECKS:
            break
        mu = max(mu / RELU_MU_DECREASE, floor)
    T, rho, cert, mu_b = best
    return _ReluResult(T=T, rho=rho, cert=cert, iterations=iterations, converged=converged, centerings=centerings,
                       mu=mu_b, stopped_by_callback=stopped, stalled=stalled >= STALL_CHECKS)
