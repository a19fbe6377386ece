"""``ocp.solve``: finite horizons in one NLP; the infinite horizon by collocation plus policy.

Infinite horizon (design notes §2). With γ = 0 the algebraic map t = c·s/(1 − s) covers
[0, ∞) in one transcription. With γ > 0 the weight e^{−γt} eventually falls below
round-off; there the reduced Hessian is numerically singular, IPOPT regularises and the
path is undetermined. So the mapped domain is cut where e^{−γt} = WINDOW_DISCOUNT (a
free end: the transversality condition holds there), and only the part with
e^{−γt} ≥ KEEP_DISCOUNT is kept; the free end perturbs it by about e^{−γ(T_w − t)} ≤ 1e-10.
Exponential discounting is time-consistent, so the optimal path from any later state
continues the same path, and the optimal policy θ̇ = π(θ) is stationary. If the path has
not come to rest in the kept part, θ̇ = π(θ) is integrated with an adaptive 8th-order
Runge–Kutta method (DOP853); each evaluation of π is one warm-started solve of the same
NLP from θ: π(θ) = argmin_u ℓ(θ, u) + ∇V(θ)ᵀu, with ∇V(θ) = ∂J*/∂θ0 read from the
multiplier of the initial-state constraint. When γ is large the motion is slow (rates
≈ ηkλ/γ), and the integrator crosses it in few, long steps.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
from scipy.integrate import solve_ivp

from .collocation import lagrange_derivative
from .errors import ProblemError, SolveError, TerminalConstraintError
from .trajectory import Trajectory, concatenate
from .transcription import Mesh, Transcription

WINDOW_DISCOUNT = 1e-12      # the mapped domain ends where e^{−γt} reaches this
KEEP_DISCOUNT = 1e-2         # collocation samples are kept while e^{−γt} ≥ this
POLICY_SAMPLES = 9           # Chebyshev–Lobatto samples of each integrator step
MAX_POLICY_SOLVES = 50_000


def solve(problem, theta0, horizon=math.inf, terminal=None, mesh=None, time_scale=None,
          guess=None, ipopt=None, rest_tol=1e-10) -> Trajectory:
    """Solve ``problem`` from ``theta0``; return the optimal :class:`Trajectory`.

    horizon    : ``math.inf`` (default) or a finite T > 0.
    terminal   : fixed θ(T) (finite horizons only); ``None`` leaves the end free.
    mesh       : :class:`Mesh` (intervals, degree, scheme); default 40 × degree 5 Legendre.
    time_scale : c of the infinite-horizon map t = c·s/(1−s); default from the local
                 curvature at θ0 and γ (see :func:`default_time_scale`).
    guess      : a Trajectory, a callable t → θ, or a target point θ_∞ (the guess then
                 approaches it exponentially); default: θ0 held constant.
    rest_tol   : the infinite-horizon path is followed until |θ̇| ≤ rest_tol · max|θ̇|.

    Raises ProblemError for bad input and SolveError when IPOPT does not converge.
    """
    theta0 = problem.check_initial_state(theta0)
    horizon = _check_horizon(horizon)
    infinite = math.isinf(horizon)
    thetaT = _check_terminal(problem, terminal, infinite)
    mesh = mesh or Mesh()
    transcription = transcription_for(problem, mesh, infinite, thetaT is not None, ipopt)
    scale = time_scale or (default_time_scale(problem, theta0) if infinite else horizon)
    if not scale > 0 or not math.isfinite(scale):
        raise ProblemError(f"time_scale must be finite and > 0, got {scale}")
    s_end = window_end(scale, problem.gamma) if infinite else 1.0
    initial = _initial_guess(transcription, theta0, thetaT, scale, guess, s_end)
    raw = _checked_solve(transcription, theta0, problem.parameter_values(), scale, thetaT,
                         initial, s_end)
    trajectory = from_solution(transcription, raw, scale)
    trajectory.stats.update(horizon=horizon, gamma=problem.gamma, solves=1)
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
    """Time scale c of the infinite map: the decay time of the local quadratic model at θ0,
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
    decay_time = 1.0 / math.sqrt(rates.min() * rates.max())
    return min(decay_time, 5.0 / gamma) if gamma > 0 else decay_time


