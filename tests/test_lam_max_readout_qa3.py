"""lam_max of losses differentiable at zero (hinge, absolute without zero targets), the block
threshold ``tol`` of the vector-output readout applied to rank-one factors, and pattern sampling
on degenerate data (every drawn gate giving the all-zero pattern)."""

from __future__ import annotations

import numpy as np
import pytest

from cvxnn import build_program, get_loss, sample_patterns
from cvxnn.errors import InvalidParameterError, LabelError
from cvxnn.maps import to_network
from cvxnn.path import lam_max
from cvxnn.patterns import Patterns
from cvxnn.solution import ConvexModel
from cvxnn.vector import relu_vector_factors

# ---------------------------------------------------------------- lam_max of non-smooth losses


@pytest.fixture(scope="module")
def pm1_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((25, 3))
    y = np.where(X @ rng.standard_normal(3) + 0.3 * rng.standard_normal(25) > 0, 1.0, -1.0)
    return X, y, sample_patterns(X, 12, seed=0, bias=True)


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
@pytest.mark.parametrize("loss, reduction", [("hinge", "sum"), ("hinge", "mean"), ("absolute", "sum")])
def test_lam_max_of_a_loss_differentiable_at_zero_is_exact_against_clarabel(pm1_data, activation, loss, reduction):
    """The zero model is optimal iff 0 is in the subdifferential at 0; the hinge (labels +-1) and
    the absolute loss (no zero target) are differentiable at z = 0, so the smooth formula is
    exact. The hinge and absolute programs are piecewise linear, so at lam_max the optimum is a
    face containing 0 (Clarabel's point need not be 0): the optimal value is checked. It is the
    zero model's L(0) at lam_max and strictly below it at 0.999 lam_max."""
    X, y, pats = pm1_data
    if loss == "absolute":
        y = y * np.linspace(0.5, 2.0, y.size)  # no target is 0
    lobj = get_loss(loss, reduction=reduction)
    lm = lam_max(X, y, pats, activation, lobj)
    assert lm > 0
    L0 = lobj.value(np.zeros_like(y), y)
    prog = build_program(X, y, activation=activation, loss=lobj, lam=lm, patterns=pats)
    at = prog.solve(lam=lm)
    below = prog.solve(lam=lm * 0.999)
    assert at.status == "optimal" and below.status == "optimal"
    assert abs(at.objective_value - L0) <= 1e-6 * L0
    assert below.objective_value < L0 * (1 - 5e-5)
    above = prog.solve(lam=lm * 1.01)  # beyond lam_max the zero model is the only optimum
    assert np.abs(above.effective_weights).max() < 1e-5 * np.abs(below.effective_weights).max()


def test_lam_max_of_the_hinge_equals_the_squared_losses_on_pm1_labels(pm1_data):
    """Both gradients at 0 are -y: the same correlations, the same lam_max (the logistic loss's
    gradient is -y/2)."""
    X, y, pats = pm1_data
    for activation in ("relu", "gated_relu"):
        hinge = lam_max(X, y, pats, activation, "hinge")
        assert hinge == pytest.approx(lam_max(X, y, pats, activation, "squared"), rel=1e-12)
        assert hinge == pytest.approx(2 * lam_max(X, y, pats, activation, "logistic"), rel=1e-12)


def test_lam_max_refuses_a_loss_not_differentiable_at_zero(pm1_data):
    """A target 0 puts the absolute loss's kink at z = 0: no gradient, and lam_max says so."""
    X, y, pats = pm1_data
    y0 = y.copy()
    y0[[2, 5]] = 0.0
    with pytest.raises(InvalidParameterError, match=r"differentiable at the zero model.*2 of 25 targets are 0"):
        lam_max(X, y0, pats, "relu", "absolute")
    with pytest.raises(LabelError, match=r"labels in \{-1, \+1\}"):
        lam_max(X, np.where(y > 0, 1.0, 0.3), pats, "relu", "hinge")


