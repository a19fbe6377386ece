"""A task switch solved in two phases by time consistency (Vastola, Gershman & Rajan 2025,
App. I.3: weight resetting after a task transition; docs/weight_uncertainty.md §4).

At t_s the loss changes: a kink in time. The learner follows the optimal plan of the
current task and re-plans at t_s; by the time consistency of exponential discounting the
second phase is the optimal path of the new task from x(t_s). Each phase is a stationary
OCP, so it is solved to spectral accuracy and the kink sits exactly at the junction.

A scenario supports this with ``params["t_switch"]``, ``task(after)`` (the stationary
scenario of one task) and a ``problem`` with ``check_state`` (or ``check_initial_state``).
The trajectory algebra it uses (``cut``, ``shifted``, ``collocated``,
``discounted_integral``) is the engine's (``ocp.results.trajectory_algebra``), and the receding
windows are ``ocp.control.receding.receding_windows``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

import ocp
from ocp.control.receding import receding_windows
from ocp.results.trajectory_algebra import collocated, cut, discounted_integral, shifted


@dataclass
class SwitchSolution:
    """The optimal response to an (unannounced) task switch at ``t_switch``.

    ``before``: the first task's optimal path on [0, t_s]; ``after``: the second task's
    optimal path from x(t_s), in physical time t ≥ t_s; ``path``: both joined (θ(t) from
    the element polynomials; the velocity sample at t_s is the left limit). ``objective``:
    ∫_0^{t_s} e^{−γt}ℓ_A dt + e^{−γt_s}J_B*(x(t_s)).
    """

    before: ocp.Trajectory
    after: ocp.Trajectory
    path: ocp.Trajectory
    t_switch: float
    objective: float
    problems: tuple     # (first task's OCP, second task's OCP), both stationary

    def __call__(self, t):
        return self.path(t)

    def el_error(self) -> float:
        """The larger of the two phases' Euler–Lagrange errors (:func:`ocp.euler_lagrange_error`),
        each against its own task, over the collocated part (before any policy continuation).
        A phase at rest (speed ≤ 1e-9·|x|, e.g. phase 1 started at the rest point) has only
        round-off terms, whose ratio means nothing: it is left out."""
        errors = [0.0]
        for problem, trajectory in zip(self.problems, (self.before, self.after), strict=True):
            if np.abs(trajectory.velocity).max() > 1e-9 * max(1.0, np.abs(trajectory.theta).max()):
                errors.append(ocp.euler_lagrange_error(problem, collocated(trajectory)))
        return max(errors)


def solve_switch(scenario, theta0=None, mesh=None, until=None) -> SwitchSolution:
    """Solve a scenario with ``t_switch`` in two phases (see the module docstring).

    Phase 1: the first task's optimal path from θ0 (the learner plans as if the task
    were permanent), cut at t_s; phase 2: the second task's optimal path from x(t_s),
    shifted to start at t_s.

    ``until`` None: each phase is the engine's infinite-horizon solve (``ocp.solve``, with
    its policy continuation for γ > 0; a phase at rest before t_s holds its rest point).
    ``until`` = t_end > t_s (γ > 0): each phase is covered by :func:`ocp.control.receding.receding_windows`,
    which is much cheaper for large γ and returns the path on [0, t_end];
    ``path.stats["unconverged_windows"]`` lists (start, last mesh change) of the windows
    whose mesh did not converge.
    Raises ProblemError when the scenario has no switch, SolveError if a solve fails.
    """
    t_s = scenario.params["t_switch"]
    if t_s is None:
        raise ocp.ProblemError("solve_switch needs a scenario with t_switch")
    check = getattr(scenario.problem, "check_state", scenario.problem.check_initial_state)
    theta0 = scenario.theta0 if theta0 is None else check(theta0)
    tasks = scenario.task(after=False), scenario.task(after=True)
    first, second = (task.problem for task in tasks)
    guesses = [task.guesses() or None for task in tasks]
    if until is None:
        before = cut(first, ocp.solve(first, theta0, mesh=mesh, guess=guesses[0]), t_s)
        later = ocp.solve(second, before.theta[-1], mesh=mesh, guess=guesses[1])
    else:
        if isinstance(until, bool) or not isinstance(until, numbers.Real) or not until > t_s \
                or not math.isfinite(until):
            raise ocp.ProblemError(f"until must be a finite time after t_switch = {t_s}, got {until!r}")
        until = float(until)
        before = receding_windows(first, theta0, t_s, mesh, guesses[0])
        later = receding_windows(second, before.theta[-1], until - t_s, mesh, guesses[1])
    after = shifted(later, t_s)
    objective = discounted_integral(first, before) + math.exp(-first.gamma * t_s) * later.objective
    path = ocp.results.trajectory.concatenate(before, after)
    path.objective = objective
    meshes = before.stats.get("window_meshes", []) + later.stats.get("window_meshes", [])
    unconverged = before.stats.get("unconverged_windows", []) + [      # the second phase's on the joint clock
        (t_s + start, change) for start, change in later.stats.get("unconverged_windows", [])]
    path.stats.update(t_switch=t_s, phases=2, gamma=first.gamma, window_meshes=meshes,
                      unconverged_windows=unconverged)
    return SwitchSolution(before, after, path, t_s, objective, (first, second))
