"""Ingest: how long the first open after a burst takes to move journaled trials into the store.

Each trial journals what a real one does (``trial_started``, two steps started and finished, three
metrics, ``trial_finished``; the texts, code and packages once), written by a journal writer that
then closes, as a process that ended leaves it. Timed: the one ``Store.connect()`` that ingests
them all (open, schema check, read, check every line, one transaction, delete the journal).
Baseline, measured in the same run on the same store: the same open with nothing to ingest.
Median of the repeats; each repeat starts from a new store.

    .venv/bin/python bench/ingest.py            # 1,000, 10,000 and 50,000 trials
    .venv/bin/python bench/ingest.py --quick    # 1,000 and 10,000 trials
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package

from tuixp.store import Store, events  # noqa: E402
from tuixp.store.journal import JournalWriter  # noqa: E402

REPEATS = 3
EVENTS_A_TRIAL = 8


def _trial_events(i: int, now: float) -> list[dict[str, Any]]:
    u = f"{i:032x}"
    out = [
        events.trial_started(
            u,
            "ingest",
            i,
            now,
            i,
            {"lr": 0.1 * i, "depth": i % 7},
            host="bench",
            pid=1,
            scheduler="threads",
            code_hash="c" * 16,
            environment_hash="e" * 16,
            packages_hash="p" * 16,
            changes=[],
            data={},
        )
    ]
    for key, step in (("k-add", "add"), ("k-score", "score")):
        out.append(events.step(u, "ingest", i, key, step, now, now + 0.001, "succeeded", "w"))
    for name in ("loss", "acc", "lr"):
        out.append(events.metric(u, "ingest", i, name, 0, 0.5, now, seq=1, value_type="float"))
    out.append(
        events.trial_finished(
            u, "succeeded", now + 0.002, result="1.5", result_type="float", result_value=1.5
        )
    )
    return out


def _journal(store: Path, trials: int) -> int:
    """Journal ``trials`` trials beside ``store`` from a writer that then closes; lines written."""
    now = time.time()
    writer = JournalWriter(store)
    head = [
        events.experiment("ingest", now, None),
        events.blob("c" * 16, "def add(a, b):\n    return a + b\n"),
        events.code_set("c" * 16, [{"ord": 0, "step": "add", "source_hash": "c" * 16}]),
        events.package_set("p" * 16, {"dask": "2024.1", "duckdb": "1.0"}),
    ]
    writer.write(head)
    batch: list[dict[str, Any]] = []
    for i in range(1, trials + 1):
        batch += _trial_events(i, now)
        if len(batch) >= 4000:
            writer.write(batch)
            batch = []
    writer.write(batch, sync=True)
    writer.close()
    return len(head) + trials * EVENTS_A_TRIAL


def _one(trials: int) -> tuple[float, float]:
    """(seconds of the ingesting open, seconds of the same open with nothing to ingest)."""
    with tempfile.TemporaryDirectory(prefix="tuixp-bench-ingest-") as tmp:
        store = Path(tmp) / "ingest.duckdb"
        with Store(store).connect():
            pass  # the store exists: the open below only ingests
        _journal(store, trials)
        s = Store(store)
        t = time.perf_counter()
        with s.connect() as con:
            stored = con.execute("SELECT count(*) FROM trial_record").fetchone()
        ingest = time.perf_counter() - t
        if stored is None or stored[0] != trials:
            raise SystemExit(f"ingest stored {stored} trials of {trials}")
        t = time.perf_counter()
        with Store(store).connect() as con:
            con.execute("SELECT count(*) FROM trial_record").fetchone()
        empty = time.perf_counter() - t
        return ingest, empty


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 50_000)
    rows = []
    for n in sizes:
        runs = [_one(n) for _ in range(REPEATS)]
        ingest = statistics.median(r[0] for r in runs)
        empty = statistics.median(r[1] for r in runs)
        lines = n * EVENTS_A_TRIAL
        print(
            f"{n} trials ({lines} lines): ingest {ingest * 1e3:.1f} ms, "
            f"open without news {empty * 1e3:.1f} ms, "
            f"{(ingest - empty) / n * 1e6:.1f} us a trial",
            flush=True,
        )
        rows.append(
            (
                f"{n:,}",
                f"{lines:,}",
                common.fmt_ms(ingest),
                common.fmt_ms(empty),
                f"{(ingest - empty) / n * 1e6:.1f}",
            )
        )
    table = common.markdown_table(
        (
            "trials journaled",
            "lines",
            "open that ingests them (ms)",
            "open with nothing new (ms)",
            "ingest a trial (us)",
        ),
        rows,
        right=range(5),
    )
    part = (
        "## Ingest (bench/ingest.py)\n\n"
        + __doc__.split("\n\n")[1].replace("\n", " ")
        + f" Median of {REPEATS}.\n\n"
        + table
        + f"\n\nMachine: {common.machine_line()}.\n\n"
        + f"`.venv/bin/python bench/ingest.py{' --quick' if args.quick else ''}`\n"
    )
    common.write_part("ingest", part)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
