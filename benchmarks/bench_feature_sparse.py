"""Feature-sparse penalties on a planted problem: support recovery along the path, and native
R-FISTA against CVXPY+Clarabel on the same program (docs/feature-sparsity.md, "Measured").

Planted problem: ``n`` samples of ``d`` standard normal features; the target is a random ReLU
network of the first ``k`` features only, plus noise. For each penalty the benchmark

1. walks a warm-started path of ``n_lams`` values from ``lam_max`` (``cvxnn.feature_sparsity.
   feature_path``, native R-FISTA for C-GReLU, Clarabel for C-ReLU) and reports, at each ``lam``,
   the number of active features, the true positives, precision and recall against the planted
   support, and whether the first ``k`` features to enter are the planted ones;
2. solves C-GReLU at ``lam = ratio * lam_max`` natively (relative gap ``1e-6``) and with
   CVXPY+Clarabel (compile and solve timed separately), and reports both times, their ratio and
   the relative objective difference, all measured in this run;
3. the same for C-ReLU (native augmented Lagrangian, relative gap and cone violation ``1e-6``)
   on a planted instance and on the standardized diabetes data (scikit-learn), and for vector
   output (``c = 3`` planted outputs, C-GReLU);
4. times the C-ReLU ``lam_max`` program (``cvxnn.native.feature_sparse.feature_relu_lam_max``):
   constraint generation against the whole program posed at once (``LAM_MAX_ROUNDS = 0``), on
   the planted data at ``n = 2000, d = 20``, 50 gates, and on diabetes with 30 gates
   (``--lam-max-only`` runs only this section).

Run (one BLAS thread, as the numbers in the docs were measured)::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_feature_sparse.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from cvxnn import sample_patterns  # noqa: E402
from cvxnn.builders import build_program  # noqa: E402
from cvxnn.feature_penalties import FeatureGroupL2, SparseGroupL2  # noqa: E402
from cvxnn.feature_sparsity import feature_lam_max, feature_path, solve_feature_sparse  # noqa: E402
from cvxnn.patterns import Patterns  # noqa: E402


def planted(n: int, d: int, k: int, seed: int, noise: float = 0.1):
    """``X`` (``n x d``) and ``y``: a 4-neuron ReLU network of the first ``k`` features plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((k, 4)) / np.sqrt(k)
    y = np.maximum(X[:, :k] @ W, 0.0) @ np.array([1.0, -1.0, 0.8, -0.6]) + noise * rng.standard_normal(n)
    return X, y


def path_table(X, y, patterns, penalty, k: int, activation: str, n_lams: int, ratio: float) -> dict:
    path = feature_path(X, y, penalty=penalty, patterns=patterns, activation=activation, n_lams=n_lams,
                        lam_min_ratio=ratio, tol=1e-6, solver="native")
    truth = np.zeros(X.shape[1], dtype=bool)
    truth[:k] = True
    print(f"\n{activation} {penalty!r}: lam_max = {path.lam_max:.4g}, path of {len(path)} lams in "
          f"{path.total_time:.2f} s ({path.solver})")
    print(f"{'lam/lam_max':>11} {'active':>6} {'true':>4} {'prec':>5} {'recall':>6} {'objective':>12}")
    for lam, sup, obj in zip(path.lams, path.supports, path.objectives, strict=True):
        tp = int(np.sum(sup & truth))
        prec = tp / sup.sum() if sup.any() else float("nan")
        print(f"{lam / path.lam_max:11.4f} {int(sup.sum()):6d} {tp:4d} {prec:5.2f} {tp / k:6.2f} {obj:12.6g}")
    order = path.entry_order()
    first_k = set(order[:k].tolist()) == set(range(k))
    # the lams whose support is exactly the planted one
    exact = [float(lam / path.lam_max) for lam, sup in zip(path.lams, path.supports, strict=True)
             if np.array_equal(sup, truth)]
    print(f"first {k} to enter: {order[:k].tolist()} -> planted: {first_k}; lam/lam_max with support == "
          f"truth: {[round(v, 4) for v in exact]}")
    return {"path": path, "first_k": first_k, "exact": exact}


