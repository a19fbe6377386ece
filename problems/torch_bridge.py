"""A formula written in plain CasADi as a torch function, with every derivative through CasADi.

The engine poses each scenario in CasADi (Vastola, Gershman & Rajan 2025, Eq. 2: the loss
L(θ), the drift f(θ), the metric G(θ)); the torch rules need the same formula on tensors,
with autograd. A formula written with :mod:`problems.ops` runs on both natively; one written
with ``casadi.mtimes``, ``casadi.DM(X)``, ``casadi.exp`` ... cannot take a tensor, so it is
compiled here, once per problem structure, as a CasADi Function F(x_0, …, x_m; c) of θ and
the problem constants c (an input, so a problem from ``replace`` reuses it), and exposed to
torch as :class:`CasadiFunction`, a ``torch.autograd.Function`` whose derivatives are
themselves CasADi Functions of the same kind, compiled the first time they are asked for
(:class:`CompiledFunction`):

* backward (reverse mode): the vector–Jacobian products ∂(Σ_j w_jᵀ y_j)/∂x_i; for L that is
  w·∇L, whose own backward is the Hessian-vector product H v, whose backward is the third
  derivative, and so on: ``torch.autograd.grad(create_graph=True)``, double backward,
  ``torch.func.grad``/``vjp``/``jacrev``/``hessian`` all work;
* jvp (forward mode): Σ_i (∂y/∂x_i) t_i, for ``torch.func.jvp`` and forward-over-reverse HVPs;
* vmap: a batch is one CasADi call (CasADi maps a Function over horizontally stacked
  arguments), for ``torch.func.vmap`` and ``jacrev``;
* torch's older batched gradients (``torch.autograd.grad(..., is_grads_batched=True)``, used
  by ``learning_rules.curvature.exact_hessian``) contract the batch of cotangents with the
  dense Jacobian of the node (one call, m·n entries for m outputs and n inputs).

Limits (also in docs/tutorials/first_scenario.md): CasADi evaluates in float64 on the CPU.
A tensor of another floating dtype or on another device is copied to the CPU in float64 and
the result copied back in the dtype and onto the device of θ: correct, but a host round trip
per call (which synchronises a GPU stream) and float32 results are float64 ones rounded.
Integer, boolean and complex tensors are an :class:`ocp.ProblemError`; so is a call inside
torch's legacy ``torch._vmap_internals._vmap`` other than for cotangents (use ``torch.func.vmap``).
What a call costs against the native path: ``benchmarks/bench_torch_bridge.py``.
"""
from __future__ import annotations

import collections
import math

import casadi
import numpy as np
import torch

import ocp

PIECES = ("loss", "drift", "metric")
_CACHE_SIZE = 64
_COMPILED: collections.OrderedDict = collections.OrderedDict()   # structure key -> CompiledFunction


def _size(shape) -> int:
    return int(math.prod(shape))


class CompiledFunction:
    """One CasADi Function y_j = F_j(x_0, …, x_m; c) (SX, flat column vectors) with the torch
    shapes of its inputs and outputs, and the Functions of its derivatives, compiled on demand:
    :attr:`backward` (vector–Jacobian products), :attr:`tangent` (Jacobian–vector products)
    and :attr:`jacobian` (dense Jacobians, for batched cotangents). ``calls`` counts the
    CasADi evaluations (a batch counts once)."""

    def __init__(self, name, inputs, in_shapes, outputs, out_shapes, constants):
        self.name = name
        self.inputs, self.in_shapes = list(inputs), [tuple(s) for s in in_shapes]
        self.outputs, self.out_shapes = list(outputs), [tuple(s) for s in out_shapes]
        self.constants = constants
        self.function = casadi.Function(name, [*self.inputs, constants], self.outputs)
        self.calls = 0
        self._derived: dict = {}

    def _derive(self, kind, build):
        if kind not in self._derived:
            self._derived[kind] = build()
        return self._derived[kind]

    @property
    def backward(self) -> "CompiledFunction":
        """(x…, w…) → ∂(Σ_j w_jᵀ y_j)/∂x_i for each input i: the reverse-mode derivative."""
        def build():
            weights = [casadi.SX.sym(f"w{j}", _size(shape)) for j, shape in enumerate(self.out_shapes)]
            total = casadi.SX(0)
            for weight, output in zip(weights, self.outputs, strict=True):
                total += casadi.dot(weight, output)
            grads = [casadi.gradient(total, x) for x in self.inputs]
            return CompiledFunction(f"{self.name}_vjp", [*self.inputs, *weights],
                                    [*self.in_shapes, *self.out_shapes], grads, self.in_shapes,
                                    self.constants)
        return self._derive("backward", build)

    @property
    def tangent(self) -> "CompiledFunction":
        """(x…, t…) → Σ_i (∂y_j/∂x_i) t_i for each output j: the forward-mode derivative."""
        def build():
            tangents = [casadi.SX.sym(f"t{i}", _size(shape)) for i, shape in enumerate(self.in_shapes)]
            outputs = []
            for output in self.outputs:
                total = casadi.SX.zeros(output.shape)
                for x, t in zip(self.inputs, tangents, strict=True):
                    total += casadi.jtimes(output, x, t)
                outputs.append(total)
            return CompiledFunction(f"{self.name}_jvp", [*self.inputs, *tangents],
                                    [*self.in_shapes, *self.in_shapes], outputs, self.out_shapes,
                                    self.constants)
        return self._derive("tangent", build)

    @property
    def jacobian(self) -> "CompiledFunction":
        """x… → ∂y_j/∂x_i as (size y_j, size x_i) matrices, j-major (row-major entries)."""
        def build():
            outputs, shapes = [], []
            for output, out_shape in zip(self.outputs, self.out_shapes, strict=True):
                for x, in_shape in zip(self.inputs, self.in_shapes, strict=True):
                    outputs.append(casadi.vec(casadi.jacobian(output, x).T))
                    shapes.append((_size(out_shape), _size(in_shape)))
            return CompiledFunction(f"{self.name}_jac", self.inputs, self.in_shapes, outputs, shapes,
                                    self.constants)
        return self._derive("jacobian", build)

    def evaluate(self, constants: np.ndarray, arrays: list, batch: int) -> list:
        """The outputs, each (batch, size), for inputs each (batch, size) (float64 arrays):
        one CasADi call, which maps the Function over the batch columns."""
        self.calls += 1
        results = self.function.call([array.reshape(batch, -1).T for array in arrays] + [constants])
        return [np.asarray(result.full()).T for result in results]


