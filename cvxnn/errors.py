"""Exceptions and warnings raised by cvxnn.

Every error the library raises on purpose derives from :class:`CvxnnError`.
Errors caused by the caller's input also derive from :class:`ValueError`, so
``except ValueError`` keeps working for code written against numpy-style APIs.

Hierarchy::

    CvxnnError
    ├── InputError (ValueError)
    │   ├── ShapeError              wrong shape / empty data / mismatched lengths
    │   ├── NonFiniteError          NaN or inf in data or parameters
    │   ├── InvalidParameterError   negative lam, unknown loss / solver / option
    │   ├── LabelError              targets that do not fit the loss
    │   ├── PatternMismatchError    activation patterns built on other data
    │   └── FileFormatError         corrupt or foreign model / data file
    ├── SolverError (RuntimeError)  the solver failed (numerical error, crash)
    │   ├── InfeasibleError         the program (or a cone decomposition) is infeasible
    │   └── UnboundedError          the program is unbounded
    ├── NotFittedError (AttributeError)
    └── MemoryBudgetError (MemoryError)

Warnings: :class:`CvxnnWarning` > :class:`ConvergenceWarning` >
:class:`InaccurateSolutionWarning`; :class:`CvxnnWarning` > :class:`DataWarning` (collapsed
activation patterns, badly scaled columns).
"""

from __future__ import annotations

__all__ = [
    "CvxnnError",
    "InputError",
    "ShapeError",
    "NonFiniteError",
    "InvalidParameterError",
    "LabelError",
    "PatternMismatchError",
    "FileFormatError",
    "FileWriteError",
    "SolverError",
    "InfeasibleError",
    "UnboundedError",
    "NotFittedError",
    "MemoryBudgetError",
    "MissingDependencyError",
    "CvxnnWarning",
    "ConvergenceWarning",
    "InaccurateSolutionWarning",
    "DataWarning",
]


class CvxnnError(Exception):
    """Base class of every error raised by cvxnn."""


class InputError(CvxnnError, ValueError):
    """The caller passed something cvxnn cannot work with."""


class ShapeError(InputError):
    """An array has the wrong number of dimensions, the wrong length, or is empty."""


class NonFiniteError(InputError):
    """An array or a parameter contains NaN or infinity."""


class InvalidParameterError(InputError):
    """A parameter is out of range or names something unknown (loss, solver, option)."""


class LabelError(InputError):
    """Targets do not fit the loss (e.g. logistic loss with a single class)."""


class PatternMismatchError(InputError):
    """Activation patterns were built on other data than the data given."""


class FileFormatError(InputError):
    """A file is corrupt, of a foreign format, or of an unsupported format version."""


class FileWriteError(CvxnnError, OSError):
    """A file could not be written (permissions, a missing folder, a full disk); also an
    :class:`OSError`. The message names the destination, not the temporary file."""


class SolverError(CvxnnError, RuntimeError):
    """The optimisation failed; ``status`` holds the solver's status string.

    Parameters
    ----------
    message : str
        What went wrong and what to try.
    status : str, optional
        The status reported by the solver (CVXPY's status string or a native status).
    """

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class InfeasibleError(SolverError):
    """The program, or a block of a cone decomposition, has no feasible point."""


class UnboundedError(SolverError):
    """The program is unbounded below."""


class NotFittedError(CvxnnError, AttributeError):
    """An estimator was used before ``fit``."""


class MemoryBudgetError(CvxnnError, MemoryError):
    """An allocation would exceed the memory budget; the message names the size needed."""


class CvxnnWarning(UserWarning):
    """Base class of cvxnn's warnings."""


class ConvergenceWarning(CvxnnWarning):
    """A solver stopped before reaching the requested tolerance."""


class InaccurateSolutionWarning(ConvergenceWarning):
    """The solver reported an inaccurate solution (e.g. CVXPY's ``optimal_inaccurate``)."""


class DataWarning(CvxnnWarning):
    """The training data will make the fit poor or slow (collapsed activation patterns, badly
    scaled columns); the message says what to change."""


class MissingDependencyError(CvxnnError, ImportError):
    """An optional dependency needed by the requested feature is not installed (the message
    names the ``pip install`` command)."""
