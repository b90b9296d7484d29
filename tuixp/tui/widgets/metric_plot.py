"""The metrics plot: one panel per metric, trials overlaid in the same colours in every panel,
the legend above the panels (never over a curve), log scale, smoothing, x by epoch or wall time.

It draws what it is given (``{metric: {trial_id: MetricPoints}}``) and knows nothing of where the
points come from; each series is cut down to the panel's width in braille dots first
(``tuixp.tui.plotting.downsample``), so a million points draw as fast as a thousand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tuixp.store.metric_names import is_system_metric
from tuixp.tui.plotting import (
    MetricPoints,
    PlotOptions,
    has_wall,
    integer_ticks,
    plot_dots,
    prepare,
    wall_unit,
    window_of,
)

# (plotext colour, the same colour for rich): the 16 terminal colours, so every theme has them.
PALETTE = (
    ("cyan+", "bright_cyan"),
    ("yellow+", "bright_yellow"),
    ("magenta+", "bright_magenta"),
    ("green+", "bright_green"),
    ("red+", "bright_red"),
    ("blue+", "bright_blue"),
    ("cyan", "cyan"),
    ("yellow", "yellow"),
    ("magenta", "magenta"),
    ("green", "green"),
)
PANEL_MIN_HEIGHT = 7  # rows a panel needs to show a curve and its axis labels
KEYS_HINT = "m metric · l log · s smooth · w x axis"

Series = dict[str, dict[int, MetricPoints]]


def ordered_metrics(names: Iterable[str]) -> list[str]:
    """The user's metrics by name, then the system samples (``sys/...``)."""
    return sorted(names, key=lambda n: (is_system_metric(n), n))


