"""Printing for people and programs: table cells, plain tables that fit the terminal, CSV and
JSON (``emit``)."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import typer


def table_width() -> int:
    if sys.stdout.isatty():
        return max(40, shutil.get_terminal_size((80, 24)).columns)
    return 80


def fmt_number(value: float) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return repr(value)
    return f"{value:.6g}"


def fmt_value(value: Any) -> str:
    """A value in a table cell: numbers short, strings bare, the rest compact JSON."""
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return fmt_number(value)
    if isinstance(value, str):
        return " ".join(value.split()) if "\n" in value else value
    if isinstance(value, datetime):
        return fmt_time(value, full=True)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=json_default, separators=(",", ":"))
    return str(value)  # Decimal, date, UUID, ...: as SQL shows them


def fmt_time(value: datetime | None, full: bool = False, clock: bool = False) -> str:
    """Local time: in full, as month-day hour:minute, or (``clock``) hour:minute only."""
    if value is None:
        return ""
    local = value.astimezone() if value.tzinfo is not None else value
    return local.strftime("%Y-%m-%d %H:%M:%S" if full else "%H:%M" if clock else "%m-%d %H:%M")


def is_today(value: datetime | None) -> bool:
    if value is None:
        return True
    local = value.astimezone() if value.tzinfo is not None else value
    return local.date() == datetime.now().date()


def fmt_elapsed(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_param(value: Any) -> str:
    """A parameter's value: as ``fmt_value``, but None is shown as ``None`` (``max_depth=None``
    is a value the trial ran with, not a blank: ``tuixp run`` reads it back as None)."""
    return "None" if value is None else fmt_value(value)


def fmt_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt_param(v)}" for k, v in params.items())


def json_default(value: Any) -> Any:
    """What JSON lacks: times as ISO text, decimals as numbers, durations in seconds."""
    import datetime as dt
    import decimal

    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


def loads_json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _elide(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…" if width > 0 else ""


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int = 80,
    right: Iterable[int] = (),
    keep: Iterable[int] = (),
) -> str:
    """A plain table that fits ``width`` columns: the widest columns give way, cells elided.

    Columns in ``keep`` give way last: the others first shrink to 10 characters.
    """
    right = set(right)
    keep = set(keep)
    n = len(headers)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    gap = 2
    hard = [min(widths[i], max(len(h), 4)) for i, h in enumerate(headers)]
    soft = [widths[i] if i in keep else max(hard[i], min(widths[i], 10)) for i in range(n)]
    excess = sum(widths) + gap * (n - 1) - width
    for minimum in (soft, hard):
        while excess > 0:
            shrinkable = [i for i in range(n) if widths[i] > minimum[i]]
            if not shrinkable:
                break
            i = max(shrinkable, key=lambda j: widths[j])
            others = sorted((widths[j] for j in shrinkable if j != i), reverse=True)
            floor = max(minimum[i], others[0] if others else minimum[i])
            take = min(excess, max(widths[i] - floor, 1))
            widths[i] -= take
            excess -= take

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            text = _elide(cell, widths[i])
            out.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
        return (" " * gap).join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def emit(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str,
    table_columns: Sequence[str] | None = None,
    table_cells: Callable[[Sequence[Any]], Sequence[str]] | None = None,
    right: Iterable[int] = (),
    optional: Iterable[int] = (),
    keep: Iterable[int] = (),
) -> None:
    """Print rows as a table (people), CSV or JSON (programs).

    In a table, the ``optional`` columns are left out when every cell of theirs is empty.
    """
    if fmt == "json":
        typer.echo(
            json.dumps([dict(zip(columns, r)) for r in rows], default=json_default, indent=2)
        )
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([csv_cell(v) for v in r])
        typer.echo(buf.getvalue(), nl=False)
        return
    headers = list(table_columns or [c.upper() for c in columns])
    cells = [list(table_cells(r)) if table_cells else [fmt_value(v) for v in r] for r in rows]
    right, keep = set(right), set(keep)
    empty = sorted((i for i in optional if all(not r[i] for r in cells)), reverse=True)
    for i in empty:
        del headers[i]
        for r in cells:
            del r[i]
        right = {j - 1 if j > i else j for j in right if j != i}
        keep = {j - 1 if j > i else j for j in keep if j != i}
    typer.echo(render_table(headers, cells, table_width(), right, keep))


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=json_default, separators=(",", ":"))
    return value


def common_params(params: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters every one of ``params`` has, with the same value."""
    first = params[0]
    marker = object()
    return {
        k: v for k, v in first.items() if all(_same_json(p.get(k, marker), v) for p in params[1:])
    }


def _same_json(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def section(title: str) -> str:
    return f"\n{title}\n" + "-" * len(title)


def indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
