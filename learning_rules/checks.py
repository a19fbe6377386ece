"""Checks of what a rule is given: hyperparameters (as the constructor checks them), finiteness,
and a loaded ``state_dict`` (its groups' keys, its state entries). Each raises a ValueError
naming the value, its rule and what it got; :mod:`learning_rules.base` applies them."""
from __future__ import annotations

import math
import numbers

import torch


def check_number(name, value, low=None, high=None, low_open=False, high_open=False, integer=False):
    """``value`` as a float (int when ``integer``), or a ValueError naming ``name`` and its range."""
    interval = (("(" if low_open else "[") + ("−∞" if low is None else f"{low:g}") + ", "
                + ("∞" if high is None else f"{high:g}") + (")" if high_open or high is None else "]"))
    kind = "an integer" if integer else "a real number"
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (integer and not isinstance(value,
                                                                                                     numbers.Integral)):
        raise ValueError(f"{name} must be {kind} in {interval}, got {value!r}")
    if not math.isfinite(value) or (low is not None and (value < low or (low_open and value == low))) \
            or (high is not None and (value > high or (high_open and value == high))):
        raise ValueError(f"{name} must be {kind} in {interval}, got {value!r}")
    return int(value) if integer else float(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_metric(value, name="metric"):
    """None, a positive scalar, a positive diagonal (1-D) or an SPD matrix (2-D) tensor."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        check_number(name, value, 0, None, low_open=True)
        return float(value)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be None, a positive number or a tensor (diagonal or SPD matrix), "
                         f"got {type(value).__name__}")
    if value.ndim > 2 or (value.ndim == 2 and value.shape[0] != value.shape[1]):
        raise ValueError(f"{name} must be a 1-D diagonal or a square matrix, got shape {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} must be finite")
    if value.ndim == 2:
        if not torch.allclose(value, value.mT, rtol=1e-10, atol=1e-12 * float(value.abs().max())):
            raise ValueError(f"{name} must be symmetric")
        smallest = float(torch.linalg.eigvalsh(value.double()).min())
    else:
        smallest = float(value.min())
    if smallest <= 0:
        raise ValueError(f"{name} must be positive definite, in (0, ∞); smallest eigenvalue {smallest:.3g}")
    return value


def all_finite(tensors) -> bool:
    """Whether every entry of a tensor (or of every tensor of a list) is finite.

    Fast path: a finite sum proves every entry finite (a NaN or ±inf makes the sum
    non-finite); only a non-finite sum, possibly an overflow of large finite values, is
    checked entry by entry."""
    if isinstance(tensors, torch.Tensor):
        tensors = [tensors]
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return True
    total = tensors[0].sum() if len(tensors) == 1 else torch.stack([t.sum() for t in tensors]).sum()
    if bool(total.isfinite()):
        return True
    return all(bool(t.isfinite().all()) for t in tensors)


# keys torch's learning-rate schedulers (and SWA) add to a param group; a group carrying them
# is still this optimizer's
SCHEDULER_KEYS = frozenset({"initial_lr", "base_lr", "max_lr", "min_lr", "base_momentum", "max_momentum",
                            "swa_lr"})


def check_group_keys(name, expected, state_dict) -> None:
    """The loaded ``state_dict`` has one group per group of the optimizer ``name``, each with
    exactly its hyperparameter keys ``expected[i]`` besides the keys schedulers add
    (:data:`SCHEDULER_KEYS`; a state of Adam or of another rule has others); else a
    ValueError listing the missing and unexpected keys."""
    if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
        raise ValueError(f"{name}.load_state_dict expects a state_dict with 'state' and 'param_groups', "
                         f"got {type(state_dict).__name__}")
    loaded = state_dict["param_groups"]
    if not isinstance(loaded, (list, tuple)) or len(loaded) != len(expected) \
            or not all(isinstance(group, dict) for group in loaded):
        count = len(loaded) if isinstance(loaded, (list, tuple)) else "no"
        raise ValueError(f"{name}.load_state_dict: the state has {count} parameter groups, "
                         f"this optimizer {len(expected)}")
    for index, (group, keys) in enumerate(zip(loaded, expected, strict=False)):
        have = set(group) - {"params"} - (SCHEDULER_KEYS - keys)
        if have != keys:
            missing, extra = sorted(keys - have), sorted(have - keys)
            raise ValueError(f"{name}.load_state_dict: group {index} is not a {name} group (state of "
                             f"another optimizer?)" + (f"; missing {', '.join(missing)}" if missing else "")
                             + (f"; unexpected {', '.join(extra)}" if extra else ""))


COUNTERS = ("step", "skipped_steps", "hessian_updates")


def check_state(name, state, param, where, param_shaped=()) -> None:
    """A loaded state entry of ``param``: floating tensors and numbers finite, the entries in
    ``param_shaped`` (running statistics) shaped like the parameter, the counters (COUNTERS)
    integers ≥ 0; else a ValueError naming ``where`` and the entry."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not all_finite(value):
                raise ValueError(f"{name}.load_state_dict: {where}: state {key!r} is not finite")
            if key in param_shaped and value.shape != param.shape:
                raise ValueError(f"{name}.load_state_dict: {where}: state {key!r} has shape "
                                 f"{tuple(value.shape)}, the parameter {tuple(param.shape)}")
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isfinite(value):
            raise ValueError(f"{name}.load_state_dict: {where}: state {key!r} = {value!r} is not finite")
        if key in COUNTERS:
            scalar = isinstance(value, numbers.Real) or (isinstance(value,
                                                                    torch.Tensor) and value.numel() == 1)
            number = float(value) if scalar and not isinstance(value, bool) else None
            if number is None or not math.isfinite(number) or number < 0 or number != int(number):
                raise ValueError(f"{name}.load_state_dict: {where}: state {key!r} must be a count ≥ 0, "
                                 f"got {value!r}")
