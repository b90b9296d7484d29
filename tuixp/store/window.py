"""Windowed trial queries: one experiment's trials as a table that is never loaded whole.

The TUI's trial table asks for the rows on screen (plus a margin) through ``page``; counting,
sorting by any column (parameters and metrics included) and filtering with a SQL ``WHERE``
expression happen in DuckDB. Every function takes an open connection and keeps nothing, so the
caller can open the store, ask, and close it again.

Columns a filter or a sort can name: the trial's own (``trial_id``, ``status``, ``result``,
``elapsed``, ``started``, ``finished``, ``seed``, ``commit``, ``branch``, ``dirty``, ``error``,
``host``, ``code_changed``, ``env_changed``, ``impure``), each parameter by its name and each
metric by its name (its value at the last epoch). A parameter or metric whose name is taken by an
earlier column is reachable as ``param_<name>`` or ``metric_<name>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from tuixp.errors import TuixpError

SAMPLE_TRIALS = 2000  # parameter names and types are read from the latest trials only


class FilterError(TuixpError):
    """A filter expression that is not a valid, read-only SQL condition over the trial columns."""


@dataclass(frozen=True)
class Column:
    """A column of the trial table: ``name`` is what SQL filters and sorts use."""

    name: str
    kind: str  # "trial", "param" or "metric"
    sql: str  # the expression over trial_record ``t`` (params: over its JSON; metrics: joined)
    type: str = "VARCHAR"
    source: str = ""  # the parameter's or metric's own name

    @property
    def numeric(self) -> bool:
        return self.type in ("DOUBLE", "BIGINT", "INTEGER")


TRIAL_COLUMNS: tuple[Column, ...] = (
    Column("trial_id", "trial", "t.trial_id", "INTEGER"),
    Column("status", "trial", "t.status"),
    Column("result", "trial", "t.result_value", "DOUBLE"),
    Column("elapsed", "trial", "coalesce(epoch(t.finished_at), epoch(now())) - epoch(t.started_at)",
           "DOUBLE"),
    Column("started", "trial", "t.started_at", "TIMESTAMPTZ"),
    Column("finished", "trial", "t.finished_at", "TIMESTAMPTZ"),
    Column("seed", "trial", "t.seed", "BIGINT"),
    Column("commit", "trial", "t.git_commit"),
    Column("branch", "trial", "t.git_branch"),
    Column("dirty", "trial", "t.git_dirty", "BOOLEAN"),
    Column("error", "trial", "t.error_type || ': ' || t.error_message"),
    Column("host", "trial", "t.host"),
    Column("code_changed", "trial",
           "coalesce(list_contains(json_extract_string(t.changes, '$[*].kind'), 'code'), false)",
           "BOOLEAN"),
    Column("env_changed", "trial",
           "coalesce(list_contains(json_extract_string(t.changes, '$[*].kind'), 'environment'),"
           " false)", "BOOLEAN"),
    Column("impure", "trial", "coalesce(contains(t.notes, 'impure:'), false)", "BOOLEAN"),
)


@dataclass(frozen=True)
class Layout:
    """The columns of one experiment's trials: its own, its parameters, its metrics."""

    experiment: str
    params: tuple[Column, ...] = ()
    metrics: tuple[Column, ...] = ()

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*TRIAL_COLUMNS, *self.params, *self.metrics)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise FilterError(f"No column named {name!r}. Columns: "
                          + ", ".join(c.name for c in self.columns))


@dataclass(frozen=True)
class TrialQuery:
    """Which trials, in which order: an experiment, an optional WHERE expression, a sort."""

    experiment: str
    where: str = ""
    sort: str = "trial_id"
    descending: bool = True


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
    error: str | None = None


