"""Command line interface: ``cvxnn <command>`` (also ``python -m cvxnn``).

Commands
--------
demo
    Train a small C-ReLU network with Clarabel on the shipped teacher dataset and print the
    convex objective, the mapped network's objective (they agree), active neurons, status, time.
fit
    Fit a convex network on a CSV or NPZ data file (columns standardized by default, the model
    mapped back to raw data exactly); save the model (``.npz``, no pickle, with the feature
    names and target) and print (optionally write as JSON) a report.
predict
    Predictions (labels for classifiers, ``--proba`` for probabilities) of a saved model on a
    data file, as CSV; columns are matched by the stored feature names.
score
    Accuracy or ``R^2`` of a saved model on labelled data.
path
    Regularisation path: fit a decreasing grid of ``lam`` (warm-started) and print a table of
    objective, training and validation score (held-out fraction or ``--cv``), active neurons
    and status; with matplotlib installed, also a plot.
prune
    Prune a saved model to a minimal one (exact pruning, docs/math.md: same fit, same
    objective); the pruned file is again a model that ``predict`` and ``score`` accept.
verify
    Solve the same program (same patterns) with the native solvers and with Clarabel, and
    compare objectives, predictions and statuses; exit status 1 when they disagree.

Data files: CSV (the target is the last column unless ``--target`` names another; the first row
is a header when it holds only names, data when it holds only numbers, and otherwise
``--header`` / ``--no-header`` must say which), or NPZ with arrays ``X`` and ``y``
(``--x-key`` / ``--y-key``; for regression ``y`` may be ``n x c``, several outputs). Bad files,
missing columns, NaN and wrong shapes give a one-line error and exit status 2; Ctrl-C prints one
line and exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import warnings
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
    # neurons whose output on the data is below rounding (a solver's ~1e-20 blocks when lam is
    # above lam_max) do not count as active: the relative tol above cannot drop them
    scale = max(1.0, float(np.abs(y).max(initial=0.0)))
    contribution = np.abs(net.hidden(X)).max(axis=0, initial=0.0) * np.abs(net.w2)
    n_active = int(np.count_nonzero(contribution > 1e-12 * scale))
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
    print(f"active neurons          : {n_active}", file=out)
    print(f"max cone violation      : {sol.max_violation:.2e}", file=out)
    print(f"build + solve time      : {elapsed:.3f} s (compile {sol.compile_time:.3f} s)", file=out)
    r2 = 1 - np.sum((net.predict(X) - y) ** 2) / np.sum((y - y.mean()) ** 2)
    print(f"training R^2            : {r2:.4f}", file=out)
    return 0 if sol.converged and _uncertified_gap(sol) is None and rel < 1e-6 else 1


# ------------------------------------------------------------------------------- data files
#: Cells read as missing values, in features and labels alike (pandas reads them as NaN too).
_MISSING = ("nan", "na", "n/a", "null", "none")


def _parse_float(text: str, row: int, col: str, path) -> float:
    from .errors import NonFiniteError, ShapeError

    t = text.strip()
    if t == "" or t.lower() in _MISSING:
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


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _numeric_labels(texts: np.ndarray) -> np.ndarray | None:
    """Class labels written as numbers: int64 when every one is an integer literal (a float cast
    merges ``10**18`` and ``10**18 + 1``, and ``predict`` would write ``1.0`` for the label
    ``1``), float64 otherwise; None when one is not a finite number, or an integer beyond int64
    (then kept as text by :func:`_integer_texts`, so that no two labels merge)."""
    texts = np.char.strip(np.asarray(texts, dtype=str))
    if all(_INTEGER.fullmatch(t) for t in texts.tolist()):
        try:
            return np.array([int(t) for t in texts.tolist()], dtype=np.int64)
        except OverflowError:
            return None
    try:
        values = texts.astype(np.float64)
    except ValueError:
        return None
    return values if np.all(np.isfinite(values)) else None


def _integer_texts(texts) -> np.ndarray:
    """Integer labels beyond int64 as text in one canonical form (``+1``, ``01`` and ``1`` are
    one label, as they are in an int64 column)."""
    return np.array([str(int(t)) for t in texts])


def _first_row(path: Path) -> tuple[list[str] | None, int]:
    """Cells of the first non-blank line and its 0-based line number (``None, -1`` if none)."""
    from .errors import FileFormatError

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            for i, line in enumerate(fh):
                cells = next(csv.reader([line]), [])
                if cells and any(c.strip() for c in cells):
                    return cells, i
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path}: not a text CSV file ({exc}).") from exc
    except csv.Error as exc:
        raise FileFormatError(f"{path}: malformed CSV ({exc}).") from exc
    return None, -1


def _positional(name, ncols: int) -> int | None:
    """Index ``j`` of the name ``"col<j>"`` the CLI gives column ``j`` of a file without a
    header (None for any other name, or ``j >= ncols``)."""
    if isinstance(name, str) and name.startswith("col") and name[3:].isdigit():
        j = int(name[3:])
        return j if j < ncols else None
    return None


def _target_index(target, names: list[str] | None, ncols: int, path) -> int | None:
    """Column index of ``target`` (name, index, or None = last); None if it is a name and the
    file has no header (except ``"col<j>"``, the name of column ``j`` of a file without one)."""
    from .errors import InvalidParameterError

    if target is None:
        return ncols - 1
    if names is not None and target in names:
        return names.index(target)
    if isinstance(target, str) and target.lstrip("-").isdigit() and -ncols <= int(target) < ncols:
        return int(target) % ncols
    if names is None:
        return _positional(target, ncols)
    raise InvalidParameterError(f"{path}: no column {target!r}; columns are {names}.")


def _label_recurs(path, line: int, t: int, label: str) -> bool | None:
    """Whether ``label`` is in column ``t`` of a row after line ``line`` (None: no such row)."""
    seen = False
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for k, row in enumerate(csv.reader(fh)):
            if k <= line or not row or not any(c.strip() for c in row):
                continue
            seen = True
            if len(row) > t and row[t].strip() == label:
                return True
    return False if seen else None


def _detect_header(cells: list[str], header: bool | None, path, target, labels: bool,
                   target_position: int | None = None, *, line: int = 0, features=None,
                   known_labels=None) -> bool:
    """Whether the first row is a header: as ``header`` says, or decided only when unambiguous.

    A row of names (no numbers, no empty cells), or one with text that holds every feature name
    of the model (``features``), is a header; a row of numbers (and empty cells, i.e. missing values)
    is data, except ``0,1,...,k-1`` (the column numbers written by ``DataFrame.to_csv``), which
    is refused as ambiguous; a row mixing numbers and text is data only when the text is in the
    label column of a classification, except that integers over a label that no later row has
    and that is none of the model's classes (``known_labels``) may be feature names over the
    label column's name (``400,410,420,species``: wavelengths) and are refused as ambiguous;
    any other mix is refused too. The label
    column is ``target``'s (an index, ``"col<j>"`` or None = last); a target given by a name
    that a header-less row cannot hold is looked for at ``target_position`` (its column in the
    file a model was fitted on). ``line`` is the row's line in the file.
    """
    from .errors import FileFormatError

    if header is not None:
        return bool(header)
    stripped = [c.strip() for c in cells]
    numeric = [_is_number(c) for c in stripped]
    empty = [c == "" for c in stripped]
    if (features is not None and len(features) > 0 and not all(numeric)
            and set(map(str, features)) <= set(stripped)):
        return True  # a model's (numeric) feature names over a label name; a row of numbers stays data
    if not any(numeric) and not any(empty):
        return True
    shown = ",".join(stripped[:6]) + (",..." if len(stripped) > 6 else "")
    if all(numeric):
        if len(stripped) > 1 and [float(c) for c in stripped] == list(range(len(stripped))):
            raise FileFormatError(
                f"{path}: the first row ({shown}) looks like a header of column numbers, as "
                "DataFrame.to_csv writes; pass --header to skip it or --no-header to use it as data."
            )
        return False
    text = [j for j in range(len(stripped)) if not numeric[j] and not empty[j]]
    if not text:
        return False  # numbers and empty cells: a data row with missing values
    t = _target_index(target, None, len(stripped), path)
    if t is None and target_position is not None and 0 <= target_position < len(stripped):
        t = target_position
    if labels and t is not None and text == [t]:
        rest = [float(stripped[j]) for j in range(len(stripped)) if j != t and not empty[j]]
        if len(rest) == len(stripped) - 1 and len(rest) > 1 and rest == list(range(len(rest))):
            raise FileFormatError(
                f"{path}: the first row ({shown}) looks like a header of column numbers and a label "
                "name, as DataFrame.to_csv writes; pass --header to skip it or --no-header to use it "
                "as data."
            )
        label = stripped[t]
        if known_labels is not None and label in known_labels:
            return False
        names_like = all(_INTEGER.fullmatch(stripped[j]) for j in range(len(stripped)) if j != t and not empty[j])
        if names_like and _label_recurs(path, line, t, label) is False:
            raise FileFormatError(
                f"{path}: cannot tell whether the first row ({shown}) is a header: its label {label!r} is "
                "in no other row, so it may be the name of the label column over numeric feature names; "
                "pass --header or --no-header."
            )
        return False  # a data row whose label is text
    raise FileFormatError(
        f"{path}: cannot tell whether the first row ({shown}) is a header: it mixes names, numbers "
        "or empty cells; pass --header or --no-header."
    )


def _slow_csv(path: Path, skip_line: int, header: bool, ncols_names: list[str], t: int | None,
              feats: list[int], labels: bool):
    """Cell-by-cell reader: precise messages (data row and column) for the first bad cell."""
    from .errors import FileFormatError, ShapeError

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = fh.readlines()[skip_line + int(header):]
        rows = [r for r in csv.reader(lines) if r and any(c.strip() for c in r)]
    except csv.Error as exc:
        raise FileFormatError(f"{path}: malformed CSV ({exc}).") from exc
    names = ncols_names
    for k, r in enumerate(rows):
        if len(r) != len(names):
            what = "the header has" if header else "the first row has"
            raise ShapeError(f"{path}: row {k + 1} has {len(r)} fields, {what} {len(names)}.")
    X = np.array([[_parse_float(r[j], k + 1, names[j], path) for j in feats] for k, r in enumerate(rows)])
    y = None
    if t is not None:
        raw_y = [r[t].strip() for r in rows]
        if labels and (labels == "text" or not all(_is_number(v) for v in raw_y)):
            missing = [k + 1 for k, v in enumerate(raw_y) if v == "" or v.lower() in _MISSING]
            if missing:
                raise ShapeError(f"{path}: missing label in row {missing[0]}, column {names[t]!r}.")
            y = np.array(raw_y)
        elif labels and raw_y and all(_INTEGER.fullmatch(v) for v in raw_y):
            numbers = _numeric_labels(np.array(raw_y))  # int64, or text beyond it (so that none merge)
            y = _integer_texts(raw_y) if numbers is None else numbers
        else:
            y = np.array([_parse_float(v, k + 1, names[t], path) for k, v in enumerate(raw_y)])
    return X.reshape(len(rows), len(feats)), y


def _fast_csv(path: Path, skip: int, ncols: int, t: int | None, feats: list[int], labels: bool):
    """Parse with pandas (when installed) or numpy; None when anything looks wrong (the slow
    reader then names the bad cell)."""
    try:
        import pandas as pd
    except ImportError:
        pd = None
    try:
        if pd is not None:
            # column types are inferred (a dtype per column makes pandas ~1.6x slower); a
            # feature column that is not numeric sends the file to the cell-by-cell reader
            frame = pd.read_csv(path, header=None, skiprows=skip, skip_blank_lines=True, encoding="utf-8-sig",
                                dtype={t: str} if t is not None and labels else None)
            if frame.shape[1] != ncols or any(frame.dtypes[j].kind not in "iuf" for j in feats):
                return None
            X = frame[feats].to_numpy(dtype=np.float64)
            y = None
            if t is not None:
                col = frame[t]
                if labels:
                    if col.isna().any():
                        return None
                    y = col.str.strip().to_numpy(dtype=str)
                elif col.dtype.kind not in "iuf":
                    return None
                else:
                    y = col.to_numpy(dtype=np.float64)
        else:
            with warnings.catch_warnings():
                # an empty file is reported by the caller; numpy's "input contained no data"
                # warning would add a second line
                warnings.simplefilter("ignore", UserWarning)
                if t is not None and labels:
                    # all columns as text (a row with a field too many or too few is refused here,
                    # not cut to the used columns), then the features as numbers
                    A = np.loadtxt(path, delimiter=",", skiprows=skip, dtype=str, ndmin=2, comments=None,
                                   quotechar='"', encoding="utf-8-sig")
                    if A.shape[1] != ncols:
                        return None
                    X = A[:, feats].astype(np.float64)
                    y = np.char.strip(A[:, t])
                else:
                    A = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, comments=None,
                                   quotechar='"', encoding="utf-8-sig")
                    if A.shape[1] != ncols:
                        return None
                    X, y = A[:, feats], (A[:, t] if t is not None else None)
    except (ValueError, TypeError, IndexError):
        return None
    if not np.all(np.isfinite(X)):
        return None
    if y is not None:
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)):
                return None
        elif np.any(np.char.str_len(y) == 0) or np.any(np.isin(np.char.lower(y), _MISSING)):
            return None  # a missing label: the cell-by-cell reader names it
        elif labels != "text":
            # numeric labels are numbers (integers stay integers), as in the cell-by-cell reader
            y_num = _numeric_labels(y)
            if y_num is not None:
                y = y_num
            elif all(_INTEGER.fullmatch(v.strip()) for v in y.tolist()):
                y = _integer_texts(y.tolist())
            elif all(_is_number(v) for v in y.tolist()):
                return None  # a non-finite label: the cell-by-cell reader names it
    return X, y


def _load_csv(path: Path, target, labels: bool | str, header: bool | None = None, *,
              features: list[str] | None = None, n_features: int | None = None, need_target: bool = True,
              target_position: int | None = None, known_labels: set[str] | None = None):
    """Read a CSV file: ``X``, ``y`` (None when ``need_target`` is False and the file has no
    target column), the feature names and the target name.

    ``features`` (the names a model was trained on) selects and orders the columns by name
    when the file has a header; without a header the file must hold exactly those columns,
    or those plus the target column (found by ``target_position``, its column in the file
    the model was fitted on, when ``target`` is a name). ``n_features`` alone (a model saved
    without feature names) selects by position: ``n_features`` columns, or those plus the target
    column. ``labels="text"`` keeps labels as text even when they look like numbers (a model
    whose classes are strings).
    """
    from .errors import FileFormatError, InvalidParameterError, ShapeError

    cells, line = _first_row(path)
    if cells is None:
        raise ShapeError(f"{path}: the file holds no data.")
    if len(cells) == 1:
        for sep, what in ((";", "semicolons"), ("\t", "tabs")):
            if len([c for c in cells[0].split(sep) if c.strip()]) > 1:
                raise FileFormatError(
                    f"{path}: the first row is one field that {what} separate into "
                    f"{len(cells[0].split(sep))}; cvxnn reads comma-separated files: save the file with "
                    "commas as separators (and '.' as the decimal point).")
    has_header = _detect_header(cells, header, path, target, labels, target_position, line=line,
                                features=features, known_labels=known_labels)
    ncols = len(cells)
    names = [c.strip() for c in cells] if has_header else [f"col{j}" for j in range(ncols)]
    if has_header and any(n == "" for n in names):
        raise ShapeError(f"{path}: the header has an empty column name (column {names.index('') + 1}).")
    if has_header and len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise FileFormatError(f"{path}: the header names the columns {dup} more than once; columns are "
                              "matched by name, so each name must be unique.")
    if features is None and n_features is not None:
        if ncols not in (n_features, n_features + 1):
            raise ShapeError(f"{path}: the model needs {n_features} feature columns (plus, optionally, the "
                             f"target); the file has {ncols}.")
        features = names if ncols == n_features else None
        if features is None:
            t = _target_index(target, names if has_header else None, ncols, path)
            t = ncols - 1 if t is None else t
            features = [names[j] for j in range(ncols) if j != t]
            target = names[t] if has_header else str(t)
    if features is None and ncols < 2:
        raise ShapeError(f"{path}: need at least two columns (features and a target), got {names}.")
    if features is not None:
        d = len(features)
        if has_header and all(f in names for f in features):
            feats = [names.index(f) for f in features]
            t = names.index(target) if target in names else None
            if t is None and target is not None and ncols == d + 1:
                t = _target_index(target, None, ncols, path)
        elif not has_header and ncols in (d, d + 1):
            pos = [_positional(f, ncols) for f in features]
            named = _target_index(target, None, ncols, path) if target is not None else None
            if None not in pos and len(set(pos)) == d and not (ncols == d + 1 and named in pos):
                # a model fitted on a file without a header: its features are columns col<j>
                feats = pos
                rest = [j for j in range(ncols) if j not in pos]
                t = rest[0] if rest else None
            elif None not in pos and len(set(pos)) == d:
                # --target names a column where the training file had a feature: this file orders
                # its columns differently; the features are its other columns, in their order (as
                # for a model fitted on a file with a header)
                t = named
                feats = [j for j in range(ncols) if j != t]
            else:
                t = None if ncols == d else _target_index(target, None, ncols, path)
                if ncols == d + 1 and t is None:
                    if target is None:
                        t = ncols - 1
                    elif target_position is not None and 0 <= target_position < ncols:
                        t = target_position  # where the target was in the training file
                    else:
                        raise InvalidParameterError(
                            f"{path}: the file has no header, so its target column {target!r} cannot be "
                            f"found among its {ncols} columns; give it by index with --target (0 to "
                            f"{ncols - 1}).")
                feats = [j for j in range(ncols) if j != t]
        else:
            missing = [f for f in features if f not in names] if has_header else []
            raise ShapeError(
                f"{path}: the model needs the columns {features}; "
                + (f"the file lacks {missing}." if missing else f"the file has {ncols} columns.")
            )
        if need_target and t is None:
            what = "" if target is None else f" {target!r}"
            raise InvalidParameterError(f"{path}: no target column{what} to score against; "
                                        "name it with --target.")
    else:
        t = _target_index(target, names, ncols, path)
        if t is None:
            raise InvalidParameterError(f"{path}: no column {target!r}; the file has no header row "
                                        "(give the target by index).")
        feats = [j for j in range(ncols) if j != t]
    skip = line + int(has_header)
    # without need_target the target column is only located (and left out of X), never parsed:
    # predict ignores it, so an empty or unknown label there is no error
    t_read = t if need_target else None
    parsed = _fast_csv(path, skip, ncols, t_read, feats, labels)
    if parsed is None or parsed[0].shape[0] == 0:
        X, y = _slow_csv(path, line, has_header, names, t_read, feats, labels)
        if X.shape[0] == 0:
            raise ShapeError(f"{path}: {'a header but ' if has_header else ''}no data rows.")
    else:
        X, y = parsed
    return X, y, [names[j] for j in feats], (names[t] if t is not None else None)


def _load_npz(path: Path, x_key: str, y_key: str | None):
    from .errors import FileFormatError, InvalidParameterError

    if not zipfile.is_zipfile(path):
        from .io import _refuse_damaged_zip

        _refuse_damaged_zip(path)
        raise FileFormatError(f"{path}: not an .npz archive (no zip structure); save X and y with np.savez, "
                              "or give a CSV file.")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.files)
            for key in (x_key, y_key):
                if key is not None and key not in keys:
                    raise InvalidParameterError(f"{path}: no array {key!r}; arrays are {keys} "
                                                "(choose them with --x-key / --y-key).")
            X = np.array(data[x_key])
            y = np.array(data[y_key]) if y_key is not None else None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, InvalidParameterError):
            raise
        raise FileFormatError(f"{path}: not a readable .npz file without pickled objects ({exc}).") from exc
    except AttributeError:
        raise FileFormatError(f"{path}: a single .npy array; save X and y with np.savez.") from None
    return X, y, [f"x{j}" for j in range(X.shape[1] if X.ndim == 2 else 0)], y_key


def _read_table(path, *, target=None, x_key="X", y_key="y", labels=False, header=None,
                features=None, n_features=None, need_target=True, target_position=None, known_labels=None):
    """``X``, ``y`` (or None), feature names and target name from a CSV or NPZ file, validated."""
    from ._validation import check_X, check_y
    from .errors import FileFormatError, ShapeError

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file." if not path.exists() else f"{path}: not a file.")
    if path.suffix.lower() == ".npz":
        X, y, names, tname = _load_npz(path, x_key, y_key if need_target else None)
        d = len(features) if features is not None else n_features
        if d is not None and X.ndim == 2 and X.shape[1] != d:
            raise ShapeError(f"{path}: X has {X.shape[1]} columns; the model needs {d}.")
    else:
        X, y, names, tname = _load_csv(path, target, labels, header, features=features,
                                       n_features=n_features, need_target=need_target,
                                       target_position=target_position, known_labels=known_labels)
    if X.ndim != 2:
        raise ShapeError(f"{path}: X must be 2-D (n_samples, n_features), got shape {X.shape}.")
    X = check_X(X, name=f"X in {path.name}")
    if y is not None:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # a column of targets (or labels): one per sample
        if y.ndim == 2 and labels:
            raise ShapeError(f"{path}: class labels must be one per sample, shape (n,) or (n, 1); y has shape "
                             f"{y.shape} (several outputs are supported for regression only).")
        if y.ndim not in (1, 2):
            raise ShapeError(f"{path}: y must have shape (n,) or, for regression with several outputs, "
                             f"(n, c); got shape {y.shape}.")
        if labels and y.dtype.kind in "biu":
            # integer class labels stay integers (a float cast merges 10**18 and 10**18 + 1)
            if y.shape[0] != X.shape[0]:
                raise ShapeError(f"{path}: y has {y.shape[0]} entries but X has {X.shape[0]} rows.")
        elif y.dtype.kind in "biuf":
            y = check_y(y, X.shape[0], name=f"y in {path.name}", allow_matrix=not labels)
        elif y.ndim == 2:
            raise ShapeError(f"{path}: regression targets must be numbers; y has dtype {y.dtype}.")
        elif y.shape[0] != X.shape[0]:
            raise ShapeError(f"{path}: y has {y.shape[0]} entries but X has {X.shape[0]} rows.")
    return X, y, names, tname


def _n_outputs(est) -> int:
    """Outputs of a fitted regressor (1 for a classifier: one label per sample)."""
    if hasattr(est, "classes_"):
        return 1
    return int(getattr(est.solution_, "n_outputs", 1) or 1)


def _check_outputs(est, y, data, model) -> None:
    """Refuse targets whose number of columns differs from the model's outputs (a CSV file holds
    one target column; several outputs come from an NPZ file's ``y`` of shape ``(n, c)``).

    Raises
    ------
    ShapeError
        Naming both numbers.
    """
    from .errors import ShapeError

    c, got = _n_outputs(est), (1 if np.ndim(y) == 1 else int(np.shape(y)[1]))
    if got != c:
        where = ("an NPZ file whose y has shape (n, " + str(c) + "); a CSV file holds one target column"
                 if c > 1 else "targets of shape (n,)")
        raise ShapeError(f"{data}: {model} predicts {c} output{'s' if c > 1 else ''}, the file gives {got}; "
                         f"give {where}.")


def load_data(path, *, target: str | None = None, x_key: str = "X", y_key: str = "y",
              labels: bool = False, header: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load ``(X, y)`` from a CSV or NPZ file, validated.

    CSV files are parsed by pandas when it is installed, else by :func:`numpy.loadtxt`; a file
    with a bad cell is re-read cell by cell so that the error names its row and column.

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
    header : bool, optional
        Whether the CSV's first row is a header. None (default): decided only when the row is
        unambiguous (all names: a header; all numbers: data), else
        :class:`~cvxnn.errors.FileFormatError` asks for ``--header`` / ``--no-header``. A
        first row ``0,1,...,k-1`` (``DataFrame.to_csv``'s column numbers) is refused too.

    Returns
    -------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,)

    Raises
    ------
    FileFormatError, ShapeError, NonFiniteError, InvalidParameterError
        With the file, row and column of the problem.
    """
    X, y, _, _ = _read_table(path, target=target, x_key=x_key, y_key=y_key, labels=labels, header=header)
    return X, y


