"""``python -m tuixp.tui.screenshots DIR``: SVG screenshots of the real app, for the README.

It records a small real store first (real trials through ``tuixp.Experiment`` in a child
process, in a temporary folder), then drives the app headless with Pilot and saves
``browse.svg``, ``detail.svg``, ``metrics.svg``, ``compare.svg``, ``launch.svg``, ``sql.svg``,
``repeat.svg`` (and ``light.svg``) into DIR.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

SIZE = (110, 32)

SCRIPT = textwrap.dedent("""
    import math, random, sys
    import tuixp

    ex = tuixp.Experiment("house_prices", store=sys.argv[1], goal="max")
    lr = ex.parameter("lr")
    depth = ex.parameter("depth")
    model = ex.parameter("model")

    @ex.persist
    def load_data(depth):
        import pandas as pd
        return pd.DataFrame({"rooms": range(1, 9), "price": [120 * depth + i for i in range(8)]})

    @ex
    def train(data, lr, depth, model):
        if lr > 0.5:
            raise FloatingPointError("loss diverged: learning rate too large")
        rng = random.Random(depth * 1000 + int(lr * 1e4))
        loss = 1.0
        for epoch in range(12):
            loss = loss * (1 - min(0.9, lr * 3)) + 0.02 * depth / 10 + rng.random() * 0.01
            ex.save_metric("loss", epoch=epoch, value=round(loss, 4))
            ex.save_metric("val_loss", epoch=epoch, value=round(loss * 1.1 + 0.01, 4))
        return {"model": model, "loss": loss}

    @ex.result
    def score(fitted):
        return round(1 - fitted["loss"], 4)

    s = score(train(load_data(depth), lr, depth, model))
    ex.set_parameters(lr=0.05, depth=4, model="ridge")
    s.compute_grid(seed=1, lr=[0.01, 0.05, 0.1], depth=[3, 6], model=["ridge", "forest"])
    try:
        s.compute(seed=2, lr=0.9)
    except FloatingPointError:
        pass

    other = tuixp.Experiment("churn", store=sys.argv[1], goal="max")
    k = other.parameter("k")

    @other.result
    def evaluate(k):
        return round(0.5 + 0.1 * math.log(k), 4)

    e = evaluate(k)
    e.compute_grid(seed=3, k=[1, 2, 4, 8])
""")


def record_store(folder: Path) -> Path:
    """A store with two experiments recorded by real trials, with stable times."""
    store = folder / "demo.duckdb"
    script = folder / "train.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, str(script), str(store)],
        check=True,
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from tuixp.store.store import Store

    with Store(store).connect() as con:
        con.execute("""
            UPDATE trial_record SET
              started_at = TIMESTAMPTZ '2026-03-02 09:00:00+00' + to_seconds((trial_id - 1) * 75
                + CASE experiment WHEN 'churn' THEN 7200 ELSE 0 END),
              finished_at = TIMESTAMPTZ '2026-03-02 09:00:00+00' + to_seconds((trial_id - 1) * 75
                + CASE experiment WHEN 'churn' THEN 7200 ELSE 0 END + 2.5 + trial_id % 3),
              host = 'trainbox', pid = 4242, script = 'train.py'""")
    from tuixp import curation

    # Curated as a person would (tuixp star, tag, name, note): the table's star and tags
    # columns, the detail's annotations and compare's rows show them.
    for trial_id, action, values in (
        (9, "star", [None]),
        (9, "name", ["baseline"]),
        (9, "tag", ["paper", "ridge"]),
        (9, "note", ["Best of the grid with the simpler model: the same result as #10."]),
        (13, "tag", ["mistake"]),
        (13, "note", ["lr 0.9 diverges, as expected. Kept for its traceback; purge later."]),
    ):
        curation.annotate(Store(store), "house_prices", [trial_id], action, values)
    return store


async def _shoot(store: Path, out: Path) -> list[Path]:
    from tuixp.tui.app import create_app
    from tuixp.tui.screens.detail import DetailScreen

    written = []

    async def until(pilot: Any, condition: Any) -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(0.2)

    def ready(app: Any, total: int | None = None) -> bool:
        try:
            table = app.browse.table
        except Exception:  # noqa: BLE001 - still composing
            return False
        return table.loaded and table.pending is None and (total is None or table.total == total)

    for theme, names in (("dark", ("browse", "detail", "metrics")), ("light", ("light",))):
        app = create_app(store, poll_interval=3600, theme=theme, clock=lambda: 1_772_445_600.0)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda a=app: ready(a))
            app.select_experiment("house_prices")
            await until(pilot, lambda a=app: ready(a, 13) and a.experiment == "house_prices")
            app.toggle_mark(4)
            app.toggle_mark(9)
            await pilot.press("j", "j")
            await pilot.pause(0.2)
            if "browse" in names or "light" in names:
                name = names[0]
                app.save_screenshot(f"{name}.svg", str(out))
                written.append(out / f"{name}.svg")
            if "detail" in names:
                app.open_trial(13)
                await until(
                    pilot,
                    lambda a=app: (
                        isinstance(a.screen, DetailScreen) and a.screen.detail is not None
                    ),
                )
                app.save_screenshot("detail.svg", str(out))
                written.append(out / "detail.svg")
                await pilot.press("escape")
                app.open_trial(11)
                await until(
                    pilot,
                    lambda a=app: (
                        isinstance(a.screen, DetailScreen)
                        and a.screen.detail is not None
                        and a.screen.trial_id == 11
                    ),
                )
                await pilot.press("2")
                await pilot.pause(0.3)
                app.save_screenshot("metrics.svg", str(out))
                written.append(out / "metrics.svg")
                # The compare screen: the two marked trials side by side.
                from tuixp.tui.screens.compare import CompareScreen

                await pilot.press("escape")
                app.open_compare(app.marked())
                await until(
                    pilot,
                    lambda a=app: (
                        isinstance(a.screen, CompareScreen) and a.screen.details is not None
                    ),
                )
                app.save_screenshot("compare.svg", str(out))
                written.append(out / "compare.svg")
    written += await _shoot_launch_and_sql(store, out, until, ready)
    written += await _shoot_repeat(store.parent, out, until, ready)
    return written


SWEEP = textwrap.dedent("""
    import time
    import tuixp

    ex = tuixp.Experiment("sweep")
    lr = ex.parameter("lr", default=0.1)
    width = ex.parameter("width", default=64)

    @ex
    def prepare(width):
        time.sleep(0.5)
        return list(range(width))

    @ex.result
    def train(data, lr):
        loss = 1.0
        for epoch in range(400):
            loss = loss * (1 - lr / 4) + 0.001
            ex.save_metric("loss", epoch=epoch, value=loss)
            time.sleep(0.05)
        return round(loss, 4)

    s = train(prepare(width), lr)
