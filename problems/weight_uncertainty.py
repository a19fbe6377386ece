"""Weight uncertainty and task switches (Vastola, Gershman & Rajan 2025, App. I, Eqs. 143–149).

Each weight i carries a Gaussian N(μ_i, v_i); the state is x = (μ_1..μ_D, v_1..v_D). The
running cost (derivation: docs/weight_uncertainty.md) is

    ℓ = Σ_i [ μ̇_i²/(2ηv_i) + v̇_i²/(4ηv_i²) − (β/2) log v_i ]     (1/η)·KL rate; entropy bonus
        + k( gᵀa + ½aᵀHa + ½Σ_i H_ii v_i ) − c(t),   a = μ − μ0     k·E[L] for θ ~ N(μ, diag v)

discounted by e^{−γt}; the metric is G(x) = diag(1/v, 1/(2v²)) (the Fisher metric of the
Gaussian), so the kinetic part is the engine's (1/2η) ẋᵀG(x)ẋ. β is the entropy weight
(1 in the paper). H is symmetric positive definite (a list: its diagonal). c(t) is the
value of the rest of the terms at the current task's rest point, a constant per task: it
changes neither the Euler–Lagrange equations nor the optimal path, and makes the potential
vanish at rest (γ = 0 then has finite J). A task switch at t_s replaces (g, H) by
(g_after, H_after).

Euler–Lagrange equations (Eqs. 145/147 with the entropy weight β):

    μ̈ − (v̇/v + γ) ⊙ μ̇ = ηk v ⊙ (g + Ha)
    v̈ − v̇²/v − γ v̇    = ηv ⊙ (k H_ii v − β) − μ̇²

Rest point: μ* = μ0 − H⁻¹g, v* = β/(k H_ii) (Eq. 149 for β = 1; exact at rest, not only in
the overdamped limit). Overdamped limit (γ → ∞ at fixed η/γ, Eq. 148): μ̇ = −(ηk/γ) v ⊙ ∇L,
v̇ = (η/γ) v ⊙ (β − k H_ii v): :meth:`WeightUncertaintyScenario.overdamped_path`.

A switch is a kink in time: :func:`problems.task_switch.solve_switch` solves it in two
phases joined by time consistency, each a stationary problem (the learner re-plans at t_s;
docs/weight_uncertainty.md §4). ``ocp.solve`` of the problem of
a scenario with ``t_switch`` raises ProblemError: the engine's mesh has no break point at
t_s (a jump of the loss inside an element spoils collocation). The OCP itself (metric,
expected loss, the hand-derived EL residual :func:`hand_residual`) is in
:mod:`problems.weight_uncertainty_ocp`.
"""
from __future__ import annotations

import copy
import math

import numpy as np

import ocp
from ocp.control.receding import receding_windows

from .checks import array, scalar
from .quadratic import random_spd, symmetric_matrix
from .scenario import Scenario
from .task_switch import SwitchSolution, solve_switch
from .weight_uncertainty_ocp import WeightUncertaintyOCP

CURVATURE = ("symmetric positive definite matrix, or a list (its diagonal, > 0); draws: 1–3 weights, "
             "diagonal log-uniform in [0.3, 5] or a random SPD matrix")


