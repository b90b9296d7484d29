"""The peers benchmark's workloads with Sacred and its FileStorageObserver, in Sacred's own venv.

A trial is a run of the experiment's main function with ``config_updates``; the metric goes
through ``_run.log_scalar`` and the result is the main function's return value. Sacred records
the host, the imported packages and the sources with every run (sources once, by hash).
Sacred has no query API over a file store: history and top-10 read its JSON files, as a user
would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

_t = time.perf_counter()
import graph  # noqa: E402 - the import time of the tool is measured apart
from sacred import Experiment  # noqa: E402
from sacred.observers import FileStorageObserver  # noqa: E402

IMPORT_S = time.perf_counter() - _t

ex = Experiment(graph.EXPERIMENT)


@ex.config
def config():
    a = 0  # noqa: F841 - Sacred reads the config function's local names
    b = 0.0  # noqa: F841


def prepare_data(a, b):
    return a + b


@ex.main
def calculate_score(_run, a, b):
    s = prepare_data(a, b)
    _run.log_scalar(graph.METRIC, graph.score(s), 1)
    return 10 / s


def run_dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.name.isdigit()]


def history(root: Path):
    import pandas as pd

    rows = []
    for run in run_dirs(root):
        info = json.loads((run / "run.json").read_text())
        config = json.loads((run / "config.json").read_text())
        rows.append(
            {
                "Trial ID": int(run.name),
                "a": config["a"],
                "b": config["b"],
                "Result": info.get("result"),
                "Status": info.get("status"),
                "Started": info.get("start_time"),
                "Finished": info.get("stop_time"),
            }
        )
    df = pd.DataFrame(rows).set_index("Trial ID").sort_index()
    df["Started"] = pd.to_datetime(df["Started"])
    df["Finished"] = pd.to_datetime(df["Finished"])
    return df


def top10(root: Path) -> list[float]:
    values = []
    for run in run_dirs(root):
        metrics = json.loads((run / "metrics.json").read_text())
        values.append(metrics[graph.METRIC]["values"][-1])
    return sorted(values, reverse=True)[:10]


def main() -> None:
    args = graph.arguments()
    root = Path(args.dir) / "runs"
    common = {"tool": "sacred", "version": graph.version("sacred"), "import_s": IMPORT_S}
    clock = graph.Clock()
    if args.action == "record":
        ex.observers.append(FileStorageObserver(str(root)))
        times = []
        for i in range(1, args.n + 1):
            t = time.perf_counter()
            ex.run(config_updates=graph.params(i))
            times.append(time.perf_counter() - t)
        graph.emit(**common, total_s=clock.lap(), flush_s=0.0, **graph.summarize(times))
    elif args.action == "history":
        df = history(root)
        first_s = clock.lap()
        t = time.perf_counter()
        again = history(root)
        graph.emit(
            **common,
            first_s=first_s,
            again_s=time.perf_counter() - t,
            rows=len(df),
            rows_again=len(again),
            columns=[str(c) for c in df.columns],
        )
    elif args.action == "top10":
        top = top10(root)
        first_s = clock.lap()
        t = time.perf_counter()
        again = top10(root)
        graph.emit(
            **common, first_s=first_s, again_s=time.perf_counter() - t, top=top, top_again=again
        )
    else:
        raise SystemExit(f"workload_sacred.py has no {args.action!r} workload")


if __name__ == "__main__":
    main()
