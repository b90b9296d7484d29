"""What the store must never do on its own: write through the SQL console, reach other files,
load a pickle nobody asked for, or listen on a network port nobody asked for."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tuixp
from tuixp import errors
from tuixp.store import Store, sql

from .conftest import file_digest, proc_env, run_writer, start_writer

SECRET = "s3cret-token-that-must-not-leak"

REFUSED = [
    # writes and schema changes
    "INSERT INTO trial_record (uuid, experiment, trial_id, status) VALUES ('x', 'x', 9, 'x')",
    "UPDATE trial_record SET status = 'failed'",
    "DELETE FROM trial_record",
    "DROP VIEW trials",
    "CREATE TABLE evil AS SELECT 1",
    "ALTER TABLE trial_record ADD COLUMN evil INTEGER",
    "WITH x AS (SELECT 1) INSERT INTO trial_record SELECT * FROM trial_record",
    "SELECT 1; DROP TABLE trial_record",
    "EXPLAIN ANALYZE CREATE TABLE evil AS SELECT 1",
    "FROM query('INSERT INTO trial_record SELECT * FROM trial_record')",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    # other databases and files
    "ATTACH '{dir}/evil.duckdb' AS evil",
    "DETACH store",
    "COPY trial_record TO '{dir}/copied.csv'",
    "EXPORT DATABASE '{dir}/exported'",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{dir}/explained.csv'",
    "SELECT * FROM read_csv('{dir}/secret.csv')",
    "SELECT * FROM '{dir}/secret.csv'",
    "SELECT * FROM read_text('{dir}/secret.csv')",
    "SELECT * FROM read_blob('{dir}/secret.csv')",
    "SELECT * FROM read_json_auto('{dir}/secret.csv')",
    "SELECT * FROM sniff_csv('{dir}/secret.csv')",
    "SELECT * FROM glob('{dir}/*')",
    "SELECT * FROM query_table('{dir}/secret.csv')",
    "SELECT * FROM query('SELECT * FROM read_text(''{dir}/secret.csv'')')",
    "SELECT * FROM read_text('{store}.journal/*.jsonl')",
    "SELECT * FROM read_csv('https://example.com/data.csv')",
    "SELECT * FROM sqlite_scan('{dir}/x.db', 't')",
    # DuckDB's spill folder <store>.tmp/ (readable and writable with external access off, until
    # the sandbox had no temp_directory) and statements hidden behind EXPLAIN ANALYZE
    *(
        SPILL := [
            "EXPLAIN ANALYZE COPY (SELECT * FROM trials) TO '{store}.tmp/x.csv'",
            "EXPLAIN ANALYZE CREATE TEMP TABLE evil AS SELECT 1",
            "EXPLAIN (FORMAT json) COPY trial_record TO '{store}.tmp/y.csv'",
            "explain /* a */ analyse -- b\n copy (select 1) to '{store}.tmp/z.csv'",
            "EXPLAIN ANALYZE INSERT INTO trial_record SELECT * FROM trial_record",
            "EXPLAIN (ANALYZE) COPY (SELECT 1) TO '{store}.tmp/w.parquet' (FORMAT parquet)",
            "SELECT content FROM read_text('{store}.tmp/planted.txt')",
            "SELECT * FROM glob('{store}.tmp/*')",
            "SELECT * FROM read_csv('{store}.tmp/planted.txt')",
        ]
    ),
    # extensions and settings
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "USE memory",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("security") / "store.duckdb"
    done = run_writer(path, "--trials", "2")
    assert done.returncode == 0, done.stderr
    (path.parent / "secret.csv").write_text(f"token\n{SECRET}\n")
    spill = path.with_name(path.name + ".tmp")  # DuckDB's default spill folder for this store
    spill.mkdir()
    (spill / "planted.txt").write_text(f"token\n{SECRET}\n")
    with Store(path).connect():
        pass  # everything ingested: from now on nothing may change the file
    return path


def files_under(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_digest(p) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("statement", REFUSED)
def test_the_sql_console_cannot_write_or_reach_outside(store: Path, statement: str) -> None:
    before = files_under(store.parent)
    q = statement.format(dir=store.parent, store=store)
    with pytest.raises(errors.TuixpError) as caught:
        sql.query(store, q)
    assert SECRET not in str(caught.value)
    assert files_under(store.parent) == before, "nothing written, created or changed"


def test_the_sql_console_still_answers_queries(store: Path) -> None:
    result = sql.query(store, "SELECT count(*) FROM trials")
    assert result.rows == [(2,)]
    assert sql.query(store, "SELECT current_setting('enable_external_access')").rows == [(False,)]


@pytest.mark.slow
def test_tuixp_sql_refuses_in_one_line_with_exit_2(store: Path) -> None:
    exe = Path(sys.executable).with_name("tuixp")
    before = files_under(store.parent)
    for statement in (
        "DELETE FROM trial_record",
        "SELECT * FROM read_csv('{dir}/secret.csv')",
        "COPY trial_record TO '{dir}/copied.csv'",
    ):
        done = subprocess.run(
            [str(exe), "sql", "--store", str(store), statement.format(dir=store.parent)],
            capture_output=True,
            text=True,
            env=proc_env(),
            timeout=60,
        )
        assert done.returncode == 2, (statement, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and SECRET not in done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert files_under(store.parent) == before


@pytest.mark.slow
def test_tuixp_sql_cannot_write_into_the_spill_folder(store: Path) -> None:
    exe = Path(sys.executable).with_name("tuixp")
    before = files_under(store.parent)
    for statement in SPILL:
        done = subprocess.run(
            [str(exe), "sql", "--store", str(store), statement.format(store=store)],
            capture_output=True,
            text=True,
            env=proc_env(),
            timeout=60,
        )
        assert done.returncode == 2, (statement, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and SECRET not in done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert files_under(store.parent) == before, statement


def test_the_sql_screen_cannot_write_into_the_spill_folder(store: Path) -> None:
    from textual.widgets import Static, TextArea

    from tests.tui.helpers import wait_for
    from tuixp.tui.app import create_app
    from tuixp.tui.screens.sql import SqlScreen, history_path

    before = files_under(store.parent)
    shown: list[str] = []

    async def drive() -> None:
        app = create_app(store, poll_interval=3600)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("colon")
            await wait_for(pilot, lambda: isinstance(app.screen, SqlScreen), what="the SQL screen")
            screen = app.screen
            assert isinstance(screen, SqlScreen)
            for statement in SPILL:
                screen.query_one(TextArea).text = statement.format(store=store)
                outcome = screen.outcome
                await pilot.press("ctrl+j")
                await wait_for(
                    pilot,
                    lambda o=outcome: screen.outcome is not o and not screen.running,
                    what=f"the answer to {statement!r}",
                )
                message = str(screen.query_one("#sql-message", Static).content)
                assert screen.outcome is not None and screen.outcome.refused, (statement, message)
                shown.append(message + app.export_screenshot())

    asyncio.run(drive())
    assert all(SECRET not in text for text in shown)
    after = files_under(store.parent)
    after.pop(history_path(store).name, None)  # the screen keeps its query history there
    assert after == before


# -- pickles ---------------------------------------------------------------------------------
class Tripwire:
    """Unpickling this creates ``path``: proof that something loaded the pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))  # a builtin: any process can unpickle it


