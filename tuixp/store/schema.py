"""The DuckDB schema of a tuixp store: every table's columns, the views, version, migrations.

``TABLE_COLUMNS`` is the one list of every table's columns: the DDL (``TABLES``) and what
ingest stages and checks (``COLUMNS``) are both derived from it. Tables hold what ingest
writes; the views are the public contract for SQL users (docs/schema.md). Views may gain
columns; they never lose or rename one. A migration is history: it spells out the columns it
adds or rebuilds as they were in its version, so editing the catalogue never changes what an
old migration does.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 8
STORE_MARK = "tuixp-store"

Column = tuple[str, str]  # (name, SQL type and column constraint)

# Schema 4: a metric value's type as it was saved ('int', 'float' or 'bool'; NULL in rows from
# before 4, read as whole number -> int), and an int's exact value (``value`` DOUBLE holds ints
# exactly only up to 2**53).
METRIC_TYPE_COLUMNS: tuple[Column, ...] = (("value_type", "VARCHAR"), ("value_int", "BIGINT"))
METRIC_VALUE_TYPES = ("int", "float", "bool")

# Every table's columns, in order, once. A new column goes here and into one migration; a new
# table here (created by TABLES) and into one migration (CREATE TABLE for existing stores).
TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    "tuixp_meta": (("key", "VARCHAR PRIMARY KEY"), ("value", "VARCHAR")),
    "blob": (("hash", "VARCHAR PRIMARY KEY"), ("text", "VARCHAR")),
    "experiment_record": (
        ("name", "VARCHAR PRIMARY KEY"),
        ("created_at", "TIMESTAMPTZ"),
        ("script", "VARCHAR"),
        ("goal", "VARCHAR"),
    ),
    "trial_record": (
        ("uuid", "VARCHAR PRIMARY KEY"),
        ("experiment", "VARCHAR NOT NULL"),
        ("trial_id", "INTEGER NOT NULL"),
        ("status", "VARCHAR NOT NULL"),
        ("started_at", "TIMESTAMPTZ"),
        ("finished_at", "TIMESTAMPTZ"),
        ("seed", "BIGINT"),
        ("params", "VARCHAR"),
        ("result", "VARCHAR"),
        ("result_type", "VARCHAR"),
        ("result_value", "DOUBLE"),
        ("error_type", "VARCHAR"),
        ("error_message", "VARCHAR"),
        ("traceback_hash", "VARCHAR"),
        ("host", "VARCHAR"),
        ("pid", "INTEGER"),
        ("journal", "VARCHAR"),
        ("script", "VARCHAR"),
        ("scheduler", "VARCHAR"),
        ("code_hash", "VARCHAR"),
        ("environment_hash", "VARCHAR"),
        ("packages_hash", "VARCHAR"),
        ("git_hash", "VARCHAR"),
        ("git_commit", "VARCHAR"),
        ("git_branch", "VARCHAR"),
        ("git_dirty", "BOOLEAN"),
        ("changes", "VARCHAR"),
        ("notes", "VARCHAR"),
        ("data_inputs", "VARCHAR"),
        # Schema 7 (sharing): where a merged trial was recorded (NULL for one recorded here).
        ("origin_store", "VARCHAR"),
        ("origin_trial_id", "INTEGER"),
    ),
    # Rows a trial has many of (KEYS below). They have no primary key: a key's index (an ART) on
    # millions of metric rows doubled the file and made every open and close of a million-trial
    # store cost ~50 ms more. Ingest keeps each key unique itself: a row written again replaces
    # the old one.
    "param_record": (
        ("trial_uuid", "VARCHAR"),
        ("experiment", "VARCHAR"),
        ("trial_id", "INTEGER"),
        ("name", "VARCHAR"),
        ("value", "VARCHAR"),
    ),
    "metric_record": (
        ("trial_uuid", "VARCHAR"),
        ("experiment", "VARCHAR"),
        ("trial_id", "INTEGER"),
        ("name", "VARCHAR"),
        ("epoch", "BIGINT"),
        ("value", "DOUBLE"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("seq", "BIGINT"),
        *METRIC_TYPE_COLUMNS,
    ),
    "step_record": (
        ("trial_uuid", "VARCHAR"),
        ("experiment", "VARCHAR"),
        ("trial_id", "INTEGER"),
        ("key", "VARCHAR"),
        ("step", "VARCHAR"),
        ("started_at", "TIMESTAMPTZ"),
        ("finished_at", "TIMESTAMPTZ"),
        ("status", "VARCHAR"),
        ("worker", "VARCHAR"),
        ("input_hash", "VARCHAR"),
        ("output_hash", "VARCHAR"),
        ("error", "VARCHAR"),
        ("reused_from", "INTEGER"),
    ),
    "persisted_record": (
        ("trial_uuid", "VARCHAR"),
        ("experiment", "VARCHAR"),
        ("trial_id", "INTEGER"),
        ("step", "VARCHAR"),
        ("object_hash", "VARCHAR"),
        ("format", "VARCHAR"),
        ("size", "BIGINT"),
    ),
    # Schema 5: the files and folders a step logged (``ex.log_artifact``), stored by hash in
    # ``NAME.artifacts/`` (tuixp.store.artifacts); logging a name again in a trial replaces it.
    "artifact_record": (
        ("trial_uuid", "VARCHAR"),
        ("experiment", "VARCHAR"),
        ("trial_id", "INTEGER"),
        ("name", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("hash", "VARCHAR"),
        ("size", "BIGINT"),
        ("files", "INTEGER"),
        ("step", "VARCHAR"),
        ("recorded_at", "TIMESTAMPTZ"),
    ),
    # Schema 6: annotations of trials (tuixp.store.annotation), one row an event, never updated:
    # a trial's note, name, tags, star and deletion are computed from them by the views below,
    # and a merge of two stores is a union of rows by ``uuid``.
    "annotation_record": (
        ("uuid", "VARCHAR PRIMARY KEY"),
        ("trial_uuid", "VARCHAR NOT NULL"),
        ("experiment", "VARCHAR"),
        ("trial_id", "INTEGER"),
        ("action", "VARCHAR NOT NULL"),
        ("value", "VARCHAR"),
        ("recorded_at", "TIMESTAMPTZ"),
        ("author", "VARCHAR"),
    ),
    "code_set": (
        ("hash", "VARCHAR"),
        ("ord", "INTEGER"),
        ("step", "VARCHAR"),
        ("source_hash", "VARCHAR"),
    ),
    "package_set": (("hash", "VARCHAR"), ("name", "VARCHAR"), ("version", "VARCHAR")),
    "journal_offset": (("file", "VARCHAR PRIMARY KEY"), ("offset", "BIGINT")),
    # Schema 7 (sharing, docs/sharing.md): the bundles this store merged, and the trials each
    # remote holds.
    "bundle_merged": (
        ("bundle_id", "VARCHAR PRIMARY KEY"),
        ("remote", "VARCHAR"),
        ("name", "VARCHAR"),
        ("store_uuid", "VARCHAR"),
        ("merged_at", "TIMESTAMPTZ"),
        ("trials", "INTEGER"),
    ),
    "remote_trial": (("remote", "VARCHAR"), ("trial_uuid", "VARCHAR"), ("status", "VARCHAR")),
    # Schema 8: per trial and metric, its summary (points, lowest and highest value with the
    # first epoch reaching each, the value at the last epoch), kept by ingest from metric_record
    # (summarize_metrics); NaN never counts as a lowest or highest. And each metric's goal
    # (Experiment.metric_goal).
    "metric_summary": (
        ("trial_uuid", "VARCHAR"),
        ("experiment", "VARCHAR"),
        ("trial_id", "INTEGER"),
        ("name", "VARCHAR"),
        ("points", "BIGINT"),
        ("min_value", "DOUBLE"),
        ("min_epoch", "BIGINT"),
        ("max_value", "DOUBLE"),
        ("max_epoch", "BIGINT"),
        ("last_value", "DOUBLE"),
        ("last_epoch", "BIGINT"),
    ),
    "metric_goal": (("experiment", "VARCHAR"), ("name", "VARCHAR"), ("goal", "VARCHAR")),
}
# Keys over several columns.
_TABLE_KEYS = {
    "code_set": "PRIMARY KEY (hash, ord)",
    "package_set": "PRIMARY KEY (hash, name)",
    "remote_trial": "PRIMARY KEY (remote, trial_uuid)",
    "metric_goal": "PRIMARY KEY (experiment, name)",
}
# The tables tuixp keeps for itself; ingest fills every other one from the journals.
# (metric_summary is summarised by SQL from metric_record, metric_goal written row by row.)
_BOOKKEEPING = (
    "tuixp_meta",
    "journal_offset",
    "bundle_merged",
    "remote_trial",
    "metric_summary",
    "metric_goal",
)
ARTIFACT_KINDS = ("file", "dir")


def metric_value(value: Any) -> tuple[float, str, int | None]:
    """A metric value as stored: ``(value as a float, its type, an int's exact value)``, its type
    one of METRIC_VALUE_TYPES. A bool (Python or NumPy) is 'bool', an integer (Python or NumPy)
    'int', any other number 'float'; a NumPy 0-d array or a one-element tensor is the number its
    ``.item()`` gives. ValueError for what is not a number and for an int beyond 64 bits."""
    import numbers
    import sys

    # A value cannot be a NumPy one unless NumPy is loaded: a run that saves plain floats does
    # not pay NumPy's import (~40 ms) for this check.
    np = sys.modules.get("numpy")
    generic = (np.generic,) if np is not None else ()
    if not isinstance(value, (bool, int, float, *generic)) and callable(
        getattr(value, "item", None)
    ):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"value must be a number, given: {type(value).__name__} ({exc})"
            ) from exc
    if isinstance(value, bool) or (np is not None and isinstance(value, np.bool_)):
        return float(value), "bool", None
    if isinstance(value, numbers.Integral):
        exact = int(value)
        if not -(1 << 63) <= exact < (1 << 63):
            raise ValueError(f"an integer value must fit in 64 bits (int64), given: {exact}")
        return float(exact), "int", exact
    try:
        return float(value), "float", None
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"value must be a number, given: {value!r} ({exc})") from exc


KEYS = {
    "param_record": ("trial_uuid", "name"),
    "metric_record": ("trial_uuid", "name", "epoch"),
    "step_record": ("trial_uuid", "key"),
    "persisted_record": ("trial_uuid", "step"),
    "artifact_record": ("trial_uuid", "name"),
}


def _ddl_columns(columns: tuple[Column, ...]) -> str:
    return ", ".join(f'"{name}" {typ}' for name, typ in columns)


PER_TRIAL_TABLES = {table: _ddl_columns(TABLE_COLUMNS[table]) for table in KEYS}

TABLES = "".join(
    f"CREATE TABLE IF NOT EXISTS {table} ("
    + ", ".join(filter(None, (_ddl_columns(columns), _TABLE_KEYS.get(table))))
    + ");\n"
    for table, columns in TABLE_COLUMNS.items()
) + ("CREATE INDEX IF NOT EXISTS trial_by_experiment ON trial_record (experiment, trial_id);\n")
# Schema 7: a store's identity, a UUID made when it is created (or migrated to 7).
STORE_IDENTITY = """
INSERT INTO tuixp_meta SELECT 'store_uuid', CAST(uuid() AS VARCHAR)
WHERE NOT EXISTS (SELECT 1 FROM tuixp_meta WHERE key = 'store_uuid');
"""
TABLES += STORE_IDENTITY

# How ingest stages a column of each SQL type: its Arrow type, and, for a time (journaled as
# seconds since the epoch), the SQL that turns the staged number into the column's value.
_ARROW_TYPES = {
    "VARCHAR": "string",
    "INTEGER": "int32",
    "BIGINT": "int64",
    "DOUBLE": "float64",
    "BOOLEAN": "bool",
    "TIMESTAMPTZ": "float64",
}
# The ingested tables' columns: (column, arrow type, SQL expression over the staged column).
COLUMNS: dict[str, list[tuple[str, str, str | None]]] = {
    table: [
        (
            name,
            _ARROW_TYPES[typ.split()[0]],
            f"to_timestamp({name})" if typ.split()[0] == "TIMESTAMPTZ" else None,
        )
        for name, typ in columns
    ]
    for table, columns in TABLE_COLUMNS.items()
    if table not in _BOOKKEEPING
}


def summarize_metrics(where: str = "") -> str:
    """The statement that summarises the metric rows ``where`` says (all without it)."""
    ok = "FILTER (WHERE NOT isnan(value))"
    return (
        "INSERT INTO metric_summary SELECT trial_uuid, any_value(experiment), "
        f"any_value(trial_id), name, count(*), min(value) {ok}, "
        f"arg_min(epoch, (value, epoch)) {ok}, max(value) {ok}, "
        f"arg_min(epoch, (-value, epoch)) {ok}, arg_max(value, epoch), max(epoch) "
        f"FROM metric_record {where} GROUP BY trial_uuid, name;"
    )


VIEWS = """
CREATE OR REPLACE VIEW trial_annotation AS
SELECT a.trial_uuid,
       nullif(arg_max(a.value, (a.recorded_at, a.uuid)) FILTER (WHERE a.action = 'name'), '')
           AS name,
       nullif(arg_max(a.value, (a.recorded_at, a.uuid)) FILTER (WHERE a.action = 'note'), '')
           AS note,
       coalesce(any_value(g.tags), []::VARCHAR[]) AS tags,
       coalesce(arg_max(a.action, (a.recorded_at, a.uuid))
                    FILTER (WHERE a.action IN ('star', 'unstar')) = 'star', false) AS starred,
       CASE WHEN arg_max(a.action, (a.recorded_at, a.uuid))
                     FILTER (WHERE a.action IN ('delete', 'restore')) = 'delete'
            THEN max(a.recorded_at) FILTER (WHERE a.action = 'delete') END AS deleted_at
FROM annotation_record a LEFT JOIN (
    SELECT trial_uuid, list(tag ORDER BY tag) FILTER (WHERE last = 'tag') AS tags
    FROM (SELECT trial_uuid, value AS tag, arg_max(action, (recorded_at, uuid)) AS last
          FROM annotation_record WHERE action IN ('tag', 'untag') GROUP BY trial_uuid, value)
    GROUP BY trial_uuid
) g ON g.trial_uuid = a.trial_uuid
GROUP BY a.trial_uuid;
CREATE OR REPLACE VIEW trials_all AS
SELECT t.experiment, t.trial_id, t.status, t.started_at, t.finished_at,
       epoch(t.finished_at) - epoch(t.started_at) AS elapsed_s,
       t.seed, CAST(t.result AS JSON) AS result, t.result_type, t.result_value,
       CASE WHEN t.error_type IS NULL THEN NULL ELSE t.error_type || ': ' || t.error_message END
           AS error,
       CAST(t.params AS JSON) AS params, t.host, t.pid, t.script, t.scheduler,
       t.git_commit, t.git_branch, t.git_dirty,
       t.code_hash, t.environment_hash, t.packages_hash, t.git_hash,
       CAST(t.changes AS JSON) AS changes, t.uuid, CAST(t.data_inputs AS JSON) AS data_inputs,
       a.name, a.note, coalesce(a.tags, []::VARCHAR[]) AS tags,
       coalesce(a.starred, false) AS starred, a.deleted_at,
       coalesce(t.origin_store, (SELECT value FROM tuixp_meta WHERE key = 'store_uuid'))
           AS origin_store,
       coalesce(t.origin_trial_id, t.trial_id) AS origin_trial_id,
       CASE WHEN t.origin_store IS NULL THEN NULL
            ELSE coalesce(t.host, '?') || ' #' || t.origin_trial_id END AS origin
FROM trial_record t LEFT JOIN trial_annotation a ON a.trial_uuid = t.uuid;
CREATE OR REPLACE VIEW trials AS SELECT * FROM trials_all WHERE deleted_at IS NULL;
CREATE OR REPLACE VIEW annotations AS
SELECT t.experiment, t.trial_id, a.recorded_at, a.author, a.action, a.value, a.uuid,
       a.trial_uuid
FROM annotation_record a JOIN trial_record t ON t.uuid = a.trial_uuid;
CREATE OR REPLACE VIEW params AS
SELECT experiment, trial_id, name, CAST(value AS JSON) AS value FROM param_record;
CREATE OR REPLACE VIEW metrics AS
SELECT experiment, trial_id, name, epoch, value, recorded_at, value_type, value_int
FROM metric_record;
CREATE OR REPLACE VIEW steps AS
SELECT experiment, trial_id, key, step, started_at, finished_at,
       epoch(finished_at) - epoch(started_at) AS elapsed_s, status, worker,
       input_hash, output_hash, error, reused_from
FROM step_record;
CREATE OR REPLACE VIEW environments AS
SELECT t.experiment, t.trial_id, t.environment_hash, CAST(e.text AS JSON) AS environment,
       t.git_hash, CAST(g.text AS JSON) AS git
FROM trial_record t LEFT JOIN blob e ON e.hash = t.environment_hash
LEFT JOIN blob g ON g.hash = t.git_hash;
CREATE OR REPLACE VIEW packages AS
SELECT t.experiment, t.trial_id, p.name, p.version
FROM trial_record t JOIN package_set p ON p.hash = t.packages_hash;
CREATE OR REPLACE VIEW code AS
SELECT t.experiment, t.trial_id, c.ord, c.step, c.source_hash, b.text AS source
FROM trial_record t JOIN code_set c ON c.hash = t.code_hash
LEFT JOIN blob b ON b.hash = c.source_hash;
CREATE OR REPLACE VIEW persisted AS
SELECT experiment, trial_id, step, object_hash, format, size FROM persisted_record;
CREATE OR REPLACE VIEW experiments AS
SELECT name AS experiment, created_at, script, goal FROM experiment_record;
CREATE OR REPLACE VIEW artifacts AS
SELECT experiment, trial_id, name, kind, hash, size, files, step, recorded_at
FROM artifact_record;
CREATE OR REPLACE VIEW metric_best AS
SELECT s.experiment, s.trial_id, s.name, coalesce(g.goal, e.goal, 'min') AS goal,
       CASE coalesce(g.goal, e.goal, 'min') WHEN 'max' THEN s.max_value ELSE s.min_value END
           AS best,
       CASE coalesce(g.goal, e.goal, 'min') WHEN 'max' THEN s.max_epoch ELSE s.min_epoch END
           AS best_epoch,
       s.min_value AS "min", s.min_epoch, s.max_value AS "max", s.max_epoch,
       s.last_value AS "last", s.last_epoch, s.points
FROM metric_summary s
LEFT JOIN metric_goal g ON g.experiment = s.experiment AND g.name = s.name
LEFT JOIN experiment_record e ON e.name = s.experiment
WHERE s.name NOT LIKE 'sys/%';
"""

# Schema 3's per-trial tables, as MIGRATIONS[2] rebuilt them (frozen: history, not the catalogue).
_V3_PER_TRIAL_TABLES = {
    "param_record": """
    trial_uuid VARCHAR, experiment VARCHAR, trial_id INTEGER, name VARCHAR, value VARCHAR""",
    "metric_record": """
    trial_uuid VARCHAR, experiment VARCHAR, trial_id INTEGER, name VARCHAR, epoch BIGINT,
    value DOUBLE, recorded_at TIMESTAMPTZ, seq BIGINT""",
    "step_record": """
    trial_uuid VARCHAR, experiment VARCHAR, trial_id INTEGER, key VARCHAR, step VARCHAR,
    started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status VARCHAR, worker VARCHAR,
    input_hash VARCHAR, output_hash VARCHAR, error VARCHAR, reused_from INTEGER""",
    "persisted_record": """
    trial_uuid VARCHAR, experiment VARCHAR, trial_id INTEGER, step VARCHAR, object_hash VARCHAR,
    format VARCHAR, size BIGINT""",
}
# Schema 4's metric columns, as MIGRATIONS[3] added them.
_V4_METRIC_COLUMNS = (("value_type", "VARCHAR"), ("value_int", "BIGINT"))


def _per_trial(tables: dict[str, str], prefix: str = "", suffix: str = "") -> str:
    return "".join(
        f"CREATE TABLE {prefix}{name}{suffix} ({cols}\n);\n" for name, cols in tables.items()
    )


def _column_names(cols: str) -> str:
    return ", ".join(c.split()[0] for c in cols.split(","))


# The views VIEWS creates: the public contract (docs/schema.md).
PUBLIC_VIEWS = (
    "trials",
    "params",
    "metrics",
    "steps",
    "environments",
    "packages",
    "code",
    "persisted",
    "experiments",
    "artifacts",
    "trials_all",
    "annotations",
    "metric_best",
)

# Forward migrations: MIGRATIONS[n] takes a store at version n to n + 1.
# Views and indexes depend on their tables, and DuckDB refuses to alter a table that has
# dependents: drop them first (the views are recreated after every migration).
_DROP_VIEWS = "".join(f"DROP VIEW IF EXISTS {v};" for v in (*PUBLIC_VIEWS, "trial_annotation"))
# The tables later migrations add, as they added them (frozen: history, not the catalogue).
_V5_ARTIFACT_TABLE = {
    "artifact_record": """
    trial_uuid VARCHAR, experiment VARCHAR, trial_id INTEGER, name VARCHAR, kind VARCHAR,
    hash VARCHAR, size BIGINT, files INTEGER, step VARCHAR, recorded_at TIMESTAMPTZ""",
}
_V6_ANNOTATION_TABLE = """
CREATE TABLE IF NOT EXISTS annotation_record (
    uuid VARCHAR PRIMARY KEY,
    trial_uuid VARCHAR NOT NULL,
    experiment VARCHAR,
    trial_id INTEGER,
    action VARCHAR NOT NULL,
    value VARCHAR,
    recorded_at TIMESTAMPTZ,
    author VARCHAR
);
"""
_V8_METRIC_SUMMARY_TABLES = """
CREATE TABLE IF NOT EXISTS metric_summary (
    trial_uuid VARCHAR, experiment VARCHAR, trial_id INTEGER, name VARCHAR, points BIGINT,
    min_value DOUBLE, min_epoch BIGINT, max_value DOUBLE, max_epoch BIGINT,
    last_value DOUBLE, last_epoch BIGINT
);
CREATE TABLE IF NOT EXISTS metric_goal (
    experiment VARCHAR, name VARCHAR, goal VARCHAR, PRIMARY KEY (experiment, name)
);
"""
_V7_SHARING_TABLES = """
CREATE TABLE IF NOT EXISTS bundle_merged (
    bundle_id VARCHAR PRIMARY KEY, remote VARCHAR, name VARCHAR, store_uuid VARCHAR,
    merged_at TIMESTAMPTZ, trials INTEGER
);
CREATE TABLE IF NOT EXISTS remote_trial (
    remote VARCHAR, trial_uuid VARCHAR, status VARCHAR, PRIMARY KEY (remote, trial_uuid)
);
"""
MIGRATIONS: dict[int, str] = {
    # 2: data inputs declared with Experiment.data_file, {path: content hash} per trial.
    1: _DROP_VIEWS
    + """
        DROP INDEX IF EXISTS trial_by_experiment;
        ALTER TABLE trial_record ADD COLUMN data_inputs VARCHAR;
        CREATE INDEX trial_by_experiment ON trial_record (experiment, trial_id);
    """,
    # 3: the per-trial tables lose their primary keys (see TABLE_COLUMNS): copied into
    # keyless tables in their order (zone maps on trial_id stay useful), then renamed. And an
    # experiment says whether its best result is the lowest or the highest (Experiment(goal=)).
    2: _DROP_VIEWS
    + "ALTER TABLE experiment_record ADD COLUMN goal VARCHAR;"
    + _per_trial(_V3_PER_TRIAL_TABLES, suffix="_v3")
    + "".join(
        f"INSERT INTO {t}_v3 SELECT {_column_names(cols)} FROM {t}; DROP TABLE {t}; "
        f"ALTER TABLE {t}_v3 RENAME TO {t};"
        for t, cols in _V3_PER_TRIAL_TABLES.items()
    ),
    # 4: a metric value's saved type and an int's exact value (METRIC_TYPE_COLUMNS); rows saved
    # before keep NULL there and load as they did (whole numbers as int64).
    3: _DROP_VIEWS
    + "".join(
        f"ALTER TABLE metric_record ADD COLUMN {name} {typ};" for name, typ in _V4_METRIC_COLUMNS
    ),
    # 5: the artifacts a step logged and their view.
    4: _per_trial(_V5_ARTIFACT_TABLE, "IF NOT EXISTS "),
    # 6: annotations (notes, names, tags, stars, deletions) as events; the trials view gains
    # name, note, tags, starred, deleted_at and leaves deleted trials out (trials_all keeps them).
    5: _DROP_VIEWS + _V6_ANNOTATION_TABLE,
    # 7: sharing (docs/sharing.md): the store's identity (STORE_IDENTITY), each trial's origin,
    # the bundles merged and what each remote holds.
    6: _DROP_VIEWS
    + """
        DROP INDEX IF EXISTS trial_by_experiment;
        ALTER TABLE trial_record ADD COLUMN IF NOT EXISTS origin_store VARCHAR;
        ALTER TABLE trial_record ADD COLUMN IF NOT EXISTS origin_trial_id INTEGER;
        CREATE INDEX trial_by_experiment ON trial_record (experiment, trial_id);
    """
    + _V7_SHARING_TABLES
    + STORE_IDENTITY,
    # 8: each trial's metric summary (best, lowest, highest, last) and the metrics' goals,
    # summarised from the rows already stored.
    7: _DROP_VIEWS
    + _V8_METRIC_SUMMARY_TABLES
    + "DELETE FROM metric_summary;"
    + summarize_metrics(),
}
