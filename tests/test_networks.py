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


# --- export to PyTorch (optional extra) -------------------------------------------------------

def _networks(rng):
    d, m = 3, 5
    yield "relu-scalar-bias", ReLUNetwork(rng.standard_normal((d, m)), rng.standard_normal(m),
                                          rng.standard_normal(m))
    yield "relu-vector", ReLUNetwork(rng.standard_normal((d, m)), rng.standard_normal((m, 2)))
    yield "gated-scalar", GatedReLUNetwork(rng.standard_normal((d, m)), rng.standard_normal(m),
                                           gates=rng.standard_normal((d, m)))
    yield "gated-vector-offsets", GatedReLUNetwork(
        rng.standard_normal((d, m)), rng.standard_normal((m, 3)), b1=rng.standard_normal(m),
        gates=rng.standard_normal((d, m)), gate_bias=rng.standard_normal(m))


@pytest.mark.parametrize("case", range(4))
def test_to_torch_same_predictions(case):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(case)
    name, net = list(_networks(rng))[case]
    X = rng.standard_normal((40, 3))
    module = net.to_torch()
    assert isinstance(module, torch.nn.Module)
    out = module(torch.as_tensor(X))
    assert out.dtype == torch.float64 and tuple(out.shape) == net.predict(X).shape, name
    np.testing.assert_allclose(out.detach().numpy(), net.predict(X), rtol=1e-12, atol=1e-12)
    out32 = net.to_torch(dtype=torch.float32)(torch.as_tensor(X, dtype=torch.float32))
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.detach().numpy(), net.predict(X), rtol=1e-4, atol=1e-4)
    assert net.to_torch(dtype="float32").output.weight.dtype == torch.float32


def test_to_torch_gates_are_buffers_not_parameters():
    torch = pytest.importorskip("torch")
    net = list(_networks(np.random.default_rng(3)))[3][1]
    module = net.to_torch()
    params = dict(module.named_parameters())
    assert set(params) == {"hidden.weight", "hidden.bias", "output.weight"}
    state = module.state_dict()
    np.testing.assert_array_equal(state["gates"].numpy(), net.gates)
    np.testing.assert_array_equal(state["gate_bias"].numpy(), net.gate_bias)
    X = torch.as_tensor(np.random.default_rng(4).standard_normal((10, 3)))
    module(X).sum().backward()
    assert all(p.grad is not None for p in params.values())
    assert module.gates.grad is None


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_to_torch_convex_optimum_for_weight_decay_training(activation):
    """The exported optimum has the convex objective under the summed loss + lam/2 weight decay
    (what PyTorch fine-tuning minimises). For the gated network (no kinks: the gates are fixed)
    it is a stationary point of that objective, so fine-tuning starts at a minimum."""
    torch = pytest.importorskip("torch")
    import cvxnn
    from cvxnn.datasets import load_teacher_regression

    X, y = load_teacher_regression()
    lam = 0.5
    patterns = cvxnn.sample_patterns(X, 20, seed=0, bias=True)
    sol = cvxnn.build_program(X, y, activation=activation, lam=lam, patterns=patterns).solve()
    module = sol.to_network().to_torch()
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    loss = 0.5 * ((module(Xt) - yt) ** 2).sum()
    objective = loss + lam / 2 * sum((p**2).sum() for p in module.parameters())
    assert objective.item() == pytest.approx(sol.objective_value, rel=1e-7)
    if activation == "gated_relu":
        objective.backward()
        grad = torch.cat([p.grad.ravel() for p in module.parameters()]).norm().item()
        assert grad <= 1e-3 * max(1.0, objective.item())  # Clarabel's accuracy: ~4e-5
        # the check can fail: the same module with its output layer scaled is far from stationary
        with torch.no_grad():
            module.output.weight.mul_(1.1)
        module.zero_grad()
        moved = 0.5 * ((module(Xt) - yt) ** 2).sum() + lam / 2 * sum((p**2).sum() for p in module.parameters())
        moved.backward()
        assert torch.cat([p.grad.ravel() for p in module.parameters()]).norm().item() > 100 * grad


def test_to_torch_without_torch_names_the_install(monkeypatch):
    import sys

    from cvxnn.errors import CvxnnError

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    net = ReLUNetwork(np.ones((2, 1)), np.ones(1))
    with pytest.raises(CvxnnError, match="pip install torch") as info:
        net.to_torch()
    assert isinstance(info.value, ImportError)


def test_to_torch_rejects_non_float_dtype():
    torch = pytest.importorskip("torch")
    net = ReLUNetwork(np.ones((2, 1)), np.ones(1))
    for bad in (torch.int64, "int32", "nonsense", 3):
        with pytest.raises(InvalidParameterError):
            net.to_torch(dtype=bad)


