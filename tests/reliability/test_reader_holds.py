"""Another program can read the store while the TUI reads it (issue 14 item 10).

DuckDB lets read-only connections of several processes share a file, but refuses every other
process while one holds it read-write. The TUI used to run all its queries on the read-write
connection that ingests the journals, so a plain ``duckdb.connect(store, read_only=True)``
from another process failed about 4 times in 40 while the TUI was open during a run. Now the
TUI ingests in a short read-write connection only when a journal changed, and reads through a
read-only one: a plain reader that opens the store in the middle of a TUI read gets in.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tuixp.tui.data import StoreReader

from .conftest import run_writer

PLAIN = (
    "import sys, duckdb; con = duckdb.connect(sys.argv[1], read_only=True); "
    "print(con.execute('SELECT count(*) FROM trials').fetchone()[0])"
)


def plain_read(store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PLAIN, str(store)], capture_output=True, text=True, timeout=60
    )


def test_a_plain_duckdb_reader_gets_in_while_the_tui_reads(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    assert run_writer(store, "--trials", "2").returncode == 0
    died = run_writer(store, "--trials", "5", "--start", "10", "--die-after", "2")
    assert died.returncode == -signal.SIGKILL  # 2 finished trials wait in its journal
    reader = StoreReader(store)
    seen: list[subprocess.CompletedProcess[str]] = []
    counts: list[int] = []

    def deliver(snap) -> None:  # called while the TUI's connection is open
        counts.append(sum(int(e["trials"]) for e in snap.experiments))
        seen.append(plain_read(store))

    for _ in range(2):  # with news in a journal, then without
        reader.snapshot(None, 0, 50, deliver=deliver)
    assert counts == [4, 4], "the dead writer's trials were ingested before the read"
    for done in seen:
        assert done.returncode == 0, done.stderr[-1500:]
        assert done.stdout.strip() == "4"
