"""Damaged side files, read-only and full disks, newer and foreign stores.

Each fault must end in one clear message (a ``StoreError`` subclass naming the problem) and
lose nothing that was recorded: once the fault is gone, every trial is there.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import tuixp
from tuixp import errors
from tuixp.store import SCHEMA_VERSION, Store
from tuixp.store.journal import journal_dir

from .conftest import (
    PROCS,
    assert_trial_intact,
    file_digest,
    proc_env,
    remount,
    run_writer,
    verify_store,
)


def dead_writer(store: Path, trials: int, start: int = 0) -> list[dict]:
    """A writer killed right after ``trials`` trials: its journal is all that holds them."""
    died = run_writer(
        store, "--trials", str(trials + 5), "--start", str(start), "--die-after", str(trials)
    )
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    assert len(died.completed) == trials
    return died.completed


def only_journal(store: Path) -> Path:
    files = list(journal_dir(store).glob("*.jsonl"))
    assert len(files) == 1, files
    return files[0]


# -- journals --------------------------------------------------------------------------------
@pytest.mark.slow
def test_journal_cut_mid_line_keeps_every_complete_trial(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    completed = dead_writer(store, 3)
    journal = only_journal(store)
    data = journal.read_bytes()
    last_line_start = data.rstrip(b"\n").rfind(b"\n") + 1
    assert b'"trial_finished"' in data[last_line_start:]
    journal.write_bytes(data[: last_line_start + 20])  # trial 3's end is cut in the middle
    state = verify_store(store)
    for c in completed[:2]:
        assert_trial_intact(state, c["trial_id"])
    assert state.by_status("interrupted") == [3], "a trial whose end was lost is interrupted"
    assert state.params[3] == {"worker": 0, "i": 2, "label": "w0-ü-2", "x": 2.5}


GARBAGE = [
    b"\x00\xff\xfe not json at all\n",
    b"[1, 2, 3]\n",
    b'{"no": "type"}\n',
    b'{"t": "trial_started"}\n',
    b'{"t": "metric", "trial_uuid": "u", "experiment": "rel", "trial_id": 1, "name": "m",'
    b' "epoch": "one", "value": 1.0, "recorded_at": 1.0, "seq": 1}\n',
    b'{"t": "metric", "trial_uuid": "u", "experiment": "rel", "trial_id": 1, "name": "m",'
    b' "epoch": 100000000000000000000000000000, "value": 1.0, "recorded_at": 1.0, "seq": 1}\n',
    b'{"t": "trial_finished", "uuid": "u", "status": "failed", "finished_at": 1e300,'
    b' "error_type": "E", "error_message": "x"}\n',
    b'{"t": "something_a_newer_tuixp_writes", "x": 1}\n',
]
# Readable but not storable as sent: kept, with the bad character replaced.
LONE_SURROGATE = b'{"t": "blob", "hash": "h", "text": "lone \\udc80 surrogate"}\n'


@pytest.mark.slow
def test_garbage_in_a_journal_is_set_aside_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store.duckdb"
    completed = dead_writer(store, 3)
    journal = only_journal(store)
    with open(journal, "ab") as f:
        for g in GARBAGE:
            f.write(g)
        f.write(LONE_SURROGATE)
    # More trials after the garbage, from a writer that also dies: they must not be lost.
    with open(journal, "ab") as f:
        f.write(b"\n")
    more = dead_writer(store, 2, start=10)
    caplog.set_level(logging.WARNING, logger="tuixp")
    state = verify_store(store)
    for c in completed + more:
        assert_trial_intact(state, c["trial_id"])
    assert len(state.trials) == 5
    said = [r.getMessage() for r in caplog.records if "journal" in r.getMessage()]
    assert said, "skipped lines must be reported"
    assert journal.name in said[0] and "set aside" in said[0], said
    # Nothing is thrown away: the lines tuixp could not read are kept for a person to look at.
    kept = b"".join(p.read_bytes() for p in (journal_dir(store) / "rejected").iterdir())
    for g in GARBAGE:
        assert g.strip() in kept, g
    assert LONE_SURROGATE.strip() not in kept
    with Store(store).connect() as con:
        text = con.execute("SELECT text FROM blob WHERE hash = 'h'").fetchone()[0]
    assert text == "lone \ufffd surrogate"
    assert not list(journal_dir(store).glob("*.jsonl")), "the dead writers' journals are done"
    caplog.clear()
    verify_store(store)
    assert not [r for r in caplog.records if "journal" in r.getMessage()], "said once, not again"


# -- the ids file ----------------------------------------------------------------------------
DAMAGES = {
    "garbage": lambda p: p.write_bytes(os.urandom(64)),
    "empty": lambda p: p.write_bytes(b""),
    "deleted": lambda p: p.unlink(),
    "not-a-dict": lambda p: p.write_text("[1, 2, 3]"),
    "half-written": lambda p: p.write_text('{"_version": 1, "re'),
}


@pytest.mark.slow
def test_ids_file_lost_or_damaged_ids_continue_without_reuse(tmp_path: Path) -> None:
    from .procs import build, expected_params

    store = tmp_path / "store.duckdb"
    first = run_writer(store, "--trials", "3")
    assert first.returncode == 0, first.stderr
    journaled = dead_writer(store, 2, start=10)  # ids 4 and 5 exist only in a journal
    ids = store.with_name(store.name + ".ids")
    ex, node = build(str(store))
    got = []
    for n, damage in enumerate(DAMAGES.values()):
        damage(ids)
        node.compute(scheduler="sync", **expected_params(7, n))
        got.append(ex.trial_id)
    assert got == [6, 7, 8, 9, 10], "each lost count is rebuilt from the store and journals"
    state = verify_store(store)
    assert sorted(state.trials) == list(range(1, 11))
    for tid in state.trials:
        assert_trial_intact(state, tid)
    assert [state.params[t]["i"] for t in got] == list(range(len(DAMAGES)))
    assert len(first.completed + journaled) == 5


# -- read-only -------------------------------------------------------------------------------
def quick_experiment(store: Path) -> tuple[tuixp.Experiment, object]:
    ex = tuixp.Experiment("rel", store=store)
    worker, i, label, x = (ex.parameter(n) for n in ("worker", "i", "label", "x"))

    @ex.result
    def score(worker, i, label, x):
        return i + x

    return ex, score(worker, i, label, x)


@pytest.mark.slow
def test_read_only_folder_reads_and_refuses_new_trials_clearly(tmp_path: Path, tmpfs) -> None:
    where = tmpfs("8m")
    store = where / "store.duckdb"
    done = run_writer(store, "--trials", "3")
    assert done.returncode == 0, done.stderr
    journaled = dead_writer(store, 2, start=10)
    # What the file holds: 3, or more if the killed writer ingested a trial itself first.
    con = duckdb.connect(str(store), read_only=True)
    stored = con.execute("SELECT count(*) FROM trials").fetchone()[0]
    con.close()
    assert 3 <= stored < 5, stored
    before = {p.name: file_digest(p) for p in where.rglob("*") if p.is_file()}
    remount(where, "ro")
    with Store(store).connect() as con:  # reading still works
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == stored
    ex, node = quick_experiment(store)
    with pytest.raises(errors.StoreReadOnly, match="read-only") as caught:
        node.compute(worker=9, i=0, label="x", x=1.0)
    assert str(where) in str(caught.value)
    remount(where, "rw")
    assert {p.name: file_digest(p) for p in where.rglob("*") if p.is_file()} == before
    state = verify_store(store)
    assert sorted(state.trials) == [1, 2, 3, 4, 5]
    for c in done.completed + journaled:
        assert_trial_intact(state, c["trial_id"])


@pytest.mark.slow
def test_immutable_database_file_keeps_trials_in_the_journal(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    done = run_writer(store, "--trials", "2")
    assert done.returncode == 0, done.stderr
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        digest = file_digest(store)
        later = run_writer(store, "--trials", "2", "--start", "10")
        assert later.returncode == 0, later.stderr
        with Store(store).connect() as con:
            assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 2
        assert file_digest(store) == digest
    finally:
        subprocess.run(["chattr", "-i", str(store)], check=True)
    state = verify_store(store)
    assert sorted(state.trials) == [1, 2, 3, 4]
    for c in done.completed + later.completed:
        assert_trial_intact(state, c["trial_id"])


# -- disk full -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("when", ["first-trial", "later"])
def test_disk_full_says_so_and_loses_nothing_recorded(tmp_path: Path, tmpfs, when: str) -> None:
    where = tmpfs("2m")
    store = where / "store.duckdb"
    if when == "later":  # a store that exists and has trials when the disk fills up
        done = run_writer(store, "--trials", "3")
        assert done.returncode == 0, done.stderr
    p = subprocess.run(
        [
            sys.executable,
            str(PROCS),
            "fill",
            "--store",
            str(store),
            "--size",
            "100000",
            "--trials",
            "100",
        ],
        capture_output=True,
        text=True,
        env=proc_env(),
        timeout=120,
    )
    assert p.returncode == 3, p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    message = [line for line in p.stderr.splitlines() if line.startswith("FAILED")]
    assert message and "StoreError" in message[0] and "No space left" in message[0], p.stderr
    filled = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert filled, "some trials fit before the disk was full"
    remount(where, "size=16m")  # space again
    state = verify_store(store, "fill")
    for c in filled:
        assert state.trials[c["trial_id"]]["status"] == "succeeded"
        assert state.params[c["trial_id"]] == {"i": c["i"], "blob": "x" * 100_000}
    assert not state.by_status("running")
    if when == "later":
        assert len(verify_store(store).trials) == 3
    print(
        f"\ndisk full ({when}): {len(filled)} trials fit and were kept, "
        f"{len(state.trials)} recorded; refused with: {message[0][:90]}"
    )


# -- stores tuixp cannot use -----------------------------------------------------------------
@pytest.mark.slow
def test_store_from_a_newer_tuixp_is_left_alone(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    done = run_writer(store, "--trials", "2")
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(store))
    con.execute("UPDATE tuixp_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    digest = file_digest(store)
    for read_only in (False, True):
        with pytest.raises(errors.SchemaTooNew, match="newer tuixp") as caught:
            with Store(store).connect(read_only=read_only):
                pass
        assert "schema 99" in str(caught.value) and str(store) in str(caught.value)
    ex, node = quick_experiment(store)
    with pytest.raises(errors.SchemaTooNew):
        ex.get_history()
    # New trials wait in the journal for a tuixp that can read the store.
    later = run_writer(store, "--trials", "2", "--start", "10")
    assert later.returncode == 0, later.stderr
    assert file_digest(store) == digest, "nothing was changed in the newer store"
    con = duckdb.connect(str(store))
    con.execute(
        "UPDATE tuixp_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)]
    )
    con.close()
    state = verify_store(store)
    assert sorted(state.trials) == [1, 2, 3, 4]


def _text_file(p: Path) -> None:
    p.write_text("name,score\nalice,3\n")


def _foreign_duckdb(p: Path) -> None:
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE sales (id INTEGER, amount DOUBLE)")
    con.execute("INSERT INTO sales VALUES (1, 9.5)")
    con.close()


def _sqlite(p: Path) -> None:
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()


def _random_bytes(p: Path) -> None:
    p.write_bytes(os.urandom(50_000))


FOREIGN = {
    "text": _text_file,
    "other-duckdb": _foreign_duckdb,
    "sqlite": _sqlite,
    "random-bytes": _random_bytes,
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_file_that_is_not_a_store_is_refused_and_untouched(tmp_path: Path, kind: str) -> None:
    store = tmp_path / "data.file"
    FOREIGN[kind](store)
    digest = file_digest(store)
    for read_only in (False, True):
        with pytest.raises(errors.NotAStore, match="not a tuixp store") as caught:
            with Store(store).connect(read_only=read_only):
                pass
        assert str(store) in str(caught.value)
    ex, node = quick_experiment(store)
    with pytest.raises(errors.StoreError, match="not a tuixp store"):
        node.compute(worker=0, i=0, label="x", x=1.0)
    assert file_digest(store) == digest


def test_a_folder_where_the_store_should_be(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    store.mkdir()
    with pytest.raises(errors.StoreError, match="folder"):
        with Store(store).connect():
            pass


# -- side files ------------------------------------------------------------------------------
def test_damaged_or_missing_side_files(tmp_path: Path) -> None:
    import numpy as np

    store = tmp_path / "store.duckdb"
    ex = tuixp.Experiment("side", store=store)
    n = ex.parameter("n")

    @ex.persist
    def make(n):
        return np.arange(n)

    @ex.result
    def total(a):
        return int(a.sum())

    node = total(make(n))
    assert node.compute(n=5) == 10
    assert node.compute(n=6) == 15
    objects = sorted(store.with_name(store.name + ".objects").rglob("*.npy"))
    assert len(objects) == 2
    objects[0].write_bytes(objects[0].read_bytes()[:20])  # truncated
    objects[1].unlink()  # deleted
    messages = []
    for trial in (1, 2):
        with pytest.raises(errors.StoreError) as caught:
            ex.get_persisted("make", trial)
        messages.append(str(caught.value))
    assert any("damaged" in m for m in messages) and any("cannot be read" in m for m in messages)
    # The state file behind change detection, garbage: the next trial runs and is recorded.
    state = store.with_name(store.name + ".state") / "side.json"
    state.write_bytes(b"\x00garbage{")
    assert node.compute(n=4) == 6
    got = verify_store(store, "side")
    assert [got.trials[t]["status"] for t in (1, 2, 3)] == ["succeeded"] * 3
    assert ex.get_persisted("make", 3).tolist() == [0, 1, 2, 3]


@pytest.mark.slow
def test_the_cli_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("tuixp"))
    newer = tmp_path / "newer.duckdb"
    assert run_writer(newer, "--trials", "1").returncode == 0
    con = duckdb.connect(str(newer))
    con.execute("UPDATE tuixp_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    cases = {
        "text": tmp_path / "notes.txt",
        "other-duckdb": tmp_path / "sales.duckdb",
        "newer": newer,
        "folder": tmp_path / "folder.duckdb",
    }
    _text_file(cases["text"])
    _foreign_duckdb(cases["other-duckdb"])
    cases["folder"].mkdir()
    for kind, path in cases.items():
        before = file_digest(path) if path.is_file() else None
        commands = [["ls"], ["sql", "SELECT count(*) FROM trials"]] if kind == "text" else [["ls"]]
        for args in commands:
            done = subprocess.run(
                [exe, *args, "--store", str(path)],
                capture_output=True,
                text=True,
                env=proc_env(),
                timeout=60,
            )
            assert done.returncode == 2, (kind, args, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in done.stderr, (kind, done.stderr)
            assert str(path) in lines[0], (kind, lines)
        assert before is None or file_digest(path) == before, kind


@pytest.mark.slow
def test_a_grid_refused_halfway_leaves_no_trial_running(tmp_path: Path) -> None:
    """The disk fills while a grid's trials are being started (a simulated ENOSPC at the
    second start): the grid is refused, the trial already started ends as failed at once,
    not when the process exits, and the next grid runs normally."""
    store = tmp_path / "store.duckdb"
    done = run_writer(store, "--trials", "6", "--grid", "3", "--die", "enospc:2")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert "No space left" in lines[0]["refused"]
    assert [(c["trial_id"], c["i"]) for c in lines[1:4]] == [(4, 3), (5, 4), (6, 5)]
    assert lines[4] == {"running_in_store": 0, "running_in_process": 0}
    with Store(store).connect() as con:
        rows = con.execute("SELECT trial_id, status, error FROM trials ORDER BY 1").fetchall()
    assert [(t, s) for t, s, _ in rows] == [
        (1, "failed"),
        (4, "succeeded"),
        (5, "succeeded"),
        (6, "succeeded"),
    ]
    assert "No space left" in rows[0][2]
