"""QA of regularisation paths and lam_max on standardized subsamples of real data sets."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.preprocessing import StandardScaler

from cvxnn import ConvexGatedReLUClassifier, ConvexReLUClassifier, sample_patterns, solve
from cvxnn.errors import InvalidParameterError, NonFiniteError
from cvxnn.estimators import default_lam_grid
from cvxnn.path import lam_max, regularization_path


def _subsample(loader, n, seed=0):
    X, y = loader(return_X_y=True)
    idx = np.random.default_rng(seed).choice(len(X), n, replace=False)
    return X[idx], y[idx]


@pytest.fixture(scope="module")
def breast_cancer():
    X, y = _subsample(load_breast_cancer, 100)
    return StandardScaler().fit_transform(X), np.where(y == 1, 1.0, -1.0)


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_path_zero_at_lam_max_and_matches_cold_solves(breast_cancer, activation):
    X, y = breast_cancer
    pats = sample_patterns(X, 8, seed=1, bias=True)
    lm = lam_max(X, y, pats, activation, "logistic")
    lams = [1.0001 * lm, lm, 0.999 * lm, 0.3 * lm]
    path = regularization_path(X, y, pats, activation=activation, loss="logistic", lams=lams, backend="native")
    assert path.statuses == ["optimal"] * 4
    for lam, sol in zip(path.lams, path.solutions, strict=True):
        if lam >= lm:
            assert sol.solver == "lam_max" and not np.any(sol.effective_weights)
        cold = solve(X, y, pats, activation=activation, loss="logistic", lam=lam, solver="clarabel")
        assert sol.objective_value == pytest.approx(cold.objective_value, rel=1e-6)
    assert np.abs(path.solutions[3].effective_weights).max() > 1e-3


def test_path_lams_are_validated(breast_cancer):
    X, y = breast_cancer
    pats = sample_patterns(X, 8, seed=1, bias=True)
    for bad, err, word in (([1.0, -1.0], InvalidParameterError, ">= 0"), ([np.nan], NonFiniteError, "finite"),
                           ([], InvalidParameterError, "empty")):
        with pytest.raises(err, match=word):
            regularization_path(X, y, pats, loss="logistic", lams=bad, backend="native")


def test_uncertified_path_point_is_not_optimal(breast_cancer):
    X, y = breast_cancer
    pats = sample_patterns(X, 8, seed=1, bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = regularization_path(X, y, pats, loss="logistic", n_lams=3, backend="clarabel",
                                   solver_opts={"max_iter": 2})
    assert path.statuses[0] == "optimal" and path.solutions[0].solver == "lam_max"
    assert all(s != "optimal" for s in path.statuses[1:])


@pytest.mark.parametrize("cls, loader, n_gates", [(ConvexReLUClassifier, load_iris, 8),
                                                   (ConvexGatedReLUClassifier, load_breast_cancer, 12)])
def test_cvxpy_estimator_is_exactly_zero_at_lam_max(cls, loader, n_gates):
    """Clarabel at lam >= lam_max left solver noise that mapped to neurons (iris: three, accuracy
    0.66 where the zero model's is 0.29), in the estimator and in ``cvxnn path --backend cvxpy``."""
    X, y = _subsample(loader, 100 if loader is load_iris else 120)
    base = cls(n_gates=n_gates, random_state=0, backend="clarabel")
    Xv, y_enc, loss, w, _ = base._encode_for_fit(X, y, None)
    lm = float(default_lam_grid(base, Xv, y_enc, loss, w, 2, 1e-3)[0])
    native = cls(n_gates=n_gates, random_state=0, lam=lm).fit(X, y)
    for f in (1.0, 1.01):
        est = cls(n_gates=n_gates, random_state=0, backend="clarabel", lam=f * lm).fit(X, y)
        assert est.n_active_neurons_ == 0 and est.status_ == "optimal"
        assert not np.any(est.solution_.effective_weights)
        assert est.score(X, y) == native.score(X, y)
        assert est.objective_ == pytest.approx(native.objective_, rel=1e-12)
    below = cls(n_gates=n_gates, random_state=0, backend="clarabel", lam=0.9 * lm).fit(X, y)
    assert below.n_active_neurons_ > 0
