"""Fuzzing the public entry points with malformed arrays and parameters (hypothesis).

The only allowed outcomes are a correct result (finite, no NaN) or a :class:`cvxnn.errors.CvxnnError`;
never another exception, a hang (tiny sizes, iteration limits) or a silent NaN. Warnings
(convergence, inaccurate solutions) are allowed: they are how a visible failure is reported.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cvxnn import (
    GatedReLUNetwork,
    Patterns,
    ReLUNetwork,
    build_program,
    enumerate_patterns,
    gated_network_to_convex,
    relu_network_to_convex,
    sample_patterns,
)
from cvxnn.errors import CvxnnError
from cvxnn.losses import LOSSES, get_loss
from cvxnn.solution import ConvexModel

FUZZ = settings(
    max_examples=50,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: keeps the suite fast and bounded
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# ------------------------------------------------------------------------- strategies
_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_, np.complex128,
           np.dtype("U2"), np.dtype("O")]


def _array_of(dtype):
    if dtype == np.dtype("O"):
        return hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
                          elements=st.one_of(st.floats(-5, 5), st.integers(-3, 3), st.just("x"), st.none()))
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))


#: Arbitrary (often malformed) array-likes.
junk = st.one_of(
    st.sampled_from(_DTYPES).flatmap(_array_of),
    st.none(),
    st.floats(),
    st.text(max_size=3),
    st.lists(st.lists(st.floats(), max_size=3), max_size=4),  # ragged
)

#: Well-formed small data, including extreme but finite values, ties and zeros.
_elems = st.one_of(st.floats(-1e3, 1e3, allow_subnormal=False), st.sampled_from([0.0, 1.0, -1.0, 1e-12, 1e8]))
good_X = hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 3)), elements=_elems)
any_X = st.one_of(good_X, junk)

#: Scalars of every kind for lam / tol / counts / seeds.
junk_scalar = st.one_of(
    st.floats(), st.integers(-3, 10**15), st.booleans(), st.none(), st.text(max_size=2),
    st.just(np.array([0.1, 0.2])), st.just(np.float32(0.3)), st.just(1 + 1j),
)
lam_like = st.one_of(st.floats(0, 10), junk_scalar)


#: Data on which every program builds (used when a generated X cannot, so the solve
#: parameters are fuzzed whatever X a hypothesis version draws).
_FIXED_X = np.array([[1.0, -0.5], [-0.3, 2.0], [0.7, 0.1], [-1.2, -0.4], [0.2, 0.9]])


def _n_rows(X) -> int:
    """Rows of an arbitrary (possibly ragged or scalar) array-like; 1 when it has none."""
    try:
        shape = np.shape(X)
    except ValueError:  # ragged nested sequences (numpy >= 1.24 refuses them)
        return 1
    return shape[0] if shape else 1


# --------------------------------------------------------------------------- oracle
def _finite(obj):
    """Assert no NaN / inf leaves a call: arrays, floats, and the numeric fields of results."""
    if obj is None:
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc":
            assert np.all(np.isfinite(obj)), "non-finite array returned"
        return
    if isinstance(obj, float):
        assert np.isfinite(obj), "non-finite float returned"
        return
    for name in ("gates", "W1", "w2", "b1", "U", "V", "W", "objective_value", "gap"):
        val = getattr(obj, name, None)
        if isinstance(val, (np.ndarray, float)):
            _finite(val)


def outcome(fn, *args, **kwargs):
    """Run ``fn``: return its (finite) result, or None when it raised a CvxnnError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = fn(*args, **kwargs)
        except CvxnnError:
            return None
    _finite(result)
    return result


# ---------------------------------------------------------------------------- patterns
@FUZZ
@given(X=any_X, n_gates=junk_scalar, seed=junk_scalar, bias=st.one_of(st.booleans(), junk_scalar))
def test_fuzz_sample_patterns(X, n_gates, seed, bias):
    pats = outcome(sample_patterns, X, n_gates, seed=seed, bias=bias)
    if pats is not None:
        assert pats.mask.shape[0] == _n_rows(X)
        assert pats.gates.shape[1] == pats.mask.shape[1] <= int(n_gates)