class CasadiFunction(torch.autograd.Function):
    """torch ↔ CasADi: ``CasadiFunction.apply(compiled, constants, *tensors)`` → tuple of the
    outputs of ``compiled`` (a :class:`CompiledFunction`) at the tensors (the constants a float64
    array). Every input carries the same leading batch shape (empty outside vmap)."""

    @staticmethod
    def forward(compiled, constants, *tensors):
        like = tensors[0]
        for tensor in tensors:
            _check_tensor(tensor, compiled.name)
        batch = tuple(like.shape[:like.ndim - len(compiled.in_shapes[0])])
        size = _size(batch)
        arrays = [t.detach().to(device="cpu", dtype=torch.float64).reshape(size, -1).numpy() for t in tensors]
        results = compiled.evaluate(constants, arrays, size)
        return tuple(torch.as_tensor(result, dtype=like.dtype, device=like.device).reshape(batch + shape)
                     for result, shape in zip(results, compiled.out_shapes, strict=True))

    @staticmethod
    def setup_context(ctx, inputs, output):
        compiled, constants, *tensors = inputs
        ctx.compiled, ctx.constants = compiled, constants
        ctx.save_for_backward(*tensors)
        ctx.save_for_forward(*tensors)

    @staticmethod
    def backward(ctx, *weights):
        inputs = ctx.saved_tensors
        if any(_legacy_batched(weight) for weight in weights):
            return (None, None, *_contract_with_jacobian(ctx.compiled, ctx.constants, inputs, weights))
        return (None, None, *CasadiFunction.apply(ctx.compiled.backward, ctx.constants, *inputs, *weights))

    @staticmethod
    def jvp(ctx, _compiled_tangent, _constants_tangent, *tangents):
        inputs = ctx.saved_tensors
        tangents = [torch.zeros_like(x) if t is None else t for x, t in zip(inputs, tangents, strict=True)]
        return CasadiFunction.apply(ctx.compiled.tangent, ctx.constants, *inputs, *tangents)

    @staticmethod
    def vmap(info, in_dims, compiled, constants, *tensors):
        # bring every input to the batch (expand: its backward sums over the batch), batch first
        batched = [x.expand(info.batch_size, *x.shape) if dim is None else x.movedim(dim, 0)
                   for x, dim in zip(tensors, in_dims[2:], strict=True)]
        outputs = CasadiFunction.apply(compiled, constants, *batched)
        return outputs, tuple(0 for _ in outputs)


def _legacy_batched(tensor) -> bool:
    """Whether ``tensor`` is a batched tensor of torch's legacy vmap (is_grads_batched)."""
    check = getattr(torch._C._functorch, "is_legacy_batchedtensor", None)
    return bool(check is not None and isinstance(tensor, torch.Tensor) and check(tensor))


