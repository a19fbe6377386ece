"""The local quadratic model at a state: its curvatures set the time scales of the path.

The EL exponents of the quadratic model at θ0 are r± = γ/2 ± √(γ²/4 + ηkλ) for the curvatures
λ of G⁻¹∇²L (Vastola et al. 2025, App. C.1). They choose the scale of the infinite map
(:func:`default_time_scale`), judge whether a finite mesh is coarse
(``ocp.horizons.mesh_refinement.suspect``) and size the final window of a long horizon.
"""
from __future__ import annotations

import math

import casadi
import numpy as np

from ..block_diagonal import block_eigenvalues, block_solve, coupled_blocks


def metric_curvatures(problem, theta0) -> np.ndarray:
    """The eigenvalues λ of G⁻¹∇²L at θ0 (real parts, signed: a negative one is a direction in
    which the loss is locally concave)."""
    cache = problem._structure.cache
    if "local_model" not in cache:
        theta, P = casadi.SX.sym("theta", problem.dim), casadi.SX.sym("P", problem.layout.size)
        params = problem.layout.unpack(P)
        hessian = casadi.hessian(problem.loss_value(theta, params), theta)[0]
        cache["local_model"] = casadi.Function("local_model", [theta, P],
                                               [hessian, problem.metric_matrix(theta, params)])
    model = cache["local_model"](theta0[: problem.dim], problem.parameter_values())
    H, G = (np.asarray(value) for value in model)
    blocks = coupled_blocks(H, G)          # a separable loss: D blocks of 1, no dense eigenproblem
    return block_eigenvalues(block_solve(G, H, blocks), blocks).real


def local_curvatures(problem, theta0) -> np.ndarray:
    """ηk·λ for the eigenvalues λ of G⁻¹∇²L at θ0 (absolute values, floored at 1e-3 of the
    largest): the local quadratic model's curvatures, which set its EL exponents."""
    curvatures = np.abs(metric_curvatures(problem, theta0))
    return problem.eta * max(problem.k, 1e-12) * np.maximum(curvatures, 1e-3 * max(curvatures.max(), 1e-6))


def curvatures_or_nan(problem, theta0) -> np.ndarray:
    """:func:`local_curvatures`, or NaN where the local model cannot be formed (a singular
    metric or a loss whose Hessian is not finite at θ0): then nothing judges the mesh."""
    try:
        return local_curvatures(problem, theta0)
    except (np.linalg.LinAlgError, ValueError, RuntimeError):
        return np.array([np.nan])


def default_time_scale(problem, theta0) -> float:
    """Time scale c of the infinite map: twice the decay time of the local quadratic model at θ0,
    capped at 5/γ so that most elements lie where the discount weight is visible."""
    curvatures = local_curvatures(problem, theta0)
    gamma = problem.gamma
    rates = np.sqrt(gamma ** 2 / 4 + curvatures) - gamma / 2
    if rates.min() <= 1e-6 * gamma:   # cancellation (ηkλ ≪ γ² gave r = 0, then a division by 0)
        rates = curvatures / (np.sqrt(gamma ** 2 / 4 + curvatures) + gamma / 2)
    # 2/√(r_min r_max): the slow tail of a spread spectrum needs elements late in time (in
    # logarithms when the product under- or overflows: η or k near the float range)
    product = rates.min() * rates.max()
    decay_time = (2.0 / math.sqrt(product) if 0 < product < math.inf
                  else 2.0 * math.exp(-0.5 * (math.log(rates.min()) + math.log(rates.max()))))
    return min(decay_time, 5.0 / gamma) if gamma > 0 else decay_time
