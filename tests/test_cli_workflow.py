"""The CLI loop: fit -> predict / score -> path -> prune, CSV headers, file outputs, progress,
interrupts and one-line errors."""

from __future__ import annotations

import builtins
import io as _stdio
import sys

import numpy as np
import pytest

from cvxnn import io
from cvxnn.cli import ProgressBar, load_data, main
from cvxnn.datasets import load_three_blobs
from cvxnn.errors import FileFormatError, NonFiniteError, ShapeError


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf")
    X, labels = load_three_blobs()
    keep = labels != 2
    X, labels = X[keep][::2] * np.array([1e3, 1.0]) + np.array([5e3, 0.0]), labels[keep][::2]
    names = np.array(["cat", "dog"])[labels]
    csv = d / "pets.csv"
    with open(csv, "w") as fh:
        fh.write("weight,height,kind\n")
        for (a, b), k in zip(X, names, strict=True):
            fh.write(f"{float(a)!r},{float(b)!r},{k}\n")
    # the same data with reordered and extra columns, without the label
    other = d / "new.csv"
    with open(other, "w") as fh:
        fh.write("height,id,weight\n")
        for j, (a, b) in enumerate(X):
            fh.write(f"{float(b)!r},{j},{float(a)!r}\n")
    return {"dir": d, "csv": csv, "other": other, "X": X, "y": names}


def _fit(labelled, capsys, tmp_path, *extra):
    model = tmp_path / "m.npz"
    code, out, err = run(["fit", labelled["csv"], "--task", "classification", "--backend", "cvxpy",
                          "--n-gates", "8", "--lam", "0.5", "-o", model, *extra], capsys)
    assert code == 0, err
    return model


# ------------------------------------------------------------------------ predict and score
def test_predict_and_score_complete_the_loop(labelled, capsys, tmp_path):
    model = _fit(labelled, capsys, tmp_path)
    meta = io.read_metadata(model)["user"]
    assert meta["feature_names"] == ["weight", "height"] and meta["target"] == "kind"
    code, out, err = run(["predict", model, labelled["other"]], capsys)  # columns matched by name
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "kind" and len(lines) == labelled["X"].shape[0] + 1
    est = io.load(model)
    assert lines[1:] == list(est.predict(labelled["X"]))
    code, out, err = run(["predict", model, labelled["csv"], "--proba", "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    P = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-8)
    code, out, err = run(["score", model, labelled["csv"]], capsys)
    assert code == 0, err
    acc = float(out.split("accuracy")[1].split(":")[1])
    assert acc == pytest.approx(est.score(labelled["X"], labelled["y"]), abs=1e-6) and acc > 0.9
    code, out, err = run(["score", model, labelled["other"]], capsys)
    assert code == 2 and "target column" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------ prune
def test_prune_keeps_labels_checks_y_and_speaks_shell(labelled, capsys, tmp_path):
    import cvxnn.optimality.pruning  # noqa: F401 (imported normally: an import error must fail, not skip)
    model = _fit(labelled, capsys, tmp_path)
    outdir = tmp_path / "out"
    outdir.mkdir()
    code, out, err = run(["prune", model, labelled["csv"], "-o", outdir], capsys)
    assert code == 0, err
    pruned = outdir / "m.pruned.npz"
    assert pruned.is_file()  # written inside the directory
    small = io.load(pruned)
    np.testing.assert_array_equal(small.predict(labelled["X"]), io.load(model).predict(labelled["X"]))
    code, out, err = run(["predict", pruned, labelled["csv"]], capsys)
    assert code == 0 and set(out.splitlines()[1:]) <= {"cat", "dog"}
    # the same X with other labels: refused, in shell words
    flipped = tmp_path / "flipped.csv"
    text = labelled["csv"].read_text().splitlines()
    flipped.write_text("\n".join([text[0]] + [t.replace("cat", "x").replace("dog", "cat").replace("x", "dog")
                                              for t in text[1:]]) + "\n")
    code, out, err = run(["prune", model, flipped], capsys)
    assert code == 2 and "target column differs" in err and "cvxnn fit" in err and err.count("\n") == 1
    other = tmp_path / "other.csv"
    other.write_text("\n".join([text[0]] + text[2:]) + "\n")
    code, out, err = run(["prune", model, other], capsys)
    assert code == 2 and "cvxnn fit" in err and "from_gates" not in err and "()" not in err


def test_fit_output_into_existing_directory(labelled, capsys, tmp_path):
    code, out, err = run(["fit", labelled["csv"], "--task", "classification", "--backend", "cvxpy",
                          "--n-gates", "6", "-o", tmp_path], capsys)
    assert code == 0, err
    assert (tmp_path / "pets.model.npz").is_file()


# ------------------------------------------------------------------------------ CSV headers
@pytest.mark.parametrize("use_pandas", [True, False])
def test_csv_header_rules(tmp_path, monkeypatch, use_pandas):
    if not use_pandas:
        real_import = builtins.__import__

        def no_pandas(name, *args, **kwargs):
            if name == "pandas":
                raise ImportError("no pandas")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_pandas)
    p = tmp_path / "a.csv"
    p.write_text("1,,3\n4,5,6\n7,8,9\n")  # header-less, first row with a missing cell
    with pytest.raises(NonFiniteError, match="row 1, column 'col1'"):
        load_data(p)
    p.write_text("0,1,2\n4,5,6\n7,8,9\n")  # the column numbers DataFrame.to_csv writes
    with pytest.raises(FileFormatError, match="--header"):
        load_data(p)
    X, y = load_data(p, header=True)
    np.testing.assert_array_equal(X, [[4, 5], [7, 8]])
    X, y = load_data(p, header=False)
    assert X.shape == (3, 2)
    p.write_text("a,2,c\n4,5,6\n")  # names mixed with numbers: ambiguous
    with pytest.raises(FileFormatError, match="cannot tell"):
        load_data(p)
    p.write_text("1.5,2,cat\n3,4,dog\n")  # a header-less labelled file
    X, y = load_data(p, labels=True)
    assert list(y) == ["cat", "dog"] and X.shape == (2, 2)
    p.write_text("a,b,y\n1,2,3\n\n4,5,6\n")  # blank lines are skipped, never invented rows
    X, y = load_data(p)
    np.testing.assert_array_equal(y, [3, 6])
    p.write_text("a,b,y\n1,2,3\n4,5,6,7\n")
    with pytest.raises(ShapeError, match="row 2 has 4 fields"):
        load_data(p)
    p.write_text("a,b,y\n1,2,3\n4,-inf,6\n")
    with pytest.raises(NonFiniteError, match="row 2, column 'b'"):
        load_data(p)


def test_csv_readers_agree(tmp_path):
    pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 5)) * 10.0 ** rng.integers(-8, 8, 5)
    p = tmp_path / "big.csv"
    np.savetxt(p, A, delimiter=",", fmt="%.17g", header="a,b,c,d,t", comments="")
    X1, y1 = load_data(p)
    np.testing.assert_array_equal(X1, A[:, :4])  # bit-exact
    np.testing.assert_array_equal(y1, A[:, 4])


