"""The points of a sweep: a grid of option values, or a seeded random sample of it.

On the command line (``--grid KEY=SPEC``, repeatable) a SPEC is

* a list ``V1,V2,...`` (commas inside brackets do not split: ``H=[[2,1],[1,3]],[[1,0],[0,1]]``);
* an integer range ``A:B`` = A, A+1, ..., B−1 (as Python's ``range``; ``seed=0:5`` is 5 seeds)
  or ``A:B:STEP`` (numbers; STEP may be fractional: ``dt=0.1:0.5:0.1`` = 0.1, 0.2, 0.3, 0.4);
* with ``--samples N`` only, a distribution: ``uniform(A,B)``, ``loguniform(A,B)`` or
  ``randint(A,B)`` (B excluded).

In a file (``--grid FILE.toml`` or ``FILE.yaml``), the same under a ``grid`` table; a value is a
list, a SPEC string, or a number, and ``samples``/``seed`` may be given beside it::

    samples = 8            # optional: a random sample instead of the whole product
    seed = 0
    [grid]
    gamma = [0, 0.1, 1]
    seed = "0:5"
    lr = "loguniform(1e-3, 1e-1)"

Values stay the text the user wrote (passed to the command unchanged, so a row re-runs exactly)
beside their parsed form (:func:`parse_value`, for the table). :func:`points` expands the grid
in a fixed order (the first key varies slowest, like nested loops); with ``samples`` it draws
that many points from ``numpy.random.default_rng(seed)``: without replacement from the product
when every axis is a list, else independently per axis.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import sys
from dataclasses import dataclass

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:                      # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib


class GridError(ValueError):
    """A malformed ``--grid`` spec or grid file (the CLI exits 2 with this one line)."""


@dataclass(frozen=True)
class Distribution:
    """A random axis: ``kind`` uniform, loguniform or randint on [low, high)."""
    kind: str
    low: float
    high: float

    def draw(self, rng) -> str:
        if self.kind == "uniform":
            return repr(float(rng.uniform(self.low, self.high)))
        if self.kind == "loguniform":
            return repr(float(math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))
        return str(int(rng.integers(int(self.low), int(self.high))))


_DISTRIBUTION = re.compile(r"^\s*(uniform|loguniform|randint)\(\s*([^,()]+)\s*,\s*([^,()]+)\s*\)\s*$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*:\s*({_NUMBER})\s*(?::\s*({_NUMBER})\s*)?$")


def parse_value(text: str):
    """A value as the table stores it: JSON where it parses (numbers, lists, true/false), else the text."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


def split_values(text: str) -> list:
    """``V1,V2,...`` split at the commas outside brackets and quotes."""
    parts, depth, current, quote = [], 0, [], None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    if any(part == "" for part in parts):
        raise GridError(f"empty value in {text!r}")
    return parts


def parse_axis(key: str, spec) -> list | Distribution:
    """The values of one axis (a list of texts) or its :class:`Distribution`."""
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise GridError(f"{key}: empty list of values")
        return [value if isinstance(value, str) else json.dumps(value) for value in spec]
    if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
        raise GridError(f"{key}: expected a list, a range A:B or a SPEC string, got {spec!r}")
    if not isinstance(spec, str):
        return [json.dumps(spec)]
    found = _DISTRIBUTION.match(spec)
    if found:
        kind, low, high = found.group(1), _float(key, found.group(2)), _float(key, found.group(3))
        if not low < high or (kind == "loguniform" and low <= 0):
            positive = " and low > 0" if kind == "loguniform" else ""
            raise GridError(f"{key}: {kind} needs low < high{positive}, got {spec!r}")
        return Distribution(kind, low, high)
    found = _RANGE.match(spec)
    if found:
        return _range(key, spec, *found.groups())
    return split_values(spec)


