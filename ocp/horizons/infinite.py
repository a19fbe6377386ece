"""The infinite horizon beyond the first mapped window, as an ordered list of strategies.

The first NLP covers [0, T_w] on the algebraic map, cut where e^{−γt} = WINDOW_DISCOUNT, and
is kept while e^{−γt} ≥ KEEP_DISCOUNT (``ocp.horizons.pipeline``). What follows is
:data:`STRATEGIES`: each entry is a :class:`Strategy` (name, applies, run) over one shared
:class:`Continuation` (the path so far, the rest point, its LQ tail, the counts). The driver
runs, in order, every strategy that applies; one that returns a Trajectory ends the path, one
that returns None has extended the state for the next. Adding a strategy is adding an entry.

1. ``rest_point`` (an autonomous running cost): the rest point x* the path approaches (Newton
   from the window's end; when Newton's point lies behind the path, from the concave part of a
   well, the rest point ahead along the quasi-static flow; ``ocp.horizons.rest_point``).
2. ``at_rest``: the kept window already ends there: the path is complete.
3. ``growing``: the LQ problem at x* has a closed loop that grows (an unstable drift, large γ):
   the optimum never comes to rest (``ocp.horizons.growing``).
4. ``current_value_bridge``: the optimality conditions in current value carry no discount
   factor, so the whole nonlinear stretch after the window is one collocated boundary-value
   problem ending on the LQ problem's stable manifold (``ocp.horizons.current_value``).
5. ``receding_windows``: the same NLP from the path's end with the clock there (time
   consistency), warm started from the previous window; each keeps its first
   −ln(KEEP_DISCOUNT)/γ, until the LQ tail's bound is met (at most MAX_WINDOWS).
6. ``lq_tail``: near x* the optimal path is the stable solution of the LQ problem linearised
   there, exact to O(|x − x*|²): once the relative nonlinearity ν of the running cost's gradient
   at the end x1 gives ν|x1 − x*| ≤ TAIL_TOLERANCE·|θ0 − x*|, the rest is the closed form.
7. ``policy``: otherwise (a time-dependent cost, no stabilising LQ solution, MAX_WINDOWS
   spent, a tail that could not be sampled) the stationary policy θ̇ = π(θ) is integrated
   (``ocp.horizons.policy``), each evaluation one warm-started NLP.

A spent time budget in any strategy ends in a SolveError (status ``"time_limit"``) whose last
iterate is the path so far (:meth:`Continuation.time_limit_keeps_the_path`, the one place).

``stats``: ``solves`` in all, ``nlp_solves`` by reason (first window, windows, policy),
``current_value`` (the bridge's spans, meshes, Newton iterations, error estimate),
``tail`` ("rest", "lq", "lq_growing" or "policy"), ``tail_bound`` (the LQ tail's error bound
relative to |θ0 − x*|), ``policy_from`` (where the collocated windows end),
``junction_mismatch`` (the largest gap in θ̇ between joined pieces, relative to the peak speed).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Callable

import numpy as np

from ..budget import TIME_LIMIT
from ..errors import OCPError, SolveError
from ..nlp.guesses import shifted_guess
from ..nlp.solution import from_solution
from ..nlp.time_maps import WINDOW_DISCOUNT
from ..nlp.window import SolveStats, solve_window
from ..results.path import from_path, from_samples
from ..results.trajectory import concatenate
from ..results.trajectory_algebra import shifted, until
from .current_value import bridge
from .growing import continue_growing, net_decay
from .policy import SAMPLES_PER_STEP, Policy, time_cross_derivative
from .policy import integrate as integrate_policy
from .rest_point import linear_tail, rest_point, rest_point_ahead

KEEP_DISCOUNT = 1e-2         # collocation samples are kept while e^{−γt} ≥ this
TAIL_TOLERANCE = 1e-9        # LQ tail error bound, relative to |θ0 − x*|, to stop the windows
MAX_WINDOWS = 300            # windows (one NLP each) before the policy integration takes over
_UNSOLVED = object()         # the LQ tail before its first use


@dataclasses.dataclass
class FirstWindow:
    """The first NLP of an infinite-horizon solve: its Trajectory, raw solution and map."""

    trajectory: object
    raw: dict
    transcription: object
    scale: float
    s_end: float


def kept_part(trajectory, gamma):
    """The elements of a window that end before its discount falls below KEEP_DISCOUNT."""
    return until(trajectory, trajectory.t[0] - math.log(KEEP_DISCOUNT) / gamma)


class Continuation:
    """What the strategies share: the path so far and what is known about where it goes."""

    def __init__(self, problem, first: FirstWindow, rest_tol, deadline):
        self.problem, self.first, self.rest_tol, self.deadline = problem, first, rest_tol, deadline
        window = first.trajectory
        self.kept = self.path = kept_part(window, problem.gamma)
        self.stats = dict(self.kept.stats)
        self.window, self.raw = window, first.raw          # the last NLP window, for warm starts
        speed = np.linalg.norm(window.velocity, axis=1)
        self.peak, self.end_speed = speed.max(), speed[len(self.kept) - 1]
        self.round_off = self.peak * first.scale <= 1e-13 * max(np.abs(window.theta).max(), 1e-300)
        self.params = problem.parameter_values()
        self.autonomous = time_cross_derivative(problem) is None
        self.counts = {"first_window": self.kept.stats["solves"], "windows": 0, "policy": 0}
        self.spent = SolveStats()                          # NLPs beyond the first window
        self.junctions, self.rest, self.bound, self._tails, self._tail = [], None, None, {}, _UNSOLVED

    # -- the rest point's LQ tail, solved once per point -------------------------------
    def tail_at(self, point):
        key = point.tobytes()
        if key not in self._tails:
            self._tails[key] = linear_tail(self.problem, point, self.params, allow_growth=True)
        return self._tails[key]

    @property
    def tail(self):
        """The LQ tail at the rest point, solved on first use; None without a rest point or a
        stabilising LQ solution, or once a strategy found it unusable (:meth:`drop_tail`)."""
        if self._tail is _UNSOLVED:
            self._tail = self.tail_at(self.rest) if self.rest is not None else None
        return self._tail

    def drop_tail(self):
        self._tail = None

    def decaying_tail(self):
        tail = self.tail
        return tail if tail is not None and not tail.grows else None

    # -- building the path ---------------------------------------------------------------
    def append(self, piece):
        """``piece`` joined to the path; the jump in θ̇ at the junction is recorded."""
        self.junctions.append(np.abs(self.path.velocity[-1] - piece.velocity[0]).max() / self.peak)
        self.path = concatenate(self.path, piece)

    def finish(self, joined, kind, collocated=None):
        """The complete path ``joined`` with the continuation's stats and the first window's
        objective; ``collocated`` (default: the path so far) ends where the closed-form or
        integrated continuation starts (``policy_from``)."""
        collocated = self.path if collocated is None else collocated
        total = SolveStats.of(self.kept.stats) + self.spent
        self.stats.update(solves=sum(self.counts.values()), iterations=total.iterations,
                          solve_time=total.solve_time, nlp_solves=self.counts, tail=kind,
                          policy_from=float(collocated.t[-1]), junction_mismatch=float(max(self.junctions)),
                          tail_bound=self.bound)
        self.stats.setdefault("reached_rest", True)
        joined.objective, joined.stats = self.kept.objective, self.stats
        return joined

    @contextlib.contextmanager
    def time_limit_keeps_the_path(self):
        """A spent budget inside a strategy ends the solve with the path so far as its last iterate."""
        try:
            yield
        except SolveError as exc:
            if exc.status != TIME_LIMIT:
                raise
            self.path.stats = {**self.stats, "success": False, "status": TIME_LIMIT, "reached_rest": False}
            raise SolveError(str(exc), TIME_LIMIT, exc.iterations, self.path) from None


@dataclasses.dataclass(frozen=True)
class Strategy:
    """One step of the infinite horizon: ``run(state)`` when ``applies(state)``; a Trajectory
    returned ends the path, None hands the extended state to the next strategy."""

    name: str
    applies: Callable
    run: Callable


def continue_infinite(problem, first: FirstWindow, rest_tol, deadline):
    """The whole infinite-horizon path from the first window (module docstring)."""
    state = Continuation(problem, first, rest_tol, deadline)
    for strategy in STRATEGIES:
        if strategy.applies(state):
            with state.time_limit_keeps_the_path():
                path = strategy.run(state)
            if path is not None:
                return path
    raise AssertionError("the policy strategy applies to every path")


# -- the strategies ---------------------------------------------------------------------------
def find_rest_point(state):
    """Newton's rest point from the window's end, or the one ahead when Newton's lies behind."""
    problem, kept = state.problem, state.kept
    rest = rest_point(problem, state.window.theta[-1], state.params)
    if rest is not None and _heading_elsewhere(kept, rest, state.tail_at):
        ahead = rest_point_ahead(problem, kept.theta[-1], state.params, state.deadline)
        rest = rest if ahead is None else ahead
    state.rest = rest


