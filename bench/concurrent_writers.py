"""Many processes recording into one store at once, against one process recording them all.

Four writer processes record 250 trials each of one experiment into one store, started together
(what parallel grids from several terminals or CI jobs do); the baseline, measured in the same
run and interleaved with it, is one process recording all 1,000 trials. Each writer is a fresh
interpreter (tests/reliability/procs.py, the same writer the reliability tests use), so its
start-up (imports, environment capture) is part of the figure; "1 process x 1 trial" measures
that floor. After every run the store is checked: exactly N trials, ids 1..N.

    .venv/bin/python bench/concurrent_writers.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

WRITER = common.ROOT / "tests" / "reliability" / "procs.py"


def record(store: Path, writers: int, per_writer: int) -> float:
    """Wall time of ``writers`` processes started together, each recording ``per_writer``."""
    env = dict(os.environ, PYTHONPATH=str(common.ROOT))
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                "write",
                "--store",
                str(store),
                "--worker",
                str(w),
                "--trials",
                str(per_writer),
                "--scheduler",
                "sync",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        for w in range(writers)
    ]
    failures = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            failures.append(err.decode()[-500:])
    seconds = time.perf_counter() - start
    if failures:
        raise SystemExit(f"a writer failed: {failures[0]}")
    sys.path.insert(0, str(common.ROOT))
    from tuixp.store import Store

    with Store(store).connect() as con:
        ids = [r[0] for r in con.execute("SELECT trial_id FROM trials ORDER BY 1").fetchall()]
    if ids != list(range(1, writers * per_writer + 1)):
        raise SystemExit(f"expected ids 1..{writers * per_writer}, got {len(ids)} trials")
    return seconds


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    writers, per_writer, repeats = (4, 50, 1) if args.quick else (4, 250, 3)
    total = writers * per_writer
    variants = {
        f"{writers} processes x {per_writer} trials": (writers, per_writer),
        f"1 process x {total} trials": (1, total),
        "1 process x 1 trial (start-up floor)": (1, 1),
    }
    load_before = os.getloadavg()[0]
    samples: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for name, (w, n) in variants.items():
                store = Path(tmp) / f"{r}-{w}x{n}" / "store.duckdb"
                store.parent.mkdir()
                samples[name].append(record(store, w, n))
                print(f"{name}: {samples[name][-1]:.2f} s", flush=True)
    load_after = os.getloadavg()[0]
    median = {name: common.summary(s)["median"] for name, s in samples.items()}
    many, one = list(median.values())[:2]
    rows = [
        (
            name,
            common.fmt_s(m),
            f"{variants[name][0] * variants[name][1] / m:,.1f}",
            common.fmt_s(min(samples[name])),
            common.fmt_s(max(samples[name])),
        )
        for name, m in median.items()
    ]
    md = "\n\n".join(
        [
            "## Concurrent writers (issue 8)",
            f"{total:,} trials of one experiment into one store: {writers} writer processes started "
            f"together against one process doing them all, {repeats} interleaved repeat(s), median "
            "wall time. Every run ended with exactly the trials sent, ids 1..N.",
            common.markdown_table(
                ["Run", "Wall (s)", "Trials/s", "Min (s)", "Max (s)"], rows, right=(1, 2, 3, 4)
            ),
            f"{writers} processes took {common.fmt_ratio(many / one)} the wall time of one "
            f"process. Machine: {common.machine_line()}; load average {load_before:.1f} before, "
            f"{load_after:.1f} after (other work on the machine inflates both columns alike).",
            "`.venv/bin/python bench/concurrent_writers.py" + (" --quick`" if args.quick else "`"),
        ]
    )
    print(md)
    common.write_part("concurrent_writers", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
