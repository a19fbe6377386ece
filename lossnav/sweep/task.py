"""One task of a sweep and how a worker runs it.

A :class:`Task` is a picklable payload plus what makes it reproducible and resumable: its
``seed``, derived from its parameters alone (never from its place in the queue or the worker
it lands on), and its ``key``, a hash of the parameters and of the code version
(:func:`code_version`), by which ``--resume`` recognises a finished task.

:func:`execute` is what every backend calls, in the worker: it runs one task at a time per
process (IPOPT with MUMPS is not thread-safe, so a Dask worker started with several threads
still solves one problem at a time), on one BLAS/OpenMP/torch thread, with numpy's, Python's
and torch's global generators seeded from the task, under the time limit, and returns an
:class:`Outcome` instead of raising: a failed task is a row, never the end of the sweep.

The time limit raises :class:`TaskTimeLimit` in the task's thread (``PyThreadState_SetAsyncExc``;
a signal would only reach a process's main thread, and Dask runs tasks in worker threads).
It takes effect at the next Python instruction: a single IPOPT call in C finishes first (our
solves take seconds; a long run is a loop of them).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import pathlib
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

# packages whose source defines a task's result (the code version of the key)
CODE_PACKAGES = ("ocp", "problems", "learning_rules", "lossnav")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_ONE_TASK_AT_A_TIME = threading.Lock()


class TaskTimeLimit(BaseException):
    """Raised inside a task that exceeds its time limit (a BaseException, so the task's own
    ``except Exception`` handlers do not swallow it)."""


class TaskFailed(Exception):
    """Raised by a task function to fail its task while keeping what it produced (``value``)."""

    def __init__(self, message: str, value=None):
        super().__init__(message)
        self.value = value


@dataclass
class Task:
    index: int                 # place in the sweep's table
    payload: object            # the argument of the task function
    params: dict = field(default_factory=dict)   # the varying parameters (columns of the table)
    key: str = ""
    seed: int = 0


@dataclass
class Outcome:
    index: int
    status: str                # ok | failed | timeout | lost
    value: object = None
    error: str = ""
    wall_time: float = float("nan")
    attempts: int = 1
    worker: str = ""


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """SHA-256 (16 hex digits) of the source of the four packages: a change anywhere in the
    code that produced a result invalidates it for ``--resume``."""
    import importlib.util
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            root = pathlib.Path(location)
            for path in sorted(root.rglob("*.py")):
                digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def make_task(index: int, payload, identity, params=None) -> Task:
    """A task whose seed hashes ``identity`` (any JSON-able description of what it computes)
    and whose key hashes ``identity`` and :func:`code_version`."""
    text = json.dumps(identity, sort_keys=True, default=str)
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    key = hashlib.sha256(f"{text}\0{code_version()}".encode()).hexdigest()[:20]
    return Task(index=index, payload=payload, params=dict(params or {}), key=key, seed=seed)


_limited = False


def limit_threads() -> None:
    """One thread for OpenMP, BLAS and torch in this process, for good (a worker process;
    libraries loaded later read the environment); once per process."""
    global _limited
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)     # cheap, and a task may have changed it
    if _limited:
        return
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    _limited = True


def setup_worker() -> None:
    """A local pool's worker process: one thread (:func:`limit_threads`) and warnings as one
    ``lossnav: warning:`` line each, as the command line prints them in its own process (a
    worker does not inherit the CLI's format: without this a rule's skip warning came out as
    the raw warnings module text with a file path and source line)."""
    import warnings

    limit_threads()

    def one_line(message, category, filename, lineno, file=None, line=None):
        print(f"lossnav: warning: {' '.join(str(message).split())}", file=sys.stderr)
    warnings.showwarning = one_line


@contextlib.contextmanager
def one_thread():
    """One thread for OpenMP, BLAS and torch while the block runs, restored after (a task run
    in the caller's own process: ``Serial``)."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch else None
    limiter = None
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(1)
    os.environ.update({name: "1" for name in THREAD_VARIABLES})
    if torch:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if limiter is not None:
            limiter.restore_original_limits()
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


@contextlib.contextmanager
def generators_kept():
    """The caller's global generators (Python, numpy, torch) as they were, after the block."""
    torch = sys.modules.get("torch")
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state() if torch else None
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        if saved[2] is not None:
            torch.set_rng_state(saved[2])


@contextlib.contextmanager
def time_limit(seconds):
    """Raise :class:`TaskTimeLimit` in this thread after ``seconds`` (None: no limit)."""
    if not seconds:
        yield
        return
    target, guard, armed = threading.get_ident(), threading.Lock(), [True]

    def expire():
        with guard:
            if armed[0]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target),
                                                           ctypes.py_object(TaskTimeLimit))

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with guard:
            armed[0] = False
        timer.cancel()


def execute(function, task: Task, seconds=None, in_caller: bool = False) -> Outcome:
    """Run ``function(task.payload)`` as described in the module docstring; ``in_caller``:
    this is the caller's own process (the thread limits are restored afterwards)."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with _ONE_TASK_AT_A_TIME:
        start = time.perf_counter()
        try:
            try:
                if not in_caller:
                    limit_threads()
                with (one_thread() if in_caller else contextlib.nullcontext()), \
                        (generators_kept() if in_caller else contextlib.nullcontext()), time_limit(seconds):
                    seed_everything(task.seed)
                    value = function(task.payload)
                return Outcome(task.index, "ok", value, "", time.perf_counter() - start, worker=worker)
            except TaskFailed as exc:
                return Outcome(task.index, "failed", exc.value, _one_line(exc), time.perf_counter() - start,
                               worker=worker)
            except Exception as exc:
                return Outcome(task.index, "failed", None, f"{type(exc).__name__}: {_one_line(exc)}",
                               time.perf_counter() - start, worker=worker)
        except TaskTimeLimit:
            return Outcome(task.index, "timeout", None, f"exceeded the time limit of {seconds:g} s",
                           time.perf_counter() - start, worker=worker)


def _one_line(exc) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
