"""The working set of rank-one atoms for C-GReLU and the Gram-matrix nuclear prox
(docs/math.md, "Vector output", "Solvers and certificates"; docs/native.md, "Multi-class C-GReLU")."""

import cvxpy as cp
import numpy as np
import pytest

from cvxnn import build_program, sample_patterns
from cvxnn.losses import get_loss
from cvxnn.native import gated_working_set as gws
from cvxnn.native import solve_native
from cvxnn.native._losses import make_kernel
from cvxnn.native.certificates import gated_certificate
from cvxnn.native.fista import GatedProblem, initial_step, solve_gated
from cvxnn.native.gated_working_set import (
    Atoms,
    BlockMetric,
    FactoredObjective,
    _check_spacing,
    _restricted_dual_norms,
    _violations,
    atoms_from_blocks,
    blocks_from_atoms,
    solve_gated_working_set,
)
from cvxnn.native.prox import BlockPenalty, gram_spectral, penalty_norms, prox_penalty
from cvxnn.operators import ImplicitDesign


def _svd_prox(V, t):
    U, s, Vt = np.linalg.svd(np.transpose(V, (1, 0, 2)), full_matrices=False)
    s_new = np.maximum(s - t, 0.0)
    return np.transpose(np.matmul(U * s_new[:, None, :], Vt), (1, 0, 2)), s_new.sum()


def _blocks(rng, d, p, c):
    V = rng.standard_normal((d, p, c))
    V[:, 0, :] = 0.0  # a zero block
    V[:, 1, :] = np.outer(rng.standard_normal(d), rng.standard_normal(c))  # rank one
    V[:, 2, :] = rng.standard_normal((d, 2)) @ rng.standard_normal((2, c))  # rank two
    V[:, 3, :] *= 1e-9  # tiny
    return V


# --------------------------------------------------------------------------- batched prox
@pytest.mark.parametrize("shape", [(6, 9, 3), (20, 12, 5), (3, 4, 7)])
@pytest.mark.parametrize("t", [0.0, 1e-8, 0.3, 2.0, 50.0])
def test_gram_prox_matches_svd_prox(shape, t):
    rng = np.random.default_rng(sum(shape))
    V = _blocks(rng, *shape)
    X, pen = prox_penalty(V, t)
    ref, pen_ref = _svd_prox(V, t)
    scale = max(1.0, np.abs(V).max())
    assert np.abs(X - ref).max() <= 1e-10 * scale
    assert abs(pen - pen_ref) <= 1e-10 * max(1.0, pen_ref)
    assert X.dtype == V.dtype and X.shape == V.shape


def test_gram_prox_float32_and_zero_input():
    rng = np.random.default_rng(1)
    V = _blocks(rng, 10, 6, 3).astype(np.float32)
    X, pen = prox_penalty(V, 0.5)
    ref, pen_ref = _svd_prox(V.astype(np.float64), 0.5)
    assert X.dtype == np.float32
    assert np.abs(X - ref).max() <= 1e-4 * np.abs(V).max()
    Z, pz = prox_penalty(np.zeros((5, 4, 2)), 1.0)
    assert pz == 0.0 and not Z.any()


def test_gram_spectral_matches_svd():
    rng = np.random.default_rng(2)
    G = _blocks(rng, 8, 7, 3)
    sig, v = gram_spectral(G)
    s = np.linalg.svd(np.transpose(G, (1, 0, 2)), compute_uv=False)[:, 0]
    np.testing.assert_allclose(sig, s, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(np.einsum("dpc,pc->dp", G, v), axis=0), s, rtol=1e-8, atol=1e-12)
    sig_only, none = gram_spectral(G, vectors=False)
    assert none is None
    np.testing.assert_allclose(sig_only, sig, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------ atoms
@pytest.mark.parametrize("c,columnwise", [(1, False), (4, False), (4, True)])
def test_atoms_round_trip_and_penalty(c, columnwise):
    rng = np.random.default_rng(3)
    U = _blocks(rng, 6, 8, c) if c > 1 else rng.standard_normal((6, 8, 1))
    U[:, 3, :] = 0.0
    atoms = atoms_from_blocks(U, columnwise=columnwise)
    np.testing.assert_allclose(blocks_from_atoms(atoms, 6, 8, c), U, atol=1e-12)
    # balanced factors: lam/2 (|a|^2 + |b|^2) summed equals the penalty of U
    bm = 0.5 * (np.sum(atoms.A**2) + np.sum(atoms.B**2))
    if columnwise:
        pen = np.linalg.norm(U, axis=0).sum()
    else:
        pen = penalty_norms(U).sum()
    assert bm == pytest.approx(pen, rel=1e-10)
    assert 3 not in atoms.blk


def test_violations_see_missing_rank_only_outside_the_span():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(5), rng.standard_normal(3)
    atoms = Atoms(blk=np.array([0]), A=a[:, None], B=b[None, :])
    G = np.zeros((5, 2, 3))
    G[:, 0, :] = -5.0 * np.outer(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))  # in the span: fine
    blk, *_ = _violations(G, atoms, 1.0, False)
    assert blk.size == 0
    e = np.linalg.qr(np.column_stack([a, rng.standard_normal(5)]))[0][:, 1]
    f = np.linalg.qr(np.column_stack([b, rng.standard_normal(3)]))[0][:, 1]
    G[:, 0, :] += 2.0 * np.outer(e, f)  # a second direction with norm 2 > lam
    G[:, 1, :] = 0.5 * np.outer(e, f)  # a zero block below lam
    blk, col, sig, u, v = _violations(G, atoms, 1.0, False)
    assert blk.tolist() == [0] and sig[0] == pytest.approx(2.0)
    assert abs(u[:, 0] @ e) == pytest.approx(1.0) and abs(v[0] @ f) == pytest.approx(1.0)


# ---------------------------------------------------------------------- the solver itself
def _problem(n, d, c, p, loss, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, 4))
    Z = np.maximum(X @ W, 0) @ rng.standard_normal((4, c))
    if loss == "cross_entropy":
        Y = np.eye(c)[np.argmax(Z + 0.3 * rng.standard_normal(Z.shape), axis=1)]
    elif loss == "logistic":
        Y = np.where(Z[:, 0] > np.median(Z[:, 0]), 1.0, -1.0)[:, None]
    else:
        Y = Z + 0.1 * rng.standard_normal(Z.shape)
    pats = sample_patterns(X, p, seed=seed, bias=True)
    return X, Y, pats


CASES = [("cross_entropy", 4, "nuclear"), ("squared", 3, "nuclear"), ("squared", 3, "columnwise"),
         ("cross_entropy", 3, "columnwise"), ("squared", 1, "nuclear"), ("logistic", 1, "nuclear")]


