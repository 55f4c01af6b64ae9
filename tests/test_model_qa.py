"""QA of the modelling layer on real data (builders, cvxnn.solve, decompositions, maps).

Small standardized subsamples of scikit-learn's diabetes, breast cancer and wine data keep every
CVXPY compile well under a second.
"""

import warnings

import cvxpy as cp
import numpy as np
import pytest

import cvxnn
from cvxnn.backends import cvxpy_adapter
from cvxnn.decomposition import decomposable_blocks, decompose
from cvxnn.errors import InaccurateSolutionWarning, InvalidParameterError, NonFiniteError
from cvxnn.vector import build_vector_program

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def _standardize(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


def _subsample(loader, n, d, seed=0):
    X, y = loader(return_X_y=True)
    idx = np.random.default_rng(seed).choice(len(y), n, replace=False)
    return _standardize(X[idx])[:, :d], y[idx]


@pytest.fixture(scope="module")
def diabetes():
    X, y = _subsample(sklearn_datasets.load_diabetes, 80, 6)
    y = (y - y.mean()) / y.std()
    return X, y, cvxnn.sample_patterns(X, 12, seed=0, bias=True)


@pytest.fixture(scope="module")
def wine():
    X, labels = _subsample(sklearn_datasets.load_wine, 60, 6)
    return X, np.eye(3)[labels.astype(int)], cvxnn.sample_patterns(X, 8, seed=0, bias=True)


# ----------------------------------------------------------------------------- what holds already
@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_dpp_resolve_matches_fresh_build_and_hand_written_program(diabetes, activation):
    """Changing lam re-solves the compiled problem to the value of a fresh build at that lam, and
    both equal a hand-written CVXPY program in the MATH.md scaling (1/2 sum of squares, lam sum ||.||)."""
    X, y, pats = diabetes
    program = cvxnn.build_program(X, y, activation=activation, lam=0.5, patterns=pats)
    assert program.problem.is_dcp() and program.problem.is_dpp()
    assert program.lam.name() == "lam" and program.lam.is_nonneg()
    program.solve()
    resolved = program.solve(lam=0.05)
    fresh = cvxnn.build_program(X, y, activation=activation, lam=0.05, patterns=pats).solve()
    assert resolved.objective_value == pytest.approx(fresh.objective_value, rel=1e-7)

    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    M = pats.mask.astype(float)
    d_a, p = Xa.shape[1], pats.n_patterns
    if activation == "relu":
        V, W = cp.Variable((d_a, p)), cp.Variable((d_a, p))
        fit = cp.sum(cp.multiply(M, Xa @ (V - W)), axis=1)
        pen = cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0))
        cons = [cp.multiply(2 * M - 1, Xa @ V) >= 0, cp.multiply(2 * M - 1, Xa @ W) >= 0]
    else:
        U = cp.Variable((d_a, p))
        fit = cp.sum(cp.multiply(M, Xa @ U), axis=1)
        pen, cons = cp.sum(cp.norm(U, 2, axis=0)), []
    hand = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - y) + 0.05 * pen), cons)
    hand.solve(solver="CLARABEL")
    assert fresh.objective_value == pytest.approx(hand.value, rel=1e-7)
    net = fresh.to_network()
    assert net.objective(X, y, 0.05) == pytest.approx(fresh.objective_value, rel=1e-7)


# ----------------------------------------------------------------------------- defects fixed here
@pytest.mark.parametrize("name", ["osqp", "scipy", "highs"])
def test_solver_without_cones_is_a_typed_parameter_error(diabetes, name):
    """An installed LP/QP solver on a program with norms: InvalidParameterError naming Clarabel
    (it was SolverError "OSQP failed on ... The native solvers take this program")."""
    if name.upper() not in cp.installed_solvers():
        pytest.skip(f"{name} not installed")
    X, y, pats = diabetes
    with pytest.raises(InvalidParameterError, match="cannot solve the regularized relu program.*clarabel"):
        cvxnn.solve(X, y, pats, lam=0.1, solver=name)
    program = cvxnn.build_program(X, y, activation="gated_relu", lam=0.1, patterns=pats)
    with pytest.raises(InvalidParameterError, match="cannot solve"):
        program.compile(name)
    with pytest.raises(InvalidParameterError, match="cannot solve"):
        program.solve(name)


