"""The *CV estimators: lam chosen by cross-validation on one warm-started path per fold."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold  # noqa: E402

from cvxnn import (  # noqa: E402
    ConvexGatedReLUClassifier,
    ConvexGatedReLUClassifierCV,
    ConvexGatedReLURegressor,
    ConvexGatedReLURegressorCV,
    ConvexReLUClassifierCV,
    ConvexReLURegressor,
    ConvexReLURegressorCV,
)
from cvxnn.errors import ConvergenceWarning, CvxnnError, InvalidParameterError, NotFittedError  # noqa: E402


@pytest.fixture(scope="module")
def clf_data():
    return make_classification(n_samples=120, n_features=5, n_informative=3, random_state=0)


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(n_samples=80, n_features=4, noise=5.0, random_state=1)
    return X, y + 0.05 * y ** 2


def test_lam_equals_grid_search(clf_data):
    """Same grid, folds and gates: the path-per-fold choice is GridSearchCV's (cold fits)."""
    X, y = clf_data
    cv = StratifiedKFold(3)
    est = ConvexGatedReLUClassifierCV(n_lams=6, cv=cv, n_gates=8, random_state=0, cv_tol=None).fit(X, y)
    grid = GridSearchCV(ConvexGatedReLUClassifier(n_gates=8, random_state=0), {"lam": list(est.lams_)},
                        cv=cv).fit(X, y)
    mean = grid.cv_results_["mean_test_score"]
    assert est.lam_ == pytest.approx(grid.best_params_["lam"]) or \
        abs(mean[est.best_index_] - mean.max()) <= 0.005
    np.testing.assert_allclose(est.mean_score_, mean, atol=0.005)
    # fold fits at the default cv_tol: a lam whose (full-precision) CV score is within 0.005 of
    # the best, and the refit is at tol
    loose = ConvexGatedReLUClassifierCV(n_lams=6, cv=cv, n_gates=8, random_state=0).fit(X, y)
    assert loose.cv_tol == "auto" and loose.cv_tol_ == 1e-2  # 40-sample validation folds
    assert mean.max() - mean[loose.best_index_] <= 0.005
    assert loose.best_estimator_.tol == est.best_estimator_.tol == ConvexGatedReLUClassifier().tol


def _path_by_full_fits(est, X, y, train, test, lams):
    """A fold's path the plain way: every lam a full ``_fit`` (validation, standardizing, patterns)
    warm-started from the previous one, scored by ``score``."""
    from sklearn.base import clone

    from cvxnn.path import walk_path

    est = clone(est)
    out = {}

    def fit(lam, warm):
        est.set_params(lam=lam)
        est._fit(X[train], y[train], warm_start=warm)
        return est.solution_

    for step in walk_path(lams, fit):
        out[step.index] = (est.score(X[test], y[test]), est.status_, est.objective_,
                           est.network_.predict(X[test]))
    return out