def test_to_torch_of_a_fitted_estimator_matches_its_predictions():
    """``estimator.network_`` acts on raw X (standardisation is folded in), and so does its export."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from cvxnn.datasets import load_teacher_regression
    from cvxnn.estimators import ConvexGatedReLURegressor

    X, y = load_teacher_regression()
    X = X * np.array([1.0, 100.0, 0.01, 5.0]) + 3.0  # raw, badly scaled columns
    est = ConvexGatedReLURegressor(n_gates=10, lam=1.0, random_state=0).fit(X, y)
    out = est.network_.to_torch()(torch.as_tensor(X)).detach().numpy()
    np.testing.assert_allclose(out, est.predict(X), rtol=1e-10, atol=1e-10 * np.abs(y).max())


@pytest.mark.parametrize("cls", [ReLUNetwork, GatedReLUNetwork])
def test_balanced_zeroes_dead_neurons(cls):
    """A neuron with zero input weights (or zero output weights) computes zero: balanced() gives it
    penalty zero, so the balanced penalty is minimal (it kept the dead side's norm before)."""
    rng = np.random.default_rng(0)
    W1 = rng.standard_normal((3, 3))
    W1[:, 1] = 0.0
    b1 = np.array([0.5, 0.0, -0.2])
    w2 = np.array([1.5, 3.0, 0.0])
    kw = dict(W1=W1, b1=b1, w2=w2)
    if cls is GatedReLUNetwork:
        kw.update(gates=rng.standard_normal((3, 3)), gate_bias=np.zeros(3))
    net = cls(**kw)
    bal = net.balanced()
    X = rng.standard_normal((40, 3))
    np.testing.assert_allclose(bal.predict(X), net.predict(X), atol=1e-12)
    assert np.all(bal.W1[:, 1:] == 0.0) and np.all(bal.w2[1:] == 0.0) and np.all(bal.b1[1:] == 0.0)
    inner = np.sqrt(np.sum(bal.W1**2, axis=0) + bal.b1**2)
    np.testing.assert_allclose(inner, np.abs(bal.w2), rtol=1e-12)


def test_per_neuron_vectors_of_another_shape_are_refused_not_flattened():
    import numpy as np
    import pytest

    from cvxnn import GatedReLUNetwork, ReLUNetwork
    from cvxnn.errors import ShapeError

    rng = np.random.default_rng(0)
    W1, w2 = rng.standard_normal((3, 4)), rng.standard_normal(4)
    X = rng.standard_normal((5, 3))
    with pytest.raises(ShapeError, match=r"b1 must have shape \(4,\)"):
        ReLUNetwork(W1, w2, b1=np.arange(4.0).reshape(2, 2))
    with pytest.raises(ShapeError, match="b1"):
        ReLUNetwork(W1, w2, b1=np.zeros((1, 4, 1)))
    with pytest.raises(ShapeError, match=r"gate_bias must have shape \(4,\)"):
        GatedReLUNetwork(W1, w2, gates=W1, gate_bias=np.zeros((2, 2)))
    # a row (1, m), which broadcasts against X @ W1, is the same network as (m,)
    b = rng.standard_normal(4)
    np.testing.assert_array_equal(ReLUNetwork(W1, w2, b1=b[None, :]).predict(X), ReLUNetwork(W1, w2, b1=b).predict(X))
    np.testing.assert_array_equal(GatedReLUNetwork(W1, w2, gates=W1, gate_bias=b[None, :]).predict(X),
                                  GatedReLUNetwork(W1, w2, gates=W1, gate_bias=b).predict(X))
    assert ReLUNetwork(W1[:, :1], w2[:1], b1=0.5).b1.shape == (1,)


def test_one_column_output_and_extreme_scales():
    """w2 of shape (m, 1) (one output) could not evaluate its objective for any y; balanced()
    zeroed live neurons whose squared weights underflowed (W1 * 1e-170, w2 * 1e170)."""

    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    W1, w2, y = rng.standard_normal((3, 2)), rng.standard_normal(2), rng.standard_normal(6)
    col = ReLUNetwork(W1, w2[:, None])
    flat = ReLUNetwork(W1, w2)
    assert col.objective(X, y, 0.1) == pytest.approx(flat.objective(X, y, 0.1), rel=1e-14)
    assert col.objective(X, y[:, None], 0.1) == pytest.approx(flat.objective(X, y, 0.1), rel=1e-14)
    tiny = ReLUNetwork(W1 * 1e-170, w2 * 1e170, b1=np.array([1e-170, -2e-170]))
    np.testing.assert_allclose(tiny.balanced().predict(X), tiny.predict(X), rtol=1e-12, atol=0)
    assert np.isfinite(tiny.balanced().penalty())


@pytest.mark.parametrize("w2_shape", [(0,), (0, 3)])
def test_balanced_network_without_neurons(w2_shape):
    """A network with no neurons (what to_network gives at lam >= lam_max) balances to itself;
    the reshape with -1 of an empty array raised numpy's ValueError."""
    net = ReLUNetwork(np.zeros((3, 0)), np.zeros(w2_shape))
    out = net.balanced()
    assert out.n_neurons == 0 and out.w2.shape == w2_shape
    X = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_array_equal(out.predict(X), net.predict(X))


def test_objective_checks_labels_and_takes_single_output_blocks():
    """objective() refuses labels the loss cannot take (it returned a number for real-valued
    logistic targets), and a one-output convex model with 3-D blocks (d_a, p, 1) is evaluated
    against y of shape (n,) or (n, 1) (its (n, 1) predictions were refused)."""
    from cvxnn.errors import LabelError
    from cvxnn.maps import gated_network_to_convex

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((9, 3)), rng.standard_normal(9)
    W1, w2, G = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal((3, 4))
    with pytest.raises(LabelError):
        ReLUNetwork(W1, w2).objective(X, y, 0.1, loss="logistic")
    scalar = GatedReLUNetwork(W1, w2, gates=G)
    column = gated_network_to_convex(GatedReLUNetwork(W1, w2[:, None], gates=G), X)
    expected = gated_network_to_convex(scalar, X).objective(X, y, 0.1)
    assert column.objective(X, y, 0.1) == pytest.approx(expected, rel=1e-12)
    assert column.objective(X, y[:, None], 0.1) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(LabelError):
        column.objective(X, y, 0.1, loss="logistic")
