"""Estimators: standardization, sample/class weights, warm start, validation paths, typed
errors and transactional fits (the fitted state changes only when a fit succeeds)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cvxnn import get_loss, io
from cvxnn.datasets import load_teacher_regression, load_three_blobs
from cvxnn.errors import (
    CvxnnError,
    CvxnnWarning,
    InputError,
    InvalidParameterError,
    LabelError,
    MemoryBudgetError,
)
from cvxnn.estimators import (
    ConvexGatedReLUClassifier,
    ConvexGatedReLURegressor,
    ConvexReLUClassifier,
    ConvexReLURegressor,
)


@pytest.fixture(scope="module")
def teacher():
    X, y = load_teacher_regression()
    return X[:40], y[:40]


@pytest.fixture(scope="module")
def binary():
    X, labels = load_three_blobs()
    keep = labels != 2
    return X[keep][::2], labels[keep][::2]


def _fitted_state(est) -> dict:
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


# ------------------------------------------------------------------------ transactional fits
def test_failed_refit_leaves_the_model_intact(binary):
    X, y01 = binary
    clf = ConvexGatedReLUClassifier(lam=0.5, n_gates=8, random_state=0, backend="clarabel").fit(X, y01)
    before = _fitted_state(clf)
    pred = clf.predict(X)
    clf.set_params(lam=-1)
    with pytest.raises(InvalidParameterError, match="lam"):
        clf.fit(X, np.where(y01 == 1, "dog", "cat"))
    after = _fitted_state(clf)
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)  # not one attribute replaced
    np.testing.assert_array_equal(clf.predict(X), pred)
    assert set(clf.classes_) == {0, 1}
    # a refit with other features fails validation: nothing changes either
    clf.set_params(lam=0.5, standardize="yes")
    with pytest.raises(InvalidParameterError, match="standardize"):
        clf.fit(np.hstack([X, X]), y01)
    assert clf.n_features_in_ == X.shape[1] and clf.solution_ is before["solution_"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryBudgetError])
def test_interrupted_or_out_of_memory_solve_leaves_the_model_intact(binary, monkeypatch, exc):
    import cvxnn.estimators as E

    X, y01 = binary
    clf = ConvexReLUClassifier(lam=0.5, n_gates=8, random_state=0, backend="clarabel").fit(X, y01)
    before = _fitted_state(clf)

    def boom(*args, **kwargs):
        raise exc("injected during the solve")

    monkeypatch.setattr(E, "_call_solver", boom)
    with pytest.raises(exc):
        clf.fit(X[:, ::-1][:, :1], np.where(y01 == 1, "b", "a"))
    after = _fitted_state(clf)
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    fresh = ConvexReLUClassifier(backend="clarabel")
    with pytest.raises(exc):
        fresh.fit(X, y01)
    assert _fitted_state(fresh) == {}  # still unfitted


# ----------------------------------------------------------------------------- typed errors
def test_sparse_continuous_labels_and_huge_max_iter_are_typed_errors(teacher):
    sp = pytest.importorskip("scipy.sparse")
    X, y = teacher
    with pytest.raises(InputError, match="sparse X is not supported.*toarray"):
        ConvexReLURegressor().fit(sp.csr_matrix(X), y)
    with pytest.raises(LabelError, match="continuous.*Regressor"):
        ConvexReLUClassifier(backend="clarabel").fit(X, y)
    with pytest.raises(InvalidParameterError, match="max_iter.*2147483647"):
        ConvexReLURegressor(max_iter=2**40, backend="clarabel").fit(X, y)
    est = ConvexGatedReLURegressor(n_gates=4, random_state=0, backend="clarabel").fit(X, y)
    with pytest.raises(CvxnnError, match="sparse"):
        est.predict(sp.csr_matrix(X))
    with pytest.raises(InputError):
        ConvexReLURegressor().fit(X, y, sample_weight=np.ones(3))


def test_huge_sample_weights_are_refused_and_rescaling_them_is_the_same_fit(binary):
    # weights near 1e38 overflowed the float32 products: a bare LinAlgError (gated) or an
    # "optimal" ReLU classifier fitted to infinities (accuracy 1/3 on iris)
    from cvxnn.estimators import MAX_SAMPLE_WEIGHT, WeightedLoss

    X, y = binary
    w = np.ones(len(y))
    w[0] = 1e40
    for cls in (ConvexGatedReLUClassifier, ConvexReLUClassifier):
        with pytest.raises(InvalidParameterError, match="sample_weight reaches 1e\\+40.*common factor"):
            cls(n_gates=4, random_state=0).fit(X, y, sample_weight=w)
    with pytest.raises(InvalidParameterError, match="weights reaches"):
        WeightedLoss(base=get_loss("squared"), weights=np.full(3, 10 * MAX_SAMPLE_WEIGHT))
    # the advice holds: a common factor of the weights (lam="auto" follows them) is the same fit
    s = 1e25
    a = ConvexGatedReLUClassifier(n_gates=6, random_state=0, tol=1e-8).fit(X, y, sample_weight=np.full(len(y), s))
    b = ConvexGatedReLUClassifier(n_gates=6, random_state=0, tol=1e-8).fit(X, y)
    assert a.solution_.status == "optimal"
    np.testing.assert_allclose(a.decision_function(X), b.decision_function(X), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- standardize
def test_standardize_maps_back_to_raw_data_exactly_and_saves(teacher, tmp_path):
    X, y = teacher
    Xraw = X * np.array([1e4, 1.0, 1e-3, 50.0]) + np.array([3e4, -2.0, 0.0, 1e3])
    est = ConvexReLURegressor(lam=0.5, n_gates=12, random_state=0, backend="clarabel").fit(Xraw, y)
    std = est.standardizer_
    by_hand = ConvexReLURegressor(lam=0.5, n_gates=12, random_state=0, backend="clarabel",
                                  standardize=False).fit(std.transform(Xraw), std.transform_y(y))
    # the same program as on X and y standardized by hand; the raw network predicts in raw units
    assert est.objective_ == pytest.approx(by_hand.objective_, rel=1e-7)
    np.testing.assert_allclose(est.predict(Xraw), std.inverse_transform_y(by_hand.predict(std.transform(Xraw))),
                               rtol=1e-8, atol=1e-8)
    path = io.save(est, tmp_path / "m.npz")
    back = io.load(path)
    np.testing.assert_allclose(back.standardizer_.mean_, est.standardizer_.mean_)
    np.testing.assert_array_equal(back.predict(Xraw), est.predict(Xraw))


def test_collapsed_patterns_and_bad_scaling_warn(teacher):
    X, y = teacher
    Xraw = X * np.array([1e5, 1.0, 1.0, 1.0]) + 1e6
    with pytest.warns(CvxnnWarning) as record:
        ConvexGatedReLURegressor(n_gates=50, random_state=0, backend="clarabel", standardize=False).fit(Xraw, y)
    messages = " | ".join(str(w.message) for w in record)
    assert "badly scaled" in messages and "distinct activation patterns" in messages
    with warnings.catch_warnings():
        warnings.simplefilter("error", CvxnnWarning)
        est = ConvexGatedReLURegressor(n_gates=50, random_state=0, backend="clarabel").fit(Xraw, y)
    assert est.patterns_.n_patterns > 25


def test_few_distinct_rows_are_no_collapse():
    """Binary features (4 distinct rows of 300, XOR labels) admit at most 14 patterns with a
    bias; the gates find 13. That is no collapse: no DataWarning (it blamed scaling and advised
    more gates, which found the same 13). Without a bias the bound is 2 * (1 + 3) = 8 on the
    rank-2 rows; a genuine collapse still warns, with advice that applies."""
    from cvxnn.errors import DataWarning

    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, (300, 2)).astype(float)
    y = (X[:, 0] != X[:, 1]).astype(int)
    for n_gates in (100, 1000):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataWarning)
            est = ConvexReLUClassifier(n_gates=n_gates, random_state=0).fit(X, y)
        assert est.patterns_.n_patterns == 13 and est.score(X, y) == 1.0
    # a genuine collapse: one-hot rows in 20 dimensions hold 20 distinct rows (of rank 20 with
    # the bias) but a column offset by 1e6 without standardizing leaves the gates one pattern
    Xc = np.eye(20)[rng.integers(0, 20, 200)]
    Xc[:, 0] += 1e6
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ConvexGatedReLURegressor(n_gates=50, random_state=0, standardize=False).fit(Xc, Xc[:, 1])
    collapse = [str(w.message) for w in record if "distinct activation patterns" in str(w.message)]
    assert len(collapse) == 1 and "use standardize=True" in collapse[0]


# ---------------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("backend", ["native", "clarabel"])
@pytest.mark.parametrize("cls", [ConvexReLURegressor, ConvexGatedReLURegressor])
def test_sample_weight_equals_repeated_rows_squared(cls, backend, teacher):
    X, y = teacher
    w = np.tile([0, 1, 2, 3], X.shape[0] // 4)
    rep = np.repeat(np.arange(X.shape[0]), w)
    gates = np.random.default_rng(1).standard_normal((X.shape[1] + 1, 10))
    kw = dict(lam=0.3, gates=gates, backend=backend, tol=1e-8, max_iter=20_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the solver's accuracy is what is compared, not its status
        a = cls(**kw).fit(X, y, sample_weight=w)
        b = cls(**kw).fit(X[rep], y[rep])
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-6)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-4, atol=1e-4)
    assert a.score(X, y, sample_weight=w) == pytest.approx(b.score(X[rep], y[rep]), rel=1e-4)


def test_sample_and_class_weight_logistic_on_cvxpy(binary):
    X, y = binary
    w = np.arange(X.shape[0]) % 3
    rep = np.repeat(np.arange(X.shape[0]), w)
    gates = np.random.default_rng(2).standard_normal((X.shape[1] + 1, 8))
    kw = dict(lam=0.5, gates=gates, backend="clarabel")
    a = ConvexReLUClassifier(**kw).fit(X, y, sample_weight=w)
    b = ConvexReLUClassifier(**kw).fit(X[rep], y[rep])
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-5)
    np.testing.assert_allclose(a.decision_function(X), b.decision_function(X), rtol=1e-3, atol=1e-3)
    # class_weight is the same mechanism
    counts = np.bincount(y)
    balanced = ConvexGatedReLUClassifier(class_weight="balanced", **kw).fit(X, y)
    manual = ConvexGatedReLUClassifier(**kw).fit(X, y, sample_weight=(len(y) / (2 * counts))[y])
    assert balanced.objective_ == pytest.approx(manual.objective_, rel=1e-7)
    with pytest.raises(LabelError, match=r"label\(s\) \[7\].*does not weigh"):
        ConvexGatedReLUClassifier(class_weight={7: 2.0}, **kw).fit(X, y)
    # scikit-learn's rule: a dict that weighs every class of y may name others (a CV fold's
    # missing class), and one that names only classes of y may leave some out (weight 1)
    extra = ConvexGatedReLUClassifier(class_weight={0: 2.0, 1: 1.0, 7: 3.0}, **kw).fit(X, y)
    partial = ConvexGatedReLUClassifier(class_weight={0: 2.0}, **kw).fit(X, y)
    assert extra.objective_ == pytest.approx(partial.objective_, rel=1e-9)
    # continuous weights (every one distinct): the native solvers weight the per-sample terms
    many = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    for cls in (ConvexReLUClassifier, ConvexGatedReLUClassifier):
        nat = cls(lam=0.5, gates=gates, tol=1e-8).fit(X, y, sample_weight=many)
        ref = cls(**kw).fit(X, y, sample_weight=many)
        assert nat.status_ == "optimal"
        assert nat.objective_ == pytest.approx(ref.objective_, rel=1e-5)


@pytest.mark.parametrize("cls", [ConvexReLUClassifier, ConvexGatedReLUClassifier])
def test_native_weighted_logistic_and_cross_entropy_equal_repeated_rows(cls, binary):
    X, y = binary
    w = np.arange(X.shape[0]) % 3
    rep = np.repeat(np.arange(X.shape[0]), w)
    gates = np.random.default_rng(2).standard_normal((X.shape[1] + 1, 8))
    a = cls(lam=0.5, gates=gates, tol=1e-8).fit(X, y, sample_weight=w)
    b = cls(lam=0.5, gates=gates, tol=1e-8).fit(X[rep], y[rep])
    assert a.solution_.backend == "native" and a.status_ == b.status_ == "optimal"
    assert a.gap_ is not None and a.gap_ <= 1e-6 * a.objective_  # certified with the weighted conjugate
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-6)
    # three classes: the weighted cross-entropy (vector output)
    X3, l3 = load_three_blobs()
    X3, l3 = X3[::3], l3[::3]
    w3 = np.arange(l3.size) % 2 + 1
    r3 = np.repeat(np.arange(l3.size), w3)
    g3 = np.random.default_rng(3).standard_normal((X3.shape[1] + 1, 6))
    a3 = ConvexGatedReLUClassifier(lam=0.5, gates=g3, tol=1e-8).fit(X3, l3, sample_weight=w3)
    b3 = ConvexGatedReLUClassifier(lam=0.5, gates=g3, tol=1e-8).fit(X3[r3], l3[r3])
    assert a3.objective_ == pytest.approx(b3.objective_, rel=1e-6)


# ------------------------------------------------------------------------------- warm start
def test_warm_start_reuses_gates_and_solution(teacher):
    X, y = teacher
    # both fits certified at 1e-6, so their objectives agree to about that (at the default tol
    # of 1e-4 a warm and a cold fit may stop anywhere within 1e-4 of the optimum)
    est = ConvexGatedReLURegressor(lam=1.0, n_gates=10, warm_start=True, tol=1e-6).fit(X, y)
    first = est.solution_
    est.set_params(lam=0.5).fit(X, y)
    np.testing.assert_array_equal(est.patterns_.gates, first.patterns.gates)  # no new gates drawn
    cold = ConvexGatedReLURegressor(lam=0.5, gates=first.patterns.gates, tol=1e-6).fit(X, y)
    assert est.status_ == cold.status_ == "optimal"
    assert est.objective_ == pytest.approx(cold.objective_, rel=1e-5)


@pytest.mark.parametrize("cls", [ConvexGatedReLUClassifier, ConvexReLUClassifier])
def test_warm_start_on_new_data(cls):
    """warm_start=True, then fit on other rows: the previous blocks are a start point on the new
    patterns (same gates, new masks); the result is the cold fit's, certified."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((240, 4))
    y = (X[:, 0] - 0.5 * X[:, 1] > 0).astype(int)
    est = cls(warm_start=True, n_gates=10, random_state=0, lam=1.0).fit(X[:160], y[:160])
    gates = est.solution_.patterns.gates
    est.fit(X[80:], y[80:])  # other rows: the masks change
    assert est.status_ == "optimal"
    np.testing.assert_array_equal(est.patterns_.gates, gates)
    cold = cls(gates=gates, lam=1.0).fit(X[80:], y[80:])
    assert est.objective_ == pytest.approx(cold.objective_, rel=1e-5)


