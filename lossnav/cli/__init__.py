"""The ``lossnav`` command line: one module per subcommand, dispatched here.

    lossnav problems  [--json]                      the scenario catalogue
    lossnav solve     PROBLEM [--method ...] ...    collocation, analytic or a learning rule
    lossnav validate  [NAME ...|--all] [--json] [--report DIR]
    lossnav langevin  --dim D --lr ETA ...          SGD limiting dynamics (Kunin et al.)
    lossnav train     --data D --model M --rule R --epochs E --seed S ...   train a network

Every command takes ``--plugin FILE.py|module[:Name]`` (repeatable): scenarios and training
rules from a script, loaded before the command line is parsed (:mod:`lossnav.plugins`);
installed plug-ins (entry points ``lossnav.scenarios``, ``lossnav.rules``) are read at start-up.
A plug-in that is skipped prints one ``lossnav: warning:`` line; the built-ins keep working.

Exit codes: 0 success, 1 the problem, a solve or a validation failed (an ``ocp.OCPError``,
an unwritable output), 2 malformed command line. Every error is one line on stderr.
"""
from __future__ import annotations

import io
import os
import sys
import warnings

import ocp
import problems as scenarios
from lossnav import plugins

from . import arguments, langevin, problems, solve, sweep, train, validate
from .arguments import PROG

COMMANDS = (problems.add_parser, solve.add_parser, validate.add_parser, langevin.add_parser,
            train.add_parser, sweep.add_parser)


def build_parser():
    parser = arguments.Parser(prog=PROG, description="Learning as discounted optimal control: "
                                                    "scenarios, references and validation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=arguments.Parser)
    for add in COMMANDS:
        add(commands)
    for subparser in commands.choices.values():   # every command, those added later included
        plugins.add_argument(subparser)
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
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            warnings.simplefilter("always", scenarios.PluginWarning)
            code = _main(argv)
        sys.stdout.flush()          # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:         # the reader closed the pipe (lossnav problems | head -1): a normal end
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _silence_stdout():
    """Point stdout at /dev/null so the interpreter's last flush does not report the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass                        # stdout without a descriptor (captured in a test): nothing to silence


def _main(argv) -> int:
    try:
        plugins.load_all(plugins.preparse(argv))   # before the parser: help and choices list them
        scenarios.names()                           # read the installed plug-ins now: warnings first
    except plugins.PluginError as exc:
        print(f"{PROG}: error: {arguments.one_line(exc)}", file=sys.stderr)
        return 2 if exc.usage else 1
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
    except BrokenPipeError:
        raise                       # handled in main: not an error
    except OSError as exc:
        target = f" {exc.filename}" if exc.filename else ""
        reason = exc.strerror or arguments.one_line(exc)
        print(f"{PROG}: error: cannot write{target}: {reason}", file=sys.stderr)
        return 1
    except MemoryError as exc:      # e.g. langevin --samples 2147483648: a size too large for this machine
        print(f"{PROG}: error: out of memory ({arguments.one_line(exc) or 'MemoryError'}); "
              "a size argument (--samples, --dim, --intervals, --batch, ...) is too large", file=sys.stderr)
        return 1


def _warning_line(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line on stderr ('lossnav: warning: ...'), without source lines."""
    print(f"{PROG}: warning: {arguments.one_line(message)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
