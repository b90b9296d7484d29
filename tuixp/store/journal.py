"""Per-process journal files: how a trial's record reaches the store without holding the database.

Each writing process appends JSON lines to its own file in ``<store>.journal/`` and holds an
exclusive ``flock`` on it while it lives. Whoever opens the database next ingests complete lines
(see ``Store.ingest``). A file whose lock can be taken belongs to a process that is gone: its
running trials become ``interrupted`` and, once ingested, the file is deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuixp.store.paths import StorePaths

HOST = socket.gethostname()
KEEP_POINTS = 2_000_000  # metric points a writer keeps unpacked for its ingest (~54 MB)


def journal_dir(store_path: Path) -> Path:
    return StorePaths(store_path).journal


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
        # Metric batches of this file not ingested yet, kept as the arrays they were packed
        # from: {offset of the line: (its length, the event with "_columns" for "cols")}. This
        # process's own ingest takes them from here instead of parsing and unpacking the line
        # (``read_entries(kept=...)``); at most KEEP_POINTS points are kept.
        self._kept: dict[int, tuple[int, dict[str, Any]]] = {}
        self._kept_points = 0

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

    def write(
        self,
        events: list[dict[str, Any]],
        sync: bool = False,
        columns: list[dict[str, Any] | None] | None = None,
    ) -> None:
        """Append ``events``; ``columns``, one for each event, are the arrays a metric batch
        was packed from (or None), kept for this process's ingest."""
        lines = [encode(e) for e in events]
        data = b"".join(lines)
        with self._lock:
            if self._pid != os.getpid():  # forked child: never share the parent's file
                self._fd, self.path, self._pid = None, None, os.getpid()
                self._kept, self._kept_points = {}, 0
            fd = self._fd if self._fd is not None else self._open()
            end = os.lseek(fd, 0, os.SEEK_END)
            view = memoryview(data)
            try:
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            except OSError:
                # A disk that filled up mid-line: take the half line back, or the next write
                # would glue onto it and both events would be lost to readers.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                raise
            if sync:
                os.fsync(fd)
            if columns is not None:
                self._keep(end, lines, events, columns)

    def _keep(
        self,
        offset: int,
        lines: list[bytes],
        events: list[dict[str, Any]],
        columns: list[dict[str, Any] | None],
    ) -> None:
        from tuixp.store import metric_batch

        for line, event, cols in zip(lines, events, columns, strict=True):
            n = event.get("n", 0)
            # A small batch is read without NumPy (a short run never imports it): not kept.
            big = n > metric_batch.SMALL
            if cols is not None and big and self._kept_points + n <= KEEP_POINTS:
                kept = {k: v for k, v in event.items() if k != "cols"}
                kept["_columns"] = cols
                self._kept[offset] = (len(line), kept)
                self._kept_points += n
            offset += len(line)

    def kept(self, name: str) -> dict[int, tuple[int, dict[str, Any]]]:
        """The kept batches of the journal file ``name`` when it is this writer's, else {}."""
        with self._lock:
            if self.path is None or self.path.name != name or self._pid != os.getpid():
                return {}
            return dict(self._kept)

    def ingested(self, offsets: dict[str, int]) -> None:
        """Forget the kept batches before the offset ingested up to in this writer's file."""
        with self._lock:
            if self.path is None or not self._kept:
                return
            upto = offsets.get(self.path.name, 0)
            for offset in [o for o in self._kept if o < upto]:
                self._kept_points -= self._kept.pop(offset)[1].get("n", 0)

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
                self._kept, self._kept_points = {}, 0
                with contextlib.suppress(OSError):  # a reader deleted it, or cannot be
                    old.unlink()

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
    except OSError:
        return True  # unreadable (another user's): never take its trials for dead
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass
class Chunk:
    """What a reader got from one journal after an offset."""

    events: list[dict[str, Any]]
    end: int  # the offset just past the last complete line
    rejected: list[tuple[bytes, str]] = field(default_factory=list)  # (line, why)
    tail: bytes = b""  # an incomplete last line: a write in progress, or cut by a crash


def read_entries(
    path: Path,
    offset: int,
    check: Callable[[dict[str, Any]], str | None] | None = None,
    kept: dict[int, tuple[int, dict[str, Any]]] | None = None,
) -> Chunk:
    """Events after ``offset`` up to the last complete line, and the lines that are not events.

    A line that is not JSON, not an event, or that ``check`` finds wrong is returned in
    ``rejected`` with the reason, never fatal: one bad line must not stop a store from opening.
    ``kept``: this process's own metric batches of this file (``JournalWriter.kept``), taken as
    they are where their line is, instead of being parsed again.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    cut = data.rfind(b"\n")
    chunk = Chunk([], offset if cut < 0 else offset + cut + 1, tail=data[cut + 1 :])
    for line in _lines(data[: cut + 1], offset, kept or {}, chunk, check):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            chunk.rejected.append((line, "not JSON"))
            continue
        if not isinstance(event, dict) or not isinstance(event.get("t"), str):
            chunk.rejected.append((line, "not a tuixp event"))
            continue
        why = check(event) if check is not None else None
        if why is not None:
            chunk.rejected.append((line, why))
            continue
        chunk.events.append(event)
    return chunk


def _lines(
    data: bytes,
    offset: int,
    kept: dict[int, tuple[int, dict[str, Any]]],
    chunk: Chunk,
    check: Callable[[dict[str, Any]], str | None] | None,
) -> Iterator[bytes]:
    """The lines of ``data`` (which starts at ``offset``) to parse; a kept batch's line is not
    one of them: its event goes straight into ``chunk`` (checked as a parsed one would be)."""
    if not kept:
        yield from data.splitlines()
        return
    start = 0
    while start < len(data):
        end = data.index(b"\n", start) + 1
        hit = kept.get(offset + start)
        if hit is not None and hit[0] == end - start:
            event = dict(hit[1])
            why = check(event) if check is not None else None
            if why is None:
                chunk.events.append(event)
            else:
                chunk.rejected.append((data[start:end], why))
        else:
            yield from data[start:end].splitlines()
        start = end


def read_complete_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int, int]:
    """Events after ``offset`` up to the last complete line, the new offset, and bad-line count.

    A trailing line without its newline is a write in progress (or cut by a crash) and is left
    for later; a complete line that is not JSON is skipped and counted, never fatal.
    """
    chunk = read_entries(path, offset)
    return chunk.events, chunk.end, len(chunk.rejected)


def set_aside(store_path: Path, journal_name: str, lines: list[tuple[bytes, str]]) -> Path:
    """Keep lines no reader could use in ``<journal dir>/rejected/``, each after its reason."""
    folder = journal_dir(store_path) / "rejected"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (journal_name.removesuffix(".jsonl") + ".txt")
    with open(target, "ab") as f:
        for line, why in lines:
            f.write(b"# " + why.encode("utf-8", "backslashreplace") + b"\n")
            f.write(line.rstrip(b"\n") + b"\n")
    return target


def journal_files(store_path: Path) -> Iterator[Path]:
    d = journal_dir(store_path)
    if d.is_dir():
        yield from sorted(d.glob("*.jsonl"))
