"""The collapse after grokking (issue 26): two causes tested on the modular-addition transformer.

With decoupled weight decay the MPC rule ``mpcw`` groks in about half AdamW's steps and then its
held-out accuracy collapses and recovers again and again (docs/training.md, "Measured"). Two
causes were left open, each tested here by a variant that removes it, everything else as in the
tuned run of ``bench_train.py --tuning`` (p = 31, 60 % of the pairs trained, the 1-layer width-64
transformer, batch 64; mpcw at Δt = 0.0158 with j = 0.2, AdamW at lr 0.00316 with λ = 1: both
shrink θ by 0.3 % per step):

1. *The App. B metric near zero loss.* mpcw whitens with G = diag(√v̂ + ε) (Vastola et al. 2025,
   App. B, Eq. 33: v ← β₂v + (1 − β₂)g²), v̂ the running average of g². As the training loss → 0
   the gradients, hence v̂ and G, shrink, and every step in G's coordinates (G⁻¹g) keeps its size
   however small the gradient: the Adam-like step does not vanish at the minimum.
   ``mpcw_floor``: the optimizer's own ``metric_eps`` raised from 1e-8 to :data:`METRIC_FLOOR`, so
   that G ≥ ε near zero loss. ``mpcw_hold``: v̂ stops adapting (held) from the first minibatch
   whose loss is below :data:`HOLD_BELOW` (:class:`HeldMetricMPC`, a subclass kept here: the
   optimizer has no such option).
2. *The missing momentum.* AdamW averages the gradient (β₁ = 0.9); mpcw has no momentum.
   ``adamw_beta1_0``: AdamW with β₁ = 0 (RMSprop with AdamW's bias correction and decay): does
   AdamW without momentum collapse too?

Per run and epoch (9 steps at these sizes) the held-out accuracy, the mean minibatch loss and, for
the mpcw variants, the median of √v̂ (the metric's scale) are recorded; per run the first step at
≥ 90 % held-out accuracy, the lowest held-out accuracy after it and the number of collapses below
50 % after it (entries into < 50 % from ≥ 50 %).

Usage: ``python examples/grokking_collapse.py [--seeds 3] [--steps 2970] [--out DIR]
[--variants mpcw,adamw,...] [--figure docs/figures/grokking_collapse.png]``; writes
``DIR/grokking_collapse.json`` and the figure (held-out accuracy against steps, one panel per
variant, one line per seed).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository first: E402 below
from learning_rules import RecedingHorizon  # noqa: E402
from lossnav.training import load_data, make_model, train  # noqa: E402
from lossnav.training.rules import MPC_OPTIONS  # noqa: E402

MPCW_LR, ADAMW_LR = 0.0158, 0.00316            # the tuned rates of docs/training.md (both 3.16× the defaults)
MPCW_DECAY, ADAMW_DECAY = 0.2, 1.0             # Δt·j = lr·λ ≈ 0.3 % shrink per step
METRIC_FLOOR = 3e-3                            # ε of mpcw_floor (G ≥ ε): mpcw's median √v̂ when it groks
HOLD_BELOW = 0.1                               # mpcw_hold: v̂ held from the first minibatch loss below this
TARGET, COLLAPSE = 90.0, 50.0                  # grokked at ≥ 90 %; a collapse is an entry into < 50 %
SETTINGS = {"data": {"modulus": 31, "train_fraction": 0.6},       # bench_train.py --tuning --size small
            "model": {"width": 64, "layers": 1, "hidden": 256}, "batch": 64}


class HeldMetricMPC(RecedingHorizon):
    """``RecedingHorizon`` whose App. B metric G = √v̂ + ε stops adapting once a minibatch loss falls
    below ``hold_below``: from then on every step restores the running g² average (and its bias
    correction count) to the held value, so each step's metric is β₂v_held + (1 − β₂)g², within
    1 − β₂ = 0.1 % of the held one. ``held_at``: the step at which the hold began (None before).
    Reads the loss on the host every step (an experiment, not a production rule)."""

    def __init__(self, params, hold_below, **options):
        if not hold_below > 0:
            raise ValueError(f"hold_below must be > 0, got {hold_below!r}")
        super().__init__(params, **options)
        self.hold_below, self.held_at, self._held, self._steps = float(hold_below), None, None, 0

    def step(self, closure=None):
        loss = super().step(closure)
        self._steps += 1
        heads = [group["group_state"] for group in self.param_groups if group["params"]]
        if self._held is not None:
            for head, (moment, updates) in zip(heads, self._held, strict=True):
                head["second_moment"], head["moment_updates"] = moment.clone(), updates.clone()
        elif (loss is not None and float(loss.detach()) < self.hold_below
              and all("second_moment" in head for head in heads)):
            self._held = [(head["second_moment"].clone(), torch.as_tensor(head["moment_updates"]).clone())
                          for head in heads]
            self.held_at = self._steps
        return loss


def mpcw(params, **change):
    return RecedingHorizon(params, lr=MPCW_LR, weight_decay=MPCW_DECAY, **{**MPC_OPTIONS, **change})


VARIANTS = {
    "mpcw": ("mpcw as registered, at the tuned Δt", mpcw),
    "mpcw_floor": (f"mpcw with the metric floored, ε = {METRIC_FLOOR:g}",
                   lambda params: mpcw(params, metric_eps=METRIC_FLOOR)),
    "mpcw_hold": (f"mpcw with v̂ held from the first minibatch loss < {HOLD_BELOW:g}",
                  lambda params: HeldMetricMPC(params, HOLD_BELOW, lr=MPCW_LR, weight_decay=MPCW_DECAY,
                                               **MPC_OPTIONS)),
    "adamw": ("AdamW, β = (0.9, 0.98), λ = 1, at the tuned lr",
              lambda params: torch.optim.AdamW(params, lr=ADAMW_LR, betas=(0.9, 0.98),
                                               weight_decay=ADAMW_DECAY)),
    "adamw_beta1_0": ("AdamW without momentum, β = (0, 0.98)",
                      lambda params: torch.optim.AdamW(params, lr=ADAMW_LR, betas=(0.0, 0.98),
                                                       weight_decay=ADAMW_DECAY)),
}


def metric_scale(optimizer):
    """{median, p10}: the median and the 10 % quantile of √v̂ over the weights (v̂ bias-corrected)
    of an mpc optimizer; None for the others."""
    group = optimizer.param_groups[0]
    head = group.get("group_state", {})          # RuleOptimizer keeps a group's state in the group
    if "second_moment" not in head:
        return None
    corrected = head["second_moment"] / (1 - group["metric_beta"] ** head["moment_updates"])
    quantiles = corrected.sqrt().quantile(torch.tensor([0.5, 0.1], dtype=corrected.dtype)).tolist()
    return dict(zip(("median", "p10"), quantiles, strict=True))


def collapse_statistics(steps, accuracies, target=TARGET, collapse=COLLAPSE):
    """{first_target_step, lowest_after_target, collapses, final}: the first step at ≥ ``target`` %,
    the lowest accuracy after it, the entries into < ``collapse`` % after it (None, None, 0 when
    the target is never reached)."""
    first = next((i for i, accuracy in enumerate(accuracies) if accuracy >= target), None)
    if first is None:
        return {"first_target_step": None, "lowest_after_target": None, "collapses": 0,
                "final": accuracies[-1]}
    after = accuracies[first:]
    entries = sum(1 for before, now in zip(after, after[1:], strict=False) if before >= collapse > now)
    return {"first_target_step": steps[first], "lowest_after_target": min(after), "collapses": entries,
            "final": accuracies[-1]}


def run_one(variant, seed, steps, settings=SETTINGS):
    """One training run: {seed, steps, test_accuracy, train_loss, metric_scale, seconds, ...statistics}."""
    data = load_data("modular", **settings["data"])
    model = make_model("transformer", data, seed=seed, **settings["model"])
    optimizer = VARIANTS[variant][1](model.parameters())
    per_epoch = len(data.x_train) // settings["batch"]
    scales = []
    started = time.perf_counter()
    history = train(model, optimizer, data, max(1, math.ceil(steps / per_epoch)), seed=seed,
                    batch=settings["batch"], progress=False,
                    on_epoch=lambda _: scales.append(metric_scale(optimizer)))
    records = history["epochs"]
    run = {"seed": seed, "steps": [record["epoch"] * per_epoch for record in records],
           "test_accuracy": [record["test_accuracy"] for record in records],
           "train_loss": [record["train_loss"] for record in records],
           "metric_scale": scales, "seconds": time.perf_counter() - started,
           "held_at": getattr(optimizer, "held_at", None)}
    run.update(collapse_statistics(run["steps"], run["test_accuracy"]))
    return run


def run_experiment(variants, seeds, steps, settings=SETTINGS, log=None):
    """{settings, steps, variants: {name: {description, runs: [run_one(...) per seed]}}}; seeds outer,
    variants interleaved within each seed (machine load hits them alike)."""
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; valid: {', '.join(VARIANTS)}")
    torch.set_num_threads(1)
    results = {"settings": settings, "steps": steps, "target": TARGET, "collapse_below": COLLAPSE,
               "variants": {name: {"description": VARIANTS[name][0], "runs": []} for name in variants}}
    for seed in seeds:
        for name in variants:
            run = run_one(name, seed, steps, settings)
            results["variants"][name]["runs"].append(run)
            if log is not None:
                log(f"{name:14s} seed {seed}: first ≥ {TARGET:.0f} % at {run['first_target_step']}, "
                    f"lowest after {run['lowest_after_target']}, collapses < {COLLAPSE:.0f} %: "
                    f"{run['collapses']}, final {run['final']:.1f} % ({run['seconds']:.0f} s)")
    return results


def draw(results, path):
    """Held-out accuracy against steps, one panel per variant, one line per seed (Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(results["variants"])
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), sharex=True, sharey=True,
                                squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        for run in results["variants"][name]["runs"]:
            axis.plot(run["steps"], run["test_accuracy"], lw=0.9, label=f"seed {run['seed']}")
        axis.axhline(TARGET, color="grey", ls=":", lw=0.8)
        axis.axhline(COLLAPSE, color="grey", ls="--", lw=0.8)
        axis.set_title(name, fontsize=10)
        axis.set_ylim(0, 102)
    for axis in axes.flat[len(names):]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("steps")
    for axis in axes[:, 0]:
        axis.set_ylabel("held-out accuracy (%)")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_outputs(results, out, figure):
    """``out``/grokking_collapse.json and the figure at ``figure``; returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "grokking_collapse.json"
    path.write_text(json.dumps(results, indent=1))
    return path, draw(results, figure)


def summary_lines(results):
    """One line per variant: medians over seeds and the per-seed numbers."""
    lines = []
    for name, entry in results["variants"].items():
        runs = entry["runs"]
        firsts = [run["first_target_step"] for run in runs if run["first_target_step"] is not None]
        median = f"{statistics.median(firsts):.0f}" if firsts else "—"
        lowest = "/".join("—" if run["lowest_after_target"] is None else f"{run['lowest_after_target']:.1f}"
                          for run in runs)
        collapses = "/".join(str(run["collapses"]) for run in runs)
        finals = "/".join(format(run["final"], ".1f") for run in runs)
        lines.append(f"{name:14s} grokked {len(firsts)}/{len(runs)}, median first ≥ {TARGET:.0f} % at "
                     f"{median} steps; lowest after {lowest} %; collapses {collapses}; final {finals} %")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2970, help="optimizer steps per run (whole epochs of 9)")
    parser.add_argument("--out", default=".", help="directory of grokking_collapse.json")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--figure", default=str(Path(__file__).resolve().parents[1] / "docs" / "figures"
                                               / "grokking_collapse.png"))
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 1:
        parser.error("--seeds and --steps must be positive")
    started = time.perf_counter()
    def log(line):
        print(f"[{time.perf_counter() - started:5.0f} s] {line}", flush=True)
    results = run_experiment(args.variants.split(","), range(args.seeds), args.steps, log=log)
    print("\n".join(summary_lines(results)))
    print("wrote " + " and ".join(map(str, write_outputs(results, args.out, args.figure))))


if __name__ == "__main__":
    main()
