"""Models of the training experiments (the paper's App. B: an MLP with two hidden layers and a
small CNN; here a 1-D CNN, since digits and MNIST-1D are fed as sequences).

* ``mlp``: flatten → 128 → ReLU → 128 → ReLU → classes.
* ``cnn``: Conv1d(1→16, k3) → ReLU → Conv1d(16→32, k3) → ReLU → MaxPool(2) → Conv1d(32→32, k3)
  → ReLU → MaxPool(2) → flatten → Linear → classes.

Weights are initialised from ``torch.manual_seed(seed)`` (PyTorch's default initialisation),
so a seed fixes the model. Register more with :func:`register_model`.
"""
from __future__ import annotations

import torch
from torch import nn


def mlp(input_shape, classes, hidden=128):
    size = 1
    for dim in input_shape:
        size *= dim
    return nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def cnn(input_shape, classes, channels=(16, 32, 32)):
    in_channels, length = input_shape
    c1, c2, c3 = channels
    features = nn.Sequential(nn.Conv1d(in_channels, c1, 3, padding=1), nn.ReLU(),
                             nn.Conv1d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2),
                             nn.Conv1d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten())
    with torch.no_grad():
        size = features(torch.zeros(1, in_channels, length)).shape[1]
    return nn.Sequential(features, nn.Linear(size, classes))


MODELS = {"mlp": mlp, "cnn": cnn}


def register_model(name: str, builder) -> None:
    """Add a model: ``builder(input_shape, classes)`` → ``nn.Module``."""
    MODELS[name] = builder


def make_model(name: str, data, seed: int = 0) -> nn.Module:
    """Model ``name`` for dataset ``data``, initialised from ``seed``; ValueError on an unknown name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    torch.manual_seed(seed)
    return MODELS[name](data.input_shape, data.classes)
