"""Tests of the command line (cvxnn.cli): fit, path, prune, verify, errors, progress bars."""

from __future__ import annotations

import io as _stdio
import json
import subprocess
import sys

import numpy as np
import pytest

from cvxnn import io
from cvxnn.cli import ProgressBar, load_data, main
from cvxnn.datasets import load_teacher_regression, load_three_blobs
from cvxnn.errors import FileFormatError, InvalidParameterError, NonFiniteError, ShapeError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    X, y = load_teacher_regression()
    X, y = X[:40], y[:40]
    csv = d / "teacher.csv"
    with open(csv, "w") as fh:
        fh.write("a,b,target,c,d\n")
        for row, t in zip(X, y, strict=True):
            fh.write(",".join(f"{v:.17g}" for v in (row[0], row[1], t, row[2], row[3])) + "\n")
    Xb, labels = load_three_blobs()
    keep = labels != 2
    npz = d / "blobs.npz"
    np.savez(npz, features=Xb[keep][::2], labels=labels[keep][::2])
    return {"dir": d, "csv": csv, "X": X, "y": y, "npz": npz}


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- load_data
def test_load_data_csv_target_by_name_and_index(files):
    X, y = load_data(files["csv"], target="target")
    np.testing.assert_allclose(X, files["X"], rtol=1e-15)
    np.testing.assert_allclose(y, files["y"], rtol=1e-15)
    X2, y2 = load_data(files["csv"], target="2")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    X3, y3 = load_data(files["csv"])  # default: last column
    np.testing.assert_allclose(y3, files["X"][:, 3], rtol=1e-15)


def test_load_data_headerless_and_string_labels(tmp_path):
    p = tmp_path / "nohdr.csv"
    p.write_text("1,2,3\n4,5,6\n")
    X, y = load_data(p)
    np.testing.assert_array_equal(X, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(y, [3, 6])
    q = tmp_path / "labels.csv"
    q.write_text("x1,x2,kind\n0.1,0.2,cat\n0.3,0.1,dog\n")
    X, y = load_data(q, labels=True)
    assert list(y) == ["cat", "dog"]
    with pytest.raises(ShapeError, match="non-numeric"):
        load_data(q)


@pytest.mark.parametrize(
    "content, error, match",
    [
        ("a,b,y\n1,2,3\n4,,5\n", NonFiniteError, "row 2, column 'b'"),
        ("a,b,y\n1,2,3\n4,nan,5\n", NonFiniteError, "NaN"),
        ("a,b,y\n1,2,3\n4,5\n", ShapeError, "row 2 has 2 fields"),
        ("a,b,y\n", ShapeError, "no data rows"),
        ("", ShapeError, "no data"),
        ("y\n1\n2\n", ShapeError, "at least two columns"),
        ("a,b,y\n1,x,3\n", ShapeError, "non-numeric value 'x'"),
        ("a,b,y\n1,inf,3\n", NonFiniteError, "non-finite"),
    ],
)
def test_load_data_csv_errors(tmp_path, content, error, match):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(error, match=match):
        load_data(p)


def test_load_data_npz_errors(tmp_path, files):
    with pytest.raises(InvalidParameterError, match="no array 'X'"):
        load_data(files["npz"])
    X, y = load_data(files["npz"], x_key="features", y_key="labels")
    assert X.shape[1] == 2 and y.shape == (X.shape[0],)
    bad = tmp_path / "shape.npz"
    np.savez(bad, X=np.zeros(5), y=np.zeros(5))
    with pytest.raises(ShapeError, match="2-D"):
        load_data(bad)
    mism = tmp_path / "mism.npz"
    np.savez(mism, X=np.zeros((5, 2)), y=np.zeros(4))
    with pytest.raises(ShapeError, match="4 rows"):
        load_data(mism)
    obj = tmp_path / "obj.npz"
    np.savez(obj, X=np.array([None, 1], dtype=object), y=np.zeros(2))
    with pytest.raises(FileFormatError, match="pickle"):
        load_data(obj)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"junk")
    with pytest.raises(FileFormatError):
        load_data(junk)
    with pytest.raises(FileFormatError, match="no such file"):
        load_data(tmp_path / "missing.csv")


# ------------------------------------------------------------------------------ commands
def test_fit_writes_model_and_report(files, capsys, tmp_path):
    model, report = tmp_path / "m.npz", tmp_path / "r.json"
    code, out, err = run(["fit", files["csv"], "--target", "target", "--backend", "cvxpy", "--n-gates", "10",
                          "--lam", "0.5", "-o", model, "--report", report], capsys)
    assert code == 0, err
    assert "status" in out and "optimal" in out
    rep = json.loads(report.read_text())
    assert rep["status"] == "optimal" and rep["solver"] == "CLARABEL" and rep["n_samples"] == 40
    est = io.load(model, kind="estimator")
    assert est.objective_ == pytest.approx(rep["objective"])
    assert est.score(files["X"], files["y"]) == pytest.approx(rep["train_score"])
    assert io.read_metadata(model)["user"]["command"] == "fit"


