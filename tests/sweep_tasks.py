"""Task functions for tests/test_sweep*.py, importable by worker processes (this module is
not collected by pytest and imports nothing heavy, so a fresh worker starts fast)."""
import os
import signal
import time

import numpy as np


def square(x):
    return {"y": x * x}


def draw(x):
    """A figure from numpy's global generator: equal across backends only if every task is
    seeded from its own parameters."""
    return {"x": x, "draw": float(np.random.random())}


def fail(x):
    raise ValueError(f"bad input {x}")


def sleep(seconds):
    """Python-level sleep in small steps: the time limit interrupts between two of them."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
    return {"slept": seconds}


def die_once(marker):
    """Kill this worker the first time (no marker yet), succeed on the retry."""
    if not os.path.exists(marker):
        with open(marker, "w") as handle:
            handle.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return {"survived": True}


def die_always(_):
    os.kill(os.getpid(), signal.SIGKILL)


def dispatch(payload):
    """die_once for a path, die_always for None, else square (one function, several behaviours)."""
    if payload is None:
        return die_always(payload)
    if isinstance(payload, str):
        return die_once(payload)
    return square(payload)


def add_echo_parser(commands):
    """A command registered the way a plug-in's would be: ``echo --value V [--sleep S] --json``."""
    parser = commands.add_parser("echo", help="print a value (tests)")
    parser.add_argument("--value", type=float, required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_echo)
    return parser


def _echo(args):
    import json
    sleep(args.sleep)
    print(json.dumps({"twice": 2 * args.value, "draw": float(np.random.random())}))
    return 0
