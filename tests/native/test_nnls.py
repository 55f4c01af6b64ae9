"""Warm-started Lawson-Hanson (cvxnn.native.nnls) against SciPy's NNLS."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from cvxnn.native.nnls import nnls_warm


def _kkt(A, b, x, tol):
    """NNLS optimality: x >= 0, gradient A^T (b - A x) <= 0 off the support and = 0 on it."""
    w = A.T @ (b - A @ x)
    assert np.all(x >= 0)
    assert np.all(w[x == 0] <= tol)
    assert np.allclose(w[x > 0], 0.0, atol=tol)


@pytest.mark.parametrize("seed", range(40))
def test_matches_scipy_cold_and_warm(seed):
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(2, 30)), int(rng.integers(1, 120))
    A = rng.standard_normal((m, n))
    if seed % 3 == 0:
        A[:, : n // 2] = A[:, [0]]  # repeated columns: a non-unique solution
    b = rng.standard_normal(m) * float(rng.choice([1e-3, 1.0, 1e3]))
    x_ref, r_ref = nnls(A, b, maxiter=50 * (n + 1))
    scale = max(1.0, float(np.linalg.norm(A)) * float(np.linalg.norm(b)))
    for x0 in (None, x_ref, np.maximum(x_ref + 0.3 * rng.standard_normal(n), 0.0),
               rng.random(n)):  # no, exact, perturbed and all-positive starts
        x, r = nnls_warm(A, b, x0)
        assert r <= r_ref + 1e-10 * max(1.0, float(np.linalg.norm(b)))
        assert r == pytest.approx(np.linalg.norm(A @ x - b))
        _kkt(A, b, x, 1e-8 * scale)


def test_warm_start_on_a_moved_target_reaches_the_new_solution():
    """The use in the KKT scan: the same cone, a slightly different correlation."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 12))
    S = np.where(X @ rng.standard_normal(12) > 0, 1.0, -1.0)
    A = (S[:, None] * X).T
    c = -A @ np.maximum(rng.standard_normal(400), 0) * 0.01 + rng.standard_normal(12)
    x1, _ = nnls(A, c, maxiter=50 * 401)
    c2 = c + 1e-2 * rng.standard_normal(12)
    x2, r2 = nnls_warm(A, c2, x1)
    x_ref, r_ref = nnls(A, c2, maxiter=50 * 401)
    assert r2 == pytest.approx(r_ref, rel=1e-9, abs=1e-12)


def test_batched_projected_gradient_decides_by_residual():
    """The batch never leaves the non-negative orthant, never reports a residual it did not
    reach, never does worse than its start, and approaches the exact NNLS residual."""
    from cvxnn.native.nnls import nnls_batched_pg

    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 8))
    S = np.where(X @ rng.standard_normal((8, 30)) > 0, 1.0, -1.0)
    C = rng.standard_normal((8, 30))
    R0 = np.zeros((200, 30))
    start = np.linalg.norm(C, axis=0)
    R, res = nnls_batched_pg(X, S, C, R0, lipschitz=np.linalg.norm(X, 2) ** 2, iterations=3000,
                             min_progress=0.0)
    assert np.all(R >= 0)
    assert np.allclose(res, np.linalg.norm(X.T @ (S * R) - C, axis=0))
    assert np.all(res <= start + 1e-12)
    exact = np.array([nnls((S[:, k, None] * X).T, C[:, k], maxiter=50 * 201)[1] for k in range(30)])
    assert np.all(res >= exact - 1e-9)
    assert np.all(res <= exact + 0.1 * start)  # first order: close, not exact
    assert np.median(res - exact) <= 1e-3 * np.median(start)
    # with a target, decided problems stop early but keep a residual at or below it
    target = float(np.median(exact)) * 1.5
    R2, res2 = nnls_batched_pg(X, S, C, R0, lipschitz=np.linalg.norm(X, 2) ** 2, iterations=3000,
                               target=target, min_progress=0.0)
    assert np.all((res2 <= target) | (res2 >= exact - 1e-9))
    assert np.sum(res2 <= target) >= np.sum(exact <= 0.5 * target)


def test_batched_projected_gradient_in_float32_reports_float64_residuals():
    """Iterating in float32 is a search only: the residuals returned are those of the returned
    points in float64 (exact upper bounds), and the search reaches what float64 reaches."""
    from cvxnn.native.nnls import nnls_batched_pg

    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 10))
    S = np.where(X @ rng.standard_normal((10, 40)) > 0, 1.0, -1.0)
    C = rng.standard_normal((10, 40))
    R0 = np.zeros((300, 40))
    L = np.linalg.norm(X, 2) ** 2
    R32, res32 = nnls_batched_pg(X, S, C, R0, lipschitz=L, iterations=500, min_progress=0.0, dtype=np.float32)
    R64, res64 = nnls_batched_pg(X, S, C, R0, lipschitz=L, iterations=500, min_progress=0.0)
    assert R32.dtype == np.float64 and np.all(R32 >= 0)
    np.testing.assert_allclose(res32, np.linalg.norm(X.T @ (S * R32) - C, axis=0), rtol=1e-12, atol=1e-12)
    assert np.all(res32 <= np.linalg.norm(C, axis=0) + 1e-9)
    assert np.all(res32 <= res64 + 1e-4 * np.linalg.norm(C, axis=0))
