"""Command line interface: ``cvxnn <command>`` (also ``python -m cvxnn``).

Commands
--------
demo
    Train a small C-ReLU network with Clarabel on the shipped teacher dataset and print the
    convex objective, the mapped network's objective (they agree), active neurons, status, time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from .builders import build_program
    from .datasets import load_teacher_regression
    from .patterns import sample_patterns

    X, y = load_teacher_regression()
    pats = sample_patterns(X, args.n_gates, seed=args.seed, bias=True)
    t0 = time.perf_counter()
    program = build_program(X, y, activation="relu", loss="squared", lam=args.lam, patterns=pats)
    sol = program.solve(solver="CLARABEL")
    elapsed = time.perf_counter() - t0
    net = sol.to_network(tol=1e-7)
    nc_obj = net.objective(X, y, args.lam)
    rel = abs(nc_obj - sol.objective_value) / max(1.0, abs(sol.objective_value))
    out = sys.stdout
    print("cvxnn demo: convex training of a two-layer ReLU network (C-ReLU, Clarabel)", file=out)
    print(f"data                    : teacher_regression, n={X.shape[0]}, d={X.shape[1]} (+ bias)", file=out)
    print(f"patterns                : {pats.n_patterns} sampled (seed {args.seed})", file=out)
    print(f"lam                     : {args.lam}", file=out)
    print(f"solver status           : {sol.status}", file=out)
    print(f"convex objective        : {sol.objective_value:.10f}", file=out)
    print(f"non-convex objective    : {nc_obj:.10f}  (mapped network)", file=out)
    print(f"relative difference     : {rel:.2e}", file=out)
    print(f"active neurons          : {net.n_neurons}", file=out)
    print(f"max cone violation      : {sol.max_violation:.2e}", file=out)
    print(f"build + solve time      : {elapsed:.3f} s (compile {sol.compile_time:.3f} s)", file=out)
    r2 = 1 - np.sum((net.predict(X) - y) ** 2) / np.sum((y - y.mean()) ** 2)
    print(f"training R^2            : {r2:.4f}", file=out)
    return 0 if sol.converged and rel < 1e-6 else 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cvxnn", description="Two-layer networks by convex optimization.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v, -vv)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small C-ReLU network on shipped data")
    demo.add_argument("--lam", type=float, default=0.1, help="regularisation strength (default 0.1)")
    demo.add_argument("--n-gates", type=int, default=40, help="gates to sample (default 40)")
    demo.add_argument("--seed", type=int, default=0, help="seed for the gates (default 0)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cvxnn`` console script; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from .errors import CvxnnError

    try:
        return int(args.func(args))
    except CvxnnError as exc:
        print(f"cvxnn: error: {exc}", file=sys.stderr)
        return 2
