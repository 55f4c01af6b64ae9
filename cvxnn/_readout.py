"""Convex point -> network: the exact maps of docs/math.md, "Solution maps", from blocks to neurons.

The implementation behind :func:`cvxnn.maps.to_network`, :meth:`cvxnn.solution.ConvexModel.to_network`
and :func:`cvxnn.vector.relu_vector_factors`. It needs only the blocks and the patterns of a
model (any object with ``activation``, ``patterns``, ``U`` / ``V`` / ``W``), so it sits below
:mod:`cvxnn.solution` and :mod:`cvxnn.vector`, which import it; the public names live in those
modules and in :mod:`cvxnn.maps`.

* C-ReLU -> NC-ReLU (scalar output): ``v_i != 0`` gives ``(v_i / sqrt||v_i||, +sqrt||v_i||)``,
  ``w_i != 0`` gives ``(w_i / sqrt||w_i||, -sqrt||w_i||)``.
* C-GReLU -> NC-GReLU: ``(u_i / sqrt||u_i||, sqrt||u_i||)`` with gate ``g_i``; vector output: the
  balanced SVD factors of each block.
* Vector-output C-ReLU: the SVD factors of a block when its left factors lie in ``+-K_i``, else the
  columnwise split (:func:`relu_vector_factors`).

With ``tol = 0`` the maps are exact. ``tol > 0`` drops blocks of norm ``<= tol * max block norm``
and, for vector output, the rank-one factors (singular values or columns) of kept blocks below the
same threshold: a neuron is kept only when it is above the threshold that a whole block must pass.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass

import numpy as np

from ._validation import check_nonnegative_float
from .errors import InvalidParameterError
from .networks import GatedReLUNetwork, ReLUNetwork, _scaled_norms
from .operators import block_norms
from .patterns import Patterns

__all__ = ["ReLUVectorFactors", "relu_vector_factors", "relu_vector_to_network", "to_network"]

logger = logging.getLogger(__name__)

#: Relative singular mass treated as rounding when mapping a one-vs-all solution by SVD factors.
_ROUNDOFF = 1e-13
#: A singular value of a vector-output C-GReLU block at most this fraction of the block's largest
#: is the rounding of a block of lower rank (the SVD of an exactly rank-r ``d x c`` block returns
#: ``c - r`` values near ``1e-16`` of the largest): it is not turned into a neuron. Its neuron
#: would change the predictions and the penalty by less than this fraction of the block's.
GATED_RANK_RTOL = 1e-13


def _check_tolerance(value, name: str) -> float:
    """A finite real number ``>= 0`` (raises :class:`InvalidParameterError` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)) \
            or not np.isfinite(value) or value < 0:
        raise InvalidParameterError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def _column_norms(B: np.ndarray) -> np.ndarray:
    """Norms along axis 0 of ``B`` (``d x p`` or ``d x p x c``), scaled so that blocks of tiny
    (``1e-170``) or huge (``1e200``) entries neither underflow to 0 nor overflow to inf when
    squared: an unscaled norm dropped such blocks or divided by a zero norm."""
    return _scaled_norms(B.reshape(B.shape[0], -1)).reshape(B.shape[1:])


def _keep(norms: np.ndarray, tol: float) -> np.ndarray:
    if norms.size == 0:
        return np.zeros(0, dtype=bool)
    top = norms.max()
    return norms > tol * top if top > 0 else np.zeros(norms.shape, dtype=bool)


def _split_bias(A: np.ndarray, bias: bool):
    """Split augmented first-layer weights (``d_a x m``) into ``W1`` and ``b1``."""
    if bias:
        return A[:-1], A[-1]
    return A, None


def _scalar_neurons(B: np.ndarray, keep: np.ndarray):
    """Balanced neurons of scalar-output blocks: ``(b_i / sqrt||b_i||, sqrt||b_i||)``."""
    Bk = B[:, keep]
    s = np.sqrt(_column_norms(Bk))
    return Bk / s, s


def _svd_neurons(B: np.ndarray, keep: np.ndarray, rel_tol: float = 0.0, floor: float = 0.0):
    """Balanced SVD factors of vector-output blocks ``B_i`` (``d_a x c``), and their block index:
    one neuron per singular value above ``rel_tol`` times the block's largest and above ``floor``
    (one batched SVD)."""
    d, c = B.shape[0], B.shape[2]
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return np.zeros((d, 0)), np.zeros((0, c)), np.zeros(0, dtype=int)
    A, sv, Bt = np.linalg.svd(np.transpose(B[:, idx, :], (1, 0, 2)), full_matrices=False)
    q, k = np.nonzero((sv > rel_tol * sv[:, :1]) & (sv > floor))
    root = np.sqrt(sv[q, k])
    return (A[q, :, k] * root[:, None]).T, Bt[q, k, :] * root[:, None], idx[q]


