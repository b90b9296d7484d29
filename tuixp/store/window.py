"""Windowed trial queries: one experiment's trials as a table that is never loaded whole.

The TUI's trial table asks for the rows on screen (plus a margin) through ``page``; counting,
sorting by any column (parameters and metrics included) and filtering by a condition happen in
DuckDB; the condition is parsed by ``tuixp.store.filters`` (trial columns only, no subquery, no
file), never passed on as typed. Every function takes an open connection and keeps nothing, so the
caller can open the store, ask, and close it again.

The columns a filter or a sort can name are ``tuixp.store.columns``; sorts by a metric or the
result read ``tuixp.store.summary`` when it is ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from tuixp.store import filters, flags
from tuixp.store.columns import (
    CELL_CHARS,
    SORT_PREFIX,
    Column,
    Layout,
    cut_text,
    loads,
    params_of,
    quote_ident,
    quote_str,
)
from tuixp.store.filters import FilterError
from tuixp.store.metric_names import user_metric_sql
from tuixp.store.queries import first_step_starts, shown_status
from tuixp.store.summary import RESULT, MetricSummary


@dataclass(frozen=True)
class TrialQuery:
    """Which trials, in which order: an experiment, an optional WHERE expression, a sort."""

    experiment: str
    where: str = ""
    sort: str = "trial_id"
    descending: bool = True
    # A condition over trial_record ``t`` made by tuixp itself (never a person's text), with its
    # arguments: e.g. the trials chosen by their annotations (tuixp.store.annotation.chosen_sql).
    only: str = ""
    only_args: tuple[Any, ...] = ()

    @property
    def narrowed(self) -> bool:
        """Whether it selects fewer than all the experiment's trials."""
        return bool(self.where.strip() or self.only)

    deleted: bool = False  # the deleted trials (tuixp rm), instead of the others


@dataclass
class TrialRow:
    """One row of the table, as shown: the trial's own fields, parameters and last metrics."""

    trial_id: int
    status: str
    result: Any
    result_value: float | None
    started_at: datetime | None
    finished_at: datetime | None
    commit: str | None
    dirty: bool
    code_changed: bool
    env_changed: bool
    impure: bool
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)  # each metric's best, by its goal
    error: str | None = None
    data_changed: bool = False
    origin: str | None = None  # a merged trial's "gpu-box #12" (docs/sharing.md)
    starred: bool = False  # the trial's annotations (tuixp.store.annotation)
    tags: list[str] = field(default_factory=list)
    name: str | None = None
    note: str | None = None

    @property
    def flags(self) -> str:
        """The change flags as every view shows them (``tuixp.store.flags``): ``C·E·``."""
        return flags.text(set_letters={f.letter for f in flags.FLAGS if getattr(self, f.name)})


def check_filter(where: str, lay: Layout) -> filters.Filter:
    """The filter parsed over ``lay``'s columns (see ``tuixp.store.filters``), or a
    ``FilterError`` saying what is wrong. Only the SQL written from the parse reaches DuckDB."""
    return filters.parse(where, [c.name for c in lay.columns])


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _relation(
    lay: Layout,
    query: TrialQuery,
    con: duckdb.DuckDBPyConnection | None = None,
    summary: MetricSummary | None = None,
) -> tuple[str, list[Any]]:
    """SQL of the filtered relation with the columns the filter and sort need, and its args.

    Metric columns join the in-memory ``summary`` (registered on ``con``) when it is ready,
    and aggregate the metric rows otherwise.
    """
    parsed = check_filter(query.where, lay)
    where = parsed.sql
    words = parsed.columns | {query.sort}
    needed = [c for c in lay.columns if c.name == "trial_id" or c.name in words]
    joins = []
    args: list[Any] = []
    for i, c in enumerate(lay.metrics):
        if c not in needed:
            continue
        if summary is not None and summary.ready and con is not None:
            con.register(f"_tuixp_metric_{i}", summary.arrow(c.source))
            source = f"_tuixp_metric_{i}"
        else:
            source = (
                "(SELECT trial_id, arg_max(value, epoch) AS value FROM metric_record "
                "WHERE experiment = ? AND name = ? GROUP BY trial_id)"
            )
            args += [lay.experiment, c.source]
        joins.append(f"LEFT JOIN {source} m_{i} ON m_{i}.trial_id = t.trial_id")
    for i, c in enumerate(lay.bests):
        if c in needed:
            joins.append(
                f"LEFT JOIN (SELECT trial_id, best FROM metric_best WHERE experiment = ? "
                f"AND name = ?) b_{i} ON b_{i}.trial_id = t.trial_id"
            )
            args += [lay.experiment, c.source]
    select = ", ".join(f"{c.sql} AS {quote_ident(c.name)}" for c in needed)
    sort = lay.column(query.sort)
    if _sorts_by_prefix(sort):
        select += f", left({sort.sql}, {SORT_PREFIX}) AS _sort_key"
    inner = (
        f"SELECT t.uuid AS _uuid, {select} FROM trial_record t {ANNOTATED} {' '.join(joins)} "
        f"WHERE t.experiment = ? AND {_shown(query)}"
        + (f" AND ({query.only})" if query.only else "")
    )
    args += [lay.experiment, *query.only_args]
    sql = f"SELECT * FROM ({inner}) r" + (f" WHERE ({where})" if where else "")
    return sql, args


