"""Where the tasks run: in this process, on a local process pool, or on a Dask cluster.

Every backend has ``run(function, tasks, seconds)``, a generator of :class:`~.task.Outcome`
in the order the tasks finish, and ``slots`` (how many tasks run at once). Each task goes
through :func:`~.task.execute` in the worker, so the outcome of a task is the same on every
backend; only its wall time differs.

* :class:`Serial` — this process, one task after another (``--workers 1``).
* :class:`LocalPool` — ``concurrent.futures.ProcessPoolExecutor`` (``--workers N``): processes,
  since IPOPT with MUMPS is not thread-safe, started by forkserver where there is one (no fork
  of a process with threads), one thread each. A worker that dies breaks the whole pool
  (``BrokenProcessPool`` for every task in flight), which does not say whose task killed it: the
  tasks that were in flight are run again *one at a time* on a fresh pool; one that kills its
  worker while alone is charged an attempt and, after ``retries`` further attempts, recorded as
  ``lost``; the innocent ones are never charged.
* :class:`DaskCluster` — a ``distributed.Client`` (``--scheduler ADDRESS``, or a client or
  cluster object, e.g. a ``LocalCluster``). Dask reschedules the task of a worker that dies;
  after the scheduler's ``distributed.scheduler.allowed-failures`` deaths it raises
  ``KilledWorker``, recorded as ``lost``. :func:`local_cluster` sets that number to ``retries``
  for a cluster it starts, and ``worker-saturation`` to 1 (a worker holds only the task it runs:
  Dask charges a death to every task *processing* on the worker, queued ones included); a
  scheduler started by hand reads both from its own configuration
  (``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES``, ``..._WORKER_SATURATION``; docs/sweeps.md).
  ADDRESS may also be the file of ``dask scheduler --scheduler-file FILE``.
"""
from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
import sys
import uuid
from collections import deque

from .task import Outcome, execute, setup_worker

DEFAULT_RETRIES = 2


def make(workers: int = 1, scheduler: str | None = None, retries: int = DEFAULT_RETRIES, preload=()):
    """The backend of ``--workers N`` / ``--scheduler ADDRESS`` (a context manager);
    ``preload``: modules the local workers import before their first task."""
    if scheduler is not None:
        return DaskCluster(scheduler, retries=retries)
    return Serial() if workers <= 1 else LocalPool(workers, retries=retries, preload=preload)


class Serial:
    slots = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, function, tasks, seconds=None):
        for task in tasks:
            yield execute(function, task, seconds, in_caller=True)


