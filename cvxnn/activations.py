"""The two hidden-layer models of the convex programs as objects (docs/math.md, "The convex programs").

A convex program's *activation* decides three things, and nothing else:

* which weight blocks the program has and with which sign they enter the prediction:
  C-GReLU has one block ``U_i`` per gate, C-ReLU two, ``V_i`` and ``W_i``, and predicts with
  ``V_i - W_i``;
* which constraint the blocks carry: none for C-GReLU, the polyhedral cone
  ``(2 D_i - I) X_a b_i >= 0`` (:class:`~cvxnn.constraints.ConeConstraint`) on every C-ReLU block;
* the default vector-output formulation: ``"nuclear"`` for C-GReLU, ``"one_vs_all"`` for C-ReLU
  (the nuclear-norm C-ReLU program is a relaxation, see docs/math.md, "Vector output");
* whether a neuron's activation pattern comes from a fixed gate (C-GReLU: two neurons with the
  same weights but different gates are different functions) or from its own weights (C-ReLU).

Code that needs one of these asks the :class:`Activation` object (``get_activation(name)``),
so solvers, builders and reports declare what they need (blocks, a constraint) instead of
comparing activation names. The public API keeps the names ``"relu"`` and ``"gated_relu"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .constraints import ConeConstraint
from .errors import InvalidParameterError

__all__ = ["ACTIVATIONS", "Activation", "CvxpyBlocks", "GATED_RELU", "RELU", "get_activation"]


@dataclass
class CvxpyBlocks:
    """What :meth:`Activation.cvxpy_blocks` gives a builder.

    Attributes
    ----------
    variables : dict of str -> cvxpy.Variable
        The blocks by name, in the activation's order.
    auxiliary : dict of str -> tuple
        Auxiliary variables of each block's penalty (empty tuples when none).
    cones : list
        The activation's constraints (empty for C-GReLU).
    weights : cvxpy.Expression
        ``sum_k sign_k B_k``, what multiplies ``D_i X_a``.
    penalty : cvxpy.Expression or float
        The sum of the blocks' penalties.
    constraints : list
        ``cones`` followed by the penalties' own constraints.
    """

    variables: dict
    auxiliary: dict
    cones: list
    weights: Any
    penalty: Any
    constraints: list


@dataclass(frozen=True)
class Activation:
    """One hidden-layer model of the convex programs.

    Attributes
    ----------
    name : str
        ``"relu"`` or ``"gated_relu"`` (the public spelling).
    label : str
        ``"C-ReLU"`` or ``"C-GReLU"`` (for messages and reports).
    blocks : tuple of str
        Names of the weight blocks, each ``d_a x p`` (``x c``): ``("V", "W")`` or ``("U",)``.
    signs : tuple of int
        The sign with which each block enters the prediction (``V - W``; ``U``).
    constraint : ConeConstraint or None
        The constraint every block carries (None: unconstrained).
    vector_formulation : str
        Default formulation for vector output.
    gated : bool
        Whether each neuron's pattern comes from a fixed gate rather than from its own weights.
    """

    name: str
    label: str
    blocks: tuple[str, ...]
    signs: tuple[int, ...]
    constraint: ConeConstraint | None
    vector_formulation: str
    gated: bool

    @property
    def constrained(self) -> bool:
        """Whether the blocks carry a constraint (the cones of C-ReLU)."""
        return self.constraint is not None

    def effective_weights(self, blocks: Mapping[str, np.ndarray]) -> np.ndarray:
        """``sum_k sign_k B_k``: the weights that multiply ``D_i X_a`` (``U`` or ``V - W``).

        Works on arrays and on CVXPY expressions alike (the blocks are combined with ``+``/``-``).
        """
        out = None
        for name, sign in zip(self.blocks, self.signs, strict=True):
            B = blocks[name]
            out = (B if sign > 0 else -B) if out is None else (out + B if sign > 0 else out - B)
        return out

    def zero_blocks(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Every block of this model at zero, each of ``shape``."""
        return {name: np.zeros(shape) for name in self.blocks}

    def cvxpy_blocks(self, make_block: Callable[[str], tuple], Xa: np.ndarray, mask: np.ndarray,
                     n_outputs: int = 1) -> CvxpyBlocks:
        """The CVXPY pieces of this model's blocks, for a builder.

        ``make_block(name)`` returns ``(variable, penalty, constraints, auxiliary)`` for one block
        (the builder's choice of penalty: group norms, column norms, a nuclear epigraph...); this
        adds the constraint of the activation on every block and sums the penalties.
        """
        parts = {name: make_block(name) for name in self.blocks}
        variables = {name: part[0] for name, part in parts.items()}
        cones = [] if self.constraint is None else [
            con for B in variables.values() for con in self.constraint.cvxpy(Xa, mask, B, n_outputs)]
        penalty = None
        for part in parts.values():
            penalty = part[1] if penalty is None else penalty + part[1]
        return CvxpyBlocks(variables=variables, auxiliary={name: part[3] for name, part in parts.items()},
                           cones=cones, weights=self.effective_weights(variables), penalty=penalty,
                           constraints=cones + [con for part in parts.values() for con in part[2]])

    def max_violation(self, Xa: np.ndarray, mask: np.ndarray, blocks: Mapping[str, np.ndarray]) -> float | None:
        """Largest constraint violation over the blocks (prediction units); None if unconstrained."""
        if self.constraint is None:
            return None
        return max(self.constraint.violation(Xa, mask, blocks[name]) for name in self.blocks)


RELU = Activation(name="relu", label="C-ReLU", blocks=("V", "W"), signs=(1, -1), constraint=ConeConstraint(),
                  vector_formulation="one_vs_all", gated=False)
GATED_RELU = Activation(name="gated_relu", label="C-GReLU", blocks=("U",), signs=(1,), constraint=None,
                        vector_formulation="nuclear", gated=True)
#: The activations by public name.
ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (RELU, GATED_RELU)}


def get_activation(activation: str | Activation) -> Activation:
    """The :class:`Activation` of a name (``"relu"``, ``"gated_relu"``) or the object itself.

    Raises
    ------
    InvalidParameterError
        For any other value, naming the accepted ones.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    raise InvalidParameterError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}.")