# ---------------------------------------------------------------------------- progress bar
class ProgressBar:
    """A text progress bar on ``stderr`` (drawn by tqdm when it is installed).

    Parameters
    ----------
    total : int or None
        Number of steps; None for an indeterminate task (a spinner with the elapsed time,
        redrawn by a background thread even while no step is reported, e.g. during a CVXPY
        solve).
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
    use_tqdm : bool, optional
        Draw with tqdm (default: when it is installed and ``stream`` is not given).
    """

    _SPIN = "|/-\\"
    #: bars drawing now (a warning printed meanwhile starts on a new line)
    active: set = set()

    def __init__(self, total: int | None, label: str = "", *, enabled: bool = True, stream=None,
                 width: int = 28, min_interval: float = 0.1, use_tqdm: bool | None = None) -> None:
        self.total = None if total is None else max(int(total), 1)
        self.label = label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.count = 0
        self.note = ""
        self.t0 = time.perf_counter()
        self.min_interval = min_interval
        self._last = -float("inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tqdm = None
        if use_tqdm is None:
            use_tqdm = stream is None
        if enabled and use_tqdm:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                fmt = "{desc}: {elapsed}{postfix}" if self.total is None else None
                self._tqdm = tqdm(total=self.total, desc=label, file=self.stream, leave=True,
                                  mininterval=min_interval, dynamic_ncols=True, bar_format=fmt)

    def update(self, steps: int = 1, note: str = "") -> None:
        """Advance by ``steps`` and redraw (with an optional note after the bar)."""
        with self._lock:
            self.count = self.count + steps if self.total is None else min(self.total, self.count + steps)
            if note:
                self.note = note
        if not self.enabled:
            return
        if self._tqdm is not None:
            if note:
                self._tqdm.set_postfix_str(note, refresh=False)
            self._tqdm.update(steps)
            return
        now = time.perf_counter()
        if (self.total is None or self.count < self.total) and now - self._last < self.min_interval:
            return  # redraw at most every min_interval seconds
        self._draw(now)

    def set_note(self, note: str) -> None:
        """Change the note without advancing (drawn at the next redraw)."""
        with self._lock:
            self.note = note
        if self._tqdm is not None and self.enabled:
            self._tqdm.set_postfix_str(note, refresh=False)

    def _draw(self, now: float) -> None:
        with self._lock:
            self._last = now
            elapsed = now - self.t0
            if self.total is None:
                spin = self._SPIN[int(elapsed * 4) % len(self._SPIN)]
                text = f"\r{self.label} [{spin}] {elapsed:6.1f}s {self.note}"
            else:
                filled = int(self.width * self.count / self.total)
                bar = "#" * filled + "." * (self.width - filled)
                text = f"\r{self.label} [{bar}] {self.count}/{self.total} {elapsed:6.1f}s {self.note}"
            self.stream.write(text)
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            if self._tqdm is not None:
                self._tqdm.refresh()
            else:
                self._draw(time.perf_counter())

    def close(self) -> None:
        """Finish the line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        ProgressBar.active.discard(self)
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.close()
            return
        self._draw(time.perf_counter())
        self.stream.write("\n")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            ProgressBar.active.add(self)
            if self._tqdm is None:
                self._draw(time.perf_counter())
            # live elapsed time (and spinner) while a long step reports nothing
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _progress_enabled(args) -> bool:
    mode = getattr(args, "progress", "auto")
    return mode == "always" or (mode == "auto" and sys.stderr.isatty())


def _solver_progress(bar: ProgressBar):
    """A solver callback that shows the iteration and relative gap on ``bar`` (native solvers
    call it after every iteration; the working-set solver after every round)."""
    def step(info: dict) -> None:
        it = info.get("iteration")
        gap = info.get("rel_gap")
        parts = [f"iteration {it}" if it is not None else ""]
        if info.get("working_set") is not None:
            parts.append(f"working set {info['working_set']}")
        if gap is not None and np.isfinite(gap):
            parts.append(f"rel. gap {gap:.2e}")
        bar.set_note(", ".join(p for p in parts if p))

    return step


# -------------------------------------------------------------------------- model options
def _is_classification(args) -> bool:
    return args.task == "classification"


def _estimator_from_args(args, *, backend: str | None = None, gates=None):
    from . import estimators as E

    clf = _is_classification(args)
    classes = {("relu", True): E.ConvexReLUClassifier, ("relu", False): E.ConvexReLURegressor,
               ("gated_relu", True): E.ConvexGatedReLUClassifier, ("gated_relu", False): E.ConvexGatedReLURegressor}
    cls = classes[args.activation, clf]
    loss = args.loss or ("logistic" if clf else "squared")
    from .errors import InvalidParameterError

    if backend is None:
        if args.backend == "native" and args.solver is not None:
            raise InvalidParameterError(f"--solver {args.solver} names a CVXPY solver; it needs --backend cvxpy "
                                        "(the native backend chooses its own solver).")
        backend = "native" if args.backend == "native" else (args.solver or "clarabel")
    kw = {}
    if getattr(args, "class_weight", None):
        if not clf:
            raise InvalidParameterError("--class-weight weighs classes; it needs --task classification.")
        kw["class_weight"] = args.class_weight
    lam = getattr(args, "lam", None)
    cvxpy_hint = " (0 only with --backend cvxpy)" if hasattr(args, "backend") else ""
    if lam is not None:
        if backend == "native" and not lam > 0:
            raise InvalidParameterError(f"--lam must be > 0 with the native backend{cvxpy_hint}, got {lam}.")
        kw["lam"] = lam
    est = cls(n_gates=args.n_gates, gates=gates, backend=backend, loss=loss,
              bias=not args.no_bias, tol=args.tol, max_iter=args.max_iter,
              random_state=args.seed, verbose=args.verbose >= 2, standardize=args.standardize, **kw)
    if backend == "native":
        # a loss of the other task (or an unknown name) gets the estimator's message, which lists
        # the losses of this task: advising another backend would not help
        chosen = est._loss_for(2) if clf else est._loss()
        if not chosen.smooth and hasattr(args, "backend"):
            raise InvalidParameterError(f"--loss {loss} is not smooth: the native solvers need a smooth loss; "
                                        "use --backend cvxpy (Clarabel by default).")
        if not chosen.smooth:  # verify: always a native run
            raise InvalidParameterError(f"--loss {loss} is not smooth: verify compares the native solvers, which "
                                        "need a smooth loss, with Clarabel; fit it with 'cvxnn fit --backend "
                                        "cvxpy' instead.")
    return est


def _data_from_args(args):
    """``X``, ``y``, feature names and target name of the command's data file."""
    X, y, names, tname = _read_table(args.data, target=args.target, x_key=args.x_key, y_key=args.y_key,
                                     labels=_is_classification(args), header=args.header)
    return X, y, names, tname


def _text_fingerprint(arr: np.ndarray) -> str:
    return hashlib.sha256(b"U" + "\x1f".join(arr.tolist()).encode("utf-8")).hexdigest()[:32]


def _fingerprint_y(y) -> str:
    """Content hash of targets as read from a file (checked by ``prune``): of their values, not
    their type (the same labels from a CSV file and an NPZ file of int32 agree; integers by
    their int64 bits, so that ``10**18`` and ``10**18 + 1`` differ)."""
    arr = np.ascontiguousarray(np.asarray(y))
    if arr.dtype.kind == "U":
        return _text_fingerprint(arr)
    if arr.dtype.kind in "biu" and np.all(arr <= np.iinfo(np.int64).max):
        data = arr.astype(np.int64).tobytes()
    else:
        f = arr.astype(np.float64)
        whole = np.all(np.isfinite(f)) and np.all(f == np.round(f)) and np.all(np.abs(f) < 2.0 ** 63)
        data = f.astype(np.int64).tobytes() if whole else f.tobytes()
    return hashlib.sha256(b"n" + data).hexdigest()[:32]


def _legacy_fingerprints_y(y) -> set[str]:
    """The hashes that model files written before 2026-12-02 stored (the type's kind and the
    float64 bits; CSV labels were floats then): a prune of such a model still recognises its
    training targets."""
    arr = np.ascontiguousarray(np.asarray(y))
    if arr.dtype.kind == "U":
        return {_text_fingerprint(arr)}
    data = arr.astype(np.float64).tobytes()
    return {hashlib.sha256(kind + data).hexdigest()[:32] for kind in (arr.dtype.kind.encode(), b"f")}


def _output_path(output, default: Path | None, suffix: str | None, option: str = "-o") -> Path | None:
    """The file an output option writes, checked before any work: ``output`` as given; inside it
    when it names an existing folder (``default``'s name, ending in ``suffix``; with ``default``
    None a folder is refused); ``default`` when absent (None: no file). A name ending in a path
    separator is a folder, which must exist; the folder of a file must exist and be writable, and
    the file, if it exists, too.

    Raises
    ------
    InvalidParameterError
        Naming ``option``: a missing folder, a folder where a file is needed, no permission.
    """
    from .errors import InvalidParameterError

    if not output and default is None:
        return None
    if not output:  # the default file: named as such, and a folder in its place is in the way
        if Path(default).is_dir():
            raise InvalidParameterError(
                f"the default output {default} is a folder; name the file to write with {option}.")
        option, output = f"the default output of {option},", default
    text = str(output)
    out = Path(text)
    if out.is_dir() or text.endswith(("/", os.sep)):
        if not out.is_dir():
            raise InvalidParameterError(f"{option} {text}: the folder {out} does not exist.")
        if default is None:
            raise InvalidParameterError(f"{option} {text} is a folder; name the file to write.")
        out = out / (default.name if default.name.endswith(suffix) else default.stem + suffix)
    parent = out.parent
    if not parent.is_dir():
        raise InvalidParameterError(f"{option} {text}: the folder {parent} does not exist.")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise InvalidParameterError(f"{option} {text}: {out} cannot be written (permissions).")
    return out


def _model_file(out: Path) -> Path:
    """The file ``cvxnn.io.save`` writes for ``out`` (``.npz`` appended when missing)."""
    return out if out.suffix == ".npz" else out.with_name(out.name + ".npz")


def _same_file(a, b) -> bool:
    """Whether two paths name one file: the same existing file (links included), or, when
    either does not exist yet (``samefile`` raises), the same resolved name."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _write_text_atomic(path: Path, write) -> None:
    """Write a text output file (``predict -o``, ``--report``, ``--csv``) through ``write(fh)``
    on a temporary file that replaces ``path`` only once complete (``cvxnn.io``'s atomic write:
    fsync, ``os.replace``). An interruption (Ctrl-C) or a failed write leaves ``path`` as it was,
    never half-written.

    Raises
    ------
    FileWriteError
        The file cannot be written (disk full, permissions).
    """
    from io import TextIOWrapper

    from .io import _write_atomic

    def binary(fh) -> None:
        text = TextIOWrapper(fh, encoding="utf-8", newline="")
        try:
            write(text)
            text.flush()
        finally:
            text.detach()  # the temporary file stays open for its fsync

    _write_atomic(Path(path), binary)


@contextlib.contextmanager
def _solver_output_to_stderr(enabled: bool):
    """Send what solvers print to ``stdout`` to ``stderr`` while a solve runs (with ``-vv`` the
    estimators are verbose: CVXPY's banner and Clarabel's or SCS's iteration table, printed by
    Python and by compiled code on file descriptor 1), so that ``stdout`` holds only the
    command's own output (a report, a table) and can be piped or redirected."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = fd = None
    try:
        fd, err = sys.stdout.fileno(), sys.stderr.fileno()
        sys.stderr.flush()
        saved = os.dup(fd)
        os.dup2(err, fd)
    except (AttributeError, OSError, ValueError):  # streams without descriptors (captured)
        if saved is not None:
            os.close(saved)
        saved = None
    stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stdout = stdout
        if saved is not None:
            _flush_c_stdio()
            os.dup2(saved, fd)
            os.close(saved)


def _flush_c_stdio() -> None:
    """Flush the C library's buffered ``printf`` output (solvers written in C) before file
    descriptor 1 is restored, so that it lands where it was printed."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError) as exc:  # pragma: no cover - no C library handle (Windows)
        logger.debug("could not flush the C library's stdout buffer (%s)", exc)


def _refuse_clobber(outputs: list[tuple[str, Path | None]], inputs: list[tuple[str, object]]) -> None:
    """Refuse, before any work, an output that would overwrite an input file (``-o`` naming the
    training data replaced it by the model) or another output of the same command (``--report``
    naming the model file replaced the model by the JSON report).

    Raises
    ------
    InvalidParameterError
        Naming both options.
    """
    from .errors import InvalidParameterError

    seen: list[tuple[str, Path]] = []
    for option, out in outputs:
        if out is None:
            continue
        for what, path in inputs:
            if _same_file(out, path):
                raise InvalidParameterError(f"{option} {out} is the {what}; writing there would overwrite it: "
                                            "name another file.")
        for other, prev in seen:
            if _same_file(out, prev):
                raise InvalidParameterError(f"{option} and {other} name the same file {out}; name two files.")
        seen.append((option, out))


def _uncertified_gap(sol) -> float | None:
    """The certified relative duality gap of a CVXPY solution whose solver reported
    ``"optimal"`` but that cvxnn's float64 certificate cannot confirm (above
    :data:`cvxnn.native.certificates.CERTIFIED_WARN_RTOL`, where the library warns); None when
    the certificate confirms it or there is none (a non-smooth loss, ``lam = 0``). A native
    solve's status is its certificate (``"optimal"`` iff ``gap <= tol * |objective|``)."""
    from .native.certificates import CERTIFIED_WARN_RTOL

    rel = (getattr(sol, "extra", None) or {}).get("certified_rel_gap") if sol.status == "optimal" else None
    return float(rel) if rel is not None and rel > CERTIFIED_WARN_RTOL else None


