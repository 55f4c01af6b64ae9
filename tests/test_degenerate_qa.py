"""Degenerate and hostile data through the solver layer (``cvxnn.solve`` and its adapters).

Each case must be correct (the objective of CVXPY + Clarabel on the same program, a duality gap
recomputed here from the formulas of docs/math.md) or carry an honest non-optimal status / a
typed error: never a silently wrong "optimal", a NaN, a bare numpy exception or a crash.
"""

import warnings

import numpy as np
import pytest

import cvxnn
from cvxnn import Patterns, sample_patterns
from cvxnn.errors import CvxnnError, MemoryBudgetError, SolverError
from cvxnn.losses import SquaredLoss, get_loss
from cvxnn.native import gated_conic
from cvxnn.native.fista import initial_step
from cvxnn.solution import STATUSES

NATIVE = {"relu": ("auto", "working_set", "al"), "gated_relu": ("auto", "rfista")}


def _solve(X, y, pats, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cvxnn.solve(X, y, pats, **kw)


def _design(X, pats):
    Xa = np.column_stack([np.asarray(X, dtype=float), np.ones(len(X))]) if pats.bias else np.asarray(X, float)
    return Xa, pats.mask.astype(float)


def _gated_squared_gap(X, y, pats, U, lam):
    """Duality gap of C-GReLU, squared loss, recomputed from docs/math.md: the residual rescaled
    into the dual feasible set ``||(D_i X)^T theta|| <= lam``."""
    Xa, M = _design(X, pats)
    z = np.einsum("nd,dp,np->n", Xa, U, M)
    r = y - z
    primal = 0.5 * r @ r + lam * np.linalg.norm(U, axis=0).sum()
    dual_norm = np.linalg.norm(Xa.T @ (M * r[:, None]), axis=0).max()
    theta = r * min(1.0, lam / dual_norm) if dual_norm > 0 else r
    dual = theta @ y - 0.5 * theta @ theta
    return primal, primal - dual


def _gated_logistic_gap(X, y, pats, U, lam):
    """The same for the logistic loss (``l*(t) = a log a + (1 - a) log(1 - a)``, ``a = -y t``)."""
    Xa, M = _design(X, pats)
    m = y * np.einsum("nd,dp,np->n", Xa, U, M)
    primal = np.logaddexp(0.0, -m).sum() + lam * np.linalg.norm(U, axis=0).sum()
    a = 0.5 * (1.0 - np.tanh(0.5 * m))  # sigma(-m), the weight of the gradient -y a
    dual_norm = np.linalg.norm(Xa.T @ (M * (y * a)[:, None]), axis=0).max()
    a = a * min(1.0, lam / dual_norm)
    ent = np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0) + np.where(a < 1, (1 - a) * np.log1p(-a), 0.0)
    return primal, primal + ent.sum()


def _check(sol, ref, X, y, lam, loss="squared", rtol=1e-6):
    """A returned solution: a known status, finite, its objective re-evaluated; when optimal, not
    above the reference by more than ``rtol`` (and never below it by more than the reference's gap)."""
    assert sol.status in STATUSES
    assert np.all(np.isfinite(sol.effective_weights)) and np.isfinite(sol.objective_value)
    np.testing.assert_allclose(sol.objective(X, y, lam, loss), sol.objective_value, rtol=1e-9, atol=1e-300)
    if sol.converged and ref is not None:
        assert sol.objective_value <= ref.objective_value * (1 + rtol) + 1e-12
        assert sol.objective_value >= ref.objective_value - ref.extra["certified_gap"] - 1e-12


# ------------------------------------------------------------- zero design (fixed bugs)
def _zero_design_cases():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 2))
    y = rng.standard_normal(10)
    gate = np.zeros((3, 1))
    gate[-1] = -1.0  # the all-zero pattern: its block never contributes
    X0 = np.zeros((10, 2))
    return [("X = 0", X0, y, sample_patterns(X0, 5, seed=0)),
            ("all-zero pattern", X, y, Patterns.from_gates(X, gate, bias=True))]


