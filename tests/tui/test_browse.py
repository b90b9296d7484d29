"""The browse screen through Pilot: experiments, trials, keys, sort, filter, marks, messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.message import Message

from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp.store.store import Store
from tuixp.tui.app import create_app
from tuixp.tui.messages import (
    FilterRejected,
    MarksChanged,
    QueryChanged,
    StoreRefreshed,
    TrialsLoaded,
)
from tuixp.tui.screens.detail import DetailScreen
from tuixp.tui.screens.help import HelpScreen


def _app(path: Path, **kw: Any) -> Any:
    return create_app(path, clock=fixed_clock, **kw)


def _db(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with Store(path).connect() as con:
        return con.execute(sql).fetchall()


async def test_experiments_and_trials_show(real_store: Path) -> None:
    messages: list[Message] = []
    app = _app(real_store)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await loaded(pilot, total=3)
        names = [e["experiment"] for e in app.experiments]
        assert sorted(names) == ["classify", "regression"]
        table = app.browse.table
        # The most recently run experiment is selected first: classify ran last.
        assert app.experiment == names[0] == "classify"
        await pilot.press("e", "down", "enter")
        await loaded(pilot, total=10)
        assert app.experiment == "regression"
        rows = table.visible_rows()
        assert [r.trial_id for r in rows][:3] == [10, 9, 8]
        assert rows[0].status == "failed" and rows[0].error.startswith("FloatingPointError")
        assert rows[1].params == {"lr": 0.1, "depth": 4, "model": "lasso"}
        assert set(rows[1].metrics) == {"loss", "accuracy"}
        headers = [c.header for c in table.columns]
        # The star, the change flags and the outcome first (on screen at 80 columns): each
        # metric's last value and its best (by the metric's goal), then the parameters.
        assert headers[:12] == [
            "#",
            "★",
            "status",
            "CDEI",
            "result",
            "accuracy",
            "best_accuracy",
            "loss",
            "best_loss",
            "lr",
            "depth",
            "model",
        ]
    kinds = {type(m) for m in messages}
    assert StoreRefreshed in kinds and TrialsLoaded in kinds and QueryChanged in kinds


async def test_vim_keys_and_jumps(real_store: Path) -> None:
    app = _app(real_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        table = app.browse.table
        await pilot.press("j", "j", "down")
        assert table.cursor_row == 3 and table.current_row.trial_id == 7
        await pilot.press("k")
        assert table.current_row.trial_id == 8
        await pilot.press("G")
        assert table.cursor_row == 9 and table.current_row.trial_id == 1
        await pilot.press("g")
        assert table.current_row.trial_id == 10
        await pilot.press("end")
        assert table.current_row.trial_id == 1
        await pilot.press("home")
        assert table.current_row.trial_id == 10


async def test_sort_by_column_key_and_reverse(real_store: Path) -> None:
    messages: list[Message] = []
    app = _app(real_store)
    async with app.run_test(size=(120, 30), message_hook=messages.append) as pilot:
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        table = app.browse.table
        result_col = [c.sort for c in table.columns].index("result")
        for _ in range(result_col):
            await pilot.press("l")
        assert table.columns[table.cursor_column].sort == "result"
        await pilot.press("s")
        await wait_for(pilot, lambda: app.query_state.sort == "result", what="sort by result")
        await loaded(pilot, total=10)
        expected = [
            r[0]
            for r in _db(
                real_store,
                """
            SELECT trial_id FROM trial_record WHERE experiment = 'regression'
            ORDER BY result_value DESC NULLS LAST, trial_id DESC""",
            )
        ]
        assert [r.trial_id for r in table.visible_rows()] == expected
        await pilot.press("s")
        await wait_for(pilot, lambda: not app.query_state.descending, what="reversed sort")
        await loaded(pilot, total=10)
        values = [r.result_value for r in table.visible_rows() if r.result_value is not None]
        assert values == sorted(values)
        assert table.visible_rows()[-1].status == "failed"  # no result sorts last both ways
    sorts = [m.query.sort for m in messages if isinstance(m, QueryChanged)]
    assert sorts[-2:] == ["result", "result"]


async def test_sort_by_metric_and_parameter(real_store: Path) -> None:
    app = _app(real_store)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        app.sort_by("loss")
        await wait_for(pilot, lambda: app.query_state.sort == "loss", what="sort by loss")
        await loaded(pilot, total=10)
        losses = [r.metrics["loss"] for r in app.browse.table.visible_rows() if r.metrics]
        assert losses == sorted(losses, reverse=True) and len(losses) == 9
        app.sort_by("lr")
        await wait_for(pilot, lambda: app.query_state.sort == "lr", what="sort by lr")
        await loaded(pilot, total=10)
        lrs = [r.params["lr"] for r in app.browse.table.visible_rows()]
        assert lrs == sorted(lrs, reverse=True) and lrs[0] == 5.0


async def test_filter_box_applies_and_rejects(real_store: Path) -> None:
    messages: list[Message] = []
    app = _app(real_store)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        await pilot.press("slash")
        assert app.focused is not None and app.focused.id == "filter"
        await pilot.press(*"model = 'lasso' AND loss < 0.9", "enter")
        await wait_for(pilot, lambda: app.query_state.where != "", what="the filter")
        await loaded(pilot)
        expected = _db(
            real_store,
            """
            SELECT count(*) FROM trial_record WHERE experiment = 'regression'
            AND json_extract_string(params, '$.model') = 'lasso'
            AND trial_id IN (SELECT trial_id FROM metric_record WHERE experiment = 'regression'
                             AND name = 'loss' GROUP BY trial_id HAVING arg_max(value, epoch) < 0.9)
        """,
        )[0][0]
        assert app.browse.table.total == expected > 0
        assert all(r.params["model"] == "lasso" for r in app.browse.table.visible_rows())
        # A broken filter: one clear message, the previous query stays.
        app.browse.query_one("#filter").value = "nosuch > 1"
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any(isinstance(m, FilterRejected) for m in messages),
            what="the filter to be refused",
        )
        assert "nosuch" in app.browse.status.problem
        assert app.query_state.where == "model = 'lasso' AND loss < 0.9"
        app.browse.query_one("#filter").value = "1=1; DROP TABLE trial_record"
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: sum(isinstance(m, FilterRejected) for m in messages) == 2,
            what="the second refusal",
        )
        await pilot.press("escape", "x")
        await wait_for(pilot, lambda: app.query_state.where == "", what="the filter cleared")
        await loaded(pilot, total=10)
    assert _db(real_store, "SELECT count(*) FROM trial_record")[0][0] == 13


async def test_filter_box_refuses_queries_and_files(real_store: Path, tmp_path: Path) -> None:
    """The filter runs on the TUI's read-write connection: a subquery or a file read typed into
    it is refused with one clear line, and nothing of the file reaches the screen."""
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret-first-line\nsecond\n")
    messages: list[Message] = []
    app = _app(real_store)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        attacks = [
            f"(SELECT count(*) FROM read_csv('{secret}')) > 0",
            f"trial_id = (SELECT content FROM read_text('{secret}'))::INT",
            "trial_id = (SELECT content FROM read_text('/etc/passwd'))::INT",
            f"read_text('{secret}') IS NOT NULL",
        ]
        for n, attack in enumerate(attacks, 1):
            app.browse.query_one("#filter").value = attack
            app.browse.query_one("#filter").focus()
            await pilot.press("enter")
            await wait_for(
                pilot,
                lambda n=n: sum(isinstance(m, FilterRejected) for m in messages) == n,
                what=f"the refusal of {attack!r}",
            )
            # A poll that reads the store again keeps the refusal on screen.
            refreshed = sum(isinstance(m, StoreRefreshed) for m in messages)
            app.poll(force=True)
            await wait_for(
                pilot,
                lambda r=refreshed: sum(isinstance(m, StoreRefreshed) for m in messages) > r,
                what="a poll after the refusal",
            )
            problem = app.browse.status.problem
            assert "cannot hold a query" in problem or "cannot call read_text()" in problem
            assert len(problem.splitlines()) == 1
            assert app.query_state.where == "" and app.browse.table.total == 10
            screen = app.export_screenshot()
            assert "s3cret" not in screen + problem and "root:" not in screen + problem
    assert _db(real_store, "SELECT count(*) FROM trial_record")[0][0] == 13


async def test_marks_post_messages(real_store: Path) -> None:
    messages: list[Message] = []
    app = _app(real_store)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        await pilot.press("space", "space", "j", "space")
        assert app.marked() == frozenset({10, 9, 7})
        await pilot.press("k", "space")
        assert app.marked() == frozenset({10, 9})
        assert "marked: #9, #10" in app.browse.status.info
        await pilot.press("c")
        assert app.marked() == frozenset()
    changes = [m for m in messages if isinstance(m, MarksChanged)]
    assert [sorted(m.trial_ids) for m in changes] == [[10], [9, 10], [7, 9, 10], [9, 10], []]
    assert all(m.experiment == "regression" for m in changes)


async def test_help_screen_opens_and_closes(real_store: Path) -> None:
    app = _app(real_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_sorts_and_opens(real_store: Path) -> None:
    app = _app(real_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        await pilot.press("ctrl+p")
        await pilot.press(*"sort by accuracy")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query_state.sort == "accuracy", what="palette sort")
        await loaded(pilot, total=10)
        top = app.browse.table.current_row
        await pilot.press("ctrl+p")
        await pilot.press(*f"open trial #{top.trial_id}")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail screen")
        assert app.screen.trial_id == top.trial_id


async def test_quit_key_exits(real_store: Path) -> None:
    app = _app(real_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_unknown_status_is_shown_plainly(real_store: Path) -> None:
    """A status written by a newer tuixp (or by hand) must not break the table."""
    with Store(real_store).connect() as con:
        con.execute(
            "UPDATE trial_record SET status = 'paused' WHERE experiment = 'regression' "
            "AND trial_id = 9"
        )
    app = _app(real_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        await pilot.press("j")
        await pilot.pause()
        assert app.browse.table.current_row.status == "paused"
        assert "paused" in app.export_screenshot()


async def test_seven_digit_trial_ids_and_big_counts_fit(tmp_path: Path) -> None:
    from tuixp.store import synthetic
    from tuixp.tui.widgets.experiment_list import describe

    path = tmp_path / "big.duckdb"
    synthetic.generate(path, 20, experiment="search")
    # As if a million trials came before: ids 999,991 to 1,000,010.
    for table in ("trial_record", "param_record", "metric_record", "step_record"):
        _db(path, f"UPDATE {table} SET trial_id = trial_id + 999990")
    app = _app(path)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, total=20)
        table = app.browse.table
        assert table.columns[0].width == 7
        top = table.render_line(1).text
        assert "1000010" in top and "…" not in top.split()[0]
    # The experiment list's counts stay short: 1,250,000 trials, 79,384 failed.
    text = describe(
        {
            "experiment": "search",
            "trials": 1_250_000,
            "failed": 79_384,
            "running": 3,
            "goal": None,
            "max_result": 0.5,
        }
    ).plain
    assert text.splitlines()[1] == "1.2M trials 79k failed 3 running"


async def test_a_failure_that_repeats_every_poll_is_notified_once(tmp_path: Path) -> None:
    from tuixp.store import synthetic

    path = tmp_path / "odd.duckdb"
    synthetic.generate(path, 5, experiment="search")
    # A store that says schema 3 but lacks a column of it (hand-edited, or a broken copy):
    # every poll fails the same way.
    _db(path, "ALTER TABLE experiment_record DROP COLUMN goal")
    app = _app(path, poll_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(
            pilot, lambda: "goal" in app.browse.status.problem, what="the failure in the status bar"
        )
        await pilot.pause(1.0)  # several more polls, each failing
        assert len(app._notifications) == 1


@pytest.fixture(scope="module")
def large_params_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real trials: one parameter of 60 MB, two of 300 KB (longer than the table reads)."""
    import tuixp

    path = tmp_path_factory.mktemp("large") / "large.duckdb"
    ex = tuixp.Experiment("large", store=path)
    blob, k = ex.parameter("blob"), ex.parameter("k")

    @ex.result
    def size(blob, k):
        return len(blob) + k

    node = size(blob, k)
    node.compute(scheduler="sync", blob="c" * 300_000, k=1)
    node.compute(scheduler="sync", blob="b" * 60_000_000, k=2)
    node.compute(scheduler="sync", blob="a" * 300_000, k=3)
    ex.store.journal.close()
    return path


