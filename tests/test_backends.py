"""cvxnn.solve, the adapter registry, the CVXPY status map, the memory estimate, typed fields
and the path engine."""

import cvxpy as cp
import numpy as np
import pytest

import cvxnn
from cvxnn import build_program, sample_patterns
from cvxnn.backends import cvxpy_adapter
from cvxnn.backends.cvxpy_adapter import CVXPY_STATUS_MAP, estimate_nonzeros, map_status, run_problem
from cvxnn.backends.registry import register_adapter, resolve_solver, solver_names
from cvxnn.errors import (
    InfeasibleError,
    InvalidParameterError,
    MemoryBudgetError,
    SolverError,
    UnboundedError,
)
from cvxnn.path import walk_path
from cvxnn.solution import STATUSES, ConvexSolution


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0) - 0.5 * np.maximum(X @ rng.standard_normal(3), 0)
    return X, y, sample_patterns(X, 10, seed=0, bias=True)


# ----------------------------------------------------------------------------- registry
def test_unknown_solver_names_the_choices(data):
    X, y, pats = data
    with pytest.raises(InvalidParameterError, match="clarabel") as info:
        cvxnn.solve(X, y, pats, solver="no_such_solver")
    for name in ("auto", "rfista", "working_set", "al"):
        assert name in str(info.value)
    with pytest.raises(InvalidParameterError):
        cvxnn.solve(X, y, pats, solver=3)


def test_names_resolve_to_adapters():
    assert {"auto", "native", "rfista", "working_set", "al", "clarabel"} <= set(solver_names())
    assert resolve_solver("auto")[0].backend == "native"
    assert resolve_solver("AL")[0].backend == "native"
    adapter, name = resolve_solver("clarabel")
    assert adapter.backend == "cvxpy" and name == "CLARABEL"
    with pytest.raises(InvalidParameterError):
        register_adapter("clarabel", object())  # a built-in name
    with pytest.raises(InvalidParameterError):
        register_adapter("mine", object())  # no solve method


@pytest.mark.parametrize("activation,native_name", [("gated_relu", "rfista"), ("relu", "working_set")])
def test_native_and_cvxpy_agree_through_one_entry_point(data, activation, native_name):
    X, y, pats = data
    lam = 0.5
    ref = cvxnn.solve(X, y, pats, activation=activation, lam=lam, solver="clarabel")
    assert ref.backend == "cvxpy" and ref.solver == "CLARABEL" and ref.status == "optimal"
    auto = cvxnn.solve(X, y, pats, activation=activation, lam=lam, solver="auto", tol=1e-9)
    named = cvxnn.solve(X, y, pats, activation=activation, lam=lam, solver=native_name, tol=1e-9)
    assert auto.backend == named.backend == "native" and named.solver == native_name
    assert named.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert auto.objective_value == pytest.approx(ref.objective_value, rel=1e-6)


def test_program_is_reused(data):
    X, y, pats = data
    prog = build_program(X, y, activation="relu", lam=1.0, patterns=pats)
    a = cvxnn.solve(X, y, pats, lam=0.3, solver="clarabel", program=prog)
    assert prog.lam.value == 0.3
    b = build_program(X, y, activation="relu", lam=0.3, patterns=pats).solve()
    assert a.objective_value == pytest.approx(b.objective_value, rel=1e-7)
    with pytest.raises(InvalidParameterError):
        cvxnn.solve(X, y, pats, activation="gated_relu", solver="clarabel", program=prog)
    with pytest.raises(InvalidParameterError):
        cvxnn.solve(X, y, pats, solver="auto", program=prog)


def test_program_refuses_other_data_targets_or_loss(data):
    """program= is solved on its own X, y and loss: a solve that asks for others raises instead of
    returning the program's solution (which it used to, silently)."""
    X, y, pats = data
    prog = build_program(X, y, activation="relu", lam=1.0, patterns=pats)
    with pytest.raises(InvalidParameterError, match="other targets"):
        cvxnn.solve(X, y + 1.0, pats, lam=0.3, solver="clarabel", program=prog)
    with pytest.raises(InvalidParameterError, match="shape"):
        cvxnn.solve(X[:, :2], y, lam=0.3, solver="clarabel", program=prog)
    with pytest.raises(InvalidParameterError, match="other data"):
        cvxnn.solve(X * 2.0, y, lam=0.3, solver="clarabel", program=prog)
    with pytest.raises(InvalidParameterError, match="loss"):
        cvxnn.solve(X, np.sign(y - np.median(y)), pats, loss="logistic", lam=0.3, solver="clarabel", program=prog)
    # loss omitted: the program's own (here logistic, not the "squared" default)
    labels = np.where(y > np.median(y), 1.0, -1.0)
    logistic = build_program(X, labels, activation="gated_relu", loss="logistic", lam=1.0, patterns=pats)
    a = cvxnn.solve(X, labels, pats, activation="gated_relu", lam=0.3, solver="clarabel", program=logistic)
    b = cvxnn.solve(X, labels, pats, activation="gated_relu", loss="logistic", lam=0.3, solver="clarabel")
    assert a.loss.name == "logistic"
    assert a.objective_value == pytest.approx(b.objective_value, rel=1e-6)


