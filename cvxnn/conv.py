"""Two-layer convolutional ReLU networks by their convex reformulation (``docs/conv.md``).

The network has ``m`` filters ``w_j`` shared over the ``K`` patches ``x_k = P_k x`` of an input
(1-D or 2-D windows of a given size and stride), a ReLU (or a fixed gate), and a pooled linear
read-out::

    f(x) = sum_j alpha_j * pool_k (x_k^T w_j)_+          pool = sum, or average (1/K) sum

trained with weight decay ``lam/2 sum_j (||w_j||^2 + alpha_j^2)``. Stacking the patches of all
``n`` samples into the patch matrix ``Z`` (``nK x h``, sample-major: row ``i K + k`` is patch
``k`` of sample ``i``), the hidden layer is an ordinary two-layer ReLU layer **on Z**, followed
by the linear pooling map ``Pool`` (``n x nK``). So the convex program is C-ReLU on ``Z`` with a
linear output map (``docs/conv.md``, "Convex form")::

    minimize   L( Pool(sum_i D_i Z (v_i - w_i)), y ) + lam * sum_i (||v_i|| + ||w_i||)
    subject to (2 D_i - I) Z v_i >= 0,  (2 D_i - I) Z w_i >= 0

where ``D_i`` are sign patterns of ``Z g`` over all (sample, patch) pairs. Because
``L(Pool(.), y)`` is convex in the ``nK``-vector of patch activations, every statement of
``docs/math.md`` about C-ReLU carries over with ``X -> Z`` and ``L -> L o Pool``: the exact maps,
the equivalence with all patterns, and the gated variant (C-GReLU, no cones). This module
therefore reuses the scalar machinery on ``Z``: :class:`~cvxnn.patterns.Patterns` built on
``Z``, :class:`~cvxnn.constraints.ConeConstraint`, :mod:`cvxnn.penalties`, the CVXPY adapter,
the maps of :mod:`cvxnn.maps` and the networks of :mod:`cvxnn.networks`.

Contents

* :class:`PatchGeometry` and :func:`extract_patches` -- the patch matrix ``Z`` (numpy stride
  tricks, no loop over samples);
* :func:`pool` / :func:`unpool` -- the pooling map and its adjoint as reshape-sums;
* :func:`build_conv_program` -> :class:`ConvProgram` -- a real :class:`cvxpy.Problem` with
  ``lam`` as a :class:`cvxpy.Parameter`; :meth:`ConvProgram.solve` returns a
  :class:`ConvSolution`;
* :class:`ConvModel`, :class:`ConvSolution` -- a convex point on ``Z`` with its geometry and
  pooling; :meth:`ConvModel.to_network` is the exact map to a :class:`ConvNetwork`;
* :class:`ConvNetwork` -- the ordinary CNN (``predict``, ``objective``) and
  :func:`network_to_conv`, the map back on the patterns the network induces.

The native solvers (gated and ReLU: barrier Newton methods on the pooled design), the
duality-gap certificate and the optimality report are in :mod:`cvxnn.native.conv`.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ._validation import check_lam, check_positive_int, check_X, check_y
from .activations import get_activation
from .builders import _masked_prediction, check_targets
from .errors import (
    ConvergenceWarning,
    InaccurateSolutionWarning,
    InvalidParameterError,
    NonFiniteError,
    PatternMismatchError,
    ShapeError,
    SolverError,
)
from .feature_penalties import GroupSparsePenalty
from .losses import Loss, get_loss
from .maps import gated_network_to_convex, relu_network_to_convex, to_network
from .native._losses import SmoothKernel, make_kernel
from .native.certificates import (
    CERTIFIED_WARN_RTOL,
    GapCertificate,
    _certified_gap_message,
    feature_sparse_certificate,
    gated_certificate,
)
from .native.prox import BlockPenalty
from .networks import GatedReLUNetwork, ReLUNetwork
from .operators import ImplicitDesign, check_memory, power_iteration_norm_sq
from .patterns import Patterns, sample_patterns
from .penalties import Columnwise, GroupL2, Nuclear, get_penalty
from .program import ConvexProgram
from .solution import ConvexModel, ConvexSolution

__all__ = [
    "POOLINGS",
    "ConvModel",
    "ConvNetwork",
    "ConvProgram",
    "ConvSolution",
    "PatchGeometry",
    "ConvData",
    "DensePooledDesign",
    "PooledDesign",
    "build_conv_program",
    "check_formulation",
    "prepare_conv_data",
    "extract_patches",
    "network_to_conv",
    "pool",
    "pooled_blocks",
    "pooling_factor",
    "unpool",
]

logger = logging.getLogger(__name__)

#: Pooling maps: ``"sum"`` (``sum_k``) and ``"average"`` (``(1/K) sum_k``).
POOLINGS = ("sum", "average")
#: Vector-output penalties of the conv programs (see :mod:`cvxnn.vector`): one-vs-all for both
#: activations, nuclear norms for the gated variant only.
FORMULATIONS = ("one_vs_all", "nuclear")


# ----------------------------------------------------------------------------- geometry
def _as_tuple(value, n_dims: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """An int or a tuple of ``n_dims`` ints ``>= minimum`` as a tuple."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * n_dims
    try:
        out = tuple(value)
    except TypeError:
        raise InvalidParameterError(f"{name} must be an int or a tuple of {n_dims} ints, got {value!r}.") from None
    if len(out) != n_dims or any(
        isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)) or int(v) < minimum for v in out
    ):
        raise InvalidParameterError(
            f"{name} must be an int or a tuple of {n_dims} ints >= {minimum}, got {value!r}."
        )
    return tuple(int(v) for v in out)


