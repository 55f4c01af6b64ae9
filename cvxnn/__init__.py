"""cvxnn: two-layer neural networks trained by convex optimization.

The weight-decay training problem of a two-layer ReLU network has an exact convex
reformulation, a group lasso over activation patterns with polyhedral cone constraints.
cvxnn builds it as a CVXPY problem, solves it with interior-point, first-order or native
solvers, and maps solutions to ordinary networks and back, exactly.
"""

from .builders import ConvexProgram, build_program
from .errors import CvxnnError
from .losses import get_loss
from .maps import gated_network_to_convex, relu_network_to_convex, to_network
from .networks import GatedReLUNetwork, ReLUNetwork
from .patterns import Patterns, enumerate_patterns, sample_patterns
from .solution import ConvexModel, ConvexSolution

__version__ = "0.1.0"

__all__ = [
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
    "to_network",
]
