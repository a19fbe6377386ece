"""Continual learning (issue 7): task construction, the sequence loop over training.train, the
metrics, the rules belief_adam / weight_uncertainty / adam_reset, the CLI's --tasks, resume."""
import json

import pytest
import torch

from lossnav import training
from lossnav.cli import main
from lossnav.training import Dataset, load_data, make_model, make_optimizer, train
from lossnav.training.continual import ResetAdam, sequence_metrics, train_sequence
from lossnav.training.loop import TrainingError, evaluate
from lossnav.training.tasks import TASK_KINDS, make_tasks, permutations

NEW_RULES = ("belief_adam", "weight_uncertainty", "adam_reset")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def tiny(digits):
    """A 400/200-example digits subset: every class present, a few steps per task."""
    return Dataset("tiny", digits.x_train[:400], digits.y_train[:400],
                   digits.x_test[:200], digits.y_test[:200], 10)


def parameters(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_split_tasks_hold_disjoint_pairs_relabelled_0_1(digits):
    tasks = make_tasks(digits, "split")
    assert [t.classes for t in tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    total_train = total_test = 0
    for task in tasks:
        assert task.data.classes == 2
        assert set(task.data.y_train.tolist()) == {0, 1} and set(task.data.y_test.tolist()) == {0, 1}
        for x, y, x_all, y_all in ((task.data.x_train, task.data.y_train, digits.x_train, digits.y_train),
                                   (task.data.x_test, task.data.y_test, digits.x_test, digits.y_test)):
            original = y_all[(y_all == task.classes[0]) | (y_all == task.classes[1])]
            assert torch.equal(y + task.classes[0], original)         # the task's examples, in order
            assert torch.equal(x, x_all[(y_all == task.classes[0]) | (y_all == task.classes[1])])
        total_train += len(task.data.y_train)
        total_test += len(task.data.y_test)
    assert (total_train, total_test) == (len(digits.y_train), len(digits.y_test))   # a partition
    assert len(make_tasks(digits, "split", 3)) == 3


def test_permuted_tasks_are_seeded_bijections(digits):
    tasks = make_tasks(digits, "permuted", 4, seed=7)
    features = digits.x_train[0].numel()
    assert torch.equal(tasks[0].data.x_train, digits.x_train)             # task 0 unpermuted
    for task in tasks:
        order = task.permutation
        assert torch.equal(torch.sort(order).values, torch.arange(features))   # a bijection
        assert torch.equal(task.data.x_test.reshape(len(digits.x_test), -1),
                           digits.x_test.reshape(len(digits.x_test), -1)[:, order])
        assert torch.equal(task.data.y_train, digits.y_train) and task.data.classes == 10
        assert task.data.x_train.shape == digits.x_train.shape
    assert len({tuple(t.permutation.tolist()) for t in tasks}) == 4          # all different
    again = make_tasks(digits, "permuted", 4, seed=7)
    assert all(torch.equal(a.permutation, b.permutation) for a, b in zip(tasks, again, strict=True))
    other = permutations(features, 4, seed=8)
    assert not torch.equal(other[1], tasks[1].permutation)


@pytest.mark.parametrize("call, error", [
    (lambda d: make_tasks(d, "rotated"), "unknown task sequence 'rotated'; valid: split, permuted"),
    (lambda d: make_tasks(d, "split", 6), "at most 5 tasks"),
    (lambda d: make_tasks(d, "split", 0), "positive integer"),
    (lambda d: make_tasks(d, "permuted", 2.5), "positive integer"),
    (lambda d: make_tasks(d, "permuted", 2, seed=-1), "non-negative"),
])
def test_bad_task_arguments(digits, call, error):
    with pytest.raises(ValueError, match=error):
        call(digits)


@pytest.mark.parametrize("rule", ["belief_adam", "weight_uncertainty"])
@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_new_rules_train_a_few_steps(tiny, rule, model_name):
    model = make_model(model_name, tiny, seed=0)
    start = parameters(model)
    history = train(model, make_optimizer(rule, model.parameters()), tiny, epochs=2, seed=0, progress=False)
    losses = [r["train_loss"] for r in history["epochs"]]
    assert history["steps"] == 24 and history["skipped_steps"] == 0
    assert all(torch.isfinite(torch.tensor(losses))) and losses[1] < losses[0]
    assert not torch.equal(parameters(model), start)


def test_belief_adam_default_is_its_documented_optimizer(tiny):
    from learning_rules import BeliefAdam, WeightUncertainty
    model = make_model("mlp", tiny, seed=0)
    optimizer = make_optimizer("belief_adam", model.parameters())
    assert isinstance(optimizer, BeliefAdam)
    assert optimizer.param_groups[0]["lr"] == training.RULES["belief_adam"].default_lr
    group = make_optimizer("weight_uncertainty", model.parameters()).param_groups[0]
    assert group["max_variance"] == 0.3 and group["lr"] == 1.0 and group["beta"] == 0.01
    assert isinstance(make_optimizer("weight_uncertainty", model.parameters()), WeightUncertainty)


def test_adam_reset_is_adam_until_a_boundary_then_restarts(tiny):
    runs = []
    for rule in ("adam", "adam_reset"):
        model = make_model("mlp", tiny, seed=1)
        optimizer = make_optimizer(rule, model.parameters())
        train(model, optimizer, tiny, 1, seed=1, progress=False)
        runs.append((model, optimizer))
    assert torch.equal(parameters(runs[0][0]), parameters(runs[1][0]))      # Adam without a boundary
    optimizer = runs[1][1]
    assert isinstance(optimizer, ResetAdam) and len(optimizer.state) > 0
    optimizer.task_boundary()
    assert len(optimizer.state) == 0
    # after a reset it behaves as a fresh Adam from the current weights
    model, fresh_model = runs[1][0], make_model("mlp", tiny, seed=1)
    fresh_model.load_state_dict(model.state_dict())
    fresh = torch.optim.Adam(fresh_model.parameters(), lr=1e-3)
    train(model, optimizer, tiny, 1, seed=2, progress=False)
    train(fresh_model, fresh, tiny, 1, seed=2, progress=False)
    assert torch.equal(parameters(model), parameters(fresh_model))


@pytest.mark.parametrize("rule", NEW_RULES)
def test_two_task_sequence_records_plasticity_and_forgetting(tiny, rule):
    tasks = make_tasks(tiny, "split", 2)
    model = make_model("mlp", tasks[0].data, seed=0)
    optimizer = make_optimizer(rule, model.parameters())
    seen = []
    sequence = train_sequence(model, optimizer, tasks, 2, seed=0, progress=False,
                              on_epoch=lambda index, record: seen.append((index, record["epoch"])))
    assert seen == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert [e["task"] for e in sequence] == ["task0", "task1"] and sequence[1]["classes"] == [2, 3]
    assert set(sequence[0]["epochs"][0]["accuracy"]) == {"task0"}
    assert set(sequence[1]["epochs"][-1]["accuracy"]) == {"task0", "task1"}
    metrics = sequence_metrics(sequence)
    final = [evaluate(model, t.data.x_test, t.data.y_test)[1] for t in tasks]   # the model after task 1
    assert metrics["accuracy_matrix"][1] == final
    matrix = metrics["accuracy_matrix"]
    assert metrics["plasticity"] == [matrix[0][0], matrix[1][1]]
    assert metrics["forgetting"] == [None, matrix[0][0] - matrix[1][0]]
    assert metrics["earlier_accuracy"] == [None, matrix[1][0]]
    assert metrics["final_average_accuracy"] == pytest.approx((matrix[1][0] + matrix[1][1]) / 2)
    assert all(0 <= a <= 100 for row in matrix for a in row)


def test_sequence_resume_is_bit_identical(tiny, tmp_path):
    tasks = make_tasks(tiny, "permuted", 3)

    def fresh():
        model = make_model("mlp", tasks[0].data, seed=4)
        return model, make_optimizer("adam_reset", model.parameters())

    model, optimizer = fresh()
    full = train_sequence(model, optimizer, tasks, 2, seed=4, progress=False)
    checkpoint = str(tmp_path / "seq.pt")

    class Stop(Exception):
        pass

    def stop_at(task, epoch):
        def callback(index, record):
            if (index, record["epoch"]) == (task, epoch):
                raise Stop
        return callback
    for task, epoch in ((1, 1), (1, 2)):        # inside a task, and at a task's end
        first, first_optimizer = fresh()
        with pytest.raises(Stop):
            train_sequence(first, first_optimizer, tasks, 2, seed=4, checkpoint=checkpoint, progress=False,
                           on_epoch=stop_at(task, epoch))
        torch.manual_seed(999)
        resumed, resumed_optimizer = fresh()
        again = train_sequence(resumed, resumed_optimizer, tasks, 2, seed=4, checkpoint=checkpoint,
                               resume=checkpoint, progress=False)
        assert torch.equal(parameters(resumed), parameters(model))

        def strip(sequence):
            return [[{k: v for k, v in r.items() if k != "wall_time"} for r in e["epochs"]] for e in sequence]
        assert strip(again) == strip(full)
    # a sequence's checkpoint with other settings, or a single-task checkpoint, is refused
    other, other_optimizer = fresh()
    with pytest.raises(TrainingError, match="epochs_per_task"):
        train_sequence(other, other_optimizer, tasks, 3, seed=4, resume=checkpoint, progress=False)
    single = str(tmp_path / "single.pt")
    train(other, other_optimizer, tiny, 1, checkpoint=single, progress=False)
    with pytest.raises(TrainingError, match="single-task run"):
        train_sequence(other, other_optimizer, tasks, 2, resume=single, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train_sequence(other, other_optimizer, [], 2)


def test_cli_tasks_json_out_and_errors(capsys, tmp_path):
    out, checkpoint = tmp_path / "out", tmp_path / "ckpt.pt"
    digits_mlp = ["train", "--data", "digits", "--model", "mlp"]
    base = [*digits_mlp, "--rule", "weight_uncertainty", "--seed", "0",
            "--epochs", "1", "--batch", "64", "--tasks", "split", "--task-count", "2"]
    assert main([*base, "--json", "--out", str(out), "--checkpoint", str(checkpoint)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"accuracy_matrix", "plasticity", "forgetting", "earlier_accuracy", "average_accuracy",
            "sequence", "final_forgetting", "final_average_accuracy", "tasks", "task_count",
            "epochs_per_task"} <= set(metrics)
    assert metrics["tasks"] == "split" and metrics["task_count"] == 2
    assert len(metrics["sequence"]) == 2
    assert set(metrics["sequence"][1]["epochs"][0]) == {"epoch", "train_loss", "wall_time", "accuracy",
                                                         "loss"}
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert (out / "continual.png").stat().st_size > 0
    # text table
    assert main([*base]) == 0
    text = capsys.readouterr().out
    assert "plasticity" in text and "task1" in text
    # the sequence's checkpoint is refused by a single-task run, and vice versa
    assert main([*digits_mlp, "--rule", "weight_uncertainty", "--seed", "0",
                 "--epochs", "2", "--batch", "64", "--resume", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert "tasks" in err and err.count("\n") == 1
    # bad --tasks: one line, exit 2, listing the choices
    assert main([*digits_mlp, "--rule", "adam", "--seed", "0", "--epochs", "1", "--tasks", "rotated"]) == 2
    err = capsys.readouterr().err
    assert "unknown task sequence 'rotated'; valid: split, permuted" in err and err.count("\n") == 1
    assert main([*base[:-1], "9"]) == 2
    err = capsys.readouterr().err
    assert "at most 5 tasks" in err and err.count("\n") == 1
    assert main([*digits_mlp, "--rule", "adam", "--seed", "0", "--epochs", "1", "--task-count", "2"]) == 2
    err = capsys.readouterr().err
    assert "--task-count needs --tasks" in err and err.count("\n") == 1
    assert main([*digits_mlp, "--rule", "lion", "--seed", "0", "--epochs", "1", "--tasks", "split"]) == 2
    assert "belief_adam, weight_uncertainty, adam_reset" in capsys.readouterr().err


def test_task_kinds_are_the_documented_ones():
    assert TASK_KINDS == ("split", "permuted")
