"""Convolutional convex networks on scikit-learn's digits, next to the fully connected models.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_conv.py           # about 1.5 minutes
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_conv.py --relu    # adds the CVXPY and FC ReLU models (~8 min)
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_conv.py --ratio 100,4 200,8
        # native conv C-ReLU against Clarabel on the first m training images with g gates

Threads are pinned to one (set here before numpy is imported as well) so every model gets the
same single core. Data: ``load_digits`` (8x8 images, 10 classes), standardized with the training
statistics, 70/30 stratified split with ``random_state=0``. All models are fitted in one run:

* conv C-GReLU, native (:func:`cvxnn.native.conv.solve_conv_native`): 3x3 patches, stride 1
  (K = 36), sum pooling, a penalised filter bias, 32 gates sampled on the patch matrix, one-hot
  squared loss, one-vs-all, ``lam = 0.01 n``, its default solver (the barrier Newton method on
  the pooled design) stopped at a certified relative gap of 1e-6 (the status, the solver and the
  certified gap are printed);
* conv C-ReLU, native (``solve_conv_native(..., activation="relu")``): the same patches, gates,
  loss and ``lam``, the barrier Newton method with the cone barriers on the unique patch rows,
  stopped at a certified relative gap of 1e-6;
* with ``--relu``: conv C-ReLU through CVXPY + Clarabel on the first 100 training images
  (4 gates; 200 images with 8 gates already compile to ~1.8e7 nonzeros, the full training set
  with 32 gates to ~4e8), and
  ``ConvexReLUClassifier(random_state=0)``;
* ``ConvexGatedReLUClassifier(random_state=0)`` (fully connected, its defaults);
* ``sklearn.neural_network.MLPClassifier(random_state=0)``.

Fit times are wall-clock seconds of one fit; test accuracy is on the held-out 30%. With
``--ratio m,g ...`` the script instead times the native conv C-ReLU solver and Clarabel on the same
program (first ``m`` training images, ``g`` gates, ``lam = 0.01 m``) and prints the ratio and the
objectives.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


def _data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


def _row(name: str, seconds: float, acc: float, note: str) -> str:
    return f"| {name} | {seconds:.2f} | {acc:.4f} | {note} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--relu", action="store_true", help="also fit the ReLU models (slow)")
    parser.add_argument("--ratio", nargs="+", metavar="M,G",
                        help="time native conv C-ReLU against Clarabel on the first M images with G gates")
    args = parser.parse_args()
    if args.ratio:
        _ratio([tuple(int(v) for v in a.split(",")) for a in args.ratio])
        return

    import sklearn
    from sklearn.neural_network import MLPClassifier

    import cvxnn
    from cvxnn.conv import build_conv_program
    from cvxnn.native.conv import solve_conv_native
    from cvxnn.vector import one_hot

    Xtr, Xte, ytr, yte = _data()
    n = Xtr.shape[0]
    Y = one_hot(ytr, 10)
    print(f"cvxnn {cvxnn.__version__}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
          f"python {platform.python_version()}; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    print(f"digits: {n} training / {Xte.shape[0]} test images, 8x8, 10 classes\n")
    rows = ["| model | fit time (s) | test accuracy | notes |", "| --- | ---: | ---: | --- |"]
    times: list[float] = []  # the fit time of each row

    lam = 0.01 * n
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the status is reported in the table
        sol = solve_conv_native(Xtr, Y, image_shape=(8, 8), patch_size=3, stride=1, pooling="sum", lam=lam,
                                n_gates=32, bias=True, seed=0, tol=1e-6)
    t_conv = time.perf_counter() - t0
    cnn = sol.to_network()
    acc = float(np.mean(cnn.predict(Xte).argmax(axis=1) == yte))
    rows.append(_row(f"conv C-GReLU, native {sol.solver} (3x3, stride 1, sum pooling)", t_conv, acc,
                     f"{sol.patterns.n_patterns} patterns, {cnn.n_filters} filters, lam={lam:.3g}; "
                     f"{sol.status} after {sol.iterations} it., certified rel. gap {sol.rel_gap:.1e}"))
    times.append(t_conv)
    print(rows[-1], flush=True)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rsol = solve_conv_native(Xtr, Y, image_shape=(8, 8), patch_size=3, stride=1, pooling="sum", lam=lam,
                                 n_gates=32, bias=True, seed=0, tol=1e-6, activation="relu")
    t_relu = time.perf_counter() - t0
    rcnn = rsol.to_network()
    acc = float(np.mean(rcnn.predict(Xte).argmax(axis=1) == yte))
    rows.append(_row(f"conv C-ReLU, native {rsol.solver} (3x3, stride 1, sum pooling)", t_relu, acc,
                     f"{rsol.patterns.n_patterns} patterns, {rsol.model.n_active(1e-6)} of {rcnn.n_filters} filters "
                     f"above 1e-6, lam={lam:.3g}; "
                     f"{rsol.status} after {rsol.iterations} it., certified rel. gap {rsol.rel_gap:.1e}, "
                     f"cone violation {rsol.max_violation:.0e}; objective {rsol.objective_value:.6g} "
                     f"(gated: {sol.objective_value:.6g})"))
    times.append(t_relu)
    print(rows[-1], flush=True)

    if args.relu:
        m = 100
        t0 = time.perf_counter()
        prog = build_conv_program(Xtr[:m], Y[:m], image_shape=(8, 8), patch_size=3, lam=0.01 * m, n_gates=4,
                                  bias=True, seed=0)
        rsol = prog.solve()
        t_relu = time.perf_counter() - t0
        acc = float(np.mean(rsol.to_network().predict(Xte).argmax(axis=1) == yte))
        rows.append(_row(f"conv C-ReLU, CVXPY + Clarabel, first {m} training images", t_relu, acc,
                         f"{prog.patterns.n_patterns} patterns, ~{prog.estimated_nonzeros():,} nonzeros; "
                         f"{rsol.status}, rel. gap {rsol.rel_gap:.1e}"))
        times.append(t_relu)
        print(rows[-1], flush=True)

    models = [("ConvexGatedReLUClassifier(random_state=0), fully connected",
               cvxnn.ConvexGatedReLUClassifier(random_state=0))]
    if args.relu:
        models.append(("ConvexReLUClassifier(random_state=0), fully connected",
                       cvxnn.ConvexReLUClassifier(random_state=0)))
    models.append(("MLPClassifier(random_state=0)", MLPClassifier(random_state=0)))
    for name, est in models:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(Xtr, ytr)
        seconds = time.perf_counter() - t0
        if hasattr(est, "solution_"):
            note = f"{est.solution_.status}, {est.network_.n_neurons} neurons"
        else:
            note = f"{est.n_iter_} epochs"
        rows.append(_row(name, seconds, float(est.score(Xte, yte)), note))
        times.append(seconds)
        print(rows[-1], flush=True)

    # the table again, with each fit's time against the MLP's, measured in this run
    print("\n| model | fit time (s) | / MLP time | test accuracy | notes |\n| --- | ---: | ---: | ---: | --- |")
    for row, seconds in zip(rows[2:], times, strict=True):
        cells = row.split(" | ")
        cells.insert(2, f"{seconds / times[-1]:.2f}x")
        print(" | ".join(cells))


def _ratio(cases) -> None:
    """Native conv C-ReLU against CVXPY + Clarabel on the same programs (one line per case)."""
    from cvxnn.conv import build_conv_program
    from cvxnn.native.conv import solve_conv_native
    from cvxnn.vector import one_hot

    Xtr, _, ytr, _ = _data()
    print(f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; ratio = Clarabel time / native time, "
          "both measured in this run\n")
    print("| images | gates | nonzeros (CVXPY) | Clarabel (s) | native (s) | ratio | native rel. gap | "
          "objective difference |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for m, g in cases:
        Y = one_hot(ytr[:m], 10)
        kw = dict(image_shape=(8, 8), patch_size=3, lam=0.01 * m)
        t0 = time.perf_counter()
        prog = build_conv_program(Xtr[:m], Y, n_gates=g, bias=True, seed=0, **kw)
        ref = prog.solve()
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        nat = solve_conv_native(Xtr[:m], Y, patterns=prog.patterns, activation="relu", tol=1e-6, **kw)
        t_nat = time.perf_counter() - t0
        diff = (nat.objective_value - ref.objective_value) / abs(ref.objective_value)
        print(f"| {m} | {g} | {prog.estimated_nonzeros():,} | {t_ref:.2f} ({ref.status}) | {t_nat:.2f} ({nat.status}) "
              f"| {t_ref / t_nat:.0f} | {nat.rel_gap:.1e} | {diff:+.1e} |", flush=True)


if __name__ == "__main__":
    main()
