"""Losses: CVXPY and numpy agree; gradients and conjugates are right (Fenchel-Young)."""

import cvxpy as cp
import numpy as np
import pytest

from cvxnn.errors import InvalidParameterError, LabelError
from cvxnn.losses import LOSSES, get_loss

rng = np.random.default_rng(0)
Z = rng.standard_normal(12)
Y_REAL = rng.standard_normal(12)
Y_PM = np.where(rng.standard_normal(12) > 0, 1.0, -1.0)
Y_PM[:2] = [1.0, -1.0]
Z_MAT = rng.standard_normal((12, 3))
Y_ONEHOT = np.eye(3)[rng.integers(0, 3, 12)]


def targets(name):
    if name in ("logistic", "hinge"):
        return Z, Y_PM
    if name == "cross_entropy":
        return Z_MAT, Y_ONEHOT
    return Z, Y_REAL


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_cvxpy_matches_numpy(name, reduction):
    z, y = targets(name)
    loss = get_loss(name, reduction=reduction)
    var = cp.Variable(z.shape)
    var.value = z
    assert loss.cvxpy(var, y).value == pytest.approx(loss.value(z, y), rel=1e-10)
    assert loss.cvxpy(var, y).is_convex()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_exponential_cones_flag_matches_the_cvxpy_expression(name):
    # the native solvers read the flag (the interior-point finish's cost model); it must say
    # what CVXPY will compile the loss to, with and without sample weights
    from cvxnn.estimators import WeightedLoss
    from cvxnn.program import uses_exponential_cones

    z, y = targets(name)
    loss = get_loss(name)
    var = cp.Variable(z.shape)
    assert loss.exponential_cones == uses_exponential_cones(cp.Problem(cp.Minimize(loss.cvxpy(var, y))))
    weighted = WeightedLoss(base=loss, weights=np.linspace(0.5, 2.0, z.shape[0]))
    assert weighted.exponential_cones == loss.exponential_cones
    assert weighted.exponential_cones == uses_exponential_cones(cp.Problem(cp.Minimize(weighted.cvxpy(var, y))))