@pytest.mark.parametrize("loss,c,penalty", CASES)
def test_working_set_matches_rfista_and_certifies(loss, c, penalty):
    X, Y, pats = _problem(120, 4, c, 25, loss, seed=c + len(loss))
    Xa = pats.design(X)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    A0 = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    lam0 = float(penalty_norms(A0.adjoint(kernel.grad(np.zeros((X.shape[0], c))))).max()) if penalty == "nuclear" \
        else float(np.linalg.norm(A0.adjoint(kernel.grad(np.zeros((X.shape[0], c)))), axis=0).max())
    lam = 0.05 * lam0
    tol = 1e-6
    op = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    ws = solve_gated_working_set(op, kernel, lam, np.zeros((Xa.shape[1], pats.n_patterns, c)), tol=tol,
                                 max_iter=20_000, penalty=penalty, max_cost_ratio=np.inf)
    assert ws.converged and ws.reason == "certified", ws.reason
    cert = gated_certificate(op, kernel, lam, ws.U, penalty=penalty)
    assert cert.primal == pytest.approx(ws.primal, rel=1e-10)
    assert cert.primal - max(cert.dual, ws.dual) <= 1.5 * tol * abs(cert.primal)
    op2 = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    prob = GatedProblem(op2, kernel, lam, penalty=penalty)
    ref = solve_gated(prob, np.zeros_like(ws.U), tol=tol, max_iter=50_000, eta0=initial_step(op2, kernel))
    assert ref.converged
    # both certified at tol: their objectives agree within the sum of the gaps
    assert abs(ws.primal - ref.primal) <= 2 * tol * abs(ref.primal)
    # and each is above the other's dual bound (weak duality)
    assert ws.primal >= ref.dual - 1e-12 and ref.primal >= ws.dual - 1e-12


def test_working_set_matches_clarabel_nuclear():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((30, 2))
    Y = np.maximum(X @ rng.standard_normal((2, 3)), 0) @ rng.standard_normal((3, 3))
    pats = sample_patterns(X, 8, seed=1, bias=True)
    lam = 0.1
    ref = build_program(X, Y, activation="gated_relu", lam=lam, patterns=pats).solve(solver="CLARABEL")
    sol = solve_native(X, Y, pats, activation="gated_relu", lam=lam, tol=1e-9)
    assert sol.status == "optimal" and "working_set_rounds" in sol.extra
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert sol.objective_value - sol.gap <= ref.objective_value + 1e-7 * abs(ref.objective_value)
    # independent check of the objective with one normNuc atom per block
    Xa = pats.design(X)
    U = sol.U
    fit = sum((pats.mask[:, i:i + 1] * Xa) @ U[:, i, :] for i in range(pats.n_patterns))
    val = 0.5 * np.sum((fit - Y) ** 2) + lam * sum(np.linalg.norm(U[:, i, :], "nuc") for i in range(pats.n_patterns))
    assert val == pytest.approx(sol.objective_value, rel=1e-10)
    assert cp  # the reference above went through CVXPY


def test_uncertified_working_set_reports_non_optimal_status():
    X, Y, pats = _problem(200, 5, 4, 30, "cross_entropy", seed=11)
    with pytest.warns(Warning):
        sol = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=0.5, tol=1e-12,
                           max_iter=15)
    assert sol.status == "max_iterations"
    assert sol.extra["rel_gap"] > 1e-12


def test_warm_start_along_path_is_cheaper():
    X, Y, pats = _problem(300, 5, 4, 40, "cross_entropy", seed=12)
    first = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=2.0, tol=1e-7)
    cold = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=1.6, tol=1e-7)
    warm = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=1.6, tol=1e-7,
                        warm_start=first)
    assert cold.status == warm.status == "optimal"
    assert warm.objective_value == pytest.approx(cold.objective_value, rel=1e-6)
    assert warm.iterations < cold.iterations


def test_warm_start_with_negligible_atoms_certifies():
    """A warm start keeps only its atoms above WARM_RTOL of the largest: tiny components (a
    loose solution's noise) are dropped from the start point, never from the answer, which is
    judged by the full-program gap as always."""
    from cvxnn.native import gated_working_set as gws

    X, Y, pats = _problem(200, 4, 3, 25, "cross_entropy", seed=14)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss("cross_entropy"), Y, np.float64)
    lam = 1.0
    op = ImplicitDesign(Xa, pats.mask, n_outputs=3)
    U0 = np.zeros((Xa.shape[1], pats.n_patterns, 3))
    cold = solve_gated_working_set(op, kernel, lam, U0, tol=1e-6, max_iter=20_000, max_cost_ratio=np.inf)
    assert cold.converged
    rng = np.random.default_rng(0)
    noisy = cold.U + 1e-5 * np.abs(cold.U).max() * rng.standard_normal(cold.U.shape)  # full rank, every block
    start = atoms_from_blocks(noisy, rtol=gws.WARM_RTOL)
    assert start.size < atoms_from_blocks(noisy).size  # the noise atoms are not in the start point
    warm = solve_gated_working_set(ImplicitDesign(Xa, pats.mask, n_outputs=3), kernel, lam, noisy, tol=1e-6,
                                   max_iter=20_000, max_cost_ratio=np.inf)
    assert warm.converged and warm.reason == "certified"
    assert abs(warm.primal - cold.primal) <= 2e-6 * abs(cold.primal)


def test_callback_stops_the_working_set():
    X, Y, pats = _problem(150, 4, 3, 20, "squared", seed=13)
    calls = []

    def cb(info):
        calls.append(info)
        return len(calls) >= 2

    with pytest.warns(Warning):
        sol = solve_native(X, Y, pats, activation="gated_relu", lam=0.05, tol=1e-12, callback=cb)
    assert sol.status == "max_iterations" and sol.extra["stopped_by_callback"]
    assert {"iteration", "objective", "dual", "gap", "rel_gap"} <= set(calls[0])


@pytest.mark.parametrize("loss,c,penalty", CASES[:4])
def test_solve_native_certifies_tight_tolerances(loss, c, penalty):
    """At tolerances beyond the precision of the factored objective the working set stops and
    R-FISTA continues from its point: the result is still certified."""
    X, Y, pats = _problem(120, 4, c, 25, loss, seed=c + len(loss))
    sol = solve_native(X, Y, pats, activation="gated_relu", loss=loss, lam=0.3, tol=1e-9,
                       formulation="one_vs_all" if penalty == "columnwise" else "nuclear")
    assert sol.status == "optimal" and sol.extra["rel_gap"] <= 1e-9
    cert = gated_certificate(ImplicitDesign(pats.design(X), pats.mask, n_outputs=c),
                             make_kernel(get_loss(loss), Y, np.float64), 0.3, sol.U, penalty=penalty)
    assert cert.primal == pytest.approx(sol.objective_value, rel=1e-12)
    assert cert.gap <= 1e-9 * abs(cert.primal) or sol.extra["dual_value"] > cert.dual


