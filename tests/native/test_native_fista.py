"""Native R-FISTA for C-GReLU: agreement with Clarabel, certificates, warm starts, float32, inputs."""

import warnings

import numpy as np
import pytest

from cvxnn import build_program, sample_patterns
from cvxnn.errors import (
    ConvergenceWarning,
    InvalidParameterError,
    LabelError,
    MemoryBudgetError,
    NonFiniteError,
    PatternMismatchError,
    ShapeError,
)
from cvxnn.losses import SquaredLoss
from cvxnn.native import duality_gap, lam_max_gated, min_norm_subgradient, solve_native
from cvxnn.native import fista as fista_mod
from cvxnn.operators import ImplicitDesign, adjoint, forward
from cvxnn.solution import ConvexModel, ConvexSolution


@pytest.fixture(scope="module")
def clf(reg):
    X, y, pats = reg
    return X, np.where(y > np.median(y), 1.0, -1.0), pats


@pytest.fixture(scope="module")
def vec():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 3))
    Y = np.stack([np.maximum(X @ rng.standard_normal(3), 0) for _ in range(3)], axis=1)
    pats = sample_patterns(X, 10, seed=2)
    return X, Y, pats


def _clarabel(X, y, pats, act="gated_relu", lam=0.5, loss="squared"):
    return build_program(X, y, activation=act, lam=lam, patterns=pats, loss=loss).solve()


# ------------------------------------------------------------------ operators
def test_operators_match_explicit_design():
    rng = np.random.default_rng(1)
    n, d, p, c = 23, 4, 6, 3
    X = rng.standard_normal((n, d))
    M = rng.random((n, p)) < 0.5
    A = np.hstack([M[:, [i]] * X for i in range(p)])  # explicit n x pd design (tiny)
    U = rng.standard_normal((d, p))
    r = rng.standard_normal(n)
    np.testing.assert_allclose(forward(X, M, U), A @ U.T.ravel(), atol=1e-12)
    np.testing.assert_allclose(adjoint(X, M, r).T.ravel(), A.T @ r, atol=1e-12)
    U3 = rng.standard_normal((d, p, c))
    R = rng.standard_normal((n, c))
    for cache in (True, False):
        op = ImplicitDesign(X, M, n_outputs=c, chunk_bytes=256, cache_mask=cache)
        assert op.rows < n  # really chunked
        np.testing.assert_allclose(op.forward(U3), forward(X, M, U3), atol=1e-12)
        np.testing.assert_allclose(op.adjoint(R), adjoint(X, M, R), atol=1e-12)
        # adjoint identity <A U, R> = <U, A^T R>
        assert np.isclose(np.vdot(op.forward(U3), R), np.vdot(U3, op.adjoint(R)))


def test_operator_memory_budget_names_bytes():
    X = np.zeros((1000, 10))
    M = np.zeros((1000, 50), dtype=bool)
    with pytest.raises(MemoryBudgetError, match="bytes"):
        ImplicitDesign(X, M, dtype=np.float32, memory_budget=10_000)
    op = ImplicitDesign(X, M, memory_budget=1000 * 50 * 8, chunk_bytes=4096)
    assert not op.mask_cached  # float mask does not fit: converted per chunk


# ------------------------------------------------------------ agreement
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gated_matches_clarabel(reg, clf, loss):
    X, y, pats = reg if loss == "squared" else clf
    lam = 0.5 if loss == "squared" else 2.0
    ref = _clarabel(X, y, pats, lam=lam, loss=loss)
    sol = solve_native(X, y, pats, lam=lam, loss=loss, tol=1e-10, max_iter=20000)
    assert isinstance(sol, ConvexSolution)
    assert sol.status == "optimal" and sol.backend == "native" and sol.solver == "rfista"
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)
    np.testing.assert_allclose(sol.U, ref.U, atol=1e-4)
    # objective_value is the objective of docs/math.md of the returned point
    assert np.isclose(sol.objective(X, y, lam, loss), sol.objective_value, rtol=1e-12)
    # certified gap bounds the true suboptimality (Clarabel's optimum, up to its accuracy)
    assert sol.gap >= sol.objective_value - ref.objective_value - 1e-9 * abs(ref.objective_value)
    assert sol.extra["rel_gap"] <= 1e-10


def test_gated_vector_output_matches_clarabel(vec):
    X, Y, pats = vec
    lam = 1.0
    ref = _clarabel(X, Y, pats, lam=lam)
    sol = solve_native(X, Y, pats, lam=lam, tol=1e-10, max_iter=20000)
    assert sol.U.shape == (3, pats.n_patterns, 3)
    assert sol.status == "optimal"
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)
    np.testing.assert_allclose(sol.U, ref.U, atol=1e-4)


