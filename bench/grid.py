"""Grids: many trials as one Dask computation.

1. 16 trials whose step sleeps 0.5 s, on 4 threads: wall time against the ideal 2.0 s (target
   <= 2.5 s), next to a bare ``dask.threaded.get`` of the same 16 sleeps on 4 threads (the
   baseline, measured in the same run). Also on a dask.distributed LocalCluster of 4
   single-thread workers (started before the clock starts).
2. 64 trivial trials: one ``compute_grid`` against 64 sequential ``compute()`` calls.

Each figure is the median of several repetitions, the variants interleaved so they see the
same machine noise.

    .venv/bin/python bench/grid.py            # 5 repetitions
    .venv/bin/python bench/grid.py --quick    # 3 repetitions
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package
import dask  # noqa: E402

import tuixp  # noqa: E402

SLEEP = 0.5
SLEEPERS = 16
THREADS = 4
TRIVIAL = 64
TARGET = 2.5


def sleeper(store: Path) -> Any:
    ex = tuixp.Experiment("grid_sleep", store=store)
    i = ex.parameter("i")

    @ex.result
    def nap(i):
        time.sleep(SLEEP)
        return i

    return nap(i)


def trivial(store: Path) -> tuple[tuixp.Experiment, Any]:
    ex = tuixp.Experiment("grid_trivial", store=store)
    a = ex.parameter("a")

    @ex
    def add(a):
        return a + 1

    @ex.result
    def score(x):
        return x * 2

    return ex, score(add(a))


def bare_sleeps() -> float:
    import dask.threaded

    dsk = {f"nap-{i}": (time.sleep, SLEEP) for i in range(SLEEPERS)}
    t = time.perf_counter()
    dask.threaded.get(dsk, list(dsk), num_workers=THREADS)
    return time.perf_counter() - t


def fsync_cost(folder: Path) -> float:
    """One small append and fsync in the store's folder: what the journal pays at each trial's
    start and end so that a trial that said it finished survives a crash."""
    import os

    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        t = time.perf_counter()
        os.write(fd, b'{"t":"probe"}\n')
        os.fsync(fd)
        return time.perf_counter() - t
    finally:
        os.close(fd)


def timed_grid(node: Any, scheduler: str, **grid: Any) -> float:
    t = time.perf_counter()
    outcomes = node.compute_grid(scheduler=scheduler, **grid)
    elapsed = time.perf_counter() - t
    bad = [o for o in outcomes if o.status != "succeeded"]
    if bad:
        raise SystemExit(f"grid trials failed: {bad[:3]}")
    return elapsed


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    reps = 3 if args.quick else 5
    logging.getLogger("tuixp").setLevel(logging.ERROR)  # no "source not available" notes
    folder = Path(tempfile.mkdtemp(prefix="tuixp-bench-grid-"))
    store = folder / "grid.duckdb"
    naps = sleeper(store)
    ex, node = trivial(store)
    node.compute(a=0)  # the first trial of a process pays imports and captures: not measured

    threads_grid, bare, cluster_grid = [], [], []
    with dask.config.set(num_workers=THREADS):
        for _ in range(reps):
            threads_grid.append(timed_grid(naps, "threads", i=range(SLEEPERS)))
            bare.append(bare_sleeps())
    from tuixp.execution.schedulers import close_clients, distributed_client

    client = distributed_client("distributed")  # a LocalCluster: started before the clock
    client.wait_for_workers(min(THREADS, len(client.scheduler_info()["workers"]) or THREADS))
    workers = len(client.scheduler_info()["workers"])
    try:
        timed_grid(naps, "distributed", i=range(2))  # ships the code to the workers once
        for _ in range(reps):
            cluster_grid.append(timed_grid(naps, "distributed", i=range(SLEEPERS)))
    finally:
        close_clients()

    grid64, seq64, fsyncs = [], [], []
    for _ in range(reps):
        fsyncs += [fsync_cost(folder) for _ in range(5)]
        grid64.append(timed_grid(node, "threads", a=range(TRIVIAL)))
        t = time.perf_counter()
        for a in range(TRIVIAL):
            node.compute(a=a)
        seq64.append(time.perf_counter() - t)

    med = statistics.median
    ideal = SLEEPERS * SLEEP / THREADS
    ideal_cluster = SLEEPERS * SLEEP / workers
    ok = med(threads_grid) <= TARGET
    rows = [
        (
            f"tuixp grid, threads ({THREADS})",
            common.fmt_s(med(threads_grid)),
            common.fmt_s(min(threads_grid)),
            common.fmt_s(ideal),
            common.fmt_ratio(med(threads_grid) / ideal),
        ),
        (
            f"bare dask.threaded.get ({THREADS} threads)",
            common.fmt_s(med(bare)),
            common.fmt_s(min(bare)),
            common.fmt_s(ideal),
            common.fmt_ratio(med(bare) / ideal),
        ),
        (
            f"tuixp grid, LocalCluster ({workers} workers x 1 thread)",
            common.fmt_s(med(cluster_grid)),
            common.fmt_s(min(cluster_grid)),
            common.fmt_s(ideal_cluster),
            common.fmt_ratio(med(cluster_grid) / ideal_cluster),
        ),
    ]
    table1 = common.markdown_table(
        ["16 trials sleeping 0.5 s", "median (s)", "best (s)", "ideal (s)", "median / ideal"],
        rows,
        right=(1, 2, 3, 4),
    )
    table2 = common.markdown_table(
        [f"{TRIVIAL} trivial trials", "median (s)", "per trial (ms)"],
        [
            ("one compute_grid", common.fmt_s(med(grid64)), common.fmt_ms(med(grid64) / TRIVIAL)),
            (
                f"{TRIVIAL} sequential compute()",
                common.fmt_s(med(seq64)),
                common.fmt_ms(med(seq64) / TRIVIAL),
            ),
        ],
        right=(1, 2),
    )
    verdict = "met" if ok else "**missed**"
    part = f"""## Grids (bench/grid.py)

Trials of one experiment run as one Dask computation, each trial recorded on its own. Medians
of {reps} repetitions, variants interleaved; the first trial of the process (imports,
environment capture) ran before the clock started. Target for the threaded grid: <= {TARGET} s
({verdict}: {common.fmt_s(med(threads_grid))} s).

{table1}

{table2}

- One grid of {TRIVIAL} trials against {TRIVIAL} `compute()` calls: sequential / grid =
  {common.fmt_ratio(med(seq64) / med(grid64))}. A grid shares the graph, the environment
  capture, the id reservation and the journal sync at the start; each trial still syncs the
  journal once when it ends (for crash safety), {common.fmt_ms(med(fsyncs))} ms an fsync on
  this disk (median of {len(fsyncs)} probes between the repetitions).
- tuixp's cost over bare Dask for the sleeping grid: {common.fmt_ms(med(threads_grid) - med(bare))}
  ms in all, {common.fmt_ms((med(threads_grid) - med(bare)) / SLEEPERS)} ms a trial.
- The LocalCluster row has one worker a core ({workers} here), so its ideal is
  {common.fmt_s(ideal_cluster)} s.

Measured {time.strftime("%Y-%m-%d")} on {common.machine_line()};
`.venv/bin/python bench/grid.py{" --quick" if args.quick else ""}`.
"""
    print(part)
    common.write_part("grid", part)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
