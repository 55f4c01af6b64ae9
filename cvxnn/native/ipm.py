"""Barrier interior-point method for C-ReLU restricted to a set of blocks, any smooth loss.

The working-set solver (:mod:`cvxnn.native.working_set`) calls this on the few blocks that
can be non-zero at the optimum. Block ``j`` is a column ``u_j`` (length ``d``) of pattern
``i(j)``, output ``k(j)`` and sign ``s_j`` (``+1`` for a ``v`` block, ``-1`` for a ``w``
block); its contribution to output ``k(j)`` is ``s_j D_i X u_j`` and its cone is
``K_i = {u : Xt_i u >= 0}`` with ``Xt_i = (2 D_i - I) X`` (``docs/math.md``). Scalar output
is ``c = 1``; for vector output each block feeds one output (the columnwise program, whose
value is the objective of the network it maps to).

Restricted program and its barrier problem (``mu > 0``)::

    min  h(Z(u)) + lam sum_j ||u_j||            s.t.  Xt_i(j) u_j >= 0
    Phi_mu(u) = h(Z(u)) + sum_j psi_mu(||u_j||) - mu sum_j sum_rows log (Xt_i(j) u_j)

``psi_mu`` is the second-order-cone barrier ``lam t - mu log(t^2 - r^2)`` minimised over the
epigraph variable ``t`` in closed form, ``t = (mu + q) / lam`` with ``q = sqrt(mu^2 + lam^2 r^2)``:
a smooth convex approximation of ``lam r`` with

    psi'(r) = lam^2 r / (mu + q),     psi''(r) = lam^2 mu / (q (mu + q)),

so ``|psi'| < lam`` everywhere: the barrier gradient of each block is a dual-feasible point of
the norm ball, and ``rho = mu / slack`` are positive cone multipliers. Newton's method with a
fraction-to-the-boundary rule and an Armijo backtracking line search centres ``Phi_mu``; ``mu``
then drops by :data:`MU_DECREASE`. The Hessian is dense in the ``|W| d`` block variables:

* loss: ``A^T H A`` with ``H = diag(D) - v v^T`` per sample (the loss object's
  :meth:`~cvxnn.native._losses.SmoothKernel.hessian_parts`), a few GEMMs;
* cone barrier: ``mu Xt_i^T diag(1 / slack^2) Xt_i`` per block, one GEMM for all blocks with
  the row products ``x_r x_r^T`` formed once;
* penalty: ``a I + (b - a) u u^T / r^2`` per block.

When that is cheaper (:func:`_dense_newton`: small ``|W| d``) it is formed and
factorised by Cholesky (LAPACK), ``O(n (|W| d)^2 + (|W| d)^3)`` flops at BLAS speed;
otherwise the Newton system is solved by conjugate gradients with Hessian-vector products
(two ``n x d x |W|`` GEMMs each), preconditioned by the exact ``d x d`` diagonal blocks. The result is never
trusted by itself: the caller certifies the full problem with :func:`~cvxnn.native.certificates.relu_certificate`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg as sla

from ._losses import SmoothKernel

__all__ = ["ActiveSetResult", "BarrierResult", "barrier_bytes", "row_space_basis", "solve_restricted_active_set",
           "solve_restricted_barrier"]

logger = logging.getLogger(__name__)

#: Floor of the relative diagonal shifts below (the systems scale with the data: no absolute floor).
_TINY = np.finfo(float).tiny
_LOG2 = float(np.log(2.0))
#: Below this, squares underflow (``_SQRT_TINY^2`` is the smallest normal float).
_SQRT_TINY = float(np.sqrt(_TINY))
#: Factor by which ``mu`` drops after each centring.
MU_DECREASE = 10.0
#: First barrier parameter relative to |objective| / nu (a cold start).
MU0_REL = 0.1
#: Largest ``|W| d`` for which Newton systems are formed and factorised; above it they are
#: solved by conjugate gradients with the exact diagonal blocks as preconditioner.
DENSE_MAX = 2500
#: Relative residual and iteration cap of those conjugate-gradient solves.
CG_TOL = 1e-3
CG_MAX = 200
#: Conjugate-gradient products per Newton step assumed by the dense-or-CG choice, and the
#: Python overhead of one product in flops (about 30 us): tiny systems (iris, 5 variables per
#: block) are cheaper formed (measured: iris's default fit 0.18 s with CG only).
CG_TYPICAL = 30
CG_OVERHEAD = 2e5
#: Largest factor of the adaptive decrease.
MAX_DECREASE = 1000.0
#: Newton steps per centring (a long-step method needs only a few).
MAX_CENTERING = 30
#: Fraction-to-the-boundary factor of the line search.
BOUNDARY = 0.995
#: Face changes (rows joining or leaving) of :func:`polish_on_faces`.
MAX_FACE_CHANGES = 12
#: Largest number of face coordinates whose Newton systems are formed; above it conjugate
#: gradients solve them matrix-free (a dense 9000-coordinate system needs 650 MB).
FACE_DENSE_MAX = 2500
#: ... and also above this many times the number of rows: the Hessian is then a rank-``n`` product
#: plus the block-diagonal penalty curvature, whose Cholesky (``m^3 / 3`` flops) costs far more
#: than the conjugate-gradient products (``4 n m`` each). Measured: binary make_classification,
#: 100 rows, 500 features (face systems of up to 2300 coordinates), ConvexReLUClassifier 3.0 s
#: -> 0.9 s in the row space.
FACE_CG_ROWS_RATIO = 4.0
#: ... when the system has at least this many coordinates and the loss is not quadratic: a
#: smaller Cholesky is cheap, and on ill-conditioned programs conjugate gradients crawl (12 rows
#: at ``lam = 1e-11``; the classifier above: 0.67 s from 500 coordinates on, 0.88 s from 1000,
#: 2.97 s dense). The squared loss at small ``lam`` (the penalty's curvature is all that lifts the
#: rank-``n`` product) stays dense: 60 rows at ``lam = 1e-4 n`` took 6.1 s from 500 coordinates on
#: and 0.93 s dense, and 100 x 40 or 120 x 60 rows with 128 gates 1.4-1.5x longer from 1000.
FACE_CG_ROWS_MIN = 1000
#: Conjugate-gradient iterations per face-Newton step.
FACE_CG_MAX = 1000
#: Vector output: face Hessians up to this size are formed by one product and a mask.
FACE_DENSE_SMALL = 100
#: Vector output with a coupled loss (softmax cross-entropy): face Newton systems with more
#: coordinates than this are solved by conjugate gradients preconditioned with the exact
#: per-output diagonal blocks of the Hessian (:func:`_face_newton_outputs`) instead of being formed
#: whole; the forming costs ``n m^2`` flops, the blocks ``n m^2 / c``.
FACE_OUTPUT_PCG_MIN = 400
#: Conjugate-gradient iterations of :func:`_face_newton_outputs` before the dense system is formed.
FACE_OUTPUT_PCG_MAX = 60
#: The conjugate-gradient products of a Newton step whose forcing term (relative residual) is at
#: least HV32_RTOL read a float32 copy of the face design (made once per face change): the
#: products are memory-bound GEMVs, and float32 rounding (1e-7) is far below such a forcing term.
#: Tighter steps (near a face optimum) use float64. Digits (gate seeds 0-3, alternated pairs):
#: 15.4 -> 13.9 s and 21.0 -> 17.5 s for two fits each, with 1-13 % more products.
HV32 = True
HV32_RTOL = 1e-5
#: Conjugate gradients of a face Newton step (vector output) start from the part of the last
#: step that its blocked blocks did not take, projected on the new faces, when that start's
#: residual is below the right-hand side's. Digits (gate seeds 0-3, two alternated runs): 4-21 %
#: fewer products, up to 16 fewer Newton steps, 31.1 -> 28.2 s for the four fits; 18 smaller
#: vector fits unchanged (59.1 vs 60.7 s). Conjugate gradients on more faces
#: (FACE_OUTPUT_PCG_MIN 100 or 200 instead of 400) gained nothing with it (digits seeds 0-3).
PCG_WARM = True
#: How a barrier iterate's rows are assigned to faces (see :func:`polish_on_faces`).
FACE_RULE = "absolute"
#: Armijo constant of the backtracking line search.
ARMIJO = 1e-4
#: Largest forcing term of the conjugate-gradient face Newton steps of the active set
#: (:func:`_face_newton_outputs`, :func:`_face_newton_cg`): a step's relative residual is
#: ``max(1e-12, min(AS_CG_RTOL, ||g|| / ||g_0||))``, loose while the gradient is large (most
#: early steps are cut short by the ratio test anyway), tight near the face optimum. Measured on
#: digits (``ConvexReLUClassifier(lam=0.01 n, n_gates=100)``, gate seeds 0-3, interleaved): 1e-2
#: took 26.5 s against 29.5 s for 1e-3 (673 against 697 Newton steps); 3e-2 and 1e-1 were
#: slower than 1e-2 (more Newton steps); four 300-row subsamples with 20 gates 4.33 s against
#: 4.60 s. Fits with dense face systems (breast cancer, wine, iris) do not use it.
AS_CG_RTOL = 1e-2


def barrier_bytes(n: int, d: int, k: int, c: int = 1) -> int:
    """Approximate bytes held by one restricted barrier solve with ``k`` blocks: the dense
    Newton system and its ``n x kd`` factor when :func:`_dense_newton` forms them, else the
    ``d x d`` blocks of the preconditioner; the ``n x kd`` reduced design of Newton on the
    faces; the row products ``x_r x_r^T`` and the ``n x k`` slacks and weights."""
    kd = k * d
    newton = 3 * n * kd + 2 * kd * kd if _dense_newton(n, d, k, c) else 3 * k * d * d
    return 8 * (newton + n * kd + n * d * d + 12 * n * k + 2 * n * c)


@dataclass
class BarrierResult:
    """Result of :func:`solve_restricted_barrier`.

    Attributes
    ----------
    U : ndarray (d, k)
        Blocks at the last iterate (strictly inside their cones).
    rho : ndarray (n, k)
        Cone multipliers ``mu / slack`` (positive).
    mu : float
        Last barrier parameter.
    newton : int
        Newton steps taken.
    status : str
        ``"solved"`` (``nu mu`` below the target), ``"max_iterations"`` or ``"stalled"``.
    """

    U: np.ndarray
    rho: np.ndarray
    mu: float
    newton: int
    status: str


class _Blocks:
    """Index maps and fixed data of a restricted problem."""

    def __init__(self, Xa, M, S, cols, outs, c, XX):
        p = M.shape[1]
        self.Xa = Xa
        self.n, self.d = Xa.shape
        self.cols = np.asarray(cols, dtype=np.intp)
        self.outs = np.asarray(outs, dtype=np.intp)
        self.k = self.cols.size
        self.c = c
        pat = self.cols % p
        self.sign = np.where(self.cols < p, 1.0, -1.0)
        self.Mb = M[:, pat]  # n x k, pattern masks
        self.Sb = S[:, pat]  # n x k, cone signs
        self.E = np.zeros((self.k, c))
        self.E[np.arange(self.k), self.outs] = 1.0
        self.XX = XX  # n x d^2 row outer products (shared)
        self._xxu = None

    def xx_upper(self):
        """The upper-triangle columns of :attr:`XX` (``n x d (d + 1) / 2``), formed once."""
        if self._xxu is None:
            iu = np.triu_indices(self.d)
            self._xxu = np.ascontiguousarray(self.XX[:, iu[0] * self.d + iu[1]])
        return self._xxu

    def images(self, U):
        """``X_a U`` (n x k), the slacks (n x k) and the prediction ``Z`` (n x c)."""
        XU = self.Xa @ U
        slack = self.Sb * XU
        Z = (self.Mb * self.sign * XU) @ self.E
        return XU, slack, Z


def _psi(r, mu, lam):
    """Smoothed norm ``psi_mu(r)``, its derivative and ``psi'(r) / r``, ``psi''(r)``.

    ``lam^2`` and ``mu^2`` are formed only while they are normal floats; below (``lam`` or
    ``mu`` under about ``1.5e-154``) :func:`_psi_scaled` evaluates the same function.
    """
    if lam < _SQRT_TINY or mu < _SQRT_TINY:
        return _psi_scaled(r, mu, lam)
    q = np.sqrt(mu * mu + (lam * r) ** 2)
    t = (mu + q) / lam
    val = lam * t - mu * np.log(2.0 * mu * (mu + q) / lam**2)
    d1 = lam * lam * r / (mu + q)
    a = lam * lam / (mu + q)  # psi'(r) / r
    b = lam * lam * mu / (q * (mu + q))  # psi''(r)
    return val, d1, a, b


def _psi_scaled(r, mu, lam):
    """:func:`_psi` through ``m = mu / lam`` and ``Q = q / lam = sqrt(m^2 + r^2)`` (``t = m + Q``)::

        psi = lam t - mu (log 2 + log m + log t),   psi' = lam r / t,   psi'' = lam m / (Q t),

    with no ``lam^2`` or ``mu^2``, which are zero in floating point for tiny ``lam`` or ``mu``.
    """
    m = mu / lam
    Q = np.hypot(m, r)
    t = m + Q
    val = lam * t - mu * (_LOG2 + np.log(m) + np.log(t))
    a = lam / t  # psi'(r) / r
    d1 = a * r
    b = a * (m / Q)  # psi''(r)
    return val, d1, a, b


def _barrier_value(kernel, lam, mu, U, slack, Z):
    if np.any(slack <= 0.0):
        return np.inf
    r = np.linalg.norm(U, axis=0)
    val, _, _, _ = _psi(r, mu, lam)
    return kernel.value(Z) + float(val.sum()) - mu * float(np.log(slack).sum())


def barrier_objective(Xa, M, S, kernel, lam, cols, outs, U, mu) -> float:
    """``Phi_mu(U)`` of the restricted program (``inf`` outside the cones)."""
    c = kernel.y64.shape[1]
    B = _Blocks(Xa, M, S, cols, outs, c, None)
    _, slack, Z = B.images(U)
    return _barrier_value(kernel, lam, mu, U, slack, Z)


def solve_restricted_barrier(
    Xa: np.ndarray,
    M: np.ndarray,
    S: np.ndarray,
    kernel: SmoothKernel,
    lam: float,
    cols: np.ndarray,
    outs: np.ndarray,
    U0: np.ndarray,
    *,
    gap_target: float,
    mu0: float | None = None,
    max_newton: int = 500,
    XX: np.ndarray | None = None,
) -> BarrierResult:
    """Minimise the restricted C-ReLU program by a long-step barrier method.

    Parameters
    ----------
    Xa : ndarray (n, d)
        Design, float64.
    M, S : ndarray (n, p)
        Pattern mask (0/1) and cone signs ``2 M - 1`` as float64.
    kernel : SmoothKernel
        The loss, float64, with ``y`` of shape ``(n, c)``.
    lam : float
    cols, outs : ndarray of int (k,)
        Block columns in ``[0, 2p)`` (``< p``: ``v`` blocks) and their outputs in ``[0, c)``.
    U0 : ndarray (d, k)
        Starting point, strictly inside every cone (``Xt_i u_j > 0`` on every row).
    gap_target : float
        Stop once ``nu * mu`` (the duality gap of an exact centre; ``nu`` counts the barrier
        terms) is below this absolute value.
    mu0 : float, optional
        First barrier parameter (default: from the size of the gradient at ``U0``).
    max_newton : int
        Cap on Newton steps.
    XX : ndarray (n, d*d), optional
        Row outer products ``x_r x_r^T`` (formed here when absent).

    Returns
    -------
    BarrierResult
    """
    n, d = Xa.shape
    c = kernel.y64.shape[1]
    if XX is None:
        XX = (Xa[:, :, None] * Xa[:, None, :]).reshape(n, d * d)
    B = _Blocks(Xa, M, S, cols, outs, c, XX)
    k = B.k
    kd = k * d
    U = np.array(U0, dtype=np.float64, copy=True)
    nu = float(k * (n + 2))
    XU, slack, Z = B.images(U)
    if np.any(slack <= 0):
        raise ValueError("the starting point must be strictly inside every cone")
    if mu0 is None:
        mu0 = MU0_REL * max(abs(kernel.value(Z)), 1e-300) / nu
    mu0 = max(float(mu0), 10.0 * gap_target / nu)
    mu = float(mu0)
    sigma = MU_DECREASE
    newton = 0
    status = "max_iterations"
    eye_d = np.eye(d)
    Phi = _barrier_value(kernel, lam, mu, U, slack, Z)
    while newton < max_newton:
        # ------------------------------------------------------------ centring at mu
        centred = False
        stage_start = newton
        dec = np.inf
        for _ in range(MAX_CENTERING):
            if newton >= max_newton:
                break
            g = kernel.grad(Z)  # n x c
            r = np.linalg.norm(U, axis=0)
            _, d1, a, b = _psi(r, mu, lam)
            inv_s = 1.0 / slack
            # gradient: A_j^T g_k + psi' u/r - mu Xt^T (1/s)
            W1 = B.Mb * B.sign * g[:, B.outs] - mu * B.Sb * inv_s
            grad = Xa.T @ W1 + a * U  # d x k   (psi'(r) u / r = a u)
            # cone barrier: mu X^T diag(1/s^2) X per block; penalty: a I + (b - a) u u^T / r^2
            Wc = mu * (inv_s * inv_s)
            rs = np.maximum(r, np.finfo(float).tiny)
            uh = U / rs
            gvec = grad.T.reshape(kd)
            if _dense_newton(n, d, k, c):
                Hp = a[:, None, None] * eye_d + ((b - a)[:, None, None] * np.einsum("dk,ek->kde", uh, uh))
                H = _loss_hessian(B, kernel, Z)
                Hblk = (Wc.T @ XX).reshape(k, d, d) + Hp
                for j in range(k):
                    sl = slice(j * d, (j + 1) * d)
                    H[sl, sl] += Hblk[j]
                try:
                    cf = sla.cho_factor(H, lower=True, check_finite=False)
                    step = -sla.cho_solve(cf, gvec, check_finite=False)
                except (np.linalg.LinAlgError, ValueError):
                    reg = 1e-12 * max(float(np.abs(np.diag(H)).max(initial=1.0)), 1.0)
                    step = -np.linalg.solve(H + reg * np.eye(kd), gvec)
            else:
                step = -_newton_cg(B, kernel, Z, Wc, (a, b - a, uh), grad).T.reshape(kd)
            newton += 1
            dec = -float(gvec @ step)  # Newton decrement squared
            dU = step.reshape(k, d).T
            dXU = Xa @ dU
            dslack = B.Sb * dXU
            neg = dslack < 0
            amax = float(np.min(-slack[neg] / dslack[neg])) if neg.any() else np.inf
            alpha = min(1.0, BOUNDARY * amax)
            dZ = (B.Mb * B.sign * dXU) @ B.E
            accepted = False
            for _ls in range(60):
                U_t = U + alpha * dU
                slack_t = slack + alpha * dslack
                Z_t = Z + alpha * dZ
                Phi_t = _barrier_value(kernel, lam, mu, U_t, slack_t, Z_t)
                if Phi_t <= Phi - ARMIJO * alpha * dec or (dec < 1e-13 * abs(Phi)
                                                             and Phi_t <= Phi + 1e-13 * abs(Phi)):
                    accepted = True
                    break
                alpha *= 0.5
            if not accepted:
                # rounding floor: the decrease is below what Phi can resolve
                break
            U, slack, Z, Phi = U_t, slack_t, Z_t, Phi_t

            if dec <= (1e-3 if nu * mu <= 10 * gap_target else 0.1) or dec <= 1e-14 * abs(Phi):
                centred = True
                break
        logger.debug("mu=%.3e centred=%s newton=%d Phi=%.12g dec=%.3e", mu, centred, newton, Phi, dec)
        if nu * mu <= gap_target:
            status = "solved"
            break
        if not centred and newton >= max_newton:
            break
        # long steps: grow the decrease while centring stays cheap
        steps = newton - stage_start
        sigma = min(sigma * 4.0, MAX_DECREASE) if steps <= 3 else max(MU_DECREASE, sigma / 2.0)
        mu = max(mu / sigma, 0.5 * gap_target / nu)
        # re-centre Phi at the new mu
        Phi = _barrier_value(kernel, lam, mu, U, slack, Z)
    # multipliers at the last iterate (one more refresh of the slacks keeps them exact)
    XU, slack, Z = B.images(U)
    rho = mu / np.maximum(slack, np.finfo(float).tiny)
    logger.debug("barrier: k=%d, %d Newton steps, mu=%.2e (%s)", k, newton, mu, status)
    return BarrierResult(U=U, rho=rho, mu=mu, newton=newton, status=status)


def _dense_newton(n: int, d: int, k: int, c: int) -> bool:
    """Whether a Newton step is cheaper formed and factorised than by conjugate gradients.

    Dense: the Gram ``A^T H A`` and its Cholesky factor, ``n (kd)^2 + (kd)^3 / 3`` flops (the
    cross-entropy part adds a second Gram). Conjugate gradients: the ``d x d`` diagonal blocks
    (``n k d^2``) and about :data:`CG_TYPICAL` products of two ``n x d x k`` GEMMs each, plus
    their Python overhead (:data:`CG_OVERHEAD`).
    Measured on breast cancer (398 x 31, 16-28 blocks): conjugate gradients 1.4x-2.4x faster
    at the same Newton-step count."""
    kd = k * d
    if kd > DENSE_MAX:
        return False
    dense = n * kd * kd * (2 if c > 1 else 1) + kd ** 3 / 3.0
    cg = n * k * d * d + CG_TYPICAL * (4.0 * n * kd + CG_OVERHEAD)
    return dense <= cg


def _newton_cg(B: _Blocks, kernel: SmoothKernel, Z: np.ndarray, Wc: np.ndarray, pen: tuple,
               rhs: np.ndarray) -> np.ndarray:
    """Solve ``H x = rhs`` (``d x k``) for the barrier Hessian by preconditioned conjugate
    gradients, never forming ``H``: products cost two ``n x d x k`` GEMMs; the preconditioner
    is the exact ``d x d`` diagonal block of every block (loss, cone barrier and penalty).

    ``pen = (a, b - a, uh)`` is the penalty curvature ``a I + (b - a) uh uh^T`` of every block
    (``a, b`` of :func:`_psi`, ``uh = u / ||u||``), applied in ``O(kd)`` as a rank-one update."""
    Xa, d, k = B.Xa, B.d, B.k
    D, V = kernel.hessian_parts(Z)
    coef = B.Mb * B.sign
    pa, pba, uh = pen

    def hv(P: np.ndarray) -> np.ndarray:
        XP = Xa @ P  # n x k
        dZ = (coef * XP) @ B.E  # n x c
        HdZ = D * dZ
        if V is not None:
            HdZ -= V * np.einsum("nc,nc->n", V, dZ)[:, None]
        out = Xa.T @ (coef * HdZ[:, B.outs] + Wc * XP)
        return out + pa * P + (pba * np.einsum("dk,dk->k", uh, P)) * uh

    # diagonal blocks: X^T diag(coef^2 (D_k - V_k^2) + Wc) X + Hp, from the upper triangle of
    # the row products x_r x_r^T (half the flops of the full d x d products)
    wdiag = (coef * coef) * D[:, B.outs] + Wc
    if V is not None:
        wdiag = wdiag - (coef * coef) * V[:, B.outs] ** 2
    iu = np.triu_indices(d)
    Pblk = np.empty((k, d, d))
    Pblk[:, iu[0], iu[1]] = wdiag.T @ B.xx_upper()
    Pblk[:, iu[1], iu[0]] = Pblk[:, iu[0], iu[1]]
    Pblk += pba[:, None, None] * (uh.T[:, :, None] * uh.T[:, None, :])
    Pblk[:, np.arange(d), np.arange(d)] += pa[:, None]
    Pblk[:, np.arange(d), np.arange(d)] += 1e-14 * np.abs(Pblk).max(initial=1.0)
    Pinv = np.linalg.inv(Pblk)  # k small d x d blocks, inverted once per Newton step

    def prec(R: np.ndarray) -> np.ndarray:
        return np.matmul(Pinv, R.T[:, :, None])[:, :, 0].T

    x = np.zeros_like(rhs)
    r = rhs.copy()
    zr = prec(r)
    pdir = zr.copy()
    rz = float(np.vdot(r, zr))
    r0 = np.sqrt(float(np.vdot(rhs, rhs)))
    for _ in range(CG_MAX):
        Hpd = hv(pdir)
        alpha = rz / max(float(np.vdot(pdir, Hpd)), np.finfo(float).tiny)
        x += alpha * pdir
        r -= alpha * Hpd
        if np.sqrt(float(np.vdot(r, r))) <= CG_TOL * r0:
            break
        zr = prec(r)
        rz_new = float(np.vdot(r, zr))
        pdir = zr + (rz_new / rz) * pdir
        rz = rz_new
    return x


#: LAPACK's Cholesky solve, called directly in the preconditioner (about 10 solves per conjugate-
#: gradient iteration on digits, where SciPy's cho_solve wrapper cost more than the solve).
_potrs = sla.get_lapack_funcs("potrs", (np.zeros(1),))


def _gram(A: np.ndarray) -> np.ndarray:
    """``A^T A``, full matrix. NumPy's matmul recognises ``A.T @ A`` and calls the symmetric
    rank-k update itself (half the flops of a GEMM, mirrored in C): measured faster than calling
    ``dsyrk`` and mirroring the triangle in Python (1.2 ms against 2.6 ms at ``1257 x 200``)."""
    if A.shape[0] == 0 or A.shape[1] == 0:
        return np.zeros((A.shape[1], A.shape[1]))
    if not A.flags.f_contiguous:  # a Fortran-ordered A is read as is (A.T is C-contiguous)
        A = np.ascontiguousarray(A)
    return A.T @ A


def _loss_hessian(B: _Blocks, kernel: SmoothKernel, Z: np.ndarray) -> np.ndarray:
    """``A^T H A`` for the restricted blocks; ``H = diag(D) - v v^T`` per sample."""
    n, d, k = B.n, B.d, B.k
    D, V = kernel.hessian_parts(Z)  # (n, c), (n, c) or None
    coef = B.Mb * B.sign  # n x k
    if B.c == 1:
        w = np.sqrt(np.maximum(D[:, 0], 0.0))
        H = _gram(((coef * w[:, None])[:, :, None] * B.Xa[:, None, :]).reshape(n, k * d))
    else:
        H = np.zeros((k * d, k * d))
        for kk in range(B.c):  # the diagonal part couples blocks of the same output only
            idx = np.flatnonzero(B.outs == kk)
            if idx.size == 0:
                continue
            w = np.sqrt(np.maximum(D[:, kk], 0.0))
            Hk = _gram(((coef[:, idx] * w[:, None])[:, :, None] * B.Xa[:, None, :]).reshape(n, idx.size * d))
            cols = (idx[:, None] * d + np.arange(d)[None, :]).ravel()
            H[np.ix_(cols, cols)] += Hk
    if V is not None:
        H -= _gram(((coef * V[:, B.outs])[:, :, None] * B.Xa[:, None, :]).reshape(n, k * d))
    return H


def _penalty_hessian_entries(offs, dims, live, w, nr, lam):
    """Rows, columns and values of the Hessian of ``lam sum_j ||w_j||`` in the face coordinates:
    ``(lam / ||w_j||) (I - wh_j wh_j^T)`` on the diagonal block of every live block ``j``
    (``wh_j = w_j / ||w_j||``), as flat index arrays (``sum_j dims_j^2`` entries, no duplicates)."""
    bl = np.flatnonzero(live & (dims > 0))
    dj = dims[bl]
    sq = dj * dj
    if not sq.sum():
        e = np.zeros(0, dtype=np.intp)
        return e, e, np.zeros(0)
    pb = np.repeat(np.arange(bl.size), sq)  # pair -> position in bl
    within = np.arange(int(sq.sum())) - np.repeat(np.cumsum(sq) - sq, sq)
    dpb = dj[pb]
    a, b = within // dpb, within % dpb
    o = offs[bl][pb]
    rows, cols = o + a, o + b
    nrb = nr[bl][pb]
    vals = (lam / nrb) * ((a == b) - (w[rows] / nrb) * (w[cols] / nrb))
    return rows, cols, vals


def _output_columns(outs_m: np.ndarray, c: int) -> list[tuple[int, slice | np.ndarray]]:
    """``(k, columns)`` for every output ``k`` that has coordinates: a slice when the columns of
    output ``k`` are contiguous (the active set orders its blocks by output, so ``AN[:, cols]``
    is a view instead of an ``n x m_k`` copy), else their index array."""
    groups = []
    for kk in range(c):
        idx = np.flatnonzero(outs_m == kk)
        if idx.size == 0:
            continue
        if int(idx[-1]) - int(idx[0]) + 1 == idx.size:
            groups.append((kk, slice(int(idx[0]), int(idx[-1]) + 1)))
        else:
            groups.append((kk, idx))
    return groups


def _face_cg(m: int, n: int, quadratic: bool = False) -> bool:
    """Whether a face-Newton system of ``m`` coordinates on ``n`` rows is solved by conjugate
    gradients (FACE_DENSE_MAX; for a loss that is not quadratic also FACE_CG_ROWS_RATIO,
    FACE_CG_ROWS_MIN) rather than formed and factored."""
    return m > FACE_DENSE_MAX or (not quadratic and m >= FACE_CG_ROWS_MIN and m > FACE_CG_ROWS_RATIO * n)


def _face_newton_dense(AN, D, V, outs_m, c, offs, dims, live, w, nr, lam, grad, damp=0.0):
    """Newton step of the face problem from the formed Hessian (None when it is singular);
    ``damp`` adds a multiple of the identity (Levenberg-Marquardt)."""
    m = AN.shape[1]
    if c == 1:
        H = _gram(AN * np.sqrt(np.maximum(D[:, 0], 0.0))[:, None])
    elif m <= FACE_DENSE_SMALL:
        # small systems: one product, then the couplings between outputs (zero in the diagonal
        # part) are masked away; c products and fancy-indexed updates cost more in overhead
        H = _gram(AN * np.sqrt(np.maximum(D[:, outs_m], 0.0)))
        H *= outs_m[:, None] == outs_m[None, :]
    else:
        H = np.zeros((m, m))
        for kk, idx in _output_columns(outs_m, c):
            Aw = AN[:, idx] * np.sqrt(np.maximum(D[:, kk], 0.0))[:, None]
            H[(idx, idx) if isinstance(idx, slice) else np.ix_(idx, idx)] += _gram(Aw)
    if V is not None:
        H -= _gram(AN * V[:, outs_m])
    # penalty curvature (lam / ||w_j||) (I - wh wh^T) of every live block: only the entries of
    # the diagonal blocks are touched (sum_j dim_j^2 of them, not m^2)
    rows, cols, vals = _penalty_hessian_entries(offs, dims, live, w, nr, lam)
    H[rows, cols] += vals
    H[np.diag_indices(m)] += 1e-14 * max(float(np.abs(np.diag(H)).max()), _TINY) + damp
    try:
        return -sla.cho_solve(sla.cho_factor(H, lower=True, check_finite=False), grad, check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        return None


def _pcg(hv, prec, rhs: np.ndarray, rtol: float, max_iter: int, x0: np.ndarray | None = None
         ) -> tuple[np.ndarray, str]:
    """Preconditioned conjugate gradients for ``H x = rhs``, from ``x0`` when its residual is
    below ``||rhs||`` (else from zero). Returns ``(x, status)``: ``"converged"`` (residual
    ``<= rtol ||rhs||``), ``"curvature"`` (a direction without positive curvature; ``x`` is the
    last iterate) or ``"max_iter"``."""
    x = np.zeros_like(rhs)
    r = np.array(rhs, dtype=np.float64)
    r0 = float(np.linalg.norm(r))
    if x0 is not None and np.any(x0):
        r_x0 = r - hv(x0)
        if float(np.linalg.norm(r_x0)) < r0:
            x = np.array(x0, dtype=np.float64)
            r = r_x0
            if float(np.linalg.norm(r)) <= rtol * r0:
                return x, "converged"
    z = prec(r)
    d_ = z.copy()
    rz = float(r @ z)
    for _ in range(max_iter):
        Hd = hv(d_)
        curv = float(d_ @ Hd)
        if not curv > 0.0:
            return x, "curvature"
        a = rz / curv
        x += a * d_
        r -= a * Hd
        if float(np.linalg.norm(r)) <= rtol * r0:
            return x, "converged"
        z = prec(r)
        rz_new = float(r @ z)
        d_ = z + (rz_new / rz) * d_
        rz = rz_new
    return x, "max_iter"


def _face_newton_cg(AN, D, V, outs_m, c, offs, dims, live, w, nr, lam, grad, *, rtol, damp=0.0):
    """Newton step of the face problem by preconditioned conjugate gradients (matrix-free).

    Products cost two ``n x m`` GEMVs; the preconditioner is the exact diagonal block of every
    block (its loss part ``AN_j^T diag(D - V^2) AN_j`` and its penalty curvature). ``rtol``
    is the forcing term (relative residual), small near the solution so that the Newton
    iteration keeps its fast local convergence. Returns ``(step, converged)``."""
    n, m = AN.shape
    k = dims.size
    blk = np.repeat(np.arange(k), dims)
    nrb = np.maximum(nr[blk], np.finfo(float).tiny)
    wh = w / nrb
    pen = lam / nrb
    Dm = D[:, outs_m]  # n x m: loss weights of each coordinate's output
    Vm = V[:, outs_m] if V is not None else None

    groups = [(kk, idx, AN[:, idx]) for kk, idx in _output_columns(outs_m, c)]

    def hv(v: np.ndarray) -> np.ndarray:
        dZ = np.zeros((n, c))
        for kk, idx, Ak in groups:
            dZ[:, kk] = Ak @ v[idx]
        HdZ = D * dZ
        if V is not None:
            HdZ -= V * np.einsum("nc,nc->n", V, dZ)[:, None]
        out = np.empty(m)
        for kk, idx, Ak in groups:
            out[idx] = HdZ[:, kk] @ Ak
        proj = np.bincount(blk, wh * v, minlength=k)[blk]
        return out + pen * (v - wh * proj) + damp * v

    wdiag = Dm if Vm is None else Dm - Vm * Vm
    Pinv = []
    for j in range(k):
        sl = slice(offs[j], offs[j + 1])
        if dims[j] == 0:
            Pinv.append(None)
            continue
        Aj = AN[:, sl]
        Pj = (Aj * wdiag[:, sl]).T @ Aj
        if live[j]:
            Pj += pen[offs[j]] * (np.eye(dims[j]) - np.outer(wh[sl], wh[sl]))
        Pj[np.diag_indices(dims[j])] += 1e-14 * max(float(np.abs(np.diag(Pj)).max()), _TINY) + damp
        try:
            Pinv.append(np.linalg.inv(Pj))
        except np.linalg.LinAlgError:
            return np.zeros(m), False

    def prec(r: np.ndarray) -> np.ndarray:
        z = np.empty_like(r)
        for j in range(k):
            sl = slice(offs[j], offs[j + 1])
            if Pinv[j] is not None:
                z[sl] = Pinv[j] @ r[sl]
        return z

    x, status = _pcg(hv, prec, -grad, rtol, FACE_CG_MAX)
    return x, (bool(np.any(x)) if status == "curvature" else True)


def _face_newton_outputs(AN, D, V, outs_m, c, offs, dims, live, w, nr, lam, grad, *, rtol, damp=0.0,
                         max_iter=FACE_OUTPUT_PCG_MAX, AN32=None, x0=None):
    """Newton step of the face problem by conjugate gradients preconditioned with the exact
    diagonal blocks of the Hessian, one per output (vector output).

    The Hessian of the face problem is ``A^T (diag(D) - v v^T)_rows A`` plus the penalty curvature
    (block diagonal). Grouping coordinates by output, its diagonal block of output ``k`` is
    ``A_k^T diag(D_k - V_k^2) A_k`` plus the penalty curvature of the blocks of that output: it
    is formed and factored (``n m_k^2 + m_k^3 / 3`` flops); only the coupling between outputs
    (``-A_k^T diag(V_k V_l) A_l``) is left to the iteration, whose products cost ``4 n m``.
    Without coupling (``V`` is None) the preconditioner is the Hessian and one iteration solves.
    Returns ``(step, converged)``; not converged after ``max_iter`` iterations, or a
    preconditioner block that is not positive definite, lets the caller form the whole system.
    ``AN32``: a float32 copy of ``AN``, used for the products when ``rtol >= HV32_RTOL``.
    ``x0``: a start for the conjugate gradients (see :func:`_pcg`)."""
    n, m = AN.shape
    k = dims.size
    blk = np.repeat(np.arange(k), dims)
    nrb = np.maximum(nr[blk], np.finfo(float).tiny)
    wh = np.where(live[blk], w / nrb, 0.0)
    pen = np.where(live[blk], lam / nrb, 0.0)
    groups = []
    for kk, idx in _output_columns(outs_m, c):
        Ak = AN[:, idx]
        wk = D[:, kk] - (V[:, kk] ** 2 if V is not None else 0.0)
        Pk = _gram(Ak * np.sqrt(np.maximum(wk, 0.0))[:, None])
        bk = blk[idx]
        mk = bk.size
        # penalty curvature (lam / ||w_j||) (I - wh wh^T) of every block of this output
        Pk[np.diag_indices(mk)] += pen[idx]
        same = bk[:, None] == bk[None, :]
        Pk -= same * (pen[idx][:, None] * np.outer(wh[idx], wh[idx]))
        Pk[np.diag_indices(mk)] += 1e-14 * max(float(np.abs(np.diag(Pk)).max()), _TINY) + damp
        try:
            fac = sla.cho_factor(Pk, lower=True, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return np.zeros(m), False
        groups.append((kk, idx, Ak, fac))

    lo = AN32 is not None and rtol >= HV32_RTOL
    prod = [(kk, idx, AN32[:, idx] if lo else Ak) for kk, idx, Ak, _ in groups]
    cast = np.float32 if lo else np.float64

    def hv(v: np.ndarray) -> np.ndarray:
        dZ = np.zeros((n, c))
        vc = v.astype(cast, copy=False)
        for kk, idx, Ak in prod:
            dZ[:, kk] = Ak @ vc[idx]
        HdZ = D * dZ
        if V is not None:
            HdZ -= V * np.einsum("nc,nc->n", V, dZ)[:, None]
        out = np.empty(m)
        HdZc = HdZ.astype(cast, copy=False)
        for kk, idx, Ak in prod:
            out[idx] = HdZc[:, kk] @ Ak
        proj = np.bincount(blk, wh * v, minlength=k)[blk]
        return out + pen * (v - wh * proj) + damp * v

    def prec(r: np.ndarray) -> np.ndarray:
        z = np.empty_like(r)
        for _, idx, _, fac in groups:
            z[idx] = _potrs(fac[0], r[idx], lower=1)[0]  # LAPACK directly: no wrapper checks
        return z

    rhs = -np.asarray(grad, dtype=np.float64)
    if not np.any(rhs):
        return np.zeros(m), True
    if V is None:
        return prec(rhs), True  # the preconditioner is the Hessian
    x, status = _pcg(hv, prec, rhs, rtol, max_iter, x0=x0)
    return x, status == "converged"


@dataclass
class FacePolishResult:
    """Result of :func:`polish_on_faces`: the polished blocks, Newton steps and whether the
    Newton iteration converged on the identified faces with every cone row feasible."""

    U: np.ndarray
    newton: int
    converged: bool


def polish_on_faces(
    Xa: np.ndarray,
    M: np.ndarray,
    S: np.ndarray,
    kernel: SmoothKernel,
    lam: float,
    cols: np.ndarray,
    outs: np.ndarray,
    U: np.ndarray,
    mu: float,
    *,
    max_newton: int = 30,
) -> FacePolishResult:
    """Newton's method on the faces of the cones that a barrier iterate identifies.

    Near the optimum every non-zero block ``u_j`` lies on a face ``{u : Xt_T u = 0}`` of its
    cone, ``T`` the rows whose slack is below ``sqrt(mu)`` (where ``rho = mu / slack`` exceeds
    the slack). On the faces the program is smooth in the reduced variables ``u_j = N_j w_j``
    (``N_j`` an orthonormal null-space basis), ``min h(sum_j A_j N_j w_j) + lam sum_j ||w_j||``,
    and Newton's method converges quadratically. Rows that the polished point violates join
    their face and the step is redone. The caller certifies the result.
    """
    n, d = Xa.shape
    p = M.shape[1]
    c = kernel.y64.shape[1]
    U = np.array(U, dtype=np.float64, copy=True)
    k = U.shape[1]
    pat = np.asarray(cols) % p
    sign = np.where(np.asarray(cols) < p, 1.0, -1.0)
    coef = M[:, pat] * sign
    outs = np.asarray(outs)
    slack = S[:, pat] * (Xa @ U)
    # row r of block j is on the face when its normalised slack s_r / (|x_r| |u_j|) is below
    # its normalised multiplier rho_r |x_r| / lam, with rho_r s_r = mu on the central path:
    # s_r / (|x_r| |u_j|) < sqrt(mu / (lam |u_j|))
    rn = np.maximum(np.linalg.norm(Xa, axis=1), np.finfo(float).tiny)
    un = np.maximum(np.linalg.norm(U, axis=0), np.finfo(float).tiny)
    if FACE_RULE == "normalised":
        tight = slack / (rn[:, None] * un[None, :]) <= np.sqrt(max(mu, 0.0) / (lam * un))[None, :]
    else:
        tight = slack <= np.sqrt(max(mu, 0.0))
    newton = 0
    # blocks fixed at zero (their face collapsed); with a rank-deficient design even the face
    # of every row keeps the null space of X, so "all rows tight" does not zero a block by itself
    zeroed = np.zeros(k, dtype=bool)
    for _attempt in range(MAX_FACE_CHANGES):
        bases = []
        for j in range(k):
            if zeroed[j]:
                bases.append(np.zeros((d, 0)))
                continue
            R = S[tight[:, j], pat[j], None] * Xa[tight[:, j]]
            if R.shape[0] == 0:
                bases.append(np.eye(d))
                continue
            _, sv, Vt = np.linalg.svd(R, full_matrices=R.shape[0] < d)  # Vt is d x d either way
            rank = int((sv > 1e-10 * max(float(sv[0]), np.finfo(float).tiny)).sum())
            bases.append(Vt[rank:].T)
        dims = np.array([b.shape[1] for b in bases])
        if np.any(dims == 0):  # a block whose face is {0}: it is zero on this face
            gone = dims == 0
            U[:, gone] = 0.0
        offs = np.concatenate([[0], np.cumsum(dims)])
        m = int(offs[-1])
        if m == 0:
            return FacePolishResult(U=np.zeros_like(U), newton=newton, converged=True)
        # reduced design, one column group per block
        AN = np.empty((n, m))
        for j in range(k):
            AN[:, offs[j]:offs[j + 1]] = coef[:, j, None] * (Xa @ bases[j])
        w = np.concatenate([bases[j].T @ U[:, j] for j in range(k)])
        blk = np.repeat(np.arange(k), dims)
        outs_m = outs[blk]
        # the reduced design split by output: Z[:, kk] = AN[:, idx_kk] @ w[idx_kk], one GEMV each
        groups = [(kk, idx, np.ascontiguousarray(AN[:, idx]))
                  for kk in range(c) if (idx := np.flatnonzero(outs_m == kk)).size]

        def predict(wv, groups=groups):
            Zp = np.zeros((n, c))
            for kk, idx, Ak in groups:
                Zp[:, kk] = Ak @ wv[idx]
            return Zp

        def fval(wv, blk=blk, predict=predict):
            nr = np.sqrt(np.bincount(blk, wv * wv, minlength=k))
            return kernel.value(predict(wv)) + lam * float(nr.sum()), nr

        F, nr = fval(w)
        ok = True
        live = dims > 0
        g0 = None
        for _ in range(max_newton):
            if np.any(nr[live] <= 1e-9 * max(float(nr.max(initial=0.0)), np.finfo(float).tiny)):
                ok = False  # a block collapses to zero: not a smooth point of this face
                break
            # a block whose face leaves it no effect on the prediction (every row of its pattern
            # tight) only adds penalty: it is zero at the optimum of this face
            pred = np.zeros(k)
            lv = np.flatnonzero(live)
            pred[lv] = np.linalg.norm(np.add.reduceat(AN * w, offs[lv], axis=1)[:, :lv.size] if lv.size
                                      else np.zeros((n, 0)), axis=0)
            idle = live & (pred <= 1e-10 * max(float(pred.max(initial=0.0)), np.finfo(float).tiny))
            if idle.any():
                nr = np.where(idle, 0.0, nr)
                ok = False
                break
            Z = predict(w)
            g = kernel.grad(Z)
            grad = np.einsum("nm,nm->m", AN, g[:, outs_m]) + lam * w / np.maximum(nr[blk], np.finfo(float).tiny)
            D, V = kernel.hessian_parts(Z)
            if _face_cg(m, AN.shape[0], kernel.loss.quadratic):
                gnorm = float(np.linalg.norm(grad))
                g0 = gnorm if g0 is None else g0
                step, cg_ok = _face_newton_cg(AN, D, V, outs_m, c, offs, dims, live, w, nr, lam, grad,
                                              rtol=max(1e-12, min(1e-3, gnorm / max(g0, np.finfo(float).tiny))))
                if not cg_ok:
                    ok = False
                    break
            else:
                step = _face_newton_dense(AN, D, V, outs_m, c, offs, dims, live, w, nr, lam, grad)
                if step is None:
                    ok = False
                    break
            newton += 1
            dec = -float(grad @ step)
            alpha = 1.0
            accepted = False
            for _ls in range(40):
                F_t, nr_t = fval(w + alpha * step)
                if F_t <= F - ARMIJO * alpha * dec or abs(F_t - F) <= 1e-15 * abs(F):
                    accepted = True
                    break
                alpha *= 0.5
            if not accepted:
                logger.debug("face Newton: no descent along the Newton step (dec=%.3e, F=%.12g)", dec, F)
                break
            w = w + alpha * step
            F, nr = F_t, nr_t
            if dec <= 1e-13 * abs(F):
                break
        if not ok:
            # the collapsing blocks are zero on these faces: fix them at zero and start again
            w_nr = nr / max(float(nr.max(initial=0.0)), np.finfo(float).tiny)
            gone = live & (w_nr <= 1e-6)
            if not gone.any():
                logger.debug("face Newton: a block shrinks without collapsing (attempt %d)", _attempt)
                return FacePolishResult(U=U, newton=newton, converged=False)
            logger.debug("face Newton: %d blocks collapse to zero (attempt %d)", int(gone.sum()), _attempt)
            U = np.column_stack([bases[j] @ w[offs[j]:offs[j + 1]] if dims[j] else np.zeros(d)
                                 for j in range(k)])
            U[:, gone] = 0.0
            tight[:, gone] = True
            zeroed |= gone
            continue
        U_new = np.column_stack([bases[j] @ w[offs[j]:offs[j + 1]] if dims[j] else np.zeros(d)
                                 for j in range(k)])
        slack_new = S[:, pat] * (Xa @ U_new)
        scale = np.abs(Xa @ U_new).max(axis=0, initial=0.0)
        bad = slack_new < -1e-12 * np.maximum(scale, np.finfo(float).tiny)
        if bad.any():
            logger.debug("face Newton: %d rows violated, joining their faces (attempt %d)", int(bad.sum()), _attempt)
            tight |= bad
            continue
        # face multipliers: Xt_T^T rho = c_j + lam u_j / ||u_j||; a negative one means the
        # block wants to leave that row's face (active-set step: drop the most negative row)
        Z = predict(w)
        g = kernel.grad(Z)
        Cj = Xa.T @ (coef * g[:, outs])  # d x k
        nrm = np.linalg.norm(U_new, axis=0)
        dropped = False
        for j in range(k):
            rows = np.flatnonzero(tight[:, j])
            if rows.size == 0 or nrm[j] == 0.0:
                continue
            R = S[rows, pat[j], None] * Xa[rows]
            rhs = Cj[:, j] + lam * U_new[:, j] / nrm[j]
            rho_T = np.linalg.lstsq(R.T, rhs, rcond=None)[0]
            thr = -1e-8 * max(float(np.abs(rho_T).max(initial=0.0)), lam)
            if rho_T.min(initial=0.0) < thr:
                tight[rows[int(np.argmin(rho_T))], j] = False
                dropped = True
        if not dropped:
            return FacePolishResult(U=U_new, newton=newton, converged=True)
        logger.debug("face Newton: rows with negative multipliers leave their faces (attempt %d)", _attempt)
        U = U_new
    return FacePolishResult(U=U, newton=newton, converged=False)


#: Newton steps and face updates (steps that change at least one face) allowed to
#: :func:`solve_restricted_active_set`.
AS_MAX_NEWTON = 400
AS_MAX_CHANGES = 400
#: A row whose slack is below this fraction of the block's largest ``|x_r^T u|`` is on its face.
AS_TIGHT = 1e-11
#: Face changes without a step (degenerate faces) allowed to :func:`solve_restricted_active_set`.
AS_MAX_DEGENERATE = 200
#: A step off the faces is taken when its predicted gain exceeds this fraction of the objective
#: (``AS_GAIN_FINE`` when the working set re-solves a point that did not certify: smaller
#: thresholds from the start were measured to cycle on digits).
AS_GAIN = 1e-12
AS_GAIN_FINE = 1e-14
#: Rows joining a face are folded into its basis by Householder reflections (``O(rk dim)`` per
#: row) when at most this many join at once; otherwise (or when a row is nearly dependent, or
#: rows leave) the basis is recomputed from all the face rows (``O(rk^2 |T|)``, AS_QR_PIVOT).
AS_HOUSEHOLDER_MAX = 4
#: A face basis comes from a pivoted QR of the face rows when every pivot exceeds this fraction of
#: the first; otherwise from their SVD (which decides a numerical rank and keeps the point on its
#: face). The QR costs 0.1-0.2 ms against 0.2-0.7 ms for the SVD at 20-60 rows of 62 columns.
AS_QR_PIVOT = 1e-6
#: Newton on the faces stops when its decrement is at rounding level (``1e-13 |F|``) *and* every
#: block's face gradient is below AS_GRAD_RTOL * lam; otherwise up to AS_EXTRA_NEWTON more steps
#: are taken. The decrement weighs a block's gradient by ``||w_j|| / lam`` (the inverse of its
#: penalty curvature), so a small block can pass the decrement test with a gradient that is
#: ``1e-5`` of ``lam``: its multipliers then miss dual feasibility by as much, and the certificate,
#: which scales the whole dual point by the worst block, loses ``1e-6`` to ``1e-5`` relative.
#: Measured: two of twelve squared-loss fits (n=1000, d=10, 50 gates) stopped at a relative gap
#: of ``5e-6`` this way and spent 18.7 s and 6.1 s in the fallbacks; they certify ``1e-13`` by the
#: active set alone in 0.9 s and 0.7 s (docs/native.md, "Active set first").
AS_GRAD_RTOL = 1e-10
AS_EXTRA_NEWTON = 3


def _null_space_add_rows(N: np.ndarray, smax: float, A: np.ndarray) -> tuple[np.ndarray, float] | None:
    """An orthonormal basis of ``{x in span(N) : A x = 0}`` from an orthonormal ``N``.

    One Householder reflection per row of ``A`` (``O(rows dim)`` flops each): with ``v = N^T a``,
    ``H = I - 2 u u^T`` maps ``v`` to a multiple of ``e_1``, so ``N H e_2, ..., N H e_dim`` span
    the directions of ``span(N)`` orthogonal to ``a``. A row with ``||v|| <= 1e-10 smax`` is
    dependent on the face and changes nothing (``smax``: the largest row scale seen, updated and
    returned); between that and ``1e-6 smax`` the row is nearly dependent and the answer is None,
    for the SVD of all the face rows to decide."""
    for a in A:
        smax = max(smax, float(np.linalg.norm(a)))
        if N.shape[1] == 0:
            break
        v = N.T @ a
        delta = float(np.linalg.norm(v))
        if delta <= 1e-10 * smax:
            continue
        if delta <= 1e-6 * smax:
            return None
        u = v.copy()
        u[0] += np.copysign(delta, v[0])
        u /= np.linalg.norm(u)
        N = (N - 2.0 * np.outer(N @ u, u))[:, 1:]
    return N, smax


def row_space_basis(Xa: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``V_r`` (``d x rank``) of the row space of ``Xa``. Components of a block
    in the null space of ``Xa`` change neither the prediction nor the slacks and only add to the
    penalty, so every optimal block lies in ``range(Xa^T)``."""
    _, sv, Vt = np.linalg.svd(Xa, full_matrices=False)
    rank = int((sv > 1e-10 * max(float(sv[0]) if sv.size else 0.0, np.finfo(float).tiny)).sum())
    return np.ascontiguousarray(Vt[:rank].T)