@FUZZ
@given(X=any_X, bias=st.one_of(st.booleans(), junk_scalar), drop_zero=st.booleans())
def test_fuzz_enumerate_patterns(X, bias, drop_zero):
    pats = outcome(enumerate_patterns, X, bias=bias, drop_zero=drop_zero, max_patterns=500)
    if pats is not None:
        # every pattern is distinct and consistent with its gate
        Xa = np.hstack([np.asarray(X, float), np.ones((pats.n_samples, 1))]) if pats.bias else np.asarray(X, float)
        np.testing.assert_array_equal(pats.mask, Xa @ pats.gates >= 0)
        assert len({col.tobytes() for col in pats.mask.T}) == pats.n_patterns


@FUZZ
@given(X=any_X, G=any_X, bias=st.one_of(st.booleans(), junk_scalar), unique=st.booleans(), index=junk)
def test_fuzz_from_gates_and_patterns_api(X, G, bias, unique, index):
    pats = outcome(Patterns.from_gates, X, G, bias=bias, unique=unique)
    if pats is None:
        return
    outcome(pats.subset, index)
    outcome(pats.mask_for, index)
    outcome(pats.check_data, index)
    outcome(pats.design, G)
    assert pats.matches(X)


# ------------------------------------------------------------------------- programs
@FUZZ
@given(
    X=good_X,
    y=st.one_of(junk, st.just("match")),
    lam=lam_like,
    activation=st.one_of(st.sampled_from(["relu", "gated_relu"]), junk_scalar),
    loss=st.one_of(st.sampled_from(sorted(LOSSES)), junk_scalar),
    form=st.one_of(st.sampled_from(["regularized", "min_norm", "max_margin"]), junk_scalar),
)
def test_fuzz_build_program_and_solve(X, y, lam, activation, loss, form):
    if isinstance(y, str) and y == "match":
        y = np.sign(X[:, 0]) + (X[:, 0] == 0)  # +-1 labels of the right length
    prog = outcome(build_program, X, y, lam=lam, activation=activation, loss=loss, form=form,
                   n_gates=4, seed=0)
    if prog is None:
        return
    sol = outcome(prog.solve)
    if sol is not None:
        assert sol.status in ("optimal", "optimal_inaccurate", "max_iterations")
        assert np.isfinite(sol.objective_value)
        outcome(sol.to_network)


@FUZZ
@given(X=good_X, lam=lam_like, solver=st.one_of(st.sampled_from(["CLARABEL", "SCS", "nope"]), junk_scalar),
       opts=st.dictionaries(st.sampled_from(["max_iters", "bogus", "verbose"]),
                            st.one_of(st.integers(1, 3), st.text(max_size=2)), max_size=2))
def test_fuzz_solve_parameters(X, lam, solver, opts):
    # Every call on generated data goes through ``outcome``: some X (e.g. all zeros) have no
    # non-zero pattern, and which such X a hypothesis version generates must not matter.
    prog = outcome(build_program, X, X[:, 0], lam=0.1, n_gates=3, seed=0)
    if prog is None:
        prog = build_program(_FIXED_X, _FIXED_X[:, 0], lam=0.1, n_gates=3, seed=0)
    sol = outcome(prog.solve, solver=solver, lam=lam, **opts)
    if sol is not None:
        assert np.isfinite(sol.objective_value)


@FUZZ
@given(X=good_X, other=any_X, tol=junk_scalar, lam=lam_like,
       loss=st.one_of(st.sampled_from(sorted(LOSSES)), junk_scalar))
def test_fuzz_models(X, other, tol, lam, loss):
    pats = sample_patterns(X, 4, seed=0, bias=True, drop_zero=False)
    rng = np.random.default_rng(0)
    model = ConvexModel("gated_relu", pats, U=rng.standard_normal((pats.design_dim, pats.n_patterns)))
    outcome(model.predict, other)
    outcome(model.train_predict, other)
    outcome(model.objective, X, other, lam, loss)
    outcome(model.objective, X, X[:, 0], lam, loss)
    outcome(model.n_active, tol)
    outcome(model.to_network, tol=tol)
    outcome(model.max_cone_violation, other)
    outcome(ConvexModel, "relu", pats, V=other, W=other)
    outcome(ConvexModel, "gated_relu", pats, U=other)


