"""The compare screen through Pilot, on real recorded trials, and its named snapshots.

The store is the one ``tests/test_diff_recorded.py`` records (four trials of ``house`` in a real
git repository: a parameter change, an uncommitted code edit with a package upgrade, then a
commit with a new seed and a changed data file), with its times, hosts and paths fixed so that
the snapshots are the same on every machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.message import Message
from textual.widgets import DataTable, Static, TabbedContent
from textual_plotext import PlotextPlot

from tests.test_diff_recorded import record_compare_trials
from tests.tui.conftest import BASE, fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp.store.store import Store
from tuixp.tui.app import create_app
from tuixp.tui.messages import MarksChanged
from tuixp.tui.plotting import plot_dots
from tuixp.tui.screens.compare import (
    CompareScreen,
    CompareToggled,
    ComparisonFailed,
    ComparisonLoaded,
)
from tuixp.tui.screens.detail import DetailScreen
from tuixp.tui.screens.rerun import RerunScreen, cli_value, rerun_command


def _stabilise(path: Path, root: Path) -> None:
    """Fixed times, host and pid; the temporary folder's name replaced by /work."""
    with Store(path).connect() as con:
        con.execute(
            f"""
            UPDATE trial_record SET
              started_at = TIMESTAMPTZ '{BASE}' + to_seconds((trial_id - 1) * 90),
              finished_at = TIMESTAMPTZ '{BASE}' + to_seconds((trial_id - 1) * 90 + 1.25),
              host = 'trainbox', pid = 4242,
              script = replace(script, ?, '/work'),
              data_inputs = replace(data_inputs, ?, '/work')""",
            [str(root), str(root)],
        )
        con.execute("UPDATE metric_record SET recorded_at = TIMESTAMPTZ '2025-06-15 09:00:00+00'")
        con.execute(
            "UPDATE step_record SET started_at = TIMESTAMPTZ '2025-06-15 09:00:00+00', "
            "finished_at = TIMESTAMPTZ '2025-06-15 09:00:00.2+00', worker = 'thread'"
        )


@pytest.fixture(scope="module")
def _compare_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compare")
    store = record_compare_trials(root)
    _stabilise(store, root)
    return store


@pytest.fixture
def compare_store(_compare_template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "trials.duckdb"
    shutil.copy(_compare_template, dest)
    return dest


def _once(messages: list[Message]) -> list[Message]:
    """Each message once: one that bubbles (screen, then app) reaches the hook at each."""
    seen: set[int] = set()
    out = []
    for m in messages:
        if id(m) not in seen:
            seen.add(id(m))
            out.append(m)
    return out


def _app(store: Path) -> Any:
    return create_app(store, clock=fixed_clock, poll_interval=3600)


def _text(screen: Any, selector: str) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()


def _cells(table: DataTable[Any]) -> list[list[str]]:
    return [
        [str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)
    ]


async def _house(pilot: Any, marks: tuple[int, ...] = ()) -> None:
    app = pilot.app
    await loaded(pilot, total=4)
    for m in marks:
        app.toggle_mark(m)
    await pilot.pause()


async def _compared(pilot: Any) -> CompareScreen:
    app = pilot.app
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, CompareScreen) and app.screen.details is not None,
        what="the compare screen",
    )
    return app.screen


async def test_compare_marked_trials_and_show_only_differences(compare_store: Path) -> None:
    messages: list[Message] = []
    app = _app(compare_store)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await _house(pilot, marks=(1, 3))
        await pilot.press("C")
        screen = await _compared(pilot)
        assert screen.trial_ids == [1, 3]
        table = screen.query_one("#params-table", DataTable)
        rows = {r[0].strip("≠ "): r[1:] for r in _cells(table)}
        assert rows["lr"] == ["0.1", "0.05"]
        assert rows["seed"] == ["1", "1"]
        assert rows["result"][0] != rows["result"][1]
        differing = {r.name for _, r in screen.table_rows() if r.differs}
        assert {"lr", "result", "commit", "loss (last)"} <= differing
        assert "seed" not in differing and "status" not in differing
        everything = table.row_count
        await pilot.press("d")
        assert screen.only_differences
        assert table.row_count == len(differing) < everything
        assert all(r.differs for _, r in screen.table_rows())
        assert "only the rows that differ" in _text(screen, "#params-head")
        await pilot.press("d")
        assert table.row_count == everything
    marks = [m for m in messages if isinstance(m, MarksChanged)]
    assert marks[-1].trial_ids == frozenset({1, 3})
    loaded_msgs = [m for m in messages if isinstance(m, ComparisonLoaded)]
    assert [d.trial_id for d in loaded_msgs[0].details] == [1, 3]
    toggles = [(m.option, m.value) for m in _once(messages) if isinstance(m, CompareToggled)]
    assert toggles == [("only_differences", True), ("only_differences", False)]


