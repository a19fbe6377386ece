"""The 1D tilted double well (Vastola, Gershman & Rajan 2025, App. C.2, Eqs. 54–65).

    L(θ) = (h/4)(θ² − θ*²)² − (q/3)θ³ − L_min,   f = 0,   G = 1

L′(θ) = hθ(θ − θ₊)(θ − θ₋) with minima θ± = q/(2h) ± √(q²/(4h²) + θ*²); for q > 0 the
global one is θ₊ (θ₋ for q < 0) and L_min makes L = 0 there. At γ = 0 the Euler–Lagrange
equation θ̈ = ηkL′(θ) has the energy integral θ̇² = 2ηk(L(θ) + E); a finite objective
needs E = 0, so the optimal rule is θ̇ = ±√(2ηk·L(θ)) towards the global minimum (Eq. 64).

Writing L = (h/4)u²(u² + bu + c) with u = θ − θ_min (c > b²/4: no other zero), the rule is
u̇ = −κ u √(u² + bu + c), κ = √(ηkh/2), whose time t(u) is elementary (docs/derivations.md);
:meth:`DoubleWell.analytic` inverts it to machine precision. There is no closed form for γ > 0.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.optimize

import ocp

from .checks import scalar
from .scenario import Scenario


def double_well_loss(theta, h, theta_star, q, L_min):
    x = theta[0]
    return h / 4 * (x ** 2 - theta_star ** 2) ** 2 - q / 3 * x ** 3 - L_min


class DoubleWellScenario(Scenario):
    name = "double_well"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. C.2, Eqs. 54–65: "
                 "L = (h/4)(θ² − θ*²)² − (q/3)θ³ − L_min; at γ = 0, θ̇ = ±√(2ηk·L(θ))")
    # C.2 prints no numbers; the 1D cut of Fig. 1: h = 4a, θ*² = b with a = b = 1, the tilt
    # q = 1/2 as Fig. 1's |d|, η = k = 1, θ0 = −0.6 (Fig. 1's θ1(0), on the slope of the
    # shallower well); γ = 0, C.2's solvable case
    defaults = {"h": 4.0, "theta_star": 1.0, "q": 0.5, "gamma": 0.0, "eta": 1.0, "k": 1.0}
    ranges = {"h": "> 0; draws: log-uniform [1, 8]",
              "theta_star": "> 0; draws: [0.5, 1.5]",
              "q": "≠ 0 (q = 0 has two global minima; q > 0: global minimum θ₊, q < 0: θ₋); "
                   "draws: ±h·θ*·[0.1, 1]",
              "gamma": "≥ 0; analytic only at γ = 0; validation: 0, 0.1, 1, 10",
              "eta": "> 0; draws: [0.5, 2]", "k": "> 0; draws: [0.5, 2]"}

    def normalise(self, params):
        params = {key: scalar(key, value) for key, value in params.items()}
        for key in ("h", "theta_star", "eta", "k"):
            if params[key] <= 0:
                raise ocp.ProblemError(f"parameter {key!r} must be > 0, got {params[key]}; "
                                       f"valid: {self.ranges[key]}")
        if params["q"] == 0:
            raise ocp.ProblemError(f"parameter 'q' must be non-zero, got 0; valid: {self.ranges['q']}")
        if params["gamma"] < 0:
            raise ocp.ProblemError(f"parameter 'gamma' must be ≥ 0, got {params['gamma']}")
        return params

    def build(self, params):
        constants = {"h": params["h"], "theta_star": params["theta_star"], "q": params["q"],
                     "L_min": self._tilted_loss(self.minima()[0, 0])}
        return ocp.DiscountedOCP(dim=1, loss=double_well_loss, gamma=params["gamma"],
                                 eta=params["eta"], k=params["k"], constants=constants,
                                 name=self.name)

    def _tilted_loss(self, x):
        """(h/4)(x² − θ*²)² − (q/3)x³ (L without its offset)."""
        h, theta_star, q = (self.params[key] for key in ("h", "theta_star", "q"))
        return h / 4 * (x ** 2 - theta_star ** 2) ** 2 - q / 3 * x ** 3

    def minima(self) -> np.ndarray:
        """[[θ_global], [θ_local]]: θ± = q/(2h) ± √(q²/(4h²) + θ*²), the global one first."""
        h, theta_star, q = (self.params[key] for key in ("h", "theta_star", "q"))
        centre, half_width = q / (2 * h), math.hypot(q / (2 * h), theta_star)
        upper, lower = centre + half_width, centre - half_width
        # the product of the roots is −θ*²: form the smaller one from it to keep its digits
        if q > 0:
            return np.array([[upper], [-theta_star ** 2 / upper]])
        return np.array([[lower], [-theta_star ** 2 / lower]])

    def default_theta0(self):
        """−0.6·θ* on the side of the shallower well (Fig. 1's θ1(0) = −0.6 at θ* = 1)."""
        return np.array([-0.6 * self.params["theta_star"] * math.copysign(1.0, self.params["q"])])

    def fixed_point(self):
        """The global minimum: the limit of the optimal path at γ = 0 (a large γ may stop in
        the local minimum instead)."""
        return self.minima()[0].copy()

    def guesses(self):
        return list(self.minima())

    def random_params(self, rng):
        h = float(np.exp(rng.uniform(np.log(1.0), np.log(8.0))))
        theta_star = float(rng.uniform(0.5, 1.5))
        q = float(rng.choice([-1.0, 1.0]) * h * theta_star * rng.uniform(0.1, 1.0))
        return {"h": h, "theta_star": theta_star, "q": q,
                "eta": float(rng.uniform(0.5, 2)), "k": float(rng.uniform(0.5, 2))}

    # -- the γ = 0 closed form ---------------------------------------------------------
    def has_analytic(self):
        return self.params["gamma"] == 0

    def factor(self) -> tuple:
        """(b, c) with L = (h/4)u²(u² + bu + c), u = θ − θ_min: b = 2L‴/(3h), c = 2L″/h at θ_min."""
        h, theta_star, q = (self.params[key] for key in ("h", "theta_star", "q"))
        x = self.minima()[0, 0]
        return 4 * x - 4 * q / (3 * h), 2 * (3 * h * x ** 2 - 2 * q * x - h * theta_star ** 2) / h

    def analytic(self, t, theta0=None):
        """θ(t) on θ̇ = sign(θ_min − θ0)·√(2ηk·L(θ)) (γ = 0 only; scalar t → (1,), array → (n, 1)).

        With u = θ − θ_min, P(u) = u² + bu + c and κ = √(ηkh/2), the time to reach u is
        t(u) = [g(ln|u|) − g(ln|u0|)]/(κ√c), g(y) = ln N(u) − y, N = 2c + bu + 2√c√P(u);
        g is strictly decreasing (g′ = −√(c/P)), so each time has one root y, found by brentq.
        """
        if not self.has_analytic():
            raise NotImplementedError(f"{self.name} has a closed form only at gamma = 0")
        theta0 = self.theta0 if theta0 is None else np.asarray(theta0, dtype=float).reshape(-1)
        b, c = self.factor()
        minimum = self.minima()[0, 0]
        kappa = math.sqrt(self.params["eta"] * self.params["k"] * self.params["h"] / 2)
        u0 = float(theta0[0] - minimum)
        times = np.atleast_1d(np.asarray(t, dtype=float))
        if u0 == 0.0:
            out = np.full((times.size, 1), minimum)
            return out[0] if np.ndim(t) == 0 else out
        side, root_c = math.copysign(1.0, u0), math.sqrt(c)

        def g(y):
            u = side * math.exp(y)
            p = u * u + b * u + c
            linear = 2 * c + b * u
            # N·N̄ = −u²(4c − b²) with N̄ = linear − 2√c√P: avoid cancelling when linear < 0
            n = (linear + 2 * root_c * math.sqrt(p) if linear >= 0
                 else u * u * (4 * c - b * b) / (2 * root_c * math.sqrt(p) - linear))
            return math.log(n) - y

        y0 = math.log(abs(u0))
        g0 = g(y0)
        # √(c/P) ≥ √(c/max(c, P(u0))) on [0, u0] (P convex): bounds the distance in y
        slope_min = math.sqrt(c / max(c, u0 * u0 + b * u0 + c))
        y_tiny = math.log(np.finfo(float).tiny * (1 + abs(minimum)))
        out = np.empty((times.size, 1))
        for i, time in enumerate(times):
            if time < 0:
                raise ValueError("analytic: times must be ≥ 0")
            target = g0 + kappa * root_c * time
            low = max(y0 - kappa * root_c * time / slope_min - 1.0, y_tiny)
            if time == 0:
                y = y0
            elif g(low) <= target:      # |u| below the smallest float: at the minimum
                y = -math.inf
            else:
                y = scipy.optimize.brentq(lambda y, level: g(y) - level, low, y0, args=(target,),
                                          xtol=1e-15, rtol=1e-15)
            out[i, 0] = minimum + side * math.exp(y)
        return out[0] if np.ndim(t) == 0 else out

    def analytic_velocity(self, theta) -> np.ndarray:
        """The γ = 0 optimal rule θ̇ = sign(θ_min − θ)·√(2ηk·L(θ)) (Eq. 64), elementwise, from
        the factored L = (h/4)u²P(u): θ̇ = −κ u √P(u), which keeps its digits near θ_min."""
        u = np.asarray(theta, dtype=float) - self.minima()[0, 0]
        b, c = self.factor()
        kappa = math.sqrt(self.params["eta"] * self.params["k"] * self.params["h"] / 2)
        return -kappa * u * np.sqrt(u * u + b * u + c)
