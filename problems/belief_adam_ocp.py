"""The OCP of the belief_adam scenario (Vastola, Gershman & Rajan 2025, App. H.2, Eqs. 133,
141–142): the observation stream g(t), the running cost of Eq. 142 in the state x = (θ, m, v),
its rest state, and the Euler–Lagrange equations derived by hand (docs/belief_adam.md). The
scenario around it (parameters, draws, guesses) is :mod:`problems.belief_adam`, whose
docstring gives the equations and the reasons for the stream's form.
"""
from __future__ import annotations

import math

import casadi
import numpy as np
from scipy.optimize import root

import ocp
from ocp.results.trajectory_algebra import acceleration

from . import ops

KERNEL_TAIL = 9.0          # exp(−9²/2) < 1e-17: the stream has settled 9Δs after its last sample
NORMALISATION = math.pi ** -0.25


def stream_weights(gradient, curvature, noise, samples, seed) -> np.ndarray:
    """The (dim, N) weights √h·s·π^{−1/4}·z_j of the observation stream (z seeded N(0, 1))."""
    z = np.random.default_rng(seed).standard_normal((len(gradient), samples))
    return np.sqrt(curvature)[:, None] * noise * NORMALISATION * z


def observation(t, gradient, stream, sample_interval):
    """g(t): a CasADi symbol t → (dim, 1); numeric t (n,) → (n, dim) (module docstring)."""
    if isinstance(t, (casadi.SX, casadi.MX)):
        centres = casadi.DM(np.arange(stream.shape[1]))
        kernel = casadi.exp(-0.5 * (t / sample_interval - centres) ** 2)
        return gradient + casadi.mtimes(stream, kernel)
    t = np.atleast_1d(np.asarray(t, dtype=float))
    stream, sample_interval = np.asarray(stream, float), float(np.asarray(sample_interval))
    centres = np.arange(stream.shape[1])
    kernel = np.exp(-0.5 * (t[:, None] / sample_interval - centres[None, :]) ** 2)
    return np.asarray(gradient, float).reshape(1, -1) + kernel @ stream.T


def landscape(theta, gradient, curvature, anchor, **_):
    """The true quadratic landscape the gradients come from (at θ̂: gradient ḡ, Hessian diag(h))."""
    d = theta - anchor
    return ops.dot(gradient, d) + 0.5 * ops.dot(d, curvature * d)


class BeliefOCP(ocp.DiscountedOCP):
    """State x = (θ, m, v) (3·dim); running cost of Eq. 142 at the stream g(t).

    The constants hold the stream, the model scales and the rest point; ``resting`` = 1
    subtracts the cost of resting there (a constant and a null Lagrangian, so the EL
    equations are unchanged; needed for a finite objective at γ = 0)."""

    @property
    def state_dim(self) -> int:
        return 3 * self.dim

    @property
    def state_names(self) -> list:
        return [f"{name}[{i}]" for name in ("theta", "m", "v") for i in range(self.dim)]

    def check_initial_state(self, theta0):
        """(θ, m, v)(0) as a float array; the variance beliefs v(0) must be > 0."""
        state = super().check_initial_state(theta0)
        if np.any(state[2 * self.dim:] <= 0):
            raise ocp.ProblemError(f"the initial variance beliefs v(0) (the last {self.dim} entries of "
                                   f"theta0) must be > 0, got {state[2 * self.dim:].tolist()}")
        return state

    def split(self, x):
        n = self.dim
        return x[:n], x[n:2 * n], x[2 * n:]

    def parts(self, g, x, xdot, params):
        """(kinetic, potential) of Eq. 142 at observation g, undiscounted."""
        theta, m, v = self.split(x)
        dtheta, dm, dv = self.split(xdot)
        p = params
        kinetic = (casadi.sumsqr(dtheta) / (2 * p["eta"])
                   + casadi.sumsqr(dm + p["alpha1"] * m) / (2 * p["xi1"] ** 2)
                   + casadi.sumsqr(dv + p["alpha2"] * v) / (2 * p["xi2"] ** 2))
        e = g - m
        d = theta - p["anchor"]
        expected_loss = casadi.dot(m, d) + 0.5 * casadi.dot(v, d * d)
        potential = (casadi.sumsqr(e) / (2 * p["sigma1"] ** 2)
                     + casadi.sumsqr(v - e * e) / (2 * p["sigma2"] ** 2) + p["k"] * expected_loss)
        return kinetic, potential

    def running_cost(self, t, x, xdot, params):
        g = observation(t, params["gradient"], params["stream"], params["sample_interval"])
        kinetic, potential = self.parts(g, x, xdot, params)
        rest = params["rest"]
        zero = casadi.SX.zeros(self.state_dim, 1)
        rest_kinetic, rest_potential = self.parts(params["gradient"], rest, zero, params)
        _, m_rest, v_rest = self.split(rest)
        momentum = casadi.vertcat(casadi.SX.zeros(self.dim, 1),   # ∂ℓ/∂ẋ at rest
                                  params["alpha1"] * m_rest / params["xi1"] ** 2,
                                  params["alpha2"] * v_rest / params["xi2"] ** 2)
        null = casadi.dot(momentum, xdot - params["gamma"] * (x - rest))
        resting = params["resting"]
        return kinetic - resting * (rest_kinetic + null), potential - resting * rest_potential


