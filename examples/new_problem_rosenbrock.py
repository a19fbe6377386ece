"""Define a new OCP problem, from definition to validated trajectory and figure.

The Rosenbrock valley L(θ) = (1 − θ1)² + b(θ2 − θ1²)² as a lossnav scenario:

    python examples/new_problem_rosenbrock.py      # writes rosenbrock.png

1. the loss is written once with problems.ops-style maths (it runs on CasADi symbols for
   the engine and on torch tensors for the learning rules);
2. a Scenario subclass names its parameters, ranges and paper-style defaults;
3. ocp.solve gives the optimal path; ocp.euler_lagrange_error and a mesh-convergence
   study validate it; a figure shows it against gradient flow.
To make it a scenario of every ``lossnav`` command, no edit to lossnav needed:
``lossnav solve rosenbrock --plugin examples/new_problem_rosenbrock.py:Rosenbrock`` (or
``problems.register(Rosenbrock)`` in a script, or an entry point in the group
``lossnav.scenarios`` of your package; docs/tutorials/first_scenario.md).
"""
import matplotlib

matplotlib.use("Agg")   # before pyplot is imported: hence the imports below it (E402)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ocp  # noqa: E402
from lossnav.figures import paper as figures  # noqa: E402
from problems.scenario import Scenario, scalar  # noqa: E402


def rosenbrock(theta, b):
    return (1 - theta[0]) ** 2 + b * (theta[1] - theta[0] ** 2) ** 2


class Rosenbrock(Scenario):
    name = "rosenbrock"
    reference = "Rosenbrock (1960) valley; a new scenario, not in the paper"
    defaults = {"b": 10.0, "gamma": 1.0, "eta": 1.0, "k": 1.0}
    ranges = {"b": "> 0; draws: [1, 100]", "gamma": "≥ 0", "eta": "> 0", "k": "≥ 0"}

    def normalise(self, params):
        params = {key: scalar(key, value) for key, value in params.items()}
        if params["b"] <= 0:
            raise ocp.ProblemError(f"parameter 'b' must be > 0, got {params['b']}")
        return params

    def build(self, params):
        return ocp.DiscountedOCP(dim=2, loss=rosenbrock, gamma=params["gamma"], eta=params["eta"],
                                 k=params["k"], constants={"b": params["b"]}, name=self.name)

    def default_theta0(self):
        return np.array([-1.0, 1.5])

    def fixed_point(self):
        return np.array([1.0, 1.0])

    def random_params(self, rng):
        return {"b": float(10 ** rng.uniform(0, 2))}


def main():
    scenario = Rosenbrock(b=10.0, gamma=1.0)
    path = ocp.solve(scenario.problem, scenario.theta0)
    print(f"objective J = {path.objective:.10f}, end {path.theta[-1]}, "
          f"{path.stats['iterations']} IPOPT iterations")
    window = path.t < path.stats.get("policy_from", np.inf)
    print(f"Euler–Lagrange error (relative): {ocp.euler_lagrange_error(scenario.problem, path):.1e}"
          f" (collocated window ends at t = {path.t[window][-1]:.2f})")
    for row in ocp.mesh_convergence(scenario.problem, scenario.theta0,
                                    [ocp.Mesh(10, 4), ocp.Mesh(20, 4), ocp.Mesh(40, 5)]):
        print(f"mesh {row['intervals']:>3} × {row['degree']}: objective error {row['objective_error']:.1e}")
    flow = figures.gradient_flow(scenario, scenario.theta0, t_end=200.0)
    figure, axis = plt.subplots(figsize=(6, 5))
    figures.contours(axis, scenario, ((-1.5, 1.5), (-0.5, 2.0)), levels=np.geomspace(0.05, 60, 20))
    axis.plot(*path.theta.T, color="tab:red", label="optimal path (γ = 1)")
    axis.plot(*flow.T, ":", color="k", label="gradient flow")
    axis.plot(1, 1, "x", color="k", ms=9)
    axis.legend()
    figures.save(figure, "rosenbrock")
    print("wrote rosenbrock.png, rosenbrock.pdf")


if __name__ == "__main__":
    main()
