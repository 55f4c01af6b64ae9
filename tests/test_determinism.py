"""Determinism: the same seed and the same data give bit-identical patterns and results."""

import warnings

import numpy as np
import pytest

from cvxnn import build_program, enumerate_patterns, sample_patterns
from cvxnn.preprocessing import Standardizer


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((20, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0.0) + 0.1 * rng.standard_normal(20)
    return X, y


def _same(a, b):
    """Bit-identical arrays (shape, dtype and every byte)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("bias", [False, True])
def test_sample_patterns_same_seed_bit_identical(data, bias):
    X, _ = data
    a = sample_patterns(X, 30, seed=5, bias=bias)
    b = sample_patterns(X.copy(), 30, seed=5, bias=bias)
    assert _same(a.gates, b.gates) and _same(a.mask, b.mask) and a.fingerprint == b.fingerprint
    c = sample_patterns(X, 30, seed=np.random.default_rng(5), bias=bias)
    assert _same(a.gates, c.gates)
    d = sample_patterns(X, 30, seed=6, bias=bias)
    assert not _same(a.gates, d.gates)


def test_input_layout_and_container_do_not_matter(data):
    X, _ = data
    ref = sample_patterns(X, 25, seed=1)
    for variant in (np.asfortranarray(X), X.tolist(), X.astype(np.float64)[::1], X[:, ::-1][:, ::-1]):
        other = sample_patterns(variant, 25, seed=1)
        assert _same(ref.gates, other.gates) and _same(ref.mask, other.mask)


def test_enumerate_patterns_deterministic(data):
    X, _ = data
    a = enumerate_patterns(X[:8, :2], bias=True)
    b = enumerate_patterns(X[:8, :2].copy(), bias=True)
    assert _same(a.gates, b.gates) and _same(a.mask, b.mask)


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_cvxpy_solve_bit_identical(data, activation):
    X, y = data
    sols = []
    for _ in range(2):
        prog = build_program(X, y, activation=activation, lam=0.1, n_gates=10, seed=3, bias=True)
        sols.append(prog.solve())
    a, b = sols
    assert _same(a.effective_weights, b.effective_weights)
    assert a.objective_value == b.objective_value and a.status == b.status
    na, nb = a.to_network(), b.to_network()
    assert _same(na.W1, nb.W1) and _same(na.w2, nb.w2) and _same(na.predict(X), nb.predict(X))


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_native_solve_bit_identical(data, activation):
    import cvxnn.native as native
    X, y = data
    pats = sample_patterns(X, 10, seed=3, bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = native.solve_native(X, y, pats, activation=activation, lam=0.1, max_iter=500)
        b = native.solve_native(X.copy(), y.copy(), pats, activation=activation, lam=0.1, max_iter=500)
    assert _same(a.effective_weights, b.effective_weights)
    assert a.objective_value == b.objective_value and a.iterations == b.iterations and a.gap == b.gap


def test_estimators_bit_identical(data):
    import cvxnn.estimators as est_mod
    X, y = data
    preds = []
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = est_mod.ConvexGatedReLURegressor(lam=0.1, n_gates=8, random_state=4, max_iter=2000).fit(X, y)
        preds.append(est.predict(X))
    assert _same(preds[0], preds[1])


def test_standardizer_deterministic(data):
    X, y = data
    a = Standardizer(center_y=True, scale_y=True).fit(X, y)
    b = Standardizer(center_y=True, scale_y=True).fit(X.copy(), y.copy())
    assert _same(a.design_map(), b.design_map()) and _same(a.transform(X), b.transform(X))
