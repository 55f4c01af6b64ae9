"""Tests of the scikit-learn estimators (cvxnn.estimators)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import warnings

import numpy as np
import pytest

from cvxnn.datasets import load_teacher_regression, load_three_blobs
from cvxnn.errors import ConvergenceWarning, InputError, InvalidParameterError, LabelError, NotFittedError, ShapeError
from cvxnn.estimators import (
    ConvexGatedReLUClassifier,
    ConvexGatedReLURegressor,
    ConvexReLUClassifier,
    ConvexReLURegressor,
    LamCVResult,
    cross_validate_lam,
    solve_convex,
)
from cvxnn.losses import SquaredLoss
from cvxnn.networks import GatedReLUNetwork, ReLUNetwork

REGRESSORS = [ConvexReLURegressor, ConvexGatedReLURegressor]
CLASSIFIERS = [ConvexReLUClassifier, ConvexGatedReLUClassifier]


@pytest.fixture(scope="module")
def teacher():
    X, y = load_teacher_regression()
    return X[:40], y[:40]


@pytest.fixture(scope="module")
def blobs():
    X, labels = load_three_blobs()
    return X, labels


def _binary(blobs):
    X, labels = blobs
    keep = labels != 2
    return X[keep], np.array(["cat", "dog"])[labels[keep]]


# ----------------------------------------------------------------------------- regression
@pytest.mark.parametrize("cls", REGRESSORS)
@pytest.mark.parametrize("backend", ["native", "clarabel"])
def test_regressor_fits_and_objective_matches_network(cls, backend, teacher):
    X, y = teacher
    est = cls(lam=0.5, n_gates=12, random_state=0, backend=backend).fit(X, y)
    assert est.status_ == "optimal"
    assert est.predict(X).shape == (X.shape[0],)
    assert est.score(X, y) > 0.8
    # objective_ is the objective of the network on standardized X and y, which the convex
    # program attains (exact maps); network_ acts on raw X and predicts in raw units
    Xs = est.standardizer_.transform(X)
    ys = est.standardizer_.transform_y(y)
    # the documented identity: objective_ is the objective of to_network(tol=network_tol_)
    assert (est.network_tol_ > 0) == (backend == "clarabel")
    net_s = est.solution_.to_network(tol=est.network_tol_)
    assert net_s.objective(Xs, ys, est.lam_) == pytest.approx(est.objective_, rel=1e-12)
    assert est.solution_.objective(Xs, ys, est.lam_, "squared") == pytest.approx(est.convex_objective_, rel=1e-9)
    assert est.convex_objective_ == pytest.approx(est.objective_, rel=1e-6)
    np.testing.assert_allclose(est.network_.predict(X), est.standardizer_.inverse_transform_y(net_s.predict(Xs)),
                               rtol=1e-9, atol=1e-9)
    # without standardization the raw network attains objective_ itself
    raw = cls(lam=0.5, n_gates=12, random_state=0, backend=backend, standardize=False).fit(X, y)
    assert raw.standardizer_ is None
    assert raw.network_.objective(X, y, raw.lam_) == pytest.approx(raw.objective_, rel=1e-6)
    expected_net = ReLUNetwork if cls is ConvexReLURegressor else GatedReLUNetwork
    assert isinstance(est.network_, expected_net)
    # the raw network adds one always-active neuron for the target mean (standardized y)
    assert est.n_active_neurons_ == est.network_.n_neurons - 1 > 0
    assert est.patterns_.n_patterns <= 12 and est.patterns_.bias
    assert est.n_features_in_ == X.shape[1]
    # both backends certify their answer with a duality gap (CVXPY: from the cone multipliers)
    assert est.gap_ is not None and 0 <= est.gap_ <= 1e-5 * abs(est.objective_) + 1e-12


@pytest.mark.parametrize("cls", REGRESSORS)
def test_native_and_clarabel_agree_on_shared_gates(cls, teacher):
    X, y = teacher
    a = cls(lam=0.5, n_gates=10, random_state=1, backend="native").fit(X, y)
    b = cls(lam=0.5, gates=a.patterns_.gates, backend="clarabel").fit(X, y)
    np.testing.assert_array_equal(a.patterns_.gates, b.patterns_.gates)
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-5)
    np.testing.assert_allclose(a.predict(X), b.predict(X), atol=1e-3 * np.abs(y).max())


def test_gates_without_bias_row_means_zero_offset(teacher):
    X, y = teacher
    G = np.random.default_rng(0).standard_normal((X.shape[1], 6))
    a = ConvexGatedReLURegressor(gates=G, backend="clarabel").fit(X, y)
    b = ConvexGatedReLURegressor(gates=np.vstack([G, np.zeros((1, 6))]), backend="clarabel").fit(X, y)
    np.testing.assert_array_equal(a.patterns_.gates, b.patterns_.gates)
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-10)
    d = X.shape[1]
    with pytest.raises(ShapeError, match=rf"gates must have shape \({d + 1}, p\) or \({d}, p\)"):
        ConvexGatedReLURegressor(gates=np.ones((2, 3)), backend="clarabel").fit(X, y)
    # without a bias the message names the shape with one, not (d, p) twice
    with pytest.raises(ShapeError, match=rf"\({d}, p\) \(or \({d + 1}, p\) with bias=True\)"):
        ConvexGatedReLURegressor(gates=np.ones((d + 1, 3)), bias=False, backend="clarabel").fit(X, y)


def test_no_gap_without_a_certificate(teacher):
    X, y = teacher
    est = ConvexGatedReLURegressor(loss="absolute", n_gates=6, random_state=0, backend="clarabel").fit(X, y)
    assert est.status_ == "optimal" and est.gap_ is None  # nonsmooth loss: no conjugate-based gap


def test_bias_false_and_mean_loss_option(teacher):
    X, y = teacher
    est = ConvexGatedReLURegressor(lam=0.01, n_gates=8, bias=False, random_state=0,
                                   loss=SquaredLoss(reduction="mean"), backend="clarabel").fit(X, y)
    assert not est.patterns_.bias and est.network_.b1 is None
    std = est.standardizer_  # bias=False: y is scaled, not centred (no intercept is added)
    assert np.all(std.y_mean_ == 0) and std.y_scale_[0] == pytest.approx(np.std(y))
    mean_obj = (SquaredLoss(reduction="mean").value(std.transform_y(est.predict(X)), std.transform_y(y))
                + 0.01 * est.solution_.penalty())
    assert est.convex_objective_ == pytest.approx(mean_obj, rel=1e-7)
    assert est.objective_ == pytest.approx(mean_obj, rel=1e-6)


def test_same_seed_same_result_and_inputs_unchanged(teacher):
    X, y = teacher
    X0, y0 = X.copy(), y.copy()
    a = ConvexGatedReLURegressor(n_gates=10, random_state=3).fit(X, y)
    b = ConvexGatedReLURegressor(n_gates=10, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


# ------------------------------------------------------------------------- classification
@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_binary_classifier_logistic(cls, blobs):
    X, y = _binary(blobs)
    est = cls(lam=0.5, n_gates=10, random_state=0, backend="clarabel").fit(X, y)
    assert list(est.classes_) == ["cat", "dog"]
    assert est.score(X, y) > 0.95
    f = est.decision_function(X)
    assert f.shape == (X.shape[0],)
    np.testing.assert_array_equal(est.predict(X), est.classes_[(f > 0).astype(int)])
    P = est.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(P[:, 1], 1 / (1 + np.exp(-f)))
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(P), atol=1e-10)
    # objective_ is on the +-1 encoded labels, logistic loss
    s = np.where(y == "dog", 1.0, -1.0)
    Xs = est.standardizer_.transform(X)  # objective_ is on standardized data
    net_s = est.solution_.to_network(tol=1e-7)
    assert net_s.objective(Xs, s, est.lam_, "logistic") == pytest.approx(est.objective_, rel=1e-6)


def test_squared_loss_classifier_has_no_predict_proba(blobs):
    X, y = _binary(blobs)
    est = ConvexGatedReLUClassifier(loss="squared", n_gates=8, random_state=0, backend="clarabel").fit(X, y)
    assert not hasattr(est, "predict_proba")
    assert est.score(X, y) > 0.95
    s = np.where(y == "dog", 1.0, -1.0)
    Xs = est.standardizer_.transform(X)
    net_s = est.solution_.to_network(tol=1e-7)
    assert net_s.objective(Xs, s, est.lam_, "squared") == pytest.approx(est.objective_, rel=1e-6)


@pytest.mark.parametrize("cls", CLASSIFIERS)
@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_multiclass_vector_output(cls, loss, blobs):
    X, labels = blobs
    X, labels = X[::2], labels[::2]
    est = cls(lam=0.5, n_gates=6, random_state=0, loss=loss, backend="clarabel").fit(X, labels)
    scores = est.decision_function(X)
    assert scores.shape == (X.shape[0], 3)
    np.testing.assert_array_equal(est.predict(X), np.argmax(scores, axis=1))
    assert est.score(X, labels) > 0.9
    Y = np.eye(3)[labels]
    name = "cross_entropy" if loss == "logistic" else "squared"
    assert est.solution_.loss.name == name
    Xs = est.standardizer_.transform(X)
    assert est.solution_.objective(Xs, Y, est.lam_, name) == pytest.approx(est.objective_, rel=1e-6)
    if loss == "logistic":
        np.testing.assert_allclose(est.predict_proba(X).sum(axis=1), 1.0)


def test_multiclass_native_gated_matches_clarabel(blobs):
    X, labels = blobs
    X, labels = X[::2], labels[::2]
    a = ConvexGatedReLUClassifier(lam=0.5, n_gates=6, random_state=0, tol=1e-8).fit(X, labels)
    b = ConvexGatedReLUClassifier(lam=0.5, gates=a.patterns_.gates, backend="clarabel").fit(X, labels)
    assert a.status_ == "optimal" and a.solution_.backend == "native"
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-5)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-3)


def test_classifier_errors(blobs):
    X, labels = blobs
    with pytest.raises(LabelError, match="2 classes"):
        ConvexGatedReLUClassifier(backend="clarabel").fit(X, np.zeros(X.shape[0]))
    with pytest.raises(InvalidParameterError, match="binary"):
        ConvexGatedReLUClassifier(loss="hinge", backend="clarabel").fit(X, labels)
    with pytest.raises(InvalidParameterError, match="loss"):
        ConvexGatedReLUClassifier(loss="huber", backend="clarabel").fit(X, labels)
    with pytest.raises(InvalidParameterError, match="regression loss"):
        ConvexGatedReLURegressor(loss="logistic", backend="clarabel").fit(X, labels.astype(float))


# ------------------------------------------------------------------------ API and errors
def test_parameter_names_are_the_documented_ones():
    expected = {"lam", "n_gates", "gates", "backend", "loss", "bias", "tol", "max_iter",
                "random_state", "verbose", "standardize", "warm_start"}
    for cls in REGRESSORS:
        assert set(cls().get_params()) == expected
    for cls in CLASSIFIERS:
        assert set(cls().get_params()) == expected | {"class_weight"}


def test_unknown_backend_and_bad_parameters(teacher):
    X, y = teacher
    with pytest.raises(InvalidParameterError, match="unknown backend"):
        ConvexReLURegressor(backend="gurobi-not-here").fit(X, y)
    with pytest.raises(InvalidParameterError, match="lam"):
        ConvexReLURegressor(lam=-1.0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="n_gates"):
        ConvexReLURegressor(n_gates=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="tol"):
        ConvexReLURegressor(tol=0.0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="loss"):
        ConvexReLURegressor(loss="nope").fit(X, y)


def test_not_fitted_error_is_cvxnn_and_sklearn(teacher):
    X, _ = teacher
    est = ConvexReLURegressor()
    with pytest.raises(NotFittedError):
        est.predict(X)
    sk_exc = pytest.importorskip("sklearn.exceptions")
    with pytest.raises(sk_exc.NotFittedError):
        est.predict(X)


def test_wrong_feature_count_and_nan(teacher):
    X, y = teacher
    est = ConvexGatedReLURegressor(n_gates=6, random_state=0, backend="clarabel").fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :2])
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ConvexGatedReLURegressor(backend="clarabel").fit(Xn, y)


def test_convergence_warning_when_not_converged(teacher):
    X, y = teacher
    with pytest.warns(ConvergenceWarning, match="not certified optimal"):
        est = ConvexGatedReLURegressor(lam=0.1, n_gates=10, random_state=0, max_iter=3).fit(X, y)
    assert est.status_ == "max_iterations"
    # the estimator emits one warning per fit, not one per layer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ConvexGatedReLURegressor(lam=0.1, n_gates=10, random_state=0, max_iter=3).fit(X, y)
    assert sum(issubclass(w.category, ConvergenceWarning) for w in caught) == 1
    assert all(w.filename == __file__ for w in caught if issubclass(w.category, ConvergenceWarning))


def test_solve_convex_dispatch(teacher):
    from cvxnn.losses import get_loss
    from cvxnn.patterns import sample_patterns

    X, y = teacher
    pats = sample_patterns(X, 6, seed=0, bias=True)
    a = solve_convex(X, y, pats, activation="gated_relu", loss=get_loss("squared"), lam=0.3, backend="scs")
    b = solve_convex(X, y, pats, activation="gated_relu", loss=get_loss("squared"), lam=0.3, backend="CLARABEL")
    assert a.solver == "SCS" and b.solver == "CLARABEL"
    assert a.objective_value == pytest.approx(b.objective_value, rel=1e-5)


def test_module_works_without_sklearn(tmp_path):
    """The estimators import and fit when scikit-learn cannot be imported."""
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None\n"
        "import numpy as np\n"
        "from cvxnn.estimators import ConvexGatedReLURegressor, ConvexReLUClassifier\n"
        "from cvxnn.datasets import load_teacher_regression\n"
        "X, y = load_teacher_regression()\n"
        "e = ConvexGatedReLURegressor(n_gates=6, random_state=0, backend='clarabel').fit(X, y)\n"
        "assert e.score(X, y) > 0.8, e.score(X, y)\n"
        "assert e.get_params()['n_gates'] == 6\n"
        "e.set_params(lam=2.0); assert e.lam == 2.0\n"
        "c = ConvexReLUClassifier(n_gates=6, random_state=0, backend='clarabel').fit(X, y > 0)\n"
        "assert c.score(X, y > 0) > 0.8\n"
        "assert 'sklearn' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ------------------------------------------------------------------------- scikit-learn
#: Weighted fits equal fits on repeated rows up to the solver's accuracy (~1e-6 relative), not
#: to the 1e-7 this check demands; test_sample_weight_equals_repeated_rows checks it at that accuracy.
_SOLVER_ACCURACY = {"check_sample_weight_equivalence_on_dense_data":
                    "equal up to the solver tolerance (1e-6), not to rtol 1e-7"}


def _check_estimator(estimator_checks, est):
    if "expected_failed_checks" in inspect.signature(estimator_checks.check_estimator).parameters:
        estimator_checks.check_estimator(est, expected_failed_checks=_SOLVER_ACCURACY)
    else:  # pragma: no cover - scikit-learn < 1.6
        estimator_checks.check_estimator(est)


@pytest.mark.parametrize("cls", REGRESSORS + CLASSIFIERS)
def test_check_estimator(cls):
    """scikit-learn's estimator checks (small n_gates so they run fast; with 6 gates the ReLU
    classifier needs the former lam=0.1 to clear the checks' 0.83 training-accuracy bar)."""
    estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")
    extra = {"lam": 0.1} if cls is ConvexReLUClassifier else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", estimator_checks.SkipTestWarning)
        _check_estimator(estimator_checks, cls(n_gates=6, random_state=0, backend="clarabel", **extra))


