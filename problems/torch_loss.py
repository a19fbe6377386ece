"""A torch function of a flat parameter vector as an :class:`ocp.ExternalLoss` for the engine.

The matrix-free solver (:mod:`ocp.matrix_free`) needs L(θ), ∇L(θ) and ∇²L(θ)·v, batched over
the quadrature nodes of its mesh (issue 25: the discounted OCP of Vastola et al. 2025, Eq. 2,
for a network's full-batch training loss). Here they come from ``torch.func``: the gradient by
``torch.func.grad``, the HVP forward-over-reverse (``torch.func.jvp`` of the gradient: one extra
forward pass, no Hessian), the batches by ``torch.func.vmap`` in chunks (``chunk_size``: a
batch of N points holds N copies of the network's activations). The engine sees numpy float64
only; ``ocp`` never imports torch.

The Krylov iterations inside each Newton step of the matrix-free solve take their HVPs in
``krylov_dtype`` (float32 by default: about 5× faster on a CPU than float64 for an MLP, relative
error ~1e-7); an inexact Hessian slows Newton's convergence at most, the point it converges to is
set by the float64 gradient and checked in float64. A function that cannot run in ``krylov_dtype``
(a closure over float64 tensors) falls back to ``dtype`` at its first call. On the CPU the engine's
numpy BLAS is held to one thread while it solves with this loss (``blas_threads=1``: torch's
threads have the cores; OpenBLAS's spinning workers made the rest point 3.1× slower at D = 5,410).

``TorchLoss.from_module(module, loss_fn, inputs, targets, weight_decay)`` builds the loss of an
``nn.Module`` through ``torch.func.functional_call`` on a flat vector θ (the module's parameters
in ``named_parameters`` order), L(θ) = loss_fn(module_θ(inputs), targets) + (λ/2)|θ|²; the
module's current parameters are θ0 (:meth:`TorchLoss.initial_theta`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ocp import ExternalLoss, ProblemError

DEFAULT_CHUNK = 32
"""Points per vmap call: bounds the memory of a batch (activations of 32 network copies)."""


class TorchLoss(ExternalLoss):
    """``function(theta)``: flat tensor (dim,) → scalar tensor, differentiable by torch.func."""

    def __init__(self, function, dim, dtype=torch.float64, device="cpu", name="torch",
                 chunk_size=DEFAULT_CHUNK, krylov_dtype=torch.float32):
        if not callable(function):
            raise ProblemError(f"loss {name!r}: function must be callable: function(theta) -> scalar tensor")
        self.function, self.dtype, self.device = function, dtype, torch.device(device)
        self.chunk_size = int(chunk_size)
        gradient = torch.func.grad(function)

        def hvp(theta, v):                        # forward over reverse: one extra forward pass
            return torch.func.jvp(gradient, (theta,), (v,))[1]

        def hvp_reverse(theta, v):                # reverse over reverse: H v = vjp of ∇L (H symmetric)
            return torch.func.vjp(gradient, theta)[1](v)[0]

        self._torch = {"value": function, "gradient": gradient, "hvp": hvp,
                       "values": torch.func.vmap(function, chunk_size=self.chunk_size),
                       "gradients": torch.func.vmap(gradient, chunk_size=self.chunk_size),
                       "hvps": torch.func.vmap(hvp, chunk_size=self.chunk_size)}
        # some torch kernels have no forward-mode derivative of their backward (F.mse_loss raises
        # "ZeroTensors are immutable" in torch 2.13): those losses take the reverse-over-reverse HVP
        self._reverse = {"hvp": hvp_reverse, "hvps": torch.func.vmap(hvp_reverse, chunk_size=self.chunk_size)}
        self.krylov_dtype = dtype if krylov_dtype is None else krylov_dtype
        krylov = None if self.krylov_dtype == dtype else self._krylov_call()
        super().__init__(dim, self._call("value"), self._call("gradient"), self._call("hvp"),
                         gradients=self._call("gradients"), hvps=self._call("hvps"), name=name,
                         values=self._call("values"), krylov_hvps=krylov,
                         blas_threads=1 if self.device.type == "cpu" else None)

    def _krylov_call(self):
        """Batched HVPs in ``krylov_dtype`` (module docstring); ``dtype`` from the first failure on."""
        low, exact = self._call("hvps", self.krylov_dtype), self._call("hvps")

        def evaluate(thetas, vs):
            if self.krylov_dtype != self.dtype:
                try:
                    return low(thetas, vs)
                except RuntimeError:         # e.g. "expected scalar type Double but found Float"
                    self.krylov_dtype, self.krylov_precision = self.dtype, 1e-14
            return exact(thetas, vs)
        return evaluate

    def _call(self, key, dtype=None):
        """The torch function ``key`` on numpy float64 arrays (in, out), computed in ``dtype``."""

        def evaluate(*arrays):
            tensors = [torch.as_tensor(np.ascontiguousarray(a), dtype=dtype or self.dtype, device=self.device)
                       for a in arrays]
            try:
                with torch.no_grad():
                    out = self._torch[key](*tensors)
            except RuntimeError:
                if key not in self._reverse or self._torch[key] is self._reverse[key]:
                    raise
                with torch.no_grad():
                    out = self._reverse[key](*tensors)
                self._torch.update(self._reverse)      # this loss: reverse over reverse from now on
            return out.detach().to("cpu", torch.float64).numpy()
        return evaluate

    @classmethod
    def from_module(cls, module, loss_fn, inputs, targets, weight_decay=0.0, dtype=torch.float64,
                    device="cpu", name=None, chunk_size=DEFAULT_CHUNK,
                    krylov_dtype=torch.float32) -> TorchLoss:
        """The full-batch training loss of ``module`` (module docstring) as a TorchLoss."""
        if not isinstance(module, torch.nn.Module):
            raise ProblemError(f"from_module needs a torch.nn.Module, got {type(module).__name__}")
        if not math.isfinite(weight_decay) or weight_decay < 0:
            raise ProblemError(f"weight_decay must be a finite number ≥ 0, got {weight_decay!r}")
        module = module.to(device=device, dtype=dtype)
        names = [key for key, _ in module.named_parameters()]
        shapes = [p.shape for _, p in module.named_parameters()]
        sizes = [p.numel() for _, p in module.named_parameters()]
        buffers = dict(module.named_buffers())
        inputs = torch.as_tensor(inputs, device=device)
        inputs = inputs.to(dtype) if inputs.is_floating_point() else inputs
        targets = torch.as_tensor(targets, device=device)
        targets = targets.to(dtype) if targets.is_floating_point() else targets

        def cast(tensor, like):
            return tensor.to(like.dtype) if tensor.is_floating_point() else tensor

        def function(theta):
            pieces = torch.split(theta, sizes)
            params = {key: piece.reshape(shape)
                      for key, piece, shape in zip(names, pieces, shapes, strict=True)}
            state = {**params, **{key: cast(value, theta) for key, value in buffers.items()}}
            out = torch.func.functional_call(module, state, (cast(inputs, theta),))
            return loss_fn(out, cast(targets, theta)) + 0.5 * weight_decay * torch.dot(theta, theta)

        loss = cls(function, sum(sizes), dtype=dtype, device=device, name=name or type(module).__name__,
                   chunk_size=chunk_size, krylov_dtype=krylov_dtype)
        with torch.no_grad():
            flat = torch.cat([p.reshape(-1) for p in module.parameters()])
            loss._initial = flat.to("cpu", torch.float64).numpy()
        loss.module, loss.weight_decay = module, float(weight_decay)
        return loss

    def initial_theta(self) -> np.ndarray:
        """The module's parameters when the loss was built, flat (θ0); only from :meth:`from_module`."""
        if not hasattr(self, "_initial"):
            raise ProblemError(f"loss {self.name!r} was not built from a module: it has no initial theta")
        return self._initial.copy()
