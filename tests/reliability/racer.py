"""A process that races others on fresh stores, round after round, on a barrier.

Run as a script (``python racer.py SOCKET WORKER``): it imports tuixp once, connects to the
test's Unix socket and then obeys one line a round, so a test pays the interpreter start once
and still gets many rounds of several real processes hitting a new store at the same instant
(every worker is blocked in ``recv`` until the test sends the round's line to all of them).

Lines it obeys (each answered with one JSON line):
- ``write STORE N``: record N trials in STORE, then end as a process does (the at-exit ingest,
  journal closed); answer the trials it saw finish (uuid, trial id) and the error if any;
- ``open STORE``: open STORE as ``tuixp sql`` and the TUI do (``Store.connect()``: create or
  migrate, ingest every journal, close);
- ``seed STORE N``: record N trials and close the journal without ingesting: what a writer
  killed after its trials finished leaves behind (a complete journal nobody holds);
- ``quit``.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.reliability.procs import build, expected_params  # noqa: E402


def record(store: str, worker: int, n: int, start: int) -> list[dict[str, Any]]:
    ex, node = build(store)
    seen: list[dict[str, Any]] = []
    for i in range(start, start + n):
        got: list[Any] = []

        def started(ev: Any, got: list[Any] = got) -> None:
            if ev.kind == "trial_started":
                got.append(ev.trial_id)

        node.compute(scheduler="sync", listeners=[started], **expected_params(worker, i))
        seen.append({"trial_id": got[0], "worker": worker, "i": i})
    return seen


def end_like_a_process(store: str) -> None:
    """What the interpreter's exit does for this store, without ending the interpreter."""
    from tuixp.store.store import get_store

    s = get_store(store)
    s._at_exit()
    atexit.unregister(s._at_exit)


def leave_dead_journal(store: str) -> None:
    from tuixp.store.store import get_store

    s = get_store(store)
    with s._timer_lock:
        s._ingest_due = None
    s._closing = True  # no ingest from this process, now or at exit
    atexit.unregister(s._at_exit)
    s.journal.close()


def obey(line: str, worker: int) -> dict[str, Any]:
    from tuixp.store import Store

    cmd, *args = line.split()
    try:
        if cmd == "write":
            seen = record(args[0], worker, int(args[1]), 0)
            end_like_a_process(args[0])
            return {"finished": seen}
        if cmd == "seed":
            seen = record(args[0], worker, int(args[1]), 1000)
            leave_dead_journal(args[0])
            return {"finished": seen}
        if cmd == "open":
            with Store(args[0]).connect():
                pass
            return {"opened": True}
    except Exception as exc:  # noqa: BLE001 - the test reports what the user would have seen
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"error": f"unknown command {line!r}"}


def main() -> int:
    path, worker = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(120)  # the test sends a line a round; silence this long means it is gone
    sock.connect(path)
    f = sock.makefile("rw", encoding="utf-8")
    f.write(f"ready {worker}\n")
    f.flush()
    for line in f:
        line = line.strip()
        if line == "quit" or not line:
            break
        f.write(json.dumps(obey(line, worker)) + "\n")
        f.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
