"""The feature-sparse native solvers at and next to ``lam_max`` (cvxnn.native.feature_sparse,
cvxnn.feature_sparsity): the zero model is certified before iterating, and just below
``lam_max`` the C-ReLU augmented Lagrangian agrees with CVXPY + Clarabel."""

from fractions import Fraction

import numpy as np
import pytest

import cvxnn
from cvxnn.feature_penalties import FeatureGroupL2, SparseGroupL2
from cvxnn.feature_sparsity import feature_lam_max, feature_path, solve_feature_sparse, weight_matrix
from cvxnn.losses import get_loss
from cvxnn.native._losses import make_kernel
from cvxnn.native.feature_sparse import FeatureALProblem, solve_feature_sparse_native

PENALTIES = [FeatureGroupL2(), SparseGroupL2(alpha=0.5)]
TOL = 1e-8


@pytest.fixture(scope="module")
def diabetes():
    """80 rows of scikit-learn's diabetes data, features and target standardized, 4 gates."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X, y = X[:80], y[:80]
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return X, y, cvxnn.sample_patterns(X, 4, seed=0)


@pytest.mark.parametrize("pen", PENALTIES, ids=repr)
@pytest.mark.parametrize("factor", [1.0, 1.0 + 1e-12, 1.5])
def test_relu_zero_is_certified_at_and_above_lam_max(diabetes, pen, factor):
    """At lam = lam_max exactly (and above) the C-ReLU augmented Lagrangian ran to max_iter
    (200 000 iterations, 30 s, ``max_iterations``) while the optimum is zero: it left zero for
    blocks of ~1e-4 and its multipliers converged too slowly to certify the way back. The zero
    model is now certified before iterating, with multipliers that the public duality_gap
    accepts too."""
    X, y, P = diabetes
    lam = feature_lam_max(X, y, P, pen, activation="relu") * factor
    sol = solve_feature_sparse(X, y, penalty=pen, lam=lam, activation="relu", patterns=P, solver="native",
                               tol=TOL, max_iter=2000)
    assert sol.status == "optimal" and sol.iterations <= 2
    assert not np.any(weight_matrix(sol))
    assert sol.rel_gap <= TOL and sol.max_violation == 0.0
    assert sol.objective_value == pytest.approx(0.5 * np.sum(y**2), rel=1e-14)
    cert = cvxnn.duality_gap(X, y, sol, lam, penalty=pen)
    assert cert.rel_gap <= TOL


@pytest.mark.parametrize("pen", PENALTIES, ids=repr)
def test_gated_zero_is_certified_at_lam_max(diabetes, pen):
    X, y, P = diabetes
    lam = feature_lam_max(X, y, P, pen)
    sol = solve_feature_sparse_native(X, y, P, penalty=pen, lam=lam, tol=TOL, max_iter=2000)
    assert sol.status == "optimal" and sol.iterations == 0 and not np.any(sol.U)
    assert sol.rel_gap <= TOL


@pytest.mark.filterwarnings("ignore::cvxnn.errors.InaccurateSolutionWarning")
@pytest.mark.parametrize("pen", PENALTIES, ids=repr)
@pytest.mark.parametrize("factor", [1.0 - 1e-9, 0.999])
def test_relu_just_below_lam_max_agrees_with_clarabel(diabetes, pen, factor):
    """Just below lam_max the augmented Lagrangian certifies its point (it ran out of
    iterations) and the objective agrees with CVXPY + Clarabel on the same program (which may
    call its point inaccurate at 1 - 1e-9, where the optimum is a kink away from zero)."""
    X, y, P = diabetes
    lam = feature_lam_max(X, y, P, pen, activation="relu") * factor
    sol = solve_feature_sparse(X, y, penalty=pen, lam=lam, activation="relu", patterns=P, solver="native",
                               tol=TOL, max_iter=20000)
    ref = solve_feature_sparse(X, y, penalty=pen, lam=lam, activation="relu", patterns=P, solver="CLARABEL")
    assert sol.status == "optimal" and ref.status in ("optimal", "optimal_inaccurate")
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=3e-8)
    assert sol.objective_value <= 0.5 * np.sum(y**2)
    assert cvxnn.duality_gap(X, y, sol, lam, penalty=pen).rel_gap <= 2 * TOL


def test_al_bregman_divergence_is_accurate_for_small_steps():
    """The line search of the augmented Lagrangian compares the Bregman divergence of a step
    with its length. Its cone part, expanded as r.r - 2 r.r_y + r_y.r_y, was 43 % off for a
    step of 1e-9 with multipliers of ~1e2; the line search then rejected every step and the step
    size fell to 1e-25 next to lam_max. Checked against exact rational arithmetic."""
    rng = np.random.default_rng(0)
    n, d = 30, 3
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    P = cvxnn.sample_patterns(X, 3, seed=0)
    p = P.n_patterns
    kernel = make_kernel(get_loss("squared"), y[:, None], np.float64)
    gamma = 100.0 * rng.random((n, 2 * p, 1))
    delta = 1e3
    prob = FeatureALProblem(P.design(X), P.mask, kernel, 1.0, gamma, delta, FeatureGroupL2())
    Ty = 1e-3 * rng.standard_normal((d, 2 * p, 1))
    img_y, img_new = prob.forward(Ty), prob.forward(Ty + 1e-9 * rng.standard_normal(Ty.shape))
    grad = prob.smooth_grad(img_y)
    a_y = prob._negSdelta * img_y[:, : 2 * p, :] + gamma
    a_new = prob._negSdelta * img_new[:, : 2 * p, :] + gamma
    cone = Fraction(0)
    for a, b in zip(a_new.ravel().tolist(), a_y.ravel().tolist(), strict=True):
        a, b = Fraction(a), Fraction(b)
        rb = max(b, Fraction(0))
        cone += (max(a, Fraction(0)) ** 2 - rb**2) / 2 - rb * (a - b)
    exact = kernel.bregman(img_new[:, 2 * p, :], img_y[:, 2 * p, :], prob.theta) + float(cone / Fraction(delta))
    assert prob.bregman(img_new, img_y, grad) == pytest.approx(exact, rel=1e-9, abs=0.0)


def test_path_zero_model_carries_certifying_multipliers(diabetes):
    """feature_path returns the zero model at lam_max without a solve; for C-ReLU it carries the
    multipliers of the lam_max program, so duality_gap certifies it (without multipliers the
    dual point rho = 0 is feasible only from the C-GReLU lam_max up, here 2-5x higher)."""
    X, y, P = diabetes
    pen = FeatureGroupL2()
    lm = feature_lam_max(X, y, P, pen, activation="relu")
    assert lm < 0.9 * feature_lam_max(X, y, P, pen)
    path = feature_path(X, y, penalty=pen, patterns=P, activation="relu", lams=[lm, 0.5 * lm], solver="CLARABEL")
    first = path.solutions[0]
    assert path.lam_max == lm and first.solver == "lam_max" and not np.any(weight_matrix(first))
    assert first.multipliers is not None and np.all(first.multipliers >= 0)
    assert cvxnn.duality_gap(X, y, first, lm, penalty=pen).rel_gap <= TOL


def test_relu_warm_start_that_is_optimal_returns_without_iterating(diabetes):
    """A certified warm start (its multipliers included) is returned as it is."""
    X, y, P = diabetes
    pen = SparseGroupL2(alpha=0.5)
    lam = 0.99 * feature_lam_max(X, y, P, pen, activation="relu")
    first = solve_feature_sparse(X, y, penalty=pen, lam=lam, activation="relu", patterns=P, solver="native",
                                 tol=1e-6, max_iter=20000)
    assert first.status == "optimal" and first.iterations > 0
    again = solve_feature_sparse(X, y, penalty=pen, lam=lam, activation="relu", patterns=P, solver="native",
                                 tol=1e-6, warm_start=first)
    assert again.status == "optimal" and again.iterations == 0
    np.testing.assert_array_equal(weight_matrix(again), weight_matrix(first))


def test_zero_check_skips_the_lam_max_program_far_below_lam_max(diabetes, monkeypatch):
    """The cone projections bound lam_max from below: far below it the exact program is not
    solved (it costs as much as feature_lam_max)."""
    import cvxnn.native.feature_sparse as fs

    X, y, P = diabetes
    pen = FeatureGroupL2()
    lam = 0.3 * feature_lam_max(X, y, P, pen, activation="relu")

    def refuse(*args, **kwargs):
        raise AssertionError("the lam_max program ran far below lam_max")

    monkeypatch.setattr(fs, "feature_relu_lam_max", refuse)
    sol = solve_feature_sparse(X, y, penalty=pen, lam=lam, activation="relu", patterns=P, solver="native",
                               tol=1e-3, max_iter=50)
    assert np.any(weight_matrix(sol))


def _lam_max_reference(Xa, mask, C, pen):
    """``min_{rho >= 0} R*([c_i + Xt_i^T rho^v_i]_i, [-c_i + Xt_i^T rho^w_i]_i)``, every cone row
    posed, written independently of the library's constraint generation."""
    import cvxpy as cp

    C3 = C[:, :, None] if C.ndim == 2 else C
    c = C3.shape[2]
    CC = np.concatenate([C3, -C3], axis=1).reshape(C3.shape[0], -1)
    S = 2.0 * mask - 1.0
    S2 = np.repeat(np.concatenate([S, S], axis=1), c, axis=1)
    scale = np.abs(CC).max()
    rho = cp.Variable(S2.shape, nonneg=True)
    term = pen.cvxpy_dual_norm(CC / scale + Xa.T @ cp.multiply(S2, rho))
    cp.Problem(cp.Minimize(term.expression), term.constraints).solve(solver="CLARABEL")
    return pen.dual_norm_value(CC + Xa.T @ (S2 * np.maximum(rho.value, 0.0) * scale))


