"""The activation objects: what C-ReLU and C-GReLU declare (blocks, signs, constraint)."""

import cvxpy as cp
import numpy as np
import pytest

from cvxnn import build_program, sample_patterns
from cvxnn.activations import ACTIVATIONS, GATED_RELU, RELU, Activation, get_activation
from cvxnn.constraints import ConeConstraint
from cvxnn.errors import InvalidParameterError
from cvxnn.solution import ConvexModel


def test_registry_and_lookup():
    assert set(ACTIVATIONS) == {"relu", "gated_relu"}
    assert get_activation("relu") is RELU and get_activation("gated_relu") is GATED_RELU
    assert get_activation(RELU) is RELU
    for bad in ("ReLU", "tanh", None, 3):
        with pytest.raises(InvalidParameterError, match="activation must be one of"):
            get_activation(bad)


def test_declared_structure():
    assert RELU.blocks == ("V", "W") and RELU.signs == (1, -1) and RELU.constrained
    assert isinstance(RELU.constraint, ConeConstraint) and not RELU.gated
    assert RELU.vector_formulation == "one_vs_all"
    assert GATED_RELU.blocks == ("U",) and GATED_RELU.signs == (1,) and not GATED_RELU.constrained
    assert GATED_RELU.gated and GATED_RELU.vector_formulation == "nuclear"
    with pytest.raises(AttributeError):  # frozen
        RELU.name = "x"  # type: ignore[misc]


def test_effective_weights_arrays_and_cvxpy():
    rng = np.random.default_rng(0)
    V, W = rng.standard_normal((2, 4, 3))
    np.testing.assert_array_equal(RELU.effective_weights({"V": V, "W": W}), V - W)
    np.testing.assert_array_equal(GATED_RELU.effective_weights({"U": V}), V)
    Vv, Wv = cp.Variable((4, 3)), cp.Variable((4, 3))
    expr = RELU.effective_weights({"V": Vv, "W": Wv})
    Vv.value, Wv.value = V, W
    np.testing.assert_allclose(expr.value, V - W)


def test_zero_blocks_and_violation_match_the_model():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 3))
    pats = sample_patterns(X, 6, seed=0, bias=True)
    Xa = pats.design(X)
    for spec in (RELU, GATED_RELU):
        z = spec.zero_blocks((pats.design_dim, pats.n_patterns))
        assert set(z) == set(spec.blocks) and all(not B.any() for B in z.values())
    blocks = {"V": rng.standard_normal((pats.design_dim, pats.n_patterns)),
              "W": rng.standard_normal((pats.design_dim, pats.n_patterns))}
    model = ConvexModel(activation="relu", patterns=pats, **blocks)
    assert RELU.max_violation(Xa, pats.mask, blocks) == pytest.approx(model.max_cone_violation(X))
    assert RELU.max_violation(Xa, pats.mask, blocks) > 0  # random blocks leave their cones
    assert GATED_RELU.max_violation(Xa, pats.mask, {"U": blocks["V"]}) is None
    assert model.spec is RELU and set(model.blocks) == {"V", "W"}
    np.testing.assert_array_equal(model.effective_weights, blocks["V"] - blocks["W"])


@pytest.mark.parametrize("name", ["relu", "gated_relu"])
def test_builder_variables_follow_the_declared_blocks(name):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((20, 2))
    y = rng.standard_normal(20)
    prog = build_program(X, y, activation=name, lam=0.1, patterns=sample_patterns(X, 4, seed=0))
    spec = get_activation(name)
    assert tuple(prog.variables) == spec.blocks
    assert len(prog.cone_constraints) == (len(spec.blocks) if spec.constrained else 0)
    assert isinstance(spec, Activation)