# --------------------------------------------------------------------- validation path
def test_fit_path_validation_early_stopping_and_callback(teacher):
    X, y = teacher
    Xv, yv = load_teacher_regression()
    Xv, yv = Xv[40:80], yv[40:80]
    seen = []
    est = ConvexGatedReLURegressor(n_gates=10, random_state=0, backend="clarabel")
    est.fit_path(X, y, n_lams=8, validation_data=(Xv, yv), callback=lambda info: seen.append(info) or
                 info["index"] == 4)
    assert [s["index"] for s in seen] == list(range(5))  # the callback stopped the path
    assert est.path_["lams"].shape == (5,) and np.all(np.diff(est.path_["lams"]) < 0)
    k = int(np.argmax(est.path_["val_scores"]))
    assert est.best_lam_ == est.path_["lams"][k]
    assert est.score(Xv, yv) == pytest.approx(est.path_["val_scores"][k])
    assert est.lam == "auto"  # the parameter (the default) is not changed
    # patience: the path stops after `patience` values without improvement
    stopped = ConvexGatedReLURegressor(n_gates=10, random_state=0, backend="clarabel")
    stopped.fit_path(X, y, lams=[100.0, 50.0, 20.0, 10.0], validation_fraction=0.25, patience=1)
    assert 1 <= stopped.path_["lams"].size <= 4