def test_dense_optimum_hands_over_to_rfista():
    """Where the atoms would cost more than R-FISTA iterations, the working set stops early
    ("dense") and R-FISTA finishes from its point, certified."""
    X, Y, pats = _problem(150, 4, 3, 12, "squared", seed=14)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss("squared"), Y, np.float64)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=3)
    ws = solve_gated_working_set(op, kernel, 0.01, np.zeros((Xa.shape[1], pats.n_patterns, 3)), tol=1e-8,
                                 max_iter=1000, max_cost_ratio=0.0)
    assert ws.reason == "dense" and not ws.converged
    sol = solve_native(X, Y, pats, activation="gated_relu", lam=0.01, tol=1e-8)
    assert sol.status == "optimal"


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
@pytest.mark.parametrize("tol", [1e-4, 1e-6])
def test_dense_handover_continues_in_float32_at_loose_tolerances(monkeypatch, loss, tol):
    """After a "dense" hand-over, R-FISTA runs on the float32 twin of the design when
    ``tol >= CONTINUE_FLOAT32_MIN_TOL`` (in float64 below it); the result is certified by the
    float64 certificate and is the float64 run's optimum within ``tol``."""
    import cvxnn.native.fista as fista_mod
    import cvxnn.native.solve as solve_mod

    X, Y, pats = _problem(150, 4, 3, 12, loss, seed=14)
    monkeypatch.setattr(gws, "DENSE_MIN_FLOPS", 0.0)
    monkeypatch.setattr(gws, "MAX_COST_RATIO", 0.0)
    # a program this small would get the interior-point finish, which keeps float64 throughout
    monkeypatch.setattr(solve_mod._gc, "finish_after", lambda *a, **k: None)
    real = fista_mod.solve_gated
    dtypes = []

    def spy(problem, *args, **kwargs):
        dtypes.append(problem.op.dtype)
        return real(problem, *args, **kwargs)

    monkeypatch.setattr(solve_mod, "solve_gated", spy)
    lam = 0.02 if loss == "squared" else 0.05
    ref = solve_native(X, Y, pats, activation="gated_relu", loss=loss, lam=lam, tol=1e-10)
    assert ref.status == "optimal"
    opt = ref.objective_value
    sols = {}
    for flag in (False, True):
        monkeypatch.setattr(solve_mod, "CONTINUE_FLOAT32", flag)
        dtypes.clear()
        sol = solve_native(X, Y, pats, activation="gated_relu", loss=loss, lam=lam, tol=tol)
        assert sol.extra["working_set_fallback"]
        expected = np.float32 if flag and tol >= solve_mod.CONTINUE_FLOAT32_MIN_TOL else np.float64
        assert dtypes and dtypes[0] == np.dtype(expected)
        cert = gated_certificate(ImplicitDesign(pats.design(X), pats.mask, n_outputs=3),
                                 make_kernel(get_loss(loss), Y, np.float64), lam, sol.U)
        assert sol.status == "optimal" and cert.primal == pytest.approx(sol.objective_value, rel=1e-12)
        # the reported gap is certified: its dual value is a float64 lower bound of the optimum
        assert sol.extra["dual_value"] <= opt * (1 + 1e-10)
        assert sol.objective_value - sol.extra["dual_value"] <= tol * abs(sol.objective_value)
        assert sol.objective_value - opt <= tol * abs(opt)
        sols[flag] = sol.objective_value
    assert sols[True] == pytest.approx(sols[False], rel=2 * tol)


def test_float32_continuation_that_misses_tol_is_polished_in_float64(monkeypatch):
    """A float32 stage whose point the float64 certificate does not accept is continued by R-FISTA
    in float64 until it certifies."""
    import cvxnn.native.fista as fista_mod
    import cvxnn.native.solve as solve_mod

    X, Y, pats = _problem(150, 4, 3, 12, "cross_entropy", seed=14)
    monkeypatch.setattr(gws, "DENSE_MIN_FLOPS", 0.0)
    monkeypatch.setattr(gws, "MAX_COST_RATIO", 0.0)
    monkeypatch.setattr(solve_mod._gc, "finish_after", lambda *a, **k: None)
    real = fista_mod.solve_gated

    def early(problem, start, *, tol, **kwargs):
        # the float32 stage stops far from tol
        return real(problem, start, tol=0.3 if problem.op.dtype == np.float32 else tol, **kwargs)

    monkeypatch.setattr(solve_mod, "solve_gated", early)
    sol = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=0.05, tol=1e-4)
    assert sol.status == "optimal" and sol.extra["polish_iterations"] > 0
    assert sol.extra["rel_gap"] <= 1e-4


@pytest.mark.parametrize(("threshold", "expected"), [(0.0, gws.MAX_COST_RATIO), (1e12, np.inf)])
def test_the_cost_cap_applies_only_to_costly_designs(monkeypatch, threshold, expected):
    """solve_native passes the cost cap to the working set only where one full product costs at
    least DENSE_MIN_FLOPS flops; below it the working set never hands over as "dense"."""
    X, Y, pats = _problem(60, 3, 3, 10, "cross_entropy", seed=4)
    seen = []
    real = gws.solve_gated_working_set

    def spy(*args, **kwargs):
        seen.append(kwargs["max_cost_ratio"])
        return real(*args, **kwargs)

    monkeypatch.setattr(gws, "solve_gated_working_set", spy)
    monkeypatch.setattr(gws, "DENSE_MIN_FLOPS", threshold)
    sol = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=0.05, tol=1e-6)
    assert seen == [expected] and sol.status == "optimal"


