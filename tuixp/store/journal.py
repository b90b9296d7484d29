"""Per-process journal files: how a trial's record reaches the store without holding the database.

Each writing process appends JSON lines to its own file in ``<store>.journal/`` and holds an
exclusive ``flock`` on it while it lives. Whoever opens the database next ingests complete lines
(see ``Store.ingest``). A file whose lock can be taken belongs to a process that is gone: its
running trials become ``interrupted`` and, once ingested, the file is deleted.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = socket.gethostname()


def journal_dir(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".journal")


def _default(obj: Any) -> Any:
    return repr(obj)


def encode(event: dict[str, Any]) -> bytes:
    """One journal line; NaN and infinities survive as JSON extensions DuckDB and Python read."""
    return (json.dumps(event, default=_default, separators=(",", ":")) + "\n").encode()


class JournalWriter:
    """The append-only journal of this process for one store.

    Writes go through one file descriptor under a thread lock; ``sync=True`` fsyncs, which the
    trial lifecycle uses at start and end so a crash keeps every trial that said it finished.
    """

    def __init__(self, store_path: Path) -> None:
        self.dir = journal_dir(store_path)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.path: Path | None = None
        self._pid = os.getpid()

    def _open(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Lock under a name readers ignore, then rename: a reader must never see an unlocked
        # new file and take its writer for dead.
        tmp = self.dir / (name + ".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = self.dir / (name + ".jsonl")
        os.rename(tmp, path)
        self._fd, self.path = fd, path
        return fd

    def write(self, events: list[dict[str, Any]], sync: bool = False) -> None:
        data = b"".join(encode(e) for e in events)
        with self._lock:
            if self._pid != os.getpid():  # forked child: never share the parent's file
                self._fd, self.path, self._pid = None, None, os.getpid()
            fd = self._fd if self._fd is not None else self._open()
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if sync:
                os.fsync(fd)

    def rotate_if(self, ingested_to: dict[str, int], trials_running: int) -> None:
        """Start a new file when the current one is fully ingested, so journals stay small.

        Never while a trial of this process runs: readers take a running trial whose journal
        is gone for one whose process died.
        """
        with self._lock:
            if self._fd is None or self.path is None or trials_running:
                return
            size = os.fstat(self._fd).st_size
            if ingested_to.get(self.path.name) == size:
                old = self.path
                os.close(self._fd)
                self._fd, self.path = None, None
                try:
                    old.unlink()
                except FileNotFoundError:
                    pass

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def writer_is_alive(path: Path) -> bool:
    """True while the process that writes ``path`` holds its lock (this process included)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_complete_lines(
    path: Path, offset: int
) -> tuple[list[dict[str, Any]], int, int]:
    """Events after ``offset`` up to the last complete line, the new offset, and bad-line count.

    A trailing line without its newline is a write in progress (or cut by a crash) and is left
    for later; a complete line that is not JSON is skipped and counted, never fatal.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset, 0
    events: list[dict[str, Any]] = []
    bad = 0
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(event, dict) and "t" in event:
            events.append(event)
        else:
            bad += 1
    return events, offset + end + 1, bad


def journal_files(store_path: Path) -> Iterator[Path]:
    d = journal_dir(store_path)
    if d.is_dir():
        yield from sorted(d.glob("*.jsonl"))
