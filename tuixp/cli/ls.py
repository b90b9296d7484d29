"""tuixp ls: the experiments in a store, or an experiment's latest trials."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
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
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            "-w",
            metavar="FILTER",
            show_default=False,
            help="Only trials matching FILTER, the TUI's filter: lr < 0.01 AND status = 'failed'.",
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            metavar="COLUMN[:desc]",
            show_default=False,
            help="The first trials by COLUMN (any column the filter knows), ascending or :desc.",
        ),
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            metavar="TAG",
            show_default=False,
            help="Only trials with this tag (repeat: all).",
        ),
    ] = None,
    starred: Annotated[bool, typer.Option("--starred", help="Only starred trials.")] = False,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="Only deleted trials (tuixp rm; tuixp restore).")
    ] = False,
    store: StoreOption = None,
    fmt: FormatOption = None,
) -> None:
    """List experiments, or an experiment's latest trials."""
    fmt = output_format(fmt)
    if limit < 1:
        raise CliError("--limit must be at least 1 (or use --all)")
    if status is not None and status not in STATUSES:
        raise CliError(f"unknown status {status!r}: use {', '.join(STATUSES[:-1])} or interrupted")
    order = parse_sort(sort) if sort is not None else None
    if experiment is None and (where is not None or sort is not None):
        raise CliError("--where and --sort list the trials of one experiment: give EXPERIMENT")

    from tuixp.store import annotation

    chosen = Chosen([annotation.check_tag(t) for t in tags or []], starred, deleted)
    if experiment is None and chosen.any:
        raise CliError("--tag, --starred and --deleted choose trials: give the EXPERIMENT")
    st = open_store(store_path(store, ctx))
    with st.connect() as con:
        if experiment is None:
            _ls_experiments(con, fmt)
        else:
            _ls_trials(
                con,
                experiment,
                None if all_trials else limit,
                status,
                fmt,
                where or "",
                order,
                chosen,
            )


def parse_sort(text: str) -> tuple[str, bool]:
    """``COLUMN``, ``COLUMN:asc`` or ``COLUMN:desc`` as (column, descending)."""
    column, _, direction = text.strip().partition(":")
    if not column.strip() or direction.strip().lower() not in ("", "asc", "desc"):
        raise CliError(f"--sort takes COLUMN, COLUMN:asc or COLUMN:desc, not {text!r}")
    return column.strip(), direction.strip().lower() == "desc"


@dataclass(frozen=True)
class Chosen:
    """Which trials by their annotations: with all these tags, starred, deleted (or not)."""

    tags: list[str]
    starred: bool = False
    deleted: bool = False

    @property
    def any(self) -> bool:
        return bool(self.tags or self.starred or self.deleted)

    def sql(self) -> tuple[str, tuple[Any, ...]]:
        """The condition over trial_record ``t`` (window.TrialQuery.only) and its arguments, for
        the star and the tags (the window leaves deleted trials out, or shows only them)."""
        chosen = "SELECT trial_uuid FROM trial_annotation WHERE "
        parts = [f"t.uuid IN ({chosen}starred)"] if self.starred else []
        parts += [f"t.uuid IN ({chosen}list_contains(tags, ?))"] * len(self.tags)
        return " AND ".join(parts), tuple(self.tags)


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


