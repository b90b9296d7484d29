"""The trial table shows where a merged trial was recorded (docs/sharing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded
from tuixp.store import synthetic
from tuixp.store.merge import merge
from tuixp.store.store import Store
from tuixp.tui.app import create_app


async def test_the_table_shows_a_merged_trials_origin(tmp_path: Path) -> None:
    source, here = tmp_path / "gpu.duckdb", tmp_path / "here.duckdb"
    synthetic.generate(source, trials=3, experiment="search")
    synthetic.generate(here, trials=2, experiment="search")
    with Store(source).connect() as con:  # another machine's trials: their own uuids and host
        con.execute("UPDATE trial_record SET uuid = 'gpu-' || uuid, host = 'gpu-box'")
    merge(source, Store(here))
    app: Any = create_app(here, clock=fixed_clock)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        app.select_experiment("search")
        await loaded(pilot, total=5)
        table = app.browse.table
        assert "origin" in [c.sort for c in table.columns]
        shown = {r.trial_id: r.origin for r in table.visible_rows()}
        assert shown == {1: None, 2: None, 3: "gpu-box #1", 4: "gpu-box #2", 5: "gpu-box #3"}


async def test_no_origin_column_without_merged_trials(tmp_path: Path) -> None:
    here = tmp_path / "here.duckdb"
    synthetic.generate(here, trials=2, experiment="search")
    app: Any = create_app(here, clock=fixed_clock)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        app.select_experiment("search")
        await loaded(pilot, total=2)
        assert "origin" not in [c.sort for c in app.browse.table.columns]