@dataclass
class ActiveSetResult:
    """Result of :func:`solve_restricted_active_set`.

    Attributes
    ----------
    U : ndarray (d, k)
        Blocks (cone feasible; zero blocks exactly zero).
    tight : ndarray of bool (n, k)
        The face of every block (rows held at zero slack); all rows for a zero block.
    rho : ndarray (n, k)
        Face multipliers (NNLS on the face rows; zero elsewhere).
    newton : int
        Newton steps.
    changes : int
        Face changes (rows joining or leaving, blocks leaving or entering zero).
    converged : bool
        Whether the point is optimal for the restricted program up to rounding.
    """

    U: np.ndarray
    tight: np.ndarray
    rho: np.ndarray
    newton: int
    changes: int
    converged: bool


#: Bends of the projected search path of an active-set Newton step (:class:`_BentPath`): a
#: block that its step would take across one of its free rows before the full step bends along
#: that row (the rest of its step projected onto the row's null space) up to this many times;
#: 0: it stops at the first row. Only where the row space of the design has at least
#: AS_BEND_MIN_RANK dimensions: its optimal faces hold tens of rows, which a step without bends
#: adds one at a time. Measured (minimum of 2 interleaved runs; A/B with and without bends):
#:
#: * ConvexReLUClassifier(lam=0.01 n, n_gates=100) on digits (rank 61), gate seeds 0-3: 584
#:   Newton steps and 24.3 s against 673 and 26.2 s (fewer steps on every seed); two bends 318
#:   against 320 steps on seeds 0-1 (one bend: 288), eight 172 against 162 on seed 0;
#: * synthetic ``n = 600``, two-neuron ReLU targets, 50 gates, data seeds 0-2 (sums of three
#:   fits): ``d = 50`` ConvexReLURegressor 29.6 -> 18.2 s (1489 -> 879 Newton steps; two bends
#:   15.5 s) and ConvexReLUClassifier 3.8 -> 2.8 s; ``d = 30`` 8.9 -> 7.2 s and 1.21 -> 1.17 s;
#:   ``d = 20`` 5.2 -> 4.1 s and 0.72 -> 0.74 s;
#: * digits as regression (ConvexReLURegressor(n_gates=50), the digit as target), gate seeds 0
#:   and 1: 33.5 -> 21.1 s and 35.4 -> 24.7 s (541 -> 314 and 585 -> 399 Newton steps);
#: * breast cancer (rank 31), gate seeds 0-5: 0.552 against 0.550 s (213 and 202 steps);
#: * lower ranks lose: wine (14) and iris (5) took more steps (iris 0.38 -> 0.48 s), twelve
#:   squared-loss fits at ``n=1000, d=10, p=50`` 7.47 -> 8.07 s (fewer steps, but the path's
#:   overhead outweighs them on small blocks).
AS_BEND = 1
AS_BEND_MIN_RANK = 20


