"""QA of the vector-output programs (docs/vector.md): which value is exact and which a bound,
maps both ways, native against Clarabel, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cvxnn
from cvxnn import Patterns, build_program, sample_patterns, to_network
from cvxnn.errors import ConvergenceWarning, InvalidParameterError, LabelError, NonFiniteError, ShapeError
from cvxnn.maps import gated_network_to_convex, relu_network_to_convex
from cvxnn.networks import GatedReLUNetwork, ReLUNetwork
from cvxnn.solution import ConvexModel
from cvxnn.vector import build_vector_program, one_hot, relu_vector_factors, relu_vector_report

FORMULATIONS = ("nuclear", "one_vs_all")


def _instance(seed: int, loss: str):
    rng = np.random.default_rng(seed)
    n, d, c = int(rng.integers(8, 14)), int(rng.integers(1, 4)), int(rng.integers(2, 4))
    X = rng.standard_normal((n, d))
    Y = one_hot(rng.integers(0, c, n), c) if loss == "cross_entropy" else rng.standard_normal((n, c))
    pats = sample_patterns(X, int(rng.integers(2, 7)), seed=seed, bias=bool(seed % 2))
    return X, Y, pats, float(10 ** rng.uniform(-2, 0.3))


def _report_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 2))
    Y = one_hot(rng.integers(0, 3, 20), 3)
    return X, Y, sample_patterns(X, 6, seed=0, bias=True), rng


# ------------------------------------------------------------------ which value is exact, which a bound
@pytest.mark.parametrize("seed", range(6))
def test_exact_values_and_bound_directions_on_random_instances(seed):
    """docs/vector.md, "Which value is exact": every claimed equality and inequality."""
    loss = "cross_entropy" if seed % 3 == 0 else "squared"
    X, Y, pats, lam = _instance(seed, loss)
    vals, nets = {}, {}
    for act in ("gated_relu", "relu"):
        for form in FORMULATIONS:
            sol = build_program(X, Y, activation=act, loss=loss, lam=lam, patterns=pats, formulation=form).solve()
            assert sol.status == "optimal" and sol.formulation == form
            v = sol.objective_value
            tol = 1e-6 * max(1.0, abs(v))
            assert sol.objective(X, Y, lam) == pytest.approx(v, rel=1e-9, abs=1e-12)
            net, cols = to_network(sol), to_network(sol, split="columns")
            assert np.abs(net.predict(X) - sol.train_predict(X)).max() <= 1e-6
            vals[act, form], nets[act, form] = v, net.objective(X, Y, lam, loss)
            if act == "gated_relu" and form == "nuclear":
                assert nets[act, form] == pytest.approx(v, rel=1e-8)  # exact
            if form == "one_vs_all":  # exact for the column network, an upper bound for the SVD one
                assert nets[act, form] <= v + tol
                assert cols.objective(X, Y, lam, loss) == pytest.approx(v, rel=1e-6)
            if act == "relu" and form == "nuclear":  # a lower bound on its own network
                assert v <= nets[act, form] + tol
    d_star = vals["gated_relu", "nuclear"]
    tol = 1e-6 * max(1.0, abs(d_star))
    assert d_star <= min(nets["relu", "nuclear"], nets["relu", "one_vs_all"]) + tol
    assert d_star <= vals["relu", "nuclear"] + tol <= vals["relu", "one_vs_all"] + 2 * tol
    assert d_star <= vals["gated_relu", "one_vs_all"] + tol


def test_nuclear_relu_value_is_not_a_lower_bound_on_the_networks_on_the_patterns():
    """One neuron with output weights (1, -1): the nuclear C-ReLU program pays ||W1|| (1 + 1) where
    the network pays sqrt(2) ||W1||, so its value is above that network's objective (docs: neither)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 2))
    W1, w2 = np.array([[1.0], [0.5]]), np.array([[1.0, -1.0]])
    Y = np.maximum(X @ W1, 0) @ w2
    lam = 0.05
    pats = Patterns.from_gates(X, np.hstack([W1, sample_patterns(X, 5, seed=0).gates]))
    scale = np.sqrt(np.linalg.norm(w2) / np.linalg.norm(W1))  # balanced: ||W1|| = ||w2||
    teacher = ReLUNetwork(W1=W1 * scale, w2=w2 / scale).objective(X, Y, lam)
    relu = build_program(X, Y, lam=lam, patterns=pats, formulation="nuclear").solve().objective_value
    gated = build_program(X, Y, activation="gated_relu", lam=lam, patterns=pats).solve().objective_value
    assert relu > 1.3 * teacher
    assert gated <= teacher * (1 + 1e-7)


