"""Estimators and paths used as a scikit-learn practitioner would (QA round 3): each test pins a
behaviour that was wrong before."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import make_classification  # noqa: E402

import cvxnn.estimators as E  # noqa: E402
from cvxnn import ConvexGatedReLUClassifier, ConvexGatedReLUClassifierCV  # noqa: E402


@pytest.fixture(scope="module")
def clf_data():
    return make_classification(n_samples=90, n_features=4, n_informative=3, n_redundant=0, random_state=0)


@pytest.mark.parametrize("backend", ["native", "NATIVE"])
def test_cv_fold_paths_warm_start_for_every_spelling_of_native(clf_data, backend, monkeypatch):
    """``backend="NATIVE"`` is the native backend everywhere, but the fold paths compared the name
    case-sensitively: every fold fit started cold and the refit did not start from the folds
    (breast cancer, ConvexGatedReLUClassifierCV: 8.0 s against 4.3 s, twice the iterations)."""
    warm = []
    real = E._ConvexNetworkBase._fit_encoded

    def spy(self, *args, **kwargs):
        warm.append(kwargs.get("warm_start") is not None)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(E._ConvexNetworkBase, "_fit_encoded", spy)
    X, y = clf_data
    res = E.cross_validate_lam(ConvexGatedReLUClassifier(n_gates=6, random_state=0, backend=backend), X, y,
                               [3.0, 1.0, 0.3], cv=2)
    assert res.scores.shape == (2, 3)
    assert warm == [False, True, True] * 2  # each fold: a cold first fit, then warm-started
    starts = []
    real_start = E._refit_start
    monkeypatch.setattr(E, "_refit_start", lambda *a, **k: starts.append(real_start(*a, **k)) or starts[-1])
    est = ConvexGatedReLUClassifierCV(lams=[3.0, 1.0], cv=2, n_gates=6, random_state=0, backend=backend).fit(X, y)
    assert starts[-1] is not None and est.status_ == "optimal"


def test_cross_validate_lam_takes_groups_for_group_splitters(clf_data):
    """``cross_validate_lam(..., cv=GroupKFold(3))`` failed ("The 'groups' parameter should not be
    None"): the function had no ``groups``, which the ``...CV`` estimators' ``fit`` passes on. The
    folds keep every group on one side, and the scores equal those of the explicit folds."""
    from sklearn.model_selection import GroupKFold

    X, y = clf_data
    groups = np.arange(len(y)) % 6
    est = ConvexGatedReLUClassifier(n_gates=4, random_state=0)
    res = E.cross_validate_lam(est, X, y, [2.0, 0.5], cv=GroupKFold(3), groups=groups)
    folds = list(GroupKFold(3).split(X, y, groups))
    assert all(not set(groups[tr]) & set(groups[te]) for tr, te in folds)
    ref = E.cross_validate_lam(est, X, y, [2.0, 0.5], cv=folds)
    np.testing.assert_array_equal(res.scores, ref.scores)


@pytest.mark.parametrize("make", [
    lambda: E.ConvexGatedReLUClassifierCV(loss="hinge", backend="clarabel", n_gates=3, cv=2, n_lams=3,
                                          random_state=0),
    lambda: E.ConvexGatedReLURegressorCV(loss="absolute", backend="clarabel", n_gates=3, cv=2, n_lams=3,
                                         random_state=0),
])
def test_default_grid_of_a_loss_differentiable_at_zero(clf_data, make):
    """The default grid needs ``lam_max``: with the hinge loss (labels +-1) or the absolute loss
    (no zero target), both differentiable at zero, the ...CV estimators and ``fit_path`` stopped
    with "lam_max needs a differentiable loss"; their grids now start at the exact lam_max."""
    X, y = clf_data
    est = make()
    est.fit(X, y)
    assert len(est.lams_) == 3 and est.lams_[0] > est.lams_[-1] > 0
    base = est._base_estimator()
    base.fit_path(X, y)
    assert base.best_lam_ > 0


@pytest.mark.parametrize("make, scoring, match", [
    (lambda: ConvexGatedReLUClassifier(loss="squared", n_gates=3, random_state=0), "neg_log_loss",
     r"needs predict_proba.*loss='logistic'"),
    (lambda: E.ConvexGatedReLURegressor(n_gates=3, random_state=0), "roc_auc",
     r"needs decision_function or predict_proba.*regressor has predict only"),
])
def test_a_scoring_that_needs_a_missing_method_is_refused_before_any_fit(clf_data, make, scoring, match,
                                                                         monkeypatch):
    """``scoring="neg_log_loss"`` with ``loss="squared"`` (no ``predict_proba``) fitted the first
    fold and then failed with scikit-learn's bare ``AttributeError``; it is refused up front, with
    what to use instead."""
    fits = []
    real = E._ConvexNetworkBase._fit_encoded
    monkeypatch.setattr(E._ConvexNetworkBase, "_fit_encoded",
                        lambda self, *a, **k: fits.append(1) or real(self, *a, **k))
    X, y = clf_data
    with pytest.raises(E.InvalidParameterError, match=match):
        E.cross_validate_lam(make(), X, y, [1.0], cv=2, scoring=scoring)
    assert fits == []


def test_a_callable_scorer_reading_a_missing_method_fails_with_a_typed_error(clf_data):
    """A plain callable does not name its method: the fold's ``AttributeError`` becomes an
    ``InvalidParameterError`` that names the fold's ``lam`` and the way out."""
    X, y = clf_data

    def proba_scorer(est, X, y):
        return float(np.mean(est.predict_proba(X)[:, 1]))

    est = ConvexGatedReLUClassifier(loss="squared", n_gates=3, random_state=0)
    with pytest.raises(E.InvalidParameterError, match=r"failed on a fold at lam=1.*loss='logistic'"):
        E.cross_validate_lam(est, X, y, [1.0], cv=2, scoring=proba_scorer)


def test_rebound_warm_start_drops_the_old_datas_multipliers():
    """A warm start moved to other data must not carry the old data's multipliers: they were set
    to None but refilled from ``extra`` when the solution was rebuilt, so a fold's multipliers
    reached the next fit."""
    import cvxnn
    from cvxnn.estimators import _rebind_warm_start

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = np.maximum(X @ np.array([1.0, -1.0, 0.5]), 0.0)
    P = cvxnn.sample_patterns(X, 4, seed=0)
    sol = cvxnn.solve(X, y, lam=0.1, activation="relu", patterns=P)
    assert sol.multipliers is not None and "multipliers" in sol.extra
    X2 = rng.standard_normal((30, 3))
    moved = _rebind_warm_start(sol, cvxnn.Patterns.from_gates(X2, P.gates, bias=P.bias))
    assert moved.multipliers is None and moved.dual_value is None and moved.cone_duals is None
    assert "multipliers" not in moved.extra and "dual_value" not in moved.extra
    np.testing.assert_array_equal(moved.V, sol.V)
