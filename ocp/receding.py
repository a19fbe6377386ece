"""Receding-horizon (model-predictive) control of a discounted OCP.

At each control interval [t, t + Δt] the controller solves the OCP from the current state
over the planning horizon T_h (a finite, free-end horizon, or ``math.inf``: the infinite
map of ``ocp.solve``) and applies the plan's own collocation polynomial θ(s), s ∈ [t, t+Δt].
Exponential discounting is time-consistent (design notes §2): the optimal path from a later
state continues the same path, so the closed loop tends to the open-loop infinite-horizon
optimum as T_h grows, and is that optimum (up to the mesh) when T_h = ∞.

The NLP is built once (θ0, t0 and the constants are NLP parameters); each solve is warm
started from the previous plan shifted by Δt. IPOPT gets a per-step budget (``max_iter``,
``max_time`` → ``max_cpu_time``). When a solve fails or exceeds it the step falls back:
along the last successful plan while it covers t + Δt, else one explicit step of the
discounted gradient rule θ̇ = f − ηk G⁻¹∇L / c, c = max(γ, √(ηkλ), ηkλΔt), λ the largest
curvature of G⁻¹∇²L (the γ ≫ √(ηkλ) and γ → 0 limits of the quadratic solution, with the
last term keeping the explicit step stable). Fallbacks are counted, never raised.
"""
from __future__ import annotations

import math
import time

import casadi
import numpy as np

from .collocation import lagrange_derivative
from .errors import ProblemError
from .path import running_cost
from .postprocess import from_solution
from .solver import _guess_list, _initial_guess, default_time_scale, transcription_for, window_end
from .trajectory import Trajectory
from .transcription import Mesh

SAMPLES_PER_STEP = 6     # closed-loop samples per control interval (one polynomial element)


