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
program (MATH.md, "Convex programs") with the native solvers (``backend="native"``) or a
CVXPY solver (``backend="clarabel"``, ``"scs"``, any installed CVXPY solver name), and maps
the solution to an ordinary network by the exact maps, stored in ``network_``.

Objective convention (MATH.md): losses are sums over samples (squared loss ``1/2 ||.||^2``)
and the convex program carries ``lam * sum_i ||theta_i||``, which equals weight decay
``lam/2 * sum_j (||W1_j||^2 + b1_j^2 + w2_j^2)`` on the network. The bias (``bias=True``) is
a column of ones appended to ``X`` and is penalised with its neuron. A mean loss is the
documented option ``loss=SquaredLoss(reduction="mean")`` (any :class:`~cvxnn.losses.Loss`
instance is accepted).

scikit-learn is optional: without it the estimators still work (``fit``, ``predict``,
``score``, ``get_params``, ``set_params``); with it they are genuine scikit-learn estimators
(``BaseEstimator`` subclasses) that pass ``check_estimator`` and work in ``Pipeline`` and
``GridSearchCV``. :func:`cross_validate_lam` cross-validates a grid of ``lam`` with folds x
``lam`` segments as independent joblib tasks, so switching joblib's backend (Dask, Ray)
distributes it.
"""

from __future__ import annotations

import inspect
import logging
import numbers
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.special import expit, softmax

from ._validation import as_generator, check_lam, check_positive_int, check_X, check_y
from .errors import (
    ConvergenceWarning,
    CvxnnError,
    InaccurateSolutionWarning,
    InputError,
    InvalidParameterError,
    LabelError,
    NotFittedError,
    ShapeError,
)
from .losses import Loss, get_loss
from .patterns import Patterns, sample_patterns
from .solution import ConvexSolution

__all__ = [
    "ConvexReLURegressor",
    "ConvexReLUClassifier",
    "ConvexGatedReLURegressor",
    "ConvexGatedReLUClassifier",
    "cross_validate_lam",
    "LamCVResult",
    "solve_convex",
    "NETWORK_TOL",
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

    _HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    _HAVE_SKLEARN = False


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

    def score(self, X, y) -> float:
        """Coefficient of determination ``R^2`` of ``predict(X)``."""
        y = np.asarray(y, dtype=float)
        resid = np.sum((y - self.predict(X)) ** 2)
        total = np.sum((y - y.mean(axis=0)) ** 2)
        return float(1.0 - resid / total) if total > 0 else (1.0 if resid == 0 else 0.0)


class _FallbackClassifierMixin:
    _estimator_type = "classifier"

    def score(self, X, y) -> float:
        """Mean accuracy of ``predict(X)``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


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
#: Iteration-limit option name of common CVXPY solvers (``max_iter`` is passed through).
_CVXPY_ITER_OPTION = {"CLARABEL": "max_iter", "SCS": "max_iters", "ECOS": "max_iters",
                      "OSQP": "max_iter", "PIQP": "max_iter"}


