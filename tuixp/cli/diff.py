"""tuixp diff: what differs between trials (parameters, results, code, environment)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from tuixp.cli.common import (
    ReportFormatOption,
    StoreOption,
    handled,
    open_store,
    output_format,
    parse_trial,
    resolve_trial,
    store_path,
)
from tuixp.cli.render import (
    indent,
    json_default,
    render_table,
    section,
)


@handled
def diff_command(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(metavar="EXPERIMENT", show_default=False)],
    first: Annotated[
        str, typer.Argument(metavar="T1", show_default=False, help="A trial id, or latest.")
    ],
    second: Annotated[
        str, typer.Argument(metavar="T2", show_default=False, help="A trial id, or latest.")
    ],
    params: Annotated[
        bool, typer.Option("--params", help="Only the parameters and results.")
    ] = False,
    code: Annotated[bool, typer.Option("--code", help="Only the code.")] = False,
    env: Annotated[bool, typer.Option("--env", help="Only the environment.")] = False,
    causes: Annotated[
        bool, typer.Option("--causes", help="Only the likely causes of a different result.")
    ] = False,
    store: StoreOption = None,
    fmt: ReportFormatOption = None,
) -> None:
    """What differs between trials T1 and T2: parameters, results (status, seed, commit, data
    inputs, metrics), the likely causes, code and environment, as the TUI's compare screen."""
    from tuixp import diff as diffs

    fmt = output_format(fmt or "table", ("table", "json"))
    a, b = parse_trial(first), parse_trial(second)
    st = open_store(store_path(store, ctx))
    with st.connect() as con:
        ta, tb = resolve_trial(con, experiment, a), resolve_trial(con, experiment, b)
        docs = diff_documents(con, experiment, [ta, tb])
    result = diffs.compare(docs, labels=(f"trial {ta}", f"trial {tb}"))
    chosen = (("params", params), ("causes", causes), ("code", code), ("env", env))
    sections = [s for s, on in chosen if on] or [s for s, _ in chosen]
    if fmt == "json":
        typer.echo(json.dumps(_diff_json(result, ta, tb, sections), default=json_default, indent=2))
        return
    typer.echo(render_diff(result, ta, tb, sections))