class WeightUncertaintyScenario(Scenario):
    name = "weight_uncertainty"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. I, Eqs. 143–149: per-weight "
                 "Gaussians N(μ, v), Fisher-metric (KL) kinetic cost, entropy bonus, expected "
                 "quadratic loss; rest at μ = μ0 − H⁻¹g, v = β/(kH_ii) (Eq. 149, β = 1); optional task "
                 "switch at t_switch to (g_after, H_after), solved in two phases (solve_switch)")
    defaults = {"H": [4.0, 0.5], "g": [-2.0, 1.0], "mu0": None, "beta": 1.0,
                "H_after": None, "g_after": None, "t_switch": None,
                "gamma": 1.0, "eta": 1.0, "k": 1.0}
    ranges = {"H": CURVATURE,
              "g": "vector of H's size (gradient at μ0); draws: N(0, 1)",
              "mu0": "vector of H's size, expansion point of the loss (default zeros)",
              "beta": "> 0, entropy weight (paper: 1); draws: [0.5, 2]",
              "H_after": "like H: curvature after the switch (default: no switch)",
              "g_after": "like g: gradient after the switch (default: g)",
              "t_switch": "> 0, time of the task switch (default: none; needs H_after or g_after)",
              "gamma": "≥ 0; validation: 0, 0.25", "eta": "> 0; draws: [0.5, 2]", "k": "> 0; draws: [0.5, 2]"}
    validation_gammas = (0.0, 0.25)

    def normalise(self, params):
        H = symmetric_matrix("H", params["H"], definite=True)
        dim = len(H)
        g = _vector("g", params["g"], dim)
        mu0 = np.zeros(dim) if params["mu0"] is None else _vector("mu0", params["mu0"], dim)
        out = {key: scalar(key, params[key]) for key in ("beta", "gamma", "eta", "k")}
        for key in ("beta", "eta", "k"):
            if not out[key] > 0:
                raise ocp.ProblemError(f"parameter {key!r} must be > 0, got {out[key]}; "
                                       f"valid: {self.ranges[key]}")
        if out["gamma"] < 0:
            raise ocp.ProblemError(f"parameter 'gamma' must be ≥ 0, got {out['gamma']}")
        switch = params["t_switch"]
        if switch is None:
            if params["H_after"] is not None or params["g_after"] is not None:
                raise ocp.ProblemError("H_after/g_after need t_switch (the time of the task switch)")
            H_after, g_after = H, g
        else:
            switch = scalar("t_switch", switch)
            if not switch > 0:
                raise ocp.ProblemError(f"parameter 't_switch' must be > 0, got {switch}")
            H_after = H if params["H_after"] is None else _curvature_like("H_after", params["H_after"], dim)
            g_after = g if params["g_after"] is None else _vector("g_after", params["g_after"], dim)
        after = (None, None) if switch is None else (_compact(H_after), g_after.tolist())
        return {"H": _compact(H), "g": g.tolist(), "mu0": mu0.tolist(), "beta": out["beta"],
                "H_after": after[0], "g_after": after[1], "t_switch": switch,
                "gamma": out["gamma"], "eta": out["eta"], "k": out["k"]}

    def build(self, params):
        constants = {"H": self.task_value("H", False, params), "g": np.array(params["g"]),
                     "mu0": np.array(params["mu0"]), "H_after": self.task_value("H", True, params),
                     "g_after": self.task_value("g", True, params)}
        constants["beta"] = params["beta"]
        constants["t_switch"] = params["t_switch"] if params["t_switch"] is not None else 0.0
        return WeightUncertaintyOCP(len(params["H"]), constants, params["gamma"], params["eta"],
                                    params["k"], name=self.name, switch=params["t_switch"] is not None)

    @staticmethod
    def task_value(key, after, params):
        """g (vector) or H (matrix) of the first task, or of the one after the switch (the
        first when there is none)."""
        value = params[key + "_after"] if after else None
        value = np.array(params[key] if value is None else value, dtype=float)
        return np.diag(value) if key == "H" and value.ndim == 1 else value

    @property
    def weights(self) -> int:
        return len(self.params["H"])

    def default_theta0(self):
        return np.concatenate([np.array(self.params["mu0"]), np.ones(self.weights)])

    def rest_point(self, after: bool = False) -> np.ndarray:
        """(μ*, v*) = (μ0 − H⁻¹g, β/(k diag H)) of the first task (or the one after the switch)."""
        H, g = self.task_value("H", after, self.params), self.task_value("g", after, self.params)
        return np.concatenate([np.array(self.params["mu0"]) - np.linalg.solve(H, g),
                               self.params["beta"] / (self.params["k"] * np.diag(H))])

    def fixed_point(self):
        """Where the path comes to rest: the rest point of the last task."""
        return self.rest_point(after=self.params["t_switch"] is not None)

    SWITCH_FLATTENING = 8.0     # validate: the new task's basin is this much flatter
    SWITCH_TIME = 3.0

    def extra_checks(self, theta0, trajectory):
        """App. I's optimal weight resetting, on this case's parameters: from rest, a switch
        at t_s to a basin SWITCH_FLATTENING× flatter with the same minimum (H/8, g/8) must
        leave μ in place, raise v monotonically, and end at the new rest variance β/(kH_ii/8)
        (Eq. 149). Values: relative error of the final variance (tolerance 1e-3), the
        largest decrease of v after t_s and the largest move of μ, relative to v* (1e-7), and
        the largest last mesh change of a receding window that did not converge (1e-6; 0
        when all converged)."""
        if self.params["t_switch"] is not None:
            return {}
        f = self.SWITCH_FLATTENING
        H = np.asarray(self.params["H"], dtype=float)
        switched = WeightUncertaintyScenario(**{**self.params, "H_after": (H / f).tolist(),
                                        "g_after": (np.asarray(self.params["g"]) / f).tolist(),
                                        "t_switch": self.SWITCH_TIME})
        start, n = switched.rest_point(), len(self.params["g"])
        gamma = self.params["gamma"]
        solution = solve_switch(switched, theta0=start, until=None if gamma == 0 else 25.0)
        t_end = solution.path.t[-1] if gamma == 0 else 25.0
        t = np.linspace(0.0, t_end, 400)
        x = solution(t)
        target = switched.rest_point(after=True)
        final = solution.after.theta[-1] if gamma == 0 else x[-1]
        scale = np.abs(target[n:]).max()
        after = x[t > self.SWITCH_TIME, n:]
        decrease = max(0.0, float(-np.diff(after, axis=0).min(initial=0.0)))
        mesh_change = max((change for _, change in solution.path.stats["unconverged_windows"]), default=0.0)
        return {"switch_rest_variance": (np.abs(final[n:] / target[n:] - 1).max(), 1e-3),
                "switch_v_decrease": (decrease / scale, 1e-7),
                "switch_mu_move": (np.abs(x[:, :n] - start[:n]).max() / scale, 1e-7),
                "switch_window_mesh_change": (mesh_change, 1e-6)}

    def guesses(self):
        """One first guess for IPOPT: the path approaching the rest point exponentially. It
        keeps v > 0 along the way (from a constant guess IPOPT's steps can reach v ≤ 0, where
        log v is NaN, and back off; on some meshes it then ran out of iterations)."""
        return [self.fixed_point()]

    def random_params(self, rng):
        dim = int(rng.integers(1, 4))
        diagonal = np.exp(rng.uniform(np.log(0.3), np.log(5), size=dim))
        dense = dim > 1 and rng.uniform() >= 0.5
        H = (0.3 * random_spd(rng, dim, 10.0)).tolist() if dense else diagonal.tolist()
        return {"H": H,
                "g": rng.normal(size=dim).tolist(), "beta": float(rng.uniform(0.5, 2)),
                "eta": float(rng.uniform(0.5, 2)), "k": float(rng.uniform(0.5, 2))}

    def random_theta0(self, rng):
        rest = self.rest_point()
        mu = rest[: self.weights] + rng.normal(size=self.weights)
        return np.concatenate([mu, rest[self.weights:] * np.exp(rng.uniform(-1, 1, size=self.weights))])

    def task(self, after: bool = False) -> "WeightUncertaintyScenario":
        """The stationary scenario of one task (no switch)."""
        params = {**self.params, "H": _compact(self.task_value("H", after, self.params)),
                  "g": self.task_value("g", after, self.params).tolist(),
                  "H_after": None, "g_after": None, "t_switch": None}
        return WeightUncertaintyScenario(**params)

    def overdamped_path(self, t, theta0=None) -> np.ndarray:
        """The overdamped flow (Eq. 148), across the switch if there is one.

        Per weight, with ρ = η/γ, r = ρβ, D(t) = 1 + (kH_ii v0/β)(e^{rt} − 1):
        v(t) = v0 e^{rt}/D(t), and for a diagonal H μ(t) − μ* = (μ0 − μ*)/D(t) (closed form);
        for a coupled H, μ̇ = −ρk v(t) ⊙ (g + Ha) is integrated (DOP853, rtol 1e-12).
        """
        if self.params["gamma"] <= 0:
            raise ocp.ProblemError("the overdamped flow needs gamma > 0")
        theta0 = self.theta0 if theta0 is None else self.problem.check_state(theta0)
        times = np.atleast_1d(np.asarray(t, float))
        t_s = self.params["t_switch"]
        out = _overdamped(self, theta0, times, after=False)
        if t_s is not None:
            later = times >= t_s
            x_s = _overdamped(self, theta0, np.array([t_s]), after=False)[0]
            out[later] = _overdamped(self, x_s, times[later] - t_s, after=True)
        return out[0] if np.ndim(t) == 0 else out