def _resolve_backend(backend) -> str:
    """``"native"`` or an installed CVXPY solver name (upper case)."""
    if not isinstance(backend, str) or not backend:
        raise InvalidParameterError(
            f"backend must be 'native' or a CVXPY solver name such as 'clarabel', got {backend!r}."
        )
    if backend.lower() == "native":
        return "native"
    import cvxpy as cp

    name = backend.upper()
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
        :attr:`ConvexSolution.converged`).
    """
    name = _resolve_backend(backend)
    if name == "native":
        from .native import solve_native

        return solve_native(X, y, patterns, activation=activation, loss=loss, lam=lam, tol=tol,
                            max_iter=max_iter, warm_start=warm_start, verbose=bool(verbose),
                            callback=callback)
    from .builders import build_program

    program = build_program(X, y, activation=activation, loss=loss, lam=lam, patterns=patterns)
    opts: dict[str, Any] = {"verbose": bool(verbose)}
    if name in _CVXPY_ITER_OPTION:
        opts[_CVXPY_ITER_OPTION[name]] = int(max_iter)
    return program.solve(name, **opts)


def _call_solver(est, X, y, patterns, loss, warm_start, callback=None) -> ConvexSolution:
    """Solve for an estimator; emit one warning (with the estimator's name) if not converged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve_convex(X, y, patterns, activation=est._activation, loss=loss, lam=float(est.lam),
                           backend=est.backend, tol=float(est.tol), max_iter=int(est.max_iter),
                           verbose=est.verbose, warm_start=warm_start, callback=callback)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            continue  # replaced by the single warning below
        warnings.warn(w.message, w.category, stacklevel=5)
    if not sol.converged:
        category = InaccurateSolutionWarning if sol.status == "optimal_inaccurate" else ConvergenceWarning
        gap = "n/a" if sol.gap is None else f"{sol.gap:.3g}"
        warnings.warn(
            f"{type(est).__name__}: the {sol.solver} solve ended with status {sol.status!r} "
            f"(gap {gap}, {sol.iterations} iterations); the fitted network is not certified "
            "optimal. Raise max_iter, loosen tol, or try backend='clarabel'.",
            category,
            stacklevel=5,  # _call_solver < _fit_encoded < _fit < fit < caller
        )
    return sol


# ------------------------------------------------------------------------------------------
# Estimators
# ------------------------------------------------------------------------------------------
def _check_params(est) -> None:
    check_lam(est.lam, name="lam")
    check_positive_int(est.n_gates, "n_gates")
    check_positive_int(est.max_iter, "max_iter")
    if isinstance(est.tol, bool) or not isinstance(est.tol, numbers.Real) or not (
        np.isfinite(est.tol) and est.tol > 0
    ):
        raise InvalidParameterError(f"tol must be a positive finite number, got {est.tol!r}.")
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
        raise ShapeError(
            f"gates must have shape ({d + int(bias)}, p) (or ({d}, p) with bias=True) for X "
            f"with {d} features; got {np.shape(est.gates)}."
        )
    return Patterns.from_gates(X, G, bias=bias, unique=True, drop_zero=True)


def _certified_gap(sol: ConvexSolution, X: np.ndarray, y: np.ndarray, lam: float, loss: Loss) -> float | None:
    """Absolute duality gap certifying ``sol`` (an upper bound on ``objective - p*``).

    The native solvers report one. For CVXPY solutions it is computed by
    :func:`cvxnn.native.duality_gap` from the point and the solver's cone multipliers
    (``sol.extra["cone_duals"]``); it needs a smooth loss with a conjugate and ``lam > 0``,
    otherwise ``None`` (no certificate) is returned.
    """
    if sol.gap is not None:
        return float(sol.gap)
    if lam <= 0 or not loss.smooth:
        return None
    from .errors import CvxnnError
    from .native import duality_gap

    multipliers = None
    if sol.activation == "relu":
        duals = sol.extra.get("cone_duals")
        if duals is None:
            return None
        multipliers = np.concatenate([np.asarray(d, dtype=float) for d in duals], axis=1)
    try:
        cert = duality_gap(X, y, sol, lam, loss, multipliers=multipliers)
    except (CvxnnError, ValueError) as exc:  # e.g. a loss without a conjugate
        logger.debug("no duality gap for this solution: %s", exc)
        return None
    return float(max(cert.gap, 0.0)) if np.isfinite(cert.gap) else None


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


