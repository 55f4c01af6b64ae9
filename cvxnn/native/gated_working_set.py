"""A working set of rank-one atoms for C-GReLU, with quasi-Newton steps on the factored
restricted problem and the full-problem duality gap as the stopping rule.

Why. R-FISTA pays a full product with the implicit design ``A = [D_1 X, ..., D_p X]`` (``2 n d p c``
flops) in every iteration, for all ``p`` blocks of ``d x c`` weights, although at the optimum most
blocks are zero and the others have low rank (on ``load_digits`` with ``c = 10`` outputs, 65 of 100
blocks are active, with rank 1 to 3). This solver works on what is non-zero only.

What. A point is a list of *atoms* ``(i_j, a_j, b_j)``, ``a_j in R^d``, ``b_j in R^c``, and
``U_i = sum_{j: i_j = i} a_j b_j^T``. The factored objective

    F(a, b) = h( sum_j D_{i_j} X a_j b_j^T ) + lam/2 sum_j ( ||a_j||^2 + ||b_j||^2 )

is smooth, and ``lam/2 (||a||^2 + ||b||^2) >= lam ||a b^T||_*`` with equality for balanced factors,
so ``F`` bounds the convex objective ``P(U)`` from above and the two agree at the balanced SVD
factors of ``U`` (the Burer-Monteiro form of the nuclear norm; for scalar output each block is one
atom with a scalar ``b_j``, and for the one-vs-all penalty each atom keeps ``b_j`` on one output
column ``e_k``: both are the group lasso in the same form). One evaluation of ``F`` and its gradient
costs ``4 n d R + 6 n R c`` flops for ``R`` atoms, against ``2 n d p c`` per full product.

The outer loop (a working set, as in celer / skglm, over atoms instead of coordinates):

1. L-BFGS on ``F`` over the current atoms (:mod:`cvxnn.native.lbfgs`), in the coordinates of a
   :class:`BlockMetric` (the diagonal blocks of the Hessian of ``F``, so that atoms of very different
   sizes are equally well scaled), checked every few iterations, and more rarely once no atom is
   missing and the gap falls steadily (``_check_spacing``);
2. a check is one full adjoint ``G = A^T theta`` at ``theta = grad h(z)``: the dual norms
   ``||G_i||_*`` (spectral norms through the ``c x c`` Gram matrices, one batched ``eigh``) give the
   certified duality gap of ``U`` for the *full* program (docs/math.md, "Solvers and
   certificates"); it stops when ``gap <= tol |P|``;
3. a block with ``||G_i||_* > lam`` (zero or not) violates the optimality conditions: a new atom
   ``-sqrt(alpha) u``, ``sqrt(alpha) v`` on the top singular pair ``(u, v)`` of ``G_i`` is a
   descent direction (``alpha`` minimises the quadratic model along it). At a stationary point of
   ``F`` with no violating block, ``U`` is optimal for the convex program;
4. after each round the atoms of every block are re-factored from the SVD of ``U_i`` (balanced,
   minimal rank), which drops atoms that collapsed to zero.

A round ends once the gap of the restricted program (the atoms' subspaces) is small against the
full gap while a block outside it violates (``RESTRICTED_FRACTION``), or once the full gap
stalls. Once no block violates, the blocks are polished by Newton's method on their fixed
singular subspaces (:mod:`cvxnn.native.subspace_polish`): L-BFGS converges the objective long
before its certificate, and the polish closes most of that gap.

GEMMs whose results only steer the solve run in float32 (``FAST``, ``FAST_CHECKS``): the L-BFGS
evaluations of rounds that start above a relative gap of ``FAST_ABOVE``, and the adjoints of the
checks, on a float32 copy of the operator. A check whose float32 estimate would stop the solve is
redone in float64, and only float64 dual values enter the certificate.

Every result is judged by the full-program gap only, so a point that does not certify is
reported as such; the caller then continues with R-FISTA from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import callback_stops
from ..errors import InvalidParameterError, MemoryBudgetError
from ..operators import ImplicitDesign
from ._atoms import DROP_RTOL as DROP_RTOL  # the re-factoring threshold, re-exported
from ._atoms import Atoms, atoms_from_blocks, atoms_penalty, blocks_from_atoms
from ._losses import SmoothKernel
from .lbfgs import minimize_lbfgs
from .prox import BlockPenalty, gram_spectral
from .subspace_polish import polish_subspaces

__all__ = ["Atoms", "BlockMetric", "CheckState", "FactoredObjective", "WorkingSetResult", "atoms_bytes",
           "atoms_from_blocks", "blocks_from_atoms", "solve_gated_working_set"]

logger = logging.getLogger(__name__)

#: L-BFGS iterations between two full checks (one full adjoint each).
CHECK_EVERY = 10
#: Largest spacing of the full checks, in units of CHECK_EVERY (see _check_spacing).
CHECK_SPACING_MAX = 6
#: ... and at most this multiple of the spacing before it.
CHECK_SPACING_GROWTH = 2.0
#: L-BFGS memory.
LBFGS_MEMORY = 20
#: L-BFGS runs in the coordinates of a :class:`BlockMetric` (the diagonal blocks of the Hessian).
PRECONDITION = True
#: ... unless the input dimension is above this (the metric's eigendecompositions cost O(d^3)
#: per block and its R x d x d bases memory).
METRIC_MAX_D = 256
#: Float32 GEMMs in the L-BFGS evaluations of a round (:class:`FactoredObjective`) while the
#: relative gap at its start is above FAST_ABOVE; the checks, the metric and the polish stay in
#: float64, so the certificate is float64 throughout. A round whose float32 L-BFGS stalls (its
#: line search fails, or the gap stops falling with no atom missing) turns it off for the rest
#: of the solve.
FAST = True
FAST_ABOVE = 1e-3
#: Bound on the magnitudes a float32 evaluation may produce (float32 overflows at 3.4e38); an
#: evaluation or check whose a-priori bound exceeds it runs in float64 (tiny ``lam``: the metric
#: scales the factors like ``lam^{-1/2}``).
FLOAT32_SAFE = 1e30
#: The full checks compute the adjoint in float32 (half the time), and confirm in float64 any
#: check whose float32 relative gap is at most ``max(tol, FAST_CHECK_FLOOR)``: only float64 dual
#: values enter the certificate.
FAST_CHECKS = True
FAST_CHECK_FLOOR = 1e-5
#: Outer rounds (atom additions) before giving up.
MAX_ROUNDS = 30
#: The inner solve stops to add atoms once the relative gap has fallen by less than STALL_FACTOR
#: over this many checks.
STALL_CHECKS = 3
STALL_FACTOR = 0.75
#: ... or at once, when the duality gap of the restricted program (the blocks that hold atoms)
#: is below this fraction of the full gap while some block outside it violates its optimality
#: condition: the rest of the gap is then the missing blocks' (the inner tolerance of celer).
RESTRICTED_FRACTION = 0.3
#: Newton polish of the blocks on their singular subspaces (:mod:`cvxnn.native.subspace_polish`)
#: at a check where no block asks for an atom and the point's own relative gap is at most
#: POLISH_START. A polish that does not certify is retried after POLISH_WAIT x ``check_every``
#: L-BFGS iterations when it shrank the gap by POLISH_GAIN or more, else after twice the last
#: wait (a polish costs about 15 L-BFGS iterations on digits; its gain falls when the subspaces
#: it fixes are no better than at the last try). Measured on digits (100 gates): from a relative
#: gap of 5e-3 the polish certifies 7e-5 at ``lam = 0.003 n``, where L-BFGS needed 260 more
#: iterations. A wait of 20 iterations after a good polish, against 10: 12 digits fits 8.12 s
#: against 8.51 s (min of 3 interleaved runs; a wait of 30: 8.28 s), the 76-fit sweep
#: 12.8 s against 13.4 s. An earlier start pays less: nine digits fits (gate seeds 0-2, ``lam``
#: 0.01/0.003/0.001 n) took 6.46 s at POLISH_START 1e-2, 7.29 s at 2e-2 and 7.59 s at 4e-2
#: (medians of 3 interleaved rounds, 2026-12-03), although 2e-2 ran 10% fewer L-BFGS iterations.
POLISH = True
POLISH_START = 1e-2
POLISH_GAIN = 4.0
POLISH_WAIT = 2
#: A polish that does not certify but lowers the objective ends the round, and the next round
#: starts from the polished point (a fresh L-BFGS memory): wine and iris (100 gates) took 140
#: and 120 L-BFGS iterations instead of 193 and 183, digits 230 instead of 257.
POLISH_RESTART = True
#: The working set gives up (and R-FISTA continues from its point) once one evaluation of the
#: factored objective costs more than this fraction of an R-FISTA iteration (about five full
#: products): measured, L-BFGS needs about twice as many iterations as R-FISTA, so atoms pay off
#: only on sparse, low-rank optima (digits: 85 atoms, 0.08; the dense synthetic problem of
#: benchmarks/bench_multiclass.py does not).
MAX_COST_RATIO = 0.25
#: ... but only where one full product of the design (``2 n d p c`` flops) costs at least this
#: many flops (the caller, :func:`cvxnn.native.solve.solve_native`, passes ``max_cost_ratio =
#: inf`` below it). On smaller designs an evaluation costs little more than its Python overhead
#: whatever its flops, and L-BFGS on the atoms needed far fewer iterations than R-FISTA. Measured
#: (tol ``1e-4``, every fit certified either way): iris and wine (a full product of 0.3 and 1
#: Mflop), gate seeds 0-5, 32 and 100 gates, ``lam`` ``1e-3 n`` and ``1e-4 n``: 48 fits took
#: 2.65 s with no cap against 9.46 s with it (17 hand-overs to R-FISTA); a synthetic 5-class set
#: (``n = 1400, d = 20``, 29 Mflop): 0.58 / 2.19 / 2.19 s against 1.17 / 2.85 / 8.16 s at ``lam``
#: ``1e-2 n`` / ``1e-3 n`` / ``1e-4 n``; a synthetic 11-class set (``n = 2100, d = 40``,
#: 189 Mflop) was mixed (3.28 / 5.77 / 13.18 s against 3.07 / 7.03 / 8.81 s), so it keeps the cap.
DENSE_MIN_FLOPS = 1e8
#: Atoms added per round: at most GROW (the largest violations first), and at most a quarter of
#: the atoms the cost cap allows (MAX_COST_RATIO), so that a small design does not reach the cap
#: in two rounds. Measured (min of two interleaved runs each): letting a round add as many atoms
#: as the working set holds (it doubled) took 12 digits fits from 9.81 s to 8.81 s with this cap
#: (2760 against 2910 L-BFGS iterations, on cheaper evaluations), the digits CV from 3.18 s to
#: 2.86 s (a warm-started path step starts with every block violating the smaller lam and added
#: 80-90 atoms at once), and the 76-fit sweep of wine, iris and digits from 17.2 s to 13.6 s with
#: 12 hand-overs to R-FISTA instead of 18. A cap of 24 atoms took 9.50 s, of 48 10.03 s.
GROW = 32
#: The working set also serves scalar output (``c = 1``: every atom spans its block, the group
#: lasso); against R-FISTA with the support polish (``solver="rfista"``), measured (float64, ``tol = 1e-6``,
#: minimum of two alternated runs): the eight planted-teacher sizes of ``bench_native.py``
#: section 1 (``n`` 1000 and 10000, ``d`` 20 and 50, ``p`` 200 and 1000, ``lam = 0.1 lam_max``)
#: 1.07x to 7.96x faster (10000 x 50 x 200 reaches the cost cap and hands over to R-FISTA:
#: 1.07x); breast cancer (logistic, 100 gates, ``lam`` ``1e-1 n`` to ``1e-4 n``) 1.8x to 3.1x;
#: wine's class 0 against the rest 1.6x and 3.0x; diabetes (squared, ``lam`` ``3e-2 n`` to
#: ``1e-3 n``) 0.81x, 0.58x, 1.20x and 1.15x (a 309 x 1100 design: an L-BFGS iteration's
#: Python overhead weighs more than an R-FISTA iteration's).
SCALAR_OUTPUT = True
#: A warm start keeps only its atoms with singular values above this fraction of the largest:
#: the small ones of a solution at a larger ``lam`` (or at a loose tolerance) sit near the
#: saddle at zero, where L-BFGS moves them slowly, and they push the working set towards its
#: cost cap. Measured on the digits CV paths (3 folds x 5 lams): 26.3 s -> 15.6 s at tol=1e-4,
#: 6.2 s -> 4.5 s at 1e-2, the same validation scores.
WARM_RTOL = 1e-2


def atoms_bytes(n: int, p: int, c: int) -> int:
    """Bound on the bytes of the ``n x R`` arrays of the atoms (the mask columns of their
    blocks, their products ``X A`` in float64 and float32, and the new atoms' scores), for as
    many atoms as the program has block columns (``R <= p c``): what
    :func:`cvxnn.native.solve.solve_native` checks against the memory budget before it runs the
    working set (R-FISTA, which checks its own arrays, solves a program that exceeds it)."""
    return 28 * n * p * c


class FactoredObjective:
    """``F(a, b)`` of the module docstring and its gradient on a fixed set of atoms.

    Values and gradients are float64. With :attr:`fast` set, the four GEMMs of an evaluation
    (``X A``, ``HM B`` and the two of the gradient) run in float32, at twice the speed, and the
    loss, the penalty and the sums stay in float64 (see ``FAST_ABOVE``).

    Parameters
    ----------
    op : ImplicitDesign
        The full operator (its design and mask are read; its flop count is updated).
    kernel : SmoothKernel
        The loss (float64).
    lam : float
    atoms : Atoms
        Fixes the blocks and (one-vs-all) the output columns; the factors are the variable.
    fast : bool
        Float32 GEMMs in :meth:`__call__` (:meth:`predict` takes its own flag).
    """

    def __init__(self, op: ImplicitDesign, kernel: SmoothKernel, lam: float, atoms: Atoms, *,
                 fast: bool = False) -> None:
        self.Xa = np.asarray(op.Xa, dtype=np.float64)
        self.Ms = np.asarray(op.mask[:, atoms.blk], dtype=np.float64)  # n x R
        self.fast = bool(fast)
        self._Xa32: np.ndarray | None = None
        self._Ms32: np.ndarray | None = None
        self.kernel = kernel
        self.lam = float(lam)
        self.d, self.R, self.c = self.Xa.shape[1], atoms.size, atoms.B.shape[1]
        self.n = self.Xa.shape[0]
        self.bmask = None
        if atoms.col is not None:
            self.bmask = np.zeros((self.R, self.c))
            self.bmask[np.arange(self.R), atoms.col] = 1.0
        self.flops = 0.0
        self.evals = 0
        self.op = op
        self.blk = atoms.blk
        #: squared row norms of the design (the trace weights of BlockMetric)
        self.row_sq = np.einsum("nd,nd->n", self.Xa, self.Xa)
        #: the largest row norm of the design (bounds ``|X a|`` for the float32 range check)
        self.row_max = float(np.sqrt(self.row_sq.max(initial=0.0)))
        #: the last evaluated point: x, prediction z and loss gradient theta = grad h(z), and
        #: whether z came from float32 GEMMs
        self.last: tuple[np.ndarray, np.ndarray, np.ndarray, bool] | None = None

    def fits_float32(self, A: np.ndarray, B: np.ndarray, theta: np.ndarray | None = None) -> bool:
        """Whether the float32 GEMMs of an evaluation at ``(A, B)`` (and loss gradient
        ``theta``) stay below :data:`FLOAT32_SAFE`: a bound from the largest row norm of ``X``,
        the column norms of ``A`` and the entries of ``B`` (``O((d + c) R)`` flops)."""
        bmax = float(np.abs(B).max(initial=0.0))
        xa = self.row_max * float(np.sqrt(np.einsum("dr,dr->r", A, A).max(initial=0.0)))
        bound = max(xa, xa * bmax * self.R, bmax)
        if theta is not None:
            # theta itself, HM^T theta and X^T ((theta B^T) * M)
            th = float(np.abs(theta).max(initial=0.0))
            bound = max(bound, th, self.n * th * max(xa, self.row_max * self.c * bmax))
        return bool(np.isfinite(bound) and bound <= FLOAT32_SAFE)

    def _design(self, fast: bool) -> tuple[np.ndarray, np.ndarray]:
        if not fast:
            return self.Xa, self.Ms
        if self._Xa32 is None:
            self._Xa32 = self.Xa.astype(np.float32)
            self._Ms32 = self.Ms.astype(np.float32)
        return self._Xa32, self._Ms32

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dR = self.d * self.R
        return x[:dR].reshape(self.d, self.R), x[dR:].reshape(self.R, self.c)

    def predict(self, A: np.ndarray, B: np.ndarray, fast: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(z, HM)`` with ``HM = (X A) * M_S`` (``n x R``, float32 when ``fast``) and
        ``z = HM B`` (float64). Float64 throughout where the float32 range does not suffice
        (:meth:`fits_float32`)."""
        fast = fast and self.fits_float32(A, B)
        X, M = self._design(fast)
        if fast:
            HM = (X @ A.astype(np.float32)) * M
            z = (HM @ B.astype(np.float32)).astype(np.float64)
        else:
            HM = (X @ A) * M
            z = HM @ B
        self.flops += 2.0 * self.n * self.R * (self.d + self.c)
        return z, HM

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        A, B = self.split(x)
        fast = self.fast and self.fits_float32(A, B)
        z, HM = self.predict(A, B, fast)
        h, theta = self.kernel.value_and_grad(z)
        if fast and not self.fits_float32(A, B, theta):
            fast = False
            z, HM = self.predict(A, B, False)
            h, theta = self.kernel.value_and_grad(z)
        f = h + 0.5 * self.lam * float(np.vdot(x, x))
        X, M = self._design(fast)
        th = theta.astype(np.float32) if fast else theta
        Bc = B.astype(np.float32) if fast else B
        gB = HM.T @ th + self.lam * B
        if self.bmask is not None:
            gB *= self.bmask
        gA = X.T @ ((th @ Bc.T) * M) + self.lam * A
        self.flops += 2.0 * self.n * self.R * (self.d + 2 * self.c)
        self.evals += 1
        self.last = (x, z, theta, fast)
        return f, np.concatenate([gA.ravel(), gB.ravel()])


class BlockMetric:
    """A change of variables that scales ``F`` well: L-BFGS runs on coordinates ``xt`` with
    ``a_j = Q_i (s_j * at_j)`` and ``b_j = V_j (t_j * bt_j)``.

    The metric is an approximation of the diagonal blocks of the Hessian of ``F`` at a point,
    one ``d x d`` block per input factor ``a_j`` and one ``c x c`` block per output factor ``b_j``:

        P_aj = w_j X^T D_i X + lam I,    P_bj = sum_n (x_n^T a_j)^2 m_in H_n + lam I,

    with ``H_n`` the ``c x c`` Hessian of the loss at sample ``n``. The exact ``a``-block weighs
    row ``n`` by ``b_j^T H_n b_j``; ``w_j`` is the average of those weights (matched on the trace),
    so that ``X^T D_i X = Q_i diag(e_i) Q_i^T`` is decomposed once per block and operator (cached
    on it, and so shared by the rounds and the warm-started path) and ``s_j = (w_j e_i + lam)^{-1/2}``.
    The ``c x c`` blocks are exact (``eigh``; diagonal for the one-vs-all penalty, whose ``b_j``
    keeps one column). In these coordinates every block of the model Hessian is the identity.

    Atoms of very different sizes have curvatures orders of magnitude apart, which plain L-BFGS
    spends many iterations learning. Measured on digits (``lam = 0.01 n``, from a relative gap of
    ``8e-3`` to ``1e-6``): 500 L-BFGS iterations without, 360 with (350 with the exact weights,
    which cost ``2 n d^2`` flops per atom and round instead of per block and operator).

    Parameters
    ----------
    obj : FactoredObjective
    x : ndarray
        The point at which the weights are taken (the start of a round).
    """

    def __init__(self, obj: FactoredObjective, x: np.ndarray) -> None:
        self.obj = obj
        lam = obj.lam
        A, B = obj.split(x)
        _, HM = obj.predict(A, B)
        D, V = obj.kernel.hessian_parts(HM @ B)
        # the weights b_j^T H_n b_j of the exact a-blocks (n x R), averaged per atom
        W = D @ (B.T ** 2)
        if V is not None:
            W -= (V @ B.T) ** 2
        W *= obj.Ms
        sq = obj.row_sq
        w = (np.maximum(W, 0.0).T @ sq) / np.maximum(obj.Ms.T @ sq, np.finfo(float).tiny)
        Q, e = obj.op.gram_eigh(obj.blk)
        #: per atom: the eigenbasis of X^T D_i X (R x d x d) and the scales s_j (R x d)
        self.Q = Q
        self.s = 1.0 / np.sqrt(w[:, None] * e + lam)
        H2 = HM * HM  # n x R
        if obj.bmask is not None or V is None:
            # one-vs-all (one column per atom) or a separable loss: diagonal output blocks
            diag = H2.T @ D
            if V is not None:
                diag -= H2.T @ (V * V)
            self.Vb = None
            self.t = 1.0 / np.sqrt(np.maximum(diag, 0.0) + lam)  # R x c
        else:
            c = obj.c
            # P_bj = sum_n HM_nj^2 (diag(D_n) - V_n V_n^T): one GEMM with the n x c^2 outer products
            Pb = (H2.T @ D)[:, :, None] * np.eye(c)
            Pb -= (H2.T @ (V[:, :, None] * V[:, None, :]).reshape(obj.n, c * c)).reshape(obj.R, c, c)
            eb, self.Vb = np.linalg.eigh(Pb)
            self.t = 1.0 / np.sqrt(np.maximum(eb, 0.0) + lam)
        obj.flops += 2.0 * obj.n * obj.R * obj.c * (obj.c + 2)

    def to_x(self, xt: np.ndarray) -> np.ndarray:
        """The factors ``x`` of the coordinates ``xt``."""
        At, Bt = self.obj.split(xt)
        A = (self.Q @ (self.s * At.T)[:, :, None])[:, :, 0].T
        B = (self.Vb @ (self.t * Bt)[:, :, None])[:, :, 0] if self.Vb is not None else self.t * Bt
        return np.concatenate([A.ravel(), B.ravel()])

    def from_x(self, x: np.ndarray) -> np.ndarray:
        """The coordinates ``xt`` of the factors ``x``."""
        A, B = self.obj.split(x)
        At = ((A.T[:, None, :] @ self.Q)[:, 0, :] / self.s).T
        Bt = (B[:, None, :] @ self.Vb)[:, 0, :] / self.t if self.Vb is not None else B / self.t
        return np.concatenate([At.ravel(), Bt.ravel()])

    def __call__(self, xt: np.ndarray) -> tuple[float, np.ndarray]:
        """``F`` at the factors of ``xt`` and its gradient in the coordinates ``xt``."""
        f, g = self.obj(self.to_x(xt))
        gA, gB = self.obj.split(g)
        gAt = (self.s * (gA.T[:, None, :] @ self.Q)[:, 0, :]).T
        gBt = self.t * (gB[:, None, :] @ self.Vb)[:, 0, :] if self.Vb is not None else self.t * gB
        return f, np.concatenate([gAt.ravel(), gBt.ravel()])


@dataclass(frozen=True)
class CheckState:
    """What a warm start reuses of the check of a solve's result: the loss gradient at its
    blocks and its adjoint, so that the next solve of a path, at a smaller ``lam`` on the same
    data, needs no check of its start to choose its first atoms.

    It only steers (the first round's atoms, and whether the float32 evaluations are used); no
    certificate reads it. A state from other data can therefore slow a solve down, never make it
    wrong; :func:`solve_gated_working_set` uses it only when ``U`` equals its start point and the
    shapes agree.

    Attributes
    ----------
    U : ndarray of shape (d, p, c)
        The blocks it describes (the solve's result; a reference).
    G : ndarray of shape (d, p, c), float32
        The adjoint ``A^T theta`` (a float32 copy: it only steers).
    theta : ndarray of shape (n, c)
        The loss gradient ``grad h(z)`` at the predictions ``z = A U``.
    loss : float
        ``h(z)``.
    penalty : float
        ``sum_i ||U_i||`` (nuclear norms; one-vs-all: column norms).
    dual_norm : float
        ``max_i ||G_i||_*``.
    """

    U: np.ndarray
    G: np.ndarray
    theta: np.ndarray
    loss: float
    penalty: float
    dual_norm: float


@dataclass
class WorkingSetResult:
    """Outcome of :func:`solve_gated_working_set` (float64 blocks ``d x p x c``)."""

    U: np.ndarray
    primal: float
    dual: float
    iterations: int
    converged: bool
    rounds: int
    atoms: int
    checks: int
    evaluations: int
    restricted_flops: float
    stopped_by_callback: bool = False
    reason: str = ""
    #: Newton polishes on the blocks' subspaces (:mod:`cvxnn.native.subspace_polish`)
    polishes: int = 0
    #: the check of ``U`` (None when ``U`` is not the point of a check), for a warm start
    state: CheckState | None = None


class _Stop(Exception):
    """Raised inside the L-BFGS callback to end the inner solve."""


def _dual_norms(G: np.ndarray, columnwise: bool) -> np.ndarray:
    """``||G_i||_*`` per block (``p``) or, one-vs-all, per column (``p x c``)."""
    if columnwise:
        return np.sqrt(np.einsum("dpc,dpc->pc", G, G))
    if G.shape[2] == 1:
        return np.sqrt(np.einsum("dp,dp->p", G[:, :, 0], G[:, :, 0]))[:, None]
    return gram_spectral(G, vectors=False)[0][:, None]


def _restricted_dual_norms(G: np.ndarray, atoms: Atoms, columnwise: bool) -> np.ndarray:
    """The dual norms of ``G`` on the program restricted to the atoms' subspaces.

    The factored objective can move a block ``U_i`` only within the span of its atoms,
    ``U_i = P S Q^T`` (``P``, ``Q`` orthonormal bases of its input and output factors), so the
    restricted program is the convex program over those subspaces, whose dual norm of ``G_i``
    is ``||P^T G_i Q||_2`` (nuclear norm; for the group lasso forms, where one atom spans its
    block or column, ``||G_i||_2``). Blocks without atoms are not in it. Returns one value per
    block (or one-vs-all column) with atoms.
    """
    if atoms.size == 0:
        return np.zeros(0)
    if columnwise:
        return np.sqrt(np.einsum("dk,dk->k", G[:, atoms.blk, atoms.col], G[:, atoms.blk, atoms.col]))
    if G.shape[2] == 1:
        ub = np.unique(atoms.blk)
        return np.sqrt(np.einsum("dk,dk->k", G[:, ub, 0], G[:, ub, 0]))
    ub, inv, counts = np.unique(atoms.blk, return_inverse=True, return_counts=True)
    order = np.argsort(inv, kind="stable")  # atoms grouped by block
    starts = np.cumsum(counts) - counts
    out = np.empty(ub.size)
    for r in np.unique(counts):
        bsel = np.flatnonzero(counts == r)
        at = order[starts[bsel][:, None] + np.arange(r)]  # (blocks, r) atom indices
        P = np.linalg.qr(np.transpose(atoms.A[:, at], (1, 0, 2)))[0]  # blocks x d x r
        Q = np.linalg.qr(np.transpose(atoms.B[at], (0, 2, 1)))[0]  # blocks x c x r
        M = np.transpose(P, (0, 2, 1)) @ np.transpose(G[:, ub[bsel], :], (1, 0, 2)) @ Q  # blocks x r x r
        out[bsel] = np.linalg.norm(M, ord=2, axis=(1, 2)) if r > 1 else np.abs(M[:, 0, 0])
    return out


def _violations(G: np.ndarray, atoms: Atoms, lam: float, columnwise: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blocks (or one-vs-all columns) that violate the optimality conditions, with the top
    singular triple ``(sigma, u, v)`` of their violating part.

    A zero block ``i`` violates ``||G_i||_* <= lam``. A non-zero nuclear-norm block with
    ``U_i = P S Q^T`` violates when the part of ``G_i`` outside its row and column spaces,
    ``(I - P P^T) G_i (I - Q Q^T)``, has spectral norm above ``lam`` (the subdifferential of the
    nuclear norm, docs/math.md); a new atom there raises its rank (the bases ``P``, ``Q`` come
    from QR factorisations of the block's factors, so the atoms need not be balanced).

    Returns
    -------
    blk, col : ndarray of int
        Blocks and (one-vs-all) output columns of the violations, largest first.
    sigma : ndarray
        Spectral norms of the violating parts (``> lam``).
    u, v : ndarray of shapes (d, k) and (k, c)
        Unit singular vectors.
    """
    d, p, c = G.shape
    if columnwise or c == 1:
        dn = np.sqrt(np.einsum("dpc,dpc->pc", G, G))
        taken = np.zeros((p, c), dtype=bool)
        if atoms.size:
            taken[atoms.blk, atoms.col if atoms.col is not None else 0] = True
        blk, col = np.nonzero((dn > lam) & ~taken)
        sig = dn[blk, col]
        order = np.argsort(-sig)
        blk, col, sig = blk[order], col[order], sig[order]
        u = G[:, blk, col] / sig
        v = np.zeros((blk.size, c))
        v[np.arange(blk.size), col] = 1.0
        return blk, col, sig, u, v
    Gp = np.array(G, dtype=np.float64)
    if atoms.size:
        # project the blocks with atoms onto the complements of their column and row spaces,
        # batched over the blocks with the same number of atoms
        ub, inv, counts = np.unique(atoms.blk, return_inverse=True, return_counts=True)
        order = np.argsort(inv, kind="stable")  # atoms grouped by block
        starts = np.cumsum(counts) - counts
        for r in np.unique(counts):
            bsel = np.flatnonzero(counts == r)
            at = order[starts[bsel][:, None] + np.arange(r)]  # (blocks, r) atom indices
            P = np.linalg.qr(np.transpose(atoms.A[:, at], (1, 0, 2)))[0]  # blocks x d x r
            Q = np.linalg.qr(np.transpose(atoms.B[at], (0, 2, 1)))[0]  # blocks x c x r
            Gi = np.transpose(Gp[:, ub[bsel], :], (1, 0, 2))  # blocks x d x c
            Gi = Gi - P @ (np.transpose(P, (0, 2, 1)) @ Gi)
            Gi = Gi - (Gi @ Q) @ np.transpose(Q, (0, 2, 1))
            Gp[:, ub[bsel], :] = np.transpose(Gi, (1, 0, 2))
    # ||G_i||_2 <= ||G_i||_F: only blocks whose Frobenius norm exceeds lam can violate
    cand = np.flatnonzero(np.einsum("dpc,dpc->p", Gp, Gp) > lam * lam)
    sig_c, V = gram_spectral(Gp[:, cand, :])
    sel = np.flatnonzero(sig_c > lam)
    sel = sel[np.argsort(-sig_c[sel])]
    blk, sig, v = cand[sel], sig_c[sel], V[sel]
    u = np.einsum("dkc,kc->dk", Gp[:, blk, :], v) / sig
    return blk, np.zeros(blk.size, np.intp), sig, u, v


def _new_atoms(blk: np.ndarray, col: np.ndarray, sig: np.ndarray, u: np.ndarray, v: np.ndarray, lam: float,
               columnwise: bool, Xa: np.ndarray, mask: np.ndarray, curvature: float) -> Atoms:
    """Descent atoms ``U_i += -alpha u v^T`` on violating blocks, ``alpha`` the minimiser of the
    quadratic model ``-(sigma - lam) alpha + curvature/2 alpha^2 ||D_i X u||^2`` along it."""
    Xu = (Xa @ u) * mask[:, blk]
    curv = curvature * np.maximum(np.einsum("nk,nk->k", Xu, Xu), np.finfo(float).tiny)
    root = np.sqrt((sig - lam) / curv)
    return Atoms(blk=blk.astype(np.intp), A=-u * root, B=v * root[:, None],
                 col=col.astype(np.intp) if columnwise else None)


def _merge(a: Atoms, b: Atoms) -> Atoms:
    col = None if a.col is None else np.concatenate([a.col, b.col])
    return Atoms(blk=np.concatenate([a.blk, b.blk]), A=np.concatenate([a.A, b.A], axis=1),
                 B=np.concatenate([a.B, b.B], axis=0), col=col)


def _metric(obj: FactoredObjective, x0: np.ndarray) -> BlockMetric | None:
    """The :class:`BlockMetric` of a round, or None where it does not pay: ``PRECONDITION`` off,
    ``d > METRIC_MAX_D``, or bases (cached ones and the round's ``R x d x d``) above an eighth
    of the operator's memory budget."""
    op = obj.op
    if not PRECONDITION or obj.d > METRIC_MAX_D:
        return None
    # an upper bound: the blocks of this round may already be cached
    need = op.gram_cache_bytes + (np.unique(obj.blk).size + obj.R) * (obj.d + 1) * obj.d * 8
    if need > op.memory_budget / 8:
        return None
    return BlockMetric(obj, x0)


def _check_spacing(prev: tuple[int, float] | None, cur: tuple[int, float], tol: float, check_every: int,
                   violations: Callable[[], tuple[np.ndarray, ...]]) -> int:
    """L-BFGS iterations until the next full check.

    ``check_every``, unless the working set is complete (no block violates its optimality
    condition, so a check can only certify) and the gap falls steadily: then half of the
    iterations that the rate between the last two checks predicts until ``tol``, at most
    ``CHECK_SPACING_MAX`` times ``check_every``. The approach to ``tol`` is geometric, so a
    solve that needs ``k`` iterations more pays about ``log2(k / check_every)`` checks, not
    ``k / check_every`` (a check is one full adjoint, 3 to 5 evaluations of ``F``).
    """
    if prev is None:
        return check_every
    (i0, r0), (i1, r1) = prev, cur
    if not (0.0 < r1 < r0) or i1 <= i0:
        return check_every
    rate = np.log(r1 / r0) / (i1 - i0)  # < 0: log gap per iteration
    remaining = np.log(tol / r1) / rate
    # at most twice the last spacing: the rate between two early checks of a round can be far
    # below the rate that follows (the new atoms still growing), and one long spacing then
    # overshoots ``tol`` by many iterations
    spacing = int(min(0.5 * remaining, CHECK_SPACING_MAX * check_every, CHECK_SPACING_GROWTH * (i1 - i0)))
    if spacing <= check_every or violations()[0].size:
        return check_every
    return spacing


def _atoms_forward(op: ImplicitDesign, at: Atoms) -> np.ndarray:
    """``sum_j D_{i_j} X a_j b_j^T`` (float64): ``2 n R (d + c)`` flops for ``R`` atoms, against
    ``2 n d p c`` for the full forward product of their blocks."""
    R, (d, p, c) = at.size, (op.d, op.p, op.c)
    if R * (d + c) >= d * p * c:
        return op.forward(blocks_from_atoms(at, d, p, c))
    Xa = np.asarray(op.Xa, dtype=np.float64)
    op.flops += 2.0 * op.n * R * (d + c)
    return ((Xa @ at.A) * op.mask[:, at.blk]) @ at.B


def _float32_twin(op: ImplicitDesign) -> ImplicitDesign | None:
    """A float32 copy of ``op`` for the checks (cached on it, so a path shares it), or None when
    it does not fit in what ``op``'s memory budget leaves."""
    twin = getattr(op, "_float32_twin", None)
    if twin is None:
        try:
            twin = ImplicitDesign(op.Xa, op.mask, n_outputs=op.c, dtype=np.float32,
                                  memory_budget=op.memory_budget - op.bytes_held)
        except MemoryBudgetError:
            return None
        op._float32_twin = twin
    return twin


def _stop_checked(counter: dict[str, Any], checked: tuple) -> None:
    """End an inner L-BFGS solve at a point that has just been checked (``checked``: its
    gradient, blocks, objective and own gap), so that the round needs no other check."""
    counter["checked"] = checked
    raise StopIteration


def solve_gated_working_set(
    op: ImplicitDesign,
    kernel: SmoothKernel,
    lam: float,
    U0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    penalty: str = "nuclear",
    callback: Callable[[dict[str, Any]], Any] | None = None,
    max_rounds: int = MAX_ROUNDS,
    check_every: int | None = None,
    max_cost_ratio: float = MAX_COST_RATIO,
    start_state: CheckState | None = None,
) -> WorkingSetResult:
    """C-GReLU by a working set of rank-one atoms and L-BFGS on the factored restricted problem.

    Parameters
    ----------
    op : ImplicitDesign
        The full operator, float64. A float32 copy for the checks is cached on it (when its
        memory budget has room), so the solves of a path on one operator share it.
    kernel : SmoothKernel
        The smooth loss, float64.
    lam : float
        Regularisation strength (> 0).
    U0 : ndarray of shape (d, p, c)
        Start point (zeros or a warm start).
    tol : float
        Relative duality-gap tolerance of the full program.
    max_iter : int
        Limit on the L-BFGS iterations of all rounds together.
    penalty : {"nuclear", "columnwise"}
        As in :class:`~cvxnn.native.prox.BlockPenalty`.
    callback : callable, optional
        Called at every check with ``iteration``, ``objective``, ``dual``, ``gap``, ``rel_gap``,
        ``step`` (NaN) and ``round``; returning True stops the solve. With ``FAST_CHECKS`` the
        ``dual`` (and so the gap) of a check that was not confirmed in float64 is the float32
        estimate; the result's ``dual`` is always a float64 value.
    max_rounds : int
        Outer rounds (atom additions).
    check_every : int, optional
        L-BFGS iterations between two full checks (default ``CHECK_EVERY``).
    max_cost_ratio : float
        Give up (``reason="dense"``) when one evaluation of the factored objective costs more
        than this fraction of an R-FISTA iteration (``MAX_COST_RATIO``; ``inf``: never).
    start_state : CheckState, optional
        The check of ``U0`` from the solve that returned it (its :attr:`WorkingSetResult.state`),
        on the same data: when its ``U`` equals ``U0``, the first round chooses its atoms from it
        instead of a check of ``U0`` (one full adjoint less per step of a warm-started path). It
        only steers; the first certificate comes from a check of this solve.

    Returns
    -------
    WorkingSetResult
        The best certified point seen (smallest gap); ``converged`` iff its relative gap is at
        most ``tol``. Its dual value is valid for the full program.
    """
    if op.dtype != np.float64:
        raise ValueError("the gated working set runs in float64")
    if start_state is not None and not isinstance(start_state, CheckState):
        raise InvalidParameterError(
            f"start_state must be a CheckState (a warm start's check_state), got {type(start_state).__name__}.")
    d, p, c = op.d, op.p, op.c
    check_every = CHECK_EVERY if check_every is None else int(check_every)
    columnwise = penalty == "columnwise" and c > 1
    BlockPenalty(penalty)  # validates the name
    lam = float(lam)
    tiny = np.finfo(float).tiny
    atoms = atoms_from_blocks(U0, columnwise=columnwise, rtol=WARM_RTOL)
    state: dict[str, Any] = {"iters": 0, "checks": 0, "best": None, "stop": False, "callback": False,
                             "best_D": -np.inf, "rel_hist": [], "G": None, "theta": None, "polishes": 0,
                             "own_rel": np.inf, "polish_it": -np.inf, "polish_wait": check_every,
                             "fast_off": False, "est_D": -np.inf}
    op32 = _float32_twin(op) if FAST_CHECKS else None
    xa64 = np.asarray(op.Xa, dtype=np.float64)
    row_max = float(np.sqrt(np.einsum("nd,nd->n", xa64, xa64).max(initial=0.0)))
    flops32 = op32.flops if op32 is not None else 0.0
    restricted_flops = 0.0
    evaluations = 0

    def check(x: np.ndarray | None, obj: FactoredObjective | None, at: Atoms, record: bool = True) -> float:
        """Full check at the factored point ``x``: certificate, best point; returns rel gap.
        ``record=False`` (a polished point): only the best primal and dual are updated, not the
        state of the rounds (gradient, atoms, gap history)."""
        if obj is not None and x is not None:
            A, B = obj.split(x)
            at = Atoms(blk=at.blk, A=A, B=B, col=at.col)
            last = obj.last
            if last is not None and not last[3] and (last[0] is x or np.array_equal(last[0], x)):
                z, theta = last[1], last[2]
            else:
                z, _ = obj.predict(A, B)
                theta = kernel.grad(z)
        else:
            z = _atoms_forward(op, at) if at.size else np.zeros((op.n, c))
            theta = kernel.grad(z)
        U = blocks_from_atoms(at, d, p, c)
        hval, pen = kernel.value(z), atoms_penalty(at, columnwise)
        P = hval + lam * pen
        best = state["best"]
        if best is None or P < best[0]:
            state["best"] = (P, U)
        Pb = state["best"][0]
        # float32 adjoints only for gradients well inside its range
        exact = op32 is None or not float(np.abs(theta).max(initial=0.0)) * op.n * row_max <= FLOAT32_SAFE
        while True:
            G = op.adjoint(theta) if exact else op32.adjoint(theta).astype(np.float64)
            dn = _dual_norms(G, columnwise)
            dmax = float(dn.max(initial=0.0))
            s = kernel.best_dual_scale(theta, np.inf if dmax == 0.0 else lam / dmax)
            D = kernel.dual_value(s * theta)
            if exact:
                # a float64 dual value: a certified lower bound
                state["best_D"] = max(state["best_D"], D)
                state["est_D"] = state["best_D"]
                break
            # a float32 one is an estimate (rounding can put s * theta just outside the dual
            # feasible set): it steers the rounds, and a float64 check confirms any stop
            state["est_D"] = max(state["est_D"], D)
            if (Pb - state["est_D"]) / max(abs(Pb), tiny) > max(tol, FAST_CHECK_FLOOR):
                break
            exact = True
        state["checks"] += 1
        gap = Pb - state["est_D"]
        rel = gap / max(abs(Pb), tiny)
        if rel > tol:
            # the dual of the restricted program: theta scaled to the blocks that hold atoms only
            # (a certified point ends the solve and needs none)
            dn_r = _restricted_dual_norms(G, at, columnwise)
            dmax_r = float(dn_r.max(initial=0.0))
            D_r = D if dmax_r == dmax else kernel.dual_value(
                kernel.best_dual_scale(theta, np.inf if dmax_r == 0.0 else lam / dmax_r) * theta)
            state["gap_r"] = P - D_r
        else:
            state["gap_r"] = float("nan")
        state["last_own"] = (P - D) / max(abs(P), tiny)  # this point's own relative gap
        state["last_check"] = (G, U, P, state["last_own"])
        if state["best"][1] is U:  # what a warm start from this point can reuse
            state["best_check"], state["best_check_U"] = (G, theta, hval, pen, dmax), U
        if record:
            adopt(at, rel, state["last_check"])
        logger.debug("working set check %d (it %d): %d atoms, P %.10e, gap %.3e, rel %.3e, gap_r %.3e", state["checks"],
                     state["iters"], at.size, Pb, gap, rel, state["gap_r"])
        if callback is not None:
            info = {"iteration": state["iters"], "objective": Pb, "dual": state["est_D"], "gap": gap,
                    "rel_gap": rel, "step": float("nan"), "round": state["round"]}
            if callback_stops(callback(info)):
                state["callback"] = True
        return rel

    def adopt(at: Atoms, rel: float, checked: tuple) -> None:
        """Make a checked point (``checked``: gradient, blocks, objective and own gap) the state
        of the rounds, with the atoms ``at``, and reset the cache of violations."""
        G, U, P, own = checked
        state["G"], state["atoms"], state["U"], state["P_cur"] = G, at, U, P
        state["own_rel"] = own
        # violations of the optimality conditions the current atoms cannot fix (computed on
        # demand by violations(): only they make a stalled inner solve stop to add atoms)
        state["violations"] = None
        state["rel_hist"].append(rel)

    def violations() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The violations at the last check (cached; one projection and eigh per block)."""
        if state["violations"] is None:
            state["violations"] = _violations(state["G"], state["atoms"], lam, columnwise)
        return state["violations"]

    def should_polish(r: float) -> bool:
        return (POLISH and r > tol and state["own_rel"] <= POLISH_START
                and state["iters"] - state["polish_it"] >= state["polish_wait"] and not violations()[0].size)

    def polish(r: float) -> float:
        """Newton polish of the last checked point on its singular subspaces, then a full check
        of the result (it can only improve the best primal and dual); returns the rel gap."""
        state["polish_it"] = state["iters"]
        state["polishes"] += 1
        U2 = polish_subspaces(op, kernel, lam, state["U"], columnwise=columnwise)
        if U2 is None:
            return r
        r2 = check(None, None, atoms_from_blocks(U2, columnwise=columnwise), record=False)
        state["polish_wait"] = POLISH_WAIT * check_every if r2 * POLISH_GAIN <= r else 2 * state["polish_wait"]
        logger.debug("working set polish %d: rel gap %.3e -> %.3e", state["polishes"], r, r2)
        return r2

    state["round"] = 0
    if (start_state is not None and start_state.U.shape == U0.shape and start_state.G.shape == U0.shape
            and start_state.theta.shape == (op.n, c) and np.array_equal(start_state.U, U0)):
        # the atoms of the first round from the check of U0 in the solve that returned it (its
        # gradient and adjoint do not depend on lam): an estimate of the gap and the violations,
        # no certificate
        st = start_state
        s0 = kernel.best_dual_scale(st.theta, np.inf if st.dual_norm == 0.0 else lam / st.dual_norm)
        P0 = st.loss + lam * st.penalty
        rel = (P0 - kernel.dual_value(s0 * st.theta)) / max(abs(P0), tiny)
        adopt(atoms, rel, (st.G.astype(np.float64), U0, P0, rel))
        if rel <= tol:  # the start itself (not its pruned atoms) may be optimal: only a check can say so
            rel = check(None, None, atoms_from_blocks(U0, columnwise=columnwise))
    else:
        rel = check(None, None, atoms)
    reason = "max_rounds"
    for rnd in range(1, max_rounds + 1):
        state["round"] = rnd
        if rel <= tol:
            reason = "certified"
            break
        if state["callback"]:
            reason = "callback"
            break
        if state["iters"] >= max_iter:
            reason = "max_iter"
            break
        # grow: atoms on the blocks (columns) whose dual norm exceeds lam, the largest first
        atoms = state["atoms"]
        blk, col, sig, u, v = violations()
        if blk.size:
            grow = GROW
            if np.isfinite(max_cost_ratio):
                grow = max(1, min(GROW, int(max_cost_ratio * 5.0 * d * p * c / (4.0 * d + 6.0 * c)) // 4))
            keep = slice(0, grow)
            new = _new_atoms(blk[keep], col[keep], sig[keep], u[:, keep], v[keep], lam, columnwise, op.Xa,
                             op.mask, kernel.curvature)
            atoms = _merge(atoms, new)
            logger.debug("working set round %d: %d violations (largest %.3e lam), %d added", rnd, blk.size,
                         sig[0] / lam, new.size)
        if atoms.size == 0:
            reason = "empty"
            break
        ratio = atoms.size * (4.0 * d + 6.0 * c) / (5.0 * d * p * c)
        if ratio > max_cost_ratio:
            # the optimum is not sparse (or not of low rank) enough for atoms to pay off
            reason = "dense"
            break
        obj = FactoredObjective(op, kernel, lam, atoms, fast=FAST and rel > FAST_ABOVE and not state["fast_off"])
        x0 = np.concatenate([atoms.A.ravel(), atoms.B.ravel()])
        metric = _metric(obj, x0)
        to_x = metric.to_x if metric is not None else (lambda xt: xt)
        hist0 = len(state["rel_hist"])
        counter = {"it": 0, "next": check_every, "prev": None}

        def inner_callback(xk, obj=obj, atoms=atoms, counter=counter, hist0=hist0, to_x=to_x):
            counter["it"] += 1
            state["iters"] += 1
            if state["iters"] >= max_iter:
                raise StopIteration
            it = counter["it"]
            if it < counter["next"]:
                return
            r = check(to_x(xk), obj, atoms)
            here = state["last_check"]  # this iterate's check
            if r <= tol or state["callback"]:
                _stop_checked(counter, here)
            if should_polish(r):
                if polish(r) <= tol:
                    _stop_checked(counter, state["last_check"])  # the polished point's
                if POLISH_RESTART and state["best"][0] < state["P_cur"]:
                    state["restart"] = True
                    _stop_checked(counter, state["last_check"])
            # the restricted program is solved well enough: the gap is the missing blocks'
            if (state["gap_r"] <= RESTRICTED_FRACTION * r * max(abs(state["best"][0]), tiny)
                    and violations()[0].size):
                _stop_checked(counter, here)
            hist = state["rel_hist"][hist0:]
            # stalled while some block violates its optimality condition: add atoms for it
            if (len(hist) > STALL_CHECKS and hist[-1] > STALL_FACTOR * hist[-1 - STALL_CHECKS]
                    and violations()[0].size):
                _stop_checked(counter, here)
            counter["next"] = it + _check_spacing(counter["prev"], (it, r), tol, check_every, violations)
            counter["prev"] = (it, r)

        res = minimize_lbfgs(metric if metric is not None else obj, metric.from_x(x0) if metric is not None else x0,
                             memory=LBFGS_MEMORY, max_iter=max(1, max_iter - state["iters"]), callback=inner_callback)
        restricted_flops += obj.flops
        evaluations += obj.evals
        restarted = bool(state.get("restart"))
        state["restart"] = None
        rel_before = rel
        checked = counter.get("checked")
        if checked is not None:
            # the round ended at a checked point (the last L-BFGS iterate, or the polished point
            # that the next round restarts from): re-factor its blocks and keep its check (the
            # atoms span the same blocks, up to the collapsed atoms the re-factoring drops)
            # instead of repeating it; a certified point ends the solve, and needs no atoms
            Pb = state["best"][0]
            rel = (Pb - state["est_D"]) / max(abs(Pb), tiny)
            if rel > tol:
                atoms = atoms_from_blocks(checked[1], columnwise=columnwise)
            adopt(atoms, rel, checked)
        else:
            A, B = obj.split(to_x(res.x))
            # re-factor every block from its SVD: balanced, minimal rank (drops collapsed atoms)
            U = blocks_from_atoms(Atoms(blk=atoms.blk, A=A, B=B, col=atoms.col), d, p, c)
            atoms = atoms_from_blocks(U, columnwise=columnwise)
            rel = check(None, None, atoms)
        logger.info("working set round %d: %d L-BFGS its (%s), %d atoms, rel gap %.3e", rnd, counter["it"],
                     res.message, atoms.size, rel)
        if obj.fast and (res.message == "line search failed" or (
                rel > tol and rel > STALL_FACTOR * rel_before and not violations()[0].size and not restarted)):
            # float32 may have reached its precision: the next rounds run in float64
            state["fast_off"] = True
            logger.debug("working set: float32 evaluations stalled (%s); float64 from here", res.message)
        elif rel > tol and rel > STALL_FACTOR * rel_before and not violations()[0].size and not restarted:
            # L-BFGS has reached the precision of F and no block asks for an atom: the rest is
            # beyond this method (the caller continues with R-FISTA), unless a polish certifies
            if should_polish(rel):
                rel = polish(rel)
            reason = "certified" if rel <= tol else "stalled"
            break
    else:
        reason = "certified" if rel <= tol else "max_rounds"
    if state["best"] is None:  # no check yet (a start state and no iteration allowed)
        check(None, None, atoms, record=False)
    op.flops += restricted_flops + (op32.flops - flops32 if op32 is not None else 0.0)
    P, U = state["best"]
    bc = state.get("best_check")
    check_state = None
    if bc is not None and state["best_check_U"] is U:
        G, theta, hval, pen, dmax = bc
        check_state = CheckState(U=U, G=G.astype(np.float32), theta=theta, loss=float(hval), penalty=float(pen),
                                 dual_norm=dmax)
    gap = P - state["best_D"]
    rel = gap / max(abs(P), tiny)
    return WorkingSetResult(U=U, primal=P, dual=state["best_D"], iterations=state["iters"],
                            converged=rel <= tol and not state["callback"], rounds=state["round"],
                            atoms=int(state["atoms"].size), checks=state["checks"], evaluations=evaluations,
                            restricted_flops=restricted_flops, stopped_by_callback=state["callback"],
                            reason=reason, polishes=state["polishes"], state=check_state)
