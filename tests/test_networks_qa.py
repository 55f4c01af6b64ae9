"""QA of the plain two-layer networks (cvxnn.networks) through the public API: construction and
validation, dtypes, the gate mask, objectives, balancing, maps to and from convex points,
saving and export."""

import copy
import pickle
import warnings

import numpy as np
import pytest

import cvxnn
import cvxnn.io
from cvxnn import GatedReLUNetwork, ReLUNetwork, gated_network_to_convex, relu_network_to_convex, to_network
from cvxnn.errors import InvalidParameterError, NonFiniteError, ShapeError
from cvxnn.patterns import Patterns


def _gated(rng, d=3, m=4, c=None, b1=True, gate_bias=True):
    w2 = rng.standard_normal(m) if c is None else rng.standard_normal((m, c))
    return GatedReLUNetwork(rng.standard_normal((d, m)), w2, b1=rng.standard_normal(m) if b1 else None,
                            gates=rng.standard_normal((d, m)),
                            gate_bias=rng.standard_normal(m) if gate_bias else None)


@pytest.fixture(scope="module")
def diabetes():
    """60 standardized rows, 4 features of scikit-learn's diabetes data, standardized targets."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_diabetes(return_X_y=True)
    X, y = X[:60, :4], y[:60]
    return (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()


# --- gate mask: the convex image's, at ties and for huge gates ---------------------------------

def test_gate_mask_is_the_convex_images_mask_at_ties():
    """A gate through a data point puts X g + g0 at a tie. The network summed it as X @ G + g0,
    the patterns (and so the convex image) as [X, 1] @ [G; g0]: for one-neuron networks 7% of such
    gates rounded the tie the other way, and the network's prediction differed from its convex
    image's by the whole neuron (-1.61 against 0.0 on one row)."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        X = rng.standard_normal((8, 5))
        g = rng.standard_normal(5)
        g0 = -float(X[rng.integers(8)] @ g)
        net = GatedReLUNetwork(rng.standard_normal((5, 1)), np.ones(1), gates=g[:, None], gate_bias=[g0])
        np.testing.assert_array_equal(net.gate_mask(X), Patterns.from_gates(X, np.r_[g, g0][:, None], bias=True).mask)
        image = gated_network_to_convex(net, X)
        np.testing.assert_allclose(net.predict(X), image.predict(X), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(net.predict(X), image.train_predict(X), rtol=1e-12, atol=1e-12)
        # with a first-layer bias but no gate offset the image uses [X, 1] @ [g; 0]: the same mask
        net_b = GatedReLUNetwork(net.W1, net.w2, b1=[0.5], gates=g[:, None])
        np.testing.assert_allclose(net_b.predict(X), gated_network_to_convex(net_b, X).predict(X), rtol=1e-12)


def test_huge_gates_do_not_overflow():
    """A gate is a direction: 1e308 * (1, 1, 1) is the gate (1, 1, 1). Its products overflowed
    to inf - inf = NaN, read as inactive, so the row (2, -2, 1) was gated off (prediction 0.0,
    the convex image's 1.0)."""
    X = np.array([[2.0, -2.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 0.5, 0.2]])
    big = GatedReLUNetwork(np.ones((3, 1)), np.ones(1), gates=np.full((3, 1), 1e308))
    unit = GatedReLUNetwork(np.ones((3, 1)), np.ones(1), gates=np.ones((3, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        np.testing.assert_array_equal(big.gate_mask(X), unit.gate_mask(X))
        np.testing.assert_array_equal(big.predict(X), [1.0, 3.0, 0.0])
    np.testing.assert_array_equal(big.predict(X), gated_network_to_convex(big, X).predict(X))
    offset = GatedReLUNetwork(np.ones((3, 1)), np.ones(1), gates=np.full((3, 1), 1e300), gate_bias=[1e308])
    np.testing.assert_array_equal(offset.gate_mask(1e8 * X).ravel(), [True, True, True])  # 1e308 + 1e308 * x g


def test_huge_gates_export_to_torch():
    torch = pytest.importorskip("torch")
    X = np.array([[2.0, -2.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 0.5, 0.2]])
    net = GatedReLUNetwork(np.ones((3, 2)), np.array([1.0, -2.0]), gates=np.array([[1e308, 1.0]] * 3),
                           gate_bias=[1e308, -0.5])
    module = net.to_torch()
    np.testing.assert_allclose(module(torch.as_tensor(X)).detach().numpy(), net.predict(X), rtol=1e-15)
    assert torch.isfinite(module.gates).all() and torch.isfinite(module.gate_bias).all()
    np.testing.assert_array_equal(module.gates.numpy()[:, 1], net.gates[:, 1])  # ordinary gates as they are


@pytest.mark.parametrize("cls", [ReLUNetwork, GatedReLUNetwork])
def test_unbalanced_neurons_with_huge_weights_predict_their_output(cls):
    """The neuron (1e308 * (1, 1, 1), 1e-308) computes (x . (1, 1, 1))_+ (gated: its gate's), a
    moderate number, but its hidden activation overflows: the rows (2, -2, 1) and (1, 1, 1)
    predicted [0, inf] (ReLU: 2e308 - 2e308 = NaN, then relu) and [-inf, inf] (gated)."""
    X = np.array([[2.0, -2.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 0.5, 0.2]])
    kw = {"gates": np.ones((3, 1))} if cls is GatedReLUNetwork else {}
    huge = cls(np.full((3, 1), 1e308), np.array([1e-308]), **kw)
    unit = cls(np.ones((3, 1)), np.ones(1), **kw)
    np.testing.assert_allclose(huge.predict(X), unit.predict(X), rtol=1e-15)
    assert huge.objective(X, unit.predict(X), 0.0) == pytest.approx(0.0, abs=1e-28)
    if cls is ReLUNetwork:
        np.testing.assert_array_equal(huge.activation_patterns(X), unit.activation_patterns(X))
    # other neurons and ordinary networks keep their predictions bit for bit
    rng = np.random.default_rng(8)
    W1, w2 = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    G = {"gates": rng.standard_normal((3, 4))} if cls is GatedReLUNetwork else {}
    plain = cls(W1, w2, b1=rng.standard_normal(4), **G)
    np.testing.assert_array_equal(plain.predict(X), plain.hidden(X) @ plain.w2)
    mixed = cls(np.hstack([np.full((3, 1), 1e308), W1]), np.vstack([[1e-308, 0.0], w2]),
                **({"gates": np.hstack([np.ones((3, 1)), G["gates"]])} if G else {}))
    np.testing.assert_allclose(mixed.predict(X), cls(W1, w2, **G).predict(X) + unit.predict(X)[:, None] * [1, 0],
                               rtol=1e-14, atol=1e-14)


def test_objective_without_weight_decay_is_the_loss_when_the_penalty_overflows():
    """lam = 0: the objective is the loss. A penalty that overflows to inf (weights 1e200 and
    1e-200: an ordinary function) made it 0 * inf = NaN."""
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    net = ReLUNetwork(1e200 * rng.standard_normal((3, 2)), 1e-200 * rng.standard_normal(2))
    assert net.objective(X, y, 0.0) == pytest.approx(0.5 * np.sum((net.predict(X) - y) ** 2), rel=1e-14)
    assert net.objective(X, y, 0.0) == pytest.approx(net.balanced().objective(X, y, 0.0), rel=1e-12)


def test_float32_export_of_gates_beyond_float32_range():
    """A gate of 1e50 is the same gate as (1, 1, 1), but in float32 it is inf: the module's gate
    computed inf - inf = NaN on (2, -2, 1) and predicted 0 where the network predicts 1."""
    torch = pytest.importorskip("torch")
    X = np.array([[2.0, -2.0, 1.0], [1.0, 1.0, 1.0], [-1.0, 0.5, 0.2]])
    net = GatedReLUNetwork(np.ones((3, 1)), np.ones(1), gates=np.full((3, 1), 1e50))
    module = net.to_torch(dtype=torch.float32)
    assert torch.isfinite(module.gates).all()
    out = module(torch.as_tensor(X, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(out, net.predict(X), rtol=1e-6)


# --- small API fixes -------------------------------------------------------------------------

def test_objective_loss_none_is_squared_as_for_convex_models():
    """ConvexModel.objective(X, y, lam, loss=None) means the squared loss; the network's raised
    "unknown loss None", so code written for both (``obj.objective(X, y, lam, loss)``) failed on
    networks."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((9, 3)), rng.standard_normal(9)
    net = _gated(rng).balanced()
    assert net.objective(X, y, 0.3, loss=None) == net.objective(X, y, 0.3, loss="squared")
    image = gated_network_to_convex(net, X)
    assert image.patterns.n_patterns == net.n_neurons  # no shared patterns: equal objectives
    assert net.objective(X, y, 0.3, None) == pytest.approx(image.objective(X, y, 0.3, None), rel=1e-12)


@pytest.mark.parametrize("cls", [ReLUNetwork, GatedReLUNetwork])
def test_network_without_input_features_is_refused(cls):
    """W1 of shape (0, m) built a network that no X can be given to (check_X refuses X without
    columns); it is refused where it is built."""
    kw = {"gates": np.zeros((0, 2))} if cls is GatedReLUNetwork else {}
    with pytest.raises(ShapeError, match="no rows"):
        cls(np.zeros((0, 2)), np.ones(2), b1=np.ones(2), **kw)


@pytest.mark.parametrize("cls", [ReLUNetwork, GatedReLUNetwork])
def test_to_torch_without_neurons_does_not_warn(cls):
    """A network without neurons (to_network at lam >= lam_max) exported with torch's
    "Initializing zero-element tensors is a no-op" UserWarning."""
    torch = pytest.importorskip("torch")
    kw = {"gates": np.zeros((3, 0)), "gate_bias": np.zeros(0)} if cls is GatedReLUNetwork else {}
    net = cls(np.zeros((3, 0)), np.zeros((0, 2)), b1=np.zeros(0), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = net.to_torch()
    out = module(torch.zeros((4, 3), dtype=torch.float64))
    assert tuple(out.shape) == (4, 2) and not out.any()


# --- validation, dtypes, shapes --------------------------------------------------------------

def test_constructor_validation():
    rng = np.random.default_rng(2)
    W1, w2, b1 = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(4)
    G = rng.standard_normal((3, 4))
    bad_shapes = [
        lambda: ReLUNetwork(W1, w2[:3]),                    # neuron counts of W1 and w2 differ
        lambda: ReLUNetwork(W1, np.ones((4, 2, 1))),        # w2 3-D
        lambda: ReLUNetwork(W1, np.ones((4, 0))),           # no outputs
        lambda: ReLUNetwork(W1, w2, b1[:3]),                # b1 length
        lambda: ReLUNetwork(W1, w2, b1[:, None]),           # b1 a column
        lambda: ReLUNetwork(W1[:, 0], w2[:1]),              # W1 1-D
        lambda: ReLUNetwork(None, w2),
        lambda: GatedReLUNetwork(W1, w2),                   # gates missing
        lambda: GatedReLUNetwork(W1, w2, gates=G[:, :3]),
        lambda: GatedReLUNetwork(W1, w2, gates=G.T[:3]),
        lambda: GatedReLUNetwork(W1, w2, gates=G, gate_bias=b1[:2]),
        lambda: GatedReLUNetwork(W1, w2, G),                # gates passed positionally as b1
    ]
    for make in bad_shapes:
        with pytest.raises(ShapeError):
            make()
    for name, kw in [("W1", dict(W1=np.where(W1 > 0, np.nan, W1))), ("w2", dict(w2=w2 * np.inf)),
                     ("b1", dict(b1=np.r_[b1[:3], -np.inf])), ("gates", dict(gates=G * np.nan)),
                     ("gate_bias", dict(gate_bias=np.r_[np.nan, b1[1:]]))]:
        args = dict(W1=W1, w2=w2, gates=G) | kw
        with pytest.raises(NonFiniteError, match=name):
            GatedReLUNetwork(**args)
    for bad in ("abc", W1 + 1j, {"a": 1}):
        with pytest.raises(InvalidParameterError):
            ReLUNetwork(bad, w2)


def test_inputs_dtypes_and_single_rows():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 3))
    for net in (ReLUNetwork(rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(4)), _gated(rng)):
        ref = net.predict(X)
        assert ref.dtype == np.float64 and ref.shape == (6,)
        np.testing.assert_array_equal(net.predict(X.tolist()), ref)
        np.testing.assert_allclose(net.predict(X.astype(np.float32)), ref, rtol=1e-5, atol=1e-5)
        assert net.predict(X.astype(np.float32)).dtype == np.float64
        Xi = np.arange(18).reshape(6, 3) % 4 - 1
        np.testing.assert_array_equal(net.predict(Xi), net.predict(Xi.astype(float)))
        np.testing.assert_allclose(net.predict(X[2:3]), ref[2:3], rtol=1e-14, atol=1e-15)  # one row, 2-D
        with pytest.raises(ShapeError, match="reshape"):
            net.predict(X[2])  # 1-D: ambiguous (one sample or one feature), refused with the fix
        with pytest.raises(ShapeError, match="3"):
            net.predict(X[:, :2])
        with pytest.raises(NonFiniteError):
            net.predict(np.where(X > 1, np.inf, X))
    # integer, list and float32 weights are stored as float64 copies; the caller's arrays are not aliased
    W1 = np.array([[1, -1], [0, 2], [3, 0]], dtype=np.int32)
    net = ReLUNetwork(W1, [1, -2])
    assert net.W1.dtype == np.float64 and net.w2.dtype == np.float64
    W1f = W1.astype(np.float32)
    net32 = ReLUNetwork(W1f, np.array([1, -2], dtype=np.float32))
    W1f[0, 0] = 100.0
    np.testing.assert_array_equal(net32.W1, net.W1)


def test_vector_output_zero_neurons_and_column_output():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, 3))
    Y = rng.standard_normal((5, 2))
    empty = GatedReLUNetwork(np.zeros((3, 0)), np.zeros((0, 2)), gates=np.zeros((3, 0)))
    np.testing.assert_array_equal(empty.predict(X), np.zeros((5, 2)))
    assert empty.penalty() == 0.0 and empty.objective(X, Y, 2.0) == pytest.approx(0.5 * np.sum(Y**2))
    vec = ReLUNetwork(rng.standard_normal((3, 4)), rng.standard_normal((4, 2)))
    assert vec.predict(X[:1]).shape == (1, 2) and vec.n_outputs == 2
    with pytest.raises(ShapeError):
        vec.objective(X, Y[:, 0], 1.0)  # two outputs, one target column


def test_identity_equality_copy_and_pickle():
    """Networks are frozen dataclasses compared by identity (eq=False: arrays have no single
    truth value); copies and pickles predict the same."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((4, 3))
    net = _gated(rng, c=2)
    assert net == net and net != copy.deepcopy(net) and hash(net) == hash(net)
    for other in (copy.copy(net), copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert type(other) is GatedReLUNetwork
        np.testing.assert_array_equal(other.predict(X), net.predict(X))
    assert repr(net).startswith("GatedReLUNetwork(W1=array(")
    with pytest.raises(AttributeError):
        net.W1 = np.zeros((3, 4))
    import dataclasses

    with pytest.raises(ShapeError):  # replace() validates like the constructor
        dataclasses.replace(net, b1=np.ones(7))


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((5, 3))
    nets = [ReLUNetwork(rng.standard_normal((3, 4)), rng.standard_normal((4, 1))),
            ReLUNetwork(np.zeros((3, 0)), np.zeros((0, 2)), b1=np.zeros(0)),
            _gated(rng, c=3, b1=False),
            GatedReLUNetwork(np.zeros((3, 0)), np.zeros(0), gates=np.zeros((3, 0)))]
    for k, net in enumerate(nets):
        back = cvxnn.io.load(cvxnn.io.save(net, tmp_path / f"net{k}"))
        assert type(back) is type(net)
        for name in ("W1", "w2", "b1", "gates", "gate_bias"):
            a, b = getattr(net, name, None), getattr(back, name, None)
            assert (a is None) == (b is None)
            if a is not None:
                assert a.shape == b.shape and np.array_equal(a, b)
        np.testing.assert_array_equal(back.predict(X), net.predict(X))


# --- balancing and the maps on solved programs ----------------------------------------------

@pytest.mark.parametrize("make", [
    lambda rng: ReLUNetwork(3 * rng.standard_normal((3, 5)), 0.1 * rng.standard_normal((5, 2)), rng.standard_normal(5)),
    lambda rng: _gated(rng, m=5),
])
def test_balanced_keeps_predictions_and_minimises_the_penalty(make):
    """Rescaling neuron j by s_j > 0 ((W1_j, b1_j) * s_j, w2_j / s_j) keeps the function; the
    balanced network has the least penalty among all such rescalings (sum_j ||a_j|| ||w2_j||)."""
    rng = np.random.default_rng(7)
    net = make(rng)
    X = rng.standard_normal((30, 3))
    bal = net.balanced()
    np.testing.assert_allclose(bal.predict(X), net.predict(X), rtol=1e-12, atol=1e-12)
    inner = np.sqrt(np.sum(net.W1**2, 0) + (0 if net.b1 is None else net.b1**2))
    outer = np.linalg.norm(net.w2.reshape(net.n_neurons, -1), axis=1)
    assert bal.penalty() == pytest.approx(np.sum(inner * outer), rel=1e-12)
    for s in np.exp(rng.standard_normal((50, net.n_neurons))):
        kw = {k: getattr(bal, k) for k in bal.__dataclass_fields__}
        kw.update(W1=bal.W1 * s, w2=bal.w2 / (s if bal.w2.ndim == 1 else s[:, None]),
                  b1=None if bal.b1 is None else bal.b1 * s)
        moved = type(bal)(**kw)
        np.testing.assert_allclose(moved.predict(X), net.predict(X), rtol=1e-10, atol=1e-10)
        assert moved.penalty() >= bal.penalty() * (1 - 1e-12)


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
@pytest.mark.parametrize("bias", [False, True])
def test_maps_on_solutions_of_standardized_data(diabetes, activation, bias):
    """docs/modelling.md, "Exact maps": to_network keeps the predictions and the objective of a
    solution; mapping the network back keeps the predictions with an objective no larger."""
    X, y = diabetes
    lam = 2.0
    sol = cvxnn.solve(X, y, cvxnn.sample_patterns(X, 10, seed=0, bias=bias), activation=activation, lam=lam)
    net = to_network(sol)
    assert isinstance(net, GatedReLUNetwork if activation == "gated_relu" else ReLUNetwork)
    assert (net.b1 is not None) == bias and net.n_neurons >= 1
    np.testing.assert_allclose(net.predict(X), sol.predict(X), rtol=1e-10, atol=1e-10)
    assert net.objective(X, y, lam, sol.loss) == pytest.approx(sol.objective_value, rel=1e-10)
    assert net.objective(X, y, lam) == pytest.approx(sol.objective(X, y, lam), rel=1e-10)
    bal = net.balanced()  # already balanced: the same network
    np.testing.assert_allclose(bal.penalty(), net.penalty(), rtol=1e-12)
    back = (gated_network_to_convex if activation == "gated_relu" else relu_network_to_convex)(net, X)
    np.testing.assert_allclose(back.predict(X), net.predict(X), rtol=1e-10, atol=1e-10)
    assert back.objective(X, y, lam) <= net.objective(X, y, lam) * (1 + 1e-12)
    assert back.max_cone_violation(X) <= 1e-12


def test_vector_output_gated_map_round_trip(diabetes):
    X, y = diabetes
    Y = np.c_[y, np.sin(3 * y)]
    lam = 2.0
    sol = cvxnn.solve(X, Y, cvxnn.sample_patterns(X, 8, seed=1, bias=True), activation="gated_relu", lam=lam)
    net = to_network(sol)
    assert net.w2.shape[1] == 2
    np.testing.assert_allclose(net.predict(X), sol.predict(X), rtol=1e-10, atol=1e-10)
    assert net.objective(X, Y, lam) == pytest.approx(sol.objective(X, Y, lam), rel=1e-10)
    back = gated_network_to_convex(net, X)
    np.testing.assert_allclose(back.predict(X), net.predict(X), rtol=1e-10, atol=1e-10)
    assert back.objective(X, Y, lam) <= net.objective(X, Y, lam) * (1 + 1e-12)


@pytest.mark.parametrize("gated", [False, True])
def test_weights_are_read_only_views(gated):
    """A network is frozen: an entry written in place (net.W1[0, 0] = nan) bypassed its
    validation. The arrays are read-only copies; the caller's own arrays stay writable."""
    W1, w2, b1 = np.ones((3, 2)), np.ones(2), np.zeros(2)
    kw = dict(W1=W1, w2=w2, b1=b1)
    if gated:
        kw.update(gates=np.ones((3, 2)), gate_bias=np.zeros(2))
    net = (GatedReLUNetwork if gated else ReLUNetwork)(**kw)
    names = ["W1", "w2", "b1"] + (["gates", "gate_bias"] if gated else [])
    for name in names:
        with pytest.raises(ValueError, match="read-only"):
            getattr(net, name)[0] = np.nan
    W1[0, 0] = 2.0  # the caller's array stays writable and is not the network's
    assert W1.flags.writeable and net.W1[0, 0] == 1.0
