"""tuixp run: parameters from the command line, the script loaded, its trials run with progress
(a bar on a terminal, or JSONL events)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from tuixp.cli.common import (
    CliError,
    Debug,
    FormatOption,
    StoreOption,
    explicit_store,
    handled,
    output_format,
)
from tuixp.cli.live import LiveSteps
from tuixp.cli.render import (
    common_params,
    emit,
    fmt_params,
    fmt_value,
    loads_json,
)
from tuixp.scripts import load_script, use_store
from tuixp.values import parse_parameters

PROGRESS = ("text", "jsonl", "none")
LINE_EVERY = 5.0  # seconds between live lines off a terminal (TUIXP_PROGRESS_EVERY)
BAR_EVERY = 0.1  # seconds between two updates of the bar's note by metrics


# -- progress ----------------------------------------------------------------------------------
def _count_steps(node: Any) -> int:
    """How many step calls the graph ending at ``node`` has (tasks per trial)."""
    from tuixp.graph import Node

    seen: set[int] = set()
    stack: list[Any] = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, Node):
            if x.index in seen:
                continue
            seen.add(x.index)
            stack.extend(x.args)
            stack.extend(x.kwargs.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
    return len(seen)


class JsonlProgress:
    """One JSON event a line on the given stream, from any thread (docs/events.md)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        self.write(event.to_json())

    def write(self, line: str) -> None:
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def _line_every() -> float:
    """Seconds between two live lines off a terminal: ``$TUIXP_PROGRESS_EVERY``, else 5."""
    import os

    raw = os.environ.get("TUIXP_PROGRESS_EVERY", "").strip()
    try:
        every = float(raw) if raw else LINE_EVERY
    except ValueError:
        raise CliError(f"TUIXP_PROGRESS_EVERY must be a number of seconds, given {raw!r}") from None
    if not every > 0:
        raise CliError(f"TUIXP_PROGRESS_EVERY must be above 0, given {raw!r}")
    return every


class TextProgress:
    """A progress bar on a terminal (rich, on stderr) whose note is the running step's latest
    epoch and metrics; off a terminal, one line per finished trial and, at most every
    ``$TUIXP_PROGRESS_EVERY`` seconds while a step saves metrics, the same live line."""

    def __init__(self, trials: int, steps_per_trial: int, every: float = LINE_EVERY) -> None:
        self.lock = threading.Lock()
        self.live = LiveSteps()
        self.every = every
        self._shown_at = 0.0  # monotonic time the live line was last shown
        self._last_line = ""
        self.per_trial = max(steps_per_trial, 1)
        self.done: dict[int, int] = {}
        self.total = trials * self.per_trial
        self.trials = trials
        self.finished = 0
        self.bar: Any = None
        self.task: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task("tasks", total=self.total, note="")

    def __enter__(self) -> TextProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            typer.echo(text, err=True)

    def _show_live(self, kind: str) -> None:
        """The live line: on the bar (at most ten times a second, at once for a task's start
        or end), or printed off a terminal (at most every ``self.every`` seconds). Locked."""
        now = time.monotonic()
        if self.bar is not None:
            if kind == "metrics" and now - self._shown_at < BAR_EVERY:
                return
            self._shown_at = now
            self.bar.update(self.task, note=self.live.line())
            return
        if kind != "metrics" or now - self._shown_at < self.every:
            return
        line = self.live.line(with_trial=True)
        if line and line != self._last_line:
            self._shown_at = now
            self._last_line = line
            typer.echo(line, err=True)

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.live(event)
            if self.live.changed:
                self._show_live(event.kind)
            if event.kind in ("task_finished", "task_failed"):
                self.done[event.trial_id] = self.done.get(event.trial_id, 0) + 1
                if self.bar is not None:
                    self.bar.update(self.task, advance=1)
                if event.kind == "task_failed":
                    err = (event.data or {}).get("error", "")
                    self._say(f"trial {event.trial_id}: step {event.step} failed: {err}")
            elif event.kind == "trial_finished":
                self.finished += 1
                left = self.per_trial - self.done.get(event.trial_id, 0)
                self.done[event.trial_id] = self.per_trial
                if self.bar is not None and left > 0:
                    self.bar.update(self.task, advance=left)
                data = event.data or {}
                what = (
                    f"result {fmt_value(loads_json(data.get('result')))}"
                    if event.status == "succeeded"
                    else f"{data.get('error') or event.status}: {data.get('message') or ''}"
                )
                self._say(
                    f"trial {event.trial_id} {event.status} "
                    f"({self.finished}/{self.trials}): {what}".rstrip(": ")
                )


