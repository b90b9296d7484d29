"""The peers benchmark's workloads with daskperiment 0.5.0, run in its own virtual environment.

daskperiment decides how it was started from ``__main__.__file__``: run as a file, creating the
result step parses ``sys.argv`` as trial parameters and computes a trial on the spot. The harness
therefore runs this script the way a notebook or an interactive session would, through
``python -c`` (``__main__`` then has no ``__file__``); this script refuses to run otherwise.
It always captures the environment, the package list and the code of every trial.
"""

from __future__ import annotations

import os
import sys
import time

_t = time.perf_counter()
import daskperiment  # noqa: E402
import graph  # noqa: E402 - the import time of the tool is measured apart

IMPORT_S = time.perf_counter() - _t


def define():
    ex = daskperiment.Experiment(id=graph.EXPERIMENT)
    a = ex.parameter("a")
    b = ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        ex.save_metric(graph.METRIC, epoch=1, value=graph.score(s))
        return 10 / s

    return ex, calculate_score(prepare_data(a, b))


def main() -> None:
    if hasattr(sys.modules["__main__"], "__file__"):
        sys.exit(
            "workload_daskperiment.py must run in interactive mode (python -c), or "
            "daskperiment parses its arguments as trial parameters"
        )
    args = graph.arguments()
    os.chdir(args.dir)  # the local backend keeps everything in ./daskperiment_cache
    common = {
        "tool": "daskperiment",
        "version": graph.version("daskperiment"),
        "import_s": IMPORT_S,
    }
    clock = graph.Clock()
    if args.action in ("record", "one"):
        ex, result = define()
        first = args.i if args.action == "one" else 1
        last = args.i if args.action == "one" else args.n
        times = []
        for i in range(first, last + 1):
            t = time.perf_counter()
            ex.set_parameters(**graph.params(i))
            result.compute()
            times.append(time.perf_counter() - t)
        if args.action == "one":
            graph.emit(**common, trial_s=clock.lap())
            return
        # Every trial pickles the experiment: nothing is left to write.
        graph.emit(**common, total_s=clock.lap(), flush_s=0.0, **graph.summarize(times))
    elif args.action == "history":
        ex = daskperiment.Experiment(id=graph.EXPERIMENT)
        df = ex.get_history()
        first_s = clock.lap()
        t = time.perf_counter()
        again = ex.get_history()
        graph.emit(
            **common,
            first_s=first_s,
            again_s=time.perf_counter() - t,
            rows=len(df),
            rows_again=len(again),
            columns=[str(c) for c in df.columns],
        )
    elif args.action == "top10":
        ex = daskperiment.Experiment(id=graph.EXPERIMENT)

        def top10() -> list[float]:
            metric = ex.load_metric(graph.METRIC, trial_id=list(range(1, ex.trial_id + 1)))
            return [float(v) for v in metric.loc[1].nlargest(10)]

        top = top10()
        first_s = clock.lap()
        t = time.perf_counter()
        again = top10()
        graph.emit(
            **common, first_s=first_s, again_s=time.perf_counter() - t, top=top, top_again=again
        )


main()
