"""Adversarial inputs at every public entry point: each must fail with a typed cvxnn error.

Every case below is an input a user (or a hostile file) can produce: bad shapes, NaN / inf,
negative or NaN ``lam`` and tolerances, wrong object types, huge integers, sparse matrices,
continuous labels for classifiers, bad command-line values. The only acceptable outcome is
a :class:`cvxnn.errors.CvxnnError` subclass whose message names the problem (for the command
line: a non-zero exit code and one line on stderr, never a traceback). A raw ``ValueError``,
``TypeError``, ``AttributeError``, ``OverflowError`` or numpy ``MemoryError`` fails the case,
and so does a call that returns.

Cases are grouped by entry point (``CASES[entry]``); ``test_case_counts`` records how many
each has. Cases whose fix lives in another module's owner are marked ``xfail`` with the
owner in the reason (non-strict: they pass as soon as the owner fixes them).
"""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

import cvxnn
from cvxnn import io
from cvxnn.errors import (
    CvxnnError,
    FileFormatError,
    InputError,
    InvalidParameterError,
    MemoryBudgetError,
    NonFiniteError,
    NotFittedError,
    PatternMismatchError,
    ShapeError,
)

RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 3))
Y = X @ np.array([1.0, -0.5, 0.2]) + 0.1 * RNG.standard_normal(12)
LABELS = (Y > 0).astype(int)
X_NAN = X.copy()
X_NAN[3, 1] = np.nan
X_INF = X.copy()
X_INF[0, 0] = np.inf
PATS = cvxnn.sample_patterns(X, 6, seed=0, bias=True)
OTHER_PATS = cvxnn.sample_patterns(X + 1.0, 6, seed=0, bias=True)
GATED = cvxnn.ConvexModel("gated_relu", PATS, U=RNG.standard_normal((PATS.design_dim, PATS.n_patterns)))
RELU_NET = cvxnn.ReLUNetwork(RNG.standard_normal((3, 4)), RNG.standard_normal(4))
GATED_NET = cvxnn.GatedReLUNetwork(RNG.standard_normal((3, 4)), RNG.standard_normal(4),
                                   gates=RNG.standard_normal((3, 4)))

OWNERS = {
    "estimators": "owner: estimators/cli",
    "cli": "owner: estimators/cli",
    "native": "owner: native",
    "builders": "owner: builders / CVXPY adapter (cvxnn/backends/cvxpy_adapter.py)",
}


def _xfail(owner: str):
    return pytest.mark.xfail(strict=False, reason=OWNERS[owner])


def case(entry: str, name: str, fn, error=CvxnnError, owner: str | None = None):
    """One adversarial case: ``fn()`` must raise ``error`` (a CvxnnError subclass)."""
    marks = [_xfail(owner)] if owner else []
    return pytest.param(entry, fn, error, id=f"{entry}-{name}", marks=marks)


# ------------------------------------------------------------------- shared fitted objects
_CACHE: dict = {}


def solution():
    """A small C-ReLU solution (Clarabel), built once."""
    if "sol" not in _CACHE:
        _CACHE["sol"] = cvxnn.build_program(X, Y, activation="relu", lam=0.1, patterns=PATS).solve()
    return _CACHE["sol"]


def program():
    if "prog" not in _CACHE:
        _CACHE["prog"] = cvxnn.build_program(X, Y, activation="relu", lam=0.1, patterns=PATS)
    return _CACHE["prog"]


def fitted_regressor():
    if "reg" not in _CACHE:
        _CACHE["reg"] = cvxnn.ConvexGatedReLURegressor(n_gates=6, random_state=0).fit(X, Y)
    return _CACHE["reg"]


