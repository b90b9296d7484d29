"""How the TUI writes values for people: numbers, durations, times, statuses, SQL cells.

One copy for every screen and widget (the trial table, the detail, compare, launch and SQL
screens, the experiment list); the CLI's text formatters are its own.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

from rich.text import Text

STATUS_TEXT = {
    "succeeded": "✓ ok",
    "failed": "✗ failed",
    "queued": "◌ queued",  # waiting for the scheduler: no step has started
    "running": "● running",
    "interrupted": "! interrupt",
}


def fmt_number(value: Any, width: int = 9) -> str:
    """A number in at most ``width`` cells: integers whole, floats to 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= width else f"{value:.2e}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        for fmt in (".4g", ".3g", ".2g", ".1e", ".0e"):
            text = format(value, fmt)
            if len(text) <= width:
                return text
        return text
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt_elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_time(when: datetime | None) -> str:
    """Local time, month-day hour:minute: enough to tell trials apart in 11 cells."""
    if when is None:
        return ""
    return when.astimezone().strftime("%m-%d %H:%M")


def fmt_when(value: datetime | None) -> str:
    """Local date and time to the second (the detail screen's started/finished); "—" if none."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "—"


CELL_WIDTH = 60  # the widest SQL result cell, in characters


def fmt_cell(value: Any) -> Text:
    """A value as a person reads it: NULL dimmed, floats short, times to the second."""
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, bool):
        return Text(str(value).lower())
    if isinstance(value, float):
        if math.isfinite(value):
            return Text(format(value, ".6g"), justify="right")
        return Text(str(value), justify="right")
    if isinstance(value, int):
        return Text(str(value), justify="right")
    if isinstance(value, datetime):
        return Text(value.isoformat(sep=" ", timespec="seconds"))
    if isinstance(value, date):
        return Text(value.isoformat())
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    if len(text) > CELL_WIDTH:
        text = text[: CELL_WIDTH - 1] + "…"
    return Text(text)
