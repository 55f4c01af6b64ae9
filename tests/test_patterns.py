"""Activation patterns: sampling, exact enumeration (vs brute force and the count formula), reuse."""

import numpy as np
import pytest

from cvxnn import Patterns, enumerate_patterns, sample_patterns
from cvxnn.errors import InvalidParameterError, NonFiniteError, PatternMismatchError, ShapeError
from cvxnn.patterns import add_bias_column, group_columns, max_pattern_count


def brute_force_patterns(X, n_draws=200_000, seed=0, bias=False):
    """Distinct patterns hit by many random gates (a lower bound on the true set)."""
    Xa = add_bias_column(X) if bias else X
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((Xa.shape[1], n_draws))
    M = Xa @ G >= 0
    return {tuple(col) for col in M.T}


def as_set(pats):
    return {tuple(col) for col in pats.mask.T}


@pytest.fixture
def X():
    return np.random.default_rng(1).standard_normal((30, 4))


def test_sample_shapes_dtype_and_mask(X):
    pats = sample_patterns(X, 50, seed=0)
    assert pats.mask.dtype == bool
    assert pats.mask.shape == (30, pats.n_patterns)
    assert pats.gates.shape == (4, pats.n_patterns)
    np.testing.assert_array_equal(pats.mask, X @ pats.gates >= 0)


def test_sample_removes_duplicates_keeping_first_gate():
    X = np.array([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]])  # rank 1: only two regions
    rng_gates = np.random.default_rng(3).standard_normal((2, 40))
    pats = Patterns.from_gates(X, rng_gates, unique=True)
    assert pats.n_patterns == 2
    first_pos = np.flatnonzero(X @ rng_gates[:, :] >= 0)  # noqa: F841  (documenting intent)
    signs = rng_gates[0] >= 0
    first_true, first_false = np.argmax(signs), np.argmax(~signs)
    expected = rng_gates[:, sorted([first_true, first_false])]
    np.testing.assert_array_equal(pats.gates, expected)


def test_sample_is_deterministic_and_seed_dependent(X):
    a = sample_patterns(X, 30, seed=5)
    b = sample_patterns(X, 30, seed=np.random.default_rng(5))
    c = sample_patterns(X, 30, seed=6)
    np.testing.assert_array_equal(a.gates, b.gates)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.gates, c.gates)


def test_drop_zero_pattern():
    X = np.array([[1.0], [2.0]])
    pats = Patterns.from_gates(X, np.array([[1.0, -1.0]]), drop_zero=False)
    assert pats.n_patterns == 2 and not pats.mask[:, 1].any()
    kept = Patterns.from_gates(X, np.array([[1.0, -1.0]]), drop_zero=True)
    assert kept.n_patterns == 1 and kept.mask.all()


def test_bias_column_and_reapplication(X):
    pats = sample_patterns(X, 20, seed=0, bias=True)
    assert pats.design_dim == 5 and pats.n_features == 4
    np.testing.assert_array_equal(pats.mask, add_bias_column(X) @ pats.gates >= 0)
    Xnew = np.random.default_rng(9).standard_normal((7, 4))
    np.testing.assert_array_equal(pats.mask_for(Xnew), add_bias_column(Xnew) @ pats.gates >= 0)


def test_signed_data_defines_the_cone(X):
    pats = sample_patterns(X, 10, seed=0)
    for i in range(pats.n_patterns):
        Xt = pats.signed_data(X, i)
        assert np.all(Xt @ pats.gates[:, i] >= 0)  # each gate lies in its own cone K_i


def test_check_data_refuses_other_data(X):
    pats = sample_patterns(X, 10, seed=0)
    pats.check_data(X)
    with pytest.raises(PatternMismatchError):
        pats.check_data(X + 1e-3)
    with pytest.raises(PatternMismatchError):
        pats.check_data(X[:10])


def test_group_columns():
    M = np.array([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=bool)
    first, group = group_columns(M)
    np.testing.assert_array_equal(first, [0, 1])
    np.testing.assert_array_equal(group, [0, 1, 0, 1])


@pytest.mark.parametrize("n", [3, 5, 8, 12])
def test_enumerate_rank2_matches_count_and_brute_force(n):
    X = np.random.default_rng(n).standard_normal((n, 2))
    pats = enumerate_patterns(X)
    assert pats.n_patterns == max_pattern_count(n, 2) == 2 * n
    assert as_set(pats) == brute_force_patterns(X)


def test_enumerate_rank2_in_higher_dimension():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, 2)) @ rng.standard_normal((2, 5))  # rank 2 in R^5
    pats = enumerate_patterns(X)
    assert pats.n_patterns == 18
    assert as_set(pats) == brute_force_patterns(X)