def test_check_estimator_native_default_backend():
    """The default (native) backend passes the checks too (gated regressor: fastest)."""
    estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", estimator_checks.SkipTestWarning)
        _check_estimator(estimator_checks, ConvexGatedReLURegressor(n_gates=4, random_state=0, tol=1e-4))


def test_pipeline_and_grid_search(teacher):
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = teacher
    pipe = make_pipeline(StandardScaler(), ConvexGatedReLURegressor(n_gates=8, random_state=0,
                                                                    backend="clarabel"))
    grid = GridSearchCV(pipe, {"convexgatedreluregressor__lam": [0.01, 1.0, 100.0]},
                        cv=KFold(3))
    grid.fit(X, y)
    assert grid.best_params_["convexgatedreluregressor__lam"] in (0.01, 1.0)
    assert grid.score(X, y) > 0.8
    fitted = grid.best_estimator_[-1]
    assert fitted.status_ == "optimal"


def test_cross_validate_lam_parallel_equals_sequential(teacher):
    pytest.importorskip("sklearn")
    X, y = teacher
    est = ConvexGatedReLURegressor(n_gates=8, random_state=0, tol=1e-8)
    lams = [100.0, 3.0, 0.1]
    seq = cross_validate_lam(est, X, y, lams, cv=3)
    par = cross_validate_lam(est, X, y, lams, cv=3, n_jobs=2, n_segments=3)
    assert isinstance(seq, LamCVResult)
    assert seq.scores.shape == (3, 3)
    # sequential fits are warm-started along the path, the three segments start cold: both are
    # certified to a relative gap of 1e-8, which bounds the training predictions' distance to the
    # optimum by sqrt(2 gap) (squared loss), about 1e-4 here, not to rounding
    np.testing.assert_allclose(seq.scores, par.scores, rtol=0, atol=2e-4)
    assert (seq.statuses == "optimal").all() and (par.statuses == "optimal").all()
    assert seq.best_lam in (3.0, 0.1)
    assert seq.mean_score[0] < seq.mean_score[seq.best_index]
    with pytest.raises(InvalidParameterError):
        cross_validate_lam(est, X, y, [])