# -------------------------------------------------------------------- networks and maps
@FUZZ
@given(W1=any_X, w2=junk, b1=st.one_of(st.none(), junk), X=any_X)
def test_fuzz_networks_and_maps(W1, w2, b1, X):
    for make in (lambda: ReLUNetwork(W1, w2, b1),
                 lambda: GatedReLUNetwork(W1, w2, b1, gates=W1)):
        net = outcome(make)
        if net is None:
            continue
        out = outcome(net.predict, X)
        if out is not None:
            assert out.shape[0] == _n_rows(X)
        outcome(net.objective, X, np.zeros(_n_rows(X)), 0.1)
        to_convex = relu_network_to_convex if isinstance(net, ReLUNetwork) else gated_network_to_convex
        model = outcome(to_convex, net, X)
        if model is not None:
            back = outcome(model.to_network)
            if back is not None and out is not None:
                np.testing.assert_allclose(back.predict(X), out, rtol=1e-7, atol=1e-7 * (1 + np.abs(out).max()))


# ----------------------------------------------------------------------------- losses
@FUZZ
@given(name=st.one_of(st.sampled_from(sorted(LOSSES)), junk_scalar), z=junk, y=junk,
       opts=st.dictionaries(st.sampled_from(["reduction", "delta", "bogus"]),
                            st.one_of(st.floats(), st.sampled_from(["sum", "mean", "x"])), max_size=2))
def test_fuzz_losses(name, z, y, opts):
    loss = outcome(get_loss, name, **opts)
    if loss is None:
        return
    if isinstance(y, np.ndarray):
        outcome(loss.check_targets, y)
    outcome(loss.value, z, y)
    outcome(loss.grad, z, y)
    outcome(loss.conjugate, z, y)


# -------------------------------------------------------------- modules that land later
@FUZZ
@given(X=good_X, y=st.one_of(junk, st.just("match")), lam=lam_like,
       activation=st.one_of(st.sampled_from(["relu", "gated_relu"]), junk_scalar),
       tol=st.one_of(st.just(1e-6), junk_scalar), max_iter=st.one_of(st.just(200), junk_scalar))
def test_fuzz_solve_native(X, y, lam, activation, tol, max_iter):
    import cvxnn.native as native
    if isinstance(y, str) and y == "match":
        y = X[:, 0]
    pats = sample_patterns(X, 4, seed=0, bias=True, drop_zero=False)
    if isinstance(max_iter, int) and max_iter > 500:
        max_iter = 500  # keep the fuzzing fast; huge counts are accepted by design
    sol = outcome(native.solve_native, X, y, pats, activation=activation, lam=lam, tol=tol, max_iter=max_iter)
    if sol is not None:
        assert np.isfinite(sol.objective_value)
        assert sol.gap is None or sol.gap >= -1e-9 * max(1.0, abs(sol.objective_value))


@FUZZ
@given(X=any_X, y=junk, params=st.fixed_dictionaries({
    "lam": lam_like, "n_gates": st.one_of(st.integers(1, 6), junk_scalar),
    "bias": st.one_of(st.booleans(), junk_scalar), "tol": st.one_of(st.just(1e-6), junk_scalar)}))
def test_fuzz_estimators(X, y, params):
    import cvxnn.estimators as est_mod
    est = est_mod.ConvexGatedReLURegressor(**params, max_iter=200, random_state=0)
    fitted = outcome(est.fit, X, y)
    if fitted is not None:
        pred = outcome(fitted.predict, X)
        if pred is not None:
            assert pred.shape[0] == _n_rows(X)


@FUZZ
@given(X=good_X, method=st.one_of(st.sampled_from(["socp", "lp", "gate"]), junk_scalar),
       on_infeasible=st.one_of(st.sampled_from(["raise", "report", "refit"]), junk_scalar), other=any_X)
def test_fuzz_decomposition(X, method, on_infeasible, other):
    import cvxnn.decomposition as dec
    y = X[:, 0]
    pats = sample_patterns(X, 4, seed=0, bias=True, drop_zero=False)
    U = np.random.default_rng(1).standard_normal((pats.design_dim, pats.n_patterns))
    model = ConvexModel("gated_relu", pats, U=U)
    res = outcome(dec.decompose, model, X, y, lam=0.1, method=method, on_infeasible=on_infeasible)
    if res is not None:
        assert np.isfinite(res.reconstruction_error)
    outcome(dec.decompose, model, other, y, lam=0.1)


