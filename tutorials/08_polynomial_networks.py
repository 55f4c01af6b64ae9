# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Polynomial-activation networks: one semidefinite program instead of many random starts
#
# A network with activation `sigma(t) = a t^2 + b t + c`,
#
#     f(x) = sum_j alpha_j sigma(w_j^T x),   ||w_j|| = 1,   penalty lam * sum_j |alpha_j|,
#
# is trained exactly by a semidefinite program (docs/polynomial.md): two PSD matrices `M+`, `M-`
# of size `(d+1) x (d+1)` with `trace(M_11) = M_22`. Its value `p*` is the global optimum over
# networks of *any* width, and a rank-one decomposition of the solution gives a network that
# attains it. Here we
#
# 1. solve the SDP and map it to a network (exact: same objective);
# 2. certify it with the duality gap (a lower bound no network can beat);
# 3. train the same network directly with L-BFGS from 30 random starts at several widths, and
#    compare with `p*`;
# 4. for the pure quadratic activation, compare Clarabel with the native R-FISTA solver.
#
# Plots show inline in a notebook and are saved to the folder named by `CVXNN_TUTORIAL_OUTPUT`
# (default `tutorials/_output`).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from cvxnn.native.polynomial import polynomial_dual_norm, polynomial_duality_gap, solve_quadratic_native
from cvxnn.polynomial import build_polynomial_program, build_quadratic_program, fit_nonconvex

# next to this file, from any working directory (a notebook has no __file__ but runs in tutorials/)
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = os.environ.get("CVXNN_TUTORIAL_OUTPUT", os.path.join(HERE, "_output"))
os.makedirs(OUT, exist_ok=True)
t_start = time.perf_counter()

# %% [markdown]
# ## Data from a planted network of 3 neurons
# `sigma(t) = t^2 + 0.5 t - 0.2`, `d = 6`, `n = 80`, noise 0.1. `lam` is 5% of `lam_max`, the
# smallest value for which the zero network is optimal: `max_{||w||=1} |y^T sigma(X w)|`.

# %%
rng = np.random.default_rng(0)
n, d = 80, 6
a, b, c = 1.0, 0.5, -0.2
X = rng.standard_normal((n, d))
W_teacher = rng.standard_normal((d, 3))
W_teacher /= np.linalg.norm(W_teacher, axis=0)
T = X @ W_teacher
y = (a * T**2 + b * T + c) @ np.array([1.0, -0.7, 0.5]) + 0.1 * rng.standard_normal(n)
lam = 0.05 * polynomial_dual_norm(X, y, a, b, c)
print(f"lam_max = {lam / 0.05:.3f}, lam = {lam:.3f}")

# %% [markdown]
# ## The SDP and its network
# `build_polynomial_program` returns a real `cvxpy.Problem` with `lam` a Parameter; `solve` uses
# Clarabel. `to_network` decomposes `M+` and `M-` into rank-one terms `t_k^2 (w_k, 1)(w_k, 1)^T`
# with unit-norm `w_k`: one neuron each.

# %%
program = build_polynomial_program(X, y, a=a, b=b, c=c, lam=lam)
t0 = time.perf_counter()
solution = program.solve()
t_sdp = time.perf_counter() - t0
network = solution.to_network()
p_star = solution.objective
print(f"SDP: status {solution.status}, p* = {p_star:.8f} in {t_sdp:.2f} s")
print(f"mapped network: {network.n_neurons} neurons, objective {network.objective(X, y, lam=lam):.8f}")
cert = polynomial_duality_gap(network, X, y, lam=lam)
print(f"certificate: no network of any width goes below {cert.dual:.8f} (relative gap {cert.rel_gap:.1e})")
assert abs(network.objective(X, y, lam=lam) - p_star) <= 1e-6 * p_star
assert cert.rel_gap <= 1e-6

# %% [markdown]
# ## Non-convex training from random starts
# `fit_nonconvex` trains the same objective with L-BFGS-B (`w = u / ||u||`, `alpha = p - q`,
# `p, q >= 0`). Every run ends at or above `p*`; how often it reaches `p*` depends on the width.

# %%
widths = (1, 2, 3, 6)
starts = 30
ratios = {}
t0 = time.perf_counter()
for m in widths:
    vals = np.array([fit_nonconvex(X, y, width=m, a=a, b=b, c=c, lam=lam, seed=s, max_iter=500)
                     .objective(X, y, lam=lam) for s in range(starts)])
    ratios[m] = vals / p_star
    assert vals.min() >= p_star * (1 - 1e-6), "a network below the certified optimum would be a bug"
    print(f"width {m}: best {ratios[m].min():.6f} p*, median {np.median(ratios[m]):.4f} p*, "
          f"within 1e-4 of p*: {np.sum(ratios[m] <= 1 + 1e-4)}/{starts}")
t_nc = time.perf_counter() - t0
print(f"{starts * len(widths)} L-BFGS runs in {t_nc:.1f} s; one SDP in {t_sdp:.2f} s")

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for k, m in enumerate(widths):
    ax.scatter(np.full(starts, k) + rng.uniform(-0.15, 0.15, starts), np.maximum(ratios[m] - 1, 1e-9), s=18,
               alpha=0.7)
ax.axhline(1e-9, color="k", lw=1, label="p* (SDP, certified; runs at p* sit on this line)")
ax.set_yscale("log")
ax.set_xticks(range(len(widths)), [f"width {m}" for m in widths])
ax.set_ylabel("objective / p* - 1  (clipped at 1e-9)")
ax.set_title("L-BFGS from 30 random starts vs the SDP optimum")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "08_nonconvex_vs_sdp.png"), dpi=120)
plt.show()

# %% [markdown]
# ## Quadratic activation: nuclear norm, Clarabel and the native solver
# For `sigma(t) = t^2` the program is `min_Z L(diag(X Z X^T), y) + lam ||Z||_*`; the
# eigendecomposition of `Z` is the network. The native solver (R-FISTA with eigenvalue
# soft-thresholding) stops on a certified duality gap.

# %%
yq = (T**2) @ np.array([1.0, -0.7, 0.5]) + 0.1 * rng.standard_normal(n)
lam_q = 0.05 * polynomial_dual_norm(X, yq, 1.0, 0.0, 0.0)
t0 = time.perf_counter()
ref = build_quadratic_program(X, yq, lam=lam_q).solve()
t_cl = time.perf_counter() - t0
t0 = time.perf_counter()
nat = solve_quadratic_native(X, yq, lam=lam_q, tol=1e-8)
t_nat = time.perf_counter() - t0
print(f"Clarabel {ref.objective:.9f} in {t_cl:.3f} s; native {nat.objective:.9f} in {t_nat:.3f} s "
      f"(certified relative gap {nat.rel_gap:.1e})")
assert abs(nat.objective - ref.objective) <= 1e-6 * ref.objective
eig = np.linalg.eigvalsh(nat.Z)
print(f"eigenvalues of Z (= output weights of the network): {np.round(eig, 4)}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(range(d), np.sort(np.abs(eig))[::-1], color="tab:blue")
ax.set_xlabel("k")
ax.set_ylabel("|e_k(Z)| = |alpha_k|")
ax.set_title(f"quadratic network: {nat.to_network().n_neurons} neurons (teacher: 3)")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "08_quadratic_spectrum.png"), dpi=120)
plt.show()

print(f"plots written to {OUT}; total time {time.perf_counter() - t_start:.1f} s")