def anticipated_switch(scenario: WeightUncertaintyScenario, theta0=None, until=None, intervals=60, degree=5):
    """The optimal path when the learner knows the switch is coming (for comparison with
    :func:`solve_switch`, the unannounced switch).

    Phase 1 is one free-end NLP of the time-dependent problem on [0, T], T ≈ t_s + MARGIN/γ,
    with an element boundary exactly at t_s (T = t_s·N/j), kept on [0, t_s]; by time
    consistency the rest is the second task's optimal path from x(t_s), by receding windows
    up to ``until`` (default t_s + 10/γ). Needs γ > 0 and t_s ≤ KEEP_WINDOW/γ = 5/γ (one
    window of :func:`ocp.control.receding.receding_windows`). Returns a :class:`SwitchSolution`.
    """
    from ocp.control.receding import KEEP_WINDOW, MARGIN
    from ocp.results.trajectory_algebra import cut, discounted_integral, shifted
    p = scenario.params
    t_s, gamma = p["t_switch"], p["gamma"]
    if t_s is None or gamma <= 0:
        raise ocp.ProblemError("anticipated_switch needs t_switch and gamma > 0")
    if gamma * t_s > KEEP_WINDOW * (1 + 1e-9):
        raise ocp.ProblemError(f"anticipated_switch needs t_switch ≤ {KEEP_WINDOW:g}/γ = "
                               f"{KEEP_WINDOW / gamma:g} (one NLP window)")
    theta0 = scenario.theta0 if theta0 is None else scenario.problem.check_state(theta0)
    until = t_s + 10.0 / gamma if until is None else until
    if not until > t_s:
        raise ocp.ProblemError(f"until must be after t_switch = {t_s}, got {until}")
    boundary = max(1, round(intervals * t_s / (t_s + MARGIN / gamma)))
    horizon = t_s * intervals / boundary
    knowing = copy.copy(scenario.problem)
    knowing.switch = False          # a finite horizon with a break point at t_s is valid
    whole = ocp.solve(knowing, theta0, horizon=horizon, mesh=ocp.Mesh(intervals, degree),
                      guess=scenario.rest_point(after=True))
    before = cut(knowing, whole, t_s)
    second = scenario.task(after=True).problem
    later = receding_windows(second, before.theta[-1], until - t_s, guess=scenario.task(after=True).guesses())
    after = shifted(later, t_s)
    objective = discounted_integral(knowing, before) + math.exp(-gamma * t_s) * later.objective
    path = ocp.results.trajectory.concatenate(before, after)
    path.objective = objective
    path.stats.update(t_switch=t_s, phases=2, gamma=gamma, anticipated=True)
    # the EL equations are local in time: on [0, t_s] those of the first task (the knowing
    # problem's loss already switches at the sample t = t_s itself)
    return SwitchSolution(before, after, path, t_s, objective, (scenario.task().problem, second))


