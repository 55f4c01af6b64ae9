"""QA round 4: the span test's default tolerance on solver-produced blocks, and input checks before any solve."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cvxnn
import cvxnn.decomposition as decomposition
from cvxnn.decomposition import decomposable_blocks, decompose, implicit_equalities
from cvxnn.errors import InaccurateSolutionWarning, InfeasibleError, InvalidParameterError, ShapeError
from cvxnn.patterns import Patterns
from cvxnn.solution import ConvexModel


@pytest.fixture(scope="module")
def tied():
    """Integer data, symmetric (x and -x), integer gates: ties make 9 of the 13 cones singular."""
    rng = np.random.default_rng(0)
    X0 = rng.integers(-3, 4, size=(8, 4)).astype(float)
    X = np.vstack([X0, -X0])
    y = np.concatenate([X0[:, 0] - X0[:, 1] ** 2 / 3, -X0[:, 2] + 1.0])
    pats = Patterns.from_gates(X, rng.integers(-1, 2, size=(4, 16)).astype(float), unique=True, drop_zero=True)
    implicit = implicit_equalities(X, pats)
    assert implicit.any(axis=0).sum() >= 5
    return X, y, pats, implicit


def _relu_as_gated(X, Y, pats):
    sol = cvxnn.build_program(X, Y, activation="relu", lam=0.5, patterns=pats).solve()
    return ConvexModel(activation="gated_relu", patterns=pats, U=sol.V - sol.W)


def _in_spans(X, pats, implicit, U):
    """``U`` with every block projected onto span(K_i) = {w : X_J w = 0} (exactly, up to rounding)."""
    Xa, out = pats.design(X), np.array(U, dtype=float)
    for i in np.flatnonzero(implicit.any(axis=0)):
        XJ = Xa[implicit[:, i]]
        out[:, i] -= np.linalg.pinv(XJ) @ (XJ @ out[:, i])
    return out


@pytest.mark.parametrize("outputs", [1, 2])
def test_crelu_solution_decomposes_exactly_at_the_defaults(tied, outputs):
    # U = V - W of a Clarabel C-ReLU solution lies in span(K_i) up to the solver's cone violations
    # (1e-9 to 1e-8 of some blocks' own norms here), which the default span test refused
    X, y, pats, implicit = tied
    Y = y if outputs == 1 else np.c_[y, np.abs(y)]
    model = _relu_as_gated(X, Y, pats)
    assert decomposable_blocks(X, pats, model.U, implicit=implicit).all()
    for mode in ("svd", "columns") if outputs == 2 else ("svd",):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = decompose(model, X, Y, vector_mode=mode)
        assert res.all_feasible and not res.approximate, mode
        assert res.reconstruction_error <= 1e-7 * np.abs(model.U).max(), mode
        fit = model.train_predict(X)
        assert res.prediction_gap <= 1e-7 * np.abs(fit).max(), mode
        assert res.max_violation <= 1e-8, mode


def test_near_zero_blocks_off_the_span_are_zero_not_infeasible(tied):
    # a block at 1e-8 of the largest pointing straight out of span(K_i) is solver noise: even under a
    # strict tol it is set to zero (noted), as the optimality module drops such blocks
    X, y, pats, implicit = tied
    U = _in_spans(X, pats, implicit, _relu_as_gated(X, y, pats).U)
    i = int(np.flatnonzero(implicit.any(axis=0))[0])
    x = pats.design(X)[np.flatnonzero(implicit[:, i])[0]]
    U[:, i] = 1e-8 * np.abs(U).max() * x / np.linalg.norm(x)
    noisy = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    assert decomposable_blocks(X, pats, U, implicit=implicit, tol=1e-12).all()
    res = decompose(noisy, X, y, tol=1e-12)
    assert res.all_feasible and res.feasible[i]
    assert np.all(res.model.V[:, i] == 0) and np.all(res.model.W[:, i] == 0)
    assert any("treated as zero" in n for n in res.notes)
    assert res.reconstruction_error == pytest.approx(np.abs(U[:, i]).max(), rel=1e-12)
    np.testing.assert_allclose(res.model.V - res.model.W, np.where(np.arange(U.shape[1]) == i, 0.0, U), atol=1e-9)


def test_block_off_the_span_within_tol_is_projected_and_flagged_approximate(tied):
    # 1e-5 of the largest block off span(K_i) (a solver stopped at tol=1e-4 leaves such blocks): it is
    # decomposed at the defaults, and the move onto the span is reported
    X, y, pats, implicit = tied
    U = _in_spans(X, pats, implicit, _relu_as_gated(X, y, pats).U)
    i = int(np.argmax(np.linalg.norm(U, axis=0) * implicit.any(axis=0)))
    x = pats.design(X)[np.flatnonzero(implicit[:, i])[0]]
    U[:, i] += 1e-5 * np.linalg.norm(U, axis=0).max() * x / np.linalg.norm(x)
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    with pytest.warns(InaccurateSolutionWarning, match="misses the gated model"):
        res = decompose(model, X, y)
    assert res.all_feasible and res.approximate
    assert 1e-6 * np.abs(U).max() < res.reconstruction_error < 1e-4 * np.abs(U).max()
    assert res.max_violation <= 1e-8


def test_gated_solution_off_the_span_is_refused_with_its_distance(tied):
    # a gated optimum with ties is genuinely off the spans (0.5 to 1 of the largest block): refused
    X, y, pats, _ = tied
    sol = cvxnn.build_program(X, y, activation="gated_relu", lam=0.5, patterns=pats).solve()
    distances = r"off span\(K_i\) by [0-9.e+-]+ to [0-9.e+-]+ of the largest \(tol=0.0001\)"
    with pytest.raises(InfeasibleError, match=distances):
        decompose(sol, X, y)
    assert not decomposable_blocks(X, pats, sol.U).all()


@pytest.fixture()
def no_solve(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a program was solved before the inputs were checked")

    monkeypatch.setattr(decomposition, "_solve", refuse)


def test_outputs_of_y_are_checked_before_any_solve(tied, no_solve):
    X, y, pats, _ = tied
    scalar = ConvexModel(activation="gated_relu", patterns=pats, U=np.ones((4, pats.n_patterns)))
    vector = ConvexModel(activation="gated_relu", patterns=pats, U=np.ones((4, pats.n_patterns, 2)))
    with pytest.raises(ShapeError, match=r"y has 2 output\(s\).*the model has 1"):
        decompose(scalar, X, np.c_[y, y])
    with pytest.raises(ShapeError, match=r"y has 1 output\(s\).*the model has 2"):
        decompose(vector, X, y)
    with pytest.raises(ShapeError, match=r"y has 3 output\(s\).*the model has 2"):
        decompose(vector, X, np.c_[y, y, y], lam=0.1, method="gate")


def test_unavailable_joblib_backend_is_refused_before_any_solve(tied, no_solve):
    X, y, pats, _ = tied
    model = ConvexModel(activation="gated_relu", patterns=pats, U=np.ones((4, pats.n_patterns)))
    with pytest.raises(InvalidParameterError, match="joblib backend 'dask' is not available"):
        decompose(model, X, y, n_jobs=2, backend="dask")
