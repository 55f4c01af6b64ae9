"""Newton polish of C-GReLU blocks on their fixed singular subspaces (cvxnn.native.subspace_polish)."""

import numpy as np
import pytest

from cvxnn import sample_patterns
from cvxnn.losses import get_loss
from cvxnn.native import gated_working_set as gws
from cvxnn.native import solve_native
from cvxnn.native import subspace_polish as sp
from cvxnn.native._losses import make_kernel
from cvxnn.native.certificates import gated_certificate
from cvxnn.native.fista import GatedProblem, initial_step, solve_gated
from cvxnn.native.prox import penalty_norms
from cvxnn.operators import ImplicitDesign


def _problem(loss, c, seed=0, n=200, d=5, p=30):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Z = np.maximum(X @ rng.standard_normal((d, 4)), 0) @ rng.standard_normal((4, c))
    if loss == "cross_entropy":
        Y = np.eye(c)[np.argmax(Z + 0.3 * rng.standard_normal(Z.shape), axis=1)]
    else:
        Y = Z + 0.1 * rng.standard_normal(Z.shape)
    pats = sample_patterns(X, p, seed=seed, bias=True)
    Xa = pats.design(X)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    return Xa, pats, kernel


def _lam(op, kernel, c, penalty, frac):
    G0 = op.adjoint(kernel.grad(np.zeros((op.n, c))))
    top = float(penalty_norms(G0).max()) if penalty == "nuclear" else float(np.linalg.norm(G0, axis=0).max())
    return frac * top


def test_nuclear_hessian_matches_finite_differences():
    rng = np.random.default_rng(0)
    for r in (1, 2, 3):
        M = rng.standard_normal((4, r, r)) + 3 * np.eye(r)
        v, g, H = sp._nuclear_hessians(M)
        np.testing.assert_allclose(v, np.linalg.svd(M, compute_uv=False).sum(axis=1), rtol=1e-12)
        e = 1e-6
        for b in range(M.shape[0]):
            Hfd = np.empty((r * r, r * r))
            for j in range(r * r):
                E = np.zeros(r * r)
                E[j] = e
                gp = sp._nuclear_hessians((M[b].ravel() + E).reshape(1, r, r))[1][0]
                gm = sp._nuclear_hessians((M[b].ravel() - E).reshape(1, r, r))[1][0]
                Hfd[:, j] = (gp - gm) / (2 * e)
            np.testing.assert_allclose(H[b], Hfd, atol=1e-6)
            # the gradient is the polar factor
            W, _, Zt = np.linalg.svd(M[b])
            np.testing.assert_allclose(g[b].reshape(r, r), W @ Zt, atol=1e-12)


@pytest.mark.parametrize("loss", ["cross_entropy", "squared"])
@pytest.mark.parametrize("grouped", [False, True])
def test_loss_hessian_matches_the_direct_sum(loss, grouped):
    rng = np.random.default_rng(1)
    n, c, R = 30, 3, 5
    kernel = make_kernel(get_loss(loss), np.eye(c)[rng.integers(0, c, n)], np.float64)
    F = rng.standard_normal((n, R))
    groups = rng.integers(0, R, 7) if grouped else None
    g = np.arange(R) if groups is None else groups
    qout = rng.standard_normal((g.size, c))
    z = rng.standard_normal((n, c))
    D, V = kernel.hessian_parts(z)
    ref = np.zeros((g.size, g.size))
    for i in range(n):
        Hn = np.diag(D[i]) - (np.outer(V[i], V[i]) if V is not None else 0.0)
        J = F[i, g][None, :] * qout.T  # c x m: d z_i / d x
        ref += J.T @ Hn @ J
    np.testing.assert_allclose(sp._loss_hessian(F, qout, D, V, groups=groups), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("loss,c,penalty", [("cross_entropy", 4, "nuclear"), ("squared", 3, "nuclear"),
                                            ("cross_entropy", 3, "columnwise")])
def test_polish_tightens_the_certificate_and_keeps_the_optimum(loss, c, penalty, monkeypatch):
    """From a loosely solved point, the polish never raises the objective and shrinks the gap
    by a large factor (measured 25x to 150x here; it is not guaranteed: a direction the polish
    removes can leave its block violating, which is why the working set keeps its best dual);
    the polished point agrees with R-FISTA at a tight tolerance."""
    monkeypatch.setattr(gws, "POLISH", False)
    Xa, pats, kernel = _problem(loss, c, seed=3)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    lam = _lam(op, kernel, c, penalty, 0.05)
    U0 = np.zeros((Xa.shape[1], pats.n_patterns, c))
    ws = gws.solve_gated_working_set(op, kernel, lam, U0, tol=1e-3, max_iter=20_000, penalty=penalty,
                                     max_cost_ratio=np.inf)
    before = gated_certificate(op, kernel, lam, ws.U, penalty=penalty)
    U2 = sp.polish_subspaces(op, kernel, lam, ws.U, columnwise=penalty == "columnwise")
    after = gated_certificate(op, kernel, lam, U2, penalty=penalty)
    assert after.primal <= before.primal + 1e-12 * abs(before.primal)
    assert after.rel_gap <= 0.1 * before.rel_gap, (before.rel_gap, after.rel_gap)
    ref = solve_gated(GatedProblem(op, kernel, lam, penalty=penalty), U0, tol=1e-9, max_iter=100_000,
                      eta0=initial_step(op, kernel))
    assert ref.converged
    assert abs(after.primal - ref.primal) <= after.gap + 1e-9 * abs(ref.primal)


def test_polish_guards(monkeypatch):
    Xa, pats, kernel = _problem("cross_entropy", 3, seed=5)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=3)
    d, p = Xa.shape[1], pats.n_patterns
    assert sp.polish_subspaces(op, kernel, 1.0, np.zeros((d, p, 3)), columnwise=False) is None
    U = np.random.default_rng(0).standard_normal((d, p, 3))
    monkeypatch.setattr(sp, "MAX_VARIABLES", 10)  # more atoms than that: skipped
    assert sp.polish_subspaces(op, kernel, 1.0, U, columnwise=False) is None


