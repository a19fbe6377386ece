"""A torch loss in the engine: IPOPT through a CasADi Callback against matrix-free Newton–CG (issue 25).

The question docs/engine.md §8 answers with these figures: should a loss evaluated outside CasADi
(a torch network's full-batch loss) enter the NLP through a ``casadi.Callback`` that IPOPT calls,
or should the engine solve the discretised J itself by Newton–Krylov on Hessian-vector products?

Both routes get the same problem: ``digits_mlp`` (problems.network, a tanh MLP on scikit-learn's
digits) at small widths, the finite horizon H = 10, γ = η = k = 1, discretised once (the matrix-free
solver's Galerkin J on the same element mesh, ocp.matrix_free.objective). The Callback route is the
charitable one: IPOPT minimises that same unconstrained J (a full collocation NLP would add the
defect constraints) with J and its exact gradient from a Callback, and its Hessian by the
limited-memory (L-BFGS) approximation; an exact Hessian through a Callback would need the dense
D × D block of ∇²L at every quadrature node (the ``exact Hessian`` column: its nonzeros' memory).
The matrix-free route is ``ocp.matrix_free``'s trust-region Newton–CG on the same J, from the same
start (θ0 held), to its default tolerances.

Columns: D, route, wall seconds, iterations, gradient and HVP evaluations (a batch of N points
counts N), J's gap to the best J found, the path's largest distance from the Newton path at
the nodes (relative to its range), the Euler–Lagrange residual of the result (the check every
solve passes, on this mesh its discretisation error), and the exact-Hessian memory a Callback
route would need. IPOPT is given ``--time-factor`` (10) times the matrix-free solve's wall time;
the line below each pair says what it reached in it.

    python benchmarks/bench_external_loss.py                  # hidden 2, 4, 13 (D = 160, 310, 985)
    python benchmarks/bench_external_loss.py --hidden 2 --max-iter 3000
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import casadi  # noqa: E402
import numpy as np  # noqa: E402

HORIZON, INTERVALS, DEGREE = 10.0, 16, 4


class _FlatCallback(casadi.Callback):
    """A CasADi function of the flat unknowns Y (one dense input) evaluated by a DiscreteObjective."""

    def __init__(self, objective, shape, name):
        casadi.Callback.__init__(self)
        self.objective, self.shape = objective, shape
        self.size = int(np.prod(shape))
        self.construct(name, {"enable_fd": False})

    def get_n_in(self):
        return 1

    def get_n_out(self):
        return 1

    def get_sparsity_in(self, i):
        return casadi.Sparsity.dense(self.size, 1)


class GradientCallback(_FlatCallback):
    def get_sparsity_out(self, i):
        return casadi.Sparsity.dense(self.size, 1)

    def eval(self, arg):
        gradient, _ = self.objective.gradient(np.asarray(arg[0]).reshape(self.shape))
        return [gradient.reshape(-1)]


class ObjectiveCallback(_FlatCallback):
    """J(Y) of a DiscreteObjective; its Jacobian (∇Jᵀ) is the GradientCallback: what a torch loss
    inside IPOPT looks like."""

    def __init__(self, objective, shape):
        self.gradient_callback = GradientCallback(objective, shape, "gradJ")
        super().__init__(objective, shape, "J")

    def eval(self, arg):
        return [self.objective.value(np.asarray(arg[0]).reshape(self.shape))]

    def has_jacobian(self):
        return True

    def get_jacobian(self, name, inames, onames, opts):
        x = casadi.MX.sym("x", self.size)
        out = casadi.MX.sym("out", 1)
        return casadi.Function(name, [x, out], [self.gradient_callback(x).T], inames, onames, opts)


def _objective(problem, theta0):
    from ocp.matrix_free.mesh import ElementMesh, chebyshev_boundaries
    from ocp.matrix_free.objective import DiscreteObjective, MetricLoss
    metric_loss = MetricLoss(problem.loss, problem.metric)
    mesh = ElementMesh(chebyshev_boundaries(HORIZON, INTERVALS), DEGREE, problem.gamma)
    phi0 = metric_loss.phi(np.asarray(theta0, float)[None])[0]
    return metric_loss, mesh, DiscreteObjective(metric_loss, mesh, problem.eta, problem.k, phi0)


def _el(problem, metric_loss, mesh, objective, Y):
    from ocp.matrix_free.checks import euler_lagrange_error
    return euler_lagrange_error(metric_loss, mesh, objective.nodes(Y), problem.eta, problem.k)


def _counts(problem, before):
    return {key: problem.loss.counts[key] - before[key] for key in before}


def matrix_free(problem, theta0):
    """Trust-region Newton–CG on J from θ0 held (ocp.matrix_free.newton)."""
    from ocp.budget import Deadline
    from ocp.matrix_free.newton import NewtonSettings, NewtonSolver
    metric_loss, mesh, objective = _objective(problem, theta0)
    before, start = dict(problem.loss.counts), time.perf_counter()
    Y0 = objective.unknowns(np.tile(objective.fixed[0], (mesh.size, 1)))
    phi0 = objective.fixed[0]
    floor = max(np.abs(phi0).max() * 1e-6, 1e-12)
    solver = NewtonSolver(objective, NewtonSettings(), Deadline(None))
    Y = solver.minimise(Y0, lambda Y: max(np.abs(objective.nodes(Y) - phi0).max(), floor))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "iterations": solver.stats["newton_iterations"],
            "counts": _counts(problem, before), "J": objective.value(Y),
            "el": _el(problem, metric_loss, mesh, objective, Y), "nodes": objective.nodes(Y)}


def callback_ipopt(problem, theta0, max_iter, seconds):
    """IPOPT (limited-memory Hessian) on the same J through a CasADi Callback, stopped after
    ``max_iter`` iterations or ``seconds`` of wall time (IPOPT's max_wall_time)."""
    metric_loss, mesh, objective = _objective(problem, theta0)
    shape = (len(objective.free), problem.dim)
    function = ObjectiveCallback(objective, shape)
    x = casadi.MX.sym("x", shape[0] * shape[1])
    solver = casadi.nlpsol("callback", "ipopt", {"x": x, "f": function(x)},
                           {"ipopt": {"hessian_approximation": "limited-memory", "max_iter": max_iter,
                                      "max_wall_time": seconds, "tol": 1e-10, "print_level": 0},
                            "print_time": False})
    Y0 = objective.unknowns(np.tile(objective.fixed[0], (mesh.size, 1)))
    before, start = dict(problem.loss.counts), time.perf_counter()
    result = solver(x0=Y0.reshape(-1))
    seconds = time.perf_counter() - start
    Y = np.asarray(result["x"]).reshape(shape)
    return {"seconds": seconds, "iterations": int(solver.stats()["iter_count"]),
            "status": solver.stats()["return_status"], "counts": _counts(problem, before),
            "J": float(result["f"]), "el": _el(problem, metric_loss, mesh, objective, Y),
            "nodes": objective.nodes(Y)}


def exact_hessian_megabytes(dim, mesh_quadrature_points):
    """The nonzeros of ∇²J's loss part a Callback's exact Hessian holds: a dense D × D block per
    quadrature node (float64 values and int64 row indices)."""
    return mesh_quadrature_points * dim * dim * 16 / 2 ** 20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[2, 4, 13])
    parser.add_argument("--max-iter", type=int, default=3000, help="IPOPT's iteration limit")
    parser.add_argument("--time-factor", type=float, default=10.0,
                        help="IPOPT's wall-time limit as a multiple of the matrix-free solve's")
    args = parser.parse_args(argv)
    import torch

    from problems import get
    torch.set_num_threads(2)
    print(f"{'D':>6} {'route':<23} {'wall s':>8} {'iters':>6} {'grads':>8} {'HVPs':>8} {'J gap':>9} "
          f"{'path gap':>9} {'EL resid':>9} {'exact-Hessian MB':>17}  note", flush=True)
    for hidden in args.hidden:
        scenario = get("digits_mlp", hidden=hidden)
        problem, theta0 = scenario.problem, scenario.theta0
        with problem.loss.thread_limits():        # as ocp.solve runs a torch loss (TorchLoss docstring)
            newton = matrix_free(problem, theta0)
            ipopt = callback_ipopt(problem, theta0, args.max_iter, args.time_factor * newton["seconds"])
        best = min(newton["J"], ipopt["J"])
        _, mesh, _ = _objective(problem, theta0)
        hessian_mb = exact_hessian_megabytes(problem.dim, len(mesh.quadrature[0]))
        path_range = max(np.abs(newton["nodes"] - newton["nodes"][0]).max(), 1e-300)
        for route, row, note in (("matrix-free Newton-CG", newton, "converged"),
                                 ("Callback + IPOPT L-BFGS", ipopt, ipopt["status"])):
            gap = (row["J"] - best) / max(abs(best), 1e-300)
            path_gap = np.abs(row["nodes"] - newton["nodes"]).max() / path_range
            print(f"{problem.dim:>6} {route:<23} {row['seconds']:>8.1f} {row['iterations']:>6} "
                  f"{row['counts']['gradient']:>8} {row['counts']['hvp']:>8} {gap:>9.1e} {path_gap:>9.1e} "
                  f"{row['el']:>9.1e} {hessian_mb:>17.0f}  {note}", flush=True)
        el_met = ipopt["el"] <= max(newton["el"], 1e-6)
        print(f"  D = {problem.dim}: Callback/matrix-free time {ipopt['seconds'] / newton['seconds']:.1f}×, "
              f"EL {ipopt['el']:.1e} vs {newton['el']:.1e} "
              f"({'equal or better' if el_met else 'Callback route short of the EL check'})", flush=True)
    scenario = get("digits_mlp")
    _, mesh, _ = _objective(scenario.problem, scenario.theta0)
    print(f"an exact Hessian through a Callback at D = {scenario.problem.dim:,} on this mesh: "
          f"{exact_hessian_megabytes(scenario.problem.dim, len(mesh.quadrature[0])) / 1024:.0f} GB "
          "(matrix-free: none)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
