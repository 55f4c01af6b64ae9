"""Plain two-layer networks: predictions, penalties, objectives, balancing."""

import numpy as np
import pytest

from cvxnn import GatedReLUNetwork, ReLUNetwork
from cvxnn.errors import InvalidParameterError, ShapeError


def test_relu_network_prediction_and_objective():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    net = ReLUNetwork(W1=np.array([[1.0, -1.0], [0.0, 2.0]]), w2=np.array([2.0, 1.0]), b1=np.array([0.0, 1.0]))
    H = np.maximum(X @ net.W1 + net.b1, 0)
    np.testing.assert_allclose(net.predict(X), H @ net.w2)
    y = np.array([1.0, 2.0, 3.0])
    expected = 0.5 * np.sum((H @ net.w2 - y) ** 2) + 0.5 * 0.3 * (6.0 + 5.0 + 1.0)
    assert net.objective(X, y, 0.3) == pytest.approx(expected)


def test_vector_output_and_gated():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3))
    W1, G = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    w2 = rng.standard_normal((4, 2))
    net = GatedReLUNetwork(W1=W1, w2=w2, gates=G)
    np.testing.assert_allclose(net.predict(X), ((X @ G >= 0) * (X @ W1)) @ w2)
    assert net.n_outputs == 2 and net.n_neurons == 4


def test_balancing_keeps_function_and_lowers_penalty():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 2))
    net = ReLUNetwork(W1=5 * rng.standard_normal((2, 3)), w2=0.1 * rng.standard_normal(3), b1=rng.standard_normal(3))
    bal = net.balanced()
    np.testing.assert_allclose(bal.predict(X), net.predict(X), rtol=1e-12)
    assert bal.penalty() <= net.penalty()
    inner = np.sqrt(np.sum(bal.W1**2, axis=0) + bal.b1**2)
    np.testing.assert_allclose(inner, np.abs(bal.w2))


def test_network_errors():
    with pytest.raises(ShapeError):
        ReLUNetwork(W1=np.ones((2, 3)), w2=np.ones(2))
    with pytest.raises(ShapeError):
        ReLUNetwork(W1=np.ones(3), w2=np.ones(3))
    with pytest.raises(ShapeError):
        GatedReLUNetwork(W1=np.ones((2, 3)), w2=np.ones(3))
    net = ReLUNetwork(W1=np.ones((2, 3)), w2=np.ones(3))
    with pytest.raises(ShapeError):
        net.predict(np.ones((4, 3)))
    with pytest.raises(InvalidParameterError):
        net.objective(np.ones((4, 2)), np.ones(4), lam=-1)