# -- post-processing -------------------------------------------------------------------
def from_solution(transcription, raw, scale, t_offset=0.0) -> Trajectory:
    """Samples, energies and costates of a raw NLP solution as a Trajectory."""
    tr, n = transcription, transcription.n
    X, U, x_end = tr.unpack(raw["x"])
    nu = tr.collocation_multipliers(raw)
    gamma, s_end = raw["p"][2 * n + 2], raw["p"][2 * n + 1]
    t_list, x_list, v_list, lam_list, elements = [], [], [], [], []
    for e, scheme in enumerate(tr.schemes):
        s0, h = s_end * tr.bounds[e], s_end * (tr.bounds[e + 1] - tr.bounds[e])
        taus = scheme.nodes
        last = e == len(tr.schemes) - 1
        with_end = scheme.scheme == "legendre" and not (last and s_end >= 1 and tr.time_map.infinite)
        if with_end:
            taus = np.append(taus, 1.0)
        s = s0 + h * taus
        t = tr.time_map.time(s, scale)
        slope = X[e] @ lagrange_derivative(scheme.nodes, taus) / (h * tr.time_map.rate(s, scale))
        states = X[e] @ _basis_on(scheme.nodes, taus)
        weights = scheme.quadrature
        discount = np.exp(-gamma * t[1:1 + scheme.degree])
        with np.errstate(divide="ignore", invalid="ignore"):
            lam_points = -nu[e] / (weights * discount)
        lam = lam_points @ _basis_on(scheme.points, taus)
        if e > 0:  # the start node is the previous element's last sample
            t, states, slope, lam = t[1:], states[:, 1:], slope[:, 1:], lam[:, 1:]
        t_list.append(t)
        x_list.append(states.T)
        v_list.append(slope.T)
        lam_list.append(lam.T)
        stop = sum(len(x) for x in t_list) - 1
        start = stop - len(taus) + 1
        elements.append((start, stop, t_offset, scale if tr.time_map.infinite else 0.0))
    t = np.concatenate(t_list) + t_offset
    theta, velocity = np.vstack(x_list), np.vstack(v_list)
    if not tr.time_map.infinite:
        elements = [(a, b, t_offset + 0.0, 0.0) for a, b, _, _ in elements]
    costate = np.vstack(lam_list)
    costate[0] = tr.initial_costate(raw)
    kinetic, potential, dl_du = _pointwise(tr, t, theta, velocity, raw)
    unusable = ~np.isfinite(costate).all(axis=1) | (np.exp(-gamma * (t - t_offset)) < 1e-250)
    costate[unusable] = -dl_du[unusable]   # discount underflow: maximum principle instead
    stats = {"success": raw["success"], "status": raw["status"], "iterations": raw["iterations"],
             "build_time": tr.build_time, "solve_time": raw["solve_time"],
             "mesh": {"intervals": tr.mesh.intervals, "degree": tr.mesh.degree,
                      "scheme": tr.mesh.scheme, "map": tr.time_map.name, "scale": scale}}
    return Trajectory(t=t, theta=theta, velocity=velocity, kinetic=kinetic, potential=potential,
                      costate=costate, objective=raw["f"], elements=np.array(elements, float),
                      stats=stats)


def _basis_on(nodes, taus):
    from .collocation import lagrange_basis
    return lagrange_basis(nodes, taus)


def _pointwise(tr, t, theta, velocity, raw):
    n = tr.n
    params = raw["p"][2 * n + 2:]
    m = len(t)
    pointwise = tr._post.map(m)
    kinetic, potential, dl_du, _ = pointwise(t.reshape(1, -1), theta.T, velocity.T, np.tile(params[:, None], (1, m)))
    return (np.asarray(kinetic).ravel(), np.asarray(potential).ravel(), np.asarray(dl_du).T)