def test_cross_validate_lam_on_dask_local_cluster(teacher):
    """The same code distributed: joblib's dask backend on a LocalCluster."""
    pytest.importorskip("sklearn")
    distributed = pytest.importorskip("distributed")
    import joblib

    X, y = teacher
    est = ConvexGatedReLURegressor(n_gates=6, random_state=0, backend="clarabel")
    lams = [10.0, 1.0]
    local = cross_validate_lam(est, X, y, lams, cv=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        with joblib.parallel_config(backend="dask"):
            remote = cross_validate_lam(est, X, y, lams, cv=2, n_jobs=-1, n_segments=2)
    np.testing.assert_allclose(local.scores, remote.scores, rtol=1e-8)


# ------------------------------------------- multi-class ReLU: objective_ is the network's (issue 11)
@pytest.fixture(scope="module")
def iris():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_iris(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def test_multiclass_relu_classifier_reports_its_networks_objective(iris):
    X, y = iris
    est = ConvexReLUClassifier(lam=1.0, n_gates=12, random_state=0).fit(X, y)
    sol = est.solution_
    assert est.status_ == "optimal" and sol.backend == "native"
    assert sol.formulation == "one_vs_all"  # the native default program
    Xs, Y = est.standardizer_.transform(X), np.eye(3)[y]
    net_s = sol.to_network()
    assert est.objective_ == pytest.approx(net_s.objective(Xs, Y, est.lam_, "cross_entropy"), rel=1e-12)
    assert sol.objective(Xs, Y, est.lam_, "cross_entropy") == pytest.approx(est.convex_objective_, rel=1e-10)
    # one-vs-all is exact for its network: the network is never worse than the program's value
    assert est.objective_ <= est.convex_objective_ * (1 + 1e-9)
    np.testing.assert_allclose(est.network_.predict(X), net_s.predict(Xs), atol=1e-9)
    assert est.score(X, y) > 0.9


def test_multiclass_relu_classifier_backends_solve_the_same_program(iris):
    X, y = iris
    X, y = X[::2], y[::2]
    native = ConvexReLUClassifier(lam=1.0, n_gates=6, random_state=0, loss="squared").fit(X, y)
    ref = ConvexReLUClassifier(lam=1.0, gates=native.patterns_.gates, backend="clarabel",
                               loss="squared").fit(X, y)
    assert ref.solution_.formulation == "one_vs_all"
    assert ref.convex_objective_ == pytest.approx(native.convex_objective_, rel=1e-6)
    # the CVXPY solution's certificate is that of the one-vs-all program (column norms)
    assert ref.gap_ is not None and ref.gap_ <= 1e-5 * ref.convex_objective_
    assert ref.convex_objective_ - native.convex_objective_ <= ref.gap_ + 1e-12
    assert ref.objective_ == pytest.approx(native.objective_, rel=1e-6)
    Xs, Y = ref.standardizer_.transform(X), np.eye(3)[y]
    assert ref.objective_ == pytest.approx(ref.solution_.to_network(tol=1e-7).objective(Xs, Y, 1.0), rel=1e-9)


def test_multiclass_gated_classifier_objective_is_its_networks(iris):
    X, y = iris
    est = ConvexGatedReLUClassifier(lam=1.0, n_gates=8, random_state=0).fit(X, y)
    Xs, Y = est.standardizer_.transform(X), np.eye(3)[y]
    assert est.objective_ == pytest.approx(est.solution_.to_network().objective(Xs, Y, 1.0, "cross_entropy"),
                                           rel=1e-12)
    assert est.objective_ == pytest.approx(est.convex_objective_, rel=1e-8)  # exact nuclear map


def _two_targets(teacher):
    X, y = teacher
    Y = np.c_[y, np.maximum(X[:, 0], 0.0) - 0.5 * X[:, 1]]
    return X, Y


@pytest.mark.parametrize("cls,formulation", [(ConvexReLURegressor, "one_vs_all"),
                                             (ConvexGatedReLURegressor, "nuclear")])
def test_regressor_with_several_outputs_is_the_vector_program(cls, formulation, teacher):
    """A 2-D ``y`` fits one network with that many outputs: the vector-output program of the
    activation (C-ReLU one-vs-all, C-GReLU nuclear norm), certified, with Clarabel's optimum."""
    from cvxnn.vector import build_vector_program

    X, Y = _two_targets(teacher)
    est = cls(lam=0.5, n_gates=10, random_state=0, tol=1e-8).fit(X, Y)
    assert est.status_ == "optimal"
    assert est.predict(X).shape == Y.shape
    assert est.score(X, Y) > 0.5
    Xs = est.standardizer_.transform(X)
    ys = est.standardizer_.transform_y(Y)
    ref = build_vector_program(Xs, ys, activation=cls._activation, loss="squared", lam=est.lam_,
                               patterns=est.patterns_, formulation=formulation).solve()
    assert est.convex_objective_ == pytest.approx(ref.objective_value, rel=1e-6)
    # the network attains objective_ (never above the convex value) and predicts in raw units
    net_s = est.solution_.to_network()
    assert net_s.objective(Xs, ys, est.lam_) == pytest.approx(est.objective_, rel=1e-6)
    assert est.objective_ <= est.convex_objective_ * (1 + 1e-9)
    np.testing.assert_allclose(est.predict(X), est.standardizer_.inverse_transform_y(net_s.predict(Xs)),
                               rtol=1e-9, atol=1e-9)
    # each column is predicted as a vector output, not as c separate fits: the columns differ
    assert not np.allclose(est.predict(X)[:, 0], est.predict(X)[:, 1])


@pytest.mark.parametrize("cls", REGRESSORS)
def test_regressor_flattens_a_column_y_with_a_warning(cls, teacher):
    """``y`` of shape ``(n, 1)`` is a single output (``MLPRegressor``'s convention): flattened with
    a ``DataConversionWarning``, the same fit as the 1-D ``y``; ``(n, 0)`` is refused."""
    from cvxnn.estimators import DataConversionWarning

    X, y = teacher
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        col = cls(lam=0.5, n_gates=8, random_state=0).fit(X, y[:, None])
    flat = cls(lam=0.5, n_gates=8, random_state=0).fit(X, y)
    assert col.predict(X).shape == (X.shape[0],)
    np.testing.assert_allclose(col.predict(X), flat.predict(X), rtol=1e-10, atol=1e-10)
    with pytest.raises(InputError, match="0 feature"):
        cls(lam=0.5, n_gates=8, random_state=0).fit(X, np.zeros((X.shape[0], 0)))


def test_regressor_cv_with_several_outputs(teacher):
    from cvxnn.estimators import ConvexReLURegressorCV

    X, Y = _two_targets(teacher)
    cv = ConvexReLURegressorCV(n_gates=6, n_lams=3, cv=3, random_state=0).fit(X, Y)
    assert cv.lam_ in cv.lams_
    assert cv.predict(X).shape == Y.shape
    assert cv.scores_.shape == (3, 3)
    from sklearn.metrics import r2_score

    assert cv.score(X, Y) == pytest.approx(r2_score(Y, cv.predict(X)))


def test_fallback_r2_averages_the_outputs():
    """The R^2 of the estimators without scikit-learn is scikit-learn's, ``uniform_average``
    over outputs, weighted or not."""
    from sklearn.metrics import r2_score

    from cvxnn.estimators import _FallbackRegressorMixin

    rng = np.random.default_rng(0)
    Y = rng.standard_normal((30, 3))
    P = Y + 0.3 * rng.standard_normal((30, 3))
    w = rng.uniform(0.5, 2.0, 30)

    class Fixed(_FallbackRegressorMixin):
        def __init__(self, out):
            self.out = out

        def predict(self, X):
            return self.out

    for out, target in ((P, Y), (P[:, 0], Y[:, 0])):
        assert Fixed(out).score(None, target) == pytest.approx(r2_score(target, out))
        assert Fixed(out).score(None, target, sample_weight=w) == pytest.approx(r2_score(target, out, sample_weight=w))


# ---------------------------------------------------- regressors standardize y (raw diabetes)
def test_default_regressor_on_raw_diabetes():
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    X, y = datasets.load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = model_selection.train_test_split(X, y, test_size=0.3, random_state=0)
    est = ConvexReLURegressor(random_state=0).fit(Xtr, ytr)  # defaults (seeded gates)
    assert est.status_ == "optimal"
    assert est.score(Xte, yte) > 0.3
    std = est.standardizer_
    assert std.y_mean_[0] == pytest.approx(ytr.mean()) and std.y_scale_[0] == pytest.approx(ytr.std())
    pred = est.predict(Xte)  # raw units: the targets' scale, not the standardized one
    assert abs(pred.mean() - ytr.mean()) < 0.2 * ytr.std() and pred.std() > 0.3 * ytr.std()
    # objectives are those of the program on standardized X and y
    net_s = est.solution_.to_network()
    assert est.objective_ == pytest.approx(
        net_s.objective(std.transform(Xtr), std.transform_y(ytr), est.lam_), rel=1e-12)
    np.testing.assert_allclose(pred, std.inverse_transform_y(net_s.predict(std.transform(Xte))), rtol=1e-9)


# ------------------------------------------------------------------------- convergence advice
def _advice_of(est, X, y):
    with pytest.warns(ConvergenceWarning) as rec:
        est.fit(X, y)
    return str([r for r in rec if issubclass(r.category, ConvergenceWarning)][-1].message)


def test_convergence_advice_that_it_gives_works():
    # a small program: the warning suggests the CVXPY backend, and taking the advice certifies
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2]
    msg = _advice_of(ConvexGatedReLURegressor(lam=1e-3, n_gates=8, random_state=0, max_iter=20), X, y)
    assert "raise max_iter" in msg.lower() and "backend='clarabel'" in msg and "standardize" not in msg
    # max_iter=20 would stop Clarabel too: the advice says how large it must be
    assert "backend='clarabel' with max_iter >= 200" in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fixed = ConvexGatedReLURegressor(lam=1e-3, n_gates=8, random_state=0, backend="clarabel",
                                         max_iter=200).fit(X, y)
    assert fixed.status_ == "optimal"
    from cvxnn.estimators import _convergence_advice
    from cvxnn.patterns import sample_patterns

    plain = ConvexGatedReLURegressor(lam=1e-3, n_gates=8, random_state=0)
    assert "with max_iter" not in _convergence_advice(plain, X, y, sample_patterns(X, 8, seed=0, bias=True))
    # a CVXPY solve that runs out: the native backend is suggested, and it certifies
    msg = _advice_of(ConvexGatedReLURegressor(lam=1e-3, n_gates=8, random_state=0, backend="clarabel",
                                              max_iter=3), X, y)
    assert "backend='native'" in msg and "backend='clarabel'" not in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert ConvexGatedReLURegressor(lam=1e-3, n_gates=8, random_state=0).fit(X, y).status_ == "optimal"


def test_convergence_advice_leaves_out_what_would_not_work():
    # 30 rows, 61 x 100 x 2 columns of nuclear norms, unscaled targets and standardize=False: the
    # CVXPY program did not finish in 5 minutes, so the warning does not suggest it; it suggests
    # the standardization, which certifies this fit at once
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 60))
    y = X[:, :30] @ rng.uniform(0, 100, 30)
    Y = np.c_[y, y ** 2 / 100]
    msg = _advice_of(ConvexGatedReLURegressor(lam=3.0, standardize=False, random_state=0, max_iter=100), X, Y)
    assert "standardize=True" in msg and "backend='clarabel'" not in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert ConvexGatedReLURegressor(lam=3.0, random_state=0).fit(X, Y).status_ == "optimal"