class MetricPlot(Vertical):
    """Panels of metrics; ``show(series, trials, options)`` draws them."""

    DEFAULT_CSS = """
    MetricPlot { height: 1fr; }
    MetricPlot > #plot-legend { height: auto; }
    MetricPlot > #plot-panels { height: 1fr; grid-size: 1; grid-gutter: 0 1; }
    MetricPlot PlotextPlot { height: 1fr; min-height: 5; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.series: Series = {}
        self.trials: list[int] = []
        self.options = PlotOptions()
        self.only: str | None = None
        self.shown: list[str] = []  # the metrics drawn, one panel each
        self.hidden: list[str] = []  # the metrics left out for lack of room
        self.drawn: dict[str, dict[int, int]] = {}  # points handed to plotext, per series
        self.labels: list[tuple[str, str]] = []  # each panel's title and x label
        self.empty_text = "No metrics recorded for this trial"

    def compose(self) -> ComposeResult:
        yield Static("", id="plot-legend")
        yield Grid(id="plot-panels")

    def show(
        self,
        series: Series,
        trials: list[int],
        options: PlotOptions,
        only: str | None = None,
    ) -> None:
        """Draw ``series``; ``trials`` in colour order (the trial itself first), ``only`` one
        metric alone."""
        self.series, self.trials, self.options, self.only = series, trials, options, only
        self.redraw()

    def on_resize(self) -> None:
        if self.series:
            self.redraw()

    def _layout(self, count: int) -> tuple[int, int]:
        """Columns and rows of panels for ``count`` metrics in this widget's size."""
        columns = 1 if count <= 1 else 2
        height = self.size.height or (self.app.size.height - 8)
        rows_fit = max(1, (height - 2) // PANEL_MIN_HEIGHT)
        rows = min(math.ceil(count / columns), rows_fit)
        return columns, rows

    def redraw(self) -> None:
        names = ordered_metrics(self.series)
        if self.only is not None and self.only in self.series:
            names = [self.only]
        columns, rows = self._layout(len(names))
        self.shown, self.hidden = names[: columns * rows], names[columns * rows :]
        grid = self.query_one("#plot-panels", Grid)
        grid.styles.grid_size_columns = columns
        panels = list(grid.query(PlotextPlot))
        wanted = max(1, len(self.shown))
        if len(panels) != wanted:
            grid.remove_children()
            panels = [PlotextPlot(classes="metric-panel") for _ in range(wanted)]
            grid.mount_all(panels)
        width = self.size.width or self.app.size.width
        dots = plot_dots(width // columns)
        colours = {tid: PALETTE[i % len(PALETTE)] for i, tid in enumerate(self.trials)}
        self.drawn = {}
        self.labels = []
        if not self.shown:
            plt = panels[0].plt
            plt.clear_data()
            plt.clear_figure()
            plt.title(self.empty_text)
            self.labels.append((self.empty_text, ""))
            panels[0].refresh()
        for panel, name in zip(panels, self.shown):
            self._draw(panel, name, colours, dots)
        self.query_one("#plot-legend", Static).update(self._legend(colours))

    def _draw(
        self, panel: PlotextPlot, name: str, colours: dict[int, tuple[str, str]], dots: int
    ) -> None:
        plt = panel.plt
        plt.clear_data()
        plt.clear_figure()
        opts = self.options
        by_trial = self.series.get(name, {})
        wall = opts.x == "wall" and any(has_wall(p) for p in by_trial.values())
        span = 0.0
        if wall:
            for p in by_trial.values():
                if has_wall(p) and p.wall is not None:
                    finite = p.wall[p.wall == p.wall]
                    span = max(span, float(finite.max() - finite.min()))
        divisor, unit = wall_unit(span)
        drawn = 0
        lo, hi = math.inf, -math.inf
        for tid in self.trials:
            points = by_trial.get(tid)
            if points is None or not len(points):
                continue
            xs, ys = prepare(points, opts if wall else _by_epoch(opts), dots, divisor)
            if not xs:
                continue
            plt.plot(xs, ys, color=colours[tid][0], marker="braille")
            self.drawn.setdefault(name, {})[tid] = len(xs)
            lo, hi = min(lo, xs[0]), max(hi, xs[-1])
            drawn += 1
        if drawn and not wall:
            plt.xticks(
                [float(t) for t in integer_ticks(lo, hi)], [str(t) for t in integer_ticks(lo, hi)]
            )
        title = name
        longest = max((len(p) for p in by_trial.values()), default=0)
        if opts.per_mille:
            title += f" · mean of {window_of(longest, opts.per_mille)}"
        if opts.log:
            plt.yscale("log")
            title += " · log"
            if not drawn:
                title += " (no value above 0)"
        xlabel = f"time since the first point ({unit})" if wall else "epoch"
        plt.title(title)
        plt.xlabel(xlabel)
        self.labels.append((title, xlabel))
        panel.refresh()

    def _legend(self, colours: dict[int, tuple[str, str]]) -> Text:
        legend = Text()
        present = {tid for name in self.shown for tid in self.series.get(name, {})}
        for i, tid in enumerate(t for t in self.trials if t in present):
            if i:
                legend.append("  ")
            legend.append("━━ ", style=colours[tid][1])
            legend.append(f"#{tid}" + (" (this trial)" if tid == self.trials[0] else ""))
        opts = self.options
        walls = any(has_wall(p) for s in self.series.values() for p in s.values())
        x = "time" if opts.x == "wall" and walls else "epoch"
        state = [f"x: {x}", "y: log" if opts.log else "y: linear"]
        state.append(f"smoothing {opts.per_mille / 10:g}%" if opts.per_mille else "no smoothing")
        if opts.x == "wall" and not walls:
            state.append("no wall times recorded: by epoch")
        if self.hidden:
            state.append(f"+{len(self.hidden)} more: m")
        legend.append("\n")
        legend.append(" · ".join(state), style="dim")
        legend.append(f"   [{KEYS_HINT}]", style="dim")
        return legend


def _by_epoch(options: PlotOptions) -> PlotOptions:
    return PlotOptions(x="epoch", log=options.log, smoothing=options.smoothing)
