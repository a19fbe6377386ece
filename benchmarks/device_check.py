"""Device check (issue 18): mpc, mpcw, adam and adamw on the three tasks for a few hundred steps on a GPU.

    python benchmarks/device_check.py [--device cuda] [--steps 300] [--all-rules]
    python benchmarks/device_check.py --device cpu --steps 20      # the same checks on the CPU

Per task and rule it prints the mean time per step (the device synchronised before and after
the timed steps), the re-plans and the host synchronisations: on CUDA those that
``torch.cuda.set_sync_debug_mode("warn")`` reports, on the CPU those that
:class:`lossnav.training.devices.DeviceAudit` sees (the reads a GPU would wait for), split
into steps that re-planned and steps that did not. It exits 1 if any tensor of an optimizer's
state is off the parameters' device (0-dim CPU step counters, as torch keeps them, allowed),
or a tensor of a rule's group state (``group["group_state"]``: its step and skip counters among
them) is, or if a step of one of our rules synchronised outside a re-plan. ``--all-rules`` adds
ballistic, natural_gradient, optimal_quadratic, belief_adam and weight_uncertainty, which take
the one masked step path of ``learning_rules.base`` (the same on every device) and must not
synchronise at all. Tasks: digits-MLP (batch 32), mnist1d-CNN
(batch 64) and the modular-addition transformer at full size (p = 97, 30 % of the pairs,
2 layers of width 128, batch 512). Without CUDA and without ``--device`` it says so and exits 0.
On one GPU it takes about a minute (well under 5).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lossnav.training import load_data, make_model, make_optimizer  # noqa: E402
from lossnav.training.devices import DeviceAudit, DeviceError, resolve_device, state_off_device  # noqa: E402

TASKS = {"digits-mlp": ("digits", {}, "mlp", {}, 32),
         "mnist1d-cnn": ("mnist1d", {}, "cnn", {}, 64),
         "modular-transformer": ("modular", {"modulus": 97, "train_fraction": 0.3}, "transformer", {}, 512)}
RULES = ("adam", "adamw", "mpc", "mpcw")  # adam first: the others' step times are relative to it
#: the other rules of learning_rules (``--all-rules``): their one step path decides on the device,
#: so a step of theirs must not synchronise at all
OTHER_RULES = ("ballistic", "natural_gradient", "optimal_quadratic", "belief_adam", "weight_uncertainty")


@contextlib.contextmanager
def sync_counter(device):
    """Yields a function returning the host synchronisations seen so far."""
    if device.type == "cuda":
        previous = torch.cuda.get_sync_debug_mode()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield lambda: sum("synchroniz" in str(w.message) for w in caught)
            finally:
                torch.cuda.set_sync_debug_mode(previous)
    else:
        with DeviceAudit() as audit:
            yield lambda: len([e for e in audit.events if e[0] == "sync"])


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def check(task, rule, device, steps):
    data_name, data_options, model_name, model_options, batch = TASKS[task]
    data = load_data(data_name, **data_options)
    model = make_model(model_name, data, seed=0, **model_options).to(device)
    optimizer = make_optimizer(rule, model.parameters())
    x, y = data.x_train.to(device), data.y_train.to(device)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, len(x), (batch,), generator=generator).to(device) for _ in range(steps)]
    inputs = [(x[index], y[index]) for index in batches]

    def step(i):
        def closure():
            optimizer.zero_grad()
            loss = F.cross_entropy(model(inputs[i][0]), inputs[i][1])
            loss.backward()
            return loss
        return optimizer.step(closure)
    in_replans = outside = 0
    with sync_counter(device) as count:                # on the CPU the audit must see the state being made
        step(0)                                        # state, planners and kernels built outside the timing
        synchronize(device)
        started = time.perf_counter()
        for i in range(1, steps):
            before, plans = count(), getattr(optimizer, "host_syncs", 0)
            step(i)
            seen = count() - before
            if getattr(optimizer, "host_syncs", 0) > plans:
                in_replans += seen
            else:
                outside += seen
        synchronize(device)
        elapsed = time.perf_counter() - started
    off = state_off_device(optimizer) + group_state_off_device(optimizer)
    return {"step_ms": 1e3 * elapsed / (steps - 1), "replans": getattr(optimizer, "replans", 0),
            "syncs_at_replans": in_replans, "syncs_elsewhere": outside, "off_device": off,
            "parameters": sum(p.numel() for p in model.parameters())}


def group_state_off_device(optimizer):
    """(group index, key) of the group-state tensors not on the group's parameters' device."""
    return [(index, key) for index, group in enumerate(optimizer.param_groups)
            for key, value in group.get("group_state", {}).items()
            if isinstance(value,
                          torch.Tensor) and group["params"] and value.device != group["params"][0].device]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="cuda (default when available), cuda:N, mps or cpu")
    parser.add_argument("--steps", type=int, default=300, help="steps per task and rule (default 300)")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--all-rules", action="store_true", help=f"also {', '.join(OTHER_RULES)}")
    args = parser.parse_args(argv)
    if args.device is None and not torch.cuda.is_available():
        print("device check: no CUDA device on this machine; skipped "
              "(--device cpu runs the same checks here)")
        return 0
    try:
        device = resolve_device(args.device or "cuda")
    except DeviceError as exc:
        print(f"device check: {exc}", file=sys.stderr)
        return 2
    if device.type == "cpu":
        torch.set_num_threads(1)                   # small models: threads only spin on a shared machine
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device check on {device} ({name}), {args.steps} steps per task and rule, "
          f"torch {torch.__version__}")
    print(f"{'task':20s} {'rule':18s} {'params':>8s} {'ms/step':>8s} {'×adam':>6s} {'plans':>5s} "
          f"{'syncs@plan':>10s} {'syncs else':>10s}  state")
    failures = []
    started = time.perf_counter()
    for task in args.tasks.split(","):
        adam = None
        for rule in RULES + (OTHER_RULES if args.all_rules else ()):
            row = check(task, rule, device, args.steps)
            adam = row["step_ms"] if rule == "adam" else adam
            ratio = f"{row['step_ms'] / adam:6.2f}" if adam else "     —"
            state = "on device" if not row["off_device"] else f"OFF DEVICE: {row['off_device'][:3]}"
            print(f"{task:20s} {rule:18s} {row['parameters']:8d} {row['step_ms']:8.2f} {ratio} "
                  f"{row['replans']:5d} "
                  f"{row['syncs_at_replans']:10d} {row['syncs_elsewhere']:10d}  {state}", flush=True)
            if row["off_device"]:
                failures.append(f"{task} {rule}: optimizer state off the device: {row['off_device'][:3]}")
            if row["syncs_elsewhere"] and rule not in ("adam", "adamw"):
                failures.append(f"{task} {rule}: {row['syncs_elsewhere']} host synchronisations "
                                "outside re-plans")
    print(f"total {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"FAIL {failure}")
    print("device check " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
