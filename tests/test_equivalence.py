"""The global-optimality theorem, numerically [PE20]: with every activation pattern, the C-ReLU
optimum is a lower bound on every non-convex network's objective, and the mapped network attains it."""

import numpy as np
import pytest
from scipy.optimize import minimize

from cvxnn import ReLUNetwork, build_program, enumerate_patterns


def nc_objective_and_grad(theta, X, y, lam, m):
    d = X.shape[1]
    W1 = theta[: d * m].reshape(d, m)
    b1 = theta[d * m : d * m + m]
    w2 = theta[d * m + m :]
    Z = X @ W1 + b1
    H = np.maximum(Z, 0.0)
    r = H @ w2 - y
    f = 0.5 * r @ r + 0.5 * lam * (theta @ theta)
    G = np.outer(r, w2) * (Z > 0)
    grad = np.concatenate([(X.T @ G).ravel(), G.sum(axis=0), H.T @ r]) + lam * theta
    return f, grad


def local_minima(X, y, lam, m, restarts, seed):
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    values, nets = [], []
    for _ in range(restarts):
        theta0 = rng.standard_normal(d * m + 2 * m) * rng.choice([0.1, 1.0, 3.0])
        res = minimize(nc_objective_and_grad, theta0, args=(X, y, lam, m), jac=True, method="L-BFGS-B",
                       options={"maxiter": 1500, "gtol": 1e-10})
        th = res.x
        net = ReLUNetwork(W1=th[: d * m].reshape(d, m), b1=th[d * m : d * m + m], w2=th[d * m + m :])
        values.append(net.objective(X, y, lam))
        nets.append(net)
    return np.array(values), nets


@pytest.mark.parametrize("seed", [0, 1])
def test_convex_optimum_lower_bounds_every_local_minimum(seed):
    rng = np.random.default_rng(seed)
    n = 6
    X = rng.uniform(-1, 1, size=(n, 2))
    y = rng.standard_normal(n)
    lam = 0.05
    pats = enumerate_patterns(X, bias=True)  # the whole hyperplane arrangement
    sol = build_program(X, y, activation="relu", lam=lam, patterns=pats).solve(
        tol_feas=1e-10, tol_gap_abs=1e-10, tol_gap_rel=1e-10
    )
    p_star = sol.objective_value
    values, _ = local_minima(X, y, lam, m=n + 1, restarts=12, seed=seed)
    # Theorem: no network of any width does better than the convex optimum.
    assert values.min() >= p_star - 1e-7 * max(1.0, p_star)
    # The mapped network attains the convex optimum (it is a global minimiser).
    net = sol.to_network()
    assert net.objective(X, y, lam) == pytest.approx(p_star, rel=1e-8)
    # Local search stalls above it: spurious local minima / saddles exist.
    assert values.max() > p_star * (1 + 1e-3)


def test_gated_relu_lower_bounds_relu_with_all_patterns():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, size=(7, 2))
    y = rng.standard_normal(7)
    pats = enumerate_patterns(X, bias=True)
    relu = build_program(X, y, activation="relu", lam=0.1, patterns=pats).solve().objective_value
    gated = build_program(X, y, activation="gated_relu", lam=0.1, patterns=pats).solve().objective_value
    assert gated <= relu * (1 + 1e-7)
