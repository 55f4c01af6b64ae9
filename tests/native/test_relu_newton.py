"""The working-set barrier / face-Newton solver for C-ReLU: every smooth loss, scalar and the
one-vs-all vector program, certified and in agreement with Clarabel on small problems."""

import numpy as np
import pytest

from cvxnn import build_program, sample_patterns
from cvxnn.losses import HuberLoss
from cvxnn.native import solve_native
from cvxnn.native.certificates import duality_gap
from cvxnn.vector import build_vector_program


def _data(seed, n=40, d=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    t = np.maximum(X @ rng.standard_normal(d), 0) - np.maximum(X @ rng.standard_normal(d), 0)
    return X, t


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_scalar_losses_certified_and_match_clarabel(seed, loss):
    X, t = _data(seed)
    y = np.where(t > np.median(t), 1.0, -1.0) if loss == "logistic" else t
    pats = sample_patterns(X, 12, seed=seed, bias=True)
    lam = 0.5
    sol = solve_native(X, y, pats, activation="relu", loss=loss, lam=lam, tol=1e-8, feas_tol=1e-10)
    assert sol.solver == "working_set" and sol.status == "optimal"
    assert sol.rel_gap <= 1e-8 and sol.max_violation <= 1e-10
    ref = build_program(X, y, activation="relu", loss=loss, lam=lam, patterns=pats).solve()
    # the certificate bounds the distance to the optimum; Clarabel is accurate to ~1e-8
    assert sol.objective_value <= ref.objective_value + 1e-6 * abs(ref.objective_value)
    assert sol.objective_value >= ref.objective_value - 1e-6 * abs(ref.objective_value)
    # an independent recomputation of the certificate agrees
    cert = duality_gap(X, y, sol, lam, loss, multipliers=sol.multipliers)
    assert cert.rel_gap <= 1e-7
    # the mapped network attains the objective exactly
    net = sol.to_network()
    assert np.isclose(net.objective(X, y, lam, loss), sol.objective_value, rtol=1e-9, atol=1e-12)


def test_huber_loss_certified():
    X, t = _data(5)
    pats = sample_patterns(X, 10, seed=1, bias=True)
    loss = HuberLoss(delta=0.5)
    sol = solve_native(X, t, pats, activation="relu", loss=loss, lam=0.3, tol=1e-7)
    assert sol.status == "optimal" and sol.solver == "working_set"
    ref = build_program(X, t, activation="relu", loss=loss, lam=0.3, patterns=pats).solve()
    assert abs(sol.objective_value - ref.objective_value) <= 1e-5 * abs(ref.objective_value)


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_vector_one_vs_all_matches_clarabel_and_network(loss):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 2))
    labels = np.argmax(X @ rng.standard_normal((2, 3)) + 0.3 * rng.standard_normal((30, 3)), axis=1)
    Y = np.eye(3)[labels]
    pats = sample_patterns(X, 8, seed=0, bias=True)
    lam = 0.5
    sol = solve_native(X, Y, pats, activation="relu", loss=loss, lam=lam, tol=1e-8)
    assert sol.solver == "working_set" and sol.status == "optimal"
    assert sol.formulation == "one_vs_all"
    ref = build_vector_program(X, Y, activation="relu", loss=loss, lam=lam, patterns=pats,
                               formulation="one_vs_all").solve()
    assert abs(sol.objective_value - ref.objective_value) <= 1e-5 * abs(ref.objective_value)
    # the one-vs-all value is the objective of the network it maps to, or above it
    net = sol.to_network()
    assert net.objective(X, Y, lam, loss) <= sol.objective_value * (1 + 1e-9) + 1e-12


def test_nuclear_vector_program_goes_to_the_al():
    X, _ = _data(1, n=20, d=2)
    Y = np.abs(np.random.default_rng(0).standard_normal((20, 2)))
    pats = sample_patterns(X, 4, seed=0)
    from cvxnn.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="one_vs_all"):
        solve_native(X, Y, pats, activation="relu", solver="working_set", formulation="nuclear")


@pytest.mark.parametrize("loss", ["logistic", "cross_entropy"])
def test_cg_newton_step_solves_the_dense_barrier_system(loss):
    """The matrix-free CG step (rank-one penalty curvature, half-triangle preconditioner) solves
    the same system as the formed barrier Hessian."""
    from cvxnn.losses import get_loss
    from cvxnn.native import ipm
    from cvxnn.native._losses import make_kernel

    rng = np.random.default_rng(3)
    n, d, c = 50, 4, (3 if loss == "cross_entropy" else 1)
    Xa = np.c_[rng.standard_normal((n, d - 1)), np.ones(n)]
    pats = sample_patterns(Xa[:, :-1], 6, seed=1, bias=True)
    M = pats.mask.astype(float)
    S = 2.0 * M - 1.0
    Y = np.eye(c)[rng.integers(0, c, n)] if c > 1 else np.where(rng.standard_normal((n, 1)) > 0, 1.0, -1.0)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    p = M.shape[1]
    cols = np.array([0, 3, p + 1, p + 5, 2])
    outs = np.arange(cols.size) % c
    XX = (Xa[:, :, None] * Xa[:, None, :]).reshape(n, d * d)
    B = ipm._Blocks(Xa, M, S, cols, outs, c, XX)
    U = np.column_stack([pats.gates[:, j % p] * (1 + j) for j in cols])  # strictly inside (gates)
    XU, slack, Z = B.images(U)
    mu, lam = 1e-2, 0.7
    r = np.linalg.norm(U, axis=0)
    _, _, a, b = ipm._psi(r, mu, lam)
    uh = U / r
    Wc = mu / slack**2
    rhs = rng.standard_normal((d, cols.size))
    x = ipm._newton_cg(B, kernel, Z, Wc, (a, b - a, uh), rhs)
    H = ipm._loss_hessian(B, kernel, Z)
    Hp = a[:, None, None] * np.eye(d) + (b - a)[:, None, None] * np.einsum("dk,ek->kde", uh, uh)
    Hblk = (Wc.T @ XX).reshape(cols.size, d, d) + Hp
    for j in range(cols.size):
        H[j * d:(j + 1) * d, j * d:(j + 1) * d] += Hblk[j]
    ref = np.linalg.solve(H, rhs.T.reshape(-1)).reshape(cols.size, d).T
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-2 * np.abs(ref).max())
    # CG_TOL bounds the relative residual
    res = H @ x.T.reshape(-1) - rhs.T.reshape(-1)
    assert np.linalg.norm(res) <= 1.01 * ipm.CG_TOL * np.linalg.norm(rhs)
