"""Primal active-set method for restricted C-ReLU programs (``ipm.solve_restricted_active_set``):
agreement with Clarabel on the same restricted program, feasibility, exact zeros, and the
working set certifying without the barrier."""

import numpy as np
import pytest

from cvxnn import build_program, sample_patterns
from cvxnn.losses import get_loss
from cvxnn.native import ipm, solve_native
from cvxnn.native import working_set as ws_mod
from cvxnn.native._losses import make_kernel


def _restricted(seed, loss, n=60, d=4, p=6, c=1, rank_deficient=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if rank_deficient:  # constant columns, as digits' blank pixels after standardisation
        X[:, :2] = 0.0
    Xa = np.c_[X, np.ones(n)]
    gates = rng.standard_normal((d + 1, p))
    M = (Xa @ gates > 0).astype(np.float64)
    S = 2.0 * M - 1.0
    if c == 1:
        z = np.maximum(X @ rng.standard_normal(d), 0) - np.maximum(X @ rng.standard_normal(d), 0)
        y = (z + 0.3 * rng.standard_normal(n))[:, None]
        if loss == "logistic":
            y = np.where(y > np.median(y), 1.0, -1.0)
    else:
        y = np.eye(c)[rng.integers(0, c, n)]
    kernel = make_kernel(get_loss(loss), y, np.float64)
    nb = 2 * p * c
    cols, outs = np.arange(nb) // c, np.arange(nb) % c
    return Xa, M, S, kernel, cols, outs


def _objective(Xa, M, S, kernel, lam, cols, outs, U):
    p = M.shape[1]
    coef = M[:, cols % p] * np.where(cols < p, 1.0, -1.0)
    Z = (coef * (Xa @ U)) @ np.eye(kernel.y64.shape[1])[outs]
    return kernel.value(Z) + lam * float(np.linalg.norm(U, axis=0).sum())


@pytest.mark.parametrize("loss,c,rank_deficient,lam", [
    ("logistic", 1, False, 2.0),
    ("squared", 1, False, 1.0),
    ("cross_entropy", 3, False, 1.0),
    ("cross_entropy", 3, True, 0.5),
    ("logistic", 1, True, 0.5),
])
def test_active_set_matches_clarabel_on_the_restricted_program(loss, c, rank_deficient, lam):
    Xa, M, S, kernel, cols, outs = _restricted(3, loss, c=c, rank_deficient=rank_deficient)
    ref = ws_mod._restricted_conic(Xa, M, S, kernel, lam, cols, outs, 1e-10)
    assert ref is not None
    F_ref = _objective(Xa, M, S, kernel, lam, cols, outs, ref)
    # from zero: every block enters through the zero-block KKT test
    res = ipm.solve_restricted_active_set(Xa, M, S, kernel, lam, cols, outs, np.zeros((Xa.shape[1], cols.size)))
    assert res.converged
    F = _objective(Xa, M, S, kernel, lam, cols, outs, res.U)
    assert F <= F_ref + 1e-7 * abs(F_ref)
    assert F == pytest.approx(F_ref, rel=1e-6)
    slack = S[:, cols % M.shape[1]] * (Xa @ res.U)
    assert slack.min() >= -1e-12 * np.abs(Xa @ res.U).max()
    # faces are held: every face row of a non-zero block has zero slack
    live = np.linalg.norm(res.U, axis=0) > 0
    assert np.all(np.abs(slack[:, live][res.tight[:, live]]) <= 1e-10 * np.abs(Xa @ res.U).max())
    # zero blocks are exact zeros with all their rows on the face
    assert np.all(res.tight[:, ~live])
    # and a warm start from the solution stops at once
    again = ipm.solve_restricted_active_set(Xa, M, S, kernel, lam, cols, outs, res.U, tight0=res.tight)
    assert again.converged and again.newton <= 2


def test_active_set_refuses_an_infeasible_start():
    Xa, M, S, kernel, cols, outs = _restricted(0, "logistic")
    U0 = np.zeros((Xa.shape[1], cols.size))
    U0[:, 0] = -10.0 * (S[:, 0] @ Xa)  # points out of its cone
    with pytest.raises(ValueError):
        ipm.solve_restricted_active_set(Xa, M, S, kernel, 1.0, cols, outs, U0)


def test_row_space_basis_drops_the_null_space():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 5))
    X[:, 1] = 0.0
    X[:, 4] = 2.0 * X[:, 0]
    Vr = ipm.row_space_basis(X)
    assert Vr.shape == (5, 3)
    np.testing.assert_allclose(Vr.T @ Vr, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(X @ Vr @ Vr.T, X, atol=1e-12)


def _dual_excess(Xa, M, S, kernel, lam, cols, outs, U):
    """Largest ``min_{rho >= 0} ||G_j + Xt_j^T rho|| / lam - 1`` over the blocks: how far the
    point's multipliers miss the dual feasibility the certificate needs (<= 0 at the optimum)."""
    from scipy.optimize import nnls

    p = M.shape[1]
    coef = M[:, cols % p] * np.where(cols < p, 1.0, -1.0)
    c = kernel.y64.shape[1]
    g = kernel.grad((coef * (Xa @ U)) @ np.eye(c)[outs])
    worst = -np.inf
    for j in range(cols.size):
        Gj = Xa.T @ (coef[:, j] * g[:, outs[j]])
        _, r = nnls((S[:, cols[j] % p, None] * Xa).T, -Gj, maxiter=5000)
        worst = max(worst, r / lam - 1.0)
    return worst


@pytest.mark.parametrize("seed,loss,c", [(2, "cross_entropy", 3), (8, "cross_entropy", 3), (12, "cross_entropy", 3),
                                         (12, "logistic", 1), (13, "logistic", 1), (4, "squared", 1)])
def test_active_set_point_is_dual_feasible_for_small_blocks(seed, loss, c):
    """Newton on the faces runs until every block's face gradient is at rounding level, not only
    the decrement (which weighs a small block's gradient by its norm): the face multipliers then
    make every block dual feasible to 1e-8, so the certificate does not lose 1e-6 to 1e-5
    relative to one small block (measured before: excesses of 1e-5 to 2e-2 on these instances)."""
    Xa, M, S, kernel, cols, outs = _restricted(seed, loss, n=200, d=6, p=15, c=c)
    res = ipm.solve_restricted_active_set(Xa, M, S, kernel, 0.3, cols, outs, np.zeros((Xa.shape[1], cols.size)))
    assert res.converged
    assert _dual_excess(Xa, M, S, kernel, 0.3, cols, outs, res.U) <= 1e-8


@pytest.mark.parametrize("loss", ["logistic", "cross_entropy"])
def test_working_set_certifies_by_the_active_set_alone(monkeypatch, loss):
    """Every round is solved by the active-set method: the barrier never runs, and the
    certified objective is Clarabel's."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((90, 3))
    z = np.maximum(X @ rng.standard_normal(3), 0) - np.maximum(X @ rng.standard_normal(3), 0)
    pats = sample_patterns(X, 16, seed=1, bias=True)
    if loss == "logistic":
        y = np.where(z > np.median(z), 1.0, -1.0)
        kw = {}
    else:
        y = np.eye(3)[np.digitize(z, np.quantile(z, [1 / 3, 2 / 3]))]
        kw = {"formulation": "one_vs_all"}
    ref = build_program(X, y, activation="relu", loss=loss, lam=1.0, patterns=pats, **kw).solve()

    def no_barrier(*args, **kwargs):  # pragma: no cover - failing this test is the point
        raise AssertionError("the barrier ran")

    monkeypatch.setattr(ws_mod, "solve_restricted_barrier", no_barrier)
    sol = solve_native(X, y, pats, activation="relu", loss=loss, lam=1.0, tol=1e-8, solver="working_set", **kw)
    assert sol.status == "optimal" and sol.rel_gap <= 1e-8
    assert all(h["status"] == "active_set" for h in sol.extra["history"])
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    assert sol.max_cone_violation(X) <= 1e-9


@pytest.mark.parametrize("loss", ["cross_entropy", "squared"])
def test_output_preconditioned_newton_step_is_the_dense_one(loss):
    """The per-output preconditioned CG step solves the same face Newton system as the formed
    Hessian (coupled softmax outputs; the squared loss has no coupling, so one iteration)."""
    rng = np.random.default_rng(2)
    n, c, k = 80, 3, 7
    dims = rng.integers(1, 5, k)
    m = int(dims.sum())
    offs = np.concatenate([[0], np.cumsum(dims)])
    AN = rng.standard_normal((n, m))
    outs_m = np.repeat(rng.integers(0, c, k), dims)
    live = np.ones(k, dtype=bool)
    w = rng.standard_normal(m)
    nr = np.sqrt(np.bincount(np.repeat(np.arange(k), dims), w * w, minlength=k))
    y = np.eye(c)[rng.integers(0, c, n)]
    kernel = make_kernel(get_loss(loss), y, np.float64)
    D, V = kernel.hessian_parts(0.5 * rng.standard_normal((n, c)))
    grad = rng.standard_normal(m)
    dense = ipm._face_newton_dense(AN, D, V, outs_m, c, offs, dims, live, w, nr, 0.7, grad)
    step, ok = ipm._face_newton_outputs(AN, D, V, outs_m, c, offs, dims, live, w, nr, 0.7, grad, rtol=1e-12)
    assert ok
    np.testing.assert_allclose(step, dense, rtol=1e-8, atol=1e-10 * np.abs(dense).max())


@pytest.mark.parametrize("rtol", [1e-2, 1e-4])
def test_float32_products_give_a_step_within_the_forcing_term(rtol):
    """With a float32 copy of the face design (loose forcing terms only), the conjugate-gradient
    step still solves the float64 Newton system to the relative residual asked, up to float32
    rounding; below HV32_RTOL the float64 products are used whatever is passed."""
    rng = np.random.default_rng(4)
    n, c, k = 300, 4, 12
    dims = rng.integers(3, 9, k)
    m = int(dims.sum())
    offs = np.concatenate([[0], np.cumsum(dims)])
    outs_m = np.repeat(np.sort(rng.integers(0, c, k)), dims)  # grouped by output, as the active set does
    AN = np.asfortranarray(rng.standard_normal((n, m)))
    live = np.ones(k, dtype=bool)
    w = rng.standard_normal(m)
    nr = np.sqrt(np.bincount(np.repeat(np.arange(k), dims), w * w, minlength=k))
    y = np.eye(c)[rng.integers(0, c, n)]
    kernel = make_kernel(get_loss("cross_entropy"), y, np.float64)
    D, V = kernel.hessian_parts(0.5 * rng.standard_normal((n, c)))
    grad = rng.standard_normal(m)
    # the float64 Hessian, to measure the true residual of each step: _face_newton_dense returns
    # -H^{-1} g, so with g = -e_i it returns the columns of H^{-1}
    H = np.linalg.inv(np.column_stack([ipm._face_newton_dense(AN, D, V, outs_m, c, offs, dims, live, w, nr,
                                                              0.7, -e) for e in np.eye(m)]))
    for AN32 in (None, AN.astype(np.float32)):
        step, ok = ipm._face_newton_outputs(AN, D, V, outs_m, c, offs, dims, live, w, nr, 0.7, grad, rtol=rtol,
                                            AN32=AN32)
        assert ok
        assert np.linalg.norm(H @ step + grad) <= 1.01 * rtol * np.linalg.norm(grad) + 1e-5 * np.linalg.norm(grad)
    exact, ok = ipm._face_newton_outputs(AN, D, V, outs_m, c, offs, dims, live, w, nr, 0.7, grad, rtol=1e-12,
                                         AN32=AN.astype(np.float32))  # below HV32_RTOL: float64 products
    assert ok
    np.testing.assert_allclose(H @ exact, -grad, atol=1e-9 * np.abs(grad).max())


@pytest.mark.parametrize("warm", [True, False])
def test_active_set_with_output_preconditioned_steps_matches_clarabel(monkeypatch, warm):
    monkeypatch.setattr(ipm, "FACE_OUTPUT_PCG_MIN", 0)
    monkeypatch.setattr(ipm, "PCG_WARM", warm)
    Xa, M, S, kernel, cols, outs = _restricted(3, "cross_entropy", c=3)
    ref = ws_mod._restricted_conic(Xa, M, S, kernel, 1.0, cols, outs, 1e-10)
    F_ref = _objective(Xa, M, S, kernel, 1.0, cols, outs, ref)
    res = ipm.solve_restricted_active_set(Xa, M, S, kernel, 1.0, cols, outs, np.zeros((Xa.shape[1], cols.size)))
    assert res.converged
    assert _objective(Xa, M, S, kernel, 1.0, cols, outs, res.U) == pytest.approx(F_ref, rel=1e-6)


def test_pcg_from_a_start_meets_the_forcing_term_of_the_right_hand_side():
    """Conjugate gradients from ``x0``: the residual is measured against ``||rhs||`` (not the
    start's residual), a good start saves products, and a start worse than zero is dropped."""
    rng = np.random.default_rng(7)
    m = 60
    B = rng.standard_normal((m, m))
    H = B @ B.T + m * np.eye(m)
    rhs = rng.standard_normal(m)
    exact = np.linalg.solve(H, rhs)
    calls = {"n": 0}

    def hv(v):
        calls["n"] += 1
        return H @ v

    def prec(r):
        return r / np.diag(H)

    def run(x0, rtol=1e-8):
        calls["n"] = 0
        x, status = ipm._pcg(hv, prec, rhs, rtol, 200, x0=x0)
        assert status == "converged"
        assert np.linalg.norm(H @ x - rhs) <= rtol * np.linalg.norm(rhs)
        return x, calls["n"]

    _, cold = run(None)
    _, near = run(exact + 1e-6 * rng.standard_normal(m))
    assert near < cold
    x, far = run(-50.0 * exact)  # residual above ||rhs||: started from zero after one product
    assert far == cold + 1
    np.testing.assert_allclose(x, exact, rtol=1e-6)
    x, none = run(exact, rtol=1e-6)  # already within the forcing term: one product
    assert none == 1


def _certified_logistic_fit(seed, n, gates, gate_seed):
    """The native working-set fit of a planted binary problem: certified at ``1e-8`` and at
    Clarabel's objective (the checks every working-set variant below must pass)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    z = np.maximum(X @ rng.standard_normal(4), 0) - np.maximum(X @ rng.standard_normal(4), 0)
    y = np.where(z > np.median(z), 1.0, -1.0)
    pats = sample_patterns(X, gates, seed=gate_seed, bias=True)
    ref = build_program(X, y, activation="relu", loss="logistic", lam=0.5, patterns=pats).solve()
    sol = solve_native(X, y, pats, activation="relu", loss="logistic", lam=0.5, tol=1e-8, solver="working_set")
    assert sol.status == "optimal" and sol.rel_gap <= 1e-8
    assert sol.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
    return sol


@pytest.mark.parametrize("cap", [1, 3])
def test_working_set_with_capped_early_rounds_certifies(monkeypatch, cap):
    """Rounds that stop after ``AS_EARLY_NEWTON`` Newton steps are stepping stones: the working
    set still ends certified at Clarabel's objective."""
    monkeypatch.setattr(ws_mod, "AS_EARLY_NEWTON", cap)
    monkeypatch.setattr(ws_mod, "FIRST_ADD", 2)
    monkeypatch.setattr(ws_mod, "MIN_ADD", 2)
    sol = _certified_logistic_fit(7, 120, 24, 2)
    # a round was capped: at AS_EARLY_NEWTON, or at one step per new block when it adds more
    assert any(h["newton"] == max(cap, h["added"]) for h in sol.extra["history"])


def test_capped_early_round_gets_a_newton_step_per_new_block(monkeypatch):
    """A stepping-stone round that adds more blocks than ``AS_EARLY_NEWTON`` gets as many Newton
    steps as it adds blocks (with fewer, digits subsamples overgrew their working sets)."""
    monkeypatch.setattr(ws_mod, "AS_EARLY_NEWTON", 1)
    monkeypatch.setattr(ws_mod, "FIRST_ADD", 5)
    monkeypatch.setattr(ws_mod, "MIN_ADD", 2)
    sol = _certified_logistic_fit(7, 120, 24, 2)
    first = sol.extra["history"][0]
    assert first["added"] == 5 and first["newton"] == 5


def test_working_set_continues_a_restricted_solve_that_used_its_newton_steps(monkeypatch):
    """A restricted solve stopped by its Newton-step cap hands its feasible point to the next
    round (no barrier), and the fit still certifies at Clarabel's objective."""
    monkeypatch.setattr(ws_mod, "AS_ROUND_NEWTON", 4)
    monkeypatch.setattr(ws_mod, "AS_EARLY_NEWTON", None)
    monkeypatch.setattr(ws_mod, "AS_MAX_CONTINUE", 100)

    def no_barrier(*args, **kwargs):  # pragma: no cover - failing this test is the point
        raise AssertionError("the barrier ran")

    monkeypatch.setattr(ws_mod, "solve_restricted_barrier", no_barrier)
    sol = _certified_logistic_fit(11, 100, 16, 3)
    assert sum(h["newton"] == 4 for h in sol.extra["history"]) >= 2  # rounds did hit the cap


def test_null_space_update_by_householder_matches_the_svd():
    """Rows joining a face: the updated basis is orthonormal, annihilates every face row, has
    the dimension the SVD gives, and a dependent row changes nothing; a nearly dependent row
    defers to the SVD."""
    rng = np.random.default_rng(0)
    rk = 9
    R0 = rng.standard_normal((3, rk))
    _, _, Vt = np.linalg.svd(R0, full_matrices=True)
    N0 = Vt[3:].T
    new = rng.standard_normal((2, rk))
    N, smax = ipm._null_space_add_rows(N0, float(np.linalg.norm(R0, axis=1).max()), new)
    R = np.r_[R0, new]
    assert N.shape == (rk, rk - 5)
    np.testing.assert_allclose(N.T @ N, np.eye(rk - 5), atol=1e-12)
    np.testing.assert_allclose(R @ N, 0.0, atol=1e-12)
    # the same span as the SVD's null space
    _, _, Vt_all = np.linalg.svd(R, full_matrices=True)
    Nsvd = Vt_all[5:].T
    np.testing.assert_allclose(N @ N.T, Nsvd @ Nsvd.T, atol=1e-12)
    # a dependent row (a combination of face rows) keeps the basis
    dep = (0.3 * R0[0] - 2.0 * new[1])[None, :]
    N2, _ = ipm._null_space_add_rows(N, smax, dep)
    np.testing.assert_allclose(N2, N)
    # a nearly dependent row is left to the SVD
    near = (R0[1] + 1e-8 * N[:, 0])[None, :]
    assert ipm._null_space_add_rows(N, smax, near) is None


def test_rows_blocking_at_once_are_all_zero_slack_rows_crossed_at_once():
    ratio = np.array([np.inf, 0.0, 3.0, 0.0, 1e-14, 0.4, 2.0])
    slack = np.array([0.0, 0.0, 1.0, 1e-12, 0.0, 0.5, 2.0])
    rows = ipm._rows_blocking_at_once(ratio, slack, scale=1.0)
    # rows 1, 3 and 4 sit at zero slack with a zero step; rows 2, 5 and 6 block later; row 0
    # does not block
    assert rows.tolist() == [False, True, False, True, True, False, False]
    # a block whose first blocking row is not degenerate: that row alone
    rows = ipm._rows_blocking_at_once(np.array([np.inf, 0.5, 2.0]), np.array([0.0, 0.3, 1.0]), scale=1.0)
    assert rows.tolist() == [False, True, False]


@pytest.mark.parametrize("loss,c", [("logistic", 1), ("cross_entropy", 3)])
def test_twin_rows_keep_the_solution(loss, c):
    """Every sample twice (every cone row has an exact twin, the most degenerate faces): the
    active set matches Clarabel, and the doubled program (``2 lam``) has twice the objective of
    the original."""
    Xa, M, S, kernel, cols, outs = _restricted(11, loss, c=c)
    lam = 1.0
    base = ipm.solve_restricted_active_set(Xa, M, S, kernel, lam, cols, outs, np.zeros((Xa.shape[1], cols.size)))
    assert base.converged
    F_base = _objective(Xa, M, S, kernel, lam, cols, outs, base.U)
    X2, M2, S2 = np.r_[Xa, Xa], np.r_[M, M], np.r_[S, S]
    k2 = make_kernel(get_loss(loss), np.r_[kernel.y64, kernel.y64], np.float64)
    ref = ws_mod._restricted_conic(X2, M2, S2, k2, 2 * lam, cols, outs, 1e-10)
    F_ref = _objective(X2, M2, S2, k2, 2 * lam, cols, outs, ref)
    res = ipm.solve_restricted_active_set(X2, M2, S2, k2, 2 * lam, cols, outs, np.zeros((X2.shape[1], cols.size)))
    assert res.converged
    F = _objective(X2, M2, S2, k2, 2 * lam, cols, outs, res.U)
    assert F == pytest.approx(F_ref, rel=1e-6) and F <= F_ref + 1e-7 * abs(F_ref)
    assert F == pytest.approx(2 * F_base, rel=1e-8)


@pytest.mark.parametrize("loss,c", [("logistic", 1), ("cross_entropy", 3)])
def test_dense_face_newton_step_solves_the_face_system(loss, c):
    """The formed face Hessian, with the penalty curvature of the live blocks only (a block
    that is not live has none), solves the Newton system of the reference assembly."""
    rng = np.random.default_rng(4)
    n, k = 60, 6
    dims = rng.integers(1, 5, k)
    m = int(dims.sum())
    offs = np.concatenate([[0], np.cumsum(dims)])
    AN = rng.standard_normal((n, m))
    outs_m = np.repeat(rng.integers(0, c, k), dims)
    live = np.array([True, False, True, True, False, True])
    w = rng.standard_normal(m)
    nr = np.sqrt(np.bincount(np.repeat(np.arange(k), dims), w * w, minlength=k))
    y = np.eye(c)[rng.integers(0, c, n)] if c > 1 else np.where(rng.standard_normal((n, 1)) > 0, 1.0, -1.0)
    kernel = make_kernel(get_loss(loss), y, np.float64)
    D, V = kernel.hessian_parts(0.5 * rng.standard_normal((n, c)))
    grad = rng.standard_normal(m)
    lam = 0.7
    # reference: the Hessian written out term by term
    H = np.zeros((m, m))
    for a in range(n):
        Ha = np.diag(D[a]) - (np.outer(V[a], V[a]) if V is not None else 0.0)
        Ea = np.zeros((c, m))
        Ea[outs_m, np.arange(m)] = AN[a]
        H += Ea.T @ Ha @ Ea
    for j in np.flatnonzero(live):
        sl = slice(offs[j], offs[j + 1])
        wh = w[sl] / nr[j]
        H[sl, sl] += lam / nr[j] * (np.eye(dims[j]) - np.outer(wh, wh))
    H += 1e-14 * np.abs(np.diag(H)).max() * np.eye(m)
    ref = -np.linalg.solve(H, grad)
    step = ipm._face_newton_dense(AN, D, V, outs_m, c, offs, dims, live, w, nr, lam, grad)
    np.testing.assert_allclose(step, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())


def _bent_path_instance(seed, n=80, d=6, k=5, levels=3):
    """A point inside its cones, with faces, and a step that crosses free rows."""
    rng = np.random.default_rng(seed)
    Xr = rng.standard_normal((n, d))
    gates = rng.standard_normal((d, k))
    Sb = np.where(Xr @ gates > 0, 1.0, -1.0)
    coef = (Sb > 0) * np.where(np.arange(k) % 2 == 0, 1.0, -1.0)
    Y = gates * 0.1
    tight = np.zeros((n, k), dtype=bool)
    bases = [np.eye(d) for _ in range(k)]
    slack = Sb * (Xr @ Y)
    dY = 3.0 * rng.standard_normal((d, k))  # long enough to be blocked
    XdY = Xr @ dY
    dslack = Sb * XdY
    blocking = ~tight & (dslack < 0.0)
    ratio = np.full((n, k), np.inf)
    np.divide(-np.maximum(slack, 0.0), dslack, out=ratio, where=blocking)
    amax = ratio.min(axis=0)
    grad = rng.standard_normal((d, k))
    gY = np.einsum("dk,dk->k", grad, dY)
    rn = np.linalg.norm(Xr, axis=1)
    path = ipm._BentPath(Xr, Sb, coef, tight, slack, dY, XdY, dslack, ratio, amax, gY, bases,
                         lambda j: grad[:, j], rn, levels)
    return Xr, Sb, coef, Y, slack, dY, amax, grad, path


@pytest.mark.parametrize("seed", range(4))
def test_bent_path_stays_in_the_cones_and_holds_the_rows_it_bends_along(seed):
    Xr, Sb, coef, Y, slack0, dY, amax, grad, path = _bent_path_instance(seed)
    k = Y.shape[1]
    assert np.any(amax < 1.0) and len(path.S) > 1  # some block bends
    Z = np.zeros((Xr.shape[0], k))
    Eout = np.eye(k)
    scale = np.abs(Xr @ Y).max() + np.abs(Xr @ dY).max()
    prev = None
    for t in np.linspace(0.0, 1.0, 41):
        Yt, Zt, pred = path.at(t, Y, Z, Eout)
        slack = Sb * (Xr @ Yt)
        assert slack.min() >= -1e-12 * scale  # feasible all along
        # predictions and the linear model follow the blocks
        np.testing.assert_allclose(Zt, coef * (Xr @ (Yt - Y)), atol=1e-12 * scale)
        assert pred == pytest.approx(float(np.sum(grad * (Yt - Y))), abs=1e-10 * (1 + abs(pred)))
        if prev is not None:  # continuous: steps of 1/40 move a block by at most |d|/40 per segment
            assert np.all(np.linalg.norm(Yt - prev, axis=0) <= np.linalg.norm(dY, axis=0) / 40 + 1e-12)
        prev = Yt
        rows, changed = path.joined(t, slack)
        # every row that joins a face is at zero slack there, and only blocked blocks change
        assert np.all(np.abs(slack[rows]) <= 1e-10 * scale)
        assert set(changed) <= set(np.flatnonzero(amax <= t))
    # before the first break the path is the plain step
    t0 = 0.5 * float(amax.min())
    np.testing.assert_allclose(path.at(t0, Y, Z, Eout)[0], Y + t0 * dY)


def test_bent_path_without_levels_stops_at_the_first_row():
    Xr, Sb, coef, Y, slack0, dY, amax, grad, path = _bent_path_instance(1, levels=0)
    Yt = path.at(1.0, Y, np.zeros((Xr.shape[0], Y.shape[1])), np.eye(Y.shape[1]))[0]
    np.testing.assert_allclose(Yt, Y + dY * np.minimum(1.0, amax))


@pytest.mark.parametrize("loss,c", [("logistic", 1), ("cross_entropy", 3), ("squared", 1)])
def test_active_set_with_bent_steps_matches_clarabel(monkeypatch, loss, c):
    # the bends run only on designs of rank AS_BEND_MIN_RANK and more; here on every one
    monkeypatch.setattr(ipm, "AS_BEND_MIN_RANK", 0)
    monkeypatch.setattr(ipm, "AS_BEND", 3)
    Xa, M, S, kernel, cols, outs = _restricted(5, loss, n=80, d=6, p=6, c=c)
    lam = 0.5
    ref = ws_mod._restricted_conic(Xa, M, S, kernel, lam, cols, outs, 1e-10)
    F_ref = _objective(Xa, M, S, kernel, lam, cols, outs, ref)
    res = ipm.solve_restricted_active_set(Xa, M, S, kernel, lam, cols, outs, np.zeros((Xa.shape[1], cols.size)))
    assert res.converged
    F = _objective(Xa, M, S, kernel, lam, cols, outs, res.U)
    assert F == pytest.approx(F_ref, rel=1e-6)
    slack = S[:, cols % M.shape[1]] * (Xa @ res.U)
    assert slack.min() >= -1e-12 * np.abs(Xa @ res.U).max()


def test_blocks_come_back_in_the_callers_order():
    """The active set groups blocks by output internally; U, tight and rho are returned in the
    order of ``cols``/``outs`` as given, the same for any order of the blocks."""
    Xa, M, S, kernel, cols, outs = _restricted(5, "cross_entropy", c=3)
    lam = 1.0
    zero = np.zeros((Xa.shape[1], cols.size))
    res = ipm.solve_restricted_active_set(Xa, M, S, kernel, lam, cols, outs, zero)
    assert res.converged
    perm = np.random.default_rng(0).permutation(cols.size)
    shuf = ipm.solve_restricted_active_set(Xa, M, S, kernel, lam, cols[perm], outs[perm], zero)
    assert shuf.converged
    F = _objective(Xa, M, S, kernel, lam, cols, outs, res.U)
    assert _objective(Xa, M, S, kernel, lam, cols[perm], outs[perm], shuf.U) == pytest.approx(F, rel=1e-9)
    scale = float(np.abs(res.U).max())
    np.testing.assert_allclose(shuf.U, res.U[:, perm], atol=1e-6 * scale)
    # a warm start in a shuffled order keeps each block's point and face
    again = ipm.solve_restricted_active_set(Xa, M, S, kernel, lam, cols[perm], outs[perm], res.U[:, perm],
                                            tight0=res.tight[:, perm])
    assert again.converged and again.newton <= 2
    np.testing.assert_allclose(again.U, res.U[:, perm], atol=1e-9 * scale)
    np.testing.assert_array_equal(again.tight, res.tight[:, perm])