def rest_equations(x, g, sigma1, sigma2, xi1, xi2, alpha1, alpha2, gamma, eta, k):
    """Stationary EL equations (ẋ = ẍ = 0: −γ ∂ℓ/∂ẋ − ∂ℓ/∂x = 0) of one coordinate, x = (d, m, v)."""
    d, m, v = x
    e = g - m
    return np.array([m + v * d,
                     alpha1 * (alpha1 + gamma) * m / xi1 ** 2 - e / sigma1 ** 2
                     + 2 * e * (v - e * e) / sigma2 ** 2 + k * d,
                     alpha2 * (alpha2 + gamma) * v / xi2 ** 2 + (v - e * e) / sigma2 ** 2 + k * d * d / 2])


def rest_point(params):
    """(θ*, m*, v*) with θ̂ = 0, coordinate by coordinate by Newton from the data-only beliefs
    (k = 0: m = ḡ/(1 + A1σ1²), v = (ḡ − m)²/(1 + A2σ2²), A_i = α_i(α_i + γ)/ξ_i²);
    None when some coordinate has no root with v > 0."""
    model = {key: params[key]
             for key in ("sigma1", "sigma2", "xi1", "xi2", "alpha1", "alpha2", "gamma", "eta", "k")}
    a1 = params["alpha1"] * (params["alpha1"] + params["gamma"]) / params["xi1"] ** 2
    a2 = params["alpha2"] * (params["alpha2"] + params["gamma"]) / params["xi2"] ** 2
    rest = []
    for g in params["gradient"]:
        m = g / (1 + a1 * params["sigma1"] ** 2)
        v = (g - m) ** 2 / (1 + a2 * params["sigma2"] ** 2)
        if v <= 0:
            return None
        # judged by its residual: hybr's success flag is False when it cannot shrink its
        # step below tol = 1e-14 even at a root (defaults, γ = 0.5: residual 1e-17, flag False)
        solution = root(rest_equations, [-m / v, m, v], args=(g, *model.values()), tol=1e-14)
        d, m, v = solution.x
        if not np.all(np.isfinite(solution.x)) or v <= 0 or \
                np.abs(rest_equations(solution.x, g, **model)).max() > 1e-10:
            return None
        rest.append((d, m, v))
    rest = np.array(rest)
    return np.concatenate([rest[:, 0], rest[:, 1], rest[:, 2]])


def euler_lagrange_by_hand(scenario, trajectory) -> dict:
    """The hand-derived EL equations (module docstring) on a trajectory: residuals of the θ, m
    and v equations, each (n, dim), and their error relative to the largest term."""
    p, n = scenario.params, scenario.coordinates
    gamma, eta, k = p["gamma"], p["eta"], p["k"]
    x, u, a = trajectory.theta, trajectory.velocity, acceleration(trajectory)   # θ̈: the element polynomials

    def split(z):
        return z[:, :n], z[:, n:2 * n], z[:, 2 * n:]

    (theta, m, v), (dtheta, dm, dv), (atheta, am, av) = split(x), split(u), split(a)
    g = scenario.observations(trajectory.t)
    d, e = theta - np.array(scenario.problem.constants["anchor"]), g - m
    s1, s2, x1, x2, a1, a2 = (p[key] for key in ("sigma1", "sigma2", "xi1", "xi2", "alpha1", "alpha2"))
    terms = {
        "theta": [atheta, -gamma * dtheta, -eta * k * m, -eta * k * v * d],
        "m": [am, -gamma * (dm + a1 * m), -a1 ** 2 * m, -x1 ** 2 * k * d, -x1 ** 2 * (m - g) / s1 ** 2,
              -2 * x1 ** 2 * e * (v - e * e) / s2 ** 2],
        "v": [av, -gamma * (dv + a2 * v), -a2 ** 2 * v, -x2 ** 2 * k * d * d / 2,
              -x2 ** 2 * (v - e * e) / s2 ** 2]}
    out = {}
    for name, parts in terms.items():
        residual = sum(parts)
        size = max(max(np.abs(part).max() for part in parts), 1e-300)
        out[name] = residual
        out[f"{name}_error"] = float(np.abs(residual).max() / size)
    return out
