"""CVXPY builders: structure, DPP re-solves, solver agreement, losses, forms and statuses."""

import warnings

import cvxpy as cp
import numpy as np
import pytest

import cvxnn
from cvxnn import build_program, sample_patterns
from cvxnn.errors import (
    InaccurateSolutionWarning,
    InfeasibleError,
    InvalidParameterError,
    LabelError,
    NonFiniteError,
    PatternMismatchError,
    ShapeError,
    SolverError,
)
from cvxnn.losses import SquaredLoss


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((25, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0) - 0.5 * np.maximum(X @ rng.standard_normal(3), 0)
    pats = sample_patterns(X, 12, seed=1, bias=True)
    return X, y, pats


def test_program_structure(data):
    X, y, pats = data
    prog = build_program(X, y, activation="relu", lam=0.1, patterns=pats)
    assert isinstance(prog.problem, cp.Problem)
    assert prog.V.shape == prog.W.shape == (4, pats.n_patterns)
    assert set(prog.variables) == {"V", "W"}
    assert isinstance(prog.lam, cp.Parameter) and prog.lam.is_nonneg() and prog.lam.value == 0.1
    assert len(prog.cone_constraints) == 2  # one vectorised constraint per sign
    assert len(prog.problem.variables()) == 2
    assert prog.problem.is_dpp()
    g = build_program(X, y, activation="gated_relu", lam=0.1, patterns=pats)
    assert set(g.variables) == {"U"} and g.cone_constraints == []
    with pytest.raises(AttributeError):
        g.V  # noqa: B018


def test_solution_matches_problem_value(data):
    X, y, pats = data
    sol = build_program(X, y, activation="relu", lam=0.1, patterns=pats).solve()
    assert sol.status == "optimal" and sol.converged
    assert sol.objective(X, y, 0.1) == pytest.approx(sol.objective_value, rel=1e-8)
    assert sol.max_violation < 1e-9
    rho_v, rho_w = sol.cone_duals
    assert sol.multipliers.shape == (X.shape[0], 2 * pats.n_patterns)
    assert rho_v.shape == (X.shape[0], pats.n_patterns) and np.all(rho_v >= -1e-8)


def test_changing_lam_reuses_compiled_problem(data):
    X, y, pats = data
    prog = build_program(X, y, activation="relu", lam=0.1, patterns=pats)
    first = prog.solve()
    cache = prog.problem._cache.param_prog
    assert cache is not None
    second = prog.solve(lam=0.5)
    assert prog.problem._cache.param_prog is cache  # DPP: no recompilation
    assert second.lam == 0.5 and second.objective_value != first.objective_value
    fresh = build_program(X, y, activation="relu", lam=0.5, patterns=pats).solve()
    assert second.objective_value == pytest.approx(fresh.objective_value, rel=1e-7)


def test_compile_ahead_is_reused_by_solve_and_backends_agree(data):
    X, y, pats = data
    prog = build_program(X, y, activation="relu", lam=0.1, patterns=pats)
    assert prog.problem._cache.param_prog is None
    seconds = prog.compile()
    cache = prog.problem._cache.param_prog
    assert cache is not None and seconds > 0
    sol = prog.solve(lam=0.2)
    assert prog.problem._cache.param_prog is cache  # solve() did not compile again
    # the default SciPy backend and CVXPY's C++ backend compile the same problem data
    data_scipy = build_program(X, y, lam=0.2, patterns=pats).problem.get_problem_data(
        cp.CLARABEL, canon_backend="SCIPY")[0]
    data_cpp = build_program(X, y, lam=0.2, patterns=pats).problem.get_problem_data(
        cp.CLARABEL, canon_backend="CPP")[0]
    assert abs(data_scipy["A"] - data_cpp["A"]).max() < 1e-12
    other = build_program(X, y, lam=0.2, patterns=pats)
    other.compile(canon_backend="cpp")
    assert other.solve().objective_value == pytest.approx(sol.objective_value, rel=1e-9)
    with pytest.raises(InvalidParameterError):
        prog.compile(canon_backend="NUMBA")
    with pytest.raises(InvalidParameterError):
        prog.compile(solver="NOT_A_SOLVER")


def test_gated_lower_bounds_relu_and_solvers_agree(data):
    X, y, pats = data
    lam = 0.05
    vals = {}
    for act in ("relu", "gated_relu"):
        prog = build_program(X, y, activation=act, lam=lam, patterns=pats)
        clar = prog.solve("CLARABEL").objective_value
        scs = prog.solve("SCS").objective_value
        assert scs == pytest.approx(clar, rel=1e-5)
        vals[act] = clar
    assert vals["gated_relu"] <= vals["relu"] * (1 + 1e-8)


@pytest.mark.parametrize("loss", ["squared", "logistic", "hinge", "huber", "absolute"])
def test_every_loss_solves_and_objective_is_consistent(data, loss):
    X, y, pats = data
    target = np.sign(y - np.median(y)) + (y == np.median(y)) if loss in ("logistic", "hinge") else y
    prog = build_program(X, target, activation="relu", loss=loss, lam=0.1, patterns=pats)
    sol = prog.solve()
    assert sol.converged
    assert sol.objective(X, target, 0.1, loss) == pytest.approx(sol.objective_value, rel=1e-6, abs=1e-8)
    net = sol.to_network()
    assert net.objective(X, target, 0.1, loss) == pytest.approx(sol.objective_value, rel=1e-6, abs=1e-8)


def test_mean_reduction_is_a_rescaling(data):
    X, y, pats = data
    n = X.shape[0]
    summed = build_program(X, y, lam=0.2, patterns=pats).solve()
    mean = build_program(X, y, loss=SquaredLoss(reduction="mean"), lam=0.2 / n, patterns=pats).solve()
    assert mean.objective_value * n == pytest.approx(summed.objective_value, rel=1e-6)


def test_min_norm_interpolation_and_max_margin():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, 3))
    y = rng.standard_normal(8)
    pats = sample_patterns(X, 40, seed=0, bias=True)
    sol = build_program(X, y, patterns=pats, form="min_norm").solve()
    assert sol.lam is None and sol.converged
    np.testing.assert_allclose(sol.train_predict(X), y, atol=1e-7)
    np.testing.assert_allclose(sol.to_network().predict(X), y, atol=1e-7)
    labels = np.where(rng.standard_normal(8) > 0, 1.0, -1.0)
    labels[:2] = [1, -1]
    mm = build_program(X, labels, patterns=pats, form="max_margin").solve()
    assert np.all(labels * mm.to_network().predict(X) >= 1 - 1e-7)
    with pytest.raises(InvalidParameterError):
        build_program(X, y, patterns=pats, form="min_norm").solve(lam=1.0)


