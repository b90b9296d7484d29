"""The peers benchmark's workloads with tuixp, run by this repository's .venv.

``python workload_tuixp.py ACTION --dir DIR [--n N] [--i I]``; prints one ``RESULT {json}`` line.
The environment, the package list and the code of every trial are captured, as always in tuixp.
"""

from __future__ import annotations

import os
import time

_t = time.perf_counter()
import graph  # noqa: E402 - the import time of the tool is measured apart

import tuixp  # noqa: E402

IMPORT_S = time.perf_counter() - _t


def define(store: str):
    ex = tuixp.Experiment(graph.EXPERIMENT, store=store)
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
    args = graph.arguments()
    store = os.path.join(args.dir, "tuixp.duckdb")
    common = {"tool": "tuixp", "version": graph.version("tuixp"), "import_s": IMPORT_S}
    clock = graph.Clock()
    if args.action in ("record", "one"):
        ex, result = define(store)
        first = args.i if args.action == "one" else 1
        last = args.i if args.action == "one" else args.n
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        times = []
        for i in range(first, last + 1):
            if profiler is not None and i == first + 1:
                profiler.enable()  # the steady state: the first trial's lazy imports apart
            t = time.perf_counter()
            result.compute(**graph.params(i))
            times.append(time.perf_counter() - t)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        if args.action == "one":
            # What is left (ingesting the journal into the database) happens at exit; the
            # harness times the whole process from outside.
            graph.emit(**common, trial_s=clock.lap())
            return
        t = time.perf_counter()
        with ex.store.connect():  # ingests the journal: every trial is in the database now
            pass
        flush_s = time.perf_counter() - t
        graph.emit(**common, total_s=clock.lap(), flush_s=flush_s, **graph.summarize(times))
    elif args.action == "history":
        ex = tuixp.Experiment(graph.EXPERIMENT, store=store)
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
        from tuixp.store.store import get_store

        query = (
            "SELECT trial_id, value FROM metrics WHERE experiment = ? AND name = ? "
            "ORDER BY value DESC LIMIT 10"
        )

        def top10() -> list[float]:
            with get_store(store).connect() as con:
                rows = con.execute(query, [graph.EXPERIMENT, graph.METRIC]).fetchall()
            return [value for _, value in rows]

        top = top10()
        first_s = clock.lap()
        t = time.perf_counter()
        again = top10()
        graph.emit(
            **common, first_s=first_s, again_s=time.perf_counter() - t, top=top, top_again=again
        )


if __name__ == "__main__":
    main()
