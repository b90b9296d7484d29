"""The SQL screen on a real store: a query, a syntax error, a refused DROP TABLE, history, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Static, TextArea, Tree

from tests.test_cli_units import store_snapshot
from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp.store.store import Store
from tuixp.tui.app import create_app
from tuixp.tui.screens.sql import (
    EXAMPLES,
    QueryFinished,
    QuerySubmitted,
    SqlScreen,
    history_path,
    load_history,
)


def _app(store: Path) -> Any:
    return create_app(store, clock=fixed_clock, poll_interval=3600)


async def _open_sql(pilot: Any) -> SqlScreen:
    await loaded(pilot)
    await pilot.press("colon")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SqlScreen), what="the SQL screen")
    screen = pilot.app.screen
    await wait_for(
        pilot,
        lambda: len(screen.query_one(Tree).root.children) > 0,
        what="the views beside the editor",
    )
    return screen


async def _run(pilot: Any, screen: SqlScreen, text: str) -> None:
    screen.query_one(TextArea).text = text
    before = screen.outcome
    await pilot.press("ctrl+j")
    await wait_for(
        pilot,
        lambda: screen.outcome is not before and not screen.running,
        what="the query to finish",
    )


def _message(screen: SqlScreen) -> str:
    return str(screen.query_one("#sql-message", Static).content)


def _cells(screen: SqlScreen) -> list[list[str]]:
    table = screen.query_one(DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_a_query_shows_its_rows_and_is_kept_in_the_history(real_store: Path) -> None:
    messages: list[Any] = []
    app = _app(real_store)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        screen = await _open_sql(pilot)
        views = [str(node.label) for node in screen.query_one(Tree).root.children]
        assert views[:3] == ["trials", "params", "metrics"]
        await _run(
            pilot,
            screen,
            "SELECT experiment, count(*) AS n, max(result_value) AS best "
            "FROM trials GROUP BY experiment ORDER BY experiment",
        )
        table = screen.query_one(DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["experiment", "n", "best"]
        with Store(real_store).connect() as con:  # the same question, asked without the screen
            expected = con.execute(
                "SELECT experiment, count(*), max(result_value) FROM trials GROUP BY ALL ORDER BY 1"
            ).fetchall()
        assert _cells(screen) == [[e, str(n), format(b, ".6g")] for e, n, b in expected]
        assert [row[:2] for row in _cells(screen)] == [["classify", "3"], ["regression", "10"]]
        assert "2 rows" in _message(screen)
        assert any(isinstance(m, QuerySubmitted) for m in messages)
        assert any(isinstance(m, QueryFinished) and m.outcome.result for m in messages)
    assert load_history(real_store)[-1].startswith("SELECT experiment, count(*)")


async def test_history_is_recalled_with_ctrl_up_in_a_new_session(real_store: Path) -> None:
    history_path(real_store).write_text(
        '{"sql": "SELECT 1 AS one"}\nnot json\n{"sql": "SELECT 2 AS two"}\n'
    )
    async with _app(real_store).run_test(size=(100, 30)) as pilot:
        screen = await _open_sql(pilot)
        editor = screen.query_one(TextArea)
        assert editor.text == "SELECT 2 AS two"  # the last query is back in the editor
        await pilot.press("ctrl+up")
        assert editor.text == "SELECT 2 AS two"
        await pilot.press("ctrl+up")
        assert editor.text == "SELECT 1 AS one"
        await pilot.press("ctrl+down", "ctrl+down")
        assert editor.text == "SELECT 2 AS two"


async def test_examples_run_on_a_real_store(real_store: Path) -> None:
    async with _app(real_store).run_test(size=(100, 30)) as pilot:
        screen = await _open_sql(pilot)
        for i in range(3):  # best trial, metric at epoch N, slowest step
            await pilot.press("f2")
            assert screen.query_one(TextArea).text == EXAMPLES[i][1]
            await _run(pilot, screen, EXAMPLES[i][1])
            assert screen.outcome is not None and screen.outcome.error is None, screen.outcome
        # The slowest step example names the steps that ran in the store.
        steps = {row[1] for row in _cells(screen)}
        assert {"load_data", "train", "score"} <= steps


async def test_a_syntax_error_is_shown_and_the_last_rows_stay(real_store: Path) -> None:
    async with _app(real_store).run_test(size=(100, 30)) as pilot:
        screen = await _open_sql(pilot)
        await _run(
            pilot,
            screen,
            "SELECT trial_id FROM trials WHERE experiment = 'classify' ORDER BY trial_id",
        )
        assert _cells(screen) == [["1"], ["2"], ["3"]]
        await _run(pilot, screen, "SELEC trial_id FROM trials")
        assert "SQL error" in _message(screen) and "syntax error" in _message(screen)
        assert screen.query_one("#sql-message").has_class("-error")
        assert _cells(screen) == [["1"], ["2"], ["3"]]


async def test_drop_table_is_refused_and_the_store_is_unchanged(real_store: Path) -> None:
    before = store_snapshot(real_store)
    async with _app(real_store).run_test(size=(100, 30)) as pilot:
        screen = await _open_sql(pilot)
        for statement in (
            "DROP TABLE trial_record",
            "DELETE FROM trial_record",
            "SELECT 1; DROP VIEW trials",
        ):
            await _run(pilot, screen, statement)
            assert screen.outcome is not None and screen.outcome.refused, statement
            assert _message(screen).startswith("Refused:")
        await _run(pilot, screen, "SELECT count(*) FROM trial_record")
        assert _cells(screen) == [["13"]]
    after = store_snapshot(real_store)
    # The history beside the store gained the queries; the database and its files did not change.
    after["files"].remove(history_path(real_store).name)
    assert after == before
    assert "DROP TABLE trial_record" in load_history(real_store)


async def test_a_long_query_is_cancelled(real_store: Path) -> None:
    async with _app(real_store).run_test(size=(100, 30)) as pilot:
        screen = await _open_sql(pilot)
        screen.query_one(
            TextArea
        ).text = "SELECT count(*) FROM range(100000000000) a WHERE hash(a.range) % 7 = 3"
        await pilot.press("ctrl+j")
        await wait_for(pilot, lambda: screen._con is not None, what="the query to start")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: not screen.running, timeout=20, what="the cancel")
        assert screen.outcome is not None and screen.outcome.cancelled
        assert "cancelled" in _message(screen)
        # The screen still works after a cancel.
        await _run(pilot, screen, "SELECT 41 + 1 AS answer")
        assert _cells(screen) == [["42"]]


async def test_the_palette_opens_the_sql_screen(real_store: Path) -> None:
    async with _app(real_store).run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*list("SQL query"))
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SqlScreen), what="SQL screen")


def test_snapshot_sql_results_80x24(real_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        screen = await _open_sql(pilot)
        await pilot.press("f2")  # the first example: best trial per experiment
        await _run(pilot, screen, screen.query_one(TextArea).text)
        await pilot.press("f3")  # focus the results: no blinking cursor in the picture
        await pilot.pause(0.1)

    assert snap_compare(_app(real_store), terminal_size=(80, 24), run_before=run_before)


async def test_the_best_trial_example_follows_each_experiments_goal(real_store: Path) -> None:
    app = _app(real_store)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await _open_sql(pilot)
        await pilot.press("f2")  # the first example
        await _run(pilot, screen, screen.query_one(TextArea).text)
        rows = {r[0]: r for r in _cells(screen)}
    with Store(real_store).connect() as con:
        # classify says goal="max"; regression says nothing, so the highest counts.
        results = dict(
            con.execute(
                "SELECT experiment || '#' || trial_id, result_value FROM trials "
                "WHERE status = 'succeeded'"
            ).fetchall()
        )
    assert rows["classify"][1] == "max" and rows["regression"][1] == "NULL"
    for exp in ("classify", "regression"):
        best = max(v for k, v in results.items() if k.startswith(exp + "#"))
        assert rows[exp][3] == format(best, ".6g")
        assert results[f"{exp}#{rows[exp][2]}"] == best  # best_trial is a trial with it