@pytest.mark.parametrize("make", [
    lambda: ConvexGatedReLUClassifier(n_gates=8, random_state=0, tol=1e-2),
    lambda: ConvexGatedReLUClassifier(n_gates=8, random_state=0, tol=1e-2, class_weight="balanced"),
    lambda: ConvexReLURegressor(n_gates=6, random_state=1),
    lambda: ConvexGatedReLURegressor(n_gates=6, random_state=1, bias=False),
])
def test_fold_path_shares_its_preparation_exactly(clf_data, reg_data, make):
    """The fold path validates and encodes once and shares the standardizer, the standardized data
    and the patterns between its fits: the same fits, bit for bit, as full fits warm-started along
    the same grid (and the patterns it shares are those a fit would sample)."""
    from sklearn.base import is_classifier

    from cvxnn.estimators import _cv_segment

    est = make()
    X, y = clf_data if is_classifier(est) else reg_data
    if is_classifier(est):
        y = np.where(np.arange(y.size) % 4 == 0, 1, y)  # unbalanced, so class weights matter
    train, test = np.arange(0, y.size, 3), np.setdiff1d(np.arange(y.size), np.arange(0, y.size, 3))
    train = np.concatenate([train, test[: test.size // 2]])
    test = test[test.size // 2:]
    lams = np.array([0.3, 3.0, 0.03, 1.0])
    ref = _path_by_full_fits(est, X, y, train, test, lams)
    scores, statuses, kept = _cv_segment(est, X, y, train, test, lams)
    assert kept == [None] * lams.size  # the fold solutions are kept only when asked
    for k in range(lams.size):
        assert scores[k] == ref[k][0] and statuses[k] == ref[k][1]
    # what the first fit stores for the others is what a plain fit prepares for itself
    cold = make().set_params(lam=float(lams.min())).fit(X[train], y[train])
    shared = make()
    prepared: dict = {}
    Xt, yt, loss, w, extra = shared._encode_for_fit(X[train], y[train], None)
    shared.set_params(lam=float(lams.min()))
    shared._fit_encoded(Xt, yt, loss, sample_weight=w, extra=extra, prepared=prepared)
    np.testing.assert_array_equal(prepared["patterns"].mask, cold.patterns_.mask)
    np.testing.assert_array_equal(prepared["patterns"].gates, cold.patterns_.gates)
    assert shared.objective_ == cold.objective_
    np.testing.assert_array_equal(shared.predict(X[test]), cold.predict(X[test]))


@pytest.mark.parametrize("cv_tol", [0, 1.5, -1e-3, True, "loose", "AUTO", float("nan")])
def test_cv_tol_validated(clf_data, cv_tol):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="cv_tol"):
        ConvexGatedReLUClassifierCV(n_lams=3, cv=3, n_gates=4, cv_tol=cv_tol).fit(X, y)


@pytest.fixture
def fold_tols(monkeypatch):
    """The ``tol`` of the estimator each ``_cross_validate`` call gets (the fold fits')."""
    import cvxnn.estimators as E

    seen = []
    real = E._cross_validate

    def spy(estimator, *args, **kwargs):
        seen.append(estimator.tol)
        return real(estimator, *args, **kwargs)

    monkeypatch.setattr(E, "_cross_validate", spy)
    return seen


@pytest.mark.parametrize(("tol", "cv_tol", "expected"), [(1e-4, 1e-2, 1e-2), (1e-4, None, 1e-4),
                                                         (1e-1, 1e-2, 1e-1)])
def test_fold_fits_use_the_looser_of_tol_and_cv_tol(clf_data, fold_tols, tol, cv_tol, expected):
    """The fold fits run at max(tol, cv_tol); the refit at tol."""
    X, y = clf_data
    est = ConvexGatedReLUClassifierCV(n_lams=3, cv=3, n_gates=4, random_state=0, tol=tol, cv_tol=cv_tol).fit(X, y)
    assert fold_tols == [expected]
    assert est.best_estimator_.tol == tol
    assert est.cv_tol == cv_tol  # not modified by fit
    assert est.cv_tol_ == expected


@pytest.mark.parametrize(("n_samples", "n_folds", "expected"), [(120, 3, 1e-2), (300, 3, 5e-2), (300, 2, 5e-2),
                                                                (300, 4, 1e-2), (301, 3, 5e-2)])
def test_auto_cv_tol_follows_the_smallest_validation_fold(fold_tols, n_samples, n_folds, expected):
    """cv_tol='auto': 5e-2 when every validation fold holds >= 100 samples, else 1e-2."""
    import cvxnn.estimators as E

    X, y = make_classification(n_samples=n_samples, n_features=4, n_informative=3, n_redundant=0, random_state=0)
    est = ConvexGatedReLUClassifierCV(n_lams=2, cv=n_folds, n_gates=4, random_state=0, tol=1e-4).fit(X, y)
    assert fold_tols == [expected] and est.cv_tol_ == expected
    assert (E.CV_TOL_LOOSE, E.CV_TOL_TIGHT, E.CV_TOL_MIN_VALIDATION) == (5e-2, 1e-2, 100)
    # an explicit float is used as given
    est = ConvexGatedReLUClassifierCV(n_lams=2, cv=n_folds, n_gates=4, random_state=0, tol=1e-4,
                                      cv_tol=2e-2).fit(X, y)
    assert fold_tols[-1] == est.cv_tol_ == 2e-2


def test_auto_cv_tol_counts_boolean_validation_masks(fold_tols):
    """Folds given as boolean masks: the validation samples are counted, not the mask length."""
    X, y = make_classification(n_samples=300, n_features=4, n_informative=3, n_redundant=0, random_state=0)
    test = np.zeros(300, dtype=bool)
    test[::4] = True  # 75 validation samples in a mask of 300
    est = ConvexGatedReLUClassifierCV(n_lams=2, cv=[(~test, test)], n_gates=4, random_state=0, tol=1e-4).fit(X, y)
    assert fold_tols == [1e-2] and est.cv_tol_ == 1e-2


def test_attributes_and_grid(clf_data):
    X, y = clf_data
    est = ConvexGatedReLUClassifierCV(n_lams=4, cv=3, n_gates=8, random_state=0).fit(X, y)
    assert est.scores_.shape == (3, 4)
    assert est.lams_.shape == (4,) and np.all(np.diff(est.lams_) < 0)
    assert est.lam_ in est.lams_
    assert est.mean_score_.shape == est.std_score_.shape == (4,)
    # the default grid starts at the exact lam_max: the zero model, chance-level accuracy
    assert est.best_estimator_.lam == est.lam_
    for name in ("network_", "solution_", "objective_", "classes_", "n_features_in_", "gap_"):
        assert hasattr(est, name), name
    np.testing.assert_array_equal(est.classes_, [0, 1])
    # given lams are sorted decreasing
    est2 = ConvexGatedReLUClassifierCV(lams=[0.1, 10.0, 1.0], cv=2, n_gates=8, random_state=0).fit(X, y)
    np.testing.assert_array_equal(est2.lams_, [10.0, 1.0, 0.1])


def test_predictions_equal_base_fit_at_lam(clf_data, monkeypatch):
    """The refit is the base estimator's fit at lam_: bit for bit from a cold start
    (REFIT_WARM off), and the same certified optimum from the folds' mean (the default)."""
    import cvxnn.estimators as E

    X, y = clf_data
    base = None
    for warm in (False, True):
        monkeypatch.setattr(E, "REFIT_WARM", warm)
        est = ConvexGatedReLUClassifierCV(n_lams=4, cv=3, n_gates=8, random_state=0, tol=1e-8).fit(X, y)
        if base is None:
            base = ConvexGatedReLUClassifier(lam=est.lam_, n_gates=8, random_state=0, tol=1e-8).fit(X, y)
        assert est.status_ == base.status_ == "optimal"
        np.testing.assert_array_equal(est.predict(X), base.predict(X))
        if not warm:
            np.testing.assert_allclose(est.predict_proba(X), base.predict_proba(X), rtol=1e-10)
            np.testing.assert_allclose(est.decision_function(X), base.decision_function(X), rtol=1e-10)
        else:  # another point of the same optimal set, within the certified tolerance
            assert abs(est.objective_ - base.objective_) <= 2e-8 * abs(base.objective_)
            np.testing.assert_allclose(est.predict_proba(X), base.predict_proba(X), atol=1e-4)
        assert est.score(X, y) == base.score(X, y)


def test_relu_regressor(reg_data):
    """One C-ReLU test: the refit model is the base estimator at lam_, scoring is honoured."""
    X, y = reg_data
    est = ConvexReLURegressorCV(n_lams=3, cv=KFold(2), n_gates=6, random_state=0,
                                scoring="neg_mean_absolute_error").fit(X, y)
    assert np.all(est.scores_ <= 0)  # negated errors, not R^2
    base = ConvexReLURegressor(lam=est.lam_, n_gates=6, random_state=0).fit(X, y)
    np.testing.assert_allclose(est.predict(X), base.predict(X), rtol=1e-10, atol=1e-10)
    assert est.n_active_neurons_ == base.n_active_neurons_


def test_n_jobs_two_equals_one(reg_data):
    X, y = reg_data
    kw = dict(n_lams=4, cv=3, n_gates=8, random_state=0)
    one = ConvexGatedReLURegressorCV(n_jobs=1, **kw).fit(X, y)
    two = ConvexGatedReLURegressorCV(n_jobs=2, **kw).fit(X, y)
    np.testing.assert_allclose(one.scores_, two.scores_, rtol=1e-12)
    assert one.lam_ == two.lam_
    np.testing.assert_allclose(one.predict(X), two.predict(X), rtol=1e-12)


def test_refit_false_and_not_fitted(reg_data):
    X, y = reg_data
    est = ConvexGatedReLURegressorCV(n_lams=2, cv=2, n_gates=4, random_state=0)
    with pytest.raises(NotFittedError):
        est.predict(X)
    est.set_params(refit=False).fit(X, y)
    assert est.lam_ in est.lams_ and not hasattr(est, "best_estimator_")
    with pytest.raises(NotFittedError, match="refit=False"):
        est.predict(X)


def _check(est):
    from sklearn.utils import estimator_checks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", estimator_checks.SkipTestWarning)
        if "expected_failed_checks" in inspect.signature(estimator_checks.check_estimator).parameters:
            estimator_checks.check_estimator(est, expected_failed_checks={
                "check_sample_weight_equivalence_on_dense_data":
                    "repeated rows change the folds (as for LassoCV); see test_zero_weights_equal_removed_rows"})
        else:  # pragma: no cover - scikit-learn < 1.6
            estimator_checks.check_estimator(est)


def test_check_estimator_classifier():
    """scikit-learn's checks; a short grid and 2 folds keep them fast."""
    _check(ConvexGatedReLUClassifierCV(n_lams=2, lam_min_ratio=0.01, cv=2, n_gates=8, random_state=0,
                                       tol=1e-4))


def test_check_estimator_regressor():
    _check(ConvexGatedReLURegressorCV(n_lams=3, cv=2, n_gates=8, random_state=0, tol=1e-4))


@pytest.mark.parametrize("params, match", [
    (dict(cv="three"), "cv"),
    (dict(cv=1), "cv"),
    (dict(cv=KFold(500)), "cv"),
    (dict(lams=[]), "lams"),
    (dict(lams=[1.0, -1.0]), "lams"),
    (dict(lams=[1.0, 0.0]), r"lams\[1\] must be > 0.*backend='clarabel'"),
    (dict(lams=[np.nan]), "lams"),
    (dict(lams="abc"), "lams"),
    (dict(n_lams=0), "n_lams"),
    (dict(lam_min_ratio=2.0), "lam_min_ratio"),
    (dict(refit="yes"), "refit"),
])
def test_bad_parameters_raise(reg_data, params, match):
    X, y = reg_data
    est = ConvexGatedReLURegressorCV(n_gates=4, random_state=0, **params)
    with pytest.raises(CvxnnError, match=match):  # InvalidParameterError; NonFiniteError for nan
        est.fit(X, y)
    assert not hasattr(est, "lams_")


def test_zero_in_lams_is_refused_before_any_fold_fit_on_the_native_backend_only(reg_data, monkeypatch):
    """A 0 in lams was refused by a fold's native solve, mid-run and as "lam"; now up front,
    naming lams[k]. A CVXPY backend solves lam = 0, so there the grid is accepted."""
    import cvxnn.estimators as E

    X, y = reg_data
    calls = []
    real = E._cv_segment
    monkeypatch.setattr(E, "_cv_segment", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(InvalidParameterError, match=r"lams\[1\] must be > 0"):
        ConvexGatedReLURegressorCV(lams=[1.0, 0.0], n_gates=4, random_state=0, cv=2).fit(X, y)
    assert not calls
    est = ConvexGatedReLURegressorCV(lams=[1.0, 0.0], n_gates=4, random_state=0, cv=2,
                                     backend="clarabel").fit(X[:40], y[:40])
    assert set(est.lams_) == {1.0, 0.0}


def test_failed_refit_keeps_previous_state(reg_data):
    """Transactional: a fit that fails validation leaves the previous fit in place."""
    X, y = reg_data
    est = ConvexGatedReLURegressorCV(n_lams=2, cv=2, n_gates=4, random_state=0).fit(X, y)
    lam, pred = est.lam_, est.predict(X)
    est.set_params(cv="bad")
    with pytest.raises(InvalidParameterError):
        est.fit(X, y)
    assert est.lam_ == lam
    np.testing.assert_array_equal(est.predict(X), pred)


def test_default_grid_starts_at_lam_max(reg_data):
    """The default grid's first value is the exact lam_max: the zero model (R^2 <= 0 held out)."""
    X, y = reg_data
    est = ConvexGatedReLURegressorCV(n_lams=3, cv=2, n_gates=8, random_state=0).fit(X, y)
    assert np.all(est.scores_[:, 0] <= 1e-8)
    np.testing.assert_allclose(est.lams_[-1] / est.lams_[0], 1e-3)
    assert isinstance(est.best_estimator_, ConvexGatedReLURegressor)


# ------------------------------------------------------------------ the refit's start point
def _fold_part(make, X, y, train, lam):
    from cvxnn.estimators import _FoldSolution

    est = make().set_params(lam=lam).fit(X[train], y[train])
    return est, _FoldSolution.of(est)


@pytest.mark.parametrize("make", [lambda: ConvexGatedReLUClassifier(n_gates=10, random_state=3),
                                  lambda: ConvexGatedReLURegressor(n_gates=10, random_state=3)])
def test_refit_start_maps_a_fold_solution_to_the_full_standardization(clf_data, reg_data, make, monkeypatch):
    """One fold's solution, moved to the standardization of all the data (REFIT_RTOL = 0 keeps
    every atom): each block computes the same function of raw X as the fold's block with the
    same gate, times the ratio of the target scales (regression)."""
    from sklearn.base import is_classifier

    import cvxnn.estimators as E

    monkeypatch.setattr(E, "REFIT_RTOL", 0.0)
    base = make()
    X, y = clf_data if is_classifier(base) else reg_data
    train = np.arange(0, y.size, 2)
    fold, part = _fold_part(make, X, y, train, 0.05 * train.size)
    Xv, y_enc, loss, w, _ = base._encode_for_fit(X, y, None)
    start = E._refit_start(base.set_params(lam=1.0), Xv, y_enc, w, [part])
    assert start is not None and start.activation == "gated_relu"
    std_full, _, pats = base._prepare(Xv, w, y=y_enc)
    np.testing.assert_array_equal(start.patterns.gates, pats.gates)
    Xf = fold.standardizer_.transform(Xv)
    Xs = std_full.transform(Xv)
    Uf = fold.solution_.U if fold.solution_.U.ndim == 3 else fold.solution_.U[:, :, None]
    Us = start.U if start.U.ndim == 3 else start.U[:, :, None]
    ratio = 1.0 if fold.standardizer_.y_scale_ is None else fold.standardizer_.y_scale_ / std_full.y_scale_
    full_index = {pats.gates[:, j].tobytes(): j for j in range(pats.n_patterns)}
    active = np.flatnonzero(np.abs(Uf).max(axis=(0, 2)) > 0)
    assert active.size
    for i in active:
        j = full_index[fold.patterns_.gates[:, i].tobytes()]
        np.testing.assert_allclose(fold.patterns_.design(Xs) @ Us[:, j, :],
                                   fold.patterns_.design(Xf) @ Uf[:, i, :] * ratio,
                                   rtol=1e-9, atol=1e-9 * np.abs(Uf).max())


def test_refit_start_is_the_mean_of_the_folds_cut_at_refit_rtol(clf_data):
    """Two folds' solutions: the start is their mean (on the refit's blocks), re-factored and
    cut to the singular values above REFIT_RTOL of the largest."""
    import cvxnn.estimators as E
    from cvxnn.native._atoms import atoms_from_blocks

    X, y = clf_data
    make = lambda: ConvexGatedReLUClassifier(n_gates=10, random_state=3, standardize=False)  # noqa: E731
    parts = [_fold_part(make, X, y, idx, 3.0)[1] for idx in (np.arange(0, 120, 2), np.arange(1, 120, 2))]
    base = make().set_params(lam=3.0)
    Xv, y_enc, loss, w, _ = base._encode_for_fit(X, y, None)
    start = E._refit_start(base, Xv, y_enc, w, parts)
    pats = start.patterns
    index = {pats.gates[:, j].tobytes(): j for j in range(pats.n_patterns)}
    mean = np.zeros((pats.design_dim, pats.n_patterns))
    for part in parts:
        assert part.blocks.shape[1] == part.gates.shape[1] and np.all(np.abs(part.blocks).max(axis=(0, 2)) > 0)
        for k in range(part.gates.shape[1]):
            j = index.get(part.gates[:, k].tobytes())
            if j is not None:
                mean[:, j] += part.blocks[:, k, 0] / len(parts)
    norms = np.linalg.norm(mean, axis=0)
    keep = norms > E.REFIT_RTOL * norms.max()
    assert 0 < keep.sum() < norms.size
    np.testing.assert_allclose(start.U[:, keep], mean[:, keep], rtol=1e-10, atol=1e-12)
    assert not start.U[:, ~keep].any()
    assert atoms_from_blocks(start.U[:, :, None]).size == keep.sum()


def test_refit_start_needs_every_fold_and_shared_gates(clf_data):
    import cvxnn.estimators as E

    X, y = clf_data
    make = lambda: ConvexGatedReLUClassifier(n_gates=10, random_state=3)  # noqa: E731
    part = _fold_part(make, X, y, np.arange(0, 120, 2), 3.0)[1]
    base = make().set_params(lam=3.0)
    Xv, y_enc, loss, w, _ = base._encode_for_fit(X, y, None)
    assert E._refit_start(base, Xv, y_enc, w, []) is None
    assert E._refit_start(base, Xv, y_enc, w, [part, None]) is None  # a fold kept nothing
    other = ConvexGatedReLUClassifier(n_gates=10, random_state=4).set_params(lam=3.0)  # other gates
    assert E._refit_start(other, Xv, y_enc, w, [part]) is None


def test_cv_refits_from_the_folds_for_gated_and_cold_for_relu(clf_data, reg_data, monkeypatch):
    """The gated CV estimators start their refit from the folds (and certify it); the C-ReLU ones
    keep no fold solutions and refit cold."""
    import cvxnn.estimators as E

    starts = []
    real = E._refit_start

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        starts.append(out)
        return out

    monkeypatch.setattr(E, "_refit_start", spy)
    X, y = clf_data
    est = ConvexGatedReLUClassifierCV(n_lams=4, cv=3, n_gates=8, random_state=0).fit(X, y)
    assert starts[-1] is not None and est.status_ == "optimal"
    Xr, yr = reg_data
    relu = ConvexReLURegressorCV(n_lams=2, cv=KFold(2), n_gates=6, random_state=0).fit(Xr, yr)
    assert starts[-1] is None and relu.status_ == "optimal"
    n = len(starts)
    ConvexGatedReLURegressorCV(n_lams=2, cv=2, n_gates=4, random_state=0, refit=False).fit(Xr, yr)
    assert len(starts) == n  # no refit, no start


# ------------------------------------------------------------------------- sample weights
def test_unit_weights_change_nothing(clf_data):
    X, y = clf_data
    kw = dict(n_lams=3, cv=3, n_gates=8, random_state=0, tol=1e-4)
    a = ConvexGatedReLUClassifierCV(**kw).fit(X, y)
    b = ConvexGatedReLUClassifierCV(**kw).fit(X, y, sample_weight=np.ones(len(y)))
    assert np.array_equal(a.scores_, b.scores_) and a.lam_ == b.lam_
    assert np.array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("make", ["clf", "reg"])
def test_zero_weights_equal_removed_rows(clf_data, reg_data, make):
    # weight 0 removes a sample exactly: with the same training and validation rows otherwise,
    # the grid, the fold fits, the validation scores and the refit are those of the data without it
    if make == "clf":
        X, y = clf_data
        cls, splitter = ConvexGatedReLUClassifierCV, StratifiedKFold(3, shuffle=True, random_state=0)
    else:
        X, y = reg_data
        cls, splitter = ConvexGatedReLURegressorCV, KFold(3, shuffle=True, random_state=0)
    n = len(y)
    w = np.ones(n)
    w[::7] = 0.0
    keep = np.flatnonzero(w > 0)
    folds = list(splitter.split(X, y))
    new_index = -np.ones(n, dtype=int)
    new_index[keep] = np.arange(keep.size)
    reduced = [(new_index[tr][w[tr] > 0], new_index[te][w[te] > 0]) for tr, te in folds]
    # (the grid stops at 0.05 lam_max: below it the regression folds overfit, with validation R^2
    # of -4.7 that moves by 3e-3 between two certified optima within tol of each other)
    kw = dict(n_lams=3, lam_min_ratio=0.05, n_gates=8, random_state=0, tol=1e-6)
    a = cls(cv=folds, **kw).fit(X, y, sample_weight=w)
    b = cls(cv=reduced, **kw).fit(X[keep], y[keep])
    assert np.allclose(a.lams_, b.lams_, rtol=1e-12)
    assert np.allclose(a.scores_, b.scores_, atol=1e-6)
    assert a.best_index_ == b.best_index_ and a.lam_ == pytest.approx(b.lam_, rel=1e-12)
    assert np.allclose(a.predict(X), b.predict(X), rtol=1e-4, atol=1e-4 * np.abs(b.predict(X)).max())


def test_validation_scores_and_refit_are_weighted(clf_data):
    X, y = clf_data
    w = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    seen = []

    def scorer(est, Xv, yv, sample_weight=None):
        seen.append(sample_weight)
        return float(np.average(est.predict(Xv) == yv, weights=sample_weight))

    kw = dict(lams=[30.0, 3.0], n_gates=8, random_state=0, tol=1e-6)
    cv = ConvexGatedReLUClassifierCV(cv=folds, scoring=scorer, **kw).fit(X, y, sample_weight=w)
    # the scorer got each fold's validation weights, once per lam
    assert len(seen) == 2 * len(folds)
    for k, (_, te) in enumerate(folds):
        assert np.array_equal(seen[2 * k], w[te]) and np.array_equal(seen[2 * k + 1], w[te])
    # the default score is the same weighted accuracy
    default = ConvexGatedReLUClassifierCV(cv=folds, **kw).fit(X, y, sample_weight=w)
    assert np.allclose(default.scores_, cv.scores_, atol=1e-12)
    # and one fold's score is that of a weighted fit on its training rows
    tr, te = folds[0]
    one = ConvexGatedReLUClassifier(lam=3.0, n_gates=8, random_state=0, tol=1e-6).fit(
        X[tr], y[tr], sample_weight=w[tr])
    assert cv.scores_[0, 1] == pytest.approx(one.score(X[te], y[te], sample_weight=w[te]), abs=1e-12)
    # the refit is the weighted fit at lam_
    ref = ConvexGatedReLUClassifier(lam=cv.lam_, n_gates=8, random_state=0, tol=1e-6).fit(X, y, sample_weight=w)
    assert cv.best_estimator_.convex_objective_ == pytest.approx(ref.convex_objective_, rel=1e-5)


def test_cross_validate_lam_takes_weights(reg_data):
    from cvxnn.estimators import cross_validate_lam

    X, y = reg_data
    w = np.linspace(0.5, 2.0, len(y))
    est = ConvexGatedReLURegressor(n_gates=8, random_state=0, tol=1e-6)
    folds = list(KFold(2, shuffle=True, random_state=0).split(X))
    res = cross_validate_lam(est, X, y, [10.0, 1.0], cv=folds, sample_weight=w)
    tr, te = folds[1]
    one = ConvexGatedReLURegressor(lam=1.0, n_gates=8, random_state=0, tol=1e-6).fit(X[tr], y[tr], sample_weight=w[tr])
    # (the fold fit is warm-started from lam = 10: another certified point within tol)
    assert res.scores[1, 1] == pytest.approx(one.score(X[te], y[te], sample_weight=w[te]), abs=1e-4)


@pytest.mark.parametrize("weights, error, match", [
    (np.ones(5), "ShapeError", "sample_weight"),
    (np.r_[np.nan, np.ones(79)], "NonFiniteError", "NaN"),
    (np.r_[-1.0, np.ones(79)], "InvalidParameterError", "non-negative"),
    (np.zeros(80), "InvalidParameterError", "zero"),
])
def test_bad_weights_raise_typed_errors(reg_data, weights, error, match):
    from cvxnn import errors

    X, y = reg_data
    with pytest.raises(getattr(errors, error), match=match):
        ConvexGatedReLURegressorCV(n_lams=2, cv=2, n_gates=4, random_state=0).fit(X, y, sample_weight=weights)


def test_a_fold_without_weight_is_refused(reg_data):
    X, y = reg_data
    w = np.ones(len(y))
    folds = list(KFold(2).split(X))
    w[folds[0][1]] = 0.0  # the first validation fold weighs nothing
    with pytest.raises(InvalidParameterError, match="fold 0: every validation sample"):
        ConvexGatedReLURegressorCV(n_lams=2, cv=folds, n_gates=4, random_state=0).fit(X, y, sample_weight=w)


def test_more_folds_than_samples_is_a_typed_error():
    from cvxnn.errors import InvalidParameterError
    from cvxnn.estimators import ConvexGatedReLUClassifier, cross_validate_lam

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    y = np.r_[np.zeros(17), np.ones(3)].astype(int)
    with pytest.raises(InvalidParameterError, match="cannot split"):
        cross_validate_lam(ConvexGatedReLUClassifier(n_gates=8, random_state=0), X, y, [1.0, 0.1], cv=25)


def test_a_column_y_is_scored_as_a_vector():
    """cross_validate_lam flattens a column y as the fits do (its fold scores compared (m,)
    predictions with an (m, 1) column: an (m, m) broadcast, about 1 / n_classes everywhere)."""
    from sklearn.datasets import load_iris

    from cvxnn.estimators import DataConversionWarning, cross_validate_lam

    X, y = load_iris(return_X_y=True)
    est = ConvexGatedReLUClassifier(n_gates=16, random_state=0)
    lams = [10.0, 1.0]
    flat = cross_validate_lam(est, X, y, lams, cv=3)
    with pytest.warns(DataConversionWarning):
        col = cross_validate_lam(est, X, y[:, None], lams, cv=3)
    np.testing.assert_array_equal(col.scores, flat.scores)


@pytest.mark.parametrize("cls", [ConvexGatedReLUClassifierCV, ConvexGatedReLURegressorCV])
def test_a_column_y_warns_once(cls):
    """A column y gets one DataConversionWarning from the CV estimator's fit (the refit
    repeated it), and the same model as the flat y."""
    from cvxnn.estimators import DataConversionWarning

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = (X[:, 0] > 0).astype(int) if cls is ConvexGatedReLUClassifierCV else X[:, 0] ** 2
    kw = {"n_gates": 8, "random_state": 0, "lams": [1.0, 0.1], "cv": 3}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        col = cls(**kw).fit(X, y[:, None])
    assert [w.category for w in caught if issubclass(w.category, DataConversionWarning)] == [DataConversionWarning]
    flat = cls(**kw).fit(X, y)
    np.testing.assert_allclose(col.predict(X), flat.predict(X))


def test_leave_one_out_r2_is_a_typed_error(reg_data):
    from sklearn.model_selection import LeaveOneOut

    from cvxnn.estimators import cross_validate_lam

    X, y = reg_data
    with pytest.raises(InvalidParameterError, match="NaN"):
        cross_validate_lam(ConvexGatedReLURegressor(n_gates=8, random_state=0), X[:12], y[:12], [1.0, 0.1],
                           cv=LeaveOneOut())


@pytest.mark.parametrize("cls", [ConvexReLUClassifierCV, ConvexGatedReLUClassifierCV])
def test_default_grid_starts_at_the_exact_lam_max_of_the_program(cls):
    """Multi-class grids start at the lam_max of the program the estimator solves (C-ReLU:
    one-vs-all; it used the gated bound, about 2x higher on iris, so the top values fit zero)."""
    from sklearn.datasets import load_iris

    from cvxnn.activations import get_activation
    from cvxnn.estimators import _solver_targets
    from cvxnn.path import lam_max

    X, y = load_iris(return_X_y=True)
    cv = cls(n_gates=12, random_state=0, n_lams=3, cv=3).fit(X, y)
    base = cv._base_cls(n_gates=12, random_state=0)
    Y = np.eye(3)[y]
    std, Xs, pats = base._prepare(X, None, y=Y)
    act = base._activation
    exact = lam_max(Xs, _solver_targets(std, Y), pats, act, "cross_entropy",
                    formulation=get_activation(act).vector_formulation)
    assert cv.lams_[0] == pytest.approx(exact, rel=1e-9)


def test_relu_cv_grid_drops_zero_weight_rows_like_every_fit():
    """A zero weight removes a sample: the ReLU grid's exact lam_max must not see its cones
    (it was 13.3 against 18.2 without those rows, and the fit at lams_[0] was not zero)."""
    from cvxnn.estimators import ConvexReLURegressorCV

    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 3))
    y = np.maximum(X[:, 0] - X[:, 1], 0) + 0.1 * rng.standard_normal(60)
    w = np.ones(60)
    w[:15] = 0.0
    kw = dict(n_gates=8, random_state=0, n_lams=3, cv=2, refit=False)
    a = ConvexReLURegressorCV(**kw).fit(X, y, sample_weight=w)
    b = ConvexReLURegressorCV(**kw).fit(X[15:], y[15:])
    np.testing.assert_allclose(a.lams_, b.lams_, rtol=1e-9)


def test_fold_indices_outside_the_data_are_a_typed_error():
    from cvxnn.errors import InvalidParameterError
    from cvxnn.estimators import ConvexGatedReLURegressor, ConvexGatedReLURegressorCV, cross_validate_lam

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((25, 3)), rng.standard_normal(25)
    bad = [(np.arange(20), np.arange(20, 40))]
    with pytest.raises(InvalidParameterError, match="outside"):
        ConvexGatedReLURegressorCV(n_gates=4, n_lams=2, cv=bad).fit(X, y)
    with pytest.raises(InvalidParameterError, match="outside"):
        cross_validate_lam(ConvexGatedReLURegressor(n_gates=4), X, y, [1.0, 0.1], cv=bad)
    with pytest.raises(InvalidParameterError, match="mask"):
        ConvexGatedReLURegressorCV(n_gates=4, n_lams=2, cv=[(np.ones(10, bool), np.ones(10, bool))]).fit(X, y)
    with pytest.raises(InvalidParameterError, match="no validation rows"):
        ConvexGatedReLURegressorCV(n_gates=4, n_lams=2, cv=[(np.arange(25), np.array([], dtype=int))]).fit(X, y)
    masks = [(np.arange(25) < 15, np.arange(25) >= 15)]  # boolean masks of the right length work
    assert ConvexGatedReLURegressorCV(n_gates=4, n_lams=2, cv=masks).fit(X, y).scores_.shape == (1, 2)


@pytest.mark.parametrize("n_jobs", [0, 1.5, True, "2"])
def test_n_jobs_is_validated(n_jobs):
    from cvxnn.errors import InvalidParameterError
    from cvxnn.estimators import ConvexGatedReLURegressor, ConvexGatedReLURegressorCV, cross_validate_lam

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal(30)
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        cross_validate_lam(ConvexGatedReLURegressor(n_gates=4), X, y, [1.0, 0.1], cv=3, n_jobs=n_jobs)
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        ConvexGatedReLURegressorCV(n_gates=4, n_lams=2, cv=3, n_jobs=n_jobs).fit(X, y)


def test_default_lam_grid_starts_at_the_exact_lam_max_of_the_fitted_program():
    """default_lam_grid (the ...CV estimators' and cvxnn path's grid): geometric from the exact
    lam_max of the program the estimator solves, where the fit is the zero model, and checked."""
    from cvxnn.errors import InvalidParameterError
    from cvxnn.estimators import ConvexReLUClassifier, default_lam_grid

    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 3))
    y = (X[:, 0] + 0.3 * rng.standard_normal(50) > 0.5).astype(int)
    est = ConvexReLUClassifier(n_gates=8, random_state=0, class_weight="balanced")
    Xv, y_enc, loss, w, _ = est._encode_for_fit(X, y, None)
    grid = default_lam_grid(est, Xv, y_enc, loss, w, 4, 1e-2)
    np.testing.assert_allclose(grid, grid[0] * np.geomspace(1.0, 1e-2, 4), rtol=1e-12)
    at = ConvexReLUClassifier(n_gates=8, random_state=0, class_weight="balanced", lam=grid[0] * (1 + 1e-6)).fit(X, y)
    below = ConvexReLUClassifier(n_gates=8, random_state=0, class_weight="balanced", lam=grid[0] * 0.9).fit(X, y)
    assert at.n_active_neurons_ == 0 and below.n_active_neurons_ > 0
    for n_lams, ratio in ((0, 1e-2), (4, 0.0), (4, "0.1"), (4, float("nan"))):
        with pytest.raises(InvalidParameterError):
            default_lam_grid(est, Xv, y_enc, loss, w, n_lams, ratio)


