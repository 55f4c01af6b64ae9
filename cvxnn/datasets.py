"""Small datasets shipped with cvxnn (CSV files in ``cvxnn/data``), loaded without network access.

* :func:`load_teacher_regression`: 80 samples, 4 features; targets from a planted two-layer
  ReLU network (3 neurons) plus Gaussian noise (sigma 0.1). Used by ``cvxnn demo``.
* :func:`load_three_blobs`: 120 samples in 2-D, 3 classes (integer labels 0, 1, 2).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ._validation import as_generator, check_nonnegative_float, check_positive_int

__all__ = ["load_teacher_regression", "load_three_blobs", "planted_teacher"]


def _load_csv(name: str) -> np.ndarray:
    with resources.files("cvxnn.data").joinpath(name).open("r") as fh:
        return np.loadtxt(fh, delimiter=",", skiprows=1)


def load_teacher_regression() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, y)``: ``X`` is a float64 ``80 x 4`` array, ``y`` 80 float64 targets (new,
    writable arrays on every call)."""
    data = _load_csv("teacher_regression.csv")
    return data[:, :-1].copy(), data[:, -1].copy()


def load_three_blobs() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, labels)``: ``X`` is a float64 ``120 x 2`` array, ``labels`` 120 integers
    (``int``, numpy's default integer) in {0, 1, 2}, 40 of each."""
    data = _load_csv("three_blobs.csv")
    return data[:, :-1].copy(), data[:, -1].astype(int)


def planted_teacher(
    n: int, d: int, *, n_neurons: int = 10, noise: float = 0.1, n_outputs: int = 1, seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic regression data from a random two-layer ReLU teacher (benchmarks, tests).

    ``X ~ N(0, I)``, ``y = (X W1)_+ w2 + noise * N(0, 1)`` with ``W1 ~ N(0, I/d)`` and
    ``w2 ~ N(0, I/n_neurons)``.

    Parameters
    ----------
    n, d : int
        Samples and features (``>= 1``).
    n_neurons : int
        Hidden neurons of the teacher (``>= 1``).
    noise : float
        Standard deviation of the Gaussian noise (``>= 0``, finite; 0 gives the teacher's outputs).
    n_outputs : int
        Outputs of the teacher (``>= 1``).
    seed : None, int or numpy.random.Generator
        The same integer gives the same data; a Generator is advanced.

    Returns
    -------
    X : ndarray of shape (n, d), float64
    y : ndarray of shape (n,), or (n, n_outputs) when ``n_outputs > 1``, float64

    Raises
    ------
    InvalidParameterError, NonFiniteError
        A size that is not a positive integer, a negative or non-finite ``noise``, a bad seed.
    MemoryBudgetError
        When ``X``, the teacher's weights, its hidden layer and ``y`` would not fit the memory budget.
    """
    n = check_positive_int(n, "n")
    d = check_positive_int(d, "d")
    n_neurons = check_positive_int(n_neurons, "n_neurons")
    n_outputs = check_positive_int(n_outputs, "n_outputs")
    noise = check_nonnegative_float(noise, "noise")
    rng = as_generator(seed)  # typed errors for bad seeds; an int seed gives default_rng's stream
    from .operators import check_memory

    check_memory({"X": 8 * n * d, "W1": 8 * d * n_neurons, "w2": 8 * n_neurons * n_outputs,
                  "hidden": 8 * n * n_neurons, "Y": 16 * n * n_outputs},
                 what=f"planted_teacher(n={n}, d={d})", hint="Use smaller n, d or n_neurons.")
    X = rng.standard_normal((n, d))
    W1 = rng.standard_normal((d, n_neurons)) / np.sqrt(d)
    w2 = rng.standard_normal((n_neurons, n_outputs)) / np.sqrt(n_neurons)
    Y = np.maximum(X @ W1, 0.0) @ w2 + noise * rng.standard_normal((n, n_outputs))
    return X, (Y[:, 0] if n_outputs == 1 else Y)
