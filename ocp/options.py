"""The options of one :func:`ocp.solve`, checked once into one object.

:func:`ocp.solve` takes its keyword arguments from the user, checks every one here
(:meth:`SolveOptions.checked`) and hands the resulting object to the private pipeline
(:mod:`ocp.horizons.pipeline`). The layers of the pipeline derive what they need from it with
:meth:`SolveOptions.replace` (a finer mesh, a Trajectory as the guess, refinement switched off)
and never check a value again.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .budget import Deadline
from .checks import count, number
from .errors import ProblemError, TerminalConstraintError
from .matrix_free.newton import NewtonSettings
from .nlp.guesses import guess_list
from .nlp.mesh import Mesh
from .problem import DiscountedOCP

SOLVERS = ("auto", "collocation", "matrix_free")
MATRIX_FREE_DIMENSION = 2000
"""``solver="auto"`` solves a CasADi-written loss with more parameters than this matrix-free (when
the problem qualifies: f = 0, a constant metric, no state beyond θ); above every catalogue
problem (at most 1,000 parameters), where the collocation NLP's dense coupled blocks stop paying."""


@dataclasses.dataclass(frozen=True)
class SolveOptions:
    """Everything one solve needs besides the problem and θ0 (the arguments of :func:`ocp.solve`).

    horizon    : T > 0, or ``math.inf``.
    terminal   : the fixed end θ(T) (finite horizons), or None for a free end.
    mesh       : the collocation :class:`Mesh` (on the infinite horizon: of the first window).
    time_scale : c of the infinite map t = c·s/(1 − s), or None for the default at θ0.
    guesses    : the initial guesses, each solved (None: θ0 held, or the line to θ(T)).
    ipopt      : IPOPT options over :data:`ocp.nlp.mesh.IPOPT_DEFAULTS`.
    rest_tol   : the infinite path is followed until |θ̇| ≤ rest_tol · max|θ̇|.
    t0         : the problem's clock at the start.
    deadline   : the wall-clock budget (:class:`ocp.budget.Deadline`), shared by every stage.
    mesh_tol   : the mesh-refinement tolerance; None: the default check; ``math.inf``: none.
    solver     : "auto", "collocation" (CasADi + IPOPT) or "matrix_free" (:mod:`ocp.matrix_free`).
    matrix_free: the matrix-free solver's :class:`ocp.matrix_free.NewtonSettings`.
    """

    horizon: float = math.inf
    terminal: np.ndarray | None = None
    mesh: Mesh = Mesh()
    time_scale: float | None = None
    guesses: tuple = (None,)
    ipopt: dict = dataclasses.field(default_factory=dict)
    rest_tol: float = 1e-10
    t0: float = 0.0
    deadline: Deadline = dataclasses.field(default_factory=Deadline)
    mesh_tol: float | None = None
    solver: str = "auto"
    matrix_free: NewtonSettings = NewtonSettings()

    @property
    def infinite(self) -> bool:
        return math.isinf(self.horizon)

    def replace(self, **changes) -> SolveOptions:
        """A copy with ``changes`` (values already checked: the pipeline's own derivations)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def checked(cls, problem, horizon=math.inf, terminal=None, mesh=None, time_scale=None, guess=None,
                ipopt=None, rest_tol=1e-10, t0=0.0, time_limit=None, mesh_tol=None, solver="auto",
                matrix_free=None) -> SolveOptions:
        """The options of :func:`ocp.solve` checked against ``problem``; ProblemError (or
        TerminalConstraintError for the end state) naming the first bad one."""
        horizon = number("horizon", horizon, positive=True, allow_inf=True)
        if mesh is not None and not isinstance(mesh, Mesh):
            raise ProblemError(f"mesh must be an ocp.Mesh, got {type(mesh).__name__}")
        if ipopt is not None and not isinstance(ipopt, dict):
            raise ProblemError(f"ipopt must be a dict of IPOPT options, got {type(ipopt).__name__}")
        return cls(horizon=horizon,
                   terminal=_checked_terminal(problem, terminal, math.isinf(horizon)),
                   mesh=mesh or Mesh(),
                   time_scale=None if time_scale is None else number("time_scale", time_scale, positive=True),
                   guesses=tuple(guess_list(guess, None)),
                   ipopt=dict(ipopt or {}),
                   rest_tol=number("rest_tol", rest_tol, positive=True),
                   t0=number("t0", t0),
                   deadline=time_limit if isinstance(time_limit, Deadline) else Deadline(time_limit),
                   mesh_tol=None if mesh_tol is None else number("mesh_tol", mesh_tol, positive=True,
                                                                  allow_inf=True),
                   solver=_checked_solver(problem, solver),
                   matrix_free=_checked_newton_settings(matrix_free))


def _checked_solver(problem, solver):
    if solver not in SOLVERS:
        raise ProblemError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    external = getattr(problem, "external", False)
    if solver == "collocation" and external:
        raise ProblemError(f"loss {problem.loss.name!r} is an ExternalLoss, evaluated outside CasADi: "
                           "the collocation NLP cannot call it; use solver='matrix_free' (or 'auto')")
    if solver == "matrix_free" and not external and not matrix_free_qualifies(problem):
        raise ProblemError("solver='matrix_free' needs f = 0, a constant metric and no state beyond theta "
                           f"({type(problem).__name__} {problem.name!r} has a drift, a metric function, "
                           "extra state or its own running cost)")
    return solver


def matrix_free_qualifies(problem) -> bool:
    """A CasADi-written DiscountedOCP the matrix-free solver can take: f = 0, G constant, the state
    θ alone and the base class's cost (a subclass may add beliefs or time dependence)."""
    cls = type(problem)
    return (problem.drift is None and problem.metric_function is None and problem.state_dim == problem.dim
            and cls.running_cost is DiscountedOCP.running_cost and cls.loss_value is DiscountedOCP.loss_value)


def _checked_newton_settings(settings):
    if settings is None:
        return NewtonSettings()
    if isinstance(settings, NewtonSettings):
        return settings
    if not isinstance(settings, dict):
        raise ProblemError(f"matrix_free must be a dict of settings, got {type(settings).__name__}")
    fields = {field.name for field in dataclasses.fields(NewtonSettings)}
    unknown = set(settings) - fields
    if unknown:
        raise ProblemError(f"unknown matrix_free settings {sorted(unknown)}; valid: {sorted(fields)}")
    checked = {}
    for key, value in settings.items():
        if key in ("max_newton", "max_cg", "intervals", "degree", "refinements"):
            if value is None and key in ("intervals", "degree"):
                continue
            checked[key] = count(key, value, minimum=0 if key == "refinements" else 1)
        else:
            checked[key] = number(key, value, positive=True)
    if checked.get("degree", 2) < 2:
        raise ProblemError("matrix_free degree must be at least 2")
    return NewtonSettings(**checked)


def _checked_terminal(problem, terminal, infinite):
    if terminal is None:
        return None
    if infinite:
        raise TerminalConstraintError("a terminal state needs a finite horizon")
    try:
        terminal = np.asarray(terminal, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise TerminalConstraintError("terminal must be a vector of numbers") from None
    if terminal.shape != (problem.state_dim,):
        raise TerminalConstraintError(
            f"terminal must have length {problem.state_dim}, got {terminal.shape[0]}")
    if not np.all(np.isfinite(terminal)):
        raise TerminalConstraintError("terminal must be finite")
    return terminal
