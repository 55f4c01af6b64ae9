"""Tests of model files (cvxnn.io): round trips, no pickle, clear errors on bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from cvxnn import io
from cvxnn.builders import build_program
from cvxnn.datasets import load_teacher_regression, load_three_blobs
from cvxnn.errors import FileFormatError, InvalidParameterError, LabelError, MemoryBudgetError, PatternMismatchError
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
    for attr in ("objective_", "gap_", "status_", "n_active_neurons_", "n_features_in_", "network_tol_"):
        assert getattr(back, attr) == getattr(reg, attr)
    assert reg.network_tol_ > 0  # the documented identity works on the loaded model
    Xs, ys = back.standardizer_.transform(X), back.standardizer_.transform_y(y)
    assert back.solution_.to_network(tol=back.network_tol_).objective(Xs, ys, back.lam_) == pytest.approx(
        back.objective_, rel=1e-12)
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
    # keys of mixed types pass json.dumps but not the sorted header; deep nesting overflows the
    # encoder: both were a bare TypeError / RecursionError
    for bad, why in (({"a": 1, 2: "b"}, "mixes keys"), ({"cfg": {"x": 1, None: 2}}, "mixes keys")):
        with pytest.raises(InvalidParameterError, match=why):
            io.save(relu_solution, tmp_path / "x.npz", metadata=bad)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidParameterError, match="nested too deeply"):
        io.save(relu_solution, tmp_path / "x.npz", metadata={"deep": deep})
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(InvalidParameterError, match="cannot save"):
        io.save({"not": "a model"}, tmp_path / "y.npz")
    with pytest.raises(InvalidParameterError, match="not fitted"):
        io.save(ConvexReLURegressor(), tmp_path / "z.npz")


def test_cv_estimator_save_names_its_refit_model(tmp_path):
    """A fitted ...CV estimator is not a file format of its own: the error says to save its
    refit model, and that model round-trips."""
    from cvxnn import ConvexGatedReLURegressorCV

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = X[:, 0] - X[:, 1] ** 2
    cv = ConvexGatedReLURegressorCV(n_lams=3, cv=3, n_gates=6, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="best_estimator_"):
        io.save(cv, tmp_path / "cv.npz")
    back = io.load(io.save(cv.best_estimator_, tmp_path / "best.npz"))
    np.testing.assert_allclose(back.predict(X), cv.predict(X))


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
    with pytest.raises(FileFormatError, match=r"\['V'\] listed in the metadata are missing"):
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


# ------------------------------------------------------------------ atomic saves (faults)
def _good_file(tmp_path):
    net = ReLUNetwork(np.array([[1.0, -2.0], [0.5, 1.0]]), np.array([1.0, -1.0]))
    path = io.save(net, tmp_path / "model.npz")
    return net, path, path.read_bytes()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_disk_full_during_save_keeps_the_previous_file(tmp_path, monkeypatch):
    import errno

    net, path, before = _good_file(tmp_path)
    other = ReLUNetwork(np.ones((2, 3)), np.ones(3))
    real_savez = np.savez_compressed

    def full_disk(fh, **arrays):
        real_savez(fh, **arrays)  # part of the data reached the temporary file...
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    with pytest.raises(OSError, match="No space left"):
        io.save(other, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(io.load(path).W1, net.W1)
    assert _leftovers(tmp_path) == []


def test_ctrl_c_during_save_keeps_the_previous_file(tmp_path, monkeypatch):
    net, path, before = _good_file(tmp_path)

    def interrupted(fh, **arrays):
        fh.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.save(ReLUNetwork(np.ones((2, 3)), np.ones(3)), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(io.load(path).w2, net.w2)
    assert _leftovers(tmp_path) == []


def test_failed_fsync_or_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    import os

    _, path, before = _good_file(tmp_path)
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename failed")))
    with pytest.raises(OSError, match="rename failed"):
        io.save(ReLUNetwork(np.ones((2, 3)), np.ones(3)), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def test_save_replaces_atomically_and_refuses_folders(tmp_path):
    _, path, _ = _good_file(tmp_path)
    bigger = ReLUNetwork(np.ones((2, 5)), np.ones(5))
    assert io.save(bigger, path) == path
    assert io.load(path).n_neurons == 5 and _leftovers(tmp_path) == []
    with pytest.raises(InvalidParameterError, match="folder"):
        io.save(bigger, tmp_path)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        io.save(bigger, tmp_path / "missing" / "m.npz")


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.99])
def test_corrupted_model_file(tmp_path, relu_solution, cut):
    path = io.save(relu_solution, tmp_path / "s.npz")
    raw = bytearray(path.read_bytes())
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(bytes(raw[: int(len(raw) * cut)]))
    with pytest.raises(FileFormatError):
        io.load(trunc)
    flipped = tmp_path / "flip.npz"
    k = int(len(raw) * cut)
    raw[k] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    try:
        back = io.load(flipped)
    except (FileFormatError, MemoryBudgetError):
        return
    # a flipped byte that no reader notices must leave the arrays as saved (checksums)
    np.testing.assert_array_equal(back.V, relu_solution.V)
    np.testing.assert_array_equal(back.patterns.mask, relu_solution.patterns.mask)


def test_load_on_a_folder_is_a_format_error(tmp_path):
    with pytest.raises(FileFormatError, match="folder"):
        io.load(tmp_path)
    with pytest.raises(FileFormatError, match="folder"):
        io.read_metadata(tmp_path)
    with pytest.raises(InvalidParameterError, match="path"):
        io.load(None)


# ---------------------------------------------------------------------- hostile archives
def _write_npy_member(zf, name, shape, dtype="<f8", data=b""):
    """A member whose .npy header declares ``shape`` (data need not follow)."""
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    blob = b"\x93NUMPY\x01\x00" + (len(text) + pad + 1).to_bytes(2, "little") + text + b" " * pad + b"\n"
    zf.writestr(name, blob + data)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_huge_declared_shape_is_refused_before_reading(tmp_path, compression):
    from cvxnn.errors import MemoryBudgetError

    _, good, _ = _good_file(tmp_path)
    hostile = tmp_path / "hostile.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(hostile, "w", compression=compression) as dst:
        for info in src.infolist():
            if info.filename != "W1.npy":
                dst.writestr(info.filename, src.read(info))
        _write_npy_member(dst, "W1.npy", (10**11,))
    assert hostile.stat().st_size < 8192
    with pytest.raises(MemoryBudgetError, match="W1"):
        io.load(hostile)
    with pytest.raises(MemoryBudgetError):
        io.read_metadata(hostile)
    # an explicit budget applies too, and counts the whole archive
    with pytest.raises(MemoryBudgetError):
        io.load(good, max_bytes=16)


def test_members_that_are_not_arrays_are_refused(tmp_path):
    _, good, _ = _good_file(tmp_path)
    odd = tmp_path / "odd.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(odd, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr("notes.txt", b"hello")
    with pytest.raises(FileFormatError, match="not an .npy array"):
        io.load(odd)
    obj = tmp_path / "obj.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(obj, "w") as dst:
        for info in src.infolist():
            if info.filename != "w2.npy":
                dst.writestr(info.filename, src.read(info))
        _write_npy_member(dst, "w2.npy", (2,), dtype="|O")
    with pytest.raises(FileFormatError, match="object array"):
        io.load(obj)


def _rewrite(src, out, *, meta_update=None, arrays_update=None, meta_fn=None):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__cvxnn__"].tobytes())
    meta.update(meta_update or {})
    if meta_fn is not None:
        meta_fn(meta)
    arrays.update(arrays_update or {})
    arrays["__cvxnn__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(out, **arrays)
    return out


def test_inverted_mask_with_unchanged_shapes_does_not_load(tmp_path, data, relu_solution):
    X, _ = data
    src = io.save(relu_solution, tmp_path / "s.npz")
    inverted = _rewrite(src, tmp_path / "inv.npz",
                        arrays_update={"patterns_mask": ~relu_solution.patterns.mask})
    with pytest.raises(FileFormatError, match="checksum"):
        io.load(inverted)
    # even with the checksum recomputed, the mask is checked against the gates on the data
    from cvxnn.io import _digest

    forged = _rewrite(src, tmp_path / "forged.npz",
                      arrays_update={"patterns_mask": ~relu_solution.patterns.mask},
                      meta_fn=lambda m: m["checksums"].update(
                          patterns_mask=_digest(~relu_solution.patterns.mask)))
    back = io.load(forged)
    with pytest.raises(PatternMismatchError, match="contradicts its gates"):
        back.patterns.check_data(X)
    # an honest file passes the same check
    io.load(src).patterns.check_data(X)


def test_added_entries_and_old_files(tmp_path, relu_solution):
    from cvxnn.errors import CvxnnWarning

    src = io.save(relu_solution, tmp_path / "s.npz")
    added = _rewrite(src, tmp_path / "added.npz", arrays_update={"intruder": np.zeros(2)})
    with pytest.raises(FileFormatError, match="no checksum"):
        io.load(added)
    old = _rewrite(src, tmp_path / "old.npz", meta_update={"format_version": 1},
                   meta_fn=lambda m: m.pop("checksums"))
    with pytest.warns(CvxnnWarning, match="without checksums"):
        back = io.load(old)
    np.testing.assert_array_equal(back.V, relu_solution.V)


def test_a_missing_entry_is_refused_not_read_as_absent(tmp_path):
    # a damaged central directory can hide the records after it: the standardizer's entries went
    # missing and the model loaded as one fitted without standardization (predictions off by 1.25)
    from cvxnn.estimators import ConvexGatedReLURegressor

    X, y = load_teacher_regression()
    est = ConvexGatedReLURegressor(n_gates=6, random_state=0).fit(X, y)
    src = io.save(est, tmp_path / "m.npz")
    with zipfile.ZipFile(src) as zf:
        dropped = [n for n in zf.namelist() if "standardizer" in n]
    assert dropped
    damaged = tmp_path / "damaged.npz"
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(damaged, "w") as b:
        for info in a.infolist():
            if info.filename not in dropped:
                b.writestr(info, a.read(info.filename))
    with pytest.raises(FileFormatError, match="missing"):
        io.load(damaged)


@pytest.mark.parametrize("field, value, where", [
    ("solution", [], "'solution'"),
    ("patterns", [1, 2], "'patterns'"),
    ("activation", ["relu"], "'activation'"),
    ("kind", ["solution"], "'kind'"),
    ("checksums", [], "'checksums'"),
])
def test_wrong_typed_metadata_names_the_field(tmp_path, relu_solution, field, value, where):
    src = io.save(relu_solution, tmp_path / "s.npz")
    bad = _rewrite(src, tmp_path / "bad.npz", meta_update={field: value})
    with pytest.raises(FileFormatError, match=where):
        io.load(bad)


@pytest.mark.parametrize("path_, value", [
    (("solution", "status"), 3),
    (("solution", "lam"), [0.1]),
    (("solution", "iterations"), "many"),
    (("solution", "extra"), []),
    (("solution", "extra_arrays"), {"cone_duals": "lots"}),
    (("solution", "loss"), ["squared"]),
    (("patterns", "bias"), "yes"),
    (("patterns", "fingerprint"), 12),
])
def test_wrong_typed_nested_metadata(tmp_path, relu_solution, path_, value):
    src = io.save(relu_solution, tmp_path / "s.npz")

    def edit(meta):
        meta[path_[0]][path_[1]] = value

    bad = _rewrite(src, tmp_path / "bad.npz", meta_fn=edit)
    with pytest.raises(FileFormatError, match=".".join(path_).replace(".", r"\.")
                       if path_[1] != "loss" else "loss"):
        io.load(bad)


@pytest.fixture(scope="module")
def fitted_pair(data):
    X, y = data
    reg = ConvexReLURegressor(n_gates=6, random_state=0, backend="clarabel").fit(X, y)
    Xb, labels = load_three_blobs()
    clf = ConvexReLUClassifier(n_gates=5, random_state=0, backend="clarabel").fit(Xb[::3], labels[::3])
    return reg, clf


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(params=[]), "'params'"),
    (lambda m: m.update(params={}), "lacks"),
    (lambda m: m["params"].update(lam=[0.1]), r"params\.lam"),
    (lambda m: m.update(fitted=[]), "'fitted'"),
    (lambda m: m["fitted"].update(n_features_in_="4"), r"fitted\.n_features_in_"),
    (lambda m: m["fitted"].pop("status_"), r"fitted\.status_"),
    (lambda m: m.update(network=["relu_network"]), "'network'"),
    (lambda m: m.update(estimator=["ConvexReLURegressor"]), "'estimator'"),
])
def test_wrong_typed_estimator_metadata(tmp_path, fitted_pair, edit, match):
    reg, _ = fitted_pair
    src = io.save(reg, tmp_path / "reg.npz")
    bad = _rewrite(src, tmp_path / "bad.npz", meta_fn=edit)
    with pytest.raises(FileFormatError, match=match):
        io.load(bad)


def _relabel(cls):
    """A metadata edit that renames the estimator and gives it exactly ``cls``'s parameters
    (defaults for the missing ones), so only the structural checks can catch it."""

    def edit(meta):
        meta["estimator"] = cls.__name__
        defaults = cls().get_params()
        meta["params"] = {k: meta["params"].get(k, None if not isinstance(defaults[k], (int, float, str))
                                                else defaults[k]) for k in defaults}
    return edit


def test_relabelled_estimators_do_not_load(tmp_path, fitted_pair):
    from cvxnn.estimators import ConvexGatedReLURegressor

    reg, clf = fitted_pair
    src = io.save(reg, tmp_path / "reg.npz")
    as_clf = _rewrite(src, tmp_path / "as_clf.npz", meta_fn=_relabel(ConvexReLUClassifier))
    with pytest.raises(FileFormatError, match="class labels"):
        io.load(as_clf)
    as_gated = _rewrite(src, tmp_path / "as_gated.npz", meta_fn=_relabel(ConvexGatedReLURegressor))
    with pytest.raises(FileFormatError, match="gated_relu"):
        io.load(as_gated)
    csrc = io.save(clf, tmp_path / "clf.npz")
    as_reg = _rewrite(csrc, tmp_path / "as_reg.npz", meta_fn=_relabel(ConvexReLURegressor))
    with pytest.raises(FileFormatError, match="classifier"):
        io.load(as_reg)
    # a plain rename without the parameters is refused as well (never filled with defaults)
    renamed = _rewrite(src, tmp_path / "renamed.npz", meta_update={"estimator": "ConvexReLUClassifier"})
    with pytest.raises(FileFormatError):
        io.load(renamed)


def test_estimator_files_without_the_newer_parameters_load_with_their_old_values(tmp_path, fitted_pair):
    reg, clf = fitted_pair
    for est in (reg, clf):
        src = io.save(est, tmp_path / "new.npz")

        def strip(meta):
            for key in ("standardize", "warm_start", "class_weight"):
                meta["params"].pop(key, None)
            meta["fitted"].pop("convex_objective_")

        old = _rewrite(src, tmp_path / "old.npz", meta_fn=strip)
        back = io.load(old)
        assert back.standardize is False and back.warm_start is False
        assert getattr(back, "class_weight", None) is None
        assert back.convex_objective_ == back.objective_  # older files stored the program's value
    # any other missing parameter is still refused
    src = io.save(reg, tmp_path / "new.npz")
    bad = _rewrite(src, tmp_path / "bad.npz", meta_fn=lambda m: m["params"].pop("n_gates"))
    with pytest.raises(FileFormatError, match="lacks"):
        io.load(bad)


@pytest.mark.parametrize("labels, weights", [
    (np.array([0, 1, 2]), {0: 2.0, 1: 1, 2: 0.5}),
    (np.array(["ant", "bee", "cow"]), {"ant": 3.0, "cow": 0.25}),
])
def test_class_weight_dict_round_trips(tmp_path, labels, weights):
    X, idx = load_three_blobs()
    X, y = X[::3], labels[idx[::3]]
    clf = ConvexReLUClassifier(lam=1.0, n_gates=5, random_state=0, class_weight=weights).fit(X, y)
    back = io.load(io.save(clf, tmp_path / "cw.npz"))
    assert back.class_weight == weights
    assert all(type(k) is type(next(iter(weights))) for k in back.class_weight)
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    refit = back.fit(X, y)  # the loaded weights are usable as given
    assert refit.objective_ == pytest.approx(clf.objective_, rel=1e-6)


def test_class_weight_that_cannot_be_stored_is_refused_at_save(tmp_path):
    X, idx = load_three_blobs()
    clf = ConvexReLUClassifier(lam=1.0, n_gates=5, random_state=0,
                               class_weight={0: 1.0, 1: 2.0}).fit(X[::3], idx[::3])
    clf.class_weight = {(0, 1): 1.0}
    with pytest.raises(InvalidParameterError, match="class_weight"):
        io.save(clf, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


def test_standardized_regressor_keeps_its_target_map(tmp_path, data):
    X, y = data
    reg = ConvexReLURegressor(n_gates=6, random_state=0).fit(X, 100.0 * y + 7.0)
    back = io.load(io.save(reg, tmp_path / "reg.npz"))
    np.testing.assert_allclose(back.standardizer_.y_mean_, reg.standardizer_.y_mean_)
    np.testing.assert_allclose(back.standardizer_.y_scale_, reg.standardizer_.y_scale_)
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    assert back.objective_ == reg.objective_ and back.convex_objective_ == reg.convex_objective_


def test_non_finite_extras_come_back_as_floats(tmp_path, data):
    """nan / inf floats of a solution's extras are written as strings (JSON has no NaN) and read
    back as floats, so typed fields filled from them (step_size, ...) keep their type."""
    X, y = data
    sol = build_program(X, y, activation="gated_relu", lam=0.1, patterns=sample_patterns(X, 8, seed=0)).solve()
    sol.extra["step_size"] = float("nan")
    sol.extra["my_bound"] = float("-inf")
    sol.step_size = float("nan")
    back = io.load(io.save(sol, tmp_path / "s.npz"))
    assert isinstance(back.extra["my_bound"], float) and back.extra["my_bound"] == -np.inf
    assert isinstance(back.step_size, float) and np.isnan(back.step_size)


def test_a_model_keeps_its_formulation(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 3))
    pats = sample_patterns(X, 6, seed=0)
    U = rng.standard_normal((pats.design_dim, 6, 2))
    model = ConvexModel(activation="gated_relu", patterns=pats, U=U, formulation="one_vs_all")
    back = io.load(io.save(model, tmp_path / "m.npz"))
    assert back.formulation == "one_vs_all" and back.penalty() == pytest.approx(model.penalty())


def test_bad_arguments_to_save_and_load(tmp_path, data):
    X, y = data
    sol = build_program(X, y, activation="gated_relu", lam=0.1, patterns=sample_patterns(X, 8, seed=0)).solve()
    with pytest.raises(InvalidParameterError, match="metadata"):
        io.save(sol, tmp_path / "s.npz", metadata=[1, 2])
    path = io.save(sol, tmp_path / "s.npz")
    with pytest.raises(InvalidParameterError, match="kind"):
        io.load(path, kind=5)


def test_a_weighted_fit_keeps_its_weights(tmp_path):
    """A class-weighted (or sample-weighted) fit saves the weights of its loss: the loaded
    solution's loss is the weighted one, so its objective (and a pruning of it) is the fit's."""
    from cvxnn.estimators import WeightedLoss

    X, labels = load_three_blobs()
    keep = labels != 2
    X, y = X[keep], labels[keep]
    est = ConvexReLUClassifier(lam=0.5, n_gates=12, random_state=0, class_weight={0: 1.0, 1: 3.0}).fit(X, y)
    back = io.load(io.save(est, tmp_path / "w.npz"))
    loss = back.solution_.loss
    assert isinstance(loss, WeightedLoss)
    np.testing.assert_array_equal(loss.weights, est.solution_.loss.weights)
    Xs = back.standardizer_.transform(X)
    y_enc = np.where(y == back.classes_[1], 1.0, -1.0)
    assert back.solution_.objective(Xs, y_enc, back.lam_, loss) == pytest.approx(est.convex_objective_, rel=1e-10)


def test_nonsense_metadata_values_are_refused(tmp_path, data, relu_solution):
    """Field values are checked, not only their JSON types: a lam of 'abc' or -5, an unknown
    status, a gated network's file relabelled as a ReLU network (it would load as another function)."""
    X, y = data
    est = ConvexReLURegressor(lam=0.1, n_gates=6, random_state=0).fit(X, y)
    io.save(est, tmp_path / "est.npz")

    def set_param(key, value):
        return lambda m: m["params"].__setitem__(key, value)

    for key, value in (("lam", "abc"), ("lam", -1.0), ("tol", 2.0), ("n_gates", 0)):
        bad = _rewrite(tmp_path / "est.npz", tmp_path / "bad_est.npz", meta_fn=set_param(key, value))
        with pytest.raises(FileFormatError, match=key):
            io.load(bad)
    io.save(relu_solution, tmp_path / "sol.npz")
    for key, value in (("lam", -5.0), ("status", "bogus")):
        bad = _rewrite(tmp_path / "sol.npz", tmp_path / "bad_sol.npz",
                       meta_fn=lambda m, k=key, v=value: m["solution"].__setitem__(k, v))
        with pytest.raises(FileFormatError, match=key):
            io.load(bad)
    rng = np.random.default_rng(5)
    g = GatedReLUNetwork(rng.standard_normal((3, 4)), rng.standard_normal(4), gates=rng.standard_normal((3, 4)))
    io.save(g, tmp_path / "gated.npz")
    bad = _rewrite(tmp_path / "gated.npz", tmp_path / "bad_gated.npz", meta_update={"kind": "relu_network"})
    with pytest.raises(FileFormatError, match="gates"):
        io.load(bad)


