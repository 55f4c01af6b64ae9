"""Save and load models without pickle: one ``.npz`` file with JSON metadata.

A cvxnn model file is an ordinary NumPy ``.npz`` archive. Its arrays are the numbers
(weights, gates, masks, ...) and one extra entry, ``__cvxnn__``, holds UTF-8 JSON metadata
as a ``uint8`` array::

    {"format": "cvxnn-model", "format_version": 1, "kind": "...", "cvxnn_version": "...", ...}

``kind`` is one of

* ``"solution"`` -- a :class:`~cvxnn.solution.ConvexSolution` (or a plain
  :class:`~cvxnn.solution.ConvexModel`, ``kind="model"``) with its patterns, weights, status
  and statistics, so it can be analysed later (pruning, KKT checks) against the same data. Its
  typed fields come back as they were: ``multipliers``, ``cone_duals``, ``dual_value``,
  ``rel_gap``, ``step_size``, ``al_delta``, ``program_penalty``, ``formulation`` and
  ``training_X`` (the training data that vector-output C-ReLU solutions carry), so certificates
  and warm starts from a loaded solution equal those from the original; ``extra`` entries
  that are not numbers, arrays or lists / dicts of them, and the gated working set's
  ``check_state``, are not saved;
* ``"relu_network"`` / ``"gated_relu_network"`` -- a
  :class:`~cvxnn.networks.ReLUNetwork` / :class:`~cvxnn.networks.GatedReLUNetwork`;
* ``"estimator"`` -- a fitted estimator of :mod:`cvxnn.estimators` (hyper-parameters,
  classes, the solution and the network).

Saving is atomic: the archive is written to a temporary file in the destination folder,
flushed to disk (``fsync``) and moved over the destination with ``os.replace``, so a full
disk, a crash or Ctrl-C during :func:`save` leaves the previous file intact (and no temporary
file behind).

Loading never trusts the file:

* arrays are read with ``allow_pickle=False``, so a file can never execute code;
* before any array is read, the header of every member (compressed or not) is parsed and the
  declared sizes are summed (a negative dimension, which would cancel another entry's size,
  is refused); a file that would need more than the memory budget
  (:func:`cvxnn.operators.default_memory_budget`, or ``max_bytes``) is refused, as are
  members that are not ``.npy`` arrays, object arrays and encrypted or unknown compression;
* every array has a checksum in the metadata (``"checksums"``, BLAKE2b of dtype, shape and
  bytes); an array edited after saving (e.g. an inverted activation mask with unchanged
  shapes) is refused. Loaded patterns are also checked against their gates the first time
  they meet the training data (:meth:`cvxnn.patterns.Patterns.check_data`);
* each metadata field is type-checked (an object where an object belongs, numbers where
  numbers belong); a missing or wrong-typed field raises an error naming the field, never
  a default value. The one exception: estimator files written before the hyper-parameters
  ``standardize``, ``warm_start`` and ``class_weight`` existed lack them and load with the
  values they were fitted with (``False``, ``False``, ``None``); a ``class_weight`` dict is
  stored as its labels (with their dtype) and weights and loads as the same dict;
* an estimator must agree with its parts: a regressor has no ``classes_``, a classifier has
  labels that fit its network's outputs, the activation matches the class.

Every refusal raises :class:`~cvxnn.errors.FileFormatError` with a message that says what is
wrong (a missing file, a folder, a non-zip, foreign or too-new file, a corrupt or edited
array, a wrong-typed field, an inconsistent estimator), or
:class:`~cvxnn.errors.MemoryBudgetError` for a file too large to load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import tokenize
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .activations import ACTIVATIONS, get_activation
from .errors import (
    CvxnnError,
    CvxnnWarning,
    FileFormatError,
    FileWriteError,
    InvalidParameterError,
    MemoryBudgetError,
)
from .losses import LOSSES, Loss, get_loss
from .networks import GatedReLUNetwork, ReLUNetwork
from .patterns import Patterns
from .solution import STATUSES, ConvexModel, ConvexSolution

__all__ = ["save", "load", "read_metadata", "FORMAT", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

FORMAT = "cvxnn-model"
"""Value of the ``"format"`` key of every cvxnn model file."""
FORMAT_VERSION = 2
"""Current format version; files with a larger version are refused. Version 2 adds the
per-array checksums; version-1 files (no checksums) still load, with a warning."""
_META_KEY = "__cvxnn__"
#: The kinds of object a model file holds (the ``"kind"`` key; :func:`load`'s ``kind=``).
_FILE_KINDS = ("solution", "model", "relu_network", "gated_relu_network", "estimator")

_SOLUTION_FIELDS = ("status", "objective_value", "lam", "backend", "solver", "solve_time",
                    "compile_time", "iterations", "gap", "max_violation")
#: Typed fields of a :class:`ConvexSolution` that a solver may fill from ``extra`` or set on
#: their own (a weighted fit's multipliers, moved back to the unweighted rows, are only in the
#: field): stored under ``"typed"`` as numbers, null or the names of their array entries.
_TYPED_SCALARS = ("dual_value", "rel_gap", "step_size", "al_delta", "program_penalty")
_TYPED_ARRAYS = ("multipliers", "training_X")
_TYPED_TUPLES = ("cone_duals",)

#: Errors of zipfile / zlib / numpy's npy reader on a damaged or hostile archive member.
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError,
                NotImplementedError, KeyError, TypeError, UnicodeDecodeError,
                tokenize.TokenError, SyntaxError)  # numpy's header parser on a damaged header


def _digest(a: np.ndarray) -> str:
    """Checksum of an array: BLAKE2b of its dtype, shape and C-order bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.dtype(a.dtype).str.encode())
    h.update(repr(tuple(int(s) for s in a.shape)).encode())
    h.update(np.ascontiguousarray(a).view(np.uint8).reshape(-1) if a.size else b"")
    return h.hexdigest()


# ------------------------------------------------------------------------ typed metadata
_KINDS = {
    "object": (lambda v: isinstance(v, dict), "a JSON object"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool))
               or v in ("nan", "inf", "-inf"), "a number"),
    "null": (lambda v: v is None, "null"),
    "list": (lambda v: isinstance(v, list), "a list"),
}


def _field(meta: dict, key: str, kinds: str, where: str, path, *, required: bool = True, default=None):
    """``meta[key]`` checked against ``kinds`` (``"number|null"``...); a missing or wrong-typed
    field raises :class:`FileFormatError` naming it (``where.key``)."""
    name = f"{where}.{key}" if where else key
    if key not in meta:
        if required:
            raise FileFormatError(f"{path}: the metadata field {name!r} is missing; the file is "
                                  "damaged or was not written by cvxnn.save.")
        return default
    value = meta[key]
    options = kinds.split("|")
    if not any(_KINDS[k][0](value) for k in options):
        want = " or ".join(_KINDS[k][1] for k in options)
        raise FileFormatError(f"{path}: the metadata field {name!r} must be {want}, got "
                              f"{type(value).__name__} {json.dumps(value, default=str)[:40]}.")
    return value


