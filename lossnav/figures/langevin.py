"""Figures of the sgd_langevin scenario (Kunin et al. 2021, Figs. 2/6, 3 and 7), as PNG (Agg)."""
from __future__ import annotations

import numpy as np

import ocp
from lossnav.validation.sgd_simulation import scenario_for, simulate
from ocp.results.files import atomic_savefig


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(figure, path):
    plt = _pyplot()
    try:
        figure.tight_layout()
        atomic_savefig(figure, path, dpi=110)
    finally:
        plt.close(figure)


def _directions(scenario):
    """Indices of the top two and the bottom eigendirection (eigenvalues ascending)."""
    d = scenario.dim
    return list(dict.fromkeys([d - 1, max(d - 2, 0), 0]))


def phase_space(scenario, m, path):
    """Figs. 2 and 6: (q_iᵀ(θ − μ), q_iᵀv) of one chain, the chain mean and Eq. 7's mean."""
    plt = _pyplot()
    window = min(m.steps, max(3 * m.burn_in, 50))
    predicted_theta, predicted_v = scenario.mean_trajectory(m.mean_theta[0], window)
    V, mu = scenario.eigenvectors, scenario.mu
    directions = _directions(scenario)
    figure, axes = plt.subplots(1, len(directions), figsize=(4.2 * len(directions), 4), squeeze=False)
    for axis, i in zip(axes[0], directions, strict=True):
        q = V[:, i]
        axis.plot((m.chain_theta[:window + 1] - mu) @ q, m.chain_velocity[:window + 1] @ q,
                  color="0.6", lw=0.6, label="one SGD chain")
        axis.plot((m.mean_theta[:window + 1] - mu) @ q, m.mean_velocity[:window + 1] @ q,
                  color="k", lw=1.2, label=f"mean of {m.chains} chains")
        axis.plot((predicted_theta - mu) @ q, predicted_v @ q, "r--", lw=1.2, label="OU mean (Eq. 7)")
        axis.set_xlabel(f"q{i + 1}ᵀ(θ − μ)")
        axis.set_ylabel(f"q{i + 1}ᵀv")
        axis.set_title(f"ρ = {scenario.rho[i]:.3g}", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="best")
    _save(figure, path)


def modified_loss(scenario, m, path):
    """Fig. 3: original loss against modified loss Ψ in the (top, bottom) eigenplane with the
    stationary trajectory, and Ψ with the stationary current in the top phase plane."""
    plt = _pyplot()
    V, mu, d = scenario.eigenvectors, scenario.mu, scenario.dim
    top, bottom = d - 1, 0
    stationary = slice(m.burn_in, m.steps + 1)
    a = (m.chain_theta[stationary] - mu) @ V[:, top]
    b = (m.chain_theta[stationary] - mu) @ V[:, bottom]
    extent = 1.2 * max(np.abs(a).max(), np.abs(b).max(), 1e-12)
    grid = np.linspace(-extent, extent, 60)
    A_, B_ = np.meshgrid(grid, grid)
    theta = mu + A_[..., None] * V[:, top] + B_[..., None] * V[:, bottom]
    K = scenario.H + scenario.weight_decay * np.eye(d)
    original = 0.5 * np.einsum("...i,ij,...j->...", theta - mu, K, theta - mu)
    modified = scenario.modified_loss(theta, np.zeros_like(theta))
    figure, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for axis, field, title in ((axes[0], original, "regularized loss ½(θ−μ)ᵀ(H+λI)(θ−μ)"),
                               (axes[1], modified, "modified loss Ψ(θ, 0) (Eq. 11)")):
        axis.contourf(A_, B_, field, levels=20, cmap="viridis")
        axis.plot(a, b, color="k", lw=0.4)
        axis.set_xlabel(f"q{top + 1}ᵀ(θ − μ)  (ρ = {scenario.rho[top]:.3g})")
        axis.set_ylabel(f"q{bottom + 1}ᵀ(θ − μ)  (ρ = {scenario.rho[bottom]:.3g})")
        axis.set_title(title, fontsize=9)
        axis.set_aspect("equal")
    q = V[:, top]
    x = (m.chain_theta[stationary] - mu) @ q
    v = m.chain_velocity[stationary] @ q
    xs = np.linspace(-1.2 * np.abs(x).max(), 1.2 * np.abs(x).max(), 40)
    vs = np.linspace(-1.2 * np.abs(v).max(), 1.2 * np.abs(v).max(), 40)
    X_, W_ = np.meshgrid(xs, vs)
    theta = mu + X_[..., None] * q
    velocity = W_[..., None] * q
    current = scenario.stationary_current(theta, velocity)
    axes[2].contourf(X_, W_, scenario.modified_loss(theta, velocity), levels=20, cmap="viridis")
    axes[2].plot(x[:2000], v[:2000], color="k", lw=0.3)
    axes[2].streamplot(X_, W_, current[..., :d] @ q, current[..., d:] @ q, color="w", density=0.8,
                       linewidth=0.7)
    axes[2].set_xlabel(f"q{top + 1}ᵀ(θ − μ)")
    axes[2].set_ylabel(f"q{top + 1}ᵀv")
    axes[2].set_title("Ψ and stationary current J_ss (white) in phase space", fontsize=9)
    _save(figure, path)


