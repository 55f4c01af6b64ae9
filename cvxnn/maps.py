"""Exact maps between convex solutions and ordinary two-layer networks (MATH.md, "Solution maps").

* C-ReLU -> NC-ReLU: ``v_i != 0`` gives the neuron ``(v_i / sqrt||v_i||, +sqrt||v_i||)``,
  ``w_i != 0`` gives ``(w_i / sqrt||w_i||, -sqrt||w_i||)``. For every cone-feasible point
  the network's predictions and objective equal the convex ones.
* C-GReLU -> NC-GReLU: ``(u_i / sqrt||u_i||, sqrt||u_i||)`` with gate ``g_i``; vector output:
  the balanced SVD factors ``(sqrt(s_k) a_k, sqrt(s_k) b_k)`` of each block ``U_i``.
* NC-ReLU -> C-ReLU (:func:`relu_network_to_convex`): neuron ``j`` goes to the pattern
  ``D = 1[X W1_j >= 0]``; ``v += W1_j |w2_j|`` if ``w2_j >= 0`` else ``w += W1_j |w2_j|``.
  Predictions are equal; the convex objective is ``<=`` the network's (equal when the network
  is balanced and no two neurons share a pattern and sign).
"""

from __future__ import annotations

import numpy as np

from ._validation import check_nonnegative_float, check_X
from .errors import ShapeError
from .networks import GatedReLUNetwork, ReLUNetwork
from .operators import block_norms
from .patterns import Patterns, add_bias_column, group_columns

__all__ = ["to_network", "relu_network_to_convex", "gated_network_to_convex"]


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
    s = np.sqrt(np.linalg.norm(Bk, axis=0))
    return Bk / s, s


def _svd_neurons(B: np.ndarray, keep: np.ndarray, rel_tol: float = 0.0):
    """Balanced SVD factors of vector-output blocks ``B_i`` (``d_a x c``), and their block index."""
    firsts, seconds, owner = [], [], []
    for i in np.flatnonzero(keep):
        A, sv, Bt = np.linalg.svd(B[:, i, :], full_matrices=False)
        r = sv > max(rel_tol * sv[0], 0.0) if sv.size else np.zeros(0, bool)
        for k in np.flatnonzero(r):
            root = np.sqrt(sv[k])
            firsts.append(A[:, k] * root)
            seconds.append(Bt[k] * root)
            owner.append(i)
    d, c = B.shape[0], B.shape[2]
    if not firsts:
        return np.zeros((d, 0)), np.zeros((0, c)), np.zeros(0, dtype=int)
    return np.array(firsts).T, np.array(seconds), np.array(owner)


def to_network(model, *, tol: float = 0.0):
    """Map a :class:`~cvxnn.solution.ConvexModel` to a :class:`ReLUNetwork` or
    :class:`GatedReLUNetwork` by the exact maps of MATH.md.

    Parameters
    ----------
    model : ConvexModel
    tol : float
        Drop blocks whose norm is ``<= tol * max block norm`` (0 keeps every nonzero block).

    Returns
    -------
    ReLUNetwork or GatedReLUNetwork
        With as many neurons as nonzero blocks (scalar output) or nonzero singular values
        (vector output).
    """
    tol = check_nonnegative_float(tol, "tol")
    pats: Patterns = model.patterns
    if model.activation == "gated_relu":
        U = model.U
        keep = _keep(block_norms(U), tol)
        if U.ndim == 2:
            A, w2 = _scalar_neurons(U, keep)
            G = pats.gates[:, keep]
        else:
            A, w2, owner = _svd_neurons(U, keep)
            G = pats.gates[:, owner]
        W1, b1 = _split_bias(A, pats.bias)
        Gw, gb = _split_bias(G, pats.bias)
        return GatedReLUNetwork(W1=W1, w2=w2, b1=b1, gates=Gw, gate_bias=gb)
    V, W = model.V, model.W
    if V.ndim == 3:
        from .vector import relu_vector_to_network  # vector-output ReLU map lives with its program

        return relu_vector_to_network(model, tol=tol)
    kv = _keep(np.concatenate([block_norms(V), block_norms(W)]), tol)
    p = V.shape[1]
    Av, sv = _scalar_neurons(V, kv[:p])
    Aw, sw = _scalar_neurons(W, kv[p:])
    A = np.hstack([Av, Aw])
    w2 = np.concatenate([sv, -sw])
    W1, b1 = _split_bias(A, pats.bias)
    return ReLUNetwork(W1=W1, w2=w2, b1=b1)


