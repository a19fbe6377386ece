"""``lossnav problems`` (the catalogue) and ``lossnav validate`` (analytic vs collocation).

    lossnav problems [--json]
    lossnav validate [NAME ...|--all] [--draws N] [--seed S] [--json] [--report DIR]

``validate`` prints one line per case and exits 1 if any case fails; ``--report DIR``
writes DIR/report.md with every figure (PNG and PDF) beside it and, for belief_adam and
weight_uncertainty, runs the optimizers' convergence to collocation
(:mod:`problems.optimizer_studies`; a failing study also exits 1).
"""
from __future__ import annotations

import sys

import ocp

from . import cli_args, get, names, validate


def add_problems_parser(commands):
    parser = commands.add_parser("problems", help="list the scenarios, their parameters and references",
                                 description="The scenario catalogue: parameters with defaults and "
                                             "valid ranges, default θ0, paper references.")
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    parser.set_defaults(handler=run_problems)
    return parser


def run_problems(args) -> int:
    catalogue = [get(name).describe() for name in names()]
    if args.json:
        print(cli_args.dumps(catalogue))
        return 0
    for entry in catalogue:
        print(f"{entry['name']}  (θ0 = {entry['theta0']}; analytic solution: "
              f"{'yes' if entry['analytic'] else 'no'} at the defaults)")
        print(f"    {entry['reference']}")
        for key, info in entry["parameters"].items():
            print(f"    {key:<12} default {info['default']!s:<14} {info['range']}")
        print()
    return 0


def add_parser(commands):
    parser = commands.add_parser(
        "validate", help="check analytic solutions against the collocation reference",
        description="For each scenario: the paper's defaults and seeded random parameter draws at "
                    "several discount rates; analytic vs collocation error, Euler-Lagrange "
                    "residuals, pass/fail against stated tolerances (exit 1 if any fails).")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"scenarios ({', '.join(names())})")
    parser.add_argument("--all", action="store_true", help="every scenario")
    parser.add_argument("--draws", type=cli_args.non_negative_int, default=2, help="random parameter draws per scenario (default: 2)")
    parser.add_argument("--seed", type=cli_args.non_negative_int, default=0, help="seed of the draws (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--report", metavar="DIR", help="write DIR/report.md and the figures")
    parser.set_defaults(handler=run_validate)
    return parser


def run_validate(args) -> int:
    if args.all == bool(args.names):
        raise cli_args.UsageError("give scenario names or --all (not both)")
    selected = names() if args.all else args.names
    for name in selected:
        if name not in names():
            raise ocp.ProblemError(f"unknown problem {name!r}; valid: {', '.join(names())}")
    out = sys.stderr if args.json else sys.stdout
    print(f"{'problem':<19} {'case':<30} {'error':>9} {'EL coll.':>9} {'EL anal.':>9} {'final':>9}  result",
          file=out)
    results = validate.validate(selected, args.draws, args.seed,
                                progress=lambda result: print(_line(result), file=out, flush=True))
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)}/{len(results)} cases passed "
          f"(tolerances: error {validate.TOLERANCE:g} relative to |θ0 − θ*|, EL residual "
          f"{validate.EL_TOLERANCE:g} (collocation) / {validate.EL_TOLERANCE_ANALYTIC:g} (analytic) "
          f"relative, final point {validate.FINAL_TOLERANCE:g})", file=out)
    if args.json:
        print(cli_args.dumps([r.row() for r in results]))
    studies = []
    if args.report:
        from . import optimizer_studies, report  # matplotlib and torch are imported only for reports
        progress = lambda text: print(text, file=out, flush=True)
        studies = optimizer_studies.run(selected, progress=progress)
        for entry in studies:
            print(optimizer_studies.summary(entry), file=out)
        path = report.write(args.report, results, progress=progress, studies=studies)
        print(f"report: {path}", file=out)
    return 1 if failed or not all(entry["passed"] for entry in studies) else 0


def _line(result) -> str:
    figures = result.figures

    def show(key):
        return f"{figures[key]:9.1e}" if key in figures else f"{'—':>9}"
    verdict = "pass" if result.passed else f"FAIL: {result.message}"
    return (f"{result.case.name:<19} {result.case.label:<30} {show('error')} {show('el_collocation')} "
            f"{show('el_analytic')} {show('final_error')}  {verdict}")
