"""Feature-sparse penalties: which inputs matter (docs/feature-sparsity.md).

The penalties of :mod:`cvxnn.penalties` are sums of norms of the weight *blocks* ``B_i`` (one
per activation pattern ``D_i``, docs/math.md, "The convex programs"). The two penalties here are
sparse-group norms of the program's **weight matrix** ``Theta``: ``U`` (``d_a x p``) for C-GReLU
and ``[V, W]`` (``d_a x 2p``, the ``v_i`` columns then the ``w_i`` columns) for C-ReLU. The
entries of ``Theta`` are partitioned into groups along one axis, and

    R(Theta) = sum_g ||Theta_g||_2 + alpha * ||Theta||_1          (alpha >= 0)

* :class:`FeatureGroupL2` -- groups are the **rows** of ``Theta``: one group per input feature
  (the bias row too, when the patterns have a bias), across all neurons. ``alpha = 0`` is the
  feature group lasso of Convex LassoNet and of scnn's ``FeatureGL1``; a zero row removes
  feature ``j`` from the network. The penalty couples all blocks: it is *not* a sum over
  patterns, so it has no ``block_norms``.
* :class:`SparseGroupL2` -- groups are the **columns** (the neuron blocks ``theta_k``):
  ``sum_k (||theta_k||_2 + alpha ||theta_k||_1)``, the sparse-group lasso. ``alpha = 0`` is
  :class:`~cvxnn.penalties.GroupL2`. It is still a sum over blocks.

Vector output (``c`` outputs): ``Theta`` is the ``d_a x (p c)`` matrix of :mod:`cvxnn.vector`
(``(d_a, p, c)`` blocks are accepted and read that way), so a feature group spans all neurons and
all outputs, and a sparse group is one output of one block (the one-vs-all program plus l1).

How the :class:`~cvxnn.penalties.Penalty` interface generalises: a penalty is a sum over
*groups* of one norm. The block penalties of :mod:`cvxnn.penalties` are the case "group = block";
here a group is a row or a column of ``Theta``. :meth:`GroupSparsePenalty.group_norms` gives the
terms of the sum, :meth:`~GroupSparsePenalty.dual_norm` the dual norms of the groups (the dual
norm of the whole penalty is their maximum, so every caller that takes ``dual_norm(G).max()``,
such as ``lam_max`` and the gap certificates, works unchanged), :meth:`~GroupSparsePenalty.prox`
is the exact proximal operator, :meth:`~cvxnn.penalties.Penalty.project_dual_ball` follows from
Moreau's identity, and :meth:`~GroupSparsePenalty.cvxpy` is the CVXPY form of the program
variable. :attr:`GroupSparsePenalty.block_separable` says whether :meth:`block_norms` exists.

Formulas (for one group ``b``, ``t >= 0``):

* prox: ``prox_{t R}(b) = max(0, 1 - t / ||s||_2) s`` with ``s = sign(b) max(|b| - t alpha, 0)``:
  the elementwise soft-threshold followed by the group soft-threshold (exact for the sum of the
  two norms; Friedman, Hastie & Tibshirani 2010, Simon et al. 2013);
* dual norm: ``||g||^D = min { s >= 0 : ||S_{s alpha}(g)||_2 <= s }`` with ``S`` the soft-threshold
  (the dual unit ball of ``||.||_2 + alpha ||.||_1`` is the Minkowski sum of the 2-norm ball and
  ``alpha`` times the max-norm ball). ``s -> ||S_{s alpha}(g)||_2 - s`` is strictly decreasing; on
  the interval where exactly the ``k`` largest ``|g_j|`` exceed ``s alpha`` the equation is the
  quadratic ``(k alpha^2 - 1) s^2 - 2 alpha S1_k s + S2_k = 0`` (``S1_k``, ``S2_k`` the sums of
  the ``k`` largest ``|g_j|`` and of their squares), whose root on that interval is
  ``s = S2_k / (alpha S1_k + sqrt(alpha^2 S1_k^2 - (k alpha^2 - 1) S2_k))``. One sort per group.

Each penalty also knows its **network counterpart** (:meth:`GroupSparsePenalty.network_penalty`),
the penalty of an ordinary two-layer network whose optimum the convex program reaches; see
docs/feature-sparsity.md, "Exactness", for which combination is exact and which is a surrogate.
"""

