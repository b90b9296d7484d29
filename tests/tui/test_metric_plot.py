"""The metrics plot: downsampling, smoothing, log scale, x by epoch or wall time (plain NumPy),
and the detail screen's panels, legend and keys through Pilot, up to a trial of 200,000 points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from textual.widgets import Static

from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded, wait_for
from tuixp.tui.app import create_app
from tuixp.tui.plotting import (
    MetricPoints,
    PlotOptions,
    downsample,
    integer_ticks,
    prepare,
    smooth,
    window_of,
)
from tuixp.tui.screens.detail import DetailScreen
from tuixp.tui.widgets.metric_plot import MetricPlot


# -- the numbers -------------------------------------------------------------------------------
def test_downsample_keeps_each_columns_lowest_and_highest_value() -> None:
    rng = np.random.default_rng(7)
    n, columns = 1_000_000, 200
    x = np.arange(n, dtype=np.float64)
    y = np.cumsum(rng.normal(size=n))
    y[123_457] = 1e6  # one spike: a plot of every point shows it, so must this one
    xs, ys = downsample(x, y, columns)
    assert len(xs) == len(ys) <= 2 * columns
    assert xs[0] == 0 and xs[-1] == n - 1
    assert 1e6 in ys
    # column by column, the pair drawn is exactly that column's min and max
    col = np.minimum((x * (columns / (n - 1))).astype(np.int64), columns - 1)
    for c in (0, 1, 57, 123, columns - 1):
        inside = y[col == c]
        pair = sorted(ys[2 * c : 2 * c + 2])
        assert pair == [inside.min(), inside.max()]
    assert float(np.min(ys)) == float(np.min(y)) and float(np.max(ys)) == float(np.max(y))


def test_downsample_leaves_short_series_alone_and_handles_one_epoch() -> None:
    x, y = np.arange(10.0), np.arange(10.0) ** 2
    xs, ys = downsample(x, y, 200)
    assert xs.tolist() == x.tolist() and ys.tolist() == y.tolist()
    xs, ys = downsample(np.zeros(1000), np.linspace(-1, 1, 1000), 10)
    assert xs.tolist() == [0.0, 0.0] and ys.tolist() == [-1.0, 1.0]


def test_smooth_is_a_trailing_mean_that_skips_nan() -> None:
    values = np.array([1.0, 3.0, np.nan, 5.0, 7.0, 9.0])
    got = smooth(values, 3)
    expected = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - 2) : i + 1] if not np.isnan(v)]
        expected.append(sum(window) / len(window))
    assert got.tolist() == expected
    assert smooth(values, 0) is values  # no smoothing: the very array
    assert window_of(1_000_000, 10) == 10_000 and window_of(20, 10) == 2


def test_prepare_log_scale_wall_time_and_unsorted_epochs() -> None:
    points = MetricPoints.of([3, 1, 2, 0], [0.001, -1.0, 10.0, 0.0], [13.0, 11.0, 12.0, 10.0])
    assert points.epoch.tolist() == [0, 1, 2, 3]  # sorted by epoch, values and times with them
    assert points.value.tolist() == [0.0, -1.0, 10.0, 0.001]
    assert points.last == (3, 0.001)
    xs, ys = prepare(points, PlotOptions(log=True), 100)
    assert (xs, ys) == ([2.0, 3.0], [10.0, 0.001])  # values <= 0 cannot go on a log scale
    xs, ys = prepare(points, PlotOptions(x="wall"), 100, wall_divisor=0.5)
    assert xs == [0.0, 2.0, 4.0, 6.0]  # seconds since the first point, in the unit asked
    no_walls = MetricPoints.of([0, 1], [1.0, 2.0], [np.nan, np.nan])
    assert prepare(no_walls, PlotOptions(), 100) == ([0.0, 1.0], [1.0, 2.0])


def test_integer_ticks_are_whole_and_round() -> None:
    assert integer_ticks(0, 3) == [0, 1, 2, 3]
    assert integer_ticks(0, 249_999) == [0, 50_000, 100_000, 150_000, 200_000]  # within the data
    assert integer_ticks(5, 17) == [5, 10, 15]
    assert integer_ticks(4, 4) == [4]


# -- the screen --------------------------------------------------------------------------------
def _legend(plot: MetricPlot) -> str:
    return str(plot.query_one("#plot-legend", Static).content)


async def _metrics_tab(pilot: Any, experiment: str, trial_id: int, marks: tuple[int, ...] = ()):
    app = pilot.app
    await loaded(pilot)
    app.select_experiment(experiment)
    await loaded(pilot)
    for m in marks:
        app.toggle_mark(m)
    app.open_trial(trial_id)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None,
        what="the trial detail",
    )
    await pilot.press("2")
    plot = app.screen.query_one(MetricPlot)
    await wait_for(pilot, lambda: bool(plot.drawn), what="the plot drawn")
    return app.screen, plot


async def test_panels_legend_and_plot_keys(real_store: Path) -> None:
    app = create_app(real_store, clock=fixed_clock)
    async with app.run_test(size=(120, 36)) as pilot:
        screen, plot = await _metrics_tab(pilot, "regression", 1, marks=(6, 9))
        assert plot.shown == ["accuracy", "loss"]  # one panel each
        assert len(plot.query("PlotextPlot")) == 2
        assert plot.drawn == {"accuracy": {1: 4, 6: 4, 9: 4}, "loss": {1: 4, 6: 4, 9: 4}}
        legend = _legend(plot)
        assert "#1 (this trial)" in legend and "#6" in legend and "#9" in legend
        assert "x: epoch · y: linear · no smoothing" in legend
        assert plot.labels == [("accuracy", "epoch"), ("loss", "epoch")]
        await pilot.press("l")
        assert screen.plot_options.log and "y: log" in _legend(plot)
        assert plot.labels == [("accuracy · log", "epoch"), ("loss · log", "epoch")]
        await pilot.press("s")
        assert screen.plot_options.per_mille == 10 and "smoothing 1%" in _legend(plot)
        await pilot.press("s", "s")
        assert screen.plot_options.per_mille == 0  # none, 1%, 10%, none
        await pilot.press("w")
        assert screen.plot_options.x == "wall" and "x: time" in _legend(plot)
        await pilot.press("w", "l")
        assert screen.plot_options.x == "epoch" and not screen.plot_options.log
        await pilot.press("m")
        await pilot.pause()
        assert plot.shown == ["accuracy"] and len(plot.query("PlotextPlot")) == 1
        await pilot.press("m", "m")
        await pilot.pause()
        assert plot.shown == ["accuracy", "loss"]


async def test_a_trial_without_metrics_says_so(real_store: Path) -> None:
    app = create_app(real_store, clock=fixed_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        app.select_experiment("classify")
        await loaded(pilot)
        app.open_trial(1)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None,
            what="the trial detail",
        )
        await pilot.press("2", "l", "s", "w")
        plot = app.screen.query_one(MetricPlot)
        assert plot.shown == [] and plot.drawn == {}
        assert plot.labels == [("No metrics recorded for this trial", "")]


async def test_two_hundred_thousand_points_reach_plotext_as_a_few_hundred(
    real_store: Path,
) -> None:
    """A long training run: the screen draws it, handing plotext at most two points a dot."""
    from tuixp.store.store import Store

    n = 200_000
    with Store(real_store).connect() as con:
        con.execute(
            """
            INSERT INTO metric_record (trial_uuid, experiment, trial_id, name, epoch, value,
                                       recorded_at, seq, value_type)
            SELECT t.uuid, 'regression', 1, 'step_loss', i, 1.0 / (i + 1) + (i % 7) * 1e-3,
                   TIMESTAMPTZ '2025-06-15 09:00:00+00' + to_microseconds(i * 1000), i, 'float'
            FROM range(?) r(i), (SELECT uuid FROM trial_record
                                 WHERE experiment = 'regression' AND trial_id = 1) t
        """,
            [n],
        )
    app = create_app(real_store, clock=fixed_clock)
    async with app.run_test(size=(120, 36)) as pilot:
        screen, plot = await _metrics_tab(pilot, "regression", 1)
        assert len(screen.detail.points["step_loss"][1]) == n
        assert plot.shown == ["accuracy", "loss", "step_loss"]
        width = plot.size.width
        assert 0 < plot.drawn["step_loss"][1] <= 2 * width
        await pilot.press("w")  # by wall time: a millisecond apart, 200 s in all
        await pilot.pause()
        assert "x: time" in _legend(plot) and plot.drawn["step_loss"][1] <= 2 * width
        assert plot.labels[2] == ("step_loss", "time since the first point (min)")


def test_metrics_panels_log_smoothed_80x24(real_store: Path, snap_compare: Any) -> None:
    """At 80x24: two panels side by side, a log scale and smoothing, the legend above."""

    async def run_before(pilot: Any) -> None:
        await _metrics_tab(pilot, "regression", 1, marks=(6,))
        await pilot.press("l", "s")
        await pilot.pause(0.2)

    app = create_app(real_store, clock=fixed_clock, poll_interval=3600)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
