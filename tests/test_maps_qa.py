"""QA of the exact maps between convex points and networks (docs/math.md, "Solution maps"):
real data, round trips, and blocks whose norms underflow or overflow when squared."""

import numpy as np
import pytest

import cvxnn
from cvxnn import (
    ConvexModel,
    GatedReLUNetwork,
    ReLUNetwork,
    gated_network_to_convex,
    relu_network_to_convex,
    sample_patterns,
    solve,
)


def _iris():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_iris(return_X_y=True)
    idx = np.random.default_rng(0).choice(150, 60, replace=False)
    X = X[idx]
    X = (X - X.mean(0)) / X.std(0)
    return X, (y[idx] - y[idx].mean()) / y[idx].std()


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
@pytest.mark.parametrize("bias", [False, True])
def test_real_data_solution_maps_and_round_trips(activation, bias):
    X, y = _iris()
    pats = sample_patterns(X, 8, seed=1, bias=bias)
    lam = 0.5
    sol = solve(X, y, pats, activation=activation, lam=lam, solver="native")
    net = sol.to_network()
    np.testing.assert_allclose(net.predict(X), sol.train_predict(X), atol=1e-10)
    assert net.objective(X, y, lam) == pytest.approx(sol.objective(X, y, lam), rel=1e-10)
    back = relu_network_to_convex(net, X) if activation == "relu" else gated_network_to_convex(net, X)
    np.testing.assert_allclose(back.train_predict(X), net.predict(X), atol=1e-10)
    assert back.objective(X, y, lam) == pytest.approx(net.objective(X, y, lam), rel=1e-10)
    np.testing.assert_allclose(back.to_network().predict(X), net.predict(X), atol=1e-10)


@pytest.mark.parametrize("scale", [1e-170, 1e-200, 1e150])
@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
@pytest.mark.parametrize("c", [None, 2])
def test_blocks_with_extreme_norms_map_exactly(scale, activation, c):
    """A nonzero block whose squared entries under/overflow is neither dropped (C-ReLU used to
    lose it) nor turned into a NonFiniteError (C-GReLU divided by an underflowed zero norm)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    pats = sample_patterns(X, 6, seed=0, bias=True)
    d, p = pats.design_dim, pats.n_patterns
    shape = (d, p) if c is None else (d, p, c)
    B = np.zeros(shape)
    if activation == "relu":  # cone-feasible: the gate of its own pattern
        g = pats.gates[:, 0] * scale
        B[:, 0] = g if c is None else np.column_stack([g, 2 * g])
        model = ConvexModel("relu", pats, V=B, W=np.zeros(shape))
    else:
        B[:, 0] = rng.standard_normal(B[:, 0].shape) * scale
        model = ConvexModel("gated_relu", pats, U=B)
    net = model.to_network()
    assert isinstance(net, ReLUNetwork if activation == "relu" else GatedReLUNetwork)
    assert net.n_neurons >= 1
    fit = model.train_predict(X)
    np.testing.assert_allclose(net.predict(X) / scale, fit / scale, rtol=1e-12, atol=1e-12)
    assert model.to_network(tol=1e-3).n_neurons == net.n_neurons  # the only block is the largest


def test_summary_marks_the_nuclear_relu_value_as_a_bound_only():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    Y = np.eye(3)[rng.integers(0, 3, 30)]
    pats = cvxnn.sample_patterns(X, 6, seed=0)
    relu = cvxnn.solve(X, Y, pats, activation="relu", lam=1.0, solver="clarabel", formulation="nuclear")
    gated = cvxnn.solve(X, Y, pats, activation="gated_relu", lam=1.0, solver="clarabel", formulation="nuclear")
    assert "lower bound" in relu.summary()
    assert "lower bound" not in gated.summary()  # the gated nuclear program is exact
