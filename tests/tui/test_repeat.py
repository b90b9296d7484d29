"""Repeating a trial from the TUI: ``X`` runs a real child ``tuixp repeat`` and shows its verdict.

A small script is written to a temporary folder and run once through the command line (seed 5);
the tests open that trial and press ``X`` as a person would. The script never runs in the UI
process: the child's events and its verdict arrive through the launcher.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.tui.conftest import env_for_subprocess, fixed_clock
from tests.tui.helpers import loaded, wait_for
from tests.tui.test_launch import SCRIPT, shown, trials_in
from tuixp.execution.events import ProgressEvent
from tuixp.tui.app import create_app
from tuixp.tui.launcher import LaunchRequest
from tuixp.tui.screens.compare import CompareScreen
from tuixp.tui.screens.detail import DetailScreen
from tuixp.tui.screens.progress import ProgressScreen


def _record(folder: Path, values: tuple[str, ...] = ("1", "2")) -> tuple[Path, Path]:
    """Real trials of the tiny script (a=1, then a=2; seed 5) in a store of their own."""
    script = folder / "tiny.py"
    script.write_text(SCRIPT)
    store = folder / "tiny.duckdb"
    for a in values:
        subprocess.run(
            [sys.executable, "-m", "tuixp", "run", str(script), f"a={a}", "--seed", "5"]
            + ["--store", str(store)],
            check=True,
            env=env_for_subprocess(),
            capture_output=True,
            timeout=120,
        )
    return script, store


async def _open_detail(pilot: Any, trial_id: int) -> DetailScreen:
    app = pilot.app
    await loaded(pilot)
    app.select_experiment("tiny")
    await loaded(pilot)
    app.open_trial(trial_id)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None,
        what="the trial detail",
    )
    return app.screen


async def test_repeat_from_the_detail_screen_reproduces_bit_for_bit(tmp_path: Path) -> None:
    _, store = _record(tmp_path)
    app = create_app(store, poll_interval=0.5)
    async with app.run_test(size=(110, 34)) as pilot:
        await _open_detail(pilot, 1)
        await pilot.press("X")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="the runs")
        launch = app.launches.items[-1]
        assert launch.request.argv()[3:6] == ["repeat", "tiny", "1"]
        await wait_for(pilot, lambda: launch.done, timeout=90, what="the repeat to end")
        assert launch.returncode == 0, list(launch.stderr)
        assert launch.state == "reproduced"
        assert launch.verdict is not None and launch.verdict["verdict"] == "reproduced"
        assert [s["status"] for s in launch.verdict["steps"]] == ["same", "same"]
        # The child's live events made the trial and its tasks, as for any launch.
        assert [(t.step, t.status) for t in launch.trials[3].tasks.values()] == [
            ("double", "succeeded"),
            ("score", "succeeded"),
        ]
        await pilot.pause(0.3)
        text = shown(app.screen.query_one("#progress-detail"))
        assert "trial 1 of tiny, repeated as trial 3: reproduced bit for bit" in text
        assert "double" in text and "same" in text
    rows = trials_in(store)
    assert [(r[0], r[1]) for r in rows] == [(1, "succeeded"), (2, "succeeded"), (3, "succeeded")]
    assert rows[2][2] == rows[0][2] and rows[2][3] == rows[0][3]


async def test_repeat_of_the_compared_trial_names_the_step_whose_code_changed(
    tmp_path: Path,
) -> None:
    script, store = _record(tmp_path)
    script.write_text(SCRIPT.replace("return a * 2", "return a * 3"))
    app = create_app(store, poll_interval=0.5)
    async with app.run_test(size=(110, 34)) as pilot:
        await _open_detail(pilot, 2)
        await pilot.press("v")  # trial 2 against trial 1: the compared trial is 2
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, CompareScreen) and app.screen.details is not None,
            what="the compare screen",
        )
        await pilot.press("X")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="the runs")
        launch = app.launches.items[-1]
        assert launch.request.repeat == 2
        await wait_for(pilot, lambda: launch.done, timeout=90, what="the repeat to end")
        assert launch.returncode == 1, list(launch.stderr)
        assert launch.state == "differs"
        assert launch.verdict is not None
        assert launch.verdict["first_difference"]["step"] == "double"
        await pilot.pause(0.3)
        text = shown(app.screen.query_one("#progress-detail"))
        assert "repeated as trial 3: differs, first at step double (its code changed)" in text
        assert "code changed in a step that ran: double" in text


async def test_a_repeat_the_command_line_refuses_says_why(tmp_path: Path) -> None:
    script, store = _record(tmp_path)
    script.unlink()
    app = create_app(store, poll_interval=0.5)
    async with app.run_test(size=(110, 34)) as pilot:
        await _open_detail(pilot, 1)
        await pilot.press("X")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="the runs")
        launch = app.launches.items[-1]
        await wait_for(pilot, lambda: launch.done, timeout=90, what="the repeat to end")
        assert launch.state == "refused" and launch.verdict is None
        assert "the script of trial 1 of tiny is gone" in launch.message
    assert len(trials_in(store)) == 2


def _recorded_repeat(app: Any, store: Path, verdict: dict[str, Any]) -> None:
    """A finished repeat with fixed times: the events a child sends, then its verdict."""
    launch = app.launches.new(LaunchRequest("tiny.py", store, experiment="tiny", repeat=1))
    now = fixed_clock()

    def ev(kind: str, **kw: Any) -> str:
        return ProgressEvent(kind, "tiny", 3, now - 3, **kw).to_json()

    lines = [ev("trial_started", data={"params": {"a": 1, "wait": 0.0}, "seed": 5})]
    for step, key in (("double", "double-3-x-1"), ("score", "score-3-x-2")):
        lines.append(ev("task_started", key=key, step=step))
        lines.append(
            ev(
                "task_finished",
                key=key,
                step=step,
                status="succeeded",
                data={"started": now - 3, "elapsed": 0.5},
            )
        )
    lines.append(ev("trial_finished", status="succeeded", data={"result": "7"}))
    lines.append(json.dumps({"kind": "repeat_finished", **verdict}))
    for line in lines:
        launch.apply("event", line)
    launch.apply("exit", 1)


VERDICT: dict[str, Any] = {
    "experiment": "tiny",
    "original": 1,
    "repeat": 3,
    "verdict": "differs",
    "reproduced": False,
    "first_difference": None,
    "steps": [
        {
            "step": "double",
            "occurrence": None,
            "status": "differs",
            "reason": "its code changed",
            "inputs_same": True,
            "original": {"key": "double-1-a-1", "status": "succeeded", "output_hash": "c4ca4238a0"},
            "repeat": {"key": "double-3-x-1", "status": "succeeded", "output_hash": "eccbc87e4b"},
        },
        {
            "step": "score",
            "occurrence": None,
            "status": "differs",
            "reason": "its input differs",
            "inputs_same": False,
            "original": {"key": "score-1-a-2", "status": "succeeded", "output_hash": "e4da3b7fbb"},
            "repeat": {"key": "score-3-x-2", "status": "succeeded", "output_hash": "8f14e45fce"},
        },
    ],
    "counts": {"same": 0, "differs": 2, "not_checked": 0},
    "status": {"original": "succeeded", "repeat": "succeeded"},
    "result": {"original": 3, "repeat": 7},
    "error": {"original": None, "repeat": None},
    "causes": [
        {
            "kind": "code",
            "title": "code changed in a step that ran",
            "name": "double",
            "old": None,
            "new": None,
            "detail": "+1 -1 lines",
            "this_step": True,
        },
        {
            "kind": "code",
            "title": "code changed in a step that ran",
            "name": "<script>",
            "old": None,
            "new": None,
            "detail": "+1 -1 lines",
            "this_step": False,
        },
    ],
}
VERDICT["first_difference"] = VERDICT["steps"][0]


def test_snapshot_repeat_verdict_100x30(tmp_path: Path, snap_compare: Any) -> None:
    """The runs screen after a repeat that differs: its trial, then the verdict and causes.

    The verdict is the document ``tuixp repeat`` prints (the Pilot tests above get real ones);
    fixed here so the picture is the same on every machine.
    """
    _, store = _record(tmp_path, ("1",))

    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await loaded(pilot)
        _recorded_repeat(app, store, VERDICT)
        app.push_screen(ProgressScreen())
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="the runs")
        await pilot.pause(0.3)

    app = create_app(store, clock=fixed_clock, poll_interval=3600)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