def _certified(est) -> bool:
    """Whether a fit counts as certified for the exit status: status ``"optimal"``, and for a
    CVXPY solve a certified relative gap within the threshold of :func:`_uncertified_gap` (the
    standard a native solve meets to be ``"optimal"``)."""
    return est.status_ == "optimal" and _uncertified_gap(est.solution_) is None


def _report(est, X, y, args) -> dict:
    sol = est.solution_
    rep = {
        "estimator": type(est).__name__,
        "data": str(args.data),
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "standardized": est.standardizer_ is not None,
        "n_patterns": int(est.patterns_.n_patterns),
        "lam": float(est.lam_),  # the value used ("auto" resolved)
        "loss": sol.loss.name if sol.loss is not None else None,
        "backend": sol.backend,
        "solver": sol.solver,
        "status": est.status_,
        "objective": est.objective_,
        "convex_objective": est.convex_objective_,
        "objective_minus_convex": est.objective_ - est.convex_objective_,
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


def _fit_with_progress(est, X, y, args, label: str = "fit"):
    """Fit ``est`` with a live status line: iteration and gap from the native solvers'
    callbacks, the elapsed time for CVXPY solvers (which report nothing while they run)."""
    with ProgressBar(None, label, enabled=_progress_enabled(args)) as bar, \
            _solver_output_to_stderr(args.verbose >= 2):
        if est.backend == "native":
            est._fit(X, y, callback=_solver_progress(bar))
        else:
            bar.set_note(f"{est.backend} solve")
            est.fit(X, y)
        bar.set_note(f"{est.status_}, {est.n_active_neurons_} neurons")
    return est


# ---------------------------------------------------------------------------------- fit
def _cmd_fit(args: argparse.Namespace) -> int:
    from . import io

    # both outputs are checked before the data are read and fitted
    report = _output_path(args.report, None, None, "--report")
    output = _model_file(_output_path(args.output, Path(args.data).with_suffix(".model.npz"), ".model.npz"))
    _refuse_clobber([("-o", output), ("--report", report)], [("data file", args.data)])
    X, y, names, tname = _data_from_args(args)
    est = _estimator_from_args(args)
    _fit_with_progress(est, X, y, args)
    rep = _report(est, X, y, args)
    meta = {"command": "fit", "data": str(args.data), "target": tname, "task": args.task,
            "feature_names": names, "y_fingerprint": _fingerprint_y(y)}
    position = _target_column(args.data, tname)
    if position is not None:
        meta["target_index"] = position  # finds the target in files without a header
    written = io.save(est, output, metadata=meta)
    rep["model_file"] = str(written)
    _print_report(rep, sys.stdout)
    if report is not None:
        text = json.dumps(rep, indent=2, sort_keys=True) + "\n"
        _write_text_atomic(report, lambda fh: fh.write(text))
    return 0 if _certified(est) else 1


def _load_model_file(path):
    """A fitted estimator and the metadata the CLI stored with it, with shell-level errors."""
    from . import io
    from .errors import FileFormatError

    try:
        est = io.load(path, kind="estimator")
    except FileFormatError as exc:
        msg = str(exc)
        if "kind" in msg or "holds a" in msg:
            raise FileFormatError(f"{path}: not a model written by 'cvxnn fit' ({msg})") from None
        raise
    user = io.read_metadata(path).get("user") or {}
    return est, (user if isinstance(user, dict) else {})


def _stored_target(user: dict, data) -> str | None:
    """The target column of the model's training file, to look for in ``data``: none when the
    model was fitted on an NPZ file and ``data`` is a CSV file (the NPZ key ``y`` names no CSV
    column; the CSV's default, its last column, applies)."""
    target = user.get("target")
    fitted_npz = str(user.get("data", "")).lower().endswith(".npz")
    if fitted_npz and Path(data).suffix.lower() != ".npz":
        return None
    return target


def _model_columns(est, user: dict) -> dict:
    """How to find the model's features in a data file: by the names stored by ``cvxnn fit``
    (or the estimator's ``feature_names_in_``), else by position; and where its target column
    was in the training file (for files without a header); a classifier's classes as text."""
    position = user.get("target_index")
    extra = {"target_position": position} if isinstance(position, int) and not isinstance(position, bool) else {}
    classes = getattr(est, "classes_", None)
    if classes is not None:  # a first row whose label is a class is data (header detection)
        extra["known_labels"] = {str(c) for c in np.asarray(classes).tolist()}
    names = user.get("feature_names")
    if (isinstance(names, list) and str(user.get("data", "")).lower().endswith(".npz")
            and names == [f"x{j}" for j in range(len(names))]):
        # the columns of an NPZ file have no names (x<j> only label the report): other files are
        # read by position, as for a model saved without names (a CSV with a header was refused)
        return {"n_features": int(est.n_features_in_), **extra}
    if not isinstance(names, list):
        names = [str(n) for n in getattr(est, "feature_names_in_", [])] or None
    if isinstance(names, list) and len(names) == est.n_features_in_ and all(isinstance(n, str) for n in names):
        return {"features": names, **extra}
    return {"n_features": int(est.n_features_in_), **extra}


def _label_kind(est) -> bool | str:
    """How a data file's labels are read for ``est``: not at all (a regressor), as text when
    its classes are strings (``"0"`` must stay ``"0"``), else as numbers where they look so."""
    classes = getattr(est, "classes_", None)
    if classes is None:
        return False
    return "text" if np.asarray(classes).dtype.kind in "USO" else True


def _labels_like_classes(est, y):
    """Labels read from a data file in the type of ``est``'s classes, where a file format wrote
    them differently: boolean classes from the text ``True`` / ``False`` (as numpy and pandas
    write booleans to CSV), text classes from booleans (an NPZ array of a model fitted on such a
    CSV file). Other labels are returned as read."""
    classes = getattr(est, "classes_", None)
    if classes is None or y is None:
        return y
    kind, y = np.asarray(classes).dtype.kind, np.asarray(y)
    if kind == "b" and y.dtype.kind == "U":
        low = np.char.lower(np.char.strip(y))
        if np.all(np.isin(low, ("true", "false"))):
            return low == "true"
    elif kind == "U" and y.dtype.kind == "b":
        return y.astype(str)
    return y


def _target_column(path, tname) -> int | None:
    """The column of the target ``tname`` in a CSV file (its header, or ``col<j>``); None for
    NPZ files or when it cannot be told."""
    path = Path(path)
    if tname is None or path.suffix.lower() == ".npz":
        return None
    try:
        cells, _ = _first_row(path)
    except Exception:  # noqa: BLE001 - the file was read already; the position is optional
        return None
    if cells is None:
        return None
    stripped = [c.strip() for c in cells]
    if tname in stripped:
        return stripped.index(tname)
    return _positional(tname, len(stripped))


# ------------------------------------------------------------------------- predict, score
def _cmd_predict(args: argparse.Namespace) -> int:
    est, user = _load_model_file(args.model)
    output = _output_path(args.output, None, None)
    _refuse_clobber([("-o", output)], [("data file", args.data), ("model file", args.model)])
    target = args.target if args.target is not None else _stored_target(user, args.data)
    X, _, _, _ = _read_table(args.data, target=target, x_key=args.x_key, y_key=args.y_key,
                             labels=_label_kind(est), header=args.header,
                             **_model_columns(est, user), need_target=False)
    name = user.get("target") or "prediction"
    if args.proba:
        if not hasattr(est, "predict_proba"):
            from .errors import InvalidParameterError

            raise InvalidParameterError(f"{args.model}: this model gives no probabilities "
                                        "(only classifiers with the logistic loss do).")
        P = est.predict_proba(X)
        header = [f"p_{c}" for c in est.classes_]
        rows = ([repr(float(v)) for v in p] for p in P)  # shortest text that reads back as the float64
    else:
        pred = est.predict(X)
        if pred.ndim == 2:  # several regression outputs: one column each
            header = [f"{name}_{j}" for j in range(pred.shape[1])]
            rows = ([repr(float(v)) for v in p] for p in pred)
        else:
            header = [str(name)]
            rows = ([str(v) if pred.dtype.kind not in "f" else repr(float(v))] for v in pred)
    def write(fh) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)

    if output is None:
        write(sys.stdout)
    else:
        _write_text_atomic(output, write)
    if output is not None:
        print(f"wrote {X.shape[0]} predictions to {output}", file=sys.stderr)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    est, user = _load_model_file(args.model)
    target = args.target if args.target is not None else _stored_target(user, args.data)
    X, y, _, tname = _read_table(args.data, target=target, x_key=args.x_key, y_key=args.y_key,
                                 labels=_label_kind(est), header=args.header,
                                 **_model_columns(est, user), need_target=True)
    y = _labels_like_classes(est, y)
    _check_outputs(est, y, args.data, args.model)
    classifier = hasattr(est, "classes_")
    if classifier:
        unknown = np.setdiff1d(np.unique(y), est.classes_)
        if unknown.size:
            from .errors import LabelError

            raise LabelError(f"{args.data}: labels {unknown.tolist()[:5]} do not occur in the model's "
                             f"classes {est.classes_.tolist()}.")
    score = float(est.score(X, y))
    out = sys.stdout
    print(f"model     : {args.model} ({type(est).__name__})", file=out)
    print(f"data      : {args.data}, n={X.shape[0]}, target {tname!r}", file=out)
    print(f"{'accuracy' if classifier else 'R^2':<9} : {score:.6f}", file=out)
    return 0


