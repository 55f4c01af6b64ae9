"""Adversarial inputs to the user layer: every bad input to the estimators and the CLI becomes
a ``cvxnn.errors`` exception (CLI: exit status 2 and one line on stderr), never a raw numpy,
scipy, scikit-learn or CVXPY exception, and never a half-updated model."""

from __future__ import annotations

import numpy as np
import pytest

from cvxnn.cli import main
from cvxnn.datasets import load_teacher_regression, load_three_blobs
from cvxnn.errors import CvxnnError
from cvxnn.estimators import (
    ConvexGatedReLUClassifier,
    ConvexGatedReLURegressor,
    ConvexReLUClassifier,
    ConvexReLURegressor,
)

X, Y = load_teacher_regression()
X, Y = X[:30], Y[:30]
XB, LB = load_three_blobs()
XB, LB = XB[LB != 2][::3], LB[LB != 2][::3]
REG = dict(n_gates=4, random_state=0, backend="clarabel")


def _sparse(A):
    import scipy.sparse as sp

    return sp.csr_matrix(A)


ESTIMATOR_CASES = {
    "sparse X": lambda: ConvexReLURegressor(**REG).fit(_sparse(X), Y),
    "continuous labels": lambda: ConvexGatedReLUClassifier(**REG).fit(X, Y),
    "one class": lambda: ConvexReLUClassifier(**REG).fit(XB, np.zeros(len(XB))),
    "max_iter 2**40": lambda: ConvexReLURegressor(**dict(REG, max_iter=2**40)).fit(X, Y),
    "max_iter 0": lambda: ConvexReLURegressor(**dict(REG, max_iter=0)).fit(X, Y),
    "lam -1": lambda: ConvexReLURegressor(**dict(REG, lam=-1)).fit(X, Y),
    "lam text": lambda: ConvexReLURegressor(**dict(REG, lam="big")).fit(X, Y),
    "lam nan": lambda: ConvexReLURegressor(**dict(REG, lam=float("nan"))).fit(X, Y),
    "tol 0": lambda: ConvexReLURegressor(**dict(REG, tol=0)).fit(X, Y),
    "n_gates 2.5": lambda: ConvexReLURegressor(**dict(REG, n_gates=2.5)).fit(X, Y),
    "standardize text": lambda: ConvexReLURegressor(**dict(REG, standardize="yes")).fit(X, Y),
    "warm_start 1": lambda: ConvexReLURegressor(**dict(REG, warm_start=1)).fit(X, Y),
    "unknown backend": lambda: ConvexReLURegressor(backend="gurobi-x").fit(X, Y),
    "unknown loss": lambda: ConvexReLURegressor(**dict(REG, loss="l3")).fit(X, Y),
    "class_weight text": lambda: ConvexReLUClassifier(**dict(REG, class_weight="even")).fit(XB, LB),
    "class_weight negative": lambda: ConvexReLUClassifier(**dict(REG, class_weight={0: -1.0})).fit(XB, LB),
    "class_weight label": lambda: ConvexReLUClassifier(**dict(REG, class_weight={5: 1.0})).fit(XB, LB),
    "class_weight label weight": lambda: ConvexReLUClassifier(**dict(REG, class_weight={5: -1.0})).fit(XB, LB),
    "weights nan": lambda: ConvexReLURegressor(**REG).fit(X, Y, sample_weight=np.full(len(Y), np.nan)),
    "weights negative": lambda: ConvexReLURegressor(**REG).fit(X, Y, sample_weight=-np.ones(len(Y))),
    "weights zero": lambda: ConvexReLURegressor(**REG).fit(X, Y, sample_weight=np.zeros(len(Y))),
    "weights length": lambda: ConvexReLURegressor(**REG).fit(X, Y, sample_weight=np.ones(3)),
    "weights text": lambda: ConvexReLURegressor(**REG).fit(X, Y, sample_weight=["a"] * len(Y)),
    "weights native hinge": lambda: ConvexReLUClassifier(n_gates=4, loss="hinge").fit(
        XB, LB, sample_weight=np.ones(len(LB)) * 2),
    "X nan": lambda: ConvexReLURegressor(**REG).fit(np.where(X > 1, np.nan, X), Y),
    "X inf": lambda: ConvexReLURegressor(**REG).fit(np.where(X > 1, np.inf, X), Y),
    "X 3-D": lambda: ConvexReLURegressor(**REG).fit(X[:, :, None], Y),
    "X empty": lambda: ConvexReLURegressor(**REG).fit(np.zeros((0, 4)), np.zeros(0)),
    "X one row": lambda: ConvexReLURegressor(**REG).fit(X[:1], Y[:1]),
    "X objects": lambda: ConvexReLURegressor(**REG).fit(np.array([[{"a": 1}]] * 5, dtype=object), Y[:5]),
    "X text": lambda: ConvexReLURegressor(**REG).fit(np.array([["a", "b"]] * 5), Y[:5]),
    "y length": lambda: ConvexReLURegressor(**REG).fit(X, Y[:-1]),
    "y None": lambda: ConvexReLURegressor(**REG).fit(X, None),
    "y nan": lambda: ConvexReLURegressor(**REG).fit(X, np.full(len(Y), np.nan)),
    "gates shape": lambda: ConvexReLURegressor(**dict(REG, gates=np.ones((7, 3)))).fit(X, Y),
    "fit_path fraction": lambda: ConvexGatedReLURegressor(**REG).fit_path(X, Y, validation_fraction=1.5),
    "fit_path pair": lambda: ConvexGatedReLURegressor(**REG).fit_path(X, Y, validation_data=X),
    "fit_path patience": lambda: ConvexGatedReLURegressor(**REG).fit_path(X, Y, patience=0),
    "predict unfitted": lambda: ConvexReLURegressor().predict(X),
}