def test_fit_path_keeps_dataframe_column_names_and_refuses_tiny_validation():
    pytest.importorskip("pandas")
    from sklearn.datasets import load_iris

    from cvxnn import ConvexGatedReLUClassifier, ConvexGatedReLURegressor
    from cvxnn.errors import InputError, ShapeError

    X, y = load_iris(return_X_y=True, as_frame=True)
    est = ConvexGatedReLUClassifier(n_gates=12, random_state=0).fit_path(X, y, n_lams=4)
    assert list(est.feature_names_in_) == list(X.columns)
    with pytest.raises(InputError):  # reordered columns are caught, as after fit
        est.predict(X[X.columns[::-1]])
    rng = np.random.default_rng(0)
    Xr, yr = rng.standard_normal((6, 2)), rng.standard_normal(6)
    with pytest.raises(ShapeError, match="R\\^2 needs at least 2"):
        ConvexGatedReLURegressor(n_gates=4, random_state=0).fit_path(Xr, yr, n_lams=3)


def test_warm_start_with_new_gate_parameters_draws_new_gates():
    from sklearn.datasets import load_iris

    from cvxnn import ConvexGatedReLUClassifier

    X, y = load_iris(return_X_y=True)
    est = ConvexGatedReLUClassifier(n_gates=8, random_state=0, warm_start=True).fit(X, y)
    assert est.n_iter_ >= 1
    est.set_params(n_gates=24).fit(X, y)
    assert est.patterns_.n_patterns > 8
    fresh = ConvexGatedReLUClassifier(n_gates=24, random_state=0).fit(X, y)
    np.testing.assert_array_equal(est.patterns_.gates, fresh.patterns_.gates)


