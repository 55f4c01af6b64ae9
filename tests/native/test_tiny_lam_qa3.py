"""Tiny regularisation (lam far below 1e-100): the native solvers stay free of floating-point
warnings (the barrier's smoothed norm, the float32 evaluations of the gated working set)."""

import warnings

import numpy as np
import pytest

import cvxnn
from cvxnn import sample_patterns
from cvxnn.losses import get_loss
from cvxnn.native import ipm
from cvxnn.native._atoms import Atoms
from cvxnn.native._losses import make_kernel
from cvxnn.native.gated_working_set import FactoredObjective
from cvxnn.operators import ImplicitDesign


def _psi_direct(r, mu, lam):
    """The textbook form of the smoothed norm (valid while ``lam^2`` is a normal float)."""
    q = np.sqrt(mu * mu + (lam * r) ** 2)
    val = lam * ((mu + q) / lam) - mu * np.log(2.0 * mu * (mu + q) / lam**2)
    return val, lam * lam * r / (mu + q), lam * lam / (mu + q), lam * lam * mu / (q * (mu + q))


@pytest.mark.parametrize("lam", [1e-8, 0.3, 40.0])
def test_scaled_psi_matches_the_direct_form_for_ordinary_lam(lam):
    r = np.array([0.0, 1e-6, 0.7, 3.0, 250.0])
    for mu in (1e-9, 1e-3, 2.0):
        np.testing.assert_array_equal(np.array(ipm._psi(r, mu, lam)), np.array(_psi_direct(r, mu, lam)))
        for got, want in zip(ipm._psi_scaled(r, mu, lam), _psi_direct(r, mu, lam), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("lam,mu", [(1e-170, 1e-3), (1e-300, 1e-3), (1e-300, 1e-290), (0.5, 1e-200)])
def test_psi_is_finite_for_tiny_lam(lam, mu):
    r = np.array([0.0, 0.5, 2.0, 1e200])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        val, d1, a, b = ipm._psi(r, mu, lam)
    for v in (val, d1, a, b):
        assert np.all(np.isfinite(v))
    # 0 <= psi' <= lam, psi'' >= 0, and psi(r) = lam t - mu log(t^2 - r^2) at t = (mu + q) / lam
    assert np.all((d1 >= 0.0) & (d1 <= lam)) and np.all(b >= 0.0)
    m = mu / lam
    t = m + np.hypot(m, r)
    np.testing.assert_allclose(val, lam * t - mu * (np.log(2.0 * m) + np.log(t)), rtol=1e-12)


def _diabetes(n=None):
    """Standardised diabetes (the first ``n`` rows)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return X[:n], y[:n]


def test_relu_solve_with_tiny_lam_emits_no_runtime_warning():
    # the working set's barrier method runs at lam = 1e-300 (lam^2 is zero in float64)
    X, y = _diabetes(60)
    pats = sample_patterns(X, 20, seed=0, bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", cvxnn.errors.ConvergenceWarning)
        sol = cvxnn.solve(X, y, pats, lam=1e-300, activation="relu", max_iter=400)
    assert np.isfinite(sol.objective_value) and np.all(np.isfinite(sol.train_predict(X)))
    # honest: a relative gap of 1e-6 of an objective near 1e-300 is beyond float64
    assert not sol.converged or sol.rel_gap <= 1e-6


def _objective(lam, scale):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    y = rng.standard_normal((30, 1))
    pats = sample_patterns(X, 6, seed=2, bias=True)
    Xa = pats.design(X)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=1, dtype=np.float64)
    kernel = make_kernel(get_loss("squared"), y, np.float64)
    R = 4
    atoms = Atoms(blk=np.arange(R, dtype=np.intp), A=scale * rng.standard_normal((Xa.shape[1], R)),
                  B=rng.standard_normal((R, 1)), col=None)
    x = np.concatenate([atoms.A.ravel(), atoms.B.ravel()])
    return FactoredObjective(op, kernel, lam, atoms, fast=True), FactoredObjective(op, kernel, lam, atoms), x


@pytest.mark.parametrize("scale", [1e20, 1e40, 1e60])
def test_factored_objective_leaves_float32_for_large_factors(scale):
    fast, exact, x = _objective(1e-100, scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f32, g32 = fast(x)
        f64, g64 = exact(x)
    assert np.isfinite(f32) and np.all(np.isfinite(g32))
    np.testing.assert_allclose(f32, f64, rtol=1e-12)
    np.testing.assert_allclose(g32, g64, rtol=1e-12)
    assert fast.last is not None and not fast.last[3]  # evaluated in float64


def test_factored_objective_keeps_float32_for_ordinary_factors():
    fast, exact, x = _objective(0.5, 1.0)
    f32, _ = fast(x)
    f64, _ = exact(x)
    assert fast.last[3]  # float32 GEMMs
    np.testing.assert_allclose(f32, f64, rtol=1e-5)


@pytest.mark.parametrize("lam", [1e-100, 1e-300])
def test_gated_working_set_with_tiny_lam_emits_no_runtime_warning(lam):
    X, y = _diabetes()
    pats = sample_patterns(X, 100, seed=0, bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", cvxnn.errors.ConvergenceWarning)
        sol = cvxnn.solve(X, y, pats, lam=lam, activation="gated_relu", max_iter=200)
    assert np.isfinite(sol.objective_value)
