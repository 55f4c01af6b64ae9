"""QA of the loss and penalty objects as numerical objects: derivatives against finite
differences, conjugates (Fenchel-Young), the best dual rescaling against a fine grid, Bregman
divergences at extreme logits, float32 kernels against float64, prox operators against CVXPY,
batched spectral norms against numpy's SVD."""

import warnings

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvxnn.errors import LabelError, ShapeError
from cvxnn.estimators import WeightedLoss
from cvxnn.losses import CrossEntropyLoss, HuberLoss, LogisticLoss, SquaredLoss, get_loss
from cvxnn.native._losses import SmoothKernel
from cvxnn.native.prox import gram_spectral, prox_columns, prox_penalty
from cvxnn.penalties import Columnwise, GroupL2, Nuclear

PROPS = settings(max_examples=25, deadline=None, derandomize=True, database=None)
SMOOTH = ["squared", "logistic", "huber", "cross_entropy"]


def _instance(name, rng, n=7, spread=2.0):
    if name in ("logistic", "hinge"):
        y = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
        y[:2] = [1.0, -1.0]
        return spread * rng.standard_normal(n), y
    if name == "cross_entropy":
        return spread * rng.standard_normal((n, 3)), np.eye(3)[rng.integers(0, 3, n)]
    return spread * rng.standard_normal(n), rng.standard_normal(n)


def _losses(name, rng, n):
    for red in ("sum", "mean"):
        yield get_loss(name, reduction=red)
        yield WeightedLoss(base=get_loss(name, reduction=red), weights=rng.uniform(0.0, 3.0, n).round(1))


# ------------------------------------------------------------------ derivatives and conjugates
@PROPS
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(SMOOTH))
def test_grad_hessian_conjugate_cvxpy(seed, name):
    rng = np.random.default_rng(seed)
    z, y = _instance(name, rng)
    for loss in _losses(name, rng, z.shape[0]):
        var = cp.Variable(z.shape)
        var.value = z
        assert loss.cvxpy(var, y).value == pytest.approx(loss.value(z, y), rel=1e-10, abs=1e-12)
        g = loss.grad(z, y)
        D, V = loss.hessian_parts(z, y)
        eps = 1e-6
        for idx in np.ndindex(z.shape):
            e = np.zeros_like(z)
            e[idx] = eps
            num = (loss.value(z + e, y) - loss.value(z - e, y)) / (2 * eps)
            assert num == pytest.approx(g[idx], abs=1e-6)
            col = (loss.grad(z + e, y) - loss.grad(z - e, y)) / (2 * eps)  # column idx of the Hessian
            h = D * e / eps if V is None else (D * e - V * np.sum(V * e, axis=-1, keepdims=True)) / eps
            np.testing.assert_allclose(h, col, atol=1e-5)
        # Fenchel-Young: equality at s = grad, inequality elsewhere
        val = loss.value(z, y)
        assert loss.conjugate(g, y) + val - np.vdot(g, z) == pytest.approx(0.0, abs=1e-9 * max(1.0, val))
        for _ in range(5):
            s = g + 0.3 * rng.standard_normal(z.shape)
            assert loss.conjugate(s, y) + val - np.vdot(s, z) >= -1e-10


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("cap", [0.3, 1.0, 2.5, np.inf])
def test_best_dual_scale_is_the_maximum_over_a_fine_grid(name, cap):
    # before: only the unweighted squared loss maximised; logistic, Huber, cross-entropy and any
    # weighted loss returned min(1, cap), e.g. logistic dual 3.14 where 3.98 was attainable
    rng = np.random.default_rng(11)
    z, y = _instance(name, rng, n=9)
    for loss in _losses(name, rng, z.shape[0]):
        kernel = SmoothKernel(loss, y if y.ndim == 2 else y[:, None], np.float64)
        theta = kernel.grad(z if z.ndim == 2 else z[:, None])
        s = kernel.best_dual_scale(theta, cap)
        assert 0.0 <= s <= cap
        value = kernel.dual_value(s * theta)
        grid = np.linspace(0.0, min(cap, 4.0), 2001)
        best = max(kernel.dual_value(t * theta) for t in grid)
        assert np.isfinite(value)
        assert value >= best - 1e-9 * max(1.0, abs(best)), (loss, s, value, best)


