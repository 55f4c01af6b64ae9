"""Exact solution maps between convex points and two-layer networks (docs/math.md, "Solution maps")."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvxnn import (
    ConvexModel,
    GatedReLUNetwork,
    ReLUNetwork,
    build_program,
    gated_network_to_convex,
    relu_network_to_convex,
    sample_patterns,
)
from cvxnn.errors import InvalidParameterError, ShapeError


def random_relu_network(rng, d, m, bias):
    return ReLUNetwork(
        W1=rng.standard_normal((d, m)),
        w2=rng.standard_normal(m),
        b1=rng.standard_normal(m) if bias else None,
    )


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 30),
    d=st.integers(1, 5),
    m=st.integers(1, 12),
    bias=st.booleans(),
    lam=st.floats(0.0, 10.0),
)
def test_relu_maps_are_exact_on_random_feasible_points(seed, n, d, m, bias, lam):
    """NC -> C-ReLU gives a cone-feasible point; C-ReLU -> NC reproduces its objective exactly."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    net = random_relu_network(rng, d, m, bias)
    model = relu_network_to_convex(net, X)
    assert model.max_cone_violation(X) == 0.0
    np.testing.assert_allclose(model.train_predict(X), net.predict(X), rtol=1e-12, atol=1e-12)
    # the convex penalty never exceeds the network's weight decay (AM-GM, merging neurons)
    assert model.objective(X, y, lam) <= net.objective(X, y, lam) * (1 + 1e-12) + 1e-12
    image = model.to_network()
    conv, nc = model.objective(X, y, lam), image.objective(X, y, lam)
    assert abs(nc - conv) <= 1e-9 * max(1.0, abs(conv))
    np.testing.assert_allclose(image.predict(X), net.predict(X), rtol=1e-10, atol=1e-10)


def test_balanced_network_with_distinct_patterns_round_trips_objective():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = rng.standard_normal(40)
    net = random_relu_network(rng, 3, 6, bias=True).balanced()
    model = relu_network_to_convex(net, X)
    assert model.patterns.n_patterns == 6  # generic weights: distinct patterns
    assert model.objective(X, y, 0.3) == pytest.approx(net.objective(X, y, 0.3), rel=1e-12)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), c=st.integers(1, 3), bias=st.booleans())
def test_gated_maps_are_exact(seed, c, bias):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((20, 3))
    Y = rng.standard_normal((20, c)) if c > 1 else rng.standard_normal(20)
    pats = sample_patterns(X, 8, seed=seed, bias=bias)
    shape = (pats.design_dim, pats.n_patterns) + ((c,) if c > 1 else ())
    model = ConvexModel("gated_relu", pats, U=rng.standard_normal(shape))
    net = model.to_network()
    assert isinstance(net, GatedReLUNetwork)
    np.testing.assert_allclose(net.predict(X), model.train_predict(X), rtol=1e-10, atol=1e-10)
    assert net.objective(X, Y, 0.7) == pytest.approx(model.objective(X, Y, 0.7), rel=1e-10)
    back = gated_network_to_convex(net, X)
    np.testing.assert_allclose(back.train_predict(X), model.train_predict(X), rtol=1e-10, atol=1e-10)
    assert back.penalty() == pytest.approx(model.penalty(), rel=1e-10)


@pytest.mark.filterwarnings("ignore::cvxnn.errors.InaccurateSolutionWarning")
@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_maps_are_exact_at_optima(activation):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0) + 0.1 * rng.standard_normal(30)
    pats = sample_patterns(X, 15, seed=2, bias=True)
    lam = 0.05
    sol = build_program(X, y, activation=activation, lam=lam, patterns=pats).solve(
        tol_feas=1e-10, tol_gap_abs=1e-10, tol_gap_rel=1e-10
    )
    net = sol.to_network()
    conv = sol.objective(X, y, lam)
    assert conv == pytest.approx(sol.objective_value, rel=1e-9)
    assert abs(net.objective(X, y, lam) - conv) <= 1e-9 * conv


def test_tolerance_drops_small_blocks_only():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 2))
    pats = sample_patterns(X, 6, seed=0)
    V = np.zeros((2, pats.n_patterns))
    V[:, 0] = pats.gates[:, 0]
    V[:, 1] = 1e-12 * pats.gates[:, 1]
    model = ConvexModel("relu", pats, V=V, W=np.zeros_like(V))
    assert model.to_network().n_neurons == 2
    assert model.to_network(tol=1e-9).n_neurons == 1
    with pytest.raises(InvalidParameterError):
        model.to_network(tol=-1.0)


def test_signs_of_output_weights():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((12, 2))
    pats = sample_patterns(X, 4, seed=0)
    V = np.zeros((2, pats.n_patterns))
    W = np.zeros_like(V)
    V[:, 0] = 4.0 * pats.gates[:, 0] / np.linalg.norm(pats.gates[:, 0])
    W[:, 1] = 9.0 * pats.gates[:, 1] / np.linalg.norm(pats.gates[:, 1])
    net = ConvexModel("relu", pats, V=V, W=W).to_network()
    np.testing.assert_allclose(net.w2, [2.0, -3.0])
    np.testing.assert_allclose(np.linalg.norm(net.W1, axis=0), [2.0, 3.0])


def test_model_shape_errors():
    X = np.random.default_rng(0).standard_normal((5, 2))
    pats = sample_patterns(X, 3, seed=0)
    with pytest.raises(ShapeError):
        ConvexModel("relu", pats, V=np.zeros((2, pats.n_patterns)))
    with pytest.raises(ShapeError):
        ConvexModel("gated_relu", pats, U=np.zeros((3, pats.n_patterns)))
    with pytest.raises(InvalidParameterError):
        ConvexModel("sigmoid", pats, U=np.zeros((2, pats.n_patterns)))


def test_zero_width_networks_map_back_to_the_zero_model():
    """The network of a solution at lam >= lam_max has no neurons; mapping it back gave 'no
    activation pattern is left ... use more gates'. It is the zero model, with the network's
    predictions and objective."""
    import numpy as np

    from cvxnn import GatedReLUNetwork, ReLUNetwork
    from cvxnn.maps import gated_network_to_convex, relu_network_to_convex

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 3)), rng.standard_normal(12)
    for net, back in ((ReLUNetwork(np.zeros((3, 0)), np.zeros(0)), relu_network_to_convex),
                      (ReLUNetwork(np.zeros((3, 0)), np.zeros(0), b1=np.zeros(0)), relu_network_to_convex),
                      (GatedReLUNetwork(np.zeros((3, 0)), np.zeros(0), gates=np.zeros((3, 0))),
                       gated_network_to_convex),
                      (GatedReLUNetwork(np.zeros((3, 0)), np.zeros((0, 4)), gates=np.zeros((3, 0))),
                       gated_network_to_convex)):
        model = back(net, X)
        np.testing.assert_array_equal(model.train_predict(X), net.predict(X))
        assert model.n_outputs == (1 if net.w2.ndim == 1 else 4)
        Y = y if net.w2.ndim == 1 else np.c_[y, y, y, y]
        assert model.objective(X, Y, 0.3) == net.objective(X, Y, 0.3)
