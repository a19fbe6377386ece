"""The matrix-free solve: a finite or infinite horizon from θ0, checked, as an ocp.Trajectory.

Finite horizon T: the free end (θ̇(T) = 0 is the natural boundary condition of the Galerkin
form) or a fixed ``terminal``; elements clustered at both ends. Infinite horizon: the rest
point θ* (:mod:`ocp.matrix_free.rest`), the slowest stable rate r = γ/2 − sqrt(γ²/4 + ηkλ_min)
sets the end T_end = decay/|r| with θ(T_end) = θ* fixed (the stable manifold's error there is
e^{−decay}), on a geometrically graded mesh starting at the fastest rate's scale.

When γ·T_end exceeds MAX_DISCOUNT_SPAN (γ ≫ sqrt(ηkλ_min): a network's flat directions), the
infinite-horizon path is taken on a window instead: the free-end path on [0, T], γT =
MAX_DISCOUNT_SPAN, agrees with the infinite-horizon one on [0, W], W = T − decay/γ, to e^{−decay}
of the end mismatch. (Linearised, their difference u solves the EL equation with u(0) = 0, so
u = c(e^{r₊t} − e^{r₋t}) with c = O(δe^{−r₊T}), and r₊ = γ/2 + sqrt(γ²/4 + ηkλ) ≥ γ: the discount
forgets the end; the turnpike property of discounted problems.) The trajectory stops at the
first element end ≥ W; stats: reached_rest False, tail "truncated", window_end W,
truncated_horizon T, truncation_bound e^{−decay}, continuation (per horizon: Newton and CG counts).

That path is found by continuation in the horizon, not by one Newton solve from a guess on [0, T]:
J weighs the end of [0, T] by e^{−γt} (e^{−60} at T), so a Newton step that J accepts can move the
late path by O(1) in θ (on a network, into regions of strong negative curvature; the trust
region then crawls, and the window never converges: measured on a D = 985 digits MLP, 60
iterations refused). The horizons γT_k = 12, 24, ... , γT are solved in turn, each from the one
before extended by the gradient flow θ̇ = −(ηk/γ)G⁻¹∇L (the optimal path's overdamped limit): each
needs 2–5 Newton steps, because the new horizon changes the old path only near its end.

The solve is refused (SolveError) when Newton does not converge, when the mesh check (the doubled
mesh) or the Euler–Lagrange residual fails its tolerance, and when the time limit is spent.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import scipy.integrate

from ..errors import SolveError
from ..results.trajectory import Trajectory
from .checks import euler_lagrange_error, mesh_agreement, node_velocities
from .mesh import ElementMesh, chebyshev_boundaries, geometric_boundaries
from .newton import NewtonSolver
from .objective import DiscreteObjective, MetricLoss
from .rest import curvature_range, rest_point

MESH_TOL = 1e-6
"""The default mesh agreement (``mesh_tol`` None): the doubled mesh's path to 1e-6 of the range."""

MESH_FAILED, EL_FAILED = "mesh_check_failed", "euler_lagrange_check_failed"

MAX_DISCOUNT_SPAN = 60.0
"""The largest γ·T_end the symmetric current-value scaling e^{γt/2} carries: beyond it the scaled
system's entries span more than e^{30} ≈ 1e13 and the banded factorisation loses every digit (and
overflows past γ·T_end ≈ 1400). Such a problem (γ ≫ sqrt(ηk·λ_min)) is refused, not solved wrongly."""


CONTINUATION_STEP = 12.0
"""γ·(T_{k+1} − T_k) of the truncated window's continuation in the horizon (module docstring)."""

LOOSE_STEP_TOL = 1e-6
"""The Newton step tolerance of the continuation's intermediate horizons (they are guesses only)."""


def solve(problem, theta0, options):
    """The checked optimal path (module docstring) as a :class:`ocp.Trajectory`, numpy's BLAS
    limited as the loss asks (``ExternalLoss.blas_threads``)."""
    with problem.loss.thread_limits():
        return _solve(problem, theta0, options)


