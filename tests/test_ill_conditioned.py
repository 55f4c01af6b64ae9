"""Ill-conditioned data: badly scaled columns, nearly duplicate rows; exact normalisation maps."""

import warnings

import numpy as np
import pytest

from cvxnn import GatedReLUNetwork, ReLUNetwork, build_program, sample_patterns
from cvxnn.errors import (
    ConvergenceWarning,
    InvalidParameterError,
    NotFittedError,
    ShapeError,
)
from cvxnn.losses import get_loss
from cvxnn.preprocessing import Standardizer
from cvxnn.solution import STATUSES

#: Column scales spanning 1e10 (more than the 1e8 of the issue), plus a large offset.
SCALES = np.array([1e-5, 1.0, 1e5])
OFFSETS = np.array([3.0, -2.0, 1e6])


@pytest.fixture(scope="module")
def skewed():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((30, 3))
    X = Z * SCALES + OFFSETS
    y = np.maximum(Z @ np.array([1.0, -0.5, 0.8]), 0.0) - 0.3 * np.maximum(Z[:, 1], 0.0)
    y = y + 0.05 * rng.standard_normal(30)
    return X, y


@pytest.fixture(scope="module")
def near_duplicates():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((8, 3))
    X = np.repeat(base, 3, axis=0) + 1e-10 * rng.standard_normal((24, 3))
    y = np.maximum(X[:, 0] - X[:, 1], 0.0) + 0.05 * rng.standard_normal(24)
    return X, y


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(1.0, np.max(np.abs(b))))