@pytest.mark.parametrize("restart", [True, False])
def test_working_set_polish_is_used_and_certifies(restart, monkeypatch):
    """The working set polishes once no block asks for an atom (and, with POLISH_RESTART, starts
    its next round from a polished point that did not certify); its result is certified at a
    tight tolerance and equals the unpolished solve's optimum."""
    monkeypatch.setattr(gws, "POLISH_RESTART", restart)
    Xa, pats, kernel = _problem("cross_entropy", 4, seed=2, n=300, p=40)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=4)
    lam = _lam(op, kernel, 4, "nuclear", 0.03)
    U0 = np.zeros((Xa.shape[1], pats.n_patterns, 4))
    res = {}
    for flag in (True, False):
        monkeypatch.setattr(gws, "POLISH", flag)
        res[flag] = gws.solve_gated_working_set(ImplicitDesign(Xa, pats.mask, n_outputs=4), kernel, lam, U0,
                                                tol=1e-6, max_iter=20_000, max_cost_ratio=np.inf)
    assert res[True].polishes >= 1 and res[False].polishes == 0
    for r in res.values():
        assert r.converged
        cert = gated_certificate(op, kernel, lam, r.U)
        assert cert.primal == pytest.approx(r.primal, rel=1e-12)
    assert abs(res[True].primal - res[False].primal) <= 2e-6 * abs(res[False].primal)


def test_solve_native_reports_polishes():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 4))
    Y = np.eye(3)[rng.integers(0, 3, 150)]
    pats = sample_patterns(X, 20, seed=0)
    sol = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=1.0, tol=1e-7)
    assert sol.status == "optimal"
    assert isinstance(sol.extra["working_set_polishes"], int)


def test_weak_polishes_back_off(monkeypatch):
    """A polish that gains less than POLISH_GAIN doubles the wait before the next one, so a run
    whose polishes never help still certifies by L-BFGS, with few polishes."""
    monkeypatch.setattr(gws, "POLISH_GAIN", np.inf)  # every polish counts as weak
    monkeypatch.setattr(gws, "POLISH_RESTART", False)
    Xa, pats, kernel = _problem("cross_entropy", 4, seed=2, n=300, p=40)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=4)
    lam = _lam(op, kernel, 4, "nuclear", 0.03)
    res = gws.solve_gated_working_set(op, kernel, lam, np.zeros((Xa.shape[1], pats.n_patterns, 4)), tol=1e-7,
                                      max_iter=20_000, max_cost_ratio=np.inf)
    assert res.converged or res.reason == "stalled"
    # waits of 10, 20, 40, ... iterations: at most log2(iterations / 10) + 2 polishes
    assert 1 <= res.polishes <= np.log2(max(res.iterations, 10) / 10) + 2


