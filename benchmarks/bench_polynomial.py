"""Benchmark of the polynomial-activation programs against non-convex training, same run.

Usage::

    python benchmarks/bench_polynomial.py            # d = 5, 10, 20, 40 (a few minutes on 1 core)
    python benchmarks/bench_polynomial.py --quick    # d = 5, 10

Threads are pinned to one (``OPENBLAS_NUM_THREADS=1`` and friends, set before numpy is
imported); the settings are printed. Data: ``n = 200`` Gaussian samples, targets from a planted
network of 3 unit-norm neurons plus noise; ``lam = 0.05 lam_max`` with
``lam_max = max_{||w||=1} |y^T sigma(X w)|`` (the smallest ``lam`` with the zero network
optimal, :func:`cvxnn.native.polynomial.polynomial_dual_norm` at ``theta = -y``).

For each ``d``:

1. **General activation** ``sigma(t) = t^2 + 0.5 t - 0.2``: the SDP lift
   (:func:`cvxnn.polynomial.build_polynomial_program`, Clarabel; build + compile + solve time),
   its value ``p*``, the objective of the mapped network (``to_network``) and its certified
   relative duality gap; against :func:`cvxnn.polynomial.fit_nonconvex` (L-BFGS-B) at the
   width of the mapped network from 5 random starts: mean time per start, the best relative
   excess over ``p*`` and how many starts came within ``1e-4`` of it.
2. **Quadratic activation** ``sigma(t) = t^2``: the nuclear-norm program with Clarabel and with
   the native R-FISTA solver (relative gap ``1e-7``, certified), and L-BFGS as above.

Ratios are of times measured in this run. No number is invented: a failing solver is reported.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import platform
import sys
import time
import warnings

import numpy as np

from cvxnn.errors import CvxnnError
from cvxnn.native.polynomial import polynomial_dual_norm, polynomial_duality_gap, solve_quadratic_native
from cvxnn.polynomial import build_polynomial_program, build_quadratic_program, fit_nonconvex

N = 200
STARTS = 5
NEAR = 1e-4


def planted(d: int, a: float, b: float, c: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, d))
    W = rng.standard_normal((d, 3))
    W /= np.linalg.norm(W, axis=0)
    T = X @ W
    y = (a * T * T + b * T + c) @ np.array([1.0, -0.7, 0.5]) + 0.1 * rng.standard_normal(N)
    return X, y


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def nonconvex(X, y, width, a, b, c, lam, p_star):
    times, excess = [], []
    for s in range(STARTS):
        net, t = timed(lambda s=s: fit_nonconvex(X, y, width=width, a=a, b=b, c=c, lam=lam, seed=s,
                                                 max_iter=5000))
        times.append(t)
        excess.append((net.objective(X, y, lam=lam) - p_star) / abs(p_star))
    return float(np.mean(times)), float(min(excess)), sum(e <= NEAR for e in excess)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="d = 5, 10 only")
    args = parser.parse_args()
    dims = (5, 10) if args.quick else (5, 10, 20, 40)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {platform.machine()}, "
          f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, n={N}, starts={STARTS}")

    print("\n1. sigma(t) = t^2 + 0.5 t - 0.2: SDP lift (Clarabel) vs L-BFGS at the mapped width")
    print(f"{'d':>3} {'SDP s':>7} {'p*':>11} {'net-p*':>9} {'gap':>8} {'width':>5} "
          f"{'LBFGS s/start':>13} {'best excess':>11} {'near':>5} {'LBFGS/SDP':>9}")
    a, b, c = 1.0, 0.5, -0.2
    for d in dims:
        X, y = planted(d, a, b, c)
        lam = 0.05 * polynomial_dual_norm(X, y, a, b, c)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sol, t_sdp = timed(lambda X=X, y=y, lam=lam: build_polynomial_program(
                    X, y, a=a, b=b, c=c, lam=lam).solve())
        except CvxnnError as exc:  # report, never invent
            print(f"{d:>3} SDP failed: {exc}")
            continue
        net = sol.to_network()
        cert = polynomial_duality_gap(net, X, y, lam=lam)
        t_nc, best, near = nonconvex(X, y, net.n_neurons, a, b, c, lam, sol.objective)
        print(f"{d:>3} {t_sdp:7.3f} {sol.objective:11.6g} {net.objective(X, y, lam=lam) - sol.objective:9.1e} "
              f"{cert.rel_gap:8.1e} {net.n_neurons:5d} {t_nc:13.3f} {best:11.1e} {near:>3}/{STARTS} "
              f"{t_nc / t_sdp:9.2f}")

    print("\n2. sigma(t) = t^2: nuclear-norm program, Clarabel vs native R-FISTA vs L-BFGS")
    print(f"{'d':>3} {'Clarabel s':>10} {'native s':>9} {'native gap':>10} {'|obj diff|':>10} "
          f"{'width':>5} {'LBFGS s/start':>13} {'best excess':>11} {'near':>5} {'Cl/native':>9} {'LBFGS/native':>12}")
    for d in dims:
        X, y = planted(d, 1.0, 0.0, 0.0)
        lam = 0.05 * polynomial_dual_norm(X, y, 1.0, 0.0, 0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref, t_cl = timed(lambda X=X, y=y, lam=lam: build_quadratic_program(X, y, lam=lam).solve())
        solve_quadratic_native(X, y, lam=lam, tol=1e-7)  # warm the caches; timed below
        nat, t_nat = timed(lambda X=X, y=y, lam=lam: solve_quadratic_native(X, y, lam=lam, tol=1e-7))
        width = nat.to_network().n_neurons
        t_nc, best, near = nonconvex(X, y, width, 1.0, 0.0, 0.0, lam, nat.objective)
        print(f"{d:>3} {t_cl:10.3f} {t_nat:9.4f} {nat.rel_gap:10.1e} "
              f"{abs(nat.objective - ref.objective) / abs(ref.objective):10.1e} {width:5d} {t_nc:13.3f} "
              f"{best:11.1e} {near:>3}/{STARTS} {t_cl / t_nat:9.1f} {t_nc / t_nat:12.1f}")


if __name__ == "__main__":
    main()
