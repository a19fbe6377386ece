"""Pure step kernels of the optimal rules: functions of tensors, no optimizer state.

Everything here is the exact displacement of the discounted-optimal path over one step Δt
of a *local* linear–quadratic model (Vastola, Gershman & Rajan 2025, App. E, F, G):

    L(θ) ≈ L(θ0) + gᵀ(θ − θ0) + ½(θ − θ0)ᵀH(θ − θ0),   metric G,   drift f(θ) = Aθ.

Spectral form (A = −jI, weight decay; j = 0 without drift). In coordinates whitened by G
each eigen-direction of H̃ = G^{−1/2} H G^{−1/2} (eigenvalue λ) moves independently:

    s = √((γ/2 + j)² + ηkλ),   r = γ/2 − s = −(ηkλ + c)/(γ/2 + s),   c = j(j + γ)
    Δθ = −ψ(λ) (ηk g + c θ0),   ψ(λ) = Δt · φ₁(rΔt) / (γ/2 + s),   φ₁(x) = (eˣ − 1)/x.

With j = 0 this is Δθ = −(1 − e^{rΔt}) λ⁻¹ g, the issue's −(I − e^{RΔt}) H⁻¹ g, written so
that no digit is lost: the textbook form divides a difference of nearly equal numbers by a
tiny λ (curvature → 0) or subtracts γ/2 from √(γ²/4 + ηkλ) ≈ γ/2 (γ large). Here every
operation is a sum of positive terms, a product, or expm1. ψ is finite for λ ≥ 0 unless
γ/2 + s = 0, i.e. γ = j = λ = 0 (a linear loss without discount: the step is unbounded).

Dense form (any linear drift A, e.g. a rotation): see :func:`dense_drift_displacement`.
"""
from __future__ import annotations

import torch


def phi1(x: torch.Tensor) -> torch.Tensor:
    """φ₁(x) = (eˣ − 1)/x elementwise for x ≤ 0, = 1 at x = 0 (expm1 keeps every digit).

    x is moved to at most −tiny (the smallest normal number), where expm1(x) = x exactly,
    so φ₁ = 1 there without a branch."""
    x = x.clamp(max=-torch.finfo(x.dtype).tiny)
    return torch.expm1(x).div_(x)


def effective_curvature(curvature: torch.Tensor, damping: float, negative_curvature: str) -> torch.Tensor:
    """The curvature the optimal step uses: the quadratic model must be bounded below.

    ``"abs"`` (default): λ → max(|λ|, damping), the saddle-free treatment (Dauphin et al.
    2014): along a direction of negative curvature the step goes downhill with the size set
    by the magnitude of the curvature, instead of towards the maximum of the model.
    ``"clip"``: λ → max(λ, damping): negative curvature is treated as flat (γ > 0: a gradient
    step ηkΔt/γ in that direction).
    """
    if negative_curvature == "abs":
        curvature = curvature.abs()
    if damping > 0 or negative_curvature == "clip":
        curvature = curvature.clamp(min=damping)
    return curvature


def step_factor(curvature, lr, eta_k, gamma, weight_decay=0.0):
    """ψ(λ) of the module docstring, elementwise over curvature λ ≥ 0 (tensor)."""
    half_gamma = 0.5 * gamma
    coupling = weight_decay * (weight_decay + gamma)                      # c = j(j + γ)
    scaled = curvature * eta_k                                            # ηkλ
    denominator = (scaled + (half_gamma + weight_decay) ** 2).sqrt_().add_(half_gamma)   # γ/2 + s
    exponent = scaled.add_(coupling).div_(denominator).mul_(-lr)         # rΔt = −(ηkλ + c)Δt/(γ/2 + s)
    return phi1(exponent).mul_(lr).div_(denominator)


def optimal_velocity_factor(curvature, eta_k, gamma, weight_decay=0.0):
    """lim_{Δt→0} ψ(λ)/Δt = 1/(γ/2 + s): the continuous-time optimal policy θ̇ = −(ηk g + cθ)/(γ/2 + s)."""
    s = torch.sqrt((0.5 * gamma + weight_decay) ** 2 + eta_k * curvature)
    return 1.0 / (0.5 * gamma + s)


