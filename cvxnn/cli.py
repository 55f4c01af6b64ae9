"""Command line interface: ``cvxnn <command>`` (also ``python -m cvxnn``).

Commands
--------
demo
    Train a small C-ReLU network with Clarabel on the shipped teacher dataset and print the
    convex objective, the mapped network's objective (they agree), active neurons, status, time.
fit
    Fit a convex network on a CSV or NPZ data file; save the model (``.npz``, no pickle) and
    print (optionally write as JSON) a report.
path
    Regularisation path: fit a decreasing grid of ``lam`` (warm-started on the native
    backend) and print a table of objective, training score, active neurons and status.
prune
    Prune a saved model to a minimal one (exact pruning of MATH.md: same fit, same objective).
verify
    Solve the same program (same patterns) with the native solvers and with Clarabel, and
    compare objectives, predictions and statuses; exit status 1 when they disagree.

Data files: CSV with a header row (the target is the last column unless ``--target`` names
another), or NPZ with arrays ``X`` and ``y`` (``--x-key`` / ``--y-key``). Bad files, missing
columns, NaN and wrong shapes give a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["main", "load_data", "ProgressBar"]

logger = logging.getLogger(__name__)

def _cmd_demo(args: argparse.Namespace) -> int:
    from .builders import build_program
    from .datasets import load_teacher_regression
    from .patterns import sample_patterns

    X, y = load_teacher_regression()
    pats = sample_patterns(X, args.n_gates, seed=args.seed, bias=True)
    t0 = time.perf_counter()
    program = build_program(X, y, activation="relu", loss="squared", lam=args.lam, patterns=pats)
    sol = program.solve(solver="CLARABEL")
    elapsed = time.perf_counter() - t0
    net = sol.to_network(tol=1e-7)
    nc_obj = net.objective(X, y, args.lam)
    rel = abs(nc_obj - sol.objective_value) / max(1.0, abs(sol.objective_value))
    out = sys.stdout
    print("cvxnn demo: convex training of a two-layer ReLU network (C-ReLU, Clarabel)", file=out)
    print(f"data                    : teacher_regression, n={X.shape[0]}, d={X.shape[1]} (+ bias)", file=out)
    print(f"patterns                : {pats.n_patterns} sampled (seed {args.seed})", file=out)
    print(f"lam                     : {args.lam}", file=out)
    print(f"solver status           : {sol.status}", file=out)
    print(f"convex objective        : {sol.objective_value:.10f}", file=out)
    print(f"non-convex objective    : {nc_obj:.10f}  (mapped network)", file=out)
    print(f"relative difference     : {rel:.2e}", file=out)
    print(f"active neurons          : {net.n_neurons}", file=out)
    print(f"max cone violation      : {sol.max_violation:.2e}", file=out)
    print(f"build + solve time      : {elapsed:.3f} s (compile {sol.compile_time:.3f} s)", file=out)
    r2 = 1 - np.sum((net.predict(X) - y) ** 2) / np.sum((y - y.mean()) ** 2)
    print(f"training R^2            : {r2:.4f}", file=out)
    return 0 if sol.converged and rel < 1e-6 else 1


# ------------------------------------------------------------------------------- data files
def _parse_float(text: str, row: int, col: str, path) -> float:
    from .errors import NonFiniteError, ShapeError

    t = text.strip()
    if t == "" or t.lower() in ("nan", "na", "null", "none"):
        raise NonFiniteError(f"{path}: missing value (NaN) in row {row}, column {col!r}; "
                             "remove or impute it.")
    try:
        v = float(t)
    except ValueError:
        raise ShapeError(f"{path}: non-numeric value {t!r} in row {row}, column {col!r}.") from None
    if not np.isfinite(v):
        raise NonFiniteError(f"{path}: non-finite value {t!r} in row {row}, column {col!r}.")
    return v


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_csv(path: Path, target, labels: bool):
    from .errors import FileFormatError, InvalidParameterError, ShapeError

    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path}: not a text CSV file ({exc}).") from exc
    except csv.Error as exc:
        raise FileFormatError(f"{path}: malformed CSV ({exc}).") from exc
    if not rows:
        raise ShapeError(f"{path}: the file holds no data.")
    if all(_is_number(c) for c in rows[0]):
        header = [f"col{j}" for j in range(len(rows[0]))]
    else:
        header = [c.strip() for c in rows[0]]
        rows = rows[1:]
    if len(header) < 2:
        raise ShapeError(f"{path}: need at least two columns (features and a target), got {header}.")
    if not rows:
        raise ShapeError(f"{path}: a header but no data rows.")
    for k, r in enumerate(rows):
        if len(r) != len(header):
            raise ShapeError(f"{path}: row {k + 1} has {len(r)} fields, the header has {len(header)}.")
    if target is None:
        t = len(header) - 1
    elif target in header:
        t = header.index(target)
    elif isinstance(target, str) and target.lstrip("-").isdigit() and -len(header) <= int(target) < len(header):
        t = int(target) % len(header)
    else:
        raise InvalidParameterError(f"{path}: no column {target!r}; columns are {header}.")
    feats = [j for j in range(len(header)) if j != t]
    X = np.array([[_parse_float(r[j], k + 1, header[j], path) for j in feats] for k, r in enumerate(rows)])
    raw_y = [r[t].strip() for r in rows]
    if labels and not all(_is_number(v) for v in raw_y):
        if any(v == "" for v in raw_y):
            raise ShapeError(f"{path}: missing label in column {header[t]!r}.")
        y = np.array(raw_y)
    else:
        y = np.array([_parse_float(v, k + 1, header[t], path) for k, v in enumerate(raw_y)])
    return X, y, [header[j] for j in feats], header[t]


def _load_npz(path: Path, x_key: str, y_key: str):
    from .errors import FileFormatError, InvalidParameterError

    try:
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.files)
            for key in (x_key, y_key):
                if key not in keys:
                    raise InvalidParameterError(f"{path}: no array {key!r}; arrays are {keys} "
                                                "(choose them with --x-key / --y-key).")
            X, y = np.array(data[x_key]), np.array(data[y_key])
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, InvalidParameterError):
            raise
        raise FileFormatError(f"{path}: not a readable .npz file without pickled objects ({exc}).") from exc
    except AttributeError:
        raise FileFormatError(f"{path}: a single .npy array; save X and y with np.savez.") from None
    return X, y, [f"x{j}" for j in range(X.shape[1] if X.ndim == 2 else 0)], y_key


def load_data(path, *, target: str | None = None, x_key: str = "X", y_key: str = "y",
              labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Load ``(X, y)`` from a CSV (header row optional) or NPZ file, validated.

    Parameters
    ----------
    path : str or path-like
        ``.npz`` (arrays ``x_key`` and ``y_key``) or a CSV text file.
    target : str, optional
        CSV target column, by name or (negative) index; default the last column.
    x_key, y_key : str
        Array names in an NPZ file.
    labels : bool
        Targets are class labels (non-numeric CSV labels are kept as strings).

    Returns
    -------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,)

    Raises
    ------
    FileFormatError, ShapeError, NonFiniteError, InvalidParameterError
        With the file, row and column of the problem.
    """
    from ._validation import check_X, check_y
    from .errors import FileFormatError, ShapeError

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file.")
    if path.suffix.lower() == ".npz":
        X, y, _, _ = _load_npz(path, x_key, y_key)
    else:
        X, y, _, _ = _load_csv(path, target, labels)
    if X.ndim != 2:
        raise ShapeError(f"{path}: X must be 2-D (n_samples, n_features), got shape {X.shape}.")
    X = check_X(X, name=f"X in {path.name}")
    if y.ndim != 1:
        raise ShapeError(f"{path}: y must be 1-D with one target per sample, got shape {y.shape}.")
    if y.dtype.kind in "biuf":
        y = check_y(y, X.shape[0], name=f"y in {path.name}", allow_matrix=False)
    elif y.shape[0] != X.shape[0]:
        raise ShapeError(f"{path}: y has {y.shape[0]} entries but X has {X.shape[0]} rows.")
    return X, y


