"""Two-layer convolutional networks by their convex reformulation (cvxnn.conv, cvxnn.native.conv)."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import minimize

from cvxnn.conv import (
    ConvNetwork,
    ConvSolution,
    PatchGeometry,
    PooledDesign,
    build_conv_program,
    extract_patches,
    network_to_conv,
    pool,
    pooled_blocks,
    unpool,
)
from cvxnn.errors import ConvergenceWarning, InvalidParameterError, MemoryBudgetError, PatternMismatchError, ShapeError
from cvxnn.native.conv import conv_certificate, conv_report, solve_conv_native
from cvxnn.operators import ImplicitDesign
from cvxnn.patterns import enumerate_patterns, sample_patterns
from cvxnn.vector import one_hot


# ----------------------------------------------------------------------------- patches, pooling
def _naive_patches(X, image_shape, size, stride):
    rows = []
    for x in X:
        img = x.reshape(image_shape)
        if len(image_shape) == 1:
            for s in range(0, image_shape[0] - size[0] + 1, stride[0]):
                rows.append(img[s:s + size[0]])
        else:
            for r in range(0, image_shape[0] - size[0] + 1, stride[0]):
                for c in range(0, image_shape[1] - size[1] + 1, stride[1]):
                    rows.append(img[r:r + size[0], c:c + size[1]].ravel())
    return np.array(rows)


@pytest.mark.parametrize("image_shape, size, stride", [
    ((7,), (3,), (1,)), ((7,), (3,), (2,)), ((6,), (6,), (1,)),
    ((4, 5), (2, 3), (1, 1)), ((5, 5), (3, 3), (2, 1)), ((6, 4), (2, 2), (2, 2)),
])
def test_patches_match_a_naive_loop(image_shape, size, stride):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, int(np.prod(image_shape))))
    Z = extract_patches(X, image_shape, size, stride)
    ref = _naive_patches(X, image_shape, size, stride)
    geo = PatchGeometry.make(image_shape, size, stride)
    assert Z.shape == ref.shape == (3 * geo.n_patches, geo.patch_dim)
    np.testing.assert_array_equal(Z, ref)


def test_int_arguments_repeat_over_dimensions():
    X = np.arange(2 * 16, dtype=float).reshape(2, 16)
    np.testing.assert_array_equal(extract_patches(X, (4, 4), 2, 2), extract_patches(X, (4, 4), (2, 2), (2, 2)))
    np.testing.assert_array_equal(extract_patches(X, 16, 3), extract_patches(X, (16,), (3,), (1,)))


@pytest.mark.parametrize("pooling", ["sum", "average"])
@pytest.mark.parametrize("c", [None, 3])
def test_pooling_adjoint_identity(pooling, c):
    rng = np.random.default_rng(1)
    n, K = 5, 4
    a = rng.standard_normal((n * K,) if c is None else (n * K, c))
    b = rng.standard_normal((n,) if c is None else (n, c))
    assert np.isclose(np.vdot(pool(a, K, pooling), b), np.vdot(a, unpool(b, K, pooling)))
    factor = 1.0 / K if pooling == "average" else 1.0
    np.testing.assert_allclose(pool(a, K, pooling), factor * a.reshape((n, K) + a.shape[1:]).sum(axis=1))


def test_typed_errors():
    X = np.zeros((3, 16))
    with pytest.raises(ShapeError):
        extract_patches(X, (3, 5), 2)  # 15 != 16 features
    with pytest.raises(InvalidParameterError):
        extract_patches(X, (4, 4), 5)  # window larger than the image
    with pytest.raises(InvalidParameterError):
        extract_patches(X, (4, 4), 2, 0)  # bad stride
    with pytest.raises(InvalidParameterError):
        extract_patches(X, (4, 4), 2, (1, 1, 1))
    with pytest.raises(InvalidParameterError):
        extract_patches(X, (2, 2, 4), 2)  # 3-D images are not supported
    with pytest.raises(InvalidParameterError):
        build_conv_program(X, np.zeros(3), image_shape=(4, 4), patch_size=2, pooling="max")
    with pytest.raises(PatternMismatchError):  # patterns on X, not on its patch matrix
        build_conv_program(X + np.eye(3, 16), np.zeros(3), image_shape=(4, 4), patch_size=2,
                           patterns=sample_patterns(X + np.eye(3, 16), 4, seed=0))
    with pytest.raises(InvalidParameterError):
        build_conv_program(X, np.eye(3), image_shape=(4, 4), patch_size=2, formulation="nuclear")


# ----------------------------------------------------------------------------- the program
def _signals(n=6, L=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, L))
    y = np.maximum(X[:, :2] @ np.array([1.0, -0.5]), 0) + 0.3 * np.maximum(X[:, 2:4].sum(1), 0) - 0.2
    return X, y


def test_builder_returns_a_dpp_cvxpy_problem():
    X, y = _signals()
    prog = build_conv_program(X, y, image_shape=5, patch_size=2, lam=0.1, n_gates=8, seed=0)
    assert isinstance(prog.problem, cp.Problem)
    assert isinstance(prog.lam, cp.Parameter) and prog.lam.name() == "lam"
    assert prog.problem.is_dpp()
    assert set(prog.variables) == {"V", "W"} and prog.V.name() == "V"
    assert prog.Z.shape == (6 * 4, 2) and prog.prediction.shape == (6,)
    s1 = prog.solve()
    s2 = prog.solve(lam=1.0)  # same compiled problem, new lam
    assert isinstance(s1, ConvSolution) and s1.converged and s2.converged
    assert s2.model.penalty() < s1.model.penalty()
    gated = build_conv_program(X, np.eye(6)[:, :3], image_shape=5, patch_size=2, activation="gated_relu",
                               n_gates=8, seed=0)
    assert set(gated.variables) == {"U"} and gated.prediction.shape == (6, 3)


def _nonconvex_objective(Za, y, K, lam, m):
    """Weight-decay objective of a CNN with m filters (sum pooling) and its gradient, flat params."""
    h = Za.shape[1]

    def fun(theta):
        W, a = theta[:h * m].reshape(h, m), theta[h * m:]
        H = Za @ W
        A = np.maximum(H, 0.0)
        P = pool(A, K)
        r = P @ a - y
        obj = 0.5 * r @ r + 0.5 * lam * (np.sum(W**2) + a @ a)
        ga = P.T @ r + lam * a
        gW = Za.T @ ((unpool(r, K)[:, None] * a[None, :]) * (H > 0)) + lam * W
        return obj, np.concatenate([gW.ravel(), ga])

    return fun


def test_mapped_cnn_attains_the_convex_optimum_and_training_never_beats_it():
    """Enumerated patterns of Z: the C-ReLU optimum is the global optimum of the CNN training
    problem. The mapped CNN attains it, and no random restart of L-BFGS on a wide CNN goes below."""
    X, y = _signals()
    lam = 0.05
    Z = extract_patches(X, 5, 2)
    pats = enumerate_patterns(Z)
    sol = build_conv_program(X, y, image_shape=5, patch_size=2, lam=lam, patterns=pats).solve()
    assert sol.converged and sol.gap is not None and sol.rel_gap < 1e-6
    net = sol.to_network()
    p_star = sol.objective_value
    assert np.isclose(net.objective(X, y, lam), p_star, rtol=1e-7)
    np.testing.assert_allclose(net.predict(X), sol.train_predict(X), atol=1e-7)
    # the dual value is a certified lower bound, below every network's objective
    assert sol.dual_value <= p_star
    K, m = 4, 12
    fun = _nonconvex_objective(Z, y, K, lam, m)
    rng = np.random.default_rng(0)
    best = np.inf
    for _ in range(8):
        theta0 = 0.5 * rng.standard_normal(2 * m + m)
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 3000, "gtol": 1e-10})
        trained = ConvNetwork(filters=res.x[:2 * m].reshape(2, m), alpha=res.x[2 * m:], geometry=sol.geometry)
        value = trained.objective(X, y, lam)
        assert np.isclose(value, res.fun, rtol=1e-9)
        assert value >= sol.dual_value - 1e-9
        assert value >= p_star - 1e-7 * (1 + abs(p_star))
        best = min(best, value)
    assert best < 1.5 * p_star  # training does reach the neighbourhood (the bound is not vacuous)


def test_cnn_to_convex_and_back():
    X, y = _signals(seed=3)
    geo = PatchGeometry.make(5, 2, 1)
    rng = np.random.default_rng(4)
    net = ConvNetwork(filters=rng.standard_normal((2, 5)), alpha=rng.standard_normal(5), geometry=geo,
                      filter_bias=rng.standard_normal(5))
    point = network_to_conv(net, X)
    np.testing.assert_allclose(point.train_predict(X), net.predict(X), atol=1e-12)
    assert point.max_cone_violation(X) <= 1e-12
    assert point.objective(X, y, 0.3) <= net.objective(X, y, 0.3) + 1e-12
    back = point.to_network()
    np.testing.assert_allclose(back.predict(X), net.predict(X), atol=1e-10)
    assert np.isclose(back.objective(X, y, 0.3), point.objective(X, y, 0.3))
    gnet = ConvNetwork(filters=rng.standard_normal((2, 3)), alpha=rng.standard_normal((3, 2)), geometry=geo,
                       gates=rng.standard_normal((2, 3)), pooling="average")
    gpoint = network_to_conv(gnet, X)
    np.testing.assert_allclose(gpoint.train_predict(X), gnet.predict(X), atol=1e-12)
    with pytest.raises(ShapeError):
        ConvNetwork(filters=np.ones((3, 2)), alpha=np.ones(2), geometry=geo)


def test_average_pooling_is_sum_pooling_at_K_lam():
    X, y = _signals(seed=5)
    Z = extract_patches(X, 5, 2)
    pats = sample_patterns(Z, 10, seed=0, bias=True)
    K, lam = 4, 0.02
    avg = build_conv_program(X, y, image_shape=5, patch_size=2, pooling="average", lam=lam, patterns=pats).solve()
    tot = build_conv_program(X, y, image_shape=5, patch_size=2, pooling="sum", lam=K * lam, patterns=pats).solve()
    assert np.isclose(avg.objective_value, tot.objective_value, rtol=1e-6)
    np.testing.assert_allclose(avg.train_predict(X), tot.train_predict(X), atol=1e-5)


def _images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 25))
    y = np.tanh(X[:, 6] + X[:, 12] - X[:, 18])
    return X, y


@pytest.mark.parametrize("pooling", ["sum", "average"])
def test_gated_native_agrees_with_clarabel(pooling):
    X, y = _images()
    kw = dict(image_shape=(5, 5), patch_size=3, stride=2, pooling=pooling, lam=0.05)
    Z = extract_patches(X, (5, 5), 3, 2)
    pats = sample_patterns(Z, 12, seed=1, bias=True)
    ref = build_conv_program(X, y, activation="gated_relu", patterns=pats, **kw).solve()
    nat = solve_conv_native(X, y, patterns=pats, tol=1e-9, max_iter=20000, **kw)
    assert nat.converged and nat.backend == "native" and nat.gap <= 1e-9 * nat.objective_value * 1.01
    assert np.isclose(nat.objective_value, ref.objective_value, rtol=1e-6)
    # the native certificate is valid for the Clarabel point and vice versa
    assert ref.objective_value >= nat.dual_value - 1e-9
    cert = conv_certificate(nat, X, y, 0.05)
    assert cert.gap <= 1e-7 * abs(cert.primal)
    net = nat.to_network()
    assert net.activation == "gated_relu"
    assert np.isclose(net.objective(X, y, 0.05), nat.objective_value, rtol=1e-9)


def test_vector_output_one_vs_all():
    X, _ = _images(n=18, seed=2)
    labels = np.argmax(X[:, [6, 12, 18]], axis=1)
    Y = one_hot(labels, 3)
    kw = dict(image_shape=(5, 5), patch_size=3, stride=2, lam=0.2)
    pats = sample_patterns(extract_patches(X, (5, 5), 3, 2), 6, seed=0, bias=True)
    relu = build_conv_program(X, Y, patterns=pats, **kw).solve()
    rep = conv_report(relu, X, Y)
    assert rep.max_cone_violation < 1e-6 and rep.rel_gap < 1e-5
    assert rep.network_objective <= rep.convex_objective * (1 + 1e-7)
    assert rep.max_prediction_error < 1e-6
    gated = build_conv_program(X, Y, patterns=pats, activation="gated_relu", **kw).solve()
    nat = solve_conv_native(X, Y, patterns=pats, tol=1e-9, max_iter=20000, **kw)
    assert np.isclose(nat.objective_value, gated.objective_value, rtol=1e-6)
    assert gated.objective_value <= relu.objective_value * (1 + 1e-7)  # gated is a lower bound
    nuc = solve_conv_native(X, Y, patterns=pats, tol=1e-8, max_iter=20000, formulation="nuclear", **kw)
    assert nuc.converged and nuc.objective_value <= nat.objective_value * (1 + 1e-6)  # ||.||_* <= sum cols
    assert nuc.to_network().predict(X).shape == (18, 3)


def test_report_of_a_relu_solution():
    X, y = _images(n=16, seed=3)
    kw = dict(image_shape=(5, 5), patch_size=3, stride=2, lam=0.1)
    sol = build_conv_program(X, y, n_gates=8, seed=0, bias=True, **kw).solve()
    rep = conv_report(sol, X, y)
    assert rep.status == "optimal" and rep.rel_gap < 1e-6 and rep.max_cone_violation < 1e-7
    assert np.isclose(rep.network_objective, rep.convex_objective, rtol=1e-7)
    assert "duality gap" in rep.summary() and "status" in sol.summary()
    # without the cone multipliers the bound is the gated one: valid, looser
    loose = conv_certificate(sol, X, y, 0.1, multipliers=np.zeros_like(sol.model.multipliers))
    assert loose.gap >= rep.gap - 1e-12


def test_native_reports_an_unfinished_solve():
    X, y = _images(n=16, seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve_conv_native(X, y, image_shape=(5, 5), patch_size=3, lam=1e-3, n_gates=8, seed=0,
                                tol=1e-12, max_iter=5)
    assert sol.status == "max_iterations" and not sol.converged and sol.gap > 0
    assert any("max_iter" in str(w.message) for w in caught)
    with pytest.raises(Exception, match="max_iterations"):
        sol.raise_for_status()
    with pytest.raises(InvalidParameterError):
        solve_conv_native(X, y, image_shape=(5, 5), patch_size=3, loss="absolute", lam=0.1, n_gates=4, seed=0)


# ----------------------------------------------------------------------------- pooled design, Newton
@pytest.mark.parametrize("pooling", ["sum", "average"])
@pytest.mark.parametrize("c", [1, 3])
def test_dense_pooled_design_is_the_matrix_free_operator(pooling, c):
    rng = np.random.default_rng(c)
    X = rng.standard_normal((9, 25))
    Z = extract_patches(X, (5, 5), 3, 1)
    pats = sample_patterns(Z, 7, seed=0, bias=True)
    Za = pats.design(Z)
    op = PooledDesign(ImplicitDesign(Za, pats.mask, n_outputs=c), 9, pooling)
    dense = op.dense()
    U = rng.standard_normal((op.d, op.p, c))
    R = rng.standard_normal((9, c))
    np.testing.assert_allclose(dense.forward(U), op.forward(U), atol=1e-12)
    np.testing.assert_allclose(dense.adjoint(R), op.adjoint(R), atol=1e-12)
    # B_i = Pool D_i Z_a, block by block
    B = pooled_blocks(Za, pats.mask, 9, pooling)
    for i in range(pats.n_patterns):
        np.testing.assert_allclose(B[:, :, i], pool(pats.mask[:, i, None] * Za, 9, pooling), atol=1e-12)
    with pytest.raises(MemoryBudgetError):
        op.dense(memory_budget=100)


def _native_case(pooling, loss, lam):
    """A small 5x5-image problem, its keywords and 10 sampled patterns (logistic: +-1 labels)."""
    X, y = _images(n=30, seed=5)
    if loss == "logistic":
        y = np.where(y > 0, 1.0, -1.0)
    kw = dict(image_shape=(5, 5), patch_size=3, stride=1, pooling=pooling, lam=lam, loss=loss)
    return X, y, kw, sample_patterns(extract_patches(X, (5, 5), 3, 1), 10, seed=2, bias=True)


@pytest.mark.parametrize("pooling, loss, lam", [("sum", "squared", 0.05), ("average", "squared", 0.01),
                                                ("sum", "logistic", 0.05), ("sum", "squared", 1.5)])
def test_newton_certifies_the_pooled_program_against_clarabel(pooling, loss, lam):
    X, y, kw, pats = _native_case(pooling, loss, lam)
    ref = build_conv_program(X, y, activation="gated_relu", patterns=pats, **kw).solve()
    nat = solve_conv_native(X, y, patterns=pats, tol=1e-9, max_iter=500, **kw)
    assert nat.solver == "newton" and nat.converged and nat.rel_gap <= 1e-9
    assert np.isclose(nat.objective_value, ref.objective_value, rtol=1e-6)
    assert ref.objective_value >= nat.dual_value - 1e-9  # a valid lower bound for Clarabel's point
    # the matrix-free certificate of the full pooled program agrees
    cert = conv_certificate(nat, X, y, lam, loss)
    assert cert.rel_gap <= 1e-8 and np.isclose(cert.primal, nat.objective_value, rtol=1e-12)
    net = nat.to_network()
    assert np.isclose(net.objective(X, y, lam, loss), nat.objective_value, rtol=1e-9)
    if lam == 1.5:  # a sparse optimum: the inactive blocks are exactly zero
        norms = np.linalg.norm(nat.model.U, axis=0)
        assert (norms == 0).sum() > 0 and nat.extra["pruned"] > 0
        assert net.n_filters == int((norms > 0).sum())


def _one_vs_all_case():
    """Three classes from the strongest of three pixels, 8 patterns on 3x3 patches, lam = 0.1."""
    X, _ = _images(n=24, seed=6)
    Y = one_hot(np.argmax(X[:, [6, 12, 18]], axis=1), 3)
    kw = dict(image_shape=(5, 5), patch_size=3, stride=1, lam=0.1)
    return X, Y, kw, sample_patterns(extract_patches(X, (5, 5), 3, 1), 8, seed=0, bias=True)


def test_newton_one_vs_all_matches_rfista_and_clarabel():
    X, Y, kw, pats = _one_vs_all_case()
    ref = build_conv_program(X, Y, patterns=pats, activation="gated_relu", **kw).solve()
    newton = solve_conv_native(X, Y, patterns=pats, tol=1e-10, **kw)
    fista = solve_conv_native(X, Y, patterns=pats, tol=1e-8, max_iter=50000, solver="rfista", **kw)
    assert newton.solver == "newton" and fista.solver == "rfista" and newton.converged and fista.converged
    assert fista.extra["design"] == "dense"
    assert np.isclose(newton.objective_value, ref.objective_value, rtol=1e-6)
    assert np.isclose(newton.objective_value, fista.objective_value, rtol=1e-7)
    assert conv_certificate(newton, X, Y, 0.1).rel_gap <= 1e-9
    # a certified point warm-starts to itself; the nuclear program is R-FISTA's
    again = solve_conv_native(X, Y, patterns=pats, tol=1e-10, warm_start=newton, **kw)
    assert again.converged and again.iterations == 0
    nuc = solve_conv_native(X, Y, patterns=pats, tol=1e-7, max_iter=20000, formulation="nuclear", **kw)
    assert nuc.solver == "rfista" and nuc.converged
    with pytest.raises(InvalidParameterError, match="nuclear"):
        solve_conv_native(X, Y, patterns=pats, formulation="nuclear", solver="newton", **kw)
    with pytest.raises(InvalidParameterError, match="solver"):
        solve_conv_native(X, Y, patterns=pats, solver="lbfgs", **kw)


def test_newton_callback_sees_every_centring_and_can_stop():
    X, y = _images(n=16, seed=7)
    seen = []

    def cb(info):
        seen.append(info)
        return len(seen) == 2

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stop by the callback is not a convergence failure
        sol = solve_conv_native(X, y, image_shape=(5, 5), patch_size=3, lam=0.05, n_gates=6, seed=0, bias=True,
                                tol=1e-12, callback=cb)
    assert len(seen) == 2 and sol.status == "max_iterations" and sol.extra["stopped_by_callback"]
    assert seen[1]["gap"] < seen[0]["gap"] and all(s["dual"] <= s["objective"] for s in seen)


# ----------------------------------------------------------------------------- native C-ReLU
@pytest.mark.parametrize("pooling, loss, lam", [("sum", "squared", 0.05), ("average", "squared", 0.01),
                                                ("sum", "logistic", 0.05), ("sum", "squared", 1.5),
                                                ("sum", "huber", 0.05)])
def test_relu_native_certifies_the_cone_program_against_clarabel(pooling, loss, lam):
    X, y, kw, pats = _native_case(pooling, loss, lam)
    ref = build_conv_program(X, y, activation="relu", patterns=pats, **kw).solve()
    nat = solve_conv_native(X, y, patterns=pats, activation="relu", tol=1e-9, **kw)
    assert nat.activation == "relu" and nat.solver == "newton" and nat.backend == "native"
    assert nat.converged and nat.rel_gap <= 1e-9 and nat.max_violation <= 1e-9
    assert np.isclose(nat.objective_value, ref.objective_value, rtol=1e-6)
    assert ref.objective_value >= nat.dual_value - 1e-9  # a valid lower bound for Clarabel's point
    # the certificate of the full program (every patch row, the stored multipliers) agrees
    cert = conv_certificate(nat, X, y, lam, loss)
    assert cert.rel_gap <= 2e-9 and np.isclose(cert.primal, nat.objective_value, rtol=1e-12)
    rep = conv_report(nat, X, y)
    assert rep.max_cone_violation <= 1e-9 and rep.max_prediction_error <= 1e-9
    assert np.isclose(rep.network_objective, nat.objective_value, rtol=1e-9)  # the mapped CNN attains it
    assert rep.network.activation == "relu"
    # the gated program on the same patterns is a lower bound
    gated = solve_conv_native(X, y, patterns=pats, tol=1e-9, **kw)
    assert gated.objective_value <= nat.objective_value * (1 + 1e-9)


def test_relu_native_one_vs_all_matches_clarabel():
    X, Y, kw, pats = _one_vs_all_case()
    ref = build_conv_program(X, Y, patterns=pats, activation="relu", **kw).solve()
    nat = solve_conv_native(X, Y, patterns=pats, activation="relu", tol=1e-9, **kw)
    assert nat.converged and nat.rel_gap <= 1e-9 and nat.n_outputs == 3
    assert np.isclose(nat.objective_value, ref.objective_value, rtol=1e-6)
    rep = conv_report(nat, X, Y)
    assert rep.rel_gap <= 2e-9 and rep.max_cone_violation <= 1e-9
    assert np.isclose(rep.network_objective, nat.objective_value, rtol=1e-9)
    assert rep.network.predict(X).shape == (24, 3)
    # a certified warm start returns at once; without multipliers it restarts near the point
    again = solve_conv_native(X, Y, patterns=pats, activation="relu", tol=1e-9, warm_start=nat, **kw)
    assert again.converged and again.iterations == 0
    nat.model.multipliers = None
    near = solve_conv_native(X, Y, patterns=pats, activation="relu", tol=1e-9, warm_start=nat, **kw)
    assert near.converged and np.isclose(near.objective_value, nat.objective_value, rtol=1e-8)


def test_relu_native_reports_an_unfinished_solve_and_its_limits():
    X, y = _images(n=16, seed=4)
    kw = dict(image_shape=(5, 5), patch_size=3, n_gates=8, seed=0, bias=True, activation="relu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve_conv_native(X, y, lam=1e-2, tol=1e-12, max_iter=3, **kw)
    assert sol.status == "max_iterations" and not sol.converged and sol.gap > 0
    assert sol.max_violation == 0.0  # the barrier iterates are strictly feasible
    assert any("max_iter" in str(w.message) for w in caught)
    with pytest.warns(ConvergenceWarning, match="stopped decreasing"):  # below the rounding of the gap
        stalled = solve_conv_native(X, y, lam=1e-2, tol=1e-15, **kw)
    assert stalled.status == "optimal_inaccurate" and stalled.rel_gap < 1e-8
    seen = []
    stopped = solve_conv_native(X, y, lam=1e-2, tol=1e-12, callback=lambda info: seen.append(info) or True, **kw)
    assert len(seen) == 1 and stopped.extra["stopped_by_callback"] and stopped.status == "max_iterations"
    assert seen[0]["dual"] <= seen[0]["objective"]
    with pytest.raises(InvalidParameterError, match="build_conv_program"):
        solve_conv_native(X, y, lam=0.1, solver="rfista", **kw)
    with pytest.raises(InvalidParameterError, match="build_conv_program"):
        solve_conv_native(X, one_hot(np.arange(16) % 3, 3), loss="cross_entropy", lam=0.1, **kw)
    with pytest.raises(InvalidParameterError, match="nuclear"):
        solve_conv_native(X, one_hot(np.arange(16) % 3, 3), lam=0.1, formulation="nuclear", **kw)
    gated = solve_conv_native(X, y, image_shape=(5, 5), patch_size=3, n_gates=8, seed=0, bias=True, lam=0.1)
    with pytest.raises(InvalidParameterError, match="warm_start"):
        solve_conv_native(X, y, lam=0.1, warm_start=gated, **kw)
    with pytest.raises(InvalidParameterError, match="activation"):
        solve_conv_native(X, y, image_shape=(5, 5), patch_size=3, lam=0.1, activation="tanh")


# ------------------------------------------------------------------ feature-sparse penalties
@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
@pytest.mark.parametrize("c", [1, 3])
def test_conv_builder_takes_the_feature_penalties(activation, c):
    """build_conv_program(penalty=FeatureGroupL2()): the groups are the filter taps (rows of the
    weight matrix); the reported objective is the loss plus lam R(Theta) of the returned blocks,
    and a large lam removes every tap."""
    from cvxnn.feature_penalties import FeatureGroupL2, SparseGroupL2

    X, y = _images(n=30, seed=3)
    if c > 1:
        y = one_hot(np.digitize(y, [-0.3, 0.3]), 3)
    pats = sample_patterns(extract_patches(X, (5, 5), 3, 2), 6, seed=1, bias=True)
    kw = dict(image_shape=(5, 5), patch_size=3, stride=2, patterns=pats, activation=activation,
              loss="squared")
    for pen in (FeatureGroupL2(), SparseGroupL2(alpha=0.5)):
        prog = build_conv_program(X, y, lam=0.2, penalty=pen, **kw)
        assert prog.weight_penalty is pen and prog.lam.name() == "lam"
        sol = prog.solve()
        assert sol.status == "optimal" and sol.gap is None  # no block-norm certificate here
        theta = np.concatenate([B.reshape(B.shape[0], -1) for B in sol.model.blocks.values()], axis=1)
        fit = sol.train_predict(X)
        expected = 0.5 * np.sum((fit - y) ** 2) + 0.2 * pen.value(theta)
        assert sol.objective_value == pytest.approx(expected, rel=1e-6, abs=1e-8)
        assert sol.model.program_penalty == pytest.approx(pen.value(theta), rel=1e-9)
        # docs/conv.md: "the solution's program_penalty is R(Theta)" (ConvSolution had none)
        assert sol.program_penalty == sol.model.program_penalty
        assert sol.objective_value == pytest.approx(
            sol.objective(X, y, 0.2) - 0.2 * sol.penalty() + 0.2 * sol.program_penalty, rel=1e-9)
    big = build_conv_program(X, y, lam=1e4, penalty=FeatureGroupL2(), **kw).solve()
    theta = np.concatenate([B.reshape(B.shape[0], -1) for B in big.model.blocks.values()], axis=1)
    assert np.abs(theta).max() <= 1e-6


def test_native_relu_with_blank_patches_matches_clarabel():
    """A zero patch row (a blank image region, bias=False) constrains nothing; it used to leave
    every cone without an interior, and the native solver returned the zero network."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 36))
    X[0] = 0.0  # a blank image: all of its patches are zero rows
    y = rng.standard_normal(20)
    kw = dict(image_shape=(6, 6), patch_size=3, n_gates=4, bias=False, seed=0, lam=0.5)
    ref = build_conv_program(X, y, activation="relu", **kw).solve()
    nat = solve_conv_native(X, y, activation="relu", tol=1e-8, **kw)
    assert nat.status == "optimal"
    assert nat.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert nat.objective_value < 0.5 * float(y @ y) - 1e-3  # not the zero network


