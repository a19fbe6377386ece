"""``ocp.solve``: finite horizons in one NLP; the infinite horizon by collocation plus policy.

Infinite horizon (design notes §2). With γ = 0 the algebraic map t = c·s/(1 − s) covers
[0, ∞) in one transcription. With γ > 0 the weight e^{−γt} eventually falls below
round-off; there the reduced Hessian is numerically singular, IPOPT regularises and the
path is undetermined. So the mapped domain is cut where e^{−γt} = WINDOW_DISCOUNT (a
free end: the transversality condition holds there), and only the part with
e^{−γt} ≥ KEEP_DISCOUNT is kept; the free end perturbs it by about e^{−γ(T_w − t)} ≤ 1e-10.
Exponential discounting is time-consistent, so the optimal path from any later state
continues the same path, and the optimal policy θ̇ = π(θ) is stationary. If the path has
not come to rest in the kept part, θ̇ = π(θ) is integrated (``ocp.policy``: an
exponential Rosenbrock integrator with the exact policy Jacobian, since the policy ODE is
stiff when curvatures spread); each evaluation of π is one warm-started solve of the same
NLP from θ: π(θ) = argmin_u ℓ(θ, u) + ∇V(θ)ᵀu, with ∇V(θ) = ∂J*/∂θ0 read from the
multiplier of the initial-state constraint. When γ is large the motion is slow (rates
≈ ηkλ/γ), and the integrator crosses it in few, long steps. ``stats["junction_mismatch"]``
compares θ̇ at the end of the kept window with π there (max gap relative to the largest
speed): both approximate the same velocity, so a gap well above the NLP tolerance means the
window's last (long) elements under-resolve the path, e.g. time-varying data late in the
window; refine the mesh (it falls as the mesh is refined). The Euler–Lagrange residual at
that junction sample reflects the same gap.
"""
from __future__ import annotations

import math

import numpy as np

from .collocation import lagrange_derivative
from .errors import ProblemError, SolveError, TerminalConstraintError
from .policy import SAMPLES_PER_STEP, Policy
from .policy import integrate as integrate_policy
from .postprocess import checked_solve, from_solution, pointwise
from .trajectory import Trajectory, concatenate
from .transcription import Mesh, Transcription

WINDOW_DISCOUNT = 1e-12      # the mapped domain ends where e^{−γt} reaches this
KEEP_DISCOUNT = 1e-2         # collocation samples are kept while e^{−γt} ≥ this


def solve(problem, theta0, horizon=math.inf, terminal=None, mesh=None, time_scale=None,
          guess=None, ipopt=None, rest_tol=1e-10, t0=0.0) -> Trajectory:
    """Solve ``problem`` from ``theta0``; return the optimal :class:`Trajectory`.

    horizon    : ``math.inf`` (default) or a finite T > 0.
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

    Raises ProblemError for bad input and SolveError when IPOPT does not converge.
    """
    theta0 = problem.check_initial_state(theta0)
    horizon = _check_horizon(horizon)
    t0 = _check_start_time(t0)
    infinite = math.isinf(horizon)
    thetaT = _check_terminal(problem, terminal, infinite)
    mesh = mesh or Mesh()
    transcription = transcription_for(problem, mesh, infinite, thetaT is not None, ipopt)
    scale = time_scale or (default_time_scale(problem, theta0) if infinite else horizon)
    if not scale > 0 or not math.isfinite(scale):
        raise ProblemError(f"time_scale must be finite and > 0, got {scale}")
    s_end = window_end(scale, problem.gamma) if infinite else 1.0
    candidates, failures = [], []
    for one_guess in _guess_list(guess, theta0):
        initial = _initial_guess(transcription, theta0, thetaT, scale, one_guess, s_end, t0)
        try:
            candidates.append(checked_solve(transcription, theta0, problem.parameter_values(t0=t0), scale,
                                            thetaT, initial, s_end))
        except SolveError as exc:   # another guess may still converge: keep the others
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
    return _continue_by_policy(problem, transcription, trajectory, raw, scale, s_end, rest_tol)


def window_end(scale, gamma) -> float:
    """s_end of the mapped window: 1 (all of [0, ∞)) for γ = 0, else where e^{−γt} = WINDOW_DISCOUNT."""
    if gamma == 0:
        return 1.0
    t_window = -math.log(WINDOW_DISCOUNT) / gamma
    return t_window / (scale + t_window)


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
    # 2/√(r_min r_max): the slow tail of a spread spectrum needs elements late in time
    decay_time = 2.0 / math.sqrt(rates.min() * rates.max())
    return min(decay_time, 5.0 / gamma) if gamma > 0 else decay_time


