"""Training real networks with the learning rules (issue 5, item 3): ``lossnav train``.

    from lossnav.training import load_data, make_model, make_optimizer, train
    data = load_data("digits"); model = make_model("mlp", data, seed=0)
    history = train(model, make_optimizer("mpc", model.parameters()), data, epochs=10, seed=0)

Registries (extend by registering, no rewrite): datasets (:mod:`lossnav.training.data`), models
(:mod:`lossnav.training.models`), rules (:mod:`lossnav.training.rules`). The loop
(:mod:`lossnav.training.loop`) checkpoints model, optimizer and RNG state so that a resumed run
is bit-identical.
"""
from .data import DATASETS, Dataset, load_data, register_dataset
from .loop import TrainingError, load_checkpoint, train
from .models import MODELS, make_model, register_model
from .rules import RULES, make_optimizer, register_rule

__all__ = ["DATASETS", "MODELS", "RULES", "Dataset", "TrainingError", "load_checkpoint", "load_data",
           "make_model", "make_optimizer", "register_dataset", "register_model", "register_rule", "train"]
