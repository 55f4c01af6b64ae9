"""Build + compile time of the C-ReLU CVXPY program versus a hand-written vectorised program.

Run:  python benchmarks/bench_builders.py [--quick]

For n=1000, d=20 and p in {100, 400, 1000} it times (a) ``cvxnn.build_program`` followed by
CVXPY's compilation for Clarabel (``problem.get_problem_data``), and (b) the same program written
by hand in the vectorised form a CVXPY expert would write, measured in the same run. It prints
both times, their ratio (goal <= 1.5) and the growth in p (goal: about linear).
Thread settings are fixed to one BLAS thread and printed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import cvxpy as cp  # noqa: E402
import numpy as np  # noqa: E402

import cvxnn  # noqa: E402
from cvxnn.datasets import planted_teacher  # noqa: E402


def hand_written(X, y, G, lam):
    """The reference: C-ReLU written directly in CVXPY, vectorised."""
    M = (X @ G >= 0).astype(float)
    S = 2 * M - 1
    d, p = G.shape
    V = cp.Variable((d, p))
    W = cp.Variable((d, p))
    lam_p = cp.Parameter(nonneg=True, value=lam)
    pred = cp.sum(cp.multiply(M, X @ (V - W)), axis=1)
    obj = 0.5 * cp.sum_squares(pred - y) + lam_p * (cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0)))
    cons = [cp.multiply(S, X @ V) >= 0, cp.multiply(S, X @ W) >= 0]
    return cp.Problem(cp.Minimize(obj), cons)


def timed(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (n=300, p in {50, 100, 200})")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    n, d = (300, 10) if args.quick else (1000, 20)
    ps = (50, 100, 200) if args.quick else (100, 400, 1000)
    X, y = planted_teacher(n, d, seed=0)
    rng = np.random.default_rng(0)
    print(f"C-ReLU build+compile for Clarabel, n={n}, d={d}; "
          f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, best of {args.repeats}")
    print(f"{'p':>6} {'cvxnn [s]':>10} {'hand [s]':>10} {'ratio':>7} {'cvxnn s/pattern':>16}")
    rows = []
    for p in ps:
        G = rng.standard_normal((d, p))

        def ours():
            pats = cvxnn.Patterns.from_gates(X, G)
            prog = cvxnn.build_program(X, y, activation="relu", lam=0.1, patterns=pats)
            prog.problem.get_problem_data(cp.CLARABEL)

        def ref():
            hand_written(X, y, G, 0.1).get_problem_data(cp.CLARABEL)

        t_ours = timed(ours, args.repeats)
        t_ref = timed(ref, args.repeats)
        rows.append((p, t_ours, t_ref))
        print(f"{p:>6} {t_ours:>10.3f} {t_ref:>10.3f} {t_ours / t_ref:>7.2f} {t_ours / p:>16.2e}")
    (p0, t0, _), (p1, t1, _) = rows[0], rows[-1]
    print(f"growth from p={p0} to p={p1}: time x{t1 / t0:.2f} for p x{p1 / p0:.1f} "
          f"(log-log slope {np.log(t1 / t0) / np.log(p1 / p0):.2f}; 1.0 = linear)")
    worst = max(r[1] / r[2] for r in rows)
    print(f"worst ratio cvxnn / hand-written: {worst:.2f} (goal <= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
