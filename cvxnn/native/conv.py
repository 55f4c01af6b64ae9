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
  duality gap) on the same operator, for the other cases (nuclear norms, the softmax loss).

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
import scipy.linalg as sla

from .._validation import check_lam, check_positive_int
from ..conv import (
    ConvModel,
    ConvNetwork,
    ConvSolution,
    DensePooledDesign,
    PooledDesign,
    _as3,
    _check_pooling,
    check_formulation,
    conv_certificate,
    prepare_conv_data,
)
from ..errors import ConvergenceWarning, InvalidParameterError, MemoryBudgetError, ShapeError
from ..losses import Loss, get_loss
from ..operators import ImplicitDesign
from ..solution import ConvexSolution
from ._losses import SmoothKernel, make_kernel
from .certificates import gated_certificate
from .fista import GatedProblem, initial_step, solve_gated
from .ipm import _psi

__all__ = ["ConvReport", "PooledDesign", "conv_certificate", "conv_report", "solve_conv_native"]

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
    solver: str = "auto",
) -> ConvSolution:
    """Solve the convolutional C-GReLU program natively (barrier Newton or R-FISTA on ``Pool o A``,
    gap-certified).

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
        Compute dtype of the R-FISTA products (objective and gap accumulate in float64); the
        Newton solver always runs in float64.
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
        ``d_a p <= NEWTON_MAX_COLUMNS``. ``"rfista"``: R-FISTA. ``"auto"``: Newton where it
        applies, else R-FISTA.

    Returns
    -------
    ConvSolution
        ``status="optimal"`` when the relative gap reached ``tol``, else ``"max_iterations"``
        (with a :class:`~cvxnn.errors.ConvergenceWarning`); ``gap``, ``rel_gap``, ``dual_value``
        certify the point; ``solver`` is ``"newton"`` or ``"rfista"``.
    """
    lam = check_lam(lam, allow_zero=False)
    max_iter = check_positive_int(max_iter, "max_iter", maximum=None)
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise InvalidParameterError(f"tol must be a positive number, got {tol!r}.")
    if solver not in SOLVERS:
        raise InvalidParameterError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    pooling = _check_pooling(pooling)
    data = prepare_conv_data(X, y, image_shape=image_shape, patch_size=patch_size, stride=stride,
                             patterns=patterns, n_gates=n_gates, bias=bias, seed=seed, loss=loss)
    c = data.n_outputs
    if c > 1:
        check_formulation(formulation, "gated_relu")
    kind = "nuclear" if c == 1 or formulation == "nuclear" else "columnwise"
    pats = data.patterns
    y2 = data.y[:, None] if data.y.ndim == 1 else data.y
    d_a, p = pats.design_dim, pats.n_patterns
    newton_ok, why = _newton_applies(data.loss, c, kind, data.X.shape[0], d_a * p)
    if solver == "newton" and not newton_ok:
        raise InvalidParameterError(f"solver='newton' does not apply here: {why}; use solver='rfista'.")
    use_newton = newton_ok and solver != "rfista"
    cdtype = np.float64 if use_newton else dtype
    kernel = make_kernel(data.loss, y2, cdtype)
    iterate_bytes = 6 * d_a * p * c * np.dtype(cdtype).itemsize  # iterates, gradient, prox of R-FISTA
    op = PooledDesign(ImplicitDesign(pats.design(data.Z), pats.mask, n_outputs=c, dtype=cdtype,
                                     memory_budget=memory_budget, reserve_bytes=iterate_bytes),
                      data.geometry.n_patches, pooling)
    U0 = np.zeros((d_a, p, c), dtype=cdtype)
    if warm_start is not None:
        if not isinstance(warm_start, ConvModel) or warm_start.activation != "gated_relu" \
                or warm_start.patterns.n_patterns != p or not np.array_equal(warm_start.patterns.gates, pats.gates):
            raise InvalidParameterError("warm_start must be a gated ConvModel on the same patterns.")
        U0 = _as3(np.asarray(warm_start.model.U, dtype=cdtype)).copy()
        if U0.shape != (d_a, p, c):
            raise ShapeError(f"warm_start blocks have shape {U0.shape}, expected {(d_a, p, c)}.")
    t0 = time.perf_counter()
    design: PooledDesign | DensePooledDesign = op
    try:
        design = op.dense()
    except MemoryBudgetError as exc:
        if use_newton:
            raise
        logger.info("conv C-GReLU: pooled design not formed (%s); R-FISTA runs matrix-free", exc)
    if use_newton:
        res = _solve_newton(design, data.loss, y2, lam, U0, kind, tol=tol, max_iter=max_iter, callback=callback)
        solver_name, eta = "newton", None
        extra = {"flops": design.flops, "centerings": res.centerings, "mu": res.mu, "pruned": res.pruned,
                 "design": "dense", "stopped_by_callback": res.stopped_by_callback}
    else:
        problem = GatedProblem(design, kernel, lam, penalty=kind)
        res = solve_gated(problem, U0, tol=tol, max_iter=max_iter, eta0=initial_step(design, kernel),
                          callback=callback, polish=False)
        solver_name, eta = "rfista", float(res.eta)
        extra = {"flops": design.flops, "backtracks": res.backtracks, "restarts": res.restarts,
                 "design": "dense" if design is not op else "matrix_free",
                 "stopped_by_callback": res.stopped_by_callback}
    seconds = time.perf_counter() - t0
    U = np.asarray(res.U, dtype=np.float64)
    gap = max(res.primal - res.dual, 0.0)
    status = "optimal" if res.converged else "max_iterations"
    logger.debug("conv C-GReLU (%s): %s after %d iterations, objective %.10g, gap %.3e", solver_name, status,
                 res.iterations, res.primal, gap)
    sol = ConvexSolution(
        activation="gated_relu", patterns=pats, U=U[:, :, 0] if c == 1 else U, status=status,
        objective_value=float(res.primal), lam=lam, loss=data.loss, backend="native", solver=solver_name,
        solve_time=seconds, iterations=res.iterations, gap=gap, dual_value=float(res.dual),
        rel_gap=gap / max(abs(res.primal), np.finfo(float).tiny), step_size=eta,
        formulation=formulation if c > 1 else None, extra=extra,
    )
    out = ConvSolution.from_convex(sol, data.geometry, pooling)
    if not out.converged and not res.stopped_by_callback:
        warnings.warn(f"{solver_name} stopped after {res.iterations} iterations at relative gap {out.rel_gap:.2e} "
                      f"> tol={tol:g}; raise max_iter or loosen tol.", ConvergenceWarning, stacklevel=2)
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
    while cert.rel_gap > tol and iterations < max_iter and not stopped:
        live = list(range(c))
        for _ in range(MAX_CENTERING):
            if not live or iterations >= max_iter:
                break
            iterations += 1
            live = [k for k in live if outs[k].step(mu) > CENTERED * mu]
        centerings += 1
        _prune(outs, design, kernel, lam)
        U = blocks()
        cert = gated_certificate(design, kernel, lam, U, penalty=kind)
        logger.debug("conv newton: mu %.3e, %d steps, objective %.12g, rel gap %.3e, %d blocks at zero", mu,
                     iterations, cert.primal, cert.rel_gap, sum(int(o.fixed.sum()) for o in outs))
        if callback is not None:
            info = {"iteration": iterations, "objective": cert.primal, "dual": cert.dual, "gap": cert.gap,
                    "rel_gap": cert.rel_gap, "step": float("nan"), "mu": mu}
            stopped = callback(info) is True
        mu /= MU_DECREASE
    return _NewtonResult(U=U, primal=cert.primal, dual=cert.dual, iterations=iterations,
                         converged=cert.rel_gap <= tol and not stopped, centerings=centerings, mu=mu * MU_DECREASE,
                         pruned=int(sum(o.fixed.sum() for o in outs)), stopped_by_callback=stopped)


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