def timing(X, y, patterns, penalty, ratio: float, repeats: int, activation: str = "gated_relu") -> dict:
    lmax = feature_lam_max(X, y, patterns, penalty, activation=activation)
    lam = ratio * lmax
    nat_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        nat = solve_feature_sparse(X, y, penalty=penalty, lam=lam, patterns=patterns, activation=activation,
                                   solver="native", tol=1e-6)
        nat_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    prog = build_program(X, y, activation=activation, patterns=patterns, lam=lam, penalty=penalty)
    build = time.perf_counter() - t0
    compile_s = prog.compile("CLARABEL")
    t0 = time.perf_counter()
    ref = solve_feature_sparse(X, y, penalty=penalty, lam=lam, patterns=patterns, activation=activation,
                               solver="CLARABEL", program=prog)
    solve_s = time.perf_counter() - t0
    t_nat = min(nat_times)
    rel = (nat.objective_value - ref.objective_value) / abs(ref.objective_value)
    cvx_total = build + compile_s + solve_s
    viol = "" if activation == "gated_relu" else f", viol {nat.max_violation:.1e}"
    print(f"{activation} {penalty!r:26} lam={ratio:g} lam_max: native {t_nat:7.3f} s ({nat.solver}, {nat.status}, "
          f"{nat.iterations} it, rel gap {nat.rel_gap:.1e}{viol}) | Clarabel solve {solve_s:7.3f} s ({ref.status}), "
          f"build+compile {build + compile_s:6.2f} s | ratio solve {solve_s / t_nat:6.3g}x, total "
          f"{cvx_total / t_nat:6.3g}x | rel obj diff {rel:+.1e}", flush=True)
    return {"native": t_nat, "clarabel_solve": solve_s, "clarabel_total": cvx_total, "rel_obj": rel,
            "iterations": nat.iterations}


def diabetes():
    """The diabetes data of scikit-learn, features and target standardized (n=442, d=10)."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, (y - y.mean()) / y.std()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--d", type=int, default=40)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--gates", type=int, default=60)
    ap.add_argument("--n-lams", type=int, default=12)
    ap.add_argument("--lam-min-ratio", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-paths", action="store_true", help="only the timing sections")
    ap.add_argument("--lam-max-only", action="store_true", help="only the C-ReLU lam_max section")
    args = ap.parse_args()
    threads = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    print(f"threads: {threads}, cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
    if args.lam_max_only:
        lam_max_section(args.repeats, args.seed)
        return
    X, y = planted(args.n, args.d, args.k, args.seed)
    patterns = sample_patterns(X, args.gates, seed=args.seed)
    print(f"planted problem: n={args.n}, d={args.d}, k={args.k} relevant features, p={patterns.n_patterns} "
          f"patterns, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    penalties = [FeatureGroupL2(), FeatureGroupL2(alpha=0.2), SparseGroupL2(alpha=0.5)]
    if not args.skip_paths:
        paths(X, y, patterns, penalties, args)
    print("\n== native R-FISTA vs CVXPY+Clarabel, C-GReLU, same program ==")
    for ratio in (0.3, 0.1):
        for pen in penalties:
            timing(X, y, patterns, pen, ratio, args.repeats)
    relu_pens = [FeatureGroupL2(), SparseGroupL2(alpha=0.5)]
    n_r, d_r = min(args.n, 200), args.d
    Xr, yr = X[:n_r, :d_r], y[:n_r]
    pr = sample_patterns(Xr, 30, seed=args.seed)
    print(f"\n== native AL vs CVXPY+Clarabel, C-ReLU, planted n={n_r}, d={d_r}, p={pr.n_patterns} ==")
    for ratio in (0.3, 0.1):
        for pen in relu_pens:
            timing(Xr, yr, pr, pen, ratio, 1, activation="relu")
    Xd, yd = diabetes()
    pd_ = sample_patterns(Xd, 30, seed=args.seed)
    print(f"\n== native AL vs CVXPY+Clarabel, C-ReLU, diabetes (standardized) n={Xd.shape[0]}, d={Xd.shape[1]}, "
          f"p={pd_.n_patterns} ==")
    for ratio in (0.3, 0.1):
        for pen in relu_pens:
            timing(Xd, yd, pd_, pen, ratio, 1, activation="relu")
    Xv, Yv = planted_vector(200, 20, args.k, 3, args.seed)
    pv = sample_patterns(Xv, 30, seed=args.seed)
    print(f"\n== vector output (c=3), native R-FISTA vs CVXPY+Clarabel, C-GReLU, n=200, d=20, p={pv.n_patterns} ==")
    for pen in penalties:
        timing(Xv, Yv, pv, pen, 0.3, args.repeats)
    lam_max_section(args.repeats, args.seed)


def lam_max_section(repeats: int, seed: int) -> None:
    """The C-ReLU ``lam_max`` program by constraint generation against the whole program (best of
    ``repeats``, alternated), with the number of cone rows posed and the relative difference of
    the values (both are upper bounds attained by their multipliers: lower is better)."""
    import cvxnn.native.feature_sparse as fs
    from cvxnn.operators import adjoint

    Xp, yp = planted(2000, 20, 4, seed)
    Xd, yd = diabetes()
    cases = [("planted n=2000, d=20", Xp, yp, 50), ("diabetes n=442, d=10", Xd, yd, 30)]
    print("\n== C-ReLU lam_max: constraint generation against the whole program (Clarabel) ==")
    print(f"{'data':22} {'penalty':26} {'gates':>5} {'rows posed':>16} {'generated':>10} {'whole':>10} "
          f"{'ratio':>6} {'rel. diff.':>10}")
    original = fs._cone_rows_program
    for label, X, y, gates in cases:
        pats = sample_patterns(X, gates, seed=seed)
        Xa = pats.design(X)
        C = adjoint(Xa, pats.mask, y)
        for pen in (FeatureGroupL2(), SparseGroupL2(alpha=0.5)):
            posed: list[int] = []

            def counting(Xs, S2, CCs, penalty, c, rows, cols, posed=posed):
                posed.append(rows.size)
                return original(Xs, S2, CCs, penalty, c, rows, cols)

            t_gen, t_whole = np.inf, np.inf
            for _ in range(repeats):
                posed.clear()
                fs._cone_rows_program = counting
                t0 = time.perf_counter()
                v_gen, _ = fs.feature_relu_lam_max(Xa, pats.mask, C, pen)
                t_gen = min(t_gen, time.perf_counter() - t0)
                fs._cone_rows_program = original
                rounds = fs.LAM_MAX_ROUNDS
                fs.LAM_MAX_ROUNDS = 0
                try:
                    t0 = time.perf_counter()
                    v_whole, _ = fs.feature_relu_lam_max(Xa, pats.mask, C, pen)
                    t_whole = min(t_whole, time.perf_counter() - t0)
                finally:
                    fs.LAM_MAX_ROUNDS = rounds
            total = Xa.shape[0] * 2 * pats.n_patterns
            print(f"{label:22} {pen!r:26} {pats.n_patterns:5d} {f'{max(posed)}/{total} ({len(posed)} rounds)':>16} "
                  f"{t_gen:9.2f}s {t_whole:9.2f}s {t_whole / t_gen:5.1f}x {(v_gen - v_whole) / v_whole:10.1e}")


def planted_vector(n: int, d: int, k: int, c: int, seed: int, noise: float = 0.1):
    """``X`` and ``Y`` (``n x c``): a 4-neuron ReLU network of the first ``k`` features, ``c`` outputs."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    H = np.maximum(X[:, :k] @ (rng.standard_normal((k, 4)) / np.sqrt(k)), 0.0)
    return X, H @ rng.standard_normal((4, c)) + noise * rng.standard_normal((n, c))


