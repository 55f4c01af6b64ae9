"""cvxnn: two-layer neural networks trained by convex optimization.

The weight-decay training problem of a two-layer ReLU network has an exact convex
reformulation, a group lasso over activation patterns with polyhedral cone constraints.
cvxnn builds it as a CVXPY problem, solves it with interior-point, first-order or native
solvers, and maps solutions to ordinary networks and back, exactly.
"""

from .backends.registry import solve, solver_names
from .builders import ConvexProgram, build_program
from .conv import ConvNetwork, build_conv_program, extract_patches, network_to_conv
from .decomposition import decompose
from .errors import CvxnnError
from .estimators import (
    ConvexGatedReLUClassifier,
    ConvexGatedReLUClassifierCV,
    ConvexGatedReLURegressor,
    ConvexGatedReLURegressorCV,
    ConvexReLUClassifier,
    ConvexReLUClassifierCV,
    ConvexReLURegressor,
    ConvexReLURegressorCV,
)
from .feature_penalties import FeatureGroupL2, SparseGroupL2
from .feature_sparsity import FeaturePath, feature_lam_max, feature_path, solve_feature_sparse
from .losses import get_loss
from .maps import gated_network_to_convex, relu_network_to_convex, to_network
from .native import duality_gap, lam_max_gated, min_norm_subgradient, solve_native
from .networks import GatedReLUNetwork, ReLUNetwork
from .optimality import kkt_report, optimal_set, prune_exact
from .path import lam_max, regularization_path, walk_path
from .patterns import Patterns, enumerate_patterns, sample_patterns
from .polynomial import PolynomialNetwork, build_polynomial_program, build_quadratic_program, rank_one_decomposition
from .preprocessing import Standardizer
from .solution import ConvexModel, ConvexSolution

__version__ = "0.1.0"

__all__ = [
    "ConvexGatedReLUClassifier",
    "ConvexGatedReLURegressor",
    "ConvexReLUClassifier",
    "ConvexReLURegressor",
    "ConvexGatedReLUClassifierCV",
    "ConvexGatedReLURegressorCV",
    "ConvexReLUClassifierCV",
    "ConvexReLURegressorCV",
    "Standardizer",
    "decompose",
    "duality_gap",
    "kkt_report",
    "lam_max",
    "lam_max_gated",
    "min_norm_subgradient",
    "optimal_set",
    "prune_exact",
    "regularization_path",
    "solve_native",
    "ConvexModel",
    "ConvexProgram",
    "ConvexSolution",
    "CvxnnError",
    "GatedReLUNetwork",
    "Patterns",
    "ReLUNetwork",
    "build_program",
    "enumerate_patterns",
    "gated_network_to_convex",
    "get_loss",
    "relu_network_to_convex",
    "sample_patterns",
    "solve",
    "solver_names",
    "to_network",
    "walk_path",
    "FeatureGroupL2",
    "SparseGroupL2",
    "FeaturePath",
    "feature_lam_max",
    "feature_path",
    "solve_feature_sparse",
    "PolynomialNetwork",
    "build_polynomial_program",
    "build_quadratic_program",
    "rank_one_decomposition",
    "ConvNetwork",
    "build_conv_program",
    "extract_patches",
    "network_to_conv",
]
