"""``kill -9`` at any moment: finished trials intact, the killed one ``interrupted``, store sound.

Kills come from outside (a writer stalled inside a step, or after a random delay) and from
inside at exact points of the write path (``procs.py --die``): before, in the middle of and
after a journal write, in the middle of the ingest transaction, in the middle of rewriting the
ids file.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from .conftest import assert_trial_intact, run_writer, start_writer, verify_store


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def ids_file_last(store: Path) -> int:
    return int(json.loads(store.with_name(store.name + ".ids").read_text()).get("rel", 0))


def check_after_crash(store: Path, completed: list[dict]) -> tuple[int, int]:
    """The invariants after any crash; returns (trials recorded, trials interrupted)."""
    state = verify_store(store)
    assert not state.by_status("running"), "a dead writer's trial must not stay running"
    for c in completed:  # every trial the user saw finish is there, whole
        assert_trial_intact(state, c["trial_id"])
    for tid in state.by_status("succeeded"):  # and no succeeded trial is half-written
        assert_trial_intact(state, tid)
    for tid in state.by_status("interrupted"):
        assert "ended before the trial" in state.trials[tid]["error"]
    return len(state.trials), len(state.by_status("interrupted"))


@pytest.mark.slow
def test_kill9_inside_a_step_leaves_the_trial_interrupted(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    signal_file = tmp_path / "in-step"
    writer = start_writer(store, "--trials", "10", "--stall-at", "5", "--signal", str(signal_file))
    wait_for(signal_file)
    # While its writer lives, the stalled trial is running, not taken for dead.
    state = verify_store(store)
    assert state.by_status("running") == [6]
    assert state.by_status("succeeded") == [1, 2, 3, 4, 5]
    os.kill(writer.pid, signal.SIGKILL)
    out, _ = writer.communicate(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    completed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [c["trial_id"] for c in completed] == [1, 2, 3, 4, 5]
    recorded, interrupted = check_after_crash(store, completed)
    assert (recorded, interrupted) == (6, 1)
    state = verify_store(store)
    assert state.by_status("interrupted") == [6]
    assert state.params[6]["i"] == 5, "the interrupted trial keeps the parameters it started with"
    # The next run continues after the interrupted trial's id.
    again = run_writer(store, "--trials", "2", "--start", "100")
    assert again.returncode == 0, again.stderr
    assert [c["trial_id"] for c in again.completed] == [7, 8]


# (point, n): SIGKILL at the n-th occurrence. A trial of procs.py makes six journal writes:
# started (with texts, fsynced), step prepare, metric, metric, step score, finished (fsynced).
DEATHS = [
    ("journal-before", 1),
    ("journal-partial", 1),
    ("journal-after", 1),
    ("journal-partial", 3),
    ("journal-partial", 6),
    ("journal-before", 8),
    ("journal-after", 12),
    ("ingest", 1),
    ("committed", 1),
    ("ids", 2),
]


@pytest.mark.slow
@pytest.mark.parametrize(("point", "n"), DEATHS, ids=[f"{p}-{n}" for p, n in DEATHS])
def test_kill9_at_a_write_point(tmp_path: Path, point: str, n: int) -> None:
    store = tmp_path / "store.duckdb"
    ingesting = point in ("ingest", "committed")
    extra = ["--pause-every", "2", "--pause", "1.0"] if ingesting else []
    died = run_writer(store, "--trials", "4", "--die", f"{point}:{n}", *extra)
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    recorded, interrupted = check_after_crash(store, died.completed)
    assert interrupted <= 1
    assert recorded >= len(died.completed)
    # Ids go on from the last one ever handed out: none is used twice.
    before = verify_store(store)
    after = run_writer(store, "--trials", "2", "--start", "100")
    assert after.returncode == 0, after.stderr[-2000:]
    new_ids = [c["trial_id"] for c in after.completed]
    assert not set(new_ids) & set(before.trials), (new_ids, sorted(before.trials))
    check_after_crash(store, died.completed + after.completed)


@pytest.mark.slow
def test_kill9_at_random_moments_loses_no_finished_trial(tmp_path: Path) -> None:
    seed = int(os.environ.get("TUIXP_CRASH_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    store = tmp_path / "store.duckdb"
    completed: list[dict] = []
    interrupted_total = 0
    rounds = 5
    for r in range(rounds):
        writer = start_writer(
            store,
            "--trials",
            "100000",
            "--start",
            str(r * 100_000),
            "--scheduler",
            "threads",
            "--pause-every",
            "15",
            "--pause",
            "0.6",
            "--step-sleep",
            "0.02",
        )
        time.sleep(rng.uniform(1.0, 3.0))
        os.kill(writer.pid, signal.SIGKILL)
        out, err = writer.communicate(timeout=30)
        assert writer.returncode == -signal.SIGKILL, f"seed {seed}: {err[-2000:]}"
        completed += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        recorded, interrupted_total = check_after_crash(store, completed)
    attempted = ids_file_last(store)
    lost = len({c["trial_id"] for c in completed} - set(verify_store(store).trials))
    assert lost == 0
    assert interrupted_total <= rounds
    print(
        f"\nrandom kill -9 (seed {seed}): {rounds} kills, ids handed out {attempted}, "
        f"recorded {recorded}, seen finished {len(completed)}, interrupted "
        f"{interrupted_total}, finished-but-lost {lost}"
    )
