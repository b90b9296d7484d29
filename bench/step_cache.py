"""Step cache: a trial that changes only the last step's parameter, with and without the cache.

A 3-step pipeline whose first step takes 2 s (a stand-in for loading data): `load` (cached) ->
`features` (cached) -> `score` (reads parameter c). The first trial fills the cache; then each
measured trial changes only c, once with `compute(cache=False)` and once with the cache, in the
same run. Target: the cached trial under 10% of the uncached one.

    .venv/bin/python bench/step_cache.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 5")
    opts = parser.parse_args()
    repeats = 2 if opts.quick else 5

    import numpy as np

    import tuixp

    with tempfile.TemporaryDirectory() as tmp:
        ex = tuixp.Experiment("cache_bench", store=Path(tmp) / "bench.duckdb")
        n, c = ex.parameter("n", default=200_000), ex.parameter("c", default=0)

        @ex.cached
        def load(n):
            time.sleep(2.0)
            return np.arange(n, dtype=float)

        @ex.cached
        def features(x):
            return np.sqrt(x)

        @ex.result
        def score(f, c):
            return float(f.sum() + c)

        node = score(features(load(n)), c)
        node.compute()  # fills the cache
        uncached, cached = [], []
        for i in range(repeats):
            ex.set_parameters(c=i + 1)
            t = time.perf_counter()
            node.compute(cache=False)
            uncached.append(time.perf_counter() - t)
            ex.set_parameters(c=i + 100)
            t = time.perf_counter()
            node.compute()
            cached.append(time.perf_counter() - t)

    u, c_ = statistics.median(uncached), statistics.median(cached)
    text = "\n".join(
        [
            "## Step cache (bench/step_cache.py)",
            "",
            "3-step pipeline, first step sleeps 2 s; each measured trial changes only the last step's",
            "parameter. Median of "
            + str(repeats)
            + " trials each. Target: cached < 10% of uncached.",
            "",
            "| trial | median (s) | share of uncached |",
            "|---|---:|---:|",
            f"| `compute(cache=False)` (all 3 steps run) | {u:.3f} | 100% |",
            f"| `compute()` (load and features reused) | {c_:.3f} | {100 * c_ / u:.1f}% |",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores; "
            "`bench/step_cache.py" + (" --quick" if opts.quick else "") + "`.",
            "",
        ]
    )
    common.publish("step_cache", text, opts.quick)


if __name__ == "__main__":
    main()
