"""Ordinary (non-convex) two-layer networks: NC-ReLU and NC-GReLU (``docs/math.md``, "The non-convex models").

* :class:`ReLUNetwork`: ``f(X) = sum_j (X W1_j + b1_j)_+ w2_j``.
* :class:`GatedReLUNetwork`: ``f(X) = sum_j 1[X g_j + g0_j >= 0] (X W1_j + b1_j) w2_j``.

``W1`` holds the neurons as columns (``d x m``); ``w2`` is ``(m,)`` for scalar output or
``(m, c)`` for vector output. The first-layer bias ``b1`` (and the gate offset ``g0``), when
present, is part of the neuron's weight vector (gate) and ``b1`` is penalised with it:

    objective = L(f(X), y) + lam/2 * sum_j (||W1_j||^2 + b1_j^2 + ||w2_j||^2).

Both networks export to PyTorch with :meth:`~ReLUNetwork.to_torch` (the optional extra
``cvxnn[torch]``; ``docs/export.md``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._validation import MAX_ABS_VALUE, as_float_array, check_lam, check_X, check_y
from .errors import InvalidParameterError, MissingDependencyError, NonFiniteError, ShapeError
from .losses import Loss, get_loss
from .patterns import _mask_chunked, add_bias_column

__all__ = ["ReLUNetwork", "GatedReLUNetwork", "MissingDependencyError"]


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            "to_torch() needs PyTorch, which is not installed: pip install torch "
            "(or pip install 'cvxnn[torch]')."
        ) from exc
    return torch


def _torch_dtype(torch, dtype):
    """The torch dtype ``dtype`` names: a floating ``torch.dtype`` or its name (``"float32"``)."""
    if dtype is None:
        return torch.float64
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise InvalidParameterError(
            f"dtype must be a floating torch dtype or its name (e.g. torch.float32 or 'float32'), got {dtype!r}.")
    return resolved


def _representable(net: _TwoLayer, dtype, finfo) -> _TwoLayer:
    """``net`` with its neurons rescaled (exactly, :meth:`_TwoLayer._in_range`) into the range of
    ``dtype``: entries in ``[1 / L, L]`` where possible, ``L = min(1e100, sqrt(finfo.max))``
    (``1.8e19`` for float32; for float64 the rule of :meth:`~_TwoLayer.predict`).

    Raises
    ------
    InvalidParameterError
        A neuron whose output scale, the product of its largest input-side and output-side
        weights, exceeds ``finfo.max``: no rescaling represents it (its output for an input of
        unit size would be infinite in ``dtype``).
    """
    fmax = float(finfo.max)
    limit = min(MAX_ABS_VALUE, fmax**0.5)
    m = net.n_neurons
    A = net.W1 if net.b1 is None else np.vstack([net.W1, net.b1[None, :]])
    inner = np.abs(A).max(axis=0, initial=0.0)
    outer = np.abs(net.w2.reshape(m, net.n_outputs)).max(axis=1, initial=0.0)
    live = (inner > 0) & (outer > 0)
    with np.errstate(divide="ignore"):
        scale = np.where(live, np.log10(np.where(live, inner, 1.0)) + np.log10(np.where(live, outer, 1.0)),
                         -np.inf)
    bad = np.flatnonzero(scale > np.log10(fmax))
    if bad.size:
        j = int(bad[np.argmax(scale[bad])])
        raise InvalidParameterError(
            f"to_torch(dtype={dtype}): {bad.size} neuron{'s' if bad.size > 1 else ''} cannot be represented in "
            f"{dtype}, whose largest value is {fmax:.3g}: neuron {j} has output scale (largest first-layer "
            f"weight times largest output weight) 1e{scale[j]:.1f}, so its output overflows however it is "
            f"rescaled. Export with dtype=torch.float64, or rescale the targets (e.g. standardize=True).")
    return net._in_range(limit)


def _torch_module(net: _TwoLayer, dtype=None):
    """Build the ``torch.nn.Module`` of :meth:`_TwoLayer.to_torch` (torch imported lazily)."""
    torch = _import_torch()
    dtype = _torch_dtype(torch, dtype)
    nn = torch.nn
    net = _representable(net, dtype, torch.finfo(dtype))

    class _TwoLayerModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d, m = net.W1.shape
            c = net.n_outputs
            self.scalar_output = net.w2.ndim == 1
            with warnings.catch_warnings():  # a network without neurons (m = 0) has empty layers
                warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
                self.hidden = nn.Linear(d, m, bias=net.b1 is not None, dtype=dtype)
                self.output = nn.Linear(m, c, bias=False, dtype=dtype)
            with torch.no_grad():
                self.hidden.weight.copy_(torch.as_tensor(np.array(net.W1.T), dtype=dtype))
                if net.b1 is not None:
                    self.hidden.bias.copy_(torch.as_tensor(np.array(net.b1), dtype=dtype))
                self.output.weight.copy_(torch.as_tensor(np.array(net.w2.reshape(m, c).T), dtype=dtype))

        def activation(self, z, x):  # pragma: no cover - overridden
            raise NotImplementedError

        def forward(self, x):
            out = self.output(self.activation(self.hidden(x), x))
            return out.squeeze(-1) if self.scalar_output else out

    if isinstance(net, GatedReLUNetwork):
        class GatedReLUModule(_TwoLayerModule):
            """Gated ReLU network ``1[x g_j + g0_j >= 0] (x W1_j + b1_j) w2_j``; gates are buffers."""

            def __init__(self) -> None:
                super().__init__()
                # float64: the rule of the patterns; a narrower dtype: gates whose products with
                # inputs of its range would overflow (a 1e50 gate is inf in float32)
                limit = min(MAX_ABS_VALUE, float(torch.finfo(dtype).max) ** 0.5)
                G = _rescale_large_gates(np.vstack([net.gates, net._gate_offset()[None, :]]), limit)
                self.register_buffer("gates", torch.as_tensor(np.array(G[:-1]), dtype=dtype))
                self.register_buffer("gate_bias", torch.as_tensor(np.array(G[-1]), dtype=dtype))

            def activation(self, z, x):
                return (x @ self.gates + self.gate_bias >= 0).to(z.dtype) * z

        return GatedReLUModule()

    class ReLUModule(_TwoLayerModule):
        """Two-layer ReLU network ``relu(x W1 + b1) w2``."""

        def activation(self, z, x):
            return torch.relu(z)

    return ReLUModule()


def _neuron_vector(a, name: str, m: int) -> np.ndarray:
    """A per-neuron vector: shape ``(m,)``, or the row ``(1, m)`` that broadcasts against
    ``X @ W1``; any other shape (``(2, 2)`` for 4 neurons) is refused, not flattened."""
    a = as_float_array(a, name)
    if a.shape == (1, m) or (a.ndim == 0 and m == 1):
        a = a.reshape(m)
    if a.shape != (m,):
        raise ShapeError(f"{name} must have shape ({m},) (or (1, {m})), got {a.shape}.")
    return a


def _rescale_large_gates(G: np.ndarray, limit: float = MAX_ABS_VALUE) -> np.ndarray:
    """Gate columns ``(g_j, g0_j)`` with an entry above ``limit`` divided by a power of two (exact;
    the rule of :mod:`cvxnn.patterns` for the default ``limit``) to entries below 1, so that
    ``X_a g_j`` cannot overflow to ``inf - inf``. The sign of every ``X_a g_j``, hence the gate,
    is unchanged."""
    top = np.abs(G).max(axis=0, initial=0.0)
    big = top > limit
    if not np.any(big):
        return G
    G = np.array(G)
    G[:, big] = np.ldexp(G[:, big], -np.frexp(top[big])[1])
    return G


def _frozen(a: np.ndarray | None) -> np.ndarray | None:
    """A read-only view of ``a`` (the network's own copy): a network is frozen, and an entry
    written in place (``net.W1[0, 0] = numpy.nan``) would bypass its validation."""
    if a is None:
        return None
    v = a.view()
    v.setflags(write=False)
    return v


def _prep_weights(W1, w2, b1):
    W1 = as_float_array(W1, "W1")
    w2 = as_float_array(w2, "w2")
    if W1.ndim != 2:
        raise ShapeError(f"W1 must be 2-D (n_features, n_neurons), got shape {W1.shape}.")
    if W1.shape[0] == 0:
        raise ShapeError(f"W1 has no rows (shape {W1.shape}): a network needs at least one input feature.")
    m = W1.shape[1]
    if w2.ndim not in (1, 2) or w2.shape[0] != m or (w2.ndim == 2 and w2.shape[1] == 0):
        raise ShapeError(f"w2 must have shape ({m},) or ({m}, n_outputs) with n_outputs >= 1, got {w2.shape}.")
    if b1 is not None:
        b1 = _neuron_vector(b1, "b1", m)
    for name, a in (("W1", W1), ("w2", w2), ("b1", b1)):
        if a is not None and not np.all(np.isfinite(a)):
            raise NonFiniteError(f"{name} contains NaN or infinity.")
    return W1, w2, b1


def _scaled_norms(A: np.ndarray) -> np.ndarray:
    """Euclidean norms of the columns of ``A``, scaled by their largest entry so that neither tiny
    nor huge entries under- or overflow when squared."""
    top = np.abs(A).max(axis=0, initial=0.0)
    safe = np.where(top > 0, top, 1.0)
    return top * np.sqrt(np.sum((A / safe) ** 2, axis=0))


@dataclass(frozen=True, eq=False)
class _TwoLayer:
    W1: np.ndarray
    w2: np.ndarray
    b1: np.ndarray | None = None

    @property
    def n_neurons(self) -> int:
        """Width ``m`` (number of hidden neurons)."""
        return self.W1.shape[1]

    @property
    def n_features(self) -> int:
        """Input dimension ``d``."""
        return self.W1.shape[0]

    @property
    def n_outputs(self) -> int:
        """1 for scalar output, else ``c``."""
        return 1 if self.w2.ndim == 1 else self.w2.shape[1]

    def _check_width(self, X: np.ndarray) -> None:
        if X.shape[1] != self.n_features:
            raise ShapeError(f"X has {X.shape[1]} features; this network expects {self.n_features}.")

    def _pre(self, X: np.ndarray) -> np.ndarray:
        self._check_width(X)
        Z = X @ self.W1
        if self.b1 is not None:
            Z = Z + self.b1
        return Z

    def _hidden(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def hidden(self, X) -> np.ndarray:
        """Hidden activations (``n x m``)."""
        return self._hidden(check_X(X))

    def _in_range(self, limit: float = MAX_ABS_VALUE) -> _TwoLayer:
        """The same function with every neuron whose weights leave ``[1 / limit, limit]`` rescaled by
        a power of two towards balance (``(W1_j, b1_j) 2^k``, ``w2_j 2^-k``: exact).

        A neuron ``(1e308 W1_j, 1e-308 w2_j)`` has a hidden activation that overflows (inf, or
        inf - inf = NaN) although its output is moderate; rescaled, it computes its output. The
        rescaling is the positive homogeneity of the ReLU, ``(s z)_+ / s = z_+`` for ``s > 0``; a
        gated neuron is linear in ``(W1_j, b1_j)`` for its fixed gate, so the same rescaling
        leaves it unchanged. A dead neuron (one side zero) computes zero; a side of it above
        ``limit`` is divided by a power of two to entries below 1 (``inf * 0`` would be NaN).
        Networks without such neurons are returned as they are (the same predictions, bit for bit).
        """
        m = self.n_neurons
        A = self.W1 if self.b1 is None else np.vstack([self.W1, self.b1[None, :]])
        inner = np.abs(A).max(axis=0, initial=0.0)
        outer = np.abs(self.w2.reshape(m, self.n_outputs)).max(axis=1, initial=0.0)
        live = (inner > 0) & (outer > 0)
        extreme = live & ((np.maximum(inner, outer) > limit) | (np.minimum(inner, outer) < 1.0 / limit))
        dead_in = ~live & (inner > limit)
        dead_out = ~live & (outer > limit)
        if not (np.any(extreme) or np.any(dead_in) or np.any(dead_out)):
            return self
        k_in = np.zeros(m, dtype=int)  # W1_j, b1_j scaled by 2^k_in, w2_j by 2^k_out
        k_out = np.zeros(m, dtype=int)
        k_in[extreme] = (np.frexp(outer[extreme])[1] - np.frexp(inner[extreme])[1]) // 2
        k_out[extreme] = -k_in[extreme]
        k_in[dead_in] = -np.frexp(inner[dead_in])[1]
        k_out[dead_out] = -np.frexp(outer[dead_out])[1]
        kw = {f: getattr(self, f) for f in self.__dataclass_fields__}
        kw["W1"] = np.ldexp(self.W1, k_in)
        kw["w2"] = np.ldexp(self.w2, k_out if self.w2.ndim == 1 else k_out[:, None])
        if self.b1 is not None:
            kw["b1"] = np.ldexp(self.b1, k_in)
        return type(self)(**kw)

    def predict(self, X) -> np.ndarray:
        """Network output: ``(n,)`` for scalar output, ``(n, c)`` for vector output.

        A neuron whose weights are far from balanced (an entry above ``1e100`` or a largest entry
        below ``1e-100`` on one side) is evaluated after an exact power-of-two rescaling, so that
        its hidden activation neither overflows nor loses digits to underflow; a dead neuron (one
        side zero) with entries above ``1e100`` has them scaled down (it computes zero, not NaN)."""
        net = self._in_range()
        return net._hidden(check_X(X)) @ net.w2

    def penalty(self) -> float:
        """Weight-decay term without ``lam``: ``1/2 sum_j (||W1_j||^2 + b1_j^2 + ||w2_j||^2)``."""
        total = np.sum(self.W1**2) + np.sum(self.w2**2)
        if self.b1 is not None:
            total += np.sum(self.b1**2)
        return 0.5 * float(total)

    def objective(self, X, y, lam: float, loss: str | Loss | None = "squared") -> float:
        """NC objective ``L(f(X), y) + lam/2 sum_j (||W1_j||^2 + b1_j^2 + ||w2_j||^2)``.

        ``loss`` is a loss name or :class:`~cvxnn.losses.Loss` (a solution's ``loss``, with its
        sample weights, gives the objective the solver saw); None means ``"squared"``, as in
        :meth:`cvxnn.solution.ConvexModel.objective` for a model that records no loss."""
        X = check_X(X)
        y = check_y(y, X.shape[0])
        lam = check_lam(lam)
        loss = get_loss("squared" if loss is None else loss)
        y = loss.check_targets(y)  # labels the loss cannot take are a LabelError, as in the builders
        pred = self.predict(X)
        if pred.ndim == 2 and pred.shape[1] == 1 and y.ndim == 1:  # w2 of shape (m, 1): one output
            pred = pred[:, 0]
        # lam = 0 is the loss alone: 0 * penalty is NaN for a penalty that overflows to inf
        return loss.value(pred, y) + (lam * self.penalty() if lam > 0 else 0.0)

    def balanced(self) -> _TwoLayer:
        """Rescale each neuron so ``||(W1_j, b1_j)|| = ||w2_j||`` (same function, minimal penalty).

        A dead neuron (zero input weights and bias, or zero output weights) computes zero, and its
        minimal penalty is zero: both of its sides are set to zero."""
        A = np.vstack([self.W1, self.b1[None, :]]) if self.b1 is not None else self.W1
        inner = _scaled_norms(A)  # norms without squaring: 1e-170 weights underflowed to "dead"
        outer = _scaled_norms(self.w2.reshape(self.n_neurons, self.n_outputs).T)  # (no -1: zero neurons)
        live = (inner > 0) & (outer > 0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            s = np.where(live, np.sqrt(outer) / np.sqrt(np.where(live, inner, 1.0)), 1.0)
        kw = {k: getattr(self, k) for k in self.__dataclass_fields__}
        kw["W1"] = self.W1 * s * live
        w2 = self.w2 / (s if self.w2.ndim == 1 else s[:, None])
        kw["w2"] = w2 * (live if self.w2.ndim == 1 else live[:, None])
        if self.b1 is not None:
            kw["b1"] = self.b1 * s * live
        return type(self)(**kw)

    def to_torch(self, dtype=None):
        """The network as a ``torch.nn.Module`` with the same predictions.

        The module has a first layer ``hidden`` (``torch.nn.Linear(d, m)``, with a bias when the
        network has ``b1``) and an output layer ``output`` (``torch.nn.Linear(m, c)``, no bias).
        Its ``forward(x)`` returns shape ``(n,)`` for scalar output and ``(n, c)`` otherwise, like
        :meth:`predict`. A gated network keeps its fixed gates as the buffers ``gates``
        (``d x m``) and ``gate_bias`` (``m``; zeros without offsets): they move with
        ``.to(device)`` and are saved in the ``state_dict``, but are not parameters, so
        fine-tuning trains only the weights. A gate ``(g_j, g0_j)`` with an entry above ``1e100``
        (for a narrower ``dtype``, above the square root of its largest value: ``1.8e19`` for
        float32) is stored divided by a power of two (the same gate, whose products cannot
        overflow).

        Neurons far from balanced are rescaled first, by the same limit ``L``: a neuron with an
        entry above ``L`` or a largest entry below ``1 / L`` on one side is stored as
        ``((W1_j, b1_j) 2^k, w2_j 2^-k)`` with sides of about equal size (the same function: the
        ReLU is positively homogeneous, and a gated neuron is linear in ``(W1_j, b1_j)`` for its
        fixed gate), so a neuron ``(1e40 W1_j, 1e-40 w2_j)`` exports to float32 without
        overflowing. A dead neuron (one side zero) with a side above ``L`` has that side divided
        by a power of two. Other neurons are stored as they are.

        The weight decay of the convex objective, ``lam/2 sum_j (||W1_j||^2 + b1_j^2 +
        ||w2_j||^2)`` with a summed loss, is ``weight_decay=lam`` in ``torch.optim.SGD`` when the
        loss is summed over the samples (``reduction="sum"``).

        Parameters
        ----------
        dtype : torch.dtype or str, optional
            Floating dtype of the parameters and buffers (default ``torch.float64``, which
            reproduces :meth:`predict` to rounding; ``torch.float32`` or ``"float32"`` for the
            usual PyTorch training). Inputs must have the same dtype.

        Returns
        -------
        torch.nn.Module

        Raises
        ------
        MissingDependencyError
            PyTorch is not installed (``pip install torch``).
        InvalidParameterError
            ``dtype`` is not a floating dtype, or a neuron cannot be represented in it even after
            rescaling: the product of its largest first-layer weight (or bias) and its largest
            output weight exceeds the largest value of ``dtype`` (``3.4e38`` for float32).
        """
        return _torch_module(self, dtype)


@dataclass(frozen=True, eq=False)
class ReLUNetwork(_TwoLayer):
    """Two-layer ReLU network ``f(X) = (X W1 + b1)_+ w2``.

    Parameters
    ----------
    W1 : array (d, m)
        First-layer weights, one neuron per column.
    w2 : array (m,) or (m, c)
        Second-layer weights.
    b1 : array (m,), optional
        First-layer bias (penalised in :meth:`objective`).
    """

    def __post_init__(self) -> None:
        W1, w2, b1 = _prep_weights(self.W1, self.w2, self.b1)
        object.__setattr__(self, "W1", _frozen(W1))
        object.__setattr__(self, "w2", _frozen(w2))
        object.__setattr__(self, "b1", _frozen(b1))

    def _hidden(self, X: np.ndarray) -> np.ndarray:
        return np.maximum(self._pre(X), 0.0)

    def hidden(self, X) -> np.ndarray:
        """Hidden activations ``(X W1 + b1)_+`` (``n x m``)."""
        return self._hidden(check_X(X))

    def activation_patterns(self, X) -> np.ndarray:
        """Boolean ``n x m`` matrix ``1[X W1_j + b1_j >= 0]`` (ties count as active).

        Computed as :mod:`cvxnn.patterns` computes the mask of the gates ``(W1_j, b1_j)``,
        ``1[X_a A >= 0]`` with ``X_a = [X, 1]`` and ``A = [W1; b1]`` when the network has a bias,
        so neurons with entries above ``1e100`` are rescaled (by a power of two) instead of
        overflowing."""
        X = check_X(X)
        self._check_width(X)
        if self.b1 is None:
            return _mask_chunked(X, self.W1)
        return _mask_chunked(add_bias_column(X), np.vstack([self.W1, self.b1[None, :]]))


@dataclass(frozen=True, eq=False)
class GatedReLUNetwork(_TwoLayer):
    """Gated ReLU network ``f(X) = sum_j 1[X g_j + g0_j >= 0] (X W1_j + b1_j) w2_j``.

    Parameters
    ----------
    W1 : array (d, m)
    w2 : array (m,) or (m, c)
    gates : array (d, m)
        Fixed gate vectors ``g_j``.
    b1 : array (m,), optional
        First-layer bias.
    gate_bias : array (m,), optional
        Gate offsets ``g0_j``.
    """

    gates: np.ndarray | None = None
    gate_bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        W1, w2, b1 = _prep_weights(self.W1, self.w2, self.b1)
        if self.gates is None:
            raise ShapeError("a GatedReLUNetwork needs gates of shape (d, m).")
        G = as_float_array(self.gates, "gates")
        if G.shape != W1.shape:
            raise ShapeError(f"gates must have the shape of W1 {W1.shape}, got {G.shape}.")
        c = None
        if self.gate_bias is not None:
            c = _neuron_vector(self.gate_bias, "gate_bias", W1.shape[1])
        for name, a in (("gates", G), ("gate_bias", c)):
            if a is not None and not np.all(np.isfinite(a)):
                raise NonFiniteError(f"{name} contains NaN or infinity.")
        object.__setattr__(self, "W1", _frozen(W1))
        object.__setattr__(self, "w2", _frozen(w2))
        object.__setattr__(self, "b1", _frozen(b1))
        object.__setattr__(self, "gates", _frozen(G))
        object.__setattr__(self, "gate_bias", _frozen(c))

    def _gate_offset(self) -> np.ndarray:
        return self.gate_bias if self.gate_bias is not None else np.zeros(self.n_neurons)

    def _mask(self, X: np.ndarray) -> np.ndarray:
        self._check_width(X)
        # The products of cvxnn.patterns and of the convex image (gated_network_to_convex uses
        # X_a = [X, 1] and the gate (g_j, g0_j) whenever the network has a bias): X g_j + g0_j
        # summed in another order can round a tie to the other side. _mask_chunked rescales gates
        # above 1e100, whose products would overflow to inf - inf = NaN (read as inactive).
        if self.b1 is None and self.gate_bias is None:
            return _mask_chunked(X, self.gates)
        return _mask_chunked(add_bias_column(X), np.vstack([self.gates, self._gate_offset()[None, :]]))

    def gate_mask(self, X) -> np.ndarray:
        """Boolean ``n x m`` matrix ``1[X g_j + g0_j >= 0]`` (ties count as active).

        Computed as :mod:`cvxnn.patterns` computes a pattern's mask, ``1[X_a G_a >= 0]`` with
        ``X_a = [X, 1]`` when the network has a bias, so it is the mask of the network's convex
        image (:func:`cvxnn.maps.gated_network_to_convex`) on the same ``X``; gates with entries
        above ``1e100`` are rescaled (by a power of two) instead of overflowing."""
        return self._mask(check_X(X))

    def _hidden(self, X: np.ndarray) -> np.ndarray:
        return self._mask(X) * self._pre(X)

    def hidden(self, X) -> np.ndarray:
        """Gated activations ``1[X g_j + g0_j >= 0] (X W1_j + b1_j)`` (``n x m``)."""
        return self._hidden(check_X(X))