def test_polish_rejects_bad_input():
    from cvxnn.errors import InvalidParameterError, NonFiniteError, ShapeError

    Xa, pats, kernel = _problem("cross_entropy", 3, seed=5)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=3)
    U = np.zeros((Xa.shape[1], pats.n_patterns, 3))
    with pytest.raises(ShapeError, match="shape"):
        sp.polish_subspaces(op, kernel, 1.0, U[:, :5], columnwise=False)
    with pytest.raises(NonFiniteError, match="U contains NaN"):
        sp.polish_subspaces(op, kernel, 1.0, np.full_like(U, np.nan), columnwise=False)
    with pytest.raises(InvalidParameterError, match="lam"):
        sp.polish_subspaces(op, kernel, -1.0, U, columnwise=False)
    with pytest.raises(NonFiniteError, match="lam"):
        sp.polish_subspaces(op, kernel, np.nan, U, columnwise=False)


def _working_set_point(loss, c, penalty, seed):
    """A C-GReLU program and the working set's point at ``tol=1e-3`` (the polish's start)."""
    Xa, pats, kernel = _problem(loss, c, seed=seed)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    lam = _lam(op, kernel, c, penalty, 0.05)
    ws = gws.solve_gated_working_set(op, kernel, lam, np.zeros((Xa.shape[1], pats.n_patterns, c)), tol=1e-3,
                                     max_iter=20_000, penalty=penalty, max_cost_ratio=np.inf)
    return op, kernel, lam, ws.U


def _polish_counting_hessians(monkeypatch, op, kernel, lam, U, columnwise: bool) -> dict:
    """``{ratio: (polished blocks, loss Hessians formed)}`` with fresh Hessians at every step
    (``REUSE_RATIO = 0``) and with the library's reuse."""
    calls = {"n": 0}
    orig = sp._loss_hessian

    def counted(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)

    monkeypatch.setattr(sp, "_loss_hessian", counted)
    out = {}
    for ratio in (0.0, sp.REUSE_RATIO):
        monkeypatch.setattr(sp, "REUSE_RATIO", ratio)
        calls["n"] = 0
        out[ratio] = (sp.polish_subspaces(op, kernel, lam, U, columnwise=columnwise), calls["n"])
    return out


@pytest.mark.parametrize("loss,c,penalty", [("cross_entropy", 4, "nuclear"), ("squared", 3, "nuclear"),
                                            ("cross_entropy", 3, "columnwise")])
def test_reused_loss_hessians_reach_the_same_point_with_fewer_hessians(loss, c, penalty, monkeypatch):
    """Keeping the loss Hessian across Newton steps (REUSE_RATIO) changes the path of the polish,
    not its answer: the polished objective matches fresh Hessians at every step to rounding, and
    no more loss Hessians are formed."""
    monkeypatch.setattr(gws, "POLISH", False)
    reuse = sp.REUSE_RATIO
    op, kernel, lam, U0 = _working_set_point(loss, c, penalty, seed=4)
    out = _polish_counting_hessians(monkeypatch, op, kernel, lam, U0, penalty == "columnwise")
    (U_fresh, n_fresh), (U_reused, n_reused) = out[0.0], out[reuse]
    fresh = gated_certificate(op, kernel, lam, U_fresh, penalty=penalty)
    reused = gated_certificate(op, kernel, lam, U_reused, penalty=penalty)
    assert reused.primal == pytest.approx(fresh.primal, rel=1e-11)
    assert reused.rel_gap <= 2.0 * fresh.rel_gap + 1e-12
    # (a quadratic loss has one Hessian; its steps end on backtracking and free-set changes)
    assert n_reused <= n_fresh, (n_reused, n_fresh)


def test_reused_loss_hessians_save_hessians_over_instances(monkeypatch):
    """The saving itself, over eight one-vs-all cross-entropy instances: the constrained Newton
    steps of stage 1 often need one Hessian per stage either way, so a single instance need not
    save one (seed 4 saved one on one machine and none on another, whose BLAS rounds
    differently); over seeds 0-7 two of eight did (2 -> 1 Hessians each)."""
    monkeypatch.setattr(gws, "POLISH", False)
    reuse = sp.REUSE_RATIO
    totals = {0.0: 0, reuse: 0}
    for seed in range(8):
        op, kernel, lam, U0 = _working_set_point("cross_entropy", 3, "columnwise", seed)
        for ratio, (_, n) in _polish_counting_hessians(monkeypatch, op, kernel, lam, U0, True).items():
            totals[ratio] += n
    assert totals[reuse] < totals[0.0], totals


