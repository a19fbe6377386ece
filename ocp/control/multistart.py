"""Global optima among the basins: multistart collocation, ``ocp.solve_global``.

IPOPT finds a local optimum of the collocation NLP: on a non-convex loss the free
infinite-horizon path of Fig. 1 (Vastola et al. 2025, App. B) settles in the nearer, left
well from the default guess, while the global optimum crosses to the deeper right well.
The strategy (docs/engine.md §2):

1. **Starts.** The basins of the optimal paths are, to first order, those of the rest points
   the path can end in; for a loss the candidates are its local minima. They are found
   numerically: a Newton trust-region descent of L (exact gradient and Hessian from CasADi,
   ``scipy.optimize.minimize(method="trust-exact")``; L-BFGS-B above ``DENSE_LIMIT``
   dimensions) from θ0 and from ``samples`` points drawn (seeded) uniformly in the box
   θ0 ± ``radius``; the minimisers are merged when closer than ``MERGE_TOL`` (relative) and
   kept when the Hessian there is positive semidefinite. The user's ``starts`` (target points,
   Trajectories or callables t → θ, as ``ocp.solve(guess=...)``) are added, and so is the
   default guess (θ0 held), so the result is never worse than a plain ``ocp.solve``.
2. **Candidates.** ``ocp.solve`` from each start (a target point is approached as e^{−t/c}),
   each a complete solve: first window, continuation, checks. Candidates are independent,
   so with ``workers > 1`` they run in that many processes (IPOPT with MUMPS is not
   thread-safe; forked children inherit the built problem, nothing is pickled but the
   result). It pays when a candidate takes longer than a process start (≳ 0.5 s).
3. **Choice.** The lowest objective among the converged candidates; a candidate that does
   not converge is recorded, never chosen. ``stats["candidates"]`` lists every start with its
   objective (None if it failed), status and end point; ``stats["candidate_objectives"]``
   the objectives alone; ``stats["best_candidate"]`` the index chosen.

The search is exhaustive only over the basins it samples: ``radius`` and ``samples`` bound
it (default 2·max(1, |θ0|∞) and 16·dim, at most 64). Multistart is for low and moderate
dimensions; at D = 1000 each candidate is a full solve.
"""
from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import casadi
import numpy as np
import scipy.optimize

from ..budget import TIME_LIMIT, Deadline
from ..checks import count, number
from ..errors import OCPError, ProblemError, SolveError
from ..horizons import pipeline
from ..options import SolveOptions
from ..results.trajectory import Trajectory

DENSE_LIMIT = 50            # above this dimension the minima search uses L-BFGS-B
MERGE_TOL = 1e-6            # minimisers closer than this (relative to the box) are one minimum
MAX_SAMPLES = 64


def loss_minima(problem, theta0, samples=None, radius=None, seed=0) -> np.ndarray:
    """Local minima of the problem's loss L near θ0 (module docstring, step 1), sorted by
    loss value (lowest first): an array (m, dim)."""
    theta0 = problem.check_initial_state(theta0)[: problem.dim]
    n = problem.dim
    samples = min(16 * n, MAX_SAMPLES) if samples is None else count("samples", samples)
    if radius is None:
        radius = 2.0 * max(1.0, np.abs(theta0).max())
    radius = number("radius", radius, positive=True)
    value, gradient, hessian = _loss_functions(problem)
    rng = np.random.default_rng(seed)
    points = np.vstack([theta0[None, :], theta0 + radius * rng.uniform(-1, 1, size=(samples, n))])
    method = "trust-exact" if n <= DENSE_LIMIT else "L-BFGS-B"
    found = []
    for point in points:
        options = {"hess": hessian} if method == "trust-exact" else {}
        with np.errstate(all="ignore"):
            try:
                result = scipy.optimize.minimize(value, point, jac=gradient, method=method, tol=1e-12,
                                                 options={"maxiter": 200}, **options)
            except (ValueError, np.linalg.LinAlgError, FloatingPointError):
                continue
        x = result.x
        if not (np.all(np.isfinite(x)) and np.isfinite(result.fun)):
            continue
        if np.linalg.norm(gradient(x)) > 1e-6 * (1 + abs(result.fun)):
            continue            # not a stationary point (a descent that ran off or stalled)
        if n <= DENSE_LIMIT and np.linalg.eigvalsh(hessian(x)).min() < -1e-8:
            continue            # a saddle
        if all(np.abs(x - other).max() > MERGE_TOL * radius for other, _ in found):
            found.append((x, float(result.fun)))
    found.sort(key=lambda pair: pair[1])
    return np.array([x for x, _ in found]).reshape(-1, n)


