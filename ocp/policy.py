"""The stationary optimal policy θ̇ = π(θ) and its integration across long, slow stretches.

π(θ) is one warm-started solve of the infinite-horizon NLP from θ:
π(θ) = argmin_u ℓ(θ, u) + ∇V(θ)ᵀu with ∇V(θ) = ∂J*/∂θ0 (the multiplier of the
initial-state constraint). Its Jacobian comes from central differences of π.

The policy ODE is stiff whenever the curvature spread is large (rates r_i ∝ λ_i), so
explicit Runge–Kutta methods are stability-limited to ~cond(H) steps. We integrate it with
the exponential Rosenbrock–Euler method (Hochbruck, Ostermann & Schweitzer, SIAM J. Numer.
Anal. 47, 2009)

    θ_{n+1} = θ_n + h φ1(h J_n) π(θ_n),      φ1(z) = (e^z − 1)/z,

which is exact for linear policies (every quadratic scenario), second order otherwise, with
step-doubling error control. φ1(hJ)·v is the last column of expm([[hJ, v],[0, 0]]).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import expm

from .errors import SolveError
from .postprocess import checked_solve, velocity_from_costate

MAX_POLICY_SOLVES = 50_000
SAMPLES_PER_HALF_STEP = 5


class Policy:
    """π(θ) at time t: a warm-started solve of the infinite-horizon NLP from θ."""

    def __init__(self, problem, transcription, scale, s_end, raw):
        self.problem, self.tr, self.scale, self.s_end, self.last = problem, transcription, scale, s_end, raw
        self.solves = self.iterations = 0
        self.solve_time = 0.0

    def __call__(self, t, theta):
        if self.solves >= MAX_POLICY_SOLVES:
            raise SolveError("too many policy solves on the infinite horizon", "policy_budget", self.solves)
        params = self.problem.parameter_values()
        raw = checked_solve(self.tr, np.asarray(theta, float), params, self.scale, None, self.last, self.s_end)
        self.last = raw   # warm start for the next evaluation
        self.solves += 1
        self.iterations += raw["iterations"]
        self.solve_time += raw["solve_time"]
        lam = self.tr.initial_costate(raw)
        _, U, _ = self.tr.unpack(raw["x"], raw["p"])
        return velocity_from_costate(self.tr, t, theta, lam, U[0][:, 0], params)

    def jacobian(self, t, theta):
        """∂π/∂θ by central differences. π carries round-off of order eps·|θ| (the KKT system
        sums terms like Hθ and Hμ), so the step is relative to |θ|, not to the distance
        still to travel; the O(step²) truncation error is then ~1e-12."""
        n = len(theta)
        J = np.empty((n, n))
        base = self.last
        for j in range(n):
            step = 1e-6 * (1.0 + abs(theta[j]))
            e = np.zeros(n)
            e[j] = step
            forward = self(t, theta + e)
            self.last = base
            backward = self(t, theta - e)
            self.last = base
            J[:, j] = (forward - backward) / (2 * step)
        return J


def phi_step(J, v, h):
    """h·φ1(hJ)·v, the exponential-Euler increment over a step h."""
    n = len(v)
    A = np.zeros((n + 1, n + 1))
    A[:n, :n] = h * J
    A[:n, n] = h * v
    return expm(A)[:n, n]


def integrate(policy, t0, theta0, rest_speed, rtol=1e-10, atol=1e-13, max_time=np.inf):
    """Integrate θ̇ = π(θ) from (t0, θ0) until |π(θ)| ≤ rest_speed.

    Returns (t, theta, reached_rest): Chebyshev–Lobatto samples of each half step of the
    exponential solution, and whether the path came to rest before ``max_time``.
    """
    cheb = 0.5 * (1 - np.cos(np.pi * np.arange(SAMPLES_PER_HALF_STEP) / (SAMPLES_PER_HALF_STEP - 1)))
    t, theta = float(t0), np.asarray(theta0, float)
    times, states = [np.array([t])], [theta[None, :]]
    velocity = policy(t, theta)
    h = None
    while True:
        speed = np.linalg.norm(velocity)
        if speed <= rest_speed:
            return np.concatenate(times), np.vstack(states), True
        if t - t0 >= max_time:
            return np.concatenate(times), np.vstack(states), False
        J = policy.jacobian(t, theta)
        spectral_radius = max(np.abs(np.linalg.eigvals(J)).max(), 1e-300)
        if h is None:
            h = 0.5 / spectral_radius
        while True:
            full = theta + phi_step(J, velocity, h)
            half = theta + phi_step(J, velocity, h / 2)
            velocity_half = policy(t + h / 2, half)
            second = half + phi_step(J, velocity_half, h / 2)
            error = np.max(np.abs(full - second) / (atol + rtol * np.abs(second)))
            if error <= 1.0:
                break
            h *= max(0.2, 0.9 * error ** (-1 / 3))
        for start, state, v in ((t, theta, velocity), (t + h / 2, half, velocity_half)):
            taus = (h / 2) * cheb[1:]
            times.append(start + taus)
            states.append(np.array([state + phi_step(J, v, tau) for tau in taus]))
        t, theta = t + h, states[-1][-1]
        velocity = policy(t, theta)
        h *= min(5.0, max(0.2, 0.9 * max(error, 1e-12) ** (-1 / 3)))