# --------------------------------------------------------------------------------- helpers
def _json_scalar(v):
    """A JSON-safe version of a scalar (numpy types, nan/inf as strings), or raise TypeError."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if np.isfinite(f) else repr(f)  # "nan", "inf", "-inf"
    raise TypeError(type(v).__name__)


def _json_value(v, depth: int = 0):
    """A JSON-safe copy of a scalar, or of lists / tuples / string-keyed dicts of them (the
    diagnostics of ``extra``, e.g. a solver's ``history``), or raise TypeError. Non-finite
    floats inside a list or dict are written as ``"nan"`` / ``"inf"`` strings."""
    if isinstance(v, (list, tuple)) and depth < 4:
        return [_json_value(a, depth + 1) for a in v]
    if isinstance(v, dict) and depth < 4 and all(isinstance(k, str) for k in v):
        return {k: _json_value(a, depth + 1) for k, a in v.items()}
    return _json_scalar(v)


def _float_or_none(v):
    """A (type-checked, see :func:`_field`) JSON number, ``"nan"``/``"inf"`` or null."""
    if v is None:
        return None
    return float(v)  # "nan" / "inf" strings included


def _loss_meta(loss: Loss | None):
    if loss is None:
        return None
    meta = {"name": loss.name, "reduction": loss.reduction}
    if hasattr(loss, "delta"):
        meta["delta"] = float(loss.delta)
    return meta


def _loss_from_meta(meta, where: str = "loss", path="model file") -> Loss | None:
    if meta is None:
        return None
    if not isinstance(meta, dict) or meta.get("name") not in LOSSES:
        raise FileFormatError(f"{path}: unknown loss {json.dumps(meta, default=str)[:60]} in the "
                              f"metadata field {where!r}.")
    _field(meta, "reduction", "str", where, path, required=False)
    _field(meta, "delta", "number", where, path, required=False)
    opts = {k: v for k, v in meta.items() if k != "name"}
    try:
        return get_loss(meta["name"], **opts)
    except (CvxnnError, TypeError, ValueError) as exc:
        raise FileFormatError(f"{path}: bad loss options in the metadata field {where!r} ({exc}).") from exc


def _patterns_arrays(prefix: str, pats: Patterns) -> tuple[dict, dict]:
    arrays = {f"{prefix}gates": np.asarray(pats.gates), f"{prefix}mask": np.asarray(pats.mask)}
    meta = {"bias": bool(pats.bias), "fingerprint": pats.fingerprint}
    return arrays, meta


def _model_arrays(model: ConvexModel, prefix: str = "") -> tuple[dict, dict]:
    arrays, pmeta = _patterns_arrays(prefix + "patterns_", model.patterns)
    for name in ("U", "V", "W"):
        B = getattr(model, name)
        if B is not None:
            arrays[prefix + name] = np.asarray(B)
    meta: dict[str, Any] = {"activation": model.activation, "patterns": pmeta}
    if model.formulation is not None:
        meta["formulation"] = model.formulation
    if isinstance(model, ConvexSolution):
        meta["solution"] = {k: _json_scalar(getattr(model, k)) for k in _SOLUTION_FIELDS}
        loss = model.loss
        weights = getattr(loss, "weights", None) if type(loss).__name__ == "WeightedLoss" else None
        if weights is not None:
            # a weighted fit (sample_weight, class_weight): the base loss and its weights
            meta["solution"]["loss"] = _loss_meta(loss.base)
            meta["solution"]["loss_weighted"] = True
            arrays[prefix + "loss_weights"] = np.asarray(weights, dtype=float)
        else:
            meta["solution"]["loss"] = _loss_meta(loss)
        extra_meta: dict[str, Any] = {}
        extra_arrays: dict[str, Any] = {}
        nonfinite: list[str] = []
        for key, value in model.extra.items():
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                arrays[f"{prefix}extra__{key}"] = value
                extra_arrays[key] = "array"
            elif (isinstance(value, (tuple, list)) and value
                  and all(isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in value)):
                for k, a in enumerate(value):
                    arrays[f"{prefix}extra__{key}__{k}"] = a
                extra_arrays[key] = len(value)
            else:
                try:
                    extra_meta[key] = _json_value(value)
                except TypeError:
                    warnings.warn(f"not saving solution.extra[{key!r}] (a {type(value).__name__}, which the "
                                  "file format cannot hold); the loaded solution lacks it.", CvxnnWarning,
                                  stacklevel=3)
                    continue
                if isinstance(value, (float, np.floating)) and not np.isfinite(value):
                    nonfinite.append(key)  # written as "nan" / "inf": read back as floats
        meta["solution"]["extra"] = extra_meta
        meta["solution"]["extra_arrays"] = extra_arrays
        if nonfinite:
            meta["solution"]["extra_nonfinite"] = nonfinite
        meta["solution"]["typed"] = _typed_fields(model, prefix, arrays)
    return arrays, meta


def _concat_equal(multipliers, cone_duals) -> bool:
    """Whether ``multipliers`` are the concatenated ``cone_duals`` (as :class:`ConvexSolution` makes them)."""
    try:
        joined = np.concatenate([np.asarray(d, dtype=float) for d in cone_duals], axis=1)
    except (ValueError, TypeError, np.exceptions.AxisError):
        return False
    m = np.asarray(multipliers)
    return m.dtype == joined.dtype and np.array_equal(m, joined)


def _typed_fields(model: ConvexSolution, prefix: str, arrays: dict) -> dict:
    """The typed fields of ``model`` (:data:`_TYPED_SCALARS`, ...) as JSON: numbers, null, or the
    names of their array entries, added to ``arrays`` unless an ``extra`` entry holds the same
    array (then it is saved once)."""

    def entry(key: str, a) -> str | None:
        a = np.asarray(a)
        if a.dtype.kind not in "biuf":
            return None
        held = arrays.get(f"{prefix}extra__{key}")
        if held is not None and (held is a or (held.dtype == a.dtype and np.array_equal(held, a))):
            return f"extra__{key}"
        arrays[f"{prefix}typed__{key}"] = a
        return f"typed__{key}"

    typed: dict[str, Any] = {}
    for name in _TYPED_SCALARS:
        value = getattr(model, name)
        try:
            typed[name] = None if value is None else _json_scalar(float(value))
        except (TypeError, ValueError):
            warnings.warn(f"not saving solution.{name} (a {type(value).__name__}, not a number); the loaded "
                          "solution lacks it.", CvxnnWarning, stacklevel=4)
            typed[name] = None
    for name in _TYPED_ARRAYS + _TYPED_TUPLES:
        value = getattr(model, name)
        if value is None:
            typed[name] = None
            continue
        if name == "multipliers" and model.cone_duals is not None and _concat_equal(value, model.cone_duals):
            typed[name] = "cone_duals"  # the loaded solution concatenates them again (not saved twice)
            continue
        keys = [entry(name, value)] if name in _TYPED_ARRAYS else [entry(f"{name}__{k}", a)
                                                                   for k, a in enumerate(value)]
        if None in keys:
            warnings.warn(f"not saving solution.{name} (not an array of numbers); the loaded solution lacks it.",
                          CvxnnWarning, stacklevel=4)
            for key in keys:
                if key is not None and key.startswith("typed__"):
                    del arrays[prefix + key]
            typed[name] = None
        else:
            typed[name] = {"entry": keys[0]} if name in _TYPED_ARRAYS else {"entries": keys}
    return typed


def _network_arrays(net, prefix: str = "") -> tuple[dict, dict]:
    kind = "gated_relu_network" if isinstance(net, GatedReLUNetwork) else "relu_network"
    arrays = {prefix + "W1": net.W1, prefix + "w2": net.w2}
    for name in ("b1", "gates", "gate_bias"):
        a = getattr(net, name, None)
        if a is not None:
            arrays[prefix + name] = a
    return arrays, {"network_kind": kind}


def _estimator_arrays(est) -> tuple[dict, dict]:
    from .estimators import ESTIMATORS

    name = type(est).__name__
    if name not in ESTIMATORS or type(est) is not ESTIMATORS[name]:
        raise InvalidParameterError(f"cannot save {name}: only cvxnn estimators are supported.")
    if not hasattr(est, "solution_"):
        raise InvalidParameterError(f"this {name} is not fitted; fit it before saving.")
    params = est.get_params()
    arrays: dict[str, np.ndarray] = {}
    pmeta: dict[str, Any] = {}
    for key, value in params.items():
        if key == "gates":
            if value is not None:
                arrays["param_gates"] = np.asarray(value, dtype=float)
            pmeta[key] = None if value is None else "__array__"
        elif key == "loss" and isinstance(value, Loss):
            pmeta[key] = {"__loss__": _loss_meta(value)}
        elif key == "random_state" and not (value is None or isinstance(value, (int, np.integer))):
            pmeta[key] = None  # a Generator / RandomState cannot be stored; patterns are saved
        elif key == "class_weight" and isinstance(value, dict):
            pmeta[key] = {"__class_weight__": _class_weight_meta(value)}
        else:
            try:
                pmeta[key] = _json_scalar(value)
            except TypeError as exc:
                raise InvalidParameterError(f"cannot save hyper-parameter {key}={value!r}.") from exc
    sol_arrays, sol_meta = _model_arrays(est.solution_, prefix="solution_")
    net_arrays, net_meta = _network_arrays(est.network_, prefix="network_")
    arrays.update(sol_arrays)
    arrays.update(net_arrays)
    meta: dict[str, Any] = {
        "estimator": name,
        "params": pmeta,
        "solution": sol_meta,
        "network": net_meta,
        "fitted": {
            "objective_": _json_scalar(est.objective_),
            "convex_objective_": _json_scalar(getattr(est, "convex_objective_", est.objective_)),
            "network_tol_": _json_scalar(getattr(est, "network_tol_", 0.0)),
            "gap_": _json_scalar(est.gap_),
            "status_": est.status_,
            "n_active_neurons_": int(est.n_active_neurons_),
            "n_iter_": _json_scalar(est.n_iter_),
            "fit_time_": _json_scalar(est.fit_time_),
            "n_features_in_": int(est.n_features_in_),
        },
    }
    if hasattr(est, "feature_names_in_"):
        meta["fitted"]["feature_names_in_"] = [str(f) for f in est.feature_names_in_]
    if hasattr(est, "classes_"):
        classes = np.asarray(est.classes_)
        if classes.dtype.kind == "O" and classes.size and all(isinstance(c, str) for c in classes):
            # strings in an object array (a pandas column): saved as text, loaded back as objects
            classes = classes.astype(str)
            meta["fitted"]["classes_object"] = True
        if classes.dtype.kind not in "biufU":
            raise InvalidParameterError(
                f"cannot save class labels of dtype {classes.dtype}; use numbers or strings."
            )
        arrays["classes_"] = classes
    std = getattr(est, "standardizer_", None)
    if std is not None:  # standardize=True: the solution is on standardized data
        arrays["standardizer_mean"] = np.asarray(std.mean_, dtype=float)
        arrays["standardizer_scale"] = np.asarray(std.scale_, dtype=float)
        if std.y_mean_ is not None:  # regressors: the targets were standardized too
            arrays["standardizer_y_mean"] = np.asarray(std.y_mean_, dtype=float)
            arrays["standardizer_y_scale"] = np.asarray(std.y_scale_, dtype=float)
    return arrays, meta


def _class_weight_meta(weights: dict) -> dict:
    """A ``{label: weight}`` dict as JSON: the labels as a list (JSON object keys would have to
    be strings) with their dtype, the weights as numbers, so :func:`_class_weight_from_meta`
    gives back the same dict."""
    labels = list(weights)
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.dtype.kind not in "biufU" or (
            arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
        raise InvalidParameterError(
            f"cannot save class_weight={weights!r}: its labels must be finite numbers or strings "
            "of one kind (as the class labels)."
        )
    try:
        values = [_json_scalar(weights[k]) for k in labels]
    except TypeError as exc:
        raise InvalidParameterError(f"cannot save class_weight={weights!r}: weights must be numbers.") from exc
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InvalidParameterError(f"cannot save class_weight={weights!r}: weights must be finite numbers.")
    return {"labels": arr.tolist(), "dtype": arr.dtype.str, "weights": values}


def _class_weight_from_meta(meta, path) -> dict:
    """The ``{label: weight}`` dict stored by :func:`_class_weight_meta` (labels in their dtype)."""
    where = "params.class_weight.__class_weight__"
    labels = _field(meta, "labels", "list", where, path)
    weights = _field(meta, "weights", "list", where, path)
    dtype = _field(meta, "dtype", "str", where, path)
    try:
        dt = np.dtype(dtype)
        if dt.kind not in "biufU" or len(labels) != len(weights):
            raise ValueError(f"dtype {dtype!r}, {len(labels)} labels, {len(weights)} weights")
        keys = np.asarray(labels, dtype=dt)
        if keys.ndim != 1 or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
            raise ValueError("labels must be a flat list and weights numbers")
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: a label beyond the dtype
        raise FileFormatError(f"{path}: the metadata field {where!r} is not a class_weight ({exc}).") from exc
    return {k.item(): float(w) for k, w in zip(keys, weights, strict=True)}


# ------------------------------------------------------------------------------------ save
def save(obj, path: str | os.PathLike, *, metadata: dict | None = None, compress: bool = True) -> Path:
    """Save a model to ``path`` (an ``.npz`` file; the suffix is added if missing).

    Parameters
    ----------
    obj : ConvexSolution, ConvexModel, ReLUNetwork, GatedReLUNetwork or a fitted estimator
    path : str or path-like
    metadata : dict, optional
        Extra JSON-serialisable information stored under ``"user"`` (e.g. the data file and
        the command that produced the model).
    compress : bool
        Use ``np.savez_compressed`` (default) or ``np.savez``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InvalidParameterError
        ``obj`` is not a model cvxnn saves, ``metadata`` is not a JSON-serialisable dict, or
        ``compress`` is not a bool.
    FileWriteError
        The file cannot be written (the destination is left as it was).
    """
    from . import __version__

    if not isinstance(compress, (bool, np.bool_)):
        raise InvalidParameterError(f"compress must be True or False, got {compress!r}.")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidParameterError(f"metadata must be a dict (JSON-serialisable), got {type(metadata).__name__}.")
    if isinstance(obj, ConvexModel):
        arrays, meta = _model_arrays(obj)
        kind = "solution" if isinstance(obj, ConvexSolution) else "model"
    elif isinstance(obj, (ReLUNetwork, GatedReLUNetwork)):
        arrays, meta = _network_arrays(obj)
        kind = meta.pop("network_kind")
    elif hasattr(obj, "get_params") and hasattr(obj, "_fit_encoded"):
        arrays, meta = _estimator_arrays(obj)
        kind = "estimator"
    else:
        hint = ""
        if hasattr(obj, "best_estimator_"):  # a fitted ...CV estimator: its refit model is the model
            hint = (f" For a {type(obj).__name__}, save its refit model `best_estimator_` (lam_ = "
                    f"{getattr(obj, 'lam_', float('nan')):.6g}); scores_ and lams_ are plain arrays.")
        elif type(obj).__name__ in ("PruneResult", "PruningStep", "DecompositionResult") and isinstance(
                getattr(obj, "model", None), ConvexModel):
            hint = f" For a {type(obj).__name__}, save its `model` (a {type(obj.model).__name__})."
        elif hasattr(obj, "geometry") and isinstance(getattr(obj, "model", None), ConvexModel):
            hint = (f" The file format has no patch geometry: a {type(obj).__name__} cannot be saved (its "
                    "`model` alone would load as a model of the patch matrix, not of images).")
        raise InvalidParameterError(
            f"cannot save an object of type {type(obj).__name__}; save a ConvexSolution, a network or a fitted "
            "cvxnn estimator." + hint
        )
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
              "cvxnn_version": __version__, **meta}
    if metadata is not None:
        try:
            # as the header is written (sorted keys: keys of mixed types cannot be sorted)
            json.dumps(metadata, sort_keys=True)
        except (TypeError, ValueError, RecursionError) as exc:
            if isinstance(exc, RecursionError):
                why = "it is nested too deeply"
            elif "not supported between instances" in str(exc):
                why = f"a dict mixes keys of different types ({exc}); use string keys"
            else:
                why = str(exc)
            raise InvalidParameterError(f"metadata must be JSON-serialisable: {why}") from None
        header["user"] = metadata
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    header["checksums"] = {k: _digest(v) for k, v in arrays.items()}
    payload = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    path = _destination(path)
    writer = np.savez_compressed if compress else np.savez
    _write_atomic(path, lambda fh: writer(fh, **{_META_KEY: payload}, **arrays))
    logger.info("saved %s to %s", kind, path)
    return path


def _destination(path) -> Path:
    """The file :func:`save` writes: ``path`` with ``.npz`` added, in an existing folder."""
    try:
        path = Path(path)
    except TypeError as exc:
        raise InvalidParameterError(f"path must be a str or path-like, got {type(path).__name__}.") from exc
    if path.is_dir():
        raise InvalidParameterError(f"{path} is a folder; give a file name (e.g. {path / 'model.npz'}).")
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if path.is_dir():
        raise InvalidParameterError(f"{path} is a folder; give another file name.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidParameterError(f"cannot save to {path}: the folder {folder} does not exist.")
    return path


def _write_atomic(path: Path, write) -> None:
    """Run ``write(fh)`` on a new temporary file next to ``path``, fsync it, then move it over
    ``path`` (``os.replace``). On any failure (disk full, Ctrl-C) the temporary file is removed
    and ``path`` is left as it was."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never follow or reuse an existing file; mode 0o666 is reduced by the umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}.") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:  # pragma: no cover - already gone
            pass
        if isinstance(exc, OSError) and not isinstance(exc, CvxnnError):
            raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}.") from exc
        raise
    try:  # make the rename itself durable (POSIX); not possible everywhere
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platform dependent (Windows)
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - platform dependent
        pass
    finally:
        os.close(dir_fd)