@FUZZ
@given(X=good_X, other=any_X, rank_tol=st.one_of(st.just(1e-9), junk_scalar), width=junk_scalar)
def test_fuzz_pruning(X, other, rank_tol, width):
    import cvxnn.optimality as opt
    y = X[:, 0]
    pats = sample_patterns(X, 5, seed=0, bias=True, drop_zero=False)
    rng = np.random.default_rng(2)
    model = ConvexModel("gated_relu", pats, U=rng.standard_normal((pats.design_dim, pats.n_patterns)))
    res = outcome(opt.prune_exact, model, X, rank_tol=rank_tol)
    if res is not None and rank_tol <= 1e-9:  # a large rank_tol trades fit for width by design
        fit = model.train_predict(X)
        np.testing.assert_allclose(res.model.train_predict(X), fit, atol=1e-6 * (1 + np.abs(fit).max()))
    outcome(opt.prune_exact, model, other)
    outcome(opt.kkt_report, model, X, y, 0.1)
    outcome(opt.kkt_report, model, other, y, rank_tol)
    outcome(opt.prune_to_width, model, X, y, width, lam=0.1)



# ------------------------------------------------------------------------ model files
_EXECUTED = []


class _Payload:
    """Unpickling this would run code (append to _EXECUTED)."""

    def __reduce__(self):
        return (_EXECUTED.append, ("executed",))


def test_loading_never_executes_code(tmp_path):
    import cvxnn.io as io
    X = np.random.default_rng(0).standard_normal((6, 2))
    net = ReLUNetwork(np.ones((2, 2)), np.array([1.0, -1.0]))
    path = io.save(net, tmp_path / "net.npz")
    good = dict(np.load(path, allow_pickle=False))
    np.testing.assert_array_equal(io.load(path).predict(X), net.predict(X))
    # Same archive with a pickled object added under a real entry name: refused, nothing runs.
    evil = tmp_path / "evil.npz"
    arrays = {**good, "W1": np.array([_Payload()], dtype=object)}
    np.savez(evil, **arrays)
    with pytest.raises(CvxnnError):
        io.load(evil)
    assert _EXECUTED == []


@FUZZ
@given(blob=st.binary(max_size=300), keep=st.integers(0, 400))
def test_fuzz_load_corrupt_files(tmp_path_factory, blob, keep):
    import cvxnn.io as io
    tmp = tmp_path_factory.mktemp("files")
    good = io.save(ReLUNetwork(np.ones((2, 2)), np.ones(2)), tmp / "net.npz")
    raw = good.read_bytes()
    for data in (blob, raw[:keep] + blob, raw[: len(raw) - keep % len(raw)]):
        path = tmp / "bad.npz"
        path.write_bytes(data)
        outcome(io.load, path)


@FUZZ
@given(X=good_X, y=st.one_of(junk, st.just("match")),
       activation=st.one_of(st.sampled_from(["relu", "gated_relu"]), junk_scalar),
       lams=st.one_of(st.none(), junk), n_lams=st.one_of(st.integers(1, 3), junk_scalar),
       ratio=st.one_of(st.just(0.1), junk_scalar))
def test_fuzz_lam_max_and_paths(X, y, activation, lams, n_lams, ratio):
    import cvxnn.path as path
    if isinstance(y, str) and y == "match":
        y = X[:, 0]
    pats = sample_patterns(X, 3, seed=0, bias=True, drop_zero=False)
    top = outcome(path.lam_max, X, y, pats, activation=activation)
    if top is not None:
        assert top >= 0
    if isinstance(lams, np.ndarray) and lams.size > 3:
        lams = lams.ravel()[:3]  # keep the number of solves small
    res = outcome(path.regularization_path, X, y, pats, activation=activation, lams=lams,
                  n_lams=n_lams if not isinstance(n_lams, int) or n_lams <= 3 else 3, lam_min_ratio=ratio)
    if res is not None:
        for sol in getattr(res, "solutions", []):
            assert np.isfinite(sol.objective_value)
