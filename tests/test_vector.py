"""Tests for vector-output programs, losses and maps (cvxnn.vector)."""

from __future__ import annotations

import time
import warnings

import cvxpy as cp
import numpy as np
import pytest

from cvxnn.builders import build_program
from cvxnn.errors import InvalidParameterError, LabelError, ShapeError
from cvxnn.maps import gated_network_to_convex, to_network
from cvxnn.networks import GatedReLUNetwork
from cvxnn.patterns import Patterns, sample_patterns
from cvxnn.solution import ConvexModel
from cvxnn.vector import (
    VectorConvexProgram,
    build_vector_program,
    one_hot,
    program_penalty,
    relu_vector_factors,
    relu_vector_report,
    relu_vector_to_network,
)

LAM = 0.05


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((16, 2))
    W1 = rng.standard_normal((2, 3))
    Y = np.maximum(X @ W1, 0) @ rng.standard_normal((3, 3)) + 0.05 * rng.standard_normal((16, 3))
    pats = sample_patterns(X, 12, seed=1, bias=True)
    return X, Y, pats


@pytest.fixture(scope="module")
def classes():
    rng = np.random.default_rng(5)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    labels = np.repeat(np.arange(3), 6)
    X = centers[labels] + 0.6 * rng.standard_normal((18, 2))
    pats = sample_patterns(X, 10, seed=2, bias=True)
    return X, labels, pats


@pytest.fixture(scope="module")
def gated_sol(data):
    X, Y, pats = data
    return build_program(X, Y, activation="gated_relu", lam=LAM, patterns=pats).solve()


@pytest.fixture(scope="module")
def relu_sol(data):
    X, Y, pats = data
    return build_program(X, Y, activation="relu", lam=LAM, patterns=pats).solve()


def _nuclear_reference(X, Y, pats, lam):
    """Independent reference: one normNuc atom per block (slow but obviously right)."""
    Xa = pats.design(X)
    p, c = pats.n_patterns, Y.shape[1]
    Us = [cp.Variable((Xa.shape[1], c)) for _ in range(p)]
    fit = sum(cp.multiply(np.repeat(pats.mask[:, i : i + 1], c, axis=1).astype(float), Xa @ Us[i])
              for i in range(p))
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - Y) + lam * sum(cp.normNuc(U) for U in Us)))
    prob.solve(solver="CLARABEL")
    return prob.value


# ------------------------------------------------------------------------------------ one_hot
def test_one_hot_encodes_and_validates():
    Y = one_hot([2, 0, 1, 2])
    assert Y.shape == (4, 3)
    np.testing.assert_array_equal(Y.argmax(axis=1), [2, 0, 1, 2])
    np.testing.assert_array_equal(Y.sum(axis=1), 1.0)
    assert one_hot(np.array([0.0, 1.0]), n_classes=4).shape == (2, 4)
    for bad in ([0.5, 1], [-1, 0], [[0, 1]]):
        with pytest.raises(LabelError):
            one_hot(bad)
    with pytest.raises(LabelError):
        one_hot([0, 3], n_classes=2)
    for bad_k in (2.5, 0, "3"):
        with pytest.raises(InvalidParameterError):
            one_hot([0, 1], n_classes=bad_k)


# ------------------------------------------------------------------------------------ gated
def test_build_program_dispatches_to_vector(data):
    X, Y, pats = data
    prog = build_program(X, Y, activation="gated_relu", lam=LAM, patterns=pats)
    assert isinstance(prog, VectorConvexProgram)
    assert prog.n_outputs == 3 and prog.U.shape == (3, pats.n_patterns * 3)


def test_gated_nuclear_matches_independent_reference(data, gated_sol):
    X, Y, pats = data
    assert gated_sol.status == "optimal"
    assert gated_sol.U.shape == (3, pats.n_patterns, 3)
    ref = _nuclear_reference(X, Y, pats, LAM)
    assert abs(gated_sol.objective_value - ref) <= 1e-6 * abs(ref)
    # the epigraph is tight: the program value is the objective of the returned blocks
    assert abs(gated_sol.objective(X, Y, LAM) - gated_sol.objective_value) <= 1e-6 * ref


