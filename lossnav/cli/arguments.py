"""Argument types and helpers shared by the ``lossnav`` subcommands (one-line errors)."""
from __future__ import annotations

import argparse
import json
import math

PROG = "lossnav"


class UsageError(Exception):
    """A malformed command line found after parsing (exit code 2, like argparse's errors)."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def setting(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"{key.strip()}: value {value!r} is not valid JSON ({exc.msg}); "
            "use numbers or lists, e.g. --set H=[[2,1],[1,3]]") from None


def vector(text: str):
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def horizon(text: str) -> float:
    if text.strip().lower() in ("inf", "infinity"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'inf' or a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"horizon must be 'inf' or a finite number > 0, got {text!r}")
    return value


def _number(text, convert, accept, expected, expected_in_range=None):
    """``convert(text)`` if it parses and ``accept`` holds; else ArgumentTypeError saying
    what was expected (``expected_in_range`` for a parsed value out of range)."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected_in_range or expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda value: value >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda value: value >= 0, "an integer ≥ 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda value: math.isfinite(value) and value > 0, "a number > 0",
                   "a finite number > 0")


def finite_float(text: str) -> float:
    return _number(text, float, math.isfinite, "a number", "a finite number")


def one_line(exc) -> str:
    return " ".join(str(exc).split())


def strict_json(value):
    """Replace non-finite floats (e.g. an infinite horizon) by strings: stdout stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if hasattr(value, "item"):  # numpy scalars
        return strict_json(value.item())
    return value


def dumps(value) -> str:
    return json.dumps(strict_json(value), indent=2)
