"""Feature-sparse penalties (cvxnn.feature_penalties), their native solver
(cvxnn.native.feature_sparse), lam_max and the feature path (cvxnn.feature_sparsity)."""

import cvxpy as cp
import numpy as np
import pytest

from cvxnn import sample_patterns
from cvxnn.builders import build_program
from cvxnn.errors import ConvergenceWarning, InvalidParameterError, NonFiniteError, ShapeError
from cvxnn.feature_penalties import FeatureGroupL2, SparseGroupL2, sparse_group_dual_norms
from cvxnn.feature_sparsity import (
    feature_lam_max,
    feature_path,
    feature_support,
    solve_feature_sparse,
    weight_matrix,
)
from cvxnn.losses import get_loss
from cvxnn.native.feature_sparse import solve_feature_sparse_native
from cvxnn.path import lam_max
from cvxnn.penalties import GroupL2

PENALTIES = [FeatureGroupL2(), FeatureGroupL2(alpha=0.7), SparseGroupL2(alpha=0.0), SparseGroupL2(alpha=0.7)]
IDS = [repr(p) for p in PENALTIES]


def _matrix(shape=(5, 7), seed=0):
    B = np.random.default_rng(seed).standard_normal(shape)
    B[1] = 0.0  # a zero row (feature)
    B[:, 2] = 0.0  # a zero column (block)
    return B


def _bisection_dual(g, alpha):
    lo, hi = 0.0, float(np.linalg.norm(g))
    for _ in range(200):
        s = 0.5 * (lo + hi)
        if np.linalg.norm(np.maximum(np.abs(g) - s * alpha, 0.0)) > s:
            lo = s
        else:
            hi = s
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------------------ penalty objects
@pytest.mark.parametrize("pen", PENALTIES, ids=IDS)
@pytest.mark.parametrize("t", [0.0, 0.4, 2.0])
def test_prox_is_optimal_and_moreau(pen, t):
    """X = prox_{tR}(B) iff (B - X)/t is a subgradient of R at X: R*((B-X)/t) <= 1 and
    <(B-X)/t, X> = R(X); and prox + projection on the dual ball of radius t is the identity."""
    B = _matrix()
    X = pen.prox(B, t)
    if t == 0.0:
        np.testing.assert_array_equal(X, B)
        return
    g = (B - X) / t
    assert pen.dual_norm_value(g) <= 1.0 + 1e-12
    assert np.vdot(g, X) == pytest.approx(pen.value(X), rel=1e-12, abs=1e-14)
    P = pen.project_dual_ball(B, t)
    np.testing.assert_allclose(P + X, B, atol=1e-14)
    assert pen.dual_norm_value(P) <= t * (1 + 1e-12)


@pytest.mark.parametrize("pen", PENALTIES, ids=IDS)
def test_prox_matches_cvxpy(pen):
    B, t = _matrix(seed=3), 0.6
    Z = cp.Variable(B.shape)
    cp.Problem(cp.Minimize(t * pen.cvxpy(Z).expression + 0.5 * cp.sum_squares(Z - B))).solve("CLARABEL")
    X = pen.prox(B, t)

    def objective(A):
        return t * pen.value(A) + 0.5 * np.sum((A - B) ** 2)

    # the prox is no worse than Clarabel's point (whose accuracy is ~1e-8 in value, 1e-5 in the point)
    assert objective(X) <= objective(Z.value) + 1e-12
    assert objective(Z.value) - objective(X) < 1e-7
    np.testing.assert_allclose(X, Z.value, atol=1e-4)


@pytest.mark.parametrize("pen", PENALTIES, ids=IDS)
def test_dual_norm_is_the_sup(pen):
    """R*(G) = max {<G, B> : R(B) <= 1} (solved by CVXPY on the penalty's own CVXPY form);
    random B never exceed it (<G, B> <= R*(G) R(B)); the epigraph form has the same value."""
    G = _matrix(seed=5)
    B = cp.Variable(G.shape)
    sup = cp.Problem(cp.Maximize(cp.sum(cp.multiply(G, B))), [pen.cvxpy(B).expression <= 1]).solve("CLARABEL")
    assert pen.dual_norm_value(G) == pytest.approx(sup, rel=1e-6)
    rng = np.random.default_rng(1)
    for _ in range(200):
        Bs = rng.standard_normal(G.shape) * (rng.random(G.shape) < 0.5)
        assert np.vdot(G, Bs) <= pen.dual_norm_value(G) * pen.value(Bs) * (1 + 1e-12) + 1e-14
    term = pen.cvxpy_dual_norm(cp.Constant(G))
    epi = cp.Problem(cp.Minimize(term.expression), term.constraints).solve("CLARABEL")
    assert epi == pytest.approx(pen.dual_norm_value(G), rel=1e-6)


