"""Metric points on their way to a trial's listeners: in batches, not one event a point.

A training loop saves a point every few microseconds; one progress event a point made a run of
1,000,000 points call each listener a million times (``tuixp run --progress jsonl`` wrote a
million lines, and cost the loop 25x its time: bench/live_metrics.py). Instead the recorder
hands each point to its trial's ``MetricNews``, and the points saved since the last batch go
out as one ``metrics`` event per step (docs/events.md), carrying every point, when one of
these comes first:

- the ticker thread's tick, every ``NEWS_INTERVAL`` seconds (0.2), so a live view lags by at
  most about that, and a point saved before a long pause is shown during the pause;
- ``MAX_BATCH`` points are waiting (a JSON line stays a few hundred kB, whatever the loop's pace);
- the end of a step: its points come before its ``task_finished`` (or ``task_failed``);
- the end of the trial: before its ``trial_finished``.

So nothing is lost and the last point saved is always shown. Batches go out in the order they
were taken (one send lock), from whichever thread flushes: the ticker's, or the step's own. A
listener that raises on a batch is logged and the run goes on: it must not cost the trial its
record (the batch before a step's end is sent before that end is journaled).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from tuixp.execution.ticker import Ticker

logger = logging.getLogger("tuixp")

NEWS_INTERVAL = 0.2  # seconds between two batches of a trial's metric points to its listeners
MAX_BATCH = 10_000  # points in one batch at most

# {metric name: {"epoch": [...], "value": [...]}}: one step's points of one batch, as columns
Points = dict[str, dict[str, list[Any]]]
Send = Callable[[str | None, Points], None]


class MetricNews:
    """The points of one trial not yet shown to its listeners, by step and metric."""

    def __init__(self, send: Send) -> None:
        self.send = send  # called with (step or None for system samples, points), in order
        self._lock = threading.Lock()  # the pending points
        self._send_lock = threading.RLock()  # batches go out in the order taken
        self._pending: dict[str | None, Points] = {}
        self._n = 0  # points pending
        self._watched = False
        self.closed = False

    def add(self, step: str | None, name: str, epoch: int, value: float) -> None:
        """One point saved (the hot path of a training loop with a listener: kept short)."""
        if not self._watched:
            self._watched = True
            watch(self)
        with self._lock:
            by_name = self._pending.get(step)
            if by_name is None:
                by_name = self._pending[step] = {}
            cols = by_name.get(name)
            if cols is None:
                cols = by_name[name] = {"epoch": [], "value": []}
            cols["epoch"].append(epoch)
            cols["value"].append(value)
            self._n += 1
            full = self._n >= MAX_BATCH
        if full:
            self.flush()

    def __bool__(self) -> bool:
        return bool(self._pending)

    def flush(self) -> int:
        """Send what is pending now, one call a step; the number of points sent."""
        with self._send_lock:
            with self._lock:
                pending, self._pending, sent = self._pending, {}, self._n
                self._n = 0
            for step, points in pending.items():
                try:
                    self.send(step, points)
                except Exception as exc:  # noqa: BLE001 - a listener must not fail the trial
                    logger.warning("A progress listener failed on metric points: %s", exc)
            return sent

    def close(self) -> None:
        """The trial has ended: no more ticks for it (what is pending is dropped)."""
        self.closed = True
        forget(self)
        with self._lock:
            self._pending, self._n = {}, 0


# -- the ticker: one daemon thread while some trial of this process has listeners and points --
_TICKER = Ticker(
    "tuixp-metric-news", lambda: NEWS_INTERVAL, lambda news: news.flush() if news else None
)


def watch(news: MetricNews) -> None:
    """Flush ``news`` every ``NEWS_INTERVAL`` from now until ``forget`` (never once closed)."""
    _TICKER.watch(news, unless=lambda: news.closed)


def forget(news: MetricNews) -> None:
    _TICKER.forget(news)
