"""The working-set barrier / face-Newton solver for C-ReLU: every smooth loss, scalar and the
one-vs-all vector program, certified and in agreement with Clarabel on small problems."""

import numpy as np
import pytest

from cvxnn import build_program, sample_patterns
from cvxnn.losses import HuberLoss
from cvxnn.native import solve_native
from cvxnn.native.certificates import duality_gap
from cvxnn.vector import build_vector_program


def _data(seed, n=40, d=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    t = np.maximum(X @ rng.standard_normal(d), 0) - np.maximum(X @ rng.standard_normal(d), 0)
    return X, t


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_scalar_losses_certified_and_match_clarabel(seed, loss):
    X, t = _data(seed)
    y = np.where(t > np.median(t), 1.0, -1.0) if loss == "logistic" else t
    pats = sample_patterns(X, 12, seed=seed, bias=True)
    lam = 0.5
    sol = solve_native(X, y, pats, activation="relu", loss=loss, lam=lam, tol=1e-8, feas_tol=1e-10)
    assert sol.solver == "working_set" and sol.status == "optimal"
    assert sol.rel_gap <= 1e-8 and sol.max_violation <= 1e-10
    ref = build_program(X, y, activation="relu", loss=loss, lam=lam, patterns=pats).solve()
    # the certificate bounds the distance to the optimum; Clarabel is accurate to ~1e-8
    assert sol.objective_value <= ref.objective_value + 1e-6 * abs(ref.objective_value)
    assert sol.objective_value >= ref.objective_value - 1e-6 * abs(ref.objective_value)
    # an independent recomputation of the certificate agrees
    cert = duality_gap(X, y, sol, lam, loss, multipliers=sol.multipliers)
    assert cert.rel_gap <= 1e-7
    # the mapped network attains the objective exactly
    net = sol.to_network()
    assert np.isclose(net.objective(X, y, lam, loss), sol.objective_value, rtol=1e-9, atol=1e-12)


def test_huber_loss_certified():
    X, t = _data(5)
    pats = sample_patterns(X, 10, seed=1, bias=True)
    loss = HuberLoss(delta=0.5)
    sol = solve_native(X, t, pats, activation="relu", loss=loss, lam=0.3, tol=1e-7)
    assert sol.status == "optimal" and sol.solver == "working_set"
    ref = build_program(X, t, activation="relu", loss=loss, lam=0.3, patterns=pats).solve()
    assert abs(sol.objective_value - ref.objective_value) <= 1e-5 * abs(ref.objective_value)


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_vector_one_vs_all_matches_clarabel_and_network(loss):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 2))
    labels = np.argmax(X @ rng.standard_normal((2, 3)) + 0.3 * rng.standard_normal((30, 3)), axis=1)
    Y = np.eye(3)[labels]
    pats = sample_patterns(X, 8, seed=0, bias=True)
    lam = 0.5
    sol = solve_native(X, Y, pats, activation="relu", loss=loss, lam=lam, tol=1e-8)
    assert sol.solver == "working_set" and sol.status == "optimal"
    assert sol.formulation == "one_vs_all"
    ref = build_vector_program(X, Y, activation="relu", loss=loss, lam=lam, patterns=pats,
                               formulation="one_vs_all").solve()
    assert abs(sol.objective_value - ref.objective_value) <= 1e-5 * abs(ref.objective_value)
    # the one-vs-all value is the objective of the network it maps to, or above it
    net = sol.to_network()
    assert net.objective(X, Y, lam, loss) <= sol.objective_value * (1 + 1e-9) + 1e-12


def test_nuclear_vector_program_goes_to_the_al():
    X, _ = _data(1, n=20, d=2)
    Y = np.abs(np.random.default_rng(0).standard_normal((20, 2)))
    pats = sample_patterns(X, 4, seed=0)
    from cvxnn.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="one_vs_all"):
        solve_native(X, Y, pats, activation="relu", solver="working_set", formulation="nuclear")
