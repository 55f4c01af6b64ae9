"""Working-set interior point for C-ReLU: agreement with Clarabel, certificates, fallbacks."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvxnn import build_program, lam_max, sample_patterns
from cvxnn.errors import ConvergenceWarning, InvalidParameterError
from cvxnn.native import duality_gap, solve_native
from cvxnn.native import working_set as ws_mod
from cvxnn.native.working_set_qp import solve_relu_working_set_qp


def _problem(seed, n=50, d=3, p=20, bias=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X @ rng.standard_normal(d), 0) - 0.5 * np.maximum(X @ rng.standard_normal(d), 0)
    y += 0.05 * rng.standard_normal(n)
    return X, y, sample_patterns(X, p, seed=seed + 1, bias=bias)


@pytest.mark.parametrize("seed,bias,lam", [(0, True, 2.0), (1, False, 0.5), (2, True, 0.2)])
def test_working_set_matches_clarabel(seed, bias, lam):
    X, y, pats = _problem(seed, bias=bias)
    ref = build_program(X, y, activation="relu", lam=lam, patterns=pats).solve()
    sol = solve_native(X, y, pats, activation="relu", lam=lam, tol=1e-7)
    assert sol.solver == "working_set" and sol.status == "optimal" and sol.converged
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)
    np.testing.assert_allclose(sol.train_predict(X), ref.train_predict(X), atol=1e-4 * max(1.0, np.abs(y).max()))
    # the certified gap bounds the true suboptimality (Clarabel's optimum is a near-lower bound)
    assert sol.objective_value - ref.objective_value <= sol.gap + 1e-7 * abs(ref.objective_value)
    assert sol.extra["rel_gap"] <= 1e-7
    # strictly usable point: cone feasible, objective recomputed from the weights
    assert sol.max_cone_violation(X) <= 1e-9
    assert np.isclose(sol.objective(X, y, lam), sol.objective_value, rtol=1e-12)
    # the public certificate agrees with the solver's (it reads the multipliers from extra)
    cert = duality_gap(X, y, sol, lam)
    assert cert.rel_gap <= 1e-7
    # inactive blocks are exact zeros
    norms = np.concatenate([np.linalg.norm(sol.V, axis=0), np.linalg.norm(sol.W, axis=0)])
    assert np.all((norms == 0) | (norms > 1e-9 * norms.max()))


def test_working_set_is_smaller_than_the_problem():
    X, y, pats = _problem(3, n=80, p=60)
    sol = solve_native(X, y, pats, activation="relu", lam=1.0)
    assert sol.converged
    W = sol.extra["working_set"]
    assert 0 < len(W) < 2 * pats.n_patterns
    # every active block is in the working set; blocks outside it are zero
    active = np.flatnonzero(np.concatenate([np.linalg.norm(sol.V, axis=0), np.linalg.norm(sol.W, axis=0)]) > 0)
    assert set(active) <= set(W.tolist())
    assert sol.extra["rounds"] >= 1 and sol.iterations > 0
    assert sol.extra["multipliers"].shape == (X.shape[0], 2 * pats.n_patterns)
    assert np.all(sol.extra["multipliers"] >= 0)


def test_zero_solution_above_lam_max():
    X, y, pats = _problem(4)
    lmax = lam_max(X, y, pats, activation="relu")
    sol = solve_native(X, y, pats, activation="relu", lam=1.01 * lmax)
    assert sol.converged and sol.extra["rounds"] == 0
    assert np.all(sol.V == 0) and np.all(sol.W == 0)
    below = solve_native(X, y, pats, activation="relu", lam=0.9 * lmax)
    assert below.converged and below.n_active() > 0


def test_warm_start_seeds_the_working_set():
    X, y, pats = _problem(5, n=60, p=30)
    first = solve_native(X, y, pats, activation="relu", lam=0.5)
    cold = solve_native(X, y, pats, activation="relu", lam=0.45)
    warm = solve_native(X, y, pats, activation="relu", lam=0.45, warm_start=first)
    assert warm.converged and cold.converged
    assert warm.objective_value == pytest.approx(cold.objective_value, rel=1e-6)
    assert warm.extra["history"][0]["working_set"] >= first.n_active()


def test_auto_selection_and_bad_solver_names():
    X, y, pats = _problem(6, n=30, p=8)
    assert solve_native(X, y, pats, activation="relu", lam=1.0).solver == "working_set"
    yl = np.where(y > np.median(y), 1.0, -1.0)
    assert solve_native(X, yl, pats, activation="relu", lam=1.0, loss="logistic").solver == "working_set"
    Y = np.stack([y, -y], axis=1)
    one_vs_all = solve_native(X, Y, pats, activation="relu", lam=1.0)
    assert one_vs_all.solver == "working_set" and one_vs_all.formulation == "one_vs_all"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert solve_native(X, Y, pats, activation="relu", lam=1.0, max_iter=50,
                            formulation="nuclear").solver == "al"
        assert solve_native(X, y, pats, activation="relu", lam=1.0, solver="al", max_iter=50).solver == "al"
    with pytest.raises(InvalidParameterError, match="one_vs_all"):
        solve_native(X, Y, pats, activation="relu", solver="working_set", formulation="nuclear")
    with pytest.raises(InvalidParameterError, match="formulation"):
        solve_native(X, Y, pats, activation="relu", formulation="columns")
    with pytest.raises(InvalidParameterError, match="solver"):
        solve_native(X, y, pats, activation="relu", solver="rfista")
    with pytest.raises(InvalidParameterError, match="solver"):
        solve_native(X, y, pats, activation="gated_relu", solver="working_set")
    with pytest.raises(InvalidParameterError, match="solver"):
        solve_native(X, y, pats, activation="relu", solver="ipopt")


def test_fallback_to_al_when_the_working_set_outgrows_its_cap(monkeypatch):
    X, y, pats = _problem(7, n=40, p=15)
    ref = solve_native(X, y, pats, activation="relu", lam=1.0, tol=1e-7)
    assert ref.solver == "working_set" and ref.converged
    monkeypatch.setattr(ws_mod, "MAX_VARS", 2 * X.shape[1])
    sol = solve_native(X, y, pats, activation="relu", lam=1.0, tol=1e-7, max_iter=20000)
    assert sol.solver == "al" and sol.extra["fallback"] == "working_set_too_large"
    assert sol.converged
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)


def test_fallback_when_the_working_set_exceeds_the_memory_budget():
    X, y, pats = _problem(8, n=40, d=4, p=15)
    d = X.shape[1] + 1
    # enough for the augmented Lagrangian's arrays, not for the first restricted program
    first = solve_native(X, y, pats, activation="relu", lam=1.0, tol=1e-6).extra["history"][0]["working_set"]
    budget = ws_mod.working_set_bytes(X.shape[0], d, first) - 1
    sol = solve_native(X, y, pats, activation="relu", lam=1.0, tol=1e-6, max_iter=20000, memory_budget=budget)
    assert sol.solver == "al" and sol.extra["fallback"] == "memory"


def test_squared_loss_runs_the_active_set_working_set():
    """Scalar squared loss takes the same working set as every other loss (its restricted
    programs by the active-set method); the Clarabel QP working set is not needed."""
    X, y, pats = _problem(3, n=80, p=25)
    sol = solve_native(X, y, pats, activation="relu", lam=0.5, tol=1e-7)
    ref = build_program(X, y, activation="relu", lam=0.5, patterns=pats).solve()
    assert sol.converged and sol.solver == "working_set" and sol.extra["inner_solver"] == "active_set"
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)


def test_qp_working_set_continues_an_uncertified_squared_loss_run(monkeypatch):
    """A squared-loss run that stops uncertified for lack of rounds is finished by the Clarabel
    QP working set from its point; its rounds and Newton steps are counted with the QP's."""
    X, y, pats = _problem(4, n=80, p=25)
    ref = solve_native(X, y, pats, activation="relu", lam=0.3, tol=1e-7)
    assert ref.converged and ref.extra["inner_solver"] == "active_set"
    monkeypatch.setattr(ws_mod, "MAX_ROUNDS", 1)
    monkeypatch.setattr(ws_mod, "CONIC_MAX_ROWS", 0)  # as on a program too large for Clarabel whole
    sol = solve_native(X, y, pats, activation="relu", lam=0.3, tol=1e-7)
    assert sol.converged and sol.solver == "working_set"
    assert sol.extra["inner_solver"] == "active_set+clarabel_qp"
    assert sol.extra["rounds"] >= 2 and len(sol.extra["history"]) >= 2
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert sol.max_cone_violation(X) <= 1e-9