@pytest.mark.parametrize("seed", range(5))
def test_box_newton_step_minimises_the_quadratic_model_over_the_constraint(seed):
    """The stage-1 step ``d`` is the minimiser of ``g.d + d^T H d / 2`` over ``s + d >= 0``: its
    KKT conditions hold (complementarity between ``s + d`` and the model gradient ``g + H d``),
    and no feasible random point has a smaller model value."""
    rng = np.random.default_rng(seed)
    m = 12
    J = rng.standard_normal((30, m))
    H = J.T @ J
    s = np.abs(rng.standard_normal(m)) * (rng.random(m) < 0.7)
    g = rng.standard_normal(m) * 3.0
    d = sp._box_newton_step(H.copy(), g, s, 1.0)
    assert d is not None
    x = s + d
    q = g + H @ d
    scale = float(np.abs(g).max())
    assert x.min() >= -1e-12
    assert q.min() >= -1e-9 * scale
    assert np.abs(x * q).max() <= 1e-9 * scale * max(1.0, float(x.max()))

    def model(step):
        return float(g @ step + 0.5 * step @ H @ step)

    for _ in range(200):
        y = np.maximum(x + 0.3 * rng.standard_normal(m), 0.0)
        assert model(y - s) >= model(d) - 1e-10 * max(1.0, abs(model(d)))


def test_box_newton_step_drops_what_the_model_sends_below_zero_and_stops_at_the_minimum():
    """Where the unconstrained Newton step would make entries negative, the constrained step
    sets them to zero exactly (a projected Newton step overshoots there); at the model's
    constrained minimum (``s`` optimal) it returns None."""
    H = np.array([[2.0, 0.5], [0.5, 1.0]])
    s = np.array([1.0, 0.2])
    g = np.array([-1.0, 2.0])  # pushes s[1] far below zero
    d = sp._box_newton_step(H.copy(), g, s, 1.0)
    x = s + d
    assert x[1] == 0.0
    # on the remaining coordinate: minimise g0 d0 + H00 d0^2 / 2 + H01 d0 d1 with d1 = -0.2
    assert x[0] == pytest.approx(s[0] + (-g[0] - H[0, 1] * d[1]) / H[0, 0], rel=1e-12)
    # at x the model's gradient is >= 0 on the zero entry and 0 on the positive one
    g_at_x = g + H @ d
    assert sp._box_newton_step(H.copy(), g_at_x, x, 1.0) is None


def test_box_newton_step_falls_back_to_the_free_newton_step_on_an_indefinite_hessian():
    """An ``H`` that is not positive definite (rounding can make the loss Hessian so) has no
    Cholesky factor: the step is then Newton's on the free variables (``s > 0`` or ``g < 0``)."""
    H = np.array([[1.0, 0.0, 0.0], [0.0, -1e-3, 0.0], [0.0, 0.0, 2.0]])
    s = np.array([1.0, 0.0, 0.5])
    g = np.array([0.5, 1.0, -1.0])  # entry 1 sits at its bound with a positive gradient: fixed
    d = sp._box_newton_step(H.copy(), g, s, 1.0)
    np.testing.assert_allclose(d, [-0.5, 0.0, 0.5], rtol=1e-10)


@pytest.mark.parametrize("loss,c", [("cross_entropy", 4), ("squared", 3)])
def test_diagonal_stage_reaches_the_kkt_point_of_its_program(loss, c):
    """Stage 1 solves ``min_{s >= 0} h(F diag(s) qout) + lam sum(s)``: at its result the gradient
    is ``>= 0`` where ``s = 0`` and ``0`` where ``s > 0``, from a start where some entries must
    vanish."""
    Xa, pats, kernel = _problem(loss, c, seed=2)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=c)
    lam = _lam(op, kernel, c, "nuclear", 0.05)
    rng = np.random.default_rng(2)
    R = 12
    blk = rng.choice(pats.n_patterns, R, replace=False)
    P = rng.standard_normal((Xa.shape[1], R))
    P /= np.linalg.norm(P, axis=0)
    Q = rng.standard_normal((R, c))
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    F = (Xa @ P) * pats.mask[:, blk]
    s = sp._diagonal_stage(F, Q, np.full(R, 0.5), kernel, lam)
    g = np.einsum("nr,nr->r", F, kernel.grad((F * s) @ Q) @ Q.T) + lam
    assert s.min() >= 0.0
    assert np.any(s == 0.0) and np.any(s > 0.0)
    assert g[s == 0.0].min() >= -1e-8 * lam
    assert np.abs(g[s > 0.0]).max() <= 1e-6 * lam


def test_box_newton_step_falls_back_on_a_non_finite_hessian():
    """A Hessian with NaN (an overflowing loss) is rejected by the NNLS: the free-variable step is
    tried instead, and it is not finite, so the caller's line search rejects it; no exception
    escapes."""
    H = np.array([[1.0, np.nan], [np.nan, 1.0]])
    s = np.array([1.0, 1.0])
    g = np.array([0.5, -0.5])
    d = sp._box_newton_step(H.copy(), g, s, 1.0)
    assert d is None or not np.all(np.isfinite(d))
