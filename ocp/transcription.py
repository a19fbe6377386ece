"""Direct collocation of a discounted OCP, built once and solved many times with IPOPT.

Decision variables per element e (N elements of degree d in the coordinate s):
the node states X_e (n × (d+1), node 0 at the element start) and the velocities U_e
(n × d) at the collocation points; plus the end state X_N. Constraints per element:

    collocation   Σ_k D[k,i] X_e,k − h · t'(s_ei) · U_e,i = 0          (in units of state)
    continuity    X_{e+1,0} − Σ_k c[k] X_e,k = 0

and θ(0) = θ0, optionally θ(H) = θ_T. Cost Σ_e Σ_i b_i h t'(s_ei) e^{−γ t(s_ei)} ℓ(t, X, U).
Stationarity in U_e,i gives the multiplier of that row as ν = b_i e^{−γt} ∂ℓ/∂u; the
current-value costate λ = ∇V(θ(t)) = −∂ℓ/∂u is therefore λ = −ν / (b_i e^{−γt})
(Biegler 2010, Sec. 10.4, for the Gauss case). Rows in state units keep their round-off
at the level of the state, below IPOPT's tolerance.

One CasADi Function per element is built from the running cost and evaluated over all
elements with ``Function.map``: no per-point symbolic construction in Python.
θ0, θ_T, γ, η, k, t0, the map scale c, the end s_end of the mapped domain (elements are
uniform on [0, s_end]) and the problem constants are NLP parameters.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import casadi
import numpy as np

from .collocation import element_scheme
from .time_maps import ALGEBRAIC, LINEAR


@dataclass(frozen=True)
class Mesh:
    """Collocation mesh: ``intervals`` elements of ``degree`` on a ``scheme``.

    With an infinite horizon the last element always uses Legendre points, which avoid
    the singular end s = 1.
    """

    intervals: int = 40
    degree: int = 5
    scheme: str = "legendre"

    def __post_init__(self):
        element_scheme(self.scheme, self.degree)  # validates scheme and degree
        if int(self.intervals) != self.intervals or self.intervals < 1:
            raise ValueError(f"intervals must be a positive integer, got {self.intervals!r}")


IPOPT_DEFAULTS = {
    "tol": 1e-12,
    "acceptable_iter": 0,          # never stop at a merely "acceptable" point
    "max_iter": 500,
    "print_level": 0,
    "sb": "yes",
    "nlp_scaling_method": "none",  # keep the discount weights as they are
}


class Transcription:
    """The NLP of one problem structure, mesh and horizon kind. Build once, solve often."""

    def __init__(self, problem, mesh: Mesh, infinite: bool, terminal: bool, ipopt=None):
        t_start = time.perf_counter()
        self.problem, self.mesh = problem, mesh
        self.time_map = ALGEBRAIC if infinite else LINEAR
        self.terminal = terminal
        n, N, d = problem.state_dim, mesh.intervals, mesh.degree
        self.n = n
        self.schemes = [element_scheme(mesh.scheme, d)] * N
        if infinite and mesh.scheme != "legendre":
            self.schemes[-1] = element_scheme("legendre", d)
        self.bounds = np.linspace(0.0, 1.0, N + 1)
        self.block = n * (2 * d + 1)
        self.n_var = N * self.block + n

        layout = problem.layout
        P = casadi.MX.sym("P", layout.size)
        theta0 = casadi.MX.sym("theta0", n)
        thetaT = casadi.MX.sym("thetaT", n)
        scale = casadi.MX.sym("scale")
        s_end = casadi.MX.sym("s_end")
        V = casadi.MX.sym("V", self.n_var)
        blocks = casadi.reshape(V[: N * self.block], self.block, N)
        x_end = V[N * self.block:]
        starts = casadi.horzcat(blocks[: n, 1:], x_end)  # start node of the next element

        defects, costs = [], []
        for scheme, columns in self._groups():
            element = self._element_function(scheme)
            mapped = element.map(len(columns), "serial")
            s0 = s_end * casadi.DM(self.bounds[columns]).T
            h = s_end * casadi.DM(np.diff(self.bounds)[columns]).T
            g, c = mapped(blocks[:, columns], starts[:, columns], s0, h, scale, P)
            defects.append(g)
            costs.append(c)
        g_elements = casadi.horzcat(*defects)
        constraints = [casadi.vec(g_elements), blocks[:n, 0] - theta0]
        if terminal:
            constraints.append(x_end - thetaT)
        self._n_g = [g_elements.numel(), n, n if terminal else 0]
        objective = casadi.sum2(casadi.horzcat(*costs))
        p_all = casadi.vertcat(theta0, thetaT, scale, s_end, P)
        nlp = {"x": V, "p": p_all, "f": objective, "g": casadi.vertcat(*constraints)}
        options = {"ipopt": {**IPOPT_DEFAULTS, **(ipopt or {})}, "print_time": False}
        self.solver = casadi.nlpsol("collocation", "ipopt", nlp, options)
        self.build_time = time.perf_counter() - t_start
        self._post = self._postprocess_function()

    # -- construction ------------------------------------------------------------
    def _groups(self):
        """Consecutive element ranges that share a node scheme (one mapped call each)."""
        groups, current = [], [0]
        for e in range(1, len(self.schemes)):
            if self.schemes[e] is self.schemes[current[0]]:
                current.append(e)
            else:
                groups.append((self.schemes[current[0]], current))
                current = [e]
        groups.append((self.schemes[current[0]], current))
        return groups

    def _element_function(self, scheme):
        n, d, problem = self.n, scheme.degree, self.problem
        z = casadi.SX.sym("z", self.block)
        x_next = casadi.SX.sym("x_next", n)
        s0, h, scale = casadi.SX.sym("s0"), casadi.SX.sym("h"), casadi.SX.sym("scale")
        P = casadi.SX.sym("P", problem.layout.size)
        params = problem.layout.unpack(P)
        X = casadi.reshape(z[: n * (d + 1)], n, d + 1)
        U = casadi.reshape(z[n * (d + 1):], n, d)
        rows, cost = [], 0
        for i, tau in enumerate(scheme.points):
            s = s0 + h * tau
            rate = self.time_map.rate(s, scale)
            t = self.time_map.time(s, scale)
            slope = casadi.mtimes(X, casadi.DM(scheme.derivative[:, i]))
            rows.append(slope - h * rate * U[:, i])
            kinetic, potential = problem.running_cost(params["t0"] + t, X[:, i + 1], U[:, i], params)
            weight = scheme.quadrature[i] * h * rate * casadi.exp(-params["gamma"] * t)
            cost += weight * (kinetic + potential)
        end = casadi.mtimes(X, casadi.DM(scheme.continuity))
        rows.append(x_next - end)
        return casadi.Function("element", [z, x_next, s0, h, scale, P],
                               [casadi.vertcat(*rows), cost])

    def _postprocess_function(self):
        """Pointwise kinetic, potential and ∂ℓ/∂u, mapped over columns of points."""
        problem, n = self.problem, self.n
        t, x, u = casadi.SX.sym("t"), casadi.SX.sym("x", n), casadi.SX.sym("u", n)
        P = casadi.SX.sym("P", problem.layout.size)
        kinetic, potential = problem.running_cost(t, x, u, problem.layout.unpack(P))
        dl_du = casadi.gradient(kinetic + potential, u)
        hess_uu = casadi.hessian(kinetic + potential, u)[0]
        return casadi.Function("pointwise", [t, x, u, P], [kinetic, potential, dl_du, hess_uu])

    # -- solving -------------------------------------------------------------------
    def solve(self, theta0, params, scale, thetaT=None, guess=None, s_end=1.0):
        """Run IPOPT. ``guess`` is a previous raw solution (warm start) or a vector of V.

        ``s_end`` < 1 truncates the mapped domain to [0, s_end] (a free-end window).
        """
        p = np.concatenate([theta0, thetaT if thetaT is not None else np.zeros(self.n),
                            [scale, s_end], params])
        args = {"p": p, "lbg": 0.0, "ubg": 0.0}
        if isinstance(guess, dict):
            args.update(x0=guess["x"], lam_g0=guess["lam_g"])
        else:
            args["x0"] = guess if guess is not None else self.constant_guess(theta0)
        t_start = time.perf_counter()
        result = self.solver(**args)
        stats = self.solver.stats()
        success = bool(stats["success"]) or _converged_at_roundoff(stats)
        return {
            "x": np.asarray(result["x"]).ravel(),
            "lam_g": np.asarray(result["lam_g"]).ravel(),
            "f": float(result["f"]),
            "p": p,
            "success": success,
            "status": stats["return_status"],
            "iterations": int(stats["iter_count"]),
            "solve_time": time.perf_counter() - t_start,
        }

    def constant_guess(self, theta0):
        return self.guess_from(1.0, lambda s: np.broadcast_to(theta0, (len(s), self.n)),
                               lambda s: np.zeros((len(s), self.n)))

    def guess_from(self, s_end, state, velocity):
        """Initial guess from callables of s returning (len(s), n) states and velocities."""
        N, n = self.mesh.intervals, self.n
        V = np.zeros(self.n_var)
        for e, scheme in enumerate(self.schemes):
            s_nodes = s_end * (self.bounds[e] + (self.bounds[e + 1] - self.bounds[e]) * scheme.nodes)
            block = np.concatenate([np.asarray(state(s_nodes)).T.ravel(order="F"),
                                    np.asarray(velocity(s_nodes[1:])).T.ravel(order="F")])
            V[e * self.block:(e + 1) * self.block] = block
        V[N * self.block:] = np.asarray(state(np.array([min(s_end, 1.0 - 1e-12)])))[0]
        return V

    def unpack(self, V):
        """Node states (N, n, d+1), velocities (N, n, d) and end state (n,) of a vector V."""
        N, n, d = self.mesh.intervals, self.n, self.mesh.degree
        blocks = V[: N * self.block].reshape(N, self.block)
        X = blocks[:, : n * (d + 1)].reshape(N, d + 1, n).transpose(0, 2, 1)
        U = blocks[:, n * (d + 1):].reshape(N, d, n).transpose(0, 2, 1)
        return X, U, V[N * self.block:]

    def initial_costate(self, raw):
        """∇V(θ0) = ∂J*/∂θ0: minus the multiplier of the constraint θ(0) − θ0 = 0."""
        start = self._n_g[0]
        return -raw["lam_g"][start:start + self.n]

    def collocation_multipliers(self, raw):
        """Multipliers ν of the collocation rows: (N, n, d)."""
        N, n, d = self.mesh.intervals, self.n, self.mesh.degree
        lam = raw["lam_g"][: self._n_g[0]].reshape(N, n * (d + 1))
        return lam[:, : n * d].reshape(N, d, n).transpose(0, 2, 1)


def _converged_at_roundoff(stats) -> bool:
    """IPOPT stops with Search_Direction_Becomes_Too_Small when the step is below machine
    precision; that is convergence only if the final KKT residuals are at round-off level."""
    if stats["return_status"] != "Search_Direction_Becomes_Too_Small":
        return False
    history = stats.get("iterations", {})
    if not history.get("inf_pr") or not history.get("inf_du"):
        return False
    return history["inf_pr"][-1] <= ROUNDOFF_KKT and history["inf_du"][-1] <= ROUNDOFF_KKT


ROUNDOFF_KKT = 1e-9
