"""Live: other processes add, run and finish trials while the TUI is open; a busy or missing store.

Each waits with a bounded poll for what a person would see, without pressing a key.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.tui.conftest import env_for_subprocess
from tests.tui.helpers import loaded, wait_for
from tuixp.store import synthetic
from tuixp.store.window import TrialQuery
from tuixp.tui.app import create_app
from tuixp.tui.data import StoreReader

WRITER = textwrap.dedent("""
    import os, sys, time
    import tuixp

    store, gate = sys.argv[1], sys.argv[2]
    ex = tuixp.Experiment("regression", store=store)
    lr = ex.parameter("lr")

    @ex.result
    def wait_then_score(lr):
        deadline = time.time() + 60
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.05)
        return lr * 2

    s = wait_then_score(lr)
    s.compute(lr=0.25)            # runs until the test opens the gate
    s.compute_grid(lr=[0.5, 0.75])
""")


@pytest.mark.slow
async def test_trials_from_another_process_appear_and_finish(
    real_store: Path, tmp_path: Path
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    gate = tmp_path / "gate"
    app = create_app(real_store, poll_interval=0.5)
    async with app.run_test(size=(180, 30)) as pilot:  # wide: the elapsed column is on screen
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        table = app.browse.table
        proc = subprocess.Popen(
            [sys.executable, str(script), str(real_store), str(gate)],
            env=env_for_subprocess(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            # The running trial shows by itself, as running, with its parameters.
            await wait_for(
                pilot,
                lambda: (
                    table.total == 11
                    and table.rows.get(0) is not None
                    and table.rows[0].status == "running"
                ),
                timeout=30,
                what="trial 11 to show as running",
            )
            row = table.rows[0]
            assert row.trial_id == 11 and row.params == {"lr": 0.25}
            # Its elapsed time ticks on screen by itself: the drawn screen changes, no key sent.
            before = app.export_screenshot()
            await wait_for(
                pilot,
                lambda: app.export_screenshot() != before,
                timeout=10,
                what="the running trial's elapsed time to tick",
            )
            gate.write_text("go")
            await wait_for(
                pilot,
                lambda: (
                    table.total == 13
                    and all(
                        table.rows.get(i) is not None and table.rows[i].status == "succeeded"
                        for i in range(3)
                    )
                ),
                timeout=30,
                what="trials 11-13 to finish",
            )
            assert [table.rows[i].trial_id for i in range(3)] == [13, 12, 11]
            assert table.rows[2].result_value == 0.5
            assert proc.wait(timeout=30) == 0, proc.stdout.read() if proc.stdout else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    open(sys.argv[2], "w").write("held")
    time.sleep(60)
""")


@pytest.mark.slow
async def test_busy_store_is_shown_and_recovers(real_store: Path, tmp_path: Path) -> None:
    flag = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(real_store), str(flag)], env=env_for_subprocess()
    )
    try:
        deadline = time.monotonic() + 20
        while not flag.exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), "the holder process never took the store"
        app = create_app(real_store, poll_interval=0.3, connect_timeout=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(
                pilot,
                lambda: "held by another process" in app.browse.status.problem,
                timeout=10,
                what="the busy message",
            )
            assert app.browse.table.total == 0
            # The real bound, not "gave up after 0 s" (0.2 s printed without decimals).
            assert "gave up after 0.2 s" in app.browse.status.problem
            holder.kill()
            holder.wait()
            await loaded(pilot, total=3)
            await wait_for(pilot, lambda: app.browse.status.problem == "", what="recovery")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


async def test_missing_store_waits_without_creating_it(tmp_path: Path) -> None:
    path = tmp_path / "later.duckdb"
    app = create_app(path, poll_interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(
            pilot,
            lambda: "No tuixp store" in app.browse.status.problem,
            what="the missing-store message",
        )
        assert not path.exists()
        synthetic.generate(path, 25, experiment="later")
        await loaded(pilot, total=25)
        assert app.experiment == "later"


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    import tuixp

    ex = tuixp.Experiment("orphans", store=sys.argv[1])
    x = ex.parameter("x")

    @ex.result
    def double(x):
        return 2 * x

    double(x).compute_grid(x=[1, 2, 3])
    os.kill(os.getpid(), signal.SIGKILL)  # dies before any ingest: only the journal holds them
""")


async def test_trials_only_in_a_dead_writers_journal_are_shown(tmp_path: Path) -> None:
    """A writer killed before its first ingest leaves journals and no database: the TUI creates
    the store from them instead of saying there is none."""
    path = tmp_path / "orphans.duckdb"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path)],
        env=env_for_subprocess(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr
    assert not path.exists() and any(path.with_name(path.name + ".journal").iterdir())
    app = create_app(path, poll_interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, total=3)
        assert app.experiment == "orphans"
        assert [r.result_value for r in app.browse.table.visible_rows()] == [6, 4, 2]


SLEEPER = textwrap.dedent("""
    import sys, time
    import tuixp

    ex = tuixp.Experiment("sleepy", store=sys.argv[1])

    @ex.result
    def nap():
        print("started", flush=True)
        time.sleep(120)
        return 1

    nap().compute()
""")


def _poll_until_settled(reader: StoreReader, query: TrialQuery, known: tuple) -> int:
    """Polls (as the app makes them, its summary built between them) until one reads nothing;
    how many read the store."""
    reads = 0
    for _ in range(50):
        assert reader.build_summary(query.experiment)
        snap = reader.snapshot(query, 0, 40, known)
        if snap is None:
            return reads
        reads += 1
        known = snap.fingerprint
    raise AssertionError("every poll read the store: it never settled")


@pytest.mark.slow
def test_polls_skip_the_database_until_a_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    synthetic.generate(path, 500, experiment="search")
    reader = StoreReader(path)
    query = TrialQuery("search")
    first = reader.snapshot(query, 0, 40)
    assert first is not None and first.trials is not None and first.trials.total == 500
    # Once the summary is built, and with nothing written, no poll opens the database.
    _poll_until_settled(reader, query, first.fingerprint)
    skipped = reader.polls_skipped
    assert reader.snapshot(query, 0, 40, first.fingerprint) is None
    assert reader.polls_skipped == skipped + 1
    # Another process starts a trial: its journal is new, so the next poll reads it.
    proc = subprocess.Popen(
        [sys.executable, "-c", SLEEPER, str(path)],
        env=env_for_subprocess(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        snap = reader.snapshot(TrialQuery("sleepy"), 0, 40, first.fingerprint)
        assert snap is not None and snap.trials is not None
        assert [(r.trial_id, r.status) for r in snap.trials.rows] == [(1, "running")]
        _poll_until_settled(reader, TrialQuery("sleepy"), snap.fingerprint)
        # Killed: its journal does not change, but its lock is gone; the poll reads again
        # and the trial shows as interrupted.
        proc.kill()
        proc.wait()
        snap = reader.snapshot(TrialQuery("sleepy"), 0, 40, snap.fingerprint)
        assert snap is not None and snap.trials is not None
        assert [(r.trial_id, r.status) for r in snap.trials.rows] == [(1, "interrupted")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
