"""One validation path for every entry point (builders, native solvers, estimators, CLI).

Every public function of cvxnn that takes data or parameters passes them through the
helpers here, so the same input gets the same answer everywhere. The rules (also in
``docs/reliability.md``):

* **Arrays** are converted to new C-contiguous ``float64`` arrays (never views of the
  caller's data, which is never modified). Accepted: numpy arrays and nested sequences of
  real numbers, integer and boolean arrays (booleans become 0.0 / 1.0), ``float16`` /
  ``float32`` (upcast), pandas-like objects (anything with ``to_numpy()`` or
  ``__array__``; converted with ``to_numpy(dtype=float)``), object arrays whose elements
  are all real numbers, and numpy masked arrays without masked entries.
  Refused with :class:`~cvxnn.errors.InvalidParameterError`: scipy sparse matrices (densify
  with ``X.toarray()`` if it fits in memory), complex, string, bytes, datetime / timedelta
  arrays, object arrays holding anything else, masked arrays with masked entries.
  Ragged nested sequences raise :class:`~cvxnn.errors.ShapeError`.
* **Shapes**: ``X`` is ``(n, d)`` with ``n >= 1`` and ``d >= 1``; ``y`` is ``(n,)`` or
  ``(n, c)`` with ``c >= 1`` (an ``(n, 1)`` column becomes ``(n,)``).
* **Values**: NaN / inf raise :class:`~cvxnn.errors.NonFiniteError` naming the first bad
  entry; so do finite values above :data:`MAX_ABS_VALUE` in magnitude, whose products
  overflow ``float64`` inside the solvers.
* **Degenerate columns** (constant, all-zero or duplicated columns) are legal: every convex
  program stays well posed and the optimal fit is unique. They make the *weights* of an
  optimum non-unique, so :func:`check_X` can report them (``degenerate="warn"`` or
  ``"raise"``); :func:`describe_columns` lists them.
* **Parameters**: ``lam`` is a finite real ``>= 0`` (``bool``, NaN, negative, strings and
  arrays of size > 1 are refused); a grid of ``lam`` values (:func:`check_lams`) is a
  non-empty 1-D sequence of such numbers; integer counts are real integers (not ``bool``,
  not ``3.0``) no larger than :data:`MAX_INT`; tolerances are real numbers, never NaN;
  seeds are ``None``, non-negative ints, ``SeedSequence`` or ``Generator``.
* **Memory**: :func:`check_allocation` refuses an allocation above the memory budget
  (:func:`cvxnn.operators.default_memory_budget`: half the memory of the machine or
  container, at most what is available) with :class:`~cvxnn.errors.MemoryBudgetError`
  naming the size it needed, before allocating.
"""

from __future__ import annotations

import numbers
import operator
import warnings
from typing import Any

import numpy as np

from .errors import (
    CvxnnWarning,
    InvalidParameterError,
    MemoryBudgetError,
    NonFiniteError,
    ShapeError,
)

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "MAX_ABS_VALUE",
    "MAX_INT",
    "as_float_array",
    "as_generator",
    "check_X",
    "check_Xy",
    "check_allocation",
    "check_bool",
    "check_choice",
    "check_index",
    "check_lam",
    "check_lams",
    "check_nonnegative_float",
    "check_positive_int",
    "check_y",
    "describe_columns",
]

#: Largest magnitude accepted in data arrays. Products and sums of such values (``X @ G``,
#: ``X^T X`` in the solvers) stay far from ``float64`` overflow (``1.8e308``); larger values
#: are refused with a hint to rescale (see :mod:`cvxnn.preprocessing`).
MAX_ABS_VALUE = 1e100

#: Budget of the platforms that report no memory size (bytes); elsewhere the budget is
#: :func:`cvxnn.operators.default_memory_budget` (half the memory of the machine or container,
#: at most what is available).
DEFAULT_MEMORY_BUDGET = 4 * 2**30

#: Largest integer parameter accepted by default (iteration limits, counts): the largest C
#: ``int`` (``2**31 - 1``), which the compiled solvers (Clarabel, SCS) take their limits as.
MAX_INT = 2**31 - 1

_DEGENERATE = ("ignore", "warn", "raise")