# Every trial with its annotations (``a``): deleted trials are shown only when asked for.
ANNOTATED = "LEFT JOIN trial_annotation a ON a.trial_uuid = t.uuid"


def _shown(query: TrialQuery) -> str:
    return "a.deleted_at IS NOT NULL" if query.deleted else "a.deleted_at IS NULL"


def deleted_count(con: duckdb.DuckDBPyConnection, experiment: str) -> int:
    """How many of the experiment's trials are deleted (soft: ``tuixp rm``)."""
    row = con.execute(
        "SELECT count(*) FROM trial_annotation a JOIN trial_record t ON t.uuid = a.trial_uuid "
        "WHERE t.experiment = ? AND a.deleted_at IS NOT NULL",
        [experiment],
    ).fetchall()
    return int(row[0][0]) if row else 0


def _sorts_by_prefix(col: Column) -> bool:
    """A text parameter sorts by its first SORT_PREFIX characters: a sort keeps its keys in
    memory, and values of many MB would not fit."""
    return col.kind == "param" and col.type == "VARCHAR"


def _order(lay: Layout, query: TrialQuery) -> str:
    col = lay.column(query.sort)
    direction = "DESC" if query.descending else "ASC"
    tie = "" if col.name == "trial_id" else f", trial_id {direction}"
    key = "_sort_key" if _sorts_by_prefix(col) else quote_ident(col.name)
    return f"ORDER BY {key} {direction} NULLS LAST{tie}"


