"""tuixp show: everything recorded about one trial."""

from __future__ import annotations

import json
import re
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

    out = [f"{doc['experiment']} trial {doc['trial_id']}: {doc['status']}"]
    fields = [
        ("started", fmt_time(doc["started_at"], full=True)),
        ("finished", fmt_time(doc["finished_at"], full=True)),
        ("elapsed", fmt_elapsed(doc["elapsed_s"])),
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
    if doc["status"] == "succeeded":
        out.append(section("Result"))
        kind = re.sub(r"^<class '(.*)'>$", r"\1", doc["result_type"] or "")
        out.append(f"  {fmt_value(doc['result'])}    ({kind})")
    else:
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


def load_trial(con: Any, experiment: str, trial_id: int) -> dict[str, Any]:
    """Everything recorded about one trial, as plain data (what show --format json prints)."""
    from tuixp.store import flags, queries

    rec = queries.trial(con, experiment, trial_id)
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
    }
    doc["metrics"] = [
        {
            "name": n,
            "epochs": c,
            "first_epoch": e0,
            "last_epoch": e1,
            "last": last,
            "min": lo,
            "max": hi,
        }
        for n, c, e0, e1, last, lo, hi in con.execute(
            """
            SELECT name, count(*), min(epoch), max(epoch), arg_max(value, epoch), min(value),
                   max(value)
            FROM metrics WHERE experiment = ? AND trial_id = ? GROUP BY name ORDER BY name
        """,
            [experiment, trial_id],
        ).fetchall()
    ]
    doc["metric_values"] = {}
    for name, epoch, value in con.execute(
        "SELECT name, epoch, value FROM metrics WHERE experiment = ? AND trial_id = ? "
        "ORDER BY name, epoch",
        [experiment, trial_id],
    ).fetchall():
        doc["metric_values"].setdefault(name, []).append([epoch, value])
    doc["steps"] = [
        {
            "key": k,
            "step": s,
            "status": st,
            "elapsed_s": el,
            "worker": w,
            "error": err,
            "reused_from": ru,
        }
        for k, s, st, el, w, err, ru in con.execute(
            """
            SELECT key, step, status, elapsed_s, worker, error, reused_from FROM steps
            WHERE experiment = ? AND trial_id = ? ORDER BY started_at, key
        """,
            [experiment, trial_id],
        ).fetchall()
    ]
    if doc["status"] not in ("running", "queued"):
        for s in doc["steps"]:  # a step that never reported its end (its process was killed)
            if s["status"] == "running":
                s["status"] = "interrupted"
    doc["persisted"] = [
        {"step": s, "format": f, "size": z, "object_hash": h}
        for s, f, z, h in con.execute(
            "SELECT step, format, size, object_hash FROM persisted WHERE experiment = ? AND "
            "trial_id = ? ORDER BY step",
            [experiment, trial_id],
        ).fetchall()
    ]
    doc["code"] = queries.code(con, experiment, trial_id)
    env = queries.environment(con, experiment, trial_id)
    doc["environment"] = env
    return doc
