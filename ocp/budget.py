"""Time budgets and interrupts: every solve can be stopped, and Ctrl-C is never swallowed.

IPOPT runs in C++; CasADi turns a SIGINT during a solve into an exception it catches itself
(status ``NonIpopt_Exception_Thrown``, a warning on stderr), so without care a Ctrl-C ends one
NLP as a failed solve and the caller goes on. :func:`interrupts_noted` notes every SIGINT
while a solve runs, the iteration monitor then stops IPOPT at its next iteration, and
:meth:`IterationMonitor.solve` raises KeyboardInterrupt after the solver returns.

A :class:`Deadline` is checked by IPOPT's iteration callback (``IterationMonitor``: a
``casadi.Callback`` returning 1 stops IPOPT with ``User_Requested_Stop``, its current iterate
returned) and between the stages of a solve; an expired deadline ends in a
:class:`ocp.SolveError` with status :data:`TIME_LIMIT` that carries the best iterate.
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time

import casadi

from .checks import number
from .errors import SolveError

TIME_LIMIT = "time_limit"
"""``SolveError.status`` of a solve stopped by its time budget."""


class Deadline:
    """A wall-clock budget: ``Deadline(None)`` never expires."""

    def __init__(self, seconds=None):
        if seconds is not None:
            seconds = number("time_limit", seconds, positive=True, allow_inf=True)
        seconds = math.inf if seconds is None else seconds
        self.seconds = seconds
        self.end = time.perf_counter() + seconds

    @property
    def remaining(self) -> float:
        return self.end - time.perf_counter()

    @property
    def expired(self) -> bool:
        return self.remaining <= 0

    def check(self, stage: str, iterations: int = 0, best=None) -> None:
        """SolveError (status TIME_LIMIT, ``best`` as its last iterate) if the budget is spent."""
        if self.expired:
            raise SolveError(f"time limit of {self.seconds:g} s reached during {stage}", TIME_LIMIT,
                             iterations, best)


NO_DEADLINE = Deadline(None)


class IterationMonitor(casadi.Callback):
    """IPOPT's iteration callback: stops the solve when ``deadline`` has expired."""

    def __init__(self, n_var, n_g, n_p):
        casadi.Callback.__init__(self)
        self._sizes = {"f": 1, "x": n_var, "lam_x": n_var, "g": n_g, "lam_g": n_g, "lam_p": n_p}
        self.deadline, self.stopped, self.interrupts = NO_DEADLINE, False, []
        self.construct("iteration_monitor", {})

    def get_n_in(self):
        return casadi.nlpsol_n_out()

    def get_n_out(self):
        return 1

    def get_name_in(self, i):
        return casadi.nlpsol_out(i)

    def get_name_out(self, i):
        return "stop"

    def get_sparsity_in(self, i):
        return casadi.Sparsity.dense(self._sizes[casadi.nlpsol_out(i)], 1)

    def eval(self, arg):
        if self.interrupts:            # Ctrl-C noted during this solve: stop IPOPT cleanly
            return [1]
        if self.deadline.expired:
            self.stopped = True
            return [1]
        return [0]

    def solve(self, solver, deadline, **args):
        """``solver(**args)`` under ``deadline``; KeyboardInterrupt if a SIGINT arrived during it.
        Returns (result, stopped by the deadline)."""
        self.deadline, self.stopped = deadline, False
        try:
            with interrupts_noted() as noted:
                self.interrupts = noted
                result = solver(**args)
        finally:
            self.deadline, self.interrupts = NO_DEADLINE, []
        if noted:
            raise KeyboardInterrupt
        return result, self.stopped


@contextlib.contextmanager
def interrupts_noted():
    """A list that is non-empty after a SIGINT arrived in the block (main thread only; other
    threads cannot receive signals in Python)."""
    noted = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield noted
        return

    def note(signum, frame):
        noted.append(signum)
        if previous is not signal.default_int_handler and callable(previous):
            previous(signum, frame)      # a handler of the caller's own keeps its meaning
        # else: no exception inside CasADi (it would print a warning and end the solve as a
        # failure); the iteration monitor stops IPOPT at its next iteration instead

    signal.signal(signal.SIGINT, note)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)
