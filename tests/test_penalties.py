"""Penalty objects (value, prox, dual norm, CVXPY form) and the cone constraint object."""

import cvxpy as cp
import numpy as np
import pytest

from cvxnn import sample_patterns
from cvxnn.constraints import ConeConstraint
from cvxnn.errors import InvalidParameterError, ShapeError
from cvxnn.penalties import Columnwise, GroupL2, Nuclear, get_penalty
from cvxnn.solution import cone_violation

PENALTIES = [GroupL2(), Nuclear(), Columnwise()]
SHAPES = [(4, 5), (4, 5, 3), (2, 3, 4)]


def _blocks(shape, seed=0):
    B = np.random.default_rng(seed).standard_normal(shape)
    B[:, 1] = 0.0  # a zero block
    return B


def _dual_argmax(pen, G):
    """A unit-norm block attaining <G, B> = ||G||^D (one per block): the dual norm's maximiser."""
    G3 = G if G.ndim == 3 else G[:, :, None]
    out = np.zeros_like(G3)
    for i in range(G3.shape[1]):
        g = G3[:, i, :]
        if isinstance(pen, GroupL2):
            out[:, i, :] = g / np.linalg.norm(g)
        elif isinstance(pen, Nuclear):
            U, s, Vt = np.linalg.svd(g, full_matrices=False)
            out[:, i, :] = np.outer(U[:, 0], Vt[0])
        else:
            k = np.argmax(np.linalg.norm(g, axis=0))
            out[:, i, k] = g[:, k] / np.linalg.norm(g[:, k])
    return out if G.ndim == 3 else out[:, :, 0]


@pytest.mark.parametrize("pen", PENALTIES, ids=lambda p: p.name)
@pytest.mark.parametrize("shape", SHAPES)
def test_value_and_block_norms(pen, shape):
    B = _blocks(shape)
    norms = pen.block_norms(B)
    assert norms.shape == (shape[1],) and norms[1] == 0.0
    assert pen.value(B) == pytest.approx(norms.sum())
    B3 = B if B.ndim == 3 else B[:, :, None]
    for i in range(shape[1]):
        b = B3[:, i, :]
        expected = {"group_l2": np.linalg.norm(b), "nuclear": np.linalg.norm(b, "nuc"),
                    "columnwise": np.linalg.norm(b, axis=0).sum()}[pen.name]
        assert norms[i] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # scalar output: all three are the group lasso
    if B.ndim == 2:
        assert pen.value(B) == pytest.approx(GroupL2().value(B))


