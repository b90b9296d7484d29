"""Ingest: the journals' complete lines into the store's tables, in one transaction.

Whoever opens the database for writing (``Store.connect``) calls ``ingest_journals``: every
journal is read from its last offset (table ``journal_offset``) to its last complete line, each
line checked (``tuixp.store.events.check_event``), and everything is inserted through Arrow
batches together with the new offsets. Lines that cannot be stored are set aside beside the
journal; the trials of a writer that is gone and still ``running`` become ``interrupted``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from tuixp.store import metric_summary, schema, staging
from tuixp.store.connection import FileId, file_id, rollback
from tuixp.store.events import EVENT_TABLE, check_event
from tuixp.store.journal import journal_files, read_entries, set_aside, writer_is_alive

logger = logging.getLogger("tuixp")

# The trial_record columns a trial_finished event sets.
FINISH_FIELDS = [
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


def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]], conflict: str = "IGNORE"
) -> None:
    """Insert dict rows as one staged batch (``tuixp.store.staging``): thousands of rows cost
    one statement.

    A row whose key is already stored is skipped (``IGNORE``) or replaces it (``REPLACE``). The
    per-trial tables have no key constraint (``schema.KEYS``): they replace by deleting the rows
    with the same key first, among the batch's trials only (zone maps on ``trial_id`` skip the
    rest of a big table).
    """
    if not rows:
        return
    cols = schema.COLUMNS[table]
    columns = {name: ([r.get(name) for r in rows], typ) for name, typ, _ in cols}
    with staging.staged(con, f"_staged_{table}", columns) as staged:
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


def last_per_key(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per primary key, the last written: what a metric saved twice ends up as."""
    return list({tuple(r.get(k) for k in keys): r for r in rows}.values())


class IngestReport:
    def __init__(self) -> None:
        self.events = 0
        self.bad_lines = 0
        self.trials = 0
        self.interrupted = 0
        self.offsets: dict[str, int] = {}


def ingest_journals(
    con: duckdb.DuckDBPyConnection,
    store_path: Path,
    own: str | None,
    opened_file: FileId | None,
    kept: Callable[[str], dict[int, tuple[int, dict[str, Any]]]] | None = None,
) -> IngestReport:
    """Move every complete journal line of the store at ``store_path`` into the database ``con``
    (a connection to the file ``opened_file``) in one transaction, idempotently. ``own`` names
    this process's journal (its writer is alive, whatever its lock says); a dead writer's
    journal is deleted once it is in, unless the store's name no longer points at
    ``opened_file``. ``kept`` gives the metric batches this process keeps unpacked for a
    journal of its own (``JournalWriter.kept``)."""
    report = IngestReport()
    offsets = dict(con.execute('SELECT file, "offset" FROM journal_offset').fetchall())
    batches: dict[str, list[dict[str, Any]]] = {}
    new_offsets: dict[str, int] = {}
    dead: list[Path] = []
    present: set[str] = set()
    rejected: dict[str, list[tuple[bytes, str]]] = {}
    for path in journal_files(store_path):
        name = path.name
        present.add(name)
        alive = name == own or writer_is_alive(path)
        start = offsets.get(name, 0)
        try:
            mine = kept(name) if kept is not None and name == own else None
            chunk = read_entries(path, start, check_event, mine)
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
    if not report.events and not dead and not new_offsets and not stale_running(con, present):
        return report
    con.execute("BEGIN")
    try:
        apply_batches(con, batches, report)
        dead_names = [p.name for p in dead]
        report.interrupted = mark_interrupted(con, dead_names, present)
        if new_offsets:
            con.executemany(
                "INSERT OR REPLACE INTO journal_offset VALUES (?, ?)", list(new_offsets.items())
            )
        gone = [f for f in offsets if f not in present]
        if gone:
            con.executemany("DELETE FROM journal_offset WHERE file = ?", [[f] for f in gone])
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise
    if file_id(store_path) != opened_file:
        # Never delete a journal unless the file that now holds its lines is the one every
        # process opens: keep them all, the next open ingests them (idempotently).
        logger.warning(
            "The store file %s was replaced while this process wrote to it; the journals "
            "are kept for the next open",
            store_path,
        )
        return report
    kept_back = set_aside_rejected(store_path, rejected)
    for path in dead:
        # Its writer is gone and everything complete in it is in the database now.
        if path.name not in kept_back:
            with contextlib.suppress(OSError):  # gone already, or a folder we cannot write
                path.unlink()
    report.offsets = {**offsets, **new_offsets}
    return report


def set_aside_rejected(path: Path, rejected: dict[str, list[tuple[bytes, str]]]) -> set[str]:
    """Keep unusable journal lines for a person and say so; the journals that could not be."""
    failed = set()
    for name, lines in rejected.items():
        try:
            target = set_aside(path, name, lines)
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


# A running trial merged from another store (origin_store set) has no journal here: it stays
# running until a later merge brings its end (docs/sharing.md), never interrupted by this store.
_RUNNING_HERE = "status = 'running' AND origin_store IS NULL"


def stale_running(con: duckdb.DuckDBPyConnection, present: set[str]) -> bool:
    rows = con.execute(f"SELECT journal FROM trial_record WHERE {_RUNNING_HERE}").fetchall()
    return any(r[0] not in present for r in rows)


