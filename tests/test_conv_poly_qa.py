"""QA regressions of the convolutional and polynomial-activation models (docs/conv.md, docs/polynomial.md).

Each test failed before the fix it names and passes after it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cvxnn.conv import PatchGeometry, build_conv_program, extract_patches
from cvxnn.errors import InaccurateSolutionWarning, InvalidParameterError, MemoryBudgetError, PatternMismatchError
from cvxnn.native.certificates import CERTIFIED_WARN_RTOL
from cvxnn.native.conv import solve_conv_native
from cvxnn.patterns import sample_patterns


def _signals(n=12, d=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal(n)


# ----------------------------------------------------------------------------- ConvProgram.solve
@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_conv_cvxpy_optimal_with_a_loose_certificate_warns(activation):
    """Clarabel calls the conv program at lam = 1e-12 "optimal", and cvxnn's own certificate of that
    point is 0.88 (gated) / 0.99 (ReLU) of the objective. Fully connected programs warn
    (attach_certificate); the conv program passed silently, without ``extra["certified_rel_gap"]``."""
    X, y = _signals()
    prog = build_conv_program(X, y, image_shape=6, patch_size=3, n_gates=3, seed=0, activation=activation,
                              lam=1e-12)
    with pytest.warns(InaccurateSolutionWarning, match="certified duality gap"):
        sol = prog.solve()
    assert sol.status == "optimal"  # the solver's status stands; the warning says what the certificate says
    assert sol.rel_gap > CERTIFIED_WARN_RTOL
    assert sol.extra["certified_rel_gap"] == pytest.approx(sol.rel_gap)
    assert sol.extra["certified_gap"] == pytest.approx(sol.gap)


def test_conv_cvxpy_certified_optimum_does_not_warn():
    X, y = _signals()
    prog = build_conv_program(X, y, image_shape=6, patch_size=3, n_gates=3, seed=0, activation="relu", lam=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateSolutionWarning)
        sol = prog.solve()
    assert sol.status == "optimal" and sol.extra["certified_rel_gap"] <= 1e-6


# ----------------------------------------------------------------------------- PatchGeometry.make
def test_geometry_as_image_shape_refuses_another_patch_size():
    """``build_conv_program(..., image_shape=sol.geometry, patch_size=3, stride=2)`` on a 2x2,
    stride-1 geometry built the 2x2 program, ignoring patch_size and stride without a word."""
    X, y = _signals(d=16)
    geo = PatchGeometry.make((4, 4), 2)
    with pytest.raises(InvalidParameterError, match="patch_size"):
        build_conv_program(X, y, image_shape=geo, patch_size=3, stride=2, n_gates=3, seed=0)
    with pytest.raises(InvalidParameterError, match="stride"):
        extract_patches(X, geo, 2, 2)
    # its own size and stride (as conv_certificate passes them) keep working
    assert build_conv_program(X, y, image_shape=geo, patch_size=(2, 2), stride=1, n_gates=3, seed=0).geometry is geo
    np.testing.assert_array_equal(extract_patches(X, geo, 2), extract_patches(X, (4, 4), 2))


# ----------------------------------------------------------------------------- prepare_conv_data
def test_patterns_built_on_the_inputs_say_to_build_them_on_the_patch_matrix():
    """Patterns sampled on X (not on its patches Z) were refused with "build patterns on this X
    (sample_patterns(X, ...))": the very call the user had made."""
    X, y = _signals(n=6, d=5)
    with pytest.raises(PatternMismatchError, match=r"patch matrix Z = extract_patches\(X, \(5,\), \(2,\), \(1,\)\)"):
        build_conv_program(X, y, image_shape=5, patch_size=2, patterns=sample_patterns(X, 3, seed=0))
    with pytest.raises(PatternMismatchError, match="sample_patterns\\(Z"):
        solve_conv_native(X, y, image_shape=5, patch_size=2, patterns=sample_patterns(X, 3, seed=0))
    Z = extract_patches(X, 5, 2)
    sol = build_conv_program(X, y, image_shape=5, patch_size=2, patterns=sample_patterns(Z, 3, seed=0)).solve()
    assert sol.converged


# ----------------------------------------------------------------------------- PooledDesign.dense
@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_small_pooled_design_fits_a_small_memory_budget(activation):
    """The memory check of the pooled design charged the 32 MiB cap of its working chunk, not
    the chunk: a 10 kB design was refused at a 1 MB budget (every Newton solve under 32 MiB)."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((40, 16)), rng.standard_normal(40)
    kw = dict(image_shape=(4, 4), patch_size=2, n_gates=8, seed=0, lam=0.3, activation=activation)
    sol = solve_conv_native(X, y, memory_budget=10**6, **kw)
    assert sol.solver == "newton" and sol.converged
    assert sol.objective_value == pytest.approx(solve_conv_native(X, y, **kw).objective_value, rel=1e-12)
    with pytest.raises(MemoryBudgetError, match="pooled design"):  # a budget it does not fit is still refused
        solve_conv_native(X, y, memory_budget=20_000, solver="newton", **kw)


def test_conv_auto_falls_back_to_matrix_free_rfista_when_the_pooled_design_does_not_fit():
    """solver='auto' (gated) raised MemoryBudgetError when the pooled design of the Newton solver
    did not fit memory_budget, although R-FISTA runs matrix-free; it now falls back to it, with
    the same optimum; solver='newton' still refuses."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 64))
    y = rng.standard_normal(60)
    kw = dict(image_shape=(8, 8), patch_size=3, lam=1.0, n_gates=40, seed=0)
    full = solve_conv_native(X, y, **kw)
    assert full.solver == "newton" and full.extra["design"] == "dense"
    small = solve_conv_native(X, y, memory_budget=10**6, **kw)
    assert small.solver == "rfista" and small.extra["design"] == "matrix_free"
    assert small.status == "optimal"
    assert small.objective_value == pytest.approx(full.objective_value, rel=1e-5)
    with pytest.raises(MemoryBudgetError):
        solve_conv_native(X, y, memory_budget=10**6, solver="newton", **kw)
