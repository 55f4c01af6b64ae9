"""QA of ``cvxnn.solve`` options: statuses, certificates, ``extra`` keys and typed errors.

Each test reproduces a defect found by exercising the entry point with the options a demanding
user tries (loose tolerances, iteration limits, memory budgets); it fails on the code before the
fix.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cvxnn
from cvxnn.errors import InvalidParameterError
from cvxnn.native.certificates import solution_gap


def _classes(n=25, d=3, c=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    k = rng.integers(0, c, n)
    k[:c] = np.arange(c)
    return X, np.eye(c)[k]


def _regression(n=25, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X @ rng.standard_normal((d, 1)), 0.0) + 0.1 * rng.standard_normal((n, 1))
    return X, y[:, 0]


def test_al_certifies_a_loose_tol_it_certified_when_tighter():
    """solver='al' at tol=1e-3 used 5376 iterations (float64) where tol=1e-6 certified in 2011 (the
    Newton finish ran only below AL_HANDOFF_TOL); iris / wine / breast cancer ended max_iterations
    after 10000 at tol 1e-2 to 1e-4. With 4000 iterations it ended uncertified."""
    X, Y = _classes()
    pats = cvxnn.sample_patterns(X, 8, seed=0, bias=True)
    kw = dict(activation="relu", loss="cross_entropy", lam=0.3, solver="al", max_iter=4000)
    tight = cvxnn.solve(X, Y, pats, tol=1e-6, **kw)
    assert tight.status == "optimal"
    for dtype in (np.float64, np.float32):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no ConvergenceWarning
            loose = cvxnn.solve(X, Y, pats, tol=1e-3, dtype=dtype, **kw)
        assert loose.status == "optimal" and loose.rel_gap <= 1e-3
        assert loose.iterations < 4000
        assert loose.objective_value == pytest.approx(tight.objective_value, rel=1e-3)


def test_al_with_the_newton_finish_keeps_its_documented_extra_keys():
    """The augmented Lagrangian handed over to the working set's finish returned no ``delta``,
    ``step_size`` or ``flops`` (docs/native.md lists them), so ``al_delta`` and ``step_size`` were None."""
    X, Y = _classes()
    pats = cvxnn.sample_patterns(X, 8, seed=0, bias=True)
    sol = cvxnn.solve(X, Y, pats, activation="relu", loss="cross_entropy", lam=0.3, solver="al", tol=1e-6)
    assert sol.status == "optimal" and sol.extra["finish"] == "working_set"
    for key in ("delta", "step_size", "flops", "outer_iterations", "rel_gap", "dual_value", "multipliers"):
        assert key in sol.extra, key
    assert sol.al_delta == sol.extra["delta"] > 0 and sol.step_size == sol.extra["step_size"] > 0
    assert sol.extra["flops"] > 0 and sol.extra["gflops"] > 0


def test_cvxpy_point_outside_its_cones_has_no_certified_gap():
    """SCS stopped by max_iter=15 on a C-ReLU program returned an objective 44 % below the optimum
    (cone violation 0.34) with extra['certified_gap'] == 0.0: a perfect certificate for a point that
    is not even feasible. Such a point now gets none (as the native solvers report it)."""
    X, y = _regression()
    pats = cvxnn.sample_patterns(X, 8, seed=0, bias=True)
    opt = cvxnn.solve(X, y, pats, activation="relu", lam=2.0, solver="clarabel")
    assert opt.status == "optimal" and opt.extra["certified_rel_gap"] < 1e-6  # kept inside the cones
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = cvxnn.solve(X, y, pats, activation="relu", lam=2.0, solver="scs", max_iter=15)
    assert sol.status == "max_iterations" and sol.max_violation > 1e-2
    assert sol.objective_value < opt.objective_value - 1e-2 * opt.objective_value  # below the optimum
    assert "certified_gap" not in sol.extra and "certified_rel_gap" not in sol.extra
    assert solution_gap(sol, X, y, 2.0, "squared") is None
    assert solution_gap(opt, X, y, 2.0, "squared") is not None


@pytest.mark.parametrize("budget", ["abc", float("nan"), [1], 0, -5, 1.5, True])
def test_cvxpy_memory_budget_is_validated(budget):
    """memory_budget for CVXPY solvers went through int(): 'abc', NaN and [1] raised bare ValueError /
    TypeError, and 0, -5, 1.5 or True became a budget of a few bytes (MemoryBudgetError naming
    '-0.00 GiB'). The native solvers refused them with InvalidParameterError; now both do."""
    X, y = _regression()
    pats = cvxnn.sample_patterns(X, 4, seed=0, bias=True)
    with pytest.raises(InvalidParameterError, match="memory_budget"):
        cvxnn.solve(X, y, pats, activation="gated_relu", lam=0.5, solver="clarabel", memory_budget=budget)
    with pytest.raises(InvalidParameterError, match="memory_budget"):
        cvxnn.build_program(X, y, activation="gated_relu", patterns=pats, lam=0.5).solve(memory_budget=budget)


def test_relu_working_set_over_budget_falls_back_to_the_al():
    """When the C-ReLU working set's arrays exceed memory_budget but the augmented Lagrangian's fit,
    the solve ran the AL and then raised UnboundLocalError ('ws') instead of returning its point."""
    from cvxnn.native import working_set as ws
    from cvxnn.native.al import al_memory_bytes

    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 30))
    y = np.maximum(X @ rng.standard_normal(30), 0.0)
    pats = cvxnn.sample_patterns(X, 8, seed=0, bias=True)
    n, d, p = 40, 31, pats.n_patterns
    budget = 150_000
    assert ws.working_set_fixed_bytes(n, d, p, 1) > budget > al_memory_bytes(n, d, p, 1, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = cvxnn.solve(X, y, pats, activation="relu", lam=0.5, memory_budget=budget, max_iter=200)
    assert sol.solver == "al" and sol.extra["fallback"] == "memory"
    assert sol.extra["working_set_iterations"] == 0
    assert sol.status == "max_iterations" and sol.iterations == 200
    assert sol.objective_value == pytest.approx(sol.objective(X, y, 0.5), rel=1e-12)
