"""Generic discounted optimal control by direct collocation (CasADi + IPOPT).

Knows nothing about learning or torch. Public API::

    problem = ocp.DiscountedOCP(dim, loss, gamma, eta, k, metric=None, drift=None)
    traj = ocp.solve(problem, theta0, horizon=math.inf)
    best = ocp.solve_global(problem, theta0)    # the lowest objective among the basins (ocp/multistart.py)
    ocp.solve_lq(A, H, mu, G, gamma, eta, k)    # the discounted LQ optimum in closed form (ocp/lq.py)
    ocp.RecedingHorizonController(problem, plan_horizon, dt).run(theta0, steps)    # MPC
    ocp.TrustRegionPlanner(...)          # a finite plan with |θ(t) − θ0| ≤ ρ (ocp/constraints.py)
    ocp.receding_windows(problem, theta0, duration)   # the optimal path as finite windows (ocp/receding.py)

Every solve takes ``time_limit=`` (ocp/budget.py); Ctrl-C raises KeyboardInterrupt from any stage.
"""
from .constraints import TrustRegionPlanner
from .errors import (
                     FileFormatError,
                     OCPError,
                     OutputPathError,
                     ProblemError,
                     SolveError,
                     TerminalConstraintError,
)
from .lq import LQSolution, solve_lq
from .multistart import loss_minima, solve_global
from .path import from_path
from .problem import DiscountedOCP
from .receding import RecedingHorizonController, receding_windows
from .solver import solve
from .trajectory import Trajectory
from .transcription import Mesh
from .verification import euler_lagrange_error, euler_lagrange_residual, mesh_convergence

__all__ = ["DiscountedOCP", "FileFormatError", "Mesh", "OCPError", "OutputPathError", "ProblemError",
           "RecedingHorizonController", "SolveError",
           "TerminalConstraintError", "Trajectory", "TrustRegionPlanner", "euler_lagrange_error",
           "euler_lagrange_residual", "from_path", "loss_minima", "mesh_convergence", "receding_windows", "solve", "solve_global",
           "solve_lq", "LQSolution"]