def test_solve_refuses_a_program_that_is_not_a_convex_program(diabetes):
    X, y, pats = diabetes
    program = cvxnn.build_program(X, y, lam=0.1, patterns=pats)
    for bad in (3, program.problem):  # AttributeError: 'int' object has no attribute 'form'
        with pytest.raises(InvalidParameterError, match="program must be a cvxnn ConvexProgram"):
            cvxnn.solve(X, y, pats, lam=0.1, solver="clarabel", program=bad)


@pytest.mark.parametrize("solver", ["clarabel", "scs"])
def test_solve_validates_tol_and_callback_on_cvxpy_solvers(diabetes, solver):
    """tol and callback are unused by CVXPY solvers but checked as the native solvers check them
    (tol=-1, tol=nan and callback=3 were accepted silently)."""
    X, y, pats = diabetes
    for tol in (-1.0, float("nan"), 0.0, 1.5, "1e-6"):
        with pytest.raises(InvalidParameterError, match="tol"):
            cvxnn.solve(X, y, pats, lam=0.1, solver=solver, tol=tol)
    with pytest.raises(InvalidParameterError, match="callback must be callable"):
        cvxnn.solve(X, y, pats, lam=0.1, solver=solver, callback=3)


def test_vector_constrained_forms_validate_loss_and_lam(wine):
    """build_vector_program checks loss and lam of the constrained forms as build_program does."""
    X, Y, pats = wine
    for form in ("min_norm", "max_margin"):
        with pytest.raises(InvalidParameterError, match="unknown loss"):
            build_vector_program(X, Y, form=form, loss="foo", patterns=pats)
        with pytest.raises(InvalidParameterError, match="lam must be >= 0"):
            build_vector_program(X, Y, form=form, lam=-1.0, patterns=pats)
        with pytest.raises(InvalidParameterError, match="unknown loss"):  # the same through build_program
            cvxnn.build_program(X, Y, form=form, loss="foo", patterns=pats)


def test_scs_time_limit_is_max_iterations(diabetes):
    """SCS reports a run stopped by time_limit_secs as 'optimal_inaccurate'; cvxnn says max_iterations."""
    X, y, pats = diabetes
    with pytest.warns(InaccurateSolutionWarning):
        sol = cvxnn.solve(X, y, pats, lam=0.1, solver="scs", time_limit_secs=1e-5, eps_abs=1e-12, eps_rel=1e-12)
    assert sol.status == "max_iterations" and not sol.converged
    assert "time_limit_secs" in cvxpy_adapter.CVXPY_TIME_OPTION["SCS"]


def test_lam_parameter_set_directly_is_checked(diabetes):
    """A value set on program.lam itself: None raised CVXPY's ParameterError, inf reached Clarabel."""
    X, y, pats = diabetes
    program = cvxnn.build_program(X, y, activation="gated_relu", lam=0.1, patterns=pats)
    program.lam.value = None
    with pytest.raises(InvalidParameterError, match="program.lam.value"):
        program.solve()
    program.lam.value = np.inf
    with pytest.raises(NonFiniteError, match="program.lam.value must be finite"):
        program.solve()
    program.lam.value = 0.1
    assert program.solve().status == "optimal"


def test_decomposition_refuses_bool_chunks_and_nan_blocks(diabetes):
    X, y, pats = diabetes
    sol = cvxnn.build_program(X, y, activation="gated_relu", lam=0.2, patterns=pats).solve()
    with pytest.raises(InvalidParameterError, match="chunk_size"):
        decompose(sol, X, y, chunk_size=True)
    U = sol.U.copy()
    U[0, 0] = np.nan  # every span test passed (NaN > limit is False): a NaN block "decomposed"
    with pytest.raises(NonFiniteError, match="U contains NaN"):
        decomposable_blocks(X, pats, U)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = decompose(sol, X, y, method="gate")
    assert not result.approximate
    assert np.abs(result.network.predict(X) - sol.train_predict(X)).max() <= 1e-9
    assert result.relu_objective >= result.d_star - 1e-9
