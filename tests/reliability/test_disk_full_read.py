"""A full disk: readers still read, and say why the newest trials are not shown yet.

Issue 14 item 8: with the disk full, the ingest's COMMIT fails, and then ``tuixp sql`` and
``get_history()`` could not read at all (the ROLLBACK error "no transaction is active" even
hid "No space left on device"), though the store holds every trial ingested so far. Now a
reader whose ingest fails for lack of space (or a store it cannot write) reads what the store
holds, says in one warning why ingest was skipped, and the trials waiting in the journals are
ingested once there is room again.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from .conftest import proc_env, run_writer, verify_store


def fill_up(where: Path) -> Path:
    """Write zeros into ``where`` until the filesystem refuses even one byte: the disk is full."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        size = 65536
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                size //= 2
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
def test_readers_read_the_ingested_state_while_the_disk_is_full(tmp_path: Path, tmpfs) -> None:
    where = tmpfs("4m")
    store = where / "store.duckdb"
    done = run_writer(store, "--trials", "3")
    assert done.returncode == 0, done.stderr
    died = run_writer(store, "--trials", "8", "--start", "10", "--die-after", "3")
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    # What the store itself holds (the dead writer may have ingested a trial or two itself).
    con = duckdb.connect(str(store), read_only=True)
    stored = con.execute("SELECT count(*) FROM trials").fetchone()[0]
    con.close()
    assert 3 <= stored < 6, stored
    filler = fill_up(where)
    exe = str(Path(sys.executable).with_name("tuixp"))
    shown = subprocess.run(
        [exe, "sql", "SELECT count(*) AS n FROM trials", "--store", str(store), "-f", "csv"],
        capture_output=True,
        text=True,
        env=proc_env(),
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["n", str(stored)], shown.stdout
    assert "No space left" in shown.stderr and "journal" in shown.stderr, shown.stderr
    assert "no transaction is active" not in shown.stderr
    history = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); from tests.reliability.procs import "
            "build; ex, _ = build(sys.argv[2]); print(len(ex.get_history()))",
            str(Path(__file__).resolve().parents[2]),
            str(store),
        ],
        capture_output=True,
        text=True,
        env=proc_env(),
        timeout=120,
    )
    assert history.returncode == 0, history.stderr[-3000:]
    assert history.stdout.split()[-1] == str(stored), history.stdout
    assert "No space left" in history.stderr, history.stderr
    print(f"\nwhile full: sql read {stored} of 6 trials; said: {shown.stderr.strip()[:200]}")
    os.unlink(filler)
    state = verify_store(store)
    assert sorted(state.trials) == [1, 2, 3, 4, 5, 6]
    assert state.by_status("succeeded") == [1, 2, 3, 4, 5, 6]
