"""scikit-learn style estimators for convex two-layer networks.

Four estimators, one per activation and task:

==============================  ============  ==========================================
estimator                       program       prediction on new data
==============================  ============  ==========================================
:class:`ConvexReLURegressor`    C-ReLU        the mapped ReLU network ``(X W1 + b1)_+ w2``
:class:`ConvexReLUClassifier`   C-ReLU        sign / argmax of the ReLU network
:class:`ConvexGatedReLURegressor`  C-GReLU    the mapped gated ReLU network (fixed gates)
:class:`ConvexGatedReLUClassifier` C-GReLU    sign / argmax of the gated network
==============================  ============  ==========================================

Each ``fit`` samples activation patterns (or re-applies user ``gates``), solves the convex
program (docs/math.md, "The convex programs") with the native solvers (``backend="native"``) or a
CVXPY solver (``backend="clarabel"``, ``"scs"``, any installed CVXPY solver name), and maps
the solution to an ordinary network by the exact maps, stored in ``network_``.

By default (``standardize=True``) the columns of ``X`` (and a regressor's targets ``y``) are
standardized before the patterns are sampled, and the network is mapped back to raw ``X`` and
raw ``y`` units exactly by :class:`~cvxnn.preprocessing.Standardizer`. ``objective_`` is the
objective of the returned network on the standardized data, ``convex_objective_`` the value
of the convex program (equal for the exact maps).
``sample_weight`` (and ``class_weight``) multiply the per-sample loss terms.

Objective convention (docs/math.md): losses are sums over samples (squared loss ``1/2 ||.||^2``)
and the convex program carries ``lam * sum_i ||theta_i||``, which equals weight decay
``lam/2 * sum_j (||W1_j||^2 + b1_j^2 + w2_j^2)`` on the network. The bias (``bias=True``) is
a column of ones appended to ``X`` and is penalised with its neuron. A mean loss is the
documented option ``loss=SquaredLoss(reduction="mean")`` (any :class:`~cvxnn.losses.Loss`
instance is accepted).

scikit-learn is optional: without it the estimators still work (``fit``, ``predict``,
``score``, ``get_params``, ``set_params``); with it they are genuine scikit-learn estimators
(``BaseEstimator`` subclasses) that work in ``Pipeline`` and ``GridSearchCV`` and pass
``check_estimator`` except ``check_sample_weight_equivalence_on_dense_data``, whose ``1e-7``
is below the accuracy the solvers certify (docs/estimators.md). :func:`cross_validate_lam`
cross-validates a grid of ``lam`` with folds x ``lam`` segments as independent joblib tasks,
so switching joblib's backend (Dask, Ray) distributes it.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import numbers
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit, softmax

from ._validation import as_generator, callback_stops, check_lam, check_lams, check_positive_int, check_X, check_y
from .activations import get_activation
from .errors import (
    ConvergenceWarning,
    CvxnnError,
    DataWarning,
    InaccurateSolutionWarning,
    InputError,
    InvalidParameterError,
    LabelError,
    NonFiniteError,
    NotFittedError,
    ShapeError,
)
from .losses import DOMAIN_TOL, LogisticLoss, Loss, get_loss
from .patterns import Patterns, sample_patterns
from .solution import EXTRA_KEYS, ConvexSolution

__all__ = [
    "ConvexReLURegressor",
    "ConvexReLUClassifier",
    "ConvexGatedReLURegressor",
    "ConvexGatedReLUClassifier",
    "ConvexReLURegressorCV",
    "ConvexReLUClassifierCV",
    "ConvexGatedReLURegressorCV",
    "ConvexGatedReLUClassifierCV",
    "cross_validate_lam",
    "LamCVResult",
    "solve_convex",
    "NETWORK_TOL",
    "WeightedLoss",
]

logger = logging.getLogger(__name__)

#: Relative block-norm threshold below which a block is not turned into a neuron
#: (``ConvexModel.to_network(tol=NETWORK_TOL)``). Interior-point solvers leave inactive
#: blocks at ~1e-9 of the largest one; the native solvers return exact zeros.
NETWORK_TOL = 1e-7

try:  # scikit-learn is an optional dependency
    from sklearn.base import BaseEstimator as _SkBase
    from sklearn.base import ClassifierMixin as _SkClassifierMixin
    from sklearn.base import RegressorMixin as _SkRegressorMixin
    from sklearn.exceptions import DataConversionWarning

    _HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    _HAVE_SKLEARN = False

    class DataConversionWarning(UserWarning):
        """A column-vector ``y`` was flattened (scikit-learn's warning of that name)."""


# ------------------------------------------------------------------------------------------
# Minimal base classes used when scikit-learn is not installed.
# ------------------------------------------------------------------------------------------
class _FallbackBase:
    """``get_params`` / ``set_params`` / ``repr`` with scikit-learn's semantics."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as a dict (``deep`` is accepted for API compatibility)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set hyper-parameters; unknown names raise :class:`InvalidParameterError`."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise InvalidParameterError(
                    f"invalid parameter {key!r} for {type(self).__name__}; valid: {valid}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class _FallbackRegressorMixin:
    _estimator_type = "regressor"

    def score(self, X, y, sample_weight=None) -> float:
        """Coefficient of determination ``R^2`` of ``predict(X)`` (weighted by ``sample_weight``)."""
        y = np.asarray(y, dtype=float)
        return self._r2(y, np.asarray(self.predict(X), dtype=float), sample_weight)

    @staticmethod
    def _r2(y, pred, sample_weight=None) -> float:
        w = np.ones(y.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        Y, P = y.reshape(y.shape[0], -1), pred.reshape(y.shape[0], -1)
        resid = np.sum(w[:, None] * (Y - P) ** 2, axis=0)
        total = np.sum(w[:, None] * (Y - np.average(Y, axis=0, weights=w)) ** 2, axis=0)
        # per output, averaged (scikit-learn's multioutput="uniform_average")
        r2 = np.where(total > 0, 1.0 - resid / np.where(total > 0, total, 1.0), np.where(resid == 0, 1.0, 0.0))
        return float(np.mean(r2))


class _FallbackClassifierMixin:
    _estimator_type = "classifier"

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy of ``predict(X)`` (weighted by ``sample_weight``)."""
        return float(np.average(self.predict(X) == np.asarray(y), weights=sample_weight))


if _HAVE_SKLEARN:
    _Base, _RegMixin, _ClfMixin = _SkBase, _SkRegressorMixin, _SkClassifierMixin
else:  # pragma: no cover
    _Base, _RegMixin, _ClfMixin = _FallbackBase, _FallbackRegressorMixin, _FallbackClassifierMixin


class _AvailableIf:
    """Descriptor exposing a method only when ``check(instance)`` is true (as scikit-learn's
    ``available_if``): otherwise attribute access raises ``AttributeError``, so ``hasattr``
    tells whether e.g. ``predict_proba`` is meaningful for the chosen loss."""

    def __init__(self, fn: Callable, check: Callable[[Any], bool]) -> None:
        self.fn = fn
        self.check = check
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.fn
        if not self.check(obj):
            raise AttributeError(
                f"{type(obj).__name__} has no {self.__name__} with loss={obj.loss!r}; "
                "use loss='logistic' (or 'cross_entropy') for probabilities."
            )
        return self.fn.__get__(obj, owner)


def _available_if(check: Callable[[Any], bool]):
    def wrap(fn):
        return _AvailableIf(fn, check)

    return wrap


class InputTypeError(InputError, TypeError):
    """Input of a type the estimators cannot convert to numbers (both an
    :class:`~cvxnn.errors.InputError` and a ``TypeError``, as scikit-learn expects)."""


#: Marks "no target passed" in :meth:`_ConvexNetworkBase._validate_X` (``None`` is a wrong y).
_NO_Y = object()

if _HAVE_SKLEARN:
    from sklearn.exceptions import NotFittedError as _SkNotFittedError

    class EstimatorNotFittedError(NotFittedError, _SkNotFittedError):
        """Raised by an unfitted estimator: both :class:`cvxnn.errors.NotFittedError` and
        scikit-learn's ``NotFittedError``, so either ``except`` clause catches it."""

else:  # pragma: no cover
    EstimatorNotFittedError = NotFittedError


# ------------------------------------------------------------------------------------------
# Solving (shared by the estimators, the CLI and cross-validation).
# ------------------------------------------------------------------------------------------


def _resolve_backend(backend) -> str:
    """``"native"`` or an installed CVXPY solver name (upper case)."""
    if not isinstance(backend, str) or not backend:
        raise InvalidParameterError(
            f"backend must be 'native' or a CVXPY solver name such as 'clarabel', got {backend!r}."
        )
    if backend.lower() == "native":
        return "native"
    import cvxpy as cp

    name = "CLARABEL" if backend.lower() == "cvxpy" else backend.upper()  # "cvxpy": as cvxnn.path
    installed = cp.installed_solvers()
    if name not in installed:
        raise InvalidParameterError(
            f"unknown backend {backend!r}: use 'native' or an installed CVXPY solver "
            f"({', '.join(s.lower() for s in installed)})."
        )
    return name


def solve_convex(
    X: np.ndarray,
    y: np.ndarray,
    patterns: Patterns,
    *,
    activation: str,
    loss: Loss,
    lam: float,
    backend: str = "native",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    verbose: bool | int = False,
    warm_start: ConvexSolution | None = None,
    callback: Callable[[dict], Any] | None = None,
) -> ConvexSolution:
    """Solve the convex program on fixed patterns with the native solvers or a CVXPY solver.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Raw training data (the patterns carry the bias convention).
    y : ndarray of shape (n,) or (n, c)
        Targets as the loss expects them (``{-1, +1}`` labels for logistic, one-hot rows
        for cross-entropy).
    patterns : Patterns
        Built on ``X``.
    activation : {"relu", "gated_relu"}
    loss : Loss
    lam : float
    backend : str
        ``"native"`` (:func:`cvxnn.native.solve_native`) or a CVXPY solver name.
    tol : float
        Relative tolerance of the native solvers. CVXPY solvers keep the tight defaults of
        :meth:`cvxnn.builders.ConvexProgram.solve`.
    max_iter : int
        Iteration limit (native; ``max_iter`` / ``max_iters`` of Clarabel, SCS, ECOS, OSQP).
    verbose : bool or int
        Solver output.
    warm_start : ConvexSolution, optional
        Initial point for the native solvers (ignored by CVXPY solvers).
    callback : callable, optional
        Called by the native solvers after every iteration with a dict of progress
        information (``iteration``, ``objective``, ``gap``, ...); ignored by CVXPY solvers.

    Returns
    -------
    ConvexSolution
        Never silently wrong: not-converged solves keep their status (see
        :attr:`ConvexSolution.converged`). C-ReLU with vector output solves the one-vs-all
        program on every backend (``formulation == "one_vs_all"``; docs/vector.md), the program
        whose value is the objective of the network it maps to.
    """
    from .backends.registry import solve

    name = _resolve_backend(backend)
    native = name == "native"
    program = None
    spec = get_activation(activation)
    if not native and np.ndim(y) == 2 and spec.vector_formulation != "nuclear":
        # the program the native solvers solve by default (C-ReLU: one-vs-all, exact for its network)
        from .vector import build_vector_program

        program = build_vector_program(X, y, activation=spec.name, loss=loss, lam=lam, patterns=patterns,
                                       formulation=spec.vector_formulation)
    sol = solve(X, y, patterns, activation=activation, loss=loss, lam=lam, solver="auto" if native else name,
                tol=tol, max_iter=max_iter, warm_start=warm_start if native else None,
                callback=callback if native else None, verbose=verbose, program=program)
    return sol if native else _exact_zero_at_lam_max(sol, X, y, patterns, spec, loss, lam)


#: A CVXPY solution whose objective is not below the zero model's by more than this fraction
#: may be the zero optimum up to solver accuracy: :func:`_exact_zero_at_lam_max` checks lam_max.
ZERO_OBJECTIVE_RTOL = 1e-6


def _exact_zero_at_lam_max(sol: ConvexSolution, X, y, patterns: Patterns, spec, loss: Loss,
                           lam: float) -> ConvexSolution:
    """The exact zero solution (as :func:`cvxnn.path.regularization_path` returns it) in place
    of a CVXPY solution at ``lam >= lam_max``: interior-point solvers leave blocks of solver
    noise there (Clarabel at ``lam_max`` on 100 iris rows: blocks of 1e-4, three neurons and
    accuracy 0.66 where the zero model's is 0.29; at ``1.01 lam_max`` still three). ``lam_max``
    is computed only when the solution's objective does not beat the zero model's, for a loss
    differentiable at the zero prediction (smooth; hinge; absolute without a target 0): the
    zero model is then exact at ``lam >= lam_max`` by the subdifferential argument."""
    obj = sol.objective_value
    if obj is None or not np.isfinite(obj) or not _differentiable_at_zero(loss, y):
        return sol
    zero = float(loss.value(np.zeros_like(y, dtype=float), y))
    if obj < zero - ZERO_OBJECTIVE_RTOL * max(abs(zero), 1.0):
        return sol
    from .path import _zero_solution, lam_max

    formulation = spec.vector_formulation
    if not lam >= lam_max(X, y, patterns, spec.name, loss, formulation=formulation):
        return sol
    return _zero_solution(X, y, patterns, spec.name, loss, lam, sol.backend, formulation)


def _differentiable_at_zero(loss: Loss, y) -> bool:
    """Whether ``loss`` has a gradient at the zero prediction for the targets ``y``
    (:meth:`~cvxnn.losses.Loss.grad_at_zero`): what ``lam_max`` and the zero model above it need."""
    try:
        loss.grad_at_zero(y)
    except InvalidParameterError:
        return False
    return True


def _certificates():
    """:mod:`cvxnn.native.certificates`, imported when first needed (as the other native imports
    of this module)."""
    from .native import certificates

    return certificates


def _call_solver(est, X, y, patterns, loss, warm_start, callback=None, *, lam: float,
                 weight_mean: float = 1.0) -> ConvexSolution:
    """Solve for an estimator at ``lam`` (resolved, numeric); emit one warning (with the
    estimator's name) if not converged. ``weight_mean`` (the mean sample weight, which the
    program's loss carries) only shapes the warning's advice."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve_convex(X, y, patterns, activation=est._activation, loss=loss, lam=float(lam),
                           backend=est.backend, tol=float(est.tol), max_iter=int(est.max_iter),
                           verbose=est.verbose, warm_start=warm_start, callback=callback)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            continue  # replaced by the single warning below
        warnings.warn(w.message, w.category, stacklevel=6)
    if not sol.converged:
        category = InaccurateSolutionWarning if sol.status == "optimal_inaccurate" else ConvergenceWarning
        certified = sol.gap if sol.gap is not None else (sol.extra or {}).get("certified_gap")
        gap = f"no gap from {sol.solver}" if certified is None else f"gap {certified:.3g}"
        warnings.warn(
            f"{type(est).__name__}: the {sol.solver} solve ended with status {sol.status!r} "
            f"({gap}, {sol.iterations} iterations); the fitted network is not certified "
            f"optimal. {_convergence_advice(est, X, y, patterns, sol, weight_mean=weight_mean)}.",
            category,
            stacklevel=6,  # _call_solver < _solve < _fit_encoded < _fit < fit < caller
        )
    elif sol.status == "optimal" and (sol.extra or {}).get("certified_rel_gap", 0.0) > (
            _certificates().CERTIFIED_WARN_RTOL):
        # a CVXPY solver's "optimal" that cvxnn's certificate cannot confirm (attach_certificate's
        # warning, caught above, said the same without the estimator's name and advice)
        other = "use backend='native' (its status is its certificate)" if (
            loss.smooth and loss.has_conjugate and lam > 0) else "use backend='scs'"
        message = _certificates()._certified_gap_message(sol.solver, sol.extra["certified_rel_gap"], other)
        warnings.warn(f"{type(est).__name__}: {message}.", InaccurateSolutionWarning, stacklevel=6)
    return sol


#: A first-order solve whose step size fell below this has stalled: more iterations do not move
#: it (a column at 1e8 without standardization: the augmented Lagrangian's step reached 1e-19
#: and 100000 iterations returned the point of 10000), so "raise max_iter" is not advised.
STALLED_STEP = 1e-14


#: Clarabel's own default iteration limit: a smaller ``max_iter`` stops it too (the advice says so).
CLARABEL_MAX_ITER = 200


def _convergence_advice(est, X, y, patterns, sol=None, *, weight_mean: float = 1.0) -> str:
    """What to try after an uncertified solve, as a sentence: only advice that applies here.

    ``backend='clarabel'`` is suggested only for programs within the sizes that the native
    solvers hand to Clarabel themselves (:mod:`cvxnn.native.gated_conic`: design entries, and
    columns of semidefinite or second-order cone programs); on larger ones CVXPY's compilation
    or the interior point takes minutes (a 30 x 12200 program with nuclear norms did not finish
    in 5 minutes) or more memory than the machine has (10-class digits). ``standardize=True`` is
    suggested when it was turned off. Sample weights of a mean above WEIGHT_NORMALIZE_ABOVE
    with a numeric ``lam`` (a program whose penalty is negligible against its loss, on which
    Clarabel fails too: 1e29 on diabetes) get the one advice that works: divide the weights
    and ``lam`` by that mean, or use ``lam='auto'``. A CVXPY solve is told to raise ``max_iter``
    only when it stopped at that limit and never to loosen ``tol`` (which CVXPY solvers do not
    take), and ``backend='native'`` only for a program the native solvers take (a smooth loss,
    ``lam > 0``); otherwise the other conic solver."""
    from .native import gated_conic as gc

    step = None if sol is None else sol.step_size
    stalled = step is not None and np.isfinite(step) and 0.0 <= step < STALLED_STEP
    if weight_mean > WEIGHT_NORMALIZE_ABOVE and not isinstance(est.lam, str):
        rescale = (f"ivide sample_weight and lam by the mean weight ({weight_mean:.3g}: the same program at the "
                   "scale the solvers expect) or use lam='auto' (a lam proportional to the weights' sum)")
        return ("D" if stalled else "Raise max_iter, or d") + rescale
    backend = est.backend if isinstance(est.backend, str) else None
    native = backend is not None and backend.lower() == "native"
    # a CVXPY solver ignores tol, and stopped short of its iteration limit (status
    # "optimal_inaccurate") more iterations do not help it (Clarabel on an absolute loss: 9 of
    # 10000 iterations, "optimal_inaccurate")
    limited = native or sol is None or sol.status == "max_iterations"
    tips = ([] if stalled or not limited else ["raise max_iter"]) + (["loosen tol"] if native else [])
    badly_scaled = False
    if not est.standardize:
        tips.append("keep standardize=True (the default: unscaled X or y slow the solvers down)")
        badly_scaled = _badly_scaled(X) or (est._scale_targets and _badly_scaled(np.reshape(y, (len(y), -1)),
                                                                                 targets=True))
    if badly_scaled:
        pass  # Clarabel fails on such data too ("infeasible"): standardizing is the advice
    elif native:
        spec = get_activation(est._activation)
        n, c = X.shape[0], 1 if np.ndim(y) == 1 else int(np.shape(y)[1])
        cols = (2 if spec.constrained else 1) * patterns.n_patterns * int(np.shape(patterns.gates)[0]) * c
        semidefinite = c > 1 and spec.vector_formulation == "nuclear"
        if n * cols <= gc.MAX_ENTRIES and cols <= (gc.MAX_COLUMNS if semidefinite else gc.MAX_SOC_COLUMNS):
            # max_iter passes on to Clarabel, which needs tens of iterations (its default limit: 200)
            tips.append("try backend='clarabel'" if int(est.max_iter) >= CLARABEL_MAX_ITER
                        else f"try backend='clarabel' with max_iter >= {CLARABEL_MAX_ITER} (it limits Clarabel too)")
    elif backend is not None:
        loss = None if sol is None else sol.loss
        lam = None if sol is None else sol.lam
        if (loss is None or (loss.smooth and loss.has_conjugate)) and (lam is None or lam > 0):
            tips.append("try backend='native'")
        else:  # the native solvers refuse the program (hinge, absolute, lam = 0): another conic solver
            tips.append("try backend='scs'" if backend.lower() != "scs" else "try backend='clarabel'")
    text = tips[0] if len(tips) == 1 else ", ".join(tips[:-1]) + " or " + tips[-1]
    return text[0].upper() + text[1:]


# ------------------------------------------------------------------------------------------
# Estimators
# ------------------------------------------------------------------------------------------
#: ``lam="auto"`` means ``fraction * n`` (``n`` the sum of the sample weights; ``fraction`` alone
#: with a mean-reduced loss). The losses are sums over samples, so a fixed ``lam`` regularises
#: less and less as ``n`` grows; a fraction of ``n`` is the same penalty per sample (``lam / n``
#: on the mean loss). Fractions measured by benchmarks/bench_defaults.py (docs/estimators.md,
#: "How the defaults were chosen").
AUTO_LAM_FRACTION = {"classifier": 1e-2, "regressor": 3e-2}
#: Defaults of the gated estimators (and their ``...CV``), measured the same way.
GATED_DEFAULTS = {"lam": "auto", "n_gates": 100, "tol": 1e-4}
#: Defaults of ConvexReLUClassifier (and its ``...CV``): the gated rule for ``lam`` and
#: ``n_gates``, which the C-ReLU working set certifies on breast cancer, wine, iris and 10-class
#: digits (docs/estimators.md); ``tol`` stays ``1e-6`` (the Newton finish reaches it anyway).
RELU_CLASSIFIER_DEFAULTS = {"lam": "auto", "n_gates": 100, "tol": 1e-6}


def _sci(x: float) -> str:
    """``1e-4`` rather than ``0.0001`` in docstrings."""
    return f"{x:.0e}".replace("e-0", "e-")


def _check_lam_param(lam) -> None:
    """``lam`` is a number ``>= 0`` or the string ``"auto"``."""
    if isinstance(lam, str):
        if lam != "auto":
            raise InvalidParameterError(f"lam must be a number >= 0 or 'auto', got {lam!r}.")
        return
    check_lam(lam, name="lam")


def resolve_lam(lam, n_samples: float, *, kind: str, loss: Loss | None = None) -> float:
    """The numeric ``lam`` of a fit: ``lam`` itself, or for ``"auto"``
    ``AUTO_LAM_FRACTION[kind] * n_samples`` (``n_samples`` the sum of the sample weights; the
    fraction alone when ``loss`` has ``reduction="mean"``).

    Raises
    ------
    InvalidParameterError
        ``lam`` is neither a number ``>= 0`` nor ``"auto"``, or ``kind`` is unknown.
    """
    _check_lam_param(lam)
    if not isinstance(lam, str):
        return float(lam)
    if kind not in AUTO_LAM_FRACTION:
        raise InvalidParameterError(f"kind must be one of {sorted(AUTO_LAM_FRACTION)}, got {kind!r}.")
    per_sample = AUTO_LAM_FRACTION[kind]
    if loss is not None and getattr(loss, "reduction", "sum") == "mean":
        return float(per_sample)
    return float(per_sample * n_samples)


def _check_params(est) -> None:
    _check_lam_param(est.lam)
    check_positive_int(est.n_gates, "n_gates")
    check_positive_int(est.max_iter, "max_iter")
    if est.max_iter > MAX_ITER_LIMIT:
        raise InvalidParameterError(
            f"max_iter={est.max_iter} is too large; the largest supported value is {MAX_ITER_LIMIT} (2**31 - 1)."
        )
    for flag in ("standardize", "warm_start"):
        if not isinstance(getattr(est, flag), (bool, np.bool_)):
            raise InvalidParameterError(f"{flag} must be True or False, got {getattr(est, flag)!r}.")
    if isinstance(est.tol, bool) or not isinstance(est.tol, numbers.Real) or not (
        np.isfinite(est.tol) and 0 < est.tol < 1
    ):
        raise InvalidParameterError(f"tol is a relative duality gap and must be in (0, 1), got {est.tol!r}.")
    if not isinstance(est.bias, (bool, np.bool_)):
        raise InvalidParameterError(f"bias must be True or False, got {est.bias!r}.")
    if not isinstance(est.verbose, (bool, np.bool_, numbers.Integral)):
        raise InvalidParameterError(f"verbose must be a bool or an int, got {est.verbose!r}.")
    as_generator(est.random_state)  # validates the type
    _resolve_backend(est.backend)


def _make_patterns(est, X: np.ndarray) -> Patterns:
    """Patterns from ``gates`` (shared between runs) or sampled with ``n_gates``."""
    bias = bool(est.bias)
    if est.gates is None:
        return sample_patterns(X, est.n_gates, seed=est.random_state, bias=bias)
    G = np.array(est.gates, dtype=float, copy=True)
    if G.ndim == 1:
        G = G[:, None]
    d = X.shape[1]
    if bias and G.ndim == 2 and G.shape[0] == d:
        G = np.vstack([G, np.zeros((1, G.shape[1]))])  # gates through the origin
    if G.ndim != 2 or G.shape[0] != d + int(bias):
        shapes = f"({d + 1}, p) or ({d}, p) (gates through the origin)" if bias else \
            f"({d}, p) (or ({d + 1}, p) with bias=True)"
        raise ShapeError(f"gates must have shape {shapes} for X with {d} features; got {np.shape(est.gates)}.")
    return Patterns.from_gates(X, G, bias=bias, unique=True, drop_zero=True)


def _certified_gap(sol: ConvexSolution, X: np.ndarray, y: np.ndarray, lam: float, loss: Loss) -> float | None:
    """Absolute duality gap certifying ``sol`` (an upper bound on ``objective - p*``): the native
    solver's own, else :func:`cvxnn.native.certificates.solution_gap` (None: no certificate)."""
    if sol.gap is not None:
        return float(sol.gap)
    if sol.backend == "native":  # a native solution without a gap has none to give (outside its cones)
        return None
    from .native.certificates import solution_gap

    return solution_gap(sol, X, y, lam, loss)


def _network_tol(sol: ConvexSolution, X: np.ndarray, y: np.ndarray) -> float:
    """Relative block-norm threshold for :meth:`ConvexModel.to_network`.

    Native solutions have exact zeros (threshold 0). For interior-point solutions a block is
    dropped when its norm is below ``NETWORK_TOL`` times the larger of the largest block norm
    and ``||y|| / ||X_a||_F`` (the weight scale at which a block's output is comparable to the
    targets), so that a solution that is zero up to solver accuracy maps to an empty network.
    """
    if sol.backend != "cvxpy":
        return 0.0
    norms = sol.block_norms().ravel()
    top = float(norms.max(initial=0.0))
    if top == 0.0:
        return 0.0
    Xa = sol.patterns.design(X)
    scale = float(np.linalg.norm(y)) / max(float(np.linalg.norm(Xa)), np.finfo(float).tiny)
    return NETWORK_TOL * max(top, scale) / top


def _network_of(sol: ConvexSolution, X: np.ndarray, tol: float):
    """The network of ``sol`` (``X``: the data the solver saw)."""
    if sol.spec.constrained and sol.n_outputs > 1 and sol.training_X is None:
        sol.training_X = X  # the vector ReLU map tests the cones on the training data
    return sol.to_network(tol=tol)


def _network_and_objective(sol: ConvexSolution, X: np.ndarray, y: np.ndarray, lam: float, loss: Loss,
                           tol: float):
    """The network of ``sol`` and its objective on the data the solver saw.

    Vector-output C-ReLU solutions get the training data (``training_X``) so the map can use
    the SVD factors of blocks whose left factors lie in ``+-K_i``. The objective is that of the
    returned network (``L + lam/2 * weight decay``) with the solution's loss (sample weights
    included): what ``objective_`` reports.
    """
    net = _network_of(sol, X, tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = float(net.objective(X, y, lam, sol.loss if sol.loss is not None else loss))
    return net, obj


def _n_iter(sol: ConvexSolution) -> int | None:
    """``n_iter_`` of a fit: the solver's iterations, at least 1 (a certified start's check)."""
    return None if sol.iterations is None else max(1, int(sol.iterations))


def _rows(a, idx: np.ndarray):
    """Rows ``idx`` of an array-like, by position (``.iloc`` for pandas objects, which keeps a
    DataFrame's column names)."""
    return a.iloc[idx] if hasattr(a, "iloc") else np.asarray(a)[idx]


def _regression_targets(y, n_samples: int) -> np.ndarray:
    """Regression targets ``(n,)`` or ``(n, c)``, float64; a column ``(n, 1)`` is flattened with
    a ``DataConversionWarning`` (as ``MLPRegressor`` does)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected; it is flattened to "
                      "shape (n_samples,).", DataConversionWarning, stacklevel=5)
        y = y[:, 0]
    y = check_y(y, n_samples, allow_matrix=True)
    if y.ndim == 2 and y.shape[1] == 0:
        raise ShapeError("y has no outputs (shape (n_samples, 0)).")
    return y


def _solver_targets(std, y: np.ndarray) -> np.ndarray:
    """``y`` as the solver sees it: standardized when the Standardizer was fitted on targets."""
    if std is None or std.y_mean_ is None:
        return y
    return std.transform_y(y)


# ------------------------------------------------------------------------------------------
# Sample weights: exact weighted losses (weights multiply the per-sample loss terms).
# ------------------------------------------------------------------------------------------
#: Largest ``max_iter`` accepted (CVXPY solvers take a C int).
MAX_ITER_LIMIT = 2**31 - 1


@dataclass(frozen=True, eq=False)
class WeightedLoss(Loss):
    """``sum_j w_j l(z_j, y_j)``: a loss with per-sample weights.

    The weights multiply the per-sample loss terms, so integer weights give exactly the
    objective of the data with rows repeated. ``reduction="mean"`` of the base loss divides
    by ``sum_j w_j`` (the weighted mean). It provides what the solvers ask of a loss: the
    CVXPY expression (any of the six losses), and for smooth bases the value, gradient,
    Hessian parts, conjugate ``sum_j w_j l_j*(s_j / w_j)`` and Bregman divergence that the
    native solvers and certificates use. With a base loss that gives its per-sample terms
    (``has_rows``: squared, logistic, Huber, cross-entropy) those sums are weighted dot products,
    for any weights; otherwise they are evaluated per group of equal weights with the base
    loss's summed methods, which needs few distinct weights (``MAX_WEIGHT_GROUPS``).

    The estimators weight the squared loss differently, and exactly: the rows of ``[X, 1]``
    and ``y`` are scaled by ``sqrt(w_j)``, which keeps every activation pattern.

    A zero weight removes the sample's loss term only. Passed to :func:`cvxnn.solve` with
    C-ReLU, the sample's row still has its cone constraints (and its entries in the
    patterns), so the program differs from the one without the row (logistic, breast cancer
    rows: 10.48 against 9.80). To remove samples, drop their rows, as the estimators do
    before they build the patterns.

    Parameters
    ----------
    base : Loss
        The unweighted loss (``squared``, ``logistic``, ``hinge``, ``huber``, ``absolute`` or
        ``cross_entropy``).
    weights : ndarray of shape (n,)
        Non-negative sample weights.
    reduction : {"sum", "mean"}
        Inherited from :class:`~cvxnn.losses.Loss`; taken from ``base`` (the field given here
        is replaced by the base loss's).
    """

    base: Loss = field(default=None)  # type: ignore[assignment]
    weights: np.ndarray = field(default=None)  # type: ignore[assignment]

    _KINDS = ("squared", "logistic", "hinge", "huber", "absolute", "cross_entropy")

    def __post_init__(self) -> None:
        if not isinstance(self.base, Loss) or self.base.name not in self._KINDS:
            raise InvalidParameterError(
                f"sample weights support the losses {self._KINDS}, got {getattr(self.base, 'name', self.base)!r}."
            )
        w = np.asarray(self.weights, dtype=float)
        if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InvalidParameterError("weights must be a 1-D array of finite non-negative numbers.")
        _check_weight_scale(w, "weights")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "reduction", self.base.reduction)
        values, inverse = np.unique(w, return_inverse=True)
        groups = [(float(v), np.flatnonzero(inverse == k)) for k, v in enumerate(values)]
        object.__setattr__(self, "_groups", groups)

    # capability flags and constants of the base loss
    name = property(lambda self: self.base.name)  # type: ignore[assignment]
    smooth = property(lambda self: self.base.smooth)  # type: ignore[assignment]
    has_hessian = property(lambda self: self.base.has_hessian)  # type: ignore[assignment]
    has_conjugate = property(lambda self: self.base.has_conjugate)  # type: ignore[assignment]
    separable = property(lambda self: self.base.separable)  # type: ignore[assignment]
    classification = property(lambda self: self.base.classification)  # type: ignore[assignment]
    supports_vector = property(lambda self: self.base.supports_vector)  # type: ignore[assignment]
    exponential_cones = property(lambda self: self.base.exponential_cones)  # type: ignore[assignment]
    # a zero weight leaves its sample's fit free
    strictly_convex_fit = property(  # type: ignore[assignment]
        lambda self: bool(self.base.strictly_convex_fit and np.all(self.weights > 0)))

    @property
    def lipschitz(self) -> float | None:  # type: ignore[override]
        lip = self.base.lipschitz
        return None if lip is None else float(lip) * float(self.weights.max(initial=0.0))

    @property
    def n_groups(self) -> int:
        """Number of distinct weights."""
        return len(self._groups)

    def scale(self, n: int) -> float:
        return 1.0 / float(np.sum(self.weights)) if self.reduction == "mean" else 1.0

    def _check_rows(self, y) -> None:
        if self.weights.shape[0] != y.shape[0]:
            raise ShapeError(f"{self.weights.shape[0]} sample weights for {y.shape[0]} samples.")

    def _wcol(self, a: np.ndarray) -> np.ndarray:
        """The weights shaped to multiply ``a`` row by row."""
        return self.weights[:, None] if a.ndim == 2 else self.weights

    def _cvxpy_sum(self, z, y):
        import cvxpy as cp

        self._check_rows(y)
        w = self.weights
        if y.ndim == 2 and self.name != "cross_entropy":
            w = np.repeat(w[:, None], y.shape[1], axis=1)
        kind = self.name
        if kind == "squared":
            return 0.5 * cp.sum(cp.multiply(w, cp.square(z - y)))
        if kind == "logistic":
            return cp.sum(cp.multiply(w, cp.logistic(-cp.multiply(y, z))))
        if kind == "hinge":
            return cp.sum(cp.multiply(w, cp.pos(1 - cp.multiply(y, z))))
        if kind == "huber":
            return 0.5 * cp.sum(cp.multiply(w, cp.huber(z - y, self.base.delta)))
        if kind == "absolute":
            return cp.sum(cp.multiply(w, cp.abs(z - y)))
        return cp.sum(cp.multiply(w, cp.log_sum_exp(z, axis=1) - cp.sum(cp.multiply(y, z), axis=1)))

    @property
    def needs_groups(self) -> bool:
        """Whether the sums go group by group (a base loss without per-sample terms)."""
        return not self.base.has_rows

    # per-sample terms weighted (has_rows), else per group of equal weights
    def _value_sum(self, z, y):
        self._check_rows(y)
        if not self.needs_groups:
            w = self.weights
            pos = w > 0
            return float(np.dot(w[pos], self.base._value_rows(z[pos], y[pos])))
        return float(sum(w * self.base._value_sum(z[idx], y[idx]) for w, idx in self._groups if w > 0))

    def _grad_sum(self, z, y):
        return self._wcol(z) * self.base._grad_sum(z, y)

    def _hessian_sum(self, z, y):
        D, V = self.base._hessian_sum(z, y)
        return self._wcol(D) * D, (None if V is None else np.sqrt(self._wcol(V)) * V)

    def _conjugate_sum(self, s, y):
        if not self.needs_groups:
            w = self.weights
            pos = w > 0
            if np.any(np.abs(s[~pos]) > DOMAIN_TOL):  # a zero-weight sample takes no dual mass
                return float("inf")
            ws = self._wcol(s)[pos]
            return float(np.dot(w[pos], self.base._conjugate_rows(s[pos] / ws, y[pos])))
        total = 0.0
        for w, idx in self._groups:
            if w == 0:
                if np.any(np.abs(s[idx]) > DOMAIN_TOL):
                    return float("inf")
                continue
            total += w * self.base._conjugate_sum(s[idx] / w, y[idx])
        return float(total)

    def _bregman_sum(self, a, b, gb, y):
        if not self.needs_groups:
            w = self.weights
            pos = w > 0
            return float(np.dot(w[pos], self.base._bregman_rows(a[pos], b[pos], gb[pos] / self._wcol(gb)[pos],
                                                                y[pos])))
        return float(sum(w * self.base._bregman_sum(a[idx], b[idx], gb[idx] / w, y[idx])
                         for w, idx in self._groups if w > 0))

    def grad_at_zero(self, y) -> np.ndarray:
        """``c w_j grad l(0, y_j)`` row by row (``c = 1``, or ``1 / sum_j w_j`` for
        ``reduction="mean"``): the weighted loss ``c sum_j w_j l(z_j, y_j)`` is differentiable at
        ``z = 0`` where each term of positive weight is, with the weights times the base
        loss's summed gradient; a zero-weight term is identically 0 (gradient 0, whatever its
        target: an absolute loss target 0 there keeps the gradient).

        Raises
        ------
        InvalidParameterError
            The base loss is not differentiable at ``z = 0`` for the target of a sample of
            positive weight (an absolute loss target 0).
        """
        y = np.asarray(y, dtype=float)
        self._check_rows(y)
        pos = self.weights > 0
        g = np.zeros(y.shape, dtype=float)
        if np.any(pos):
            summed = dataclasses.replace(self.base, reduction="sum")  # the summed loss's gradient
            g[pos] = summed.grad_at_zero(y[pos])
        return self.scale(y.shape[0]) * self._wcol(g) * g

    def check_targets(self, y):
        return self.base.check_targets(y)


#: Distinct sample weights up to which the native solvers take a weighted loss whose base has
#: no per-sample terms (its sums are evaluated per group of equal weights); the losses of the
#: native solvers all have them, so this limit is for user-defined losses.
MAX_WEIGHT_GROUPS = 64

#: Largest sample weight accepted. The native solvers run some products in float32 (largest
#: number 3.4e38) and square gradients in Gram matrices and Hessians, so weights near 1e38
#: overflowed: a bare ``LinAlgError`` or, worse, an ``"optimal"`` status on a model fitted to
#: infinities. A common factor of all weights only rescales the loss against ``lam``, so divide
#: the weights (and a fixed ``lam``) by it instead.
MAX_SAMPLE_WEIGHT = 1e30


def _check_native_weights(backend, wloss: WeightedLoss) -> None:
    """Refuse what the native solvers cannot do with a weighted loss, naming the way out."""
    if _resolve_backend(backend) != "native":
        return
    if wloss.needs_groups and wloss.n_groups > MAX_WEIGHT_GROUPS:
        raise InvalidParameterError(
            f"sample_weight has {wloss.n_groups} distinct values; with the {wloss.name} loss the native "
            f"solvers take at most {MAX_WEIGHT_GROUPS} (class weights, integer counts). Round the "
            "weights, or use backend='clarabel'."
        )


#: Fields of a solution of the row-scaled program that belong to its scaled rows.
_SCALED_FIELDS = ("multipliers", "cone_duals", "training_X")


def _scaled_problem_duals(sol: ConvexSolution, r: np.ndarray) -> dict:
    """Fields of a solution of the program with rows scaled by ``r = sqrt(w)``, moved back to
    the unscaled data. The cone rows were scaled by ``r``, so the multipliers of the unscaled
    constraints are ``r_j rho_j`` (the Lagrangian term ``rho^T (r o A v)`` is ``(r o rho)^T A v``);
    the scaled design is dropped. Both leave ``extra`` too, since a solution fills a field left
    None from ``extra``."""

    def unscale(a):
        a = np.asarray(a, dtype=float)
        return a * r.reshape((-1,) + (1,) * (a.ndim - 1))

    out: dict[str, Any] = {"training_X": None}
    if sol.multipliers is not None:
        out["multipliers"] = unscale(sol.multipliers)
    if sol.cone_duals is not None:
        out["cone_duals"] = tuple(unscale(d) for d in sol.cone_duals)
    out["extra"] = {k: v for k, v in (sol.extra or {}).items() if k not in _SCALED_FIELDS}
    return out


#: Squared-loss fits on the native backend with ``lam="auto"`` whose mean sample weight exceeds
#: this solve the program divided by that mean: the rows scaled by ``sqrt(w)`` otherwise reach ``1e8`` and more, where
#: the C-ReLU working set's float32 products overflowed (from weights of ``1e17``) and its steps
#: failed (``1e29``: "max_iterations", predictions off by 0.14). Ordinary weights are unchanged.
WEIGHT_NORMALIZE_ABOVE = 1e4
#: ``extra`` entries in the units of the objective (multiplied back with the objective).
#: (``program_penalty`` is not one: it is the penalty ``R`` of the blocks, which dividing the
#: program by ``s`` leaves unchanged.)
_OBJECTIVE_EXTRA = ("dual_value", "certified_gap", "gap_at_infeasible_point")


def _objective_units(sol: ConvexSolution, fields: dict, s: float, lam: float) -> dict:
    """Fields of a solution of the program divided by ``s`` (weights and ``lam``), in the units of
    the undivided program: objective values, gaps and multipliers times ``s``; ``lam`` itself.
    The check state of the divided program (a warm start's shortcut) is dropped."""
    out = dict(fields)
    for name in ("objective_value", "dual_value", "gap"):
        v = getattr(sol, name)
        if v is not None:
            out[name] = float(v) * s
    for name in ("multipliers",):
        v = out.get(name, getattr(sol, name))
        if v is not None:
            out[name] = np.asarray(v, dtype=float) * s
    if out.get("cone_duals", sol.cone_duals) is not None:
        out["cone_duals"] = tuple(np.asarray(d, dtype=float) * s for d in out.get("cone_duals", sol.cone_duals))
    extra = dict(out.get("extra", sol.extra) or {})
    for key in _OBJECTIVE_EXTRA:
        if isinstance(extra.get(key), (int, float, np.floating)) and not isinstance(extra.get(key), bool):
            extra[key] = float(extra[key]) * s
    extra.pop("multipliers", None)
    extra.pop("cone_duals", None)
    extra["weight_scale"] = s
    out["extra"] = extra
    out["lam"] = float(lam)
    out["check_state"] = None
    return out


def _check_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    """``None`` or a float array of ``n`` finite non-negative weights, not all zero."""
    if sample_weight is None:
        return None
    if _issparse(sample_weight):
        raise InputError("sample_weight must be a dense 1-D array, got a sparse matrix.")
    try:
        w = np.asarray(sample_weight, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"sample_weight must be numbers: {exc}") from None
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ShapeError(f"sample_weight has shape {w.shape}; expected ({n},), one weight per sample.")
    if not np.all(np.isfinite(w)):
        raise NonFiniteError("sample_weight contains NaN or infinity.")
    if np.any(w < 0):
        raise InvalidParameterError("sample_weight must be non-negative.")
    _check_weight_scale(w, "sample_weight")
    if not w.sum() > 0:
        raise InvalidParameterError("sample_weight is zero for every sample; nothing to fit.")
    return w


def _check_weight_scale(w: np.ndarray, name: str) -> None:
    """Reject weights above :data:`MAX_SAMPLE_WEIGHT` (they overflow the solvers)."""
    top = float(w.max(initial=0.0))
    if top > MAX_SAMPLE_WEIGHT:
        raise InvalidParameterError(
            f"{name} reaches {top:.3g}, above {MAX_SAMPLE_WEIGHT:g}: the solvers' squared and float32 "
            f"quantities overflow at this scale. Divide all weights by a common factor (e.g. their mean, "
            f"{float(w.mean()):.3g}) and a numeric lam by the same factor (lam='auto' follows the weights): "
            f"the fitted network is unchanged.")


def _issparse(X) -> bool:
    try:
        from scipy.sparse import issparse
    except ImportError:  # pragma: no cover
        return False
    return bool(issparse(X))


def _reject_sparse(X, name: str = "X") -> None:
    if _issparse(X):
        raise InvalidParameterError(
            f"sparse {name} is not supported: the solvers and networks work on dense arrays "
            f"(the matrix has {X.shape[0]} x {X.shape[1]} entries); convert it with "
            f"{name}.toarray() if it fits in memory."
        )


def _class_weights(class_weight, classes: np.ndarray, inverse: np.ndarray,
                   sample_weight: np.ndarray | None = None) -> np.ndarray | None:
    """Per-sample weights from ``class_weight`` (None, ``"balanced"`` or ``{label: weight}``).

    ``"balanced"`` gives class ``k`` the weight ``W / (K W_k)``, with ``W_k`` the total sample
    weight of class ``k`` and ``W`` of all (scikit-learn's ``compute_class_weight`` with
    ``sample_weight``): a zero weight removes a sample from the counts as well, and integer
    weights count as repeated rows."""
    if class_weight is None:
        return None
    counts = np.bincount(inverse, weights=sample_weight, minlength=classes.size).astype(float)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise InvalidParameterError(
                f"class_weight must be None, 'balanced' or a dict {{label: weight}}, got {class_weight!r}."
            )
        # a class without weight gets none (its samples all weigh 0 already)
        per_class = np.divide(counts.sum(), classes.size * counts, out=np.zeros(classes.size), where=counts > 0)
    elif isinstance(class_weight, dict):
        per_class = np.ones(classes.size)
        known = {c.item() if hasattr(c, "item") else c: k for k, c in enumerate(classes)}
        absent, weighted = [], set()
        for label, weight in class_weight.items():
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not (
                np.isfinite(weight) and weight >= 0
            ):
                raise InvalidParameterError(f"class_weight[{label!r}] must be a finite number >= 0, got {weight!r}.")
            key = label.item() if hasattr(label, "item") else label
            if key in known:
                per_class[known[key]] = float(weight)
                weighted.add(known[key])
            else:
                absent.append(label)
        unweighted = [c for k, c in enumerate(classes.tolist()) if k not in weighted]
        if absent and unweighted:
            # scikit-learn's rule (compute_class_weight): labels that this y lacks are ignored when
            # the dict weighs every class of y (a cross-validation fold may lack a rare class); a
            # dict that does neither is a misspelt or mistyped label
            raise LabelError(
                f"class_weight names the label(s) {absent!r:.120}, which are not in y, and does not weigh its "
                f"class(es) {unweighted!r:.120}: check the labels' spelling and type (a dict that weighs every "
                "class of y may name others, e.g. the classes that a cross-validation fold lacks).")
    else:
        raise InvalidParameterError(
            f"class_weight must be None, 'balanced' or a dict {{label: weight}}, got {class_weight!r}."
        )
    return per_class[inverse]


# ------------------------------------------------------------------------------------------
# Data warnings
# ------------------------------------------------------------------------------------------
#: A pattern set is reported as collapsed when fewer than this fraction of the gates (or of
#: the patterns the data can have) give distinct patterns.
COLLAPSE_FRACTION = 0.25
#: Columns whose standard deviations differ by more than this factor are badly scaled.
SCALE_RATIO = 1e3


def _warn_collapse(est, patterns: Patterns, X: np.ndarray) -> None:
    """A DataWarning when the sampled gates give few distinct patterns: fewer than
    COLLAPSE_FRACTION of the gates, or of the patterns that the data can have (the bound of
    :func:`~cvxnn.patterns.max_pattern_count` on its distinct rows and the rank of their design:
    data with few distinct rows, binary or categorical features, admit few patterns, all of
    which the gates may find)."""
    if est.gates is not None:
        return
    from .patterns import max_pattern_count

    d_a = patterns.design_dim
    n_samples = X.shape[0]
    possible = min(int(est.n_gates), max_pattern_count(n_samples, d_a))
    if patterns.n_patterns >= COLLAPSE_FRACTION * possible:
        return
    # only now (a rare case) the exact bound: distinct rows, and the rank of their design
    rows = np.unique(X, axis=0)
    design = np.hstack([rows, np.ones((rows.shape[0], 1))]) if patterns.bias else rows
    rank = int(np.linalg.matrix_rank(design)) if design.size else 0
    possible = min(int(est.n_gates), max_pattern_count(rows.shape[0], rank))
    if patterns.n_patterns >= COLLAPSE_FRACTION * possible:
        return
    if not est.standardize:
        advice = "Badly scaled or offset columns cause this: use standardize=True."
    elif not est.bias:
        advice = "Gates through the origin cause this on offset columns: use bias=True or more gates."
    else:
        advice = "Use more gates (n_gates)."
    warnings.warn(
        f"{type(est).__name__}: the {est.n_gates} sampled gates give only "
        f"{patterns.n_patterns} distinct activation patterns on {n_samples} samples; the "
        f"network can use at most {patterns.n_patterns} neurons. {advice}",
        DataWarning,
        stacklevel=6,  # _warn_* < _prepare < _fit_encoded < _fit < fit < caller
    )


def _badly_scaled(A: np.ndarray, targets: bool = False) -> bool:
    """Whether the columns of ``A`` are what the scaling warnings call badly scaled."""
    A = np.asarray(A, dtype=float)
    std = A.std(axis=0)
    live = std > 0
    if not live.any():
        return False
    offset = float(np.max(np.abs(A.mean(axis=0))[live] / std[live]))
    if targets:
        return bool(std[live].max() > SCALE_RATIO or std[live].min() < 1.0 / SCALE_RATIO or offset > SCALE_RATIO)
    return bool(std[live].max() / std[live].min() > SCALE_RATIO or offset > SCALE_RATIO)


def _warn_scaling(est, X: np.ndarray) -> None:
    std = X.std(axis=0)
    mean = np.abs(X.mean(axis=0))
    live = std > 0
    if not live.any():
        return
    ratio = float(std[live].max() / std[live].min())
    offset = float(np.max(mean[live] / std[live]))
    if ratio > SCALE_RATIO or offset > SCALE_RATIO:
        warnings.warn(
            f"{type(est).__name__}: badly scaled columns (standard deviations differ by a factor "
            f"{ratio:.3g}, largest mean / std {offset:.3g}) with standardize=False; gates through "
            "such data give few distinct patterns and solvers slow down. Use standardize=True.",
            DataWarning,
            stacklevel=6,  # _warn_* < _prepare < _fit_encoded < _fit < fit < caller
        )


def _warn_target_scaling(est, y: np.ndarray) -> None:
    """Regressors with standardize=False: targets far from unit scale (or offset far from zero
    relative to their spread) make ``lam`` mean something else than on standardized data (at
    ``y * 1e-9`` the default ``lam`` gives the zero model; at ``y + 1e6`` a certified optimum had
    a training R^2 of -2e8) and slow the solvers down."""
    Y = np.asarray(y, dtype=float).reshape(y.shape[0], -1)
    std = Y.std(axis=0)
    mean = np.abs(Y.mean(axis=0))
    live = std > 0
    if not live.any():
        return
    spread = (float(std[live].min()), float(std[live].max()))
    offset = float(np.max(mean[live] / std[live]))
    if spread[1] > SCALE_RATIO or spread[0] < 1.0 / SCALE_RATIO or offset > SCALE_RATIO:
        warnings.warn(
            f"{type(est).__name__}: badly scaled targets (standard deviation {spread[0]:.3g}"
            f"{'' if spread[0] == spread[1] else f' to {spread[1]:.3g}'}, largest |mean| / std {offset:.3g}) "
            "with standardize=False; lam weighs the loss in the units of y, so the fit can be the zero "
            "model or badly underfit, and solvers slow down. Use standardize=True.",
            DataWarning,
            stacklevel=6,  # _warn_* < _prepare < _fit_encoded < _fit < fit < caller
        )


_PARAM_NAMES_FITTED = ("_gate_params", "solution_", "patterns_", "network_", "objective_", "convex_objective_", "gap_",
                       "status_",
                       "n_active_neurons_", "n_iter_", "fit_time_", "n_features_in_",
                       "feature_names_in_", "classes_", "standardizer_", "best_lam_", "path_", "lam_")


class _ConvexNetworkBase(_Base):
    """Shared implementation of the four estimators (not public)."""

    _activation = "relu"
    #: Regressors standardize the targets too (``standardize=True``).
    _scale_targets = False
    #: Key of ``AUTO_LAM_FRACTION`` for ``lam="auto"``.
    _lam_kind = "classifier"

    def __init__(
        self,
        lam: float = 0.1,
        n_gates: int = 32,
        gates=None,
        backend: str = "native",
        loss="squared",
        bias: bool = True,
        tol: float = 1e-6,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
    ) -> None:
        self.lam = lam
        self.n_gates = n_gates
        self.gates = gates
        self.backend = backend
        self.loss = loss
        self.bias = bias
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose
        self.standardize = standardize
        self.warm_start = warm_start

    def set_params(self, **params):
        """Set hyper-parameters (scikit-learn semantics); an unknown name raises
        :class:`~cvxnn.errors.InvalidParameterError` (a ``ValueError``, as scikit-learn's)."""
        try:
            return super().set_params(**params)
        except CvxnnError:
            raise
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None

    # ---------------------------------------------------------------- validation
    def _validate_X(self, X, *, reset: bool, y=_NO_Y, **kw):
        """Validate with scikit-learn's ``validate_data`` when available (sets
        ``n_features_in_`` / ``feature_names_in_``), else with :func:`cvxnn._validation.check_X`."""
        _reject_sparse(X)
        if _HAVE_SKLEARN:
            try:
                from sklearn.utils.validation import validate_data
            except ImportError:  # scikit-learn < 1.6
                def validate_data(est, *args, **kwargs):
                    return est._validate_data(*args, **kwargs)
            try:
                if y is _NO_Y:
                    Xv = validate_data(self, X, reset=reset, dtype=np.float64, **kw)
                    return check_X(Xv)
                Xv, yv = validate_data(self, X, y, reset=reset, dtype=np.float64, **kw)
            except CvxnnError:
                raise
            except TypeError as exc:  # e.g. objects that are not numbers
                raise InputTypeError(str(exc)) from exc
            except ValueError as exc:  # scikit-learn's checks, typed as an input error
                raise InputError(str(exc)) from exc
            return check_X(Xv), yv
        Xv = check_X(X)
        if reset:
            self.n_features_in_ = Xv.shape[1]
        elif Xv.shape[1] != self.n_features_in_:
            raise ShapeError(
                f"X has {Xv.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        if y is _NO_Y:
            return Xv
        if y is None:
            raise InvalidParameterError(f"{type(self).__name__} requires y to be passed, but y is None.")
        return Xv, np.asarray(y)

    def _validate_fit_data(self, X, y, **kw):
        """Validate ``(X, y)`` for ``fit`` without touching ``self``.

        Returns ``X``, ``y`` and the input attributes (``n_features_in_``, and
        ``feature_names_in_`` when ``X`` has column names) to set with the fitted state.
        """
        scratch = type(self)(**self.get_params(deep=False))
        Xv, yv = scratch._validate_X(X, reset=True, y=y, **kw)
        if Xv.shape[0] < 2:
            raise ShapeError(f"{type(self).__name__} needs at least 2 samples, got n_samples={Xv.shape[0]}.")
        attrs = {k: getattr(scratch, k) for k in ("n_features_in_", "feature_names_in_")
                 if hasattr(scratch, k)}
        return Xv, yv, attrs

    def _check_fitted(self) -> None:
        if not hasattr(self, "solution_"):
            raise EstimatorNotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit(X, y) first."
            )

    def _gate_key(self) -> tuple:
        """The parameters that determine the gates: a warm start reuses the previous fit's gates
        only while they are unchanged."""
        rs = self.random_state
        return (self.n_gates, rs if rs is None or isinstance(rs, numbers.Integral) else id(rs),
                bool(self.bias), None if self.gates is None else id(self.gates))

    def _commit(self, fitted: dict) -> None:
        """Replace the fitted state by ``fitted`` in one step (stale attributes removed)."""
        for name in _PARAM_NAMES_FITTED:
            if name not in fitted and name in self.__dict__:
                del self.__dict__[name]
        self.__dict__.update(fitted)

    # ----------------------------------------------------------------- fitting
    def _prepare(self, X: np.ndarray, sample_weight: np.ndarray | None, *, previous=None, y=None):
        """Standardizer, transformed data and patterns for a fit (no state is changed).

        ``previous`` is the warm-start solution: its gates are reused on the new data when they
        cannot be drawn again (``random_state`` None or a generator); with an integer seed the
        gates are drawn again, so that the program is the cold fit's. ``y``
        (regressors): the targets, standardized too (centred with ``bias=True``, scaled); read
        them as the solver sees them with :func:`_solver_targets`.
        """
        std = None
        if self.standardize:
            from .preprocessing import Standardizer

            fit_y = self._scale_targets and y is not None
            std = Standardizer(center=bool(self.bias), scale=True, center_y=fit_y and bool(self.bias),
                               scale_y=fit_y).fit(X, y if fit_y else None, sample_weight=sample_weight)
            Xs = std.transform(X)
        else:
            _warn_scaling(self, X)
            if self._scale_targets and y is not None:
                _warn_target_scaling(self, y)
            Xs = X
        reproducible = isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool)
        if previous is not None and previous.patterns.bias == bool(self.bias) and \
                previous.patterns.n_features == Xs.shape[1] and self.gates is None and not reproducible:
            # gates that cannot be drawn again (random_state None or a generator): the previous
            # fit's, those with distinct patterns on its data
            patterns = Patterns.from_gates(Xs, previous.patterns.gates, bias=bool(self.bias),
                                           unique=True, drop_zero=True)
        else:
            # with a seed the gates are drawn again, all n_gates of them: on other data the program
            # is the cold fit's (the previous fit kept only the gates whose patterns were distinct
            # on its data: 18 of 40 on 6 rows, then 26 % above the optimum on all 200); the warm
            # start is used where its patterns are the same
            patterns = _make_patterns(self, Xs)
            _warn_collapse(self, patterns, Xs)
        return std, Xs, patterns

    def _solve(self, Xs, y_enc, loss, sample_weight, patterns, warm_start, callback, lam: float):
        """Solve at ``lam`` (weighted when ``sample_weight`` is given); returns the solution on
        ``patterns``, its certified gap and the network threshold."""
        if sample_weight is None:
            sol = _call_solver(self, Xs, y_enc, patterns, loss, warm_start, callback, lam=lam)
            return sol, _certified_gap(sol, Xs, y_enc, lam, loss), _network_tol(sol, Xs, y_enc)
        w = sample_weight
        if loss.name == "squared" and type(loss).__name__ == "SquaredLoss":
            # exact: rows of [X, 1] and y scaled by sqrt(w) keep every pattern (positive scaling)
            if loss.reduction == "mean":
                w = w * (w.size / w.sum())  # the solver divides by n: sum w l / sum w
            # large weights with lam="auto" (lam follows their sum): the program divided by their
            # mean (weights w / s, lam / s) has the same minimizers and the scale of unit weights;
            # its objective values are multiplied back by s below. Native solvers only (Clarabel's
            # absolute tolerances would act on another objective); not for a numeric lam, which
            # can make the divided objective tiny (30 % of rows at 1e6, lam=1e-3: uncertified)
            native = _resolve_backend(self.backend) == "native"
            s = (float(w.mean()) if native and isinstance(self.lam, str) and float(w.mean()) > WEIGHT_NORMALIZE_ABOVE
                 else 1.0)
            r = np.sqrt(w / s)
            Xw = patterns.design(Xs) * r[:, None]
            yw = y_enc * (r[:, None] if y_enc.ndim == 2 else r)
            from .patterns import _fingerprint

            pw = Patterns(gates=np.array(patterns.gates), mask=np.array(patterns.mask), bias=False,
                          fingerprint=_fingerprint(Xw))
            warm_w = None
            if warm_start is not None:
                warm_w = dataclasses.replace(warm_start, patterns=pw)
                if s != 1.0:  # its duals and check state are in the units of the undivided program
                    warm_w = _rebind_warm_start(warm_w, pw)
            sol_w = _call_solver(self, Xw, yw, pw, loss, warm_w, callback, lam=lam / s, weight_mean=float(w.mean()))
            gap = _certified_gap(sol_w, Xw, yw, lam / s, loss)
            ntol = _network_tol(sol_w, Xw, yw)
            fields = _scaled_problem_duals(sol_w, r)
            if s != 1.0:
                fields = _objective_units(sol_w, fields, s, lam)
                gap = None if gap is None else gap * s
            sol = dataclasses.replace(sol_w, patterns=patterns, loss=WeightedLoss(base=loss, weights=sample_weight),
                                      **fields)
            return sol, gap, ntol
        wloss = WeightedLoss(base=loss, weights=w)
        _check_native_weights(self.backend, wloss)
        # (a mean-reduced loss is the same program for any scale of the weights)
        sol = _call_solver(self, Xs, y_enc, patterns, wloss, warm_start, callback, lam=lam,
                           weight_mean=1.0 if loss.reduction == "mean" else float(np.mean(w)))
        return sol, _certified_gap(sol, Xs, y_enc, lam, wloss), _network_tol(sol, Xs, y_enc)

    def _fit_encoded(self, X: np.ndarray, y_enc: np.ndarray, loss: Loss, *, sample_weight=None,
                     warm_start=None, callback=None, extra: dict | None = None,
                     prepared: dict | None = None, network_objective: bool = True):
        """Standardize, sample patterns, solve, map to a network; set the fitted attributes
        together, only after the solve succeeded (``extra``: validated input attributes).

        ``network_objective=False`` skips the objective of the network (``objective_`` is NaN):
        the fold fits of a CV path, scored by their predictions only, do not need it.

        ``prepared`` (a dict, for fits of one path on the same ``X``, ``y_enc`` and weights):
        the standardizer, the standardized data and the patterns are stored in it by the first
        fit and reused by the next ones, which would compute the same (the patterns of a warm
        start are its own gates re-applied to the same data).
        """
        _check_params(self)
        w = sample_weight
        if w is not None and np.any(w == 0):  # zero weight = sample removed (exactly)
            keep = w > 0
            X, y_enc, w = X[keep], y_enc[keep], w[keep]
        if w is not None and np.all(w == 1.0):
            w = None
        if warm_start is None and self.warm_start and hasattr(self, "solution_"):
            if getattr(self, "_gate_params", None) in (None, self._gate_key()):
                warm_start = self.solution_
            else:  # n_gates, random_state, gates or bias changed: new gates, a cold start
                logger.info("%s: the gate parameters changed since the last fit; warm_start reuses "
                            "nothing (new gates are drawn)", type(self).__name__)
        if prepared is not None and "patterns" in prepared:
            std, Xs, patterns = prepared["std"], prepared["Xs"], prepared["patterns"]
        else:
            std, Xs, patterns = self._prepare(X, w, previous=warm_start, y=y_enc)
            if prepared is not None:
                prepared.update(std=std, Xs=Xs, patterns=patterns)
        y_enc = _solver_targets(std, y_enc)
        if warm_start is not None and (
            warm_start.patterns.n_patterns != patterns.n_patterns
            or not np.array_equal(warm_start.patterns.gates, patterns.gates)
            or warm_start.n_outputs != (1 if y_enc.ndim == 1 else y_enc.shape[1])
        ):
            warm_start = None
        if warm_start is not None and not np.array_equal(warm_start.patterns.mask, patterns.mask):
            warm_start = _rebind_warm_start(warm_start, patterns)
        lam = resolve_lam(self.lam, X.shape[0] if w is None else float(np.sum(w)), kind=self._lam_kind,
                          loss=loss)
        t0 = time.perf_counter()
        sol, gap, ntol = self._solve(Xs, y_enc, loss, w, patterns, warm_start, callback, lam)
        fit_time = time.perf_counter() - t0
        if network_objective:
            net, objective = _network_and_objective(sol, Xs, y_enc, lam, loss, ntol)
        else:
            net, objective = _network_of(sol, Xs, ntol), float("nan")
        raw_net = std.network_to_raw(net) if std is not None else net
        fitted = dict(extra or {})
        fitted.update(
            _gate_params=self._gate_key(),
            lam_=lam,
            solution_=sol,
            patterns_=patterns,
            network_=raw_net,
            standardizer_=std,
            objective_=objective,
            network_tol_=float(ntol),
            convex_objective_=float(sol.objective_value),
            gap_=gap,
            status_=sol.status,
            n_active_neurons_=int(net.n_neurons),
            n_iter_=_n_iter(sol),
            fit_time_=fit_time,
        )
        self._commit(fitted)
        logger.info("%s: status %s, objective %.6g, %d neurons, %.3fs", type(self).__name__,
                    sol.status, self.objective_, self.n_active_neurons_, self.fit_time_)
        return self

    def _raw_output(self, X) -> np.ndarray:
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return self.network_.predict(X)

    def _transform(self, X) -> np.ndarray:
        """``X`` as the solver saw it (standardized when ``standardize=True``)."""
        std = getattr(self, "standardizer_", None)
        return X if std is None else std.transform(X)

    # --------------------------------------------------------- path with validation
    def fit_path(self, X, y, *, lams=None, n_lams: int = 20, lam_min_ratio: float = 1e-3,
                 validation_data=None, validation_fraction: float = 0.2, patience: int = 3,
                 callback: Callable[[dict], Any] | None = None, sample_weight=None):
        """Fit along a decreasing ``lam`` path, monitor a validation set, stop early, keep the best.

        The path is solved by :func:`cvxnn.path.regularization_path` (warm-started, exact
        ``lam_max``) on the patterns of this estimator. After each ``lam`` the mapped network is
        scored on the validation set (``score``: ``R^2`` or accuracy); the path stops when the
        score has not improved for ``patience`` consecutive values, or when ``callback``
        returns True. The fitted state is that of the best ``lam``; the ``lam`` parameter is
        left unchanged (``best_lam_`` holds the chosen value; ``set_params(lam=best_lam_)`` and
        ``fit`` reproduce it).

        Parameters
        ----------
        X, y : array-likes
            Training data (as for :meth:`fit`).
        lams : array-like, optional
            The grid (sorted decreasing); default ``n_lams`` values from ``lam_max`` down to
            ``lam_min_ratio * lam_max``.
        n_lams : int, default=20
        lam_min_ratio : float, default=1e-3
        validation_data : tuple (X_val, y_val), optional
            Held-out data; default a random ``validation_fraction`` of ``(X, y)``
            (``random_state`` fixes the split).
        validation_fraction : float, default=0.2
        patience : int, default=3
            Values of ``lam`` without improvement before stopping.
        callback : callable, optional
            ``callback(info)`` after each ``lam`` with ``info`` keys ``index``, ``lam``,
            ``val_score``, ``objective``, ``status``, ``n_active``; returning True stops.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the training samples.

        Returns
        -------
        self
            With ``best_lam_`` and ``path_`` (a dict of arrays ``lams``, ``val_scores``,
            ``objectives``, ``statuses`` for the values solved).

        Warns
        -----
        ConvergenceWarning
            Once, if any ``lam`` of the path ended uncertified: how many, which values, whether
            ``best_lam_`` is among them, and what to try (``path_["statuses"]`` has each one).
        """
        from .path import regularization_path

        patience = check_positive_int(patience, "patience")
        if validation_data is None:
            if not (isinstance(validation_fraction, numbers.Real) and 0 < validation_fraction < 1):
                raise InvalidParameterError(
                    f"validation_fraction must be in (0, 1), got {validation_fraction!r}.")
            _reject_sparse(X)
            n = len(X)
            perm = as_generator(self.random_state if isinstance(self.random_state, numbers.Integral)
                                else None).permutation(n)
            n_val = max(1, int(round(validation_fraction * n)))
            if n - n_val < 2:
                raise ShapeError(f"{n} samples are too few to hold out a validation set.")
            if not isinstance(self, _ClfMixin) and n_val < 2:
                raise ShapeError(f"validation_fraction={validation_fraction} holds out {n_val} of {n} samples; "
                                 "R^2 needs at least 2 (raise validation_fraction or pass validation_data).")
            # the split indexes y and the weights by X's rows: check their lengths first
            try:
                n_y = len(y)
            except TypeError:
                raise ShapeError(f"y must be an array-like of {n} targets, got {type(y).__name__}.") from None
            if n_y != n:
                raise ShapeError(f"X has {n} samples but y has {n_y}.")
            sample_weight = _check_sample_weight(sample_weight, n)
            val, tr = perm[:n_val], perm[n_val:]
            # rows by position, keeping a DataFrame a DataFrame (its column names are checked)
            X_val, y_val = _rows(X, val), _rows(y, val)
            X, y = _rows(X, tr), _rows(y, tr)
            if sample_weight is not None:
                sample_weight = sample_weight[tr]
        else:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise InvalidParameterError("validation_data must be a pair (X_val, y_val).")
            X_val, y_val = validation_data
        trial = type(self)(**self.get_params(deep=False))
        Xv, y_enc, loss, w, extra = trial._encode_for_fit(X, y, sample_weight)
        _check_params(trial)
        if w is not None and np.any(w == 0):
            keep = w > 0
            Xv, y_enc, w = Xv[keep], y_enc[keep], w[keep]
        std, Xs, patterns = trial._prepare(Xv, w, y=y_enc)
        y_enc = _solver_targets(std, y_enc)
        Xe, ye, pe, le = Xs, y_enc, patterns, loss  # the program as the path engine sees it
        if w is not None and not np.all(w == 1.0):
            if loss.name == "squared" and type(loss).__name__ == "SquaredLoss":
                from .patterns import _fingerprint

                ww = w * (w.size / w.sum()) if loss.reduction == "mean" else w
                r = np.sqrt(ww)
                Xe = patterns.design(Xs) * r[:, None]
                ye = y_enc * (r[:, None] if y_enc.ndim == 2 else r)
                pe = Patterns(gates=np.array(patterns.gates), mask=np.array(patterns.mask), bias=False,
                              fingerprint=_fingerprint(Xe))
            else:
                le = WeightedLoss(base=loss, weights=w)
                _check_native_weights(self.backend, le)
        activation = trial._activation
        if lams is None:
            from .path import lam_grid, lam_max, lam_max_is_zero

            _check_default_grid_loss(le, ye)
            lmax = lam_max(Xe, ye, pe, activation, le, formulation=get_activation(activation).vector_formulation)
            if lam_max_is_zero(lmax, pe.design(Xe), ye, le):
                raise InvalidParameterError(
                    f"lam_max is 0 for these data up to rounding ({lmax:.3g}; the zero model is optimal for every "
                    "lam); pass lams.")
            lams = lam_grid(lmax, n_lams, lam_min_ratio)
        records: list[dict] = []
        best = {"score": -np.inf, "index": -1, "since": 0}
        fitted_at: dict[int, dict] = {}

        engine_solutions: dict[int, ConvexSolution] = {}

        def monitor(i: int, lam: float, sol: ConvexSolution) -> bool:
            engine_solutions[i] = sol
            ntol = _network_tol(sol, Xe, ye)
            if pe is not patterns:
                sol = dataclasses.replace(sol, patterns=patterns, loss=WeightedLoss(base=loss, weights=w),
                                          **_scaled_problem_duals(sol, r))
            net, objective = _network_and_objective(sol, Xs, y_enc, float(lam), loss, ntol)
            raw_net = std.network_to_raw(net) if std is not None else net
            state = dict(extra, solution_=sol, patterns_=patterns, standardizer_=std, network_=raw_net,
                         objective_=objective, network_tol_=float(ntol),
                         convex_objective_=float(sol.objective_value),
                         gap_=sol.gap, status_=sol.status,
                         n_active_neurons_=int(net.n_neurons), n_iter_=_n_iter(sol),
                         fit_time_=float(sol.solve_time or 0.0))
            trial._commit(state)
            score = float(trial.score(X_val, y_val))
            fitted_at[i] = state
            info = {"index": i, "lam": float(lam), "val_score": score, "objective": state["objective_"],
                    "status": sol.status, "n_active": state["n_active_neurons_"]}
            records.append(info)
            if score > best["score"] + 1e-12:
                best.update(score=score, index=i, since=0)
            else:
                best["since"] += 1
            logger.info("lam %d: %.6g, status %s, %d neurons, validation score %.6g%s", i, float(lam), sol.status,
                        info["n_active"], score, " (best)" if best["index"] == i else "")
            stop = callback(info) if callback is not None else None
            return callback_stops(stop) or best["since"] >= patience

        from .native.solve import _verbosity

        backend = self.backend if isinstance(self.backend, str) else "native"
        with _verbosity(self.verbose, logger, "cvxnn.fit_path"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            regularization_path(Xe, ye, pe, activation=activation, loss=le, lams=lams, backend=backend,
                                tol=float(self.tol), callback=monitor,
                                solver_opts={"max_iter": int(self.max_iter), "verbose": self.verbose})
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):  # the solves' own: replaced by one below
                warnings.warn(w.message, w.category, stacklevel=2)
        _warn_uncertified_path(self, records, engine_solutions, best["index"], Xe, ye, pe)
        if best["index"] < 0:
            raise InvalidParameterError(
                "the validation score is undefined (NaN) at every lam: the validation set is too small "
                f"({len(y_val)} samples) or constant; pass a larger validation_data or validation_fraction.")
        state = dict(fitted_at[best["index"]])
        state["_gate_params"] = self._gate_key()  # (a later warm fit compares them: n_gates=25 reused 10 gates)
        state["gap_"] = _certified_gap(engine_solutions[best["index"]], Xe, ye, records[best["index"]]["lam"], le)
        state["best_lam_"] = state["lam_"] = records[best["index"]]["lam"]
        state["path_"] = {"lams": np.array([r["lam"] for r in records]),
                          "val_scores": np.array([r["val_score"] for r in records]),
                          "objectives": np.array([r["objective"] for r in records]),
                          "statuses": np.array([r["status"] for r in records])}
        self._commit(state)
        return self

    def _encode_for_fit(self, X, y, sample_weight):  # pragma: no cover - overridden
        raise NotImplementedError


def _warn_uncertified_path(est, records: list[dict], solutions: dict, best_index: int, X, y, patterns) -> None:
    """One warning for the values of a :meth:`fit_path` whose solve did not certify (instead of
    one generic warning per solve), at the caller's line: how many, which ``lam`` values, whether
    the chosen one is among them, and the advice of :func:`_convergence_advice`."""
    rtol = _certificates().CERTIFIED_WARN_RTOL
    loose = [i for i in range(len(records)) if solutions[i].converged
             and (solutions[i].extra or {}).get("certified_rel_gap", 0.0) > rtol]
    if loose:
        # a CVXPY "optimal" that cvxnn's certificate cannot confirm (attach_certificate's warning
        # per solve, caught with the others, said so without the estimator's name)
        worst = max(solutions[i].extra["certified_rel_gap"] for i in loose)
        lams = ", ".join(f"{records[i]['lam']:.4g}" for i in loose[:6]) + (", ..." if len(loose) > 6 else "")
        warnings.warn(
            f"{type(est).__name__}.fit_path: {len(loose)} of {len(records)} lam values were called optimal by "
            f"{solutions[loose[0]].solver} but cvxnn certifies relative gaps up to {worst:.3g} (above {rtol:g}): "
            f"lam = {lams}; pass tighter solver tolerances or use backend='native'.",
            InaccurateSolutionWarning, stacklevel=3)
    bad = [i for i in range(len(records)) if not solutions[i].converged]
    if not bad:
        return
    statuses = sorted({records[i]["status"] for i in bad})
    lams = ", ".join(f"{records[i]['lam']:.4g}" for i in bad[:6]) + (", ..." if len(bad) > 6 else "")
    chosen = (f"the chosen best_lam_ ({records[best_index]['lam']:.4g}) is one of them"
              if best_index in bad else "the chosen best_lam_ is certified")
    worst = solutions[bad[0]]
    category = (InaccurateSolutionWarning if statuses == ["optimal_inaccurate"] else ConvergenceWarning)
    warnings.warn(
        f"{type(est).__name__}.fit_path: {len(bad)} of {len(records)} lam values ended uncertified "
        f"(status {', '.join(map(repr, statuses))} with max_iter={est.max_iter}: lam = {lams}); {chosen}. "
        f"{_convergence_advice(est, X, y, patterns, worst)}.",
        category, stacklevel=3)  # _warn_uncertified_path < fit_path < caller


class _MultiOutputTags:
    """Regressors take ``y`` of shape ``(n_samples, n_outputs)``: scikit-learn's tags say so."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multioutput": True}


class _CheckedR2:
    """``score`` of the regressors: ``R^2`` (averaged over outputs, as scikit-learn's), with a
    :class:`~cvxnn.errors.ShapeError` for targets of another shape than the predictions (it
    raised scikit-learn's bare ``ValueError``), and a :class:`~cvxnn.errors.NonFiniteError` for
    NaN or infinite targets."""

    def score(self, X, y, sample_weight=None) -> float:
        P = np.asarray(self.predict(X), dtype=float)
        try:
            Y = np.asarray(y, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"y must be numbers: {exc}") from None
        if Y.ndim == 2 and Y.shape[1] == 1 and P.ndim == 1:
            Y = Y[:, 0]
        if Y.ndim == 1 and P.ndim == 2 and P.shape[1] == 1:
            P = P[:, 0]
        if Y.shape != P.shape:
            n_y, n_p = (1 if A.ndim == 1 else A.shape[1] for A in (Y, P))
            raise ShapeError(f"y has shape {Y.shape} ({n_y} output(s)); the model predicts {P.shape} "
                             f"({n_p} output(s)) for X.")
        if not np.all(np.isfinite(Y)):  # scikit-learn's r2_score raised a bare ValueError
            first = tuple(int(i) for i in np.argwhere(~np.isfinite(Y))[0])
            raise NonFiniteError(f"y contains NaN or infinity (first at index {first}, value {Y[first]}); "
                                 "score needs finite targets.")
        w = _check_sample_weight(sample_weight, Y.shape[0])
        if _HAVE_SKLEARN:
            from sklearn.metrics import r2_score

            return float(r2_score(Y, P, sample_weight=w))
        return _FallbackRegressorMixin._r2(Y, P, w)


class _CheckedAccuracy:
    """``score`` of the classifiers: mean accuracy (weighted by ``sample_weight``), with the
    regressors' checks: a :class:`~cvxnn.errors.ShapeError` for labels or weights of another
    length than the rows of ``X`` (scikit-learn's ``accuracy_score`` raised a bare
    ``ValueError``), and the errors of ``fit`` for bad weights (negative weights were accepted
    and gave a weighted mean that is no accuracy: ``-1`` everywhere scored as ``1``)."""

    def score(self, X, y, sample_weight=None) -> float:
        pred = self.predict(X)
        labels = np.asarray(y)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != pred.shape:
            raise ShapeError(f"y has shape {labels.shape}; expected ({pred.shape[0]},), one label per row of X.")
        w = _check_sample_weight(sample_weight, pred.shape[0])
        if _HAVE_SKLEARN:
            from sklearn.metrics import accuracy_score

            return float(accuracy_score(labels, pred, sample_weight=w))
        return float(np.average(pred == labels, weights=w))


class _RegressorBase(_MultiOutputTags, _CheckedR2, _RegMixin, _ConvexNetworkBase):
    _scale_targets = True
    _lam_kind = "regressor"

    def __init__(
        self,
        lam: float = 1.0,
        n_gates: int = 32,
        gates=None,
        backend: str = "native",
        loss="squared",
        bias: bool = True,
        tol: float = 1e-6,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
    ) -> None:
        super().__init__(lam=lam, n_gates=n_gates, gates=gates, backend=backend, loss=loss,
                         bias=bias, tol=tol, max_iter=max_iter, random_state=random_state,
                         verbose=verbose, standardize=standardize, warm_start=warm_start)

    def _loss(self) -> Loss:
        loss = get_loss(self.loss)
        if loss.classification:
            raise InvalidParameterError(
                f"{type(self).__name__} needs a regression loss ('squared', 'huber', 'absolute'), "
                f"got {loss.name!r}; use {type(self).__name__.replace('Regressor', 'Classifier')} "
                "for classification."
            )
        return loss

    def fit(self, X, y, sample_weight=None):
        """Fit the convex program on ``(X, y)``.

        Validates everything first; the fitted attributes are replaced together, only after
        the solve succeeded (a failed or interrupted refit leaves the previous model intact).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Dense data (sparse matrices are refused with :class:`~cvxnn.errors.InputError`).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Real targets. Several outputs give one network with that many outputs: the
            vector-output program (C-GReLU: the nuclear-norm penalty; C-ReLU: the one-vs-all
            program, whose value is its network's objective; docs/vector.md). A column
            ``(n_samples, 1)`` is flattened, with a ``DataConversionWarning``, as
            ``MLPRegressor`` does.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights multiplying each sample's loss term (integer weights equal
            repeating rows; zero removes the sample).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight=sample_weight)

    def _encode_for_fit(self, X, y, sample_weight):
        X, y, extra = self._validate_fit_data(X, y, y_numeric=True, multi_output=True)
        y = _regression_targets(y, X.shape[0])
        w = _check_sample_weight(sample_weight, X.shape[0])
        return X, y, self._loss(), w, extra

    def _fit(self, X, y, warm_start: ConvexSolution | None = None, callback=None, sample_weight=None):
        X, y, loss, w, extra = self._encode_for_fit(X, y, sample_weight)
        return self._fit_encoded(X, y, loss, sample_weight=w, warm_start=warm_start, callback=callback,
                                 extra=extra)

    def predict(self, X) -> np.ndarray:
        """Predictions of the fitted network ``network_`` on raw ``X``: shape ``(n_samples,)``,
        or ``(n_samples, n_outputs)`` when it was fitted on several outputs."""
        return self._raw_output(X)

    def _score_validated(self, X: np.ndarray, y: np.ndarray, sample_weight=None) -> float:
        """``score(X, y, sample_weight)`` (``R^2``) for an ``X`` that is already a validated float
        array."""
        if not _HAVE_SKLEARN:  # pragma: no cover
            return self.score(X, y, sample_weight=sample_weight)
        from sklearn.metrics import r2_score

        return float(r2_score(y, self.network_.predict(X), sample_weight=sample_weight))


class _ClassifierBase(_CheckedAccuracy, _ClfMixin, _ConvexNetworkBase):
    def __init__(
        self,
        lam: float = 0.1,
        n_gates: int = 32,
        gates=None,
        backend: str = "native",
        loss="logistic",
        bias: bool = True,
        tol: float = 1e-6,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
        class_weight=None,
    ) -> None:
        super().__init__(lam=lam, n_gates=n_gates, gates=gates, backend=backend, loss=loss,
                         bias=bias, tol=tol, max_iter=max_iter, random_state=random_state,
                         verbose=verbose, standardize=standardize, warm_start=warm_start)
        self.class_weight = class_weight

    def _loss_for(self, n_classes: int) -> Loss:
        """Binary: logistic (``{-1, +1}`` labels), squared or hinge on ``+-1``; multi-class:
        softmax cross-entropy (``"logistic"`` or ``"cross_entropy"``) or squared on one-hot."""
        spec = self.loss
        if isinstance(spec, Loss):
            loss = spec
        elif spec in ("logistic", "cross_entropy"):
            loss = get_loss("logistic" if n_classes == 2 else "cross_entropy")
        elif spec in ("squared", "hinge"):
            loss = get_loss(spec)
        else:
            raise InvalidParameterError(
                f"{type(self).__name__} loss must be 'logistic' (= 'cross_entropy' for more "
                f"than two classes), 'squared' or 'hinge', got {spec!r}."
            )
        if n_classes > 2 and type(loss) is LogisticLoss:
            # as the string 'logistic': its multinomial form, with the instance's reduction
            loss = get_loss("cross_entropy", reduction=loss.reduction)
        if n_classes > 2 and loss.name in ("logistic", "hinge"):
            raise InvalidParameterError(
                f"the {loss.name} loss is binary; with {n_classes} classes use 'logistic' or "
                "get_loss('cross_entropy', reduction=...) (multinomial cross-entropy), or 'squared' "
                "(one-hot targets)."
            )
        if n_classes == 2 and loss.name == "cross_entropy":
            loss = get_loss("logistic", reduction=loss.reduction)
        return loss

    def _is_probabilistic(self) -> bool:
        name = self.loss.name if isinstance(self.loss, Loss) else self.loss
        return name in ("logistic", "cross_entropy")

    def fit(self, X, y, sample_weight=None):
        """Fit the convex program on ``(X, y)`` with class labels ``y``.

        Two classes are encoded as ``-1 / +1`` (``classes_[0] -> -1``); more classes as
        one-hot rows of a vector-output program. Validates everything first; the fitted
        attributes (``classes_`` included) are replaced together, only after the solve
        succeeded.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Dense data (sparse matrices are refused with :class:`~cvxnn.errors.InputError`).
        y : array-like of shape (n_samples,)
            Class labels (any hashable, sortable values; continuous targets raise
            :class:`~cvxnn.errors.LabelError`).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights multiplying each sample's loss term; multiplied by the
            ``class_weight`` of the sample's class.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight=sample_weight)

    def _encode_for_fit(self, X, y, sample_weight):
        X, y, extra = self._validate_fit_data(X, y)
        y = np.asarray(y)
        if _HAVE_SKLEARN:
            from sklearn.utils.multiclass import check_classification_targets

            try:
                check_classification_targets(y)
            except TypeError as exc:
                if "bytes" in str(exc):  # scikit-learn refuses bytes labels
                    raise LabelError(f"{type(self).__name__} does not take bytes labels; convert them to str "
                                     "(e.g. y.astype(str), or [b.decode() for b in y]) or to integers.") from None
                raise LabelError(f"{type(self).__name__} needs class labels of one type (all numbers or all "
                                 "strings); y mixes types that cannot be sorted.") from None
            except ValueError as exc:
                raise LabelError(
                    f"{exc} {type(self).__name__} needs class labels; for real-valued targets use "
                    f"{type(self).__name__.replace('Classifier', 'Regressor')}."
                ) from None
        elif y.ndim != 1:
            raise ShapeError(f"y must be a 1-D array of labels, got shape {y.shape}.")
        elif y.dtype.kind == "f" and np.any(y != np.round(y)):
            raise LabelError(f"{type(self).__name__} needs class labels, got continuous values.")
        try:
            classes, inverse = np.unique(y, return_inverse=True)
        except TypeError:
            raise LabelError(f"{type(self).__name__} needs class labels of one type (all numbers or all "
                             "strings); y mixes types that cannot be sorted.") from None
        inverse = inverse.ravel()
        if classes.size < 2:
            raise LabelError(
                f"{type(self).__name__} needs samples of at least 2 classes; got 1 class "
                f"({classes.tolist()[0]!r})."  # the label, not its numpy scalar repr (np.str_("a"))
            )
        loss = self._loss_for(classes.size)
        w = _check_sample_weight(sample_weight, X.shape[0])
        cw = _class_weights(self.class_weight, classes, inverse, w)
        if cw is not None:
            w = cw if w is None else w * cw
            if not w.sum() > 0:
                raise InvalidParameterError("class_weight and sample_weight give every sample weight 0.")
        if classes.size == 2:
            if w is not None:
                empty = [classes[k].item() if hasattr(classes[k], "item") else classes[k]
                         for k in range(2) if not np.any(w[inverse == k] > 0)]
                if empty:  # the logistic loss would name its internal label -1 or +1
                    raise LabelError(
                        f"class {empty[0]!r} has total weight 0 (sample_weight / class_weight): a binary "
                        "classifier needs weight on both classes; drop the class or give it weight.")
            y_enc = np.where(inverse == 1, 1.0, -1.0)
        else:
            y_enc = np.eye(classes.size)[inverse]
        extra["classes_"] = classes
        return X, y_enc, loss, w, extra

    def _fit(self, X, y, warm_start: ConvexSolution | None = None, callback=None, sample_weight=None):
        X, y_enc, loss, w, extra = self._encode_for_fit(X, y, sample_weight)
        return self._fit_encoded(X, y_enc, loss, sample_weight=w, warm_start=warm_start,
                                 callback=callback, extra=extra)

    def decision_function(self, X) -> np.ndarray:
        """Network outputs: ``(n_samples,)`` for two classes (positive means ``classes_[1]``),
        ``(n_samples, n_classes)`` otherwise."""
        return self._raw_output(X)

    def predict(self, X) -> np.ndarray:
        """Predicted class labels."""
        return self._labels(self.decision_function(X))

    def _labels(self, scores: np.ndarray) -> np.ndarray:
        """Class labels of network outputs (positive binary output: ``classes_[1]``)."""
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    def _score_validated(self, X: np.ndarray, y: np.ndarray, sample_weight=None) -> float:
        """``score(X, y, sample_weight)`` (mean accuracy) for an ``X`` that is already a validated
        float array."""
        return float(np.average(self._labels(self.network_.predict(X)) == y, weights=sample_weight))

    @_available_if(lambda self: self._is_probabilistic())
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (logistic / cross-entropy losses only): ``sigmoid`` of the
        binary output, ``softmax`` of the vector output. Shape ``(n_samples, n_classes)``."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return np.column_stack([expit(-scores), expit(scores)])
        return softmax(scores, axis=1)

    @_available_if(lambda self: self._is_probabilistic())
    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`, computed stably."""
        from scipy.special import log_expit, log_softmax

        scores = self.decision_function(X)
        if scores.ndim == 1:
            return np.column_stack([log_expit(-scores), log_expit(scores)])
        return log_softmax(scores, axis=1)


_PARAMS_DOC = """
    Parameters
    ----------
    lam : float or "auto", default={lam_default!r}
        Regularisation strength ``lam >= 0`` of ``lam * sum_i ||theta_i||`` (equivalently,
        weight decay ``lam/2`` on the network), in the units of the standardized data
        (regressors standardize ``y`` too). Losses are summed over samples, so a good
        ``lam`` grows with ``n``: ``"auto"`` is ``{auto_fraction:g} * n`` (``n`` the sum of the
        sample weights; ``{auto_fraction:g}`` with a mean-reduced loss), chosen by measurement
        (docs/estimators.md, "How the defaults were chosen"); the value used is ``lam_``. For
        the best accuracy cross-validate it (``{name}CV``, ``GridSearchCV`` or
        :func:`cross_validate_lam`).
    n_gates : int, default={n_gates_default}
        Gates ``g ~ N(0, I)`` sampled for the activation patterns (duplicates removed, so
        ``patterns_`` may hold fewer). Ignored when ``gates`` is given.
    gates : array of shape (d, p) or (d + 1, p), optional
        Fixed gate vectors (columns); overrides ``n_gates`` so two runs share patterns. With
        ``bias=True`` the last row is the gate offset (a ``(d, p)`` array means offset 0).
    backend : str, default="native"
        ``"native"`` (:func:`cvxnn.native.solve_native`) or the name of an installed CVXPY
        solver (``"clarabel"``, ``"scs"``, ...); anything else raises
        :class:`~cvxnn.errors.InvalidParameterError`.
    loss : str or Loss, default={loss_default!r}
        {loss_doc}
    bias : bool, default=True
        Append a column of ones to ``X``; the bias is part of each neuron and is penalised.
    tol : float, default={tol_default}
        Relative tolerance of the native solvers (duality gap / optimality residual):
        ``status_ == "optimal"`` certifies ``gap_ <= tol * |objective|``.
    max_iter : int, default=10000
        Iteration limit of the solver.
    random_state : None, int or numpy Generator, default=None
        Seed of the gate sampling (same seed, same data: bit-identical patterns).
    verbose : bool or int, default=False
        Print solver progress to stderr (any true value; there are no levels), and in
        :meth:`fit_path` one line per ``lam`` with its status and validation score.
    standardize : bool, default=True
        Fit on standardized columns ``X_s = (X - mu) / s`` (weighted statistics with
        ``sample_weight``; with ``bias=False`` the columns are only scaled) and map the network
        back exactly with :class:`~cvxnn.preprocessing.Standardizer`: ``network_`` and saved
        models act on raw ``X``. Regressors also standardize ``y`` (centred with ``bias=True``,
        scaled by its standard deviation; predictions are mapped back to raw units). Gates,
        ``lam`` and the objectives are in standardized units.
    warm_start : bool, default=False
        Reuse the previous fit's gates and solution as the starting point of the next
        ``fit`` (scikit-learn semantics; useful along a decreasing ``lam``). A change of
        ``n_gates``, ``random_state``, ``gates`` or ``bias`` since that fit draws new gates and
        starts cold. With an integer ``random_state`` the next fit solves the cold fit's program
        (the same gates, drawn again) and starts from the previous solution where the patterns
        agree; with ``random_state=None`` it keeps the previous fit's gates (those with distinct
        patterns on its data).
{extra_params}
    Attributes
    ----------
    lam_ : float
        The ``lam`` of the fit (``lam`` itself, or the value ``"auto"`` resolved to).
    network_ : {network_type}
        The fitted non-convex network (exact image of the convex solution).
    patterns_ : Patterns
        Activation patterns used (gates and training mask), on the data the solver saw.
    objective_ : float
        Objective of the returned network (loss plus ``lam/2`` weight decay, docs/math.md) on
        the training data as the solver saw it: standardized ``X`` and, for regressors, ``y``
        (with ``standardize=True``), labels encoded as ``+-1`` / one-hot for classifiers,
        losses weighted by ``sample_weight``. The network is
        ``solution_.to_network(tol=network_tol_)`` (before the map to raw units); the raw
        ``network_`` predicts the same values in raw units but its own weight-decay penalty is
        in raw units and differs.
    network_tol_ : float
        The relative block-norm threshold of that map: 0 for the native solvers (their zero
        blocks are exact zeros); for a CVXPY backend, blocks below ``NETWORK_TOL`` times the
        larger of the largest block norm and ``||y|| / ||X_a||_F`` are an interior-point
        solver's rounding of zero and are dropped, so ``objective_`` can lie below
        ``convex_objective_`` by that solver accuracy (about ``1e-8`` relative; with the
        non-smooth hinge and absolute losses also above it, by up to about ``2e-6``).
    convex_objective_ : float
        Value of the convex program at the solution (``solution_.objective_value``). Equal to
        ``objective_`` up to rounding wherever the map is exact (scalar output, C-GReLU, the
        one-vs-all program of vector-output C-ReLU, where ``objective_`` can only be lower);
        ``objective_ - convex_objective_`` is the difference (docs/vector.md).
    standardizer_ : Standardizer or None
        The fitted column map (None with ``standardize=False``).
    gap_ : float or None
        Certified absolute duality gap of the program, an upper bound on
        ``convex_objective_ - p*`` (``p*`` its optimal value): the native
        solver's, or for CVXPY backends computed from the solution and the solver's cone
        multipliers (smooth losses, ``lam > 0``); None where no certificate is available.
    status_ : str
        Solver status (``"optimal"``, ``"optimal_inaccurate"``, ``"max_iterations"``, ...).
    n_active_neurons_ : int
        Neurons the program chose (nonzero blocks, or the rank-one factors of vector output). A
        regressor standardized with ``bias=True`` has one more neuron in ``network_``: the
        always-active neuron that adds the target mean back.
    solution_ : ConvexSolution
        The full solver result (weights, status, timings).
    n_iter_ : int or None
        Solver iterations, at least 1: a start certified optimal without an iteration (the zero
        model at ``lam >= lam_max``, a warm start) counts its check as one, as scikit-learn
        expects of ``n_iter_``.
    fit_time_ : float
        Seconds spent in the solver call.
    n_features_in_ : int
        Number of features seen in ``fit``.
"""

_CLASS_WEIGHT_PARAM = """    class_weight : None, "balanced" or dict, default=None
        Weights of the classes' loss terms, on top of ``sample_weight`` (see Notes).
"""

_CLASS_WEIGHT_DOC = """    classes_ : ndarray
        Class labels in sorted order.

    Notes
    -----
    ``class_weight`` (None, ``"balanced"`` or ``{label: weight}``) multiplies the loss terms
    of each class's samples (``"balanced"``: ``W / (n_classes * W_k)`` with ``W_k`` the total
    sample weight of class ``k`` and ``W`` of all samples, scikit-learn's rule), on top of
    ``sample_weight``. With the native solvers a weighted logistic or cross-entropy loss takes
    at most 64 distinct weights (class weights always qualify).
"""

_REG_LOSS_DOC = ("Regression loss: ``'squared'`` (``1/2 ||.||^2``), ``'huber'``, ``'absolute'`` "
                 "(CVXPY backends), or a :class:`~cvxnn.losses.Loss` instance (e.g. "
                 "``SquaredLoss(reduction='mean')``).")
_CLF_LOSS_DOC = ("``'logistic'`` (binary logistic on ``+-1`` labels; softmax cross-entropy for "
                 "more classes; ``'cross_entropy'`` is a synonym), ``'squared'`` (on ``+-1`` / "
                 "one-hot targets) or ``'hinge'`` (binary, CVXPY backends).")


class ConvexReLURegressor(_RegressorBase):
    __doc__ = (
        """Two-layer ReLU network for regression, trained by the convex C-ReLU program.

    Solves ``min L(sum_i D_i X (v_i - w_i), y) + lam sum_i (||v_i|| + ||w_i||)`` subject to
    the cone constraints ``Xt_i v_i >= 0``, ``Xt_i w_i >= 0`` on sampled patterns ``D_i``;
    the solution is the global optimum over ReLU networks whose neurons use those patterns.
"""
        + _PARAMS_DOC.format(lam_default=1.0, auto_fraction=AUTO_LAM_FRACTION["regressor"],
                             n_gates_default=32, tol_default="1e-6",
                             name="ConvexReLURegressor", loss_default="squared", loss_doc=_REG_LOSS_DOC,
                             network_type="ReLUNetwork", extra_params="")
    )
    _activation = "relu"


class ConvexGatedReLURegressor(_RegressorBase):
    __doc__ = (
        """Two-layer gated ReLU network for regression, trained by the convex C-GReLU program.

    Solves the group lasso ``min L(sum_i D_i X u_i, y) + lam sum_i ||u_i||``; the fitted
    network uses the sampled gates ``g_i`` for its activations on new data.
"""
        + _PARAMS_DOC.format(lam_default="auto", auto_fraction=AUTO_LAM_FRACTION["regressor"],
                             n_gates_default=GATED_DEFAULTS["n_gates"], tol_default=_sci(GATED_DEFAULTS["tol"]),
                             name="ConvexGatedReLURegressor", loss_default="squared", loss_doc=_REG_LOSS_DOC,
                             network_type="GatedReLUNetwork", extra_params="")
    )
    _activation = "gated_relu"

    def __init__(
        self,
        lam: float | str = "auto",
        n_gates: int = 100,
        gates=None,
        backend: str = "native",
        loss="squared",
        bias: bool = True,
        tol: float = 1e-4,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
    ) -> None:
        super().__init__(lam=lam, n_gates=n_gates, gates=gates, backend=backend, loss=loss,
                         bias=bias, tol=tol, max_iter=max_iter, random_state=random_state,
                         verbose=verbose, standardize=standardize, warm_start=warm_start)


class ConvexReLUClassifier(_ClassifierBase):
    __doc__ = (
        """Two-layer ReLU network classifier (binary and multi-class), trained by C-ReLU.

    Two classes: scalar output on ``+-1`` labels; more classes: vector output on one-hot
    targets: the one-vs-all program (columns of each block penalised separately,
    :mod:`cvxnn.vector`) on every backend, whose value is the objective of its network.
"""
        + _PARAMS_DOC.format(lam_default="auto", auto_fraction=AUTO_LAM_FRACTION["classifier"],
                             n_gates_default=RELU_CLASSIFIER_DEFAULTS["n_gates"], tol_default="1e-6",
                             name="ConvexReLUClassifier", loss_default="logistic", loss_doc=_CLF_LOSS_DOC,
                             network_type="ReLUNetwork", extra_params=_CLASS_WEIGHT_PARAM)
        + _CLASS_WEIGHT_DOC
    )
    _activation = "relu"

    def __init__(
        self,
        lam: float | str = "auto",
        n_gates: int = 100,
        gates=None,
        backend: str = "native",
        loss="logistic",
        bias: bool = True,
        tol: float = 1e-6,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
        class_weight=None,
    ) -> None:
        super().__init__(lam=lam, n_gates=n_gates, gates=gates, backend=backend, loss=loss,
                         bias=bias, tol=tol, max_iter=max_iter, random_state=random_state,
                         verbose=verbose, standardize=standardize, warm_start=warm_start,
                         class_weight=class_weight)


class ConvexGatedReLUClassifier(_ClassifierBase):
    __doc__ = (
        """Two-layer gated ReLU network classifier (binary and multi-class), trained by C-GReLU.
"""
        + _PARAMS_DOC.format(lam_default="auto", auto_fraction=AUTO_LAM_FRACTION["classifier"],
                             n_gates_default=GATED_DEFAULTS["n_gates"], tol_default=_sci(GATED_DEFAULTS["tol"]),
                             name="ConvexGatedReLUClassifier", loss_default="logistic", loss_doc=_CLF_LOSS_DOC,
                             network_type="GatedReLUNetwork", extra_params=_CLASS_WEIGHT_PARAM)
        + _CLASS_WEIGHT_DOC
    )
    _activation = "gated_relu"

    def __init__(
        self,
        lam: float | str = "auto",
        n_gates: int = 100,
        gates=None,
        backend: str = "native",
        loss="logistic",
        bias: bool = True,
        tol: float = 1e-4,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
        class_weight=None,
    ) -> None:
        super().__init__(lam=lam, n_gates=n_gates, gates=gates, backend=backend, loss=loss,
                         bias=bias, tol=tol, max_iter=max_iter, random_state=random_state,
                         verbose=verbose, standardize=standardize, warm_start=warm_start,
                         class_weight=class_weight)


ESTIMATORS = {cls.__name__: cls for cls in (ConvexReLURegressor, ConvexReLUClassifier,
                                            ConvexGatedReLURegressor, ConvexGatedReLUClassifier)}


# ------------------------------------------------------------------------------------------
# Cross-validation of lam: folds x lam segments as independent joblib tasks.
# ------------------------------------------------------------------------------------------
@dataclass
class LamCVResult:
    """Result of :func:`cross_validate_lam`.

    Attributes
    ----------
    lams : ndarray of shape (n_lams,)
        The grid, in the order given.
    scores : ndarray of shape (n_folds, n_lams)
        Validation score (``estimator.score``) of each fold and ``lam``.
    statuses : ndarray of str, shape (n_folds, n_lams)
        Solver status of each fit.
    best_index : int
        Index of the largest mean score (the largest ``lam`` among ties).
    """

    lams: np.ndarray
    scores: np.ndarray
    statuses: np.ndarray
    best_index: int = field(init=False)

    def __post_init__(self) -> None:
        mean = self.mean_score
        if not np.any(np.isfinite(mean)):
            raise InvalidParameterError(
                "every lam has an undefined (NaN) mean validation score: some fold's score is not "
                "defined for every lam (R^2 needs at least 2 validation samples per fold, as with "
                "LeaveOneOut); use larger folds or a scoring such as 'neg_mean_squared_error'.")
        best = np.flatnonzero(mean == np.nanmax(mean))
        self.best_index = int(best[np.argmax(self.lams[best])])

    @property
    def mean_score(self) -> np.ndarray:
        """Mean validation score over folds, per ``lam``."""
        return np.mean(self.scores, axis=0)

    @property
    def std_score(self) -> np.ndarray:
        """Standard deviation of the validation score over folds, per ``lam``."""
        return np.std(self.scores, axis=0)

    @property
    def best_lam(self) -> float:
        """``lam`` with the best mean validation score."""
        return float(self.lams[self.best_index])


#: Serializes the fold fits that joblib runs as threads of the calling process (see
#: :func:`_cv_segment_task`).
_CV_THREAD_LOCK = threading.RLock()


def _cv_segment_task(parent_pid, *args):
    """:func:`_cv_segment` as a joblib task. In another process (loky, multiprocessing, Dask) the
    warnings of the fold fits (``ConvergenceWarning`` ...) would end on the worker's stderr,
    out of the caller's reach: they are recorded there and returned, and
    :func:`_cross_validate` issues them again in the calling process, as with ``n_jobs=1``."""
    if os.getpid() == parent_pid:
        # in the calling process (n_jobs=1, joblib's threading backend): one task at a time, since
        # every fit enters warnings.catch_warnings, which is process-global: fits in concurrent
        # threads took each other's warnings (ConvergenceWarnings were lost at random) and could
        # restore each other's filters. The fits hold the GIL most of the time, so threads gained
        # nothing (n_jobs=2 took 1.1-1.6x the time of n_jobs=1).
        with _CV_THREAD_LOCK:
            return _cv_segment(*args), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _cv_segment(*args)
    return out, [(w.category, str(w.message)) for w in caught]


def _cv_segment(estimator, X, y, train, test, lams, scorer=None, keep_solutions=False, sample_weight=None):
    """Fit ``estimator`` for each ``lam`` of one segment on one fold (warm-started in
    decreasing ``lam`` on the native backend). Returns scores (``scorer(est, X, y)``, default
    ``est.score``), statuses and, with ``keep_solutions`` (native C-GReLU), each fit's blocks
    as :class:`_FoldSolution` (else None per ``lam``). ``X`` must be validated
    (:func:`~cvxnn._validation.check_X`). ``sample_weight`` (validated, or None): the training
    rows' weights enter the fits, the validation rows' weights the scores (passed to a scorer as
    its ``sample_weight``)."""
    from sklearn.base import clone

    from .path import walk_path

    scores = np.empty(len(lams))
    statuses = np.empty(len(lams), dtype=object)
    kept: list = [None] * len(lams)
    est = clone(estimator)
    # validated and encoded once; the fits of the path share their standardizer, data and patterns
    w_train = None if sample_weight is None else sample_weight[train]
    w_test = None if sample_weight is None else sample_weight[test]
    Xtr, ytr_enc, loss, w, extra = est._encode_for_fit(X[train], y[train], w_train)
    prepared: dict = {}
    # any spelling that fit accepts ("Native" too): warm starts and kept solutions are for the native solvers
    native = _resolve_backend(est.backend) == "native"

    def fit(lam: float, warm: ConvexSolution | None) -> ConvexSolution:
        est.set_params(lam=lam)
        # the default score reads predictions only: no network objective (a scorer may read more)
        est._fit_encoded(Xtr, ytr_enc, loss, sample_weight=w, warm_start=warm if native else None,
                         extra=extra, prepared=prepared, network_objective=scorer is not None)
        return est.solution_

    Xte, yte = X[test], y[test]
    keep = keep_solutions and native and est._activation == "gated_relu"
    for step in walk_path(lams, fit):
        # X is validated (cross_validate_lam): the default score skips the validation of predict
        if scorer is None:
            scores[step.index] = est._score_validated(Xte, yte, sample_weight=w_test)
        else:
            try:
                value = (scorer(est, Xte, yte) if w_test is None
                         else scorer(est, Xte, yte, sample_weight=w_test))
            except AttributeError as exc:  # a callable scorer reading a method the estimator lacks
                raise InvalidParameterError(f"scoring {scorer!r} failed on a fold at lam={step.lam:.6g}: "
                                            f"{exc}{_missing_method_hint(est)}") from exc
            except ValueError as exc:
                missing = (np.setdiff1d(np.unique(y[test]), np.unique(y[train])) if hasattr(est, "classes_")
                           else np.zeros(0))
                hint = (f" The fold's training rows lack the class(es) {missing.tolist()} of its validation "
                        "rows, so its model scores fewer classes: use stratified folds (the default cv "
                        "for classifiers) or a scoring that takes predictions only." if missing.size else "")
                raise InvalidParameterError(
                    f"scoring {scorer!r} failed on a fold at lam={step.lam:.6g}: {exc}.{hint}") from exc
            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.item()  # a 0-d array, as scikit-learn's cross_validate takes it
            if not isinstance(value, (numbers.Real, np.number)) or isinstance(value, (bool, np.bool_)):
                raise InvalidParameterError(
                    f"scoring {scorer!r} returned {type(value).__name__} {value!r:.80}, not one number: the "
                    "CV chooses lam by a single score per fold.")
            scores[step.index] = float(value)
        statuses[step.index] = est.status_
        if keep:
            kept[step.index] = _FoldSolution.of(est)
    return scores, statuses, kept


@dataclass
class _FoldSolution:
    """The blocks of a CV fold fit (C-GReLU), kept to start the refit: its nonzero blocks
    (``blocks[:, k]``, no factoring: only the chosen ``lam``'s are used) with their gates (a
    fold keeps the distinct patterns of its own data, so its block indices are not those of the
    refit), the map of its standardized design to raw data and its target scale."""

    blocks: np.ndarray
    gates: np.ndarray
    design_map: np.ndarray | None
    y_scale: np.ndarray | None

    @classmethod
    def of(cls, est) -> _FoldSolution:
        U = np.asarray(est.solution_.U, dtype=np.float64)
        U = U if U.ndim == 3 else U[:, :, None]
        used = np.flatnonzero(np.any(U != 0, axis=(0, 2)))
        std = est.standardizer_
        return cls(blocks=U[:, used, :], gates=np.asarray(est.solution_.patterns.gates)[:, used],
                   design_map=None if std is None else std.design_map(),
                   y_scale=None if std is None or std.y_scale_ is None else np.asarray(std.y_scale_, dtype=float))


#: The refit of a C-GReLU ``...CV`` estimator (native backend) starts from the mean of its
#: folds' solutions at ``lam_`` (each mapped to the standardization of all the data), cut to
#: its atoms above REFIT_RTOL of the largest singular value: each sample is outside one fold's
#: training data only, so the mean is much closer to the refit's optimum than any one fold's
#: solution (digits, ``lam = 0.001 n``: objective 56.6 on all the data against 75-92 for
#: single folds and 48.0 at the optimum), and the cut keeps the start's atoms few (198 above
#: 1e-2, 109 above 5e-2), which the working set pays for in every iteration. Measured on digits
#: (3 folds, gate seeds 0-4, ``lam`` ``0.003 n`` and ``0.001 n``, tol ``1e-4``; minimum of two
#: runs): 8.0 s for the ten refits against 10.7 s cold, faster in 9 of 10; the mean uncut
#: 9.9 s, cut at 0.1 9.2 s (docs/estimators.md, "The refit starts from the folds").
REFIT_WARM = True
REFIT_RTOL = 0.05


def _refit_start(base, X, y_enc, w, parts: list) -> ConvexSolution | None:
    """The start of the refit: the mean of the folds' solutions at ``lam_`` (``parts``, one
    :class:`_FoldSolution` per fold) on the standardization and patterns of all of ``X``, cut at
    REFIT_RTOL; None when a fold has none."""
    from .native._atoms import atoms_from_blocks, blocks_from_atoms

    if not parts or any(p is None for p in parts):
        return None
    std, _, patterns = base._prepare(X, w, y=y_enc)
    d_a, p = patterns.design_dim, patterns.n_patterns
    c = parts[0].blocks.shape[2]
    T = None if std is None else std.design_map()
    # a fold's block goes to the refit's block of the same gate (the gates are drawn from the
    # same seed; a gate whose pattern duplicates another's on all the data has no block there)
    index = {patterns.gates[:, j].tobytes(): j for j in range(p)}
    mean = np.zeros((d_a, p, c))
    matched = 0
    for part in parts:
        if part.gates.shape[0] != d_a or part.blocks.shape[2] != c:
            return None
        where = np.array([index.get(part.gates[:, k].tobytes(), -1) for k in range(part.gates.shape[1])],
                         dtype=np.intp)
        keep = where >= 0
        matched += int(keep.sum())
        B = part.blocks[:, keep, :]
        if T is not None and part.design_map is not None:
            # fold-standardized design -> raw -> this standardization: [X, 1] T M = [X, 1] T_f
            M = np.linalg.solve(T, part.design_map)
            B = np.tensordot(M if d_a == M.shape[0] else M[:d_a, :d_a], B, axes=(1, 0))
        if part.y_scale is not None and std is not None and std.y_scale_ is not None:
            B = B * (part.y_scale / np.asarray(std.y_scale_, dtype=float))[None, None, :]
        mean[:, where[keep], :] += B  # distinct gates: distinct blocks
    if matched == 0:  # other gates (random_state=None): nothing to start from
        return None
    mean /= len(parts)
    U = blocks_from_atoms(atoms_from_blocks(mean, rtol=REFIT_RTOL), d_a, p, c)
    return ConvexSolution(activation=base._activation, patterns=patterns, U=U if c > 1 else U[:, :, 0],
                          status="max_iterations", backend="native")


def cross_validate_lam(
    estimator,
    X,
    y,
    lams,
    *,
    cv=5,
    n_jobs: int | None = None,
    n_segments: int = 1,
    verbose: int = 0,
    scoring=None,
    sample_weight=None,
    groups=None,
) -> LamCVResult:
    """Cross-validate a grid of ``lam`` with folds x ``lam`` segments as joblib tasks.

    The grid is split into ``n_segments`` contiguous segments; each (fold, segment) pair is
    one independent task that fits the estimator for every ``lam`` of its segment in
    decreasing order (warm-started on the native backend). The tasks run through
    :class:`joblib.Parallel`, so the same call runs on a Dask or Ray cluster inside
    ``joblib.parallel_config(backend="dask")`` (or ``"ray"``).

    Parameters
    ----------
    estimator : one of the cvxnn estimators
        Its ``lam`` is overridden by the grid; other hyper-parameters are kept (fix
        ``random_state`` for reproducible patterns).
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    lams : array-like of float
        The grid (any order; each value ``>= 0``, ``> 0`` for the native backend).
    cv : int or scikit-learn splitter, default=5
        Folds (stratified for classifiers, as :func:`sklearn.model_selection.check_cv`).
    n_jobs : int, optional
        Parallel tasks (``-1``: all cores).
    n_segments : int, default=1
        Segments of the grid (more segments: more parallelism, fewer warm starts).
    verbose : int
        joblib verbosity.
    scoring : None, str or callable, optional
        scikit-learn scoring (:func:`sklearn.metrics.check_scoring`); default the
        estimator's ``score``.
    sample_weight : array-like of shape (n_samples,), optional
        Weights of the samples, as in ``fit``: those of a fold's training rows enter its fits
        (with ``class_weight``, which each fit applies to its own rows), those of its validation
        rows its scores (the weighted accuracy or ``R^2``; a scorer gets them as its
        ``sample_weight``), as scikit-learn's ``LassoCV`` weighs its validation error. Every
        fold needs a positive total weight on both sides.
    groups : array-like of shape (n_samples,), optional
        Group labels of the samples, passed to the ``cv`` splitter's ``split`` (as
        ``cross_val_score`` does), for group splitters such as ``GroupKFold``.

    Returns
    -------
    LamCVResult

    Raises
    ------
    InvalidParameterError
        A fold whose training or validation rows all have weight zero (and the errors of
        ``fit``'s ``sample_weight``: shape, NaN, negative values).
    """
    n_jobs = _check_n_jobs(n_jobs)
    if isinstance(verbose, (bool, np.bool_)):
        verbose = int(verbose)
    if not isinstance(verbose, (numbers.Integral, np.integer)) or verbose < 0:
        raise InvalidParameterError(f"verbose must be an integer >= 0 (joblib's verbosity), got {verbose!r}.")
    args = _cv_arguments(estimator, X, y, lams, cv, n_segments, scoring, sample_weight, groups)
    return _cross_validate(estimator, *args, n_jobs=n_jobs, verbose=int(verbose))[0]


def _check_n_jobs(n_jobs) -> int | None:
    """joblib's ``n_jobs``: None or a nonzero integer (``-1``: all cores)."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, (numbers.Integral, np.integer)) or n_jobs == 0:
        raise InvalidParameterError(f"n_jobs must be None or a nonzero integer (-1: all cores), got {n_jobs!r}.")
    return int(n_jobs)


def _check_default_grid_loss(loss: Loss, y: np.ndarray) -> None:
    """A default grid starts at the exact ``lam_max``, which :func:`cvxnn.path.lam_max` computes
    for every loss differentiable at the zero prediction for the targets ``y`` the solver sees
    (:meth:`~cvxnn.losses.Loss.grad_at_zero`: the smooth losses, hinge, absolute without a
    target 0); for another one the error says to pass the grid."""
    try:
        loss.grad_at_zero(y)
    except InvalidParameterError as exc:
        raise InvalidParameterError(
            f"the default lam grid starts at lam_max, which needs a loss differentiable at the zero model "
            f"({str(exc).rstrip('.')}): pass the grid yourself (lams=[...]; lam='auto' is 0.01 n for classifiers "
            "and 0.03 n for regressors, n the number of samples, a point to centre a geometric grid on).") from None


def default_lam_grid(base, X, y_enc, loss, w, n_lams: int, lam_min_ratio: float, *,
                     zero_ok: bool = False) -> np.ndarray:
    """``n_lams`` values of ``lam``, geometric, from the exact ``lam_max`` of the program that
    ``base`` solves on ``(X, y_enc)`` (encoded targets, sample weights ``w`` with any class
    weights folded in) down to ``lam_min_ratio * lam_max``: the default grid of the ``...CV``
    estimators and of ``cvxnn path``. A ``lam_max`` that is 0 up to rounding
    (:func:`cvxnn.path.lam_max_is_zero`) has no grid: with ``zero_ok`` (the ``...CV``
    estimators) a nominal one from 1 with a :class:`~cvxnn.errors.DataWarning` (every fit is the
    zero model, as with ``LassoCV``), else an error.

    Raises
    ------
    InvalidParameterError
        ``lam_max`` is 0 (the zero model fits) and not ``zero_ok``: pass a grid.
    """
    from .path import lam_grid, lam_max, lam_max_is_zero

    if w is not None and np.any(w == 0):
        # as every fit: a zero weight removes the sample (its row would add C-ReLU cones)
        keep = w > 0
        X, y_enc, w = X[keep], y_enc[keep], w[keep]
    std, Xs, patterns = base._prepare(X, w, y=y_enc)
    ye = _solver_targets(std, y_enc)
    le = loss if w is None else WeightedLoss(base=loss, weights=w)
    _check_default_grid_loss(le, ye)
    # the program the estimator solves (vector output: C-ReLU one-vs-all, C-GReLU nuclear)
    lmax = lam_max(Xs, ye, patterns, base._activation, le,
                   formulation=get_activation(base._activation).vector_formulation)
    if lam_max_is_zero(lmax, patterns.design(Xs), ye, le):
        if zero_ok:  # the zero model is optimal at every lam: any grid selects it (as LassoCV)
            warnings.warn(
                "lam_max is 0 for these data (the zero model fits at every lam, e.g. a constant target "
                "or every input with opposite labels): the default grid is nominal (from 1), and the refit "
                "on all the data is the zero model at any lam (the folds' fits, on parts of the data, need "
                "not be).", DataWarning, stacklevel=4)
            return lam_grid(1.0, n_lams, lam_min_ratio)
        raise InvalidParameterError(
            f"lam_max is 0 for these data (the zero model fits: {lmax:.3g} is rounding, see "
            "cvxnn.path.LAM_MAX_ROUNDING; e.g. every input appears with opposite labels); pass lams.")
    return lam_grid(lmax, n_lams, lam_min_ratio)


def _split_folds(cv, X, y, classifier: bool, groups=None) -> list:
    """The ``(train, test)`` folds of ``cv`` on ``(X, y)``, checked: a splitter that cannot split
    these data, no folds, or a fold whose indices are not rows of ``X`` (out of range, negative,
    not integers or a mask of the wrong length, empty) raise ``InvalidParameterError``."""
    from sklearn.model_selection import check_cv

    n = X.shape[0]
    try:
        splitter = check_cv(cv, y, classifier=classifier)
        folds = list(splitter.split(X, y, groups))
    except (ValueError, TypeError) as exc:  # more folds than samples, or than members of a class
        raise InvalidParameterError(f"cv={cv!r:.60} cannot split these {n} samples: {exc}") from None
    if len(folds) < 1:
        raise InvalidParameterError(f"cv={cv!r:.60} gives no folds.")
    out = []
    for k, fold in enumerate(folds):
        if not (isinstance(fold, (tuple, list)) and len(fold) == 2):
            raise InvalidParameterError(f"cv: fold {k} is not a pair (train, test) of index arrays.")
        pair = []
        for idx, what in zip(fold, ("training", "validation"), strict=True):
            idx = np.asarray(idx)
            if idx.dtype == bool:
                if idx.shape != (n,):
                    raise InvalidParameterError(f"cv: the {what} mask of fold {k} has shape {idx.shape}; "
                                                f"expected ({n},).")
                idx = np.flatnonzero(idx)
            elif idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
                raise InvalidParameterError(f"cv: the {what} rows of fold {k} must be a 1-D array of integer "
                                            "indices or a boolean mask.")
            if idx.size == 0:
                raise InvalidParameterError(f"cv: fold {k} has no {what} rows.")
            if idx.min() < 0 or idx.max() >= n:
                raise InvalidParameterError(f"cv: the {what} rows of fold {k} hold indices outside "
                                            f"[0, {n}) (from {idx.min()} to {idx.max()}).")
            pair.append(idx.astype(np.intp, copy=False))
        out.append(tuple(pair))
    return out


def _check_fold_weights(folds, w: np.ndarray | None) -> None:
    """Every fold's training and validation rows must carry weight (else nothing to fit or to
    score)."""
    if w is None:
        return
    for k, (train, test) in enumerate(folds):
        for rows, what in ((train, "training"), (test, "validation")):
            if not float(np.sum(w[rows])) > 0:
                raise InvalidParameterError(
                    f"fold {k}: every {what} sample has sample_weight 0; use other folds or weights.")


def _cv_arguments(estimator, X, y, lams, cv, n_segments, scoring, sample_weight=None, groups=None) -> tuple:
    """The validated arguments of :func:`cross_validate_lam`: ``(X, y, lams, folds, n_segments,
    scorer, sample_weight)`` (``groups``: passed to the splitter of ``cv``)."""
    try:
        import joblib  # noqa: F401
        from sklearn.base import is_classifier
    except ImportError as exc:  # pragma: no cover
        raise ImportError("cross_validate_lam needs scikit-learn and joblib: "
                          "pip install 'cvxnn[sklearn]'") from exc
    if not isinstance(estimator, _ConvexNetworkBase):
        raise InvalidParameterError(f"estimator must be a cvxnn estimator, got {type(estimator).__name__}.")
    lams = check_lams(lams)
    n_segments = check_positive_int(n_segments, "n_segments")
    X = check_X(X)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        # as the fits do: the fold scores compare predictions of shape (m,) with y[test], which a
        # column would broadcast to an (m, m) comparison
        warnings.warn("A column-vector y was passed when a 1d array was expected; it is flattened to "
                      "shape (n_samples,).", DataConversionWarning, stacklevel=3)
        y = y[:, 0]
    if y.shape[0] != X.shape[0]:
        raise ShapeError(f"y has {y.shape[0]} rows but X has {X.shape[0]} samples.")
    w = _check_sample_weight(sample_weight, X.shape[0])
    folds = _split_folds(cv, X, y, is_classifier(estimator), groups=groups)
    _check_fold_weights(folds, w)
    scorer = None
    if scoring is not None:
        from sklearn.metrics import check_scoring

        if isinstance(scoring, (list, tuple, set, frozenset, dict)):
            # scikit-learn's multi-metric form: the CV picks lam by one number per fold
            raise InvalidParameterError(
                f"scoring must be a single metric (a name such as 'accuracy' or a callable) to choose lam by, "
                f"got the multi-metric {type(scoring).__name__} {scoring!r:.80}; use "
                "sklearn.model_selection.cross_validate on the refitted estimator for more metrics.")
        try:
            scorer = check_scoring(estimator, scoring=scoring)
        except (ValueError, TypeError) as exc:
            raise InvalidParameterError(f"scoring: {exc}") from None
        _check_scorer_methods(estimator, scorer, scoring)
        if w is not None and callable(scoring) and not _takes_sample_weight(scoring):
            # the folds' validation weights are passed on: a scorer without the argument failed
            # in every fold with a bare TypeError
            raise InvalidParameterError(
                "scoring is a callable without a sample_weight argument, but sample_weight was given: the "
                "validation rows' weights are passed to it (scorer(estimator, X, y, sample_weight=w)).")
    return X, y, lams, folds, n_segments, scorer, w


def _check_scorer_methods(estimator, scorer, scoring) -> None:
    """Refuse, before any fit, a scikit-learn scorer that reads a method the estimator does not
    have (``scoring="neg_log_loss"`` with ``loss="squared"``: no ``predict_proba``), saying what to
    use instead. Scorers that do not name their method (plain callables) are checked when a fold
    scores (:func:`_cv_segment`)."""
    methods = getattr(scorer, "_response_method", None)
    if methods is None:
        return
    names = (methods,) if isinstance(methods, str) else tuple(methods)
    if not all(isinstance(m, str) for m in names) or any(hasattr(estimator, m) for m in names):
        return
    raise InvalidParameterError(
        f"scoring={scoring!r:.60} needs {' or '.join(names)}, which {type(estimator).__name__} with "
        f"loss={estimator.loss!r} does not have{_missing_method_hint(estimator)}")


def _missing_method_hint(estimator) -> str:
    """How to get by without a method a scorer needs (the probabilities need a probabilistic loss;
    a regressor has ``predict`` only)."""
    if isinstance(estimator, _ClassifierBase):
        return (": predict_proba and predict_log_proba need loss='logistic' (or 'cross_entropy'); otherwise "
                "choose a scoring that reads predict or decision_function (e.g. 'accuracy', 'roc_auc').")
    return ": a regressor has predict only; choose a regression scoring (e.g. 'r2', 'neg_mean_squared_error')."


def _takes_sample_weight(fn) -> bool:
    """Whether ``fn`` accepts a ``sample_weight`` keyword (by name or ``**kwargs``); True when its
    signature cannot be read."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "sample_weight" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _cross_validate(estimator, X, y, lams, folds, n_segments, scorer, sample_weight=None, *, n_jobs, verbose,
                    keep_solutions=False):
    """:func:`cross_validate_lam` on validated arguments (:func:`_cv_arguments`); also returns
    the fold solutions (``[fold][lam]``, :class:`_FoldSolution` or None) with ``keep_solutions``."""
    from joblib import Parallel, delayed

    segments = [s for s in np.array_split(np.arange(lams.size), min(n_segments, lams.size)) if s.size]
    tasks = [(f, seg) for f in range(len(folds)) for seg in segments]
    results = Parallel(n_jobs=n_jobs, verbose=verbose)(
        delayed(_cv_segment_task)(os.getpid(), estimator, X, y, folds[f][0], folds[f][1], lams[seg], scorer,
                                  keep_solutions, sample_weight)
        for f, seg in tasks
    )
    out = []
    for res, caught in results:
        for category, message in caught:  # a worker process's warnings, issued here
            warnings.warn(message, category, stacklevel=3)
        out.append(res)
    scores = np.empty((len(folds), lams.size))
    statuses = np.empty((len(folds), lams.size), dtype=object)
    kept: list[list] = [[None] * lams.size for _ in folds]
    for (f, seg), (sc, st, ks) in zip(tasks, out, strict=True):
        scores[f, seg] = sc
        statuses[f, seg] = st
        for i, k in zip(seg, ks, strict=True):
            kept[f][i] = k
    return LamCVResult(lams=lams, scores=scores, statuses=statuses.astype(str)), kept


