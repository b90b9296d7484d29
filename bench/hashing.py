"""What hashing a step's output costs: tuixp's content hash against Dask's tokenize (the old one).

Every step's inputs and output are hashed when purity checking is on (the default). The old hash,
``dask.base.tokenize``, was not stable for pickled objects (a model fitted on a reused output
hashed differently from one fitted on a fresh one); ``tuixp.capture.hashing.content_hash`` is,
and checks objects with a pickle round trip. Both are timed on the same values in the same run,
interleaved, median of the repeats.

    .venv/bin/python bench/hashing.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package


def values(quick: bool) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    rows = 100_000 if quick else 1_000_000
    mb = 10 if quick else 100
    X, y = load_digits(return_X_y=True)
    return {
        f"float64 array, {mb} MB": np.random.default_rng(0).random(mb * 2**20 // 8),
        f"DataFrame, {rows:,} rows (float, str)": pd.DataFrame(
            {"x": np.arange(float(rows)), "s": [f"k{i % 1000}" for i in range(rows)]}
        ),
        f"DataFrame, {rows:,} rows (float, object)": pd.DataFrame(
            {
                "x": np.arange(float(rows)),
                "o": pd.Series([i % 7 for i in range(rows)], dtype=object),
            }
        ),
        "RandomForest, 100 trees (digits)": RandomForestClassifier(100, random_state=0).fit(X, y),
        "list of 100,000 floats": [float(i) for i in range(100_000)],
        "dict of 10,000 str -> int": {f"k{i}": i for i in range(10_000)},
    }


def seconds(fn: Callable[[Any], Any], value: Any) -> float:
    t = time.perf_counter()
    fn(value)
    return time.perf_counter() - t


def main() -> None:
    opts = common.arguments(__doc__.splitlines()[0]).parse_args()
    repeats = 3 if opts.quick else 5
    from dask.base import tokenize

    from tuixp.capture.hashing import content_hash

    rows = []
    for name, value in values(opts.quick).items():
        assert content_hash(value) is not None, name  # a figure for a hash that is trusted
        a, b = [], []
        for _ in range(repeats):  # interleaved: the machine's load hits both alike
            a.append(seconds(content_hash, value))
            b.append(seconds(lambda v: tokenize(v, ensure_deterministic=False), value))
        ours, theirs = statistics.median(a), statistics.median(b)
        rows.append([name, common.fmt_ms(ours), common.fmt_ms(theirs), f"{ours / theirs:.1f}x"])
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "## Hashing step outputs (bench/hashing.py)",
            "",
            "Median wall time of one hash of each value, interleaved over "
            f"{repeats} repeats: `content_hash` (stable across processes and pickle round trips; "
            "objects checked by one) against Dask's `tokenize` (the hash tuixp used before).",
            "",
            common.markdown_table(
                ["value", "content_hash (ms)", "dask tokenize (ms)", "ratio"], rows, right=(1, 2, 3)
            ),
            "",
            f"{common.machine_line()}; `bench/hashing.py{' --quick' if opts.quick else ''}`.",
            "",
        ]
    )
    common.publish("hashing", text, opts.quick)


if __name__ == "__main__":
    main()
