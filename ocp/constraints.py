"""A finite-horizon plan of a DiscountedOCP with a trust region on the planned displacement.

    minimise  ∫_0^T e^{−γt} [ (1/2η)(θ̇ − f)ᵀG(θ̇ − f) + k·L(θ) ] dt  +  e^{−γT} Φ(θ(T))
    subject to |θ(t) − θ0| ≤ ρ at every collocation node,   θ(0) = θ0

(Vastola, Gershman & Rajan 2025, Eq. 2, with a path constraint). The engine's
:class:`ocp.transcription.Transcription` has linear equality constraints only (its Hessian
of the Lagrangian is σ∇²f); an inequality on the state is a different NLP, so it is built
here, for short plans: Radau collocation (the last point of each element is its end, so
continuity is by sharing the node and there are no equality rows), the velocities
eliminated as ẋ = Σ_k D[k,i] X_k / h, and one constraint |X − θ0|²/ρ² ≤ 1 per node.

The terminal cost Φ(θ, **constants) — e.g. the infinite-horizon value of the unconstrained
problem, which makes the plan the infinite-horizon optimum whenever the trust region is
inactive (discounting is time-consistent) — is written like the loss, on CasADi symbols.
θ0, the element width h, ρ, γ, η, k and the problem constants are NLP parameters: the NLP is
built once and re-solved with new values (warm start from any guess of the node states).
A solve that IPOPT does not report as converged is returned with ``success = False``;
callers must not use it as optimal (``TrustRegionPlanner.solve`` never raises for it).
"""
from __future__ import annotations

import time

import casadi
import numpy as np

from .collocation import element_scheme, lagrange_basis
from .errors import ProblemError

PLANNER_IPOPT = {"tol": 1e-11, "acceptable_iter": 0, "max_iter": 100, "print_level": 0, "sb": "yes",
                 "mu_strategy": "adaptive", "bound_push": 1e-8, "bound_frac": 1e-8}


class TrustRegionPlanner:
    """Plan of ``problem`` over ``intervals`` equal elements (Radau, ``degree``) in a trust region.

    terminal_cost : None or ``Φ(theta, **constants)`` → scalar (CasADi symbols, like the loss).
    ipopt         : options merged over :data:`PLANNER_IPOPT` (e.g. ``max_iter``, ``max_cpu_time``).
    """

    def __init__(self, problem, intervals=4, degree=4, terminal_cost=None, ipopt=None):
        if not isinstance(intervals, (int, np.integer)) or isinstance(intervals, bool) or intervals < 1:
            raise ProblemError(f"intervals must be a positive integer, got {intervals!r}")
        try:
            self.scheme = element_scheme("radau", degree)
        except ValueError as exc:
            raise ProblemError(str(exc)) from None
        if terminal_cost is not None and not callable(terminal_cost):
            raise ProblemError("terminal_cost must be None or callable: terminal_cost(theta, **constants)")
        self.problem, self.intervals, self.degree = problem, int(intervals), int(degree)
        n, N, d = problem.state_dim, self.intervals, self.degree
        self.n = n
        t_start = time.perf_counter()
        X = casadi.SX.sym("X", n, N * d)                 # node states after θ0, element-major
        p = casadi.SX.sym("p", n + 2 + problem.layout.size)
        theta0, width, radius = p[:n], p[n], p[n + 1]
        params = problem.layout.unpack(p[n + 2:])
        gamma = params["gamma"]
        sc = self.scheme
        cost, rows = 0, []
        for e in range(N):
            nodes = [theta0 if e == 0 else X[:, e * d - 1]] + [X[:, e * d + i] for i in range(d)]
            for i in range(d):
                velocity = sum(sc.derivative[k, i] * nodes[k] for k in range(d + 1)) / width
                t = (e + sc.points[i]) * width
                kinetic, potential = problem.running_cost(params["t0"] + t, nodes[i + 1], velocity, params)
                cost += sc.quadrature[i] * width * casadi.exp(-gamma * t) * (kinetic + potential)
                offset = nodes[i + 1] - theta0
                rows.append(casadi.dot(offset, offset) / radius ** 2)
        if terminal_cost is not None:
            symbols = {key: params[key] for key in problem.constants}
            end_cost = casadi.SX(terminal_cost(X[:, -1], **symbols))
            if end_cost.shape != (1, 1):
                raise ProblemError(f"terminal_cost must be a scalar, got shape {end_cost.shape}")
            cost += casadi.exp(-gamma * N * width) * end_cost
        nlp = {"x": casadi.vec(X), "p": p, "f": cost, "g": casadi.vertcat(*rows)}
        options = {"ipopt": {**PLANNER_IPOPT, **(ipopt or {})}, "print_time": False}
        self.solver = casadi.nlpsol("trust_region_plan", "ipopt", nlp, options)
        self.build_time = time.perf_counter() - t_start

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
        for name, value in (("width", width), ("radius", radius)):
            if not (np.isfinite(value) and value > 0):
                raise ProblemError(f"{name} must be finite and > 0, got {value}")
        p = np.concatenate([theta0, [width, radius], np.asarray(params, float)])
        if guess is None:
            guess = np.broadcast_to(theta0, (self.intervals * self.degree, self.n))
        x0 = np.asarray(guess, float).reshape(-1, self.n).T.ravel(order="F")
        start = time.perf_counter()
        result = self.solver(x0=x0, p=p, lbg=-np.inf, ubg=1.0)
        stats = self.solver.stats()
        nodes = np.vstack([theta0, np.asarray(result["x"]).reshape(self.n, -1, order="F").T])
        offsets = np.linalg.norm(nodes - theta0, axis=1) / radius
        finite = bool(np.all(np.isfinite(nodes)))
        return {"success": bool(stats["success"]) and finite and offsets.max() <= 1 + 1e-6,
                "status": stats["return_status"], "iterations": int(stats["iter_count"]),
                "solve_time": time.perf_counter() - start, "f": float(result["f"]),
                "nodes": nodes, "max_offset": float(offsets.max())}

    def evaluate(self, nodes, times):
        """θ at ``times`` (units of the element width, in [0, N]) from the node states of a solve."""
        times = np.atleast_1d(np.asarray(times, float))
        if np.any(times < -1e-12) or np.any(times > self.intervals + 1e-12):
            raise ProblemError(f"times must lie in [0, {self.intervals}] (element widths)")
        d, out = self.degree, np.empty((len(times), self.n))
        element_nodes = np.concatenate([[0.0], self.scheme.points])
        for j, t in enumerate(times):
            e = min(int(np.floor(t)), self.intervals - 1)
            block = nodes[e * d: e * d + d + 1]          # node 0 = previous element's end
            out[j] = lagrange_basis(element_nodes, [t - e])[:, 0] @ block
        return out