def _solve_visibly(prog, **kw):
    """Solve, recording warnings: a non-optimal status must come with a warning."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sol = prog.solve(**kw)
    assert sol.status in STATUSES
    assert np.all(np.isfinite(sol.effective_weights)) and np.isfinite(sol.objective_value)
    if not sol.converged:
        assert any(issubclass(w.category, ConvergenceWarning) for w in rec), sol.status
    return sol


# ------------------------------------------------------------------- raw ill-conditioned data
@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_badly_scaled_columns_converge_or_say_why(skewed, activation):
    X, y = skewed
    pats = sample_patterns(X, 12, seed=0, bias=True)
    sol = _solve_visibly(build_program(X, y, activation=activation, patterns=pats, lam=0.1))
    if sol.converged:
        net = sol.to_network()
        np.testing.assert_allclose(net.objective(X, y, 0.1), sol.objective_value, rtol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_nearly_duplicate_rows(near_duplicates, activation):
    X, y = near_duplicates
    pats = sample_patterns(X, 20, seed=0, bias=True)
    sol = _solve_visibly(build_program(X, y, activation=activation, patterns=pats, lam=0.01))
    assert sol.converged
    net = sol.to_network()
    np.testing.assert_allclose(net.objective(X, y, 0.01), sol.objective_value, rtol=1e-6)
    np.testing.assert_allclose(net.predict(X), sol.train_predict(X), atol=1e-6)


def test_native_on_badly_scaled_columns_says_why(skewed):
    import cvxnn.native as native
    X, y = skewed
    pats = sample_patterns(X, 12, seed=0, bias=True)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sol = native.solve_native(X, y, pats, activation="gated_relu", lam=0.1, max_iter=300, tol=1e-8)
    assert np.isfinite(sol.objective_value) and np.all(np.isfinite(sol.U))
    assert sol.status in STATUSES
    if not sol.converged:
        assert any(issubclass(w.category, ConvergenceWarning) for w in rec)
        assert sol.gap is not None and sol.gap > 0


def test_native_standardised_converges_and_maps_back(skewed):
    import cvxnn.native as native
    X, y = skewed
    std = Standardizer(center_y=True, scale_y=True)
    Xs, ys = std.fit_transform(X, y)
    pats = sample_patterns(Xs, 12, seed=0, bias=True)
    sol = native.solve_native(Xs, ys, pats, activation="gated_relu", lam=0.1, tol=1e-8, max_iter=20_000)
    assert sol.converged
    raw = std.network_to_raw(sol.to_network())
    ref = std.inverse_transform_y(sol.train_predict(Xs))
    assert _rel(raw.predict(X), ref) < 1e-9


# -------------------------------------------------------------------- normalisation maps
@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
@pytest.mark.parametrize("targets", [False, True])
def test_standardised_solution_maps_back_exactly(skewed, activation, targets):
    X, y = skewed
    std = Standardizer(center_y=targets, scale_y=targets)
    Xs, ys = std.fit_transform(X, y)
    pats = sample_patterns(Xs, 12, seed=0, bias=True)
    sol = _solve_visibly(build_program(Xs, ys, activation=activation, patterns=pats, lam=0.1))
    assert sol.converged
    ref = std.inverse_transform_y(sol.train_predict(Xs))
    net_raw = std.network_to_raw(sol.to_network())
    assert type(net_raw) is type(sol.to_network())
    assert _rel(net_raw.predict(X), ref) < 1e-9
    model_raw = std.model_to_raw(sol, X)
    assert _rel(model_raw.train_predict(X), ref) < 1e-9
    np.testing.assert_array_equal(model_raw.patterns.mask[:, : pats.n_patterns], pats.mask)
    # The raw model is cone feasible to the same accuracy (violation in raw prediction units).
    assert model_raw.max_cone_violation(X) <= 10 * (sol.max_violation or 0.0) * std.y_scale_[0] + 1e-9
    assert _rel(model_raw.to_network().predict(X), ref) < 1e-9
    # On new data the mapped network and the standardised one agree too.
    Xnew = np.random.default_rng(5).standard_normal((7, 3)) * SCALES + OFFSETS
    ref_new = std.inverse_transform_y(sol.to_network().predict(std.transform(Xnew)))
    assert _rel(net_raw.predict(Xnew), ref_new) < 1e-9


def test_squared_loss_scales_with_y_scale(skewed):
    """Documented: the raw data-fit term is y_scale**2 times the standardised one."""
    X, y = skewed
    std = Standardizer(scale_y=True, center_y=True)
    Xs, ys = std.fit_transform(X, y)
    net = ReLUNetwork(np.random.default_rng(0).standard_normal((3, 4)), np.ones(4), b1=np.zeros(4))
    raw = std.network_to_raw(net)
    loss = get_loss("squared")
    np.testing.assert_allclose(loss.value(raw.predict(X), y), std.y_scale_[0] ** 2 * loss.value(net.predict(Xs), ys),
                               rtol=1e-9)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("cls", [ReLUNetwork, GatedReLUNetwork])
def test_network_to_raw_random_networks(skewed, bias, cls):
    X, y = skewed
    rng = np.random.default_rng(2)
    std = Standardizer(center_y=True, scale_y=True).fit(X, y)
    kw = {"b1": rng.standard_normal(5) if bias else None}
    if cls is GatedReLUNetwork:
        kw.update(gates=rng.standard_normal((3, 5)), gate_bias=rng.standard_normal(5) if bias else None)
    net = cls(rng.standard_normal((3, 5)), rng.standard_normal(5), **kw)
    raw = std.network_to_raw(net)
    assert raw.n_neurons == 6  # plus the always-active intercept neuron
    Xs = std.transform(X)
    assert _rel(raw.predict(X), std.inverse_transform_y(net.predict(Xs))) < 1e-9


def test_vector_output_maps(skewed):
    X, _ = skewed
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((30, 2)) * np.array([10.0, 0.1]) + np.array([5.0, -1.0])
    std = Standardizer(center_y=True, scale_y=True)
    Xs, Ys = std.fit_transform(X, Y)
    assert Ys.shape == (30, 2)
    np.testing.assert_allclose(Ys.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(std.inverse_transform_y(Ys), Y, rtol=1e-12)
    net = GatedReLUNetwork(rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), gates=rng.standard_normal((3, 4)))
    raw = std.network_to_raw(net)
    assert _rel(raw.predict(X), std.inverse_transform_y(net.predict(Xs))) < 1e-9
    pats = sample_patterns(Xs, 6, seed=0, bias=True)
    sol = build_program(Xs, Ys, activation="gated_relu", patterns=pats, lam=0.1).solve()
    model_raw = std.model_to_raw(sol, X)
    assert _rel(model_raw.train_predict(X), std.inverse_transform_y(sol.train_predict(Xs))) < 1e-9


def test_model_without_bias_gains_one(skewed):
    X, y = skewed
    std = Standardizer()
    Xs = std.fit_transform(X)
    pats = sample_patterns(Xs, 8, seed=1, bias=False)
    sol = build_program(Xs, y, activation="relu", patterns=pats, lam=0.1).solve()
    raw = std.model_to_raw(sol, X)
    assert raw.patterns.bias and raw.patterns.design_dim == 4
    assert _rel(raw.train_predict(X), sol.train_predict(Xs)) < 1e-9
    # Without centering no bias is needed and the map is diagonal.
    std2 = Standardizer(center=False)
    Xs2 = std2.fit_transform(X)
    pats2 = sample_patterns(Xs2, 8, seed=1, bias=False)
    sol2 = build_program(Xs2, y, activation="gated_relu", patterns=pats2, lam=0.1).solve()
    raw2 = std2.model_to_raw(sol2, X)
    assert not raw2.patterns.bias
    assert _rel(raw2.train_predict(X), sol2.train_predict(Xs2)) < 1e-9


# ----------------------------------------------------------------------- Standardizer API
def test_transform_round_trip_and_constant_columns():
    rng = np.random.default_rng(4)
    X = np.hstack([rng.standard_normal((10, 2)) * 1e6, np.full((10, 1), 7.0)])
    std = Standardizer().fit(X)
    assert std.constant_.tolist() == [False, False, True]
    assert std.scale_[2] == 1.0
    Xs = std.transform(X)
    np.testing.assert_allclose(Xs[:, :2].std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(Xs.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(std.inverse_transform(Xs), X, rtol=1e-14)
    T = std.design_map()
    Xa = np.hstack([X, np.ones((10, 1))])
    np.testing.assert_allclose(Xa @ T, np.hstack([Xs, np.ones((10, 1))]), atol=1e-9)
    X0 = X.copy()
    std.transform(X)
    np.testing.assert_array_equal(X, X0)


def test_identity_options():
    X = np.random.default_rng(0).standard_normal((6, 2)) + 4
    std = Standardizer(center=False, scale=False).fit(X, np.arange(6.0))
    np.testing.assert_array_equal(std.transform(X), X)
    np.testing.assert_array_equal(std.transform_y(np.arange(6.0)), np.arange(6.0))


def test_standardizer_errors(skewed):
    X, _ = skewed
    with pytest.raises(NotFittedError):
        Standardizer().transform(X)
    with pytest.raises(InvalidParameterError, match="need y"):
        Standardizer(center_y=True).fit(X)
    with pytest.raises(InvalidParameterError):
        Standardizer(scale="yes")
    std = Standardizer().fit(X)
    with pytest.raises(ShapeError):
        std.transform(X[:, :2])
    with pytest.raises(ShapeError):
        std.network_to_raw(ReLUNetwork(np.ones((2, 1)), np.ones(1)))
    with pytest.raises(InvalidParameterError):
        std.network_to_raw("net")
    with pytest.raises(InvalidParameterError):
        std.model_to_raw("model", X)


def test_estimator_warns_when_not_converged(skewed):
    import cvxnn.estimators as est_mod
    X, y = skewed
    est = est_mod.ConvexGatedReLURegressor(lam=0.1, n_gates=8, max_iter=5, tol=1e-10, random_state=0)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    assert est.status_ != "optimal"
    assert np.all(np.isfinite(est.predict(X)))