def _ls_trials(
    con: Any,
    experiment: str,
    limit: int | None,
    status: str | None,
    fmt: str,
    where: str = "",
    order: tuple[str, bool] | None = None,
    chosen: Chosen | None = None,
) -> None:
    from tuixp.store import flags, queries, window
    from tuixp.store.columns import Layout, layout
    from tuixp.store.filters import FilterError

    chosen = chosen or Chosen([])
    require_experiment(con, experiment)
    # Which trials, in which order: the TUI's window queries (tuixp.store.window), so the filter
    # and the sort are the TUI's. Queued trials are running ones none of whose steps has
    # started: told apart below.
    stored = "running" if status == queries.QUEUED else status
    condition = " AND ".join(
        [f"({where})"] * bool(where.strip()) + [f"status = '{stored}'"] * bool(stored)
    )
    sort, descending = order or ("trial_id", True)
    # The parameters and metrics are looked up only when the filter or the sort may name one.
    lay = layout(con, experiment) if where.strip() or order else Layout(experiment)
    only, only_args = chosen.sql()
    query = window.TrialQuery(
        experiment, condition, sort, descending, only, only_args, deleted=chosen.deleted
    )
    try:
        lay.column(sort)
    except FilterError as exc:
        raise CliError(f"--sort: {exc}") from None
    try:
        if where.strip():
            window.check_filter(where, lay)  # the person's own, before the status is added
    except FilterError as exc:
        raise CliError(f"--where: {exc}") from None
    try:
        total = window.count(con, lay, query)
        requested = limit
        if stored == "running":
            limit = None  # a few: the split into queued and running is made here
        ids = window.page_ids(con, lay, query, 0, total if limit is None else limit)
    except FilterError as exc:
        raise CliError(f"--where: {exc}") from None
    if order is None:
        ids.reverse()  # the latest trials, oldest first
    raw = _trial_rows(con, experiment, ids)
    firsts = queries.first_step_starts(con, experiment, [r[0] for r in raw if r[1] == "running"])
    raw = [
        (r[0], queries.shown_status(r[1], firsts.get(r[0])), *r[2:]) if r[1] == "running" else r
        for r in raw
    ]
    if status in ("running", queries.QUEUED):
        raw = [r for r in raw if r[1] == status]
        total = len(raw)
        if requested is not None:
            raw = raw[:requested] if order else raw[-requested:]
    rows = []
    for (
        tid,
        st,
        params,
        result,
        elapsed,
        started,
        commit,
        dirty,
        changes,
        notes,
        error,
        *labels,
    ) in raw:
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
                *labels,  # name, note, tags, starred, deleted_at (tuixp.store.annotation)
            ]
        )
    origins = _origins(con, experiment, [r[1] for r in rows])
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
            *LABEL_COLUMNS,
            "origin",
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
                r[12],
                r[13],
                ",".join(r[14]),
                r[15],
                r[16],
                origins.get(r[1]),
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
            *LABEL_COLUMNS,
            "origin",
        ]
        emit(columns, [[*r, origins.get(r[1])] for r in rows], fmt)
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
                "LABELS",
            ],
            table_cells=functools.partial(
                _trial_cells, clock=all(is_today(r[6]) for r in rows), origins=origins
            ),
            right=[0, 5],
            optional=[3, 7, 8],
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
            which = (
                f"first {len(rows)} of {total} trials by {sort}"
                + (" descending" if descending else "")
                if order
                else f"latest {len(rows)} of {total} trials"
            )
            typer.echo(
                f"{which}{' matching --where' if where.strip() else ''} (--limit N or --all for more)",
                err=True,
            )


def _trial_rows(con: Any, experiment: str, ids: list[int]) -> list[tuple[Any, ...]]:
    """What ``ls`` shows of these trials, in this order, with their annotations."""
    if not ids:
        return []
    found = con.execute(
        "SELECT t.trial_id, t.status, t.params, t.result, "
        "epoch(t.finished_at) - epoch(t.started_at), t.started_at, t.git_commit, t.git_dirty, "
        "t.changes, t.notes, CASE WHEN t.error_type IS NULL THEN NULL ELSE t.error_type || ': ' "
        "|| t.error_message END, a.name, a.note, coalesce(a.tags, []::VARCHAR[]), "
        "coalesce(a.starred, false), a.deleted_at "
        "FROM trial_record t LEFT JOIN trial_annotation a ON a.trial_uuid = t.uuid "
        "WHERE t.experiment = ? AND t.trial_id BETWEEN ? AND ? "
        "AND list_contains(?, t.trial_id)",
        [experiment, min(ids), max(ids), ids],
    ).fetchall()
    by_id = {r[0]: r for r in found}
    return [by_id[t] for t in ids if t in by_id]


LABEL_COLUMNS = ["name", "note", "tags", "starred", "deleted_at"]


def _labels(name: str | None, tags: list[str], starred: bool) -> str:
    """The star, the name and the tags of a trial, as a table shows them: ``★ baseline #paper``."""
    return " ".join(filter(None, ["★" if starred else "", name or "", *(f"#{t}" for t in tags)]))


def _origins(con: Any, experiment: str, ids: list[int]) -> dict[int, str]:
    """Where each merged trial among ``ids`` was recorded: ``{41: "gpu-box #12"}``
    (docs/sharing.md); a trial recorded in this store has none."""
    if not ids:
        return {}
    found = con.execute(
        "SELECT trial_id, host, origin_trial_id FROM trial_record WHERE experiment = ? "
        "AND trial_id BETWEEN ? AND ? AND list_contains(?, trial_id) "
        "AND origin_store IS NOT NULL",
        [experiment, min(ids), max(ids), ids],
    ).fetchall()
    from tuixp.store.merge import origin_label

    return {tid: origin_label(host, oid) for tid, host, oid in found}


def _trial_cells(
    r: Sequence[Any], clock: bool = False, origins: dict[int, str] | None = None
) -> list[str]:
    _, tid, st, params, result, elapsed, started, commit, dirty, kinds, error, marks = r[:12]
    name, _note, tags, starred, _deleted = r[12:17]
    shown = fmt_value(result) if st == "succeeded" else (error or "")
    origin = (origins or {}).get(tid)
    return [
        f"{tid} ({origin})" if origin else str(tid),
        st,
        marks,
        fmt_params(params),
        shown,
        fmt_elapsed(elapsed) if st not in ("running", "queued") else "…",
        fmt_time(started, clock=clock),
        (commit[:7] + ("*" if dirty else "")) if commit else "",
        _labels(name, tags, starred),
    ]
