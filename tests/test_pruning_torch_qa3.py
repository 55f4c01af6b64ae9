"""Vector-output pruning merges blocks of one pattern; to_torch rescales unbalanced neurons into
the range of the requested dtype (docs/optimality.md, "Minimal models and pruning"; docs/export.md)."""

import numpy as np
import pytest

from cvxnn import ConvexModel, Patterns, build_program, sample_patterns
from cvxnn.datasets import load_three_blobs
from cvxnn.errors import InvalidParameterError
from cvxnn.networks import GatedReLUNetwork, ReLUNetwork
from cvxnn.optimality import is_minimal, prune_exact, pruning_path
from cvxnn.vector import one_hot

LAM = 0.5


@pytest.fixture(scope="module")
def blobs():
    X, labels = load_three_blobs()
    X, labels = X[::3], labels[::3]  # 40 rows, 3 classes
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    pats = sample_patterns(X, 12, seed=0, bias=True)
    # the same gates twice (2 g has the mask of g): every pattern appears twice
    dup = Patterns.from_gates(X, np.hstack([pats.gates, 2.0 * pats.gates]), bias=True)
    return X, one_hot(labels), pats, dup


def _solve(X, Y, pats, activation, formulation):
    sol = build_program(X, Y, activation=activation, lam=LAM, patterns=pats, formulation=formulation).solve()
    assert sol.status == "optimal"
    return prune_exact(sol, X).model  # a minimal optimum on the distinct patterns


def _svd_split(model, dup, alpha):
    """Each block ``A diag(s) B^T`` as ``A diag(alpha s) B^T`` (first copy of its pattern) plus
    ``A diag((1 - alpha) s) B^T`` (second copy): same fit, same nuclear norm, not parallel."""
    blocks = {}
    for name in model.spec.blocks:
        T = getattr(model, name)
        first, second = np.zeros_like(T), np.zeros_like(T)
        for i in range(T.shape[1]):
            A, s, Bt = np.linalg.svd(T[:, i, :], full_matrices=False)
            a = alpha[: s.size]
            first[:, i], second[:, i] = (A * (a * s)) @ Bt, (A * ((1 - a) * s)) @ Bt
        blocks[name] = np.concatenate([first, second], axis=1)
    return ConvexModel(model.activation, dup, formulation=model.formulation, **blocks)


def _neurons(model, **kw):
    return model.to_network(**kw).n_neurons


def test_gated_nuclear_optimum_on_repeated_patterns_merges_to_the_minimal_width(blobs):
    X, Y, pats, dup = blobs
    opt = _solve(X, Y, pats, "gated_relu", "nuclear")
    split = _svd_split(opt, dup, np.array([0.3, 0.7, 0.55]))
    obj = split.objective(X, Y, LAM)
    assert obj == pytest.approx(opt.objective(X, Y, LAM), rel=1e-12)  # an optimum of the repeated program
    assert _neurons(split) == 2 * _neurons(opt) > _neurons(opt)  # rank >= 2 blocks, counted twice
    assert not is_minimal(split, X)
    res = prune_exact(split, X)
    assert _neurons(res.model) == _neurons(opt)  # block-wise pruning alone kept the rank >= 2 pairs
    assert res.n_after == res.n_before // 2
    assert len(res.merged) == res.n_before - res.n_after > 0
    assert all(k in res.removed for k, _ in res.merged)
    np.testing.assert_allclose(res.model.train_predict(X), split.train_predict(X), rtol=1e-10, atol=1e-12)
    assert res.model.objective(X, Y, LAM) <= obj * (1 + 1e-12)
    assert abs(res.penalty_change) <= 1e-10 * split.penalty()  # at an optimum the merge keeps the penalty
    assert is_minimal(res.model, X)


def test_relu_one_vs_all_merge_keeps_cones_and_objective(blobs):
    X, Y, pats, dup = blobs
    opt = _solve(X, Y, pats, "relu", "one_vs_all")
    a = np.array([0.2, 0.5, 0.8])  # columns scaled differently: columns stay in the cones
    split = ConvexModel("relu", dup, formulation="one_vs_all",
                        V=np.concatenate([opt.V * a, opt.V * (1 - a)], axis=1),
                        W=np.concatenate([opt.W * a, opt.W * (1 - a)], axis=1))
    obj = split.objective(X, Y, LAM)
    assert obj == pytest.approx(opt.objective(X, Y, LAM), rel=1e-12)
    res = prune_exact(split, X)
    assert _neurons(res.model, split="columns") == _neurons(opt, split="columns") < _neurons(split, split="columns")
    assert res.merged and res.model.formulation == "one_vs_all"
    assert res.model.max_cone_violation(X) <= 1e-12 * np.abs(split.V).max()
    assert res.model.objective(X, Y, LAM) == pytest.approx(obj, rel=1e-12)


def test_merging_a_non_optimal_split_lowers_the_objective_to_the_optimum(blobs):
    # an SVD split is optimal for nuclear norms but not for column norms: the merge removes the
    # excess (triangle inequality strict), so the input was no optimum and the result is better
    X, Y, pats, dup = blobs
    opt = _solve(X, Y, pats, "gated_relu", "one_vs_all")
    split = _svd_split(opt, dup, np.array([0.1, 0.9, 0.5]))
    excess = split.objective(X, Y, LAM) - opt.objective(X, Y, LAM)
    assert excess > 1e-6
    res = prune_exact(split, X)
    assert res.penalty_change < -0.9 * excess / LAM
    assert res.model.objective(X, Y, LAM) == pytest.approx(opt.objective(X, Y, LAM), rel=1e-10)