def test_native_solve_refuses_options_it_does_not_take(data):
    X, y, pats = data
    for opt in ({"penalty": "group_l2"}, {"eps_abs": 1e-3}):
        with pytest.raises(InvalidParameterError, match="do not take"):
            cvxnn.solve(X, y, pats, lam=0.3, solver="auto", **opt)
    sol = cvxnn.solve(X, y, pats, lam=0.3, solver="auto", feas_tol=1e-7)  # one it takes
    assert sol.status == "optimal"


# ----------------------------------------------------------------------------- status map
def test_status_map_covers_cvxpy_and_only_cvxnn_statuses():
    assert set(CVXPY_STATUS_MAP.values()) <= set(STATUSES)
    assert map_status(cp.OPTIMAL, "S") == "optimal"
    assert map_status(cp.OPTIMAL_INACCURATE, "S") == "optimal_inaccurate"
    assert map_status(cp.USER_LIMIT, "S") == "max_iterations"
    with pytest.raises(InfeasibleError):
        map_status(cp.INFEASIBLE_INACCURATE, "S")
    with pytest.raises(UnboundedError):
        map_status(cp.UNBOUNDED, "S")
    with pytest.raises(SolverError) as info:  # numerical_error raises, as docs/reliability.md says
        map_status(cp.SOLVER_ERROR, "S")
    assert info.value.status == "numerical_error"


def test_unknown_status_is_surfaced_not_mapped():
    with pytest.raises(SolverError, match="'made_up_status'"):
        map_status("made_up_status", "S")
    with pytest.raises(SolverError, match="None"):
        map_status(None, "S")


def test_run_problem_errors():
    x = cp.Variable(2)
    infeasible = cp.Problem(cp.Minimize(cp.sum(x)), [x >= 1, x <= 0])
    with pytest.raises(InfeasibleError):
        run_problem(infeasible, "CLARABEL")
    unbounded = cp.Problem(cp.Minimize(cp.sum(x)))
    with pytest.raises((UnboundedError, InfeasibleError)):
        run_problem(unbounded, "CLARABEL")
    ok = cp.Problem(cp.Minimize(cp.sum_squares(x - 1)))
    with pytest.raises(InvalidParameterError):
        run_problem(ok, "CLARABEL", no_such_option=1)
    with pytest.raises(InvalidParameterError):
        run_problem(ok, "NOT_A_SOLVER")
    run = run_problem(ok, "CLARABEL")
    assert run.status == "optimal" and run.solver == "CLARABEL" and np.allclose(x.value, 1)


# ----------------------------------------------------------------------------- memory
def test_nonzero_estimate_tracks_the_compiled_problem(data):
    X, y, pats = data
    for activation in ("relu", "gated_relu"):
        prog = build_program(X, y, activation=activation, lam=1.0, patterns=pats)
        nnz = prog.problem.get_problem_data("CLARABEL")[0]["A"].nnz
        est = prog.estimated_nonzeros()
        assert 0.5 * nnz <= est <= 2.0 * nnz
    assert estimate_nonzeros(n=1250, d_a=65, p=100, c=10, activation="gated_relu") >= 1250 * 65 * 100 * 10


def test_memory_budget_refuses_before_compiling(data):
    X, y, pats = data
    prog = build_program(X, y, activation="relu", lam=1.0, patterns=pats)
    with pytest.raises(MemoryBudgetError, match="native") as info:
        prog.solve(memory_budget=1000)
    assert "GiB" in str(info.value)
    assert prog.problem.status is None  # nothing was compiled or solved
    with pytest.raises(MemoryBudgetError):
        prog.compile(memory_budget=1000)
    with pytest.raises(MemoryBudgetError):
        cvxpy_adapter.check_memory(10**12)