@pytest.mark.parametrize("pen", PENALTIES, ids=lambda p: p.name)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("t", [0.0, 0.3, 1.5])
def test_prox_optimality_and_moreau(pen, shape, t):
    V = _blocks(shape, seed=1)
    X = pen.prox(V, t)
    assert X.shape == V.shape
    F = lambda Z: t * pen.value(Z) + 0.5 * np.sum((Z - V) ** 2)  # noqa: E731
    rng = np.random.default_rng(2)
    for _ in range(30):  # the prox minimises F: no perturbation does better
        assert F(X) <= F(X + 1e-3 * rng.standard_normal(V.shape)) + 1e-12
    # Moreau: prox_{t||.||}(V) + projection of V onto the dual ball of radius t = V
    np.testing.assert_allclose(X + pen.project_dual_ball(V, t), V, atol=1e-12)
    # the residual (V - X) / t is a subgradient: dual norm <= 1, and <., X> = ||X|| on every block
    if t > 0:
        R = (V - X) / t
        assert np.all(pen.dual_norm(R) <= 1 + 1e-9)
        X3, R3 = (X, R) if X.ndim == 3 else (X[:, :, None], R[:, :, None])
        inner = np.einsum("dpc,dpc->p", X3, R3)
        np.testing.assert_allclose(inner, pen.block_norms(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("pen", PENALTIES, ids=lambda p: p.name)
@pytest.mark.parametrize("shape", SHAPES)
def test_dual_norm_is_sup_over_unit_blocks(pen, shape):
    G = _blocks(shape, seed=3)
    G[:, 1] = np.random.default_rng(9).standard_normal(G[:, 1].shape)
    dual = pen.dual_norm(G)
    B = _dual_argmax(pen, G)
    G3, B3 = (G, B) if G.ndim == 3 else (G[:, :, None], B[:, :, None])
    np.testing.assert_allclose(pen.block_norms(B), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.einsum("dpc,dpc->p", G3, B3), dual, rtol=1e-10)  # attained
    rng = np.random.default_rng(4)
    for _ in range(50):  # and never exceeded
        Z = rng.standard_normal(shape)
        Z3 = Z if Z.ndim == 3 else Z[:, :, None]
        Z3 = Z3 / pen.block_norms(Z3)[None, :, None]
        assert np.all(np.einsum("dpc,dpc->p", G3, Z3) <= dual * (1 + 1e-12))


@pytest.mark.parametrize("pen", PENALTIES, ids=lambda p: p.name)
@pytest.mark.parametrize("c", [1, 3])
def test_cvxpy_expression_equals_numpy(pen, c):
    d, p = 4, 5
    B = _blocks((d, p, c), seed=5)
    flat = B.reshape(d, p * c)  # the builders' layout: column i c + k is output k of block i
    var = cp.Variable((d, p * c))
    term = pen.cvxpy(var, c)
    prob = cp.Problem(cp.Minimize(term.expression), term.constraints + [var == flat])
    prob.solve(solver="CLARABEL")
    assert prob.value == pytest.approx(pen.value(B if c > 1 else B[:, :, 0]), rel=1e-6)
    if not term.constraints:  # a plain expression: exact evaluation
        var.value = flat
        assert term.expression.value == pytest.approx(pen.value(B), rel=1e-12)


def test_get_penalty_and_errors():
    assert isinstance(get_penalty("one_vs_all"), Columnwise)
    assert isinstance(get_penalty("nuclear"), Nuclear)
    pen = GroupL2()
    assert get_penalty(pen) is pen
    with pytest.raises(InvalidParameterError):
        get_penalty("frobenius")
    with pytest.raises(InvalidParameterError):
        pen.prox(np.ones((2, 2)), -1.0)
    with pytest.raises(ShapeError):
        pen.block_norms(np.ones(3))


# ----------------------------------------------------------------------------- cone constraint
@pytest.mark.parametrize("c", [1, 2])
def test_cone_constraint_numpy_and_cvxpy_agree(c):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((15, 3))
    pats = sample_patterns(X, 6, seed=0, bias=True)
    Xa, mask = pats.design(X), pats.mask
    d_a, p = pats.design_dim, pats.n_patterns
    cone = ConeConstraint()
    B = rng.standard_normal((d_a, p) if c == 1 else (d_a, p, c))
    slack = cone.slack(Xa, mask, B)
    assert slack.shape == ((15, p) if c == 1 else (15, p, c))
    assert cone.violation(Xa, mask, B) == pytest.approx(max(0.0, -slack.min()))
    assert cone.violation(Xa, mask, B) == pytest.approx(cone_violation(Xa, mask, B))
    # gates lie in their own cones: zero violation
    G = pats.gates if c == 1 else np.repeat(pats.gates[:, :, None], c, axis=2)
    assert cone.violation(Xa, mask, G) == 0.0
    # the CVXPY constraint is the same inequality, with its rows in the layout of the columns
    var = cp.Variable((d_a, p * c))
    (con,) = cone.cvxpy(Xa, mask, var, c)
    var.value = B.reshape(d_a, p * c)
    np.testing.assert_allclose(con.expr.value.reshape(slack.shape), -slack, atol=1e-12)
    with pytest.raises(ShapeError):
        cone.slack(Xa, mask, np.ones((d_a, p + 1)))