class RecedingHorizonController:
    """MPC around ``problem``: plan over ``plan_horizon`` (or ``math.inf``), apply ``dt``.

    mesh       : :class:`Mesh` of the plan (default: degree 5; 20 elements on the infinite map,
                 elements of width Δt (4 to 400 of them) on a finite horizon).
    max_iter   : IPOPT iterations per step; ``max_time``: IPOPT CPU seconds per step (None: no limit).
    time_scale : c of the infinite map (default from the local curvature at the first state).
    guess      : initial guess of the first plan, as for ``ocp.solve`` (e.g. a target point, or
                 a list of them: each is solved and the best converged plan kept).
    """

    def __init__(self, problem, plan_horizon=math.inf, dt=0.1, mesh=None, max_iter=200,
                 max_time=None, time_scale=None, guess=None):
        self.problem = problem
        self.plan_horizon = _positive("plan_horizon", plan_horizon, allow_inf=True)
        self.dt = _positive("dt", dt)
        if self.dt > self.plan_horizon:
            raise ProblemError(f"dt ({self.dt}) must not exceed plan_horizon ({self.plan_horizon})")
        if not isinstance(max_iter, (int, np.integer)) or isinstance(max_iter, bool) or max_iter < 1:
            raise ProblemError(f"max_iter must be a positive integer, got {max_iter!r}")
        ipopt = {"max_iter": int(max_iter)}
        if max_time is not None:
            ipopt["max_cpu_time"] = _positive("max_time", max_time)
        self.infinite = math.isinf(self.plan_horizon)
        # finite horizons: elements of width Δt by default, so θ(t + Δt) is a mesh node
        self.mesh = mesh or (Mesh(20, 5) if self.infinite else
                             Mesh(min(max(math.ceil(self.plan_horizon / self.dt - 1e-9), 4), 400), 5))
        self.transcription = transcription_for(problem, self.mesh, self.infinite, False, ipopt)
        self.time_scale = None if time_scale is None else _positive("time_scale", time_scale)
        self.first_guess = guess
        self._fallback_rule = _fallback_function(problem)
        self.reset()

    def reset(self):
        """Forget the previous plan and the statistics."""
        self.plan, self._warm = None, None   # last successful plan; last finite iterate
        self.stats = {"steps": 0, "solves": 0, "fallbacks": 0, "gradient_fallbacks": 0,
                      "iterations": 0, "solve_time": 0.0, "failures": []}

    # -- one control interval ----------------------------------------------------------
    def step(self, theta, t=0.0):
        """Re-plan from ``theta`` at time ``t``; return (θ(t + Δt), plan) where ``plan`` is the
        Trajectory applied on [t, t + Δt] (the new plan, or the one a fallback follows;
        ``None`` after a gradient fallback)."""
        theta = self.problem.check_initial_state(theta)
        tr, problem = self.transcription, self.problem
        if self.infinite:
            scale = self.time_scale or default_time_scale(problem, theta)
            self.time_scale = scale
            s_end = window_end(scale, problem.gamma)
        else:
            scale, s_end = self.plan_horizon, 1.0
        self.stats["steps"] += 1
        try:
            warm = self._warm is not None and self._warm.t[0] <= t < self._warm.t[-1]
            guesses = ([self._shifted_guess(t, scale, s_end)] if warm else
                       [_initial_guess(tr, theta, None, scale, one, s_end, t)
                        for one in _guess_list(self.first_guess, theta)])
            raws = [tr.solve(theta, problem.parameter_values(t0=t), scale, None, guess, s_end)
                    for guess in guesses]
            self.stats["solves"] += len(raws)
            self.stats["iterations"] += sum(r["iterations"] for r in raws)
            self.stats["solve_time"] += sum(r["solve_time"] for r in raws)
            # several first guesses (one per basin): the converged plan of lowest objective
            raw = min(raws, key=lambda r: (not r["success"], r["f"]))
            plan = from_solution(tr, raw, scale, t_offset=t)
            if not raw["success"]:
                # a budget-limited iterate still warm-starts the next step (its iterations
                # accumulate across steps, as in real-time iteration schemes)
                if np.all(np.isfinite(plan.theta)) and np.all(np.isfinite(plan.velocity)):
                    self._warm = plan
                raise RuntimeError(f"IPOPT status {raw['status']}")
            theta_next = plan(t + self.dt)
            if not np.all(np.isfinite(theta_next)):
                raise RuntimeError("plan is not finite")
        except Exception as exc:   # budget exceeded, divergence, evaluation error: fall back
            return self._fallback(theta, t, exc)
        self.plan = self._warm = plan
        return theta_next, plan

    def _shifted_guess(self, t, scale, s_end):
        """The previous plan (or iterate) from t on, its end state held beyond its end."""
        plan, tr = self._warm, self.transcription
        end = plan.t[-1]

        def times(s):
            return t + np.asarray(tr.time_map.time(np.minimum(s, 1 - 1e-12), scale))

        def velocity(s):
            tt = times(s)
            v = np.column_stack([np.interp(tt, plan.t, plan.velocity[:, i]) for i in range(tr.n)])
            return np.where((tt <= end)[:, None], v, 0.0)

        return tr.guess_from(s_end, lambda s: plan(np.minimum(times(s), end)), velocity)

    def _fallback(self, theta, t, exc):
        self.stats["fallbacks"] += 1
        self.stats["failures"].append({"t": float(t), "reason": str(exc)})
        plan = self.plan
        if plan is not None and plan.t[0] <= t and t + self.dt <= plan.t[-1]:
            return plan(t + self.dt), plan
        self.stats["gradient_fallbacks"] += 1
        try:
            velocity = np.asarray(self._fallback_rule(theta, self.problem.parameter_values(t0=t),
                                                      self.dt)).ravel()
        except Exception:
            velocity = np.zeros_like(theta)
        velocity = np.where(np.isfinite(velocity), velocity, 0.0)
        return theta + self.dt * velocity, None

    # -- closed loop ---------------------------------------------------------------
    def run(self, theta0, steps=100, t0=0.0) -> Trajectory:
        """``steps`` control intervals from θ0; the closed-loop Trajectory (one polynomial
        element per interval, sampled from the applied plan) with ``stats``: solves,
        fallbacks, gradient_fallbacks, iterations, solve_time, wall_time, failures."""
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
            raise ProblemError(f"steps must be a positive integer, got {steps!r}")
        theta = self.problem.check_initial_state(theta0)
        self.reset()
        start = time.perf_counter()
        times, samples = [], []
        taus = np.linspace(0.0, 1.0, SAMPLES_PER_STEP)
        t = float(t0)
        for k in range(int(steps)):
            theta_next, plan = self.step(theta, t)
            tt = t + self.dt * taus
            if plan is not None:
                piece = plan(tt)
                piece[0], piece[-1] = theta, theta_next
            else:
                piece = theta + np.outer(taus, theta_next - theta)
            times.append(tt if k == 0 else tt[1:])
            samples.append(piece if k == 0 else piece[1:])
            theta, t = theta_next, t0 + (k + 1) * self.dt
        trajectory = self._closed_loop(np.concatenate(times), np.vstack(samples), int(steps))
        trajectory.stats.update(self.stats, wall_time=time.perf_counter() - start, dt=self.dt,
                                plan_horizon=self.plan_horizon, gamma=self.problem.gamma)
        return trajectory

    def _closed_loop(self, t, theta, steps):
        per = SAMPLES_PER_STEP
        elements = [(k * (per - 1), (k + 1) * (per - 1), 0.0, 0.0) for k in range(steps)]
        velocity = np.empty_like(theta)
        for i0, i1, _, _ in elements:
            nodes = t[i0:i1 + 1]
            velocity[i0:i1 + 1] = lagrange_derivative(nodes, nodes).T @ theta[i0:i1 + 1]
        kinetic, potential, dl_du = running_cost(self.problem, t, theta, velocity)
        discount = np.exp(-self.problem.gamma * (t - t[0]))
        energy = discount * (kinetic + potential)
        objective = float(np.sum(0.5 * np.diff(t) * (energy[1:] + energy[:-1])))   # trapezoid
        return Trajectory(t=t, theta=theta, velocity=velocity, kinetic=kinetic, potential=potential,
                          costate=-dl_du, objective=objective, elements=np.array(elements, float))