# ------------------------------------------------------------------------------- cases
BLD = "builders"
BUILDERS = [
    case(BLD, "X-nan", lambda: cvxnn.build_program(X_NAN, Y, lam=0.1, n_gates=4, seed=0), NonFiniteError),
    case(BLD, "X-inf", lambda: cvxnn.build_program(X_INF, Y, lam=0.1, n_gates=4, seed=0), NonFiniteError),
    case(BLD, "X-1d", lambda: cvxnn.build_program(X[:, 0], Y, lam=0.1, n_gates=4, seed=0), ShapeError),
    case(BLD, "X-3d", lambda: cvxnn.build_program(X[None], Y, lam=0.1, n_gates=4, seed=0), ShapeError),
    case(BLD, "X-empty", lambda: cvxnn.build_program(X[:0], Y[:0], lam=0.1, n_gates=4, seed=0), ShapeError),
    case(BLD, "X-sparse", lambda: cvxnn.build_program(sp.csr_matrix(X), Y, lam=0.1, n_gates=4, seed=0),
         InvalidParameterError),
    case(BLD, "X-complex", lambda: cvxnn.build_program(X + 1j, Y, lam=0.1, n_gates=4, seed=0), InvalidParameterError),
    case(BLD, "X-strings", lambda: cvxnn.build_program(X.astype(str), Y, lam=0.1, n_gates=4, seed=0),
         InvalidParameterError),
    case(BLD, "X-None", lambda: cvxnn.build_program(None, Y, lam=0.1, n_gates=4, seed=0)),
    case(BLD, "y-short", lambda: cvxnn.build_program(X, Y[:-1], lam=0.1, n_gates=4, seed=0), ShapeError),
    case(BLD, "y-nan", lambda: cvxnn.build_program(X, np.where(Y > 0, np.nan, Y), lam=0.1, n_gates=4, seed=0),
         NonFiniteError),
    case(BLD, "lam-negative", lambda: cvxnn.build_program(X, Y, lam=-1.0, n_gates=4, seed=0), InvalidParameterError),
    case(BLD, "lam-nan", lambda: cvxnn.build_program(X, Y, lam=float("nan"), n_gates=4, seed=0), NonFiniteError),
    case(BLD, "lam-string", lambda: cvxnn.build_program(X, Y, lam="0.1", n_gates=4, seed=0), InvalidParameterError),
    case(BLD, "lam-list", lambda: cvxnn.build_program(X, Y, lam=[0.1, 0.2], n_gates=4, seed=0), InvalidParameterError),
    case(BLD, "activation-unknown", lambda: cvxnn.build_program(X, Y, lam=0.1, activation="tanh", n_gates=4, seed=0),
         InvalidParameterError),
    case(BLD, "loss-unknown", lambda: cvxnn.build_program(X, Y, lam=0.1, loss="l7", n_gates=4, seed=0),
         InvalidParameterError),
    case(BLD, "form-unknown", lambda: cvxnn.build_program(X, Y, lam=0.1, form="best", n_gates=4, seed=0),
         InvalidParameterError),
    case(BLD, "n_gates-zero", lambda: cvxnn.build_program(X, Y, lam=0.1, n_gates=0, seed=0), InvalidParameterError),
    case(BLD, "n_gates-float", lambda: cvxnn.build_program(X, Y, lam=0.1, n_gates=2.5, seed=0), InvalidParameterError),
    case(BLD, "patterns-wrong-type", lambda: cvxnn.build_program(X, Y, lam=0.1, patterns="all"), InvalidParameterError),
    case(BLD, "patterns-other-data", lambda: cvxnn.build_program(X, Y, lam=0.1, patterns=OTHER_PATS),
         PatternMismatchError),
    case(BLD, "logistic-continuous-y", lambda: cvxnn.build_program(X, Y, lam=0.1, loss="logistic", n_gates=4, seed=0)),
    case(BLD, "solve-unknown-solver", lambda: program().solve(solver="nope"), InvalidParameterError),
    case(BLD, "solve-lam-negative", lambda: program().solve(lam=-1.0), InvalidParameterError),
    case(BLD, "solve-lam-nan", lambda: program().solve(lam=float("nan")), NonFiniteError),
    case(BLD, "solve-max_iter-2**40-clarabel", lambda: program().solve(solver="CLARABEL", max_iter=2**40),
         InvalidParameterError),
    case(BLD, "solve-max_iters-2**70-scs", lambda: program().solve(solver="SCS", max_iters=2**70),
         InvalidParameterError),
    case(BLD, "solve-bogus-option", lambda: program().solve(solver="CLARABEL", bogus_option=3), InvalidParameterError),
]