# ------------------------------------------------------------------ one-line errors, Ctrl-C
def test_bad_n_jobs_and_max_iter_are_one_line(labelled, capsys):
    code, out, err = run(["path", labelled["csv"], "--task", "classification", "--n-jobs", "0"], capsys)
    assert code == 2 and "--n-jobs" in err and err.count("\n") == 1
    code, out, err = run(["fit", labelled["csv"], "--task", "classification", "--max-iter", str(2**40)],
                         capsys)
    assert code == 2 and "--max-iter" in err and err.count("\n") == 1


def test_ctrl_c_prints_one_line_and_exits_130(labelled, capsys, monkeypatch, tmp_path):
    import cvxnn.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_fit_with_progress", interrupted)
    model = tmp_path / "never.npz"
    code, out, err = run(["fit", labelled["csv"], "--task", "classification", "-o", model], capsys)
    assert code == 130 and err == "cvxnn: interrupted\n" and not model.exists()


# --------------------------------------------------------------------------------- path
def test_path_validation_scores_and_plot(labelled, capsys, tmp_path):
    plot = tmp_path / "path.png"
    table = tmp_path / "path.csv"
    code, out, err = run(["path", labelled["csv"], "--task", "classification", "--activation", "gated_relu",
                          "--n-gates", "6", "--n-lams", "3", "--plot", plot, "--csv", table], capsys)
    assert code in (0, 1), err
    assert "val accuracy" in out and "held-out 0.2" in out and "best lam by validation" in out
    rows = np.genfromtxt(table, delimiter=",", names=True, dtype=None, encoding=None)
    assert "val_score" in rows.dtype.names and np.all((rows["val_score"] >= 0) & (rows["val_score"] <= 1))
    pytest.importorskip("matplotlib")
    assert plot.is_file() and plot.read_bytes()[:4] == b"\x89PNG"
    code, out, err = run(["path", labelled["csv"], "--task", "classification", "--activation", "gated_relu",
                          "--n-gates", "6", "--lams", "1,0.1", "--cv", "2", "--plot", "none"], capsys)
    assert code in (0, 1), err
    assert "2-fold cross-validation" in out and "val accuracy" in out