def test_cross_entropy_vector(vec):
    X, Y, pats = vec
    labels = np.argmax(Y + 0.01 * np.arange(3), axis=1)
    onehot = np.eye(3)[labels]
    ref = _clarabel(X, onehot, pats, lam=0.3, loss="cross_entropy")
    sol = solve_native(X, onehot, pats, lam=0.3, loss="cross_entropy", tol=1e-9, max_iter=20000)
    assert sol.status == "optimal"
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * abs(ref.objective_value)


def test_gap_is_upper_bound_on_suboptimality_at_any_point(reg):
    X, y, pats = reg
    lam = 0.5
    ref = _clarabel(X, y, pats, lam=lam)
    rng = np.random.default_rng(5)
    for scale in (0.0, 0.1, 1.0):
        U = scale * rng.standard_normal(ref.U.shape) + ref.U * (scale > 0)
        model = ConvexModel("gated_relu", pats, U=U)
        cert = duality_gap(X, y, model, lam)
        true_sub = model.objective(X, y, lam) - ref.objective_value
        assert cert.gap >= true_sub - 1e-9
        assert cert.dual <= ref.objective_value + 1e-9
        assert np.isclose(cert.primal, model.objective(X, y, lam))
    # at the optimum both the gap and the min-norm subgradient vanish (native: exact zero blocks)
    assert duality_gap(X, y, ref, lam).rel_gap < 1e-6
    nat = solve_native(X, y, pats, lam=lam, tol=1e-12, max_iter=20000)
    assert min_norm_subgradient(X, y, nat, lam) < 1e-4
    assert min_norm_subgradient(X, y, ConvexModel("gated_relu", pats, U=ref.U + 0.1), lam) > 1e-2


def test_min_norm_subgradient_vector(vec):
    X, Y, pats = vec
    nat = solve_native(X, Y, pats, lam=1.0, tol=1e-12, max_iter=20000)
    assert min_norm_subgradient(X, Y, nat, 1.0) < 1e-3
    assert min_norm_subgradient(X, Y, ConvexModel("gated_relu", pats, U=nat.U * 1.5), 1.0) > 1e-2


def test_min_norm_subgradient_follows_the_one_vs_all_formulation(vec):
    """A one-vs-all optimum has a zero subgradient of the column-norm penalty (the nuclear-norm
    subdifferential gave 0.8 at a certified point), and a perturbed point does not."""
    X, Y, pats = vec
    ova = solve_native(X, Y, pats, lam=1.0, tol=1e-12, max_iter=20000, formulation="one_vs_all")
    assert ova.formulation == "one_vs_all" and ova.status == "optimal"
    assert min_norm_subgradient(X, Y, ova, 1.0) < 1e-4
    nuc = solve_native(X, Y, pats, lam=1.0, tol=1e-12, max_iter=20000)
    as_ova = ConvexModel("gated_relu", pats, U=nuc.U, formulation="one_vs_all")
    assert min_norm_subgradient(X, Y, as_ova, 1.0) > 1e-3  # the nuclear optimum is not the column-norm one
    bumped = ConvexModel("gated_relu", pats, U=ova.U * 1.5, formulation="one_vs_all")
    assert min_norm_subgradient(X, Y, bumped, 1.0) > 1e-2


def test_lam_max_gated(reg):
    X, y, pats = reg
    lmax = lam_max_gated(X, y, pats)
    Xa = pats.design(X)
    assert np.isclose(lmax, max(np.linalg.norm(Xa.T @ (pats.mask[:, i] * y)) for i in range(pats.n_patterns)))
    sol = solve_native(X, y, pats, lam=1.001 * lmax)
    assert sol.n_active() == 0 and sol.status == "optimal"
    sol = solve_native(X, y, pats, lam=0.9 * lmax)
    assert np.abs(sol.U).max() > 0


# -------------------------------------------------------------- behaviour
def test_warm_start_reduces_iterations(reg, monkeypatch):
    X, y, pats = reg
    both = solve_native(X, y, pats, lam=0.2, tol=1e-8)  # with the support polish (default)
    # the support polish makes iteration counts depend on when the support settles, not only
    # on the start; the warm-start property is about the R-FISTA iterations, so compare those
    monkeypatch.setattr(fista_mod, "POLISH_GAP", 0.0)
    cold = solve_native(X, y, pats, lam=0.2, tol=1e-8)
    assert both.converged and abs(both.objective_value - cold.objective_value) <= 1e-7 * cold.objective_value
    near = solve_native(X, y, pats, lam=0.25, tol=1e-8)
    warm = solve_native(X, y, pats, lam=0.2, tol=1e-8, warm_start=near)
    assert warm.status == "optimal"
    assert warm.iterations < cold.iterations
    assert abs(warm.objective_value - cold.objective_value) <= 1e-7 * cold.objective_value
    again = solve_native(X, y, pats, lam=0.2, tol=1e-8, warm_start=cold)
    assert again.status == "optimal" and again.iterations < cold.iterations / 2


