"""Build + compile time of the C-ReLU CVXPY program versus a hand-written vectorised program.

Run:  python benchmarks/bench_builders.py [--quick] [--repeats R] [--no-default-backend]

For n=1000, d=20 and p in {100, 400, 1000} (``--quick``: n=300, d=10, p in {50, 100, 200}) it
times, in the same run:

* ``cvxnn``: ``Patterns.from_gates`` + ``build_program`` + ``ConvexProgram.compile("CLARABEL")``
  (CVXPY's ``get_problem_data``, with cvxnn's ``DEFAULT_CANON_BACKEND``);
* ``hand``: the same program written by hand in the vectorised form a careful CVXPY user writes
  (one ``d x p`` variable per sign, ``norm(.., axis=0)``, ``multiply(S, X @ V) >= 0``, ``lam``
  a DPP parameter), compiled with ``get_problem_data(CLARABEL)`` and the same canonicalisation
  backend as cvxnn (the faster one; see ``cvxnn.builders.DEFAULT_CANON_BACKEND``);
* ``hand-default`` (informational, skip with ``--no-default-backend``): the hand-written program
  compiled with CVXPY's default backend (C++), as an unconfigured user would.

Method. Every measurement runs in a fresh Python process (all sides and sizes start from the
same state: imports done and a tiny problem compiled first, so no lazy import is timed, and no
heap left over from an earlier large compile; in one long-lived process the small sizes reuse
pages freed by earlier compiles and look unfairly cheap). Each (p, side) is measured
``--repeats`` times, interleaved in a rotating order, and the minimum is kept. The primary time
is the process CPU time (user + system) of build + compile: the compile is single-threaded (one
BLAS thread), so on an idle machine it equals wall time, and unlike wall time it does not count
the time other jobs hold the CPU. Wall time and the user/system split are printed too. System
time is mostly the kernel handing out fresh memory pages (CVXPY allocates several GB at p=1000).

Goals (issue 2): growth "about linear" in p, read as a log-log slope <= 1.15 between the
smallest and the largest p, and cvxnn within 1.5x of the hand-written program at every p.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import cvxpy as cp
import numpy as np

import cvxnn
from cvxnn.builders import DEFAULT_CANON_BACKEND
from cvxnn.datasets import planted_teacher

SLOPE_GOAL = 1.15
RATIO_GOAL = 1.5
SIDES = ("cvxnn", "hand", "hand-default")


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


def _build_and_compile(side: str, X, y, G) -> None:
    if side == "cvxnn":
        pats = cvxnn.Patterns.from_gates(X, G)
        prog = cvxnn.build_program(X, y, activation="relu", lam=0.1, patterns=pats)
        prog.compile(cp.CLARABEL)
    elif side == "hand":
        hand_written(X, y, G, 0.1).get_problem_data(cp.CLARABEL, canon_backend=DEFAULT_CANON_BACKEND)
    elif side == "hand-default":
        hand_written(X, y, G, 0.1).get_problem_data(cp.CLARABEL)
    else:
        raise ValueError(side)


def worker(spec: dict) -> dict:
    """One measurement in this (fresh) process: warm-up on a tiny problem, then time the real one."""
    n, d, p = spec["n"], spec["d"], spec["p"]
    X, y = planted_teacher(n, d, seed=0)
    G = np.random.default_rng(spec["p"]).standard_normal((d, p))
    Xw, yw = planted_teacher(30, d, seed=1)
    _build_and_compile(spec["side"], Xw, yw, np.random.default_rng(1).standard_normal((d, 5)))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()
    _build_and_compile(spec["side"], X, y, G)
    wall = time.perf_counter() - w0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    return {"wall": wall, "user": user, "sys": system, "cpu": user + system,
            "maxrss_gb": r1.ru_maxrss / 2**20}


def measure(spec: dict) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def slope(t0: float, t1: float, p0: int, p1: int) -> float:
    return float(np.log(t1 / t0) / np.log(p1 / p0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (n=300, d=10, p in {50, 100, 200})")
    parser.add_argument("--repeats", type=int, default=2, help="fresh-process runs per (p, side); min is kept")
    parser.add_argument("--no-default-backend", action="store_true",
                        help="skip the informational hand-written run with CVXPY's default backend")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    n, d = (300, 10) if args.quick else (1000, 20)
    ps = (50, 100, 200) if args.quick else (100, 400, 1000)
    sides = SIDES[:2] if args.no_default_backend else SIDES
    print(f"C-ReLU build+compile for Clarabel (problem.get_problem_data), n={n}, d={d}, p in {ps}")
    print(f"cvxpy {cp.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"threads: OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']} "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} MKL_NUM_THREADS={os.environ['MKL_NUM_THREADS']}")
    print(f"settings: cvxnn = build_program + compile() with canon_backend={DEFAULT_CANON_BACKEND!r} "
          f"(cvxnn default); hand = hand-written, canon_backend={DEFAULT_CANON_BACKEND!r}"
          + ("; hand-default = hand-written, CVXPY's default backend "
             f"({cp.settings.DEFAULT_CANON_BACKEND!r}), informational" if "hand-default" in sides else ""))
    print(f"each number: min over {args.repeats} fresh-process runs; time = process CPU (user+sys) "
          "of build+compile [s]; wall and user/sys in the second table")
    best: dict[tuple[str, int], dict] = {}
    for p in ps:
        for rep in range(args.repeats):
            # rotate the order: a process that starts right after another one's large compile
            # gets recently freed (cheaper) memory pages, so no side may always go first
            for side in sides[rep % len(sides):] + sides[:rep % len(sides)]:
                r = measure({"side": side, "n": n, "d": d, "p": p})
                key = (side, p)
                if key not in best or r["cpu"] < best[key]["cpu"]:
                    best[key] = r
        print(f"  measured p={p} (load average {os.getloadavg()[0]:.1f})", flush=True)

    print()
    head = f"{'p':>6} " + " ".join(f"{s + ' cpu':>17}" for s in sides) + f" {'cvxnn/hand':>11}"
    if "hand-default" in sides:
        head += f" {'cvxnn/hand-default':>19}"
    print(head)
    for p in ps:
        row = f"{p:>6} " + " ".join(f"{best[(s, p)]['cpu']:>17.2f}" for s in sides)
        row += f" {best[('cvxnn', p)]['cpu'] / best[('hand', p)]['cpu']:>11.2f}"
        if "hand-default" in sides:
            row += f" {best[('cvxnn', p)]['cpu'] / best[('hand-default', p)]['cpu']:>19.2f}"
        print(row)
    print()
    print(f"{'p':>6} {'side':>13} {'wall':>8} {'user':>8} {'sys':>8} {'maxrss GB':>10}")
    for p in ps:
        for s in sides:
            r = best[(s, p)]
            print(f"{p:>6} {s:>13} {r['wall']:>8.2f} {r['user']:>8.2f} {r['sys']:>8.2f} {r['maxrss_gb']:>10.2f}")
    print()
    p0, p1 = ps[0], ps[-1]
    slopes = {}
    for s in sides:
        t0, t1 = best[(s, p0)]["cpu"], best[(s, p1)]["cpu"]
        u0, u1 = best[(s, p0)]["user"], best[(s, p1)]["user"]
        w0, w1 = best[(s, p0)]["wall"], best[(s, p1)]["wall"]
        slopes[s] = slope(t0, t1, p0, p1)
        print(f"growth {s:>12} p={p0}->{p1} (x{p1 / p0:.0f}): cpu x{t1 / t0:.1f} (log-log slope "
              f"{slopes[s]:.2f}); user only x{u1 / u0:.1f} (slope {slope(u0, u1, p0, p1):.2f}); "
              f"wall x{w1 / w0:.1f} (slope {slope(w0, w1, p0, p1):.2f})")
    worst = max(best[("cvxnn", p)]["cpu"] / best[("hand", p)]["cpu"] for p in ps)
    print()
    print(f"{'PASS' if slopes['cvxnn'] <= SLOPE_GOAL else 'FAIL'}: cvxnn grows about linearly in p "
          f"(log-log slope of CPU time {slopes['cvxnn']:.2f} <= {SLOPE_GOAL}; hand-written: {slopes['hand']:.2f})")
    print(f"{'PASS' if worst <= RATIO_GOAL else 'FAIL'}: cvxnn within {RATIO_GOAL}x of the hand-written "
          f"program (worst ratio {worst:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
