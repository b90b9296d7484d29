"""The compare screen's metrics plot of 1,000,000 points: two trials of 500,000 points each.

The store is real: two trials recorded by `compute()`, then a `loss` of 500,000 points for each
written into `metric_record` as ingest writes them. Figures, in the same run as their baselines:

- drawing only, at the compare plot's size: plotext given every point of both series (what the
  compare screen did before), against `tuixp.tui.plotting.prepare` (min/max per braille column,
  the detail screen's downsampling) then plotext;
- the TUI, the real app headless (120x36): from `open_compare` (the metrics tab asked for at
  once) to the first frame composed with both series drawn (`tui_frames.Frames`); against the
  same screen with its former `_show_plot` (every point to plotext, `_show_plot_every_point`
  below, patched in), and against the same screen on trials of 4 points each (the screen's own
  cost).

Run: `.venv/bin/python bench/tui_compare_plot.py [--quick]` (quick: 2 x 50,000 points).
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

PART = "tui_compare_plot"
SIZE = (120, 36)
TRIALS = (1, 2)
SMALL = 4  # points a trial in the baseline store
REPEAT = 3


def build_store(path: Path, per_trial: int) -> None:
    import tuixp
    from tuixp.store.store import Store

    ex = tuixp.Experiment("deep", store=path)
    lr = ex.parameter("lr")

    @ex.result
    def train(lr: float) -> float:
        return lr

    for value in (0.1, 0.05):
        train(lr).compute(seed=1, lr=value)
    ex.store.journal.close()
    with Store(path).connect() as con:
        for tid in TRIALS:
            uuid = con.execute("SELECT uuid FROM trial_record WHERE trial_id = ?", [tid]).fetchone()
            con.execute(
                """
                INSERT INTO metric_record (trial_uuid, experiment, trial_id, name, epoch, value,
                                           recorded_at, seq, value_type)
                SELECT ?, 'deep', ?, 'loss', i, exp(-i / ?) * (1 + 0.1 * ? * sin(i / 50.0))
                       + random() * 0.01,
                       TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_microseconds(i * 4000), i, 'float'
                FROM range(?) r(i)
            """,
                [uuid[0], tid, per_trial / 3, tid, per_trial],
            )


def _show_plot_every_point(self: Any) -> None:
    """The compare screen's ``_show_plot`` before it downsampled: plotext given every point."""
    from textual_plotext import PlotextPlot

    plot = self.query_one("#compare-plot", PlotextPlot)
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    names = sorted(self.details[0].points) if self.details else []
    if not names:
        plot.refresh()
        return
    shown = names if self.metric_index == 0 else [names[self.metric_index - 1]]
    self.plot_drawn = {}
    for name in shown:
        for tid, series in sorted(self.details[0].metrics[name].items()):
            plt.plot(
                [e for e, _ in series],
                [v for _, v in series],
                label=f"{name} #{tid}",
                marker="braille",
            )
            self.plot_drawn[name, tid] = len(series)
    plt.title("all metrics by epoch  [m: next metric]")
    plt.xlabel("epoch")
    plot.refresh()


async def tui_first_draw(path: Path, every_point: bool = False) -> tuple[float, tuple[int, int]]:
    """Seconds from ``open_compare`` to the plot of both trials on screen; the plot's size."""
    from textual.widgets import TabbedContent
    from textual_plotext import PlotextPlot

    from tuixp.tui.app import create_app
    from tuixp.tui.screens.compare import CompareScreen

    original = CompareScreen._show_plot
    if every_point:
        CompareScreen._show_plot = _show_plot_every_point  # type: ignore[method-assign]
    try:
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
                return (
                    isinstance(screen, CompareScreen)
                    and len(getattr(screen, "plot_drawn", {})) == len(TRIALS)
                    and screen.query_one(TabbedContent).active == "metrics"
                )

            frames.expect(drawn)
            start = time.perf_counter()
            app.open_compare(list(TRIALS))
            while not (isinstance(app.screen, CompareScreen) and app.screen.query(TabbedContent)):
                await pilot.pause(0.001)
            await pilot.press("4")
            seconds = await frames.wait(pilot, start, "the compare plot")
            plot = app.screen.query_one("#compare-plot", PlotextPlot)
            return seconds, (plot.size.width, plot.size.height)
    finally:
        CompareScreen._show_plot = original  # type: ignore[method-assign]


def read_points(path: Path) -> Any:
    from tuixp.store.store import Store
    from tuixp.tui.data import metric_points

    with Store(path).connect(read_only=True) as con:
        return metric_points(con, "deep", list(TRIALS))