def spectral_displacement(hessian, gradient, theta, lr, eta_k, gamma, weight_decay=0.0,
                          metric=None, damping=0.0, negative_curvature="abs"):
    """Δθ of the optimal path over Δt = lr for a dense Hessian (n, n), flat gradient and θ (n,).

    ``metric``: None, a flat diagonal (n,) or an SPD matrix (n, n); constant G enters through
    whitening, H̃ = G^{−1/2} H G^{−1/2}, g̃ = G^{−1/2} g (App. F: H → G⁻¹H, g → G⁻¹g).
    """
    return _spectral(lambda lam: step_factor(lam, lr, eta_k, gamma, weight_decay), hessian, gradient,
                     theta, eta_k, gamma, weight_decay, metric, damping, negative_curvature)


def optimal_velocity(hessian, gradient, theta, eta_k, gamma, metric=None, weight_decay=0.0,
                     drift_matrix=None, damping=0.0, negative_curvature="abs"):
    """θ̇ of the optimal policy of the local model at θ (the Δt → 0 limit of the steps)."""
    if drift_matrix is None:
        return _spectral(lambda lam: optimal_velocity_factor(lam, eta_k, gamma, weight_decay), hessian,
                         gradient, theta, eta_k, gamma, weight_decay, metric, damping, negative_curvature)
    identity = torch.eye(gradient.shape[0], dtype=gradient.dtype, device=gradient.device)
    feedback, offset, backward = _dense_feedback(hessian, gradient, theta,
                                                 drift_matrix - weight_decay * identity,
                                                 eta_k, gamma, metric, damping, negative_curvature)
    return backward(feedback @ offset)


def _spectral(factor, hessian, gradient, theta, eta_k, gamma, weight_decay, metric, damping,
              negative_curvature):
    forward, backward = _whitening(metric, hessian)
    h_white = backward(backward(hessian).mT)            # G^{-1/2} H G^{-1/2} (symmetric)
    h_white = 0.5 * (h_white + h_white.mT)
    eigenvalues, vectors = torch.linalg.eigh(h_white)
    psi = factor(effective_curvature(eigenvalues, damping, negative_curvature))
    coupling = weight_decay * (weight_decay + gamma)
    source = eta_k * backward(gradient)
    if coupling:
        source = source + coupling * forward(theta)
    return -backward(vectors @ (psi * (vectors.mT @ source)))


def inverse_sqrt_apply(hessian, gradient, eps, eps_placement="outside", negative_curvature="abs"):
    """H^{−1/2} g for a dense symmetric H with ε placed like Ballistic's (|λ| for λ < 0 by default)."""
    hessian = 0.5 * (hessian + hessian.mT)
    eigenvalues, vectors = torch.linalg.eigh(hessian)
    eigenvalues = effective_curvature(eigenvalues, 0.0, negative_curvature)
    scale = (eigenvalues + eps).rsqrt() if eps_placement == "inside" else 1.0 / (eigenvalues.sqrt() + eps)
    return vectors @ (scale * (vectors.mT @ gradient))