@pytest.mark.parametrize("case", sorted(ESTIMATOR_CASES))
def test_estimator_inputs_raise_cvxnn_errors(case):
    with pytest.raises(CvxnnError):
        ESTIMATOR_CASES[case]()


def test_subnormal_columns_name_the_overflow_and_the_rescaled_data_fit():
    """Columns of X near 1e-308: the raw-scale network (first layer divided by the column
    scales) overflows, and the error says so and what to do; the advice works."""
    from cvxnn.errors import NonFiniteError

    Xt = X[:, :3] * 1e-310
    with pytest.raises(NonFiniteError, match="overflows float64.*Rescale X"):
        ConvexGatedReLURegressor(n_gates=4, random_state=0).fit(Xt, Y)
    est = ConvexGatedReLURegressor(n_gates=4, random_state=0).fit(Xt * 1e302, Y)
    assert np.all(np.isfinite(est.network_.W1)) and est.score(Xt * 1e302, Y) > 0


@pytest.fixture(scope="module")
def fitted():
    reg = ConvexGatedReLURegressor(**REG).fit(X, Y)
    return reg


@pytest.mark.parametrize("case", ["features", "sparse", "nan", "1-D", "text"])
def test_predict_inputs_raise_cvxnn_errors_and_keep_the_model(fitted, case):
    before = fitted.solution_
    bad = {"features": X[:, :2], "sparse": _sparse(X) if case == "sparse" else None,
           "nan": np.full_like(X, np.nan), "1-D": X[0], "text": np.array([["x"] * 4])}[case]
    with pytest.raises(CvxnnError):
        fitted.predict(bad)
    assert fitted.solution_ is before


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("adv")
    good = d / "good.csv"
    np.savetxt(good, np.column_stack([X, Y]), delimiter=",", header="a,b,c,d,y", comments="")
    bad = {
        "empty.csv": "",
        "header_only.csv": "a,b,y\n",
        "ragged.csv": "a,b,y\n1,2,3\n4,5\n",
        "text_cell.csv": "a,b,y\n1,2,3\n4,x,6\n",
        "numeric_header.csv": "0,1,2\n1,2,3\n4,5,6\n",
        "mixed_header.csv": "a,2,y\n1,2,3\n",
        "binary.csv": "\x00\xff\xfe garbage",
    }
    for name, text in bad.items():
        (d / name).write_bytes(text.encode("latin-1"))
    (d / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    return d


CLI_CASES = [
    ["fit", "{d}/missing.csv"],
    ["fit", "{d}"],
    ["fit", "{d}/empty.csv"],
    ["fit", "{d}/header_only.csv"],
    ["fit", "{d}/ragged.csv"],
    ["fit", "{d}/text_cell.csv"],
    ["fit", "{d}/numeric_header.csv"],
    ["fit", "{d}/mixed_header.csv"],
    ["fit", "{d}/binary.csv"],
    ["fit", "{d}/junk.npz"],
    ["fit", "{d}/good.csv", "--target", "nope"],
    ["fit", "{d}/good.csv", "--max-iter", str(2**40)],
    ["fit", "{d}/good.csv", "--n-gates", "0"],
    ["fit", "{d}/good.csv", "--lam", "-1"],
    ["fit", "{d}/good.csv", "--task", "classification"],
    ["fit", "{d}/good.csv", "-o", "{d}/no/such/dir/m.npz", "--backend", "cvxpy", "--n-gates", "3"],
    ["path", "{d}/good.csv", "--n-jobs", "0"],
    ["path", "{d}/good.csv", "--lams", "a,b"],
    ["path", "{d}/good.csv", "--cv", "1"],
    ["path", "{d}/good.csv", "--val-fraction", "1.5"],
    ["path", "{d}/good.csv", "--lam-min-ratio", "2"],
    ["predict", "{d}", "{d}/good.csv"],
    ["predict", "{d}/good.csv", "{d}/good.csv"],
    ["predict", "{d}/junk.npz", "{d}/good.csv"],
    ["score", "{d}/missing.npz", "{d}/good.csv"],
    ["prune", "{d}/good.csv", "{d}/good.csv"],
    ["verify", "{d}/ragged.csv"],
]


@pytest.mark.parametrize("argv", CLI_CASES, ids=[" ".join(a[:3]).replace("{d}/", "") for a in CLI_CASES])
def test_cli_errors_are_one_line_with_exit_2(files, capsys, argv):
    code = main([a.format(d=files) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith("cvxnn: error:") and err.count("\n") == 1 and "Traceback" not in err
