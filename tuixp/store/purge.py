"""Purge: remove trials from the store for good, with everything only they used.

``tuixp rm --purge`` (``tuixp.curation.purge``) plans first (``plan``: what would go, read in
one short connection, so a person can confirm without the store held), then ``execute`` removes
in one transaction: the trials' rows, their parameters, metrics, steps, persisted-output rows
and annotations; then the texts (code, environments, package lists, tracebacks) that no trial
left refers to; then, after the commit, the files beside the store that nothing refers to any
more (``unreferenced_files``: persisted outputs; the one place to add other kinds of files).

Texts are stored once per process by hash and a writing process remembers which it stored: a
text it believes stored must stay. So while another tuixp process that writes this store is
alive (its journal is locked), the shared texts are kept, and the report says so; a purge once
it has ended removes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuixp.errors import UsageError
from tuixp.store import annotation, artifacts, metric_summary
from tuixp.store.journal import journal_files, read_entries, writer_is_alive
from tuixp.store.objects import ObjectStore

if TYPE_CHECKING:
    import duckdb

    from tuixp.store.store import Store

# The per-trial tables, with the column naming the trial, in the order rows are removed.
PER_TRIAL = (
    ("param_record", "trial_uuid", "parameter values"),
    ("metric_record", "trial_uuid", "metric values"),
    ("step_record", "trial_uuid", "steps"),
    ("persisted_record", "trial_uuid", "persisted-output rows"),
    ("annotation_record", "trial_uuid", "annotations"),
    ("artifact_record", "trial_uuid", "artifact rows"),
    ("trial_record", "uuid", "trials"),
)


@dataclass
class PurgePlan:
    """What a purge of these trials removes (before it runs)."""

    experiment: str
    trials: list[annotation.TrialRef]
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows of these trials
    objects: dict[str, str] = field(default_factory=dict)  # object hash -> format

    @property
    def trial_ids(self) -> list[int]:
        return [t.trial_id for t in self.trials]

    def describe(self) -> str:
        parts = [
            f"{self.rows.get(table, 0):,} {what}"
            for table, _, what in PER_TRIAL
            if table != "trial_record" and self.rows.get(table)
        ]
        ids = ", ".join(str(i) for i in self.trial_ids[:20]) + (
            ", ..." if len(self.trials) > 20 else ""
        )
        return (
            f"{len(self.trials)} trial(s) of {self.experiment} ({ids})"
            + (f" with {', '.join(parts)}" if parts else "")
            + (f"; up to {len(self.objects)} persisted output file(s)" if self.objects else "")
        )


@dataclass
class PurgeReport:
    plan: PurgePlan
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows removed
    texts: int = 0  # blob, code_set and package_set rows no trial refers to any more
    shared_kept: bool = False  # another writer is alive: the shared texts stayed
    files: int = 0
    file_bytes: int = 0
    database_bytes: int = 0  # the database file's size after the purge

    def describe(self, store_name: str) -> str:
        n = self.rows.get("trial_record", 0)
        parts = [
            f"{self.rows[table]:,} {what}"
            for table, _, what in PER_TRIAL
            if table != "trial_record" and self.rows.get(table)
        ]
        lines = [
            f"purged {n} trial(s) of {self.plan.experiment}"
            + (f" ({', '.join(parts)})" if parts else ""),
            f"freed {self.files} file(s), {self.file_bytes:,} bytes beside {store_name}; "
            f"{self.texts} stored text(s) no trial used any more",
        ]
        if self.shared_kept:
            lines.append(
                "kept the texts trials share (code, environments, package lists): another tuixp "
                "process writes this store; a purge after it ends removes those no trial uses"
            )
        lines.append(
            f"the database file ({self.database_bytes:,} bytes) keeps the space it freed for "
            "new trials (DuckDB reuses it; the file does not shrink)"
        )
        return "\n".join(lines)


def plan(
    con: duckdb.DuckDBPyConnection, experiment: str, trial_ids: Sequence[int | str] | None
) -> PurgePlan:
    """What purging these trials (the experiment's deleted ones when None) removes. A running
    trial is refused: its process would keep adding its steps and metrics."""
    if trial_ids is None:
        annotation.resolve_experiment(con, experiment)
        deleted = annotation.deleted_ids(con, experiment)
        if not deleted:
            return PurgePlan(experiment, [])
        trial_ids = deleted
    trials = annotation.resolve(con, experiment, trial_ids)
    running = [t.trial_id for t in trials if t.status == "running"]
    if running:
        raise UsageError(
            f"trial {running[0]} of {experiment} is running: it can be purged once it ends"
        )
    found = PurgePlan(experiment, trials)
    uuids = [t.uuid for t in trials]
    for table, key, _ in PER_TRIAL:
        found.rows[table] = con.execute(
            f"SELECT count(*) FROM {table} WHERE list_contains(?, {key})", [uuids]
        ).fetchall()[0][0]
    found.objects = dict(
        con.execute(
            "SELECT DISTINCT object_hash, format FROM persisted_record "
            "WHERE list_contains(?, trial_uuid)",
            [uuids],
        ).fetchall()
    )
    return found


def other_writers(store: Store) -> int:
    """How many other processes hold a journal of this store open (they may write)."""
    own = store.journal.path.name if store.journal.path is not None else None
    return sum(1 for p in journal_files(store.path) if p.name != own and writer_is_alive(p))


def execute(
    store: Store,
    con: duckdb.DuckDBPyConnection,
    planned: PurgePlan,
    kept_files: Callable[[list[int]], set[str]] = lambda ids: set(),
) -> PurgeReport:
    """Remove the planned trials in one transaction (the plan is checked again first: another
    process may have changed them since), then the files only they used. ``kept_files(ids)``,
    called after the commit with the purged trial ids, names objects still needed elsewhere
    (the step cache's, which the store layer does not read)."""
    started = time.time()
    again = plan(con, planned.experiment, planned.trial_ids)
    if [t.uuid for t in again.trials] != [t.uuid for t in planned.trials]:
        raise UsageError("the trials changed since the purge was planned: nothing was purged")
    report = PurgeReport(again)
    uuids = [t.uuid for t in again.trials]
    shared = not other_writers(store)
    con.execute("BEGIN")
    try:
        referenced = _texts_of(con, uuids)
        logged = artifacts.of_trials(con, uuids)
        for table, key, _ in PER_TRIAL:
            report.rows[table] = _count(
                con.execute(f"DELETE FROM {table} WHERE list_contains(?, {key})", [uuids])
            )
        metric_summary.forget(con, uuids)
        if shared:
            report.texts = _drop_unused_texts(con, referenced)
        else:
            report.shared_kept = True
        con.execute("COMMIT")
    except Exception:
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")
        raise
    with contextlib.suppress(Exception):  # folds the WAL in: the freed blocks are reusable
        con.execute("CHECKPOINT")
    keep = kept_files(again.trial_ids)
    report.files, report.file_bytes = unreferenced_files(
        store, con, again.objects, since=started, keep=keep
    )
    art_files, art_bytes = artifacts.free_unreferenced(con, store.path, logged)
    report.files += art_files
    report.file_bytes += art_bytes
    with contextlib.suppress(OSError):
        report.database_bytes = store.path.stat().st_size
    return report


def _count(cur: Any) -> int:
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _texts_of(con: duckdb.DuckDBPyConnection, uuids: list[str]) -> dict[str, set[str]]:
    """The hashes of the shared texts these trials refer to, by table."""
    rows = con.execute(
        """
        SELECT code_hash, packages_hash, environment_hash, git_hash, traceback_hash
        FROM trial_record WHERE list_contains(?, uuid)
        """,
        [uuids],
    ).fetchall()
    code = {r[0] for r in rows if r[0]}
    packages = {r[1] for r in rows if r[1]}
    blobs = {h for r in rows for h in r[2:] if h}
    if code:
        blobs |= {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT source_hash FROM code_set WHERE list_contains(?, hash)",
                [sorted(code)],
            ).fetchall()
            if r[0]
        }
    return {"code_set": code, "package_set": packages, "blob": blobs}


def _drop_unused_texts(con: duckdb.DuckDBPyConnection, candidates: dict[str, set[str]]) -> int:
    """Remove the candidate texts no remaining trial refers to; how many rows went."""
    removed = 0
    code = sorted(candidates["code_set"])
    if code:
        removed += _count(
            con.execute(
                "DELETE FROM code_set WHERE list_contains(?, hash) AND hash NOT IN "
                "(SELECT code_hash FROM trial_record WHERE code_hash IS NOT NULL)",
                [code],
            )
        )
    packages = sorted(candidates["package_set"])
    if packages:
        removed += _count(
            con.execute(
                "DELETE FROM package_set WHERE list_contains(?, hash) AND hash NOT IN "
                "(SELECT packages_hash FROM trial_record WHERE packages_hash IS NOT NULL)",
                [packages],
            )
        )
    blobs = sorted(candidates["blob"])
    if blobs:
        removed += _count(
            con.execute(
                """
                DELETE FROM blob WHERE list_contains(?, hash)
                  AND hash NOT IN (SELECT source_hash FROM code_set WHERE source_hash IS NOT NULL)
                  AND hash NOT IN (
                      SELECT h FROM (
                          SELECT unnest([environment_hash, git_hash, traceback_hash]) AS h
                          FROM trial_record)
                      WHERE h IS NOT NULL)
                """,
                [blobs],
            )
        )
    return removed


def unreferenced_files(
    store: Store,
    con: duckdb.DuckDBPyConnection,
    objects: dict[str, str],
    since: float,
    keep: set[str],
) -> tuple[int, int]:
    """Delete the files beside the store that the purged trials used and nothing uses now;
    ``(files, bytes)`` freed.

    Persisted outputs (``objects``: hash -> format) are kept while a trial's row, a step-cache
    entry (``keep``: ``tuixp.curation`` drops the purged trials' entries first) or a journal line not yet
    ingested refers to them, and when written or re-used since the purge began (a trial in
    another process may have stored the same content a moment ago). Other files a store keeps
    per trial (artifacts) belong here too.
    """
    if not objects:
        return 0, 0
    still = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT object_hash FROM persisted_record WHERE list_contains(?, object_hash)",
            [sorted(objects)],
        ).fetchall()
    }
    still |= _journaled_objects(store, con)
    still |= keep
    box = ObjectStore(store.objects_dir)
    files = freed = 0
    for digest, fmt in objects.items():
        if digest in still:
            continue
        path = box.path_of(digest, fmt)
        try:
            st = path.stat()
            if st.st_mtime >= since:
                continue
            path.unlink()
        except OSError:
            continue
        files += 1
        freed += st.st_size
        with contextlib.suppress(OSError):  # the two-letter folder, once empty
            path.parent.rmdir()
    return files, freed


def _journaled_objects(store: Store, con: duckdb.DuckDBPyConnection) -> set[str]:
    """Object hashes named by persisted events journaled since the last ingest."""
    offsets = dict(con.execute('SELECT file, "offset" FROM journal_offset').fetchall())
    found: set[str] = set()
    for path in journal_files(store.path):
        try:
            chunk = read_entries(path, offsets.get(path.name, 0))
        except OSError:
            continue
        found |= {str(e.get("object_hash")) for e in chunk.events if e.get("t") == "persisted"}
    return found