def at_rest(state):
    """Whether the kept window ends at rest. Its speed alone can mislead when the path moves by
    round-off within the window (η or k near the float range: the motion is too slow to
    resolve): then, and whenever the end lies visibly away from the rest point x* of an
    autonomous cost, the path is not at rest and the tail follows it to x*."""
    kept, rest = state.kept, state.rest
    if rest is not None:
        end, start = kept.theta[-1], kept.theta[0]
        noise = 1e3 * np.finfo(float).eps * max(np.abs(end).max(), np.abs(rest).max(), 1e-300)
        if np.abs(rest - end).max() > max(1e-6 * np.abs(rest - start).max(), noise):
            return False
        if state.round_off:
            return True
    return state.round_off or state.end_speed <= state.rest_tol * state.peak


def finish_at_rest(state):
    state.kept.stats.update(reached_rest=True, tail="rest", nlp_solves=state.counts)
    return state.kept


def grows(state):
    tail = state.tail
    return tail is not None and tail.grows and net_decay(state.problem, tail) > 0


def follow_growth(state):
    """The growing optimum (``ocp.horizons.growing``), or None (the tail dropped) if it fails."""
    grown = continue_growing(state.problem, state.first, state.tail, state.deadline, WINDOW_DISCOUNT,
                             KEEP_DISCOUNT)
    if grown is None:
        state.drop_tail()
        return None
    solves = state.counts["first_window"] + 1
    grown.stats.update(nlp_solves={**state.counts, "first_window": solves}, solves=solves)
    return grown