def test_small_program_the_working_set_cannot_finish_goes_to_clarabel_whole(monkeypatch):
    """A program with at most CONIC_MAX_ROWS cone rows that the working set stops on
    uncertified (here: a squared loss past QP_HANDOFF_NEWTON Newton steps) is solved whole by
    Clarabel, and the working set certifies that point on the full program."""
    from cvxnn.native import solve as solve_mod

    X, y, pats = _problem(4, n=80, p=25)
    ref = solve_native(X, y, pats, activation="relu", lam=0.3, tol=1e-7)
    assert ref.converged and ref.extra["inner_solver"] == "active_set" and ref.iterations > 3
    monkeypatch.setattr(solve_mod, "QP_HANDOFF_NEWTON", 3)
    sol = solve_native(X, y, pats, activation="relu", lam=0.3, tol=1e-7)
    assert sol.converged and sol.solver == "working_set"
    assert sol.extra["inner_solver"] == "active_set+clarabel"
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert sol.max_cone_violation(X) <= 1e-9
    # too large for Clarabel whole: no cap, the active set certifies alone
    monkeypatch.setattr(ws_mod, "CONIC_MAX_ROWS", 0)
    sol = solve_native(X, y, pats, activation="relu", lam=0.3, tol=1e-7)
    assert sol.converged and sol.extra["inner_solver"] == "active_set"


def test_relu_regressor_with_very_unequal_sample_weights_certifies():
    """Weights 1e6 on half the rows and 1 on the rest: the active set crawled through face
    changes (10000 Newton steps, 39 s) and the augmented Lagrangian ended uncertified; the
    program is small, so Clarabel solves it whole and the working set certifies its point."""
    from cvxnn import ConvexReLURegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = np.maximum(X[:, 0], 0) + X[:, 1]
    w = np.r_[np.full(100, 1e6), np.ones(100)]
    est = ConvexReLURegressor(random_state=0).fit(X, y, sample_weight=w)
    assert est.status_ == "optimal" and est.solution_.solver == "working_set"
    ref = ConvexReLURegressor(random_state=0, backend="clarabel").fit(X, y, sample_weight=w)
    assert est.convex_objective_ <= ref.convex_objective_ * (1 + 1e-6)
    assert est.convex_objective_ - est.gap_ <= ref.convex_objective_ * (1 + 1e-6)


