# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Convex vs non-convex training of a two-layer ReLU network
#
# Training a ReLU network with weight decay,
#
#     min_{W1, b1, w2}  1/2 ||(X W1 + b1)_+ w2 - y||^2 + lam/2 (||W1||^2 + ||b1||^2 + ||w2||^2),
#
# is a non-convex problem: gradient descent (GD) and stochastic gradient descent (SGD) from a
# random start can stop in a local minimum or a saddle region. The same problem has an exact
# convex reformulation (C-ReLU, see the "mathematics" page of the docs): when **all** activation
# patterns of the data are present, its optimal value `p*` is the global optimum over networks of
# any width, and the network read off its solution attains it.
#
# On a toy 2-D problem the patterns can be enumerated exactly, so we can compare:
#
# 1. the convex program (Clarabel) with every pattern: the certified global optimum `p*`;
# 2. 32 runs of full-batch GD and 32 runs of minibatch SGD from random starts, at the width of the
#    convex solution and at the width of the teacher that generated the data.
#
# Plots show inline in a notebook and are saved to the folder named by `CVXNN_TUTORIAL_OUTPUT`
# (default `tutorials/_output`).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from cvxnn import build_program, enumerate_patterns
from cvxnn.optimality import prune_exact
from cvxnn.patterns import max_pattern_count

# next to this file, from any working directory (a notebook has no __file__ but runs in tutorials/)
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = os.environ.get("CVXNN_TUTORIAL_OUTPUT", os.path.join(HERE, "_output"))
os.makedirs(OUT, exist_ok=True)
t_start = time.perf_counter()

# %% [markdown]
# ## Data: 14 points in the plane, targets from a 3-neuron teacher
# A bias is used: a column of ones is appended to `X` and penalised with each neuron (the
# library's convention), so the design has rank 3.

# %%
rng = np.random.default_rng(3)
n = 14
X = rng.uniform(-1.0, 1.0, size=(n, 2))
W_teacher = np.array([[2.0, -1.5, 0.3], [1.0, 1.2, -2.0]])
b_teacher = np.array([0.2, -0.3, 0.1])
a_teacher = np.array([1.0, -1.2, 1.5])
y = np.maximum(X @ W_teacher + b_teacher, 0.0) @ a_teacher + 0.05 * rng.standard_normal(n)
lam = 0.02

# %% [markdown]
# ## Every activation pattern, exactly
# `enumerate_patterns` lists every region of the hyperplane arrangement `{g : [x_j, 1]^T g = 0}`,
# i.e. every way a ReLU neuron (with bias) can split these 14 points. For points in general
# position the count equals the bound `2 * sum_{k<3} C(n-1, k)`.

# %%
patterns = enumerate_patterns(X, bias=True)
print(f"patterns: {patterns.n_patterns} (bound for rank 3: {max_pattern_count(n, 3)})")
assert patterns.n_patterns <= max_pattern_count(n, 3)

# %% [markdown]
# ## The convex program: the global optimum
# C-ReLU on all patterns, solved by Clarabel. The solution is then pruned exactly to a minimal
# optimal model (same fit, same objective, linearly independent neurons), and mapped to an
# ordinary ReLU network whose weight-decay objective equals the convex objective.

# %%
program = build_program(X, y, activation="relu", loss="squared", lam=lam, patterns=patterns)
solution = program.solve("clarabel")
print(solution.summary())
minimal = prune_exact(solution, X).model
net_star = minimal.to_network()
p_star = solution.objective_value
print(f"p* (convex optimum)          : {p_star:.10f}")
print(f"objective of the mapped net  : {net_star.objective(X, y, lam):.10f}")
print(f"width of the minimal optimum : {net_star.n_neurons} neurons")
assert solution.converged
assert abs(net_star.objective(X, y, lam) - p_star) <= 1e-6 * p_star

# %% [markdown]
# ## Non-convex training: GD and SGD from random starts
# The same objective, optimised directly over `(W1, b1, w2)`. All runs are advanced together
# (arrays of shape `runs x ...`), full-batch GD with a fixed step and minibatch SGD (4 samples,
# decaying step), 12 000 iterations each.

# %%
Xa = np.hstack([X, np.ones((n, 1))])  # the bias as a third input, penalised like the weights


def nonconvex_objective(A, w2):
    """Weight-decay objective of each run (A: runs x 3 x m first layer incl. bias, w2: runs x m)."""
    res = np.einsum("rnm,rm->rn", np.maximum(np.einsum("nd,rdm->rnm", Xa, A), 0.0), w2) - y
    return 0.5 * np.sum(res**2, axis=1) + 0.5 * lam * (np.sum(A**2, axis=(1, 2)) + np.sum(w2**2, axis=1))