@pytest.mark.parametrize("alpha", [1e-3, 0.2, 1.0, 5.0, 100.0])
def test_sparse_group_dual_norm_closed_form(alpha):
    rng = np.random.default_rng(2)
    G = rng.standard_normal((9, 40)) * (rng.random((9, 40)) < 0.6)
    G[:, 0] = 0.0
    G[:, 1] = 1.0  # ties
    G[:, 2] = 0.0
    G[4, 2] = -3.0  # one entry
    got = sparse_group_dual_norms(G, alpha)
    want = np.array([_bisection_dual(G[:, j], alpha) for j in range(G.shape[1])])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert got[0] == 0.0 and got[2] == pytest.approx(3.0 / (1.0 + alpha))
    np.testing.assert_array_equal(sparse_group_dual_norms(G, 0.0), np.linalg.norm(G, axis=0))


@pytest.mark.parametrize("pen", PENALTIES, ids=IDS)
def test_cvxpy_value_equals_numpy_value(pen):
    B = _matrix(seed=7)
    assert pen.cvxpy(cp.Constant(B)).expression.value == pytest.approx(pen.value(B), rel=1e-12)
    assert pen.value(B[:, :, None]) == pytest.approx(pen.value(B))  # trailing output axis of 1


def test_special_cases_are_the_known_norms():
    B = _matrix(seed=9)
    group = GroupL2()
    np.testing.assert_allclose(SparseGroupL2(0.0).block_norms(B), group.block_norms(B))
    np.testing.assert_allclose(SparseGroupL2(0.0).prox(B, 0.5), group.prox(B, 0.5))
    np.testing.assert_allclose(SparseGroupL2(0.0).dual_norm(B), group.dual_norm(B))
    assert FeatureGroupL2().value(B) == pytest.approx(group.value(B.T))
    np.testing.assert_allclose(FeatureGroupL2().prox(B, 0.5), group.prox(B.T, 0.5).T)
    assert FeatureGroupL2().dual_norm_value(B) == pytest.approx(np.linalg.norm(B, axis=1).max())
    # l1 part: entries below t alpha vanish even when the group survives
    X = SparseGroupL2(2.0).prox(B, 0.1)
    assert np.all(X[np.abs(B) <= 0.2] == 0.0)


def test_typed_errors():
    with pytest.raises(InvalidParameterError):
        FeatureGroupL2().block_norms(_matrix())
    with pytest.raises(InvalidParameterError):
        SparseGroupL2(alpha=-1.0)
    with pytest.raises(InvalidParameterError):
        SparseGroupL2(alpha="big")
    with pytest.raises(InvalidParameterError):
        FeatureGroupL2().prox(_matrix(), -1.0)
    with pytest.raises(ShapeError):
        FeatureGroupL2().value(np.ones((3, 4, 2, 2)))
    with pytest.raises(ShapeError):
        FeatureGroupL2().cvxpy(cp.Variable((3, 8)), n_outputs=3)
    # the public dual-norm function checks as the penalties do (it returned -2 for alpha=-0.5
    # and NaN norms for NaN input)
    with pytest.raises(InvalidParameterError, match="alpha"):
        sparse_group_dual_norms(np.ones((3, 2)), -0.5)
    with pytest.raises(NonFiniteError):
        sparse_group_dual_norms(np.array([[np.nan, 1.0], [0.0, 1.0]]), 0.5)