#: ``split`` of :func:`to_network` for vector output.
SPLITS = ("auto", "columns")


def _check_split(split) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise InvalidParameterError(f"split must be one of {SPLITS}, got {split!r}.")
    return split


def _column_neurons(B: np.ndarray, keep: np.ndarray, floor: float = 0.0):
    """One balanced neuron per column of norm above ``floor`` (nonzero for ``floor = 0``) of the
    kept blocks ``B_i`` (``d_a x c``): the neuron ``(b / sqrt||b||, sqrt||b|| e_k)`` of column
    ``b = B_i[:, k]``, and its block index."""
    d, p, c = B.shape
    norms = _column_norms(B)  # (p, c)
    i, k = np.nonzero(keep[:, None] & (norms > floor))
    root = np.sqrt(norms[i, k])
    W2 = np.zeros((i.size, c))
    W2[np.arange(i.size), k] = root
    return B[:, i, k] / root, W2, i


def to_network(model, *, tol: float = 0.0, split: str = "auto"):
    """Map a :class:`~cvxnn.solution.ConvexModel` to a :class:`ReLUNetwork` or
    :class:`GatedReLUNetwork` by the exact maps of docs/math.md, "Solution maps".

    Parameters
    ----------
    model : ConvexModel
    tol : float
        Drop blocks whose norm is ``<= tol * max block norm`` (0 keeps every nonzero block).
        Vector output: inside the kept blocks, the rank-one factors (singular values, or
        columns with ``split="columns"``) of size ``<= tol * max block norm`` are dropped too,
        the same threshold, since a factor is a neuron as a scalar-output block is. ``tol = 0``
        is the exact map; ``tol > 0`` changes the predictions by at most the dropped mass
        (interior-point solvers leave factors at ``1e-9`` of the largest block, which are not
        neurons of the solution).

    Returns
    -------
    ReLUNetwork or GatedReLUNetwork
        With as many neurons as kept blocks (scalar output) or kept singular values (vector
        output; for C-GReLU those above ``GATED_RANK_RTOL = 1e-13`` of the block's largest,
        so a block of rank ``r`` gives ``r`` neurons, not ``c`` with ``c - r`` of them at
        rounding level).

    Other Parameters
    ----------------
    split : {"auto", "columns"}
        Vector output: ``"auto"`` uses each block's balanced SVD factors (C-GReLU; C-ReLU where
        they lie in the cones, see :func:`relu_vector_factors`), the cheapest neurons in weight
        decay; ``"columns"`` gives one neuron per nonzero column of every block (each feeding
        one output), the network whose per-neuron norms the one-vs-all and feature penalties
        measure (with an l1 part, ``FeatureGroupL2(alpha > 0)`` or ``SparseGroupL2``, only
        this network attains the program's penalty).
    """
    tol = check_nonnegative_float(tol, "tol")
    split = _check_split(split)
    pats: Patterns = model.patterns
    if model.spec.gated:  # neurons keep their gates; one block per gate
        U = model.U
        # tol = 0 keeps every nonzero block: no nuclear norms (one SVD per block) needed
        if tol == 0:
            keep, floor = np.any(U != 0, axis=tuple(k for k in range(U.ndim) if k != 1)), 0.0
        else:
            norms = _column_norms(U) if U.ndim == 2 else block_norms(U)
            keep, floor = _keep(norms, tol), tol * float(norms.max(initial=0.0))
        if U.ndim == 2:
            A, w2 = _scalar_neurons(U, keep)
            G = pats.gates[:, keep]
        else:  # factors <= tol * max block norm inside kept blocks are dropped as such blocks are
            A, w2, owner = (_svd_neurons(U, keep, rel_tol=GATED_RANK_RTOL, floor=floor) if split == "auto"
                            else _column_neurons(U, keep, floor=floor))
            G = pats.gates[:, owner]
        W1, b1 = _split_bias(A, pats.bias)
        Gw, gb = _split_bias(G, pats.bias)
        return GatedReLUNetwork(W1=W1, w2=w2, b1=b1, gates=Gw, gate_bias=gb)
    V, W = model.V, model.W
    if V.ndim == 3:
        return relu_vector_to_network(model, tol=tol, split=split)
    kv = _keep(np.concatenate([_column_norms(V), _column_norms(W)]), tol)
    p = V.shape[1]
    Av, sv = _scalar_neurons(V, kv[:p])
    Aw, sw = _scalar_neurons(W, kv[p:])
    A = np.hstack([Av, Aw])
    w2 = np.concatenate([sv, -sw])
    W1, b1 = _split_bias(A, pats.bias)
    return ReLUNetwork(W1=W1, w2=w2, b1=b1)