@pytest.mark.parametrize("spread", [30.0, 1e3, 1e6])
def test_best_dual_scale_at_extreme_logits(spread):
    rng = np.random.default_rng(2)
    for name in ("logistic", "cross_entropy"):
        z, y = _instance(name, rng, n=40, spread=spread)
        kernel = SmoothKernel(get_loss(name), y if y.ndim == 2 else y[:, None], np.float64)
        theta = kernel.grad(z if z.ndim == 2 else z[:, None])
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            s = kernel.best_dual_scale(theta, 0.8)
        best = max(kernel.dual_value(t * theta) for t in np.linspace(0.0, 0.8, 801))
        assert kernel.dual_value(s * theta) >= best - 1e-9 * max(1.0, abs(best))


# ------------------------------------------------------------------ extreme inputs
@pytest.mark.parametrize("big", [1e3, 1e6])
def test_logits_of_extreme_size_stay_finite_and_exact(big):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        y = np.array([1.0, -1.0, 1.0, -1.0])
        z = np.array([big, -big, -big, big])
        lo = LogisticLoss()
        assert lo.value(z, y) == 2 * big
        np.testing.assert_array_equal(lo.grad(z, y), [0.0, 0.0, -1.0, 1.0])
        assert lo.conjugate(lo.grad(z, y), y) == 0.0
        Y = np.eye(3)[[0, 1, 2]]
        Z = np.array([[big, 0.0, -big], [big, -big, 0.0], [0.0, big, big]])
        ce = CrossEntropyLoss()
        assert ce.value(Z, Y) == pytest.approx(2 * big + np.log(2.0), rel=1e-15)
        np.testing.assert_allclose(ce.grad(Z, Y), [[0, 0, 0], [1, -1, 0], [0, 0.5, -0.5]], atol=1e-300)
        assert np.isfinite(ce.conjugate(ce.grad(Z, Y), Y))


def test_huber_with_a_huge_residual_warns_nothing():
    # before: r**2 of the unused branch overflowed (RuntimeWarning) for |z - y| > 1.3e154
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert HuberLoss(delta=2.0).value(np.array([1e200, 0.5]), np.zeros(2)) == pytest.approx(2e200)
        np.testing.assert_allclose(HuberLoss()._value_rows(np.array([-1e300]), np.zeros(1)), [1e300])


def _exact_bregman(kernel, a, b):
    return kernel.value(a) - kernel.value(b) - float(np.vdot(kernel.grad(b), a - b))


@pytest.mark.parametrize("step", [1.0, 50.0, 800.0, 1e6])
def test_logistic_bregman_of_large_steps(step):
    # before: where sigma e^dl overflowed the term was replaced by |dl| (1199.3 for 798.6)
    kernel = SmoothKernel(LogisticLoss(), np.array([[1.0], [-1.0]]), np.float64)
    b = np.zeros((2, 1))
    a = b + step
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = kernel.bregman(a, b, kernel.grad(b))
    assert got == pytest.approx(_exact_bregman(kernel, a, b), rel=1e-12)


def test_logistic_bregman_where_sigma_is_near_one():
    # before: 1 - sigma was taken from |grad| = sigma(30) (1 - 9e-14, 3 digits): 59.99898 for 60 - 6e-12;
    # at |z| = 800, NaN (RuntimeWarning)
    kernel = SmoothKernel(LogisticLoss(), np.array([[1.0], [-1.0]]), np.float64)
    for big in (30.0, 800.0):
        b = np.array([[big], [big]])
        a = -b
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            got = kernel.bregman(a, b, kernel.grad(b))
        assert got == pytest.approx(_exact_bregman(kernel, a, b), rel=1e-13)