def test_small_designs_finish_in_the_working_set(monkeypatch):
    """Iris at a tiny lam: without the cost cap (the default on designs this small) the working set
    certifies the optimum itself. With the cap it handed over to R-FISTA (about 4x the iterations)
    until the subspace polish's decrement test became relative (its ``max(1, |f|)`` floor refused
    the steps of this objective below 1); it may now finish there too, at the same optimum."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    from cvxnn.estimators import ConvexGatedReLUClassifier

    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    est = ConvexGatedReLUClassifier(lam=1e-4 * X.shape[0], n_gates=100, random_state=0, tol=1e-4)
    default = est.fit(X, y).solution_
    monkeypatch.setattr(gws, "DENSE_MIN_FLOPS", 0.0)
    capped = est.fit(X, y).solution_
    assert default.status == capped.status == "optimal"
    assert not default.extra["working_set_fallback"]
    if capped.extra["working_set_fallback"]:
        assert default.iterations < capped.iterations
    assert default.objective_value == pytest.approx(capped.objective_value, rel=2e-4)


# ------------------------------------------------------------------ the L-BFGS metric
def _factored(loss, c, penalty, seed=0):
    X, Y, pats = _problem(80, 3, c, 12, loss, seed=seed)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((Xa.shape[1], pats.n_patterns, c))
    U[:, ::3, :] = 0.0
    atoms = atoms_from_blocks(U, columnwise=penalty == "columnwise" and c > 1)
    obj = FactoredObjective(op, kernel, 0.7, atoms)
    return obj, np.concatenate([atoms.A.ravel(), atoms.B.ravel()]), rng


@pytest.mark.parametrize("loss,c,penalty", [("cross_entropy", 4, "nuclear"), ("cross_entropy", 3, "columnwise"),
                                            ("squared", 3, "nuclear"), ("logistic", 1, "nuclear")])
def test_block_metric_is_a_change_of_variables(loss, c, penalty):
    obj, x, rng = _factored(loss, c, penalty)
    metric = BlockMetric(obj, x)
    xt = metric.from_x(x)
    np.testing.assert_allclose(metric.to_x(xt), x, rtol=1e-10, atol=1e-12)
    y = rng.standard_normal(x.size)
    np.testing.assert_allclose(metric.from_x(metric.to_x(y)), y, rtol=1e-9, atol=1e-10)
    # the value is F's; the gradient is the chain rule's (central differences in xt)
    f, g = metric(xt)
    assert f == pytest.approx(obj(x)[0], rel=1e-12)
    v = rng.standard_normal(x.size)
    if obj.bmask is not None:  # one-vs-all: b_j moves on its own column only (F's gradient is masked)
        v[obj.d * obj.R:] *= obj.bmask.ravel()
    e = 1e-6
    fd = (metric(xt + e * v)[0] - metric(xt - e * v)[0]) / (2 * e)
    assert g @ v == pytest.approx(fd, rel=1e-5, abs=1e-7)


def _hessian_block(obj, x, idx, e=1e-6):
    """Central-difference Hessian of F restricted to the coordinates idx."""
    H = np.empty((idx.size, idx.size))
    for k, i in enumerate(idx):
        xp, xm = x.copy(), x.copy()
        xp[i] += e
        xm[i] -= e
        H[:, k] = (obj(xp)[1][idx] - obj(xm)[1][idx]) / (2 * e)
    return 0.5 * (H + H.T)


def test_block_metric_whitens_the_diagonal_blocks_of_the_squared_loss():
    # squared loss: b^T H_n b does not depend on n, so the a-blocks are exact, and the b-blocks
    # are exact for every loss; in the metric's coordinates each diagonal block is the identity
    obj, x, _ = _factored("squared", 3, "nuclear", seed=4)
    metric = BlockMetric(obj, x)
    xt = metric.from_x(x)
    d, R, c = obj.d, obj.R, obj.c
    for j in (0, R // 2, R - 1):
        a_idx = np.arange(d) * R + j  # A is stored d x R, row-major
        b_idx = d * R + j * c + np.arange(c)
        for idx in (a_idx, b_idx):
            H = _hessian_block(metric, xt, idx)
            np.testing.assert_allclose(H, np.eye(idx.size), atol=2e-5)


def test_block_metric_whitens_the_output_blocks_of_cross_entropy():
    obj, x, _ = _factored("cross_entropy", 4, "nuclear", seed=5)
    metric = BlockMetric(obj, x)
    xt = metric.from_x(x)
    d, R, c = obj.d, obj.R, obj.c
    for j in (0, R - 1):
        b_idx = d * R + j * c + np.arange(c)
        np.testing.assert_allclose(_hessian_block(metric, xt, b_idx), np.eye(c), atol=2e-5)


def test_metric_is_skipped_where_it_does_not_pay(monkeypatch):
    obj, x, _ = _factored("cross_entropy", 4, "nuclear")
    assert isinstance(gws._metric(obj, x), BlockMetric)
    assert obj.op.gram_cache_bytes > 0  # the block eigendecompositions are cached on the operator
    monkeypatch.setattr(gws, "METRIC_MAX_D", obj.d - 1)
    assert gws._metric(obj, x) is None
    monkeypatch.setattr(gws, "METRIC_MAX_D", 256)
    obj.op.memory_budget = 8 * obj.op.gram_cache_bytes  # no room for the round's bases
    assert gws._metric(obj, x) is None
    monkeypatch.setattr(gws, "PRECONDITION", False)
    obj.op.memory_budget = 1 << 40
    assert gws._metric(obj, x) is None


def test_gram_eigh_is_cached_and_exact():
    X, Y, pats = _problem(50, 3, 2, 6, "squared", seed=1)
    Xa = pats.design(X)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=2)
    Q, e = op.gram_eigh(np.array([4, 1]))
    for k, i in enumerate([4, 1]):
        Xi = Xa[pats.mask[:, i] > 0]
        np.testing.assert_allclose((Q[k] * e[k]) @ Q[k].T, Xi.T @ Xi, atol=1e-10 * np.abs(Xi).max() ** 2 * len(Xi))
    flops = op.flops
    Q2, _ = op.gram_eigh(np.array([1]))
    assert op.flops == flops and np.array_equal(Q2[0], Q[1])
    # another operator on the same data (the next solve of a path) reuses them ...
    op2 = ImplicitDesign(Xa.copy(), pats.mask.copy(), n_outputs=2)
    Q3, _ = op2.gram_eigh(np.array([1, 4]))
    assert op2.flops == 0.0 and np.array_equal(Q3, Q[::-1])
    # ... an operator on other data does not
    op3 = ImplicitDesign(Xa + 1.0, pats.mask, n_outputs=2)
    op3.gram_eigh(np.array([1]))
    assert op3.flops > 0.0
    from cvxnn.errors import InvalidParameterError, ShapeError

    with pytest.raises(InvalidParameterError, match="block indices"):
        op.gram_eigh(np.array([pats.n_patterns]))
    with pytest.raises(InvalidParameterError, match="block indices"):
        op.gram_eigh(np.array([-1]))
    with pytest.raises(ShapeError, match="1-D array of integers"):
        op.gram_eigh(np.array([[1]]))
    with pytest.raises(ShapeError, match="1-D array of integers"):
        op.gram_eigh(np.array([1.5]))
    assert op.gram_eigh(np.zeros(0, dtype=int))[0].shape == (0, Xa.shape[1], Xa.shape[1])


def test_gram_eigh_takes_repeated_blocks_and_grows_its_cache():
    """One row per requested index (repeats allowed: an atom per row, several atoms per block),
    each block decomposed once, and blocks added later (the cache grows) keep the earlier ones."""
    X, Y, pats = _problem(60, 3, 2, 9, "squared", seed=2)
    Xa = pats.design(X) + 0.5  # data that no other test decomposed
    op = ImplicitDesign(Xa, pats.mask, n_outputs=2)
    Q, e = op.gram_eigh(np.array([3, 3, 0, 3]))
    assert Q.shape == (4, Xa.shape[1], Xa.shape[1]) and e.shape == (4, Xa.shape[1])
    assert np.array_equal(Q[0], Q[1]) and np.array_equal(Q[0], Q[3]) and np.array_equal(e[0], e[3])
    flops = op.flops
    assert flops == 2.0 * Xa.shape[1] ** 2 * sum(int((pats.mask[:, i] > 0).sum()) for i in (0, 3))
    Q2, e2 = op.gram_eigh(np.arange(pats.n_patterns)[::-1])  # every block: the cache grows to p rows
    for k, i in enumerate(range(pats.n_patterns)[::-1]):
        Xi = Xa[pats.mask[:, i] > 0]
        np.testing.assert_allclose((Q2[k] * e2[k]) @ Q2[k].T, Xi.T @ Xi, atol=1e-10 * np.abs(Xi).max() ** 2 * len(Xi))
    assert np.array_equal(Q2[-1], Q[2]) and np.array_equal(Q2[-4], Q[0])  # blocks 0 and 3 kept
    assert op.gram_cache_bytes == pats.n_patterns * (Xa.shape[1] + 1) * Xa.shape[1] * 8


@pytest.mark.parametrize("loss,c,penalty", CASES[:4])
def test_working_set_with_and_without_metric_agree(loss, c, penalty, monkeypatch):
    X, Y, pats = _problem(120, 4, c, 25, loss, seed=11 + c)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    lam = 0.05 * float(np.abs(ImplicitDesign(Xa, pats.mask, n_outputs=c).adjoint(kernel.grad(np.zeros(Y.shape)))).max())
    out = {}
    for flag in (True, False):
        monkeypatch.setattr(gws, "PRECONDITION", flag)
        op = ImplicitDesign(Xa, pats.mask, n_outputs=c)
        out[flag] = solve_gated_working_set(op, kernel, lam, np.zeros((Xa.shape[1], pats.n_patterns, c)), tol=1e-6,
                                            max_iter=20_000, penalty=penalty, max_cost_ratio=np.inf)
        assert out[flag].converged, (flag, out[flag].reason)
    assert out[True].primal == pytest.approx(out[False].primal, rel=2e-6)


def test_check_spacing():
    none = lambda: (np.zeros(0),)  # noqa: E731
    some = lambda: (np.array([3]),)  # noqa: E731
    assert _check_spacing(None, (10, 1e-2), 1e-6, 10, none) == 10
    # 1e-2 -> 1e-3 in 10 iterations: 30 more reach 1e-6; half of that is 15
    assert _check_spacing((10, 1e-2), (20, 1e-3), 1e-6, 10, none) == 15
    # capped at CHECK_SPACING_MAX checks
    assert _check_spacing((10, 1e-2), (40, 0.9e-2), 1e-12, 10, none) == gws.CHECK_SPACING_MAX * 10
    # violations (atoms to add), a rising gap, or a close finish keep the plain spacing
    assert _check_spacing((10, 1e-2), (20, 0.9e-2), 1e-12, 10, some) == 10
    assert _check_spacing((10, 1e-3), (20, 1e-2), 1e-6, 10, none) == 10
    assert _check_spacing((10, 1e-5), (20, 2e-6), 1e-6, 10, none) == 10
    # at most CHECK_SPACING_GROWTH times the last spacing: a slow start does not jump far ahead
    assert _check_spacing((10, 1e-2), (20, 0.99e-2), 1e-12, 10, none) == min(
        int(gws.CHECK_SPACING_GROWTH * 10), gws.CHECK_SPACING_MAX * 10)


def test_check_spacing_growth_cap(monkeypatch):
    none = lambda: (np.zeros(0),)  # noqa: E731
    monkeypatch.setattr(gws, "CHECK_SPACING_GROWTH", 2.0)
    # the rate predicts far more than CHECK_SPACING_MAX checks; the last spacing was 15
    assert _check_spacing((10, 1e-2), (25, 0.99e-2), 1e-12, 10, none) == 30
    monkeypatch.setattr(gws, "CHECK_SPACING_GROWTH", np.inf)
    assert _check_spacing((10, 1e-2), (25, 0.99e-2), 1e-12, 10, none) == gws.CHECK_SPACING_MAX * 10


@pytest.mark.parametrize("form", ["nuclear", "columnwise", "scalar"])
def test_restricted_dual_norms_are_the_norms_on_the_atoms_subspaces(form):
    """``||P^T G_i Q||_2`` per block with atoms (nuclear), the column norm per atom (one-vs-all),
    the block norm per block (scalar output), against a per-block loop."""
    rng = np.random.default_rng(1)
    d, p = 6, 9
    c = 1 if form == "scalar" else 4
    for _ in range(10):
        G = rng.standard_normal((d, p, c))
        R = 12
        blk = rng.integers(0, p, R)
        col = rng.integers(0, c, R) if form == "columnwise" else None
        if form == "columnwise":  # one atom per (block, column)
            _, first = np.unique(blk * c + col, return_index=True)
            blk, col = blk[first], col[first]
            R = blk.size
        B = rng.standard_normal((R, c))
        if form == "columnwise":
            B = np.zeros((R, c))
            B[np.arange(R), col] = rng.standard_normal(R)
        atoms = Atoms(blk=blk, A=rng.standard_normal((d, R)), B=B, col=col)
        got = _restricted_dual_norms(G, atoms, form == "columnwise")
        if form == "columnwise":
            ref = [np.linalg.norm(G[:, b, k]) for b, k in zip(blk, col, strict=True)]
        elif form == "scalar":
            ref = [np.linalg.norm(G[:, b, 0]) for b in np.unique(blk)]
        else:
            ref = []
            for i in np.unique(blk):
                P = np.linalg.qr(atoms.A[:, blk == i])[0]
                Q = np.linalg.qr(atoms.B[blk == i].T)[0]
                ref.append(np.linalg.norm(P.T @ G[:, i, :] @ Q, 2))
        np.testing.assert_allclose(got, ref, rtol=1e-12)
        # the restricted norms never exceed the full ones
        assert np.all(got <= np.max(np.linalg.norm(G.reshape(d, p * c), axis=0)) * np.sqrt(c) + 1e-12)
    assert _restricted_dual_norms(G, Atoms(blk=np.zeros(0, np.intp), A=np.zeros((d, 0)), B=np.zeros((0, c))),
                                  False).size == 0


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("loss,c,penalty", [CASES[0], CASES[3]])
def test_restricted_gap_rule_keeps_the_certified_optimum(fraction, loss, c, penalty, monkeypatch):
    """Ending a round once the restricted program's gap is below RESTRICTED_FRACTION of the full
    gap changes when atoms are added, not the certified optimum (1.0: a round ends at its first
    check while atoms are missing)."""
    monkeypatch.setattr(gws, "RESTRICTED_FRACTION", fraction)
    X, Y, pats = _problem(150, 4, c, 30, loss, seed=7)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    G0 = ImplicitDesign(Xa, pats.mask, n_outputs=c).adjoint(kernel.grad(np.zeros((X.shape[0], c))))
    lam0 = float(penalty_norms(G0).max()) if penalty == "nuclear" else float(np.linalg.norm(G0, axis=0).max())
    lam, tol = 0.05 * lam0, 1e-6
    op = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    ws = solve_gated_working_set(op, kernel, lam, np.zeros((Xa.shape[1], pats.n_patterns, c)), tol=tol,
                                 max_iter=20_000, penalty=penalty, max_cost_ratio=np.inf)
    assert ws.converged and ws.reason == "certified", ws.reason
    op2 = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    ref = solve_gated(GatedProblem(op2, kernel, lam, penalty=penalty), np.zeros_like(ws.U), tol=tol,
                      max_iter=50_000, eta0=initial_step(op2, kernel))
    assert ref.converged
    assert abs(ws.primal - ref.primal) <= 2 * tol * abs(ref.primal)
    assert ws.primal >= ref.dual - 1e-12 and ref.primal >= ws.dual - 1e-12


def test_violations_batched_projection_matches_per_block_projection():
    """The complements of the atoms' spans are projected out per group of blocks with the same
    number of atoms; the result is the per-block projection's."""
    rng = np.random.default_rng(0)
    d, p, c = 7, 12, 4
    for _ in range(10):
        G = rng.standard_normal((d, p, c))
        blk = rng.integers(0, p, 15)
        atoms = Atoms(blk=blk, A=rng.standard_normal((d, 15)), B=rng.standard_normal((15, c)))
        Gp = G.copy()
        for i in np.unique(blk):
            P = np.linalg.qr(atoms.A[:, blk == i])[0]
            Q = np.linalg.qr(atoms.B[blk == i].T)[0]
            Gi = Gp[:, i, :] - P @ (P.T @ Gp[:, i, :])
            Gp[:, i, :] = Gi - (Gi @ Q) @ Q.T
        sig_ref = gram_spectral(Gp)[0]
        lam = float(np.median(sig_ref))
        vb, _, sig, u, v = _violations(G, atoms, lam, False)
        expect = np.flatnonzero(sig_ref > lam)
        assert sorted(vb.tolist()) == expect.tolist()
        np.testing.assert_allclose(sig, sig_ref[vb], rtol=1e-12)
        # (u, v) is the top singular pair of the projected block
        np.testing.assert_allclose(np.einsum("dk,dkc,kc->k", u, Gp[:, vb, :], v), sig, rtol=1e-10)


