"""The per-trial tables have no key constraint (schema 3): ingest keeps each key unique itself.

A metric saved again at the same epoch, a step whose start and end reach the store in two
ingests, a journal read twice: each leaves one row, the last written. And a schema 2 store (with
the keys) is migrated, its rows kept in order.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import tuixp
from tuixp.store import Store, schema
from tuixp.store.ingest import insert_rows

# The views as schema 2 made them: all but the experiments view (new in 3).
# The public views as schema 2 created them (tuixp/store/schema.py at 8d5aa38): an old store has
# these, and the migrations must drop them before altering the tables they read.
SCHEMA_2_VIEWS = """
CREATE OR REPLACE VIEW trials AS
SELECT experiment, trial_id, status, started_at, finished_at,
       epoch(finished_at) - epoch(started_at) AS elapsed_s,
       seed, CAST(result AS JSON) AS result, result_type, result_value,
       CASE WHEN error_type IS NULL THEN NULL ELSE error_type || ': ' || error_message END AS error,
       CAST(params AS JSON) AS params, host, pid, script, scheduler,
       git_commit, git_branch, git_dirty,
       code_hash, environment_hash, packages_hash, git_hash,
       CAST(changes AS JSON) AS changes, uuid, CAST(data_inputs AS JSON) AS data_inputs
FROM trial_record;
CREATE OR REPLACE VIEW params AS
SELECT experiment, trial_id, name, CAST(value AS JSON) AS value FROM param_record;
CREATE OR REPLACE VIEW metrics AS
SELECT experiment, trial_id, name, epoch, value, recorded_at FROM metric_record;
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
"""
# The per-trial tables as schema 2 wrote them: with primary keys.
V2_TABLES = {
    "param_record": "PRIMARY KEY (trial_uuid, name)",
    "metric_record": "PRIMARY KEY (trial_uuid, name, epoch)",
    "step_record": "PRIMARY KEY (trial_uuid, key)",
    "persisted_record": "PRIMARY KEY (trial_uuid, step)",
}


def _rows(store: Path, sql: str) -> list[tuple]:
    with Store(store).connect() as con:
        return con.execute(sql).fetchall()


@contextlib.contextmanager
def _raw(store_path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A plain DuckDB connection, held while this process's own Store keeps off the file: the
    background ingest of the trials this test recorded takes the same per-store guard, and
    within one process DuckDB refuses a connection whose configuration differs from one that
    is open."""
    with Store(store_path)._guard:
        con = duckdb.connect(
            str(store_path), read_only=read_only, config={"default_block_size": "16384"}
        )
        try:
            yield con
        finally:
            con.close()


def test_metric_saved_again_after_an_ingest_keeps_the_last_value(store_path: Path) -> None:
    ex = tuixp.Experiment("keys", store=store_path)
    saved = threading.Event()
    go_on = threading.Event()

    @ex.result
    def train():
        ex.save_metric("loss", epoch=0, value=1.0)
        ex.save_metric("loss", epoch=1, value=0.5)
        saved.set()
        assert go_on.wait(30)
        ex.save_metric("loss", epoch=1, value=0.25)  # the same epoch again, in a later ingest
        ex.save_metric("loss", epoch=2, value=0.125)
        return 0

    worker = threading.Thread(target=lambda: train().compute(scheduler="threads"))
    worker.start()
    assert saved.wait(30)
    # An ingest takes the first two values (and the running step) into the database, once the
    # metric buffer's flusher has journaled them (every half second; waited for 20 s at most).
    deadline = time.monotonic() + 20
    rows = []
    while time.monotonic() < deadline:
        rows = _rows(store_path, "SELECT epoch, value FROM metrics ORDER BY epoch")
        if rows:
            break
        time.sleep(0.1)
    assert rows == [(0, 1.0), (1, 0.5)]
    go_on.set()
    worker.join(60)
    assert not worker.is_alive()
    assert _rows(store_path, "SELECT epoch, value FROM metrics ORDER BY epoch") == [
        (0, 1.0),
        (1, 0.25),
        (2, 0.125),
    ]
    # The step's start and its end came in two ingests: one row, finished.
    assert _rows(store_path, "SELECT step, status FROM steps") == [("train", "succeeded")]