@pytest.mark.parametrize("verbose", [None, "loud", -1, 1.5])
def test_cross_validate_lam_verbose_is_validated(verbose):
    """verbose=None or 'loud' reached joblib and failed there with a bare TypeError."""
    from cvxnn.errors import InvalidParameterError
    from cvxnn.estimators import ConvexGatedReLURegressor, cross_validate_lam

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal(30)
    with pytest.raises(InvalidParameterError, match="verbose"):
        cross_validate_lam(ConvexGatedReLURegressor(n_gates=4), X, y, [1.0, 0.1], cv=3, verbose=verbose)


def test_a_rounding_level_lam_max_is_zero_for_the_default_grids():
    """Every input twice with opposite labels: the zero model fits, but lam_max came out as 5e-15
    of rounding; the default grid went down to 5e-18 and the ReLU CV ran for minutes. A
    constant target (lam_max exactly 0) was refused by the CV regressors."""
    import cvxnn
    from cvxnn.errors import InvalidParameterError
    from cvxnn.estimators import ConvexGatedReLUClassifierCV

    rng = np.random.default_rng(1)
    Xb = rng.standard_normal((40, 3))
    X = np.r_[Xb, Xb]
    y = np.r_[(Xb[:, 0] > 0).astype(int), 1 - (Xb[:, 0] > 0).astype(int)]
    from cvxnn.errors import DataWarning
    from cvxnn.estimators import ConvexGatedReLURegressorCV

    # the zero model is optimal at every lam on all the data: a nominal grid (as LassoCV), the
    # refit is zero; the warning does not claim the folds' fits are (on half the pairs they are not)
    with pytest.warns(DataWarning, match="lam_max is 0.*refit on all the data is the zero model"):
        cv = ConvexGatedReLUClassifierCV(random_state=0, cv=2).fit(X, y)
    assert cv.lams_[0] == 1.0 and cv.lam_ == 1.0 and cv.best_estimator_.n_active_neurons_ == 0
    with pytest.warns(DataWarning, match="lam_max is 0"):
        const = ConvexGatedReLURegressorCV(random_state=0, cv=2).fit(Xb, np.full(40, 3.5))
    np.testing.assert_allclose(const.predict(Xb), 3.5)
    pats = cvxnn.sample_patterns(X, 8, seed=0, bias=True)
    with pytest.raises(InvalidParameterError, match="lam_max is unavailable or 0"):
        cvxnn.regularization_path(X, 2.0 * y - 1.0, pats, activation="gated_relu", loss="logistic", n_lams=3)


