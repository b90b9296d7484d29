"""tuixp ls: the experiments in a store, or an experiment's latest trials."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from tuixp.cli.common import (
    CliError,
    FormatOption,
    StoreOption,
    handled,
    open_store,
    output_format,
    require_experiment,
    store_path,
)
from tuixp.cli.render import (
    common_params,
    emit,
    fmt_elapsed,
    fmt_number,
    fmt_params,
    fmt_time,
    fmt_value,
    is_today,
    loads_json,
)

DEFAULT_LIMIT = 50


@handled
def ls_command(
    ctx: typer.Context,
    experiment: Annotated[
        str | None,
        typer.Argument(
            metavar="EXPERIMENT",
            show_default=False,
            help="List this experiment's trials (default: list experiments).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", help="Show the latest N trials.")
    ] = DEFAULT_LIMIT,
    all_trials: Annotated[bool, typer.Option("--all", "-a", help="Show every trial.")] = False,
    status: Annotated[
        str | None,
        typer.Option(
            metavar="succeeded|failed|queued|running|interrupted",
            show_default=False,
            help="Only trials with this status.",
        ),
    ] = None,
    store: StoreOption = None,
    fmt: FormatOption = None,
) -> None:
    """List experiments, or an experiment's latest trials."""
    fmt = output_format(fmt)
    if limit < 1:
        raise CliError("--limit must be at least 1 (or use --all)")
    if status is not None and status not in STATUSES:
        raise CliError(f"unknown status {status!r}: use {', '.join(STATUSES[:-1])} or interrupted")
    st = open_store(store_path(store, ctx))
    with st.connect() as con:
        if experiment is None:
            _ls_experiments(con, fmt)
        else:
            _ls_trials(con, experiment, None if all_trials else limit, status, fmt)


STATUSES = ("succeeded", "failed", "queued", "running", "interrupted")


def _ls_experiments(con: Any, fmt: str) -> None:
    from tuixp.store import queries

    columns = [
        "experiment",
        "trials",
        "succeeded",
        "failed",
        "running",
        "interrupted",
        "last_run",
        "min_result",
        "max_result",
        "goal",
        "best_result",
    ]
    rows = [[e[c] for c in columns] for e in queries.experiments(con)]
    if not rows and fmt == "table":
        typer.echo("no trials yet: run one with tuixp run SCRIPT (or try tuixp demo)", err=True)
        return

    def result(low: Any, high: Any, goal: str | None, best: Any) -> str:
        # Which end is best is the experiment's to say (Experiment(..., goal="min" or "max"));
        # without a goal, the range.
        if goal and best is not None:
            return f"best {fmt_number(best)} ({goal})"
        return "" if low is None else f"{fmt_number(low)} .. {fmt_number(high)}"

    emit(
        columns,
        rows,
        fmt,
        table_columns=["EXPERIMENT", "TRIALS", "OK", "FAILED", "RUNNING", "LAST RUN", "RESULT"],
        table_cells=lambda r: [
            r[0],
            str(r[1]),
            str(r[2]),
            str(r[3]),
            str(r[4]),
            fmt_time(r[6]),
            result(r[7], r[8], r[9], r[10]),
        ],
        right=[1, 2, 3, 4, 6],
    )


