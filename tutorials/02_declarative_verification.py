# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Declarative construction and verification against Clarabel and SCS
#
# The convex training problem of a two-layer ReLU network is an ordinary conic program. cvxnn
# builds it as a real `cvxpy.Problem` that you can print, inspect, modify and hand to any
# solver. Here we
#
# 1. build C-ReLU with `build_program` and inspect the `cvxpy.Problem` it returns;
# 2. write the same program by hand from CVXPY atoms and check the two agree;
# 3. solve it with Clarabel (interior point, the reference) and SCS (first order), and with
#    cvxnn's native solver on the same patterns, and compare objectives, weights, cone
#    feasibility and time;
# 4. verify the answer independently: the exact map to a ReLU network reproduces the objective,
#    and the KKT conditions hold with recovered multipliers;
# 5. change `lam` without recompiling (the problem is DPP) and add a constraint of our own.

# %%
import os
import time

import cvxpy as cp
import matplotlib.pyplot as plt
import numpy as np

from cvxnn import build_program, sample_patterns
from cvxnn.datasets import load_teacher_regression
from cvxnn.native import solve_native
from cvxnn.optimality import kkt_report

# next to this file, from any working directory (a notebook has no __file__ but runs in tutorials/)
HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
OUT = os.environ.get("CVXNN_TUTORIAL_OUTPUT", os.path.join(HERE, "_output"))
os.makedirs(OUT, exist_ok=True)
t_start = time.perf_counter()

X, y = load_teacher_regression()
X, y = X[:50], y[:50]
lam = 0.5
patterns = sample_patterns(X, 30, seed=0, bias=True)
print(patterns)

# %% [markdown]
# ## 1. The program as cvxnn builds it
# One matrix variable per sign (`V`, `W`, each `d_a x p`), one vectorised cone constraint per
# sign, and `lam` as a `cvxpy.Parameter`.

# %%
program = build_program(X, y, activation="relu", loss="squared", lam=lam, patterns=patterns)
problem = program.problem
print("variables   :", [(v.name(), v.shape) for v in problem.variables()])
print("parameters  :", [(p.name(), p.value) for p in problem.parameters()])
print("constraints :", [str(c.shape) + " " + type(c).__name__ for c in problem.constraints])
print("DCP / DPP   :", problem.is_dcp(), problem.is_dcp(dpp=True))
metrics = problem.size_metrics
print(f"size        : {metrics.num_scalar_variables} scalar variables, "
      f"{metrics.num_scalar_leq_constr} scalar inequalities")
assert problem.is_dcp(dpp=True)
assert len(program.cone_constraints) == 2

# %% [markdown]
# ## 2. The same program, by hand
# With the design `X_a = [X, 1]`, the 0/1 mask `M` (`M[:, i] = diag(D_i)`) and `S = 2M - 1`:
#
#     minimize   1/2 || rowsum(M * (X_a (V - W))) - y ||^2 + lam * sum_i (||V_i|| + ||W_i||)
#     subject to S * (X_a V) >= 0,  S * (X_a W) >= 0

# %%
Xa = patterns.design(X)
M = patterns.mask.astype(float)
S = 2 * M - 1
d_a, p = patterns.design_dim, patterns.n_patterns
V, W = cp.Variable((d_a, p)), cp.Variable((d_a, p))
fit = cp.sum(cp.multiply(M, Xa @ (V - W)), axis=1)
by_hand = cp.Problem(
    cp.Minimize(0.5 * cp.sum_squares(fit - y) + lam * (cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0)))),
    [cp.multiply(S, Xa @ V) >= 0, cp.multiply(S, Xa @ W) >= 0],
)
by_hand.solve(solver="CLARABEL")
print(f"hand-written program, Clarabel: {by_hand.value:.10f}")

# %% [markdown]
# ## 3. Three solvers on the same program
# `program.solve(...)` returns a `ConvexSolution` with status, objective, time and the largest cone
# violation. The native solver (for C-ReLU: a working set whose restricted programs an active-set
# method solves, with a KKT check of the other blocks) runs on the same patterns.

# %%
solutions = {}
for name in ("clarabel", "scs"):
    t0 = time.perf_counter()
    solutions[name] = program.solve(name)
    solutions[name].extra["wall"] = time.perf_counter() - t0
t0 = time.perf_counter()
solutions["native"] = solve_native(X, y, patterns, activation="relu", loss="squared", lam=lam, tol=1e-7)
solutions["native"].extra["wall"] = time.perf_counter() - t0

ref = solutions["clarabel"]
print(f"{'solver':<9} {'status':<16} {'objective':>16} {'rel. diff':>10} {'max viol.':>10} {'wall [s]':>9}")
for name, sol in solutions.items():
    rel = abs(sol.objective_value - ref.objective_value) / abs(ref.objective_value)
    print(f"{name:<9} {sol.status:<16} {sol.objective_value:>16.10f} {rel:>10.2e} "
          f"{sol.max_violation:>10.2e} {sol.extra['wall']:>9.3f}")

