"""Multi-class C-GReLU: the gated working set against plain R-FISTA, scikit-learn's MLP and
CVXPY + Clarabel (issue 15; results in docs/native.md, "Multi-class C-GReLU").

Run with one BLAS thread so the ratios compare algorithms, not thread counts::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_multiclass.py [--repeats 3] [--sections digits,synthetic,cv]

Every timing is the median of ``--repeats`` runs, and every ratio is taken within one run.

* ``digits``: ``load_digits``, standardized, 70/30 split (``random_state=0``), ``n_gates=100``,
  ``lam = 0.01 n``, cross-entropy, nuclear norms: ``ConvexGatedReLUClassifier`` (working set)
  against ``MLPClassifier()`` (the two alternate ``--repeats`` times: medians, and the median of
  the pairs' ratios), and the same program by plain R-FISTA ("before").
* ``synthetic``: ``n = 5000``, ``d = 40``, ``c = 11`` classes from a planted ReLU teacher, ``p = 100``
  patterns: working set (its R-FISTA continuation in float32, and in float64) against plain
  R-FISTA (iterations, time per iteration) and the MLP, and at
  ``n = 300, d = 10, p = 20`` against CVXPY + Clarabel (what it compiles in seconds).
* ``cv``: ``ConvexGatedReLUClassifierCV`` against ``GridSearchCV`` over the same 5 values of ``lam``
  (3 folds) on digits, and the ratio to one fit (``--repeats`` interleaved pairs of one fit and
  the CV: medians, and the median of the pairs' ratios; the ``cv_tol=None`` and ``GridSearchCV``
  runs once each). With ``--cv-n-jobs k`` (k > 1) the CV and ``GridSearchCV`` also run once each
  with ``n_jobs=k`` (joblib's processes, one BLAS thread each; a first untimed call starts the
  workers), against the same one fit on one thread. With ``--cv-seeds 0,1,2,3,4`` the interleaved
  pairs also run for each of those gate seeds (``random_state``): the ratio, the chosen ``lam``
  and the refit's solve time per seed, and the median ratio over the seeds. One seed's ratio
  depends on which ``lam`` the CV picks (the refit at ``0.001 n`` costs about twice the one at
  ``0.003 n``), and on digits the two smallest values often tie in the exact CV scores, so that
  the loose fold fits break the tie either way.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

logger = logging.getLogger("bench_multiclass")


def _median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


def _plain_rfista(X, Y, pats, lam, tol, loss="cross_entropy"):
    """The "before" path: R-FISTA on the full program (no working set)."""
    from cvxnn.losses import get_loss
    from cvxnn.native._losses import make_kernel
    from cvxnn.native.fista import GatedProblem, initial_step, solve_gated
    from cvxnn.operators import ImplicitDesign

    Xa = pats.design(X)
    kernel = make_kernel(get_loss(loss), Y, np.float64)
    op = ImplicitDesign(Xa, pats.mask, n_outputs=Y.shape[1])
    prob = GatedProblem(op, kernel, lam)
    res = solve_gated(prob, np.zeros((Xa.shape[1], pats.n_patterns, Y.shape[1])), tol=tol, max_iter=20_000,
                      eta0=initial_step(op, kernel))
    return res


def _solve_ws(X, Y, pats, lam, tol, loss="cross_entropy", continue_float32=True):
    import cvxnn.native.solve as native_solve
    from cvxnn.native import solve_native

    before = native_solve.CONTINUE_FLOAT32
    native_solve.CONTINUE_FLOAT32 = continue_float32  # False: R-FISTA after a dense hand-over in float64
    try:
        return solve_native(X, Y, pats, activation="gated_relu", loss=loss, lam=lam, tol=tol, max_iter=20_000)
    finally:
        native_solve.CONTINUE_FLOAT32 = before


def bench_digits(repeats: int, tol: float) -> None:
    from sklearn.neural_network import MLPClassifier

    from cvxnn.estimators import ConvexGatedReLUClassifier

    Xtr, Xte, ytr, yte = _digits()
    n = Xtr.shape[0]
    lam = 0.01 * n
    est = ConvexGatedReLUClassifier(lam=lam, n_gates=100, random_state=0, tol=tol)
    mlp = MLPClassifier(random_state=0)
    # the two fits alternate, so that the machine's drift hits both alike
    t_cgs, t_mlps = [], []
    for _ in range(repeats):
        t_cgs.append(_median_time(lambda: est.fit(Xtr, ytr), 1)[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_mlps.append(_median_time(lambda: mlp.fit(Xtr, ytr), 1)[0])
    t_cg, t_mlp = statistics.median(t_cgs), statistics.median(t_mlps)
    pairs = [a / b for a, b in zip(t_cgs, t_mlps, strict=True)]
    sol = est.solution_
    # the same program, solved directly: working set vs plain R-FISTA
    pats = est.patterns_
    Xs = est.standardizer_.transform(Xtr) if est.standardizer_ is not None else Xtr
    Y = np.eye(10)[np.searchsorted(est.classes_, ytr)]
    t_ws, ws = _median_time(lambda: _solve_ws(Xs, Y, pats, lam, tol), repeats)
    t_rf, rf = _median_time(lambda: _plain_rfista(Xs, Y, pats, lam, tol), repeats)
    print(f"\n## digits (n={n}, d=64, c=10, n_gates=100, lam=0.01 n={lam:.2f}, tol={tol:g}, "
          f"median of {repeats})")
    print("| method | time (s) | vs MLP | iterations | ms / iteration | status | test accuracy |")
    print("|---|---|---|---|---|---|---|")
    print(f"| ConvexGatedReLUClassifier (working set) | {t_cg:.2f} | {t_cg / t_mlp:.2f}x | {sol.iterations} | "
          f"{1e3 * t_cg / max(sol.iterations, 1):.2f} | {sol.status} | {est.score(Xte, yte):.4f} |")
    print(f"| MLPClassifier() | {t_mlp:.2f} | 1.00x | {mlp.n_iter_} epochs | | | {mlp.score(Xte, yte):.4f} |")
    print(f"| solve_native, working set | {t_ws:.2f} | {t_ws / t_mlp:.2f}x | {ws.iterations} | "
          f"{1e3 * t_ws / max(ws.iterations, 1):.2f} | {ws.status} | |")
    print(f"| plain R-FISTA (before) | {t_rf:.2f} | {t_rf / t_mlp:.2f}x | {rf.iterations} | "
          f"{1e3 * t_rf / max(rf.iterations, 1):.2f} | {'optimal' if rf.converged else 'max_iterations'} | |")
    print(f"ConvexGatedReLUClassifier / MLPClassifier, median of the {repeats} alternated pairs: "
          f"{statistics.median(pairs):.2f}x (range {min(pairs):.2f}x to {max(pairs):.2f}x)")
    print(f"working set / R-FISTA time: {t_ws / t_rf:.2f}; objectives {ws.objective_value:.8f} vs {rf.primal:.8f}; "
          f"working set: {ws.extra.get('working_set_rounds')} rounds, {ws.extra.get('working_set_atoms')} atoms, "
          f"fallback {ws.extra.get('working_set_fallback')}")


def _synthetic(n: int, d: int, c: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W1 = rng.standard_normal((d, 2 * c)) / np.sqrt(d)
    W2 = rng.standard_normal((2 * c, c))
    Z = np.maximum(X @ W1, 0) @ W2
    labels = np.argmax(Z + 0.5 * Z.std() * rng.standard_normal(Z.shape), axis=1)
    return X, labels


def bench_synthetic(repeats: int, tol: float) -> None:
    import cvxpy as cp
    from sklearn.neural_network import MLPClassifier

    from cvxnn import build_program, sample_patterns

    n, d, c, p = 5000, 40, 11, 100
    X, labels = _synthetic(n, d, c)
    Y = np.eye(c)[labels]
    pats = sample_patterns(X, p, seed=0, bias=True)
    lam = 0.01 * n
    t_ws, ws = _median_time(lambda: _solve_ws(X, Y, pats, lam, tol), repeats)
    t_ws64, ws64 = _median_time(lambda: _solve_ws(X, Y, pats, lam, tol, continue_float32=False), repeats)
    t_rf, rf = _median_time(lambda: _plain_rfista(X, Y, pats, lam, tol), repeats)
    mlp = MLPClassifier(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_mlp, _ = _median_time(lambda: mlp.fit(X, labels), repeats)
    print(f"\n## synthetic (n={n}, d={d}, c={c}, p={pats.n_patterns}, lam=0.01 n, tol={tol:g}, median of {repeats})")
    print("| method | time (s) | vs MLP | iterations | ms / iteration | status |")
    print("|---|---|---|---|---|---|")
    print(f"| working set (after) | {t_ws:.2f} | {t_ws / t_mlp:.2f}x | {ws.iterations} | "
          f"{1e3 * t_ws / max(ws.iterations, 1):.2f} | {ws.status} |")
    print(f"| working set, R-FISTA continued in float64 | {t_ws64:.2f} | {t_ws64 / t_mlp:.2f}x | {ws64.iterations} | "
          f"{1e3 * t_ws64 / max(ws64.iterations, 1):.2f} | {ws64.status} |")
    print(f"| plain R-FISTA (before) | {t_rf:.2f} | {t_rf / t_mlp:.2f}x | {rf.iterations} | "
          f"{1e3 * t_rf / max(rf.iterations, 1):.2f} | {'optimal' if rf.converged else 'max_iterations'} |")
    print(f"| MLPClassifier() | {t_mlp:.2f} | 1.00x | {mlp.n_iter_} epochs | | |")
    print(f"working set / R-FISTA time: {t_ws / t_rf:.2f}; objectives {ws.objective_value:.8f} vs {rf.primal:.8f}")
    # a size CVXPY compiles in seconds
    ns, ds, ps = 300, 10, 20
    Xs, ls = _synthetic(ns, ds, c, seed=1)
    Ys = np.eye(c)[ls]
    pats_s = sample_patterns(Xs, ps, seed=0, bias=True)
    lam_s = 0.01 * ns
    t_cvx, ref = _median_time(lambda: build_program(Xs, Ys, activation="gated_relu", loss="cross_entropy",
                                                    lam=lam_s, patterns=pats_s).solve(solver=cp.CLARABEL), 1)
    t_ws_s, ws_s = _median_time(lambda: _solve_ws(Xs, Ys, pats_s, lam_s, tol), repeats)
    print(f"\nsmall (n={ns}, d={ds}, c={c}, p={pats_s.n_patterns}): CVXPY+Clarabel {t_cvx:.2f} s "
          f"(status {ref.status}, objective {ref.objective_value:.8f}), working set {t_ws_s:.3f} s "
          f"({ws_s.status}, objective {ws_s.objective_value:.8f}, gap {ws_s.gap:.2e}); ratio {t_cvx / t_ws_s:.0f}x")


def bench_cv(repeats: int, tol: float, n_jobs: int = 0) -> None:
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from cvxnn.estimators import ConvexGatedReLUClassifier, ConvexGatedReLUClassifierCV

    Xtr, _, ytr, _ = _digits()
    n = Xtr.shape[0]
    lams = np.array([0.1, 0.03, 0.01, 0.003, 0.001]) * n
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    base = {"n_gates": 100, "random_state": 0, "tol": tol}
    # one fit and the CV alternate, so that the machine's drift (up to 20 % here) hits both alike;
    # the ratio reported is the median of the per-pair ratios
    singles, cvs = [], []
    for _ in range(repeats):
        singles.append(_median_time(lambda: ConvexGatedReLUClassifier(lam=0.01 * n, **base).fit(Xtr, ytr), 1)[0])
        t, cv = _median_time(lambda: ConvexGatedReLUClassifierCV(lams=lams, cv=folds, **base).fit(Xtr, ytr), 1)
        cvs.append(t)
    t_single, t_cv = statistics.median(singles), statistics.median(cvs)
    pair = statistics.median(c / s1 for c, s1 in zip(cvs, singles, strict=True))
    t_cv0, cv0 = _median_time(lambda: ConvexGatedReLUClassifierCV(lams=lams, cv=folds, cv_tol=None, **base)
                              .fit(Xtr, ytr), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_gs, gs = _median_time(lambda: GridSearchCV(ConvexGatedReLUClassifier(**base), {"lam": list(lams)},
                                                     cv=folds).fit(Xtr, ytr), 1)
    mean_cv = cv.scores_.mean(axis=0)
    gs_scores = dict(zip(gs.cv_results_["param_lam"], gs.cv_results_["mean_test_score"], strict=True))
    print(f"\n## CV on digits (5 lams, 3 folds, n_gates=100, tol={tol:g})")
    print("| method | time (s) | / single fit | chosen lam / n | its CV score |")
    print("|---|---|---|---|---|")
    print(f"| single fit (lam = 0.01 n) | {t_single:.2f} | 1.0x | | |")
    print(f"| ConvexGatedReLUClassifierCV (fold fits at cv_tol={cv.cv_tol!r}, i.e. {cv.cv_tol_:g}) | {t_cv:.2f} | "
          f"{t_cv / t_single:.2f}x | {cv.lam_ / n:g} | {mean_cv.max():.4f} |")
    print(f"| ConvexGatedReLUClassifierCV(cv_tol=None) (fold fits at tol) | {t_cv0:.2f} | "
          f"{t_cv0 / t_single:.2f}x | {cv0.lam_ / n:g} | {cv0.scores_.mean(axis=0).max():.4f} |")
    print(f"| GridSearchCV | {t_gs:.2f} | {t_gs / t_single:.2f}x | {gs.best_params_['lam'] / n:g} | "
          f"{gs.best_score_:.4f} |")
    if n_jobs > 1:
        ConvexGatedReLUClassifierCV(lams=lams, cv=folds, n_jobs=n_jobs, **base).fit(Xtr, ytr)  # starts the workers
        t_cvj, cvj = _median_time(lambda: ConvexGatedReLUClassifierCV(lams=lams, cv=folds, n_jobs=n_jobs, **base)
                                  .fit(Xtr, ytr), 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_gsj, gsj = _median_time(lambda: GridSearchCV(ConvexGatedReLUClassifier(**base), {"lam": list(lams)},
                                                           cv=folds, n_jobs=n_jobs).fit(Xtr, ytr), 1)
        print(f"| ConvexGatedReLUClassifierCV(n_jobs={n_jobs}) | {t_cvj:.2f} | {t_cvj / t_single:.2f}x | "
              f"{cvj.lam_ / n:g} | {cvj.scores_.mean(axis=0).max():.4f} |")
        print(f"| GridSearchCV(n_jobs={n_jobs}) | {t_gsj:.2f} | {t_gsj / t_single:.2f}x | "
              f"{gsj.best_params_['lam'] / n:g} | {gsj.best_score_:.4f} |")
    print(f"GridSearchCV score of the CV estimator's lam: {gs_scores.get(cv.lam_, float('nan')):.4f}")
    print(f"CV / one fit, median of the {repeats} interleaved pairs: {pair:.2f}x (range "
          f"{min(c / s1 for c, s1 in zip(cvs, singles, strict=True)):.2f}x to "
          f"{max(c / s1 for c, s1 in zip(cvs, singles, strict=True)):.2f}x)")


def bench_cv_seeds(repeats: int, tol: float, seeds: list[int]) -> None:
    from sklearn.model_selection import StratifiedKFold

    from cvxnn.estimators import ConvexGatedReLUClassifier, ConvexGatedReLUClassifierCV

    Xtr, _, ytr, _ = _digits()
    n = Xtr.shape[0]
    lams = np.array([0.1, 0.03, 0.01, 0.003, 0.001]) * n
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    print(f"\n## CV / one fit by gate seed (digits, 5 lams, 3 folds, n_gates=100, tol={tol:g}; "
          f"{repeats} interleaved pairs each)")
    print("| gate seed | one fit (s) | CV (s) | CV / one fit (median of pairs) | chosen lam / n | refit solve (s) |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for seed in seeds:
        base = {"n_gates": 100, "random_state": seed, "tol": tol}
        singles, cvs, pairs = [], [], []
        for _ in range(repeats):
            t1 = _median_time(lambda b=base: ConvexGatedReLUClassifier(lam=0.01 * n, **b).fit(Xtr, ytr), 1)[0]
            t2, cv = _median_time(lambda b=base: ConvexGatedReLUClassifierCV(lams=lams, cv=folds, **b).fit(Xtr, ytr),
                                  1)
            singles.append(t1)
            cvs.append(t2)
            pairs.append(t2 / t1)
        ratios.append(statistics.median(pairs))
        print(f"| {seed} | {statistics.median(singles):.2f} | {statistics.median(cvs):.2f} | {ratios[-1]:.2f}x | "
              f"{cv.lam_ / n:g} | {cv.best_estimator_.fit_time_:.2f} |")
    print(f"median over the {len(seeds)} seeds: {statistics.median(ratios):.2f}x "
          f"(range {min(ratios):.2f}x to {max(ratios):.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--sections", default="digits,synthetic,cv")
    ap.add_argument("--cv-n-jobs", type=int, default=0,
                    help="cv section: also run the CV and GridSearchCV with n_jobs=k (k > 1)")
    ap.add_argument("--cv-seeds", default="",
                    help="cv section: also the CV / one fit pairs for these gate seeds, e.g. 0,1,2,3,4")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    sections = {"digits": bench_digits, "synthetic": bench_synthetic,
                "cv": lambda r, t: bench_cv(r, t, args.cv_n_jobs)}
    seeds = [int(s) for s in args.cv_seeds.split(",") if s.strip()]
    if seeds:
        sections["cv"] = lambda r, t: (bench_cv(r, t, args.cv_n_jobs), bench_cv_seeds(r, t, seeds))
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    if not chosen or set(chosen) - set(sections):
        ap.error(f"unknown --sections {sorted(set(chosen) - set(sections))}; choose from {sorted(sections)}")
    for name in chosen:
        sections[name](args.repeats, args.tol)


if __name__ == "__main__":
    main()