# ------------------------------------------------------------------------------------- problems
def _planted(n=80, d=10, k=3, seed=0, noise=0.05):
    """Only the first k of d features matter."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((k, 4))
    y = np.maximum(X[:, :k] @ W, 0.0) @ np.array([1.0, -1.0, 0.7, -0.5]) + noise * rng.standard_normal(n)
    return X, y


@pytest.fixture(scope="module")
def small():
    X, y = _planted(n=40, d=6, k=2, seed=1)
    return X, y, sample_patterns(X, 12, seed=0)


@pytest.mark.parametrize("pen", PENALTIES, ids=IDS)
def test_native_matches_clarabel_gated(small, pen):
    X, y, P = small
    lam = 0.2 * feature_lam_max(X, y, P, pen)
    nat = solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=P, tol=1e-9)
    ref = solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=P, solver="CLARABEL")
    assert nat.converged and nat.backend == "native" and nat.rel_gap <= 1e-9
    assert nat.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert nat.objective_value <= ref.objective_value * (1 + 1e-9)  # the gap certifies the native point
    assert nat.program_penalty == pytest.approx(pen.value(nat.U))
    np.testing.assert_allclose(nat.U, ref.U, atol=1e-4 * np.abs(ref.U).max())


def test_native_logistic_matches_clarabel(small):
    X, y, P = small
    labels = np.where(y > np.median(y), 1.0, -1.0)
    pen = FeatureGroupL2(alpha=0.3)
    lam = 0.3 * feature_lam_max(X, labels, P, pen, loss="logistic")
    nat = solve_feature_sparse(X, labels, penalty=pen, lam=lam, patterns=P, loss="logistic", tol=1e-9)
    ref = solve_feature_sparse(X, labels, penalty=pen, lam=lam, patterns=P, loss="logistic", solver="CLARABEL")
    assert nat.converged
    assert nat.objective_value == pytest.approx(ref.objective_value, rel=1e-6)


@pytest.mark.parametrize("pen", [FeatureGroupL2(), SparseGroupL2(0.5)], ids=repr)
def test_relu_program_and_exact_network(small, pen):
    """C-ReLU through CVXPY: the builder's objective is L + lam R([V, W]); the mapped network has
    the same predictions and, under the penalty's network counterpart, the same objective."""
    X, y, P = small
    lam = 0.2 * feature_lam_max(X, y, P, pen, activation="relu")
    sol = solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=P, activation="relu", solver="CLARABEL")
    assert sol.converged and sol.max_cone_violation(X) < 1e-7
    theta = weight_matrix(sol)
    fit = sol.train_predict(X)
    loss = get_loss("squared")
    assert sol.objective_value == pytest.approx(loss.value(fit, y) + lam * pen.value(theta), rel=1e-7)
    net = sol.to_network()
    np.testing.assert_allclose(net.predict(X), fit, atol=1e-6 * np.abs(fit).max())
    net_obj = loss.value(net.predict(X), y) + lam * pen.network_penalty(net)
    assert net_obj == pytest.approx(sol.objective_value, rel=1e-6)


@pytest.mark.parametrize("pen", [FeatureGroupL2(0.2), SparseGroupL2(0.5)], ids=repr)
def test_gated_network_objective_is_exact(small, pen):
    X, y, P = small
    lam = 0.2 * feature_lam_max(X, y, P, pen)
    sol = solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=P, tol=1e-10)
    net = sol.to_network()
    loss = get_loss("squared")
    assert loss.value(net.predict(X), y) + lam * pen.network_penalty(net) == pytest.approx(
        sol.objective_value, rel=1e-10)
    # the l1 term zeroes single weights: exact zeros inside active blocks
    if isinstance(pen, SparseGroupL2):
        active = np.linalg.norm(sol.U, axis=0) > 0
        assert np.any(sol.U[:, active] == 0.0)


def test_builder_penalty_argument(small):
    X, y, P = small
    default = build_program(X, y, activation="relu", patterns=P, lam=3.0)
    same = build_program(X, y, activation="relu", patterns=P, lam=3.0, penalty=GroupL2())
    assert same.solve().objective_value == pytest.approx(default.solve().objective_value, rel=1e-7)
    prog = build_program(X, y, activation="gated_relu", patterns=P, lam=1.0, penalty=FeatureGroupL2())
    assert prog.lam is not None and prog.problem.is_dpp()


