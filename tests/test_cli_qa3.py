"""CLI QA round 3: solver logs (-vv) on stderr, output files written atomically, semicolon- and
tab-separated files, boolean labels across CSV and NPZ files, pruned models of NPZ fits."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

import cvxnn.cli as cli
from cvxnn import io
from cvxnn.cli import main
from cvxnn.datasets import load_teacher_regression


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("qa3")
    X, y = load_teacher_regression()
    X, y = X[:40], y[:40]
    npz = d / "train.npz"
    np.savez(npz, X=X, y=y)
    nohdr = d / "nohdr.csv"  # the same rows, no header, target last
    nohdr.write_text("".join(",".join(f"{v:.17g}" for v in (*r, t)) + "\n" for r, t in zip(X, y, strict=True)))
    labels = X[:, 0] + 0.3 * X[:, 1] > 0
    bool_npz = d / "bool.npz"
    np.savez(bool_npz, X=X, y=labels)
    bool_csv = d / "bool.csv"  # the labels as numpy and pandas write booleans: True / False
    bool_csv.write_text("a,b,c,d,label\n" + "".join(
        ",".join(f"{v:.17g}" for v in r) + f",{t}\n" for r, t in zip(X, labels, strict=True)))
    return {"dir": d, "npz": npz, "nohdr": nohdr, "bool_npz": bool_npz, "bool_csv": bool_csv, "X": X, "y": y,
            "labels": labels}


# ------------------------------------------------------------- -vv: solver logs on stderr
REPORT_LINE = re.compile(r"^\w+\s+: ")


@pytest.mark.parametrize("command", ["fit", "verify", "path"])
def test_verbose_solver_log_goes_to_stderr(data, tmp_path, capfd, command):
    """With -vv the CVXPY banner and Clarabel's iteration table were printed to stdout, between
    the lines of the report (fit: 22 report lines and 67 solver lines on stdout), so that
    'cvxnn -vv fit ... > report.txt' or a pipe got the solver log mixed into the report."""
    argv = ["-vv", command, str(data["npz"]), "--n-gates", "3", "--progress", "never"]
    if command == "fit":
        argv += ["--backend", "cvxpy", "-o", str(tmp_path / "m.npz")]
    elif command == "path":
        argv += ["--backend", "cvxpy", "--lams", "1", "--plot", "none", "--val-fraction", "0"]
    code = main(argv)
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "CVXPY" in err and "Clarabel" in err  # the log is still shown, on stderr
    assert "CVXPY" not in out and "Clarabel" not in out
    lines = out.strip().splitlines()
    if command == "fit":
        assert len(lines) == 22 and all(REPORT_LINE.match(line) for line in lines), out
    elif command == "verify":
        assert lines[0].startswith("backend") and lines[-1].startswith("verdict"), out
    else:
        assert lines[0].lstrip().startswith("lam") and len(lines) == 2, out


# ------------------------------------------------------------------- atomic output files
class _InterruptedWriter:
    """A csv writer that writes the header and one row, then is interrupted (Ctrl-C)."""

    def __init__(self, writer):
        self.writer = writer

    def __getattr__(self, name):
        return getattr(self.writer, name)

    def writerows(self, rows):
        rows = iter(rows)
        self.writer.writerow(next(rows))
        raise KeyboardInterrupt


def test_interrupted_predict_leaves_the_previous_output(data, tmp_path, capsys, monkeypatch):
    """'predict -o FILE' opened FILE for writing and wrote row by row: Ctrl-C while writing left
    a truncated file (2,000,000 rows: 32,485,866 of 38,742,358 bytes) in place of the previous one,
    although the exit status 130 promises that no file is left half-written."""
    model = tmp_path / "m.npz"
    assert main(["fit", str(data["npz"]), "--n-gates", "3", "-o", str(model), "--progress", "never"]) == 0
    target = tmp_path / "pred.csv"
    target.write_text("previous\n")
    real = csv.writer
    monkeypatch.setattr(csv, "writer", lambda *a, **k: _InterruptedWriter(real(*a, **k)))
    code, _, err = run(["predict", model, data["npz"], "-o", target], capsys)
    assert code == 130 and err == "cvxnn: interrupted\n"
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "pred.csv"]  # no temporary file left
    monkeypatch.setattr(csv, "writer", real)
    code, out, _ = run(["predict", model, data["npz"], "-o", target], capsys)
    assert code == 0 and out == ""
    pred = np.loadtxt(target, skiprows=1)
    np.testing.assert_allclose(pred, io.load(model, kind="estimator").predict(data["X"]), rtol=1e-15)


def test_interrupted_path_csv_leaves_the_previous_table(data, tmp_path, capsys, monkeypatch):
    """'path --csv FILE' wrote FILE in place: an interruption left the header without the rows."""
    table = tmp_path / "path.csv"
    table.write_text("previous\n")
    real = csv.DictWriter
    monkeypatch.setattr(csv, "DictWriter", lambda *a, **k: _InterruptedWriter(real(*a, **k)))
    argv = ["path", data["npz"], "--n-gates", "3", "--lams", "1,0.1", "--plot", "none", "--csv", table]
    code, _, _ = run(argv, capsys)
    assert code == 130 and table.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["path.csv"]
    monkeypatch.setattr(csv, "DictWriter", real)
    code, _, _ = run(argv, capsys)
    assert code == 0
    rows = list(csv.DictReader(table.open(newline="")))
    assert [float(r["lam"]) for r in rows] == [1.0, 0.1]


def test_interrupted_plot_leaves_the_previous_plot(data, tmp_path, capsys, monkeypatch):
    """'path --plot FILE' let matplotlib write FILE in place: an interruption while it was drawn
    left a truncated PNG in place of the previous plot."""
    pytest.importorskip("matplotlib")
    from io import BytesIO

    from matplotlib.figure import Figure

    plot = tmp_path / "p.png"
    plot.write_bytes(b"previous")
    real = Figure.savefig

    def interrupted(self, fname, *args, **kwargs):
        buffer = BytesIO()
        real(self, buffer, *args, **{**kwargs, "format": "png"})
        if hasattr(fname, "write"):
            fname.write(buffer.getvalue()[:64])
        else:
            Path(fname).write_bytes(buffer.getvalue()[:64])
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    argv = ["path", data["npz"], "--n-gates", "3", "--lams", "1,0.1", "--plot", tmp_path / "p"]
    code, _, err = run(argv, capsys)
    assert code == 130 and plot.read_bytes() == b"previous"
    monkeypatch.setattr(Figure, "savefig", real)
    code, out, _ = run(argv, capsys)
    assert code == 0 and f"plot: {plot}" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


def test_report_is_written_whole(data, tmp_path, capsys):
    """--report goes through the same atomic write: valid JSON equal to the model's values."""
    import json

    code, _, _ = run(["fit", data["npz"], "--n-gates", "3", "-o", tmp_path / "m.npz",
                      "--report", tmp_path / "r.json"], capsys)
    assert code == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    est = io.load(tmp_path / "m.npz", kind="estimator")
    assert rep["objective"] == est.objective_ and rep["gap"] == est.gap_ and rep["status"] == "optimal"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "r.json"]


