"""Launching trials from the TUI: real child processes of ``tuixp run``, their events, cancel, refusals.

A small script is written to a temporary folder and run once through the command line, so the
store knows its path and parameters; the tests then launch it from the TUI as a person would.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Input
from textual_plotext import PlotextPlot

from tests.cli.test_cli_units import store_snapshot
from tests.tui.conftest import env_for_subprocess, fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp.execution.events import ProgressEvent
from tuixp.store import sql as store_sql
from tuixp.tui.app import create_app
from tuixp.tui.launcher import Launch, LaunchRequest
from tuixp.tui.plotting import plot_dots
from tuixp.tui.screens.launch import LaunchScreen, ParamRow, check_grid, check_value
from tuixp.tui.screens.progress import LaunchUpdated, ProgressScreen

SCRIPT = textwrap.dedent("""
    import sys, time
    import tuixp

    ex = tuixp.Experiment("tiny")
    a = ex.parameter("a")
    wait = ex.parameter("wait", default=0.0)

    @ex
    def double(a):
        return a * 2

    @ex.result
    def score(d, wait):
        print("scoring", d, file=sys.stderr)
        for epoch in range(3):
            ex.save_metric("loss", epoch=epoch, value=1 / (epoch + 1 + abs(d)))
        end = time.time() + wait
        while time.time() < end:
            time.sleep(0.02)
        return d + 1

    s = score(double(a), wait)