NAT = "native"
NATIVE = [
    case(NAT, "X-nan", lambda: cvxnn.solve_native(X_NAN, Y, PATS, lam=0.1), NonFiniteError),
    case(NAT, "X-sparse", lambda: cvxnn.solve_native(sp.csr_matrix(X), Y, PATS, lam=0.1), InvalidParameterError),
    case(NAT, "y-short", lambda: cvxnn.solve_native(X, Y[:-2], PATS, lam=0.1), ShapeError),
    case(NAT, "lam-negative", lambda: cvxnn.solve_native(X, Y, PATS, lam=-0.1), InvalidParameterError),
    case(NAT, "lam-nan", lambda: cvxnn.solve_native(X, Y, PATS, lam=float("nan")), NonFiniteError),
    case(NAT, "tol-nan", lambda: cvxnn.solve_native(X, Y, PATS, lam=0.1, tol=float("nan")), InputError),
    case(NAT, "tol-negative", lambda: cvxnn.solve_native(X, Y, PATS, lam=0.1, tol=-1e-6), InvalidParameterError),
    case(NAT, "max_iter-zero", lambda: cvxnn.solve_native(X, Y, PATS, lam=0.1, max_iter=0), InvalidParameterError),
    case(NAT, "max_iter-2**40", lambda: cvxnn.solve_native(X, Y, PATS, lam=0.1, max_iter=2**40), InvalidParameterError),
    case(NAT, "max_iter-float", lambda: cvxnn.solve_native(X, Y, PATS, lam=0.1, max_iter=10.0), InvalidParameterError),
    case(NAT, "activation-unknown", lambda: cvxnn.solve_native(X, Y, PATS, lam=0.1, activation="sigmoid"),
         InvalidParameterError),
    case(NAT, "loss-unknown", lambda: cvxnn.solve_native(X, Y, PATS, lam=0.1, loss="l7"), InvalidParameterError),
    case(NAT, "dtype-int", lambda: cvxnn.solve_native(X, Y, PATS, lam=0.1, dtype=np.int32), InvalidParameterError),
    case(NAT, "patterns-None", lambda: cvxnn.solve_native(X, Y, None, lam=0.1), InvalidParameterError),
    case(NAT, "patterns-other-data", lambda: cvxnn.solve_native(X, Y, OTHER_PATS, lam=0.1), PatternMismatchError),
    case(NAT, "memory_budget-tiny", lambda: cvxnn.solve_native(X, Y, PATS, lam=0.1, memory_budget=16),
         MemoryBudgetError),
    case(NAT, "solver-unknown", lambda: cvxnn.solve_native(X, Y, PATS, activation="relu", lam=0.1, solver="magic"),
         InvalidParameterError),
    case(NAT, "duality_gap-lam-negative", lambda: cvxnn.duality_gap(GATED, X, Y, lam=-1.0), InvalidParameterError),
    case(NAT, "lam_max_gated-X-nan", lambda: cvxnn.lam_max_gated(X_NAN, Y, PATS), NonFiniteError),
]

EST = "estimators"
ESTIMATORS = [
    case(EST, "fit-X-sparse", lambda: cvxnn.ConvexReLURegressor(n_gates=4).fit(sp.csr_matrix(X), Y), InputError),
    case(EST, "fit-X-nan", lambda: cvxnn.ConvexReLURegressor(n_gates=4).fit(X_NAN, Y), InputError),
    case(EST, "fit-y-short", lambda: cvxnn.ConvexReLURegressor(n_gates=4).fit(X, Y[:-1]), InputError),
    case(EST, "fit-lam-negative", lambda: cvxnn.ConvexReLURegressor(lam=-1.0, n_gates=4).fit(X, Y),
         InvalidParameterError),
    case(EST, "fit-lam-nan", lambda: cvxnn.ConvexReLURegressor(lam=float("nan"), n_gates=4).fit(X, Y), NonFiniteError),
    case(EST, "fit-tol-nan", lambda: cvxnn.ConvexGatedReLURegressor(tol=float("nan"), n_gates=4).fit(X, Y),
         InputError),
    case(EST, "fit-n_gates-zero", lambda: cvxnn.ConvexReLURegressor(n_gates=0).fit(X, Y), InvalidParameterError),
    case(EST, "fit-max_iter-2**40-clarabel",
         lambda: cvxnn.ConvexReLURegressor(n_gates=4, backend="clarabel", max_iter=2**40).fit(X, Y),
         InvalidParameterError),
    case(EST, "fit-max_iter-2**40-native",
         lambda: cvxnn.ConvexGatedReLURegressor(n_gates=4, max_iter=2**40).fit(X, Y), InvalidParameterError),
    case(EST, "fit-backend-unknown", lambda: cvxnn.ConvexReLURegressor(n_gates=4, backend="gpu").fit(X, Y),
         InvalidParameterError),
    case(EST, "fit-random_state-string", lambda: cvxnn.ConvexReLURegressor(n_gates=4, random_state="x").fit(X, Y),
         InvalidParameterError),
    case(EST, "classifier-continuous-labels", lambda: cvxnn.ConvexReLUClassifier(n_gates=4).fit(X, Y)),
    case(EST, "classifier-one-class", lambda: cvxnn.ConvexReLUClassifier(n_gates=4).fit(X, np.zeros(12))),
    case(EST, "classifier-X-sparse", lambda: cvxnn.ConvexGatedReLUClassifier(n_gates=4).fit(sp.csr_matrix(X), LABELS),
         InputError),
    case(EST, "predict-before-fit", lambda: cvxnn.ConvexReLURegressor().predict(X), NotFittedError),
    case(EST, "predict-wrong-features", lambda: fitted_regressor().predict(X[:, :2]), InputError),
    case(EST, "predict-nan", lambda: fitted_regressor().predict(X_NAN), InputError),
    case(EST, "set_params-unknown", lambda: cvxnn.ConvexReLURegressor().set_params(alpha=1.0), InvalidParameterError),
]

