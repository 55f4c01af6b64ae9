"""One validation path: every rule of cvxnn._validation, and that entry points use it."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from cvxnn import (
    Patterns,
    ReLUNetwork,
    build_program,
    enumerate_patterns,
    sample_patterns,
)
from cvxnn._validation import (
    MAX_ABS_VALUE,
    as_float_array,
    as_generator,
    check_allocation,
    check_bool,
    check_choice,
    check_index,
    check_lam,
    check_nonnegative_float,
    check_positive_int,
    check_X,
    check_Xy,
    check_y,
    describe_columns,
)
from cvxnn.builders import check_targets
from cvxnn.errors import (
    CvxnnError,
    CvxnnWarning,
    InputError,
    InvalidParameterError,
    LabelError,
    MemoryBudgetError,
    NonFiniteError,
    PatternMismatchError,
    ShapeError,
)
from cvxnn.losses import get_loss
from cvxnn.patterns import check_patterns


class FakeFrame:
    """A pandas-like container: ``to_numpy(dtype=)`` and ``__array__``."""

    def __init__(self, data):
        self._data = np.asarray(data)
        self.columns = [f"c{i}" for i in range(self._data.shape[-1])]

    def to_numpy(self, dtype=None):
        return self._data.astype(dtype) if dtype is not None else self._data

    def __array__(self, dtype=None, copy=None):
        return self.to_numpy(dtype)


class BadFrame(FakeFrame):
    def to_numpy(self, dtype=None):
        raise ValueError("could not convert string to float: 'red'")


@pytest.fixture
def X():
    return np.random.default_rng(0).standard_normal((8, 3))


# ------------------------------------------------------------------ arrays and dtypes
def test_errors_are_typed_and_value_errors():
    for exc in (ShapeError, NonFiniteError, InvalidParameterError, LabelError, PatternMismatchError):
        assert issubclass(exc, InputError) and issubclass(exc, ValueError) and issubclass(exc, CvxnnError)


def test_check_X_returns_new_contiguous_float64_copy(X):
    Xf = np.asfortranarray(X)
    out = check_X(Xf)
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert not np.shares_memory(out, Xf)
    out[0, 0] = 123.0
    assert Xf[0, 0] != 123.0


@pytest.mark.parametrize(
    "data, expected",
    [
        (np.array([[1, 2], [3, 4]], dtype=np.int32), [[1.0, 2.0], [3.0, 4.0]]),
        (np.array([[True, False], [False, True]]), [[1.0, 0.0], [0.0, 1.0]]),
        (np.array([[1.5, 2.0]], dtype=np.float16), [[1.5, 2.0]]),
        (np.array([[1.5, 2.0]], dtype=np.float32), [[1.5, 2.0]]),
        ([[1, 2.5], [3, 4]], [[1.0, 2.5], [3.0, 4.0]]),
        (np.array([[1, 2.5]], dtype=object), [[1.0, 2.5]]),
        (FakeFrame([[1, 2], [3, 4]]), [[1.0, 2.0], [3.0, 4.0]]),
        (np.ma.masked_array([[1.0, 2.0]], mask=[[False, False]]), [[1.0, 2.0]]),
    ],
)
def test_accepted_containers_are_converted(data, expected):
    out = check_X(data)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "data, match",
    [
        (sp.csr_matrix(np.eye(3)), "sparse"),
        (np.ones((2, 2), dtype=complex), "complex"),
        (np.array([["a", "b"]]), "strings"),
        (np.array([[b"a"]]), "strings"),
        (np.array([["2020-01-01"]], dtype="datetime64[D]"), "datetime"),
        (np.array([[1.0, "x"]], dtype=object), "object array"),
        (np.array([[1.0, None]], dtype=object), "object array"),
        (np.ma.masked_array([[1.0, 2.0]], mask=[[True, False]]), "masked"),
        (BadFrame([[1, 2]]), "categorical"),
        ("abc", "string"),
        (np.zeros((2, 2), dtype=[("a", float)]), "structured"),
    ],
)
def test_refused_dtypes_raise_invalid_parameter(data, match):
    with pytest.raises(InvalidParameterError, match=match):
        check_X(data)


def test_ragged_and_none_are_shape_errors():
    with pytest.raises(ShapeError, match="rectangular"):
        check_X([[1.0, 2.0], [3.0]])
    with pytest.raises(ShapeError, match="None"):
        check_X(None)


@pytest.mark.parametrize(
    "shape, match",
    [((5,), "reshape"), ((2, 2, 2), "3-D"), ((), "0-D"), ((0, 3), "0 samples"), ((4, 0), "no features")],
)
def test_check_X_shapes(shape, match):
    with pytest.raises(ShapeError, match=match):
        check_X(np.ones(shape))


def test_min_samples_and_single_sample():
    assert check_X(np.ones((1, 2))).shape == (1, 2)
    with pytest.raises(ShapeError, match="at least 3"):
        check_X(np.ones((2, 2)), min_samples=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_names_the_entry(X, bad):
    Xb = X.copy()
    Xb[2, 1] = bad
    with pytest.raises(NonFiniteError, match="row 2, column 1"):
        check_X(Xb)
    np.testing.assert_array_equal(Xb[2, 1], bad)  # input untouched


def test_overflowing_magnitudes_are_refused(X):
    Xb = X.copy()
    Xb[0, 0] = 10 * MAX_ABS_VALUE
    with pytest.raises(NonFiniteError, match="overflow") as info:
        check_X(Xb)
    check_X(X * 1e50)  # large but safe
    # the advice works: the Standardizer refuses such data too, dividing by the factor does not
    assert "Divide the data by a common factor" in str(info.value)
    check_X(Xb / 1e101)


def test_float32_dtype_option(X):
    assert check_X(X, dtype=np.float32).dtype == np.float32
    with pytest.raises(InvalidParameterError):
        as_float_array(X, dtype=np.int64)


# ------------------------------------------------------------------------ targets
def test_check_y_shapes_and_column_flattening():
    assert check_y(np.ones((4, 1)), 4).shape == (4,)
    assert check_y(np.ones((4, 2)), 4).shape == (4, 2)
    assert check_y([True, False, True], 3).tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ShapeError, match="rows but X has"):
        check_y(np.ones(3), 4)
    with pytest.raises(ShapeError):
        check_y(np.ones((4, 2)), 4, allow_matrix=False)
    with pytest.raises(ShapeError, match="zero outputs"):
        check_y(np.ones((4, 0)), 4)
    with pytest.raises(ShapeError):
        check_y(np.ones((4, 2, 1)), 4)
    with pytest.raises(NonFiniteError):
        check_y([1.0, np.nan], 2)
    with pytest.raises(InvalidParameterError, match="strings"):
        check_y(np.array(["cat", "dog"]), 2)


def test_check_Xy_validates_both(X):
    Xc, yc = check_Xy(X, np.arange(8))
    assert Xc.shape == (8, 3) and yc.dtype == np.float64
    with pytest.raises(ShapeError):
        check_Xy(X, np.arange(7))


@pytest.mark.parametrize(
    "loss, y, match",
    [
        ("logistic", [0.0, 1.0, 1.0], r"\{-1, \+1\}"),
        ("logistic", [1.0, 1.0, 1.0], "both classes"),
        ("hinge", [-1.0, 2.0, 1.0], r"\{-1, \+1\}"),
        ("cross_entropy", [1.0, 0.0, 1.0], "one-hot"),
        ("cross_entropy", [[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]], "one-hot"),
    ],
)
def test_labels_that_do_not_fit_the_loss(loss, y, match):
    yc = check_y(y, 3)
    with pytest.raises(LabelError, match=match):
        check_targets(yc, loss)


def test_vector_targets_for_a_scalar_only_loss_are_a_parameter_error():
    """docs/vector.md: scalar-only losses with vector targets are an InvalidParameterError."""
    yc = check_y([[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0]], 3)
    with pytest.raises(InvalidParameterError, match="scalar targets"):
        check_targets(yc, "logistic")


def test_check_targets_accepts_and_copies():
    y = np.array([-1.0, 1.0, 1.0])
    out = check_targets(y, get_loss("logistic"))
    assert not np.shares_memory(out, y)
    np.testing.assert_array_equal(out, y)


def test_builder_reports_bad_labels(X):
    with pytest.raises(LabelError):
        build_program(X, np.zeros(8), loss="logistic", n_gates=4, seed=0)


# ------------------------------------------------------------------- degenerate data
def test_describe_columns():
    X = np.array([[1.0, 0.0, 2.0, 1.0, 2.0], [1.0, 0.0, 3.0, 5.0, 3.0], [1.0, 0.0, 4.0, 1.0, 4.0]])
    info = describe_columns(X)
    assert info["constant"] == [0, 1]
    assert info["zero"] == [1]
    assert info["duplicates"] == [(2, 4)]
    assert describe_columns(np.eye(3)) == {"constant": [], "zero": [], "duplicates": []}


def test_degenerate_columns_warn_or_raise_on_request(X):
    Xd = np.hstack([X, X[:, :1], np.ones((8, 1))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_X(Xd)  # default: legal, silent
    with pytest.warns(CvxnnWarning, match="duplicated columns"):
        check_X(Xd, degenerate="warn")
    with pytest.raises(InvalidParameterError, match="constant columns"):
        check_X(Xd, degenerate="raise")
    with pytest.raises(InvalidParameterError):
        check_X(X, degenerate="maybe")


def test_degenerate_columns_still_solve(X):
    """Duplicate and constant columns keep the program well posed (unique fit)."""
    y = np.maximum(X[:, 0], 0.0)
    Xd = np.hstack([X, X[:, :1], np.zeros((8, 1))])
    pats = sample_patterns(Xd, 6, seed=0)
    sol = build_program(Xd, y, activation="gated_relu", patterns=pats, lam=0.01).solve()
    assert sol.converged and np.isfinite(sol.objective_value)


def test_single_sample_problem_solves():
    X = np.array([[1.0, -2.0]])
    y = np.array([0.5])
    sol = build_program(X, y, lam=0.1, n_gates=5, seed=0).solve()
    assert sol.converged
    np.testing.assert_allclose(sol.train_predict(X), sol.to_network().predict(X), atol=1e-7)


# ------------------------------------------------------------------------ parameters
@pytest.mark.parametrize("lam", [0, 0.0, 1, 2.5, np.float32(0.5), np.int64(3), np.array(0.25), np.array([0.25])])
def test_lam_accepted(lam):
    assert check_lam(lam) == float(np.asarray(lam).item())


@pytest.mark.parametrize(
    "lam, exc",
    [
        (-0.1, InvalidParameterError),
        (np.nan, NonFiniteError),
        (np.inf, NonFiniteError),
        (True, InvalidParameterError),
        (np.bool_(False), InvalidParameterError),
        ("0.1", InvalidParameterError),
        (None, InvalidParameterError),
        (1 + 2j, InvalidParameterError),
        (np.array([0.1, 0.2]), InvalidParameterError),
    ],
)
def test_lam_refused(lam, exc):
    with pytest.raises(exc):
        check_lam(lam)


def test_lam_zero_can_be_refused():
    with pytest.raises(InvalidParameterError, match="> 0"):
        check_lam(0.0, allow_zero=False)


def test_program_lam_is_validated(X):
    y = X[:, 0]
    with pytest.raises(InvalidParameterError):
        build_program(X, y, lam=-1.0, n_gates=3, seed=0)
    prog = build_program(X, y, lam=0.1, n_gates=3, seed=0)
    with pytest.raises(NonFiniteError):
        prog.solve(lam=float("nan"))


def test_positive_int_bool_and_choice():
    assert check_positive_int(np.int16(4), "k") == 4
    for bad in (True, 3.0, "3", None):
        with pytest.raises(InvalidParameterError, match="integer"):
            check_positive_int(bad, "k")
    with pytest.raises(InvalidParameterError, match=">= 1"):
        check_positive_int(0, "k")
    with pytest.raises(InvalidParameterError, match="<= 5"):
        check_positive_int(6, "k", maximum=5)
    assert check_bool(np.True_, "b") is True and check_bool(0, "b") is False
    for bad in ("no", None, 2, 0.5):
        with pytest.raises(InvalidParameterError):
            check_bool(bad, "b")
    assert check_choice("a", "opt", ("a", "b")) == "a"
    for bad in ("c", None, np.array(["a", "b"])):
        with pytest.raises(InvalidParameterError):
            check_choice(bad, "opt", ("a", "b"))


def test_nonnegative_float():
    assert check_nonnegative_float(0, "tol") == 0.0
    assert check_nonnegative_float(np.inf, "t", allow_inf=True) == np.inf
    for bad, exc in ((-1, InvalidParameterError), (np.nan, NonFiniteError), (np.inf, NonFiniteError),
                     ("x", InvalidParameterError)):
        with pytest.raises(exc):
            check_nonnegative_float(bad, "tol")
    with pytest.raises(InvalidParameterError):
        check_nonnegative_float(0.0, "tol", allow_zero=False)


def test_check_index():
    np.testing.assert_array_equal(check_index([0, -1], 4), [0, 3])
    np.testing.assert_array_equal(check_index(np.array([True, False, True]), 3), [0, 2])
    np.testing.assert_array_equal(check_index(slice(1, None), 3), [1, 2])
    assert check_index([], 3).size == 0
    with pytest.raises(ShapeError):
        check_index([3], 3)
    with pytest.raises(InvalidParameterError):
        check_index([0.5], 3)
    with pytest.raises(InvalidParameterError):
        check_index([True], 3)


def test_seeds():
    a = as_generator(7).standard_normal(3)
    b = as_generator(np.int64(7)).standard_normal(3)
    np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(1)
    assert as_generator(g) is g
    assert isinstance(as_generator(np.random.SeedSequence(3)), np.random.Generator)
    assert isinstance(as_generator(np.random.RandomState(0)), np.random.Generator)
    for bad in (-1, True, 1.5, "seed"):
        with pytest.raises(InvalidParameterError):
            as_generator(bad)


def test_check_allocation():
    assert check_allocation((10, 10)) == 800
    with pytest.raises(MemoryBudgetError, match="GiB"):
        check_allocation((10**6, 10**6), np.float32, what="mask")
    with pytest.raises(MemoryBudgetError):
        check_allocation((100, 100), budget=1000)


def test_sample_patterns_refuses_huge_allocation_before_allocating(X):
    with pytest.raises(MemoryBudgetError, match="gates"):
        sample_patterns(X, 10**13, seed=0)


# ------------------------------------------------------------------------- patterns
def test_patterns_built_on_other_data(X):
    pats = sample_patterns(X, 5, seed=0)
    other = X + 1e-3
    with pytest.raises(PatternMismatchError, match="different data"):
        check_patterns(pats, other)
    with pytest.raises(PatternMismatchError, match="shape"):
        check_patterns(pats, X[:5])
    with pytest.raises(InvalidParameterError, match="Patterns"):
        check_patterns(pats.mask, X)
    assert check_patterns(pats, X.copy()) is pats
    with pytest.raises(PatternMismatchError):
        build_program(other, other[:, 0], patterns=pats)


def test_entry_points_refuse_bad_flags_and_indices(X):
    for fn in (lambda: sample_patterns(X, 3, bias="no"), lambda: enumerate_patterns(X[:4], bias=None),
               lambda: Patterns.from_gates(X, np.ones((3, 2)), bias="yes")):
        with pytest.raises(InvalidParameterError, match="bias"):
            fn()
    pats = sample_patterns(X, 5, seed=0)
    with pytest.raises(InvalidParameterError):
        pats.subset([0.5])
    with pytest.raises(ShapeError):
        pats.subset([pats.n_patterns])
    with pytest.raises(InvalidParameterError):
        build_program(X, X[:, 0], activation=np.array(["relu", "x"]))


def test_inputs_never_modified(X):
    X0, y = X.copy(), X[:, 0].copy()
    y0 = y.copy()
    sol = build_program(X, y, lam=0.1, n_gates=4, seed=0).solve()
    sol.to_network().objective(X, y, 0.1)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_network_weights_validated():
    with pytest.raises(NonFiniteError):
        ReLUNetwork(np.array([[np.nan]]), np.ones(1))
    with pytest.raises(ShapeError):
        ReLUNetwork([[1.0, 2.0], [3.0]], np.ones(2))
    with pytest.raises(InvalidParameterError):
        ReLUNetwork(np.array([["a"]]), np.ones(1))


def test_loss_value_validates_shapes():
    loss = get_loss("squared")
    assert loss.value([1.0, 2.0], [1.0, 0.0]) == 2.0
    with pytest.raises(ShapeError):
        loss.value(np.ones(3), np.ones(2))
    with pytest.raises(InvalidParameterError):
        loss.grad(np.array(["a"]), np.ones(1))


# ------------------------------------------------------------------- memory and bounds
def test_cgroup_limits_bound_the_default_budget(tmp_path, monkeypatch):
    from cvxnn import operators

    inner, outer = tmp_path / "inner", tmp_path
    inner.mkdir()
    (outer / "memory.max").write_text("max\n")
    (inner / "memory.max").write_text(str(3 * 2**30))
    (inner / "memory.current").write_text(str(2**30))
    monkeypatch.setattr(operators, "_cgroup_dirs", lambda version: [str(inner), str(outer)] if version == 2 else [])
    assert operators.cgroup_memory() == (3 * 2**30, 2**30)
    monkeypatch.setattr(operators, "_physical_memory", lambda: 64 * 2**30)
    monkeypatch.setattr(operators, "_meminfo_available", lambda: 60 * 2**30)
    assert operators.memory_limit() == 3 * 2**30
    assert operators.available_memory() == 2 * 2**30  # the limit minus what the cgroup uses
    assert operators.default_memory_budget() == int(1.5 * 2**30)
    with pytest.raises(MemoryBudgetError, match="memory budget is 1,610,612,736 bytes"):
        operators.check_memory({"a": 2**30, "b": 2**30}, what="two arrays")
    assert check_allocation((10, 10)) == 800
    with pytest.raises(MemoryBudgetError):
        check_allocation((2**16, 2**16), np.float64)  # 32 GiB > 1.5 GiB


def test_cgroup_v1_unlimited_and_unreadable_files(tmp_path, monkeypatch):
    from cvxnn import operators

    (tmp_path / "memory.limit_in_bytes").write_text("9223372036854771712")  # v1 "no limit"
    monkeypatch.setattr(operators, "_cgroup_dirs", lambda version: [str(tmp_path)])
    assert operators.cgroup_memory() == (None, None)
    (tmp_path / "memory.limit_in_bytes").write_text("garbage")
    assert operators.cgroup_memory() == (None, None)
    (tmp_path / "memory.limit_in_bytes").write_text(str(2**31))
    (tmp_path / "memory.usage_in_bytes").write_text(str(2**30))
    assert operators.cgroup_memory() == (2**31, 2**30)


@pytest.mark.parametrize("value", [2**31, 2**40, np.int64(2**40)])
def test_huge_integer_parameters_are_refused(value):
    with pytest.raises(InvalidParameterError, match="<= 2147483647"):
        check_positive_int(value, "max_iter")
    assert check_positive_int(value, "n_gates", maximum=None) == int(value)


@pytest.mark.parametrize("lams, error", [
    (["a", 0.1], InvalidParameterError), ([None], InvalidParameterError), ([[0.1, 0.2]], InvalidParameterError),
    ([], InvalidParameterError), ("0.1", InvalidParameterError), ({"lam": 1}, InvalidParameterError),
    ([0.1, float("nan")], NonFiniteError), ([0.1, -1.0], InvalidParameterError), ([True], InvalidParameterError),
])
def test_check_lams_refuses_non_numeric_grids(lams, error):
    from cvxnn._validation import check_lams

    with pytest.raises(error, match=r"lams"):
        check_lams(lams)


def test_check_lams_accepts_numbers():
    from cvxnn._validation import check_lams

    np.testing.assert_array_equal(check_lams([0.3, 0.1, 0]), [0.3, 0.1, 0.0])
    np.testing.assert_array_equal(check_lams(np.float32(0.5)), [0.5])


def test_a_relative_gap_tolerance_of_one_or_more_is_refused():
    """tol is a relative duality gap: at 1 almost any point (zero included) would be 'certified'."""
    from cvxnn import ConvexGatedReLURegressor, solve_native

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    pats = sample_patterns(X, 4, seed=0)
    for tol in (1, 1.0, 5.0):
        with pytest.raises(InvalidParameterError, match="relative duality gap"):
            solve_native(X, y, lam=0.1, patterns=pats, activation="gated_relu", tol=tol)
        with pytest.raises(InvalidParameterError, match="relative duality gap"):
            ConvexGatedReLURegressor(lam=0.1, n_gates=4, tol=tol).fit(X, y)
    assert solve_native(X, y, lam=0.1, patterns=pats, activation="gated_relu", tol=0.5).status in (
        "optimal", "max_iterations")


def test_lam_grids_must_be_one_dimensional_everywhere():
    """A 2-D grid is refused by every entry point that takes one (it used to be flattened)."""
    from cvxnn import ConvexGatedReLURegressorCV, regularization_path, walk_path
    from cvxnn.estimators import ConvexGatedReLURegressor, cross_validate_lam
    from cvxnn.feature_penalties import FeatureGroupL2
    from cvxnn.feature_sparsity import feature_path

    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal(30)
    pats = sample_patterns(X, 4, seed=0)
    grid = np.array([[1.0, 0.5], [0.2, 0.1]])
    calls = [
        lambda: regularization_path(X, y, lams=grid, patterns=pats, activation="gated_relu"),
        lambda: list(walk_path(grid, lambda lam, warm: None)),
        lambda: ConvexGatedReLURegressorCV(lams=grid, n_gates=4, cv=3).fit(X, y),
        lambda: cross_validate_lam(ConvexGatedReLURegressor(n_gates=4), X, y, grid, cv=3),
        lambda: feature_path(X, y, penalty=FeatureGroupL2(), patterns=pats, lams=grid),
    ]
    for call in calls:
        with pytest.raises(InvalidParameterError, match="one-dimensional"):
            call()
    with pytest.raises(InvalidParameterError, match="1-D sequence"):
        regularization_path(X, y, lams="0.1", patterns=pats, activation="gated_relu")


def test_feature_path_refuses_a_negative_support_tol():
    from cvxnn.feature_penalties import FeatureGroupL2
    from cvxnn.feature_sparsity import feature_path

    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    with pytest.raises(InvalidParameterError, match="support_tol"):
        feature_path(X, y, penalty=FeatureGroupL2(), patterns=sample_patterns(X, 3, seed=0), support_tol=-1e-3)


def test_convex_model_constructor_refuses_nonsense_with_typed_errors():
    from cvxnn import ConvexModel, ConvexSolution
    from cvxnn.errors import SolverError

    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 2))
    pats = sample_patterns(X, 10, seed=0)
    Z = np.zeros((2, pats.n_patterns))
    for bad in (None, pats.mask):
        with pytest.raises(InvalidParameterError, match="patterns must be a cvxnn Patterns"):
            ConvexModel(activation="relu", patterns=bad, V=Z, W=Z)
    with pytest.raises(NonFiniteError):  # bad input, not a failed solve
        ConvexModel(activation="relu", patterns=pats, V=Z + np.nan, W=Z)
    with pytest.raises(SolverError):  # a solver's output with NaN is a failed solve
        ConvexSolution(activation="relu", patterns=pats, V=Z + np.nan, W=Z)
    with pytest.raises(InvalidParameterError, match="blocks V and W only; got U"):
        ConvexModel(activation="relu", patterns=pats, V=Z, W=Z, U=np.ones((5, 5)))
    with pytest.raises(InvalidParameterError, match="blocks U only; got V"):
        ConvexModel(activation="gated_relu", patterns=pats, U=Z, V=np.ones(3))
    with pytest.raises(ShapeError, match="c >= 1"):
        ConvexModel(activation="gated_relu", patterns=pats, U=np.zeros((2, pats.n_patterns, 0)))


def test_planted_teacher_validates_its_arguments():
    from cvxnn.datasets import planted_teacher

    for kw in ({"noise": float("nan")}, {"noise": -1.0}, {"n_outputs": 0}, {"n_neurons": 0}):
        with pytest.raises(CvxnnError):
            planted_teacher(20, 3, **kw)
    for n in (-1, 5.5):
        with pytest.raises(InvalidParameterError):
            planted_teacher(n, 3)
    X, y = planted_teacher(20, 3, n_outputs=2)
    assert X.shape == (20, 3) and y.shape == (20, 2)


def test_standardizer_handles_magnitudes_whose_squares_underflow():
    from cvxnn.preprocessing import Standardizer

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((30, 3)), rng.standard_normal(30) + 2.0
    ref = Standardizer(center=True, scale=True, center_y=True, scale_y=True).fit(X, y)
    tiny = Standardizer(center=True, scale=True, center_y=True, scale_y=True).fit(1e-200 * X, 1e-170 * y)
    np.testing.assert_allclose(tiny.scale_ / 1e-200, ref.scale_, rtol=1e-12)
    np.testing.assert_allclose(tiny.transform(1e-200 * X), ref.transform(X), rtol=1e-10, atol=1e-12)


def test_a_regressor_fits_targets_whose_squares_underflow():
    from cvxnn.estimators import ConvexGatedReLURegressor

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal(40) + 2.0
    ref = ConvexGatedReLURegressor(n_gates=6, random_state=0).fit(X, y)
    tiny = ConvexGatedReLURegressor(n_gates=6, random_state=0).fit(X, 1e-170 * y)
    assert tiny.status_ == "optimal"
    np.testing.assert_allclose(tiny.predict(X) / 1e-170, ref.predict(X), rtol=1e-6, atol=1e-8)
