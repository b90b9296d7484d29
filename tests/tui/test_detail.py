"""The trial detail screen through Pilot: every tab, errors, metrics overlay, safe output previews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.message import Message
from textual.widgets import Static, TabbedContent

from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp.tui.app import create_app
from tuixp.tui.messages import DetailLoaded, OutputLoaded
from tuixp.tui.screens.detail import DetailScreen


def _text(screen: Any, selector: str) -> str:
    """The plain text a Static shows (rendered at 200 columns so nothing is cut)."""
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()


async def _open(pilot: Any, experiment: str, trial_id: int) -> DetailScreen:
    app = pilot.app
    await loaded(pilot)
    app.select_experiment(experiment)
    await loaded(pilot)
    app.open_trial(trial_id)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None,
        what="the trial detail",
    )
    return app.screen


async def test_failed_trial_shows_error_and_traceback(real_store: Path) -> None:
    messages: list[Message] = []
    app = create_app(real_store, clock=fixed_clock)
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        screen = await _open(pilot, "regression", 10)
        text = _text(screen, "#overview-body")
        assert "✗ failed" in text
        assert "FloatingPointError: loss diverged: learning rate too large" in text
        assert "Traceback (most recent call last)" in text and "raise FloatingPointError" in text
        assert "lr" in text and "5.0" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)
    assert any(isinstance(m, DetailLoaded) and m.detail.trial_id == 10 for m in messages)


async def test_tabs_code_environment_git_steps(real_store: Path) -> None:
    app = create_app(real_store, clock=fixed_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "regression", 1)
        tabs = screen.query_one(TabbedContent)
        for key, pane in zip(
            "1234567", ["overview", "metrics", "code", "environment", "git", "outputs", "steps"]
        ):
            await pilot.press(key)
            assert tabs.active == pane
        code = _text(screen, "#code-body")
        assert "def train(data, lr, model):" in code and "ex.save_metric" in code
        env = _text(screen, "#environment-body")
        assert "python" in env and "packages" in env and "duckdb" in env
        git = _text(screen, "#git-body")
        assert "repository" in git and "commit" in git
        steps = _text(screen, "#steps-body")
        for step in ("load_data", "train", "score"):
            assert step in steps
        assert "0.20s" in steps  # the stabilised step durations
        text = _text(screen, "#overview-body")
        assert "0.042" in text and "ridge" in text and "loss" in text


async def test_metrics_plot_overlays_marked_trials(real_store: Path) -> None:
    app = create_app(real_store, clock=fixed_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        app.select_experiment("regression")
        await loaded(pilot, total=10)
        app.toggle_mark(6)
        app.toggle_mark(2)
        screen = await _open(pilot, "regression", 1)
        assert sorted(screen.detail.metrics) == ["accuracy", "loss"]
        assert sorted(screen.detail.metrics["loss"]) == [1, 2, 6]
        assert [e for e, _ in screen.detail.metrics["loss"][1]] == [0, 1, 2, 3]
        await pilot.press("2")
        await pilot.press("m")
        assert screen.metric_index == 1
        await pilot.press("m", "m")
        assert screen.metric_index == 0  # back to every metric


async def test_dataframe_preview_and_pickle_needs_explicit_key(real_store: Path) -> None:
    messages: list[Message] = []
    app = create_app(real_store, clock=fixed_clock)
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        screen = await _open(pilot, "regression", 2)
        await pilot.press("6", "p")
        await wait_for(
            pilot,
            lambda: any(isinstance(m, OutputLoaded) for m in messages),
            what="the DataFrame preview",
        )
        text = _text(screen, "#output-preview")
        assert "DataFrame 8 rows x 2 columns" in text and "14.0" in text  # y = x * depth(2)
        await pilot.press("escape")
        messages.clear()
        screen = await _open(pilot, "classify", 2)
        await pilot.press("6", "p")
        await pilot.pause(0.3)
        assert not any(isinstance(m, OutputLoaded) for m in messages)
        assert "is a pickle" in _text(screen, "#output-preview")
        await pilot.press("P")
        await wait_for(
            pilot,
            lambda: any(isinstance(m, OutputLoaded) for m in messages),
            what="the pickle to load after P",
        )
        assert "Centroids(k=2)" in _text(screen, "#output-preview")


async def test_steps_tab_says_which_trial_a_reused_step_came_from(tmp_path: Path) -> None:
    import tuixp

    store = tmp_path / "cache.duckdb"
    ex = tuixp.Experiment("cached", store=store)
    k, c = ex.parameter("k", default=2), ex.parameter("c", default=1)

    @ex.cached
    def prepare(k):
        return [k] * 3

    @ex.result
    def score(p, c):
        return sum(p) + c

    node = score(prepare(k), c)
    node.compute()
    ex.set_parameters(c=5)
    node.compute()  # prepare is reused from trial 1
    app = create_app(store, clock=fixed_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot, "cached", 2)
        await pilot.press("7")
        text = _text(screen, "#steps-body")
        assert "reused from #1" in text
        assert "score" in text and "succeeded" in text
