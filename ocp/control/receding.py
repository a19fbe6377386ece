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

:func:`receding_windows` uses the same time consistency open loop: the infinite-horizon
optimal path over a finite duration as a chain of finite free-end windows, each solved from
the previous window's kept end (a reference for time-dependent losses and task switches).
"""
from __future__ import annotations

import math
import time

import casadi
import numpy as np

from ..budget import interrupts_noted
from ..checks import count, number
from ..errors import ProblemError, SolveError
from ..horizons import pipeline
from ..nlp.guesses import guess_list, initial_guess, shifted_guess
from ..nlp.local_model import default_time_scale
from ..nlp.mesh import Mesh
from ..nlp.refinement import double_until_agreed
from ..nlp.solution import from_solution
from ..nlp.time_maps import window_end
from ..nlp.transcription import transcription_for
from ..nlp.window import SolveStats, solve_window
from ..options import SolveOptions
from ..results.path import from_samples
from ..results.trajectory import Trajectory, concatenate
from ..results.trajectory_algebra import cut, discounted_integral

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
        self.plan_horizon = number("plan_horizon", plan_horizon, positive=True, allow_inf=True)
        self.dt = number("dt", dt, positive=True)
        if self.dt > self.plan_horizon:
            raise ProblemError(f"dt ({self.dt}) must not exceed plan_horizon ({self.plan_horizon})")
        ipopt = {"max_iter": count("max_iter", max_iter)}
        if max_time is not None:
            ipopt["max_cpu_time"] = number("max_time", max_time, positive=True)
        self.infinite = math.isinf(self.plan_horizon)
        # finite horizons: elements of width Δt by default, so θ(t + Δt) is a mesh node
        self.mesh = mesh or (Mesh(20, 5) if self.infinite else
                             Mesh(min(max(math.ceil(self.plan_horizon / self.dt - 1e-9), 4), 400), 5))
        self.transcription = transcription_for(problem, self.mesh, self.infinite, False, ipopt)
        self.time_scale = None if time_scale is None else number("time_scale", time_scale, positive=True)
        self.first_guess = guess
        self._fallback_rule = _fallback_function(problem)
        self.reset()

    def reset(self):
        """Forget the previous plan and the statistics."""
        self.plan, self._warm = None, None   # last successful plan; last finite iterate
        self.spent = SolveStats()
        self.stats = self.spent.record({"steps": 0, "fallbacks": 0, "gradient_fallbacks": 0, "failures": []})

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
            guesses = ([shifted_guess(tr, self._warm, t, scale, s_end)] if warm else
                       [initial_guess(tr, theta, None, scale, one, s_end, t)
                        for one in guess_list(self.first_guess, theta)])
            raws = [solve_window(tr, theta, problem.parameter_values(t0=t), scale, guess=guess, s_end=s_end,
                                 t_offset=t, require_converged=False) for guess in guesses]
            self.spent = sum((raw["stats"] for raw in raws), self.spent)
            self.spent.record(self.stats)
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
        steps = count("steps", steps)
        theta = self.problem.check_initial_state(theta0)
        self.reset()
        start = time.perf_counter()
        times, samples = [], []
        taus = np.linspace(0.0, 1.0, SAMPLES_PER_STEP)
        t = float(t0)
        # Ctrl-C anywhere in a step, also inside a CasADi evaluation outside IPOPT (CasADi would turn
        # it into a failed evaluation, the step would fall back and the loop go on): noted, raised here
        with interrupts_noted() as interrupted:
            for k in range(int(steps)):
                theta, t = self._closed_loop_step(theta, t, t0, k, taus, times, samples)
                if interrupted:
                    raise KeyboardInterrupt
        trajectory = from_samples(self.problem, np.concatenate(times), np.vstack(samples), SAMPLES_PER_STEP)
        trajectory.stats.update(self.stats, wall_time=time.perf_counter() - start, dt=self.dt,
                                plan_horizon=self.plan_horizon, gamma=self.problem.gamma)
        return trajectory

    def _closed_loop_step(self, theta, t, t0, k, taus, times, samples):
        """One control interval of :meth:`run`: the applied plan's samples appended; (θ, t) next."""
        theta_next, plan = self.step(theta, t)
        tt = t + self.dt * taus
        if plan is not None:
            piece = plan(tt)
            piece[0], piece[-1] = theta, theta_next
        else:
            piece = theta + np.outer(taus, theta_next - theta)
        times.append(tt if k == 0 else tt[1:])
        samples.append(piece if k == 0 else piece[1:])
        return theta_next, t0 + (k + 1) * self.dt


