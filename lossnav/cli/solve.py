"""``lossnav solve``: one scenario by collocation, by its analytic solution, or by a learning rule.

    lossnav solve PROBLEM [--method collocation|analytic|mpc|rule:RULE] [--set key=value ...]
                          [--theta0 a,b,...] [--horizon inf|T] [--terminal a,b,...]
                          [--intervals N] [--degree d] [--scheme legendre|radau]
                          [--dt DT] [--steps N] [--plan-horizon TH] [--t0 T0] [--global]
                          [--time-limit SECONDS] [--out FILE.npz] [--plot FILE.png] [--json]

``--t0`` starts the problem's clock at T0 (collocation and mpc; for scenarios whose loss or
data depend on time, e.g. belief_adam's stream): times run from T0.

``--global`` (collocation only) solves from every basin and keeps the lowest objective
(``ocp.solve_global``: the loss's local minima found numerically, plus the scenario's own
guesses); ``--json`` then lists every candidate's objective.

Every method writes the same npz (``ocp.Trajectory.save``: t, theta, velocity, kinetic,
potential, costate, objective, checksum), atomically and at exactly the ``--out`` name, which
must end in .npz; ``--plot`` takes any format matplotlib writes (png, pdf, svg, ...). Both are
checked before any work. A learning rule whose iterate or loss leaves the finite numbers is a
failure (exit 1, the step and the reason on one line), never a trajectory.
"""
from __future__ import annotations

import math

import numpy as np

import ocp
from ocp.results import files
from problems import get, names

from . import arguments

METHODS = ("collocation", "analytic", "mpc", "rule:RULE")


def add_parser(commands):
    parser = commands.add_parser(
        "solve", help="solve a scenario (collocation, analytic or a learning rule)",
        description=f"Solve a scenario. Problems: {', '.join(names())}.")
    add = parser.add_argument
    add("problem", metavar="PROBLEM", help=f"one of: {', '.join(names())}")
    add("--method", type=_method, default="collocation", metavar="METHOD",
        help="collocation (default: the numerical reference), analytic (the closed form, "
             "infinite horizon), mpc (receding-horizon control, closed loop: --dt, "
             "--plan-horizon, --steps) or rule:RULE (a learning rule from learning_rules, "
             "e.g. rule:optimal_quadratic; needs --dt)")
    add("--set", dest="settings", metavar="KEY=VALUE", action="append", default=[],
        type=arguments.setting, help="scenario parameter, value as JSON (repeatable)")
    add("--theta0", type=arguments.vector, metavar="A,B,...", help="initial point (default: the scenario's)")
    add("--horizon", type=arguments.horizon, default=math.inf, metavar="inf|T",
        help="time horizon (default: inf)")
    add("--terminal", type=arguments.vector, metavar="A,B,...",
        help="fixed end point θ(T) (finite horizon only)")
    add("--intervals", type=arguments.positive_int, default=ocp.Mesh.intervals,
        help=f"collocation elements (default: {ocp.Mesh.intervals})")
    add("--degree", type=arguments.positive_int, default=ocp.Mesh.degree,
        help=f"collocation degree, 1 to 12 (default: {ocp.Mesh.degree})")
    add("--scheme", choices=("legendre", "radau"), default=ocp.Mesh.scheme,
        help=f"collocation points (default: {ocp.Mesh.scheme})")
    add("--dt", type=arguments.positive_float, metavar="DT",
        help="time step Δt of a learning rule (rule:RULE) or control interval (mpc)")
    add("--steps", type=arguments.positive_int, default=100, help="rule or mpc steps (default: 100)")
    add("--plan-horizon", type=arguments.horizon, default=math.inf, metavar="inf|TH",
        help="mpc planning horizon T_h (default: inf)")
    add("--t0", type=arguments.finite_float, default=0.0, metavar="T0",
        help="the problem's clock at the start, for time-dependent scenarios (collocation, mpc; default: 0)")
    add("--time-limit", type=arguments.positive_float, metavar="SECONDS",
        help="wall-clock budget of a collocation solve; when spent: one line naming the stage, exit 1")
    add("--mesh-tol", type=arguments.positive_float, metavar="TOL",
        help="finite horizons: double the mesh until two solutions agree to TOL of the path's range "
             "(default: checked to 1e-8 only where the mesh is coarse against the path's time scales)")
    add("--global", dest="global_search", action="store_true",
        help="collocation from every basin of the loss (its local minima, found numerically), "
             "keeping the lowest objective (ocp.solve_global); --json lists the candidates")
    add("--out", metavar="FILE.npz", help="save the trajectory (Trajectory.save)")
    add("--plot", metavar="FILE.png", help="plot θ(t), the energies and (2-D) the phase plane; other methods "
        "than collocation are drawn against the collocation reference (Trajectory.plot / compare)")
    add("--json", action="store_true", help="print a JSON summary on stdout")
    parser.set_defaults(handler=run)
    return parser


