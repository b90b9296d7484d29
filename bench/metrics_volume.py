"""The metric-heavy workload: 4 metrics x 250,000 steps in one trial, then one metric read back.

Measured, each in a fresh process of its own (imports apart):
  1. logging: microseconds a point inside the step (``ex.log_metrics`` of 4 metrics a step, and
     ``ex.save_metric`` one at a time), the trial's total;
  2. ingest: the first open of the store after the trial (the journal's batches into DuckDB),
     in points a second;
  3. ``load_metric`` of one metric (250,000 points), the best of 3;
  4. bytes on disk a point: the database after ingest, and the journal before it.
The baseline, in the same run: one journal event a point, as tuixp journaled metrics before
batches (``events.metric`` + ``Store.record`` per call) and ingested them (a Python loop over
JSON lines), on a sample of ``BASELINE_POINTS`` points (the full million takes minutes that way).

    .venv/bin/python bench/metrics_volume.py            # 4 x 250,000 points
    .venv/bin/python bench/metrics_volume.py --quick    # 4 x 25,000 points
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package

PART = "metrics_volume"
METRICS = ("loss", "acc", "val_loss", "lr")

# The trial, in a child: the process ends with os._exit right after it, so no ingest runs
# there (the background ingest waits 0.5 s; the exit hook is skipped): the next open does it.
LOG = textwrap.dedent("""
    import json, os, sys, time
    import tuixp
    steps, store, how = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    from tuixp.store import Store
    with Store(store).connect():
        pass  # the database exists before the trial: the next open only ingests
    ex = tuixp.Experiment("heavy", store=store)
    out = {}
    @ex.result
    def train():
        t = time.perf_counter()
        if how == "log_metrics":
            for i in range(steps):
                ex.log_metrics({"loss": 1.0 / (i + 1), "acc": i / steps,
                                "val_loss": 2.0 / (i + 1), "lr": 0.1 * 0.99 ** (i // 1000)}, epoch=i)
        else:
            for i in range(steps):
                ex.save_metric("loss", epoch=i, value=1.0 / (i + 1))
                ex.save_metric("acc", epoch=i, value=i / steps)
                ex.save_metric("val_loss", epoch=i, value=2.0 / (i + 1))
                ex.save_metric("lr", epoch=i, value=0.1 * 0.99 ** (i // 1000))
        out["log_s"] = time.perf_counter() - t
        return 1.0
    t = time.perf_counter()
    train().compute()
    out["trial_s"] = time.perf_counter() - t
    journal = store + ".journal"
    out["journal_bytes"] = sum(os.path.getsize(os.path.join(journal, f)) for f in os.listdir(journal)
                               if f.endswith(".jsonl"))
    print(json.dumps(out), flush=True)
    os._exit(0)
""")

# The baseline: one journal event a point, as before batches (the old save_metric's writes).
BASELINE_LOG = textwrap.dedent("""
    import json, os, sys, time, uuid
    from tuixp.store import events, Store
    points, store = int(sys.argv[1]), sys.argv[2]
    s = Store(store)
    with s.connect():
        pass  # the database exists before the trial: the next open only ingests
    u = uuid.uuid4().hex
    s.record([events.trial_started(u, "heavy", 1, time.time(), 0, {})], sync=True)
    t = time.perf_counter()
    for i in range(points // 4):
        for k, name in enumerate(("loss", "acc", "val_loss", "lr")):
            s.record([events.metric(u, "heavy", 1, name, i, 1.0 / (i + 1 + k), time.time(),
                                    seq=4 * i + k, value_type="float", value_int=None,
                                    step="train", key="train-1")])
    log_s = time.perf_counter() - t
    s.record([events.trial_finished(u, "succeeded", time.time(), result="1.0")], sync=True)
    journal = store + ".journal"
    size = sum(os.path.getsize(os.path.join(journal, f)) for f in os.listdir(journal))
    print(json.dumps({"log_s": log_s, "journal_bytes": size}), flush=True)
    os._exit(0)
""")

READ = textwrap.dedent("""
    import json, os, sys, time
    import numpy, pandas, pyarrow, duckdb  # imported before the clock: not the ingest's time
    import tuixp
    from tuixp.store import Store
    store, expect = sys.argv[1], int(sys.argv[2])
    t = time.perf_counter()
    with Store(store).connect() as con:
        ingest_s = time.perf_counter() - t
        points = con.execute("SELECT count(*) FROM metric_record").fetchone()[0]
    t = time.perf_counter()
    with Store(store).connect() as con:
        pass
    open_s = time.perf_counter() - t  # an open with nothing to ingest: taken off ingest_s
    ex = tuixp.Experiment("heavy", store=store)
    loads = []
    for _ in range(3):
        t = time.perf_counter()
        df = ex.load_metric("loss", 1)
        loads.append(time.perf_counter() - t)
    assert df.shape == (expect, 1), df.shape
    assert float(df[1].iloc[-1]) == 1.0 / expect or df[1].iloc[-1] > 0
    print(json.dumps({"ingest_s": ingest_s, "open_s": open_s, "points": points,
                      "load_s": min(loads), "db_bytes": os.path.getsize(store),
                      "first": float(df[1].iloc[0]), "last": float(df[1].iloc[-1])}), flush=True)
""")


def child(script: str, *args: object, timeout: float = 3600, live: bool = False) -> dict:
    # Without live ingest (``$TUIXP_LIVE_INGEST=0``) the run leaves its points in the journal:
    # the next open ingests them all, which is what the ingest column measures.
    env = dict(os.environ, TUIXP_LIVE_INGEST=os.environ.get("TUIXP_LIVE_INGEST", "100000"))
    if not live:
        env["TUIXP_LIVE_INGEST"] = "0"
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"a workload failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    steps = 25_000 if args.quick else 250_000
    baseline_points = 20_000 if args.quick else 100_000
    points = steps * len(METRICS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tuixp-bench-metrics-") as tmp:
        results = {}
        for how in ("log_metrics", "save_metric"):
            store = Path(tmp) / f"{how}.duckdb"
            logged = child(LOG, steps, store, how)
            read = child(READ, store, steps)
            if read["points"] != points:
                raise SystemExit(f"{how}: {read['points']} points stored, {points} logged")
            results[how] = {**logged, **read}
        store = Path(tmp) / "default.duckdb"  # as a user runs it: ingested by the run itself
        default = {**child(LOG, steps, store, "log_metrics", live=True)}
        default.update(child(READ, store, steps))
        base_store = Path(tmp) / "baseline.duckdb"
        base = {**child(BASELINE_LOG, baseline_points, base_store)}
        base.update(child(READ, base_store, baseline_points // 4))
    for how, r in results.items():
        ingest = max(r["ingest_s"] - r["open_s"], 1e-9)
        rows.append(
            [
                f"tuixp `{how}` (batches)",
                f"{r['log_s'] / points * 1e6:.2f}",
                f"{points / ingest:,.0f}",
                common.fmt_ms(r["load_s"]) + " ms",
                f"{r['db_bytes'] / points:.1f}",
                f"{r['journal_bytes'] / points:.1f}",
            ]
        )
    rows.append(
        [
            "tuixp `log_metrics`, as run by default (the run ingests its points: live, then "
            "at its end)",
            f"{default['trial_s'] / points * 1e6:.2f} (the whole trial)",
            "in the run",
            common.fmt_ms(default["load_s"]) + " ms",
            f"{default['db_bytes'] / points:.1f}",
            "-",
        ]
    )
    ingest = max(base["ingest_s"] - base["open_s"], 1e-9)
    rows.append(
        [
            f"baseline: one journal event a point ({baseline_points:,} points)",
            f"{base['log_s'] / baseline_points * 1e6:.2f}",
            f"{baseline_points / ingest:,.0f}",
            common.fmt_ms(base["load_s"]) + f" ms ({baseline_points // 4:,} points)",
            f"{base['db_bytes'] / baseline_points:.1f}",
            f"{base['journal_bytes'] / baseline_points:.1f}",
        ]
    )
    load = os.getloadavg()[0]
    table = common.markdown_table(
        [
            "path",
            "log (us a point)",
            "ingest (points/s)",
            f"load_metric ({steps:,} points)",
            "bytes a point, database",
            "bytes a point, journal",
        ],
        rows,
    )
    best = results["log_metrics"]
    text = (
        f"## Metrics at volume ({'quick: ' if args.quick else ''}4 metrics x {steps:,} steps "
        "in one trial)\n\n"
        f"{common.machine_line()}\n\nLoad average at the end: {load:.1f} on {os.cpu_count()} "
        "cores (a shared machine: figures from a quiet one are lower). `bench/metrics_volume.py"
        f"{' --quick' if args.quick else ''}`; each workload in a fresh process, imports "
        "apart. Ingest is the first open of the store after the trial (run with "
        "`TUIXP_LIVE_INGEST=0`, so that it left every point to that open) less an open with "
        "nothing to ingest; load_metric the best of 3. Trial total with `log_metrics`: "
        f"{common.fmt_s(best['trial_s'])} s.\n\n{table}\n"
    )
    print(text)
    common.write_part(PART, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
