"""Locks and exits: a stopped lock holder, a refused first trial.

Issue 14 item 2: a writer stopped (Ctrl-Z, SIGSTOP) while holding the trial ids lock froze every
other writer, silently and forever. Now the wait is bounded by TUIXP_LOCK_TIMEOUT, like the
database's, and the message names the holder.

Issue 14 item 4: a process whose first trial was refused (a journal folder it cannot write)
aborted on exit ("terminate called ...", exit 134) instead of exit 2: the exit hook that stops
the background ingest thread was registered only after a journal write had succeeded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import proc_env, run_writer, start_writer, verify_store


def wait_stopped(pid: int, timeout: float = 60) -> None:
    """Until ``pid`` is in the stopped state (it stops itself holding the lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not stop within {timeout} s")


@pytest.mark.slow
def test_a_writer_stopped_holding_the_ids_lock_makes_others_give_up_naming_it(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store.duckdb"
    assert run_writer(store, "--trials", "1").returncode == 0
    holder = start_writer(store, "--trials", "1", "--die", "ids-stop:1")
    try:
        wait_stopped(holder.pid)
        t = time.monotonic()
        other = run_writer(
            store, "--trials", "1", "--worker", "1", timeout=60, TUIXP_LOCK_TIMEOUT="3"
        )
        waited = time.monotonic() - t
        assert other.returncode != 0, "a writer cannot get an id while the lock is held"
        last = other.stderr.strip().splitlines()[-1]
        assert "StoreBusy" in last and "trial id" in last, other.stderr[-2000:]
        assert f"process {holder.pid}" in last and "stopped" in last, last
        assert "gave up after 3 s" in last, last
        assert "Waiting for the trial ids lock" in other.stderr, other.stderr[-2000:]
        print(f"\nwriter refused after {waited:.1f} s (bound 3 s): {last[:160]}")
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, err[-2000:]
    # Resumed, the holder finishes its trial; nothing was lost or handed out twice.
    after = run_writer(store, "--trials", "1", "--worker", "2")
    assert after.returncode == 0, after.stderr[-2000:]
    state = verify_store(store)
    assert sorted(state.trials) == [1, 2, 3]
    assert state.by_status("succeeded") == [1, 2, 3]


def _first_trial_refused(store: Path) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("tuixp"))
    script = store.parent.parent / "exp.py"
    script.write_text(
        "import tuixp\n"
        "ex = tuixp.Experiment('ro')\n"
        "a = ex.parameter('a')\n"
        "@ex.result\n"
        "def twice(a):\n"
        "    return a * 2\n"
        "result = twice(a)\n"
    )
    return subprocess.run(
        [exe, "run", str(script), "a=1", "--store", str(store)],
        capture_output=True,
        text=True,
        env=proc_env(),
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize("locked", ["journal folder", "store folder"])
def test_a_refused_first_trial_exits_2_not_abort(tmp_path: Path, locked: str) -> None:
    if os.geteuid() == 0 and not _chattr_works(tmp_path):
        pytest.skip("needs chattr +i (root can write any mode-0555 folder)")
    where = tmp_path / "stores"
    where.mkdir()
    store = where / "store.duckdb"
    assert run_writer(store, "--trials", "1").returncode == 0
    journal = store.with_name(store.name + ".journal")
    journal.mkdir(exist_ok=True)
    for p in journal.iterdir():
        p.unlink()
    if locked == "store folder":
        journal.rmdir()
    folder = journal if locked == "journal folder" else where
    outcomes = []
    _lock_folder(folder, True)
    try:
        for _ in range(3):
            outcomes.append(_first_trial_refused(store))
    finally:
        _lock_folder(folder, False)
    for done in outcomes:
        assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
        assert "terminate called" not in done.stderr and "Traceback" not in done.stderr
        assert "read-only" in done.stderr or "journal" in done.stderr, done.stderr
    assert sorted(verify_store(store).trials) == [1]


def _chattr_works(where: Path) -> bool:
    probe = where / "probe"
    probe.mkdir()
    ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["chattr", "-i", str(probe)], check=True)
    probe.rmdir()
    return ok


def _lock_folder(folder: Path, on: bool) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if on else "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555 if on else 0o755)
