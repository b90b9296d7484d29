"""Curating from the TUI through Pilot: star, tags, note, delete with a confirm, restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp.store import annotation
from tuixp.store.store import Store
from tuixp.tui.app import create_app


def _state(path: Path, experiment: str, trial_id: int) -> Any:
    with Store(path).connect() as con:
        return annotation.of_trial(con, experiment, trial_id)


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
