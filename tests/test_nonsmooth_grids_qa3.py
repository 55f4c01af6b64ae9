"""Default lam grids, lam_max shortcuts and zero models above lam_max for losses differentiable
at the zero prediction (hinge with labels +-1, absolute without a zero target), with sample
weights too, against CVXPY + Clarabel on real data (breast cancer, diabetes); and the clear
refusals where the loss has no gradient at zero."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from cvxnn import get_loss, sample_patterns
from cvxnn import solve as cvx_solve
from cvxnn.errors import InvalidParameterError
from cvxnn.estimators import (
    ConvexGatedReLUClassifierCV,
    ConvexReLUClassifier,
    ConvexReLUClassifierCV,
    ConvexReLURegressorCV,
    WeightedLoss,
)
from cvxnn.feature_penalties import FeatureGroupL2
from cvxnn.feature_sparsity import feature_lam_max, feature_path, solve_feature_sparse, weight_matrix
from cvxnn.path import lam_max, lam_max_is_zero, regularization_path


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    rows = np.r_[0:30, 540:569]  # both classes
    X, y = X[rows][:, :6], 2.0 * y[rows] - 1.0
    return X, y, sample_patterns(X, 8, seed=0)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:50, :5], y[:50]
    y = (y - y.mean()) / y.std()
    assert np.all(y != 0)
    return X, y, sample_patterns(X, 6, seed=0)


def _zero_objective(loss, y):
    return loss.value(np.zeros_like(y), y)


def _check_zero_then_not(path, X, y, patterns, activation, loss):
    """First point: the exact zero model at lam_max, no solve; the next one solved and not zero.
    lam_max checked independently with Clarabel: the optimal value is L(0) just above it (the
    zero model is optimal) and strictly below L(0) just under it."""
    lm = lam_max(X, y, patterns, activation, loss)
    assert path.lams[0] == lm == path.lam_max
    first, second = path.solutions[0], path.solutions[1]
    assert first.solver == "lam_max" and first.status == "optimal"
    assert first.extra["certified_by"] == "lam_max" and first.gap == 0.0
    assert not np.any(first.effective_weights)
    assert second.solver == "CLARABEL" and second.status == "optimal"
    assert np.max(second.block_norms()) > 1e-3
    f0 = _zero_objective(loss, y)
    above = cvx_solve(X, y, patterns, activation=activation, loss=loss, lam=1.001 * lm, solver="clarabel")
    below = cvx_solve(X, y, patterns, activation=activation, loss=loss, lam=0.95 * lm, solver="clarabel")
    assert above.objective_value == pytest.approx(f0, rel=1e-6)
    assert below.objective_value < f0 * (1 - 1e-5)


# ------------------------------------------------------------------------ cvxnn.path


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_default_grid_hinge_breast_cancer(cancer, activation):
    X, y, pats = cancer
    path = regularization_path(X, y, pats, activation=activation, loss="hinge", n_lams=3)
    _check_zero_then_not(path, X, y, pats, activation, get_loss("hinge"))


def test_default_grid_absolute_diabetes(diabetes):
    X, y, pats = diabetes
    path = regularization_path(X, y, pats, activation="relu", loss="absolute", n_lams=3)
    _check_zero_then_not(path, X, y, pats, "relu", get_loss("absolute"))


def test_default_grid_weighted_hinge(cancer):
    X, y, pats = cancer
    w = 1.0 + np.arange(y.size) % 3
    loss = WeightedLoss(base=get_loss("hinge"), weights=w)
    path = regularization_path(X, y, pats, activation="gated_relu", loss=loss, n_lams=3)
    _check_zero_then_not(path, X, y, pats, "gated_relu", loss)


def test_no_gradient_at_zero_refuses_default_grid_but_takes_lams(diabetes):
    X, y, pats = diabetes
    y = y.copy()
    y[3] = 0.0  # the absolute loss has its kink at z = 0 there
    with pytest.raises(InvalidParameterError, match="not differentiable.*pass lams"):
        regularization_path(X, y, pats, loss="absolute")
    path = regularization_path(X, y, pats, loss="absolute", lams=[10.0, 0.1])
    assert path.lam_max == np.inf and [s.solver for s in path.solutions] == ["CLARABEL", "CLARABEL"]


def test_native_backend_refused_before_any_solve_for_hinge(cancer):
    X, y, pats = cancer
    calls = []
    with pytest.raises(InvalidParameterError, match="CVXPY backend"):
        regularization_path(X, y, pats, loss="hinge", backend="native", n_lams=3,
                            callback=lambda *a: calls.append(a))
    assert calls == []
    # a grid entirely at or above lam_max needs no solver: the exact zero models
    lm = lam_max(X, y, pats, "relu", "hinge")
    path = regularization_path(X, y, pats, loss="hinge", backend="native", lams=[2 * lm, lm])
    assert [s.solver for s in path.solutions] == ["lam_max", "lam_max"]


def test_lam_max_is_zero_for_hinge(cancer):
    X, y, pats = cancer
    hinge = get_loss("hinge")
    assert not lam_max_is_zero(lam_max(X, y, pats, "relu", hinge), pats.design(X), y, hinge)
    X2, y2 = np.vstack([X, X]), np.r_[y, -y]  # every input with both labels: zero is optimal
    p2 = sample_patterns(X2, 8, seed=0)
    assert lam_max_is_zero(lam_max(X2, y2, p2, "relu", hinge), p2.design(X2), y2, hinge)


# ------------------------------------------------------------------------ WeightedLoss


def test_weighted_loss_gradient_at_zero():
    """d/dz_j of c sum_k w_k l(z_k, y_k) at 0 is c w_j l'(0, y_j) (c = 1, or 1/sum w for mean);
    a zero-weight term is identically 0, so its target does not matter."""
    y = np.array([1.0, -1.0, 1.0, -1.0])
    w = np.array([2.0, 0.5, 0.0, 3.0])
    np.testing.assert_array_equal(WeightedLoss(base=get_loss("hinge"), weights=w).grad_at_zero(y), -w * y)
    mean = WeightedLoss(base=get_loss("hinge", reduction="mean"), weights=w)
    np.testing.assert_allclose(mean.grad_at_zero(y), -w * y / w.sum())
    t = np.array([2.0, -0.5, 0.0, 1.5])  # the zero target has weight 0
    np.testing.assert_array_equal(WeightedLoss(base=get_loss("absolute"), weights=w).grad_at_zero(t),
                                  -w * np.sign(t))
    with pytest.raises(InvalidParameterError, match="not differentiable"):
        WeightedLoss(base=get_loss("absolute"), weights=np.ones(4)).grad_at_zero(t)
    # a smooth base: the same as the gradient at 0; and a finite-difference check for the hinge
    logi = WeightedLoss(base=get_loss("logistic"), weights=w)
    np.testing.assert_allclose(logi.grad_at_zero(y), logi.grad(np.zeros(4), y))
    hw = WeightedLoss(base=get_loss("hinge"), weights=w)
    fd = [(hw.value(1e-6 * e, y) - hw.value(-1e-6 * e, y)) / 2e-6 for e in np.eye(4)]
    np.testing.assert_allclose(hw.grad_at_zero(y), fd, atol=1e-8)


# ------------------------------------------------------------------------ estimators


def _cancer_raw():
    X, y = load_breast_cancer(return_X_y=True)
    rows = np.r_[0:30, 540:569]
    return X[rows][:, :6], y[rows]


@pytest.mark.parametrize("cls", [ConvexReLUClassifierCV, ConvexGatedReLUClassifierCV])
def test_cv_estimators_hinge_default_grid(cls):
    X, y = _cancer_raw()
    kw = dict(loss="hinge", backend="cvxpy", n_gates=4, n_lams=3, cv=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = cls(**kw).fit(X, y)
    assert m.lams_.shape == (3,) and m.lams_[0] > m.lams_[1] > m.lams_[2] > 0
    assert m.score(X, y) > 0.8
    if cls is ConvexReLUClassifierCV:
        # lams_[0] is the lam_max of the refit's program: the refit there is the exact zero model
        base = ConvexReLUClassifier(loss="hinge", backend="clarabel", n_gates=4, random_state=0, lam=m.lams_[0])
        base.fit(X, y)
        assert base.solution_.solver == "lam_max" and base.n_active_neurons_ == 0
        below = ConvexReLUClassifier(loss="hinge", backend="clarabel", n_gates=4, random_state=0,
                                     lam=0.99 * m.lams_[0]).fit(X, y)
        assert below.solution_.solver == "CLARABEL" and below.n_active_neurons_ > 0


def test_fit_at_lam_max_is_the_exact_zero_model_for_hinge():
    """A CVXPY fit at lam >= lam_max returns the exact zero model (no solver noise) for the hinge
    loss too; backend='cvxpy' is Clarabel, as in cvxnn.path."""
    X, y = _cancer_raw()
    kw = dict(loss="hinge", backend="cvxpy", n_gates=4, random_state=0)
    m = ConvexReLUClassifier(lam=1.0, **kw).fit(X, y)
    Xs = m.standardizer_.transform(X) if m.standardizer_ is not None else X
    lm = lam_max(Xs, 2.0 * y - 1.0, m.patterns_, "relu", "hinge")
    at = ConvexReLUClassifier(lam=lm, **kw).fit(X, y)
    assert at.solution_.solver == "lam_max" and at.solution_.gap == 0.0 and at.n_active_neurons_ == 0
    assert ConvexReLUClassifier(lam=0.95 * lm, **kw).fit(X, y).solution_.solver == "CLARABEL"


def test_cv_hinge_sample_weights_match_repeated_rows():
    """Integer weights are repeated rows: the default grid's lam_max is the same."""
    X, y = _cancer_raw()
    w = 1 + np.arange(y.size) % 2
    kw = dict(loss="hinge", backend="clarabel", n_gates=4, n_lams=2, cv=2, random_state=0, refit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted = ConvexReLUClassifierCV(**kw).fit(X, y, sample_weight=w)
        repeated = ConvexReLUClassifierCV(**kw).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.lams_, repeated.lams_, rtol=1e-8)


