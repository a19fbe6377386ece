"""A task switch solved in two phases by time consistency (Vastola, Gershman & Rajan 2025,
App. I.3: weight resetting after a task transition; docs/weight_uncertainty.md §4).

At t_s the loss changes: a kink in time. The learner follows the optimal plan of the
current task and re-plans at t_s; by the time consistency of exponential discounting the
second phase is the optimal path of the new task from x(t_s). Each phase is a stationary
OCP, so it is solved to spectral accuracy and the kink sits exactly at the junction.

A scenario supports this with ``params["t_switch"]``, ``task(after)`` (the stationary
scenario of one task) and a ``problem`` with ``check_state`` (or ``check_initial_state``).
The trajectory helpers (``cut``, ``shifted``, ``collocated``, ``discounted_integral``,
``acceleration``) work on any :class:`ocp.Trajectory` (elements in t or in the algebraic
infinite-horizon coordinate).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

import ocp
from ocp.collocation import lagrange_basis, lagrange_derivative


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
        for problem, trajectory in zip(self.problems, (self.before, self.after)):
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
    ``until`` = t_end > t_s (γ > 0): each phase is covered by :func:`receding` windows,
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
        before = receding(first, theta0, t_s, mesh, guesses[0])
        later = receding(second, before.theta[-1], until - t_s, mesh, guesses[1])
    after = shifted(later, t_s)
    objective = discounted_integral(first, before) + math.exp(-first.gamma * t_s) * later.objective
    path = ocp.trajectory.concatenate(before, after)
    path.objective = objective
    path.stats.update(t_switch=t_s, phases=2, gamma=first.gamma,
                      window_meshes=before.stats.get("window_meshes", []) + later.stats.get("window_meshes", []),
                      unconverged_windows=before.stats.get("unconverged_windows", [])
                      + [(t_s + start, change) for start, change in later.stats.get("unconverged_windows", [])])
    return SwitchSolution(before, after, path, t_s, objective, (first, second))


KEEP_WINDOW = 5.0       # γ·(kept part of each receding window): discount weights ≥ e^{−5} there
MARGIN = 20.0           # γ·(planned beyond it): the free end moves the kept part by ~e^{−20}


def receding(problem, theta0, duration, mesh=None, guess=None) -> ocp.Trajectory:
    """The infinite-horizon optimal path on [0, duration] by time consistency: solve on a
    finite horizon (KEEP_WINDOW + MARGIN)/γ with a free end, keep the first KEEP_WINDOW/γ,
    re-solve from its end state with the problem's clock there (``ocp.solve(t0=...)``: a
    loss or stream that depends on time continues), repeat. The horizon keeps
    e^{−γT} ≥ e^{−25}, where the NLP is still determined (longer windows at large γ leave the
    tail undetermined), and the kept part has discount weights ≥ e^{−5}: IPOPT's absolute
    tolerance is a relative accuracy there (keeping 10/γ gave EL errors up to 2e-2 and mesh
    changes of 1e-4 at γ = 64; 5/γ gives 2e-5 and 1e-8).
    ``guess`` goes to :func:`ocp.solve` (e.g. the rest point). ``objective`` is the
    discounted cost over [0, duration]. ``mesh`` None: each window's intervals double from
    40 until the kept part changes by ≤ WINDOW_AGREEMENT (relative to its largest state),
    at most MAX_WINDOW_INTERVALS (a window is (KEEP_WINDOW + MARGIN)/γ long: at small γ a
    fixed mesh under-resolves a fast transient, e.g. the variance rise after a switch);
    ``stats["window_meshes"]`` lists each window's intervals and ``stats["unconverged_windows"]``
    the start times of windows still changing at the finest mesh, with their last change."""
    if problem.gamma <= 0:
        raise ocp.ProblemError("receding windows need gamma > 0 (use the infinite horizon at gamma = 0)")
    keep, margin = KEEP_WINDOW / problem.gamma, MARGIN / problem.gamma
    path, start, state = None, 0.0, np.asarray(theta0, float)
    meshes, unconverged = [], []
    while start < duration * (1 - 1e-12):
        length = min(keep, duration - start)
        window, change = _window(problem, state, start, length, margin, mesh, guess)
        meshes.append(int(window.stats["mesh"]["intervals"]))
        if change is not None and not change <= WINDOW_AGREEMENT:   # NaN counts as not converged
            unconverged.append((start, change))
        piece = cut(problem, window, start + length)
        path = piece if path is None else ocp.trajectory.concatenate(path, piece)
        start, state = start + length, piece.theta[-1]
    path.objective = discounted_integral(problem, path)
    path.stats.update(receding_windows=True, gamma=problem.gamma, window_meshes=meshes,
                      unconverged_windows=unconverged)
    # the first window's own figures would pass for the whole path's
    for key in ("policy_from", "t0", "cut_at", "mesh", "iterations", "solve_time", "success", "status",
                "solves", "candidate_objectives", "failed_guesses"):
        path.stats.pop(key, None)
    return path


WINDOW_AGREEMENT = 1e-8
MAX_WINDOW_INTERVALS = 640


def require_converged(path: ocp.Trajectory) -> ocp.Trajectory:
    """``path`` (from :func:`receding` or :func:`solve_switch`) if every window's mesh
    converged, else SolveError naming how many did not."""
    unconverged = path.stats.get("unconverged_windows", [])
    if unconverged:
        raise ocp.SolveError("a receding window of the reference did not converge", "mesh", len(unconverged))
    return path


def _window(problem, state, start, length, margin, mesh, guess):
    """One receding window from the clock ``start``, on a given mesh (change None) or on a
    mesh refined until its kept part converges; returns (window, last relative change)."""
    if mesh is not None:
        return ocp.solve(problem, state, horizon=length + margin, mesh=mesh, guess=guess, t0=start), None
    mesh = ocp.Mesh(40, 5)
    coarse = ocp.solve(problem, state, horizon=length + margin, mesh=mesh, guess=guess, t0=start)
    change = math.inf
    while mesh.intervals < MAX_WINDOW_INTERVALS:
        mesh = ocp.Mesh(2 * mesh.intervals, mesh.degree, mesh.scheme)
        fine = ocp.solve(problem, state, horizon=length + margin, mesh=mesh, guess=coarse, t0=start)
        kept = coarse.t <= start + length
        scale = max(np.abs(fine.theta).max(), 1e-300)
        change = np.abs(fine(coarse.t[kept]) - coarse.theta[kept]).max() / scale
        if change <= WINDOW_AGREEMENT:
            return fine, change
        coarse = fine
    return coarse, change


# -- trajectory pieces --------------------------------------------------------------------
def _local(times, t_a, scale):
    """The element coordinate of a Trajectory element (see ocp.trajectory) and d(local)/dt."""
    if scale > 0:
        return (times - t_a) / (scale + times - t_a), scale / (scale + times - t_a) ** 2
    return times, np.ones_like(times)


def cut(problem, trajectory: ocp.Trajectory, t_end: float) -> ocp.Trajectory:
    """``trajectory`` on [t_0, t_end]: the element containing t_end is the same polynomial
    sampled on its shortened range; past the last sample (at rest) the last state is held."""
    t_end = float(t_end)
    if t_end >= trajectory.t[-1]:
        if t_end == trajectory.t[-1]:
            return trajectory
        rest = trajectory.theta[-1]
        hold = ocp.from_path(problem, lambda t: np.broadcast_to(rest, (len(np.atleast_1d(t)), len(rest))),
                             t_end - trajectory.t[-1], degree=2)
        return ocp.trajectory.concatenate(trajectory, shifted(hold, trajectory.t[-1]))
    starts = trajectory.t[trajectory.elements[:, 0].astype(int)]
    e = int(np.searchsorted(starts, t_end, side="left")) - 1
    i0, i1, t_a, scale = trajectory.elements[e]
    i0, i1 = int(i0), int(i1)
    nodes_t = trajectory.t[i0:i1 + 1]
    nodes, _ = _local(nodes_t, t_a, scale)
    end, _ = _local(np.array([t_end]), t_a, scale)
    new_local = nodes[0] + (end[0] - nodes[0]) * (1 - np.cos(np.pi * np.arange(len(nodes)) / (len(nodes) - 1))) / 2
    new_t = (t_a + scale * new_local / (1 - new_local)) if scale > 0 else new_local
    new_t[0], new_t[-1] = nodes_t[0], t_end
    theta = lagrange_basis(nodes, new_local).T @ trajectory.theta[i0:i1 + 1]
    _, rate = _local(new_t, t_a, scale)
    velocity = (lagrange_derivative(nodes, new_local).T @ trajectory.theta[i0:i1 + 1]) * rate[:, None]
    t = np.concatenate([trajectory.t[:i0], new_t])
    theta = np.vstack([trajectory.theta[:i0], theta])
    velocity = np.vstack([trajectory.velocity[:i0], velocity])
    kinetic, potential, dl_du = ocp.path.running_cost(problem, t, theta, velocity)
    elements = np.vstack([trajectory.elements[:e], [[i0, i0 + len(new_t) - 1, t_a, scale]]])
    return ocp.Trajectory(t=t, theta=theta, velocity=velocity, kinetic=kinetic, potential=potential,
                          costate=-dl_du, objective=trajectory.objective, elements=elements,
                          stats={**trajectory.stats, "cut_at": t_end})


def shifted(trajectory: ocp.Trajectory, offset: float) -> ocp.Trajectory:
    """The same trajectory in time t + offset (for a stationary problem)."""
    elements = trajectory.elements.copy()
    elements[:, 2] += offset * (elements[:, 3] > 0)
    stats = dict(trajectory.stats)
    if "policy_from" in stats:
        stats["policy_from"] = stats["policy_from"] + offset
    return ocp.Trajectory(t=trajectory.t + offset, theta=trajectory.theta, velocity=trajectory.velocity,
                          kinetic=trajectory.kinetic, potential=trajectory.potential,
                          costate=trajectory.costate, objective=trajectory.objective,
                          elements=elements, stats=stats)


def collocated(trajectory: ocp.Trajectory) -> ocp.Trajectory:
    """The elements before the policy continuation (all of them when there is none)."""
    start = trajectory.stats.get("policy_from", np.inf)
    ends = trajectory.t[trajectory.elements[:, 1].astype(int)]
    keep = trajectory.elements[ends <= start + 1e-12 * max(1.0, abs(start))]
    if len(keep) == 0 or len(keep) == len(trajectory.elements):
        return trajectory
    stop = int(keep[-1, 1]) + 1
    return ocp.Trajectory(t=trajectory.t[:stop], theta=trajectory.theta[:stop],
                          velocity=trajectory.velocity[:stop], kinetic=trajectory.kinetic[:stop],
                          potential=trajectory.potential[:stop], costate=trajectory.costate[:stop],
                          objective=trajectory.objective, elements=keep, stats=trajectory.stats)


def discounted_integral(problem, trajectory: ocp.Trajectory) -> float:
    """∫ e^{−γt} ℓ dt over the trajectory, by 20-point Gauss–Legendre on each element."""
    gauss, weights = np.polynomial.legendre.leggauss(20)
    total = 0.0
    for i0, i1, t_a, scale in trajectory.elements:
        i0, i1 = int(i0), int(i1)
        nodes, _ = _local(trajectory.t[i0:i1 + 1], t_a, scale)
        points = nodes[0] + (nodes[-1] - nodes[0]) * (gauss + 1) / 2
        times = (t_a + scale * points / (1 - points)) if scale > 0 else points
        _, rate = _local(times, t_a, scale)
        theta = lagrange_basis(nodes, points).T @ trajectory.theta[i0:i1 + 1]
        velocity = (lagrange_derivative(nodes, points).T @ trajectory.theta[i0:i1 + 1]) * rate[:, None]
        kinetic, potential, _ = ocp.path.running_cost(problem, times, theta, velocity)
        total += (nodes[-1] - nodes[0]) / 2 * np.sum(weights / rate * np.exp(-problem.gamma * times)
                                                     * (kinetic + potential))
    return float(total)


def acceleration(trajectory: ocp.Trajectory) -> np.ndarray:
    """ẍ from the velocity samples, differentiating each element's polynomial."""
    out = np.empty_like(trajectory.velocity)
    for i0, i1, t_a, scale in trajectory.elements:
        idx = slice(int(i0), int(i1) + 1)
        nodes, rate = _local(trajectory.t[idx], t_a, scale)
        out[idx] = (lagrange_derivative(nodes, nodes).T @ trajectory.velocity[idx]) * rate[:, None]
    return out
