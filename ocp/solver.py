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

from .checks import number
from .errors import ProblemError, SolveError, TerminalConstraintError
from .guesses import guess_list, initial_guess
from . import long_horizon
from .budget import TIME_LIMIT, Deadline
from .infinite import continue_infinite, window_end  # noqa: F401 (window_end: the solver's map window)
from .postprocess import checked_solve, from_solution
from .trajectory import Trajectory
from .transcription import Mesh, Transcription


def solve(problem, theta0, horizon=math.inf, terminal=None, mesh=None, time_scale=None,
          guess=None, ipopt=None, rest_tol=1e-10, t0=0.0, time_limit=None) -> Trajectory:
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

    Raises ProblemError for bad input and SolveError when IPOPT does not converge.
    """
    theta0 = problem.check_initial_state(theta0)
    horizon = _check_horizon(horizon)
    t0 = _check_start_time(t0)
    deadline = time_limit if isinstance(time_limit, Deadline) else Deadline(time_limit)
    infinite = math.isinf(horizon)
    thetaT = _check_terminal(problem, terminal, infinite)
    if not infinite and long_horizon.needs_composite(problem, horizon, thetaT):
        return long_horizon.solve_long(solve, problem, theta0, horizon, terminal=thetaT, mesh=mesh, guess=guess, ipopt=ipopt,
                                       rest_tol=rest_tol, t0=t0, deadline=deadline)
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
        return trajectory
    if problem.gamma == 0:
        _check_limit_cost(problem, trajectory)
        trajectory.stats["reached_rest"] = True
        return trajectory
    return continue_infinite(problem, transcription, trajectory, raw, scale, s_end, rest_tol, deadline)


def transcription_for(problem, mesh, infinite, terminal, ipopt=None) -> Transcription:
    """The cached transcription of this problem structure (built on first use)."""
    key = (mesh, infinite, terminal, tuple(sorted((ipopt or {}).items())))
    cache = problem._structure.cache
    if key not in cache:
        cache[key] = Transcription(problem, mesh, infinite, terminal, ipopt)
    return cache[key]


def default_time_scale(problem, theta0) -> float:
    """Time scale c of the infinite map: twice the decay time of the local quadratic model at θ0,
    capped at 5/γ so that most elements lie where the discount weight is visible."""
    import casadi
    theta = casadi.SX.sym("theta", problem.dim)
    params = problem.layout.unpack(casadi.DM(problem.parameter_values()))
    loss = problem.loss_value(theta, params)
    hessian = casadi.Function("h", [theta], [casadi.hessian(loss, theta)[0]])
    metric = casadi.Function("g", [theta], [problem.metric_matrix(theta, params)])
    theta_point = theta0[: problem.dim]
    H = np.asarray(hessian(theta_point))
    G = np.asarray(metric(theta_point))
    curvatures = np.abs(np.linalg.eigvals(np.linalg.solve(G, H)).real)
    curvatures = problem.eta * max(problem.k, 1e-12) * np.maximum(curvatures, 1e-3 * max(curvatures.max(), 1e-6))
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