def test_gated_map_back_objective_equal(data, gated_sol):
    X, Y, _ = data
    net = to_network(gated_sol)
    assert isinstance(net, GatedReLUNetwork) and net.w2.shape[1] == 3
    conv = gated_sol.objective(X, Y, LAM)
    assert abs(net.objective(X, Y, LAM) - conv) <= 1e-8 * conv
    np.testing.assert_allclose(net.predict(X), gated_sol.train_predict(X), rtol=0, atol=1e-10)
    # and back: same predictions, penalty no larger
    back = gated_network_to_convex(net, X)
    np.testing.assert_allclose(back.train_predict(X), gated_sol.train_predict(X), atol=1e-10)
    assert back.penalty() <= gated_sol.penalty() * (1 + 1e-9)


def test_gated_map_gives_one_neuron_per_singular_value_of_the_blocks(data):
    """A block of rank r maps to r neurons: the c - r singular values that an SVD returns at
    rounding level for an exactly low-rank block are not neurons (GATED_RANK_RTOL), and dropping
    them changes neither the predictions nor the penalty beyond rounding."""
    X, Y, pats = data
    rng = np.random.default_rng(0)
    d, p, c = 3, pats.n_patterns, 3
    U = np.zeros((d, p, c))
    ranks = {0: 1, 1: 2, 4: 3, 7: 1}
    for i, r in ranks.items():
        U[:, i, :] = rng.standard_normal((d, r)) @ rng.standard_normal((r, c))
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    net = to_network(model)
    assert net.n_neurons == sum(ranks.values())
    np.testing.assert_allclose(net.predict(X), model.train_predict(X), rtol=0, atol=1e-12)
    assert net.penalty() == pytest.approx(model.penalty(), rel=1e-12)
    from cvxnn.native import solve_native

    sol = solve_native(X, Y, pats, activation="gated_relu", lam=LAM, tol=1e-8)
    numerical_rank = sum(int(np.sum(s > 1e-10 * s[0])) for s in
                         (np.linalg.svd(sol.U[:, i, :], compute_uv=False) for i in range(p)) if s[0] > 0)
    assert to_network(sol).n_neurons == numerical_rank


def test_lam_parameter_is_reused(data):
    X, Y, pats = data
    prog = build_program(X, Y, activation="gated_relu", lam=LAM, patterns=pats)
    a = prog.solve(lam=10 * LAM)
    b = prog.solve(lam=LAM)
    assert a.lam == pytest.approx(10 * LAM) and b.lam == pytest.approx(LAM)
    assert a.penalty() < b.penalty()  # more regularisation, smaller nuclear norms


def test_one_vs_all_equals_independent_scalar_problems(data):
    X, Y, pats = data
    for act in ("gated_relu", "relu"):
        sol = build_vector_program(X, Y, activation=act, lam=LAM, patterns=pats,
                                   formulation="one_vs_all").solve()
        total = sum(
            build_program(X, Y[:, k], activation=act, lam=LAM, patterns=pats).solve().objective_value
            for k in range(Y.shape[1])
        )
        assert abs(sol.objective_value - total) <= 1e-6 * total
        blocks = (sol.U,) if act == "gated_relu" else (sol.V, sol.W)
        pen = sum(program_penalty(B, "one_vs_all") for B in blocks)
        assert sol.program_penalty == pytest.approx(pen)
        assert sol.formulation == "one_vs_all"


