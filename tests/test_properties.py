"""Property-based tests: every identity of docs/math.md on random small instances (hypothesis).

Instances are drawn from a seed and small sizes; Clarabel is the reference solver. Modules
written in parallel (native solvers, optimality, decomposition) are imported with
``importorskip`` so these tests run as soon as they land.
"""

import warnings

import numpy as np
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from cvxnn import (
    GatedReLUNetwork,
    ReLUNetwork,
    build_program,
    gated_network_to_convex,
    relu_network_to_convex,
    sample_patterns,
)
from cvxnn.solution import ConvexModel

PROPS = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                 phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
CHEAP = settings(PROPS, max_examples=40)

seeds = st.integers(0, 2**16)
sizes = st.tuples(st.integers(3, 12), st.integers(1, 3))
lams = st.sampled_from([0.01, 0.1, 1.0])


def instance(seed, n, d, outputs=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, 3))
    Y = np.maximum(X @ W, 0.0) @ rng.standard_normal((3, outputs)) + 0.1 * rng.standard_normal((n, outputs))
    return X, (Y[:, 0] if outputs == 1 else Y), rng


def rel(a, b):
    return abs(a - b) / max(1.0, abs(b))


#: Clarabel tolerances for tests that check optimality conditions to 1e-4 relative to lam.
TIGHT = {"tol_feas": 1e-12, "tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12}


def solve(X, y, activation, lam, pats, **opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = build_program(X, y, activation=activation, lam=lam, patterns=pats).solve(**opts)
    return sol


# ------------------------------------------------------------------------ exact maps
@CHEAP
@given(seed=seeds, size=sizes, m=st.integers(1, 6), bias=st.booleans(), lam=lams)
def test_relu_maps_both_ways(seed, size, m, bias, lam):
    """NC -> C keeps predictions, cone-feasible, convex objective <= NC; C -> NC is exact."""
    X, y, rng = instance(seed, *size)
    net = ReLUNetwork(rng.standard_normal((size[1], m)), rng.standard_normal(m),
                      b1=rng.standard_normal(m) if bias else None)
    model = relu_network_to_convex(net, X)
    assert model.max_cone_violation(X) <= 1e-12 * (1 + np.abs(X).max())
    np.testing.assert_allclose(model.train_predict(X), net.predict(X), atol=1e-10)
    conv = model.objective(X, y, lam)
    assert conv <= net.objective(X, y, lam) * (1 + 1e-12) + 1e-12
    back = model.to_network()
    np.testing.assert_allclose(back.predict(X), net.predict(X), atol=1e-10)
    assert rel(back.objective(X, y, lam), conv) < 1e-10
    # balanced networks with distinct patterns map with equal objective
    bal = net.balanced()
    signs = (X @ net.W1 + (net.b1 if bias else 0) >= 0).T
    if len({(tuple(c), s) for c, s in zip(signs, net.w2 >= 0, strict=True)}) == m:
        assert rel(relu_network_to_convex(bal, X).objective(X, y, lam), bal.objective(X, y, lam)) < 1e-10


@CHEAP
@given(seed=seeds, size=sizes, c=st.integers(1, 3), lam=lams)
def test_gated_maps_both_ways(seed, size, c, lam):
    X, y, rng = instance(seed, *size, outputs=c)
    pats = sample_patterns(X, 6, seed=seed, bias=True)
    shape = (pats.design_dim, pats.n_patterns) + ((c,) if c > 1 else ())
    keep = (rng.random(pats.n_patterns) < 0.7).reshape((1, pats.n_patterns) + (1,) * (len(shape) - 2))
    U = rng.standard_normal(shape) * keep
    model = ConvexModel("gated_relu", pats, U=U)
    net = model.to_network()
    assert isinstance(net, GatedReLUNetwork)
    np.testing.assert_allclose(net.predict(X), model.train_predict(X), atol=1e-10)
    assert rel(net.objective(X, y, lam), model.objective(X, y, lam)) < 1e-10
    again = gated_network_to_convex(net, X)
    np.testing.assert_allclose(again.train_predict(X), model.train_predict(X), atol=1e-10)
    assert again.objective(X, y, lam) <= model.objective(X, y, lam) * (1 + 1e-10) + 1e-12


# ---------------------------------------------------------------- bounds and optima
@PROPS
@given(seed=seeds, size=sizes, lam=lams)
def test_grelu_lower_bounds_relu_on_same_patterns(seed, size, lam):
    X, y, _ = instance(seed, *size)
    pats = sample_patterns(X, 8, seed=seed, bias=True)
    relu = solve(X, y, "relu", lam, pats)
    gated = solve(X, y, "gated_relu", lam, pats)
    assert gated.objective_value <= relu.objective_value * (1 + 1e-6) + 1e-8
    # the ReLU optimum maps to a network whose objective is the convex one
    assert rel(relu.to_network().objective(X, y, lam), relu.objective_value) < 1e-5


@PROPS
@given(seed=seeds, size=sizes, lam=lams, activation=st.sampled_from(["gated_relu", "relu"]))
def test_duality_gap_is_an_upper_bound(seed, size, lam, activation):
    import cvxnn.native as native
    X, y, rng = instance(seed, *size)
    pats = sample_patterns(X, 6, seed=seed, bias=True)
    p_star = solve(X, y, activation, lam, pats).objective_value
    if activation == "gated_relu":
        point = ConvexModel("gated_relu", pats, U=0.3 * rng.standard_normal((pats.design_dim, pats.n_patterns)))
    else:  # a cone-feasible point: the image of a random network with these patterns
        point = solve(X, y, "relu", 3 * lam, pats)
    cert = native.duality_gap(X, y, point, lam)
    tol = 1e-6 * max(1.0, abs(p_star))
    assert cert.dual <= p_star + tol
    assert cert.gap >= point.objective(X, y, lam) - p_star - tol
    assert rel(cert.primal, point.objective(X, y, lam)) < 1e-8


@PROPS
@given(seed=seeds, size=sizes, lam=lams, activation=st.sampled_from(["gated_relu", "relu"]))
@example(seed=558, size=(4, 3), lam=1.0, activation="gated_relu")  # Clarabel ends optimal_inaccurate
def test_kkt_pruning_and_optimal_set(seed, size, lam, activation):
    import cvxnn.optimality as opt
    X, y, _ = instance(seed, *size)
    pats = sample_patterns(X, 8, seed=seed, bias=True)
    sol = solve(X, y, activation, lam, pats, **TIGHT)
    assert sol.status in ("optimal", "optimal_inaccurate")  # tight tolerances may end "inaccurate"
    report = opt.kkt_report(sol, X, y)
    # An interior-point optimum is accurate in objective (gap ~1e-9) but the direction of a small
    # active block only to ~1e-4 relative; 1e-3 still separates optima from non-optima (O(1)).
    assert report.is_optimal(1e-3), report
    fit = sol.train_predict(X)
    if np.abs(fit).max() > 1e-6 * (1 + np.abs(y).max()):  # a scaled (nonzero) optimum is not optimal
        w = {k: 1.5 * getattr(sol, k) for k in ("U", "V", "W") if getattr(sol, k) is not None}
        assert not opt.kkt_report(ConvexModel(activation, pats, **w), X, y, lam).is_optimal(1e-3)
    obj = sol.objective(X, y, lam)
    pruned = opt.prune_exact(sol, X)
    np.testing.assert_allclose(pruned.model.train_predict(X), fit, atol=1e-6 * (1 + np.abs(fit).max()))
    assert pruned.model.objective(X, y, lam) <= obj + 1e-7 * max(1.0, obj)
    assert opt.is_minimal(pruned.model, X)
    oset = opt.optimal_set(sol, X, y)
    # the samples share the set's fit; an "optimal_inaccurate" reference is off it by fit_mismatch
    assert oset.fit_mismatch <= 1e-3 * (1 + np.abs(fit).max())
    for model in oset.sample_models(4, seed=seed):
        np.testing.assert_allclose(model.train_predict(X), fit,
                                   atol=1e-5 * (1 + np.abs(fit).max()) + oset.fit_mismatch)
        assert rel(model.objective(X, y, lam), obj) < 1e-5


@PROPS
@given(seed=seeds, size=sizes, lam=lams, method=st.sampled_from(["socp", "lp", "gate"]))
def test_cone_decomposition_reconstructs_u(seed, size, lam, method):
    import cvxnn.decomposition as dec
    X, y, _ = instance(seed, *size)
    pats = sample_patterns(X, 6, seed=seed, bias=True)
    gated = solve(X, y, "gated_relu", lam, pats)
    res = dec.decompose(gated, X, y, method=method, on_infeasible="report")
    U = gated.U * res.feasible[None, :] if res.feasible.ndim == 1 else gated.U
    scale = 1 + np.abs(gated.U).max()
    np.testing.assert_allclose(res.model.V - res.model.W, U, atol=1e-6 * scale)
    assert res.model.max_cone_violation(X) <= 1e-6 * scale * (1 + np.abs(X).max())
    if res.feasible.all():
        np.testing.assert_allclose(res.model.train_predict(X), gated.train_predict(X), atol=1e-6 * scale)
        # Theorem: d* <= p* (the ReLU network of the decomposition is an upper bound of d*)
        assert res.relu_objective >= gated.objective_value * (1 - 1e-6) - 1e-8
