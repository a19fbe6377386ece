"""A finite-horizon plan of a DiscountedOCP with a trust region on the planned displacement.

    minimise  ∫_0^T e^{−γt} [ (1/2η)(θ̇ − f)ᵀG(θ̇ − f) + k·L(θ) ] dt  +  e^{−γT} Φ(θ(T))
    subject to |θ(t) − θ0| ≤ ρ at every collocation node,   θ(0) = θ0

(Vastola, Gershman & Rajan 2025, Eq. 2, with a path constraint). The NLP is the engine's one
transcription (:class:`ocp.nlp.transcription.Transcription`) on a finite horizon T = N·h, with
Radau collocation (the last point of each element is its end, so the plan's nodes are θ0 and
the collocation points), the trust region as an optional path constraint and Φ as its
terminal cost (``ocp.nlp.path_constraints``). This module only translates the planner's
interface (element width h, radius ρ, node states) to that NLP.

The terminal cost Φ(θ, **constants) — e.g. the infinite-horizon value of the unconstrained
problem, which makes the plan the infinite-horizon optimum whenever the trust region is
inactive (discounting is time-consistent) — is written like the loss, on CasADi symbols.
θ0, the horizon, ρ, γ, η, k and the problem constants are NLP parameters: the NLP is
built once and re-solved with new values (warm start from any guess of the node states).
A solve that IPOPT does not report as converged is returned with ``success = False``;
callers must not use it as optimal (``TrustRegionPlanner.solve`` never raises for it).
"""
from __future__ import annotations

import numpy as np

from ..checks import count, number
from ..errors import ProblemError
from ..nlp.collocation import element_scheme, lagrange_basis
from ..nlp.mesh import Mesh
from ..nlp.transcription import Transcription
from ..nlp.window import solve_window

PLANNER_IPOPT = {"tol": 1e-11, "acceptable_iter": 0, "max_iter": 100, "print_level": 0, "sb": "yes",
                 "mu_strategy": "adaptive", "bound_push": 1e-8, "bound_frac": 1e-8}


class TrustRegionPlanner:
    """Plan of ``problem`` over ``intervals`` equal elements (Radau, ``degree``) in a trust region.

    terminal_cost : None or ``Φ(theta, **constants)`` → scalar (CasADi symbols, like the loss).
    ipopt         : options merged over :data:`PLANNER_IPOPT` (e.g. ``max_iter``, ``max_cpu_time``).
    """

    def __init__(self, problem, intervals=4, degree=4, terminal_cost=None, ipopt=None):
        intervals = count("intervals", intervals)
        try:
            self.scheme = element_scheme("radau", degree)
        except ValueError as exc:
            raise ProblemError(str(exc)) from None
        if terminal_cost is not None and not callable(terminal_cost):
            raise ProblemError("terminal_cost must be None or callable: terminal_cost(theta, **constants)")
        self.problem, self.intervals, self.degree = problem, intervals, int(degree)
        self.n = problem.state_dim
        self.transcription = Transcription(problem, Mesh(intervals, self.degree, "radau"), infinite=False,
                                           terminal=False, ipopt={**PLANNER_IPOPT, **(ipopt or {})},
                                           trust_region=True, terminal_cost=terminal_cost)
        self.build_time = self.transcription.build_time

    @property
    def node_times(self) -> np.ndarray:
        """Node times in units of the element width: 0 then (e + τ_i), (N·d + 1,)."""
        return np.concatenate([[0.0], (np.arange(self.intervals)[:, None] + self.scheme.points).ravel()])

    def solve(self, theta0, width, radius, params, guess=None):
        """One solve. ``params``: ``problem.parameter_values()``; ``guess``: node states
        (N·d, n) after θ0 (default θ0 held). Returns a dict: success, status, iterations,
        solve_time, f, nodes (N·d + 1, n) including θ0, max_offset (largest |θ − θ0| / ρ)."""
        theta0 = np.asarray(theta0, float).reshape(-1)
        if theta0.shape != (self.n,):
            raise ProblemError(f"theta0 must have length {self.n}, got {theta0.shape[0]}")
        width, radius = number("width", width, positive=True), number("radius", radius, positive=True)
        N, d, tr = self.intervals, self.degree, self.transcription
        if guess is None:
            guess = np.broadcast_to(theta0, (N * d, self.n))
        nodes = np.vstack([theta0, np.asarray(guess, float).reshape(-1, self.n)])
        raw = solve_window(tr, theta0, np.asarray(params, float), N * width,
                           guess=self._variables(nodes, width), radius=radius, require_converged=False)
        X, _, _ = tr.unpack(raw["x"])
        nodes = np.vstack([theta0, X[:, :, 1:].transpose(0, 2, 1).reshape(-1, self.n)])
        offsets = np.linalg.norm(nodes - theta0, axis=1) / radius
        finite = bool(np.all(np.isfinite(nodes)))
        return {"success": raw["success"] and finite and offsets.max() <= 1 + 1e-6,
                "status": raw["status"], "iterations": raw["iterations"], "solve_time": raw["solve_time"],
                "f": raw["f"], "nodes": nodes, "max_offset": float(offsets.max())}

    def _variables(self, nodes, width):
        """The NLP's V from node states (N·d + 1, n): element e's nodes are the previous end
        and its collocation points; U = Σ_k D[k,i] X_k / h (t' = 1 on the linear map)."""
        N, d = self.intervals, self.degree
        X = np.stack([nodes[e * d: e * d + d + 1].T for e in range(N)])       # (N, n, d + 1)
        U = X @ self.scheme.derivative / width                                # (N, n, d)
        return self.transcription.pack(X, U, nodes[-1])

    def evaluate(self, nodes, times):
        """θ at ``times`` (units of the element width, in [0, N]) from the node states of a solve."""
        times = np.atleast_1d(np.asarray(times, float))
        if np.any(times < -1e-12) or np.any(times > self.intervals + 1e-12):
            raise ProblemError(f"times must lie in [0, {self.intervals}] (element widths)")
        d = self.degree
        element = np.minimum(np.floor(times).astype(int), self.intervals - 1)
        weights = lagrange_basis(np.concatenate([[0.0], self.scheme.points]), times - element)   # (d + 1, J)
        # node 0 of an element is the previous element's end
        blocks = np.asarray(nodes)[element[:, None] * d + np.arange(d + 1)]
        return np.einsum("ij,jin->jn", weights, blocks)