def test_infeasible_interpolation_is_an_error():
    X = np.array([[1.0], [2.0], [3.0]])
    y = np.array([1.0, -5.0, 2.0])  # no single-pattern network through the origin interpolates this
    pats = sample_patterns(X, 5, seed=0)
    with pytest.raises(InfeasibleError) as info:
        build_program(X, y, patterns=pats, form="min_norm").solve()
    assert info.value.status == "infeasible"


def test_inaccurate_status_is_visible(data):
    X, y, pats = data
    prog = build_program(X, y, activation="relu", lam=0.1, patterns=pats)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sol = prog.solve("SCS", max_iters=3, eps_abs=1e-12, eps_rel=1e-12)
    assert sol.status in ("optimal_inaccurate", "max_iterations")
    assert not sol.converged
    assert any(issubclass(w.category, InaccurateSolutionWarning) for w in rec)


def test_bad_inputs(data):
    X, y, pats = data
    with pytest.raises(InvalidParameterError, match="solver"):
        build_program(X, y, patterns=pats).solve("NOT_A_SOLVER")
    with pytest.raises(InvalidParameterError):
        build_program(X, y, patterns=pats, lam=-1.0)
    with pytest.raises(NonFiniteError):
        build_program(X, y, patterns=pats, lam=float("nan"))
    with pytest.raises(ShapeError):
        build_program(X, y[:-1], patterns=pats)
    with pytest.raises(NonFiniteError):
        build_program(np.where(X > 1, np.nan, X), y, patterns=pats)
    with pytest.raises(PatternMismatchError):
        build_program(X[:-1], y[:-1], patterns=pats)
    with pytest.raises(LabelError):
        build_program(X, y, loss="logistic", patterns=pats)
    with pytest.raises(InvalidParameterError):
        build_program(X, y, activation="tanh", patterns=pats)
    with pytest.raises(InvalidParameterError):
        build_program(X, y, loss="nope", patterns=pats)
    with pytest.raises(InvalidParameterError):
        build_program(X, y, patterns=pats, form="lasso")


