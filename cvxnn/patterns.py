"""Activation patterns ``D_i`` of a two-layer ReLU network (``docs/math.md``, "Notation").

A gate ``g`` induces the pattern ``D = diag(1[X g >= 0])`` (ties count as active).
:class:`Patterns` holds the gates ``G`` (``d_a x p``), the ``n x p`` boolean mask
``M`` with ``M[:, i] = diag(D_i)``, and the bias convention, and can be re-applied
to new data for prediction.

With ``bias=True`` a column of ones is appended to ``X`` ("the design"), so gates
and first-layer weights have ``d + 1`` rows and the last row is the bias. The bias
is part of each neuron's weight vector and therefore **penalised** together with it.

Patterns come from

* :func:`sample_patterns`: gates ``g ~ N(0, I)`` from a seeded generator,
  duplicate patterns removed (the gate of the first occurrence is kept);
* :func:`enumerate_patterns`: every region of the hyperplane arrangement
  ``{g : x_j^T g = 0}`` (exact, for small problems and teaching);
* :meth:`Patterns.from_gates`: user-given gates (e.g. shared between two runs).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from ._validation import (
    MAX_ABS_VALUE,
    as_float_array,
    as_generator,
    check_bool,
    check_index,
    check_positive_int,
    check_X,
)
from .errors import (
    InvalidParameterError,
    MemoryBudgetError,
    NonFiniteError,
    PatternMismatchError,
    ShapeError,
)
from .operators import check_memory

__all__ = [
    "Patterns",
    "sample_patterns",
    "enumerate_patterns",
    "enumeration_cost",
    "max_pattern_count",
    "add_bias_column",
    "group_columns",
    "patterns_memory",
    "check_patterns",
]

logger = logging.getLogger(__name__)

#: Rows of ``X`` processed at once when computing ``X @ G`` (bounds the float temporary).
_ROW_CHUNK_BYTES = 64 * 2**20


def add_bias_column(X: np.ndarray) -> np.ndarray:
    """Return ``[X, 1]``: the design matrix used when a (penalised) bias is requested."""
    return np.hstack([X, np.ones((X.shape[0], 1), dtype=X.dtype)])


def _fingerprint(X: np.ndarray) -> str:
    """A short content hash of ``X`` (shape + bytes), to detect patterns used on other data."""
    h = hashlib.blake2b(digest_size=12)
    h.update(str(X.shape).encode())
    # + 0.0 turns -0.0 into 0.0: equal data have one fingerprint (a -0.0 failed check_data).
    # Hashed by row chunks (the same bytes in the same order): a whole copy of X was a second copy
    # of the data that patterns_memory did not count.
    X = np.asarray(X, dtype=np.float64).reshape(X.shape[0], -1)
    rows = max(1, 2**20 // (8 * max(1, X.shape[1])))  # 1 MiB temporaries
    for start in range(0, X.shape[0], rows):
        h.update(np.ascontiguousarray(X[start:start + rows] + 0.0).view(np.uint8))
    return h.hexdigest()


def patterns_memory(n: int, d_a: int, n_gates: int, *, sampled: bool = True, bias: bool = False) -> dict[str, int]:
    """Peak bytes of building the patterns of ``n_gates`` gates on ``n`` rows, by allocation.

    Counts what :func:`sample_patterns` / :meth:`Patterns.from_gates` hold at once: the
    gates (drawn, validated copy, kept subset), the boolean mask (computed, kept subset,
    the zero-pattern test), the float ``X_a G`` row chunk, the bit-packed columns used to
    find duplicates (with the sort's copies), the index arrays and the validated copies of
    the data (``X``, once more in :func:`sample_patterns`, and ``[X, 1]`` with a bias).

    Parameters
    ----------
    n, d_a, n_gates : int
        Rows of ``X``, rows of a gate (``d + 1`` with a bias), number of gates.
    sampled : bool
        Count the drawn gates too (:func:`sample_patterns`); False for user-given gates.
    bias : bool
        ``d_a`` includes the bias row (the design ``[X, 1]`` is a further copy of the data).

    Returns
    -------
    dict of str to int
        Bytes per allocation; their sum is what :func:`cvxnn.operators.check_memory` compares
        with the budget.
    """
    n, d_a, m = int(n), int(d_a), int(n_gates)
    rows = max(1, min(n, _ROW_CHUNK_BYTES // (8 * max(m, 1))))
    packed = -(-n // 8) * m
    d = d_a - 1 if bias else d_a
    return {
        "gates": (3 if sampled else 2) * d_a * m * 8,
        "mask": 3 * n * m,
        "X_a G chunk": rows * m * 8,
        "duplicate search": 3 * packed + 5 * m * 8,
        # not counted before: 75 MB used against 22.8 MB estimated for 10^6 x 3 data and 2 gates
        "data copies": ((2 if sampled else 1) * d + (d_a if bias else 0)) * n * 8,
    }


def _mask_chunked(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """``1[A @ G >= 0]`` computed in row chunks so the float temporary stays bounded."""
    n = A.shape[0]
    p = G.shape[1]
    top = np.abs(G).max(axis=0, initial=0.0)
    if np.any(top > MAX_ABS_VALUE):
        # 1[A g >= 0] does not change when g is scaled by a power of two; gates above 1e100
        # overflowed A g to inf - inf = NaN, read as inactive (a 1e300 gate got the wrong pattern)
        big = top > MAX_ABS_VALUE
        G = np.array(G)
        G[:, big] = np.ldexp(G[:, big], -np.frexp(top[big])[1])
    mask = np.empty((n, p), dtype=bool)
    rows = max(1, _ROW_CHUNK_BYTES // (8 * max(p, 1)))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        np.greater_equal(A[start:stop] @ G, 0.0, out=mask[start:stop])
    return mask


def group_columns(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group identical columns of a boolean ``n x m`` mask.

    Returns
    -------
    first : ndarray of int, shape (k,)
        Index of the first occurrence of each distinct column, in increasing order.
    group : ndarray of int, shape (m,)
        ``group[j]`` is the position in ``first`` of column ``j``'s distinct pattern.
    """
    m = mask.shape[1]
    if m == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    packed = np.ascontiguousarray(np.packbits(mask, axis=0).T)  # m x ceil(n/8)
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order], rank[inverse.ravel()]


