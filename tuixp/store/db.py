"""The store: one DuckDB file of record, fed by per-process journals, opened only briefly.

A process never holds the database between operations: ``Store.connect()`` opens it (waiting,
bounded, while another process has it), brings the schema up to date, ingests every complete
journal line in one transaction, hands the connection to the caller and closes it.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import re
import threading
import time
import uuid
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
    StoreReadOnly,
)
from tuixp.store import events as journal_events
from tuixp.store import schema
from tuixp.store.ids import TrialCounter
from tuixp.store.journal import (
    JournalWriter,
    journal_dir,
    journal_files,
    read_entries,
    set_aside,
    writer_is_alive,
)
from tuixp.store.paths import StorePaths

logger = logging.getLogger("tuixp")

DEFAULT_STORE = "tuixp.duckdb"
LOCK_TIMEOUT = float(os.environ.get("TUIXP_LOCK_TIMEOUT", "30"))
# A 0-byte database file younger than this may be a creation in progress (by an older tuixp or
# another DuckDB client): it is waited for, never replaced.
EMPTY_FILE_GRACE = 2.0
# DuckDB's words for a file that is a DuckDB database but cannot be read back whole.
_DAMAGED = re.compile(
    r"could not read enough bytes|checksum|corrupt|truncat|invalid block|malformed", re.I
)


def resolve_store_path(store: str | os.PathLike[str] | None = None) -> Path:
    """``store`` argument, else ``$TUIXP_STORE``, else ``tuixp.duckdb`` in the current directory."""
    raw = store if store is not None else os.environ.get("TUIXP_STORE") or DEFAULT_STORE
    return Path(raw).expanduser().resolve()


def _is_lock_error(exc: BaseException) -> bool:
    return "lock" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# DuckDB's words for a write the filesystem refused: the store can still be read.
_CANNOT_WRITE = re.compile(
    r"no space left|disk full|could not write|read-only|permission denied|quota", re.I
)


def _cause(exc: BaseException) -> str:
    """The most telling part of a DuckDB write error: "No space left on device" if it says so."""
    text = str(exc)
    for words in ("No space left on device", "Disk quota exceeded", "Read-only file system"):
        if words.lower() in text.lower():
            return words
    return _first_line(exc)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failure, keeping the failure's own error: when DuckDB has already
    aborted the transaction (a COMMIT that hit a full disk), ROLLBACK raises "no transaction is
    active", which would hide "No space left on device"."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


# (column, arrow type, SQL expression over the staged column) for each ingested table.
_TS = "float64"
_TRIAL_COLUMNS = [
    ("uuid", "string", None),
    ("experiment", "string", None),
    ("trial_id", "int32", None),
    ("status", "string", None),
    ("started_at", _TS, "to_timestamp(started_at)"),
    ("finished_at", _TS, "to_timestamp(finished_at)"),
    ("seed", "int64", None),
    ("params", "string", None),
    ("result", "string", None),
    ("result_type", "string", None),
    ("result_value", "float64", None),
    ("error_type", "string", None),
    ("error_message", "string", None),
    ("traceback_hash", "string", None),
    ("host", "string", None),
    ("pid", "int32", None),
    ("journal", "string", None),
    ("script", "string", None),
    ("scheduler", "string", None),
    ("code_hash", "string", None),
    ("environment_hash", "string", None),
    ("packages_hash", "string", None),
    ("git_hash", "string", None),
    ("git_commit", "string", None),
    ("git_branch", "string", None),
    ("git_dirty", "bool", None),
    ("changes", "string", None),
    ("notes", "string", None),
    ("data_inputs", "string", None),
]
_FINISH_FIELDS = [
    "status",
    "finished_at",
    "result",
    "result_type",
    "result_value",
    "error_type",
    "error_message",
    "traceback_hash",
    "notes",
]
_COLUMNS: dict[str, list[tuple[str, str, str | None]]] = {
    "trial_record": _TRIAL_COLUMNS,
    "blob": [("hash", "string", None), ("text", "string", None)],
    "experiment_record": [
        ("name", "string", None),
        ("created_at", _TS, "to_timestamp(created_at)"),
        ("script", "string", None),
        ("goal", "string", None),
    ],
    "param_record": [
        ("trial_uuid", "string", None),
        ("experiment", "string", None),
        ("trial_id", "int32", None),
        ("name", "string", None),
        ("value", "string", None),
    ],
    "metric_record": [
        ("trial_uuid", "string", None),
        ("experiment", "string", None),
        ("trial_id", "int32", None),
        ("name", "string", None),
        ("epoch", "int64", None),
        ("value", "float64", None),
        ("recorded_at", _TS, "to_timestamp(recorded_at)"),
        ("seq", "int64", None),
        ("value_type", "string", None),  # schema 4: 'int', 'float', 'bool'; None from older
        ("value_int", "int64", None),  # an int's exact value (``value`` is exact to 2**53)
    ],
    "step_record": [
        ("trial_uuid", "string", None),
        ("experiment", "string", None),
        ("trial_id", "int32", None),
        ("key", "string", None),
        ("step", "string", None),
        ("started_at", _TS, "to_timestamp(started_at)"),
        ("finished_at", _TS, "to_timestamp(finished_at)"),
        ("status", "string", None),
        ("worker", "string", None),
        ("input_hash", "string", None),
        ("output_hash", "string", None),
        ("error", "string", None),
        ("reused_from", "int32", None),
    ],
    "code_set": [
        ("hash", "string", None),
        ("ord", "int32", None),
        ("step", "string", None),
        ("source_hash", "string", None),
    ],
    "package_set": [
        ("hash", "string", None),
        ("name", "string", None),
        ("version", "string", None),
    ],
    "persisted_record": [
        ("trial_uuid", "string", None),
        ("experiment", "string", None),
        ("trial_id", "int32", None),
        ("step", "string", None),
        ("object_hash", "string", None),
        ("format", "string", None),
        ("size", "int64", None),
    ],
}


def _arrow_table(columns: dict[str, tuple[list[Any], str]]) -> Any:
    """An Arrow table of ``{name: (values, type name)}``. pyarrow is imported here, on the first
    write: a command that only reads (``tuixp ls``) starts about 70 ms sooner without it."""
    import pyarrow as pa

    return pa.table(
        {
            name: pa.array(values, type=getattr(pa, "bool_" if typ == "bool" else typ)())
            for name, (values, typ) in columns.items()
        }
    )


def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]], conflict: str = "IGNORE"
) -> None:
    """Insert dict rows through one Arrow batch: thousands of rows cost one statement.

    A row whose key is already stored is skipped (``IGNORE``) or replaces it (``REPLACE``). The
    per-trial tables have no key constraint (``schema.KEYS``): they replace by deleting the rows
    with the same key first, among the batch's trials only (zone maps on ``trial_id`` skip the
    rest of a big table).
    """
    if not rows:
        return
    cols = _COLUMNS[table]
    arrow = _arrow_table({name: ([r.get(name) for r in rows], typ) for name, typ, _ in cols})
    staged = f"_staged_{table}"
    con.register(staged, arrow)
    try:
        exprs = ", ".join(expr or f'"{name}"' for name, _, expr in cols)
        names = ", ".join(f'"{name}"' for name, _, _ in cols)
        keys = schema.KEYS.get(table)
        if keys is None:
            con.execute(f"INSERT OR {conflict} INTO {table} ({names}) SELECT {exprs} FROM {staged}")
            return
        match = " AND ".join(f'k."{k}" = s."{k}"' for k in keys)
        ids = [i for i in (r.get("trial_id") for r in rows) if isinstance(i, int)]
        near = ""
        if len(ids) == len(rows):  # every row says its trial: look only at those
            near = f" AND k.trial_id BETWEEN {min(ids)} AND {max(ids)}"
        if conflict == "REPLACE":
            con.execute(f"DELETE FROM {table} k USING {staged} s WHERE {match}{near}")
            con.execute(f"INSERT INTO {table} ({names}) SELECT {exprs} FROM {staged}")
        else:
            con.execute(
                f"INSERT INTO {table} ({names}) SELECT {exprs} FROM {staged} s WHERE NOT EXISTS "
                f"(SELECT 1 FROM {table} k WHERE {match}{near})"
            )
    finally:
        con.unregister(staged)


# -- checking journal events -------------------------------------------------------------------
# A journal line is input like any other: written by this tuixp, an older or newer one, a process
# that died mid-write, or a person. One line DuckDB cannot take must not stop a store from
# opening, so every event is checked (and its text made storable) before the ingest transaction.

_EVENT_TABLE = {
    "blob": "blob",
    "experiment": "experiment_record",
    "metric": "metric_record",
    "step": "step_record",
    "persisted": "persisted_record",
}
_REQUIRED = {
    "blob": ("hash",),
    "experiment": ("name",),
    "metric": ("trial_uuid", "name", "epoch"),
    "step": ("trial_uuid", "key"),
    "persisted": ("trial_uuid", "step"),
    "trial_started": ("uuid", "experiment", "trial_id"),
    "trial_finished": ("uuid", "status"),
    "package_set": ("hash",),
}
_STATUSES = ("succeeded", "failed", "interrupted")
_JSON_TEXT = ("result", "notes")  # fields a writer sends as JSON text, stored as such
_JSON_OBJECTS = ("params", "changes", "data")  # trial_started fields stored after json.dumps
# Years 1 to 9999: what DuckDB, Python and pandas all read back.
_TS_RANGE = (-6.2e10, 2.5e11)


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(text: str) -> str:
    """``text`` as valid UTF-8: a lone surrogate (a bad escape, a mis-decoded name) becomes U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def storable_json(value: Any) -> Any:
    """A decoded JSON value DuckDB's JSON type reads back: text fixed, NaN and inf as strings."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return [storable_json(v) for v in value]
    if isinstance(value, dict):
        return {storable_text(str(k)): storable_json(v) for k, v in value.items()}
    return value


def _json_text(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        return json.dumps(storable_text(text))  # keep what was sent, as a JSON string
    clean = storable_json(value)
    return text if clean == value else json.dumps(clean)


def _field_problem(ev: dict[str, Any], name: str, typ: str, expr: str | None) -> str | None:
    """Check (and normalise in place) one field against its column; the reason if it is wrong."""
    v = ev.get(name)
    if v is None:
        return None
    if typ == "string":
        if not isinstance(v, str):
            return f"{name} is not text"
        ev[name] = storable_text(v)
    elif typ == "bool":
        if not isinstance(v, bool):
            return f"{name} is not true or false"
    elif typ in ("int32", "int64"):
        if isinstance(v, bool) or not isinstance(v, int):
            return f"{name} is not an integer"
        limit = 1 << (31 if typ == "int32" else 63)
        if not -limit <= v < limit:
            return f"{name} is out of range"
    else:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{name} is not a number"
        try:
            v = float(v)
        except OverflowError:
            return f"{name} is too large"
        if expr is not None and not _TS_RANGE[0] < v < _TS_RANGE[1]:
            return f"{name} is not a time"
        ev[name] = v
    return None


def _row_problem(ev: dict[str, Any], table: str, skip: tuple[str, ...] = ()) -> str | None:
    for name, typ, expr in _COLUMNS[table]:
        if name not in skip:
            why = _field_problem(ev, name, typ, expr)
            if why:
                return why
    return None


def check_event(ev: dict[str, Any]) -> str | None:
    """Why ``ev`` cannot be ingested, or None once it is made storable (it is changed in place)."""
    kind = ev["t"]
    for name in _REQUIRED.get(kind, ()):
        if ev.get(name) is None:
            return f"{kind} event without {name}"
    try:
        if kind == "metric" and ev.get("value_type") not in (None, *schema.METRIC_VALUE_TYPES):
            return "unknown metric value type"
        if kind in _EVENT_TABLE:
            return _row_problem(ev, _EVENT_TABLE[kind])
        if kind == "trial_started":
            why = _row_problem(ev, "trial_record", skip=("params", "changes", "data_inputs"))
            if why:
                return why
            if not isinstance(ev.get("params") or {}, dict):
                return "params is not a mapping"
            for name in _JSON_OBJECTS:
                if ev.get(name) is not None:
                    ev[name] = storable_json(ev[name])
            return None
        if kind == "trial_finished":
            if ev["status"] not in _STATUSES:
                return "unknown trial status"
            why = _row_problem(ev, "trial_record")
            if why:
                return why
            for name in _JSON_TEXT:
                if ev.get(name) is not None:
                    ev[name] = _json_text(ev[name])
            return None
        if kind == "code_set":
            rows = ev.get("rows")
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                return "code_set rows are not a list of rows"
            for r in rows:
                if r.get("hash") is None or r.get("ord") is None:
                    return "code_set row without hash or ord"
                why = _row_problem(r, "code_set")
                if why:
                    return why
            return None
        if kind == "package_set":
            packages = ev.get("packages")
            if (
                not isinstance(ev["hash"], str)
                or not isinstance(packages, dict)
                or not all(isinstance(v, (str, type(None))) for v in packages.values())
            ):
                return "package_set is not a mapping of names to versions"
            ev["packages"] = {
                storable_text(str(k)): v and storable_text(v) for k, v in packages.items()
            }
            return None
    except RecursionError:
        return "nested too deeply"
    return f"unknown event type {kind!r} (written by a newer tuixp?)"


def _last_per_key(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per primary key, the last written: what a metric saved twice ends up as."""
    return list({tuple(r.get(k) for k in keys): r for r in rows}.values())