MAP = "maps"
MAPS = [
    case(MAP, "to_network-None", lambda: cvxnn.to_network(None), InvalidParameterError),
    case(MAP, "to_network-a-network", lambda: cvxnn.to_network(RELU_NET), InvalidParameterError),
    case(MAP, "to_network-tol-negative", lambda: cvxnn.to_network(GATED, tol=-1.0), InvalidParameterError),
    case(MAP, "to_network-tol-nan", lambda: cvxnn.to_network(GATED, tol=float("nan")), NonFiniteError),
    case(MAP, "relu_to_convex-gated-network", lambda: cvxnn.relu_network_to_convex(GATED_NET, X),
         InvalidParameterError),
    case(MAP, "relu_to_convex-None", lambda: cvxnn.relu_network_to_convex(None, X), InvalidParameterError),
    case(MAP, "relu_to_convex-model", lambda: cvxnn.relu_network_to_convex(GATED, X), InvalidParameterError),
    case(MAP, "relu_to_convex-X-wrong-features", lambda: cvxnn.relu_network_to_convex(RELU_NET, X[:, :2]), ShapeError),
    case(MAP, "relu_to_convex-X-nan", lambda: cvxnn.relu_network_to_convex(RELU_NET, X_NAN), NonFiniteError),
    case(MAP, "gated_to_convex-relu-network", lambda: cvxnn.gated_network_to_convex(RELU_NET, X),
         InvalidParameterError),
    case(MAP, "gated_to_convex-string", lambda: cvxnn.gated_network_to_convex("net", X), InvalidParameterError),
    case(MAP, "gated_to_convex-X-wrong-features", lambda: cvxnn.gated_network_to_convex(GATED_NET, X[:, :1]),
         ShapeError),
    case(MAP, "ReLUNetwork-None", lambda: cvxnn.ReLUNetwork(None, np.ones(3)), ShapeError),
    case(MAP, "ReLUNetwork-nan", lambda: cvxnn.ReLUNetwork(np.full((3, 2), np.nan), np.ones(2)), NonFiniteError),
    case(MAP, "ReLUNetwork-mismatch", lambda: cvxnn.ReLUNetwork(np.ones((3, 2)), np.ones(5)), ShapeError),
    case(MAP, "GatedReLUNetwork-no-gates", lambda: cvxnn.GatedReLUNetwork(np.ones((3, 2)), np.ones(2)), ShapeError),
    case(MAP, "network-predict-wrong-features", lambda: RELU_NET.predict(X[:, :2]), ShapeError),
    case(MAP, "network-objective-lam-negative", lambda: RELU_NET.objective(X, Y, -1.0), InvalidParameterError),
    case(MAP, "network-objective-loss-object", lambda: RELU_NET.objective(X, Y, 0.1, loss=object()),
         InvalidParameterError),
    case(MAP, "ConvexModel-wrong-shape", lambda: cvxnn.ConvexModel("gated_relu", PATS, U=np.ones((2, 2))), ShapeError),
    case(MAP, "ConvexModel-activation", lambda: cvxnn.ConvexModel("tanh", PATS, U=GATED.U), InvalidParameterError),
]