# ----------------------------------------------------------------------------- typed fields
def test_cvxpy_solution_typed_fields(data):
    X, y, pats = data
    sol = build_program(X, y, activation="relu", lam=0.5, patterns=pats).solve()
    n, p = X.shape[0], pats.n_patterns
    assert sol.multipliers.shape == (n, 2 * p)
    np.testing.assert_array_equal(sol.multipliers[:, :p], sol.cone_duals[0])
    assert sol.extra["cvxpy_status"] == "optimal"
    assert sol.training_X is None and sol.formulation is None


def test_typed_fields_filled_from_extra(data):
    X, y, pats = data
    shape = (pats.design_dim, pats.n_patterns)
    rho = np.ones((X.shape[0], 2 * pats.n_patterns))
    sol = ConvexSolution("relu", pats, V=np.zeros(shape), W=np.zeros(shape),
                         extra={"multipliers": rho, "delta": 3.0, "step_size": 0.5, "rel_gap": 1e-9,
                                "dual_value": 1.5})
    assert sol.multipliers is rho and sol.al_delta == 3.0 and sol.step_size == 0.5
    assert sol.rel_gap == 1e-9 and sol.dual_value == 1.5
    typed = ConvexSolution("relu", pats, V=np.zeros(shape), W=np.zeros(shape), al_delta=1.0,
                           extra={"delta": 3.0})
    assert typed.al_delta == 1.0  # a typed value is never overwritten
    duals = (np.ones((X.shape[0], pats.n_patterns)), 2 * np.ones((X.shape[0], pats.n_patterns)))
    loaded = ConvexSolution("relu", pats, V=np.zeros(shape), W=np.zeros(shape), extra={"cone_duals": duals})
    np.testing.assert_array_equal(loaded.multipliers, np.hstack(duals))  # e.g. a solution read by cvxnn.io


# ----------------------------------------------------------------------------- path engine
def test_walk_path_order_warm_start_and_stop(data):
    X, y, pats = data
    seen = []

    def step(lam, warm):
        seen.append((lam, None if warm is None else warm.lam))
        return cvxnn.solve(X, y, pats, activation="gated_relu", lam=lam, solver="auto", warm_start=warm)

    steps = list(walk_path([0.1, 1.0, 0.5], step))
    assert [s.lam for s in steps] == [1.0, 0.5, 0.1]
    assert [s.index for s in steps] == [1, 2, 0]
    assert seen == [(1.0, None), (0.5, 1.0), (0.1, 0.5)]
    stopped = list(walk_path([0.1, 1.0, 0.5], step, callback=lambda k, lam, sol: k == 0))
    assert len(stopped) == 1
    with pytest.raises(InvalidParameterError):
        list(walk_path([], step))
    with pytest.raises(InvalidParameterError):
        list(walk_path(["a"], step))


def test_vector_nonzero_estimate(data):
    from cvxnn.vector import build_vector_program

    X, _, pats = data
    Y = np.random.default_rng(0).standard_normal((X.shape[0], 3))
    for activation in ("relu", "gated_relu"):
        for formulation in ("nuclear", "one_vs_all"):
            prog = build_vector_program(X, Y, activation=activation, lam=1.0, patterns=pats,
                                        formulation=formulation)
            nnz = prog.problem.get_problem_data("CLARABEL", canon_backend="SCIPY")[0]["A"].nnz
            assert 0.5 * nnz <= prog.estimated_nonzeros() <= 2.0 * nnz, (activation, formulation)


def test_an_infeasibility_certificate_for_a_feasible_program_is_a_numerical_failure():
    """Regularized programs have the feasible point zero: Clarabel's 'infeasible' on badly scaled
    data (targets ~1e6) is a numerical failure, not InfeasibleError ('no feasible point')."""
    from cvxnn.errors import InfeasibleError, SolverError

    with pytest.raises(SolverError, match="has a feasible point") as info:
        map_status(cp.INFEASIBLE, "S", feasible=True)
    assert not isinstance(info.value, InfeasibleError) and info.value.status == "numerical_error"
    with pytest.raises(InfeasibleError):
        map_status(cp.INFEASIBLE, "S")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20) * 1e6
    prog = build_program(X, y, activation="gated_relu", lam=0.1, patterns=sample_patterns(X, 5, seed=0))
    try:
        sol = prog.solve()
    except SolverError as exc:  # whichever way this Clarabel version fails, never "infeasible"
        assert not isinstance(exc, InfeasibleError)
    else:
        assert sol.status in ("optimal", "optimal_inaccurate")


