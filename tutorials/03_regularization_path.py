# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Regularisation paths and the continuity of the minimum-norm solution
#
# The convex programs carry `lam * sum_k ||theta_k||`. Above `lam_max` the zero network is optimal;
# below it neurons enter one by one. This tutorial
#
# 1. computes `lam_max` exactly (C-GReLU: `max_i ||X^T D_i y||`; C-ReLU: one NNLS per block and sign),
# 2. solves a warm-started path on a compiled-once CVXPY program (and on the native backend),
# 3. shows that a solver's path can jump when the optimum is not unique, while the
#    **minimum-norm** optimum (Mishkin & Pilanci, ICML 2023) is the canonical choice whose path
#    is continuous under the conditions of MP23 (they can fail where the optimal set changes
#    dimension); we measure how fast each path moves.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import cvxnn
from cvxnn.optimality import optimal_set
from cvxnn.path import lam_max, regularization_path

# next to this file, from any working directory (a notebook has no __file__ but runs in tutorials/)
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = os.environ.get("CVXNN_TUTORIAL_OUTPUT", os.path.join(HERE, "_output"))
os.makedirs(OUT, exist_ok=True)
t_start = time.perf_counter()

# %% [markdown]
# ## Data and `lam_max`
# Twelve points in three dimensions with a (penalised) bias and many sampled patterns: few
# samples and many patterns make non-unique optima common.

# %%
rng = np.random.default_rng(1)
X = rng.standard_normal((12, 3))
y = rng.standard_normal(12)
patterns = cvxnn.sample_patterns(X, 200, seed=1, bias=True)
lm_relu = lam_max(X, y, patterns, "relu")
lm_gated = lam_max(X, y, patterns, "gated_relu")
print(f"{patterns.n_patterns} patterns; lam_max: C-ReLU {lm_relu:.4f}, C-GReLU {lm_gated:.4f}")

# %% [markdown]
# ## A warm-started path (CVXPY / Clarabel, compiled once)

# %%
path = regularization_path(X, y, patterns, activation="relu", n_lams=30, lam_min_ratio=1e-2)
print(f"{len(path)} solves in {path.total_time:.2f} s ({path.solver}); active neurons:",
      path.n_active().tolist())

fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
axes[0].plot(path.lams, path.block_norms(), lw=1)
axes[0].set_title("solver: block norms ||theta_k||")
axes[1].plot(path.lams, path.n_active(), "o-", ms=3)
axes[1].set_title("active neurons")
axes[2].plot(path.lams, path.objectives, "o-", ms=3, label="objective")
axes[2].plot(path.lams, path.lams * path.penalties, "s-", ms=3, label="lam * penalty")
axes[2].legend()
for ax in axes:
    ax.set_xscale("log")
    ax.set_xlabel("lam")
    ax.axvline(lm_relu, color="gray", ls=":")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "03_path.png"), dpi=120)

# %% [markdown]
# ## The minimum-norm solution path
# At each `lam` we build the optimal set from the solver's point and take three optima:
# the solver's own, the one of minimum Euclidean norm (a QP over the polytope) and a vertex
# (a minimal network, by exact pruning). The optimal set has positive dimension at many `lam`.
# A discrete "speed" `||theta(lam_k+1) - theta(lam_k)|| / |log lam_k+1 - log lam_k|` stays bounded
# on a continuous path; a jump shows up as a spike.

# %%
solver_pts, minnorm_pts, vertex_pts, dims = [], [], [], []
for sol in path.solutions:
    if sol.penalty() == 0:  # lam >= lam_max: the zero network is the unique optimum
        theta = np.zeros(sol.block_norms().size * patterns.design_dim)
        for pts in (solver_pts, minnorm_pts, vertex_pts):
            pts.append(theta)
        dims.append(0)
        continue
    P = optimal_set(sol, X, y)
    dims.append(P.dimension)
    solver_pts.append(np.concatenate([sol.V, sol.W], axis=1).ravel())
    for store, model in ((minnorm_pts, P.min_norm_model()), (vertex_pts, P.minimal_model())):
        store.append(np.concatenate([model.V, model.W], axis=1).ravel())
solver_pts, minnorm_pts, vertex_pts = map(np.array, (solver_pts, minnorm_pts, vertex_pts))
print("dimension of the optimal set along the path:", dims)


def jumps(points):
    """||theta(lam_k+1) - theta(lam_k)|| / |log lam_k+1 - log lam_k|: a discrete speed."""
    return np.linalg.norm(np.diff(points, axis=0), axis=1) / np.abs(np.diff(np.log(path.lams)))


mid = np.sqrt(path.lams[1:] * path.lams[:-1])
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for pts, label, style in ((solver_pts, "solver (Clarabel)", "o-"), (minnorm_pts, "minimum norm", "s-"),
                          (vertex_pts, "vertex (minimal)", "^-")):
    axes[0].plot(mid, jumps(pts), style, ms=3, label=label)
axes[0].set_xscale("log")
axes[0].set_yscale("log")
axes[0].set_xlabel("lam")
axes[0].set_ylabel("||d theta|| / |d log lam|")
axes[0].set_title("speed of the solution path")
axes[0].legend()
norms_mn = np.linalg.norm(minnorm_pts.reshape(len(path), patterns.design_dim, -1), axis=1)
axes[1].plot(path.lams, norms_mn, lw=1)
axes[1].set_xscale("log")
axes[1].set_xlabel("lam")
axes[1].set_title("minimum-norm optimum: block norms")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "03_min_norm_path.png"), dpi=120)
dims = np.array(dims)
stable = dims[1:] == dims[:-1]  # grid steps on which the dimension of the optimal set is constant
for pts, label in ((solver_pts, "solver"), (minnorm_pts, "minimum norm"), (vertex_pts, "vertex")):
    sp = jumps(pts)
    print(f"{label:13s}: max speed {sp[stable].max():6.3g} where the dimension is constant, "
          f"{sp[~stable].max() if (~stable).any() else float('nan'):6.3g} where it changes")
for x in mid[~stable]:
    axes[0].axvline(x, color="gray", alpha=0.2)

# %% [markdown]
# Grey lines mark grid steps where the dimension of the optimal set changes. The vertex path jumps
# between vertices wherever the optimal set is not a point; the minimum-norm path is the smoothest
# of the three. An interior-point solver returns a point near the centre of the optimal set, which
# here stays close to the minimum-norm one; other solvers (SCS, native) can land elsewhere.
# Refining the grid near a change of dimension shows whether a fast move is a genuine jump: the
# optimal-set map is only upper semicontinuous there, which is exactly where MP23's continuity
# conditions matter.

# %% [markdown]
# ## The same path on the native backend (C-GReLU, R-FISTA, warm-started)

# %%
try:
    import cvxnn.native  # noqa: F401

    t0 = time.perf_counter()
    native = regularization_path(X, y, patterns, activation="gated_relu", n_lams=15, backend="native", tol=1e-8)
    t1 = time.perf_counter()
    ref = regularization_path(X, y, patterns, activation="gated_relu", lams=native.lams)
    t2 = time.perf_counter()
    gap = np.max(np.abs(native.objectives - ref.objectives) / ref.objectives)
    print(f"native: {t1 - t0:.2f} s, Clarabel: {t2 - t1:.2f} s, max relative objective difference {gap:.1e}")
except ImportError:
    print("cvxnn.native is not available in this installation")
print(f"tutorial 03 ran in {time.perf_counter() - t_start:.1f} s")