OPT = "optimality"
OPTIMALITY = [
    case(OPT, "prune_exact-active_tol-nan", lambda: cvxnn.prune_exact(solution(), X, active_tol=float("nan")),
         NonFiniteError),
    case(OPT, "prune_exact-active_tol-negative", lambda: cvxnn.prune_exact(solution(), X, active_tol=-0.1),
         InvalidParameterError),
    case(OPT, "prune_exact-active_tol-one", lambda: cvxnn.prune_exact(solution(), X, active_tol=1.0),
         InvalidParameterError),
    case(OPT, "prune_exact-rank_tol-nan", lambda: cvxnn.prune_exact(solution(), X, rank_tol=float("nan")),
         NonFiniteError),
    case(OPT, "prune_exact-rank_tol-string", lambda: cvxnn.prune_exact(solution(), X, rank_tol="tiny"),
         InvalidParameterError),
    case(OPT, "prune_exact-other-data", lambda: cvxnn.prune_exact(solution(), X + 1.0), PatternMismatchError),
    case(OPT, "prune_exact-None", lambda: cvxnn.prune_exact(None, X)),
    case(OPT, "kkt_report-lam-negative", lambda: cvxnn.kkt_report(solution(), X, Y, -1.0), InvalidParameterError),
    case(OPT, "kkt_report-active_tol-nan", lambda: cvxnn.kkt_report(solution(), X, Y, 0.1, active_tol=float("nan")),
         NonFiniteError),
    case(OPT, "kkt_report-equicorrelation_tol-nan",
         lambda: cvxnn.kkt_report(solution(), X, Y, 0.1, equicorrelation_tol=float("nan")), NonFiniteError),
    case(OPT, "kkt_report-y-short", lambda: cvxnn.kkt_report(solution(), X, Y[:-1], 0.1), ShapeError),
    case(OPT, "kkt_report-model-None", lambda: cvxnn.kkt_report(None, X, Y, 0.1), InvalidParameterError),
    case(OPT, "is_optimal-tol-nan", lambda: cvxnn.kkt_report(solution(), X, Y, 0.1).is_optimal(float("nan")),
         NonFiniteError),
    case(OPT, "optimal_set-fit_tol-nan", lambda: cvxnn.optimal_set(solution(), X, Y, fit_tol=float("nan")),
         NonFiniteError),
    case(OPT, "optimal_set-rank_tol-negative", lambda: cvxnn.optimal_set(solution(), X, Y, rank_tol=-1.0),
         InvalidParameterError),
    case(OPT, "prune_to_width-negative", lambda: cvxnn.optimality.prune_to_width(solution(), X, Y, -1),
         InvalidParameterError),
    case(OPT, "prune_to_width-2**70", lambda: cvxnn.optimality.prune_to_width(solution(), X, Y, 2**70),
         InvalidParameterError),
    case(OPT, "is_minimal-rank_tol-nan", lambda: cvxnn.optimality.is_minimal(solution(), X, rank_tol=float("nan")),
         NonFiniteError),
    case(OPT, "pruning_path-rank_tol-nan",
         lambda: cvxnn.optimality.pruning_path(solution(), X, Y, rank_tol=float("nan")), NonFiniteError),
]

PTH = "path"
PATH = [
    case(PTH, "lam_max-activation", lambda: cvxnn.lam_max(X, Y, PATS, activation="tanh"), InvalidParameterError),
    case(PTH, "lam_max-X-nan", lambda: cvxnn.lam_max(X_NAN, Y, PATS), NonFiniteError),
    case(PTH, "lam_max-other-data", lambda: cvxnn.lam_max(X + 1.0, Y, PATS), PatternMismatchError),
    case(PTH, "path-lams-strings", lambda: cvxnn.regularization_path(X, Y, PATS, lams=["a", "b"]),
         InvalidParameterError),
    case(PTH, "path-lams-None-entry", lambda: cvxnn.regularization_path(X, Y, PATS, lams=[0.1, None])),
    case(PTH, "path-lams-dict", lambda: cvxnn.regularization_path(X, Y, PATS, lams={"lam": 0.1})),
    case(PTH, "path-lams-empty", lambda: cvxnn.regularization_path(X, Y, PATS, lams=[]), InvalidParameterError),
    case(PTH, "path-lams-negative", lambda: cvxnn.regularization_path(X, Y, PATS, lams=[0.1, -1.0]),
         InvalidParameterError),
    case(PTH, "path-lams-nan", lambda: cvxnn.regularization_path(X, Y, PATS, lams=[float("nan")]), NonFiniteError),
    case(PTH, "path-n_lams-zero", lambda: cvxnn.regularization_path(X, Y, PATS, n_lams=0), InvalidParameterError),
    case(PTH, "path-n_lams-2**40", lambda: cvxnn.regularization_path(X, Y, PATS, n_lams=2**40),
         InvalidParameterError),
    case(PTH, "path-lam_min_ratio-nan", lambda: cvxnn.regularization_path(X, Y, PATS, lam_min_ratio=float("nan"))),
    case(PTH, "path-lam_min_ratio-above-one", lambda: cvxnn.regularization_path(X, Y, PATS, lam_min_ratio=2.0),
         InvalidParameterError),
    case(PTH, "path-backend-unknown", lambda: cvxnn.regularization_path(X, Y, PATS, lams=[0.1], backend="gpu"),
         InvalidParameterError),
]