from __future__ import annotations

from typing import ClassVar

import cvxpy as cp
import numpy as np

from .errors import InvalidParameterError, NonFiniteError, ShapeError
from .penalties import CvxpyTerm, Penalty

__all__ = ["FeatureGroupL2", "GroupSparsePenalty", "SparseGroupL2", "sparse_group_dual_norms"]


def _check_t(t) -> float:
    t = float(t)
    if not np.isfinite(t) or t < 0:
        raise InvalidParameterError(f"the prox threshold t must be a finite number >= 0, got {t!r}.")
    return t


def _as_matrix(B, name: str = "weights") -> np.ndarray:
    """The weight matrix ``Theta`` as a 2-D float array: ``(d_a, m)`` as given, and vector-output
    blocks ``(d_a, m, c)`` as the ``d_a x (m c)`` matrix whose column ``i c + k`` is output ``k`` of
    block ``i`` (the layout of :mod:`cvxnn.vector`)."""
    B = np.asarray(B, dtype=np.float64)
    if B.ndim == 3:
        B = B.reshape(B.shape[0], B.shape[1] * B.shape[2])
    if B.ndim != 2:
        raise ShapeError(
            f"{name} must be the weight matrix (d_a, m) or vector-output blocks (d_a, m, c), got shape {B.shape}."
        )
    return B