def solve_global(problem, theta0, horizon=math.inf, starts=None, samples=None, radius=None, seed=0,
                 workers=1, search=True, **options) -> Trajectory:
    """The lowest-objective optimal path among the basins (module docstring).

    starts  : extra guesses (target points, Trajectories or callables, as ``ocp.solve(guess=)``).
    samples, radius, seed : the numerical search for the loss minima (:func:`loss_minima`).
    search  : False uses only ``starts`` and the default guess.
    workers : processes solving candidates (1: in this process).
    options : the options of :func:`ocp.solve` (terminal, mesh, ipopt, t0, ...), checked once and
              used by every candidate; a ``time_limit`` applies to each candidate, and one that
              runs out stops the search.

    Raises ProblemError for bad input, SolveError when no candidate converges (the first
    candidate's error, its ``last_iterate`` the best iterate).
    """
    theta0 = problem.check_initial_state(theta0)
    if "guess" in options:
        raise ProblemError("solve_global takes starts=, not guess=")
    workers = count("workers", workers)
    seconds = options.pop("time_limit", None)
    checked = SolveOptions.checked(problem, horizon=horizon, time_limit=seconds, **options)
    candidates = [None] + _check_starts(problem, starts)
    if search:
        if problem.state_dim != problem.dim:
            raise ProblemError("the minima search needs a problem whose state is θ alone; pass starts= "
                               "(full states) with search=False")
        candidates += list(loss_minima(problem, theta0, samples, radius, seed))
    candidates = _distinct(candidates)
    results = _run(problem, theta0, candidates, checked, checked.deadline.seconds, workers)
    records, best = [], None
    for index, (start, result) in enumerate(zip(candidates, results, strict=True)):
        record = {"start": _describe(start), "objective": None, "status": None, "theta_final": None}
        if isinstance(result, Trajectory):
            record.update(objective=float(result.objective), status="optimal",
                          theta_final=result.theta[-1].tolist())
            if best is None or result.objective < results[best].objective:
                best = index
        else:
            record["status"] = (result.status if isinstance(result, SolveError)
                                else f"{type(result).__name__}: {result}")
        records.append(record)
    if best is None:
        first = next(r for r in results if isinstance(r, Exception))
        raise first
    chosen = results[best]
    chosen.stats.update(candidates=records, candidate_objectives=[r["objective"] for r in records],
                        best_candidate=best, global_strategy="multistart",
                        failed_candidates=sum(r["objective"] is None for r in records))
    return chosen


# -- candidates ------------------------------------------------------------------------
_JOB = {}       # the problem and options of the running solve_global, inherited by forked workers


def _run(problem, theta0, candidates, options, seconds, workers):
    """Each candidate solved, each with a budget of ``seconds``; a result is a Trajectory or
    the OCPError it raised."""
    _JOB.update(problem=problem, theta0=theta0, candidates=candidates, options=options, seconds=seconds)
    try:
        if workers == 1 or len(candidates) == 1 or "fork" not in multiprocessing.get_all_start_methods():
            return [_candidate(i) for i in range(len(candidates))]
        context = multiprocessing.get_context("fork")
        processes = min(workers, len(candidates), os.cpu_count() or 1)
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            return list(pool.map(_candidate, range(len(candidates))))
    finally:
        _JOB.clear()


def _candidate(index):
    job = _JOB
    try:
        options = job["options"].replace(guesses=(job["candidates"][index],),
                                         deadline=Deadline(job["seconds"]))
        return pipeline.run(job["problem"], job["theta0"], options)
    except SolveError as exc:
        if exc.status == TIME_LIMIT:
            raise
        return exc
    except OCPError as exc:
        if isinstance(exc, ProblemError) and index == 0:
            raise               # bad input: the plain solve refuses it, so does every candidate
        return exc


def _check_starts(problem, starts):
    if starts is None:
        return []
    if isinstance(starts, (Trajectory,)) or callable(starts):
        starts = [starts]
    starts = list(starts) if not isinstance(starts, np.ndarray) else list(np.atleast_2d(starts))
    checked = []
    for start in starts:
        if isinstance(start, Trajectory) or callable(start):
            checked.append(start)
            continue
        try:
            point = np.asarray(start, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ProblemError("each start must be a point, a Trajectory or a callable t -> theta") from None
        if point.shape != (problem.state_dim,) or not np.all(np.isfinite(point)):
            raise ProblemError(f"each start point must be {problem.state_dim} finite numbers, got {start!r}")
        checked.append(point)
    return checked


def _distinct(candidates):
    out = []
    for start in candidates:
        if isinstance(start, np.ndarray) and any(isinstance(o, np.ndarray)
                                                 and np.allclose(start, o, rtol=1e-9, atol=1e-12)
                                                 for o in out):
            continue
        out.append(start)
    return out


def _describe(start):
    if start is None:
        return "theta0 held"
    if isinstance(start, np.ndarray):
        return start.tolist()
    return type(start).__name__


def _loss_functions(problem):
    """L, ∇L and ∇²L as numpy callables (CasADi, exact derivatives)."""
    theta = casadi.SX.sym("theta", problem.dim)
    params = problem.layout.unpack(casadi.DM(problem.parameter_values()))
    loss = problem.loss_value(theta, params)
    hessian, gradient = casadi.hessian(loss, theta)
    function = casadi.Function("loss_derivatives", [theta], [loss, gradient, hessian])
    return (lambda x: float(function(x)[0]), lambda x: np.asarray(function(x)[1], float).ravel(),
            lambda x: np.asarray(function(x)[2], float))
