"""Many writers, readers polling: every trial recorded once, with its own id, nothing lost.

Four processes record 250 trials each of one experiment into one store while the real TUI
(headless, refreshing every 0.5 s) and a plain reader (open, ingest, query, close, every 0.5 s)
read it. The store must end with
exactly 1,000 trials, ids 1..1000, each carrying the parameters and metrics its writer sent,
and no process may fail on DuckDB's file lock.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import PROCS, assert_trial_intact, proc_env, start_writer, verify_store

WRITERS = 4
PER_WRITER = 250


def start_reader(store: Path, stop: Path, kind: str = "read", *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(PROCS), kind, "--store", str(store), "--stop", str(stop), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=proc_env(),
    )


def run_writers(store: Path, writers: int, per_writer: int) -> tuple[float, list[dict]]:
    """Start ``writers`` processes at once; return the wall time and what each saw finish."""
    t0 = time.perf_counter()
    procs = [
        start_writer(store, "--worker", str(w), "--trials", str(per_writer), "--scheduler", "sync")
        for w in range(writers)
    ]
    completed: list[dict] = []
    for w, p in enumerate(procs):
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, f"writer {w} failed:\n{err[-3000:]}"
        assert "lock" not in err.lower(), f"writer {w} reported a lock problem:\n{err[-3000:]}"
        completed += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return time.perf_counter() - t0, completed


def check_complete(store: Path, total: int, completed: list[dict]) -> None:
    state = verify_store(store)
    assert sorted(state.trials) == list(range(1, total + 1)), "ids must be 1..N, no gap or repeat"
    assert len(completed) == total
    # What each writer was told (trial id per (worker, i)) is what the store holds.
    for c in completed:
        params = state.params[c["trial_id"]]
        assert (params["worker"], params["i"]) == (c["worker"], c["i"]), c
    for tid in state.trials:
        assert_trial_intact(state, tid)
    assert not state.by_status("running")
    assert not list((store.parent / (store.name + ".journal")).glob("*.jsonl")), (
        "every writer ended: their journals are ingested and removed"
    )


@pytest.mark.slow
def test_four_writers_and_a_polling_reader_record_exactly_1000_trials(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    stop = tmp_path / "stop"
    total = WRITERS * PER_WRITER
    reader = start_reader(store, stop)
    tui = start_reader(store, stop, "tui", "--expect", str(total))
    wall, completed = run_writers(store, WRITERS, PER_WRITER)
    stop.touch()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err[-3000:]
    polls = json.loads(out.strip().splitlines()[-1])
    assert polls["gave_up"] == 0, err
    assert polls["polls"] >= 2, "the reader must have read the store while it was written"
    out, err = tui.communicate(timeout=60)
    assert tui.returncode == 0, err[-3000:]
    shown = json.loads(out.strip().splitlines()[-1])
    assert shown["last"] == total, shown
    assert shown["never_shrank"], "the TUI never shows fewer trials than before"
    # The TUI waits at most 0.5 s for the store; when it gives up it says so on its status
    # line and tries again at the next poll: a busy notice, never a failure.
    assert all("held by another process" in p for p in shown["problems"]), shown["problems"]
    check_complete(store, total, completed)

    # The figure against one process doing all 1,000: bench/concurrent_writers.py.
    print(
        f"\n1000 trials: {WRITERS} processes x {PER_WRITER} = {wall:.2f} s wall "
        f"(reader polls {polls['polls']}, longest open {polls['longest_s']} s; TUI samples "
        f"{shown['samples']}, busy notices {len(shown['problems'])})"
    )


def _tuixp_sql_available() -> str | None:
    exe = Path(sys.executable).with_name("tuixp")
    if not exe.exists() and not shutil.which("tuixp"):
        return "no tuixp executable"
    done = subprocess.run(
        [str(exe), "sql", "--help"], capture_output=True, text=True, env=proc_env(), timeout=60
    )
    if done.returncode != 0:
        return f"`tuixp sql` is not available yet: {(done.stderr or done.stdout).strip()[-200:]}"
    return None


@pytest.mark.slow
def test_tuixp_sql_loop_reads_while_writers_record(tmp_path: Path) -> None:
    missing = _tuixp_sql_available()
    if missing:
        pytest.skip(missing)
    store = tmp_path / "store.duckdb"
    exe = str(Path(sys.executable).with_name("tuixp"))
    procs = [
        start_writer(store, "--worker", str(w), "--trials", "60", "--scheduler", "sync")
        for w in range(3)
    ]
    counts: list[int] = []
    failures: list[str] = []
    while any(p.poll() is None for p in procs):
        done = subprocess.run(
            [
                exe,
                "sql",
                "--store",
                str(store),
                "--format",
                "csv",
                "SELECT count(*) AS n FROM trials",
            ],
            capture_output=True,
            text=True,
            env=proc_env(),
            timeout=120,
        )
        if done.returncode == 0:
            counts.append(int(done.stdout.strip().splitlines()[-1]))
        elif "No tuixp store" not in done.stderr:  # the very first poll may precede any trial
            failures.append(done.stderr.strip())
        time.sleep(0.5)
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-3000:]
    assert not failures, failures
    assert counts == sorted(counts), "a reader never sees trials disappear"
    state = verify_store(store)
    assert sorted(state.trials) == list(range(1, 181))
    for tid in state.trials:
        assert_trial_intact(state, tid)
