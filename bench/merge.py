"""Merge at scale: 100,000 trials with metrics from one store into another.

The source is a synthetic store (``tuixp.store.synthetic``: 3 parameters, 2 metrics x 3 epochs,
3 steps a trial). Measured in one run: ``merge`` into a new store, the same merge again (every
trial skipped), ``export --bundle`` and ``merge`` of that bundle into a new store. The baseline,
measured in the same run, is the floor for moving the same rows: plain DuckDB copying every
shared table of the source into a new file (``ATTACH`` + ``CREATE TABLE AS``), no checks, no
ids, no origin. Target (issue 18): seconds, not minutes.

    .venv/bin/python bench/merge.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package


def main() -> None:
    parser = common.arguments(__doc__.splitlines()[0])
    opts = parser.parse_args()
    trials = 20_000 if opts.quick else 100_000

    import duckdb

    from tuixp.store import synthetic
    from tuixp.store.bundle import SHARED_TABLES
    from tuixp.store.merge import merge
    from tuixp.store.sharing import export_bundle
    from tuixp.store.store import Store

    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = synthetic.generate(folder / "source.duckdb", trials, experiment="search")
        with duckdb.connect(str(source), read_only=True) as con:
            metrics = con.execute("SELECT count(*) FROM metric_record").fetchone()[0]  # type: ignore[index]

        # Baseline: DuckDB alone copying the same tables into a new file.
        t = time.perf_counter()
        with duckdb.connect(str(folder / "baseline.duckdb")) as con:
            con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
            for table in SHARED_TABLES:
                con.execute(f"CREATE TABLE {table.name} AS SELECT * FROM src.{table.name}")
        baseline = time.perf_counter() - t
        rows.append(["baseline: DuckDB copies the tables (no checks)", baseline])

        target = Store(folder / "target.duckdb")
        t = time.perf_counter()
        report = merge(source, target)
        first = time.perf_counter() - t
        assert report.totals()["added"] == trials, report.totals()
        rows.append([f"`tuixp merge` into a new store ({trials:,} added)", first])

        t = time.perf_counter()
        again = merge(source, target)
        second = time.perf_counter() - t
        assert again.totals()["skipped"] == trials, again.totals()
        rows.append([f"the same merge again ({trials:,} skipped)", second])

        t = time.perf_counter()
        bundle = folder / "all.tuixp-bundle"
        export_bundle(Store(source), bundle)
        exported = time.perf_counter() - t
        rows.append([f"`tuixp export --bundle` ({bundle.stat().st_size / 1e6:.1f} MB)", exported])

        t = time.perf_counter()
        from_bundle = merge(bundle, Store(folder / "target2.duckdb"))
        merged_bundle = time.perf_counter() - t
        assert from_bundle.totals()["added"] == trials
        rows.append(["`tuixp merge` of that bundle into a new store", merged_bundle])

    table = common.markdown_table(
        ["operation", "seconds", "vs baseline"],
        [[name, f"{s:.2f}", f"{s / baseline:.1f}x"] for name, s in rows],
        right=[1, 2],
    )
    text = "\n".join(
        [
            "## Merging stores (bench/merge.py)",
            "",
            f"{trials:,} synthetic trials ({metrics:,} metric values, {3 * trials:,} steps, "
            f"{3 * trials:,} parameters) from one store into another. Target: seconds.",
            "",
            table,
            "",
            f"{common.machine_line()}; `bench/merge.py" + (" --quick" if opts.quick else "") + "`.",
            "",
        ]
    )
    common.publish("merge", text, opts.quick)


if __name__ == "__main__":
    main()
