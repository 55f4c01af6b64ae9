"""Tests for cone decompositions (cvxnn.decomposition)."""

from __future__ import annotations

import numpy as np
import pytest

from cvxnn.builders import build_program
from cvxnn.decomposition import decomposable_blocks, decompose, implicit_equalities
from cvxnn.errors import InfeasibleError, InvalidParameterError
from cvxnn.networks import ReLUNetwork
from cvxnn.patterns import Patterns, sample_patterns
from cvxnn.solution import ConvexModel

LAM = 0.1


@pytest.fixture(scope="module")
def scalar():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((25, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0) - np.maximum(X @ rng.standard_normal(3), 0)
    pats = sample_patterns(X, 30, seed=0, bias=True)
    sol = build_program(X, y, activation="gated_relu", lam=LAM, patterns=pats).solve()
    return X, y, sol


@pytest.fixture(scope="module")
def socp_result(scalar):
    X, y, sol = scalar
    return decompose(sol, X, y, method="socp")


def _check_exact(res, X, gated):
    U = gated.U
    V, W = res.model.V, res.model.W
    # v - w = u (up to rounding), both in their cones, ReLU predictions = gated predictions
    np.testing.assert_allclose(V - W, U, rtol=0, atol=1e-12 * max(1.0, np.abs(V).max()))
    assert res.model.max_cone_violation(X) <= 1e-8
    assert res.max_violation <= 1e-8
    f_gated = gated.train_predict(X)
    np.testing.assert_allclose(res.network.predict(X), f_gated, rtol=0, atol=1e-7)
    np.testing.assert_allclose(res.model.train_predict(X), f_gated, rtol=0, atol=1e-10)
    assert res.prediction_gap <= 1e-7 and res.reconstruction_error <= 1e-12


def test_socp_decomposition_is_exact(scalar, socp_result):
    X, y, sol = scalar
    res = socp_result
    assert res.all_feasible and not res.approximate and res.infeasible_blocks == []
    assert res.model.activation == "relu" and isinstance(res.network, ReLUNetwork)
    _check_exact(res, X, sol)
    assert res.d_star == pytest.approx(sol.objective(X, y, LAM), rel=1e-12)
    assert res.relu_objective == pytest.approx(res.network.objective(X, y, LAM), rel=1e-12)
    assert res.relu_objective >= res.d_star - 1e-9  # the gated value is a lower bound
    assert "ReLU objective" in res.summary()


@pytest.mark.parametrize("method", ["lp", "gate"])
def test_lp_and_gate_decompositions_are_exact_and_not_smaller(scalar, socp_result, method):
    X, y, sol = scalar
    res = decompose(sol, X, y, method=method)
    _check_exact(res, X, sol)
    # the SOCP minimises sum ||v_i|| + ||w_i||
    assert socp_result.model.penalty() <= res.model.penalty() * (1 + 1e-7)


def test_objectives_without_targets(scalar, socp_result):
    X, _, sol = scalar
    res = decompose(sol, X)  # d* from the solution's objective value
    assert res.d_star == pytest.approx(socp_result.d_star, rel=1e-7)
    assert res.relu_objective == pytest.approx(socp_result.relu_objective, rel=1e-7)
    plain = ConvexModel(activation="gated_relu", patterns=sol.patterns, U=sol.U)
    res2 = decompose(plain, X, method="gate")
    assert res2.d_star is None and res2.relu_objective is None and res2.notes


@pytest.mark.filterwarnings("ignore::cvxnn.errors.InaccurateSolutionWarning")  # small chunks: "almost solved"
def test_chunks_and_parallel_match_single_program(scalar, socp_result):
    X, y, sol = scalar
    chunked = decompose(sol, X, y, chunk_size=7)
    assert len(chunked.statuses) == int(np.ceil((np.linalg.norm(sol.U, axis=0) > 0).sum() / 7))
    _check_exact(chunked, X, sol)
    # same SOCP split into independent pieces: same optimal penalty
    assert chunked.model.penalty() == pytest.approx(socp_result.model.penalty(), rel=1e-6)
    par = decompose(sol, X, y, n_jobs=2, backend="threading")
    assert len(par.statuses) == 2
    _check_exact(par, X, sol)
    assert par.relu_objective == pytest.approx(socp_result.relu_objective, rel=1e-6)


def test_full_row_rank_every_block_decomposes_and_bound_holds():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 9))
    y = rng.standard_normal(6)
    pats = sample_patterns(X, 40, seed=1)
    sol = build_program(X, y, activation="gated_relu", lam=0.05, patterns=pats).solve()
    # every nonzero direction decomposes, not only the solution: random blocks too
    U = rng.standard_normal(sol.U.shape)
    assert decomposable_blocks(X, pats, U).all()
    res = decompose(sol, X, y)
    assert res.all_feasible and res.feasible.all()
    _check_exact(res, X, sol)
    assert res.kappa == pytest.approx(np.linalg.cond(X), rel=1e-10)
    assert res.d_star <= res.relu_objective + 1e-9
    assert res.relu_objective <= res.bound + 1e-9
    expected = res.d_star + 2 * 0.05 * res.kappa * np.linalg.norm(sol.U, axis=0).sum()
    assert res.bound == pytest.approx(expected, rel=1e-12)


