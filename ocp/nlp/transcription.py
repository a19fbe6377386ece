"""Direct collocation of a discounted OCP, built once and solved many times with IPOPT.

Decision variables per element e (N elements of degree d in the coordinate s):
the node states X_e (n × (d+1), node 0 at the element start) and the velocities U_e
(n × d) at the collocation points; plus the end state X_N. Constraints per element:

    collocation   Σ_k D[k,i] X_e,k − h · t'(s_ei) · U_e,i = 0          (in units of state)
    continuity    X_{e+1,0} − Σ_k c[k] X_e,k = 0

and θ(0) = θ0, optionally θ(H) = θ_T. Cost Σ_e Σ_i b_i h t'(s_ei) e^{−γ t(s_ei)} ℓ(t, X, U).
Stationarity in U_e,i gives the multiplier of that row as ν = b_i e^{−γt} ∂ℓ/∂u, so the
current-value costate λ = ∇V(θ(t)) at the collocation points is −∂ℓ/∂u (Biegler 2010,
Sec. 10.4, for the Gauss case); the multiplier μ0 of θ(0) − θ0 = 0 gives ∇V(θ0) = −μ0.
Rows in state units keep their round-off at the level of the state, below IPOPT's
tolerance. (Eliminating U through U = X·D/(h t') halves the KKT system but squares the
spread of the Hessian's entries, e^{−γt}/(h t') against e^{−γt} h t'; with the discount
window down to e^{−γt} = 1e-12 IPOPT's linear algebra then fails on the tail.)

These constraints are linear in the variables (the Jacobian depends on the parameters
only, ``ocp.constraint_matrix``), so the Hessian of the Lagrangian is σ∇²f: block diagonal
by element, and within an element by collocation point. One SX Function per element gives
its cost, gradient and exact Hessian (``ocp.element_cost``); ``Function.map`` evaluates
them over all elements, and
IPOPT receives these as ``grad_f``/``jac_g``/``hess_lag``, so CasADi neither
differentiates nor detects the sparsity of the large mapped graph: build time and
evaluation grow linearly with the number of elements and, for a separable loss, with
the dimension.

The NLP parameter vector has one named layout (:attr:`Transcription.layout`, read with
:meth:`Transcription.read`): theta0, thetaT, the map scale c, the end s_end of the mapped
domain (elements are uniform on [0, s_end]), the trust-region radius, and the problem's own
values (γ, η, k, t0, constants; ``DiscountedOCP.layout``). Optional pieces of the same NLP
(``ocp.path_constraints``): the trust region |X − θ0| ≤ ρ at every collocation point, whose
rows add Σ λ_j ∇²g_j to the Hessian, and a terminal cost e^{−γH}Φ(θ(H)).
"""
from __future__ import annotations

import time

import casadi
import numpy as np

from ..budget import NO_DEADLINE, IterationMonitor
from ..problem import ParameterLayout
from .collocation import element_scheme
from .constraint_matrix import casadi_sparse, constraint_structure
from .element_cost import element_functions, scheme_groups
from .guesses import constant_guess
from .mesh import COUPLED_ORDERING, IPOPT_DEFAULTS, Mesh
from .path_constraints import point_state_indices, terminal_cost_functions, trust_region_rows
from .time_maps import ALGEBRAIC, LINEAR


