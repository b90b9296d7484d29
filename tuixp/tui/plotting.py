"""Metric series made ready for a terminal plot: smoothing, log scale, x by epoch or wall time,
and downsampling to the screen's resolution.

Plain NumPy, no Textual and no store: the points come from wherever (``MetricPoints``), and what
leaves is a few hundred ``(x, y)`` pairs per series, whatever the series' length. A terminal
plot is at most a few hundred braille dots wide; handing plotext a million points costs seconds
and draws the same picture. ``downsample`` keeps, per column of dots, the lowest and the highest
value (the envelope a full-resolution line would paint there), so a spike survives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

X_AXES = ("epoch", "wall")  # what the x axis shows: the epoch, or the time since the first point
SMOOTHING = (0, 10, 100)  # trailing mean over this many points per mille of the series; 0: none
MIN_WINDOW = 2


@dataclass
class MetricPoints:
    """One metric of one trial: epochs (sorted), values, and each point's wall time (Unix
    seconds; NaN where it was not recorded)."""

    epoch: np.ndarray
    value: np.ndarray
    wall: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.epoch.shape[0])

    @property
    def last(self) -> tuple[int, float] | None:
        """The point at the last epoch."""
        if not len(self):
            return None
        return int(self.epoch[-1]), float(self.value[-1])

    @classmethod
    def of(
        cls,
        epochs: Any,
        values: Any,
        walls: Any | None = None,
    ) -> MetricPoints:
        """Points from any sequences, sorted by epoch (stable: a tie keeps its order)."""
        epoch = np.asarray(epochs, dtype=np.int64)
        value = np.asarray(values, dtype=np.float64)
        wall = None if walls is None else np.asarray(walls, dtype=np.float64)
        if epoch.shape[0] > 1 and not bool(np.all(epoch[1:] >= epoch[:-1])):
            order = np.argsort(epoch, kind="stable")
            epoch, value = epoch[order], value[order]
            wall = None if wall is None else wall[order]
        return cls(epoch, value, wall)


@dataclass
class PlotOptions:
    """How the metrics are drawn; the detail screen's keys change it."""

    x: str = "epoch"  # one of X_AXES
    log: bool = False  # log scale on y (values <= 0 are left out)
    smoothing: int = 0  # index into SMOOTHING
    notes: list[str] = field(default_factory=list)

    @property
    def per_mille(self) -> int:
        return SMOOTHING[self.smoothing % len(SMOOTHING)]


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """The trailing mean over ``window`` points (fewer at the start), NaN left out of it."""
    if window < MIN_WINDOW or values.shape[0] < 2:
        return values
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    total = np.concatenate(([0.0], np.cumsum(filled)))
    count = np.concatenate(([0], np.cumsum(finite)))
    hi = np.arange(1, values.shape[0] + 1)
    lo = np.maximum(0, hi - window)
    n = count[hi] - count[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total[hi] - total[lo]) / n
    return np.where(n > 0, out, np.nan)


def window_of(length: int, per_mille: int) -> int:
    """How many points a smoothing level averages for a series of ``length`` points."""
    if per_mille <= 0:
        return 0
    return max(MIN_WINDOW, length * per_mille // 1000)


def downsample(x: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * columns`` points that draw as ``(x, y)`` would at ``columns`` dots wide:
    per column the lowest and the highest value, in the order the series visits them (x sorted).
    Series already that short come back as they are."""
    columns = max(1, columns)
    if x.shape[0] <= 2 * columns:
        return x, y
    x0, x1 = float(x[0]), float(x[-1])
    span = x1 - x0
    if span <= 0:
        return np.array([x0, x0]), np.array([float(np.min(y)), float(np.max(y))])
    col = np.minimum(((x - x0) * (columns / span)).astype(np.int64), columns - 1)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(col)) + 1))
    lows = np.minimum.reduceat(y, starts)
    highs = np.maximum.reduceat(y, starts)
    ends = np.concatenate((starts[1:], [y.shape[0]])) - 1
    rising = y[ends] >= y[starts]  # within a column: low then high if the series rises there
    first = np.where(rising, lows, highs)
    second = np.where(rising, highs, lows)
    xs = np.repeat(x0 + (col[starts] + 0.5) * (span / columns), 2)
    xs[0], xs[-1] = x0, x1  # the line starts and ends where the series does
    ys = np.empty(2 * starts.shape[0])
    ys[0::2], ys[1::2] = first, second
    return xs, ys


def plot_dots(cells: int) -> int:
    """Braille dots across a plot ``cells`` wide (two a cell, less its y axis's labels): the
    columns ``downsample`` cuts a series to for it."""
    return max(40, 2 * (cells - 10))


def integer_ticks(lo: float, hi: float, most: int = 6) -> list[int]:
    """At most ``most`` whole-number ticks from ``lo`` to ``hi``, a round step apart (epochs
    are whole numbers: plotext's own ticks would say 0.75)."""
    lo_i, hi_i = math.floor(lo), math.ceil(hi)
    span = max(1, hi_i - lo_i)
    magnitude = 1
    while True:
        for base in (1, 2, 5):
            step = base * magnitude
            if span / step <= most - 1:
                start = math.ceil(lo_i / step) * step
                return list(range(start, hi_i + 1, step))
        magnitude *= 10


def wall_unit(span: float) -> tuple[float, str]:
    """A divisor and unit that make a time span of ``span`` seconds read well."""
    if span >= 2 * 3600:
        return 3600.0, "h"
    if span >= 2 * 60:
        return 60.0, "min"
    return 1.0, "s"


def prepare(
    points: MetricPoints, options: PlotOptions, columns: int, wall_divisor: float = 1.0
) -> tuple[list[float], list[float]]:
    """What to hand plotext for one series: smoothed, x as asked, log-safe, downsampled."""
    y = points.value
    if options.per_mille:
        y = smooth(y, window_of(y.shape[0], options.per_mille))
    if options.x == "wall" and points.wall is not None:
        x = (points.wall - _first_finite(points.wall)) / wall_divisor
    else:
        x = points.epoch.astype(np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if options.log:
        keep &= y > 0
    if not bool(np.all(keep)):
        x, y = x[keep], y[keep]
    if options.x == "wall" and x.shape[0] > 1 and not bool(np.all(x[1:] >= x[:-1])):
        order = np.argsort(x, kind="stable")  # a clock that went back: draw in time order
        x, y = x[order], y[order]
    xs, ys = downsample(x, y, columns)
    return xs.tolist(), ys.tolist()


def _first_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.min()) if finite.shape[0] else 0.0


def has_wall(points: MetricPoints) -> bool:
    return points.wall is not None and bool(np.isfinite(points.wall).any())
