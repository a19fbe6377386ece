"""The Adam-like regime of the ``belief_adam`` scenario and BeliefAdam against collocation
(Vastola, Gershman & Rajan 2025, App. H.2, Eqs. 141–142; docs/belief_adam.md).

* :func:`initial_steps` / :func:`adam_regime_figure`: the optimal θ̇(0) of collocation
  solutions for many initial beliefs (m0, v0), against −√(ηk)·m0/√v0 (Adam) and
  −(ηk/γ)·m0 (SGD): the first law holds for γ² ≪ ηkv, the second for γ² ≫ ηkv.
* :func:`main` also prints the studies of :mod:`lossnav.validation.belief_adam_study`
  (BeliefAdam against its limit flow and against collocation).

    python -m lossnav.figures.belief_adam OUTDIR     # writes the figure (PNG, PDF), prints the study
"""
from __future__ import annotations

import itertools
import math
import sys

import numpy as np

import ocp
from lossnav.validation.belief_adam_study import joint_limit_study, optimizer_study, separation_study
from ocp.results.files import atomic_savefig
from problems.belief_adam import BeliefAdamScenario, quasi_static_velocity

# quasi-static beliefs (ξ tiny: belief velocities are expensive) and a long horizon
ADAM_REGIME = {"gradient": [0.0] * 6, "curvature": [1.0] * 6, "noise": 0.1, "samples": 1, "xi1": 1e-3,
               "xi2": 1e-3, "sigma1": 1.0, "sigma2": 1.0, "alpha1": 0.0, "alpha2": 0.0, "eta": 1.0, "k": 1.0}
INITIAL_MEANS = np.array([0.3, -0.6, 1.0, 0.5, -0.2, 0.8])
INITIAL_VARIANCES = np.array([0.1, 0.3, 1.0, 3.0, 10.0, 0.5])
REGIME_HORIZON = 30.0     # capped at 20/γ: beyond, e^{−γt} < 2e-9 leaves the path undetermined

def initial_steps(gamma, means=INITIAL_MEANS, variances=INITIAL_VARIANCES, mesh=None) -> dict:
    """θ̇(0) of the optimal path (finite horizon :data:`REGIME_HORIZON` or 20/γ) from θ = θ̂ with beliefs
    (means, variances), beside the Adam law, the SGD law and the frozen-belief policy."""
    scenario = BeliefAdamScenario(**ADAM_REGIME, gamma=gamma)
    n = scenario.coordinates
    start = np.concatenate([np.zeros(n), means[:n], variances[:n]])
    horizon = min(REGIME_HORIZON, 20.0 / gamma) if gamma > 0 else REGIME_HORIZON
    path = ocp.solve(scenario.problem, start, horizon=horizon, mesh=mesh or ocp.Mesh(60, 5))
    eta_k = scenario.params["eta"] * scenario.params["k"]
    return {"gamma": gamma, "step": path.velocity[0, :n],
            "adam": -math.sqrt(eta_k) * means[:n] / np.sqrt(variances[:n]),
            "sgd": -eta_k * means[:n] / gamma if gamma > 0 else np.full(n, np.nan),
            "policy": quasi_static_velocity(scenario, means[:n], variances[:n]), "path": path}


def adam_regime_figure(outdir, gammas=(0.05, 20.0)) -> list:
    """Two panels: θ̇(0) against the Adam law and against the SGD law, for a small and a large γ."""
    import matplotlib
    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt

    rows = [initial_steps(gamma) for gamma in gammas]
    figure, axes = plt.subplots(1, 2, figsize=(9, 4))
    for row, marker in zip(rows, itertools.cycle("os")):
        axes[0].plot(row["adam"], row["step"], marker, label=f"γ = {row['gamma']:g}")
        scale = row["gamma"] / (ADAM_REGIME["eta"] * ADAM_REGIME["k"])
        axes[1].plot(-INITIAL_MEANS, row["step"] * scale, marker, label=f"γ = {row['gamma']:g}")
    for axis, label in zip(axes, ("Adam law −√(ηk)·m0/√v0", "SGD law −m0"), strict=True):
        low, high = axis.get_xlim()
        axis.plot([low, high], [low, high], "k--", lw=0.8, label="y = x")
        axis.set_xlabel(label)
        axis.legend(fontsize=8)
    axes[0].set_ylabel("optimal θ̇(0) (collocation)")
    axes[1].set_ylabel("optimal θ̇(0) · γ/(ηk)")
    figure.suptitle("belief_adam: the optimal step is Adam-like for γ² ≪ ηkv, SGD-like for γ² ≫ ηkv",
                    fontsize=9)
    figure.tight_layout()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "belief_adam_regime.png", out / "belief_adam_regime.pdf"]
    try:
        for path in paths:
            atomic_savefig(figure, path, dpi=120)
    finally:
        plt.close(figure)
    return paths


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    outdir = argv[0] if argv else "."
    for path in adam_regime_figure(outdir):
        print("wrote", path)
    for gamma in (0.05, 20.0):
        row = initial_steps(gamma)
        print(f"γ = {gamma:g}: θ̇(0)/Adam law = {np.round(row['step'] / row['adam'], 4).tolist()}; "
              f"θ̇(0)/SGD law = {np.round(row['step'] / row['sgd'], 4).tolist()}")
    study = optimizer_study()
    print(f"limit flow vs collocation: {study['flow_vs_collocation']:.3e}; EL error of the reference "
          f"{study['el_error']:.2e}")
    for row in study["rows"]:
        print("  " + ", ".join(f"{key} {value:.3g}" for key, value in row.items()))
    print("limit flow vs collocation against the stream's time scale Δs: " + ", ".join(
        f"Δs = {row['sample_interval']:g}: {row['flow_vs_collocation']:.3e}" for row in separation_study()))
    print("joint limit (γ → sγ, ξ² → sξ², η → sη, Δt → Δt/s): BeliefAdam vs collocation")
    print("   s      γ        Δt   rule vs coll.  order  flow vs coll.  rule vs flow  EL (ref.)")
    for row in joint_limit_study():
        order = f"{row['order_vs_collocation']:.2f}" if "order_vs_collocation" in row else "—"
        print(f"{row['factor']:4g} {row['gamma']:6g} {row['dt']:9.3g}   {row['vs_collocation']:.3e}   "
              f"{order:>5}      {row['flow_vs_collocation']:.3e}     {row['vs_flow']:.3e}    "
              f"{row['el_error']:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