DEC = "decomposition"
DECOMPOSITION = [
    case(DEC, "method-unknown", lambda: cvxnn.decompose(GATED, X, Y, lam=0.1, method="magic"), InvalidParameterError),
    case(DEC, "on_infeasible-unknown", lambda: cvxnn.decompose(GATED, X, Y, lam=0.1, on_infeasible="ignore"),
         InvalidParameterError),
    case(DEC, "model-None", lambda: cvxnn.decompose(None, X, Y, lam=0.1)),
    case(DEC, "relu-model", lambda: cvxnn.decompose(solution(), X, Y, lam=0.1)),
    case(DEC, "other-data", lambda: cvxnn.decompose(GATED, X + 1.0, Y, lam=0.1), PatternMismatchError),
    case(DEC, "X-nan", lambda: cvxnn.decompose(GATED, X_NAN, Y, lam=0.1), NonFiniteError),
    case(DEC, "lam-negative", lambda: cvxnn.decompose(GATED, X, Y, lam=-1.0), InvalidParameterError),
    case(DEC, "n_jobs-zero", lambda: cvxnn.decompose(GATED, X, Y, lam=0.1, n_jobs=0), InvalidParameterError),
    case(DEC, "solver-unknown", lambda: cvxnn.decompose(GATED, X, Y, lam=0.1, solver="nope"), InvalidParameterError),
    case(DEC, "chunk_size-zero", lambda: cvxnn.decompose(GATED, X, Y, lam=0.1, chunk_size=0), InvalidParameterError),
    case(DEC, "vector_mode-unknown", lambda: cvxnn.decompose(GATED, X, Y, lam=0.1, vector_mode="best"),
         InvalidParameterError),
    case(DEC, "X-sparse", lambda: cvxnn.decompose(GATED, sp.csr_matrix(X), Y, lam=0.1)),
    case(DEC, "y-short", lambda: cvxnn.decompose(GATED, X, Y[:-3], lam=0.1), ShapeError),
]


def _relax(**kw):
    from cvxnn.relaxations import copositive_relaxation

    args = {"lam": 0.1, "patterns": PATS, **kw}
    return copositive_relaxation(args.pop("X", X), args.pop("Y", np.c_[Y, -Y]), **args)


REL = "relaxations"
RELAXATIONS = [
    case(REL, "lam-negative", lambda: _relax(lam=-1.0), InvalidParameterError),
    case(REL, "lam-nan", lambda: _relax(lam=float("nan")), NonFiniteError),
    case(REL, "patterns-string", lambda: _relax(patterns="all"), InvalidParameterError),
    case(REL, "patterns-other-data", lambda: _relax(patterns=OTHER_PATS), PatternMismatchError),
    case(REL, "loss-scalar-only", lambda: _relax(loss="logistic"), InvalidParameterError),
    case(REL, "X-nan", lambda: _relax(X=X_NAN), NonFiniteError),
    case(REL, "Y-short", lambda: _relax(Y=np.ones((5, 2))), ShapeError),
    case(REL, "solver-unknown", lambda: _relax(solver="nope"), InvalidParameterError),
    case(REL, "require_optimal-string", lambda: _relax(require_optimal="yes"), InvalidParameterError),
    case(REL, "uncertified-with-require_optimal", lambda: _relax(solver="SCS", max_iters=3, require_optimal=True)),
]


def _model_file(tmp_path, name="m.npz"):
    return io.save(GATED, tmp_path / name)