def _contract_with_jacobian(compiled, constants, inputs, weights) -> list:
    """Σ_j w_jᵀ ∂y_j/∂x_i for a batch of cotangents w (legacy batched tensors, which cannot
    reach CasADi): the dense Jacobians at the saved, unbatched inputs, contracted by torch."""
    jacobians = CasadiFunction.apply(compiled.jacobian, constants, *inputs)
    grads = []
    for i, x in enumerate(inputs):
        total = None
        for j, weight in enumerate(weights):
            term = weight.reshape(-1) @ jacobians[j * len(inputs) + i]
            total = term if total is None else total + term
        grads.append(total.reshape(x.shape))
    return grads


def _check_tensor(tensor, name) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ocp.ProblemError(f"{name}: expected a torch tensor, got {type(tensor).__name__}")
    if _legacy_batched(tensor):
        raise ocp.ProblemError(f"{name}: a CasADi-written formula cannot be called inside torch's legacy "
                               "vmap (torch._vmap_internals); use torch.func.vmap")
    if not tensor.is_floating_point():
        raise ocp.ProblemError(f"{name}: the CasADi bridge evaluates real floating-point tensors, "
                               f"got {tensor.dtype}")


# -- the scenario formulas ------------------------------------------------------------------
def constant_shapes(problem) -> tuple:
    """((name, (rows, cols)), …) of the problem constants as the engine sees them (a vector is
    a column, a scalar 1 × 1)."""
    shapes = []
    for key, value in problem.constants.items():
        value = np.asarray(value, dtype=float)
        shape = (1, 1) if value.ndim == 0 else (value.shape[0], 1) if value.ndim == 1 else value.shape
        shapes.append((key, tuple(shape)))
    return tuple(shapes)


def pack_constants(problem) -> np.ndarray:
    """The problem constants as one float64 vector (column-major), the order of :func:`constant_shapes`."""
    parts = [np.asarray(problem.constants[key], dtype=float).reshape(shape).flatten(order="F")
             for key, shape in constant_shapes(problem)]
    return np.concatenate(parts) if parts else np.zeros(0)


def formula(problem, piece: str):
    """The user callable behind ``piece`` ('loss', 'drift' or 'metric') of ``problem``, or None."""
    if piece not in PIECES:
        raise ValueError(f"unknown formula {piece!r}; valid: {', '.join(PIECES)}")
    return {"loss": problem.loss, "drift": problem.drift,
            "metric": getattr(problem, "metric_function", None)}[piece]


def output_shape(problem, piece: str) -> tuple:
    """The torch shape of ``piece`` at one θ: () for L, (dim,) for f, (dim, dim) for G."""
    return {"loss": (), "drift": (problem.dim,), "metric": (problem.dim, problem.dim)}[piece]


def compile_formula(problem, piece: str, function=None) -> CompiledFunction:
    """``piece`` of ``problem`` (or ``function``, a callable of the same signature) as a
    :class:`CompiledFunction` of (θ; constants), built once per structure (the callable, dim and
    the constants' names and shapes; the last :data:`_CACHE_SIZE` structures are kept), so
    problems that differ only in constant values share it."""
    function = formula(problem, piece) if function is None else function
    if function is None:
        raise ocp.ProblemError(f"{problem.name} has no {piece} function to compile")
    shapes = constant_shapes(problem)
    key = (piece, function, problem.dim, shapes)
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    theta = casadi.SX.sym("theta", problem.dim)
    constants = casadi.SX.sym("constants", sum(rows * cols for _, (rows, cols) in shapes))
    symbols, offset = {}, 0
    for name, (rows, cols) in shapes:
        symbols[name] = casadi.reshape(constants[offset:offset + rows * cols], rows, cols)
        offset += rows * cols
    value = casadi.SX(function(theta, **symbols))
    shape = output_shape(problem, piece)
    expected = (max(_size(shape[:1]), 1), shape[1] if len(shape) == 2 else 1)
    if value.shape != expected:
        raise ocp.ProblemError(f"{problem.name}: {piece} must have shape {expected}, got {value.shape}")
    flat = casadi.vec(value.T)         # row-major, as torch reshapes
    compiled = CompiledFunction(f"{problem.name}_{piece}", [theta], [(problem.dim,)], [flat], [shape],
                                constants)
    _COMPILED[key] = compiled
    while len(_COMPILED) > _CACHE_SIZE:
        _COMPILED.popitem(last=False)
    return compiled


def bridged(problem, piece: str, theta, compiled: CompiledFunction = None):
    """``piece`` of ``problem`` at the tensor θ through CasADi (``compiled``: that of
    :func:`compile_formula`), differentiable to any order."""
    compiled = compile_formula(problem, piece) if compiled is None else compiled
    (value,) = CasadiFunction.apply(compiled, pack_constants(problem), theta)
    return value