# -- infinite horizon: continuation by the stationary policy ---------------------------
def _continue_by_policy(problem, tr, trajectory, raw, scale, s_end, rest_tol):
    t_keep = -math.log(KEEP_DISCOUNT) / problem.gamma
    ends = trajectory.t[trajectory.elements[:, 1].astype(int)]
    last_element = max(int(np.searchsorted(ends, t_keep, "right")) - 1, 0)
    kept = _truncate(trajectory, last_element)
    speed = np.linalg.norm(trajectory.velocity, axis=1)
    peak = speed.max()
    if speed[len(kept) - 1] <= rest_tol * peak:
        kept.stats["reached_rest"] = True
        return kept
    policy = Policy(problem, tr, scale, s_end, raw)
    t_start, theta_start = kept.t[-1], kept.theta[-1]

    def at_rest(t, theta):
        return np.linalg.norm(policy(t, theta)) - rest_tol * peak
    at_rest.terminal = True

    typical = np.abs(trajectory.theta[0] - kept.theta[-1]).max() + np.abs(kept.theta[-1]).max() * 1e-3
    span = 1e4 / max(peak / typical, 1e-300) + 1e4 * (t_start + scale)
    result = solve_ivp(policy, (t_start, t_start + span), theta_start, method="DOP853",
                       rtol=1e-10, atol=1e-12 * typical, dense_output=True, events=at_rest)
    if result.status < 0:
        raise SolveError(f"policy integration failed: {result.message}", "integrator", policy.solves)
    continuation = _policy_trajectory(problem, tr, result, kept)
    joined = concatenate(kept, continuation)
    joined.stats.update(solves=1 + policy.solves, iterations=kept.stats["iterations"] + policy.iterations,
                        solve_time=kept.stats["solve_time"] + policy.solve_time,
                        reached_rest=result.status == 1, policy_from=float(t_start))
    if result.status != 1:
        warnings.warn("infinite-horizon path not at rest at the end of the integration span", RuntimeWarning)
    return joined


class Policy:
    """π(θ) at time t: a warm-started solve of the infinite-horizon NLP from θ."""

    def __init__(self, problem, tr, scale, s_end, raw):
        self.problem, self.tr, self.scale, self.s_end, self.last = problem, tr, scale, s_end, raw
        self.solves = self.iterations = 0
        self.solve_time = 0.0
        self._memo = (None, None)

    def __call__(self, t, theta):
        key = (t, np.asarray(theta, float).tobytes())
        if self._memo[0] == key:   # the event function asks again for the step's end point
            return self._memo[1]
        velocity = self._evaluate(t, np.asarray(theta, float))
        self._memo = (key, velocity)
        return velocity

    def _evaluate(self, t, theta):
        if self.solves >= MAX_POLICY_SOLVES:
            raise SolveError("too many policy solves on the infinite horizon", "policy_budget", self.solves)
        params = self.problem.parameter_values(t0=t if self._time_dependent else 0.0)
        raw = _checked_solve(self.tr, theta, params, self.scale, None, self.last, self.s_end)
        self.last = raw
        self.solves += 1
        self.iterations += raw["iterations"]
        self.solve_time += raw["solve_time"]
        lam = self.tr.initial_costate(raw)
        _, U, _ = self.tr.unpack(raw["x"])
        return velocity_from_costate(self.tr, t, theta, lam, U[0][:, 0], params)

    _time_dependent = False


def velocity_from_costate(tr, t, theta, lam, u, params, iterations=20):
    """u = argmin ℓ(t, θ, u) + λᵀu by Newton's method (exact in one step for quadratic ℓ)."""
    for _ in range(iterations):
        _, _, grad, hess = tr._post(t, theta, u, params)
        step = np.linalg.solve(np.asarray(hess), np.asarray(grad).ravel() + lam)
        u = u - step
        if np.linalg.norm(step) <= 1e-15 * (1 + np.linalg.norm(u)):
            break
    return u


