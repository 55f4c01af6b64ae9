# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The native fast path: certified solves at scale
#
# `cvxnn.native.solve_native` solves C-GReLU with R-FISTA (and working sets of blocks on top of
# it) and C-ReLU with a working set of Newton steps on the cone faces (an augmented Lagrangian
# for the nuclear-norm vector program, and as the fallback). It never forms the `n x pd`
# design: every product is one GEMM with the `n x p` pattern mask. Each result carries a
# **certified duality gap**, which is an upper bound on the distance to the optimum, computed
# in float64.
#
# This tutorial:
#
# 1. checks the native solver against CVXPY + Clarabel on a small problem;
# 2. solves a larger C-GReLU problem and watches the certified gap shrink;
# 3. compares float32 and float64 compute;
# 4. runs a warm-started regularisation path;
# 5. shows the memory budget at work.
#
# Figures show inline in a notebook and are saved to the folder named by `CVXNN_TUTORIAL_OUTPUT`
# (default `tutorials/_output`).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from cvxnn import build_program, sample_patterns
from cvxnn.datasets import planted_teacher
from cvxnn.errors import MemoryBudgetError
from cvxnn.native import duality_gap, lam_max_gated, solve_native

# next to this file, from any working directory (a notebook has no __file__ but runs in tutorials/)
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = os.environ.get("CVXNN_TUTORIAL_OUTPUT", os.path.join(HERE, "_output"))
os.makedirs(OUT, exist_ok=True)
t_start = time.perf_counter()

# %% [markdown]
# ## 1. Same answer as Clarabel, with a certificate
# The objective follows the convention of `docs/math.md`, so it matches CVXPY's `problem.value`.

# %%
X, y = planted_teacher(200, 5, seed=0)
pats = sample_patterns(X, 40, seed=0)
lam = 0.1 * lam_max_gated(X, y, pats)
ref = build_program(X, y, activation="gated_relu", lam=lam, patterns=pats).solve()
nat = solve_native(X, y, pats, activation="gated_relu", lam=lam, tol=1e-9)
print(f"Clarabel {ref.objective_value:.10f}  ({ref.solve_time + ref.compile_time:.2f} s incl. compile)")
print(f"native   {nat.objective_value:.10f}  ({nat.solve_time:.3f} s, {nat.iterations} iterations)")
# native - Clarabel is the native point's suboptimality up to Clarabel's own accuracy (it can be
# negative: the native point may be the better one); the certified gap bounds the true value
print(f"certified gap {nat.gap:.2e}  >=  native - Clarabel {nat.objective_value - ref.objective_value:.2e}")
print("max weight difference:", np.abs(nat.U - ref.U).max())

# %% [markdown]
# The gap is not only for native solutions: `duality_gap` certifies any point, including
# Clarabel's.

# %%
print("gap of the Clarabel point:", duality_gap(X, y, ref, lam).gap)

# %% [markdown]
# ## 2. A larger problem: watch the certificate
# With n = 5000 samples and p = 200 patterns, the explicit design would have 20 million
# entries. The native operators only touch the `5000 x 200` mask. A callback records the
# certified relative gap at every iteration.

# %%
X, y = planted_teacher(5_000, 20, seed=1)
pats = sample_patterns(X, 200, seed=1)
lam = 0.1 * lam_max_gated(X, y, pats)
trace = []
sol64 = solve_native(X, y, pats, lam=lam, tol=1e-6, callback=lambda info: trace.append(info["rel_gap"]))
print(sol64.summary())
print(f"achieved {sol64.extra['gflops']:.1f} GFLOP/s")

# %% [markdown]
# ## 3. float32 compute
# The GEMMs run in single precision and the certificate is still evaluated in float64.
# If float32 cannot reach the tolerance, the solve polishes in float64.

# %%
sol32 = solve_native(X, y, pats, lam=lam, tol=1e-6, dtype=np.float32)
print(f"float64: {sol64.solve_time:.2f} s, float32: {sol32.solve_time:.2f} s "
      f"(+{sol32.extra['polish_iterations']} float64 polish iterations)")
print(f"objectives {sol64.objective_value:.8f} / {sol32.objective_value:.8f}; "
      f"certified rel. gaps {sol64.extra['rel_gap']:.1e} / {sol32.extra['rel_gap']:.1e}")

# %% [markdown]
# ## 4. A warm-started regularisation path
# Each solve starts from the previous solution, including its step size. Along a
# decreasing grid this takes far fewer iterations than cold starts.

# %%
lmax = lam_max_gated(X, y, pats)
grid = lmax * np.geomspace(0.5, 0.05, 5)
prev, warm_its, cold_its, active = None, [], [], []
for lam_k in grid:
    s = solve_native(X, y, pats, lam=lam_k, tol=1e-6, warm_start=prev)
    warm_its.append(s.iterations)
    active.append(s.n_active())
    prev = s
cold_its = [solve_native(X, y, pats, lam=grid[-1], tol=1e-6).iterations]
print("warm-started iterations:", warm_its, " cold start at the last lam:", cold_its[0])
print("active blocks along the path:", active)

# %% [markdown]
# ## 5. Memory budget
# If an allocation cannot fit, the solver refuses up front and names the bytes needed.
# With a tight budget, the float mask is converted chunk by chunk instead of being held
# whole.

# %%
try:
    solve_native(X, y, pats, lam=lam, memory_budget=2**16)
except MemoryBudgetError as exc:
    print("MemoryBudgetError:", exc)
chunked = solve_native(X, y, pats, lam=lam, tol=1e-6, memory_budget=4 * 2**20)
print("mask cached:", chunked.extra["mask_cached"], "| same objective:",
      np.isclose(chunked.objective_value, sol64.objective_value, rtol=1e-5))

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
ax[0].semilogy(np.maximum(trace, 1e-16))
ax[0].axhline(1e-6, ls="--", c="gray", label="tol")
ax[0].set_xlabel("iteration")
ax[0].set_ylabel("certified relative gap")
ax[0].set_title("R-FISTA, n=5000, p=200")
ax[0].legend()
ax[1].plot(grid / lmax, warm_its, "o-", label="warm-started")
ax[1].plot([grid[-1] / lmax], cold_its, "s", label="cold start")
ax[1].set_xscale("log")
ax[1].invert_xaxis()
ax[1].set_xlabel("lam / lam_max")
ax[1].set_ylabel("iterations")
ax[1].set_title("regularisation path")
ax[1].legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "05_native_large_scale.png"), dpi=110)
print(f"tutorial finished in {time.perf_counter() - t_start:.1f} s")