def test_small_design_grows_within_the_cost_cap():
    """On a small design (iris: d = 5 with the bias, c = 3, 32 gates) the cost cap allows about
    15 atoms; the first rounds add at most a quarter of that, so the working set certifies
    instead of outgrowing the cap and handing the solve to R-FISTA (as it did with a fixed
    first round of 16 atoms)."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    Y = np.eye(3)[y]
    pats = sample_patterns(X, 32, seed=2, bias=True)
    sol = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=0.01 * X.shape[0], tol=1e-6)
    assert sol.status == "optimal" and sol.extra["rel_gap"] <= 1e-6
    assert sol.extra["working_set_stop"] == "certified" and not sol.extra["working_set_fallback"]


# ------------------------------------------------------------------ mixed precision
@pytest.mark.parametrize("loss,c,penalty", [("cross_entropy", 4, "nuclear"), ("cross_entropy", 3, "columnwise"),
                                            ("squared", 3, "nuclear"), ("logistic", 1, "nuclear")])
def test_fast_factored_objective_is_float32_close_and_flagged(loss, c, penalty):
    obj, x, _ = _factored(loss, c, penalty, seed=8)
    f64, g64 = obj(x)
    assert obj.last[3] is False
    obj.fast = True
    f32, g32 = obj(x)
    assert obj.last[3] is True  # a check must not reuse this z as a float64 prediction
    assert g32.dtype == np.float64
    assert f32 == pytest.approx(f64, rel=1e-6)
    assert np.linalg.norm(g32 - g64) <= 1e-5 * np.linalg.norm(g64)
    assert not np.array_equal(g32, g64)  # the GEMMs did run in float32
    z32, HM32 = obj.predict(*obj.split(x), fast=True)
    assert z32.dtype == np.float64 and HM32.dtype == np.float32


class _OptimisticTwin:
    """A float32 twin whose adjoint is half the true one: its dual estimates are too high (the
    scaled dual point would be infeasible), as a rounding error in the other direction would be."""

    def __init__(self, op):
        self.op, self.flops = op, 0.0

    def adjoint(self, R):
        return (0.5 * self.op.adjoint(R)).astype(np.float32)


@pytest.mark.parametrize("loss,c,penalty", [CASES[0], CASES[2]])
def test_float32_checks_never_enter_the_certificate(loss, c, penalty, monkeypatch):
    """The dual values of the float32 checks only steer the rounds: with a twin that overstates
    them, the result's dual is still a float64 lower bound and the solve still certifies."""
    X, Y, pats = _problem(120, 4, c, 25, loss, seed=21 + c)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    lam = 0.05 * float(np.abs(ImplicitDesign(Xa, pats.mask, n_outputs=c).adjoint(kernel.grad(np.zeros(Y.shape)))).max())
    U0 = np.zeros((Xa.shape[1], pats.n_patterns, c))
    ref = solve_gated_working_set(ImplicitDesign(Xa, pats.mask, n_outputs=c), kernel, lam, U0, tol=1e-8,
                                  max_iter=20_000, penalty=penalty, max_cost_ratio=np.inf)
    monkeypatch.setattr(gws, "_float32_twin", lambda op: _OptimisticTwin(op))
    op = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    ws = solve_gated_working_set(op, kernel, lam, U0, tol=1e-6, max_iter=20_000, penalty=penalty,
                                 max_cost_ratio=np.inf)
    assert ws.converged and ws.reason == "certified"
    cert = gated_certificate(ImplicitDesign(Xa, pats.mask, n_outputs=c), kernel, lam, ws.U, penalty=penalty)
    # the reported dual is a valid lower bound: below every primal value, the best known included
    assert ws.dual <= min(ref.primal, cert.primal) + 1e-12 * abs(ref.primal)
    assert cert.primal - ws.dual <= 1e-6 * abs(cert.primal)
    assert ws.primal == pytest.approx(ref.primal, rel=2e-6)


