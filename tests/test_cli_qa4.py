"""CLI QA round 4: errors and warnings name the command-line options, numpy's floating-point
warnings of a solve become one cvxnn line, NPZ targets of shape (n, 1) and (n, c), probabilities
in full precision, help texts, and the exit status of a CVXPY "optimal" that cvxnn cannot certify."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

import cvxnn.cli as cli
from cvxnn import io
from cvxnn.cli import main


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("qa4")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = X @ np.array([1.0, 2.0, -1.0]) + 0.1 * rng.standard_normal(40)
    Y = np.c_[y, X[:, 0] ** 2]
    files = {"dir": d, "X": X, "y": y, "Y": Y}
    for name, arrays in {"reg": {"X": X, "y": y}, "col": {"X": X, "y": y[:, None]},
                         "two": {"X": X, "y": Y}, "lab": {"X": X, "y": (y > 0).astype(int)},
                         "labcol": {"X": X, "y": (y > 0).astype(int)[:, None]},
                         "lab2": {"X": X, "y": np.c_[y > 0, y > 1].astype(int)},
                         "three": {"X": X, "y": np.digitize(y, [-1.0, 1.0])}}.items():
        files[name] = d / f"{name}.npz"
        np.savez(files[name], **arrays)
    return files


# ------------------------------------------------------------------ 1. errors name the flags
def _python_name(name: str, text: str) -> bool:
    """Whether ``text`` names the Python parameter ``name`` (not as part of ``--name``)."""
    return re.search(rf"(?<![-\w]){name}\b", text) is not None


@pytest.mark.parametrize("argv, flag, python_name", [
    (["fit", "{reg}", "--n-gates", "0"], "--n-gates", "n_gates"),
    (["fit", "{reg}", "--seed", "-1"], "--seed", "seed"),
    (["fit", "{reg}", "--tol", "0"], "--tol", "tol"),
    (["fit", "{reg}", "--tol", "nan"], "--tol", "tol"),
    (["fit", "{reg}", "--max-iter", "0"], "--max-iter", "max_iter"),
    (["fit", "{reg}", "--lam", "inf"], "--lam", "lam"),
    (["fit", "{reg}", "--backend", "cvxpy", "--lam", "-1"], "--lam", "lam"),
    (["demo", "--n-gates", "0"], "--n-gates", "n_gates"),
    (["demo", "--seed", "-1"], "--seed", "seed"),
    (["demo", "--lam", "-1"], "--lam", "lam"),
    (["verify", "{reg}", "--max-iter", "0"], "--max-iter", "max_iter"),
    (["path", "{reg}", "--seed", "-3", "--plot", "none"], "--seed", "seed"),  # was a traceback
])
def test_out_of_range_options_are_refused_by_their_flag(data, capsys, argv, flag, python_name):
    argv = [a.format(reg=data["reg"]) for a in argv]
    code, out, err = run(argv + (["-o", data["dir"] / "m.npz"] if argv[0] == "fit" else []), capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("cvxnn: error:"), err
    assert flag in err and not _python_name(python_name, err), err


def test_a_loss_of_the_other_task_and_library_advice_read_as_options(data, capsys):
    code, _, err = run(["fit", data["reg"], "--loss", "hinge", "-o", data["dir"] / "m.npz"], capsys)
    assert code == 2 and "--task classification" in err and "ConvexReLUClassifier" not in err, err
    code, _, err = run(["fit", data["reg"], "--loss", "Huber", "--n-gates", 4, "-o", data["dir"] / "m.npz"], capsys)
    assert code == 0, err  # loss names are case-insensitive
    # the library's message for a binary loss with three classes suggested get_loss(...)
    code, _, err = run(["fit", data["three"], "--task", "classification", "--loss", "hinge", "--backend", "cvxpy",
                        "-o", data["dir"] / "m.npz"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "--loss logistic" in err and "--loss squared" in err and "get_loss" not in err, err
    # a solve stopped by its iteration limit: the advice names --max-iter and --backend, not max_iter
    code, _, err = run(["fit", data["reg"], "--max-iter", 1, "--n-gates", 4, "-o", data["dir"] / "m.npz"], capsys)
    assert code == 1 and "--max-iter" in err and "--backend cvxpy" in err, err
    assert not _python_name("max_iter", err) and not _python_name("tol", err) and "backend='" not in err, err


def test_shell_text_translates_python_spellings():
    text = cli._shell_text("Raise max_iter, loosen tol or try backend='clarabel'; keep standardize=True, "
                           "lam='auto' or backend='scs'; pass lams. network_tol_ and tol_gap_rel stay.")
    assert text == ("Raise --max-iter, loosen --tol or try --backend cvxpy; keep --standardize, --lam auto or "
                    "--backend cvxpy --solver scs; give --lams. network_tol_ and tol_gap_rel stay.")


# ------------------------------------------------- 2. numpy's floating-point warnings: one line
_RAW = re.compile(r"^cvxnn: warning: (divide by zero|overflow|underflow|invalid value) encountered", re.M)


def test_numpy_floating_point_warnings_become_one_cvxnn_line(data, capsys, monkeypatch):
    def fake_fit(args):
        with np.errstate(all="warn"):
            np.float64(1.0) / np.float64(0.0)
            np.array([1e308]) * 10.0
        return 1

    monkeypatch.setattr(cli, "_cmd_fit", fake_fit)
    code, _, err = run(["fit", data["reg"], "--lam", "1e-300"], capsys)
    assert code == 1 and not _RAW.search(err), err
    lines = err.splitlines()
    assert len(lines) == 1 and "floating-point" in lines[0] and "--lam 1e-300" in lines[0], err
    assert "numpy: divide by zero encountered" in lines[0], err


@pytest.mark.filterwarnings("default::RuntimeWarning")  # as outside the test suite (pyproject: errors)
def test_a_native_solve_at_a_tiny_lam_warns_in_cvxnn_words(data, capsys):
    # C-GReLU at lam = 1e-300: the float32 products of its working set overflow (library code)
    code, _, err = run(["fit", data["reg"], "--activation", "gated_relu", "--lam", "1e-300", "--max-iter", 100,
                        "--n-gates", 20, "-o", data["dir"] / "tiny.npz"], capsys)
    assert code == 1 and not _RAW.search(err), err
    assert sum("floating-point" in line for line in err.splitlines()) <= 1, err


# --------------------------------------------------------------- 3. NPZ targets (n, 1), (n, c)
def test_column_targets_are_one_target_per_sample(data, capsys, tmp_path):
    code, out, err = run(["fit", data["col"], "--n-gates", 8, "-o", tmp_path / "r.npz"], capsys)
    assert code == 0, err
    assert run(["score", tmp_path / "r.npz", data["reg"]], capsys)[0] == 0
    code, out, err = run(["fit", data["labcol"], "--task", "classification", "--n-gates", 8,
                          "-o", tmp_path / "c.npz"], capsys)
    assert code == 0, err
    assert io.load(tmp_path / "c.npz").classes_.tolist() == [0, 1]
    code, _, err = run(["fit", data["lab2"], "--task", "classification", "-o", tmp_path / "c2.npz"], capsys)
    assert code == 2 and "regression only" in err, err


def test_multi_output_regression_end_to_end(data, capsys, tmp_path):
    model = tmp_path / "two.model.npz"
    code, out, err = run(["fit", data["two"], "--n-gates", 8, "-o", model], capsys)
    assert code == 0, err
    est = io.load(model)
    code, out, err = run(["predict", model, data["two"]], capsys)
    assert code == 0, err
    rows = list(csv.reader(out.splitlines()))
    assert rows[0] == ["y_0", "y_1"]
    np.testing.assert_array_equal(np.array(rows[1:], dtype=float), est.predict(data["X"]))
    code, out, err = run(["score", model, data["two"]], capsys)
    assert code == 0 and f"{est.score(data['X'], data['Y']):.6f}" in out, err
    code, out, err = run(["score", model, data["reg"]], capsys)
    assert code == 2 and "2 outputs" in err, err
    code, out, err = run(["prune", model, data["two"], "-o", tmp_path / "p.npz"], capsys)
    assert code == 0, err
    assert run(["score", tmp_path / "p.npz", data["two"]], capsys)[0] == 0
    code, out, err = run(["path", data["two"], "--n-gates", 8, "--lams", "1,0.1", "--plot", "none"], capsys)
    assert code == 0 and "R^2" in out, err
    code, out, err = run(["verify", data["two"], "--n-gates", 8], capsys)
    assert code == 0 and "AGREE" in out, err


# ------------------------------------------------------------- 4. probabilities in full precision
def test_probabilities_are_written_in_full_precision(data, capsys, tmp_path):
    model = tmp_path / "c.npz"
    assert run(["fit", data["lab"], "--task", "classification", "--n-gates", 8, "-o", model], capsys)[0] == 0
    code, out, err = run(["predict", model, data["lab"], "--proba"], capsys)
    assert code == 0, err
    rows = list(csv.reader(out.splitlines()))
    P = io.load(model).predict_proba(data["X"])
    np.testing.assert_array_equal(np.array(rows[1:], dtype=float), P)  # bit for bit


# ----------------------------------------------------------------------------- 5. help texts
def test_help_texts_say_what_the_commands_do(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split()).split("options:", 1)[1]
    lam_help = text.split("--lam LAM", 1)[1].split("--n-gates")[0]
    assert "1.0 on standardized targets" not in lam_help
    assert "1.0 for relu regression" in lam_help and "--no-standardize" in lam_help, lam_help
    with pytest.raises(SystemExit):
        main(["path", "--help"])
    text = " ".join(capsys.readouterr().out.split()).split("options:", 1)[1]
    assert "held-out split" in text.split("--seed SEED", 1)[1].split("--no-bias")[0]


# ------------------------------------------- 6. a CVXPY "optimal" that cvxnn cannot certify: exit 1
def test_uncertified_cvxpy_optimum_exits_1(data, capsys, tmp_path):
    argv = ["fit", data["reg"], "--backend", "cvxpy", "--n-gates", 8, "-o", tmp_path / "m.npz"]
    code, out, err = run(argv + ["--lam", "1e-12"], capsys)
    assert "status                 : optimal" in out and "certified duality gap" in err
    assert code == 1, err
    assert run(argv + ["--lam", "1"], capsys)[0] == 0  # a certified CVXPY solve
    table = tmp_path / "p.csv"
    code, out, err = run(["path", data["reg"], "--backend", "cvxpy", "--n-gates", 8, "--lams", "1,1e-12",
                          "--val-fraction", "0", "--plot", "none", "--csv", table], capsys)
    assert code == 1 and "optimal, uncertified" in out, out
    rows = list(csv.DictReader(table.open(newline="")))
    assert [r["status"] for r in rows] == ["optimal", "optimal"]
    assert [r["certified"] for r in rows] == ["True", "False"]
    code, out, err = run(["demo", "--lam", "1e-12"], capsys)
    assert "solver status           : optimal" in out and "certified duality gap" in err
    assert "tol_gap_rel" not in err, err  # the library's Python advice, which the demo cannot take
    assert code == 1
