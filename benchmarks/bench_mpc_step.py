"""Where an MPC step's time goes, against Adam's, measured side by side (issue 18's per-step goal).

    python benchmarks/bench_mpc_step.py [--tasks digits-mlp,mnist1d-cnn,modular-transformer] [--steps 400]

For each task of ``bench_train.py --tuning`` (its small sizes) the registered ``mpc`` rule and
torch's Adam train the same model from the same seed on the same minibatches, interleaved
(Adam, mpc, Adam, mpc: load hits both alike), one thread. Printed per task, in milliseconds:

* Adam's step (closure included) and the forward + backward alone;
* mpc's plain step (between re-plans) and its ratio to Adam's step;
* mpc's re-plan step, split into the Hessian-vector products (the two batched calls of
  :func:`learning_rules.local_model.batched_hvp`), the plan (:func:`subspace_plan.plan_path`:
  the closed form, or IPOPT when the trust region binds) and the rest (the closure with its
  graph, Gram–Schmidt, the one host read);
* the mean over all steps, the ratio to Adam's (the goal: ≤ 1.15), and how much of the excess
  each part accounts for.

``--tolerance e`` adds a row ``mpc e=…``: the registered mpc with the adaptive schedule
(``replan_tolerance=e``, :mod:`learning_rules.plan_schedule`): its re-plans are the measured
models, ``reused`` the intervals planned on the last one. ``loss``: the mean training loss of the
last quarter of the steps (equal accuracy: compare it with mpc's).

The planner NLP is built before timing (it is built once per process and shared). Medians over
steps for the plain steps, means for the re-plans (few).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import tuning  # noqa: E402  (the sizes of bench_train.py --tuning)

import learning_rules.local_model as local_model  # noqa: E402
import learning_rules.receding_horizon as receding_horizon  # noqa: E402
import learning_rules.subspace_plan as subspace_plan  # noqa: E402
from learning_rules import RecedingHorizon  # noqa: E402
from lossnav.training import load_data, make_model, make_optimizer  # noqa: E402
from lossnav.training.compare import TASKS  # noqa: E402
from lossnav.training.rules import MPC_OPTIONS  # noqa: E402

TIMERS = {"hvp": 0.0, "plan": 0.0}


def timed(function, key):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            TIMERS[key] += time.perf_counter() - started
    return wrapper


def run(task, rule, steps, lr):
    data_name, model_name = TASKS[task]
    setting = tuning.SIZES["small"]["settings"][task]
    data = load_data(data_name, **setting.data)
    model = make_model(model_name, data, seed=0, **setting.model)
    if rule.startswith("mpc e="):
        tolerance = float(rule[len("mpc e="):])
        optimizer = RecedingHorizon(model.parameters(), lr=lr, replan_tolerance=tolerance, **MPC_OPTIONS)
    else:
        optimizer = make_optimizer(rule, model.parameters(), lr)
    generator = torch.Generator().manual_seed(0)
    batches = len(data.x_train) // setting.batch
    plain, replans, parts, passes, losses = [], [], [], [], []
    while len(plain) + len(replans) < steps:
        order = torch.randperm(len(data.x_train), generator=generator)
        for index in range(min(batches, steps - len(plain) - len(replans))):
            rows = order[index * setting.batch:(index + 1) * setting.batch]
            inputs, targets = data.x_train[rows], data.y_train[rows]

            def closure(inputs=inputs, targets=targets):
                optimizer.zero_grad()
                loss = F.cross_entropy(model(inputs), targets)
                loss.backward()
                return loss
            before, plans = dict(TIMERS), getattr(optimizer, "replans", 0)
            started = time.perf_counter()
            losses.append(optimizer.step(closure))
            elapsed = time.perf_counter() - started
            if getattr(optimizer, "replans", 0) > plans:
                replans.append(elapsed)
                parts.append({key: TIMERS[key] - before[key] for key in TIMERS})
            else:
                plain.append(elapsed)
            started = time.perf_counter()
            model.zero_grad()
            F.cross_entropy(model(inputs), targets).backward()
            passes.append(time.perf_counter() - started)
    return {"plain": statistics.median(plain), "mean": statistics.fmean(plain + replans),
            "replan": statistics.fmean(replans) if replans else 0.0, "replans": len(replans),
            "steps": len(plain) + len(replans), "pass": statistics.median(passes),
            "loss": float(torch.stack([loss.detach() for loss in losses[-(len(losses) // 4):]]).mean()),
            "reused": getattr(optimizer, "reused_models", 0),
            **{key: statistics.fmean(p[key] for p in parts) if parts else 0.0 for key in TIMERS}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(tuning.TASKS))
    parser.add_argument("--steps", type=int, default=400, help="steps per run (default 400: 10 re-plans)")
    parser.add_argument("--tolerance", type=float, help="add the adaptive schedule, replan_tolerance=e")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    local_model.batched_hvp = timed(local_model.batched_hvp, "hvp")
    receding_horizon.subspace_plan.plan_path = timed(subspace_plan.plan_path, "plan")
    subspace_plan.shared_planner(4, 4, 3, 50, None)          # the registered mpc's planner, built untimed
    lrs = {"digits-mlp": 0.005, "mnist1d-cnn": 0.0158, "modular-transformer": 0.0158}
    print(f"{'task':20s} {'rule':10s} {'adam':>7s} {'fwd+bwd':>7s} {'plain':>7s} {'×adam':>6s} "
          f"{'re-plan':>8s} {'HVPs':>7s} {'plan':>7s} {'rest':>7s} {'plans':>5s} {'reused':>6s} "
          f"{'mean':>7s} {'×adam':>6s} {'loss':>6s} {'adam':>6s}   excess: plain / HVPs / plan / rest")
    rules = ["mpc"] + ([f"mpc e={args.tolerance:g}"] if args.tolerance else [])
    for task in args.tasks.split(","):
        runs = {}
        for rule in ["adam", *rules] * 2:                     # interleaved; the second of each is kept
            runs[rule] = run(task, rule, args.steps, lrs[task] if rule.startswith("mpc") else 3.16e-3)
        for rule in rules:
            print_row(task, rule, runs["adam"], runs[rule])


def print_row(task, rule, adam_run, mpc):
    adam = adam_run["mean"]
    rest = mpc["replan"] - mpc["hvp"] - mpc["plan"]
    share = mpc["replans"] / mpc["steps"]
    excess = mpc["mean"] - adam
    pieces = [(1 - share) * (mpc["plain"] - adam), share * mpc["hvp"], share * mpc["plan"],
              share * (rest - adam)]
    print(f"{task:20s} {rule:10s} {1e3 * adam:7.3f} {1e3 * adam_run['pass']:7.3f} {1e3 * mpc['plain']:7.3f} "
          f"{mpc['plain'] / adam:6.2f} {1e3 * mpc['replan']:8.2f} {1e3 * mpc['hvp']:7.2f} "
          f"{1e3 * mpc['plan']:7.2f} {1e3 * rest:7.2f} {mpc['replans']:5d} {mpc['reused']:6d} "
          f"{1e3 * mpc['mean']:7.3f} {mpc['mean'] / adam:6.2f} {mpc['loss']:6.3f} {adam_run['loss']:6.3f}   "
          + " / ".join(f"{100 * p / excess:3.0f}%" if excess > 0 else "—" for p in pieces), flush=True)


if __name__ == "__main__":
    main()