def _edited(tmp_path, edit):
    src = _model_file(tmp_path, "src.npz")
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__cvxnn__"].tobytes())
    edit(meta, arrays)
    arrays["__cvxnn__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out = tmp_path / "edited.npz"
    np.savez(out, **arrays)
    return out


def _huge_member(tmp_path):
    src = _model_file(tmp_path, "src.npz")
    out = tmp_path / "huge.npz"
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            if info.filename != "U.npy":
                b.writestr(info.filename, a.read(info))
        text = repr({"descr": "<f8", "fortran_order": False, "shape": (10**11,)}).encode()
        text += b" " * (117 - len(text)) + b"\n"
        b.writestr("U.npy", b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text)
    return out


IO = "io"
IO_CASES = [
    case(IO, "load-folder", lambda tmp: io.load(tmp), FileFormatError),
    case(IO, "load-None", lambda tmp: io.load(None), InvalidParameterError),
    case(IO, "load-missing", lambda tmp: io.load(tmp / "missing.npz"), FileFormatError),
    case(IO, "load-text-file", lambda tmp: io.load(_write(tmp / "t.npz", b"hello")), FileFormatError),
    case(IO, "load-truncated", lambda tmp: io.load(_write(tmp / "c.npz", _model_file(tmp).read_bytes()[:200])),
         FileFormatError),
    case(IO, "load-huge-declared-shape", lambda tmp: io.load(_huge_member(tmp)), MemoryBudgetError),
    case(IO, "load-max_bytes", lambda tmp: io.load(_model_file(tmp), max_bytes=10), MemoryBudgetError),
    case(IO, "load-list-metadata", lambda tmp: io.load(_edited(tmp, lambda m, a: m.update(patterns=[]))),
         FileFormatError),
    case(IO, "load-inverted-mask", lambda tmp: io.load(_edited(
        tmp, lambda m, a: a.update(patterns_mask=~a["patterns_mask"]))), FileFormatError),
    case(IO, "load-wrong-kind", lambda tmp: io.load(_model_file(tmp), kind="estimator"), FileFormatError),
    case(IO, "save-unsupported-object", lambda tmp: io.save({"a": 1}, tmp / "x.npz"), InvalidParameterError),
    case(IO, "save-to-folder", lambda tmp: io.save(GATED, tmp), InvalidParameterError),
    case(IO, "save-missing-folder", lambda tmp: io.save(GATED, tmp / "no" / "x.npz"), InvalidParameterError),
    case(IO, "save-unfitted-estimator", lambda tmp: io.save(cvxnn.ConvexReLURegressor(), tmp / "e.npz"),
         InvalidParameterError),
    case(IO, "save-bad-metadata", lambda tmp: io.save(GATED, tmp / "m.npz", metadata={"f": object()}),
         InvalidParameterError),
]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


PAT = "patterns"
PATTERNS = [
    case(PAT, "sample-10**8-gates", lambda: cvxnn.sample_patterns(X, 10**8, memory_budget=2**30), MemoryBudgetError),
    case(PAT, "sample-n_gates-zero", lambda: cvxnn.sample_patterns(X, 0), InvalidParameterError),
    case(PAT, "sample-n_gates-bool", lambda: cvxnn.sample_patterns(X, True), InvalidParameterError),
    case(PAT, "sample-seed-negative", lambda: cvxnn.sample_patterns(X, 4, seed=-1), InvalidParameterError),
    case(PAT, "sample-bias-string", lambda: cvxnn.sample_patterns(X, 4, bias="no"), InvalidParameterError),
    case(PAT, "sample-X-sparse", lambda: cvxnn.sample_patterns(sp.csr_matrix(X), 4), InvalidParameterError),
    case(PAT, "enumerate-35x6-bias", lambda: cvxnn.enumerate_patterns(
        np.random.default_rng(0).standard_normal((35, 6)), bias=True), MemoryBudgetError),
    case(PAT, "enumerate-max_patterns-zero", lambda: cvxnn.enumerate_patterns(X, max_patterns=0),
         InvalidParameterError),
    case(PAT, "from_gates-nan", lambda: cvxnn.Patterns.from_gates(X, np.full((3, 2), np.nan))),
    case(PAT, "from_gates-wrong-rows", lambda: cvxnn.Patterns.from_gates(X, np.ones((5, 2))), ShapeError),
    case(PAT, "subset-out-of-range", lambda: PATS.subset([100]), ShapeError),
    case(PAT, "subset-float-index", lambda: PATS.subset([0.5]), InvalidParameterError),
]


CLI_CASES = [
    # (name, argv builder, owner or None); every case must exit non-zero with one stderr line
    ("fit-missing-file", lambda f: ["fit", f["missing"]], None),
    ("fit-folder", lambda f: ["fit", f["dir"]], None),
    ("fit-lam-negative", lambda f: ["fit", f["csv"], "--lam", "-1", "-o", f["out"]], None),
    ("fit-lam-nan", lambda f: ["fit", f["csv"], "--lam", "nan", "-o", f["out"]], None),
    ("fit-tol-nan", lambda f: ["fit", f["csv"], "--tol", "nan", "-o", f["out"]], None),
    ("fit-n-gates-zero", lambda f: ["fit", f["csv"], "--n-gates", "0", "-o", f["out"]], None),
    ("fit-max-iter-2**40", lambda f: ["fit", f["csv"], "--max-iter", str(2**40), "--backend", "cvxpy",
                                      "-o", f["out"]], None),
    ("fit-classification-continuous", lambda f: ["fit", f["csv"], "--task", "classification", "-o", f["out"]], None),
    ("fit-text-as-csv", lambda f: ["fit", f["text"], "-o", f["out"]], None),
    ("path-n-jobs-zero", lambda f: ["path", f["csv"], "--n-jobs", "0", "--n-lams", "2"], None),
    ("path-lams-garbage", lambda f: ["path", f["csv"], "--lams", "a,b"], None),
    ("predict-folder", lambda f: ["predict", f["dir"], f["csv"]], None),
    ("predict-not-a-model", lambda f: ["predict", f["text"], f["csv"]], None),
    ("prune-missing-model", lambda f: ["prune", f["missing"], f["csv"]], None),
    ("verify-rtol-nan", lambda f: ["verify", f["csv"], "--rtol", "nan"], None),
    ("fit-seed-negative", lambda f: ["fit", f["csv"], "--seed", "-1", "-o", f["out"]], None),
    ("fit-n-gates-2**40", lambda f: ["fit", f["csv"], "--n-gates", str(2**40), "-o", f["out"]], None),
    ("score-folder", lambda f: ["score", f["dir"], f["csv"]], None),
    ("unknown-command", lambda f: ["train", f["csv"]], None),
]


# ------------------------------------------------------------------------------- tests
CASES = {
    "builders": BUILDERS,
    "native": NATIVE,
    "estimators": ESTIMATORS,
    "maps": MAPS,
    "optimality": OPTIMALITY,
    "path": PATH,
    "decomposition": DECOMPOSITION,
    "relaxations": RELAXATIONS,
    "io": IO_CASES,
    "patterns": PATTERNS,
    "cli": CLI_CASES,
}


def _expect_typed_error(fn, error):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CvxnnError) as info:
            fn()
    assert isinstance(info.value, error), f"{type(info.value).__name__} is not a {error.__name__}: {info.value}"
    assert str(info.value).strip(), "the error has no message"


