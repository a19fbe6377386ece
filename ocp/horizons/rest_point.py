"""The rest point of the optimal dynamics and the linear-quadratic tail that ends every approach.

Rest point. With ẋ = u and an autonomous running cost ℓ(x, u), a path at rest (u ≡ 0)
satisfies the Euler–Lagrange equation d/dt ℓ_u − γℓ_u − ℓ_x = 0 (ocp.verification) iff

    r(x*) = ℓ_x(x*, 0) + γ ℓ_u(x*, 0) = 0,

the biased fixed point of a drift included (Vastola et al. 2025, App. G). Solved by Newton's
method with the exact Jacobian from CasADi.

Tail. Near x* the problem is, to second order, the discounted LQ problem of the expansion
ℓ ≈ ℓ* + ½[δx; u]ᵀ[[Q, N], [Nᵀ, R]][δx; u] (the linear terms integrate to a boundary term
because r(x*) = 0). Its current-value value function ½δxᵀPδx solves the HJB equation
γP = Q − (N + P)R⁻¹(N + P)ᵀ. Completing the square, u = w − R⁻¹Nᵀδx, makes it the LQ problem
δẋ = −R⁻¹Nᵀδx + w with cost ½δxᵀ(Q − NR⁻¹Nᵀ)δx + ½wᵀRw, solved by the engine's one
discounted Riccati core (``ocp.horizons.lq.discounted_riccati``, stabilising solution); the
optimal feedback is u = K δx, K = −R⁻¹(Nᵀ + P). K may have exponents with 0 ≤ Re λ < γ/2:
the optimum then grows instead of coming to rest (``LinearTail.grows``, ``ocp.horizons.growing``).
The nonlinear policy differs from K δx by
O(|δx|²), so a path continued by the LQ solution from a state at distance d from x* is
exact to O(d²) (Anderson & Moore, *Optimal Control: Linear Quadratic Methods*, 1990, Ch. 3;
the discounted form by the substitution x̃ = e^{−γt/2}x). For quadratic problems it is exact.
"""
from __future__ import annotations

import warnings

import casadi
import numpy as np
import scipy.integrate
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from ..block_diagonal import block_eigenvalues, block_product, block_solve, coupled_blocks
from .lq import discounted_riccati

NEWTON_STEPS = 50


def cost_symbols(problem):
    """x, u, the parameter vector P, its named parts and ℓ(x, u) (the clock at t0) as SX."""
    n = problem.state_dim
    x, u = casadi.SX.sym("x", n), casadi.SX.sym("u", n)
    P = casadi.SX.sym("P", problem.layout.size)
    params = problem.layout.unpack(P)
    kinetic, potential = problem.running_cost(params["t0"], x, u, params)
    return x, u, P, params, casadi.SX(kinetic) + casadi.SX(potential)


def _functions(problem):
    """r(x, P), ∂r/∂x and the blocks Q, N, R at u = 0 (built once per problem structure)."""
    cache = problem._structure.cache
    if "rest_point" not in cache:
        n = problem.state_dim
        x, u, P, params, cost = cost_symbols(problem)
        l_x, l_u = casadi.gradient(cost, x), casadi.gradient(cost, u)
        residual = casadi.substitute(l_x + params["gamma"] * l_u, u, casadi.DM.zeros(n))
        blocks = [casadi.substitute(block, u, casadi.DM.zeros(n)) for block in
                  (casadi.jacobian(l_x, x), casadi.jacobian(l_x, u), casadi.jacobian(l_u, u))]
        residual_function = casadi.Function("rest_residual", [x, P], [residual, casadi.jacobian(residual, x)])
        cache["rest_point"] = (residual_function,
                               casadi.Function("rest_blocks", [x, P], blocks))
    return cache["rest_point"]


def cost_gradients(problem):
    """(x, u, P) → ℓ_x, ℓ_u; built once per problem structure (the LQ tail's nonlinearity,
    ``ocp.current_value_collocation``)."""
    cache = problem._structure.cache
    if "cost_gradients" not in cache:
        x, u, P, _, cost = cost_symbols(problem)
        cache["cost_gradients"] = casadi.Function("l_xu", [x, u, P],
                                                  [casadi.gradient(cost, x), casadi.gradient(cost, u)])
    return cache["cost_gradients"]


MAX_FLOW_EVALUATIONS = 5_000     # quasi-static flow evaluations before rest_point_ahead gives up


class _FlowBudget(Exception):
    """The quasi-static flow used up MAX_FLOW_EVALUATIONS."""


