"""Feature-sparse penalties with vector output (the d_a x (p c) weight matrix) and the native
C-ReLU augmented Lagrangian (cvxnn.native.feature_sparse), against CVXPY + Clarabel."""

import warnings

import numpy as np
import pytest

from cvxnn import sample_patterns
from cvxnn.builders import build_program
from cvxnn.errors import ConvergenceWarning
from cvxnn.feature_penalties import FeatureGroupL2, SparseGroupL2
from cvxnn.feature_sparsity import feature_lam_max, feature_path, solve_feature_sparse, weight_matrix
from cvxnn.losses import get_loss
from cvxnn.native._losses import make_kernel
from cvxnn.native.feature_sparse import feature_relu_certificate, solve_feature_sparse_native

PENALTIES = [FeatureGroupL2(), FeatureGroupL2(alpha=0.7), SparseGroupL2(alpha=0.0), SparseGroupL2(alpha=0.7)]
IDS = [repr(p) for p in PENALTIES]


def _planted(n, d, k, c, seed):
    """Only the first k of d features matter, c outputs (c = 0: scalar)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    H = np.maximum(X[:, :k] @ rng.standard_normal((k, 4)), 0.0)
    Y = H @ rng.standard_normal((4, max(c, 1))) + 0.05 * rng.standard_normal((n, max(c, 1)))
    return X, (Y[:, 0] if c == 0 else Y)


@pytest.fixture(scope="module")
def vec():
    X, Y = _planted(36, 5, 2, 3, seed=2)
    return X, Y, sample_patterns(X, 8, seed=0)


@pytest.fixture(scope="module")
def small():
    X, y = _planted(40, 6, 2, 0, seed=1)
    return X, y, sample_patterns(X, 12, seed=0)


# ----------------------------------------------------------------------------- penalty objects
def test_vector_blocks_are_the_wide_matrix():
    """(d_a, p, c) blocks are read as the d_a x (p c) matrix: value, prox (same shape back), dual
    norm and block norms (the sum over the c columns of a block)."""
    B = np.random.default_rng(0).standard_normal((4, 5, 3))
    wide = B.reshape(4, 15)
    for pen in PENALTIES:
        assert pen.value(B) == pytest.approx(pen.value(wide), rel=1e-14)
        assert pen.prox(B, 0.3).shape == B.shape
        np.testing.assert_allclose(pen.prox(B, 0.3).reshape(4, 15), pen.prox(wide, 0.3))
        assert pen.dual_norm_value(B) == pytest.approx(pen.dual_norm_value(wide), rel=1e-14)
    blocks = SparseGroupL2(0.5).block_norms(B)
    assert blocks.shape == (5,) and blocks.sum() == pytest.approx(SparseGroupL2(0.5).value(B))


# ----------------------------------------------------------------------------- vector output
@pytest.mark.parametrize("pen", PENALTIES, ids=IDS)
def test_vector_native_gated_matches_clarabel(vec, pen):
    X, Y, P = vec
    lam = 0.2 * feature_lam_max(X, Y, P, pen)
    nat = solve_feature_sparse(X, Y, penalty=pen, lam=lam, patterns=P, tol=1e-9)
    prog = build_program(X, Y, activation="gated_relu", patterns=P, lam=lam, penalty=pen)
    ref = prog.solve("CLARABEL")
    assert prog.problem.is_dpp() and nat.U.shape == ref.U.shape == (P.design_dim, P.n_patterns, 3)
    assert nat.converged and nat.rel_gap <= 1e-9 and nat.gap == pytest.approx(nat.objective_value - nat.dual_value)
    assert ref.objective_value == pytest.approx(0.5 * np.sum((ref.train_predict(X) - Y) ** 2)
                                                + lam * pen.value(ref.U), rel=1e-9)
    assert ref.program_penalty == pytest.approx(pen.value(ref.U), rel=1e-12)
    assert nat.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert nat.objective_value <= ref.objective_value * (1 + 1e-9)


@pytest.mark.parametrize("pen", [FeatureGroupL2(), SparseGroupL2(0.5)], ids=repr)
def test_vector_relu_builder_and_native(vec, pen):
    X, Y, P = vec
    lam = 0.2 * feature_lam_max(X, Y, P, pen, activation="relu")
    ref = build_program(X, Y, activation="relu", patterns=P, lam=lam, penalty=pen).solve("CLARABEL")
    theta = weight_matrix(ref)
    assert theta.shape == (P.design_dim, 2 * P.n_patterns * 3)
    assert ref.objective_value == pytest.approx(0.5 * np.sum((ref.train_predict(X) - Y) ** 2)
                                                + lam * pen.value(theta), rel=1e-9)
    nat = solve_feature_sparse(X, Y, penalty=pen, lam=lam, patterns=P, activation="relu", solver="native",
                               tol=1e-7, feas_tol=1e-8)
    assert nat.converged and nat.solver == "al" and nat.max_violation <= 1e-8
    assert nat.objective_value == pytest.approx(ref.objective_value, rel=1e-6)


def test_vector_lam_max(vec):
    X, Y, P = vec
    pen = FeatureGroupL2()
    lm = feature_lam_max(X, Y, P, pen)
    at = solve_feature_sparse_native(X, Y, P, penalty=pen, lam=lm * (1 + 1e-12), tol=1e-10)
    below = solve_feature_sparse_native(X, Y, P, penalty=pen, lam=lm * (1 - 1e-3), tol=1e-10)
    assert at.converged and not np.any(at.U) and below.converged and np.any(below.U)
    lr = feature_lam_max(X, Y, P, pen, activation="relu")
    assert lr <= lm * (1 + 1e-9)
    zero = 0.5 * np.sum(Y**2)
    above = build_program(X, Y, activation="relu", patterns=P, lam=lr * 1.001, penalty=pen).solve("CLARABEL")
    under = build_program(X, Y, activation="relu", patterns=P, lam=lr * 0.99, penalty=pen).solve("CLARABEL")
    assert above.objective_value == pytest.approx(zero, rel=1e-7)
    assert under.objective_value < zero * (1 - 1e-6)


def test_vector_feature_group_network_is_exact(vec):
    """The row norms of the d_a x (m c) path weights W1[j, k] w2[k, o] are those of the convex
    weight matrix, for the SVD map of C-GReLU."""
    X, Y, P = vec
    pen = FeatureGroupL2(alpha=0.0)
    lam = 0.2 * feature_lam_max(X, Y, P, pen)
    sol = solve_feature_sparse(X, Y, penalty=pen, lam=lam, patterns=P, tol=1e-10)
    net = sol.to_network()
    np.testing.assert_allclose(net.predict(X), sol.train_predict(X), atol=1e-9 * np.abs(Y).max())
    assert pen.network_penalty(net) == pytest.approx(pen.value(sol.U), rel=1e-9)


# ----------------------------------------------------------------------------- native C-ReLU
@pytest.mark.parametrize("pen", PENALTIES, ids=IDS)
def test_native_relu_matches_clarabel(small, pen):
    X, y, P = small
    lam = 0.2 * feature_lam_max(X, y, P, pen, activation="relu")
    nat = solve_feature_sparse_native(X, y, P, penalty=pen, lam=lam, activation="relu", tol=1e-7, feas_tol=1e-8,
                                      max_iter=100_000)
    ref = solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=P, activation="relu", solver="CLARABEL")
    assert nat.converged and nat.backend == "native" and nat.solver == "al"
    assert nat.rel_gap <= 1e-7 and nat.max_violation <= 1e-8
    assert nat.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert nat.program_penalty == pytest.approx(pen.value(weight_matrix(nat)))
    assert nat.multipliers.shape == (X.shape[0], 2 * P.n_patterns) and np.all(nat.multipliers >= 0)


def test_relu_certificate_from_clarabel_duals(small):
    """Clarabel's point with its own cone duals as multipliers is certified by
    feature_relu_certificate (a check of the dual constraint's signs)."""
    X, y, P = small
    pen = FeatureGroupL2(alpha=0.3)
    lam = 0.3 * feature_lam_max(X, y, P, pen, activation="relu")
    ref = solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=P, activation="relu", solver="CLARABEL",
                               tol_gap_abs=1e-10, tol_gap_rel=1e-10)
    kernel = make_kernel(get_loss("squared"), y[:, None], np.float64)
    T = np.concatenate([ref.V, ref.W], axis=1)[:, :, None]
    cert = feature_relu_certificate(P.design(X), P.mask, kernel, lam, T, ref.multipliers[:, :, None], pen)
    assert cert.primal == pytest.approx(ref.objective_value, rel=1e-9)
    assert cert.rel_gap <= 1e-6 and cert.max_violation <= 1e-7
    no_mult = feature_relu_certificate(P.design(X), P.mask, kernel, lam, T, None, pen)
    assert no_mult.dual <= cert.dual + 1e-12  # the multipliers can only help


