"""Devices: --device validation, and every optimizer's step checked for what it would move
across devices on a GPU (lossnav.training.devices.DeviceAudit), on the CPU.

The audit treats tensors made without ``device=`` as host tensors and everything else as on the
device, so a plan built on the host and copied each step, a host read inside a step, or a host
tensor mixed into device arithmetic shows here as it would on CUDA."""
import pytest
import torch

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
    "mpc": lambda p: RecedingHorizon(p, lr=5e-3, metric="gradient_squares", replan_interval=4, trust_radius=0.05),
    "mpc_euclidean": lambda p: RecedingHorizon(p, lr=0.05, replan_interval=3, curvature="none"),
    "mpcw": lambda p: RecedingHorizon(p, lr=5e-3, metric="gradient_squares", replan_interval=4, trust_radius=0.05,
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


def _device_checked(optimizer):
    optimizer.device_checks = True            # what a GPU gets by default (device_checks None)
    return optimizer


OPTIMIZERS["ballistic_device_checks"] = lambda p: _device_checked(Ballistic(p, lr=1e-3))
OPTIMIZERS["natural_gradient_device_checks"] = lambda p: _device_checked(NaturalGradient(p, lr=1e-3, metric="fisher"))
OPTIMIZERS["optimal_quadratic_device_checks"] = lambda p: _device_checked(
    OptimalQuadratic(p, lr=0.1, damping=1.0, refresh_interval=2))
OPTIMIZERS["drift_compensated_device_checks"] = lambda p: _device_checked(
    DriftCompensated(p, lr=0.05, weight_decay=0.1, damping=1.0))
OPTIMIZERS["ballistic_hutchinson_device_checks"] = lambda p: _device_checked(Ballistic(p, lr=1e-3, curvature="hutchinson"))
OPTIMIZERS["belief_adam_device_checks"] = lambda p: _device_checked(BeliefAdam(p, lr=3e-3, gamma=1e-3))
OPTIMIZERS["weight_uncertainty_device_checks"] = lambda p: _device_checked(
    WeightUncertainty(p, lr=0.5, refresh_interval=2))


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
        host_state = [(key, tuple(value.shape)) for state in optimizer.state.values() for key, value in state.items()
                      if isinstance(value, torch.Tensor) and value.dim() > 0 and audit.is_host(value)]
    assert all(kind != "mixed" for events, _ in per_step for kind, _ in events), per_step
    assert host_state == [], f"state made on the host (no device=): {host_state}"
    assert state_off_device(optimizer) == []
    floating = [v.dtype for s in optimizer.state.values() for v in s.values()
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
    elif name in ("adam", "adamw") or name.endswith("_device_checks"):
        assert all(events == [] for events, _ in per_step)      # torch's own: the reference point
    else:
        assert all(kind != "transfer" for events, _ in per_step for kind, _ in events), per_step


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
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
        assert optimizer.skipped_steps == 1                   # read (a sync) only when asked
        scale["value"] = 1.0
        for _ in range(3):
            optimizer.step(closure)                           # the re-plan folds the pending count
    assert optimizer.skipped_steps == 1 and int(optimizer.state[next(model.parameters())]["pending_skips"]) == 0


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
                                             *((kind, f"device '{kind}' is not available") for kind in ("cuda", "mps")
                                               if kind not in available_devices())])