def quasi_static_velocity(problem):
    """(x, P) → u with ℓ_u(x, u) + ℓ_x(x, u)/γ = 0: the overdamped limit q̇ ≪ γq of the optimal
    dynamics (for the DiscountedOCP u ≈ f − (ηk/γ)G⁻¹∇L, the gradient flow; Vastola et al. 2025,
    App. C); five Newton steps in u from u = 0, exact in one for a cost quadratic in u."""
    cache = problem._structure.cache
    if "quasi_static" not in cache:
        x, u, P, params, cost = cost_symbols(problem)
        residual = casadi.gradient(cost, u) + casadi.gradient(cost, x) / params["gamma"]
        step = casadi.Function("quasi_static_step", [x, u, P],
                               [u - casadi.solve(casadi.jacobian(residual, u), residual)])
        velocity = casadi.SX.zeros(problem.state_dim)
        for _ in range(5):
            velocity = step(x, velocity, P)
        cache["quasi_static"] = casadi.Function("quasi_static_velocity", [x, P], [velocity])
    return cache["quasi_static"]


def rest_point_ahead(problem, start, params, deadline):
    """The rest point the path from ``start`` is heading for, when Newton from ``start`` found
    one behind it (a start in the concave part of a well: Newton's step points across the
    barrier): the quasi-static flow ẋ = u(x) (:func:`quasi_static_velocity`) is followed from
    ``start`` (scipy's LSODA, stiff or not) until it stops, then Newton polishes; None if
    either fails. Needs γ > 0."""
    velocity = quasi_static_velocity(problem)
    calls = [0]

    def rhs(_, x):
        deadline.check("the search for the rest point")
        calls[0] += 1
        if calls[0] > MAX_FLOW_EVALUATIONS:      # a flow that spirals or crawls forever: give up
            raise _FlowBudget
        return np.asarray(velocity(x, params)).ravel()
    first = np.abs(rhs(0.0, start)).max()
    if not first > 0:
        return None

    def stopped(_, x):
        return np.abs(rhs(0.0, x)).max() - 1e-10 * first
    stopped.terminal = True
    try:
        with warnings.catch_warnings():     # LSODA's convergence chatter: the outcome is checked below
            warnings.simplefilter("ignore")
            flow = scipy.integrate.solve_ivp(rhs, (0.0, 1e300), np.asarray(start, float), method="LSODA",
                                             rtol=1e-8, atol=1e-12 * max(np.abs(start).max(), 1.0),
                                             events=stopped)
    except (ArithmeticError, ValueError, RuntimeError, _FlowBudget):
        return None
    if flow.status != 1:          # no stop: it ran off
        return None
    return rest_point(problem, flow.y[:, -1], params)


def rest_point(problem, start, params):
    """x* with r(x*) = 0 by Newton's method from ``start``, or None when Newton does not
    converge (no rest point nearby, a singular Jacobian)."""
    residual = _functions(problem)[0]
    x = np.asarray(start, float).copy()
    for _ in range(NEWTON_STEPS):
        r, J = residual(x, params)
        rows, cols = J.sparsity().get_triplet()     # sparse: a separable loss in D = 1000 is diagonal
        jacobian = scipy.sparse.csc_matrix((np.asarray(J.nonzeros()), (rows, cols)), shape=J.shape)
        try:
            with warnings.catch_warnings():         # a singular Jacobian: NaNs, caught below
                warnings.simplefilter("ignore")
                step = np.atleast_1d(scipy.sparse.linalg.spsolve(jacobian, np.asarray(r).ravel()))
        except (RuntimeError, ValueError):
            return None
        if not np.all(np.isfinite(step)):
            return None
        x = x - step
        if np.abs(step).max() <= 1e-15 * (1 + np.abs(x).max()):
            return x
    return None


