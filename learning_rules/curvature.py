"""Curvature inside ``Optimizer.step``: gradients with a graph, Hessian-vector products.

Users write the ordinary torch closure (``zero_grad(); loss = f(); loss.backward(); return
loss``) and never ``backward(create_graph=True)``. When a step needs curvature,
:func:`closure_with_graph` runs the closure while ``torch.autograd.backward`` is routed to
``torch.autograd.grad(..., create_graph=True)`` for the optimizer's parameters: the
graph-carrying gradients stay private to the step (and are freed with it), ``p.grad`` gets
their detached values, so there is no parameter ↔ gradient reference cycle (the leak of
``backward(create_graph=True)``). A closure that returns the loss without calling
``backward`` works too. While the closure runs, ``backward`` fills only the optimizer's own
parameters (not other leaves); the routing is process-global for that moment, so do not
run ``backward`` on other threads during a curvature step.

Estimators, all from Hessian-vector products Hv = ∂(gᵀv)/∂θ:

* :func:`exact_hessian`: the dense Hessian of a parameter group (n HVPs, batched with
  ``is_grads_batched``, i.e. ``torch.func.vmap``); for small models.
* :func:`hutchinson_diagonal`: diag(H) ≈ mean over Rademacher z of z ⊙ Hz (Bekas et al.
  2007; exact for a diagonal H, since z ⊙ z = 1).
"""
from __future__ import annotations

import contextlib

import torch

CURVATURE_SOURCES = ("exact", "hutchinson")


@contextlib.contextmanager
def _graph_backward(params, captured):
    original = torch.autograd.backward

    def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
                 grad_variables=None, inputs=None):
        tensors = (tensors,) if isinstance(tensors, torch.Tensor) else tuple(tensors)
        if grad_tensors is not None:
            grad_tensors = (grad_tensors,) if isinstance(grad_tensors, torch.Tensor) else tuple(grad_tensors)
        grads = torch.autograd.grad(tensors, params, grad_tensors, create_graph=True, allow_unused=True)
        for param, grad in zip(params, grads, strict=False):
            if grad is None:
                continue
            detached = grad.detach()
            param.grad = detached.clone() if param.grad is None else param.grad.add_(detached)
        captured.append(grads)

    torch.autograd.backward = backward
    try:
        yield
    finally:
        torch.autograd.backward = original


def closure_with_graph(closure, params):
    """Run ``closure`` (grad enabled); return (loss, gradients with graph, one per param).

    Gradients of parameters the loss does not depend on are ``None``."""
    captured: list = []
    with torch.enable_grad(), _graph_backward(params, captured):
        loss = closure()
    if not captured:
        if not isinstance(loss, torch.Tensor) or loss.grad_fn is None:
            raise RuntimeError("curvature needs a closure that returns the loss tensor (with its "
                               "graph) or calls loss.backward() on it")
        with torch.enable_grad():
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        for param, grad in zip(params, grads, strict=False):
            if grad is not None:
                param.grad = grad.detach().clone()
        return loss, list(grads)
    total = list(captured[0])
    for grads in captured[1:]:  # gradient accumulation inside the closure
        total = [a if b is None else b if a is None else a + b for a, b in zip(total, grads, strict=False)]
    return loss, total


def hessian_vector_products(grads, params, vectors, retain_graph=True):
    """[H v] for gradients with graph; zero where a gradient has no graph (locally linear)."""
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    if not live:
        return [torch.zeros_like(p) for p in params]
    with torch.enable_grad():
        products = torch.autograd.grad([grads[i] for i in live], params,
                                       [vectors[i] for i in live],
                                       retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if h is None else h for p, h in zip(params, products, strict=False)]