# ------------------------------------------------------------------------------------ load
def _member_headers(zf: zipfile.ZipFile, path) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """Parse the ``.npy`` header of every member (without reading the data).

    Returns ``{entry: (shape, dtype, nbytes)}`` with ``entry`` the member name without
    ``.npy``. Raises :class:`FileFormatError` for members that are not ``.npy`` arrays,
    duplicated names, object arrays or unreadable headers.
    """
    from numpy.lib import format as npy_format

    headers: dict[str, tuple[tuple[int, ...], np.dtype, int]] = {}
    for info in zf.infolist():
        name = info.filename
        if info.is_dir() or not name.endswith(".npy"):
            raise FileFormatError(f"{path}: the archive member {name!r} is not an .npy array; a "
                                  "cvxnn model file holds only arrays.")
        key = name[:-4]
        if key in headers:
            raise FileFormatError(f"{path}: the archive holds the entry {key!r} twice.")
        try:
            with zf.open(info) as fh:
                version = npy_format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = npy_format.read_array_header_1_0(fh)
                elif version in ((2, 0), (3, 0)):
                    shape, _, dtype = npy_format.read_array_header_2_0(fh)
                else:  # pragma: no cover - read_magic accepts only these today
                    raise ValueError(f"unsupported .npy version {version}")
        except _READ_ERRORS as exc:
            raise FileFormatError(f"{path}: the header of entry {key!r} is unreadable ({exc}).") from exc
        if dtype.hasobject:
            raise FileFormatError(f"{path}: entry {key!r} is an object array, which cannot be read "
                                  "without pickle; refusing to load it.")
        if any(int(dim) < 0 for dim in shape):
            # numpy's header parser accepts them; summed, they would cancel the size of another
            # entry and let a huge declared array past the memory budget
            raise FileFormatError(f"{path}: entry {key!r} declares the shape {shape} with a negative "
                                  "dimension; the file is damaged.")
        count = 1
        for dim in shape:
            count *= int(dim)
        headers[key] = (tuple(int(d) for d in shape), dtype, count * dtype.itemsize)
    return headers


