"""The ``lossnav`` command line.

    lossnav solve PROBLEM [--set key=value ...] [--theta0 a,b,...] [--horizon inf|T]
                          [--terminal a,b,...] [--intervals N] [--degree d]
                          [--scheme legendre|radau] [--out FILE.npz] [--plot FILE.png] [--json]

Exit codes: 0 success, 1 the problem or the solve failed (an ``ocp.OCPError``),
2 malformed command line. Every error is one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import ocp

import problems

PROG = "lossnav"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _setting(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"{key.strip()}: value {value!r} is not valid JSON ({exc.msg}); "
            "use numbers or lists, e.g. --set H=[[2,1],[1,3]]") from None


def _vector(text: str):
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def _horizon(text: str) -> float:
    if text.strip().lower() in ("inf", "infinity"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'inf' or a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"horizon must be 'inf' or a finite number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Learning as discounted optimal control: solve scenarios.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    solve = commands.add_parser(
        "solve", help="solve a scenario's optimal control problem",
        description=f"Solve a scenario. Problems: {', '.join(problems.names())}.")
    solve.add_argument("problem", metavar="PROBLEM", help=f"one of: {', '.join(problems.names())}")
    solve.add_argument("--set", dest="settings", metavar="KEY=VALUE", action="append", default=[],
                       type=_setting, help="scenario parameter, value as JSON (repeatable)")
    solve.add_argument("--theta0", type=_vector, metavar="A,B,...",
                       help="initial point (default: the scenario's)")
    solve.add_argument("--horizon", type=_horizon, default=math.inf, metavar="inf|T",
                       help="time horizon (default: inf)")
    solve.add_argument("--terminal", type=_vector, metavar="A,B,...",
                       help="fixed end point θ(T) (finite horizon only)")
    solve.add_argument("--intervals", type=_positive_int, default=ocp.Mesh.intervals,
                       help=f"collocation elements (default: {ocp.Mesh.intervals})")
    solve.add_argument("--degree", type=_positive_int, default=ocp.Mesh.degree,
                       help=f"collocation degree, 1 to 12 (default: {ocp.Mesh.degree})")
    solve.add_argument("--scheme", choices=("legendre", "radau"), default=ocp.Mesh.scheme,
                       help=f"collocation points (default: {ocp.Mesh.scheme})")
    solve.add_argument("--out", metavar="FILE.npz", help="save the trajectory (Trajectory.save)")
    solve.add_argument("--plot", metavar="FILE.png", help="plot θ(t) and the energies")
    solve.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    return parser


def _join_vector_options(argv):
    """Let '--theta0 -0.6,0.5' through: argparse would take '-0.6,0.5' for an option."""
    argv, out = list(argv), []
    for i, arg in enumerate(argv):
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
        return _solve(args)
    except ocp.OCPError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _solve(args) -> int:
    try:
        mesh = ocp.Mesh(args.intervals, args.degree, args.scheme)
    except ValueError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    scenario = problems.get(args.problem, **dict(args.settings))
    theta0 = scenario.theta0 if args.theta0 is None else args.theta0
    trajectory = ocp.solve(scenario.problem, theta0, horizon=args.horizon,
                           terminal=args.terminal, mesh=mesh)
    try:
        if args.out:
            trajectory.save(args.out)
        if args.plot:
            plot(trajectory, args.plot, title=f"{scenario.name}  {_short(scenario.params)}")
    except OSError as exc:
        print(f"{PROG}: error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    if args.json:
        summary = {"problem": scenario.name, "params": scenario.params, **trajectory.summary()}
        print(json.dumps(_strict_json(summary), indent=2))
    return 0


def plot(trajectory, path, title=""):
    """θ(t) components and kinetic/potential terms against t, as a PNG (Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = trajectory.t
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
    for i in range(trajectory.theta.shape[1]):
        top.plot(t, trajectory.theta[:, i], label=f"θ{i + 1}")
    top.set_ylabel("θ(t)")
    top.legend(loc="best")
    top.set_title(title, fontsize=9)
    bottom.plot(t, trajectory.kinetic, label="kinetic (1/2η)|θ̇ − f|²_G")
    bottom.plot(t, trajectory.potential, label="potential k·L(θ)")
    bottom.set_xlabel("t")
    bottom.legend(loc="best")
    if math.isinf(trajectory.stats.get("horizon", 0.0)) and t[-1] > 100 * max(t[1], 1e-300):
        for axis in (top, bottom):
            axis.set_xscale("symlog", linthresh=max(t[1], 1e-6))
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=120)
    finally:
        plt.close(figure)


def _one_line(exc) -> str:
    return " ".join(str(exc).split())


def _short(params) -> str:
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    return text if len(text) <= 90 else text[:87] + "..."


def _strict_json(value):
    """Replace non-finite floats (e.g. an infinite horizon) by strings: stdout stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(item) for item in value]
    if hasattr(value, "item"):  # numpy scalars
        return _strict_json(value.item())
    return value


if __name__ == "__main__":
    sys.exit(main())
