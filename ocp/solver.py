"""``ocp.solve``: finite horizons in one NLP; the infinite horizon by collocation, windows and the LQ tail.

Infinite horizon (design notes §2). With γ = 0 the algebraic map t = c·s/(1 − s) covers
[0, ∞) in one transcription. With γ > 0 the weight e^{−γt} eventually falls below
round-off; there the reduced Hessian is numerically singular, IPOPT regularises and the
path is undetermined. So the mapped domain is cut where e^{−γt} = WINDOW_DISCOUNT (a
free end: the transversality condition holds there), and only the part with
e^{−γt} ≥ KEEP_DISCOUNT is kept; the free end perturbs it by about e^{−γ(T_w − t)} ≤ 1e-10.
Exponential discounting is time-consistent, so the optimal path from any later state
continues the same path, and the optimal policy θ̇ = π(θ) is stationary. If the path has
not come to rest in the kept part, the path is continued by one collocated boundary-value
problem of the optimality conditions in current value (no discount factor, any span;
``ocp.current_value``) or, failing that, by receding windows of the same NLP, until the LQ
problem linearised at the rest point describes the rest to the tolerance, and then by its
closed-form solution (``ocp.infinite``, ``ocp.rest_point``); a
time-dependent cost is continued by integrating the stationary policy θ̇ = π(θ)
(``ocp.policy``), each evaluation one warm-started solve of the same NLP.
``stats["junction_mismatch"]`` compares θ̇ at the end of each collocated window with the
next piece's velocity there (max gap relative to the largest speed): a gap well above the
NLP tolerance means the window's last (long) elements under-resolve the path; refine the mesh.
"""
from __future__ import annotations

import math

import numpy as np

from . import long_horizon, mesh_refinement
from .budget import TIME_LIMIT, Deadline
from .checks import number
from .errors import ProblemError, SolveError, TerminalConstraintError
from .guesses import guess_list, initial_guess
from .infinite import continue_infinite, window_end  # noqa: F401 (window_end: the solver's map window)
from .policy import _time_cross_derivative
from .postprocess import checked_solve, from_solution
from .trajectory import Trajectory
from .transcription import Mesh, Transcription


def solve(problem, theta0, horizon=math.inf, terminal=None, mesh=None, time_scale=None,
          guess=None, ipopt=None, rest_tol=1e-10, t0=0.0, time_limit=None, mesh_tol=None) -> Trajectory:
    """Solve ``problem`` from ``theta0``; return the optimal :class:`Trajectory`.

    horizon    : ``math.inf`` (default) or a finite T > 0 (any T up to the float range: a
                 horizon whose discount falls below round-off is solved as the infinite-horizon
                 path followed by a final window, see :mod:`ocp.long_horizon`).
    terminal   : fixed θ(T) (finite horizons only); ``None`` leaves the end free.
    mesh       : :class:`Mesh` (intervals, degree, scheme); default 40 × degree 5 Legendre.
    time_scale : c of the infinite-horizon map t = c·s/(1−s); default from the local
                 curvature at θ0 and γ (see :func:`default_time_scale`).
    guess      : a Trajectory, a callable t → θ, or a target point θ_∞ (the guess then
                 approaches it exponentially); default: θ0 held constant. A list of such
                 guesses (e.g. several local minima of the loss) solves from each and keeps
                 the path of lowest objective: IPOPT finds local optima only.
    rest_tol   : the infinite-horizon path is followed until |θ̇| ≤ rest_tol · max|θ̇|.
    t0         : the problem's clock at the start, for a loss or data that depend on time
                 (e.g. a restart in the middle of an observation stream). The discount is
                 e^{−γ(t − t0)} (time consistency) and the Trajectory's times run from t0;
                 Trajectory and callable guesses are read at those times.
    time_limit : wall-clock seconds for the whole solve (None: no limit); when spent, a
                 SolveError with status ``"time_limit"`` whose ``last_iterate`` is the best
                 path so far. Ctrl-C raises KeyboardInterrupt from any stage.
    mesh_tol   : the mesh is doubled until two successive solutions agree to this, relative to
                 the path's range (``ocp.mesh_refinement``; recorded in
                 ``stats["mesh_refinement"]``); on the infinite horizon the first window's mesh.
                 None (default): finite horizons are checked to 1e-8 only when the mesh is coarse
                 against the local time scales at θ0, the infinite horizon not; ``math.inf``: never.

    Raises ProblemError for bad input and SolveError when IPOPT does not converge or the mesh
    refinement does not meet its tolerance.
    """
    theta0 = problem.check_initial_state(theta0)
    horizon = _check_horizon(horizon)
    t0 = _check_start_time(t0)
    deadline = time_limit if isinstance(time_limit, Deadline) else Deadline(time_limit)
    infinite = math.isinf(horizon)
    thetaT = _check_terminal(problem, terminal, infinite)
    mesh_tol = None if mesh_tol is None else number("mesh_tol", mesh_tol, positive=True, allow_inf=True)
    if not infinite and long_horizon.needs_composite(problem, horizon, thetaT):
        return long_horizon.solve_long(solve, problem, theta0, horizon, terminal=thetaT, mesh=mesh, guess=guess, ipopt=ipopt,
                                       rest_tol=rest_tol, t0=t0, deadline=deadline, mesh_tol=mesh_tol)
    mesh = mesh or Mesh()
    transcription = transcription_for(problem, mesh, infinite, thetaT is not None, ipopt)
    scale = time_scale or (default_time_scale(problem, theta0) if infinite else horizon)
    scale = number("time_scale", scale, positive=True)
    s_end = window_end(scale, problem.gamma) if infinite else 1.0
    candidates, failures = [], []
    for one_guess in guess_list(guess, theta0):
        initial = initial_guess(transcription, theta0, thetaT, scale, one_guess, s_end, t0)
        try:
            candidates.append(checked_solve(transcription, theta0, problem.parameter_values(t0=t0), scale,
                                            thetaT, initial, s_end, deadline))
        except SolveError as exc:   # another guess may still converge: keep the others
            if exc.status == TIME_LIMIT:
                raise
            failures.append(exc)
    if not candidates:
        raise failures[0]
    raw = min(candidates, key=lambda candidate: candidate["f"])
    trajectory = from_solution(transcription, raw, scale, t_offset=t0)
    trajectory.stats.update(horizon=horizon, gamma=problem.gamma, t0=t0, solves=len(candidates),
                            candidate_objectives=[c["f"] for c in candidates],
                            failed_guesses=len(failures))
    if not infinite:
        return _checked_mesh(problem, theta0, horizon, thetaT, mesh, ipopt, t0, deadline, mesh_tol, trajectory)
    if problem.gamma == 0:
        _check_limit_cost(problem, trajectory)
        trajectory.stats["reached_rest"] = True
        path = trajectory
    else:
        path = continue_infinite(problem, transcription, trajectory, raw, scale, s_end, rest_tol, deadline)
    if mesh_tol is None or mesh_tol == math.inf:
        return path

    def solve_on(finer, coarse):      # the whole infinite path again, the first window on ``finer``
        return solve(problem, theta0, horizon, mesh=finer, time_scale=time_scale, guess=coarse, ipopt=ipopt,
                     rest_tol=rest_tol, t0=t0, time_limit=deadline, mesh_tol=math.inf)
    return mesh_refinement.refine(solve_on, path, mesh, mesh_tol, horizon)