# ------------------------------------------------------------------------------------------
# Estimators that choose lam by cross-validation (one warm-started path per fold).
# ------------------------------------------------------------------------------------------
#: ``cv_tol="auto"``: the fold fits' tolerance when every validation fold holds at least
#: ``CV_TOL_MIN_VALIDATION`` samples (one sample then moves a fold's accuracy by 1 % or less), and
#: the tighter one below otherwise. Chosen by measurement (docs/estimators.md, "Fold fits stop at
#: cv_tol"): at ``5e-2`` the gated fold fits on digits take half the time of ``1e-2`` and every
#: choice of ``lam`` on scikit-learn's data sets with such folds was the exact one; on the
#: 21-41-sample folds of wine and iris the choice moves by one validation sample at one
#: tolerance or another, and there the fold fits cost little at any tolerance.
CV_TOL_LOOSE = 5e-2
CV_TOL_TIGHT = 1e-2
CV_TOL_MIN_VALIDATION = 100


class _ConvexCVBase(_Base):
    """Shared implementation of the ``*CV`` estimators (not public).

    ``fit`` validates everything, builds the grid (default: from the exact ``lam_max`` of the
    standardized training data down), runs :func:`cross_validate_lam` (one warm-started
    :func:`cvxnn.path.walk_path` per fold, folds as joblib tasks), picks the best mean score
    (the largest ``lam`` among ties) and refits the base estimator on all data at that ``lam``.
    The C-GReLU refit (native backend) starts from the mean of the folds' solutions at that
    ``lam`` (:data:`REFIT_WARM`, :func:`_refit_start`); it is certified at ``tol`` like any fit.
    """

    _base_cls: type = _ConvexNetworkBase

    def set_params(self, **params):
        """Set hyper-parameters (scikit-learn semantics); an unknown name raises
        :class:`~cvxnn.errors.InvalidParameterError`."""
        try:
            return super().set_params(**params)
        except CvxnnError:
            raise
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None

    def _base_estimator(self, lam: float = 1.0):
        names = [n for n in self._base_cls._get_param_names() if n != "lam"]
        return self._base_cls(lam=lam, **{n: getattr(self, n) for n in names})

    def _check_cv_params(self) -> None:
        check_positive_int(self.n_lams, "n_lams")
        if not (isinstance(self.lam_min_ratio, numbers.Real) and 0 < self.lam_min_ratio <= 1):
            raise InvalidParameterError(f"lam_min_ratio must be in (0, 1], got {self.lam_min_ratio!r}.")
        if not isinstance(self.refit, (bool, np.bool_)):
            raise InvalidParameterError(f"refit must be True or False, got {self.refit!r}.")
        if not (self.cv_tol is None or (isinstance(self.cv_tol, str) and self.cv_tol == "auto")
                or (isinstance(self.cv_tol, numbers.Real) and not isinstance(self.cv_tol, (bool, np.bool_))
                    and 0 < self.cv_tol < 1)):
            raise InvalidParameterError(
                f"cv_tol must be 'auto', None or a float in (0, 1), got {self.cv_tol!r}.")
        if self.lams is not None:
            native = isinstance(self.backend, str) and self.backend.lower() == "native"
            try:
                check_lams(self.lams, allow_zero=not native)
            except InvalidParameterError as exc:
                if not native or "must be > 0" not in str(exc):
                    raise
                # refused here, before any fold fit (a fold's native solve refused it mid-run,
                # as a "lam" without the grid's index)
                raise InvalidParameterError(
                    f"{exc} The native backend needs lam > 0: use a grid of positive values, or a "
                    "CVXPY backend such as backend='clarabel' for lam = 0.") from None
        _check_n_jobs(self.n_jobs)

    def _grid(self, base, X, y_enc, loss, w) -> np.ndarray:
        """The ``lam`` grid, decreasing: ``lams`` sorted, or ``n_lams`` values from the exact
        ``lam_max`` of the (standardized) training data down to ``lam_min_ratio * lam_max``."""
        if self.lams is not None:
            return np.sort(check_lams(self.lams))[::-1]
        return default_lam_grid(base, X, y_enc, loss, w, self.n_lams, self.lam_min_ratio, zero_ok=True)

    def _resolved_cv_tol(self, folds) -> float | None:
        """``cv_tol`` as a number (None: the fold fits run at ``tol``).

        ``"auto"``: :data:`CV_TOL_LOOSE` when every validation fold holds at least
        :data:`CV_TOL_MIN_VALIDATION` samples, else :data:`CV_TOL_TIGHT`.
        """
        if not (isinstance(self.cv_tol, str) and self.cv_tol == "auto"):
            return None if self.cv_tol is None else float(self.cv_tol)
        smallest = min(int(np.count_nonzero(t)) if np.asarray(t).dtype == bool else len(t) for _, t in folds)
        return CV_TOL_LOOSE if smallest >= CV_TOL_MIN_VALIDATION else CV_TOL_TIGHT

    def _fold_estimator(self, base, cv_tol: float | None):
        """The estimator of the fold fits: ``base`` with ``tol = max(tol, cv_tol)``.

        The validation score of a fold fit depends on its predictions only, and those settle
        long before a tight certificate (benchmarks/bench_defaults.py, ``cv`` section, and
        docs/estimators.md, "Fold fits stop at cv_tol"). Every fold fit is still certified, at
        its own tolerance; the refit at ``lam_`` uses ``tol``.
        """
        from sklearn.base import clone

        if cv_tol is None or cv_tol <= base.tol:
            return base
        return clone(base).set_params(tol=float(cv_tol))

    def _folds(self, X, y, groups=None) -> list:
        from sklearn.base import is_classifier

        return _split_folds(self.cv, X, y, is_classifier(self), groups=groups)

    def fit(self, X, y, sample_weight=None, groups=None):
        """Cross-validate ``lam`` on one warm-started path per fold, then refit at the best.

        Validates everything first; the fitted attributes (``lam_``, ``lams_``, ``scores_``,
        ``best_estimator_`` and the refit model's own attributes) are replaced together at the
        end (a failed fit leaves the previous state intact).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels, or real targets; the regressors also take ``(n_samples, n_outputs)``.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples (as in the base estimator's ``fit``). They enter the default
            grid's ``lam_max``, every fold fit (its training rows' weights), the validation
            scores (its validation rows' weights: weighted accuracy or ``R^2``, or a scorer's
            ``sample_weight``) and the refit. Every fold needs a positive total weight on both
            sides.
        groups : array-like of shape (n_samples,), optional
            Group labels of the samples, passed to the ``cv`` splitter's ``split`` (as
            ``GridSearchCV.fit`` does), for group splitters such as ``GroupKFold``.

        Returns
        -------
        self

        Raises
        ------
        InvalidParameterError
            A fold whose training or validation rows all have weight zero, or bad weights
            (negative, all zero); :class:`~cvxnn.errors.ShapeError` and
            :class:`~cvxnn.errors.NonFiniteError` for a wrong shape or NaN.
        """
        self._check_cv_params()
        base = self._base_estimator()
        _check_params(base)
        kw = {} if _is_clf(self) else {"y_numeric": True, "multi_output": True}
        Xv, yv, extra = base._validate_fit_data(X, y, **kw)
        sw = _check_sample_weight(sample_weight, Xv.shape[0])
        _, y_enc, loss, w, extra_enc = base._encode_for_fit(Xv, yv, sw)
        if not _is_clf(self):
            yv = y_enc
        extra.update({k: v for k, v in extra_enc.items() if k == "classes_"})
        lams = self._grid(base, Xv, y_enc, loss, w)
        folds = self._folds(Xv, yv, groups)
        cv_tol = self._resolved_cv_tol(folds)
        fold_est = self._fold_estimator(base, cv_tol)
        result, kept = _cross_validate(fold_est, *_cv_arguments(fold_est, Xv, yv, lams, folds, 1, self.scoring, sw),
                                       n_jobs=self.n_jobs, verbose=0, keep_solutions=self.refit and REFIT_WARM)
        lam = result.best_lam
        fitted = dict(extra, lam_=lam, lams_=result.lams, scores_=result.scores,
                      mean_score_=result.mean_score, std_score_=result.std_score,
                      best_index_=result.best_index, statuses_=result.statuses, n_splits_=len(folds),
                      cv_tol_=max(cv_tol, base.tol) if cv_tol is not None else float(base.tol))
        if self.refit:
            base.set_params(lam=lam)
            start = _refit_start(base, Xv, y_enc, w, [k[result.best_index] for k in kept]) if REFIT_WARM else None
            # y as validated above (a column (n, 1) flattened, and its warning given once); X as
            # given, so that the refit keeps its feature names
            best = base._fit(X, yv, warm_start=start, sample_weight=sample_weight)
            fitted.update({k: v for k, v in vars(best).items() if k.endswith("_") and not k.startswith("_")})
            fitted["best_estimator_"] = best
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            del self.__dict__[name]
        self.__dict__.update(fitted)
        return self

    def _best(self):
        if not hasattr(self, "lams_"):
            raise EstimatorNotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit(X, y) first.")
        if not hasattr(self, "best_estimator_"):
            raise EstimatorNotFittedError(
                f"This {type(self).__name__} was fitted with refit=False; it has no model to predict with.")
        return self.best_estimator_

    def predict(self, X) -> np.ndarray:
        """Predictions of the model refit at ``lam_`` (``best_estimator_.predict``)."""
        return self._best().predict(X)