def test_large_squared_loss_problems_run_the_qp_working_set_first(monkeypatch):
    """From QP_FIRST_ROWS samples on, the squared loss with scalar output starts with the QP
    working set; the optimum is the same."""
    from cvxnn.native import solve as solve_mod

    X, y, pats = _problem(6, n=90, p=20)
    ref = solve_native(X, y, pats, activation="relu", lam=0.4, tol=1e-7)
    monkeypatch.setattr(solve_mod, "QP_FIRST_ROWS", 50)
    sol = solve_native(X, y, pats, activation="relu", lam=0.4, tol=1e-7)
    assert ref.extra["inner_solver"] == "active_set" and sol.extra["inner_solver"] == "clarabel_qp"
    assert sol.converged and sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    # other losses keep the active set at any size
    yl = np.where(y > np.median(y), 1.0, -1.0)
    sol_l = solve_native(X, yl, pats, activation="relu", loss="logistic", lam=0.4, tol=1e-7)
    assert sol_l.extra["inner_solver"] == "active_set"


def test_qp_working_set_alone_matches_the_default():
    """The QP working set stays callable directly and agrees with the default solver."""
    from cvxnn.losses import get_loss
    from cvxnn.native._losses import make_kernel

    X, y, pats = _problem(5, n=60, p=20)
    from cvxnn.patterns import add_bias_column

    Xa = add_bias_column(X)
    kernel = make_kernel(get_loss("squared"), y[:, None], np.float64)
    res = solve_relu_working_set_qp(Xa, pats.mask, kernel, 0.4, gates=pats.gates, tol=1e-7)
    sol = solve_native(X, y, pats, activation="relu", lam=0.4, tol=1e-7)
    assert res.converged and sol.converged
    assert res.primal == pytest.approx(sol.objective_value, rel=1e-6)


def test_callback_sees_rounds_and_can_stop():
    X, y, pats = _problem(9, n=60, p=40)
    seen = []

    def cb(info):
        seen.append(info)
        return True

    with pytest.warns(ConvergenceWarning):
        sol = solve_native(X, y, pats, activation="relu", lam=0.3, callback=cb)
    assert len(seen) == 1 and {"iteration", "objective", "rel_gap", "working_set", "violation"} <= set(seen[0])
    assert sol.status == "max_iterations" and sol.extra["stop_reason"] == "callback"
    # the point is still a valid, certified (if loose) C-ReLU point
    assert sol.max_cone_violation(X) <= 1e-9 and sol.gap >= 0


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), bias=st.booleans(), lam_frac=st.floats(0.05, 0.8))
def test_property_working_set_agrees_with_clarabel(seed, bias, lam_frac):
    """Random instances: certified, cone feasible, and within 1e-6 of Clarabel's optimum."""
    X, y, pats = _problem(seed, n=30, p=12, bias=bias)
    lam = lam_frac * lam_max(X, y, pats, activation="relu")
    sol = solve_native(X, y, pats, activation="relu", lam=lam)
    ref = build_program(X, y, activation="relu", lam=lam, patterns=pats).solve()
    assert sol.converged and sol.solver == "working_set"
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)
    assert sol.max_cone_violation(X) <= 1e-9


def test_conic_fallback_when_face_newton_fails(monkeypatch):
    """When Newton on the identified faces does not converge, the restricted program is solved
    by Clarabel and the full problem is still certified."""
    X, y, pats = _problem(10, n=120, d=4, p=20)
    y = np.where(y > np.median(y), 1.0, -1.0)
    ref = solve_native(X, y, pats, activation="relu", loss="logistic", lam=2.0)
    assert ref.converged

    def no_polish(Xa, M, S, kernel, lam, cols, outs, U, mu, **kw):
        from cvxnn.native.ipm import FacePolishResult

        return FacePolishResult(U=U, newton=0, converged=False)

    calls = []
    real = ws_mod._restricted_conic

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(ws_mod, "polish_on_faces", no_polish)
    monkeypatch.setattr(ws_mod, "ACTIVE_SET", False)  # the barrier path and its fallbacks
    monkeypatch.setattr(ws_mod, "_restricted_conic", counting)
    sol = solve_native(X, y, pats, activation="relu", loss="logistic", lam=2.0)
    assert sol.converged and sol.max_cone_violation(X) <= 1e-9
    assert calls, "the conic fallback was not used"
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)


