"""Curating from the TUI through Pilot: the keys on the trial table and the detail screen (star,
tags, note, name, delete with a confirm, restore), the table's star, name and tags columns, and
the annotations on the detail's overview and the compare screen; snapshots of each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from textual.command import CommandInput, CommandPalette
from textual.widgets import DataTable, Static

from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp import curation
from tuixp.store import annotation
from tuixp.store.store import Store
from tuixp.tui.app import create_app
from tuixp.tui.screens.browse import BrowseScreen
from tuixp.tui.screens.compare import CompareScreen
from tuixp.tui.screens.detail import DetailScreen

NOTE = (
    "The baseline for the paper: lasso at lr 0.1 on the depth-4 data. Trial 8 is the same with "
    "ridge; compare them before changing the loss.\nSecond line: rerun after the data fix."
)


def _state(path: Path, experiment: str, trial_id: int) -> Any:
    with Store(path).connect() as con:
        return annotation.of_trial(con, experiment, trial_id)


def _annotate(path: Path) -> None:
    """Through the API, as another process would: trial 9 starred, named, tagged, with a note;
    trial 8 tagged with a tag list longer than the table's column (tags are kept sorted)."""
    store = Store(path)
    curation.annotate(store, "regression", [9], "star")
    curation.annotate(store, "regression", [9], "name", ["baseline"])
    curation.annotate(store, "regression", [9], "tag", ["paper", "lasso"])
    curation.annotate(store, "regression", [9], "note", [NOTE])
    curation.annotate(store, "regression", [8], "tag", ["ridge", "sweep-2025-06", "check"])


def _app(store: Path) -> Any:
    return create_app(store, clock=fixed_clock, poll_interval=3600)


def _text(screen: Any, selector: str) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()


async def _regression(pilot: Any) -> None:
    await loaded(pilot)
    pilot.app.select_experiment("regression")
    await loaded(pilot, total=10)


async def _detail(pilot: Any, trial_id: int) -> DetailScreen:
    app = pilot.app
    app.open_trial(trial_id)
    await wait_for(
        pilot,
        lambda: (
            isinstance(app.screen, DetailScreen)
            and app.screen.trial_id == trial_id
            and app.screen.detail is not None
        ),
        what="the detail",
    )
    return app.screen


async def _compare(pilot: Any, trial_ids: list[int]) -> CompareScreen:
    app = pilot.app
    app.open_compare(trial_ids)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, CompareScreen) and app.screen.details is not None,
        what="the compare screen",
    )
    return app.screen


# -- the trial table ---------------------------------------------------------------------------
async def test_star_tags_note_delete_and_restore_from_the_table(real_store: Path) -> None:
    app = create_app(real_store, clock=fixed_clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, total=3)
        exp = app.experiment
        tid = app.browse.table.current_row.trial_id
        await pilot.press("asterisk")
        await wait_for(pilot, lambda: _state(real_store, exp, tid).starred, what="the star")
        await pilot.press("a")
        await pilot.press(*"paper ridge", "enter")
        await wait_for(
            pilot, lambda: _state(real_store, exp, tid).tags == ["paper", "ridge"], what="the tags"
        )
        await pilot.press("n")
        await pilot.press(*"why", "ctrl+s")
        await wait_for(pilot, lambda: _state(real_store, exp, tid).note == "why", what="the note")
        await pilot.press("d")
        await pilot.press("n")  # no: nothing deleted
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: _state(real_store, exp, tid).deleted, what="the delete")
        await loaded(pilot, total=2)
        await pilot.press("D")
        await loaded(pilot, total=1)
        assert app.browse.table.current_row.trial_id == tid
        await pilot.press("u")
        await wait_for(pilot, lambda: not _state(real_store, exp, tid).deleted, what="the restore")


