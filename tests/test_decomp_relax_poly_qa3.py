"""QA round 3: cone decompositions, the copositive relaxation and polynomial-activation models."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cvxnn.decomposition import decompose, implicit_equalities
from cvxnn.errors import InaccurateSolutionWarning
from cvxnn.patterns import Patterns
from cvxnn.solution import ConvexModel

# x_1 = -x_2 = e_1 and gates orthogonal to e_1: both points tie, so each cone K_i lies in {w_1 = 0}
_X_SINGULAR = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.3, 1.0, 0.2], [0.5, -1.0, 0.4],
                        [0.1, 0.2, 1.0], [0.2, 0.1, -1.0]])
_G_SINGULAR = np.array([[0.0, 1.0, 0.3], [0.0, 0.2, 1.0]]).T


def _singular_patterns():
    pats = Patterns.from_gates(_X_SINGULAR, _G_SINGULAR)
    assert implicit_equalities(_X_SINGULAR, pats)[:2].all()  # rows 0 and 1 are implicit equalities
    return pats


def test_svd_mode_decomposes_rank_one_blocks_in_singular_cones():
    # U_i = a_i b_i^T with a_i in span(K_i): every column decomposes; the SVD's second factor is
    # rounding (~1e-17 s_1) with an arbitrary direction and must not make the block "infeasible"
    pats = _singular_patterns()
    a = np.array([[0.0, 1.0, 0.5], [0.0, -0.3, 1.0]]).T
    b = np.array([[1.0, 2.0, -1.0], [0.5, -1.0, 2.0]]).T
    U = np.stack([np.outer(a[:, i], b[:, i]) for i in range(2)], axis=1)
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    for mode in ("columns", "svd"):
        res = decompose(model, _X_SINGULAR, vector_mode=mode)
        assert res.all_feasible and not res.approximate, mode
        assert res.prediction_gap <= 1e-8 and res.max_violation <= 1e-8, mode
        np.testing.assert_allclose(res.model.V - res.model.W, U, atol=1e-12)


def test_block_passing_a_loose_span_test_is_projected_and_reported():
    # a block 1e-4 (relative) off span(K_i) passes tol=1e-3; it is decomposed after projection onto the
    # span (the solver found the unprojected program infeasible) and the change is reported
    pats = _singular_patterns()
    U = np.array([[1e-4, 0.0], [1.0, 0.4], [0.5, 1.0]])
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    with pytest.warns(InaccurateSolutionWarning, match="misses the gated model"):
        res = decompose(model, _X_SINGULAR, method="socp", tol=1e-3)
    assert res.all_feasible and res.approximate
    assert res.reconstruction_error == pytest.approx(1e-4, rel=1e-6)
    assert res.max_violation <= 1e-8
    # the network is exact for the projected blocks: it misses the gated fit only by X (u - proj u)
    Xa = pats.design(_X_SINGULAR)
    proj = U.copy()
    proj[0] = 0.0
    expected = (pats.mask * (Xa @ proj)).sum(axis=1)
    np.testing.assert_allclose(res.network.predict(_X_SINGULAR), expected, atol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = decompose(ConvexModel(activation="gated_relu", patterns=pats, U=proj), _X_SINGULAR, tol=1e-3)
    assert not exact.approximate and exact.reconstruction_error <= 1e-12


def test_refit_that_stops_short_says_so_in_the_notes():
    pats = _singular_patterns()
    U = np.array([[1.0, 0.0], [1.0, 0.4], [0.5, 1.0]])  # block 0 is off span(K_0), block 1 decomposes
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    y = (pats.mask * (pats.design(_X_SINGULAR) @ U)).sum(axis=1) + 0.1
    ok = decompose(model, _X_SINGULAR, y, lam=0.1, method="gate", on_infeasible="refit")
    assert ok.approximate and ok.infeasible_blocks == [(0,)]
    assert any("refitted" in n for n in ok.notes) and not any("ended with status" in n for n in ok.notes)
    # the gate method needs no solver: max_iter reaches the refit program only
    with pytest.warns(InaccurateSolutionWarning):
        short = decompose(model, _X_SINGULAR, y, lam=0.1, method="gate", on_infeasible="refit", max_iter=2)
    assert short.approximate and short.statuses == ("closed_form",)
    assert any("refit program ended with status 'max_iterations'" in n for n in short.notes)


def test_native_quadratic_warning_gives_advice_that_works():
    from cvxnn.errors import ConvergenceWarning
    from cvxnn.native.polynomial import solve_quadratic_native

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    y = (X[:, 0] ** 2 - X[:, 1] * X[:, 2]) + 0.1 * rng.standard_normal(20)
    with pytest.warns(ConvergenceWarning, match="stopped by the callback"):
        stopped = solve_quadratic_native(X, y, lam=0.1, callback=lambda info: info["iteration"] >= 3)
    assert stopped.status == "max_iterations" and stopped.iterations == 3
    with pytest.warns(ConvergenceWarning, match=r"Z0=solution\.Z") as rec:
        short = solve_quadratic_native(X, y, lam=0.1, max_iter=3)
    assert "callback" not in str(rec[0].message)
    # the advice works: warm-started from short.Z the solve certifies
    warm = solve_quadratic_native(X, y, lam=0.1, Z0=short.Z)
    assert warm.status == "optimal" and warm.rel_gap <= 1e-7
