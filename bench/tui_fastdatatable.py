"""A second baseline for bench/tui_scale.py: every trial in textual-fastdatatable's DataTable.

The TUI issue named two ways to show a million trials: textual-fastdatatable (a DataTable over an
Arrow table, rendering only the lines on screen) or our own windowed ScrollView. This measures
the first, the way ``measure_datatable`` in tui_scale.py measures Textual's plain DataTable:
the same columns of every trial, read by the same query, here as one Arrow table handed to the
widget through its ``ArrowBackend`` (no Python rows), in a headless app. Each figure runs until
the first frame that shows the change (``tui_frames.Frames``):

- first_paint: from creating the app (the query runs in its ``compose``) to the first rows drawn;
- jump_end: ``end`` until the cursor is on the last row and that row is on screen. In
  fastdatatable ``end`` moves the cursor to the last row in its column, which is what Textual's
  DataTable does on ``ctrl+end``; fastdatatable's ``ctrl+end`` also goes to the last column.
  jump_end_first is the first of them: the later ones draw rows the widget has cached;
- sort_metric / sort_result: ``DataTable.sort`` by ``loss`` / ``result`` (an Arrow
  ``sort_by`` of the whole table), until the top row on screen holds the column's max (descending)
  or min (ascending), taken beforehand with ``pyarrow.compute``. ``*_first`` is the first of
  each: the very first sort works on the table as DuckDB handed it over (9 chunks at a million
  trials, 1 at 100,000), every later one on the one chunk the previous sort left; at a million
  trials the first is by far the slowest;
- total: rows; db_read: the query into Arrow (part of first_paint); rss_mb: peak RSS (VmHWM).

Jumps and sorts are medians of ``repeat`` (sorts alternate descending and ascending). The store
is opened read-only with DuckDB itself (no schema check or journal ingest, which the baseline's
``Store.connect`` does: on a synthetic store of 100,000 trials, 28 ms against 22 ms here).

Needs the ``bench`` extra (``pip install -e '.[bench]'``).
Run alone: ``python bench/tui_fastdatatable.py STORE [--repeat 3] [--size 120x36]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tui_frames import BASELINE_LABELS, BASELINE_SQL, Frames, peak_rss_mb  # noqa: E402


async def measure_fastdatatable(
    store: Path, size: tuple[int, int], repeat: int
) -> dict[str, float]:
    """Figures of textual-fastdatatable's DataTable given every trial of ``store`` (seconds, MB)."""
    import duckdb
    import pyarrow.compute as pc
    from textual.app import App, ComposeResult
    from textual_fastdatatable import ArrowBackend, DataTable

    out: dict[str, float] = {}

    class Fast(App[None]):
        def compose(self) -> ComposeResult:
            t = time.perf_counter()
            with duckdb.connect(str(store), read_only=True) as con:
                con.execute("SET enable_progress_bar = false")
                # con.sql, not con.execute: DuckDB copies the rows once more for a DB-API result.
                data = con.sql(BASELINE_SQL).to_arrow_table().rename_columns(list(BASELINE_LABELS))
            out["db_read"] = time.perf_counter() - t
            yield DataTable(backend=ArrowBackend(data), id="t")

    start = time.perf_counter()
    app = Fast()
    frames = Frames(app)

    def table() -> Any:
        return app.query_one("#t", DataTable)

    def painted() -> bool:
        try:
            t = table()
        except Exception:  # noqa: BLE001 - not composed yet
            return False
        # Laid out, and its rows measured (virtual_size is set once the column widths are known).
        return (
            t.row_count > 0
            and t.size.height > t.header_height
            and t.virtual_size.height == t.row_count + t.header_height
        )

    frames.expect(painted)
    async with app.run_test(size=size) as pilot:
        out["first_paint"] = await frames.wait(pilot, start, "the first rows")
        t = table()
        total = t.row_count
        last = total - 1
        t.focus()
        await pilot.pause()

        def on_screen(row: int) -> bool:
            top = int(t.scroll_y)
            shown = t.scrollable_content_region.height - t.header_height
            return top <= row < top + shown

        def at_end() -> bool:
            return t.cursor_row == last and on_screen(last)

        def at_top() -> bool:
            return t.cursor_row == 0 and int(t.scroll_y) == 0

        async def press(key: str, condition: Any, what: str) -> float:
            frames.expect(condition)
            t0 = time.perf_counter()
            await pilot.press(key)
            return await frames.wait(pilot, t0, what)

        jumps = []
        for _ in range(repeat):
            jumps.append(await press("end", at_end, "the last row"))
            await press("home", at_top, "the first row")
        out["jump_end"] = statistics.median(jumps)
        out["jump_end_first"] = jumps[0]  # before the widget's row caches hold the last rows

        for name, column in (("sort_metric", "loss"), ("sort_result", "result")):
            index = list(t.backend.columns).index(column)
            low_high = pc.min_max(t.backend.data.column(column))
            low, high = low_high["min"].as_py(), low_high["max"].as_py()
            if low is None or high is None:
                raise ValueError(f"column {column} holds no values to sort by")
            times = []
            for i in range(repeat):
                descending = i % 2 == 0
                expected = high if descending else low
                count = t._update_count + 1  # DataTable.sort adds one; the caches key on it

                def sorted_top(
                    count: int = count, expected: Any = expected, index: int = index
                ) -> bool:
                    return (
                        t._update_count == count
                        and t.backend.get_cell_at(int(t.scroll_y), index) == expected
                    )

                frames.expect(sorted_top)
                t0 = time.perf_counter()
                t.sort([(column, "descending" if descending else "ascending")])
                times.append(await frames.wait(pilot, t0, f"the sort by {column}"))
            out[name] = statistics.median(times)
            out[f"{name}_first"] = times[0]
        out["total"] = float(total)
    out["rss_mb"] = peak_rss_mb()
    return out


def _size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=_size, default=(120, 36), help="WIDTHxHEIGHT")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure_fastdatatable(args.store, args.size, args.repeat))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
