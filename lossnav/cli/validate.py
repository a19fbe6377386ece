"""``lossnav validate``: analytic solutions and learning rules against collocation.

    lossnav validate [NAME ...|--all] [--draws N] [--seed S] [--json] [--report DIR]

``validate`` prints one line per case and exits 1 if any case fails; ``--report DIR``
writes DIR/report.md with every figure (PNG and PDF) beside it and, for belief_adam and
weight_uncertainty, runs the optimizers' convergence to collocation
(:mod:`lossnav.validation.optimizer_studies`; a failing study also exits 1).
"""
from __future__ import annotations

import sys

import ocp

from problems import get, names

from lossnav.validation import cases

from . import arguments


def add_parser(commands):
    parser = commands.add_parser(
        "validate", help="check analytic solutions against the collocation reference",
        description="For each scenario: the paper's defaults and seeded random parameter draws at "
                    "several discount rates; analytic vs collocation error, Euler-Lagrange "
                    "residuals, pass/fail against stated tolerances (exit 1 if any fails).")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"scenarios ({', '.join(names())})")
    parser.add_argument("--all", action="store_true", help="every scenario")
    parser.add_argument("--draws", type=arguments.non_negative_int, default=2, help="random parameter draws per scenario (default: 2)")
    parser.add_argument("--seed", type=arguments.non_negative_int, default=0, help="seed of the draws (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--report", metavar="DIR", help="write DIR/report.md and the figures")
    parser.set_defaults(handler=run_validate)
    return parser


def run_validate(args) -> int:
    if args.all == bool(args.names):
        raise arguments.UsageError("give scenario names or --all (not both)")
    selected = names() if args.all else args.names
    for name in selected:
        if name not in names():
            raise ocp.ProblemError(f"unknown problem {name!r}; valid: {', '.join(names())}")
    out = sys.stderr if args.json else sys.stdout
    print(f"{'problem':<19} {'case':<30} {'error':>9} {'EL coll.':>9} {'EL anal.':>9} {'final':>9}  result",
          file=out)
    results = cases.validate(selected, args.draws, args.seed,
                                progress=lambda result: print(_line(result), file=out, flush=True))
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)}/{len(results)} cases passed "
          f"(tolerances: error {cases.TOLERANCE:g} relative to |θ0 − θ*|, EL residual "
          f"{cases.EL_TOLERANCE:g} (collocation) / {cases.EL_TOLERANCE_ANALYTIC:g} (analytic) "
          f"relative, final point {cases.FINAL_TOLERANCE:g})", file=out)
    if args.json:
        print(arguments.dumps([r.row() for r in results]))
    studies = []
    if args.report:
        from lossnav import report
        from lossnav.validation import optimizer_studies  # matplotlib and torch are imported only for reports
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