def _float(key, text) -> float:
    try:
        value = float(text)
    except ValueError:
        raise GridError(f"{key}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise GridError(f"{key}: {text!r} is not a finite number")
    return value


def _range(key, spec, start, stop, step) -> list:
    integers = all(re.fullmatch(r"[-+]?\d+", part) for part in (start, stop, step or "1"))
    if integers:
        values = [str(v) for v in range(int(start), int(stop), int(step or 1))] if int(step or 1) else []
    else:
        if step is None:
            raise GridError(f"{key}: a range of non-integers needs a step, A:B:STEP (got {spec!r})")
        first, last, increment = float(start), float(stop), float(step)
        if increment == 0:
            values = []
        else:
            count = math.ceil((last - first) / increment - 1e-9)
            # start + i·step rounded to 12 digits: 0.1:0.5:0.1 gives 0.3, not 0.30000000000000004
            values = [repr(float(f"{first + i * increment:.12g}")) for i in range(max(count, 0))]
    if not values:
        raise GridError(f"{key}: the range {spec!r} is empty")
    return values


def parse_option(text: str) -> tuple:
    """``KEY=SPEC`` of one ``--grid`` → (key, axis)."""
    key, sep, spec = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][\w.-]*", key):
        raise GridError(f"--grid expects KEY=V1,V2,... (or A:B, or a .toml/.yaml file), got {text!r}")
    return key, parse_axis(key, spec)


def read_file(path: str) -> dict:
    """A grid file (TOML, or YAML if PyYAML is installed) → {"grid": {key: axis}, "samples", "seed"}."""
    extension = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise GridError(f"cannot read the grid file {path}: {exc.strerror}") from None
    try:
        if extension == ".toml":
            content = tomllib.loads(data.decode("utf-8"))
        elif extension in (".yaml", ".yml"):
            import yaml  # optional: only grid files in YAML need PyYAML
            content = yaml.safe_load(data)
        else:
            raise GridError(f"grid file {path}: expected .toml, .yaml or .yml")
    except ImportError:
        raise GridError("YAML grid files need PyYAML (pip install pyyaml), "
                        "or write the grid in TOML") from None
    except GridError:
        raise
    except Exception as exc:   # tomllib.TOMLDecodeError, yaml.YAMLError
        raise GridError(f"grid file {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(content, dict) or not isinstance(content.get("grid"), dict) or not content["grid"]:
        raise GridError(f"grid file {path}: expected a non-empty 'grid' table of KEY = values")
    unknown = set(content) - {"grid", "samples", "seed"}
    if unknown:
        raise GridError(f"grid file {path}: unknown entries {sorted(unknown)} (valid: grid, samples, seed)")
    for name in ("samples", "seed"):
        value, least = content.get(name), 1 if name == "samples" else 0
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise GridError(f"grid file {path}: {name} must be an integer ≥ {least}, got {value!r}")
    return {"grid": {str(key): parse_axis(str(key), spec) for key, spec in content["grid"].items()},
            "samples": content.get("samples"), "seed": content.get("seed")}


def points(grid: dict, samples: int | None = None, seed: int = 0) -> list:
    """The sweep's points, each a dict key → value text, in a fixed order (see module docstring)."""
    keys = list(grid)
    random_axes = [key for key in keys if isinstance(grid[key], Distribution)]
    if samples is None:
        if random_axes:
            raise GridError(f"{', '.join(random_axes)}: a distribution needs --samples N")
        return [dict(zip(keys, values, strict=True))
                for values in itertools.product(*(grid[key] for key in keys))]
    rng = np.random.default_rng(seed)
    if not random_axes:
        sizes = [len(grid[key]) for key in keys]
        total = math.prod(sizes)
        chosen = sorted(rng.choice(total, size=min(samples, total), replace=False).tolist())
        return [{key: grid[key][i] for key, i in zip(keys, np.unravel_index(index, sizes), strict=True)}
                for index in chosen]
    return [{key: _draw(grid[key], rng) for key in keys} for _ in range(samples)]


def _draw(axis, rng):
    """One random value of an axis: a draw of its distribution, or one of its listed values."""
    if isinstance(axis, Distribution):
        return axis.draw(rng)
    return axis[int(rng.integers(len(axis)))]
