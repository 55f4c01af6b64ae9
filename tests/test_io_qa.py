"""QA regressions of model files (cvxnn.io): round trips on scikit-learn data sets and typed
errors for bad files and bad arguments."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from cvxnn import io
from cvxnn.errors import FileFormatError, InvalidParameterError
from cvxnn.estimators import (
    ConvexGatedReLUClassifier,
    ConvexGatedReLURegressor,
    ConvexReLUClassifier,
    ConvexReLURegressor,
)
from cvxnn.io import _digest

datasets = pytest.importorskip("sklearn.datasets")


def _standardize(X):
    return (X - X.mean(0)) / X.std(0)


@pytest.fixture(scope="module")
def iris():
    X, y = datasets.load_iris(return_X_y=True)
    return _standardize(X), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = datasets.load_diabetes(return_X_y=True)
    return _standardize(X)[:100], y[:100]


@pytest.fixture(scope="module")
def iris_weighted(iris):
    X, y = iris
    return ConvexReLUClassifier(n_gates=8, random_state=0, class_weight={0: 1, 1: 2, 2: 1}).fit(X, y)


@pytest.mark.parametrize("cls", [ConvexReLUClassifier, ConvexGatedReLUClassifier,
                                 ConvexReLURegressor, ConvexGatedReLURegressor])
def test_round_trips_keep_predictions(tmp_path, iris, diabetes, cls):
    X, y = iris if "Classifier" in cls.__name__ else diabetes
    est = cls(n_gates=8, random_state=0, lam=0.01).fit(X, y)
    back = io.load(io.save(est, tmp_path / "m"), kind="estimator")
    again = pickle.loads(pickle.dumps(back))  # a loaded estimator pickles too
    for other in (back, again):
        np.testing.assert_array_equal(other.predict(X), est.predict(X))
    sol = io.load(io.save(est.solution_, tmp_path / "s"), kind="solution")
    np.testing.assert_array_equal(sol.U, est.solution_.U)
    assert sol.status == est.solution_.status and sol.lam == est.solution_.lam


def _rewrite(src, dst, mutate):
    """Copy a model file with its metadata changed by ``mutate`` (checksums kept valid)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("__cvxnn__").tobytes().decode("utf-8"))
    mutate(meta)
    meta["checksums"] = {k: _digest(v) for k, v in arrays.items()}
    np.savez(dst, __cvxnn__=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), **arrays)
    return dst


def test_class_weight_label_out_of_range_is_a_format_error(tmp_path, iris_weighted):
    # was: OverflowError from numpy (a label 10**30 for an int64 dtype)
    path = io.save(iris_weighted, tmp_path / "m")
    bad = _rewrite(path, tmp_path / "bad.npz", lambda m: m["params"]["class_weight"]["__class_weight__"]
                   ["labels"].__setitem__(0, 10 ** 30))
    with pytest.raises(FileFormatError, match="class_weight"):
        io.load(bad)


def test_unknown_kind_name_is_a_parameter_error(tmp_path, iris_weighted):
    # was: FileFormatError blaming the file ("holds a 'estimator', expected network")
    path = io.save(iris_weighted, tmp_path / "m")
    for kind in ("network", ("estimator", "Estimator")):
        with pytest.raises(InvalidParameterError, match="unknown kind"):
            io.load(path, kind=kind)
    with pytest.raises(FileFormatError, match="expected solution"):
        io.load(path, kind="solution")
    assert isinstance(io.load(path, kind=("solution", "estimator")), ConvexReLUClassifier)


def test_bad_files_raise_format_errors(tmp_path, iris_weighted):
    path = io.save(iris_weighted, tmp_path / "m")
    data = path.read_bytes()
    with pytest.raises(FileFormatError, match="no such file"):
        io.load(tmp_path / "missing.npz")
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="truncated"):
        io.load(tmp_path / "t.npz")
    pickled = tmp_path / "m.pkl"
    pickled.write_bytes(pickle.dumps(iris_weighted))
    with pytest.raises(FileFormatError, match="not an .npz archive"):
        io.load(pickled)
    newer = _rewrite(path, tmp_path / "v.npz", lambda m: m.__setitem__("format_version", io.FORMAT_VERSION + 1))
    with pytest.raises(FileFormatError, match="newer than this cvxnn reads"):
        io.load(newer)


def test_save_refuses_a_non_bool_compress_and_load_hints_at_the_added_suffix(tmp_path):
    from cvxnn.networks import ReLUNetwork

    net = ReLUNetwork(np.ones((2, 3)), np.ones(3))
    with pytest.raises(InvalidParameterError, match="compress must be True or False"):
        io.save(net, tmp_path / "m", compress="yes")
    io.save(net, tmp_path / "m")
    with pytest.raises(FileFormatError, match=r"did you mean m\.npz"):
        io.load(tmp_path / "m")
