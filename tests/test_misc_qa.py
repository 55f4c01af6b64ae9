"""QA round on path, pruning and the copositive relaxation: bad callables are typed errors before
any solve, and the relaxation recognises the zero network at lam >= lam_max."""

from __future__ import annotations

import numpy as np
import pytest

import cvxnn
from cvxnn.errors import InvalidParameterError
from cvxnn.optimality import pruning_path
from cvxnn.path import lam_max, regularization_path, solve_path, walk_path
from cvxnn.relaxations import copositive_relaxation


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0.0) + 0.1 * rng.standard_normal(12)
    return X, y, cvxnn.sample_patterns(X, 10, seed=0, bias=True)


def _counting_step(calls):
    def step(lam, warm):
        calls.append(lam)
        raise AssertionError("no solve may run before the arguments are checked")
    return step


@pytest.mark.parametrize("callback", [3, "stop"])
def test_path_callback_not_callable_is_refused_before_any_solve(small, callback):
    X, y, P = small
    calls = []
    with pytest.raises(InvalidParameterError, match="callback must be callable"):
        list(walk_path([1.0, 0.1], _counting_step(calls), callback=callback))
    assert calls == []
    with pytest.raises(InvalidParameterError, match="callback must be callable"):
        list(solve_path(X, y, P, [1.0, 0.1], callback=callback))
    with pytest.raises(InvalidParameterError, match="callback must be callable"):
        regularization_path(X, y, P, n_lams=2, callback=callback)


@pytest.mark.parametrize("opts", [3, ["eps", 1e-6], {1: 2}])
def test_path_solver_opts_must_be_a_dict(small, opts):
    X, y, P = small
    with pytest.raises(InvalidParameterError, match="solver_opts"):
        regularization_path(X, y, P, n_lams=2, solver_opts=opts)
    with pytest.raises(InvalidParameterError, match="solver_opts"):
        list(solve_path(X, y, P, [1.0], solver_opts=opts))


def test_walk_path_warm_start_flag_checked(small):
    calls = []
    with pytest.raises(InvalidParameterError, match="warm_start"):
        list(walk_path([1.0], _counting_step(calls), warm_start="no"))
    assert calls == []


def test_path_valid_options_still_work(small):
    X, y, P = small
    seen = []
    path = regularization_path(X, y, P, activation="gated_relu", n_lams=3, backend="native",
                               solver_opts={}, callback=lambda k, lam, sol: seen.append(k))
    assert seen == [0, 1, 2] and path.statuses == ["optimal"] * 3


def test_pruning_path_score_checked_before_pruning(small):
    X, y, P = small
    sol = cvxnn.solve(X, y, P, activation="gated_relu", lam=0.1, solver="native")
    with pytest.raises(InvalidParameterError, match="score must be a callable"):
        pruning_path(sol, X, y, score=3)
    with pytest.raises(InvalidParameterError, match="must return a number"):
        pruning_path(sol, X, y, score=lambda m: "high")
    path = pruning_path(sol, X, y, score=lambda m: 1.0)
    assert np.all(path.scores == 1.0)


def test_relaxation_is_tight_with_the_zero_network_above_lam_max():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 2))
    Y = rng.standard_normal((8, 2))
    P = cvxnn.sample_patterns(X, 6, seed=0, bias=True)
    zero = 0.5 * float(np.sum(Y**2))
    lam = 2.0 * lam_max(X, Y, P, "gated_relu")  # above the gated lam_max, so r* = d* = L(0)
    rel = copositive_relaxation(X, Y, lam=lam, patterns=P)
    assert rel.status == "optimal"
    assert rel.value == pytest.approx(zero, rel=1e-6)
    # it said "not tight" with no network: Clarabel's noise blocks have factors outside the cones
    assert rel.tight
    assert rel.network is not None and rel.network.n_neurons == 0
    assert rel.network_objective == pytest.approx(zero, rel=1e-12)
    np.testing.assert_array_equal(rel.network.predict(X), np.zeros((8, 2)))
    assert "zero network" in rel.summary()
    # below lam_max the zero network is not optimal and is not reported
    low = copositive_relaxation(X, Y, lam=0.3, patterns=P)
    assert low.network is None or low.network.n_neurons > 0


def test_kkt_names_a_target_of_several_columns_for_a_scalar_model(small):
    from cvxnn.errors import ShapeError
    from cvxnn.optimality import kkt_report

    X, y, P = small
    sol = cvxnn.solve(X, y, P, activation="gated_relu", lam=0.1, solver="native")
    Y = np.column_stack([y, y])
    # it said the analysis is "implemented for scalar outputs", of a scalar model
    with pytest.raises(ShapeError, match=r"one output but y has shape \(12, 2\)"):
        kkt_report(sol, X, Y)