class _Archive:
    """The arrays of an open model file, read member by member with ``allow_pickle=False``.

    Errors name the missing or damaged entry; with checksums (format version 2) each array
    read is compared with its checksum.
    """

    def __init__(self, zf: zipfile.ZipFile, path, headers: dict, checksums: dict | None) -> None:
        self.zf = zf
        self.path = path
        self.headers = headers
        self.checksums = checksums
        self.files = sorted(headers)

    def close(self) -> None:
        self.zf.close()

    def get(self, key: str, *, required: bool = True):
        from numpy.lib import format as npy_format

        if key not in self.headers:
            if required:
                raise FileFormatError(f"{self.path}: the entry {key!r} is missing; the file is "
                                      "truncated or was not written by cvxnn.save.")
            return None
        try:
            with self.zf.open(key + ".npy") as fh:
                arr = npy_format.read_array(fh, allow_pickle=False)
        except ValueError as exc:
            if "pickle" in str(exc):
                raise FileFormatError(f"{self.path}: entry {key!r} cannot be read without pickle "
                                      f"({exc}); refusing to load it.") from exc
            raise FileFormatError(f"{self.path}: entry {key!r} is corrupt ({exc}).") from exc
        except _READ_ERRORS as exc:
            raise FileFormatError(f"{self.path}: entry {key!r} is corrupt ({exc}).") from exc
        if self.checksums is not None and key != _META_KEY:
            expected = self.checksums.get(key)
            if expected is None:
                raise FileFormatError(f"{self.path}: entry {key!r} has no checksum; it was added "
                                      "after the file was saved.")
            if _digest(arr) != expected:
                raise FileFormatError(f"{self.path}: entry {key!r} does not match its checksum; the "
                                      "file was edited or damaged after it was saved.")
        return np.array(arr)