def test_fit_path_hinge_default_grid():
    X, y = _cancer_raw()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ConvexReLUClassifier(loss="hinge", backend="clarabel", n_gates=4, random_state=0).fit_path(
            X, y, n_lams=3, patience=3)
    assert m.path_["lams"][0] > m.path_["lams"][1]
    assert list(m.path_["statuses"]) == ["optimal"] * len(m.path_["lams"])
    assert m.best_lam_ < m.path_["lams"][0]


def test_cv_absolute_zero_target_refused_with_lams_advice():
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:40, :4], (y[:40] - 150.0) / 80.0
    y[1] = 0.0  # standardize=False: the solver sees this zero target, the kink of |z - y| at z = 0
    m = ConvexReLURegressorCV(loss="absolute", backend="clarabel", n_gates=3, n_lams=2, cv=2, random_state=0,
                              standardize=False)
    with pytest.raises(InvalidParameterError, match="not differentiable.*lams="):
        m.fit(X, y)


# ------------------------------------------------------------------------ feature sparsity


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_feature_path_hinge_default_grid(cancer, activation):
    X, y, pats = cancer
    pen = FeatureGroupL2()
    lm = feature_lam_max(X, y, pats, pen, activation=activation, loss="hinge")
    f0 = _zero_objective(get_loss("hinge"), y)
    above = solve_feature_sparse(X, y, penalty=pen, lam=1.001 * lm, activation=activation, patterns=pats,
                                 loss="hinge", solver="clarabel")
    below = solve_feature_sparse(X, y, penalty=pen, lam=0.95 * lm, activation=activation, patterns=pats,
                                 loss="hinge", solver="clarabel")
    assert above.objective_value == pytest.approx(f0, rel=1e-6)
    assert below.objective_value < f0 * (1 - 1e-5)
    path = feature_path(X, y, penalty=pen, patterns=pats, activation=activation, loss="hinge", n_lams=3)
    assert path.lams[0] == lm
    assert path.solutions[0].solver == "lam_max" and not np.any(weight_matrix(path.solutions[0]))
    assert path.solutions[1].solver == "CLARABEL" and path.solutions[1].status == "optimal"
    assert path.supports[1].any()


def test_feature_lam_max_absolute_zero_target(diabetes):
    X, y, pats = diabetes
    y = y.copy()
    y[0] = 0.0
    with pytest.raises(InvalidParameterError, match="not differentiable.*lams="):
        feature_lam_max(X, y, pats, FeatureGroupL2(), loss="absolute")
    path = feature_path(X, y, penalty=FeatureGroupL2(), patterns=pats, loss="absolute", lams=[1.0, 0.1])
    assert path.lam_max == np.inf and [s.solver for s in path.solutions] == ["CLARABEL", "CLARABEL"]
