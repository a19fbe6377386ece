"""Adam from online Bayesian beliefs about the landscape (Vastola, Gershman & Rajan 2025,
App. H.2, simplified observation model, Eqs. 141–142).

Per coordinate i the learner carries θ_i and beliefs about the local gradient: a mean m_i
and a variance v_i (diagonal covariance). It observes a stream g(t) of noisy gradients
and minimises J = ∫ e^{−γt} Σ_i ℓ_i dt with (Eq. 142)

    ℓ_i = θ̇_i²/2η + (g_i − m_i)²/2σ1² + (v_i − (g_i − m_i)²)²/2σ2²
          + (ṁ_i + α1 m_i)²/2ξ1² + (v̇_i + α2 v_i)²/2ξ2² + k·E[L]_i,
    E[L]_i = m_i (θ_i − θ̂_i) + ½ v_i (θ_i − θ̂_i)²                         (Eq. 133)

(θ̂ the anchor the belief's local model is expanded at). The Euler–Lagrange equations,
derived in docs/belief_adam.md (the OCR of Eq. 142 is garbled), with d = θ − θ̂, e = g − m:

    θ̈ − γθ̇                 = ηk (m + v d)
    m̈ − γ(ṁ + α1 m) − α1² m = ξ1² [k d + (m − g)/σ1² + 2e(v − e²)/σ2²]
    v̈ − γ(v̇ + α2 v) − α2² v = ξ2² [k d²/2 + (v − e²)/σ2²]

:func:`euler_lagrange_by_hand` evaluates exactly these on a trajectory; the engine's
residual (:func:`ocp.euler_lagrange_error`) differentiates the running cost itself.

Observation stream. g(t) = ḡ + √h ⊙ s · π^{−1/4} Σ_j z_j exp(−(t/Δs − j)²/2), j = 0…N−1,
z_j ~ N(0, 1) seeded: white samples every Δs smoothed by a Gaussian kernel of width Δs,
normalised so that g has variance s²·h inside the window (a squared-exponential Gaussian
process). Why this form: (1) the weights √h s z_j π^{−1/4} are a (dim, N) constant, hence NLP
parameters (a new seed or noise level re-solves without rebuilding); (2) the signal is
analytic, so collocation keeps its spectral accuracy and the EL residual stays meaningful
(a piecewise-linear interpolant would put kinks inside elements); (3) the variance ∝ h is
App. H.1's model (Eqs. 134–137: gradients at a point jittered around θ̂ by an
Ornstein–Uhlenbeck process have covariance ∝ H); (4) after the last sample the stream
settles to ḡ (the kernel tail is < 1e-17 beyond 9Δs), so the problem is time-invariant
there and the infinite-horizon path can come to rest. With γ > 0, ``ocp.solve`` continues an
infinite-horizon path beyond e^{−γt} = 1e-2 by the time-dependent policy π(t, θ); the stream
needs finer meshes than the default there (docs/belief_adam.md). ``lossnav validate`` uses
γ = 0: the parameter draws have a rest state at γ = 0 only.

The belief terms enter k·E[L]: the learner is rewarded for optimistic beliefs (small v,
large |m|), so the OCP is bounded only locally (docs/belief_adam.md, "Optimism"). Rest
point: ``fixed_point`` solves the stationary equations with the settled stream ḡ; at γ = 0
the running cost is measured against resting there (as :class:`problems.quadratic.RestingOCP`).
"""
from __future__ import annotations

import math

import casadi
import numpy as np
from scipy.optimize import root

import ocp

from . import ops
from .scenario import Scenario, array, scalar

POSITIVE = ("noise", "sample_interval", "sigma1", "sigma2", "xi1", "xi2", "v0", "eta", "k")
RATES = ("alpha1", "alpha2", "gamma")
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
            raise ocp.ProblemError(f"the initial variance beliefs v(0) (the last {self.dim} entries of theta0) "
                                   f"must be > 0, got {state[2 * self.dim:].tolist()}")
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