def _json_type(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int}:
        return "BIGINT"
    if kinds and kinds <= {int, float}:
        return "DOUBLE"
    if kinds == {bool}:
        return "BOOLEAN"
    return "VARCHAR"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def layout(con: duckdb.DuckDBPyConnection, experiment: str) -> Layout:
    """Parameter names and types (from the latest trials) and metric names of ``experiment``."""
    rows = con.execute(
        "SELECT params FROM trial_record WHERE experiment = ? ORDER BY trial_id DESC LIMIT ?",
        [experiment, SAMPLE_TRIALS]).fetchall()
    seen: dict[str, list[Any]] = {}
    for (text,) in reversed(rows):
        try:
            values = json.loads(text) if text else {}
        except ValueError:
            continue
        if isinstance(values, dict):
            for k, v in values.items():
                seen.setdefault(k, []).append(v)
    taken = {c.name for c in TRIAL_COLUMNS}
    params = []
    for name, values in seen.items():
        typ = _json_type(values)
        path = _quote_str("$." + json.dumps(name))
        if typ == "VARCHAR":
            sql = f"json_extract_string(t.params, {path})"
        elif typ == "BOOLEAN":
            sql = f"TRY_CAST(json_extract(t.params, {path}) AS BOOLEAN)"
        else:
            sql = f"TRY_CAST(json_extract(t.params, {path}) AS {typ})"
        col_name = name if name not in taken else f"param_{name}"
        taken.add(col_name)
        params.append(Column(col_name, "param", sql, typ, name))
    metric_names = [r[0] for r in con.execute(
        "SELECT DISTINCT name FROM metric_record WHERE experiment = ? ORDER BY name",
        [experiment]).fetchall()]
    metrics = []
    for name in metric_names:
        col_name = name if name not in taken else f"metric_{name}"
        taken.add(col_name)
        metrics.append(Column(col_name, "metric", f"m_{len(metrics)}.value", "DOUBLE", name))
    return Layout(experiment, tuple(params), tuple(metrics))


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_filter(where: str) -> str:
    """The filter as one read-only SQL expression, or a ``FilterError`` saying what is wrong."""
    text = where.strip()
    if not text:
        return ""
    probe = f"SELECT 1 FROM (SELECT 1) WHERE ({text})"
    try:
        statements = duckdb.extract_statements(probe)
    except duckdb.Error as exc:
        raise FilterError(f"Not a SQL condition: {_first_line(exc)}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise FilterError("A filter is one condition, such as: status = 'failed' AND lr > 0.01")
    return text


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _relation(lay: Layout, query: TrialQuery) -> tuple[str, list[Any]]:
    """SQL of the filtered relation with the columns the filter and sort need, and its args."""
    where = check_filter(query.where)
    words = set(_IDENT.findall(where)) | {query.sort}
    needed = [c for c in lay.columns if c.name == "trial_id" or c.name in words]
    joins = []
    args: list[Any] = []
    for i, c in enumerate(lay.metrics):
        if c in needed:
            joins.append(
                f"LEFT JOIN (SELECT trial_id, arg_max(value, epoch) AS value FROM metric_record "
                f"WHERE experiment = ? AND name = ? GROUP BY trial_id) m_{i} "
                f"ON m_{i}.trial_id = t.trial_id")
            args += [lay.experiment, c.source]
    select = ", ".join(f"{c.sql} AS {_quote_ident(c.name)}" for c in needed)
    inner = (f"SELECT t.uuid AS _uuid, {select} FROM trial_record t {' '.join(joins)} "
             "WHERE t.experiment = ?")
    args.append(lay.experiment)
    sql = f"SELECT * FROM ({inner}) r" + (f" WHERE ({where})" if where else "")
    return sql, args


def _order(lay: Layout, query: TrialQuery) -> str:
    col = lay.column(query.sort)
    direction = "DESC" if query.descending else "ASC"
    tie = "" if col.name == "trial_id" else f", trial_id {direction}"
    return f"ORDER BY {_quote_ident(col.name)} {direction} NULLS LAST{tie}"


def _run(con: duckdb.DuckDBPyConnection, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
    try:
        return con.execute(sql, args).fetchall()
    except (duckdb.BinderException, duckdb.ParserException, duckdb.ConversionException,
            duckdb.InvalidInputException, duckdb.CatalogException) as exc:
        raise FilterError(f"The filter does not work: {_first_line(exc)}") from None


def count(con: duckdb.DuckDBPyConnection, lay: Layout, query: TrialQuery) -> int:
    """How many trials the query selects."""
    if not query.where.strip():
        row = con.execute("SELECT count(*) FROM trial_record WHERE experiment = ?",
                          [query.experiment]).fetchone()
        return int(row[0]) if row else 0
    sql, args = _relation(lay, query)
    return int(_run(con, f"SELECT count(*) FROM ({sql})", args)[0][0])


def page_ids(con: duckdb.DuckDBPyConnection, lay: Layout, query: TrialQuery, offset: int,
             limit: int) -> list[int]:
    """Trial ids of rows ``offset`` to ``offset + limit`` of the query's order."""
    if limit <= 0:
        return []
    sql, args = _relation(lay, query)
    rows = _run(con, f"SELECT trial_id FROM ({sql}) {_order(lay, query)} LIMIT ? OFFSET ?",
                [*args, limit, max(0, offset)])
    return [r[0] for r in rows]


def rows_for(con: duckdb.DuckDBPyConnection, lay: Layout, trial_ids: list[int]) -> list[TrialRow]:
    """The table rows of these trials, in the order given."""
    if not trial_ids:
        return []
    exp = lay.experiment
    found = con.execute("""
        SELECT trial_id, status, result, result_value, started_at, finished_at, git_commit,
               git_dirty, changes, notes, params,
               CASE WHEN error_type IS NULL THEN NULL ELSE error_type || ': ' || error_message END
        FROM trial_record WHERE experiment = ? AND trial_id BETWEEN ? AND ?
          AND list_contains(?, trial_id)
    """, [exp, min(trial_ids), max(trial_ids), trial_ids]).fetchall()
    metrics: dict[int, dict[str, float]] = {}
    if lay.metrics:
        for tid, name, value in con.execute("""
            SELECT trial_id, name, arg_max(value, epoch) FROM metric_record
            WHERE experiment = ? AND trial_id BETWEEN ? AND ? AND list_contains(?, trial_id)
            GROUP BY trial_id, name
        """, [exp, min(trial_ids), max(trial_ids), trial_ids]).fetchall():
            metrics.setdefault(tid, {})[name] = value
    by_id: dict[int, TrialRow] = {}
    for (tid, status, result, rvalue, started, finished, commit, dirty, changes, notes, params,
         error) in found:
        kinds = {c.get("kind") for c in _loads(changes, [])
                 if isinstance(c, dict)}
        by_id[tid] = TrialRow(
            trial_id=tid, status=status, result=_loads(result, None), result_value=rvalue,
            started_at=started, finished_at=finished, commit=commit, dirty=bool(dirty),
            code_changed="code" in kinds, env_changed="environment" in kinds,
            impure=any(str(n).startswith("impure:") for n in _loads(notes, []) or []),
            params=_loads(params, {}) or {}, metrics=metrics.get(tid, {}), error=error)
    return [by_id[t] for t in trial_ids if t in by_id]


def page(con: duckdb.DuckDBPyConnection, lay: Layout, query: TrialQuery, offset: int,
         limit: int) -> list[TrialRow]:
    """Rows ``offset`` to ``offset + limit`` of the query, ready to show."""
    return rows_for(con, lay, page_ids(con, lay, query, offset, limit))


def position(con: duckdb.DuckDBPyConnection, lay: Layout, query: TrialQuery,
             trial_id: int) -> int | None:
    """The row index of ``trial_id`` under the query's order, or None if it is not selected."""
    sql, args = _relation(lay, query)
    rows = _run(con, f"""
        SELECT n FROM (SELECT trial_id, row_number() OVER ({_order(lay, query)}) - 1 AS n
                       FROM ({sql})) WHERE trial_id = ?""", [*args, trial_id])
    return int(rows[0][0]) if rows else None


def _loads(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- what the trial detail screen shows, beyond tuixp.store.queries ----------------------------
def steps(con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int) -> list[dict[str, Any]]:
    """Per-step timings of a trial, in the order the steps started."""
    cur = con.execute("""
        SELECT step, key, status, started_at, finished_at,
               epoch(finished_at) - epoch(started_at) AS elapsed_s, worker, error, reused_from
        FROM step_record WHERE experiment = ? AND trial_id = ? ORDER BY started_at, key
    """, [experiment, trial_id])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def metric_series(con: duckdb.DuckDBPyConnection, experiment: str,
                  trial_ids: list[int]) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """Every metric of these trials: ``{metric: {trial_id: [(epoch, value), ...]}}``."""
    out: dict[str, dict[int, list[tuple[int, float]]]] = {}
    if not trial_ids:
        return out
    for name, tid, epoch, value in con.execute("""
        SELECT name, trial_id, epoch, value FROM metric_record
        WHERE experiment = ? AND list_contains(?, trial_id) ORDER BY name, trial_id, epoch
    """, [experiment, trial_ids]).fetchall():
        out.setdefault(name, {}).setdefault(tid, []).append((epoch, value))
    return out


def persisted_outputs(con: duckdb.DuckDBPyConnection, experiment: str,
                      trial_id: int) -> list[dict[str, Any]]:
    """The persisted step outputs of a trial: step, object hash, format, size in bytes."""
    cur = con.execute("""
        SELECT step, object_hash, format, size FROM persisted_record
        WHERE experiment = ? AND trial_id = ? ORDER BY step
    """, [experiment, trial_id])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def fingerprint(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """A cheap value that changes whenever trials are added, finish or change status."""
    row = con.execute("""
        SELECT count(*), max(trial_id), count(*) FILTER (WHERE status = 'running'),
               max(finished_at), (SELECT count(*) FROM metric_record)
        FROM trial_record
    """).fetchone()
    return tuple(row) if row else ()
