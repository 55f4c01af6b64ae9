"""Optimality analysis of convex two-layer networks (``docs/math.md``, "Optimality
conditions" and "Optimal set, minimal models and pruning"; Mishkin & Pilanci, ICML 2023).

* :mod:`.kkt`: dual recovery (minimum-norm multipliers) and KKT certificates;
* :mod:`.optimal_set`: the polytope of all optima, uniqueness, dimension, weight ranges, sampling,
  minimal (vertex) and minimum-norm optima;
* :mod:`.pruning`: exact pruning to a minimal model and approximate pruning past it.
"""

from .kkt import (
    DEFAULT_ACTIVE_TOL,
    DEFAULT_EQUICORRELATION_TOL,
    DualCertificate,
    KKTReport,
    block_layout,
    kkt_report,
    model_from_blocks,
    recover_duals,
)
from .optimal_set import DEFAULT_FIT_TOL, OptimalSet, min_norm_solution, optimal_set
from .pruning import (
    CRITERIA,
    PruneResult,
    PruningPath,
    PruningStep,
    is_minimal,
    prune_exact,
    prune_to_width,
    pruning_path,
)

__all__ = [
    "CRITERIA",
    "DEFAULT_ACTIVE_TOL",
    "DEFAULT_EQUICORRELATION_TOL",
    "DEFAULT_FIT_TOL",
    "DualCertificate",
    "KKTReport",
    "OptimalSet",
    "PruneResult",
    "PruningPath",
    "PruningStep",
    "block_layout",
    "is_minimal",
    "kkt_report",
    "min_norm_solution",
    "model_from_blocks",
    "optimal_set",
    "prune_exact",
    "prune_to_width",
    "pruning_path",
    "recover_duals",
]