@pytest.mark.parametrize("n_gates", [8, 32])
def test_rank_deficient_design_certifies_by_face_newton(monkeypatch, n_gates):
    """Digits' constant pixels make X rank deficient: even the face of every row of a cone keeps
    X's null space. Newton on the faces must still fix collapsed blocks at zero and certify the
    one-vs-all program by itself (it used to loop on the same collapsed blocks and leave the
    finish to the Clarabel fallback)."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    keep = y < 3
    X, y = X[keep][:150], y[keep][:150]
    X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    assert np.linalg.matrix_rank(X) < X.shape[1]
    Y = np.eye(3)[y]
    calls = []
    real = ws_mod._restricted_conic

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(ws_mod, "_restricted_conic", counting)
    pats = sample_patterns(X, n_gates, seed=0, bias=True)
    sol = solve_native(X, Y, pats, activation="relu", loss="cross_entropy", lam=1.5, tol=1e-6, feas_tol=1e-8,
                       solver="working_set")
    assert sol.status == "optimal" and sol.rel_gap <= 1e-6 and sol.max_violation <= 1e-8
    assert not calls, "the face Newton needed the conic fallback"


def test_large_restricted_programs_tighten_the_barrier_instead_of_clarabel(monkeypatch):
    """Above CONIC_MAX_ROWS cone rows the conic fallback is skipped: the barrier goes deeper, and
    when Newton on the faces keeps failing the solve still ends certified (through the
    augmented Lagrangian's fallback if need be), never through Clarabel."""
    X, y, pats = _problem(10, n=120, d=4, p=20)
    y = np.where(y > np.median(y), 1.0, -1.0)
    ref = solve_native(X, y, pats, activation="relu", loss="logistic", lam=2.0)
    assert ref.converged

    def no_polish(Xa, M, S, kernel, lam, cols, outs, U, mu, **kw):
        from cvxnn.native.ipm import FacePolishResult

        return FacePolishResult(U=U, newton=0, converged=False)

    def no_conic(*args, **kw):  # pragma: no cover - failing this test is the point
        raise AssertionError("the conic fallback ran above CONIC_MAX_ROWS")

    monkeypatch.setattr(ws_mod, "polish_on_faces", no_polish)
    monkeypatch.setattr(ws_mod, "ACTIVE_SET", False)  # the barrier path and its fallbacks
    monkeypatch.setattr(ws_mod, "_restricted_conic", no_conic)
    monkeypatch.setattr(ws_mod, "CONIC_MAX_ROWS", 0)
    sol = solve_native(X, y, pats, activation="relu", loss="logistic", lam=2.0, solver="working_set")
    assert sol.status == "optimal" and sol.rel_gap <= 1e-6
    assert sol.max_cone_violation(X) <= sol.extra["feas_tol"]
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)


