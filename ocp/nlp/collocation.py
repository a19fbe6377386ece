"""Pure node mathematics for direct collocation on one finite element.

Everything here is a plain function of the scheme and degree, independent of any
problem. Reference element τ ∈ [0, 1]; node 0 is the element start τ = 0, nodes
1..d are the collocation points (Gauss–Legendre or Gauss–Radau, from
``casadi.collocation_points``). The state is the Lagrange polynomial through the
d + 1 nodes (Biegler, *Nonlinear Programming*, SIAM 2010, Sec. 10.2).

* ``derivative`` D[k, i] = ℓ_k'(τ_i): dθ/dτ at collocation point i is Σ_k D[k, i] θ_k.
* ``continuity`` c[k] = ℓ_k(1): the end state Σ_k c[k] θ_k.
* ``quadrature`` b[i] = ∫_0^1 ℓ̃_i(τ) dτ for the interpolant ℓ̃_i through the collocation
  points only; the Gauss–Legendre rule is exact to degree 2d − 1, Radau to 2d − 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import casadi
import numpy as np

SCHEMES = ("legendre", "radau")


def lagrange_basis(nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Values ℓ_k(x_j) of the Lagrange basis on ``nodes``: array (len(nodes), len(x))."""
    nodes = np.asarray(nodes, dtype=float)
    x = np.atleast_1d(np.asarray(x, dtype=float))
    basis = np.ones((len(nodes), len(x)))
    for k, node_k in enumerate(nodes):
        for m, node_m in enumerate(nodes):
            if m != k:
                basis[k] *= (x - node_m) / (node_k - node_m)
    return basis


def lagrange_derivative(nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Derivatives ℓ_k'(x_j) of the Lagrange basis on ``nodes``: (len(nodes), len(x)).

    ℓ_k' has degree < len(nodes), so it is its own interpolant on the nodes:
    ℓ_k'(x) = Σ_i ℓ_i(x) D[i, k] with the differentiation matrix D[i, k] = ℓ_k'(x_i) in
    barycentric form, D[i, k] = (w_k / w_i)/(x_i − x_k), D[i, i] = −Σ_{k≠i} D[i, k]
    (Berrut & Trefethen, SIAM Review 46, 2004, §9)."""
    nodes = np.asarray(nodes, dtype=float)
    gaps = nodes[:, None] - nodes[None, :]
    np.fill_diagonal(gaps, 1.0)
    weights = 1.0 / gaps.prod(axis=1)
    D = (weights[None, :] / weights[:, None]) / gaps
    np.fill_diagonal(D, 0.0)
    np.fill_diagonal(D, -D.sum(axis=1))
    return D.T @ lagrange_basis(nodes, x)


@dataclass(frozen=True)
class ElementScheme:
    """Collocation matrices of one scheme and degree on the reference element."""

    scheme: str
    degree: int
    nodes: np.ndarray        # (d + 1,): 0 then the collocation points
    derivative: np.ndarray   # (d + 1, d)
    continuity: np.ndarray   # (d + 1,)
    quadrature: np.ndarray   # (d,)

    @property
    def points(self) -> np.ndarray:
        return self.nodes[1:]


@lru_cache(maxsize=None)
def element_scheme(scheme: str, degree: int) -> ElementScheme:
    """Collocation matrices for ``scheme`` ∈ {'legendre', 'radau'} and degree d ≥ 1."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if int(degree) != degree or not 1 <= degree <= 12:
        raise ValueError(f"degree must be an integer in [1, 12], got {degree!r}")
    points = np.array(casadi.collocation_points(int(degree), scheme))
    nodes = np.concatenate([[0.0], points])
    derivative = lagrange_derivative(nodes, points)
    continuity = lagrange_basis(nodes, [1.0])[:, 0]
    # Quadrature weights: integrate the Lagrange basis on the collocation points
    # exactly with a Gauss–Legendre rule of sufficient order.
    gauss_x, gauss_w = np.polynomial.legendre.leggauss(int(degree) + 1)
    gauss_x, gauss_w = 0.5 * (gauss_x + 1.0), 0.5 * gauss_w
    quadrature = lagrange_basis(points, gauss_x) @ gauss_w
    for array in (nodes, derivative, continuity, quadrature):
        array.setflags(write=False)
    return ElementScheme(scheme, int(degree), nodes, derivative, continuity, quadrature)