@pytest.mark.parametrize("pen", PENALTIES, ids=repr)
@pytest.mark.parametrize("case", ["diabetes", "random_vector"])
def test_relu_lam_max_by_constraint_generation_matches_the_whole_program(diabetes, pen, case, monkeypatch):
    """feature_relu_lam_max poses only the cone rows it needs (rounds of constraint generation
    between an upper bound from its multipliers and a lower bound from cone projections); its
    value must be the minimum over all multipliers (the whole program's, in its conic dual form
    and as the minimum over rho: an upper bound can be no lower than the minimum, so it may only
    fall below the reference by the reference's inaccuracy), and its multipliers must attain it."""
    import cvxnn.native.feature_sparse as fs
    from cvxnn.native.feature_sparse import _pair_signs, feature_relu_lam_max
    from cvxnn.operators import adjoint

    if case == "diabetes":
        X, y, P = diabetes
        r0 = y.copy()
    else:
        rng = np.random.default_rng(3)
        X = rng.standard_normal((60, 4))
        P = cvxnn.sample_patterns(X, 6, seed=1)
        r0 = rng.standard_normal((60, 3))
    Xa = P.design(X)
    C = adjoint(Xa, P.mask, r0)
    value, rho = feature_relu_lam_max(Xa, P.mask, C, pen)
    ref = _lam_max_reference(Xa, P.mask, C, pen)
    monkeypatch.setattr(fs, "LAM_MAX_ROUNDS", 0)
    whole, _ = feature_relu_lam_max(Xa, P.mask, C, pen)
    assert value <= min(ref, whole) * (1.0 + 2e-8)
    assert value >= min(ref, whole) * (1.0 - 2e-7)  # both references were at most 1.3e-7 above it
    c = 1 if C.ndim == 2 else C.shape[2]
    C3 = C[:, :, None] if C.ndim == 2 else C
    CC = np.concatenate([C3, -C3], axis=1).reshape(C3.shape[0], -1)
    assert np.all(rho >= 0.0)
    attained = pen.dual_norm_value(CC + Xa.T @ (_pair_signs(P.mask, c) * rho.reshape(Xa.shape[0], -1)))
    assert attained == pytest.approx(value, rel=1e-12)