def _run(con: duckdb.DuckDBPyConnection, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
    try:
        return con.execute(sql, args).fetchall()
    except (
        duckdb.BinderException,
        duckdb.ParserException,
        duckdb.ConversionException,
        duckdb.InvalidInputException,
        duckdb.CatalogException,
    ) as exc:
        raise FilterError(f"The filter does not work: {_first_line(exc)}") from None


def count(
    con: duckdb.DuckDBPyConnection,
    lay: Layout,
    query: TrialQuery,
    summary: MetricSummary | None = None,
) -> int:
    """How many trials the query selects."""
    if not query.narrowed:
        gone = deleted_count(con, query.experiment)
        if query.deleted:
            return gone
        row = con.execute(
            "SELECT count(*) FROM trial_record WHERE experiment = ?", [query.experiment]
        ).fetchall()
        return (int(row[0][0]) if row else 0) - gone
    sql, args = _relation(lay, query, con, summary)
    return int(_run(con, f"SELECT count(*) FROM ({sql})", args)[0][0])


def page_ids(
    con: duckdb.DuckDBPyConnection,
    lay: Layout,
    query: TrialQuery,
    offset: int,
    limit: int,
    summary: MetricSummary | None = None,
) -> list[int]:
    """Trial ids of rows ``offset`` to ``offset + limit`` of the query's order."""
    return [tid for tid, _ in _page_keys(con, lay, query, offset, limit, summary)]


def _page_keys(
    con: duckdb.DuckDBPyConnection,
    lay: Layout,
    query: TrialQuery,
    offset: int,
    limit: int,
    summary: MetricSummary | None,
) -> list[tuple[int, str]]:
    if limit <= 0:
        return []
    series = None  # the summary's series to sort by, when it holds the sort column
    if summary is not None and summary.ready:
        metric = next((c for c in lay.metrics if c.name == query.sort), None)
        series = RESULT if query.sort == "result" else metric.source if metric else None
    fast = not query.narrowed and not query.deleted
    if fast and (query.sort == "trial_id" or series is not None):
        # Deleted trials are gaps in the ids: with any, the query below sorts instead.
        fast = deleted_count(con, query.experiment) == 0
    if fast and (query.sort == "trial_id" or series is not None):
        # Trial ids are handed out one after the other, so in the default order row i is
        # usually trial max - i: read that range (zone maps skip the rest) instead of sorting
        # every trial to skip ``offset`` of them. Gaps (ids never recorded) fall back to sorting.
        lo, hi, n = con.execute(
            "SELECT min(trial_id), max(trial_id), count(*) FROM trial_record WHERE experiment = ?",
            [query.experiment],
        ).fetchall()[0]
        if n and hi - lo + 1 == n and series is not None and summary is not None:
            # Sorted by the result or a metric, every trial's value in memory: sort there, once.
            ids = summary.order(series, query.descending, lo, hi)[offset : offset + limit]
            return [(int(t), "") for t in ids]
        if n and hi - lo + 1 == n and query.sort == "trial_id":
            first, last = (
                (hi - offset - limit + 1, hi - offset)
                if query.descending
                else (lo + offset, lo + offset + limit - 1)
            )
            rows = con.execute(
                "SELECT trial_id, uuid FROM trial_record WHERE experiment = ? "
                f"AND trial_id BETWEEN ? AND ? ORDER BY trial_id {'DESC' if query.descending else ''}",
                [query.experiment, max(first, lo), min(last, hi)],
            ).fetchall()
            return [(r[0], r[1]) for r in rows]
    sql, args = _relation(lay, query, con, summary)
    rows = _run(
        con,
        f"SELECT trial_id, _uuid FROM ({sql}) {_order(lay, query)} LIMIT ? OFFSET ?",
        [*args, limit, max(0, offset)],
    )
    return [(r[0], r[1]) for r in rows]


_ROW_COLUMNS = f"""
    SELECT trial_id, status, {cut_text("result")}, result_value, started_at, finished_at,
           git_commit, git_dirty, changes, notes, uuid, {cut_text("params")},
           CASE WHEN error_type IS NULL THEN NULL ELSE error_type || ': ' || error_message END,
           CASE WHEN origin_store IS NULL THEN NULL
                ELSE coalesce(host, '?') || ' #' || origin_trial_id END
    FROM trial_record"""


def _annotations_of(con: duckdb.DuckDBPyConnection, uuids: list[str]) -> dict[str, tuple[Any, ...]]:
    """``{trial uuid: (starred, tags, name, note)}`` of the annotated ones among these trials."""
    if not uuids:
        return {}
    return {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT trial_uuid, starred, tags, name, note FROM trial_annotation "
            "WHERE list_contains(?, trial_uuid)",
            [uuids],
        ).fetchall()
    }


