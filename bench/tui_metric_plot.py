"""The TUI's metrics plot of 1,000,000 points (4 metrics x 250,000 epochs of one trial).

The store is real: one trial recorded by `compute()`, then its 4 metrics of 250,000 points each
written into `metric_record` as ingest writes them (epoch, value, wall time). Figures, each the
median of a few runs, in the same run as their baseline:

- baseline: plotext given every point (what the detail screen did before), one plot per metric
  at the panel's size, until its text is built;
- tuixp, drawing only: the same arrays through `tuixp.tui.plotting.prepare` (min/max per braille
  column) and plotext, until built;
- the store read: `tuixp.tui.data.metric_points`, DuckDB straight into NumPy;
- the TUI: the real app headless (120x36), from `open_trial` (metrics tab asked for at once) to
  the first frame composed with every panel drawn (`tui_frames.Frames`); its baseline, the same
  screen on the same kind of trial with 4 points a metric.

Target (issue 20): the plot of 1,000,000 points first drawn in <= 300 ms.
Run: `.venv/bin/python bench/tui_metric_plot.py [--quick]` (quick: 4 x 25,000 points).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402 - the bench folder is not a package
from tui_frames import Frames  # noqa: E402

SIZE = (120, 36)
PANEL = (58, 14)  # a panel's size at 120x36 with four metrics (two columns, two rows)
METRICS = ("loss", "acc", "lr", "grad_norm")
TARGET = 0.300
SMALL = 4  # points a metric in the baseline trial
REPEAT = 3


def build_store(path: Path, per_metric: int) -> None:
    import tuixp
    from tuixp.store.store import Store

    ex = tuixp.Experiment("deep", store=path)

    @ex.result
    def train() -> float:
        return 0.0

    train().compute(seed=1)
    ex.store.journal.close()
    with Store(path).connect() as con:
        uuid = con.execute("SELECT uuid FROM trial_record WHERE trial_id = 1").fetchone()[0]
        for k, name in enumerate(METRICS):
            con.execute(
                """
                INSERT INTO metric_record (trial_uuid, experiment, trial_id, name, epoch, value,
                                           recorded_at, seq, value_type)
                SELECT ?, 'deep', 1, ?, i, exp(-i / ?) * (1 + ? * sin(i / 50.0)) + random() * 0.01,
                       TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_microseconds(i * 4000), i, 'float'
                FROM range(?) r(i)
            """,
                [uuid, name, per_metric / 3, 0.1 * (k + 1), per_metric],
            )


def read_points(path: Path) -> Any:
    from tuixp.store.store import Store
    from tuixp.tui.data import metric_points

    with Store(path).connect(read_only=True) as con:
        return metric_points(con, "deep", [1])


def draw_every_point(points: Any) -> None:
    from textual_plotext.plot import Plot

    for name in METRICS:
        p = points[name][1]
        plt = Plot()
        plt.plotsize(*PANEL)
        plt.plot(p.epoch.tolist(), p.value.tolist(), marker="braille")
        plt.title(name)
        plt.build()


def draw_downsampled(points: Any) -> None:
    from textual_plotext.plot import Plot

    from tuixp.tui.plotting import PlotOptions, prepare

    for name in METRICS:
        plt = Plot()
        plt.plotsize(*PANEL)
        xs, ys = prepare(points[name][1], PlotOptions(), 2 * (PANEL[0] - 10))
        plt.plot(xs, ys, marker="braille")
        plt.title(name)
        plt.build()


async def tui_first_draw(path: Path) -> float:
    from tuixp.tui.app import create_app
    from tuixp.tui.screens.detail import DetailScreen
    from tuixp.tui.widgets.metric_plot import MetricPlot

    app = create_app(path, poll_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 300
        while not (getattr(app, "browse", None) and app.browse.table.loaded):
            if time.monotonic() > deadline:
                raise TimeoutError("the trial table")
            await pilot.pause(0.01)
        frames = Frames(app)

        def drawn() -> bool:
            screen = app.screen
            if not isinstance(screen, DetailScreen):
                return False
            plot = screen.query(MetricPlot)
            return bool(plot) and len(plot.first().drawn) == len(METRICS)

        frames.expect(drawn)
        start = time.perf_counter()
        app.open_trial(1)
        while not (isinstance(app.screen, DetailScreen) and app.screen.query("#plot-panels")):
            await pilot.pause(0.001)
        await pilot.press("2")
        return await frames.wait(pilot, start, "the metrics plot")


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    per_metric = 25_000 if args.quick else 250_000
    total = per_metric * len(METRICS)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tuixp-bench-plot-") as tmp:
        store = Path(tmp) / "deep.duckdb"
        with common.timed() as made:
            build_store(store, per_metric)
        size = store.stat().st_size
        points = read_points(store)
        assert sum(len(points[n][1]) for n in METRICS) == total
        read = common.median_time(lambda: read_points(store), REPEAT)
        ours = common.median_time(lambda: draw_downsampled(points), REPEAT)
        baseline = common.median_time(lambda: draw_every_point(points), 1 if total > 200_000 else 3)
        tui = statistics.median(asyncio.run(tui_first_draw(store)) for _ in range(REPEAT))
        small = Path(tmp) / "small.duckdb"
        build_store(small, SMALL)
        tui_small = statistics.median(asyncio.run(tui_first_draw(small)) for _ in range(REPEAT))
    plot_part = read + ours
    met = "met" if plot_part <= TARGET else "NOT met"
    rows = [
        [
            "plotext given every point (baseline)",
            common.fmt_ms(baseline),
            f"{total:,}",
        ],
        ["tuixp: min/max per column, then plotext", common.fmt_ms(ours), f"<= {4 * 2 * 96:,}"],
        ["the store read (DuckDB into NumPy)", common.fmt_ms(read), f"{total:,}"],
        ["the TUI: open the trial to the plot drawn", common.fmt_ms(tui), "4 panels"],
        [
            f"the TUI, the same trial with {SMALL} points a metric (baseline)",
            common.fmt_ms(tui_small),
            "4 panels",
        ],
    ]
    part = f"""## The metrics plot of {total:,} points (bench/tui_metric_plot.py)

One trial with {len(METRICS)} metrics of {per_metric:,} points each (a store of
{common.fmt_bytes(size)}: one real trial and its metric rows as ingest writes them,
{common.fmt_s(made.seconds)} s to make). Four panels of
{PANEL[0]}x{PANEL[1]} cells, as the detail screen lays them out at 120x36. Medians of
{REPEAT} runs (the baseline: {1 if total > 200_000 else 3}).
Target: first drawn in <= {TARGET * 1000:.0f} ms. The plot's own part, reading the points and
drawing them, takes {common.fmt_ms(plot_part)} ms ({met}), against {common.fmt_s(baseline)} s
for plotext given every point (drawing only). Opening the detail screen on that trial until the
plot is on screen takes {common.fmt_ms(tui)} ms, of which the screen itself (the same trial with
{SMALL} points a metric: mounting the seven tabs, opening the store, reading the trial's record,
code and environment) takes {common.fmt_ms(tui_small)} ms: the points are read while the screen mounts.

{common.markdown_table(["what", "time (ms)", "points drawn"], rows, right=[1, 2])}

Measured {time.strftime("%Y-%m-%d")} on {common.machine_line()}, shared with other work (load
average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end);
`.venv/bin/python bench/tui_metric_plot.py{" --quick" if args.quick else ""}`.
"""
    print(part)
    common.publish("tui_metric_plot", part, args.quick)
    return 0 if plot_part <= TARGET or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
