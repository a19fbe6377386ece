"""The private core behind :func:`ocp.solve`: layers that call down to the one-window primitive.

:func:`ocp.solve` checks its arguments once (:class:`ocp.options.SolveOptions`) and calls
:func:`run`. Every layer below calls only layers below it, never the public solve::

    run ─┬─ matrix-free (an ExternalLoss, or solver="matrix_free"/"auto" above a dimension) ── ocp.matrix_free
         ├─ infinite horizon ── infinite_path ── [mesh refinement] ── infinite_core
         │                                                      first_window ─┘ └─ continue_infinite
         ├─ γT past round-off ── long_path ── infinite_path (the head) + finite_path (the final window)
         └─ finite horizon ───── finite_path ── first_window ── [mesh check: refine, or split at the
                                                                 end effect into long_path]

``first_window`` solves the first NLP from every guess with :func:`ocp.nlp.window.solve_window`
and keeps the lowest objective; ``continue_infinite`` is the ordered list of infinite-horizon
strategies (``ocp.horizons.infinite``). The refinement layers get the core as a callable on a
finer mesh (``ocp.horizons.mesh_refinement``).
"""
from __future__ import annotations

import math

import numpy as np

from ..budget import TIME_LIMIT
from ..checks import number
from ..errors import ProblemError, SolveError
from ..external_loss import ExternalLoss
from ..matrix_free import solve as matrix_free_solve
from ..nlp.guesses import initial_guess
from ..nlp.local_model import curvatures_or_nan, default_time_scale
from ..nlp.solution import from_solution
from ..nlp.time_maps import window_end
from ..nlp.transcription import transcription_for
from ..nlp.window import solve_window
from ..options import MATRIX_FREE_DIMENSION, matrix_free_qualifies
from ..problem import DiscountedOCP
from . import long_horizon, mesh_refinement
from .downhill import downhill_guess
from .infinite import FirstWindow, continue_infinite
from .policy import time_cross_derivative


def run(problem, theta0, options):
    """The optimal path of ``problem`` from ``theta0`` under checked ``options``."""
    if uses_matrix_free(problem, options):
        return matrix_free_path(problem, theta0, options)
    if options.infinite:
        return infinite_path(problem, theta0, options)
    if options.time_scale is not None:
        raise ProblemError("time_scale sets the infinite-horizon map; a finite horizon's map is [0, T]")
    if long_horizon.needs_composite(problem, options.horizon, options.terminal):
        return long_path(problem, theta0, options)
    return finite_path(problem, theta0, options)


def uses_matrix_free(problem, options) -> bool:
    """The solver the options ask for ("auto": an ExternalLoss, or a qualifying CasADi loss with
    more than MATRIX_FREE_DIMENSION parameters)."""
    if getattr(problem, "external", False) or options.solver == "matrix_free":
        return True
    return (options.solver == "auto" and problem.dim > MATRIX_FREE_DIMENSION
            and matrix_free_qualifies(problem))


def matrix_free_path(problem, theta0, options):
    """The matrix-free solve (:mod:`ocp.matrix_free`); a CasADi-written loss is wrapped as an
    :class:`ocp.ExternalLoss` (its HVPs by CasADi's jtimes)."""
    if options.guesses != (None,):
        raise ProblemError("the matrix-free solver takes no guess (it starts from theta0 held, or the "
                           "decay to the rest point)")
    if options.time_scale is not None:
        raise ProblemError("time_scale sets the collocation's infinite-horizon map; the matrix-free "
                           "solver grades its own mesh")
    if not getattr(problem, "external", False):
        problem = DiscountedOCP(problem.dim, ExternalLoss.from_casadi(problem), problem.gamma, problem.eta,
                                problem.k, metric=problem.metric, name=problem.name)
    return matrix_free_solve(problem, theta0, options)


def first_window(problem, theta0, options) -> FirstWindow:
    """The first NLP (the whole finite horizon, or the infinite map's first window) from each
    guess; the converged solution of lowest objective. A guess that fails is recorded
    (``failed_guesses``); when all fail, the first failure is raised."""
    infinite = options.infinite
    tr = transcription_for(problem, options.mesh, infinite, options.terminal is not None, options.ipopt)
    if infinite:
        scale = number("time_scale", options.time_scale or default_time_scale(problem, theta0), positive=True)
    else:
        scale = options.horizon
    s_end = window_end(scale, problem.gamma) if infinite else 1.0
    params = problem.parameter_values(t0=options.t0)
    guesses, default_guess = options.guesses, None
    if infinite and len(guesses) == 1 and guesses[0] is None:
        default_guess = downhill_guess(problem, theta0)     # a concave start: ocp.horizons.downhill
        guesses = guesses if default_guess is None else (default_guess,)
    candidates, failures = [], []
    for guess in guesses:
        initial = initial_guess(tr, theta0, options.terminal, scale, guess, s_end, options.t0)
        try:
            candidates.append(solve_window(tr, theta0, params, scale, terminal=options.terminal,
                                           guess=initial, s_end=s_end, deadline=options.deadline,
                                           t_offset=options.t0))
        except SolveError as exc:   # another guess may still converge: keep the others
            if exc.status == TIME_LIMIT:
                raise
            failures.append(exc)
    if not candidates:
        raise failures[0]
    raw = min(candidates, key=lambda candidate: candidate["f"])
    trajectory = from_solution(tr, raw, scale, t_offset=options.t0)
    trajectory.stats.update(horizon=options.horizon, gamma=problem.gamma, t0=options.t0,
                            solves=len(candidates), candidate_objectives=[c["f"] for c in candidates],
                            failed_guesses=len(failures))
    if default_guess is not None:
        trajectory.stats["default_guess"] = "downhill"
    return FirstWindow(trajectory, raw, tr, scale, s_end)


