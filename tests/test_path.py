"""lam_max (exact) and warm-started regularisation paths on CVXPY and native backends."""

import cvxpy as cp
import numpy as np
import pytest

import cvxnn.builders
from cvxnn import ConvexModel, build_program, sample_patterns
from cvxnn.errors import InvalidParameterError, PatternMismatchError
from cvxnn.optimality import kkt_report
from cvxnn.path import RegularizationPath, lam_grid, lam_max, regularization_path


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    y = (np.maximum(X @ rng.standard_normal(3), 0) - np.maximum(X @ rng.standard_normal(3), 0)
         + 0.1 * rng.standard_normal(20))
    return X, y, sample_patterns(X, 40, seed=0, bias=True)


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_lam_max_is_exact(data, activation, loss):
    X, y, pats = data
    if loss == "logistic":
        y = np.where(y > np.median(y), 1.0, -1.0)
    lm = lam_max(X, y, pats, activation, loss)
    assert lm > 0
    prog = build_program(X, y, activation=activation, loss=loss, lam=lm, patterns=pats)
    above = prog.solve(lam=lm * 1.01)
    below = prog.solve(lam=lm * 0.95)
    scale = np.abs(below.effective_weights).max()
    assert np.abs(above.effective_weights).max() < 1e-4 * scale
    # at lam_max the zero model satisfies the KKT conditions, just below it does not
    shape = (pats.design_dim, pats.n_patterns)
    zero = (ConvexModel("gated_relu", pats, U=np.zeros(shape)) if activation == "gated_relu"
            else ConvexModel("relu", pats, V=np.zeros(shape), W=np.zeros(shape)))
    assert kkt_report(zero, X, y, lam=lm * (1 + 1e-9), loss=loss).dual_feasibility == 0.0
    assert kkt_report(zero, X, y, lam=lm * 0.999, loss=loss).dual_feasibility > 5e-4


def test_lam_max_relu_below_gated(data):
    X, y, pats = data
    assert lam_max(X, y, pats, "relu") <= lam_max(X, y, pats, "gated_relu") * (1 + 1e-12)


def test_lam_max_vector_gated(data):
    """Vector output: spectral norm of X^T D_i Y, checked against a direct CVXPY solve."""
    X, _, pats = data
    rng = np.random.default_rng(1)
    Y = rng.standard_normal((X.shape[0], 2))
    lm = lam_max(X, Y, pats, "gated_relu")
    Xa, M = pats.design(X), pats.mask.astype(float)
    expected = max(np.linalg.norm(Xa.T @ (M[:, i, None] * Y), 2) for i in range(pats.n_patterns))
    assert lm == pytest.approx(expected, rel=1e-12)
    # zero is optimal just above lam_max (nuclear-norm program written out here)
    Us = [cp.Variable((Xa.shape[1], 2)) for _ in range(pats.n_patterns)]
    fit = sum(cp.multiply(M[:, [i]], Xa @ Us[i]) for i in range(pats.n_patterns))
    lam = cp.Parameter(nonneg=True)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - Y) + lam * sum(cp.normNuc(U) for U in Us)))
    lam.value = 1.01 * lm
    prob.solve(solver="CLARABEL")
    assert max(np.abs(U.value).max() for U in Us) < 1e-5
    lam.value = 0.9 * lm
    prob.solve(solver="CLARABEL")
    assert max(np.abs(U.value).max() for U in Us) > 1e-3


@pytest.mark.parametrize("formulation", ["nuclear", "one_vs_all"])
def test_lam_max_vector_relu_is_exact(data, formulation):
    """Vector C-ReLU: the cone multipliers lower the correlations; zero is optimal just above."""
    from cvxnn.vector import build_vector_program

    X, _, pats = data
    pats = pats.subset(np.arange(12))
    Y = np.random.default_rng(2).standard_normal((X.shape[0], 2))
    lm = lam_max(X, Y, pats, "relu", formulation=formulation)
    assert 0 < lm <= lam_max(X, Y, pats, "gated_relu", formulation=formulation) * (1 + 1e-9)
    prog = build_vector_program(X, Y, activation="relu", lam=lm, patterns=pats, formulation=formulation)
    above = prog.solve(lam=1.02 * lm)
    below = prog.solve(lam=0.9 * lm)
    scale = np.abs(below.effective_weights).max()
    assert scale > 1e-3
    assert np.abs(above.effective_weights).max() < 1e-4 * scale


