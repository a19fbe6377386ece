"""Maths that works on CasADi symbols, torch tensors and numpy arrays alike.

A scenario writes its loss, drift and metric once, with arithmetic, indexing, ``@`` and
the functions below; the engine calls them on CasADi SX symbols (θ a column vector,
constants as matrices of their shapes) and the learning rules on torch tensors (θ a 1-D
tensor, constants as tensors), so there is no second hand-written copy of any formula.

    from problems import ops
    def loss(theta, H, mu):
        d = theta - mu
        return 0.5 * ops.dot(d, H @ d) + ops.sum(ops.log(1 + ops.exp(-theta)))

Dispatch is on the type of the first argument (a CasADi type → casadi, a torch.Tensor →
torch, anything else → numpy). torch is never imported here: a torch tensor brings its
own module.
"""
from __future__ import annotations

import sys

import casadi
import numpy as np

_CASADI_TYPES = (casadi.SX, casadi.MX, casadi.DM)


def _backend(x):
    if isinstance(x, _CASADI_TYPES):
        return "casadi"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch"
    return "numpy"


def _unary(name):
    def function(x):
        backend = _backend(x)
        if backend == "casadi":
            return getattr(casadi, name)(x)
        if backend == "torch":
            return getattr(sys.modules["torch"], name)(x)
        return getattr(np, name)(x)
    function.__name__ = name
    function.__doc__ = f"Elementwise {name} on casadi, torch or numpy values."
    return function


exp, log, sin, cos, tanh, sqrt = (_unary(name) for name in ("exp", "log", "sin", "cos", "tanh", "sqrt"))


def dot(a, b):
    """Inner product aᵀb of two vectors (casadi columns or 1-D tensors/arrays)."""
    backend = _backend(a)
    if backend == "casadi" or isinstance(b, _CASADI_TYPES):
        return casadi.dot(a, b)
    if backend == "torch":
        return (a * b).sum()
    return float(np.dot(np.ravel(a), np.ravel(b)))


def sum(x):  # noqa: A001 - the natural name in a maths namespace
    """Sum of all entries."""
    backend = _backend(x)
    if backend == "casadi":
        return casadi.sum1(casadi.sum2(x))
    if backend == "torch":
        return x.sum()
    return np.sum(x)


def stack(entries):
    """A vector from scalar expressions (casadi column, 1-D tensor or array)."""
    backend = next((_backend(e) for e in entries if _backend(e) != "numpy"), "numpy")
    if backend == "casadi":
        return casadi.vertcat(*entries)
    if backend == "torch":
        torch = sys.modules["torch"]
        like = next(e for e in entries if isinstance(e, torch.Tensor))
        return torch.stack([torch.as_tensor(e, dtype=like.dtype, device=like.device).reshape(())
                            for e in entries])
    return np.array([float(np.squeeze(e)) for e in entries])

