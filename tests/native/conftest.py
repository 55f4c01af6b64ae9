"""Shared fixtures of the native-solver tests."""

import numpy as np
import pytest

from cvxnn import sample_patterns


@pytest.fixture(scope="module")
def reg():
    """A small regression problem (n=40, d=3 + bias, 15 patterns) with a two-neuron teacher."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0) - 0.5 * np.maximum(X @ rng.standard_normal(3), 0)
    pats = sample_patterns(X, 15, seed=1, bias=True)
    return X, y, pats
