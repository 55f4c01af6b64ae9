"""CLI QA round 2: explicit --target for header-less models, options the command would ignore,
outputs that would overwrite the command's inputs, verify with a non-smooth loss."""

from __future__ import annotations

import numpy as np
import pytest

from cvxnn import io
from cvxnn.cli import main
from cvxnn.datasets import load_teacher_regression


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code, err, *needles):
    assert code == 2, err
    assert err.startswith("cvxnn: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("qa2")
    X, y = load_teacher_regression()
    X, y = X[:40], y[:40]
    last = d / "nohdr.csv"  # no header, target last
    last.write_text("".join(",".join(f"{v:.17g}" for v in (*r, t)) + "\n" for r, t in zip(X, y, strict=True)))
    first = d / "nohdr_target_first.csv"  # the same rows, target first
    first.write_text("".join(",".join(f"{v:.17g}" for v in (t, *r)) + "\n" for r, t in zip(X, y, strict=True)))
    hdr = d / "train.csv"
    hdr.write_text("a,b,c,d,y\n" + last.read_text())
    npz = d / "train.npz"
    np.savez(npz, X=X, y=y)
    return {"dir": d, "last": last, "first": first, "csv": hdr, "npz": npz, "X": X, "y": y}


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    """A model fitted on the header-less file (its columns col0..col3, target col4)."""
    out = tmp_path_factory.mktemp("qa2model") / "m.npz"
    assert main(["fit", str(data["last"]), "--n-gates", "10", "-o", str(out), "--progress", "never"]) == 0
    return out


# -------------------------------------------- explicit --target on a header-less model's file
def test_headerless_model_reads_the_explicit_target_column(data, model, capsys):
    """--target 0 named the target of a file whose columns are in another order; the model read
    its fitted positions instead (col0, the target, as a feature; col4 as the target) and scored
    R^2 = -0.906 instead of 0.824, exit 0 (diabetes: -3662 instead of 0.625)."""
    code, out, _ = run(["score", model, data["last"]], capsys)
    assert code == 0
    r2 = float(out.strip().splitlines()[-1].split(":")[1])
    for target in ("0", "col0"):
        code, out, _ = run(["score", model, data["first"], "--target", target], capsys)
        assert code == 0
        assert "target 'col0'" in out
        assert float(out.strip().splitlines()[-1].split(":")[1]) == pytest.approx(r2, abs=1e-12)
    est = io.load(model, kind="estimator")
    code, out, _ = run(["predict", model, data["first"], "--target", "0"], capsys)
    assert code == 0
    pred = np.array(out.strip().splitlines()[1:], dtype=float)
    np.testing.assert_allclose(pred, est.predict(data["X"]), rtol=1e-12, atol=1e-12)
    # without --target, the stored positions are still read (the model's own layout)
    code, out, _ = run(["predict", model, data["last"]], capsys)
    np.testing.assert_allclose(np.array(out.strip().splitlines()[1:], dtype=float), pred, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ options that were ignored
@pytest.mark.parametrize("argv, needle", [
    (["fit", "{npz}", "--target", "nosuch"], "--target names a CSV column"),
    (["fit", "{npz}", "--no-header"], "--no-header describes a CSV file"),
    (["fit", "{npz}", "--header"], "--header describes a CSV file"),
    (["fit", "{csv}", "--x-key", "Z"], "--x-key names an array of an NPZ file"),
    (["verify", "{csv}", "--y-key", "Z"], "--y-key names an array of an NPZ file"),
    (["fit", "{csv}", "--backend", "cvxpy", "--tol", "0.5"], "--tol is the native solvers' tolerance"),
    (["path", "{csv}", "--backend", "cvxpy", "--tol", "0.5"], "--tol is the native solvers' tolerance"),
    (["path", "{csv}", "--lams", "1,0.1", "--n-lams", "5"], "--n-lams would be ignored"),
    (["path", "{csv}", "--lams", "1,0.1", "--lam-min-ratio", "0.1"], "--lam-min-ratio would be ignored"),
    (["path", "{csv}", "--cv", "3", "--val-fraction", "0.5"], "--cv and --val-fraction"),
])
def test_ignored_options_are_errors(data, capsys, argv, needle):
    """Each of these ran and exited 0 with the option silently ignored (fit data.npz --target nosuch
    fitted y; --tol 0.5 with cvxpy gave the same 37 Clarabel iterations as 1e-6; --cv dropped
    --val-fraction)."""
    out = data["dir"] / "ignored.model.npz"
    argv = [a.format(npz=data["npz"], csv=data["csv"]) for a in argv]
    if argv[0] == "fit":
        argv += ["-o", str(out)]
    if argv[0] == "path":
        argv += ["--plot", "none"]
    code, _, err = run(argv, capsys)
    one_error(code, err, needle)
    assert not out.exists()


def test_defaults_still_apply(data, capsys):
    code, out, _ = run(["path", data["npz"], "--n-lams", "2", "--plot", "none", "--n-gates", "5"], capsys)
    assert code == 0
    assert "0.001 * lam_max" in out and "held-out 0.2 of the rows" in out


# ------------------------------------------------------------- outputs that overwrite inputs
def test_outputs_never_overwrite_the_inputs(data, model, tmp_path, capsys):
    """'fit data.npz -o data.npz' replaced the training data by the model, '--report' naming the
    model file replaced the model by JSON, 'predict -o data.csv' the data by predictions."""
    npz = tmp_path / "d.npz"
    np.savez(npz, X=data["X"], y=data["y"])
    before = npz.read_bytes()
    for target in (npz, tmp_path / "d"):  # '-o d' writes d.npz
        code, _, err = run(["fit", npz, "-o", target], capsys)
        one_error(code, err, "is the data file")
    code, _, err = run(["fit", npz, "-o", tmp_path / "m.npz", "--report", tmp_path / "m.npz"], capsys)
    one_error(code, err, "name the same file")
    code, _, err = run(["predict", model, npz, "-o", npz], capsys)
    one_error(code, err, "is the data file")
    code, _, err = run(["predict", model, npz, "-o", model], capsys)
    one_error(code, err, "is the model file")
    code, _, err = run(["path", npz, "--csv", npz, "--plot", "none"], capsys)
    one_error(code, err, "is the data file")
    code, _, err = run(["prune", model, npz, "-o", npz], capsys)
    one_error(code, err, "is the data file")
    assert npz.read_bytes() == before
    assert not (tmp_path / "m.npz").exists()
    assert io.load(model, kind="estimator").n_features_in_ == 4


# ------------------------------------------------------------------ verify, non-smooth loss
def test_verify_nonsmooth_loss_gives_cli_advice(tmp_path, capsys):
    """verify --loss hinge answered with Python advice (backend='clarabel' in the estimators,
    solver='CLARABEL' in cvxnn.solve), which verify cannot take."""
    p = tmp_path / "bin.csv"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 2))
    p.write_text("a,b,y\n" + "".join(f"{a:.6f},{b:.6f},{int(a > 0)}\n" for a, b in X))
    code, _, err = run(["verify", p, "--task", "classification", "--loss", "hinge"], capsys)
    one_error(code, err, "--loss hinge is not smooth", "cvxnn fit --backend cvxpy")
    assert "backend='clarabel'" not in err


