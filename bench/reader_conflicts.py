"""How often a plain DuckDB client fails to open a store while tuixp works on it (issue 14 item 10).

A "plain reader" is another program that does what docs/schema.md allows: ``duckdb.connect(store,
read_only=True)``, one query, close, every 50-150 ms (jittered), never retrying. DuckDB refuses it
("Conflicting lock is held") whenever some process holds the file read-write. Two phases of the
same length, interleaved: a writer recording trials in bursts (what a run looks like) with no
TUI (the baseline), then the same writer with the real TUI open (headless, refreshing every
0.5 s). The figure is the share of the plain reader's attempts that failed, in each phase.

    .venv/bin/python bench/reader_conflicts.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

PROCS = common.ROOT / "tests" / "reliability" / "procs.py"

PLAIN_READER = r"""
import json, os, random, sys, time
import duckdb
store, stop = sys.argv[1], sys.argv[2]
tries = conflicts = other = 0
while not os.path.exists(stop):
    tries += 1
    try:
        con = duckdb.connect(store, read_only=True)
        con.execute("SELECT count(*) FROM trials").fetchone()
        con.close()
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            conflicts += 1
        else:
            other += 1
    time.sleep(random.uniform(0.05, 0.15))
print(json.dumps({"tries": tries, "conflicts": conflicts, "other": other}))
"""


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(common.ROOT), TUIXP_LOCK_TIMEOUT="30")


def phase(store: Path, seconds: float, with_tui: bool, start: int) -> dict[str, float]:
    stop = store.with_name(f"stop-{start}")
    tui = None
    if with_tui:
        tui = subprocess.Popen(
            [sys.executable, str(PROCS), "tui", "--store", str(store), "--stop", str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        time.sleep(3.0)  # the TUI's start-up, so the measured span is the TUI polling
    reader = subprocess.Popen(
        [sys.executable, "-c", PLAIN_READER, str(store), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    # Bursts of 5 trials, 0.7 s apart: the writer ingests after each burst, as runs do.
    trials = 10_000
    writer = subprocess.Popen(
        [
            sys.executable,
            str(PROCS),
            "write",
            "--store",
            str(store),
            "--worker",
            str(start),
            "--start",
            str(start),
            "--trials",
            str(trials),
            "--pause-every",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    time.sleep(seconds)
    writer.kill()  # a kill mid-run is fine: the journal keeps what finished
    written = writer.communicate(timeout=60)[0].count("\n")
    stop.touch()
    out, err = reader.communicate(timeout=60)
    if reader.returncode != 0:
        raise SystemExit(f"plain reader failed: {err[-2000:]}")
    got = json.loads(out.strip().splitlines()[-1])
    if tui is not None:
        tui_out, tui_err = tui.communicate(timeout=60)
        if tui.returncode != 0:
            raise SystemExit(f"TUI failed: {tui_err[-2000:]}")
    stop.unlink()
    return {**got, "trials": written}


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    seconds = 10.0 if args.quick else 30.0
    repeats = 1 if args.quick else 2
    info = common.machine_info()
    load_before = os.getloadavg()[0]
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store.duckdb"
        seed = subprocess.run(
            [sys.executable, str(PROCS), "write", "--store", str(store), "--trials", "20"],
            capture_output=True,
            text=True,
            env=env(),
        )
        if seed.returncode != 0:
            raise SystemExit(seed.stderr[-2000:])
        start = 100_000
        for _ in range(repeats):
            for with_tui in (False, True):
                results[with_tui].append(phase(store, seconds, with_tui, start))
                start += 100_000
    load_after = os.getloadavg()[0]
    rows = []
    for with_tui, label in ((False, "writer only (baseline)"), (True, "writer + TUI polling")):
        tries = sum(r["tries"] for r in results[with_tui])
        conflicts = sum(r["conflicts"] for r in results[with_tui])
        other = sum(r["other"] for r in results[with_tui])
        trials = sum(r["trials"] for r in results[with_tui])
        rate = conflicts / tries if tries else float("nan")
        rows.append([label, str(tries), str(conflicts), f"{rate:.1%}", str(other), str(trials)])
        print(f"{label}: {conflicts}/{tries} plain read-only opens refused ({rate:.1%})")
    table = common.markdown_table(
        ["Phase", "Opens tried", "Refused (lock)", "Refused share", "Other errors", "Trials"],
        rows,
        right=(1, 2, 3, 4, 5),
    )
    md = (
        "## A plain DuckDB reader beside tuixp (issue 14 item 10)\n\n"
        f"A separate process opens the store with `duckdb.connect(store, read_only=True)` every "
        f"50-150 ms, one query, no retry, for {seconds:.0f} s a phase ({repeats} interleaved "
        "repeat(s)), while a writer records trials in bursts of 5. Baseline: the writer alone; "
        "then the same with the TUI open (headless, refreshing every 0.5 s).\n\n"
        f"{table}\n\n"
        f"Machine: {common.machine_line(info)}; load average {load_before:.1f} before, "
        f"{load_after:.1f} after (a loaded machine stretches every hold, in both phases).\n\n"
        "`.venv/bin/python bench/reader_conflicts.py`\n"
    )
    common.write_part("reader_conflicts", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
