"""Devices: --device validation, and every optimizer's step checked for what it would move
across devices on a GPU (lossnav.training.devices.DeviceAudit), on the CPU.

The audit treats tensors made without ``device=`` as host tensors and everything else as on the
device, so a plan built on the host and copied each step, a host read inside a step, or a host
tensor mixed into device arithmetic shows here as it would on CUDA."""
import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learning_rules import (
    Ballistic,
    BeliefAdam,
    DriftCompensated,
    NaturalGradient,
    OptimalQuadratic,
    RecedingHorizon,
    WeightUncertainty,
)
from lossnav.cli import main
from lossnav.training import load_data, make_model, train
from lossnav.training.devices import (
    DeviceAudit,
    DeviceError,
    available_devices,
    resolve_device,
    state_off_device,
)

OPTIMIZERS = {
    "mpc": lambda p: RecedingHorizon(p, lr=5e-3, metric="gradient_squares", replan_interval=4,
                                     trust_radius=0.05),
    "mpc_euclidean": lambda p: RecedingHorizon(p, lr=0.05, replan_interval=3, curvature="none"),
    "mpcw": lambda p: RecedingHorizon(p, lr=5e-3, metric="gradient_squares", replan_interval=4,
                                      trust_radius=0.05,
                                      weight_decay=0.2),
    "optimal_quadratic": lambda p: OptimalQuadratic(p, lr=0.1, damping=1.0, refresh_interval=2),
    "ballistic": lambda p: Ballistic(p, lr=1e-3),
    "ballistic_hutchinson": lambda p: Ballistic(p, lr=1e-3, curvature="hutchinson"),
    "natural_gradient": lambda p: NaturalGradient(p, lr=1e-3, metric="fisher"),
    "drift_compensated": lambda p: DriftCompensated(p, lr=0.05, weight_decay=0.1, damping=1.0),
    "belief_adam": lambda p: BeliefAdam(p, lr=3e-3, gamma=1e-3),
    "weight_uncertainty": lambda p: WeightUncertainty(p, lr=0.5, refresh_interval=2),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=1.0),
}


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == available_devices()[0]
    for bad in ("tpu", "", "gpu", 3):
        with pytest.raises(DeviceError, match="unknown device"):
            resolve_device(bad)
    for kind in ("cuda", "mps"):
        if kind not in available_devices():
            with pytest.raises(DeviceError, match="not available"):
                resolve_device(kind)


def test_the_audit_sees_what_a_gpu_would_refuse_or_wait_for():
    device_tensor = torch.ones(4)
    with DeviceAudit() as audit:
        host = torch.zeros(4)                      # no device=: a host tensor
        counter = torch.tensor(0.0)
        counter += 1
        int(counter)                               # a host scalar read: no sync
        assert audit.events == []
        host.to(device_tensor)                     # copied to the device
        float(device_tensor.sum())                 # the host waits for the device
        device_tensor + host                       # a device mismatch on a GPU
        device_tensor * counter                    # a 0-dim CPU scalar: allowed
        torch.zeros(4, device=device_tensor.device) + device_tensor
    assert audit.events == [("transfer", "to"), ("sync", "__float__"), ("mixed", "add")]


def _tiny(dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)
    inputs, targets = torch.randn(16, 6, dtype=dtype), torch.randint(0, 3, (16,))
    return model, inputs, targets


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_steps_keep_tensors_on_the_parameters_device_and_dtype(name):
    model, inputs, targets = _tiny(torch.float64)
    optimizer = OPTIMIZERS[name](model.parameters())
    closure, _ = _scalable_closure(optimizer, model, inputs, targets)
    per_step = []
    with DeviceAudit() as audit:
        for _ in range(9):
            syncs_before = getattr(optimizer, "host_syncs", 0)
            audit.mark()
            optimizer.step(closure)
            per_step.append((audit.since(), getattr(optimizer, "host_syncs", 0) - syncs_before))
        states = [*optimizer.state.values(), *(group.get("group_state",
                                                         {}) for group in optimizer.param_groups)]
        host_state = [(key, tuple(value.shape)) for state in states for key, value in state.items()
                      if isinstance(value, torch.Tensor) and audit.is_host(value)
                      and (value.dim() > 0 or not isinstance(optimizer,
                                                             torch.optim.Adam))]   # Adam's step: host
    assert all(kind != "mixed" for events, _ in per_step for kind, _ in events), per_step
    assert host_state == [], f"state made on the host (no device=): {host_state}"
    assert state_off_device(optimizer) == []
    floating = [v.dtype for s in states for v in s.values()
                if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() > 0]
    assert floating and set(floating) == {torch.float64}
    if isinstance(optimizer, RecedingHorizon):
        # host reads and copies only at the steps that re-planned (counted in host_syncs)
        for step, (events, synced) in enumerate(per_step):
            if synced == 0:
                assert events == [], f"step {step} moved data between host and device: {events}"
            else:
                # one read of the model (with the curvature estimate's check) and one copy
                # of the plan back: nothing else waits for the device at a re-plan
                assert synced == 1 and [kind for kind, _ in events] == ["sync", "transfer"], events
        assert optimizer.host_syncs == optimizer.replans == sum(synced for _, synced in per_step) >= 2
    else:             # every other rule, like torch's own Adam: nothing moves between host and device
        assert all(events == [] for events, _ in per_step), per_step