def _rebind_warm_start(warm: ConvexSolution, patterns: Patterns) -> ConvexSolution:
    """A warm start computed on other data with the same gates, moved onto ``patterns``.

    Its blocks are a start point only: the solvers judge every result by their own
    certificate, and the C-ReLU working set moves a point that leaves its cones on the new
    data back inside. What described the old data (multipliers, cone duals, the dual value, the
    training data, the gated working set's check state) is dropped.
    """
    names = {f.name for f in dataclasses.fields(warm)}
    fields = ("multipliers", "cone_duals", "dual_value", "training_X", "check_state")
    cleared = {k: None for k in fields if k in names}
    # a field left None is filled again from ``extra`` when the solution is built: drop those keys too
    stale = {key for k in fields for key in EXTRA_KEYS.get(k, ())}
    extra = {k: v for k, v in warm.extra.items() if k not in stale}
    return dataclasses.replace(warm, patterns=patterns, extra=extra, **cleared)


def _is_clf(est) -> bool:
    return isinstance(est, _ClassifierCVBase)


class _RegressorCVBase(_MultiOutputTags, _CheckedR2, _RegMixin, _ConvexCVBase):
    def __init__(
        self,
        lams=None,
        n_lams: int = 10,
        lam_min_ratio: float = 1e-3,
        cv=5,
        scoring=None,
        n_jobs=None,
        refit: bool = True,
        n_gates: int = 32,
        gates=None,
        backend: str = "native",
        loss="squared",
        bias: bool = True,
        tol: float = 1e-6,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
        cv_tol: float | str | None = "auto",
    ) -> None:
        self.lams = lams
        self.n_lams = n_lams
        self.lam_min_ratio = lam_min_ratio
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.refit = refit
        self.n_gates = n_gates
        self.gates = gates
        self.backend = backend
        self.loss = loss
        self.bias = bias
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose
        self.standardize = standardize
        self.warm_start = warm_start
        self.cv_tol = cv_tol