def test_nuclear_is_not_above_one_vs_all(data, gated_sol):
    X, Y, pats = data
    ova = build_vector_program(X, Y, activation="gated_relu", lam=LAM, patterns=pats,
                               formulation="one_vs_all").solve()
    assert gated_sol.objective_value <= ova.objective_value * (1 + 1e-7)


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_objective_value_is_the_program_at_the_returned_point_when_inaccurate(data, activation):
    # an SCS solve stopped early leaves the nuclear norms' epigraphs loose: objective_value
    # must still be the program at the returned blocks (not the solver's epigraph value,
    # which fell below the optimum), and the solver's own value is kept beside it
    X, Y, pats = data
    program = build_vector_program(X, Y, activation=activation, lam=LAM, patterns=pats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = program.solve("SCS", max_iters=25)
    assert sol.status != "optimal"
    blocks = [sol.U] if activation == "gated_relu" else [sol.V, sol.W]
    fit = sol.predict(X)
    value = 0.5 * np.sum((fit - Y) ** 2) + LAM * sum(program_penalty(B) for B in blocks)
    assert sol.objective_value == pytest.approx(value, rel=1e-9)
    assert "solver_objective" in sol.extra
    optimum = program.solve().objective_value
    assert sol.objective_value >= optimum * (1 - 1e-7)


def test_program_penalty_formulas():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((4, 5, 3))
    nuc = sum(np.linalg.svd(B[:, i, :], compute_uv=False).sum() for i in range(5))
    cols = sum(np.linalg.norm(B[:, i, k]) for i in range(5) for k in range(3))
    assert program_penalty(B) == pytest.approx(nuc)
    assert program_penalty(B, "one_vs_all") == pytest.approx(cols)
    assert nuc <= cols
    with pytest.raises(InvalidParameterError):
        program_penalty(B, "frobenius")


# ------------------------------------------------------------------------------------ losses
def test_cross_entropy_gated_exact_map(classes):
    X, labels, pats = classes
    Y = one_hot(labels)
    sol = build_program(X, Y, activation="gated_relu", loss="cross_entropy", lam=0.1, patterns=pats).solve()
    assert sol.status == "optimal"
    net = to_network(sol)
    conv = sol.objective(X, Y, 0.1, "cross_entropy")
    assert abs(net.objective(X, Y, 0.1, "cross_entropy") - conv) <= 1e-8 * conv
    assert abs(conv - sol.objective_value) <= 1e-6 * conv
    assert np.mean(net.predict(X).argmax(axis=1) == labels) >= 0.9


def test_cross_entropy_needs_one_hot(classes):
    X, labels, pats = classes
    with pytest.raises(LabelError):
        build_program(X, one_hot(labels) * 2, activation="gated_relu", loss="cross_entropy", patterns=pats)


def test_scalar_losses_refused_for_vector(data):
    X, Y, pats = data
    with pytest.raises(InvalidParameterError):
        build_program(X, Y, loss="logistic", patterns=pats)
    with pytest.raises(InvalidParameterError):
        build_vector_program(X, Y, patterns=pats, formulation="frobenius")
    with pytest.raises(ShapeError):
        build_vector_program(X, Y[:, 0], patterns=pats)


# ------------------------------------------------------------------------------------ forms
def test_min_norm_interpolates(data):
    X, Y, _ = data
    pats = sample_patterns(X, 40, seed=4, bias=True)
    sol = build_vector_program(X, Y, activation="gated_relu", form="min_norm", patterns=pats).solve()
    np.testing.assert_allclose(sol.train_predict(X), Y, atol=1e-6)
    assert sol.lam is None
    assert sol.objective_value == pytest.approx(sol.penalty(), rel=1e-6)


def test_max_margin_multiclass(classes):
    X, labels, pats = classes
    Y = one_hot(labels)
    sol = build_vector_program(X, Y, activation="relu", form="max_margin", patterns=pats).solve()
    F = sol.train_predict(X)
    margin = F[np.arange(len(labels)), labels][:, None] - F
    margin[np.arange(len(labels)), labels] = np.inf
    assert margin.min() >= 1 - 1e-6
    with pytest.raises(LabelError):
        build_vector_program(X, Y + 1, form="max_margin", patterns=pats)


# ------------------------------------------------------------------------------------ ReLU
def test_relu_vector_solution_and_exact_predictions(data, relu_sol, gated_sol):
    X, Y, _ = data
    assert relu_sol.V.shape == relu_sol.W.shape == gated_sol.U.shape
    assert relu_sol.max_violation <= 1e-7
    assert relu_sol.cone_duals[0].shape == (X.shape[0],) + relu_sol.V.shape[1:]
    net = to_network(relu_sol)
    np.testing.assert_allclose(net.predict(X), relu_sol.train_predict(X), atol=1e-7)
    # the gated value is a lower bound on the ReLU program and on the network
    assert gated_sol.objective_value <= relu_sol.objective_value + 1e-7
    assert gated_sol.objective_value <= net.objective(X, Y, LAM) + 1e-7


def test_relu_vector_report_side_by_side(data, relu_sol, gated_sol):
    X, Y, pats = data
    rep = relu_vector_report(X, Y, lam=LAM, patterns=pats, relu_solution=relu_sol, gated_solution=gated_sol)
    net = relu_vector_to_network(relu_sol, X=X)
    assert rep.network_objective == pytest.approx(net.objective(X, Y, LAM), rel=1e-12)
    assert rep.convex_value == pytest.approx(relu_sol.objective(X, Y, LAM), rel=1e-12)
    # its objective minus its certified gap (a lower bound on d*, also for an "optimal" solution)
    cert = gated_sol.gap if gated_sol.gap is not None else gated_sol.extra.get("certified_gap", 0.0)
    assert rep.gated_lower_bound == pytest.approx(gated_sol.objective(X, Y, LAM) - cert, rel=1e-12)
    assert rep.gated_lower_bound <= gated_sol.objective(X, Y, LAM)
    assert rep.gap == pytest.approx(rep.network_objective - rep.gated_lower_bound)
    assert rep.gap >= -1e-7
    assert rep.max_prediction_error <= 1e-7
    assert rep.n_svd_blocks + rep.n_split_blocks >= 1
    text = rep.summary()
    assert "gated ReLU lower bound" in text and "mapped ReLU network" in text
    with pytest.raises(InvalidParameterError):
        relu_vector_report(X, Y, lam=LAM, patterns=pats, relu_solution=gated_sol, gated_solution=gated_sol)


def _model_with_block(X, pats, V_block, i=0):
    d_a, p = pats.design_dim, pats.n_patterns
    V = np.zeros((d_a, p, V_block.shape[1]))
    V[:, i, :] = V_block
    return ConvexModel(activation="relu", patterns=pats, V=V, W=np.zeros_like(V))


def test_relu_map_uses_svd_when_left_factor_in_cone(data):
    X, Y, pats = data
    g = pats.gates[:, 0]
    b = np.array([1.0, -2.0, 0.5])
    model = _model_with_block(X, pats, -np.outer(g, b))  # left factor -g lies in -K_0
    fac = relu_vector_factors(model, X)
    assert fac.svd_blocks[0, 0] and not fac.split_blocks.any()
    net = fac.network
    assert net.n_neurons == 1
    np.testing.assert_allclose(net.predict(X), model.train_predict(X), atol=1e-12)
    assert net.penalty() == pytest.approx(model.penalty(), rel=1e-12)  # nuclear norm attained
    assert net.objective(X, Y, LAM) == pytest.approx(model.objective(X, Y, LAM), rel=1e-12)


def test_relu_map_splits_columns_otherwise(data):
    X, Y, pats = data
    Xa = pats.design(X)
    s0 = 2.0 * pats.mask[:, 0] - 1.0
    g = pats.gates[:, 0]
    rng = np.random.default_rng(0)
    # two different cone directions: g + small perturbations kept inside K_0
    cols = []
    while len(cols) < 2:
        v = g + 0.3 * np.linalg.norm(g) * rng.standard_normal(g.size)
        if np.all(s0 * (Xa @ v) >= 0):
            cols.append(v)
    block = np.column_stack([cols[0], -0.0 * cols[0], cols[1]])
    model = _model_with_block(X, pats, block)
    fac = relu_vector_factors(model, X)
    np.testing.assert_allclose(fac.network.predict(X), model.train_predict(X), atol=1e-12)
    assert fac.split_blocks[0, 0] and not fac.svd_blocks[0, 0]
    expected = np.linalg.norm(cols[0]) + np.linalg.norm(cols[1])
    assert fac.network.penalty() == pytest.approx(expected, rel=1e-12)
    assert fac.network.penalty() >= model.penalty() - 1e-12
    # without X the cones cannot be tested: always the columnwise split
    fac2 = relu_vector_factors(model)
    assert not fac2.svd_blocks.any() and fac2.split_blocks[0, 0]
    np.testing.assert_allclose(fac2.network.predict(X), model.train_predict(X), atol=1e-12)


def test_relu_factors_validation(data, gated_sol):
    with pytest.raises(InvalidParameterError):
        relu_vector_factors(gated_sol)
    X, _, pats = data
    model = _model_with_block(X, pats, np.ones((pats.design_dim, 2)))
    with pytest.raises(InvalidParameterError):
        relu_vector_factors(model, X, rank_tol=-1.0)
    with pytest.raises(InvalidParameterError):
        relu_vector_factors(model, X, cone_tol=None)


# ------------------------------------------------------------------------------------ compile
def test_compile_time_grows_linearly_in_p():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    Y = rng.standard_normal((60, 3))
    times = {}
    for p in (40, 160):
        pats = Patterns.from_gates(X, rng.standard_normal((3, p)))
        prog = build_vector_program(X, Y, activation="gated_relu", lam=0.1, patterns=pats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            prog.problem.get_problem_data(cp.CLARABEL, canon_backend=cp.SCIPY_CANON_BACKEND)
            times[p] = time.perf_counter() - t0
    # quadratic growth would give a ratio near 16; linear about 4 (plus constant overhead)
    assert times[160] < 10 * times[40] + 0.05


# ------------------------------------------------------- one-vs-all solutions: value = network
def _iris_standardized():
    datasets = pytest.importorskip("sklearn.datasets")
    X, labels = datasets.load_iris(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), one_hot(labels)


@pytest.mark.parametrize("loss, lam", [("cross_entropy", 1.0), ("squared", 2.0)])
def test_native_one_vs_all_objective_is_the_programs_and_the_networks(loss, lam):
    from cvxnn.native import solve_native
    from cvxnn.penalties import get_penalty

    X, Y = _iris_standardized()
    pats = sample_patterns(X, 12, seed=0, bias=True)
    sol = solve_native(X, Y, pats, activation="relu", loss=loss, lam=lam)
    assert sol.status == "optimal" and sol.formulation == "one_vs_all"
    # ConvexModel.penalty / objective follow the solution's program (column norms)
    cols = get_penalty("one_vs_all")
    assert sol.penalty() == pytest.approx(cols.value(sol.V) + cols.value(sol.W), rel=1e-12)
    assert sol.penalty() == pytest.approx(sol.program_penalty, rel=1e-12)
    assert sol.objective(X, Y, lam, loss) == pytest.approx(sol.objective_value, rel=1e-10)
    # the same blocks as a bare ConvexModel keep the nuclear norms
    bare = ConvexModel(activation="relu", patterns=pats, V=sol.V, W=sol.W)
    assert bare.penalty() <= sol.penalty() * (1 + 1e-12)
    # without the data the map splits every block by columns: exactly the program's value
    assert sol.training_X is None
    split = sol.to_network()
    assert split.objective(X, Y, lam, loss) == pytest.approx(sol.objective_value, rel=1e-10)
    # with the data it may use SVD factors in +-K_i, which can only lower the objective
    factors = relu_vector_factors(sol, X)
    net = factors.network
    assert net.objective(X, Y, lam, loss) <= sol.objective_value * (1 + 1e-9)
    np.testing.assert_allclose(net.predict(X), sol.train_predict(X), atol=1e-9)
    # a block is mapped by its SVD only when that strictly lowers its penalty
    blocks = np.concatenate([sol.V, sol.W], axis=1)
    one_column = (np.linalg.norm(blocks, axis=0) > 0).sum(axis=1) <= 1
    assert not np.any(factors.svd_blocks.ravel() & one_column)


def test_one_vs_all_svd_map_never_drops_singular_mass():
    """A block whose SVD would drop singular values (above rounding) is split by columns."""
    X, _ = _iris_standardized()
    pats = sample_patterns(X, 6, seed=1, bias=True)
    i = int(np.argmax(pats.mask.sum(axis=0)))
    Xa = pats.design(X)
    signs = 2.0 * pats.mask[:, i] - 1.0
    # a cone direction of pattern i (the column of the gate) and a tiny second direction
    g = pats.gates[:, i]
    assert np.all(signs * (Xa @ g) >= 0)
    V = np.zeros((pats.design_dim, pats.n_patterns, 3))
    W = np.zeros_like(V)
    V[:, i, 0] = g
    V[:, i, 1] = g + 1e-10 * np.linalg.norm(g) * np.eye(pats.design_dim)[0]
    from cvxnn.solution import ConvexSolution

    sol = ConvexSolution(activation="relu", patterns=pats, V=V, W=W, formulation="one_vs_all",
                         training_X=X, lam=1.0)
    f = relu_vector_factors(sol, X, rank_tol=1e-9)
    assert f.split_blocks[0, i] and not f.svd_blocks[0, i] and f.dropped_singular_mass == 0.0
    # the nuclear reading of the same blocks drops the second singular value instead
    g_sol = ConvexSolution(activation="relu", patterns=pats, V=V, W=W, formulation="nuclear",
                           training_X=X, lam=1.0)
    assert relu_vector_factors(g_sol, X, rank_tol=1e-9).dropped_singular_mass > 0
    np.testing.assert_allclose(f.network.predict(X), sol.train_predict(X), atol=1e-12)


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_block_penalty_names_select_their_formulation(data, activation):
    """penalty="nuclear" / "columnwise" is that formulation's program and is labelled so: the
    solution's objective(), its network's and objective_value agree (they disagreed when such a
    program was labelled one-vs-all)."""
    X, Y, pats = data
    for penalty, formulation in (("nuclear", "nuclear"), ("columnwise", "one_vs_all"), ("one_vs_all", "one_vs_all")):
        by_penalty = build_program(X, Y, activation=activation, lam=LAM, patterns=pats, penalty=penalty).solve()
        by_name = build_program(X, Y, activation=activation, lam=LAM, patterns=pats, formulation=formulation).solve()
        assert by_penalty.formulation == formulation
        assert by_penalty.objective_value == pytest.approx(by_name.objective_value, rel=1e-6)
        assert by_penalty.objective(X, Y, LAM) == pytest.approx(by_penalty.objective_value, rel=1e-6)
    # a whole-matrix penalty keeps its own value in objective_value / program_penalty
    fro = build_program(X, Y, activation="gated_relu", lam=LAM, patterns=pats, penalty="group_l2").solve()
    assert fro.formulation == "one_vs_all"
    assert fro.program_penalty == pytest.approx(float(np.linalg.norm(fro.U, axis=(0, 2)).sum()), rel=1e-6)


def test_model_formulation_is_validated_and_followed(data):
    X, Y, pats = data
    U = np.random.default_rng(0).standard_normal((pats.design_dim, pats.n_patterns, Y.shape[1]))
    with pytest.raises(InvalidParameterError, match="formulation"):
        ConvexModel(activation="gated_relu", patterns=pats, U=U, formulation="frobenius")
    ova = ConvexModel(activation="gated_relu", patterns=pats, U=U, formulation="one_vs_all")
    nuc = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    assert ova.penalty() == pytest.approx(float(np.linalg.norm(U, axis=0).sum()))
    assert nuc.penalty() == pytest.approx(float(np.linalg.svd(np.transpose(U, (1, 0, 2)), compute_uv=False).sum()))


def test_an_infeasible_min_norm_program_says_it_may_be_infeasible():
    """Clarabel fails (InsufficientProgress) on a min_norm program that cannot interpolate: the
    error only said "Try solver='SCS'"; it now names the likely infeasibility, and SCS reports
    it as an InfeasibleError."""
    from cvxnn.datasets import load_three_blobs
    from cvxnn.errors import InfeasibleError, SolverError
    from cvxnn.vector import build_vector_program, one_hot

    X, labels = load_three_blobs()
    prog = build_vector_program(X, one_hot(labels), activation="gated_relu", loss="squared", lam=0.05,
                                patterns=sample_patterns(X, 16, seed=0, bias=True), form="min_norm")
    try:
        prog.solve()
    except InfeasibleError:
        pass  # a solver that certifies infeasibility is right too
    except SolverError as exc:
        assert "may be infeasible (the patterns may not interpolate y exactly)" in str(exc)
    else:
        pytest.fail("an interpolation with 16 patterns of 120 blob points was reported solved")
    with pytest.raises(InfeasibleError):
        prog.solve("SCS")


def test_relu_vector_report_checks_the_solutions_it_reuses():
    """relu_vector_report took a gated solution at another lam (a "lower bound" of 25.0 against a
    network objective of 2.88), of the one-vs-all program, or uncertified (max_iterations) as d*."""
    import cvxnn
    from cvxnn.vector import build_vector_program, one_hot, relu_vector_report

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    Y = one_hot(np.argmax(X @ rng.standard_normal((3, 3)), axis=1), n_classes=3)
    pats = sample_patterns(X, 6, seed=0, bias=True)
    kw = dict(activation="gated_relu", loss="squared", patterns=pats)
    ok = build_vector_program(X, Y, lam=1.0, **kw).solve()
    rep = relu_vector_report(X, Y, lam=1.0, patterns=pats, gated_solution=ok)
    assert rep.gated_lower_bound <= rep.network_objective + 1e-6
    other = build_vector_program(X, Y, lam=100.0, **kw).solve()
    with pytest.raises(InvalidParameterError, match="solved at lam=100"):
        relu_vector_report(X, Y, lam=1.0, patterns=pats, gated_solution=other)
    ova = build_vector_program(X, Y, lam=1.0, formulation="one_vs_all", **kw).solve()
    with pytest.raises(InvalidParameterError, match="one_vs_all"):
        relu_vector_report(X, Y, lam=1.0, patterns=pats, gated_solution=ova)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rough = cvxnn.solve(X, Y, pats, activation="gated_relu", lam=1.0, solver="rfista", max_iter=2)
    assert rough.status != "optimal"
    rep = relu_vector_report(X, Y, lam=1.0, patterns=pats, gated_solution=rough)
    assert rep.gated_lower_bound <= rep.network_objective + 1e-9  # objective minus its certified gap


def test_failure_advice_does_not_send_the_nuclear_relu_program_to_the_native_solvers():
    """The advice said "the native solvers take this program" for the nuclear vector C-ReLU
    program, but following it solved the one-vs-all program (and the native nuclear one rarely
    certifies)."""
    from cvxnn.backends.cvxpy_adapter import _failure_advice
    from cvxnn.vector import build_vector_program, one_hot

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 2))
    Y = one_hot(rng.integers(0, 3, 20), n_classes=3)
    pats = sample_patterns(X, 4, seed=0, bias=True)
    nuclear = build_vector_program(X, Y, activation="relu", lam=1.0, patterns=pats, formulation="nuclear")
    ova = build_vector_program(X, Y, activation="relu", lam=1.0, patterns=pats, formulation="one_vs_all")
    assert "native" not in _failure_advice(nuclear, "CLARABEL")
    assert "native solvers take this program" in _failure_advice(ova, "CLARABEL")


