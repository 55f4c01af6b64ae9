"""NC-ReLU -> C-ReLU for vector-output networks (:func:`cvxnn.maps.relu_network_to_convex`).

Neuron ``j`` (``a_j`` with the bias row when the network has ``b1``) goes to the pattern
``D_i = 1[X_a a_j >= 0]``; ``a_j |w2_jk|`` goes into ``V[:, i, k]`` (``w2_jk >= 0``) or ``W[:, i, k]``.
Same predictions; nuclear penalty ``<= sum_j ||a_j|| (||(w2_j)_+|| + ||(w2_j)_-||) <= sqrt(2) net.penalty()``.
"""

from __future__ import annotations

import numpy as np
import pytest

from cvxnn import ReLUNetwork, build_program, optimal_set, sample_patterns
from cvxnn.conv import ConvNetwork, PatchGeometry, network_to_conv
from cvxnn.errors import InvalidParameterError, NonFiniteError, ShapeError
from cvxnn.maps import relu_network_to_convex, to_network
from cvxnn.networks import GatedReLUNetwork
from cvxnn.solution import ConvexModel
from cvxnn.vector import relu_vector_factors

SQRT2 = np.sqrt(2.0)


def _net(rng, d: int, m: int, c: int | None, bias: bool, signs: str = "mixed") -> ReLUNetwork:
    """A random network with shared patterns (positive multiples of neuron 0 and 1), a zero
    neuron (all-ones pattern), a zero output row, and output weights of mixed or uniform signs."""
    W1 = rng.standard_normal((d, m))
    b1 = rng.standard_normal(m) if bias else None
    shape = (m,) if c is None else (m, c)
    w2 = rng.standard_normal(shape)
    if signs == "uniform":  # every neuron's outputs share one sign
        w2 = np.abs(w2) * rng.choice([-1.0, 1.0], size=m).reshape((m,) + (1,) * (w2.ndim - 1))
    W1[:, 3], W1[:, 4], W1[:, 5] = 2.5 * W1[:, 0], 0.7 * W1[:, 1], 0.0
    if bias:
        b1[3], b1[4], b1[5] = 2.5 * b1[0], 0.7 * b1[1], 0.0
    w2[2] = 0.0
    return ReLUNetwork(W1=W1, w2=w2, b1=b1)


def _first_layer(net: ReLUNetwork) -> np.ndarray:
    return np.vstack([net.W1, net.b1[None, :]]) if net.b1 is not None else net.W1


def _reference_blocks(net: ReLUNetwork, X, mask: np.ndarray):
    """The construction written as a loop over neurons and outputs."""
    A = _first_layer(net)
    w2 = net.w2.reshape(net.n_neurons, -1)
    pattern = net.activation_patterns(X)
    V = np.zeros((A.shape[0], mask.shape[1], w2.shape[1]))
    W = np.zeros_like(V)
    for j in range(net.n_neurons):
        (i,) = np.flatnonzero(np.all(mask == pattern[:, j:j + 1], axis=0))
        for k in range(w2.shape[1]):
            if w2[j, k] >= 0:
                V[:, i, k] += A[:, j] * w2[j, k]
            else:
                W[:, i, k] -= A[:, j] * w2[j, k]
    return V, W