def _fallback_function(problem):
    """θ̇ = u0 − M⁻¹∇V / c: u0 minimises the kinetic term (the drift), M its Hessian in θ̇
    (G/η), V the potential term (kL); c = max(γ, √λ, λΔt), λ the top eigenvalue of M⁻¹∇²V."""
    n = problem.state_dim
    x, u, dt = casadi.SX.sym("x", n), casadi.SX.sym("u", n), casadi.SX.sym("dt")
    P = casadi.SX.sym("P", problem.layout.size)
    params = problem.layout.unpack(P)
    kinetic, potential = problem.running_cost(params["t0"], x, u, params)
    M = casadi.substitute(casadi.hessian(kinetic, u)[0], u, casadi.DM.zeros(n))
    b = casadi.substitute(casadi.gradient(kinetic, u), u, casadi.DM.zeros(n))
    potential = casadi.substitute(potential, u, casadi.DM.zeros(n))
    parts = casadi.Function("fallback", [x, P], [M, b, casadi.gradient(potential, x),
                                                 casadi.hessian(potential, x)[0]])

    def rule(theta, p, step):
        M, b, grad, hess = (np.asarray(value) for value in parts(theta, p))
        M_inv = np.linalg.pinv(M)
        curvature = max(float(np.max(np.abs(np.linalg.eigvals(M_inv @ hess)))), 0.0)
        c = max(problem.gamma, math.sqrt(curvature), curvature * step, 1e-12)
        return -(M_inv @ b).ravel() - (M_inv @ grad).ravel() / c

    return rule


def _positive(name, value, allow_inf=False):
    if isinstance(value, str) and allow_inf and value.strip().lower() in ("inf", "infinity"):
        return math.inf
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ProblemError(f"{name} must be a positive number, got {value!r}") from None
    if not value > 0 or (math.isinf(value) and not allow_inf) or math.isnan(value):
        raise ProblemError(f"{name} must be {'> 0 or inf' if allow_inf else 'finite and > 0'}, got {value}")
    return value