@pytest.mark.parametrize("fast,fast_checks", [(True, True), (False, False), (True, False), (False, True)])
def test_working_set_certifies_in_every_precision_mode(fast, fast_checks, monkeypatch):
    X, Y, pats = _problem(200, 5, 4, 30, "cross_entropy", seed=31)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss("cross_entropy"), Y, np.float64)
    monkeypatch.setattr(gws, "FAST", fast)
    monkeypatch.setattr(gws, "FAST_CHECKS", fast_checks)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=4)
    ws = solve_gated_working_set(op, kernel, 0.3, np.zeros((Xa.shape[1], pats.n_patterns, 4)), tol=1e-7,
                                 max_iter=20_000, max_cost_ratio=np.inf)
    assert ws.converged and ws.reason == "certified"
    cert = gated_certificate(ImplicitDesign(Xa, pats.mask, n_outputs=4), kernel, 0.3, ws.U)
    assert cert.primal == pytest.approx(ws.primal, rel=1e-12)
    assert cert.primal - max(cert.dual, ws.dual) <= 1.01e-7 * abs(cert.primal)
    # the float32 twin is built once per operator and shared by the solves on it
    if fast_checks:
        assert gws._float32_twin(op) is gws._float32_twin(op)
        assert gws._float32_twin(op).dtype == np.float32


