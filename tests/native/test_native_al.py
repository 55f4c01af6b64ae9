"""Native augmented Lagrangian for C-ReLU: agreement with Clarabel, cone feasibility, certificates."""

import warnings

import numpy as np
import pytest

from cvxnn import build_program, sample_patterns
from cvxnn.errors import ConvergenceWarning, InvalidParameterError, MemoryBudgetError
from cvxnn.native import duality_gap, solve_native
from cvxnn.solution import ConvexModel


@pytest.fixture(scope="module")
def solved(reg):
    X, y, pats = reg
    lam = 2.0
    ref = build_program(X, y, activation="relu", lam=lam, patterns=pats).solve()
    sol = solve_native(X, y, pats, activation="relu", solver="al", lam=lam, tol=1e-7, max_iter=20000)
    return lam, ref, sol


def test_al_matches_clarabel(reg, solved):
    X, y, pats = reg
    lam, ref, sol = solved
    assert sol.status == "optimal" and sol.solver == "al" and sol.backend == "native"
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)
    np.testing.assert_allclose(sol.V, ref.V, atol=1e-4)
    np.testing.assert_allclose(sol.W, ref.W, atol=1e-4)
    assert np.isclose(sol.objective(X, y, lam), sol.objective_value, rtol=1e-12)


def test_al_cone_feasibility_to_tolerance(reg, solved):
    X, _, _ = reg
    _, _, sol = solved
    assert sol.max_violation <= 1e-7
    assert np.isclose(sol.max_cone_violation(X), sol.max_violation, rtol=1e-6, atol=1e-15)
    # a looser feasibility tolerance is honoured and reported
    assert sol.extra["feas_tol"] == 1e-7


def test_al_certified_gap_bounds_suboptimality(reg, solved):
    X, y, pats = reg
    lam, ref, sol = solved
    assert sol.gap >= sol.objective_value - ref.objective_value - 1e-9
    assert sol.extra["rel_gap"] <= 1e-7
    # the public certificate reproduces it from the stored multipliers
    cert = duality_gap(X, y, sol, lam)
    assert cert.dual <= ref.objective_value + 1e-8
    assert cert.max_violation == pytest.approx(sol.max_violation, rel=1e-6, abs=1e-15)
    # without multipliers the bound is valid but looser (C-GReLU dual)
    loose = duality_gap(X, y, sol, lam, multipliers=np.zeros((X.shape[0], 2 * pats.n_patterns)))
    assert loose.dual <= cert.dual + 1e-12
    # at an arbitrary feasible point (zero) the gap still bounds the suboptimality
    zero = ConvexModel("relu", pats, V=np.zeros_like(sol.V), W=np.zeros_like(sol.W))
    cz = duality_gap(X, y, zero, lam)
    assert cz.gap >= zero.objective(X, y, lam) - ref.objective_value - 1e-9


def test_al_warm_start(reg, solved):
    X, y, pats = reg
    lam, _, sol = solved
    again = solve_native(X, y, pats, activation="relu", solver="al", lam=lam, tol=1e-7, warm_start=sol)
    assert again.status == "optimal" and again.iterations < 0.6 * sol.iterations
    near = solve_native(X, y, pats, activation="relu", solver="al", lam=1.1 * lam, tol=1e-7, warm_start=sol,
                        max_iter=20000)
    assert near.status == "optimal"
    with pytest.raises(InvalidParameterError):
        solve_native(X, y, pats, activation="relu", solver="al", lam=lam,
                     warm_start=ConvexModel("gated_relu", pats, U=sol.V - sol.W))
    # a C-ReLU point warm-starts C-GReLU (through V - W)
    g = solve_native(X, y, pats, activation="gated_relu", lam=lam, warm_start=sol)
    assert g.status == "optimal" and g.objective_value <= sol.objective_value + 1e-9