def _solve(problem, theta0, options):
    settings, started = options.matrix_free, time.perf_counter()
    metric_loss = MetricLoss(problem.loss, problem.metric)
    counts_before = dict(problem.loss.counts)
    phi0 = metric_loss.phi(theta0[None])[0]
    stats = {"solver": "matrix_free", "horizon": options.horizon, "gamma": problem.gamma, "t0": options.t0}
    intervals = settings.intervals or options.mesh.intervals
    degree = settings.degree or max(options.mesh.degree, 2)
    if options.infinite:
        end_phi, rest_stats = rest_point(metric_loss, phi0, options.deadline)
        smallest, largest = curvature_range(metric_loss, end_phi)
        rate = problem.eta * problem.k
        slow = math.sqrt(problem.gamma ** 2 / 4 + rate * smallest) - problem.gamma / 2
        fast = math.sqrt(problem.gamma ** 2 / 4 + rate * largest) - problem.gamma / 2
        end = settings.decay / slow
        stats.update(rest_stats, lambda_min=smallest, lambda_max=largest, slowest_rate=-slow)
        if problem.gamma * end <= MAX_DISCOUNT_SPAN:
            boundaries = geometric_boundaries(end, intervals, 1.0 / fast)
            stats.update(t_end=end)
        else:
            window, end = _truncated_horizon(problem, settings, slow)
            end_phi, boundaries = None, chebyshev_boundaries(end, intervals)
            stats.update(tail="truncated", window_end=window, truncated_horizon=end,
                         truncation_bound=math.exp(-settings.decay))
        shift = smallest
    else:
        end_phi = None if options.terminal is None else metric_loss.phi(options.terminal[None])[0]
        boundaries = chebyshev_boundaries(options.horizon, intervals)
        shift = _rayleigh_shift(metric_loss, phi0)
    mesh = ElementMesh(boundaries, degree, problem.gamma)
    window = stats.get("window_end")
    if window is None:
        trajectory, newton = _solve_on(problem, metric_loss, mesh, phi0, end_phi, shift, settings, options,
                                       None)
    else:
        trajectory, newton, stats["continuation"] = _continued(problem, metric_loss, mesh, phi0, shift,
                                                               settings, options, window)
    el_error = _el_error(problem, metric_loss, mesh, trajectory, window)
    refinements, agreement = [{"intervals": mesh.intervals, "euler_lagrange_error": el_error}], None
    tolerance = MESH_TOL if options.mesh_tol is None else options.mesh_tol
    checked = options.mesh_tol != math.inf
    while (checked and agreement is None) or not (el_error <= settings.el_tol
                                                  and (not checked or agreement <= tolerance)):
        if len(refinements) > settings.refinements + 1:
            break
        mesh = mesh.doubled()
        fine, fine_newton = _solve_on(problem, metric_loss, mesh, phi0, end_phi, shift, settings, options,
                                      trajectory, window)
        agreement = mesh_agreement(trajectory, fine, options.t0 + (math.inf if window is None else window))
        el_error = _el_error(problem, metric_loss, mesh, fine, window)
        refinements.append({"intervals": mesh.intervals, "agreement": agreement,
                            "euler_lagrange_error": el_error})
        newton = {key: newton[key] + fine_newton[key] for key in newton}
        trajectory = fine
    counts = {key: problem.loss.counts[key] - counts_before[key] for key in counts_before}
    if window is not None:
        trajectory = _until(trajectory, options.t0 + window)
    trajectory.stats.update(stats, **newton, euler_lagrange_error=el_error, mesh_agreement=agreement,
                            mesh_refinement=refinements, mesh={"intervals": mesh.intervals, "degree": degree},
                            loss_evaluations=counts, preconditioner_shift=shift, success=True,
                            reached_rest=options.infinite and window is None,
                            solve_time=time.perf_counter() - started)
    if checked and not agreement <= tolerance:
        trajectory.stats["success"] = False
        raise SolveError(f"the matrix-free path does not agree with the doubled mesh's ({agreement:.3g} "
                         f"of its range > mesh_tol {tolerance:g})", MESH_FAILED,
                         newton["newton_iterations"], trajectory)
    if not el_error <= settings.el_tol:
        trajectory.stats["success"] = False
        raise SolveError(f"the matrix-free path's Euler-Lagrange residual {el_error:.3g} exceeds el_tol "
                         f"{settings.el_tol:g} (refine: more intervals or a higher degree)", EL_FAILED,
                         newton["newton_iterations"], trajectory)
    return trajectory


def _truncated_horizon(problem, settings, slow):
    """(W, T) of the truncated infinite horizon (module docstring); SolveError when decay/γ
    leaves no window (decay ≥ MAX_DISCOUNT_SPAN)."""
    end = MAX_DISCOUNT_SPAN / problem.gamma
    window = end - settings.decay / problem.gamma
    if window <= 0:
        raise SolveError(f"the matrix-free infinite horizon needs gamma * T_end <= {MAX_DISCOUNT_SPAN:g} "
                         f"(here {settings.decay / slow * problem.gamma:.3g}) or a window: decay "
                         f"{settings.decay:g} must be < {MAX_DISCOUNT_SPAN:g}", "discount_span_too_long", 0)
    return window, end


