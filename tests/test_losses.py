"""Losses: CVXPY and numpy agree; gradients and conjugates are right (Fenchel-Young)."""

import cvxpy as cp
import numpy as np
import pytest

from cvxnn.errors import InvalidParameterError, LabelError
from cvxnn.losses import LOSSES, get_loss

rng = np.random.default_rng(0)
Z = rng.standard_normal(12)
Y_REAL = rng.standard_normal(12)
Y_PM = np.where(rng.standard_normal(12) > 0, 1.0, -1.0)
Y_PM[:2] = [1.0, -1.0]
Z_MAT = rng.standard_normal((12, 3))
Y_ONEHOT = np.eye(3)[rng.integers(0, 3, 12)]


def targets(name):
    if name in ("logistic", "hinge"):
        return Z, Y_PM
    if name == "cross_entropy":
        return Z_MAT, Y_ONEHOT
    return Z, Y_REAL


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_cvxpy_matches_numpy(name, reduction):
    z, y = targets(name)
    loss = get_loss(name, reduction=reduction)
    var = cp.Variable(z.shape)
    var.value = z
    assert loss.cvxpy(var, y).value == pytest.approx(loss.value(z, y), rel=1e-10)
    assert loss.cvxpy(var, y).is_convex()


@pytest.mark.parametrize("name", [n for n in sorted(LOSSES) if LOSSES[n].smooth])
def test_gradient_by_finite_differences(name):
    z, y = targets(name)
    loss = get_loss(name)
    g = loss.grad(z, y)
    eps = 1e-6
    num = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[idx] = eps
        num[idx] = (loss.value(z + e, y) - loss.value(z - e, y)) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["squared", "logistic", "cross_entropy"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_fenchel_young(name, reduction):
    """L(z) + L*(s) >= <s, z>, with equality at s = grad L(z)."""
    z, y = targets(name)
    loss = get_loss(name, reduction=reduction)
    s = loss.grad(z, y)
    assert loss.value(z, y) + loss.conjugate(s, y) == pytest.approx(np.sum(s * z), abs=1e-10)
    other = 0.5 * s
    if name == "cross_entropy":
        other = s  # stays in the domain only along the simplex; check the inequality at z + 1
        assert loss.value(z + 1.0, y) + loss.conjugate(other, y) >= np.sum(other * (z + 1.0)) - 1e-10
    else:
        assert loss.value(z, y) + loss.conjugate(other, y) >= np.sum(other * z) - 1e-10


def test_label_checks():
    with pytest.raises(LabelError):
        get_loss("logistic").check_targets(np.array([0.0, 1.0]))
    with pytest.raises(LabelError):
        get_loss("hinge").check_targets(np.ones(4))
    with pytest.raises(LabelError):
        get_loss("cross_entropy").check_targets(np.array([[0.5, 0.5]]))
    np.testing.assert_array_equal(get_loss("logistic").check_targets(Y_PM), Y_PM)


def test_bad_options():
    with pytest.raises(InvalidParameterError):
        get_loss("squared", reduction="median")
    with pytest.raises(InvalidParameterError):
        get_loss("huber", delta=-1.0)
    with pytest.raises(InvalidParameterError):
        get_loss("squared", delta=1.0)
    with pytest.raises(InvalidParameterError):
        get_loss("hinge").grad(Z, Y_PM)
