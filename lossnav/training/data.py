"""Datasets for the training experiments (the paper's Fig. 2e–f, App. B, on small data).

* ``digits``: scikit-learn's bundled 8×8 digits (1797 images, shipped with the package, no
  download), pixels scaled to [0, 1], a fixed stratified split: 1347 train / 450 test.
* ``mnist1d``: Greydanus' MNIST-1D generated locally with
  ``mnist1d.data.make_dataset(get_dataset_args())`` (4000 train / 1000 test sequences of
  length 40; ``make_dataset`` only synthesises from templates, it never downloads). Its
  global ``random``/``numpy`` seeding is undone, so loading data does not change the RNGs.

A :class:`Dataset` holds float32 inputs shaped (N, channels, length) and int64 labels;
models flatten as they need. Register more with :func:`register_dataset`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor     # (N, channels, length) float32
    y_train: torch.Tensor     # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])


def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=450, random_state=0,
                                                        stratify=digits.target)
    return _tensors("digits", x_train, y_train, x_test, y_test, 10)


def _mnist1d() -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return _tensors("mnist1d", data["x"], data["y"], data["x_test"], data["y_test"], 10)


def _tensors(name, x_train, y_train, x_test, y_test, classes) -> Dataset:
    def inputs(x):
        return torch.as_tensor(np.asarray(x, dtype=np.float32)).unsqueeze(1).contiguous()

    def labels(y):
        return torch.as_tensor(np.asarray(y, dtype=np.int64))
    return Dataset(name, inputs(x_train), labels(y_train), inputs(x_test), labels(y_test), classes)


DATASETS = {"digits": _digits, "mnist1d": _mnist1d}


def register_dataset(name: str, loader) -> None:
    """Add a dataset: ``loader()`` → :class:`Dataset`."""
    DATASETS[name] = loader
    load_data.cache_clear()


@lru_cache(maxsize=None)
def load_data(name: str) -> Dataset:
    """The dataset ``name`` (cached); ValueError listing the valid names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]()