def test_vector_decomposition_columnwise():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((14, 2))
    Y = rng.standard_normal((14, 3))
    pats = sample_patterns(X, 10, seed=3, bias=True)
    sol = build_program(X, Y, activation="gated_relu", lam=LAM, patterns=pats).solve()
    cols = decompose(sol, X, Y, vector_mode="columns")
    assert cols.model.V.shape == sol.U.shape and cols.feasible.shape == sol.U.shape[1:]
    svd = decompose(sol, X, Y)  # vector_mode="svd"
    assert svd.feasible.shape == (sol.U.shape[1], min(sol.U.shape[0], 3))
    for res in (cols, svd):
        _check_exact(res, X, sol)
        assert res.network.w2.shape[1] == 3
        assert res.relu_objective == pytest.approx(res.network.objective(X, Y, LAM), rel=1e-12)
        assert res.relu_objective >= res.d_star - 1e-9
    # decomposing the singular factors never costs more than decomposing the columns here
    assert svd.relu_objective <= cols.relu_objective * (1 + 1e-6)


# ------------------------------------------------------------------------------ singular cones
@pytest.fixture(scope="module")
def singular():
    """Pattern 0 comes from the gate (0, 1), orthogonal to x_1 = (1, 0) and x_2 = (-1, 0):
    K_0 = {w : w_1 = 0, w_2 >= 0}, so K_0 - K_0 = {w_1 = 0} is not R^2."""
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-0.5, 2.0]])
    pats = Patterns.from_gates(X, np.array([[0.0, 1.0], [1.0, 0.5]]))
    return X, pats