@pytest.mark.parametrize("pen", PENALTIES, ids=IDS)
def test_lam_max_gated(small, pen):
    """At lam_max the zero model is optimal (the native solve returns exactly zero, certified);
    just below it is not."""
    X, y, P = small
    lm = feature_lam_max(X, y, P, pen)
    at = solve_feature_sparse_native(X, y, P, penalty=pen, lam=lm * (1 + 1e-12), tol=1e-10)
    assert at.converged and not np.any(at.U)
    below = solve_feature_sparse_native(X, y, P, penalty=pen, lam=lm * (1 - 1e-3), tol=1e-10)
    assert below.converged and np.any(below.U)
    assert below.objective_value < 0.5 * np.sum(y**2)


@pytest.mark.parametrize("pen", [FeatureGroupL2(), SparseGroupL2(0.5)], ids=repr)
def test_lam_max_relu(small, pen):
    X, y, P = small
    lm = feature_lam_max(X, y, P, pen, activation="relu")
    assert lm <= feature_lam_max(X, y, P, pen) * (1 + 1e-9)  # cone multipliers can only lower it
    zero = 0.5 * np.sum(y**2)
    above = solve_feature_sparse(X, y, penalty=pen, lam=lm * 1.001, patterns=P, activation="relu", solver="CLARABEL")
    below = solve_feature_sparse(X, y, penalty=pen, lam=lm * 0.99, patterns=P, activation="relu", solver="CLARABEL")
    assert above.objective_value == pytest.approx(zero, rel=1e-7)
    assert below.objective_value < zero * (1 - 1e-6)
    # interior-point noise above, weights of order (lam_max - lam) below: a lam_max off by 0.5%
    # would leave weights of half the size of those below at 1.001 lam_max
    assert np.abs(weight_matrix(above)).max() < 1e-3 * np.abs(weight_matrix(below)).max()


def test_relu_lam_max_agrees_with_group_lasso(small):
    X, y, P = small
    assert feature_lam_max(X, y, P, SparseGroupL2(0.0), activation="relu") == pytest.approx(
        lam_max(X, y, P, "relu"), rel=1e-6)
    assert feature_lam_max(X, y, P, SparseGroupL2(0.0)) == pytest.approx(lam_max(X, y, P, "gated_relu"), rel=1e-12)


def test_path_recovers_planted_features():
    """Only the first k features matter: they are the first k to enter the path, and the zero
    model is returned (without a solve) at lam_max."""
    k = 3
    X, y = _planted(n=120, d=12, k=k, seed=4)
    P = sample_patterns(X, 30, seed=1)
    path = feature_path(X, y, penalty=FeatureGroupL2(), patterns=P, n_lams=12, lam_min_ratio=0.05, tol=1e-7)
    assert path.lams[0] == pytest.approx(path.lam_max) and path.solutions[0].solver == "lam_max"
    assert not path.supports[0].any()
    assert all(s.converged for s in path.solutions)
    assert set(path.entry_order()[:k].tolist()) == set(range(k))
    assert np.all(np.diff(path.objectives) <= 1e-9 * path.objectives[0])  # objective falls with lam
    assert feature_support(path.solutions[-1])[:k].all()


def test_solver_routing_errors(small):
    X, y, P = small
    with pytest.raises(InvalidParameterError):
        solve_feature_sparse(X, y, penalty=FeatureGroupL2(), lam=1.0, patterns=P, activation="relu", solver="rfista")
    with pytest.raises(InvalidParameterError):
        solve_feature_sparse(X, y, penalty=GroupL2(), lam=1.0, patterns=P)
    with pytest.raises(InvalidParameterError):
        solve_feature_sparse(X, y, penalty=FeatureGroupL2(), lam=1.0, patterns=P, solver="al")
    with pytest.raises(InvalidParameterError):
        solve_feature_sparse_native(X, np.c_[y, y], P, penalty=FeatureGroupL2(), lam=1.0, loss="logistic")
    with pytest.raises(InvalidParameterError):
        solve_feature_sparse_native(X, y, P, penalty=FeatureGroupL2(), lam=0.0)
    with pytest.raises(InvalidParameterError):
        solve_feature_sparse(X, y, penalty=FeatureGroupL2(), lam=1.0, patterns=P, activation="relu",
                             loss="hinge", solver="native")