@pytest.mark.parametrize("cls", ["ConvexGatedReLUClassifier", "ConvexReLUClassifier"])
def test_balanced_class_weight_counts_the_sample_weights(cls):
    """'balanced' uses weighted class counts (scikit-learn's rule): zero weights remove samples
    exactly, integer weights are repeated rows, with class_weight='balanced' too."""
    import cvxnn.estimators as E

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = (X[:, 0] + 0.5 * rng.standard_normal(60) > 0.4).astype(int)
    kw = {"lam": 0.5, "n_gates": 8, "random_state": 0, "tol": 1e-10, "class_weight": "balanced"}
    Est = getattr(E, cls)
    w = np.ones(60)
    w[np.flatnonzero(y == 0)[:20]] = 0.0
    a = Est(**kw).fit(X, y, sample_weight=w)
    b = Est(**kw).fit(X[w > 0], y[w > 0])
    np.testing.assert_allclose(a.decision_function(X), b.decision_function(X), atol=1e-6)
    reps = rng.integers(1, 4, size=60)
    c = Est(**kw).fit(X, y, sample_weight=reps.astype(float))
    e = Est(**kw).fit(np.repeat(X, reps, axis=0), np.repeat(y, reps))
    np.testing.assert_allclose(c.decision_function(X), e.decision_function(X), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ["clarabel", "native"])