def test_float32(reg):
    X, y, pats = reg
    ref = solve_native(X, y, pats, lam=0.5, tol=1e-10)
    sol = solve_native(X, y, pats, lam=0.5, tol=1e-5, dtype=np.float32)
    assert sol.status == "optimal" and sol.extra["dtype"] == "float32"
    assert sol.U.dtype == np.float64 and np.all(np.isfinite(sol.U))
    assert sol.objective_value - ref.objective_value <= 1e-5 * ref.objective_value + 1e-12
    assert sol.gap >= sol.objective_value - ref.objective_value - 1e-12


def test_max_iterations_status_and_warning(reg):
    X, y, pats = reg
    with pytest.warns(ConvergenceWarning):
        sol = solve_native(X, y, pats, lam=0.05, tol=1e-12, max_iter=3)
    assert sol.status == "max_iterations" and not sol.converged
    assert sol.iterations == 3 and np.isfinite(sol.objective_value) and sol.gap > 0


def test_callback_can_stop(reg):
    X, y, pats = reg
    seen = []

    def cb(info):
        seen.append(info["rel_gap"])
        return len(seen) >= 4

    with pytest.warns(ConvergenceWarning):
        sol = solve_native(X, y, pats, lam=0.05, tol=1e-12, callback=cb)
    assert len(seen) == 4 and sol.status == "max_iterations"


def test_mean_reduction_loss(reg):
    X, y, pats = reg
    loss = SquaredLoss(reduction="mean")
    ref = _clarabel(X, y, pats, lam=0.01, loss=loss)
    sol = solve_native(X, y, pats, lam=0.01, loss=loss, tol=1e-9, max_iter=50000)
    assert abs(sol.objective_value - ref.objective_value) <= 1e-6 * ref.objective_value


def test_zero_targets_give_zero_solution(reg):
    X, _, pats = reg
    sol = solve_native(X, np.zeros(X.shape[0]), pats, lam=0.1)
    assert sol.status == "optimal" and np.all(sol.U == 0) and sol.objective_value == 0.0


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"lam": -1.0}, InvalidParameterError),
        ({"lam": 0.0}, InvalidParameterError),
        ({"lam": np.nan}, NonFiniteError),
        ({"tol": 0.0}, InvalidParameterError),
        ({"max_iter": 0}, InvalidParameterError),
        ({"activation": "tanh"}, InvalidParameterError),
        ({"loss": "hinge"}, InvalidParameterError),
        ({"dtype": np.int64}, InvalidParameterError),
        ({"dtype": "float16"}, InvalidParameterError),
        ({"loss": "logistic"}, LabelError),
        ({"memory_budget": 1000}, MemoryBudgetError),
    ],
)
def test_bad_parameters(reg, kwargs, err):
    X, y, pats = reg
    with pytest.raises(err):
        solve_native(X, y, pats, **kwargs)


def test_bad_data(reg):
    X, y, pats = reg
    with pytest.raises(ShapeError):
        solve_native(X, y[:-1], pats)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        solve_native(Xn, y, pats)
    with pytest.raises(PatternMismatchError):
        solve_native(X + 1.0, y, pats)
    with pytest.raises(InvalidParameterError):
        solve_native(X, y, "patterns")
    other = sample_patterns(X, 7, seed=9, bias=True)
    with pytest.raises(PatternMismatchError):
        solve_native(X, y, pats, warm_start=ConvexModel("gated_relu", other, U=np.zeros((4, other.n_patterns))))
    with pytest.raises(InvalidParameterError):
        solve_native(X, y, pats, warm_start=np.zeros((4, pats.n_patterns)))
    # a model whose weights were overwritten with NaN or inf after it was built
    warm = ConvexModel("gated_relu", pats, U=np.zeros((4, pats.n_patterns)))
    warm.U[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="warm_start has non-finite weights in U"):
        solve_native(X, y, pats, warm_start=warm)
    warm = ConvexModel("relu", pats, V=np.zeros((4, pats.n_patterns)), W=np.zeros((4, pats.n_patterns)))
    warm.V[0, 0] = np.inf
    with pytest.raises(NonFiniteError, match="in V"):
        solve_native(X, y, pats, activation="relu", warm_start=warm)


