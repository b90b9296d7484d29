"""The metric-heavy workload against trackio (local SQLite) and MLflow (``log_batch``, SQLite).

One run logs 4 metrics x STEPS steps, then reads one metric (``loss``) back; each tool runs in
a fresh process of its own, imports apart, from this interpreter (``pip install -e '.[bench]'``
installs both). The same answer is checked from each: every step of ``loss`` read back, with
the values logged. Writes docs/benchmarks/peers_metrics.md.

    .venv/bin/python bench/peers/metrics_heavy.py            # 4 x 250,000 points
    .venv/bin/python bench/peers/metrics_heavy.py --quick    # 4 x 10,000 points
    .venv/bin/python bench/peers/metrics_heavy.py --runs 5   # the median of 5 runs (default 3)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402 - bench/ is not a package

PART = "peers_metrics"

COMMON = """
import json, os, sys, time
steps, where = int(sys.argv[1]), sys.argv[2]
def values(i):
    return {"loss": 1.0 / (i + 1), "acc": i / steps, "val_loss": 2.0 / (i + 1), "lr": 0.001 * (i % 7)}
def check(epochs, loss):
    assert list(epochs) == list(range(steps)), "wrong steps read back"
    assert all(abs(v - 1.0 / (i + 1)) < 1e-12 for i, v in enumerate(loss)), "wrong values"
