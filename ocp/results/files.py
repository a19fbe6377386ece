"""Files the project writes and reads back: atomic writes, checksums, output-path checks.

Every output (trajectories, reports, metrics, figures, checkpoints, sweep tables) is written
by :func:`atomic_write`: into a temporary file in the target's own folder (so the rename
below never crosses a file system), flushed and ``fsync``-ed, then renamed onto the target
with :func:`os.replace`, which POSIX makes atomic. A reader therefore sees the old file or
the complete new one, never a half-written one; a crash or SIGKILL mid-write leaves at most
a hidden ``.NAME.*.tmp`` beside it, and an exception (KeyboardInterrupt included) removes
it. Two concurrent writers each rename a complete file: the last rename wins.

    from ocp.files import atomic_write, atomic_savefig
    with atomic_write("table.csv", "w") as handle:
        handle.write(text)
    atomic_savefig(figure, "fig1.png", dpi=130)

Files read back carry a SHA-256 of their content and are refused with
:class:`ocp.FileFormatError` when it does not match: :func:`seal` / :func:`unseal` frame an
opaque payload (checkpoints), :func:`array_digest` hashes named arrays (a trajectory's .npz
stores it under the key ``checksum``). :func:`check_output_path` tells, before any work,
whether a path can be written (its folder exists and is writable, it is not a folder, its
extension is one of those expected).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile

import numpy as np

from ..errors import FileFormatError, OutputPathError

SEAL_MAGIC = b"LOSSNAV-SEALED 1 sha256="


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """Context manager: a handle on a temporary file beside ``path``, renamed onto ``path``
    when the block ends without an exception (after flush and fsync); removed otherwise.

    ``mode`` is "w" (text, ``encoding`` default UTF-8) or "wb". Raises OSError as ``open``
    does (a missing folder, no permission, ``path`` a folder), naming ``path`` itself."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    if "\x00" in path:
        raise OutputPathError(f"{path!r}: a path cannot contain a NUL byte")
    if os.path.isdir(path):
        raise IsADirectoryError(21, "is a directory", path)
    folder, name = os.path.split(os.path.abspath(path))
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as exc:     # report the target, not the temporary name
        raise type(exc)(exc.errno, exc.strerror, path) from None
    try:
        text = mode == "w"
        with os.fdopen(descriptor, mode, **({"encoding": encoding or "utf-8"} if text else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())   # mkstemp makes 0600; a normal file is 0666 & ~umask
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def atomic_savefig(figure, path, **options) -> None:
    """``figure.savefig(path, **options)`` through :func:`atomic_write`; the format is the
    extension of ``path`` (the temporary name has none that matplotlib would read)."""
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    options.setdefault("format", extension or None)
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, **options)


def write_bytes(path, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def write_text(path, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def array_digest(arrays: dict) -> str:
    """SHA-256 over named arrays, in key order: each key, dtype, shape and raw bytes (so a
    renamed, retyped or reshaped array changes it as much as a changed value)."""
    hasher = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        hasher.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
        hasher.update(value.tobytes())
    return hasher.hexdigest()


def seal(payload: bytes) -> bytes:
    """``payload`` framed with its SHA-256: one header line, then the payload unchanged."""
    return SEAL_MAGIC + digest(payload).encode() + b"\n" + payload


def unseal(data: bytes, name) -> bytes:
    """The payload of :func:`seal`'s output, or FileFormatError naming ``name`` (not sealed,
    truncated, or content that does not match its checksum)."""
    if not data.startswith(SEAL_MAGIC):
        raise FileFormatError(f"{name}: not a lossnav file with a checksum "
                              "(written by another program or an older lossnav?)")
    header, newline, payload = data[len(SEAL_MAGIC):].partition(b"\n")
    if not newline or len(header) != 64:
        raise FileFormatError(f"{name}: truncated header")
    if digest(payload).encode() != header:
        raise FileFormatError(
            f"{name}: content does not match its checksum (corrupted or truncated); refused")
    return payload


def read_sealed(path) -> bytes:
    """Read a file written as ``write_bytes(path, seal(payload))``; its payload, checked."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise FileFormatError(f"{path} does not exist") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({exc.strerror})") from None
    return unseal(data, path)


def check_output_path(path, extensions=None, what: str = "output") -> str:
    """``path`` as a string if a file can be written there; else OutputPathError saying why.

    Checked: not empty, not a folder, its folder exists and is writable, and (when
    ``extensions`` is given, e.g. (".npz",)) its extension is one of them, lower case."""
    text = _checked_text(path, what)
    if os.path.isdir(text) or text.endswith(("/", os.sep)):
        raise OutputPathError(f"{what} {text} is a folder; name a file in it")
    extension = os.path.splitext(text)[1].lower()
    if extensions is not None and extension not in extensions:
        raise OutputPathError(f"{what} {text}: expected a name ending in {' or '.join(extensions)}"
                              f"{', got no extension' if not extension else f', got {extension!r}'}")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise OutputPathError(f"{what} {text}: folder {os.path.dirname(text) or '.'} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {text}: folder {os.path.dirname(text) or '.'} is not writable")
    return text


def check_output_folder(path, what: str = "output folder") -> str:
    """``path`` if it is a folder or can be created as one (its parent exists and is writable)."""
    text = _checked_text(path, what)
    if os.path.exists(text):
        if not os.path.isdir(text):
            raise OutputPathError(f"{what} {text} exists and is not a folder")
        if not os.access(text, os.W_OK | os.X_OK):
            raise OutputPathError(f"{what} {text} is not writable")
        return text
    parent = os.path.dirname(os.path.abspath(text.rstrip("/") or text))
    while not os.path.exists(parent):    # makedirs creates the missing ones
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {text}: cannot create it in {parent} (not a writable folder)")
    return text


def _checked_text(path, what) -> str:
    text = os.fspath(path) if path is not None else ""
    if not text:
        raise OutputPathError(f"{what}: empty path")
    if "\x00" in text:
        raise OutputPathError(f"{what} {text!r}: a path cannot contain a NUL byte")
    return text


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask, read once (Linux: /proc, without changing it; else set and restore)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder) -> None:
    """Make the rename durable (POSIX: the folder entry is data of the folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


__all__ = ["atomic_write", "atomic_savefig", "write_bytes", "write_text", "digest", "array_digest",
           "seal", "unseal", "read_sealed", "check_output_path", "check_output_folder"]