# ----------------------------------------------------------------------------- arrays
def _describe_type(a: Any) -> str:
    return f"{type(a).__module__}.{type(a).__qualname__}"


def _is_sparse(a: Any) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return bool(sp.issparse(a))


def as_float_array(a, name: str = "array", *, dtype=np.float64) -> np.ndarray:
    """Convert ``a`` to a new C-contiguous float array (the caller's data is never aliased).

    Parameters
    ----------
    a : array_like
        Numpy array, nested sequence of reals, pandas-like object (``to_numpy`` /
        ``__array__``), integer, boolean or object array of real numbers.
    name : str
        Used in error messages.
    dtype : numpy floating dtype
        ``float64`` (default) or ``float32``.

    Returns
    -------
    ndarray
        A copy with the requested float dtype. Values are *not* checked for finiteness.

    Raises
    ------
    ShapeError
        ``a`` is None or a ragged nested sequence.
    InvalidParameterError
        Sparse matrices, complex / string / bytes / datetime data, object arrays holding
        non-numbers, masked arrays with masked entries.
    """
    if a is None:
        raise ShapeError(f"{name} is None; pass an array.")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise InvalidParameterError(f"dtype must be a floating dtype, got {dtype}.")
    if _is_sparse(a):
        raise InvalidParameterError(
            f"{name} is a scipy sparse matrix ({_describe_type(a)}); cvxnn works on dense arrays. "
            f"Densify it with {name}.toarray() if it fits in memory."
        )
    if isinstance(a, (str, bytes)):
        raise InvalidParameterError(f"{name} is a string ({a[:20]!r}); pass numeric data.")
    if isinstance(a, np.ma.MaskedArray):
        if np.ma.is_masked(a):
            raise InvalidParameterError(
                f"{name} is a masked array with masked entries; fill or drop them first "
                f"(e.g. {name}.filled(value) or remove the rows)."
            )
        a = np.ma.getdata(a)
    if not isinstance(a, np.ndarray) and hasattr(a, "to_numpy"):
        # pandas DataFrame / Series and look-alikes: ask for floats directly.
        try:
            a = a.to_numpy(dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(
                f"{name} ({_describe_type(a)}) could not be converted to {dtype} ({exc}); "
                "encode categorical / string columns as numbers first."
            ) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            raw = np.asarray(a)
    except ValueError as exc:
        raise ShapeError(
            f"{name} could not be made into an array ({exc}); nested sequences must be "
            "rectangular (every row the same length)."
        ) from exc
    except (TypeError, RecursionError, OverflowError) as exc:
        raise InvalidParameterError(
            f"{name} ({_describe_type(a)}) could not be converted to an array ({exc}); pass numeric data."
        ) from exc
    kind = raw.dtype.kind
    if kind == "c":
        raise InvalidParameterError(
            f"{name} is complex ({raw.dtype}); cvxnn needs real data (take .real explicitly if intended)."
        )
    if kind in "USa":
        raise InvalidParameterError(
            f"{name} holds strings ({raw.dtype}); convert to numbers (e.g. {name}.astype(float)) "
            "or encode categorical values first."
        )
    if kind in "mM":
        raise InvalidParameterError(
            f"{name} holds datetimes / timedeltas ({raw.dtype}); convert them to numbers first."
        )
    if kind == "V":
        raise InvalidParameterError(
            f"{name} is a structured / void array ({raw.dtype}); pass a plain numeric array."
        )
    if kind == "O":
        flat = raw.ravel()
        ok = all(
            isinstance(v, (numbers.Real, np.bool_)) and not isinstance(v, (str, bytes)) for v in flat
        )
        if not ok:
            bad = next(v for v in flat if not isinstance(v, (numbers.Real, np.bool_)))
            raise InvalidParameterError(
                f"{name} is an object array holding {type(bad).__name__} values; pass real numbers."
            )
    try:
        arr = np.array(raw, dtype=dtype, copy=True, order="C")
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidParameterError(
            f"{name} could not be converted to a {dtype} array ({exc}); pass numeric data."
        ) from exc
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    # min and max propagate NaN and see inf without a temporary; np.isfinite and np.abs made a
    # bool and a float copy of the data (2.1x its bytes at the peak of every check_X)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = np.isfinite(arr)
        bad = tuple(int(i) for i in np.argwhere(~finite)[0])
        where = f"index {bad}" if len(bad) != 2 else f"row {bad[0]}, column {bad[1]}"
        raise NonFiniteError(
            f"{name} contains NaN or infinity (first at {where}, value {arr[bad]}); "
            "remove or impute those entries."
        )
    if arr.size:
        top = max(abs(lo), abs(hi))
        if top > MAX_ABS_VALUE:
            raise NonFiniteError(
                f"{name} has entries up to {top:.3g} in magnitude; products of such values overflow "
                f"float64 inside the solvers (limit {MAX_ABS_VALUE:.0e}). Divide the data by a common "
                f"factor first (e.g. {name} / {top:.0e}; Standardizer checks its input the same way)."
            )


def describe_columns(X) -> dict[str, Any]:
    """Report degenerate columns of a data matrix.

    Parameters
    ----------
    X : array of shape (n, d)

    Returns
    -------
    dict
        ``"constant"``: indices of constant columns (including all-zero ones);
        ``"zero"``: indices of all-zero columns;
        ``"duplicates"``: list of ``(j, k)`` pairs, ``k > j``, with column ``k`` equal to
        column ``j`` (``k`` paired with its first occurrence ``j``).
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ShapeError(f"describe_columns needs a 2-D array, got shape {X.shape}.")
    if X.shape[0] == 0:
        return {"constant": [], "zero": [], "duplicates": []}
    constant = np.flatnonzero(np.all(X == X[0:1], axis=0)).tolist()
    zero = np.flatnonzero(~X.any(axis=0)).tolist()
    duplicates: list[tuple[int, int]] = []
    if X.shape[1] > 1:
        cols = np.ascontiguousarray(X.T)
        keys = cols.view(np.dtype((np.void, cols.shape[1] * cols.itemsize))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        for k in range(X.shape[1]):
            j = int(first[inverse[k]])
            if j != k:
                duplicates.append((j, k))
    return {"constant": constant, "zero": zero, "duplicates": duplicates}


def _report_degenerate(X: np.ndarray, name: str, mode: str) -> None:
    if mode == "ignore":
        return
    info = describe_columns(X)
    parts = []
    if info["constant"]:
        parts.append(f"constant columns {info['constant'][:10]}")
    if info["duplicates"]:
        parts.append(f"duplicated columns (first, copy) {info['duplicates'][:10]}")
    if not parts:
        return
    msg = (
        f"{name} has {' and '.join(parts)}: the optimal fit is still unique but the weights of an "
        "optimum are not; drop them for interpretable weights (a constant column acts like a bias)."
    )
    if mode == "raise":
        raise InvalidParameterError(msg)
    warnings.warn(msg, CvxnnWarning, stacklevel=4)


def check_X(
    X,
    *,
    name: str = "X",
    dtype=np.float64,
    min_samples: int = 1,
    degenerate: str = "ignore",
) -> np.ndarray:
    """Validate a data matrix ``X`` (``n x d``) and return a float copy.

    Parameters
    ----------
    X : array_like of shape (n, d)
        See :func:`as_float_array` for the accepted types.
    name : str
        Used in error messages.
    dtype : numpy floating dtype
        Dtype of the returned copy (default ``float64``).
    min_samples : int
        Smallest accepted ``n`` (default 1: a single sample is a valid, if tiny, problem).
    degenerate : {"ignore", "warn", "raise"}
        What to do about constant or duplicated columns (see :func:`describe_columns`).

    Returns
    -------
    ndarray of shape (n, d)
        A new C-contiguous array; ``X`` itself is never modified.

    Raises
    ------
    ShapeError
        ``X`` is not two-dimensional, has fewer than ``min_samples`` rows, or no columns.
    NonFiniteError
        ``X`` contains NaN, infinity, or values above :data:`MAX_ABS_VALUE` in magnitude.
    InvalidParameterError
        Unsupported dtype or container (see :func:`as_float_array`); degenerate columns with
        ``degenerate="raise"``.
    """
    if degenerate not in _DEGENERATE:
        raise InvalidParameterError(f"degenerate must be one of {_DEGENERATE}, got {degenerate!r}.")
    arr = as_float_array(X, name, dtype=dtype)
    if arr.ndim != 2:
        hint = (
            f"; reshape a single feature with {name}.reshape(-1, 1) or a single sample with "
            f"{name}.reshape(1, -1)"
            if arr.ndim == 1
            else ""
        )
        raise ShapeError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got {arr.ndim}-D "
            f"with shape {arr.shape}{hint}."
        )
    n, d = arr.shape
    if n < min_samples or n == 0:
        raise ShapeError(
            f"{name} has {n} samples (shape {arr.shape}); at least {max(1, min_samples)} required."
        )
    if d == 0:
        raise ShapeError(
            f"{name} has no features (shape {arr.shape}); at least one column is required "
            "(for a bias-only model pass a column of ones)."
        )
    _check_finite(arr, name)
    _report_degenerate(arr, name, degenerate)
    return arr


def check_y(y, n_samples: int, *, name: str = "y", allow_matrix: bool = True) -> np.ndarray:
    """Validate targets: a vector of length ``n_samples`` or an ``n_samples x c`` matrix.

    Parameters
    ----------
    y : array_like of shape (n,) or (n, c)
        An ``(n, 1)`` column is flattened to ``(n,)``. Booleans become 0.0 / 1.0; string
        labels are refused (encode them, e.g. as -1 / +1 for logistic loss).
    n_samples : int
        Number of rows of ``X``.
    name : str
        Used in error messages.
    allow_matrix : bool
        Accept ``(n, c)`` targets (vector output).

    Returns
    -------
    ndarray
        A new float64 array.

    Raises
    ------
    ShapeError, NonFiniteError, InvalidParameterError
    """
    arr = as_float_array(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = np.ascontiguousarray(arr[:, 0])
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and not allow_matrix):
        allowed = "(n_samples,) or (n_samples, n_outputs)" if allow_matrix else "(n_samples,)"
        raise ShapeError(f"{name} must have shape {allowed}, got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ShapeError(
            f"{name} has {arr.shape[0]} rows but X has {n_samples} samples; they must match."
        )
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ShapeError(f"{name} has zero outputs (shape {arr.shape}).")
    _check_finite(arr, name)
    return arr


def check_Xy(
    X, y, *, allow_matrix: bool = True, dtype=np.float64, degenerate: str = "ignore"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``X`` and ``y`` together; see :func:`check_X` and :func:`check_y`."""
    Xc = check_X(X, dtype=dtype, degenerate=degenerate)
    yc = check_y(y, Xc.shape[0], allow_matrix=allow_matrix)
    return Xc, yc


# ------------------------------------------------------------------------- parameters
def _as_real_scalar(value, name: str) -> float:
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise InvalidParameterError(f"{name} must be a real number, got an array of shape {value.shape}.")
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number, got {type(value).__name__} {value!r:.40}.")
    try:
        return float(value)
    except (OverflowError, ValueError) as exc:
        raise InvalidParameterError(f"{name} could not be converted to float ({exc}).") from exc


def check_lam(lam, *, name: str = "lam", allow_zero: bool = True) -> float:
    """Validate a regularisation strength: a finite real number ``>= 0`` (``> 0`` if not ``allow_zero``).

    Raises
    ------
    InvalidParameterError
        Not a real number (``bool``, string, complex, array of size > 1), negative, or zero
        when not allowed.
    NonFiniteError
        NaN or infinity.
    """
    lam = _as_real_scalar(lam, name)
    if not np.isfinite(lam):
        raise NonFiniteError(f"{name} must be finite, got {lam}.")
    if lam < 0 or (lam == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidParameterError(f"{name} must be {bound}, got {lam}.")
    return lam


def check_lams(lams, *, name: str = "lams", allow_zero: bool = True) -> np.ndarray:
    """Validate a grid of regularisation strengths: a non-empty 1-D sequence of numbers that
    each pass :func:`check_lam`.

    Returns
    -------
    ndarray of float64, shape (k,)
        A new array, in the given order.

    Raises
    ------
    InvalidParameterError
        Not a sequence of real numbers (strings, None entries, nested lists, a dict...),
        empty, or an entry negative (zero when not ``allow_zero``).
    NonFiniteError
        An entry is NaN or infinity.
    """
    if isinstance(lams, (str, bytes, dict)) or _is_sparse(lams):
        raise InvalidParameterError(f"{name} must be a 1-D sequence of numbers, got {type(lams).__name__}.")
    if isinstance(lams, (numbers.Real, np.number)) and not isinstance(lams, (bool, np.bool_)):
        lams = [lams]
    try:
        raw = np.asarray(lams)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} could not be read as a 1-D sequence of numbers ({exc}).") from exc
    if raw.ndim != 1:
        raise InvalidParameterError(f"{name} must be one-dimensional, got shape {raw.shape}.")
    if raw.size == 0:
        raise InvalidParameterError(f"{name} is empty; pass at least one value.")
    out = np.empty(raw.size)
    for k, value in enumerate(raw.tolist() if raw.dtype.kind != "O" else list(raw)):
        out[k] = check_lam(value, name=f"{name}[{k}]", allow_zero=allow_zero)
    return out


def check_nonnegative_float(value, name: str, *, allow_zero: bool = True, allow_inf: bool = False) -> float:
    """Validate a tolerance-like parameter: a real number ``>= 0`` (``> 0`` if not ``allow_zero``).

    Raises
    ------
    InvalidParameterError
        Not a real number (``bool``, ``None``, strings, arrays of size > 1), negative, or zero
        when not allowed.
    NonFiniteError
        NaN (always) or infinity (unless ``allow_inf``).
    """
    value = _as_real_scalar(value, name)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise NonFiniteError(f"{name} must be finite, got {value}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidParameterError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}.")
    return value


def check_positive_int(value, name: str, *, minimum: int = 1, maximum: int | None = MAX_INT) -> int:
    """Validate an integer parameter in ``[minimum, maximum]``.

    ``bool`` and floats (even ``3.0``) are refused: counts must be integers. The default
    ``maximum`` is :data:`MAX_INT` (``2**31 - 1``), the largest limit the compiled solvers
    take; pass ``maximum=None`` for no upper bound.

    Raises
    ------
    InvalidParameterError
        Not an integer, or outside ``[minimum, maximum]``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise InvalidParameterError(f"{name} must be an integer, got {type(value).__name__} {value!r:.40}.")
    value = operator.index(value)
    if value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise InvalidParameterError(f"{name} must be <= {maximum}, got {value}.")
    return int(value)


def check_solver_options(*, tol=None, feas_tol=None, dtype=None, callback=None, memory_budget=None) -> dict:
    """Validate the options the native solvers share; returns them normalised (``tol`` and
    ``feas_tol`` floats, ``dtype`` a :class:`numpy.dtype`, ``memory_budget`` an int). ``None``
    passes through (the solver's default).

    Raises
    ------
    InvalidParameterError
        ``tol`` / ``feas_tol`` not a positive finite number, ``tol >= 1``, ``dtype`` not float64 or float32,
        ``callback`` not callable, ``memory_budget`` not a positive integer.
    """
    out: dict[str, Any] = {}
    for name, value in (("tol", tol), ("feas_tol", feas_tol)):
        if value is not None:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating)):
                raise InvalidParameterError(f"{name} must be a positive real number, got {value!r:.40}.")
            value = float(value)
            if not np.isfinite(value) or value <= 0:
                raise InvalidParameterError(f"{name} must be positive and finite, got {value}.")
            if name == "tol" and value >= 1:
                # a relative duality gap of 1 holds at almost any point (zero included)
                raise InvalidParameterError(
                    f"tol is a relative duality gap and must be below 1 (a gap of 100% certifies nothing), "
                    f"got {value}.")
        out[name] = value
    if dtype is not None:
        try:
            dt = np.dtype(dtype)
        except TypeError as exc:
            raise InvalidParameterError(f"dtype must be numpy.float64 or numpy.float32, got {dtype!r:.40}.") from exc
        if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise InvalidParameterError(f"dtype must be numpy.float64 or numpy.float32, got {dt}.")
        dtype = dt
    out["dtype"] = dtype
    if callback is not None and not callable(callback):
        raise InvalidParameterError(f"callback must be callable or None, got {type(callback).__name__}.")
    out["callback"] = callback
    if memory_budget is not None:
        memory_budget = check_positive_int(memory_budget, "memory_budget", maximum=None)
    out["memory_budget"] = memory_budget
    return out


def callback_stops(value) -> bool:
    """Whether a callback's return value asks to stop: ``True`` or ``numpy.True_`` (a callback that
    returns ``np.any(...)`` stops too). Any other value, its info dict or None included, goes on."""
    return value is True or (isinstance(value, np.bool_) and bool(value))


def check_bool(value, name: str) -> bool:
    """Validate a flag: ``True`` / ``False`` (or ``numpy.bool_``); strings like ``"no"`` are refused."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (numbers.Integral, np.integer)) and value in (0, 1):
        return bool(value)
    raise InvalidParameterError(f"{name} must be True or False, got {value!r:.40}.")


def check_choice(value, name: str, choices) -> str:
    """Validate that ``value`` is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidParameterError(f"{name} must be one of {tuple(choices)}, got {value!r:.40}.")
    return value


def check_index(index, size: int, name: str = "index") -> np.ndarray:
    """Validate an index into ``size`` items: integers in ``[-size, size)`` or a boolean mask.

    Returns
    -------
    ndarray of int
        Non-negative positions (a new array).

    Raises
    ------
    InvalidParameterError
        Non-integer, non-boolean index, or a boolean mask of the wrong length.
    ShapeError
        Index out of range or more than one-dimensional.
    """
    if isinstance(index, slice):
        return np.arange(size)[index]
    try:
        idx = np.asarray(index)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} could not be read as an index array ({exc}).") from exc
    if idx.ndim > 1:
        raise ShapeError(f"{name} must be one-dimensional, got shape {idx.shape}.")
    idx = idx.reshape(-1)
    if idx.dtype.kind == "b":
        if idx.size != size:
            raise InvalidParameterError(f"boolean {name} has length {idx.size}; expected {size}.")
        return np.flatnonzero(idx)
    if idx.size == 0:
        return np.zeros(0, dtype=np.intp)
    if idx.dtype.kind not in "iu":
        raise InvalidParameterError(f"{name} must hold integers or booleans, got dtype {idx.dtype}.")
    if idx.min() < -size or idx.max() >= size:
        raise ShapeError(f"{name} has entries outside [-{size}, {size}); got range [{idx.min()}, {idx.max()}].")
    return np.where(idx < 0, idx + size, idx).astype(np.intp)


def check_allocation(shape, dtype=np.float64, *, what: str = "array", budget: int | None = None) -> int:
    """Refuse an allocation that would exceed the memory budget, before making it.

    Parameters
    ----------
    shape : tuple of int
        Shape of the array about to be allocated.
    dtype : numpy dtype
    what : str
        Description used in the error message.
    budget : int, optional
        Bytes allowed (default :func:`cvxnn.operators.default_memory_budget`).

    Returns
    -------
    int
        The number of bytes needed.

    Raises
    ------
    MemoryBudgetError
        With the size needed and the budget.
    """
    if budget is None:
        from .operators import default_memory_budget

        budget = default_memory_budget()
    budget = int(budget)
    count = 1
    for s in shape:
        count *= int(s)
    nbytes = count * np.dtype(dtype).itemsize
    if nbytes > budget:
        raise MemoryBudgetError(
            f"{what} of shape {tuple(int(s) for s in shape)} ({np.dtype(dtype)}) needs "
            f"{nbytes / 2**30:.3g} GiB, above the budget of {budget / 2**30:.3g} GiB; "
            "use fewer patterns / samples or process the data in chunks."
        )
    return nbytes


def as_generator(seed) -> np.random.Generator:
    """Turn ``None``, a non-negative int, a ``SeedSequence``, a ``Generator`` or a legacy
    ``RandomState`` into a :class:`numpy.random.Generator`.

    The same int seed always gives the same stream (bit-identical results on one machine).
    A ``Generator`` is used as is (and advanced).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)):
        raise InvalidParameterError(f"seed must be None, an int or a numpy Generator, got {seed!r}.")
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, (numbers.Integral, np.integer)):
        if seed < 0:
            raise InvalidParameterError(f"seed must be non-negative, got {seed}.")
        return np.random.default_rng(int(seed))
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    raise InvalidParameterError(
        f"random_state/seed must be None, an int or a numpy Generator, got {type(seed).__name__}."
    )