def mark_interrupted(con: duckdb.DuckDBPyConnection, dead: list[str], present: set[str]) -> int:
    rows = con.execute(f"SELECT uuid, journal FROM trial_record WHERE {_RUNNING_HERE}").fetchall()
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


def insert_metric_rows(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Insert single metric points (a point each) replacing any stored with the same trial,
    name and epoch, and bring their trials' summaries up to date: the new points folded in,
    or, for a trial where one replaced a stored point, all its rows summarised again."""
    if not rows:
        return
    trials = {r["trial_uuid"]: r.get("trial_id") for r in rows}
    ids = [i for i in trials.values() if isinstance(i, int)]
    near = f" AND m.trial_id BETWEEN {min(ids)} AND {max(ids)}" if len(ids) == len(trials) else ""
    keys = {
        "trial_uuid": ([r["trial_uuid"] for r in rows], "string"),
        "name": ([r["name"] for r in rows], "string"),
        "epoch": ([r["epoch"] for r in rows], "int64"),
    }
    match = "m.trial_uuid = k.trial_uuid AND m.name = k.name AND m.epoch = k.epoch"
    with staging.staged(con, "_new_metric_keys", keys) as staged:
        replaced = [
            u
            for (u,) in con.execute(
                f"SELECT DISTINCT m.trial_uuid FROM metric_record m JOIN {staged} k ON {match}"
                f"{near}"
            ).fetchall()
        ]
        insert_rows(con, "metric_record", rows, conflict="REPLACE")
        if len(replaced) < len(trials):
            metric_summary.add_points(
                con,
                "SELECT m.trial_uuid, m.experiment, m.trial_id, m.name, m.epoch, m.value "
                f"FROM metric_record m JOIN {staged} k ON {match}{near} "
                "WHERE NOT list_contains(?::VARCHAR[], m.trial_uuid)",
                [replaced],
            )
    metric_summary.resummarize(con, {u: trials[u] for u in replaced})


def apply_batches(
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
        row = {k: e.get(k) for k, _, _ in schema.COLUMNS["trial_record"]}
        row["journal"] = e["_journal"]
        row["status"] = "running"
        row["params"] = json.dumps(e.get("params") or {})
        row["changes"] = json.dumps(e.get("changes") or [])
        row["data_inputs"] = json.dumps(e.get("data") or {})
        fin = finished.get(e["uuid"])
        if fin is not None:
            for k in FINISH_FIELDS:
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
    insert_rows(con, "param_record", last_per_key(params, schema.KEYS["param_record"]))
    report.trials = len(rows)
    small = [e for e in batches.get("metric_batch", []) if "_rows" in e]
    if small:  # small batches as rows, in order, after the single events (they are older)
        batches["metric"] = [*batches.get("metric", []), *(r for e in small for r in e["_rows"])]
        batches["metric_batch"] = [e for e in batches["metric_batch"] if "_rows" not in e]
    insert_metric_rows(
        con, last_per_key(batches.get("metric", []), schema.KEYS[EVENT_TABLE["metric"]])
    )
    for kind in ("step", "persisted", "artifact"):
        table = EVENT_TABLE[kind]
        insert_rows(
            con,
            table,
            last_per_key(batches.get(kind, []), schema.KEYS[table]),
            conflict="REPLACE",
        )
    if batches.get("metric_batch"):  # after single metric events: they are older, or imported
        from tuixp.store.metric_batch import insert_batches

        insert_batches(con, batches["metric_batch"])
    goals = {(e["experiment"], e["name"]): e["goal"] for e in batches.get("metric_goal", [])}
    if goals:  # the latest word on a metric's goal wins
        con.executemany(
            "INSERT OR REPLACE INTO metric_goal VALUES (?, ?, ?)",
            [[exp, name, goal] for (exp, name), goal in goals.items()],
        )
    # Annotations are events, never replaced: each once by its uuid (one may arrive twice, live
    # from a cluster worker and again with its step's record, or from two merged stores).
    insert_rows(con, "annotation_record", last_per_key(batches.get("annotation", []), ("uuid",)))
    started_here = {e["uuid"] for e in started}
    late = [f for u, f in finished.items() if u not in started_here]
    if late:
        staged = [{k: f.get(k) for k, _, _ in schema.COLUMNS["trial_record"]} for f in late]
        cols = [
            c
            for c in schema.COLUMNS["trial_record"]
            if c[0] in {"uuid", "started_at", *FINISH_FIELDS}
        ]
        columns = {n: ([r.get(n) for r in staged], t) for n, t, _ in cols}
        with staging.staged(con, "_staged_finish", columns):
            sets = ", ".join(
                f"{n} = " + (f"to_timestamp(f.{n})" if n == "finished_at" else f"f.{n}")
                for n in FINISH_FIELDS
            )
            # A trial that queued starts when its first step did (absent: as it was).
            sets += ", started_at = coalesce(to_timestamp(f.started_at), trial_record.started_at)"
            con.execute(
                f"UPDATE trial_record SET {sets} FROM _staged_finish f "
                "WHERE trial_record.uuid = f.uuid"
            )
