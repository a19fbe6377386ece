"""The modular-addition task (Power et al. 2022): generated on the spot and deterministic, the
decoder-style transformer, every rule on it, bit-identical resume, the CLI."""
import json
import socket

import pytest
import torch

from lossnav import training
from lossnav.cli import main
from lossnav.training import Dataset, load_data, make_model, make_optimizer, train
from lossnav.training.data import modular_addition

SMALL = dict(width=16, layers=1, heads=2, hidden=32)


@pytest.fixture(scope="module")
def tiny():
    return modular_addition(11, 0.5, seed=0)


def parameters(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_the_split_covers_every_pair_once_and_is_fixed_by_its_seed(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the modular dataset tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    data = modular_addition(11, 0.5, seed=3)
    again, other = modular_addition(11, 0.5, seed=3), modular_addition(11, 0.5, seed=4)
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.y_test, again.y_test)
    assert not torch.equal(data.x_train, other.x_train)
    assert len(data.x_train) == round(0.5 * 121) and len(data.x_test) == 121 - len(data.x_train)
    pairs = torch.cat([data.x_train, data.x_test])
    assert pairs.dtype == torch.int64 and (pairs[:, 2] == 11).all()            # the "=" token
    assert len({tuple(row) for row in pairs[:, :2].tolist()}) == 121
    labels = torch.cat([data.y_train, data.y_test])
    assert torch.equal(labels, (pairs[:, 0] + pairs[:, 1]) % 11)
    assert data.vocabulary == 12 and data.classes == 11 and data.input_shape == (3,)
    assert load_data("modular", modulus=11, train_fraction=0.5) is load_data("modular", modulus=11,
                                                                              train_fraction=0.5)


@pytest.mark.parametrize("options, message", [({"modulus": 1}, "modulus"), ({"modulus": 7.0}, "modulus"),
                                              ({"train_fraction": 0.0}, "train_fraction"),
                                              ({"train_fraction": 1.0}, "train_fraction"),
                                              ({"modulus": 3, "train_fraction": 0.05}, "non-empty"),
                                              ({"colour": "red"}, "does not take")])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        load_data("modular", **options)


def test_the_transformer_is_causal_and_reads_the_last_position(tiny):
    model = make_model("transformer", load_data("modular"), seed=0)
    # p = 97: a few hundred thousand parameters
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 1_000_000
    model = make_model("transformer", tiny, seed=0, **SMALL)
    tokens = torch.tensor([[1, 2, 11], [1, 5, 11], [7, 2, 11]])
    hidden = model.blocks(model.embedding(tokens) + model.position)
    assert torch.allclose(hidden[0, 0], hidden[1, 0]) and not torch.allclose(hidden[0, 0], hidden[2, 0])
    logits = model(tokens)
    assert logits.shape == (3, 11) and not torch.allclose(logits[0], logits[1])


def test_models_and_data_must_fit(tiny):
    features = Dataset("features", torch.zeros(4, 1, 8), torch.zeros(4, dtype=torch.int64),
                       torch.zeros(2, 1, 8), torch.zeros(2, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="token inputs, dataset 'features' holds features"):
        make_model("transformer", features)
    with pytest.raises(ValueError, match=r"feature inputs.*models for it: transformer"):
        make_model("mlp", tiny)


@pytest.mark.parametrize("rule", list(training.RULES))
def test_every_rule_trains_the_transformer(tiny, rule):
    model = make_model("transformer", tiny, seed=0, **SMALL)
    start = parameters(model)
    history = train(model, make_optimizer(rule, model.parameters()), tiny, epochs=1, batch=16, progress=False)
    assert history["steps"] == 3 and history["skipped_steps"] == 0 and history["fallbacks"] == 0
    assert torch.isfinite(torch.tensor(history["epochs"][0]["train_loss"]))
    assert not torch.equal(parameters(model), start)


@pytest.mark.parametrize("rule", ["mpc", "mpcw", "adamw"])
def test_resume_on_the_transformer_is_bit_identical(tiny, tmp_path, rule):
    def fresh():
        model = make_model("transformer", tiny, seed=2, **SMALL)
        return model, make_optimizer(rule, model.parameters())
    model, optimizer = fresh()
    full = train(model, optimizer, tiny, epochs=2, seed=2, batch=16, progress=False)
    checkpoint = tmp_path / "run.pt"
    first, first_optimizer = fresh()
    train(first, first_optimizer, tiny, epochs=1, seed=2, batch=16, checkpoint=str(checkpoint),
          progress=False)
    torch.manual_seed(999)
    resumed, resumed_optimizer = fresh()
    history = train(resumed, resumed_optimizer, tiny, epochs=2, seed=2, batch=16, resume=str(checkpoint),
                    progress=False)
    assert torch.equal(parameters(resumed), parameters(model))
    assert [r["test_accuracy"] for r in history["epochs"]] == [r["test_accuracy"] for r in full["epochs"]]


def test_cli_trains_the_transformer_and_records_the_device(capsys):
    argv = ["train", "--data", "modular", "--model", "transformer", "--rule", "adamw", "--modulus", "11",
            "--train-fraction", "0.5", "--epochs", "1", "--seed", "0", "--batch", "30", "--device", "cpu",
            "--json"]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["device"] == "cpu" and metrics["modulus"] == 11 and metrics["train_fraction"] == 0.5
    assert 0 <= metrics["final_test_accuracy"] <= 100
    assert metrics["mean_epoch_time"] > 0 and metrics["steps"] == 2


@pytest.mark.parametrize("argv, message", [
    (["--data", "modular", "--model", "mlp"], "model 'mlp' takes feature inputs"),
    (["--data", "digits", "--model", "mlp", "--modulus", "7"], "options of --data modular"),
    (["--data", "modular", "--model", "transformer", "--train-fraction", "1.5"],
     "train_fraction must be in (0, 1)"),
])
def test_cli_bad_modular_settings_exit_2(capsys, argv, message):
    assert main(["train", *argv, "--rule", "adam", "--epochs", "1", "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