@pytest.mark.parametrize("case", [0, 1], ids=["X=0", "zero-pattern"])
@pytest.mark.parametrize("loss", ["logistic", "mean-squared", "squared", "huber"])
@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_zero_design_gives_the_zero_optimum(case, loss, activation):
    """A zero design made R-FISTA's first step infinite (``2 / (0.25 tiny)`` overflowed for the
    logistic loss and for mean reductions; the augmented Lagrangian's ``2 / 0`` on ``X = 0``):
    "R-FISTA produced non-finite values; rescale the data". The zero model is optimal."""
    _, X, y, pats = _zero_design_cases()[case]
    loss_obj = SquaredLoss(reduction="mean") if loss == "mean-squared" else get_loss(loss)
    yy = np.where(y > 0, 1.0, -1.0) if loss == "logistic" else y
    expected = loss_obj.value(np.zeros_like(yy), yy)
    for solver in NATIVE[activation]:
        sol = _solve(X, yy, pats, activation=activation, loss=loss_obj, lam=0.1, solver=solver)
        assert sol.status == "optimal", solver
        assert np.all(sol.effective_weights == 0.0)
        assert sol.objective_value == pytest.approx(expected, rel=1e-12)


def test_initial_steps_are_finite_on_a_zero_design():
    from cvxnn.native._losses import make_kernel
    from cvxnn.native.al import initial_al_step
    from cvxnn.operators import ImplicitDesign

    op = ImplicitDesign(np.zeros((6, 3)), np.ones((6, 2), dtype=bool))
    for loss in (get_loss("logistic"), SquaredLoss(reduction="mean")):
        kernel = make_kernel(loss, np.ones((6, 1)), np.float64)
        assert np.isfinite(initial_step(op, kernel)) and initial_step(op, kernel) > 0
    assert initial_al_step(0.25, 0.0, 4, np.finfo(float).tiny) == 2.0
    assert initial_al_step(1.0, 4.0, 4, 1.0) == pytest.approx(2.0 / (16.0 + 4.0))


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_feature_sparse_native_on_zero_data(activation):
    """``solve_feature_sparse`` (native C-ReLU) on ``X = 0``: a bare ZeroDivisionError once the step
    was finite (its penalty ``delta`` was 0)."""
    X0 = np.zeros((10, 2))
    y = np.random.default_rng(0).standard_normal(10)
    sol = cvxnn.solve_feature_sparse(X0, y, penalty=cvxnn.FeatureGroupL2(), lam=0.1, activation=activation,
                                     patterns=sample_patterns(X0, 5, seed=0), solver="native")
    assert sol.status == "optimal" and sol.objective_value == pytest.approx(0.5 * y @ y)


# --------------------------------------------------- semidefinite cones (fixed bugs)
def test_nuclear_program_counts_the_solvers_dense_psd_blocks():
    """Clarabel holds a dense ``t x t`` block (``t = m (m + 1) / 2``) per semidefinite cone of size
    ``m``: the size check counted only the compiled problem (40 MB estimated for 20 x 200 data with
    three outputs and 8 gates, where Clarabel took 24 GB and was killed)."""
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((20, 40)), rng.standard_normal((20, 3))
    pats = Patterns.from_gates(X, rng.standard_normal((41, 8)), bias=True)
    prog = cvxnn.build_program(X, Y, activation="gated_relu", patterns=pats, lam=0.1, formulation="nuclear")
    t = 44 * 45 // 2
    assert prog.estimated_solver_bytes("CLARABEL") == 8 * t * t * 64
    assert prog.estimated_solver_bytes("SCS") == 0
    one_vs_all = cvxnn.build_program(X, Y, activation="gated_relu", patterns=pats, lam=0.1, formulation="one_vs_all")
    assert one_vs_all.estimated_solver_bytes("CLARABEL") == 0
    # about 0.55 GB measured; a budget of 0.2 GB must refuse it before anything is compiled
    with pytest.raises(MemoryBudgetError, match="semidefinite"):
        cvxnn.solve(X, Y, pats, activation="gated_relu", lam=0.1, solver="clarabel", memory_budget=200_000_000)
    relu = cvxnn.build_program(X, Y, activation="relu", patterns=pats, lam=0.1, formulation="nuclear")
    assert relu.estimated_solver_bytes("CLARABEL") == 2 * prog.estimated_solver_bytes("CLARABEL")