def relu_network_to_convex(net: ReLUNetwork, X):
    """Map a ReLU network to a C-ReLU point with the same predictions on ``X``.

    Each neuron ``j`` is assigned the pattern ``D = 1[X W1_j + b1_j >= 0]``; neurons with the
    same pattern and output sign are summed (``v_i += W1_j |w2_j|`` or ``w_i += ...``).
    Scalar output only.

    Returns
    -------
    ConvexModel
        ``activation="relu"`` on patterns whose gates are the (first) neurons' weights.
        Cone-feasible by construction.
    """
    from .solution import ConvexModel

    if net.w2.ndim != 1:
        raise ShapeError("relu_network_to_convex supports scalar-output networks (w2 of shape (m,)).")
    X = check_X(X)
    bias = net.b1 is not None
    A = np.vstack([net.W1, net.b1[None, :]]) if bias else net.W1  # d_a x m
    Xa = add_bias_column(X) if bias else X
    if Xa.shape[1] != A.shape[0]:
        raise ShapeError(f"X has {X.shape[1]} features; the network expects {net.n_features}.")
    # Group neurons by pattern (first occurrence keeps its weights as the gate).
    first, group = group_columns(Xa @ A >= 0)
    pats = Patterns.from_gates(X, A[:, first], bias=bias)
    gates = pats.gates
    p = gates.shape[1]
    scaled = A * np.abs(net.w2)
    V = np.zeros((A.shape[0], p))
    W = np.zeros((A.shape[0], p))
    pos = net.w2 >= 0
    np.add.at(V.T, group[pos], scaled[:, pos].T)
    np.add.at(W.T, group[~pos], scaled[:, ~pos].T)
    return ConvexModel(activation="relu", patterns=pats, V=V, W=W)


def gated_network_to_convex(net: GatedReLUNetwork, X):
    """Map a gated ReLU network to a C-GReLU point with the same predictions on ``X``.

    Neurons sharing a gate pattern are summed: ``U_i = sum_j W1_j w2_j^T`` (scalar: ``W1_j w2_j``).
    """
    from .solution import ConvexModel

    X = check_X(X)
    bias = net.b1 is not None or net.gate_bias is not None
    m = net.n_neurons
    b1 = net.b1 if net.b1 is not None else np.zeros(m)
    gb = net.gate_bias if net.gate_bias is not None else np.zeros(m)
    A = np.vstack([net.W1, b1[None, :]]) if bias else net.W1
    G = np.vstack([net.gates, gb[None, :]]) if bias else net.gates
    pats_all = Patterns.from_gates(X, G, bias=bias)
    first, group = group_columns(pats_all.mask)
    pats = pats_all.subset(first)
    p = pats.n_patterns
    if net.w2.ndim == 1:
        U = np.zeros((A.shape[0], p))
        np.add.at(U.T, group, (A * net.w2).T)
    else:
        c = net.w2.shape[1]
        U = np.zeros((A.shape[0], p, c))
        contrib = A[:, :, None] * net.w2[None, :, :]  # d_a x m x c
        np.add.at(np.moveaxis(U, 1, 0), group, np.moveaxis(contrib, 1, 0))
    return ConvexModel(activation="gated_relu", patterns=pats, U=U)