def test_lam_max_errors(data):
    X, y, pats = data
    with pytest.raises(InvalidParameterError, match="not differentiable at z = 0"):
        lam_max(X, np.where(np.arange(len(y)) < 3, 0.0, y), pats, "relu", "absolute")
    with pytest.raises(InvalidParameterError):
        lam_max(X, y, pats, "tanh")
    with pytest.raises(PatternMismatchError):
        lam_max(X[:-1], y[:-1], pats)


def test_grid():
    g = lam_grid(2.0, 5, 1e-2)
    np.testing.assert_allclose(g, 2.0 * np.logspace(0, -2, 5))
    with pytest.raises(InvalidParameterError):
        lam_grid(1.0, 5, 0.0)
    # float32 inputs give a float64 grid starting exactly at lam_max (a float32 ratio made the
    # grid float32, its first point 3e-6 below lam_max: solved instead of the exact zero)
    lmax = 8.692348811234
    g32 = lam_grid(np.float32(lmax), 4, np.float32(0.01))
    assert g32.dtype == np.float64 and g32[0] == float(np.float32(lmax))
    g = lam_grid(lmax, 4, np.float32(0.01))
    assert g.dtype == np.float64 and g[0] == lmax


def test_cvxpy_path_compiles_once_and_matches_cold_solves(data, monkeypatch):
    X, y, pats = data
    calls = []
    real = cvxnn.builders.build_program

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cvxnn.builders, "build_program", counting)
    seen = []
    path = regularization_path(X, y, pats, activation="relu", n_lams=6, lam_min_ratio=1e-2,
                               callback=lambda i, lam, sol: seen.append((i, lam)))
    assert isinstance(path, RegularizationPath) and len(path) == 6
    assert len(calls) == 1
    assert [i for i, _ in seen] == list(range(6))
    assert np.all(np.diff(path.lams) < 0)
    assert path.lams[0] == pytest.approx(path.lam_max)
    assert path.backend == "cvxpy" and path.solver == "CLARABEL"
    assert all(s == "optimal" for s in path.statuses)
    n_act = path.n_active()
    assert n_act[0] == 0 and n_act[-1] > 0
    assert path.solutions[0].solver == "lam_max" and path.solutions[0].penalty() == 0
    for k in (1, 4):
        cold = real(X, y, activation="relu", lam=path.lams[k], patterns=pats).solve()
        assert path.objectives[k] == pytest.approx(cold.objective_value, rel=1e-6)
    assert path.coefficients().shape == (6, pats.design_dim, pats.n_patterns)
    assert path.block_norms().shape == (6, 2 * pats.n_patterns)
    assert np.all(np.diff(path.penalties) >= -1e-6)  # the penalty grows as lam decreases


def test_path_user_grid_callback_stop_and_scs(data):
    X, y, pats = data
    path = regularization_path(X, y, pats, activation="gated_relu", lams=[0.1, 1.0, 0.5],
                               backend="scs", callback=lambda i, lam, sol: i == 1)
    assert len(path) == 2
    np.testing.assert_allclose(path.lams, [1.0, 0.5])
    assert path.solver == "SCS"
    with pytest.raises(InvalidParameterError):
        regularization_path(X, y, pats, lams=[])
    with pytest.raises(InvalidParameterError):
        regularization_path(X, y, pats, backend="no_such_solver", n_lams=2)
    with pytest.raises(InvalidParameterError):
        regularization_path(X, y, pats, lams=[-1.0])