def test_gated_finish_skips_large_semidefinite_cones():
    """The interior-point finish of the native C-GReLU solver sent 20 x 200 data (three outputs,
    2 gates) to Clarabel after 3224 iterations; it asked for 3.5 GB at once and aborted the
    process. Cones of size 104 (4 gates) took 87 s where the model said 0.5 s."""
    assert gated_conic.finish_after(20, 201, 2, 3) is None
    assert gated_conic.finish_after(20, 101, 4, 3) > 10_000  # beyond the default max_iter
    assert gated_conic.finish_after(20, 201, 2, 3, penalty="columnwise") is not None  # no PSD cones
    # small cones keep the fitted model (linnerud: 4 columns with the bias, three outputs)
    t = gated_conic.finish_seconds(100, 1200, semidefinite=True)
    it = gated_conic.ITERATION_SECONDS + gated_conic.ENTRY_SECONDS * 100 * 1200
    assert gated_conic.finish_after(100, 4, 100, 3) == max(gated_conic.AFTER_ITERATIONS, int(np.ceil(t / it)))
    assert gated_conic.finish_after(100, 4, 100, 3, memory_budget=1000) is None


# ------------------------------------------------------- degenerate data, all correct
def _cases():
    rng = np.random.default_rng(0)
    out = {}
    X = rng.standard_normal((10, 3))
    X = np.vstack([X, X[:3]])
    out["duplicate rows, conflicting targets"] = (X, rng.standard_normal(13), 0.01)
    Xc = rng.standard_normal((15, 3))
    Xc = np.column_stack([Xc, Xc[:, 0], 2 * Xc[:, 1], np.zeros(15)])
    out["duplicate, collinear and zero columns"] = (Xc, np.maximum(Xc[:, 0], 0) + 0.1 * rng.standard_normal(15), 0.05)
    X1 = rng.standard_normal((12, 1))
    out["one feature"] = (X1, np.abs(X1[:, 0]), 0.01)
    out["two rows"] = (rng.standard_normal((2, 2)), rng.standard_normal(2), 0.01)
    out["d >> n"] = (rng.standard_normal((20, 200)), rng.standard_normal(20), 0.5)
    out["constant y"] = (rng.standard_normal((20, 3)), np.full(20, 3.0), 0.1)
    return out


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_degenerate_data_matches_clarabel(name, activation):
    X, y, lam = CASES[name]
    pats = sample_patterns(X, 8, seed=0, bias=True)
    ref = _solve(X, y, pats, activation=activation, lam=lam, solver="clarabel")
    assert ref.status == "optimal"
    for solver in NATIVE[activation]:
        sol = _solve(X, y, pats, activation=activation, lam=lam, solver=solver, tol=1e-8, max_iter=5000)
        assert sol.converged, (solver, sol.status)
        _check(sol, ref, X, y, lam)
        if activation == "gated_relu":
            primal, gap = _gated_squared_gap(X, y, pats, sol.U, lam)
            assert primal == pytest.approx(sol.objective_value, rel=1e-10)
            # the gap recomputed at the returned point bounds its distance to Clarabel's optimum
            assert gap >= -1e-12 * primal and primal - gap <= ref.objective_value * (1 + 1e-9)
            # the solver's own certificate may use a better dual point seen earlier (the gated
            # working set keeps the best dual of its checks: with numpy 2.0 / scipy 1.16 the
            # returned point's own gap was 2.0e-6 where the kept dual certified 1.0e-8); it must
            # still be a lower bound on the optimum, and certify tol
            dual = sol.extra["dual_value"]
            assert dual <= ref.objective_value * (1 + 1e-12)
            assert primal - dual <= 1e-8 * primal * (1 + 1e-6)
        else:
            assert sol.max_violation <= 1e-8


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
@pytest.mark.parametrize("factor", [1.0, 1 - 1e-9, 1 - 1e-3])
def test_lam_at_and_just_below_lam_max(activation, factor):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((15, 3))
    y = np.maximum(X[:, 0] - X[:, 1], 0) + 0.1 * rng.standard_normal(15)
    pats = sample_patterns(X, 10, seed=0, bias=True)
    lam = cvxnn.lam_max(X, y, pats, activation=activation) * factor
    ref = _solve(X, y, pats, activation=activation, lam=lam, solver="clarabel")
    for solver in NATIVE[activation]:
        sol = _solve(X, y, pats, activation=activation, lam=lam, solver=solver, tol=1e-8)
        assert sol.converged
        _check(sol, ref, X, y, lam, rtol=1e-8)
        if factor == 1.0:
            assert np.all(sol.effective_weights == 0.0)


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_handmade_patterns_all_ones_all_zeros_duplicated(activation):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((15, 3))
    y = np.maximum(X[:, 0] - X[:, 1], 0) + 0.1 * rng.standard_normal(15)
    ones, zeros, g = np.zeros((4, 1)), np.zeros((4, 1)), rng.standard_normal((4, 1))
    ones[-1], zeros[-1] = 1.0, -1.0
    pats = Patterns.from_gates(X, np.hstack([ones, zeros, g, g, 2 * g]), bias=True)
    ref = _solve(X, y, pats, activation=activation, lam=0.1, solver="clarabel")
    for solver in NATIVE[activation]:
        sol = _solve(X, y, pats, activation=activation, lam=0.1, solver=solver, tol=1e-8)
        assert sol.converged
        _check(sol, ref, X, y, 0.1)
        assert np.all(sol.effective_weights[..., 1] == 0.0)  # the all-zero pattern's block


