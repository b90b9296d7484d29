"""Small waits for Pilot tests: poll a condition with a bounded wait (never a timing assertion)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Let the app run until ``condition()`` holds; fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            await pilot.pause()
            return
        await pilot.pause(0.05)
    raise AssertionError(f"gave up waiting for {what} after {timeout} s")


async def loaded(pilot: Pilot[Any], total: int | None = None) -> None:
    """Wait until the trial table shows a window (of ``total`` rows, if given)."""
    app: Any = pilot.app

    def ready() -> bool:
        try:
            table = app.browse.table
        except Exception:  # noqa: BLE001 - the screen is still composing
            return False
        if not table.loaded or table.pending is not None:
            return False
        return total is None or table.total == total

    await wait_for(pilot, ready, what=f"the trial table ({total} rows)")
