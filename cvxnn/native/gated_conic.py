"""Interior-point finish of small C-GReLU programs that the first-order solvers do not certify.

Why. R-FISTA (:mod:`cvxnn.native.fista`) and the working set's L-BFGS
(:mod:`cvxnn.native.gated_working_set`) are first order: their iterations grow with the
condition number of the restricted design. At small ``lam`` on small data the optimum uses
nearly every block and the program is close to interpolation, and they crawl: on
``load_diabetes`` (70 % split, 100 gates, squared loss) R-FISTA certified ``lam = 0.1`` in 6051
iterations (2.7 s) and ended ``max_iterations`` at ``lam = 0.01`` and ``0.001`` (relative gaps
``1.7e-2`` and ``0.15`` after 10000 iterations), where Clarabel solves the same program in 0.3 to
0.5 s. Those programs are small (``n x p d`` entries of the design, here ``309 x 1100``), which
is exactly where an interior point is cheap.

What. :func:`gated_conic_finish` solves the whole program ``h(sum_i D_i X U_i) + lam sum_i
||U_i||`` (group, column or nuclear norms) by Clarabel (through CVXPY, with the loss's own
CVXPY expression, as the C-ReLU working set's restricted conic fallback does) and returns the
blocks; the caller certifies them with the float64 duality gap of the full program
(:func:`~cvxnn.native.certificates.gated_certificate`), so a finish that Clarabel gets wrong is
never reported as optimal. The caller runs it only on small programs (:data:`MAX_ENTRIES`,
:data:`MAX_COLUMNS`, :data:`MAX_SOC_COLUMNS`), once the working set and R-FISTA have not certified
after :func:`finish_after` iterations in all (when ``max_iter`` allows more). On
linnerud (three outputs, 14 rows, ``lam = 0.001``) they ended ``max_iterations`` at a relative
gap of 0.34 after 2.7 s; Clarabel's semidefinite program took 0.31 s.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from .._validation import check_positive_int
from ..errors import InvalidParameterError
from ._losses import SmoothKernel

__all__ = ["finish_after", "finish_seconds", "gated_conic_finish", "proximal_step", "zero_small_blocks"]

logger = logging.getLogger("cvxnn.native")

#: The finish is tried on programs whose design ``n x (p d c)`` (``c`` outputs) has at most this
#: many entries; nuclear norms (semidefinite cones) also on at most :data:`MAX_COLUMNS` columns,
#: second-order cone programs (scalar output, one-vs-all columns) on at most
#: :data:`MAX_SOC_COLUMNS`.
MAX_ENTRIES = 2_000_000
MAX_COLUMNS = 4000
MAX_SOC_COLUMNS = 20_000
#: The cost model of the switch point, in seconds on the 2-core machine of docs/benchmarks.md
#: (only the ratios matter).
#:
#: Second-order cone programs (scalar output, one-vs-all columns): Clarabel, with CVXPY's
#: compilation, took about ``FINISH_COEF n^FINISH_ROW_EXP cols^FINISH_COL_EXP`` (``cols = p d c``),
#: fitted (least squares on the logarithms) to 15 squared-loss programs from ``100 x 672`` to
#: ``2000 x 1100`` (0.06 to 5.3 s, all within 0.68x to 1.66x of the model). The work grows
#: with the rows and the columns alike, not with ``cols^3``: ``100 x 4100`` took 0.50 s, where
#: ``FINISH_SECONDS cols^3`` predicts 20 s. Exponential cones (logistic, cross-entropy) cost
#: ``EXP_CONE_FACTOR`` times as much (2.1x to 4.9x measured on 7 logistic programs).
#:
#: Nuclear norms (semidefinite cones of size ``d + c`` per block): about ``FINISH_SECONDS
#: cols^3``, 0.31 s at 1200 columns (linnerud, three outputs), 0.8 to 4.2 s at 1056 to 3300
#: (synthetic, three outputs).
#:
#: A first-order iteration took about ``ITERATION_SECONDS + ENTRY_SECONDS n cols``: 0.12 ms on
#: diabetes's ``309 x 1100`` design, 0.37 ms on ``100 x 4100``, 1.0-1.5 ms on ``600 x 3100`` and
#: ``1000 x 2000``.
FINISH_COEF = 2.7e-8
FINISH_ROW_EXP = 1.24
FINISH_COL_EXP = 1.33
EXP_CONE_FACTOR = 3.0
FINISH_SECONDS = 3e-10
ITERATION_SECONDS = 1.5e-4
ENTRY_SECONDS = 5.5e-10
#: The working set and R-FISTA run as many iterations as the finish is estimated to cost (at least
#: AFTER_ITERATIONS) before they hand over: the rule of ski rental, which never costs much more
#: than twice the better of the two choices. (On a design as small as diabetes's an L-BFGS
#: iteration of the working set costs about four R-FISTA iterations, so there the finish comes
#: later than the rule intends.)
AFTER_ITERATIONS = 1000
#: R-FISTA iterations (at most) from a proximal step of Clarabel's point when neither that step
#: nor the truncation of the point's rounding-level parts certifies by itself: its iterates keep
#: the exact zeros that an interior point lacks (a test problem with nuclear norms: 28 neurons
#: from the interior point, of which 8 at 1e-10 of their block, against 20).
POLISH_ITERATIONS = 500
#: Nuclear norms: Clarabel forms a dense Hessian block of ``t x t``, ``t = m (m + 1) / 2``, for
#: each semidefinite cone of size ``m = d + c`` and factors it at every iteration, which the
#: ``cols^3`` model (fitted on cones of size 7 to 14) does not see. Measured (three outputs,
#: 20 rows): cones of size 63, 83 and 103 (8, 4, 4 gates) took 23 s, 29 s and 87 s where the model
#: said 0.9, 0.3 and 0.5 s, and a cone of size 204 (2 gates) asked for 3.5 GB at once and aborted
#: the process. The finish's time is at least ``PSD_SECONDS p t^3`` (fitted 1.4e-10 to 3.6e-10 on
#: those three), and it is not tried when its dense blocks
#: (:func:`cvxnn.backends.cvxpy_adapter.psd_solver_bytes`) exceed the memory budget.
PSD_SECONDS = 2e-10


def finish_seconds(n: int, cols: int, *, semidefinite: bool, exponential: bool = False) -> float:
    """The cost model of :func:`gated_conic_finish` (seconds on the reference machine) for a
    design of ``n`` rows and ``cols`` columns: ``FINISH_SECONDS cols^3`` with semidefinite cones
    (nuclear norms), else ``FINISH_COEF n^FINISH_ROW_EXP cols^FINISH_COL_EXP``, times
    ``EXP_CONE_FACTOR`` for a loss with exponential cones.

    Raises
    ------
    InvalidParameterError
        ``n`` or ``cols`` not a positive integer.
    """
    n, cols = (check_positive_int(v, name, maximum=None) for v, name in ((n, "n"), (cols, "cols")))
    if semidefinite:
        t = FINISH_SECONDS * float(cols) ** 3
    else:
        t = FINISH_COEF * float(n) ** FINISH_ROW_EXP * float(cols) ** FINISH_COL_EXP
    return t * (EXP_CONE_FACTOR if exponential else 1.0)


def finish_after(n: int, d: int, p: int, c: int = 1, *, penalty: str = "nuclear",
                 exponential: bool = False, memory_budget: int | None = None) -> int | None:
    """Iterations (of the working set and R-FISTA together) after which a program of ``n`` rows,
    ``d`` (augmented) features, ``p`` patterns and ``c`` outputs goes to
    :func:`gated_conic_finish`; None when it is too large for it.

    ``penalty`` (``"nuclear"`` or ``"columnwise"``) matters for ``c > 1`` only: nuclear norms
    need semidefinite cones, the columnwise (one-vs-all) penalty and scalar output second-order
    cones. ``exponential``: the loss needs exponential cones (logistic, cross-entropy), which
    make Clarabel slower. ``memory_budget``: bytes the dense blocks of the semidefinite cones
    may take (default :func:`cvxnn.operators.default_memory_budget`; :data:`PSD_SECONDS`).

    Raises
    ------
    InvalidParameterError
        A size that is not a positive integer, or an unknown ``penalty``.
    """
    n, d, p, c = (check_positive_int(v, name, maximum=None)
                  for v, name in ((n, "n"), (d, "d"), (p, "p"), (c, "c")))
    if penalty not in ("nuclear", "columnwise"):
        raise InvalidParameterError(f"penalty must be 'nuclear' or 'columnwise', got {penalty!r}.")
    cols = p * d * c
    semidefinite = c > 1 and penalty == "nuclear"
    if cols > (MAX_COLUMNS if semidefinite else MAX_SOC_COLUMNS) or n * cols > MAX_ENTRIES:
        return None
    seconds = finish_seconds(n, cols, semidefinite=semidefinite, exponential=bool(exponential))
    if semidefinite:
        from ..backends.cvxpy_adapter import psd_solver_bytes
        from ..operators import default_memory_budget

        budget = default_memory_budget() if memory_budget is None else int(memory_budget)
        if psd_solver_bytes(n_cones=p, size=d + c, solver="CLARABEL") > budget:
            return None
        t = (d + c) * (d + c + 1) / 2.0
        seconds = max(seconds, PSD_SECONDS * p * t**3 * (EXP_CONE_FACTOR if exponential else 1.0))
    its = seconds / (ITERATION_SECONDS + ENTRY_SECONDS * n * cols)
    return max(AFTER_ITERATIONS, int(np.ceil(its)))


#: Clarabel settings tried in turn (exponential cones: those of cvxnn.program and its retries).
_SETTINGS = (
    {"max_step_fraction": 0.9, "static_regularization_constant": 1e-7},
    {"max_step_fraction": 0.99, "static_regularization_constant": 1e-8, "equilibrate_enable": False},
)


def gated_conic_finish(Xa: np.ndarray, mask: np.ndarray, kernel: SmoothKernel, lam: float,
                       tol: float, penalty: str = "nuclear") -> np.ndarray | None:
    """Solve the C-GReLU program by Clarabel.

    Parameters
    ----------
    Xa : ndarray of shape (n, d)
        The (augmented) design, float64.
    mask : ndarray of shape (n, p)
        The activation patterns (0/1).
    kernel : SmoothKernel
        The smooth loss with its targets ``(n, c)`` (sample weights included in its loss).
    lam : float
        Regularisation strength (> 0).
    tol : float
        The caller's relative-gap tolerance; Clarabel runs a hundred times tighter (at most
        ``1e-8``, at least ``1e-12``).
    penalty : {"nuclear", "columnwise"}
        Vector output: nuclear norms of the blocks (semidefinite cones) or the norms of their
        columns (one-vs-all); scalar output: the group norms either way.

    Returns
    -------
    ndarray of shape (d, p, c) or None
        The blocks, or None when Clarabel fails on every setting (the caller keeps its point).
        An interior point has no exact zeros: :func:`zero_small_blocks` sets the blocks at its
        rounding level to zero.
    """
    import cvxpy as cp

    n, d = Xa.shape
    p = mask.shape[1]
    y = kernel.y64
    c = y.shape[1]
    M = np.asarray(mask, dtype=np.float64)
    # the blocks side by side: column i c + k of U is output k of block i
    U = cp.Variable((d, p * c))
    if c == 1:
        z = cp.sum(cp.multiply(M, Xa @ U), axis=1)
        y = y[:, 0]
        pen = cp.sum(cp.norm(U, 2, axis=0))
    else:
        S = np.zeros((p * c, c))
        S[np.arange(p * c), np.tile(np.arange(c), p)] = 1.0
        z = cp.multiply(np.repeat(M, c, axis=1), Xa @ U) @ S
        if penalty == "columnwise":
            pen = cp.sum(cp.norm(U, 2, axis=0))
        else:
            pen = cp.sum(cp.hstack([cp.normNuc(U[:, i * c:(i + 1) * c]) for i in range(p)]))
    prob = cp.Problem(cp.Minimize(kernel.loss.cvxpy(z, y) + lam * pen))
    eps = float(min(max(tol * 1e-2, 1e-12), 1e-8))
    for opts in ({},) if kernel.loss.quadratic else _SETTINGS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the certificate of the caller is what counts
                prob.solve(solver="CLARABEL", tol_gap_abs=eps, tol_gap_rel=eps, tol_feas=eps, **opts)
        except Exception as exc:  # noqa: BLE001 - the finish is optional: R-FISTA goes on
            logger.info("gated conic finish failed (%s): %s: %s", opts, type(exc).__name__, exc)
            continue
        if U.value is not None and prob.status in ("optimal", "optimal_inaccurate"):
            return np.asarray(U.value, dtype=np.float64).reshape(d, p, c)
        logger.info("gated conic finish: Clarabel status %s (%s)", prob.status, opts)
    return None


def zero_small_blocks(U: np.ndarray, penalty: str = "nuclear", rtol: float = 1e-7) -> tuple[np.ndarray, bool]:
    """``U`` (``d x p x c``) with the parts at the interior point's rounding level set to zero, and
    whether anything changed: whole blocks (scalar output), columns (one-vs-all) or singular
    values (nuclear norms) at most ``rtol`` times the largest. An interior point has no exact
    zeros, and its blocks have no exact rank either: without this, the network map turns those
    directions into neurons of weight ``1e-9``. At small ``lam`` the dual norms move by the
    design's curvature over ``lam`` times such a change, so the caller keeps the result only if
    it still certifies."""
    U = np.array(U, dtype=np.float64)
    c = U.shape[2]
    tiny = np.finfo(float).tiny
    if c == 1 or penalty == "columnwise":
        nrm = np.sqrt(np.einsum("dpc,dpc->pc", U, U))  # p x c
        small = (nrm > 0) & (nrm <= rtol * max(float(nrm.max(initial=0.0)), tiny))
        U[:, small] = 0.0
        return U, bool(small.any())
    L, sv, Rt = np.linalg.svd(np.transpose(U, (1, 0, 2)), full_matrices=False)  # p x d x k, p x k, p x k x c
    small = (sv > 0) & (sv <= rtol * max(float(sv.max(initial=0.0)), tiny))
    if not small.any():
        return U, False
    sv = np.where(small, 0.0, sv)
    U = np.transpose((L * sv[:, None, :]) @ Rt, (1, 0, 2))
    return np.ascontiguousarray(U), True


def proximal_step(problem, U: np.ndarray) -> np.ndarray | None:
    """One proximal gradient step ``prox_{eta lam R}(U - eta grad f(U))`` of the C-GReLU
    ``problem`` (:class:`~cvxnn.native.fista.GatedProblem`) from ``U``, with ``eta = 1 / L``
    (``L`` the curvature of the loss times a power-iteration estimate of ``||A||^2``). At the
    optimum it is the identity; from an interior point near it, it keeps the point up to
    ``eta`` times the gradient mapping and sets to exactly zero the blocks, columns or singular
    values whose part of the step falls below ``eta lam``. None when the step is not finite."""
    from .fista import initial_step

    eta = initial_step(problem.op, problem.kernel, factor=1.0)
    if not np.isfinite(eta) or eta <= 0:
        return None
    z = problem.op.forward(U)
    G = problem.op.adjoint(problem.kernel.grad(z))
    V, _ = problem.penalty.prox(U - eta * G, eta * problem.lam)
    return V if np.all(np.isfinite(V)) else None