def _overdamped(scenario, theta0, times, after):
    p, n = scenario.params, scenario.weights
    H = scenario.task_value("H", after, p)
    h, rest = np.diag(H), scenario.rest_point(after)
    rho = p["eta"] / p["gamma"]
    mu0, v0 = theta0[:n], theta0[n:]
    growth = np.expm1(np.outer(times, np.full(n, rho * p["beta"])))
    D = 1 + (p["k"] * h * v0 / p["beta"]) * growth
    variance = v0 * (1 + growth) / D
    if np.count_nonzero(H - np.diag(h)) == 0:
        return np.hstack([rest[:n] + (mu0 - rest[:n]) / D, variance])
    import scipy.integrate

    def velocity(t, a):
        rate = rho * p["beta"]
        v = v0 * np.exp(rate * t) / (1 + (p["k"] * h * v0 / p["beta"]) * np.expm1(rate * t))
        return -rho * p["k"] * v * (H @ a)
    solution = scipy.integrate.solve_ivp(velocity, (0.0, max(float(times.max()), 0.0)), mu0 - rest[:n],
                                         method="DOP853", t_eval=times, rtol=1e-12, atol=1e-14)
    return np.hstack([rest[:n] + solution.y.T, variance])


def _compact(H):
    """A matrix as a list of its diagonal when it is diagonal (as the user wrote it), else nested lists."""
    H = np.asarray(H, float)
    return np.diag(H).tolist() if np.count_nonzero(H - np.diag(np.diag(H))) == 0 else H.tolist()


def _curvature_like(name, value, dim):
    H = symmetric_matrix(name, value, definite=True)
    if H.shape != (dim, dim):
        raise ocp.ProblemError(f"parameter {name!r} must have the size of H ({dim}), got {H.shape[0]}")
    return H


def _vector(name, value, dim):
    vector = np.atleast_1d(array(name, value, (0, 1)))
    if vector.shape != (dim,):
        raise ocp.ProblemError(f"parameter {name!r} must have length {dim} (the size of H), "
                               f"got {vector.shape[0]}")
    return vector
