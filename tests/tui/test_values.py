"""Values round-trip faithfully, or are refused (issue 15 item 11).

A parameter that ran as ``None`` shows as ``None`` in ``tuixp ls``, ``tuixp show``, the trial
table, the compare screen and the launch form, and launching it again from the form passes
``None``, not the parameter's default. ``save_metric(epoch=1.5)`` is refused with a clear
message instead of being stored as epoch 1; ``epoch=2.0`` is epoch 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input

from tests.test_cli_subprocess import tuixp
from tests.tui.conftest import env_for_subprocess, fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp.store import sql as store_sql
from tuixp.tui.app import create_app
from tuixp.tui.screens.compare import CompareScreen
from tuixp.tui.screens.launch import LaunchScreen, ParamRow
from tuixp.tui.screens.progress import ProgressScreen

SCRIPT = textwrap.dedent("""
    import tuixp

    ex = tuixp.Experiment("forest")
    max_depth = ex.parameter("max_depth", default=5)
    epoch = ex.parameter("epoch", default=0)


    @ex.result
    def fit(max_depth, epoch):
        ex.save_metric("depth", epoch=epoch, value=-1 if max_depth is None else max_depth)
        return "unbounded" if max_depth is None else max_depth


    s = fit(max_depth, epoch)
""")


def _run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuixp", "run", *map(str, args)],
        capture_output=True,
        text=True,
        env=env_for_subprocess(),
        timeout=120,
    )


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("values")
    script, store = root / "forest.py", root / "forest.duckdb"
    script.write_text(SCRIPT)
    for value in ("None", "3"):
        done = _run(script, f"max_depth={value}", "--store", store)
        assert done.returncode == 0, done.stderr
    return store


def _params(store: Path) -> dict[int, Any]:
    rows = store_sql.query(store, "SELECT trial_id, params FROM trials ORDER BY trial_id").rows
    return {tid: json.loads(p) for tid, p in rows}


def test_none_is_recorded_as_none(forest: Path) -> None:
    assert _params(forest)[1] == {"max_depth": None, "epoch": 0}


def test_ls_and_show_print_none(forest: Path) -> None:
    table = tuixp("ls", "forest", "-f", "table", "--store", forest)
    trial_1 = next(line for line in table.stdout.splitlines() if line.split()[:1] == ["1"])
    assert "max_depth=None" in trial_1
    shown = tuixp("show", "forest", "1", "--store", forest).stdout.splitlines()
    assert "  max_depth  None" in shown


async def test_the_trial_table_and_compare_screen_show_none(forest: Path) -> None:
    app = create_app(forest, clock=fixed_clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, total=2)
        table = app.browse.table
        column = next(i for i, c in enumerate(table.columns) if c.header == "max_depth")
        row = next(r for r in table.visible_rows() if r.trial_id == 1)
        assert table.columns[column].value(row, 0.0)[0] == "None"
        app.push_screen(CompareScreen("forest", [1, 2]))
        await wait_for(pilot, lambda: app.screen.details is not None, what="the comparison")
        grid = app.screen.query_one("#params-table", DataTable)
        cells = {
            str(grid.get_row_at(i)[0]).strip("≠ "): [str(c) for c in grid.get_row_at(i)[1:]]
            for i in range(grid.row_count)
        }
        assert cells["max_depth"] == ["None", "3"]
        assert cells["result"] == ["unbounded", "3"]


async def test_relaunching_a_none_trial_from_the_form_passes_none(forest: Path) -> None:
    app = create_app(forest, poll_interval=0.5)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, total=2)
        app.push_screen(LaunchScreen("forest", 1))
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, LaunchScreen) and app.screen.choice is not None,
            what="the launch form",
        )
        await pilot.pause()
        screen = app.screen
        row = next(r for r in screen.query(ParamRow) if r.param == "max_depth")
        assert row.query_one(".param-value", Input).value == "None"
        assert screen.build_request().params["max_depth"] == "None"
        await pilot.press("ctrl+j")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="progress")
        launch = app.launches.items[-1]
        await wait_for(pilot, lambda: launch.done, timeout=60, what="the launch to end")
        assert launch.state == "succeeded", (launch.message, list(launch.stderr))
    assert _params(forest)[3]["max_depth"] is None  # not the default, 5


def test_a_fractional_epoch_is_refused_and_a_whole_float_is_kept(forest: Path) -> None:
    script = forest.parent / "forest.py"
    refused = _run(script, "max_depth=2", "epoch=1.5", "--store", forest)
    assert refused.returncode == 1
    assert "epoch must be a whole number, not 1.5" in refused.stderr
    whole = _run(script, "max_depth=2", "epoch=2.0", "--store", forest)
    assert whole.returncode == 0, whole.stderr
    rows = store_sql.query(
        forest,
        "SELECT t.trial_id, t.status, m.epoch FROM trials t LEFT JOIN metrics m USING "
        "(experiment, trial_id) WHERE t.trial_id > 3 ORDER BY t.trial_id",
    ).rows
    assert [(status, epoch) for _, status, epoch in rows] == [("failed", None), ("succeeded", 2)]