def test_inputs_are_not_modified(data):
    X, y, pats = data
    X0, y0 = X.copy(), y.copy()
    build_program(X, y, patterns=pats).solve()
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_default_patterns_are_sampled():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 2))
    prog = build_program(X, rng.standard_normal(10), n_gates=7, seed=0, bias=True)
    assert prog.patterns.bias and prog.patterns.n_patterns <= 7


# ----------------------------------------------------------------------------- Clarabel, exp cones
def _small_classification(kind: str):
    """Small standardized subsamples of scikit-learn's breast cancer (logistic, +-1 labels) and
    iris (cross-entropy, one-hot) data, with their patterns."""
    datasets = pytest.importorskip("sklearn.datasets")
    if kind == "logistic":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        idx = np.random.default_rng(7).choice(len(X), 80, replace=False)
        Xs, T, seed = X[idx][:, :8], np.where(y[idx] == 1, 1.0, -1.0), 7
    else:
        X, y = datasets.load_iris(return_X_y=True)
        idx = np.random.default_rng(3).choice(len(X), 60, replace=False)
        Xs, T, seed = X[idx], np.eye(3)[y[idx]], 3
    Xs = (Xs - Xs.mean(axis=0)) / Xs.std(axis=0)
    return Xs, T, sample_patterns(Xs, 12, seed=seed, bias=True)


@pytest.mark.parametrize("loss", ["logistic", "cross_entropy"])
def test_clarabel_solves_exp_cone_relu_programs(loss):
    """Clarabel solves cvxnn's logistic and cross-entropy C-ReLU programs, certified by cvxnn's
    own float64 duality gap. On the logistic instance Clarabel's default step fraction (0.99) ends
    "almost solved" with the objective wrong in the 5th digit (relative gap 1.4e-4)."""
    from cvxnn.native import duality_gap
    from cvxnn.program import EXP_CONE_CLARABEL_OPTIONS, uses_exponential_cones

    X, T, pats = _small_classification(loss)
    lam = 0.01 * X.shape[0]
    prog = build_program(X, T, activation="relu", loss=loss, lam=lam, patterns=pats)
    assert uses_exponential_cones(prog.problem)
    assert prog.default_solver_options("CLARABEL").items() >= EXP_CONE_CLARABEL_OPTIONS.items()
    sol = prog.solve()
    assert sol.status == "optimal"
    assert sol.max_violation < 1e-8
    cert = duality_gap(X, T, sol, lam, loss, multipliers=sol.multipliers)
    # Clarabel 0.11.1 certifies 2.0e-6 (logistic) and 3.0e-6 (cross-entropy); earlier versions < 2e-6
    assert cert.gap <= 1e-5 * abs(sol.objective_value)
    assert sol.objective(X, T, lam, loss) == pytest.approx(sol.objective_value, rel=1e-7)
    # tighter gap tolerances certify far below that
    tight = prog.solve(tol_gap_rel=1e-10, tol_gap_abs=1e-10)
    assert tight.status == "optimal"
    assert duality_gap(X, T, tight, lam, loss, multipliers=tight.multipliers).gap <= 2e-7 * abs(tight.objective_value)


def test_exp_cone_defaults_only_where_they_apply(data):
    X, y, pats = data
    prog = build_program(X, y, activation="relu", lam=0.1, patterns=pats)
    assert prog.default_solver_options("CLARABEL") == {}
    yl = np.where(y > np.median(y), 1.0, -1.0)
    logit = build_program(X, yl, activation="relu", loss="logistic", lam=0.1, patterns=pats)
    assert logit.default_solver_options("SCS") == {}
    # the caller's own value wins
    sol = logit.solve(max_step_fraction=0.95)
    assert sol.status == "optimal"


