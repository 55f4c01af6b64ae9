"""The interior-point finish of small scalar C-GReLU programs (cvxnn.native.gated_conic): when
the working set and R-FISTA have not certified after ``finish_after`` iterations, Clarabel solves
the program and the native float64 certificate decides; max_iter and an explicit
solver="rfista" are respected."""

import warnings

import numpy as np
import pytest

from cvxnn import build_program, sample_patterns
from cvxnn.errors import ConvergenceWarning, InvalidParameterError
from cvxnn.native import gated_conic, solve_native
from cvxnn.vector import build_vector_program


@pytest.fixture(scope="module")
def hard():
    """Near interpolation: 40 samples, 15 patterns of 4 (augmented) features, a tiny lam."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 3))
    y = np.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(40)
    return X, y, sample_patterns(X, 15, seed=1, bias=True)


@pytest.fixture
def early(monkeypatch):
    """Hand over after 30 iterations (the default rule waits at least 1000)."""
    monkeypatch.setattr(gated_conic, "AFTER_ITERATIONS", 30)
    monkeypatch.setattr(gated_conic, "FINISH_SECONDS", 0.0)
    monkeypatch.setattr(gated_conic, "FINISH_COEF", 0.0)


def _reference(X, y, pats, lam, loss):
    return build_program(X, y, activation="gated_relu", lam=lam, patterns=pats, loss=loss).solve()


def test_finish_after_rule():
    # the ski-rental estimate: the finish's modelled cost over a first-order iteration's (fixed
    # and per-entry costs), at least AFTER_ITERATIONS
    g = gated_conic

    def iteration(n, cols):
        return g.ITERATION_SECONDS + g.ENTRY_SECONDS * n * cols

    # second-order cones (scalar output): the power law in rows and columns
    cols = 1100
    t = g.FINISH_COEF * 309 ** g.FINISH_ROW_EXP * cols ** g.FINISH_COL_EXP
    assert g.finish_seconds(309, cols, semidefinite=False) == pytest.approx(t, rel=1e-12)
    assert g.finish_after(309, 11, 100) == max(g.AFTER_ITERATIONS, int(np.ceil(t / iteration(309, cols))))
    assert g.finish_after(10_000, 3, 10) == g.AFTER_ITERATIONS
    # exponential cones cost EXP_CONE_FACTOR times as much
    t = g.finish_seconds(100, 4100, semidefinite=False)
    assert g.finish_seconds(100, 4100, semidefinite=False, exponential=True) == pytest.approx(g.EXP_CONE_FACTOR * t)
    assert g.finish_after(100, 41, 100, exponential=True) == int(np.ceil(g.EXP_CONE_FACTOR * t / iteration(100, 4100)))
    assert g.finish_after(100, 41, 100, exponential=True) > g.finish_after(100, 41, 100) > g.AFTER_ITERATIONS
    # nuclear norms of vector output (semidefinite cones): cols^3; outputs count as columns
    t = g.FINISH_SECONDS * 1200.0 ** 3
    assert g.finish_after(100, 4, 100, 3) == max(g.AFTER_ITERATIONS, int(np.ceil(t / iteration(100, 1200))))
    # the columnwise (one-vs-all) penalty is a second-order cone program like scalar output
    assert g.finish_after(100, 4, 100, 3, penalty="columnwise") == g.finish_after(100, 12, 100)
    # an interior point's cost grows with the rows faster than a first-order iteration's
    assert g.finish_after(300, 41, 100) > g.finish_after(100, 41, 100)
    # too many columns or entries: no finish
    assert g.finish_after(100, 41, 500) is None  # 20500 columns
    assert g.finish_after(1000, 30, 100) is None  # 3e6 entries


def test_the_finish_model_is_not_cubic_in_the_columns_on_wide_designs():
    # measured: Clarabel solved the 100 x 4100 squared-loss program in 0.50 s, the 400 x 4100 one
    # in 3.1 s; the former cubic model said 20 s for both. The model stays within 2x of both.
    g = gated_conic
    for n, seconds in ((100, 0.50), (400, 3.1)):
        assert 0.5 * seconds <= g.finish_seconds(n, 4100, semidefinite=False) <= 2.0 * seconds


@pytest.mark.parametrize("loss", ["squared", "huber", "logistic"])
def test_finish_certifies_what_rfista_does_not(hard, early, loss):
    X, y, pats = hard
    if loss == "logistic":
        y = np.where(y > np.median(y), 1.0, -1.0)
    lam = 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = solve_native(X, y, pats, lam=lam, loss=loss, tol=1e-7, max_iter=5000)
    assert sol.status == "optimal" and sol.solver == "rfista" and sol.extra["finish"] == "clarabel"
    if loss != "logistic":
        # Clarabel's point certifies (at most R-FISTA's iterations from its proximal step, which
        # give it exact zeros, follow the hand-over)
        assert sol.extra["finish_certified"]
        assert sol.iterations == 30 + sol.extra.get("finish_polish_iterations", 0)
    else:
        # on exponential cones Clarabel's objective is accurate but the gradient at its point
        # certifies only to about 5e-4: R-FISTA finishes from it
        assert 30 < sol.iterations < 5000
    assert sol.extra["rel_gap"] <= 1e-7
    # the certificate is of the returned point, on the full program
    assert np.isclose(sol.objective(X, y, lam, loss), sol.objective_value, rtol=1e-12)
    ref = _reference(X, y, pats, lam, loss)
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)
    assert sol.gap >= sol.objective_value - ref.objective_value - 1e-9 * abs(ref.objective_value)


def test_a_wide_program_is_handed_over_at_the_modelled_switch_point():
    # 60 rows, 1260 columns, near interpolation: without the finish the working set and R-FISTA
    # ended max_iterations at a relative gap of 0.95 after 10000 iterations. The default rule
    # hands over after finish_after iterations (its floor, here) and the finish certifies.
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 20))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(60)
    pats = sample_patterns(X, 60, seed=2, bias=True)
    after = gated_conic.finish_after(60, 21, pats.n_patterns)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = solve_native(X, y, pats, lam=1e-4, tol=1e-6)
    assert sol.status == "optimal" and sol.extra["finish"] == "clarabel" and sol.extra["rel_gap"] <= 1e-6
    assert after <= sol.iterations <= after + gated_conic.POLISH_ITERATIONS
    ref = _reference(X, y, pats, 1e-4, "squared")
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)


def test_without_the_finish_rfista_does_not_certify_here(hard, monkeypatch):
    # the premise of the test above: without the finish (the hand-over beyond the budget) the
    # solve ends uncertified after 100 times the iterations
    monkeypatch.setattr(gated_conic, "AFTER_ITERATIONS", 10**9)
    X, y, pats = hard
    with pytest.warns(ConvergenceWarning):
        sol = solve_native(X, y, pats, lam=1e-3, tol=1e-7, max_iter=3000)
    assert sol.status == "max_iterations" and "finish" not in sol.extra
    assert sol.extra["rel_gap"] > 1e-7


def test_max_iter_and_explicit_rfista_are_respected(hard, early):
    X, y, pats = hard
    # a budget at or below the hand-over point: R-FISTA alone, the status says it ran out
    with pytest.warns(ConvergenceWarning):
        sol = solve_native(X, y, pats, lam=1e-3, tol=1e-7, max_iter=20)
    assert sol.status == "max_iterations" and sol.iterations == 20 and "finish" not in sol.extra
    with pytest.warns(ConvergenceWarning):
        sol = solve_native(X, y, pats, lam=1e-3, tol=1e-7, max_iter=200, solver="rfista")
    assert sol.status == "max_iterations" and "finish" not in sol.extra


def test_a_failed_finish_hands_back_to_rfista(hard, early, monkeypatch):
    X, y, pats = hard
    monkeypatch.setattr(gated_conic, "gated_conic_finish", lambda *a, **k: None)
    with pytest.warns(ConvergenceWarning):
        sol = solve_native(X, y, pats, lam=1e-3, tol=1e-7, max_iter=200)
    assert sol.status == "max_iterations" and sol.iterations == 200
    assert sol.extra["finish"] == "clarabel" and not sol.extra["finish_certified"]


def test_an_uncertified_finish_is_not_reported_optimal(hard, early, monkeypatch):
    # Clarabel "succeeds" with a wrong point: the full-program certificate rejects it, R-FISTA
    # continues from the better of the two points and the status stays honest
    X, y, pats = hard
    d, p = X.shape[1] + 1, pats.n_patterns
    monkeypatch.setattr(gated_conic, "gated_conic_finish", lambda *a, **k: np.full((d, p, 1), 1e-3))
    with pytest.warns(ConvergenceWarning):
        sol = solve_native(X, y, pats, lam=1e-3, tol=1e-7, max_iter=100)
    assert sol.status == "max_iterations" and not sol.extra["finish_certified"]
    assert sol.extra["rel_gap"] > 1e-7


@pytest.mark.parametrize("formulation", ["nuclear", "one_vs_all"])
def test_vector_output_is_finished_and_certified(hard, early, formulation):
    # nuclear norms go to semidefinite cones, the one-vs-all column norms to second-order cones
    X, y, pats = hard
    Y = np.stack([y, np.cos(2 * X[:, 1])], axis=1)
    lam = 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sol = solve_native(X, Y, pats, lam=lam, tol=1e-7, max_iter=5000, formulation=formulation)
    assert sol.status == "optimal" and sol.extra["finish"] == "clarabel" and sol.extra["rel_gap"] <= 1e-7
    ref = build_vector_program(X, Y, activation="gated_relu", lam=lam, patterns=pats,
                               formulation=formulation).solve()
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)


def test_large_programs_are_not_finished(monkeypatch):
    assert gated_conic.finish_after(100, 41, 100) is not None  # 4100 columns, second-order cones
    assert gated_conic.finish_after(100, 14, 100, 3) is None  # 4200 columns of nuclear norms: wine's 3 classes
    assert gated_conic.finish_after(100, 14, 100, 3, penalty="columnwise") is not None
    assert gated_conic.finish_after(100, 201, 100) is None  # 20100 columns
    assert gated_conic.finish_after(1000, 20, 100) is not None  # 2e6 entries: the limit
    assert gated_conic.finish_after(1001, 20, 100) is None
    monkeypatch.setattr(gated_conic, "MAX_SOC_COLUMNS", 0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    pats = sample_patterns(X, 5, seed=0, bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = solve_native(X, rng.standard_normal(30), pats, lam=1e-4, tol=1e-12, max_iter=3000)
    assert "finish" not in sol.extra


def test_diabetes_at_small_lam_is_certified():
    # real data, the estimator a user calls: at lam = 0.01 R-FISTA alone ended max_iterations
    # (relative gap 1.7e-2 after 10000 iterations)
    sklearn = pytest.importorskip("sklearn")
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    from cvxnn.estimators import ConvexGatedReLURegressor

    assert sklearn
    X, y = load_diabetes(return_X_y=True)
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        m = ConvexGatedReLURegressor(lam=0.01, random_state=0).fit(Xtr, ytr)
    sol = m.solution_
    assert m.status_ == "optimal" and sol.extra["finish"] == "clarabel" and sol.extra["rel_gap"] <= m.tol
    Xs, ys = m.standardizer_.transform(Xtr), m.standardizer_.transform_y(ytr)
    ref = build_program(Xs, ys, activation="gated_relu", lam=0.01, patterns=m.patterns_).solve()
    assert abs(m.convex_objective_ - ref.objective_value) <= 1e-6 * abs(ref.objective_value)


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, None])
def test_finish_after_refuses_bad_sizes(bad):
    with pytest.raises(InvalidParameterError):
        gated_conic.finish_after(bad, 4, 10)
    with pytest.raises(InvalidParameterError):
        gated_conic.finish_after(40, 4, 10, bad)


@pytest.mark.parametrize("bad", [0, -3, 2.5, None])
def test_finish_seconds_refuses_bad_sizes(bad):
    with pytest.raises(InvalidParameterError):
        gated_conic.finish_seconds(bad, 100, semidefinite=False)
    with pytest.raises(InvalidParameterError):
        gated_conic.finish_seconds(100, bad, semidefinite=True)


@pytest.mark.parametrize("bad", ["group", "", None])
def test_finish_after_refuses_an_unknown_penalty(bad):
    with pytest.raises(InvalidParameterError, match="penalty"):
        gated_conic.finish_after(40, 4, 10, 2, penalty=bad)


def test_zero_small_blocks_per_penalty():
    rng = np.random.default_rng(1)
    d, p, c = 4, 3, 3
    L = np.linalg.qr(rng.standard_normal((d, c)))[0]
    R = np.linalg.qr(rng.standard_normal((c, c)))[0]
    U = np.zeros((d, p, c))
    U[:, 0] = L @ np.diag([2.0, 1.0, 1e-9]) @ R.T  # rank 2 up to rounding level
    U[:, 1] = rng.standard_normal((d, c))
    U[:, 2] = 1e-10 * rng.standard_normal((d, c))  # a block at rounding level
    V, changed = gated_conic.zero_small_blocks(U, "nuclear")
    assert changed
    sv = np.linalg.svd(np.transpose(V, (1, 0, 2)), compute_uv=False)
    assert sv[0, 2] < 1e-14 and np.all(sv[2] < 1e-14) and sv[0, 1] == pytest.approx(1.0)
    np.testing.assert_allclose(V[:, 1], U[:, 1], atol=1e-13)
    # column norms (one-vs-all) and whole blocks (scalar output)
    W, changed = gated_conic.zero_small_blocks(U, "columnwise")
    assert changed and np.all(W[:, 2] == 0) and np.array_equal(W[:, :2], U[:, :2])
    S, changed = gated_conic.zero_small_blocks(U[:, :, :1], "nuclear")
    assert changed and np.all(S[:, 2] == 0)
    # nothing small: the same blocks, reported unchanged, and the input is not modified
    T, changed = gated_conic.zero_small_blocks(U[:, 1:2], "nuclear")
    assert not changed and np.array_equal(T, U[:, 1:2])
    assert np.abs(U[:, 2]).max() > 0


def test_proximal_step_is_the_identity_at_the_optimum_and_gives_exact_zeros(hard):
    from cvxnn.losses import get_loss
    from cvxnn.native._losses import make_kernel
    from cvxnn.native.fista import GatedProblem
    from cvxnn.operators import ImplicitDesign

    X, y, pats = hard
    lam = 0.5
    sol = solve_native(X, y, pats, lam=lam, tol=1e-12, max_iter=20000, solver="rfista")
    op = ImplicitDesign(pats.design(X), pats.mask, n_outputs=1)
    problem = GatedProblem(op, make_kernel(get_loss("squared"), y[:, None], np.float64), lam)
    U = sol.U[:, :, None]
    V = gated_conic.proximal_step(problem, U)
    assert np.linalg.norm(V - U) <= 1e-5 * np.linalg.norm(U)
    zero = np.linalg.norm(U[:, :, 0], axis=0) == 0
    assert zero.any() and np.all(V[:, zero] == 0)
    # the optimum plus rounding-level values in its zero blocks: they are exactly zero again
    noisy = U.copy()
    noisy[:, zero] = 1e-10
    assert np.all(gated_conic.proximal_step(problem, noisy)[:, zero] == 0)