class _BentPath:
    """The projected search path of an active-set Newton step, block by block.

    Block ``j`` moves along its Newton direction ``d_j`` until the first of its free rows
    blocks it (step length ``E_0``). There, instead of stopping, it goes on along ``d_j``
    projected onto the null space of the rows hit so far (within its face), until the next
    row blocks it, up to :data:`AS_BEND` times; after the last segment the block stops at its
    next blocking row. The path is continuous and stays in the cones: each segment stops at
    its first blocking row, and the rows a block bent along keep zero slack (its later
    directions are orthogonal to them). Without bends one Newton step adds one row to each
    blocked block, so a block whose optimal face holds tens of rows more than its current face
    needs as many Newton steps to reach it; along the path one step can add several.

    Level ``l`` of the path is a segment per block: start ``S[l]`` and end ``E[l]`` (step
    lengths; ``inf`` start: the block has no such segment), direction ``D[l]`` (``rk x k``),
    its prediction change per unit length ``dZ[l]`` (``n x k``, one output per block), its
    slack change ``ds[l]``, its directional derivative ``gd[l]`` (the face gradient times the
    direction) and the row that ends it ``first[l]``.
    """

    def __init__(self, Xr, Sb, coef, tight, slack, dY, XdY, dslack, ratio, amax, gY, bases, grad_face, rn,
                 levels: int):
        n, k = slack.shape
        rk = Xr.shape[1]
        tiny = np.finfo(float).tiny
        first0 = np.argmin(ratio, axis=0)
        self.S = [np.zeros(k)]
        self.E = [amax.copy()]
        self.D = [dY]
        self.dZ = [coef * XdY]
        self.ds = [dslack]
        self.gd = [gY]
        self.first = [np.where(np.isfinite(amax), first0, -1)]
        go = np.flatnonzero(amax < 1.0)
        if not go.size or levels <= 0:
            return
        # projectors onto the faces (rk x rk) and the rows bent along (orthonormal, padded)
        P = np.stack([bases[j] @ bases[j].T for j in go])
        gR = np.stack([bases[j] @ grad_face(j) for j in go], axis=1)  # rk x g: face gradients
        Q = np.zeros((go.size, rk, levels))
        d = dY[:, go].copy()
        sl = slack[:, go] + amax[go] * dslack[:, go]  # slacks at the first break
        first = first0[go]
        end = amax[go].copy()
        done = tight[:, go].copy()
        idx = np.arange(go.size)
        for lev in range(levels):
            a = Sb[first, go][:, None] * Xr[first]  # g x rk: the rows that stopped the segment
            done[first, idx] = True
            b = np.einsum("grs,gs->gr", P, a)  # their components in the faces
            b -= np.einsum("grl,gl->gr", Q, np.einsum("grl,gr->gl", Q, b))
            nb = np.linalg.norm(b, axis=1)
            ok = nb > 1e-10 * np.maximum(np.linalg.norm(a, axis=1), tiny)
            q = np.where(ok[:, None], b / np.maximum(nb, tiny)[:, None], 0.0)
            Q[:, :, lev] = q
            d = d - q.T * np.einsum("gr,rg->g", q, d)[None, :]
            XD = Xr @ d
            ds = Sb[:, go] * XD
            dn = np.linalg.norm(d, axis=0)
            blocking = ~done & (ds < -1e-12 * rn[:, None] * dn[None, :])
            r = np.full(blocking.shape, np.inf)
            np.divide(-np.maximum(sl, 0.0), ds, out=r, where=blocking)
            nxt = r.min(axis=0)
            nfirst = np.argmin(r, axis=0)
            S = np.full(k, np.inf)
            E = np.full(k, np.inf)
            S[go] = end
            E[go] = end + nxt
            Dl = np.zeros((rk, k))
            Dl[:, go] = d
            dZl = np.zeros((n, k))
            dZl[:, go] = coef[:, go] * XD
            dsl = np.zeros((n, k))
            dsl[:, go] = ds
            gdl = np.zeros(k)
            gdl[go] = np.einsum("rg,rg->g", gR, d)
            fl = np.full(k, -1)
            fl[go] = np.where(np.isfinite(nxt), nfirst, -1)
            self.S.append(S)
            self.E.append(E)
            self.D.append(Dl)
            self.dZ.append(dZl)
            self.ds.append(dsl)
            self.gd.append(gdl)
            self.first.append(fl)
            more = np.flatnonzero(E[go] < 1.0)
            if not more.size:
                break
            sl = sl[:, more] + nxt[more] * ds[:, more]
            go, first, end, done, idx = go[more], nfirst[more], E[go][more], done[:, more], np.arange(more.size)
            P, Q, d, gR = P[more], Q[more], d[:, more], gR[:, more]

    def lengths(self, t: float) -> list[np.ndarray]:
        """Length of every segment travelled at step length ``t`` (per level, ``k``)."""
        out = []
        for S, E in zip(self.S, self.E, strict=True):
            with np.errstate(invalid="ignore"):
                out.append(np.where(np.isfinite(S), np.clip(t - S, 0.0, E - S), 0.0))
        return out

    def pred(self, t: float) -> float:
        """The linear model's change (``grad^T`` step) at step length ``t``."""
        return float(sum(float(gd @ L) for L, gd in zip(self.lengths(t), self.gd, strict=True)))

    def at(self, t: float, Y: np.ndarray, Z: np.ndarray, Eout: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Blocks, predictions and the linear model's change (``grad^T`` step) at step length ``t``."""
        Yt, Zt, pred = Y.copy(), Z.copy(), 0.0
        for L, D, dZ, gd in zip(self.lengths(t), self.D, self.dZ, self.gd, strict=True):
            if not L.any():
                continue
            Yt += D * L
            Zt += dZ @ (L[:, None] * Eout)
            pred += float(gd @ L)
        return Yt, Zt, pred

    def joined(self, t: float, slack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows that join the faces at step length ``t`` (``n x k``, ``slack`` the slacks
        there) and the blocks that changed face. A block joins the row that ended each segment
        it completed; where it stopped (a completed segment with no next one), also every row at
        rounding-level slack that the segment was moving towards."""
        n, k = slack.shape
        rows = np.zeros((n, k), dtype=bool)
        nlev = len(self.S)
        tiny = np.finfo(float).tiny
        for lev in range(nlev):
            S, E, f = self.S[lev], self.E[lev], self.first[lev]
            done = np.flatnonzero(np.isfinite(S) & (E <= t) & (f >= 0))
            if not done.size:
                continue
            rows[f[done], done] = True
            nxt = self.S[lev + 1] if lev + 1 < nlev else np.full(k, np.inf)
            stop = done[~np.isfinite(nxt[done])]
            if stop.size:
                sc = np.maximum(np.abs(slack[:, stop]).max(axis=0), tiny)
                rows[:, stop] |= (slack[:, stop] <= AS_TIGHT * sc) & (self.ds[lev][:, stop] < 0.0)
        return rows, np.flatnonzero(rows.any(axis=0))


def _rows_blocking_at_once(ratio: np.ndarray, slack: np.ndarray, scale: float) -> np.ndarray:
    """The rows of one block that stop a step at once: the first blocking row, and every row
    at zero slack (``<= 1e-9 scale``) whose step length to the boundary is zero (``<= 1e-12``).

    All of them join the face together. Adding only the first one let the next Newton step be
    blocked by the next such row, one row per Newton step: on digits (gate seed 4) a round of 30
    Newton steps then only re-added the rows that a face optimum had just released, and the
    solve took 17 rounds and 392 Newton steps (10 rounds and 182 with all of them).

    Parameters
    ----------
    ratio : ndarray (n,)
        Step lengths to each row's boundary (``inf`` for rows that do not block).
    slack : ndarray (n,)
        The rows' slacks at the point.
    scale : float
        The block's largest ``|prediction|``.

    Returns
    -------
    ndarray of bool (n,)
    """
    rows = (ratio <= 1e-12) & (slack <= 1e-9 * scale)
    rows[int(np.argmin(ratio))] = True
    return rows


def solve_restricted_active_set(
    Xa: np.ndarray,
    M: np.ndarray,
    S: np.ndarray,
    kernel: SmoothKernel,
    lam: float,
    cols: np.ndarray,
    outs: np.ndarray,
    U0: np.ndarray,
    *,
    tight0: np.ndarray | None = None,
    basis: np.ndarray | None = None,
    max_newton: int = AS_MAX_NEWTON,
    max_changes: int = AS_MAX_CHANGES,
    gain: float = AS_GAIN,
) -> ActiveSetResult:
    """A primal feasible active-set method for the restricted C-ReLU program.

    The iterate stays in the cones. Every block ``u_j`` lives on a *face* ``{u : Xt_T u = 0}``
    of its cone (``T`` its tight rows) inside the row space of ``Xa``
    (:func:`row_space_basis`), where it is ``u_j = N_j w_j`` with ``N_j`` an orthonormal basis;
    a block with an empty face basis is exactly zero. On the faces the program
    ``min h(sum_j A_j N_j w_j) + lam sum_j ||w_j||`` is smooth, and Newton's method (dense or
    conjugate gradients, as in :func:`polish_on_faces`) minimises it, with

    * a ratio test per block: a block whose step would cross one of its free rows stops there
      and that row joins its face (the other blocks take the full step length; the path is
      accepted on the Armijo rule with its own directional derivative, else the step length
      halves until no block is stopped); on designs of rank ``AS_BEND_MIN_RANK`` and more a
      stopped block first bends along the row (:class:`_BentPath`); a step that free rows at
      zero slack block at once is not taken, and all of them join the face
      (:func:`_rows_blocking_at_once`);
    * zero blocks: a block whose norm a step cuts by half or more is set to exactly zero when
      that does not raise the objective (the norm is not smooth there); one the step takes to
      the origin up to rounding (``1e-6`` of its norm) and one that predicts nothing on its face
      are set to zero at once;
    * a rejected Newton step is recomputed with Levenberg-Marquardt damping (``1e-8`` to ``1`` of
      the largest Hessian diagonal); every face is made consistent with the point when it changes
      (rows the point does not hold at zero slack leave it, rounding offsets are projected away);
    * at a face optimum (Newton decrement at rounding level): the multipliers of every face,
      ``argmin_{rho >= 0} ||Xt_T^T rho - g_j||`` with ``g_j`` the block's gradient. A non-zero
      residual ``r`` means ``-r`` (the projection of ``-g_j`` on the cone of the face rows) is
      a feasible descent direction; the rows it leaves (``<a_r, -r> > 0``) leave the face. A
      zero block is optimal when ``dist(G_j, K_i^*) <= lam`` (the KKT check of
      :mod:`cvxnn.native.working_set`); otherwise it re-enters along ``Pi_{K_i}(-G_j)`` at its
      one-dimensional Newton step.

    It stops when no face changes at a face optimum. The caller certifies the full problem.

    The blocks are processed grouped by output (a stable sort of ``outs``), so that the columns of
    each output form one contiguous slice of the face design; results come back in the caller's
    order.
    """
    cols = np.asarray(cols, dtype=np.intp)
    outs = np.asarray(outs, dtype=np.intp)
    order = np.argsort(outs, kind="stable")
    if np.array_equal(order, np.arange(order.size)):
        return _active_set_sorted(Xa, M, S, kernel, lam, cols, outs, U0, tight0, basis, max_newton, max_changes,
                                  gain)
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    U0 = np.asarray(U0, dtype=np.float64)[:, order]
    if tight0 is not None:
        tight0 = np.asarray(tight0, dtype=bool)[:, order]
    res = _active_set_sorted(Xa, M, S, kernel, lam, cols[order], outs[order], U0, tight0, basis, max_newton,
                             max_changes, gain)
    return replace(res, U=res.U[:, inv], tight=res.tight[:, inv], rho=res.rho[:, inv])


def _active_set_sorted(Xa, M, S, kernel, lam, cols, outs, U0, tight0, basis, max_newton, max_changes,
                       gain) -> ActiveSetResult:
    """:func:`solve_restricted_active_set` (same arguments) on blocks ordered by output."""
    from scipy.optimize import nnls

    from .nnls import nnls_warm

    n, d = Xa.shape
    p = M.shape[1]
    c = kernel.y64.shape[1]
    tiny = np.finfo(float).tiny
    gain_min = gain
    Vr = row_space_basis(Xa) if basis is None else basis
    Xr = Xa @ Vr  # n x rk
    XrT = np.ascontiguousarray(Xr.T)
    rk = Vr.shape[1]
    cols = np.asarray(cols, dtype=np.intp)
    outs = np.asarray(outs, dtype=np.intp)
    k = cols.size
    pat = cols % p
    coef = M[:, pat] * np.where(cols < p, 1.0, -1.0)
    Sb = S[:, pat]
    Y = Vr.T @ np.asarray(U0, dtype=np.float64)  # rk x k
    XY = Xr @ Y
    slack = Sb * XY
    scale = np.maximum(np.abs(XY).max(axis=0, initial=0.0), tiny)
    if np.any(slack < -1e-9 * scale):
        raise ValueError("the starting point must lie in every cone")
    near = slack <= AS_TIGHT * scale
    tight = near.copy() if tight0 is None else (np.asarray(tight0, dtype=bool) & (slack <= 1e-9 * scale)) | near
    zero = np.linalg.norm(Y, axis=0) == 0.0
    tight[:, zero] = True
    rho = np.zeros((n, k))
    rn = np.linalg.norm(Xr, axis=1)
    newton = changes = events = degenerate_moves = 0

    Eout = np.eye(c)[outs]  # k x c: the output of every block

    def objective(Yv, XYv=None):
        """Objective and predictions at ``Yv`` (``XYv = Xr @ Yv`` when the caller has it)."""
        Zv = (coef * (Xr @ Yv if XYv is None else XYv)) @ Eout
        return kernel.value(Zv) + lam * float(np.linalg.norm(Yv, axis=0).sum()), Zv

    basis_state: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}

    def face_basis_update(j, rows):
        mask0, N, smax = basis_state[j]
        new = np.flatnonzero(rows & ~mask0)
        return _null_space_add_rows(N, smax, Sb[new, j, None] * Xr[new])

    def face_basis(j):
        rows = tight[:, j]
        st = basis_state.get(j)
        if st is not None and not np.any(st[0] & ~rows) and 0 < int((rows & ~st[0]).sum()) <= AS_HOUSEHOLDER_MAX:
            upd = face_basis_update(j, rows)
            if upd is not None:
                basis_state[j] = (rows.copy(), upd[0], upd[1])
                return upd[0]
        R = Sb[rows, j, None] * Xr[rows]
        if R.shape[0] == 0:
            basis_state[j] = (rows.copy(), np.eye(rk), 0.0)
            return np.eye(rk)
        # a pivoted QR of the face rows gives the null space when they are clearly independent
        # (every pivot above AS_QR_PIVOT of the first, the largest row norm); nearly dependent
        # rows go to the SVD below, which decides the rank and keeps the point on its face
        Qf, Rf, _ = sla.qr(R.T, mode="full", pivoting=True, check_finite=False)
        piv = np.abs(np.diag(Rf))
        if piv.size and float(piv.min()) > AS_QR_PIVOT * float(piv[0]):
            N = Qf[:, piv.size:]
            basis_state[j] = (rows.copy(), N, float(piv[0]))
            return N
        _, sv, Vt = np.linalg.svd(R, full_matrices=True)
        smax = max(float(sv[0]), tiny)
        rank = int((sv > 1e-10 * smax).sum())
        N = Vt[rank:].T
        yj = Y[:, j]
        ynrm = float(np.linalg.norm(yj))
        if ynrm > 0.0 and rank:
            # nearly dependent face rows: directions of small singular value (<= 1e-6) that
            # carry a part of the point stay in the face, so that the point lies on it
            comp = np.abs(Vt[:rank] @ yj)
            keep = (comp > 1e-8 * ynrm) & (sv[:rank] <= 1e-6 * smax)
            if keep.any():
                N = np.c_[Vt[:rank][keep].T, N]
        basis_state[j] = (rows.copy(), N, smax)
        return N

    bases: list[np.ndarray | None] = [None] * k
    an_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    rem = None  # the part of the last Newton step its blocked blocks did not take (rk x k)
    dirty = np.ones(k, dtype=bool)
    F, Z = objective(Y)
    converged = False
    while newton < max_newton and events <= max_changes:
        events += 1
        for j in np.flatnonzero(dirty):
            bases[j] = np.zeros((rk, 0)) if zero[j] else face_basis(j)
            if not zero[j]:
                # the point must lie on its face (w_j = N_j^T u_j describes it): rows it does not
                # satisfy with zero slack leave the face, rounding-level offsets are projected away
                yj = Y[:, j]
                yp = bases[j] @ (bases[j].T @ yj)
                ynrm = float(np.linalg.norm(yj))
                off = float(np.linalg.norm(yj - yp))
                xy = Xr @ yj
                sc_j = max(float(np.abs(xy).max(initial=0.0)), tiny)
                if off > 1e-8 * ynrm:
                    tight[:, j] &= Sb[:, j] * xy <= 1e-9 * sc_j
                    bases[j] = face_basis(j)
                    yp = bases[j] @ (bases[j].T @ yj)
                    off = float(np.linalg.norm(yj - yp))
                if off <= 1e-6 * ynrm and float((Sb[:, j] * (Xr @ yp)).min(initial=0.0)) >= -1e-10 * sc_j:
                    Y[:, j] = yp
                else:
                    logger.debug("active set: block %d stays off its face by %.2e (%d rows, dim %d, min slack %.2e)", j,
                                 off / ynrm, int(tight[:, j].sum()), bases[j].shape[1],
                                 float((Sb[:, j] * (Xr @ yp)).min(initial=0.0)) / sc_j)
            if bases[j].shape[1] == 0 and not zero[j]:
                zero[j] = True
                tight[:, j] = True
        dirty[:] = False
        Y[:, zero] = 0.0
        # XY = Xr @ Y of the current point, kept in step with Y (one GEMM per accepted step;
        # columns set to zero are zeroed in XY as well, which is exact)
        XY = Xr @ Y
        slack = Sb * XY
        dims = np.array([b.shape[1] for b in bases])
        offs = np.concatenate([[0], np.cumsum(dims)])
        m = int(offs[-1])
        live = dims > 0
        blk = np.repeat(np.arange(k), dims)
        outs_m = outs[blk]
        if m:
            # each block's columns (Xr N_j) * coef_j are formed once per face (a face change
            # replaces the basis object), not for every block at every face change; they are
            # kept as rows (dim_j x n) and stacked, so the face design is the transpose of one
            # C-contiguous array: a contiguous copy per block instead of n narrow strided ones
            # (about 10x faster at digits' size), and its per-output column slices are
            # Fortran-contiguous, which the GEMVs and Grams below read faster than strided views
            for j in np.flatnonzero(live):
                hit = an_cache.get(j)
                if hit is None or hit[0] is not bases[j]:
                    an_cache[j] = (bases[j], (bases[j].T @ XrT) * coef[:, j])
            AN = np.concatenate([an_cache[j][1] for j in np.flatnonzero(live)], axis=0).T
            w = np.concatenate([bases[j].T @ Y[:, j] for j in range(k)])
            out_cols = _output_columns(outs_m, c)
            AN32 = None
        else:
            out_cols, AN32 = [], None
        F, Z = objective(Y, XY)
        face_done = True
        changed = False
        g0 = None
        extra = 0
        while m and newton < max_newton:
            nr = np.sqrt(np.bincount(blk, w * w, minlength=k))
            # a block that predicts nothing (its face leaves it no row of its pattern) only adds
            # penalty, and its radial direction has no curvature: it becomes exactly zero
            pred = np.linalg.norm(coef * XY, axis=0)
            idle = live & (nr > 0.0) & (pred <= 1e-9 * nr * float(rn.max(initial=0.0)))
            if idle.any():
                Y[:, idle] = 0.0
                XY[:, idle] = 0.0
                F, Z = objective(Y, XY)
                zero |= idle
                tight[:, idle] = True
                dirty |= idle
                changes += int(idle.sum())
                changed = True
                break
            g = kernel.grad(Z)
            grad = lam * w / np.maximum(nr[blk], tiny)
            for kk, idx in out_cols:  # per output: no n x m temporaries
                grad[idx] += g[:, kk] @ AN[:, idx]
            D, V = kernel.hessian_parts(Z)
            # Levenberg-Marquardt: when the line search rejects the Newton step (a nearly singular
            # face system, typically a block whose prediction vanishes on its way to zero), the
            # step is recomputed with a multiple of the identity added, growing 100x a try; the
            # scale (the largest Hessian diagonal) is only needed then
            hscale = None
            accepted = degenerate_hit = small = False
            for damp in (0.0, 1e-8, 1e-6, 1e-4, 1e-2, 1.0):
                if damp:
                    if hscale is None:
                        hdiag = lam / np.maximum(nr[blk], tiny)
                        for kk, idx in out_cols:
                            hdiag[idx] += D[:, kk] @ (AN[:, idx] * AN[:, idx])
                        hscale = float(np.max(hdiag))
                    damp *= hscale
                step = None
                if c > 1 and m > FACE_OUTPUT_PCG_MIN:
                    gnorm = float(np.linalg.norm(grad))
                    g0 = gnorm if g0 is None else g0
                    rt = max(1e-12, min(AS_CG_RTOL, gnorm / max(g0, tiny)))
                    if HV32 and AN32 is None and rt >= HV32_RTOL:
                        AN32 = AN.astype(np.float32)
                    x0 = None
                    if PCG_WARM and rem is not None and not damp:
                        x0 = np.zeros(m)
                        for j in np.flatnonzero(live):
                            x0[offs[j]:offs[j + 1]] = bases[j].T @ rem[:, j]
                    step, cg_ok = _face_newton_outputs(AN, D, V, outs_m, c, offs, dims, live, w, nr, lam, grad,
                                                       rtol=rt, damp=damp, AN32=AN32, x0=x0)
                    step = step if cg_ok else None
                if step is None and _face_cg(m, AN.shape[0], kernel.loss.quadratic):
                    gnorm = float(np.linalg.norm(grad))
                    g0 = gnorm if g0 is None else g0
                    step, cg_ok = _face_newton_cg(AN, D, V, outs_m, c, offs, dims, live, w, nr, lam, grad,
                                                  rtol=max(1e-12, min(AS_CG_RTOL, gnorm / max(g0, tiny))), damp=damp)
                    step = step if cg_ok else None
                elif step is None:
                    step = _face_newton_dense(AN, D, V, outs_m, c, offs, dims, live, w, nr, lam, grad, damp=damp)
                if step is None:
                    continue
                newton += 1
                dec = -float(grad @ step)
                small = dec <= 1e-13 * abs(F)
                if small and extra < AS_EXTRA_NEWTON and float(
                        np.bincount(blk, grad * grad, minlength=k).max(initial=0.0)) > (AS_GRAD_RTOL * lam) ** 2:
                    extra += 1  # a small block's gradient is not yet at rounding level (AS_GRAD_RTOL)
                    small = False
                if small:
                    break
                dY = np.zeros((rk, k))
                for j in np.flatnonzero(live):
                    dY[:, j] = bases[j] @ step[offs[j]:offs[j + 1]]
                XdY = Xr @ dY
                dslack = Sb * XdY
                blocking = ~tight & (dslack < 0.0)
                ratio = np.full((n, k), np.inf)
                np.divide(-np.maximum(slack, 0.0), dslack, out=ratio, where=blocking)
                amax = ratio.min(axis=0)  # per block
                # (a row whose slack is not at rounding level stops the block there instead: it
                # would leave the face again at the next face update)
                first = np.argmin(ratio, axis=0)
                sc_k = np.maximum(np.abs(XY).max(axis=0, initial=0.0), tiny)
                degenerate = np.flatnonzero((amax <= 1e-12) & (slack[first, np.arange(k)] <= 1e-9 * sc_k))
                if degenerate.size:
                    # a free row at (numerically) zero slack blocks the step at once: it joins the
                    # face without a step
                    for j in degenerate:
                        tight[_rows_blocking_at_once(ratio[:, j], slack[:, j], sc_k[j]), j] = True
                    dirty[degenerate] = True
                    changes += int(degenerate.size)
                    degenerate_hit = True
                    break
                gY = np.zeros(k)
                for j in np.flatnonzero(live):
                    sl = slice(offs[j], offs[j + 1])
                    gY[j] = float(grad[sl] @ step[sl])
                # the trial predictions are Z + sum_j t_j dZ_j: one (n x k) @ (k x c) product per
                # trial instead of the k block products of objective()
                dZ_blocks = coef * XdY
                path = None
                if AS_BEND and rk >= AS_BEND_MIN_RANK and np.any(amax < 1.0):
                    path = _BentPath(Xr, Sb, coef, tight, slack, dY, XdY, dslack, ratio, amax, gY, bases,
                                     lambda j, g=grad, o=offs: g[o[j]:o[j + 1]], rn, AS_BEND)
                t = 1.0
                for _ls in range(60 if damp == 0.0 else 30):
                    # the linear model first: a step length at which it does not descend (blocks
                    # stopped by their rows while others ascend along their own parts) is
                    # rejected without evaluating the loss
                    if path is None:
                        tj = np.minimum(t, amax)
                        pred = float(gY @ tj)
                    else:
                        pred = path.pred(t)
                    if not pred < 0.0:
                        t *= 0.5
                        continue
                    if path is None:
                        Y_t = Y + dY * tj
                        Z_t = Z + dZ_blocks @ (tj[:, None] * Eout)
                    else:
                        Y_t, Z_t, pred = path.at(t, Y, Z, Eout)
                    F_t = kernel.value(Z_t) + lam * float(np.linalg.norm(Y_t, axis=0).sum())
                    if pred < 0.0 and (F_t <= F + ARMIJO * pred or abs(F_t - F) <= 1e-15 * abs(F)):
                        accepted = True
                        break
                    t *= 0.5
                if accepted or dec <= 1e-9 * abs(F):
                    break
                logger.debug("active set: Newton step rejected (dec=%.3e, damping %.1e)", dec, damp)
            if step is None:
                logger.debug("active set: singular face Newton system (m=%d)", m)
                face_done = False
                break
            if degenerate_hit:
                changed = True
                break
            if small:
                break
            if not accepted:
                if dec > 1e-9 * abs(F):
                    logger.debug("active set: no descent along the Newton step (dec=%.3e, F=%.12g)", dec, F)
                    face_done = False
                break
            nr_old = np.linalg.norm(Y, axis=0)
            rem = dY * (1.0 - np.minimum(t, amax))[None, :]
            Y, F, Z = Y_t, F_t, Z_t
            XY = Xr @ Y
            slack = Sb * XY
            if path is not None:
                rows, stopped = path.joined(t, slack)
                tight |= rows
            else:
                stopped = np.flatnonzero(amax <= t)
                for j in stopped:
                    jj = int(np.argmin(ratio[:, j]))
                    tight[jj, j] = True
                    sc = max(float(np.abs(slack[:, j]).max(initial=0.0)), tiny)
                    tight[(slack[:, j] <= AS_TIGHT * sc) & (dslack[:, j] < 0.0), j] = True
            if stopped.size:
                dirty[stopped] = True
                changes += int(stopped.size)
                changed = True
            # blocks that collapse towards zero: exact zeros when that does not raise F
            nr_new = np.linalg.norm(Y, axis=0)
            # a block the step (stopped by its rows) took to the origin up to rounding is zero: its
            # relative slacks and face would be rounding noise
            collapse = live & ~zero & (nr_new <= 1e-6 * nr_old)
            if collapse.any():
                Y[:, collapse] = 0.0
                XY[:, collapse] = 0.0
                F, Z = objective(Y, XY)
                zero |= collapse
                tight[:, collapse] = True
                dirty |= collapse
                changes += int(collapse.sum())
                changed = True
            shrink = live & ~zero & (nr_new <= 0.5 * nr_old)
            if shrink.any():
                Yz = Y.copy()
                Yz[:, shrink] = 0.0
                XYz = XY.copy()
                XYz[:, shrink] = 0.0
                F_z, Z_z = objective(Yz, XYz)
                if F_z <= F:
                    Y, F, Z, XY = Yz, F_z, Z_z, XYz
                    zero |= shrink
                    tight[:, shrink] = True
                    dirty |= shrink
                    changes += int(shrink.sum())
                    changed = True
            if changed:
                break
            w = np.concatenate([bases[j].T @ Y[:, j] for j in range(k)])
        if not face_done:
            break
        if changed:
            continue
        rem = None
        # a face optimum: face multipliers first (rows with the wrong sign leave, with a step
        # along the projected steepest direction that moves off them), then the zero blocks
        slack = Sb * XY
        g = kernel.grad(Z)
        G = Xr.T @ (coef * g[:, outs])  # rk x k: loss gradient of every block
        nrm = np.linalg.norm(Y, axis=0)
        tight_before = tight.copy()
        sc = np.maximum(np.abs(XY).max(axis=0, initial=0.0), tiny)
        # rows that block the direction at once join the rows the direction must respect
        extra = np.zeros((n, k), dtype=bool)
        moved = stuck = False
        nn_cache: dict = {}  # (block, rows) -> NNLS of that face; the point does not move in this loop
        fb_cache: dict = {}
        # the rows every direction must respect: the face rows and every other row at zero
        # slack (a degenerate face), and the rows that blocked an earlier direction (extra); a
        # block whose rows did not change since the last pass keeps its multipliers, face rows
        # and direction (the point does not move in this loop), so a pass redoes only the blocks
        # that the last blocking rows touched
        at_zero = tight_before | (slack <= 1e-9 * sc)
        prev: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        for _degenerate in range(50):
            dirs = np.zeros((rk, k))
            tight[:] = tight_before
            dirty[:] = False
            respect = at_zero | extra
            todo = ~zero
            if prev is not None:
                todo = todo & np.any(respect != prev[0], axis=0)
                same = ~zero & ~todo
                tight[:, same] = prev[1][:, same]
                dirs[:, same] = prev[2][:, same]
                dirty[same] = prev[3][same]
            for j in np.flatnonzero(todo):
                # the direction below must not cross any of these rows, or the step would be
                # blocked at once
                rows = np.flatnonzero(respect[:, j])
                if rows.size == 0:
                    continue
                At = (Sb[rows, j, None] * Xr[rows]).T
                gj = G[:, j] + lam * Y[:, j] / nrm[j]
                key = (int(j), rows.tobytes())
                if key not in nn_cache:
                    nn_cache[key] = nnls(At, gj, maxiter=50 * (At.shape[1] + 1))
                r, res = nn_cache[key]
                rho[:, j] = 0.0
                rho[rows, j] = r
                # the full-program certificate needs ||G_j - Xt^T rho|| <= lam: the face
                # residual adds at most its norm to lam
                if res <= 1e-9 * lam:
                    continue
                resid = gj - At @ r  # -resid = Pi_{K_T}(-g_j): a feasible descent direction
                keep = np.abs(At.T @ resid) <= 1e-6 * np.linalg.norm(At, axis=0) * np.linalg.norm(resid)
                tight[rows, j] = keep
                dirty[j] = True
                dirs[:, j] = -resid
            dropped = np.flatnonzero(dirty)
            if not dropped.size:
                break
            for j in dropped[todo[dropped]]:
                key = (int(j), tight[:, j].tobytes())
                if key not in fb_cache:
                    fb_cache[key] = face_basis(j)
                bases[j] = fb_cache[key]
                dirs[:, j] = bases[j] @ (bases[j].T @ dirs[:, j])
            prev = (respect, tight.copy(), dirs.copy(), dirty.copy())
            gfull = G + lam * Y / np.maximum(nrm, tiny)
            slope = float(np.einsum("rk,rk->", gfull, dirs))
            XD = Xr @ dirs
            dZ = (coef * XD) @ np.eye(c)[outs]
            D, V = kernel.hessian_parts(Z)
            quad = float(np.sum(D * dZ * dZ)) - (float(np.sum(np.einsum("nc,nc->n", V, dZ) ** 2))
                                                 if V is not None else 0.0)
            uh = Y / np.maximum(nrm, tiny)
            quad += float(np.sum(lam / np.maximum(nrm[dropped], tiny)
                                 * (np.sum(dirs[:, dropped] ** 2, axis=0)
                                    - np.einsum("rk,rk->k", uh[:, dropped], dirs[:, dropped]) ** 2)))
            gain = slope * slope / quad if quad > 0.0 else np.inf
            stuck = True  # until a step is taken
            if not (slope < 0.0 and gain > gain_min * abs(F)):
                stuck = False
                break
            dsl = Sb * XD
            # rounding: a direction that leaves a row by less than this does not cross it
            blocking = ~tight & (dsl < -1e-12 * rn[:, None] * np.linalg.norm(dirs, axis=0))
            ratio = np.full((n, k), np.inf)
            np.divide(-np.maximum(slack, 0.0), dsl, out=ratio, where=blocking)
            tmax = float(ratio.min(initial=np.inf))
            tstar = -slope / quad if quad > 0.0 else np.inf
            if tmax < 1e-3 * tstar:
                # (nearly) degenerate: the blocking rows constrain the direction, recompute it
                extra |= ratio <= 1e3 * tmax
                continue
            t = min(tstar, tmax)
            for _ls in range(60):
                F_t, Z_t = objective(Y + t * dirs)
                if F_t <= F + ARMIJO * t * slope:
                    Y, F, Z = Y + t * dirs, F_t, Z_t
                    if t >= tmax:
                        tight[np.unravel_index(int(np.argmin(ratio)), ratio.shape)] = True
                    moved = True
                    stuck = False
                    break
                t *= 0.5
            break
        if stuck:
            # degenerate faces the direction cannot leave: the blocking row joins the face without
            # a step (a bounded number of times; cycling ends in the barrier fallback)
            degenerate_moves += 1
            if degenerate_moves > AS_MAX_DEGENERATE:
                logger.debug("active set: no step off the faces with a gain of %.2e (F=%.15g)", gain, F)
                break
            tight[np.unravel_index(int(np.argmin(ratio)), ratio.shape)] = True
            moved = True
        if moved:
            logger.debug("active set: %d faces lose rows after %d Newton steps (F=%.15g, gain %.2e)",
                         dropped.size, newton, F, gain)
            changes += int(dropped.size)
            continue
        # no progress off these rows: the face optimum stands (rounding-level multipliers)
        logger.debug("active set: face optimum stands (loop %d, gain %.2e, slope %.2e, F=%.15g)", _degenerate,
                     gain if dropped.size else 0.0, slope if dropped.size else 0.0, F)
        changed_faces = np.flatnonzero(np.any(tight != tight_before, axis=0))
        tight[:] = tight_before
        for j in changed_faces:
            bases[j] = face_basis(j)
        dirty[:] = False
        moved = False
        for j in np.flatnonzero(zero):
            At = (Sb[:, j, None] * Xr).T
            if rho[:, j].any():
                r, res = nnls_warm(At, G[:, j], rho[:, j])
            else:
                r, res = nnls(At, G[:, j], maxiter=50 * (At.shape[1] + 1))
            rho[:, j] = r
            if res <= lam * (1.0 + 1e-9):
                continue
            dvec = At @ r - G[:, j]  # Pi_K(-G_j): feasible, steepest
            dn = float(np.linalg.norm(dvec))
            a = coef[:, j] * (Xr @ dvec)
            D, V = kernel.hessian_parts(Z)
            kk = int(outs[j])
            quad = float(D[:, kk] @ (a * a)) - (float((V[:, kk] * a) @ (V[:, kk] * a)) if V is not None else 0.0)
            if not (quad > 0.0 and np.isfinite(quad)):
                continue
            tstep = dn * (dn - lam) / quad
            for _ls in range(40):
                Y_t = Y.copy()
                Y_t[:, j] = tstep * dvec
                F_t, Z_t = objective(Y_t)
                if F_t < F:
                    break
                tstep *= 0.5
            else:
                continue
            Y, F, Z = Y_t, F_t, Z_t
            zero[j] = False
            sd = Sb[:, j] * (Xr @ dvec)
            tight[:, j] = sd <= AS_TIGHT * max(float(np.abs(sd).max(initial=0.0)), tiny)
            dirty[j] = True
            changes += 1
            moved = True
        if not moved:
            converged = True
            break
    U = Vr @ Y
    logger.debug("active set: k=%d, %d Newton steps, %d face changes, converged=%s", k, newton, changes, converged)
    return ActiveSetResult(U=U, tight=tight, rho=rho, newton=newton, changes=changes, converged=converged)
