"""The ``lossnav`` command line: one module per subcommand, dispatched here.

    lossnav problems  [--json]                      the scenario catalogue
    lossnav solve     PROBLEM [--method ...] ...    collocation, analytic or a learning rule
    lossnav validate  [NAME ...|--all] [--json] [--report DIR]
    lossnav langevin  --dim D --lr ETA ...          SGD limiting dynamics (Kunin et al.)
    lossnav train     --data D --model M --rule R --epochs E --seed S ...   train a network

Exit codes: 0 success, 1 the problem, a solve or a validation failed (an ``ocp.OCPError``,
an unwritable output), 2 malformed command line. Every error is one line on stderr.
"""
from __future__ import annotations

import sys

import ocp

from . import arguments, langevin, problems, solve, train, validate
from .arguments import PROG

COMMANDS = (problems.add_parser, solve.add_parser, validate.add_parser, langevin.add_parser,
            train.add_parser)


def build_parser():
    parser = arguments.Parser(prog=PROG, description="Learning as discounted optimal control: "
                                                    "scenarios, references and validation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=arguments.Parser)
    for add in COMMANDS:
        add(commands)
    return parser


def _join_vector_options(argv):
    """Let '--theta0 -0.6,0.5' through: argparse would take '-0.6,0.5' for an option."""
    argv, out = list(argv), []
    for arg in argv:
        if out and out[-1] in ("--theta0", "--terminal") and arg.startswith("-") and not arg.startswith("--"):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv=None) -> int:
    """Run the CLI; returns the exit code (the console script passes it to sys.exit)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(_join_vector_options(argv))
    except SystemExit as exc:  # argparse: --help (0) or a malformed command line (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except arguments.UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except ocp.OCPError as exc:
        print(f"{PROG}: error: {arguments.one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
