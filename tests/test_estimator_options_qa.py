"""The estimators with non-default options on scikit-learn's data, as a demanding user runs them.

Regression tests for the defects this QA pass found (classifier ``score`` with bad
``sample_weight`` or labels; convergence advice for CVXPY solves that named what cannot work),
and guards for what it checked: objectives recomputed independently from ``network_``, weights
against repeated rows, tiny ``max_iter``, ``lam`` at ``lam_max``, native against Clarabel on the
same program, label types and the prediction methods against the network.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy.special import expit, logsumexp, softmax

pytest.importorskip("sklearn")

from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris  # noqa: E402

from cvxnn import (  # noqa: E402
    ConvexGatedReLUClassifier,
    ConvexGatedReLUClassifierCV,
    ConvexGatedReLURegressor,
    ConvexReLUClassifier,
    ConvexReLUClassifierCV,
    ConvexReLURegressor,
)
from cvxnn.errors import ConvergenceWarning, InvalidParameterError, ShapeError  # noqa: E402
from cvxnn.networks import GatedReLUNetwork  # noqa: E402

CLASSIFIERS = (ConvexGatedReLUClassifier, ConvexReLUClassifier)
REGRESSORS = (ConvexGatedReLURegressor, ConvexReLURegressor)


def _split(loader, n: int):
    """Standardized rows, 70/30 split (random_state=0), the first ``n`` training rows."""
    from sklearn.model_selection import train_test_split

    X, y = loader(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    return Xtr[:n], Xte, ytr[:n], yte


def _objective(est, X, y, sample_weight=None) -> float:
    """``objective_`` recomputed from the weights of the network on the data the solver saw:
    the summed (weighted) loss plus ``lam_/2`` times the squared weights (docs/math.md)."""
    std = est.standardizer_
    Xs = X if std is None else std.transform(X)
    net = est.solution_.to_network(tol=est.network_tol_)
    Z = Xs @ net.W1 + (0.0 if net.b1 is None else net.b1)
    if isinstance(net, GatedReLUNetwork):
        H = ((Xs @ net.gates + (0.0 if net.gate_bias is None else net.gate_bias)) >= 0) * Z
    else:
        H = np.maximum(Z, 0.0)
    f = H @ net.w2
    penalty = 0.5 * est.lam_ * (np.sum(net.W1 ** 2) + (0.0 if net.b1 is None else np.sum(net.b1 ** 2))
                                + np.sum(net.w2 ** 2))
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    name = est.solution_.loss.name
    if hasattr(est, "classes_"):
        k = np.searchsorted(est.classes_, y)
        t = np.where(k == 1, 1.0, -1.0) if len(est.classes_) == 2 else np.eye(len(est.classes_))[k]
    else:
        t = y if std is None or std.y_mean_ is None else std.transform_y(y)
    if name == "squared":
        per = 0.5 * ((f - t) ** 2 if f.ndim == 1 else np.sum((f - t) ** 2, axis=1))
    elif name == "logistic":
        per = np.logaddexp(0.0, -t * f)
    elif name == "cross_entropy":
        per = logsumexp(f, axis=1) - np.sum(f * t, axis=1)
    else:  # pragma: no cover - the tests use the three above
        raise AssertionError(name)
    return float(np.sum(w * per) + penalty)


# ------------------------------------------------------------------------------------------
# Defects found (fail before the fixes)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [ConvexGatedReLUClassifier, ConvexReLUClassifierCV])
def test_classifier_score_checks_weights_and_labels_as_the_regressors_do(cls):
    """``score`` of the classifiers went to scikit-learn's ``accuracy_score`` unchecked: weights
    of -1 everywhere scored 0.936 (as weights of 1), and weights or labels of another length
    raised a bare ``ValueError``. The regressors refused both with typed errors; now the
    classifiers do too, and valid weights give the weighted accuracy."""
    Xtr, Xte, ytr, yte = _split(load_breast_cancer, 60)
    kw = {"n_lams": 2, "cv": 2} if cls is ConvexReLUClassifierCV else {}
    est = cls(n_gates=6, random_state=0, **kw).fit(Xtr, ytr)
    with pytest.raises(InvalidParameterError, match="non-negative"):
        est.score(Xte, yte, sample_weight=-np.ones(len(yte)))
    with pytest.raises(ShapeError, match="sample_weight"):
        est.score(Xte, yte, sample_weight=np.ones(3))
    with pytest.raises(ShapeError, match="one label per row"):
        est.score(Xte, yte[:5])
    w = np.arange(len(yte)) % 3
    expected = np.sum(w * (est.predict(Xte) == yte)) / np.sum(w)
    assert est.score(Xte, yte, sample_weight=w) == pytest.approx(expected, abs=1e-15)
    assert est.score(Xte, yte) == pytest.approx(np.mean(est.predict(Xte) == yte), abs=1e-15)


def test_cvxpy_advice_never_names_what_cannot_work():
    """A Clarabel fit with the absolute loss that stopped uncertified was told "Raise max_iter,
    loosen tol or try backend='native'": Clarabel ignores tol, an "optimal_inaccurate" run (9 of
    10000 iterations on diabetes) is not helped by more iterations, and the native solvers refuse
    the absolute loss. The advice is now what applies: more iterations only at the limit, and
    another conic solver (SCS certifies that fit)."""
    from cvxnn.estimators import _convergence_advice

    Xtr, _, ytr, _ = _split(load_diabetes, 40)
    with pytest.warns(ConvergenceWarning) as record:
        est = ConvexGatedReLURegressor(loss="absolute", lam=1.0, n_gates=6, random_state=0, backend="clarabel",
                                       max_iter=3).fit(Xtr, ytr)
    assert est.status_ == "max_iterations"
    msg = str([r for r in record if issubclass(r.category, ConvergenceWarning)][-1].message)
    advice = msg.split("optimal. ")[-1]
    assert "raise max_iter" in advice.lower() and "backend='scs'" in advice
    assert "native" not in advice and "loosen tol" not in advice
    inaccurate = dataclasses.replace(est.solution_, status="optimal_inaccurate")
    advice = _convergence_advice(est, est._transform(Xtr), ytr, est.patterns_, inaccurate)
    assert advice == "Try backend='scs'"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fixed = ConvexGatedReLURegressor(loss="absolute", lam=1.0, n_gates=6, random_state=0,
                                         backend="scs").fit(Xtr, ytr)
    assert fixed.status_ == "optimal"
    # a smooth loss: the native backend is still suggested (it takes the program), without tol
    smooth = ConvexGatedReLURegressor(lam=1.0, n_gates=6, random_state=0, backend="clarabel")
    smooth.fit(Xtr, ytr)
    stopped = dataclasses.replace(smooth.solution_, status="max_iterations")
    advice = _convergence_advice(smooth, smooth._transform(Xtr), ytr, smooth.patterns_, stopped)
    assert advice == "Raise max_iter or try backend='native'"
    # lam = 0: the native solvers refuse it too
    zero = dataclasses.replace(stopped, lam=0.0)
    assert "native" not in _convergence_advice(smooth, smooth._transform(Xtr), ytr, smooth.patterns_, zero)


# ------------------------------------------------------------------------------------------
# Guards for what was checked
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,loss,bias", [
    (ConvexGatedReLUClassifier, "logistic", False), (ConvexReLUClassifier, "squared", True),
    (ConvexGatedReLURegressor, "squared", False), (ConvexReLURegressor, "squared", True),
])
def test_objective_is_the_networks_and_weight_two_is_a_repeated_row(cls, loss, bias):
    """``objective_`` equals the objective recomputed by hand from ``network_``'s weights (weighted
    loss plus ``lam/2`` weight decay), and integer weights give the objective of repeated rows
    (fixed gates, tight tolerance)."""
    loader = load_diabetes if cls in REGRESSORS else load_breast_cancer
    Xtr, _, ytr, _ = _split(loader, 50)
    w = np.arange(len(ytr)) % 3
    rows = np.repeat(np.arange(len(ytr)), w)
    gates = np.random.default_rng(0).standard_normal((Xtr.shape[1] + int(bias), 8))
    kw = dict(gates=gates, lam=1.0, loss=loss, bias=bias, standardize=False, tol=1e-9)
    a = cls(**kw).fit(Xtr, ytr, sample_weight=w)
    b = cls(**kw).fit(Xtr[rows], ytr[rows])
    assert a.status_ == b.status_ == "optimal"
    assert a.objective_ == pytest.approx(_objective(a, Xtr, ytr, w), rel=1e-12)
    assert a.convex_objective_ == pytest.approx(b.convex_objective_, rel=1e-8)
    assert a.objective_ == pytest.approx(a.convex_objective_, rel=1e-12)


@pytest.mark.parametrize("cls", CLASSIFIERS + REGRESSORS)
def test_tiny_max_iter_is_never_silently_optimal(cls):
    loader = load_diabetes if cls in REGRESSORS else load_iris
    Xtr, _, ytr, _ = _split(loader, 100)
    with pytest.warns(ConvergenceWarning, match="max_iterations") as record:
        est = cls(n_gates=8, random_state=0, max_iter=2).fit(Xtr, ytr)
    assert sum(issubclass(r.category, ConvergenceWarning) for r in record) == 1
    assert est.status_ == "max_iterations" and not est.solution_.converged
    assert est.gap_ is None or est.gap_ > est.tol * abs(est.convex_objective_)


@pytest.mark.parametrize("cls", CLASSIFIERS + REGRESSORS)
def test_lam_at_lam_max_is_the_zero_network_on_both_backends(cls):
    from cvxnn.estimators import default_lam_grid

    loader = load_diabetes if cls in REGRESSORS else load_iris
    Xtr, Xte, ytr, _ = _split(loader, 40)
    probe = cls(n_gates=6, random_state=0)
    X, y_enc, loss, w, _ = probe._encode_for_fit(Xtr, ytr, None)
    lam_max = float(default_lam_grid(probe, X, y_enc, loss, w, 1, 1.0)[0])
    for backend in ("native", "clarabel"):
        for lam in (lam_max, 2 * lam_max):
            with warnings.catch_warnings():
                warnings.simplefilter("error", ConvergenceWarning)
                est = cls(n_gates=6, random_state=0, backend=backend, lam=lam).fit(Xtr, ytr)
            assert est.status_ == "optimal" and est.n_active_neurons_ == 0
            assert est.objective_ == pytest.approx(est.convex_objective_, rel=1e-12)
    # just below lam_max the network is not zero
    assert cls(n_gates=6, random_state=0, lam=0.9 * lam_max).fit(Xtr, ytr).n_active_neurons_ > 0


@pytest.mark.parametrize("cls,loader", [
    (ConvexGatedReLUClassifier, load_iris), (ConvexReLUClassifier, load_iris),
    (ConvexGatedReLURegressor, load_diabetes), (ConvexReLURegressor, load_diabetes),
])
@pytest.mark.parametrize("bias", [True, False])
def test_native_agrees_with_clarabel_on_the_same_program(cls, loader, bias):
    Xtr, _, ytr, _ = _split(loader, 60)
    a = cls(n_gates=10, random_state=0, lam=2.0, bias=bias, tol=1e-9).fit(Xtr, ytr)
    b = cls(gates=a.patterns_.gates, lam=2.0, bias=bias, backend="clarabel").fit(Xtr, ytr)
    assert a.status_ == b.status_ == "optimal"
    assert a.convex_objective_ == pytest.approx(b.convex_objective_, rel=1e-6)
    assert a.gap_ <= 1e-9 * abs(a.convex_objective_)
    assert b.convex_objective_ >= a.convex_objective_ - a.gap_ - 1e-12  # the native value is certified


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_label_types_and_prediction_methods_agree_with_the_network(cls):
    """String, negative and non-contiguous labels (in the order of 0..k-1) give the fit of 0..k-1,
    and decision_function / predict / predict_proba are those of ``network_``. (A relabelling
    that reverses the order gives the same outputs with the columns reversed, but test points
    that no gate reaches have all outputs 0, a tie that goes to ``classes_[0]``.)"""
    Xtr, Xte, ytr, _ = _split(load_iris, 90)
    ref = cls(n_gates=8, random_state=0, tol=1e-9).fit(Xtr, ytr)
    for relabel in (lambda k: 5 * k - 9, lambda k: 10 ** k + 7, lambda k: np.array(["a", "b", "c"])[k]):
        est = cls(n_gates=8, random_state=0, tol=1e-9).fit(Xtr, relabel(ytr))
        assert np.array_equal(est.predict(Xte), relabel(ref.predict(Xte)))
        assert est.objective_ == pytest.approx(ref.objective_, rel=1e-7)
        out = est.network_.predict(Xte)
        assert np.array_equal(est.decision_function(Xte), out)
        assert np.array_equal(est.predict(Xte), est.classes_[out.argmax(axis=1)])
        assert np.allclose(est.predict_proba(Xte), softmax(out, axis=1), rtol=0, atol=1e-15)
    Xb, Xbt, yb, _ = _split(load_breast_cancer, 60)
    binary = cls(n_gates=6, random_state=0).fit(Xb, np.where(yb == 1, "yes", "no"))
    out = binary.network_.predict(Xbt)
    assert np.array_equal(binary.predict(Xbt), np.where(out > 0, "yes", "no"))
    assert np.allclose(binary.predict_proba(Xbt)[:, 1], expit(out), rtol=0, atol=1e-15)
    assert binary.objective_ == pytest.approx(_objective(binary, Xb, np.where(yb == 1, "yes", "no")), rel=1e-12)


def test_class_weight_is_the_sample_weight_of_its_classes():
    Xtr, _, ytr, _ = _split(load_iris, 90)
    for cls in CLASSIFIERS:
        a = cls(n_gates=6, random_state=0, class_weight="balanced", tol=1e-9).fit(Xtr, ytr)
        sw = (len(ytr) / (3 * np.bincount(ytr)))[ytr]
        b = cls(n_gates=6, random_state=0, tol=1e-9).fit(Xtr, ytr, sample_weight=sw)
        assert a.lam_ == pytest.approx(b.lam_, rel=1e-12)
        assert a.objective_ == pytest.approx(b.objective_, rel=1e-9)
        assert a.objective_ == pytest.approx(_objective(a, Xtr, ytr, sw), rel=1e-12)


def test_cv_with_options_refits_certified_at_its_lam():
    Xtr, _, ytr, _ = _split(load_iris, 90)
    est = ConvexGatedReLUClassifierCV(n_gates=8, random_state=0, n_lams=3, cv=3, bias=False, loss="squared",
                                      class_weight="balanced").fit(Xtr, ytr)
    assert est.status_ == "optimal" and est.lam_ == est.best_estimator_.lam_
    assert est.gap_ <= est.tol * abs(est.convex_objective_)
    assert np.array_equal(est.decision_function(Xtr), est.best_estimator_.network_.predict(Xtr))