@pytest.mark.parametrize("option", [{"tol": "x"}, {"feas_tol": "x"}, {"dtype": "foo"}, {"memory_budget": "x"},
                                    {"callback": 3}])
def test_native_conv_options_are_checked_before_solving(option):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 16)), rng.standard_normal(8)
    with pytest.raises(InvalidParameterError):
        solve_conv_native(X, y, image_shape=(4, 4), patch_size=2, n_gates=3, lam=0.5, activation="relu", **option)


def test_non_finite_multipliers_never_certify():
    """NaN survives the clip of the multipliers at 0 and voided the dual bound: conv_certificate
    gave gap 0 with a dual above p*, and a warm start with NaN multipliers came back 'optimal'
    after 0 steps at 6x the optimum. They are refused, and a warm start ignores them."""
    from cvxnn.conv import ConvNetwork, PatchGeometry, network_to_conv
    from cvxnn.errors import NonFiniteError

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 16)), rng.standard_normal(10)
    geo = PatchGeometry.make((4, 4), 2, 1)
    zero = network_to_conv(ConvNetwork(rng.standard_normal((4, 3)), np.zeros(3), geo), X)
    p, nK = zero.patterns.n_patterns, 10 * geo.n_patches
    with pytest.raises(NonFiniteError, match="multipliers"):
        conv_certificate(zero, X, y, 0.01, multipliers=np.full((nK, 2 * p), np.nan))
    kw = dict(image_shape=(4, 4), patch_size=2, n_gates=3, seed=0, activation="relu")
    s1 = solve_conv_native(X, y, lam=5.0, **kw)
    s1.model.multipliers[:] = np.nan
    warm = solve_conv_native(X, y, lam=0.01, warm_start=s1, **kw)
    cold = solve_conv_native(X, y, lam=0.01, **kw)
    assert warm.status == cold.status == "optimal"
    assert warm.objective_value == pytest.approx(cold.objective_value, rel=1e-5)


