"""Processes the reliability tests start: a writer that records trials, a reader that polls.

Run as a script (``python procs.py write ...``): every test process is a real interpreter with
its own journal, locks and DuckDB connections. A writer can be told to SIGKILL itself at an
exact point of the write path (``--die``), which a test cannot hit reliably from outside.

Every parameter of a trial is derived from ``(worker, i)``, so a test can check each recorded
trial against what its writer must have sent, without keeping a copy.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

EXPERIMENT = "rel"


def expected_params(worker: int, i: int) -> dict[str, Any]:
    return {"worker": worker, "i": i, "label": f"w{worker}-ü-{i}", "x": worker * 1000 + i + 0.5}


def expected_metrics(worker: int, i: int) -> dict[int, float]:
    x = expected_params(worker, i)["x"]
    return {1: x * 2, 2: x * 3}


def expected_result(worker: int, i: int) -> float:
    return i + expected_params(worker, i)["x"]


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install_death(point: str, n: int) -> None:
    """SIGKILL this process at the ``n``-th occurrence of ``point`` (1-based)."""
    from tuixp.store import ids, ingest, journal

    seen = [0]

    def hit() -> bool:
        seen[0] += 1
        return seen[0] == n

    if point.startswith("journal-"):
        original = journal.JournalWriter.write

        def write(
            self: Any, events: list[dict[str, Any]], sync: bool = False, columns: Any = None
        ) -> None:
            if not hit():
                return original(self, events, sync, columns)
            if point == "journal-before":
                die()
            if point == "journal-partial":
                data = b"".join(journal.encode(e) for e in events)
                original(self, [], False)  # opens the file if this is the first write
                fd = self._fd if self._fd is not None else self._open()
                os.write(fd, data[: max(1, len(data) // 2)])
                die()
            original(self, events, sync, columns)
            die()  # journal-after: written, maybe not yet fsynced

        journal.JournalWriter.write = write  # type: ignore[method-assign]
    elif point == "ingest":
        original_insert = ingest.insert_rows

        def insert_rows(
            con: Any, table: str, rows: list[dict[str, Any]], *a: Any, **kw: Any
        ) -> None:
            original_insert(con, table, rows, *a, **kw)
            # Trials are in, their parameters not yet: the transaction is half done.
            if table == "trial_record" and rows and hit():
                die()

        ingest.insert_rows = insert_rows
    elif point == "committed":
        original_aside = ingest.set_aside_rejected

        def set_aside(path: Any, rejected: Any) -> Any:
            # The ingest transaction is committed (in DuckDB's WAL, not checkpointed), the dead
            # writers' journals not yet deleted: the next open must not ingest anything twice.
            if hit():
                die()
            return original_aside(path, rejected)

        ingest.set_aside_rejected = set_aside
    elif point == "ids":
        original_ids = ids.TrialCounter._write

        def ids_write(fd: int, counts: dict[str, int]) -> None:
            if hit():
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(counts).encode()[:5])
                die()
            original_ids(fd, counts)

        ids.TrialCounter._write = staticmethod(ids_write)  # type: ignore[method-assign]
    elif point == "ids-stop":
        original_ids_write = ids.TrialCounter._write

        def ids_stop(fd: int, counts: dict[str, int]) -> None:
            if hit():  # holding the ids lock: stopped as by Ctrl-Z, until SIGCONT
                os.kill(os.getpid(), signal.SIGSTOP)
            original_ids_write(fd, counts)

        ids.TrialCounter._write = staticmethod(ids_stop)  # type: ignore[method-assign]
    elif point == "enospc":
        original_write = journal.JournalWriter.write

        def failing_write(
            self: Any, events: list[dict[str, Any]], sync: bool = False, columns: Any = None
        ) -> None:
            if hit():  # a disk that is full for this one write, then has room again
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return original_write(self, events, sync, columns)

        journal.JournalWriter.write = failing_write  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown death point {point}")


def build(store: str) -> tuple[Any, Any]:
    import tuixp

    ex = tuixp.Experiment(EXPERIMENT, store=store)
    worker = ex.parameter("worker")
    i = ex.parameter("i")
    label = ex.parameter("label")
    x = ex.parameter("x")
    stall: dict[str, Any] = {"at": None, "signal": None, "sleep": 0.0}

    @ex
    def prepare(worker, i, x):
        if i == stall["at"]:
            # Tell the test we are inside a trial, then wait to be killed.
            with open(stall["signal"], "w") as f:
                f.write(str(os.getpid()))
            time.sleep(60)
        if stall["sleep"]:
            time.sleep(stall["sleep"])  # a trial that takes time: a random kill lands inside it
        return {"worker": worker, "i": i, "x": x}

    @ex.result
    def score(d, label):
        ex.save_metric("loss", epoch=1, value=d["x"] * 2)
        ex.save_metric("loss", epoch=2, value=d["x"] * 3)
        return d["i"] + d["x"]

    ex._stall = stall  # type: ignore[attr-defined]
    return ex, score(prepare(worker, i, x), label)


def write(args: argparse.Namespace) -> int:
    if args.die:
        point, _, n = args.die.partition(":")
        install_death(point, int(n or 1))
    ex, node = build(args.store)
    ex._stall.update(at=args.stall_at, signal=args.signal, sleep=args.step_sleep)
    if args.grid:
        return write_grids(args)
    for i in range(args.start, args.start + args.trials):
        if args.pause_every and i > args.start and (i - args.start) % args.pause_every == 0:
            time.sleep(args.pause)  # let the burst end so this process ingests, as users do
        params = expected_params(args.worker, i)
        got: list[int] = []

        def started(ev: Any, got: list[int] = got) -> None:
            if ev.kind == "trial_started":
                got.append(ev.trial_id)

        node.compute(scheduler=args.scheduler, listeners=[started], **params)
        # Printed only once compute() returned: the trial is one the user saw finish.
        print(json.dumps({"trial_id": got[0], "worker": args.worker, "i": i}), flush=True)
        if args.die_after is not None and i - args.start + 1 == args.die_after:
            die()
    return 0


def write_grids(args: argparse.Namespace) -> int:
    """Grids of ``--grid`` trials of experiment ``grid`` (result i * i); a grid the store
    refuses is reported and the next one runs."""
    import tuixp
    from tuixp.errors import StoreError
    from tuixp.store import Store

    ex = tuixp.Experiment("grid", store=args.store)
    i = ex.parameter("i")

    @ex.result
    def square(i):
        return i * i

    node = square(i)
    for start in range(args.start, args.start + args.trials, args.grid):
        points = list(range(start, min(start + args.grid, args.start + args.trials)))
        try:
            outcomes = node.compute_grid(scheduler=args.scheduler, i=points)
        except StoreError as exc:
            print(json.dumps({"refused": str(exc)}), flush=True)
            continue
        for o in outcomes:
            print(json.dumps({"trial_id": o.trial_id, "i": o.params["i"]}), flush=True)
    # While this process still lives: nothing of it may show as running.
    with Store(args.store).connect() as con:
        running = con.execute("SELECT count(*) FROM trials WHERE status = 'running'").fetchone()
    print(
        json.dumps({"running_in_store": running[0], "running_in_process": ex.store.trials_running}),
        flush=True,
    )
    return 0


def fill(args: argparse.Namespace) -> int:
    """Record trials with a large parameter until the disk is full; say how it ended."""
    import tuixp

    ex = tuixp.Experiment("fill", store=args.store)
    i = ex.parameter("i")
    blob = ex.parameter("blob")

    @ex.result
    def size(i, blob):
        ex.save_metric("size", epoch=i, value=len(blob))
        return len(blob)

    node = size(i, blob)
    for n in range(args.trials):
        got: list[int] = []

        def started(ev: Any, got: list[int] = got) -> None:
            if ev.kind == "trial_started":
                got.append(ev.trial_id)

        try:
            node.compute(scheduler="sync", listeners=[started], i=n, blob="x" * args.size)
        except Exception as exc:  # noqa: BLE001 - the test reads what the user would see
            print(f"FAILED {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return 3
        print(json.dumps({"trial_id": got[0], "i": n}), flush=True)
    return 0


def tui(args: argparse.Namespace) -> int:
    """The real TUI, headless, refreshing by itself until ``--stop`` appears; then what it saw."""
    import asyncio

    from tuixp.tui.app import create_app

    app = create_app(args.store, poll_interval=args.every)
    seen: list[int] = []
    problems: list[str] = []

    async def watch() -> None:
        async with app.run_test(headless=True, size=(100, 30)):
            while True:
                stop = os.path.exists(args.stop)
                await asyncio.sleep(0.25)
                seen.append(sum(int(e["trials"]) for e in app.experiments))
                with contextlib.suppress(LookupError):
                    problem = app.browse.status.problem
                    if problem and (not problems or problems[-1] != problem):
                        problems.append(str(problem))
                if stop and seen[-1] >= args.expect:
                    break

    asyncio.run(watch())
    print(
        json.dumps(
            {
                "last": seen[-1] if seen else 0,
                "samples": len(seen),
                "never_shrank": seen == sorted(seen),
                "problems": problems,
            }
        )
    )
    return 0


def read(args: argparse.Namespace) -> int:
    """Poll the store the way the TUI's refresh does: open, ingest, query, close."""
    from tuixp.errors import StoreBusy
    from tuixp.store import Store

    polls = gave_up = 0
    longest = 0.0
    while not os.path.exists(args.stop):
        t = time.monotonic()
        try:
            with Store(args.store).connect() as con:
                con.execute("SELECT count(*), max(trial_id) FROM trials").fetchone()
                con.execute("SELECT count(*) FROM metrics").fetchone()
            polls += 1
        except StoreBusy as exc:
            gave_up += 1
            print(f"reader gave up: {exc}", file=sys.stderr, flush=True)
        longest = max(longest, time.monotonic() - t)
        time.sleep(args.every)
    print(json.dumps({"polls": polls, "gave_up": gave_up, "longest_s": round(longest, 3)}))
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--store", required=True)
    w.add_argument("--worker", type=int, default=0)
    w.add_argument("--start", type=int, default=0)
    w.add_argument("--trials", type=int, default=1)
    w.add_argument("--scheduler", default="sync")
    w.add_argument("--pause-every", type=int, default=0)
    w.add_argument("--pause", type=float, default=0.7)
    w.add_argument("--die", default=None, help="POINT:N, e.g. journal-partial:3")
    w.add_argument("--die-after", type=int, default=None, help="SIGKILL after N trials")
    w.add_argument("--stall-at", type=int, default=None, help="sleep inside trial i")
    w.add_argument("--signal", default=None, help="file written when the stall begins")
    w.add_argument("--step-sleep", type=float, default=0.0, help="seconds inside each trial")
    w.add_argument("--grid", type=int, default=0, help="run trials in grids of this many")
    f = sub.add_parser("fill")
    f.add_argument("--store", required=True)
    f.add_argument("--size", type=int, default=100_000)
    f.add_argument("--trials", type=int, default=1000)
    t = sub.add_parser("tui")
    t.add_argument("--store", required=True)
    t.add_argument("--stop", required=True)
    t.add_argument("--every", type=float, default=0.5)
    t.add_argument("--expect", type=int, default=0, help="after --stop, wait to see this many")
    r = sub.add_parser("read")
    r.add_argument("--store", required=True)
    r.add_argument("--stop", required=True)
    r.add_argument("--every", type=float, default=0.5)
    args = p.parse_args()
    return {"write": write, "fill": fill, "read": read, "tui": tui}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
