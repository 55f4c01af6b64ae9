"""Input checks at the edges of the pattern, loss and operator layers: NaN gates, empty pattern
subsets, one-column cross-entropy targets and non-finite designs of :class:`ImplicitDesign`
and its memory advice."""

import cvxpy as cp
import numpy as np
import pytest

from cvxnn import Patterns, sample_patterns
from cvxnn.errors import InvalidParameterError, LabelError, MemoryBudgetError, NonFiniteError, ShapeError
from cvxnn.losses import CrossEntropyLoss, get_loss
from cvxnn.operators import ImplicitDesign


@pytest.fixture
def X():
    return np.random.default_rng(0).standard_normal((12, 2))


# ------------------------------------------------------------------------------ gates
def test_from_gates_nan_is_nonfinite_and_names_the_entry(X):
    G = np.ones((2, 3))
    G[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match=r"first at row 1, gate 2, value nan"):
        Patterns.from_gates(X, G)


def test_from_gates_inf_with_bias_names_the_bias_row(X):
    G = np.ones((3, 2))
    G[2, 0] = -np.inf
    with pytest.raises(NonFiniteError, match=r"first at row 2, gate 0, value -inf"):
        Patterns.from_gates(X, G, bias=True)


def test_patterns_constructor_nan_gates_names_the_entry(X):
    pats = sample_patterns(X, 4, seed=0)
    G = np.array(pats.gates)
    G[0, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"first at row 0, gate 1"):
        Patterns(gates=G, mask=np.array(pats.mask))


# ------------------------------------------------------------------------------ subset
@pytest.mark.parametrize("index", [[], np.zeros(0, dtype=int), "all-false"], ids=["list", "int-array", "bool"])
def test_subset_selecting_nothing_is_refused(X, index):
    pats = sample_patterns(X, 6, seed=0)
    if isinstance(index, str):
        index = np.zeros(pats.n_patterns, dtype=bool)
    with pytest.raises(InvalidParameterError, match="subset selects no pattern"):
        pats.subset(index)


def test_subset_of_one_pattern_still_works(X):
    pats = sample_patterns(X, 6, seed=0)
    keep = np.zeros(pats.n_patterns, dtype=bool)
    keep[-1] = True
    sub = pats.subset(keep)
    assert sub.n_patterns == 1
    np.testing.assert_array_equal(sub.gates[:, 0], pats.gates[:, -1])
    np.testing.assert_array_equal(sub.mask[:, 0], pats.mask[:, -1])


# ------------------------------------------------------------------------------ cross-entropy
def _one_hot(n, c, seed=0):
    return np.eye(c)[np.random.default_rng(seed).integers(0, c, n)]


def test_cross_entropy_refuses_one_column_targets():
    loss = CrossEntropyLoss()
    Y = np.ones((8, 1))
    Z = np.random.default_rng(1).standard_normal((8, 1))
    with pytest.raises(ShapeError, match=r"at least 2 classes.*\(8, 1\).*LogisticLoss"):
        loss.check_targets(Y)
    with pytest.raises(ShapeError, match=r"\(8, 1\)"):
        loss.value(Z, Y)
    with pytest.raises(ShapeError, match=r"\(8, 1\)"):
        loss.grad(Z, Y)
    with pytest.raises(ShapeError, match=r"\(8, 1\)"):
        loss.cvxpy(cp.Variable((8, 1)), Y)


def test_cross_entropy_two_or_more_columns_unaffected():
    loss = get_loss("cross_entropy")
    for c in (2, 3):
        Y = _one_hot(10, c)
        Z = np.random.default_rng(c).standard_normal((10, c))
        assert loss.check_targets(Y) is Y
        # lse(z) - <y, z> summed: positive for every finite Z
        expected = float(np.sum(np.log(np.exp(Z).sum(axis=1)) - (Y * Z).sum(axis=1)))
        assert loss.value(Z, Y) == pytest.approx(expected, rel=1e-12)
        Zv = cp.Variable((10, c))
        Zv.value = Z
        assert float(loss.cvxpy(Zv, Y).value) == pytest.approx(expected, rel=1e-9)


def test_cross_entropy_vector_labels_still_a_label_error():
    with pytest.raises(LabelError, match="one-hot"):
        CrossEntropyLoss().check_targets(np.ones(8))


# ------------------------------------------------------------------------------ ImplicitDesign
def _mask(n=6, p=3):
    return np.random.default_rng(2).random((n, p)) > 0.5


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_implicit_design_refuses_nonfinite_design(bad):
    Xa = np.ones((6, 4))
    Xa[3, 2] = bad
    with pytest.raises(NonFiniteError, match=r"Xa contains NaN or infinity \(first at row 3, column 2"):
        ImplicitDesign(Xa, _mask())


def test_implicit_design_refuses_values_beyond_float32():
    Xa = np.ones((6, 4))
    Xa[1, 0] = 1e300
    ImplicitDesign(Xa, _mask())  # finite in float64
    with pytest.raises(NonFiniteError, match=r"beyond the range of float32 \(first at row 1, column 0"):
        ImplicitDesign(Xa, _mask(), dtype=np.float32)


def test_implicit_design_accepts_large_finite_design():
    # every entry finite, but their sum overflows: still accepted
    Xa = np.full((6, 4), 1e307)
    op = ImplicitDesign(Xa, _mask())
    assert np.all(np.isfinite(op.Xa))
    ImplicitDesign(np.arange(24).reshape(6, 4), _mask())  # integers are finite by construction


@pytest.mark.parametrize("dtype, advised", [(np.float64, True), (np.float32, False)])
def test_implicit_design_memory_advice_names_float32_only_when_it_helps(dtype, advised):
    rng = np.random.default_rng(0)
    Xa = rng.standard_normal((200, 6))
    mask = (rng.standard_normal((200, 4)) > 0).astype(float)
    with pytest.raises(MemoryBudgetError) as info:
        ImplicitDesign(Xa, mask, dtype=dtype, memory_budget=100)
    assert ("dtype=numpy.float32" in str(info.value)) is advised


def test_copositive_relaxation_one_column_cross_entropy_targets():
    """Targets of one column (1-D, or (n, 1), which check_y reads as 1-D) are refused as labels,
    as build_program refuses them."""
    from cvxnn.relaxations import copositive_relaxation

    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2))
    pats = sample_patterns(X, 3, seed=0)
    with pytest.raises(LabelError):
        copositive_relaxation(X, rng.standard_normal(6), lam=0.1, patterns=pats, loss="cross_entropy")
    with pytest.raises(LabelError, match="one-hot"):
        copositive_relaxation(X, np.eye(2)[rng.integers(0, 2, 6)][:, :1], lam=0.1, patterns=pats,
                              loss="cross_entropy")


def test_patterns_without_columns_are_refused():
    """A Patterns of 0 patterns built by hand was accepted: build_program then failed inside
    CVXPY and cvxnn.solve returned an 'optimal' zero-width fit."""
    with pytest.raises(InvalidParameterError, match="at least one pattern"):
        Patterns(gates=np.zeros((2, 0)), mask=np.zeros((5, 0), dtype=bool))