def _fallback_function(problem):
    """θ̇ = u0 − M⁻¹∇V / c: u0 minimises the kinetic term (the drift), M its Hessian in θ̇
    (G/η), V the potential term (kL); c = max(γ, √λ, λΔt), λ the top eigenvalue of M⁻¹∇²V."""
    n = problem.state_dim
    x, u = casadi.SX.sym("x", n), casadi.SX.sym("u", n)
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


# -- the infinite-horizon path by receding windows ----------------------------------------
KEEP_WINDOW = 5.0       # γ·(kept part of each receding window): discount weights ≥ e^{−5} there
MARGIN = 20.0           # γ·(planned beyond it): the free end moves the kept part by ~e^{−20}


def receding_windows(problem, theta0, duration, mesh=None, guess=None) -> Trajectory:
    """The infinite-horizon optimal path on [0, duration] by time consistency: solve on a
    finite horizon (KEEP_WINDOW + MARGIN)/γ with a free end, keep the first KEEP_WINDOW/γ,
    re-solve from its end state with the problem's clock there (``solve(t0=...)``: a
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
        raise ProblemError("receding windows need gamma > 0 (use the infinite horizon at gamma = 0)")
    keep, margin = KEEP_WINDOW / problem.gamma, MARGIN / problem.gamma
    options = SolveOptions.checked(problem, horizon=keep + margin, mesh=mesh, guess=guess)
    path, start, state = None, 0.0, problem.check_initial_state(theta0)
    meshes, unconverged = [], []
    while start < duration * (1 - 1e-12):
        length = min(keep, duration - start)
        window, change = _window(problem, state, options.replace(horizon=length + margin, t0=start), length,
                                 given_mesh=mesh is not None)
        meshes.append(int(window.stats["mesh"]["intervals"]))
        if change is not None and not change <= WINDOW_AGREEMENT:   # NaN counts as not converged
            unconverged.append((start, change))
        piece = cut(problem, window, start + length)
        path = piece if path is None else concatenate(path, piece)
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


def require_converged(path: Trajectory) -> Trajectory:
    """``path`` (from :func:`receding_windows` or :func:`solve_switch`) if every window's mesh
    converged, else SolveError naming how many did not."""
    unconverged = path.stats.get("unconverged_windows", [])
    if unconverged:
        raise SolveError("a receding window of the reference did not converge", "mesh", len(unconverged))
    return path


def _window(problem, state, options, length, given_mesh):
    """One receding window from the clock ``options.t0``, on the given mesh (change None) or on
    a mesh doubled from 40 intervals until its kept part converges (``ocp.nlp.refinement``);
    returns (window, last relative change)."""
    if given_mesh:
        return pipeline.run(problem, state, options), None

    def solve_on(mesh, coarse):
        guesses = options.guesses if coarse is None else (coarse,)
        return pipeline.run(problem, state, options.replace(mesh=mesh, guesses=guesses))

    def change(coarse, fine):
        kept = coarse.t <= options.t0 + length
        scale = max(np.abs(fine.theta).max(), 1e-300)
        return np.abs(fine(coarse.t[kept]) - coarse.theta[kept]).max() / scale

    result = double_until_agreed(solve_on, Mesh(40, 5), change, lambda value: value <= WINDOW_AGREEMENT,
                                 more=lambda mesh, doublings: mesh.intervals < MAX_WINDOW_INTERVALS)
    return result.solution, (result.history[-1][1] if result.history else math.inf)
