"""The set of all optimal convex models at a given ``lam`` ([MP23]).

``docs/math.md``, "Optimal set, minimal models and pruning".

For a differentiable loss that is strictly convex in the fit (squared, logistic) every optimum
has the same fit ``yhat`` and residual ``r``, hence the same ``q_k``. With the equicorrelation
set ``S`` and normalised directions ``q^_k = lam q_k / ||q_k||``, the optimal set is the polytope

    P = { alpha in R^S : alpha >= 0,  sum_{k in S} alpha_k s_k D_k X q^_k = yhat }

mapped to weights by ``theta_k = alpha_k q^_k`` (``theta_j = 0`` for ``j not in S``), so
``||theta_k|| = lam alpha_k`` and the penalty is ``sum_k ||theta_k|| = lam sum_k alpha_k``. Cone feasibility and
complementarity hold for every ``alpha >= 0`` because ``q_k`` is chosen in ``K_k`` with
``rho_k . Xt_k q_k = 0`` (see :func:`~cvxnn.optimality.kkt.recover_duals`).

Numerics. The equality system is reduced to its numerical row space by an SVD (relative
tolerance ``rank_tol``); LPs are solved by HiGHS (:func:`scipy.optimize.linprog`) on variables
scaled so every column has unit norm. The reference point has ``alpha_k = ||theta_k|| / lam``,
polished by a bounded (``alpha >= 0``) Tikhonov least-squares correction to reproduce the
solver's fit; the equalities are the rank-``r`` truncation of the fit equations with that
point's right-hand side, so the polytope is never empty even for an inexact solution; the
mismatch with the solver's fit is reported as :attr:`OptimalSet.fit_mismatch`.

Two tolerances. ``rank_tol`` (about ten times the KKT accuracy of the solution) decides
:attr:`OptimalSet.dimension`, :meth:`OptimalSet.weight_ranges` and the other LP answers: a
direction whose singular value is below it is a dependency *at the accuracy of the solution*.
Such a direction need not be exactly null: the fit moves by ``sigma`` per unit step along it.
:meth:`OptimalSet.sample` moves only along directions that keep every point within ``fit_tol``
(relative, default ``1e-7``) of the reference fit; :attr:`OptimalSet.sampling_dimension` counts
them.

Why the sampler checks its directions on the columns. A direction of the truncated system
(singular values ``<= rank_tol * s_max`` set to zero) is exactly null for the truncation but not
for the columns: a near neuron split (two blocks of one sign whose directions ``q_k`` differ by
about ``sqrt(KKT accuracy)``) gives a small singular value that the truncation counts as zero, and
an O(1) step along it moves the fit by ``sigma`` per unit. The sampler therefore measures every
candidate direction on the actual columns, bounds the fit change over the whole polytope with
LPs (see :meth:`OptimalSet._sampler`), and recomputes each point from its coordinates in the
sampling basis.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog, lsq_linear

from .._validation import as_generator, check_nonnegative_float, check_positive_int, check_y
from ..activations import get_activation
from ..errors import (
    InaccurateSolutionWarning,
    InvalidParameterError,
    NonFiniteError,
    PatternMismatchError,
    ShapeError,
    SolverError,
)
from ..losses import Loss
from ..solution import ConvexModel
from .kkt import (
    DEFAULT_ACTIVE_TOL,
    DEFAULT_EQUICORRELATION_TOL,
    DualCertificate,
    recover_duals,
    solution_from_blocks,
)

__all__ = ["DEFAULT_FIT_TOL", "DEFAULT_RANK_TOL", "OptimalSet", "min_norm_solution", "optimal_set"]

logger = logging.getLogger(__name__)

#: Relative singular-value tolerance for rank decisions (``s <= DEFAULT_RANK_TOL * s_max`` is zero).
DEFAULT_RANK_TOL = 1e-9
#: Every point drawn by :meth:`OptimalSet.sample` reproduces the reference fit to this relative
#: accuracy: ``||columns @ alpha - rhs||_2 <= DEFAULT_FIT_TOL * max(1, ||rhs||_2)``.
DEFAULT_FIT_TOL = 1e-7
#: The polished reference point must reproduce the solver's fit to this relative accuracy, or
#: :func:`optimal_set` warns (:class:`~cvxnn.errors.InaccurateSolutionWarning`): the polytope is
#: then a set of points near the optimal fit, not of optima. (Clarabel's solutions of small
#: squared-loss programs, through ``build_program(...).solve()``, were measured at 1e-5 to 2e-4.)
FIT_MISMATCH_WARN = 1e-3
#: ... and beyond this one it raises :class:`~cvxnn.errors.SolverError`: the points it would
#: describe have other fits and objectives (measured: a Clarabel logistic C-ReLU solution with status
#: "optimal" whose polished reference missed its fit by 54 % gave "optimal" networks with 6.5x the
#: optimal objective).
FIT_MISMATCH_MAX = 1e-2
#: :func:`optimal_set` warns (:class:`~cvxnn.errors.InaccurateSolutionWarning`) when the KKT
#: accuracy of the solution (the larger of ``kkt_accuracy``, the largest ``| ||q_k|| / lam - 1 |``
#: over active blocks and dual infeasibility ``||q_k|| / lam - 1 > 0`` over all, and the share of
#: the objective in non-zero blocks below the equicorrelation level, ``kkt_report``'s
#: ``spurious``: an optimum analysed above its ``lam`` has only these) exceeds this ...
KKT_ACCURACY_WARN = 1e-3
#: ... and raises :class:`~cvxnn.errors.SolverError` beyond this one: the point is not an
#: optimum of the program (measured: Clarabel solutions 7e-8 to 9e-5 and native ones below 1e-6
#: on breast cancer, diabetes and iris subsamples; a 5-iteration solve 15, an exact optimum at
#: ``lam`` analysed at ``lam / 2`` 1.0, both of which built a polytope of points 8-34 % above the
#: optimum before this check).
KKT_ACCURACY_MAX = 1e-2
#: Relative Tikhonov weight of the polish of the reference point (see :func:`optimal_set`).
_POLISH_DAMPING = 1e-4
#: A coordinate is *free* (positive somewhere on ``P``) when its LP maximum exceeds this
#: fraction of the largest coordinate of the reference point.
_FREE_TOL = 1e-7


#: :meth:`OptimalSet.contains` accepts, by default, deviations up to this multiple of the
#: accuracy of the set's reference (its direction error, fit mismatch and KKT accuracy), and at
#: most CONTAINS_MAX_TOL. A native solve certified at a relative gap of ``1e-6`` leaves
#: directions and fit accurate to about ``1e-3`` (the square root: the gap is quadratic in the
#: fit), so a fixed ``1e-6`` refused the solution a set was built from in 10 of 12 random C-GReLU
#: problems; 3 times the accuracy accepted it in all 12 and refused every model 1 % off it
#: (a margin of 10 accepted 9 of them: objectives 0.3 % above the optimum).
CONTAINS_MARGIN = 3.0
CONTAINS_MAX_TOL = 1e-2
#: ... and at least this multiple of the deviation of the reference itself (:meth:`OptimalSet.deviation`
#: of the model the set was built from), so that a set accepts its own reference (at most
#: CONTAINS_MAX_TOL). Without it a Clarabel solution whose spurious block (3e-4 of the largest,
#: ``||q_k|| / lam = 0.99995``) or cancelling contributions put its fit 3e-4 off was refused by
#: the set built from it (3 of 160 random real-data instances).
REFERENCE_MARGIN = 2.0


@dataclass(eq=False)
class OptimalSet:
    """The polytope of all optima (see the module docstring).

    Attributes
    ----------
    reference : ConvexModel
        The model the set was built from.
    certificate : DualCertificate
        Residual and multipliers used.
    blocks : ndarray of int, shape (k,)
        The equicorrelation set ``S`` (indices in :func:`~cvxnn.optimality.kkt.block_layout`).
    directions : ndarray, shape (d_a, k)
        ``q^_k`` (norm ``lam``).
    columns : ndarray, shape (n, k)
        ``s_k D_k X q^_k``: the fit is ``columns @ alpha``.
    rhs : ndarray, shape (n,)
        ``columns @ alpha_ref``: the common fit ``yhat`` (as represented by the directions).
    alpha_ref : ndarray, shape (k,)
        Coordinates of the reference model (a point of ``P``): ``||theta_k|| / lam``, corrected by
        a minimum-norm least-squares step on their support so that the fit matches the solver's.
    fit_mismatch : float
        ``||rhs - fit(reference)|| / max(1, ||fit(reference)||)``.
    lam : float
    rank_tol : float
        Relative tolerance of the rank decisions behind :attr:`dimension` and the LPs
        (see :func:`optimal_set`).
    fit_tol : float
        Relative fit accuracy guaranteed for every point drawn by :meth:`sample`.
    direction_error : float
        ``max_k || theta_k/||theta_k|| - q_k/||q_k|| ||`` over active blocks of the reference.
    kkt_accuracy : float
        ``max(max_{k active} | ||q_k|| / lam - 1 |, dual infeasibility)``: how exactly the
        residual satisfies the KKT conditions.
    design : ndarray of shape (n, d_a), optional
        The training design ``X_a`` (with its column of ones under ``bias``): how a ReLU model on
        other patterns is matched to the program's (:meth:`contains`).
    block_scale : float
        The size that :meth:`contains` measures block deviations against: ``||theta||_F`` of the
        reference; for the zero optimum (``lam >= lam_max``: every ``alpha_k = 0``) the objective
        over ``lam``, the largest penalty any point with no larger objective can have. 0 (unset)
        falls back to ``||theta||_F``.
    reference_error : float
        :meth:`deviation` of the reference itself: how far the model the set was built from lies
        from the set (its blocks outside ``S`` that the KKT conditions call spurious, the
        deviation of its blocks from the directions ``q^_k``, the fit of its coordinates). Twice
        it bounds the default tolerance of :meth:`contains` from below (up to ``CONTAINS_MAX_TOL``),
        so that a set accepts its own reference.
    """

    reference: ConvexModel
    certificate: DualCertificate = field(repr=False)
    blocks: np.ndarray
    directions: np.ndarray = field(repr=False)
    columns: np.ndarray = field(repr=False)
    rhs: np.ndarray = field(repr=False)
    alpha_ref: np.ndarray
    fit_mismatch: float
    lam: float
    rank_tol: float = DEFAULT_RANK_TOL
    fit_tol: float = DEFAULT_FIT_TOL
    direction_error: float = 0.0
    kkt_accuracy: float = 0.0
    design: np.ndarray | None = field(default=None, repr=False)
    block_scale: float = 0.0
    reference_error: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ basics
    def summary(self) -> str:
        """A few lines: size of ``S``, uniqueness, dimensions, tolerances, consistency checks."""
        lo, hi = self.penalty_range()
        lines = [
            f"optimal set ({self.certificate.activation}, lam={self.lam:.6g})",
            f"|S| (equicorrelation)   : {self.n_blocks}  (free blocks: {self.free_blocks.size})",
            f"unique                  : {self.is_unique}",
            f"dimension               : {self.dimension}  (function dimension {self.function_dimension})",
            f"sampling dimension      : {self.sampling_dimension}  (exact to fit tolerance {self.fit_tol:.0e})",
            f"rank tolerance          : {self.rank_tol:.1e}  (KKT accuracy {self.kkt_accuracy:.1e})",
            f"fit mismatch            : {self.fit_mismatch:.1e}",
            f"reference error         : {self.reference_error:.1e}  (contains() tolerance {self.default_tol():.1e})",
            f"penalty spread over P   : {(hi - lo) / max(hi, 1e-300):.1e} (relative; 0 in exact arithmetic)",
        ]
        return "\n".join(lines)

    @property
    def n_blocks(self) -> int:
        """``|S|``: the number of coordinates of the polytope."""
        return self.blocks.size

    def model_at(self, alpha) -> ConvexModel:
        """The convex model ``theta_k = alpha_k q^_k`` (``k in S``), zero elsewhere.

        For a :class:`~cvxnn.solution.ConvexSolution` reference, a ConvexSolution of its program
        (:func:`~cvxnn.optimality.kkt.solution_from_blocks`: the reference's status, objective
        NaN, no gap) whose C-ReLU cone multipliers are the set's own, :attr:`certificate`'s
        ``rho``: every point of the set has the set's fit, hence its dual point, so
        :func:`cvxnn.duality_gap` certifies it as tightly as the reference (without multipliers
        it falls back to ``rho = 0``: relative gaps of 0.7-0.9 at optima of iris subsamples)."""
        alpha = self._check_alpha(alpha)
        theta = np.zeros_like(self.certificate.theta)
        theta[:, self.blocks] = self.directions * alpha
        rho = self.certificate.rho if self.reference.spec.constrained else None
        return solution_from_blocks(self.reference, theta, multipliers=rho, derived="optimal set")

    def network_at(self, alpha, *, tol: float = 0.0):
        """The non-convex network of :meth:`model_at` (exact solution map)."""
        return self.model_at(alpha).to_network(tol=tol)

    def objective_at(self, alpha, X, y) -> float:
        """Convex objective of :meth:`model_at` (``L(fit, y) + lam * penalty``)."""
        return self.model_at(alpha).objective(X, y, self.lam, self.certificate.loss)

    def alpha_of(self, model: ConvexModel) -> np.ndarray:
        """Coordinates ``alpha_k = <theta_k, q^_k> / lam^2`` of a model (``k in S``).

        Raises
        ------
        InvalidParameterError, PatternMismatchError
            For a model of another activation, other patterns or another block shape.
        """
        from .kkt import block_layout

        model = self._on_reference_patterns(model)
        if model is None:
            raise PatternMismatchError(
                "the model has a non-zero block on an activation pattern (on the training data) that "
                "the optimal set's program does not have; it is not a point of this program.")
        theta, _, _ = block_layout(model)
        return np.einsum("dk,dk->k", theta[:, self.blocks], self.directions) / self.lam**2

    def _on_reference_patterns(self, model) -> ConvexModel | None:
        """``model`` on the reference's patterns: itself when they are the same; else the same
        point of the program written on its patterns, as for a network mapped back by
        :func:`~cvxnn.maps.relu_network_to_convex` / :func:`~cvxnn.maps.gated_network_to_convex`
        (their patterns come from the neurons). None when a non-zero block fits none.

        A gated block acts through its gate's mask: it moves to the pattern with the same mask.
        A ReLU block ``b`` acts through its own signs, ``(X_a b)_+``, and the map merges neurons
        whose masks ``1[X_a b >= 0]`` agree, which differs from a pattern exactly on the rows
        where ``X_a b = 0``; so ``b`` goes to the pattern of ``S`` (same side) whose cone holds it
        and whose direction ``q^_k`` it follows, else is written as ``sum_k alpha_k q^_k`` over
        ``S`` with ``alpha >= 0`` reproducing both ``b`` and ``(X_a b)_+`` (a merged neuron), else
        to any pattern whose cone holds it (not a point of the set, which :meth:`contains`
        then reports)."""
        self._check_model(model, same_patterns=False)
        ref = self.reference.patterns
        pats = model.patterns
        if pats is ref:
            return model
        if pats.mask.shape[0] != ref.mask.shape[0] or pats.bias != ref.bias:
            raise PatternMismatchError(
                f"the model's patterns are on {pats.mask.shape[0]} samples (bias={pats.bias}); the optimal "
                f"set's on {ref.mask.shape[0]} (bias={ref.bias}): map the network back on the same X.")
        if pats.fingerprint and ref.fingerprint and pats.fingerprint != ref.fingerprint:
            raise PatternMismatchError(
                "the model was built on other training data than the optimal set's reference (same shape, "
                "other values); the set describes the optima of one program, on one X: map the network "
                "back on that X (cvxnn.maps.relu_network_to_convex(net, X)).")
        if pats.n_patterns == ref.n_patterns and np.array_equal(pats.gates, ref.gates) and np.array_equal(
                pats.mask, ref.mask):
            return model
        names = [name for name in ("U", "V", "W") if getattr(model, name) is not None]
        moved = {}
        if model.activation == "gated_relu":
            index = {ref.mask[:, j].tobytes(): j for j in range(ref.n_patterns)}
            k = np.array([index.get(pats.mask[:, i].tobytes(), -1) for i in range(pats.n_patterns)], dtype=np.intp)
            B = model.U
            if np.any(B[:, k < 0]):
                return None
            out = np.zeros((B.shape[0], ref.n_patterns) + B.shape[2:])
            np.add.at(np.moveaxis(out, 1, 0), k[k >= 0], np.moveaxis(B[:, k >= 0], 1, 0))
            return ConvexModel(activation=model.activation, patterns=ref, U=out)
        for side, name in enumerate(names):
            out = self._relu_side_on_reference(getattr(model, name), side)
            if out is None:
                return None
            moved[name] = out
        return ConvexModel(activation=model.activation, patterns=ref, **moved)

    def _relu_side_on_reference(self, B: np.ndarray, side: int) -> np.ndarray | None:
        """The ReLU blocks ``B`` (``side`` 0: ``V``, 1: ``W``) on the reference's patterns (see
        :meth:`_on_reference_patterns`)."""
        from scipy.optimize import nnls

        ref = self.reference.patterns
        if self.design is None:
            raise PatternMismatchError("the model was built on other patterns than the optimal set's reference "
                                       "(this set keeps no training design to match them by).")
        p, Xa = ref.n_patterns, self.design
        out = np.zeros((B.shape[0], p))
        cols = np.flatnonzero(np.any(B != 0, axis=0))
        if cols.size == 0:
            return out
        B = B[:, cols]
        Z = Xa @ B
        big = np.abs(Z) > 1e-9 * np.abs(Z).max(axis=0, initial=0.0)
        mask = ref.mask.astype(float)
        # ok[i, j]: the cone of pattern j holds block i (its mask agrees with the signs of X_a b)
        ok = ((big & (Z > 0)).astype(float).T @ (1.0 - mask) + (big & (Z < 0)).astype(float).T @ mask) == 0
        mine = (self.blocks >= side * p) & (self.blocks < (side + 1) * p)  # S entries of this side
        pat_s = self.blocks[mine] - side * p
        D = self.directions[:, mine]
        Dn = D / np.maximum(np.linalg.norm(D, axis=0), np.finfo(float).tiny)
        F = mask[:, pat_s] * (Xa @ D)  # (X_a q^_k)_+ on each S pattern
        for i in range(B.shape[1]):
            b = B[:, i]
            nb = float(np.linalg.norm(b))
            cos = np.where(ok[i, pat_s], Dn.T @ b / nb, -np.inf) if pat_s.size else np.empty(0)
            if cos.size and cos.max() >= 1.0 - 1e-9:
                out[:, pat_s[int(np.argmax(cos))]] += b
                continue
            if pat_s.size:
                f = np.maximum(Z[:, i], 0.0)
                nf = max(float(np.linalg.norm(f)), np.finfo(float).tiny)
                A = np.vstack([D / nb, F / nf])
                alpha, res = nnls(A, np.concatenate([b / nb, f / nf]))
                if res <= 1e-8:
                    np.add.at(out.T, pat_s, (D * alpha).T)
                    continue
            if not ok[i].any():
                return None
            out[:, int(np.argmax(ok[i]))] += b
        return out

    def _check_model(self, model, *, same_patterns: bool = True) -> None:
        """A model of this set's problem: same activation, block shape and (``same_patterns``)
        patterns."""
        ref = self.reference
        if not isinstance(model, ConvexModel):
            raise InvalidParameterError(
                f"expected a ConvexModel or ConvexSolution of this problem, got {type(model).__name__}; "
                "map a network back first (cvxnn.maps.relu_network_to_convex / gated_network_to_convex).")
        if model.activation != ref.activation:
            raise InvalidParameterError(
                f"the optimal set is of a {ref.activation} program; this model is {model.activation}.")
        shape = next(iter(ref.blocks.values())).shape
        got = next(iter(model.blocks.values())).shape
        if got[:1] + got[2:] != shape[:1] + shape[2:]:
            why = ""
            if model.patterns.bias != ref.patterns.bias:
                why = (f" (the model's patterns have bias={model.patterns.bias}, the optimal set's "
                       f"bias={ref.patterns.bias})")
            raise ShapeError(f"the model's blocks have shape {got}; the optimal set's have {shape}{why}.")
        if not same_patterns:
            return
        same = model.patterns is ref.patterns or (
            model.patterns.n_patterns == ref.patterns.n_patterns
            and np.array_equal(model.patterns.gates, ref.patterns.gates)
            and np.array_equal(model.patterns.mask, ref.patterns.mask))
        if not same:
            raise PatternMismatchError("the model was built on other patterns than the optimal set's reference.")

    def default_tol(self) -> float:
        """Default tolerance of :meth:`contains`: the larger of ``CONTAINS_MARGIN`` (3) times the
        largest of :attr:`direction_error`, :attr:`fit_mismatch` and :attr:`kkt_accuracy`, and
        ``REFERENCE_MARGIN`` (2) times :attr:`reference_error` (the measured deviation of the
        reference itself), at least ``1e-6`` and at most ``CONTAINS_MAX_TOL`` (``1e-2``)."""
        accuracy = max(self.direction_error, self.fit_mismatch, self.kkt_accuracy)
        tol = max(1e-6, CONTAINS_MARGIN * accuracy, REFERENCE_MARGIN * self.reference_error)
        return float(min(tol, CONTAINS_MAX_TOL))

    def _block_scale(self) -> float:
        if self.block_scale > 0:
            return float(self.block_scale)
        return max(float(np.linalg.norm(self.certificate.theta)), np.finfo(float).tiny)

    def deviation(self, model: ConvexModel) -> float:
        """How far ``model`` lies from the optimal set (relative; 0 for a point of the set).

        The largest of: the norm of its blocks outside ``S`` and of the deviation of its blocks
        ``theta_k`` (``k in S``) from ``alpha_k q^_k`` (``alpha = alpha_of(model)``), both over
        :attr:`block_scale`; the most negative ``alpha_k`` over ``max |alpha|``; and the fit error
        ``||columns @ alpha - rhs|| / ||rhs||``. When the optimum is zero (every ``alpha_ref`` is 0,
        e.g. ``lam >= lam_max``) the set is ``{0}`` and the deviation is ``||theta||_F`` over
        :attr:`block_scale`. ``inf`` for a model with a non-zero block on an activation pattern the
        program does not have (see :meth:`contains` for models on other patterns).

        Raises
        ------
        InvalidParameterError, ShapeError, PatternMismatchError
            For a model of another activation or block shape, or built on other data.
        """
        from .kkt import block_layout

        model = self._on_reference_patterns(model)
        if model is None:  # a non-zero block on a pattern this program does not have
            return float("inf")
        theta, _, _ = block_layout(model)
        scale = self._block_scale()
        if not np.any(self.alpha_ref > 0):  # the zero optimum: the set is {0}
            return float(np.linalg.norm(theta) / scale)
        outside = float(np.linalg.norm(np.delete(theta, self.blocks, axis=1))) / scale
        alpha = self.alpha_of(model)
        top = float(np.abs(alpha).max(initial=0.0))
        negative = max(0.0, -float(alpha.min(initial=0.0))) / top if top > 0 else 0.0  # relative: any scale
        off_direction = float(np.linalg.norm(theta[:, self.blocks] - self.directions * alpha)) / scale
        fit = float(np.linalg.norm(self.columns @ alpha - self.rhs)) / max(float(np.linalg.norm(self.rhs)),
                                                                            np.finfo(float).tiny)
        return max(outside, negative, off_direction, fit)

    def contains(self, model: ConvexModel, *, tol: float | None = None) -> bool:
        """Whether ``model`` lies in the optimal set up to a relative tolerance ``tol``:
        zero outside ``S``, ``theta_k`` parallel to ``q^_k`` with ``alpha_k >= 0``, same fit
        (``deviation(model) <= tol``, see :meth:`deviation`).

        ``tol`` defaults to the accuracy of the set itself (:meth:`default_tol`):
        ``CONTAINS_MARGIN`` (3) times the largest of the reference's :attr:`direction_error`,
        :attr:`fit_mismatch` and :attr:`kkt_accuracy`, and at least twice its
        :attr:`reference_error`, between ``1e-6`` and ``CONTAINS_MAX_TOL`` (``1e-2``). A set built
        from a solution certified at a relative gap ``eps`` knows directions and fit to about
        ``sqrt(eps)`` only; for a sharper test, solve more tightly or pass ``tol``.

        ``model`` may be on other patterns of the same training data, e.g. a network mapped back
        by :func:`~cvxnn.maps.relu_network_to_convex` (its patterns come from its neurons): each
        block counts for the program's pattern with the same mask, and a non-zero block on a mask
        the program lacks makes the answer False. A model on other data raises
        :class:`~cvxnn.errors.PatternMismatchError`."""
        tol = self.default_tol() if tol is None else check_nonnegative_float(tol, "tol")
        return bool(self.deviation(model) <= tol)

    def _check_alpha(self, alpha) -> np.ndarray:
        """Coordinates of a point of ``P``: shape ``(|S|,)``, finite, ``>= 0`` (entries above
        ``-1e-9`` of the largest are rounding and read as zero)."""
        try:
            alpha = np.asarray(alpha, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"alpha must be an array of {self.n_blocks} numbers.") from exc
        if alpha.shape != (self.n_blocks,):
            raise InvalidParameterError(f"alpha must have shape ({self.n_blocks},), got {alpha.shape}.")
        if not np.all(np.isfinite(alpha)):
            raise NonFiniteError("alpha contains NaN or infinity.")
        floor = -1e-9 * float(np.abs(alpha).max(initial=0.0))
        if alpha.min(initial=0.0) < floor:
            raise InvalidParameterError(
                f"alpha must be >= 0 (points of the optimal set have nonnegative coordinates); its smallest "
                f"entry is {alpha.min():.3g}.")
        return np.maximum(alpha, 0.0)

    # ----------------------------------------------------------------- LP layer
    def _svd(self):
        """``(Bs, s, Vt, colnorm)``: the unit-column matrix ``Bs = columns / colnorm`` (scaled
        variables ``z = colnorm * alpha``, so the fit is ``Bs @ z``) and its thin SVD (cached)."""
        if "svd" not in self._cache:
            colnorm = np.linalg.norm(self.columns, axis=0)
            colnorm = np.where(colnorm > 0, colnorm, 1.0)
            Bs = self.columns / colnorm
            _, s, Vt = np.linalg.svd(Bs, full_matrices=False)
            self._cache["svd"] = (Bs, s, Vt, colnorm)
        return self._cache["svd"]

    def _scaled_system(self):
        """Reduced equality ``A z = b`` in scaled variables ``z = colnorm * alpha``.

        ``A = S_r V_r^T`` is the rank-``r`` truncation of the unit-column matrix
        ``columns / colnorm`` (singular values ``<= rank_tol * s_max`` dropped) and
        ``b = A z_ref``, so the reference point is feasible by construction.
        """
        if "system" not in self._cache:
            _, s, Vt, colnorm = self._svd()
            r = int((s > self.rank_tol * s.max(initial=0.0)).sum()) if s.size and s.max() > 0 else 0
            A = s[:r, None] * Vt[:r]
            b = A @ (self.alpha_ref * colnorm)
            self._cache["system"] = (A, b, colnorm)
        return self._cache["system"]

    def _null_basis(self, free: np.ndarray) -> np.ndarray:
        """Orthonormal basis (in scaled free coordinates) of the directions of ``P``.

        The null space of ``A_F`` (rank decisions at :attr:`rank_tol`), restricted to directions
        that keep the penalty ``sum_k alpha_k`` constant: every optimum has the same penalty, so a
        near-null direction along which it changes by more than the accuracy of the residual
        (``max(1e-9, 10 * kkt_accuracy)`` relative) is a near-dependency, not an optimal direction.
        The basis is exactly null for the truncated ``A`` but not necessarily for the columns
        themselves: :meth:`_sampler` measures each direction on the columns.
        """
        A, _, colnorm = self._scaled_system()
        AF = A[:, free]
        k = AF.shape[1]
        if k == 0:
            return np.zeros((0, 0))
        if AF.shape[0] == 0:
            N = np.eye(k)
        else:
            _, s, Vt = np.linalg.svd(AF, full_matrices=True)
            top = np.linalg.norm(A, 2)
            r = int((s > self.rank_tol * top).sum())
            N = Vt[r:].T
        if N.shape[1]:
            c = 1.0 / colnorm[free]
            g = N.T @ c / np.linalg.norm(c)
            if np.linalg.norm(g) > max(1e-9, 10.0 * self.kkt_accuracy):
                _, _, Wt = np.linalg.svd(g[None, :], full_matrices=True)
                N = N @ Wt[1:].T
        return N

    def _lp(self, c: np.ndarray) -> np.ndarray:
        """Minimise ``c^T z`` over the scaled polytope; returns ``z``.

        The equalities are passed with orthonormal rows, ``V_r^T z = V_r^T z_ref`` (the same set
        as ``A z = b``): HiGHS' absolute feasibility tolerance then bounds a distance in ``z``,
        not one inflated by ``1 / s_j`` on rows with small singular values.
        """
        if np.size(c) == 0:  # S is empty (lam >= lam_max): P is the single point zero
            return np.zeros(0)
        A, _, colnorm = self._scaled_system()
        _, _, Vt, _ = self._svd()
        r = A.shape[0]
        kw = {"A_eq": Vt[:r], "b_eq": Vt[:r] @ (self.alpha_ref * colnorm)} if r else {}
        res = linprog(c, bounds=(0, None), method="highs", **kw)
        if res.status != 0:  # retry without presolve (near-dependent rows confuse it)
            res = linprog(c, bounds=(0, None), method="highs", options={"presolve": False}, **kw)
        if res.status != 0:
            raise SolverError(
                f"an LP over the optimal set failed ({res.message}); the solution is likely "
                "too inaccurate: re-solve with tighter tolerances.",
                status="numerical_error",
            )
        return np.maximum(res.x, 0.0)

    def _free(self) -> tuple[np.ndarray, np.ndarray]:
        """Free coordinates (positive somewhere on ``P``) and a relative-interior point (scaled)."""
        if "free" not in self._cache:
            _, _, colnorm = self._scaled_system()
            k = self.n_blocks
            z_ref = self.alpha_ref * colnorm
            scale = max(z_ref.max(initial=0.0), 1e-300)
            points = [z_ref]
            free = z_ref > _FREE_TOL * scale
            unknown = list(np.flatnonzero(~free))
            while unknown:
                i = unknown.pop()
                if free[i]:
                    continue
                c = np.zeros(k)
                c[i] = -1.0
                z = self._lp(c)
                if z[i] > _FREE_TOL * scale:
                    points.append(z)
                    free |= z > _FREE_TOL * scale
            interior = np.mean(points, axis=0)
            interior[~free] = 0.0
            self._cache["free"] = (free, interior)
        return self._cache["free"]

    @property
    def free_blocks(self) -> np.ndarray:
        """Indices (into :attr:`blocks`) of coordinates that are positive at some optimum:
        the blocks that some optimal network uses."""
        return np.flatnonzero(self._free()[0])

    @property
    def dimension(self) -> int:
        """Affine dimension of the optimal set: ``|F| - rank(columns_F)`` with ``F`` the free blocks."""
        if "dim" not in self._cache:
            free, _ = self._free()
            self._cache["dim"] = int(self._null_basis(free).shape[1])
        return self._cache["dim"]

    @property
    def is_unique(self) -> bool:
        """Whether the optimum is unique (dimension 0)."""
        return self.dimension == 0

    def neuron_groups(self, tol: float = 1e-6) -> np.ndarray:
        """Group the blocks of ``S`` that are the same neuron: equal sign and direction
        (``||q^_i - q^_j|| <= tol * lam``).

        For C-ReLU a direction on the boundary of several cones ``K_i`` (it meets training points
        with ``x_j^T q = 0``) appears once per pattern; these blocks give the same ReLU neuron on
        any data, so moving weight between them ("neuron splitting") changes the weights but not
        the network function. For C-GReLU the blocks must also have the same gate up to a
        positive factor (the same pattern, or gates ``g`` and ``c g``, ``c > 0``, within ``tol``
        after normalisation). Returns one group label per block of ``S``.
        """
        tol = check_nonnegative_float(tol, "tol")
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        k = self.n_blocks
        if k == 0:
            return np.zeros(0, dtype=int)
        Q = self.directions / self.lam
        sign = self.certificate.sign[self.blocks]
        G = Q.T @ Q
        sq = np.diag(G)
        dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * G, 0.0)
        same = (dist2 <= tol**2) & (sign[:, None] == sign[None, :])
        if get_activation(self.certificate.activation).gated:
            # gated neurons are the same function only with the same gate as well: the same
            # pattern, or gates that are positive multiples of each other (user gates such as
            # g and 2 g, kept as distinct patterns by Patterns.from_gates(unique=False))
            pat = self.certificate.pattern[self.blocks]
            gates = np.asarray(self.reference.patterns.gates, dtype=float)[:, pat]
            gn = gates / np.maximum(np.linalg.norm(gates, axis=0), np.finfo(float).tiny)
            same_gate = (pat[:, None] == pat[None, :]) | (gn.T @ gn >= 1.0 - 0.5 * tol**2)
            same &= same_gate
        _, labels = connected_components(csr_matrix(same), directed=False)
        return labels

    def _function_map(self, tol: float = 1e-6) -> np.ndarray:
        """Matrix ``Phi`` (``m x k``) with ``Phi @ dalpha = 0`` iff moving ``alpha`` by ``dalpha``
        leaves the C-ReLU network function unchanged on *every* input.

        With unit directions ``n_k = q^_k / lam`` the network is
        ``f(x) = lam sum_k alpha_k s_k (x_a^T n_k)_+`` (``x_a`` = input with the bias entry). Blocks
        are grouped by hyperplane: ``n_k = +-n_h`` (within ``tol``). Using
        ``(-u)_+ = (u)_+ - u``, ``f = lam sum_h kappa_h (x_a^T n_h)_+ + lam x_a^T l`` with kink
        coefficients ``kappa_h = sum_{k on h} alpha_k s_k`` and linear part
        ``l = -sum_{k : n_k = -n_h} alpha_k s_k n_h``. ReLUs of distinct hyperplanes are linearly
        independent modulo linear functions, so ``f`` is unchanged iff every ``kappa_h`` and ``l``
        are; a hyperplane with no input part (``n`` along the bias coordinate) is a constant,
        ``(n_bias)_+``, and goes into the bias entry of ``l``. Rows: one per hyperplane, then
        ``d_a`` for ``l``. Neuron splitting (copies of one direction on several patterns) is
        the special case of equal ``n_k``; pairs ``+-n`` add the "linear" directions.
        """
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        k = self.n_blocks
        Q = self.directions / self.lam
        sign = self.certificate.sign[self.blocks]
        d_a = Q.shape[0]
        bias = bool(self.reference.patterns.bias)
        G = Q.T @ Q
        same = G >= 1.0 - 0.5 * tol**2  # ||n_i - n_j|| <= tol for unit vectors
        opposite = G <= -1.0 + 0.5 * tol**2
        n_h, hyper = connected_components(csr_matrix(same | opposite), directed=False)
        first = np.zeros(n_h, dtype=int)
        first[hyper[::-1]] = np.arange(k)[::-1]  # first block of each hyperplane
        normal = Q[:, first]  # (d_a, n_h): orientation of each hyperplane
        orient = np.where(np.einsum("dk,dk->k", Q, normal[:, hyper]) >= 0, 1.0, -1.0)
        input_part = np.linalg.norm(normal[:-1] if bias else normal, axis=0)
        constant = bias & (input_part <= tol)  # hyperplanes without an input part
        Phi = np.zeros((n_h + d_a, k))
        kink = ~constant[hyper]
        Phi[hyper[kink], np.flatnonzero(kink)] = sign[kink]
        flip = kink & (orient < 0)
        Phi[n_h:, flip] = -sign[flip] * normal[:, hyper[flip]]
        const = ~kink
        if const.any():
            Phi[n_h + d_a - 1, const] = sign[const] * np.maximum(Q[-1, const], 0.0)
        return Phi

    @property
    def function_dimension(self) -> int:
        """Dimension of the set of network *functions* of the optimal set: 0 when every optimal
        network computes the same function on any input, even if the weights are not unique.

        C-ReLU: the rank of :meth:`_function_map` restricted to the directions of ``P`` (those
        counted by :attr:`dimension`, normalised in ``alpha``): moving weight between copies of
        one neuron ("neuron splitting"), or between a neuron ``n`` and its antipode ``-n`` in a
        way that only changes a linear function which the other directions cancel, leaves the
        function unchanged. Directions are compared, and the rank decided, at the resolution
        ``tau = max(1e-6, 10 sqrt(kkt_accuracy))``: an interior-point solution fixes the
        directions ``q_k`` of small blocks only to ~``sqrt(KKT accuracy)``, so an identity of
        exact arithmetic shows up as a function change of that order. C-GReLU: the same rank with
        :meth:`_gated_function_map` (equal gates and directions split a neuron; without a bias,
        complementary gates add up to a linear function that other blocks can cancel).
        """
        if "fdim" not in self._cache:
            free, _ = self._free()
            N = self._null_basis(free)
            if N.shape[1] == 0:
                self._cache["fdim"] = 0
            else:
                _, _, _, colnorm = self._svd()
                dalpha = N / colnorm[free][:, None]
                dalpha /= np.linalg.norm(dalpha, axis=0)
                tau = max(1e-6, 10.0 * float(np.sqrt(self.kkt_accuracy)))
                constrained = get_activation(self.certificate.activation).constrained
                Phi = self._function_map(tau) if constrained else self._gated_function_map(tau)
                s = np.linalg.svd(Phi[:, free] @ dalpha, compute_uv=False)
                self._cache["fdim"] = int((s > tau).sum())
        return self._cache["fdim"]

    def _gated_function_map(self, tol: float = 1e-6) -> np.ndarray:
        """Matrix ``Phi`` (``m x k``) with ``Phi @ dalpha = 0`` iff moving ``alpha`` by ``dalpha``
        leaves the C-GReLU network function unchanged on *every* input.

        With unit directions ``n_k = q^_k / lam`` and gates ``g_k`` the network is
        ``f(x) = lam sum_k alpha_k s_k 1[x_a^T g_k >= 0] x_a^T n_k``. Gates are grouped by
        hyperplane (``g_k / ||g_k|| = +-g_h`` within ``tol``, orientation ``o_k = +-1``). Using
        ``1[-u >= 0] = 1 - 1[u >= 0]`` (off the hyperplane),
        ``f = lam sum_h 1[x_a^T g_h >= 0] x_a^T v_h + lam x_a^T l`` with
        ``v_h = sum_{k on h} o_k alpha_k s_k n_k`` and ``l = sum_{o_k = -1} alpha_k s_k n_k``.
        Across hyperplane ``h`` alone the affine piece changes by ``x_a^T v_h``, so ``f`` is
        unchanged iff every ``v_h`` and ``l`` are (without a bias, the gates of complementary
        patterns add up to a linear function, which the count by equal gates missed). A gate
        with no input part is a constant, ``1[g_bias >= 0]``: an always-open gate goes into
        ``l``, a closed one contributes nothing. Rows: ``d_a`` per hyperplane, then ``d_a``.
        """
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        k = self.n_blocks
        Q = self.directions / self.lam * self.certificate.sign[self.blocks]
        d_a = Q.shape[0]
        gates = np.asarray(self.reference.patterns.gates, dtype=float)[:, self.certificate.pattern[self.blocks]]
        bias = bool(self.reference.patterns.bias)
        input_part = np.linalg.norm(gates[:-1] if bias else gates, axis=0)
        scale = np.linalg.norm(gates, axis=0)
        constant = input_part <= tol * np.maximum(scale, 1e-300)
        open_const = constant & ((gates[-1] >= 0) if bias else True)
        kink = ~constant
        Gn = gates[:, kink] / scale[kink]
        C = Gn.T @ Gn
        same = C >= 1.0 - 0.5 * tol**2
        opposite = C <= -1.0 + 0.5 * tol**2
        n_h, hyper = connected_components(csr_matrix(same | opposite), directed=False) if kink.any() else (0, [])
        hyper = np.asarray(hyper, dtype=int)
        cols = np.flatnonzero(kink)
        first = np.zeros(n_h, dtype=int)
        first[hyper[::-1]] = np.arange(cols.size)[::-1]
        orient = np.where(np.einsum("dk,dk->k", Gn, Gn[:, first][:, hyper]) >= 0, 1.0, -1.0)
        Phi = np.zeros(((n_h + 1) * d_a, k))
        rows = hyper[None, :] * d_a + np.arange(d_a)[:, None]  # d_a x (kink blocks)
        Phi[rows, cols[None, :]] = orient * Q[:, cols]
        flip = cols[orient < 0]
        Phi[n_h * d_a:, flip] = Q[:, flip]
        Phi[n_h * d_a:, np.flatnonzero(open_const)] = Q[:, open_const]
        return Phi

    def weight_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)``: range of each ``alpha_k`` over the optimal set (two LPs per block).

        The neuron of block ``k`` has ``||theta_k|| = lam alpha_k`` in ``[lam lo_k, lam hi_k]``;
        its first-layer weight norm and ``|output weight|`` are ``sqrt(lam alpha_k)``.
        """
        if "ranges" not in self._cache:
            _, _, colnorm = self._scaled_system()
            free, _ = self._free()
            k = self.n_blocks
            lo = np.zeros(k)
            hi = np.zeros(k)
            for i in np.flatnonzero(free):
                c = np.zeros(k)
                c[i] = 1.0
                lo[i] = self._lp(c)[i]
                hi[i] = self._lp(-c)[i]
            self._cache["ranges"] = (lo / colnorm, hi / colnorm)
        lo, hi = self._cache["ranges"]
        return lo.copy(), hi.copy()

    def penalty_range(self) -> tuple[float, float]:
        """Min and max of the penalty ``sum_k ||theta_k|| = lam sum_k alpha_k`` (as
        :meth:`ConvexModel.penalty <cvxnn.solution.ConvexModel.penalty>`, without the factor
        ``lam`` of the objective) over the numerical polytope.

        Equal in exact arithmetic (every optimum has the same objective); the difference measures
        how inexact the solution used to build the set was.
        """
        _, _, colnorm = self._scaled_system()
        c = 1.0 / colnorm
        lo = float(c @ self._lp(c))
        hi = float(c @ self._lp(-c))
        return self.lam * lo, self.lam * hi

    # ----------------------------------------------------------------- sampling
    def interior_point(self) -> np.ndarray:
        """A point of the relative interior of ``P`` (average of LP vertices), as ``alpha``."""
        _, interior = self._free()
        _, _, colnorm = self._scaled_system()
        return interior / colnorm

    @property
    def sampling_dimension(self) -> int:
        """Number of directions :meth:`sample` moves in (``<=`` :attr:`dimension`).

        :attr:`dimension` counts dependencies of the columns at ``rank_tol``, the accuracy of
        the solution. Such a direction ``d`` is not always exactly null: the fit moves by
        ``||Bs d||`` per unit step along it (a neuron split whose two directions ``q_k`` the
        residual fixes only to ~``sqrt(KKT accuracy)`` is the typical case). The sampler keeps
        only directions whose combined fit change over the whole polytope is within
        :attr:`fit_tol`; re-solving more accurately makes more of them exact.
        """
        return int(self._sampler()[2].shape[1])

    def _w_lp(self, c: np.ndarray, base: np.ndarray, D: np.ndarray) -> np.ndarray:
        """Minimise ``c^T w`` over ``{w : base + D w >= 0}`` (HiGHS); returns ``w``."""
        res = linprog(c, A_ub=-D, b_ub=base, bounds=(None, None), method="highs")
        if res.status != 0:
            raise SolverError(
                f"an LP over the optimal set failed ({res.message}); the optimal set looks "
                "unbounded or the solution is too inaccurate: re-solve with tighter tolerances.",
                status="numerical_error",
            )
        return res.x

    def _sampler(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(free, start, N)`` of the hit-and-run chain (scaled coordinates, cached).

        Candidates are the directions of :meth:`_null_basis`, rotated so that
        ``Bs_F d_j = sigma_j u_j`` with orthonormal ``u_j`` (SVD of ``Bs_F N``). With
        ``e_j >= max |w_j|`` over ``Q = {w : base + D w >= 0}`` (``base = z_ref`` on the free
        blocks; two LPs for each direction whose a priori bound ``2 T max colnorm`` is not already
        small enough), a point ``base + sum_{j in K} w_j d_j`` of ``Q``
        misses the reference fit by ``sqrt(sum_{j in K} sigma_j^2 w_j^2) <=
        sqrt(sum_{j in K} (sigma_j e_j)^2)``. ``K`` takes the directions in increasing order of
        ``sigma_j e_j`` while that bound stays ``<= fit_tol max(1, ||rhs||) / 2`` (half the
        tolerance: a margin for LP and round-off error). ``start`` is a relative-interior point
        of ``{w_K : base + N w_K >= 0}`` (mean of LP maximisers of the coordinates that are not
        already positive), so it lies on the affine set exactly.
        """
        if "sampler" not in self._cache:
            free, _ = self._free()
            Bs, _, _, colnorm = self._svd()
            base = (self.alpha_ref * colnorm)[free]
            Nr = self._null_basis(free)
            m = Nr.shape[1]
            N = Nr[:, :0]
            start = base.copy()
            if m:
                _, sig, Wt = np.linalg.svd(Bs[:, free] @ Nr, full_matrices=True)
                sigma = np.zeros(m)
                sigma[: sig.size] = sig
                D = Nr @ Wt.T
                budget = 0.5 * self.fit_tol * max(float(np.linalg.norm(self.rhs)), np.finfo(float).tiny)
                # A priori, |w_j| <= ||z - z_ref|| <= 2 T max colnorm (all optima have the penalty
                # T = sum alpha_ref and z >= 0); LPs sharpen it only where it could matter, so
                # exactly null directions (sigma ~ 1e-16) cost nothing.
                ext = np.full(m, 2.0 * float(self.alpha_ref.sum()) * float(colnorm.max(initial=1.0)))
                for j in np.flatnonzero(sigma * ext > budget / np.sqrt(m)):
                    c = np.zeros(m)
                    c[j] = 1.0
                    lp_ext = max(-self._w_lp(c, base, D)[j], self._w_lp(-c, base, D)[j], 0.0)
                    ext[j] = min(ext[j], lp_ext)
                drift = sigma * ext
                order = np.argsort(drift, kind="stable")
                keep = np.sort(order[np.sqrt(np.cumsum(drift[order] ** 2)) <= budget])
                N = D[:, keep]
                logger.debug("OptimalSet sampler: fit drift per direction %s, kept %d of %d",
                             np.array2string(drift, precision=1), keep.size, m)
            if N.shape[1]:
                tol = _FREE_TOL * max(base.max(initial=0.0), 1e-300)
                points = [np.zeros(N.shape[1])]
                positive = base > tol
                for i in np.flatnonzero(~positive):
                    if positive[i]:
                        continue
                    w = self._w_lp(-N[i], base, N)
                    z = base + N @ w
                    if z[i] > tol:
                        points.append(w)
                        positive |= z > tol
                w = np.mean(points, axis=0)
                start = base + N @ w
                neg = start < 0  # LP feasibility tolerance only; stay on the affine set
                if neg.any():
                    t = float(np.min(base[neg] / (base[neg] - start[neg])))
                    start = base + t * (start - base)
            self._cache["sampler"] = (free, start, N)
            if N.shape[1] < self.dimension:
                logger.info("OptimalSet.sample: %d of the %d directions of the optimal set are "
                            "dependencies only at rank_tol=%.1e (together they would move the fit "
                            "by more than fit_tol=%.0e); sampling the other %d.",
                            self.dimension - N.shape[1], self.dimension, self.rank_tol,
                            self.fit_tol, N.shape[1])
        return self._cache["sampler"]

    def sample(self, n_samples: int = 100, *, seed=None, burn_in: int = 200, thin: int = 10) -> np.ndarray:
        """Draw points of the optimal set by hit-and-run (asymptotically uniform).

        The chain lives on the affine set ``{z_start + N w}`` in the scaled coordinates
        ``z = colnorm * alpha`` of the free blocks, ``N`` orthonormal with
        :attr:`sampling_dimension` columns (see :meth:`_sampler`): each step draws a uniformly
        random unit direction ``g`` in ``w``-space, moves ``w`` by a step drawn uniformly on the
        chord ``{t : z_start + N (w + t g) >= 0}`` and recomputes ``z = z_start + N w``, so the
        points stay on the affine set to round-off however long the chain (nothing accumulates).
        The target is the uniform distribution on ``P_fit = P cap {z_start + span N}``, which is
        ``P`` when every direction of ``P`` is exact (:attr:`sampling_dimension` equal to
        :attr:`dimension`). Directions that are dependencies only at ``rank_tol`` and would move
        the fit by more than :attr:`fit_tol` across the polytope are not used: every sample
        satisfies ``||columns @ alpha - rhs||_2 <= fit_tol * max(1, ||rhs||_2)`` (checked).
        Blocks that are zero at every optimum keep their reference value. Work per step is
        ``O(|F| dim)``.

        Parameters
        ----------
        n_samples : int
        seed : None, int or numpy.random.Generator
        burn_in : int
            Steps discarded before the first sample.
        thin : int
            Steps between recorded samples.

        Returns
        -------
        ndarray of shape (n_samples, k)
            Rows are ``alpha`` vectors (map them with :meth:`model_at`).

        Raises
        ------
        SolverError
            If the chord is unbounded (the input is not an optimum) or a sample misses the fit
            tolerance (not expected: it would be a defect).
        """
        n_samples = check_positive_int(n_samples, "n_samples")
        thin = check_positive_int(thin, "thin")
        burn_in = check_positive_int(burn_in, "burn_in", minimum=0)
        rng = as_generator(seed)
        free, z0, N = self._sampler()
        _, _, _, colnorm = self._svd()
        out = np.repeat(np.where(free, 0.0, self.alpha_ref)[None, :], n_samples, axis=0)
        if N.shape[1] == 0:
            out[:, free] = z0 / colnorm[free]
            return out
        total = burn_in + n_samples * thin
        G = rng.standard_normal((total, N.shape[1]))
        U = rng.random(total)
        w = np.zeros(N.shape[1])
        z = z0.copy()
        kept = 0
        for step in range(total):
            g = G[step] / np.linalg.norm(G[step])
            d = N @ g  # unit norm: N is orthonormal
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = -z / d
            tmax = np.min(ratio[d < 0], initial=np.inf)
            tmin = np.max(ratio[d > 0], initial=-np.inf)
            if not (np.isfinite(tmin) and np.isfinite(tmax)):
                raise SolverError("the optimal set looks unbounded; the solution is not optimal.",
                                  status="numerical_error")
            tmin, tmax = min(tmin, 0.0), max(tmax, 0.0)
            w += (tmin + U[step] * (tmax - tmin)) * g
            z = z0 + N @ w
            if step >= burn_in and (step - burn_in) % thin == thin - 1:
                out[kept, free] = np.maximum(z, 0.0) / colnorm[free]
                kept += 1
        err = float(np.max(np.linalg.norm(out @ self.columns.T - self.rhs, axis=1)))
        # (a floor of 1e-12 for the round-off of the two products, relevant only when fit_tol ~ 0)
        bound = max(self.fit_tol, 1e-12) * max(float(np.linalg.norm(self.rhs)), np.finfo(float).tiny)
        if err > bound:
            raise SolverError(f"a hit-and-run sample misses the fit by {err:.2e} > {bound:.2e}; "
                              "please report this (a sampler defect).", status="numerical_error")
        logger.debug("OptimalSet.sample: %d samples, dimension %d, worst fit error %.2e (bound %.2e)",
                     n_samples, N.shape[1], err, bound)
        return out

    def sample_models(self, n_samples: int = 100, **kwargs) -> list[ConvexModel]:
        """:meth:`sample` mapped to convex models."""
        return [self.model_at(a) for a in self.sample(n_samples, **kwargs)]

    def sample_networks(self, n_samples: int = 100, *, tol: float = 0.0, **kwargs) -> list:
        """:meth:`sample` mapped to non-convex networks (``ReLUNetwork`` / ``GatedReLUNetwork``)."""
        return [self.network_at(a, tol=tol) for a in self.sample(n_samples, **kwargs)]

    # ------------------------------------------------------------------- vertices
    def minimal_alpha(self, alpha=None) -> np.ndarray:
        """A vertex of ``P`` (a minimal optimum) reached from ``alpha`` (default the reference
        point) by the exact null-space pruning steps of :mod:`~cvxnn.optimality.pruning`,
        applied to the columns ``s_k D_k X q^_k`` with tolerance :attr:`rank_tol`.

        Working with the directions ``q^_k`` (fixed by the residual) rather than the solver's
        ``theta_k`` resolves dependencies to the accuracy of the residual, typically orders of
        magnitude better than a solver's block directions; the fit and penalty are unchanged.

        Raises
        ------
        InvalidParameterError
            If ``alpha`` is not a point of ``P``: its fit ``columns @ alpha`` misses the optimal
            fit by more than the set's accuracy (:meth:`default_tol`, the tolerance of
            :meth:`contains`, at least ``10 rank_tol``, relative). Pruning keeps the fit, so the
            result would be no optimum.
        """
        from .pruning import _prune_blocks

        if alpha is None:
            alpha = self.alpha_ref.copy()
        else:
            alpha = self._check_alpha(alpha).copy()
            tol = min(max(self.default_tol(), 10.0 * self.rank_tol), CONTAINS_MAX_TOL)
            scale = max(float(np.linalg.norm(self.rhs)), np.finfo(float).tiny)
            err = float(np.linalg.norm(self.columns @ alpha - self.rhs)) / scale
            if err > tol:
                raise InvalidParameterError(
                    f"alpha is not a point of the optimal set: its fit misses the optimal fit by {err:.1e} "
                    f"(relative; tolerance {tol:.1e}), so a vertex reached from it would be no optimum. Pass a "
                    f"point of the set (alpha_ref, a sample, interior_point(), min_norm_alpha()).")
        idx = np.flatnonzero(alpha > 0)
        if idx.size == 0:
            return alpha
        cols = self.columns[:, idx] * alpha[idx]
        f, _ = _prune_blocks(cols, idx, self.lam * alpha, self.rank_tol)
        alpha[idx] = alpha[idx] * f
        return alpha

    def minimal_model(self, alpha=None) -> ConvexModel:
        """The convex model of :meth:`minimal_alpha`."""
        return self.model_at(self.minimal_alpha(alpha))

    # ------------------------------------------------------------------ min norm
    def min_norm_alpha(self) -> np.ndarray:
        """``alpha`` of the optimum of minimum Euclidean weight norm ``||theta||_2``
        (``= lam ||alpha||_2``): the QP ``min ||alpha||^2`` over ``P`` (Clarabel through CVXPY)."""
        if "min_norm" not in self._cache and self.n_blocks == 0:
            self._cache["min_norm"] = np.zeros(0)
        if "min_norm" not in self._cache:
            import cvxpy as cp

            from ..backends.cvxpy_adapter import run_problem

            A, b, colnorm = self._scaled_system()
            z = cp.Variable(self.n_blocks, nonneg=True)
            cons = [A @ z == b] if A.shape[0] else []
            prob = cp.Problem(cp.Minimize(cp.sum_squares(cp.multiply(1.0 / colnorm, z))), cons)
            run_problem(prob, "CLARABEL", what="the minimum-norm QP of the optimal set", warn=False,
                        allow=("optimal", "optimal_inaccurate"))
            if z.value is None:
                raise SolverError(f"the minimum-norm QP returned no point ({prob.status}).",
                                  status="numerical_error")
            self._cache["min_norm"] = np.maximum(z.value, 0.0) / colnorm
        return self._cache["min_norm"].copy()

    def min_norm_model(self) -> ConvexModel:
        """The minimum-norm optimal model (see :meth:`min_norm_alpha`)."""
        return self.model_at(self.min_norm_alpha())


def optimal_set(
    model: ConvexModel,
    X,
    y,
    lam: float | None = None,
    loss: str | Loss | None = None,
    *,
    active_tol: float = DEFAULT_ACTIVE_TOL,
    equicorrelation_tol: float = DEFAULT_EQUICORRELATION_TOL,
    rank_tol: float | None = None,
    fit_tol: float = DEFAULT_FIT_TOL,
) -> OptimalSet:
    """Build the optimal-set polytope from one (approximate) optimum.

    Parameters
    ----------
    model : ConvexModel or ConvexSolution
        A scalar-output C-ReLU or C-GReLU optimum (e.g. ``build_program(...).solve()``).
    X, y : arrays
        Training data.
    lam, loss
        Default to the solution's own.
    active_tol, equicorrelation_tol
        See :func:`~cvxnn.optimality.kkt.recover_duals`.
    rank_tol : float, optional
        Relative singular-value tolerance of rank decisions, in ``[0, 1)``. Default: ``10 e`` clipped to
        ``[1e-9, 1e-4]``, where ``e = max(max_{k active} | ||q_k|| / lam - 1 |, dual infeasibility)``
        measures how exactly the residual satisfies the KKT conditions: the columns are built
        from ``q_k``, so their dependencies are resolved to about that accuracy.
    fit_tol : float
        Relative fit accuracy of every point drawn by :meth:`OptimalSet.sample`
        (default :data:`DEFAULT_FIT_TOL`); directions of the optimal set that would move the fit
        by more (null only at ``rank_tol``) are not sampled.

    Returns
    -------
    OptimalSet

    Raises
    ------
    InvalidParameterError
        For a loss whose optimal fit need not be unique (Huber), or ``rank_tol`` outside ``[0, 1)``.
    SolverError
        When the solution is too inaccurate for its optimal set: its KKT accuracy exceeds
        :data:`KKT_ACCURACY_MAX` (it is not an optimum at ``lam``: an uncertified solve, or
        another ``lam``'s solution), or the polished reference point misses the solver's fit
        by more than :data:`FIT_MISMATCH_MAX` (relative). Above :data:`KKT_ACCURACY_WARN` and
        :data:`FIT_MISMATCH_WARN` an :class:`~cvxnn.errors.InaccurateSolutionWarning` is
        emitted.
    """
    cert = recover_duals(model, X, y, lam, loss, active_tol=active_tol, equicorrelation_tol=equicorrelation_tol)
    if not getattr(cert.loss, "strictly_convex_fit", False):
        what = repr(cert.loss.name)
        if getattr(cert.loss, "weights", None) is not None:
            what += " with a zero sample weight (that sample's fit is free)"
        raise InvalidParameterError(
            f"the optimal-set polytope needs a loss strictly convex in the fit; {what} "
            "is not (use squared or logistic with positive weights). kkt_report and prune_exact "
            "still apply."
        )
    S = cert.equicorrelation
    pats = model.patterns
    Xa = pats.design(np.asarray(X, dtype=float))
    qn = cert.q_norms[S]
    if np.any(qn <= 0):
        raise SolverError("a block of S has q_k = 0; the model is not an optimum.", status="numerical_error")
    directions = cert.lam * cert.q[:, S] / qn
    columns = cert.sign[S] * (pats.mask[:, cert.pattern[S]] * (Xa @ directions))
    theta_S = cert.theta[:, S]
    norms_S = np.linalg.norm(theta_S, axis=0)
    act_S = cert.active[S]
    alpha_ref = np.where(act_S, norms_S / cert.lam, 0.0)
    # Direction error of the solution: how far theta_k / ||theta_k|| is from q_k / ||q_k||.
    if act_S.any():
        dir_err = float(np.max(np.linalg.norm(
            theta_S[:, act_S] / norms_S[act_S] - directions[:, act_S] / cert.lam, axis=0)))
        q_dev = float(np.max(np.abs(qn[act_S] / cert.lam - 1.0)))
    else:
        dir_err = q_dev = 0.0
    q_dev = max(q_dev, float(np.max(cert.q_norms / cert.lam - 1.0, initial=0.0)))
    # non-zero blocks below the equicorrelation level (kkt_report's "spurious" share of the
    # objective): a point analysed above its own lam has only these, and no other KKT error
    all_norms = np.linalg.norm(cert.theta, axis=0)
    # y as recover_duals validated it (an (n, 1) column is read as (n,), as kkt_report does)
    y = cert.loss.check_targets(check_y(y, cert.fit.shape[0]))
    objective = float(cert.loss.value(cert.fit, y)) + cert.lam * float(all_norms.sum())
    accuracy = max(q_dev, float(cert.lam * all_norms[cert.spurious].sum() / (objective if objective > 0 else 1.0)))
    if rank_tol is None:
        rank_tol = float(min(1e-4, max(DEFAULT_RANK_TOL, 10.0 * q_dev)))
    rank_tol = check_nonnegative_float(rank_tol, "rank_tol")
    if rank_tol >= 1:  # relative to the largest singular value: >= 1 makes every column dependent
        raise InvalidParameterError(f"rank_tol must be in [0, 1), got {rank_tol}.")
    fit_tol = check_nonnegative_float(fit_tol, "fit_tol")
    not_optimal = ("Solve to optimality first (the native solvers certify to tol=1e-10: "
                   "cvxnn.solve(X, y, patterns, ..., tol=1e-10)), at the lam you analyse.")
    if accuracy > KKT_ACCURACY_MAX:
        raise SolverError(
            f"optimal_set: the solution is not an optimum of this program at lam={cert.lam:.6g}: its KKT "
            f"conditions hold only to {accuracy:.1e} (relative; at most {KKT_ACCURACY_MAX:g}), so the set around "
            f"it would hold no optima. {not_optimal}", status=getattr(model, "status", None))
    if accuracy > KKT_ACCURACY_WARN:
        warnings.warn(
            f"optimal_set: the solution's KKT conditions hold only to {accuracy:.1e} (kkt_accuracy); the set "
            f"describes points near optima, not exact optima. {not_optimal}",
            InaccurateSolutionWarning, stacklevel=2)
    fit = cert.fit
    # Polish: the solver's block norms with the directions q^_k reproduce its fit only to the
    # accuracy of its block directions. A bounded Tikhonov least-squares correction on the support,
    #   min ||Bs z - fit||^2 + (mu s_max)^2 ||z - z0||^2  s.t.  z >= 0   (z = colnorm * alpha),
    # restores the solver's fit, which is far more accurate than its block directions, while
    # moving little along singular directions below mu = 1e-4 (relative), the near-degenerate
    # ones of a nearly non-unique optimum. The bound is part of the problem (BVLS): the earlier
    # unconstrained step clipped at zero afterwards could make the fit worse (a small block asked
    # to turn negative was clipped while the compensating move of the others was kept).
    supp = np.flatnonzero(alpha_ref > 0)
    if supp.size:
        cn = np.linalg.norm(columns[:, supp], axis=0)
        cn = np.where(cn > 0, cn, 1.0)
        Bs = columns[:, supp] / cn
        mu = _POLISH_DAMPING * np.linalg.norm(Bs, 2)
        z0 = alpha_ref[supp] * cn
        lsq = lsq_linear(np.vstack([Bs, mu * np.eye(supp.size)]), np.concatenate([fit, mu * z0]),
                         bounds=(0.0, np.inf), method="bvls", tol=1e-12)
        z = np.maximum(lsq.x, 0.0)
        if np.linalg.norm(Bs @ z - fit) <= np.linalg.norm(Bs @ z0 - fit):
            alpha_ref[supp] = z / cn
    rhs = columns @ alpha_ref
    mismatch = float(np.linalg.norm(rhs - fit) / max(1.0, np.linalg.norm(fit)))
    advice = ("Re-solve more accurately (the native solvers certify to tol=1e-10: "
              "cvxnn.solve(X, y, patterns, ..., tol=1e-10)) and build the set from that solution.")
    if mismatch > FIT_MISMATCH_MAX:
        raise SolverError(
            f"optimal_set: the solution is too inaccurate to describe its optimal set: the equicorrelation "
            f"directions reproduce its fit only to {mismatch:.1e} (relative; at most {FIT_MISMATCH_MAX:g}), so "
            f"the polytope's points would not be optima. {advice}", status="optimal_inaccurate")
    if mismatch > FIT_MISMATCH_WARN:
        warnings.warn(
            f"optimal_set: the equicorrelation directions reproduce the solution's fit only to {mismatch:.1e} "
            f"(fit_mismatch); the set describes points near the optimal fit, not exact optima. {advice}",
            InaccurateSolutionWarning, stacklevel=2)
    if q_dev > 1e-5:
        logger.warning("optimal_set: active blocks have ||q_k|| / lam off 1 by %.2e; rank decisions "
                       "use tolerance %.1e. Re-solve more accurately for a sharper description of "
                       "the optimal set.", q_dev, rank_tol)
    logger.debug("optimal_set: |S|=%d, direction error %.2e, fit mismatch %.2e, rank_tol %.1e",
                 S.size, dir_err, mismatch, rank_tol)
    theta_norm = float(np.linalg.norm(cert.theta))
    result = OptimalSet(
        reference=model,
        certificate=cert,
        blocks=S,
        directions=directions,
        columns=columns,
        rhs=rhs,
        alpha_ref=alpha_ref,
        fit_mismatch=mismatch,
        lam=cert.lam,
        rank_tol=rank_tol,
        fit_tol=fit_tol,
        direction_error=dir_err,
        kkt_accuracy=q_dev,
        design=Xa,
        # the zero optimum (lam >= lam_max) has no block size of its own: every point with no
        # larger objective has a penalty <= objective / lam (the loss is >= 0)
        block_scale=max(theta_norm if np.any(alpha_ref > 0) else objective / cert.lam, np.finfo(float).tiny),
    )
    # the reference's own distance from the set (spurious blocks outside S, its directions, its
    # fit): part of the set's accuracy, so contains() accepts the solution the set was built from
    result.reference_error = result.deviation(model)
    return result


def min_norm_solution(model: ConvexModel, X, y, lam: float | None = None, loss=None, **kwargs) -> ConvexModel:
    """The optimum of minimum Euclidean norm in the optimal set of ``model``'s problem.

    Unlike a solver's output, it is a continuous function of ``lam`` along the regularisation
    path [MP23]. ``kwargs`` go to :func:`optimal_set`.
    """
    return optimal_set(model, X, y, lam, loss, **kwargs).min_norm_model()