# --------------------------------------------------------------------------------- verify
def _cmd_verify(args: argparse.Namespace) -> int:
    from .errors import InvalidParameterError

    if not (np.isfinite(args.rtol) and args.rtol >= 0):
        raise InvalidParameterError(f"--rtol must be a finite number >= 0, got {args.rtol!r}.")
    X, y, _, _ = _data_from_args(args)
    runs = []
    with ProgressBar(2, "verify", enabled=_progress_enabled(args)) as bar, \
            _solver_output_to_stderr(args.verbose >= 2):
        bar.set_note("native solve")
        native = _estimator_from_args(args, backend="native")
        native._fit(X, y, callback=_solver_progress(bar))
        bar.update(note="clarabel solve")
        # the same patterns for the reference: re-use the native run's gates
        ref = _estimator_from_args(args, backend="clarabel", gates=native.patterns_.gates)
        ref.set_params(max_iter=max(args.max_iter, 1000))  # --max-iter limits the native solver
        ref.fit(X, y)
        bar.update(note="done")
    runs = [("native", native), ("clarabel", ref)]
    out = sys.stdout
    print(f"{'backend':<10} {'status':<20} {'objective':>20} {'convex objective':>20} {'obj - convex':>13} "
          f"{'neurons':>8} {'time [s]':>10}", file=out)
    for name, est in runs:
        print(f"{name:<10} {est.status_:<20} {est.objective_:>20.12g} {est.convex_objective_:>20.12g} "
              f"{est.objective_ - est.convex_objective_:>13.3e} {est.n_active_neurons_:>8d} "
              f"{est.fit_time_:>10.4f}", file=out)
    tiny = np.finfo(float).tiny  # relative differences: objectives below 1 are not compared absolutely
    obj_rel = max(abs(native.objective_ - ref.objective_) / max(abs(ref.objective_), tiny),
                  abs(native.convex_objective_ - ref.convex_objective_) / max(abs(ref.convex_objective_), tiny))
    fit_n = native.solution_.train_predict(native._transform(X))
    fit_r = ref.solution_.train_predict(ref._transform(X))
    pred_rel = float(np.max(np.abs(fit_n - fit_r)) / max(float(np.max(np.abs(fit_r))), tiny))
    ok = obj_rel <= args.rtol and native.status_ == "optimal" and ref.status_ == "optimal"
    print(f"relative objective difference : {obj_rel:.3e}  (rtol {args.rtol:g})", file=out)
    print(f"relative fit difference       : {pred_rel:.3e}", file=out)
    if native.gap_ is not None:
        print(f"native certified gap          : {native.gap_:.3e}", file=out)
    print(f"verdict                       : {'AGREE' if ok else 'DISAGREE'}", file=out)
    if not ok:
        print(f"why                           : {_verify_reason(native, ref, obj_rel, args.rtol)}", file=out)
    return 0 if ok else 1


