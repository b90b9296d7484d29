"""What system metrics cost: a trial with sampling on against off, and one reading of the
process tree, idle and while a step holds the GIL, against psutil's listing of children.

    .venv/bin/python bench/system_metrics.py            # 400 trials, 200 readings
    .venv/bin/python bench/system_metrics.py --quick    # 100 trials, 50 readings

Trials alternate on and off in the same loop (the same machine noise for both). "On" is the
default 5 s interval: the trials are shorter than that, so what is measured is the watch and
unwatch each trial pays, not a sample.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package


def trial_costs(n: int, folder: Path) -> tuple[list[float], list[float]]:
    import tuixp

    ex = tuixp.Experiment("sysbench", store=folder / "s.duckdb")
    a = ex.parameter("a")

    @ex.result
    def score(a):
        return a * 2

    node = score(a)
    on, off = [], []
    node.compute(a=0)  # warm: imports, the store, the sampling thread
    for i in range(n):
        for setting, out in ((5.0, on), (False, off)):
            ex.system_metrics = setting
            t = time.perf_counter()
            node.compute(a=i)
            out.append(time.perf_counter() - t)
    return on, off


def reading_costs(n: int, busy: bool) -> tuple[list[float], list[float]]:
    import psutil

    from tuixp.capture.system import GpuReader, ProcessTree, readings

    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():  # pure Python: holds the GIL between switches
            x += 1

    thread = threading.Thread(target=spin, daemon=True)
    if busy:
        thread.start()
    tree, gpus = ProcessTree(), GpuReader()
    ours, theirs = [], []
    try:
        for _ in range(n):
            t = time.perf_counter()
            readings(tree, gpus)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            root = psutil.Process()
            for p in [root, *root.children(recursive=True)]:
                with p.oneshot():
                    p.cpu_times()
                    p.memory_info()
            theirs.append(time.perf_counter() - t)
    finally:
        stop.set()
    return ours, theirs


def main() -> int:
    args = common.arguments(__doc__ or "").parse_args()
    trials, reads = (100, 50) if args.quick else (400, 200)
    with tempfile.TemporaryDirectory() as tmp:
        on, off = trial_costs(trials, Path(tmp))
    idle = reading_costs(reads, busy=False)
    busy = reading_costs(reads, busy=True)
    med = statistics.median
    rows = [
        ("a trial, sampling on (5 s)", common.fmt_ms(med(on)), f"{trials}"),
        ("a trial, sampling off (baseline)", common.fmt_ms(med(off)), f"{trials}"),
        ("on - off", common.fmt_ms(med(on) - med(off)), ""),
        ("one reading (/proc), idle", common.fmt_ms(med(idle[0])), f"{reads}"),
        ("psutil with children, idle (baseline)", common.fmt_ms(med(idle[1])), f"{reads}"),
        ("one reading (/proc), a step holding the GIL", common.fmt_ms(med(busy[0])), f"{reads}"),
        ("psutil with children, a step holding the GIL", common.fmt_ms(med(busy[1])), f"{reads}"),
    ]
    md = (
        "## System metrics (bench/system_metrics.py)\n\n"
        + common.markdown_table(("what", "median (ms)", "runs"), rows, right=(1, 2))
        + "\n\nThe sampling thread reads the owner's process tree from /proc: psutil's listing of "
        "children scans every process on the machine, each file read waiting for the GIL while "
        "a step holds it. No GPU here: the GPU reading (nvidia-smi, NVML) is not in these "
        "figures.\n\n" + common.machine_line() + "\n"
    )
    common.publish("system_metrics", md, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
