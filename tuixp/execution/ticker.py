"""One daemon thread that ticks what is watched, every interval, while anything is: the metric
buffers' flusher (``metric_buffer``) and the metric news' ticker (``metric_news``).

The thread starts with the first item watched (again in a forked child, whose parent's thread
is not there) and ends at the first tick that finds nothing watched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Ticker:
    """Calls ``tick(item)`` for each watched item every ``interval()`` seconds."""

    def __init__(self, name: str, interval: Callable[[], float], tick: Callable[[Any], None]):
        self.name = name  # the thread's
        self._interval = interval  # read at each tick
        self._tick = tick
        self._live: set[Any] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, item: Any, unless: Callable[[], bool] | None = None) -> None:
        """Tick ``item`` from now until ``forget``; not if ``unless()`` (asked under the lock
        ``forget`` takes, so an item forgotten meanwhile is never watched again)."""
        with self._lock:
            if unless is not None and unless():
                return
            self._live.add(item)
            thread = self._thread
            if thread is None or not thread.is_alive():  # the first, or a forked child's
                thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread = thread
                thread.start()

    def forget(self, item: Any) -> None:
        with self._lock:
            self._live.discard(item)

    def watched(self) -> list[Any]:
        with self._lock:
            return list(self._live)

    def _run(self) -> None:
        while True:
            time.sleep(self._interval())  # bounded: one interval, then look again
            with self._lock:
                items = list(self._live)
                if not items:
                    self._thread = None
                    return
            for item in items:
                self._tick(item)
