"""The primitive of the engine: one NLP of a transcription solved on one window.

Every strategy and every caller goes through :func:`solve_window`: the first window of
``ocp.solve`` and its guesses, the receding windows and the growing-optimum window of the
infinite horizon, each policy evaluation, the MPC controller's re-plans and the trust-region
planner. It is the one place where

* IPOPT runs under the solve's :class:`ocp.budget.Deadline` (a spent budget is a
  :class:`ocp.SolveError` with status ``"time_limit"`` carrying the last iterate as a
  Trajectory) and Ctrl-C becomes KeyboardInterrupt (:class:`ocp.budget.IterationMonitor`);
* a solve IPOPT does not report as converged is refused (``SolveError`` with IPOPT's status),
  unless the caller asks for the raw iterate to fall back from (``require_converged=False``:
  the controller warm-starts its next step from it, the planner reports ``success``);
* the cost of the solve is counted: ``raw["stats"]`` is a :class:`SolveStats`, which adds with
  ``+`` so that a strategy's total is the sum of its windows.

Its inputs are the transcription's own (the public entry points check theirs once).
"""
from __future__ import annotations

import dataclasses

from ..budget import NO_DEADLINE, TIME_LIMIT
from ..errors import SolveError
from .solution import from_solution


@dataclasses.dataclass(frozen=True)
class SolveStats:
    """NLP solves, IPOPT iterations and seconds spent in IPOPT; ``a + b`` adds them."""

    solves: int = 0
    iterations: int = 0
    solve_time: float = 0.0

    def __add__(self, other: SolveStats) -> SolveStats:
        return SolveStats(self.solves + other.solves, self.iterations + other.iterations,
                          self.solve_time + other.solve_time)

    @classmethod
    def of(cls, stats: dict) -> SolveStats:
        """The counts recorded in a Trajectory's ``stats`` (a missing count of solves is one)."""
        return cls(int(stats.get("solves", 1)), int(stats.get("iterations", 0)),
                   float(stats.get("solve_time", 0.0)))

    def record(self, stats: dict) -> dict:
        """``stats`` with ``solves``, ``iterations`` and ``solve_time`` set to these counts."""
        stats.update(solves=self.solves, iterations=self.iterations, solve_time=self.solve_time)
        return stats


def solve_window(tr, theta0, params, scale, *, terminal=None, guess=None, s_end=1.0, radius=1.0,
                 deadline=NO_DEADLINE, t_offset=0.0, require_converged=True) -> dict:
    """One IPOPT solve of transcription ``tr`` from ``theta0`` (module docstring).

    params   : the problem's values (``problem.parameter_values(t0=...)``); ``scale``: the map's c
               (the horizon on a finite map); ``s_end``: the end of the mapped window; ``radius``:
               the trust region's ρ; ``guess``: a previous raw solution, a dict with "x" (and
               "lam_g") or a vector of the NLP's variables (None: θ0 held).
    t_offset : the clock of the window's start, for the Trajectory of a refused iterate.

    Returns the raw solution (x, lam_g, f, p, success, status, iterations, solve_time,
    time_limit, stats). Raises SolveError (``last_iterate`` the iterate as a Trajectory, when it
    can be formed) when the deadline stopped IPOPT, and, with ``require_converged``, when IPOPT
    did not converge."""
    raw = tr.solve(theta0, params, scale, terminal, guess, s_end, radius=radius, deadline=deadline)
    raw["stats"] = SolveStats(1, raw["iterations"], raw["solve_time"])
    if raw["time_limit"]:
        raise SolveError(f"time limit of {deadline.seconds:g} s reached in an NLP solve", TIME_LIMIT,
                         raw["iterations"], _iterate(tr, raw, scale, t_offset))
    if require_converged and not raw["success"]:
        raise SolveError("IPOPT did not converge", raw["status"], raw["iterations"],
                         _iterate(tr, raw, scale, t_offset))
    return raw


def _iterate(tr, raw, scale, t_offset):
    """The refused iterate as a Trajectory, or None when it does not even post-process."""
    try:
        return from_solution(tr, raw, scale, t_offset=t_offset)
    except Exception:  # a diverged iterate (NaN, inf) may fail anywhere in the sampling
        return None