def test_a_scorer_failing_on_a_fold_that_lacks_a_class_names_the_cause():
    """Custom folds whose training rows lack a class: a probability scorer raised scikit-learn's
    bare ValueError ("4 vs 3 classes"); the error says which fold, which lam and why."""
    from sklearn.datasets import make_classification

    from cvxnn.errors import InvalidParameterError
    from cvxnn.estimators import ConvexGatedReLUClassifierCV

    X, y = make_classification(200, 6, n_informative=4, n_classes=4, random_state=0)
    idx = np.arange(200)
    cv = [(idx[(y != 3) & (idx % 2 == 0)], idx[idx % 2 == 1]), (idx[idx % 2 == 1], idx[idx % 2 == 0])]
    with pytest.raises(InvalidParameterError, match=r"lack the class\(es\) \[3\].*stratified"):
        ConvexGatedReLUClassifierCV(random_state=0, cv=cv, n_lams=3, n_gates=8, scoring="neg_log_loss").fit(X, y)


def test_a_scorer_without_sample_weight_is_refused_when_weights_are_given(reg_data):
    """The folds' validation weights are passed to a callable scorer; one without the argument
    raised a bare TypeError in every fold. Without weights it is used as given."""
    from cvxnn.estimators import cross_validate_lam

    X, y = reg_data

    def neg_mse(est, X, y):
        return -float(np.mean((est.predict(X) - y) ** 2))

    est = ConvexGatedReLURegressor(n_gates=8, random_state=0)
    with pytest.raises(InvalidParameterError, match="without a sample_weight argument"):
        cross_validate_lam(est, X, y, [1.0, 0.1], cv=3, scoring=neg_mse, sample_weight=np.ones(len(y)))
    assert cross_validate_lam(est, X, y, [1.0, 0.1], cv=3, scoring=neg_mse).scores.shape == (3, 2)