def test_cvxpy_route_honours_max_iter_and_refuses_feas_tol(small):
    """solve_feature_sparse on a CVXPY solver passed only solver_opts on: max_iter=3 returned
    "optimal" after Clarabel's 14 iterations; it is now the iteration limit (as in cvxnn.solve),
    and the native-only feas_tol is refused rather than ignored."""
    X, y, P = small
    kw = dict(penalty=FeatureGroupL2(), lam=0.3, patterns=P, activation="relu")
    with pytest.warns(ConvergenceWarning):
        sol = solve_feature_sparse(X, y, max_iter=3, **kw)
    assert sol.solver == "CLARABEL" and sol.status == "max_iterations" and sol.iterations == 3
    assert solve_feature_sparse(X, y, **kw).status == "optimal"
    with pytest.raises(InvalidParameterError, match="feas_tol"):
        solve_feature_sparse(X, y, feas_tol=1e-6, **kw)
    with pytest.raises(InvalidParameterError, match="max_iter"):
        solve_feature_sparse(X, y, max_iter=0, **kw)


def test_native_relu_at_lam_max_returns_exact_zero_and_no_gap_when_infeasible():
    """At lam >= feature_lam_max the C-ReLU augmented Lagrangian returns the exact zero model once
    its dual bound certifies it (it drifted to blocks of ~1e-4, or ran out of iterations); a
    point it leaves outside its cones reports no gap (it reported 0.0); y = 0 gives lam_max 0."""
    import warnings

    import cvxnn
    from cvxnn.feature_penalties import FeatureGroupL2, SparseGroupL2
    from cvxnn.feature_sparsity import feature_lam_max, solve_feature_sparse, weight_matrix

    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0) + 0.3 * rng.standard_normal(30)
    pats = cvxnn.sample_patterns(X, 5, seed=2)
    pen = FeatureGroupL2()
    lm = feature_lam_max(X, y, pats, pen, activation="relu")
    sol = solve_feature_sparse(X, y, penalty=pen, lam=lm * 1.001, activation="relu", patterns=pats,
                               solver="native", tol=1e-8)
    assert sol.status == "optimal" and np.all(weight_matrix(sol) == 0.0)
    assert feature_lam_max(X, np.zeros(30), pats, pen, activation="relu") == 0.0

    rng = np.random.default_rng(1)
    X = rng.standard_normal((38, 2))
    y = np.maximum(X @ rng.standard_normal(2), 0) + 0.3 * rng.standard_normal(38)
    pats = cvxnn.sample_patterns(X, 5, seed=1)
    pen = SparseGroupL2(0.0)
    lam = 0.0636 * feature_lam_max(X, y, pats, pen, activation="relu", loss="huber")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = solve_feature_sparse(X, y, penalty=pen, lam=lam, activation="relu", patterns=pats, loss="huber",
                                 solver="native", tol=1e-6, max_iter=300)
    if s.max_violation > s.extra["feas_tol"]:
        assert s.status != "optimal" and s.gap is None and s.rel_gap is None
        assert np.isfinite(s.extra["gap_at_infeasible_point"])


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_duality_gap_certifies_the_feature_program_or_refuses(activation):
    """duality_gap of a feature-sparse solution certified the group lasso of its blocks (primal
    42.5 against the solved 38.2, rel gap 0.16, silently); with penalty= it certifies the
    feature program, and without it the call is refused."""
    import cvxnn
    from cvxnn import FeatureGroupL2
    from cvxnn.errors import InvalidParameterError

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = np.maximum(X[:, 0] - X[:, 1], 0) + 0.1 * rng.standard_normal(60)
    pats = cvxnn.sample_patterns(X, 6, seed=0, bias=True)
    pen = FeatureGroupL2()
    lam = 0.3 * cvxnn.feature_lam_max(X, y, pats, pen, activation=activation)
    sol = cvxnn.solve_feature_sparse(X, y, penalty=pen, lam=lam, patterns=pats, activation=activation,
                                     solver="CLARABEL")
    with pytest.raises(InvalidParameterError, match="feature-sparse program"):
        cvxnn.duality_gap(X, y, sol, lam)
    cert = cvxnn.duality_gap(X, y, sol, lam, penalty=pen)
    assert cert.primal == pytest.approx(sol.objective_value, rel=1e-6)
    assert cert.rel_gap < 1e-5
    with pytest.raises(InvalidParameterError, match="feature-sparse penalty"):
        cvxnn.duality_gap(X, y, sol, lam, penalty="group_l2")