def test_native_conv_relu_on_zero_patches_and_zero_targets():
    """All-zero patches crashed the interior directions (an empty reduction), and y = 0 ended
    'optimal_inaccurate' with a relative gap of 1 on a vanishing objective; the zero model is
    optimal in both, and is returned certified."""
    kw = dict(image_shape=(4, 4), patch_size=2, n_gates=3, seed=0, lam=0.5, activation="relu")
    rng = np.random.default_rng(0)
    a = solve_conv_native(np.zeros((10, 16)), rng.standard_normal(10), **kw)
    b = solve_conv_native(rng.standard_normal((10, 16)), np.zeros(10), **kw)
    for sol in (a, b):
        assert sol.status == "optimal" and sol.gap == 0.0
        assert np.all(sol.model.V == 0) and np.all(sol.model.W == 0)


def test_native_conv_relu_at_a_tiny_lam_starts_at_the_data_scale_and_labels_a_stall_honestly():
    """At lam = 1e-8 (digits) the barrier started its blocks at mu n K / lam ~ 2e7, where
    cancelling V - W pairs cost a penalty 1e6 times the optimum that Newton never shrank; it
    stopped after 11 steps at a relative gap of 1.0 labelled "optimal_inaccurate"."""
    from sklearn.datasets import load_digits

    X, labels = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)
    X, y = X[:40], np.where(labels[:40] < 5, 1.0, -1.0)
    kw = dict(image_shape=(8, 8), patch_size=3, n_gates=5, seed=0, bias=True, activation="relu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nat = solve_conv_native(X, y, lam=1e-8, **kw)
        ref = build_conv_program(X, y, lam=1e-8, **kw).solve()
        # a hopeless scale for the squared loss: the stall keeps its gap, and says so
        far = solve_conv_native(X * 1e6, y, lam=1e-8, **kw)
    assert nat.objective_value <= ref.objective_value * (1 + 1e-6)  # Clarabel's "optimal" is above
    assert nat.status in ("optimal", "optimal_inaccurate") and nat.rel_gap <= 0.1
    assert far.status == "optimal" or (far.status == "optimal_inaccurate") == (far.rel_gap <= 0.1)
    assert not (far.status.startswith("optimal") and far.rel_gap > 0.1)


def test_pool_unpool_and_the_conv_arguments_are_validated():
    """Average pooling of an integer array truncated 1/K to 0 (pool(arange(6), 3) gave [0, 0]);
    n_patches=0, multipliers='abc' and a misspelt formulation with scalar targets raised bare
    Python errors or were accepted."""
    np.testing.assert_array_equal(pool(np.arange(6), 3, "average"), [1.0, 4.0])
    np.testing.assert_array_equal(unpool(np.array([3, 6]), 3, "average"), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    assert pool(np.ones(4, dtype=np.float32), 2, "average").dtype == np.float32
    for bad in (0, -3):
        with pytest.raises(InvalidParameterError, match="n_patches"):
            pool(np.ones(6), bad)
        with pytest.raises(InvalidParameterError, match="n_patches"):
            unpool(np.ones(2), bad, "average")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 16)), rng.standard_normal(10)
    kw = dict(image_shape=(4, 4), patch_size=2, n_gates=3, seed=0)
    sol = solve_conv_native(X, y, lam=0.5, activation="relu", **kw)
    with pytest.raises(InvalidParameterError, match="multipliers must be an array of numbers"):
        conv_certificate(sol, X, y, 0.5, multipliers="abc")
    with pytest.raises(ShapeError, match="multipliers have shape"):
        conv_certificate(sol, X, y, 0.5, multipliers=np.zeros((3, 2)))
    for fn in (build_conv_program, solve_conv_native):
        with pytest.raises(InvalidParameterError, match="formulation must be one of"):
            fn(X, y, lam=0.5, formulation="nucleer", **kw)


def test_a_conv_model_wrapped_by_hand_reads_its_model_s_loss_and_penalty():
    """ConvModel(model=...) built by hand: program_penalty is the model's (None for a plain
    ConvexModel: it raised AttributeError) and objective() defaults to the model's loss (it
    fell back to squared: 275.9 against the objective 1.87 of a logistic solution)."""
    from cvxnn.conv import ConvModel
    from cvxnn.solution import ConvexModel

    X, y = _images(n=30, seed=3)
    y = np.where(y > np.median(y), 1.0, -1.0)
    sol = build_conv_program(X, y, image_shape=(5, 5), patch_size=3, stride=2, lam=0.1, n_gates=4, seed=0,
                             activation="gated_relu", loss="logistic").solve()
    wrapped = ConvModel(model=sol.model, geometry=sol.geometry, pooling=sol.pooling)
    assert wrapped.objective(X, y, 0.1) == pytest.approx(sol.objective_value, rel=1e-9)
    plain = ConvModel(model=ConvexModel(activation=sol.model.activation, patterns=sol.model.patterns,
                                        U=sol.model.U), geometry=sol.geometry, pooling=sol.pooling)
    assert plain.program_penalty is None