class _ClassifierCVBase(_CheckedAccuracy, _ClfMixin, _ConvexCVBase):
    def __init__(
        self,
        lams=None,
        n_lams: int = 10,
        lam_min_ratio: float = 1e-3,
        cv=5,
        scoring=None,
        n_jobs=None,
        refit: bool = True,
        n_gates: int = 32,
        gates=None,
        backend: str = "native",
        loss="logistic",
        bias: bool = True,
        tol: float = 1e-6,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
        class_weight=None,
        cv_tol: float | str | None = "auto",
    ) -> None:
        self.lams = lams
        self.n_lams = n_lams
        self.lam_min_ratio = lam_min_ratio
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.refit = refit
        self.n_gates = n_gates
        self.gates = gates
        self.backend = backend
        self.loss = loss
        self.bias = bias
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose
        self.standardize = standardize
        self.warm_start = warm_start
        self.class_weight = class_weight
        self.cv_tol = cv_tol

    def _is_probabilistic(self) -> bool:
        return _ClassifierBase._is_probabilistic(self)

    def decision_function(self, X) -> np.ndarray:
        """``best_estimator_.decision_function``."""
        return self._best().decision_function(X)

    @_available_if(lambda self: self._is_probabilistic())
    def predict_proba(self, X) -> np.ndarray:
        """``best_estimator_.predict_proba`` (logistic / cross-entropy losses)."""
        return self._best().predict_proba(X)

    @_available_if(lambda self: self._is_probabilistic())
    def predict_log_proba(self, X) -> np.ndarray:
        """``best_estimator_.predict_log_proba`` (logistic / cross-entropy losses)."""
        return self._best().predict_log_proba(X)


