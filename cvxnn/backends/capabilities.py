"""What each backend can solve, read off the loss objects' capability flags (no solver imports).

The native solvers need a smooth loss with a conjugate (for their duality-gap certificate);
CVXPY solvers take every loss with a CVXPY expression. Keeping this check free of solver imports
lets the CVXPY adapter advise the native solvers without importing them.
"""

from __future__ import annotations

from ..losses import Loss

__all__ = ["native_supports"]


def native_supports(loss) -> bool:
    """Whether the native solvers take ``loss``: a :class:`~cvxnn.losses.Loss` that is smooth and
    has a conjugate (``Loss.smooth``, ``Loss.has_conjugate``)."""
    return isinstance(loss, Loss) and bool(loss.smooth) and bool(getattr(loss, "has_conjugate", False))
