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
residual (:func:`ocp.euler_lagrange_error`) differentiates the running cost itself. The OCP,
the stream and these equations are in :mod:`problems.belief_adam_ocp`; this module holds the
scenario (parameters, draws, rest state, the frozen-belief policy).

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

import numpy as np

import ocp

from .belief_adam_ocp import (
    KERNEL_TAIL,
    BeliefOCP,
    landscape,
    observation,
    rest_point,
    stream_weights,
)
from .checks import array, scalar
from .scenario import Scenario

POSITIVE = ("noise", "sample_interval", "sigma1", "sigma2", "xi1", "xi2", "v0", "eta", "k")
RATES = ("alpha1", "alpha2", "gamma")
class BeliefAdamScenario(Scenario):
    name = "belief_adam"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. H.2, Eqs. 133, 141–142: θ with "
                 "beliefs m (gradient mean), v (gradient variance) per coordinate, noisy gradient "
                 "stream g(t); Adam-like step θ̇ ≈ −√(ηk) m/√v when γ² ≪ ηkv and beliefs are slow")
    defaults = {"gradient": [1.0, -0.5], "curvature": [1.0, 4.0], "noise": 0.5, "samples": 8,
                "sample_interval": 0.5, "seed": 0, "sigma1": 0.5, "sigma2": 0.5, "xi1": 1.0,
                "xi2": 1.0, "alpha1": 4.0, "alpha2": 1.0, "v0": 1.0, "gamma": 0.0, "eta": 400.0,
                "k": 0.05}
    ranges = {"gradient": "vector ḡ (the stream's settled mean, the true gradient at θ̂); "
                          "draws: N(0, 1), dim 1–3",
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
                raise ocp.ProblemError(f"parameter {key!r} must be > 0, got {out[key]}; "
                                       f"valid: {self.ranges[key]}")
        for key in RATES:
            if out[key] < 0:
                raise ocp.ProblemError(f"parameter {key!r} must be ≥ 0, got {out[key]}; "
                                       f"valid: {self.ranges[key]}")
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
            params = {"gradient": rng.normal(size=dim).tolist(),
                      "curvature": rng.uniform(0.5, 4, dim).tolist(),
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


def quasi_static_velocity(scenario, m, v, theta=None):
    """θ̇ of the optimal path with frozen beliefs (m, v): −(√(γ²/4 + ηkv) − γ/2)(m + v(θ − θ̂))/v,
    written as −ηk(m + v d)/(√(γ²/4 + ηkv) + γ/2). γ² ≪ ηkv: −√(ηk)·m/√v at θ = θ̂ (Adam);
    γ² ≫ ηkv: −(ηk/γ)·m (SGD on the mean belief)."""
    p = scenario.params
    d = 0.0 if theta is None else np.asarray(theta) - scenario.problem.constants["anchor"]
    eta_k = p["eta"] * p["k"]
    v = np.asarray(v)
    return -eta_k * (np.asarray(m) + v * d) / (np.sqrt(p["gamma"] ** 2 / 4 + eta_k * v) + p["gamma"] / 2)