def test_a_batch_written_twice_leaves_one_row_per_key(store_path: Path) -> None:
    ex = tuixp.Experiment("keys", store=store_path)
    ex.result(lambda: 1)
    ex._steps["<lambda>"]().compute()
    store = Store(store_path)
    with store.connect() as con:
        uuid, tid = con.execute("SELECT uuid, trial_id FROM trial_record").fetchall()[0]
        metric = {
            "trial_uuid": uuid,
            "experiment": "keys",
            "trial_id": tid,
            "name": "acc",
            "epoch": 0,
            "value": 0.5,
            "recorded_at": 0.0,
            "seq": 1,
        }
        param = {
            "trial_uuid": uuid,
            "experiment": "keys",
            "trial_id": tid,
            "name": "lr",
            "value": "0.1",
        }
        for value in (0.5, 0.75):
            insert_rows(con, "metric_record", [{**metric, "value": value}], conflict="REPLACE")
            insert_rows(con, "param_record", [param])  # IGNORE: the first one stays
        insert_rows(con, "param_record", [{**param, "value": "0.2"}])
        assert con.execute("SELECT value FROM metric_record WHERE name = 'acc'").fetchall() == [
            (0.75,)
        ]
        assert con.execute("SELECT value FROM param_record WHERE name = 'lr'").fetchall() == [
            ("0.1",)
        ]
        # A row without a trial id (an old journal line) still replaces, scanning everything.
        insert_rows(
            con, "metric_record", [{**metric, "trial_id": None, "value": 0.9}], conflict="REPLACE"
        )
        assert con.execute("SELECT value FROM metric_record WHERE name = 'acc'").fetchall() == [
            (0.9,)
        ]


def _to_schema_2(store_path: Path) -> None:
    """Rebuild the per-trial tables with schema 2's primary keys and mark the store version 2."""
    with _raw(store_path) as con:
        con.execute(schema._DROP_VIEWS)
        con.execute("ALTER TABLE experiment_record DROP COLUMN goal")
        for table, key in V2_TABLES.items():
            cols = schema.PER_TRIAL_TABLES[table]
            con.execute(f"CREATE TABLE {table}_old ({cols}, {key})")
            con.execute(f"INSERT INTO {table}_old SELECT * FROM {table}")
            con.execute(f"DROP TABLE {table}")
            con.execute(f"ALTER TABLE {table}_old RENAME TO {table}")
        con.execute(SCHEMA_2_VIEWS)
        con.execute("UPDATE tuixp_meta SET value = '2' WHERE key = 'schema_version'")


def _keys(store_path: Path) -> set[str]:
    with _raw(store_path, read_only=True) as con:
        return {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
            ).fetchall()
        }


def test_schema_2_store_is_migrated_to_keyless_tables(store_path: Path) -> None:
    ex = tuixp.Experiment("old", store=store_path)
    lr = ex.parameter("lr")

    @ex.result
    def fit(lr):
        for epoch in range(3):
            ex.save_metric("loss", epoch=epoch, value=lr / (epoch + 1))
        return lr * 2

    for value in (0.1, 0.2):
        ex.set_parameters(lr=value)
        fit(lr).compute()
    views = (
        "SELECT trial_id, name, epoch, value FROM metrics ORDER BY ALL",
        "SELECT trial_id, name, value FROM params ORDER BY ALL",
        "SELECT trial_id, step, status FROM steps ORDER BY ALL",
    )
    before = [_rows(store_path, sql) for sql in views]
    # The downgrade and its check under one hold of the store's guard: this process's
    # background ingest (due 0.5 s after each trial) would otherwise migrate the store back
    # in between.
    with Store(store_path)._guard:
        _to_schema_2(store_path)
        assert set(V2_TABLES) <= _keys(store_path)
    with Store(store_path).connect() as con:
        assert con.execute(
            "SELECT value FROM tuixp_meta WHERE key = 'schema_version'"
        ).fetchall() == [(str(schema.SCHEMA_VERSION),)]
    assert not set(V2_TABLES) & _keys(store_path)
    assert _rows(store_path, "SELECT experiment, goal FROM experiments") == [("old", None)]
    assert "trial_record" in _keys(store_path)
    assert [_rows(store_path, sql) for sql in views] == before
    # The migrated store records on as before.
    ex.set_parameters(lr=0.4)
    assert fit(lr).compute() == pytest.approx(0.8)
    assert _rows(store_path, "SELECT count(*) FROM metrics WHERE trial_id = 3") == [(3,)]
