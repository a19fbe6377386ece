"""The time mesh of the matrix-free solver: continuous Lagrange elements on Gauss–Lobatto nodes.

θ(t) is, on each element [τ_e, τ_{e+1}], the polynomial of degree p through p + 1 Gauss–Lobatto
nodes; neighbouring elements share their end node, so θ is continuous and the unknowns are the
N + 1 = M·p + 1 node values. The integral of J is taken by Gauss–Legendre quadrature with p + 1
points per element (exact for the kinetic term's polynomial part, degree 2p − 2). The discrete J
is then a Galerkin discretisation of the Euler–Lagrange equation (a variational integrator:
Marsden & West, Acta Numerica 10, 2001, §2.6 "Galerkin methods").

Discount scaling (the current-value form): the unknowns are scaled symmetrically by
s_j = e^{γ t_j/2}, so the matrices hold e^{γ(t_j − t_q)/2} (node j, quadrature point q of one
element) and stay O(1) although e^{−γt} spans 1 … e^{−30} over the path.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse

from ..errors import ProblemError
from ..nlp.collocation import lagrange_basis, lagrange_derivative


def lobatto_nodes(degree: int) -> np.ndarray:
    """The p + 1 Gauss–Lobatto nodes on [0, 1]: the ends and the roots of P_p'."""
    inner = np.polynomial.legendre.Legendre.basis(degree).deriv().roots()
    return 0.5 * (np.concatenate([[-1.0], np.sort(inner.real), [1.0]]) + 1.0)


def chebyshev_boundaries(horizon: float, intervals: int) -> np.ndarray:
    """Element ends clustered at both ends of [0, T] (τ_i = T(1 − cos(πi/M))/2): the start's fast
    modes and the free end's boundary layer (rate γ/2 + sqrt(γ²/4 + ηkλ)) both sit there."""
    return horizon * 0.5 * (1.0 - np.cos(np.pi * np.arange(intervals + 1) / intervals))


def geometric_boundaries(end: float, intervals: int, first: float) -> np.ndarray:
    """Element ends on [0, end] with lengths growing geometrically from ``first``: the infinite
    horizon's path decays at rates from the fastest to the slowest stable rate."""
    first = min(first, end / intervals)
    if first >= end / intervals * (1 - 1e-12):
        return np.linspace(0.0, end, intervals + 1)
    low, high = 1.0, 2.0
    while first * (high ** intervals - 1) / (high - 1) < end:
        high *= 2
    for _ in range(200):                    # bisection on the ratio q: first (q^M − 1)/(q − 1) = end
        ratio = 0.5 * (low + high)
        if first * (ratio ** intervals - 1) / (ratio - 1) < end:
            low = ratio
        else:
            high = ratio
    lengths = first * ratio ** np.arange(intervals)
    return np.concatenate([[0.0], np.cumsum(lengths * end / lengths.sum())])


@dataclass(frozen=True)
class ElementMesh:
    """Elements with ``boundaries`` (M + 1,), Lobatto ``degree`` p, discount rate γ."""

    boundaries: np.ndarray
    degree: int
    gamma: float

    def __post_init__(self):
        if self.degree < 2 or np.any(np.diff(self.boundaries) <= 0):
            raise ProblemError("a matrix-free mesh needs degree ≥ 2 and increasing element ends")

    @property
    def intervals(self) -> int:
        return len(self.boundaries) - 1

    @property
    def size(self) -> int:
        """N + 1, the number of nodes (θ0's included)."""
        return self.intervals * self.degree + 1

    @cached_property
    def times(self) -> np.ndarray:
        starts, lengths = self.boundaries[:-1], np.diff(self.boundaries)
        local = lobatto_nodes(self.degree)[:-1]
        inner = (starts[:, None] + lengths[:, None] * local[None, :]).ravel()
        return np.concatenate([inner, self.boundaries[-1:]])

    def doubled(self) -> ElementMesh:
        """Every element halved."""
        mids = 0.5 * (self.boundaries[:-1] + self.boundaries[1:])
        both = np.empty(2 * self.intervals + 1)
        both[0::2], both[1::2] = self.boundaries, mids
        return ElementMesh(both, self.degree, self.gamma)

    def element_nodes(self, e: int) -> slice:
        return slice(e * self.degree, e * self.degree + self.degree + 1)

    def sample(self, local_points: np.ndarray):
        """Matrices at the points τ_e + h_e·x (x in ``local_points`` ⊂ [0, 1], every element):
        times (Q,), value B and derivative D maps from node values (sparse Q × (N + 1)), both
        scaled by e^{γ(t_j − t_q)/2} (module docstring)."""
        local = np.asarray(local_points, dtype=float)
        nodes = lobatto_nodes(self.degree)
        basis, slope = lagrange_basis(nodes, local).T, lagrange_derivative(nodes, local).T   # (q, p+1)
        rows, cols, values, slopes, times = [], [], [], [], []
        for e in range(self.intervals):
            start, length = self.boundaries[e], self.boundaries[e + 1] - self.boundaries[e]
            t_q = start + length * local
            t_j = start + length * nodes
            scale = np.exp(0.5 * self.gamma * (t_j[None, :] - t_q[:, None]))
            q_index = e * len(local) + np.arange(len(local))
            rows.append(np.repeat(q_index, len(nodes)))
            cols.append(np.tile(e * self.degree + np.arange(len(nodes)), len(local)))
            values.append((basis * scale).ravel())
            slopes.append((slope / length * scale).ravel())
            times.append(t_q)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        shape = (self.intervals * len(local), self.size)
        B = scipy.sparse.csr_matrix((np.concatenate(values), (rows, cols)), shape=shape)
        D = scipy.sparse.csr_matrix((np.concatenate(slopes), (rows, cols)), shape=shape)
        return np.concatenate(times), B, D

    @cached_property
    def quadrature(self):
        """(times, weights, B, D) of the Gauss–Legendre rule, p + 1 points per element; weights
        include the element length, not the discount."""
        x, w = np.polynomial.legendre.leggauss(self.degree + 1)
        times, B, D = self.sample(0.5 * (x + 1.0))
        lengths = np.repeat(np.diff(self.boundaries), len(x))
        return times, np.tile(0.5 * w, self.intervals) * lengths, B, D

    @cached_property
    def node_scale(self) -> np.ndarray:
        """s_j = e^{γ t_j/2}: Θ_j = s_j Y_j."""
        return np.exp(0.5 * self.gamma * self.times)
