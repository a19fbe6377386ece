"""The checks of a matrix-free solution that do not trust the Newton iteration.

* Euler–Lagrange residual (Vastola et al. 2025, App. C; f = 0, G constant, φ = G^{1/2}θ):
  r(t) = φ̈ − γφ̇ − ηk∇L̂(φ) at p interior Gauss points of every element, where φ is the element
  polynomial (the Galerkin solution satisfies EL weakly, so r is its discretisation error),
  relative to the largest of |φ̈|, |γφ̇|, |ηk∇L̂| along the path (as ocp.euler_lagrange_error).
* Mesh agreement: the path on the mesh against the path on the doubled mesh at the coarse
  nodes, relative to the path's range.
"""
from __future__ import annotations

import numpy as np

from ..nlp.collocation import lagrange_basis, lagrange_derivative
from .mesh import lobatto_nodes


def element_samples(mesh, phi_nodes, local_points):
    """φ, φ̇, φ̈ of the element polynomials at ``local_points`` ⊂ (0, 1) of every element, and
    the times: arrays (M·q, D) and (M·q,)."""
    nodes = lobatto_nodes(mesh.degree)
    values = lagrange_basis(nodes, local_points).T              # (q, p+1)
    first = lagrange_derivative(nodes, local_points).T          # (q, p+1)
    at_nodes = lagrange_derivative(nodes, nodes).T              # (p+1, p+1): φ'(x_i) = Σ_k [i, k] φ_k
    second = first @ at_nodes
    out = {"phi": [], "velocity": [], "acceleration": [], "t": []}
    for e in range(mesh.intervals):
        block = phi_nodes[mesh.element_nodes(e)]
        length = mesh.boundaries[e + 1] - mesh.boundaries[e]
        out["phi"].append(values @ block)
        out["velocity"].append(first @ block / length)
        out["acceleration"].append(second @ block / length ** 2)
        out["t"].append(mesh.boundaries[e] + length * np.asarray(local_points))
    return {key: np.concatenate(value) for key, value in out.items()}


def euler_lagrange_error(metric_loss, mesh, phi_nodes, eta, k, until=np.inf):
    """max |r| / max term (module docstring) at the Gauss points t ≤ ``until`` (mesh time), from one
    batched gradient call."""
    x, _ = np.polynomial.legendre.leggauss(mesh.degree)
    samples = element_samples(mesh, phi_nodes, 0.5 * (x + 1.0))
    kept = samples["t"] <= until
    samples = {key: value[kept] for key, value in samples.items()}
    pull = eta * k * metric_loss.gradients(samples["phi"])
    damping = mesh.gamma * samples["velocity"]
    residual = samples["acceleration"] - damping - pull
    size = max(np.abs(samples["acceleration"]).max(), np.abs(damping).max(), np.abs(pull).max(), 1e-300)
    return float(np.abs(residual).max() / size)


def node_velocities(mesh, phi_nodes):
    """φ̇ at the nodes: each element's derivative at its nodes (a shared node takes the mean of its
    two elements'; they agree to the discretisation error)."""
    nodes = lobatto_nodes(mesh.degree)
    at_nodes = lagrange_derivative(nodes, nodes).T
    velocity, weight = np.zeros_like(phi_nodes), np.zeros(len(phi_nodes))
    for e in range(mesh.intervals):
        where = mesh.element_nodes(e)
        velocity[where] += at_nodes @ phi_nodes[where] / (mesh.boundaries[e + 1] - mesh.boundaries[e])
        weight[where] += 1
    return velocity / weight[:, None]


def mesh_agreement(coarse, fine, until=np.inf) -> float:
    """max |θ_coarse − θ_fine| at the coarse nodes up to ``until`` over the coarse path's range there."""
    kept = coarse.t <= until
    theta = coarse.theta[kept]
    path_range = max(np.abs(theta - theta[0]).max(), 1e-300)
    return float(np.abs(fine(coarse.t[kept]) - theta).max() / path_range)
