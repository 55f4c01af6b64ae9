"""ImplicitDesign: the products with ``A = [D_1 X_a, ..., D_p X_a]`` against the explicit design,
in both dtypes, for scalar and vector output, whole and row-chunked."""

from __future__ import annotations

import numpy as np
import pytest

from cvxnn.operators import ImplicitDesign


def _explicit(Xa: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``n x (p d)`` with column block ``i`` equal to ``D_i X_a`` (block-major, ``U`` as ``(d, p)``)."""
    n, d = Xa.shape
    return (mask[:, :, None] * Xa[:, None, :]).reshape(n, -1)


@pytest.mark.parametrize("c", [1, 2, 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunk_bytes", [None, 256])
@pytest.mark.parametrize("seed", [0, 1])
def test_products_match_the_explicit_design(c, dtype, chunk_bytes, seed):
    rng = np.random.default_rng(seed)
    n, d, p = int(rng.integers(5, 40)), int(rng.integers(1, 7)), int(rng.integers(1, 9))
    Xa = rng.standard_normal((n, d))
    mask = rng.random((n, p)) < 0.5
    kw = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes, "cache_mask": False}
    op = ImplicitDesign(Xa, mask, n_outputs=c, dtype=dtype, **kw)
    if chunk_bytes is not None:
        assert op.rows < n  # the chunked code path
    A = _explicit(Xa, mask)  # n x (p d)
    U = rng.standard_normal((d, p, c))
    R = rng.standard_normal((n, c))
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == np.float64 else {"rtol": 2e-4, "atol": 2e-4}
    # forward: A vec(U) per output column
    ref_f = A @ np.transpose(U, (1, 0, 2)).reshape(p * d, c)
    np.testing.assert_allclose(op.forward(U), ref_f, **tol)
    # adjoint: A^T R, back in (d, p, c)
    ref_a = np.transpose((A.T @ R).reshape(p, d, c), (1, 0, 2))
    G = op.adjoint(R)
    assert G.shape == (d, p, c) and G.dtype == dtype and G.flags.c_contiguous
    np.testing.assert_allclose(G, ref_a, **tol)
    # the two are adjoint to each other: <A U, R> = <U, A^T R>
    lhs = float(np.vdot(op.forward(U).astype(np.float64), R))
    rhs = float(np.vdot(U, G.astype(np.float64)))
    assert lhs == pytest.approx(rhs, rel=1e-9 if dtype == np.float64 else 1e-4, abs=1e-9 if dtype == np.float64
                                else 1e-3)


def test_adjoint_accepts_non_contiguous_residuals():
    rng = np.random.default_rng(3)
    Xa = rng.standard_normal((30, 4))
    mask = rng.random((30, 6)) < 0.5
    op = ImplicitDesign(Xa, mask, n_outputs=3)
    R = np.asfortranarray(rng.standard_normal((30, 3)))
    np.testing.assert_allclose(op.adjoint(R), op.adjoint(np.ascontiguousarray(R)), rtol=0, atol=0)
    R2 = rng.standard_normal((30, 6))[:, ::2]  # a strided view
    np.testing.assert_allclose(op.adjoint(R2), op.adjoint(R2.copy()), rtol=1e-15, atol=1e-15)
