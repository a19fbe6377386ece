"""Datasets for the training experiments (the paper's Fig. 2e–f, App. B, on small data).

* ``digits``: scikit-learn's bundled 8×8 digits (1797 images, shipped with the package, no
  download), pixels scaled to [0, 1], a fixed stratified split: 1347 train / 450 test.
* ``mnist1d``: Greydanus' MNIST-1D generated locally with
  ``mnist1d.data.make_dataset(get_dataset_args())`` (4000 train / 1000 test sequences of
  length 40; ``make_dataset`` only synthesises from templates, it never downloads). Its
  global ``random``/``numpy`` seeding is undone, so loading data does not change the RNGs.

* ``modular``: modular addition a + b mod p (Power et al. 2022, "Grokking"), generated on the
  spot: all p² pairs as token sequences [a, b, =] (token p is "="), label (a + b) mod p; a
  random ``train_fraction`` of the pairs (default 0.3) is the training set, the rest the test
  set; the split is drawn from ``torch.Generator().manual_seed(seed)``, so ``(p, train_fraction,
  seed)`` fixes it. Options: ``load_data("modular", modulus=97, train_fraction=0.3, seed=0)``.

A :class:`Dataset` holds either float32 inputs shaped (N, channels, length) (``vocabulary``
None; models flatten as they need) or int64 token sequences shaped (N, length) with
``vocabulary`` the number of token ids; labels are int64. Register more with
:func:`register_dataset`.
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
    vocabulary: int | None = None     # token datasets: ids are 0 … vocabulary − 1

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


def modular_addition(modulus: int = 97, train_fraction: float = 0.3, seed: int = 0) -> Dataset:
    """The ``modular`` dataset (module docstring); ValueError for p < 2 or a fraction that leaves
    the training or the test set empty."""
    if isinstance(modulus, bool) or not isinstance(modulus, int) or not 2 <= modulus <= 10_000:
        raise ValueError(f"modulus must be an integer in [2, 10000], got {modulus!r}")
    pairs = modulus * modulus
    if not (isinstance(train_fraction, (int, float)) and 0 < train_fraction < 1
            and 1 <= round(train_fraction * pairs) < pairs):
        raise ValueError(f"train_fraction must be in (0, 1) and leave both sets non-empty "
                         f"({pairs} pairs), got {train_fraction!r}")
    a, b = torch.meshgrid(torch.arange(modulus), torch.arange(modulus), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    tokens = torch.stack([a, b, torch.full_like(a, modulus)], 1)       # [a, b, =]
    labels = (a + b) % modulus
    order = torch.randperm(pairs, generator=torch.Generator().manual_seed(seed))
    train, test = order[:round(train_fraction * pairs)], order[round(train_fraction * pairs):]
    return Dataset("modular", tokens[train].contiguous(), labels[train].contiguous(),
                   tokens[test].contiguous(), labels[test].contiguous(), modulus, vocabulary=modulus + 1)


DATASETS = {"digits": _digits, "mnist1d": _mnist1d, "modular": modular_addition}


def register_dataset(name: str, loader) -> None:
    """Add a dataset: ``loader(**options)`` → :class:`Dataset`."""
    DATASETS[name] = loader
    load_data.cache_clear()


@lru_cache(maxsize=None)
def load_data(name: str, **options) -> Dataset:
    """The dataset ``name`` (cached per options, e.g. ``modulus=`` for modular); ValueError
    listing the valid names otherwise, or for options the loader does not take."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    try:
        return DATASETS[name](**options)
    except TypeError as exc:
        if options and "argument" in str(exc):
            raise ValueError(f"dataset {name!r} does not take the options {', '.join(options)}") from None
        raise