def _method(text: str) -> str:
    if text in ("collocation", "analytic", "mpc") or (text.startswith("rule:") and len(text) > 5):
        return text
    raise arguments.argparse.ArgumentTypeError(f"unknown method {text!r}; valid: {', '.join(METHODS)}")


def check_outputs(args) -> None:
    """--out and --plot checked before any solve (ocp.OutputPathError: one line, exit 1): the
    --out name ends in .npz (written exactly there), --plot in a format matplotlib writes."""
    if args.out is not None:
        files.check_output_path(args.out, (".npz",), what="--out")
    if args.plot is not None:
        from matplotlib.backend_bases import FigureCanvasBase
        formats = tuple(f".{name}" for name in sorted(FigureCanvasBase.get_supported_filetypes()))
        files.check_output_path(args.plot, formats, what="--plot")


def run(args) -> int:
    check_outputs(args)
    try:
        mesh = ocp.Mesh(args.intervals, args.degree, args.scheme)
    except ValueError as exc:
        raise arguments.UsageError(arguments.one_line(exc)) from None
    scenario = get(args.problem, **dict(args.settings))
    theta0 = scenario.theta0 if args.theta0 is None else scenario.problem.check_initial_state(args.theta0)
    trajectory = _trajectory(args, scenario, theta0, mesh)
    if args.out:
        trajectory.save(args.out)
    if args.plot:
        write_plot(args, scenario, theta0, mesh, trajectory)
    if args.json:
        summary = trajectory.summary()
        if "candidates" in trajectory.stats:     # --global: every basin's objective
            summary.update(candidates=trajectory.stats["candidates"],
                           best_candidate=trajectory.stats["best_candidate"])
        print(arguments.dumps({"problem": scenario.name, "method": args.method,
                              "params": scenario.params, **summary}))
    return 0


def _trajectory(args, scenario, theta0, mesh) -> ocp.Trajectory:
    free_infinite = math.isinf(args.horizon) and args.terminal is None
    guesses = scenario.guesses() or None   # one per basin of a non-convex scenario
    if args.t0 != 0 and args.method not in ("collocation", "mpc"):
        raise arguments.UsageError(f"--t0 applies to --method collocation or mpc, not {args.method}")
    if getattr(args, "global_search", False):
        if args.method != "collocation":
            raise arguments.UsageError(f"--global applies to --method collocation, not {args.method}")
        return ocp.solve_global(scenario.problem, theta0, horizon=args.horizon, terminal=args.terminal,
                                mesh=mesh, starts=guesses, t0=args.t0,
                                time_limit=getattr(args, "time_limit", None))
    if args.method == "collocation":
        return ocp.solve(scenario.problem, theta0, horizon=args.horizon, terminal=args.terminal,
                         mesh=mesh, guess=guesses if free_infinite else None, t0=args.t0,
                         time_limit=getattr(args, "time_limit", None),
                         mesh_tol=getattr(args, "mesh_tol", None))
    if args.method == "analytic":
        return analytic_trajectory(scenario, theta0, args)
    if args.dt is None:
        raise arguments.UsageError(f"--method {args.method} needs --dt")
    if args.method == "mpc":
        controller = ocp.RecedingHorizonController(scenario.problem, plan_horizon=args.plan_horizon,
                                         dt=args.dt, guess=guesses)
        return controller.run(theta0, steps=args.steps, t0=args.t0)
    return rule_trajectory(scenario, theta0, args)


