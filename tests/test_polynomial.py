"""Polynomial-activation networks (docs/polynomial.md): the quadratic program and the
semidefinite lift, the Sturm-Zhang rank-one decomposition, the exact map to networks, the
native solver and the duality-gap certificates."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from cvxnn.errors import (
    ConvergenceWarning,
    InaccurateSolutionWarning,
    InvalidParameterError,
    LabelError,
    NonFiniteError,
    ShapeError,
)
from cvxnn.native.polynomial import (
    max_on_sphere,
    polynomial_dual_norm,
    polynomial_duality_gap,
    solve_quadratic_native,
)
from cvxnn.polynomial import (
    PolynomialNetwork,
    build_polynomial_program,
    build_quadratic_program,
    fit_nonconvex,
    lorentz_matrix,
    network_from_lift,
    network_from_quadratic,
    network_to_lift,
    rank_one_decomposition,
)

# Clarabel's default tolerances are 1e-8 on its scaled problem; objectives agree to about this.
RTOL = 2e-6


def _data(seed=0, n=30, d=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    return X, y


def _lifted_psd(rng, d, r):
    """A random PSD (d+1) x (d+1) matrix of rank r with tr(M_11) = M_22."""
    V = rng.standard_normal((d + 1, r))
    M = V @ V.T
    s = np.sqrt(np.trace(M[:d, :d]) / M[d, d])
    D = np.diag([1.0] * d + [s])
    return D @ M @ D


def _random_network(rng, d, m, a, b, c):
    W = rng.standard_normal((d, m))
    return PolynomialNetwork(W / np.linalg.norm(W, axis=0), rng.standard_normal(m), a, b, c)


# ----------------------------------------------------------------------------- builders
@pytest.mark.parametrize("kind", ["quadratic", "lift"])
def test_builders_return_dpp_problems_with_a_lam_parameter(kind):
    X, y = _data()
    prog = (build_quadratic_program(X, y, lam=0.5) if kind == "quadratic"
            else build_polynomial_program(X, y, a=1.0, b=0.5, c=-0.2, lam=0.5))
    assert isinstance(prog.problem, cp.Problem)
    assert isinstance(prog.lam, cp.Parameter) and prog.lam.name() == "lam" and prog.lam.value == 0.5
    assert prog.problem.is_dpp()
    assert prog.program == kind
    assert all(isinstance(v, cp.Variable) and v.is_psd() for v in prog.variables.values())
    s1 = prog.solve()
    s2 = prog.solve(lam=2.0)
    assert s1.status == s2.status == "optimal" and s2.lam == 2.0
    assert s2.objective > s1.objective  # a larger penalty weight can only raise the value
    # the reported objective is the solver's optimal value, recomputed in numpy
    assert s2.objective == pytest.approx(prog.problem.value, rel=1e-7)


def test_quadratic_program_equals_the_lift_with_pure_square():
    X, y = _data(1)
    sq = build_quadratic_program(X, y, lam=0.7).solve()
    sl = build_polynomial_program(X, y, a=1.0, b=0.0, c=0.0, lam=0.7).solve()
    assert sq.objective == pytest.approx(sl.objective, rel=RTOL)
    np.testing.assert_allclose(sq.predict(X), sl.predict(X), atol=1e-4)


# ----------------------------------------------------------------------------- decomposition
@pytest.mark.parametrize("seed", range(4))
def test_rank_one_decomposition_identities(seed):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 9))
    J = lorentz_matrix(d)
    for r in range(1, d + 2):
        M = _lifted_psd(rng, d, r)
        F = rank_one_decomposition(M)
        assert F.shape == (d + 1, r)
        np.testing.assert_allclose(F @ F.T, M, atol=1e-12 * np.abs(M).max())
        iso = np.einsum("ik,ij,jk->k", F, J, F)
        np.testing.assert_allclose(iso, 0.0, atol=1e-12 * np.trace(M))
        # t_k != 0 for every non-zero isotropic factor: each gives a unit-norm neuron
        assert np.all(np.abs(F[-1]) > 0)


def test_rank_one_decomposition_with_another_J():
    rng = np.random.default_rng(5)
    n = 6
    J = np.diag([3.0, 1.0, 0.5, -1.0, -2.0, 0.0])
    V = rng.standard_normal((n, 4))
    M = V @ V.T
    # make <J, M> = 0 by rescaling the negative coordinates
    pos, neg = np.vdot(J.clip(0), M), -np.vdot(J.clip(None, 0), M)
    D = np.diag([1.0, 1.0, 1.0, np.sqrt(pos / neg), np.sqrt(pos / neg), 1.0])
    M = D @ M @ D
    F = rank_one_decomposition(M, J)
    np.testing.assert_allclose(F @ F.T, M, atol=1e-12 * np.abs(M).max())
    np.testing.assert_allclose(np.einsum("ik,ij,jk->k", F, J, F), 0.0, atol=1e-12 * np.trace(M))


def test_rank_one_decomposition_rejects_impossible_inputs():
    d = 3
    M = np.eye(d + 1)  # tr(M_11) = 3 != M_22 = 1
    with pytest.raises(InvalidParameterError, match="J, M"):
        rank_one_decomposition(M)
    with pytest.raises(InvalidParameterError, match="semidefinite"):
        rank_one_decomposition(-np.eye(2))
    with pytest.raises(ShapeError):
        rank_one_decomposition(np.ones((3, 2)))
    with pytest.raises(NonFiniteError):
        rank_one_decomposition(np.full((2, 2), np.nan))
    assert rank_one_decomposition(np.zeros((4, 4))).shape == (4, 0)


def test_network_lift_round_trip():
    rng = np.random.default_rng(2)
    X, _ = _data(2, n=25, d=5)
    net = _random_network(rng, 5, 7, 0.7, -1.3, 0.4)
    Mp, Mm = network_to_lift(net)
    J = lorentz_matrix(5)
    assert abs(np.vdot(J, Mp)) < 1e-12 * np.trace(Mp) and abs(np.vdot(J, Mm)) < 1e-12 * np.trace(Mm)
    assert Mp[-1, -1] + Mm[-1, -1] == pytest.approx(net.penalty())
    back = network_from_lift(Mp, Mm, net.a, net.b, net.c)
    assert back.n_neurons <= 2 * 6
    np.testing.assert_allclose(np.linalg.norm(back.W, axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(back.predict(X), net.predict(X), atol=1e-10 * np.abs(net.predict(X)).max())
    assert back.penalty() == pytest.approx(net.penalty(), rel=1e-12)


def test_nuclear_norm_is_the_smallest_l1_representation():
    """sum_j |alpha_j| >= ||Z||_* for every unit-norm representation; the eigendecomposition attains it."""
    rng = np.random.default_rng(3)
    net = _random_network(rng, 4, 9, 1.0, 0.0, 0.0)
    Z = net.quadratic_form()
    nuc = np.abs(np.linalg.eigvalsh(Z)).sum()
    assert net.penalty() >= nuc - 1e-12
    eig = network_from_quadratic(Z)
    assert eig.n_neurons <= 4 and eig.penalty() == pytest.approx(nuc)
    X, _ = _data(3, d=4)
    np.testing.assert_allclose(eig.predict(X), net.predict(X), atol=1e-10 * np.abs(net.predict(X)).max())


# ----------------------------------------------------------------------------- exactness
def test_quadratic_network_attains_the_sdp_value():
    X, y = _data(4, n=40, d=5)
    lam = 1.5
    sol = build_quadratic_program(X, y, lam=lam).solve()
    net = sol.to_network()
    assert net.n_neurons <= 5
    assert net.objective(X, y, lam=lam) == pytest.approx(sol.objective, rel=RTOL)
    cert = polynomial_duality_gap(net, X, y, lam=lam)
    assert 0 <= cert.gap <= RTOL * abs(cert.primal)


@pytest.mark.parametrize("abc", [(1.0, -0.5, 0.3), (-0.8, 1.0, 0.0), (0.5, 0.0, 1.0), (0.0, 1.0, -0.5)])
def test_general_network_attains_the_sdp_value(abc):
    a, b, c = abc
    X, y = _data(5, n=30, d=4)
    lam = 0.8
    sol = build_polynomial_program(X, y, a=a, b=b, c=c, lam=lam).solve()
    net = sol.to_network()
    assert net.n_neurons <= 2 * (4 + 1)
    np.testing.assert_allclose(net.predict(X), sol.predict(X), atol=1e-5 * max(1.0, np.abs(y).max()))
    assert net.objective(X, y, lam=lam) == pytest.approx(sol.objective, rel=RTOL)
    # without the rank threshold the map is exact for the point as returned
    exact = sol.to_network(rank_tol=0.0)
    assert exact.objective(X, y, lam=lam) == pytest.approx(sol.objective, rel=1e-9)
    assert exact.n_neurons >= net.n_neurons
    # certified: no network of any width does better (weak duality)
    cert = polynomial_duality_gap(net, X, y, lam=lam)
    assert cert.dual <= sol.objective + 1e-9 and cert.rel_gap <= 1e-5


def test_nonconvex_training_never_beats_the_sdp():
    X, y = _data(6, n=25, d=3)
    a, b, c, lam = 1.0, -0.5, 0.3, 0.5
    p_star = build_polynomial_program(X, y, a=a, b=b, c=c, lam=lam).solve().objective
    values = [fit_nonconvex(X, y, width=w, a=a, b=b, c=c, lam=lam, seed=s).objective(X, y, lam=lam)
              for s, w in enumerate((1, 2, 4, 8, 8))]
    assert min(values) >= p_star * (1 - RTOL)
    # a narrow network is strictly worse here; a wide one reaches the SDP value
    assert values[0] > p_star * (1 + 1e-3)
    assert min(values) <= p_star * (1 + 1e-4)


def test_weight_decay_induces_a_concave_penalty():
    """With weight decay lam/2 (||w||^2 + alpha^2) and sigma = t^2, the cheapest neuron with
    coefficient gamma = alpha ||w||^2 costs (3 2^(1/3) / 4) lam gamma^(2/3) (docs/polynomial.md)."""
    lam = 0.7
    for gamma in (0.1, 1.0, 7.0):
        cost = minimize_scalar(lambda logu, g=gamma: lam / 2 * (np.exp(logu) + g**2 / np.exp(logu) ** 2),
                               bounds=(-20, 20), method="bounded", options={"xatol": 1e-12}).fun
        assert cost == pytest.approx(0.75 * 2 ** (1 / 3) * lam * gamma ** (2 / 3), rel=1e-8)
    # one neuron is cheaper than two halves: the penalty is not a norm (not convex)
    assert 2 * (0.5) ** (2 / 3) > 1.0


# ----------------------------------------------------------------------------- native
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_native_quadratic_matches_clarabel(loss):
    X, y = _data(7, n=40, d=5)
    if loss == "logistic":
        y = np.where(y >= 0, 1.0, -1.0)
    for lam in (0.3, 3.0):
        ref = build_quadratic_program(X, y, loss=loss, lam=lam).solve()
        nat = solve_quadratic_native(X, y, loss=loss, lam=lam, tol=1e-9)
        assert nat.status == "optimal" and nat.rel_gap <= 1e-9 and nat.solver == "native"
        assert nat.objective == pytest.approx(ref.objective, rel=RTOL)
        assert nat.dual_value <= ref.objective * (1 + 1e-8)
        cert = polynomial_duality_gap(nat, X, y, lam=lam, loss=loss)
        assert cert.rel_gap <= 1e-8
        net = nat.to_network()
        assert net.objective(X, y, loss, lam) == pytest.approx(nat.objective, rel=1e-10)


def test_native_warm_start_and_iteration_limit():
    X, y = _data(8, n=30, d=4)
    with pytest.warns(ConvergenceWarning):
        rough = solve_quadratic_native(X, y, lam=0.2, tol=1e-12, max_iter=3)
    assert rough.status == "max_iterations" and rough.iterations == 3
    cold = solve_quadratic_native(X, y, lam=0.2, tol=1e-8)
    warm = solve_quadratic_native(X, y, lam=0.2, tol=1e-8, Z0=cold.Z)
    assert warm.status == "optimal" and warm.iterations < cold.iterations
    assert warm.objective == pytest.approx(cold.objective, rel=1e-7)


# ----------------------------------------------------------------------------- certificates
def test_max_on_sphere_is_the_global_maximum():
    rng = np.random.default_rng(9)
    W = rng.standard_normal((3, 20000))
    W /= np.linalg.norm(W, axis=0)
    for trial in range(6):
        A = rng.standard_normal((3, 3))
        A = A + A.T
        g = rng.standard_normal(3) * (trial % 3)  # includes g = 0 (the hard case)
        val, w = max_on_sphere(A, g, 0.2)
        sampled = (np.einsum("ik,ij,jk->k", W, A, W) + g @ W + 0.2).max()
        assert np.linalg.norm(w) == pytest.approx(1.0)
        assert val == pytest.approx(w @ A @ w + g @ w + 0.2)
        assert sampled <= val + 1e-12 and val - sampled < 1e-2
    # hard case with a non-zero g orthogonal to the top eigenvector
    val, w = max_on_sphere(np.diag([2.0, 0.0]), np.array([0.0, 1.0]))
    assert val == pytest.approx(2.0 + 1.0 / 8.0)
    # quadratic activation: the dual norm is the spectral norm of X^T diag(theta) X
    X, theta = rng.standard_normal((10, 4)), rng.standard_normal(10)
    spec = np.abs(np.linalg.eigvalsh(X.T @ (theta[:, None] * X))).max()
    assert polynomial_dual_norm(X, theta, 1.0, 0.0, 0.0) == pytest.approx(spec)


def test_certificate_bounds_any_network():
    X, y = _data(10, n=20, d=3)
    rng = np.random.default_rng(10)
    lam = 0.4
    p_star = build_polynomial_program(X, y, a=1.0, b=0.3, c=-0.2, lam=lam).solve().objective
    for _ in range(5):
        net = _random_network(rng, 3, 4, 1.0, 0.3, -0.2)
        cert = polynomial_duality_gap(net, X, y, lam=lam)
        assert cert.primal == pytest.approx(net.objective(X, y, lam=lam))
        assert cert.dual <= p_star * (1 + 1e-8) and cert.gap >= 0


# ----------------------------------------------------------------------------- input errors
def test_typed_errors_on_bad_input():
    X, y = _data(11)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        build_quadratic_program(Xn, y)
    with pytest.raises(ShapeError):
        build_polynomial_program(X, y[:-1])
    with pytest.raises(InvalidParameterError):
        build_quadratic_program(X, y, lam=-1.0)
    with pytest.raises(NonFiniteError):
        build_quadratic_program(X, y, lam=np.nan)
    with pytest.raises(InvalidParameterError, match="identically zero"):
        build_polynomial_program(X, y, a=0.0, b=0.0, c=0.0)
    with pytest.raises(NonFiniteError):
        build_polynomial_program(X, y, a=np.inf)
    with pytest.raises(InvalidParameterError):
        build_polynomial_program(X, y, a="one")
    with pytest.raises(InvalidParameterError, match="unknown loss"):
        build_quadratic_program(X, y, loss="nope")
    with pytest.raises(LabelError):
        build_quadratic_program(X, y, loss="logistic")  # labels must be +-1
    with pytest.raises(InvalidParameterError, match="native"):
        solve_quadratic_native(X, y, loss="absolute")
    with pytest.raises(InvalidParameterError, match="unit norm"):
        PolynomialNetwork(np.ones((2, 1)), [1.0])
    with pytest.raises(ShapeError):
        PolynomialNetwork(np.eye(2), [1.0])
    with pytest.raises(InvalidParameterError):
        build_quadratic_program(X, y).solve(solver="NO_SUCH_SOLVER")


def test_solver_status_is_surfaced():
    X, y = _data(12)
    prog = build_polynomial_program(X, y, a=1.0, b=1.0, c=1.0, lam=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateSolutionWarning)
        with pytest.raises(InaccurateSolutionWarning):
            prog.solve("SCS", max_iters=5, eps_abs=1e-12, eps_rel=1e-12)
    with pytest.warns(InaccurateSolutionWarning):
        sol = prog.solve("SCS", max_iters=5, eps_abs=1e-12, eps_rel=1e-12)
    assert sol.status in ("optimal_inaccurate", "max_iterations") and not sol.converged


def test_native_options_and_warm_starts_are_checked():
    from cvxnn.errors import InvalidParameterError as IPE
    from cvxnn.errors import NonFiniteError as NFE

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 3)), rng.standard_normal(10)
    with pytest.raises(NFE):
        solve_quadratic_native(X, y, lam=0.1, Z0=np.full((3, 3), np.nan))
    with pytest.raises(IPE):
        solve_quadratic_native(X, y, lam=0.1, Z0="a")
    with pytest.raises(IPE, match="tol"):
        solve_quadratic_native(X, y, lam=0.1, tol="x")
    with pytest.raises(IPE, match="callback"):
        solve_quadratic_native(X, y, lam=0.1, callback=3)
    with pytest.raises(NFE):
        polynomial_dual_norm(X, np.full(10, np.nan), 1.0, 0.0, 0.0)


def test_rank_one_decomposition_at_extreme_scales_and_checked_tol():
    """c M decomposes into sqrt(c) times M's vectors at any scale (1e-170 gave NaN, 1e160
    anisotropic vectors), and tol is validated (NaN skipped every check)."""
    from cvxnn.errors import InvalidParameterError, NonFiniteError
    from cvxnn.polynomial import lorentz_matrix, network_from_lift, rank_one_decomposition

    ok = np.diag([1.0, 0.0, 1.0])  # tr(M_11) = M_22
    J = lorentz_matrix(2)
    for scale in (1e-170, 1.0, 1e160):
        F = rank_one_decomposition(ok * scale)
        assert np.all(np.isfinite(F))
        np.testing.assert_allclose(F @ F.T / scale, ok, atol=1e-12)
        assert np.abs(np.einsum("ik,ij,jk->k", F, J, F)).max() <= 1e-12 * scale
        net = network_from_lift(ok * scale, np.zeros((3, 3)), 1.0, 0.0, 0.0)
        assert net.W.shape[1] >= 1 and np.isclose(net.alpha.sum(), scale, rtol=1e-12)
    assert rank_one_decomposition(np.zeros((3, 3))).shape == (3, 0)
    with pytest.raises(NonFiniteError):
        rank_one_decomposition(np.diag([1.0, 0.0, 0.0]), tol=float("nan"))
    with pytest.raises(InvalidParameterError):
        rank_one_decomposition(ok, tol="x")
    with pytest.raises(InvalidParameterError, match="tol"):
        rank_one_decomposition(ok, tol=-1)


def test_polynomial_helpers_refuse_bad_input_with_typed_errors():
    from cvxnn.errors import CvxnnError, InvalidParameterError
    from cvxnn.native.polynomial import max_on_sphere, polynomial_dual_norm, solve_quadratic_native
    from cvxnn.polynomial import fit_nonconvex, lift_features, lorentz_matrix

    X = np.random.default_rng(0).standard_normal((10, 2))
    for call in (lambda: lorentz_matrix(-1), lambda: max_on_sphere(np.full((2, 2), np.nan), np.ones(2)),
                 lambda: max_on_sphere(np.zeros((0, 0)), np.ones(0)), lambda: max_on_sphere(np.eye(2), np.ones(3)),
                 lambda: polynomial_dual_norm(X, "abc", 1, 0, 0),
                 lambda: fit_nonconvex(X, np.ones(10), width=2, seed=0, init_scale="x"),
                 lambda: lift_features(X, np.nan, 0, 0)):
        with pytest.raises(CvxnnError):
            call()
    with pytest.raises(InvalidParameterError, match="build_quadratic_program"):  # could never certify
        solve_quadratic_native(X, np.ones(10), lam=0)
    value, w = max_on_sphere(np.diag([2.0, 1.0]), np.zeros(2))
    assert value == pytest.approx(2.0) and np.linalg.norm(w) == pytest.approx(1.0)


def test_infeasible_points_never_undercut_networks():
    """An unconverged quadratic point with P, N not PSD reported tr P + tr N, below every network
    with its Z (a negative duality gap on wine); network_from_lift mapped M+ = I (not a lift) to
    a network predicting something else, silently."""
    import warnings

    from cvxnn import get_loss
    from cvxnn.errors import InvalidParameterError
    from cvxnn.native.polynomial import polynomial_duality_gap
    from cvxnn.polynomial import build_quadratic_program, lift_features, network_from_lift, quadratic_solution

    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 4))
    y = np.sign(rng.standard_normal(30))
    Z = rng.standard_normal((4, 4))
    Z = Z + Z.T
    P, N = Z, np.zeros((4, 4))  # not PSD: P - N = Z, tr P + tr N = tr Z below ||Z||_*
    assert np.trace(Z) < np.abs(np.linalg.eigvalsh(Z)).sum()
    sol = quadratic_solution(Z, X, y, get_loss("logistic"), 1.0, P=P, N=N, status="max_iterations")
    assert sol.penalty == pytest.approx(np.abs(np.linalg.eigvalsh(Z)).sum())
    assert sol.objective == pytest.approx(sol.to_network(rank_tol=0).objective(X, y, "logistic", 1.0), rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rough = build_quadratic_program(X, y, lam=1.0, loss="logistic").solve(max_iter=2)
    assert polynomial_duality_gap(rough, X, y, lam=1.0, loss="logistic").gap >= 0.0
    with pytest.raises(InvalidParameterError, match="not a lifted point"):
        network_from_lift(np.eye(4), np.zeros((4, 4)), 1.0, 0.0, 0.0)
    with pytest.raises(InvalidParameterError, match="M_minus is not a lifted point"):
        network_from_lift(np.zeros((4, 4)), -np.diag([1.0, 1.0, 1.0, 3.0]), 1.0, 0.0, 0.0)
    loose = network_from_lift(np.eye(4), np.zeros((4, 4)), 1.0, 0.0, 0.0, check=False)
    X3 = X[:, :3]
    assert not np.allclose(loose.predict(X3), lift_features(X3, 1.0, 0.0, 0.0) @ np.eye(4).ravel())