@pytest.mark.parametrize("n,d", [(5, 3), (7, 3), (6, 4)])
def test_enumerate_general_position_any_dimension(n, d):
    X = np.random.default_rng(10 * n + d).standard_normal((n, d))
    pats = enumerate_patterns(X)
    assert pats.n_patterns == max_pattern_count(n, min(n, d))
    # Random gates can miss thin regions, so they give a subset; the count fixes the rest.
    assert brute_force_patterns(X, n_draws=100_000) <= as_set(pats)


def test_enumerate_with_bias_matches_brute_force():
    X = np.random.default_rng(2).standard_normal((6, 2))
    pats = enumerate_patterns(X, bias=True)
    assert as_set(pats) == brute_force_patterns(X, bias=True)
    assert pats.n_patterns == max_pattern_count(6, 3)


def test_enumerate_degenerate_data():
    X = np.array([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0], [-1.0, -1.0]])  # rank 1 with a zero row
    pats = enumerate_patterns(X)
    assert as_set(pats) == brute_force_patterns(X)
    assert pats.n_patterns == 2


def test_enumerate_drop_zero():
    X = np.random.default_rng(4).standard_normal((5, 2))
    assert enumerate_patterns(X, drop_zero=True).n_patterns == 9


def test_bad_inputs():
    X = np.ones((4, 2))
    with pytest.raises(InvalidParameterError):
        sample_patterns(X, 0)
    with pytest.raises(ShapeError):
        sample_patterns(np.ones(4), 3)
    with pytest.raises(ShapeError):
        Patterns.from_gates(X, np.ones((3, 2)))
    with pytest.raises(NonFiniteError, match=r"first at row 0, gate 0"):
        Patterns.from_gates(X, np.array([[np.nan], [1.0]]))


def test_patterns_are_read_only(X):
    pats = sample_patterns(X, 5, seed=0)
    with pytest.raises(ValueError):
        pats.mask[0, 0] = False


def test_enumerate_degenerate_rank3_with_ties_and_duplicates():
    rng = np.random.default_rng(0)
    X = rng.integers(-2, 3, size=(9, 3)).astype(float)  # integer points: many coplanar triples
    X[3] = X[1]
    X[5] = 0.0
    assert as_set(enumerate_patterns(X)) == brute_force_patterns(X, n_draws=300_000)


# ------------------------------------------------------------------------ memory budgets
def test_sample_patterns_sums_its_allocations_against_the_budget():
    from cvxnn.errors import MemoryBudgetError
    from cvxnn.patterns import patterns_memory

    X = np.random.default_rng(0).standard_normal((80, 4))
    parts = patterns_memory(80, 4, 10**8)
    assert parts["gates"] == 3 * 4 * 10**8 * 8 and parts["mask"] == 3 * 80 * 10**8
    with pytest.raises(MemoryBudgetError, match=r"needs about [\d,]+ bytes \(gates"):
        sample_patterns(X, 10**8, memory_budget=2**30)
    # no single allocation exceeds this budget, their sum does
    parts = patterns_memory(80, 4, 10**5)
    total, largest = sum(parts.values()), max(parts.values())
    assert largest < total
    with pytest.raises(MemoryBudgetError):
        sample_patterns(X, 10**5, memory_budget=largest)
    assert sample_patterns(X, 10**5, seed=0, memory_budget=total).n_patterns > 0


def test_sample_patterns_default_budget_follows_the_memory_of_the_machine(monkeypatch):
    from cvxnn import operators
    from cvxnn.errors import MemoryBudgetError

    X = np.random.default_rng(0).standard_normal((80, 4))
    monkeypatch.setattr(operators, "memory_limit", lambda: 2 * 2**30)  # a 2 GiB container
    monkeypatch.setattr(operators, "available_memory", lambda: 2 * 2**30)
    assert operators.default_memory_budget() == 2**30
    with pytest.raises(MemoryBudgetError, match="1,073,741,824"):
        sample_patterns(X, 10**8)
    monkeypatch.setattr(operators, "available_memory", lambda: 100 * 2**20)  # busy machine
    assert operators.default_memory_budget() == 100 * 2**20