async def test_tabs_code_and_environment(compare_store: Path) -> None:
    app = _app(compare_store)
    async with app.run_test(size=(160, 48)) as pilot:
        await _house(pilot, marks=(2, 3))
        await pilot.press("C")
        screen = await _compared(pilot)
        tabs = screen.query_one(TabbedContent)
        await pilot.press("2")
        assert tabs.active == "code"
        assert not screen.is_unified()  # 160 columns: side by side
        code = _text(screen, "#compare-code-body")
        assert "train  changed  +1 -1" in code
        assert "w = w + lr * (sum(rows) - w) * 0.9" in code
        assert "git diff (uncommitted)  added" in code
        assert "unchanged: load, score" in code
        await pilot.press("3")
        assert tabs.active == "environment"
        env = _text(screen, "#compare-environment-body")
        lines = [line.strip() for line in env.splitlines() if line.strip()]
        causes = lines[1 : lines.index("packages")]
        assert causes[0].startswith("1. code changed in a step that ran: train (+1 -1 lines)")
        assert causes[1].startswith("2. code changed in a step that ran: the script")
        assert causes[2] == ("3. version changed of a package the code imports: fastmath 1.0 → 1.1")
        assert causes[-1].endswith("unrelated-tool (none) → 0.3")
        assert "changed version (1)" in env and "added (1)" in env
        await pilot.press("4")
        assert tabs.active == "metrics"
        await pilot.press("1")
        assert tabs.active == "params"


async def test_unified_on_narrow_terminals_and_the_toggle(compare_store: Path) -> None:
    messages: list[Message] = []
    app = _app(compare_store)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await _house(pilot, marks=(1, 4))
        await pilot.press("C")
        screen = await _compared(pilot)
        await pilot.press("2")
        assert screen.is_unified()
        unified = _text(screen, "#compare-code-body")
        assert "- " in unified or "-" in unified
        removed = [ln for ln in unified.splitlines() if " - " in ln and "w = w + lr" in ln]
        added = [ln for ln in unified.splitlines() if " + " in ln and "* 0.9" in ln]
        assert removed and added
        await pilot.press("u")
        assert not screen.is_unified()
        split = _text(screen, "#compare-code-body")
        both = [ln for ln in split.splitlines() if "w = w + lr * (sum(rows) - w)" in ln]
        # Side by side: the old and the new line on the same row.
        assert any(ln.count("w = w + lr") == 2 and "* 0.9" in ln for ln in both)
    assert [(m.option, m.value) for m in _once(messages) if isinstance(m, CompareToggled)] == [
        ("unified", False)
    ]


async def test_three_trials_and_next_pair(compare_store: Path) -> None:
    app = _app(compare_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await _house(pilot, marks=(4, 1, 3))
        await pilot.press("C")
        screen = await _compared(pilot)
        assert screen.trial_ids == [1, 3, 4]
        assert [c.label.plain for c in screen.query_one(DataTable).columns.values()] == [
            "",
            "#1",
            "#3",
            "#4",
        ]
        assert screen.other.trial_id == 3
        await pilot.press("n")
        assert screen.other.trial_id == 4
        assert [c.kind for c in screen.causes()][:4] == ["code", "code", "package", "seed"]
        await pilot.press("n")
        assert screen.other.trial_id == 3


async def test_previous_trial_from_browse_and_detail(compare_store: Path) -> None:
    messages: list[Message] = []
    app = _app(compare_store)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await _house(pilot)
        row = app.browse.table.current_row
        assert row is not None
        await pilot.press("v")
        screen = await _compared(pilot)
        assert screen.trial_ids == [row.trial_id - 1, row.trial_id]
        await pilot.press("escape")
        app.open_trial(3)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None,
            what="the detail",
        )
        await pilot.press("v")
        screen = await _compared(pilot)
        assert screen.trial_ids == [2, 3]
        await pilot.press("escape")
        await pilot.press("escape")
        app.compare_previous(1)
        await wait_for(
            pilot,
            lambda: any(isinstance(m, ComparisonFailed) for m in messages),
            what="the refusal",
        )
        assert isinstance(app.screen, CompareScreen) and app.screen.details is None
    failed = [m.message for m in _once(messages) if isinstance(m, ComparisonFailed)]
    assert failed == ["Trial #1 has no previous trial to compare with."]