def rows_for(
    con: duckdb.DuckDBPyConnection,
    lay: Layout,
    trial_ids: list[int],
    summary: MetricSummary | None = None,
    uuids: list[str] | None = None,
) -> list[TrialRow]:
    """The table rows of these trials, in the order given (metrics from ``summary`` if ready).

    With ``uuids`` (the same trials' keys) the rows come through the primary key's index: a
    window of a million trials sorted by anything is scattered over the whole table.
    """
    if not trial_ids:
        return []
    exp = lay.experiment
    if uuids:
        keys = ", ".join(quote_str(u) for u in uuids)
        found = con.execute(f"{_ROW_COLUMNS} WHERE uuid IN ({keys})").fetchall()
    else:
        found = con.execute(
            f"""{_ROW_COLUMNS} WHERE experiment = ? AND trial_id BETWEEN ? AND ?
              AND trial_id IN (SELECT unnest(?::INTEGER[]))""",
            [exp, min(trial_ids), max(trial_ids), trial_ids],
        ).fetchall()
    metrics: dict[int, dict[str, float]] = {}
    unsettled = list(trial_ids)
    if lay.metrics and summary is not None and summary.ready:
        settled = [t for t in trial_ids if t < summary.settled_below]
        unsettled = [t for t in trial_ids if t >= summary.settled_below]
        for c in lay.metrics:
            for tid, value in summary.values(c.source, settled).items():
                metrics.setdefault(tid, {})[c.source] = value
    if lay.metrics and unsettled:
        for tid, name, value in con.execute(
            f"""
            SELECT trial_id, name, arg_max(value, epoch) FROM metric_record
            WHERE experiment = ? AND trial_id BETWEEN ? AND ?
              AND trial_id IN (SELECT unnest(?::INTEGER[])) AND {user_metric_sql()}
            GROUP BY trial_id, name
        """,
            [exp, min(unsettled), max(unsettled), unsettled],
        ).fetchall():
            metrics.setdefault(tid, {})[name] = value
    best: dict[int, dict[str, float]] = {}
    if lay.bests:
        for tid, name, value in con.execute(
            """
            SELECT trial_id, name, best FROM metric_best
            WHERE experiment = ? AND trial_id BETWEEN ? AND ?
              AND trial_id IN (SELECT unnest(?::INTEGER[]))
        """,
            [exp, min(trial_ids), max(trial_ids), trial_ids],
        ).fetchall():
            best.setdefault(tid, {})[name] = value
    by_id: dict[int, TrialRow] = {}
    for (
        tid,
        status,
        result,
        result_cut,
        rvalue,
        started,
        finished,
        commit,
        dirty,
        changes,
        notes,
        uuid,
        params,
        params_cut,
        error,
        origin,
    ) in found:
        on = flags.letters(changes, notes)
        by_id[tid] = TrialRow(
            trial_id=tid,
            status=status,
            result=str(result)[:CELL_CHARS] + "…" if result_cut else loads(result, None),
            result_value=rvalue,
            started_at=started,
            finished_at=finished,
            commit=commit,
            dirty=bool(dirty),
            code_changed="C" in on,
            env_changed="E" in on,
            impure="I" in on,
            params=params_of(con, uuid, params, params_cut),
            metrics=metrics.get(tid, {}),
            best=best.get(tid, {}),
            error=error,
            data_changed="D" in on,
            origin=origin,
        )
    notes_of = _annotations_of(con, [r[11] for r in found])
    for r in found:
        marks = notes_of.get(r[11])
        if marks is not None:
            row = by_id[r[0]]
            row.starred, row.tags, row.name, row.note = bool(marks[0]), list(marks[1]), *marks[2:]
    running = [tid for tid, row in by_id.items() if row.status == "running"]
    if running:
        # Queued or running, and a running trial's time counts from its first step's start.
        firsts = first_step_starts(con, exp, running)
        for tid in running:
            by_id[tid].status = shown_status("running", firsts.get(tid))
            by_id[tid].started_at = firsts.get(tid, by_id[tid].started_at)
    return [by_id[t] for t in trial_ids if t in by_id]


def page(
    con: duckdb.DuckDBPyConnection,
    lay: Layout,
    query: TrialQuery,
    offset: int,
    limit: int,
    summary: MetricSummary | None = None,
) -> list[TrialRow]:
    """Rows ``offset`` to ``offset + limit`` of the query, ready to show."""
    keys = _page_keys(con, lay, query, offset, limit, summary)
    uuids = [k[1] for k in keys]
    return rows_for(con, lay, [k[0] for k in keys], summary, uuids if all(uuids) else None)


def position(
    con: duckdb.DuckDBPyConnection,
    lay: Layout,
    query: TrialQuery,
    trial_id: int,
    summary: MetricSummary | None = None,
) -> int | None:
    """The row index of ``trial_id`` under the query's order, or None if it is not selected."""
    sql, args = _relation(lay, query, con, summary)
    rows = _run(
        con,
        f"""
        SELECT n FROM (SELECT trial_id, row_number() OVER ({_order(lay, query)}) - 1 AS n
                       FROM ({sql})) WHERE trial_id = ?""",
        [*args, trial_id],
    )
    return int(rows[0][0]) if rows else None


def fingerprint(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """A cheap value that changes whenever trials are added, finish or change status."""
    row = con.execute("""
        SELECT count(*), max(trial_id), count(*) FILTER (WHERE status = 'running'),
               max(finished_at), (SELECT count(*) FROM metric_record),
               (SELECT count(*) FROM annotation_record)
        FROM trial_record
    """).fetchall()
    return tuple(row[0]) if row else ()