def _scalable_closure(optimizer, model, inputs, targets):
    """(closure, scale): the cross-entropy times scale["value"] (set it to NaN to poison a step)."""
    scale = {"value": 1.0}

    def closure():
        optimizer.zero_grad()
        loss = scale["value"] * torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        return loss
    return closure, scale


def _reads_per_step(optimizer, closure, steps, before=lambda step: None):
    """Host reads (syncs the audit sees) of each of ``steps`` steps; ``before(step)`` runs first."""
    counts = []
    with DeviceAudit() as audit:
        for step in range(steps):
            before(step)
            audit.mark()
            optimizer.step(closure)
            counts.append(sum(1 for kind, _ in audit.since() if kind == "sync"))
    return counts


def test_mpc_skips_a_non_finite_step_without_a_host_read():
    model, inputs, targets = _tiny(torch.float32)
    optimizer = OPTIMIZERS["mpc"](model.parameters())
    closure, scale = _scalable_closure(optimizer, model, inputs, targets)
    optimizer.step(closure)                                   # re-plan (step 0)
    before = [p.detach().clone() for p in model.parameters()]
    scale["value"] = float("nan")
    with DeviceAudit() as audit, pytest.warns(RuntimeWarning, match="non-finite"):
        optimizer.step(closure)                               # not a re-plan: skipped on the device
        assert audit.events == []
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=False))
        assert optimizer.skipped_steps == 1                   # read (a sync) only when asked
        scale["value"] = 1.0
        for _ in range(3):
            optimizer.step(closure)                           # the re-plan folds the pending count
    assert optimizer.skipped_steps == 1


def test_the_training_loop_reads_the_losses_once_per_epoch():
    data = load_data("modular", modulus=5, train_fraction=0.8)

    def syncs(batch):
        model = make_model("transformer", data, seed=0, width=8, layers=1, heads=2, hidden=16)
        optimizer = torch.optim.Adam(model.parameters())
        with DeviceAudit() as audit:
            history = train(model, optimizer, data, 1, batch=batch, progress=False)
        return history["steps"], len(audit.since("sync"))
    (few, few_syncs), (many, many_syncs) = syncs(10), syncs(2)
    assert many > 3 * few and few_syncs == many_syncs


@pytest.mark.parametrize("device, message", [("tpu", "unknown device 'tpu'"),
                                             *((kind,
                                                f"device '{kind}' is not available") for kind in ("cuda",
                                                                                                  "mps")
                                               if kind not in available_devices())])
