"""``lossnav validate``: analytic solutions and learning rules against collocation.

    lossnav validate [NAME ...|--all] [--draws N] [--seed S] [--gammas a,b,...] [--json] [--report DIR]
                     [--workers N | --scheduler ADDRESS]
    lossnav validate NAME [--set key=value ...] --optimizer FILE.py:factory|module:factory
                     --dt a,b,c [--horizon T] [--limit gradient_flow|optimal|module:function] [--json]

``validate`` prints one line per case and exits 1 if any case fails; ``--report DIR``
writes DIR/report.md with every figure (PNG and PDF) beside it and, for belief_adam and
weight_uncertainty, runs the optimizers' convergence to collocation
(:mod:`lossnav.validation.optimizer_studies`; a failing study also exits 1). ``--gammas``
replaces the scenarios' own discount rates; a progress bar (on a terminal) names the case
being solved. ``--workers N`` solves the cases on N local processes, ``--scheduler ADDRESS``
on a Dask cluster (:mod:`lossnav.sweep`; docs/sweeps.md): the lines, the JSON and the report are
the serial run's, case for case and figure for figure, the timings (``seconds``) aside.

``--optimizer`` checks the user's optimizer ``factory(params, dt)`` on scenario NAME against
the collocation reference and the ``--limit`` flow at each ``--dt``
(:func:`lossnav.validation.validate_optimizer`): a table and the verdict, or with ``--json``
``{"rows": [{"dt", "error_reference", "error_limit", ...}], "order_reference", "order_limit",
...}``; exit 1 when it does not converge to the declared limit (to the optimal path without one).
"""
from __future__ import annotations

import contextlib
import functools
import sys

import ocp
from lossnav.validation import cases
from ocp.results import files
from problems import get, names

from . import arguments


def add_parser(commands):
    parser = commands.add_parser(
        "validate", help="check analytic solutions against the collocation reference",
        description="For each scenario: the paper's defaults and seeded random parameter draws at "
                    "several discount rates; analytic vs collocation error, Euler-Lagrange "
                    "residuals, pass/fail against stated tolerances (exit 1 if any fails).")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"scenarios ({', '.join(names())})")
    parser.add_argument("--all", action="store_true",
                        help="every scenario but those validated by name only (digits_mlp: minutes)")
    parser.add_argument("--draws", type=arguments.non_negative_int, default=2,
                        help="random parameter draws per scenario (default: 2)")
    parser.add_argument("--seed", type=arguments.non_negative_int, default=0,
                        help="seed of the draws (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--report", metavar="DIR", help="write DIR/report.md and the figures")
    parser.add_argument("--gammas", type=_gammas, metavar="A,B,...",
                        help="discount rates of every case (default: each scenario's own, e.g. 0,0.1,1,10)")
    parser.add_argument("--workers", type=arguments.positive_int, default=1, metavar="N",
                        help="solve the cases on N local processes (default: 1, in this process)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="solve the cases on a Dask cluster, e.g. tcp://host:8786")
    check = parser.add_argument_group("checking your optimizer (lossnav.validation.validate_optimizer)")
    check.add_argument("--optimizer", metavar="FILE.py:factory|module:factory",
                       help="a factory (params, dt) -> torch.optim.Optimizer to check on scenario NAME")
    check.add_argument("--dt", type=_steps, metavar="A,B,...",
                       help="step sizes, at least two (with --optimizer)")
    check.add_argument("--horizon", type=arguments.positive_float, default=5.0, metavar="T",
                       help="compare on [0, T] (with --optimizer; default: 5)")
    check.add_argument("--limit", metavar="gradient_flow|optimal|module:function",
                       help="the flow the optimizer should converge to: gradient flow θ̇ = −(ηk/γ)∇L, "
                            "the optimal path, or limit(scenario, t, theta0) -> (n, dim)")
    check.add_argument("--set", dest="settings", metavar="KEY=VALUE", action="append", default=[],
                       type=arguments.setting,
                       help="scenario parameter, value as JSON, for every case (e.g. hidden=4; repeatable)")
    parser.set_defaults(handler=run_validate)
    return parser


def _gammas(text: str) -> list:
    values = arguments.vector(text)
    if not all(value >= 0 for value in values):
        raise arguments.argparse.ArgumentTypeError(f"discount rates must be ≥ 0, got {text!r}")
    return values


def _steps(text: str) -> list:
    values = arguments.vector(text)
    if len(set(values)) < 2 or not all(value > 0 for value in values):
        raise arguments.argparse.ArgumentTypeError(
            f"expected at least two distinct step sizes > 0, got {text!r}")
    return values


def run_validate(args) -> int:
    if args.optimizer is not None:
        return run_optimizer_check(args)
    selected = _selected(args)
    out = sys.stderr if args.json else sys.stdout
    print(f"{'problem':<19} {'case':<30} {'error':>9} {'EL coll.':>9} {'EL anal.':>9} {'final':>9}  result",
          file=out)
    results = _solve_cases(selected, args, out)
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)}/{len(results)} cases passed "
          f"(tolerances: error {cases.TOLERANCE:g} relative to |θ0 − θ*|, EL residual "
          f"{cases.EL_TOLERANCE:g} (collocation) / {cases.EL_TOLERANCE_ANALYTIC:g} (analytic) "
          f"relative, final point {cases.FINAL_TOLERANCE:g})", file=out)
    if args.json:
        print(arguments.dumps([r.row() for r in results]))
    studies = _write_report(args.report, selected, results, out) if args.report else []
    return 1 if failed or not all(entry["passed"] for entry in studies) else 0