def test_weighted_relu_fits_move_the_scaled_program_back_whole(backend):
    """A weighted squared-loss C-ReLU fit solves a row-scaled program. Its design (kept in the
    solution's extras by CVXPY) must not follow the solution back (2-D y crashed with
    PatternMismatchError), and its multipliers are rescaled, so that the public certificate of
    ``solution_`` on the fitted data agrees with ``gap_``."""
    from cvxnn.estimators import ConvexReLURegressor
    from cvxnn.native import duality_gap

    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 3))
    Y = np.c_[X[:, 0] - X[:, 1], np.abs(X[:, 2])] + 0.1 * rng.standard_normal((40, 2))
    w = rng.uniform(0.2, 3.0, 40)
    est = ConvexReLURegressor(lam=1.0, n_gates=8, random_state=0, backend=backend, tol=1e-8).fit(X, Y, sample_weight=w)
    assert est.status_ == "optimal" and est.predict(X).shape == (40, 2)
    one = ConvexReLURegressor(lam=1.0, n_gates=8, random_state=0, backend=backend, tol=1e-8,
                              standardize=False).fit(X, Y[:, 0], sample_weight=w)
    sol = one.solution_
    assert sol.training_X is None or sol.training_X.shape[0] == 40
    if sol.multipliers is not None:
        cert = duality_gap(X, Y[:, 0], sol, one.lam_, sol.loss)
        assert cert.gap <= max(10 * one.gap_, 1e-6 * abs(one.convex_objective_))
    path = ConvexReLURegressor(n_gates=8, random_state=0, backend=backend).fit_path(X, Y, sample_weight=w, n_lams=3)
    assert path.predict(X).shape == (40, 2)


def test_fit_path_checks_lengths_before_splitting_and_honours_max_iter():
    from cvxnn.errors import ShapeError
    from cvxnn.estimators import ConvexGatedReLURegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = np.maximum(X[:, 0], 0) + 0.1 * rng.standard_normal(40)
    est = ConvexGatedReLURegressor(n_gates=8, random_state=0)
    with pytest.raises(ShapeError, match="y has 30"):  # an IndexError from the split before
        est.fit_path(X, y[:30], n_lams=3)
    with pytest.raises(ShapeError, match="sample_weight"):
        est.fit_path(X, y, n_lams=3, sample_weight=np.ones(10))
    a = ConvexGatedReLURegressor(n_gates=8, random_state=0).fit_path(X, y, n_lams=3, sample_weight=2.0)
    b = ConvexGatedReLURegressor(n_gates=8, random_state=0).fit_path(X, y, n_lams=3)
    assert a.best_lam_ == pytest.approx(2 * b.best_lam_)  # a scalar weight is accepted, as in fit (loss x 2)
    with pytest.warns(Warning):
        c = ConvexGatedReLURegressor(n_gates=8, random_state=0, max_iter=1).fit_path(X, y, n_lams=4)
    assert set(c.path_["statuses"][1:]) == {"max_iterations"}  # max_iter was ignored: all "optimal"
    assert c.n_iter_ == 1