def _scan_problem(seed=0, n=60, d=4, p=12, c=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Xa = np.c_[X, np.ones(n)]
    pats = sample_patterns(X, p, seed=seed, bias=True)
    M = pats.mask.astype(float)
    return Xa, M, pats.gates, rng.standard_normal((n, c))


def test_steepest_direction_is_the_projection_onto_the_cone():
    """``KKTScan.steepest`` is ``Pi_{K_i}(c_b)`` (Moreau), checked against Clarabel's projection."""
    cp = pytest.importorskip("cvxpy")
    Xa, M, gates, theta = _scan_problem()
    c = theta.shape[1]
    scan = ws_mod.KKTScan(Xa, M, 0.1, c, gates)
    p = M.shape[1]
    S = 2.0 * M - 1.0
    for b in (0, 5, 2 * p * c - 1, p * c + 4):
        direction = scan.steepest(b, theta)
        i, k, s = (b // c) % p, b % c, (1.0 if b // c < p else -1.0)
        cb = -s * Xa.T @ (M[:, i] * theta[:, k])  # c_b = s X^T D_i r with r = -theta
        u = cp.Variable(Xa.shape[1])
        cp.Problem(cp.Minimize(cp.sum_squares(u - cb)), [cp.multiply(S[:, i], Xa @ u) >= 0]).solve(solver="CLARABEL")
        np.testing.assert_allclose(direction, u.value, atol=1e-6 * max(1.0, np.linalg.norm(cb)))
        assert (S[:, i] * (Xa @ direction)).min() >= -1e-9 * np.abs(Xa @ direction).max(initial=1.0)
        # a second call at the same point reuses the NNLS of the first
        before = scan.counters["nnls"]
        assert scan.steepest(b, theta) is direction and scan.counters["nnls"] == before


def test_scan_keeps_track_of_the_blocks_with_multipliers():
    """``KKTScan.has_rho`` is exactly the set of non-zero columns of ``rho_out`` after scans at
    moving dual points (the scan bounds only those blocks by their earlier multipliers), and a
    scan that decides every block (fewer than ``MIN_ADD`` violators) certifies the others by
    those multipliers."""
    Xa, M, gates, theta = _scan_problem(2)
    c = theta.shape[1]
    nb = 2 * M.shape[1] * c
    S = 2.0 * M - 1.0
    probe = ws_mod.KKTScan(Xa, M, 1.0, c, gates)
    lam = 0.5 * float(np.linalg.norm(probe.correlations(theta), axis=0).max())
    scan = ws_mod.KKTScan(Xa, M, lam, c, gates)
    in_W = np.zeros(nb, dtype=bool)
    rng = np.random.default_rng(0)
    complete = 0
    for step in range(5):
        th = theta * (1.0 - 0.1 * step) + 0.02 * rng.standard_normal(theta.shape)
        viol, score = scan.scan(th, in_W, nb)
        np.testing.assert_array_equal(scan.has_rho, scan.rho_out.any(axis=0))
        assert np.all(score > lam)
        if viol.size < ws_mod.MIN_ADD:
            complete += 1
            ok = np.setdiff1d(np.arange(nb), viol)
            C = scan.correlations(th)
            res = np.linalg.norm(C[:, ok] - Xa.T @ (S[:, scan.bpat[ok]] * scan.rho_out[:, ok]), axis=0)
            assert np.all(res <= lam * (1.0 + 1e-8))
    assert complete and scan.has_rho.any()


def test_entering_steps_lie_in_their_cones_and_descend():
    """Each entering block starts at ``t_b Pi_K(c_b)`` with ``t_b >= 0``: inside its cone, and the
    loss plus penalty of that block alone decreases."""
    from cvxnn.losses import get_loss
    from cvxnn.native._losses import make_kernel

    Xa, M, gates, _ = _scan_problem(1)
    n, c = Xa.shape[0], 3
    Y = np.eye(c)[np.random.default_rng(1).integers(0, c, n)]
    kernel = make_kernel(get_loss("cross_entropy"), Y, np.float64)
    Z = np.zeros((n, c))
    theta = kernel.grad(Z)
    lam = 0.5
    scan = ws_mod.KKTScan(Xa, M, lam, c, gates)
    p = M.shape[1]
    nb = 2 * p * c
    bcol, bout = np.arange(nb) // c, np.arange(nb) % c
    bpat, bsign = bcol % p, np.where(bcol < p, 1.0, -1.0)
    new = np.arange(nb)
    steps = ws_mod._entering_steps(scan, kernel, Xa, M, 2.0 * M - 1.0, bpat, bsign, bout, new, theta, Z, lam)
    assert steps is not None
    F0 = kernel.value(Z)
    moved = 0
    for pos, b in enumerate(new):
        u = steps[:, pos]
        if not u.any():
            continue
        moved += 1
        sl = (2.0 * M[:, bpat[b]] - 1.0) * (Xa @ u)
        assert sl.min() >= -1e-9 * np.abs(sl).max()
        Zb = Z.copy()
        Zb[:, bout[b]] += bsign[b] * M[:, bpat[b]] * (Xa @ u)
        assert kernel.value(Zb) + lam * np.linalg.norm(u) < F0
    assert moved > 0


def test_refined_multipliers_change_no_nnls_result(monkeypatch):
    """``KKTScan.refine`` (batched ADMM before the exact NNLS) only steers Lawson-Hanson: the
    steepest directions, the violators, their scores and the certified residuals of a scan are
    those of the exact solves without it, and a working-set fit reaches the same optimum."""
    from cvxnn.losses import get_loss
    from cvxnn.native._losses import make_kernel

    Xa, M, gates, _ = _scan_problem(3, n=200, d=12, p=16)
    n, c = Xa.shape[0], 3
    Y = np.eye(c)[np.random.default_rng(3).integers(0, c, n)]
    kernel = make_kernel(get_loss("cross_entropy"), Y, np.float64)
    Z = np.zeros((n, c))
    theta = kernel.grad(Z)
    p = M.shape[1]
    nb = 2 * p * c
    S = 2.0 * M - 1.0
    bcol, bout = np.arange(nb) // c, np.arange(nb) % c
    bpat, bsign = bcol % p, np.where(bcol < p, 1.0, -1.0)
    lam = 0.3 * float(np.linalg.norm(ws_mod.KKTScan(Xa, M, 1.0, c, gates).correlations(theta), axis=0).max())
    results = {}
    original = ws_mod.nnls_batched_admm
    for refine in (False, True):
        monkeypatch.setattr(ws_mod, "REFINE_MIN_ENTRIES", 0 if refine else 10**12)
        calls: list[float] = []

        def recording(*a, calls=calls, **k):
            calls.append(k["rho_scale"])
            return original(*a, **k)

        monkeypatch.setattr(ws_mod, "nnls_batched_admm", recording)
        scan = ws_mod.KKTScan(Xa, M, lam, c, gates)
        steps = ws_mod._entering_steps(scan, kernel, Xa, M, S, bpat, bsign, bout, np.arange(0, nb, 5), theta, Z, lam)
        viol, score = scan.scan(0.7 * theta, np.zeros(nb, dtype=bool), nb)
        ok = np.setdiff1d(np.arange(nb), viol)
        C = scan.correlations(0.7 * theta)
        res = np.linalg.norm(C[:, ok] - Xa.T @ (S[:, scan.bpat[ok]] * scan.rho_out[:, ok]), axis=0)
        assert np.all(res <= lam * (1.0 + 1e-8))
        assert (ws_mod.REFINE_RHO in calls) == refine
        np.testing.assert_array_equal(scan.has_rho, scan.rho_out.any(axis=0))
        results[refine] = (steps, viol, score)
    # refine's problems are the blocks' own: -c_b from theta, the signs of their cones
    seen = {}
    monkeypatch.setattr(ws_mod, "nnls_batched_admm", lambda X, S_, C, R0, **k: seen.update(S=S_, C=C) or (R0, None))
    blocks = np.array([1, 7, nb // 2 + 3, nb - 1])
    scan.refine(blocks, theta)
    np.testing.assert_allclose(seen["C"], scan.correlations(theta)[:, blocks], atol=1e-12)
    np.testing.assert_array_equal(seen["S"], S[:, bpat[blocks]])
    with pytest.raises(InvalidParameterError, match="theta"):
        scan.refine(blocks)
    np.testing.assert_allclose(results[True][0], results[False][0], atol=1e-9 * np.abs(results[False][0]).max())
    np.testing.assert_array_equal(results[True][1], results[False][1])
    np.testing.assert_allclose(results[True][2], results[False][2], rtol=1e-9)
    # a whole working-set fit (every scan and entering direction refined) certifies the same optimum
    monkeypatch.setattr(ws_mod, "nnls_batched_admm", original)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((200, 8))
    Yf = np.eye(c)[np.argmax(X[:, :c] + 0.3 * rng.standard_normal((200, c)), axis=1)]
    pats = sample_patterns(X, 16, seed=5, bias=True)
    fits = {}
    for refine in (False, True):
        monkeypatch.setattr(ws_mod, "REFINE_MIN_ENTRIES", 0 if refine else 10**12)
        fits[refine] = solve_native(X, Yf, pats, activation="relu", loss="cross_entropy", lam=2.0, tol=1e-8)
        assert fits[refine].status == "optimal"
    assert fits[True].objective_value == pytest.approx(fits[False].objective_value, rel=1e-8)


@pytest.mark.parametrize("steepest", [True, False])
def test_vector_working_set_certifies_with_either_start(monkeypatch, steepest):
    """Starting the entering blocks along their steepest feasible directions or along the gates
    alone reaches the same certified optimum (Clarabel's objective)."""
    X, y, pats = _problem(4, n=90, d=3, p=16)
    Y = np.eye(3)[np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))]
    ref = build_program(X, Y, activation="relu", loss="cross_entropy", lam=1.0, patterns=pats,
                        formulation="one_vs_all").solve()
    monkeypatch.setattr(ws_mod, "STEEPEST_START", steepest)
    sol = solve_native(X, Y, pats, activation="relu", loss="cross_entropy", lam=1.0, tol=1e-8,
                       solver="working_set", formulation="one_vs_all")
    assert sol.status == "optimal" and sol.rel_gap <= 1e-8
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert sol.max_cone_violation(X) <= 1e-9


def test_feasible_warm_start_moves_blocks_into_their_cones():
    """Blocks outside their cones move inside along the interior direction, tiny blocks become
    zero, feasible blocks are untouched."""
    Xa, M, gates, _ = _scan_problem(2, p=10, c=1)
    S = 2.0 * M - 1.0
    p = M.shape[1]
    nb = 2 * p
    bpat = np.arange(nb) % p
    rng = np.random.default_rng(2)
    G = gates / np.linalg.norm(gates, axis=0)
    T = np.zeros((Xa.shape[1], nb))
    T[:, 0] = G[:, 0]  # feasible
    T[:, 1] = G[:, 1] + 0.5 * rng.standard_normal(Xa.shape[1])  # most likely outside K_1
    T[:, 2] = 1e-9 * G[:, 2]  # tiny
    T[:, p + 3] = rng.standard_normal(Xa.shape[1])  # any direction, pattern 3
    out = ws_mod._feasible_warm_start(T, Xa, S, bpat, lambda i: G[:, i])
    np.testing.assert_array_equal(out[:, 0], T[:, 0])
    assert not out[:, 2].any()
    for b in (0, 1, p + 3):
        sl = S[:, bpat[b]] * (Xa @ out[:, b])
        assert sl.min() >= 0.0
    # the push is along the interior direction only
    for b in (1, p + 3):
        delta = out[:, b] - T[:, b]
        g = G[:, bpat[b]]
        np.testing.assert_allclose(delta, (delta @ g) * g, atol=1e-12 * max(1.0, np.abs(delta).max()))
    # a cone without an interior direction: the block is dropped
    out2 = ws_mod._feasible_warm_start(T, Xa, S, bpat, lambda i: None if i == 1 else G[:, i])
    if (S[:, 1] * (Xa @ T[:, 1])).min() < 0:
        assert not out2[:, 1].any()


def test_augmented_lagrangian_point_warm_starts_the_active_set():
    """An augmented-Lagrangian point (outside its cones, many small blocks) starts the working
    set's active set directly (no barrier round) and certifies the cold optimum."""
    X, y, pats = _problem(11, n=120, d=4, p=30)
    lam = 0.3
    cold = solve_native(X, y, pats, activation="relu", lam=lam, tol=1e-8)
    al = solve_native(X, y, pats, activation="relu", solver="al", lam=lam, tol=1e-3, max_iter=300)
    assert al.max_cone_violation(X) > 0  # the AL point is not cone feasible
    sol = solve_native(X, y, pats, activation="relu", solver="working_set", lam=lam, tol=1e-8, warm_start=al)
    assert sol.converged and sol.extra["history"][0]["status"] == "active_set"
    assert sol.objective_value == pytest.approx(cold.objective_value, rel=1e-7)
    assert sol.max_cone_violation(X) <= 1e-9


@pytest.mark.parametrize("solver", ["active_set", "qp"])
def test_warm_start_of_the_wrong_shape_is_refused(solver):
    from cvxnn.errors import ShapeError
    from cvxnn.losses import get_loss
    from cvxnn.native._losses import make_kernel
    from cvxnn.patterns import add_bias_column

    X, y, pats = _problem(12, n=40, p=10)
    kernel = make_kernel(get_loss("squared"), y[:, None], np.float64)
    run = ws_mod.solve_relu_working_set if solver == "active_set" else solve_relu_working_set_qp
    with pytest.raises(ShapeError, match="T0 must have shape"):
        run(add_bias_column(X), pats.mask, kernel, 1.0, gates=pats.gates, T0=np.zeros((2, 3)))


def test_zero_rows_of_the_design_constrain_nothing():
    """Rows of X that are zero (bias=False) have zero slack for every block: they neither empty
    the cones' interiors nor stop the working set (it ended 'degenerate_cone' on vector output
    and handed the fit to the augmented Lagrangian, which did not certify)."""
    import cvxnn

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    X[[0, 7]] = 0.0
    Y = rng.standard_normal((40, 3))
    pats = cvxnn.sample_patterns(X, 10, seed=0, bias=False)
    ref = cvxnn.build_program(X, Y, activation="relu", lam=0.1, patterns=pats, formulation="one_vs_all").solve()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = cvxnn.solve(X, Y, pats, activation="relu", lam=0.1, formulation="one_vs_all")
    assert sol.status == "optimal" and sol.solver == "working_set"
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)


def _huber_problem():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((20, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0) - 0.5 * np.maximum(X @ rng.standard_normal(3), 0)
    y += 0.1 * rng.standard_normal(20)
    return X, y, sample_patterns(X, 12, seed=7, bias=True)


@pytest.mark.parametrize("ratio", [0.1, 0.01])
def test_huber_entering_blocks_do_not_diverge_where_the_loss_is_linear(ratio):
    # an entering block whose predictions fall where Huber is linear has almost no curvature
    # along its steepest direction: its one-dimensional Newton step was ~1e26 and the step grid
    # (down to 2^-9 of it) kept the least bad of 10 huge points, so the active set started at
    # objective ~1e24 and never recovered (max_iterations, no fallback)
    X, y, pats = _huber_problem()
    lam = ratio * lam_max(X, y, pats, activation="relu", loss="huber")
    ref = build_program(X, y, activation="relu", loss="huber", lam=lam, patterns=pats).solve()
    sol = solve_native(X, y, pats, activation="relu", loss="huber", lam=lam, tol=1e-9)
    assert sol.status == "optimal" and sol.solver == "working_set"
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert max(np.abs(sol.V).max(), np.abs(sol.W).max()) < 10.0


def test_the_augmented_lagrangian_continues_when_the_working_set_runs_out_of_rounds(monkeypatch):
    X, y, pats = _huber_problem()
    lam = 0.05 * lam_max(X, y, pats, activation="relu", loss="huber")
    ref = build_program(X, y, activation="relu", loss="huber", lam=lam, patterns=pats).solve()
    monkeypatch.setattr(ws_mod, "MAX_ROUNDS", 1)
    raw = ws_mod.solve_relu_working_set
    reasons = []

    def spy(*args, **kwargs):
        res = raw(*args, **kwargs)
        reasons.append(res.reason)
        return res

    from cvxnn.native import solve as solve_mod

    monkeypatch.setattr(solve_mod, "solve_relu_working_set", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = solve_native(X, y, pats, activation="relu", loss="huber", lam=lam, tol=1e-6, max_iter=20000)
    assert reasons[0] == "max_rounds"  # not the Newton-step budget: steps were left
    assert sol.solver == "al" and sol.extra["fallback"] == "max_rounds"
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-4)
    if sol.status == "optimal":
        assert sol.extra["rel_gap"] <= 1e-6


@pytest.mark.parametrize("scale", [1e-6, 1e3])
@pytest.mark.parametrize("activation,solver", [("relu", "auto"), ("relu", "al"), ("gated_relu", "auto"),
                                               ("gated_relu", "rfista")])
def test_native_solvers_do_not_depend_on_the_scale_of_the_data(activation, solver, scale):
    # X, y scaled by s and lam by s^2: the same program times s^2. Stopping tests with an absolute
    # floor (``dec <= 1e-13 * max(1, |F|)``) stopped the active set at once on tiny data, which
    # then ended uncertified at 56 % above the optimum
    rng = np.random.default_rng(0)
    X0, y0 = rng.standard_normal((12, 3)), rng.standard_normal(12)
    pats = sample_patterns(X0, 10, seed=0, bias=False)
    lam = 0.004437995
    ref = solve_native(X0, y0, pats, activation=activation, lam=lam, solver=solver, tol=1e-8, max_iter=20000)
    X = scale * X0
    sol = solve_native(X, scale * y0, sample_patterns(X, 10, seed=0, bias=False), activation=activation,
                       lam=lam * scale**2, solver=solver, tol=1e-8, max_iter=20000)
    assert ref.status == sol.status == "optimal"
    assert sol.objective_value / scale**2 == pytest.approx(ref.objective_value, rel=1e-6)


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_more_features_than_samples_solves_in_the_row_space(monkeypatch, activation):
    """d > n, C-ReLU: the program is solved in the coordinates of the row space of [X, 1] (the
    same program: the loss, the cones and the dual norms see X u only) and the blocks are mapped
    back; the optimum, its certificate and a warm start agree with the solve in R^d. C-GReLU
    keeps R^d (its interior-point finish is timed for full designs)."""
    from cvxnn.native import solve as solve_mod

    if activation == "gated_relu":
        rng = np.random.default_rng(0)
        X = rng.standard_normal((30, 60))
        y = np.where(X[:, 0] > 0, 1.0, -1.0)
        sol = solve_native(X, y, sample_patterns(X, 12, seed=0, bias=True), activation=activation,
                           loss="logistic", lam=0.5, tol=1e-9)
        assert sol.converged and "row_space_dim" not in sol.extra
        return

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 60))
    y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, 1.0, -1.0)
    pats = sample_patterns(X, 12, seed=0, bias=True)
    sol = solve_native(X, y, pats, activation=activation, loss="logistic", lam=0.5, tol=1e-9)
    Xa = pats.design(X)
    assert sol.converged and sol.extra["row_space_dim"] == np.linalg.matrix_rank(Xa) == 30
    _, _, Vt = np.linalg.svd(Xa, full_matrices=True)
    null = Vt[30:]  # orthogonal complement of the row space
    for name in sol.spec.blocks:
        B = getattr(sol, name)
        assert np.abs(null @ B).max() <= 1e-10 * max(1.0, np.abs(B).max())
    monkeypatch.setattr(solve_mod, "ROW_SPACE", False)
    full = solve_native(X, y, pats, activation=activation, loss="logistic", lam=0.5, tol=1e-9)
    assert "row_space_dim" not in full.extra
    assert sol.objective_value == pytest.approx(full.objective_value, rel=1e-8)
    np.testing.assert_allclose(sol.predict(X), full.predict(X), atol=1e-6)
    assert sol.dual_value <= full.objective_value * (1 + 1e-9)
    monkeypatch.setattr(solve_mod, "ROW_SPACE", True)
    warm = solve_native(X, y, pats, activation=activation, loss="logistic", lam=0.4, tol=1e-9, warm_start=sol)
    cold = solve_native(X, y, pats, activation=activation, loss="logistic", lam=0.4, tol=1e-9)
    assert warm.converged and warm.objective_value == pytest.approx(cold.objective_value, rel=1e-8)