assert ref.converged
assert abs(by_hand.value - ref.objective_value) <= 1e-7 * ref.objective_value
assert abs(solutions["scs"].objective_value - ref.objective_value) <= 1e-4 * ref.objective_value
if solutions["native"].converged:
    assert abs(solutions["native"].objective_value - ref.objective_value) <= 1e-5 * ref.objective_value
else:
    print("note: the native solve did not certify its tolerance:", solutions["native"].status)

# %% [markdown]
# The fit `sum_i D_i X theta_i` is the same at every optimum (the loss is strictly convex in the
# fit), so the fits must agree even where the weights differ (the optimum need not be unique).

# %%
fits = {name: sol.train_predict(X) for name, sol in solutions.items()}
for name, f in fits.items():
    print(f"max |fit({name}) - fit(clarabel)| = {np.max(np.abs(f - fits['clarabel'])):.2e}")
assert np.max(np.abs(fits["scs"] - fits["clarabel"])) <= 1e-3 * np.max(np.abs(y))

# %% [markdown]
# ## 4. Independent verification
# **The exact map.** Each nonzero block becomes a neuron `(v_i / sqrt||v_i||, +sqrt||v_i||)` or
# `(w_i / sqrt||w_i||, -sqrt||w_i||)`; the network's weight-decay objective must equal the convex
# objective.
#
# **KKT.** `kkt_report` recovers minimum-norm cone multipliers and measures stationarity,
# complementary slackness and feasibility (solver duals are not unique, so they are not used).

# %%
# drop the "dust" an interior-point solver leaves: blocks that should be zero but sit at 1e-9 to
# ~1e-5 of the largest (here about 1.5e-5 and 4e-7); kkt_report below finds the active blocks exactly
network = ref.to_network(tol=1e-4)
nc = network.objective(X, y, lam)
print(f"convex objective {ref.objective_value:.10f}  vs  network objective {nc:.10f} "
      f"({network.n_neurons} neurons)")
assert abs(nc - ref.objective_value) <= 1e-6 * ref.objective_value

report = kkt_report(ref, X, y, lam, "squared")
print(f"stationarity residual / lam : {report.stationarity:.2e}")
print(f"complementarity             : {report.complementarity:.2e}")
print(f"primal feasibility          : {report.primal_feasibility:.2e}")
print(f"equicorrelation set S       : {len(report.equicorrelation)} blocks, active {len(report.active)}")
assert report.primal_feasibility <= 1e-8
assert report.stationarity <= 1e-3

# %% [markdown]
# ## 5. Change `lam` without recompiling, and add a constraint
# `program.lam` is a parameter: only its value changes between solves. Then we add our own
# constraint to the same variables — a budget on the total norm of the negative-output neurons
# `w_i` — and solve the modified problem; cvxnn's objects are ordinary CVXPY objects.

# %%
lams = lam * np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.25])
path_values, path_widths, path_times = [], [], []
for value in lams:
    t0 = time.perf_counter()
    sol = program.solve("clarabel", lam=float(value))
    path_times.append(time.perf_counter() - t0)
    path_values.append(sol.objective_value)
    path_widths.append(sol.to_network(tol=1e-6).n_neurons)
print("lam:", lams, "\nobjective:", np.round(path_values, 4), "\nneurons:", path_widths)
assert np.all(np.diff(path_values) < 0)  # the grid runs down, and the optimal value grows with lam

program.lam.value = lam
budget = 0.5 * float(np.sum(np.linalg.norm(ref.W, axis=0)))
extra = cp.sum(cp.norm(program.W, 2, axis=0)) <= budget
constrained = cp.Problem(program.problem.objective, program.problem.constraints + [extra])
constrained.solve(solver="CLARABEL")
print(f"with sum ||w_i|| <= {budget:.3f}: objective {constrained.value:.6f} "
      f"(>= unconstrained {ref.objective_value:.6f})")
assert constrained.value >= ref.objective_value - 1e-7

# %% [markdown]
# ## Plots: agreement of block norms and the lam path

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
ax = axes[0]
norms_ref = ref.block_norms().ravel()
for name, marker in (("scs", "o"), ("native", "x")):
    ax.loglog(np.maximum(norms_ref, 1e-12), np.maximum(solutions[name].block_norms().ravel(), 1e-12),
              marker, alpha=0.7, label=name)
ax.plot([1e-12, 10], [1e-12, 10], "k--", lw=1)
ax.set_xlabel("Clarabel block norm ||v_i||, ||w_i||")
ax.set_ylabel("other solver")
ax.set_title("Same program, three solvers")
ax.legend()
ax = axes[1]
ax.semilogx(lams, path_values, "o-", label="optimal value")
ax2 = ax.twinx()
ax2.semilogx(lams, path_widths, "s--", color="tab:orange", label="neurons")
for a in (ax, ax2):
    a.set_xticks(lams, [f"{v:g}" for v in lams])
    a.minorticks_off()
ax.set_xlabel("lam (changed in place, no recompilation)")
ax.set_ylabel("objective")
ax2.set_ylabel("neurons")
ax.set_title("Re-solving the compiled problem")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "02_verification.png"), dpi=120)
plt.show()
print(f"plots written to {OUT}; total time {time.perf_counter() - t_start:.1f} s")
