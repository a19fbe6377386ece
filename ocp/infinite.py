"""The infinite horizon beyond the first mapped window: the current-value bridge or receding windows, then the LQ tail.

The first NLP covers [0, T_w] on the algebraic map, cut where e^{−γt} = WINDOW_DISCOUNT, and
is kept while e^{−γt} ≥ KEEP_DISCOUNT (``ocp.solver``). If the path is not at rest there:

1. Rest point and LQ tail (``ocp.rest_point``), for an autonomous running cost: near the
   rest point x* the optimal path is the stable solution of the LQ problem linearised there,
   exact to O(|x − x*|²). At the end x1 of the collocated path the relative nonlinearity ν
   of the running cost's gradient against its quadratic model at x* bounds the tail's error
   by about ν|x1 − x*|; once that is ≤ TAIL_TOLERANCE·|θ0 − x*| the rest of the path is the
   LQ solution, in closed form, with no further NLP.
2. The current-value bridge (``ocp.current_value``): the optimality conditions in current
   value carry no discount factor, so the whole nonlinear stretch after x1 is one collocated
   boundary-value problem ending on the LQ problem's stable manifold, solved by Newton's
   method on any span (one NLP in all, at any γ). If it does not converge:
3. Receding windows: the same NLP from x1 with the clock at t1 (time
   consistency: the optimal path from a later state continues the same path), warm started
   from the previous window read from t1 on; each window keeps its first −ln(KEEP_DISCOUNT)/γ.
   Each is one NLP; a nonlinear stretch costs a few windows.
4. A time-dependent running cost (no rest point), no stabilising LQ solution, or
   MAX_WINDOWS windows without meeting the bound: the stationary policy is integrated as
   before (``ocp.policy``), each evaluation one warm-started NLP.

``stats``: ``solves`` in all, ``nlp_solves`` by reason (first window, windows, policy),
``current_value`` (the bridge's spans, meshes, Newton iterations, error estimate),
``tail`` ("rest", "lq" or "policy"), ``tail_bound`` (the LQ tail's error bound relative to
|θ0 − x*|), ``policy_from`` (where the collocated windows end), ``junction_mismatch``.
"""
from __future__ import annotations

import math

import numpy as np

from .budget import NO_DEADLINE, TIME_LIMIT
from .current_value import bridge
from .errors import OCPError, SolveError
from .growing import continue_growing, growing_model
from .guesses import shifted_guess
from .path import from_path, from_samples
from .policy import SAMPLES_PER_STEP, Policy, _time_cross_derivative
from .policy import integrate as integrate_policy
from .postprocess import checked_solve, from_solution
from .rest_point import linear_tail, rest_point, rest_point_ahead
from .trajectory import concatenate
from .trajectory_algebra import shifted, truncated

WINDOW_DISCOUNT = 1e-12      # the mapped domain ends where e^{−γt} reaches this
KEEP_DISCOUNT = 1e-2         # collocation samples are kept while e^{−γt} ≥ this
TAIL_TOLERANCE = 1e-9        # LQ tail error bound, relative to |θ0 − x*|, to stop the windows
MAX_WINDOWS = 300          # windows (one NLP each) before the policy integration takes over


def window_end(scale, gamma) -> float:
    """s_end of the mapped window: 1 (all of [0, ∞)) for γ = 0, else where e^{−γt} = WINDOW_DISCOUNT."""
    if gamma == 0:
        return 1.0
    t_window = -math.log(WINDOW_DISCOUNT) / gamma
    return t_window / (scale + t_window)


def kept_part(trajectory, gamma):
    """The elements of a window that end before its discount falls below KEEP_DISCOUNT."""
    t_keep = trajectory.t[0] - math.log(KEEP_DISCOUNT) / gamma
    ends = trajectory.t[trajectory.elements[:, 1].astype(int)]
    return truncated(trajectory, max(int(np.searchsorted(ends, t_keep, "right")) - 1, 0))