class _ConvexNetworkBase(_Base):
    """Shared implementation of the four estimators (not public)."""

    _activation = "relu"

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

    # ---------------------------------------------------------------- validation
    def _validate_X(self, X, *, reset: bool, y=_NO_Y, **kw):
        """Validate with scikit-learn's ``validate_data`` when available (sets
        ``n_features_in_`` / ``feature_names_in_``), else with :func:`cvxnn._validation.check_X`."""
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
            except ValueError as exc:  # scikit-learn's checks: keep the message, typed as an input error
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

    def _check_fitted(self) -> None:
        if not hasattr(self, "solution_"):
            raise EstimatorNotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit(X, y) first."
            )

    # ----------------------------------------------------------------- fitting
    def _fit_encoded(self, X: np.ndarray, y_enc: np.ndarray, loss: Loss, *, warm_start=None,
                     callback=None):
        """Sample patterns, solve, map to a network, and set the fitted attributes."""
        _check_params(self)
        patterns = _make_patterns(self, X)
        if warm_start is not None and (
            warm_start.patterns.n_patterns != patterns.n_patterns
            or not np.array_equal(warm_start.patterns.gates, patterns.gates)
        ):
            warm_start = None
        t0 = time.perf_counter()
        sol = _call_solver(self, X, y_enc, patterns, loss, warm_start, callback)
        self.fit_time_ = time.perf_counter() - t0
        self.solution_ = sol
        self.patterns_ = patterns
        self.network_ = sol.to_network(tol=_network_tol(sol, X, y_enc))
        self.objective_ = float(sol.objective_value)
        self.gap_ = _certified_gap(sol, X, y_enc, float(self.lam), loss)
        self.status_ = sol.status
        self.n_active_neurons_ = int(self.network_.n_neurons)
        self.n_iter_ = sol.iterations
        logger.info("%s: status %s, objective %.6g, %d neurons, %.3fs", type(self).__name__,
                    sol.status, self.objective_, self.n_active_neurons_, self.fit_time_)
        return self

    def _raw_output(self, X) -> np.ndarray:
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return self.network_.predict(X)


class _RegressorBase(_RegMixin, _ConvexNetworkBase):
    def _loss(self) -> Loss:
        loss = get_loss(self.loss)
        if loss.classification:
            raise InvalidParameterError(
                f"{type(self).__name__} needs a regression loss ('squared', 'huber', 'absolute'), "
                f"got {loss.name!r}; use {type(self).__name__.replace('Regressor', 'Classifier')} "
                "for classification."
            )
        return loss

    def fit(self, X, y):
        """Fit the convex program on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Real targets.

        Returns
        -------
        self
        """
        return self._fit(X, y)

    def _fit(self, X, y, warm_start: ConvexSolution | None = None, callback=None):
        X, y = self._validate_X(X, reset=True, y=y, y_numeric=True)
        y = check_y(y, X.shape[0], allow_matrix=False)
        return self._fit_encoded(X, y, self._loss(), warm_start=warm_start, callback=callback)

    def predict(self, X) -> np.ndarray:
        """Predictions of the fitted network ``network_`` (shape ``(n_samples,)``)."""
        return self._raw_output(X)


