"""Merging another store's trials into this one: lossless, idempotent, atomic.

The source (a store file or a bundle) is first read whole into a ``Snapshot`` (Parquet files,
one read transaction; the source's database is closed again before the target is opened).
The target is then opened as every tuixp command opens it (its journals ingested first), the
merge is planned in SQL against it, and written in ONE transaction: a process killed in the
middle leaves the target as it was, and running the merge again completes it. Merged trials get
their local ids from the ids file writers use (``TrialCounter.next_ids``), so writers recording
into the target meanwhile never get the same id; ids reserved by a merge that was killed are
simply never used. Trials are matched by UUID, texts and code and package sets by hash,
persisted outputs by content hash. The rules for a trial both sides hold are in docs/sharing.md.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from tuixp.errors import NotAStore, StoreError, UsageError
from tuixp.store import metric_summary
from tuixp.store.bundle import (
    SHARED_TABLES,
    Snapshot,
    artifact_blob,
    copy_object,
    is_bundle_file,
    object_path,
    open_bundle,
    sql_text,
    store_uuid,
    write_snapshot,
)
from tuixp.store.merge_report import ExperimentMerge, MergeReport
from tuixp.store.paths import StorePaths
from tuixp.store.store import Store

# The trial_record columns that say what a trial recorded; two copies of a finished trial that
# differ in any of them are a conflict. (Not: its local id, origin, journal file name.)
CONTENT_COLUMNS = (
    "experiment",
    "status",
    "started_at",
    "finished_at",
    "seed",
    "params",
    "result",
    "result_type",
    "result_value",
    "error_type",
    "error_message",
    "traceback_hash",
    "host",
    "pid",
    "script",
    "scheduler",
    "code_hash",
    "environment_hash",
    "packages_hash",
    "git_hash",
    "git_commit",
    "git_branch",
    "git_dirty",
    "changes",
    "notes",
    "data_inputs",
)
_PER_TRIAL = [
    t for t in SHARED_TABLES if t.trial is not None and not t.key and t.name != "trial_record"
]
_EVENTS = [t for t in SHARED_TABLES if t.trial is not None and t.key]
_REFERRED = [t for t in SHARED_TABLES if t.trial is None]
# Annotations whose latest value on the two sides differs, when each side has events the
# other lacks, are reported as conflicts (both kept: the latest event wins, as always).
_ANNOTATED = ("note", "name")
BIG_MERGE = 10_000  # trials: a merge this big says when it starts writing (it takes seconds)


@contextlib.contextmanager
def open_source(path: Path, target: Path | None = None) -> Iterator[Snapshot]:
    """A store file or bundle at ``path`` as a Snapshot; one clear error if it is neither.

    A store is opened as every tuixp command opens it (brought to this schema and its journals
    ingested, so trials its writers recorded come along), read in one transaction, and closed.
    """
    if not path.exists() and not Store(path).has_records():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise NotAStore(f"{path} is a folder, not a tuixp store or bundle.")
    if target is not None and path.resolve() == target.resolve():
        raise UsageError(f"{path} is the target store itself: give another store or a bundle.")
    head = b""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        pass  # journals alone (its writers have not opened the database yet): a store
    except OSError as exc:
        raise StoreError(f"Cannot read {path}: {exc.strerror}.") from None
    if head[8:12] == b"DUCK" or not head and not path.exists():
        folder = Path(tempfile.mkdtemp(prefix="tuixp-merge-"))
        try:
            source = Store(path)
            with source.connect() as con:
                try:
                    store_uuid(con)
                except (StoreError, duckdb.Error):
                    raise StoreError(
                        f"{path} is a store of an older schema that cannot be upgraded here "
                        "(it is read-only): open it once with this tuixp where it can be "
                        "written, or export a bundle from it there."
                    ) from None
                snapshot = write_snapshot(
                    con, folder, source.objects_dir, artifacts_dir=StorePaths(path).artifacts
                )
            yield snapshot
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    if is_bundle_file(path):
        with open_bundle(path) as snapshot:
            yield snapshot
        return
    raise NotAStore(f"{path} is not a tuixp store or bundle.")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
        "AND database_name = current_database() ORDER BY column_index",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def _parquet(snapshot: Snapshot, table: str) -> str:
    return f"read_parquet({sql_text(str(snapshot.table(table)))})"


def _parquet_columns(con: duckdb.DuckDBPyConnection, source: str) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}


def _insert_select(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: str,
    overrides: dict[str, str],
    alias: str = "s",
) -> tuple[str, str]:
    """``(column list, select list)`` filling ``table``'s columns from ``source``: a column the
    source has (from an older schema it may lack some: NULL) or its override expression."""
    have = _parquet_columns(con, source)
    cols, exprs = [], []
    for c in _columns(con, table):
        if c in overrides:
            exprs.append(overrides[c])
        elif c in have:
            exprs.append(f'{alias}."{c}"')
        else:
            continue
        cols.append(f'"{c}"')
    return ", ".join(cols), ", ".join(exprs)


def merge_snapshot(
    target: Store,
    snapshot: Snapshot,
    *,
    source_label: str,
    dry_run: bool = False,
    remote: str | None = None,
    bundle_name: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> MergeReport:
    """Merge ``snapshot`` into ``target`` (one transaction), or plan it only (``dry_run``).
    ``progress`` is told when a big merge (BIG_MERGE trials or more) starts writing."""
    report = MergeReport(
        source=source_label,
        source_store=snapshot.store_uuid,
        source_host=snapshot.manifest.get("host"),
        target=str(target.path),
        dry_run=dry_run,
    )
    with target.connect() as con:
        con.execute("SET enable_progress_bar = false")
        here = store_uuid(con)
        if here == snapshot.store_uuid:
            report.notes.append(
                "the source has this store's identity (a copy of this store?): trials are "
                "still matched by their own UUIDs"
            )
        _plan(con, snapshot, report)
        if dry_run:
            return report
        first = _reserve_ids(con, target)
        _copy_objects(con, snapshot, target, report)
        writing = report.totals()["added"] + report.totals()["updated"]
        if progress is not None and writing >= BIG_MERGE:
            progress(f"writing {writing} trials into {target.path} (one transaction)")
        con.execute("BEGIN")
        try:
            _write(con, snapshot, first, report)
            if snapshot.bundle_id is not None:
                con.execute(
                    "INSERT OR IGNORE INTO bundle_merged VALUES (?, ?, ?, ?, now(), ?)",
                    [
                        snapshot.bundle_id,
                        remote,
                        bundle_name,
                        snapshot.store_uuid,
                        report.totals()["added"],
                    ],
                )
            if remote is not None:
                note_remote_trials(con, remote, "m_src")
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
    return report


def note_remote_trials(con: duckdb.DuckDBPyConnection, remote: str, trials: str) -> None:
    """Remember that ``remote`` holds the trials of ``trials`` (a relation with uuid and
    status): push sends a trial again only when the remote has it running and it has finished."""
    con.execute(
        "INSERT INTO remote_trial SELECT ?, uuid, status FROM "
        f"{trials} ON CONFLICT (remote, trial_uuid) DO UPDATE SET status = CASE "
        "WHEN excluded.status = 'running' THEN remote_trial.status ELSE excluded.status END",
        [remote],
    )


def _plan(con: duckdb.DuckDBPyConnection, snapshot: Snapshot, report: MergeReport) -> None:
    """Temp tables ``m_src`` (the source's trials) and ``m_plan`` (each one's action: add,
    update, skip, conflict), and the report's counts and conflicts."""
    src_trials = _parquet(snapshot, "trial_record")
    have = _parquet_columns(con, src_trials)
    for c in ("origin_store", "origin_trial_id"):
        if c not in have:  # a bundle of an older schema: every trial was recorded there
            src_trials = f"(SELECT *, NULL::{'VARCHAR' if c == 'origin_store' else 'INTEGER'} "
            src_trials += f"AS {c} FROM {src_trials})"
    con.execute(f"CREATE OR REPLACE TEMP TABLE m_src AS SELECT * FROM {src_trials}")
    have = _parquet_columns(con, "m_src")
    # Rows each trial has in each per-trial table, on both sides (the target's: only for the
    # trials both sides hold).
    counted = []
    for i, t in enumerate(_PER_TRIAL):
        counted.append(f"SELECT trial_uuid, {i} AS k FROM {_parquet(snapshot, t.name)}")
    n = len(_PER_TRIAL)
    aggs = ", ".join(f"count(*) FILTER (WHERE k = {i}) AS n{i}" for i in range(n))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE m_scount AS SELECT trial_uuid, {aggs} FROM "
        f"({' UNION ALL '.join(counted)}) GROUP BY trial_uuid"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE m_both AS SELECT s.uuid FROM m_src s "
        "JOIN trial_record t ON t.uuid = s.uuid"
    )
    counted = [
        f"SELECT trial_uuid, {i} AS k FROM {t.name} WHERE trial_uuid IN (SELECT uuid FROM m_both)"
        for i, t in enumerate(_PER_TRIAL)
    ]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE m_tcount AS SELECT trial_uuid, {aggs} FROM "
        f"({' UNION ALL '.join(counted)}) GROUP BY trial_uuid"
    )
    same_row = " AND ".join(
        f's."{c}" IS NOT DISTINCT FROM t."{c}"' for c in CONTENT_COLUMNS if c in have
    )
    same_rows = " AND ".join(f"coalesce(sc.n{i}, 0) = coalesce(tc.n{i}, 0)" for i in range(n))
    src_rows = " + ".join(f"coalesce(sc.n{i}, 0)" for i in range(n))
    tgt_rows = " + ".join(f"coalesce(tc.n{i}, 0)" for i in range(n))
    src_store = sql_text(snapshot.store_uuid)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE m_plan AS
        SELECT s.uuid, s.experiment, s.trial_id AS src_id, s.status AS src_status,
               s.started_at, s.host,
               coalesce(s.origin_store, {src_store}) AS o_store,
               coalesce(s.origin_trial_id, s.trial_id) AS o_id,
               t.trial_id AS tgt_id, t.status AS tgt_status,
               CASE
                 WHEN t.uuid IS NULL THEN 'add'
                 WHEN s.status = 'running' AND t.status = 'running' THEN
                   CASE WHEN {src_rows} > {tgt_rows} THEN 'update' ELSE 'skip' END
                 WHEN t.status = 'running' THEN 'update'
                 WHEN s.status = 'running' THEN 'skip'
                 WHEN {same_row} AND {same_rows} THEN 'skip'
                 ELSE 'conflict'
               END AS action,
               NULL::INTEGER AS new_id
        FROM m_src s LEFT JOIN trial_record t ON t.uuid = s.uuid
        LEFT JOIN m_scount sc ON sc.trial_uuid = s.uuid
        LEFT JOIN m_tcount tc ON tc.trial_uuid = s.uuid
        """
    )
    for exp, action, count in con.execute(
        "SELECT experiment, action, count(*) FROM m_plan GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        e = report.experiments.setdefault(exp, ExperimentMerge(exp))
        key = {"add": "added", "update": "updated", "skip": "skipped", "conflict": "conflicts"}
        setattr(e, key[action], int(count))
    for exp, tid, host, oid, ts, ss in con.execute(
        "SELECT p.experiment, p.tgt_id, p.host, p.o_id, t.status, p.src_status "
        "FROM m_plan p JOIN trial_record t ON t.uuid = p.uuid WHERE p.action = 'conflict' "
        "ORDER BY p.experiment, p.tgt_id"
    ).fetchall():
        why = f"here {ts}, there {ss}" if ts != ss else f"both {ts}, with different records"
        report.conflicts.append(
            f"{exp} #{tid} ({host or '?'} #{oid}): finished differently on the two sides "
            f"({why}); this store's copy kept"
        )
    _plan_experiments(con, snapshot, report)
    _plan_annotations(con, snapshot, report)


def _plan_annotations(
    con: duckdb.DuckDBPyConnection, snapshot: Snapshot, report: MergeReport
) -> None:
    src = _parquet(snapshot, "annotation_record")
    actions = ", ".join(sql_text(a) for a in _ANNOTATED)
    for exp, tid, action, here, there in con.execute(
        f"""
        WITH s AS (SELECT trial_uuid, action, arg_max(value, recorded_at) AS v FROM {src}
                   WHERE action IN ({actions}) AND uuid NOT IN (SELECT uuid FROM annotation_record)
                   GROUP BY ALL),
             t AS (SELECT trial_uuid, action, arg_max(value, recorded_at) AS v
                   FROM annotation_record WHERE action IN ({actions})
                   AND trial_uuid IN (SELECT uuid FROM m_src)
                   AND uuid NOT IN (SELECT uuid FROM {src}) GROUP BY ALL)
        SELECT r.experiment, r.trial_id, s.action, t.v, s.v FROM s JOIN t USING (trial_uuid, action)
        JOIN trial_record r ON r.uuid = s.trial_uuid WHERE s.v IS DISTINCT FROM t.v
        ORDER BY ALL
        """
    ).fetchall():
        report.conflicts.append(
            f"{exp} #{tid}: {action} {here!r} here and {there!r} in the source; both kept, "
            "the latest one shows"
        )


def _plan_experiments(
    con: duckdb.DuckDBPyConnection, snapshot: Snapshot, report: MergeReport
) -> None:
    source = _parquet(snapshot, "experiment_record")
    if "goal" not in _parquet_columns(con, source):
        return
    for name, here, there in con.execute(
        f"SELECT e.name, e.goal, s.goal FROM {source} s JOIN experiment_record e "
        "ON e.name = s.name WHERE e.goal IS NOT NULL AND s.goal IS NOT NULL AND e.goal <> s.goal"
    ).fetchall():
        report.conflicts.append(
            f"experiment {name}: the best result is the {'lowest' if here == 'min' else 'highest'}"
            f" here (goal {here}) and goal {there} in the source; this store's goal kept"
        )


def _reserve_ids(con: duckdb.DuckDBPyConnection, target: Store) -> dict[str, int]:
    """The first local id of each experiment's added trials, from the ids file writers use."""
    first = {}
    for exp, n in con.execute(
        "SELECT experiment, count(*) FROM m_plan WHERE action = 'add' GROUP BY experiment"
    ).fetchall():
        first[exp] = target.counter.next_ids(exp, int(n))[0]
    return first


