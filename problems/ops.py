"""Maths that works on CasADi symbols, torch tensors and numpy arrays alike.

A scenario writes its loss, drift and metric once, with arithmetic, indexing, ``@`` and
the functions below; the engine calls them on CasADi SX symbols (θ a column vector,
constants as matrices of their shapes) and the learning rules on torch tensors (θ a 1-D
tensor, constants as tensors), so there is no second hand-written copy of any formula.

    from problems import ops
    def loss(theta, H, mu):
        d = theta - mu
        return 0.5 * ops.dot(d, H @ d) + ops.sum(ops.softplus(-theta))

Dispatch is on the type of the first argument (a CasADi type → casadi, a torch.Tensor →
torch, anything else → numpy). torch is never imported here: a torch tensor brings its
own module.

Write ``ops.softplus(z)`` for log(1 + e^z), ``ops.log1p(x)`` for log(1 + x) and
``ops.logsumexp(x)`` for log Σ e^{x_i}: the naive forms overflow (e^z = inf for z > 709 in
float64, 88 in float32) or lose every digit (log(1 + 1e-17) = 0); these stay finite and
exact on all three backends, with exact gradients (σ(z) and softmax(x)).
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


exp, log, sin, cos, tanh, sqrt, log1p = (_unary(name) for name in ("exp", "log", "sin", "cos", "tanh", "sqrt",
                                                                   "log1p"))
log1p.__doc__ = "Elementwise log(1 + x), exact for small |x| (casadi, torch or numpy)."


def softplus(z):
    """Elementwise log(1 + e^z), finite for every finite z: z + log1p(e^{−z}) for z > 0,
    log1p(e^z) otherwise (so the exponential never overflows); gradient σ(z)."""
    backend = _backend(z)
    if backend == "casadi":
        # both branches are evaluated; if_else drops the unused one (also its derivative)
        return casadi.if_else(z > 0, z + casadi.log1p(casadi.exp(-z)), casadi.log1p(casadi.exp(z)))
    if backend == "torch":
        torch = sys.modules["torch"]
        # clamped so that neither branch overflows (torch.where backpropagates through both)
        return torch.where(z > 0, z + torch.log1p(torch.exp(-z.clamp(min=0))),
                           torch.log1p(torch.exp(z.clamp(max=0))))
    return np.logaddexp(0.0, z)


def logsumexp(x):
    """log Σ_i e^{x_i} over all entries of x, shifted by max x (no overflow); gradient softmax(x)."""
    backend = _backend(x)
    if backend == "casadi":
        return casadi.logsumexp(casadi.vec(x))
    if backend == "torch":
        return sys.modules["torch"].logsumexp(x.reshape(-1), dim=0)
    x = np.ravel(np.asarray(x, dtype=float))
    shift = np.max(x)
    return float(shift + np.log(np.sum(np.exp(x - shift))))


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

