"""Named SVG snapshots of every screen, at 80x24 and larger, in the dark, light and 16-colour themes.

The store is real (recorded by real trials) with its times fixed, and the app's clock is fixed,
so every run draws the same screens. Update with ``pytest tests/tui --snapshot-update`` and look
at the SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp.tui.app import create_app
from tuixp.tui.screens.detail import DetailScreen


async def _regression(pilot: Any, marks: tuple[int, ...] = (), cursor: int = 0) -> None:
    app = pilot.app
    await loaded(pilot)
    app.select_experiment("regression")
    await loaded(pilot, total=10)
    for m in marks:
        app.toggle_mark(m)
    for _ in range(cursor):
        await pilot.press("j")
    await pilot.pause()


async def _detail(pilot: Any, trial_id: int, tab: str, marks: tuple[int, ...] = ()) -> None:
    app = pilot.app
    await _regression(pilot, marks)
    app.open_trial(trial_id)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None,
        what="the detail",
    )
    await pilot.press(tab)
    await pilot.pause(0.2)


def _app(store: Path, **kw: Any) -> Any:
    return create_app(store, clock=fixed_clock, poll_interval=3600, **kw)


def test_browse_80x24(real_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _regression(pilot, marks=(9, 7), cursor=2)

    assert snap_compare(_app(real_store), terminal_size=(80, 24), run_before=run_before)


def test_browse_sorted_filtered_120x36(real_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await _regression(pilot)
        app.browse.query_one("#filter").value = "model = 'ridge'"
        app.filter_by("model = 'ridge'")
        await wait_for(pilot, lambda: app.query_state.where != "", what="the filter")
        app.sort_by("loss")
        await wait_for(pilot, lambda: app.query_state.sort == "loss", what="the sort")
        await loaded(pilot)

    assert snap_compare(_app(real_store), terminal_size=(120, 36), run_before=run_before)


def test_detail_failed_trial_80x24(real_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _detail(pilot, 10, "1")
        await pilot.press("j", "j", "j", "j", "j", "j", "j", "j", "j", "j")

    assert snap_compare(_app(real_store), terminal_size=(80, 24), run_before=run_before)


def test_metrics_plot_overlay_120x36(real_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _detail(pilot, 1, "2", marks=(6, 9))

    assert snap_compare(_app(real_store), terminal_size=(120, 36), run_before=run_before)


def test_steps_80x24(real_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _detail(pilot, 1, "7")

    assert snap_compare(_app(real_store), terminal_size=(80, 24), run_before=run_before)


def test_help_80x24(real_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(_app(real_store), terminal_size=(80, 24), run_before=run_before)


def test_browse_light_theme_80x24(real_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _regression(pilot, marks=(8,), cursor=1)

    app = _app(real_store, theme="light")
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_browse_16_colours_80x24(real_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _regression(pilot, marks=(8,), cursor=1)

    app = _app(real_store, theme="ansi")
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