def test_regressor_score_with_the_wrong_number_of_outputs_is_a_shape_error(teacher):
    """score() raised scikit-learn's bare ValueError for y with another number of outputs."""
    from cvxnn.errors import ShapeError

    X, y = teacher
    est = ConvexGatedReLURegressor(n_gates=4, random_state=0).fit(X, y)
    assert est.score(X, y) == pytest.approx(est.score(X, y[:, None]))
    with pytest.raises(ShapeError, match="3 output"):
        est.score(X, np.c_[y, y, y])
    wide = ConvexGatedReLURegressor(n_gates=4, random_state=0).fit(X, np.c_[y, -y])
    with pytest.raises(ShapeError, match="1 output"):
        wide.score(X, y)


def test_planted_teacher_validates_its_seed_and_size():
    from cvxnn.datasets import planted_teacher

    with pytest.raises(InvalidParameterError, match="seed"):
        planted_teacher(10, 2, seed=-1)
    with pytest.raises(InvalidParameterError):
        planted_teacher(10, 2, seed="x")
    with pytest.raises(MemoryBudgetError):
        planted_teacher(10_000_000, 1_000_000)
    X, y = planted_teacher(50, 3, seed=0)
    assert X[0, 0] == np.random.default_rng(0).standard_normal()  # the same stream as before