def test_classifier_with_string_labels_in_an_object_array_round_trips(tmp_path, data):
    """Labels from a pandas string column come as an object array; they save as text and load
    back as objects (they used to be refused as 'not numbers or strings')."""
    X, y = data
    labels = np.where(y > np.median(y), "yes", "no").astype(object)
    clf = ConvexReLUClassifier(lam=0.1, n_gates=6, random_state=0).fit(X, labels)
    io.save(clf, tmp_path / "clf.npz")
    back = io.load(tmp_path / "clf.npz")
    assert back.classes_.dtype == object and list(back.classes_) == list(clf.classes_)
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    assert back.predict(X).dtype == clf.predict(X).dtype
    mixed_labels = np.array([1 if v > 0 else "a" for v in y], dtype=object)
    with pytest.raises(LabelError, match="one type"):  # a numpy TypeError before
        ConvexReLUClassifier(lam=0.1, n_gates=6, random_state=0).fit(X, mixed_labels)


def test_unwritable_destinations_and_bad_budgets_are_typed_errors(tmp_path):
    """Saving where no file can be created raised a bare PermissionError naming the hidden
    temporary file; max_bytes='abc' raised a bare ValueError and -1 or True were budgets."""
    import os
    import sys

    from cvxnn.errors import FileWriteError

    X, y = load_teacher_regression()
    est = ConvexReLURegressor(n_gates=4, random_state=0, backend="clarabel").fit(X[:30], y[:30])
    target = "/proc/model.npz"  # a folder nobody can create files in (root included)
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc"):
        pytest.skip("needs /proc")
    with pytest.raises(FileWriteError, match="cannot write /proc/model.npz") as info:
        io.save(est, target)
    assert isinstance(info.value, OSError) and ".tmp" not in str(info.value)
    good = io.save(est, tmp_path / "model.npz")
    for bad in ("abc", float("nan"), -1, True, 1.5):
        with pytest.raises(InvalidParameterError, match="max_bytes"):
            io.load(good, max_bytes=bad)


