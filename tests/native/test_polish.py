"""Support polish of R-FISTA (Newton-CG on the support with a working set)."""

import warnings

import numpy as np
import pytest

from cvxnn import build_program, sample_patterns
from cvxnn.datasets import planted_teacher
from cvxnn.errors import InaccurateSolutionWarning
from cvxnn.losses import get_loss
from cvxnn.native import duality_gap, lam_max_gated, solve_native
from cvxnn.native import fista as fista_mod
from cvxnn.native._losses import make_kernel
from cvxnn.native.fista import GatedProblem
from cvxnn.native.polish import polish_support
from cvxnn.operators import ImplicitDesign


@pytest.fixture(scope="module")
def teacher():
    X, y = planted_teacher(400, 8, seed=3)
    pats = sample_patterns(X, 80, seed=3)
    lam = 0.1 * lam_max_gated(X, y, pats)
    return X, y, pats, lam


def test_polish_certifies_earlier_and_agrees(teacher, monkeypatch):
    X, y, pats, lam = teacher
    on = solve_native(X, y, pats, lam=lam, tol=1e-7, max_iter=20000, solver="rfista")
    assert on.converged and on.extra["support_polishes"] >= 1
    monkeypatch.setattr(fista_mod, "POLISH_GAP", 0.0)  # never polish
    off = solve_native(X, y, pats, lam=lam, tol=1e-7, max_iter=20000, solver="rfista")
    assert off.converged and off.extra["support_polishes"] == 0
    assert on.iterations < off.iterations
    assert on.objective_value == pytest.approx(off.objective_value, rel=1e-7)
    # the returned point carries its own certificate
    cert = duality_gap(X, y, on, lam)
    assert cert.rel_gap <= 1e-7


def test_polish_support_finds_missed_blocks_and_stays_valid(teacher):
    X, y, pats, lam = teacher
    ref = build_program(X, y, activation="gated_relu", lam=lam, patterns=pats).solve()
    early = solve_native(X, y, pats, lam=lam, tol=1e-4, max_iter=20000, solver="rfista")
    U = early.U[:, :, None].copy()
    nr = np.linalg.norm(early.U, axis=0)
    big = int(np.flatnonzero(nr > 0)[np.argmin(nr[nr > 0])])
    U[:, big, 0] = 0.0  # a support that misses a (small) block of the optimum
    Xa = pats.design(X)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=1)
    kernel = make_kernel(get_loss("squared"), y[:, None], np.float64)
    prob = GatedProblem(op, kernel, lam)
    res = polish_support(op, kernel, lam, U, early.extra["step_size"], prob.dual, 1e-9 * ref.objective_value)
    assert res is not None and res.products > 0
    assert np.linalg.norm(res.U[:, big, 0]) > 0
    # valid bounds around the reference optimum
    assert res.dual <= ref.objective_value * (1 + 1e-7)
    assert res.primal >= ref.objective_value * (1 - 1e-7)
    assert res.primal - res.dual <= 1e-6 * ref.objective_value
    z = op.forward(res.U)
    assert res.primal == pytest.approx(kernel.value(z) + lam * np.linalg.norm(res.U[:, :, 0], axis=0).sum(),
                                       rel=1e-12)


def test_polish_logistic_and_not_for_float32_or_vector(teacher):
    X, y, pats, lam = teacher
    yl = np.where(y > np.median(y), 1.0, -1.0)
    lam_l = 0.05 * lam_max_gated(X, yl, pats, loss="logistic")
    sol = solve_native(X, yl, pats, lam=lam_l, loss="logistic", tol=1e-7, max_iter=20000)
    assert sol.converged
    with warnings.catch_warnings():
        # Clarabel may report optimal_inaccurate on the exponential cones; its point is still
        # feasible (C-GReLU has no constraints), so its objective bounds the optimum from above
        warnings.simplefilter("ignore", InaccurateSolutionWarning)
        ref = build_program(X, yl, activation="gated_relu", loss="logistic", lam=lam_l, patterns=pats).solve()
    assert sol.objective_value - sol.gap <= ref.objective_value  # the certificate is a valid lower bound
    assert sol.objective_value <= ref.objective_value * (1 + 1e-6)
    f32 = solve_native(X, y, pats, lam=lam, tol=1e-4, dtype=np.float32, max_iter=20000)
    assert f32.converged
    Y = np.stack([y, -0.5 * y], axis=1)
    vec = solve_native(X, Y, pats, lam=lam, tol=1e-6, max_iter=20000)
    assert vec.converged and vec.extra["support_polishes"] == 0


def test_polish_returns_none_for_zero_point(teacher):
    X, y, pats, lam = teacher
    op = ImplicitDesign(pats.design(X), pats.mask, n_outputs=1)
    kernel = make_kernel(get_loss("squared"), y[:, None], np.float64)
    prob = GatedProblem(op, kernel, lam)
    U0 = np.zeros((op.d, op.p, 1))
    assert polish_support(op, kernel, lam, U0, 1.0, prob.dual, 1e-6) is None