def test_grad_at_zero_of_each_loss():
    y = np.array([1.0, -1.0, -1.0, 1.0])
    np.testing.assert_array_equal(get_loss("hinge").grad_at_zero(y), -y)
    np.testing.assert_array_equal(get_loss("hinge", reduction="mean").grad_at_zero(y), -y / 4)
    np.testing.assert_array_equal(get_loss("absolute").grad_at_zero(3 * y), -y)
    np.testing.assert_allclose(get_loss("logistic").grad_at_zero(y), -y / 2)
    np.testing.assert_array_equal(get_loss("squared").grad_at_zero(2 * y), -2 * y)
    with pytest.raises(InvalidParameterError, match="not differentiable at z = 0"):
        get_loss("absolute").grad_at_zero(np.array([1.0, 0.0]))


# ------------------------------------------------- readout: factors below the block threshold


def _gated_vector_model(rng, tiny: float):
    X = rng.standard_normal((30, 3))
    pats = sample_patterns(X, 5, seed=1, bias=True)
    d_a, p, c = pats.design_dim, pats.n_patterns, 3
    U = np.zeros((d_a, p, c))
    for i in range(p):  # rank one, plus a second factor at `tiny` of the block (solver noise)
        a, b, a2, b2 = (rng.standard_normal(n) for n in (d_a, c, d_a, c))
        a2 -= a * (a @ a2) / (a @ a)
        U[:, i, :] = np.outer(a, b) + tiny * np.linalg.norm(a) * np.linalg.norm(b) * np.outer(
            a2 / np.linalg.norm(a2), b2 / np.linalg.norm(b2))
    return X, ConvexModel(activation="gated_relu", patterns=pats, U=U)


def test_gated_vector_tol_drops_factors_below_the_block_threshold():
    """A factor at 1e-9 of its block is below the threshold 1e-7 * max block norm that drops
    whole blocks: with tol = 1e-7 it is not a neuron (it was: two neurons per block), with
    tol = 0 the map stays exact (two neurons per block)."""
    X, model = _gated_vector_model(np.random.default_rng(3), 1e-9)
    p = model.patterns.n_patterns
    exact = to_network(model)
    assert exact.n_neurons == 2 * p
    np.testing.assert_allclose(exact.predict(X), model.predict(X), rtol=0, atol=1e-12)
    net = to_network(model, tol=1e-7)
    assert net.n_neurons == p
    scale = np.abs(model.predict(X)).max()
    np.testing.assert_allclose(net.predict(X), model.predict(X), rtol=0, atol=1e-7 * scale)
    cols = to_network(model, tol=1e-7, split="columns")  # columns are not below it: c per block
    assert cols.n_neurons == 3 * p
    # a factor above the threshold stays a neuron
    _, big = _gated_vector_model(np.random.default_rng(3), 1e-5)
    assert to_network(big, tol=1e-7).n_neurons == 2 * p


def test_relu_vector_factor_below_the_threshold_does_not_force_the_columnwise_split():
    """A C-ReLU block ``a b^T`` (``a`` in ``K_i``) plus a factor at 1e-8 of it (above
    ``rank_tol = 1e-9``, below the block threshold 1e-7) whose left vector is in no cone: the
    tiny factor failed the cone test, so the block was split into ``c`` columns; with
    tol = 1e-7 it is dropped like a block below the threshold, and the block is one SVD neuron."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 3))
    pats = sample_patterns(X, 1, seed=2, bias=True)
    g = pats.gates[:, 0]
    S = 2.0 * pats.mask[:, 0] - 1.0
    Xa = pats.design(X)
    while True:  # a left factor in neither +K nor -K
        a2 = rng.standard_normal(g.size)
        a2 -= g * (g @ a2) / (g @ g)
        if (S * (Xa @ a2)).min() < 0 < (S * (Xa @ a2)).max():
            break
    b, b2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, -1.0, 0.0])
    V = (np.outer(g, b) + 1e-8 * np.linalg.norm(g) * np.linalg.norm(b)
         * np.outer(a2 / np.linalg.norm(a2), b2 / np.linalg.norm(b2)))[:, None, :]
    model = ConvexModel(activation="relu", patterns=pats, V=V, W=np.zeros_like(V))
    exact = relu_vector_factors(model, X)
    assert exact.network.n_neurons == 3 and exact.split_blocks[0, 0]
    f = relu_vector_factors(model, X, tol=1e-7)
    assert f.network.n_neurons == 1 and f.svd_blocks[0, 0]
    assert 0 < f.dropped_singular_mass < 2e-8 * np.linalg.norm(g) * np.linalg.norm(b)
    scale = np.abs(model.predict(X)).max()
    np.testing.assert_allclose(f.network.predict(X), model.predict(X), rtol=0, atol=1e-7 * scale)


def test_gated_classifier_on_clarabel_counts_the_neurons_of_the_native_solver():
    """make_blobs, 3 classes, 6 gates: Clarabel's blocks carry factors at 1e-9 of the largest,
    which were 12 neurons against the native solver's 6 for the same objective."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import make_blobs

    from cvxnn.estimators import ConvexGatedReLUClassifier

    X, y = make_blobs(n_samples=120, centers=3, random_state=0)
    ipm = ConvexGatedReLUClassifier(n_gates=6, backend="clarabel", random_state=0).fit(X, y)
    native = ConvexGatedReLUClassifier(n_gates=6, backend="native", random_state=0).fit(X, y)
    assert ipm.objective_ == pytest.approx(native.objective_, rel=1e-5)
    assert ipm.n_active_neurons_ == native.n_active_neurons_ == 6
    assert np.array_equal(ipm.predict(X), native.predict(X))