@pytest.mark.parametrize("step", [800.0, 1e6])
def test_cross_entropy_bregman_of_large_steps(step):
    # before: expm1 overflowed (RuntimeWarning) and the divergence was inf
    Y = np.eye(3)[[0, 1, 2, 0]]
    kernel = SmoothKernel(CrossEntropyLoss(), Y, np.float64)
    b = np.zeros((4, 3))
    a = b.copy()
    a[:, 0] += step
    a[:, 1] -= step
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = kernel.bregman(a, b, kernel.grad(b))
        got_b = kernel.bregman(-a, a, kernel.grad(a))
    assert got == pytest.approx(_exact_bregman(kernel, a, b), rel=1e-13)
    assert got_b == pytest.approx(_exact_bregman(kernel, -a, a), rel=1e-13)


def test_typed_errors_for_bad_targets_and_shapes():
    with pytest.raises(LabelError):
        LogisticLoss().check_targets(np.array([0.0, 1.0, 1.0]))
    with pytest.raises(LabelError):
        LogisticLoss().check_targets(np.array([1.0, -1.0, np.nan]))
    with pytest.raises(LabelError):
        CrossEntropyLoss().check_targets(np.array([[0.5, 0.5], [0.0, 1.0]]))
    with pytest.raises(LabelError):
        CrossEntropyLoss().check_targets(np.array([0, 1, 2]))
    # before: numpy's AxisError from hessian_parts only
    for method in ("value", "grad", "hessian_parts", "conjugate"):
        with pytest.raises(ShapeError):
            getattr(CrossEntropyLoss(), method)(np.zeros(3), np.array([0.0, 1.0, 1.0]))


def test_one_sample_and_many_samples():
    assert SquaredLoss(reduction="mean").value([0.3], [1.0]) == pytest.approx(0.245)
    n = 1_000_000
    assert LogisticLoss(reduction="mean").value(np.full(n, 0.1), np.ones(n)) == pytest.approx(
        np.log1p(np.exp(-0.1)), rel=1e-13)
    assert WeightedLoss(base=LogisticLoss(), weights=np.zeros(3)).value(np.zeros(3), np.array([1.0, -1, 1])) == 0.0


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_float32_kernel_agrees_with_float64(name, reduction):
    rng = np.random.default_rng(4)
    z, y = _instance(name, rng, n=50)
    z2, y2 = (z, y) if z.ndim == 2 else (z[:, None], y[:, None])
    loss = get_loss(name, reduction=reduction)
    z32 = z2.astype(np.float32)
    v64, g64 = SmoothKernel(loss, y2, np.float64).value_and_grad(z32.astype(np.float64))
    v32, g32 = SmoothKernel(loss, y2, np.float32).value_and_grad(z32)
    assert g32.dtype == np.float32
    assert v32 == pytest.approx(v64, rel=1e-6)
    np.testing.assert_allclose(g32, g64, rtol=0, atol=1e-6 * np.abs(g64).max())


# ------------------------------------------------------------------ penalties and prox
def _cvxpy_prox(pen, B3, t):
    d, p, c = B3.shape
    X = cp.Variable((d, p * c))
    term = pen.cvxpy(X, c)
    obj = t * term.expression + 0.5 * cp.sum_squares(X - B3.reshape(d, p * c))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cp.Problem(cp.Minimize(obj), term.constraints).solve(solver="CLARABEL")
    return X.value.reshape(d, p, c)