def _pool_context(preload=()):
    """forkserver (spawn where there is none); ``preload``: modules the fork server imports
    once, so that every worker it forks, a replacement for a dead one included, starts with
    them imported (effective for the first pool of a process: there is one fork server)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    if preload:
        context.set_forkserver_preload(list(preload))
    return context


class LocalPool:
    def __init__(self, workers: int, retries: int = DEFAULT_RETRIES, preload=()):
        self.slots, self.retries, self.preload = int(workers), int(retries), tuple(preload)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def _pool(self, workers):
        return futures.ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(self.preload),
                                           initializer=setup_worker)

    def run(self, function, tasks, seconds=None):
        pending, suspects = deque(tasks), deque()     # suspects: in flight when a worker died
        runs = {task.index: 0 for task in tasks}      # times started (the row's attempts)
        deaths = {task.index: 0 for task in tasks}    # times it killed its worker while alone
        while pending or suspects:
            alone = bool(suspects)
            queue, limit = (suspects, 1) if alone else (pending, self.slots)
            pool = self._pool(min(limit, len(queue)))
            running, broken = {}, False
            try:
                while (queue or running) and not broken:
                    # a suspect runs alone; the others at most one per worker, so that what is
                    # in flight is what is running
                    while queue and len(running) < limit:
                        task = queue.popleft()
                        try:
                            running[pool.submit(execute, function, task, seconds)] = task
                        except futures.BrokenExecutor:   # a worker died since the last wait
                            queue.appendleft(task)
                            broken = True
                            break
                        runs[task.index] += 1
                    done = () if broken else futures.wait(running, return_when=futures.FIRST_COMPLETED)[0]
                    for future in done:
                        task = running.pop(future)
                        error = future.exception()
                        if error is None:
                            outcome = future.result()
                            outcome.attempts = runs[task.index]
                            yield outcome
                        elif isinstance(error, futures.BrokenExecutor):
                            broken = True
                            if alone:    # it died alone: its own task killed it
                                deaths[task.index] += 1
                                if deaths[task.index] > self.retries:
                                    yield _lost(task, runs[task.index], deaths[task.index])
                                    continue
                            suspects.append(task)
                        else:            # the task or its result could not be pickled
                            yield Outcome(task.index, "failed", None, f"{type(error).__name__}: {error}",
                                          attempts=runs[task.index])
                    if broken:           # what was still in flight died with the pool
                        suspects.extend(running.values())
                        running.clear()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)


def _lost(task, attempts, deaths=None) -> Outcome:
    return Outcome(task.index, "lost", None, f"its worker died {deaths or attempts} times running it",
                   attempts=attempts)


class DaskCluster:
    """``target``: a scheduler address, a ``distributed.Client`` or a cluster object."""

    def __init__(self, target, retries: int = DEFAULT_RETRIES):
        self.target, self.retries = target, int(retries)
        self.client = self._own = None

    def __enter__(self):
        from distributed import Client
        if isinstance(self.target, Client):
            self.client = self.target
        else:
            try:   # an address, a cluster object, or the JSON file of `dask scheduler --scheduler-file`
                scheduler_file = isinstance(self.target, str) and os.path.isfile(self.target)
                self.client = self._own = (Client(scheduler_file=self.target, timeout="10s") if scheduler_file
                                           else Client(self.target, timeout="10s"))
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConnectionError(f"cannot reach the Dask scheduler at {self.target}: "
                                      f"{' '.join(str(exc).split())}") from None
        workers = self.client.scheduler_info().get("workers", {})
        threaded = [info.get("nthreads", 1) for info in workers.values() if info.get("nthreads", 1) > 1]
        if threaded:
            print(f"lossnav: warning: Dask workers with {max(threaded)} threads run one task at a time "
                  f"(IPOPT is not thread-safe); start them with --nthreads 1", file=sys.stderr)
        self.slots = max(len(workers), 1)
        self.allowed_failures = self.client.run_on_scheduler(_allowed_failures)
        return self

    def __exit__(self, *exc):
        if self._own is not None:
            self._own.close()
        return False

    def run(self, function, tasks, seconds=None):
        from distributed import as_completed
        from distributed.scheduler import KilledWorker
        if not tasks:
            return
        tag = uuid.uuid4().hex[:8]
        # one map call and results gathered with their futures: a round trip per batch, not per task
        futures = self.client.map(execute, [function] * len(tasks), tasks, [seconds] * len(tasks), pure=False,
                                  key=[f"lossnav-task-{task.index}-{task.key}-{tag}" for task in tasks])
        task_of = dict(zip(futures, tasks, strict=True))
        for future, result in as_completed(futures, with_results=True, raise_errors=False):
            task = task_of.pop(future)
            if future.status == "error" and isinstance(result, tuple):   # (type, exception, traceback)
                result = result[1]
            if isinstance(result, Outcome):
                outcome = result
            elif isinstance(result, KilledWorker):
                outcome = _lost(task, self.allowed_failures + 1)
            else:                          # the result did not come back (deserialisation, cancelled)
                text = " ".join(str(result).split())
                outcome = Outcome(task.index, "failed", None, f"{type(result).__name__}: {text}")
            future.release()
            yield outcome


def _allowed_failures(dask_scheduler=None) -> int:
    return int(dask_scheduler.allowed_failures)


def local_cluster(workers: int = 2, retries: int = DEFAULT_RETRIES, preload=(), **options):
    """A ``distributed.LocalCluster`` of ``workers`` processes with one thread each, on the
    loopback interface, the dashboard on a free port; a worker that dies is restarted by its
    nanny and its task rescheduled, ``retries`` times at most. The workers are forked from a
    fork server that has imported ``preload`` (and distributed) once, so a worker, a
    replacement included, starts in milliseconds instead of importing everything again."""
    import dask
    from distributed import LocalCluster
    # worker-saturation 1: a worker holds only the task it runs, so a worker that dies takes no
    # queued task's retry with it (Dask charges every task processing there)
    settings = {"distributed.scheduler.allowed-failures": retries,
                "distributed.scheduler.worker-saturation": 1.0}
    if "forkserver" in multiprocessing.get_all_start_methods():
        settings["distributed.worker.multiprocessing-method"] = "forkserver"
    with dask.config.set(settings):
        if preload and "forkserver" in multiprocessing.get_all_start_methods():
            from distributed.utils import get_mp_context
            get_mp_context().set_forkserver_preload(["distributed", *preload])   # after Dask's own list
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=":0", **options)