# ------------------------------------------------------------------ relu_vector_report
def test_report_refuses_a_reused_solution_of_another_loss():
    """A squared-loss gated solution in a cross-entropy report was taken as d*: 17.92, above the
    network's 17.86 (report.gap -0.063)."""
    X, Y, pats, _ = _report_data()
    g_sq = build_program(X, Y, activation="gated_relu", lam=0.1, patterns=pats).solve()
    with pytest.raises(InvalidParameterError, match="SquaredLoss"):
        relu_vector_report(X, Y, lam=0.1, loss="cross_entropy", patterns=pats, gated_solution=g_sq)


def test_report_certifies_a_reused_gated_solution_on_the_reports_targets():
    """A gated solution solved on other targets was taken as d*: 38.07, twice the network's 17.86."""
    X, Y, pats, rng = _report_data()
    Y_other = one_hot(rng.integers(0, 3, 20), 3)
    other = build_program(X, Y_other, activation="gated_relu", loss="cross_entropy", lam=0.1,
                          patterns=pats).solve()
    fresh = relu_vector_report(X, Y, lam=0.1, loss="cross_entropy", patterns=pats)
    rep = relu_vector_report(X, Y, lam=0.1, loss="cross_entropy", patterns=pats, gated_solution=other,
                             relu_solution=None)
    assert rep.gap >= 0
    assert rep.gated_lower_bound <= fresh.gated_lower_bound * (1 + 1e-9)
    own = build_program(X, Y, activation="gated_relu", loss="cross_entropy", lam=0.1, patterns=pats).solve()
    reused = relu_vector_report(X, Y, lam=0.1, loss="cross_entropy", patterns=pats, gated_solution=own)
    assert reused.gated_lower_bound == pytest.approx(fresh.gated_lower_bound, rel=1e-6)


@pytest.mark.parametrize("shape", [(20,), (20, 1)])
def test_report_names_the_target_shape_passed(shape):
    X, Y, pats, _ = _report_data()
    with pytest.raises(ShapeError, match=r"got \(20, 1\)" if len(shape) == 2 else r"got \(20,\)"):
        relu_vector_report(X, Y[:, 0].reshape(shape), lam=0.1, patterns=pats)


def test_report_summary_names_the_nuclear_program():
    """The summary called the nuclear program's value "columnwise", the other name of one-vs-all."""
    X, Y, pats, _ = _report_data()
    text = relu_vector_report(X, Y, lam=0.1, loss="cross_entropy", patterns=pats).summary()
    assert "C-ReLU (nuclear) convex value" in text and "columnwise" not in text


# ------------------------------------------------------------------ maps both ways
@pytest.mark.parametrize("bias", [False, True])
def test_gated_vector_maps_both_ways_are_exact(bias):
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((12, 3)), rng.standard_normal((12, 3))
    G = rng.standard_normal((3, 3))
    G = np.hstack([G, G[:, :1], 2 * G[:, 1:2]])  # duplicate gates
    W1, w2 = rng.standard_normal((3, 5)), rng.standard_normal((5, 3))
    W1[:, 1] = 0.0  # a zero neuron
    w2[3] = 0.0
    kw = {"b1": rng.standard_normal(5), "gate_bias": np.r_[rng.standard_normal(3), 0.0, 0.0]} if bias else {}
    for m in (0, 5):
        net = GatedReLUNetwork(W1=W1[:, :m], w2=w2[:m], gates=G[:, :m],
                               **{k: v[:m] for k, v in kw.items()})
        model = gated_network_to_convex(net, X)
        assert np.abs(model.train_predict(X) - net.predict(X)).max() <= 1e-12
        assert model.objective(X, Y, 0.4) <= net.objective(X, Y, 0.4) + 1e-12
        back = to_network(model)
        assert np.abs(back.predict(X) - net.predict(X)).max() <= 1e-12
        assert back.objective(X, Y, 0.4) == pytest.approx(model.objective(X, Y, 0.4), rel=1e-12)
        assert gated_network_to_convex(back, X).objective(X, Y, 0.4) == pytest.approx(
            model.objective(X, Y, 0.4), rel=1e-12)


