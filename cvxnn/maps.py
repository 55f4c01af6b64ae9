"""Exact maps between convex solutions and ordinary two-layer networks (``docs/math.md``, "Solution maps").

* C-ReLU -> NC-ReLU: ``v_i != 0`` gives the neuron ``(v_i / sqrt||v_i||, +sqrt||v_i||)``,
  ``w_i != 0`` gives ``(w_i / sqrt||w_i||, -sqrt||w_i||)``. For every cone-feasible point
  the network's predictions and objective equal the convex ones.
* C-GReLU -> NC-GReLU: ``(u_i / sqrt||u_i||, sqrt||u_i||)`` with gate ``g_i``; vector output:
  the balanced SVD factors ``(sqrt(s_k) a_k, sqrt(s_k) b_k)`` of each block ``U_i``.
* NC-ReLU -> C-ReLU (:func:`relu_network_to_convex`): neuron ``j`` goes to the pattern
  ``D = 1[X W1_j >= 0]``; ``v += W1_j |w2_j|`` if ``w2_j >= 0`` else ``w += W1_j |w2_j|``
  (vector output: output by output, ``V[:, i, k]`` or ``W[:, i, k]`` by the sign of ``w2_jk``).
  Predictions are equal. Scalar output: the convex objective is ``<=`` the network's (equal
  when the network is balanced and no two neurons share a pattern and sign). Vector output:
  the nuclear-norm penalty is ``<= sqrt(2)`` times the network's, and ``<=`` it when no
  neuron's output weights mix signs.
"""

from __future__ import annotations

import numpy as np

from ._readout import to_network as _to_network
from ._validation import check_X
from .errors import InvalidParameterError, ShapeError
from .networks import GatedReLUNetwork, ReLUNetwork
from .patterns import Patterns, add_bias_column, group_columns
from .solution import ConvexModel

__all__ = ["to_network", "relu_network_to_convex", "gated_network_to_convex"]


def _require(obj, cls: type, name: str, hint: str = "") -> None:
    """Refuse an object of the wrong type with a message naming what was given."""
    if type(obj) is not cls and not isinstance(obj, cls):
        given = "None" if obj is None else f"a {type(obj).__module__}.{type(obj).__qualname__}"
        raise InvalidParameterError(f"{name} must be a cvxnn {cls.__name__}, got {given}.{hint}")


def to_network(model, *, tol: float = 0.0, split: str = "auto"):
    """Map a :class:`~cvxnn.solution.ConvexModel` (or solution) to a :class:`ReLUNetwork`
    (``activation="relu"``) or :class:`GatedReLUNetwork` by the exact maps above.

    Parameters
    ----------
    model : ConvexModel
    tol : float
        Drop blocks whose norm is ``<= tol * max block norm``; vector output: inside the kept
        blocks also the rank-one factors (singular values, or columns with ``split="columns"``)
        of size ``<= tol * max block norm``. ``tol = 0`` (the default) is the exact map: every
        nonzero block and factor becomes neurons, so predictions and objective are reproduced
        to rounding. ``tol > 0`` is a threshold for solver noise (interior-point solutions
        carry blocks and factors at ``1e-9`` of the largest); it changes the predictions by at
        most the dropped blocks' and factors' contributions.
    split : {"auto", "columns"}
        Vector output: the blocks' balanced SVD factors (``"auto"``; for C-ReLU where they lie
        in the cones) or one neuron per nonzero block column (``"columns"``), the network whose
        per-neuron norms the one-vs-all and feature penalties measure.

    Returns
    -------
    ReLUNetwork or GatedReLUNetwork

    Raises
    ------
    InvalidParameterError
        ``model`` is not a ConvexModel (e.g. None or a network), or ``tol`` is not a
        non-negative number.
    """
    _require(model, ConvexModel, "model", " Networks are already networks; map a ConvexModel or "
             "a ConvexSolution (program.solve()).")
    return _to_network(model, tol=tol, split=split)