def test_switching_the_solver_does_not_switch_the_vector_program():
    """Vector C-ReLU: cvxnn.solve's default program is one-vs-all for the native solvers and
    was nuclear for CVXPY solvers (7.73 against 7.35 with the same arguments); formulation= is
    now taken by both, and the defaults agree."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 3))
    Y = np.eye(3)[rng.integers(0, 3, 40)]
    pats = sample_patterns(X, 6, seed=0, bias=True)
    kw = dict(activation="relu", lam=0.5)
    nat = cvxnn.solve(X, Y, pats, **kw, tol=1e-8)
    cla = cvxnn.solve(X, Y, pats, **kw, solver="clarabel")
    assert nat.formulation == cla.formulation == "one_vs_all"
    assert cla.objective_value == pytest.approx(nat.objective_value, rel=1e-6)
    nuc = cvxnn.solve(X, Y, pats, **kw, formulation="nuclear", solver="clarabel")
    assert nuc.formulation == "nuclear"
    assert nuc.objective_value < cla.objective_value  # a nuclear norm is below the column norms' sum


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_cvxpy_solutions_carry_cvxnn_s_certificate(activation):
    # the float64 gap of the returned point bounds its true suboptimality (the native optimum)
    from cvxnn import build_program, sample_patterns, solve

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = np.where(X[:, 0] - np.abs(X[:, 1]) > 0, 1.0, -1.0)
    pats = sample_patterns(X, 8, seed=0, bias=True)
    sol = build_program(X, y, activation=activation, loss="logistic", lam=0.5, patterns=pats).solve()
    best = solve(X, y, pats, activation=activation, loss="logistic", lam=0.5, tol=1e-12)
    gap = sol.extra["certified_gap"]
    assert gap >= sol.objective_value - best.objective_value - 1e-9 * abs(best.objective_value)
    assert sol.extra["certified_rel_gap"] == pytest.approx(gap / abs(sol.objective_value))
    assert sol.extra["certified_rel_gap"] < 1e-4


def test_solution_gap_says_none_where_no_certificate_applies():
    import dataclasses

    from cvxnn import build_program, sample_patterns
    from cvxnn.native.certificates import solution_gap

    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 2)), rng.standard_normal(30)
    pats = sample_patterns(X, 6, seed=0)
    sol = build_program(X, y, activation="relu", lam=0.3, patterns=pats).solve()
    assert solution_gap(sol, X, y, 0.3, "squared") >= 0.0
    assert solution_gap(sol, X, y, 0.0, "squared") is None  # no lam, no dual bound
    assert solution_gap(sol, X, y, 0.3, "absolute") is None  # no smooth conjugate
    bare = dataclasses.replace(sol, multipliers=None, cone_duals=None, extra={})
    assert solution_gap(bare, X, y, 0.3, "squared") is None  # a C-ReLU point needs its multipliers


def test_cvxpy_solves_check_their_warm_start_and_certificates_their_outputs():
    """cvxnn.solve with a CVXPY solver accepted any warm_start (a string, a model of other
    patterns or outputs) and ignored it; min_norm_subgradient reshaped a 3-output model
    against scalar y with a bare ValueError."""
    import cvxnn
    from cvxnn.errors import InvalidParameterError, PatternMismatchError, ShapeError
    from cvxnn.native import min_norm_subgradient

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    pats = cvxnn.sample_patterns(X, 5, seed=0, bias=True)
    other = cvxnn.sample_patterns(X, 5, seed=1, bias=True)
    warm_other = cvxnn.solve(X, y, other, activation="gated_relu", lam=1.0)
    wide = cvxnn.solve(X, np.c_[y, -y, y], pats, activation="gated_relu", lam=1.0)
    for solver in ("clarabel", "auto"):
        with pytest.raises(InvalidParameterError, match="ConvexModel"):
            cvxnn.solve(X, y, pats, activation="gated_relu", lam=1.0, solver=solver, warm_start="x")
        with pytest.raises(PatternMismatchError):
            cvxnn.solve(X, y, pats, activation="gated_relu", lam=1.0, solver=solver, warm_start=warm_other)
        with pytest.raises(ShapeError):
            cvxnn.solve(X, y, pats, activation="gated_relu", lam=1.0, solver=solver, warm_start=wide)
    with pytest.raises(ShapeError, match="3 outputs but y has 1"):
        min_norm_subgradient(X, y, wide, 1.0)


def test_stored_program_does_not_keep_options_of_an_earlier_solve():
    """CVXPY reuses its cached Clarabel solver and overlays only the options passed now: a
    program solved once with max_iter=2 (or loose tolerances) must not keep them."""
    import warnings

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = X @ rng.standard_normal(3)
    pats = cvxnn.sample_patterns(X, 8, seed=0, bias=True)
    prog = cvxnn.build_program(X, y, activation="relu", lam=0.1, patterns=pats)
    fresh = cvxnn.build_program(X, y, activation="relu", lam=0.1, patterns=pats).solve()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert prog.solve(max_iter=2).status == "max_iterations"
    again = prog.solve()
    assert again.status == "optimal" and again.iterations == fresh.iterations
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog.solve(tol_gap_rel=0.3, tol_gap_abs=0.3, tol_feas=0.3)
    tight = prog.solve()
    assert tight.objective_value == pytest.approx(fresh.objective_value, rel=1e-7)
    via_solve = cvxnn.solve(X, y, pats, activation="relu", lam=0.1, solver="clarabel", program=prog)
    assert via_solve.status == "optimal"
    assert via_solve.objective_value == pytest.approx(fresh.objective_value, rel=1e-7)


def test_direct_cvxpy_solve_does_not_leak_settings_into_program_solve():
    """The docs invite solving ``program.problem`` directly; Clarabel updates the cached
    solver's settings in place, so a direct solve with max_iter=3 or loose tolerances once
    stayed in force in the next ``program.solve()`` (status "optimal" 2 % off). cvxnn's own
    solver is parked outside CVXPY's cache, and a same-options re-solve still reuses it."""
    import warnings

    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 3))
    y = X @ rng.standard_normal(3)
    pats = cvxnn.sample_patterns(X, 15, seed=0, bias=True)
    fresh = cvxnn.build_program(X, y, activation="relu", lam=0.1, patterns=pats).solve()
    for direct in ({"max_iter": 3}, {"tol_gap_abs": 0.1, "tol_gap_rel": 0.1, "tol_feas": 0.1}):
        prog = cvxnn.build_program(X, y, activation="relu", lam=0.1, patterns=pats)
        prog.solve()
        own = prog.problem._cvxnn_own_solver[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog.problem.solve(solver="CLARABEL", **direct)
        assert prog.problem._solver_cache.get("CLARABEL") is not own  # the user's own solver
        again = prog.solve()
        assert again.status == "optimal" and again.iterations == fresh.iterations
        assert again.objective_value == pytest.approx(fresh.objective_value, rel=1e-8)
        assert prog.problem._cvxnn_own_solver[1] is own  # reused: same options as before
    # and cvxnn's settings do not leak into a later direct solve either
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog.solve(max_iter=2)
    prog.problem.solve(solver="CLARABEL")
    assert prog.problem.status == "optimal"


def test_cvxpy_iteration_limit_is_max_iterations_and_max_iter_is_checked():
    """SCS calls a run stopped by its iteration limit "inaccurate"; cvxnn says max_iterations.
    max_iter is validated once for every adapter (CVXPY solvers took 0 and truncated 2.5)."""
    import warnings

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = X @ rng.standard_normal(3)
    pats = cvxnn.sample_patterns(X, 8, seed=0, bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = cvxnn.solve(X, y, pats, activation="relu", lam=0.5, solver="scs", max_iter=2)
    assert sol.status == "max_iterations" and sol.iterations == 2
    for solver in ("clarabel", "scs", "auto"):
        for bad in (0, -1, 2.5, True):
            with pytest.raises(InvalidParameterError, match="max_iter"):
                cvxnn.solve(X, y, pats, activation="relu", lam=0.5, solver=solver, max_iter=bad)


def test_verbose_is_checked_and_the_relu_working_set_logs_its_rounds(caplog):
    """verbose="no" was truthy; the default C-ReLU solver (the working set) logged nothing at
    INFO, so verbose=True printed nothing for it."""
    import logging

    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    y = X @ rng.standard_normal(4)
    pats = cvxnn.sample_patterns(X, 10, seed=0, bias=True)
    for solver in ("auto", "clarabel"):
        with pytest.raises(InvalidParameterError, match="verbose"):
            cvxnn.solve(X, y, pats, activation="relu", lam=0.05, solver=solver, verbose="no")
    with caplog.at_level(logging.INFO, logger="cvxnn"):
        sol = cvxnn.solve(X, y, pats, activation="relu", lam=0.05, solver="working_set")
    assert sol.status == "optimal"
    assert any("working set round" in r.getMessage() for r in caplog.records)