def test_cli_device_errors(capsys, device, message):
    assert main(["train", "--data", "digits", "--model", "mlp", "--rule", "adam", "--epochs", "1", "--seed",
                 "0",
                 "--device", device]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


#: the most host reads a step makes (this tiny MLP, refresh steps included): MPC's re-plans only
MOST_READS = {name: 1 if name.startswith("mpc") else 0 for name in OPTIMIZERS}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_host_reads_per_step_stay_at_their_measured_counts(name):
    model, inputs, targets = _tiny(torch.float64)
    optimizer = OPTIMIZERS[name](model.parameters())
    closure, _ = _scalable_closure(optimizer, model, inputs, targets)
    counts = _reads_per_step(optimizer, closure, 8)
    assert max(counts) == MOST_READS[name], counts


RULES = {"ballistic": lambda p: Ballistic(p, lr=1e-3),
         "ballistic_eps0": lambda p: Ballistic(p, lr=1e-3, eps=0.0),
         "ballistic_paper": lambda p: Ballistic.paper(p, lr=1e-3),
         "ballistic_hutchinson": lambda p: Ballistic(p, lr=1e-3, curvature="hutchinson"),
         "ballistic_exact": lambda p: Ballistic(p, lr=1e-3, curvature="exact"),
         "natural_gradient": lambda p: NaturalGradient(p, lr=1e-3, metric="fisher"),
         "natural_gradient_callable": lambda p: NaturalGradient(p, lr=1e-3, metric=lambda q, g: g * g + 1.0),
         "optimal_quadratic": lambda p: OptimalQuadratic(p, lr=0.1, damping=1.0, refresh_interval=2),
         "optimal_quadratic_exact": lambda p: OptimalQuadratic(p, lr=0.1, damping=1.0, curvature="exact"),
         "drift_compensated": lambda p: DriftCompensated(p, lr=0.05, weight_decay=0.1, damping=1.0),
         "belief_adam": lambda p: BeliefAdam(p, lr=3e-3, gamma=1e-3),
         "belief_adam_floored": lambda p: BeliefAdam(p, lr=3e-3, gamma=1e-3, variance_floor=1e-3),
         "weight_uncertainty": lambda p: WeightUncertainty(p, lr=0.5, refresh_interval=2),
         "weight_uncertainty_capped": lambda p: WeightUncertainty(p, lr=0.5, refresh_interval=2,
                                                                  init_variance=0.1,
                                                                  max_variance=0.1),
         "mpc": OPTIMIZERS["mpc"], "mpcw": OPTIMIZERS["mpcw"], "mpc_euclidean": OPTIMIZERS["mpc_euclidean"]}


def _tensors(optimizer):
    """Every state tensor of ``optimizer`` by (parameter or group index, key), cloned."""
    found = {(f"group {i}", key): value.clone() for i, group in enumerate(optimizer.param_groups)
             for key, value in group["group_state"].items() if isinstance(value, torch.Tensor)}
    found.update({(f"parameter {i}", key): value.clone() for i, state in enumerate(optimizer.state.values())
                  for key, value in state.items() if isinstance(value, torch.Tensor)})
    return found


def _run_sequence(name, poison, steps, audit):
    """The rule ``name`` on the tiny MLP for ``steps`` steps, the steps in ``poison`` with a NaN
    loss; with ``audit`` under the DeviceAudit (the rehearsal of the GPU path), else plain."""
    model, inputs, targets = _tiny(torch.float64)
    optimizer = RULES[name](model.parameters())
    closure, scale = _scalable_closure(optimizer, model, inputs, targets)
    torch.manual_seed(11)                                    # the Hutchinson probes
    with DeviceAudit() if audit else contextlib.nullcontext():
        for step in range(steps):
            scale["value"] = float("nan") if step in poison else 1.0
            optimizer.step(closure)
    return model, optimizer


@pytest.mark.parametrize("name", list(RULES))
def test_the_rehearsed_gpu_path_and_the_cpu_path_give_the_same_state_bitwise(name):
    """One step path: a NaN-containing sequence under the audit (which sees every host read and
    transfer a GPU would make) and plainly on the CPU end in bitwise equal parameters and state."""
    poison = (2, 5)
    audited, audited_optimizer = _run_sequence(name, poison, 8, audit=True)
    plain, plain_optimizer = _run_sequence(name, poison, 8, audit=False)
    for a, b in zip(audited.parameters(), plain.parameters(), strict=False):
        assert torch.equal(a, b)
    audited_state, plain_state = _tensors(audited_optimizer), _tensors(plain_optimizer)
    assert audited_state.keys() == plain_state.keys()
    assert all(torch.equal(value, plain_state[key]) for key, value in audited_state.items())
    with pytest.warns(RuntimeWarning, match="non-finite values"):
        assert audited_optimizer.skipped_steps == plain_optimizer.skipped_steps == 2


@settings(max_examples=6, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(RULES)), good=st.integers(1, 5), seed=st.integers(0, 3))
def test_a_skipped_step_changes_no_state_tensor_and_no_counter(name, good, seed):
    """After ``good`` finite steps a NaN step leaves every parameter, every state tensor (the
    step counter, running averages, beliefs, clamp counts included) exactly as it was."""
    model, inputs, targets = _tiny(torch.float64)
    model[0].weight.data.add_(0.01 * seed)
    optimizer = RULES[name](model.parameters())
    closure, scale = _scalable_closure(optimizer, model, inputs, targets)
    torch.manual_seed(seed)
    for _ in range(good):
        optimizer.step(closure)
    before, params = _tensors(optimizer), [p.detach().clone() for p in model.parameters()]
    step = int(optimizer.param_groups[0]["group_state"]["step"])
    scale["value"] = float("nan")
    optimizer.step(closure)
    after = _tensors(optimizer)
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters(), strict=False))
    assert int(optimizer.param_groups[0]["group_state"]["step"]) == step
    changed = [key for key, value in after.items() if key[1] != "skipped_steps"
               and (key not in before or not torch.equal(value, before[key]))]
    # a re-plan measures a new local model (its plan and basis) before the flag is known
    replanned = {"plan", "basis", "complement_factor", "scale",
                 "previous"} if name.startswith("mpc") else set()
    assert [key for key in changed if key[1] not in replanned] == [], changed
    assert int(after[("group 0", "skipped_steps")]) == int(before.get(("group 0", "skipped_steps"), 0)) + 1


def test_the_device_check_script_passes_on_the_cpu(capsys):
    """benchmarks/device_check.py, rehearsed on the CPU (what it checks on a GPU): every rule's state
    on the device, no synchronisation outside MPC's re-plans (digits only, a few steps)."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.py"
    spec = importlib.util.spec_from_file_location("device_check", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads = torch.get_num_threads()
    try:
        assert script.main(["--device", "cpu", "--steps", "6", "--tasks", "digits-mlp", "--all-rules"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "device check passed" in out and out.count("on device") == 9
