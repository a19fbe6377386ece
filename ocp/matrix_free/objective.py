"""The discrete J of the matrix-free solver, its gradient and Hessian-vector products.

In the coordinates φ = G^{1/2}θ (G constant; L̂(φ) = L(G^{−1/2}φ)) the objective of Vastola et al.
2025, Eq. 2 with f = 0 is J = ∫ e^{−γt}[(1/2η)|φ̇|² + k L̂(φ)] dt. On an :class:`ElementMesh`
with the scaled unknowns Y (Θ_j = e^{γt_j/2} Y_j) and the Gauss rule (t_q, w_q):

    J(Y)   = Σ_q w_q [ (1/2η)|(D̃Y)_q|² + k e^{−γt_q} L̂(φ_q) ],     φ_q = e^{γt_q/2}(B̃Y)_q
    ∇J     = D̃ᵀ W D̃ Y / η + B̃ᵀ W k e^{−γt_q/2} ∇L̂(φ_q)
    ∇²J·V  = D̃ᵀ W D̃ V / η + B̃ᵀ W k ∇²L̂(φ_q)(B̃V)_q                 (one batched HVP call)

The kinetic part is a banded N × N matrix (⊗ I_D); with the curvature shift σ it is the
preconditioner P = D̃ᵀWD̃/η + kσ B̃ᵀWB̃, factorised once (banded Cholesky) and applied to all D
coordinates at once. No D × D matrix is formed: the state is an (N, D) array.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg


def apply_symmetric(factor, rows):
    """``factor``·r for every row r: None (the identity), a vector (a diagonal) or a symmetric
    matrix (rows times the matrix)."""
    if factor is None:
        return rows
    return rows * factor if factor.ndim == 1 else rows @ factor


class MetricLoss:
    """L̂(φ) = L(G^{−1/2}φ) of an ExternalLoss under a constant metric (None, diagonal or SPD)."""

    def __init__(self, loss, metric):
        self.loss = loss
        self.key = None if metric is None else np.asarray(metric, dtype=float).tobytes()   # memo key
        self.root = self.inverse_root = None          # G^{1/2}, G^{−1/2}: vectors (diagonal G) or matrices
        if metric is not None and np.ndim(metric) == 1:
            self.root, self.inverse_root = np.sqrt(metric), 1.0 / np.sqrt(metric)
        elif metric is not None:
            values, vectors = np.linalg.eigh(metric)
            self.inverse_root = (vectors / np.sqrt(values)) @ vectors.T
            self.root = (vectors * np.sqrt(values)) @ vectors.T

    def theta(self, phi):
        """θ = G^{−1/2}φ (rows of an array)."""
        return apply_symmetric(self.inverse_root, phi)

    def phi(self, theta):
        return apply_symmetric(self.root, theta)

    def pull_back(self, covector):
        """G^{−1/2}·c: a θ-gradient as a φ-gradient."""
        return apply_symmetric(self.inverse_root, covector)

    def value(self, phi) -> float:
        return self.loss.value(self.theta(phi))

    def values(self, phis):
        return self.loss.values(self.theta(phis))

    def gradients(self, phis):
        return self.pull_back(self.loss.gradients(self.theta(phis)))

    def hvps(self, phis, vs, krylov=False):
        return self.pull_back(self.loss.hvps(self.theta(phis), self.theta(vs), krylov=krylov))


class DiscreteObjective:
    """J on ``mesh`` from φ0, its end free (``end`` None) or fixed at φ(T) = ``end``."""

    def __init__(self, metric_loss, mesh, eta, k, phi0, end=None, shift=0.0):
        self.metric_loss, self.mesh, self.eta, self.k = metric_loss, mesh, eta, k
        self.t_q, self.w_q, B, D = mesh.quadrature
        n = mesh.size
        self.free = np.arange(1, n - 1 if end is not None else n)
        fixed = np.zeros((n, len(phi0)))
        fixed[0] = phi0
        if end is not None:
            fixed[-1] = end / mesh.node_scale[-1]
        self.B, self.D = B[:, self.free].tocsr(), D[:, self.free].tocsr()
        self.B_fixed, self.D_fixed = B @ fixed, D @ fixed     # (Q, D): θ0's (and the end's) share
        self.fixed, self.discount_root = fixed, np.exp(-0.5 * mesh.gamma * self.t_q)
        self.set_shift(shift)

    # -- the path -----------------------------------------------------------------------------
    def positions(self, Y):
        """φ at the quadrature points (Q, D)."""
        return (self.B @ Y + self.B_fixed) / self.discount_root[:, None]

    def nodes(self, Y):
        """φ at every node (N + 1, D), θ0 (and the fixed end) included."""
        full = self.fixed.copy()
        full[self.free] = Y
        return full * self.mesh.node_scale[:, None]

    def unknowns(self, phi_nodes):
        """Y of node values φ (N + 1, D)."""
        return phi_nodes[self.free] / self.mesh.node_scale[self.free, None]

    # -- J and its derivatives ------------------------------------------------------------------
    def value(self, Y) -> float:
        kinetic = self.D @ Y + self.D_fixed
        phis = self.positions(Y)
        losses = self.metric_loss.values(phis)
        return float(self.w_q @ (0.5 / self.eta * np.einsum("qd,qd->q", kinetic, kinetic)
                                 + self.k * self.discount_root ** 2 * losses))

    def gradient(self, Y):
        """∇J(Y) and the quadrature positions (kept for the HVPs at this Y)."""
        phis = self.positions(Y)
        kinetic = self.w_q[:, None] * (self.D @ Y + self.D_fixed) / self.eta
        potential = (self.k * self.w_q * self.discount_root)[:, None] * self.metric_loss.gradients(phis)
        return self.D.T @ kinetic + self.B.T @ potential, phis

    def hvp(self, phis, V):
        """∇²J·V at the Y whose quadrature positions are ``phis`` (the loss's Krylov-precision HVPs:
        only the CG iterations use it)."""
        kinetic = self.D.T @ (self.w_q[:, None] * (self.D @ V)) / self.eta
        inner = self.B @ V
        curvature = self.metric_loss.hvps(phis, inner, krylov=True)
        return kinetic + self.B.T @ ((self.k * self.w_q)[:, None] * curvature)

    # -- the preconditioner ----------------------------------------------------------------------
    def set_shift(self, shift):
        """Factorise P = D̃ᵀWD̃/η + kσ B̃ᵀWB̃ (banded, bandwidth p) for σ = ``shift`` ≥ 0."""
        W = self.w_q
        P = (self.D.T @ (self.D.multiply(W[:, None])) / self.eta
             + self.k * max(shift, 0.0) * (self.B.T @ self.B.multiply(W[:, None]))).toarray()
        band = self.mesh.degree
        n = P.shape[0]
        banded = np.zeros((band + 1, n))
        for offset in range(band + 1):
            banded[offset, :n - offset] = np.diagonal(P, -offset)
        self.shift, self._factor = shift, scipy.linalg.cholesky_banded(banded, lower=True)

    def metric(self, V):
        """P·V (the trust region's norm ‖V‖²_P = V·PV), from the sparse factors of P."""
        W = self.w_q[:, None]
        return (self.D.T @ (W * (self.D @ V)) / self.eta
                + self.k * max(self.shift, 0.0) * (self.B.T @ (W * (self.B @ V))))

    def precondition(self, R):
        """P⁻¹R for all D columns at once."""
        return scipy.linalg.cho_solve_banded((self._factor, True), R, check_finite=False)