class Transcription:
    """The NLP of one problem structure, mesh and horizon kind. Build once, solve often.

    trust_region  : add |X − θ0|² ≤ ρ² at every collocation point (``radius`` of :meth:`solve`).
    terminal_cost : None or Φ(theta, **constants), the cost e^{−γH}Φ(θ(H)) (finite horizons).
    """

    def __init__(self, problem, mesh: Mesh, infinite: bool, terminal: bool, ipopt=None,
                 trust_region=False, terminal_cost=None):
        t_start = time.perf_counter()
        self.problem, self.mesh = problem, mesh
        self.time_map = ALGEBRAIC if infinite else LINEAR
        self.terminal, self.trust_region = terminal, bool(trust_region)
        n, N, d = problem.state_dim, mesh.intervals, mesh.degree
        self.n = n
        self.schemes = [element_scheme(mesh.scheme, d)] * N
        if infinite and mesh.scheme != "legendre":
            self.schemes[-1] = element_scheme("legendre", d)
        self.bounds = np.linspace(0.0, 1.0, N + 1)
        self.block = n * (2 * d + 1)
        self.n_var = N * self.block + n
        self._n_g = [N * n * (d + 1), n, n if terminal else 0]
        n_trust = N * d if trust_region else 0
        self.n_g = sum(self._n_g) + n_trust
        self.layout = ParameterLayout((("theta0", (n, 1)), ("thetaT", (n, 1)), ("scale", (1, 1)),
                                       ("s_end", (1, 1)), ("radius", (1, 1)),
                                       ("problem", (problem.layout.size, 1))))
        self.cache = {}   # derived Functions built on first use (sensitivities, pointwise maps)

        V = casadi.MX.sym("V", self.n_var)
        p_all = casadi.MX.sym("p", self.layout.size)
        named = self.layout.unpack(p_all)
        theta0, thetaT, scale, s_end, P = (named[key]
                                           for key in ("theta0", "thetaT", "scale", "s_end", "problem"))
        blocks = casadi.reshape(V[: N * self.block], self.block, N)

        # Three mapped Functions (cost; cost and gradient; Hessian): a mapped call evaluates
        # every output of its Function, so the objective alone must not pay for the Hessian.
        costs, costs_g, grads, hessians, sparsities = [], [], [], [], []
        for scheme, columns in scheme_groups(self.schemes):
            cost_fn, gradient_fn, hessian_fn = element_functions(problem, scheme, self.time_map)
            s0 = s_end * casadi.DM(self.bounds[columns]).T
            h = s_end * casadi.DM(np.diff(self.bounds)[columns]).T
            args = (blocks[:, columns[0]:columns[-1] + 1], s0, h, scale, P)
            costs.append(cost_fn.map(len(columns), "serial")(*args))
            c, g = gradient_fn.map(len(columns), "serial")(*args)
            costs_g.append(c)
            grads.append(casadi.vec(g))
            hessians.append(hessian_fn.map(len(columns), "serial")(*args).nz[:])
            sparsities += [hessian_fn.sparsity_out(0)] * len(columns)
        objective = casadi.sum2(casadi.horzcat(*costs))
        objective_g = casadi.sum2(casadi.horzcat(*costs_g))
        end_gradient, end_hessian = casadi.MX.zeros(n, 1), casadi.MX(n, n)
        if terminal_cost is not None:
            if infinite:
                raise ValueError("a terminal cost needs a finite horizon")
            end_cost, end_grad_fn, end_hess_fn = terminal_cost_functions(problem, terminal_cost,
                                                                         self.time_map)
            end_args = (V[N * self.block:], scale, s_end, P)
            objective = objective + end_cost(*end_args)
            end_value, end_gradient = end_grad_fn(*end_args)
            objective_g = objective_g + end_value
            end_hessian = end_hess_fn(*end_args)
        gradient = casadi.vertcat(*grads, end_gradient)   # dense: IPOPT reads n_var values
        element_hessians = casadi.MX(casadi.diagcat(*sparsities), casadi.vertcat(*hessians))
        hessian = casadi.diagcat(element_hessians, end_hessian)

        # Linear constraints g = A(p) V − b(p): constant entries plus −h·t'(s) in the U columns.
        self._A_constant, selector = constraint_structure(self.schemes, n, self.block, self.n_var,
                                                          self._n_g, terminal)
        sparsity = casadi.Sparsity(sum(self._n_g), self.n_var, self._A_constant.indptr.tolist(),
                                   self._A_constant.indices.tolist())
        nonzeros = casadi.DM(self._A_constant.data) - casadi.mtimes(casadi_sparse(selector),
                                                                    self._h_rate(scale, s_end))
        jacobian = casadi.MX(sparsity, nonzeros)
        rhs = casadi.vertcat(casadi.MX(self._n_g[0], 1), theta0, *([thetaT] if terminal else []))
        constraints = casadi.mtimes(jacobian, V) - rhs
        self.jacobian_function = casadi.Function("jacobian", [p_all], [jacobian])
        self.hessian_function = casadi.Function("hessian", [V, p_all], [hessian])
        self.gradient_function = casadi.Function("gradient", [V, p_all], [gradient])
        self.constraint_function = casadi.Function("constraints", [V, p_all], [constraints])

        lam_f, lam_g = casadi.MX.sym("lam_f"), casadi.MX.sym("lam_g", self.n_g)
        hessian_of_lagrangian = lam_f * hessian
        self.lbg, self.ubg = np.zeros(self.n_g), np.zeros(self.n_g)
        if trust_region:   # nonlinear rows: their Jacobian depends on V, their Hessian on λ
            rows = trust_region_rows(V, point_state_indices(n, d, N, self.block), theta0, named["radius"])
            constraints = casadi.vertcat(constraints, rows)
            jacobian = casadi.vertcat(jacobian, casadi.jacobian(rows, V))
            weighted = casadi.dot(lam_g[sum(self._n_g):], rows)
            hessian_of_lagrangian = hessian_of_lagrangian + casadi.triu(casadi.hessian(weighted, V)[0])
            self.lbg[sum(self._n_g):], self.ubg[sum(self._n_g):] = -np.inf, 1.0
        functions = {
            "grad_f": casadi.Function("nlp_grad_f", [V, p_all], [objective_g, gradient],
                                      ["x", "p"], ["f", "grad_f_x"]),
            "jac_g": casadi.Function("nlp_jac_g", [V, p_all], [constraints, jacobian],
                                     ["x", "p"], ["g", "jac_g_x"]),
            "hess_lag": casadi.Function("nlp_hess_l", [V, p_all, lam_f, lam_g], [hessian_of_lagrangian],
                                        ["x", "p", "lam_f", "lam_g"], ["triu_hess_gamma_x_x"]),
        }
        nlp = {"x": V, "p": p_all, "f": objective, "g": constraints}
        coupled = max(np.diff(sp.colind()).max(initial=0) for sp in sparsities[:1] + sparsities[-1:]) > 4
        ipopt_options = {**IPOPT_DEFAULTS, **(COUPLED_ORDERING if coupled else {}), **(ipopt or {})}
        self.monitor = IterationMonitor(self.n_var, self.n_g, self.layout.size)   # time budget
        options = {"ipopt": ipopt_options, "print_time": False, "calc_lam_p": False,
                   "iteration_callback": self.monitor, **functions}
        self.solver = casadi.nlpsol("collocation", "ipopt", nlp, options)
        self._post = self._postprocess_function()
        self.build_time = time.perf_counter() - t_start

    # -- construction ------------------------------------------------------------
    def _point_positions(self):
        """Collocation points of all elements on [0, 1] (before scaling by s_end) and the
        length of their elements, element-major: (N·d,), (N·d,)."""
        widths = np.diff(self.bounds)
        positions = np.concatenate([self.bounds[e] + widths[e] * scheme.points
                                    for e, scheme in enumerate(self.schemes)])
        return positions, np.repeat(widths, [scheme.degree for scheme in self.schemes])

    def _h_rate(self, scale, s_end):
        """h · t'(s) at every collocation point (symbolic or numeric)."""
        positions, widths = self._point_positions()
        if isinstance(scale, (casadi.MX, casadi.SX)):
            positions, widths = casadi.DM(positions), casadi.DM(widths)
        return s_end * widths * self.time_map.rate(s_end * positions, scale)

    def _postprocess_function(self):
        """Pointwise kinetic, potential, ∂ℓ/∂u, ∂²ℓ/∂u² and ∂²ℓ/∂u∂x at one point."""
        problem, n = self.problem, self.n
        t, x, u = casadi.SX.sym("t"), casadi.SX.sym("x", n), casadi.SX.sym("u", n)
        P = casadi.SX.sym("P", problem.layout.size)
        kinetic, potential = problem.running_cost(t, x, u, problem.layout.unpack(P))
        dl_du = casadi.gradient(kinetic + potential, u)
        return casadi.Function("pointwise", [t, x, u, P],
                               [kinetic, potential, dl_du, casadi.jacobian(dl_du, u),
                                casadi.jacobian(dl_du, x)])

    def pointwise(self, t, theta, velocity, params):
        """kinetic (m,), potential (m,) and ∂ℓ/∂u (m, n) at m points (rows of theta)."""
        m = len(t)
        if ("pointwise", m) not in self.cache:
            self.cache["pointwise", m] = self._post.map(m)
        kinetic, potential, dl_du, _, _ = self.cache["pointwise", m](
            np.reshape(t, (1, -1)), theta.T, velocity.T, params)
        return np.asarray(kinetic).ravel(), np.asarray(potential).ravel(), np.asarray(dl_du).T

    # -- solving -------------------------------------------------------------------
    def parameters(self, theta0, params, scale, thetaT=None, s_end=1.0, radius=1.0) -> np.ndarray:
        """The NLP parameter vector p, packed by name (:attr:`layout`); ``params`` are the
        problem's values (``problem.parameter_values``)."""
        return self.layout.pack({"theta0": theta0, "thetaT": np.zeros(self.n) if thetaT is None else thetaT,
                                 "scale": scale, "s_end": s_end, "radius": radius, "problem": params})

    def read(self, p, name):
        """One named entry of an NLP parameter vector: theta0, thetaT, scale, s_end, radius,
        problem (the problem's values), or a problem parameter such as "gamma" or "t0"."""
        if name in dict(self.layout.shapes):
            return self.layout.read(p, name)
        return self.problem.layout.read(self.layout.read(p, "problem"), name)

    def solve(self, theta0, params, scale, thetaT=None, guess=None, s_end=1.0, radius=1.0,
              deadline=NO_DEADLINE):
        """Run IPOPT. ``guess`` is a previous raw solution (warm start, with multipliers),
        a dict with "x" and optionally "lam_g", or a vector of V.

        ``s_end`` < 1 truncates the mapped domain to [0, s_end] (a free-end window);
        ``radius``: ρ of the trust region (transcriptions built with ``trust_region``);
        ``deadline``: an :class:`ocp.budget.Deadline` that stops IPOPT (``raw["time_limit"]``).
        KeyboardInterrupt if Ctrl-C arrived during the solve.
        """
        p = self.parameters(theta0, params, scale, thetaT, s_end, radius)
        args = {"p": p, "lbg": self.lbg, "ubg": self.ubg}
        if isinstance(guess, dict):
            args["x0"] = guess["x"]
            if guess.get("lam_g") is not None:
                args["lam_g0"] = guess["lam_g"]
        else:
            args["x0"] = guess if guess is not None else constant_guess(self, theta0)
        t_start = time.perf_counter()
        result, stopped = self.monitor.solve(self.solver, deadline, **args)
        stats = self.solver.stats()
        success = (bool(stats["success"]) or _converged_at_roundoff(stats)) and not stopped
        return {
            "x": np.asarray(result["x"]).ravel(),
            "lam_g": np.asarray(result["lam_g"]).ravel(),
            "f": float(result["f"]),
            "p": p,
            "success": success,
            "status": stats["return_status"],
            "iterations": int(stats["iter_count"]),
            "solve_time": time.perf_counter() - t_start,
            "time_limit": stopped,
        }

    def element_geometry(self, s_end):
        """Start s0 (N,) and length h (N,) of each element on [0, s_end]."""
        return s_end * self.bounds[:-1], s_end * np.diff(self.bounds)

    def unpack(self, V, p=None):
        """Node states (N, n, d+1), velocities (N, n, d) and end state (n,) of a vector V."""
        N, n, d = self.mesh.intervals, self.n, self.mesh.degree
        blocks = V[: N * self.block].reshape(N, self.block)
        X = blocks[:, : n * (d + 1)].reshape(N, d + 1, n).transpose(0, 2, 1)
        U = blocks[:, n * (d + 1):].reshape(N, d, n).transpose(0, 2, 1)
        return X, U, V[N * self.block:]

    def pack(self, X, U, end) -> np.ndarray:
        """The vector V of node states X (N, n, d+1), velocities U (N, n, d), end state (n,)."""
        N = self.mesh.intervals
        blocks = np.concatenate([np.asarray(X).transpose(0, 2, 1).reshape(N, -1),
                                 np.asarray(U).transpose(0, 2, 1).reshape(N, -1)], axis=1)
        return np.concatenate([blocks.ravel(), np.asarray(end, float).ravel()])

    @property
    def initial_constraint_rows(self) -> np.ndarray:
        """Indices in g of the rows θ(0) − θ0 = 0."""
        return self._n_g[0] + np.arange(self.n)

    def initial_costate(self, raw):
        """∇V(θ0) = ∂J*/∂θ0: minus the multiplier of the constraint θ(0) − θ0 = 0."""
        return -raw["lam_g"][self.initial_constraint_rows]

    def parameter_index(self, name) -> int:
        """Position of the problem parameter ``name`` (scalar, e.g. "t0") in the NLP's p."""
        return self.layout.slice("problem").start + self.problem.layout.slice(name).start


def transcription_for(problem, mesh, infinite, terminal, ipopt=None) -> Transcription:
    """The cached transcription of this problem structure (built on first use)."""
    key = (mesh, infinite, terminal, tuple(sorted((ipopt or {}).items())))
    cache = problem._structure.cache
    if key not in cache:
        cache[key] = Transcription(problem, mesh, infinite, terminal, ipopt)
    return cache[key]


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
