"""Trust-region Newton–CG on the discrete J: Steihaug's truncated PCG, Eisenstat–Walker forcing.

Each Newton step minimises the quadratic model g·p + ½ p·∇²J p inside ‖p‖_P ≤ Δ (P the banded
preconditioner of :mod:`ocp.matrix_free.objective`) by preconditioned CG, stopped at the boundary,
at negative curvature, or when the preconditioned residual is below η_k times its start
(Steihaug, SIAM J. Numer. Anal. 20, 1983; Conn, Gould & Toint, *Trust-Region Methods*, 2000,
Alg. 7.5.1 for the P-norm recurrences). The forcing η_k is Eisenstat & Walker's choice 2 (SIAM J.
Sci. Comput. 17, 1996): 0.9 (‖g_k‖/‖g_{k−1}‖)², safeguarded, at most 0.5, so the Newton
iteration converges quadratically without over-solving the early steps; at least the loss's
``krylov_precision`` (1e-5 with float32 Krylov HVPs: below it CG only spends iterations, and
Newton converges linearly at that rate instead).

Convergence is measured in θ units: the step (and the preconditioned gradient) at every node,
unscaled by e^{γt_j/2} (up to ``until``), against ``step_tol`` times the path's range, but never
below the unknowns' own precision (ROUNDOFF). Where the predicted decrease is below J's resolution
(RESOLVED), the actual decrease is measured by the trapezoid rule on ∇J instead of J's difference.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import SolveError

NOT_CONVERGED = "newton_not_converged"

ROUNDOFF = 1e-14
"""The unknowns' own precision: Y (O(1) everywhere, Θ_j = e^{γt_j/2}Y_j) is resolved to about
ROUNDOFF·max|Y|, so Θ_j to e^{γt_j/2} times that; the θ-unit tolerance is never asked below it
(it matters only late on a long window: e^{γt/2} = 1.6e5 at γt = 24)."""

RESOLVED = 1e-9
"""Below this predicted decrease (relative to |J|) the difference J(Y) − J(Y + p) keeps fewer than
seven digits; the actual decrease is then ½(∇J(Y) + ∇J(Y + p))·p (trapezoid rule on the
gradient: no cancellation, error O(|p|³))."""


@dataclasses.dataclass(frozen=True)
class NewtonSettings:
    """The matrix-free solver's settings (``ocp.solve(..., matrix_free={...})``).

    max_newton : Newton iterations before the solve is refused.
    max_cg     : CG iterations per Newton step.
    step_tol   : the Newton step's size at convergence, relative to the path's range.
    el_tol     : the largest Euler–Lagrange residual accepted (relative to its terms' size).
    intervals  : elements of the first mesh (None: ``options.mesh.intervals``).
    degree     : the Lobatto degree p (None: ``options.mesh.degree``).
    decay      : the infinite horizon is cut where the slowest stable mode is e^{−decay}.
    refinements: mesh doublings tried before a failed mesh check is refused.
    """

    max_newton: int = 60
    max_cg: int = 400
    step_tol: float = 1e-10
    el_tol: float = 1e-6
    intervals: int | None = None
    degree: int | None = None
    decay: float = 36.0
    refinements: int = 2


class NewtonSolver:
    """Minimises a :class:`DiscreteObjective` from Y; ``last`` holds the current iterate."""

    def __init__(self, objective, settings, deadline, until=math.inf):
        """``until``: convergence is measured at the nodes t ≤ until only (a truncated infinite
        horizon's window: beyond it the scaled unknowns hold no θ digits, and errors there reach
        the window damped by e^{−γ(T − W)}; :mod:`ocp.matrix_free.solve`)."""
        self.objective, self.settings, self.deadline = objective, settings, deadline
        mesh, free = objective.mesh, objective.free
        self.scale = (mesh.node_scale[free] * (mesh.times[free] <= until))[:, None]
        # CG cannot reduce its residual below the HVPs' own precision (float32 Krylov HVPs: ~1e-7)
        self.forcing_floor = objective.metric_loss.loss.krylov_precision
        self.stats = {"newton_iterations": 0, "cg_iterations": 0}
        self.last = None

    def minimise(self, Y, path_range):
        """The minimiser from Y; ``path_range(Y)``: the size convergence is measured against."""
        objective, settings = self.objective, self.settings
        self.last = Y
        value = objective.value(Y)
        gradient, phis = objective.gradient(Y)
        radius, forcing, previous_norm = None, 0.1, None
        for iteration in range(settings.max_newton + 1):
            self.deadline.check("a matrix-free Newton solve", iteration)
            floor = ROUNDOFF * np.abs(Y).max() * self.scale          # the unknowns' own precision
            tolerance = np.maximum(settings.step_tol * path_range(Y), floor)
            z = objective.precondition(gradient)
            norm = math.sqrt(max(np.vdot(gradient, z), 0.0))
            if np.all(np.abs(self.scale * z) <= 0.1 * tolerance):
                return Y
            if iteration == settings.max_newton:
                break
            if previous_norm is not None:
                candidate = 0.9 * (norm / previous_norm) ** 2
                safeguard = 0.9 * forcing ** 2
                forcing = min(0.5, max(candidate, safeguard if safeguard > 0.1 else 0.0))
            radius = norm if radius is None else radius
            forcing = max(forcing, self.forcing_floor)
            step, curvature_step, status = self._steihaug(phis, gradient, z, radius, forcing)
            predicted = -(np.vdot(gradient, step) + 0.5 * np.vdot(step, curvature_step))
            trial = Y + step
            trial_value = objective.value(trial)
            trial_gradient, trial_phis = objective.gradient(trial)
            step_norm = math.sqrt(max(np.vdot(step, objective.metric(step)), 0.0))   # ‖p‖_P, as Steihaug's
            if predicted > RESOLVED * (abs(value) + 1e-300):
                ratio = (value - trial_value) / predicted
            elif predicted > 0:          # J's difference has lost its digits: the trapezoid rule on ∇J
                ratio = -0.5 * np.vdot(gradient + trial_gradient, step) / predicted
            else:
                ratio = -1.0
            if ratio < 0.25:
                radius = 0.25 * step_norm
            elif ratio > 0.75 and status != "converged":
                radius = 2.0 * radius
            self.stats["newton_iterations"] += 1
            if ratio > 1e-4:
                previous_norm = norm
                Y, value, gradient, phis = trial, trial_value, trial_gradient, trial_phis
                self.last = Y
                if status == "converged" and np.all(np.abs(self.scale * step) <= tolerance):
                    return Y
        raise SolveError(f"matrix-free Newton did not converge in {settings.max_newton} iterations "
                         f"(preconditioned gradient {norm:.3g})", NOT_CONVERGED,
                         self.stats["newton_iterations"])

    def _steihaug(self, phis, gradient, z, radius, forcing):
        """The truncated PCG step (module docstring): (p, ∇²J·p, why it stopped)."""
        objective = self.objective
        step, curvature_step = np.zeros_like(gradient), np.zeros_like(gradient)
        residual, direction = gradient.copy(), -z
        rz = np.vdot(residual, z)
        stop = forcing * math.sqrt(rz)
        pp, pd, dd = 0.0, 0.0, rz         # ‖p‖²_P, pᵀPd, ‖d‖²_P
        for _ in range(self.settings.max_cg):
            self.stats["cg_iterations"] += 1
            self.deadline.check("a matrix-free CG solve", self.stats["newton_iterations"])
            Hd = objective.hvp(phis, direction)
            curvature = np.vdot(direction, Hd)
            if curvature <= 0 or pp + 2 * (rz / curvature) * pd + (rz / curvature) ** 2 * dd >= radius ** 2:
                tau = (-pd + math.sqrt(max(pd ** 2 + dd * (radius ** 2 - pp), 0.0))) / dd
                return step + tau * direction, curvature_step + tau * Hd, "boundary"
            alpha = rz / curvature
            step += alpha * direction
            curvature_step += alpha * Hd
            residual += alpha * Hd
            z = objective.precondition(residual)
            rz_new = np.vdot(residual, z)
            if math.sqrt(max(rz_new, 0.0)) <= stop:
                return step, curvature_step, "converged"
            beta = rz_new / rz
            pp = pp + 2 * alpha * pd + alpha ** 2 * dd
            pd = beta * (pd + alpha * dd)
            dd = rz_new + beta ** 2 * dd
            direction = -z + beta * direction
            rz = rz_new
        return step, curvature_step, "max_cg"