@pytest.mark.parametrize("pen", [GroupL2(), Columnwise(), Nuclear()], ids=lambda p: p.name)
@pytest.mark.parametrize("shape", [(4, 3, 2), (2, 3, 4), (3, 2, 1), (1, 3, 3), (3, 2, 3)])
def test_prox_against_cvxpy_moreau_and_dual_norm(pen, shape):
    rng = np.random.default_rng(6)
    B = rng.standard_normal(shape)
    B[:, 0, :] = 0.0  # a zero block
    B[:, 1, :] = np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[2]))  # rank one
    t = 0.7
    np.testing.assert_allclose(pen.prox(B, t), _cvxpy_prox(pen, B, t), atol=2e-6)
    np.testing.assert_allclose(pen.prox(B, t) + pen.project_dual_ball(B, t), B, atol=1e-13)
    # dual norm = sup over the unit ball of the norm (a conic program)
    dn = pen.dual_norm(B)
    for i in range(shape[1]):
        Xv = cp.Variable((shape[0], shape[2]))
        term = pen.cvxpy(Xv, shape[2])
        prob = cp.Problem(cp.Maximize(cp.sum(cp.multiply(B[:, i, :], Xv))), term.constraints + [term.expression <= 1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver="CLARABEL")
        assert prob.value == pytest.approx(dn[i], abs=1e-6)


@pytest.mark.parametrize("t", [0.0, 1e-9, 0.3, 10.0])
@pytest.mark.parametrize("shape", [(4, 3, 2), (2, 3, 4), (3, 2, 1), (5, 4, 3)])
def test_native_prox_matches_the_penalty_objects(shape, t):
    rng = np.random.default_rng(8)
    V = rng.standard_normal(shape)
    V[:, 0, :] = 0.0
    ref = (GroupL2() if shape[2] == 1 else Nuclear()).prox(V, t)
    X, pen = prox_penalty(V, t)
    np.testing.assert_allclose(X, ref, atol=1e-12)
    assert pen == pytest.approx((GroupL2() if shape[2] == 1 else Nuclear()).value(ref), rel=1e-12, abs=1e-14)
    X, pen = prox_columns(V, t)
    np.testing.assert_allclose(X, Columnwise().prox(V, t), atol=1e-12)


def test_float32_nuclear_prox_has_float32_accuracy():
    # before: the Gram path formed V^T V in float32; singular values below ~3e-4 ||V|| came out
    # wrong and the prox differed from float64 by up to 1e-4 relative (float32 SVD: 1.5e-7)
    rng = np.random.default_rng(3)
    d, P, c = 50, 20, 4
    U = np.linalg.qr(rng.standard_normal((P, d, c)))[0]
    W = np.linalg.qr(rng.standard_normal((P, c, c)))[0]
    B = np.einsum("pdk,k,pek->dpe", U, np.array([1.0, 1e-2, 1e-3, 3e-4]), W)
    for t in (2e-5, 1e-4, 5e-4):
        ref = Nuclear().prox(B, t)
        X32, pen32 = prox_penalty(B.astype(np.float32), t)
        assert X32.dtype == np.float32
        assert np.abs(X32 - ref).max() <= 1e-6 * np.abs(ref).max()
        assert pen32 == pytest.approx(Nuclear().value(ref), rel=1e-7)


@pytest.mark.parametrize("shape", [(4, 3, 2), (2, 3, 4), (1, 3, 3), (3, 3, 1), (5, 2, 5), (6, 1, 3)])
@pytest.mark.parametrize("scale", [1.0, 1e-170, 1e160])
def test_gram_spectral_matches_svd(shape, scale):
    # before: blocks of size 1e-170 had norm 0, of size 1e160 norm inf (RuntimeWarning)
    rng = np.random.default_rng(9)
    G = rng.standard_normal(shape)
    G[:, 0, :] = 0.0
    if shape[1] > 1:
        G[:, 1, :] = np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[2]))
    G *= scale
    ref = np.linalg.svd(np.transpose(G, (1, 0, 2)), compute_uv=False)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sig, v = gram_spectral(G)
        sig_only, _ = gram_spectral(G, vectors=False)
    np.testing.assert_allclose(sig, ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(sig_only, ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-12)
    for i in range(shape[1]):
        assert scale * np.linalg.norm(G[:, i, :] / scale @ v[i]) == pytest.approx(ref[i], rel=1e-10, abs=0)


# ---------------------------------------------------------------- review of best_dual_scale
def test_best_dual_scale_survives_underflowing_curvature():
    """A confident model (logistic t ~ 1e-300, cross-entropy G ~ 1e-170) made the Newton
    iteration divide a Python float by an underflowed 0 (ZeroDivisionError); the factor is now
    finite, and its dual value finite and at least that of min(1, s_max)."""
    from cvxnn.losses import CrossEntropyLoss, LogisticLoss

    y = np.array([1.0, -1.0, 1.0, -1.0])
    for th, s_max in ((-y * 1e-300, np.inf), (-y * 1e-170, 1e200), (-y * 1e-310, np.inf)):
        loss = LogisticLoss()
        s = loss.best_dual_scale(th, y, 1.0, s_max)
        assert np.isfinite(s) and 0.0 <= s <= s_max
        assert -loss._conjugate_sum(s * th, y) >= -loss._conjugate_sum(min(1.0, s_max) * th, y)
    Y = np.eye(3)[[0, 1, 2, 0]]
    loss = CrossEntropyLoss()
    G = (1 - Y) * 1e-170 - 2 * Y * 1e-170
    s = loss.best_dual_scale(G, Y, 1.0, np.inf)
    assert np.isfinite(s) and np.isfinite(-loss._conjugate_sum(s * G, Y))


def test_cross_entropy_best_scale_keeps_the_rows_in_the_simplex():
    """The rounding of the gradient's row sums, times a factor of 1e15 or more, left the
    conjugate's domain (a dual value of -inf where min(1, s_max) gives a finite bound)."""
    from cvxnn.losses import CrossEntropyLoss

    rng = np.random.default_rng(0)
    Z = 30.0 * rng.standard_normal((200, 4))
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    Y = np.eye(4)[rng.integers(0, 4, 200)]
    loss = CrossEntropyLoss()
    for k in (1e-3, 1e-8, 1e-12):  # a confident, far-from-optimal point: the best factor is large
        G = k * (P - Y)
        G[:, 0] += 1e-16 * rng.standard_normal(200)  # the row sums of a computed gradient are not 0
        for s_max in (1e3, 1e12, 1e40, np.inf):
            s = loss.best_dual_scale(G, Y, 1.0, s_max)
            d = -loss._conjugate_sum(s * G, Y)
            d0 = -loss._conjugate_sum(min(1.0, s_max) * G, Y)
            assert np.isfinite(d) and d >= d0


def test_duality_gap_uses_the_best_dual_scale():
    """gated_certificate and relu_certificate (duality_gap, the final certificates) rescaled by
    min(1, lam / ||A^T theta||) although the docs promise the best factor: a scaled logistic
    solution got a dual bound of 2e-10 where 8e-3 is attainable."""
    import dataclasses

    import cvxnn
    from cvxnn.native.certificates import duality_gap
    from cvxnn.patterns import sample_patterns

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    X[:, 0] += np.sign(X[:, 0])
    y = np.sign(X[:, 0])
    pats = sample_patterns(X, 30, seed=0, bias=True)
    lam = 1e-3
    for act in ("gated_relu", "relu"):
        sol = cvxnn.solve(X, y, pats, activation=act, loss="logistic", lam=lam)
        fields = {"U": sol.U * 3} if act == "gated_relu" else {"V": sol.V * 3, "W": sol.W * 3}
        far = dataclasses.replace(sol, **fields)
        cert = duality_gap(X, y, far, lam, "logistic")
        if act == "gated_relu":  # (C-ReLU: the solution's cone multipliers do not fit the scaled point)
            assert cert.dual > 1e-4 and cert.scale > 1.0  # min(1, s_max) gave a dual of about 2e-10
        assert cert.dual <= sol.objective_value * (1 + 1e-9)  # still a lower bound on the optimum