class _ClassifierBase(_ClfMixin, _ConvexNetworkBase):
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
    ) -> None:
        super().__init__(lam=lam, n_gates=n_gates, gates=gates, backend=backend, loss=loss,
                         bias=bias, tol=tol, max_iter=max_iter, random_state=random_state,
                         verbose=verbose)

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
        if n_classes > 2 and loss.name in ("logistic", "hinge"):
            raise InvalidParameterError(
                f"the {loss.name} loss is binary; with {n_classes} classes use 'logistic' "
                "(multinomial cross-entropy) or 'squared' (one-hot targets)."
            )
        if n_classes == 2 and loss.name == "cross_entropy":
            loss = get_loss("logistic", reduction=loss.reduction)
        return loss

    def _is_probabilistic(self) -> bool:
        name = self.loss.name if isinstance(self.loss, Loss) else self.loss
        return name in ("logistic", "cross_entropy")

    def fit(self, X, y):
        """Fit the convex program on ``(X, y)`` with class labels ``y``.

        Two classes are encoded as ``-1 / +1`` (``classes_[0] -> -1``); more classes as
        one-hot rows of a vector-output program.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (any hashable, sortable values).

        Returns
        -------
        self
        """
        return self._fit(X, y)

    def _fit(self, X, y, warm_start: ConvexSolution | None = None, callback=None):
        X, y = self._validate_X(X, reset=True, y=y)
        y = np.asarray(y)
        if _HAVE_SKLEARN:
            from sklearn.utils.multiclass import check_classification_targets

            check_classification_targets(y)
        elif y.ndim != 1:
            raise ShapeError(f"y must be a 1-D array of labels, got shape {y.shape}.")
        classes, inverse = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise LabelError(
                f"{type(self).__name__} needs samples of at least 2 classes; got 1 class "
                f"({classes[0]!r})."
            )
        self.classes_ = classes
        loss = self._loss_for(classes.size)
        if classes.size == 2:
            y_enc = np.where(inverse == 1, 1.0, -1.0)
        else:
            y_enc = np.eye(classes.size)[inverse]
        return self._fit_encoded(X, y_enc, loss, warm_start=warm_start, callback=callback)

    def decision_function(self, X) -> np.ndarray:
        """Network outputs: ``(n_samples,)`` for two classes (positive means ``classes_[1]``),
        ``(n_samples, n_classes)`` otherwise."""
        return self._raw_output(X)

    def predict(self, X) -> np.ndarray:
        """Predicted class labels."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

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
    lam : float, default=0.1
        Regularisation strength ``lam >= 0`` of ``lam * sum_i ||theta_i||`` (equivalently,
        weight decay ``lam/2`` on the network). Losses are summed over samples, so a good
        ``lam`` grows with ``n``; cross-validate it (``GridSearchCV`` or
        :func:`cross_validate_lam`).
    n_gates : int, default=32
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
    tol : float, default=1e-6
        Relative tolerance of the native solvers (duality gap / optimality residual).
    max_iter : int, default=10000
        Iteration limit of the solver.
    random_state : None, int or numpy Generator, default=None
        Seed of the gate sampling (same seed, same data: bit-identical patterns).
    verbose : bool or int, default=False
        Print solver progress.

    Attributes
    ----------
    network_ : {network_type}
        The fitted non-convex network (exact image of the convex solution).
    patterns_ : Patterns
        Activation patterns used (gates and training mask).
    objective_ : float
        Convex objective at the solution, in the MATH.md convention, on the training data
        as the solver saw it (labels encoded as ``+-1`` / one-hot for classifiers).
    gap_ : float or None
        Certified absolute duality gap, an upper bound on ``objective_ - p*``: the native
        solver's, or for CVXPY backends computed from the solution and the solver's cone
        multipliers (smooth losses, ``lam > 0``); None where no certificate is available.
    status_ : str
        Solver status (``"optimal"``, ``"optimal_inaccurate"``, ``"max_iterations"``, ...).
    n_active_neurons_ : int
        Neurons of ``network_`` (nonzero blocks, or nonzero singular values for vector output).
    solution_ : ConvexSolution
        The full solver result (weights, status, timings).
    n_iter_ : int or None
        Solver iterations.
    fit_time_ : float
        Seconds spent in the solver call.
    n_features_in_ : int
        Number of features seen in ``fit``.
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
        + _PARAMS_DOC.format(loss_default="squared", loss_doc=_REG_LOSS_DOC, network_type="ReLUNetwork")
    )
    _activation = "relu"


class ConvexGatedReLURegressor(_RegressorBase):
    __doc__ = (
        """Two-layer gated ReLU network for regression, trained by the convex C-GReLU program.

    Solves the group lasso ``min L(sum_i D_i X u_i, y) + lam sum_i ||u_i||``; the fitted
    network uses the sampled gates ``g_i`` for its activations on new data.
"""
        + _PARAMS_DOC.format(loss_default="squared", loss_doc=_REG_LOSS_DOC,
                             network_type="GatedReLUNetwork")
    )
    _activation = "gated_relu"


class ConvexReLUClassifier(_ClassifierBase):
    __doc__ = (
        """Two-layer ReLU network classifier (binary and multi-class), trained by C-ReLU.

    Two classes: scalar output on ``+-1`` labels; more classes: vector output on one-hot
    targets (nuclear-norm program, :mod:`cvxnn.vector`).