""")


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("launch")
    script = root / "tiny.py"
    script.write_text(SCRIPT)
    store = root / "tiny.duckdb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tuixp",
            "run",
            str(script),
            "a=1",
            "--seed",
            "5",
            "--store",
            str(store),
        ],
        check=True,
        env=env_for_subprocess(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    return store


@pytest.fixture
def tiny_store(_template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "tiny.duckdb"
    for side in _template.parent.iterdir():
        if side.name.startswith("tiny.duckdb"):
            target = tmp_path / side.name
            (shutil.copytree if side.is_dir() else shutil.copy)(side, target)
    return dest


def shown(widget: Any) -> str:
    """The text a Static shows (its rich content printed without colours)."""
    console = Console(width=120, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(widget.content)
    return capture.get()


def trials_in(store: Path) -> list[tuple[Any, ...]]:
    return store_sql.query(
        store, "SELECT trial_id, status, params, result FROM trials ORDER BY trial_id"
    ).rows


async def _open_form(pilot: Any) -> LaunchScreen:
    await loaded(pilot)
    await pilot.press("L")
    app = pilot.app
    await wait_for(
        pilot,
        lambda: (
            isinstance(app.screen, LaunchScreen)
            and app.screen.loaded
            and app.screen.choice is not None
        ),
        what="the launch form",
    )
    await pilot.pause()
    return app.screen


def _row(screen: LaunchScreen, name: str) -> ParamRow:
    return next(r for r in screen.query(ParamRow) if r.param == name)


async def _set(pilot: Any, widget: Input, text: str) -> None:
    widget.focus()
    widget.value = ""
    await pilot.press(*list(text))


async def test_launch_a_real_trial_and_see_it_arrive(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No redraw on a tick during the launch: its end must be drawn when it ends (CI's loaded
    # machine once delivered the last events and the exit between two ticks).
    monkeypatch.setattr(ProgressScreen, "TICK", 120.0)
    messages: list[Any] = []
    app = create_app(tiny_store, poll_interval=0.5)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        screen = await _open_form(pilot)
        assert screen.query_one("#launch-script", Input).value.endswith("tiny.py")
        value = _row(screen, "a").query_one(".param-value", Input)
        assert value.value == "1"  # prefilled from trial #1
        await _set(pilot, value, "20")
        await _set(pilot, _row(screen, "wait").query_one(".param-grid", Input), "0,0.1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="progress")
        launch = app.launches.items[-1]
        await wait_for(pilot, lambda: launch.done, timeout=60, what="the launch to end")
        assert launch.state == "succeeded", (launch.message, list(launch.stderr))
        # Both trials of the grid, each with its steps in order, done, and their metrics.
        assert sorted(launch.trials) == [2, 3]
        for trial in launch.trials.values():
            assert trial.status == "succeeded" and trial.result == "41"
            assert [(t.step, t.status) for t in trial.tasks.values()] == [
                ("double", "succeeded"),
                ("score", "succeeded"),
            ]
            assert [e for e, _ in trial.metrics["loss"]] == [0, 1, 2]
        assert any("scoring 40" in line for line in launch.stderr)
        kinds = [m.payload for m in messages if isinstance(m, LaunchUpdated) and m.kind == "event"]
        assert any('"task_started"' in k for k in kinds) and any('"metrics"' in k for k in kinds)
        detail = shown(app.screen.query_one("#progress-detail"))
        assert "trial #3" in detail and "succeeded" in detail
        # The new trials are in the store and in the browse table.
        await pilot.press("escape")
        await wait_for(
            pilot,
            lambda: app.browse.table.total == 3,
            timeout=20,
            what="the new trials in the table",
        )
    rows = trials_in(tiny_store)
    assert [(r[0], r[1]) for r in rows] == [(1, "succeeded"), (2, "succeeded"), (3, "succeeded")]
    assert '"a":20' in rows[2][2].replace(" ", "")


@pytest.mark.slow
async def test_cancel_a_long_launch_ends_its_trial_interrupted(tiny_store: Path) -> None:
    app = create_app(tiny_store, poll_interval=0.5)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_form(pilot)
        await _set(pilot, _row(screen, "wait").query_one(".param-value", Input), "60")
        await pilot.press("ctrl+j")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="progress")
        launch = app.launches.items[-1]

        def scoring() -> bool:
            return any(
                t.tasks.get("score") is not None and t.tasks["score"].status == "running"
                for t in launch.trials.values()
            )

        await wait_for(pilot, scoring, timeout=30, what="the long step to start")
        await pilot.press("c")
        await wait_for(pilot, lambda: launch.done, timeout=30, what="the launch to stop")
        assert launch.returncode == 130 and launch.state == "interrupted"
        assert [t.status for t in launch.trials.values()] == ["interrupted"]
        assert launch.trials[2].tasks["score"].status == "interrupted"
    assert [(r[0], r[1]) for r in trials_in(tiny_store)] == [(1, "succeeded"), (2, "interrupted")]


async def test_a_bad_value_is_caught_as_it_is_typed_and_nothing_starts(tiny_store: Path) -> None:
    before = store_snapshot(tiny_store)
    app = create_app(tiny_store, clock=fixed_clock, poll_interval=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_form(pilot)
        row = _row(screen, "a")
        value = row.query_one(".param-value", Input)
        await _set(pilot, value, "[1,")
        assert value.has_class("-invalid")
        assert "not a Python literal" in shown(row.query_one(".param-hint"))
        await pilot.press("enter")
        assert app.launches.items == []
        assert "Not launched: parameter a" in shown(screen.query_one("#launch-message"))
        await _set(pilot, value, "ridge")  # a string where an int was: allowed, but flagged
        assert value.has_class("-warning") and not value.has_class("-invalid")
    assert store_snapshot(tiny_store) == before


@pytest.mark.parametrize(
    "field, text, says",
    [
        ("#launch-extra", "zz=1", "unknown parameter zz"),
        ("#launch-script", "/nowhere/missing.py", "script not found"),
    ],
)
async def test_a_launch_the_command_line_refuses_shows_why_and_records_nothing(
    tiny_store: Path, field: str, text: str, says: str
) -> None:
    before = store_snapshot(tiny_store)
    app = create_app(tiny_store, poll_interval=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_form(pilot)
        await _set(pilot, screen.query_one(field, Input), text)
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: bool(app.launches.items) and app.launches.items[-1].done,
            timeout=30,
            what="the refusal",
        )
        launch = app.launches.items[-1]
        assert launch.returncode == 2 and launch.state == "refused"
        assert says in launch.message and not launch.trials
        await wait_for(
            pilot,
            lambda: says in shown(app.screen.query_one("#progress-detail")),
            what="the refusal on screen",
        )
    assert store_snapshot(tiny_store) == before


def test_values_are_checked_with_the_command_lines_rules() -> None:
    assert check_value("0.5", "lr", 0.1) == ("", "float")
    assert check_value("3", "lr", 0.1) == ("", "int")  # a number for a number is fine
    assert check_value("ridge", "model", "lasso") == ("", "str")
    assert check_value("ridge", "lr", 0.1)[0] == "-warning"
    assert check_value("(1, 2", "x")[0] == "-invalid"
    assert check_value("", "x") == ("", "not passed")
    assert check_grid("0.1, 0.2,0.3", "lr", 0.1) == ("", "3 values")
    assert check_grid("1,,2", "lr")[0] == "-invalid"
    assert check_grid("[1, 2], [3]", "shape", [1]) == ("", "2 values")


# -- snapshots: the form, and a launch in progress fed with recorded events -----------------------
def _recorded_launch(app: Any, store: Path) -> Launch:
    """A launch fed recorded events (no child): a deterministic picture of one in progress."""
    now = fixed_clock()
    request = LaunchRequest(
        script="tiny.py",
        store=store,
        params={"a": "4"},
        grid={"wait": "0,0.5"},
        seed=7,
        experiment="tiny",
        steps=["double", "score"],
    )
    launch = app.launches.new(request)
    launch.state = "running"

    def ev(kind: str, trial_id: int, ago: float, **fields: Any) -> str:
        return ProgressEvent(kind, "tiny", trial_id, now - ago, **fields).to_json()

    lines = [
        ev("trial_started", 2, 3, data={"params": {"a": 4, "wait": 0}, "seed": 7}),
        ev("trial_started", 3, 3, data={"params": {"a": 4, "wait": 0.5}, "seed": 7}),
        ev(
            "task_finished",
            2,
            3,
            key="double-2",
            step="double",
            status="reused",
            data={"reused_from": 1, "elapsed": 0.0},
        ),
        ev("task_started", 3, 2.9, key="double-3", step="double"),
        ev(
            "task_finished",
            3,
            2.6,
            key="double-3",
            step="double",
            status="succeeded",
            data={"started": now - 2.9, "elapsed": 0.25},
        ),
    ]
    for trial_id in (2, 3):
        lines.append(ev("task_started", trial_id, 2.5, key=f"score-{trial_id}", step="score"))
        lines += [  # two batches of points, as tuixp.execution.metric_news sends them
            ev(
                "metrics",
                trial_id,
                2,
                step="score",
                data={
                    "points": {
                        "loss": {"epoch": list(es), "value": [1 / (e + trial_id) for e in es]}
                    }
                },
            )
            for es in (range(4), range(4, 6))
        ]
    lines.append(
        ev(
            "task_finished",
            2,
            1,
            key="score-2",
            step="score",
            status="succeeded",
            data={"started": now - 2.5, "elapsed": 1.5},
        )
    )
    lines.append(ev("trial_finished", 2, 1, status="succeeded", data={"result": "9"}))
    for line in lines:
        launch.apply("event", line)
    launch.apply("stderr", "scoring 8")
    launch.apply("stderr", "scoring 8")
    return launch


def test_snapshot_launch_form_80x24(tiny_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        screen = await _open_form(pilot)
        await _set(pilot, _row(screen, "wait").query_one(".param-grid", Input), "0,0.5,x]")
        screen.query_one("#launch-script", Input).value = "tiny.py"  # not the tmp folder's name

    app = create_app(tiny_store, clock=fixed_clock, poll_interval=3600)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_snapshot_launch_in_progress_100x30(tiny_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await loaded(pilot)
        _recorded_launch(app, tiny_store)
        app.push_screen(ProgressScreen())
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="progress")
        await pilot.pause(0.3)

    app = create_app(tiny_store, clock=fixed_clock, poll_interval=3600)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


# -- the live plot: which metric first, and a long series cut to the plot's width ----------------
async def test_live_plot_shows_the_users_first_metric_first_and_cuts_long_series(
    tiny_store: Path,
) -> None:
    """The sampler's first system sample arrives before the step's first point: the plot still
    opens on the user's first metric (``loss``), then ``m`` goes to ``acc``, then ``sys/...``.
    A batch of 300,000 points reaches plotext as at most two points a braille column."""
    n = 300_000
    now = fixed_clock()

    def ev(kind: str, **fields: Any) -> str:
        return ProgressEvent(kind, "tiny", 2, now, **fields).to_json()

    def batch(step: str | None, **series: tuple[list[int], list[float]]) -> str:
        points = {name: {"epoch": e, "value": v} for name, (e, v) in series.items()}
        return ev("metrics", step=step, data={"points": points})

    app = create_app(tiny_store, clock=fixed_clock, poll_interval=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        request = LaunchRequest(script="tiny.py", store=tiny_store, experiment="tiny")
        launch = app.launches.new(request)
        launch.state = "running"
        for line in (
            ev("trial_started", data={"params": {"a": 4}, "seed": 7}),
            batch(None, **{"sys/cpu_percent": ([0], [12.5]), "sys/rss_mb": ([0], [80.0])}),
            ev("task_started", key="score-2", step="score"),
            batch("score", loss=(list(range(n)), [1 / (i + 1) for i in range(n)])),
            batch("score", acc=([0, 1], [0.5, 0.625]), loss=([n], [0.0])),
        ):
            launch.apply("event", line)
        app.push_screen(ProgressScreen(launch.number))
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="progress")
        screen = app.screen
        assert isinstance(screen, ProgressScreen)
        await wait_for(pilot, lambda: screen.shown_metric is not None, what="the live plot")
        assert screen.metric_names(launch) == ["loss", "acc", "sys/cpu_percent", "sys/rss_mb"]
        assert screen.shown_metric == "loss"
        assert len(launch.trials[2].metrics["loss"]) == n + 1  # every point kept
        plot = screen.query_one("#progress-plot", PlotextPlot)

        def cut() -> bool:  # drawn at the plot's width once laid out (the next tick at most)
            return 0 < screen.drawn.get(2, 0) <= 2 * plot_dots(plot.size.width)

        await wait_for(pilot, cut, what="the live plot cut to its width")
        shown = []
        for _ in range(4):
            await pilot.press("m")
            shown.append((screen.shown_metric, screen.drawn.get(2)))
        assert shown[:3] == [("acc", 2), ("sys/cpu_percent", 1), ("sys/rss_mb", 1)]
        assert shown[3][0] == "loss" and cut()