def paths(X, y, patterns, penalties, args) -> None:
    print("\n== support along the path ==")
    for pen in penalties:
        path_table(X, y, patterns, pen, args.k, "gated_relu", args.n_lams, args.lam_min_ratio)
    # C-ReLU (native AL) on a smaller instance, (a) with the dense Gaussian gates and (b) with
    # gates supported on the features the gated path selected (two-stage): the cones K_i of
    # dense gates contain no sparse neurons
    n_r, d_r = min(args.n, 120), min(args.d, 20)
    Xs, ys = X[:n_r, :d_r], y[:n_r]
    dense = sample_patterns(Xs, 20, seed=args.seed)
    gated = feature_path(Xs, ys, penalty=FeatureGroupL2(), patterns=sample_patterns(Xs, 40, seed=args.seed),
                         n_lams=args.n_lams, lam_min_ratio=args.lam_min_ratio)
    sel = gated.supports[np.argmax(gated.n_features >= args.k)]  # first support with >= k features
    gates = np.zeros((d_r, 20))
    gates[sel] = np.random.default_rng(args.seed).standard_normal((int(sel.sum()), 20))
    two_stage = Patterns.from_gates(Xs, gates, unique=True)
    for label, pats in (("dense gates", dense), (f"gates on the selected features {np.flatnonzero(sel).tolist()}",
                                                 two_stage)):
        print(f"\nC-ReLU, n={n_r}, d={d_r}, {label}:")
        res = path_table(Xs, ys, pats, FeatureGroupL2(), args.k, "relu", 5, args.lam_min_ratio)
        rows = res["path"].row_norms[-1]
        print(f"at the smallest lam: largest irrelevant row norm / smallest relevant row norm = "
              f"{rows[args.k:].max() / rows[: args.k].min():.3g}")


if __name__ == "__main__":
    main()
