"""Defaults of the gated estimators chosen by measurement (issue 15; results in
docs/estimators.md, "How the defaults were chosen").

Run with one BLAS thread (the numbers in the docs were measured so, on a shared 2-core machine)::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_defaults.py [--sections sweep,mlp,cv,relu,relu_cv]
                                                               [--datasets iris,wine,...]

Problems: scikit-learn's breast cancer, wine, iris, digits (classification) and diabetes
(regression); ``make_classification`` with n=2000, d=20, 5 classes and n=3000, d=40, 11 classes;
``make_friedman1`` with n=2000, d=10, noise 1 (regression). Every problem is standardized
(``StandardScaler`` fitted on the training part) and split 70/30, stratified for
classification, ``random_state=0``. Scores are test accuracy (classification) or
test R^2 (regression). Every ratio is taken within one run.

* ``sweep``: ``ConvexGatedReLUClassifier`` / ``ConvexGatedReLURegressor`` varied one factor at a
  time around a centre (``n_gates``; ``lam`` as a fraction of ``n`` and of ``lam_max``; ``tol``),
  plus the former defaults (``lam=0.1`` / ``1.0``, ``n_gates=32``, ``tol=1e-6``) and the chosen
  ones (the constructor's defaults, seeds 0, 1, 2). Each row: score, fit seconds, status, the
  certified gap and its ratio to the objective.
* ``mlp``: ``MLPClassifier()`` / ``MLPRegressor()`` with scikit-learn's defaults
  (``random_state=0``) and with ``alpha`` tuned by ``GridSearchCV`` (3 folds,
  ``alpha in {1e-4, 1e-3, 1e-2, 1e-1, 1}``). The regression MLPs get standardized targets
  (``TransformedTargetRegressor``), as the convex regressors standardize ``y`` themselves.
* ``cv``: the ``...CV`` gated estimators (5 folds, their default ``n_gates`` and ``tol``) with the
  former grid (10 values down to ``1e-3 lam_max``) and the chosen default grid, the fold fits at
  the default ``cv_tol`` and at ``tol`` (``cv_tol=None``): chosen ``lam``, test score, seconds
  (``--cv-datasets``; default the small problems and digits).
* ``relu``: ``ConvexReLUClassifier`` at its defaults (the gated classifier's ``lam`` rule and
  ``n_gates``, its own ``tol``) against ``ConvexGatedReLUClassifier`` at its defaults, on breast
  cancer, wine and iris: test accuracy, seconds (the ratio within the run), status.
* ``relu_cv`` (not in the default sections: about 4 minutes on digits): ``ConvexReLUClassifierCV``
  / ``ConvexReLURegressorCV`` with their defaults (``random_state=0``) on ``--relu-cv-datasets``
  (default digits): seconds, chosen ``lam``, test score, the refit's solve time, and the score
  of the base estimator at its default ``lam``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

CLASSIFICATION = ("breast_cancer", "wine", "iris", "digits", "synth5", "synth11")
REGRESSION = ("diabetes", "friedman1")
#: the cv section runs 5 folds x the grid per dataset: the small problems and digits by default
CV_DATASETS = ("breast_cancer", "wine", "iris", "digits", "diabetes")
ALPHAS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]

#: the centre of the one-factor-at-a-time sweep
CENTRE = {"n_gates": 100, "lam_n": 1e-2, "tol": 1e-4}
SWEEP_GATES = (16, 32, 64, 100, 200)
SWEEP_LAM_N = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
SWEEP_LAM_MAX = (1e-3, 1e-2, 1e-1)
SWEEP_TOL = (1e-3, 1e-4, 1e-6)


def load(name: str):
    """Standardized 70/30 split (stratified for classification, ``random_state=0``)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name == "synth5":
        X, y = datasets.make_classification(n_samples=2000, n_features=20, n_informative=10, n_classes=5,
                                            random_state=0)
    elif name == "synth11":
        X, y = datasets.make_classification(n_samples=3000, n_features=40, n_informative=20, n_classes=11,
                                            random_state=0)
    elif name == "friedman1":
        X, y = datasets.make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=0)
    else:
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    strat = y if name in CLASSIFICATION else None
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=strat)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


def gated_lam_max(Xtr, ytr, n_gates: int, classification: bool, seed: int = 0) -> float:
    """``lam_max`` of the gated program the estimator solves (same standardization, same gates)."""
    from cvxnn.path import lam_max
    from cvxnn.patterns import sample_patterns
    from cvxnn.preprocessing import Standardizer

    std = Standardizer(center=True, scale=True, center_y=not classification, scale_y=not classification)
    std.fit(Xtr, None if classification else ytr)
    Xs = std.transform(Xtr)
    pats = sample_patterns(Xs, n_gates, seed=seed, bias=True)
    if not classification:
        return lam_max(Xs, std.transform_y(ytr), pats, "gated_relu", "squared")
    classes, inv = np.unique(ytr, return_inverse=True)
    if classes.size == 2:
        return lam_max(Xs, np.where(inv == 1, 1.0, -1.0), pats, "gated_relu", "logistic")
    return lam_max(Xs, np.eye(classes.size)[inv], pats, "gated_relu", "cross_entropy")