def test_plot_targets_are_checked_before_the_path_is_solved(labelled, capsys, tmp_path):
    """--plot nodir/p (no extension) and --plot x.pgf (needs LaTeX) failed only after the solve;
    --plot . raised a traceback (exit 1), --plot .. wrote '...png.png', a folder name wrote
    '<folder>.png' beside it."""
    pytest.importorskip("matplotlib")
    (tmp_path / "sub").mkdir()
    base = ["path", labelled["csv"], "--task", "classification", "--activation", "gated_relu", "--n-gates", "4",
            "--n-lams", "2"]
    for target, message in [(tmp_path / "nodir" / "p", "does not exist"), (tmp_path / "x.pgf", "cannot write"),
                            (tmp_path / "sub", "is a folder"), (".", "is a folder"), ("..", "is a folder")]:
        code, out, err = run([*base, "--plot", target], capsys)
        assert code == 2 and message in err, (target, code, err)
        assert "lam" not in out  # refused before any solve
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


# --------------------------------------------------------------------------------- progress
def test_indeterminate_progress_shows_elapsed_time_and_notes():
    buf = _stdio.StringIO()
    with ProgressBar(None, "solve", stream=buf, use_tqdm=False) as bar:
        bar.set_note("iteration 3, rel. gap 1.0e-02")
    text = buf.getvalue()
    assert "solve [|]" in text and "s iteration 3, rel. gap 1.0e-02" in text and text.endswith("\n")


def test_fit_progress_follows_the_solver(labelled, capsys, tmp_path, monkeypatch):
    import cvxnn.cli as cli

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    notes = []
    real = cli.ProgressBar.set_note
    monkeypatch.setattr(cli.ProgressBar, "set_note", lambda self, note: notes.append(note) or real(self, note))
    code, out, err = run(["fit", labelled["csv"], "--task", "classification", "--n-gates", "6",
                          "-o", tmp_path / "m.npz", "--progress", "always"], capsys)
    assert code in (0, 1), err
    assert any("iteration" in n for n in notes) and "neurons" in notes[-1]


def test_models_saved_by_the_api_select_columns_by_position(capsys, tmp_path):
    from cvxnn.datasets import load_teacher_regression
    from cvxnn.estimators import ConvexGatedReLURegressor

    X, y = load_teacher_regression()
    est = ConvexGatedReLURegressor(n_gates=5, random_state=0, backend="clarabel").fit(X, y)
    model = io.save(est, tmp_path / "api.npz")
    data = tmp_path / "t.csv"
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", header="a,b,c,d,y", comments="")
    code, out, err = run(["predict", model, data], capsys)  # 5 columns: 4 features + the target
    assert code == 0, err
    np.testing.assert_allclose(np.array(out.splitlines()[1:], dtype=float), est.predict(X), rtol=1e-12)
    code, out, err = run(["score", model, data], capsys)
    assert code == 0 and float(out.split(":")[-1]) == pytest.approx(est.score(X, y), abs=1e-6)
    wide = tmp_path / "wide.csv"
    np.savetxt(wide, np.column_stack([X, X, y]), delimiter=",", comments="")
    code, out, err = run(["predict", model, wide, "--no-header"], capsys)
    assert code == 2 and "needs 4 feature columns" in err and err.count("\n") == 1


def test_closed_pipe_exits_quietly(labelled, capsys, monkeypatch):
    import cvxnn.cli as cli

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_cmd_score", closed)
    code = main(["score", "m.npz", str(labelled["csv"])])
    out, err = capsys.readouterr()
    assert code == 141 and err == ""


def test_warnings_start_on_a_new_line_while_a_bar_is_drawn(capsys, monkeypatch):
    import warnings

    import cvxnn.cli as cli

    def warn_during_progress(args):
        buf = _stdio.StringIO()
        with ProgressBar(None, "fit", stream=buf, use_tqdm=False):
            warnings.warn("slow", UserWarning, stacklevel=2)
        return 0

    monkeypatch.setattr(cli, "_cmd_demo", warn_during_progress)
    assert main(["demo"]) == 0
    assert capsys.readouterr().err == "\ncvxnn: warning: slow\n"