def test_pruning_path_merges_at_the_exact_step(blobs):
    X, Y, pats, dup = blobs
    opt = _solve(X, Y, pats, "gated_relu", "nuclear")
    split = _svd_split(opt, dup, np.array([0.3, 0.7, 0.55]))
    path = pruning_path(split, X, Y, lam=LAM, min_width=0)
    assert path.steps[1].kind == "exact"
    assert path.steps[1].width == path.steps[0].width // 2
    assert path.steps[1].increase <= 1e-12 * path.steps[0].objective


def test_scalar_output_blocks_of_one_pattern_are_not_merged():
    # scalar output keeps the linear-dependence rule alone: two independent blocks on one mask stay
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 2))
    pats = sample_patterns(X, 4, seed=0, bias=True)
    dup = Patterns.from_gates(X, np.hstack([pats.gates, 3.0 * pats.gates]), bias=True)
    U = np.zeros((3, 2 * pats.n_patterns))
    U[:, 0], U[:, pats.n_patterns] = rng.standard_normal(3), rng.standard_normal(3)
    model = ConvexModel("gated_relu", dup, U=U)
    assert is_minimal(model, X)
    res = prune_exact(model, X)
    assert res.n_after == 2 and res.removed == []
    np.testing.assert_array_equal(res.model.U, U)
    assert res.merged == []


# ----------------------------------------------------------------------------- to_torch
@pytest.fixture
def torch():
    return pytest.importorskip("torch")  # an optional extra


def _net(cls, scale_in, scale_out, *, c=2, j=1, seed=0):
    rng = np.random.default_rng(seed)
    W1, b1 = rng.standard_normal((3, 4)), rng.standard_normal(4)
    w2 = rng.standard_normal((4, c)) if c > 1 else rng.standard_normal(4)
    W1[:, j] *= scale_in
    b1[j] *= scale_in
    w2[j] *= scale_out
    kw = {"gates": rng.standard_normal((3, 4)), "gate_bias": rng.standard_normal(4)} if cls is GatedReLUNetwork else {}
    return cls(W1, w2, b1, **kw)


def _out(net, X, dtype):
    import torch

    module = net.to_torch(dtype)
    with torch.no_grad():
        return module(torch.as_tensor(X, dtype=dtype)).numpy().astype(float)


@pytest.mark.parametrize("cls", [ReLUNetwork, GatedReLUNetwork])
@pytest.mark.parametrize("scale", [1e40, 1e150, 1e300])
def test_float32_export_of_an_unbalanced_neuron_keeps_its_predictions(cls, scale, torch):
    net = _net(cls, scale, 1.0 / scale)
    X = np.random.default_rng(1).standard_normal((30, 3))
    ref = net.predict(X)
    out = _out(net, X, torch.float32)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_float32_export_rescales_a_1e30_neuron_for_large_inputs(torch):
    net = _net(ReLUNetwork, 1e30, 1e-30, c=1)
    X = 1e9 * np.random.default_rng(2).standard_normal((20, 3))  # 1e30 * 1e9 overflows float32
    ref = net.predict(X)
    out = _out(net, X, torch.float32)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_float64_export_follows_predict_for_extreme_neurons(torch):
    net = _net(GatedReLUNetwork, 1e300, 1e-300)
    X = 1e10 * np.random.default_rng(3).standard_normal((20, 3))  # 1e300 * 1e10 overflows float64
    ref = net.predict(X)
    out = _out(net, X, torch.float64)
    assert np.all(np.isfinite(ref))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("cls", [ReLUNetwork, GatedReLUNetwork])
def test_a_dead_neuron_with_huge_weights_exports_as_zero(cls, torch):
    net = _net(cls, 1e40, 0.0)  # computes zero; inf * 0 would be NaN in float32
    X = np.random.default_rng(4).standard_normal((15, 3))
    out = _out(net, X, torch.float32)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, net.predict(X), rtol=1e-5, atol=1e-5 * np.abs(net.predict(X)).max())


@pytest.mark.parametrize("cls", [ReLUNetwork, GatedReLUNetwork])
def test_a_neuron_beyond_the_dtype_is_refused(cls, torch):
    net = _net(cls, 1e25, 1e25)  # output scale ~1e50 > float32's 3.4e38: no rescaling helps
    with pytest.raises(InvalidParameterError, match=r"float32.*neuron 1"):
        net.to_torch(torch.float32)
    X = np.random.default_rng(5).standard_normal((10, 3))
    np.testing.assert_allclose(_out(net, X, torch.float64), net.predict(X), rtol=1e-12)


def test_balanced_networks_export_their_weights_unchanged(torch):
    net = _net(GatedReLUNetwork, 1.0, 1.0)
    module = net.to_torch(torch.float32)
    np.testing.assert_array_equal(module.hidden.weight.detach().numpy(), net.W1.T.astype(np.float32))
    np.testing.assert_array_equal(module.output.weight.detach().numpy(), net.w2.T.astype(np.float32))
    np.testing.assert_array_equal(module.gates.numpy(), net.gates.astype(np.float32))
