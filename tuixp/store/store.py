"""The store: one DuckDB file of record, fed by per-process journals, opened only briefly.

A process never holds the database between operations: ``Store.connect()`` opens it (waiting,
bounded, while another process has it: ``tuixp.store.connection``), brings the schema up to
date, ingests every complete journal line in one transaction (``tuixp.store.ingest``), hands
the connection to the caller and closes it. Writers only append to their journal; one
background thread per store ingests once a burst of trials is over, and once more at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from tuixp.errors import (
    NotAStore,
    SchemaTooNew,
    StoreBusy,
    StoreDamaged,
    StoreError,
)
from tuixp.store import events as journal_events
from tuixp.store.connection import (
    CANNOT_WRITE,
    LOCK_TIMEOUT,
    check_schema,
    ensure_schema,
    first_line,
    guard_for,
    open_database,
    resolve_store_path,
    write_failure_cause,
)
from tuixp.store.events import check_event
from tuixp.store.ids import TrialCounter
from tuixp.store.ingest import IngestReport, ingest_journals
from tuixp.store.journal import JournalWriter, journal_dir, journal_files, read_entries
from tuixp.store.paths import StorePaths

logger = logging.getLogger("tuixp")


def _live_ingest_points() -> int:
    try:
        return int(os.environ.get("TUIXP_LIVE_INGEST", "100000"))
    except ValueError:
        return 100_000


# Metric points journaled (and not yet ingested) that make this process ingest while its trials
# run; 0 never does (then the next reader ingests them). $TUIXP_LIVE_INGEST sets it.
LIVE_INGEST_POINTS = _live_ingest_points()

_stores_lock = threading.Lock()

_stores: dict[Path, "Store"] = {}


def get_store(store: str | os.PathLike[str] | None = None) -> "Store":
    """One ``Store`` per path per process, so every experiment shares its journal."""
    path = resolve_store_path(store)
    with _stores_lock:
        found = _stores.get(path)
        if found is None:
            found = Store(path)
            _stores[path] = found
        return found


class Store:
    """A tuixp store at ``path``: the database, its journals, its ids file and objects folder."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_store_path(path)
        self.objects_dir = StorePaths(self.path).objects
        self.journal = JournalWriter(self.path)
        self.counter = TrialCounter(self.path, self._recover_counts)
        self.trials_running = 0
        self._running_lock = threading.Lock()
        # One background thread ingests once a burst of trials is over (a Timer thread per
        # trial cost 0.27 ms a trial).
        self._ingest_due: float | None = None
        self._ingest_thread: threading.Thread | None = None
        self._timer_lock = threading.Condition()
        # Metric points journaled since the last ingest began (``metric_points_journaled``).
        self._unstored_points = 0
        self._live_ingest = False
        self._emitted_blobs: set[str] = set()
        self._atexit_registered = False
        self._said_read_only = False
        self._said_skipped = False
        self._target_ok = False
        # Held while this process has the database open. At exit we take it and set
        # _closing, so no background thread is inside DuckDB when the interpreter shuts down
        # (a daemon thread killed inside DuckDB aborts the process).
        self._guard = guard_for(self.path)
        self._closing = False
        self._opened_file: tuple[int, int] | None = None  # (device, inode) of the open file

    # -- before the first trial ------------------------------------------------------------
    def check_target(self) -> None:
        """Refuse a store path tuixp cannot use before anything is written beside it.

        A folder, a file that is not a DuckDB database, or a DuckDB database that is not a
        tuixp store would otherwise get ``NAME.ids``, ``NAME.state/`` and a journal beside it
        before the first open refused it. Checked once per process; a DuckDB file is opened
        (read-only, briefly) only when no ids file shows tuixp has used it already.
        """
        if self._target_ok:
            return
        if self.path.is_dir():
            raise NotAStore(
                f"{self.path} is a folder, not a tuixp store: give the path of the store file."
            )
        head = b""
        with contextlib.suppress(OSError):  # unreadable: opening says why, later
            with open(self.path, "rb") as f:
                head = f.read(16)
        if head and head[8:12] != b"DUCK":
            raise NotAStore(
                f"{self.path} is not a tuixp store (not a DuckDB database file): give the path "
                "of a store, or of a file that does not exist yet to start one."
            )
        if head and not self.counter.path.exists():
            try:
                with self.connect(read_only=True, timeout=min(LOCK_TIMEOUT, 5.0)):
                    pass
            except (StoreBusy, SchemaTooNew):
                pass  # held by a tuixp now / a newer tuixp's: trials wait in the journal
            except NotAStore:
                raise
            except StoreDamaged:
                raise
            except StoreError:
                pass  # an empty DuckDB file becomes a store on the first write
        self._target_ok = True

    # -- writing: journal only -------------------------------------------------------------
    def record(
        self,
        events: list[dict[str, Any]],
        sync: bool = False,
        columns: list[dict[str, Any] | None] | None = None,
    ) -> None:
        """Journal ``events``; ``columns``: a metric batch's arrays, kept for this process's
        own ingest (``JournalWriter.write``)."""
        self._register_exit()
        try:
            self.journal.write(events, sync=sync, columns=columns)
        except OSError as exc:
            raise StoreError(
                f"Cannot write the trial journal in {journal_dir(self.path)}: {exc.strerror}. "
                "Free some space or fix the folder's permissions; recorded trials are intact."
            ) from exc

    def _register_exit(self) -> None:
        """Make sure the exit hook runs before anything of this store can be left running.

        Registered before the first journal write is even tried and before the ingest thread
        starts: a process whose first trial was refused (a read-only or full journal folder)
        still has that thread, and a thread inside DuckDB when the interpreter ends aborts the
        process ("terminate called ..."), exit 134 instead of 2.
        """
        with self._timer_lock:
            if self._atexit_registered:
                return
            self._atexit_registered = True
        atexit.register(self._at_exit)

    def blob_events(self, texts: dict[str, str]) -> list[dict[str, Any]]:
        """Events for the texts this process has not journaled yet (stored once by hash)."""
        events = []
        for h, text in texts.items():
            if h not in self._emitted_blobs:
                self._emitted_blobs.add(h)
                events.append(journal_events.blob(h, text))
        return events

    def trial_began(self) -> None:
        with self._running_lock:
            self.trials_running += 1

    def trial_ended(self) -> None:
        with self._running_lock:
            self.trials_running -= 1
        self.schedule_ingest()

    def metric_points_journaled(self, points: int) -> None:
        """A trial's buffer journaled ``points`` metric points. Once ``LIVE_INGEST_POINTS``
        wait, the background thread ingests them while the trials still run: a training run's
        millions of points reach the database as they come (on another core: DuckDB works
        without the GIL), not all at the first read after it."""
        if LIVE_INGEST_POINTS <= 0:
            return
        with self._running_lock:
            self._unstored_points += points
            # Ingesting batches imports NumPy: done from this thread while a step runs, that
            # import would escape the step's seeding (its generator made unseeded under it).
            # Without NumPy imported already, the points wait for the run's end (``catch_up``).
            due = self._unstored_points >= LIVE_INGEST_POINTS and "numpy" in sys.modules
        if due:
            with self._timer_lock:
                self._live_ingest = True
            self.schedule_ingest(delay=0.0)

    def catch_up(self) -> None:
        """At the end of a run: ingest now if the run left many metric points unstored (at
        least ``LIVE_INGEST_POINTS / 2``), so the first read after it is as fast as the next;
        never waits for another process that has the store (that one ingests them)."""
        if LIVE_INGEST_POINTS <= 0 or self._unstored_points < LIVE_INGEST_POINTS // 2:
            return
        with self._running_lock:
            self._unstored_points = 0
        with contextlib.suppress(StoreError):
            with self.connect(timeout=0.0):
                pass

    def schedule_ingest(self, delay: float = 0.5) -> None:
        """Ingest once a burst of trials is over; never once per trial."""
        self._register_exit()
        with self._timer_lock:
            self._ingest_due = time.monotonic() + delay
            thread = self._ingest_thread
            if thread is None or not thread.is_alive():  # first time, or a forked child
                thread = threading.Thread(
                    target=self._ingest_loop, name="tuixp-ingest", daemon=True
                )
                self._ingest_thread = thread
                thread.start()

    def _ingest_loop(self) -> None:
        while True:
            with self._timer_lock:
                due = self._ingest_due
                if due is None:
                    self._timer_lock.wait()
                    continue
                wait = due - time.monotonic()
                if wait > 0:
                    self._timer_lock.wait(wait)
                    continue
                self._ingest_due = None
            if self._closing:
                return
            self._background_ingest()

    def _background_ingest(self) -> None:
        with self._timer_lock:
            live, self._live_ingest = self._live_ingest, False
        if self.trials_running and not live:
            return  # the end of the running trials schedules another
        with self._running_lock:
            self._unstored_points = 0
        try:
            with self.connect(timeout=0.0, live=live):
                pass
        except StoreError:
            pass  # whoever holds the store ingests, or we do at exit

    def _at_exit(self) -> None:
        with self._timer_lock:
            self._ingest_due = None
        with self._guard:
            self._closing = True
            try:
                with self.connect(timeout=min(LOCK_TIMEOUT, 5.0), _final=True):
                    pass
            except Exception:  # noqa: BLE001 - the journal keeps everything; next open ingests
                pass
            self.journal.close()

    # -- the database ------------------------------------------------------------------------
    def has_records(self) -> bool:
        """Whether anything was ever recorded here: the database, its ids file or a journal."""
        return (
            self.path.exists()
            or self.counter.path.exists()
            or any(True for _ in journal_files(self.path))
        )

    @contextlib.contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for reads that creates nothing: the store's (ingesting as ``connect``
        does), or, while nothing was ever recorded at this path, an empty store in memory, so a
        history asked of a mistyped path is empty and leaves no file behind."""
        if self.has_records():
            with self.connect() as con:
                yield con
            return
        con = duckdb.connect(":memory:")
        try:
            ensure_schema(con, self.path)
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def connect(
        self,
        read_only: bool = False,
        timeout: float | None = None,
        ingest: bool = True,
        _final: bool = False,
        live: bool = False,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the database (waiting at most ``timeout`` s for another process), yield, close.
        ``live``: an ingest while this process's trials run, on one DuckDB thread (the trials
        have the other cores)."""
        with self._guard:
            if self._closing and not _final:
                raise StoreError("The store is closing: this process is exiting.")
            with self._connect(read_only, timeout, ingest, live) as con:
                yield con

    @contextlib.contextmanager
    def _connect(
        self, read_only: bool, timeout: float | None, ingest: bool, live: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        wait = LOCK_TIMEOUT if timeout is None else timeout
        con = self._open(read_only=read_only, timeout=wait)
        try:
            if live:
                con.execute("SET threads = 1")
            # _open may have fallen back to read-only (a file we cannot write): ask DuckDB.
            mode = con.execute("SELECT current_setting('access_mode')").fetchone()
            writable = not read_only and (mode is None or mode[0] != "read_only")
            try:
                if writable:
                    ensure_schema(con, self.path)
                    if ingest:
                        self.ingest(con)
                else:
                    check_schema(con, self.path)
            except duckdb.Error as exc:
                if not (writable and ingest and CANNOT_WRITE.search(str(exc))):
                    raise StoreError(
                        f"Cannot update the store {self.path}: {first_line(exc)}. Trials "
                        f"recorded since are safe in {journal_dir(self.path)} and are added the "
                        "next time the store can be written (free some disk space if it is full)."
                    ) from exc
                # A full disk (or a file that cannot be written after all): what the store
                # held at its last ingest is still there to read; say why the rest is not.
                con.close()
                con = self._open(read_only=True, timeout=wait)
                check_schema(con, self.path)
                self._say_ingest_skipped(exc)
            if not read_only and not writable:
                self._say_read_only()
            yield con
        finally:
            con.close()

    def _say_ingest_skipped(self, exc: BaseException) -> None:
        if self._said_skipped:
            return
        self._said_skipped = True
        waiting = sum(1 for _ in journal_files(self.path))
        logger.warning(
            "Showing the store %s as of its last update: newer trials could not be added (%s). "
            "They wait in %d journal file(s) in %s and are added once the store can be written "
            "(free some disk space if it is full).",
            self.path,
            write_failure_cause(exc),
            waiting,
            journal_dir(self.path),
        )

    def _say_read_only(self) -> None:
        waiting = sum(1 for _ in journal_files(self.path))
        if waiting and not self._said_read_only:
            self._said_read_only = True
            logger.warning(
                "The store %s cannot be written: showing what it held at its last update. Trials "
                "recorded since wait in %d journal file(s) in %s until a process can write it.",
                self.path,
                waiting,
                journal_dir(self.path),
            )

    def _open(self, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
        con, self._opened_file = open_database(self.path, read_only, timeout)
        return con

    def ingest(self, con: duckdb.DuckDBPyConnection) -> IngestReport:
        """Move every complete journal line into the database in one transaction, idempotently."""
        own = self.journal.path.name if self.journal.path is not None else None
        report = ingest_journals(con, self.path, own, self._opened_file, self.journal.kept)
        self.journal.ingested(report.offsets)
        self.journal.rotate_if(report.offsets, self.trials_running)
        return report

    # -- ids -------------------------------------------------------------------------------
    def _recover_counts(self) -> dict[str, int]:
        """Rebuild the ids file from the database and the journals (it was lost or is new)."""
        counts: dict[str, int] = {}
        if self.path.exists():
            with self.connect(ingest=False) as con:
                for exp, last in con.execute(
                    "SELECT experiment, max(trial_id) FROM trial_record GROUP BY experiment"
                ).fetchall():
                    counts[exp] = int(last)
        for path in journal_files(self.path):
            try:
                events = read_entries(path, 0, check_event).events
            except OSError:
                continue
            for ev in events:
                if ev["t"] == "trial_started":
                    exp = ev["experiment"]
                    counts[exp] = max(counts.get(exp, 0), ev["trial_id"])
        return counts