def test_face_newton_on_few_rows_uses_conjugate_gradients(monkeypatch):
    """Face systems of more than FACE_CG_ROWS_RATIO x n coordinates are solved matrix-free (the
    formed Hessian is rank n plus the penalty curvature); the optimum is the same."""
    from cvxnn.native import ipm

    rng = np.random.default_rng(1)
    X = rng.standard_normal((25, 80))
    y = np.where(X[:, 0] - X[:, 2] > 0, 1.0, -1.0)
    pats = sample_patterns(X, 16, seed=0, bias=True)
    from unittest import mock

    spy = mock.Mock(wraps=ipm._face_newton_cg)
    monkeypatch.setattr(ipm, "_face_newton_cg", spy)
    monkeypatch.setattr(ipm, "FACE_CG_ROWS_MIN", 50)  # a small problem stands in for a large one
    sol = solve_native(X, y, pats, activation="relu", loss="logistic", lam=0.3, tol=1e-9)
    monkeypatch.setattr(ipm, "FACE_CG_ROWS_RATIO", float("inf"))
    dense_calls = spy.call_count
    dense = solve_native(X, y, pats, activation="relu", loss="logistic", lam=0.3, tol=1e-9)
    assert sol.converged and dense.converged
    assert sol.objective_value == pytest.approx(dense.objective_value, rel=1e-8)
    assert dense_calls > 0


