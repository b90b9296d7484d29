"""tuixp show: everything recorded about one trial."""

from __future__ import annotations

import json
import re
import time
from typing import Annotated, Any

import typer

from tuixp.cli.common import (
    StoreOption,
    handled,
    open_store,
    output_format,
    parse_trial,
    resolve_trial,
    store_path,
)
from tuixp.cli.render import (
    fmt_elapsed,
    fmt_param,
    fmt_time,
    fmt_value,
    indent,
    json_default,
    loads_json,
    render_table,
    section,
)


@handled
def show_command(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(metavar="EXPERIMENT", show_default=False)],
    trial: Annotated[
        str, typer.Argument(metavar="TRIAL", show_default=False, help="A trial id, or latest.")
    ],
    store: StoreOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json",
            show_default=False,
            help="text for people (default) or JSON with everything, packages included.",
        ),
    ] = None,
) -> None:
    """Everything recorded about one trial."""
    fmt = output_format(fmt or "table", ("table", "json"))
    wanted = parse_trial(trial)
    st = open_store(store_path(store, ctx))
    with st.connect() as con:
        trial_id = resolve_trial(con, experiment, wanted)
        doc = load_trial(con, experiment, trial_id)
    if fmt == "json":
        typer.echo(json.dumps(doc, default=json_default, indent=2))
        return
    typer.echo(render_trial(doc))


def render_trial(doc: dict[str, Any]) -> str:
    """``tuixp show`` for people: one section per kind of record."""
    from tuixp.capture.environment import environment_view
    from tuixp.store import flags

    origin = doc.get("origin") or {}
    merged = f" ({origin['label']})" if origin.get("label") else ""
    out = [f"{doc['experiment']} trial {doc['trial_id']}{merged}: {doc['status']}"]
    running = doc.get("running")
    fields = [
        ("started", fmt_time(doc["started_at"], full=True)),
        ("finished", fmt_time(doc["finished_at"], full=True)),
        ("elapsed", fmt_elapsed(doc["elapsed_s"]) + (" (running)" if running else "")),
        ("seed", doc["seed"]),
        ("host", f"{doc['host']} (pid {doc['pid']})"),
        ("scheduler", doc["scheduler"]),
        ("script", doc["script"] or ""),
        ("flags", doc["flags"]),
    ]
    out += [f"  {k:<10} {v}" for k, v in fields]
    out += [" " * 13 + line for line in flags.describe(doc["changes"], doc["notes"])]
    out.append(section("Parameters"))
    width = max([len(k) for k in doc["params"]] + [1])
    out += [f"  {k:<{width}}  {fmt_param(v)}" for k, v in doc["params"].items()] or ["  (none)"]
    if running:
        out.append(section("Running now"))
        out += _running_lines(doc)
    if doc["status"] == "succeeded":
        out.append(section("Result"))
        kind = re.sub(r"^<class '(.*)'>$", r"\1", doc["result_type"] or "")
        out.append(f"  {fmt_value(doc['result'])}    ({kind})")
    elif doc["status"] not in ("running", "queued"):
        out.append(section("Error"))
        out.append(f"  {doc['error_type'] or ''}: {doc['error_message'] or ''}")
        if doc["traceback"]:
            out += ["", *("  " + line for line in doc["traceback"].rstrip().splitlines())]
    if doc["metrics"]:
        out.append(section("Metrics"))
        rows = [
            [
                m["name"],
                str(m["epochs"]),
                f"{m['first_epoch']}..{m['last_epoch']}",
                fmt_value(m["last"]),
                fmt_value(m["min"]),
                fmt_value(m["max"]),
            ]
            for m in doc["metrics"]
        ]
        out.append(
            indent(
                render_table(
                    ["NAME", "EPOCHS", "RANGE", "LAST", "MIN", "MAX"], rows, 78, right=[1, 3, 4, 5]
                )
            )
        )
    if doc["steps"]:
        out.append(section("Steps"))
        rows = [
            [
                s["step"],
                s["status"] + (f" (from trial {s['reused_from']})" if s["reused_from"] else ""),
                fmt_elapsed(s["elapsed_s"]),
                s["worker"] or "",
                s["error"] or "",
            ]
            for s in doc["steps"]
        ]
        out.append(
            indent(
                render_table(["STEP", "STATUS", "ELAPSED", "WORKER", "ERROR"], rows, 78, right=[2])
            )
        )
    if doc["persisted"]:
        out.append(section("Persisted outputs"))
        rows = [
            [p["step"], p["format"], _size(p["size"]), p["object_hash"]] for p in doc["persisted"]
        ]
        out.append(indent(render_table(["STEP", "FORMAT", "SIZE", "OBJECT"], rows, 78, right=[2])))
    if doc["data_inputs"]:
        out.append(section("Data inputs"))
        out += [f"  {p}  {h}" for p, h in doc["data_inputs"].items()]
    if doc["changes"] or doc["notes"]:
        out.append(section("Changes since the previous trial"))
        for c in doc["changes"]:
            out.append(f"  {c.get('message', c.get('kind'))}: {c.get('name')}")
            out += ["    " + line for line in str(c.get("diff", "")).splitlines()]
        out += [f"  note: {n}" for n in doc["notes"]]
    out.append(section("Environment"))
    env = doc["environment"]
    out += ["  " + line for line in environment_view(env, None)]
    out.append(f"  Packages: {len(env.get('packages') or {})} recorded (--format json lists them)")
    for step, source in doc["code"].items():
        if step == "<script>":
            continue
        out.append(section(f"Code: {step}"))
        out += ["  " + line for line in source.rstrip().splitlines()]
    if "<script>" in doc["code"]:
        lines = doc["code"]["<script>"].count("\n") + 1
        out.append(section("Script"))
        out.append(f"  {doc['script']} ({lines} lines recorded; --format json includes it)")
    return "\n".join(out)