@handled
def run_command(
    ctx: typer.Context,
    script: Annotated[
        Path,
        typer.Argument(
            metavar="SCRIPT",
            show_default=False,
            help="A Python file that defines an Experiment and its result node.",
        ),
    ],
    assignments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME=VALUE",
            show_default=False,
            help="Parameter values: Python literals; a bare word is a string (model=ridge).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed random and numpy for the trial(s).", show_default=False)
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            metavar="NAME=V1,V2",
            show_default=False,
            help="One trial per combination of values; repeat for more parameters.",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            metavar="threads|processes|sync|distributed|tcp://HOST:PORT",
            show_default=False,
            help="Where the steps run (default: $TUIXP_SCHEDULER, else threads).",
        ),
    ] = None,
    worker_timeout: Annotated[
        float | None,
        typer.Option(
            "--worker-timeout",
            metavar="SECONDS",
            show_default=False,
            help="On a cluster: how long to wait while it has no worker before the unfinished "
            "trials fail (default: $TUIXP_WORKER_TIMEOUT, else 60).",
        ),
    ] = None,
    progress: Annotated[
        str | None,
        typer.Option(
            metavar="text|jsonl|none",
            show_default=False,
            help="text: a progress bar on stderr (default on a terminal); jsonl: one event a line "
            "on stdout (docs/events.md); none.",
        ),
    ] = None,
    result: Annotated[
        str | None,
        typer.Option(
            "--result",
            metavar="NAME",
            show_default=False,
            help="The result node to run when the script has several.",
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Compute cached steps again.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            "--debug",
            help="When the script fails to load, print its full traceback too.",
        ),
    ] = False,
    store: StoreOption = None,
    fmt: FormatOption = None,
) -> None:
    """Run one trial of SCRIPT's experiment, or one per point of the --grid."""
    Debug.on = Debug.on or verbose
    fixed, grid_values = parse_parameters(assignments or [], grid or [])
    fmt = output_format(fmt)
    mode = (progress or ("text" if sys.stderr.isatty() else "none")).strip().lower()
    if mode not in PROGRESS:
        raise CliError(f"unknown progress mode {progress!r}: use text, jsonl or none")
    every = _line_every() if mode == "text" else LINE_EVERY
    if not script.expanduser().exists():
        raise CliError(f"script not found: {script}")
    from tuixp.execution.schedulers import resolve_name, resolve_worker_timeout

    sched_name = resolve_name(scheduler)
    if worker_timeout is not None:
        resolve_worker_timeout(worker_timeout, "--worker-timeout")  # exit 2, nothing written
    chosen_store = explicit_store(store, ctx)
    events_out = sys.stdout
    # stdout carries tuixp's output (results, or the event stream): what the script prints
    # goes to stderr while it loads and runs.
    sys.stdout = sys.stderr
    try:
        loaded = load_script(script, chosen_store)
        node = loaded.pick(result)
        ex = node.ex
        _check_parameters(ex, fixed, grid_values)
        if chosen_store is not None:
            use_store(loaded, chosen_store)
        if sched_name not in ("threads", "sync"):
            import cloudpickle

            # The script is not importable by name in worker processes: ship its functions.
            cloudpickle.register_pickle_by_value(loaded.module)
        points = 1
        for values in grid_values.values():
            points *= len(values)
        listeners: list[Any] = []
        jsonl = JsonlProgress(events_out) if mode == "jsonl" else None
        if jsonl is not None:
            listeners.append(jsonl)
        text = TextProgress(points, _count_steps(node), every) if mode == "text" else None
        if text is not None:
            listeners.append(text)
        ex.set_parameters(**fixed)
        if text is not None:
            with text:
                outcomes = node.compute_grid(
                    grid_values,
                    seed=seed,
                    scheduler=scheduler,
                    listeners=listeners,
                    cache=not no_cache,
                    worker_timeout=worker_timeout,
                )
        else:
            outcomes = node.compute_grid(
                grid_values,
                seed=seed,
                scheduler=scheduler,
                listeners=listeners,
                cache=not no_cache,
                worker_timeout=worker_timeout,
            )
    finally:
        sys.stdout = events_out
    failed = [o for o in outcomes if o.status != "succeeded"]
    store_file = ex.store.path
    if jsonl is not None:
        jsonl.write(
            json.dumps(
                {
                    "kind": "run_finished",
                    "experiment": ex.id,
                    "time": time.time(),
                    "store": str(store_file),
                    "trials": [{"trial_id": o.trial_id, "status": o.status} for o in outcomes],
                },
                separators=(",", ":"),
            )
        )
    else:
        _print_outcomes(ex.id, outcomes, fmt)
        if fmt == "table":
            typer.echo(f"recorded in {store_file}", err=True)
    if failed:
        raise typer.Exit(1)


