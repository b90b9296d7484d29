"""The peers benchmark's workloads with MLflow and its SQLite backend, in MLflow's own venv.

A trial is a run: ``log_params``, then the two steps as plain Python calls (MLflow has no graph),
the metric ``score`` at step 1 and the result as the metric ``result``. MLflow records no package
list or environment by default, so none is captured here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_t = time.perf_counter()
import graph  # noqa: E402 - the import time of the tool is measured apart
import mlflow  # noqa: E402

IMPORT_S = time.perf_counter() - _t


def prepare_data(a, b):
    return a + b


def calculate_score(s):
    mlflow.log_metric(graph.METRIC, graph.score(s), step=1)
    return 10 / s


def main() -> None:
    args = graph.arguments()
    mlflow.set_tracking_uri("sqlite:///" + os.path.join(args.dir, "mlflow.db"))
    common = {"tool": "mlflow", "version": graph.version("mlflow"), "import_s": IMPORT_S}
    clock = graph.Clock()
    if args.action == "record":
        experiment_id = mlflow.create_experiment(
            graph.EXPERIMENT, artifact_location=(Path(args.dir) / "mlartifacts").as_uri()
        )
        times = []
        for i in range(1, args.n + 1):
            t = time.perf_counter()
            p = graph.params(i)
            with mlflow.start_run(experiment_id=experiment_id):
                mlflow.log_params(p)
                result = calculate_score(prepare_data(**p))
                mlflow.log_metric("result", result)
            times.append(time.perf_counter() - t)
        graph.emit(**common, total_s=clock.lap(), flush_s=0.0, **graph.summarize(times))
    elif args.action == "history":
        df = mlflow.search_runs(experiment_names=[graph.EXPERIMENT])
        first_s = clock.lap()
        t = time.perf_counter()
        again = mlflow.search_runs(experiment_names=[graph.EXPERIMENT])
        graph.emit(
            **common,
            first_s=first_s,
            again_s=time.perf_counter() - t,
            rows=len(df),
            rows_again=len(again),
            columns=[str(c) for c in df.columns],
        )
    elif args.action == "top10":

        def top10() -> list[float]:
            df = mlflow.search_runs(
                experiment_names=[graph.EXPERIMENT],
                max_results=10,
                order_by=[f"metrics.{graph.METRIC} DESC"],
            )
            return [float(v) for v in df[f"metrics.{graph.METRIC}"]]

        top = top10()
        first_s = clock.lap()
        t = time.perf_counter()
        again = top10()
        graph.emit(
            **common, first_s=first_s, again_s=time.perf_counter() - t, top=top, top_again=again
        )
    else:
        raise SystemExit(f"workload_mlflow.py has no {args.action!r} workload")


if __name__ == "__main__":
    main()
