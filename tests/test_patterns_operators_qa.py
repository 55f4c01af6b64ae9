"""QA of the activation patterns and the implicit operator: shapes that used to be read wrongly,
typed errors, memory estimates against tracemalloc, gates whose products overflowed."""

from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest

from cvxnn._validation import check_X
from cvxnn.errors import InvalidParameterError, PatternMismatchError, ShapeError
from cvxnn.operators import ImplicitDesign, adjoint, forward, power_iteration_norm_sq
from cvxnn.patterns import Patterns, _fingerprint, patterns_memory, sample_patterns


def _peak(fn):
    """(result, peak bytes traced while ``fn`` ran, beyond what was held before)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _explicit(Xa, mask):
    n, d = Xa.shape
    return (mask[:, :, None] * Xa[:, None, :]).reshape(n, -1)  # column block i = D_i X_a


# ------------------------------------------------------------------ identities
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("chunk_bytes", [1, 200, 2**25])
def test_forward_and_adjoint_are_adjoint_for_every_chunking(dtype, c, chunk_bytes):
    rng = np.random.default_rng(c + chunk_bytes)
    n, d, p = 17, 3, 5
    Xa = np.asfortranarray(rng.standard_normal((n, d)))  # a Fortran-ordered design
    mask = rng.random((n, p)) < 0.5
    U = rng.standard_normal((d, p, c))
    R = rng.standard_normal((n, 2 * c))[:, ::2]  # a strided residual
    A = _explicit(Xa, mask)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for cache in (False, True):
        op = ImplicitDesign(Xa, mask, n_outputs=c, dtype=dtype, chunk_bytes=chunk_bytes, cache_mask=cache)
        AU, AtR = op.forward(U).astype(np.float64), op.adjoint(R).astype(np.float64)
        ref_f = A @ np.transpose(U, (1, 0, 2)).reshape(p * d, c)
        ref_a = np.transpose((A.T @ R).reshape(p, d, c), (1, 0, 2))
        scale = 1.0 + np.abs(ref_f).max() + np.abs(ref_a).max()
        assert np.abs(AU - ref_f).max() <= tol * scale and np.abs(AtR - ref_a).max() <= tol * scale
        assert abs(np.vdot(AU, R) - np.vdot(U, AtR)) <= tol * scale * np.abs(U).sum() * np.abs(R).sum()


# --------------------------------------------------------- shapes read wrongly
def test_adjoint_of_a_vector_residual_is_right_when_n_equals_d():
    # R of shape (n,) was broadcast against X_a: with n == d_a each column j of X_a was scaled by r_j
    rng = np.random.default_rng(0)
    Xa, mask, r = rng.standard_normal((3, 3)), rng.random((3, 4)) < 0.5, rng.standard_normal(3)
    op = ImplicitDesign(Xa, mask)
    np.testing.assert_allclose(op.adjoint(r)[:, :, 0], (Xa * r[:, None]).T @ mask, rtol=1e-14, atol=1e-14)


def test_residual_or_mask_with_more_rows_is_refused():
    rng = np.random.default_rng(1)
    Xa, mask = rng.standard_normal((5, 2)), rng.random((5, 3)) < 0.5
    op = ImplicitDesign(Xa, mask, n_outputs=2)
    with pytest.raises(ShapeError, match=r"\(5, 2\)"):
        op.adjoint(rng.standard_normal((7, 2)))  # was cut to its first 5 rows
    with pytest.raises(ShapeError, match="R must have shape"):
        adjoint(Xa, mask, rng.standard_normal(7))
    with pytest.raises(ShapeError, match="same rows"):
        adjoint(Xa, np.vstack([mask, mask]), rng.standard_normal(5))
    with pytest.raises(ShapeError, match="same rows"):
        forward(Xa, np.vstack([mask, mask]), rng.standard_normal((2, 3)))


def test_blocks_in_the_wrong_layout_are_refused():
    # (p, d, c) blocks of the same size as (d, p, c) were reshaped silently into garbage
    rng = np.random.default_rng(2)
    Xa, mask = rng.standard_normal((6, 2)), rng.random((6, 3)) < 0.5
    op = ImplicitDesign(Xa, mask)
    with pytest.raises(ShapeError, match=r"\(2, 3, 1\)"):
        op.forward(rng.standard_normal((3, 2, 1)))
    with pytest.raises(ShapeError, match="U must have shape"):
        forward(Xa, mask, rng.standard_normal((3, 2)))
    U = rng.standard_normal((2, 3))  # (d, p) is accepted for one output
    np.testing.assert_allclose(op.forward(U)[:, 0], forward(Xa, mask, U), rtol=1e-14)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    ({"n_outputs": 0}, "n_outputs"), ({"n_outputs": -1}, "n_outputs"), ({"n_outputs": 1.5}, "n_outputs"),
    ({"chunk_bytes": 0}, "chunk_bytes"), ({"reserve_bytes": -10**9}, "reserve_bytes"),
    ({"dtype": "junk"}, "dtype"),
])
def test_operator_parameters_raise_typed_errors(kwargs, match):
    Xa, mask = np.ones((4, 2)), np.ones((4, 3), dtype=bool)
    with pytest.raises(InvalidParameterError, match=match):
        ImplicitDesign(Xa, mask, memory_budget=10**6, **kwargs)


def test_operator_takes_lists_and_refuses_weighted_masks():
    op = ImplicitDesign([[1.0, 2.0], [3.0, 4.0]], [[True], [False]])  # AttributeError on .ndim before
    np.testing.assert_allclose(op.forward(np.ones((2, 1, 1)))[:, 0], [3.0, 0.0])
    with pytest.raises(InvalidParameterError, match="mask"):
        ImplicitDesign(np.ones((2, 2)), np.full((2, 1), 0.5))  # forward used 0.5, gram_eigh used mask > 0


def test_power_iteration_needs_an_iteration():
    op = ImplicitDesign(np.eye(3), np.ones((3, 2), dtype=bool))
    with pytest.raises(InvalidParameterError, match="n_iter"):
        power_iteration_norm_sq(op, n_iter=0)  # returned ||A||^2 = 0, an infinite step 1 / L
    assert op.spectral_norm_sq(n_iter=30) == pytest.approx(2.0, rel=1e-6)  # ||[I I]||^2 = 2


# ------------------------------------------------------- memory against tracemalloc
def test_bytes_held_with_a_cached_mask_is_what_is_allocated():
    rng = np.random.default_rng(3)
    n, d, p = 4000, 10, 200
    Xa, mask = rng.standard_normal((n, d)), rng.random((n, p)) < 0.5
    U, R = rng.standard_normal((d, p, 1)), rng.standard_normal((n, 1))

    def run():
        op = ImplicitDesign(Xa, mask)
        op.forward(U)
        op.adjoint(R)
        return op

    op, peak = _peak(run)
    assert op.mask_cached
    outputs = (n + 2 * d * p) * 8  # the image, the adjoint and its accumulator: the caller's iterates
    assert peak - outputs <= op.bytes_held <= 1.5 * peak  # bytes_held was 3.5x the peak (25.6 MB)


def test_copy_of_a_fortran_ordered_design_is_counted():
    rng = np.random.default_rng(4)
    Xa, mask = rng.standard_normal((3000, 8)), rng.random((3000, 4)) < 0.5
    c_op = ImplicitDesign(Xa, mask, cache_mask=False)
    f_op, peak = _peak(lambda: ImplicitDesign(np.asfortranarray(Xa), mask, cache_mask=False))
    assert peak >= Xa.nbytes  # ascontiguousarray copies it
    assert f_op.bytes_held - c_op.bytes_held == Xa.nbytes  # and it was counted as 0 bytes


@pytest.mark.parametrize("bias", [False, True])
def test_patterns_memory_covers_what_sample_patterns_allocates(bias):
    # tall data, few gates: the data copies dominate (75 MB used against 22.8 MB estimated at 10^6 x 3)
    X = np.random.default_rng(5).standard_normal((100_000, 3))
    pats, peak = _peak(lambda: sample_patterns(X, 2, seed=0, bias=bias, drop_zero=False))
    est = sum(patterns_memory(X.shape[0], 3 + bias, 2, bias=bias).values())
    assert peak <= est <= 2 * peak
    G = pats.gates
    _, peak = _peak(lambda: Patterns.from_gates(X, G, bias=bias))
    est = sum(patterns_memory(X.shape[0], 3 + bias, G.shape[1], sampled=False, bias=bias).values())
    assert peak <= est <= 2 * peak


def test_check_X_holds_one_copy_of_the_data():
    X = np.random.default_rng(6).standard_normal((50_000, 4))
    _, peak = _peak(lambda: check_X(X))
    assert peak <= 1.1 * X.nbytes  # np.abs and np.isfinite temporaries made it 2.1x


def test_fingerprint_is_the_hash_of_the_whole_data():
    # hashed by row chunks now; saved models keep their fingerprints
    X = np.random.default_rng(7).standard_normal((40_000, 5))
    X[0, 0] = -0.0
    h = hashlib.blake2b(digest_size=12)
    h.update(str(X.shape).encode())
    h.update((X + 0.0).view(np.uint8))
    assert _fingerprint(X) == h.hexdigest() == _fingerprint(np.asfortranarray(X))


# ------------------------------------------------------------- patterns, gates
def test_huge_gates_get_the_pattern_of_their_direction():
    X = np.array([[1e100, -1e100], [1.0, 2.0], [-3.0, 1.0]])
    g = np.array([[1e300], [1e299]])  # X g overflowed to inf - inf = NaN: "inactive"
    pats = Patterns.from_gates(X, g)
    np.testing.assert_array_equal(pats.mask[:, 0], X @ (g[:, 0] / 1e300) >= 0)
    np.testing.assert_array_equal(pats.mask_for(X), pats.mask)


def test_gate_shape_errors_say_what_is_wrong():
    X = np.ones((4, 2))
    with pytest.raises(ShapeError, match="at least one"):
        Patterns.from_gates(X, np.ones((2, 0)))  # "every gate gives the all-zero pattern" before
    with pytest.raises(ShapeError, match="bias=True"):
        Patterns.from_gates(X, np.ones((3, 5)))
    with pytest.raises(ShapeError, match="bias=False"):
        Patterns.from_gates(X, np.ones((2, 5)), bias=True)
    pats = sample_patterns(np.random.default_rng(8).standard_normal((6, 2)), 10, seed=0, bias=True)
    with pytest.raises(PatternMismatchError, match="raw X"):
        pats.check_data(np.hstack([np.ones((6, 2)), np.ones((6, 1))]))


def test_patterns_are_the_sign_patterns_of_their_gates_and_distinct():
    rng = np.random.default_rng(9)
    for _ in range(30):
        n, d = int(rng.integers(1, 20)), int(rng.integers(1, 4))
        X = rng.integers(-2, 3, (n, d)).astype(float)  # many exact ties x^T g = 0 with integer gates
        G = rng.integers(-2, 3, (d, 40)).astype(float)
        pats = Patterns.from_gates(X, G, unique=True)
        np.testing.assert_array_equal(pats.mask, X @ pats.gates >= 0)  # ties count as active
        assert len({pats.mask[:, j].tobytes() for j in range(pats.n_patterns)}) == pats.n_patterns
        assert len({(X @ G >= 0)[:, j].tobytes() for j in range(40)}) == pats.n_patterns
    X = rng.standard_normal((7, 2))
    a = sample_patterns(X, 30, seed=3)
    b = sample_patterns(np.asfortranarray(X).tolist(), 30, seed=np.random.default_rng(3))
    assert np.array_equal(a.gates, b.gates) and np.array_equal(a.mask, b.mask) and a.fingerprint == b.fingerprint
