"""QA round on the specialised models: convolutional, polynomial-activation and feature-sparse
networks, on scikit-learn's real data sets (small subsets, standardized)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_wine

import cvxnn
from cvxnn.conv import build_conv_program, conv_certificate
from cvxnn.errors import InaccurateSolutionWarning, InvalidParameterError, NonFiniteError
from cvxnn.feature_penalties import FeatureGroupL2, SparseGroupL2
from cvxnn.feature_sparsity import feature_support, solve_feature_sparse, weight_matrix
from cvxnn.native.polynomial import polynomial_duality_gap
from cvxnn.polynomial import build_polynomial_program


def _wine(n=100):
    X, y = load_wine(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))[:n]
    X, y = X[idx], y[idx].astype(float)
    return (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()


def _digits(n=30):
    X, labels = load_digits(return_X_y=True)
    X, labels = X[:n], labels[:n]
    return (X - X.mean(0)) / np.maximum(X.std(0), 1e-12), labels


# ----------------------------------------------------------------------------- polynomial
@pytest.mark.parametrize("coef, iters", [((0.3, 1.0, 0.5), 1), ((1.0, 0.0, 0.0), 2)])
def test_unconverged_lift_reports_an_attainable_objective(coef, iters):
    # Clarabel stopped after 1-2 iterations returns M+, M- that are not PSD with tr(M_11) = M_22;
    # their program value was below p* (2.393 against 3.700) and the certificate's gap negative
    X, y = _wine()
    a, b, c = coef
    prog = build_polynomial_program(X, y, a=a, b=b, c=c, lam=2.0)
    p_star = prog.solve().objective
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InaccurateSolutionWarning)
        sol = prog.solve(max_iter=iters)
    assert sol.status == "max_iterations"
    assert sol.objective >= p_star * (1 - 1e-9)
    net = sol.to_network(rank_tol=0)
    assert net.objective(X, y, lam=2.0) == pytest.approx(sol.objective, rel=1e-9)
    cert = polynomial_duality_gap(sol, X, y, lam=2.0)
    assert cert.gap >= 0.0 and cert.dual <= p_star * (1 + 1e-9)
    for M in (sol.M_plus, sol.M_minus):  # the returned point lies in the lift's set
        assert np.linalg.eigvalsh(M)[0] >= -1e-12 * np.abs(M).max()
        assert np.trace(M[:-1, :-1]) == pytest.approx(M[-1, -1], rel=1e-12, abs=1e-15)


def test_converged_lift_is_unchanged_by_the_repair():
    X, y = _wine(60)
    prog = build_polynomial_program(X[:, :5], y, a=1.0, b=0.5, c=-0.2, lam=1.0)
    sol = prog.solve()
    assert sol.status == "optimal"
    assert sol.objective == pytest.approx(prog.problem.value, rel=1e-7)


# ----------------------------------------------------------------------------- conv
@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
@pytest.mark.parametrize("penalty", [FeatureGroupL2(), SparseGroupL2(0.5)])
def test_conv_certificate_of_a_feature_penalty_program(activation, penalty):
    # the block-norm certificate of a FeatureGroupL2 conv program called Clarabel's optimum 28%
    # suboptimal (and conv_report printed L + lam * block norms as the "convex objective")
    X, labels = _digits()
    y = np.where(labels < 5, 1.0, -1.0)
    sol = build_conv_program(X, y, image_shape=(8, 8), patch_size=3, n_gates=3, seed=0, lam=2.0,
                             activation=activation, penalty=penalty).solve()
    assert sol.status == "optimal"
    with pytest.raises(InvalidParameterError, match="feature-sparse penalty"):
        conv_certificate(sol, X, y, 2.0)
    assert sol.model.extra["penalty"] == repr(penalty)  # duality_gap on the inner model refuses it too
    cert = conv_certificate(sol, X, y, 2.0, penalty=penalty)
    assert cert.primal == pytest.approx(sol.objective_value, rel=1e-9)
    assert cert.rel_gap <= 1e-6


def test_conv_certificate_feature_penalty_vector_output():
    X, labels = _digits()
    Y = np.eye(3)[labels % 3]
    pen = FeatureGroupL2()
    sol = build_conv_program(X, Y, image_shape=(8, 8), patch_size=3, n_gates=3, seed=0, lam=2.0,
                             activation="relu", penalty=pen).solve()
    cert = conv_certificate(sol, X, Y, 2.0, penalty=pen)
    assert cert.primal == pytest.approx(sol.objective_value, rel=1e-9)
    assert cert.rel_gap <= 1e-6
    with pytest.raises(InvalidParameterError):
        conv_certificate(sol, X, Y, 2.0, penalty="feature_group_l2")


def test_conv_certificate_block_program_unchanged():
    X, labels = _digits()
    y = np.where(labels < 5, 1.0, -1.0)
    sol = build_conv_program(X, y, image_shape=(8, 8), patch_size=3, n_gates=3, seed=0, lam=2.0).solve()
    assert "penalty" not in sol.extra
    assert conv_certificate(sol, X, y, 2.0).rel_gap == pytest.approx(sol.rel_gap)


# ----------------------------------------------------------------------------- feature sparsity
def test_feature_support_validates_scale_and_model():
    X, y = _wine(60)
    pats = cvxnn.sample_patterns(X, 5, seed=0, bias=True)
    sol = solve_feature_sparse(X, y, penalty=FeatureGroupL2(), lam=5.0, patterns=pats)
    rows = np.linalg.norm(weight_matrix(sol), axis=1)[:13]
    assert np.array_equal(feature_support(sol, 1e-6, scale=rows.max()), feature_support(sol, 1e-6))
    with pytest.raises(NonFiniteError):  # NaN returned no feature
        feature_support(sol, scale=np.nan)
    for bad in (-1.0, 0.0, "a"):
        with pytest.raises(InvalidParameterError):
            feature_support(sol, scale=bad)
    for fn in (weight_matrix, feature_support):
        with pytest.raises(InvalidParameterError):
            fn("not a model")


def test_conv_formulation_name_checked_with_a_penalty():
    X, labels = _digits(10)
    with pytest.raises(InvalidParameterError, match="formulation"):
        build_conv_program(X, np.eye(2)[labels % 2], image_shape=(8, 8), patch_size=3, n_gates=2, seed=0,
                           activation="gated_relu", penalty=FeatureGroupL2(), formulation="one_vs_al")


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_conv_report_of_a_feature_penalty_program(activation):
    # conv_report had no penalty=: it refused such a point (after conv_certificate learned to), and
    # its convex objective was L + lam * block norms, not the objective of the program solved
    from cvxnn.native.conv import conv_report

    X, labels = _digits()
    y = np.where(labels < 5, 1.0, -1.0)
    pen = FeatureGroupL2()
    sol = build_conv_program(X, y, image_shape=(8, 8), patch_size=3, n_gates=3, seed=0, lam=2.0,
                             activation=activation, penalty=pen).solve()
    with pytest.raises(InvalidParameterError, match="feature-sparse penalty"):
        conv_report(sol, X, y)
    rep = conv_report(sol, X, y, penalty=pen)
    assert rep.convex_objective == pytest.approx(sol.objective_value, rel=1e-9)
    assert rep.rel_gap <= 1e-6


def test_solve_feature_sparse_program_argument():
    # the native route ignored program= silently, and the CVXPY route without patterns= sampled
    # new patterns and refused the program it was handed although it was built right
    from sklearn.datasets import load_diabetes

    from cvxnn.builders import build_program
    from cvxnn.patterns import sample_patterns

    X, y = load_diabetes(return_X_y=True)
    X, y = X[:80], y[:80]
    X, y = (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()
    pats = sample_patterns(X, 8, seed=0)
    pen = FeatureGroupL2()
    prog = build_program(X, y, activation="gated_relu", loss="squared", lam=5.0, patterns=pats, penalty=pen)
    ref = solve_feature_sparse(X, y, penalty=pen, lam=5.0, patterns=pats, solver="native", tol=1e-8)
    sol = solve_feature_sparse(X, y, penalty=pen, lam=5.0, program=prog, solver="clarabel")  # no patterns=
    assert sol.patterns is pats
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    auto = solve_feature_sparse(X, y, penalty=pen, lam=5.0, program=prog)  # "auto" solves the given program
    assert auto.solver == "CLARABEL"
    with pytest.raises(InvalidParameterError, match="native solver does not use"):
        solve_feature_sparse(X, y, penalty=pen, lam=5.0, program=prog, solver="native")
    for bad in (3, "program", prog.problem):  # a bare AttributeError before
        with pytest.raises(InvalidParameterError, match="ConvexProgram"):
            solve_feature_sparse(X, y, penalty=pen, lam=5.0, program=bad, solver="clarabel")


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
@pytest.mark.parametrize("vector", [False, True])
def test_build_program_feature_penalty_is_certified_as_such(activation, vector):
    # build_program(..., penalty=FeatureGroupL2()).solve() recorded no penalty, so duality_gap
    # certified the group lasso of its blocks (a 24% "gap" at Clarabel's optimum on diabetes), and
    # the vector C-ReLU certificate took the column norms (18%)
    from sklearn.datasets import load_diabetes

    from cvxnn.builders import build_program
    from cvxnn.native import duality_gap
    from cvxnn.patterns import sample_patterns

    X, y = load_diabetes(return_X_y=True)
    X = X[:80]
    X = (X - X.mean(0)) / X.std(0)
    y = np.eye(3)[np.arange(80) % 3] if vector else (y[:80] - y[:80].mean()) / y[:80].std()
    loss = "cross_entropy" if vector else "squared"
    pats = sample_patterns(X, 8, seed=0)
    pen = FeatureGroupL2()
    sol = build_program(X, y, activation=activation, loss=loss, lam=2.0, patterns=pats, penalty=pen).solve()
    assert sol.status == "optimal"
    with pytest.raises(InvalidParameterError, match="feature-sparse program"):
        duality_gap(X, y, sol, 2.0, loss)
    assert duality_gap(X, y, sol, 2.0, loss, penalty=pen).rel_gap <= 1e-4
    assert 0.0 <= sol.extra["certified_rel_gap"] <= 1e-4