@pytest.mark.parametrize("activation,fracs", [("gated_relu", [1.5, 0.5, 0.2, 0.1]), ("relu", [1.0, 0.5])])
def test_native_path_matches_clarabel(data, activation, fracs):
    import cvxnn.native  # noqa: F401 (imported normally: an import error must fail, not skip)
    X, y, pats = data
    lams = lam_max(X, y, pats, activation) * np.array(fracs)
    nat = regularization_path(X, y, pats, activation=activation, lams=lams, backend="native", tol=1e-8)
    ref = regularization_path(X, y, pats, activation=activation, lams=lams)
    assert nat.backend == "native" and nat.solver != "lam_max"
    assert nat.solutions[0].solver == "lam_max"  # lam >= lam_max: exact zero, no solve
    assert all(s.status == "optimal" for s in nat.solutions)
    np.testing.assert_allclose(nat.objectives, ref.objectives, rtol=1e-6)


def test_vector_output_paths(data):
    X, _, pats = data
    Y = np.random.default_rng(4).standard_normal((X.shape[0], 2))
    path = regularization_path(X, Y, pats, activation="gated_relu", n_lams=3, lam_min_ratio=0.1)
    assert path.lam_max == pytest.approx(lam_max(X, Y, pats, "gated_relu"))
    assert path.coefficients().shape == (3, pats.design_dim, pats.n_patterns, 2)
    assert path.n_active()[0] == 0 and path.n_active()[-1] > 0
    # vector-output C-ReLU (nuclear): lam_max from the spectral-norm programs, zero above it
    sub = pats.subset(np.arange(10))
    rp = regularization_path(X, Y, sub, activation="relu", n_lams=2, lam_min_ratio=0.5)
    assert rp.lam_max == pytest.approx(lam_max(X, Y, sub, "relu"))
    assert rp.solutions[0].solver == "lam_max" and rp.solutions[1].solver == "CLARABEL"


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_lam_max_mean_reduction_scales_by_n(data, activation):
    """reduction='mean' divides the loss by n, hence r0 and lam_max by n (a documented option)."""
    from cvxnn.losses import SquaredLoss

    X, y, pats = data
    lm_sum = lam_max(X, y, pats, activation)
    lm_mean = lam_max(X, y, pats, activation, SquaredLoss(reduction="mean"))
    assert lm_mean == pytest.approx(lm_sum / X.shape[0], rel=1e-10)


