"""``lossnav langevin``: heavy-ball SGD on synthetic linear regression against the OU model.

    lossnav langevin --dim D --samples N --noise SIGMA --lr ETA --momentum BETA
                     --weight-decay LAMBDA --batch S --steps K --seed SEED [--json] [--plot DIR]

Register with ``add_parser(subparsers)`` and dispatch to ``run(args)`` (exit code 0, or 1
with one line on stderr for an ocp.ProblemError such as unstable hyperparameters).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

import ocp
from lossnav.validation.sgd_simulation import compare, make_regression, scenario_for, simulate
from ocp.results import files

PROG = "lossnav"


def _spectrum(text):
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return values


def add_parser(commands):
    """Add the ``langevin`` subcommand to an argparse subparsers object; returns its parser."""
    parser = commands.add_parser(
        "langevin", help="SGD limiting dynamics (Kunin et al. 2021): torch SGD vs the OU model",
        description="Run torch.optim.SGD with momentum on synthetic linear regression and compare "
                    "speed, stationary variances, mean trajectory and diffusion with the "
                    "Ornstein-Uhlenbeck model of Kunin et al. (2021).")
    add = parser.add_argument
    add("--dim", type=int, default=4, help="parameters d (default: 4)")
    add("--samples", type=int, default=2000, help="data points N (default: 2000)")
    add("--noise", type=float, default=0.5, help="label-noise standard deviation σ (default: 0.5)")
    add("--lr", type=float, default=0.03, help="learning rate η (default: 0.03)")
    add("--momentum", type=float, default=0.9, help="momentum β in [0, 1) (default: 0.9)")
    add("--weight-decay", type=float, default=0.0, help="weight decay λ (default: 0)")
    add("--batch", type=int, default=16, help="batch size S (default: 16)")
    add("--steps", type=int, default=20000, help="SGD steps K per chain (default: 20000)")
    add("--seed", type=int, default=0, help="seed of the data and the batches (default: 0)")
    add("--chains", type=int, default=64, help="independent chains run in parallel (default: 64)")
    add("--spectrum", type=_spectrum, metavar="A,B,...",
        help="eigenvalues of the input covariance, d values (default: log-spaced 1 to 0.1)")
    add("--without-replacement", action="store_true",
        help="draw each batch as S distinct samples (default: with replacement)")
    add("--json", action="store_true", help="print the comparison as JSON on stdout")
    add("--plot", metavar="DIR", help="write phase_space.png, modified_loss.png, speed_sweep.png")
    parser.set_defaults(handler=run)
    return parser


def run(args) -> int:
    try:
        return _run(args)
    except (ocp.ProblemError, OSError) as exc:
        message = (f"cannot write {exc.filename}: {exc.strerror}" if isinstance(exc, OSError)
                   else " ".join(str(exc).split()))
        print(f"{PROG} langevin: error: {message}", file=sys.stderr)
        return 1


def _run(args) -> int:
    if args.plot:                            # before the simulation (ocp.OutputPathError: exit 1)
        files.check_output_folder(args.plot, what="--plot")
    data = make_regression(args.dim, args.samples, args.noise, spectrum=args.spectrum, seed=args.seed)
    hyper = {"lr": args.lr, "momentum": args.momentum, "weight_decay": args.weight_decay, "batch": args.batch}
    scenario = scenario_for(data, replacement=not args.without_replacement, **hyper)
    stability = scenario.stability()                           # before any step
    measurements = simulate(scenario, args.steps, chains=args.chains, seed=args.seed)
    report = {"scenario": scenario.name, "reference": scenario.reference,
              "params": {"dim": args.dim, "samples": args.samples, "noise": args.noise, **hyper,
                         "steps": args.steps, "seed": args.seed, "chains": args.chains,
                         "replacement": not args.without_replacement},
              "stability": stability, **compare(scenario, measurements)}
    if args.plot:
        from lossnav.figures import langevin as langevin_plots
        os.makedirs(args.plot, exist_ok=True)
        langevin_plots.phase_space(scenario, measurements, os.path.join(args.plot, "phase_space.png"))
        langevin_plots.modified_loss(scenario, measurements, os.path.join(args.plot, "modified_loss.png"))
        report["speed_sweep"] = langevin_plots.speed_sweep(
            data, hyper, os.path.join(args.plot, "speed_sweep.png"), steps=min(args.steps, 4000),
            seed=args.seed, replacement=not args.without_replacement)
    if args.json:
        report.pop("displacement")
        print(json.dumps(_finite(report), indent=2))
    else:
        print(_text(report))
    return 0


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def _text(report) -> str:
    speed, var = report["instantaneous_speed"], report["stationary_variance"]
    lines = [f"{report['scenario']}: {report['params']}",
             f"speed E|δ|²: measured {speed['measured']:.4g} ± {speed['measured_stderr']:.2g}, "
             f"Eq. 16 {speed['predicted']:.4g} (ratio {speed['ratio']:.3f}), "
             f"exact discrete {speed['predicted_exact']:.4g} (ratio {speed['ratio_exact']:.3f})",
             "eigenvalue   Var θ meas/OU  meas/exact   Var v meas/OU  meas/exact"]
    position, velocity = var["position"], var["velocity"]
    for i, rho in enumerate(var["eigenvalues"]):
        lines.append(f"{rho:10.4g}   {position['ratio'][i]:13.3f}  {position['ratio_exact'][i]:10.3f}"
                     f"   {velocity['ratio'][i]:13.3f}  {velocity['ratio_exact'][i]:10.3f}")
    mean, diff = report["mean_trajectory_error"], report["diffusion_exponent"]
    lines.append(f"mean trajectory error (relative, first {mean['steps']} steps): "
                 f"Eq. 7 {mean['continuous']:.3g}, discrete {mean['discrete']:.3g}, "
                 f"noise floor {mean['noise_floor']:.3g}")
    lines.append(f"diffusion exponent over lags {diff['lags']}: measured {diff['measured']:.3f}, "
                 f"Eq. 17 {diff['predicted_eq17']:.3f}, OU {diff['predicted_ou']:.3f}, "
                 f"exact {diff['predicted_exact']:.3f}")
    return "\n".join(lines)