def _size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _running_now(
    con: Any, experiment: str, trial_id: int, metrics: list[dict[str, Any]]
) -> dict[str, Any]:
    """A running trial's steps now running (how long each has run) and its latest metrics: the
    latest epoch any metric reached, and each metric's value at its own last epoch."""
    now = time.time()
    steps = [
        {"step": step, "key": key, "started_at": started, "running_s": now - started.timestamp()}
        for step, key, started in con.execute(
            "SELECT step, key, started_at FROM steps WHERE experiment = ? AND trial_id = ? "
            "AND status = 'running' ORDER BY started_at, key",
            [experiment, trial_id],
        ).fetchall()
    ]
    from tuixp.store.metric_names import is_system_metric

    own = [m for m in metrics if not is_system_metric(m["name"])]
    epochs = [m["last_epoch"] for m in own]
    return {
        "steps": steps,
        "epoch": max(epochs) if epochs else None,
        "metrics": {m["name"]: m["last"] for m in own},
    }


def _running_lines(doc: dict[str, Any]) -> list[str]:
    """``train  running for 12.3s · epoch 12 · loss 0.31``: each step running now."""
    from tuixp.cli.live import SEP, fmt_metric

    now = doc["running"]
    tail = ([f"epoch {now['epoch']}"] if now["epoch"] is not None else []) + [
        f"{name} {fmt_metric(value)}" for name, value in now["metrics"].items()
    ]
    steps = now["steps"] or [{"step": "(between steps)", "running_s": None}]
    width = max(len(s["step"]) for s in steps)
    lines = []
    for s in steps:
        since = f"running for {fmt_elapsed(s['running_s'])}" if s["running_s"] is not None else ""
        lines.append(f"  {s['step']:<{width}}  " + SEP.join([p for p in [since, *tail] if p]))
    return lines


def _origin(con: Any, uuid: str) -> dict[str, Any]:
    """Where the trial was recorded (docs/sharing.md): the store's id, the trial's id there,
    and for a merged trial the label ``gpu-box #12`` shown next to its id here."""
    row = con.execute(
        "SELECT origin_store, origin_trial_id, origin FROM trials WHERE uuid = ?", [uuid]
    ).fetchone()
    if row is None:
        return {}
    return {"store": row[0], "trial_id": row[1], "label": row[2]}


def load_trial(con: Any, experiment: str, trial_id: int) -> dict[str, Any]:
    """Everything recorded about one trial, as plain data (what show --format json prints)."""
    from tuixp.store import flags, queries

    rec = queries.trial(con, experiment, trial_id)
    first = None
    if rec["status"] == "running":
        first = queries.first_step_starts(con, experiment, [trial_id]).get(trial_id)
        rec["status"] = queries.shown_status("running", first)
    doc: dict[str, Any] = {
        "experiment": experiment,
        "trial_id": trial_id,
        "status": rec["status"],
        "started_at": rec["started_at"],
        "finished_at": rec["finished_at"],
        "elapsed_s": rec.get("elapsed_s"),
        "seed": rec["seed"],
        "params": rec["params"],
        "result": rec["result"],
        "result_type": rec["result_type"],
        "error_type": rec["error_type"],
        "error_message": rec["error_message"],
        "traceback": rec.get("traceback"),
        "host": rec["host"],
        "pid": rec["pid"],
        "script": rec["script"],
        "scheduler": rec["scheduler"],
        "changes": rec["changes"],
        "notes": rec["notes"],
        "data_inputs": loads_json(rec.get("data_inputs")) or {},
        "uuid": rec["uuid"],
        "flags": flags.text(rec["changes"], rec["notes"]),
        "origin": _origin(con, rec["uuid"]),
    }
    # The same reads as the TUI's detail screen (tuixp.store.queries), shaped as show prints them.
    doc["metrics"] = queries.metric_summaries(con, experiment, trial_id)
    series = queries.metric_series(con, experiment, [trial_id])
    doc["metric_values"] = {
        name: [[epoch, value] for epoch, value in by_trial[trial_id]]
        for name, by_trial in series.items()
    }
    doc["steps"] = [
        {k: s[k] for k in ("key", "step", "status", "elapsed_s", "worker", "error", "reused_from")}
        for s in queries.steps(con, experiment, trial_id)
    ]
    if doc["status"] not in ("running", "queued"):
        for s in doc["steps"]:  # a step that never reported its end (its process was killed)
            if s["status"] == "running":
                s["status"] = "interrupted"
    if doc["status"] == "running" and first is not None:
        doc["elapsed_s"] = max(0.0, time.time() - first.timestamp())
        doc["running"] = _running_now(con, experiment, trial_id, doc["metrics"])
    doc["persisted"] = [
        {k: p[k] for k in ("step", "format", "size", "object_hash")}
        for p in queries.persisted_outputs(con, experiment, trial_id)
    ]
    doc["code"] = queries.code(con, experiment, trial_id)
    env = queries.environment(con, experiment, trial_id)
    doc["environment"] = env
    return doc