def test_failed_solve_advice_works(data, monkeypatch):
    """When a CVXPY solver fails, the message points to something that solves the program."""
    import cvxnn

    X, y, pats = data
    prog = build_program(X, y, activation="relu", lam=0.5, patterns=pats)

    def broken(*args, **kwargs):
        raise cp.error.SolverError("simulated breakdown")

    monkeypatch.setattr(prog.problem, "solve", broken)
    with pytest.raises(SolverError, match="solver='auto'") as info:
        prog.solve()
    assert info.value.status == "numerical_error"
    advised = cvxnn.solve(X, y, pats, activation="relu", lam=0.5, solver="auto")
    assert advised.status == "optimal"


def test_exp_cone_retries_after_a_failure(monkeypatch):
    """A Clarabel failure on an exp-cone program is retried with the next settings; the result
    says which settings were tried, and passing one of them yourself turns the retries off."""
    from cvxnn.program import EXP_CONE_CLARABEL_RETRIES

    X, T, pats = _small_classification("logistic")
    prog = build_program(X, T, activation="relu", loss="logistic", lam=0.01 * X.shape[0], patterns=pats)
    real = prog.problem.solve
    calls = []

    def flaky(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise cp.error.SolverError("simulated InsufficientProgress")
        return real(*args, **kwargs)

    monkeypatch.setattr(prog.problem, "solve", flaky)
    sol = prog.solve()
    assert sol.status == "optimal"
    assert [a["status"] for a in sol.extra["attempts"]] == ["numerical_error", "optimal"]
    assert calls[0]["max_step_fraction"] == 0.9
    assert EXP_CONE_CLARABEL_RETRIES[0].items() <= calls[1].items()
    calls.clear()
    with pytest.raises(SolverError, match="simulated"):
        prog.solve(max_step_fraction=0.9)  # the caller's setting: one attempt only
    assert len(calls) == 1


def test_unused_options_are_still_validated():
    """A misspelt formulation with scalar targets, or a misspelt loss / negative lam with the
    min_norm and max_margin forms (which have neither), raised nothing: now each names itself."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4))
    y = rng.standard_normal(12)
    with pytest.raises(InvalidParameterError, match="formulation must be one of"):
        cvxnn.build_program(X, y, formulation="foo", n_gates=4, seed=0)
    with pytest.raises(InvalidParameterError, match="unknown loss 'foo'"):
        cvxnn.build_program(X, y, form="min_norm", loss="foo", n_gates=4, seed=0)
    with pytest.raises(InvalidParameterError, match="lam must be >= 0"):
        cvxnn.build_program(X, np.sign(y), form="max_margin", lam=-5.0, n_gates=4, seed=0)
    # the valid spellings still build (loss and lam unused by these forms)
    prog = cvxnn.build_program(X, y, form="min_norm", loss="huber", lam=0.0, formulation="one_vs_all",
                               n_gates=4, seed=0)
    assert prog.lam is None and prog.form == "min_norm"


@pytest.mark.parametrize("penalty", ["nuclear", "feature_group_l2"])
def test_weight_penalty_objective_is_the_value_at_the_returned_weights(penalty):
    """A weight penalty's CVXPY form is an epigraph; a loose solve leaves it below the penalty,
    and the scalar program reported that epigraph value ("optimal", below the true optimum).
    objective_value is now loss + lam * program_penalty at the returned weights."""
    from cvxnn.feature_penalties import FeatureGroupL2

    rng = np.random.default_rng(2)
    X = rng.standard_normal((25, 4))
    y = X @ rng.standard_normal(4) + np.maximum(X[:, 0], 0)
    pats = sample_patterns(X, 10, seed=3, bias=True)
    pen = "nuclear" if penalty == "nuclear" else FeatureGroupL2()
    lam = 0.5
    for activation in ("gated_relu", "relu"):
        prog = build_program(X, y, activation=activation, lam=lam, patterns=pats, penalty=pen)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = prog.solve(solver="SCS", eps_abs=1e-2, eps_rel=1e-2)
        at_point = sol.loss.value(sol.train_predict(X), y) + lam * sol.program_penalty
        assert sol.objective_value == pytest.approx(at_point, rel=1e-12)
        tight = build_program(X, y, activation=activation, lam=lam, patterns=pats, penalty=pen).solve()
        if activation == "gated_relu":  # unconstrained: any point's value bounds the optimum above
            assert sol.objective_value >= tight.objective_value * (1 - 1e-7)