# ------------------------------------------------------------------ other separators
@pytest.mark.parametrize("sep, word", [(";", "semicolons"), ("\t", "tabs")])
def test_semicolon_and_tab_separated_files_are_named(data, tmp_path, capsys, sep, word):
    """A semicolon-separated file (Excel in many locales) was refused with 'need at least two
    columns (features and a target), got ['alcohol;malic_acid;...;target']', which does not say
    that the separator is the problem; predict said the file lacked every feature column."""
    path = tmp_path / "semi.csv"
    path.write_text(sep.join("abcdy") + "\n" + "".join(
        sep.join(f"{v:.6g}" for v in (*r, t)) + "\n" for r, t in zip(data["X"], data["y"], strict=True)))
    code, _, err = run(["fit", path, "-o", tmp_path / "m.npz"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert word in err and "comma-separated" in err and "separate into 5" in err
    model = tmp_path / "ok.npz"
    assert main(["fit", str(data["npz"]), "--n-gates", "3", "-o", str(model)]) == 0
    capsys.readouterr()
    code, _, err = run(["predict", model, path], capsys)
    assert code == 2 and word in err and err.count("\n") == 1


# ------------------------------------------------------------ boolean labels, CSV and NPZ
def test_boolean_labels_from_npz_score_a_csv_file_and_back(data, tmp_path, capsys):
    """A classifier fitted on an NPZ file with boolean labels refused the same data as CSV
    ('labels ['False', 'True'] do not occur in the model's classes [False, True]', exit 2), the
    way numpy and pandas write booleans; one fitted on the CSV file refused the NPZ file, and
    'prune' said the target column differed from the one it was trained on."""
    args = ["--task", "classification", "--n-gates", "4", "--progress", "never"]
    from_npz, from_csv = tmp_path / "npz_model.npz", tmp_path / "csv_model.npz"
    assert main(["fit", str(data["bool_npz"]), *args, "-o", str(from_npz)]) == 0
    assert main(["fit", str(data["bool_csv"]), *args, "-o", str(from_csv)]) == 0
    capsys.readouterr()
    for model in (from_npz, from_csv):
        est = io.load(model, kind="estimator")
        expected = est.score(data["X"], data["labels"] if est.classes_.dtype.kind == "b"
                             else data["labels"].astype(str))
        for file in (data["bool_npz"], data["bool_csv"]):
            code, out, err = run(["score", model, file], capsys)
            assert code == 0, err
            assert float(out.strip().splitlines()[-1].split(":")[1]) == pytest.approx(expected, abs=1e-6)
            code, out, err = run(["prune", model, file, "-o", tmp_path / "pruned.npz"], capsys)
            assert code == 0, err


# --------------------------------------------------------------- pruned models of NPZ fits
def test_pruned_npz_model_reads_the_files_the_unpruned_one_reads(data, tmp_path, capsys):
    """A model fitted on an NPZ file reads a header-less CSV file by position (target last); its
    pruned copy lost the name of the training file and looked for the NPZ key 'y' as a CSV
    column: 'predict' and 'score' refused the file the unpruned model had just scored."""
    model, pruned = tmp_path / "m.npz", tmp_path / "p.npz"
    assert main(["fit", str(data["npz"]), "--n-gates", "4", "-o", str(model)]) == 0
    assert main(["prune", str(model), str(data["npz"]), "-o", str(pruned)]) == 0
    capsys.readouterr()
    scores = []
    for m in (model, pruned):
        code, out, err = run(["score", m, data["nohdr"]], capsys)
        assert code == 0, err
        scores.append(float(out.strip().splitlines()[-1].split(":")[1]))
        code, out, err = run(["predict", m, data["nohdr"]], capsys)
        assert code == 0, err
        pred = np.array(out.strip().splitlines()[1:], dtype=float)
        np.testing.assert_allclose(pred, io.load(m, kind="estimator").predict(data["X"]), rtol=1e-12)
    assert scores[1] == pytest.approx(scores[0], abs=1e-6)
    assert io.read_metadata(pruned)["user"]["data"] == str(data["npz"])
    assert cli._stored_target(io.read_metadata(pruned)["user"], data["nohdr"]) is None


@pytest.mark.parametrize("backend", ["native", "cvxpy"])
def test_pruned_relu_model_keeps_its_certificate(tmp_path, capsys, backend):
    """The saved pruned C-ReLU model keeps cone multipliers that certify it as tightly as the
    unpruned one (exact pruning leaves the fit, hence the dual point, unchanged): without them
    the float64 duality gap falls back to rho = 0."""
    import cvxnn
    from cvxnn.estimators import _solver_targets

    X, y = load_teacher_regression()
    X, y = X[:60], y[:60]
    npz = tmp_path / "train.npz"
    np.savez(npz, X=X, y=y)
    model, pruned = tmp_path / "m.npz", tmp_path / "p.npz"
    assert main(["fit", str(npz), "--activation", "relu", "--n-gates", "6", "--backend", backend,
                 "-o", str(model)]) == 0
    assert main(["prune", str(model), str(npz), "-o", str(pruned)]) == 0
    capsys.readouterr()
    gaps = []
    for m in (model, pruned):
        est = io.load(m, kind="estimator")
        std = est.standardizer_
        sol = est.solution_
        assert sol.multipliers is not None
        gaps.append(cvxnn.duality_gap(std.transform(X), _solver_targets(std, y), sol, est.lam, sol.loss).rel_gap)
    assert gaps[0] <= 1e-6 and gaps[1] <= 1e-6