def test_layouts_and_dtypes_give_identical_solutions():
    """Integer, Fortran-ordered, strided, float32 and read-only X: the same program, bit for bit."""
    rng = np.random.default_rng(4)
    Xi = rng.integers(-5, 6, size=(20, 3))
    Xf = Xi.astype(float)
    y = np.maximum(Xf[:, 0] - Xf[:, 1], 0) + 0.1 * rng.standard_normal(20)
    readonly = Xf.copy()
    readonly.setflags(write=False)
    variants = [Xi, Xi.astype(np.int32), np.asfortranarray(Xf), np.repeat(Xf, 2, axis=1)[:, ::2],
                np.repeat(Xf, 2, axis=0)[::2], Xf.astype(np.float32), readonly]
    for activation in ("relu", "gated_relu"):
        base = _solve(Xf, y, sample_patterns(Xf, 8, seed=0, bias=True), activation=activation, lam=0.1)
        assert base.converged
        for Xv in variants:
            sol = _solve(Xv, y, sample_patterns(Xv, 8, seed=0, bias=True), activation=activation, lam=0.1)
            np.testing.assert_array_equal(sol.effective_weights, base.effective_weights)


# ----------------------------------------------------------- honest, if not optimal
@pytest.mark.parametrize("lam", [1e-6, 1e-10])
def test_separable_logistic_tiny_lam_is_certified_or_flagged(lam):
    """Separable labels: the optimum runs off as lam -> 0. The native status is its certificate
    (recomputed here); Clarabel's claim is checked against its attached certificate."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 2))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    pats = sample_patterns(X, 10, seed=0, bias=True)
    sol = _solve(X, y, pats, activation="gated_relu", loss="logistic", lam=lam, solver="auto", tol=1e-6)
    assert sol.converged and np.all(np.isfinite(sol.U))
    primal, gap = _gated_logistic_gap(X, y, pats, sol.U, lam)
    assert primal == pytest.approx(sol.objective_value, rel=1e-10)
    assert gap <= 1e-6 * primal
    ref = _solve(X, y, pats, activation="gated_relu", loss="logistic", lam=lam, solver="clarabel")
    # whatever Clarabel claims, its certificate covers its distance to the optimum
    assert ref.objective_value - (sol.objective_value - gap) <= ref.extra["certified_gap"] * (1 + 1e-6)
    relu = _solve(X, y, pats, activation="relu", loss="logistic", lam=lam, solver="al", max_iter=300)
    assert relu.status in STATUSES and np.all(np.isfinite(relu.effective_weights))
    if not relu.converged:
        assert relu.gap is None or relu.gap > 0


def test_huge_target_scale_is_certified_or_flagged():
    """y of scale 1e6 with lam = 0.1 (interpolation regime): Clarabel fails with a typed error, the
    native solvers certify or end max_iterations with a positive gap."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 3))
    y = 1e6 * rng.standard_normal(20)
    pats = sample_patterns(X, 10, seed=0, bias=True)
    for activation in ("relu", "gated_relu"):
        try:
            ref = _solve(X, y, pats, activation=activation, lam=0.1, solver="clarabel")
        except SolverError:
            ref = None
        sol = _solve(X, y, pats, activation=activation, lam=0.1, max_iter=2000)
        assert sol.status in STATUSES and np.isfinite(sol.objective_value)
        if sol.converged:
            if activation == "gated_relu":
                primal, gap = _gated_squared_gap(X, y, pats, sol.U, 0.1)
                assert gap <= 1e-5 * primal
        else:
            assert sol.gap is not None and sol.gap > 0
        if ref is not None and ref.converged and sol.converged:
            assert sol.objective_value <= ref.objective_value * (1 + 1e-6)


