"""QA of the ...CV estimators with joblib parallelism and scikit-learn composition."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")

from sklearn.datasets import load_diabetes, load_iris  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from cvxnn import ConvexGatedReLUClassifierCV, ConvexGatedReLURegressorCV  # noqa: E402
from cvxnn.errors import ConvergenceWarning, InvalidParameterError  # noqa: E402


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X[:120]), y[:120]


def _convergence_messages(fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = fit()
    return est, sorted(str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning))


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_fold_fit_warnings_reach_the_caller(iris, backend):
    # the fold fits' ConvergenceWarnings were lost with loky (printed on the worker's stderr) and
    # at random with threads (concurrent warnings.catch_warnings took each other's warnings)
    X, y = iris
    kw = dict(n_gates=8, n_lams=3, cv=3, random_state=0, max_iter=3)
    ref, expected = _convergence_messages(lambda: ConvexGatedReLUClassifierCV(n_jobs=1, **kw).fit(X, y))
    assert len(expected) == int(np.sum(ref.statuses_ != "optimal")) + 1  # fold fits + the refit
    for _ in range(2):
        with joblib.parallel_config(backend=backend):
            est, got = _convergence_messages(lambda: ConvexGatedReLUClassifierCV(n_jobs=2, **kw).fit(X, y))
        assert got == expected
        np.testing.assert_array_equal(est.scores_, ref.scores_)
        np.testing.assert_array_equal(est.statuses_, ref.statuses_)
        assert est.lam_ == ref.lam_


def test_groups_reach_the_splitter(diabetes):
    X, y = diabetes
    groups = np.arange(y.size) % 5
    kw = dict(n_gates=8, n_lams=3, random_state=0)
    a = ConvexGatedReLURegressorCV(cv=GroupKFold(3), n_jobs=2, **kw).fit(X, y, groups=groups)
    b = ConvexGatedReLURegressorCV(cv=list(GroupKFold(3).split(X, y, groups)), **kw).fit(X, y)
    assert a.lam_ == b.lam_ and a.n_splits_ == 3
    np.testing.assert_array_equal(a.scores_, b.scores_)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).predict(X), b.predict(X))
    with pytest.raises(InvalidParameterError, match="groups"):
        ConvexGatedReLURegressorCV(cv=GroupKFold(3), **kw).fit(X, y)
    with pytest.raises(InvalidParameterError, match="cannot split"):
        ConvexGatedReLURegressorCV(cv=GroupKFold(3), **kw).fit(X, y, groups=groups[:10])
