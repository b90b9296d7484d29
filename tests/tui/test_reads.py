"""How many times the TUI opens the store for one read: the launch form's choices and the compare
screen's previous trial each take one connection (they took 1+2N and up to 22 before), counted
on the real DuckDB ``connect`` every store connection goes through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tuixp.store.schema import PER_TRIAL_TABLES
from tuixp.store.store import Store
from tuixp.tui.data import StoreReader
from tuixp.tui.screens.launch import read_choices


@contextmanager
def counted(monkeypatch: pytest.MonkeyPatch, store: Path) -> Iterator[list[str]]:
    """The connections opened on ``store`` meanwhile (read-write and read-only alike)."""
    opened: list[str] = []
    real = duckdb.connect

    def connect(database: Any = ":memory:", *args: Any, **kwargs: Any) -> Any:
        if Path(str(database)).resolve() == store.resolve():
            opened.append("ro" if kwargs.get("read_only") else "rw")
        return real(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", connect)
    yield opened
    monkeypatch.setattr(duckdb, "connect", real)


def _settled_reader(store: Path) -> StoreReader:
    reader = StoreReader(store)
    reader.trials(_query("regression"), 0, 10)  # the first read ingests; later ones need not
    return reader


def _query(experiment: str) -> Any:
    from tuixp.store.window import TrialQuery

    return TrialQuery(experiment)


def test_the_launch_form_reads_its_choices_in_one_connection(
    real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = _settled_reader(real_store)
    with counted(monkeypatch, real_store) as opened:
        choices = read_choices(reader, ("regression", 2))
    assert opened == ["ro"]
    by_name = {c.experiment: c for c in choices}
    assert [c.experiment for c in choices] == ["classify", "regression"]  # latest start first
    assert by_name["regression"].trial_id == 2  # the trial the person had selected
    assert by_name["classify"].trial_id == 3  # the others from their latest
    with Store(real_store).connect(read_only=True) as con:
        seed, params, scheduler = con.execute(
            "SELECT seed, params, scheduler FROM trials WHERE experiment = 'regression' "
            "AND trial_id = 2"
        ).fetchone()
        steps = [
            r[0]
            for r in con.execute(
                "SELECT step FROM code WHERE experiment = 'regression' AND trial_id = 2 "
                "AND step NOT LIKE '<%' ORDER BY ord"
            ).fetchall()
        ]
    regression = by_name["regression"]
    assert (regression.seed, regression.params, regression.scheduler) == (
        seed,
        json.loads(params),
        scheduler,
    )
    assert regression.steps == steps and "train" in steps
    assert regression.script == "train.py"


def test_compare_with_the_previous_trial_reads_in_one_connection(
    real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = _settled_reader(real_store)
    with counted(monkeypatch, real_store) as opened:
        details = reader.details("regression", [9], previous=True)
    assert opened == ["ro"]
    assert details is not None and [d.trial_id for d in details] == [8, 9]
    assert sorted(details[0].metrics["loss"]) == [8, 9]  # overlaid on the first
    assert sorted(details[1].metrics["loss"]) == [9]
    with counted(monkeypatch, real_store) as opened:
        assert reader.details("regression", [1], previous=True) is None
    assert opened == ["ro"]


def test_the_previous_trial_is_found_however_far_back(real_store: Path) -> None:
    """Ids a refused run took leave gaps; the previous trial is the one recorded before, even
    twenty ids back (the compare screen used to look 19 ids back, one connection each)."""
    with Store(real_store).connect() as con:
        con.execute(
            "UPDATE trial_record SET trial_id = trial_id + 30 WHERE experiment = 'regression' "
            "AND trial_id = 10"
        )
        for table in PER_TRIAL_TABLES:
            con.execute(
                f"UPDATE {table} SET trial_id = trial_id + 30 WHERE experiment = 'regression' "
                "AND trial_id = 10"
            )
    details = StoreReader(real_store).details("regression", [40], previous=True)
    assert details is not None and [d.trial_id for d in details] == [9, 40]