#: Default grid of the gated ``...CV`` estimators (benchmarks/bench_defaults.py): half-decade steps.
GATED_CV_DEFAULTS = {"n_lams": 7, "lam_min_ratio": 1e-3}
_GATED_CV_DOC = {"n_lams": GATED_CV_DEFAULTS["n_lams"], "lam_min_ratio": _sci(GATED_CV_DEFAULTS["lam_min_ratio"]),
                 "grid_note": " (half-decade steps; chosen by measurement, docs/estimators.md)",
                 "n_gates": GATED_DEFAULTS["n_gates"], "tol": _sci(GATED_DEFAULTS["tol"])}
_RELU_CV_DOC = {"n_lams": 10, "lam_min_ratio": "1e-3", "grid_note": "", "n_gates": 32, "tol": "1e-6"}

_CV_DOC = """
    Parameters
    ----------
    lams : array-like of float, optional
        The grid of ``lam`` (sorted decreasing; each ``>= 0``). Default: ``n_lams`` values from
        the exact ``lam_max`` of the (standardized) training data on this estimator's patterns
        (:func:`cvxnn.path.lam_max`) down to ``lam_min_ratio * lam_max``
        (:func:`cvxnn.path.lam_grid`).
    n_lams : int, default={n_lams}
    lam_min_ratio : float, default={lam_min_ratio}
        The default grid: ``n_lams`` values, geometric, from ``lam_max`` down to
        ``lam_min_ratio * lam_max``{grid_note}.
    cv : int, scikit-learn splitter or iterable of (train, test), default=5
        Folds, as :func:`sklearn.model_selection.check_cv` (stratified for classifiers).
    scoring : None, str or callable, default=None
        scikit-learn scoring; default the base estimator's ``score`` ({score}).
    n_jobs : int, optional
        Folds run as joblib tasks (``-1``: all cores); inside
        ``joblib.parallel_config(backend="dask")`` they run on a Dask cluster.
    refit : bool, default=True
        Refit the base estimator on all data at ``lam_`` (needed for ``predict``), certified at
        ``tol``. C-GReLU (native backend): the refit starts from the mean of the folds'
        solutions at ``lam_``, which lies much closer to its optimum than zero; so
        ``best_estimator_`` is a certified optimum, not bit for bit the cold fit of the base
        estimator (the two differ within ``tol``).
    cv_tol : "auto", float or None, default="auto"
        Relative duality-gap tolerance of the fold fits (``max(tol, cv_tol)``; None: ``tol``).
        ``"auto"``: ``5e-2`` when every validation fold holds at least 100 samples, else
        ``1e-2`` (the value used is ``cv_tol_``). A validation score needs the predictions, not a
        tight certificate: on scikit-learn's data sets and two synthetic multi-class problems the
        choice of ``lam`` was the one of fits at ``tol``, or one a validation sample (at most
        0.01 of CV score) from it, several times faster (docs/estimators.md). Pass None for
        ``GridSearchCV``'s choice exactly. The refit uses ``tol``; ``statuses_`` are judged at
        ``cv_tol_``.

    The remaining parameters are those of :class:`{base}` (its ``lam`` is chosen here), with
    the same defaults (``n_gates={n_gates}``, ``tol={tol}``).

    Attributes
    ----------
    lam_ : float
        The chosen ``lam``: best mean validation score (the largest ``lam`` among ties).
    lams_ : ndarray of shape (n_lams,)
        The grid, decreasing.
    scores_ : ndarray of shape (n_folds, n_lams)
        Validation score of each fold and ``lam``; ``mean_score_``, ``std_score_`` over folds.
    statuses_ : ndarray of str, shape (n_folds, n_lams)
        Solver status of each fold fit.
    cv_tol_ : float
        The relative-gap tolerance the fold fits ran at (``max(tol, cv_tol)``, ``cv_tol``
        resolved).
    n_splits_ : int
        Number of folds.
    best_estimator_ : {base}
        The model refit on all data at ``lam_`` (``refit=True``); ``predict`` and the other
        methods delegate to it, and its fitted attributes (``network_``, ``solution_``,
        ``objective_``, ``gap_``, ``classes_``, ...) are also attributes of this estimator.

    Notes
    -----
    Each fold runs one path from the largest ``lam`` down through :func:`cvxnn.path.walk_path`,
    every fit warm-started from the previous one on the same patterns (native backend), by
    :func:`cross_validate_lam`. With the same folds, grid and ``random_state`` the choice
    equals ``GridSearchCV(<base>(random_state=...), {{"lam": lams}}, cv=...)`` up to the solver
    tolerance.
"""