def tail_too_far(state):
    tail = state.decaying_tail()
    return tail is not None and _tail_bound(state.path, tail) > TAIL_TOLERANCE


def bridge_the_stretch(state):
    """The current-value boundary-value problem from the path's end (``ocp.horizons.current_value``)."""
    piece, state.stats["current_value"] = bridge(state.problem, state.path, state.window, state.tail,
                                                 state.deadline, TAIL_TOLERANCE)
    if piece is not None:
        state.append(piece)


def receding_windows(state):
    """Windows of the same NLP from the path's end until the LQ tail's bound is met; the tail
    is dropped (the policy carries on) after MAX_WINDOWS or at a window that fails."""
    problem, first = state.problem, state.first
    tr, scale, s_end = first.transcription, first.scale, first.s_end
    while True:
        state.bound = _tail_bound(state.path, state.tail)
        if state.bound <= TAIL_TOLERANCE:
            return None
        if state.counts["windows"] >= MAX_WINDOWS:
            state.drop_tail()
            return None
        state.deadline.check("the receding windows", state.counts["windows"])
        t1 = state.path.t[-1]
        guess = shifted_guess(tr, state.window, t1, scale, s_end)
        try:
            raw = solve_window(tr, state.path.theta[-1], problem.parameter_values(t0=t1), scale, guess=guess,
                               s_end=s_end, deadline=state.deadline, t_offset=t1)
        except SolveError as exc:
            if exc.status == TIME_LIMIT:
                raise
            state.drop_tail()      # a window that does not converge: the policy carries on from here
            return None
        state.window, state.raw = from_solution(tr, raw, scale, t_offset=t1), raw
        state.append(kept_part(state.window, problem.gamma))
        state.counts["windows"] += 1
        state.spent += raw["stats"]