def _verify_reason(native, ref, obj_rel: float, rtol: float) -> str:
    """One line on why ``verify`` disagrees: which run is not optimal, and which objective is
    lower when the other run's status does not stand behind its own."""
    bad = [f"{name} ended {est.status_!r}" for name, est in (("native", native), ("clarabel", ref))
           if est.status_ != "optimal"]
    if not bad:
        return f"both runs are optimal, but their objectives differ by {obj_rel:.3g} relative (above rtol {rtol:g})"
    lower = "native" if native.objective_ < ref.objective_ else "clarabel"
    return "; ".join(bad) + f"; the {lower} objective is lower by {obj_rel:.3g} relative"


# ----------------------------------------------------------------------------------- path
def _path_segment(est, X, y, lams, on_step=None, val=None) -> list[dict]:
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
                     "val_score": None if val is None else float(est.score(*val)),
                     "neurons": est.n_active_neurons_, "status": est.status_,
                     "certified": _certified(est),
                     "iterations": est.n_iter_, "time_s": est.fit_time_})
        if on_step is not None:
            on_step(rows[-1])
    return rows


def _split_holdout(X, y, fraction: float, seed, classification: bool):
    """Indices of a seeded held-out split (stratified for classification)."""
    from .errors import InvalidParameterError, ShapeError

    if not 0 < fraction < 1:
        raise InvalidParameterError(f"--val-fraction must be in [0, 1), got {fraction}.")
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    if classification:
        val = []
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            val.extend(idx[: int(round(fraction * idx.size))])
        val = np.sort(np.array(val, dtype=int))
    else:
        val = np.sort(rng.permutation(n)[: int(round(fraction * n))])
    train = np.setdiff1d(np.arange(n), val)
    if val.size == 0 or train.size < 2:
        raise ShapeError(f"{n} samples are too few for a held-out fraction of {fraction:g}; "
                         "use --val-fraction 0 or --cv.")
    return train, val


def _plot_target(args) -> Path | None:
    """The file ``--plot`` writes (None: no plot, or no matplotlib): the name as given, with
    ``.png`` appended when it has no extension (as matplotlib does); an extension matplotlib
    cannot write is an :class:`~cvxnn.errors.InvalidParameterError`."""
    from .errors import InvalidParameterError

    if args.plot == "none":
        return None
    target = Path(args.plot) if args.plot else Path(args.data).with_suffix(".path.png")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.info("matplotlib is not installed: no plot")
        return None
    if target.is_dir() or target.name in ("", ".", "..") or str(args.plot or "").endswith(("/", os.sep)):
        raise InvalidParameterError(f"--plot {args.plot}: that is a folder; give a file name (e.g. "
                                    f"{target / 'path.png'}).")
    if not target.suffix:
        target = target.with_name(target.name + ".png")
    # pgf needs a LaTeX installation, which the solve would only find missing at the end
    formats = {k: v for k, v in FigureCanvasAgg(Figure()).get_supported_filetypes().items() if k != "pgf"}
    if target.suffix[1:].lower() not in formats:
        raise InvalidParameterError(f"--plot {args.plot}: matplotlib cannot write {target.suffix!r} files here; "
                                    f"use one of {sorted('.' + f for f in formats)}.")
    _output_path(target, None, None, "--plot")  # the folder exists, the file can be written
    return target


