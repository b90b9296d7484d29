"""Metric points saved by a step that runs away from its trial's owner: in a process pool's
child and on a dask.distributed cluster (a LocalCluster of one worker process on 127.0.0.1),
against the same step on the threads scheduler (the owner's process: the baseline, measured in
the same run).

    .venv/bin/python bench/remote_metrics.py            # 100,000 steps x 2 metrics, 3 runs
    .venv/bin/python bench/remote_metrics.py --quick    # 20,000 steps x 2 metrics, 2 runs

The step logs ``{"loss": ..., "acc": ...}`` each step with ``log_metrics``. Timed: the step's
own loop (inside the step, so what a point costs where the step runs) and the whole
``compute()`` (the points reaching the owner and its journal; the cluster is started before,
the process pool is not). Every run's points are read back and checked. The schedulers take
turns; each figure is the median of the runs.
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


def build(store: Path) -> Any:
    import tuixp

    ex = tuixp.Experiment("remote_metrics", store=store)
    k = ex.parameter("k")

    @ex.result
    def train(k):
        t = time.perf_counter()
        for i in range(k):
            ex.log_metrics({"loss": 1.0 / (i + 1), "acc": i / k}, epoch=i)
        return time.perf_counter() - t

    return ex, train(k)


def one_run(ex: Any, node: Any, k: int, scheduler: str) -> tuple[float, float]:
    t = time.perf_counter()
    loop = node.compute(k=k, scheduler=scheduler)
    total = time.perf_counter() - t
    loss = ex.metric_points("loss")
    if len(loss.epoch) != k or loss.value[-1] != 1.0 / k or loss.epoch[-1] != k - 1:
        raise SystemExit(f"{scheduler}: {len(loss.epoch)} points of loss stored, not {k}")
    return loop, total


def main() -> int:
    args = common.arguments(__doc__ or "").parse_args()
    k, runs = (20_000, 2) if args.quick else (100_000, 3)
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    schedulers = {
        "threads (baseline)": "threads",
        "processes": "processes",
        "cluster (1 worker)": cluster.scheduler_address,
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in schedulers}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ex, node = build(Path(tmp) / "r.duckdb")
            node.compute(k=10, scheduler=cluster.scheduler_address)  # warm: imports, client
            for _ in range(runs):
                for name, scheduler in schedulers.items():
                    times[name].append(one_run(ex, node, k, scheduler))
    finally:
        from tuixp.execution.schedulers import close_clients

        close_clients()
        cluster.close()
    med = statistics.median
    base = med(t for t, _ in times["threads (baseline)"])
    rows = []
    for name, samples in times.items():
        loop, total = med(t for t, _ in samples), med(t for _, t in samples)
        rows.append(
            (
                name,
                f"{loop / (2 * k) * 1e6:.2f}",
                common.fmt_ratio(loop / base),
                common.fmt_s(total),
            )
        )
    md = (
        "## Metrics of a step away from the owner (bench/remote_metrics.py)\n\n"
        f"A step logging {k:,} steps x 2 metrics with `log_metrics`, median of {runs} runs, "
        "the schedulers taking turns; every run's points read back and checked.\n\n"
        + common.markdown_table(
            ("scheduler", "a point in the step (us)", "vs threads", "compute() (s)"),
            rows,
            right=(1, 2, 3),
        )
        + "\n\n"
        + f"`.venv/bin/python bench/remote_metrics.py{' --quick' if args.quick else ''}`\n\n"
        + common.machine_line()
        + "\n"
    )
    common.publish("remote_metrics", md, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