def test_relu_vector_network_to_convex_reproduces_predictions_within_sqrt2_penalty():
    """A vector neuron splits into V and W columns (positive / negative outputs): the predictions
    are the network's, and the nuclear penalty is at most sqrt(2) times the network's (attained by
    a balanced neuron with output weights (1, -1)); it raised ShapeError for vector output."""
    X = np.random.default_rng(0).standard_normal((6, 2))
    net = ReLUNetwork(W1=np.array([[1.0, 0.5], [0.0, -1.0]]), w2=np.array([[1.0, -1.0, 0.5], [-2.0, 0.0, 1.0]]))
    model = relu_network_to_convex(net, X)
    assert model.V.shape[::2] == (2, 3) and model.max_cone_violation(X) == 0.0
    np.testing.assert_allclose(model.train_predict(X), net.predict(X), rtol=0, atol=1e-14)
    assert model.penalty() <= np.sqrt(2) * net.penalty() * (1 + 1e-12)
    one = ReLUNetwork(W1=np.array([[np.sqrt(2.0)], [0.0]]), w2=np.array([[1.0, -1.0]]))  # balanced: ||a|| = ||w2||
    assert relu_network_to_convex(one, X).penalty() == pytest.approx(np.sqrt(2) * one.penalty(), rel=1e-12)


@pytest.mark.parametrize("bias", [False, True])
def test_relu_vector_blocks_to_network_reproduce_predictions_and_order_objectives(bias):
    rng = np.random.default_rng(2 + bias)
    X, Y = rng.standard_normal((14, 3)), rng.standard_normal((14, 3))
    pats = Patterns.from_gates(X, rng.standard_normal((3 + bias, 4)), bias=bias)
    g, S, Xa = pats.gates, 2.0 * pats.mask - 1.0, pats.design(X)

    def blocks():
        B = np.zeros((3 + bias, pats.n_patterns, 3))
        for i in range(1, pats.n_patterns):  # block 0 stays zero
            cands = [g[:, i]] + [v for v in g[:, i] + 0.7 * rng.standard_normal((20, 3 + bias))
                                 if np.all(S[:, i] * (Xa @ v) >= 0)]
            for k in range(3):
                if rng.random() < 0.7:  # some zero columns
                    B[:, i, k] = cands[rng.integers(len(cands))] * rng.random()
        return B

    V, W = blocks(), blocks()
    for form in ("nuclear", "one_vs_all"):
        model = ConvexModel(activation="relu", patterns=pats, V=V, W=W, formulation=form)
        cvx = model.objective(X, Y, 0.3)
        for split in ("auto", "columns"):
            net = relu_vector_factors(model, X, split=split).network
            assert np.abs(net.predict(X) - model.train_predict(X)).max() <= 1e-12
            obj = net.objective(X, Y, 0.3)
            if form == "nuclear":
                assert obj >= cvx - 1e-10
            elif split == "columns":
                assert obj == pytest.approx(cvx, rel=1e-12)
            else:
                assert obj <= cvx + 1e-10


