"""Data normalisation that maps trained models back to the original scale exactly.

Ill-conditioned data (columns whose scales differ by ``1e8``, huge offsets) slows every
solver down and can make interior-point methods stop early. The usual cure is to
standardise the columns, train, and use the result on raw data. :class:`Standardizer`
does the first step and, unlike a generic scaler, also the last one: it maps a network
or a convex model trained on standardised data to an equivalent one on raw data.

The maps (``mu`` = column means, ``s`` = column scales, ``X_s = (X - mu) / s``)
--------------------------------------------------------------------------------
A neuron ``(w, b)`` on standardised data computes ``X_s w + b = X (w / s) + (b - (mu / s)^T w)``,
so in design form (``X_a = [X, 1]``) every weight / gate vector ``theta`` becomes ``T theta`` with::

    T = [[diag(1/s), 0], [-(mu/s)^T, 1]],    [X, 1] T = [X_s, 1].

Activation patterns are therefore *identical* (the same ``D_i`` for every sample), and so are
the predictions, on every input, up to floating-point rounding (``~1e-15`` relative).
A model trained without a bias gains one when ``center=True`` (the offset ``-(mu/s)^T w``).

Targets: ``y_s = (y - y_mean) / y_scale``. The output weights are multiplied by ``y_scale``;
the offset ``y_mean`` becomes one extra neuron that is active for every input (first-layer
weights 0, bias ``t = sqrt(||y_mean||)``, output ``y_mean / t``; for a convex model an extra
pattern with the gate ``e_bias`` and an all-ones mask). It reproduces the offset exactly.

What happens to the penalty
---------------------------
The weights change, so the penalty changes: the program solved on standardised data with
``lam`` penalises ``sum_i ||theta_i||`` in *standardised* units, which in raw units is the
reweighted group norm ``sum_i ||T^{-1} theta_raw_i|| / y_scale`` (and the intercept neuron is
not penalised at all). ``lam`` is thus a standardised-scale quantity; the raw model's own
:meth:`~cvxnn.networks.ReLUNetwork.penalty` differs from the standardised one, and for the
squared loss the raw data-fit term is ``y_scale**2`` times the standardised one. Standardising
changes *which* network is optimal (as for any penalised regression), never the meaning of a
given network: :meth:`Standardizer.network_to_raw` and :meth:`Standardizer.model_to_raw` return
models whose predictions on raw data equal those of the trained model on standardised data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ._validation import as_float_array, check_bool, check_X, check_y
from .errors import InvalidParameterError, NonFiniteError, NotFittedError, ShapeError
from .networks import GatedReLUNetwork, ReLUNetwork
from .patterns import Patterns, _fingerprint

__all__ = ["Standardizer"]

logger = logging.getLogger(__name__)

#: A column whose standard deviation is below this fraction of its magnitude is treated as
#: constant (scale 1): rescaling it would only amplify rounding noise.
CONSTANT_RTOL = 1e-12


#: Columns whose largest magnitude is below this get their standard deviation on rescaled values.
TINY_COLUMN = 1e-100


def _scales(A: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column standard deviations (weighted by ``weights`` when given), with 1 for
    (numerically) constant columns, and the constant flags."""
    def std_of(B):
        if weights is None:
            return B.std(axis=0)
        mean = np.average(B, axis=0, weights=weights)
        return np.sqrt(np.average((B - mean) ** 2, axis=0, weights=weights))

    size = np.maximum(np.abs(A).max(axis=0), np.finfo(float).tiny)
    std = std_of(A)
    tiny = size < TINY_COLUMN
    if tiny.any():
        # the squares of tiny columns (|x| ~ 1e-200) underflow to 0, which read them as constant:
        # those are computed on the column divided by its largest magnitude (only those: the
        # other columns keep their bits, and with them every fit on ordinary data)
        std[tiny] = std_of(A[:, tiny] / size[tiny]) * size[tiny]
    constant = std <= CONSTANT_RTOL * size
    return np.where(constant, 1.0, std), constant


def _targets(y, name: str) -> np.ndarray:
    """Validate targets of any length (``(n,)`` or ``(n, c)``)."""
    arr = as_float_array(y, name)
    if arr.ndim not in (1, 2):
        raise ShapeError(f"{name} must have shape (n,) or (n, c), got {arr.shape}.")
    return check_y(arr, arr.shape[0], name=name)