def analytic_trajectory(scenario, theta0, args=None) -> ocp.Trajectory:
    """The closed form as a Trajectory on [0, t_end], t_end where it has converged to 1e-12."""
    if args is not None and (math.isfinite(args.horizon) or args.terminal is not None):
        raise ocp.ProblemError("the analytic solutions are for the infinite horizon with a free end; "
                               "drop --horizon/--terminal or use --method collocation")
    if not scenario.has_analytic():
        raise ocp.ProblemError(f"{scenario.name} has no analytic solution at these parameters "
                               f"({_short(scenario.params)}); use --method collocation")
    target = scenario.fixed_point()
    distance = np.linalg.norm(theta0 - target)
    t_end = 1.0
    while np.linalg.norm(scenario.analytic(t_end, theta0) - target) > 1e-12 * distance:
        t_end *= 2
        if t_end > 1e7:
            raise ocp.ProblemError("the analytic path does not converge before t = 1e7")
    return ocp.from_path(scenario.problem, lambda t: scenario.analytic(t, theta0), t_end)


def rule_trajectory(scenario, theta0, args) -> ocp.Trajectory:
    """A learning rule run from θ0 with step Δt, as a Trajectory (samples at the steps)."""
    from lossnav.validation import rule_runner as runner  # torch is imported only for this method
    rule = args.method.split(":", 1)[1]
    if rule not in runner.RULES:
        raise ocp.ProblemError(f"unknown rule {rule!r}; valid: {', '.join(runner.RULES)}")
    try:
        t, theta = runner.run_rule(rule, scenario, args.dt, args.steps, theta0=theta0)
    except ValueError as exc:   # the rule does not apply to this scenario
        raise ocp.ProblemError(arguments.one_line(exc)) from None
    except runner.DivergenceError as exc:   # never a diverged path reported as a success
        raise ocp.OCPError(f"rule {arguments.one_line(exc)}") from None
    return sampled_trajectory(scenario.problem, t, theta, method=args.method)


def sampled_trajectory(problem, t, theta, method) -> ocp.Trajectory:
    """Samples of a discrete rule (velocity by differences) in the Trajectory format."""
    t, theta = np.asarray(t, float), np.asarray(theta, float)
    velocity = np.gradient(theta, t, axis=0) if len(t) > 1 else np.zeros_like(theta)
    return ocp.results.path.from_samples(problem, t, theta, 2, velocity=velocity,
                                 stats={"success": True, "method": method, "gamma": problem.gamma,
                                        "note": "velocity by differences, objective by the trapezoid rule"})


def write_plot(args, scenario, theta0, mesh, trajectory):
    """--plot: :meth:`ocp.Trajectory.plot` of a collocation solve (θ(t), the energies, and the
    phase plane over the loss contours for 2-D problems); for the other methods
    :meth:`ocp.Trajectory.compare` against the collocation reference from the same θ0."""
    import matplotlib.pyplot as plt

    path, problem = args.plot, scenario.problem
    title = f"{scenario.name} ({args.method})  {_short(scenario.params)}"
    if args.method == "collocation":
        figure = trajectory.plot(problem=problem, title=title)
    else:
        free_infinite = math.isinf(args.horizon) and args.terminal is None
        reference = ocp.solve(problem, theta0, horizon=args.horizon, terminal=args.terminal, mesh=mesh,
                              guess=(scenario.guesses() or None) if free_infinite else None, t0=args.t0)
        figure = trajectory.compare(reference, problem=problem, labels=(args.method, "collocation"),
                                    title=title)
    figure.tight_layout()
    try:
        files.atomic_savefig(figure, path, dpi=120)
    finally:
        plt.close(figure)


def _short(params) -> str:
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    return text if len(text) <= 90 else text[:87] + "..."