# ------------------------------------------------------------------ native against Clarabel
def _native_cases():
    return [("gated_relu", "nuclear", "rfista"), ("gated_relu", "nuclear", "auto"),
            ("gated_relu", "one_vs_all", "auto"), ("relu", "one_vs_all", "working_set"),
            ("relu", "one_vs_all", "al"), ("relu", "nuclear", "al")]


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_native_agrees_with_clarabel_on_every_formulation(loss):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 2))
    Y = rng.standard_normal((12, 3)) if loss == "squared" else one_hot(np.arange(12) % 3, 3)
    G = rng.standard_normal((3, 3))
    pats = Patterns.from_gates(X, np.hstack([G, G[:, :2]]), bias=True)  # duplicate gates too
    lam = 0.2
    for act, form, solver in _native_cases():
        ref = cvxnn.solve(X, Y, pats, activation=act, loss=loss, lam=lam, solver="clarabel", formulation=form)
        # the augmented Lagrangian on the nuclear C-ReLU program stops at max_iter below tol=1e-6 here
        tol = 1e-6 if (act, form) == ("relu", "nuclear") else 1e-8
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            nat = cvxnn.solve(X, Y, pats, activation=act, loss=loss, lam=lam, solver=solver, formulation=form,
                              tol=tol)
        assert nat.formulation == form and ref.formulation == form
        assert nat.status == ref.status == "optimal"
        assert nat.program_penalty == pytest.approx(nat.penalty(), rel=1e-9)
        assert nat.objective(X, Y, lam) == pytest.approx(nat.objective_value, rel=1e-9)
        assert nat.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
        exact = to_network(nat, split="columns" if form == "one_vs_all" else "auto")
        if (act, form) != ("relu", "nuclear"):  # the network that has the program's objective
            assert exact.objective(X, Y, lam, loss) == pytest.approx(ref.objective_value, rel=1e-6)


def _standardized(name):
    from sklearn import datasets

    if name == "diabetes":
        X, t = datasets.load_diabetes(return_X_y=True)
        X = (X - X.mean(0)) / X.std(0)
        t = (t - t.mean()) / t.std()
        return X, np.column_stack([t, np.tanh(X[:, 2]), X[:, 0] * X[:, 1]]), "squared"
    loader = {"iris": datasets.load_iris, "wine": datasets.load_wine, "digits": datasets.load_digits}[name]
    X, y = loader(return_X_y=True)
    if name == "digits":
        idx = np.random.default_rng(0).choice(len(y), 200, replace=False)
        X, y = X[idx], y[idx]
        X = X[:, X.std(0) > 0]
    return (X - X.mean(0)) / X.std(0), one_hot(y.astype(int)), "cross_entropy"


@pytest.mark.parametrize("name, cases", [
    ("iris", (("gated_relu", "nuclear"), ("gated_relu", "one_vs_all"), ("relu", "one_vs_all"))),
    ("diabetes", (("gated_relu", "nuclear"), ("relu", "one_vs_all"))),
    ("wine", (("gated_relu", "one_vs_all"),)),
    ("digits", (("gated_relu", "one_vs_all"),)),
])
def test_native_agrees_with_clarabel_on_standardized_sklearn_data(name, cases):
    pytest.importorskip("sklearn")
    X, Y, loss = _standardized(name)
    pats = sample_patterns(X, 3 if name == "digits" else 6, seed=0, bias=True)
    lam = 0.1 * X.shape[0] / 50
    for act, form in cases:
        ref = cvxnn.solve(X, Y, pats, activation=act, loss=loss, lam=lam, solver="clarabel", formulation=form)
        nat = cvxnn.solve(X, Y, pats, activation=act, loss=loss, lam=lam, formulation=form, tol=1e-7)
        assert ref.status == nat.status == "optimal"
        assert nat.objective_value == pytest.approx(ref.objective_value, rel=1e-6)
        net = to_network(nat)
        assert net.objective(X, Y, lam, loss) <= nat.objective_value * (1 + 1e-9)
        if form == "nuclear":  # exact for gated networks
            assert net.objective(X, Y, lam, loss) == pytest.approx(nat.objective_value, rel=1e-9)


# ------------------------------------------------------------------ bad input
def _bad_data():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((10, 2)), rng.standard_normal((10, 3))
    return X, Y, sample_patterns(X, 4, seed=0)