def _plot_path(rows: list[dict], path: Path, score_name: str, title: str) -> Path | None:
    """Write a plot of the path (scores and neurons against lam); None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        logger.info("matplotlib is not installed: no plot")
        return None
    lams = [r["lam"] for r in rows]
    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.semilogx(lams, [r["score"] for r in rows], "o-", label=f"training {score_name}")
    if rows and rows[0].get("val_score") is not None:
        ax.semilogx(lams, [r["val_score"] for r in rows], "s-", label=f"validation {score_name}")
    ax.set_xlabel("lam")
    ax.set_ylabel(score_name)
    ax.invert_xaxis()
    ax2 = ax.twinx()
    ax2.semilogx(lams, [r["neurons"] for r in rows], "k:", label="neurons")
    ax2.set_ylabel("active neurons")
    ax.legend(loc="center right")
    ax.set_title(title)
    fig.tight_layout()
    from io import BytesIO

    from .io import _write_atomic

    buffer = BytesIO()  # drawn first, then written atomically: an interruption leaves no half-written plot
    fig.savefig(buffer, dpi=120, format=Path(path).suffix[1:].lower())
    _write_atomic(Path(path), lambda fh: fh.write(buffer.getvalue()))
    return path


def _cmd_path(args: argparse.Namespace) -> int:
    from ._validation import check_lam, check_positive_int
    from .errors import InvalidParameterError

    n_jobs = _check_n_jobs(args.n_jobs)
    plot_file = _plot_target(args)  # a bad --plot or --csv fails before the path is solved
    csv_file = _output_path(args.csv, None, None, "--csv")
    _refuse_clobber([("--csv", csv_file), ("--plot", plot_file)], [("data file", args.data)])
    X, y, _, _ = _data_from_args(args)
    est = _estimator_from_args(args)
    clf = _is_classification(args)
    if args.cv is not None:
        folds = check_positive_int(args.cv, "--cv")
        if folds < 2:
            raise InvalidParameterError(f"--cv needs at least 2 folds, got {folds}.")
        # checked before the path is solved (the splitter would only fail after it)
        if folds > X.shape[0]:
            raise InvalidParameterError(f"--cv {folds} asks for more folds than the {X.shape[0]} samples.")
        if clf:
            _, counts = np.unique(y, return_counts=True)
            if folds > counts.min():
                raise InvalidParameterError(
                    f"--cv {folds}: stratified folds need at least {folds} samples of each class; the "
                    f"smallest class has {int(counts.min())}.")
        Xtr, ytr, val = X, y, None
    elif args.val_fraction:
        train, held = _split_holdout(X, y, float(args.val_fraction), args.seed, clf)
        Xtr, ytr, val = X[train], y[train], (X[held], y[held])
    else:
        Xtr, ytr, val = X, y, None
    lam_max = None
    if args.lams is not None and not args.lams.strip():
        raise InvalidParameterError("--lams is empty; give comma-separated numbers, or omit it for the default grid.")
    if args.lams:
        try:
            values = [float(v) for v in args.lams.split(",")]
        except ValueError:
            raise InvalidParameterError(f"--lams must be comma-separated numbers, got {args.lams!r}.") from None
        lams = np.array(sorted((check_lam(v, name="--lams") for v in values), reverse=True))
        if est.backend == "native" and lams.size and not lams[-1] > 0:
            raise InvalidParameterError(f"--lams values must be > 0 with the native backend (0 only with "
                                        f"--backend cvxpy), got {args.lams!r}.")
    else:
        n_lams = check_positive_int(args.n_lams, "--n-lams")
        if not 0 < args.lam_min_ratio < 1:
            raise InvalidParameterError(f"--lam-min-ratio must be in (0, 1), got {args.lam_min_ratio}.")
        from .estimators import default_lam_grid

        # the targets, loss and weights (class weights included) of the estimator's own fit, and
        # the exact lam_max of the program it solves, as the ...CV estimators' grid
        Xv, y_enc, loss, w, _ = est._encode_for_fit(Xtr, ytr, None)
        lams = default_lam_grid(est, Xv, y_enc, loss, w, n_lams, args.lam_min_ratio)
        lam_max = float(lams[0])
    rows: list[dict] = []
    with ProgressBar(lams.size, "path", enabled=_progress_enabled(args)) as bar, \
            _solver_output_to_stderr(args.verbose >= 2):
        if n_jobs == 1:
            rows = _path_segment(est, Xtr, ytr, lams, val=val,
                                 on_step=lambda r: bar.update(note=f"lam={r['lam']:.3g}"))
        else:
            from joblib import Parallel, cpu_count, delayed

            workers = cpu_count() if n_jobs < 0 else n_jobs
            segments = [s for s in np.array_split(lams, min(workers, lams.size)) if s.size]
            # native solves spend their time in BLAS calls that release the GIL: threads share
            # the data without copies; CVXPY solves run in worker processes.
            prefer = "threads" if est.backend == "native" else "processes"
            gen = Parallel(n_jobs=n_jobs, return_as="generator", prefer=prefer)(
                delayed(_path_segment)(est, Xtr, ytr, seg, val=val) for seg in segments)
            for seg_rows in gen:
                rows.extend(seg_rows)
                bar.update(len(seg_rows))
    if args.cv is not None:
        import warnings

        from .estimators import cross_validate_lam

        with ProgressBar(None, f"cv ({args.cv} folds)", enabled=_progress_enabled(args)), \
                warnings.catch_warnings(), _solver_output_to_stderr(args.verbose >= 2):
            warnings.simplefilter("ignore")  # the status column shows non-convergence
            cvres = cross_validate_lam(est, X, y, lams, cv=int(args.cv), n_jobs=n_jobs)
        by_lam = dict(zip(cvres.lams.tolist(), cvres.mean_score.tolist(), strict=True))
        for r in rows:
            r["val_score"] = by_lam.get(r["lam"])
    out = sys.stdout
    score = "accuracy" if clf else "R^2"
    if lam_max is not None:
        print(f"lam_max = {lam_max:.6g}; {lams.size} values down to "
              f"{args.lam_min_ratio:g} * lam_max", file=out)
    if args.cv is not None:
        print(f"validation: mean {score} over {args.cv}-fold cross-validation", file=out)
    elif val is not None:
        print(f"validation: {score} on a held-out {args.val_fraction:g} of the rows "
              f"({val[0].shape[0]} of {X.shape[0]}, seed {args.seed}); fits on the rest", file=out)
    has_val = rows and rows[0].get("val_score") is not None
    vname = f"val {score}"
    print(f"{'lam':>12} {'objective':>16} {score:>9} " + (f"{vname:>12} " if has_val else "")
          + f"{'neurons':>8} {'status':<20} {'iters':>7} {'time [s]':>9}", file=out)
    for r in rows:
        it = "-" if r["iterations"] is None else str(r["iterations"])
        vcol = f"{r['val_score']:>12.4f} " if has_val else ""
        # a CVXPY solver's "optimal" that cvxnn's certificate does not confirm (see _certified)
        status = "optimal, uncertified" if r["status"] == "optimal" and not r["certified"] else r["status"]
        print(f"{r['lam']:>12.5g} {r['objective']:>16.10g} {r['score']:>9.4f} {vcol}{r['neurons']:>8d} "
              f"{status:<20} {it:>7} {r['time_s']:>9.4f}", file=out)
    if has_val:
        best = max(rows, key=lambda r: (r["val_score"], r["lam"]))
        print(f"best lam by validation: {best['lam']:.6g} ({vname} {best['val_score']:.4f})", file=out)
    if csv_file is not None:
        def write(fh) -> None:
            writer = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if has_val or k != "val_score"])
            writer.writeheader()
            writer.writerows([{k: v for k, v in r.items() if has_val or k != "val_score"} for r in rows])

        _write_text_atomic(csv_file, write)
    if plot_file is not None:
        written = _plot_path(rows, plot_file, score, f"{Path(args.data).name}: {type(est).__name__}")
        if written is not None:
            print(f"plot: {written}", file=out)
    return 0 if all(r["certified"] for r in rows) else 1


def _check_n_jobs(value) -> int:
    from .errors import InvalidParameterError

    if value is None:
        return 1
    if value == 0 or value < -1:
        raise InvalidParameterError(f"--n-jobs must be a positive number of parallel jobs or -1 "
                                    f"(all cores), got {value}.")
    return int(value)


# ---------------------------------------------------------------------------------- prune
def _cmd_prune(args: argparse.Namespace) -> int:
    import dataclasses
    import warnings

    from . import io
    from .errors import FileFormatError, InvalidParameterError, PatternMismatchError
    from .optimality import prune_exact, pruning_path

    # the pruned model may replace MODEL (it is read first), never the data
    output = _model_file(_output_path(args.output, Path(args.model).with_suffix(".pruned.npz"), ".pruned.npz"))
    _refuse_clobber([("-o", output)], [("data file", args.data)])
    try:
        obj = io.load(args.model, kind=("estimator", "solution"))
    except FileFormatError as exc:
        if "kind" in str(exc) and "npz" not in str(exc).split(":")[-1]:
            raise FileFormatError(f"{args.model}: not a model written by 'cvxnn fit' ({exc})") from None
        raise
    if args.width is not None and args.width < 0:
        raise InvalidParameterError(f"--width must be 0 or more blocks, got {args.width}.")
    est = obj if hasattr(obj, "solution_") else None
    user = (io.read_metadata(args.model).get("user") or {}) if est is not None else {}
    user = user if isinstance(user, dict) else {}
    sol = est.solution_ if est is not None else obj
    if sol.lam is None or sol.loss is None:
        raise InvalidParameterError(f"{args.model}: the model has no lam or loss (it was fitted in "
                                    "constrained form); prune models written by 'cvxnn fit'.")
    labels = _label_kind(est) if est is not None else False
    target = args.target if args.target is not None else _stored_target(user, args.data)
    X, y, names, _ = _read_table(args.data, target=target, x_key=args.x_key, y_key=args.y_key,
                                 labels=labels, header=args.header,
                                 **(_model_columns(est, user) if est is not None else {}))
    y = _labels_like_classes(est, y)
    if est is not None:
        _check_outputs(est, y, args.data, args.model)
    std = getattr(est, "standardizer_", None) if est is not None else None
    Xs = std.transform(X) if std is not None else X
    try:
        sol.patterns.check_data(Xs)
    except PatternMismatchError:
        raise PatternMismatchError(
            f"{args.data}: the features are not those {args.model} was trained on; pass the "
            "training data file given to 'cvxnn fit'."
        ) from None
    stored = user.get("y_fingerprint")
    if stored is not None and stored != _fingerprint_y(y) and stored not in _legacy_fingerprints_y(y):
        raise PatternMismatchError(
            f"{args.data}: the target column differs from the one {args.model} was trained on; "
            "pass the training data file (and --target) given to 'cvxnn fit'."
        )
    if est is not None:
        y_enc = _encode_like(est, y, args)
    else:
        y_enc = np.asarray(y, dtype=float)
    lam, loss = float(sol.lam), sol.loss
    before = sol.objective(Xs, y_enc, lam, loss)
    out = sys.stdout
    print(f"model                 : {args.model} ({sol.activation}, lam={lam:g}, {loss.name} loss)", file=out)
    if args.width is None:
        with ProgressBar(None, "prune", enabled=_progress_enabled(args)) as bar:
            res = prune_exact(sol, Xs)
            bar.set_note(f"{res.n_before} -> {res.n_after} blocks")
        pruned = res.model
        print(f"active blocks before  : {res.n_before}", file=out)
        print(f"blocks after (minimal): {res.n_after}", file=out)
        print(f"relative fit change   : {res.fit_change:.3e}", file=out)
    else:
        width = int(args.width)
        n_start = sol.n_active()
        with ProgressBar(max(n_start - width, 1) + 1, "prune", enabled=_progress_enabled(args)) as bar:
            def tick(model) -> float:
                bar.update(note=f"{model.n_active()} blocks")
                return float("nan")

            path = pruning_path(sol, Xs, y_enc, lam, loss, min_width=width, score=tick)
        print(f"{'step':>5} {'kind':<12} {'blocks':>7} {'objective':>18} {'increase':>12}", file=out)
        for k, step in enumerate(path.steps):
            print(f"{k:>5} {step.kind:<12} {step.width:>7d} {step.objective:>18.12g} {step.increase:>12.3e}",
                  file=out)
        pruned = path.model_at_width(width)
    blocks = {k: getattr(pruned, k) for k in ("U", "V", "W")}
    # the pruned point as a solution of the same program (its formulation, hence its penalty)
    pruned_sol = dataclasses.replace(sol, patterns=pruned.patterns, **blocks, **_cleared_duals(sol))
    if pruned_sol.spec.constrained and pruned_sol.n_outputs > 1:
        pruned_sol.training_X = Xs  # lets the map use SVD factors that lie in +-K_i
    after = pruned_sol.objective(Xs, y_enc, lam, loss)
    print(f"objective before      : {before:.12g}", file=out)
    print(f"objective after       : {after:.12g}", file=out)
    print(f"relative change       : {abs(after - before) / max(abs(before), np.finfo(float).tiny):.3e}", file=out)
    # an estimator's network drops the interior-point solver's near-zero blocks (network_tol_):
    # so does the pruned one (with tol=0 each ~1e-10 column of a CVXPY vector solution was a neuron)
    net = pruned_sol.to_network(tol=float(getattr(est, "network_tol_", 0.0) or 0.0) if est is not None else 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net_obj = float(net.objective(Xs, y_enc, lam, loss))
    print(f"network objective     : {net_obj:.12g}", file=out)
    print(f"neurons of the network: {net.n_neurons}", file=out)
    meta = {"command": "prune", "source": str(args.model), "lam": lam, "loss": loss.name, "width": args.width}
    # approximate pruning (--width past the minimal model) raises the objective: the result is no
    # longer an optimum, and its status, gap and diagnostics say so
    # exact pruning only drops the solver's sub-threshold leftovers: a rise within the model's
    # own tolerance is rounding of the solve (its gap grows by the rise below), not approximation
    rel_limit = 1e-9 if args.width is not None else max(1e-9, float(getattr(est, "tol", 0.0) or 0.0))
    approximate = after - before > rel_limit * max(abs(before), np.finfo(float).tiny)
    if approximate:
        print("status                : approximate (the objective rose: not an optimum)", file=out)
    if est is not None:
        # an estimator again: classes, standardizer and feature names are kept, so that
        # 'cvxnn predict' returns labels
        gap = None if est.gap_ is None else float(est.gap_) + max(0.0, after - before)
        extra = {k: v for k, v in sol.extra.items() if k not in ("rel_gap", "stop_reason", "dual_value")}
        extra["pruned"] = "approximate" if approximate else "exact"
        new_sol = dataclasses.replace(
            pruned_sol, objective_value=float(after), training_X=None, extra=extra, gap=gap,
            rel_gap=None if gap is None else gap / max(abs(float(after)), np.finfo(float).tiny),
            status="approximate" if approximate else sol.status)
        pruned_est = copy.copy(est)
        raw_net = std.network_to_raw(net) if std is not None else net
        pruned_est.__dict__.update(
            solution_=new_sol, patterns_=new_sol.patterns, network_=raw_net,
            objective_=net_obj, convex_objective_=float(after), n_active_neurons_=int(net.n_neurons),
            gap_=gap, status_=new_sol.status,
        )
        # "data", the file the model was fitted on, tells how to read other files (an NPZ file's
        # columns are found by position, its key "y" is no CSV column): the pruned model reads the
        # files the unpruned one reads
        meta.update({k: user[k] for k in ("data", "target", "target_index", "task", "feature_names",
                                          "y_fingerprint") if k in user})
        print(f"training score        : {pruned_est.score(X, y):.6f}", file=out)
        written = io.save(pruned_est, output, metadata=meta)
    else:
        written = io.save(pruned, output, metadata=meta)
    print(f"saved                 : {written}", file=out)
    return 0


def _cleared_duals(sol) -> dict:
    """Fields of a solution that describe the unpruned point's dual (reset after pruning)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(sol)}
    return {k: None for k in ("multipliers", "cone_duals", "dual_value") if k in names}


