"""The sweep's table: one row a task, written as ``results.csv`` and ``results.parquet``.

A row is the task's parameters (one column each, the values parsed: numbers stay numbers),
then ``status`` (ok | failed | timeout | lost), ``wall_time`` (seconds inside the worker),
``error`` (one line, empty when ok), ``attempts``, ``worker``, ``key`` (what ``--resume``
matches) and ``argv`` (the command line that re-runs the row alone), then the task's figures:
its JSON flattened (:func:`flatten`). Both files are written atomically (a temporary file in
the same folder, fsync, then ``os.replace``: :func:`ocp.results.files.atomic_write`): a
reader, or a sweep resumed after a crash, sees the previous complete table or the new one,
never half of one.
"""
from __future__ import annotations

import json
import math
import os

from ocp.results.files import atomic_write

META = ("status", "wall_time", "error", "attempts", "worker", "key", "argv")
FINISHED = ("ok", "failed")        # outcomes that --resume keeps; timeout and lost run again
CSV, PARQUET = "results.csv", "results.parquet"


def flatten(value, prefix: str = "") -> dict:
    """A task's JSON as flat columns: nested dicts join their keys with '.', a list of
    numbers or strings and any deeper list become one JSON text; a list of records (the
    cases of ``validate``) becomes counts and the maximum of every numeric figure."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}" if not prefix else f"{prefix}.{key}"))
        return out
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return _records(value, prefix)
    name = prefix or "value"
    if isinstance(value, (list, tuple)):
        return {name: json.dumps(value)}
    return {name: value}


def _records(records: list, prefix: str) -> dict:
    join = (lambda key: f"{prefix}.{key}") if prefix else (lambda key: key)
    out = {join("count"): len(records)}
    if all("passed" in record for record in records):
        out[join("passed")] = sum(bool(record["passed"]) for record in records)
        out[join("failed")] = len(records) - out[join("passed")]
    keys = dict.fromkeys(key for record in records for key in record)
    for key in keys:
        values = [record.get(key) for record in records]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(values):
            out[join(f"max_{key}")] = max(numbers, key=lambda v: -math.inf if math.isnan(v) else v)
    return out


def make_row(task, outcome, argv: str = "") -> dict:
    """The table row of a finished task."""
    row = dict(task.params)
    row.update(status=outcome.status, wall_time=outcome.wall_time, error=outcome.error,
               attempts=outcome.attempts, worker=outcome.worker, key=task.key, argv=argv)
    if outcome.value is not None:
        for name, value in flatten(outcome.value).items():
            while name in row:           # a figure named like a parameter or a meta column
                name = f"result.{name}"
            row[name] = value
    return row


def frame(rows: list):
    import pandas as pd
    table = pd.DataFrame(rows)
    for column in table.columns:         # mixed columns (numbers and texts) stored as text
        kinds = {type(v) for v in table[column] if not _missing(v)}
        if len(kinds) > 1 and not kinds <= {int, float, bool} or kinds & {list, dict}:
            table[column] = [None if v is None else v if isinstance(v, str) else json.dumps(v)
                             for v in table[column]]
    return table


def _missing(value) -> bool:
    """None or NaN: an empty cell, which has no type of its own."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def write(directory: str, rows: list):
    """``directory/results.csv`` and ``results.parquet``, atomically (:func:`ocp.results.files.atomic_write`);
    returns the DataFrame."""
    table = frame(rows)
    os.makedirs(directory, exist_ok=True)
    with atomic_write(os.path.join(directory, PARQUET), "wb") as handle:
        table.to_parquet(handle, index=False)
    with atomic_write(os.path.join(directory, CSV), "w") as handle:
        table.to_csv(handle, index=False)
    return table


def read(directory: str) -> list:
    """The rows of an existing table (Parquet if present, else CSV); [] if there is none."""
    import pandas as pd
    parquet, csv = os.path.join(directory, PARQUET), os.path.join(directory, CSV)
    if os.path.exists(parquet):
        table = pd.read_parquet(parquet)
    elif os.path.exists(csv):
        table = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    else:
        return []
    rows = table.to_dict("records")
    return [{key: _plain(value) for key, value in row.items()} for row in rows]


def _plain(value):
    """numpy scalars as Python ones, missing values (NaN) as None."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def exists(directory: str) -> bool:
    return any(os.path.exists(os.path.join(directory, name)) for name in (CSV, PARQUET))