@pytest.mark.parametrize("name", [n for n in sorted(LOSSES) if LOSSES[n].smooth])
def test_gradient_by_finite_differences(name):
    z, y = targets(name)
    loss = get_loss(name)
    g = loss.grad(z, y)
    eps = 1e-6
    num = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[idx] = eps
        num[idx] = (loss.value(z + e, y) - loss.value(z - e, y)) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["squared", "logistic", "cross_entropy"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_fenchel_young(name, reduction):
    """L(z) + L*(s) >= <s, z>, with equality at s = grad L(z)."""
    z, y = targets(name)
    loss = get_loss(name, reduction=reduction)
    s = loss.grad(z, y)
    assert loss.value(z, y) + loss.conjugate(s, y) == pytest.approx(np.sum(s * z), abs=1e-10)
    other = 0.5 * s
    if name == "cross_entropy":
        other = s  # stays in the domain only along the simplex; check the inequality at z + 1
        assert loss.value(z + 1.0, y) + loss.conjugate(other, y) >= np.sum(other * (z + 1.0)) - 1e-10
    else:
        assert loss.value(z, y) + loss.conjugate(other, y) >= np.sum(other * z) - 1e-10


def test_label_checks():
    with pytest.raises(LabelError):
        get_loss("logistic").check_targets(np.array([0.0, 1.0]))
    with pytest.raises(LabelError):
        get_loss("hinge").check_targets(np.ones(4))
    with pytest.raises(LabelError):
        get_loss("cross_entropy").check_targets(np.array([[0.5, 0.5]]))
    np.testing.assert_array_equal(get_loss("logistic").check_targets(Y_PM), Y_PM)


def test_bad_options():
    with pytest.raises(InvalidParameterError):
        get_loss("squared", reduction="median")
    with pytest.raises(InvalidParameterError):
        get_loss("huber", delta=-1.0)
    with pytest.raises(InvalidParameterError):
        get_loss("squared", delta=1.0)
    with pytest.raises(InvalidParameterError):
        get_loss("hinge").grad(Z, Y_PM)


# ------------------------------------------------------------------ per-sample terms (has_rows)
def _rows_case(name, rng, n=7, c=3):
    from cvxnn.losses import get_loss

    loss = get_loss(name)
    if name == "cross_entropy":
        y = np.eye(c)[rng.integers(0, c, n)]
        z, z2 = rng.standard_normal((n, c)), rng.standard_normal((n, c))
        s = 0.3 * (np.full((n, c), 1.0 / c) - y)  # inside the domain (s + y on the simplex)
    elif name == "logistic":
        y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        z, z2 = rng.standard_normal(n), rng.standard_normal(n)
        s = -0.4 * y
    else:
        y = rng.standard_normal((n, c))
        z, z2 = rng.standard_normal((n, c)), rng.standard_normal((n, c))
        s = 0.2 * rng.standard_normal((n, c))
    return loss, y, z, z2, s


@pytest.mark.parametrize("name", ["squared", "logistic", "huber", "cross_entropy"])
def test_row_terms_sum_to_the_summed_methods(name):
    rng = np.random.default_rng(5)
    loss, y, z, z2, s = _rows_case(name, rng)
    assert loss.has_rows
    assert loss._value_rows(z, y).shape == (y.shape[0],)
    assert loss._value_rows(z, y).sum() == pytest.approx(loss._value_sum(z, y), rel=1e-12)
    assert loss._conjugate_rows(s, y).sum() == pytest.approx(loss._conjugate_sum(s, y), rel=1e-12, abs=1e-14)
    g = loss._grad_sum(z2, y)
    assert loss._bregman_rows(z, z2, g, y).sum() == pytest.approx(loss._bregman_sum(z, z2, g, y), rel=1e-12)
    # a sample outside the conjugate's domain is +inf in its own row only
    bad = s.copy()
    bad[0] = bad[0] + 5.0
    if name != "squared":
        rows = loss._conjugate_rows(bad, y)
        assert np.isinf(rows[0]) and np.all(np.isfinite(rows[1:]))


@pytest.mark.parametrize("name", ["logistic", "huber", "cross_entropy"])
def test_weighted_loss_any_weights_equals_sum_over_samples(name):
    """WeightedLoss with all-distinct weights (and a zero): value, conjugate and Bregman terms are
    the weighted per-sample sums (the same as evaluating each sample on its own)."""
    from cvxnn.estimators import WeightedLoss

    rng = np.random.default_rng(6)
    loss, y, z, z2, s = _rows_case(name, rng)
    w = rng.uniform(0.2, 3.0, y.shape[0])
    w[2] = 0.0
    wl = WeightedLoss(base=loss, weights=w)
    assert not wl.needs_groups and wl.n_groups == y.shape[0]
    one = [slice(j, j + 1) for j in range(y.shape[0])]
    val = sum(w[j] * loss._value_sum(z[o], y[o]) for j, o in enumerate(one))
    assert wl._value_sum(z, y) == pytest.approx(val, rel=1e-12)
    sw = s * (w[:, None] if s.ndim == 2 else w)  # a dual point of the weighted loss
    conj = sum(w[j] * loss._conjugate_sum(sw[o] / w[j], y[o]) for j, o in enumerate(one) if w[j] > 0)
    assert wl._conjugate_sum(sw, y) == pytest.approx(conj, rel=1e-12)
    bad = sw.copy()
    bad[2] = bad[2] + 0.1  # dual mass on the zero-weight sample
    assert np.isinf(wl._conjugate_sum(bad, y))
    g = wl._grad_sum(z2, y)
    breg = wl._value_sum(z, y) - wl._value_sum(z2, y) - float(np.vdot(g, z - z2))
    assert wl._bregman_sum(z, z2, g, y) == pytest.approx(max(breg, 0.0), rel=1e-8, abs=1e-12)


def test_losses_without_row_terms_say_so():
    """hinge and absolute have no per-sample terms: WeightedLoss sums them by groups instead."""
    from cvxnn.estimators import WeightedLoss

    for name in ("hinge", "absolute"):
        loss = get_loss(name)
        assert not loss.has_rows
        with pytest.raises(NotImplementedError, match="has_rows is False"):
            loss._value_rows(np.zeros(3), np.ones(3))
        assert WeightedLoss(base=loss, weights=np.arange(1.0, 4.0)).needs_groups


@pytest.mark.parametrize("name", [n for n in sorted(LOSSES) if LOSSES[n].smooth and LOSSES[n].has_conjugate])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_kernel_value_and_grad_match_value_and_grad(name, reduction):
    """The native kernel's fused value and gradient (one exponential for cross-entropy) equal
    the separate ones, also at large logits and for weighted losses."""
    from cvxnn.estimators import WeightedLoss
    from cvxnn.native._losses import make_kernel

    z, y = targets(name)
    z2 = (z if z.ndim == 2 else z[:, None]) * 50.0  # large logits: the shifted exponentials
    y2 = y if y.ndim == 2 else y[:, None]
    for loss in (get_loss(name, reduction=reduction),
                 WeightedLoss(base=get_loss(name, reduction=reduction), weights=np.arange(1.0, 13.0))):
        for dtype in (np.float64, np.float32):
            k = make_kernel(loss, y2, dtype)
            zz = z2.astype(dtype)
            v, g = k.value_and_grad(zz)
            assert v == pytest.approx(k.value(zz), rel=1e-12, abs=1e-12)
            assert g.dtype == np.dtype(dtype)
            tight = dtype == np.float64
            np.testing.assert_allclose(g, k.grad(zz), rtol=1e-12 if tight else 1e-5, atol=1e-12 if tight else 1e-6)


def test_huber_bregman_has_no_cancellation():
    """D(a, b) = h(a) - h(b) - h'(b)(a - b) of the Huber loss, evaluated without subtracting
    values: exact in both zones, and accurate to its own size when a ~ b (the difference of
    values lost every digit there, and R-FISTA's backtracking stalled)."""
    from fractions import Fraction

    from cvxnn.losses import HuberLoss

    loss = HuberLoss(delta=1.0)
    rng = np.random.default_rng(0)

    def exact(a, b, y, d=Fraction(1)):
        def h(r):
            return r * r / 2 if abs(r) <= d else d * (abs(r) - d / 2)

        def g(r):
            return max(-d, min(d, r))

        a, b, y = Fraction(a), Fraction(b), Fraction(y)
        return float(h(a - y) - h(b - y) - g(b - y) * (a - b))

    for scale in (3.0, 1e-9):  # far apart (all zones), and nearly equal
        a = 2.0 * rng.standard_normal(200)
        b = a + scale * rng.standard_normal(200)
        y = rng.standard_normal(200)
        g = np.clip(b - y, -1, 1)
        got = loss._bregman_rows(a[:, None], b[:, None], g[:, None], y[:, None])
        want = np.array([exact(ai, bi, yi) for ai, bi, yi in zip(a, b, y, strict=True)])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300)


def test_quadratic_huber_solve_certifies():
    """The 36 x 1 instance on which the native quadratic solver stalled (20000 iterations,
    step 4e-10) with the cancelling Huber Bregman divergence."""
    from cvxnn.native.polynomial import solve_quadratic_native

    rng = np.random.default_rng(5)
    for _ in range(8):
        n = int(rng.integers(3, 40))
        d = int(rng.integers(1, 5))
        rng.standard_normal((n, d)), rng.standard_normal(n), rng.standard_normal(3)
    for _ in range(7):
        n, d = int(rng.integers(3, 40)), int(rng.integers(1, 5))
        X = rng.standard_normal((n, d))
        y = rng.standard_normal(n) + X[:, 0] ** 2
        lam = float(rng.uniform(0.01, 1))
    s = solve_quadratic_native(X, y, lam=lam, loss="huber", tol=1e-7)
    assert s.status == "optimal" and s.iterations < 1000
