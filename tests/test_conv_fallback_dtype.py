"""The compute dtype of the convolutional R-FISTA runs (docs/conv.md, "Native solver").

``solve_conv_native(solver="auto")`` falls back to R-FISTA when the float64 pooled design of the
Newton solver does not fit ``memory_budget``; that run uses the requested ``dtype``, and a float32
run is certified (and if needed continued) in float64, as in the fully connected ``solve_native``.
"""

from __future__ import annotations

import numpy as np
import pytest

import cvxnn.native.conv as native_conv
from cvxnn.conv import PooledDesign, conv_certificate, extract_patches, pooled_blocks
from cvxnn.errors import MemoryBudgetError
from cvxnn.native.conv import solve_conv_native
from cvxnn.operators import ImplicitDesign
from cvxnn.patterns import sample_patterns

#: 20 images of 5x5, 3x3 patches (K = 9), 6 gates: the float64 pooled design and its chunk take
#: 30,240 bytes, so a 20,000-byte budget sends solver="auto" to R-FISTA, matrix-free.
KW = dict(image_shape=(5, 5), patch_size=3, lam=0.5, n_gates=6, seed=0)
FALLBACK_BUDGET = 20_000


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((20, 25)), rng.standard_normal(20)
    optimum = solve_conv_native(X, y, tol=1e-12, **KW)  # Newton, float64
    assert optimum.solver == "newton" and optimum.converged
    return X, y, optimum.objective_value


@pytest.fixture
def rfista_dtypes(monkeypatch):
    """The dtype of every R-FISTA run of solve_conv_native."""
    seen: list[np.dtype] = []
    real = native_conv.solve_gated

    def spy(problem, U0, **kw):
        seen.append(np.dtype(problem.op.dtype))
        return real(problem, U0, **kw)

    monkeypatch.setattr(native_conv, "solve_gated", spy)
    return seen


def _check_certified(sol, X, y, p_star, tol):
    """The reported values are float64 ones: the objective of the returned blocks, a dual value
    below the optimum, and "optimal" only with a gap within tol."""
    assert sol.objective_value == pytest.approx(sol.objective(X, y, KW["lam"]), rel=1e-12)
    assert sol.dual_value <= p_star * (1 + 1e-12)
    assert sol.gap == pytest.approx(sol.objective_value - sol.dual_value, rel=1e-9, abs=1e-15)
    if sol.status == "optimal":
        assert sol.gap <= tol * abs(sol.objective_value)


def test_auto_fallback_runs_rfista_in_float32(data, rfista_dtypes):
    X, y, p_star = data
    sol = solve_conv_native(X, y, memory_budget=FALLBACK_BUDGET, dtype=np.float32, tol=1e-6, **KW)
    assert sol.solver == "rfista" and sol.extra["design"] == "matrix_free"
    assert sol.extra["dtype"] == "float32" and rfista_dtypes[0] == np.float32
    # below float32's floor: the float64 continuation certifies tol
    assert sol.extra["polish_iterations"] > 0 and rfista_dtypes[1:] == [np.float64]
    assert sol.status == "optimal"
    _check_certified(sol, X, y, p_star, 1e-6)
    assert sol.objective_value == pytest.approx(p_star, rel=1e-5)


def test_auto_fallback_keeps_float64(data, rfista_dtypes):
    X, y, p_star = data
    sol = solve_conv_native(X, y, memory_budget=FALLBACK_BUDGET, tol=1e-6, **KW)
    assert sol.solver == "rfista" and sol.extra["design"] == "matrix_free"
    assert sol.extra["dtype"] == "float64" and rfista_dtypes == [np.float64]
    assert sol.extra["polish_iterations"] == 0 and sol.status == "optimal"
    _check_certified(sol, X, y, p_star, 1e-6)
    newton = solve_conv_native(X, y, dtype=np.float32, **KW)  # Newton runs in float64 whatever dtype says
    assert newton.solver == "newton" and newton.extra["dtype"] == "float64"


def test_float32_rfista_reports_its_float64_certificate(data):
    """A float32 R-FISTA run reported its float32 objective (below the float64 value of its blocks)
    and a gap of float32 dual estimates."""
    X, y, p_star = data
    seen = []
    early = solve_conv_native(X, y, dtype=np.float32, solver="rfista", tol=1e-4,
                              callback=lambda info: seen.append(info) or len(seen) >= 20, **KW)
    assert early.status == "max_iterations" and early.extra["dtype"] == "float32"
    assert early.iterations == 20 and early.extra["polish_iterations"] == 0
    _check_certified(early, X, y, p_star, 1e-4)
    # no float64 iterations ran: the gap is the float64 certificate of the returned point
    assert early.gap == pytest.approx(conv_certificate(early, X, y, KW["lam"]).gap, rel=1e-9)
    done = solve_conv_native(X, y, dtype=np.float32, solver="rfista", tol=1e-4, **KW)
    assert done.status == "optimal"
    _check_certified(done, X, y, p_star, 1e-4)


def test_float32_operator_that_does_not_fit_says_float64_would(data):
    """The float32 operator holds a float32 copy of the patch design (6,480 bytes here), the float64
    one none: at a budget between the two the error named float32 as the remedy."""
    X, y, _ = data
    with pytest.raises(MemoryBudgetError, match="dtype=numpy.float64") as err:
        solve_conv_native(X, y, memory_budget=7_000, dtype=np.float32, **KW)
    assert "dtype=numpy.float32" not in str(err.value)
    assert solve_conv_native(X, y, memory_budget=7_000, **KW).converged


def test_pooled_design_is_formed_in_the_operator_dtype():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 25))
    Z = extract_patches(X, (5, 5), 3)
    pats = sample_patterns(Z, 5, seed=0, bias=True)
    Za = pats.design(Z)
    B64 = pooled_blocks(Za, pats.mask, 9, "average")
    B32 = pooled_blocks(Za, pats.mask, 9, "average", dtype=np.float32)
    assert B64.dtype == np.float64 and B32.dtype == np.float32
    np.testing.assert_allclose(B32, B64, rtol=1e-5, atol=1e-6)
    dense = PooledDesign(ImplicitDesign(Za, pats.mask, dtype=np.float32), 9, "average").dense()
    assert dense.matrix.dtype == np.float32