def test_bad_degenerate_inputs_raise_typed_errors():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 2))
    pats = sample_patterns(X, 5, seed=0, bias=True)
    for solver in ("auto", "clarabel"):
        with pytest.raises(CvxnnError, match="both classes"):
            cvxnn.solve(X, np.ones(10), pats, loss="logistic", lam=0.1, solver=solver)
    with pytest.raises(CvxnnError):
        cvxnn.solve(X, rng.standard_normal(10), pats, lam=0.0, solver="auto")


# ------------------------------------- a CVXPY "optimal" that the certificate cannot confirm
def _separable():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 2))
    return X, np.where(X[:, 0] > 0, 1.0, -1.0)


def test_clarabel_optimal_with_a_large_certified_gap_warns_where_the_user_called():
    """Clarabel calls its point optimal on separable logistic data at lam = 1e-6; cvxnn's
    certificate says 0.16 of the objective and the native optimum is 7 % lower. The status stays
    the solver's, the warning says so, names the caller's line, and its advice works."""
    from cvxnn.errors import InaccurateSolutionWarning
    from cvxnn.native.certificates import CERTIFIED_WARN_RTOL

    X, y = _separable()
    pats = sample_patterns(X, 10, seed=0, bias=True)
    kw = dict(activation="gated_relu", loss="logistic", lam=1e-6)
    with pytest.warns(InaccurateSolutionWarning, match="certified duality gap") as rec:
        sol = cvxnn.solve(X, y, pats, solver="clarabel", **kw)
    assert sol.status == "optimal" and sol.extra["certified_rel_gap"] > CERTIFIED_WARN_RTOL
    assert all(w.filename == __file__ for w in rec if w.category is InaccurateSolutionWarning)
    program = cvxnn.build_program(X, y, patterns=pats, **kw)
    with pytest.warns(InaccurateSolutionWarning, match="certified duality gap") as rec:
        program.solve("clarabel")
    assert any(w.filename == __file__ for w in rec)
    # the advice: tighter tolerances (or the native solvers) bring the certificate below the threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateSolutionWarning)
        tight = cvxnn.solve(X, y, pats, solver="clarabel", tol_gap_rel=1e-10, tol_gap_abs=1e-10, tol_feas=1e-10,
                            **kw)
        native = cvxnn.solve(X, y, pats, solver="auto", tol=1e-8, **kw)
    assert tight.extra["certified_rel_gap"] <= CERTIFIED_WARN_RTOL
    assert native.objective_value <= tight.objective_value <= sol.objective_value


def test_estimators_name_themselves_in_the_certified_gap_warning():
    from cvxnn import ConvexGatedReLUClassifier
    from cvxnn.errors import InaccurateSolutionWarning

    X, y = _separable()
    with pytest.warns(InaccurateSolutionWarning, match="ConvexGatedReLUClassifier: CLARABEL .*backend='native'"):
        est = ConvexGatedReLUClassifier(lam=1e-6, n_gates=10, random_state=0, backend="clarabel").fit(X, y)
    assert est.status_ == "optimal"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConvexGatedReLUClassifier(lam=1e-6, n_gates=10, random_state=0).fit(X, y)


def test_clarabel_at_moderate_lam_does_not_warn():
    from cvxnn.errors import InaccurateSolutionWarning

    X, y = _separable()
    pats = sample_patterns(X, 10, seed=0, bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateSolutionWarning)
        sol = cvxnn.solve(X, y, pats, activation="relu", loss="logistic", lam=1.0, solver="clarabel")
    assert sol.status == "optimal" and sol.extra["certified_rel_gap"] < 1e-4


@pytest.mark.parametrize("bad", [dict(n_cones=-1, size=3), dict(n_cones=2, size=-4), dict(n_cones=2.5, size=3),
                                 dict(n_cones=True, size=3), dict(n_cones=2, size=float("nan"))])
def test_psd_solver_bytes_refuses_bad_counts(bad):
    from cvxnn.backends.cvxpy_adapter import psd_solver_bytes
    from cvxnn.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        psd_solver_bytes(solver="CLARABEL", **bad)
    assert psd_solver_bytes(n_cones=2, size=3, solver="clarabel") == 2 * 36 * 64