def test_fit_path_gives_one_named_warning_for_its_uncertified_lams_at_the_callers_line():
    """fit_path emitted one generic solver warning per uncertified lam, pointing into
    native_adapter.py; it now emits one ConvergenceWarning, named after the estimator, at the
    caller's line, listing the lam values and saying whether best_lam_ is among them."""
    import warnings

    from cvxnn.errors import ConvergenceWarning
    from cvxnn.estimators import ConvexGatedReLURegressor, ConvexReLURegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = np.maximum(X[:, 0], 0) + 0.1 * rng.standard_normal(40)
    for Est in (ConvexGatedReLURegressor, ConvexReLURegressor):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = Est(n_gates=8, random_state=0, max_iter=1).fit_path(X, y, n_lams=4)
        conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        n_bad = int(np.sum(est.path_["statuses"] != "optimal"))
        assert n_bad >= 1
        assert len(conv) == 1, [str(w.message) for w in conv]
        msg = str(conv[0].message)
        assert msg.startswith(f"{Est.__name__}.fit_path: {n_bad} of {len(est.path_['lams'])} lam values")
        assert "max_iter=1" in msg and "Raise max_iter" in msg
        assert ("is one of them" in msg) == (est.status_ != "optimal")
        assert conv[0].filename == __file__
        # a certified path warns nothing
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Est(n_gates=8, random_state=0).fit_path(X, y, n_lams=3)
        assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_fit_path_still_warns_of_cvxpy_optima_it_cannot_certify():
    """fit_path caught every ConvergenceWarning of its solves, InaccurateSolutionWarning (a
    subclass) included, and re-reported only uncertified statuses: Clarabel's "optimal" on
    separable data at tiny lam (certified relative gaps 0.03-0.6) passed without a word, where fit
    warns. One InaccurateSolutionWarning now names the lam values."""
    import warnings

    from cvxnn.errors import InaccurateSolutionWarning
    from cvxnn.estimators import ConvexGatedReLUClassifier

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = (X[:, 0] > 0).astype(int)
    Xv = rng.standard_normal((20, 3))
    yv = (Xv[:, 0] > 0).astype(int)
    est = ConvexGatedReLUClassifier(n_gates=10, random_state=0, backend="clarabel", standardize=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit_path(X, y, lams=[1e-6, 1e-8, 1e-10], validation_data=(Xv, yv), patience=10)
    assert list(est.path_["statuses"]) == ["optimal"] * 3
    inacc = [w for w in caught if issubclass(w.category, InaccurateSolutionWarning)]
    with warnings.catch_warnings(record=True) as single:  # does a plain fit at the smallest lam warn?
        warnings.simplefilter("always")
        ConvexGatedReLUClassifier(n_gates=10, random_state=0, backend="clarabel", standardize=False,
                                  lam=1e-10).fit(X, y)
    if not any(issubclass(w.category, InaccurateSolutionWarning) for w in single):
        pytest.skip("this Clarabel certifies its optimum at lam = 1e-10 (no warning to relay)")
    assert len(inacc) == 1, [str(w.message) for w in caught]
    msg = str(inacc[0].message)
    assert msg.startswith("ConvexGatedReLUClassifier.fit_path:") and "called optimal by CLARABEL" in msg
    assert inacc[0].filename == __file__


def test_clarabel_classifier_objective_is_the_thresholded_network():
    """objective_ of a CVXPY-backend fit is the objective of to_network(tol=network_tol_), the
    map that drops the interior-point solver's near-zero blocks (docs/estimators.md)."""
    from sklearn.datasets import load_wine

    rng = np.random.default_rng(5)
    X, y = load_wine(return_X_y=True)
    i = rng.choice(len(y), 60, replace=False)
    X, y = X[i][:, :5], y[i]
    est = ConvexReLUClassifier(lam=0.5, n_gates=10, random_state=0, backend="clarabel").fit(X, y)
    Xs = est.standardizer_.transform(X)
    Y = np.eye(3)[np.searchsorted(est.classes_, y)]
    assert est.network_tol_ > 0
    value = est.solution_.to_network(tol=est.network_tol_).objective(Xs, Y, est.lam_, est.solution_.loss)
    assert value == pytest.approx(est.objective_, rel=1e-12)
    assert est.objective_ == pytest.approx(est.convex_objective_, rel=1e-6)


@pytest.mark.parametrize("cls", REGRESSORS)
def test_large_uniform_sample_weights_leave_the_fit_unchanged(cls):
    """Weights times 1e17 to 1e29 (below MAX_SAMPLE_WEIGHT) with lam="auto": the same certified
    fit. The C-ReLU solver saw rows scaled by sqrt(w): float32 overflow warnings from 1e17,
    predictions off by 8e-4 at 1e20, "max_iterations" at 1e29. The program is divided by the
    mean weight; objective values are reported in the units of the weighted program, and the
    penalty of the blocks (program_penalty) is the unweighted fit's (it was multiplied too)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X, y = X[:150], y[:150]
    base = cls(lam="auto", n_gates=16, random_state=0).fit(X, y, sample_weight=np.ones(len(y)))
    for factor in (1e17, 1e29):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            est = cls(lam="auto", n_gates=16, random_state=0).fit(X, y, sample_weight=np.full(len(y), factor))
        assert est.status_ == "optimal"
        np.testing.assert_allclose(est.predict(X), base.predict(X), rtol=1e-5, atol=1e-6 * np.abs(y).max())
        assert est.convex_objective_ == pytest.approx(factor * base.convex_objective_, rel=1e-5)
        assert est.objective_ == pytest.approx(est.convex_objective_, rel=1e-6)
        assert est.gap_ is not None and 0 <= est.gap_ <= est.tol * est.convex_objective_ * (1 + 1e-9)
        assert est.solution_.lam == pytest.approx(est.lam_)
        assert est.solution_.penalty() == pytest.approx(base.solution_.penalty(), rel=1e-5)
        if base.solution_.program_penalty is not None:  # (vector output only)
            assert est.solution_.program_penalty == pytest.approx(base.solution_.program_penalty, rel=1e-5)
        Xs, ys = est.standardizer_.transform(X), est.standardizer_.transform_y(y)
        assert est.solution_.objective(Xs, ys, est.lam_, est.solution_.loss) == pytest.approx(
            est.convex_objective_, rel=1e-9)


@pytest.mark.parametrize("cls", REGRESSORS)
def test_divided_program_keeps_the_penalty_of_its_blocks(cls):
    """Vector output, uniform weights 1e5 with lam="auto" (the program divided by the mean
    weight): program_penalty is the penalty R of the blocks, the unit-weight fit's, and
    objective = loss + lam_ R in the weighted units (R was multiplied by the weight too)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    Y = np.c_[X[:, 0] - np.maximum(X[:, 1], 0), X[:, 2]] + 0.1 * rng.standard_normal((40, 2))
    kw = {"lam": "auto", "n_gates": 8, "random_state": 0}
    unit = cls(**kw).fit(X, Y)
    heavy = cls(**kw).fit(X, Y, sample_weight=np.full(40, 1e5))
    sol = heavy.solution_
    assert sol.extra.get("weight_scale") == pytest.approx(1e5)
    assert sol.program_penalty == pytest.approx(unit.solution_.program_penalty, rel=1e-5)
    assert sol.extra["program_penalty"] == sol.program_penalty
    # the loss part, in the weighted units: 1e5 times the unit-weight fit's
    fit_heavy = heavy.convex_objective_ - heavy.lam_ * sol.program_penalty
    fit_unit = unit.convex_objective_ - unit.lam_ * unit.solution_.program_penalty
    assert fit_heavy == pytest.approx(1e5 * fit_unit, rel=1e-4)


def test_huge_weights_with_a_numeric_lam_advise_rescaling():
    """Weights of 1e29 with lam=1.0: a negligible penalty, on which the native solvers stop
    uncertified and Clarabel fails ("infeasible"). The warning advised loosening tol or
    Clarabel (neither works); it now names the rescaling that does (the same program)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X, y = X[:150], y[:150]
    with pytest.warns(ConvergenceWarning) as record:
        est = ConvexReLURegressor(lam=1.0, n_gates=8, random_state=0, max_iter=50).fit(
            X, y, sample_weight=np.full(len(y), 1e29))
    assert est.status_ != "optimal"
    text = " ".join(str(w.message) for w in record if issubclass(w.category, ConvergenceWarning))
    assert "ivide sample_weight and lam by the mean weight (1e+29" in text
    assert "clarabel" not in text and "loosen tol" not in text


def test_mean_reduced_weights_get_the_ordinary_advice():
    """A mean-reduced weighted loss is the same program for any scale of the weights: weights of
    1e6 get the advice of unit weights (they were told to divide the weights and lam, which
    would change the program)."""
    from cvxnn.losses import LogisticLoss

    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 4))
    y = (X[:, 0] + 0.3 * rng.standard_normal(80) > 0).astype(int)
    texts = []
    for scale in (1.0, 1e6):
        with pytest.warns(ConvergenceWarning) as record:
            ConvexGatedReLUClassifier(lam=0.01, loss=LogisticLoss(reduction="mean"), n_gates=8, random_state=0,
                                      max_iter=3).fit(X, y, sample_weight=np.full(80, scale))
        texts.append([str(w.message).split("optimal. ")[-1] for w in record
                      if issubclass(w.category, ConvergenceWarning)])
    assert texts[0] == texts[1] and "sample_weight" not in texts[1][0]


def test_badly_scaled_targets_warn_and_advice_is_only_what_can_work():
    """standardize=False: badly scaled targets get a DataWarning (as columns do); after a
    stalled solve on a column at 1e8 the warning advises neither "raise max_iter" (the step
    size had collapsed: 100000 iterations returned the point of 10000) nor Clarabel (which
    fails on such data), only standardize=True."""
    from cvxnn.errors import DataWarning

    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 5))
    y = np.maximum(X[:, 0], 0) + X[:, 1]
    for yy in (y + 1e6, y * 1e-9):
        with pytest.warns(DataWarning, match="badly scaled targets"):
            ConvexGatedReLURegressor(n_gates=8, random_state=0, standardize=False).fit(X, yy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        ConvexGatedReLURegressor(n_gates=8, random_state=0, standardize=False).fit(X, y)
    import dataclasses

    from cvxnn import sample_patterns
    from cvxnn.estimators import _convergence_advice

    X2 = rng.standard_normal((200, 5))
    y2 = np.maximum(X2[:, 0], 0) + X2[:, 1]
    X2[:, 0] *= 1e8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = ConvexReLURegressor(random_state=0, standardize=False, max_iter=50).fit(X2, y2)
    pats = sample_patterns(X2, 8, seed=0, bias=True)
    stalled = dataclasses.replace(est.solution_, step_size=1e-19)
    advice = _convergence_advice(est, X2, y2, pats, stalled)
    assert "standardize=True" in advice and "clarabel" not in advice and "max_iter" not in advice
    moving = dataclasses.replace(est.solution_, step_size=1e-3)
    assert "max_iter" in _convergence_advice(est, X2, y2, pats, moving)
    # standardized data of the same size: Clarabel is advised (it takes such programs)
    plain = ConvexReLURegressor(random_state=0)
    assert "backend='clarabel'" in _convergence_advice(plain, X, y, sample_patterns(X, 8, seed=0, bias=True), moving)


def test_a_logistic_loss_instance_on_many_classes_is_its_multinomial_form():
    """get_loss('logistic', reduction='mean') on 3 classes was refused with advice to use
    'logistic'; it now fits as the string does (cross-entropy), with the instance's reduction."""
    from cvxnn.losses import get_loss

    X, labels = load_three_blobs()
    est = ConvexGatedReLUClassifier(n_gates=6, random_state=0, loss=get_loss("logistic", reduction="mean"))
    est.fit(X, labels)
    assert est.solution_.loss == get_loss("cross_entropy", reduction="mean")
    ref = ConvexGatedReLUClassifier(n_gates=6, random_state=0, lam=est.lam_,
                                    loss=get_loss("cross_entropy", reduction="mean")).fit(X, labels)
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    with pytest.raises(InvalidParameterError, match="cross_entropy"):
        ConvexGatedReLUClassifier(n_gates=6, loss="hinge").fit(X, labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_regressor_score_with_non_finite_targets_is_a_typed_error(bad):
    """score() passed NaN / inf targets to scikit-learn's r2_score, whose bare ValueError
    escaped ``except InputError``; fit() already raised a typed error for the same y."""
    from cvxnn.errors import NonFiniteError

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    Y = np.c_[X[:, 0], X[:, 1] - X[:, 2]]
    est = ConvexGatedReLURegressor(n_gates=8, random_state=0).fit(X, Y)
    Yb = Y.copy()
    Yb[0, 1] = bad
    with pytest.raises(NonFiniteError, match=r"y contains NaN or infinity \(first at index \(0, 1\)"):
        est.score(X, Yb)
    with pytest.raises(InputError):
        est.score(X, Yb[:, 1])  # the shape check comes first, a typed error too
    assert np.isfinite(est.score(X, Y))