def _check_alpha(alpha) -> float:
    """``alpha`` as a float: a finite real number ``>= 0``, else an InvalidParameterError."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise InvalidParameterError(f"alpha must be a real number >= 0, got {alpha!r}.")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise InvalidParameterError(f"alpha must be a finite number >= 0, got {alpha!r}.")
    return alpha


def sparse_group_dual_norms(G: np.ndarray, alpha: float) -> np.ndarray:
    """Dual norms of ``||.||_2 + alpha ||.||_1`` for every column of ``G``.

    ``||g||^D = sup { <g, b> : ||b||_2 + alpha ||b||_1 <= 1 } = min { s : ||S_{s alpha}(g)||_2 <= s }``
    (see the module docstring), computed by one sort per column and the root of the quadratic on
    the interval that contains it.

    Parameters
    ----------
    G : ndarray of shape (L, q)
        ``q`` groups of ``L`` entries, one per column.
    alpha : float
        Weight of the l1 term, ``>= 0``.

    Returns
    -------
    ndarray of shape (q,)

    Raises
    ------
    InvalidParameterError
        ``alpha`` negative, infinite or not a number.
    ShapeError, NonFiniteError
        ``G`` not 2-D, or with NaN or infinite entries.
    """
    alpha = _check_alpha(alpha)
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2:
        raise ShapeError(f"groups must be the columns of a 2-D array, got shape {G.shape}.")
    if not np.isfinite(G).all():
        raise NonFiniteError("G contains NaN or infinite entries.")
    L, q = G.shape
    if alpha == 0.0 or L == 0:
        return np.sqrt(np.einsum("lq,lq->q", G, G))
    a = -np.sort(-np.abs(G), axis=0)  # |g| sorted in decreasing order, per column
    S1 = np.cumsum(a, axis=0)
    S2 = np.cumsum(a * a, axis=0)
    k = np.arange(1, L + 1, dtype=np.float64)[:, None]
    # psi_k: ||S_{a_k}(g)||^2 - (a_k / alpha)^2 at the breakpoint s = a_k / alpha (entries j < k
    # are active there); non-decreasing in k. The root lies where exactly k* entries are active.
    S1_prev = np.vstack([np.zeros((1, q)), S1[:-1]])
    S2_prev = np.vstack([np.zeros((1, q)), S2[:-1]])
    psi = S2_prev - 2.0 * a * S1_prev + (k - 1.0) * a * a - (a / alpha) ** 2
    kstar = np.maximum(np.count_nonzero(psi <= 0.0, axis=0), 1)  # >= 1: psi_1 = -(a_1/alpha)^2 <= 0
    idx = (kstar - 1)[None, :]
    s1 = np.take_along_axis(S1, idx, axis=0)[0]
    s2 = np.take_along_axis(S2, idx, axis=0)[0]
    A = kstar * alpha * alpha - 1.0
    B = alpha * s1
    disc = np.sqrt(np.maximum(B * B - A * s2, 0.0))
    denom = B + disc
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(denom > 0.0, s2 / np.where(denom > 0.0, denom, 1.0), 0.0)
    # clip to the interval [a_{k*+1}, a_{k*}] / alpha against rounding
    hi = np.take_along_axis(a, idx, axis=0)[0] / alpha
    a_next = np.vstack([a[1:], np.zeros((1, q))])
    lo = np.take_along_axis(a_next, idx, axis=0)[0] / alpha
    return np.clip(s, lo, hi)


class GroupSparsePenalty(Penalty):
    """``sum_g ||Theta_g||_2 + alpha ||Theta||_1`` over the groups along :attr:`group_axis`.

    Subclasses fix :attr:`group_axis` (0: rows = features, 1: columns = neuron blocks). The
    argument of every method is the weight matrix ``Theta`` of the program (``U``, or ``[V, W]``
    for C-ReLU), ``d_a x m``, or vector-output blocks ``(d_a, m, c)``, which are read as the
    ``d_a x (m c)`` matrix of :mod:`cvxnn.vector` (a row spans all blocks *and* all outputs; a
    column is one output of one block).

    Parameters
    ----------
    alpha : float
        Weight of the l1 term relative to the group term (``>= 0``): the program carries
        ``lam * sum_g ||Theta_g||_2 + (lam alpha) ||Theta||_1``.
    """

    name: ClassVar[str] = "group_sparse"
    #: 0: a group is a row of ``Theta`` (a feature); 1: a column (a neuron block).
    group_axis: ClassVar[int] = 1
    #: Whether the penalty is a sum over the blocks ``theta_k`` (then :meth:`block_norms` exists).
    block_separable: ClassVar[bool] = True
    #: Default ``alpha``.
    default_alpha: ClassVar[float] = 0.0

    def __init__(self, alpha: float | None = None) -> None:
        self.alpha = _check_alpha(self.default_alpha if alpha is None else alpha)

    # ------------------------------------------------------------------ groups
    def _groups(self, B) -> np.ndarray:
        """``Theta`` with one group per column."""
        M = _as_matrix(B)
        return M.T if self.group_axis == 0 else M

    def group_norms(self, B) -> np.ndarray:
        """The terms ``||Theta_g||_2 + alpha ||Theta_g||_1`` of every group (rows or columns)."""
        Gc = self._groups(B)
        out = np.sqrt(np.einsum("lq,lq->q", Gc, Gc))
        if self.alpha:
            out = out + self.alpha * np.abs(Gc).sum(axis=0)
        return out

    def value(self, B) -> float:
        """``R(Theta) = sum_g ||Theta_g||_2 + alpha ||Theta||_1``."""
        return float(self.group_norms(B).sum())

    def block_norms(self, B) -> np.ndarray:
        """Per-block terms (only for block-separable penalties, see :attr:`block_separable`); for
        vector-output blocks ``(d_a, p, c)`` the sum over the ``c`` columns of each block."""
        if not self.block_separable:
            raise InvalidParameterError(
                f"{type(self).__name__} couples all blocks (its groups are the rows of the weight "
                "matrix); use value() or group_norms() instead of block_norms()."
            )
        norms = self.group_norms(B)
        B = np.asarray(B)
        return norms.reshape(B.shape[1], B.shape[2]).sum(axis=1) if B.ndim == 3 else norms

    def dual_norm(self, G) -> np.ndarray:
        """Dual norms of the groups of ``G``; the penalty's dual norm is their maximum,
        ``R*(G) = max_g ||G_g||^D`` (see :func:`sparse_group_dual_norms`)."""
        return sparse_group_dual_norms(self._groups(G), self.alpha)

    def dual_norm_value(self, G) -> float:
        """``R*(G) = sup { <G, Theta> : R(Theta) <= 1 }``."""
        return float(self.dual_norm(G).max(initial=0.0))

    def prox(self, B, t: float) -> np.ndarray:
        """``argmin_X t R(X) + 1/2 ||X - Theta||_F^2``: elementwise soft-threshold at ``t alpha``,
        then group soft-threshold at ``t`` (exact for the sum of the two norms)."""
        t = _check_t(t)
        shape = np.shape(B)
        M = _as_matrix(B)
        S = np.sign(M) * np.maximum(np.abs(M) - t * self.alpha, 0.0) if self.alpha else M.copy()
        norms = np.sqrt(np.einsum("dm,dm->" + ("d" if self.group_axis == 0 else "m"), S, S))
        factor = np.maximum(norms - t, 0.0) / np.maximum(norms, np.finfo(float).tiny)
        S *= factor[:, None] if self.group_axis == 0 else factor[None, :]
        return S.reshape(shape)

    # ------------------------------------------------------------------- CVXPY
    def cvxpy(self, B: cp.Expression, n_outputs: int = 1, *, name: str = "B") -> CvxpyTerm:
        """``R(Theta)`` of the program variable ``Theta`` (``d_a x m``; for ``c`` outputs the
        ``d_a x (p c)`` variable of :mod:`cvxnn.vector`, whose rows and columns are the groups as
        they are) as a :class:`CvxpyTerm`: one vectorised ``norm(., 2, axis)`` plus
        ``alpha * sum(abs(.))``."""
        if B.shape[1] % max(int(n_outputs), 1):
            raise ShapeError(f"the weight variable has {B.shape[1]} columns, not a multiple of n_outputs={n_outputs}.")
        expr = cp.sum(cp.norm(B, 2, axis=1 - self.group_axis))
        if self.alpha:
            expr = expr + self.alpha * cp.sum(cp.abs(B))
        return CvxpyTerm(expr)

    def cvxpy_dual_norm(self, G: cp.Expression) -> CvxpyTerm:
        """An epigraph of the dual norm ``R*(G)`` (for programs that minimise it, such as the
        C-ReLU ``lam_max``): ``min t`` subject to ``G = A + E``, ``||A_g||_2 <= t`` for every group,
        ``|E| <= alpha t``. ``expression`` is ``t``; ``auxiliary`` is ``(t, A)``."""
        t = cp.Variable(nonneg=True, name="dual_norm")
        if not self.alpha:
            return CvxpyTerm(t, [cp.norm(G, 2, axis=1 - self.group_axis) <= t], (t,))
        A = cp.Variable(G.shape, name="dual_split")
        cons = [cp.norm(A, 2, axis=1 - self.group_axis) <= t, cp.abs(G - A) <= self.alpha * t]
        return CvxpyTerm(t, cons, (t, A))

    # ----------------------------------------------------------------- network
    def network_penalty(self, network) -> float:
        """The penalty (without ``lam``) of an ordinary network that the convex program
        corresponds to (see the subclasses and docs/feature-sparsity.md, "Exactness")."""
        raise NotImplementedError(  # pragma: no cover - abstract
            f"{type(self).__name__} must define network_penalty(network)")

    @staticmethod
    def _first_layer(network) -> tuple[np.ndarray, np.ndarray]:
        """``(W1a, w2)``: first-layer weights with the bias as a last row (``d_a x m``), and the
        output layer as ``m x c`` (``c = 1`` for scalar output)."""
        w2 = np.asarray(network.w2, dtype=np.float64)
        w2 = w2[:, None] if w2.ndim == 1 else w2
        W1 = np.asarray(network.W1, dtype=np.float64)
        if network.b1 is not None:
            W1 = np.vstack([W1, np.asarray(network.b1, dtype=np.float64)[None, :]])
        return W1, w2

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha!r})"


class FeatureGroupL2(GroupSparsePenalty):
    """Feature group lasso: ``sum_j ||Theta[j, :]||_2 + alpha ||Theta||_1``.

    One group per row of the weight matrix ``Theta`` (``U``, or ``[V, W]`` for C-ReLU), i.e. per
    input feature across all neurons, as in Convex LassoNet; the analogue of scnn's
    ``FeatureGL1`` (``alpha = 0``, the default). A zero row removes the feature from every
    neuron. The penalty couples all blocks, so it has no :meth:`block_norms`.

    **Exactness.** Not a weight-decay equivalence: the convex program is exact for networks with
    one neuron per pattern (and sign) penalised by the same norm of their *path weights*
    ``W1[j, k] w2[k]`` (:meth:`network_penalty`); splitting neurons lowers that penalty, so over
    networks of unbounded width it is a convex surrogate (docs/feature-sparsity.md, "Exactness").

    **Vector output** (``c`` outputs): a group is a row of the ``d_a x (p c)`` weight matrix, i.e.
    feature ``j`` across all neurons *and* all outputs; the path weights are
    ``W1[j, k] w2[k, o]`` and the same statement holds (the columnwise and the SVD maps both
    keep the row norms).
    """

    name = "feature_group_l2"
    group_axis = 0
    block_separable = False
    default_alpha = 0.0

    def network_penalty(self, network) -> float:
        """``sum_j ||(W1a[j, k] w2[k])_k||_2 + alpha sum_{j,k} |W1a[j, k] w2[k]|``: the penalty
        of the path weights (the products, invariant under neuron rescaling); for the network
        :meth:`~cvxnn.solution.ConvexModel.to_network` returns it equals ``R(Theta)`` (vector
        output with ``alpha > 0``: ``to_network(split="columns")``; the SVD neurons keep the row
        norms but not the l1 norm of the path weights, which they raise)."""
        W1, w2 = self._first_layer(network)
        return self.value(W1[:, :, None] * w2[None, :, :])


class SparseGroupL2(GroupSparsePenalty):
    """Sparse-group lasso over the neuron blocks: ``sum_k (||theta_k||_2 + alpha ||theta_k||_1)``.

    ``lam * SparseGroupL2(alpha)`` is the group penalty ``lam sum_k ||theta_k||_2`` plus the l1
    penalty ``lam_1 ||Theta||_1`` with ``lam_1 = lam alpha``; ``alpha = 0`` is
    :class:`~cvxnn.penalties.GroupL2`. Zero entries remove a feature from one neuron; a feature
    leaves the network when its whole row is zero. scnn's ``L1`` regulariser is the l1 part.

    **Exactness.** Exact (as weight decay is): the convex optimum equals the optimum of networks
    trained with weight decay plus an l1 penalty on the path weights,
    ``lam/2 sum_k (||W1_k||^2 + w2_k^2) + lam alpha sum_k |w2_k| ||W1_k||_1``
    (:meth:`network_penalty`), and the maps of docs/math.md, "Solution maps" reach it. An l1
    penalty on ``W1`` alone is not exact (docs/feature-sparsity.md, "Exactness").

    **Vector output** (``c`` outputs): the groups are the columns of the ``d_a x (p c)`` weight
    matrix, one output of one block (the one-vs-all program plus l1). Exact for networks
    penalised by ``lam/2 sum_k (||W1_k||^2 + ||w2_k||_1^2) + lam alpha sum_k ||w2_k||_1 ||W1_k||_1``
    (the output layer measured in l1), reached by the columnwise split; with the ordinary weight
    decay ``||w2_k||_2^2`` it is a surrogate (the exact program then has nuclear norms).

    Parameters
    ----------
    alpha : float
        ``lam_1 / lam`` (default 1.0).
    """

    name = "sparse_group_l2"
    group_axis = 1
    block_separable = True
    default_alpha = 1.0

    def network_penalty(self, network) -> float:
        """``1/2 sum_k (||W1a_k||^2 + ||w2_k||_1^2) + alpha sum_k ||w2_k||_1 ||W1a_k||_1`` (weight
        decay plus the l1 norm of the path weights; ``W1a_k`` includes the bias; for scalar output
        ``||w2_k||_1 = |w2_k|``)."""
        W1, w2 = self._first_layer(network)
        out1 = np.abs(w2).sum(axis=1)  # ||w2_k||_1 (= |w2_k| for scalar output)
        decay = 0.5 * float(np.sum(W1 * W1) + np.sum(out1 * out1))
        return decay + self.alpha * float(np.abs(W1).sum(axis=0) @ out1)