def test_extra_diagnostics_in_lists_and_dicts_survive_a_save(tmp_path):
    """solution.extra['history'] (a list of dicts from the C-ReLU solvers) was dropped on save
    with only a debug log; what the format cannot hold now warns."""
    import cvxnn
    from cvxnn.errors import CvxnnWarning

    X, y = load_teacher_regression()
    X, y = X[:30], y[:30]
    pats = cvxnn.sample_patterns(X, 4, seed=0, bias=True)
    sol = cvxnn.solve(X, y, pats, activation="relu", lam=1.0)
    sol.extra["history"] = [{"round": 1, "gap": 0.5, "bad": float("nan")}, {"round": 2, "gap": 1e-9}]
    back = io.load(io.save(sol, tmp_path / "s.npz"))
    assert back.extra["history"][0]["round"] == 1 and back.extra["history"][1]["gap"] == 1e-9
    sol.extra["odd"] = object()
    with pytest.warns(CvxnnWarning, match="not saving solution.extra\\['odd'\\]"):
        io.save(sol, tmp_path / "t.npz")


def test_a_damaged_array_header_is_a_file_format_error(tmp_path):
    """numpy's header parser raises tokenize.TokenError on an unclosed bracket (an array above
    about 4 KB is parsed before the zip checksum is checked): a FileFormatError, not a crash."""
    import cvxnn
    from cvxnn import io

    net = cvxnn.ReLUNetwork(W1=np.ones((2, 3000)), w2=np.ones(3000))
    path = io.save(net, tmp_path / "net.npz", compress=False)
    data = bytearray(path.read_bytes())
    i = data.index(b"'shape': (2, 3000)")
    data[i + len(b"'shape': (2, 3000")] = ord(" ")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(FileFormatError):
        io.load(bad)