def test_inputs_not_modified(reg):
    X, y, pats = reg
    X0, y0 = X.copy(), y.copy()
    solve_native(X, y, pats, lam=0.5)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_no_nan_on_extreme_scaling(reg):
    X, y, pats = reg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for s in (1e-6, 1e6):
            sol = solve_native(X, s * y, pats, lam=0.5 * s, max_iter=200)
            assert np.all(np.isfinite(sol.U)) and np.isfinite(sol.objective_value)


def test_small_budget_shrinks_chunks_and_matches(reg):
    X, y, pats = reg
    full = solve_native(X, y, pats, lam=0.5, tol=1e-9)
    Xa = pats.design(X)
    op = ImplicitDesign(Xa, pats.mask, memory_budget=6000)
    assert op.rows < X.shape[0] and not op.mask_cached
    small = solve_native(X, y, pats, lam=0.5, tol=1e-9, memory_budget=20_000)
    assert small.extra["mask_cached"] is False
    assert np.isclose(small.objective_value, full.objective_value, rtol=1e-9)


def test_verbose_logs_progress(reg, capsys):
    X, y, pats = reg
    with pytest.warns(ConvergenceWarning):
        solve_native(X, y, pats, lam=0.05, tol=1e-10, max_iter=150, verbose=True)
    err = capsys.readouterr().err
    assert "[cvxnn.native]" in err and "gap" in err


def test_prox_penalty_is_the_proximal_map():
    from cvxnn.native.prox import dual_norms, penalty_norms, prox_penalty

    rng = np.random.default_rng(4)
    for c in (1, 3):
        V = rng.standard_normal((4, 6, c))
        t = 0.7
        Xp, pen = prox_penalty(V, t)
        assert np.isclose(pen, penalty_norms(Xp).sum())
        # optimality of the prox: V - Xp is in t * subdifferential  =>  dual norm <= t, and
        # <V - Xp, Xp> = t * penalty(Xp)
        R = V - Xp
        assert np.all(dual_norms(R) <= t + 1e-10)
        assert np.isclose(np.vdot(R, Xp), t * pen)
        # and no random perturbation does better on the prox objective
        def f(Z, V=V, t=t):
            return 0.5 * np.sum((Z - V) ** 2) + t * penalty_norms(Z).sum()

        for _ in range(5):
            assert f(Xp) <= f(Xp + 1e-3 * rng.standard_normal(V.shape)) + 1e-12


@pytest.mark.parametrize("tol", [1e-7, 1e-9])
def test_float32_reaches_its_float64_polish_at_tight_tolerances(tol):
    """float32 stops at its own precision level and the float64 polish certifies ``tol``."""
    from cvxnn.datasets import planted_teacher

    X, y = planted_teacher(400, 8, seed=1)
    pats = sample_patterns(X, 30, seed=1)
    lam = 0.1 * lam_max_gated(X, y, pats)
    sol = solve_native(X, y, pats, lam=lam, tol=tol, dtype=np.float32)
    assert sol.status == "optimal" and sol.rel_gap <= tol
    assert sol.extra["polish_iterations"] > 0


def test_a_stalled_float32_stage_leaves_budget_for_the_float64_polish():
    """A float32 R-FISTA stage stalled above its floor (relative gap 6e-5 on diabetes at
    0.003 lam_max) used all of max_iter, and the float64 polish that certifies never ran: the
    stage now gets F32_STAGE_SHARE of the budget."""
    datasets = pytest.importorskip("sklearn.datasets")
    import cvxnn

    X, y = datasets.load_diabetes(return_X_y=True)
    idx = np.random.default_rng(0).choice(len(X), 150, replace=False)
    X = X[idx]
    X = (X - X.mean(0)) / X.std(0)
    y = (y[idx] - y[idx].mean()) / y[idx].std()
    pats = cvxnn.sample_patterns(X, 30, seed=2, bias=True)
    lam = 0.003 * lam_max_gated(X, y, pats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s32 = solve_native(X, y, pats, activation="gated_relu", lam=lam, tol=1e-8, dtype=np.float32, max_iter=20000)
    s64 = solve_native(X, y, pats, activation="gated_relu", lam=lam, tol=1e-8, max_iter=20000)
    assert s64.status == "optimal"
    assert s32.status == "optimal" and s32.extra["polish_iterations"] > 0
    assert s32.objective_value == pytest.approx(s64.objective_value, rel=1e-7)