class IngestReport:
    def __init__(self) -> None:
        self.events = 0
        self.bad_lines = 0
        self.trials = 0
        self.interrupted = 0
        self.offsets: dict[str, int] = {}


_stores_lock = threading.Lock()
# Never fetch or load an extension behind the user's back: opening a SQLite file would otherwise
# download sqlite_scanner from the network.
_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "default_block_size": "16384",
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
_guards: dict[Path, threading.RLock] = {}
_guards_lock = threading.Lock()


def _guard_for(path: Path) -> threading.RLock:
    """One lock per store file per process: two Store objects of one file take turns."""
    with _guards_lock:
        return _guards.setdefault(path, threading.RLock())


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
        self._emitted_blobs: set[str] = set()
        self._atexit_registered = False
        self._said_read_only = False
        self._said_skipped = False
        self._target_ok = False
        # Held while this process has the database open. At exit we take it and set
        # _closing, so no background thread is inside DuckDB when the interpreter shuts down
        # (a daemon thread killed inside DuckDB aborts the process).
        self._guard = _guard_for(self.path)
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
    def record(self, events: list[dict[str, Any]], sync: bool = False) -> None:
        self._register_exit()
        try:
            self.journal.write(events, sync=sync)
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
        if self.trials_running:
            return  # the end of the running trials schedules another
        try:
            with self.connect(timeout=0.0):
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
            self._ensure_schema(con)
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
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the database (waiting at most ``timeout`` s for another process), yield, close."""
        with self._guard:
            if self._closing and not _final:
                raise StoreError("The store is closing: this process is exiting.")
            with self._connect(read_only, timeout, ingest) as con:
                yield con

    @contextlib.contextmanager
    def _connect(
        self, read_only: bool, timeout: float | None, ingest: bool
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        wait = LOCK_TIMEOUT if timeout is None else timeout
        con = self._open(read_only=read_only, timeout=wait)
        try:
            # _open may have fallen back to read-only (a file we cannot write): ask DuckDB.
            mode = con.execute("SELECT current_setting('access_mode')").fetchone()
            writable = not read_only and (mode is None or mode[0] != "read_only")
            try:
                if writable:
                    self._ensure_schema(con)
                    if ingest:
                        self.ingest(con)
                else:
                    self._check_schema(con)
            except duckdb.Error as exc:
                if not (writable and ingest and _CANNOT_WRITE.search(str(exc))):
                    raise StoreError(
                        f"Cannot update the store {self.path}: {_first_line(exc)}. Trials "
                        f"recorded since are safe in {journal_dir(self.path)} and are added the "
                        "next time the store can be written (free some disk space if it is full)."
                    ) from exc
                # A full disk (or a file that cannot be written after all): what the store
                # held at its last ingest is still there to read; say why the rest is not.
                con.close()
                con = self._open(read_only=True, timeout=wait)
                self._check_schema(con)
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
            _cause(exc),
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

    # -- creating the database -------------------------------------------------------------
    # A new store is built under a hidden name of its own (schema committed, checkpointed and
    # fsynced) and then hard-linked into place, which fails if the name exists: every process
    # that opens the store sees either no file or a complete one, and a file once in place is
    # never deleted or replaced. (DuckDB creating the file in place left it 0 bytes and
    # unlocked for a moment: another process took it for an unfinished creation and deleted it
    # while the first committed trials into it, and the journals behind them went too.)

    def _creation_error(self, exc: BaseException) -> StoreError:
        text = str(exc).lower()
        errno_ = getattr(exc, "errno", None)
        if "no space left" in text or "disk full" in text or errno_ in (errno.ENOSPC, errno.EDQUOT):
            return StoreError(
                f"Cannot create the store {self.path}: the disk is full (No space left on "
                f"device). Trials recorded so far are safe in {journal_dir(self.path)}; free "
                "some space."
            )
        if (
            "permission" in text
            or "read-only" in text
            or errno_ in (errno.EACCES, errno.EPERM, errno.EROFS)
        ):
            return StoreReadOnly(
                f"Cannot create the store {self.path}: its folder {self.path.parent} cannot be "
                f"written ({_first_line(exc)})."
            )
        return StoreError(f"Cannot create the store {self.path}: {_first_line(exc)}")

    def _build_new_file(self) -> Path:
        """A complete, empty store under a hidden name beside ``path``; the caller places it."""
        tmp = StorePaths(self.path).new_file(f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            con = duckdb.connect(str(tmp), config=_CONFIG)
            try:
                self._ensure_schema(con)
                con.execute("CHECKPOINT")
            finally:
                con.close()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except (duckdb.Error, OSError) as exc:
            self._discard(tmp)
            raise self._creation_error(exc) from exc
        return tmp

    @staticmethod
    def _discard(tmp: Path) -> None:
        for p in (tmp, StorePaths(tmp).wal):
            with contextlib.suppress(OSError):
                p.unlink()

    def _sync_folder(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _create(self) -> None:
        """Put a new store at ``path`` unless another process did first (then use theirs)."""
        tmp = self._build_new_file()
        try:
            try:
                os.link(tmp, self.path)  # atomic, and never replaces an existing store
            except FileExistsError:
                return  # another process created it first: that file is the store
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                    raise self._creation_error(exc) from exc
                self._place_without_links(tmp)
            self._sync_folder()
            logger.debug("Created the store %s", self.path)
        finally:
            self._discard(tmp)

    def _place_without_links(self, tmp: Path) -> None:
        """A filesystem without hard links: rename into place under a lock on the folder."""
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for one rename, by creators only
            if not self.path.exists():
                os.rename(tmp, self.path)
        finally:
            os.close(fd)

    def _replace_empty_file(self) -> bool:
        """Replace a 0-byte database file nobody is creating; False while someone may be.

        tuixp never leaves one (it creates the file complete, see ``_create``), but an older
        tuixp killed mid-creation did, and DuckDB refuses a 0-byte file forever. A file that
        DuckDB holds, or that is younger than a creation takes, is left alone: the caller waits.
        The replacement happens while this process holds DuckDB's lock on the empty file, so
        two processes never both replace it.
        """
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # DuckDB has it: someone is creating or opening it right now
            st = os.fstat(fd)
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                return True
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or st.st_size != 0:
                return True  # replaced or filled meanwhile: open what is there now
            if time.time() - st.st_mtime < EMPTY_FILE_GRACE:
                return False
            tmp = self._build_new_file()
            try:
                os.rename(tmp, self.path)
            finally:
                self._discard(tmp)
            self._sync_folder()
            logger.info(
                "Replaced the empty database file %s left by an interrupted creation", self.path
            )
            return True
        finally:
            os.close(fd)

    def _file_id(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _open(self, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
        if self.path.is_dir():
            raise NotAStore(
                f"{self.path} is a folder, not a tuixp store: give the path of the store file."
            )
        if not self.path.exists():
            if read_only:
                raise StoreError(f"No tuixp store at {self.path}: run a trial first.")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreReadOnly(
                    f"Cannot create the store folder {self.path.parent}: {exc}"
                ) from exc
            self._create()
        elif not read_only and not os.access(self.path, os.W_OK):
            read_only = True
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            before = self._file_id()
            if before is None and not read_only:
                self._create()  # removed since: never let DuckDB create it in place
                continue
            self._opened_file = before
            try:
                # Small blocks: a store of a few thousand trials stays a few MB, not 256 KB a
                # column segment. The setting only applies when the file is created, but every
                # connection passes it: DuckDB refuses a second connection in one process whose
                # configuration differs from the first's.
                con = duckdb.connect(str(self.path), read_only=read_only, config=_CONFIG)
            except duckdb.IOException as exc:
                if _is_lock_error(exc):
                    if time.monotonic() >= deadline:
                        raise StoreBusy(
                            f"The store {self.path} is held by another process; gave up after "
                            f"{timeout:g} s. Try again when it is done (TUIXP_LOCK_TIMEOUT sets "
                            "the wait)."
                        ) from exc
                    time.sleep(delay)
                    delay = min(delay * 1.5, 0.2)
                    continue
                text = str(exc).lower()
                if "permission" in text or "read-only" in text:
                    if not read_only:
                        read_only = True
                        continue
                    raise StoreReadOnly(
                        f"Cannot open the store {self.path}: {_first_line(exc)}"
                    ) from exc
                if "no space left" in text or "disk full" in text:
                    raise StoreError(
                        f"Cannot open the store {self.path}: the disk is full. Trials recorded "
                        f"so far are safe in {journal_dir(self.path)}; free some space."
                    ) from exc
                with contextlib.suppress(OSError):
                    st = self.path.stat()
                    if st.st_size == 0:
                        old = time.time() - st.st_mtime >= EMPTY_FILE_GRACE
                        if read_only or not self._replace_empty_file():
                            if time.monotonic() >= deadline or (read_only and old):
                                raise NotAStore(
                                    f"{self.path} is an empty file, not a tuixp store (a "
                                    "creation that never finished?). Delete it and run again: "
                                    "trials not yet in it wait in "
                                    f"{journal_dir(self.path)}."
                                ) from exc
                            time.sleep(delay)
                            delay = min(delay * 1.5, 0.2)
                        continue
                raise self._unreadable(exc) from exc
            except duckdb.Error as exc:
                raise self._unreadable(exc) from exc
            if before is not None and self._file_id() == before:
                return con
            # The name was pointed at another file while DuckDB opened it: open again, so the
            # connection is to the file every process will open.
            con.close()

    def _unreadable(self, exc: BaseException) -> StoreError:
        """What to say about a file DuckDB will not open: damaged, or not a store at all."""
        text = str(exc)
        if _DAMAGED.search(text):
            return StoreDamaged(
                f"The store {self.path} is damaged (DuckDB: {_first_line(exc)}), probably "
                "truncated or overwritten. Nothing was changed: restore it from a backup, or "
                "move it aside and run again to start a new store (trials not yet in it wait in "
                f"{journal_dir(self.path)} and go into the store that opens next)."
            )
        return NotAStore(
            f"{self.path} is not a tuixp store (DuckDB could not open it: {_first_line(exc)})."
        )

    def _schema_version(self, con: duckdb.DuckDBPyConnection) -> int | None:
        try:  # the common case, without a catalog scan (about 10 ms a connection)
            rows = con.execute(
                "SELECT value FROM tuixp_meta WHERE key = 'schema_version'"
            ).fetchall()
            if rows:
                return int(rows[0][0])
        except duckdb.CatalogException:
            pass
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        if "tuixp_meta" not in tables:
            if tables:
                raise NotAStore(
                    f"{self.path} is a DuckDB file but not a tuixp store (it has no tuixp_meta table)."
                )
            return None
        row = con.execute("SELECT value FROM tuixp_meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else None

    def _check_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        version = self._schema_version(con)
        if version is None:
            raise StoreError(f"{self.path} is empty: run a trial first.")
        if version > schema.SCHEMA_VERSION:
            raise self._too_new(version)

    def _too_new(self, version: int) -> SchemaTooNew:
        return SchemaTooNew(
            f"{self.path} was written by a newer tuixp (schema {version}; this tuixp reads up to "
            f"{schema.SCHEMA_VERSION}). Upgrade tuixp to use it; nothing was changed."
        )

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        version = self._schema_version(con)
        if version is not None and version > schema.SCHEMA_VERSION:
            raise self._too_new(version)
        if version == schema.SCHEMA_VERSION:
            return
        con.execute("BEGIN")
        try:
            if version is None:
                con.execute(schema.TABLES)
                con.execute(
                    "INSERT OR REPLACE INTO tuixp_meta VALUES ('schema_version', ?), ('kind', ?)",
                    [str(schema.SCHEMA_VERSION), schema.STORE_MARK],
                )
            else:
                for v in range(version, schema.SCHEMA_VERSION):
                    con.execute(schema.MIGRATIONS[v])
                con.execute(
                    "UPDATE tuixp_meta SET value = ? WHERE key = 'schema_version'",
                    [str(schema.SCHEMA_VERSION)],
                )
            con.execute(schema.VIEWS)
            con.execute("COMMIT")
        except Exception:
            _rollback(con)
            raise

    # -- ingest ----------------------------------------------------------------------------
    def ingest(self, con: duckdb.DuckDBPyConnection) -> IngestReport:
        """Move every complete journal line into the database in one transaction, idempotently."""
        report = IngestReport()
        offsets = dict(con.execute('SELECT file, "offset" FROM journal_offset').fetchall())
        own = self.journal.path.name if self.journal.path is not None else None
        batches: dict[str, list[dict[str, Any]]] = {}
        new_offsets: dict[str, int] = {}
        dead: list[Path] = []
        present: set[str] = set()
        rejected: dict[str, list[tuple[bytes, str]]] = {}
        for path in journal_files(self.path):
            name = path.name
            present.add(name)
            alive = name == own or writer_is_alive(path)
            start = offsets.get(name, 0)
            try:
                chunk = read_entries(path, start, check_event)
            except OSError:
                continue
            events, end = chunk.events, chunk.end
            bad = list(chunk.rejected)
            if not alive and chunk.tail:
                bad.append((chunk.tail, "incomplete last line: its process ended mid-write"))
            if bad:
                rejected[name] = bad
                report.bad_lines += len(bad)
            if end != start:
                new_offsets[name] = end
            for ev in events:
                ev["_journal"] = name
                batches.setdefault(ev["t"], []).append(ev)
            report.events += len(events)
            if not alive:
                dead.append(path)
        if (
            not report.events
            and not dead
            and not new_offsets
            and not self._stale_running(con, present)
        ):
            return report
        con.execute("BEGIN")
        try:
            self._apply(con, batches, report)
            dead_names = [p.name for p in dead]
            report.interrupted = self._mark_interrupted(con, dead_names, present)
            if new_offsets:
                con.executemany(
                    "INSERT OR REPLACE INTO journal_offset VALUES (?, ?)", list(new_offsets.items())
                )
            gone = [f for f in offsets if f not in present]
            if gone:
                con.executemany("DELETE FROM journal_offset WHERE file = ?", [[f] for f in gone])
            con.execute("COMMIT")
        except Exception:
            _rollback(con)
            raise
        if self._file_id() != self._opened_file:
            # Never delete a journal unless the file that now holds its lines is the one every
            # process opens: keep them all, the next open ingests them (idempotently).
            logger.warning(
                "The store file %s was replaced while this process wrote to it; the journals "
                "are kept for the next open",
                self.path,
            )
            return report
        kept_back = self._set_aside(rejected)
        for path in dead:
            # Its writer is gone and everything complete in it is in the database now.
            if path.name not in kept_back:
                with contextlib.suppress(OSError):  # gone already, or a folder we cannot write
                    path.unlink()
        report.offsets = {**offsets, **new_offsets}
        self.journal.rotate_if(report.offsets, self.trials_running)
        return report

    def _set_aside(self, rejected: dict[str, list[tuple[bytes, str]]]) -> set[str]:
        """Keep unusable journal lines for a person and say so; the journals that could not be."""
        failed = set()
        for name, lines in rejected.items():
            try:
                target = set_aside(self.path, name, lines)
            except OSError as exc:
                failed.add(name)
                logger.warning(
                    "Journal %s has %d unreadable line(s), left in place (%s)",
                    name,
                    len(lines),
                    exc.strerror,
                )
                continue
            logger.warning(
                "Journal %s: set aside %d line(s) tuixp could not read (%s) in %s; every other "
                "event was recorded",
                name,
                len(lines),
                lines[0][1],
                target,
            )
        return failed

    def _stale_running(self, con: duckdb.DuckDBPyConnection, present: set[str]) -> bool:
        rows = con.execute("SELECT journal FROM trial_record WHERE status = 'running'").fetchall()
        return any(r[0] not in present for r in rows)

    def _mark_interrupted(
        self, con: duckdb.DuckDBPyConnection, dead: list[str], present: set[str]
    ) -> int:
        rows = con.execute(
            "SELECT uuid, journal FROM trial_record WHERE status = 'running'"
        ).fetchall()
        lost = [u for u, j in rows if j in dead or j not in present]
        if lost:
            con.executemany(
                "UPDATE trial_record SET status = 'interrupted', finished_at = COALESCE("
                "(SELECT max(finished_at) FROM step_record WHERE trial_uuid = ?), now()), "
                "error_type = 'Interrupted', error_message = 'the process running this trial "
                "ended before the trial did' WHERE uuid = ?",
                [[u, u] for u in lost],
            )
        return len(lost)

    def _apply(
        self,
        con: duckdb.DuckDBPyConnection,
        batches: dict[str, list[dict[str, Any]]],
        report: IngestReport,
    ) -> None:
        insert_rows(con, "blob", batches.get("blob", []))
        insert_rows(con, "code_set", [r for e in batches.get("code_set", []) for r in e["rows"]])
        insert_rows(
            con,
            "package_set",
            [
                {"hash": e["hash"], "name": n, "version": v}
                for e in batches.get("package_set", [])
                for n, v in e["packages"].items()
            ],
        )
        announced = batches.get("experiment", [])
        for e in announced:
            if e.get("goal") not in ("min", "max"):
                e["goal"] = None  # not said (or a value this tuixp does not know)
        insert_rows(con, "experiment_record", announced)
        # The latest process that says which result is best has the last word.
        goals = {e["name"]: e["goal"] for e in announced if e["goal"] is not None}
        if goals:
            con.executemany(
                "UPDATE experiment_record SET goal = ? WHERE name = ?",
                [[g, n] for n, g in goals.items()],
            )
        started = batches.get("trial_started", [])
        finished = {e["uuid"]: e for e in batches.get("trial_finished", [])}
        rows = []
        params = []
        for e in started:
            row = {k: e.get(k) for k, _, _ in _TRIAL_COLUMNS}
            row["journal"] = e["_journal"]
            row["status"] = "running"
            row["params"] = json.dumps(e.get("params") or {})
            row["changes"] = json.dumps(e.get("changes") or [])
            row["data_inputs"] = json.dumps(e.get("data") or {})
            fin = finished.get(e["uuid"])
            if fin is not None:
                for k in _FINISH_FIELDS:
                    row[k] = fin.get(k)
                if fin.get("started_at") is not None:  # its first step's start (it queued)
                    row["started_at"] = fin["started_at"]
            rows.append(row)
            for name, value in (e.get("params") or {}).items():
                params.append(
                    {
                        "trial_uuid": e["uuid"],
                        "experiment": e["experiment"],
                        "trial_id": e["trial_id"],
                        "name": name,
                        "value": json.dumps(value),
                    }
                )
        insert_rows(con, "trial_record", rows)
        insert_rows(con, "param_record", _last_per_key(params, schema.KEYS["param_record"]))
        report.trials = len(rows)
        for kind in ("metric", "step", "persisted"):
            table = _EVENT_TABLE[kind]
            insert_rows(
                con,
                table,
                _last_per_key(batches.get(kind, []), schema.KEYS[table]),
                conflict="REPLACE",
            )
        started_here = {e["uuid"] for e in started}
        late = [f for u, f in finished.items() if u not in started_here]
        if late:
            staged = [{k: f.get(k) for k, _, _ in _TRIAL_COLUMNS} for f in late]
            cols = [c for c in _TRIAL_COLUMNS if c[0] in {"uuid", "started_at", *_FINISH_FIELDS}]
            arrow = _arrow_table({n: ([r.get(n) for r in staged], t) for n, t, _ in cols})
            con.register("_staged_finish", arrow)
            try:
                sets = ", ".join(
                    f"{n} = " + (f"to_timestamp(f.{n})" if n == "finished_at" else f"f.{n}")
                    for n in _FINISH_FIELDS
                )
                # A trial that queued starts when its first step did (absent: as it was).
                sets += (
                    ", started_at = coalesce(to_timestamp(f.started_at), trial_record.started_at)"
                )
                con.execute(
                    f"UPDATE trial_record SET {sets} FROM _staged_finish f "
                    "WHERE trial_record.uuid = f.uuid"
                )
            finally:
                con.unregister("_staged_finish")

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