def _checked_mesh(problem, theta0, horizon, thetaT, mesh, ipopt, t0, deadline, mesh_tol, trajectory):
    """``trajectory`` (a finite-horizon solution on ``mesh``), refined when asked or suspect."""
    if mesh_tol == math.inf:
        return trajectory
    if mesh_tol is None:
        # the default check needs the local quadratic model's time scales: an autonomous cost
        # (a loss or data that change with time have their own, e.g. a switch or a stream)
        if _time_cross_derivative(problem) is not None or not mesh_refinement.suspect(
                problem, theta0, horizon, mesh, _curvatures_or_nan(problem, theta0)):
            return trajectory
        composite = _split_at_the_end_effect(problem, theta0, horizon, thetaT, mesh, ipopt, t0, deadline)
        if composite is not None:
            return composite
        mesh_tol = mesh_refinement.DEFAULT_TOL

    def solve_on(finer, guess):
        return solve(problem, theta0, horizon, terminal=thetaT, mesh=finer, guess=guess, ipopt=ipopt,
                     t0=t0, time_limit=deadline, mesh_tol=math.inf)
    return mesh_refinement.refine(solve_on, trajectory, mesh, mesh_tol, horizon)


def _split_at_the_end_effect(problem, theta0, horizon, thetaT, mesh, ipopt, t0, deadline):
    """A horizon long against the path's time scales as the infinite path and a final window
    (``ocp.long_horizon``), when the path comes to rest well before T; else None. The caller
    asks only for an autonomous cost (a time-dependent one has no rest point to settle at)."""
    try:
        head = solve(problem, theta0, math.inf, mesh=mesh, ipopt=ipopt, t0=t0, time_limit=deadline)
    except (ProblemError, SolveError) as exc:     # no infinite-horizon path (γ = 0, cost at the limit)
        if isinstance(exc, SolveError) and exc.status == TIME_LIMIT:
            raise
        return None
    rest = head.theta[-1]
    window = long_horizon.end_effect_window(problem, rest, _curvatures_or_nan(problem, rest))
    # the end's decay ν holds near the rest point: the head must be there (1e-6 of the way
    # left) before the final window starts
    offsets = np.abs(head.theta - rest).max(axis=1)
    moving = np.nonzero(offsets > 1e-6 * max(offsets[0], 1e-300))[0]
    settled = head.t[moving[-1] + 1] if len(moving) and moving[-1] + 1 < len(head.t) else head.t[0]
    if not (head.stats.get("reached_rest") and np.isfinite(window) and settled - t0 < horizon - window):
        return None
    return long_horizon.solve_long(solve, problem, theta0, horizon, terminal=thetaT, mesh=mesh, ipopt=ipopt, t0=t0,
                                   deadline=deadline, window=window, head=head)