def _policy_trajectory(problem, tr, result, kept):
    """Sample the integrator's dense output on Chebyshev–Lobatto points of each step."""
    steps = result.t
    cheb = 0.5 * (1 - np.cos(np.pi * np.arange(POLICY_SAMPLES) / (POLICY_SAMPLES - 1)))
    t_list, elements = [steps[:1]], []
    for a, b in zip(steps[:-1], steps[1:]):
        local = a + (b - a) * cheb
        t_list.append(local[1:])
        stop = sum(len(x) for x in t_list) - 1
        elements.append((stop - POLICY_SAMPLES + 1, stop, 0.0, 0.0))
    t = np.concatenate(t_list)
    theta = result.sol(t).T
    velocity = np.empty_like(theta)
    for i0, i1, _, _ in elements:
        nodes = t[i0:i1 + 1]
        velocity[i0:i1 + 1] = lagrange_derivative(nodes, nodes).T @ theta[i0:i1 + 1]
    params = problem.parameter_values()
    raw_like = {"p": np.concatenate([np.zeros(2 * tr.n + 2), params])}
    kinetic, potential, dl_du = _pointwise(tr, t, theta, velocity, raw_like)
    return Trajectory(t=t, theta=theta, velocity=velocity, kinetic=kinetic, potential=potential,
                      costate=-dl_du, objective=kept.objective, elements=np.array(elements, float),
                      stats={})


def _truncate(trajectory, last_element):
    stop = int(trajectory.elements[last_element, 1]) + 1
    return Trajectory(t=trajectory.t[:stop], theta=trajectory.theta[:stop],
                      velocity=trajectory.velocity[:stop], kinetic=trajectory.kinetic[:stop],
                      potential=trajectory.potential[:stop], costate=trajectory.costate[:stop],
                      objective=trajectory.objective, elements=trajectory.elements[: last_element + 1],
                      stats=dict(trajectory.stats))


# -- checks --------------------------------------------------------------------------
def _checked_solve(tr, theta0, params, scale, thetaT, guess, s_end=1.0):
    raw = tr.solve(theta0, params, scale, thetaT, guess, s_end)
    if not raw["success"]:
        try:
            last = from_solution(tr, raw, scale)
        except Exception:  # a diverged iterate may not even post-process
            last = None
        raise SolveError("IPOPT did not converge", raw["status"], raw["iterations"], last)
    return raw


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
    """With γ = 0 the infinite-horizon objective is finite only if k·L vanishes at the limit."""
    if problem.gamma > 0:
        return
    scale = np.abs(trajectory.potential).max() + np.abs(trajectory.kinetic).max()
    if abs(trajectory.potential[-1]) > 1e-6 * scale + 1e-12:
        raise ProblemError(
            "with gamma = 0 and an infinite horizon the loss must be 0 at the limit point "
            f"(k·L there is {trajectory.potential[-1]:.3g}); subtract the loss minimum or use gamma > 0")


def _initial_guess(tr, theta0, thetaT, scale, guess, s_end):
    if guess is None:
        if thetaT is None:
            return None
        return tr.guess_from(s_end, lambda s: theta0 + s[:, None] * (thetaT - theta0),
                             lambda s: np.broadcast_to((thetaT - theta0) / scale, (len(s), tr.n)))
    if isinstance(guess, Trajectory):
        return tr.guess_from(s_end, lambda s: guess(np.minimum(tr.time_map.time(np.minimum(s, 1 - 1e-9), scale), guess.t[-1])),
                             lambda s: np.zeros((len(s), tr.n)))
    if callable(guess):
        return tr.guess_from(s_end, lambda s: np.array([guess(t) for t in tr.time_map.time(np.minimum(s, 1 - 1e-9), scale)]),
                             lambda s: np.zeros((len(s), tr.n)))
    target = np.asarray(guess, dtype=float).reshape(-1)
    if target.shape != theta0.shape:
        raise ProblemError(f"guess must have length {theta0.shape[0]}")
    shape = lambda s: np.exp(-np.asarray(tr.time_map.time(np.minimum(s, 1 - 1e-12), scale)) / scale)
    return tr.guess_from(s_end, lambda s: target + shape(s)[:, None] * (theta0 - target),
                         lambda s: -(shape(s)[:, None] * (theta0 - target)) / scale)
