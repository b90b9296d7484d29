"""What every tool records in the peers benchmark, and how a workload reports its timings.

Standard library only: the harness copies this file next to each workload script, and the
scripts run in each peer's own virtual environment, where neither tuixp nor bench/ exists.

The graph is the quickstart's: parameters ``a`` and ``b``; a step ``prepare_data(a, b) = a + b``;
a result step that saves the metric ``score`` (epoch 1) and returns ``10 / s``. Trial ``i``
(1-based) gets ``params(i)``, so the harness can compute the right answers itself and check
every tool's read-back against them.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

EXPERIMENT = "quick"
METRIC = "score"
RESULT_MARK = "RESULT "
EDGE = 100  # trials timed at the start and at the end of a run


def params(i: int) -> dict[str, float]:
    """Parameters of trial ``i``: distinct sums, so no two trials have the same score."""
    return {"a": i, "b": (i * 7919) % 10007 / 100}


def score(s: float) -> float:
    return math.sin(s)


def expected_top(n: int, k: int = 10) -> list[float]:
    """The ``k`` best scores among trials 1..n, highest first, as every tool must find them."""
    values = [score(p["a"] + p["b"]) for p in map(params, range(1, n + 1))]
    return sorted(values, reverse=True)[:k]


def rounded(values: list[float]) -> list[float]:
    return [round(float(v), 9) for v in values]


def summarize(times: list[float]) -> dict[str, float]:
    """Per-trial seconds -> milliseconds: the first trial (it pays for what a tool imports or
    opens lazily), the next 100, the last 100, and the whole run."""
    first, last = times[1 : EDGE + 1], times[-EDGE:]
    return {
        "first_trial_ms": times[0] * 1e3,
        "first_ms": statistics.fmean(first) * 1e3,
        "last_ms": statistics.fmean(last) * 1e3,
        "first_median_ms": statistics.median(first) * 1e3,
        "last_median_ms": statistics.median(last) * 1e3,
        "mean_ms": statistics.fmean(times) * 1e3,
        "loop_s": sum(times),
    }


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="One workload of the peers benchmark.")
    parser.add_argument("action", choices=["record", "history", "top10", "one"])
    parser.add_argument("--dir", required=True, help="folder the tool keeps its records in")
    parser.add_argument("--n", type=int, default=0, help="trials to record (record)")
    parser.add_argument("--i", type=int, default=1, help="index of the single trial (one)")
    parser.add_argument("--profile", help="write a cProfile of the recording loop here (record)")
    return parser.parse_args(sys.argv[1:] if argv is None else argv)


def version(dist: str) -> str:
    from importlib import metadata

    return metadata.version(dist)


def emit(**result: object) -> None:
    """The one line the harness reads from a workload's output."""
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


class Clock:
    """Seconds since the workload started, the imports of the tool excluded."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def lap(self) -> float:
        return time.perf_counter() - self.start