def draw_every_point(points: Any, size: tuple[int, int]) -> None:
    from textual_plotext.plot import Plot

    plt = Plot()
    plt.plotsize(*size)
    for tid in TRIALS:
        p = points["loss"][tid]
        plt.plot(p.epoch.tolist(), p.value.tolist(), marker="braille")
    plt.build()


def draw_downsampled(points: Any, size: tuple[int, int]) -> None:
    from textual_plotext.plot import Plot

    from tuixp.tui.plotting import PlotOptions, plot_dots, prepare

    plt = Plot()
    plt.plotsize(*size)
    for tid in TRIALS:
        xs, ys = prepare(points["loss"][tid], PlotOptions(), plot_dots(size[0]))
        plt.plot(xs, ys, marker="braille")
    plt.build()


def results_table(path: Path) -> float:
    """What the screen's parameter and result table does with the points, timed apart: the
    comparison documents (``compare.document``) take every point as ``(epoch, value)`` pairs
    (``TrialDetail.metrics``). The store read is before the clock."""
    from tuixp.tui.data import StoreReader
    from tuixp.tui.screens.compare import result_rows

    details = StoreReader(path).details("deep", list(TRIALS))
    assert details is not None
    start = time.perf_counter()
    result_rows(details)
    return time.perf_counter() - start


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    per_trial = 50_000 if args.quick else 500_000
    total = per_trial * len(TRIALS)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tuixp-bench-compare-") as tmp:
        store = Path(tmp) / "deep.duckdb"
        build_store(store, per_trial)
        points = read_points(store)
        assert sum(len(points["loss"][t]) for t in TRIALS) == total
        runs = [asyncio.run(tui_first_draw(store)) for _ in range(REPEAT)]
        tui = statistics.median(r[0] for r in runs)
        size = runs[0][1]
        tui_before, _ = asyncio.run(tui_first_draw(store, every_point=True))
        small = Path(tmp) / "small.duckdb"
        build_store(small, SMALL)
        tui_small = statistics.median(asyncio.run(tui_first_draw(small))[0] for _ in range(REPEAT))
        ours = common.median_time(lambda: draw_downsampled(points, size), REPEAT)
        table = results_table(store)
        baseline = common.median_time(lambda: draw_every_point(points, size), 1)
    from tuixp.tui.plotting import plot_dots

    rows = [
        ["plotext given every point (baseline)", common.fmt_ms(baseline), f"{total:,}"],
        [
            "tuixp: min/max per column, then plotext",
            common.fmt_ms(ours),
            f"<= {2 * len(TRIALS) * plot_dots(size[0]):,}",
        ],
        [
            "the TUI before: open compare to the plot drawn, every point to plotext (baseline)",
            common.fmt_ms(tui_before),
            f"{total:,}",
        ],
        ["the TUI: open compare to the plot drawn", common.fmt_ms(tui), "2 series"],
        [
            "of which the result rows (`compare.result_rows`: every point as pairs)",
            common.fmt_ms(table),
            f"{total:,}",
        ],
        [
            f"the TUI, two trials of {SMALL} points (baseline: the screen itself)",
            common.fmt_ms(tui_small),
            "2 series",
        ],
    ]
    part = f"""## The compare screen's plot of {total:,} points (bench/tui_compare_plot.py)

Two trials with a `loss` of {per_trial:,} points each, compared (`C` on the trial table) at
120x36: one plot of {size[0]}x{size[1]} cells with both series. The compare screen now cuts
each series to the plot's width with the detail screen's downsampling
(`tuixp.tui.plotting.prepare`: min and max per braille column). Drawing only:
{common.fmt_ms(ours)} ms against {common.fmt_s(baseline)} s for plotext given every point.
From `open_compare` to the plot on screen: {common.fmt_ms(tui)} ms (median of {REPEAT}),
against {common.fmt_s(tui_before)} s with the former `_show_plot` patched in (one run); the
screen on two trials of {SMALL} points takes {common.fmt_ms(tui_small)} ms. Most of the rest is
not the plot: the parameter and result table's `result_rows` turns every point into an
`(epoch, value)` pair (`TrialDetail.metrics`, for `tuixp.diff.result_rows`), {common.fmt_ms(table)} ms.

{common.markdown_table(["what", "time (ms)", "points drawn"], rows, right=[1, 2])}

Measured {time.strftime("%Y-%m-%d")} on {common.machine_line()}, shared with other work (load
average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end);
`.venv/bin/python bench/tui_compare_plot.py{" --quick" if args.quick else ""}`.
"""
    common.publish(PART, part, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
