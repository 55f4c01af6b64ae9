"""One validation path for every entry point (builders, native solvers, estimators, CLI).

All helpers return new arrays (never modify the caller's data) and raise the typed
errors of :mod:`cvxnn.errors` with messages that say what is wrong and how to fix it.
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import InvalidParameterError, NonFiniteError, ShapeError

__all__ = ["check_X", "check_y", "check_Xy", "check_lam", "check_positive_int", "as_generator"]


def _as_float_array(a, name: str, dtype=np.float64) -> np.ndarray:
    if a is None:
        raise ShapeError(f"{name} is None; pass an array.")
    try:
        arr = np.array(a, dtype=dtype, copy=True)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{name} could not be converted to a float array ({exc}); pass numeric data."
        ) from exc
    return arr


def check_X(X, *, name: str = "X", dtype=np.float64, min_samples: int = 1) -> np.ndarray:
    """Validate a data matrix ``X`` (``n x d``) and return a float copy.

    Raises
    ------
    ShapeError
        If ``X`` is not two-dimensional, has fewer than ``min_samples`` rows, or no columns.
    NonFiniteError
        If ``X`` contains NaN or infinity.
    """
    if hasattr(X, "dtype") and getattr(X, "dtype", None) is not None and np.asarray(X).dtype == object:
        raise InvalidParameterError(f"{name} has dtype object; pass a numeric array.")
    arr = _as_float_array(X, name, dtype)
    if arr.ndim != 2:
        raise ShapeError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got {arr.ndim}-D "
            f"with shape {arr.shape}; reshape a single feature with X.reshape(-1, 1)."
        )
    n, d = arr.shape
    if n < min_samples:
        raise ShapeError(f"{name} has {n} samples; at least {min_samples} required.")
    if d == 0:
        raise ShapeError(f"{name} has no features (shape {arr.shape}); at least one column is required.")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise NonFiniteError(
            f"{name} contains NaN or infinity (first at row {bad[0]}, column {bad[1]}); "
            "remove or impute those entries."
        )
    return np.ascontiguousarray(arr)


def check_y(y, n_samples: int, *, name: str = "y", allow_matrix: bool = True) -> np.ndarray:
    """Validate targets: a vector of length ``n_samples`` or an ``n_samples x c`` matrix."""
    arr = _as_float_array(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and not allow_matrix):
        allowed = "(n_samples,) or (n_samples, n_outputs)" if allow_matrix else "(n_samples,)"
        raise ShapeError(f"{name} must have shape {allowed}, got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ShapeError(
            f"{name} has {arr.shape[0]} rows but X has {n_samples} samples; they must match."
        )
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ShapeError(f"{name} has zero outputs (shape {arr.shape}).")
    if not np.all(np.isfinite(arr)):
        raise NonFiniteError(f"{name} contains NaN or infinity; remove or impute those targets.")
    return np.ascontiguousarray(arr)


def check_Xy(X, y, *, allow_matrix: bool = True, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``X`` and ``y`` together; see :func:`check_X` and :func:`check_y`."""
    Xc = check_X(X, dtype=dtype)
    yc = check_y(y, Xc.shape[0], allow_matrix=allow_matrix)
    return Xc, yc


def check_lam(lam, *, name: str = "lam", allow_zero: bool = True) -> float:
    """Validate a regularisation strength: a finite, non-negative real number."""
    if isinstance(lam, bool) or not isinstance(lam, (numbers.Real, np.floating, np.integer)):
        if isinstance(lam, np.ndarray) and lam.ndim == 0:
            lam = lam.item()
        else:
            raise InvalidParameterError(f"{name} must be a real number, got {type(lam).__name__}.")
    lam = float(lam)
    if not np.isfinite(lam):
        raise NonFiniteError(f"{name} must be finite, got {lam}.")
    if lam < 0 or (lam == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidParameterError(f"{name} must be {bound}, got {lam}.")
    return lam


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Validate an integer parameter ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def as_generator(seed) -> np.random.Generator:
    """Turn ``None``, an int, a ``SeedSequence`` or a ``Generator`` into a ``Generator``."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (numbers.Integral, np.integer, np.random.SeedSequence)):
        if isinstance(seed, (numbers.Integral, np.integer)) and seed < 0:
            raise InvalidParameterError(f"seed must be non-negative, got {seed}.")
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    raise InvalidParameterError(
        f"random_state/seed must be None, an int or a numpy Generator, got {type(seed).__name__}."
    )