@pytest.mark.parametrize("scoring", [["accuracy", "neg_log_loss"], {"acc": "accuracy"}, ("accuracy",)])
def test_multi_metric_scoring_is_refused_before_any_fit(scoring, monkeypatch):
    """A list or dict scoring (scikit-learn's multi-metric form) crashed with a bare TypeError
    in the first fold, after fits had run."""
    import cvxnn.estimators as est_mod

    X, y = make_classification(60, 4, n_informative=3, n_redundant=0, random_state=0)

    def no_fit(*args, **kwargs):
        raise AssertionError("a fold was fitted")

    monkeypatch.setattr(est_mod, "_cv_segment", no_fit)
    with pytest.raises(InvalidParameterError, match="single metric"):
        ConvexGatedReLUClassifierCV(n_gates=4, random_state=0, scoring=scoring, cv=3).fit(X, y)


def test_a_scorer_that_returns_no_number_is_named():
    X, y = make_classification(60, 4, n_informative=3, n_redundant=0, random_state=0)
    # a 0-d array is one number (scikit-learn's cross_validate takes it too)
    est = ConvexGatedReLUClassifierCV(n_gates=4, random_state=0, lams=[1.0, 0.1], cv=3,
                                      scoring=lambda est, X, y: np.asarray(est.score(X, y))).fit(X, y)
    assert est.scores_.dtype == float and np.all(np.isfinite(est.scores_))
    with pytest.raises(InvalidParameterError, match="returned dict.*not one number"):
        ConvexGatedReLUClassifierCV(n_gates=4, random_state=0, lams=[1.0], cv=3,
                                    scoring=lambda est, X, y: {"acc": est.score(X, y)}).fit(X, y)