def transcription_for(problem, mesh, infinite, terminal, ipopt=None) -> Transcription:
    """The cached transcription of this problem structure (built on first use)."""
    key = (mesh, infinite, terminal, tuple(sorted((ipopt or {}).items())))
    cache = problem._structure.cache
    if key not in cache:
        cache[key] = Transcription(problem, mesh, infinite, terminal, ipopt)
    return cache[key]


def _curvatures_or_nan(problem, theta0) -> np.ndarray:
    """:func:`local_curvatures`, or NaN where the local model cannot be formed (a singular
    metric or a loss whose Hessian is not finite at θ0): then nothing judges the mesh."""
    try:
        return local_curvatures(problem, theta0)
    except (np.linalg.LinAlgError, ValueError, RuntimeError):
        return np.array([np.nan])


def local_curvatures(problem, theta0) -> np.ndarray:
    """ηk·λ for the eigenvalues λ of G⁻¹∇²L at θ0 (absolute values, floored at 1e-3 of the
    largest): the local quadratic model's curvatures, which set its EL exponents."""
    cache = problem._structure.cache
    if "local_model" not in cache:
        import casadi
        theta, P = casadi.SX.sym("theta", problem.dim), casadi.SX.sym("P", problem.layout.size)
        params = problem.layout.unpack(P)
        cache["local_model"] = casadi.Function("local_model", [theta, P], [
            casadi.hessian(problem.loss_value(theta, params), theta)[0], problem.metric_matrix(theta, params)])
    H, G = (np.asarray(value) for value in cache["local_model"](theta0[: problem.dim], problem.parameter_values()))
    curvatures = np.abs(np.linalg.eigvals(np.linalg.solve(G, H)).real)
    return problem.eta * max(problem.k, 1e-12) * np.maximum(curvatures, 1e-3 * max(curvatures.max(), 1e-6))


def default_time_scale(problem, theta0) -> float:
    """Time scale c of the infinite map: twice the decay time of the local quadratic model at θ0,
    capped at 5/γ so that most elements lie where the discount weight is visible."""
    curvatures = local_curvatures(problem, theta0)
    gamma = problem.gamma
    rates = np.sqrt(gamma ** 2 / 4 + curvatures) - gamma / 2
    if rates.min() <= 1e-6 * gamma:   # cancellation (ηkλ ≪ γ² gave r = 0, then a division by 0)
        rates = curvatures / (np.sqrt(gamma ** 2 / 4 + curvatures) + gamma / 2)
    # 2/√(r_min r_max): the slow tail of a spread spectrum needs elements late in time (in
    # logarithms when the product under- or overflows: η or k near the float range)
    product = rates.min() * rates.max()
    decay_time = (2.0 / math.sqrt(product) if 0 < product < math.inf
                  else 2.0 * math.exp(-0.5 * (math.log(rates.min()) + math.log(rates.max()))))
    return min(decay_time, 5.0 / gamma) if gamma > 0 else decay_time


# -- checks --------------------------------------------------------------------------
def _check_horizon(horizon) -> float:
    return number("horizon", horizon, positive=True, allow_inf=True)


def _check_start_time(t0) -> float:
    return number("t0", t0)


def _check_terminal(problem, terminal, infinite):
    if terminal is None:
        return None
    if infinite:
        raise TerminalConstraintError("a terminal state needs a finite horizon")
    try:
        terminal = np.asarray(terminal, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise TerminalConstraintError("terminal must be a vector of numbers") from None
    if terminal.shape != (problem.state_dim,):
        raise TerminalConstraintError(f"terminal must have length {problem.state_dim}, got {terminal.shape[0]}")
    if not np.all(np.isfinite(terminal)):
        raise TerminalConstraintError("terminal must be finite")
    return terminal


def _check_limit_cost(problem, trajectory):
    """With γ = 0 the infinite-horizon objective is finite only if the running cost
    (1/2η)(θ̇−f)ᵀG(θ̇−f) + k·L vanishes at the limit: k·L = 0 there and, with a drift, f = 0."""
    if problem.gamma > 0:
        return
    scale = np.abs(trajectory.potential).max() + np.abs(trajectory.kinetic).max()
    kinetic, potential = trajectory.kinetic[-1], trajectory.potential[-1]
    if abs(kinetic) + abs(potential) > 1e-6 * scale + 1e-12:
        raise ProblemError(
            "with gamma = 0 and an infinite horizon the running cost must be 0 at the limit point "
            f"(there k·L = {potential:.3g} and the drift cost (1/2η)fᵀGf = {kinetic:.3g}); "
            "subtract the loss minimum (and the resting cost of the drift) or use gamma > 0")
