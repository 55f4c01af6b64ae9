"""QA regressions of model files (cvxnn.io), the Standardizer and the shipped data sets, found by
using them on scikit-learn data sets with every kind of fitted object."""

from __future__ import annotations

import dataclasses
import json
import struct
import warnings
import zipfile

import numpy as np
import pytest

from cvxnn import io
from cvxnn.datasets import planted_teacher
from cvxnn.errors import FileFormatError, MemoryBudgetError
from cvxnn.io import _digest
from cvxnn.native.certificates import duality_gap
from cvxnn.native.solve import solve_native
from cvxnn.networks import ReLUNetwork
from cvxnn.patterns import sample_patterns
from cvxnn.preprocessing import Standardizer

datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def diabetes():
    X, y = datasets.load_diabetes(return_X_y=True)
    X, y = X[:60], y[:60]
    return (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()


def test_weighted_relu_fit_keeps_its_multipliers_and_certificate(tmp_path):
    # the multipliers of a weighted squared-loss C-ReLU fit (moved back to the unweighted rows) are
    # only in the typed field, not in `extra`: the loaded solution lacked them and its certified
    # gap went from 1e-10 to 27 (objective 37) on the same data
    from cvxnn.estimators import ConvexReLURegressor

    X, y = datasets.load_diabetes(return_X_y=True)
    X, y = X[:60], y[:60]
    w = np.random.default_rng(0).uniform(0.5, 2.0, 60)
    est = ConvexReLURegressor(n_gates=6, random_state=0).fit(X, y, sample_weight=w)
    back = io.load(io.save(est, tmp_path / "m"), kind="estimator")
    sol, loaded = est.solution_, back.solution_
    assert sol.multipliers is not None and "multipliers" not in sol.extra
    np.testing.assert_array_equal(loaded.multipliers, sol.multipliers)
    Xs, ys = est.standardizer_.transform(X), est.standardizer_.transform_y(y)
    before = duality_gap(Xs, ys, sol, sol.lam, sol.loss).gap
    after = duality_gap(Xs, ys, loaded, loaded.lam, loaded.loss).gap
    assert after == before and before < 1e-6 * abs(sol.objective_value)


def test_typed_solution_fields_round_trip_exactly(tmp_path, diabetes):
    X, y = diabetes
    pats = sample_patterns(X, 6, seed=0, bias=True)
    sol = solve_native(X, y, pats, activation="relu", lam=0.05, solver="working_set")
    rng = np.random.default_rng(1)
    n, p = X.shape[0], pats.n_patterns
    # typed fields set on their own (not in extra), one left None although extra holds the key
    edited = dataclasses.replace(sol, multipliers=rng.uniform(0, 1, sol.multipliers.shape), dual_value=1.25,
                                 rel_gap=3e-9, step_size=0.5, al_delta=7.0, program_penalty=2.5, training_X=X,
                                 cone_duals=(rng.uniform(size=(n, p)), rng.uniform(size=(n, p))))
    edited.rel_gap = None
    back = io.load(io.save(edited, tmp_path / "s"), kind="solution")
    for name in ("multipliers", "training_X"):
        np.testing.assert_array_equal(getattr(back, name), getattr(edited, name))
    for a, b in zip(back.cone_duals, edited.cone_duals, strict=True):
        np.testing.assert_array_equal(a, b)
    for name in ("dual_value", "step_size", "al_delta", "program_penalty"):
        assert getattr(back, name) == getattr(edited, name), name
    assert back.rel_gap is None and "rel_gap" in back.extra
    # multipliers made from the cone duals are stored once and made again on load
    cvx = dataclasses.replace(sol, multipliers=None, cone_duals=edited.cone_duals, extra={})
    path = io.save(cvx, tmp_path / "c")
    assert io.read_metadata(path)["solution"]["typed"]["multipliers"] == "cone_duals"
    np.testing.assert_array_equal(io.load(path).multipliers, cvx.multipliers)


def _npy(descr: str, shape: tuple, payload: bytes = b"") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}".encode("latin1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def test_negative_dimension_cannot_cancel_the_memory_budget(tmp_path):
    # numpy's header parser accepts negative dimensions; summed with the others they cancelled a
    # huge declared array (a 1 MB file made load allocate 89 GiB, a raw MemoryError)
    path = io.save(ReLUNetwork(np.ones((3, 4)), np.ones(4), b1=np.zeros(4)), tmp_path / "n", compress=False)
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members["W1.npy"] = _npy("<f8", (1000, 1000), bytes(8_000_000))
    members["b1.npy"] = _npy("<f8", (-1000, 1000))
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(FileFormatError, match="negative dimension"):
        io.load(bad, max_bytes=1_000_000)
    with pytest.raises(FileFormatError, match="negative dimension"):
        io.read_metadata(bad)