"""
        + _PARAMS_DOC.format(loss_default="logistic", loss_doc=_CLF_LOSS_DOC, network_type="ReLUNetwork")
        + """    classes_ : ndarray
        Class labels in sorted order.
"""
    )
    _activation = "relu"


class ConvexGatedReLUClassifier(_ClassifierBase):
    __doc__ = (
        """Two-layer gated ReLU network classifier (binary and multi-class), trained by C-GReLU.
"""
        + _PARAMS_DOC.format(loss_default="logistic", loss_doc=_CLF_LOSS_DOC,
                             network_type="GatedReLUNetwork")
        + """    classes_ : ndarray
        Class labels in sorted order.
"""
    )
    _activation = "gated_relu"


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


def _cv_segment(estimator, X, y, train, test, lams):
    """Fit ``estimator`` for each ``lam`` of one segment on one fold (warm-started in
    decreasing ``lam`` on the native backend). Returns scores and statuses."""
    from sklearn.base import clone

    order = np.argsort(-np.asarray(lams))
    scores = np.empty(len(lams))
    statuses = np.empty(len(lams), dtype=object)
    prev = None
    est = clone(estimator)
    for k in order:
        est.set_params(lam=float(lams[k]))
        Xtr, ytr = X[train], y[train]
        est._fit(Xtr, ytr, warm_start=prev if est.backend == "native" else None)
        prev = est.solution_
        scores[k] = est.score(X[test], y[test])
        statuses[k] = est.status_
    return scores, statuses


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
        The grid (any order; each value ``>= 0``).
    cv : int or scikit-learn splitter, default=5
        Folds (stratified for classifiers, as :func:`sklearn.model_selection.check_cv`).
    n_jobs : int, optional
        Parallel tasks (``-1``: all cores).
    n_segments : int, default=1
        Segments of the grid (more segments: more parallelism, fewer warm starts).
    verbose : int
        joblib verbosity.

    Returns
    -------
    LamCVResult
    """
    try:
        from joblib import Parallel, delayed
        from sklearn.base import is_classifier
        from sklearn.model_selection import check_cv
    except ImportError as exc:  # pragma: no cover
        raise ImportError("cross_validate_lam needs scikit-learn and joblib: "
                          "pip install 'cvxnn[sklearn]'") from exc
    if not isinstance(estimator, _ConvexNetworkBase):
        raise InvalidParameterError(f"estimator must be a cvxnn estimator, got {type(estimator).__name__}.")
    lams = np.asarray(lams, dtype=float).ravel()
    if lams.size == 0:
        raise InvalidParameterError("lams is empty; pass at least one value.")
    for lam in lams:
        check_lam(lam)
    n_segments = check_positive_int(n_segments, "n_segments")
    X = check_X(X)
    y = np.asarray(y)
    if y.shape[0] != X.shape[0]:
        raise ShapeError(f"y has {y.shape[0]} rows but X has {X.shape[0]} samples.")
    splitter = check_cv(cv, y, classifier=is_classifier(estimator))
    folds = list(splitter.split(X, y))
    segments = [s for s in np.array_split(np.arange(lams.size), min(n_segments, lams.size)) if s.size]
    tasks = [(f, seg) for f in range(len(folds)) for seg in segments]
    out = Parallel(n_jobs=n_jobs, verbose=verbose)(
        delayed(_cv_segment)(estimator, X, y, folds[f][0], folds[f][1], lams[seg]) for f, seg in tasks
    )
    scores = np.empty((len(folds), lams.size))
    statuses = np.empty((len(folds), lams.size), dtype=object)
    for (f, seg), (sc, st) in zip(tasks, out, strict=True):
        scores[f, seg] = sc
        statuses[f, seg] = st
    return LamCVResult(lams=lams, scores=scores, statuses=statuses.astype(str))