def _selected(args) -> list:
    """The scenario names to validate, every argument checked before any case is solved."""
    for flag, given in (("--dt", args.dt), ("--limit", args.limit)):
        if given:
            raise arguments.UsageError(f"{flag} applies with --optimizer only")
    if args.all == bool(args.names):
        raise arguments.UsageError("give scenario names or --all (not both)")
    if args.report is not None:             # before any case is solved (ocp.OutputPathError: exit 1)
        files.check_output_folder(args.report, what="--report")
    selected = cases.default_selection() if args.all else args.names
    for name in selected:
        if name not in names():
            raise ocp.ProblemError(f"unknown problem {name!r}; valid: {', '.join(names())}")
    if args.settings:                      # every --set checked on every scenario before any solve
        for name in selected:
            get(name, **dict(args.settings))
    return selected


def _solve_cases(selected, args, out) -> list:
    """Every case's result, each printed as it comes above a progress bar."""
    bar = _progress_bar(selected, args, out)

    def on_case(case):                    # the bar's text: the case being solved
        bar.set_description_str(f"{case.name}: {case.label}")

    def on_result(result):                # its line above the bar, as it comes
        bar.write(_line(result), file=out)
        bar.update()
    try:
        with _backend(args) as backend:   # --workers/--scheduler: the same lines, in the same order
            results = cases.validate(selected, args.draws, args.seed, gammas=args.gammas, backend=backend,
                                     on_case=on_case, progress=on_result, settings=dict(args.settings))
    except ConnectionError as exc:       # no Dask scheduler at --scheduler
        raise ocp.ProblemError(arguments.one_line(exc)) from None
    finally:
        bar.close()
    return results


def _write_report(folder, selected, results, out) -> list:
    """``--report DIR``: the optimizer studies of the selected scenarios, then DIR/report.md and
    its figures; returns the studies (their pass flags count in the exit code)."""
    from lossnav import report
    from lossnav.validation import optimizer_studies  # matplotlib and torch are imported only for reports
    progress = functools.partial(print, file=out, flush=True)
    studies = optimizer_studies.run(selected, progress=progress)
    for entry in studies:
        print(optimizer_studies.summary(entry), file=out)
    path = report.write(folder, results, progress=progress, studies=studies)
    print(f"report: {path}", file=out)
    return studies


