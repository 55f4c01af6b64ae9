"""Save and load models without pickle: one ``.npz`` file with JSON metadata.

A cvxnn model file is an ordinary NumPy ``.npz`` archive. Its arrays are the numbers
(weights, gates, masks, ...) and one extra entry, ``__cvxnn__``, holds UTF-8 JSON metadata
as a ``uint8`` array::

    {"format": "cvxnn-model", "format_version": 1, "kind": "...", "cvxnn_version": "...", ...}

``kind`` is one of

* ``"solution"`` -- a :class:`~cvxnn.solution.ConvexSolution` (or a plain
  :class:`~cvxnn.solution.ConvexModel`, ``kind="model"``) with its patterns, weights, status
  and statistics, so it can be analysed later (pruning, KKT checks) against the same data;
* ``"relu_network"`` / ``"gated_relu_network"`` -- a
  :class:`~cvxnn.networks.ReLUNetwork` / :class:`~cvxnn.networks.GatedReLUNetwork`;
* ``"estimator"`` -- a fitted estimator of :mod:`cvxnn.estimators` (hyper-parameters,
  classes, the solution and the network).

Loading uses ``np.load(..., allow_pickle=False)``, so a file can never execute code. A file
that is not a zip archive, lacks the metadata, names another format, has a newer format
version, or holds arrays of the wrong shape raises :class:`~cvxnn.errors.FileFormatError`
with a message that says which.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CvxnnError, FileFormatError, InvalidParameterError
from .losses import LOSSES, Loss, get_loss
from .networks import GatedReLUNetwork, ReLUNetwork
from .patterns import Patterns
from .solution import ConvexModel, ConvexSolution

__all__ = ["save", "load", "read_metadata", "FORMAT", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

FORMAT = "cvxnn-model"
"""Value of the ``"format"`` key of every cvxnn model file."""
FORMAT_VERSION = 1
"""Current format version; files with a larger version are refused."""
_META_KEY = "__cvxnn__"

_SOLUTION_FIELDS = ("status", "objective_value", "lam", "backend", "solver", "solve_time",
                    "compile_time", "iterations", "gap", "max_violation")


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


def _float_or_none(v):
    if v is None:
        return None
    if isinstance(v, str):
        return float(v)  # "nan" / "inf"
    return float(v)


def _loss_meta(loss: Loss | None):
    if loss is None:
        return None
    meta = {"name": loss.name, "reduction": loss.reduction}
    if hasattr(loss, "delta"):
        meta["delta"] = float(loss.delta)
    return meta


def _loss_from_meta(meta) -> Loss | None:
    if meta is None:
        return None
    if not isinstance(meta, dict) or meta.get("name") not in LOSSES:
        raise FileFormatError(f"unknown loss {meta!r} in the file metadata.")
    opts = {k: v for k, v in meta.items() if k != "name"}
    return get_loss(meta["name"], **opts)


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
    if isinstance(model, ConvexSolution):
        meta["solution"] = {k: _json_scalar(getattr(model, k)) for k in _SOLUTION_FIELDS}
        meta["solution"]["loss"] = _loss_meta(model.loss)
        extra_meta: dict[str, Any] = {}
        extra_arrays: dict[str, Any] = {}
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
                    extra_meta[key] = _json_scalar(value)
                except TypeError:
                    logger.debug("not saving solution.extra[%r] (type %s)", key, type(value).__name__)
        meta["solution"]["extra"] = extra_meta
        meta["solution"]["extra_arrays"] = extra_arrays
    return arrays, meta


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
        if classes.dtype.kind not in "biufU":
            raise InvalidParameterError(
                f"cannot save class labels of dtype {classes.dtype}; use numbers or strings."
            )
        arrays["classes_"] = classes
    return arrays, meta


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
    """
    from . import __version__

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
        raise InvalidParameterError(
            f"cannot save a {type(obj).__name__}; save a ConvexSolution, a network or a fitted "
            "cvxnn estimator."
        )
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
              "cvxnn_version": __version__, **meta}
    if metadata is not None:
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"metadata must be JSON-serialisable: {exc}") from exc
        header["user"] = metadata
    payload = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    writer = np.savez_compressed if compress else np.savez
    with open(path, "wb") as fh:
        writer(fh, **{_META_KEY: payload}, **arrays)
    logger.info("saved %s to %s", kind, path)
    return path