class BeliefAdamScenario(Scenario):
    name = "belief_adam"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. H.2, Eqs. 133, 141–142: θ with "
                 "beliefs m (gradient mean), v (gradient variance) per coordinate, noisy gradient "
                 "stream g(t); Adam-like step θ̇ ≈ −√(ηk) m/√v when γ² ≪ ηkv and beliefs are slow")
    defaults = {"gradient": [1.0, -0.5], "curvature": [1.0, 4.0], "noise": 0.5, "samples": 8,
                "sample_interval": 0.5, "seed": 0, "sigma1": 0.5, "sigma2": 0.5, "xi1": 1.0,
                "xi2": 1.0, "alpha1": 4.0, "alpha2": 1.0, "v0": 1.0, "gamma": 0.0, "eta": 400.0,
                "k": 0.05}
    ranges = {"gradient": "vector ḡ (the stream's settled mean, the true gradient at θ̂); draws: N(0, 1), dim 1–3",
              "curvature": "vector h > 0 (true Hessian diagonal; stream variance s²h); draws: [0.5, 4]",
              "noise": "> 0 (stream noise scale s); draws: [0.2, 0.8]",
              "samples": "integer ≥ 1 (noise samples N)", "sample_interval": "> 0 (Δs between samples)",
              "seed": "integer ≥ 0 (the stream's noise)",
              "sigma1": "> 0 (observation noise of g, Eq. 141); draws: [0.4, 0.6]",
              "sigma2": "> 0 (observation noise of (g − m)²); draws: [0.4, 0.6]",
              "xi1": "> 0 (prior volatility of m); draws: [0.8, 1.2]",
              "xi2": "> 0 (prior volatility of v); draws: [0.8, 1.2]",
              "alpha1": "≥ 0 (decay rate of m, 1/time constant); draws: [3.5, 5]",
              "alpha2": "≥ 0 (decay rate of v, 1/time constant); draws: [0.8, 1.5]",
              "v0": "> 0 (initial variance belief v(0))",
              "gamma": "≥ 0; validation: 0 and 0.5 (draws have a rest state at each)",
              "eta": "> 0; draws: [200, 600]", "k": "> 0; draws: [0.03, 0.06]"}
    validation_gammas = (0.0, 0.5)

    def normalise(self, params):
        gradient = np.atleast_1d(array("gradient", params["gradient"], (0, 1)))
        curvature = np.atleast_1d(array("curvature", params["curvature"], (0, 1)))
        if curvature.shape == (1,) and gradient.shape[0] > 1:
            curvature = np.full(gradient.shape, curvature[0])
        if curvature.shape != gradient.shape:
            raise ocp.ProblemError(f"parameter 'curvature' must have length {gradient.shape[0]} "
                                   f"(the size of 'gradient'), got {curvature.shape[0]}")
        out = {"gradient": gradient.tolist(), "curvature": curvature.tolist()}
        for key in ("samples", "seed"):
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) and not (
                    isinstance(value, float) and value.is_integer()):
                raise ocp.ProblemError(f"parameter {key!r} must be an integer, got {value!r}")
            out[key] = int(value)
        if out["samples"] < 1 or out["seed"] < 0:
            raise ocp.ProblemError(f"parameters 'samples' ≥ 1 and 'seed' ≥ 0 required, got "
                                   f"{out['samples']}, {out['seed']}")
        for key in ("noise", "sample_interval", "sigma1", "sigma2", "xi1", "xi2", "alpha1", "alpha2",
                    "v0", "gamma", "eta", "k"):
            out[key] = scalar(key, params[key])
        if np.any(curvature <= 0):
            raise ocp.ProblemError(f"parameter 'curvature' must be > 0, got {curvature.tolist()}; "
                                   f"valid: {self.ranges['curvature']}")
        for key in POSITIVE:
            if out[key] <= 0:
                raise ocp.ProblemError(f"parameter {key!r} must be > 0, got {out[key]}; valid: {self.ranges[key]}")
        for key in RATES:
            if out[key] < 0:
                raise ocp.ProblemError(f"parameter {key!r} must be ≥ 0, got {out[key]}; valid: {self.ranges[key]}")
        return out

    def build(self, params):
        gradient, curvature = np.array(params["gradient"]), np.array(params["curvature"])
        dim = len(gradient)
        stream = stream_weights(gradient, curvature, params["noise"], params["samples"], params["seed"])
        self._rest = rest_point(params)
        constants = {"gradient": gradient, "curvature": curvature, "anchor": np.zeros(dim),
                     "stream": stream, "sample_interval": params["sample_interval"],
                     **{key: params[key] for key in ("sigma1", "sigma2", "xi1", "xi2", "alpha1", "alpha2")},
                     "rest": self._rest if self._rest is not None else np.zeros(3 * dim),
                     "resting": float(self._rest is not None)}
        return BeliefOCP(dim=dim, loss=landscape, gamma=params["gamma"], eta=params["eta"], k=params["k"],
                         constants=constants, name=self.name)

    @property
    def dim(self) -> int:
        """The OCP state's dimension, 3·len(θ) (validation compares whole states)."""
        return self.problem.state_dim

    @property
    def coordinates(self) -> int:
        """Number of coordinates θ_i (each with its m_i, v_i)."""
        return self.problem.dim

    def default_theta0(self):
        """(θ(0), m(0), v(0)) = (θ̂, 0, v0): no belief about the gradient yet."""
        n = self.coordinates
        return np.concatenate([np.zeros(n), np.zeros(n), np.full(n, self.params["v0"])])

    @property
    def settle_time(self) -> float:
        """Time after which g(t) = ḡ to round-off (last sample + 9Δs)."""
        return (self.params["samples"] - 1 + KERNEL_TAIL) * self.params["sample_interval"]

    def observations(self, t) -> np.ndarray:
        """g(t) at numeric times, (n, dim)."""
        c = self.problem.constants
        return observation(t, c["gradient"], c["stream"], c["sample_interval"])

    def fixed_point(self):
        """The rest state (θ*, m*, v*) under the settled stream ḡ (:func:`rest_point`)."""
        if self._rest is None:
            raise ocp.ProblemError(
                "belief_adam has no rest state with v > 0 at these parameters (the optimistic "
                "belief loss is unbounded at rest, docs/belief_adam.md); use a finite horizon")
        return self._rest.copy()

    def guesses(self) -> list:
        """The rest state as the infinite-horizon first guess (the guess then approaches it
        exponentially): from θ0 held constant IPOPT may wander into the optimistic region."""
        return [self.fixed_point()] if self._rest is not None else []

    def random_params(self, rng):
        """Draws near the defaults, redrawn until a rest state exists at every validation γ."""
        for _ in range(100):
            dim = int(rng.integers(1, 4))
            params = {"gradient": rng.normal(size=dim).tolist(), "curvature": rng.uniform(0.5, 4, dim).tolist(),
                      "noise": float(rng.uniform(0.2, 0.8)), "seed": int(rng.integers(0, 2 ** 31)),
                      "sigma1": float(rng.uniform(0.4, 0.6)), "sigma2": float(rng.uniform(0.4, 0.6)),
                      "xi1": float(rng.uniform(0.8, 1.2)), "xi2": float(rng.uniform(0.8, 1.2)),
                      "alpha1": float(rng.uniform(3.5, 5)), "alpha2": float(rng.uniform(0.8, 1.5)),
                      "eta": float(rng.uniform(200, 600)), "k": float(rng.uniform(0.03, 0.06))}
            if all(rest_point({**self.params, **params, "gamma": gamma}) is not None
                   for gamma in self.validation_gammas):
                return params
        raise ocp.ProblemError("no parameter draw with a rest state in 100 tries")

    def random_theta0(self, rng):
        n = self.coordinates
        return np.concatenate([rng.normal(scale=0.3, size=n), rng.normal(scale=0.3, size=n),
                               rng.uniform(0.5, 2, n)])

    def torch_loss(self, theta):
        """The true landscape L(θ) = ḡᵀ(θ − θ̂) + ½(θ − θ̂)ᵀdiag(h)(θ − θ̂) on a 1-D tensor."""
        return landscape(theta, **self.torch_constants(theta))


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
    model = {key: params[key] for key in ("sigma1", "sigma2", "xi1", "xi2", "alpha1", "alpha2", "gamma", "eta", "k")}
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
    from ocp.verification import _acceleration   # θ̈ from the element polynomials, as the engine's check
    p, n = scenario.params, scenario.coordinates
    gamma, eta, k = p["gamma"], p["eta"], p["k"]
    x, u, a = trajectory.theta, trajectory.velocity, _acceleration(trajectory)
    split = lambda z: (z[:, :n], z[:, n:2 * n], z[:, 2 * n:])
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


def quasi_static_velocity(scenario, m, v, theta=None):
    """θ̇ of the optimal path with frozen beliefs (m, v): −(√(γ²/4 + ηkv) − γ/2)(m + v(θ − θ̂))/v,
    written as −ηk(m + v d)/(√(γ²/4 + ηkv) + γ/2). γ² ≪ ηkv: −√(ηk)·m/√v at θ = θ̂ (Adam);
    γ² ≫ ηkv: −(ηk/γ)·m (SGD on the mean belief)."""
    p = scenario.params
    d = 0.0 if theta is None else np.asarray(theta) - scenario.problem.constants["anchor"]
    eta_k = p["eta"] * p["k"]
    return -eta_k * (np.asarray(m) + np.asarray(v) * d) / (np.sqrt(p["gamma"] ** 2 / 4 + eta_k * np.asarray(v))
                                                          + p["gamma"] / 2)
