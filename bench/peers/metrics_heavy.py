"""The metric-heavy workload against trackio (local SQLite) and MLflow (``log_batch``, SQLite).

One run logs 4 metrics x STEPS steps, then reads one metric (``loss``) back; each tool runs in
a fresh process of its own, imports apart, from this interpreter (``pip install -e '.[bench]'``
installs both). The same answer is checked from each: every step of ``loss`` read back, with
the values logged. Writes docs/benchmarks/peers_metrics.md.

    .venv/bin/python bench/peers/metrics_heavy.py            # 4 x 250,000 points
    .venv/bin/python bench/peers/metrics_heavy.py --quick    # 4 x 10,000 points
"""

from __future__ import annotations

import json
import os
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


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    steps = 10_000 if args.quick else 250_000
    points = 4 * steps
    results: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for tool, script in WORKLOADS.items():
        with tempfile.TemporaryDirectory(prefix=f"tuixp-peers-{tool}-") as where:
            done = subprocess.run(
                [sys.executable, "-c", script, str(steps), where],
                capture_output=True,
                text=True,
                timeout=4 * 3600,
                cwd=where,
                env={**os.environ, "MLFLOW_TRACKING_URI": ""},
            )
        if done.returncode != 0:
            failed[tool] = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"
            continue
        results[tool] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    for tool, r in results.items():
        rows.append(
            [
                tool,
                f"{r['log_s'] / points * 1e6:.1f}",
                common.fmt_s(r["log_s"]),
                common.fmt_ms(r["read_s"]) + " ms",
                common.fmt_ms(r["again_s"]) + " ms",
                common.fmt_s(r["import_s"]),
            ]
        )
    t = results.get("tuixp")
    ratios = []
    if t:
        for tool in ("trackio", "mlflow"):
            if tool in results:
                ratios.append(
                    f"{tool}: tuixp logs {results[tool]['log_s'] / t['log_s']:.1f}x, reads back "
                    f"{results[tool]['read_s'] / t['read_s']:.1f}x the first time (its ingest "
                    f"included) and {results[tool]['again_s'] / t['again_s']:.1f}x after, faster"
                )
    table = common.markdown_table(
        [
            "tool",
            "log (us a point)",
            "log total (s)",
            f"first read of `loss` ({steps:,} points; tuixp: its ingest included)",
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
        "the same steps and values of `loss` read back from each.\n\n"
        f"{table}\n\n"
        + "".join(f"- {r}\n" for r in ratios)
        + "".join(f"- {tool} failed: {why}\n" for tool, why in failed.items())
    )
    print(text)
    common.write_part(PART, text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