def test_cli_device_errors(capsys, device, message):
    assert main(["train", "--data", "digits", "--model", "mlp", "--rule", "adam", "--epochs", "1", "--seed", "0",
                 "--device", device]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("name", ["belief_adam", "weight_uncertainty"])
def test_host_reads_per_step_do_not_grow_with_the_number_of_parameters(name):
    """BeliefAdam tested each parameter's beliefs and read its variance-floor count on its own
    (2 + 2P host reads per step, 10 for this 4-tensor model); now once for all of them."""
    def reads(layers):
        torch.manual_seed(0)
        model = torch.nn.Sequential(*[torch.nn.Linear(6, 6) for _ in range(layers)]).to(torch.float64)
        inputs = torch.randn(16, 6, dtype=torch.float64)
        optimizer = OPTIMIZERS[name](model.parameters())

        def closure():
            optimizer.zero_grad()
            loss = model(inputs).pow(2).mean()
            loss.backward()
            return loss
        return max(_reads_per_step(optimizer, closure, 4))
    assert reads(1) == reads(6) <= 6


#: the most host reads a step makes (this tiny MLP, refresh steps included), as measured: the
#: finite-value checks that decide a skip (docs/training.md, "Devices"); a new read fails here
MOST_READS = {"mpc": 1, "mpc_euclidean": 1, "mpcw": 1, "optimal_quadratic": 2, "ballistic": 1, "ballistic_hutchinson": 3,
              "natural_gradient": 2, "drift_compensated": 2, "belief_adam": 3, "weight_uncertainty": 5,
              "adam": 0, "adamw": 0, "ballistic_device_checks": 0, "natural_gradient_device_checks": 0,
              "optimal_quadratic_device_checks": 0, "drift_compensated_device_checks": 0,
              "belief_adam_device_checks": 0, "weight_uncertainty_device_checks": 0,
              "ballistic_hutchinson_device_checks": 0}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_host_reads_per_step_stay_at_their_measured_counts(name):
    model, inputs, targets = _tiny(torch.float64)
    optimizer = OPTIMIZERS[name](model.parameters())
    closure, _ = _scalable_closure(optimizer, model, inputs, targets)
    counts = _reads_per_step(optimizer, closure, 8)
    assert max(counts) == MOST_READS[name], counts


DEVICE_CHECKED = {"ballistic": lambda p: Ballistic(p, lr=1e-3),
                  "ballistic_eps0": lambda p: Ballistic(p, lr=1e-3, eps=0.0),
                  "ballistic_hutchinson": lambda p: Ballistic(p, lr=1e-3, curvature="hutchinson"),
                  "natural_gradient": lambda p: NaturalGradient(p, lr=1e-3, metric="fisher"),
                  "optimal_quadratic": lambda p: OptimalQuadratic(p, lr=0.1, damping=1.0, refresh_interval=2),
                  "drift_compensated": lambda p: DriftCompensated(p, lr=0.05, weight_decay=0.1, damping=1.0),
                  "belief_adam": lambda p: BeliefAdam(p, lr=3e-3, gamma=1e-3),
                  "weight_uncertainty": lambda p: WeightUncertainty(p, lr=0.5, refresh_interval=2),
                  # the floor and the cap bind: the clamp counts are compared too
                  "belief_adam_floored": lambda p: BeliefAdam(p, lr=3e-3, gamma=1e-3, variance_floor=1e-3),
                  "weight_uncertainty_capped": lambda p: WeightUncertainty(p, lr=0.5, refresh_interval=2,
                                                                           init_variance=0.1, max_variance=0.1)}


def _run(factory, device_checks, steps=6, poison=()):
    model, inputs, targets = _tiny(torch.float64)
    optimizer = factory(model.parameters())
    optimizer.device_checks = device_checks
    closure, scale = _scalable_closure(optimizer, model, inputs, targets)
    def poison_some(step):
        scale["value"] = float("nan") if step in poison else 1.0
    return model, optimizer, _reads_per_step(optimizer, closure, steps, poison_some)


@pytest.mark.parametrize("name", list(DEVICE_CHECKED))
def test_device_side_checks_read_nothing_and_give_the_host_checks_path(name):
    """With device_checks (the default off the CPU) the running-average steps of Ballistic,
    NaturalGradient and OptimalQuadratic/DriftCompensated (Hutchinson) make no host read, and on
    finite data they are the host-checked steps exactly."""
    host, host_optimizer, host_reads = _run(DEVICE_CHECKED[name], False)
    device, device_optimizer, device_reads = _run(DEVICE_CHECKED[name], True)
    assert min(host_reads) >= 1 and device_reads == [0] * 6
    for a, b in zip(host.parameters(), device.parameters()):
        assert torch.equal(a, b)
    for counts in ("variance_floors", "variance_clamps"):          # kept as device integers there
        if hasattr(host_optimizer, counts):
            assert getattr(host_optimizer, counts) == getattr(device_optimizer, counts)


@pytest.mark.parametrize("name", list(DEVICE_CHECKED))
def test_a_non_finite_step_is_skipped_on_the_device_and_warned_when_counted(name):
    clean, _, _ = _run(DEVICE_CHECKED[name], True, steps=2)
    model, optimizer, reads = _run(DEVICE_CHECKED[name], True, steps=4, poison=(2, 3))
    assert reads == [0] * 4
    for a, b in zip(clean.parameters(), model.parameters()):      # the NaN steps added nothing
        assert torch.equal(a, b)
    key = next((key for prefix, key in (("ballistic_h", "hessian_diag"), ("ballistic", "exp_avg_sq"),
                                        ("natural_gradient", "fisher"),
                                        ("belief_adam", "variance"), ("weight_uncertainty", "variance"))
                if name.startswith(prefix)), "hessian_diag")        # the running statistic kept
    assert all(torch.isfinite(optimizer.state[p][key]).all() for p in model.parameters())
    with pytest.warns(RuntimeWarning, match="non-finite values"):
        assert optimizer.skipped_steps == 2                        # read (and warned) when asked
    assert optimizer.skipped_steps == 2 and optimizer.state_dict()["state"][0]["skipped_steps"] == 2


def test_device_checks_takes_none_or_a_bool():
    optimizer = Ballistic([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    assert optimizer.device_checks is None and not optimizer._on_device_checks(optimizer.param_groups[0]["params"])
    optimizer.device_checks = True
    assert optimizer._on_device_checks(optimizer.param_groups[0]["params"])
    for bad in ("no", 1, 0.0):
        with pytest.raises(ValueError, match="device_checks"):
            optimizer.device_checks = bad
    assert optimizer.device_checks is True


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
