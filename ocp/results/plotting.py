"""Plots of solutions: :meth:`ocp.Trajectory.plot` and :meth:`ocp.Trajectory.compare`.

* :func:`plot_trajectory`: θ(t) per component; the kinetic term (1/2η)(θ̇ − f)ᵀG(θ̇ − f) and
  the potential term k·L(θ) against t (their discounted sum is the objective's integrand,
  Eq. 2); for a 2-D problem, given the problem, the path in the phase plane over the loss's
  contours (as in Fig. 3 of Vastola et al. 2025).
* :func:`compare_trajectories`: two solutions, e.g. a learning rule against the collocation
  reference: both θ(t), their distance |θ_a(t) − θ_b(t)| on a log scale, and the phase plane.

matplotlib is imported when a plot is made, with the non-interactive Agg backend (files,
not windows). The engine knows nothing of scenarios: pass the :class:`ocp.DiscountedOCP`
(``scenario.problem``) for the contours; its loss is evaluated through CasADi, so any loss
the engine can solve can be drawn.
"""
from __future__ import annotations

import numpy as np

from .files import atomic_savefig

CONTOUR_GRID = 160       # points per axis of the loss contours


def plot_trajectory(trajectory, path=None, problem=None, title: str = ""):
    """Figure of θ(t), the energies and (2-D ``problem``) the phase plane; saved to ``path``
    (PNG, PDF, ... by suffix) when given. Returns the matplotlib Figure."""
    plt = _pyplot()
    phase = _has_phase_plane(trajectory, problem)
    figure, axes = plt.subplots(1, 3 if phase else 2, figsize=(15 if phase else 10, 4.2))
    t = trajectory.t
    for i in range(trajectory.theta.shape[1]):
        axes[0].plot(t, trajectory.theta[:, i], label=f"θ{i + 1}")
    axes[0].set_ylabel("θ(t)")
    axes[1].plot(t, trajectory.kinetic, label="kinetic (1/2η)|θ̇ − f|²_G")
    axes[1].plot(t, trajectory.potential, label="potential k·L(θ)")
    axes[1].set_ylabel("running cost terms (undiscounted)")
    for axis in axes[:2]:
        axis.set_xlabel("t")
        axis.legend(loc="best", fontsize=8)
        _time_scale(axis, t)
    if phase:
        _phase_plane(axes[2], problem, [(trajectory, "path", "-")])
    figure.suptitle(title, fontsize=10)
    return _finish(figure, path)


def compare_trajectories(trajectory, other, path=None, problem=None, labels=("trajectory", "reference"),
                         title: str = ""):
    """Figure of ``trajectory`` against ``other``: θ(t) of both (solid, dashed), their
    distance over the common time span, and the phase plane for a 2-D ``problem``."""
    plt = _pyplot()
    phase = _has_phase_plane(trajectory, problem)
    figure, axes = plt.subplots(1, 3 if phase else 2, figsize=(15 if phase else 10, 4.2))
    start, end = max(trajectory.t[0], other.t[0]), min(trajectory.t[-1], other.t[-1])
    # the other path over this one's time span (a reference often runs on to t ≈ 1e3)
    shown = other.t[(other.t >= trajectory.t[0]) & (other.t <= trajectory.t[-1])]
    for i in range(trajectory.theta.shape[1]):
        line, = axes[0].plot(trajectory.t, trajectory.theta[:, i], label=f"θ{i + 1} {labels[0]}")
        axes[0].plot(shown, other(shown)[:, i] if len(shown) else shown, "--", color=line.get_color(),
                     label=f"θ{i + 1} {labels[1]}")
    axes[0].set_ylabel("θ(t)")
    times = trajectory.t[(trajectory.t >= start) & (trajectory.t <= end)]
    if len(times):
        gap = np.linalg.norm(trajectory(times) - other(times), axis=1)
        shown = gap > 1e-16 * max(gap.max(), 1e-300)      # an exact start (gap 0) has no logarithm
        axes[1].semilogy(times[shown], gap[shown], color="k")
    axes[1].set_ylabel(f"|θ {labels[0]} − θ {labels[1]}|")
    for axis in axes[:2]:
        axis.set_xlabel("t")
        _time_scale(axis, trajectory.t)
    axes[0].legend(loc="best", fontsize=8)
    if phase:
        _phase_plane(axes[2], problem, [(trajectory, labels[0], "-"), (other, labels[1], "--")])
    figure.suptitle(title, fontsize=10)
    return _finish(figure, path)


def loss_on_grid(problem, x, y) -> np.ndarray:
    """L at the points (x, y) of a 2-D problem, through one mapped CasADi Function of its loss."""
    import casadi
    theta = casadi.SX.sym("theta", 2)
    symbols = casadi.SX.sym("p", problem.layout.size)
    value = problem.loss_value(theta, problem.layout.unpack(symbols))
    loss = casadi.Function("loss", [theta, symbols], [value])
    points = np.vstack([np.ravel(x), np.ravel(y)])
    values = loss.map(points.shape[1])(points, np.tile(problem.parameter_values()[:, None], points.shape[1]))
    return np.asarray(values, float).reshape(np.shape(x))


def _phase_plane(axis, problem, paths):
    drawn = np.vstack([trajectory.theta for trajectory, _, _ in paths])
    low, high = drawn.min(axis=0), drawn.max(axis=0)
    pad = 0.15 * max((high - low).max(), 1e-3)
    x, y = np.meshgrid(np.linspace(low[0] - pad, high[0] + pad, CONTOUR_GRID),
                       np.linspace(low[1] - pad, high[1] + pad, CONTOUR_GRID))
    values = loss_on_grid(problem, x, y)
    if np.all(np.isfinite(values)) and np.ptp(values) > 0:
        # levels at quantiles of L over the box: dense where the path ends, not only on the walls
        levels = np.unique(np.quantile(values, np.linspace(0.01, 0.99, 20) ** 2))
        axis.contour(x, y, values, levels=levels, colors="0.7", linewidths=0.6)
    for trajectory, label, style in paths:
        line, = axis.plot(trajectory.theta[:, 0], trajectory.theta[:, 1], style, label=label)
        axis.plot(*trajectory.theta[-1], "*", color=line.get_color(), ms=10, mec="k")
    axis.plot(*paths[0][0].theta[0], "o", color="k", label="θ0")
    axis.set_xlabel("θ1")
    axis.set_ylabel("θ2")
    axis.set_aspect("equal", adjustable="datalim")
    axis.legend(loc="best", fontsize=8)
    axis.set_title("phase plane over the loss contours (★ end)", fontsize=9)


def _has_phase_plane(trajectory, problem) -> bool:
    return (problem is not None and trajectory.theta.shape[1] == 2 and problem.dim == 2
            and getattr(problem, "state_dim", problem.dim) == 2)


def _time_scale(axis, t):
    """symlog when the path spans many time scales (infinite-horizon solves reach t ≈ 1e3)."""
    elapsed = t - t[0]
    if len(t) > 2 and t[0] == 0 and elapsed[-1] > 100 * max(elapsed[1], 1e-300):
        axis.set_xscale("symlog", linthresh=max(elapsed[1], 1e-6))


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finish(figure, path):
    figure.tight_layout()
    if path is not None:
        import matplotlib.pyplot as plt
        try:
            atomic_savefig(figure, path, dpi=120)    # never a half-written figure (ocp.files)
        finally:
            plt.close(figure)
    return figure
