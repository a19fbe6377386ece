"""lossnav train and the training package: a few steps per rule, bad input, bit-identical resume,
the datasets (local, no download, RNG untouched), the CLI outputs."""
import json
import random

import numpy as np
import pytest
import torch

from lossnav import training
from lossnav.cli import main
from lossnav.training import Dataset, load_data, make_model, make_optimizer, train
from lossnav.training.loop import TrainingError

BUILTIN_RULES = ("mpc", "optimal_quadratic", "ballistic", "natural_gradient", "sgd", "adam")
ADAM_MLP_DIGITS = ["train", "--data", "digits", "--model", "mlp", "--rule", "adam"]   # a valid start


@pytest.fixture(scope="module")
def tiny():
    data = load_data("digits")
    return Dataset("tiny", data.x_train[:160], data.y_train[:160], data.x_test[:100], data.y_test[:100], 10)


def parameters(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_registries_hold_the_builtin_names():
    assert set(BUILTIN_RULES) <= set(training.RULES)
    assert {"digits", "mnist1d"} <= set(training.DATASETS) and {"mlp", "cnn"} <= set(training.MODELS)


@pytest.mark.parametrize("rule", BUILTIN_RULES)
@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_a_few_steps_per_rule(tiny, rule, model_name):
    model = make_model(model_name, tiny, seed=0)
    start = parameters(model)
    optimizer = make_optimizer(rule, model.parameters())
    history = train(model, optimizer, tiny, epochs=1, seed=0, batch=32, progress=False)
    record = history["epochs"][0]
    assert history["steps"] == 5
    assert np.isfinite(record["train_loss"]) and 0 <= record["test_accuracy"] <= 100
    assert record["wall_time"] > 0
    assert history["fallbacks"] == 0 and history["skipped_steps"] == 0
    assert not torch.equal(parameters(model), start)


def test_extra_evaluation_sets_are_recorded(tiny):
    model = make_model("mlp", tiny, seed=0)
    optimizer = make_optimizer("sgd", model.parameters())
    history = train(model, optimizer, tiny, 1, progress=False,
                    evaluations={"seen": (tiny.x_train, tiny.y_train)})
    loss, accuracy = training.loop.evaluate(model, tiny.x_train, tiny.y_train)
    assert history["epochs"][0]["evaluations"] == {"seen": {"loss": loss, "accuracy": accuracy}}


def test_registering_a_rule_needs_no_rewrite(tiny):
    training.register_rule("sgd_half", lambda params, lr: torch.optim.SGD(params, lr=lr / 2), 0.1)
    try:
        model = make_model("mlp", tiny, seed=0)
        history = train(model, make_optimizer("sgd_half", model.parameters()), tiny, 1, progress=False)
        assert history["steps"] == 5
    finally:
        del training.RULES["sgd_half"]


@pytest.mark.parametrize("rule", ["mpc", "adam", "optimal_quadratic"])
def test_resume_is_bit_identical(tiny, tmp_path, rule):
    def fresh():
        model = make_model("mlp", tiny, seed=3)
        return model, make_optimizer(rule, model.parameters())

    model, optimizer = fresh()
    full = train(model, optimizer, tiny, epochs=3, seed=3, progress=False)
    checkpoint = tmp_path / "run.pt"
    first, first_optimizer = fresh()
    train(first, first_optimizer, tiny, epochs=1, seed=3, checkpoint=str(checkpoint), progress=False)
    torch.manual_seed(12345)                       # the resumed run must not depend on the RNG now
    resumed, resumed_optimizer = fresh()
    history = train(resumed, resumed_optimizer, tiny, epochs=3, seed=3, resume=str(checkpoint),
                    progress=False)
    assert torch.equal(parameters(resumed), parameters(model))
    drop = ("wall_time",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in history["epochs"]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in full["epochs"]]


def test_bad_checkpoint_and_bad_arguments(tiny, tmp_path):
    model = make_model("mlp", tiny, seed=0)
    optimizer = make_optimizer("adam", model.parameters())
    with pytest.raises(TrainingError, match="does not exist"):
        train(model, optimizer, tiny, 1, resume=str(tmp_path / "missing.pt"), progress=False)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(TrainingError, match="not a"):
        train(model, optimizer, tiny, 1, resume=str(tmp_path / "junk.pt"), progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train(model, optimizer, tiny, 0, progress=False)
    with pytest.raises(ValueError, match="batch"):
        train(model, optimizer, tiny, 1, batch=1000, progress=False)
    for call, message in ((lambda: load_data("cifar"), "digits, mnist1d"),
                          (lambda: make_model("resnet", tiny), "mlp, cnn"),
                          (lambda: make_optimizer("lbfgs", model.parameters()), "mpc, optimal_quadratic")):
        with pytest.raises(ValueError, match=message):
            call()


def test_mnist1d_is_generated_locally_without_touching_the_rngs(monkeypatch):
    import requests
    monkeypatch.setattr(requests, "get", lambda *a, **k: pytest.fail("mnist1d tried to download"))
    training.load_data.cache_clear()
    random.seed(1)
    np.random.seed(1)
    expected = (random.random(), np.random.rand())
    random.seed(1)
    np.random.seed(1)
    data = load_data("mnist1d")
    assert (random.random(), np.random.rand()) == expected
    assert data.x_train.shape == (4000, 1, 40) and data.x_test.shape == (1000, 1, 40)
    assert set(data.y_train.tolist()) == set(range(10))


@pytest.mark.parametrize("argv, message", [
    (["--data", "cifar", "--model", "mlp", "--rule", "adam"],
     "unknown dataset 'cifar'; valid: digits, mnist1d"),
    (["--data", "digits", "--model", "vit", "--rule", "adam"],
     "unknown model 'vit'; valid: mlp, cnn"),
    (["--data", "digits", "--model", "mlp", "--rule", "lion"],
     "unknown rule 'lion'; valid: mpc, optimal_quadratic"),
])
def test_cli_unknown_names_print_the_choices(capsys, argv, message):
    assert main(["train", *argv, "--epochs", "1", "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_bad_numbers_exit_2(capsys):
    assert main([*ADAM_MLP_DIGITS, "--epochs", "0", "--seed", "0"]) == 2
    assert main([*ADAM_MLP_DIGITS, "--epochs", "1", "--seed", "-1"]) == 2
    assert main([*ADAM_MLP_DIGITS, "--epochs", "1", "--seed", "0", "--lr", "-1"]) == 2


def test_cli_json_out_and_resume(capsys, tmp_path):
    out, checkpoint = tmp_path / "out", tmp_path / "ckpt.pt"
    base = ["train", "--data", "digits", "--model", "mlp", "--rule", "mpc", "--seed", "1", "--batch", "128"]
    assert main([*base, "--epochs", "1", "--checkpoint", str(checkpoint)]) == 0
    capsys.readouterr()
    assert main([*base, "--epochs", "2", "--resume", str(checkpoint), "--json", "--out", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert [r["epoch"] for r in metrics["epochs"]] == [1, 2]
    assert {"train_loss", "test_accuracy", "wall_time"} <= set(metrics["epochs"][0])
    assert metrics["fallbacks"] == 0 and metrics["replans"] >= 1 and metrics["rule"] == "mpc"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert (out / "loss.png").stat().st_size > 0 and (out / "accuracy.png").stat().st_size > 0
    # a checkpoint of another run is refused (one line, exit 1)
    assert main([*ADAM_MLP_DIGITS, "--seed", "1", "--batch", "128", "--epochs", "2",
                 "--resume", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert "different settings" in err and err.count("\n") == 1