def test_float32_twin_respects_the_memory_budget():
    X, Y, pats = _problem(100, 3, 2, 10, "squared", seed=2)
    Xa = pats.design(X)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=2)
    op.memory_budget = op.bytes_held + 16  # no room for a float32 copy
    assert gws._float32_twin(op) is None
    U0 = np.zeros((Xa.shape[1], pats.n_patterns, 2))
    kernel = make_kernel(get_loss("squared"), Y, np.float64)
    ws = solve_gated_working_set(op, kernel, 0.1, U0, tol=1e-6, max_iter=20_000, max_cost_ratio=np.inf)
    assert ws.converged  # float64 checks only


def test_atoms_forward_matches_the_operator():
    X, Y, pats = _problem(80, 3, 3, 12, "squared", seed=3)
    Xa = pats.design(X)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=3)
    rng = np.random.default_rng(0)
    U = rng.standard_normal((Xa.shape[1], pats.n_patterns, 3))
    U[:, ::2, :] = 0.0
    at = atoms_from_blocks(U)
    np.testing.assert_allclose(gws._atoms_forward(op, at), op.forward(U), rtol=1e-10, atol=1e-10)
    flops = op.flops
    gws._atoms_forward(op, at)
    assert op.flops - flops == pytest.approx(2.0 * op.n * at.size * (op.d + op.c))


@pytest.mark.parametrize("c,columnwise", [(5, False), (1, False), (5, True)])
def test_atoms_penalty_and_blocks_match_the_svd_of_the_blocks(c, columnwise):
    """The penalty from the factors (QR of each block's atoms) equals the norms of the assembled
    blocks, and the level-wise assembly equals a plain sum over atoms, for blocks of 1 to 4 atoms
    (nuclear), and for the one-atom-per-block (column) forms."""
    from cvxnn.native._atoms import atoms_penalty
    from cvxnn.native.prox import BlockPenalty

    rng = np.random.default_rng(c + columnwise)
    d, p = 7, 12
    if columnwise:
        pairs = rng.choice(p * c, 20, replace=False)
        blk, col = pairs // c, pairs % c
        B = np.zeros((20, c))
        B[np.arange(20), col] = rng.standard_normal(20)
    elif c == 1:
        blk, col = rng.choice(p, 9, replace=False), None
        B = rng.standard_normal((9, 1))
    else:
        blk, col = np.r_[np.arange(10), np.arange(6), np.arange(3), [0]], None  # ranks 4, 3, 2 and 1
        rng.shuffle(blk)
        B = rng.standard_normal((blk.size, c))
    A = rng.standard_normal((d, blk.size))
    at = Atoms(blk=blk, A=A, B=B, col=col)
    U = blocks_from_atoms(at, d, p, c)
    ref = np.zeros((d, p, c))
    for j in range(blk.size):
        ref[:, blk[j], :] += np.outer(A[:, j], B[j])
    np.testing.assert_allclose(U, ref, rtol=0, atol=1e-13)
    norms = BlockPenalty("columnwise" if columnwise else "nuclear").norms(U)
    assert atoms_penalty(at, columnwise) == pytest.approx(float(norms.sum()), rel=1e-13)
    empty = Atoms(blk=np.zeros(0, np.intp), A=np.zeros((d, 0)), B=np.zeros((0, c)))
    assert atoms_penalty(empty, columnwise) == 0.0 and not blocks_from_atoms(empty, d, p, c).any()


def test_a_round_adds_at_most_grow_atoms_to_a_warm_start(monkeypatch):
    """A warm-started path step starts with many violating blocks; a round adds at most GROW
    atoms (the largest violations), however many atoms the working set already holds."""
    X, Y, pats = _problem(200, 5, 4, 30, "cross_entropy", seed=41)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss("cross_entropy"), Y, np.float64)
    U0 = np.zeros((Xa.shape[1], pats.n_patterns, 4))
    big = solve_gated_working_set(ImplicitDesign(Xa, pats.mask, n_outputs=4), kernel, 3.0, U0, tol=1e-6,
                                  max_iter=20_000, max_cost_ratio=np.inf)
    start = atoms_from_blocks(big.U, rtol=gws.WARM_RTOL).size
    assert start > 6
    monkeypatch.setattr(gws, "GROW", 3)
    step = solve_gated_working_set(ImplicitDesign(Xa, pats.mask, n_outputs=4), kernel, 0.3, big.U, tol=1e-6,
                                   max_iter=20_000, max_cost_ratio=np.inf, max_rounds=1)
    assert step.rounds == 1 and step.atoms <= start + 3, (start, step.atoms)
    monkeypatch.setattr(gws, "GROW", 32)
    full = solve_gated_working_set(ImplicitDesign(Xa, pats.mask, n_outputs=4), kernel, 0.3, big.U, tol=1e-6,
                                   max_iter=20_000, max_cost_ratio=np.inf)
    assert full.converged


def test_a_stalled_float32_round_hands_over_to_float64(monkeypatch, caplog):
    """With float32 evaluations in every round (FAST_ABOVE = 0) and no polish, L-BFGS reaches
    float32's floor long before tol = 1e-10; the working set then turns float32 off and float64
    rounds take the gap far below that floor."""
    import logging

    monkeypatch.setattr(gws, "FAST_ABOVE", 0.0)
    monkeypatch.setattr(gws, "POLISH", False)
    X, Y, pats = _problem(200, 5, 4, 30, "cross_entropy", seed=31)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss("cross_entropy"), Y, np.float64)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=4)
    with caplog.at_level(logging.DEBUG, logger="cvxnn.native.gated_working_set"):
        ws = solve_gated_working_set(op, kernel, 0.3, np.zeros((Xa.shape[1], pats.n_patterns, 4)), tol=1e-10,
                                     max_iter=20_000, max_cost_ratio=np.inf)
    assert "float32 evaluations stalled" in caplog.text
    assert (ws.primal - ws.dual) / ws.primal < 1e-5
    cert = gated_certificate(ImplicitDesign(Xa, pats.mask, n_outputs=4), kernel, 0.3, ws.U)
    assert cert.primal == pytest.approx(ws.primal, rel=1e-12) and ws.dual <= cert.primal