def _continued(problem, metric_loss, mesh, phi0, shift, settings, options, window):
    """The truncated window's free-end path on ``mesh`` ([0, T]) by continuation in the horizon
    (module docstring): the horizons γT_k = CONTINUATION_STEP, 2·CONTINUATION_STEP, ... < γT, to
    the loose LOOSE_STEP_TOL, each from the one before extended by the
    gradient flow, then T itself to ``settings``. Each intermediate horizon T_k takes the elements
    of ``mesh`` inside [0, T_k] (:func:`_leading`): the start, where the path moves fastest, is
    resolved as on the final mesh, and the guesses cost what their horizon's share of the mesh
    costs. Returns (trajectory, Newton counts summed, per step)."""
    gamma, rate = problem.gamma, problem.eta * problem.k / problem.gamma
    end = mesh.boundaries[-1]
    loose = dataclasses.replace(settings, step_tol=max(settings.step_tol, LOOSE_STEP_TOL))
    horizons = [span / gamma for span in np.arange(CONTINUATION_STEP, gamma * end - 1e-9, CONTINUATION_STEP)]
    previous, totals, steps = None, {"newton_iterations": 0, "cg_iterations": 0}, []
    for horizon in horizons + [end]:
        final = horizon == end
        step_mesh = mesh if final else ElementMesh(_leading(mesh.boundaries, horizon), mesh.degree, gamma)
        if previous is None:
            nodes = _gradient_flow(metric_loss, phi0, step_mesh.times, rate, options.deadline)
        else:
            nodes = _extended(previous, step_mesh, metric_loss, rate, options.deadline)
        measured = window if final else horizon - settings.decay / gamma
        previous, newton = _solve_on(problem, metric_loss, step_mesh, phi0, None, shift,
                                     settings if final else loose, options, nodes,
                                     measured if measured > 0 else None)
        totals = {key: totals[key] + newton[key] for key in totals}
        steps.append({"horizon": horizon, **newton})
    return previous, totals, steps


def _leading(boundaries, horizon):
    """The element ends of ``boundaries`` inside [0, ``horizon``], the last element stretched to end
    at ``horizon`` (a boundary nearer to it than half the element before is dropped)."""
    inside = boundaries[boundaries < horizon]
    if len(inside) >= 2 and horizon - inside[-1] < 0.5 * (inside[-1] - inside[-2]):
        inside = inside[:-1]
    return np.append(inside, horizon)


def _extended(previous, mesh, metric_loss, rate, deadline):
    """φ at ``mesh``'s nodes: the ``previous`` path where it is defined, the gradient flow from its
    end beyond (the continuation's initial guess)."""
    times, previous_times = mesh.times, previous.t - previous.t[0]
    inside = times <= previous_times[-1]
    nodes = np.empty((mesh.size, previous.theta.shape[1]))
    nodes[inside] = metric_loss.phi(previous(times[inside] + previous.t[0]))
    start = metric_loss.phi(previous.theta[-1:])[0]
    flow = _gradient_flow(metric_loss, start, np.concatenate([previous_times[-1:], times[~inside]]), rate,
                          deadline)
    nodes[~inside] = flow[1:]
    return nodes


def _until(trajectory, end):
    """The trajectory up to the first element end ≥ ``end``."""
    starts = trajectory.t[trajectory.elements[:, 0].astype(int)]
    kept = int(np.searchsorted(starts, end, side="left"))       # elements starting before ``end``
    last = int(trajectory.elements[kept - 1, 1])
    cut = slice(0, last + 1)
    return Trajectory(t=trajectory.t[cut], theta=trajectory.theta[cut], velocity=trajectory.velocity[cut],
                      kinetic=trajectory.kinetic[cut], potential=trajectory.potential[cut],
                      costate=trajectory.costate[cut], objective=trajectory.objective,
                      elements=trajectory.elements[:kept], stats=trajectory.stats)


