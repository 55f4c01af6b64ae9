"""Warm-started non-negative least squares for the KKT checks of the C-ReLU working sets.

:func:`nnls_warm` (Lawson-Hanson from a previous support) and :func:`nnls_batched_admm` (ADMM on
many NNLS problems of one family at once). The implementation lives in ``cvxnn._nnls``, below
the solver packages, so that :func:`cvxnn.path.lam_max` can use it without reaching
:mod:`cvxnn.native`; see that module for the method and its measurements.
"""

from __future__ import annotations

from .._nnls import nnls_batched_admm, nnls_warm

__all__ = ["nnls_batched_admm", "nnls_warm"]