def fit_gated(data, classification: bool, **params) -> dict:
    from cvxnn.estimators import ConvexGatedReLUClassifier, ConvexGatedReLURegressor

    Xtr, Xte, ytr, yte = data
    cls = ConvexGatedReLUClassifier if classification else ConvexGatedReLURegressor
    params.setdefault("random_state", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est = cls(**params).fit(Xtr, ytr)
        seconds = time.perf_counter() - t0
    gap = est.gap_
    rel = None if gap is None else gap / max(abs(est.convex_objective_), 1e-300)
    return {"score": float(est.score(Xte, yte)), "seconds": seconds, "status": est.status_, "gap": gap,
            "rel_gap": rel, "neurons": est.n_active_neurons_, "iters": est.n_iter_,
            "lam": float(getattr(est, "lam_", est.lam) if not isinstance(est.lam, str) else est.lam_)}


def _row(label: str, r: dict) -> str:
    gap = "n/a" if r["gap"] is None else f"{r['gap']:.2e}"
    rel = "n/a" if r["rel_gap"] is None else f"{r['rel_gap']:.1e}"
    return (f"  {label:<28} {r['score']:7.4f} {r['seconds']:8.2f}s  {r['status']:<14} gap {gap:>9} "
            f"(rel {rel:>7})  neurons {r['neurons']:>5}  lam {r['lam']:.4g}")


def sweep(name: str, data, out: dict) -> None:
    from cvxnn.estimators import ConvexGatedReLUClassifier, ConvexGatedReLURegressor

    classification = name in CLASSIFICATION
    n = data[0].shape[0]
    cache: dict = {}

    def run(label, n_gates, lam, tol, **kw):
        key = (n_gates, round(lam, 12) if not isinstance(lam, str) else lam, tol, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = fit_gated(data, classification, n_gates=n_gates, lam=lam, tol=tol, **kw)
        r = dict(cache[key])
        print(_row(label, r), flush=True)
        out.setdefault(name, {})[label] = r
        return r

    lmax = gated_lam_max(data[0], data[2], CENTRE["n_gates"], classification)
    print(f"\n== {name}: n_train={n}, d={data[0].shape[1]}, lam_max={lmax:.4g} "
          f"(lam_max/n={lmax / n:.3g}); centre n_gates={CENTRE['n_gates']}, lam={CENTRE['lam_n']:g} n, "
          f"tol={CENTRE['tol']:g}", flush=True)
    print(f"  {'config':<28} {'score':>7} {'fit':>9}  status", flush=True)
    g0, c0, t0 = CENTRE["n_gates"], CENTRE["lam_n"], CENTRE["tol"]
    old_lam = 0.1 if classification else 1.0
    run("former defaults", 32, old_lam, 1e-6)
    for g in SWEEP_GATES:
        run(f"n_gates={g}", g, c0 * n, t0)
    for c in SWEEP_LAM_N:
        run(f"lam={c:g} n", g0, c * n, t0)
    for c in SWEEP_LAM_MAX:
        run(f"lam={c:g} lam_max", g0, c * lmax, t0)
    for tol in SWEEP_TOL:
        run(f"tol={tol:g}", g0, c0 * n, tol)
    cls = ConvexGatedReLUClassifier if classification else ConvexGatedReLURegressor
    for seed in (0, 1, 2):  # the constructor's defaults, as a user who changes nothing gets them
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            est = cls(random_state=seed).fit(data[0], data[2])
            secs = time.perf_counter() - t
        gap = est.gap_
        r = {"score": float(est.score(data[1], data[3])), "seconds": secs, "status": est.status_, "gap": gap,
             "rel_gap": None if gap is None else gap / max(abs(est.convex_objective_), 1e-300),
             "neurons": est.n_active_neurons_, "iters": est.n_iter_,
             "lam": float(getattr(est, "lam_", est.lam) if isinstance(est.lam, str) else est.lam)}
        print(_row(f"defaults, seed {seed}", r), flush=True)
        out.setdefault(name, {})[f"defaults, seed {seed}"] = r


def mlp(name: str, data, out: dict) -> None:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler

    Xtr, Xte, ytr, yte = data
    classification = name in CLASSIFICATION
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if classification:
            default = MLPClassifier(random_state=0)
            grid = GridSearchCV(MLPClassifier(random_state=0), {"alpha": ALPHAS}, cv=3)
        else:
            default = TransformedTargetRegressor(MLPRegressor(random_state=0), transformer=StandardScaler())
            grid = GridSearchCV(TransformedTargetRegressor(MLPRegressor(random_state=0), transformer=StandardScaler()),
                                {"regressor__alpha": ALPHAS}, cv=3)
        t = time.perf_counter()
        default.fit(Xtr, ytr)
        t_default = time.perf_counter() - t
        t = time.perf_counter()
        grid.fit(Xtr, ytr)
        t_grid = time.perf_counter() - t
        t = time.perf_counter()
        best = grid.best_estimator_
        best.fit(Xtr, ytr)  # one fit at the tuned alpha, timed on its own
        t_best = time.perf_counter() - t
    alpha = grid.best_params_.get("alpha", grid.best_params_.get("regressor__alpha"))
    res = {"mlp_default": float(default.score(Xte, yte)), "mlp_default_s": t_default,
           "mlp_tuned": float(grid.score(Xte, yte)), "mlp_tuned_s": t_best, "mlp_grid_s": t_grid,
           "alpha": alpha}
    out.setdefault(name, {})["mlp"] = res
    print(f"  MLP default {res['mlp_default']:.4f} ({t_default:.2f}s); MLP tuned alpha={alpha:g} "
          f"{res['mlp_tuned']:.4f} (one fit {t_best:.2f}s, grid {t_grid:.1f}s)", flush=True)


def cv(name: str, data, out: dict) -> None:
    from cvxnn.estimators import ConvexGatedReLUClassifierCV, ConvexGatedReLURegressorCV

    Xtr, Xte, ytr, yte = data
    cls = ConvexGatedReLUClassifierCV if name in CLASSIFICATION else ConvexGatedReLURegressorCV
    defaults = cls()
    grids = {"former grid (10, 1e-3)": {"n_lams": 10, "lam_min_ratio": 1e-3},
             f"default grid, cv_tol={defaults.cv_tol!r}": {},
             "default grid, cv_tol=None": {"cv_tol": None}}
    for label, kw in grids.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            est = cls(random_state=0, **kw).fit(Xtr, ytr)
            secs = time.perf_counter() - t
        lmax = est.lams_[0]
        r = {"score": float(est.score(Xte, yte)), "seconds": secs, "lam": float(est.lam_),
             "lam_ratio": float(est.lam_ / lmax), "status": est.status_,
             "n_optimal": int((est.statuses_ == "optimal").sum()), "n_fits": int(est.statuses_.size),
             "fold_tol": float(est.cv_tol_)}
        out.setdefault(name, {})[f"cv: {label}"] = r
        print(f"  CV {label:<27} {r['score']:7.4f} {secs:8.2f}s  lam_ = {r['lam']:.4g} "
              f"({r['lam_ratio']:.3g} lam_max, {r['lam'] / Xtr.shape[0]:.3g} n)  refit {r['status']}, "
              f"{r['n_optimal']}/{r['n_fits']} fold fits optimal (at {r['fold_tol']:g})", flush=True)


def relu(out: dict) -> None:
    """ConvexReLUClassifier and ConvexGatedReLUClassifier, each at its defaults."""
    from cvxnn.estimators import ConvexGatedReLUClassifier, ConvexReLUClassifier

    print("\n== ConvexReLUClassifier against ConvexGatedReLUClassifier, both at their defaults", flush=True)
    for name in ("breast_cancer", "wine", "iris"):
        data = load(name)
        seconds = {}
        for label, cls in (("ReLU, defaults", ConvexReLUClassifier), ("gated, defaults", ConvexGatedReLUClassifier)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                est = cls(random_state=0).fit(data[0], data[2])
                secs = seconds[label] = time.perf_counter() - t
            lam = getattr(est, "lam_", est.lam)
            gap = "n/a" if est.gap_ is None else f"{est.gap_:.2e}"
            print(f"  {name:<14} {label:<16} acc {est.score(data[1], data[3]):.4f} {secs:7.2f}s  "
                  f"{est.status_:<14} gap {gap}  lam {float(lam):.4g}  tol {est.tol:g}", flush=True)
            out.setdefault("relu", {})[f"{name}: {label}"] = {"score": float(est.score(data[1], data[3])),
                                                               "seconds": secs, "status": est.status_}
        print(f"  {name:<14} ReLU / gated time: {seconds['ReLU, defaults'] / seconds['gated, defaults']:.2f}x",
              flush=True)


def relu_cv(name: str, data, out: dict) -> None:
    """The C-ReLU ``...CV`` estimator at its defaults, against its base estimator's default fit."""
    from cvxnn.estimators import (
        ConvexReLUClassifier,
        ConvexReLUClassifierCV,
        ConvexReLURegressor,
        ConvexReLURegressorCV,
    )

    Xtr, Xte, ytr, yte = data
    clf = name in CLASSIFICATION
    cls, base = (ConvexReLUClassifierCV, ConvexReLUClassifier) if clf else (ConvexReLURegressorCV, ConvexReLURegressor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        est = cls(random_state=0).fit(Xtr, ytr)
        secs = time.perf_counter() - t
        t = time.perf_counter()
        b = base(random_state=0).fit(Xtr, ytr)
        secs_b = time.perf_counter() - t
    r = {"score": float(est.score(Xte, yte)), "seconds": secs, "lam_n": float(est.lam_ / Xtr.shape[0]),
         "lam_index": int(est.best_index_), "n_lams": int(est.lams_.size), "status": est.status_,
         "n_optimal": int((est.statuses_ == "optimal").sum()), "n_fits": int(est.statuses_.size),
         "refit_solve_s": float(est.best_estimator_.fit_time_), "base_score": float(b.score(Xte, yte)),
         "base_seconds": secs_b}
    out.setdefault(name, {})["relu_cv"] = r
    print(f"  {cls.__name__}: {r['score']:.4f} in {secs:.1f}s, lam_ = {r['lam_n']:.3g} n (value "
          f"{r['lam_index'] + 1} of {r['n_lams']}), refit {r['status']} (solve {r['refit_solve_s']:.1f}s), "
          f"{r['n_optimal']}/{r['n_fits']} fold fits optimal; {base.__name__}() {r['base_score']:.4f} "
          f"in {secs_b:.1f}s", flush=True)


def summary(out: dict, names) -> None:
    print("\n== Summary (score; fit seconds; ratios to the tuned MLP in the same run)")
    print(f"  {'data':<14} {'former':>8} {'default':>8} {'MLP()':>8} {'MLP tuned':>9} {'default/tuned':>13} "
          f"{'t default':>9} {'t MLP tuned':>11} {'t ratio':>7}  status")
    for name in names:
        res = out.get(name, {})
        if "defaults, seed 0" not in res or "mlp" not in res:
            continue
        d, m = res["defaults, seed 0"], res["mlp"]
        print(f"  {name:<14} {res['former defaults']['score']:8.4f} {d['score']:8.4f} {m['mlp_default']:8.4f} "
              f"{m['mlp_tuned']:9.4f} {d['score'] / m['mlp_tuned']:13.3f} {d['seconds']:8.2f}s "
              f"{m['mlp_tuned_s']:10.2f}s {d['seconds'] / m['mlp_tuned_s']:7.2f}  {d['status']}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="sweep,mlp,cv,relu")
    ap.add_argument("--datasets", default=",".join(CLASSIFICATION + REGRESSION))
    ap.add_argument("--cv-datasets", default=",".join(CV_DATASETS), help="datasets of the cv section")
    ap.add_argument("--relu-cv-datasets", default="digits", help="datasets of the relu_cv section")
    args = ap.parse_args(argv)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"sweep", "mlp", "cv", "relu", "relu_cv"}
    if unknown:
        ap.error(f"unknown section(s) {sorted(unknown)}; choose from sweep, mlp, cv, relu, relu_cv")
    names = [s for s in args.datasets.split(",") if s]
    for option, given in (("--datasets", names), ("--cv-datasets", args.cv_datasets.split(",")),
                          ("--relu-cv-datasets", args.relu_cv_datasets.split(","))):
        bad = sorted(set(s for s in given if s) - set(CLASSIFICATION + REGRESSION))
        if bad:
            ap.error(f"unknown {option} {bad}; choose from {', '.join(CLASSIFICATION + REGRESSION)}")
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, sections {sorted(sections)}")
    out: dict = {}
    t_all = time.perf_counter()
    for name in names:
        data = load(name)
        if "sweep" in sections:
            sweep(name, data, out)
        else:
            print(f"\n== {name}: n_train={data[0].shape[0]}, d={data[0].shape[1]}", flush=True)
        if "mlp" in sections:
            mlp(name, data, out)
        if "cv" in sections and name in args.cv_datasets.split(","):
            cv(name, data, out)
        if "relu_cv" in sections and name in args.relu_cv_datasets.split(","):
            relu_cv(name, data, out)
    if "relu" in sections:
        relu(out)
    if {"sweep", "mlp"} <= sections:  # the summary compares the defaults (sweep) with the MLPs
        summary(out, names)
    print(f"\ntotal {time.perf_counter() - t_all:.0f}s")
    return out


if __name__ == "__main__":
    main()
