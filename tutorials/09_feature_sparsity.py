# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Feature sparsity: which inputs matter
#
# The group lasso of the convex programs switches neurons off. The feature group lasso
# `FeatureGroupL2` puts one group on each *input feature* across all neurons (the rows of the
# weight matrix `[u_1 ... u_p]`), so a zero row removes the feature from the network
# (docs/feature-sparsity.md). This tutorial
#
# 1. plants a target that depends on `k` of `d` features,
# 2. walks the feature path from `lam_max` (native R-FISTA, certified by a duality gap) and
#    watches the features enter,
# 3. refits a network on the selected features only, so that its gates read only them,
#    and compares test errors,
# 4. checks the exactness statement of the sparse-group penalty: the network that
#    `to_network()` returns has the convex objective under weight decay plus an l1 penalty on
#    its path weights.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import cvxnn
from cvxnn.feature_penalties import FeatureGroupL2, SparseGroupL2
from cvxnn.feature_sparsity import feature_lam_max, feature_path, solve_feature_sparse
from cvxnn.losses import get_loss

# next to this file, from any working directory (a notebook has no __file__ but runs in tutorials/)
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = os.environ.get("CVXNN_TUTORIAL_OUTPUT", os.path.join(HERE, "_output"))
os.makedirs(OUT, exist_ok=True)
t_start = time.perf_counter()

# %% [markdown]
# ## A planted problem
# 30 standard normal features; the target is a small ReLU network of the first three, plus noise.

# %%
rng = np.random.default_rng(0)
n, d, k = 300, 30, 3
X_all = rng.standard_normal((2 * n, d))
W_true = rng.standard_normal((k, 4)) / np.sqrt(k)
y_all = np.maximum(X_all[:, :k] @ W_true, 0.0) @ np.array([1.0, -1.0, 0.8, -0.6])
y_all = y_all + 0.1 * rng.standard_normal(2 * n)
X, y, X_test, y_test = X_all[:n], y_all[:n], X_all[n:], y_all[n:]
patterns = cvxnn.sample_patterns(X, 60, seed=0)
pen = FeatureGroupL2()
print(f"{patterns.n_patterns} patterns; lam_max (C-GReLU, feature group lasso) = "
      f"{feature_lam_max(X, y, patterns, pen):.2f}")

# %% [markdown]
# ## The feature path
# Twenty values of `lam` from `lam_max` down to `lam_max / 50`, each solve warm-started from the
# previous one. A feature is active when its row of `U` is nonzero (the native prox gives exact
# zeros).

# %%
path = feature_path(X, y, penalty=pen, patterns=patterns, n_lams=20, lam_min_ratio=0.02)
print(f"{len(path)} solves in {path.total_time:.2f} s; all certified: "
      f"{all(s.converged for s in path.solutions)}")
print("features entering, in order:", path.entry_order()[:8].tolist())
print("active features per lam:", path.n_features.tolist())

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for j in range(d):
    axes[0].plot(path.lams / path.lam_max, path.row_norms[:, j], color="C3" if j < k else "0.6",
                 lw=2 if j < k else 0.8, label="planted" if j == 0 else ("other" if j == k else None))
axes[0].set_xscale("log")
axes[0].invert_xaxis()
axes[0].set_xlabel("lam / lam_max")
axes[0].set_ylabel("row norm ||U[j, :]||")
axes[0].set_title("features entering the path")
axes[0].legend()
axes[1].step(path.lams / path.lam_max, path.n_features, where="post")
axes[1].axhline(k, color="C3", ls="--", label=f"k = {k}")
axes[1].set_xscale("log")
axes[1].invert_xaxis()
axes[1].set_xlabel("lam / lam_max")
axes[1].set_ylabel("active features")
axes[1].legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "09_feature_path.png"), dpi=110)

# %% [markdown]
# ## Selecting features, then refitting on them
# The gated model's **gates** are dense Gaussian vectors, so it still reads every feature when
# it decides which neurons fire. A network that reads only the selected features is obtained by
# refitting on those columns, with patterns sampled from them. We take the support at the first
# `lam` where at least `k` features are active and compare test errors with a network trained
# on all features (both by the plain group lasso, native R-FISTA; the refit's gates read only
# the selected columns).

# %%
selected = np.flatnonzero(path.supports[np.argmax(path.n_features >= k)])
print("selected features:", selected.tolist())


def refit(cols, lam_ratio=0.05, seed=0):
    """C-GReLU (group lasso) on the given columns; returns the network and its test error."""
    Xs = X[:, cols]
    pats = cvxnn.sample_patterns(Xs, 60, seed=seed)
    lam = lam_ratio * cvxnn.path.lam_max(Xs, y, pats, "gated_relu")
    sol = cvxnn.solve(Xs, y, pats, activation="gated_relu", lam=lam)
    net = sol.to_network()
    return net, float(np.mean((net.predict(X_test[:, cols]) - y_test) ** 2))


net_all, err_all = refit(np.arange(d))
net_sel, err_sel = refit(selected)
print(f"test MSE: all {d} features {err_all:.4f} ({net_all.n_neurons} neurons) | "
      f"{len(selected)} selected features {err_sel:.4f} ({net_sel.n_neurons} neurons) | "
      f"noise level {0.1 ** 2:.4f}")

# %% [markdown]
# ## Exactness of the sparse-group penalty
# `SparseGroupL2(alpha)` is `sum_k ||u_k||_2 + alpha ||u_k||_1`. The convex optimum is the
# optimum of networks trained with weight decay plus `lam * alpha * sum_j |w2_j| ||W1_j||_1`
# (an l1 penalty on the path weights): the map of `to_network()` reaches it, so the two
# objectives agree to rounding. The feature group lasso is a convex surrogate: it is exact only
# for networks with one neuron per pattern, measured by the same norm of their path weights.

# %%
sg = SparseGroupL2(alpha=0.5)
lam = 0.1 * feature_lam_max(X, y, patterns, sg)
sol = solve_feature_sparse(X, y, penalty=sg, lam=lam, patterns=patterns, tol=1e-10)
net = sol.to_network()
net_obj = get_loss("squared").value(net.predict(X), y) + lam * sg.network_penalty(net)
print(f"convex objective {sol.objective_value:.10f}, network objective {net_obj:.10f}, "
      f"relative difference {abs(net_obj - sol.objective_value) / sol.objective_value:.1e}")
print(f"zero weights inside active neurons: {np.mean(sol.U[:, np.linalg.norm(sol.U, axis=0) > 0] == 0):.0%}")

fig, ax = plt.subplots(figsize=(6, 3.5))
active = np.linalg.norm(sol.U, axis=0) > 0
ax.imshow(np.abs(sol.U[:, active]) > 0, aspect="auto", cmap="Greys", interpolation="nearest")
ax.axhline(k - 0.5, color="C3")
ax.set_xlabel("active neuron")
ax.set_ylabel("feature")
ax.set_title("SparseGroupL2: nonzero weights")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "09_sparse_group_weights.png"), dpi=110)
print(f"tutorial ran in {time.perf_counter() - t_start:.1f} s")
