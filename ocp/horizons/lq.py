"""The discounted linear–quadratic problem in closed form, by LQ theory (Riccati).

    minimise  J = ∫_0^∞ e^{−γt} [ (1/2η) uᵀG u + k·½(θ − μ)ᵀH(θ − μ) ] dt,
              θ̇ = Aθ + b + u,   θ(0) = θ0,

the learning problem of Vastola et al. (2025, Eq. 2) with an affine drift f(θ) = Aθ + b, a
constant metric G and a quadratic loss (App. C, F, G). Derivation (docs/engine.md §1): the
current-value function V(θ) = ½θᵀPθ + pᵀθ + c solves the discounted HJB equation

    γV = min_u (1/2η)uᵀGu + k·½(θ − μ)ᵀH(θ − μ) + ∇Vᵀ(Aθ + b + u),   u* = −ηG⁻¹∇V.

Matching the quadratic terms gives the continuous algebraic Riccati equation of the
*shifted* system A_γ = A − (γ/2)I (the substitution θ̃ = e^{−γt/2}θ removes the discount):

    A_γᵀP + PA_γ − P(ηG⁻¹)P + kH = 0      (scipy.linalg.solve_continuous_are, B = I, R = G/η),

whose stabilising solution (A_γ − ηG⁻¹P Hurwitz) is the optimum when (kH, A_γ) is
detectable (Anderson & Moore 1990, Ch. 3). The closed loop is θ̇ = A_cl θ + c_cl with
A_cl = A − ηG⁻¹P: its exponents have Re < γ/2, the Euler–Lagrange exponents kept by the
transversality condition. It is *not* necessarily Hurwitz: with a drift that has unstable
directions and a large γ the optimal path may grow (slower than e^{γt/2}). The linear terms:

    (A_clᵀ − γI) p = kHμ − Pb,         c_cl = b − ηG⁻¹p,

and the constant γc = kμᵀHμ/2 + pᵀb − (η/2)pᵀG⁻¹p (γ > 0). The path is
θ(t) = e^{A_cl t}θ0 + ∫_0^t e^{A_cl s}ds·c_cl, computed as one exponential of the augmented
matrix [[A_cl, c_cl], [0, 0]] (no inverse of A_cl: it may be singular); when A_cl is
invertible the fixed point is θ* = −A_cl⁻¹c_cl; for b = 0 it solves App. G's
(ηkH + AᵀGA − γGA)θ* = ηkHμ (the biased fixed point).

The Riccati solve itself is :func:`discounted_riccati`, the engine's one discounted-LQ core:
the LQ tail at a rest point (``ocp.horizons.rest_point.linear_tail``, whose running cost has a
cross term in (δx, u), brought to this form by completing the square) and growing optima
(``ocp.horizons.growing``) use it too.

This module is a reference: it uses numpy and scipy only, independently of the Euler–Lagrange
/ Schur form of ``problems.linear_quadratic`` (the tests cross-check the two and the
collocation engine). ``from_problem`` reads the LQ data of a :class:`DiscountedOCP` by exact
differentiation (exact for an LQ problem, the second-order model elsewhere).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..block_diagonal import block_solve, coupled_blocks
from ..checks import number
from ..errors import ProblemError

DETECTABILITY_TOL = 1e-10


@dataclass(frozen=True)
class LQSolution:
    """The optimum of one discounted LQ problem (names as in the module docstring).

    riccati (P), linear (p), constant (c): V(θ) = ½θᵀPθ + pᵀθ + c, the current value.
    closed_loop (A_cl), closed_loop_offset (c_cl): the optimal dynamics θ̇ = A_cl θ + c_cl.
    fixed_point: θ* with A_cl θ* + c_cl = 0 (None when A_cl is singular).
    """

    drift_matrix: np.ndarray
    drift_offset: np.ndarray
    metric: np.ndarray
    hessian: np.ndarray
    minimum: np.ndarray
    gamma: float
    eta: float
    k: float
    riccati: np.ndarray
    linear: np.ndarray
    constant: float
    closed_loop: np.ndarray
    closed_loop_offset: np.ndarray
    fixed_point: np.ndarray | None

    @property
    def dim(self) -> int:
        return self.riccati.shape[0]

    @property
    def exponents(self) -> np.ndarray:
        """Eigenvalues of A_cl (all with Re < γ/2); the path comes to rest iff all Re < 0."""
        return np.linalg.eigvals(self.closed_loop)

    @property
    def comes_to_rest(self) -> bool:
        return bool(np.all(self.exponents.real < 0))

    def control(self, theta) -> np.ndarray:
        """u* = θ̇ − f(θ) = −ηG⁻¹∇V(θ) at a point (n,) or rows (m, n)."""
        return -self.eta * np.linalg.solve(self.metric, self.costate(theta).T).T

    def velocity(self, theta) -> np.ndarray:
        """The optimal policy θ̇ = π(θ) = A_cl θ + c_cl."""
        theta = np.asarray(theta, float)
        return theta @ self.closed_loop.T + self.closed_loop_offset

    def costate(self, theta) -> np.ndarray:
        """∇V(θ) = Pθ + p, the current-value costate."""
        return np.asarray(theta, float) @ self.riccati + self.linear

    def value(self, theta0) -> float:
        """J* from θ0: ½θ0ᵀPθ0 + pᵀθ0 + c (γ > 0); with γ = 0 the undiscounted objective,
        finite only if the running cost vanishes at the rest point (else ProblemError)."""
        theta0 = _vector(theta0, self.dim, "theta0")
        quadratic = 0.5 * theta0 @ self.riccati @ theta0 + self.linear @ theta0
        if self.gamma > 0:
            return float(quadratic + self.constant)
        rest = self.fixed_point
        if rest is None or not self.comes_to_rest:
            raise ProblemError("with gamma = 0 the objective is finite only if the path comes to rest")
        running = self.running_cost(rest[None, :], self.control(rest)[None, :])[0]
        if abs(running) > 1e-12 * (1 + abs(quadratic)):
            raise ProblemError(f"with gamma = 0 the running cost at the rest point is {running:.3g} ≠ 0: "
                               "the undiscounted objective is infinite")
        return float(quadratic - (0.5 * rest @ self.riccati @ rest + self.linear @ rest))

    def running_cost(self, theta, control) -> np.ndarray:
        """(1/2η)uᵀGu + k·½(θ − μ)ᵀH(θ − μ) at rows (m, n)."""
        theta, control = np.atleast_2d(theta), np.atleast_2d(control)
        offset = theta - self.minimum
        kinetic = np.einsum("mi,ij,mj->m", control, self.metric, control) / (2 * self.eta)
        return kinetic + 0.5 * self.k * np.einsum("mi,ij,mj->m", offset, self.hessian, offset)

    def path(self, t, theta0) -> np.ndarray:
        """θ(t) on the optimal path from θ0 (scalar t → (n,), array → (m, n)), from the
        exponential of the augmented matrix [[A_cl, c_cl], [0, 0]]."""
        theta0 = _vector(theta0, self.dim, "theta0")
        times = np.atleast_1d(np.asarray(t, float))
        n = self.dim
        augmented = np.zeros((n + 1, n + 1))
        augmented[:n, :n], augmented[:n, n] = self.closed_loop, self.closed_loop_offset
        start = np.append(theta0, 1.0)
        out = np.array([(scipy.linalg.expm(augmented * time) @ start)[:n] for time in times])
        return out[0] if np.ndim(t) == 0 else out


def solve_lq(A=None, H=None, mu=None, G=None, gamma=0.0, eta=1.0, k=1.0, b=None, dim=None) -> LQSolution:
    """The closed-form optimum of the discounted LQ problem (module docstring).

    A : (n, n) drift matrix (default 0); b : (n,) drift offset (default 0);
    H : (n, n) symmetric PSD loss Hessian; mu : (n,) its minimum (default 0);
    G : (n, n) SPD metric (default I); γ ≥ 0, η > 0, k ≥ 0.
    Raises ProblemError for bad input, and when the problem has no stabilising optimum
    ((kH, A − γ/2 I) not detectable: an unpenalised direction the drift makes grow).
    """
    H = _matrix(H, dim, "H")
    n = H.shape[0]
    A = np.zeros((n, n)) if A is None else _matrix(A, n, "A")
    G = np.eye(n) if G is None else _matrix(G, n, "G")
    mu = np.zeros(n) if mu is None else _vector(mu, n, "mu")
    b = np.zeros(n) if b is None else _vector(b, n, "b")
    gamma = number("gamma", gamma, non_negative=True)
    eta, k = number("eta", eta, positive=True), number("k", k, non_negative=True)
    _check_symmetric(H, "H", definite=False)
    _check_symmetric(G, "G", definite=True)
    weight = k * H
    _check_detectable(A - 0.5 * gamma * np.eye(n), weight)
    try:
        P, closed_loop = discounted_riccati(A, weight, G / eta, gamma)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise ProblemError(f"the Riccati equation has no stabilising solution: {exc}") from None
    linear = np.linalg.solve(closed_loop.T - gamma * np.eye(n), weight @ mu - P @ b)
    offset = b - eta * np.linalg.solve(G, linear)
    constant = 0.0
    if gamma > 0:       # c = (running cost at the stationary control)/γ: huge, or ∞, as γ → 0
        with np.errstate(over="ignore"):
            running = 0.5 * mu @ weight @ mu + linear @ b - 0.5 * eta * linear @ np.linalg.solve(G, linear)
            constant = running / gamma
    fixed = None
    if np.linalg.cond(closed_loop) < 1e12:
        fixed = np.linalg.solve(closed_loop, -offset)
    return LQSolution(A, b, G, H, mu, gamma, eta, k, P, linear, float(constant), closed_loop, offset, fixed)


def discounted_riccati(drift_matrix, state_weight, control_weight, gamma):
    """(P, K): the stabilising solution of the discounted Riccati equation and the closed loop,

        A_γᵀP + PA_γ − P R⁻¹ P + Q = 0,   A_γ = A − (γ/2)I,   K = A − R⁻¹P,

    for ẋ = Ax + u and the running cost ½xᵀQx + ½uᵀRu discounted at rate γ (module docstring;
    scipy.linalg.solve_continuous_are with B = I). Stabilising: K − (γ/2)I is Hurwitz, so
    Re λ(K) < γ/2; the optimum comes to rest only when every Re λ(K) < 0 (else it grows, slower
    than e^{γt/2}: ``ocp.horizons.growing``). Raises LinAlgError or ValueError when there is
    no stabilising solution (imaginary-axis Hamiltonian eigenvalues, R not definite).

    The equation decouples over the connected components of the common sparsity of A, Q and R
    (:func:`coupled_blocks`): each block is solved on its own, a 1 × 1 block in closed form
    (P = R(a + √(a² + Q/R)), written without cancellation), so a separable problem in D
    dimensions costs O(D), not a 2D × 2D QZ decomposition."""
    A, Q, R = (np.atleast_2d(np.asarray(matrix, float))
               for matrix in (drift_matrix, state_weight, control_weight))
    n = A.shape[0]
    blocks = coupled_blocks(A, Q, R)
    if len(blocks) == 1:
        P = scipy.linalg.solve_continuous_are(A - 0.5 * gamma * np.eye(n), np.eye(n), Q, R)
        P = 0.5 * (P + P.T)
        return P, A - np.linalg.solve(R, P)
    P = np.zeros((n, n))
    single = np.array([block[0] for block in blocks if len(block) == 1], int)
    if len(single):
        a, q, r = A[single, single] - 0.5 * gamma, Q[single, single], R[single, single]
        P[single, single] = _scalar_riccati(a, q, r)
    for block in (block for block in blocks if len(block) > 1):
        cut = np.ix_(block, block)
        P[cut], _ = discounted_riccati(A[cut], Q[cut], R[cut], gamma)
    return P, A - block_solve(R, P, blocks)


def _scalar_riccati(shifted, weight, control):
    """The stabilising roots P of 2aP − P²/R + Q = 0 (arrays of 1 × 1 problems):
    P/R = a + √(a² + Q/R), as (Q/R)/(√(a² + Q/R) − a) where a < 0 (no cancellation).
    LinAlgError when some a² + Q/R < 0, or = 0 with a ≥ 0 (no stabilising root)."""
    if np.any(control <= 0):
        raise np.linalg.LinAlgError("the control weight R must be positive definite")
    ratio = weight / control
    discriminant = shifted ** 2 + ratio
    root = np.sqrt(np.maximum(discriminant, 0.0))
    if np.any(discriminant < 0) or np.any((root == 0) & (shifted >= 0)):
        raise np.linalg.LinAlgError("no stabilising solution of the Riccati equation")
    with np.errstate(divide="ignore", invalid="ignore"):
        below = np.where(root - shifted > 0, ratio / (root - shifted), 0.0)
    return control * np.where(shifted < 0, below, shifted + root)


def from_problem(problem, at=None) -> dict:
    """The LQ data (A, b, H, mu, G, gamma, eta, k) of a :class:`DiscountedOCP` with a constant
    metric, by exact differentiation at ``at`` (default 0): A = ∂f/∂θ, b = f − Aθ̄, H = ∇²L,
    μ = θ̄ − H⁻¹∇L. Exact for an LQ problem; the second-order model of any other. Pass the
    result to :func:`solve_lq` (``solve_lq(**from_problem(problem))``)."""
    import casadi

    if problem.metric_function is not None:
        raise ProblemError("the LQ model needs a constant metric")
    if problem.state_dim != problem.dim:
        raise ProblemError("the LQ model needs a problem whose state is θ alone")
    n = problem.dim
    point = np.zeros(n) if at is None else _vector(at, n, "at")
    theta = casadi.SX.sym("theta", n)
    params = problem.layout.unpack(casadi.DM(problem.parameter_values()))
    loss = problem.loss_value(theta, params)
    drift = problem.drift_vector(theta, params)
    hessian, gradient = casadi.hessian(loss, theta)
    pieces = casadi.Function("lq_pieces", [theta], [hessian, gradient, casadi.jacobian(drift, theta), drift])
    H, g, A, f = (np.asarray(value, float) for value in pieces(point))
    H = 0.5 * (H + H.T)
    g, f = g.ravel(), f.ravel()
    try:
        mu = point - np.linalg.solve(H, g)
    except np.linalg.LinAlgError:
        raise ProblemError("the loss Hessian is singular: no quadratic minimum μ") from None
    G = np.eye(n) if problem.metric is None else problem.metric
    return {"A": A, "b": f - A @ point, "H": H, "mu": mu, "G": G,
            "gamma": problem.gamma, "eta": problem.eta, "k": problem.k}


# -- checks ----------------------------------------------------------------------------
def _check_detectable(shifted, weight):
    """PBH test: every eigenvector of A_γ with Re λ ≥ 0 must be seen by kH."""
    values, vectors = np.linalg.eig(shifted)
    scale = max(np.abs(weight).max(), 1e-300)
    for value, vector in zip(values, vectors.T, strict=True):
        if value.real >= -DETECTABILITY_TOL and np.linalg.norm(weight @ vector) <= 1e-10 * scale:
            raise ProblemError(
                f"no stabilising LQ optimum: the drift direction with exponent {value:.3g} (after the "
                "discount shift −γ/2) carries no loss; it needs k > 0 and H positive in that direction")


def _check_symmetric(matrix, name, definite):
    if not np.allclose(matrix, matrix.T, rtol=1e-10, atol=1e-12 * max(np.abs(matrix).max(), 1e-300)):
        raise ProblemError(f"{name} must be symmetric")
    smallest = np.linalg.eigvalsh(0.5 * (matrix + matrix.T)).min()
    scale = max(np.abs(matrix).max(), 1e-300)
    if (definite and smallest <= 0) or smallest < -1e-12 * scale:
        kind = "positive definite" if definite else "positive semidefinite"
        raise ProblemError(f"{name} must be {kind} (smallest eigenvalue {smallest:.3g})")


def _matrix(value, n, name):
    if value is None:
        raise ProblemError(f"{name} is required")
    try:
        value = np.atleast_2d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        raise ProblemError(f"{name} must be a matrix of numbers") from None
    if value.ndim != 2 or value.shape[0] != value.shape[1] or (n is not None and value.shape[0] != n):
        size = f" of size {n}" if n else ""
        raise ProblemError(f"{name} must be a square matrix{size}, got shape {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ProblemError(f"{name} has non-finite entries")
    return value


def _vector(value, n, name):
    try:
        value = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ProblemError(f"{name} must be a vector of {n} numbers") from None
    if value.shape != (n,):
        raise ProblemError(f"{name} must have length {n}, got {value.shape[0]}")
    if not np.all(np.isfinite(value)):
        raise ProblemError(f"{name} must be finite")
    return value
