"""solver="auto" for the nuclear-norm C-ReLU program: Clarabel while the program fits
AUTO_CVXPY_MAX_BYTES (the native augmented Lagrangian has no Newton finish for it and rarely
certifies), the native solvers otherwise."""

import warnings

import numpy as np
import pytest

import cvxnn
from cvxnn.backends import registry


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    labels = np.argmax(X @ rng.standard_normal((3, 3)), axis=1)
    return X, np.eye(3)[labels], cvxnn.sample_patterns(X, 4, seed=0)


def test_auto_solves_nuclear_relu_with_clarabel(data):
    X, Y, pats = data
    sol = cvxnn.solve(X, Y, pats, activation="relu", loss="cross_entropy", lam=0.3, formulation="nuclear")
    assert (sol.backend, sol.solver) == ("cvxpy", "CLARABEL")
    assert sol.status == "optimal" and sol.formulation == "nuclear"
    ref = cvxnn.solve(X, Y, pats, activation="relu", loss="cross_entropy", lam=0.3, formulation="nuclear",
                      solver="clarabel")
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-9)


@pytest.mark.parametrize("case", ["callback", "native_option", "one_vs_all", "gated", "too_large", "native_name"])
def test_auto_stays_native(data, case, monkeypatch):
    X, Y, pats = data
    kw = dict(activation="relu", loss="cross_entropy", lam=0.3, formulation="nuclear", max_iter=50)
    if case == "callback":
        kw["callback"] = lambda info: None
    elif case == "native_option":
        kw["feas_tol"] = 1e-5
    elif case == "one_vs_all":
        kw["formulation"] = "one_vs_all"
    elif case == "gated":
        kw["activation"] = "gated_relu"
    elif case == "too_large":
        monkeypatch.setattr(registry, "AUTO_CVXPY_MAX_BYTES", 1000)
    elif case == "native_name":
        kw["solver"] = "native"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 50 iterations of the augmented Lagrangian need not certify
        sol = cvxnn.solve(X, Y, pats, **kw)
    assert sol.backend == "native"
