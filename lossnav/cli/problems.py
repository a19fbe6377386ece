"""``lossnav problems``: the scenario catalogue (parameters, defaults, ranges, references).

    lossnav problems [--json] [--plugin FILE.py|module[:Name]]

Built-ins first, then plug-ins (entry points of ``lossnav.scenarios``, ``--plugin``), each
with where it came from (``origin`` in the JSON).
"""
from __future__ import annotations

from problems import get, names, registry

from . import arguments


def add_parser(commands):
    parser = commands.add_parser("problems", help="list the scenarios, their parameters and references",
                                 description="The scenario catalogue: parameters with defaults and "
                                             "valid ranges, default θ0, paper references.")
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    parser.set_defaults(handler=run_problems)
    return parser


def run_problems(args) -> int:
    catalogue = [entry for entry in map(_describe, names()) if entry is not None]
    if args.json:
        print(arguments.dumps(catalogue))
        return 0
    for entry in catalogue:
        print(f"{entry['name']}  (θ0 = {entry['theta0']}; analytic solution: "
              f"{'yes' if entry['analytic'] else 'no'} at the defaults)"
              + ("" if entry["origin"] == "built-in" else f"  [plug-in: {entry['origin']}]"))
        print(f"    {entry['reference']}")
        for key, info in entry["parameters"].items():
            print(f"    {key:<12} default {info['default']!s:<14} {info['range']}")
        print()
    return 0


def _describe(name):
    """The catalogue entry of scenario ``name``; a plug-in that cannot be built at its own
    defaults is left out with one warning line (the rest of the catalogue still lists)."""
    origin = registry.origin(name)
    if origin == "built-in":
        return {**get(name).describe(), "origin": origin}
    try:
        return {**get(name).describe(), "origin": origin}
    except Exception as exc:   # third-party code: any error must not hide the other scenarios
        registry.warn(f"plug-in scenario {name} ({origin}) cannot be built at its defaults: "
                      f"{type(exc).__name__}: {exc}")
        return None