def test_implicit_equalities_found(singular):
    X, pats = singular
    J = implicit_equalities(X, pats)
    np.testing.assert_array_equal(J[:, 0], [True, True, False, False, False])
    assert not J[:, 1].any()
    U = np.array([[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(decomposable_blocks(X, pats, U, implicit=J), [False, True])
    U_ok = np.array([[0.0, 1.0], [1.0, 1.0]])  # u_0 in span(K_0)
    assert decomposable_blocks(X, pats, U_ok).all()


def test_infeasible_block_raise_report_refit(singular):
    X, pats = singular
    y = np.array([1.0, -1.0, 2.0, 0.5, 1.0])
    model = ConvexModel(activation="gated_relu", patterns=pats, U=np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(InfeasibleError, match=r"\(0,\)"):
        decompose(model, X, y, lam=LAM)
    rep = decompose(model, X, y, lam=LAM, on_infeasible="report")
    assert rep.infeasible_blocks == [(0,)] and rep.approximate and not rep.all_feasible
    np.testing.assert_array_equal(rep.feasible, [False, True])
    assert np.all(rep.model.V[:, 0] == 0) and np.all(rep.model.W[:, 0] == 0)
    np.testing.assert_allclose(rep.model.V[:, 1] - rep.model.W[:, 1], [1.0, 1.0], atol=1e-12)
    assert rep.prediction_gap > 0.1  # dropping the block changes the fit, and it is reported
    ref = decompose(model, X, y, lam=LAM, on_infeasible="refit", refit_lam=1e-4)
    assert ref.approximate and ref.model.max_cone_violation(X) <= 1e-7
    assert ref.prediction_gap < rep.prediction_gap
    assert any("refit" in n for n in ref.notes)
    assert ref.relu_objective == pytest.approx(ref.network.objective(X, y, LAM), rel=1e-12)


def test_singular_but_decomposable_block_uses_lp_with_gate_method(singular):
    X, pats = singular
    U = np.array([[0.0, 1.0], [1.0, -2.0]])  # u_0 = (0, 1) lies in span(K_0)
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    res = decompose(model, X, method="gate")
    assert res.all_feasible
    np.testing.assert_allclose(res.model.V - res.model.W, U, atol=1e-12)
    assert res.model.max_cone_violation(X) <= 1e-8
    np.testing.assert_allclose(res.network.predict(X), model.train_predict(X), atol=1e-8)


def test_input_validation(scalar):
    X, y, sol = scalar
    relu = ConvexModel(activation="relu", patterns=sol.patterns, V=np.abs(sol.U), W=np.zeros_like(sol.U))
    with pytest.raises(InvalidParameterError):
        decompose(relu, X)
    for kw in ({"method": "qp"}, {"method": ["socp"]}, {"vector_mode": "rows"}, {"on_infeasible": "ignore"},
               {"n_jobs": 0}, {"chunk_size": 0}, {"tol": -1.0}, {"tol": None}, {"refit_lam": -1.0}):
        with pytest.raises(InvalidParameterError):
            decompose(sol, X, **kw)
    with pytest.raises(InvalidParameterError):
        decompose("not a model", X)
    with pytest.raises(InvalidParameterError):
        decomposable_blocks(X, sol.patterns, sol.U, tol=float("nan"))
    with pytest.raises(InvalidParameterError):
        implicit_equalities(X, "patterns")
    with pytest.raises(ValueError):  # other data than the patterns' (PatternMismatchError)
        decompose(sol, X[:-1])


@pytest.mark.parametrize("mode", ["columns", "svd"])
def test_vector_singular_column_refit_and_report(singular, mode):
    X, pats = singular
    U = np.zeros((2, 2, 2))
    U[:, 0, 0] = [1.0, 1.0]  # outside span(K_0) = {w_1 = 0}
    U[:, 0, 1] = [0.0, 1.0]  # inside
    U[:, 1, :] = [[1.0, -1.0], [0.5, 2.0]]
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    Y = np.arange(10.0).reshape(5, 2) / 10
    with pytest.raises(InfeasibleError, match=r"\(0, 0\)"):
        decompose(model, X, Y, lam=LAM, vector_mode=mode)
    rep = decompose(model, X, Y, lam=LAM, on_infeasible="report", vector_mode=mode)
    if mode == "columns":
        assert rep.infeasible_blocks == [(0, 0)]
        np.testing.assert_array_equal(rep.feasible, [[False, True], [True, True]])
        np.testing.assert_allclose(rep.model.V[:, 0, 1] - rep.model.W[:, 0, 1], [0.0, 1.0], atol=1e-12)
    else:  # both singular factors of U_0 = [[1, 0], [1, 1]] leave span(K_0)
        assert rep.infeasible_blocks == [(0, 0), (0, 1)]
        np.testing.assert_array_equal(rep.feasible, [[False, False], [True, True]])
    np.testing.assert_allclose(rep.model.V[:, 1] - rep.model.W[:, 1], U[:, 1], atol=1e-12)
    ref = decompose(model, X, Y, lam=LAM, on_infeasible="refit", refit_lam=1e-4, vector_mode=mode)
    assert ref.model.V.shape == U.shape and ref.model.max_cone_violation(X) <= 1e-7
    assert ref.prediction_gap < rep.prediction_gap
    assert ref.relu_objective == pytest.approx(ref.network.objective(X, Y, LAM), rel=1e-12)
    np.testing.assert_allclose(ref.network.predict(X), ref.model.train_predict(X), atol=1e-7)


def test_vector_full_row_rank_bound_and_one_vs_all_d_star():
    from cvxnn.vector import build_vector_program

    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, 8))
    Y = rng.standard_normal((5, 2))
    pats = sample_patterns(X, 12, seed=2)
    sol = build_program(X, Y, activation="gated_relu", lam=0.05, patterns=pats).solve()
    for mode in ("svd", "columns"):
        res = decompose(sol, X, Y, vector_mode=mode)
        assert res.all_feasible and res.kappa == pytest.approx(np.linalg.cond(X), rel=1e-10)
        _check_exact(res, X, sol)
        assert res.d_star <= res.relu_objective + 1e-9 <= res.bound + 2e-9
        if mode == "svd":  # the theorem's form with nuclear norms
            nuc = np.linalg.svd(np.transpose(sol.U, (1, 0, 2)), compute_uv=False).sum()
            assert res.bound == pytest.approx(res.d_star + 2 * 0.05 * res.kappa * nuc, rel=1e-12)
    # d* is the nuclear-norm objective even for a one-vs-all solution given without targets
    ova = build_vector_program(X, Y, activation="gated_relu", lam=0.05, patterns=pats,
                               formulation="one_vs_all").solve()
    res2 = decompose(ova, X, method="gate")
    assert res2.d_star == pytest.approx(ova.objective(X, Y, 0.05), rel=1e-6)
    assert res2.relu_objective == pytest.approx(res2.network.objective(X, Y, 0.05), rel=1e-6)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 12), d=st.integers(1, 4), c=st.sampled_from([0, 2]),
       bias=st.booleans())
