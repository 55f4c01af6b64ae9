"""RELAXATION (not an exact reformulation): the copositive SDP relaxation for vector-output ReLU
networks (Sahiner, Ergen, Pauly & Pilanci, ICLR 2021; ``docs/math.md``, "Vector output").

The exact vector-output ReLU training problem on patterns ``D_1..D_p`` is a copositive program:
block ``i`` holds ``U_i = sum_k a_k b_k^T`` with first-layer factors ``a_k in K_i``, at the cost
``sum_k ||a_k|| ||b_k||``. Lifting the balanced factors, ``Z_i = sum_k [a_k; b_k][a_k; b_k]^T`` is
PSD, has off-diagonal block ``U_i``, trace ``2 sum_k ||a_k|| ||b_k||``, and its top-left block
``P_i = sum_k a_k a_k^T`` satisfies ``Xt_i P_i Xt_i^T >= 0`` elementwise (because ``Xt_i a_k >= 0``).
Keeping only these two properties gives the SDP

    minimize   L( sum_i D_i X U_i, Y ) + lam * sum_i tr(Z_i) / 2
    subject to Z_i = [[P_i, U_i], [U_i^T, Q_i]]  PSD,
               (2 D_i - I) X P_i X^T (2 D_i - I) >= 0   (elementwise)        for every i.

Its value ``r*`` satisfies ``d* <= r* <= p*_D <= (objective of any ReLU network on these patterns)``:
``d*`` is the gated (nuclear-norm) value, ``p*_D`` the best ReLU network whose neurons use the
patterns. It is a **lower bound**, never a trained network: its blocks need not factor into cone
factors. When every block's SVD left factors lie in ``+-K_i`` the SVD readout *is* such a network
with objective ``<= r*``, which certifies that the relaxation is tight (:attr:`tight`).

Only a certified value is a bound. The bound reported, :attr:`CopositiveRelaxation.lower_bound`,
is a weak-duality bound computed in float64 from the solver's point (for a smooth loss with a
conjugate: squared, logistic, cross-entropy, Huber): with ``theta = s grad L(fit)``, ``G_i = X_a^T
D_i theta`` and the multipliers ``mu >= 0`` of the elementwise inequalities (``Q_i = X_a^T S_i W_i
S_i X_a``, ``W_i`` the symmetric matrix of ``mu_i / 2`` on the pairs),

    r*  >=  -L*(theta)   whenever   lam/2 I + [[-s Q_i, G_i / 2], [G_i^T / 2, 0]]  is PSD for every i,

and ``s`` is the best factor that keeps every block PSD (``Loss.best_dual_scale``). The bound is
valid whatever the solver's status and accuracy (an SCS run stopped early gives a looser but
true bound; a solver's primal value ``value`` may lie *above* ``r*``, and then above networks).
For a loss without a conjugate (absolute, hinge) ``lower_bound`` is the solver's ``value`` when
it reports ``optimal`` (``r*`` to the solver's tolerance), else None. Any status other than
``optimal`` gives an :class:`~cvxnn.errors.InaccurateSolutionWarning` (``require_optimal=True``
raises :class:`~cvxnn.errors.SolverError` instead).

Size: ``p`` PSD blocks of order ``d_a + c`` (one batched CVXPY variable) and ``p n (n - 1) / 2``
linear inequalities: for small problems (teaching, verification) only.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cvxpy as cp
import numpy as np

from ._readout import relu_vector_factors
from ._validation import check_bool, check_lam, check_X, check_y
from .backends.cvxpy_adapter import check_cvxpy_solver, run_problem
from .errors import InaccurateSolutionWarning, InvalidParameterError, MemoryBudgetError, SolverError
from .losses import Loss, get_loss
from .networks import ReLUNetwork
from .patterns import Patterns
from .solution import ConvexModel

__all__ = ["CopositiveRelaxation", "copositive_relaxation", "MAX_RELAXATION_ROWS"]

logger = logging.getLogger(__name__)

#: Refuse relaxations with more elementwise inequalities than this (``p n (n - 1) / 2``).
MAX_RELAXATION_ROWS = 2_000_000


@dataclass(frozen=True, eq=False)
class CopositiveRelaxation:
    """Result of :func:`copositive_relaxation` -- a RELAXATION, i.e. a lower bound.

    Attributes
    ----------
    value : float
        The solver's objective at its point. Equal to ``r*`` (to the solver's tolerance) only
        when ``status == "optimal"``; otherwise it is not a bound on anything.
    lower_bound : float or None
        A certified lower bound on ``r*``, hence on the objective of every ReLU network whose
        neurons use the patterns: :attr:`dual_bound` when it was computed, else ``value`` when
        the solver reported ``optimal``, else None.
    dual_bound : float or None
        The weak-duality bound of the module docstring at the solver's point (None for losses
        without a conjugate, or without a point).
    U : ndarray of shape (d_a, p, c)
        Relaxed blocks (not necessarily realisable by a ReLU network).
    P : ndarray of shape (p, d_a, d_a)
        Relaxed first-layer moments ``P_i``.
    status, solver : str
    solve_time, compile_time : float or None
    lam : float
    loss : Loss
    patterns : Patterns
    network : ReLUNetwork or None
        The SVD readout when every block's left singular vectors lie in ``+-K_i``, or the zero
        network (no neurons) when its objective reaches the certified value (``lam >= lam_max``);
        else None.
    network_objective : float or None
        Its objective; when it equals :attr:`value` (rel. 1e-6) the relaxation is tight.
    """

    is_relaxation: ClassVar[bool] = True

    value: float
    U: np.ndarray
    P: np.ndarray
    status: str
    solver: str
    solve_time: float | None
    compile_time: float | None
    lam: float
    loss: Loss
    patterns: Patterns
    network: Any = None
    network_objective: float | None = None
    extra: dict = field(default_factory=dict)
    dual_bound: float | None = None

    @property
    def lower_bound(self) -> float | None:
        """The certified lower bound: :attr:`dual_bound`, else ``value`` for an ``optimal`` solve,
        else None."""
        if self.dual_bound is not None:
            return self.dual_bound
        return self.value if self.status == "optimal" else None

    @property
    def tight(self) -> bool:
        """True when a ReLU network attains the relaxed value ``r*`` (then it is optimal on the
        patterns, and the relaxation is exact), to the solver's tolerance: its objective is within
        ``1e-6`` (relative) of ``value`` for an ``optimal`` solve, of :attr:`lower_bound` otherwise.
        ``network_objective - lower_bound`` is the certified distance. False without a bound."""
        bound = self.value if self.status == "optimal" else self.lower_bound
        if self.network_objective is None or bound is None:
            return False
        # relative to the objectives themselves: an absolute floor of 1e-6 called every network
        # of a problem with small targets "tight" (Y * 1e-4: objective 7.5e-8 against r* = 8.5e-9)
        return self.network_objective <= bound + 1e-6 * max(abs(bound), abs(self.network_objective))

    def summary(self) -> str:
        """A few lines, starting with the word RELAXATION."""
        bound = self.lower_bound
        value = (f"lower bound       : {bound:.10g}  (certified; solver value {self.value:.10g}, status "
                 f"{self.status}, {self.solver})" if bound is not None else
                 f"solver value      : {self.value:.10g}  (status {self.status}, {self.solver}: NOT a "
                 "certified bound)")
        return "\n".join([
            "RELAXATION (copositive SDP, a lower bound -- not a trained network)",
            value,
            ("zero network      : " if self.network is not None and self.network.n_neurons == 0 else
             "SVD readout       : ") + ("none (some block has left factors outside +-K_i)"
                                        if self.network_objective is None else
                                        f"{self.network_objective:.10g} ({'tight' if self.tight else 'not tight'})"),
        ])


def _pair_rows(Xa: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``(x_j kron x_k + x_k kron x_j) / 2`` for ``j < k`` and the index pairs."""
    n = Xa.shape[0]
    first, second = np.triu_indices(n, k=1)
    K = 0.5 * (np.einsum("pa,pb->pab", Xa[first], Xa[second]) + np.einsum("pa,pb->pab", Xa[second], Xa[first]))
    return K.reshape(first.size, Xa.shape[1] ** 2), first, second  # (no pairs when n = 1)