def _encode_like(est, y, args):
    """Targets encoded as the estimator's solver saw them, with the estimator's classes."""
    from .errors import LabelError

    if not hasattr(est, "classes_"):
        from .estimators import _solver_targets

        return _solver_targets(getattr(est, "standardizer_", None), np.asarray(y, dtype=float))
    classes = est.classes_
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, classes.size - 1)
    if np.any(classes[idx] != y):
        raise LabelError(f"{args.data}: labels that are not among the model's classes {classes.tolist()}.")
    return np.where(idx == 1, 1.0, -1.0) if classes.size == 2 else np.eye(classes.size)[idx]


# --------------------------------------------------------------------------------- parser
def _add_data_options(p: argparse.ArgumentParser, *, target_help: str | None = None) -> None:
    p.add_argument("data", help="CSV (target = last column unless --target) or NPZ (arrays X, y)")
    p.add_argument("--target", default=None,
                   help=target_help or "CSV target column name or index (default: last)")
    hdr = p.add_mutually_exclusive_group()
    hdr.add_argument("--header", dest="header", action="store_const", const=True, default=None,
                     help="the CSV's first row is a header")
    hdr.add_argument("--no-header", dest="header", action="store_const", const=False,
                     help="the CSV has no header row (default: decide when unambiguous, else refuse)")
    p.add_argument("--x-key", default=None, help="NPZ array with the features (default X)")
    p.add_argument("--y-key", default=None, help="NPZ array with the targets (default y)")


def _lam_option(text: str) -> float | None:
    """``--lam``: a number, or ``auto`` (the estimator's default); its range is checked by
    :func:`_check_numbers`."""
    if text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


#: Largest ``--max-iter`` (CVXPY solvers take a C int; cvxnn.estimators.MAX_ITER_LIMIT).
_MAX_ITER_LIMIT = 2**31 - 1


def _add_model_options(p: argparse.ArgumentParser, *, backends: bool = True, lam: bool = True,
                       command: str = "fit") -> None:
    p.add_argument("--task", choices=("regression", "classification"), default="regression",
                   help="regression (real targets) or classification (labels); default regression")
    p.add_argument("--activation", choices=("relu", "gated_relu"), default="relu",
                   help="C-ReLU (default) or C-GReLU")
    p.add_argument("--loss", default=None, type=str.lower,
                   help="squared | huber | absolute (regression), logistic | squared | hinge "
                        "(classification); default squared / logistic"
                        + ("; absolute and hinge need --backend cvxpy" if backends
                           else "; absolute and hinge are refused (the native solvers need a smooth loss)"))
    if lam:
        positive = "> 0 with the native backend, 0 allowed with --backend cvxpy" if backends else "> 0"
        p.add_argument("--lam", type=_lam_option, default=None,
                       help=f"regularisation strength ({positive}), or 'auto' (default), the estimator's "
                            "default: 0.01 n for classification, 0.03 n for gated_relu regression (n "
                            "samples) and 1.0 for relu regression; lam weighs the penalty of the program "
                            "on standardized data (on the raw data with --no-standardize)")
    p.add_argument("--n-gates", type=int, default=100, help="gates to sample (default 100)")
    seeded = "the gates and of the held-out split (--val-fraction)" if command == "path" else "the gates"
    p.add_argument("--seed", type=int, default=0, help=f"seed of {seeded} (default 0)")
    p.add_argument("--no-bias", action="store_true", help="no bias column (default: penalised bias)")
    std = p.add_mutually_exclusive_group()
    std.add_argument("--standardize", dest="standardize", action="store_true", default=True,
                     help="fit on standardized columns (and, for regression, standardized targets) and "
                          "map the model back to raw data (default)")
    std.add_argument("--no-standardize", dest="standardize", action="store_false",
                     help="fit on the raw columns and targets")
    p.add_argument("--class-weight", choices=("balanced",), default=None,
                   help="classification: weight classes inversely to their frequency")
    if backends:
        p.add_argument("--backend", choices=("native", "cvxpy"), default="native",
                       help="native solvers (default) or CVXPY")
        p.add_argument("--solver", default=None,
                       help="CVXPY solver with --backend cvxpy: clarabel (default), scs, ...")
    p.add_argument("--tol", type=float, default=None,
                   help="the native solvers' relative duality-gap tolerance, in (0, 1) (default 1e-6)"
                        + ("; not with --backend cvxpy" if backends else ""))
    limited = ("the native solver's iteration limit (Clarabel gets at least 1000)" if not backends
               else "iteration limit of the solver (the CVXPY solver's too with --backend cvxpy)")
    p.add_argument("--max-iter", type=int, default=10_000,
                   help=f"{limited}; default 10000")


def _add_progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress on stderr (auto: when stderr is a terminal)")


