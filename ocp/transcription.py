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

All constraints are linear in the variables (the Jacobian depends on the parameters
only), so the Hessian of the Lagrangian is σ∇²f: block diagonal by element, and within
an element by collocation point. One SX Function per element gives its cost, gradient
and exact Hessian (upper triangle); ``Function.map`` evaluates it over all elements, and
IPOPT receives these as ``grad_f``/``jac_g``/``hess_lag``, so CasADi neither
differentiates nor detects the sparsity of the large mapped graph: build time and
evaluation grow linearly with the number of elements and, for a separable loss, with
the dimension.

θ0, θ_T, γ, η, k, t0, the map scale c, the end s_end of the mapped domain (elements are
uniform on [0, s_end]) and the problem constants are NLP parameters.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import casadi
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

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
    # Iterative refinement only when the residual test asks for it (residual_ratio_max
    # still guards the accuracy): saves a back-solve per step on large systems.
    "min_refinement_steps": 0,
}
COUPLED_ORDERING = {"mumps_pivot_order": 0}
"""MUMPS ordering AMD when the Hessian has dense coupled blocks (a loss or metric coupling
the coordinates): MUMPS's automatic choice was ~20× slower there at D = 100
(benchmarks/bench_scaling.py), and no faster on separable problems."""


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
        self._n_g = [N * n * (d + 1), n, n if terminal else 0]
        self.n_g = sum(self._n_g)

        layout = problem.layout
        V = casadi.MX.sym("V", self.n_var)
        p_all = casadi.MX.sym("p", 2 * n + 2 + layout.size)
        theta0, thetaT = p_all[:n], p_all[n:2 * n]
        scale, s_end, P = p_all[2 * n], p_all[2 * n + 1], p_all[2 * n + 2:]
        blocks = casadi.reshape(V[: N * self.block], self.block, N)

        # Three mapped Functions (cost; cost and gradient; Hessian): a mapped call evaluates
        # every output of its Function, so the objective alone must not pay for the Hessian.
        costs, costs_g, grads, hessians, sparsities = [], [], [], [], []
        for scheme, columns in self._groups():
            cost_fn, gradient_fn, hessian_fn = self._element_functions(scheme)
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
        gradient = casadi.vertcat(*grads, casadi.MX.zeros(n, 1))   # dense: IPOPT reads n_var values
        hessian = casadi.MX(casadi.diagcat(*sparsities, casadi.Sparsity(n, n)), casadi.vertcat(*hessians))

        # Linear constraints g = A(p) V − b(p): constant entries plus −h·t'(s) in the U columns.
        self._A_constant, selector = self._constraint_structure()
        sparsity = casadi.Sparsity(self.n_g, self.n_var, self._A_constant.indptr.tolist(),
                                   self._A_constant.indices.tolist())
        nonzeros = casadi.DM(self._A_constant.data) - casadi.mtimes(_casadi_sparse(selector),
                                                                    self._h_rate(scale, s_end))
        jacobian = casadi.MX(sparsity, nonzeros)
        rhs = casadi.vertcat(casadi.MX(self._n_g[0], 1), theta0, *([thetaT] if terminal else []))
        constraints = casadi.mtimes(jacobian, V) - rhs
        self._jacobian = casadi.Function("jacobian", [p_all], [jacobian])
        self._hessian = casadi.Function("hessian", [V, p_all], [hessian])
        self._gradient = casadi.Function("gradient", [V, p_all], [gradient])
        self._constraints = casadi.Function("constraints", [V, p_all], [constraints])
        self._sensitivity_rhs = None   # built on first use: forward derivatives along dp

        lam_f, lam_g = casadi.MX.sym("lam_f"), casadi.MX.sym("lam_g", self.n_g)
        functions = {
            "grad_f": casadi.Function("nlp_grad_f", [V, p_all], [objective_g, gradient],
                                      ["x", "p"], ["f", "grad_f_x"]),
            "jac_g": casadi.Function("nlp_jac_g", [V, p_all], [constraints, jacobian],
                                     ["x", "p"], ["g", "jac_g_x"]),
            "hess_lag": casadi.Function("nlp_hess_l", [V, p_all, lam_f, lam_g], [lam_f * hessian],
                                        ["x", "p", "lam_f", "lam_g"], ["triu_hess_gamma_x_x"]),
        }
        nlp = {"x": V, "p": p_all, "f": objective, "g": constraints}
        coupled = max(np.diff(sp.colind()).max(initial=0) for sp in sparsities[:1] + sparsities[-1:]) > 4
        ipopt_options = {**IPOPT_DEFAULTS, **(COUPLED_ORDERING if coupled else {}), **(ipopt or {})}
        options = {"ipopt": ipopt_options, "print_time": False, "calc_lam_p": False, **functions}
        self.solver = casadi.nlpsol("collocation", "ipopt", nlp, options)
        self._post = self._postprocess_function()
        self._post_maps = {}
        self.build_time = time.perf_counter() - t_start

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

    def _element_functions(self, scheme):
        """Cost of one element; cost and gradient; the upper triangle of its exact Hessian."""
        n, d, problem = self.n, scheme.degree, self.problem
        z = casadi.SX.sym("z", self.block)
        s0, h, scale = casadi.SX.sym("s0"), casadi.SX.sym("h"), casadi.SX.sym("scale")
        P = casadi.SX.sym("P", problem.layout.size)
        params = problem.layout.unpack(P)
        X = casadi.reshape(z[: n * (d + 1)], n, d + 1)
        U = casadi.reshape(z[n * (d + 1):], n, d)
        cost = 0
        for i, tau in enumerate(scheme.points):
            s = s0 + h * tau
            rate = self.time_map.rate(s, scale)
            t = self.time_map.time(s, scale)
            kinetic, potential = problem.running_cost(params["t0"] + t, X[:, i + 1], U[:, i], params)
            weight = scheme.quadrature[i] * h * rate * casadi.exp(-params["gamma"] * t)
            cost += weight * (kinetic + potential)
        hessian, gradient = casadi.hessian(cost, z)
        inputs = [z, s0, h, scale, P]
        return (casadi.Function("element_cost", inputs, [cost]),
                casadi.Function("element_gradient", inputs, [cost, gradient]),
                casadi.Function("element_hessian", inputs, [casadi.triu(hessian)]))

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

    def _constraint_structure(self):
        """The constraint Jacobian's constant entries (CSC; the U columns hold 0) and the
        selector S with A(p).data = constant.data − S · (h t'(s) per point)."""
        n, N, d = self.n, self.mesh.intervals, self.mesh.degree
        rows, cols, vals, point = [], [], [], []
        eye = np.arange(n)

        def add(r, c, v, pt=-1):
            rows.append(r)
            cols.append(c)
            vals.append(np.broadcast_to(np.asarray(v, float), r.shape))
            point.append(np.full(r.shape, pt))

        for e, scheme in enumerate(self.schemes):
            row0, start = e * n * (d + 1), e * self.block
            for i in range(d):                     # collocation: Σ_k D[k,i] X_k − h t' U_i
                for k in range(d + 1):
                    add(row0 + i * n + eye, start + k * n + eye, scheme.derivative[k, i])
                add(row0 + i * n + eye, start + n * (d + 1) + i * n + eye, 0.0, e * d + i)
            for k in range(d + 1):                 # continuity: X_{e+1,0} − Σ_k c_k X_e,k
                add(row0 + d * n + eye, start + k * n + eye, -scheme.continuity[k])
            add(row0 + d * n + eye, (e + 1) * self.block + eye, 1.0)
        add(self._n_g[0] + eye, eye, 1.0)          # θ(0)
        if self.terminal:                          # θ(H)
            add(self._n_g[0] + n + eye, N * self.block + eye, 1.0)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        vals, point = np.concatenate(vals), np.concatenate(point)
        order = np.lexsort((rows, cols))           # CSC order: by column, then row
        rows, cols, vals, point = rows[order], cols[order], vals[order], point[order]
        A = scipy.sparse.csc_matrix((vals, rows, np.searchsorted(cols, np.arange(self.n_var + 1))),
                                    shape=(self.n_g, self.n_var))
        on_u = np.nonzero(point >= 0)[0]
        selector = scipy.sparse.csc_matrix((np.ones(len(on_u)), (on_u, point[on_u])),
                                           shape=(len(vals), N * d))
        return A, selector

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
        if m not in self._post_maps:
            self._post_maps[m] = self._post.map(m)
        kinetic, potential, dl_du, _, _ = self._post_maps[m](
            np.reshape(t, (1, -1)), theta.T, velocity.T, params)
        return np.asarray(kinetic).ravel(), np.asarray(potential).ravel(), np.asarray(dl_du).T

    # -- solving -------------------------------------------------------------------
    def parameters(self, theta0, params, scale, thetaT=None, s_end=1.0):
        return np.concatenate([theta0, thetaT if thetaT is not None else np.zeros(self.n),
                               [scale, s_end], params])

    def solve(self, theta0, params, scale, thetaT=None, guess=None, s_end=1.0):
        """Run IPOPT. ``guess`` is a previous raw solution (warm start, with multipliers),
        a dict with "x" and optionally "lam_g", or a vector of V.

        ``s_end`` < 1 truncates the mapped domain to [0, s_end] (a free-end window).
        """
        p = self.parameters(theta0, params, scale, thetaT, s_end)
        args = {"p": p, "lbg": 0.0, "ubg": 0.0}
        if isinstance(guess, dict):
            args["x0"] = guess["x"]
            if guess.get("lam_g") is not None:
                args["lam_g0"] = guess["lam_g"]
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
        N, n, d = self.mesh.intervals, self.n, self.mesh.degree
        s_nodes = np.concatenate([s_end * (self.bounds[e] + (self.bounds[e + 1] - self.bounds[e]) * scheme.nodes)
                                  for e, scheme in enumerate(self.schemes)])
        states = np.asarray(state(s_nodes), float).reshape(N, d + 1, n)
        s_points = s_nodes.reshape(N, d + 1)[:, 1:].ravel()
        velocities = np.asarray(velocity(s_points), float).reshape(N, d, n)
        V = np.empty(self.n_var)
        V[: N * self.block] = np.concatenate([states.reshape(N, -1), velocities.reshape(N, -1)], axis=1).ravel()
        V[N * self.block:] = np.asarray(state(np.array([min(s_end, 1.0 - 1e-12)])))[0]
        return V

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

    @property
    def initial_constraint_rows(self) -> np.ndarray:
        """Indices in g of the rows θ(0) − θ0 = 0."""
        return self._n_g[0] + np.arange(self.n)

    def initial_costate(self, raw):
        """∇V(θ0) = ∂J*/∂θ0: minus the multiplier of the constraint θ(0) − θ0 = 0."""
        return -raw["lam_g"][self.initial_constraint_rows]

    def multipliers_from_costate(self, p, lam_points, lam_ends):
        """lam_g for a warm start from current-value costates: λ at the collocation points
        (N, d, n) and at the element ends (N, n); and λ(0) from lam_ends' convention below.

        collocation rows ν = −b_i e^{−γ t_i} λ(t_i); continuity rows (element e's end)
        μ_e = −e^{−γ t} λ(t) at that end; θ(0) row −λ(0); terminal row 0 (unknown).
        """
        n, N, d = self.n, self.mesh.intervals, self.mesh.degree
        scale, s_end, gamma = p[2 * n], p[2 * n + 1], p[2 * n + 2]
        positions, _ = self._point_positions()
        t_points = self.time_map.time(s_end * positions, scale).reshape(N, d)
        t_ends = self.time_map.time(s_end * self.bounds[1:], scale)
        weights = np.array([scheme.quadrature for scheme in self.schemes])
        with np.errstate(invalid="ignore", over="ignore"):
            nu = -(weights * np.exp(-gamma * t_points))[:, :, None] * lam_points
            mu = -np.exp(-gamma * t_ends)[:, None] * lam_ends[1:]
        lam = np.zeros(self.n_g)
        lam[: self._n_g[0]] = np.nan_to_num(np.concatenate([nu.reshape(N, -1), mu], axis=1).ravel())
        lam[self._n_g[0]: self._n_g[0] + n] = -lam_ends[0]
        return lam

    def parameter_index(self, name) -> int:
        """Position of the problem parameter ``name`` (scalar, e.g. "t0") in the NLP's p."""
        offset = 2 * self.n + 2
        for key, (rows, cols) in self.problem.layout.shapes:
            if key == name:
                return offset
            offset += rows * cols
        raise KeyError(name)

    def parameter_sensitivity(self, raw, dp, lu=None):
        """d(V, lam_g)/dp · dp at a solution, from the differentiated KKT conditions
        K [dV; dλ] = −[∂_p(∇f + Aᵀλ)·dp; ∂_p g·dp]. ``lu``: a factorisation of
        :meth:`kkt_matrix` with a ``solve`` method (scipy's splu), reused across calls."""
        if self._sensitivity_rhs is None:
            V = casadi.MX.sym("V", self.n_var)
            p = casadi.MX.sym("p", len(raw["p"]))
            lam = casadi.MX.sym("lam", self.n_g)
            dp_sym = casadi.MX.sym("dp", len(raw["p"]))
            jac = self._jacobian(p)
            stationarity = self._gradient(V, p) + casadi.mtimes(jac.T, lam)
            constraints = self._constraints(V, p)
            self._sensitivity_rhs = casadi.Function(
                "sensitivity_rhs", [V, p, lam, dp_sym],
                [casadi.vertcat(casadi.jtimes(stationarity, p, dp_sym), casadi.jtimes(constraints, p, dp_sym))])
        rhs = -np.asarray(self._sensitivity_rhs(raw["x"], raw["p"], raw["lam_g"], dp)).ravel()
        lu = lu or scipy.sparse.linalg.splu(self.kkt_matrix(raw))
        return lu.solve(rhs)

    def kkt_matrix(self, raw):
        """The KKT matrix [[∇²L, Aᵀ], [A, 0]] at a solution (scipy CSC)."""
        H = _scipy_sparse(self._hessian(raw["x"], raw["p"]))
        H = H + scipy.sparse.triu(H, 1).T
        A = _scipy_sparse(self._jacobian(raw["p"]))
        return scipy.sparse.bmat([[H, A.T], [A, None]], format="csc")


def _casadi_sparse(matrix):
    matrix = scipy.sparse.csc_matrix(matrix)
    matrix.sort_indices()
    sparsity = casadi.Sparsity(matrix.shape[0], matrix.shape[1], matrix.indptr.tolist(), matrix.indices.tolist())
    return casadi.DM(sparsity, matrix.data)


def _scipy_sparse(matrix):
    sparsity = matrix.sparsity()
    return scipy.sparse.csc_matrix((np.asarray(matrix.nonzeros()), sparsity.row(), sparsity.colind()),
                                   shape=matrix.shape)


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