#: Clarabel settings of a second solve when the relaxation ends "almost solved" with Clarabel's
#: defaults (gap and feasibility ``1e-8``): the value is then ``r*`` to ``1e-7``.
RELAXATION_CLARABEL_RETRY = {"tol_gap_abs": 1e-7, "tol_gap_rel": 1e-7, "tol_feas": 1e-7}


def copositive_relaxation(
    X,
    Y,
    *,
    lam: float,
    patterns: Patterns,
    loss: str | Loss = "squared",
    solver: str | None = None,
    require_optimal: bool = False,
    **solver_opts,
) -> CopositiveRelaxation:
    """Solve the copositive SDP RELAXATION of vector-output ReLU training on ``patterns``.

    Parameters
    ----------
    X : array of shape (n, d)
    Y : array of shape (n, c) or (n,)
        Targets (a vector is treated as one output).
    lam : float
    patterns : Patterns
        Built on this ``X``.
    loss : str or Loss
        Any loss that accepts ``n x c`` predictions (squared, cross_entropy, huber, absolute), or a
        scalar-output loss (logistic, hinge) with one column of targets (``Y`` of shape ``(n,)``).
    solver : str, optional
        An SDP-capable CVXPY solver (default Clarabel; SCS also works).
    require_optimal : bool
        Raise :class:`~cvxnn.errors.SolverError` unless the solver reports ``optimal``
        (default: return the result with a warning; its ``lower_bound`` is then the dual bound, or
        None for a loss without a conjugate).
    **solver_opts
        Passed to :meth:`cvxpy.Problem.solve`.

    Returns
    -------
    CopositiveRelaxation
        ``lower_bound`` is the certified lower bound (see the module docstring).

    Warns
    -----
    InaccurateSolutionWarning
        When the solver stops with another status than ``optimal``: its value is not a bound.

    Raises
    ------
    MemoryBudgetError
        When ``p n (n - 1) / 2`` exceeds :data:`MAX_RELAXATION_ROWS`.
    InfeasibleError, SolverError
        A failed solve, or a non-optimal one with ``require_optimal=True``.
    """
    lam = check_lam(lam)
    require_optimal = check_bool(require_optimal, "require_optimal")
    X = check_X(X)
    Y = check_y(Y, X.shape[0])
    flat = Y.ndim == 1
    if flat:
        Y = Y[:, None]
    if not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    patterns.check_data(X)
    loss_obj = get_loss(loss)
    # a loss of scalar outputs (logistic, hinge, ...) works on one column
    single = not loss_obj.supports_vector
    if single and Y.shape[1] != 1:
        raise InvalidParameterError(
            f"the {loss_obj.name} loss takes one output per sample; Y has {Y.shape[1]} columns "
            "(use cross_entropy or squared for several outputs).")
    # 1-D targets are checked as given (labels for cross-entropy: a LabelError, as in build_program)
    Y = loss_obj.check_targets(Y[:, 0])[:, None] if single or flat else loss_obj.check_targets(Y)
    name = check_cvxpy_solver(solver)
    n, c = Y.shape
    Xa = patterns.design(X)
    d_a, p = patterns.design_dim, patterns.n_patterns
    rows = p * n * (n - 1) // 2
    if rows > MAX_RELAXATION_ROWS:
        raise MemoryBudgetError(
            f"the relaxation needs {rows} elementwise inequalities (p n (n-1)/2 with p={p}, n={n}), "
            f"more than MAX_RELAXATION_ROWS={MAX_RELAXATION_ROWS}; use fewer samples or patterns."
        )
    k = d_a + c
    Z = cp.Variable((p, k, k), name="Z")
    # CVXPY constrains the symmetric part of Z; read every block off it.
    Zs = 0.5 * (Z + cp.transpose(Z, (0, 2, 1)))
    U3 = Zs[:, :d_a, d_a:]  # (p, d_a, c)
    P3 = Zs[:, :d_a, :d_a]  # (p, d_a, d_a)
    Ub = cp.reshape(cp.transpose(U3, (1, 0, 2)), (d_a, p * c), order="C")
    Mc = np.repeat(patterns.mask.astype(float), c, axis=1)
    E = np.tile(np.eye(c), (p, 1))
    fit = cp.multiply(Mc, Xa @ Ub) @ E
    K, first, second = _pair_rows(Xa)
    S = patterns.signs()
    pair_signs = S[first] * S[second]  # (pairs, p)
    Pmat = cp.transpose(cp.reshape(P3, (p, d_a * d_a), order="C"))  # (d_a^2, p)
    constraints = [Z >> 0]
    pairs = None
    if K.shape[0]:
        pairs = cp.multiply(pair_signs, K @ Pmat) >= 0
        constraints.append(pairs)
    trace = 0.5 * cp.sum(cp.multiply(np.broadcast_to(np.eye(k), (p, k, k)), Z))
    lam_param = cp.Parameter(nonneg=True, value=lam, name="lam")
    data_term = loss_obj.cvxpy(fit[:, 0], Y[:, 0]) if single else loss_obj.cvxpy(fit, Y)
    prob = cp.Problem(cp.Minimize(data_term + lam_param * trace), constraints)
    opts = {"canon_backend": cp.SCIPY_CANON_BACKEND, **solver_opts}
    # Z = 0 is feasible: an infeasibility certificate is a numerical failure
    run = run_problem(prob, name, what="the copositive relaxation", warn=False, feasible=True, **opts)
    tolerances = ("tol_gap_abs", "tol_gap_rel", "tol_feas")
    if run.status == "optimal_inaccurate" and name == "CLARABEL" and not any(k in solver_opts for k in tolerances):
        # Clarabel often stalls just short of its default 1e-8 on these SDPs ("almost solved");
        # at RELAXATION_CLARABEL_RETRY it certifies (tutorial 06: 24 samples, 10 patterns)
        logger.info("copositive relaxation: Clarabel ended %s; retrying at %s", prob.status, RELAXATION_CLARABEL_RETRY)
        run = run_problem(prob, name, what="the copositive relaxation", warn=False, feasible=True,
                          **{**opts, **RELAXATION_CLARABEL_RETRY})
    if Z.value is None or not np.all(np.isfinite(Z.value)):
        raise SolverError(f"{name} returned no point (status {prob.status!r}).", status="numerical_error")
    status = run.status
    Zv = 0.5 * (Z.value + np.transpose(Z.value, (0, 2, 1)))
    U = np.transpose(Zv[:, :d_a, d_a:], (1, 0, 2)).copy()
    P = Zv[:, :d_a, :d_a].copy()
    mu = None if pairs is None or pairs.dual_value is None else np.asarray(pairs.dual_value, dtype=np.float64)
    dual_bound = _dual_bound(Xa, patterns.mask, S, Y, loss_obj, lam, U, mu, first, second)
    if status != "optimal":
        advice = ("loosen its tolerances (tol_gap_abs, tol_gap_rel, tol_feas) or try solver='SCS'"
                  if name == "CLARABEL" else "raise the iteration limit or tighten the tolerances, or use Clarabel")
        bound = ("lower_bound is None" if dual_bound is None else
                 f"lower_bound holds the weaker certified dual bound {dual_bound:.6g}")
        msg = (f"{name} stopped the copositive relaxation with status {status!r} (CVXPY: {prob.status!r}): its value "
               f"{prob.value:.6g} is not r* ({bound}); {advice}.")
        if require_optimal:
            raise SolverError(msg, status=status)
        warnings.warn(msg, InaccurateSolutionWarning, stacklevel=2)

    # SVD readout: a ReLU network when every left factor lies in +-K_i (then r* is attained).
    network = net_obj = None
    readout = relu_vector_factors(ConvexModel(activation="relu", patterns=patterns, V=U, W=np.zeros_like(U)),
                                  X, tol=1e-6, rank_tol=1e-6, cone_tol=1e-7)
    if not readout.split_blocks.any():
        network = readout.network
        pred = network.predict(X).reshape(n, c)
        net_obj = float((loss_obj.value(pred[:, 0], Y[:, 0]) if single else loss_obj.value(pred, Y))
                        + lam * network.penalty())
    # The zero network uses no pattern: when its objective L(0, Y) reaches the certified value
    # (lam >= lam_max, where the blocks are solver noise whose SVD factors leave the cones and
    # the readout fails), it attains r* and certifies that the relaxation is tight.
    zero_obj = float(loss_obj.value(np.zeros(n), Y[:, 0]) if single else loss_obj.value(np.zeros((n, c)), Y))
    value = float(prob.value)
    # (tolerance relative to L(0, Y), the scale of every objective of the problem: an absolute
    # floor of 1e-6 read the zero network as optimal for small targets at any lam)
    if (status == "optimal" and (net_obj is None or zero_obj < net_obj)
            and zero_obj <= value + 1e-6 * zero_obj):
        network = ReLUNetwork(W1=np.zeros((X.shape[1], 0)), w2=np.zeros((0, c)),
                              b1=np.zeros(0) if patterns.bias else None)
        net_obj = zero_obj
    logger.debug("copositive relaxation: p=%d, n=%d, c=%d, value %.6g, status %s", p, n, c, prob.value, status)
    return CopositiveRelaxation(
        value=value,
        U=U,
        P=P,
        status=status,
        solver=name,
        solve_time=run.solve_time,
        compile_time=run.compile_time,
        lam=lam,
        loss=loss_obj,
        patterns=patterns,
        network=network,
        network_objective=net_obj,
        extra={"cvxpy_status": prob.status, "n_inequalities": int(K.shape[0] * p)},
        dual_bound=dual_bound,
    )