def rademacher(size, like):
    """A flat vector of ±1 of ``size`` entries (dtype/device of ``like``) from torch's RNG.

    Drawn as random bytes and unpacked to bits: 8 signs per generated number, several
    times faster than ``randint`` per entry on CPU."""
    packed = torch.empty((size + 7) // 8, dtype=torch.uint8, device=like.device).random_()
    shifts = torch.arange(8, dtype=torch.uint8, device=like.device)
    bits = ((packed.unsqueeze(1) >> shifts) & 1).reshape(-1)[:size]
    return bits.to(like.dtype).mul_(2).sub_(1)


def hutchinson_diagonal(grads, params, samples=1, maximize=False):
    """diag(H) estimate over the flattened ``params``: mean over Rademacher z of z ⊙ Hz."""
    sizes = [p.numel() for p in params]
    estimate = None
    for _ in range(samples):
        probe = rademacher(sum(sizes), params[0])
        vectors = [part.view_as(p) for part, p in zip(torch.split(probe, sizes), params, strict=False)]
        products = torch.cat([h.reshape(-1) for h in
                              hessian_vector_products(grads, params, vectors)])
        term = products.mul_(probe)
        estimate = term if estimate is None else estimate.add_(term)
    if samples > 1:
        estimate.div_(samples)
    return estimate.neg_() if maximize else estimate


def exact_hessian(grads, params, maximize=False):
    """Dense Hessian (n, n) of the loss in the flattened parameters (n = total numel)."""
    sizes = [p.numel() for p in params]
    n = sum(sizes)
    like = params[0]
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    if not live:
        return torch.zeros(n, n, dtype=like.dtype, device=like.device)
    basis = torch.eye(n, dtype=like.dtype, device=like.device)
    with torch.enable_grad():
        flat = torch.cat([grads[i].reshape(-1) if i in live else like.new_zeros(sizes[i])
                          for i in range(len(params))])
        columns = torch.autograd.grad(flat, params, basis, retain_graph=True, allow_unused=True,
                                      is_grads_batched=True)
    hessian = torch.cat([torch.zeros(n, size, dtype=like.dtype, device=like.device) if c is None
                         else c.reshape(n, size) for c, size in zip(columns, sizes, strict=False)], dim=1)
    hessian = 0.5 * (hessian + hessian.mT)
    return -hessian if maximize else hessian


def fold_diagonal(states, estimate, beta):
    """(the running diagonal β·avg + (1 − β)·estimate, its update count): flat, over the
    parameters whose optimizer ``states`` are given (their ``hessian_diag``, zeros before the
    first), not stored; :func:`store_diagonal` stores it once it is known to be finite."""
    updates = int(states[0].get("hessian_updates", 0)) + 1
    if not beta:
        return estimate, updates
    known = all("hessian_diag" in state for state in states)
    previous = torch.cat([state["hessian_diag"].reshape(-1) for state in states]) if known \
        else torch.zeros_like(estimate)
    return previous.lerp_(estimate, 1 - beta), updates


def store_diagonal(states, params, average, updates, beta, ok=None):
    """Store the flat ``average`` as each parameter's ``hessian_diag`` (and the update count);
    return the stored diagonal bias corrected, / (1 − β^updates). ``ok`` (a 0-dim device bool):
    store it only where ok, else keep the previous (zeros before the first), without a host
    read."""
    parts = [part.view_as(param) for part, param in zip(torch.split(average, [p.numel() for p in params]),
                                                        params, strict=False)]
    for state, param, part in zip(states, params, parts, strict=False):
        if ok is None:
            state["hessian_diag"] = part.clone(memory_format=torch.preserve_format)
        elif "hessian_diag" not in state:
            state["hessian_diag"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["hessian_updates"] = updates
    if ok is not None:
        stored = [state["hessian_diag"] for state in states]
        torch._foreach_copy_(stored, [torch.where(ok, new, old) for new, old in zip(parts, stored,
                                                                                    strict=False)])
        average = torch.cat([diagonal.reshape(-1) for diagonal in stored])
    return average.div(1 - beta ** updates) if beta else average.clone()