def _solve_on(problem, metric_loss, mesh, phi0, end_phi, shift, settings, options, guess, window=None):
    """Newton on one mesh from ``guess`` (a Trajectory, or node values φ (N + 1, D); None: θ0 held,
    or the decay to θ*);
    ``window``: a truncated infinite horizon's W (convergence measured on [0, W])."""
    objective = DiscreteObjective(metric_loss, mesh, problem.eta, problem.k, phi0, end_phi, shift)
    if isinstance(guess, np.ndarray):
        nodes = guess.copy()
    elif guess is not None:
        nodes = metric_loss.phi(guess(mesh.times + guess.t[0]))
    elif end_phi is not None and options.infinite:
        decay = np.exp(-settings.decay * mesh.times / mesh.times[-1])[:, None]
        nodes = end_phi + (phi0 - end_phi) * decay
    else:
        nodes = np.tile(phi0, (mesh.size, 1))
    if end_phi is not None:
        nodes[-1] = end_phi
    floor = max(np.abs(phi0).max() * 1e-6, 1e-12)     # θ0 at rest: the range is zero
    until = options.t0 + window if window is not None else math.inf
    measured = mesh.times <= until - options.t0

    def path_range(Y):
        return max(np.abs(objective.nodes(Y)[measured] - phi0).max(), floor)

    newton = NewtonSolver(objective, settings, options.deadline, until - options.t0)
    try:
        Y = newton.minimise(objective.unknowns(nodes), path_range)
    except SolveError as exc:
        last = newton.last if newton.last is None else _trajectory(problem, metric_loss, objective,
                                                                   newton.last, options)
        message = str(exc).split(" (IPOPT")[0]
        raise SolveError(message, exc.status, newton.stats["newton_iterations"], last) from None
    return _trajectory(problem, metric_loss, objective, Y, options), dict(newton.stats)


def _gradient_flow(metric_loss, phi0, times, rate, deadline):
    """φ(t) of the gradient flow φ̇ = −rate·∇L̂(φ) at ``times`` (RK45, scipy); an initial guess only,
    so where the integrator stops early the last state it reached is held."""
    def velocity(_, phi):
        deadline.check("the gradient-flow initial guess")
        return -rate * metric_loss.gradients(phi[None])[0]
    flow = scipy.integrate.solve_ivp(velocity, (times[0], times[-1]), phi0, t_eval=times, rtol=1e-6,
                                     atol=1e-9 * max(np.abs(phi0).max(), 1.0))
    nodes = np.empty((len(times), len(phi0)))
    reached = flow.y.shape[1]
    nodes[:reached] = flow.y.T
    nodes[reached:] = flow.y[:, -1] if reached else phi0
    return nodes


def _trajectory(problem, metric_loss, objective, Y, options):
    mesh = objective.mesh
    phi_nodes = objective.nodes(Y)
    phi_velocity = node_velocities(mesh, phi_nodes)
    theta, velocity = metric_loss.theta(phi_nodes), metric_loss.theta(phi_velocity)
    losses = metric_loss.values(phi_nodes)
    objective_value = objective.value(Y)
    if options.infinite and problem.gamma > 0:     # the rest beyond T_end, at θ*
        objective_value += problem.k * losses[-1] * math.exp(-problem.gamma * mesh.times[-1]) / problem.gamma
    first = np.arange(mesh.intervals) * mesh.degree
    elements = np.column_stack([first, first + mesh.degree, options.t0 + mesh.boundaries[:-1],
                                np.zeros(mesh.intervals)]).astype(float)
    return Trajectory(t=options.t0 + mesh.times, theta=theta, velocity=velocity,
                      kinetic=0.5 / problem.eta * np.einsum("nd,nd->n", phi_velocity, phi_velocity),
                      potential=problem.k * losses, costate=-metric_loss.phi(phi_velocity) / problem.eta,
                      objective=objective_value, elements=elements,
                      stats={"solver": "matrix_free", "gamma": problem.gamma, "t0": options.t0,
                             "horizon": options.horizon})


def _el_error(problem, metric_loss, mesh, trajectory, window=None):
    return euler_lagrange_error(metric_loss, mesh, metric_loss.phi(trajectory.theta), problem.eta, problem.k,
                                np.inf if window is None else window)


def _rayleigh_shift(metric_loss, phi0):
    """σ = max(0, gᵀ∇²L̂ g / gᵀg) along the gradient at φ0: the preconditioner's curvature."""
    g = metric_loss.gradients(phi0[None])
    norm = float(np.vdot(g, g))
    if norm == 0:
        return 0.0
    return max(float(np.vdot(g, metric_loss.hvps(phi0[None], g))) / norm, 0.0)