def test_one_vs_all_formulation_with_a_nuclear_penalty_is_refused():
    """It built the nuclear program and labelled it so, silently ignoring formulation='one_vs_all'."""
    X, Y, pats = _bad_data()
    with pytest.raises(InvalidParameterError, match="different programs"):
        build_program(X, Y, patterns=pats, formulation="one_vs_all", penalty="nuclear")
    assert build_program(X, Y, patterns=pats, penalty="one_vs_all").formulation == "one_vs_all"
    assert build_program(X, Y, patterns=pats, penalty="nuclear").formulation == "nuclear"


@pytest.mark.parametrize("build", [build_program, build_vector_program])
@pytest.mark.parametrize("case, error, match", [
    ("nan", NonFiniteError, "NaN"),
    ("3d", ShapeError, r"\(10, 3, 1\)"),
    ("rows", ShapeError, "9 rows"),
    ("formulation", InvalidParameterError, "'foo'"),
    ("auto", InvalidParameterError, "'auto'"),
    ("ce_not_one_hot", LabelError, "one-hot"),
    ("logistic", InvalidParameterError, "logistic"),
    ("max_margin", LabelError, "one-hot"),
])
def test_bad_vector_input_raises_typed_errors(build, case, error, match):
    X, Y, pats = _bad_data()
    kw = {"patterns": pats}
    if case == "nan":
        Y = Y.copy()
        Y[2, 1] = np.nan
    elif case == "3d":
        Y = Y[:, :, None]
    elif case == "rows":
        Y = Y[:9]
    elif case in ("formulation", "auto"):
        kw["formulation"] = "foo" if case == "formulation" else "auto"
    elif case == "ce_not_one_hot":
        kw["loss"] = "cross_entropy"
    elif case == "logistic":
        Y, kw["loss"] = np.sign(Y), "logistic"
    else:
        kw["form"] = "max_margin"
    with pytest.raises(error, match=match):
        build(X, Y, **kw)


@pytest.mark.parametrize("shape", [(10,), (10, 1)])
def test_vector_builder_names_a_one_column_target(shape):
    X, Y, pats = _bad_data()
    with pytest.raises(ShapeError, match=r"c >= 2, got \(10" + (r", 1\)" if len(shape) == 2 else r",\)")):
        build_vector_program(X, Y[:, 0].reshape(shape), patterns=pats)


@pytest.mark.parametrize("solver", ["clarabel", "auto"])
def test_solve_refuses_unknown_or_inapplicable_formulations(solver):
    X, Y, pats = _bad_data()
    with pytest.raises(InvalidParameterError, match="formulation must be one of"):
        cvxnn.solve(X, Y, pats, solver=solver, formulation="columnwise")
    with pytest.raises(InvalidParameterError, match="one-vs-all"):
        cvxnn.solve(X, Y, pats, activation="relu", solver="working_set", formulation="nuclear")
    with pytest.raises(InvalidParameterError, match="gated_relu"):
        cvxnn.solve(X, Y, pats, activation="gated_relu", solver="working_set", formulation="one_vs_all")


def test_report_takes_bare_convex_models():
    """_check_report_solution accepts a ConvexModel, which then raised AttributeError ('gap', 'status');
    a gated model now counts by its objective minus its gap certified on these data."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((20, 2)), rng.standard_normal((20, 3))
    pats = sample_patterns(X, 6, seed=0, bias=True)
    gated = build_program(X, Y, activation="gated_relu", lam=0.1, patterns=pats).solve()
    relu = build_program(X, Y, activation="relu", lam=0.1, patterns=pats).solve()
    fresh = relu_vector_report(X, Y, lam=0.1, patterns=pats, relu_solution=relu, gated_solution=gated)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = relu_vector_report(X, Y, lam=0.1, patterns=pats,
                                 relu_solution=ConvexModel(activation="relu", patterns=pats, V=relu.V, W=relu.W),
                                 gated_solution=ConvexModel(activation="gated_relu", patterns=pats, U=gated.U))
    assert rep.statuses == ("n/a", "n/a")
    assert rep.gated_lower_bound == pytest.approx(fresh.gated_lower_bound, rel=1e-12)
    assert rep.network_objective == pytest.approx(fresh.network_objective, rel=1e-12)
    assert 0 <= rep.gap