def dense_drift_displacement(hessian, gradient, theta, drift_matrix, lr, eta_k, gamma,
                             metric=None, damping=0.0, negative_curvature="abs"):
    """Δθ over Δt = lr of the optimal path of the local model under a linear drift f = Aθ.

    In G-whitened coordinates (θ̃ = G^{1/2}θ, Ã = G^{1/2}AG^{−1/2}) the Euler–Lagrange
    equation is θ̈ = Cθ̇ + K(θ − θ*) with C = Ã + γI − Ãᵀ, K = ÃᵀÃ − γÃ + ηkH̃ and the local
    fixed point K(θ* − θ0) = −(ηk g̃ + (ÃᵀÃ − γÃ)θ0). Its stable invariant subspace (the n
    exponents with Re < γ/2) gives θ̇ = R(θ − θ*) with R = V₂V₁⁻¹, and

        Δθ = (e^{RΔt} − I)(θ0 − θ*) = Δt · φ₁(RΔt) · R(θ0 − θ*),

    φ₁ of a matrix from the exponential of [[RΔt, I], [0, 0]] (no cancellation as R → 0).
    The curvature is first made positive (``negative_curvature``, ``damping``) in H̃'s
    eigenbasis, so the model is bounded below.
    """
    n = gradient.shape[0]
    feedback, offset, backward = _dense_feedback(hessian, gradient, theta, drift_matrix, eta_k, gamma,
                                                 metric, damping, negative_curvature)
    identity = torch.eye(n, dtype=gradient.dtype, device=gradient.device)
    block = torch.zeros(2 * n, 2 * n, dtype=gradient.dtype, device=gradient.device)
    block[:n, :n] = feedback * lr
    block[:n, n:] = identity
    phi = torch.linalg.matrix_exp(block)[:n, n:]
    return backward(lr * (phi @ (feedback @ offset)))


def _dense_feedback(hessian, gradient, theta, drift_matrix, eta_k, gamma, metric, damping,
                    negative_curvature):
    """(R, θ̃0 − θ̃*, v ↦ G^{−1/2}v) of the local model in whitened coordinates."""
    n = gradient.shape[0]
    forward, backward = _whitening(metric, hessian)
    h_white = backward(backward(hessian).mT)
    h_white = 0.5 * (h_white + h_white.mT)
    eigenvalues, vectors = torch.linalg.eigh(h_white)
    eigenvalues = effective_curvature(eigenvalues, damping, negative_curvature)
    h_white = (vectors * eigenvalues) @ vectors.mT
    a_white = backward(forward(drift_matrix).mT).mT     # G^{1/2} A G^{-1/2}
    identity = torch.eye(n, dtype=gradient.dtype, device=gradient.device)
    drift_cost = a_white.mT @ a_white - gamma * a_white
    stiffness = drift_cost + eta_k * h_white
    damping_matrix = a_white + gamma * identity - a_white.mT
    offset = torch.linalg.solve(stiffness,
                                eta_k * backward(gradient) + drift_cost @ forward(theta))  # θ0 − θ*
    flow = torch.cat([torch.cat([torch.zeros_like(identity), identity], 1),
                      torch.cat([stiffness, damping_matrix], 1)], 0)
    exponents, modes = torch.linalg.eig(flow)
    stable = exponents.real < 0.5 * gamma
    if int(stable.sum()) != n:
        raise ArithmeticError(f"the local Euler–Lagrange flow has {int(stable.sum())} stable exponents, "
                              f"expected {n}")
    modes = modes[:, stable]
    feedback = torch.linalg.solve(modes[:n].mT, modes[n:].mT).mT.real   # R = V₂ V₁⁻¹
    return feedback, offset, backward


def _whitening(metric, like):
    """(θ ↦ G^{1/2}θ, v ↦ G^{−1/2}v) for metric None, a diagonal vector or an SPD matrix.

    Both maps act on vectors (n,) and on matrices column-wise (n, m)."""
    if metric is None:
        return (lambda x: x), (lambda x: x)
    metric = torch.as_tensor(metric, dtype=like.dtype, device=like.device)
    if metric.ndim <= 1:
        root = metric.sqrt()

        def scale(x, power):
            return x * (power.unsqueeze(-1) if x.ndim == 2 and power.ndim == 1 else power)
        return (lambda x: scale(x, root)), (lambda x: scale(x, 1.0 / root))
    eigenvalues, vectors = torch.linalg.eigh(0.5 * (metric + metric.mT))
    root = (vectors * eigenvalues.sqrt()) @ vectors.mT
    inverse_root = (vectors * eigenvalues.rsqrt()) @ vectors.mT
    return (lambda x: root @ x), (lambda x: inverse_root @ x)
