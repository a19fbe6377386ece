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
from .checks import number
from .errors import ProblemError, TerminalConstraintError
from .nlp.guesses import guess_list
from .nlp.mesh import Mesh


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

    @property
    def infinite(self) -> bool:
        return math.isinf(self.horizon)

    def replace(self, **changes) -> SolveOptions:
        """A copy with ``changes`` (values already checked: the pipeline's own derivations)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def checked(cls, problem, horizon=math.inf, terminal=None, mesh=None, time_scale=None, guess=None,
                ipopt=None, rest_tol=1e-10, t0=0.0, time_limit=None, mesh_tol=None) -> SolveOptions:
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
                                                                  allow_inf=True))


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
