"""QA regressions: cone decomposition, copositive relaxation, feature-sparse programs, preprocessing.

Each test failed before its fix (see CHANGELOG)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cvxnn
from cvxnn.decomposition import decompose
from cvxnn.patterns import Patterns
from cvxnn.solution import ConvexModel


@pytest.fixture(scope="module")
def gated():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((15, 3))
    y = rng.standard_normal(15)
    pats = cvxnn.sample_patterns(X, 10, seed=0, bias=False)
    sol = cvxnn.build_program(X, y, activation="gated_relu", lam=0.1, patterns=pats).solve()
    return X, y, pats, sol


def _exact(res, model, X):
    f = model.train_predict(X)
    assert not res.approximate
    assert res.prediction_gap <= 1e-10 * np.abs(f).max()
    assert res.max_violation <= 1e-10 * np.abs(f).max()


@pytest.mark.parametrize("method", ["socp", "lp"])
def test_decomposition_of_small_blocks_is_exact(gated, method):
    """The decomposition programs are homogeneous in u; Clarabel's absolute tolerances made a
    model scaled by 1e-8 come back approximate (25 % prediction gap, wrong minimum norm)."""
    X, _, pats, sol = gated
    ref = decompose(sol, X, method=method)
    small = ConvexModel(activation="gated_relu", patterns=pats, U=sol.U * 1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no InaccurateSolutionWarning
        res = decompose(small, X, method=method)
    _exact(res, small, X)
    if method == "socp":  # the minimum-norm decomposition scales with u
        assert res.model.penalty() == pytest.approx(ref.model.penalty() * 1e-8, rel=1e-6)


def test_decomposition_of_tiny_data_is_exact(gated):
    """Data with entries ~1e-8 left the cone constraints inside the solver's tolerance
    (4 % prediction gap, approximate=True); the constraints are homogeneous in X_a."""
    X0, _, pats0, sol = gated
    X = X0 * 1e-8
    pats = Patterns.from_gates(X, pats0.gates)
    model = ConvexModel(activation="gated_relu", patterns=pats, U=sol.U)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = decompose(model, X, method="socp")
    _exact(res, model, X)


def test_decompose_d_star_uses_the_lam_passed(gated):
    """Without y, d* came from the solution's objective at *its* lam even when another lam was
    passed (lam=0.5: d* 0.52 instead of 2.28, and the ReLU objective off by the same)."""
    X, y, _, sol = gated
    for lam in (0.5, 0.0):
        no_y = decompose(sol, X, lam=lam)
        with_y = decompose(sol, X, y, lam=lam)
        assert no_y.d_star == pytest.approx(with_y.d_star, rel=1e-9)
        assert no_y.relu_objective == pytest.approx(with_y.relu_objective, rel=1e-9)


def test_decompose_d_star_not_from_another_loss(gated):
    """A squared-loss solution decomposed with loss='logistic' and no y must not report the
    squared objective as the logistic d*."""
    X, _, pats, _ = gated
    rng = np.random.default_rng(2)
    yb = np.where(rng.standard_normal(X.shape[0]) > 0, 1.0, -1.0)
    sol = cvxnn.build_program(X, yb, activation="gated_relu", lam=0.1, patterns=pats).solve()
    res = decompose(sol, X, loss="logistic")
    assert res.d_star is None and res.relu_objective is None
    assert decompose(sol, X, yb, loss="logistic").d_star > 0  # with y it is evaluated


def test_relaxation_tightness_is_scale_free():
    """The zero network was called optimal (tight=True) with an absolute tolerance of 1e-6:
    with small targets its objective 7.5e-8 passed against r* = 8.5e-9."""
    from cvxnn.relaxations import copositive_relaxation

    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    Y = np.eye(3)[rng.integers(0, 3, 12)]
    pats = cvxnn.sample_patterns(X, 5, seed=0, bias=True)
    s = 1e-4
    rel = copositive_relaxation(X, Y * s, lam=0.1 * s, patterns=pats)
    zero_obj = 0.5 * float(np.sum((Y * s) ** 2))
    assert rel.status == "optimal" and rel.value < 0.5 * zero_obj
    assert not rel.tight
    assert rel.network is None or rel.network.n_neurons > 0
    # above lam_max the zero network still certifies tightness (unit scale: Clarabel's value is
    # accurate to its absolute tolerance 1e-8, too coarse to certify objectives of 6e-8)
    big = copositive_relaxation(X, Y, lam=100.0, patterns=pats)
    assert big.tight and big.network.n_neurons == 0
