"""The 2D double well of Fig. 1 (Vastola, Gershman & Rajan 2025, App. B).

    L(θ) = a (θ1² − b)² + c θ2² + d θ1,   defaults a = b = c = 1, d = −1/2

with η = k = 1, γ = 0.1 and θ(0) = (−0.6, 0.55). The paper's figure uses the horizon
T = 4 with the end fixed at θ(4) = (1.0625, 0) (``paper_setting``); on the infinite
horizon with a free end the path reaches the global minimum θ1 ≈ 1.0575, θ2 = 0.
a, b, c, d are constants of the OCP, so changing them re-solves without rebuilding.
"""
from __future__ import annotations

import numpy as np

import ocp

from .checks import scalar
from .scenario import Scenario


def double_well_loss(theta, a, b, c, d):
    return a * (theta[0] ** 2 - b) ** 2 + c * theta[1] ** 2 + d * theta[0]


class DoubleWell2DScenario(Scenario):
    name = "double_well_2d"
    reference = ("Vastola, Gershman & Rajan (NeurIPS 2025), App. B and Fig. 1: "
                 "L = a(θ1² − b)² + cθ2² + dθ1")
    defaults = {"a": 1.0, "b": 1.0, "c": 1.0, "d": -0.5, "gamma": 0.1, "eta": 1.0, "k": 1.0}
    ranges = {"a": "> 0; draws: [0.5, 2]", "b": "> 0; draws: [0.5, 2]", "c": "> 0; draws: [0.5, 2]",
              "d": "real; draws: [−1, −0.1] (the right well stays the global minimum)",
              "gamma": "≥ 0", "eta": "> 0", "k": "≥ 0"}
    paper_setting = {"horizon": 4.0, "terminal": [1.0625, 0.0]}
    # L is not 0 at its minimum, so at γ = 0 the infinite-horizon objective diverges
    validation_gammas = (0.1, 1.0, 10.0)

    def normalise(self, params):
        params = {key: scalar(key, value) for key, value in params.items()}
        for key in "abc":
            if params[key] <= 0:
                raise ocp.ProblemError(f"parameter {key!r} must be > 0, got {params[key]}")
        return params

    def build(self, params):
        constants = {key: params[key] for key in "abcd"}
        return ocp.DiscountedOCP(dim=2, loss=double_well_loss, gamma=params["gamma"],
                                 eta=params["eta"], k=params["k"], constants=constants,
                                 name=self.name)

    def default_theta0(self):
        return np.array([-0.6, 0.55])

    def minima(self) -> np.ndarray:
        """The loss minima (θ1, 0), θ1 real roots of 4aθ1(θ1² − b) + d = 0 with positive
        curvature, global first."""
        a, b, d = (self.params[key] for key in "abd")
        roots = np.roots([4 * a, 0.0, -4 * a * b, d])
        roots = np.sort(roots[np.abs(roots.imag) < 1e-9].real)
        wells = [r for r in roots if 12 * a * r ** 2 - 4 * a * b > 0]
        wells.sort(key=lambda r: a * (r ** 2 - b) ** 2 + d * r)
        return np.array([[r, 0.0] for r in wells])

    def fixed_point(self):
        return self.minima()[0]

    def random_params(self, rng):
        return {**{key: float(rng.uniform(0.5, 2)) for key in "abc"}, "d": float(rng.uniform(-1, -0.1))}

    def guesses(self) -> list:
        """Initial guesses for the infinite-horizon solve: one path into each well (the
        problem is non-convex; :func:`ocp.solve` keeps the best objective)."""
        return [point for point in self.minima()]