class ConvexReLURegressorCV(_RegressorCVBase):
    __doc__ = ("""Two-layer ReLU regressor (C-ReLU) with ``lam`` chosen by cross-validation.
""" + _CV_DOC.format(base="ConvexReLURegressor", score="R^2", **_RELU_CV_DOC))
    _base_cls = ConvexReLURegressor


class ConvexGatedReLURegressorCV(_RegressorCVBase):
    __doc__ = ("""Two-layer gated ReLU regressor (C-GReLU) with ``lam`` chosen by cross-validation.
""" + _CV_DOC.format(base="ConvexGatedReLURegressor", score="R^2", **_GATED_CV_DOC))
    _base_cls = ConvexGatedReLURegressor

    def __init__(
        self,
        lams=None,
        n_lams: int = 7,
        lam_min_ratio: float = 1e-3,
        cv=5,
        scoring=None,
        n_jobs=None,
        refit: bool = True,
        n_gates: int = 100,
        gates=None,
        backend: str = "native",
        loss="squared",
        bias: bool = True,
        tol: float = 1e-4,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
        cv_tol: float | str | None = "auto",
    ) -> None:
        super().__init__(lams=lams, n_lams=n_lams, lam_min_ratio=lam_min_ratio, cv=cv, scoring=scoring,
                         n_jobs=n_jobs, refit=refit, n_gates=n_gates, gates=gates, backend=backend, loss=loss,
                         bias=bias, tol=tol, max_iter=max_iter, random_state=random_state, verbose=verbose,
                         standardize=standardize, warm_start=warm_start, cv_tol=cv_tol)