def test_enumerate_patterns_estimates_its_cost_before_starting(monkeypatch):
    import cvxnn.patterns as patterns_mod
    from cvxnn.errors import MemoryBudgetError
    from cvxnn.patterns import enumeration_cost

    def no_search(*args, **kwargs):  # the refusal must come before any LP
        raise AssertionError("the search started")

    monkeypatch.setattr(patterns_mod, "_regions_lp", no_search)
    X = np.random.default_rng(0).standard_normal((35, 6))
    with pytest.raises(MemoryBudgetError, match=r"rank 7 .* up to 3,352,232 activation patterns"):
        enumerate_patterns(X, bias=True)
    regions, lps = enumeration_cost(35, 7)
    assert regions == max_pattern_count(35, 7) and lps > regions
    # the bound is exact in general position
    monkeypatch.undo()
    Y = np.random.default_rng(1).standard_normal((9, 3))
    assert enumerate_patterns(Y, bias=True).n_patterns == enumeration_cost(9, 4)[0]
    with pytest.raises(MemoryBudgetError, match="memory budget"):
        enumerate_patterns(Y, bias=True, memory_budget=1000)


def test_loaded_style_patterns_are_checked_against_their_gates():
    from cvxnn.errors import PatternMismatchError

    X = np.random.default_rng(0).standard_normal((20, 3))
    pats = sample_patterns(X, 10, seed=0)
    forged = Patterns(gates=np.array(pats.gates), mask=~pats.mask, bias=False, fingerprint=pats.fingerprint)
    object.__setattr__(forged, "_mask_unverified", True)
    with pytest.raises(PatternMismatchError, match="contradicts its gates"):
        forged.check_data(X)
    honest = Patterns(gates=np.array(pats.gates), mask=np.array(pats.mask), fingerprint=pats.fingerprint)
    object.__setattr__(honest, "_mask_unverified", True)
    honest.check_data(X)
    assert not honest._mask_unverified


@pytest.mark.parametrize("bias", [True, False])
def test_enumeration_is_invariant_to_the_data_scale_and_offset(bias):
    """enumerate_patterns lost regions on offset or small data (bias: X + 1e5 gave 22 of 30
    patterns, X * 1e-10 gave 2) and on tiny data (X * 1e-170 without bias: 1 of 22): the LP's
    margin test and the row norms saw the raw scale. It enumerates on centred unit-scale
    columns and maps the gates back."""
    X = np.random.default_rng(0).standard_normal((10, 3))[:5]
    ref = enumerate_patterns(X, bias=bias)
    assert ref.n_patterns == (30 if bias else 22)
    key = {ref.mask[:, i].tobytes() for i in range(ref.n_patterns)}
    cases = [X * 1e-10, X * 1e-170, X * 1e8] + ([X + 1e5] if bias else [])
    for Xt in cases:
        P = enumerate_patterns(Xt, bias=bias)
        assert {P.mask[:, i].tobytes() for i in range(P.n_patterns)} == key
        np.testing.assert_array_equal(Patterns.from_gates(Xt, P.gates, bias=bias).mask, P.mask)
        P.check_data(Xt)


def test_patterns_constructor_validates_and_leaves_the_callers_arrays_alone():
    """Patterns(gates, mask) made the caller's arrays read-only and took NaN gates or
    bias='no'; signed_data(X, 100) raised a bare IndexError; a -0.0 in X failed check_data."""
    from cvxnn.errors import InvalidParameterError, NonFiniteError, ShapeError

    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 3))
    G = rng.standard_normal((3, 4))
    M = X @ G >= 0
    P = Patterns(G, M)
    assert G.flags.writeable and M.flags.writeable and not P.gates.flags.writeable
    with pytest.raises(NonFiniteError):
        Patterns(np.full((3, 4), np.nan), M)
    with pytest.raises(InvalidParameterError, match="bias"):
        Patterns(G, M, bias="no")
    with pytest.raises(InvalidParameterError, match="mask"):
        Patterns(G, np.full((10, 4), 0.5))
    with pytest.raises(ShapeError, match="out of range"):
        P.signed_data(X, 100)
    with pytest.raises(InvalidParameterError, match="integer"):
        P.signed_data(X, 1.5)
    Z = np.array([[0.0, 1.0], [2.0, -1.0], [1.0, 1.0]])
    Q = Patterns.from_gates(Z, rng.standard_normal((2, 3)))
    Zn = Z.copy()
    Zn[0, 0] = -0.0
    Q.check_data(Zn)