def test_relu_vector_report_bound_subtracts_the_gap_of_an_optimal_loose_solve():
    """An "optimal" native gated solution at tol=1e-2 lies up to its certified gap above d*:
    gated_lower_bound was its objective (1.4e-6 above d* here, a negative report.gap)."""
    import warnings

    import cvxnn
    from cvxnn.patterns import Patterns
    from cvxnn.vector import relu_vector_report

    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, (40, 1))
    Y = np.c_[x[:, 0], 2 * x[:, 0]] + 0.01 * rng.standard_normal((40, 2))
    P = Patterns.from_gates(x, np.array([[0.0], [1.0]]), bias=True)
    exact = cvxnn.build_program(x, Y, activation="gated_relu", lam=1.0, patterns=P).solve()
    loose = cvxnn.solve(x, Y, P, activation="gated_relu", lam=1.0, tol=1e-2)
    assert loose.status == "optimal" and loose.gap > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = relu_vector_report(x, Y, lam=1.0, patterns=P, gated_solution=loose)
    assert rep.gated_lower_bound <= exact.objective_value * (1 + 1e-9)
    assert rep.gated_lower_bound == pytest.approx(loose.objective_value - loose.gap, rel=1e-12)
    assert rep.gap >= 0


@pytest.mark.parametrize("solver", ["auto", "rfista", "al", "clarabel"])
@pytest.mark.parametrize("loss", ["logistic", "hinge"])
def test_scalar_only_losses_are_refused_for_vector_targets_on_every_solver(solver, loss):
    """docs/vector.md: scalar-only losses are refused with InvalidParameterError; the native
    solvers raised LabelError (not an InvalidParameterError) and build_program did too."""
    from cvxnn import build_program, sample_patterns, solve
    from cvxnn.errors import InvalidParameterError

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    Y = np.eye(3)[rng.integers(0, 3, 30)]
    pats = sample_patterns(X, 6, seed=0, bias=True)
    activation = "relu" if solver == "al" else "gated_relu"
    with pytest.raises(InvalidParameterError, match="loss (supports scalar targets only|is for scalar labels)"):
        solve(X, Y, pats, activation=activation, loss=loss, lam=0.5, solver=solver)
    with pytest.raises(InvalidParameterError, match="loss (supports scalar targets only|is for scalar labels)"):
        build_program(X, Y, activation=activation, loss=loss, lam=0.5, patterns=pats)
