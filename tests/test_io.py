"""Tests of model files (cvxnn.io): round trips, no pickle, clear errors on bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from cvxnn import io
from cvxnn.builders import build_program
from cvxnn.datasets import load_teacher_regression, load_three_blobs
from cvxnn.errors import FileFormatError, InvalidParameterError, PatternMismatchError
from cvxnn.estimators import ConvexGatedReLUClassifier, ConvexReLUClassifier, ConvexReLURegressor
from cvxnn.losses import HuberLoss
from cvxnn.networks import GatedReLUNetwork, ReLUNetwork
from cvxnn.patterns import sample_patterns
from cvxnn.solution import ConvexModel, ConvexSolution


@pytest.fixture(scope="module")
def data():
    X, y = load_teacher_regression()
    return X[:30], y[:30]


@pytest.fixture(scope="module")
def relu_solution(data):
    X, y = data
    pats = sample_patterns(X, 8, seed=0, bias=True)
    return build_program(X, y, activation="relu", lam=0.3, patterns=pats).solve("clarabel")


def test_solution_round_trip(tmp_path, data, relu_solution):
    X, y = data
    path = io.save(relu_solution, tmp_path / "sol")
    assert path.suffix == ".npz" and path.exists()
    back = io.load(path)
    assert isinstance(back, ConvexSolution)
    for name in ("V", "W"):
        np.testing.assert_array_equal(getattr(back, name), getattr(relu_solution, name))
    np.testing.assert_array_equal(back.patterns.gates, relu_solution.patterns.gates)
    np.testing.assert_array_equal(back.patterns.mask, relu_solution.patterns.mask)
    assert back.patterns.matches(X)  # fingerprint kept: checks against the training data work
    for key in ("status", "objective_value", "lam", "backend", "solver", "iterations", "max_violation"):
        assert getattr(back, key) == getattr(relu_solution, key)
    assert back.loss == relu_solution.loss
    assert back.objective(X, y, back.lam, back.loss) == pytest.approx(relu_solution.objective_value, rel=1e-8)
    for a, b in zip(back.extra["cone_duals"], relu_solution.extra["cone_duals"], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(PatternMismatchError):
        back.patterns.check_data(X + 1.0)


def test_model_and_loss_options_round_trip(tmp_path, data):
    X, y = data
    pats = sample_patterns(X, 5, seed=1)
    U = np.random.default_rng(0).standard_normal((pats.design_dim, pats.n_patterns))
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U)
    back = io.load(io.save(model, tmp_path / "m.npz"))
    assert type(back) is ConvexModel and not back.patterns.bias
    np.testing.assert_array_equal(back.U, U)
    sol = build_program(X, y, activation="gated_relu", loss=HuberLoss(delta=0.5, reduction="mean"),
                        lam=0.1, patterns=pats).solve("clarabel")
    back = io.load(io.save(sol, tmp_path / "h.npz"))
    assert back.loss == HuberLoss(delta=0.5, reduction="mean")


def test_networks_round_trip(tmp_path, data, relu_solution):
    X, _ = data
    net = relu_solution.to_network()
    back = io.load(io.save(net, tmp_path / "net.npz"), kind="relu_network")
    assert isinstance(back, ReLUNetwork)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    rng = np.random.default_rng(0)
    g = GatedReLUNetwork(W1=rng.standard_normal((4, 3)), w2=rng.standard_normal((3, 2)),
                         gates=rng.standard_normal((4, 3)), gate_bias=rng.standard_normal(3))
    back = io.load(io.save(g, tmp_path / "g.npz"))
    assert isinstance(back, GatedReLUNetwork) and back.b1 is None
    np.testing.assert_array_equal(back.predict(X), g.predict(X))


def test_estimators_round_trip(tmp_path, data):
    X, y = data
    reg = ConvexReLURegressor(n_gates=6, random_state=0, backend="clarabel").fit(X, y)
    back = io.load(io.save(reg, tmp_path / "reg.npz"))
    assert type(back) is ConvexReLURegressor
    assert back.get_params() == reg.get_params()
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    for attr in ("objective_", "gap_", "status_", "n_active_neurons_", "n_features_in_"):
        assert getattr(back, attr) == getattr(reg, attr)
    Xb, labels = load_three_blobs()
    names = np.array(["a", "b", "c"])[labels]
    clf = ConvexGatedReLUClassifier(n_gates=5, random_state=0, backend="clarabel",
                                    gates=None).fit(Xb[::3], names[::3])
    back = io.load(io.save(clf, tmp_path / "clf.npz"))
    np.testing.assert_array_equal(back.classes_, clf.classes_)
    np.testing.assert_array_equal(back.predict(Xb), clf.predict(Xb))
    np.testing.assert_allclose(back.predict_proba(Xb), clf.predict_proba(Xb))
    shared = ConvexReLUClassifier(gates=clf.patterns_.gates, backend="clarabel").fit(Xb[::3], labels[::3])
    back = io.load(io.save(shared, tmp_path / "shared.npz"))
    np.testing.assert_array_equal(back.gates, shared.gates)


def test_metadata_and_user_data(tmp_path, relu_solution):
    path = io.save(relu_solution, tmp_path / "s.npz", metadata={"data": "train.csv", "seed": 0})
    meta = io.read_metadata(path)
    assert meta["format"] == io.FORMAT and meta["format_version"] == io.FORMAT_VERSION
    assert meta["kind"] == "solution" and meta["user"] == {"data": "train.csv", "seed": 0}
    with pytest.raises(InvalidParameterError, match="JSON"):
        io.save(relu_solution, tmp_path / "x.npz", metadata={"bad": object()})
    with pytest.raises(InvalidParameterError, match="cannot save"):
        io.save({"not": "a model"}, tmp_path / "y.npz")
    with pytest.raises(InvalidParameterError, match="not fitted"):
        io.save(ConvexReLURegressor(), tmp_path / "z.npz")


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __cvxnn__=np.array([{"code": "boom"}], dtype=object))
    with pytest.raises(FileFormatError, match="pickle"):
        io.load(path)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_corrupt_files(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(FileFormatError):
        io.load(path)


def test_foreign_and_future_files(tmp_path, relu_solution):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, X=np.zeros((2, 2)))
    with pytest.raises(FileFormatError, match="without cvxnn metadata"):
        io.load(foreign)
    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(FileFormatError, match="npy"):
        io.load(npy)
    with pytest.raises(FileFormatError, match="no such file"):
        io.load(tmp_path / "missing.npz")

    def rewrite(meta_update=None, drop=None):
        src = io.save(relu_solution, tmp_path / "src.npz")
        with np.load(src, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != drop}
        meta = json.loads(arrays["__cvxnn__"].tobytes())
        meta.update(meta_update or {})
        arrays["__cvxnn__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        out = tmp_path / "edited.npz"
        np.savez(out, **arrays)
        return out

    with pytest.raises(FileFormatError, match="newer"):
        io.load(rewrite({"format_version": io.FORMAT_VERSION + 1}))
    with pytest.raises(FileFormatError, match="foreign format"):
        io.load(rewrite({"format": "something-else"}))
    with pytest.raises(FileFormatError, match="unknown kind"):
        io.load(rewrite({"kind": "teapot"}))
    with pytest.raises(FileFormatError, match="'V' is missing"):
        io.load(rewrite(drop="V"))
    with pytest.raises(FileFormatError, match="expected relu_network"):
        io.load(rewrite(), kind="relu_network")
    bad_json = tmp_path / "badjson.npz"
    np.savez(bad_json, __cvxnn__=np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(FileFormatError, match="JSON"):
        io.load(bad_json)


def test_inconsistent_shapes_are_format_errors(tmp_path, relu_solution):
    src = io.save(relu_solution, tmp_path / "src.npz")
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["V"] = arrays["V"][:, :-1]
    out = tmp_path / "shape.npz"
    np.savez(out, **arrays)
    with pytest.raises(FileFormatError, match="inconsistent"):
        io.load(out)
    # a truncated archive (zip central directory cut off)
    raw = src.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError):
        io.load(cut)
    assert zipfile.is_zipfile(src)