def _data(seed: int, n: int = 15, d: int = 3):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((n, d))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("c", [1, 2, 4])
def test_predictions_and_blocks_are_the_networks(bias, c):
    rng, X = _data(10 * c + bias)
    net = _net(rng, 3, 8, c, bias)
    model = relu_network_to_convex(net, X)
    assert model.V.shape == model.W.shape == (3 + bias, model.patterns.n_patterns, c)
    assert model.patterns.n_patterns <= net.n_neurons - 2  # neurons 3 and 4 share the patterns of 0 and 1
    f = net.predict(X)
    np.testing.assert_allclose(model.train_predict(X), f, rtol=0, atol=1e-13 * np.abs(f).max())
    V, W = _reference_blocks(net, X, model.patterns.mask)
    np.testing.assert_allclose(model.V, V, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(model.W, W, rtol=1e-14, atol=1e-15)
    assert model.V.any() and model.W.any()  # mixed output signs reach both sides


@pytest.mark.parametrize("bias", [False, True])
def test_every_column_lies_in_its_cone(bias):
    rng, X = _data(3 + bias)
    net = _net(rng, 3, 10, 3, bias)
    model = relu_network_to_convex(net, X)
    Xa = model.patterns.design(X)
    S = model.patterns.signs()  # n x p
    for B in (model.V, model.W):
        signed = S[:, :, None] * np.einsum("nd,dpc->npc", Xa, B)  # Xt_i B[:, i, k]
        scale = np.abs(Xa).max() * np.abs(B).sum(axis=0).max()
        assert signed.min() >= -1e-13 * scale
    assert model.max_cone_violation(X) <= 1e-13 * np.abs(Xa).max() * np.abs(model.V).max()
    # each neuron's pattern is the mask of the block it went to
    groups = {model.patterns.mask[:, i].tobytes() for i in range(model.patterns.n_patterns)}
    assert {net.activation_patterns(X)[:, j].tobytes() for j in range(net.n_neurons)} == groups


@pytest.mark.parametrize("bias", [False, True])
def test_single_output_column_matches_scalar_output(bias):
    rng, X = _data(7 + bias)
    net = _net(rng, 3, 7, None, bias)
    col = ReLUNetwork(W1=net.W1, w2=net.w2[:, None], b1=net.b1)
    y = rng.standard_normal(X.shape[0])
    scalar, vector = relu_network_to_convex(net, X), relu_network_to_convex(col, X)
    assert scalar.V.ndim == 2 and vector.V.shape == scalar.V.shape + (1,)
    np.testing.assert_array_equal(vector.patterns.mask, scalar.patterns.mask)
    np.testing.assert_array_equal(vector.V[:, :, 0], scalar.V)
    np.testing.assert_array_equal(vector.W[:, :, 0], scalar.W)
    np.testing.assert_allclose(vector.train_predict(X)[:, 0], scalar.train_predict(X), rtol=0, atol=1e-14)
    assert vector.penalty() == pytest.approx(scalar.penalty(), rel=1e-14)
    assert vector.objective(X, y, 0.3) == pytest.approx(scalar.objective(X, y, 0.3), rel=1e-14)
    assert vector.objective(X, y, 0.3) <= col.objective(X, y, 0.3) * (1 + 1e-12)  # c = 1: no sqrt(2)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("c", [None, 1, 3])
def test_zero_width_network(bias, c):
    rng, X = _data(1)
    shape = (0,) if c is None else (0, c)
    net = ReLUNetwork(W1=np.zeros((3, 0)), w2=np.zeros(shape), b1=np.zeros(0) if bias else None)
    model = relu_network_to_convex(net, X)
    assert model.V.shape == (3 + bias, 1) + (() if c is None else (c,))
    assert model.penalty() == 0.0 and not model.V.any() and not model.W.any()
    np.testing.assert_array_equal(model.train_predict(X), net.predict(X))
    Y = rng.standard_normal((X.shape[0],) + (() if c in (None, 1) else (c,)))
    assert model.objective(X, Y, 0.5) == net.objective(X, Y, 0.5)
    assert to_network(model).n_neurons == 0


@pytest.mark.parametrize("bias", [False, True])
def test_round_trip_reproduces_the_predictions(bias):
    rng, X = _data(20 + bias)
    net = _net(rng, 3, 9, 3, bias)
    model = relu_network_to_convex(net, X)
    Y = rng.standard_normal((X.shape[0], 3))
    f = net.predict(X)
    for back in (to_network(model), to_network(model, split="columns"), relu_vector_factors(model, X).network):
        assert isinstance(back, ReLUNetwork) and back.w2.shape[1] == 3 and (back.b1 is not None) == bias
        np.testing.assert_allclose(back.predict(X), f, rtol=0, atol=1e-12 * np.abs(f).max())
        # every block maps to neurons costing at least its nuclear norm
        assert back.objective(X, Y, 0.2) >= model.objective(X, Y, 0.2) * (1 - 1e-12)
        np.testing.assert_allclose(relu_network_to_convex(back, X).train_predict(X), f, rtol=0,
                                   atol=1e-12 * np.abs(f).max())


@pytest.mark.parametrize("seed", range(6))
def test_penalty_is_within_sqrt2_of_the_networks(seed):
    rng, X = _data(100 + seed, n=12, d=2 + seed % 3)
    c, bias = 2 + seed % 3, bool(seed % 2)
    Y = rng.standard_normal((X.shape[0], c))
    for signs in ("mixed", "uniform"):
        net = _net(rng, X.shape[1], 8, c, bias, signs)
        for scaled in (net, net.balanced()):
            model = relu_network_to_convex(scaled, X)
            A = _first_layer(scaled)
            inner = np.linalg.norm(A, axis=0)
            split = inner @ (np.linalg.norm(np.maximum(scaled.w2, 0), axis=1)
                             + np.linalg.norm(np.maximum(-scaled.w2, 0), axis=1))
            product = inner @ np.linalg.norm(scaled.w2, axis=1)
            eps = 1e-12 * scaled.penalty()
            assert model.penalty() <= split + eps
            assert split <= SQRT2 * product + eps
            assert product <= scaled.penalty() + eps
            columns = ConvexModel(activation="relu", patterns=model.patterns, V=model.V, W=model.W,
                                  formulation="one_vs_all").penalty()
            l1 = inner @ np.abs(scaled.w2).sum(axis=1)
            assert model.penalty() <= columns + eps and columns <= l1 + eps and l1 <= np.sqrt(c) * product + eps
            lam = 0.7
            assert model.objective(X, Y, lam) <= (scaled.objective(X, Y, lam)
                                                  + (SQRT2 - 1) * lam * scaled.penalty() + eps)
            if signs == "uniform":  # no neuron mixes output signs: as for scalar output
                assert split == pytest.approx(product, rel=1e-14)
                assert model.objective(X, Y, lam) <= scaled.objective(X, Y, lam) + eps


def test_sqrt2_is_attained_and_sign_uniform_single_neurons_are_exact():
    rng, X = _data(5)
    a = rng.standard_normal(3)
    for w2, ratio in (([1.0, -1.0], SQRT2), ([3.0, -4.0], 7.0 / 5.0), ([3.0, 4.0], 1.0), ([-3.0, 0.0], 1.0)):
        w2 = np.asarray(w2)
        net = ReLUNetwork(W1=a[:, None], w2=w2[None, :]).balanced()
        assert relu_network_to_convex(net, X).penalty() == pytest.approx(ratio * net.penalty(), rel=1e-12)


def test_bad_input_is_refused_with_typed_errors():
    rng, X = _data(0)
    net = _net(rng, 3, 6, 3, True)
    with pytest.raises(ShapeError, match="features"):
        relu_network_to_convex(net, X[:, :2])
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[2, 1] = bad
        with pytest.raises(NonFiniteError):
            relu_network_to_convex(net, Xb)
    with pytest.raises(ShapeError):
        relu_network_to_convex(net, X[0])  # 1-D
    gated = GatedReLUNetwork(W1=net.W1, w2=net.w2, gates=net.W1)
    with pytest.raises(InvalidParameterError, match="gated_network_to_convex"):
        relu_network_to_convex(gated, X)


def test_vector_relu_cnn_maps_to_the_convex_program():
    """cvxnn.conv.network_to_conv maps a vector-output ReLU CNN through this map."""
    rng = np.random.default_rng(9)
    X = rng.standard_normal((8, 5))
    net = ConvNetwork(filters=rng.standard_normal((2, 5)), alpha=rng.standard_normal((5, 3)),
                      geometry=PatchGeometry.make(5, 2, 1), filter_bias=rng.standard_normal(5))
    point = network_to_conv(net, X)
    f = net.predict(X)
    np.testing.assert_allclose(point.train_predict(X), f, rtol=0, atol=1e-13 * np.abs(f).max())
    assert point.max_cone_violation(X) <= 1e-13 * np.abs(f).max()
    np.testing.assert_allclose(point.to_network().predict(X), f, rtol=0, atol=1e-12 * np.abs(f).max())


def test_optimal_set_refuses_a_vector_model_with_a_shape_error():
    rng, X = _data(4, n=10, d=2)
    y = rng.standard_normal(10)
    sol = build_program(X, y, activation="relu", lam=0.1, patterns=sample_patterns(X, 6, seed=0, bias=True)).solve()
    P = optimal_set(sol, X, y)
    net = sol.to_network()
    for w2 in (np.stack([net.w2, -net.w2], axis=1), net.w2[:, None]):
        model = relu_network_to_convex(ReLUNetwork(W1=net.W1, w2=w2, b1=net.b1), X)
        for method in (P.contains, P.alpha_of):
            with pytest.raises(ShapeError, match="blocks have shape"):
                method(model)
