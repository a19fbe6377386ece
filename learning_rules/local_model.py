"""The local model of the loss that :class:`learning_rules.RecedingHorizon` plans on.

Around the current θ0 the loss is modelled (Vastola, Gershman & Rajan 2025, App. E: the local
quadratic model of the learning OCP) as

    L(θ0 + Qa + c) ≈ L(θ0) + bᵀa + ½aᵀTa + gᵀc + ½cᵀDc,    b = Qᵀg,  T = QᵀHQ,  QᵀQ = I, Qᵀc = 0,

with Q an orthonormal basis of a small subspace and D a diagonal curvature for the
complement (the coupling QᵀHc is neglected: a Galerkin model). Everything is measured with
torch inside ``step``: the gradient g, and Hessian-vector products of the graph-carrying
gradient (``torch.autograd.grad`` of gᵀv, batched with ``is_grads_batched``, i.e.
``torch.func.vmap``). Subspace: the gradient, the displacement since the last re-plan
(a momentum-like direction) and block-Lanczos directions, the components of H·q orthogonal
to the basis (Krylov directions of H from g). Cost: one HVP per basis vector (the Lanczos
expansion reuses the products the projection needs), i.e. m HVPs ≈ 2m gradient evaluations
for an m-dimensional subspace.

Everything stays on the parameters' device and nothing is read by the host: a direction that
breaks down (residual below ``BREAKDOWN`` of its norm, or not finite) is kept as a zero row
of Q, decided by ``torch.where`` on the device, instead of being dropped after a host test.
A zero row gives zero rows of T and b, so it plans no motion; the caller learns which rows
live from the row norms when it reads the model (once per re-plan, see
:class:`learning_rules.RecedingHorizon`). The subspace therefore always has ``dimension`` rows
and costs exactly ``dimension`` HVPs.
"""
from __future__ import annotations

import torch

from .curvature import hessian_vector_products

BREAKDOWN = 1e-8      # a direction whose residual is below this fraction of its norm is dropped


def orthonormal_append(basis, candidates, tol=BREAKDOWN):
    """Append to ``basis`` (list of flat rows, each a unit vector or zero) one row per candidate:
    its orthonormalised residual (classical Gram–Schmidt twice, "CGS2", orthogonal to
    round-off), or zeros when the residual is below ``tol`` of the candidate's norm or not
    finite. Decided on the device (no host read); returns the new rows."""
    added = []
    for vector in candidates:
        if vector is None:
            continue
        norm = vector.norm()
        residual = vector.clone()
        if basis or added:
            rows = torch.stack(basis + added)
            for _ in range(2):
                residual.sub_(rows.mT @ (rows @ residual))
        remaining = residual.norm()
        keep = (remaining > tol * norm) & torch.isfinite(remaining)
        added.append(torch.where(keep, residual / remaining, torch.zeros_like(residual)))
    basis.extend(added)
    return added


def batched_hvp(graph_grads, params, directions, maximize=False):
    """H v for each flat direction v (list) over the flattened ``params``: (len, n) tensor.

    One batched autograd call (vmap over the directions); falls back to one call per
    direction for operations without a batching rule."""
    sizes = [p.numel() for p in params]
    stacked = torch.stack(directions)
    pieces = torch.split(stacked, sizes, dim=1)
    vectors = [part.reshape(len(directions), *p.shape) for part, p in zip(pieces, params, strict=True)]
    live = [i for i, g in enumerate(graph_grads) if g is not None and g.requires_grad]
    if not live:
        return torch.zeros_like(stacked)
    try:
        with torch.enable_grad():
            products = torch.autograd.grad([graph_grads[i] for i in live], params,
                                           [vectors[i] for i in live], retain_graph=True,
                                           allow_unused=True, is_grads_batched=True)
        out = torch.cat([torch.zeros(len(directions), p.numel(), dtype=stacked.dtype, device=stacked.device)
                         if h is None else h.reshape(len(directions), -1)
                         for h, p in zip(products, params, strict=True)], 1)
    except RuntimeError:
        rows = []
        for direction in directions:
            parts = [part.view_as(p) for part, p in zip(torch.split(direction, sizes), params, strict=True)]
            products = hessian_vector_products(graph_grads, params, parts)
            rows.append(torch.cat([h.reshape(-1) for h in products]))
        out = torch.stack(rows)
    return out.neg_() if maximize else out


def subspace_model(gradient, graph_grads, params, dimension, previous=None, maximize=False, scale=None,
                   probes=()):
    """(Q (m, n), T (m, m), b (m,), hvps used = m, probe products) with m = ``dimension``, on the device.

    Basis: g, then ``previous`` (the last displacement), then block-Lanczos directions
    (H q residuals) until ``dimension`` rows; rows that broke down (an invariant subspace, a
    zero gradient) are zero (module docstring).
    ``scale`` s (flat, optional): everything in the whitened coordinates y = θ/s of a
    diagonal metric G = s⁻²: ``gradient`` and ``previous`` are given whitened (s ⊙ g, Δθ / s)
    and H̃v = s ⊙ H(s ⊙ v).
    ``probes``: further flat directions z (e.g. Hutchinson's) whose plain products Hz are
    wanted; they ride in the first batched call, returned as a (len(probes), n) tensor."""
    def products_of(directions):
        if scale is None:
            return batched_hvp(graph_grads, params, directions, maximize)
        return batched_hvp(graph_grads, params, [scale * q for q in directions], maximize).mul_(scale)

    basis = []
    orthonormal_append(basis, [gradient, previous][:dimension])
    first = basis if scale is None else [scale * q for q in basis]
    raw = batched_hvp(graph_grads, params, first + list(probes), maximize)
    products, probe_products = raw[:len(basis)], raw[len(basis):]
    if scale is not None:
        products.mul_(scale)
    hvps = len(basis)
    block = products
    while len(basis) < dimension:
        added = orthonormal_append(basis, list(block)[: dimension - len(basis)])
        block = products_of(added)
        hvps += len(added)
        products = torch.cat([products, block])
    Q = torch.stack(basis)
    T = Q @ products.mT
    T = 0.5 * (T + T.mT)
    return Q, T, Q @ gradient, hvps, probe_products
