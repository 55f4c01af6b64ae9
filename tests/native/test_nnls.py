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


def _cone_family(seed, n=200, d=8, k=30):
    """NNLS problems of the KKT scan: cones with rows ``s_r x_r`` (signs of random gates)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    S = np.where(X @ rng.standard_normal((d, k)) > 0, 1.0, -1.0)
    C = rng.standard_normal((d, k))
    exact = np.array([nnls((S[:, j, None] * X).T, C[:, j], maxiter=50 * (n + 1))[1] for j in range(k)])
    return X, S, C, exact


def test_batched_admm_bounds_and_converges():
    """The batch never leaves the non-negative orthant, reports the residual of the point it
    returns, never does worse than its start or better than the exact NNLS, and converges."""
    from cvxnn.native.nnls import nnls_batched_admm

    X, S, C, exact = _cone_family(3)
    R0 = np.zeros_like(S)
    start = np.linalg.norm(C, axis=0)
    R, res = nnls_batched_admm(X, S, C, R0, iterations=1000, min_progress=0.0)
    assert R.dtype == np.float64 and np.all(R >= 0)
    np.testing.assert_allclose(res, np.linalg.norm(X.T @ (S * R) - C, axis=0), rtol=1e-12, atol=1e-12)
    assert np.all(res <= start + 1e-12)
    assert np.all(res >= exact - 1e-9)
    assert np.median(res - exact) <= 1e-8 * np.median(start)  # most problems solved exactly
    assert np.all(res <= exact + 0.1 * start)
    # the multipliers vanish off the active rows: sparse where the projection is not zero (a
    # correlation inside the dual cone has many multipliers), as Lawson-Hanson's warm start wants
    proj = exact > 1e-3 * start
    assert proj.sum() >= 10
    assert np.median(np.count_nonzero(R[:, proj], axis=0)) <= X.shape[1] + 2
    # with a target, decided problems stop early but keep a residual at or below it
    target = float(np.median(exact)) * 1.5
    R2, res2 = nnls_batched_admm(X, S, C, R0, iterations=1000, target=target, min_progress=0.0)
    assert np.all((res2 <= target) | (res2 >= exact - 1e-9))
    assert np.sum(res2 <= target) >= np.sum(exact <= 0.5 * target)


def test_batched_admm_warm_start_and_decided_problems():
    """From the exact multipliers it stays exact; problems already at the target, or a zero
    iteration budget, return their start unchanged."""
    from cvxnn.native.nnls import nnls_batched_admm

    X, S, C, exact = _cone_family(5)
    Rex = np.stack([nnls((S[:, j, None] * X).T, C[:, j], maxiter=50 * 201)[0] for j in range(C.shape[1])], axis=1)
    R, res = nnls_batched_admm(X, S, C, Rex, iterations=100, min_progress=0.0)
    np.testing.assert_allclose(res, exact, rtol=1e-9, atol=1e-12)
    R, res = nnls_batched_admm(X, S, C, Rex, iterations=100, target=float(exact.max()) + 1.0)
    np.testing.assert_array_equal(R, Rex)
    R, res = nnls_batched_admm(X, S, C, np.zeros_like(S), iterations=0)
    np.testing.assert_array_equal(R, 0.0)
    np.testing.assert_allclose(res, np.linalg.norm(C, axis=0))


@pytest.mark.parametrize("relax", [1.0, 1.6])
def test_batched_admm_in_float32_reports_float64_residuals(relax):
    """Iterating in float32 is a search only: the residuals returned are those of the returned
    points in float64 (exact upper bounds), and the search reaches what float64 reaches."""
    from cvxnn.native.nnls import nnls_batched_admm

    X, S, C, exact = _cone_family(4, n=300, d=10, k=40)
    R0 = np.zeros_like(S)
    R32, res32 = nnls_batched_admm(X, S, C, R0, iterations=500, min_progress=0.0, relax=relax, dtype=np.float32)
    R64, res64 = nnls_batched_admm(X, S, C, R0, iterations=500, min_progress=0.0, relax=relax)
    assert R32.dtype == np.float64 and np.all(R32 >= 0)
    np.testing.assert_allclose(res32, np.linalg.norm(X.T @ (S * R32) - C, axis=0), rtol=1e-12, atol=1e-12)
    assert np.all(res32 >= exact - 1e-9)
    assert np.all(res32 <= np.linalg.norm(C, axis=0) + 1e-9)
    assert np.all(res32 <= res64 + 1e-4 * np.linalg.norm(C, axis=0))


def test_batched_admm_rejects_bad_input():
    from cvxnn.errors import InvalidParameterError, NonFiniteError, ShapeError
    from cvxnn.native.nnls import nnls_batched_admm

    X, S, C, _ = _cone_family(6, n=20, d=3, k=4)
    R0 = np.zeros_like(S)
    with pytest.raises(ShapeError, match="C"):
        nnls_batched_admm(X, S, C[:, :3], R0, iterations=10)
    with pytest.raises(ShapeError, match="2-D"):
        nnls_batched_admm(X[:, 0], S, C, R0, iterations=10)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteError, match="X"):
        nnls_batched_admm(bad, S, C, R0, iterations=10)
    with pytest.raises(InvalidParameterError, match="iterations"):
        nnls_batched_admm(X, S, C, R0, iterations=-1)
    with pytest.raises(InvalidParameterError, match="rho_scale"):
        nnls_batched_admm(X, S, C, R0, iterations=10, rho_scale=0.0)
    with pytest.raises(InvalidParameterError, match="relax"):
        nnls_batched_admm(X, S, C, R0, iterations=10, relax=2.0)


def test_batched_admm_on_empty_or_zero_designs_returns_the_start():
    """No problems, no rows, or X = 0: nothing can move a residual; the start comes back."""
    from cvxnn.native.nnls import nnls_batched_admm

    R, res = nnls_batched_admm(np.ones((5, 3)), np.ones((5, 0)), np.zeros((3, 0)), np.zeros((5, 0)), iterations=10)
    assert R.shape == (5, 0) and res.shape == (0,)
    C = np.ones((3, 2))
    for X in (np.zeros((0, 3)), np.zeros((4, 3))):
        S = np.ones((X.shape[0], 2))
        R, res = nnls_batched_admm(X, S, C, np.zeros_like(S), iterations=10)
        assert np.all(np.isfinite(R)) and np.all(R == 0.0)
        np.testing.assert_allclose(res, np.sqrt(3.0))