def test_gate_decomposition_property(seed, n, d, c, bias):
    """Closed-form decomposition of arbitrary blocks on sampled gates: exact and cone-feasible."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    pats = sample_patterns(X, 6, seed=seed, bias=bias, drop_zero=False)
    shape = (pats.design_dim, pats.n_patterns) + ((c,) if c else ())
    U = rng.standard_normal(shape) * (rng.random(shape) < 0.7)
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    res = decompose(model, X, method="gate")
    assert res.all_feasible  # Gaussian gates have no ties: every cone has an interior
    np.testing.assert_allclose(res.model.V - res.model.W, U, rtol=0, atol=1e-12 * max(1.0, np.abs(res.model.V).max()))
    scale = max(1.0, np.abs(pats.design(X)).max() * np.abs(res.model.V).max())
    assert res.max_violation <= 1e-12 * scale
    np.testing.assert_allclose(res.network.predict(X), model.train_predict(X), atol=1e-9 * scale)


def test_a_program_stopped_short_is_reported_approximate(scalar):
    """A decomposition program that ends at its iteration limit leaves a point outside the cones:
    the result says so (approximate, cvxnn's status, a warning), it does not claim exactness."""
    from cvxnn.errors import InaccurateSolutionWarning

    X, y, sol = scalar
    with pytest.warns(InaccurateSolutionWarning):
        res = decompose(sol, X, y, method="socp", solver="clarabel", max_iter=1)
    assert res.statuses == ("max_iterations",)
    assert res.approximate and res.all_feasible  # every block decomposes in principle
    assert res.max_violation > 1e-6
    assert "(approximate)" in res.summary()
    exact = decompose(sol, X, y, method="socp")
    assert exact.statuses == ("optimal",) and not exact.approximate
    assert "(exact)" in exact.summary()


def test_decompose_checks_targets_against_the_loss_and_the_joblib_backend():
    import numpy as np
    import pytest

    import cvxnn
    from cvxnn.errors import InvalidParameterError, LabelError

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 2)), rng.standard_normal(12)
    pats = cvxnn.sample_patterns(X, 4, seed=0, bias=True)
    sol = cvxnn.solve(X, y, pats, activation="gated_relu", lam=0.1)
    with pytest.raises(LabelError):  # continuous targets with the logistic loss (build_program refuses them too)
        cvxnn.decompose(sol, X, y, lam=0.1, loss="logistic")
    with pytest.raises(InvalidParameterError, match="backend"):
        cvxnn.decompose(sol, X, y, lam=0.1, n_jobs=2, backend="bogus")


def test_gate_method_with_a_tiny_margin_is_still_exact():
    """A gate with a margin of 1e-15 on a data point asked for a shift t = 1e15 along it: v - w = u
    was lost to rounding (prediction gap 0.13, cone violation, ReLU objective 2e14) and the
    result said exact. Such blocks go to the LP, and every result is checked."""
    import cvxnn
    from cvxnn.solution import ConvexModel

    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.5, -1.0], [-0.3, 2.0]])
    y = np.array([1.0, 0.5, -1.0, 2.0, 0.3])
    P = cvxnn.Patterns.from_gates(X, np.array([[1e-15], [1.0]]))
    m = ConvexModel(activation="gated_relu", patterns=P, U=np.array([[-1.0], [0.3]]))
    for method in ("socp", "gate"):
        r = decompose(m, X, y, lam=0.1, method=method)
        assert not r.approximate
        assert r.prediction_gap <= 1e-12 and r.reconstruction_error <= 1e-12 and r.max_violation <= 1e-12
        assert r.relu_objective < 10.0


@pytest.mark.filterwarnings("ignore::cvxnn.errors.InaccurateSolutionWarning")
def test_decompose_runs_on_the_dask_backend(scalar, socp_result):
    """backend="dask" (in decompose's list) went straight to joblib's Parallel, which raised
    'Invalid backend: dask'; it is a context backend now, as joblib documents it."""
    distributed = pytest.importorskip("distributed")
    X, y, sol = scalar
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        par = decompose(sol, X, y, n_jobs=2, chunk_size=7, backend="dask")
    seq = decompose(sol, X, y, chunk_size=7)
    np.testing.assert_allclose(par.model.V, seq.model.V, rtol=1e-9, atol=1e-12)
    _check_exact(par, X, sol)
