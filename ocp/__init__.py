"""Generic discounted optimal control by direct collocation (CasADi + IPOPT).

Knows nothing about learning or torch. Public API::

    problem = ocp.DiscountedOCP(dim, loss, gamma, eta, k, metric=None, drift=None)
    traj = ocp.solve(problem, theta0, horizon=math.inf)
    ocp.RecedingHorizonController(problem, plan_horizon, dt).run(theta0, steps)    # MPC
    ocp.TrustRegionPlanner(...)          # a finite plan with |θ(t) − θ0| ≤ ρ (ocp/constraints.py)
"""
from .constraints import TrustRegionPlanner
from .errors import (FileFormatError, OCPError, OutputPathError, ProblemError, SolveError,
                     TerminalConstraintError)
from .path import from_path
from .problem import DiscountedOCP
from .receding import RecedingHorizonController
from .solver import solve
from .trajectory import Trajectory
from .transcription import Mesh
from .verification import euler_lagrange_error, euler_lagrange_residual, mesh_convergence

__all__ = ["DiscountedOCP", "FileFormatError", "Mesh", "OCPError", "OutputPathError", "ProblemError",
           "RecedingHorizonController", "SolveError",
           "TerminalConstraintError", "Trajectory", "TrustRegionPlanner", "euler_lagrange_error",
           "euler_lagrange_residual", "from_path", "mesh_convergence", "solve"]