@dataclass(frozen=True)
class PatchGeometry:
    """Where the patches of an input lie: ``P_k`` for ``k < K`` (1-D or 2-D windows).

    Inputs are flat rows of ``d = prod(image_shape)`` features, reshaped in C order (for a
    2-D image, row-major pixels). A window of ``size`` starts at every multiple of ``stride`` that
    keeps it inside the image; the patches of one input are ordered row-major over the window
    positions, and the entries of a patch row-major inside the window.

    Attributes
    ----------
    image_shape : tuple of int
        ``(L,)`` or ``(H, W)``.
    size : tuple of int
        Window size, same length as ``image_shape``.
    stride : tuple of int
        Window stride, same length.
    """

    image_shape: tuple[int, ...]
    size: tuple[int, ...]
    stride: tuple[int, ...]

    @classmethod
    def make(cls, image_shape, patch_size, stride=1) -> PatchGeometry:
        """Validate and build a geometry (ints are repeated over the image's dimensions).

        ``image_shape`` may be a :class:`PatchGeometry` (e.g. a solution's ``geometry``); then
        ``patch_size`` and ``stride`` must be its own.

        Raises
        ------
        InvalidParameterError
            ``image_shape`` not 1-D or 2-D, a size or stride that is not a positive int, or a
            window larger than the image; a geometry with another size or stride than those given.
        """
        if isinstance(image_shape, PatchGeometry):  # patch_size=3 with a 2x2 geometry was ignored silently
            n_dims = image_shape.n_dims
            given = (_as_tuple(patch_size, n_dims, "patch_size"), _as_tuple(stride, n_dims, "stride"))
            if given != (image_shape.size, image_shape.stride):
                raise InvalidParameterError(
                    f"image_shape is a PatchGeometry with patch_size {image_shape.size} and stride "
                    f"{image_shape.stride}, but patch_size {given[0]} and stride {given[1]} were given; pass "
                    "the geometry's own (geometry.size, geometry.stride) or image_shape=geometry.image_shape.")
            return image_shape
        shape = (image_shape,) if isinstance(image_shape, (numbers.Integral, np.integer)) else image_shape
        try:
            n_dims = len(shape)
        except TypeError:
            raise InvalidParameterError(
                f"image_shape must be an int (1-D) or a tuple (L,) or (H, W), got {image_shape!r}.") from None
        if n_dims not in (1, 2):
            raise InvalidParameterError(f"image_shape must be 1-D (L,) or 2-D (H, W), got {image_shape!r}.")
        shape = _as_tuple(shape, n_dims, "image_shape")
        size = _as_tuple(patch_size, n_dims, "patch_size")
        step = _as_tuple(stride, n_dims, "stride")
        if any(a > s for a, s in zip(size, shape, strict=True)):
            raise InvalidParameterError(f"patch_size {size} is larger than the image {shape}.")
        return cls(image_shape=shape, size=size, stride=step)

    @property
    def n_dims(self) -> int:
        """1 or 2."""
        return len(self.image_shape)

    @property
    def n_features(self) -> int:
        """``d = prod(image_shape)``."""
        return int(np.prod(self.image_shape))

    @property
    def grid(self) -> tuple[int, ...]:
        """Number of window positions along each dimension, ``(s - a) // stride + 1``."""
        return tuple((s - a) // t + 1 for s, a, t in zip(self.image_shape, self.size, self.stride, strict=True))

    @property
    def n_patches(self) -> int:
        """``K``, patches per input."""
        return int(np.prod(self.grid))

    @property
    def patch_dim(self) -> int:
        """``h = prod(size)``, features of a patch (rows of a filter without bias)."""
        return int(np.prod(self.size))

    def check(self, X: np.ndarray) -> None:
        """Raise :class:`~cvxnn.errors.ShapeError` unless ``X`` has ``prod(image_shape)`` columns."""
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ShapeError(
                f"X has {X.shape[1] if X.ndim == 2 else X.shape} features but image_shape "
                f"{self.image_shape} has {self.n_features}; each row must be one flattened input."
            )

    def extract(self, X) -> np.ndarray:
        """The patch matrix ``Z`` (``n K x h``) of ``X``; see :func:`extract_patches`."""
        X = check_X(X)
        self.check(X)
        n = X.shape[0]
        imgs = X.reshape((n,) + self.image_shape)
        axes = tuple(range(1, self.n_dims + 1))
        win = np.lib.stride_tricks.sliding_window_view(imgs, self.size, axis=axes)
        win = win[(slice(None),) + tuple(slice(None, None, t) for t in self.stride)]
        return np.ascontiguousarray(win).reshape(n * self.n_patches, self.patch_dim)


def extract_patches(X, image_shape, size, stride=1) -> np.ndarray:
    """Stack the patches of every input into the patch matrix ``Z`` (``docs/conv.md``, "Patches").

    Parameters
    ----------
    X : array of shape (n, d)
        One flattened input per row, ``d = prod(image_shape)``.
    image_shape : int or tuple
        ``L`` or ``(L,)`` for 1-D signals, ``(H, W)`` for images.
    size : int or tuple
        Window size (an int is used along every dimension).
    stride : int or tuple
        Window stride.

    Returns
    -------
    ndarray of shape (n K, h)
        Row ``i K + k`` is patch ``k`` of input ``i`` (sample-major), ``h = prod(size)``;
        computed with :func:`numpy.lib.stride_tricks.sliding_window_view`, one copy, no loop.

    Raises
    ------
    ShapeError
        ``X`` does not have ``prod(image_shape)`` columns.
    InvalidParameterError
        Bad sizes or strides, or a window larger than the image.
    """
    return PatchGeometry.make(image_shape, size, stride).extract(X)


# ----------------------------------------------------------------------------- pooling
def _check_pooling(pooling: str) -> str:
    if not isinstance(pooling, str) or pooling not in POOLINGS:
        raise InvalidParameterError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
    return pooling


def pooling_factor(pooling: str, n_patches: int) -> float:
    """``1`` for sum pooling, ``1/K`` for average pooling."""
    return 1.0 / n_patches if _check_pooling(pooling) == "average" else 1.0


def _float_array(A, name: str) -> np.ndarray:
    """``A`` as a floating array (float32 stays float32; integers and booleans become float64,
    whose average pooling ``1/K`` would otherwise truncate to zero), at least 1-D."""
    try:
        A = np.asarray(A)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be an array of numbers: {exc}") from None
    if A.ndim == 0:
        raise ShapeError(f"{name} must be 1-D or 2-D (rows first), got a scalar.")
    if not np.issubdtype(A.dtype, np.inexact):
        if not (np.issubdtype(A.dtype, np.number) or A.dtype == bool):
            raise InvalidParameterError(f"{name} must be an array of numbers, got dtype {A.dtype}.")
        A = A.astype(np.float64)
    return A


def pool(A: np.ndarray, n_patches: int, pooling: str = "sum") -> np.ndarray:
    """The pooling map: ``(Pool a)_i = factor * sum_k a_{i K + k}`` (``n K`` rows -> ``n``).

    ``A`` is ``(n K,)`` or ``(n K, c)``; computed as a reshape-sum.
    """
    A = _float_array(A, "A")
    K = check_positive_int(n_patches, "n_patches")
    if A.shape[0] % K:
        raise ShapeError(f"{A.shape[0]} rows is not a multiple of K={K} patches.")
    out = A.reshape((A.shape[0] // K, K) + A.shape[1:]).sum(axis=1)
    f = pooling_factor(pooling, K)
    return out * A.dtype.type(f) if f != 1.0 else out


def unpool(R: np.ndarray, n_patches: int, pooling: str = "sum") -> np.ndarray:
    """The adjoint of :func:`pool`: ``(Pool^T r)_{i K + k} = factor * r_i`` (``n`` rows -> ``n K``)."""
    R = _float_array(R, "R")
    K = check_positive_int(n_patches, "n_patches")
    out = np.repeat(R, K, axis=0)
    f = pooling_factor(pooling, K)
    return out * R.dtype.type(f) if f != 1.0 else out


def _pooling_matrix(n: int, n_patches: int, pooling: str) -> sp.csr_matrix:
    """``Pool`` as a sparse ``n x n K`` matrix (``n K`` nonzeros): only for CVXPY expressions."""
    K = int(n_patches)
    rows = np.repeat(np.arange(n), K)
    vals = np.full(n * K, pooling_factor(pooling, K))
    return sp.csr_matrix((vals, (rows, np.arange(n * K))), shape=(n, n * K))


# ----------------------------------------------------------------------------- the program
@dataclass(eq=False)
class ConvProgram(ConvexProgram):
    """The convex program of a two-layer CNN: a :class:`~cvxnn.program.ConvexProgram` on ``Z``.

    The inherited fields keep their meaning with the patch matrix in place of the data:
    :attr:`X` is ``Z`` (``n K x h``, the data of :attr:`patterns`), :attr:`prediction` is the
    pooled fit ``Pool(sum_i D_i Z theta_i)`` (``n`` or ``n x c``), and the cone constraints are
    those of C-ReLU on ``Z``. Vector output (``c`` columns) uses one ``d_a x p c`` variable per
    sign, column ``i c + k`` being output ``k`` of block ``i`` (the layout of :mod:`cvxnn.vector`).

    Attributes
    ----------
    geometry : PatchGeometry
    pooling : {"sum", "average"}
    images : ndarray of shape (n, d)
        The inputs (flattened), validated.
    n_outputs : int
        ``c`` (1 for scalar targets).
    formulation : {"one_vs_all", "nuclear"}
        Vector-output penalty (``"nuclear"``: gated only).
    auxiliary : dict
        Epigraph variables of the nuclear norms.
    weight_penalty : Penalty or None
        A penalty of the whole weight matrix (``penalty=`` of :func:`build_conv_program`, e.g.
        :class:`~cvxnn.feature_penalties.FeatureGroupL2`: one group per filter tap) in place of
        the block norms.
    """

    geometry: PatchGeometry | None = None
    pooling: str = "sum"
    images: np.ndarray | None = field(default=None, repr=False)
    n_outputs: int = 1
    formulation: str = "one_vs_all"
    auxiliary: dict[str, tuple] = field(default_factory=dict, repr=False)
    weight_penalty: Any = None

    @property
    def Z(self) -> np.ndarray:
        """The patch matrix ``Z`` (``n K x h``)."""
        return self.X

    def estimated_nonzeros(self) -> int:
        """Nonzeros of the compiled problem (``n K d_a p c`` for the fit, the cone rows)."""
        from .backends.cvxpy_adapter import estimate_nonzeros

        return estimate_nonzeros(n=self.X.shape[0], d_a=self.patterns.design_dim, p=self.patterns.n_patterns,
                                 c=self.n_outputs, activation=self.activation,
                                 nuclear=self.n_outputs > 1 and self.formulation == "nuclear",
                                 mask_ones=int(np.count_nonzero(self.patterns.mask))) + self.X.shape[0]

    def _weight_blocks(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.n_outputs == 1:
            return values
        d_a, p, c = self.patterns.design_dim, self.patterns.n_patterns, self.n_outputs
        return {k: np.asarray(v, dtype=float).reshape(d_a, p, c) for k, v in values.items()}

    def _solution_fields(self, blocks: dict[str, np.ndarray], cone_duals) -> dict[str, Any]:
        if self.weight_penalty is not None:  # [V, W] (the V blocks, then W) or U, as d_a x m
            theta = np.concatenate([B.reshape(B.shape[0], -1) for B in blocks.values()], axis=1)
            fields = {"program_penalty": self.weight_penalty.value(theta)}
            if self.n_outputs > 1:
                fields["formulation"] = self.formulation
                if get_activation(self.activation).constrained:
                    fields["training_X"] = self.X
            return fields
        if self.n_outputs == 1:
            return {}
        penalty = get_penalty(self.formulation)
        fields: dict[str, Any] = {
            "formulation": self.formulation,
            "program_penalty": sum(penalty.value(B) for B in blocks.values()),
        }
        if get_activation(self.activation).constrained:
            fields["training_X"] = self.X  # lets the vector ReLU map test the cones K_i on Z
        return fields

    def solve(self, solver: str | None = None, *, lam: float | None = None, certify: bool = True,
              **solver_opts) -> ConvSolution:
        """Solve with a CVXPY solver (default Clarabel) and return a :class:`ConvSolution`.

        Parameters
        ----------
        solver : str, optional
            Installed CVXPY solver.
        lam : float, optional
            Set ``self.lam.value`` first (no recompilation).
        certify : bool
            Compute the duality gap of the returned point (smooth losses with a conjugate; for
            C-ReLU with the solver's cone multipliers), :func:`cvxnn.native.conv.conv_certificate`.
            Not for a program with a ``weight_penalty``: there the solver's status stands alone
            (certify the point with ``conv_certificate(..., penalty=program.weight_penalty)``).
        **solver_opts
            Passed to :meth:`cvxnn.program.ConvexProgram.solve`.

        Returns
        -------
        ConvSolution
            The status is the solver's (``"optimal"``, ``"optimal_inaccurate"``,
            ``"max_iterations"``); failures raise as in :meth:`ConvexProgram.solve`. With
            ``certify``, ``extra["certified_gap"]`` and ``extra["certified_rel_gap"]`` hold the
            gap, and an ``"optimal"`` whose relative gap exceeds
            :data:`~cvxnn.native.certificates.CERTIFIED_WARN_RTOL` gets an
            :class:`~cvxnn.errors.InaccurateSolutionWarning`, as for fully connected programs.
        """
        sol = super().solve(solver, lam=lam, **solver_opts)
        if self.weight_penalty is not None:  # conv_certificate and duality_gap refuse it without penalty=
            sol.extra["penalty"] = repr(self.weight_penalty)
        out = ConvSolution.from_convex(sol, self.geometry, self.pooling)
        if certify and self.weight_penalty is None and self.loss is not None and self.loss.smooth \
                and self.loss.has_conjugate and out.lam is not None and out.lam > 0:
            cert = conv_certificate(out, self.images, self.y, out.lam, self.loss)
            out.gap, out.rel_gap, out.dual_value = cert.gap, cert.rel_gap, cert.dual
            # the check attach_certificate makes for fully connected programs, which cannot certify
            # the pooled one (Clarabel's "optimal" at lam = 1e-12 certified 0.99, silently)
            warned = "certified_rel_gap" in sol.extra and sol.extra["certified_rel_gap"] > CERTIFIED_WARN_RTOL
            out.extra["certified_gap"], out.extra["certified_rel_gap"] = cert.gap, cert.rel_gap
            if out.status == "optimal" and cert.rel_gap > CERTIFIED_WARN_RTOL and not warned:
                warnings.warn(_certified_gap_message(out.solver, cert.rel_gap), InaccurateSolutionWarning,
                              stacklevel=2)
        return out


def _check_activation(activation: str) -> str:
    if not isinstance(activation, str) or activation not in ("relu", "gated_relu"):
        raise InvalidParameterError(f"activation must be 'relu' or 'gated_relu', got {activation!r}.")
    return activation


def check_formulation(formulation: str, activation: str, n_outputs: int = 2) -> str:
    """Validate the vector-output penalty: ``"one_vs_all"``, or ``"nuclear"`` for the gated variant.

    The name is checked for any output count (a misspelt one was accepted with scalar targets);
    the activation's restriction applies to ``n_outputs > 1``, where the two programs differ."""
    if not isinstance(formulation, str) or formulation not in FORMULATIONS:
        raise InvalidParameterError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}.")
    if formulation == "nuclear" and n_outputs > 1 and get_activation(activation).constrained:
        raise InvalidParameterError(
            "the convolutional ReLU program supports formulation='one_vs_all' (c scalar networks "
            "sharing the patterns, exact for ReLU networks); 'nuclear' is for activation='gated_relu'."
        )
    return formulation


@dataclass(frozen=True, eq=False)
class ConvData:
    """Validated inputs of a convolutional program (:func:`prepare_conv_data`).

    Attributes
    ----------
    X : ndarray of shape (n, d)
        Flattened inputs.
    Z : ndarray of shape (n K, h)
        Their patch matrix.
    y : ndarray of shape (n,) or (n, c)
        Targets as the loss wants them.
    geometry : PatchGeometry
    patterns : Patterns
        Built on ``Z``.
    loss : Loss
    """

    X: np.ndarray
    Z: np.ndarray
    y: np.ndarray
    geometry: PatchGeometry
    patterns: Patterns
    loss: Loss

    @property
    def n_outputs(self) -> int:
        """``c``."""
        return 1 if self.y.ndim == 1 else self.y.shape[1]


def prepare_conv_data(X, y, *, image_shape, patch_size, stride=1, patterns: Patterns | None = None,
                      n_gates: int = 100, bias: bool = False, seed=None, loss: str | Loss = "squared") -> ConvData:
    """Validate inputs, targets and geometry once, extract ``Z`` and its patterns (sampled on ``Z``
    when ``patterns`` is None); shared by :func:`build_conv_program` and the native solver.

    Raises
    ------
    ShapeError, InvalidParameterError, LabelError, PatternMismatchError
    """
    X = check_X(X)
    geometry = PatchGeometry.make(image_shape, patch_size, stride)
    Z = geometry.extract(X)
    y = check_y(y, X.shape[0])
    if patterns is None:
        patterns = sample_patterns(Z, n_gates, seed=seed, bias=bias)
    elif not isinstance(patterns, Patterns):
        raise InvalidParameterError(f"patterns must be a cvxnn.Patterns, got {type(patterns).__name__}.")
    try:
        patterns.check_data(Z)
    except PatternMismatchError as exc:  # its advice, "build patterns on this X", was to do what the caller did
        raise PatternMismatchError(
            f"the patterns do not match the patch matrix Z = extract_patches(X, {geometry.image_shape}, "
            f"{geometry.size}, {geometry.stride}) of these inputs ({Z.shape[0]} x {Z.shape[1]}: {geometry.n_patches} "
            "patches per input). A convolutional program's patterns are built on Z, not on X "
            "(sample_patterns(Z, ...) or Patterns.from_gates(Z, gates)), and a solution is certified on its "
            f"training inputs. ({exc})") from None
    loss_obj = get_loss(loss)
    y = check_targets(y, loss_obj)
    return ConvData(X=X, Z=Z, y=y, geometry=geometry, patterns=patterns, loss=loss_obj)


def build_conv_program(
    X,
    y,
    *,
    image_shape,
    patch_size,
    stride=1,
    pooling: str = "sum",
    activation: str = "relu",
    loss: str | Loss = "squared",
    lam: float = 1.0,
    patterns: Patterns | None = None,
    n_gates: int = 100,
    bias: bool = False,
    seed=None,
    formulation: str = "one_vs_all",
    penalty=None,
) -> ConvProgram:
    """Build the convex program of a two-layer convolutional network as a :class:`cvxpy.Problem`.

    C-ReLU on the patch matrix ``Z`` with the pooling map on the output (``docs/conv.md``)::

        minimize   L( Pool(sum_i D_i Z_a (V_i - W_i)), y ) + lam * sum_i (||V_i|| + ||W_i||)
        subject to S * (Z_a V) >= 0,  S * (Z_a W) >= 0          (S = 2 M - 1)

    and C-GReLU (``activation="gated_relu"``: one block ``U``, no cones). With ``c`` outputs every
    block is ``d_a x c``: one-vs-all (columnwise norms, columnwise cones) or, gated only, nuclear
    norms.

    Parameters
    ----------
    X : array of shape (n, d)
        Flattened inputs, ``d = prod(image_shape)``.
    y : array of shape (n,) or (n, c)
        Targets (``{-1, +1}`` for logistic / hinge; one-hot for cross-entropy).
    image_shape : int or tuple
        ``L`` / ``(L,)`` (1-D) or ``(H, W)`` (2-D).
    patch_size, stride : int or tuple
        Window size and stride (:class:`PatchGeometry`).
    pooling : {"sum", "average"}
        Average pooling is sum pooling times ``1/K``: the program at ``lam`` equals the
        sum-pooling program at ``K lam`` with blocks scaled by ``K``.
    activation : {"relu", "gated_relu"}
    loss : str or Loss
    lam : float
        Initial value of the ``lam`` parameter (DPP: change it and solve again without recompiling).
    patterns : Patterns, optional
        Built on ``Z = extract_patches(X, ...)`` (with a bias column when ``bias``), e.g. by
        :func:`~cvxnn.patterns.enumerate_patterns`; sampled with ``n_gates`` and ``seed`` when
        omitted.
    n_gates, bias, seed
        Pattern sampling (:func:`~cvxnn.patterns.sample_patterns` on ``Z``); ``bias`` gives every
        filter a (penalised) bias. Ignored when ``patterns`` is given (its bias is used).
    formulation : {"one_vs_all", "nuclear"}
        Vector output only.
    penalty : Penalty, optional
        Replaces the block norms by a penalty of the whole weight matrix (``d_a x p`` per sign, or
        ``d_a x p c``), e.g. :class:`~cvxnn.feature_penalties.FeatureGroupL2`, whose groups are
        then the filter taps (the rows: pixel ``j`` of every filter and output), or
        :class:`~cvxnn.feature_penalties.SparseGroupL2`. Vector output uses the one-vs-all layout.
        The same convex surrogates as for fully connected programs (docs/feature-sparsity.md).

    Returns
    -------
    ConvProgram

    Raises
    ------
    ShapeError
        ``X`` does not match ``image_shape``, or ``y`` has the wrong length.
    InvalidParameterError
        Bad geometry, pooling, activation or formulation.
    PatternMismatchError
        ``patterns`` were not built on the patch matrix of ``X``.
    """
    activation = _check_activation(activation)
    pooling = _check_pooling(pooling)
    data = prepare_conv_data(X, y, image_shape=image_shape, patch_size=patch_size, stride=stride,
                             patterns=patterns, n_gates=n_gates, bias=bias, seed=seed, loss=loss)
    X, Z, y, geometry, patterns, loss_obj = data.X, data.Z, data.y, data.geometry, data.patterns, data.loss
    c = data.n_outputs
    weight_penalty = None if penalty is None else get_penalty(penalty)
    if weight_penalty is not None:  # the name is checked first (a misspelt one passed with a penalty)
        check_formulation(formulation, "gated_relu", 1)
        formulation = "one_vs_all"
    check_formulation(formulation, activation, c)
    n, K = X.shape[0], geometry.n_patches
    Za = patterns.design(Z)
    M = patterns.mask.astype(float)
    d_a, p = patterns.design_dim, patterns.n_patterns
    Pool = _pooling_matrix(n, K, pooling)

    if c == 1:
        def fit_of(B):
            return _masked_prediction(Za, M, B)

        def blocks_of(name):
            B = cp.Variable((d_a, p), name=name)
            if weight_penalty is not None:  # penalised as a whole below
                return B, 0.0, [], ()
            return B, GroupL2().cvxpy(B).expression, [], ()
    else:
        Mc = np.repeat(M, c, axis=1)  # nK x pc: column i c + k is D_i
        E = np.tile(np.eye(c), (p, 1))  # pc x c: sums the blocks per output

        def fit_of(B):
            return cp.multiply(Mc, Za @ B) @ E

        def blocks_of(name):
            B = cp.Variable((d_a, p * c), name=name)
            if weight_penalty is not None:  # penalised as a whole below
                return B, 0.0, [], ()
            if formulation == "one_vs_all":
                return B, Columnwise().cvxpy(B, c).expression, [], ()
            term = Nuclear().cvxpy(B, c, name=name)
            return B, term.expression, term.constraints, term.auxiliary

    spec = get_activation(activation)
    parts = spec.cvxpy_blocks(blocks_of, Za, patterns.mask, c)
    variables, auxiliary, cones, penalty = parts.variables, parts.auxiliary, parts.cones, parts.penalty
    constraints = parts.constraints
    if weight_penalty is not None:  # [V, W] (the V blocks, then W) or U
        blocks = list(variables.values())
        term = weight_penalty.cvxpy(cp.hstack(blocks) if len(blocks) > 1 else blocks[0], c)
        penalty = term.expression
        constraints = constraints + term.constraints
    prediction = Pool @ fit_of(parts.weights)
    lam_param = cp.Parameter(nonneg=True, name="lam", value=check_lam(lam))
    problem = cp.Problem(cp.Minimize(loss_obj.cvxpy(prediction, y) + lam_param * penalty), constraints)
    logger.debug("built conv %s program: n=%d, K=%d, h_a=%d, p=%d, c=%d, pooling=%s",
                 activation, n, K, d_a, p, c, pooling)
    return ConvProgram(
        problem=problem,
        variables=variables,
        lam=lam_param,
        cone_constraints=cones,
        prediction=prediction,
        activation=activation,
        form="regularized",
        loss=loss_obj,
        patterns=patterns,
        X=Z,
        y=y,
        geometry=geometry,
        pooling=pooling,
        images=X,
        n_outputs=c,
        formulation=formulation if c > 1 else "one_vs_all",
        auxiliary=auxiliary,
        weight_penalty=weight_penalty,
    )


# ----------------------------------------------------------------------------- convex points
@dataclass(eq=False)
class ConvModel:
    """A point of the convolutional convex program: a :class:`~cvxnn.solution.ConvexModel` on the
    patch matrix ``Z``, with the patch geometry and the pooling that turn it into predictions.

    Attributes
    ----------
    model : ConvexModel
        Blocks ``U`` (C-GReLU) or ``V``, ``W`` (C-ReLU) on patterns built on ``Z``.
    geometry : PatchGeometry
    pooling : {"sum", "average"}
    """

    model: ConvexModel
    geometry: PatchGeometry
    pooling: str = "sum"

    def __post_init__(self) -> None:
        if not isinstance(self.model, ConvexModel):
            raise InvalidParameterError(f"model must be a cvxnn ConvexModel, got {type(self.model).__name__}.")
        if not isinstance(self.geometry, PatchGeometry):
            raise InvalidParameterError(f"geometry must be a PatchGeometry, got {type(self.geometry).__name__}.")
        _check_pooling(self.pooling)
        h = self.model.patterns.n_features
        if h != self.geometry.patch_dim:
            raise ShapeError(f"the model's patterns have {h} features but a patch has {self.geometry.patch_dim}.")

    @property
    def activation(self) -> str:
        """``"relu"`` or ``"gated_relu"``."""
        return self.model.activation

    @property
    def patterns(self) -> Patterns:
        """The patterns, built on ``Z``."""
        return self.model.patterns

    @property
    def n_outputs(self) -> int:
        """``c``."""
        return self.model.n_outputs

    def patches(self, X) -> np.ndarray:
        """``Z`` of ``X`` (:meth:`PatchGeometry.extract`)."""
        return self.geometry.extract(X)

    def train_predict(self, X) -> np.ndarray:
        """``Pool(sum_i D_i Z theta_i)`` on the training inputs (the stored mask)."""
        return pool(self.model.train_predict(self.patches(X)), self.geometry.n_patches, self.pooling)

    def predict(self, X) -> np.ndarray:
        """Convex-model predictions with the patterns recomputed from the gates on new inputs
        (the gated reading; for C-ReLU the mapped :class:`ConvNetwork` is the ReLU reading)."""
        return pool(self.model.predict(self.patches(X)), self.geometry.n_patches, self.pooling)

    def penalty(self) -> float:
        """``sum`` of the block norms of the program (without ``lam``); a program with a feature
        penalty reports its own ``R(Theta)`` as :attr:`program_penalty`."""
        return self.model.penalty()

    @property
    def program_penalty(self) -> float | None:
        """The penalty of the program that was solved (``model.program_penalty``): ``R(Theta)``
        of a feature penalty (``build_conv_program(..., penalty=...)``), the nuclear or
        columnwise norms of vector output; None when the program recorded none."""
        return getattr(self.model, "program_penalty", None)  # a hand-built ConvexModel has none

    def objective(self, X, y, lam: float, loss: str | Loss | None = None) -> float:
        """``L(Pool(sum_i D_i Z theta_i), y) + lam * penalty`` on the training inputs.

        ``loss`` defaults to the solution's own (that of :attr:`model` for a model wrapped by
        hand; squared when neither records one). The penalty is :meth:`penalty`, the block norms;
        with a feature penalty the objective of the program is ``L + lam * program_penalty``
        instead (a solution's ``objective_value``)."""
        lam = check_lam(lam)
        if loss is None:
            loss = getattr(self, "loss", None) or getattr(self.model, "loss", None) or "squared"
        loss = get_loss(loss)
        X = check_X(X)
        y = check_y(y, X.shape[0])
        pred = self.train_predict(X)
        if pred.ndim == 2 and pred.shape[1] == 1 and y.ndim == 1:  # one output, 1-D targets
            pred = pred[:, 0]
        return loss.value(pred, y) + lam * self.penalty()

    def max_cone_violation(self, X) -> float:
        """Largest violation of ``(2 D_i - I) Z_a v_i >= 0`` and of the ``w_i`` cones (0 for C-GReLU)."""
        return self.model.max_cone_violation(self.patches(X))

    def to_network(self, *, tol: float = 0.0) -> ConvNetwork:
        """The CNN of this point by the exact maps (``docs/conv.md``, "Convex form"): each nonzero block
        ``b_i`` becomes the filter ``b_i / sqrt(||b_i||)`` with output weight ``+-sqrt(||b_i||)``
        (balanced SVD factors for nuclear-norm blocks; the columnwise split for one-vs-all ReLU
        blocks), via :func:`cvxnn.maps.to_network` on ``Z``."""
        return ConvNetwork.from_patch_network(to_network(self.model, tol=tol), self.geometry, self.pooling)


@dataclass(eq=False)
class ConvSolution(ConvModel):
    """A :class:`ConvModel` returned by a solver, with its status and certificate.

    Attributes
    ----------
    status : str
        One of :data:`cvxnn.solution.STATUSES`; :attr:`converged` only for ``"optimal"``.
    objective_value : float
        The convex objective at the point.
    lam : float or None
    loss : Loss or None
    backend, solver : str
    solve_time, compile_time : float or None
    iterations : int or None
    gap, rel_gap, dual_value : float or None
        Duality-gap certificate ``P - D >= P - p*`` (absolute, relative) and the dual value.
    max_violation : float or None
        Largest cone violation (C-ReLU).
    extra : dict
        Backend diagnostics.
    """

    status: str = "optimal"
    objective_value: float = float("nan")
    lam: float | None = None
    loss: Loss | None = None
    backend: str = ""
    solver: str = ""
    solve_time: float | None = None
    compile_time: float | None = None
    iterations: int | None = None
    gap: float | None = None
    rel_gap: float | None = None
    dual_value: float | None = None
    max_violation: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_convex(cls, sol: ConvexSolution, geometry: PatchGeometry, pooling: str) -> ConvSolution:
        """Wrap a :class:`~cvxnn.solution.ConvexSolution` on ``Z`` (it stays :attr:`model`)."""
        return cls(model=sol, geometry=geometry, pooling=pooling, status=sol.status,
                   objective_value=sol.objective_value, lam=sol.lam, loss=sol.loss, backend=sol.backend,
                   solver=sol.solver, solve_time=sol.solve_time, compile_time=sol.compile_time,
                   iterations=sol.iterations, gap=sol.gap, rel_gap=sol.rel_gap, dual_value=sol.dual_value,
                   max_violation=sol.max_violation, extra=dict(sol.extra))

    @property
    def converged(self) -> bool:
        """True only when the solver certified the requested accuracy (status ``"optimal"``)."""
        return self.status == "optimal"

    def raise_for_status(self) -> ConvSolution:
        """Raise :class:`~cvxnn.errors.SolverError` unless the status is ``"optimal"``."""
        if not self.converged:
            raise SolverError(
                f"the {self.solver} solve of the convolutional program ended with status {self.status!r} "
                f"(objective {self.objective_value:.6g}, gap {self.gap}); raise max_iter or loosen tol.",
                status=self.status,
            )
        return self

    def warn_if_not_converged(self, stacklevel: int = 2) -> None:
        """Emit a :class:`~cvxnn.errors.ConvergenceWarning` unless converged."""
        if not self.converged:
            warnings.warn(f"{self.solver} finished with status {self.status!r} (gap={self.gap}); "
                          "the result is not certified optimal.", ConvergenceWarning, stacklevel=stacklevel + 1)

    def summary(self) -> str:
        """A few lines describing the solve."""
        g = self.geometry
        lines = [
            f"activation   : {self.activation} conv ({g.n_patches} patches of {g.size} on {g.image_shape}, "
            f"stride {g.stride}, {self.pooling} pooling; {self.patterns.n_patterns} patterns, "
            f"{self.n_outputs} output{'s' if self.n_outputs > 1 else ''})",
            f"backend      : {self.backend} / {self.solver}",
            f"status       : {self.status}",
            f"objective    : {self.objective_value:.10g}",
            f"active blocks: {self.model.n_active()}",
        ]
        if self.gap is not None:
            lines.append(f"duality gap  : {self.gap:.3e} (relative {self.rel_gap:.3e})")
        if self.max_violation is not None:
            lines.append(f"cone viol.   : {self.max_violation:.3e}")
        if self.solve_time is not None:
            lines.append(f"solve time   : {self.solve_time:.4f} s")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the CNN
@dataclass(frozen=True, eq=False)
class ConvNetwork:
    """A two-layer convolutional network ``f(x) = sum_j alpha_j pool_k sigma_j(x_k)``.

    ``sigma_j(x_k) = (x_k^T w_j + b_j)_+`` (ReLU) or ``1[x_k^T g_j + g0_j >= 0] (x_k^T w_j + b_j)``
    (gated, when ``gates`` are given). Internally the hidden layer is an ordinary
    :class:`~cvxnn.networks.ReLUNetwork` / :class:`~cvxnn.networks.GatedReLUNetwork` on the patch
    matrix (:attr:`patch_network`), so ``f(X) = Pool(patch_network.predict(Z))``.

    Parameters
    ----------
    filters : array of shape (h, m)
        One filter ``w_j`` per column, ``h = geometry.patch_dim``.
    alpha : array of shape (m,) or (m, c)
        Output weights.
    geometry : PatchGeometry
    pooling : {"sum", "average"}
    filter_bias : array of shape (m,), optional
        ``b_j`` (penalised with the filter).
    gates, gate_bias : arrays of shape (h, m) and (m,), optional
        Fixed gates of a gated network.
    """

    filters: np.ndarray
    alpha: np.ndarray
    geometry: PatchGeometry
    pooling: str = "sum"
    filter_bias: np.ndarray | None = None
    gates: np.ndarray | None = None
    gate_bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, PatchGeometry):
            raise InvalidParameterError(f"geometry must be a PatchGeometry, got {type(self.geometry).__name__}.")
        _check_pooling(self.pooling)
        if self.gates is None:
            if self.gate_bias is not None:
                raise InvalidParameterError("gate_bias needs gates.")
            net = ReLUNetwork(W1=self.filters, w2=self.alpha, b1=self.filter_bias)
        else:
            net = GatedReLUNetwork(W1=self.filters, w2=self.alpha, b1=self.filter_bias, gates=self.gates,
                                   gate_bias=self.gate_bias)
        if net.n_features != self.geometry.patch_dim:
            raise ShapeError(f"filters have {net.n_features} rows but a patch has {self.geometry.patch_dim} "
                             f"entries (size {self.geometry.size}).")
        object.__setattr__(self, "filters", net.W1)
        object.__setattr__(self, "alpha", net.w2)
        object.__setattr__(self, "filter_bias", net.b1)
        if isinstance(net, GatedReLUNetwork):
            object.__setattr__(self, "gates", net.gates)
            object.__setattr__(self, "gate_bias", net.gate_bias)
        object.__setattr__(self, "_net", net)

    @classmethod
    def from_patch_network(cls, net: ReLUNetwork | GatedReLUNetwork, geometry: PatchGeometry,
                           pooling: str = "sum") -> ConvNetwork:
        """The CNN whose hidden layer on the patches is ``net``."""
        if isinstance(net, GatedReLUNetwork):
            return cls(filters=net.W1, alpha=net.w2, geometry=geometry, pooling=pooling, filter_bias=net.b1,
                       gates=net.gates, gate_bias=net.gate_bias)
        if not isinstance(net, ReLUNetwork):
            raise InvalidParameterError(f"net must be a ReLUNetwork or GatedReLUNetwork, got {type(net).__name__}.")
        return cls(filters=net.W1, alpha=net.w2, geometry=geometry, pooling=pooling, filter_bias=net.b1)

    @property
    def patch_network(self) -> ReLUNetwork | GatedReLUNetwork:
        """The hidden layer as a two-layer network on single patches."""
        return self._net

    @property
    def activation(self) -> str:
        """``"relu"`` or ``"gated_relu"``."""
        return "relu" if self.gates is None else "gated_relu"

    @property
    def n_filters(self) -> int:
        """``m``."""
        return self.filters.shape[1]

    @property
    def n_outputs(self) -> int:
        """``c``."""
        return self._net.n_outputs

    def hidden(self, X) -> np.ndarray:
        """Pooled activations ``pool_k sigma_j(x_k)`` (``n x m``)."""
        Z = self.geometry.extract(X)
        return pool(self._net.hidden(Z), self.geometry.n_patches, self.pooling)

    def predict(self, X) -> np.ndarray:
        """Network output: ``(n,)`` or ``(n, c)``."""
        return self.hidden(X) @ self.alpha

    def penalty(self) -> float:
        """``1/2 sum_j (||w_j||^2 + b_j^2 + ||alpha_j||^2)``."""
        return self._net.penalty()

    def objective(self, X, y, lam: float, loss: str | Loss = "squared") -> float:
        """``L(f(X), y) + lam/2 sum_j (||w_j||^2 + b_j^2 + ||alpha_j||^2)``."""
        X = check_X(X)
        y = check_y(y, X.shape[0])
        lam = check_lam(lam)
        pred = self.predict(X)
        if pred.ndim == 2 and pred.shape[1] == 1 and y.ndim == 1:  # alpha of shape (m, 1), 1-D targets
            pred = pred[:, 0]
        return get_loss(loss).value(pred, y) + lam * self.penalty()


def network_to_conv(net: ConvNetwork, X) -> ConvModel:
    """Map a CNN to a point of the convex program on the patterns it induces on ``Z``.

    Filter ``j`` goes to the pattern ``1[Z_a w_j >= 0]`` (gated: of its gate) and adds
    ``w_j |alpha_j|`` to ``v_i`` or ``w_i`` by the sign of ``alpha_j`` (gated:
    ``w_j alpha_j^T`` to ``u_i``), by :func:`cvxnn.maps.relu_network_to_convex` /
    :func:`cvxnn.maps.gated_network_to_convex` on ``Z``. Same predictions; convex objective no
    larger than the network's for scalar output, gated networks and ReLU filters whose output
    weights share one sign (a vector-output ReLU filter with mixed signs is split between ``v_i``
    and ``w_i``, at up to ``sqrt(2)`` times its penalty, see :func:`cvxnn.maps.relu_network_to_convex`).

    Returns
    -------
    ConvModel
    """
    if not isinstance(net, ConvNetwork):
        raise InvalidParameterError(f"net must be a cvxnn ConvNetwork, got {type(net).__name__}.")
    Z = net.geometry.extract(X)
    inner = net.patch_network
    to_convex = gated_network_to_convex if get_activation(net.activation).gated else relu_network_to_convex
    model = to_convex(inner, Z)
    return ConvModel(model=model, geometry=net.geometry, pooling=net.pooling)


# ----------------------------------------------------------------------------- certificates
class PooledDesign:
    """The operator ``Pool o A`` of the convolutional programs, matrix-free.

    Parameters
    ----------
    op : ImplicitDesign
        ``A = [D_1 Z_a, ..., D_p Z_a]`` on the patch matrix (``n K`` rows).
    n_patches : int
        ``K``.
    pooling : {"sum", "average"}

    Attributes
    ----------
    n : int
        Samples (rows of the image ``Pool A U``).
    d, p, c, dtype
        Those of ``op``.
    """

    def __init__(self, op: ImplicitDesign, n_patches: int, pooling: str = "sum") -> None:
        self.op = op
        self.K = check_positive_int(n_patches, "n_patches")
        self.pooling = _check_pooling(pooling)
        if op.n % self.K:
            raise ShapeError(f"the design has {op.n} rows, not a multiple of K={self.K} patches.")
        self.n = op.n // self.K
        self.d, self.p, self.c, self.dtype = op.d, op.p, op.c, op.dtype
        self.memory_budget = op.memory_budget

    @property
    def flops(self) -> float:
        """GEMM flops spent by the inner design so far."""
        return self.op.flops

    def forward(self, U: np.ndarray) -> np.ndarray:
        """``Pool(sum_i D_i Z_a U_i)`` for ``U`` of shape ``(d_a, p, c)``; returns ``(n, c)``."""
        return pool(self.op.forward(U), self.K, self.pooling)

    def adjoint(self, R: np.ndarray) -> np.ndarray:
        """``[Z_a^T D_i Pool^T R]_i`` for ``R`` of shape ``(n, c)``; returns ``(d_a, p, c)``."""
        return self.op.adjoint(unpool(np.asarray(R, dtype=self.dtype), self.K, self.pooling))

    def spectral_norm_sq(self, n_iter: int = 6, seed: int = 0) -> float:
        """Estimate ``||Pool A||_2^2`` by power iteration on ``A^T Pool^T Pool A`` (a slight
        underestimate; the line search of R-FISTA corrects the step)."""
        return power_iteration_norm_sq(self, n_iter=n_iter, seed=seed)

    def dense_bytes(self) -> int:
        """Bytes of :meth:`dense`'s pooled design (``n x d_a p`` in the compute dtype)."""
        return self.n * self.d * self.p * self.dtype.itemsize

    def dense(self, memory_budget: int | None = None) -> DensePooledDesign:
        """The same operator with its pooled blocks formed (:class:`DensePooledDesign`).

        Raises
        ------
        MemoryBudgetError
            When the ``n x d_a p`` pooled design does not fit ``memory_budget`` (default this
            operator's budget).
        """
        budget = self.memory_budget if memory_budget is None else int(memory_budget)
        # the chunk pooled_blocks holds, not its cap: a 10 kB design was refused at a 200 kB budget
        # (and every Newton solve at a budget under 32 MiB)
        row_bytes = 8 * self.K * (self.p + self.d)
        chunk = min(self.n, max(1, _POOL_CHUNK_BYTES // row_bytes)) * row_bytes
        check_memory({"pooled design": self.dense_bytes(), "chunk": chunk},
                     what="the pooled design of the convolutional program", budget=budget,
                     hint="raise memory_budget, or use solver='rfista' (gated), which runs matrix-free without it.")
        blocks = pooled_blocks(self.op.Xa, self.op.mask, self.K, self.pooling, dtype=self.dtype)
        return DensePooledDesign(blocks, n_outputs=self.c, memory_budget=budget)


#: Bytes of the float mask and product chunk held while :func:`pooled_blocks` forms the design.
_POOL_CHUNK_BYTES = 2**25


def pooled_blocks(Za: np.ndarray, mask: np.ndarray, n_patches: int, pooling: str = "sum",
                  dtype=np.float64) -> np.ndarray:
    """The pooled blocks ``B_i = Pool D_i Z_a`` of the convolutional design, as ``(n, d_a, p)``.

    ``B[s, :, i] = kappa * sum_k 1[z_{sk}^T g_i >= 0] z_{sk}`` (``docs/conv.md``, "Native solver"):
    for each sample, the sum of its active patches under every gate. Formed by one
    ``einsum`` per chunk of samples (``2 n K d_a p`` flops, the cost of one product with the
    implicit design), so the ``n K x p`` mask is converted to floats a chunk at a time.

    Parameters
    ----------
    Za : ndarray of shape (n K, d_a)
        The patch matrix (with the bias column when the patterns use one).
    mask : ndarray of bool, shape (n K, p)
        The patterns on ``Z_a``.
    n_patches : int
        ``K``.
    pooling : {"sum", "average"}
    dtype : numpy.float64 or numpy.float32
        Dtype of the blocks, and of the products that form them (a chunk at a time, so a float32
        design never passes through a float64 copy).

    Returns
    -------
    ndarray of shape (n, d_a, p), in ``dtype``
    """
    K = check_positive_int(n_patches, "n_patches")
    nK, d = Za.shape
    p = mask.shape[1]
    if nK % K or mask.shape[0] != nK:
        raise ShapeError(f"the design has {nK} rows and the mask {mask.shape[0]}; both must be n K, K={K}.")
    n = nK // K
    dtype = np.dtype(dtype)
    out = np.empty((n, d, p), dtype=dtype)
    step = max(1, _POOL_CHUNK_BYTES // max(1, 8 * K * (p + d)))
    for s in range(0, n, step):
        e = min(n, s + step)
        M = mask[s * K:e * K].reshape(e - s, K, p).astype(dtype)
        Zc = np.asarray(Za[s * K:e * K], dtype=dtype).reshape(e - s, K, d)
        np.matmul(Zc.transpose(0, 2, 1), M, out=out[s:e])
    f = pooling_factor(pooling, K)
    if f != 1.0:
        out *= dtype.type(f)
    return out


class DensePooledDesign:
    """``Pool o A`` with its pooled blocks formed: the ``n x d_a p`` matrix ``[B_1, ..., B_p]``.

    One product costs ``2 n d_a p c`` flops, ``K`` times fewer than the matrix-free
    :class:`PooledDesign` (``2 n K d_a p c``), and needs ``n d_a p`` numbers (for 3x3 patches of
    1257 digits with 32 patterns, 3.2 MB against the 1.9e6-entry patch design and mask).
    The columns are ordered like ``U.reshape(d_a p, c)`` for blocks ``U`` of shape
    ``(d_a, p, c)``.

    Parameters
    ----------
    blocks : ndarray of shape (n, d_a, p)
        :func:`pooled_blocks`.
    n_outputs : int
    memory_budget : int, optional

    Attributes
    ----------
    n, d, p, c, dtype
        As for :class:`PooledDesign`.
    matrix : ndarray of shape (n, d_a p)
    """

    def __init__(self, blocks: np.ndarray, n_outputs: int = 1, memory_budget: int | None = None) -> None:
        blocks = np.asarray(blocks)
        if blocks.ndim != 3:
            raise ShapeError(f"pooled blocks must be (n, d_a, p), got shape {blocks.shape}.")
        self.n, self.d, self.p = blocks.shape
        self.c = check_positive_int(n_outputs, "n_outputs")
        self.dtype = blocks.dtype
        self.matrix = np.ascontiguousarray(blocks.reshape(self.n, self.d * self.p))
        self.memory_budget = memory_budget
        self.flops = 0.0

    def forward(self, U: np.ndarray) -> np.ndarray:
        """``sum_i B_i U_i`` for ``U`` of shape ``(d_a, p, c)``; returns ``(n, c)``."""
        self.flops += 2.0 * self.matrix.size * self.c
        return self.matrix @ np.asarray(U, dtype=self.dtype).reshape(self.d * self.p, self.c)

    def adjoint(self, R: np.ndarray) -> np.ndarray:
        """``[B_i^T R]_i`` for ``R`` of shape ``(n, c)``; returns ``(d_a, p, c)``."""
        self.flops += 2.0 * self.matrix.size * self.c
        R = np.asarray(R, dtype=self.dtype).reshape(self.n, self.c)
        return (self.matrix.T @ R).reshape(self.d, self.p, self.c)

    def spectral_norm_sq(self, n_iter: int = 6, seed: int = 0) -> float:
        """``||[B_1 .. B_p]||_2^2`` estimated by power iteration (see :class:`PooledDesign`)."""
        return power_iteration_norm_sq(self, n_iter=n_iter, seed=seed)


def _penalty_kind(model, c: int) -> str:
    """:class:`~cvxnn.native.prox.BlockPenalty` kind of a model's program."""
    if c == 1:
        return "nuclear"  # the group lasso for c == 1
    return "columnwise" if getattr(model, "formulation", None) == "one_vs_all" else "nuclear"


def _as3(B: np.ndarray) -> np.ndarray:
    return B[:, :, None] if B.ndim == 2 else B


def _relu_gap(op: PooledDesign, Za: np.ndarray, mask: np.ndarray, kernel: SmoothKernel, lam: float,
              V3: np.ndarray, W3: np.ndarray, rho: np.ndarray | None, kind: str,
              feature: GroupSparsePenalty | None = None) -> GapCertificate:
    """Gap of a convolutional C-ReLU point with cone multipliers ``rho`` (``n K x 2p x c``) or none;
    ``feature``: the program's feature-sparse penalty of ``[V, W]`` in place of the block norms."""
    pen = BlockPenalty(kind)
    z = op.forward(V3) - op.forward(W3)
    if feature is None:
        P = kernel.value(z) + lam * float(pen.norms(V3).sum() + pen.norms(W3).sum())
    else:
        P = kernel.value(z) + lam * feature.value(np.concatenate([V3, W3], axis=1))
    S = 2.0 * mask.astype(np.float64) - 1.0
    nK, p = mask.shape
    c, d = V3.shape[2], Za.shape[1]
    viol = float(max(0.0, -min((S[:, :, None] * (Za @ V3.reshape(d, p * c)).reshape(nK, p, c)).min(initial=0.0),
                               (S[:, :, None] * (Za @ W3.reshape(d, p * c)).reshape(nK, p, c)).min(initial=0.0))))
    theta = kernel.grad(z)
    base = op.adjoint(theta)  # [Z_a^T D_i Pool^T theta]_i
    gV, gW = base, -base
    if rho is not None:
        rho = np.asarray(rho, dtype=np.float64)
        if not np.all(np.isfinite(rho)):  # NaN survives the clip and voids the dual bound
            raise NonFiniteError("multipliers contain NaN or infinity.")
        rho = np.maximum(rho, 0.0)
        if rho.shape != (nK, 2 * p, c):
            raise ShapeError(f"multipliers must have shape {(nK, 2 * p, c)}, got {rho.shape}.")
        gV = base - (Za.T @ (S[:, :, None] * rho[:, :p]).reshape(nK, p * c)).reshape(d, p, c)
        gW = -base - (Za.T @ (S[:, :, None] * rho[:, p:]).reshape(nK, p * c)).reshape(d, p, c)
    if feature is None:
        dn = float(max(pen.dual_norms(gV).max(initial=0.0), pen.dual_norms(gW).max(initial=0.0)))
    else:  # R* of the whole [G_V, G_W]: the feature norm couples the blocks
        dn = feature.dual_norm_value(np.concatenate([gV, gW], axis=1))
    s = kernel.best_dual_scale(theta, np.inf if dn == 0.0 else lam / dn)
    D = kernel.dual_value(s * theta)
    gap = max(P - D, 0.0)
    return GapCertificate(primal=P, dual=D, gap=gap, rel_gap=gap / max(abs(P), np.finfo(float).tiny),
                          scale=s, max_violation=viol)


def conv_certificate(model: ConvModel, X, y, lam: float, loss: str | Loss = "squared", *,
                     multipliers: np.ndarray | None = None, penalty=None) -> GapCertificate:
    """Certified duality gap of a point of the convolutional program (``docs/conv.md``, "Certificates").

    Parameters
    ----------
    model : ConvModel
        Any point (a :class:`~cvxnn.conv.ConvSolution` of either backend, or the image of a CNN).
    X : array of shape (n, d)
        The training inputs.
    y : array of shape (n,) or (n, c)
    lam : float
        ``> 0``.
    loss : str or Loss
        A smooth loss with a conjugate (squared, logistic, Huber, cross-entropy).
    multipliers : ndarray of shape (n K, 2p[, c]), optional
        C-ReLU only: cone multipliers ``rho >= 0`` (``v`` blocks first); default the solution's
        (CVXPY's cone duals), else zero (a valid, looser bound).
    penalty : FeatureGroupL2 or SparseGroupL2, optional
        The feature-sparse penalty of the program (``build_conv_program(..., penalty=...)``), in
        place of the block norms: ``P = L + lam R(Theta)`` and the dual constraint
        ``R*(G) <= lam``. A solution of such a program is refused without it (the block-norm
        certificate is that of another program: a 28% "gap" at a point Clarabel solved).

    Returns
    -------
    GapCertificate
        ``gap >= P(model) - p*`` whenever the point is cone feasible (its violation is reported).
    """
    if not isinstance(model, ConvModel):
        raise InvalidParameterError(f"model must be a cvxnn ConvModel, got {type(model).__name__}.")
    lam = check_lam(lam, allow_zero=False)
    if penalty is not None and not isinstance(penalty, GroupSparsePenalty):
        raise InvalidParameterError("penalty must be a feature-sparse penalty (FeatureGroupL2 or SparseGroupL2), "
                                    f"got {type(penalty).__name__}.")
    used = next((e["penalty"] for e in (getattr(model, "extra", None), getattr(model.model, "extra", None))
                 if isinstance(e, dict) and isinstance(e.get("penalty"), str)), None)
    if penalty is None and used is not None:
        raise InvalidParameterError(
            f"this point solves the convolutional program with the feature-sparse penalty {used}; pass "
            "that penalty (conv_certificate(..., penalty=...)) to certify it, not the block norms.")
    geo = model.geometry
    data = prepare_conv_data(X, y, image_shape=geo, patch_size=geo.size, stride=geo.stride,
                             patterns=model.patterns, loss=loss)
    c = data.n_outputs
    inner = model.model
    if inner.n_outputs != c:
        raise ShapeError(f"the model has {inner.n_outputs} outputs but y has {c}.")
    y2 = data.y[:, None] if data.y.ndim == 1 else data.y
    kernel = make_kernel(data.loss, y2, np.float64)
    Za = model.patterns.design(data.Z)
    op = PooledDesign(ImplicitDesign(Za, model.patterns.mask, n_outputs=c, dtype=np.float64),
                      geo.n_patches, model.pooling)
    kind = _penalty_kind(inner, c)
    if not inner.spec.constrained:  # no cone multipliers: the gap of the pooled group lasso
        U3 = _as3(np.asarray(inner.U, dtype=np.float64))
        if penalty is not None:
            return feature_sparse_certificate(op, kernel, lam, U3, penalty)
        return gated_certificate(op, kernel, lam, U3, penalty=kind)
    if multipliers is None:
        multipliers = getattr(inner, "multipliers", None)
    if multipliers is not None:
        try:
            multipliers = np.asarray(multipliers, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"multipliers must be an array of numbers: {exc}") from None
        if multipliers.ndim == 2:
            multipliers = multipliers[:, :, None]
        nK, p = model.patterns.mask.shape
        c = _as3(inner.V).shape[2]
        if multipliers.shape != (nK, 2 * p, c):
            raise ShapeError(f"multipliers have shape {multipliers.shape}; expected ({nK}, {2 * p}"
                             f"{'' if c == 1 else f', {c}'}) (n K patch rows, the v blocks' then the w blocks').")
        if not np.all(np.isfinite(multipliers)):
            raise NonFiniteError("multipliers contain NaN or infinity.")
    return _relu_gap(op, Za, model.patterns.mask, kernel, lam, _as3(inner.V), _as3(inner.W), multipliers, kind,
                     feature=penalty)
