"""examples/grokking_collapse.py: the collapse experiment's core on a tiny configuration (issue 26)."""
import json
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import grokking_collapse as experiment  # noqa: E402

TINY = {"data": {"modulus": 11, "train_fraction": 0.6}, "model": {"width": 16, "layers": 1, "hidden": 32},
        "batch": 16}


def test_tiny_run_writes_the_json_and_the_figure(tmp_path):
    variants = list(experiment.VARIANTS)
    results = experiment.run_experiment(variants, [0], steps=8, settings=TINY)
    json_path, figure = experiment.write_outputs(results, tmp_path / "out", tmp_path / "fig.png")
    loaded = json.loads(json_path.read_text())
    assert loaded["settings"] == TINY and loaded["steps"] == 8
    assert list(loaded["variants"]) == variants
    for name, entry in loaded["variants"].items():
        assert entry["description"] == experiment.VARIANTS[name][0]
        assert [run["seed"] for run in entry["runs"]] == [0]
        for run in entry["runs"]:
            assert run["steps"] == [4, 8]                  # 66 training pairs, batch 16: 4 steps per epoch
            assert len(run["test_accuracy"]) == len(run["train_loss"]) == len(run["metric_scale"]) == 2
            assert all(0 <= accuracy <= 100 for accuracy in run["test_accuracy"])
            assert set(run) >= {"first_target_step", "lowest_after_target", "collapses", "final"}
            assert (run["metric_scale"][0] is None) == name.startswith("adamw")
    assert figure.stat().st_size > 1000
    assert len(experiment.summary_lines(loaded)) == len(variants)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="valid: mpcw"):
        experiment.run_experiment(["sgd"], [0], 4, settings=TINY)


def test_held_metric_stops_adapting():
    torch.manual_seed(0)
    weights = torch.nn.Parameter(torch.randn(6))
    optimizer = experiment.HeldMetricMPC([weights], hold_below=1e9, lr=0.01, **experiment.MPC_OPTIONS)

    def closure():
        optimizer.zero_grad()
        loss = (weights ** 4).sum() + weights.sum()
        loss.backward()
        return loss
    optimizer.step(closure)
    assert optimizer.held_at == 1
    head = optimizer.param_groups[0]["group_state"]
    held = head["second_moment"].clone(), head["moment_updates"].clone()
    for _ in range(5):
        optimizer.step(closure)
    assert torch.equal(head["second_moment"], held[0]) and head["moment_updates"] == held[1]
    with pytest.raises(ValueError, match="hold_below"):
        experiment.HeldMetricMPC([weights], hold_below=0.0, lr=0.01)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=1, max_size=30))
def test_collapse_statistics(accuracies):
    steps = list(range(1, len(accuracies) + 1))
    stats = experiment.collapse_statistics(steps, accuracies)
    reached = [i for i, a in enumerate(accuracies) if a >= 90]
    if not reached:
        assert stats["first_target_step"] is None and stats["collapses"] == 0
        return
    after = accuracies[reached[0]:]
    assert stats["first_target_step"] == steps[reached[0]] and stats["lowest_after_target"] == min(after)
    dips = "".join("L" if a < 50 else "H" for a in after)
    assert stats["collapses"] == dips.count("HL")
    assert stats["final"] == accuracies[-1]