def _check_parameters(ex: Any, fixed: dict[str, Any], grid: dict[str, list[Any]]) -> None:
    from tuixp.errors import ParameterError

    declared = ex.parameter_names
    unknown = [n for n in [*fixed, *grid] if n not in declared]
    if unknown:
        known = ", ".join(declared) or "none"
        raise CliError(
            f"unknown parameter {unknown[0]} for experiment {ex.id} (its parameters: {known})"
        )
    point = {**fixed, **{k: v[0] for k, v in grid.items()}}
    try:
        ex.check_parameters(point)
    except ParameterError as exc:
        missing = str(exc).rpartition(": ")[2]
        raise CliError(
            f"no value for parameter(s) {missing} of experiment {ex.id}: give NAME=VALUE"
        ) from None


def _print_outcomes(experiment: str, outcomes: Sequence[Any], fmt: str) -> None:
    names: list[str] = []
    for o in outcomes:
        names.extend(n for n in o.params if n not in names)
    rows = []
    for o in outcomes:
        error = None if o.error is None else f"{type(o.error).__name__}: {o.error}"
        rows.append([experiment, o.trial_id, o.status, dict(o.params), o.result, error])
    if fmt == "csv":
        columns = ["experiment", "trial_id", "status", *names, "result", "error"]
        flat = [[r[0], r[1], r[2], *(r[3].get(n) for n in names), r[4], r[5]] for r in rows]
        emit(columns, flat, fmt)
        return
    columns = ["experiment", "trial_id", "status", "params", "result", "error"]
    if fmt == "json":
        emit(columns, rows, fmt)
        return
    same = common_params([r[3] for r in rows]) if len(rows) > 1 else {}
    emit(
        columns,
        rows,
        fmt,
        table_columns=["TRIAL", "STATUS", "PARAMS", "RESULT"],
        table_cells=lambda r: [
            str(r[1]),
            r[2],
            fmt_params({k: v for k, v in r[3].items() if k not in same}),
            fmt_value(r[4]) if r[2] == "succeeded" else (r[5] or ""),
        ],
        right=[0],
        optional=[2],
        keep=[2],
    )
    if same:
        typer.echo(f"same in every trial: {fmt_params(same)}", err=True)
