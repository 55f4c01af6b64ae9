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