def test_the_working_sets_respect_the_memory_budget_before_allocating():
    """memory_budget was checked on the restricted programs only: the C-ReLU working set built
    its n x p mask, signs and KKT-scan arrays (267 MiB at a 19 MiB budget, n=20000), and the
    gated one its n x R atom arrays (5.6x a 9.5 MiB budget). Now the C-ReLU program too large
    for both methods raises MemoryBudgetError up front, and the gated one is solved by R-FISTA."""
    import tracemalloc

    from cvxnn import sample_patterns, solve
    from cvxnn.errors import MemoryBudgetError
    from cvxnn.native.gated_working_set import atoms_bytes
    from cvxnn.native.working_set import working_set_fixed_bytes

    rng = np.random.default_rng(0)
    n, d = 4000, 10
    X = rng.standard_normal((n, d))
    y = np.maximum(X[:, 0], 0.0) - X[:, 1] + 0.1 * rng.standard_normal(n)
    pats = sample_patterns(X, 60, seed=0, bias=True)
    p = pats.n_patterns
    budget = working_set_fixed_bytes(n, d + 1, p) // 4
    tracemalloc.start()
    try:
        with pytest.raises(MemoryBudgetError):
            solve(X, y, pats, activation="relu", lam=0.01 * n, memory_budget=budget)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < budget
    small = atoms_bytes(n, p, 1) // 2  # below the atoms' bound, above R-FISTA's arrays
    sol = solve(X, y, pats, activation="gated_relu", lam=0.01 * n, memory_budget=small)
    assert sol.status == "optimal" and "working_set_rounds" not in sol.extra