# ---------------------------------------------------------------------------- progress bar
class ProgressBar:
    """A dependency-free text progress bar on ``stderr``.

    Parameters
    ----------
    total : int
        Number of steps.
    label : str
        Text before the bar.
    enabled : bool
        Draw at all (the CLI enables it when ``stderr`` is a terminal, or with
        ``--progress always``).
    stream : file-like, optional
        Defaults to ``sys.stderr``.
    width : int
        Characters of the bar.
    min_interval : float
        Seconds between redraws (the last step is always drawn).
    """

    def __init__(self, total: int, label: str = "", *, enabled: bool = True, stream=None,
                 width: int = 28, min_interval: float = 0.1) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.count = 0
        self.t0 = time.perf_counter()
        self.min_interval = min_interval
        self._last = -float("inf")

    def update(self, steps: int = 1, note: str = "") -> None:
        """Advance by ``steps`` and redraw (with an optional note after the bar)."""
        self.count = min(self.total, self.count + steps)
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.count < self.total and now - self._last < self.min_interval:
            return  # redraw at most every min_interval seconds
        self._last = now
        filled = int(self.width * self.count / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.t0
        self.stream.write(f"\r{self.label} [{bar}] {self.count}/{self.total} {elapsed:6.1f}s {note}")
        self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "ProgressBar":
        if self.enabled:
            self.update(0)
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _progress_enabled(args) -> bool:
    mode = getattr(args, "progress", "auto")
    return mode == "always" or (mode == "auto" and sys.stderr.isatty())


# -------------------------------------------------------------------------- model options
def _is_classification(args) -> bool:
    return args.task == "classification"


def _estimator_from_args(args, *, backend: str | None = None, gates=None):
    from . import estimators as E

    clf = _is_classification(args)
    if args.activation == "relu":
        cls = E.ConvexReLUClassifier if clf else E.ConvexReLURegressor
    else:
        cls = E.ConvexGatedReLUClassifier if clf else E.ConvexGatedReLURegressor
    loss = args.loss or ("logistic" if clf else "squared")
    if backend is None:
        backend = "native" if args.backend == "native" else args.solver
    return cls(lam=args.lam, n_gates=args.n_gates, gates=gates, backend=backend, loss=loss,
               bias=not args.no_bias, tol=args.tol, max_iter=args.max_iter,
               random_state=args.seed, verbose=args.verbose >= 2)


def _data_from_args(args):
    return load_data(args.data, target=args.target, x_key=args.x_key, y_key=args.y_key,
                     labels=_is_classification(args))


def _report(est, X, y, args) -> dict:
    sol = est.solution_
    rep = {
        "estimator": type(est).__name__,
        "data": str(args.data),
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "n_patterns": int(est.patterns_.n_patterns),
        "lam": float(est.lam),
        "loss": sol.loss.name if sol.loss is not None else None,
        "backend": sol.backend,
        "solver": sol.solver,
        "status": est.status_,
        "objective": est.objective_,
        "gap": est.gap_,
        "iterations": est.n_iter_,
        "active_neurons": est.n_active_neurons_,
        "max_cone_violation": sol.max_violation,
        "fit_time_s": est.fit_time_,
        "train_score": float(est.score(X, y)),
        "score_name": "accuracy" if _is_classification(args) else "R^2",
    }
    return rep


def _print_report(rep: dict, out) -> None:
    width = max(len(k) for k in rep)
    for key, value in rep.items():
        if isinstance(value, float):
            value = f"{value:.10g}"
        print(f"{key.ljust(width)} : {value}", file=out)


# ---------------------------------------------------------------------------------- fit
def _cmd_fit(args: argparse.Namespace) -> int:
    from . import io

    X, y = _data_from_args(args)
    est = _estimator_from_args(args)
    if args.backend == "native":
        # the native solvers report every iteration: a bar over the iteration limit
        with ProgressBar(args.max_iter, "fit", enabled=_progress_enabled(args)) as bar:
            def step(info: dict) -> None:
                if info.get("iteration", 0) % 25 == 0:
                    bar.count = min(int(info["iteration"]), bar.total) - 1
                    gap = info.get("rel_gap")
                    bar.update(note="" if gap is None else f"rel. gap {gap:.2e}")

            est._fit(X, y, callback=step)
    else:
        est.fit(X, y)
    rep = _report(est, X, y, args)
    output = Path(args.output) if args.output else Path(args.data).with_suffix(".model.npz")
    written = io.save(est, output, metadata={"command": "fit", "data": str(args.data),
                                             "target": args.target, "task": args.task})
    rep["model_file"] = str(written)
    _print_report(rep, sys.stdout)
    if args.report:
        Path(args.report).write_text(json.dumps(rep, indent=2, sort_keys=True) + "\n")
    return 0 if est.status_ == "optimal" else 1


# --------------------------------------------------------------------------------- verify
def _cmd_verify(args: argparse.Namespace) -> int:
    X, y = _data_from_args(args)
    runs = []
    with ProgressBar(2, "verify", enabled=_progress_enabled(args)) as bar:
        native = _estimator_from_args(args, backend="native").fit(X, y)
        bar.update(note="native")
        # the same patterns for the reference: re-use the native run's gates
        ref = _estimator_from_args(args, backend="clarabel", gates=native.patterns_.gates)
        ref.set_params(max_iter=max(args.max_iter, 1000))  # --max-iter limits the native solver
        ref.fit(X, y)
        bar.update(note="clarabel")
    runs = [("native", native), ("clarabel", ref)]
    out = sys.stdout
    print(f"{'backend':<10} {'status':<20} {'objective':>20} {'neurons':>8} {'time [s]':>10}", file=out)
    for name, est in runs:
        print(f"{name:<10} {est.status_:<20} {est.objective_:>20.12g} {est.n_active_neurons_:>8d} "
              f"{est.fit_time_:>10.4f}", file=out)
    obj_rel = abs(native.objective_ - ref.objective_) / max(1.0, abs(ref.objective_))
    fit_n = native.solution_.train_predict(X)
    fit_r = ref.solution_.train_predict(X)
    pred_rel = float(np.max(np.abs(fit_n - fit_r)) / max(1.0, float(np.max(np.abs(fit_r)))))
    ok = obj_rel <= args.rtol and native.status_ == "optimal" and ref.status_ == "optimal"
    print(f"relative objective difference : {obj_rel:.3e}  (rtol {args.rtol:g})", file=out)
    print(f"relative fit difference       : {pred_rel:.3e}", file=out)
    if native.gap_ is not None:
        print(f"native certified gap          : {native.gap_:.3e}", file=out)
    print(f"verdict                       : {'AGREE' if ok else 'DISAGREE'}", file=out)
    return 0 if ok else 1


# ----------------------------------------------------------------------------------- path
def _encoded_targets(est, y):
    """Targets and loss as the estimator's solver sees them (``+-1`` / one-hot for classifiers)."""
    if not hasattr(est, "_loss_for"):
        return np.asarray(y, dtype=float), est._loss()
    classes, inverse = np.unique(y, return_inverse=True)
    loss = est._loss_for(classes.size)
    y_enc = np.where(inverse == 1, 1.0, -1.0) if classes.size == 2 else np.eye(classes.size)[inverse]
    return y_enc, loss


def _path_segment(est, X, y, lams, on_step=None) -> list[dict]:
    """Fit a copy of ``est`` for each ``lam`` (in the order given, decreasing), warm-started
    on the native backend; one table row per ``lam``."""
    import copy
    import warnings

    from .path import walk_path

    est = copy.deepcopy(est)

    def fit(lam, warm):
        est.set_params(lam=lam)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the status column shows non-convergence
            est._fit(X, y, warm_start=warm if est.backend == "native" else None)
        return est.solution_

    rows = []
    for step in walk_path(lams, fit):
        lam = step.lam
        rows.append({"lam": float(lam), "objective": est.objective_, "score": float(est.score(X, y)),
                     "neurons": est.n_active_neurons_, "status": est.status_,
                     "iterations": est.n_iter_, "time_s": est.fit_time_})
        if on_step is not None:
            on_step(rows[-1])
    return rows


def _cmd_path(args: argparse.Namespace) -> int:
    from ._validation import check_lam, check_positive_int
    from .errors import InvalidParameterError
    from .estimators import _make_patterns

    X, y = _data_from_args(args)
    est = _estimator_from_args(args)
    lam_max = None
    if args.lams:
        try:
            values = [float(v) for v in args.lams.split(",")]
        except ValueError:
            raise InvalidParameterError(f"--lams must be comma-separated numbers, got {args.lams!r}.") from None
        lams = np.array(sorted((check_lam(v, name="--lams") for v in values), reverse=True))
    else:
        n_lams = check_positive_int(args.n_lams, "--n-lams")
        if not 0 < args.lam_min_ratio < 1:
            raise InvalidParameterError(f"--lam-min-ratio must be in (0, 1), got {args.lam_min_ratio}.")
        from .path import lam_max as exact_lam_max

        y_enc, loss = _encoded_targets(est, y)
        activation = est._activation if y_enc.ndim == 1 else "gated_relu"  # vector: C-GReLU bound
        lam_max = exact_lam_max(X, y_enc, _make_patterns(est, X), activation, loss)
        lams = lam_max * np.geomspace(1.0, args.lam_min_ratio, n_lams)
    n_jobs = 1 if args.n_jobs is None else int(args.n_jobs)
    rows: list[dict] = []
    with ProgressBar(lams.size, "path", enabled=_progress_enabled(args)) as bar:
        if n_jobs == 1:
            rows = _path_segment(est, X, y, lams,
                                 on_step=lambda r: bar.update(note=f"lam={r['lam']:.3g}"))
        else:
            from joblib import Parallel, cpu_count, delayed

            workers = cpu_count() if n_jobs < 0 else n_jobs
            segments = [s for s in np.array_split(lams, min(workers, lams.size)) if s.size]
            # native solves spend their time in BLAS calls that release the GIL: threads share
            # the data without copies; CVXPY solves run in worker processes.
            prefer = "threads" if est.backend == "native" else "processes"
            gen = Parallel(n_jobs=n_jobs, return_as="generator", prefer=prefer)(
                delayed(_path_segment)(est, X, y, seg) for seg in segments)
            for seg_rows in gen:
                rows.extend(seg_rows)
                bar.update(len(seg_rows))
    out = sys.stdout
    score = "accuracy" if _is_classification(args) else "R^2"
    if lam_max is not None:
        print(f"lam_max = {lam_max:.6g}; {lams.size} values down to "
              f"{args.lam_min_ratio:g} * lam_max", file=out)
    print(f"{'lam':>12} {'objective':>16} {score:>9} {'neurons':>8} {'status':<18} {'iters':>7} "
          f"{'time [s]':>9}", file=out)
    for r in rows:
        it = "-" if r["iterations"] is None else str(r["iterations"])
        print(f"{r['lam']:>12.5g} {r['objective']:>16.10g} {r['score']:>9.4f} {r['neurons']:>8d} "
              f"{r['status']:<18} {it:>7} {r['time_s']:>9.4f}", file=out)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0 if all(r["status"] == "optimal" for r in rows) else 1


# ---------------------------------------------------------------------------------- prune
def _cmd_prune(args: argparse.Namespace) -> int:
    from . import io
    from .errors import InvalidParameterError
    from .optimality import prune_exact, pruning_path

    obj = io.load(args.model, kind=("estimator", "solution"))
    est = obj if hasattr(obj, "solution_") else None
    sol = est.solution_ if est is not None else obj
    if sol.lam is None or sol.loss is None:
        raise InvalidParameterError(f"{args.model}: the solution has no lam/loss (constrained form); "
                                    "pruning needs a regularized solution.")
    labels = est is not None and hasattr(est, "classes_")
    X, y = load_data(args.data, target=args.target, x_key=args.x_key, y_key=args.y_key, labels=labels)
    sol.patterns.check_data(X)
    y_enc = _encoded_targets(est, y)[0] if est is not None else np.asarray(y, dtype=float)
    lam, loss = float(sol.lam), sol.loss
    before = sol.objective(X, y_enc, lam, loss)
    out = sys.stdout
    print(f"model                 : {args.model} ({sol.activation}, lam={lam:g}, {loss.name} loss)", file=out)
    if args.width is None:
        with ProgressBar(1, "prune", enabled=_progress_enabled(args)) as bar:
            res = prune_exact(sol, X)
            bar.update(note=f"{res.n_before} -> {res.n_after} blocks")
        pruned = res.model
        print(f"active blocks before  : {res.n_before}", file=out)
        print(f"blocks after (minimal): {res.n_after}", file=out)
        print(f"relative fit change   : {res.fit_change:.3e}", file=out)
    else:
        from ._validation import check_positive_int

        width = check_positive_int(args.width, "--width", minimum=0)
        n_start = sol.n_active()
        with ProgressBar(max(n_start - width, 1) + 1, "prune", enabled=_progress_enabled(args)) as bar:
            def tick(model) -> float:
                bar.update(note=f"{model.n_active()} blocks")
                return float("nan")

            path = pruning_path(sol, X, y_enc, lam, loss, min_width=width, score=tick)
        print(f"{'step':>5} {'kind':<12} {'blocks':>7} {'objective':>18} {'increase':>12}", file=out)
        for k, step in enumerate(path.steps):
            print(f"{k:>5} {step.kind:<12} {step.width:>7d} {step.objective:>18.12g} {step.increase:>12.3e}",
                  file=out)
        pruned = path.model_at_width(width)
    after = pruned.objective(X, y_enc, lam, loss)
    print(f"objective before      : {before:.12g}", file=out)
    print(f"objective after       : {after:.12g}", file=out)
    print(f"relative change       : {abs(after - before) / max(1.0, abs(before)):.3e}", file=out)
    print(f"neurons of the network: {pruned.to_network().n_neurons}", file=out)
    output = Path(args.output) if args.output else Path(args.model).with_suffix(".pruned.npz")
    written = io.save(pruned, output, metadata={"command": "prune", "source": str(args.model),
                                                "lam": lam, "loss": loss.name, "width": args.width})
    print(f"saved                 : {written}", file=out)
    return 0


# --------------------------------------------------------------------------------- parser
def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="CSV (header row; target = last column) or NPZ (arrays X, y)")
    p.add_argument("--target", default=None, help="CSV target column name or index (default: last)")
    p.add_argument("--x-key", default="X", help="NPZ array with the features (default X)")
    p.add_argument("--y-key", default="y", help="NPZ array with the targets (default y)")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", choices=("regression", "classification"), default="regression",
                   help="regression (real targets) or classification (labels); default regression")
    p.add_argument("--activation", choices=("relu", "gated_relu"), default="relu",
                   help="C-ReLU (default) or C-GReLU")
    p.add_argument("--loss", default=None,
                   help="squared | huber | absolute (regression), logistic | squared | hinge "
                        "(classification); default squared / logistic")
    p.add_argument("--lam", type=float, default=0.1, help="regularisation strength (default 0.1)")
    p.add_argument("--n-gates", type=int, default=100, help="gates to sample (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the gates (default 0)")
    p.add_argument("--no-bias", action="store_true", help="no bias column (default: penalised bias)")
    p.add_argument("--backend", choices=("native", "cvxpy"), default="native",
                   help="native solvers (default) or CVXPY")
    p.add_argument("--solver", default="clarabel",
                   help="CVXPY solver with --backend cvxpy: clarabel (default), scs, ...")
    p.add_argument("--tol", type=float, default=1e-6, help="native relative tolerance (default 1e-6)")
    p.add_argument("--max-iter", type=int, default=10_000, help="iteration limit (default 10000)")


