"""Sweeps: many tasks (solves, validation cases, training runs) on a local pool or a Dask cluster.

The engine knows nothing of the commands it runs: a task is a picklable payload and a
module-level function of it (``lossnav sweep`` passes a command line and
:func:`lossnav.cli.sweep.run_command`; ``lossnav validate --workers`` a case and
:func:`lossnav.validation.cases.check`).

    grid      --grid KEY=SPEC and grid files → the points of a sweep
    task      Task, its seed and key (parameters + code version), execute() in the worker
    backends  Serial, LocalPool (ProcessPoolExecutor), DaskCluster (distributed), local_cluster
    table     rows, flattening of a task's JSON, atomic results.csv / results.parquet
    runner    run_sweep: backend → table, --resume, progress bar
    plot      the summary plot of a figure against a parameter

The user's guide, with the cluster recipes and measured speed-ups, is ``docs/sweeps.md``.
"""
from .backends import DaskCluster, LocalPool, Serial, local_cluster, make
from .grid import GridError, points
from .runner import SweepExistsError, run_sweep
from .task import Outcome, Task, TaskFailed, TaskTimeLimit, code_version, execute, make_task

__all__ = ["DaskCluster", "GridError", "LocalPool", "Outcome", "Serial", "SweepExistsError", "Task",
           "TaskFailed", "TaskTimeLimit", "code_version", "execute", "local_cluster", "make",
           "make_task", "points", "run_sweep"]