def continue_infinite(problem, tr, trajectory, raw, scale, s_end, rest_tol, deadline=NO_DEADLINE):
    """The whole infinite-horizon path from the first window ``trajectory`` (module docstring)."""
    kept = kept_part(trajectory, problem.gamma)
    speed = np.linalg.norm(trajectory.velocity, axis=1)
    peak = speed.max()
    size = max(np.abs(trajectory.theta).max(), 1e-300)
    first_solves = kept.stats["solves"]
    counts = {"first_window": first_solves, "windows": 0, "policy": 0}
    params = problem.parameter_values()
    autonomous = _time_cross_derivative(problem) is None
    rest = rest_point(problem, trajectory.theta[-1], params) if autonomous else None
    tails = {}

    def tail_at(point):
        """The LQ tail at ``point``, solved once (the heading test and the tail share it)."""
        key = point.tobytes()
        if key not in tails:
            tails[key] = linear_tail(problem, point, params)
        return tails[key]
    if rest is not None and _heading_elsewhere(kept, rest, tail_at):
        # Newton went where the path is not going (from the concave part of a well, across the
        # barrier): the rest point it is heading for, along the quasi-static flow; if the flow
        # fails, Newton's point stands
        ahead = rest_point_ahead(problem, kept.theta[-1], params, deadline)
        rest = rest if ahead is None else ahead
    if _at_rest(kept, rest, speed[len(kept) - 1], peak, peak * scale <= 1e-13 * size, rest_tol):
        kept.stats.update(reached_rest=True, tail="rest", nlp_solves=counts)
        return kept
    stats = dict(kept.stats)
    path, window, junctions, tail, bound = kept, trajectory, [], None, None
    if autonomous:
        tail = tail_at(rest) if rest is not None else None
        # an optimum that grows (unstable drift, large γ) never comes to rest: ocp/growing.py
        model = growing_model(problem, rest) if rest is not None and tail is None else None
        if model is not None:
            grown = continue_growing(problem, tr, trajectory, scale, model, deadline, WINDOW_DISCOUNT, KEEP_DISCOUNT)
            if grown is not None:
                grown.stats.update(nlp_solves={**counts, "first_window": first_solves + 1},
                                   solves=first_solves + 1)
                return grown
    if tail is not None and _tail_bound(path, tail) > TAIL_TOLERANCE:
        try:
            piece, stats["current_value"] = bridge(problem, path, trajectory, tail, deadline, TAIL_TOLERANCE)
        except SolveError as exc:
            if exc.status == TIME_LIMIT:
                raise SolveError(str(exc), TIME_LIMIT, exc.iterations, _partial(path, stats)) from None
            raise
        if piece is not None:
            junctions.append(np.abs(path.velocity[-1] - piece.velocity[0]).max() / peak)
            path = concatenate(path, piece)
    while tail is not None:
        bound = _tail_bound(path, tail)
        if bound <= TAIL_TOLERANCE:
            break
        if counts["windows"] >= MAX_WINDOWS:
            tail = None
            break
        deadline.check("the receding windows", counts["windows"], _partial(path, stats))
        t1 = path.t[-1]
        guess = shifted_guess(tr, window, t1, scale, s_end)
        try:
            raw = checked_solve(tr, path.theta[-1], problem.parameter_values(t0=t1), scale, None, guess,
                                s_end, deadline)
        except SolveError as exc:
            if exc.status == TIME_LIMIT:
                raise SolveError(str(exc), TIME_LIMIT, exc.iterations, _partial(path, stats)) from None
            tail = None     # a window that does not converge: the policy carries on from here
            break
        window = from_solution(tr, raw, scale, t_offset=t1)
        piece = kept_part(window, problem.gamma)
        junctions.append(np.abs(path.velocity[-1] - piece.velocity[0]).max() / peak)
        path = concatenate(path, piece)
        counts["windows"] += 1
        stats["iterations"] += raw["iterations"]
        stats["solve_time"] += raw["solve_time"]
    joined = None
    if tail is not None:
        try:
            joined = _join_tail(problem, path, tail, rest_tol * peak)
            junctions.append(np.abs(path.velocity[-1] - tail.velocity(path.theta[-1])).max() / peak)
            kind = "lq"
        except OCPError:   # the tail could not be sampled to its tolerance: integrate the policy
            joined = None
    if joined is None:
        joined, policy = _join_policy(problem, tr, path, raw, scale, s_end, rest_tol * peak, stats, deadline)
        junctions.append(np.abs(path.velocity[-1] - joined.velocity[len(path)]).max() / peak)
        counts["policy"] = policy.solves
        stats["iterations"] += policy.iterations
        stats["solve_time"] += policy.solve_time
        stats["reached_rest"] = policy.reached_rest
        kind = "policy"
    stats.update(solves=sum(counts.values()), nlp_solves=counts, tail=kind, policy_from=float(path.t[-1]),
                 junction_mismatch=float(max(junctions)), tail_bound=bound)
    stats.setdefault("reached_rest", True)
    joined.objective, joined.stats = kept.objective, stats
    return joined