@dataclass
class Standardizer:
    """Standardise columns of ``X`` (and optionally ``y``) and map models back exactly.

    Parameters
    ----------
    center : bool
        Subtract the column means of ``X``. The raw-scale models then carry a bias.
    scale : bool
        Divide the columns of ``X`` by their standard deviations (constant columns: by 1).
    center_y : bool
        Subtract the mean of ``y`` (per output); mapped back as an always-active neuron.
    scale_y : bool
        Divide ``y`` by its standard deviation (per output). Use only with regression losses
        (labels of logistic / hinge / cross-entropy must not be rescaled).

    Attributes
    ----------
    mean_ : ndarray of shape (d,)
        Column offsets (zeros when ``center=False``).
    scale_ : ndarray of shape (d,)
        Column scales (ones when ``scale=False``).
    constant_ : ndarray of bool, shape (d,)
        Columns detected as constant (scale 1 used).
    y_mean_, y_scale_ : ndarray of shape (c,) or None
        Target offset and scale (``c = 1`` for scalar targets); None before fitting with ``y``.

    Examples
    --------
    ::

        std = Standardizer(center_y=True, scale_y=True)
        Xs, ys = std.fit_transform(X, y)
        sol = build_program(Xs, ys, bias=True, lam=0.1).solve()
        net = std.network_to_raw(sol.to_network())
        # net.predict(X) == std.inverse_transform_y(sol.to_network().predict(Xs))
    """

    center: bool = True
    scale: bool = True
    center_y: bool = False
    scale_y: bool = False
    mean_: np.ndarray | None = field(default=None, init=False, repr=False)
    scale_: np.ndarray | None = field(default=None, init=False, repr=False)
    constant_: np.ndarray | None = field(default=None, init=False, repr=False)
    y_mean_: np.ndarray | None = field(default=None, init=False, repr=False)
    y_scale_: np.ndarray | None = field(default=None, init=False, repr=False)
    _y_ndim: int = field(default=1, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("center", "scale", "center_y", "scale_y"):
            setattr(self, name, check_bool(getattr(self, name), name))

    # --------------------------------------------------------------------- fitting
    def fit(self, X, y=None, *, sample_weight=None) -> Standardizer:
        """Learn column offsets / scales of ``X`` (and of ``y`` when given).

        Parameters
        ----------
        X : array of shape (n, d)
            Finite numbers (integers and float32 are read as float64; the statistics are float64).
        y : array of shape (n,) or (n, c), optional
            Required when ``center_y`` or ``scale_y``.
        sample_weight : array of shape (n,), optional
            Non-negative weights: the means and standard deviations of ``X`` (and ``y``) are
            weighted, so integer weights give the statistics of the data with rows repeated.

        Returns
        -------
        Standardizer
            ``self``.
        """
        X = check_X(X)
        w = None
        if sample_weight is not None:
            w = as_float_array(sample_weight, "sample_weight")
            if w.shape != (X.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.max() > 0:
                raise InvalidParameterError(
                    f"sample_weight must be {X.shape[0]} finite non-negative numbers, not all zero."
                )
            # weighted means are invariant to the scale of the weights: divided by the largest,
            # their sum and the weighted squares cannot overflow (weights of 1e308: NaN otherwise)
            w = w / w.max()
        self.mean_ = np.average(X, axis=0, weights=w) if self.center else np.zeros(X.shape[1])
        if self.scale:
            self.scale_, self.constant_ = _scales(X, w)
        else:
            self.scale_ = np.ones(X.shape[1])
            self.constant_ = np.all(X == X[0:1], axis=0)
        if self.constant_.any():
            logger.info("constant columns %s are not rescaled", np.flatnonzero(self.constant_).tolist())
        self.y_mean_ = self.y_scale_ = None
        if y is not None:
            y = check_y(y, X.shape[0])
            self._y_ndim = y.ndim
            Y = y.reshape(y.shape[0], -1)
            self.y_mean_ = np.average(Y, axis=0, weights=w) if self.center_y else np.zeros(Y.shape[1])
            self.y_scale_ = _scales(Y, w)[0] if self.scale_y else np.ones(Y.shape[1])
        elif self.center_y or self.scale_y:
            raise InvalidParameterError("center_y / scale_y need y: call fit(X, y).")
        return self

    @classmethod
    def from_arrays(cls, mean, scale, y_mean=None, y_scale=None) -> Standardizer:
        """A fitted Standardizer from stored column offsets and scales (model files).

        Parameters
        ----------
        mean, scale : arrays of shape (d,)
            ``mean_`` and ``scale_`` of a fitted Standardizer (scales positive and finite).
        y_mean, y_scale : arrays of shape (c,), optional
            ``y_mean_`` and ``y_scale_`` (both or neither); scalar targets have ``c = 1``.
        """
        mean = as_float_array(mean, "mean")
        scale = as_float_array(scale, "scale")
        if mean.ndim != 1 or scale.shape != mean.shape:
            raise ShapeError(f"mean {mean.shape} and scale {scale.shape} must be 1-D of the same length.")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise InvalidParameterError("standardizer offsets must be finite and scales positive and finite.")
        std = cls(center=bool(np.any(mean != 0)), scale=True)
        std.mean_, std.scale_ = mean, scale
        std.constant_ = scale == 1.0
        if (y_mean is None) != (y_scale is None):
            raise InvalidParameterError("pass both y_mean and y_scale, or neither.")
        if y_mean is not None:
            y_mean = as_float_array(y_mean, "y_mean")
            y_scale = as_float_array(y_scale, "y_scale")
            if y_mean.ndim != 1 or y_mean.size == 0 or y_scale.shape != y_mean.shape:
                raise ShapeError(f"y_mean {y_mean.shape} and y_scale {y_scale.shape} must be 1-D of the same length.")
            if not (np.all(np.isfinite(y_mean)) and np.all(np.isfinite(y_scale)) and np.all(y_scale > 0)):
                raise InvalidParameterError("target offsets must be finite and scales positive and finite.")
            std.center_y = bool(np.any(y_mean != 0))
            std.scale_y = bool(np.any(y_scale != 1))
            std.y_mean_, std.y_scale_ = y_mean, y_scale
            std._y_ndim = 1 if y_mean.size == 1 else 2
        return std

    def fit_transform(self, X, y=None, *, sample_weight=None):
        """:meth:`fit` then :meth:`transform` (and :meth:`transform_y` when ``y`` is given).

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`fit`.

        Returns
        -------
        ndarray or tuple of ndarray
            ``X_s`` or ``(X_s, y_s)``.
        """
        self.fit(X, y, sample_weight=sample_weight)
        if y is None:
            return self.transform(X)
        return self.transform(X), self.transform_y(y)

    def _check_fitted(self, need_y: bool = False) -> None:
        if self.mean_ is None:
            raise NotFittedError("this Standardizer is not fitted; call fit(X[, y]) first.")
        if need_y and self.y_mean_ is None:
            raise NotFittedError("this Standardizer was fitted without y; call fit(X, y).")

    @property
    def n_features(self) -> int:
        """Number of columns ``d`` seen in :meth:`fit`."""
        self._check_fitted()
        return self.mean_.shape[0]

    # ------------------------------------------------------------------ transforms
    def transform(self, X) -> np.ndarray:
        """``X_s = (X - mean_) / scale_``: a new float64 array, also for float32, integer or
        boolean ``X`` (the maps of this class are exact in float64)."""
        self._check_fitted()
        X = check_X(X)
        if X.shape[1] != self.n_features:
            raise ShapeError(f"X has {X.shape[1]} features; the Standardizer was fitted on {self.n_features}.")
        return (X - self.mean_) / self.scale_

    def inverse_transform(self, Xs) -> np.ndarray:
        """``X = X_s * scale_ + mean_`` (a new float64 array)."""
        self._check_fitted()
        Xs = check_X(Xs, name="Xs")
        if Xs.shape[1] != self.n_features:
            raise ShapeError(f"Xs has {Xs.shape[1]} features; the Standardizer was fitted on {self.n_features}.")
        return Xs * self.scale_ + self.mean_

    def transform_y(self, y) -> np.ndarray:
        """``y_s = (y - y_mean_) / y_scale_`` (a copy of ``y`` unless ``center_y`` / ``scale_y``)."""
        self._check_fitted()
        y = _targets(y, "y")
        return y if self.y_mean_ is None else self._affine_y(y, forward=True)

    def inverse_transform_y(self, ys) -> np.ndarray:
        """``y = y_s * y_scale_ + y_mean_`` (e.g. to read predictions made on standardised data)."""
        self._check_fitted()
        ys = _targets(ys, "ys")
        return ys if self.y_mean_ is None else self._affine_y(ys, forward=False)

    def _affine_y(self, y: np.ndarray, *, forward: bool) -> np.ndarray:
        Y = y.reshape(y.shape[0], -1)
        if Y.shape[1] != self.y_mean_.shape[0]:
            raise ShapeError(f"y has {Y.shape[1]} outputs; the Standardizer was fitted on {self.y_mean_.shape[0]}.")
        out = (Y - self.y_mean_) / self.y_scale_ if forward else Y * self.y_scale_ + self.y_mean_
        return out[:, 0] if y.ndim == 1 else out

    # ------------------------------------------------------------------------ maps
    def design_map(self) -> np.ndarray:
        """The ``(d + 1) x (d + 1)`` matrix ``T`` with ``[X, 1] T = [X_s, 1]``.

        A weight or gate vector ``theta`` on the standardised design acts on raw data as
        ``T theta``; ``T^{-1}`` maps raw-design vectors back.
        """
        self._check_fitted()
        d = self.n_features
        T = np.zeros((d + 1, d + 1))
        T[np.arange(d), np.arange(d)] = 1.0 / self.scale_
        T[d, :d] = -self.mean_ / self.scale_
        T[d, d] = 1.0
        return T

    def _output_factors(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        if self.y_mean_ is None:
            return np.ones(c), np.zeros(c)
        if self.y_mean_.shape[0] != c:
            raise ShapeError(f"the model has {c} outputs; the Standardizer was fitted on {self.y_mean_.shape[0]}.")
        return self.y_scale_, self.y_mean_

    def network_to_raw(self, net):
        """Map a network trained on standardised data to an equivalent network on raw data.

        Parameters
        ----------
        net : ReLUNetwork or GatedReLUNetwork
            Trained on ``transform(X)`` (and ``transform_y(y)``).

        Returns
        -------
        ReLUNetwork or GatedReLUNetwork
            ``raw.predict(X) == inverse_transform_y(net.predict(transform(X)))`` for every ``X``
            (up to rounding). First-layer weights become ``W1 / s``, biases
            ``b1 - (mu/s)^T W1``, gates likewise, output weights ``w2 * y_scale``; a nonzero
            ``y_mean`` adds one always-active neuron. The penalty changes (see the module notes).
        """
        self._check_fitted()
        if not isinstance(net, (ReLUNetwork, GatedReLUNetwork)):
            raise InvalidParameterError(f"net must be a ReLUNetwork or GatedReLUNetwork, got {type(net).__name__}.")
        if net.n_features != self.n_features:
            raise ShapeError(
                f"the network has {net.n_features} inputs; the Standardizer was fitted on {self.n_features}."
            )
        mu, s = self.mean_, self.scale_
        m = net.n_neurons
        ys, ym = self._output_factors(net.n_outputs)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow raises below, by name
            W1 = net.W1 / s[:, None]
            b0 = net.b1 if net.b1 is not None else np.zeros(m)
            b1 = b0 - (mu / s) @ net.W1
            w2 = net.w2 * ys if net.w2.ndim == 2 else net.w2 * ys[0]
            need_bias = net.b1 is not None or np.any(b1 != 0) or np.any(ym != 0)
            kw = {}
            if isinstance(net, GatedReLUNetwork):
                c0 = net.gate_bias if net.gate_bias is not None else np.zeros(m)
                kw = {"gates": net.gates / s[:, None], "gate_bias": c0 - (mu / s) @ net.gates}
            if np.any(ym != 0):
                big = float(np.abs(ym).max())  # a scaled norm: ||ym||^2 underflows for |ym| ~ 1e-170
                t = float(np.sqrt(big * np.linalg.norm(ym / big)))
                W1 = np.hstack([W1, np.zeros((W1.shape[0], 1))])
                b1 = np.append(b1, t)
                extra = ym / t
                w2 = np.vstack([w2, extra[None, :]]) if w2.ndim == 2 else np.append(w2, extra[0])
                if kw:
                    kw["gates"] = np.hstack([kw["gates"], np.zeros((W1.shape[0], 1))])
                    kw["gate_bias"] = np.append(kw["gate_bias"], 1.0)
            if kw and net.gate_bias is None and not np.any(kw["gate_bias"] != 0):
                kw["gate_bias"] = None
        parts = [W1, w2, b1] + [v for v in kw.values() if v is not None]
        if not all(np.all(np.isfinite(v)) for v in parts):
            raise NonFiniteError(
                f"the network on the raw scale of X overflows float64: its first layer is divided by the "
                f"column scales of X, the smallest {float(s.min()):.3g} (and y_scale up to "
                f"{float(np.max(ys)):.3g}). Rescale X (and y) to ordinary magnitudes before fitting.")
        return type(net)(W1=W1, w2=w2, b1=b1 if need_bias else None, **kw)

    def model_to_raw(self, model, X):
        """Map a convex model trained on ``transform(X)`` to an equivalent model on raw ``X``.

        Parameters
        ----------
        model : ConvexModel or ConvexSolution
            Built on patterns of ``transform(X)``.
        X : array of shape (n, d)
            The *raw* training data (the one passed to :meth:`fit`).

        Returns
        -------
        ConvexModel
            On patterns of raw ``X`` with gates ``T g_i`` and the *same* activation mask,
            blocks ``y_scale * T theta_i`` (always with a bias row when ``center``), plus one
            all-ones pattern carrying ``y_mean`` when it is nonzero. ``train_predict(X)``
            equals ``inverse_transform_y(model.train_predict(transform(X)))``; the penalty
            changes (see the module notes). Cone feasibility is preserved exactly in exact
            arithmetic (``X_a T theta = X_s,a theta``).
        """
        from .solution import ConvexModel

        self._check_fitted()
        if not isinstance(model, ConvexModel):
            raise InvalidParameterError(f"model must be a ConvexModel, got {type(model).__name__}.")
        X = check_X(X)
        Xs = self.transform(X)
        pats = model.patterns
        pats.check_data(Xs)
        d = self.n_features
        T = self.design_map()

        def to_bias_design(B: np.ndarray) -> np.ndarray:
            if pats.bias:
                return B
            pad = np.zeros((1,) + B.shape[1:])
            return np.concatenate([B, pad], axis=0)

        def apply_T(B: np.ndarray) -> np.ndarray:
            B = to_bias_design(B)
            out = np.tensordot(T, B, axes=(1, 0))
            return out

        bias = pats.bias or self.center
        gates = apply_T(pats.gates)
        mask = np.array(pats.mask)
        blocks = {k: getattr(model, k) for k in ("U", "V", "W") if getattr(model, k) is not None}
        c = model.n_outputs
        ys, ym = self._output_factors(c)
        vector = next(iter(blocks.values())).ndim == 3
        scale = ys[None, None, :] if vector else ys[0]
        raw = {k: apply_T(B) * scale for k, B in blocks.items()}
        if not bias:  # center=False and no bias: T is diagonal, drop the zero bias row
            gates = gates[:d]
            raw = {k: B[:d] for k, B in raw.items()}
        if np.any(ym != 0):
            if not bias:
                raise InvalidParameterError(
                    "a target offset (center_y=True) needs a bias row; train with bias=True or "
                    "use center=True."
                )
            e = np.zeros((d + 1, 1))
            e[d, 0] = 1.0
            gates = np.hstack([gates, e])
            mask = np.hstack([mask, np.ones((mask.shape[0], 1), dtype=bool)])
            # one constant neuron carries the offset: with a single block it is ym itself; with a
            # +/- pair (C-ReLU, both blocks >= 0 on the cone of the all-ones pattern) the positive
            # part goes to the + block and the negative part to the - block
            spec = model.spec
            for name, sign in zip(spec.blocks, spec.signs, strict=True):
                part = ym if len(spec.blocks) == 1 else np.maximum(sign * ym, 0.0)
                col = np.zeros((d + 1, 1, c)) if vector else np.zeros((d + 1, 1))
                if vector:
                    col[d, 0, :] = part
                else:
                    col[d, 0] = part[0]
                raw[name] = np.concatenate([raw[name], col], axis=1)
        new_pats = Patterns(
            gates=np.ascontiguousarray(gates), mask=np.ascontiguousarray(mask), bias=bias,
            fingerprint=_fingerprint(X),
        )
        return ConvexModel(activation=model.activation, patterns=new_pats, **raw)
