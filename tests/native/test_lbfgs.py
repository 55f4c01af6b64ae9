"""The L-BFGS of the gated working set (``cvxnn.native.lbfgs``): the compact direction is the
two-loop recursion's, it minimises standard test functions as SciPy's L-BFGS-B does, and it
stops cleanly (callback, iteration limit, floating-point floor)."""

import numpy as np
import pytest
from scipy.optimize import minimize, rosen, rosen_der

from cvxnn.native.lbfgs import _Memory, minimize_lbfgs


def _two_loop(pairs, g):
    q = g.copy()
    alphas = []
    for s, y in reversed(pairs):
        a = (s @ q) / (s @ y)
        alphas.append(a)
        q -= a * y
    s, y = pairs[-1]
    r = (s @ y) / (y @ y) * q
    for (s, y), a in zip(pairs, reversed(alphas), strict=True):
        r += (a - (y @ r) / (s @ y)) * s
    return -r


@pytest.mark.parametrize("pushes", [1, 3, 5, 12])
def test_compact_direction_is_the_two_loop_recursion(pushes):
    rng = np.random.default_rng(pushes)
    n, m = 30, 5
    A = rng.standard_normal((n, n))
    H = A @ A.T + n * np.eye(n)
    mem = _Memory(m, n)
    pairs = []
    for _ in range(pushes):  # past m pushes the ring buffer wraps
        s = rng.standard_normal(n)
        y = H @ s
        mem.push(s, y, float(s @ y), float(y @ y))
        pairs = (pairs + [(s, y)])[-m:]
    g = rng.standard_normal(n)
    ref = _two_loop(pairs, g)
    np.testing.assert_allclose(mem.direction(g), ref, rtol=1e-11, atol=1e-13 * np.abs(ref).max())
    mem.clear()
    np.testing.assert_array_equal(mem.direction(g), -g)


def test_a_zero_pivot_restarts_from_the_gradient():
    """A pair with s.y = 0 (never stored by minimize_lbfgs, pushed here by hand) makes R singular:
    the direction is -g and the memory starts over, instead of a triangular solve's garbage."""
    rng = np.random.default_rng(0)
    mem = _Memory(4, 6)
    s, y = rng.standard_normal(6), rng.standard_normal(6)
    mem.push(s, y, float(s @ y), float(y @ y))
    mem.push(s, y, 0.0, float(y @ y))  # a zero diagonal entry of S^T Y
    g = rng.standard_normal(6)
    np.testing.assert_array_equal(mem.direction(g), -g)
    assert mem.order == []


@pytest.mark.parametrize("n", [2, 10, 50])
def test_minimises_rosenbrock_like_scipy(n):
    x0 = np.full(n, -1.2)
    res = minimize_lbfgs(lambda x: (rosen(x), rosen_der(x)), x0, max_iter=5000)
    ref = minimize(lambda x: (rosen(x), rosen_der(x)), x0, jac=True, method="L-BFGS-B",
                   options={"maxcor": 20, "ftol": 0.0, "gtol": 0.0, "maxiter": 5000})
    assert res.message in ("converged", "line search failed")
    np.testing.assert_allclose(res.x, np.ones(n), atol=1e-6)
    assert res.fun <= max(ref.fun, 1e-20) * 10 + 1e-18
    assert res.nit <= 2 * ref.nit + 10


def test_ill_conditioned_quadratic_and_nonconvex_pairs():
    rng = np.random.default_rng(0)
    n = 40
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    H = Q @ np.diag(np.logspace(0, 3, n)) @ Q.T
    b = rng.standard_normal(n)
    xs = np.linalg.solve(H, b)
    res = minimize_lbfgs(lambda x: (0.5 * x @ H @ x - b @ x, H @ x - b), np.zeros(n), max_iter=3000)
    # to the floating-point floor of f: an error e along the smallest eigenvalue (1) changes f
    # by e^2 / 2, invisible below about sqrt(eps |f|)
    np.testing.assert_allclose(res.x, xs, rtol=0, atol=1e-6)
    assert res.message == "line search failed"
    # a non-convex function (negative curvature along the way): still a local minimum
    f = lambda x: (float(np.sum(x ** 4 - 3 * x ** 2 + x)), 4 * x ** 3 - 6 * x + 1)  # noqa: E731
    res = minimize_lbfgs(f, np.linspace(-2, 2, 9), max_iter=500)
    assert np.abs(f(res.x)[1]).max() <= 1e-6
    assert np.all(12 * res.x ** 2 - 6 > 0)  # each coordinate at a minimum, not a maximum


def test_callback_iteration_limit_and_floor():
    calls = []

    def cb(x):
        calls.append(x.copy())
        if len(calls) == 3:
            raise StopIteration

    quad = lambda x: (float(x @ x), 2 * x)  # noqa: E731
    res = minimize_lbfgs(lambda x: (rosen(x), rosen_der(x)), np.full(4, -1.2), callback=cb)
    assert res.message == "callback" and res.nit == 3 and len(calls) == 3
    np.testing.assert_array_equal(calls[-1], res.x)
    res = minimize_lbfgs(lambda x: (rosen(x), rosen_der(x)), np.full(4, -1.2), max_iter=5)
    assert res.message == "max_iter" and res.nit == 5
    # the exact minimiser: a zero gradient ends at once
    res = minimize_lbfgs(quad, np.zeros(3))
    assert res.message == "converged" and res.nit == 0 and res.nfev == 1
    # a function that only changes below its rounding: the line search gives up, the point stays
    flat = lambda x: (1.0 + 1e-30 * float(x @ x), 2e-30 * x)  # noqa: E731
    res = minimize_lbfgs(flat, np.ones(3))
    assert res.message == "line search failed"
    np.testing.assert_array_equal(res.x, np.ones(3))


def test_bad_input_is_refused_with_typed_errors():
    from cvxnn.errors import InputError, InvalidParameterError, ShapeError

    quad = lambda x: (float(x @ x), 2 * x)  # noqa: E731
    with pytest.raises(ShapeError, match="1-D"):
        minimize_lbfgs(quad, np.zeros((2, 2)))
    with pytest.raises(ShapeError, match="1-D"):
        minimize_lbfgs(quad, np.zeros(0))
    with pytest.raises(InputError, match="NaN"):
        minimize_lbfgs(quad, np.array([1.0, np.nan]))
    with pytest.raises(InvalidParameterError, match="memory"):
        minimize_lbfgs(quad, np.ones(2), memory=0)
    with pytest.raises(InvalidParameterError, match="max_iter"):
        minimize_lbfgs(quad, np.ones(2), max_iter=-1)
    with pytest.raises(ShapeError, match="gradient of shape"):
        minimize_lbfgs(lambda x: (1.0, np.zeros(3)), np.ones(2))
    with pytest.raises(InputError, match="not finite"):
        minimize_lbfgs(lambda x: (np.nan, x), np.ones(2))
    # a non-finite value away from x0 is a failed trial step, not an error
    res = minimize_lbfgs(lambda x: (float(x @ x) if abs(x[0]) < 2 else np.inf, 2 * x), np.array([1.5, 0.0]))
    assert np.abs(res.x).max() <= 1e-8
