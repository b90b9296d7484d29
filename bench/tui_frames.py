"""What the TUI benches share: timing "until drawn", the baselines' rows, peak memory.

Time a Textual app "until drawn": to the first frame composed while a condition holds.

Textual composes a frame (``Compositor.render_update``) and hands it to ``App._display``, which
writes it to the terminal (a headless app drops it there). ``Frames`` wraps ``_display`` of one
app and, while a measurement is on, checks the measurement's condition at each frame: the first
frame composed while it holds is when a person would see the change. Polling the condition from
the test and then waiting for Pilot's idle detection would add that detection's own latency
(tens of milliseconds) to every figure.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TIMEOUT = 600.0

# What the baselines (tables given every row) show: these columns of every trial, newest first.
BASELINE_SQL = """
    SELECT t.trial_id, t.status, json_extract_string(params, '$.lr'),
           json_extract_string(params, '$.depth'),
           json_extract_string(params, '$.model'), t.result_value, m.loss,
           epoch(t.finished_at) - epoch(t.started_at), t.started_at, t.git_commit
    FROM trial_record t LEFT JOIN (
        SELECT trial_id, arg_max(value, epoch) AS loss FROM metric_record
        WHERE name = 'loss' GROUP BY trial_id) m ON m.trial_id = t.trial_id
    ORDER BY t.trial_id DESC"""
BASELINE_LABELS = (
    "#",
    "status",
    "lr",
    "depth",
    "model",
    "result",
    "loss",
    "elapsed",
    "started",
    "commit",
)


def peak_rss_mb() -> float:
    """Peak RSS of this process. ``ru_maxrss`` would not do: Linux carries it over ``exec`` from
    the parent (which wrote the store), so VmHWM it is, where the platform has it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Frames:
    """Frame times of one app, and the wait for the first frame that shows a change."""

    def __init__(self, app: Any) -> None:
        self.count = 0
        self._condition: Callable[[], bool] | None = None
        self._hit: float | None = None
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is None:
                return
            self.count += 1
            if self._condition is not None and self._hit is None and self._condition():
                self._hit = time.perf_counter()

        app._display = display

    def expect(self, condition: Callable[[], bool]) -> None:
        """Watch the frames from now on for the first one composed while ``condition()`` holds.

        Call it before triggering the change (a key press, a method call), with a condition
        that only the change makes true.
        """
        self._hit = None
        self._condition = condition

    async def wait(self, pilot: Any, start: float, what: str, timeout: float = TIMEOUT) -> float:
        """Seconds from ``start`` (taken before the trigger) to that frame."""
        deadline = time.monotonic() + timeout
        try:
            while self._hit is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gave up waiting for {what}")
                await pilot.pause(0.005)
            return self._hit - start
        finally:
            self._condition = None
