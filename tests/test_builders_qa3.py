"""The CVXPY modelling layer used as a researcher would: penalties, cone constraints, labels of
solutions solved through ``cvxnn.solve(program=...)``, options of the wrong layer."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import cvxnn
from cvxnn.constraints import ConeConstraint
from cvxnn.errors import InvalidParameterError, ShapeError
from cvxnn.feature_penalties import FeatureGroupL2
from cvxnn.patterns import sample_patterns
from cvxnn.penalties import Columnwise, GroupL2, Nuclear


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((14, 3))
    y = np.maximum(X @ np.array([1.0, -0.5, 0.3]), 0.0) + 0.1 * rng.standard_normal(14)
    return X, y, sample_patterns(X, 5, seed=1)


@pytest.mark.parametrize("penalty", ["nuclear", "columnwise", "group_l2"])
def test_scalar_block_penalties_build_the_group_lasso(small, penalty):
    """For one output a block is a column, whose nuclear norm is its 2-norm. penalty="nuclear"
    built one semidefinite epigraph per block: on 100 breast-cancer rows (d=30, 20 gates) Clarabel
    took 47 s and ended optimal_inaccurate, against 1.2 s for the same group lasso."""
    X, y, pats = small
    prog = cvxnn.build_program(X, y, lam=0.3, patterns=pats, penalty=penalty)
    assert not any(isinstance(c, cp.constraints.PSD) for c in prog.problem.constraints)
    assert prog.problem.is_dpp()
    sol = prog.solve()
    base = cvxnn.build_program(X, y, lam=0.3, patterns=pats).solve()
    assert sol.status == "optimal"
    assert sol.objective_value == pytest.approx(base.objective_value, rel=1e-7)
    assert sol.program_penalty == pytest.approx(base.penalty(), rel=1e-6)
    # the same program, so the same float64 duality-gap certificate (it was skipped for them)
    assert sol.extra["certified_rel_gap"] == pytest.approx(base.extra["certified_rel_gap"], rel=1e-3, abs=1e-12)


@pytest.mark.parametrize("penalty", [GroupL2(), Columnwise(), Nuclear()])
@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_block_norms_and_prox_are_exact_at_extreme_scales(penalty, scale):
    """The squares overflowed or underflowed: a block of 1e200 entries had the norm inf and a
    prox of NaN, one of 1e-200 entries the norm 0."""
    B = np.random.default_rng(0).standard_normal((3, 4, 2))
    norms = penalty.block_norms(B * scale)
    assert np.all(np.isfinite(norms)) and np.all(norms > 0)
    np.testing.assert_allclose(norms / scale, penalty.block_norms(B), rtol=1e-14)
    prox = penalty.prox(B * scale, 0.5 * scale)
    assert np.all(np.isfinite(prox))
    np.testing.assert_allclose(prox / scale, penalty.prox(B, 0.5), rtol=1e-12, atol=1e-15)


def test_nuclear_penalty_of_a_non_finite_block_is_nan_like_the_others():
    """LAPACK raised LinAlgError ("SVD did not converge") where GroupL2 gave NaN."""
    B = np.random.default_rng(1).standard_normal((3, 4, 2))
    B[0, 1, 0] = np.nan
    for penalty in (GroupL2(), Columnwise(), Nuclear()):
        norms = penalty.block_norms(B)
        assert np.isnan(norms[1]) and np.all(np.isfinite(np.delete(norms, 1)))
    nuc = Nuclear()
    assert np.isnan(nuc.dual_norm(B)[1])
    prox = nuc.prox(B, 0.1)
    assert np.all(np.isnan(prox[:, 1])) and np.all(np.isfinite(np.delete(prox, 1, axis=1)))


def test_penalty_arguments_are_typed_errors():
    pen = GroupL2()
    with pytest.raises(InvalidParameterError, match="prox threshold"):
        pen.prox(np.ones((3, 2)), "a")  # ValueError from float()
    with pytest.raises(InvalidParameterError, match="prox threshold"):
        pen.prox(np.ones((3, 2)), np.array([1.0, 2.0]))  # TypeError from float()
    for P in (GroupL2(), Nuclear(), Columnwise()):
        with pytest.raises(ShapeError, match="n_outputs=2"):
            P.cvxpy(cp.Variable((3, 5)), 2)  # 5 columns are no whole number of 2-output blocks
        with pytest.raises(InvalidParameterError, match="n_outputs"):
            P.cvxpy(cp.Variable((3, 4)), 0)  # ZeroDivisionError


def test_cone_violation_of_nan_weights_is_nan_and_shapes_are_checked():
    """A NaN point was reported cone-feasible (violation 0.0): max(0.0, nan) is 0.0."""
    con = ConeConstraint()
    Xa, mask = np.ones((4, 3)), np.ones((4, 2), dtype=bool)
    assert np.isnan(con.violation(Xa, mask, np.full((3, 2), np.nan)))
    assert np.isnan(cvxnn.solution.cone_violation(Xa, mask, np.full((3, 2, 2), np.nan)))
    assert con.violation(Xa, mask, -np.ones((3, 2))) == pytest.approx(3.0)
    with pytest.raises(ShapeError, match="same n"):
        con.slack(Xa, np.ones((5, 2)), np.ones((3, 2)))  # bare numpy broadcast error
    with pytest.raises(ShapeError, match="d_a"):
        con.slack(Xa, mask, np.ones((2, 2)))  # bare matmul error


def test_feature_penalty_solution_through_solve_program_keeps_its_label():
    """cvxnn.solve(program=...) dropped extra["penalty"], so duality_gap judged the feature-penalty
    optimum by the block-norm program: a 17.7% "gap" at a Clarabel optimum (diabetes, 60 rows)."""
    from cvxnn.native import duality_gap

    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 4))
    y = X[:, 0] - np.maximum(X[:, 1], 0) + 0.1 * rng.standard_normal(20)
    pats = sample_patterns(X, 5, seed=0)
    pen = FeatureGroupL2()
    prog = cvxnn.build_program(X, y, activation="gated_relu", lam=1.0, patterns=pats, penalty=pen)
    sol = cvxnn.solve(X, y, pats, activation="gated_relu", lam=1.0, solver="clarabel", program=prog)
    assert sol.extra["penalty"] == repr(pen)
    assert prog.solve().extra["penalty"] == repr(pen)
    with pytest.raises(InvalidParameterError, match="feature-sparse program"):
        duality_gap(X, y, sol, 1.0)


@pytest.mark.parametrize("option", [{"penalty": "nuclear"}, {"form": "min_norm"}])
def test_program_options_given_to_solve_name_build_program(small, option):
    """They reached CVXPY as solver settings: "bad solver option for CLARABEL: Clarabel:
    unrecognized solver setting 'penalty'"."""
    X, y, pats = small
    (key,) = option
    with pytest.raises(InvalidParameterError, match=rf"\['{key}'\].*build_program"):
        cvxnn.solve(X, y, pats, solver="clarabel", **option)


def test_problem_solve_options_that_do_not_apply_are_typed_errors(small):
    """gp=True raised CVXPY's DGPError (printing the data matrices), method="x" a bare KeyError."""
    X, y, pats = small
    prog = cvxnn.build_program(X, y, lam=0.3, patterns=pats)
    with pytest.raises(InvalidParameterError, match="DCP program"):
        prog.solve(gp=True)
    with pytest.raises(InvalidParameterError, match="method='x'"):
        prog.solve(method="x")
    assert prog.solve().status == "optimal"
