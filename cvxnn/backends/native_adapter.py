"""Adapter for cvxnn's native solvers (:func:`cvxnn.native.solve_native`).

Names: ``"rfista"`` (C-GReLU), ``"working_set"`` and ``"al"`` (C-ReLU); ``"auto"`` and
``"native"`` let :func:`~cvxnn.native.solve_native` pick (``"rfista"`` for C-GReLU, the working
set where it applies and the augmented Lagrangian otherwise for C-ReLU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidParameterError
from .capabilities import native_supports

if TYPE_CHECKING:  # pragma: no cover
    from ..solution import ConvexSolution
    from .registry import SolveRequest

__all__ = ["NATIVE_SOLVERS", "NativeAdapter"]

#: Solver names the native adapter accepts (``"auto"`` and ``"native"`` pick one).
NATIVE_SOLVERS = ("auto", "native", "rfista", "working_set", "al")


def _native_options(fn) -> frozenset[str]:
    """The keyword options of ``solve_native`` a request may pass through (its signature, less the
    arguments the adapter sets itself)."""
    import inspect

    own = {"X", "y", "patterns", "activation", "loss", "lam", "tol", "warm_start", "callback", "verbose", "solver"}
    return frozenset(k for k in inspect.signature(fn).parameters if k not in own)


class NativeAdapter:
    """Solve through :func:`cvxnn.native.solve_native` with ``solver=name``."""

    backend = "native"

    def supports(self, loss) -> bool:
        """Whether the native solvers take ``loss`` (see
        :func:`cvxnn.backends.capabilities.native_supports`)."""
        return native_supports(loss)

    def names(self) -> tuple[str, ...]:
        """The solver names this adapter serves."""
        return NATIVE_SOLVERS

    def solve(self, request: SolveRequest) -> ConvexSolution:
        """Run the native solver named in ``request.solver``.

        Raises
        ------
        InvalidParameterError
            When a CVXPY program is passed (``program=``), an option ``solve_native`` does not
            take is passed, or the solver does not fit the
            activation (``"rfista"`` is for C-GReLU, ``"working_set"`` / ``"al"`` for C-ReLU).
        """
        from ..native import solve_native  # the native package is optional at import time

        if request.program is not None:
            raise InvalidParameterError(
                f"program= is for CVXPY solvers; the native solver {request.solver!r} works on X, y, patterns."
            )
        name = "auto" if request.solver == "native" else request.solver
        kwargs = dict(request.options)
        taken = _native_options(solve_native)
        unknown = sorted(k for k in kwargs if k not in taken)
        if unknown:
            raise InvalidParameterError(
                f"the native solvers do not take the option(s) {unknown}; they take {sorted(taken)} "
                "(feature penalties: cvxnn.solve_feature_sparse).")
        if request.max_iter is not None:
            kwargs["max_iter"] = request.max_iter
        return solve_native(
            request.X, request.y, request.patterns, activation=request.activation, loss=request.loss,
            lam=request.lam, tol=request.tol, warm_start=request.warm_start, callback=request.callback,
            verbose=bool(request.verbose), solver=name, **kwargs,
        )