# ------------------------------------------------------------------------------------ load
class _Archive:
    """The arrays of an open archive, with errors that name the missing entry."""

    def __init__(self, data, path) -> None:
        self.data = data
        self.path = path

    def get(self, key: str, *, required: bool = True):
        if key not in self.data.files:
            if required:
                raise FileFormatError(f"{self.path}: the entry {key!r} is missing; the file is "
                                      "truncated or was not written by cvxnn.save.")
            return None
        try:
            return np.array(self.data[key])
        except ValueError as exc:  # object arrays (would need pickle) land here
            raise FileFormatError(f"{self.path}: entry {key!r} cannot be read without pickle "
                                  f"({exc}); refusing to load it.") from exc
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise FileFormatError(f"{self.path}: entry {key!r} is corrupt ({exc}).") from exc


def _open(path) -> tuple[_Archive, dict]:
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such file.")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise FileFormatError(f"{path}: a single .npy array, not a cvxnn model (.npz).")
    if not zipfile.is_zipfile(path):
        raise FileFormatError(f"{path}: not an .npz archive (no zip structure); a cvxnn model "
                              "file is written by cvxnn.io.save.")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise FileFormatError(f"{path}: not a readable .npz archive ({exc}).") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise FileFormatError(f"{path}: a single .npy array, not a cvxnn model (.npz).")
    arc = _Archive(data, path)
    if _META_KEY not in data.files:
        raise FileFormatError(f"{path}: an .npz file without cvxnn metadata (entries "
                              f"{sorted(data.files)[:6]}); it was not written by cvxnn.save.")
    raw = arc.get(_META_KEY)
    try:
        meta = json.loads(raw.astype(np.uint8).tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: the cvxnn metadata is not valid JSON ({exc}).") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FileFormatError(f"{path}: foreign format {meta.get('format') if isinstance(meta, dict) else meta!r}; "
                              f"expected {FORMAT!r}.")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise FileFormatError(f"{path}: invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise FileFormatError(
            f"{path}: format version {version} is newer than this cvxnn reads ({FORMAT_VERSION}); "
            "upgrade cvxnn."
        )
    return arc, meta


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata of a model file (format, version, kind, statistics, user data)."""
    arc, meta = _open(path)
    arc.data.close()
    return meta


def _load_patterns(arc: _Archive, prefix: str, meta: dict) -> Patterns:
    gates = arc.get(prefix + "gates")
    mask = arc.get(prefix + "mask")
    if gates.dtype.kind != "f" or mask.dtype != np.bool_:
        raise FileFormatError(f"{arc.path}: patterns have dtypes {gates.dtype}/{mask.dtype}; "
                              "expected float gates and a boolean mask.")
    return Patterns(gates=gates, mask=mask, bias=bool(meta.get("bias", False)),
                    fingerprint=str(meta.get("fingerprint", "")))


def _load_model(arc: _Archive, meta: dict, prefix: str = "") -> ConvexModel:
    pats = _load_patterns(arc, prefix + "patterns_", meta.get("patterns", {}))
    needed = ("V", "W") if meta.get("activation") == "relu" else ("U",)
    blocks = {name: arc.get(prefix + name, required=name in needed) for name in ("U", "V", "W")}
    kwargs = dict(activation=meta.get("activation"), patterns=pats, **blocks)
    if "solution" not in meta:
        return ConvexModel(**kwargs)
    smeta = dict(meta["solution"])
    extra_meta = dict(smeta.pop("extra", {}) or {})
    extra: dict[str, Any] = dict(extra_meta)
    for key, how in dict(smeta.pop("extra_arrays", {}) or {}).items():
        if how == "array":
            extra[key] = arc.get(f"{prefix}extra__{key}")
        else:
            extra[key] = tuple(arc.get(f"{prefix}extra__{key}__{k}") for k in range(int(how)))
    loss = _loss_from_meta(smeta.pop("loss", None))
    floats = {k: _float_or_none(smeta.get(k)) for k in ("objective_value", "lam", "solve_time",
                                                         "compile_time", "gap", "max_violation")}
    if floats["objective_value"] is None:
        floats["objective_value"] = float("nan")
    iterations = smeta.get("iterations")
    return ConvexSolution(**kwargs, status=str(smeta.get("status")), loss=loss,
                          backend=str(smeta.get("backend", "")), solver=str(smeta.get("solver", "")),
                          iterations=None if iterations is None else int(iterations), extra=extra,
                          **floats)


def _load_network(arc: _Archive, kind: str, prefix: str = ""):
    W1, w2 = arc.get(prefix + "W1"), arc.get(prefix + "w2")
    b1 = arc.get(prefix + "b1", required=False)
    if kind == "relu_network":
        return ReLUNetwork(W1=W1, w2=w2, b1=b1)
    if kind == "gated_relu_network":
        return GatedReLUNetwork(W1=W1, w2=w2, b1=b1, gates=arc.get(prefix + "gates"),
                                gate_bias=arc.get(prefix + "gate_bias", required=False))
    raise FileFormatError(f"{arc.path}: unknown network kind {kind!r}.")


def _load_estimator(arc: _Archive, meta: dict):
    from .estimators import ESTIMATORS

    name = meta.get("estimator")
    if name not in ESTIMATORS:
        raise FileFormatError(f"{arc.path}: unknown estimator {name!r}; expected one of {sorted(ESTIMATORS)}.")
    params = dict(meta.get("params", {}))
    if params.get("gates") == "__array__":
        params["gates"] = arc.get("param_gates")
    if isinstance(params.get("loss"), dict):
        params["loss"] = _loss_from_meta(params["loss"].get("__loss__"))
    for key in ("lam", "tol"):
        if isinstance(params.get(key), str):
            params[key] = float(params[key])
    est = ESTIMATORS[name]()
    try:
        est.set_params(**params)
    except ValueError as exc:
        raise FileFormatError(f"{arc.path}: bad hyper-parameters for {name}: {exc}") from exc
    est.solution_ = _load_model(arc, meta.get("solution", {}), prefix="solution_")
    est.patterns_ = est.solution_.patterns
    est.network_ = _load_network(arc, meta.get("network", {}).get("network_kind"), prefix="network_")
    fitted = meta.get("fitted", {})
    est.objective_ = _float_or_none(fitted.get("objective_"))
    est.gap_ = _float_or_none(fitted.get("gap_"))
    est.status_ = str(fitted.get("status_"))
    est.n_active_neurons_ = int(fitted.get("n_active_neurons_", est.network_.n_neurons))
    est.n_iter_ = fitted.get("n_iter_")
    est.fit_time_ = _float_or_none(fitted.get("fit_time_"))
    est.n_features_in_ = int(fitted.get("n_features_in_", est.network_.n_features))
    if "feature_names_in_" in fitted:
        est.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    classes = arc.get("classes_", required=False)
    if classes is not None:
        est.classes_ = classes
    if est.network_.n_features != est.n_features_in_:
        raise FileFormatError(f"{arc.path}: the network has {est.network_.n_features} inputs but "
                              f"the estimator records {est.n_features_in_} features.")
    return est


def load(path: str | os.PathLike, *, kind: str | tuple[str, ...] | None = None):
    """Load a model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
    kind : str or tuple of str, optional
        Accept only these kinds (``"solution"``, ``"model"``, ``"relu_network"``,
        ``"gated_relu_network"``, ``"estimator"``); others raise
        :class:`~cvxnn.errors.FileFormatError`.

    Returns
    -------
    ConvexSolution, ConvexModel, ReLUNetwork, GatedReLUNetwork or an estimator

    Raises
    ------
    FileFormatError
        For a missing, corrupt, foreign or too-new file, or one of another ``kind``.
    """
    arc, meta = _open(path)
    try:
        found = meta.get("kind")
        if kind is not None:
            wanted = (kind,) if isinstance(kind, str) else tuple(kind)
            if found not in wanted:
                raise FileFormatError(f"{arc.path}: holds a {found!r}, expected {' or '.join(wanted)}.")
        try:
            if found in ("solution", "model"):
                return _load_model(arc, meta)
            if found in ("relu_network", "gated_relu_network"):
                return _load_network(arc, found)
            if found == "estimator":
                return _load_estimator(arc, meta)
        except FileFormatError:
            raise
        except (CvxnnError, ValueError, TypeError, KeyError) as exc:
            raise FileFormatError(f"{arc.path}: inconsistent {found} data ({exc}).") from exc
        raise FileFormatError(f"{arc.path}: unknown kind {found!r}.")
    finally:
        arc.data.close()
