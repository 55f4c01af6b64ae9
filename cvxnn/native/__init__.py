"""Native fast path: matrix-free R-FISTA (C-GReLU); a working-set interior point and an
augmented Lagrangian (C-ReLU).

R-FISTA and the augmented Lagrangian use numpy/scipy only; the working set calls Clarabel
directly on small restricted programs. The ``n x p d`` design is never formed (see
:mod:`cvxnn.operators`).

* :func:`solve_native` -- solve and return a certified :class:`~cvxnn.solution.ConvexSolution`;
* :func:`duality_gap`, :func:`min_norm_subgradient` -- certificates for any point;
* :func:`lam_max_gated` -- the smallest ``lam`` with the zero C-GReLU solution.
"""

from .certificates import (
    GapCertificate,
    duality_gap,
    lam_max_gated,
    min_norm_subgradient,
)
from .solve import solve_native

__all__ = ["GapCertificate", "duality_gap", "lam_max_gated", "min_norm_subgradient", "solve_native"]
