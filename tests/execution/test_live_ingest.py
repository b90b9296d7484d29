"""A run that logs many metric points has them ingested while it runs and at its end
(``Store.metric_points_journaled``, ``Store.catch_up``): the first read after it does not pay
for them, and a reader sees a long trial's points as they come."""

from __future__ import annotations

import time
from pathlib import Path

import numpy  # noqa: F401 - imported before the trial, as a training script does

import tuixp
from tuixp.store import store as store_mod

STEPS = 60_000  # x 4 metrics: more points than LIVE_INGEST_POINTS


def _points_in_database(ex: tuixp.Experiment) -> int:
    """Metric rows in the database file (read only: no ingest, what is stored now)."""
    if not ex.store.path.exists():
        return 0
    with ex.store.connect(read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM metric_record").fetchone()[0])


def test_points_are_ingested_while_the_trial_runs_and_all_of_them_at_its_end(
    store_path: Path,
) -> None:
    assert store_mod.LIVE_INGEST_POINTS <= 4 * STEPS
    ex = tuixp.Experiment("live", store=store_path)
    seen_while_running: list[int] = []

    @ex.result
    def train():
        for i in range(STEPS):
            ex.log_metrics({"loss": 1 / (i + 1), "acc": i, "a": 0.5, "b": 1.5}, epoch=i)
        deadline = time.monotonic() + 30  # the flusher (0.5 s) then the background ingest
        while time.monotonic() < deadline:
            stored = _points_in_database(ex)
            if stored >= store_mod.LIVE_INGEST_POINTS:
                break
            time.sleep(0.1)
        seen_while_running.append(stored)
        for i in range(STEPS, STEPS + 20_000):  # more after that: caught up at the run's end
            ex.log_metrics({"loss": 1 / (i + 1), "acc": i, "a": 0.5, "b": 1.5}, epoch=i)
        return 1.0

    train().compute()
    assert seen_while_running and seen_while_running[0] >= store_mod.LIVE_INGEST_POINTS
    assert _points_in_database(ex) == 4 * (STEPS + 20_000)  # no reader ingested them
    loss = ex.load_metric("loss", 1)
    assert len(loss) == STEPS + 20_000 and loss[1].iloc[-1] == 1 / (STEPS + 20_000)
    with ex.store.connect() as con:
        assert con.execute(
            "SELECT points, last_epoch FROM metric_summary WHERE name = 'acc'"
        ).fetchall() == [(STEPS + 20_000, STEPS + 20_000 - 1)]
        assert con.execute("SELECT status FROM trials").fetchall() == [("succeeded",)]


def test_without_numpy_imported_the_points_wait_for_the_end_of_the_run(tmp_path: Path) -> None:
    """Ingesting imports NumPy; from the background thread while a step runs, that import would
    escape the step's seeding. A fresh process that never imported NumPy: no live ingest, no
    seeding warning, every point stored when ``compute()`` returns."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys, time
        import tuixp
        ex = tuixp.Experiment("live", store={str(tmp_path / "s.duckdb")!r})
        stored_while_running = []
        @ex.result
        def train():
            for i in range({STEPS}):
                ex.log_metrics({{"loss": 1 / (i + 1), "a": 0.5, "b": 1.5, "c": 2.5}}, epoch=i)
            time.sleep(1.5)  # the flusher journals them; nothing may ingest them now
            stored_while_running.append("numpy" in sys.modules)
            return 1.0
        train().compute()
        assert stored_while_running == [False], "NumPy was imported while the step ran"
        with ex.store.connect(read_only=True) as con:  # no ingest: what is stored
            print(con.execute("SELECT count(*) FROM metric_record").fetchone()[0])
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "could not seed" not in done.stderr
    assert done.stdout.split() == [str(4 * STEPS)]