@dataclass(frozen=True, eq=False)
class ReLUVectorFactors:
    """The rank-one factors read off a vector-output C-ReLU point.

    Attributes
    ----------
    network : ReLUNetwork
        The mapped network (``w2`` of shape ``(m, c)``).
    svd_blocks : ndarray of bool, shape (2, p)
        Whether block ``V_i`` (row 0) / ``W_i`` (row 1) was mapped by its SVD factors
        (penalty ``||.||_*``); False for the columnwise split or a zero block.
    split_blocks : ndarray of bool, shape (2, p)
        Blocks mapped by the columnwise split (penalty ``sum_k ||column k||``).
    dropped_singular_mass : float
        Sum of the singular values dropped from SVD-mapped blocks: those ``<= rank_tol * s_max``
        of their block, and those ``<= tol * max block norm`` (0 means the predictions are
        reproduced to rounding).
    """

    network: ReLUNetwork
    svd_blocks: np.ndarray
    split_blocks: np.ndarray
    dropped_singular_mass: float


def relu_vector_factors(
    model, X=None, *, tol: float = 0.0, rank_tol: float = 1e-9, cone_tol: float = 1e-9, split: str = "auto"
) -> ReLUVectorFactors:
    """Map a vector-output C-ReLU point (``V``, ``W`` of shape ``(d_a, p, c)``) to a ReLU network.

    For each nonzero block ``B`` (``V_i`` with output sign ``+1``, ``W_i`` with ``-1``):

    * SVD ``B = sum_k s_k a_k b_k^T``; if every left factor with ``s_k > rank_tol * s_1`` and
      ``s_k > tol * max block norm`` (the factors that become neurons) lies in ``+K_i`` or
      ``-K_i`` (``min Xt_i (+-a_k) >= -cone_tol * max|X_a a_k|``), the neurons are
      ``(t sqrt(s_k) a_k, +-t sqrt(s_k) b_k)`` for those factors, with ``t = +-1`` the cone's
      sign: penalty ``||B||_*`` (less the dropped factors), the best possible for this block;
    * otherwise the columnwise split: neurons ``(b_k / sqrt||b_k||, +-sqrt||b_k|| e_k)`` for the
      nonzero columns ``b_k`` (in ``K_i`` for a cone-feasible point): penalty ``sum_k ||b_k||``.

    Both reproduce the convex predictions ``sum_i D_i X (V_i - W_i)`` on the training data.
    For a solution of the one-vs-all program (``model.formulation == "one_vs_all"``) a block
    takes its SVD factors only when they drop no singular mass beyond rounding and strictly
    lower its penalty, so the network's objective equals the program's value where blocks are
    split and is below it otherwise.

    Parameters
    ----------
    model : ConvexModel
        ``activation="relu"`` with 3-D blocks.
    X : array of shape (n, d), optional
        The training data (needed to test ``+-K_i``). Solutions from :meth:`VectorConvexProgram.solve`
        carry it in ``training_X``; without it every block is split columnwise.
    tol : float
        Drop blocks with nuclear norm ``<= tol * max``, in SVD-mapped blocks the factors with
        ``s_k <= tol * max`` and in split blocks the columns with norm ``<= tol * max`` (0
        keeps every nonzero block and column: the exact map).
    rank_tol : float
        Relative threshold below which singular values count as zero in the SVD test.
    cone_tol : float
        Relative tolerance of the ``+-K_i`` membership test.
    split : {"auto", "columns"}
        ``"columns"`` splits every block columnwise (no SVD), the network whose per-neuron norms
        the one-vs-all and feature penalties measure.

    Returns
    -------
    ReLUVectorFactors
    """
    if not model.spec.constrained or model.V is None or model.V.ndim != 3:
        raise InvalidParameterError("relu_vector_factors needs a C-ReLU model with blocks of shape (d_a, p, c).")
    for name, val in (("tol", tol), ("rank_tol", rank_tol), ("cone_tol", cone_tol)):
        _check_tolerance(val, name)
    pats = model.patterns
    d_a, p, c = model.V.shape
    blocks = np.concatenate([model.V, model.W], axis=1)  # d_a x 2p x c
    sign = np.concatenate([np.ones(p), -np.ones(p)])
    owner = np.concatenate([np.arange(p), np.arange(p)])
    norms = block_norms(blocks)
    top = norms.max(initial=0.0)
    keep = norms > tol * top if top > 0 else np.zeros(2 * p, dtype=bool)
    # Batched SVD of every block: A (2p, d_a, r), s (2p, r), Bt (2p, r, c).
    A, s, Bt = np.linalg.svd(np.transpose(blocks, (1, 0, 2)), full_matrices=False)
    significant = s > rank_tol * s[:, :1]
    # the factors that become neurons: also above the block threshold (tol * max block norm)
    used = significant & (s > tol * top)
    split = _check_split(split)
    if X is None and split == "auto":
        X = getattr(model, "training_X", None)
    if X is None or split == "columns":
        # Without the training data the cones K_i cannot be tested: columnwise split only.
        logger.debug("relu_vector_factors without X: using the columnwise split for every block")
        svd_ok = np.zeros(2 * p, dtype=bool)
        orient = np.ones_like(s)
    else:
        pats.check_data(X)
        Xa = pats.design(X)
        # Signed data of each block's pattern applied to its left factors: (n, 2p, r).
        S = 2.0 * pats.mask[:, owner] - 1.0  # n x 2p
        XA = np.einsum("nd,qdr->nqr", Xa, A)
        scale = np.abs(XA).max(axis=0, initial=0.0) * cone_tol  # (2p, r)
        signed = S[:, :, None] * XA
        in_plus = np.all(signed >= -scale, axis=0)
        in_minus = np.all(signed <= scale, axis=0)
        svd_ok = keep & np.all(in_plus | in_minus | ~used, axis=1)
        orient = np.where(in_plus, 1.0, -1.0)  # (2p, r)
        if getattr(model, "formulation", None) == "one_vs_all":
            # The one-vs-all program's value is the objective of its columnwise network; use the
            # SVD factors only where they reproduce the block to rounding (no singular mass
            # dropped) and strictly lower its penalty, so the network's objective is never
            # above the program's and equals it wherever the block is split.
            dropped_b = np.where(used, 0.0, s).sum(axis=1)
            colsum = _column_norms(blocks).sum(axis=1)  # (2p,)
            svd_ok &= (dropped_b <= _ROUNDOFF * s[:, 0]) & (colsum - s.sum(axis=1) > _ROUNDOFF * colsum)

    firsts, seconds = [], []
    use = svd_ok[:, None] & used  # (2p, r)
    q, r = np.nonzero(use)
    root = np.sqrt(s[q, r])
    t = orient[q, r]
    firsts.append((A[q, :, r] * (t * root)[:, None]).T)  # d_a x m1
    seconds.append(Bt[q, r, :] * (t * root * sign[q])[:, None])  # m1 x c
    dropped = float(s[svd_ok[:, None] & ~used & (s > 0)].sum())

    split = keep & ~svd_ok
    col = _column_norms(blocks)  # (2p, c)
    q2, k2 = np.nonzero(split[:, None] & (col > tol * top))  # columns below the block threshold too
    roots = np.sqrt(col[q2, k2])
    firsts.append(blocks[:, q2, k2] / roots)
    out2 = np.zeros((q2.size, c))
    out2[np.arange(q2.size), k2] = roots * sign[q2]
    seconds.append(out2)

    W1a = np.hstack(firsts)
    w2 = np.vstack(seconds)
    if pats.bias:
        W1, b1 = W1a[:-1], W1a[-1]
    else:
        W1, b1 = W1a, None
    net = ReLUNetwork(W1=W1, w2=w2, b1=b1)
    return ReLUVectorFactors(
        network=net,
        svd_blocks=svd_ok.reshape(2, p),
        split_blocks=split.reshape(2, p),
        dropped_singular_mass=dropped,
    )


def relu_vector_to_network(model, tol: float = 0.0, X=None, **options) -> ReLUNetwork:
    """The ReLU network of a vector-output C-ReLU point (see :func:`relu_vector_factors`).

    Called by :func:`cvxnn.maps.to_network` for 3-D C-ReLU blocks; ``X`` and ``options``
    (``rank_tol``, ``cone_tol``) go to :func:`relu_vector_factors`.
    """
    return relu_vector_factors(model, X, tol=tol, **options).network