# -- the infinite horizon ------------------------------------------------------------------
def infinite_path(problem, theta0, options):
    """The infinite-horizon path, its first window's mesh refined when ``mesh_tol`` asks."""
    path = infinite_core(problem, theta0, options)
    if options.mesh_tol is None or options.mesh_tol == math.inf:
        return path

    def solve_on(finer, coarse):      # the whole infinite path again, the first window on ``finer``
        finer_options = options.replace(mesh=finer, guesses=(coarse,), mesh_tol=math.inf)
        return infinite_core(problem, theta0, finer_options)
    return mesh_refinement.refine(solve_on, path, options.mesh, options.mesh_tol, options.horizon)


def infinite_core(problem, theta0, options):
    """The first window, then the infinite-horizon strategies (γ > 0) or the limit check (γ = 0)."""
    first = first_window(problem, theta0, options)
    if problem.gamma == 0:
        _check_limit_cost(problem, first.trajectory)
        first.trajectory.stats["reached_rest"] = True
        return first.trajectory
    return continue_infinite(problem, first, options.rest_tol, options.deadline)


# -- finite horizons ----------------------------------------------------------------------------
def finite_path(problem, theta0, options):
    """One NLP over the horizon, then its mesh checked (refined when asked or suspect)."""
    trajectory = first_window(problem, theta0, options).trajectory
    mesh_tol = options.mesh_tol
    if mesh_tol == math.inf:
        return trajectory
    if mesh_tol is None:
        # the default check needs the local quadratic model's time scales: an autonomous cost
        # (a loss or data that change with time have their own, e.g. a switch or a stream)
        if time_cross_derivative(problem) is not None or not mesh_refinement.suspect(
                problem, theta0, options.horizon, options.mesh, curvatures_or_nan(problem, theta0)):
            return trajectory
        composite = _split_at_the_end_effect(problem, theta0, options)
        if composite is not None:
            return composite
        mesh_tol = mesh_refinement.DEFAULT_TOL

    def solve_on(finer, guess):
        return first_window(problem, theta0, options.replace(mesh=finer, guesses=(guess,))).trajectory
    return mesh_refinement.refine(solve_on, trajectory, options.mesh, mesh_tol, options.horizon)


def long_path(problem, theta0, options, window=None, head=None):
    """The optimal path on [t0, t0 + T] as the infinite-horizon path and a final window
    (``ocp.horizons.long_horizon``): for γT past round-off, or for T longer than ``window``
    (the end effect's reach) when the infinite path ``head`` is given."""
    window = window or long_horizon.FINAL_WINDOW / problem.gamma
    end = options.t0 + options.horizon
    long_horizon.refuse_unresolvable_end(problem, options.horizon, end, window)
    split = end - window
    if head is None:
        head = infinite_path(problem, theta0, options.replace(horizon=math.inf, terminal=None, mesh_tol=None))
    head_part, settled = long_horizon.head_until(problem, theta0, head, split)
    final_tol = math.inf if options.mesh_tol is None and settled else options.mesh_tol
    final_options = options.replace(horizon=window, guesses=(None,), t0=split, mesh_tol=final_tol)
    final = finite_path(problem, head_part.theta[-1], final_options)
    return long_horizon.join(problem, head, head_part, final, options.horizon, options.t0, split, window)


def _split_at_the_end_effect(problem, theta0, options):
    """A horizon long against the path's time scales as the infinite path and a final window,
    when the path comes to rest well before T; else None. The caller asks only for an
    autonomous cost (a time-dependent one has no rest point to settle at)."""
    head_options = options.replace(horizon=math.inf, terminal=None, guesses=(None,), rest_tol=1e-10,
                                   mesh_tol=None)
    try:
        head = infinite_path(problem, theta0, head_options)
    except (ProblemError, SolveError) as exc:     # no infinite-horizon path (γ = 0, cost at the limit)
        if isinstance(exc, SolveError) and exc.status == TIME_LIMIT:
            raise
        return None
    rest = head.theta[-1]
    window = long_horizon.end_effect_window(problem, rest, curvatures_or_nan(problem, rest))
    # the end's decay ν holds near the rest point: the head must be there (1e-6 of the way
    # left) before the final window starts
    offsets = np.abs(head.theta - rest).max(axis=1)
    moving = np.nonzero(offsets > 1e-6 * max(offsets[0], 1e-300))[0]
    settled = head.t[moving[-1] + 1] if len(moving) and moving[-1] + 1 < len(head.t) else head.t[0]
    if not (head.stats.get("reached_rest") and np.isfinite(window)
            and settled - options.t0 < options.horizon - window):
        return None
    return long_path(problem, theta0, options.replace(mesh_tol=None), window=window, head=head)


def _check_limit_cost(problem, trajectory):
    """With γ = 0 the infinite-horizon objective is finite only if the running cost
    (1/2η)(θ̇−f)ᵀG(θ̇−f) + k·L vanishes at the limit: k·L = 0 there and, with a drift, f = 0."""
    scale = np.abs(trajectory.potential).max() + np.abs(trajectory.kinetic).max()
    kinetic, potential = trajectory.kinetic[-1], trajectory.potential[-1]
    if abs(kinetic) + abs(potential) > 1e-6 * scale + 1e-12:
        raise ProblemError(
            "with gamma = 0 and an infinite horizon the running cost must be 0 at the limit point "
            f"(there k·L = {potential:.3g} and the drift cost (1/2η)fᵀGf = {kinetic:.3g}); "
            "subtract the loss minimum (and the resting cost of the drift) or use gamma > 0")
