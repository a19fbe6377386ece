"""Run a list of tasks on a backend into the sweep's table, resumably, with a progress bar.

:func:`run_sweep` keeps the table in task order (the grid's order, not the order in which
tasks finish), so the serial and the parallel tables are the same row for row; rewrites it
atomically at most every :data:`WRITE_EVERY` seconds while tasks finish and once at the end
(also when interrupted: what finished is kept); stores each task's whole JSON in
``DIR/tasks/KEY.json``; and with ``resume`` reuses the rows of an earlier table whose key (the
parameters and the code version) matches a task and whose status is ok or failed (a timeout
or a lost task runs again).
"""
from __future__ import annotations

import json
import os
import sys
import time

from ocp.results.files import atomic_write

from . import table as tables

WRITE_EVERY = 2.0


class SweepExistsError(ValueError):
    """The output folder already holds a table and ``--resume`` was not given."""


def run_sweep(tasks, function, backend, directory, resume=False, seconds=None, argv_of=None,
              parameters=(), progress=True, stream=None):
    """Run ``tasks`` (see :mod:`.task`) with ``function`` on ``backend``; returns the table
    (a DataFrame, ``attrs['parameters']`` the parameter columns) and the counts per status."""
    stream = stream or sys.stderr
    if tables.exists(directory) and not resume:
        raise SweepExistsError(f"{directory} already holds a sweep table; add --resume to continue it "
                               "or choose another --out")
    argv_of = argv_of or (lambda task: "")
    rows, reused = {}, 0
    if resume:
        earlier = {row.get("key"): row for row in tables.read(directory)}
        for task in tasks:
            row = earlier.get(task.key)
            if row is not None and row.get("status") in tables.FINISHED:
                rows[task.index] = row
        reused = len(rows)
        dropped = len(set(earlier) - {task.key for task in tasks})
        gone = (f"; {dropped} earlier rows are not tasks of this sweep (other parameters or code) and "
                f"leave the table (their JSON stays in {os.path.join(directory, 'tasks')})")
        print(f"resuming: {reused} of {len(tasks)} tasks finished already ({directory})"
              + (gone if dropped else ""), file=stream)
    todo = [task for task in tasks if task.index not in rows]
    by_index = {task.index: task for task in tasks}
    counts = {status: 0 for status in ("ok", "failed", "timeout", "lost")}
    for row in rows.values():
        counts[row["status"]] += 1
    os.makedirs(os.path.join(directory, "tasks"), exist_ok=True)
    bar = _bar(len(tasks), reused, progress, stream)
    last_write = time.monotonic()

    def write():
        table = tables.write(directory, [rows[i] for i in sorted(rows)])
        table.attrs["parameters"] = list(parameters)
        return table

    try:
        for outcome in backend.run(function, todo, seconds):
            task = by_index[outcome.index]
            rows[task.index] = tables.make_row(task, outcome, argv_of(task))
            counts[outcome.status] += 1
            if outcome.value is not None:
                _write_json(os.path.join(directory, "tasks", f"{task.key}.json"), outcome.value)
            if bar is not None:
                remaining = len(tasks) - len(rows)
                bar.set_postfix_str(f"ok={counts['ok']} failed={len(rows) - counts['ok']} "
                                    f"running={min(backend.slots, remaining)}", refresh=False)
                bar.update(1)
            if time.monotonic() - last_write >= WRITE_EVERY:
                write()
                last_write = time.monotonic()
    finally:
        if bar is not None:
            bar.close()
        table = write()
    return table, counts


def _bar(total, initial, progress, stream):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, file=stream, unit="task", dynamic_ncols=True,
                desc="sweep", postfix=f"ok={initial} failed=0 running=0")


def _write_json(path, value) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(value, handle, indent=1, default=str)
