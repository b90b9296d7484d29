"""Curating the history (issue 17): notes, names, tags, stars, delete and restore, through the
Python API and the command line, on stores made by real trials; the SQL views they feed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tuixp
from tests.cli.test_cli_units import invoke, one_error_line, store_snapshot
from tests.conftest import ROOT, env_with_path
from tuixp import errors
from tuixp.store.store import Store


def _experiment(store: Path, name: str = "cur") -> tuple[tuixp.Experiment, Any]:
    ex = tuixp.Experiment(name, store=store)
    a = ex.parameter("a")

    @ex.result
    def score(a):
        ex.save_metric("loss", epoch=1, value=a / 10)
        return a * 2

    return ex, score(a)


def _record(store: Path, n: int = 4, name: str = "cur") -> tuixp.Experiment:
    ex, node = _experiment(store, name)
    for i in range(1, n + 1):
        ex.set_parameters(a=i)
        node.compute(scheduler="sync")
    with Store(store).connect():
        pass  # every journal in: a test comparing the store before and after starts here
    return ex


def _sql(store: Path, query: str, args: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with Store(store).connect() as con:
        return con.execute(query, args or []).fetchall()


# -- the Python API ----------------------------------------------------------------------------
def test_api_annotations_add_up_and_show_in_the_views(store_path: Path) -> None:
    ex = _record(store_path)
    ex.note(2, "first try with the new loss")
    ex.note(2, "baseline for the paper")  # the latest note wins
    ex.name(2, "baseline")
    ex.tag(2, "paper", "ridge")
    ex.tag(3, "paper")
    ex.untag(2, "ridge")
    ex.star(2)
    ex.star(3)
    ex.star(3, on=False)
    got = ex.get_annotations(2)
    assert got["note"] == "baseline for the paper"
    assert got["name"] == "baseline"
    assert got["tags"] == ["paper"]
    assert got["starred"] is True and got["deleted_at"] is None
    assert [h["action"] for h in got["history"]] == [
        "note",
        "note",
        "name",
        "tag",
        "tag",
        "untag",
        "star",
    ]
    author = got["history"][0]["author"]
    assert "@" in author and author.split("@")[1]  # user@host
    rows = _sql(
        store_path,
        "SELECT trial_id, name, note, tags, starred, deleted_at FROM trials "
        "WHERE experiment = 'cur' ORDER BY trial_id",
    )
    assert rows == [
        (1, None, None, [], False, None),
        (2, "baseline", "baseline for the paper", ["paper"], True, None),
        (3, None, None, ["paper"], False, None),
        (4, None, None, [], False, None),
    ]
    # Every event is kept, each with its own uuid: the earlier note is not lost.
    notes = _sql(
        store_path,
        "SELECT value, author FROM annotations WHERE trial_id = 2 AND action = 'note' "
        "ORDER BY recorded_at",
    )
    assert [n[0] for n in notes] == ["first try with the new loss", "baseline for the paper"]
    uuids = _sql(store_path, "SELECT count(DISTINCT uuid), count(*) FROM annotations")
    assert uuids[0][0] == uuids[0][1] == 10


def test_an_empty_note_or_name_clears_it(store_path: Path) -> None:
    ex = _record(store_path, 1)
    ex.note(1, "x")
    ex.name(1, "y")
    ex.note(1, "")
    ex.name(1, "  ")
    got = ex.get_annotations(1)
    assert got["note"] is None and got["name"] is None
    assert len(got["history"]) == 4


def test_get_history_keeps_daskperiments_columns_and_adds_annotations_on_request(
    store_path: Path,
) -> None:
    ex = _record(store_path)
    plain = list(ex.get_history().columns)
    assert plain == ["a", "Result", "Success", "Finished", "Process Time", "Description"]
    ex.tag(1, "good")
    ex.note(1, "why")
    ex.star(1)
    ex.name(4, "last")
    ex.delete_trial(3)
    assert list(ex.get_history().columns) == plain
    assert list(ex.get_history().index) == [1, 2, 4]  # the deleted trial is left out
    full = ex.get_history(annotations=True)
    assert list(full.columns) == [*plain, "Name", "Note", "Tags", "Starred"]
    assert full.loc[1, "Tags"] == ["good"] and full.loc[1, "Note"] == "why"
    assert bool(full.loc[1, "Starred"]) and not bool(full.loc[2, "Starred"])
    assert full.loc[4, "Name"] == "last" and full.loc[2, "Tags"] == []
    with_deleted = ex.get_history(deleted=True)
    assert list(with_deleted.index) == [1, 2, 3, 4]
    assert with_deleted["Deleted"].notna().tolist() == [False, False, True, False]
    ex.restore_trial(3)
    assert list(ex.get_history().index) == [1, 2, 3, 4]


def test_inside_a_step_the_current_trial_is_annotated(store_path: Path) -> None:
    ex = tuixp.Experiment("steps", store=store_path)
    a = ex.parameter("a")

    @ex
    def prepare(a):
        ex.tag("prepared", f"a{a}")
        return a

    @ex.result
    def score(x):
        ex.note(f"score saw {x}")
        ex.star()
        if x == 3:
            ex.name("three")
        return x

    node = score(prepare(a))
    for value, scheduler in ((1, "sync"), (2, "threads"), (3, "processes")):
        ex.set_parameters(a=value)
        node.compute(scheduler=scheduler)
    for trial_id in (1, 2, 3):
        got = ex.get_annotations(trial_id)
        assert got["note"] == f"score saw {trial_id}", (trial_id, got)
        assert got["tags"] == sorted(["prepared", f"a{trial_id}"])
        assert got["starred"] is True
    assert ex.get_annotations(3)["name"] == "three"


def test_api_refuses_bad_input_and_writes_nothing(store_path: Path) -> None:
    ex = _record(store_path, 2)
    before = store_snapshot(store_path)
    with pytest.raises(errors.TrialIDNotFoundError, match="Unable to find trial id: 9"):
        ex.note(9, "x")
    with pytest.raises(errors.TrialIDNotFoundError):
        ex.tag(0, "x")
    with pytest.raises(errors.TuixpError, match="a tag cannot be empty"):
        ex.tag(1, "")
    with pytest.raises(errors.TuixpError, match="one word"):
        ex.tag(1, "two words")
    with pytest.raises(errors.TuixpError, match="one line"):
        ex.name(1, "a\nb")
    with pytest.raises(errors.TrialIDNotFoundError, match="Give the trial id"):
        ex.note("outside a step, with no trial")  # not inside a step: which trial?
    with pytest.raises(errors.TrialIDNotFoundError, match="Give the trial id"):
        ex.star()
    assert store_snapshot(store_path) == before


def test_concurrent_notes_keep_every_event_and_the_latest_wins(store_path: Path) -> None:
    """Two notes on one trial at the same moment (two people, or two stores merged): the
    latest by time (then event uuid) is the note, the other stays in the history."""
    from tuixp.store import annotation
    from tuixp.store.annotation import TrialRef

    ex = _record(store_path, 1)
    with Store(store_path).connect() as con:
        (ref,) = annotation.resolve(con, "cur", [1])
    assert isinstance(ref, TrialRef)
    at = 1_900_000_000.0
    events = [
        annotation.event(ref, "note", "from alice", at=at, by="alice@a"),
        annotation.event(ref, "note", "from bob", at=at, by="bob@b"),
        annotation.event(ref, "tag", "x", at=at + 1, by="alice@a"),
        annotation.event(ref, "untag", "x", at=at + 2, by="bob@b"),
        annotation.event(ref, "tag", "x", at=at + 3, by="alice@a"),
    ]
    st = Store(store_path)
    st.record(events + events[:2], sync=True)  # the same events twice: stored once
    with st.connect():
        pass
    winner = max(events[:2], key=lambda e: (e["recorded_at"], e["uuid"]))["value"]
    got = ex.get_annotations(1)
    assert got["note"] == winner
    assert got["tags"] == ["x"]
    assert sorted(h["author"] for h in got["history"] if h["action"] == "note") == [
        "alice@a",
        "bob@b",
    ]
    assert len(got["history"]) == 5


# -- the command line --------------------------------------------------------------------------
def test_cli_annotates_and_ls_filters(store_path: Path) -> None:
    _record(store_path)
    s = ["--store", store_path]
    r = invoke("note", "cur", "2", "baseline for the paper", *s)
    assert r.exit_code == 0 and "noted trial 2 of cur" in r.stdout, r.stderr
    assert invoke("name", "cur", "2", "baseline", *s).exit_code == 0
    r = invoke("tag", "cur", "2,4", "paper", "ridge", *s)
    assert r.exit_code == 0 and "tagged trial 2, 4 of cur: paper ridge" in r.stdout
    assert invoke("tag", "cur", "4", "ridge", "--remove", *s).exit_code == 0
    assert invoke("star", "cur", "1-2", *s).exit_code == 0
    assert invoke("star", "cur", "1", "--off", *s).exit_code == 0
    r = invoke("rm", "cur", "3", *s)
    assert r.exit_code == 0 and "deleted trial 3 of cur" in r.stdout
    shown = json.loads(invoke("ls", "cur", "-f", "json", *s).stdout)
    assert [t["trial_id"] for t in shown] == [1, 2, 4]
    by_id = {t["trial_id"]: t for t in shown}
    assert by_id[2]["tags"] == ["paper", "ridge"] and by_id[2]["starred"] is True
    assert by_id[2]["name"] == "baseline" and by_id[2]["note"] == "baseline for the paper"
    assert by_id[4]["tags"] == ["paper"] and by_id[1]["starred"] is False
    tagged = json.loads(invoke("ls", "cur", "--tag", "paper", "-f", "json", *s).stdout)
    assert [t["trial_id"] for t in tagged] == [2, 4]
    both = json.loads(
        invoke("ls", "cur", "--tag", "paper", "--tag", "ridge", "-f", "json", *s).stdout
    )
    assert [t["trial_id"] for t in both] == [2]
    starred = json.loads(invoke("ls", "cur", "--starred", "-f", "json", *s).stdout)
    assert [t["trial_id"] for t in starred] == [2]
    deleted = json.loads(invoke("ls", "cur", "--deleted", "-f", "json", *s).stdout)
    assert [t["trial_id"] for t in deleted] == [3]
    table = invoke("ls", "cur", "-f", "table", *s).stdout
    assert "★" in table.splitlines()[2] and "paper" in table  # trial 2's row: its star, tags
    r = invoke("restore", "cur", "3", *s)
    assert r.exit_code == 0 and "restored trial 3 of cur" in r.stdout
    again = json.loads(invoke("ls", "cur", "-f", "json", *s).stdout)
    assert [t["trial_id"] for t in again] == [1, 2, 3, 4]
    # Nothing to do is no error, and writes nothing.
    before = store_snapshot(store_path)
    r = invoke("restore", "cur", "3", *s)
    assert r.exit_code == 0 and "nothing restored" in r.stderr
    assert store_snapshot(store_path) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["note", "nope", "1", "x"], "Unable to find experiment: nope"),
        (["note", "cur", "9", "x"], "Unable to find trial id: 9"),
        (["note", "cur", "zero", "x"], "not a trial id"),
        (["tag", "cur", "1", ""], "a tag cannot be empty"),
        (["tag", "cur", "1", "ok", "a,b"], "without spaces or commas"),
        (["tag", "cur", "5-3", "x"], "not a trial range"),
        (["name", "cur", "1", "x" * 81], "at most 80 characters"),
        (["star", "cur", "1", "7"], "Unable to find trial id: 7"),
        (["rm", "cur"], "give the trials to delete"),
        (["rm", "cur", "1", "--yes"], "--yes goes with --purge"),
        (["rm", "cur", "1", "--purge"], "asks before it removes anything"),
        (["rm", "cur", "2", "--purge", "--yes", "--store", "/nonexistent/s.duckdb"], "store"),
        (["restore", "cur", "8"], "Unable to find trial id: 8"),
    ],
)
def test_cli_refuses_bad_input_with_one_line_and_exit_2(
    store_path: Path, args: list[str], message: str
) -> None:
    _record(store_path, 2)
    before = store_snapshot(store_path)
    extra = [] if "--store" in args else ["--store", str(store_path)]
    r = invoke(*args, *extra)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert message in one_error_line(r)
    assert store_snapshot(store_path) == before


def test_cli_bad_input_leaves_the_store_file_byte_for_byte(store_path: Path) -> None:
    """In a process of its own, as a user runs it: the file itself is not rewritten."""
    _record(store_path, 2)
    with Store(store_path).connect():
        pass  # every journal in
    snap = store_snapshot(store_path)
    raw = store_path.read_bytes()
    for args in (["tag", "cur", "1", ""], ["note", "cur", "3", "x"], ["star", "other", "1"]):
        proc = subprocess.run(
            [sys.executable, "-m", "tuixp", "--store", str(store_path), *args],
            capture_output=True,
            text=True,
            env=env_with_path(),
            cwd=ROOT,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert store_path.read_bytes() == raw
    assert store_snapshot(store_path) == snap


def test_note_from_stdin(store_path: Path) -> None:
    _record(store_path, 1)
    r = invoke("note", "cur", "latest", "-", "--store", store_path, input_text="a long\nnote\n")
    assert r.exit_code == 0, r.stderr
    assert tuixp.Experiment("cur", store=store_path).get_annotations(1)["note"] == "a long\nnote"


def test_help_lists_the_curation_commands() -> None:
    r = invoke("--help")
    for command in ("note", "name", "tag", "star", "rm", "restore"):
        assert f"\n  {command} " in r.stdout, command


def test_author_comes_from_the_environment_when_set(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = _record(store_path, 1)
    monkeypatch.setenv("TUIXP_AUTHOR", "ci@builder")
    ex.tag(1, "nightly")
    assert ex.get_annotations(1)["history"][-1]["author"] == "ci@builder"
    monkeypatch.delenv("TUIXP_AUTHOR")
    ex.tag(1, "again")
    assert ex.get_annotations(1)["history"][-1]["author"].endswith("@" + os.uname().nodename)


# -- the TUI's windowed queries ----------------------------------------------------------------
def test_trial_window_hides_deleted_trials_and_filters_by_annotations(store_path: Path) -> None:
    from tuixp.store import columns, window

    ex = _record(store_path, 5)
    ex.tag(2, "paper")
    ex.tag(4, "paper", "ridge")
    ex.star(4)
    ex.note(1, "odd one")
    ex.delete_trial(3)
    with Store(store_path).connect() as con:
        lay = columns.layout(con, "cur")

        def ids(**q: Any) -> list[int]:
            query = window.TrialQuery("cur", **q)
            rows = window.page(con, lay, query, 0, 50)
            assert window.count(con, lay, query) == len(rows)
            return [r.trial_id for r in rows]

        assert ids() == [5, 4, 2, 1]
        assert ids(deleted=True) == [3]
        assert ids(where="contains(tags, 'paper')") == [4, 2]
        assert ids(where="starred") == [4]
        assert ids(where="note ILIKE '%odd%'") == [1]
        assert ids(sort="trial_id", descending=False) == [1, 2, 4, 5]
        (row,) = window.rows_for(con, lay, [4])
        assert row.starred and row.tags == ["paper", "ridge"] and row.note is None
