"""Generic discounted optimal control by direct collocation (CasADi + IPOPT).

Knows nothing about learning or torch. Public API::

    problem = ocp.DiscountedOCP(dim, loss, gamma, eta, k, metric=None, drift=None)
    traj = ocp.solve(problem, theta0, horizon=math.inf)
    best = ocp.solve_global(problem, theta0)    # the lowest objective among the basins
    ocp.solve_lq(A, H, mu, G, gamma, eta, k)    # the discounted LQ optimum in closed form
    ocp.RecedingHorizonController(problem, plan_horizon, dt).run(theta0, steps)    # MPC
    ocp.TrustRegionPlanner(...)                 # a finite plan with |θ(t) − θ0| ≤ ρ
    ocp.receding_windows(problem, theta0, duration)   # the optimal path as finite windows

Every solve takes ``time_limit=`` (:mod:`ocp.budget`); Ctrl-C raises KeyboardInterrupt from any
stage. The stages (docs/engine.md opens with the map): :mod:`ocp.nlp` (the one NLP and the
one-window primitive), :mod:`ocp.horizons` (the strategies around it), :mod:`ocp.control`
(receding horizon, trust region, multistart), :mod:`ocp.results` (Trajectory, checks, files).
"""
from .control.multistart import loss_minima, solve_global
from .control.receding import RecedingHorizonController, receding_windows
from .control.trust_region import TrustRegionPlanner
from .errors import (
                     FileFormatError,
                     OCPError,
                     OutputPathError,
                     ProblemError,
                     SolveError,
                     TerminalConstraintError,
)
from .external_loss import ExternalLoss
from .horizons.lq import LQSolution, solve_lq
from .nlp.mesh import Mesh
from .problem import DiscountedOCP
from .results.path import from_path
from .results.trajectory import Trajectory
from .results.verification import euler_lagrange_error, euler_lagrange_residual, mesh_convergence
from .solver import solve

__all__ = ["DiscountedOCP", "ExternalLoss", "FileFormatError", "Mesh", "OCPError", "OutputPathError",
           "ProblemError", "RecedingHorizonController", "SolveError", "TerminalConstraintError",
           "Trajectory",
           "TrustRegionPlanner", "euler_lagrange_error", "euler_lagrange_residual", "from_path",
           "loss_minima", "mesh_convergence", "receding_windows", "solve", "solve_global", "solve_lq",
           "LQSolution"]