def test_a_model_fitted_on_npz_reads_csv_files_by_position(data, tmp_path, capsys):
    # the NPZ model stored the report's names x0..x3 as its columns: a CSV with a header was
    # refused ("the file lacks ['x0', ...]"), and score looked for the NPZ key 'y' as a column
    out = tmp_path / "npz_model.npz"
    code, _, err = run(["fit", data["npz"], "--n-gates", "10", "-o", out, "--progress", "never"], capsys)
    assert code == 0, err
    ref = main(["score", str(out), str(data["npz"])])
    ref_out = capsys.readouterr().out
    assert ref == 0
    r2 = [line for line in ref_out.splitlines() if line.startswith("R^2")][0]
    for csv in (data["csv"], data["last"]):  # a header (a,b,c,d,y) or none; target last
        code, txt, err = run(["score", out, csv], capsys)
        assert code == 0, err
        assert [line for line in txt.splitlines() if line.startswith("R^2")][0] == r2
    xonly = tmp_path / "x.csv"
    xonly.write_text("a,b,c,d\n" + "".join(",".join(f"{v:.17g}" for v in r) + "\n" for r in data["X"]))
    code, txt, err = run(["predict", out, xonly], capsys)
    assert code == 0, err
    est = io.load(out)
    pred = np.array([float(v) for v in txt.split()[1:]])
    np.testing.assert_allclose(pred, est.predict(data["X"]), rtol=1e-12, atol=1e-12)


def test_single_class_message_names_the_label():
    from cvxnn.errors import LabelError
    from cvxnn.estimators import ConvexGatedReLUClassifier

    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(LabelError, match=r"1 class \('benign'\)"):
        ConvexGatedReLUClassifier().fit(X, np.array(["benign"] * 20))


def test_verify_says_why_it_disagrees(data, capsys):
    # verify printed DISAGREE alone, also when the reference solver ended inaccurate (wine, 3
    # classes: Clarabel 'optimal_inaccurate' 3.4e-4 above the native certified optimum)
    code, out, err = run(["verify", data["npz"], "--n-gates", "8", "--rtol", "0", "--progress", "never"], capsys)
    assert code == 1, err
    why = [line for line in out.splitlines() if line.startswith("why")]
    assert len(why) == 1 and ("differ by" in why[0] or "ended" in why[0]), out
