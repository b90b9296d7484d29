"""Trial ids handed out atomically across processes, without a database connection.

``<store>.ids`` is a small JSON file ``{experiment: last_trial_id}`` updated under an exclusive
``flock``: about 0.1 ms a trial, held for one read and one write, never across a database open.
A process that waits longer than ``TUIXP_LOCK_TIMEOUT`` (the database's bound) gives up with
a ``StoreBusy`` naming the process that holds the lock. If the file is lost, ``Store`` rebuilds
it from the database and the journals before handing out the next id.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tuixp.errors import StoreBusy, StoreError, StoreReadOnly
from tuixp.store.paths import StorePaths

_thread_lock = threading.Lock()
logger = logging.getLogger("tuixp")


def ids_path(store_path: Path) -> Path:
    return StorePaths(store_path).ids


def lock_timeout() -> float:
    """Seconds to wait for the ids lock: the same bound as the database's (TUIXP_LOCK_TIMEOUT)."""
    try:
        return float(os.environ.get("TUIXP_LOCK_TIMEOUT", "30"))
    except ValueError:
        return 30.0


def lock_holder(path: Path) -> str:
    """Who holds the ``flock`` on ``path``, in words: "process 123 (python run.py), stopped".

    Read from ``/proc/locks``, which the kernel keeps exact (a pid written into the file by the
    holder would be stale the moment that process stopped between locking and writing); where
    there is no ``/proc`` (not Linux), "another process".
    """
    try:
        st = os.stat(path)
        key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "
        with open("/proc/locks") as f:
            lines = [line.split() for line in f if key in line and "->" not in line]
    except OSError:
        return "another process"
    pids = [int(parts[4]) for parts in lines if len(parts) > 4 and parts[1] == "FLOCK"]
    if not pids:
        return "another process"
    pid = pids[0]
    words = f"process {pid}"
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        if cmd:
            words += f" ({cmd[:80]})"
    with contextlib.suppress(OSError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            words += ", which is stopped (Ctrl-Z or SIGSTOP: resume it with `kill -CONT "
            words += f"{pid}` or end it)"
    return words


class TrialCounter:
    def __init__(self, store_path: Path, recover: Callable[[], dict[str, int]]) -> None:
        self.path = ids_path(store_path)
        self._recover = recover

    def _locked(self, update: Callable[[dict[str, int]], dict[str, int] | None]) -> dict[str, int]:
        try:
            return self._locked_io(update)
        except OSError as exc:
            where = self.path.parent
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise StoreReadOnly(
                    f"Cannot record a trial: the store's folder {where} is read-only "
                    f"({exc.strerror}). Recorded trials are intact and can still be read."
                ) from exc
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreError(
                    f"Cannot record a trial: no space left in {where}. Free some space; "
                    "recorded trials are intact."
                ) from exc
            raise StoreError(f"Cannot use the trial ids file {self.path}: {exc}") from exc

    def _acquire(self, fd: int) -> None:
        """Take the exclusive lock, waiting at most ``lock_timeout()`` s and saying so."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        timeout = lock_timeout()
        start = time.monotonic()
        said = False
        delay = 0.0002
        while True:
            time.sleep(delay)
            delay = min(delay * 2, 0.01)  # it is held for well under a millisecond
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            waited = time.monotonic() - start
            if waited >= timeout:
                raise StoreBusy(
                    f"Cannot get a trial id: {self.path} is locked by {lock_holder(self.path)}; "
                    f"gave up after {timeout:g} s (TUIXP_LOCK_TIMEOUT sets the wait)."
                )
            if not said and waited >= min(1.0, timeout / 2):
                said = True
                logger.warning(
                    "Waiting for the trial ids lock %s, held by %s (at most %g s)",
                    self.path,
                    lock_holder(self.path),
                    timeout,
                )

    def _locked_io(
        self, update: Callable[[dict[str, int]], dict[str, int] | None]
    ) -> dict[str, int]:
        """Read, update and write the counts under the lock, held for a read and a write only.

        A lost or damaged file is rebuilt from the database and the journals with the lock
        released (opening the database can wait for another process), then written under the
        lock unless another process rebuilt it meanwhile.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        recovered: dict[str, int] | None = None
        while True:
            with _thread_lock:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    self._acquire(fd)
                    raw = b""
                    while chunk := os.read(fd, 65536):
                        raw += chunk
                    try:
                        counts = json.loads(raw) if raw.strip() else None
                    except ValueError:
                        counts = None
                    if not isinstance(counts, dict) or counts.get("_version") != 1:
                        counts = None
                        if recovered is not None:
                            counts = {"_version": 1, **recovered}
                            self._write(fd, counts)
                    if counts is not None:
                        new = update(counts)
                        if new is not None:
                            self._write(fd, new)
                            counts = new
                        return counts
                finally:
                    os.close(fd)
            recovered = self._recover()

    @staticmethod
    def _write(fd: int, counts: dict[str, int]) -> None:
        # Overwrite in place, padded to the old length: never a moment when the file is empty
        # (a kill between truncate and write would make every process rebuild the counts).
        data = json.dumps(counts).encode()
        old = os.fstat(fd).st_size
        os.pwrite(fd, data.ljust(old), 0)
        os.fsync(fd)

    def next_ids(self, experiment: str, n: int = 1) -> list[int]:
        """Reserve ``n`` consecutive ids for ``experiment`` and return them."""
        got: list[int] = []

        def take(counts: dict[str, int]) -> dict[str, int]:
            last = int(counts.get(experiment, 0))
            got.extend(range(last + 1, last + n + 1))
            return {**counts, experiment: last + n}

        self._locked(take)
        return got

    def last(self, experiment: str) -> int:
        return int(self._locked(lambda counts: None).get(experiment, 0))