# ------------------------------------------------------------------- warm starts: check state
def _state_setup(loss="cross_entropy", c=4, penalty="nuclear", seed=21):
    X, Y, pats = _problem(240, 5, c, 30, loss, seed=seed)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    d, p = Xa.shape[1], pats.n_patterns

    def solve(lam, U0, max_iter=20_000, **kw):
        checks = []
        res = solve_gated_working_set(ImplicitDesign(Xa, pats.mask, n_outputs=c), kernel, lam, U0, tol=1e-7,
                                      max_iter=max_iter, penalty=penalty, max_cost_ratio=np.inf,
                                      callback=lambda info: checks.append(info["iteration"]), **kw)
        return res, checks

    return solve, np.zeros((d, p, c))


@pytest.mark.parametrize("loss,c,penalty", CASES)
def test_check_state_describes_the_result(loss, c, penalty):
    """The state a solve returns is the check of its result: ``A^T grad h(A U)``, the loss and
    the penalty of ``U``, and the largest dual norm (float32 adjoint: it only steers)."""
    X, Y, pats = _problem(200, 4, c, 20, loss, seed=22)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    res = solve_gated_working_set(op, kernel, 0.5, np.zeros((Xa.shape[1], pats.n_patterns, c)), tol=1e-6,
                                  max_iter=20_000, penalty=penalty, max_cost_ratio=np.inf)
    st = res.state
    assert res.converged and st is not None and st.U is res.U
    z = op.forward(res.U)
    theta = kernel.grad(z)
    np.testing.assert_allclose(st.theta, theta, rtol=1e-10, atol=1e-12 * np.abs(theta).max())
    G = op.adjoint(theta)
    assert st.G.dtype == np.float32
    np.testing.assert_allclose(st.G, G, rtol=0, atol=1e-5 * np.abs(G).max())
    assert st.loss == pytest.approx(kernel.value(z), rel=1e-10)
    pen = BlockPenalty(penalty)
    assert st.penalty == pytest.approx(float(pen.norms(res.U).sum()), rel=1e-9)
    assert st.dual_norm == pytest.approx(float(pen.dual_norms(G).max()), rel=1e-4)


@pytest.mark.parametrize("loss,c,penalty", CASES[:4])
def test_a_warm_start_with_its_check_state_skips_the_first_check(loss, c, penalty):
    """Along a path, the next solve chooses its first atoms from the previous check (no check of
    its start, so its first check comes after L-BFGS iterations) and certifies the same optimum."""
    solve, Z = _state_setup(loss, c, penalty)
    first, _ = solve(2.0, Z)
    assert first.converged and first.state is not None
    plain, plain_checks = solve(1.2, first.U)
    steered, steered_checks = solve(1.2, first.U, start_state=first.state)
    assert plain.converged and steered.converged
    assert plain_checks[0] == 0 and steered_checks[0] > 0
    assert abs(steered.primal - plain.primal) <= 2e-7 * abs(plain.primal)


def test_a_start_state_must_be_a_check_state():
    from cvxnn.errors import InvalidParameterError

    solve, Z = _state_setup()
    with pytest.raises(InvalidParameterError, match="start_state must be a CheckState"):
        solve(1.0, Z, start_state={"G": None})


def test_a_check_state_of_another_point_is_ignored():
    solve, Z = _state_setup()
    first, _ = solve(2.0, Z)
    other = first.U * 1.01
    res, checks = solve(1.2, other, start_state=first.state)
    assert res.converged and checks[0] == 0  # checked its start as without a state


def test_a_wrong_check_state_only_steers():
    """A state whose adjoint and gradient are garbage (as from other data) can cost time, never the
    certificate: the result is the optimum, certified by this solve's own checks."""
    import dataclasses

    solve, Z = _state_setup()
    first, _ = solve(2.0, Z)
    rng = np.random.default_rng(5)
    bad = dataclasses.replace(first.state, G=rng.standard_normal(first.state.G.shape).astype(np.float32),
                              theta=rng.standard_normal(first.state.theta.shape), dual_norm=123.0)
    ref, _ = solve(1.2, Z)
    res, checks = solve(1.2, first.U, start_state=bad)
    assert res.converged and checks[0] > 0
    assert abs(res.primal - ref.primal) <= 2e-7 * abs(ref.primal)
    assert res.dual <= ref.primal * (1 + 1e-12)  # a valid lower bound


def test_a_start_that_is_already_optimal_is_certified_by_a_check():
    """The state's estimate says the start is optimal at this lam: one check certifies it, with
    no iteration; and with no iteration allowed the result still comes from a check."""
    solve, Z = _state_setup()
    first, _ = solve(1.5, Z)
    again, checks = solve(1.5, first.U, start_state=first.state)
    assert again.converged and again.iterations == 0 and checks == [0]
    assert again.primal == pytest.approx(first.primal, rel=1e-12)
    # at a smaller lam with no iteration allowed: no round runs, and the result is still a
    # checked point (the start), not uncertified
    capped, checks = solve(1.2, first.U, start_state=first.state, max_iter=0)
    assert not capped.converged and capped.iterations == 0 and checks == [0]
    assert np.isfinite(capped.primal) and capped.dual <= capped.primal


def test_solve_native_passes_the_check_state_along_a_path():
    """solve_native returns the working set's state on the solution (gated, not ReLU) and uses
    a warm start's; walk_path drops a step's state once the next step has run; a warm start
    moved to other data drops it."""
    from cvxnn.path import walk_path

    X, Y, pats = _problem(200, 4, 3, 20, "cross_entropy", seed=23)
    sols = []

    def step(lam, warm):
        sol = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=lam, tol=1e-7,
                           warm_start=warm)
        sols.append(sol)
        return sol

    steps = list(walk_path([2.0, 1.0, 0.5], step))
    assert all(s.solution.status == "optimal" for s in steps)
    assert sols[0].check_state is None and sols[1].check_state is None  # used by the next step, dropped
    last = sols[-1].check_state
    assert last is not None and np.array_equal(last.U, sols[-1].U[:, :, None] if sols[-1].U.ndim == 2
                                               else sols[-1].U)
    from cvxnn.native.prox import BlockPenalty as _Pen

    # the program's penalty comes from the check state: the nuclear norms of the blocks
    assert sols[-1].program_penalty == pytest.approx(float(_Pen("nuclear").norms(sols[-1].U).sum()), rel=1e-12)
    relu = solve_native(X, Y[:, 0] * 2 - 1, pats, activation="relu", loss="logistic", lam=0.5, tol=1e-6)
    assert relu.check_state is None
    from cvxnn.estimators import _rebind_warm_start

    assert _rebind_warm_start(sols[-1], pats).check_state is None