class ConvexReLUClassifierCV(_ClassifierCVBase):
    __doc__ = ("""Two-layer ReLU classifier (C-ReLU) with ``lam`` chosen by cross-validation.
""" + _CV_DOC.format(base="ConvexReLUClassifier", score="accuracy",
                      **dict(_RELU_CV_DOC, n_gates=RELU_CLASSIFIER_DEFAULTS["n_gates"])))
    _base_cls = ConvexReLUClassifier

    def __init__(
        self,
        lams=None,
        n_lams: int = 10,
        lam_min_ratio: float = 1e-3,
        cv=5,
        scoring=None,
        n_jobs=None,
        refit: bool = True,
        n_gates: int = 100,
        gates=None,
        backend: str = "native",
        loss="logistic",
        bias: bool = True,
        tol: float = 1e-6,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
        class_weight=None,
        cv_tol: float | str | None = "auto",
    ) -> None:
        super().__init__(lams=lams, n_lams=n_lams, lam_min_ratio=lam_min_ratio, cv=cv, scoring=scoring,
                         n_jobs=n_jobs, refit=refit, n_gates=n_gates, gates=gates, backend=backend, loss=loss,
                         bias=bias, tol=tol, max_iter=max_iter, random_state=random_state, verbose=verbose,
                         standardize=standardize, warm_start=warm_start, class_weight=class_weight,
                         cv_tol=cv_tol)