def test_vector_relu_path_solves_the_same_one_vs_all_program_on_every_backend():
    """The path engine's default vector-output ReLU program is one-vs-all on CVXPY and native."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    labels = np.argmax(X @ rng.standard_normal((2, 3)), axis=1)
    Y = np.eye(3)[labels]
    pats = sample_patterns(X, 6, seed=0, bias=True)
    lams = [2.0, 0.5]
    nat = regularization_path(X, Y, pats, activation="relu", loss="cross_entropy", lams=lams, backend="native",
                              tol=1e-8)
    cvx = regularization_path(X, Y, pats, activation="relu", loss="cross_entropy", lams=lams, backend="clarabel")
    for a, b in zip(nat.solutions, cvx.solutions, strict=True):
        if a.solver == "lam_max":
            continue
        assert a.formulation == "one_vs_all"
        assert abs(a.objective_value - b.objective_value) <= 1e-5 * abs(b.objective_value)


def test_lam_max_defaults_to_the_program_that_solve_defaults_to():
    """lam_max defaulted to the nuclear program for every activation, while cvxnn.solve and the
    paths default to one-vs-all for C-ReLU (iris: 43.3 against 40.4; the default solve was zero
    already at 0.99 x lam_max); a path given formulation in solver_opts computed its lam_max and
    zero shortcut for the other program and returned zero as "optimal"."""
    import cvxnn

    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 3))
    Y = np.eye(3)[np.argmax(X @ rng.standard_normal((3, 3)) + 0.3 * rng.standard_normal((40, 3)), axis=1)]
    pats = cvxnn.sample_patterns(X, 8, seed=0, bias=True)
    lm = lam_max(X, Y, pats, "relu")
    assert lm == pytest.approx(lam_max(X, Y, pats, "relu", formulation="one_vs_all"), rel=1e-12)
    assert lam_max(X, Y, pats, "gated_relu") == pytest.approx(
        lam_max(X, Y, pats, "gated_relu", formulation="nuclear"), rel=1e-12)
    below = cvxnn.solve(X, Y, pats, activation="relu", lam=0.99 * lm, tol=1e-10)
    above = cvxnn.solve(X, Y, pats, activation="relu", lam=1.01 * lm, tol=1e-10)
    assert np.abs(below.V).max() + np.abs(below.W).max() > 0
    assert np.abs(above.V).max() + np.abs(above.W).max() == 0
    with pytest.raises(InvalidParameterError, match="formulation='nuclear' as the path's own argument"):
        regularization_path(X, Y, pats, activation="relu", n_lams=3, solver_opts={"formulation": "nuclear"})


def test_zero_solutions_of_a_vector_path_carry_its_formulation():
    """The zero solutions of a one-vs-all path had formulation None, so duality_gap certified
    them for the nuclear program (7e-3) while every other solution said one_vs_all."""
    import cvxnn
    from cvxnn.native import duality_gap

    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 3))
    Y = np.eye(3)[rng.integers(0, 3, 30)]
    pats = cvxnn.sample_patterns(X, 6, seed=0, bias=True)
    lm = lam_max(X, Y, pats, "gated_relu", "cross_entropy", formulation="one_vs_all")
    path = regularization_path(X, Y, pats, activation="gated_relu", loss="cross_entropy",
                               formulation="one_vs_all", lams=[2 * lm, 0.5 * lm])
    zero = path.solutions[0]
    assert zero.extra["certified_by"] == "lam_max" and zero.formulation == "one_vs_all"
    assert duality_gap(X, Y, zero, 2 * lm, "cross_entropy").rel_gap <= 1e-12


def test_lam_max_is_zero_separates_rounding_from_small_thresholds():
    from cvxnn.losses import get_loss
    from cvxnn.path import lam_max_is_zero

    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 3))
    y = rng.standard_normal(30)
    pats = sample_patterns(X, 6, seed=0, bias=True)
    Xa, loss = pats.design(X), get_loss("squared")
    lm = lam_max(X, y, pats, "relu")
    assert not lam_max_is_zero(lm, Xa, y, loss)
    assert not lam_max_is_zero(lam_max(X * 1e-8, y, _patterns_on(pats, X * 1e-8), "relu"), Xa * 1e-8, y, loss)
    assert lam_max_is_zero(1e-15, Xa, y, loss) and lam_max_is_zero(0.0, Xa, y, loss)
    assert lam_max_is_zero(0.0, Xa, np.zeros(30), loss)


def _patterns_on(pats, X):
    from cvxnn.patterns import Patterns

    return Patterns.from_gates(X, pats.gates, bias=pats.bias)


def test_native_relu_path_to_a_tiny_lam_keeps_its_points_with_an_honest_status():
    """lam_min_ratio=1e-12: the augmented Lagrangian's inner line search found no step and the
    whole path raised a SolverError about R-FISTA and float32 (the data were float64), losing
    the points already solved. The stalled point is now "numerical_error"."""
    import warnings

    import cvxnn
    from cvxnn.path import regularization_path

    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 3))
    y = rng.standard_normal(12)
    pats = cvxnn.sample_patterns(X, 60, seed=0, bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = regularization_path(X, y, pats, n_lams=3, lam_min_ratio=1e-12, backend="native")
    assert path.statuses[:2] == ["optimal", "optimal"]
    last = path.solutions[2]
    assert last.status in ("numerical_error", "max_iterations") and not last.converged
    assert last.extra["stalled"] == (last.status == "numerical_error")
    assert np.all(np.isfinite(last.V)) and np.all(np.isfinite(last.W))