def _add_progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr (auto: when stderr is a terminal)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cvxnn", description="Two-layer networks by convex optimization.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v, -vv)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small C-ReLU network on shipped data")
    demo.add_argument("--lam", type=float, default=0.1, help="regularisation strength (default 0.1)")
    demo.add_argument("--n-gates", type=int, default=40, help="gates to sample (default 40)")
    demo.add_argument("--seed", type=int, default=0, help="seed for the gates (default 0)")
    demo.set_defaults(func=_cmd_demo)

    fit = sub.add_parser("fit", help="fit a model on a CSV/NPZ file; save it and print a report")
    _add_data_options(fit)
    _add_model_options(fit)
    fit.add_argument("-o", "--output", default=None, help="model file (default DATA.model.npz)")
    fit.add_argument("--report", default=None, help="also write the report as JSON here")
    _add_progress_option(fit)
    fit.set_defaults(func=_cmd_fit)

    path = sub.add_parser("path", help="regularisation path table (warm-started)")
    _add_data_options(path)
    _add_model_options(path)
    path.add_argument("--n-lams", type=int, default=10, help="grid size (default 10)")
    path.add_argument("--lam-min-ratio", type=float, default=1e-3,
                      help="smallest lam as a fraction of lam_max (default 1e-3)")
    path.add_argument("--lams", default=None, help="explicit comma-separated grid (overrides --n-lams)")
    path.add_argument("--n-jobs", type=int, default=1,
                      help="parallel segments of the grid via joblib (-1: all cores; default 1)")
    path.add_argument("--csv", default=None, help="also write the table as CSV here")
    _add_progress_option(path)
    path.set_defaults(func=_cmd_path)

    prune = sub.add_parser("prune", help="prune a saved model to a minimal one (same objective)")
    prune.add_argument("model", help="model file written by 'cvxnn fit' (or cvxnn.io.save)")
    _add_data_options(prune)
    prune.add_argument("--width", type=int, default=None,
                       help="prune past minimal, approximately, down to this many blocks "
                            "(default: exact pruning to a minimal model)")
    prune.add_argument("-o", "--output", default=None, help="pruned model file (default MODEL.pruned.npz)")
    _add_progress_option(prune)
    prune.set_defaults(func=_cmd_prune)

    verify = sub.add_parser("verify", help="solve with native and Clarabel on the same patterns; compare")
    _add_data_options(verify)
    _add_model_options(verify)
    verify.add_argument("--rtol", type=float, default=1e-5,
                        help="largest relative objective difference accepted (default 1e-5)")
    _add_progress_option(verify)
    verify.set_defaults(func=_cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cvxnn`` console script; returns the exit status.

    Exit status: 0 success, 1 the computation finished but did not certify (not converged,
    backends disagree), 2 a usage, data or solver error (one line on stderr).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    import warnings

    from .errors import CvxnnError

    def show(message, category, filename, lineno, file=None, line=None):  # one line per warning
        print(f"cvxnn: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return int(args.func(args))
    except CvxnnError as exc:
        print(f"cvxnn: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cvxnn: error: {exc}", file=sys.stderr)
        return 2