# --------------------------------------------------------- patterns on degenerate data


@pytest.mark.parametrize("seed", [0, 3])
def test_sampled_patterns_of_constant_data_are_never_empty(seed):
    """All-zero X with a bias: a gate's pattern is all-ones or all-zero by the sign of its bias;
    with 4 gates seeds 0 and 3 draw four negative biases and sampling raised "no activation
    pattern is left". The negated first gate (the all-ones pattern) is the pattern set."""
    X = np.zeros((10, 3))
    G = np.random.default_rng(seed).standard_normal((4, 4))
    assert np.all(G[-1] < 0)  # the degenerate draw
    pats = sample_patterns(X, 4, seed=seed, bias=True)
    assert pats.n_patterns == 1 and pats.mask.all()
    np.testing.assert_array_equal(pats.gates[:, 0], -G[:, 0])
    with pytest.raises(InvalidParameterError, match="no activation pattern is left"):  # given gates: kept
        Patterns.from_gates(X, G, bias=True, drop_zero=True)


def test_estimators_fit_constant_features_with_few_gates():
    """standardize=True turns constant columns into zeros; n_gates=4 with seeds 0 and 3 failed.
    The fit is the one on the all-ones pattern, as for a seed that draws a positive bias."""
    from cvxnn.estimators import ConvexGatedReLURegressor, ConvexReLURegressor

    X = np.full((30, 3), 2.5)
    y = np.linspace(0.0, 1.0, 30)
    for est in (ConvexGatedReLURegressor, ConvexReLURegressor):
        ref = est(n_gates=4, random_state=1, standardize=True).fit(X, y).predict(X)
        for seed in (0, 3):
            pred = est(n_gates=4, random_state=seed, standardize=True).fit(X, y).predict(X)
            np.testing.assert_allclose(pred, ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("bias", [True, False])
def test_sampled_patterns_of_real_data_are_the_drawn_gates_patterns(bias):
    """On ordinary data the same seed gives the patterns of the drawn gates, as before: the
    gates ``N(0, I)`` from the seed, duplicates and all-zero patterns removed."""
    sklearn = pytest.importorskip("sklearn.datasets")
    X = sklearn.load_diabetes().data[:150]
    for seed, n_gates in ((0, 60), (7, 5)):
        G = np.random.default_rng(seed).standard_normal((X.shape[1] + int(bias), n_gates))
        ref = Patterns.from_gates(X, G, bias=bias, unique=True, drop_zero=True)
        pats = sample_patterns(X, n_gates, seed=seed, bias=bias)
        np.testing.assert_array_equal(pats.gates, ref.gates)
        np.testing.assert_array_equal(pats.mask, ref.mask)
        assert pats.fingerprint == ref.fingerprint