def test_al_vector_output_columnwise_cones():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 2))
    Y = np.stack([np.maximum(X @ rng.standard_normal(2), 0) for _ in range(2)], axis=1)
    pats = sample_patterns(X, 6, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = solve_native(X, Y, pats, activation="relu", solver="al", lam=1.0, tol=1e-6, max_iter=20000,
                           formulation="nuclear")
    assert sol.V.shape == (2, pats.n_patterns, 2)
    S = 2.0 * pats.mask - 1.0
    for B in (sol.V, sol.W):  # every column of every block in its cone, to the reported violation
        assert (S[:, :, None] * np.einsum("nd,dpc->npc", X, B)).min() >= -max(sol.max_violation, 1e-6) - 1e-12
    ref = build_program(X, Y, activation="relu", lam=1.0, patterns=pats).solve()
    assert abs(sol.objective_value - ref.objective_value) <= 1e-5 * ref.objective_value
    assert sol.gap >= sol.objective_value - ref.objective_value - 1e-9


def test_al_logistic(reg):
    X, y, pats = reg
    yl = np.where(y > np.median(y), 1.0, -1.0)
    ref = build_program(X, yl, activation="relu", lam=1.0, patterns=pats, loss="logistic").solve()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = solve_native(X, yl, pats, activation="relu", solver="al", lam=1.0, loss="logistic", tol=1e-6,
                           max_iter=20000)
    assert abs(sol.objective_value - ref.objective_value) <= 1e-5 * ref.objective_value
    assert sol.max_violation <= 1e-5
    assert np.all(np.isfinite(sol.V)) and np.all(np.isfinite(sol.W))


def test_al_max_iterations_and_memory(reg):
    X, y, pats = reg
    with pytest.warns(ConvergenceWarning):
        sol = solve_native(X, y, pats, activation="relu", solver="al", lam=0.1, max_iter=5)
    assert sol.status == "max_iterations" and np.isfinite(sol.objective_value)
    assert sol.max_violation is not None
    if sol.max_violation > sol.extra["feas_tol"]:
        # outside the cones primal - dual bounds nothing: no gap is reported (it read 0 when clipped)
        assert sol.gap is None and np.isfinite(sol.extra["gap_at_infeasible_point"])
        assert sol.rel_gap is None  # 0.0 read as a perfect certificate
    else:
        assert np.isfinite(sol.gap)
    with pytest.raises(MemoryBudgetError, match="bytes"):
        solve_native(X, y, pats, activation="relu", solver="al", lam=0.1, memory_budget=10_000)


def test_al_float32(reg):
    X, y, pats = reg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = solve_native(X, y, pats, activation="relu", solver="al", lam=2.0, tol=1e-2, dtype=np.float32,
                           max_iter=20000)
    assert sol.V.dtype == np.float64 and np.all(np.isfinite(sol.V))
    assert sol.status == "optimal" and sol.extra["dtype"] == "float32"
    assert sol.max_violation <= 1e-2 and sol.extra["rel_gap"] <= 1e-2
    ref = build_program(X, y, activation="relu", lam=2.0, patterns=pats).solve()
    assert sol.gap >= sol.objective_value - ref.objective_value - 1e-9


def test_al_float32_certifies_below_its_float32_floor():
    """tol below the float32 stage's floor (1e-3): the float64 continuation's own dual bound
    certifies (the final check used only the dual at the last point: "max_iterations" at a
    relative gap of 1.7e-4 after 2380 of 10000 iterations on diabetes)."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    idx = np.random.default_rng(0).permutation(len(d.data))[:80]
    X = d.data[idx][:, :8]
    X = (X - X.mean(0)) / X.std(0)
    y = (d.target[idx] - d.target[idx].mean()) / d.target[idx].std()
    pats = sample_patterns(X, 10, seed=0, bias=True)
    sol = solve_native(X, y, pats, activation="relu", solver="al", lam=2.0, tol=1e-4, max_iter=10000,
                       dtype=np.float32)
    assert sol.status == "optimal" and sol.rel_gap <= 1e-4
    ref = build_program(X, y, activation="relu", lam=2.0, patterns=pats).solve()
    assert sol.dual_value <= ref.objective_value * (1 + 1e-8)
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=2e-4)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_al_float32_hands_over_to_the_newton_finish_too(reg, loss):
    """A float32 AL went on alone in float64 below AL_HANDOFF_TOL and ended "max_iterations"
    after 20000 iterations where float64 certified in about 2000 through the finish."""
    X, y, pats = reg
    yy = np.where(y > np.median(y), 1.0, -1.0) if loss == "logistic" else y
    kw = dict(activation="relu", solver="al", lam=1.0, loss=loss, tol=1e-6, max_iter=20000)
    f64 = solve_native(X, yy, pats, **kw)
    f32 = solve_native(X, yy, pats, dtype=np.float32, **kw)
    assert f32.status == "optimal" and f32.extra["finish"] == "working_set" and f32.rel_gap <= 1e-6
    assert f32.iterations <= 3000
    assert f32.objective_value == pytest.approx(f64.objective_value, rel=2e-6)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_al_reaches_1e8_through_the_newton_finish(reg, loss):
    """Below AL_HANDOFF_TOL the AL hands its support to the working set's Newton finish: the
    result is certified at 1e-8 and agrees with Clarabel's optimum."""
    X, y, pats = reg
    yy = np.where(y > np.median(y), 1.0, -1.0) if loss == "logistic" else y
    ref = build_program(X, yy, activation="relu", lam=1.0, patterns=pats, loss=loss).solve()
    sol = solve_native(X, yy, pats, activation="relu", solver="al", lam=1.0, loss=loss, tol=1e-8,
                       feas_tol=1e-8, max_iter=20000)
    assert sol.status == "optimal" and sol.solver == "al"
    assert sol.extra["finish"] == "working_set" and sol.extra["al_iterations"] <= 2000
    assert sol.rel_gap <= 1e-8 and sol.max_violation <= 1e-8
    assert sol.objective_value <= ref.objective_value * (1 + 1e-7)
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * ref.objective_value


def test_warm_started_nuclear_path_matches_cold_solves():
    """The AL's penalty delta is not inherited by a warm start (along a path it only grew, and the
    warm-started steps ended uncertified, far above the cold solves)."""
    import cvxnn

    rng = np.random.default_rng(9)
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    pats = cvxnn.sample_patterns(X, 10, seed=9)
    kw = dict(activation="relu", formulation="nuclear", tol=1e-6)
    prev = None
    for lam in (3.595, 1.862, 0.9643):
        warm = solve_native(X, Y, pats, lam=lam, warm_start=prev, **kw)
        cold = solve_native(X, Y, pats, lam=lam, **kw)
        assert warm.status == cold.status == "optimal"
        assert warm.objective_value == pytest.approx(cold.objective_value, rel=1e-5)
        prev = warm


@pytest.mark.parametrize("activation,solver", [("gated_relu", "rfista"), ("relu", "al"), ("relu", "working_set")])
def test_a_callback_returning_numpy_true_stops(activation, solver):
    import cvxnn

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0)
    pats = cvxnn.sample_patterns(X, 8, seed=0)
    calls = []

    def cb(info):
        calls.append(info)
        return np.bool_(True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = solve_native(X, y, pats, activation=activation, solver=solver, lam=0.1, tol=1e-10, callback=cb)
    assert len(calls) == 1 and sol.status != "optimal"


def test_no_relative_gap_outside_the_cones_vector():
    """A vector C-ReLU AL point outside its cones has no certificate: gap and rel_gap are None
    (rel_gap read 0.0, and the warning 'relative gap 0.000e+00')."""
    import warnings

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 3))
    pats = sample_patterns(X, 6, seed=0, bias=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve_native(X, Y, pats, activation="relu", lam=1.0, formulation="nuclear", max_iter=20)
    assert sol.status == "max_iterations" and sol.max_violation > sol.extra["feas_tol"]
    assert sol.gap is None and sol.rel_gap is None
    assert any("no certified gap" in str(w.message) for w in caught)