def test_relu_lam_max_poses_few_cone_rows(monkeypatch):
    """On 400 rows and 20 gates the posed programs hold a fraction of the n x 2p cone rows, and
    the value agrees with the whole program's; with no rounds allowed the whole program is solved."""
    import cvxnn.native.feature_sparse as fs
    from cvxnn.operators import adjoint

    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 8))
    y = np.sin(X[:, 0]) + X[:, 1] ** 2 - 1.0
    P = cvxnn.sample_patterns(X, 20, seed=0)
    Xa = P.design(X)
    C = adjoint(Xa, P.mask, y)
    sizes = []
    original = fs._cone_rows_program

    def counting(Xs, S2, CCs, penalty, c, rows, cols):
        sizes.append(rows.size)
        return original(Xs, S2, CCs, penalty, c, rows, cols)

    monkeypatch.setattr(fs, "_cone_rows_program", counting)
    value, _ = fs.feature_relu_lam_max(Xa, P.mask, C, FeatureGroupL2())
    assert sizes and max(sizes) < 0.25 * 400 * 40
    monkeypatch.setattr(fs, "LAM_MAX_ROUNDS", 0)
    whole, _ = fs.feature_relu_lam_max(Xa, P.mask, C, FeatureGroupL2())
    assert value == pytest.approx(whole, rel=2e-8)


def test_relu_lam_max_start_rows(diabetes):
    """Rows handed in by the zero check start the generation (the same value as from the
    projections it computes itself; from no rows at all too); a wrong shape is refused."""
    from cvxnn.errors import ShapeError
    from cvxnn.native.feature_sparse import feature_relu_lam_max
    from cvxnn.operators import adjoint

    X, y, P = diabetes
    Xa = P.design(X)
    C = adjoint(Xa, P.mask, y)
    value, _ = feature_relu_lam_max(Xa, P.mask, C, FeatureGroupL2())
    empty, _ = feature_relu_lam_max(Xa, P.mask, C, FeatureGroupL2(),
                                    start_rows=np.zeros((X.shape[0], 2 * P.n_patterns), bool))
    assert empty == pytest.approx(value, rel=2e-8)
    with pytest.raises(ShapeError, match="start_rows"):
        feature_relu_lam_max(Xa, P.mask, C, FeatureGroupL2(), start_rows=np.zeros((3, 2), bool))
