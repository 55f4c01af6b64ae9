"""scikit-learn workflows checked against the newest scikit-learn (QA regression guard):
round trips, metadata routing, label types and search reproducibility on real data."""

import copy
import io
import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_diabetes, load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_validate  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from cvxnn.estimators import (  # noqa: E402
    ConvexGatedReLUClassifier,
    ConvexGatedReLURegressor,
    ConvexReLUClassifier,
)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:150], y[:150]


@pytest.mark.parametrize("cls", [ConvexReLUClassifier, ConvexGatedReLUClassifier])
def test_pipeline_round_trips_keep_predictions(cls, iris):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), cls(n_gates=8, random_state=0)).fit(X, y)
    proba = pipe.predict_proba(X)
    buf = io.BytesIO()
    joblib.dump(pipe, buf)
    buf.seek(0)
    for other in (pickle.loads(pickle.dumps(pipe)), joblib.load(buf), copy.deepcopy(pipe)):
        assert np.array_equal(other.predict_proba(X), proba)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert not hasattr(clone(pipe)[-1], "network_")


@pytest.mark.parametrize("labels", [np.array(["setosa", "versicolor", "virginica"]),
                                    np.array([5, -1, 2]), np.array(["c", "a", "b"], dtype=object)])
def test_classes_order_and_proba_columns(labels, iris):
    X, y = iris
    yl = labels[y]
    clf = ConvexGatedReLUClassifier(n_gates=8, random_state=0).fit(X, yl)
    assert list(clf.classes_) == sorted(set(yl.tolist()))
    proba = clf.predict_proba(X)
    assert np.array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    assert clf.decision_function(X).shape == (len(X), 3)


def test_metadata_routing_sample_weight(diabetes):
    X, y = diabetes
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        est = ConvexGatedReLURegressor(n_gates=8, random_state=0)
        est.set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        res = cross_validate(est, X, y, cv=3, params={"sample_weight": w})
        search = GridSearchCV(est, {"lam": [1.0, 3.0]}, cv=3).fit(X, y, sample_weight=w)
    assert np.all(np.isfinite(res["test_score"]))
    assert search.best_params_["lam"] in (1.0, 3.0)


def test_search_reproducible_across_n_jobs(diabetes):
    X, y = diabetes
    grid = {"lam": [1.0, 3.0]}
    a = GridSearchCV(ConvexGatedReLURegressor(n_gates=8, random_state=0), grid, cv=3, n_jobs=1).fit(X, y)
    b = GridSearchCV(ConvexGatedReLURegressor(n_gates=8, random_state=0), grid, cv=3, n_jobs=2).fit(X, y)
    assert np.array_equal(a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"])


@pytest.mark.filterwarnings("error::FutureWarning")
@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_odd_inputs_without_deprecations(iris):
    X, y = iris
    ref = ConvexGatedReLUClassifier(n_gates=8, random_state=0).fit(X, y).predict(X)
    ro = X.copy()
    ro.flags.writeable = False
    for Xa in (X.tolist(), np.asfortranarray(X), ro):
        assert np.array_equal(ConvexGatedReLUClassifier(n_gates=8, random_state=0).fit(Xa, y).predict(Xa), ref)
    assert "Fitted" in ConvexGatedReLUClassifier(n_gates=8, random_state=0).fit(X, y)._repr_html_()
