"""The exact moments of the discrete heavy-ball recursion (Kunin et al. 2021, Eq. 2), the
cross-check of the Ornstein–Uhlenbeck model in :mod:`problems.sgd_langevin`.

With z = (θ − μ, v) the mean obeys z_{k+1} = M z_k exactly (the gradient is linear and
unbiased), and the stationary covariance P solves the discrete Lyapunov equation
P = M P Mᵀ + (noise): with the paper's additive noise σ²H/S (which isolates the O(η) error of
the continuous model), or with ``noise="exact"`` the data's own gradient noise including its
state-dependent part (exact for batches drawn i.i.d. each step). A mixin of
:class:`problems.sgd_langevin.SGDLangevinScenario`: it reads ``lr``, ``momentum``,
``weight_decay``, ``batch``, ``H``, ``mu``, ``X``, ``residuals``, ``sigma2`` and
``eigenvectors`` from it.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

import ocp


class DiscreteRecursion:
    """Exact second moments of heavy-ball SGD (``*_discrete`` methods of the scenario)."""

    def transition(self) -> np.ndarray:
        """M of the exact mean recursion z_{k+1} − z* = M (z_k − z*) of Eq. 2."""
        d, K = self.dim, self.H + self.weight_decay * np.eye(self.dim)
        eye, beta, eta = np.eye(d), self.momentum, self.lr
        return np.block([[eye - eta * K, eta * beta * eye], [-K, beta * eye]])

    def mean_trajectory_discrete(self, theta0, steps, v0=None) -> tuple:
        """Exact E[θ_k], E[v_k] of heavy-ball SGD (the gradient is linear and unbiased)."""
        d, M = self.dim, self.transition()
        z = np.concatenate([np.asarray(theta0, float) - self.mu, np.zeros(d) if v0 is None else v0])
        out = np.empty((steps + 1, 2 * d))
        for k in range(steps + 1):
            out[k] = z
            z = M @ z
        return self.mu + out[:, :d], out[:, d:]

    def _noise_factor(self) -> float:
        if self.replacement or self.X is None:
            return 1.0 / self.batch
        n = self.X.shape[0]
        return (n - self.batch) / (self.batch * max(n - 1, 1))

    def _exact_fixed_point(self):
        """Stationary covariance of (θ − μ, v) of the discrete recursion with the data's own noise.

        Σ(θ) = Cov_i[g_i(θ)] is quadratic in θ − μ; averaged over the state it is
        Σ₀ + (1/N)Σ_i (x_iᵀPx_i) x_i x_iᵀ − HPH (P = Cov θ), linear in P. P solves the
        fixed point P = M P Mᵀ + c·G⊗Σ(P_θθ), iterated through discrete Lyapunov solves.
        Returns (P, gain) with gain the contraction ratio of that iteration; raises if ≥ 1.
        """
        if getattr(self, "_exact_cache", None) is not None:
            return self._exact_cache
        X, d, eta, c = self.X, self.dim, self.lr, self._noise_factor()
        n = X.shape[0]
        h = -X * self.residuals[:, None]                     # per-sample gradients at μ
        sigma0 = h.T @ h / n - np.outer(h.mean(0), h.mean(0))
        coupling = np.array([[eta ** 2, eta], [eta, 1.0]])
        M = self.transition()

        def solve(sigma):
            return scipy.linalg.solve_discrete_lyapunov(M, c * np.kron(coupling, sigma))

        def state_noise(Pxx):
            weights = np.einsum("ni,ij,nj->n", X, Pxx, X)
            return (X * weights[:, None]).T @ X / n - self.H @ Pxx @ self.H

        P, increment, gain = solve(sigma0), None, 0.0
        for iteration in range(500):
            new = solve(sigma0 + state_noise(P[:d, :d]))
            step = np.abs(new - P).max()
            if increment is not None and step > 1e-9 * np.abs(new).max():   # above rounding noise
                gain = step / increment
            P, increment = new, step
            if not np.isfinite(step) or (iteration >= 10 and gain >= 1.0):
                raise ocp.ProblemError(
                    f"unstable hyperparameters: the second moments of SGD diverge (gradient-noise gain "
                    f"{gain:.3g} ≥ 1); batch = {self.batch} is too small for lr = {self.lr:g} on this data; "
                    "raise the batch size or lower lr")
            if step <= 1e-14 * np.abs(P).max():
                break
        self._exact_cache = (P, float(gain))
        return self._exact_cache

    def stationary_covariance_discrete(self, noise="paper") -> np.ndarray:
        """Exact stationary covariance of (θ, v) of the discrete recursion (Eq. 2).

        noise="paper": additive gradient noise σ²H/S (the OU model's assumption, so the
        difference from :meth:`stationary_covariance` is the O(η) discretization error);
        noise="exact": the data's gradient noise, state dependence and sampling included.
        """
        if noise == "exact":
            if self.X is None:
                raise ocp.ProblemError("noise='exact' needs the data X, y")
            return self._exact_fixed_point()[0]
        if noise != "paper":
            raise ocp.ProblemError(f"noise must be 'paper' or 'exact', got {noise!r}")
        coupling = np.array([[self.lr ** 2, self.lr], [self.lr, 1.0]])
        return scipy.linalg.solve_discrete_lyapunov(
            self.transition(), np.kron(coupling, self.sigma2 * self.H / self.batch))

    def eigen_variances_discrete(self, noise="paper") -> tuple:
        P, V, d = self.stationary_covariance_discrete(noise), self.eigenvectors, self.dim
        return (np.einsum("ji,jk,ki->i", V, P[:d, :d], V), np.einsum("ji,jk,ki->i", V, P[d:, d:], V))

    def instantaneous_speed_discrete(self, noise="paper") -> float:
        """η² tr Var(v) of the discrete recursion (exact for the chosen noise model)."""
        d = self.dim
        return self.lr ** 2 * float(np.trace(self.stationary_covariance_discrete(noise)[d:, d:]))

    def global_displacement_discrete(self, lags, noise="paper") -> np.ndarray:
        """Exact E‖θ_{j+t} − θ_j‖² = 2 tr P_θθ − 2 tr [M^t P]_θθ of the stationary recursion."""
        P, M, d = self.stationary_covariance_discrete(noise), self.transition(), self.dim
        tr = np.trace(P[:d, :d])
        return np.array([2 * tr - 2 * np.trace((np.linalg.matrix_power(M, int(t)) @ P)[:d, :d])
                         for t in np.asarray(lags)])