# -- infinite horizon: continuation by the stationary policy ---------------------------
def _continue_by_policy(problem, tr, trajectory, raw, scale, s_end, rest_tol):
    t_keep = trajectory.t[0] - math.log(KEEP_DISCOUNT) / problem.gamma
    ends = trajectory.t[trajectory.elements[:, 1].astype(int)]
    last_element = max(int(np.searchsorted(ends, t_keep, "right")) - 1, 0)
    kept = _truncate(trajectory, last_element)
    speed = np.linalg.norm(trajectory.velocity, axis=1)
    peak = speed.max()
    size = max(np.abs(trajectory.theta).max(), 1e-300)
    if speed[len(kept) - 1] <= rest_tol * peak or peak * scale <= 1e-13 * size:
        # at rest, or θ0 itself is a rest point (the path moves by round-off only)
        kept.stats["reached_rest"] = True
        return kept
    policy = Policy(problem, tr, scale, s_end, raw)
    typical = np.abs(trajectory.theta[0] - kept.theta[-1]).max()
    t, theta, at_rest = integrate_policy(policy, kept.t[-1], kept.theta[-1], rest_tol * peak,
                                         atol=1e-12 * typical)
    continuation = _sampled_trajectory(problem, tr, t, theta, kept.objective)
    # θ̇ of the collocated window's end against the policy's π there: both approximate the
    # same optimal velocity, so a gap means the window's last elements under-resolve the path
    junction = float(np.abs(kept.velocity[-1] - continuation.velocity[0]).max() / peak)
    joined = concatenate(kept, continuation)
    joined.stats.update(solves=kept.stats["solves"] + policy.solves, iterations=kept.stats["iterations"] + policy.iterations,
                        solve_time=kept.stats["solve_time"] + policy.solve_time,
                        reached_rest=at_rest, policy_from=float(kept.t[-1]), junction_mismatch=junction)
    return joined


def _sampled_trajectory(problem, tr, t, theta, objective):
    """A Trajectory from the integrator's samples: one element per step."""
    per = SAMPLES_PER_STEP
    elements = [(i, i + per - 1, 0.0, 0.0) for i in range(0, len(t) - 1, per - 1)]
    velocity = np.empty_like(theta)
    for i0, i1, _, _ in elements:
        nodes = t[i0:i1 + 1]
        velocity[i0:i1 + 1] = lagrange_derivative(nodes, nodes).T @ theta[i0:i1 + 1]
    params = problem.parameter_values()
    raw_like = {"p": np.concatenate([np.zeros(2 * tr.n + 2), params])}
    kinetic, potential, dl_du = pointwise(tr, t, theta, velocity, raw_like)
    return Trajectory(t=t, theta=theta, velocity=velocity, kinetic=kinetic, potential=potential,
                      costate=-dl_du, objective=objective, elements=np.array(elements, float), stats={})


def _truncate(trajectory, last_element):
    stop = int(trajectory.elements[last_element, 1]) + 1
    return Trajectory(t=trajectory.t[:stop], theta=trajectory.theta[:stop],
                      velocity=trajectory.velocity[:stop], kinetic=trajectory.kinetic[:stop],
                      potential=trajectory.potential[:stop], costate=trajectory.costate[:stop],
                      objective=trajectory.objective, elements=trajectory.elements[: last_element + 1],
                      stats=dict(trajectory.stats))


# -- checks --------------------------------------------------------------------------
def _check_horizon(horizon) -> float:
    if isinstance(horizon, str):
        horizon = math.inf if horizon.strip().lower() in ("inf", "infinity") else horizon
    try:
        horizon = float(horizon)
    except (TypeError, ValueError):
        raise ProblemError(f"horizon must be a positive number or inf, got {horizon!r}") from None
    if not horizon > 0:
        raise ProblemError(f"horizon must be > 0, got {horizon}")
    return horizon


def _check_start_time(t0) -> float:
    try:
        t0 = float(t0)
    except (TypeError, ValueError):
        raise ProblemError(f"t0 must be a finite number, got {t0!r}") from None
    if not math.isfinite(t0):
        raise ProblemError(f"t0 must be finite, got {t0}")
    return t0


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


def _guess_list(guess, theta0):
    """A list of guesses: a list of Trajectories/callables, or a 2-D array of target points."""
    if isinstance(guess, (list, tuple)) and guess and not np.isscalar(guess[0]):
        return list(guess)
    return [guess]


def _initial_guess(tr, theta0, thetaT, scale, guess, s_end, t0=0.0):
    if guess is None:
        if thetaT is None:
            return None
        return tr.guess_from(s_end, lambda s: theta0 + s[:, None] * (thetaT - theta0),
                             lambda s: np.broadcast_to((thetaT - theta0) / scale, (len(s), tr.n)))
    clock = lambda s: t0 + np.asarray(tr.time_map.time(np.minimum(s, 1 - 1e-9), scale))
    if isinstance(guess, Trajectory):
        return tr.guess_from(s_end, lambda s: guess(np.clip(clock(s), guess.t[0], guess.t[-1])),
                             lambda s: np.zeros((len(s), tr.n)))
    if callable(guess):
        return tr.guess_from(s_end, lambda s: np.array([guess(t) for t in clock(s)]),
                             lambda s: np.zeros((len(s), tr.n)))
    target = np.asarray(guess, dtype=float).reshape(-1)
    if target.shape != theta0.shape:
        raise ProblemError(f"guess must have length {theta0.shape[0]}")
    shape = lambda s: np.exp(-np.asarray(tr.time_map.time(np.minimum(s, 1 - 1e-12), scale)) / scale)
    return tr.guess_from(s_end, lambda s: target + shape(s)[:, None] * (theta0 - target),
                         lambda s: -(shape(s)[:, None] * (theta0 - target)) / scale)