def join_lq_tail(state):
    """The path continued by the LQ solution from its end until its speed is 1e-4 × the rest
    speed (the closed form costs nothing per unit time, so the end point is x* to round-off
    rather than to rest_tol); None (the policy carries on) if it cannot be sampled."""
    tail, path = state.tail, state.path
    start = path.theta[-1]
    if np.abs(start - tail.rest).max() <= 1e3 * np.finfo(float).eps * max(np.abs(tail.rest).max(), 1e-300):
        joined = path     # already at x* to round-off: nothing is left to follow
    else:
        try:
            duration = tail.duration_to(start, 1e-4 * state.rest_tol * state.peak)
            # from_path resolves the tail relative to its own range |start − x*|; the states carry
            # round-off relative to |x*|, which bounds what any interpolant can reproduce
            spread = max(np.abs(start - tail.rest).max(), 1e-300)
            tol = max(1e-13, 8 * np.finfo(float).eps * np.abs(tail.rest).max() / spread)
            piece = from_path(state.problem, tail.path(start), duration, tol=tol, method="lq_tail")
        except OCPError:
            return None
        joined = concatenate(path, shifted(piece, path.t[-1]))
    state.junctions.append(np.abs(path.velocity[-1] - tail.velocity(start)).max() / state.peak)
    return state.finish(joined, "lq")


def integrate_the_policy(state):
    """``path`` continued by integrating the stationary policy (``ocp.horizons.policy``)."""
    first, path = state.first, state.path
    policy = Policy(state.problem, first.transcription, first.scale, first.s_end, state.raw, state.deadline)
    typical = np.abs(path.theta[0] - path.theta[-1]).max()
    t, theta, at_rest_now = integrate_policy(policy, path.t[-1], path.theta[-1], state.rest_tol * state.peak,
                                             atol=1e-12 * typical, deadline=state.deadline)
    continuation = from_samples(state.problem, t, theta, SAMPLES_PER_STEP, objective=path.objective)
    joined = concatenate(path, continuation)
    state.junctions.append(np.abs(path.velocity[-1] - joined.velocity[len(path)]).max() / state.peak)
    state.counts["policy"] = policy.solves
    state.spent += SolveStats(policy.solves, policy.iterations, policy.solve_time)
    state.stats["reached_rest"] = at_rest_now
    return state.finish(joined, "policy")


STRATEGIES = (
    Strategy("rest_point", lambda state: state.autonomous, find_rest_point),
    Strategy("at_rest", at_rest, finish_at_rest),
    Strategy("growing", grows, follow_growth),
    Strategy("current_value_bridge", tail_too_far, bridge_the_stretch),
    Strategy("receding_windows", lambda state: state.decaying_tail() is not None, receding_windows),
    Strategy("lq_tail", lambda state: state.decaying_tail() is not None, join_lq_tail),
    Strategy("policy", lambda state: True, integrate_the_policy),
)


# -- tests the strategies share ----------------------------------------------------------------
def _heading_elsewhere(kept, rest, tail_at):
    """Whether the path, still far from ``rest`` (a tenth of its way or more), moves away from the
    approach to it: against the LQ feedback K(x − x*) there (a spiral or a non-normal approach
    still agrees with it), or, without a decaying LQ solution, away from ``rest`` itself."""
    end, heading = kept.theta[-1], kept.velocity[-1]
    if np.abs(end - rest).max() < 0.1 * np.abs(kept.theta[0] - rest).max():
        return False             # well into the approach: the direction is noise, the point is right
    tail = tail_at(rest)
    decaying = tail is not None and not tail.grows
    towards = tail.feedback @ (end - rest) if decaying else rest - end
    return float(np.dot(towards, heading)) < 0


def _tail_bound(path, tail):
    """The LQ tail's error bound from the end θ1 of ``path``, relative to |θ0 − x*|: the
    nonlinearity ν of the running cost's gradient at (θ1, K(θ1 − x*)) against its quadratic
    model at x* (``LinearTail.nonlinearity``) makes the policy differ from the LQ feedback by
    about ν|K(θ1 − x*)|, and the path by about ν|θ1 − x*| over the rest of the approach (ν
    falls as the path nears x*). Exact zero for quadratic costs, free of the collocation's
    discretisation error."""
    distance = max(np.abs(path.theta[0] - tail.rest).max(), 1e-300)
    offset = np.abs(path.theta[-1] - tail.rest).max()
    return tail.nonlinearity(path.theta[-1]) * offset / distance