async def test_compare_needs_two_trials(compare_store: Path) -> None:
    app = _app(compare_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await _house(pilot)
        await pilot.press("C")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        # One mark: compared with the trial under the cursor.
        row = app.browse.table.current_row
        other = 1 if row.trial_id != 1 else 2
        app.toggle_mark(other)
        await pilot.press("C")
        screen = await _compared(pilot)
        assert screen.trial_ids == sorted({other, row.trial_id})


async def test_rerun_in_the_launch_form_or_as_a_command(compare_store: Path) -> None:
    app = _app(compare_store)
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test(size=(120, 30)) as pilot:
        await _house(pilot, marks=(3, 4))
        await pilot.press("C")
        await _compared(pilot)
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, RerunScreen), what="the modal")
        command = app.screen.command
        assert command == (
            f"tuixp run /work/repo/house.py lr=0.05 --seed 2 --store {compare_store}"
        )
        assert copied == [command]
        await pilot.press("escape")
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("R")
        await pilot.pause()
        try:
            from tuixp.tui.screens.launch import LaunchScreen
        except ImportError:  # no launch form: R shows the command too
            assert isinstance(app.screen, RerunScreen)
        else:
            assert isinstance(app.screen, LaunchScreen) and app.screen.prefer == ("house", 4)


def test_cli_values_read_back_as_the_same_parameters() -> None:
    from tuixp.cli import parse_value

    for value in ["ridge", "two words", "True", 0.1, 3, True, None, [1, 2], {"a": 1}, "1"]:
        assert parse_value(cli_value(value), "x") == value
    line = rerun_command({"script": None, "params": {"m": "a b"}, "seed": None}, "/s.duckdb")
    assert line == "tuixp run SCRIPT 'm='\"'\"'a b'\"'\"'' --store /s.duckdb"


# -- snapshots ---------------------------------------------------------------------------------
async def _snap_setup(pilot: Any, tab: str) -> None:
    await _house(pilot, marks=(2, 3))
    await pilot.press("C")
    await _compared(pilot)
    await pilot.press(tab)
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
@pytest.mark.parametrize("tab", ["1", "2", "3", "4"], ids=["params", "code", "env", "metrics"])
def test_compare_snapshot(
    compare_store: Path, snap_compare: Any, tab: str, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Any) -> None:
        await _snap_setup(pilot, tab)

    assert snap_compare(_app(compare_store), terminal_size=size, run_before=run_before)


async def test_command_palette_on_the_compare_screen(compare_store: Path) -> None:
    app = _app(compare_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await _house(pilot, marks=(1, 2))
        await pilot.press("ctrl+p")
        await pilot.press(*"compare the marked")
        await pilot.pause(0.3)
        await pilot.press("enter")
        screen = await _compared(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"only the rows")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.only_differences, what="only differences")
        assert [r.name for _, r in screen.table_rows()] == ["lr", "result", "loss (last)"]


async def test_a_long_series_reaches_plotext_as_two_points_a_column(compare_store: Path) -> None:
    """Two trials of 150,000 points each: the compare screen's plot cuts each series to the
    plot's width (``tuixp.tui.plotting.prepare``, as the detail screen's), never every point."""
    n = 150_000
    with Store(compare_store).connect() as con:
        con.execute(
            """
            INSERT INTO metric_record (trial_uuid, experiment, trial_id, name, epoch, value,
                                       recorded_at, seq, value_type)
            SELECT t.uuid, 'house', t.trial_id, 'step_loss', i, 1.0 / (i + 1) + (i % 7) * 1e-3,
                   TIMESTAMPTZ '2025-06-15 09:00:00+00' + to_microseconds(i * 1000), i, 'float'
            FROM range(?) r(i), (SELECT uuid, trial_id FROM trial_record
                                 WHERE experiment = 'house' AND trial_id IN (1, 3)) t
        """,
            [n],
        )
    app = _app(compare_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await _house(pilot, marks=(1, 3))
        await pilot.press("C")
        screen = await _compared(pilot)
        assert len(screen.details[0].points["step_loss"][3]) == n  # overlaid: every point read
        await pilot.press("4")
        names = screen.metric_names()
        for _ in range(names.index("step_loss") + 1):
            await pilot.press("m")  # step_loss alone
        await pilot.pause()
        plot = screen.query_one("#compare-plot", PlotextPlot)
        assert plot.size.width > 0  # on screen: drawn at its own width
        assert set(screen.plot_drawn) == {("step_loss", 1), ("step_loss", 3)}
        dots = plot_dots(plot.size.width)
        assert all(0 < drawn <= 2 * dots for drawn in screen.plot_drawn.values())
