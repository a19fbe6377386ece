"""``lossnav sweep``: one command over a grid or a random sample of its options, in parallel.

    lossnav sweep COMMAND [the command's own options] --grid KEY=V1,V2,... [--grid ...]
                  [--samples N --seed S] [--workers N | --scheduler ADDRESS] [--time-limit S]
                  [--retries R] --out DIR [--resume] [--plot FIGURE [--against KEY]]

COMMAND is any registered subcommand (solve, validate, train, langevin, a plug-in's). A KEY
is one of its options (``lr`` for ``--lr``, ``weight_decay`` or ``weight-decay`` for
``--weight-decay``, a flag as ``KEY=true,false``), its positional argument by name (``problem``
of solve, ``names`` of validate), or else, for a command with ``--set``, a scenario parameter
(``gamma`` → ``--set gamma=V``). The sweep's own options come first: a command's option of
the same name (``--seed``, ``--samples``, ``--out``, ``--workers``, ``--time-limit``) is given as
a one-value grid, ``--grid seed=3``. SPEC syntax and grid files: :mod:`lossnav.sweep.grid`.

Each point is one task: the command line ``lossnav COMMAND ... --json`` run by the command's
own entry (:func:`run_command`, the same ``main`` as the console script) in a worker; its
row is what that command prints, flattened (:mod:`lossnav.sweep.table`), beside the point's
values, ``status``, ``wall_time`` and ``argv`` (the line that re-runs it alone). The table is
``DIR/results.csv`` and ``DIR/results.parquet``; ``--plot FIGURE`` adds
``DIR/FIGURE_vs_KEY.png`` (KEY: ``--against``, default the first grid key). Exit 0 when every
task is ok, 1 when one failed, timed out or was lost (the table is written either way), 2 for
a malformed command line.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import sys

from lossnav import sweep as engine
from lossnav.sweep import grid as grids
from lossnav.sweep.plot import PlotError, plot_name, summary_plot

from . import arguments

FORCED = ("--json",)          # every task prints its JSON
NOT_SWEPT = ("help", "json", "plugins")


def add_parser(commands):
    parser = commands.add_parser(
        "sweep", help="run a command over a grid of its options (local pool or Dask cluster)",
        description="Run COMMAND once per point of a grid (or a seeded random sample) of its options, "
                    "in parallel; write DIR/results.csv and DIR/results.parquet, one row a task. "
                    "KEY is an option of COMMAND (lr for --lr), its positional argument by name "
                    "(problem, names) or, for solve, a --set parameter (gamma). The sweep's own options "
                    "come first: give a command's --seed (--samples, --out, ...) as --grid seed=3. "
                    "docs/sweeps.md has the cluster recipes.")
    parser.add_argument("command", metavar="COMMAND",
                        help="the subcommand to run (solve, validate, train, langevin, ...)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    add_options(parser)
    parser.set_defaults(handler=run)
    return parser


def add_options(parser) -> None:
    add = parser.add_argument
    add("--grid", action="append", default=None, metavar="KEY=SPEC|FILE",
        help="values of one option: V1,V2,... or A:B (integers A..B-1) or A:B:STEP; with --samples also "
             "uniform(A,B), loguniform(A,B), randint(A,B); or a .toml/.yaml grid file (repeatable)")
    add("--samples", type=arguments.positive_int, metavar="N",
        help="a random sample of N points instead of the whole grid")
    add("--seed", type=arguments.non_negative_int, metavar="S", help="seed of --samples (default: 0)")
    add("--workers", type=arguments.positive_int, metavar="N",
        help="local worker processes (default: 1, in this process)")
    add("--scheduler", metavar="ADDRESS",
        help="a Dask scheduler, e.g. tcp://host:8786 (instead of --workers)")
    add("--time-limit", type=arguments.positive_float, metavar="S",
        help="seconds per task; a task over it is a 'timeout' row")
    add("--retries", type=arguments.non_negative_int, metavar="R",
        help="runs again of a task whose worker died, before it is 'lost' "
             f"(default: {engine.backends.DEFAULT_RETRIES})")
    add("--out", metavar="DIR", help="output folder (results.csv, results.parquet, tasks/KEY.json)")
    add("--resume", action="store_true",
        help="reuse the finished rows of DIR's table (same parameters and code)")
    add("--plot", metavar="FIGURE", help="plot this column of the table against --against")
    add("--against", metavar="KEY", help="the parameter on the plot's x axis (default: the first grid key)")


def run(args) -> int:
    options = arguments.Parser(prog=f"{arguments.PROG} sweep", add_help=False, allow_abbrev=False)
    add_options(options)
    try:
        args, command_args = options.parse_known_args(args.rest, namespace=args)
    except SystemExit as exc:        # a malformed sweep option: argparse printed its one line
        return exc.code if isinstance(exc.code, int) else 2
    command_args = [*(item for spec in args.plugins for item in ("--plugin", spec)), *command_args]
    if not args.grid:
        raise arguments.UsageError("sweep needs at least one --grid KEY=V1,V2,...")
    if not args.out:
        raise arguments.UsageError("sweep needs --out DIR")
    if args.workers is not None and args.scheduler is not None:
        raise arguments.UsageError("give --workers or --scheduler, not both")
    subparser = _command_parser(args.command)
    try:
        grid, samples, seed = _grid(args)
        points = grids.points(grid, samples, seed)
    except grids.GridError as exc:
        raise arguments.UsageError(arguments.one_line(exc)) from None
    against = args.against or next(iter(grid))
    if args.plot and against not in grid:
        raise arguments.UsageError(f"--against {against}: not a grid key ({', '.join(grid)})")
    placement = {key: _placement(subparser, args.command, key) for key in grid}
    tasks = []
    for index, point in enumerate(points):
        argv = command_line(args.command, command_args, point, placement, subparser)
        params = {key: grids.parse_value(value) for key, value in point.items()}
        tasks.append(engine.make_task(index, argv, {"argv": argv}, params))
    _check_parses(tasks)
    backend = engine.make(args.workers or 1, args.scheduler,
                          engine.backends.DEFAULT_RETRIES if args.retries is None else args.retries,
                          preload=["lossnav.cli"])
    try:
        with backend:
            table, counts = engine.run_sweep(tasks, run_command, backend, args.out, resume=args.resume,
                                             seconds=args.time_limit, parameters=list(grid),
                                             argv_of=lambda task: shlex.join([arguments.PROG, *task.payload]))
    except engine.SweepExistsError as exc:
        raise arguments.UsageError(arguments.one_line(exc)) from None
    except ConnectionError as exc:
        print(f"{arguments.PROG}: error: {arguments.one_line(exc)}", file=sys.stderr)
        return 1
    written = [os.path.join(args.out, name) for name in (engine.table.CSV, engine.table.PARQUET)]
    if args.plot:
        try:
            figure = os.path.join(args.out, plot_name(args.plot, against))
            written.append(summary_plot(table, args.plot, against, figure,
                                        title=f"lossnav sweep {args.command}"))
        except PlotError as exc:
            print(f"{arguments.PROG}: error: {arguments.one_line(exc)}", file=sys.stderr)
            return 1
    print(f"{len(tasks)} tasks: " + ", ".join(f"{n} {status}" for status, n in counts.items())
          + f" -> {', '.join(written)}")
    return 0 if counts["ok"] == len(tasks) else 1


def _grid(args):
    grid, samples, seed = {}, args.samples, args.seed
    for spec in args.grid:
        if "=" not in spec and os.path.splitext(spec)[1].lower() in (".toml", ".yaml", ".yml"):
            content = grids.read_file(spec)
            axes = content["grid"]
            samples = samples if samples is not None else content["samples"]
            seed = seed if seed is not None else content["seed"]
        else:
            key, axis = grids.parse_option(spec)
            axes = {key: axis}
        for key in axes:
            if key in grid:
                raise grids.GridError(f"--grid {key} given twice")
        grid.update(axes)
    if seed is not None and samples is None:
        raise grids.GridError("--seed seeds --samples; the command's own seed is a grid key: --grid seed=S")
    return grid, samples, seed or 0


def _command_parser(command):
    from . import build_parser  # the whole CLI, plug-in commands included
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    choices = commands.choices
    if command == "sweep" or command not in choices:
        valid = ", ".join(name for name in choices if name != "sweep")
        raise arguments.UsageError(f"unknown command {command!r} to sweep; valid: {valid}")
    return choices[command]


def _placement(subparser, command, key):
    """How ``key`` reaches the command: ("positional", action), ("option", action) or ("set", None)."""
    normal = key.replace("-", "_")
    settable = False
    for action in subparser._actions:
        if action.dest in NOT_SWEPT:
            continue
        if not action.option_strings:
            if action.dest == normal:
                return ("positional", action)
            continue
        names = {text.lstrip("-").replace("-", "_") for text in action.option_strings}
        if normal in names or action.dest == normal:
            return ("option", action)
        settable = settable or "--set" in action.option_strings
    if settable:
        return ("set", None)
    valid = sorted({text.lstrip("-") for action in subparser._actions if action.dest not in NOT_SWEPT
                    for text in action.option_strings[-1:]} |
                   {action.dest for action in subparser._actions if not action.option_strings})
    raise arguments.UsageError(f"--grid {key}: not an option of {command} (options: {', '.join(valid)})")


def command_line(command, base, point, placement, subparser) -> list:
    """The argv of one task: ``COMMAND [positionals] [base options] [the point's options] --json``."""
    positionals, options = [], []
    for key, value in point.items():
        kind, action = placement[key]
        if kind == "positional":
            several = action.nargs in ("*", "+") and "," in value
            positionals += grids.split_values(value) if several else [value]
        elif kind == "set":
            options += ["--set", f"{key}={value}"]
        elif action.nargs == 0:              # a flag: KEY=true adds it, KEY=false leaves it out
            if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise arguments.UsageError(f"--grid {key}: a flag takes true or false, got {value!r}")
            options += [action.option_strings[-1]] if value.strip().lower() in ("true", "1", "yes") else []
        else:
            options += [f"{action.option_strings[-1]}={value}"]
    forced = [flag for flag in FORCED if flag in subparser._option_string_actions and flag not in base]
    return [command, *positionals, *base, *options, *forced]


def _check_parses(tasks) -> None:
    """Parse every task's command line before any runs: a bad value is exit 2, not N failed rows."""
    from . import _join_vector_options, build_parser
    parser = build_parser()
    for task in tasks:
        error = io.StringIO()
        try:
            with contextlib.redirect_stderr(error):
                parser.parse_args(_join_vector_options(task.payload))
        except SystemExit:
            message = error.getvalue().strip().splitlines()[-1] if error.getvalue().strip() else "malformed"
            message = message.removeprefix(f"{arguments.PROG}: error: ")
            raise arguments.UsageError(f"task {shlex.join(task.payload)}: {message}") from None


def run_command(argv) -> dict | None:
    """Run ``lossnav ARGV`` in this process; its JSON on stdout is the result. A non-zero exit
    raises :class:`lossnav.sweep.TaskFailed` with the last line on stderr (and the JSON, if any)."""
    from . import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    text = out.getvalue()
    try:
        value = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        value = {"stdout": text[-2000:]}
    if code != 0:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        raise engine.TaskFailed(f"exit {code}: {lines[-1].strip() if lines else 'no message'}", value)
    return value