class LinearTail:
    """The LQ solution at a rest point: δx(τ) = e^{Kτ} δx(0), with e^{Kτ} by the eigen-
    decomposition of each coupled block of K (``ocp.horizons.lq.coupled_blocks``: a separable
    problem is D blocks of size 1) when it is well conditioned, else scipy's expm per time."""

    def __init__(self, rest, feedback):
        self.rest, self.feedback = rest, feedback
        blocks = coupled_blocks(feedback)
        # the 1 × 1 blocks as one diagonal (each mode its own coordinate), the others dense
        single = np.array([block[0] for block in blocks if len(block) == 1], int)
        self._diagonal = (single, feedback[single, single].astype(complex))
        self._blocks = [_block_modes(feedback, block) for block in blocks if len(block) > 1]
        self.rates = np.concatenate([self._diagonal[1]] + [modes[1] for modes in self._blocks])
        self.growth = float(self.rates.real.max())     # ≥ 0: the optimum grows (ocp.horizons.growing)
        self.grows = self.growth >= 0

    @property
    def slowest_rate(self) -> float:
        """min |Re λ(K)|: the slowest decay of the tail."""
        return float(np.abs(self.rates.real).min())

    def velocity(self, state):
        return self.feedback @ (np.asarray(state) - self.rest)

    def path(self, start):
        """τ (m,) → states (m, n) of the tail from ``start``."""
        offset = np.asarray(start, float) - self.rest

        def states(tau):
            tau = np.atleast_1d(np.asarray(tau, float))
            out = np.empty((len(tau), len(offset)))
            single, rates = self._diagonal
            out[:, single] = (np.exp(np.outer(tau, rates)) * offset[single]).real
            for block, values, vectors, inverse in self._blocks:
                if inverse is None:        # ill-conditioned eigenvectors: the exponential itself
                    local = self.feedback[np.ix_(block, block)]
                    out[:, block] = np.array([scipy.linalg.expm(local * s) @ offset[block] for s in tau])
                else:
                    modes = np.exp(np.outer(tau, values)) * (inverse @ offset[block])
                    out[:, block] = (modes @ vectors.T).real
            return self.rest + out
        return states

    def duration_to(self, start, speed):
        """τ at which |δẋ| falls to ``speed`` (doubling, then bisection on the tail's speed)."""
        states = self.path(start)

        def moving(tau):
            return np.linalg.norm(self.velocity(states(tau)[0])) > speed

        high = 1.0 / max(np.abs(self.rates).max(), 1e-300)
        while moving(high):
            high *= 2
            if high > 1e300:
                return high
        low = 0.0
        for _ in range(60):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if moving(middle) else (low, middle)
        return high


def _block_modes(feedback, block):
    """(block, eigenvalues, eigenvectors, their inverse or None when ill-conditioned) of K there."""
    values, vectors = scipy.linalg.eig(feedback[np.ix_(block, block)])
    inverse = np.linalg.inv(vectors) if np.linalg.cond(vectors) < 1e8 else None
    return block, values, vectors, inverse


def linear_tail(problem, rest, params, allow_growth=False):
    """The LQ feedback at ``rest`` (a :class:`LinearTail`), or None when the Riccati equation
    has no stabilising solution (R not positive definite, imaginary-axis Hamiltonian
    eigenvalues) or, unless ``allow_growth``, when its closed loop does not decay."""
    _, blocks = _functions(problem)
    gradients = cost_gradients(problem)

    def gradient(state, velocity):
        return np.concatenate([np.asarray(part).ravel() for part in gradients(state, velocity, params)])
    Q, N, R = (np.asarray(block) for block in blocks(rest, params))
    n = len(rest)
    Q, R = 0.5 * (Q + Q.T), 0.5 * (R + R.T)
    coupled = coupled_blocks(Q, N, R)          # a separable cost: n blocks of 1, O(n) work
    try:
        if not np.all(block_eigenvalues(R, coupled).real > 0):
            return None                        # R not positive definite: no minimum in the velocity
        coupling = block_solve(R, N.T, coupled)            # R⁻¹Nᵀ: completing the square
        reduced = Q - block_product(N, coupling, coupled)
        P, feedback = discounted_riccati(-coupling, 0.5 * (reduced + reduced.T), R, problem.gamma)
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not np.all(np.isfinite(feedback)):
        return None
    tail = LinearTail(rest, feedback)
    if tail.grows and not allow_growth:
        return None
    zero = np.zeros(n)
    at_rest = gradient(rest, zero)
    # the value function's expansion V ≈ V* − q*ᵀδx + ½δxᵀPδx (ocp.current_value's end condition)
    tail.riccati, tail.q_star = P, at_rest[n:]
    hessian = np.block([[Q, N], [N.T, R]])

    def nonlinearity(state):
        """|∇ℓ − its quadratic model| / |the model's linear part| at (x, K(x − x*)): zero for a
        quadratic running cost, O(|x − x*|) for a smooth one."""
        offset = np.concatenate([state - rest, feedback @ (state - rest)])
        linear = hessian @ offset
        actual = gradient(state, offset[n:]) - at_rest
        return float(np.abs(actual - linear).max() / max(np.abs(linear).max(), 1e-300))

    tail.nonlinearity = nonlinearity
    return tail
