"""Native fast path: matrix-free R-FISTA and a working set of rank-one atoms (C-GReLU); a
working set with active-set restricted solves and an augmented Lagrangian (C-ReLU).

The solvers use numpy/scipy; Clarabel serves only as a fallback of the C-ReLU working set
(called directly by the squared loss's QP working set, through CVXPY for the restricted conic
solve when Newton on the faces fails). The ``n x p d`` design is never formed (see
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
