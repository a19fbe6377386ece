"""``lossnav validate``: every scenario's analytic solution against the collocation reference.

For each scenario, cases are the paper's defaults and seeded random parameter draws (from
the scenario's documented ``ranges``), each at γ ∈ {0, 0.1, 1, 10} (the scenario's
``validation_gammas``), on the infinite
horizon from the scenario's (or a random) θ0. Per case:

* ``error``: max |θ_analytic(t) − θ_collocation(t)| / |θ0 − θ*| over the collocation
  samples until the analytic path has converged to 1e-6·|θ0 − θ*| (as in the engine's
  accuracy tests); tolerance :data:`TOLERANCE`;
* ``el_collocation`` / ``el_analytic``: Euler–Lagrange residual relative to the largest
  term of the equation (:func:`ocp.euler_lagrange_error`); the collocation one over the
  collocated window (before the policy continuation). The collocation residual is the
  pointwise residual of the element polynomials, which converges only as O(h^{d−1})
  (θ itself is far more accurate at the nodes), hence :data:`EL_TOLERANCE` = 1e-3 for
  it and :data:`EL_TOLERANCE_ANALYTIC` = 1e-7 for the closed forms; a wrong formula
  gives O(1);
* ``final_error``: distance of the path's end from the nearest of the scenario's minima
  (the global minimum or the drift-biased fixed point; non-convex scenarios list every
  basin, since a large γ may rest in the nearer one: ``final_basin`` says which, 0 the
  global one), relative to |θ0 − θ*|;
* the scenario's own claims, :meth:`Scenario.extra_checks` (e.g. weight_uncertainty's
  variance jump after a switch to a flatter basin), each with its tolerance.

The collocation reference is mesh-converged (:func:`reference`: the intervals double
until two successive meshes agree to 1e-7 relative). A case passes when all its figures
are within tolerance.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np

import ocp
from problems import Scenario, get

from .reference import MAX_INTERVALS, REFERENCE_AGREEMENT, reference  # noqa: F401  (cases.reference)
from .rules import check_rules

TOLERANCE = 1e-6
EL_TOLERANCE = 1e-3             # collocation: pointwise residual of degree-5 polynomials
EL_TOLERANCE_ANALYTIC = 1e-7    # closed forms on spectral elements
FINAL_TOLERANCE = 1e-5
CONVERGED = 1e-6


@dataclass
class Case:
    name: str
    params: dict
    theta0: np.ndarray
    label: str
    plugins: tuple = ()    # --plugin specs (lossnav.plugins.loaded()): a worker process loads them too
    horizon: float = math.inf   # the scenario's validation_horizons: math.inf or a free-end [0, H]

    def scenario(self):
        if self.plugins:
            from lossnav import plugins
            try:
                plugins.load_all(self.plugins)      # a no-op where they are loaded already
            except plugins.PluginError as exc:
                raise ocp.ProblemError(str(exc)) from None
        return get(self.name, **self.params)


@dataclass
class Result:
    case: Case
    figures: dict = field(default_factory=dict)
    rules: list = field(default_factory=list)
    optimizers: list = field(default_factory=list)   # validate_optimizer rows (optimizer_suite)
    paths: dict = field(default_factory=dict)        # label -> (t, θ) for the path figure
    passed: bool = False
    message: str = ""

    def row(self) -> dict:
        return {"problem": self.case.name, "case": self.case.label, "params": self.case.params,
                "theta0": self.case.theta0.tolist(), "passed": self.passed,
                "message": self.message, "horizon": self.case.horizon, **self.figures, "rules": self.rules,
                "optimizers": self.optimizers}


def cases(name: str, draws: int = 2, seed: int = 0, gammas=None, settings=None) -> list:
    """The paper's defaults and ``draws`` random parameter sets, each at every γ of
    ``gammas`` (default: the scenario's ``validation_gammas``) and every horizon of its
    ``validation_horizons``. ``settings`` (``--set``) override parameters of every case. A scenario
    without :meth:`~problems.Scenario.random_params` (a plug-in may omit it) gets the defaults only."""
    from lossnav.plugins import loaded
    settings = dict(settings or {})
    base, specs = get(name, **settings), loaded()
    gammas = base.validation_gammas if gammas is None else tuple(gammas)
    horizons = base.validation_horizons

    def at(params, theta0, label):
        return [Case(name, {**params, "gamma": g}, theta0, f"{label}, γ={g:g}" + _horizon_label(h), specs, h)
                for g in gammas for h in horizons]
    out = at(settings, base.theta0, "paper defaults")
    if type(base).random_params is Scenario.random_params:
        draws = 0
    for i in range(draws):
        rng = np.random.default_rng([seed, i])
        params = {**base.random_params(rng), **settings}
        theta0 = get(name, **params).random_theta0(rng)
        out += at(params, theta0, f"draw {i} (seed {seed})")
    return out


def _horizon_label(horizon) -> str:
    return "" if math.isinf(horizon) else f", H={horizon:g}"


def check(case: Case, mesh=None, rules: bool = True) -> Result:
    """Solve one case by collocation, compare with the analytic path where there is one and
    (``rules``) run the learning rules against both (:mod:`lossnav.validation.rules`)."""
    result = Result(case)
    start = time.perf_counter()
    try:
        scenario = case.scenario()
        trajectory, mesh_change = reference(scenario, case.theta0, mesh, case.horizon)
        scenario.fixed_point()
    except NotImplementedError:
        result.message = (f"{case.name} does not define fixed_point(): validate measures errors relative "
                          "to |θ0 − θ*| and checks where the path comes to rest")
        return result
    except ocp.OCPError as exc:
        result.message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        if case.params.get("gamma") == 0 and "gamma = 0" in result.message:
            result.message += " (a scenario declares its loss minimum as the class attribute loss_minimum)"
        return result
    figures = result.figures
    distance = max(np.linalg.norm(case.theta0 - scenario.fixed_point()), 1e-300)
    collocated = trajectory.t < trajectory.stats.get("policy_from", np.inf)
    figures["el_collocation"] = _el_error(scenario.problem, trajectory, collocated)
    figures["objective"] = float(trajectory.objective)
    figures["intervals"] = trajectory.stats["mesh"]["intervals"]
    figures["mesh_change"] = mesh_change
    limits = {"el_collocation": EL_TOLERANCE}
    if "window_end" in trajectory.stats:     # a truncated infinite horizon: the path on [0, W] only
        figures["window_end"] = float(trajectory.stats["window_end"])
    if math.isinf(case.horizon) and trajectory.stats.get("reached_rest", True):   # free ends stop short
        minima = np.reshape(scenario.minima(), (-1, scenario.dim))
        gaps = np.linalg.norm(minima - trajectory.theta[-1], axis=1)
        figures["final_error"] = float(gaps.min() / distance)
        figures["final_basin"] = int(gaps.argmin())
        limits["final_error"] = FINAL_TOLERANCE
    if scenario.has_analytic():
        exact = scenario.analytic(trajectory.t, case.theta0)
        gap = np.linalg.norm(exact - scenario.fixed_point(), axis=1)
        window = gap >= CONVERGED * distance
        window[0] = True
        figures["error"] = float(np.abs(exact - trajectory.theta)[window].max() / distance)
        t_end = trajectory.t[window][-1] if window.sum() > 1 else trajectory.t[-1]
        analytic = ocp.from_path(scenario.problem, lambda t: scenario.analytic(t, case.theta0), t_end)
        figures["el_analytic"] = ocp.euler_lagrange_error(scenario.problem, analytic)
        figures["objective_analytic"] = float(analytic.objective)
        limits.update(error=TOLERANCE, el_analytic=EL_TOLERANCE_ANALYTIC)
    try:
        extra = scenario.extra_checks(case.theta0, trajectory)
    except ocp.OCPError as exc:   # a scenario check whose own solve fails fails the case
        extra = {f"extra check ({type(exc).__name__}: {' '.join(str(exc).split())})": (np.inf, 0.0)}
    for key, (value, limit) in extra.items():
        figures[key], limits[key] = float(value), float(limit)
    if rules:
        result.rules = check_rules(scenario, case.theta0, trajectory, TOLERANCE)
    if rules and scenario.checked_optimizers:
        from .optimizer_suite import check_optimizers  # torch optimizers: only where declared
        result.optimizers, result.paths = check_optimizers(scenario, case.theta0, trajectory)
    figures["seconds"] = time.perf_counter() - start
    failed = [key for key, limit in limits.items() if not figures[key] <= limit]
    failed += [f"rule {row['rule']}" for row in result.rules if row["passed"] is False]
    failed += [f"optimizer {row['optimizer']}" for row in result.optimizers if row["passed"] is False]
    result.passed = not failed
    result.message = "ok" if not failed else "; ".join(
        f"{key} = {figures[key]:.2e} > {limits[key]:g}" if key in limits else f"{key} failed"
        for key in failed)
    return result


def _el_error(problem, trajectory, mask) -> float:
    if "euler_lagrange_error" in trajectory.stats:     # the matrix-free solve's own, over its path
        return float(trajectory.stats["euler_lagrange_error"])
    if mask.sum() < 2:
        mask = np.ones_like(mask)
    last = int(np.nonzero(mask)[0][-1])
    ends = trajectory.elements[:, 1].astype(int)
    keep = trajectory.elements[ends <= last]
    if len(keep) == 0:
        return ocp.euler_lagrange_error(problem, trajectory)
    stop = int(keep[-1, 1]) + 1
    window = ocp.Trajectory(t=trajectory.t[:stop], theta=trajectory.theta[:stop],
                            velocity=trajectory.velocity[:stop], kinetic=trajectory.kinetic[:stop],
                            potential=trajectory.potential[:stop], costate=trajectory.costate[:stop],
                            objective=trajectory.objective, elements=keep, stats=trajectory.stats)
    return ocp.euler_lagrange_error(problem, window)


def default_selection() -> list:
    """The scenarios ``validate --all`` checks: those with ``in_default_validation`` (a scenario whose
    cases take minutes, such as digits_mlp, is validated by name only)."""
    from problems import registered
    return [name for name, cls in registered().items() if cls.in_default_validation]


def validate(selected=None, draws: int = 2, seed: int = 0, mesh=None, progress=None,
             rules: bool = True, gammas=None, on_case=None, backend=None, settings=None) -> list:
    """Results for the scenarios ``selected`` (default: :func:`default_selection`), in order;
    ``gammas`` overrides each scenario's ``validation_gammas``, ``settings`` its parameters;
    ``on_case(case)`` is called before a case is solved and ``progress(result)`` after.
    ``backend`` (:func:`lossnav.sweep.make`: a local pool or a Dask cluster) solves the cases on
    its workers: see :func:`check_on`."""
    selected = selected or default_selection()
    if backend is not None:
        every = [case for name in selected for case in cases(name, draws, seed, gammas, settings)]
        return check_on(backend, every, mesh, rules, progress, on_case)
    results = []
    for name in selected:
        for case in cases(name, draws, seed, gammas, settings):
            if on_case:
                on_case(case)
            results.append(check(case, mesh, rules))
            if progress:
                progress(results[-1])
    return results


def check_on(backend, case_list, mesh=None, rules: bool = True, progress=None, on_case=None) -> list:
    """:func:`check` of every case on ``backend``'s workers, one task a case. The results,
    and the ``on_case``/``progress`` calls (``on_case`` just before ``progress``), come in
    case order, as serially, so the output is the serial one line for line. A case whose task
    failed, timed out or was lost (its worker died) is a failed Result saying so."""
    from lossnav.sweep import make_task  # the sweep engine: only for parallel runs
    tasks = [make_task(index, case, {"problem": case.name, "case": case.label, "params": case.params})
             for index, case in enumerate(case_list)]
    finished, results = {}, []
    for outcome in backend.run(functools.partial(check, mesh=mesh, rules=rules), tasks):
        failed = f"{outcome.status}: {outcome.error}"
        finished[outcome.index] = (outcome.value if outcome.status == "ok" else
                                   Result(case_list[outcome.index], message=failed))
        while len(results) in finished:
            results.append(finished.pop(len(results)))
            if on_case:
                on_case(results[-1].case)
            if progress:
                progress(results[-1])
    return results