def _copy_objects(
    con: duckdb.DuckDBPyConnection, snapshot: Snapshot, target: Store, report: MergeReport
) -> None:
    """Copy the persisted outputs of the trials to add or update, before their rows are
    committed (a row that is visible always has its output; a merge killed after this leaves
    only content-addressed files no row names yet, which the rerun uses)."""
    rows = con.execute(
        f"SELECT DISTINCT s.object_hash, s.format FROM {_parquet(snapshot, 'persisted_record')} s "
        "JOIN m_plan p ON p.uuid = s.trial_uuid WHERE p.action IN ('add', 'update') "
        "AND s.object_hash IS NOT NULL"
    ).fetchall()
    for digest, fmt in rows:
        dest = object_path(target.objects_dir, digest, fmt)
        if dest.exists():
            continue
        if copy_object(object_path(snapshot.objects_dir, digest, fmt), dest, digest):
            report.objects_copied += 1
        else:
            report.objects_missing += 1
    _copy_artifacts(con, snapshot, target, report)
    if report.objects_missing:
        report.notes.append(
            f"{report.objects_missing} persisted output(s) missing or damaged in the source: "
            "their trials are merged, get_persisted says the output is gone"
        )


def _copy_artifacts(
    con: duckdb.DuckDBPyConnection, snapshot: Snapshot, target: Store, report: MergeReport
) -> None:
    """Copy the artifact blobs (a folder's manifest and files) of the trials to add or update."""
    if snapshot.artifacts_dir is None:
        return
    from tuixp.store.artifacts import ArtifactStore

    source = ArtifactStore(snapshot.artifacts_dir)
    here = StorePaths(target.path).artifacts
    blobs: set[str] = set()
    for kind, digest in con.execute(
        f"SELECT DISTINCT s.kind, s.hash FROM {_parquet(snapshot, 'artifact_record')} s "
        "JOIN m_plan p ON p.uuid = s.trial_uuid WHERE p.action IN ('add', 'update') "
        "AND s.hash IS NOT NULL"
    ).fetchall():
        blobs |= source.blobs_of(str(kind), str(digest))
    for digest in sorted(blobs):
        dest = artifact_blob(here, digest)
        if dest.exists():
            continue
        if copy_object(artifact_blob(snapshot.artifacts_dir, digest), dest, digest):
            report.objects_copied += 1
        else:
            report.objects_missing += 1