def _ls_trials(con: Any, experiment: str, limit: int | None, status: str | None, fmt: str) -> None:
    from tuixp.store import flags, queries

    require_experiment(con, experiment)
    # Queued trials are running ones none of whose steps has started: told apart below.
    stored = "running" if status == queries.QUEUED else status
    where = "experiment = ?" + (" AND status = ?" if stored else "")
    args: list[Any] = [experiment] + ([stored] if stored else [])
    total = con.execute(f"SELECT count(*) FROM trials WHERE {where}", args).fetchone()[0]
    requested = limit
    if stored == "running":
        limit = None  # a few: the split into queued and running is made here
    sql = (
        "SELECT trial_id, status, params, result, epoch(finished_at) - epoch(started_at), "
        "started_at, git_commit, git_dirty, changes, notes, CASE WHEN error_type IS NULL THEN "
        "NULL ELSE error_type || ': ' || error_message END "
        f"FROM trial_record WHERE {where} ORDER BY trial_id DESC"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    raw = con.execute(sql, args).fetchall()
    raw.reverse()
    firsts = queries.first_step_starts(con, experiment, [r[0] for r in raw if r[1] == "running"])
    raw = [
        (r[0], queries.shown_status(r[1], firsts.get(r[0])), *r[2:]) if r[1] == "running" else r
        for r in raw
    ]
    if status in ("running", queries.QUEUED):
        raw = [r for r in raw if r[1] == status]
        total = len(raw)
        raw = raw[-requested:] if requested is not None else raw
    rows = []
    for tid, st, params, result, elapsed, started, commit, dirty, changes, notes, error in raw:
        kinds = sorted(
            {c.get("kind", "?") for c in (loads_json(changes) or []) if isinstance(c, dict)}
        )
        rows.append(
            [
                experiment,
                tid,
                st,
                loads_json(params) or {},
                loads_json(result),
                elapsed,
                started,
                commit,
                bool(dirty),
                kinds,
                error,
                flags.text(changes, notes),
            ]
        )
    if fmt == "csv":
        from tuixp.store import queries

        names = queries.param_names(con, experiment)
        columns = [
            "experiment",
            "trial_id",
            "status",
            *names,
            "result",
            "elapsed_s",
            "started_at",
            "git_commit",
            "git_dirty",
            "changed",
            "error",
            "flags",
        ]
        flat = [
            [
                r[0],
                r[1],
                r[2],
                *(r[3].get(n) for n in names),
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                ",".join(r[9]),
                r[10],
                r[11],
            ]
            for r in rows
        ]
        emit(columns, flat, fmt)
    elif fmt == "json":
        columns = [
            "experiment",
            "trial_id",
            "status",
            "params",
            "result",
            "elapsed_s",
            "started_at",
            "git_commit",
            "git_dirty",
            "changed",
            "error",
            "flags",
        ]
        emit(columns, rows, fmt)
    else:
        # A table shows the parameters that differ between the rows it shows; the others are
        # named once below it, so the column stays readable at 80 columns.
        same = common_params([r[3] for r in rows]) if len(rows) > 1 else {}
        commits = {(r[7], r[8]) for r in rows}
        one_commit = len(rows) > 1 and len(commits) == 1 and rows[0][7] is not None
        table_rows = [
            [
                *r[:3],
                {k: v for k, v in r[3].items() if k not in same},
                *r[4:7],
                None if one_commit else r[7],
                *r[8:],
            ]
            for r in rows
        ]
        emit(
            [],
            table_rows,
            fmt,
            table_columns=[
                "TRIAL",
                "STATUS",
                flags.HEADER,
                "PARAMS",
                "RESULT",
                "ELAPSED",
                "STARTED",
                "COMMIT",
            ],
            table_cells=functools.partial(_trial_cells, clock=all(is_today(r[6]) for r in rows)),
            right=[0, 5],
            optional=[3, 7],
            keep=[3],
        )
        if same:
            typer.echo(f"same in every trial shown: {fmt_params(same)}", err=True)
        if one_commit:
            commit, dirty = rows[0][7], rows[0][8]
            typer.echo(
                f"every trial shown ran at commit {commit[:7]}"
                + (" with uncommitted changes" if dirty else ""),
                err=True,
            )
        if total > len(rows):
            typer.echo(
                f"latest {len(rows)} of {total} trials (--limit N or --all for more)", err=True
            )


def _trial_cells(r: Sequence[Any], clock: bool = False) -> list[str]:
    _, tid, st, params, result, elapsed, started, commit, dirty, kinds, error, marks = r
    shown = fmt_value(result) if st == "succeeded" else (error or "")
    return [
        str(tid),
        st,
        marks,
        fmt_params(params),
        shown,
        fmt_elapsed(elapsed) if st not in ("running", "queued") else "…",
        fmt_time(started, clock=clock),
        (commit[:7] + ("*" if dirty else "")) if commit else "",
    ]