def _zero_width_model(X, activation: str, bias: bool, c: int | None) -> ConvexModel:
    """The convex point of a network without neurons: zero blocks on one pattern (the all-ones
    pattern of the zero gate), so predictions (0) and objective (the loss of 0) are the network's."""
    d_a = X.shape[1] + int(bias)
    pats = Patterns.from_gates(X, np.zeros((d_a, 1)), bias=bias)
    shape = (d_a, 1) if c is None else (d_a, 1, c)
    if activation == "relu":
        return ConvexModel(activation="relu", patterns=pats, V=np.zeros(shape), W=np.zeros(shape))
    return ConvexModel(activation="gated_relu", patterns=pats, U=np.zeros(shape))


def relu_network_to_convex(net: ReLUNetwork, X):
    """Map a ReLU network to a C-ReLU point with the same predictions on ``X``.

    Neuron ``j`` (first-layer weights ``a_j = (W1_j, b1_j)``, with the bias row when the network
    has ``b1``) is assigned the pattern ``D_i = 1[X_a a_j >= 0]``, and ``a_j`` lies in ``K_i``.
    Scalar output: ``v_i += a_j |w2_j|`` if ``w2_j >= 0``, else ``w_i += a_j |w2_j|``. Vector
    output (``w2`` of shape ``(m, c)``), output by output: ``V[:, i, k] += a_j |w2_jk|`` if
    ``w2_jk >= 0``, else ``W[:, i, k] += a_j |w2_jk|``, i.e. ``V_i = sum_j a_j (w2_j)_+^T`` and
    ``W_i = sum_j a_j (w2_j)_-^T`` over the neurons of pattern ``i``. Every column is a
    non-negative combination of points of ``K_i``, so the point is cone-feasible, and
    ``D_i X_a (V_i - W_i) = sum_j (X_a a_j)_+ w2_j^T``: the predictions on ``X`` are the
    network's (to rounding).

    Penalty (``ConvexModel.penalty()``, nuclear norms for vector output; ``net.penalty()`` is
    ``1/2 sum_j (||a_j||^2 + ||w2_j||^2) >= sum_j ||a_j|| ||w2_j||``, equal when balanced):

    * scalar output: ``sum_i ||v_i|| + ||w_i|| <= sum_j ||a_j|| |w2_j| <= net.penalty()``, so the
      convex objective is ``<=`` the network's (equal for a balanced network in which no two
      neurons share a pattern and an output sign);
    * vector output: ``sum_i ||V_i||_* + ||W_i||_* <= sum_j ||a_j|| (||(w2_j)_+|| + ||(w2_j)_-||)
      <= sqrt(2) sum_j ||a_j|| ||w2_j|| <= sqrt(2) net.penalty()``, hence
      ``model.objective(X, Y, lam) <= net.objective(X, Y, lam) + (sqrt(2) - 1) lam net.penalty()``.
      The factor ``sqrt(2)`` is attained: a single balanced neuron with ``w2_j = (1, -1)`` costs
      ``sqrt(2) ||a_j||`` in the network and ``2 ||a_j||`` here, because the cone constraints
      force its positive and negative outputs into separate blocks. When no neuron's output
      weights mix signs (``w2_j >= 0`` or ``w2_j <= 0`` entrywise, e.g. ``c = 1``) the middle
      term is ``sum_j ||a_j|| ||w2_j||`` and the convex objective is ``<=`` the network's, as
      for scalar output. With column norms (``formulation="one_vs_all"``) the penalty is
      ``<= sum_j ||a_j|| ||w2_j||_1 <= sqrt(c) sum_j ||a_j|| ||w2_j||`` instead.

    Parameters
    ----------
    net : ReLUNetwork
        ``w2`` of shape ``(m,)`` or ``(m, c)``; any width ``m >= 0``, with or without ``b1``.
    X : array of shape (n, d)
        The data the patterns are taken on (the training data of the convex program).

    Returns
    -------
    ConvexModel
        ``activation="relu"`` on patterns whose gates are the (first) neurons' weights, one per
        distinct neuron pattern; blocks ``V``, ``W`` of shape ``(d_a, p)`` for scalar output and
        ``(d_a, p, c)`` for ``w2`` of shape ``(m, c)`` (``c = 1`` included); ``formulation`` None
        (nuclear norms). Cone-feasible by construction. A network without neurons maps to zero
        blocks on one (all-ones) pattern.

    Raises
    ------
    InvalidParameterError
        ``net`` is not a :class:`ReLUNetwork` (a :class:`GatedReLUNetwork` computes another
        function: use :func:`gated_network_to_convex`).
    ShapeError
        ``X`` with the wrong number of features.
    NonFiniteError
        ``X`` contains NaN or infinity.
    """
    if isinstance(net, GatedReLUNetwork):
        raise InvalidParameterError(
            "relu_network_to_convex got a GatedReLUNetwork, whose neurons are gated by fixed "
            "gates (not by their own weights); use gated_network_to_convex."
        )
    _require(net, ReLUNetwork, "net")
    X = check_X(X)
    bias = net.b1 is not None
    A = np.vstack([net.W1, net.b1[None, :]]) if bias else net.W1  # d_a x m
    Xa = add_bias_column(X) if bias else X
    if Xa.shape[1] != A.shape[0]:
        raise ShapeError(f"X has {X.shape[1]} features; the network expects {net.n_features}.")
    scalar = net.w2.ndim == 1
    if net.n_neurons == 0:  # e.g. the network of a solution at lam >= lam_max
        return _zero_width_model(X, "relu", bias, None if scalar else net.w2.shape[1])
    # Group neurons by pattern (first occurrence keeps its weights as the gate), on the mask the
    # model keeps, so that every neuron's pattern is exactly the mask of its block.
    pats_all = Patterns.from_gates(X, A, bias=bias)
    first, group = group_columns(pats_all.mask)
    pats = pats_all.subset(first)
    p = pats.n_patterns
    w2 = net.w2[:, None] if scalar else net.w2  # m x c
    c = w2.shape[1]
    V = np.zeros((A.shape[0], p, c))
    W = np.zeros((A.shape[0], p, c))
    # a_j |w2_jk| into V[:, i, k] (w2_jk >= 0) or W[:, i, k] (w2_jk < 0), summed over the neurons of pattern i
    np.add.at(np.moveaxis(V, 1, 0), group, np.moveaxis(A[:, :, None] * np.maximum(w2, 0.0)[None], 1, 0))
    np.add.at(np.moveaxis(W, 1, 0), group, np.moveaxis(A[:, :, None] * np.maximum(-w2, 0.0)[None], 1, 0))
    if scalar:
        V, W = V[:, :, 0], W[:, :, 0]
    return ConvexModel(activation="relu", patterns=pats, V=V, W=W)


def gated_network_to_convex(net: GatedReLUNetwork, X):
    """Map a gated ReLU network to a C-GReLU point with the same predictions on ``X``.

    Neurons sharing a gate pattern are summed: ``U_i = sum_j W1_j w2_j^T`` (scalar: ``W1_j w2_j``).

    Raises
    ------
    InvalidParameterError
        ``net`` is not a :class:`GatedReLUNetwork` (a :class:`ReLUNetwork` has no gates: use
        :func:`relu_network_to_convex`).
    ShapeError
        ``X`` with the wrong number of features.
    """
    _require(net, GatedReLUNetwork, "net", " For a ReLUNetwork use relu_network_to_convex.")
    X = check_X(X)
    if X.shape[1] != net.n_features:
        raise ShapeError(f"X has {X.shape[1]} features; the network expects {net.n_features}.")
    bias = net.b1 is not None or net.gate_bias is not None
    m = net.n_neurons
    if m == 0:
        return _zero_width_model(X, "gated_relu", bias, None if net.w2.ndim == 1 else net.w2.shape[1])
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