def test_native_relu_reports_honest_status(small):
    X, y, P = small
    pen = FeatureGroupL2()
    lam = 0.2 * feature_lam_max(X, y, P, pen, activation="relu")
    with pytest.warns(ConvergenceWarning):
        sol = solve_feature_sparse_native(X, y, P, penalty=pen, lam=lam, activation="relu", tol=1e-12, max_iter=50)
    assert sol.status == "max_iterations" and not sol.converged
    assert sol.max_violation >= 0
    if sol.max_violation > sol.extra["feas_tol"]:  # outside the cones no gap bounds anything
        assert sol.gap is None and sol.rel_gap is None and np.isfinite(sol.extra["gap_at_infeasible_point"])
    else:
        assert sol.gap >= 0


def test_relu_path_native_warm_started():
    X, y = _planted(60, 8, 2, 0, seed=3)
    P = sample_patterns(X, 10, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        path = feature_path(X, y, penalty=FeatureGroupL2(), patterns=P, activation="relu", n_lams=5,
                            lam_min_ratio=0.1, tol=1e-6, solver="native")
    assert path.solver == "al" and all(s.converged for s in path.solutions)
    assert path.solutions[0].solver == "lam_max" and path.solutions[-1].solver == "al"
    assert path.n_features[-1] >= 2
    assert np.all(np.diff(path.objectives) <= 1e-6 * path.objectives[0])


def test_auto_route(small):
    """"auto" is native for C-GReLU and Clarabel for C-ReLU; "native" / "al" reach the AL."""
    X, y, P = small
    pen = FeatureGroupL2()
    lam = 0.3 * feature_lam_max(X, y, P, pen, activation="relu")
    assert solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=P, activation="relu").backend == "cvxpy"
    assert solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=P, activation="relu", solver="al").solver == "al"
    assert solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=P).solver == "rfista"


