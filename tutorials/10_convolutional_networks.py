# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Convolutional networks: the global optimum of a CNN by convex optimization
#
# A two-layer convolutional network shares its filters `w_j` over the `K` patches `x_k` of an
# input and pools the activations (`docs/conv.md`):
#
#     f(x) = sum_j alpha_j * sum_k (x_k^T w_j)_+
#
# Stack the patches of all `n` inputs into the patch matrix `Z` (`nK x h`). The hidden layer is
# then an ordinary ReLU layer on the rows of `Z`, and the pooling is a linear map after it. So
# training is C-ReLU on `Z` with a linear output map: a convex program whose optimum is the
# global optimum of CNN training when all the activation patterns of `Z` are used.
#
# This tutorial
#
# 1. solves a tiny 1-D instance with **enumerated** patterns, maps the solution to a CNN, and
#    checks that no random restart of ordinary (non-convex) training ends below it;
# 2. fits the gated variant to digit images with the native solver and shows the filters.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import minimize
from sklearn.datasets import load_digits

from cvxnn.conv import ConvNetwork, build_conv_program, extract_patches, pool, unpool
from cvxnn.native.conv import conv_report, solve_conv_native
from cvxnn.patterns import enumerate_patterns
from cvxnn.vector import one_hot

# next to this file, from any working directory (a notebook has no __file__ but runs in tutorials/)
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = os.environ.get("CVXNN_TUTORIAL_OUTPUT", os.path.join(HERE, "_output"))
os.makedirs(OUT, exist_ok=True)
t_start = time.perf_counter()

# %% [markdown]
# ## 1. A 1-D instance with every pattern
# Eight signals of length 6, windows of length 2 with stride 1 (`K = 5` patches), so `Z` is
# `40 x 2`. With rank 2, `enumerate_patterns` lists every pattern by an angular sweep.

# %%
rng = np.random.default_rng(0)
X = rng.standard_normal((8, 6))
y = np.maximum(X[:, 1:3].sum(1), 0) - 0.3 * X[:, 4]
lam = 0.05
Z = extract_patches(X, image_shape=6, size=2, stride=1)
patterns = enumerate_patterns(Z)
print(f"Z: {Z.shape}, enumerated patterns: {patterns.n_patterns}")

program = build_conv_program(X, y, image_shape=6, patch_size=2, lam=lam, patterns=patterns)
solution = program.solve()  # CVXPY + Clarabel
report = conv_report(solution, X, y)
print(report.summary())
cnn = report.network
# the exact map keeps every nonzero block; Clarabel leaves blocks of relative size ~1e-9 that
# carry no weight, so count the active ones
print(f"mapped CNN: objective {cnn.objective(X, y, lam):.10f}, "
      f"{solution.model.n_active(1e-6)} active filters (of {cnn.n_filters} nonzero)")

# %% [markdown]
# The same program natively: a barrier method on the pooled design with the cone barriers on the
# unique patch rows (docs/conv.md, "C-ReLU natively"). It returns the same optimum with its own
# certificate (the gap with cone multipliers) and a strictly feasible point.

# %%
native = solve_conv_native(X, y, image_shape=6, patch_size=2, lam=lam, patterns=patterns, activation="relu",
                           tol=1e-9)
print(f"native: {native.status}, objective {native.objective_value:.10f} (Clarabel {solution.objective_value:.10f}), "
      f"certified rel. gap {native.rel_gap:.1e}, cone violation {native.max_violation:.1e}")
assert abs(native.objective_value - solution.objective_value) <= 1e-6 * solution.objective_value

# %% [markdown]
# ## Ordinary training never beats it
# L-BFGS on the weight-decay objective of a CNN with 10 filters, from 20 random starts. Every run
# ends at or above the convex optimum. Most runs end above it, in poorer local minima.

# %%
K, h, m = 5, 2, 10