@pytest.mark.slow
def test_persisted_pickles_load_only_on_an_explicit_call(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    # Dask's tokenize (the purity check) round-trips a live output through pickle in the
    # process that made it; that is hashing, not loading from the store. The wire is armed
    # only once the trial is recorded: until its folder exists, unpickling cannot trip it.
    armed = tmp_path / "armed"
    tripped = armed / "unpickled"
    ex = tuixp.Experiment("tripwire", store=store)
    a = ex.parameter("a")

    @ex.persist
    def make(a):
        return Tripwire(str(tripped))

    @ex.result
    def score(obj, a):
        ex.save_metric("m", epoch=1, value=a)
        return a

    score(make(a), a).compute(a=1)
    armed.mkdir()
    with Store(store).connect() as con:
        assert con.execute("SELECT format FROM persisted").fetchall() == [("pickle",)]
    # Every way of reading the store, in this process and in fresh ones.
    ex.get_history(verbose=True)
    ex.get_parameters(1)
    ex.get_code(1)
    ex.get_environment(1)
    ex.load_metric("m", 1)
    for view in ("trials", "params", "metrics", "steps", "persisted", "environments", "code"):
        sql.query(store, f"SELECT * FROM {view}")
    exe = str(Path(sys.executable).with_name("tuixp"))
    for args in (
        ["ls"],
        ["show", "tripwire", "1"],
        ["show", "tripwire", "1", "-f", "json"],
        ["export", str(tmp_path / "export")],
        ["sql", "SELECT * FROM persisted"],
    ):
        done = subprocess.run(
            [exe, *args, "--store", str(store)],
            capture_output=True,
            text=True,
            env=proc_env(),
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stderr)
        assert not tripped.exists(), f"`tuixp {' '.join(args)}` loaded a pickle"
    assert not tripped.exists()
    # Only the explicit call does, and then it does.
    ex.get_persisted("make", 1)
    assert tripped.exists()


# -- network ---------------------------------------------------------------------------------
def process_tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def bound_sockets(pids: list[int]) -> list[str]:
    """TCP sockets listening and UDP sockets bound, owned by ``pids`` (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/net/{proto}") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                local, state, inode = parts[1], parts[3], parts[9]
                if inode in inodes and (state == "0A" or proto.startswith("udp")):
                    found.append(f"{proto} {local}")
    return found


def sockets_while_a_trial_runs(tmp_path: Path, scheduler: str) -> list[str]:
    store = tmp_path / scheduler / "store.duckdb"
    signal_file = tmp_path / f"{scheduler}.in-step"
    writer = start_writer(
        store,
        "--trials",
        "3",
        "--stall-at",
        "1",
        "--signal",
        str(signal_file),
        "--scheduler",
        scheduler,
    )
    try:
        deadline = time.monotonic() + 120
        while not signal_file.exists():
            assert writer.poll() is None, writer.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the trial never started"
            time.sleep(0.05)
        time.sleep(0.3)  # anything that would listen has had time to
        return bound_sockets(process_tree(writer.pid))
    finally:
        for pid in reversed(process_tree(writer.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        writer.communicate(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["threads", "processes", "sync"])
def test_nothing_listens_on_a_port_during_a_local_run(tmp_path: Path, scheduler: str) -> None:
    assert sockets_while_a_trial_runs(tmp_path, scheduler) == []


@pytest.mark.slow
def test_the_tui_listens_on_no_port(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    assert run_writer(store, "--trials", "2").returncode == 0
    stop = tmp_path / "stop"
    tui = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("procs.py")),
            "tui",
            "--store",
            str(store),
            "--stop",
            str(stop),
            "--expect",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=proc_env(),
    )
    try:
        time.sleep(3.0)  # started, mounted and polled a few times
        assert tui.poll() is None, tui.communicate()[1][-3000:]
        assert bound_sockets(process_tree(tui.pid)) == []
    finally:
        stop.touch()
        tui.communicate(timeout=60)


@pytest.mark.slow
def test_a_cluster_asked_for_does_listen(tmp_path: Path) -> None:
    """The check above can fail: a run on a local dask.distributed cluster listens."""
    assert sockets_while_a_trial_runs(tmp_path, "distributed") != []