class _Parser(argparse.ArgumentParser):
    """argparse with cvxnn's error format: one line ``cvxnn: error: ...`` on stderr, exit 2
    (argparse's own prints the usage block first and names the subcommand's program)."""

    def error(self, message: str):  # noqa: D102 (argparse API)
        self.exit(2, f"cvxnn: error: {message} (see '{self.prog} --help')\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cvxnn", description="Two-layer networks by convex optimization.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v, -vv)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small C-ReLU network on shipped data")
    demo.add_argument("--lam", type=float, default=0.1,
                      help="regularisation strength, a finite number >= 0 (default 0.1)")
    demo.add_argument("--n-gates", type=int, default=40, help="gates to sample (default 40)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the gates (default 0)")
    demo.set_defaults(func=_cmd_demo)

    fit = sub.add_parser("fit", help="fit a model on a CSV/NPZ file; save it and print a report")
    _add_data_options(fit)
    _add_model_options(fit)
    fit.add_argument("-o", "--output", default=None,
                     help="model file, or a directory to write DATA.model.npz in (default DATA.model.npz)")
    fit.add_argument("--report", default=None, help="also write the report as JSON here")
    _add_progress_option(fit)
    fit.set_defaults(func=_cmd_fit)

    for name, helptext in (("predict", "predictions of a saved model on a CSV/NPZ file (CSV on stdout)"),
                           ("score", "accuracy / R^2 of a saved model on labelled data")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("model", help="model file written by 'cvxnn fit' or 'cvxnn prune'")
        _add_data_options(cmd, target_help="target column (default: the one the model was fitted on; "
                                           "predict ignores it)")
        if name == "predict":
            cmd.add_argument("-o", "--output", default=None, help="write the CSV here instead of stdout")
            cmd.add_argument("--proba", action="store_true", help="class probabilities (logistic loss)")
            cmd.set_defaults(func=_cmd_predict)
        else:
            cmd.set_defaults(func=_cmd_score)

    path = sub.add_parser("path", help="regularisation path with validation scores (warm-started)")
    _add_data_options(path)
    _add_model_options(path, lam=False, command="path")  # the grid: --lams or --n-lams
    path.add_argument("--n-lams", type=int, default=None, help="grid size (default 10)")
    path.add_argument("--lam-min-ratio", type=float, default=None,
                      help="smallest lam as a fraction of lam_max (default 1e-3)")
    path.add_argument("--lams", default=None,
                      help="explicit comma-separated grid (instead of --n-lams and --lam-min-ratio)")
    path.add_argument("--val-fraction", type=float, default=None,
                      help="fraction of rows held out for the validation score (default 0.2; 0: none)")
    path.add_argument("--cv", type=int, default=None,
                      help="K-fold cross-validated scores instead of a held-out fraction (--val-fraction)")
    path.add_argument("--n-jobs", type=int, default=1,
                      help="parallel segments of the grid via joblib (-1: all cores; default 1)")
    path.add_argument("--csv", default=None, help="also write the table as CSV here")
    path.add_argument("--plot", default=None,
                      help="plot file (default DATA.path.png, written when matplotlib is installed; "
                           "'none': no plot)")
    _add_progress_option(path)
    path.set_defaults(func=_cmd_path)

    prune = sub.add_parser("prune", help="prune a saved model to a minimal one (same objective)")
    prune.add_argument("model", help="model file written by 'cvxnn fit'")
    _add_data_options(prune, target_help="target column (default: the one the model was fitted on)")
    prune.add_argument("--width", type=int, default=None,
                       help="prune past minimal, approximately, down to this many blocks "
                            "(default: exact pruning to a minimal model)")
    prune.add_argument("-o", "--output", default=None,
                       help="pruned model file or directory (default MODEL.pruned.npz)")
    _add_progress_option(prune)
    prune.set_defaults(func=_cmd_prune)

    verify = sub.add_parser("verify", help="solve with native and Clarabel on the same patterns; compare")
    _add_data_options(verify)
    _add_model_options(verify, backends=False, command="verify")  # native against Clarabel, always
    verify.add_argument("--rtol", type=float, default=1e-5,
                        help="largest relative objective difference accepted (default 1e-5)")
    _add_progress_option(verify)
    verify.set_defaults(func=_cmd_verify)
    return parser


#: Defaults of options that are None until :func:`_resolve_options` has checked that the
#: command would not ignore them.
_DEFAULTS = {"x_key": "X", "y_key": "y", "tol": 1e-6, "n_lams": 10, "lam_min_ratio": 1e-3, "val_fraction": 0.2}


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse out-of-range numbers of the model options here, with the option's name, rather
    than in the estimators, whose messages name their Python parameters (``n_gates must be >=
    1``): ``--lam`` finite and ``>= 0``, ``--n-gates >= 1``, ``--seed >= 0``, ``--max-iter`` from 1
    to 2**31 - 1, ``--tol`` in ``(0, 1)`` (a negative ``--lam`` with the native backend is refused
    with the estimator's options, which say ``> 0``).

    Raises
    ------
    InvalidParameterError
        Naming the option and the range it takes.
    """
    from .errors import InvalidParameterError

    lam = getattr(args, "lam", None)
    if lam is not None and not np.isfinite(lam):
        raise InvalidParameterError(f"--lam must be a finite number, got {lam:g}.")
    if lam is not None and lam < 0 and (args.command == "demo" or getattr(args, "backend", None) == "cvxpy"):
        # (the native backend's "> 0" is checked with the estimator's options)
        raise InvalidParameterError(f"--lam must be >= 0, got {lam:g}.")
    for option, key, low, high in (("--n-gates", "n_gates", 1, None), ("--seed", "seed", 0, None),
                                   ("--max-iter", "max_iter", 1, _MAX_ITER_LIMIT)):
        value = getattr(args, key, None)
        if value is not None and (value < low or (high is not None and value > high)):
            bound = f">= {low}" if high is None else f"from {low} to {high}"
            raise InvalidParameterError(f"{option} must be an integer {bound}, got {value}.")
    tol = getattr(args, "tol", None)
    if tol is not None and not 0 < tol < 1:
        raise InvalidParameterError(f"--tol is a relative duality gap and must be in (0, 1) (e.g. 1e-6), "
                                    f"got {tol:g}.")


#: ``--loss`` values of each ``--task`` (``cross_entropy``: the classifiers' name for the
#: multinomial form of ``logistic``, which they use with more than two classes).
_LOSSES = {"regression": ("squared", "huber", "absolute"),
           "classification": ("logistic", "squared", "hinge", "cross_entropy")}


def _resolve_options(args: argparse.Namespace) -> None:
    """Refuse out-of-range numbers (:func:`_check_numbers`), a ``--loss`` that is not one of
    ``--task``'s (of the other task, or unknown), and an option that the command would ignore (a
    usage error, as the docs promise), then fill in the defaults of :data:`_DEFAULTS`:
    ``--target`` / ``--header`` / ``--no-header`` with an NPZ file and ``--x-key`` / ``--y-key``
    with a CSV file; ``--tol`` with ``--backend cvxpy`` (CVXPY solvers keep their own
    tolerances); ``--n-lams`` / ``--lam-min-ratio`` with ``--lams`` and ``--val-fraction`` with
    ``--cv`` (path).

    Raises
    ------
    InvalidParameterError
        Naming the option and what it conflicts with.
    """
    from .errors import InvalidParameterError

    _check_numbers(args)
    data = getattr(args, "data", None)
    if data is not None:
        if Path(data).suffix.lower() == ".npz":
            if args.target is not None:
                raise InvalidParameterError(
                    f"--target names a CSV column; {data} is an NPZ file, whose arrays are chosen with "
                    "--x-key / --y-key.")
            if args.header is not None:
                flag = "--header" if args.header else "--no-header"
                raise InvalidParameterError(f"{flag} describes a CSV file; {data} is an NPZ file.")
        else:
            for option, value in (("--x-key", args.x_key), ("--y-key", args.y_key)):
                if value is not None:
                    raise InvalidParameterError(
                        f"{option} names an array of an NPZ file; {data} is read as CSV (its target column "
                        "is chosen with --target).")
    loss = getattr(args, "loss", None)
    if loss is not None:
        task = args.task
        losses = _LOSSES[task]
        if loss not in losses:
            other = "classification" if task == "regression" else "regression"
            hint = (f"; it is a {other} loss (pass --task {other})" if loss in _LOSSES[other]
                    else "")
            raise InvalidParameterError(f"--loss {loss} is not a {task} loss{hint}; {task} losses are "
                                        f"{', '.join(map(repr, losses))}.")
    if getattr(args, "backend", None) == "cvxpy" and getattr(args, "tol", None) is not None:
        raise InvalidParameterError("--tol is the native solvers' tolerance; CVXPY solvers keep their own "
                                    "(omit --tol with --backend cvxpy).")
    if getattr(args, "command", None) == "path":
        if args.lams is not None:
            given = [o for o, v in (("--n-lams", args.n_lams), ("--lam-min-ratio", args.lam_min_ratio))
                     if v is not None]
            if given:
                raise InvalidParameterError(f"--lams gives the grid, so {' and '.join(given)} would be ignored "
                                            f"(only the default grid uses {'it' if len(given) == 1 else 'them'}); "
                                            "give one or the other.")
        if args.cv is not None and args.val_fraction is not None:
            raise InvalidParameterError("--cv and --val-fraction are two ways to score validation; give one "
                                        "(--cv fits the path on all rows, --val-fraction holds rows out).")
    for key, value in _DEFAULTS.items():
        if hasattr(args, key) and getattr(args, key) is None:
            setattr(args, key, value)


#: Python API spellings in library messages and the command-line options that say the same
#: (regular expressions, applied in order by :func:`_shell_text`).
_SHELL_SPELLINGS = (
    (r"get_loss\('cross_entropy', reduction=\.\.\.\)", "--loss logistic"),
    (r"(?<![\w-])backend='(?:clarabel|cvxpy)'", "--backend cvxpy"),
    (r"(?<![\w-])backend='native'", "--backend native"),
    (r"(?<![\w-])backend='(\w+)'", r"--backend cvxpy --solver \1"),
    (r"(?<![\w-])standardize=True", "--standardize"),
    (r"(?<![\w-])standardize=False", "--no-standardize"),
    (r"(?<![\w-])lam='auto'", "--lam auto"),
    (r"(?<![\w-])max_iter\b", "--max-iter"),
    (r"(?<![\w-])n_gates\b", "--n-gates"),
    (r"(?<![\w.-])tol\b(?!_)", "--tol"),
    (r"tighten its tolerances \(for Clarabel, pass [^)]*\) or use the native solvers, whose status is their "
     r"certificate", "'cvxnn fit' with the native solvers (--backend native) certifies its solves"),
    (r"\bpass lams\b", "give --lams"),
    (r"\buse 'logistic' or --loss logistic\b", "use --loss logistic"),
    (r"or 'squared' \(one-hot targets\)", "or --loss squared (one-hot targets)"),
)


def _shell_text(message: str) -> str:
    """A library message (an error, a warning) as a shell user reads it: one line, with the
    command-line options in place of the Python parameters it names (``max_iter`` is
    ``--max-iter``, ``backend='clarabel'`` is ``--backend cvxpy``, "pass lams" is "give --lams")."""
    text = " ".join(str(message).split())
    for pattern, replacement in _SHELL_SPELLINGS:
        text = re.sub(pattern, replacement, text)
    return text


#: numpy's floating-point warnings ("divide by zero encountered in divide"): raised inside a
#: solver's arithmetic, they say nothing a shell user can act on by themselves.
_NUMPY_FP = re.compile(r"^(divide by zero|overflow|underflow|invalid value) encountered in \w+")


def _warning_line(message, category, args, fp_seen: list) -> str | None:
    """The one ``cvxnn: warning: ...`` line of a warning (None: already said). numpy's
    floating-point warnings from a solve become one line for the whole command that says where
    they come from and what decides about the result (its status; exit status 1 when it is not
    certified); the others are translated by :func:`_shell_text`."""
    text = _shell_text(message)
    if issubclass(category, RuntimeWarning) and _NUMPY_FP.match(text):
        fp_seen.append(text)
        if len(fp_seen) > 1:
            logger.debug("floating-point warning: %s", text)
            return None
        lam = getattr(args, "lam", None)
        at = f" at --lam {lam:g}" if isinstance(lam, float) else ""
        return (f"the solver's floating-point arithmetic overflowed or divided by zero{at} (numpy: {text}); "
                "the solve's status says whether its result is certified (exit status 1 if not)")
    return text


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cvxnn`` console script; returns the exit status.

    Exit status: 0 success, 1 the computation finished but did not certify (not converged, a
    CVXPY "optimal" whose certified relative gap exceeds 1e-2 (:func:`_certified`), backends
    disagree), 2 a usage, data or solver error (one line on stderr), 130 interrupted
    (Ctrl-C; one line on stderr, no file is left half-written), 141 the output pipe was closed
    (``cvxnn predict ... | head``; nothing is printed).
    """
    from .errors import CvxnnError

    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        _resolve_options(args)
    except CvxnnError as exc:  # a usage error: one line, before anything is read
        print(f"cvxnn: error: {_shell_text(exc)}", file=sys.stderr)
        return 2
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    import warnings

    fp_seen: list[str] = []

    def show(message, category, filename, lineno, file=None, line=None):  # one line per warning
        text = _warning_line(message, category, args, fp_seen)
        if text is None:
            return
        lead = "\n" if ProgressBar.active else ""  # not glued to a progress line
        print(f"{lead}cvxnn: warning: {text}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return int(args.func(args))
    except KeyboardInterrupt:
        print("cvxnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. 'cvxnn predict ... | head': the reader closed the pipe
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        except (OSError, ValueError):  # stdout without a file descriptor (captured)
            pass
        return 141
    except CvxnnError as exc:
        print(f"cvxnn: error: {_shell_text(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cvxnn: error: {exc}", file=sys.stderr)
        return 2
