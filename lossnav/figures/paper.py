"""The paper's figures, recomputed by the engine with the analytic curves overlaid.

Each function takes an output stem (``dir/fig1``) and writes ``stem.png`` and ``stem.pdf``;
it returns the list of written paths. Paths are collocation solutions (solid); analytic
solutions are overlaid dashed; fixed points are stars, loss minima crosses.

* :func:`fig1` (Fig. 1b–c): the 2D double well, optimal path over the loss contours
  against the true gradient flow θ̇ = −∇L (the paper's notebook halved the θ1-gradient),
  with the free infinite-horizon path: the global optimum (``ocp.solve_global``, right well)
  and, dotted, the local one the default guess finds (left well), with their objectives;
  and the kinetic and potential terms along the path.
* :func:`fig2` (Fig. 2a–d): quadratic loss, θ(t) and L(θ(t)) for γ ∈ {0, 1, 10}; 2D
  anisotropic paths; convergence rate against curvature (rates ∝ h for large γ, the
  gradient-descent limit, and ∝ √h for γ → 0, the ballistic limit).
* :func:`fig3` (Fig. 3a–d): isotropic and metric paths for several γ; rotational-drift
  and weight-decay paths for several drift strengths, with their biased fixed points.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")   # before pyplot is imported: hence the imports below it (E402)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import ocp  # noqa: E402
from ocp.results.files import atomic_savefig  # noqa: E402
from problems import get  # noqa: E402

GAMMAS = (0.0, 1.0, 10.0)
COLOURS = {0.0: "tab:blue", 1.0: "tab:orange", 10.0: "tab:green", 0.1: "tab:purple"}


def save(figure, stem) -> list:
    paths = [f"{stem}.png", f"{stem}.pdf"]
    try:
        figure.tight_layout()
        for path in paths:
            atomic_savefig(figure, path, dpi=130)
    finally:
        plt.close(figure)
    return paths


def contours(axis, scenario, box, levels=25):
    x, y = np.meshgrid(np.linspace(*box[0], 200), np.linspace(*box[1], 200))
    points = np.stack([x.ravel(), y.ravel()], axis=1)
    values = np.array([scenario.problem.loss(p, **scenario.problem.constants) for p in points])
    axis.contour(x, y, np.asarray(values, float).reshape(x.shape), levels=levels,
                 colors="0.75", linewidths=0.6)
    axis.set_xlabel("θ1")
    axis.set_ylabel("θ2")


def gradient_flow(scenario, theta0, t_end=60.0) -> np.ndarray:
    """θ̇ = −∇L (true gradient, torch autograd on the scenario's own loss)."""
    import torch

    def rhs(_, theta):
        x = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(scenario.torch_loss(x), x)
        return -grad.numpy()
    solution = solve_ivp(rhs, (0, t_end), theta0, rtol=1e-10, atol=1e-12, dense_output=True)
    return solution.sol(np.concatenate([np.linspace(0, 1, 400), np.geomspace(1, t_end, 400)[1:]])).T


def fig1(stem) -> list:
    scenario = get("double_well_2d")
    finite = ocp.solve(scenario.problem, scenario.theta0, **scenario.paper_setting)
    # the free infinite horizon has a local optimum in each well; ocp.solve_global finds the
    # loss's minima itself and keeps the lowest objective (the paper's headline: the global well)
    free = ocp.solve_global(scenario.problem, scenario.theta0)
    local = ocp.solve(scenario.problem, scenario.theta0)      # the default guess: the nearer well
    flow = gradient_flow(scenario, scenario.theta0)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    contours(left, scenario, ((-1.6, 1.6), (-0.8, 0.8)))
    left.plot(*finite.theta.T, color="tab:red", label="optimal, T = 4, θ(4) fixed (paper)")
    left.plot(*free.theta.T, color="tab:purple", ls="--",
              label=f"optimal, T = ∞, free end, global (solve_global): J = {free.objective:.4g}")
    if local.objective > free.objective + 1e-9 * abs(free.objective):
        left.plot(*local.theta.T, color="tab:purple", ls=":", lw=0.8,
                  label=f"local optimum, T = ∞ (default guess): J = {local.objective:.4g}")
    left.plot(*flow.T, color="k", ls=":", label="gradient flow θ̇ = −∇L")
    minima = scenario.minima()
    left.plot(*minima.T, "x", color="k", ms=8)
    left.plot(*scenario.theta0, "o", color="k")
    left.set_title("Fig. 1b: double well, optimal path vs gradient flow", fontsize=10)
    left.legend(fontsize=8, loc="lower left")
    right.plot(finite.t, finite.kinetic, label="kinetic (1/2η)|θ̇|²")
    right.plot(finite.t, finite.potential, label="potential k·L(θ)")
    right.plot(finite.t, finite.kinetic - finite.potential, ls="--", color="0.4",
               label="kinetic − potential")
    right.set_xlabel("t")
    right.set_title("Fig. 1c: energies along the optimal path (T = 4)", fontsize=10)
    right.legend(fontsize=8)
    return save(figure, stem)


def fig2(stem) -> list:
    figure, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    (a, b), (c, d) = axes
    for gamma in GAMMAS:
        scenario = get("quadratic", H=[1.0], gamma=gamma)
        path = ocp.solve(scenario.problem, [1.0])
        t = np.linspace(0, 8, 200)
        exact = scenario.analytic(t, [1.0])[:, 0]
        colour = COLOURS[gamma]
        inside = path.t <= 8
        a.plot(path.t[inside], path.theta[inside, 0], "o", ms=3, color=colour, label=f"γ = {gamma:g}")
        a.plot(t, exact, "--", color=colour, lw=1)
        b.semilogy(path.t[inside], 0.5 * path.theta[inside, 0] ** 2, "o", ms=3, color=colour)
        b.semilogy(t, 0.5 * exact ** 2, "--", color=colour, lw=1, label=f"γ = {gamma:g}")
        scenario2 = get("quadratic", H=[1.0, 10.0], gamma=gamma)
        theta0 = np.array([-1.0, 1.0])
        path2 = ocp.solve(scenario2.problem, theta0)
        c.plot(*path2.theta.T, "-", color=colour, label=f"γ = {gamma:g}")
        c.plot(*scenario2.analytic(np.linspace(0, 30, 400), theta0).T, "--", color="k", lw=0.6)
    a.set(xlabel="t", ylabel="θ(t)", title="Fig. 2a: θ(t), quadratic L = θ²/2 (dots: collocation)")
    b.set(xlabel="t", ylabel="L(θ(t))", title="Fig. 2b: loss along the path")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    contours(c, get("quadratic", H=[1.0, 10.0]), ((-1.1, 0.3), (-0.5, 1.1)), levels=15)
    c.plot(0, 0, "x", color="k", ms=8)
    c.set_title("Fig. 2c: anisotropic H = diag(1, 10)", fontsize=10)
    c.legend(fontsize=8)
    _rates_panel(d)
    for axis in (a, b):
        axis.title.set_fontsize(10)
    return save(figure, stem)


def _rates_panel(axis):
    """Decay rate |r(h)| relative to |r(1)|: measured on collocation paths, exact curves."""
    curvatures = np.geomspace(0.01, 100, 9)
    fine = np.geomspace(0.01, 100, 200)
    for gamma in GAMMAS:
        def rate(h, gamma=gamma):       # this γ's rate, used within this iteration
            return np.sqrt(gamma ** 2 / 4 + h) - gamma / 2
        measured = []
        for h in curvatures:
            scenario = get("quadratic", H=[h], gamma=gamma)
            path = ocp.solve(scenario.problem, [1.0])
            keep = (np.abs(path.theta[:, 0]) < 1e-2) & (np.abs(path.theta[:, 0]) > 1e-8)
            slope = np.polyfit(path.t[keep], np.log(np.abs(path.theta[keep, 0])), 1)[0]
            measured.append(-slope)
        colour = COLOURS[gamma]
        axis.loglog(curvatures, np.array(measured) / rate(1.0), "o", color=colour, label=f"γ = {gamma:g}")
        axis.loglog(fine, rate(fine) / rate(1.0), "--", color=colour, lw=1)
    axis.loglog(fine, fine, ":", color="0.5", label="∝ h (gradient descent)")
    axis.loglog(fine, np.sqrt(fine), "-.", color="0.5", label="∝ √h (ballistic)")
    axis.set(xlabel="curvature h", ylabel="rate |r(h)| / |r(1)|")
    axis.set_title("Fig. 2d: convergence rate against curvature", fontsize=10)
    axis.legend(fontsize=8)


def fig3(stem) -> list:
    panels = [("quadratic", {"H": [1.0, 1.0], "mu": [1.0, 0.5]}, "gamma", (0.1, 1.0, 10.0),
               "Fig. 3a: isotropic (the path is straight for every γ)"),
              ("natural_gradient", {}, "gamma", (0.1, 1.0, 10.0), "Fig. 3b: metric G (natural gradient)"),
              ("rotation", {}, "q", (2.0, 5.0, 10.0), "Fig. 3c: rotational drift f = qJθ"),
              ("weight_decay", {}, "j", (0.5, 2.0, 10.0), "Fig. 3d: weight decay f = −jθ")]
    figure, axes = plt.subplots(2, 2, figsize=(11, 9.5))
    colours = ("tab:purple", "tab:orange", "tab:green")
    for axis, (name, params, key, values, title) in zip(axes.ravel(), panels, strict=True):
        drawn = []
        for value, colour in zip(values, colours, strict=True):
            scenario = get(name, **{**params, key: value})
            theta0 = scenario.theta0
            path = ocp.solve(scenario.problem, theta0)
            t = np.concatenate([np.linspace(0, min(path.t[-1], 50.0), 3000), path.t[path.t > 50.0]])
            drawn.append(path(t))
            axis.plot(*drawn[-1].T, color=colour, label=f"{key if key != 'gamma' else 'γ'} = {value:g}")
            if scenario.has_analytic():
                axis.plot(*scenario.analytic(t, theta0).T, "--", color="k", lw=0.7)
            axis.plot(*scenario.fixed_point(), "*", color=colour, ms=13, mec="k")
        mu = np.array(scenario.params["mu"], float)
        points = np.vstack([*drawn, mu, theta0])
        low, high = points.min(axis=0), points.max(axis=0)
        pad = 0.15 * (high - low).max() + 0.1
        contours(axis, scenario, ((low[0] - pad, high[0] + pad), (low[1] - pad, high[1] + pad)), levels=15)
        axis.plot(*mu, "x", color="k", ms=9, label="loss minimum μ")
        axis.plot(*theta0, "o", color="k")
        axis.set_title(title + "\n(★ fixed points; -- analytic)", fontsize=10)
        axis.set_aspect("equal", adjustable="datalim")
        axis.legend(fontsize=8)
    return save(figure, stem)


FIGURES = {"fig1": (fig1, "Fig. 1b–c: the 2D double well (free infinite horizon: the global optimum by "
                          "ocp.solve_global)"),
           "fig2": (fig2, "Fig. 2a–d: quadratic loss, discounting and curvature"),
           "fig3": (fig3, "Fig. 3a–d: metric and drift scenarios")}