def _backend(args):
    """None (serial, in this process) or the lossnav.sweep backend of --workers/--scheduler."""
    if args.workers > 1 and args.scheduler is not None:
        raise arguments.UsageError("give --workers or --scheduler, not both")
    if args.workers == 1 and args.scheduler is None:
        return contextlib.nullcontext()
    from lossnav import sweep
    return sweep.make(args.workers, args.scheduler, preload=["lossnav.validation.cases"])


def _progress_bar(selected, args, out):
    """A tqdm bar over every case (shown on a terminal only), its text the case being solved."""
    from tqdm import tqdm
    total = sum(len(cases.cases(name, args.draws, args.seed, args.gammas, dict(args.settings)))
                for name in selected)
    return tqdm(total=total, unit="case", file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)


def run_optimizer_check(args) -> int:
    """``--optimizer``: the user's optimizer on one scenario (validate_optimizer)."""
    from lossnav import plugins
    from lossnav.validation import optimizer_check  # torch: only for this mode
    if len(args.names) != 1 or args.all:
        raise arguments.UsageError("--optimizer checks one scenario: give exactly one NAME")
    if args.dt is None:
        raise arguments.UsageError("--optimizer needs --dt a,b,... (at least two step sizes)")
    for flag, given in (("--report", args.report), ("--gammas", args.gammas)):
        if given:
            raise arguments.UsageError(f"{flag} does not apply with --optimizer (use --set gamma=...)")
    try:
        factory = plugins.load_object(args.optimizer, "--optimizer", "a factory (params, dt) -> optimizer")
        limit = args.limit
        if limit is not None and limit not in optimizer_check.LIMITS:
            limit = plugins.load_object(limit, "--limit", "gradient_flow, optimal or a function")
    except plugins.PluginError as exc:
        if exc.usage:
            raise arguments.UsageError(arguments.one_line(exc)) from None
        raise ocp.ProblemError(arguments.one_line(exc)) from None
    scenario = get(args.names[0], **dict(args.settings))
    try:
        result = optimizer_check.validate_optimizer(factory, scenario, args.dt, horizon=args.horizon,
                                                    limit=limit)
    except optimizer_check.OptimizerCheckError as exc:
        raise ocp.ProblemError(arguments.one_line(exc)) from None
    if args.json:
        print(arguments.dumps(result.to_dict()))
    else:
        print(f"{scenario.name} ({', '.join(f'{k}={v}' for k, v in scenario.params.items())}), "
              f"optimizer {args.optimizer}, horizon {args.horizon:g}, limit {result.limit or '—'}")
        print(result.table())
    return 0 if result.passed else 1


def _line(result) -> str:
    figures = result.figures

    def show(key):
        return f"{figures[key]:9.1e}" if key in figures else f"{'—':>9}"
    verdict = "pass" if result.passed else f"FAIL: {result.message}"
    line = (f"{result.case.name:<19} {result.case.label:<30} {show('error')} {show('el_collocation')} "
            f"{show('el_analytic')} {show('final_error')}  {verdict}")
    if not result.optimizers:
        return line
    return "\n".join([line, *map(_rule_line, result.rules), *map(_optimizer_line, result.optimizers)])


def _rule_line(row) -> str:
    """A rule under its case (scenarios that check optimizers): distance to the optimal path, order."""
    if "not_applicable" in row:
        return f"    rule {row['rule']:<18} does not apply: {row['not_applicable']}"
    if "diverged" in row:
        return f"    rule {row['rule']:<18} {row['diverged']}"
    order = row.get("order")
    return (f"    rule {row['rule']:<18} Δt {row['dt']:.3g}: distance to the optimal path "
            f"{row['vs_collocation']:.2e}"
            + ("" if order is None else f", order {order:.2f} to its limit flow")
            + {True: "  pass", False: "  FAIL", None: ""}[row["passed"]])


def _optimizer_line(row) -> str:
    """An optimizer of the scenario's checked_optimizers: its distances at Δt, Δt/2, Δt/4 and verdict."""
    errors = " → ".join(f"{error:.2e}" for error in row["errors"]) or "—"
    return f"    optimizer {row['optimizer']:<13} distance to the optimal path {errors}; {row['verdict']}"