def diff_documents(con: Any, experiment: str, trial_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The trials as ``tuixp.diff.compare`` takes them (the compare screen reads the same)."""
    from tuixp.store import queries

    series = queries.metric_series(con, experiment, list(trial_ids))
    docs = []
    for tid in trial_ids:
        steps = queries.steps(con, experiment, tid)
        docs.append(
            {
                "trial": queries.trial(con, experiment, tid),
                "code": queries.code(con, experiment, tid),
                "environment": queries.environment(con, experiment, tid),
                "steps_ran": [s["step"] for s in steps] if steps else None,
                "metrics": {name: by_trial.get(tid, []) for name, by_trial in series.items()},
            }
        )
    return docs


def _missing_to_none(value: Any) -> Any:
    from tuixp.diff import MISSING

    return None if value is MISSING else value


def _diff_json(result: Any, ta: int, tb: int, sections: list[str]) -> dict[str, Any]:
    from tuixp.diff import compare_params

    doc: dict[str, Any] = {"trials": [ta, tb]}
    if "params" in sections:
        doc["params"] = [
            {
                "name": r.name,
                "status": p.status,
                "old": _missing_to_none(p.old),
                "new": _missing_to_none(p.new),
            }
            for r in result.params
            for p in compare_params({r.name: r.values[0]}, {r.name: r.values[1]})
        ]
        doc["results"] = [
            {
                "name": r.name,
                "old": _missing_to_none(r.values[0]),
                "new": _missing_to_none(r.values[1]),
                "differs": r.differs,
            }
            for r in result.results
        ]
    if "causes" in sections:
        doc["causes"] = [
            {
                "kind": c.kind,
                "title": c.title,
                "name": c.name,
                "old": _missing_to_none(c.old),
                "new": _missing_to_none(c.new),
                "detail": c.detail,
            }
            for c in result.causes
        ]
    if "code" in sections:
        doc["code"] = [{"step": c.step, "status": c.status, "diff": c.diff} for c in result.code]
    if "env" in sections:
        doc["environment"] = {
            group: [
                {
                    "name": c.name,
                    "status": c.status,
                    "old": _missing_to_none(c.old),
                    "new": _missing_to_none(c.new),
                }
                for c in changes
            ]
            for group, changes in result.environment.groups.items()
        }
    return doc


def render_diff(result: Any, ta: int, tb: int, sections: list[str]) -> str:
    from tuixp.diff import ADDED, GIT_DIFF_STEP, MISSING, REMOVED, cause_text, short

    def cell(value: Any) -> str:
        return "—" if value is MISSING else short(value, 30)

    out = [f"trial {ta} -> trial {tb}"]
    if "params" in sections:
        out.append(section("Parameters"))
        changed = [r for r in result.params if r.differs]
        if not changed:
            out.append("  no differences")
        rows = [
            [r.name, cell(r.values[0]), cell(r.values[1]), _param_status(r.values)] for r in changed
        ]
        if rows:
            out.append(
                indent(render_table(["NAME", f"TRIAL {ta}", f"TRIAL {tb}", "CHANGE"], rows, 78))
            )
        same = [r.name for r in result.params if not r.differs]
        if same:
            out.append(f"  same: {', '.join(same)}")
        out.append(section("Results"))
        rows = [
            [
                _row_name(r.name),
                cell(r.values[0]),
                cell(r.values[1]),
                _param_status(r.values) if r.differs else "",
            ]
            for r in result.results
        ]
        out.append(indent(render_table(["", f"TRIAL {ta}", f"TRIAL {tb}", "CHANGE"], rows, 78)))
    if "causes" in sections:
        out.append(section("Likely causes, most likely first"))
        if not result.causes:
            out.append(
                "  nothing here explains a different result: same code, packages, seed, commit "
                "and data inputs"
            )
        for i, c in enumerate(result.causes, 1):
            out.append(f"  {i:>2}. {c.title}: {cause_text(c)}")
    if "code" in sections:
        out.append(section("Code"))
        changed = result.code_changed
        if not changed:
            out.append("  no differences")
        for c in changed:
            name = "the script" if c.step == "<script>" else f"step {c.step}"
            if c.step == GIT_DIFF_STEP:
                name = "the uncommitted changes (git diff)"
            if c.status in (ADDED, REMOVED):
                out.append(f"  {name}: {c.status} in trial {tb}")
            out.append(c.diff)
    if "env" in sections:
        out.append(section("Environment"))
        groups = result.environment.groups
        if not groups:
            out.append("  no differences")
        for group, changes in groups.items():
            out.append(f"  {group}:")
            for c in changes:
                texts = [v for v in (c.old, c.new) if isinstance(v, str)]
                if any("\n" in t for t in texts):  # e.g. git's uncommitted diff
                    old_lines = len(c.old.splitlines()) if isinstance(c.old, str) else 0
                    new_lines = len(c.new.splitlines()) if isinstance(c.new, str) else 0
                    out.append(f"    ~ {c.name}: {old_lines} lines -> {new_lines} lines")
                    continue
                sign = {"added": "+", "removed": "-"}.get(c.status, "~")
                if c.status == "added":
                    out.append(f"    {sign} {c.name} {short(c.new)}")
                elif c.status == "removed":
                    out.append(f"    {sign} {c.name} {short(c.old)}")
                elif group == "git" and c.name == "commit":
                    out.append(f"    ~ commit: {str(c.old)[:12]} -> {str(c.new)[:12]}")
                else:
                    out.append(f"    {sign} {c.name}: {short(c.old, 34)} -> {short(c.new, 34)}")
    return "\n".join(out)


def _row_name(name: str, width: int = 36) -> str:
    """A result row's name in a table: a long data path keeps its end (the file's name)."""
    if len(name) <= width:
        return name
    head = "data " if name.startswith("data ") else ""
    return head + "…" + name[len(name) - (width - len(head) - 1) :]


def _param_status(values: Sequence[Any]) -> str:
    from tuixp.diff import MISSING, compare_params

    old = {} if values[0] is MISSING else {"v": values[0]}
    new = {} if values[1] is MISSING else {"v": values[1]}
    return compare_params(old, new)[0].status if old or new else ""
