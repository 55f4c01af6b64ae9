"""Pruned solutions keep their certificate: C-ReLU cone multipliers carried over, status kept,
objective and gap honest (docs/optimality.md, "Minimal models and pruning", "Certificates")."""

import dataclasses
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris

import cvxnn
from cvxnn import ConvexSolution, Patterns, sample_patterns
from cvxnn.errors import InaccurateSolutionWarning, InvalidParameterError
from cvxnn.optimality import optimal_set, prune_exact, pruning_path
from cvxnn.vector import one_hot

LAM = 0.05


@pytest.fixture(scope="module")
def iris():
    X, labels = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    X, labels = X[::15], labels[::15]  # 10 rows: more active blocks than rows, so pruning removes some
    y = np.where(labels == 2, 1.0, -1.0)
    return X, y, labels, sample_patterns(X, 40, seed=0, bias=True)


@pytest.fixture(scope="module")
def relu_native(iris):
    X, y, _, pats = iris
    return cvxnn.solve(X, y, pats, activation="relu", lam=LAM, solver="native", tol=1e-10)


def _split(sol, X):
    """``sol`` as an optimum of the program with every gate twice (``2 g`` has the mask of ``g``):
    each block split ``0.3 / 0.7`` over the two copies of its pattern (same fit, same penalty),
    the multipliers repeated (the copies have the same cones). Not minimal: pruning removes the
    copies."""
    pats = sol.patterns
    dup = Patterns.from_gates(X, np.hstack([pats.gates, 2.0 * pats.gates]), bias=pats.bias)
    blocks = {k: np.concatenate([0.3 * getattr(sol, k), 0.7 * getattr(sol, k)], axis=1) for k in sol.spec.blocks}
    p = pats.n_patterns
    rho = sol.multipliers
    rho = np.concatenate([rho[:, :p], rho[:, :p], rho[:, p:], rho[:, p:]], axis=1)
    return dataclasses.replace(sol, patterns=dup, **blocks, multipliers=rho, cone_duals=None, check_state=None)


def test_exact_pruning_keeps_the_multipliers_and_the_certificate(iris, relu_native):
    X, y, _, _ = iris
    sol = _split(relu_native, X)
    before = cvxnn.duality_gap(X, y, sol, LAM)
    res = prune_exact(sol, X)
    assert res.n_after < res.n_before  # blocks were removed
    after = cvxnn.duality_gap(X, y, res.model, LAM)
    # the fit (so the dual point) is the solution's: the same rho certify it as tightly (rho = 0: ~0.65)
    assert after.rel_gap <= before.rel_gap + 1e-10
    assert isinstance(res.model, ConvexSolution) and res.model.multipliers is sol.multipliers
    assert after.primal <= before.primal * (1 + 1e-9)
    assert res.model.status == "optimal" and res.model.max_violation <= 1e-12
    assert np.isnan(res.model.objective_value) and res.model.gap is None  # no targets: nothing stale


def test_vector_output_pruning_keeps_the_multipliers(iris):
    X, _, labels, pats = iris
    Y = one_hot(labels)
    sol = _split(cvxnn.solve(X, Y, pats, activation="relu", lam=LAM, solver="native", tol=1e-10), X)
    res = prune_exact(sol, X)
    assert res.merged and res.n_after < res.n_before
    before, after = cvxnn.duality_gap(X, Y, sol, LAM), cvxnn.duality_gap(X, Y, res.model, LAM)
    assert res.model.formulation == sol.formulation == "one_vs_all"
    assert after.rel_gap <= before.rel_gap + 1e-10 < 1e-8


def test_pruning_with_targets_reports_a_gap_no_larger_than_the_solutions(iris):
    """Clarabel leaves blocks of ~1e-7 that pruning drops: the fit moves by ~1e-6, the pruned
    point's own dual point with it (gap ~1e-5 relative); the solution's dual value still bounds
    p* and keeps the reported gap at the solution's."""
    X, y, _, pats = iris
    sol = cvxnn.solve(X, y, pats, activation="relu", lam=LAM, solver="clarabel")
    assert sol.extra.get("certified_gap") is not None
    before = cvxnn.duality_gap(X, y, sol, LAM)
    pruned = prune_exact(sol, X, y=y).model
    obj = pruned.objective(X, y, LAM)
    assert pruned.objective_value == pytest.approx(obj, rel=1e-12)
    assert pruned.gap <= before.gap + max(obj - before.primal, 0.0) + 1e-12 * obj
    assert pruned.rel_gap == pytest.approx(pruned.gap / obj)
    assert pruned.gap >= cvxnn.duality_gap(X, y, pruned, LAM).primal - pruned.dual_value - 1e-12
    # nothing of the unpruned point is left to refill its fields
    assert pruned.cone_duals is None and pruned.program_penalty is None
    assert "certified_gap" not in pruned.extra and pruned.extra["derived"] == "exact pruning"


def test_prune_exact_refuses_targets_it_cannot_use(iris, relu_native):
    X, y, _, _ = iris
    model = prune_exact(relu_native, X).model
    plain = cvxnn.ConvexModel(model.activation, model.patterns, V=model.V, W=model.W)
    with pytest.raises(InvalidParameterError, match="no lam"):
        prune_exact(plain, X, y=y)


def test_pruning_path_steps_are_certified_solutions(iris, relu_native):
    X, y, _, _ = iris
    sol = relu_native
    path = pruning_path(sol, X, y, min_width=3)
    kinds = [s.kind for s in path.steps]
    assert kinds[:2] == ["start", "exact"] and "approximate" in kinds
    for step in path.steps:
        m = step.model
        assert isinstance(m, ConvexSolution) and m.multipliers is sol.multipliers
        assert m.objective_value == pytest.approx(step.objective, rel=1e-12)
        assert m.status == ("approximate" if step.kind == "approximate" else "optimal")
        # honest: the gap bounds the step's distance to the optimum (sol is optimal to 1e-10)
        assert m.gap >= step.objective - sol.objective_value - 1e-9 * sol.objective_value
    assert path.steps[1].model.rel_gap <= sol.rel_gap + 1e-10


def test_an_uncertified_solution_stays_uncertified(iris):
    X, y, _, pats = iris
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rough = cvxnn.solve(X, y, pats, activation="relu", lam=LAM, solver="native", max_iter=3)
    assert rough.status != "optimal"
    with pytest.warns(InaccurateSolutionWarning):
        assert prune_exact(rough, X).model.status == rough.status
    with pytest.warns(InaccurateSolutionWarning):
        pruned = prune_exact(rough, X, y=y).model
    assert pruned.status == rough.status
    best = cvxnn.solve(X, y, pats, activation="relu", lam=LAM, solver="native", tol=1e-10).objective_value
    obj = pruned.objective(X, y, LAM)
    assert pruned.objective_value == pytest.approx(obj, rel=1e-12)
    assert pruned.gap >= obj - best - 1e-9 * best  # a true bound on its suboptimality


def test_minimal_model_of_the_optimal_set_is_certified(iris, relu_native):
    X, y, _, _ = iris
    P = optimal_set(relu_native, X, y)
    minimal = P.minimal_model()
    gap = cvxnn.duality_gap(X, y, minimal, LAM)
    assert gap.rel_gap < 1e-9  # rho = 0 gives ~0.6
    assert isinstance(minimal, ConvexSolution) and minimal.status == "optimal"