class ConvexGatedReLUClassifierCV(_ClassifierCVBase):
    __doc__ = ("""Two-layer gated ReLU classifier (C-GReLU) with ``lam`` chosen by cross-validation.
""" + _CV_DOC.format(base="ConvexGatedReLUClassifier", score="accuracy", **_GATED_CV_DOC))
    _base_cls = ConvexGatedReLUClassifier

    def __init__(
        self,
        lams=None,
        n_lams: int = 7,
        lam_min_ratio: float = 1e-3,
        cv=5,
        scoring=None,
        n_jobs=None,
        refit: bool = True,
        n_gates: int = 100,
        gates=None,
        backend: str = "native",
        loss="logistic",
        bias: bool = True,
        tol: float = 1e-4,
        max_iter: int = 10_000,
        random_state=None,
        verbose: bool | int = False,
        standardize: bool = True,
        warm_start: bool = False,
        class_weight=None,
        cv_tol: float | str | None = "auto",
    ) -> None:
        super().__init__(lams=lams, n_lams=n_lams, lam_min_ratio=lam_min_ratio, cv=cv, scoring=scoring,
                         n_jobs=n_jobs, refit=refit, n_gates=n_gates, gates=gates, backend=backend, loss=loss,
                         bias=bias, tol=tol, max_iter=max_iter, random_state=random_state, verbose=verbose,
                         standardize=standardize, warm_start=warm_start, class_weight=class_weight,
                         cv_tol=cv_tol)
