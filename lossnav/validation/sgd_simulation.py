"""torch.optim.SGD with momentum on synthetic linear regression, measured like Kunin et al. (2021).

Many independent chains run as one (chains, dim) parameter: every SGD operation of
torch.optim.SGD (momentum buffer, weight decay grad + λθ, step) is elementwise, so chain r
evolves exactly as a lone run would with its own batches. The gradient of the quadratic
loss ‖y_B − X_Bθ‖²/2S is written in closed form and handed to the optimizer as ``.grad``
(autograd would compute the same numbers, slower). float64 throughout.

Measured: speed E‖θ_{k+1} − θ_k‖², per-eigendirection stationary variances of θ and
v = −momentum_buffer (the paper's velocity, Eq. 2), the chain-mean trajectory from a common
θ0 (for Eq. 7), and E‖θ_{k0+t} − θ_{k0}‖² from a stationary reference k0 (for Eq. 17).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

import ocp
from problems.sgd_langevin import SGDLangevinScenario, diffusion_exponent


@dataclass
class RegressionData:
    X: np.ndarray            # (samples, dim)
    y: np.ndarray            # (samples,)
    theta_true: np.ndarray   # (dim,)
    noise: float             # label-noise standard deviation σ
    spectrum: np.ndarray     # eigenvalues of the population input covariance


def make_regression(dim, samples, noise, spectrum=None, seed=0) -> RegressionData:
    """x_i ~ N(0, R diag(spectrum) Rᵀ) with a random rotation R, y_i = x_iᵀθ̄ + σε_i.

    Default spectrum: log-spaced from 1 down to 0.1 (condition number 10).
    """
    if isinstance(dim, bool) or not float(dim).is_integer() or dim < 1:
        raise ocp.ProblemError(f"parameter 'dim' must be an integer ≥ 1, got {dim!r}")
    if isinstance(samples, bool) or not float(samples).is_integer() or samples < dim:
        raise ocp.ProblemError(f"parameter 'samples' must be an integer ≥ dim = {dim}, got {samples!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ocp.ProblemError(f"parameter 'noise' (label-noise σ) must be a finite number ≥ 0, "
                               f"got {noise!r}")
    dim, samples = int(dim), int(samples)
    spectrum = np.geomspace(1.0, 0.1, dim) if spectrum is None else np.asarray(spectrum, dtype=float).ravel()
    if spectrum.shape != (dim,) or not np.isfinite(spectrum).all() or (spectrum <= 0).any():
        raise ocp.ProblemError(f"parameter 'spectrum' must hold {dim} positive finite eigenvalues, "
                               f"got {spectrum}")
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    X = rng.normal(size=(samples, dim)) * np.sqrt(spectrum) @ rotation.T
    theta_true = rng.normal(size=dim)
    y = X @ theta_true + noise * rng.normal(size=samples)
    return RegressionData(X, y, theta_true, float(noise), spectrum)


def scenario_for(data: RegressionData, **hyper) -> SGDLangevinScenario:
    """The OU model of ``data`` with σ² the known label-noise variance."""
    return SGDLangevinScenario(X=data.X, y=data.y, sigma2=data.noise ** 2, **hyper)


@dataclass
class Measurements:
    steps: int
    chains: int
    burn_in: int
    speed: float                     # mean ‖θ_{k+1} − θ_k‖² after burn-in
    speed_stderr: float              # standard error across chains
    position_variance: np.ndarray    # per eigendirection of H (ascending ρ)
    velocity_variance: np.ndarray
    position_variance_stderr: np.ndarray
    velocity_variance_stderr: np.ndarray
    mean_theta: np.ndarray           # (steps+1, d) chain average
    mean_velocity: np.ndarray
    lags: np.ndarray                 # lags of the displacement, from the reference step burn_in
    displacement: np.ndarray         # chain-mean ‖θ_{burn_in + t} − θ_{burn_in}‖²
    chain_theta: np.ndarray          # (steps+1, d) of chain 0, for phase-space plots
    chain_velocity: np.ndarray
    extra: dict = field(default_factory=dict)

    def diffusion_exponent(self) -> float:
        return diffusion_exponent(self.lags, self.displacement)


def relaxation_steps(scenario: SGDLangevinScenario) -> float:
    """Steps for the mean to shrink by e: −1/log ρ(M)."""
    radius = np.abs(np.linalg.eigvals(scenario.transition())).max()
    return -1.0 / math.log(radius) if radius > 0 else 1.0


def simulate(scenario: SGDLangevinScenario, steps, chains=64, seed=0, theta0=None,
             burn_in=None) -> Measurements:
    """Run torch.optim.SGD on ``scenario``'s data; stability is checked before any step.

    ``theta0`` (default: μ displaced by 10 stationary standard deviations along every
    eigendirection) is shared by all chains, with zero momentum buffer. Stationary
    statistics use steps after ``burn_in`` (default: 10 relaxation times, at most steps/2).
    """
    if scenario.X is None:
        raise ocp.ProblemError("the simulator needs the data X, y")
    if isinstance(steps, bool) or not float(steps).is_integer() or steps < 4:
        raise ocp.ProblemError(f"parameter 'steps' must be an integer ≥ 4, got {steps!r}")
    if isinstance(chains, bool) or not float(chains).is_integer() or chains < 1:
        raise ocp.ProblemError(f"parameter 'chains' must be an integer ≥ 1, got {chains!r}")
    scenario.stability()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # tiny batched kernels: thread hand-off costs more than it saves
    try:
        return _run(scenario, int(steps), int(chains), seed, theta0, burn_in)
    finally:
        torch.set_num_threads(threads)


def _run(scenario, steps, chains, seed, theta0, burn_in) -> Measurements:
    if burn_in is None:
        burn_in = min(steps // 2, int(math.ceil(10 * relaxation_steps(scenario))))
    d, S, V = scenario.dim, scenario.batch, scenario.eigenvectors
    if theta0 is None:
        px, _ = scenario.eigen_variances()
        theta0 = scenario.mu + V @ (10.0 * np.sqrt(px))
    generator = torch.Generator().manual_seed(int(seed))
    f64 = dict(dtype=torch.float64)
    # rows (x_i, y_i) in one table: one index_select per step (advanced indexing is far slower)
    table = torch.as_tensor(np.column_stack([scenario.X, scenario.y]), **f64)
    n = table.shape[0]
    mu, basis = torch.as_tensor(scenario.mu, **f64), torch.as_tensor(V, **f64)
    theta = torch.nn.Parameter(torch.as_tensor(np.broadcast_to(theta0, (chains, d)).copy(), **f64))
    optimizer = torch.optim.SGD([theta], lr=scenario.lr, momentum=scenario.momentum,
                                weight_decay=scenario.weight_decay)

    mean_theta, mean_velocity = torch.empty(steps + 1, d, **f64), torch.zeros(steps + 1, d, **f64)
    chain_theta, chain_velocity = torch.empty(steps + 1, d, **f64), torch.zeros(steps + 1, d, **f64)
    speed = torch.zeros(chains, **f64)
    sq_position, sq_velocity = torch.zeros(chains, d, **f64), torch.zeros(chains, d, **f64)
    displacement = torch.zeros(steps - burn_in + 1, **f64)
    mean_theta[0], chain_theta[0] = theta.detach().mean(0), theta.detach()[0]
    block = 512
    with torch.no_grad():
        for k in range(steps):
            if k % block == 0:
                size = (min(block, steps - k), chains, S)
                if scenario.replacement:
                    batches = torch.randint(n, size, generator=generator)
                else:
                    keys = torch.rand(size[0] * chains, n, generator=generator, dtype=torch.float32)
                    batches = keys.topk(S, dim=1, largest=False, sorted=False).indices   # S distinct rows
                batches = batches.reshape(size[0], chains * S)
            rows = table.index_select(0, batches[k % block]).view(chains, S, d + 1)
            Xb = rows[..., :d]                                        # (chains, S, d)
            residual = torch.bmm(Xb, theta.detach().unsqueeze(-1)) - rows[..., d:]
            theta.grad = torch.bmm(Xb.transpose(1, 2), residual).squeeze(-1) / S
            previous = theta.detach().clone()
            optimizer.step()
            now = theta.detach()
            buffer = optimizer.state[theta].get("momentum_buffer")   # absent when momentum = 0
            velocity = -buffer if buffer is not None else (now - previous) / scenario.lr
            mean_theta[k + 1], mean_velocity[k + 1] = now.mean(0), velocity.mean(0)
            chain_theta[k + 1], chain_velocity[k + 1] = now[0], velocity[0]
            if k + 1 == burn_in:
                reference = now.clone()
            if k + 1 > burn_in:
                speed += ((now - previous) ** 2).sum(1)
                sq_position += ((now - mu) @ basis) ** 2
                sq_velocity += (velocity @ basis) ** 2
                displacement[k + 1 - burn_in] = ((now - reference) ** 2).sum(1).mean()
    if not torch.isfinite(theta).all():
        raise ocp.ProblemError("SGD diverged (non-finite parameters) although the stability check passed")
    count = steps - burn_in
    per_chain = [t.numpy() / count for t in (speed, sq_position, sq_velocity)]
    stderr = [c.std(0, ddof=1) / math.sqrt(chains) if chains > 1 else np.full_like(c.mean(0), np.nan)
              for c in per_chain]
    lags = np.unique(np.geomspace(1, count, 40).astype(int))
    return Measurements(steps=steps, chains=chains, burn_in=burn_in,
                        speed=float(per_chain[0].mean()), speed_stderr=float(stderr[0]),
                        position_variance=per_chain[1].mean(0), velocity_variance=per_chain[2].mean(0),
                        position_variance_stderr=stderr[1], velocity_variance_stderr=stderr[2],
                        mean_theta=mean_theta.numpy(), mean_velocity=mean_velocity.numpy(),
                        lags=lags, displacement=displacement.numpy()[lags],
                        chain_theta=chain_theta.numpy(), chain_velocity=chain_velocity.numpy())


def compare(scenario: SGDLangevinScenario, m: Measurements) -> dict:
    """Predictions of ``scenario`` next to the measurements ``m`` (JSON-ready lists and floats).

    "predicted" is the paper's continuous OU model (Eqs. 7, 9, 16, 17; Σ = σ²H);
    "predicted_discrete" the exact heavy-ball recursion with the same noise (its O(η)
    correction); "predicted_exact" the recursion with the data's own gradient noise.
    """
    d = scenario.dim
    speed = {"predicted": scenario.instantaneous_speed(),
             "predicted_discrete": scenario.instantaneous_speed_discrete("paper"),
             "predicted_exact": scenario.instantaneous_speed_discrete("exact"),
             "measured": m.speed, "measured_stderr": m.speed_stderr}
    speed["ratio"] = m.speed / speed["predicted"]
    speed["ratio_exact"] = m.speed / speed["predicted_exact"]
    continuous, discrete = scenario.eigen_variances(), scenario.eigen_variances_discrete("paper")
    exact = scenario.eigen_variances_discrete("exact")
    variances = {"eigenvalues": scenario.rho.tolist()}
    for i, (key, measured, stderr) in enumerate((
            ("position", m.position_variance, m.position_variance_stderr),
            ("velocity", m.velocity_variance, m.velocity_variance_stderr))):
        variances[key] = {"predicted": continuous[i].tolist(), "predicted_discrete": discrete[i].tolist(),
                          "predicted_exact": exact[i].tolist(), "measured": measured.tolist(),
                          "measured_stderr": stderr.tolist(),
                          "ratio": (measured / continuous[i]).tolist(),
                          "ratio_exact": (measured / exact[i]).tolist()}
    window = max(m.burn_in, 1)
    theta0 = m.mean_theta[0]
    scale = np.linalg.norm(theta0 - scenario.mu)
    mean_ou = scenario.mean_trajectory(theta0, window)[0]
    mean_discrete = scenario.mean_trajectory_discrete(theta0, window)[0]
    observed = m.mean_theta[:window + 1]
    P = scenario.stationary_covariance_discrete("exact")
    mean_error = {"continuous": float(np.linalg.norm(observed - mean_ou, axis=1).max() / scale),
                  "discrete": float(np.linalg.norm(observed - mean_discrete, axis=1).max() / scale),
                  "noise_floor": float(math.sqrt(np.trace(P[:d, :d]) / m.chains) / scale),
                  "steps": window}
    eq17, ou = scenario.global_displacement(m.lags), scenario.global_displacement_ou(m.lags)
    exact_disp = scenario.global_displacement_discrete(m.lags, "exact")
    diffusion = {"measured": m.diffusion_exponent(), "predicted_eq17": diffusion_exponent(m.lags, eq17),
                 "predicted_ou": diffusion_exponent(m.lags, ou),
                 "predicted_exact": diffusion_exponent(m.lags, exact_disp),
                 "lags": [int(m.lags[0]), int(m.lags[-1])]}
    displacement = {"lags": m.lags.tolist(), "measured": m.displacement.tolist(),
                    "predicted_eq17": eq17.tolist(), "predicted_ou": ou.tolist(),
                    "predicted_exact": exact_disp.tolist()}
    return {"instantaneous_speed": speed, "stationary_variance": variances,
            "mean_trajectory_error": mean_error, "diffusion_exponent": diffusion,
            "displacement": displacement,
            "covariance_check": {"lyapunov_vs_closed_form": scenario.covariance_check()},
            "steps": m.steps, "chains": m.chains, "burn_in": m.burn_in}