""")


async def _shoot_launch_and_sql(store: Path, out: Path, until: Any, ready: Any) -> list[Path]:
    """A real launch (a child ``tuixp run``) caught mid-run, and the SQL screen with results."""
    from tuixp.tui.app import create_app
    from tuixp.tui.launcher import LaunchRequest
    from tuixp.tui.screens.progress import ProgressScreen, start_launch
    from tuixp.tui.screens.sql import SqlScreen

    script = store.parent / "sweep.py"
    script.write_text(SWEEP)
    written = []
    app = create_app(store, poll_interval=3600, clock=time.time)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: ready(app))
        request = LaunchRequest(
            script=str(script),
            store=store,
            grid={"lr": "0.05,0.2"},
            seed=1,
            experiment="sweep",
            steps=["prepare", "train"],
        )
        launch = start_launch(app, request)
        app.push_screen(ProgressScreen())

        await until(
            pilot,
            lambda: (
                launch.trials
                and all(t.status == "running" for t in launch.trials.values())
                and _metric_points(launch) >= 60
            ),
        )
        app.save_screenshot("launch.svg", str(out))
        written.append(out / "launch.svg")
        launch.cancel()
        await until(pilot, lambda: launch.done)
        app.pop_screen()
        app.push_screen(SqlScreen())
        await until(pilot, lambda: isinstance(app.screen, SqlScreen))
        from textual.widgets import TextArea

        editor = app.screen.query_one("#sql-editor", TextArea)
        editor.text = (
            "SELECT experiment, count(*) AS trials, min(result_value) AS worst,\n"
            "       max(result_value) AS best\nFROM trials\n"
            "WHERE status = 'succeeded' GROUP BY experiment ORDER BY best DESC"
        )
        app.screen.action_run()  # type: ignore[attr-defined]
        from textual.widgets import DataTable

        await until(pilot, lambda: app.screen.query_one("#sql-results", DataTable).row_count > 0)
        app.save_screenshot("sql.svg", str(out))
        written.append(out / "sql.svg")
    return written


NOISY = textwrap.dedent("""
    import numpy as np
    import tuixp

    ex = tuixp.Experiment("noisy_fit")
    n = ex.parameter("n", default=200)
    noise = ex.parameter("noise", default=0.1)

    @ex
    def sample(n, noise):
        x = np.linspace(0, 1, n)
        return x, 3 * x + 1 + np.random.normal(scale=noise, size=n)

    @ex
    def fit(data):
        x, y = data
        return np.polyfit(x, y, 1)

    @ex.result
    def slope(coef):
        return round(float(coef[0]), 6)

    s = slope(fit(sample(n, noise)))
""")


async def _shoot_repeat(folder: Path, out: Path, until: Any, ready: Any) -> list[Path]:
    """``X`` on a trial whose step was edited since: a real child ``tuixp repeat`` and its
    verdict, the first differing step and the likely causes."""
    from tuixp.tui.app import create_app
    from tuixp.tui.screens.detail import DetailScreen
    from tuixp.tui.screens.progress import ProgressScreen

    store = folder / "repeat.duckdb"
    script = folder / "noisy_fit.py"
    script.write_text(NOISY)
    env = dict(os.environ)
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, "-m", "tuixp", "run", str(script), "--seed", "7", "--store", str(store)],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    script.write_text(NOISY.replace("return np.polyfit(x, y, 1)", "return np.polyfit(x, y, 2)[1:]"))
    app = create_app(store, poll_interval=3600, clock=time.time)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: ready(app))
        app.select_experiment("noisy_fit")
        await until(pilot, lambda: ready(app, 1))
        app.open_trial(1)
        await until(
            pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None
        )
        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, ProgressScreen))
        launch = app.launches.items[-1]
        deadline = time.monotonic() + 90
        while not launch.done and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.pause(0.5)
        app.save_screenshot("repeat.svg", str(out))
    return [out / "repeat.svg"]


def _metric_points(launch: Any) -> int:
    """The fewest metric values any trial of the launch has received so far."""
    counts = []
    for trial in launch.trials.values():
        series = getattr(trial, "metrics", None) or {}
        counts.append(max((len(v) for v in series.values()), default=0))
    return min(counts) if counts else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["TZ"] = "UTC"
    time.tzset()
    with tempfile.TemporaryDirectory(prefix="tuixp-screens-") as tmp:
        store = record_store(Path(tmp))
        written = asyncio.run(_shoot(store, out))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