def _check_finite_gates(G: np.ndarray) -> None:
    """Raise :class:`NonFiniteError` naming the first NaN / inf entry of the gates ``G``."""
    lo, hi = (float(G.min()), float(G.max())) if G.size else (0.0, 0.0)
    if np.isfinite(lo) and np.isfinite(hi):
        return
    bad = tuple(int(i) for i in np.argwhere(~np.isfinite(G))[0])
    where = f"row {bad[0]}, gate {bad[1]}" if len(bad) == 2 else f"index {bad}"
    raise NonFiniteError(f"gates contain NaN or infinity (first at {where}, value {G[bad]}); pass finite gates.")


def _unique_columns(mask: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct column of a boolean mask, in order."""
    return group_columns(mask)[0]


@dataclass(frozen=True, eq=False)
class Patterns:
    """Activation patterns ``D_1..D_p`` with their gates.

    Attributes
    ----------
    gates : ndarray of shape (d_a, p)
        Gate vectors ``g_i`` as columns; ``d_a = d + 1`` when ``bias`` (last row = gate bias).
    mask : ndarray of bool, shape (n, p)
        ``mask[:, i] = diag(D_i) = 1[X_a g_i >= 0]`` on the training data.
    bias : bool
        Whether a column of ones is appended to ``X`` (the bias is penalised).
    fingerprint : str
        Content hash of the training ``X``; used to refuse the patterns on other data.
    """

    gates: np.ndarray
    mask: np.ndarray
    bias: bool = False
    fingerprint: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        gates = as_float_array(self.gates, "gates")
        try:
            mask = np.asarray(self.mask)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"mask must be a boolean array: {exc}") from None
        if mask.dtype != bool:
            if not (np.issubdtype(mask.dtype, np.number) and np.all((mask == 0) | (mask == 1))):
                raise InvalidParameterError(f"mask must be a boolean array (or of 0 and 1), got dtype {mask.dtype}.")
            mask = mask.astype(bool)
        if gates.ndim != 2 or mask.ndim != 2 or gates.shape[1] != mask.shape[1]:
            raise ShapeError(
                f"gates {gates.shape} and mask {mask.shape} must be 2-D with the same "
                "number of columns (patterns)."
            )
        if gates.shape[1] == 0:
            raise InvalidParameterError(
                "Patterns needs at least one pattern (gates and mask have 0 columns); a network "
                "without neurons is the zero model on any single pattern.")
        _check_finite_gates(gates)
        object.__setattr__(self, "bias", check_bool(self.bias, "bias"))
        # read-only views: the caller's own arrays stay writable
        gates, mask = gates.view(), mask.view()
        gates.setflags(write=False)
        mask.setflags(write=False)
        object.__setattr__(self, "gates", gates)
        object.__setattr__(self, "mask", mask)
        # Patterns read from a file carry a mask nobody has checked against the gates; the
        # first check_data against the training data does (see io.load).
        object.__setattr__(self, "_mask_unverified", False)

    # ------------------------------------------------------------------ sizes
    @property
    def n_patterns(self) -> int:
        """Number of patterns ``p``."""
        return self.gates.shape[1]

    @property
    def n_samples(self) -> int:
        """Number of training samples ``n`` the mask was computed on."""
        return self.mask.shape[0]

    @property
    def n_features(self) -> int:
        """Number of raw features ``d`` (without the bias column)."""
        return self.gates.shape[0] - int(self.bias)

    @property
    def design_dim(self) -> int:
        """Rows ``d_a`` of a gate or weight vector (``d + 1`` with a bias)."""
        return self.gates.shape[0]

    def __len__(self) -> int:
        return self.n_patterns

    def __repr__(self) -> str:
        return (
            f"Patterns(n_patterns={self.n_patterns}, n_samples={self.n_samples}, "
            f"n_features={self.n_features}, bias={self.bias})"
        )

    # --------------------------------------------------------------- data use
    def design(self, X) -> np.ndarray:
        """The design ``X_a`` for raw data ``X``: ``X`` or ``[X, 1]`` when ``bias``."""
        X = check_X(X)
        if X.shape[1] != self.n_features:
            raise ShapeError(
                f"X has {X.shape[1]} features but the patterns were built for {self.n_features}."
            )
        return add_bias_column(X) if self.bias else X

    def mask_for(self, X) -> np.ndarray:
        """Boolean mask ``1[X_a G >= 0]`` of these gates on (possibly new) data ``X``."""
        return _mask_chunked(self.design(X), self.gates)

    def signs(self) -> np.ndarray:
        """``2 M - 1`` as float (``n x p``): row ``j`` of ``Xt_i`` is ``signs[j, i] * x_j``."""
        return 2.0 * self.mask - 1.0

    def signed_data(self, X, i: int) -> np.ndarray:
        """``Xt_i = (2 D_i - I) X_a`` for one pattern ``i`` (``n x d_a``)."""
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise InvalidParameterError(f"i must be a pattern index (an integer), got {i!r}.")
        if not -self.n_patterns <= i < self.n_patterns:
            raise ShapeError(f"pattern index {i} is out of range for {self.n_patterns} patterns.")
        Xa = self.design(X)
        return (2.0 * self.mask[:, i] - 1.0)[:, None] * Xa

    def matches(self, X) -> bool:
        """Whether ``X`` is the data these patterns were built on (content hash)."""
        X = check_X(X)
        return bool(self.fingerprint) and _fingerprint(X) == self.fingerprint

    def check_data(self, X) -> None:
        """Raise :class:`PatternMismatchError` unless ``X`` is the data of these patterns."""
        X = as_float_array(X, "X")
        if X.ndim != 2 or X.shape[0] != self.n_samples or X.shape[1] != self.n_features:
            hint = ""
            if self.bias and X.ndim == 2 and X.shape[1] == self.n_features + 1:
                hint = " (with bias=True pass the raw X, not the design [X, 1]: the column of ones is added for you)"
            raise PatternMismatchError(
                f"the patterns were built on data of shape ({self.n_samples}, {self.n_features}), "
                f"got X of shape {X.shape}{hint}; build patterns on this X (sample_patterns(X, ...)) or "
                "use Patterns.from_gates(X, patterns.gates) to re-apply the same gates."
            )
        if self.fingerprint and not self.matches(X):
            raise PatternMismatchError(
                "the patterns were built on different data of the same shape; build patterns on "
                "this X or re-apply the gates with Patterns.from_gates(X, patterns.gates, bias=...)."
            )
        if self._mask_unverified:
            self._verify_mask(X)

    def _verify_mask(self, X) -> None:
        """Check ``mask == 1[X_a G >= 0]`` on the training data (up to round-off at ties).

        Run once for patterns read from a file (their mask was never computed here).

        Raises
        ------
        PatternMismatchError
            Some stored pattern entry contradicts its gate on ``X``.
        """
        Xa = self.design(X)
        G = self.gates
        n, p = self.mask.shape
        scale = np.linalg.norm(Xa, axis=1)[:, None] * np.linalg.norm(G, axis=0)[None, :]
        rows = max(1, _ROW_CHUNK_BYTES // (8 * max(p, 1)))
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            Z = Xa[start:stop] @ G
            wrong = (Z >= 0) != self.mask[start:stop]
            wrong &= np.abs(Z) > 1e-9 * scale[start:stop]  # a tie may round either way elsewhere
            if wrong.any():
                j, i = (int(v) for v in np.argwhere(wrong)[0])
                raise PatternMismatchError(
                    f"the stored activation mask contradicts its gates on this data ({int(wrong.sum())} "
                    f"entries in rows {start}..{stop - 1}, first at row {start + j}, pattern {i}); "
                    "the patterns (or the model file holding them) are corrupt."
                )
        object.__setattr__(self, "_mask_unverified", False)

    def subset(self, index) -> Patterns:
        """Patterns restricted to the columns ``index`` (array of ints or booleans).

        Raises
        ------
        InvalidParameterError
            ``index`` selects no pattern (an empty list or an all-False mask).
        ShapeError
            ``index`` out of range or more than one-dimensional.
        """
        index = check_index(index, self.n_patterns)
        if index.size == 0:
            raise InvalidParameterError(
                f"subset selects no pattern (an empty index or an all-False mask out of {self.n_patterns}); "
                "keep at least one pattern."
            )
        sub = Patterns(
            gates=np.array(self.gates[:, index]),
            mask=np.array(self.mask[:, index]),
            bias=self.bias,
            fingerprint=self.fingerprint,
        )
        object.__setattr__(sub, "_mask_unverified", self._mask_unverified)
        return sub

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_gates(
        cls, X, gates, *, bias: bool = False, unique: bool = False, drop_zero: bool = False,
        memory_budget: int | None = None,
    ) -> Patterns:
        """Patterns of the given gates on ``X``.

        Parameters
        ----------
        X : array of shape (n, d)
        gates : array of shape (d_a, p)
            ``d_a = d + 1`` when ``bias`` (last row is the gate bias).
        bias : bool
            Append a column of ones to ``X``.
        unique : bool
            Remove duplicate patterns (keep the first gate of each).
        drop_zero : bool
            Remove the all-zero pattern (it contributes nothing to any fit).
        memory_budget : int, optional
            Bytes allowed for the allocations summed (:func:`patterns_memory`); default
            :func:`cvxnn.operators.default_memory_budget`.

        Raises
        ------
        MemoryBudgetError
            When the gates, the mask and the temporaries together exceed the budget.
        InvalidParameterError
            With ``drop_zero``, when every gate gives the all-zero pattern.
        """
        return cls._from_gates(X, gates, bias=bias, unique=unique, drop_zero=drop_zero,
                               memory_budget=memory_budget, negate_if_all_zero=False)

    @classmethod
    def _from_gates(cls, X, gates, *, bias: bool, unique: bool, drop_zero: bool, memory_budget: int | None,
                    negate_if_all_zero: bool) -> Patterns:
        """:meth:`from_gates`; with ``negate_if_all_zero``, when ``drop_zero`` leaves no pattern
        (``X_a g < 0`` on every row for every gate), the first gate negated, whose pattern is
        all-ones, instead of an error (:func:`sample_patterns`)."""
        X = check_X(X)
        bias = check_bool(bias, "bias")
        Xa = add_bias_column(X) if bias else X
        G = as_float_array(gates, "gates")
        if G.ndim == 1:
            G = G[:, None]
        if G.ndim != 2 or G.shape[0] != Xa.shape[1] or G.shape[1] == 0:
            hint = ""
            if G.ndim == 2 and G.shape[0] == X.shape[1] + 1 and not bias:
                hint = " (gates with one row more than X has columns carry a bias: pass bias=True)"
            elif G.ndim == 2 and G.shape[0] == X.shape[1] and bias:
                hint = " (these gates have no bias row: pass bias=False)"
            elif G.ndim == 2 and G.shape[0] == Xa.shape[1]:
                hint = " (no gate at all: pass at least one column)"
            raise ShapeError(
                f"gates must have shape ({Xa.shape[1]}, p) with p >= 1 for X with {X.shape[1]} features"
                f"{' plus a bias' if bias else ''}; got {G.shape}{hint}."
            )
        _check_finite_gates(G)
        check_memory(patterns_memory(Xa.shape[0], Xa.shape[1], G.shape[1], sampled=False, bias=bias),
                     what=f"the activation patterns of {G.shape[1]:,} gates on {Xa.shape[0]:,} rows",
                     budget=memory_budget, hint="Use fewer gates or subsample the data.")
        mask = _mask_chunked(Xa, G)
        keep = np.arange(G.shape[1])
        if unique:
            keep = _unique_columns(mask)
        if drop_zero:
            keep = keep[mask[:, keep].any(axis=0)]
        if keep.size == 0 and negate_if_all_zero:
            # X_a g < 0 on every row (ties count as active), so X_a (-g) > 0: the all-ones pattern
            logger.info("every sampled gate gives the all-zero pattern on these data (e.g. constant "
                        "columns with a bias); using the negated first gate (the all-ones pattern)")
            G = -G[:, :1]
            mask = _mask_chunked(Xa, G)
            keep = np.zeros(1, dtype=np.intp)
        if keep.size == 0:
            raise InvalidParameterError(
                "no activation pattern is left (every gate gives the all-zero pattern); "
                "use more gates or keep the zero pattern."
            )
        if keep.size != G.shape[1]:
            G, mask = G[:, keep], mask[:, keep]
        return cls(gates=np.ascontiguousarray(G), mask=np.ascontiguousarray(mask), bias=bias,
                   fingerprint=_fingerprint(X))


def sample_patterns(
    X, n_gates: int = 100, *, seed=None, bias: bool = False, drop_zero: bool = True,
    memory_budget: int | None = None,
) -> Patterns:
    """Sample activation patterns from Gaussian gates (``docs/math.md``, "Data, patterns and cones").

    Draws ``n_gates`` gates ``g ~ N(0, I_{d_a})``, computes ``1[X_a g >= 0]`` and removes
    duplicate patterns, keeping the gate of the first occurrence, so the result may hold
    fewer than ``n_gates`` patterns.

    With ``drop_zero``, when every drawn gate gives the all-zero pattern (``X_a g < 0`` on
    every row: degenerate data such as all-constant or all-zero columns with a bias, where a
    gate's pattern is set by the sign of its bias alone), the result is the first gate negated,
    ``-g`` (as likely a draw as ``g``), whose pattern is all-ones: the pattern set is never
    empty. On any other data the patterns are those of the drawn gates.

    Parameters
    ----------
    X : array of shape (n, d)
    n_gates : int
        Number of gates drawn.
    seed : None, int or numpy.random.Generator
        Source of randomness; the same seed gives bit-identical patterns.
    bias : bool
        Append a column of ones (penalised bias).
    drop_zero : bool
        Remove the all-zero pattern.
    memory_budget : int, optional
        Bytes allowed for all the allocations together (:func:`patterns_memory`); default
        :func:`cvxnn.operators.default_memory_budget` (half the memory of the machine or
        container, at most what is available).

    Returns
    -------
    Patterns

    Raises
    ------
    MemoryBudgetError
        Before drawing anything, when the gates, the mask and the temporaries together
        exceed the budget; the message names the bytes of each.
    """
    X = check_X(X)
    n_gates = check_positive_int(n_gates, "n_gates", maximum=None)  # the memory budget bounds it
    bias = check_bool(bias, "bias")
    rng = as_generator(seed)
    d_a = X.shape[1] + int(bias)
    check_memory(patterns_memory(X.shape[0], d_a, n_gates, bias=bias),
                 what=f"sample_patterns with {n_gates:,} gates on {X.shape[0]:,} x {d_a} data",
                 budget=memory_budget, hint="Use fewer gates (duplicates are removed anyway) or subsample the data.")
    G = rng.standard_normal((d_a, n_gates))
    pats = Patterns._from_gates(X, G, bias=bias, unique=True, drop_zero=drop_zero,
                                memory_budget=memory_budget, negate_if_all_zero=True)
    logger.debug("sampled %d gates -> %d distinct patterns", n_gates, pats.n_patterns)
    return pats


def max_pattern_count(n: int, rank: int) -> int:
    """Upper bound ``2 * sum_{k<r} C(n-1, k)`` on the number of patterns (regions).

    Attained by ``n`` points in general position spanning a rank-``r`` space.
    """
    if n <= 0:
        return 1
    if rank <= 0:
        return 1
    return 2 * sum(math.comb(n - 1, k) for k in range(rank))


def _regions_rank2(B: np.ndarray) -> np.ndarray:
    """Interior points of every region of the central line arrangement in R^2.

    ``B`` is ``n x 2`` (coordinates of the data in an orthonormal basis of its row space).
    Region boundaries are the directions orthogonal to each nonzero row; a point strictly
    between two consecutive boundary angles lies in an open region.
    """
    nz = np.linalg.norm(B, axis=1) > 0
    if not nz.any():
        return np.zeros((2, 1))
    ang = np.arctan2(B[nz, 1], B[nz, 0])
    bounds = np.concatenate([ang + np.pi / 2, ang - np.pi / 2]) % (2 * np.pi)
    bounds = np.unique(np.round(bounds, 12))
    nxt = np.append(bounds[1:], bounds[0] + 2 * np.pi)
    mid = (bounds + nxt) / 2
    return np.vstack([np.cos(mid), np.sin(mid)])


def _regions_lp(B: np.ndarray, max_patterns: int) -> np.ndarray:
    """Interior points of every region of a central arrangement, by depth-first search.

    Adds the hyperplanes ``b_j^T g = 0`` one at a time; a partial sign vector is kept when
    the LP ``max t s.t. s_j b_j^T g >= t, |g| <= 1`` has ``t > 0``. Pruning infeasible
    prefixes keeps the work proportional to the number of regions of the prefixes.
    """
    from scipy.optimize import linprog

    n, r = B.shape
    rows = [j for j in range(n) if np.linalg.norm(B[j]) > 0]
    scale = np.linalg.norm(B[rows], axis=1, keepdims=True) if rows else None
    Bn = B[rows] / scale if rows else B[:0]
    c = np.zeros(r + 1)
    c[-1] = -1.0
    bounds = [(-1.0, 1.0)] * r + [(None, 1.0)]

    def interior(signs: np.ndarray):
        k = signs.size
        A = np.hstack([-(signs[:, None] * Bn[:k]), np.ones((k, 1))])
        res = linprog(c, A_ub=A, b_ub=np.zeros(k), bounds=bounds, method="highs")
        if res.status != 0 or -res.fun <= 1e-9:
            return None
        return res.x[:r]

    points: list[np.ndarray] = []
    stack: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.ones(r) / np.sqrt(r))]
    m = Bn.shape[0]
    while stack:
        signs, g = stack.pop()
        k = signs.size
        if k == m:
            points.append(g)
            if len(points) > max_patterns:
                raise MemoryBudgetError(
                    f"the arrangement has more than max_patterns={max_patterns} regions; "
                    "sample patterns instead or raise max_patterns."
                )
            continue
        s_here = 1.0 if Bn[k] @ g > 0 else -1.0
        # The current interior point already certifies one child; only the other needs an LP.
        if abs(Bn[k] @ g) > 1e-12:
            stack.append((np.append(signs, s_here), g))
            other = np.append(signs, -s_here)
        else:
            other = None
            for s in (1.0, -1.0):
                child = np.append(signs, s)
                gc = interior(child)
                if gc is not None:
                    stack.append((child, gc))
        if other is not None:
            gc = interior(other)
            if gc is not None:
                stack.append((other, gc))
    return np.array(points).T if points else np.zeros((r, 0))


def _distinct_hyperplanes(B: np.ndarray) -> int:
    """Number of distinct hyperplanes ``{g : b_j^T g = 0}`` among the rows of ``B`` (rows equal
    up to a nonzero scale define the same hyperplane; zero rows define none)."""
    norms = np.linalg.norm(B, axis=1)
    rows = B[norms > 0] / norms[norms > 0, None]
    if rows.shape[0] == 0:
        return 0
    lead = rows[np.arange(rows.shape[0]), np.argmax(np.abs(rows) > 1e-12, axis=1)]
    rows = rows * np.sign(lead)[:, None]
    return int(np.unique(np.round(rows, 9), axis=0).shape[0])


def enumeration_cost(n_hyperplanes: int, rank: int) -> tuple[int, int]:
    """A priori cost of :func:`enumerate_patterns` for hyperplanes in general position.

    Parameters
    ----------
    n_hyperplanes : int
        Distinct hyperplanes ``{g : x_j^T g = 0}`` (distinct rows of ``X_a`` up to scale).
    rank : int
        Rank of ``X_a``.

    Returns
    -------
    (patterns, lp_solves) : tuple of int
        The number of regions ``max_pattern_count(n_hyperplanes, rank)`` (an upper bound,
        attained in general position) and the number of small LPs of the depth-first search
        over the prefixes of the arrangement (rank >= 3; zero otherwise).
    """
    m, r = int(n_hyperplanes), int(rank)
    regions = max_pattern_count(m, r) if m > 0 else 1
    lps = sum(max_pattern_count(k, min(r, k)) for k in range(1, m + 1)) if r >= 3 else 0
    return regions, lps


def enumerate_patterns(
    X, *, bias: bool = False, drop_zero: bool = False, max_patterns: int = 100_000,
    memory_budget: int | None = None,
) -> Patterns:
    """Enumerate every activation pattern of ``X`` exactly (all regions of the arrangement).

    The patterns are those of the open regions of the central hyperplane arrangement
    ``{g : x_j^T g = 0}`` in the row space of ``X_a``; their closures cover every weight
    vector, so the C-ReLU program on them is the exact (global) training problem.
    Data of rank <= 2 use an exact angular sweep (``O(n log n)``); higher rank uses a
    depth-first search over sign vectors with one small LP per node (tiny ``n``).

    Before any work, the cost is estimated (:func:`enumeration_cost`): the number of regions
    for the distinct hyperplanes of ``X_a`` in general position, ``2 sum_{k<r} C(m, k)``, and
    the LP solves of the search. Enumeration is refused when that number exceeds
    ``max_patterns`` (data far from general position may have fewer patterns: raise
    ``max_patterns`` to try) or when the gates and mask would not fit the memory budget.

    Parameters
    ----------
    X : array of shape (n, d)
    bias : bool
        Append a column of ones (penalised bias) before enumerating.
    drop_zero : bool
        Remove the all-zero pattern.
    max_patterns : int
        Refuse (with :class:`~cvxnn.errors.MemoryBudgetError`) arrangements with more regions.
    memory_budget : int, optional
        Bytes allowed for the gates, mask and temporaries together; default
        :func:`cvxnn.operators.default_memory_budget`.

    Returns
    -------
    Patterns
        One gate per region; the count equals ``max_pattern_count(n, rank)`` for points in
        general position.

    Raises
    ------
    MemoryBudgetError
        Before enumerating, when the estimated number of patterns exceeds ``max_patterns`` or
        their gates and mask exceed the memory budget; the message gives the estimate.
    """
    X = check_X(X)
    bias = check_bool(bias, "bias")
    max_patterns = check_positive_int(max_patterns, "max_patterns", maximum=None)
    # The patterns of [X, 1] are those of any affine image (X - mu) / sigma with its own gates,
    # and without a bias of any column scaling: enumerate on centred, unit-scale columns. The raw
    # data lost regions to the LP's margin test (X + 1e5: 22 of 30 patterns; X * 1e-10: 2) and
    # to underflowing row norms (X * 1e-170: 1 of 22).
    X_raw = X
    mu = X.mean(axis=0) if bias else np.zeros(X.shape[1])
    sigma = np.abs(X - mu).max(axis=0, initial=0.0)
    sigma = np.where(sigma > 0, sigma, 1.0)
    X = (X - mu) / sigma
    Xa = add_bias_column(X) if bias else X
    _, s, Vt = np.linalg.svd(Xa, full_matrices=False)
    tol = s.max(initial=0.0) * max(Xa.shape) * np.finfo(float).eps
    r = int((s > tol).sum())
    basis = Vt[:r].T  # d_a x r, orthonormal basis of the row space
    B = Xa @ basis
    m = _distinct_hyperplanes(B) if r > 0 else 0
    regions, lps = enumeration_cost(m, r)
    if regions > max_patterns:
        raise MemoryBudgetError(
            f"X{' with a bias column' if bias else ''} has rank {r} and {m} distinct rows (up to "
            f"scale): up to {regions:,} activation patterns"
            + (f", found by about {lps:,} LP solves" if lps else "")
            + f"; enumeration is limited to max_patterns={max_patterns:,}. Use sample_patterns "
            "instead, or raise max_patterns if the data are far from general position."
        )
    check_memory(patterns_memory(X.shape[0], Xa.shape[1], regions, sampled=True, bias=bias),
                 what=f"enumerate_patterns ({regions:,} patterns on {X.shape[0]:,} rows)",
                 budget=memory_budget, hint="Use sample_patterns instead.")
    if r == 0:
        G = np.zeros((Xa.shape[1], 1))
    else:
        if r == 1:
            Z = np.array([[1.0, -1.0]])
        elif r == 2:
            Z = _regions_rank2(B)
        else:
            Z = _regions_lp(B, max_patterns)
        G = basis @ Z
    scaled = Patterns.from_gates(X, G, bias=bias, unique=True, drop_zero=drop_zero, memory_budget=memory_budget)
    # the gates of the raw data: [X_raw, 1] (g_x / sigma, g_b - mu . g_x / sigma) = [X, 1] g; the
    # mask is the one computed on the well-scaled data (the same up to rounding on the hyperplanes)
    Gs = scaled.gates
    Gx = Gs[:X.shape[1]] / sigma[:, None]
    G_raw = np.vstack([Gx, Gs[X.shape[1]:] - mu @ Gx]) if bias else Gx
    pats = Patterns(gates=np.ascontiguousarray(G_raw), mask=scaled.mask, bias=bias, fingerprint=_fingerprint(X_raw))
    if pats.n_patterns > max_patterns:
        raise MemoryBudgetError(
            f"{pats.n_patterns} patterns exceed max_patterns={max_patterns}; sample instead."
        )
    logger.debug("enumerated %d patterns (rank %d, %d hyperplanes, bound %d)", pats.n_patterns, r, m, regions)
    return pats


def check_patterns(patterns, X) -> Patterns:
    """Check that ``patterns`` is a :class:`~cvxnn.patterns.Patterns` built on ``X``.

    Raises
    ------
    InvalidParameterError
        ``patterns`` is not a ``Patterns``.
    PatternMismatchError
        The patterns were built on other data (different shape or content).
    """
    if not isinstance(patterns, Patterns):
        raise InvalidParameterError(
            f"patterns must be a cvxnn.Patterns (from sample_patterns / enumerate_patterns / "
            f"Patterns.from_gates), got {type(patterns).__name__}."
        )
    patterns.check_data(X)
    return patterns