def speed_sweep(data, hyper, path, steps=4000, chains=16, seed=0, replacement=True):
    """Fig. 7: measured E‖δ‖² against lr, batch and momentum (one varied at a time around
    ``hyper``), with Eq. 16 (line) and the exact discrete prediction (dashed). Points the
    stability check rejects are skipped. Returns the measured points."""
    plt = _pyplot()
    lam = np.linalg.eigvalsh(data.X.T @ data.X / len(data.X)).max() + hyper["weight_decay"]
    lr_limit = 0.5 * (1 - hyper["momentum"]) / lam        # the acceptance region's edge
    batches = np.geomspace(max(1, hyper["batch"] // 4), hyper["batch"] * 8, 5).astype(int)
    sweeps = {"lr": np.geomspace(lr_limit / 16, lr_limit, 5),
              "batch": np.unique(batches),
              "momentum": np.array([0.0, 0.5, 0.8, 0.9, 0.95])}
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    points = {}
    for axis, (key, values) in zip(axes, sweeps.items(), strict=True):
        measured, exact, kept = [], [], []
        for value in values:
            setting = {**hyper, key: value.item()}
            try:
                scenario = scenario_for(data, replacement=replacement, **setting)
                m = simulate(scenario, steps, chains=chains, seed=seed)
            except ocp.ProblemError:
                continue
            kept.append(value.item())
            measured.append(m.speed)
            exact.append(scenario.instantaneous_speed_discrete("exact"))
        spacing = np.linspace if key == "momentum" else np.geomspace
        dense = spacing(values[0], values[-1], 100)
        base = scenario_for(data, replacement=replacement, **hyper)
        if key == "lr":
            scale = (dense / hyper["lr"]) ** 2
        elif key == "batch":
            scale = hyper["batch"] / dense
        else:
            scale = (1 - hyper["momentum"] ** 2) / (1 - dense ** 2)
        line = base.instantaneous_speed() * scale                  # Eq. 16 ∝ η²/(S(1 − β²))
        axis.plot(dense, line, "k-", lw=1, label="Eq. 16")
        axis.plot(kept, exact, "b--", lw=1, label="exact discrete")
        axis.plot(kept, measured, "o", color="C1", label="torch SGD")
        axis.set_xlabel(key)
        axis.set_ylabel("E‖δ‖²")
        axis.set_yscale("log")
        if key != "momentum":
            axis.set_xscale("log")
            axis.xaxis.set_minor_formatter(plt.NullFormatter())
        axis.legend(fontsize=7)
        points[key] = {"values": kept, "measured": measured, "predicted_exact": exact}
    _save(figure, path)
    return points
