"""The optimal policy θ̇ = π(θ) of the infinite horizon, its exact Jacobian, and its integration.

π(θ) is one warm-started solve of the infinite-horizon NLP from θ:
π(θ) = argmin_u ℓ(θ, u) + ∇V(θ)ᵀu with ∇V(θ) = ∂J*/∂θ0 (minus the multiplier of the
initial-state constraint). Its Jacobian is exact, from the NLP's parametric sensitivity:
differentiating the KKT conditions ∇f + Aᵀλ = 0, AV = b(θ0) at the solution gives
K [∂V; ∂λ] = [0; E] (K the KKT matrix, E the columns selecting the θ(0) rows), so
∇²V = −∂λ_{θ(0)}/∂θ0, and from ℓ_u(θ, π) + ∇V = 0,  ∂π/∂θ = −ℓ_uu⁻¹ (ℓ_uθ + ∇²V).

The policy ODE is stiff whenever the curvature spread is large (rates r_i ∝ λ_i), so it is
integrated with the fourth-order exponential Rosenbrock method exprb43 (Hochbruck,
Ostermann & Schweitzer, SIAM J. Numer. Anal. 47, 2009, Sec. 5.2), with N_n(u) = π(u) −
π(u_n) − J_n(u − u_n):

    U2 = u_n + (h/2) φ1(hJ/2) π(u_n)
    U3 = u_n + h φ1(hJ) π(u_n) + h φ1(hJ) N_n(U2)
    u_{n+1} = u_n + h φ1(hJ) π(u_n) + h (16φ3 − 48φ4)(hJ) N_n(U2) + h (12φ4 − 2φ3)(hJ) N_n(U3)

and its embedded third-order solution (16φ3, −2φ3) for step-size control. It is exact for
linear policies (every quadratic scenario) and needs two policy solves and one sparse
KKT factorisation per step. φ_k(A) are blocks of expm of [[A, I, 0, …], [0, 0, I, …], …]
(Saad, SIAM J. Numer. Anal. 29, 1992).

A running cost that depends on time (a time-varying loss or data stream) makes the policy
π(t, θ): each solve starts the NLP's clock at t (its parameter t0), and the ODE is
integrated as the autonomous system (θ, t)' = (π, 1), whose Jacobian gains the exact column
∂π/∂t from the same KKT factorisation (:meth:`Policy.time_derivative`).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from scipy.linalg import expm

from ..budget import NO_DEADLINE, TIME_LIMIT
from ..errors import SolveError
from ..nlp.sensitivity import kkt_matrix, parameter_sensitivity
from ..nlp.solution import velocity_from_costate
from ..nlp.window import solve_window

MAX_POLICY_SOLVES = 50_000
MAX_STAGE_FAILURES = 10   # consecutive failed stage solves (each quarters the step) before giving up
SAMPLES_PER_STEP = 7      # Chebyshev–Lobatto samples of the dense output per step (one element)


class Policy:
    """π(t, θ): a warm-started solve of the infinite-horizon NLP from θ with its clock at t
    (``t0``); stationary (``autonomous``) unless the running cost depends on time."""

    def __init__(self, problem, transcription, scale, s_end, raw, deadline=NO_DEADLINE):
        self.problem, self.tr, self.scale, self.s_end, self.last = problem, transcription, scale, s_end, raw
        self.deadline = deadline
        self._l_ut = time_cross_derivative(problem)   # None when ℓ does not depend on t
        self.autonomous = self._l_ut is None
        self.solves = self.iterations = 0
        self.solve_time = 0.0
        self._point = None    # (t, θ, u, params) of the last evaluation, for the Jacobian
        self._lu = None       # (solution, splu of its KKT matrix)

    def __call__(self, t, theta):
        if self.solves >= MAX_POLICY_SOLVES:
            raise SolveError("too many policy solves on the infinite horizon", "policy_budget", self.solves)
        theta = np.array(theta, dtype=float)
        params = self.problem.parameter_values(t0=t)   # the NLP's clock starts at t
        raw = solve_window(self.tr, theta, params, self.scale, guess=self.last, s_end=self.s_end,
                           deadline=self.deadline, t_offset=t)
        self.last = raw   # warm start for the next evaluation
        self.solves += 1
        self.iterations += raw["iterations"]
        self.solve_time += raw["solve_time"]
        lam = self.tr.initial_costate(raw)
        _, U, _ = self.tr.unpack(raw["x"], raw["p"])
        u = velocity_from_costate(self.tr, t, theta, lam, U[0][:, 0], params)
        self._point = (t, theta, u, params)
        return u

    def jacobian(self, t, theta):
        """∂π/∂θ at (t, θ), exact (module docstring): one sparse LU of the KKT matrix."""
        t, theta, u, params = self._at(t, theta)
        tr, n = self.tr, self.tr.n
        rows = tr.n_var + tr.initial_constraint_rows
        rhs = np.zeros((tr.n_var + tr.n_g, n))
        rhs[rows, np.arange(n)] = 1.0
        value_hessian = -self._kkt().solve(rhs)[rows, :]
        _, _, _, l_uu, l_ux = tr._post(t, theta, u, params)
        return -np.linalg.solve(np.asarray(l_uu), np.asarray(l_ux) + value_hessian)

    def time_derivative(self, t, theta):
        """∂π/∂t at (t, θ), exact: the KKT sensitivity along the NLP's clock t0 gives ∂∇V/∂t,
        and ℓ_u(t, θ, π) + ∇V = 0 gives ∂π/∂t = −ℓ_uu⁻¹(ℓ_ut + ∂∇V/∂t). Zero when autonomous."""
        if self.autonomous:
            return np.zeros(len(theta))
        t, theta, u, params = self._at(t, theta)
        tr = self.tr
        dp = np.zeros(len(self.last["p"]))
        dp[tr.parameter_index("t0")] = 1.0
        sensitivity = parameter_sensitivity(tr, self.last, dp, self._kkt())
        d_value_gradient = -sensitivity[tr.n_var + tr.initial_constraint_rows]
        _, _, _, l_uu, _ = tr._post(t, theta, u, params)
        l_ut = np.asarray(self._l_ut(t, theta, u, params)).ravel()
        return -np.linalg.solve(np.asarray(l_uu), l_ut + d_value_gradient)

    def _at(self, t, theta):
        """The last evaluation point, re-evaluating π there if (t, θ) differs."""
        theta = np.asarray(theta, dtype=float)
        if self._point is None or self._point[0] != t or not np.array_equal(self._point[1], theta):
            self(t, theta)
        return self._point

    def _kkt(self):
        """splu of the KKT matrix at the last solution (cached per solution)."""
        if self._lu is None or self._lu[0] is not self.last:
            try:
                self._lu = (self.last, scipy.sparse.linalg.splu(kkt_matrix(self.tr, self.last)))
            except RuntimeError as exc:   # singular KKT matrix: not a strict local minimum
                raise SolveError(f"policy Jacobian: singular KKT matrix ({exc})", "singular_kkt", 0) from None
        return self._lu[1]


def time_cross_derivative(problem):
    """ℓ_ut(t, x, u, P) = ∂²ℓ/∂u∂t as a CasADi Function, or None when the running cost does
    not depend on its time argument (an autonomous, stationary policy)."""
    import casadi
    n = problem.state_dim
    t, x, u = casadi.SX.sym("t"), casadi.SX.sym("x", n), casadi.SX.sym("u", n)
    P = casadi.SX.sym("P", problem.layout.size)
    kinetic, potential = problem.running_cost(t, x, u, problem.layout.unpack(P))
    cost = casadi.SX(kinetic) + casadi.SX(potential)
    if not casadi.depends_on(cost, t):
        return None
    return casadi.Function("l_ut", [t, x, u, P], [casadi.jacobian(casadi.gradient(cost, u), t)])


def phi_functions(A, order):
    """[φ0(A), φ1(A), …, φ_order(A)], φ0 = exp, φ_{k+1}(z) = (φ_k(z) − 1/k!)/z."""
    n = A.shape[0]
    M = np.zeros(((order + 1) * n, (order + 1) * n))
    M[:n, :n] = A
    for k in range(order):
        M[k * n:(k + 1) * n, (k + 1) * n:(k + 2) * n] = np.eye(n)
    E = expm(M)
    return [E[:n, k * n:(k + 1) * n] for k in range(order + 1)]


class _Step:
    """One exprb43 step from u with step h; the dense output needs π at the end (``finish``)."""

    def __init__(self, field, t, u, F, J, h):
        self.t, self.u, self.F, self.J, self.h = t, u, F, J, h
        e, phi1, _, phi3, phi4 = phi_functions(h * J, 4)
        half = phi_functions(0.5 * h * J, 1)[1]

        def remainder(U, tau):
            return field(t + tau, U) - F - J @ (U - u)

        U2 = u + 0.5 * h * half @ F
        D2 = remainder(U2, 0.5 * h)
        linear = u + h * phi1 @ F
        U3 = linear + h * phi1 @ D2
        D3 = remainder(U3, h)
        self.exp_hJ, self.linear = e, linear
        self.new = linear + h * ((16 * phi3 - 48 * phi4) @ D2 + (12 * phi4 - 2 * phi3) @ D3)
        embedded = linear + h * (16 * phi3 @ D2 - 2 * phi3 @ D3)
        self.difference = self.new - embedded

    def samples(self, F_new, count):
        """θ at ``count`` Chebyshev–Lobatto times of the step (without the first): the
        exponential-Euler solution u + τφ1(τJ)F plus a cubic remainder r(τ), r(0) = r'(0) = 0,
        matching u_{n+1} and π(u_{n+1}) at τ = h (exact for linear policies)."""
        h = self.h
        R = self.new - self.linear
        R_dot = F_new - self.exp_hJ @ self.F
        b = (R_dot * h - 2 * R) / h ** 3
        a = (3 * R - R_dot * h) / h ** 2
        fractions = 0.5 * (1 - np.cos(np.pi * np.arange(1, count) / (count - 1)))
        taus = h * fractions
        states = [self.u + tau * phi_functions(tau * self.J, 1)[1] @ self.F + a * tau ** 2 + b * tau ** 3
                  for tau in taus[:-1]]
        states.append(self.new)
        return self.t + taus, np.array(states)


def integrate(policy, t0, theta0, rest_speed, rtol=1e-10, atol=1e-13, max_time=np.inf, deadline=NO_DEADLINE):
    """Integrate θ̇ = π(t, θ) from (t0, θ0) until |π| ≤ rest_speed.

    Returns (t, theta, reached_rest): ``SAMPLES_PER_STEP`` Chebyshev–Lobatto samples of each
    step (consecutive steps share their end sample), and whether the path came to rest
    before ``max_time``. Error control: the exprb43 − embedded difference per component
    against atol + rtol·|θ|, step factor 0.9·err^{−1/4} within [0.2, 5]. A policy that
    depends on time (``policy.autonomous`` false) is integrated as the autonomous system
    (θ, t)' = (π(t, θ), 1), whose Jacobian has the column ∂π/∂t (Hochbruck et al. 2009, Sec. 2).
    ``deadline`` (:class:`ocp.budget.Deadline`) is checked before every step: SolveError
    with status TIME_LIMIT when it has expired.
    """
    timed = not getattr(policy, "autonomous", True)
    n = len(theta0)

    def field(t, z):
        return np.append(policy(z[n], z[:n]), 1.0) if timed else policy(t, z)

    def jacobian(t, z):
        if not timed:
            return policy.jacobian(t, z)
        J = np.zeros((n + 1, n + 1))
        J[:n, :n] = policy.jacobian(z[n], z[:n])
        J[:n, n] = policy.time_derivative(z[n], z[:n])
        return J

    def tolerance(new):
        return atol + rtol * np.abs(new[:n])

    t = float(t0)
    z = np.append(np.asarray(theta0, float), t) if timed else np.asarray(theta0, float)
    times, states = [np.array([t])], [z[None, :n]]
    velocity = field(t, z)
    h = None
    while True:
        if np.linalg.norm(velocity[:n]) <= rest_speed:
            return np.concatenate(times), np.vstack(states), True
        if t - t0 >= max_time:
            return np.concatenate(times), np.vstack(states), False
        deadline.check("the policy integration", getattr(policy, "solves", 0))
        J = jacobian(t, z)
        if h is None:
            h = 0.5 / max(np.abs(np.linalg.eigvals(J)).max(), 1e-300)
        step, h, error = _accepted_step(field, t, z, velocity, J, h, tolerance, n)
        velocity = field(t + h, step.new)
        sample_times, sample_states = step.samples(velocity, SAMPLES_PER_STEP)
        times.append(sample_times)
        states.append(sample_states[:, :n])
        t, z = t + h, step.new
        if timed:
            z[n] = t     # the time component is exact (its row of J is zero); drop round-off
        h *= min(5.0, max(0.2, 0.9 * max(error, 1e-12) ** (-0.25)))


def _accepted_step(field, t, z, velocity, J, h, tolerance, n):
    """The first exprb43 step from (t, z) whose embedded error is within ``tolerance(new)``,
    shrinking h as it goes: (step, h, error). A stage that leaves the domain (a SolveError, e.g.
    a variance ≤ 0) quarters h, at most MAX_STAGE_FAILURES times in a row."""
    failures = 0
    while True:
        try:
            step = _Step(field, t, z, velocity, J, h)
        except SolveError as exc:
            if exc.status == TIME_LIMIT:
                raise
            failures += 1
            if failures > MAX_STAGE_FAILURES:
                raise
            h *= 0.25
            continue
        error = np.max(np.abs(step.difference[:n]) / tolerance(step.new))
        if error <= 1.0:
            return step, h, error
        h *= max(0.2, 0.9 * error ** (-0.25))