def test_relu_feature_lam_max_scales_with_the_data():
    """lam_max(s X, t y) = s t lam_max(X, y) for the squared loss; Clarabel called the SOCP on
    X * 1e-6, y * 1e6 "optimal" at twice the value (71.8 against 37.2) until it was solved on
    unit scales."""
    from cvxnn.patterns import Patterns

    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 6))
    y = X[:, 0] - np.maximum(X[:, 1], 0.0) + 0.1 * rng.standard_normal(60)
    P = sample_patterns(X, 10, seed=0)
    for penalty in (SparseGroupL2(alpha=0.0), FeatureGroupL2()):
        ref = feature_lam_max(X, y, P, penalty, activation="relu")
        for s, t in [(1e-6, 1.0), (1e-6, 1e6), (1e5, 1e-3)]:
            Ps = Patterns.from_gates(X * s, P.gates)
            got = feature_lam_max(X * s, y * t, Ps, penalty, activation="relu")
            assert got == pytest.approx(ref * s * t, rel=1e-6)
    assert feature_lam_max(X, y, P, SparseGroupL2(alpha=0.0), activation="relu") == pytest.approx(
        lam_max(X, y, P, activation="relu"), rel=1e-6)


def test_a_program_of_another_penalty_loss_or_data_is_refused():
    """solve_feature_sparse(program=...) checked only the activation and the patterns: a program
    built with FeatureGroupL2 and called with SparseGroupL2(0.5) came back "optimal" at 7.73
    (the true optimum 10.74), labelled SparseGroupL2. A CVXPY solution of a feature program
    also carried a group-lasso "certified_gap" of 22 % (the certificate of another program); it
    now carries the feature penalty's own."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6))
    y = X[:, 0] - np.maximum(X[:, 1], 0.0)
    P = sample_patterns(X, 8, seed=0)
    prog = build_program(X, y, activation="gated_relu", lam=1.0, patterns=P, penalty=FeatureGroupL2())
    sol = prog.solve()
    assert sol.extra["penalty"] == repr(FeatureGroupL2())
    assert 0.0 <= sol.extra["certified_rel_gap"] <= 1e-6
    L = 0.5 * np.sum((sol.train_predict(X) - y) ** 2)
    assert sol.objective_value == pytest.approx(L + 1.0 * sol.program_penalty, rel=1e-8)
    ok = solve_feature_sparse(X, y, penalty=FeatureGroupL2(), lam=0.5, patterns=P, solver="CLARABEL", program=prog)
    assert ok.status == "optimal"
    with pytest.raises(InvalidParameterError, match="penalty FeatureGroupL2.*not SparseGroupL2"):
        solve_feature_sparse(X, y, penalty=SparseGroupL2(0.5), lam=1.0, patterns=P, solver="CLARABEL", program=prog)
    with pytest.raises(InvalidParameterError, match="penalty"):
        solve_feature_sparse(X, y, penalty=FeatureGroupL2(0.3), lam=1.0, patterns=P, solver="CLARABEL", program=prog)
    with pytest.raises(InvalidParameterError, match="loss"):
        solve_feature_sparse(X, y, penalty=FeatureGroupL2(), lam=1.0, patterns=P, solver="CLARABEL", program=prog,
                             loss="huber")
    with pytest.raises(InvalidParameterError, match="other data"):
        solve_feature_sparse(X, 2 * y, penalty=FeatureGroupL2(), lam=1.0, patterns=P, solver="CLARABEL",
                             program=prog)
    plain = build_program(X, y, activation="gated_relu", lam=1.0, patterns=P)
    with pytest.raises(InvalidParameterError, match="penalty None"):
        solve_feature_sparse(X, y, penalty=FeatureGroupL2(), lam=1.0, patterns=P, solver="CLARABEL", program=plain)


def test_feature_path_with_lam_max_zero_explains_the_default_grid():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 3))
    P = sample_patterns(X, 5, seed=0)
    with pytest.raises(InvalidParameterError, match="lam_max is 0.*pass lams"):
        feature_path(X, np.zeros(20), penalty=FeatureGroupL2(), patterns=P, n_lams=3)
    path = feature_path(X, np.zeros(20), penalty=FeatureGroupL2(), patterns=P, lams=[1.0, 0.5])
    assert not np.any(path.supports)
