"""QA of the optimal set, minimal models and pruning on small standardized real-data subsamples
(scikit-learn's breast cancer with the logistic loss, diabetes with the squared loss)."""

import numpy as np
import pytest

sklearn_datasets = pytest.importorskip("sklearn.datasets")

import cvxnn  # noqa: E402
from cvxnn.errors import InvalidParameterError  # noqa: E402
from cvxnn.optimality import is_minimal, optimal_set, prune_exact  # noqa: E402
from cvxnn.patterns import Patterns  # noqa: E402


def _standardize(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


def _duplicated_gates(X, seed):
    """6 random gates plus positive multiples (2 g) of 4 of them: user gates that
    ``Patterns.from_gates`` keeps as distinct patterns (``unique=False``, the default)."""
    G = np.random.default_rng(seed).standard_normal((X.shape[1] + 1, 6))
    return Patterns.from_gates(X, np.hstack([G, 2.0 * G[:, :4]]), bias=True)


@pytest.fixture(scope="module")
def cancer():
    X, y = sklearn_datasets.load_breast_cancer(return_X_y=True)
    idx = np.random.default_rng(0).choice(len(y), 70, replace=False)
    X = _standardize(X[idx][:, :8])
    return X, 2.0 * y[idx] - 1.0


@pytest.fixture(scope="module")
def diabetes():
    X, y = sklearn_datasets.load_diabetes(return_X_y=True)
    idx = np.random.default_rng(1).choice(len(y), 70, replace=False)
    y = y[idx]
    return _standardize(X[idx]), (y - y.mean()) / y.std()


@pytest.fixture(scope="module")
def cancer_gated(cancer):
    X, y = cancer
    pats = _duplicated_gates(X, 2)
    sol = cvxnn.solve(X, y, pats, activation="gated_relu", loss="logistic", lam=0.5, solver="native", tol=1e-10)
    return X, y, sol, optimal_set(sol, X, y)


def test_penalty_range_is_the_model_penalty(diabetes):
    """penalty_range() returned lam^2 sum alpha = lam * penalty (the regularisation term),
    not the penalty sum ||theta_k|| that ConvexModel.penalty() and the docs name."""
    X, y = diabetes
    lam = 0.7
    pats = cvxnn.sample_patterns(X, 10, seed=0, bias=True)
    sol = cvxnn.build_program(X, y, activation="gated_relu", lam=lam, patterns=pats).solve()
    P = optimal_set(sol, X, y)
    lo, hi = P.penalty_range()
    ref = P.model_at(P.alpha_ref).penalty()
    assert lo == pytest.approx(ref, rel=1e-7) and hi == pytest.approx(ref, rel=1e-7)
    assert lo == pytest.approx(sol.penalty(), rel=1e-4)
    assert lo == pytest.approx(lam * P.alpha_ref.sum(), rel=1e-7)


def test_neuron_groups_merge_duplicate_gates(cancer_gated):
    """Gates g and 2 g are the same gated neuron on any input; neuron_groups kept them apart
    (it compared pattern indices), while function_dimension (gate directions) merged them."""
    X, y, sol, P = cancer_gated
    p = sol.patterns.n_patterns
    groups = P.neuron_groups()
    label = dict(zip(P.blocks.tolist(), groups.tolist(), strict=True))
    merged = [k for k in range(4) if k in label and k + 6 in label]
    assert merged, "the optimum should use some duplicated gate pair"
    for k in merged:
        assert label[k] == label[k + 6]
    # distinct gates stay distinct
    assert len(set(groups.tolist())) == len({k % 6 if k < p else k for k in P.blocks.tolist()})
    assert P.function_dimension == 0 and P.dimension >= 1


def test_minimal_alpha_refuses_points_outside_the_set(cancer_gated):
    X, y, sol, P = cancer_gated
    obj = sol.objective(X, y, 0.5, "logistic")
    for a in [P.alpha_ref, P.interior_point(), P.min_norm_alpha(), *P.sample(2, seed=0, burn_in=10, thin=2)]:
        v = P.minimal_alpha(a)
        assert is_minimal(P.model_at(v), X)
        assert P.objective_at(v, X, y) == pytest.approx(obj, rel=1e-7)
    with pytest.raises(InvalidParameterError, match="not a point of the optimal set"):
        P.minimal_alpha(np.ones(P.n_blocks))
    with pytest.raises(InvalidParameterError, match="not a point of the optimal set"):
        P.minimal_model(1.5 * P.alpha_ref)


def test_rank_tol_must_be_below_one(cancer_gated):
    X, y, sol, _ = cancer_gated
    for bad in (1.0, 2.0):
        with pytest.raises(InvalidParameterError, match="rank_tol"):
            optimal_set(sol, X, y, rank_tol=bad)


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_prune_exact_duplicate_gates_keeps_objective(diabetes, activation):
    X, y = diabetes
    lam = 1.0
    sol = cvxnn.build_program(X, y, activation=activation, lam=lam, patterns=_duplicated_gates(X, 3)).solve()
    res = prune_exact(sol, X)
    assert res.n_after < res.n_before
    assert is_minimal(res.model, X)
    assert res.model.objective(X, y, lam) == pytest.approx(sol.objective(X, y, lam), rel=1e-7)
    np.testing.assert_allclose(res.model.predict(X), sol.predict(X), atol=1e-6)
    assert optimal_set(sol, X, y).contains(res.model)


def test_the_polytope_asks_the_loss_whether_the_fit_is_unique():
    from cvxnn.estimators import WeightedLoss
    from cvxnn.losses import CrossEntropyLoss, HuberLoss, LogisticLoss, SquaredLoss

    assert SquaredLoss().strictly_convex_fit and LogisticLoss().strictly_convex_fit
    # softmax cross-entropy is invariant to a constant added to a row of the fit
    assert not CrossEntropyLoss().strictly_convex_fit
    assert not HuberLoss().strictly_convex_fit
    assert WeightedLoss(base=SquaredLoss(), weights=np.array([1.0, 2.0])).strictly_convex_fit
    assert not WeightedLoss(base=SquaredLoss(), weights=np.array([1.0, 0.0])).strictly_convex_fit