"""

WORKLOADS = {
    "tuixp": COMMON
    + textwrap.dedent("""
        t = time.perf_counter()
        import tuixp
        imp = time.perf_counter() - t
        ex = tuixp.Experiment("heavy", store=os.path.join(where, "t.duckdb"))
        @ex.result
        def train():
            for i in range(steps):
                ex.log_metrics(values(i), epoch=i)
            return 0
        t = time.perf_counter(); train().compute(); log_s = time.perf_counter() - t
        if sys.argv[3:] == ["arrays"]:  # NumPy arrays (ex.metric_points), no pandas
            t = time.perf_counter(); p = ex.metric_points("loss", 1); read_s = time.perf_counter() - t
            check(p.epoch.tolist(), p.value.tolist())
            t = time.perf_counter(); ex.metric_points("loss", 1); again_s = time.perf_counter() - t
        else:  # load_metric's DataFrame, as in daskperiment (the first imports pandas)
            t = time.perf_counter(); df = ex.load_metric("loss", 1); read_s = time.perf_counter() - t
            check(df.index, df[1])
            t = time.perf_counter(); df = ex.load_metric("loss", 1); again_s = time.perf_counter() - t
        print(json.dumps({"import_s": imp, "log_s": log_s, "read_s": read_s, "again_s": again_s}))
    """),
    "trackio": COMMON
    + textwrap.dedent("""
        os.environ["TRACKIO_DIR"] = where
        t = time.perf_counter()
        import trackio
        from trackio.sqlite_storage import SQLiteStorage
        imp = time.perf_counter() - t
        t = time.perf_counter()
        trackio.init(project="heavy", name="run1", embed=False, auto_log_cpu=False, auto_log_gpu=False)
        for i in range(steps):
            trackio.log(values(i), step=i)
        trackio.finish()  # waits until everything is in its SQLite file
        log_s = time.perf_counter() - t
        t = time.perf_counter()
        rows = SQLiteStorage.get_metric_values("heavy", "run1", "loss")
        read_s = time.perf_counter() - t
        rows = sorted(rows, key=lambda r: r["step"])
        check([r["step"] for r in rows], [r["value"] for r in rows])
        t = time.perf_counter()
        SQLiteStorage.get_metric_values("heavy", "run1", "loss")
        again_s = time.perf_counter() - t
        print(json.dumps({"import_s": imp, "log_s": log_s, "read_s": read_s, "again_s": again_s}))
    """),
    "mlflow": COMMON
    + textwrap.dedent("""
        t = time.perf_counter()
        import mlflow
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient
        imp = time.perf_counter() - t
        mlflow.set_tracking_uri("sqlite:///" + os.path.join(where, "mlflow.db"))
        client = MlflowClient()
        exp = client.create_experiment("heavy", artifact_location="file://" + os.path.join(where, "art"))
        t = time.perf_counter()
        run = client.create_run(exp)
        batch, now = [], int(time.time() * 1000)
        for i in range(steps):
            for k, v in values(i).items():
                batch.append(Metric(k, v, now, i))
            if len(batch) >= 1000:  # MLflow's limit of metrics a log_batch call
                client.log_batch(run.info.run_id, metrics=batch); batch = []
        if batch:
            client.log_batch(run.info.run_id, metrics=batch)
        client.set_terminated(run.info.run_id)
        log_s = time.perf_counter() - t
        t = time.perf_counter()
        hist = client.get_metric_history(run.info.run_id, "loss")
        read_s = time.perf_counter() - t
        hist = sorted(hist, key=lambda m: m.step)
        check([m.step for m in hist], [m.value for m in hist])
        t = time.perf_counter()
        client.get_metric_history(run.info.run_id, "loss")
        again_s = time.perf_counter() - t
        print(json.dumps({"import_s": imp, "log_s": log_s, "read_s": read_s, "again_s": again_s}))
    """),
}


# Each tool's runs: (label, workload, extra arguments). MLflow runs once: one run takes about
# two minutes, and it is 40x off either way.
RUNS = (
    ("tuixp", "tuixp", []),
    ("tuixp, read as arrays", "tuixp", ["arrays"]),
    ("trackio", "trackio", []),
    ("mlflow", "mlflow", []),
)
FIGURES = ("log_s", "read_s", "again_s", "import_s")


def main() -> int:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each tool but MLflow (median)")
    args = parser.parse_args()
    steps = 10_000 if args.quick else 250_000
    points = 4 * steps
    runs = max(1, args.runs)
    measured: dict[str, list[dict]] = {label: [] for label, _, _ in RUNS}
    failed: dict[str, str] = {}
    for attempt in range(runs):
        for label, tool, extra in RUNS:  # interleaved: a noisy minute falls on every tool
            if label in failed or (tool == "mlflow" and attempt):
                continue
            with tempfile.TemporaryDirectory(prefix=f"tuixp-peers-{tool}-") as where:
                done = subprocess.run(
                    [sys.executable, "-c", WORKLOADS[tool], str(steps), where, *extra],
                    capture_output=True,
                    text=True,
                    timeout=4 * 3600,
                    cwd=where,
                    env={**os.environ, "MLFLOW_TRACKING_URI": ""},
                )
            if done.returncode != 0:
                failed[label] = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"
                continue
            measured[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
    results = {
        label: {f: statistics.median(r[f] for r in rs) for f in FIGURES} | {"n": len(rs)}
        for label, rs in measured.items()
        if rs
    }
    spread = {
        label: (min(r["log_s"] for r in rs), max(r["log_s"] for r in rs))
        for label, rs in measured.items()
        if rs
    }
    rows = []
    for tool, r in results.items():
        low, high = spread[tool]
        rows.append(
            [
                tool,
                str(r["n"]),
                f"{r['log_s'] / points * 1e6:.1f}",
                common.fmt_s(r["log_s"])
                + (f" ({common.fmt_s(low)}-{common.fmt_s(high)})" if r["n"] > 1 else ""),
                common.fmt_ms(r["read_s"]) + " ms",
                common.fmt_ms(r["again_s"]) + " ms",
                common.fmt_s(r["import_s"]),
            ]
        )
    ratios = []
    # Both tuixp rows log the same way: their runs together give its logging figure.
    logged = [r["log_s"] for label in ("tuixp", "tuixp, read as arrays") for r in measured[label]]
    frame, arrays = results.get("tuixp"), results.get("tuixp, read as arrays")
    for tool in ("trackio", "mlflow"):
        peer = results.get(tool)
        if peer is None or not logged:
            continue
        parts = [
            f"{tool}: tuixp logs {peer['log_s'] / statistics.median(logged):.1f}x as fast "
            f"(the median of its {len(logged)} runs)"
        ]
        for label, r in (("load_metric", frame), ("metric_points", arrays)):
            if r is not None:
                parts.append(
                    f"reads back with {label} {peer['read_s'] / r['read_s']:.1f}x as fast the "
                    f"first time and {peer['again_s'] / r['again_s']:.1f}x after"
                )
        ratios.append(", ".join(parts))
    table = common.markdown_table(
        [
            "tool",
            "runs",
            "log (us a point)",
            "log total (s; median, range)",
            f"first read of `loss` ({steps:,} points)",
            "read again",
            "import (s)",
        ],
        rows,
    )
    text = (
        f"## Metric-heavy workload against trackio and MLflow ({'quick: ' if args.quick else ''}"
        f"4 metrics x {steps:,} steps)\n\n{common.machine_line()}\n\n"
        f"`bench/peers/metrics_heavy.py{' --quick' if args.quick else ''}`; load average at the "
        f"end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. trackio {common.package_versions(['trackio'])['trackio']} "
        f"(local SQLite, `trackio.log` a step, `finish()` waits for its writer), MLflow "
        f"{common.package_versions(['mlflow'])['mlflow']} (`log_batch` of 1,000 metrics, SQLite); "
        "the same steps and values of `loss` read back from each. Each figure is the median of "
        "the runs (MLflow: one), the tools taking turns. tuixp's log time includes the ingest "
        "of every point into DuckDB before `compute()` returns; its first read is "
        "`ex.load_metric` (a pandas DataFrame, as in daskperiment: that first read imports "
        "pandas) or `ex.metric_points` (NumPy arrays), each after a run of its own.\n\n"
        f"{table}\n\n"
        + "".join(f"- {r}\n" for r in ratios)
        + "".join(f"- {tool} failed: {why}\n" for tool, why in failed.items())
    )
    print(text)
    common.write_part(PART, text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