async def test_the_table_shows_the_star_name_and_tags_and_sorts_starred_first(
    real_store: Path,
) -> None:
    app = _app(real_store)
    async with app.run_test(size=(160, 30)) as pilot:
        await _regression(pilot)
        table = app.browse.table
        # No trial has a name or a tag yet: only the star column, empty, beside the id.
        assert [c.header for c in table.columns][:3] == ["#", "★", "status"]
        assert "tags" not in [c.header for c in table.columns]
        assert "★" not in table.render_line(1).text
        _annotate(real_store)
        app.poll(force=True)
        await wait_for(pilot, lambda: "tags" in [c.header for c in table.columns], what="tags")
        headers = [c.header for c in table.columns]
        assert "name" in headers and headers.index("tags") < headers.index("lr")
        lines = {int(line.split()[0]): line for line in map(str, _lines(table, 10))}
        assert lines[9].split()[1] == "★" and "baseline" in lines[9] and "lasso, paper" in lines[9]
        assert "★" not in lines[8]
        # The tags cut to the column's width, marked with "…".
        width = next(c.width for c in table.columns if c.header == "tags")
        assert ("check, ridge, sweep-2025-06"[: width - 1] + "…") in lines[8]
        # Sorting by the star column (s on it) puts the starred trial first.
        await pilot.press("l")
        assert table.columns[table.cursor_column].sort == "starred"
        await pilot.press("s")
        await wait_for(pilot, lambda: app.query_state.sort == "starred", what="the sort")
        await loaded(pilot, total=10)
        assert [r.trial_id for r in table.visible_rows()][:3] == [9, 10, 8]
        # The filter words work on what the columns show.
        app.filter_by("contains(tags, 'sweep-2025-06')")
        await wait_for(pilot, lambda: table.total == 1, what="the filter")
        assert table.current_row.trial_id == 8


def _lines(table: Any, n: int) -> list[str]:
    return [table.render_line(y).text for y in range(1, n + 1)]


# -- the detail screen -------------------------------------------------------------------------
async def test_curation_keys_on_the_detail_screen(real_store: Path) -> None:
    app = _app(real_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await _regression(pilot)
        screen = await _detail(pilot, 4)
        assert "Annotations" not in _text(screen, "#overview-body")
        await pilot.press("asterisk")
        await wait_for(pilot, lambda: _state(real_store, "regression", 4).starred, what="star")
        await wait_for(
            pilot, lambda: "★ starred" in _text(screen, "#overview-body"), what="the star shown"
        )
        await pilot.press("a", *"paper", "enter")
        await wait_for(
            pilot, lambda: _state(real_store, "regression", 4).tags == ["paper"], what="the tag"
        )
        await pilot.press("N", *"second try", "enter")
        await wait_for(
            pilot,
            lambda: _state(real_store, "regression", 4).name == "second try",
            what="the name",
        )
        await pilot.press("n", *"a long note", "enter", *"on two lines", "ctrl+s")
        await wait_for(
            pilot,
            lambda: _state(real_store, "regression", 4).note == "a long note\non two lines",
            what="the note",
        )
        await wait_for(
            pilot, lambda: "on two lines" in _text(screen, "#overview-body"), what="the note shown"
        )
        text = _text(screen, "#overview-body")
        assert "second try" in text and "paper" in text and "a long note" in text
        # The star again: unstarred, and the overview follows.
        await pilot.press("asterisk")
        await wait_for(pilot, lambda: not _state(real_store, "regression", 4).starred, what="off")
        await wait_for(pilot, lambda: "★" not in _text(screen, "#overview-body"), what="unstar")
        # d asks; n keeps it; y deletes it and goes back to the table, which no longer lists it.
        await pilot.press("d", "n")
        assert (
            isinstance(app.screen, DetailScreen) and not _state(real_store, "regression", 4).deleted
        )
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, BrowseScreen), what="the table")
        assert _state(real_store, "regression", 4).deleted
        await loaded(pilot, total=9)
        await wait_for(
            pilot,
            lambda: 4 not in [r.trial_id for r in app.browse.table.visible_rows()],
            what="gone",
        )
        # Opened from the deleted view, u restores it; the detail stays, saying so no more.
        await pilot.press("D")
        await loaded(pilot, total=1)
        await pilot.press("enter")
        screen = await _detail(pilot, 4)
        assert "(u restores)" in _text(screen, "#overview-body")
        await pilot.press("d")  # already deleted: nothing to ask
        assert app.screen is screen
        await pilot.press("u")
        await wait_for(
            pilot, lambda: not _state(real_store, "regression", 4).deleted, what="the restore"
        )
        await wait_for(
            pilot, lambda: "(u restores)" not in _text(screen, "#overview-body"), what="restored"
        )
        assert app.screen is screen