def _dual_bound(Xa: np.ndarray, mask: np.ndarray, S: np.ndarray, Y: np.ndarray, loss: Loss, lam: float,
                U: np.ndarray, mu: np.ndarray | None, first: np.ndarray, second: np.ndarray) -> float | None:
    """The weak-duality lower bound on ``r*`` of the module docstring at the blocks ``U``
    (``d_a x p x c``) and multipliers ``mu`` (``pairs x p``, clipped at 0; None: zero), float64.

    For ``Z_i`` PSD and feasible, ``L(F(Z)) + lam/2 tr Z >= -L*(theta) + <F*theta + lam/2 I - G*mu, Z>``
    (Fenchel-Young and ``<mu, G(P)> >= 0``), and the inner product is ``>= 0`` when every
    ``lam/2 I + N_i`` is PSD, ``N_i = [[-Q_i, G_i/2], [G_i^T/2, 0]]``. Scaling ``(theta, mu)`` by
    ``s`` scales ``N_i``: ``s <= (lam/2) / max_i(-lambda_min(N_i))``, and the loss picks the best such
    ``s``. None when the loss has no conjugate or is not smooth."""
    if not (loss.smooth and loss.has_conjugate):
        return None
    from .native._losses import make_kernel  # the same dual values as the native certificates

    n, d_a = Xa.shape
    p, c = mask.shape[1], Y.shape[1]
    M = mask.astype(np.float64)
    kernel = make_kernel(loss, Y, np.float64)
    z = np.einsum("np,npc->nc", M, (Xa @ U.reshape(d_a, p * c)).reshape(n, p, c))
    theta = kernel.grad(z)
    k = d_a + c
    N = np.zeros((p, k, k))
    G = np.einsum("nd,np,nc->pdc", Xa, M, theta)
    N[:, :d_a, d_a:] = 0.5 * G
    N[:, d_a:, :d_a] = 0.5 * np.transpose(G, (0, 2, 1))
    if mu is not None and first.size:
        w = 0.5 * np.maximum(mu, 0.0) * (S[first] * S[second])  # (pairs, p)
        W = np.zeros((p, n, n))
        W[:, first, second] = w.T
        W[:, second, first] = w.T
        N[:, :d_a, :d_a] = -np.einsum("na,pnb->pab", Xa, W @ Xa)
    worst = -float(np.linalg.eigvalsh(0.5 * (N + np.transpose(N, (0, 2, 1))))[:, 0].min())
    s_max = np.inf if worst <= 0.0 else 0.5 * lam / worst
    if not np.isfinite(s_max):
        s_max = 1.0  # every G_i = 0: theta itself is feasible
    s = kernel.best_dual_scale(theta, s_max)
    bound = float(kernel.dual_value(s * theta))
    return bound if np.isfinite(bound) else None
