"""The TUI's trial table at 10,000 / 100,000 / 1,000,000 trials, against tables given every row.

For each size a synthetic store is written straight through the store layer
(``tuixp.store.synthetic``: parameters, results, two metrics over three epochs, step timings).
Each measurement runs in a fresh process (so peak memory is its own) with the real app headless
(``App.run_test``, 120x36), and each figure runs until the first frame that shows the change
(``tui_frames.Frames``):

- first paint: from creating the app to the first window of trials drawn on screen;
- jump to end: ``G`` until the last trial is drawn;
- sort by a metric (``loss``, its value at the last epoch) and by the result, until drawn: first
  right after the first paint (DuckDB sorts), then once the in-memory summary is built;
- peak RSS of the process (VmHWM), imports included.

The baselines: what the issue measured first, a Textual ``DataTable`` given every row of the
same store (``add_rows``), then ``ctrl+end`` and ``DataTable.sort``, up to ``--baseline-max``
rows (by default 100,000; at a million it needs minutes and gigabytes); and, when the ``bench``
extra is installed, textual-fastdatatable given the same rows as an Arrow table
(``tui_fastdatatable.py``), at every size.

Targets at 1,000,000 trials: first paint <= 1.5 s, jump and sort <= 300 ms, RSS <= 400 MB.
Run: ``python bench/tui_scale.py`` (full) or ``--quick`` (10,000 and 100,000 trials).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402 - the bench folder is not a package
from tui_frames import BASELINE_LABELS, BASELINE_SQL, Frames, peak_rss_mb  # noqa: E402

SIZE = (120, 36)
REPEAT = 3  # jumps and sorts are medians of this many (the machine is shared)
TIMEOUT = 600.0
TARGETS = {
    "first_paint": 1.5,
    "jump_end": 0.3,
    "sort_metric": 0.3,
    "sort_result": 0.3,
    "rss_mb": 400.0,
}
FASTDATATABLE = importlib.util.find_spec("textual_fastdatatable") is not None  # the bench extra
LOAD = os.getloadavg  # other work on the machine slows every figure; the report says how much


async def _until(pilot: Any, condition: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await pilot.pause(0.005)


async def measure_windowed(store: Path) -> dict[str, float]:
    from tuixp.tui.app import create_app

    out: dict[str, float] = {}
    start = time.perf_counter()
    app = create_app(store)  # polls every second, as it does for a person
    frames = Frames(app)

    def drawn() -> bool:
        try:
            table = app.browse.table
        except Exception:  # noqa: BLE001 - still composing
            return False
        return table.loaded and table.total > 0 and 0 in table.rows

    frames.expect(drawn)
    async with app.run_test(size=SIZE) as pilot:
        out["first_paint"] = await frames.wait(pilot, start, "the first window")
        table = app.browse.table
        total = table.total

        async def jump(key: str, row: int) -> float:
            frames.expect(
                lambda: row in table.rows and table.pending is None and table.cursor_row == row
            )
            t = time.perf_counter()
            await pilot.press(key)
            return await frames.wait(pilot, t, f"row {row}")

        jumps = []
        for _ in range(REPEAT):
            jumps.append(await jump("G", total - 1))
            await jump("g", 0)
        out["jump_end"] = statistics.median(jumps)

        async def sort(column: str, descending: bool) -> float:
            frames.expect(
                lambda: (
                    app.query_state.sort == column
                    and app.query_state.descending == descending
                    and 0 in table.rows
                    and table.pending is None
                )
            )
            t = time.perf_counter()
            app.sort_by(column)
            return await frames.wait(pilot, t, f"the sort by {column}")

        # Right after start the summary is still being built: a sort asks DuckDB.
        out["sort_metric_cold"] = await sort("loss", True)
        out["sort_result_cold"] = await sort("result", True)
        summary = app.reader.summaries.get("search")
        await _until(
            pilot, lambda: summary is not None and summary.prepared, "the summary's sorted orders"
        )
        out["summary_prepared"] = time.perf_counter() - start
        # Each sort_by on the same column reverses it: asc, desc, asc...
        out["sort_result"] = statistics.median(
            [await sort("result", i % 2 == 1) for i in range(REPEAT)]
        )
        await sort("trial_id", True)
        out["sort_metric"] = statistics.median(
            [await sort("loss", i % 2 == 0) for i in range(REPEAT)]
        )
        out["total"] = float(total)
        reader = app.reader
    out["rss_mb"] = peak_rss_mb()
    # The same reads without the UI and without the poll beside them: what the store costs.
    from tuixp.store.window import TrialQuery

    def timed(fn: Any) -> float:
        return common.median_time(fn, REPEAT)

    def open_close() -> None:
        with reader.store.connect(timeout=5):
            pass

    out["db_open_close"] = timed(open_close)
    out["db_jump_end"] = timed(lambda: reader.trials(TrialQuery("search"), total - 100, 100))
    out["db_sort_result"] = timed(
        lambda: reader.trials(TrialQuery("search", sort="result"), 0, 100)
    )
    out["db_sort_metric"] = timed(lambda: reader.trials(TrialQuery("search", sort="loss"), 0, 100))
    return out


async def measure_datatable(store: Path) -> dict[str, float]:
    """The baseline: every row into a plain DataTable."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from tuixp.store.store import Store

    class Plain(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable(id="t")

    out: dict[str, float] = {}
    start = time.perf_counter()
    app = Plain()
    frames = Frames(app)
    async with app.run_test(size=SIZE) as pilot:
        with Store(store).connect() as con:
            con.execute("SET enable_progress_bar = false")
            rows = con.execute(BASELINE_SQL).fetchall()
        table = app.query_one(DataTable)
        for name in BASELINE_LABELS:
            table.add_column(name, key=name)
        frames.expect(lambda: table.row_count == len(rows))
        table.add_rows(rows)
        out["first_paint"] = await frames.wait(pilot, start, "the rows")
        table.focus()
        jumps = []
        last = len(rows) - 1
        for _ in range(REPEAT):
            frames.expect(lambda: table.cursor_row == last)
            t = time.perf_counter()
            await pilot.press("ctrl+end")
            jumps.append(await frames.wait(pilot, t, "the last row"))
            frames.expect(lambda: table.cursor_row == 0)
            t = time.perf_counter()
            await pilot.press("ctrl+home")
            await frames.wait(pilot, t, "the first row")
        out["jump_end"] = statistics.median(jumps)

        def key(v: Any) -> float:
            return v if v is not None else float("inf")

        for name, column in (("sort_metric", "loss"), ("sort_result", "result")):
            times = []
            for i in range(REPEAT):
                done = [False]
                frames.expect(lambda done=done: done[0])
                t = time.perf_counter()
                table.sort(column, key=key, reverse=i % 2 == 0)
                done[0] = True  # the sort is synchronous: the next frame shows it
                times.append(await frames.wait(pilot, t, f"the sort by {column}"))
            out[name] = statistics.median(times)
            out[f"{name}_first"] = times[0]
        out["total"] = float(len(rows))
    out["rss_mb"] = peak_rss_mb()
    return out


def _child(kind: str, store: Path) -> dict[str, float]:
    """Run one measurement in a fresh interpreter and return its figures."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(common.ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", kind, "--store", str(store)],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} on {store} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


Figures = dict[str, float]
Result = tuple[int, float, Figures, Figures | None, Figures | None]  # trials, store written in s


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not run"
    return f"{value:,.0f} MB" if unit == "MB" else f"{common.fmt_ms(value)} ms"


def main() -> int:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="comma-separated trial counts")
    parser.add_argument(
        "--baseline-max",
        type=int,
        default=100_000,
        help="largest store the plain DataTable is measured on",
    )
    parser.add_argument(
        "--measure", choices=["windowed", "datatable", "fastdatatable"], help=argparse_hidden()
    )
    parser.add_argument("--store", type=Path, help=argparse_hidden())
    args = parser.parse_args()
    if args.measure:
        if args.measure == "fastdatatable":
            from tui_fastdatatable import measure_fastdatatable

            figures = asyncio.run(measure_fastdatatable(args.store, SIZE, REPEAT))
        else:
            fn = measure_windowed if args.measure == "windowed" else measure_datatable
            figures = asyncio.run(fn(args.store))
        print(json.dumps(figures))
        return 0
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [10_000, 100_000]
        if args.quick
        else [10_000, 100_000, 1_000_000]
    )
    from tuixp.store import synthetic

    results: list[Result] = []
    load_start = LOAD()[0]
    with tempfile.TemporaryDirectory(prefix="tuixp-tui-scale-") as tmp:
        for n in sizes:
            store = Path(tmp) / f"trials-{n}.duckdb"
            t = time.perf_counter()
            synthetic.generate(store, n, experiment="search")
            gen = time.perf_counter() - t
            size_mb = store.stat().st_size / 2**20
            print(f"{n:>9,} trials: store written in {gen:.1f} s ({size_mb:,.0f} MB)", flush=True)
            windowed = _child("windowed", store)
            print(
                f"{'':>9}  windowed : "
                + ", ".join(
                    f"{k} {_fmt(v, 'MB' if k == 'rss_mb' else 's')}"
                    for k, v in windowed.items()
                    if k != "total"
                ),
                flush=True,
            )
            base = None
            if n <= args.baseline_max:
                base = _child("datatable", store)
                print(
                    f"{'':>9}  DataTable: "
                    + ", ".join(
                        f"{k} {_fmt(v, 'MB' if k == 'rss_mb' else 's')}"
                        for k, v in base.items()
                        if k != "total"
                    ),
                    flush=True,
                )
            fast = None
            if FASTDATATABLE:
                fast = _child("fastdatatable", store)
                print(
                    f"{'':>9}  fastdatatable: "
                    + ", ".join(
                        f"{k} {_fmt(v, 'MB' if k == 'rss_mb' else 's')}"
                        for k, v in fast.items()
                        if k != "total"
                    ),
                    flush=True,
                )
            results.append((n, gen, windowed, base, fast))
            store.unlink()
    common.write_part("tui_scale", _markdown(results, args.baseline_max, (load_start, LOAD()[0])))
    worst = results[-1][2]
    if results[-1][0] >= 1_000_000:
        missed = [k for k, limit in TARGETS.items() if worst[k] > limit]
        print(
            "targets at 1,000,000 trials: "
            + ("all met" if not missed else "missed: " + ", ".join(missed))
        )
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def _markdown(results: list[Result], baseline_max: int, load: tuple[float, float]) -> str:
    rows = []
    for n, _, w, b, f in results:
        for label, figures in (
            ("tuixp table (windowed)", w),
            ("DataTable, all rows", b),
            ("fastdatatable, all rows", f),
        ):
            if figures is None:
                if label.startswith("DataTable") or FASTDATATABLE:
                    rows.append([f"{n:,}", label, "not run", "", "", "", "", "", ""])
                continue
            first = [
                figures.get(k)
                for k in (
                    ("sort_metric_cold", "sort_result_cold")
                    if "sort_metric_cold" in figures
                    else ("sort_metric_first", "sort_result_first")
                )
            ]
            rows.append(
                [
                    f"{n:,}",
                    label,
                    _fmt(figures["first_paint"], "s"),
                    _fmt(figures["jump_end"], "s"),
                    _fmt(figures["sort_metric"], "s"),
                    _fmt(figures["sort_result"], "s"),
                    _fmt(first[0], "s") if first[0] is not None else "n/a",
                    _fmt(first[1], "s") if first[1] is not None else "n/a",
                    _fmt(figures["rss_mb"], "MB"),
                ]
            )
    table = common.markdown_table(
        [
            "trials",
            "table",
            "first paint",
            "jump to end",
            "sort by metric",
            "sort by result",
            "first sort by metric",
            "first sort by result",
            "peak RSS",
        ],
        rows,
        right=(2, 3, 4, 5, 6, 7, 8),
    )
    db_rows = [
        [
            f"{n:,}",
            _fmt(w["db_open_close"], "s"),
            _fmt(w["db_jump_end"], "s"),
            _fmt(w["db_sort_metric"], "s"),
            _fmt(w["db_sort_result"], "s"),
        ]
        for n, _, w, _, _ in results
        if "db_open_close" in w
    ]
    db_table = common.markdown_table(
        [
            "trials",
            "open + close the store",
            "read: last window",
            "read: sorted by metric",
            "read: sorted by result",
        ],
        db_rows,
        right=(1, 2, 3, 4),
    )
    stores = ", ".join(f"{n:,} in {gen:.1f} s" for n, gen, _, _, _ in results)
    ready = ", ".join(
        f"{n:,}: {w['summary_prepared']:.1f} s"
        for n, _, w, _, _ in results
        if "summary_prepared" in w
    )
    fast = (
        "textual-fastdatatable (the `bench` extra) given every row as one Arrow table"
        if FASTDATATABLE
        else "textual-fastdatatable is not installed here (`pip install -e '.[bench]'`), so its "
        "rows are missing"
    )
    return f"""## TUI at scale (bench/tui_scale.py)

The trial table of `tuixp` against two tables given every row: Textual's `DataTable` and
{fast}. Synthetic stores written through the store layer (3 parameters, result, 2 metrics x 3
epochs, 3 steps per trial); headless app at {SIZE[0]}x{SIZE[1]}, each row of figures from a
fresh process; the plain DataTable runs up to {baseline_max:,} trials. Targets at 1,000,000
trials: first paint <= 1.5 s, jump and sort <= 300 ms, peak RSS <= 400 MB (RSS includes Python,
Textual, DuckDB, pandas and pyarrow).

Every figure runs from the key press (or the call) to the first frame Textual composes that
shows the change (`bench/tui_frames.py` watches `App._display`), so Pilot's own idle detection
is not counted. Jumps and sorts are medians of {REPEAT} (end and back; descending and
ascending). "First sort" is the first sort of each kind: for tuixp, one asked right after the
first paint, before the in-memory summary of results and metrics is built (DuckDB sorts then;
the summary was built and sorted after {ready}); for the others, their first sort, which can
be slower than the next ones (fastdatatable's first sort also joins the chunks DuckDB handed
over). Each read of tuixp opens and closes the store (the TUI never holds the file; the second
table shows that cost).

{table}

Where the time goes: the same reads through the TUI's store reader, without the UI and without
a poll beside them (each opens the store, ingests, reads the window and its rows, closes it):

{db_table}

Stores written in: {stores}. Machine: {common.machine_line()}; load average during the run
{load[0]:.1f} at the start and {load[1]:.1f} at the end (other work on the 2 cores slows the figures).
Measured {time.strftime("%Y-%m-%d")}; `python bench/tui_scale.py{"" if len(results) > 2 else " --quick"}`.
"""


if __name__ == "__main__":
    sys.exit(main())