def _heading_elsewhere(kept, rest, tail_at):
    """Whether the path, still far from ``rest`` (a tenth of its way or more), moves away from the
    approach to it: against the LQ feedback K(x − x*) there (a spiral or a non-normal approach
    still agrees with it), or, without a stabilising LQ solution, away from ``rest`` itself."""
    end, heading = kept.theta[-1], kept.velocity[-1]
    if np.abs(end - rest).max() < 0.1 * np.abs(kept.theta[0] - rest).max():
        return False             # well into the approach: the direction is noise, the point is right
    tail = tail_at(rest)
    towards = tail.feedback @ (end - rest) if tail is not None else rest - end
    return float(np.dot(towards, heading)) < 0


def _at_rest(kept, rest, end_speed, peak, round_off, rest_tol):
    """Whether the kept window ends at rest. Its speed alone can mislead when the path moves by
    round-off within the window (η or k near the float range: the motion is too slow to
    resolve): then, and whenever the end lies visibly away from the rest point x* of an
    autonomous cost, the path is not at rest and the tail follows it to x*."""
    if rest is not None:
        end, start = kept.theta[-1], kept.theta[0]
        noise = 1e3 * np.finfo(float).eps * max(np.abs(end).max(), np.abs(rest).max(), 1e-300)
        offset = np.abs(rest - end).max()
        if offset > max(1e-6 * np.abs(rest - start).max(), noise):
            return False
        if round_off:
            return True
    return round_off or end_speed <= rest_tol * peak


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


def _join_tail(problem, path, tail, rest_speed):
    """``path`` continued by the LQ solution from its end until its speed is ``rest_speed``."""
    start = path.theta[-1]
    if np.abs(start - tail.rest).max() <= 1e3 * np.finfo(float).eps * max(np.abs(tail.rest).max(), 1e-300):
        return path    # already at x* to round-off: nothing is left to follow
    # the closed form costs nothing per unit time: follow it 1e4 × below the rest speed, so
    # the end point is x* to round-off rather than to rest_tol
    duration = tail.duration_to(start, 1e-4 * rest_speed)
    # from_path resolves the tail relative to its own range |start − x*|; the states carry
    # round-off relative to |x*|, which bounds what any interpolant can reproduce
    spread = max(np.abs(start - tail.rest).max(), 1e-300)
    tol = max(1e-13, 8 * np.finfo(float).eps * np.abs(tail.rest).max() / spread)
    piece = from_path(problem, tail.path(start), duration, tol=tol, method="lq_tail")
    return concatenate(path, shifted(piece, path.t[-1]))


def _join_policy(problem, tr, path, raw, scale, s_end, rest_speed, stats, deadline):
    """``path`` continued by integrating the stationary policy (``ocp.policy``)."""
    policy = Policy(problem, tr, scale, s_end, raw, deadline)
    typical = np.abs(path.theta[0] - path.theta[-1]).max()
    try:
        t, theta, at_rest = integrate_policy(policy, path.t[-1], path.theta[-1], rest_speed,
                                             atol=1e-12 * typical, deadline=deadline)
    except SolveError as exc:
        if exc.status == TIME_LIMIT:
            raise SolveError(str(exc), TIME_LIMIT, exc.iterations, _partial(path, stats)) from None
        raise
    policy.reached_rest = at_rest
    continuation = from_samples(problem, t, theta, SAMPLES_PER_STEP, objective=path.objective)
    return concatenate(path, continuation), policy


def _partial(path, stats):
    """The path so far, as the best iterate of a solve stopped by its time limit."""
    path.stats = {**stats, "success": False, "status": TIME_LIMIT, "reached_rest": False}
    return path
