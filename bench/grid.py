"""Grids: many trials as one Dask computation.

1. 16 trials whose step sleeps 0.5 s, on 4 threads: wall time against the ideal 2.0 s (target
   <= 2.5 s), next to a bare ``dask.threaded.get`` of the same 16 sleeps on 4 threads (the
   baseline, measured in the same run). Also on a dask.distributed LocalCluster of 4
   single-thread workers (started before the clock starts).
2. 64 trivial trials: one ``compute_grid`` against 64 sequential ``compute()`` calls.
3. What reproducible seeding costs: 16 trials whose step draws from numpy's global generator
   and then waits 0.25 s (work that releases the GIL), on 4 threads (steps that draw run one at
   a time) against 4 processes, against the same step that draws nothing on threads (run in
   parallel) and a bare ``dask.threaded.get`` of the same function (unseeded: not
   reproducible), all in the same run. Then a scikit-learn grid (8 random forests,
   ``random_state=None``, on the bundled digits) on threads against processes against bare
   unseeded threads. The seeded results are checked equal across schedulers and to a point
   alone; the bench fails if they are not. And the seeding's own cost a step, in microseconds.

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


DRAW_SLEEP = 0.25
DRAWERS = 16
FORESTS = 8


def drawing(store: Path, draws: bool) -> Any:
    ex = tuixp.Experiment("grid_draw" if draws else "grid_quiet", store=store)
    i = ex.parameter("i")

    @ex.result
    def draw_then_wait(i):
        import numpy as np

        x = float(np.random.rand()) if draws else 0.0
        time.sleep(DRAW_SLEEP)  # work that releases the GIL (I/O, numeric code)
        return round(x + i, 12)

    return draw_then_wait(i)


def bare_draws() -> float:
    """The same 16 steps as a bare Dask grid on 4 threads: parallel, unseeded, not
    reproducible (what tuixp did before issue 15)."""
    import dask.threaded
    import numpy as np

    def draw_then_wait(i: int) -> float:
        x = float(np.random.rand())
        time.sleep(DRAW_SLEEP)
        return x + i

    dsk = {f"draw-{i}": (draw_then_wait, i) for i in range(DRAWERS)}
    t = time.perf_counter()
    dask.threaded.get(dsk, list(dsk), num_workers=THREADS)
    return time.perf_counter() - t


def forests(store: Path) -> Any:
    ex = tuixp.Experiment("grid_forest", store=store)
    n = ex.parameter("n")

    @ex
    def digits():
        from sklearn.datasets import load_digits

        return load_digits(return_X_y=True)

    @ex.result
    def fit(xy, n):
        from sklearn.ensemble import RandomForestClassifier

        X, y = xy
        model = RandomForestClassifier(n_estimators=20 + n, max_depth=8).fit(X[:1200], y[:1200])
        return round(float(model.score(X[1200:], y[1200:])), 6)

    return fit(digits(), n)


def bare_forests(workers: int) -> float:
    import dask.threaded
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_digits(return_X_y=True)

    def fit(n: int) -> float:
        model = RandomForestClassifier(n_estimators=20 + n, max_depth=8).fit(X[:1200], y[:1200])
        return float(model.score(X[1200:], y[1200:]))

    dsk = {f"fit-{n}": (fit, n) for n in range(FORESTS)}
    t = time.perf_counter()
    dask.threaded.get(dsk, list(dsk), num_workers=workers)
    return time.perf_counter() - t


def seeding_cost_us(rounds: int = 2000) -> tuple[float, float]:
    """The seeding of one step, alone in its process (µs): a step known to draw (seeded and
    checked) and one known to draw nothing (alone in the process it is seeded too)."""
    import numpy as np

    from tuixp.capture.seed import StepSeeding

    def draws() -> float:
        return float(np.random.rand())

    def quiet() -> float:
        return 0.0

    out = []
    for func in (draws, quiet):
        for _ in range(2):  # the first run learns
            seeding = StepSeeding(1, func.__name__, func)
            with seeding.held(), seeding:
                func()
        t = time.perf_counter()
        for k in range(rounds):
            seeding = StepSeeding(k, func.__name__, func)
            with seeding.held(), seeding:
                func()
        out.append((time.perf_counter() - t) / rounds * 1e6)
    return out[0], out[1]


def seeded(node: Any, scheduler: str, **grid: Any) -> tuple[float, list[Any]]:
    """A grid with seed 0: its wall time and its results."""
    t = time.perf_counter()
    outcomes = node.compute_grid(seed=0, scheduler=scheduler, **grid)
    elapsed = time.perf_counter() - t
    bad = [o for o in outcomes if o.status != "succeeded"]
    if bad:
        raise SystemExit(f"grid trials failed: {bad[:3]}")
    return elapsed, [o.result for o in outcomes]


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

    # 3. What reproducible seeding costs.
    import os

    cores = min(THREADS, os.cpu_count() or 1)
    draw_node, quiet_node = drawing(store, True), drawing(store, False)
    forest_node = forests(store)
    runs: dict[str, list[float]] = {
        k: [] for k in ("threads", "processes", "quiet", "bare", "f_threads", "f_procs", "f_bare")
    }
    seen: dict[str, list[list[Any]]] = {"draw": [], "forest": []}
    with dask.config.set(num_workers=THREADS):
        quiet_node.compute(i=-1, seed=0)  # its first run learns that it draws nothing
        for _ in range(reps):
            for name, node, sched in (
                ("threads", draw_node, "threads"),
                ("processes", draw_node, "processes"),
                ("quiet", quiet_node, "threads"),
            ):
                t, results = seeded(node, sched, i=range(DRAWERS))
                runs[name].append(t)
                if node is draw_node:
                    seen["draw"].append(results)
            runs["bare"].append(bare_draws())
        alone_draw = draw_node.compute(i=DRAWERS - 1, seed=0, scheduler="sync")
    with dask.config.set(num_workers=cores):
        forest_node.compute(n=0, seed=0, scheduler="sync")  # imports sklearn: not measured
        for _ in range(max(2, reps - 2)):
            for name, sched in (("f_threads", "threads"), ("f_procs", "processes")):
                t, results = seeded(forest_node, sched, n=range(FORESTS))
                runs[name].append(t)
                seen["forest"].append(results)
            runs["f_bare"].append(bare_forests(cores))
        alone_forest = forest_node.compute(n=FORESTS - 1, seed=0, scheduler="sync")
    draws_us, quiet_us = seeding_cost_us()
    reproducible = (
        all(r == seen["draw"][0] for r in seen["draw"])
        and seen["draw"][0][-1] == alone_draw
        and all(r == seen["forest"][0] for r in seen["forest"])
        and seen["forest"][0][-1] == alone_forest
    )

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
    ideal_draw = DRAWERS * DRAW_SLEEP / THREADS
    yes = "yes" if reproducible else "**no**"
    table3 = common.markdown_table(
        [
            f"{DRAWERS} trials: draw from numpy, then wait {DRAW_SLEEP} s",
            "median (s)",
            "best (s)",
            "median / bare",
            "reproducible",
        ],
        [
            (
                f"tuixp threads ({THREADS}), step draws: one at a time",
                common.fmt_s(med(runs["threads"])),
                common.fmt_s(min(runs["threads"])),
                common.fmt_ratio(med(runs["threads"]) / med(runs["bare"])),
                yes,
            ),
            (
                f"tuixp processes ({THREADS}), step draws",
                common.fmt_s(med(runs["processes"])),
                common.fmt_s(min(runs["processes"])),
                common.fmt_ratio(med(runs["processes"]) / med(runs["bare"])),
                yes,
            ),
            (
                f"tuixp threads ({THREADS}), step draws nothing: in parallel",
                common.fmt_s(med(runs["quiet"])),
                common.fmt_s(min(runs["quiet"])),
                common.fmt_ratio(med(runs["quiet"]) / med(runs["bare"])),
                f"{yes} (no draw)",
            ),
            (
                f"bare dask.threaded.get ({THREADS} threads), unseeded (baseline)",
                common.fmt_s(med(runs["bare"])),
                common.fmt_s(min(runs["bare"])),
                "1.0x",
                "no",
            ),
        ],
        right=(1, 2, 3),
    )
    table4 = common.markdown_table(
        [
            f"{FORESTS} random forests (digits, random_state=None)",
            "median (s)",
            "best (s)",
            "median / bare",
        ],
        [
            (
                f"tuixp threads ({cores}): fits one at a time",
                common.fmt_s(med(runs["f_threads"])),
                common.fmt_s(min(runs["f_threads"])),
                common.fmt_ratio(med(runs["f_threads"]) / med(runs["f_bare"])),
            ),
            (
                f"tuixp processes ({cores})",
                common.fmt_s(med(runs["f_procs"])),
                common.fmt_s(min(runs["f_procs"])),
                common.fmt_ratio(med(runs["f_procs"]) / med(runs["f_bare"])),
            ),
            (
                f"bare dask.threaded.get ({cores} threads), unseeded (baseline)",
                common.fmt_s(med(runs["f_bare"])),
                common.fmt_s(min(runs["f_bare"])),
                "1.0x",
            ),
        ],
        right=(1, 2, 3),
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

### What reproducible seeding costs

A step that draws from the global generators runs alone among the steps of its process, so
that its seed reproduces it (docs/python-api.md, "Seeds"); processes each have their own
generators. Seeded results {"were" if reproducible else "were **not**"} equal across runs,
schedulers and to the same point alone. Ideal for the drawing grid on {THREADS} workers:
{common.fmt_s(ideal_draw)} s; the processes rows include starting the pool (spawn) and each
child's imports, as every `tuixp run --scheduler processes` pays them.

{table3}

{table4}

- The seeding's own cost a step, alone in its process: {draws_us:.0f} µs for a step known to
  draw (seeded, its generators checked before and after), {quiet_us:.0f} µs for one known to draw nothing
  (alone, it is seeded as well), of the {common.fmt_ms(med(grid64) / TRIVIAL)} ms a trivial grid trial costs.
- The rows marked "draws nothing" pay one step's run alone first in the process (its first
  run, which learns it; here before the clock).

Measured {time.strftime("%Y-%m-%d")} on {common.machine_line()};
`.venv/bin/python bench/grid.py{" --quick" if args.quick else ""}`.
"""
    print(part)
    common.write_part("grid", part)
    if not reproducible:
        print("seeded results differed between runs or schedulers", file=sys.stderr)
    return 0 if ok and reproducible else 1


if __name__ == "__main__":
    sys.exit(main())