@pytest.mark.parametrize("pen", [FeatureGroupL2(alpha=0.3), SparseGroupL2(alpha=0.5)])
def test_columnwise_network_attains_the_penalty_with_an_l1_part(pen):
    """With an l1 part the SVD neurons of a vector C-GReLU block raise the l1 norm of the path
    weights (17 % / 8 % on iris), so network_penalty(to_network()) missed R(Theta); the
    columnwise network (split="columns") attains it, with the same predictions."""
    from cvxnn.errors import InvalidParameterError

    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 4))
    Y = np.eye(3)[np.argmax(X[:, :3] + 0.3 * rng.standard_normal((40, 3)), axis=1)]
    P = sample_patterns(X, 8, seed=0, bias=True)
    lam = 0.3 * feature_lam_max(X, Y, P, pen)
    sol = solve_feature_sparse(X, Y, penalty=pen, lam=lam, patterns=P, tol=1e-10)
    R = pen.value(weight_matrix(sol))
    cols = sol.to_network(split="columns")
    assert pen.network_penalty(cols) == pytest.approx(R, rel=1e-10)
    np.testing.assert_allclose(cols.predict(X), sol.train_predict(X), atol=1e-10)
    assert pen.network_penalty(sol.to_network()) > R * (1 + 1e-6)  # the SVD neurons: same fit, more l1
    with pytest.raises(InvalidParameterError, match="split"):
        sol.to_network(split="svd")
