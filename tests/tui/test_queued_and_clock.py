"""Queued is not running, and elapsed time counts from the first step (issue 15 item 10); a wall
clock that jumps back never gives a negative elapsed time (issue 14 item 9).

Real ``tuixp run`` processes: a grid of three trials on one scheduler thread, whose first trial
to start holds the thread until the test lets it go, is watched from other processes (``tuixp ls``,
``tuixp show``) and from the TUI while the others wait; and a trial whose step sets the
process's wall clock back an hour.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli_subprocess import tuixp
from tests.conftest import env_with_path
from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded
from tuixp.store import sql as store_sql
from tuixp.tui.app import create_app

QUEUE = textwrap.dedent("""
    import os
    import time

    import tuixp

    ex = tuixp.Experiment("queue")
    n = ex.parameter("n")
    gate = ex.parameter("gate")


    @ex.result
    def work(n, gate):
        # The first trial to start holds the only thread until the test creates the gate.
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        return n


    s = work(n, gate)
""")

JUMP = textwrap.dedent("""
    import time

    import tuixp

    ex = tuixp.Experiment("jump")


    @ex
    def first():
        return 1


    @ex.result
    def jumps(x):
        real = time.time
        time.time = lambda: real() - 3600  # the wall clock is set back an hour mid-step
        return x


    s = jumps(first())
""")


def _ls(store: Path, experiment: str) -> list[dict[str, Any]]:
    done = tuixp("ls", experiment, "-f", "json", "--store", store)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def _wait(what: str, condition: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what} after {timeout} s")


@pytest.mark.slow
async def test_queued_trials_are_shown_queued_and_timed_from_their_first_step(
    tmp_path: Path,
) -> None:
    script, store, gate = tmp_path / "queue.py", tmp_path / "q.duckdb", tmp_path / "gate"
    script.write_text(QUEUE)
    env = {**env_with_path(), "DASK_NUM_WORKERS": "1"}
    # A first trial creates the store (readers see a new store once its writer made it).
    (tmp_path / "open").write_text("")
    first = tuixp("run", script, "n=0", f"gate={tmp_path / 'open'}", "--store", store)
    assert first.returncode == 0, first.stderr
    run = subprocess.Popen(
        [sys.executable, "-m", "tuixp", "run", str(script), "--grid", "n=1,2,3"]
        + [f"gate={gate}", "--store", str(store), "--progress", "none"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def one_running_two_queued() -> list[dict[str, Any]] | None:
            rows = _ls(store, "queue")[1:]
            statuses = sorted(r["status"] for r in rows)
            return rows if statuses == ["queued", "queued", "running"] else None

        rows = _wait("one trial running and two queued", one_running_two_queued)
        queued = [r["trial_id"] for r in rows if r["status"] == "queued"]
        shown = tuixp("show", "queue", str(queued[0]), "--store", store).stdout
        assert shown.startswith(f"queue trial {queued[0]}: queued")
        table = tuixp("ls", "queue", "--status", "queued", "-f", "json", "--store", store)
        assert sorted(r["trial_id"] for r in json.loads(table.stdout)) == sorted(queued)
        app = create_app(store, clock=fixed_clock)
        async with app.run_test(size=(100, 30)) as pilot:
            await loaded(pilot, total=4)
            statuses = {r.trial_id: r.status for r in app.browse.table.visible_rows()}
            assert sorted(statuses.values()) == ["queued", "queued", "running", "succeeded"]
            line = next(
                app.browse.table.render_line(y).text
                for y in (1, 2, 3, 4)
                if app.browse.table.render_line(y).text.split()[0] == str(queued[0])
            )
            assert "◌ queued" in line
        time.sleep(1.0)  # the queued trials wait at least this long: their notes say so
        gate.write_text("go")
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate(timeout=30)
    assert run.returncode == 0, err
    done = {r["trial_id"]: r for r in _ls(store, "queue")}
    assert {r["status"] for r in done.values()} == {"succeeded"}
    # Each trial's start is its first step's: the time it queued is not in its elapsed time.
    starts = store_sql.query(
        store,
        "SELECT t.trial_id, t.started_at = min(s.started_at), any_value(t.elapsed_s) >= 0 "
        "FROM trials t JOIN steps s USING (experiment, trial_id) "
        "WHERE t.experiment = 'queue' GROUP BY t.trial_id, t.started_at ORDER BY 1",
    ).rows
    assert starts == [(tid, True, True) for tid in sorted(done)]
    for tid in queued:
        notes = store_sql.query(
            store, f"SELECT notes FROM trial_record WHERE experiment = 'queue' AND trial_id = {tid}"
        ).rows[0][0]
        (note,) = json.loads(notes)
        waited = float(note.split()[1])
        assert note == f"queued {waited:.1f} s before its first step started" and waited >= 1.0


def test_a_clock_set_back_mid_trial_gives_no_negative_elapsed_time(tmp_path: Path) -> None:
    script, store = tmp_path / "jump.py", tmp_path / "j.duckdb"
    script.write_text(JUMP)
    done = tuixp("run", script, "--store", store, "--scheduler", "sync")
    assert done.returncode == 0, done.stderr
    trial = store_sql.query(
        store, "SELECT elapsed_s, finished_at >= started_at FROM trials WHERE experiment = 'jump'"
    ).rows
    assert len(trial) == 1 and trial[0][0] >= 0 and trial[0][1] is True
    steps = store_sql.query(
        store, "SELECT step, elapsed_s FROM steps WHERE experiment = 'jump' ORDER BY step"
    ).rows
    assert [s for s, _ in steps] == ["first", "jumps"]
    assert all(elapsed >= 0 for _, elapsed in steps), steps
    shown = tuixp("show", "jump", "1", "--store", store).stdout
    assert "-" not in next(line for line in shown.splitlines() if "elapsed" in line)