@pytest.mark.parametrize("entry, fn, error", BUILDERS + NATIVE + ESTIMATORS + MAPS + OPTIMALITY + PATH
                         + DECOMPOSITION + RELAXATIONS + PATTERNS)
def test_entry_point_refuses(entry, fn, error):
    _expect_typed_error(fn, error)


@pytest.mark.parametrize("entry, fn, error", IO_CASES)
def test_io_refuses(entry, fn, error, tmp_path):
    _expect_typed_error(lambda: fn(tmp_path), error)


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    csv = d / "data.csv"
    rows = (",".join(f"{v:.6f}" for v in (*row, t)) for row, t in zip(X, Y, strict=True))
    csv.write_text("a,b,c,y\n" + "\n".join(rows) + "\n")
    text = d / "notes.txt"
    text.write_text("this is not data\n")
    return {"dir": str(d), "csv": str(csv), "text": str(text), "missing": str(d / "missing.csv"),
            "out": str(d / "out.npz")}


@pytest.mark.parametrize("name, argv, owner", [
    pytest.param(n, a, o, id=f"cli-{n}", marks=[_xfail(o)] if o else []) for n, a, o in CLI_CASES
])
def test_cli_exits_cleanly(name, argv, owner, cli_files, capsys):
    from cvxnn.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(argv(cli_files))
        except SystemExit as exc:  # argparse refusals exit 2 with a usage line
            code = exc.code
    out, err = capsys.readouterr()
    assert code not in (0, None), f"exit code {code}; stdout {out[-200:]!r}"
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("usage:") and ln.strip()]
    assert len(lines) == 1, f"expected one error line, got {err!r}"


def test_case_counts():
    """Every public entry point has adversarial cases (the counts go in the closing notes)."""
    counts = {entry: len(cases) for entry, cases in CASES.items()}
    assert all(n >= 9 for n in counts.values()), counts
    assert sum(counts.values()) >= 150, counts
