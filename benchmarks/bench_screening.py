"""Gap-safe screening and dual extrapolation for multi-class C-GReLU: do they pay? (issue 15;
results in docs/native.md, "Screening and dual extrapolation: measured, not used").

Run with one BLAS thread::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_screening.py [--sections screening,extrapolation]

Problem: ``load_digits``, standardized, 70/30 split (``random_state=0``), ``n_gates=100``
(``sample_patterns(seed=0, bias=True)``), cross-entropy, nuclear norms.

* ``screening``: the gap-safe sphere test (Ndiaye et al. 2017) for this program. The dual is
  ``1/L``-strongly concave (``L`` the curvature of the loss), so a dual-feasible ``theta`` with
  gap ``G`` lies within ``r = sqrt(2 L G)`` of the dual optimum, and block ``i`` is zero at every
  optimum when ``||A_i^T theta||_2 + r ||D_i X_a||_2 < lam``. For each ``lam`` and each tolerance
  the table gives the blocks zero at the solution and how many of them the test removes, with the
  exact block norms ``||D_i X_a||_2`` and with the cheap bound ``min(||X_a||_2, ||D_i X_a||_F)``,
  and the fit time to that tolerance against the default (working set) fit to ``1e-4``.
* ``extrapolation``: R-FISTA iterates, with the dual point of each check extrapolated from the
  last 5 (Anderson / celer's dual extrapolation; the adjoint of the combination is the same
  combination of the stored adjoints, so it costs no product with the design). The relative gap
  with the plain dual point against the extrapolated one at the same iterations.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    Xtr = StandardScaler().fit(Xtr).transform(Xtr)
    return Xtr, np.eye(10)[ytr]


def _setup():
    from cvxnn import sample_patterns
    from cvxnn.losses import get_loss
    from cvxnn.native._losses import make_kernel

    X, Y = _digits()
    pats = sample_patterns(X, 100, seed=0, bias=True)
    kernel = make_kernel(get_loss("cross_entropy"), Y, np.float64)
    return X, Y, pats, kernel


def screening() -> None:
    from cvxnn.native import solve_native
    from cvxnn.native.prox import gram_spectral
    from cvxnn.operators import ImplicitDesign

    X, Y, pats, kernel = _setup()
    n = X.shape[0]
    Xa, M = pats.design(X), pats.mask.astype(float)
    exact = np.array([np.linalg.norm(Xa * M[:, [i]], 2) for i in range(pats.n_patterns)])
    cheap = np.minimum(np.linalg.norm(Xa, 2), np.sqrt(M.T @ np.einsum("nd,nd->n", Xa, Xa)))
    print(f"block norms ||D_i X_a||_2: exact {exact.min():.1f}-{exact.max():.1f}, "
          f"cheap bound {cheap.min():.1f}-{cheap.max():.1f}; curvature L = {kernel.curvature:g}")
    print("\n| lam / n | tol | fit s | / default fit | zero blocks | screened (exact norms) | screened (bound) |")
    print("|---|---|---|---|---|---|---|")
    for frac in (0.1, 0.01):
        lam = frac * n
        t0 = time.perf_counter()
        solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=lam, tol=1e-4)
        t_ref = time.perf_counter() - t0
        for tol in (1e-2, 1e-4, 1e-6):
            t0 = time.perf_counter()
            sol = solve_native(X, Y, pats, activation="gated_relu", loss="cross_entropy", lam=lam, tol=tol)
            secs = time.perf_counter() - t0
            op = ImplicitDesign(Xa, pats.mask, n_outputs=Y.shape[1])
            theta = kernel.grad(op.forward(sol.U))
            dn = gram_spectral(op.adjoint(theta))[0]
            s = kernel.best_dual_scale(theta, lam / dn.max())
            gap = sol.objective_value - kernel.dual_value(s * theta)
            r = np.sqrt(2.0 * kernel.curvature * max(gap, 0.0))
            zero = np.abs(sol.U).max(axis=(0, 2)) == 0
            n_exact = int(np.sum(s * dn + r * exact < lam))
            n_cheap = int(np.sum(s * dn + r * cheap < lam))
            print(f"| {frac:g} | {tol:g} | {secs:.2f} | {secs / t_ref:.2f}x | {int(zero.sum())} | {n_exact} | "
                  f"{n_cheap} |", flush=True)


def _extrapolate(thetas, grads):
    T = np.stack([t.ravel() for t in thetas])
    Ud = np.diff(T, axis=0)
    Mm = Ud @ Ud.T
    z = np.linalg.solve(Mm + 1e-14 * np.trace(Mm) * np.eye(Mm.shape[0]), np.ones(Mm.shape[0]))
    w = z / z.sum()
    return np.tensordot(w, np.stack(thetas[1:]), axes=1), np.tensordot(w, np.stack(grads[1:]), axes=1)


def extrapolation(n_iter: int = 600, every: int = 10, K: int = 5) -> None:
    from cvxnn.native.fista import GatedProblem, initial_step, rfista
    from cvxnn.operators import ImplicitDesign

    X, Y, pats, kernel = _setup()
    n = X.shape[0]
    lam = 0.01 * n
    op = ImplicitDesign(pats.design(X), pats.mask, n_outputs=Y.shape[1])
    prob = GatedProblem(op, kernel, lam)
    U0 = np.zeros((op.d, op.p, op.c))
    hist: list = []
    rows = []
    best = {"P": np.inf, "D": -np.inf, "De": -np.inf}

    def monitor(step) -> bool:
        best["P"] = min(best["P"], prob.primal(step.img, step.penalty))
        if step.k % every:
            return False
        best["D"] = max(best["D"], prob.dual(step.gimg_y, step.grad_y))
        hist.append((step.gimg_y.copy(), step.grad_y.copy()))
        del hist[:-(K + 1)]
        if len(hist) == K + 1:
            th, G = _extrapolate([h[0] for h in hist], [h[1] for h in hist])
            De = prob.dual(th, G)
            if np.isfinite(De):
                best["De"] = max(best["De"], De)
        rows.append((step.k, (best["P"] - best["D"]) / best["P"],
                     (best["P"] - max(best["D"], best["De"])) / best["P"]))
        return False

    rfista(prob, U0, np.zeros((n, op.c)), eta0=initial_step(op, kernel), max_iter=n_iter, monitor=monitor)
    print(f"\nR-FISTA on digits, lam = 0.01 n, dual extrapolation from the last {K + 1} checks "
          f"(every {every} iterations)")
    print("| iteration | rel. gap, plain dual | rel. gap, best of plain and extrapolated | ratio |")
    print("|---|---|---|---|")
    for k, plain, extra in rows[::max(1, len(rows) // 12)]:
        print(f"| {k} | {plain:.3e} | {extra:.3e} | {plain / extra:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="screening,extrapolation")
    args = ap.parse_args()
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if not sections or set(sections) - {"screening", "extrapolation"}:
        ap.error(f"unknown --sections {sorted(set(sections) - {'screening', 'extrapolation'})}; "
                 "choose from screening, extrapolation")
    if "screening" in sections:
        screening()
    if "extrapolation" in sections:
        extrapolation()


if __name__ == "__main__":
    main()