def test_a_binary_class_with_zero_weight_names_the_class():
    """A binary class with zero total weight failed with 'the logistic loss needs both classes
    present; only [-1.] found': the internal labels, not the user's."""
    rng = np.random.default_rng(13)
    X = rng.standard_normal((60, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(LabelError, match="class 1 has total weight 0"):
        ConvexGatedReLUClassifier(n_gates=4, random_state=0).fit(X, y, sample_weight=np.where(y == 1, 0.0, 1.0))
    with pytest.raises(LabelError, match="class 1 has total weight 0"):
        ConvexGatedReLUClassifier(n_gates=4, random_state=0, class_weight={1: 0}).fit(X, y)


@pytest.mark.parametrize("labels", [np.array([b"a", b"b"] * 15), [b"a", b"b"] * 15])
def test_bytes_labels_are_named_as_such(labels):
    """scikit-learn refuses bytes labels; the message said the labels mix types that cannot be
    sorted (they do not), hiding the fix: convert them to str."""
    X = np.random.default_rng(0).standard_normal((30, 2))
    with pytest.raises(LabelError, match="bytes labels; convert them to str"):
        ConvexGatedReLUClassifier(n_gates=4, random_state=0).fit(X, labels)


def test_warm_refit_on_more_data_solves_the_cold_program():
    """A warm refit kept only the gates whose patterns were distinct on the previous data (18 of
    40 on 6 rows), so its fit on all the data was 26 % above the cold optimum, yet "optimal".
    With an integer random_state the gates are drawn again: the cold fit's program."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = np.maximum(X[:, 0] - X[:, 1], 0.0) + 0.1 * rng.standard_normal(200)
    kw = {"n_gates": 40, "random_state": 0, "lam": 1.0}
    warm = ConvexGatedReLURegressor(warm_start=True, **kw)
    warm.fit(X[:6], y[:6])
    warm.fit(X, y)
    cold = ConvexGatedReLURegressor(**kw).fit(X, y)
    assert warm.patterns_.n_patterns == cold.patterns_.n_patterns
    assert warm.objective_ == pytest.approx(cold.objective_, rel=1e-3)
    # on the same data the warm start is still used (same patterns, fewer iterations)
    warm.set_params(lam=0.9)
    warm.fit(X, y)
    again = ConvexGatedReLURegressor(**{**kw, "lam": 0.9}).fit(X, y)
    assert warm.objective_ == pytest.approx(again.objective_, rel=1e-3)
    assert warm.n_iter_ <= again.n_iter_


def test_fit_path_then_warm_fit_with_new_gate_parameters_starts_cold():
    """fit_path dropped the gate parameters it fitted with, so a later warm fit with another
    n_gates and random_state reused the path's 10 gates."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 5))
    y = X[:, 0] - np.maximum(X[:, 2], 0.0)
    est = ConvexGatedReLURegressor(n_gates=10, random_state=0, warm_start=True).fit_path(X, y)
    est.set_params(n_gates=25, random_state=1, lam=1.0)
    est.fit(X, y)
    cold = ConvexGatedReLURegressor(n_gates=25, random_state=1, lam=1.0).fit(X, y)
    np.testing.assert_array_equal(est.patterns_.gates, cold.patterns_.gates)
    assert est.objective_ == pytest.approx(cold.objective_, rel=1e-4)


def test_fit_path_verbose_reports_each_lam_and_the_solver(capsys):
    """fit_path ignored verbose: no solver output and no line per lam."""
    X, y = load_teacher_regression()
    ConvexGatedReLURegressor(n_gates=6, random_state=0, verbose=True).fit_path(X, y, n_lams=3)
    err = capsys.readouterr().err
    assert err.count("[cvxnn.fit_path] lam ") == 3 and "validation score" in err
    assert "[cvxnn.native]" in err
    ConvexGatedReLURegressor(n_gates=6, random_state=0).fit_path(X, y, n_lams=3)
    assert capsys.readouterr().err == ""