async def test_u_on_a_trial_not_deleted_changes_nothing(real_store: Path) -> None:
    app = _app(real_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await _regression(pilot)
        await _detail(pilot, 2)
        with Store(real_store).connect() as con:
            before = annotation.history(con, "regression")
        await pilot.press("u")
        await pilot.pause(0.2)
        with Store(real_store).connect() as con:
            assert annotation.history(con, "regression") == before


async def _palette(pilot: Any, command: str) -> None:
    """Open the palette, search for ``command`` (the whole text at once: typing it key by key
    searches again at each key) and run the first hit."""
    app = pilot.app
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
    app.screen.query_one(CommandInput).value = command
    await pilot.pause(0.3)
    await pilot.press("enter")


async def test_the_palette_curates_the_current_trial(real_store: Path) -> None:
    """ctrl+p offers the curation keys on the table's current row and on the detail's trial,
    named for the trial and its state (Star or Unstar, Delete or Restore)."""
    app = _app(real_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await _regression(pilot)
        top = app.browse.table.current_row.trial_id
        await _palette(pilot, f"star trial #{top}")
        await wait_for(pilot, lambda: _state(real_store, "regression", top).starred, what="star")
        await _palette(pilot, f"tag trial #{top}")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "LineEditor", what="tags")
        await pilot.press(*"paper", "enter")
        await wait_for(
            pilot, lambda: _state(real_store, "regression", top).tags == ["paper"], what="the tag"
        )
        screen = await _detail(pilot, top)
        await wait_for(
            pilot, lambda: "★ starred" in _text(screen, "#overview-body"), what="the star shown"
        )
        await _palette(pilot, f"unstar trial #{top}")
        await wait_for(
            pilot, lambda: not _state(real_store, "regression", top).starred, what="unstarred"
        )
        await _palette(pilot, f"delete trial #{top}")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "Confirm", what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, BrowseScreen), what="the table")
        assert _state(real_store, "regression", top).deleted
        await loaded(pilot, total=9)
        await _palette(pilot, "show deleted trials")
        await loaded(pilot, total=1)
        assert app.browse.table.current_row.trial_id == top
        await _palette(pilot, f"restore trial #{top}")
        await wait_for(
            pilot, lambda: not _state(real_store, "regression", top).deleted, what="restored"
        )


# -- the compare screen ------------------------------------------------------------------------
async def test_compare_shows_each_trials_name_star_tags_and_note(real_store: Path) -> None:
    _annotate(real_store)
    app = _app(real_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await _regression(pilot)
        screen = await _compare(pilot, [7, 8, 9])
        rows = dict(screen.annotation_rows())
        assert rows["name"] == ["", "", "baseline"]
        assert rows["★"] == ["", "", "★"]
        assert rows["tags"] == ["", "check, ridge, sweep-2025-06", "lasso, paper"]
        note = rows["note"][2]
        assert note.startswith("The baseline for the paper") and note.endswith("…")
        assert "\n" not in note and rows["note"][:2] == ["", ""]
        table = screen.query_one("#params-table", DataTable)
        first = [str(getattr(c, "plain", c)).strip() for c in table.get_row_at(0)]
        assert first == ["name", "", "", "baseline"]
        # "Only differences" filters parameters, never the trials' own labels.
        await pilot.press("d")
        first = [str(getattr(c, "plain", c)).strip() for c in table.get_row_at(0)]
        assert first == ["name", "", "", "baseline"]


async def test_compare_without_annotations_has_no_annotation_rows(real_store: Path) -> None:
    app = _app(real_store)
    async with app.run_test(size=(120, 36)) as pilot:
        await _regression(pilot)
        screen = await _compare(pilot, [1, 2])
        assert screen.annotation_rows() == []


# -- snapshots ---------------------------------------------------------------------------------
def test_snapshot_table_with_a_starred_and_a_tagged_trial_120x36(
    real_store: Path, snap_compare: Any
) -> None:
    _annotate(real_store)

    async def run_before(pilot: Any) -> None:
        await _regression(pilot)  # the cursor on trial 10: trial 9's star in its own colour
        await pilot.pause()

    assert snap_compare(_app(real_store), terminal_size=(120, 36), run_before=run_before)


def test_snapshot_detail_overview_with_a_note_80x24(real_store: Path, snap_compare: Any) -> None:
    _annotate(real_store)

    async def run_before(pilot: Any) -> None:
        await _regression(pilot)
        await _detail(pilot, 9)
        await pilot.pause(0.2)

    assert snap_compare(_app(real_store), terminal_size=(80, 24), run_before=run_before)


def test_snapshot_compare_with_notes_120x36(real_store: Path, snap_compare: Any) -> None:
    _annotate(real_store)

    async def run_before(pilot: Any) -> None:
        await _regression(pilot)
        await _compare(pilot, [7, 8, 9])
        await pilot.pause(0.2)

    assert snap_compare(_app(real_store), terminal_size=(120, 36), run_before=run_before)
