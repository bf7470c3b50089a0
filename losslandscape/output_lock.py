"""One writer per landscape file: an exclusive lock while a run writes it, and cleanup of what killed runs left."""

from __future__ import annotations

import contextlib
import glob
import os
import re


class OutputInUseError(OSError):
    """Another process is computing into the same file."""


@contextlib.contextmanager
def exclusive_output(path):
    """Holds an exclusive lock on `path` while inside; a second writer gets an `OutputInUseError` at once.

    The lock is an advisory `flock` on `path + ".lock"`, which the operating
    system releases when its process dies, so a killed run never leaves
    the file locked. While the lock is held, temporaries that killed runs
    left next to `path` are removed. Without `fcntl` (not POSIX), there is
    no lock.

    Examples:
        >>> with exclusive_output("/tmp/surface.h5"):
        ...     pass
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = os.path.realpath(path)  # one lock whatever link the file is reached through
    lock_path = f"{path}.lock"
    descriptor = _locked_descriptor(lock_path, fcntl)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, str(os.getpid()).encode())
        remove_stale_temporaries(path)
        yield
    finally:
        os.unlink(lock_path)
        os.close(descriptor)


def _locked_descriptor(lock_path, fcntl) -> int:
    while True:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            path = lock_path[: -len(".lock")]
            raise OutputInUseError(
                f"Another process (pid {holder}) is computing into {path!r}; wait for it to finish, "
                "or pass another path."
            ) from None
        # The last holder removes the lock file when it is done: lock the file that is there now.
        if os.path.exists(lock_path) and os.stat(lock_path).st_ino == os.fstat(descriptor).st_ino:
            return descriptor
        os.close(descriptor)


def remove_stale_temporaries(path) -> None:
    """Removes the `path.PID.tmp` files that runs killed while saving left behind."""
    pattern = re.compile(re.escape(os.path.basename(os.fspath(path))) + r"\.\d+\.tmp$")
    stale = [
        candidate for candidate in glob.glob(glob.escape(os.fspath(path)) + ".*.tmp")
        if pattern.fullmatch(os.path.basename(candidate))
    ]
    for candidate in stale:
        with contextlib.suppress(FileNotFoundError):
            os.remove(candidate)