def _refuse_damaged_zip(path, magic: bytes | None = None) -> None:
    """Raise :class:`FileFormatError` for a file that :func:`zipfile.is_zipfile` refused but that
    starts as a zip archive (its first member's signature): a damaged or truncated ``.npz``
    (an interrupted copy), not a file of another kind."""
    if magic is None:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    if magic[:4] == b"PK\x03\x04":
        raise FileFormatError(f"{path}: a damaged or truncated .npz archive (it starts as a zip file "
                              "but its directory at the end is missing); copy or save the file again.")


def _open(path, max_bytes: int | None = None) -> tuple[_Archive, dict]:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(f"path must be a str or path-like, got {type(path).__name__}.")
    path = Path(path)
    if path.is_dir():
        raise FileFormatError(f"{path}: is a folder, not a model file; give the .npz file written "
                              "by cvxnn.io.save.")
    if not path.exists():
        hint = ""
        if path.suffix != ".npz" and path.with_name(path.name + ".npz").exists():
            hint = f" (cvxnn.io.save added the suffix: did you mean {path.name}.npz?)"
        raise FileFormatError(f"{path}: no such file.{hint}")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc}).") from exc
    if magic == b"\x93NUMPY":
        raise FileFormatError(f"{path}: a single .npy array, not a cvxnn model (.npz).")
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:  # pragma: no cover - a race with the file's removal
        raise FileFormatError(f"{path}: cannot be read ({exc}).") from exc
    if not is_zip:
        _refuse_damaged_zip(path, magic)
        raise FileFormatError(f"{path}: not an .npz archive (no zip structure); a cvxnn model "
                              "file is written by cvxnn.io.save.")
    try:
        zf = zipfile.ZipFile(path)
    except _READ_ERRORS as exc:
        raise FileFormatError(f"{path}: not a readable .npz archive ({exc}).") from exc
    try:
        return _open_archive(zf, path, max_bytes)
    except BaseException:
        zf.close()
        raise


