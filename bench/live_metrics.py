"""What a live listener costs a training loop: microseconds a point logged, with and without one.

One trial whose step saves ``POINTS`` points (``ex.save_metric`` in a loop), each way in a fresh
process of its own, the same run:

- no listener (the baseline: ``tuixp run --progress none``, or ``compute()`` alone);
- a listener that only counts what it gets (the cost of the events themselves);
- ``tuixp run --progress jsonl``'s listener (``cli.run.JsonlProgress``) writing to /dev/null;
- ``tuixp run --progress text``'s listener off a terminal (``cli.run.TextProgress``);
- the first two again with one event a point, as before batches (``TrialRecorder.add_metric``
  as it was, patched in: ``PER_POINT`` below), the baseline of the batches.

For each: microseconds a point inside the step, the events the listener was called with, the
points those events carried, and whether the last point saved was the last one shown.

    .venv/bin/python bench/live_metrics.py            # 1,000,000 points
    .venv/bin/python bench/live_metrics.py --quick    # 100,000 points
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package

PART = "live_metrics"
WAYS = ("none", "count_per_point", "jsonl_per_point", "count", "jsonl", "text")
LABELS = {
    "none": "no listener (baseline)",
    "count_per_point": "one event a point (before): a listener that counts its events",
    "jsonl_per_point": "one event a point (before): `--progress jsonl`",
    "count": "batches: a listener that counts its events",
    "jsonl": "batches: `--progress jsonl` (JsonlProgress to /dev/null)",
    "text": "batches: `--progress text` off a terminal (TextProgress)",
}

# ``TrialRecorder.add_metric`` before batches: one ``metric`` progress event a point.
PER_POINT = textwrap.dedent("""
    from tuixp.execution import recorder as _r

    def _add_metric(self, step, name, epoch, value, value_type, value_int, recorded_at=None):
        self.metrics.add(
            name, epoch, value, _r._TYPE_CODES.get(value_type, _r._FLOAT), value_int, recorded_at
        )
        if self.finished:
            self.metrics.flush()
        if self.listeners:
            self.emit("metric", recorded_at, step=step,
                      data={"name": name, "epoch": epoch, "value": value})

    _r.TrialRecorder.add_metric = _add_metric
""")

CHILD = textwrap.dedent("""
    import json, os, sys, time
    import tuixp
    n, store, how = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if how.endswith("_per_point"):
        exec(sys.argv[4])  # PER_POINT
        how = how.removesuffix("_per_point")
    ex = tuixp.Experiment("live", store=store)
    seen = {"events": 0, "points": 0, "last": None}

    def points_of(ev):
        # one point an event (kind "metric", before), or a batch ("metrics": columns a metric)
        # (the system samples, sys/..., are left out: the step saves "loss" only)
        if ev.kind == "metric" and ev.data["name"] == "loss":
            return 1, (ev.data["epoch"], ev.data["value"])
        if ev.kind == "metrics" and "loss" in ev.data["points"]:
            cols = ev.data["points"]["loss"]
            return len(cols["epoch"]), (cols["epoch"][-1], cols["value"][-1])
        return 0, None

    def counting(inner=None):
        def listener(ev):
            got, last = points_of(ev)
            if got:
                seen["events"] += 1
                seen["points"] += got
                seen["last"] = last
            if inner is not None:
                inner(ev)
        return listener

    listeners = []
    if how == "count":
        listeners = [counting()]
    elif how == "jsonl":
        from tuixp.cli.run import JsonlProgress
        listeners = [counting(JsonlProgress(open(os.devnull, "w")))]
    elif how == "text":
        from tuixp.cli.run import TextProgress
        listeners = [counting(TextProgress(1, 1, every=5.0))]
    out = {}

    @ex.result
    def train():
        t = time.perf_counter()
        for i in range(n):
            ex.save_metric("loss", epoch=i, value=1.0 / (i + 1))
        out["log_s"] = time.perf_counter() - t
        return 1.0

    t = time.perf_counter()
    train().compute(listeners=listeners)
    out["trial_s"] = time.perf_counter() - t
    out.update(seen)
    print(json.dumps(out), flush=True)
    os._exit(0)
""")


def run_way(points: int, how: str, folder: Path) -> dict[str, object]:
    store = folder / f"{how}.duckdb"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(points), str(store), how, PER_POINT],
        capture_output=True,
        text=True,
        cwd=common.ROOT,
        check=False,
        env={**os.environ, "PYTHONPATH": str(common.ROOT)},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{how}: {proc.stderr.strip()[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    points = 100_000 if args.quick else 1_000_000
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="tuixp-bench-live-") as tmp:
        for how in WAYS:
            results[how] = run_way(points, how, Path(tmp))
    base = float(results["none"]["log_s"])  # type: ignore[arg-type]
    rows = []
    ok = True
    for how in WAYS:
        r = results[how]
        log_s = float(r["log_s"])  # type: ignore[arg-type]
        us = log_s / points * 1e6
        if how == "none":
            events, carried, last = "-", "-", "-"
        else:
            events = f"{int(r['events']):,}"  # type: ignore[call-overload]
            carried = f"{int(r['points']):,}"  # type: ignore[call-overload]
            shown = r["last"]
            last = "yes" if shown == [points - 1, 1.0 / points] else f"no: {shown}"
            ok = ok and int(r["points"]) == points and last == "yes"  # type: ignore[call-overload]
        rows.append(
            [
                LABELS[how],
                f"{us:.2f}",
                f"{log_s / base:.1f}x" if how != "none" else "1.0x",
                events,
                carried,
                last,
                common.fmt_s(float(r["trial_s"])),  # type: ignore[arg-type]
            ]
        )

    def us(how: str) -> str:
        return f"{float(results[how]['log_s']) / points * 1e6:.2f}"  # type: ignore[arg-type]

    part = f"""## Live listeners and metric points (bench/live_metrics.py, issue 20)

One trial whose step saves {points:,} points with `ex.save_metric` in a loop, each way in a
fresh process, in the same run: microseconds a point inside the step, against the same loop
with no listener; the events the listener was called with, the points they carried, and
whether the last point saved is the last one the listener saw. "One event a point" is
`TrialRecorder.add_metric` as it was before batches, patched in; "batches" is tuixp now: one
`metrics` event per step every 0.2 s or 10,000 points, whichever comes first, and at the
step's end
(`tuixp/execution/metric_news.py`, [events.md](events.md#metric-points-in-batches)).
With `--progress jsonl` a point costs {us("jsonl")} us against {us("jsonl_per_point")} us one
event a point, and {us("none")} us with no listener. Measured the same way on the commit
before batches (49be6c5, where `ProgressEvent.to_json` also copied each event with `asdict`):
`--progress jsonl` 34.01 us a point and `--progress text` 5.28 us, against 1.58 us with no
listener, one event a point each.

{
        common.markdown_table(
            [
                "listener",
                "us a point",
                "vs none",
                "events",
                "points carried",
                "last point shown",
                "trial (s)",
            ],
            rows,
            right=[1, 2, 3, 4, 6],
        )
    }

Measured {time.strftime("%Y-%m-%d")} on {common.machine_line()}, shared with other work (load
average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end);
`.venv/bin/python bench/live_metrics.py{" --quick" if args.quick else ""}`.
"""
    common.publish(PART, part, args.quick)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