def test_standardizer_weights_of_any_scale():
    X = datasets.load_digits().data[:5, 2:5]
    # weights of 1e308: their sum overflowed and the statistics were NaN, silently
    std = Standardizer().fit(X, sample_weight=[1e308, 1e308, 1.0, 1.0, 1.0])
    ref = Standardizer().fit(X, sample_weight=[1.0, 1.0, 1e-308, 1e-308, 1e-308])
    assert np.all(np.isfinite(std.mean_)) and np.all(np.isfinite(std.scale_))
    np.testing.assert_allclose(std.mean_, ref.mean_, rtol=1e-14)
    np.testing.assert_allclose(std.scale_, ref.scale_, rtol=1e-14)
    # subnormal weights lost digits (scale off by 5e-6 relative)
    tiny = Standardizer().fit(X, sample_weight=[1e-320, 1e-320, 1e-320, 0.0, 0.0])
    np.testing.assert_allclose(tiny.scale_, np.where(X[:3].std(0) > 0, X[:3].std(0), 1.0), rtol=1e-13)


def test_standardizer_fit_transform_takes_sample_weight():
    X, y = datasets.load_wine(return_X_y=True)
    w = np.random.default_rng(0).uniform(0, 2, len(y))
    std = Standardizer(center_y=True, scale_y=True)
    Xs, ys = std.fit_transform(X, y, sample_weight=w)
    ref = Standardizer(center_y=True, scale_y=True).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(Xs, ref.transform(X))
    np.testing.assert_array_equal(ys, ref.transform_y(y))
    # the weighted column statistics are those of the data with rows repeated
    np.testing.assert_allclose(np.average(Xs, axis=0, weights=w), 0.0, atol=1e-12)


def test_planted_teacher_counts_the_teacher_weights(monkeypatch):
    # W1 (d x n_neurons) and w2 were not in the memory check: planted_teacher(2, 200000,
    # n_neurons=100000) tried to allocate 149 GiB (a raw MemoryError or the OOM killer)
    monkeypatch.setattr("cvxnn.operators.default_memory_budget", lambda: 1_000_000)
    X, y = planted_teacher(20, 10, n_neurons=10, seed=0)  # well under the budget
    assert X.shape == (20, 10) and y.shape == (20,)
    with pytest.raises(MemoryBudgetError, match="W1"):
        planted_teacher(2, 1000, n_neurons=1000, seed=0)  # W1 alone: 8 MB
    with pytest.raises(MemoryBudgetError, match="w2"):
        planted_teacher(2, 2, n_neurons=1000, n_outputs=1000, seed=0)


def test_planted_teacher_is_deterministic_and_typed():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = planted_teacher(30, 4, n_outputs=2, seed=3)
    b = planted_teacher(30, 4, n_outputs=2, seed=np.random.default_rng(3))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
        assert u.dtype == np.float64
    assert a[1].shape == (30, 2)


def test_save_says_what_to_save_for_results_that_hold_a_model(tmp_path, diabetes):
    from cvxnn.conv import ConvModel, PatchGeometry
    from cvxnn.errors import InvalidParameterError
    from cvxnn.optimality import prune_exact

    X, y = diabetes
    sol = solve_native(X, y, sample_patterns(X, 4, seed=0), activation="gated_relu", lam=0.1)
    pruned = prune_exact(sol, X)
    with pytest.raises(InvalidParameterError, match="For a PruneResult, save its `model`"):
        io.save(pruned, tmp_path / "p")
    io.save(pruned.model, tmp_path / "p")
    conv = ConvModel(model=sol, geometry=PatchGeometry.make((10,), 10))
    with pytest.raises(InvalidParameterError, match="no patch geometry"):
        io.save(conv, tmp_path / "c")


def _rewrite(src, dst, mutate_meta=None, mutate_arrays=None):
    """Copy a model file with its metadata or arrays changed (checksums recomputed: a forged file)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("__cvxnn__").tobytes().decode("utf-8"))
    if mutate_meta is not None:
        mutate_meta(meta)
    if mutate_arrays is not None:
        mutate_arrays(arrays)
    meta["checksums"] = {k: _digest(v) for k, v in arrays.items()}
    np.savez(dst, __cvxnn__=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), **arrays)
    return dst


def test_forged_statistics_and_labels_are_refused(tmp_path):
    # metadata is not checksummed: these loaded as given (status_ 'bogus', lam inf, NaN label)
    from cvxnn.estimators import ConvexGatedReLUClassifier

    X, y = datasets.load_iris(return_X_y=True)
    path = io.save(ConvexGatedReLUClassifier(n_gates=4, random_state=0).fit(X, y.astype(float)), tmp_path / "m")
    cases = {
        "fitted.status_": lambda m: m["fitted"].__setitem__("status_", "bogus"),
        "fitted.n_iter_": lambda m: m["fitted"].__setitem__("n_iter_", -5),
        "solution.solution.lam": lambda m: m["solution"]["solution"].__setitem__("lam", "inf"),
        "solution.solution.iterations": lambda m: m["solution"]["solution"].__setitem__("iterations", -3),
    }
    for field, mutate in cases.items():
        with pytest.raises(FileFormatError, match=field.replace(".", r"\.")):
            io.load(_rewrite(path, tmp_path / "bad.npz", mutate))

    def nan_label(arrays):
        arrays["classes_"] = np.array([np.nan, 1.0, 2.0])

    with pytest.raises(FileFormatError, match="class labels 'classes_' contain NaN"):
        io.load(_rewrite(path, tmp_path / "bad.npz", mutate_arrays=nan_label))