@pytest.mark.parametrize("cls", [ConvexGatedReLUClassifierCV, ConvexReLUClassifierCV, ConvexGatedReLUClassifier])
def test_class_weight_dict_with_a_class_missing_from_a_fold(cls):
    """A class_weight dict naming a rare class failed every fold without it ('class_weight names
    the label 2, which is not in y'); scikit-learn ignores such labels when the dict weighs every
    class of the fold, and so does a fold now, silently."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import cross_val_score

    X, y = load_iris(return_X_y=True)
    X, y = X[:101], y[:101]  # class 2 has one row
    cw = {0: 1.0, 1: 1.0, 2: 5.0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cls is ConvexGatedReLUClassifier:
            scores = cross_val_score(cls(n_gates=4, random_state=0, class_weight=cw), X, y, cv=KFold(3))
            assert np.all(np.isfinite(scores))
        else:
            est = cls(n_gates=4, random_state=0, lams=[1.0, 0.1], cv=KFold(3), class_weight=cw).fit(X, y)
            assert np.all(np.isfinite(est.scores_))
            assert list(est.classes_) == [0, 1, 2]
    assert not any("class_weight" in str(w.message) for w in caught)


def test_fit_path_and_feature_path_refuse_a_rounding_level_lam_max():
    """Every input twice with opposite targets: lam_max is 1e-15 of rounding. ``fit_path`` and
    ``feature_path`` built their default grids down from it anyway (lam of 1e-18; the ReLU path
    ended 3 of 4 points at max_iterations, Clarabel's feature path reported gaps of 100 %);
    they refuse, as for a lam_max of exactly 0."""
    from cvxnn.errors import InvalidParameterError
    from cvxnn.estimators import ConvexGatedReLURegressor, ConvexReLURegressor
    from cvxnn.feature_penalties import FeatureGroupL2
    from cvxnn.feature_sparsity import feature_lam_max, feature_path
    from cvxnn.patterns import sample_patterns

    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((30, 4)), rng.standard_normal(30)
    X, y = np.vstack([A, A]), np.concatenate([b, -b])
    for cls in (ConvexGatedReLURegressor, ConvexReLURegressor):
        with pytest.raises(InvalidParameterError, match="lam_max is 0 for these data up to rounding"):
            cls(n_gates=8, random_state=0).fit_path(X, y, validation_data=(X, y))
    pats = sample_patterns(X, 8, seed=0)
    for act in ("gated_relu", "relu"):
        assert 0 < feature_lam_max(X, y, pats, FeatureGroupL2(), activation=act) < 1e-12
        with pytest.raises(InvalidParameterError, match="lam_max is 0 up to rounding"):
            feature_path(X, y, patterns=pats, penalty=FeatureGroupL2(), activation=act, n_lams=4)
    # ordinary data keep their default grids
    y2 = np.concatenate([b, b])
    fp = feature_path(X, y2, patterns=pats, penalty=FeatureGroupL2(), activation="gated_relu", n_lams=3)
    assert fp.lams[0] > 1e-3
