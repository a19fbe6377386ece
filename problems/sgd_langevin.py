"""SGD with momentum on linear regression as an Ornstein–Uhlenbeck process (Kunin et al. 2021).

Heavy-ball SGD (paper Eq. 2, the update torch.optim.SGD performs with v = −momentum_buffer)

    v_{k+1} = β v_k − ĝ(θ_k) − λ θ_k,    θ_{k+1} = θ_k + η v_{k+1}

on L(θ) = ‖y − Xθ‖²/2N (H = XᵀX/N, b = Xᵀy/N, μ = (H + λI)⁻¹b) is modelled, with one step
lasting η units of time, by the underdamped Langevin equation (Sec. 3)

    (η/2)(1+β) θ̈ + (1−β) θ̇ + (H + λI)(θ − μ) = √(ηΣ/S) ξ(t),   Σ = σ²H (Assumption 3)

i.e. the OU process dz = −A(z − z*)dt + √(2κ⁻¹D) dW of Eqs. 5–6, κ = S(1−β²). Everything the
paper derives from it lives here: the damped oscillators of the mean (Eq. 7, App. F.2), the
stationary covariance κ⁻¹B with AB + BAᵀ = 2D (Eqs. 8–9; Lyapunov solve and closed form),
A = (D + Q)U, the modified loss Ψ = ½ zᵀUz and current J = −QUz·p (Eqs. 11–12, 47),
the speed E‖δ‖² (Eq. 16) and the displacement E‖Δ_k‖² (Eq. 17), evaluated at lag τ = kη.

The discrete recursion's exact moments are the cross-check (the ``*_discrete`` methods): with
z = (θ − μ, v) the mean obeys z_{k+1} = M z_k exactly (the gradient is linear and unbiased),
and the stationary covariance P solves the discrete Lyapunov equation P = M P Mᵀ + (noise),
with the paper's additive noise σ²H/S (which isolates the O(η) error of the continuous model)
or, with ``noise="exact"``, the data's own gradient noise including its state-dependent part
(exact for batches drawn i.i.d. each step).
See docs/sgd_langevin.md for the derivations and the printed formulas found wrong.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

import ocp

from .checks import bounded, integer


class SGDLangevinScenario:
    """Hyperparameters (lr η, momentum β, weight_decay λ, batch S) and a dataset.

    Give either ``X, y`` (H, b, μ and the exact gradient noise follow; ``sigma2`` defaults to
    the residual variance ‖y − Xμ‖²/(N − d)) or ``H, sigma2`` (and optionally ``mu``).
    ``replacement``: batches drawn with replacement (noise Σ/S) or as S distinct samples
    (Σ/S · (N−S)/(N−1)); in both cases independently at every step.
    """

    name = "sgd_langevin"
    reference = ("Kunin, Sagastuy-Brena, Gillespie, Margalit, Tanaka, Ganguli & Yamins (2021), "
                 "'Rethinking the limiting dynamics of SGD', Secs. 3-5 and 7, Eqs. 2-9, 11-12, 16-17, "
                 "App. F-G: heavy-ball SGD on linear regression as an Ornstein-Uhlenbeck process")

    def __init__(self, *, lr, momentum=0.0, weight_decay=0.0, batch=1, X=None, y=None,
                 H=None, sigma2=None, mu=None, replacement=True):
        self.lr = bounded("lr", lr, 0.0, low_open=True)
        self.momentum = bounded("momentum", momentum, 0.0, 1.0, high_open=True)
        self.weight_decay = bounded("weight_decay", weight_decay, 0.0)
        self.batch = integer("batch", batch, low=1)
        self.replacement = bool(replacement)
        self.X = self.y = None
        if X is not None:
            self._set_data(X, y)
        elif H is not None:
            self._set_hessian(H, mu)
        else:
            raise ocp.ProblemError("give the data (X, y) or the Hessian H")
        if sigma2 is None:
            if self.X is None:
                raise ocp.ProblemError("parameter 'sigma2' (label-noise variance) is required with H")
            n, d = self.X.shape
            sigma2 = np.sum(self.residuals ** 2) / max(n - d, 1)
        self.sigma2 = bounded("sigma2", sigma2, 0.0)
        self.rho, self.eigenvectors = np.linalg.eigh(self.H)   # ascending
        self.rho = np.clip(self.rho, 0.0, None)
        if self.rho.min() + self.weight_decay <= 1e-12 * max(1.0, self.rho.max()):
            raise ocp.ProblemError(
                f"H + weight_decay·I must be positive definite (smallest eigenvalue {self.rho.min():.3g}); "
                "use at least as many samples as dimensions, or weight_decay > 0")

    def _set_data(self, X, y):
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
            raise ocp.ProblemError(f"X must be a non-empty (samples, dim) matrix, got shape {X.shape}")
        if y.shape != (X.shape[0],):
            raise ocp.ProblemError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ocp.ProblemError("X and y must be finite")
        if not self.replacement and self.batch > X.shape[0]:
            raise ocp.ProblemError(f"parameter 'batch' = {self.batch} exceeds the {X.shape[0]} samples "
                                   "(sampling without replacement)")
        self.X, self.y = X, y
        n = X.shape[0]
        self.H = X.T @ X / n
        K = self.H + self.weight_decay * np.eye(X.shape[1])
        self.mu = np.linalg.lstsq(K, X.T @ y / n, rcond=None)[0]
        self.residuals = y - X @ self.mu

    def _set_hessian(self, H, mu):
        H = np.atleast_2d(np.asarray(H, dtype=float))
        if H.ndim != 2 or H.shape[0] != H.shape[1] or not np.isfinite(H).all():
            raise ocp.ProblemError(f"H must be a finite square matrix, got shape {H.shape}")
        if not np.allclose(H, H.T, atol=1e-12 * max(1.0, np.abs(H).max())):
            raise ocp.ProblemError("H must be symmetric")
        if np.linalg.eigvalsh(H).min() < -1e-12 * max(1.0, np.abs(H).max()):
            raise ocp.ProblemError("H must be positive semidefinite")
        self.H = H
        self.mu = np.zeros(len(H)) if mu is None else np.asarray(mu, dtype=float).reshape(len(H))

    # -- parameters of the Langevin equation ---------------------------------------------
    @property
    def dim(self) -> int:
        return len(self.H)

    @property
    def kappa(self) -> float:
        """Inverse temperature κ = S(1 − β²)."""
        return self.batch * (1.0 - self.momentum ** 2)

    @property
    def mass(self) -> float:
        return 0.5 * self.lr * (1.0 + self.momentum)

    @property
    def friction(self) -> float:
        return 1.0 - self.momentum

    @property
    def damping_rate(self) -> float:
        """γ = friction / (2·mass) = (1−β)/(η(1+β)), per unit time (one step = η)."""
        return self.friction / (2.0 * self.mass)

    @property
    def frequencies2(self) -> np.ndarray:
        """ω_i² = 2(ρ_i + λ)/(η(1+β)) per Hessian eigendirection."""
        return (self.rho + self.weight_decay) / self.mass

    def drift(self) -> np.ndarray:
        """A of Eq. 6: dz = −A(z − z*)dt + ..., z = (θ, v)."""
        d, K = self.dim, self.H + self.weight_decay * np.eye(self.dim)
        return np.block([[np.zeros((d, d)), -np.eye(d)],
                         [K / self.mass, (self.friction / self.mass) * np.eye(d)]])

    def diffusion(self) -> np.ndarray:
        """D of Eq. 6 with Σ = σ²H; the noise of the OU process is √(2κ⁻¹D) dW."""
        d = self.dim
        D = np.zeros((2 * d, 2 * d))
        D[d:, d:] = (self.friction / self.mass) * self.sigma2 * self.H
        return D

    # -- stability ----------------------------------------------------------------------
    def stability(self) -> dict:
        """Raise ocp.ProblemError if heavy-ball SGD diverges at these hyperparameters.

        The mean obeys z_{k+1} = M z_k, stable iff 0 < η(ρ + λ) < 2(1 + β) for every
        eigenvalue ρ of H (and 0 ≤ β < 1). With data, the second moments must also stay
        bounded under the state-dependent gradient noise (checked in the exact fixed point).
        Returns the numbers checked.
        """
        top = self.rho.max() + self.weight_decay
        bound = 2.0 * (1.0 + self.momentum)
        if self.lr * top >= bound:
            raise ocp.ProblemError(
                f"unstable hyperparameters: lr·(λ_max(H) + weight_decay) = {self.lr * top:.4g} is beyond "
                f"the heavy-ball stability bound 2(1 + momentum) = {bound:.4g}; "
                f"use lr < {bound / top:.4g}")
        info = {"lr_lambda_max": float(self.lr * top), "bound": bound,
                "lr_lambda_max_over_1_minus_beta": float(self.lr * top / self.friction)}
        if self.X is not None:
            info["noise_gain"] = self._exact_fixed_point()[1]
        return info

    # -- mean (Eq. 7, App. F.2) ---------------------------------------------------------
    def _oscillator(self, t):
        """e^{−γt}cos(αt) and e^{−γt}sin(αt)/α, α = √(ω² − γ²) (complex: cosh/sinh when overdamped).

        Shapes (len(t), dim). Written with e^{(−γ ± iα)t} so overdamped modes never overflow.
        """
        t = np.asarray(t, dtype=float)[:, None]
        gamma = self.damping_rate
        alpha = np.sqrt(self.frequencies2 - gamma ** 2 + 0j)[None, :]
        plus, minus = np.exp((-gamma + 1j * alpha) * t), np.exp((-gamma - 1j * alpha) * t)
        cos = ((plus + minus) / 2).real
        small = np.abs(alpha) * np.maximum(t, 1e-300) < 1e-6
        with np.errstate(invalid="ignore", divide="ignore"):
            sin = np.where(small, t * np.exp(-gamma * t), ((plus - minus) / (2j * alpha)).real)
        return cos, sin

    def mean_trajectory(self, theta0, steps, v0=None) -> tuple:
        """E[θ_k], E[v_k] of the OU model (Eq. 7) at t = kη, k = 0..steps: (θ, v), each (steps+1, d)."""
        a0 = self.eigenvectors.T @ (np.asarray(theta0, dtype=float) - self.mu)
        b0 = np.zeros(self.dim) if v0 is None else self.eigenvectors.T @ np.asarray(v0, dtype=float)
        cos, sin = self._oscillator(self.lr * np.arange(steps + 1))
        gamma, omega2 = self.damping_rate, self.frequencies2
        a = cos * a0 + sin * (gamma * a0 + b0)
        b = cos * b0 - sin * (omega2 * a0 + gamma * b0)
        return self.mu + a @ self.eigenvectors.T, b @ self.eigenvectors.T

    # -- stationary covariance (Eqs. 8-9, 12; App. F) -----------------------------------
    def stationary_covariance(self, method="lyapunov") -> np.ndarray:
        """κ⁻¹B, B solving AB + BAᵀ = 2D ("lyapunov", scipy) or B = U⁻¹ ("closed_form", Eq. 47)."""
        if method == "lyapunov":
            return scipy.linalg.solve_continuous_lyapunov(self.drift(), 2.0 * self.diffusion()) / self.kappa
        if method == "closed_form":
            px, pv = self.eigen_variances()
            V = self.eigenvectors
            d = self.dim
            out = np.zeros((2 * d, 2 * d))
            out[:d, :d] = (V * px) @ V.T
            out[d:, d:] = (V * pv) @ V.T
            return out
        raise ocp.ProblemError(f"method must be 'lyapunov' or 'closed_form', got {method!r}")

    def covariance_check(self) -> float:
        """Max |Lyapunov − closed form| relative to the largest entry."""
        a, b = self.stationary_covariance("lyapunov"), self.stationary_covariance("closed_form")
        return float(np.abs(a - b).max() / np.abs(b).max())

    def eigen_variances(self) -> tuple:
        """Stationary Var(q_iᵀθ), Var(q_iᵀv) of the OU model:
        ησ²ρ/(2S(1−β)(ρ+λ)) and σ²ρ/(S(1−β²))."""
        rho, s2, S, beta, lam = self.rho, self.sigma2, self.batch, self.momentum, self.weight_decay
        return self.lr * s2 * rho / (2 * S * (1 - beta) * (rho + lam)), s2 * rho / self.kappa

    # -- modified loss and current (Sec. 5, Eqs. 11-12, App. F.1) ------------------------
    def decomposition(self, method="lyapunov") -> tuple:
        """(U, Q) with A = (D + Q)U, Q skew, U ≻ 0 (Kwon et al.). "lyapunov": U = B⁻¹, Q = AB − D;
        "closed_form": Eq. 47. Needs H ≻ 0 and σ² > 0."""
        if self.rho.min() <= 0 or self.sigma2 <= 0:
            raise ocp.ProblemError("the modified loss needs H positive definite and sigma2 > 0")
        d = self.dim
        if method == "lyapunov":
            B = self.kappa * self.stationary_covariance("lyapunov")
            return np.linalg.inv(B), self.drift() @ B - self.diffusion()
        if method != "closed_form":
            raise ocp.ProblemError(f"method must be 'lyapunov' or 'closed_form', got {method!r}")
        K, Hinv = self.H + self.weight_decay * np.eye(d), np.linalg.inv(self.H)
        zero = np.zeros((d, d))
        U = np.block([[Hinv @ K / (self.mass * self.sigma2), zero], [zero, Hinv / self.sigma2]])
        Q = np.block([[zero, -self.sigma2 * self.H], [self.sigma2 * self.H, zero]])
        return U, Q

    def modified_loss(self, theta, v) -> np.ndarray:
        """Ψ(θ, v) = ½ (z − z*)ᵀU(z − z*) (Eq. 11); θ, v of shape (..., d)."""
        U, _ = self.decomposition("closed_form")
        z = np.concatenate([np.asarray(theta, float) - self.mu, np.asarray(v, float)], axis=-1)
        return 0.5 * np.einsum("...i,ij,...j->...", z, U, z)

    def stationary_current(self, theta, v) -> np.ndarray:
        """J_ss = −QU(z − z*) p_ss(z) (Eq. 11), shape (..., 2d); QU = [[0, −I], [(H+λI)/m, 0]]."""
        U, Q = self.decomposition("closed_form")
        z = np.concatenate([np.asarray(theta, float) - self.mu, np.asarray(v, float)], axis=-1)
        P = self.stationary_covariance("closed_form")
        density = np.exp(-0.5 * np.einsum("...i,ij,...j->...", z, np.linalg.inv(P), z)) / \
            np.sqrt(np.linalg.det(2 * np.pi * P))
        return -np.einsum("ij,...j->...i", Q @ U, z) * density[..., None]

    # -- speed and displacement (Sec. 7, Eqs. 16-17, App. G) -----------------------------
    def instantaneous_speed(self) -> float:
        """E‖δ‖² = η²σ² tr(H) / (S(1 − β²)) (Eq. 16)."""
        return self.lr ** 2 * self.sigma2 * float(np.trace(self.H)) / self.kappa

    def global_displacement(self, lags) -> np.ndarray:
        """E‖Δ_t‖² = η²[t tr Var v + 2 Σ_{k<t} (t−k) tr Cov(v_0, v_k)] (Eq. 17) at integer lags t.

        The velocity correlation of direction l is σ²ρ_l/κ · e^{−γτ}(cos ατ − (γ/α) sin ατ) with
        τ = kη: one step lasts η in the OU model's time (the printed C_l(k) uses τ = k).
        """
        lags = np.asarray(lags, dtype=int)
        top = int(lags.max())
        cos, sin = self._oscillator(self.lr * np.arange(1, top + 1))
        _, pv = self.eigen_variances()
        corr = ((cos - self.damping_rate * sin) * pv).sum(axis=1)      # tr Cov(v_0, v_k)
        k = np.arange(1, top + 1)
        cum, cum_k = np.concatenate([[0.0], np.cumsum(corr)]), np.concatenate([[0.0], np.cumsum(k * corr)])
        t = lags.astype(float)
        cross = t * cum[lags - 1] - cum_k[lags - 1]                     # Σ_{k=1}^{t-1} (t−k) C(k)
        return self.lr ** 2 * (t * pv.sum() + 2.0 * cross)

    def global_displacement_ou(self, lags) -> np.ndarray:
        """E‖θ(τ) − θ(0)‖² of the stationary OU process itself, τ = tη:
        Σ_l 2 Var(θ_l)(1 − e^{−γτ}(cos ατ + (γ/α) sin ατ)). Saturates at 2 tr Var θ; Eq. 17
        (a Riemann sum of the same correlation) instead keeps an O(η) linear growth."""
        cos, sin = self._oscillator(self.lr * np.asarray(lags, dtype=float))
        px, _ = self.eigen_variances()
        return (2.0 * px * (1.0 - cos - self.damping_rate * sin)).sum(axis=1)

    # -- the discrete recursion (Eq. 2): exact moments, the cross-check of the OU model ---
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


def diffusion_exponent(lags, displacement) -> float:
    """Least-squares slope c of log E‖Δ_k‖² against log k (‖Δ_k‖² ∝ k^c, Sec. 2)."""
    lags, displacement = np.asarray(lags, float), np.asarray(displacement, float)
    keep = displacement > 0
    return float(np.polyfit(np.log(lags[keep]), np.log(displacement[keep]), 1)[0])