def _open_archive(zf: zipfile.ZipFile, path: Path, max_bytes: int | None) -> tuple[_Archive, dict]:
    from .operators import default_memory_budget

    headers = _member_headers(zf, path)
    if max_bytes is None:
        budget = default_memory_budget()
    elif isinstance(max_bytes, (bool, np.bool_)) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise InvalidParameterError(f"max_bytes must be a positive integer (bytes), got {max_bytes!r}.")
    else:
        budget = int(max_bytes)
    total = sum(nbytes for _, _, nbytes in headers.values())
    if total > budget:
        big = max(headers, key=lambda k: headers[k][2])
        raise MemoryBudgetError(
            f"{path}: the arrays declare {total:,} bytes in all (largest: {big!r} of shape "
            f"{headers[big][0]}, {headers[big][2]:,} bytes), above the memory budget of {budget:,} "
            "bytes; refusing to read them (pass max_bytes to io.load if the file is trusted)."
        )
    if _META_KEY not in headers:
        raise FileFormatError(f"{path}: an .npz file without cvxnn metadata (entries "
                              f"{sorted(headers)[:6]}); it was not written by cvxnn.save.")
    arc = _Archive(zf, path, headers, None)
    raw = arc.get(_META_KEY)
    try:
        meta = json.loads(raw.astype(np.uint8).tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FileFormatError(f"{path}: the cvxnn metadata is not valid JSON ({exc}).") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FileFormatError(f"{path}: foreign format {meta.get('format') if isinstance(meta, dict) else meta!r}; "
                              f"expected {FORMAT!r}.")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FileFormatError(f"{path}: invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise FileFormatError(
            f"{path}: format version {version} is newer than this cvxnn reads ({FORMAT_VERSION}); "
            "upgrade cvxnn."
        )
    _field(meta, "kind", "str", "", path)
    if version >= 2:
        checksums = _field(meta, "checksums", "object", "", path)
        for key, value in checksums.items():
            if not isinstance(value, str):
                raise FileFormatError(f"{path}: the metadata field 'checksums.{key}' must be a string.")
        unknown = sorted(set(headers) - set(checksums) - {_META_KEY})
        if unknown:
            raise FileFormatError(f"{path}: entries {unknown[:5]} have no checksum; they were added "
                                  "after the file was saved.")
        # the checksums list every entry the save wrote: one that is gone (a damaged central
        # directory hides the records after it) would read as "not fitted with it" (no
        # standardizer, no gate bias) and change the predictions silently
        lost = sorted(set(checksums) - set(headers))
        if lost:
            raise FileFormatError(f"{path}: entries {lost[:5]} listed in the metadata are missing; the file "
                                  "is damaged or truncated.")
        arc.checksums = checksums
    else:
        warnings.warn(f"{path} was written by an older cvxnn (format version {version}) without "
                      "checksums; its arrays cannot be verified. Save it again to add them.",
                      CvxnnWarning, stacklevel=4)
    return arc, meta


def read_metadata(path: str | os.PathLike, *, max_bytes: int | None = None) -> dict:
    """The JSON metadata of a model file (format, version, kind, statistics, user data).

    Raises
    ------
    FileFormatError, MemoryBudgetError
        As :func:`load`.
    """
    arc, meta = _open(path, max_bytes)
    arc.close()
    return meta


def _load_patterns(arc: _Archive, prefix: str, meta: dict, where: str) -> Patterns:
    gates = arc.get(prefix + "gates")
    mask = arc.get(prefix + "mask")
    if gates.dtype.kind != "f" or mask.dtype != np.bool_:
        raise FileFormatError(f"{arc.path}: patterns have dtypes {gates.dtype}/{mask.dtype}; "
                              "expected float gates and a boolean mask.")
    if not np.all(np.isfinite(gates)):
        raise FileFormatError(f"{arc.path}: the pattern gates contain NaN or infinity.")
    pats = Patterns(gates=gates, mask=mask,
                    bias=_field(meta, "bias", "bool", where, arc.path),
                    fingerprint=_field(meta, "fingerprint", "str", where, arc.path))
    # the mask was not computed here: check it against the gates on the first use with data
    object.__setattr__(pats, "_mask_unverified", True)
    return pats


def _load_model(arc: _Archive, meta: dict, prefix: str = "", where: str = "") -> ConvexModel:
    def name(key: str) -> str:
        return f"{where}.{key}" if where else key

    pmeta = _field(meta, "patterns", "object", where, arc.path)
    pats = _load_patterns(arc, prefix + "patterns_", pmeta, name("patterns"))
    activation = _field(meta, "activation", "str", where, arc.path)
    needed = get_activation(activation).blocks if activation in ACTIVATIONS else ()
    blocks = {b: arc.get(prefix + b, required=b in needed) for b in ("U", "V", "W")}
    kwargs = dict(activation=activation, patterns=pats, **blocks)
    if "formulation" in meta:  # written since models carry their formulation
        formulation = _field(meta, "formulation", "str", where, arc.path)
        if formulation not in ("nuclear", "one_vs_all"):
            raise FileFormatError(f"{arc.path}: the metadata field '{name('formulation')}' must be "
                                  f"'nuclear' or 'one_vs_all', got {formulation!r}.")
        kwargs["formulation"] = formulation
    if "solution" not in meta:
        return ConvexModel(**kwargs)
    smeta = _field(meta, "solution", "object", where, arc.path)
    sw = name("solution")
    extra: dict[str, Any] = dict(_field(smeta, "extra", "object", sw, arc.path))
    for key, how in _field(smeta, "extra_arrays", "object", sw, arc.path).items():
        if how == "array":
            extra[key] = arc.get(f"{prefix}extra__{key}")
        elif isinstance(how, int) and not isinstance(how, bool) and 0 <= how <= len(arc.files):
            extra[key] = tuple(arc.get(f"{prefix}extra__{key}__{k}") for k in range(how))
        else:
            raise FileFormatError(f"{arc.path}: the metadata field '{sw}.extra_arrays.{key}' must be "
                                  f"\"array\" or a count of entries, got {json.dumps(how, default=str)[:40]}.")
    for key in smeta.get("extra_nonfinite", []):
        if not (isinstance(key, str) and extra.get(key) in ("nan", "inf", "-inf")):
            raise FileFormatError(f"{arc.path}: the metadata field '{sw}.extra_nonfinite' names {key!r}, "
                                  "which is not a non-finite number of the extras.")
        extra[key] = float(extra[key])
    loss = _loss_from_meta(_field(smeta, "loss", "object|null", sw, arc.path), f"{sw}.loss", arc.path)
    if _field(smeta, "loss_weighted", "bool", sw, arc.path, required=False):
        from .estimators import WeightedLoss

        weights = arc.get(prefix + "loss_weights")
        if loss is None or weights.ndim != 1 or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise FileFormatError(f"{arc.path}: the weights of '{sw}.loss' must be finite, >= 0 and 1-D.")
        loss = WeightedLoss(base=loss, weights=weights)
    floats = {k: _float_or_none(_field(smeta, k, "number|null", sw, arc.path))
              for k in ("objective_value", "lam", "solve_time", "compile_time", "gap", "max_violation")}
    if floats["objective_value"] is None:
        floats["objective_value"] = float("nan")
    if floats["lam"] is not None and not 0 <= floats["lam"] < np.inf:
        raise FileFormatError(f"{arc.path}: the metadata field '{sw}.lam' must be a finite number >= 0, got "
                              f"{floats['lam']}.")
    status = _field(smeta, "status", "str", sw, arc.path)
    if status not in STATUSES:
        raise FileFormatError(f"{arc.path}: the metadata field '{sw}.status' must be one of {STATUSES}, "
                              f"got {status!r:.40}.")
    iterations = _field(smeta, "iterations", "int|null", sw, arc.path)
    if iterations is not None and iterations < 0:
        raise FileFormatError(f"{arc.path}: the metadata field '{sw}.iterations' must be >= 0, got {iterations}.")
    typed = _load_typed(arc, smeta, prefix, sw)
    sol = ConvexSolution(**kwargs, status=status, loss=loss,
                         backend=_field(smeta, "backend", "str", sw, arc.path),
                         solver=_field(smeta, "solver", "str", sw, arc.path),
                         iterations=iterations, extra=extra, **floats,
                         **{k: v for k, v in (typed or {}).items() if not (v is None or isinstance(v, str))})
    if typed is not None:  # a field left None stays None (not filled from ``extra``)
        for name, value in typed.items():
            if value is None:
                setattr(sol, name, None)
    return sol


def _load_typed(arc: _Archive, smeta: dict, prefix: str, sw: str) -> dict | None:
    """The typed fields stored by :func:`_typed_fields` (None for files written without them)."""
    tmeta = _field(smeta, "typed", "object", sw, arc.path, required=False)
    if tmeta is None:
        return None
    where = f"{sw}.typed"
    typed: dict[str, Any] = {}
    for name in _TYPED_SCALARS:
        typed[name] = _float_or_none(_field(tmeta, name, "number|null", where, arc.path))

    def array(key, name: str) -> np.ndarray:
        if not (isinstance(key, str) and (key.startswith("typed__") or key.startswith("extra__"))):
            raise FileFormatError(f"{arc.path}: the metadata field '{where}.{name}' names the entry "
                                  f"{json.dumps(key, default=str)[:40]}, which is not an array of the solution.")
        a = arc.get(prefix + key)
        if a.dtype.kind not in "biuf":
            raise FileFormatError(f"{arc.path}: the entry {key!r} of '{where}.{name}' must hold numbers, "
                                  f"got dtype {a.dtype}.")
        return a

    for name in _TYPED_ARRAYS:
        value = _field(tmeta, name, "object|null" + ("|str" if name == "multipliers" else ""), where, arc.path)
        if value == "cone_duals":  # concatenated from the cone duals when the solution is made
            typed[name] = "cone_duals"
            continue
        if isinstance(value, str):
            raise FileFormatError(f"{arc.path}: the metadata field '{where}.{name}' must be an object, null "
                                  f"or 'cone_duals', got {value[:40]!r}.")
        typed[name] = None if value is None else array(_field(value, "entry", "str", f"{where}.{name}", arc.path),
                                                        name)
    for name in _TYPED_TUPLES:
        value = _field(tmeta, name, "object|null", where, arc.path)
        if value is None:
            typed[name] = None
            continue
        keys = _field(value, "entries", "list", f"{where}.{name}", arc.path)
        if len(keys) > len(arc.files):
            raise FileFormatError(f"{arc.path}: the metadata field '{where}.{name}.entries' names more "
                                  "entries than the file holds.")
        typed[name] = tuple(array(k, name) for k in keys)
    if isinstance(typed["multipliers"], str) and typed["cone_duals"] is None:
        raise FileFormatError(f"{arc.path}: '{where}.multipliers' refers to the cone duals, which the file lacks.")
    return typed


def _load_network(arc: _Archive, kind: str, prefix: str = ""):
    W1, w2 = arc.get(prefix + "W1"), arc.get(prefix + "w2")
    b1 = arc.get(prefix + "b1", required=False)
    if kind == "relu_network":
        foreign = [k for k in ("gates", "gate_bias") if prefix + k in arc.files]
        if foreign:  # a gated network's file with its kind changed: it would load as another function
            raise FileFormatError(f"{arc.path}: a relu_network file holds {foreign}, which only gated networks "
                                  "have; the file's kind does not match its arrays.")
        return ReLUNetwork(W1=W1, w2=w2, b1=b1)
    if kind == "gated_relu_network":
        return GatedReLUNetwork(W1=W1, w2=w2, b1=b1, gates=arc.get(prefix + "gates"),
                                gate_bias=arc.get(prefix + "gate_bias", required=False))
    raise FileFormatError(f"{arc.path}: unknown network kind {kind!r}.")


#: JSON types accepted for each saved hyper-parameter value (``loss`` and ``class_weight`` may
#: also be objects).
_PARAM_KINDS = "number|str|bool|null"
#: Hyper-parameters added after the first estimator files were written, with the value that
#: reproduces how those files were fitted (no standardization, no warm start, no class weights).
_PARAMS_ADDED = {"standardize": False, "warm_start": False, "class_weight": None}


def _load_estimator(arc: _Archive, meta: dict):
    from .estimators import ESTIMATORS, _check_params

    name = _field(meta, "estimator", "str", "", arc.path)
    if name not in ESTIMATORS:
        raise FileFormatError(f"{arc.path}: unknown estimator {name!r}; expected one of {sorted(ESTIMATORS)}.")
    cls = ESTIMATORS[name]
    params = dict(_field(meta, "params", "object", "", arc.path))
    expected = set(cls().get_params())
    for key, value in _PARAMS_ADDED.items():
        if key in expected and key not in params:  # a file written before the parameter existed
            params[key] = value
    missing = sorted(expected - set(params))
    if missing:
        raise FileFormatError(f"{arc.path}: the metadata field 'params' lacks {missing} for {name}; "
                              "refusing to fill in defaults.")
    for key in params:
        _field(params, key, _PARAM_KINDS + ("|object" if key in ("loss", "class_weight") else ""), "params",
               arc.path)
    if isinstance(params.get("class_weight"), dict):
        cw_meta = _field(params["class_weight"], "__class_weight__", "object", "params.class_weight", arc.path)
        params["class_weight"] = _class_weight_from_meta(cw_meta, arc.path)
    if params.get("gates") == "__array__":
        params["gates"] = arc.get("param_gates")
    if isinstance(params.get("loss"), dict):
        loss_meta = _field(params["loss"], "__loss__", "object", "params.loss", arc.path)
        params["loss"] = _loss_from_meta(loss_meta, "params.loss.__loss__", arc.path)
    for key in ("lam", "tol"):
        if isinstance(params.get(key), str):
            params[key] = float(params[key]) if params[key] in ("nan", "inf", "-inf") else params[key]
    est = cls()
    try:
        est.set_params(**params)
        _check_params(est)  # the rules of fit: lam a number >= 0 or "auto", tol in (0, 1), ...
    except ValueError as exc:
        raise FileFormatError(f"{arc.path}: bad hyper-parameters for {name}: {exc}") from exc
    solution = _load_model(arc, _field(meta, "solution", "object", "", arc.path), prefix="solution_",
                           where="solution")
    nmeta = _field(meta, "network", "object", "", arc.path)
    network = _load_network(arc, _field(nmeta, "network_kind", "str", "network", arc.path), prefix="network_")
    fitted = _field(meta, "fitted", "object", "", arc.path)
    values = {
        "objective_": _float_or_none(_field(fitted, "objective_", "number|null", "fitted", arc.path)),
        "convex_objective_": _float_or_none(_field(fitted, "convex_objective_", "number|null", "fitted",
                                                   arc.path, required=False)),
        "network_tol_": _float_or_none(_field(fitted, "network_tol_", "number|null", "fitted", arc.path,
                                              required=False)),
        "gap_": _float_or_none(_field(fitted, "gap_", "number|null", "fitted", arc.path)),
        "status_": _field(fitted, "status_", "str", "fitted", arc.path),
        "n_active_neurons_": _field(fitted, "n_active_neurons_", "int", "fitted", arc.path),
        "n_iter_": _field(fitted, "n_iter_", "int|null", "fitted", arc.path),
        "fit_time_": _float_or_none(_field(fitted, "fit_time_", "number|null", "fitted", arc.path)),
        "n_features_in_": _field(fitted, "n_features_in_", "int", "fitted", arc.path),
    }
    names = _field(fitted, "feature_names_in_", "list", "fitted", arc.path, required=False)
    if names is not None and not all(isinstance(f, str) for f in names):
        raise FileFormatError(f"{arc.path}: the metadata field 'fitted.feature_names_in_' must be a "
                              "list of strings.")
    if values["status_"] not in STATUSES:
        raise FileFormatError(f"{arc.path}: the metadata field 'fitted.status_' must be one of {STATUSES}, "
                              f"got {values['status_']!r:.40}.")
    if values["n_iter_"] is not None and values["n_iter_"] < 0:
        raise FileFormatError(f"{arc.path}: the metadata field 'fitted.n_iter_' must be >= 0, got {values['n_iter_']}.")
    if "convex_objective_" not in fitted:  # older files: objective_ was the program's value
        values["convex_objective_"] = values["objective_"]
    if values["network_tol_"] is None:
        # older files: exact zeros for the native solvers; a CVXPY fit's threshold needs the
        # training data, so the relative NETWORK_TOL (its value when the largest block dominates)
        from .estimators import NETWORK_TOL

        values["network_tol_"] = 0.0 if solution.backend == "native" else float(NETWORK_TOL)
    classes = arc.get("classes_", required=False)
    _check_estimator_parts(arc.path, cls, solution, network, values, names, classes)
    est.solution_ = solution
    est.lam_ = None if solution.lam is None else float(solution.lam)  # the lam of the fit ("auto" resolved)
    est.patterns_ = solution.patterns
    est.network_ = network
    for key, value in values.items():
        setattr(est, key, value)
    if names is not None:
        est.feature_names_in_ = np.asarray(names, dtype=object)
    if classes is not None:
        if _field(fitted, "classes_object", "bool", "fitted", arc.path, required=False):
            if classes.dtype.kind != "U":
                raise FileFormatError(f"{arc.path}: 'fitted.classes_object' is set but the classes are not text.")
            classes = classes.astype(object)
        est.classes_ = classes
    est.standardizer_ = _load_standardizer(arc, values["n_features_in_"])
    return est


def _load_standardizer(arc: _Archive, n_features: int):
    """The stored column map of an estimator fitted with ``standardize=True`` (else None)."""
    from .preprocessing import Standardizer

    mean = arc.get("standardizer_mean", required=False)
    scale = arc.get("standardizer_scale", required=False)
    y_mean = arc.get("standardizer_y_mean", required=False)
    y_scale = arc.get("standardizer_y_scale", required=False)
    if mean is None and scale is None and y_mean is None and y_scale is None:
        return None
    if mean is None or scale is None or mean.shape != (n_features,) or scale.shape != (n_features,):
        raise FileFormatError(f"{arc.path}: the standardizer entries must both hold {n_features} values.")
    try:
        return Standardizer.from_arrays(mean, scale, y_mean, y_scale)
    except CvxnnError as exc:
        raise FileFormatError(f"{arc.path}: bad standardizer entries: {exc}") from exc


def _check_estimator_parts(path, cls, solution, network, values, names, classes) -> None:
    """Refuse an estimator whose parts disagree (a relabelled class, foreign network...)."""
    activation = getattr(cls, "_activation", None)
    kind = "gated_relu_network" if isinstance(network, GatedReLUNetwork) else "relu_network"
    if activation is not None and (solution.activation != activation or kind != f"{activation}_network"):
        raise FileFormatError(f"{path}: a {cls.__name__} needs a {activation} solution and network, but "
                              f"the file holds a {solution.activation} solution and a {kind}.")
    if network.n_features != values["n_features_in_"]:
        raise FileFormatError(f"{path}: the network has {network.n_features} inputs but "
                              f"the estimator records {values['n_features_in_']} features.")
    if solution.patterns.n_features != network.n_features:
        raise FileFormatError(f"{path}: the patterns have {solution.patterns.n_features} features but "
                              f"the network has {network.n_features} inputs.")
    if names is not None and len(names) != values["n_features_in_"]:
        raise FileFormatError(f"{path}: {len(names)} feature names for {values['n_features_in_']} features.")
    if not 0 <= values["n_active_neurons_"] <= max(network.n_neurons, 0):
        raise FileFormatError(f"{path}: n_active_neurons_={values['n_active_neurons_']} but the network "
                              f"has {network.n_neurons} neurons.")
    from .estimators import _ClassifierBase

    classifier = issubclass(cls, _ClassifierBase)
    if classifier:
        if classes is None:
            raise FileFormatError(f"{path}: a {cls.__name__} needs its class labels (entry 'classes_'); "
                                  "the file holds a regressor or is damaged.")
        if classes.dtype.kind == "f" and not np.all(np.isfinite(classes)):
            raise FileFormatError(f"{path}: the class labels 'classes_' contain NaN or infinity.")
        if classes.ndim != 1 or classes.size < 2 or np.unique(classes).size != classes.size:
            raise FileFormatError(f"{path}: 'classes_' must hold at least 2 distinct labels, got "
                                  f"shape {classes.shape}.")
        want = 1 if classes.size == 2 else classes.size
        if network.n_outputs != want or (classes.size > 2 and network.w2.ndim != 2):
            raise FileFormatError(f"{path}: {classes.size} classes need {want} network output(s), the "
                                  f"network has {network.n_outputs}.")
        loss = solution.loss.name if getattr(solution, "loss", None) is not None else None
        if loss is not None and loss not in ("logistic", "cross_entropy", "squared", "hinge", "weighted"):
            raise FileFormatError(f"{path}: a {cls.__name__} cannot hold a model fitted with the "
                                  f"{loss} loss.")
    elif classes is not None:
        raise FileFormatError(f"{path}: a {cls.__name__} has no class labels, but the file holds "
                              "'classes_'; it was written for a classifier.")


def load(path: str | os.PathLike, *, kind: str | tuple[str, ...] | None = None,
         max_bytes: int | None = None):
    """Load a model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
    kind : str or tuple of str, optional
        Accept only these kinds (``"solution"``, ``"model"``, ``"relu_network"``,
        ``"gated_relu_network"``, ``"estimator"``); a file of another kind raises
        :class:`~cvxnn.errors.FileFormatError`, a name not in this list
        :class:`~cvxnn.errors.InvalidParameterError`.
    max_bytes : int, optional
        Largest total size of the arrays, as declared by their headers, that may be read;
        default :func:`cvxnn.operators.default_memory_budget`.

    Returns
    -------
    ConvexSolution, ConvexModel, ReLUNetwork, GatedReLUNetwork or an estimator

    Raises
    ------
    FileFormatError
        For a missing, corrupt, foreign, edited or too-new file, a folder, wrong-typed
        metadata, an inconsistent estimator, or a file of another ``kind``.
    MemoryBudgetError
        When the arrays declare more than ``max_bytes`` in all (checked before reading them).
    """
    if kind is not None:
        wanted = (kind,) if isinstance(kind, str) else kind
        if not isinstance(wanted, tuple) or not wanted or not all(isinstance(k, str) for k in wanted):
            raise InvalidParameterError(f"kind must be a kind name or a tuple of them (e.g. 'solution'), got {kind!r}.")
        unknown = [k for k in wanted if k not in _FILE_KINDS]
        if unknown:  # a typo would otherwise blame every file ("holds a 'estimator', expected network")
            raise InvalidParameterError(f"unknown kind {unknown[0]!r}; expected one of {_FILE_KINDS}.")
    arc, meta = _open(path, max_bytes)
    try:
        found = meta["kind"]
        if kind is not None:
            wanted = (kind,) if isinstance(kind, str) else tuple(kind)
            if found not in wanted:
                raise FileFormatError(f"{arc.path}: holds kind {found!r}, expected {' or '.join(wanted)}.")
        try:
            if found in ("solution", "model"):
                return _load_model(arc, meta)
            if found in ("relu_network", "gated_relu_network"):
                return _load_network(arc, found)
            if found == "estimator":
                return _load_estimator(arc, meta)
        except (FileFormatError, MemoryBudgetError):
            raise
        except (CvxnnError, ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
            raise FileFormatError(f"{arc.path}: inconsistent {found} data ({exc}).") from exc
        raise FileFormatError(f"{arc.path}: unknown kind {found!r}.")
    finally:
        arc.close()