def nonconvex(theta):
    W, a = theta[:h * m].reshape(h, m), theta[h * m:]
    H = Z @ W
    P = pool(np.maximum(H, 0.0), K)
    r = P @ a - y
    g_a = P.T @ r + lam * a
    g_W = Z.T @ ((unpool(r, K)[:, None] * a[None, :]) * (H > 0)) + lam * W
    return 0.5 * r @ r + 0.5 * lam * (np.sum(W**2) + a @ a), np.concatenate([g_W.ravel(), g_a])


finals = []
for _ in range(20):
    res = minimize(nonconvex, 0.5 * rng.standard_normal(h * m + m), jac=True, method="L-BFGS-B",
                   options={"maxiter": 5000, "gtol": 1e-10})
    net = ConvNetwork(filters=res.x[:h * m].reshape(h, m), alpha=res.x[h * m:], geometry=solution.geometry)
    finals.append(net.objective(X, y, lam))
finals = np.array(finals)
p_star = solution.objective_value
print(f"convex optimum       : {p_star:.8f}")
print(f"best / worst restart : {finals.min():.8f} / {finals.max():.8f}")
print(f"runs below the optimum: {int(np.sum(finals < p_star - 1e-8))} of {finals.size}")
assert finals.min() >= p_star - 1e-7

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(np.sort(finals), "o", label="L-BFGS restarts (10 filters)")
ax.axhline(p_star, color="k", lw=1.5, label="convex optimum (mapped CNN)")
ax.set_xlabel("restart (sorted)")
ax.set_ylabel("training objective")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "conv_restarts.png"), dpi=120)

# %% [markdown]
# ## 2. Digits with the gated variant, natively
# The gated program needs no cone constraints. Its operator `U -> Pool(sum_i D_i Z u_i)` is a
# small dense matrix once pooled: block `i` acts through `B_i = Pool D_i Z_a`, `n x d_a`. The
# program is a badly conditioned group lasso on it, which a barrier Newton method solves per
# output, stopped by a certified duality gap (docs/conv.md, "Native solver and certificates").
# We use 600 training images (the last 597 are the test set), 3x3 patches (stride 1, `K = 36`),
# 16 gates sampled on `Z`, and one-hot squared loss with one-vs-all output. The summary shows the
# solver, the status and the certified gap.

# %%
Xd, yd = load_digits(return_X_y=True)
train, test = np.arange(600), np.arange(1200, 1797)
# standardized with the training rows' statistics only (the test rows stay unseen)
Xd = (Xd - Xd[train].mean(0)) / np.maximum(Xd[train].std(0), 1e-12)
t0 = time.perf_counter()
gated = solve_conv_native(Xd[train], one_hot(yd[train], 10), image_shape=(8, 8), patch_size=3, lam=6.0,
                          n_gates=16, bias=True, seed=0, tol=1e-6)
seconds = time.perf_counter() - t0
digits_cnn = gated.to_network()
accuracy = np.mean(digits_cnn.predict(Xd[test]).argmax(1) == yd[test])
print(gated.summary())
print(f"fit {seconds:.1f} s; test accuracy {accuracy:.3f} with {digits_cnn.n_filters} filters")

# %% [markdown]
# The filters (each a 3x3 window, gated by its own gate) with the largest output weights:

# %%
strength = np.linalg.norm(digits_cnn.alpha, axis=1) * np.linalg.norm(digits_cnn.filters, axis=0)
top = np.argsort(strength)[::-1][:8]
fig, axes = plt.subplots(1, len(top), figsize=(1.4 * len(top), 1.8))
for ax, j in zip(axes, top, strict=True):
    ax.imshow(digits_cnn.filters[:, j].reshape(3, 3), cmap="RdBu_r")
    ax.set_title(f"class {int(np.argmax(np.abs(digits_cnn.alpha[j])))}", fontsize=8)
    ax.axis("off")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "conv_filters.png"), dpi=120)
print(f"tutorial ran in {time.perf_counter() - t_start:.1f} s")