def _write(
    con: duckdb.DuckDBPyConnection, snapshot: Snapshot, first: dict[str, int], report: MergeReport
) -> None:
    """Every row of the plan, inside the caller's transaction."""
    if first:
        con.execute("CREATE OR REPLACE TEMP TABLE m_first (experiment VARCHAR, first_id INTEGER)")
        con.executemany("INSERT INTO m_first VALUES (?, ?)", [[e, i] for e, i in first.items()])
        con.execute(
            """
            UPDATE m_plan SET new_id = n.new_id FROM (
              SELECT p.uuid, (f.first_id + row_number() OVER (
                  PARTITION BY p.experiment ORDER BY p.started_at, p.src_id) - 1)::INTEGER AS new_id
              FROM m_plan p JOIN m_first f ON f.experiment = p.experiment
              WHERE p.action = 'add') n
            WHERE m_plan.uuid = n.uuid
            """
        )
    con.execute("UPDATE m_plan SET new_id = tgt_id WHERE action = 'update'")
    # The trials to add.
    cols, exprs = _insert_select(
        con,
        "trial_record",
        "m_src",
        {
            "trial_id": "p.new_id",
            "journal": "NULL",
            "origin_store": "p.o_store",
            "origin_trial_id": "p.o_id",
        },
    )
    con.execute(
        f"INSERT INTO trial_record ({cols}) SELECT {exprs} FROM m_src s "
        "JOIN m_plan p ON p.uuid = s.uuid WHERE p.action = 'add'"
    )
    # The trials to update: the source's record, this store's id, origin and journal.
    have = _parquet_columns(con, "m_src")
    sets = ", ".join(f'"{c}" = s."{c}"' for c in CONTENT_COLUMNS if c in have and c != "experiment")
    con.execute(
        f"UPDATE trial_record SET {sets} FROM m_src s JOIN m_plan p ON p.uuid = s.uuid "
        "WHERE p.action = 'update' AND trial_record.uuid = s.uuid"
    )
    # Their rows: an updated trial's replaced whole.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE m_map AS SELECT uuid, new_id FROM m_plan "
        "WHERE action IN ('add', 'update')"
    )
    # A reused step names the trial it reused by its id in the source: the same trial's id here.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE m_ids AS SELECT s.experiment, s.trial_id AS src_id, "
        "t.trial_id AS tgt_id FROM m_src s JOIN trial_record t ON t.uuid = s.uuid"
    )
    for t in _PER_TRIAL:
        con.execute(
            f"DELETE FROM {t.name} WHERE trial_uuid IN "
            "(SELECT uuid FROM m_plan WHERE action = 'update')"
        )
        source = _parquet(snapshot, t.name)
        overrides = {"trial_id": "m.new_id"}
        join = ""
        if t.name == "step_record" and "reused_from" in _parquet_columns(con, source):
            overrides["reused_from"] = "r.tgt_id"
            join = " LEFT JOIN m_ids r ON r.experiment = s.experiment AND r.src_id = s.reused_from"
            lost = con.execute(
                f"SELECT count(*) FROM {source} s JOIN m_map m ON m.uuid = s.trial_uuid{join} "
                "WHERE s.reused_from IS NOT NULL AND r.tgt_id IS NULL"
            ).fetchone()
            if lost and lost[0]:
                report.notes.append(
                    f"{lost[0]} reused step(s) name a trial the source did not send: their "
                    "reused_from is empty here"
                )
        cols, exprs = _insert_select(con, t.name, source, overrides)
        con.execute(
            f"INSERT INTO {t.name} ({cols}) SELECT {exprs} FROM {source} s "
            f"JOIN m_map m ON m.uuid = s.trial_uuid{join}"
        )
    # Their metric summaries, made here from the rows that came (a store's summaries are its
    # own bookkeeping: a bundle does not carry them).
    metric_summary.resummarize_selected(con, "SELECT uuid FROM m_map")
    # Their events (annotations): each once, by its own key, for every trial of the source.
    for t in _EVENTS:
        source = _parquet(snapshot, t.name)
        cols, exprs = _insert_select(con, t.name, source, {"trial_id": "r.trial_id"})
        match = " AND ".join(f'k."{c}" = s."{c}"' for c in t.key)
        con.execute(
            f"INSERT INTO {t.name} ({cols}) SELECT {exprs} FROM {source} s "
            f"JOIN trial_record r ON r.uuid = s.{t.trial} WHERE NOT EXISTS "
            f"(SELECT 1 FROM {t.name} k WHERE {match})"
        )
    # What the trials refer to: each row once, by its key.
    for t in _REFERRED:
        source = _parquet(snapshot, t.name)
        cols, exprs = _insert_select(con, t.name, source, {})
        match = " AND ".join(f'k."{c}" = s."{c}"' for c in t.key)
        con.execute(
            f"INSERT INTO {t.name} ({cols}) SELECT {exprs} FROM {source} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {t.name} k WHERE {match})"
        )
    source = _parquet(snapshot, "experiment_record")
    if "goal" in _parquet_columns(con, source):
        con.execute(
            f"UPDATE experiment_record SET goal = s.goal FROM {source} s "
            "WHERE experiment_record.name = s.name AND experiment_record.goal IS NULL "
            "AND s.goal IS NOT NULL"
        )
    for exp, lo, hi in con.execute(
        "SELECT experiment, min(new_id), max(new_id) FROM m_plan WHERE action = 'add' "
        "GROUP BY experiment"
    ).fetchall():
        e = report.experiments[exp]
        e.first_id, e.last_id = int(lo), int(hi)


def merge(
    source: Path,
    target: Store,
    *,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> MergeReport:
    """``tuixp merge SOURCE``: the store file or bundle at ``source`` into ``target``.

    A dry run into a store that does not exist yet plans against an empty store made in a
    temporary folder: it writes nothing where the target would be."""
    with open_source(source, target.path) as snapshot:
        if dry_run and not target.path.exists():
            import tempfile

            from tuixp.store.store import Store

            with tempfile.TemporaryDirectory(prefix="tuixp-merge-plan-") as tmp:
                report = merge_snapshot(
                    Store(Path(tmp) / "plan.duckdb"),
                    snapshot,
                    source_label=str(source),
                    dry_run=True,
                    progress=progress,
                )
            report.target = str(target.path)
            report.notes.append(f"{target.path} does not exist yet: the merge would create it")
            return report
        return merge_snapshot(
            target, snapshot, source_label=str(source), dry_run=dry_run, progress=progress
        )


def origin_label(host: str | None, origin_trial_id: int | None) -> str:
    """How a merged trial's origin is written next to its local id: ``gpu-box #12``."""
    return f"{host or '?'} #{origin_trial_id}"