@pytest.mark.slow
async def test_trials_with_60_mb_parameters_show_and_sort(large_params_store: Path) -> None:
    """The table once failed with DuckDB's "Out of Memory" (its 128 MB limit) on such a store."""
    app = _app(large_params_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, total=3)
        assert app.browse.status.problem == ""
        rows = app.browse.table.visible_rows()
        assert [r.trial_id for r in rows] == [3, 2, 1]
        assert [r.params["k"] for r in rows] == [3, 2, 1]
        cells = [r.params["blob"] for r in rows]
        assert cells == [c * 200 + "…" for c in "abc"]  # cut short, never 60 MB in a cell
        assert rows[1].result_value == 60_000_002
        # Sorting by the text parameter compares a prefix; the 60 MB one is not compared.
        app.sort_by("blob")
        await wait_for(pilot, lambda: app.query_state.sort == "blob", what="sort by blob")
        await loaded(pilot, total=3)
        app.sort_by("blob")  # ascending
        await wait_for(pilot, lambda: not app.query_state.descending, what="ascending")
        await loaded(pilot, total=3)
        assert [r.trial_id for r in app.browse.table.visible_rows()] == [3, 1, 2]
        assert app.browse.status.problem == ""
        notices = [n.message for n in app._notifications]
        assert any("1 trial(s) hold parameters over 1 MB" in n for n in notices), notices
        app.filter_by("k >= 2")
        await wait_for(pilot, lambda: app.query_state.where != "", what="the filter")
        await loaded(pilot)
        assert [r.trial_id for r in app.browse.table.visible_rows()] == [3]  # 2 not compared