def test_fit_classification_native_gated(files, capsys, tmp_path):
    model = tmp_path / "c.npz"
    code, out, err = run(["fit", files["npz"], "--x-key", "features", "--y-key", "labels", "--task",
                          "classification", "--activation", "gated_relu", "--n-gates", "8", "-o", model,
                          "--progress", "always"], capsys)
    assert code == 0, err
    assert "accuracy" in out and "fit" in err and "neurons" in err  # live status (tqdm or our bar)
    est = io.load(model)
    assert type(est).__name__ == "ConvexGatedReLUClassifier" and est.solution_.backend == "native"


@pytest.mark.parametrize(
    "argv, match",
    [
        (["fit", "{missing}"], "no such file"),
        (["fit", "{csv}", "--target", "nope"], "no column 'nope'"),
        (["fit", "{csv}", "--lam", "-1"], "lam"),
        (["fit", "{csv}", "--backend", "cvxpy", "--solver", "nosuchsolver"], "unknown backend"),
        (["prune", "{csv}", "{csv}"], "not an .npz archive"),
    ],
)
def test_errors_are_one_line_exit_2(files, capsys, argv, match):
    argv = [a.format(missing=files["dir"] / "missing.csv", csv=files["csv"]) for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("cvxnn: error:") and match in err and err.count("\n") == 1


def test_path_table_and_csv(files, capsys, tmp_path):
    table = tmp_path / "path.csv"
    code, out, err = run(["path", files["csv"], "--target", "target", "--activation", "gated_relu",
                          "--n-gates", "8", "--n-lams", "4", "--csv", table, "--progress", "always"], capsys)
    assert code == 0, err
    assert "lam_max" in out and "path" in err
    rows = np.genfromtxt(table, delimiter=",", names=True, dtype=None, encoding=None)
    assert rows.shape == (4,)
    assert np.all(np.diff(rows["lam"]) < 0)
    assert rows["neurons"][0] == 0  # lam_max: the zero solution
    assert np.all(np.diff(rows["objective"]) < 0)  # objective decreases with lam
    assert rows["score"][-1] > rows["score"][0]
    # parallel segments give the same table (warm starts do not change the optimum)
    code, out2, _ = run(["path", files["csv"], "--target", "target", "--activation", "gated_relu",
                         "--n-gates", "8", "--lams", "3,0.3", "--n-jobs", "2", "--tol", "1e-9"], capsys)
    code_seq, out3, _ = run(["path", files["csv"], "--target", "target", "--activation", "gated_relu",
                             "--n-gates", "8", "--lams", "0.3,3", "--tol", "1e-9"], capsys)
    assert code == code_seq == 0

    def objectives(text):
        return [float(line.split()[1]) for line in text.splitlines() if line.split()[0][0].isdigit()]

    np.testing.assert_allclose(objectives(out2), objectives(out3), rtol=1e-7)


def test_verify_agrees(files, capsys):
    code, out, err = run(["verify", files["csv"], "--target", "target", "--activation", "gated_relu",
                          "--n-gates", "8", "--tol", "1e-9"], capsys)
    assert code == 0, out + err
    assert "AGREE" in out and "clarabel" in out and "native" in out


def test_verify_detects_disagreement(files, capsys):
    # an iteration limit of 2 cannot reach Clarabel's optimum
    code, out, err = run(["verify", files["csv"], "--target", "target", "--activation", "gated_relu",
                          "--n-gates", "8", "--max-iter", "2"], capsys)
    assert code == 1 and "DISAGREE" in out
    # warnings are one line each on stderr
    assert "cvxnn: warning: ConvexGatedReLURegressor: the rfista solve ended with status 'max_iterations'" in err


def test_prune_keeps_objective(files, capsys, tmp_path):
    import cvxnn.optimality.pruning  # noqa: F401 (imported normally: an import error must fail, not skip)
    model = tmp_path / "m.npz"
    code, _, err = run(["fit", files["csv"], "--target", "target", "--backend", "cvxpy", "--n-gates", "12",
                        "--lam", "0.05", "-o", model], capsys)
    assert code == 0, err
    pruned = tmp_path / "p.npz"
    code, out, err = run(["prune", model, files["csv"], "--target", "target", "-o", pruned], capsys)
    assert code == 0, err
    est = io.load(model)
    small = io.load(pruned, kind="estimator")  # still an estimator: it predicts
    sol = small.solution_
    Xs = est.standardizer_.transform(files["X"])
    ys = est.standardizer_.transform_y(files["y"])  # regressors: objectives on standardized y
    assert sol.n_active() <= files["X"].shape[0]
    assert sol.objective(Xs, ys, est.lam_) == pytest.approx(est.objective_, rel=1e-6)
    assert small.objective_ == pytest.approx(est.objective_, rel=1e-6)
    assert small.convex_objective_ == pytest.approx(est.convex_objective_, rel=1e-6)
    np.testing.assert_allclose(small.predict(files["X"]), est.predict(files["X"]), rtol=1e-6, atol=1e-8)
    assert "objective after" in out
    assert io.read_metadata(pruned)["user"]["feature_names"] == ["a", "b", "c", "d"]


def test_demo_still_works(capsys):
    code, out, _ = run(["demo", "--n-gates", "10"], capsys)
    assert out.startswith("cvxnn demo: convex training of a two-layer ReLU network (C-ReLU, Clarabel)")
    assert code == 0


def test_console_entry_point_module():
    out = subprocess.run([sys.executable, "-m", "cvxnn", "fit", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--activation" in out.stdout and "--backend" in out.stdout


def test_progress_bar_draws_and_throttles():
    buf = _stdio.StringIO()
    with ProgressBar(4, "work", stream=buf, min_interval=0.0) as bar:
        for _ in range(4):
            bar.update(note="x")
    text = buf.getvalue()
    assert "work [" in text and "4/4" in text and text.endswith("\n")
    quiet = _stdio.StringIO()
    with ProgressBar(3, "q", stream=quiet, enabled=False) as bar:
        bar.update()
    assert quiet.getvalue() == ""
    slow = _stdio.StringIO()
    bar = ProgressBar(1000, "t", stream=slow, min_interval=60.0)
    for _ in range(999):
        bar.update()
    assert slow.getvalue().count("\r") == 1  # throttled: only the first draw
    bar.update()
    assert "1000/1000" in slow.getvalue()  # the last step is always drawn


# ------------------------------------------------------------------- reported defects (round 22)
def _blobs_csv(path, *, header: bool, target_first: bool):
    Xb, labels = load_three_blobs()
    cols = [labels.astype(float)[:, None], Xb] if target_first else [Xb, labels.astype(float)[:, None]]
    A = np.hstack(cols)
    with open(path, "w") as fh:
        if header:
            names = [f"x{j}" for j in range(Xb.shape[1])]
            fh.write(",".join(["label"] + names if target_first else names + ["label"]) + "\n")
        for row in A:
            fh.write(",".join(f"{v:.17g}" for v in row) + "\n")
    return Xb, labels


def test_headerless_file_with_the_target_first(capsys, tmp_path):
    """A model fitted on a header-less file with --target 0 reads the same layout back: predict,
    score and prune use columns col1.. as features and col0 as the target (predict read the
    first columns, target included, and exited 0)."""
    data = tmp_path / "tfirst.csv"
    Xb, labels = _blobs_csv(data, header=False, target_first=True)
    model = tmp_path / "m.npz"
    code, _, err = run(["fit", data, "--task", "classification", "--target", "0", "--n-gates", 16,
                        "-o", model], capsys)
    assert code == 0, err
    from cvxnn import io as cio

    est = cio.load(model)
    expected = est.score(Xb, labels)
    code, out, err = run(["score", model, data], capsys)
    assert code == 0, err
    assert f"{expected:.6f}" in out
    code, out, _ = run(["score", model, data, "--target", "col0"], capsys)
    assert code == 0 and f"{expected:.6f}" in out
    code, out, _ = run(["predict", model, data], capsys)
    pred = np.array([float(v) for v in out.split()[1:]])
    np.testing.assert_array_equal(pred, est.predict(Xb))
    code, out, err = run(["prune", model, data, "-o", tmp_path / "p.npz"], capsys)
    assert code == 0, err


def test_duplicate_column_names_are_refused(capsys, tmp_path):
    data = tmp_path / "dup.csv"
    with open(data, "w") as fh:
        fh.write("a,a,y\n1,2,3\n4,5,6\n7,8,10\n")
    code, _, err = run(["fit", data], capsys)
    assert code == 2 and "more than once" in err and "Traceback" not in err


def test_header_of_column_numbers_and_a_label_is_refused(capsys, tmp_path):
    data = tmp_path / "numhdr.csv"
    with open(data, "w") as fh:
        fh.write("0,1,2,t\n0.5,1.5,2.5,a\n1.5,0.5,2.0,b\n")
    code, _, err = run(["fit", data, "--task", "classification"], capsys)
    assert code == 2 and "column numbers" in err


def test_path_cv_with_too_many_folds_is_a_shell_error(files, capsys):
    code, _, err = run(["path", files["npz"], "--x-key", "features", "--y-key", "labels", "--task",
                        "classification", "--plot", "none", "--cv", 500], capsys)
    assert code == 2 and "more folds" in err and "Traceback" not in err


def test_path_lam_max_is_the_multiclass_relu_programs(capsys, tmp_path):
    """The grid of a multi-class C-ReLU path starts at the one-vs-all program's lam_max (it used the
    gated bound, so its first values gave zero models)."""
    from cvxnn.estimators import ConvexReLUClassifier, _solver_targets
    from cvxnn.path import lam_max

    data = tmp_path / "blobs.csv"
    Xb, labels = _blobs_csv(data, header=True, target_first=False)
    code, out, err = run(["path", data, "--task", "classification", "--plot", "none", "--n-lams", 2,
                          "--n-gates", 12, "--val-fraction", 0], capsys)
    printed = float(out.split("lam_max = ")[1].split(";")[0])
    est = ConvexReLUClassifier(n_gates=12, random_state=0)
    Y = np.eye(3)[labels]
    std, Xs, pats = est._prepare(Xb, None, y=Y)
    exact = lam_max(Xs, _solver_targets(std, Y), pats, "relu", "cross_entropy", formulation="one_vs_all")
    assert printed == pytest.approx(exact, rel=1e-5)


def test_prune_to_a_width_is_saved_as_approximate(files, capsys, tmp_path):
    model = tmp_path / "m.npz"
    code, _, err = run(["fit", files["csv"], "--target", "target", "--n-gates", 30, "--lam", 0.01,
                        "-o", model], capsys)
    assert code in (0, 1), err
    code, out, err = run(["prune", model, files["csv"], "--target", "target", "--width", 1, "-o",
                          tmp_path / "w.npz"], capsys)
    assert code == 0, err
    est = io.load(tmp_path / "w.npz")
    assert est.status_ == "approximate" and est.solution_.status == "approximate"
    assert "rel_gap" not in est.solution_.extra and est.solution_.extra["pruned"] == "approximate"


def test_a_plain_file_named_npz_and_a_missing_report_folder(files, capsys, tmp_path):
    fake = tmp_path / "fake.npz"
    fake.write_text("1,2,3\n")
    code, _, err = run(["fit", fake], capsys)
    assert code == 2 and "no zip structure" in err
    code, _, err = run(["fit", files["csv"], "--target", "target", "--report", tmp_path / "no" / "r.json",
                        "-o", tmp_path / "x.npz"], capsys)
    assert code == 2 and "does not exist" in err and not (tmp_path / "x.npz").exists()


def test_demo_counts_no_active_neuron_above_lam_max(capsys):
    code, out, _ = run(["demo", "--lam", "1e6"], capsys)
    assert "active neurons          : 0" in out


def test_path_grid_is_the_weighted_programs_and_errors_name_the_data(tmp_path, capsys):
    """The default grid starts at the exact lam_max of the program the path fits (class weights
    included: it used the unweighted one), and a constant target or a single class get the
    library's messages, not a lam or a loss the user never chose."""
    from cvxnn.estimators import ConvexGatedReLUClassifierCV

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    lab = np.where(X[:, 0] + 0.3 * rng.standard_normal(60) > 0.8, "yes", "no")
    csv = tmp_path / "clf.csv"
    csv.write_text("a,b,c,label\n" + "".join(",".join(map(str, r)) + f",{c}\n" for r, c in zip(X, lab, strict=True)))
    code, out, _ = run(["path", csv, "--task", "classification", "--activation", "gated_relu", "--class-weight",
                        "balanced", "--n-lams", "3", "--val-fraction", "0", "--plot", "none"], capsys)
    assert code == 0
    ref = ConvexGatedReLUClassifierCV(n_gates=100, random_state=0, n_lams=1, cv=2, refit=False,
                                      class_weight="balanced").fit(X, lab).lams_[0]
    assert f"lam_max = {ref:.6g}" in out
    first = [line for line in out.splitlines() if line.strip().startswith(f"{ref:.4g}")]
    assert first and first[0].split()[3] == "0"  # no neuron at lam_max
    const = tmp_path / "const.csv"
    const.write_text("a,b,y\n" + "".join(f"{r[0]},{r[1]},1.5\n" for r in X))
    code, _, err = run(["path", const, "--plot", "none", "--val-fraction", "0"], capsys)
    assert code == 2 and "lam_max is 0" in err
    one = tmp_path / "one.csv"
    one.write_text("a,b,label\n" + "".join(f"{r[0]},{r[1]},only\n" for r in X))
    code, _, err = run(["path", one, "--task", "classification", "--plot", "none", "--val-fraction", "0"], capsys)
    assert code == 2 and "at least 2 classes" in err


# ------------------------------------------------------------------ files as users write them
def _write(path, header, rows):
    path.write_text((header + "\n" if header else "") + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _regression_rows(n=60, seed=0, target_first=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X[:, 0] - 2 * X[:, 1]
    return [((t, *r) if target_first else (*r, t)) for r, t in zip(X.round(6), y.round(6), strict=True)]


def test_predict_ignores_the_target_column_and_a_byte_order_mark(tmp_path, capsys):
    rows = _regression_rows()
    train = _write(tmp_path / "train.csv", "a,b,c,y", rows)
    model = tmp_path / "m.npz"
    assert run(["fit", train, "--n-gates", 8, "-o", model], capsys)[0] == 0
    # predict ignores the target column: an empty or text cell there is no error
    new = _write(tmp_path / "new.csv", "a,b,c,y", [(*r[:3], "") for r in rows[:5]])
    code, out, _ = run(["predict", model, new], capsys)
    assert code == 0 and len(out.strip().splitlines()) == 6
    # a UTF-8 byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + train.read_bytes())
    code, out, _ = run(["score", model, bom], capsys)
    assert code == 0 and "R^2" in out
    assert run(["fit", bom, "--target", "a", "--n-gates", 5, "-o", tmp_path / "m2.npz"], capsys)[0] == 0
    assert io.read_metadata(tmp_path / "m2.npz")["user"]["feature_names"] == ["b", "c", "y"]


def _fit_with_header_score_without(tmp_path, capsys, header: str, rows, fit_args: list):
    """Fit on ``rows`` under ``header``; score the model on the file with and without the
    header (the same score); returns the model and the header-less file."""
    train = _write(tmp_path / "train.csv", header, rows)
    nohdr = _write(tmp_path / "nohdr.csv", None, rows)
    model = tmp_path / "m.npz"
    assert run(["fit", train, *fit_args, "-o", model], capsys)[0] == 0
    _, with_header, _ = run(["score", model, train], capsys)
    code, without, err = run(["score", model, nohdr], capsys)
    assert code == 0, err
    assert with_header.splitlines()[-1] == without.splitlines()[-1]
    return model, nohdr


def test_a_headerless_file_finds_the_target_where_the_model_had_it(tmp_path, capsys):
    model, nohdr = _fit_with_header_score_without(tmp_path, capsys, "y,a,b,c", _regression_rows(80, target_first=True),
                                                  ["--target", "y", "--n-gates", 8])
    # a model without the stored position cannot guess: an error, not the last column
    meta = io.read_metadata(model)["user"]
    assert meta["target_index"] == 0
    del meta["target_index"]
    est = io.load(model, kind="estimator")
    io.save(est, tmp_path / "old.npz", metadata=meta)
    code, _, err = run(["score", tmp_path / "old.npz", nohdr], capsys)
    assert code == 2 and "--target" in err


def test_a_headerless_file_with_text_labels_at_the_model_s_target(tmp_path, capsys):
    """A classifier fitted on a file with a header reads a header-less file whose text labels
    sit in the stored target column: its first row is data (score and predict refused it as
    ambiguous, since the target's name cannot be in a header-less row)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    lab = np.where(X[:, 0] > 0, "high", "low")
    rows = [(*x, v) for x, v in zip(X, lab, strict=True)]
    model, nohdr = _fit_with_header_score_without(tmp_path, capsys, "a,b,c,label", rows,
                                                  ["--task", "classification", "--n-gates", 8])
    code, out, err = run(["predict", model, nohdr], capsys)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 61  # a header line and one prediction per row


def test_score_reads_labels_as_the_model_s_text_classes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    k = np.arange(90) % 3
    X = rng.normal(size=(90, 2))
    X[:, 0] += 3 * k
    lab = np.array(["0", "1", "other"])[k]
    train = _write(tmp_path / "train.csv", "a,b,label", [(*r, v) for r, v in zip(X, lab, strict=True)])
    test = _write(tmp_path / "test.csv", "a,b,label",
                  [(*r, v) for r, v, m in zip(X, lab, k < 2, strict=True) if m])
    model = tmp_path / "m.npz"
    assert run(["fit", train, "--task", "classification", "--n-gates", 10, "-o", model], capsys)[0] in (0, 1)
    code, out, _ = run(["score", model, test], capsys)
    assert code == 0 and "accuracy" in out


def test_npz_integer_labels_keep_their_identity(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(40, 2))
    y = np.where(X[:, 0] > 0, 10**18, 10**18 + 1).astype(np.int64)  # equal as float64
    data = tmp_path / "big.npz"
    np.savez(data, X=X, y=y)
    code, _, err = run(["fit", data, "--task", "classification", "--n-gates", 5, "-o", tmp_path / "m.npz"], capsys)
    assert code in (0, 1), err
    assert sorted(io.load(tmp_path / "m.npz", kind="estimator").classes_.tolist()) == [10**18, 10**18 + 1]


def test_missing_label_tokens_are_missing(tmp_path, capsys):
    rows = [(*r[:2], "1" if r[0] > 0 else "-1") for r in _regression_rows()]
    rows[4] = (*rows[4][:2], "NA")
    data = _write(tmp_path / "na.csv", "a,b,y", rows)
    code, _, err = run(["fit", data, "--task", "classification", "--n-gates", 5, "-o", tmp_path / "m.npz"], capsys)
    assert code == 2 and "missing label in row 5" in err


def test_options_that_would_be_ignored_are_errors(tmp_path, capsys):
    train = _write(tmp_path / "train.csv", "a,b,c,y", _regression_rows())
    out = tmp_path / "m.npz"
    for argv, words in [
        (["fit", train, "--lam", -1], "--lam must be > 0"),
        (["fit", train, "--lam", 0], "--lam must be > 0"),
        (["fit", train, "--class-weight", "balanced"], "--task classification"),
        (["fit", train, "--solver", "scs"], "--backend cvxpy"),
        (["fit", train, "--report", tmp_path], "is a folder"),
        (["path", train, "--lams", "1,0"], "> 0"),
        (["path", train, "--lams", ""], "--lams is empty"),  # it fell back to the default grid
        (["path", train, "--n-lams", 2, "--plot", tmp_path / "p.xyz"], "cannot write '.xyz'"),
    ]:
        code, _, err = run([*argv, "--n-gates", 4, *([] if argv[0] == "path" else ["-o", out])], capsys)
        assert code == 2 and words in err, (argv, err)
    assert not out.exists()  # nothing was fitted or saved
    # --lam auto is the documented default
    assert run(["fit", train, "--lam", "auto", "--n-gates", 4, "-o", out], capsys)[0] == 0
    # a plot name without an extension gets the .png matplotlib writes, and says so
    pytest.importorskip("matplotlib")
    code, text, _ = run(["path", train, "--n-gates", 4, "--n-lams", 2, "--plot", tmp_path / "myplot"], capsys)
    assert (tmp_path / "myplot.png").is_file() and f"plot: {tmp_path / 'myplot.png'}" in text
    with pytest.raises(SystemExit):  # path solves a grid: no --lam
        main(["path", str(train), "--lam", "1"])


def test_a_ragged_row_is_refused_when_labels_are_read(tmp_path, capsys):
    data = tmp_path / "ragged.csv"
    data.write_text("a,b,y\n1,2,0\n4,5,1,99\n6,7,1\n0,1,0\n")
    for task in ("regression", "classification"):
        code, _, err = run(["fit", data, "--task", task, "--n-gates", 3, "-o", tmp_path / "m.npz"], capsys)
        assert code == 2 and "row 2 has 4 fields" in err, (task, err)


def test_verify_compares_small_objectives_relatively(tmp_path, capsys):
    # objectives of order 1e-5 (targets x 1e-3, lam x 1e-6): the printed difference is relative
    # to the reference, not |a - b| / max(1, |b|), which let a 0.7 % disagreement pass
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    y = np.maximum(X @ rng.normal(size=4), 0) - X[:, 0]
    y = 1e-3 * (y - y.mean()) / y.std()
    data = _write(tmp_path / "tiny.csv", "a,b,c,d,y", [(*r, t) for r, t in zip(X, y, strict=True)])
    code, out, _ = run(["verify", data, "--activation", "gated_relu", "--n-gates", 10, "--no-standardize",
                        "--tol", 0.5, "--max-iter", 3, "--lam", 1e-6], capsys)
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split()[:1] in (["native"], ["clarabel"]) and len(line.split()) == 7}
    (a, ca), (b, cb) = (tuple(map(float, rows[k][2:4])) for k in ("native", "clarabel"))
    assert b < 1e-3
    expected = max(abs(a - b) / abs(b), abs(ca - cb) / abs(cb))
    rel = float(next(line for line in out.splitlines() if line.startswith("relative objective")).split()[4])
    assert rel == pytest.approx(expected, rel=1e-2, abs=1e-12)
    assert (code == 1) == (rel > 1e-5)


def test_exact_prune_keeps_the_status_and_nonsmooth_losses_point_to_cvxpy(tmp_path, capsys):
    train = _write(tmp_path / "train.csv", "a,b,c,y", _regression_rows(80))
    model = tmp_path / "m.npz"
    code, _, err = run(["fit", train, "--loss", "absolute", "--n-gates", 6, "-o", model], capsys)
    assert code == 2 and "--backend cvxpy" in err
    assert run(["fit", train, "--loss", "absolute", "--backend", "cvxpy", "--n-gates", 6, "-o", model],
               capsys)[0] == 0
    # a loss of the other task is named as such (the advice to use cvxpy would not help)
    code, _, err = run(["fit", train, "--loss", "hinge", "--n-gates", 6, "-o", model], capsys)
    assert code == 2 and "regression loss" in err and "--backend cvxpy" not in err
    code, _, err = run(["fit", train, "--task", "classification", "--loss", "huber", "--n-gates", 6, "-o", model],
                       capsys)
    assert code == 2 and "'logistic'" in err and "--backend cvxpy" not in err
    # exact pruning drops Clarabel's sub-threshold leftovers: the objective moves at the solver's
    # accuracy (~1e-8), which is not approximation
    code, out, _ = run(["prune", model, train, "-o", tmp_path / "p.npz"], capsys)
    assert code == 0 and "approximate" not in out
    assert io.load(tmp_path / "p.npz", kind="estimator").status_ == "optimal"


def test_prune_of_a_cvxpy_vector_model_adds_no_neurons(tmp_path, capsys):
    """A multi-class C-ReLU model fitted by Clarabel: prune mapped its blocks with tol=0, so each
    ~1e-10 column of the interior-point solution became a neuron (69 against the fit's 43); it
    maps with the model's network_tol_, as fit does."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    rows = list(range(0, 4)) + list(range(50, 54)) + list(range(100, 104))
    data = _write(tmp_path / "iris12.csv", "a,b,c,d,species", [(*X[i], f"c{y[i]}") for i in rows])
    model = tmp_path / "m.npz"
    assert run(["fit", data, "--task", "classification", "--loss", "squared", "--n-gates", 60, "--lam", 0.001,
                "--backend", "cvxpy", "-o", model], capsys)[0] == 0
    fitted = io.load(model, kind="estimator")
    code, out, _ = run(["prune", model, data], capsys)
    assert code == 0
    neurons = int(next(line for line in out.splitlines() if line.startswith("neurons of the network")).split(":")[1])
    assert neurons <= fitted.n_active_neurons_
    pruned = io.load(tmp_path / "m.pruned.npz", kind="estimator")
    assert pruned.n_active_neurons_ == neurons and pruned.network_tol_ == fitted.network_tol_
    net = pruned.solution_.to_network(tol=pruned.network_tol_)
    assert net.n_neurons == neurons


@pytest.mark.parametrize("argv", [["fit", "x.csv", "--lam", "abc"], ["fit"], ["path", "x.csv", "--n-lams", "two"],
                                  ["fit", "x.csv", "--activation", "tanh"], []])
def test_option_errors_are_one_line_with_exit_2(argv, capsys):
    """docs/cli.md: a usage error is one line `cvxnn: error: ...` on stderr, exit 2 (argparse
    printed a 12-14 line usage block ending in `cvxnn fit: error: ...`)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("cvxnn: error: ") and "--help" in lines[0]


# ------------------------------------------------------------------ labels, headers, outputs
def _labelled_csv(path, labels, header=None, scale=1.0):
    Xb, lb = load_three_blobs()
    Xb, lb = Xb[lb != 2][::2], lb[lb != 2][::2]
    with open(path, "w") as fh:
        if header:
            fh.write(header + "\n")
        for row, k in zip(Xb, lb, strict=True):
            fh.write(",".join(f"{v * scale:.6f}" for v in row) + f",{labels[k]}\n")
    return path


def test_integer_labels_in_a_csv_stay_integers(tmp_path, capsys):
    """CSV labels were float64: 10**18 and 10**18 + 1 merged into one class, and --proba named
    its columns p_0.0 where predict wrote 0."""
    big = _labelled_csv(tmp_path / "big.csv", [10**18, 10**18 + 1], header="a,b,label")
    code, out, _ = run(["fit", big, "--task", "classification", "--n-gates", "4", "-o", tmp_path / "m.npz"], capsys)
    assert code in (0, 1)
    np.testing.assert_array_equal(io.load(tmp_path / "m.npz").classes_, [10**18, 10**18 + 1])
    small = _labelled_csv(tmp_path / "small.csv", [0, 1], header="a,b,label")
    run(["fit", small, "--task", "classification", "--n-gates", "4", "-o", tmp_path / "s.npz"], capsys)
    code, out, _ = run(["predict", tmp_path / "s.npz", small, "--proba"], capsys)
    assert code == 0 and out.splitlines()[0] == "p_0,p_1"
    _, out, _ = run(["predict", tmp_path / "s.npz", small], capsys)
    assert set(out.splitlines()[1:]) <= {"0", "1"}
    huge = _labelled_csv(tmp_path / "huge.csv", [10**30, 10**30 + 1], header="a,b,label")
    _, y = load_data(huge, labels=True)  # beyond int64: kept as text, not merged
    assert len(np.unique(y)) == 2


def test_prune_takes_the_training_labels_from_a_csv_or_an_npz(tmp_path, capsys):
    """The target fingerprint hashed the label type: a model fitted on a CSV (labels then float)
    refused the same labels from an NPZ file of integers as 'the target column differs'."""
    Xb, lb = load_three_blobs()
    Xb, lb = Xb[lb != 2][::2], lb[lb != 2][::2]
    csv_file = tmp_path / "b.csv"
    with open(csv_file, "w") as fh:
        fh.write("a,b,label\n" + "".join(f"{float(r[0])!r},{float(r[1])!r},{k}\n" for r, k in zip(Xb, lb, strict=True)))
    npz = tmp_path / "b.npz"
    np.savez(npz, X=Xb, y=lb.astype(np.int32))
    run(["fit", csv_file, "--task", "classification", "--n-gates", "4", "-o", tmp_path / "m.npz"], capsys)
    code, _, err = run(["prune", tmp_path / "m.npz", npz, "-o", tmp_path / "p.npz"], capsys)
    assert code in (0, 1) and "differs" not in err, err
    np.savez(npz, X=Xb, y=1 - lb)
    code, _, err = run(["prune", tmp_path / "m.npz", npz, "-o", tmp_path / "p3.npz"], capsys)
    assert code == 2 and "target column differs" in err


def test_a_numeric_header_over_a_label_name_is_ambiguous(tmp_path, capsys):
    """'400,410,420,species' was read as a training row of class 'species'."""
    spectra = _labelled_csv(tmp_path / "s.csv", ["setosa", "virginica"], header="400,410,label")
    code, _, err = run(["fit", spectra, "--task", "classification", "--n-gates", "4",
                        "-o", tmp_path / "m.npz"], capsys)
    assert code == 2 and "--header or --no-header" in err and "'label'" in err
    code, out, _ = run(["fit", spectra, "--task", "classification", "--n-gates", "4", "--header",
                        "-o", tmp_path / "m.npz"], capsys)
    assert code in (0, 1)
    np.testing.assert_array_equal(io.load(tmp_path / "m.npz").classes_, ["setosa", "virginica"])
    # a header-less file whose first label recurs is data; one row is data; a model's class is data
    plain = _labelled_csv(tmp_path / "p.csv", ["setosa", "virginica"])
    X, y = load_data(plain, labels=True)
    assert X.shape[0] == 40 and set(y) == {"setosa", "virginica"}
    one = tmp_path / "one.csv"
    one.write_text(plain.read_text().splitlines()[0] + "\n")
    code, out, _ = run(["predict", tmp_path / "m.npz", one], capsys)
    assert code == 0 and len(out.splitlines()) == 2
    two = tmp_path / "two.csv"
    lines = plain.read_text().splitlines()
    two.write_text(lines[0] + "\n" + next(x for x in lines if not x.endswith(lines[0].split(",")[-1])) + "\n")
    code, out, err = run(["score", tmp_path / "m.npz", two], capsys)
    assert code == 0 and "n=2" in out, err


@pytest.mark.parametrize("argv, option", [
    (["fit", "{csv}", "-o", "{d}/nodir/m.npz"], "-o"),
    (["fit", "{csv}", "-o", "{d}/results/"], "-o"),
    (["path", "{csv}", "--lams", "1", "--plot", "none", "--csv", "{d}/nodir/p.csv"], "--csv"),
    (["path", "{csv}", "--lams", "1", "--plot", "none", "--csv", "{d}"], "--csv"),
    (["predict", "{model}", "{csv}", "-o", "{d}"], "-o"),
    (["predict", "{model}", "{csv}", "-o", "{d}/nodir/p.csv"], "-o"),
    (["prune", "{model}", "{csv}", "-o", "{d}/pruned/"], "-o"),
])
def test_outputs_are_checked_before_any_work(files, tmp_path, capsys, monkeypatch, argv, option):
    """-o and --csv to a missing folder were found only after the fit, path or prune (with
    numpy's raw errno text), and -o results/ wrote ./results.npz."""
    model = tmp_path / "m.npz"
    run(["fit", files["csv"], "--target", "target", "--n-gates", "4", "-o", model], capsys)
    import cvxnn.cli as cli

    def no_work(*args, **kwargs):
        raise AssertionError("the command ran before checking its output")

    monkeypatch.setattr(cli, "_fit_with_progress", no_work)
    monkeypatch.setattr(cli, "_path_segment", no_work)
    monkeypatch.setattr(cli, "_read_table", no_work)
    argv = [a.format(csv=files["csv"], d=tmp_path, model=model) for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2 and err.startswith(f"cvxnn: error: {option} ") and "\n" == err[-1] and err.count("\n") == 1
    assert "folder" in err and "Errno" not in err
    assert not (tmp_path / "results.npz").exists() and not (tmp_path / "pruned.npz").exists()


def test_a_truncated_file_is_called_damaged(files, tmp_path, capsys):
    model = tmp_path / "m.npz"
    run(["fit", files["csv"], "--target", "target", "--n-gates", "4", "-o", model], capsys)
    data = model.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) * 9 // 10])
    with pytest.raises(FileFormatError, match="damaged or truncated"):
        io.load(cut)
    code, _, err = run(["predict", cut, files["csv"]], capsys)
    assert code == 2 and "damaged or truncated" in err
    np.savez(tmp_path / "d.npz", X=files["X"], y=files["y"])
    (tmp_path / "dcut.npz").write_bytes((tmp_path / "d.npz").read_bytes()[:200])
    code, _, err = run(["fit", tmp_path / "dcut.npz"], capsys)
    assert code == 2 and "damaged or truncated" in err


def test_a_data_row_holding_numeric_feature_names_stays_data(tmp_path, capsys):
    """A model with feature names '0', '1' read a header-less row '1,0' as a header: the row was
    dropped and the columns swapped."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(60, 2))
    y = X[:, 0] * 2 + X[:, 1] + 0.01 * rng.normal(size=60)
    train = tmp_path / "train.csv"
    train.write_text("0,1,target\n" + "".join(f"{a},{b},{t:.6f}\n" for a, b, t in zip(X[:, 0], X[:, 1], y,
                                                                                       strict=True)))
    run(["fit", train, "--header", "--target", "target", "--lam", "0.001", "-o", tmp_path / "m.npz"], capsys)
    new = tmp_path / "new.csv"
    new.write_text("1,0\n0,1\n1,1\n")
    code, out, _ = run(["predict", tmp_path / "m.npz", new], capsys)
    pred = np.array(out.splitlines()[1:], dtype=float)
    assert code == 0 and pred.shape == (3,)
    np.testing.assert_allclose(pred, [2, 1, 3], atol=0.2)


def test_integer_labels_beyond_int64_are_one_canonical_text(tmp_path):
    p = tmp_path / "big.csv"
    labels = ["+99999999999999999999", "99999999999999999999", "01", "1", "+1"] * 8
    p.write_text("a,b,label\n" + "".join(f"{k},{k % 3},{lab}\n" for k, lab in enumerate(labels)))
    _, y = load_data(p, labels=True)
    assert set(y) == {"99999999999999999999", "1"}


def test_plot_to_a_missing_folder_and_a_default_output_in_the_way(files, tmp_path, capsys, monkeypatch):
    """--plot results/ wrote ./results.png; a folder where fit's default model file goes was found
    only after the fit."""
    monkeypatch.chdir(tmp_path)
    pytest.importorskip("matplotlib")
    code, _, err = run(["path", files["csv"], "--lams", "1", "--plot", "results/"], capsys)
    assert code == 2 and "--plot results/" in err and not (tmp_path / "results.png").exists()
    data = tmp_path / "d.csv"
    data.write_text(files["csv"].read_text())
    (tmp_path / "d.model.npz").mkdir()
    import cvxnn.cli as cli

    monkeypatch.setattr(cli, "_fit_with_progress", lambda *a, **k: pytest.fail("fitted before the check"))
    code, _, err = run(["fit", data, "--target", "target"], capsys)
    assert code == 2 and "default output" in err and "is a folder" in err and "-o" in err