def train(width, runs, *, sgd, iters=12_000, lr=0.02, seed=0, record_every=100):
    """Full-batch GD or minibatch SGD on the weight-decay objective; returns the final objectives
    and the objective history (every ``record_every`` iterations)."""
    r = np.random.default_rng(seed)
    A = r.standard_normal((runs, 3, width))
    w2 = r.standard_normal((runs, width)) / np.sqrt(width)
    history = []
    for k in range(iters):
        if sgd:
            idx = r.choice(n, 4, replace=False)
            Xs, ys, scale, step = Xa[idx], y[idx], n / 4, lr / (1 + k / 2000)
        else:
            Xs, ys, scale, step = Xa, y, 1.0, lr
        Z = np.einsum("nd,rdm->rnm", Xs, A)
        H = np.maximum(Z, 0.0)
        res = (np.einsum("rnm,rm->rn", H, w2) - ys) * scale
        grad_w2 = np.einsum("rnm,rn->rm", H, res) + lam * w2
        grad_A = np.einsum("nd,rnm->rdm", Xs, res[:, :, None] * w2[:, None, :] * (Z > 0)) + lam * A
        A -= step * grad_A
        w2 -= step * grad_w2
        if k % record_every == 0:
            history.append(nonconvex_objective(A, w2))
    return nonconvex_objective(A, w2), np.array(history), (A, w2)


runs = 32
results = {}
for width in (net_star.n_neurons, 3):
    for method in ("GD", "SGD"):
        final, history, weights = train(width, runs, sgd=method == "SGD", seed=width)
        results[(method, width)] = (final, history, weights)
        ratio = final / p_star
        print(f"{method:>3}, width {width:>2}: best {ratio.min():.4f} p*, median {np.median(ratio):.3f} p*, "
              f"worst {ratio.max():.2f} p*; {np.mean(ratio > 1.05):.0%} of runs end > 5% above p*")

# %% [markdown]
# No run goes below `p*`: the convex optimum is a certified global lower bound for networks of
# *every* width. Two different things keep the runs above it:
#
# * **width 3** cannot reach `p*` at all (the optimum needs the width of the minimal convex
#   solution), but even so the runs of the *same* problem end at very different levels (from
#   about 1.04 to 106 times `p*`, the median run 12 to 15 times): all but the lowest are local
#   minima or plateaus, typically
#   with dead neurons (a ReLU that is zero on every sample receives no gradient);
# * **at the optimal width** the median GD run gets within 3% of `p*`, but 44% of the runs stop
#   more than 5% above it (the worst at 1.8 times `p*`), and SGD with a decaying step is worse
#   still (62% of its runs more than 5% above, the worst 33 times `p*`).
#
# The convex program needs no initialisation, no step size, and no luck, and it certifies its
# answer.

# %%
all_final = np.concatenate([v[0] for v in results.values()])
assert np.all(all_final >= p_star * (1 - 1e-6)), "a non-convex run beat the global optimum?"
stuck = np.mean(results[("GD", 3)][0] > 1.05 * p_star)
assert stuck > 0, "expected some GD runs to stop in a worse stationary region"

# %% [markdown]
# ## Plots
# 1. Final objectives of every run relative to `p*` (log scale).
# 2. Training curves of GD at the teacher's width against the global optimum.
# 3. The function learnt by the convex optimum and by the worst GD run.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for k, ((method, width), (final, _, _)) in enumerate(results.items()):
    ax.scatter(np.full(final.size, k) + rng.uniform(-0.15, 0.15, final.size), final / p_star,
               s=14, alpha=0.7, label=f"{method}, width {width}")
ax.axhline(1.0, color="k", lw=1.5, label="convex optimum p*")
ax.set_yscale("log")
ax.set_xticks(range(len(results)))
ax.set_xticklabels([f"{m}\nwidth {w}" for m, w in results])
ax.set_ylabel("final objective / p*")
ax.set_title("Non-convex training from 32 random starts vs the convex global optimum")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "01_final_objectives.png"), dpi=120)
plt.show()

fig, ax = plt.subplots(figsize=(7, 4))
history = results[("GD", 3)][1]
iters = np.arange(history.shape[0]) * 100
ax.plot(iters, history / p_star, color="tab:blue", alpha=0.35, lw=1)
ax.axhline(1.0, color="k", lw=1.5, label="p* (convex, certified)")
ax.set_yscale("log")
ax.set_xlabel("GD iteration")
ax.set_ylabel("objective / p*")
ax.set_title("GD at the teacher's width (3 neurons): plateaus above the optimum")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "01_gd_curves.png"), dpi=120)
plt.show()

grid = np.linspace(-1.1, 1.1, 120)
G1, G2 = np.meshgrid(grid, grid)
Xg = np.column_stack([G1.ravel(), G2.ravel()])
final, _, (A, w2) = results[("GD", 3)]
worst = int(np.argmax(final))
f_worst = np.maximum(np.hstack([Xg, np.ones((Xg.shape[0], 1))]) @ A[worst], 0.0) @ w2[worst]
f_star = net_star.predict(Xg)
levels = np.linspace(min(y.min(), f_star.min(), f_worst.min()), max(y.max(), f_star.max(), f_worst.max()), 21)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
for ax, f, title in ((axes[0], f_star, f"convex optimum ({net_star.n_neurons} neurons), p*"),
                     (axes[1], f_worst, f"worst GD run (width 3): {final[worst] / p_star:.1f} p*")):
    cs = ax.contourf(G1, G2, f.reshape(G1.shape), levels=levels, cmap="viridis")
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="viridis", vmin=levels[0], vmax=levels[-1], edgecolor="k", s=60)
    ax.set_title(title)
fig.colorbar(cs, ax=axes, label="network output (points: targets)")
fig.savefig(os.path.join(OUT, "01_learnt_functions.png"), dpi=120)
plt.show()

print(f"plots written to {OUT}; total time {time.perf_counter() - t_start:.1f} s")
