"""The documented defaults (docs/estimators.md, "How the defaults were chosen") are the
constructors' defaults, ``lam="auto"`` resolves as documented, and every estimator at its
defaults certifies, with no warning, on scikit-learn's breast cancer, digits, wine, iris and
diabetes."""

from __future__ import annotations

import numpy as np
import pytest

from cvxnn.errors import InvalidParameterError
from cvxnn.estimators import (
    AUTO_LAM_FRACTION,
    GATED_CV_DEFAULTS,
    GATED_DEFAULTS,
    ConvexGatedReLUClassifier,
    ConvexGatedReLUClassifierCV,
    ConvexGatedReLURegressor,
    ConvexGatedReLURegressorCV,
    ConvexReLUClassifier,
    ConvexReLUClassifierCV,
    ConvexReLURegressor,
    ConvexReLURegressorCV,
    resolve_lam,
)

GATED = (ConvexGatedReLUClassifier, ConvexGatedReLURegressor)
GATED_CV = (ConvexGatedReLUClassifierCV, ConvexGatedReLURegressorCV)


def test_documented_gated_defaults():
    assert GATED_DEFAULTS == {"lam": "auto", "n_gates": 100, "tol": 1e-4}
    assert AUTO_LAM_FRACTION == {"classifier": 1e-2, "regressor": 3e-2}
    for cls in GATED + GATED_CV:
        params = cls().get_params()
        assert params["n_gates"] == 100 and params["tol"] == 1e-4 and params["max_iter"] == 10_000
        assert f"n_gates : int, default={params['n_gates']}" in cls.__doc__ or "n_gates=100" in cls.__doc__
    for cls in GATED:
        assert cls().get_params()["lam"] == "auto"
        assert 'default=\'auto\'' in cls.__doc__ and "tol : float, default=1e-4" in cls.__doc__
    for cls in GATED_CV:
        params = cls().get_params()
        assert (params["n_lams"], params["lam_min_ratio"]) == (7, 1e-3)
        assert GATED_CV_DEFAULTS == {"n_lams": 7, "lam_min_ratio": 1e-3}
        assert "n_lams : int, default=7" in cls.__doc__


def test_relu_defaults():
    from cvxnn.estimators import RELU_CLASSIFIER_DEFAULTS

    assert RELU_CLASSIFIER_DEFAULTS == {"lam": "auto", "n_gates": 100, "tol": 1e-6}
    assert {k: ConvexReLUClassifier().get_params()[k] for k in ("lam", "n_gates", "tol")} == RELU_CLASSIFIER_DEFAULTS
    assert {k: ConvexReLURegressor().get_params()[k] for k in ("lam", "n_gates", "tol")} == \
        {"lam": 1.0, "n_gates": 32, "tol": 1e-6}
    params = ConvexReLUClassifierCV().get_params()
    assert (params["n_lams"], params["lam_min_ratio"], params["n_gates"], params["tol"]) == (10, 1e-3, 100, 1e-6)
    assert "n_gates=100" in ConvexReLUClassifierCV.__doc__
    params = ConvexReLURegressorCV().get_params()
    assert (params["n_lams"], params["lam_min_ratio"], params["n_gates"], params["tol"]) == (10, 1e-3, 32, 1e-6)


def test_defaults_table_in_docs_matches():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "estimators.md").read_text()
    assert "## How the defaults were chosen" in text
    assert "python benchmarks/bench_defaults.py" in text
    for needle in ('`"auto"`', "`0.01 n`", "`0.03 n`", "`100`", "`1e-4`"):
        assert needle in text, needle


def test_resolve_lam():
    assert resolve_lam(0.5, 100, kind="classifier") == 0.5
    assert resolve_lam("auto", 200, kind="classifier") == pytest.approx(2.0)
    assert resolve_lam("auto", 200, kind="regressor") == pytest.approx(6.0)
    from cvxnn.losses import get_loss

    assert resolve_lam("auto", 200, kind="regressor", loss=get_loss("squared", reduction="mean")) == 3e-2
    with pytest.raises(InvalidParameterError, match="'auto'"):
        resolve_lam("Auto", 10, kind="classifier")
    with pytest.raises(InvalidParameterError, match="kind"):
        resolve_lam("auto", 10, kind="ranker")


@pytest.mark.parametrize("bad", ["automatic", "", "0.1"])
def test_bad_lam_string_is_a_typed_error(bad):
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(InvalidParameterError, match="lam"):
        ConvexGatedReLUClassifier(lam=bad, n_gates=4).fit(X, y)


@pytest.mark.parametrize("loader", ["load_iris", "load_wine"])
def test_default_gated_fit_is_certified(loader):
    from sklearn import datasets

    X, y = getattr(datasets, loader)(return_X_y=True)
    est = ConvexGatedReLUClassifier(random_state=0).fit(X, y)
    assert est.status_ == "optimal"
    assert est.lam_ == pytest.approx(AUTO_LAM_FRACTION["classifier"] * X.shape[0])
    # "optimal" certifies a relative gap <= tol
    assert est.gap_ is not None and est.gap_ <= est.tol * abs(est.convex_objective_) * (1 + 1e-9)
    assert est.score(X, y) > 0.95


def _split(name: str):
    """scikit-learn's data set, standardized, 70/30 split (stratified for classification),
    ``random_state=0``: the setting of the issue and of benchmarks/bench_defaults.py."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0,
                                          stratify=None if name == "diabetes" else y)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris", "diabetes",
                                  pytest.param("digits", marks=pytest.mark.slow)])
@pytest.mark.parametrize("model", ["relu", "gated"])
def test_defaults_certify_without_a_warning_on_real_data(name, model):
    """Every estimator at its defaults certifies, with no warning, on standardized breast
    cancer, digits, wine, iris and diabetes (the ReLU classifier on digits is a 10-class
    one-vs-all C-ReLU program: several seconds)."""
    import warnings

    Xtr, Xte, ytr, yte = _split(name)
    cls = {("relu", False): ConvexReLUClassifier, ("gated", False): ConvexGatedReLUClassifier,
           ("relu", True): ConvexReLURegressor, ("gated", True): ConvexGatedReLURegressor}[model, name == "diabetes"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = cls(random_state=0).fit(Xtr, ytr)
    # (a dependency's own deprecation notices are not the fit's business)
    shown = [w for w in caught if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    assert not shown, [str(w.message) for w in shown]
    assert est.status_ == "optimal"
    assert est.gap_ is not None and est.gap_ <= est.tol * abs(est.convex_objective_) * (1 + 1e-9)
    assert est.score(Xte, yte) > (0.25 if name == "diabetes" else 0.9)


def test_auto_lam_uses_the_sample_weights():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    w = np.where(np.arange(y.size) % 2 == 0, 2.0, 0.0)  # zero weights remove the samples
    est = ConvexGatedReLUClassifier(n_gates=8, random_state=0).fit(X, y, sample_weight=w)
    assert est.lam_ == pytest.approx(AUTO_LAM_FRACTION["classifier"] * w.sum())
    reg = ConvexGatedReLURegressor(n_gates=8, random_state=0).fit(X[:, :3], X[:, 3])
    assert reg.lam_ == pytest.approx(AUTO_LAM_FRACTION["regressor"] * X.shape[0])
    assert reg.status_ == "optimal"
