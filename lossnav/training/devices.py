"""Devices for ``lossnav train --device cpu|cuda|mps|auto``, and an audit of what a step moves.

:func:`resolve_device` turns the flag into a ``torch.device`` (``auto``: cuda, else mps, else
cpu; a device that is not available is a :class:`DeviceError`, a ValueError).

:class:`DeviceAudit` checks the GPU path on a machine without a GPU. It is a
``TorchFunctionMode`` that follows, during the steps it watches, which tensors live on the
host: those made by a factory (``torch.zeros``, ``torch.tensor``, ``torch.as_tensor`` …) without
``device=`` or with the literal ``device="cpu"`` (a deliberate host tensor, like the step
counters of torch's optimizers), and everything computed from host tensors only. Every other
tensor (parameters, data, state made with ``*_like``/``new_*``) counts as on the device,
whatever the device really is. It records

* ``sync``: a device tensor read by the host (``item``, ``float``, ``bool``, ``int``,
  ``tolist``, ``numpy``, ``cpu``): on a GPU the host waits for the queue to drain;
* ``transfer``: a host tensor copied to the device (``.to(device_tensor)``, ``.to(device)``,
  a factory given data and ``device=``);
* ``mixed``: an operation on a host tensor with dimensions and a device tensor: on a GPU it
  raises a device mismatch (0-dim host tensors are allowed, as torch allows CPU scalars).

So a step that builds a plan with ``torch.as_tensor(array)`` and applies it with
``plan.to(basis)`` shows a ``transfer`` per step, and ``float(residual.norm())`` shows a
``sync``, on the CPU as they would on a GPU. :func:`state_off_device` lists the optimizer state
tensors that are not on their parameter's device (the real devices; 0-dim CPU step counters,
as torch's own optimizers keep them, are allowed).
"""
from __future__ import annotations

import weakref

import torch
from torch.overrides import TorchFunctionMode

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(ValueError):
    """A device that is not known or not available on this machine."""


def available_devices() -> list:
    """The device kinds usable here, in the order ``auto`` prefers them."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def resolve_device(name: str = "auto") -> torch.device:
    """``torch.device`` for ``name`` in cpu, cuda, cuda:N, mps, auto; DeviceError otherwise."""
    if not isinstance(name, str) or name.split(":")[0] not in DEVICE_CHOICES:
        raise DeviceError(f"unknown device {name!r}; valid: {', '.join(DEVICE_CHOICES)}")
    here = available_devices()
    if name == "auto":
        return torch.device(here[0])
    kind = name.split(":")[0]
    if kind not in here:
        raise DeviceError(f"device {name!r} is not available on this machine (available: {', '.join(here)})")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"bad device {name!r}: {exc}") from None
    if kind == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"device {name!r} is not available ({torch.cuda.device_count()} CUDA devices)")
    return device


_FACTORIES = {"tensor", "as_tensor", "asarray", "zeros", "ones", "empty", "full", "eye", "arange", "linspace",
              "logspace", "rand", "randn", "randint", "randperm", "scalar_tensor"}
_WITH_DATA = {"tensor", "as_tensor", "asarray"}
_READS = {"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__", "__complex__"}


def _host_factory(kwargs) -> bool:
    """A factory call that makes a host tensor: no ``device=``, or the string ``"cpu"`` (a
    ``torch.device`` object is taken as "where the data is", e.g. ``device=param.device``)."""
    device = kwargs.get("device")
    return device is None or (isinstance(device, str) and device == "cpu")


def _tensors(values):
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


class DeviceAudit(TorchFunctionMode):
    """Record host reads (``sync``), host→device copies (``transfer``) and host/device mixes
    (``mixed``) while active (module docstring). ``events``: list of (kind, function name);
    :meth:`mark` starts a new segment, :meth:`since` returns the events after it."""

    def __init__(self):
        super().__init__()
        self.events: list = []
        self._host: dict = {}
        self._mark = 0

    # -- host bookkeeping -----------------------------------------------------------
    def is_host(self, tensor) -> bool:
        entry = self._host.get(id(tensor))
        return entry is not None and entry() is tensor

    def _set_host(self, tensor):
        key = id(tensor)
        self._host[key] = weakref.ref(tensor, lambda _, key=key: self._host.pop(key, None))

    def mark(self):
        self._mark = len(self.events)

    def since(self, kind=None) -> list:
        return [event for event in self.events[self._mark:] if kind is None or event[0] == kind]

    def _moves(self, name, args, kwargs):
        """Whether ``tensor.to(...)``/``.cuda()`` sends a host tensor to the device (a dtype-only
        ``to``, or one whose target is a host tensor, keeps it on the host)."""
        if name != "to":
            return True
        targets = [a for a in list(args[1:]) + [kwargs.get("device"), kwargs.get("other")]
                   if isinstance(a, (torch.Tensor, torch.device, str))]
        return any(not (isinstance(a, torch.Tensor) and self.is_host(a)) for a in targets)

    # -- the mode -------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        inputs = list(_tensors(list(args) + list(kwargs.values())))
        host = [self.is_host(t) for t in inputs]
        if name in _READS and inputs and not host[0]:
            self.events.append(("sync", name))
        elif name in ("to", "cuda", "mps") and inputs and host[0] and self._moves(name, args, kwargs):
            self.events.append(("transfer", name))
            host = [False]
        elif name in _WITH_DATA and not _host_factory(kwargs):
            self.events.append(("transfer", name))
        elif any(host) and not all(host) and name not in _READS:
            if any(t.dim() > 0 for t, is_host in zip(inputs, host, strict=True) if is_host):
                self.events.append(("mixed", name))
        result = func(*args, **kwargs)
        if (name in _FACTORIES and _host_factory(kwargs)) or (bool(host) and all(host)) or name == "cpu":
            for tensor in _tensors(result if isinstance(result, (list, tuple)) else [result]):
                self._set_host(tensor)
        return result


def state_off_device(optimizer) -> list:
    """(parameter index, state key, tensor device, parameter device) for every optimizer state
    tensor not on its parameter's device; 0-dim CPU tensors (step counters) are allowed."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    index = {id(p): i for i, p in enumerate(params)}
    wrong = []
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.device != param.device:
                if value.dim() == 0 and value.device.type == "cpu":
                    continue
                wrong.append((index.get(id(param)), key, str(value.device), str(param.device)))
    return wrong
