"""The first read of a short training run's metric, in the process that ran it: what a notebook
does after a quick experiment. Each run is a fresh Python process: it logs K steps x 2 metrics
with ``log_metrics`` in one trial, then reads ``loss`` back with ``ex.metric_points`` twice.

    .venv/bin/python bench/short_run_read.py            # K = 1,000 and 10,000, 7 processes each
    .venv/bin/python bench/short_run_read.py --quick    # the same, 3 processes each

The first read ingests the trial's journal (its points as one Arrow chunk, its other rows
through list parameters or Arrow) and imports what the read needs (NumPy, pyarrow). The second
read, in the same process with nothing left to ingest, is the baseline. Also reported: whether
the process imported pandas (it should not: no DataFrame was asked for).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package

CHILD = """
import json, sys, time
import tuixp
ex = tuixp.Experiment("short", store=sys.argv[1])
k = ex.parameter("k")

@ex.result
def train(k):
    for i in range(k):
        ex.log_metrics({"loss": 1.0 / (i + 1), "acc": i / k})
    return k

train(k).compute(k=int(sys.argv[2]))
t = time.perf_counter(); p = ex.metric_points("loss", 1); first = time.perf_counter() - t
t = time.perf_counter(); q = ex.metric_points("loss", 1); again = time.perf_counter() - t
assert len(p.value) == len(q.value) == int(sys.argv[2]), len(p.value)
print(json.dumps({"first": first, "again": again, "pandas": "pandas" in sys.modules}))
"""


def one(k: int, folder: Path, i: int) -> dict[str, object]:
    store = folder / f"s{k}_{i}.duckdb"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(store), str(k)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=common.ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    args = common.arguments(__doc__ or "").parse_args()
    runs = 3 if args.quick else 7
    sizes = (1_000, 10_000)
    results: dict[int, list[dict[str, object]]] = {k: [] for k in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            for k in sizes:  # the sizes take turns
                results[k].append(one(k, Path(tmp), i))
    rows = []
    for k in sizes:
        first = statistics.median(float(str(r["first"])) for r in results[k])
        again = statistics.median(float(str(r["again"])) for r in results[k])
        pandas = sum(bool(r["pandas"]) for r in results[k])
        rows.append(
            (
                f"{k:,} x 2",
                common.fmt_ms(first),
                common.fmt_ms(again),
                f"{pandas} of {runs}",
            )
        )
    md = (
        "## The first read of a short training run (bench/short_run_read.py)\n\n"
        f"A fresh process a run ({runs} a size, the sizes taking turns, medians): it logs K "
        "steps x 2 metrics, then reads `loss` with `ex.metric_points` twice. The first read "
        "ingests the trial and imports what it needs; the second, with nothing to ingest, is "
        "the baseline.\n\n"
        + common.markdown_table(
            ("steps x metrics", "first read (ms)", "read again (ms)", "imported pandas"),
            rows,
            right=(1, 2, 3),
        )
        + "\n\n"
        + f"`.venv/bin/python bench/short_run_read.py{' --quick' if args.quick else ''}`\n\n"
        + common.machine_line()
        + "\n"
    )
    common.publish("short_run_read", md, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
