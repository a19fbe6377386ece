"""Exceptions raised by the engine. All derive from :class:`OCPError`."""
from __future__ import annotations


class OCPError(Exception):
    """Base class of every error the engine raises on purpose."""


class ProblemError(OCPError, ValueError):
    """The problem or its inputs are invalid (bad parameter, shape, loss, θ0, metric…)."""


class TerminalConstraintError(ProblemError):
    """A terminal constraint that cannot be imposed (wrong length, non-finite, infinite horizon)."""


class SolveError(OCPError):
    """IPOPT did not converge. The solve is never returned as if it were optimal.

    Attributes
    ----------
    status : str       IPOPT's return status (for example ``Maximum_Iterations_Exceeded``).
    iterations : int   iterations IPOPT performed.
    last_iterate : ocp.Trajectory or None
        the last iterate, post-processed like a solution, with ``stats['success'] = False``.
    """

    def __init__(self, message: str, status: str, iterations: int, last_iterate=None):
        super().__init__(f"{message} (IPOPT status {status}, {iterations} iterations)")
        self.status = status
        self.iterations = iterations
        self.last_iterate = last_iterate


class FileFormatError(OCPError, ValueError):
    """A file read back is missing, not of the expected kind, truncated or corrupted (its
    content does not match its checksum). The message names the file."""


class OutputPathError(OCPError, ValueError):
    """An output path that cannot be written (missing or unwritable folder, a folder where a
    file is expected, an unexpected extension); raised before any work is done."""
