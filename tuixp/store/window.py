"""Windowed trial queries: one experiment's trials as a table that is never loaded whole.

The TUI's trial table asks for the rows on screen (plus a margin) through ``page``; counting,
sorting by any column (parameters and metrics included) and filtering by a condition happen in
DuckDB; the condition is parsed by ``tuixp.store.filters`` (trial columns only, no subquery, no
file), never passed on as typed. Every function takes an open connection and keeps nothing, so the
caller can open the store, ask, and close it again.

Columns a filter or a sort can name: the trial's own (``trial_id``, ``status``, ``result``,
``elapsed``, ``started``, ``finished``, ``seed``, ``commit``, ``branch``, ``dirty``, ``error``,
``host``, ``code_changed``, ``data_changed``, ``env_changed``, ``impure``: the change flags of
``tuixp.store.flags``), each parameter by its name and each
metric by its name (its value at the last epoch). A parameter or metric whose name is taken by an
earlier column is reachable as ``param_<name>`` or ``metric_<name>``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from tuixp.store import filters, flags
from tuixp.store.filters import FilterError

SAMPLE_TRIALS = 2000  # parameter names and types are read from the latest trials only
# Trials may hold parameters (or a result) of many MB, and the TUI gives DuckDB 128 MB: the
# table reads at most TEXT_LIMIT characters of each JSON text, and a parameter document longer
# than PARSE_LIMIT is not parsed in SQL (a filter or a sort sees NULL there). A longer document is
# read whole, one trial at a time, only to find its parameter names and cell values (cut to
# CELL_CHARS), and those are kept by trial (they never change).
TEXT_LIMIT = 64 * 1024
PARSE_LIMIT = 1024 * 1024
CELL_CHARS = 200
SORT_PREFIX = 256  # characters of a text parameter a sort compares


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
    Column(
        "elapsed",
        "trial",
        "coalesce(epoch(t.finished_at), epoch(now())) - epoch(t.started_at)",
        "DOUBLE",
    ),
    Column("started", "trial", "t.started_at", "TIMESTAMPTZ"),
    Column("finished", "trial", "t.finished_at", "TIMESTAMPTZ"),
    Column("seed", "trial", "t.seed", "BIGINT"),
    Column("commit", "trial", "t.git_commit"),
    Column("branch", "trial", "t.git_branch"),
    Column("dirty", "trial", "t.git_dirty", "BOOLEAN"),
    Column("error", "trial", "t.error_type || ': ' || t.error_message"),
    Column("host", "trial", "t.host"),
    Column(
        "code_changed",
        "trial",
        "coalesce(list_contains(json_extract_string(t.changes, '$[*].kind'), 'code'), false)",
        "BOOLEAN",
    ),
    Column(
        "data_changed",
        "trial",
        "coalesce(list_contains(json_extract_string(t.changes, '$[*].kind'), 'data'), false)",
        "BOOLEAN",
    ),
    Column(
        "env_changed",
        "trial",
        "coalesce(list_contains(json_extract_string(t.changes, '$[*].kind'), 'environment'),"
        " false)",
        "BOOLEAN",
    ),
    Column("impure", "trial", "coalesce(contains(t.notes, 'impure:'), false)", "BOOLEAN"),
)


@dataclass(frozen=True)
class Layout:
    """The columns of one experiment's trials: its own, its parameters, its metrics."""

    experiment: str
    params: tuple[Column, ...] = ()
    metrics: tuple[Column, ...] = ()
    unparsed: int = 0  # sampled trials whose parameters are too long to filter or sort by

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*TRIAL_COLUMNS, *self.params, *self.metrics)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise FilterError(
            f"No column named {name!r}. Columns: " + ", ".join(c.name for c in self.columns)
        )


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
    data_changed: bool = False

    @property
    def flags(self) -> str:
        """The change flags as every view shows them (``tuixp.store.flags``): ``C·E·``."""
        return flags.text(set_letters={f.letter for f in flags.FLAGS if getattr(self, f.name)})


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


def _cut_text(column: str) -> str:
    """SQL for the first TEXT_LIMIT characters of a JSON text column, and whether it was cut."""
    return f"left({column}, {TEXT_LIMIT}), length({column}) > {TEXT_LIMIT}"


_LARGE_PARAMS: dict[str, dict[str, Any]] = {}  # trial uuid -> its parameters, cells cut short
_LARGE_KEPT = 512


def _cell(value: Any) -> Any:
    """A parameter value as the table can hold it: long texts and containers cut short."""
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def _params_of(
    con: duckdb.DuckDBPyConnection, uuid: str, text: str | None, cut: bool
) -> dict[str, Any]:
    """A trial's parameters for the table from its (possibly cut) JSON text."""
    if not cut:
        values = _loads(text, {}) or {}
        return values if isinstance(values, dict) else {}
    found = _LARGE_PARAMS.get(uuid)
    if found is None:
        try:
            row = con.execute("SELECT params FROM trial_record WHERE uuid = ?", [uuid]).fetchone()
            whole = json.loads(row[0]) if row and row[0] else {}
            found = {k: _cell(v) for k, v in whole.items()} if isinstance(whole, dict) else {}
            del row, whole
        except (duckdb.OutOfMemoryException, ValueError):
            found = _prefix_params(text or "")  # too big even alone: what the first part holds
        if len(_LARGE_PARAMS) >= _LARGE_KEPT:
            _LARGE_PARAMS.pop(next(iter(_LARGE_PARAMS)))
        _LARGE_PARAMS[uuid] = found
    return found


_BLANKS = re.compile(r"[\s,:]*")


def _prefix_params(text: str) -> dict[str, Any]:
    """The parameters the first part of a JSON object's text holds; the value the cut falls in
    becomes its text so far, marked with "…"."""
    decoder = json.JSONDecoder()
    out: dict[str, Any] = {}
    at = text.find("{") + 1
    while 0 < at < len(text):
        at = _BLANKS.match(text, at).end()  # type: ignore[union-attr]
        if at >= len(text) or text[at] == "}":
            break
        try:
            key, at = decoder.raw_decode(text, at)
        except ValueError:
            break
        at = _BLANKS.match(text, at).end()  # type: ignore[union-attr]
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError:
            rest = text[at:]
            out[str(key)] = (rest[1:] if rest.startswith('"') else rest)[:CELL_CHARS] + "…"
            break
        out[str(key)] = _cell(value)
    return out


def layout(con: duckdb.DuckDBPyConnection, experiment: str) -> Layout:
    """Parameter names and types (from the latest trials) and metric names of ``experiment``."""
    rows = con.execute(
        f"SELECT uuid, {_cut_text('params')}, length(params) > {PARSE_LIMIT} FROM trial_record "
        "WHERE experiment = ? ORDER BY trial_id DESC LIMIT ?",
        [experiment, SAMPLE_TRIALS],
    ).fetchall()
    seen: dict[str, list[Any]] = {}
    for uuid, text, cut, _ in reversed(rows):
        for k, v in _params_of(con, uuid, text, cut).items():
            seen.setdefault(k, []).append(v)
    unparsed = sum(1 for row in rows if row[3])
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
        sql = f"CASE WHEN length(t.params) <= {PARSE_LIMIT} THEN {sql} END"
        col_name = name if name not in taken else f"param_{name}"
        taken.add(col_name)
        params.append(Column(col_name, "param", sql, typ, name))
    metric_names = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT name FROM metric_record WHERE experiment = ? ORDER BY name",
            [experiment],
        ).fetchall()
    ]
    metrics: list[Column] = []
    for name in metric_names:
        col_name = name if name not in taken else f"metric_{name}"
        taken.add(col_name)
        metrics.append(Column(col_name, "metric", f"m_{len(metrics)}.value", "DOUBLE", name))
    return Layout(experiment, tuple(params), tuple(metrics), unparsed)


RESULT = "(result)"  # the summary's series of trial results (not a metric name: not an identifier)


class MetricSummary:
    """Every trial's result and last value of every metric, of one experiment, kept between
    connections.

    Sorting a million trials by a metric needs each trial's last value; aggregating every metric
    row for it takes about a second and much memory, so the summary is built a slice of trials
    per ``refresh`` (the TUI calls it from a background worker, so the screen never waits for
    it) and then topped up: only trials that were running, or are new since, can gain metric rows or a
    result, so only those are read again. The count of metric rows and results checks it; a
    mismatch (a late journal from another process) starts a new build. Until it is ``ready``
    the queries sort in DuckDB. The results are the series ``RESULT``: sorted here, a sort by
    result needs no scan of the table.
    """

    SLICE = 25_000  # trials summarised per refresh while building (~45 ms at 7 rows a trial:
    # a read for the screen waits for one slice at most)

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment
        self.by_name: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # sorted ids, values
        self._counts: dict[str, np.ndarray] = {}  # metric rows per id, aligned with by_name
        self.rows = -1  # metric rows summarised; -1 until built
        self.settled_below = 0  # trials with a smaller id have all their metrics here
        self._build: tuple[int, int, int, dict[str, list[tuple[np.ndarray, ...]]]] | None = None
        self._orders: dict[str, tuple[tuple[int, ...], np.ndarray, np.ndarray]] = {}
        self.span: tuple[int, int, int] | None = None  # min id, max id, trials (last refresh)

    @property
    def ready(self) -> bool:
        return self.rows >= 0

    def refresh(self, con: duckdb.DuckDBPyConnection) -> bool:
        """One step towards an up-to-date summary; True if the summary changed."""
        row = con.execute(
            """
            SELECT (SELECT count(*) FROM metric_record WHERE experiment = $1)
                       + count(result_value),
                   (SELECT min(trial_id) FROM trial_record
                    WHERE experiment = $1 AND status = 'running'),
                   max(trial_id), min(trial_id), count(*)
            FROM trial_record WHERE experiment = $1
        """,
            [self.experiment],
        ).fetchall()[0]
        count, running, last = int(row[0]), row[1], int(row[2] or 0)
        self.span = (int(row[3] or 0), last, int(row[4]))
        settled = min(int(running), last + 1) if running is not None else last + 1
        if self.ready and count == self.rows:
            self.settled_below = settled  # every metric row in the store is summarised
            return False
        if self.ready and self._top_up(con, count):
            self.settled_below = settled
            return True
        return self._build_step(con, last, settled)

    def _build_step(self, con: duckdb.DuckDBPyConnection, last: int, settled: int) -> bool:
        if self._build is None:
            self._build = (1, last, settled, {})
        lo, hi, settled_at_start, parts = self._build
        top = min(hi + 1, lo + self.SLICE)
        for name, ids, values, counts in self._read(con, lo, top):
            parts.setdefault(name, []).append((ids, values, counts))
        if top <= hi:
            self._build = (top, hi, settled_at_start, parts)
            return False
        self._build = None
        self.by_name, self._counts = {}, {}
        for name, chunks in parts.items():
            self._set(name, *(np.concatenate([c[i] for c in chunks]) for i in range(3)))
        self.rows = self._total_rows()
        self.settled_below = settled_at_start
        return True

    def _read(
        self, con: duckdb.DuckDBPyConnection, lo: int, hi: int | None
    ) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
        bounds = "experiment = $1 AND trial_id >= $2" + (
            " AND trial_id < $3" if hi is not None else ""
        )
        args: list[Any] = [self.experiment, lo] + ([hi] if hi is not None else [])
        table = con.sql(
            "SELECT name, trial_id, arg_max(value, epoch) AS value, count(*)::INTEGER AS n "
            f"FROM metric_record WHERE {bounds} GROUP BY name, trial_id UNION ALL "
            f"SELECT {_quote_str(RESULT)}, trial_id, result_value, 1 FROM trial_record "
            f"WHERE {bounds} AND result_value IS NOT NULL",
            params=args,
        ).to_arrow_table()
        if not table.num_rows:
            return []
        # Names as dictionary codes: no Python string per row (a slice has ~350,000 rows).
        names = table["name"].combine_chunks().dictionary_encode()
        codes = names.indices.to_numpy(zero_copy_only=False)
        ids = table["trial_id"].to_numpy().astype(np.int32)
        values = table["value"].to_numpy(zero_copy_only=False).astype(np.float64)
        counts = table["n"].to_numpy().astype(np.int32)
        out = []
        for code, name in sorted(enumerate(names.dictionary.to_pylist()), key=lambda c: c[1]):
            sel = np.flatnonzero(codes == code)
            sel = sel[np.argsort(ids[sel], kind="stable")]  # by id: slices then just concatenate
            out.append((name, ids[sel], values[sel], counts[sel]))
        return out

    def _set(self, name: str, ids: np.ndarray, values: np.ndarray, counts: np.ndarray) -> None:
        if len(ids) > 1 and not bool((ids[1:] >= ids[:-1]).all()):
            order = np.argsort(ids, kind="stable")
            ids, values, counts = ids[order], values[order], counts[order]
        self.by_name[name] = (ids, values)
        self._counts[name] = counts

    def _total_rows(self) -> int:
        return int(sum(int(c.sum()) for c in self._counts.values()))

    def _top_up(self, con: duckdb.DuckDBPyConnection, count: int) -> bool:
        since = self.settled_below
        fresh = {
            name: (ids, values, counts)
            for name, ids, values, counts in self._read(con, since, None)
        }
        for name in set(self.by_name) | set(fresh):
            old_ids, old_values = self.by_name.get(
                name, (np.array([], np.int64), np.array([], np.float64))
            )
            old_counts = self._counts.get(name, np.array([], np.int64))
            keep = old_ids < since
            new = fresh.get(
                name, (np.array([], np.int64), np.array([], np.float64), np.array([], np.int64))
            )
            self._set(
                name,
                np.concatenate([old_ids[keep], new[0]]),
                np.concatenate([old_values[keep], new[1]]),
                np.concatenate([old_counts[keep], new[2]]),
            )
        if self._total_rows() == count:
            self.rows = count
            return True
        self.rows = -1  # a trial below ``since`` gained rows: build again from scratch
        return False

    def values(self, name: str, trial_ids: list[int]) -> dict[int, float]:
        """Last values of metric ``name`` for the given trials (those that have one)."""
        found = self.by_name.get(name)
        if found is None or not trial_ids or not len(found[0]):
            return {}
        ids, values = found
        want = np.asarray(trial_ids, dtype=np.int32)
        pos = np.searchsorted(ids, want)
        pos[pos >= len(ids)] = 0
        hit = ids[pos] == want
        return {int(t): float(v) for t, v, h in zip(want, values[pos], hit) if h}

    def order(self, name: str, descending: bool, lo: int, hi: int) -> np.ndarray:
        """Trial ids ``lo..hi`` (all of them) sorted by metric ``name``, as ``page`` sorts them:
        by value, then by id in the same direction, trials without the metric last (NaN counts
        as the largest value, as in DuckDB)."""
        ranked, missing = self._ascending(name, lo, hi)
        if descending:
            return np.concatenate([ranked[::-1], missing[::-1]])
        return np.concatenate([ranked, missing])

    def _order_key(self, lo: int, hi: int) -> tuple[int, int, int, int]:
        """What a sorted order depends on: the trials it covers and the summary's state."""
        return (lo, hi, self.rows, self.settled_below)

    def _sorted(self, name: str, lo: int, hi: int) -> bool:
        cached = self._orders.get(name)
        return cached is not None and cached[0] == self._order_key(lo, hi)

    def _dense_span(self) -> tuple[int, int] | None:
        """First and last id of the last refresh when no id is missing between them (only
        then are sorts done here; with gaps DuckDB sorts)."""
        if self.span is None:
            return None
        lo, hi, n = self.span
        return (lo, hi) if n and hi - lo + 1 == n else None

    def _ascending(self, name: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        key = self._order_key(lo, hi)
        if self._sorted(name, lo, hi):
            return self._orders[name][1], self._orders[name][2]
        ids, values = self.by_name.get(name, (np.array([], np.int64), np.array([], np.float64)))
        keep = (ids >= lo) & (ids <= hi)
        ids, values = ids[keep], values[keep]
        # ids are ascending: a stable sort by value breaks ties by ascending id, and read
        # backwards it is the descending order with ties by descending id.
        ranked = ids[np.argsort(values, kind="stable")]
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[ids - lo] = True
        missing = np.arange(lo, hi + 1, dtype=np.int32)[~present]
        self._orders[name] = (key, ranked, missing)
        return ranked, missing

    @property
    def prepared(self) -> bool:
        """Ready, and every series sorted for the trials of the last refresh (with gaps in the
        ids there is nothing to sort here)."""
        if not self.ready or self.span is None:
            return False
        span = self._dense_span()
        return span is None or all(self._sorted(name, *span) for name in self.by_name)

    def prepare(self, deadline: float, stop: Callable[[], bool] = lambda: False) -> None:
        """Sort every series ahead of time (while there is time), so the first sort is quick."""
        span = self._dense_span() if self.ready else None
        if span is None:
            return
        for name in sorted(self.by_name):
            if time.monotonic() >= deadline or stop():
                return
            self._ascending(name, *span)

    def arrow(self, name: str) -> pa.Table:
        ids, values = self.by_name.get(name, (np.array([], np.int64), np.array([], np.float64)))
        return pa.table({"trial_id": ids.astype(np.int32), "value": values})


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
    select = ", ".join(f"{c.sql} AS {_quote_ident(c.name)}" for c in needed)
    sort = lay.column(query.sort)
    if _sorts_by_prefix(sort):
        select += f", left({sort.sql}, {SORT_PREFIX}) AS _sort_key"
    inner = (
        f"SELECT t.uuid AS _uuid, {select} FROM trial_record t {' '.join(joins)} "
        "WHERE t.experiment = ?"
    )
    args.append(lay.experiment)
    sql = f"SELECT * FROM ({inner}) r" + (f" WHERE ({where})" if where else "")
    return sql, args


def _sorts_by_prefix(col: Column) -> bool:
    """A text parameter sorts by its first SORT_PREFIX characters: a sort keeps its keys in
    memory, and values of many MB would not fit."""
    return col.kind == "param" and col.type == "VARCHAR"


def _order(lay: Layout, query: TrialQuery) -> str:
    col = lay.column(query.sort)
    direction = "DESC" if query.descending else "ASC"
    tie = "" if col.name == "trial_id" else f", trial_id {direction}"
    key = "_sort_key" if _sorts_by_prefix(col) else _quote_ident(col.name)
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
    if not query.where.strip():
        row = con.execute(
            "SELECT count(*) FROM trial_record WHERE experiment = ?", [query.experiment]
        ).fetchall()
        return int(row[0][0]) if row else 0
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
    if (query.sort == "trial_id" or series is not None) and not query.where.strip():
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
    SELECT trial_id, status, {_cut_text("result")}, result_value, started_at, finished_at,
           git_commit, git_dirty, changes, notes, uuid, {_cut_text("params")},
           CASE WHEN error_type IS NULL THEN NULL ELSE error_type || ': ' || error_message END
    FROM trial_record"""


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
        keys = ", ".join(_quote_str(u) for u in uuids)
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
            """
            SELECT trial_id, name, arg_max(value, epoch) FROM metric_record
            WHERE experiment = ? AND trial_id BETWEEN ? AND ?
              AND trial_id IN (SELECT unnest(?::INTEGER[]))
            GROUP BY trial_id, name
        """,
            [exp, min(unsettled), max(unsettled), unsettled],
        ).fetchall():
            metrics.setdefault(tid, {})[name] = value
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
    ) in found:
        on = flags.letters(changes, notes)
        by_id[tid] = TrialRow(
            trial_id=tid,
            status=status,
            result=str(result)[:CELL_CHARS] + "…" if result_cut else _loads(result, None),
            result_value=rvalue,
            started_at=started,
            finished_at=finished,
            commit=commit,
            dirty=bool(dirty),
            code_changed="C" in on,
            env_changed="E" in on,
            impure="I" in on,
            params=_params_of(con, uuid, params, params_cut),
            metrics=metrics.get(tid, {}),
            error=error,
            data_changed="D" in on,
        )
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


def _loads(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- queued or running ------------------------------------------------------------------------
QUEUED = "queued"


def first_step_starts(
    con: duckdb.DuckDBPyConnection, experiment: str, trial_ids: list[int]
) -> dict[int, datetime]:
    """When the first step (not a reused one) of each of these trials started, if one has.

    A ``running`` trial that is not here is *queued*: it waits for the scheduler (a thread, a
    worker) and no step of it has started yet. Each step's start is journaled when it starts.
    """
    if not trial_ids:
        return {}
    rows = con.execute(
        """
        SELECT trial_id, min(started_at) FROM step_record
        WHERE experiment = ? AND trial_id BETWEEN ? AND ?
          AND trial_id IN (SELECT unnest(?::INTEGER[])) AND status <> 'reused'
        GROUP BY trial_id
    """,
        [experiment, min(trial_ids), max(trial_ids), trial_ids],
    ).fetchall()
    return {tid: started for tid, started in rows if started is not None}


def shown_status(status: str, first_step: datetime | None) -> str:
    """The status as people see it: a running trial none of whose steps has started is queued."""
    return QUEUED if status == "running" and first_step is None else status


# A trial's queued wait is in its notes: the note's text and its reader live in flags.py (the
# recorder writes it and must not import this module's pyarrow and numpy).
QUEUE_NOTE, queued_seconds = flags.QUEUE_NOTE, flags.queued_seconds


# -- what the trial detail screen shows, beyond tuixp.store.queries ----------------------------
def steps(con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int) -> list[dict[str, Any]]:
    """Per-step timings of a trial, in the order the steps started."""
    cur = con.execute(
        """
        SELECT step, key, status, started_at, finished_at,
               epoch(finished_at) - epoch(started_at) AS elapsed_s, worker, error, reused_from
        FROM step_record WHERE experiment = ? AND trial_id = ? ORDER BY started_at, key
    """,
        [experiment, trial_id],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def metric_series(
    con: duckdb.DuckDBPyConnection, experiment: str, trial_ids: list[int]
) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """Every metric of these trials: ``{metric: {trial_id: [(epoch, value), ...]}}``."""
    out: dict[str, dict[int, list[tuple[int, float]]]] = {}
    if not trial_ids:
        return out
    for name, tid, epoch, value in con.execute(
        """
        SELECT name, trial_id, epoch, value FROM metric_record
        WHERE experiment = ? AND list_contains(?, trial_id) ORDER BY name, trial_id, epoch
    """,
        [experiment, trial_ids],
    ).fetchall():
        out.setdefault(name, {}).setdefault(tid, []).append((epoch, value))
    return out


def persisted_outputs(
    con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int
) -> list[dict[str, Any]]:
    """The persisted step outputs of a trial: step, object hash, format, size in bytes."""
    cur = con.execute(
        """
        SELECT step, object_hash, format, size FROM persisted_record
        WHERE experiment = ? AND trial_id = ? ORDER BY step
    """,
        [experiment, trial_id],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def fingerprint(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """A cheap value that changes whenever trials are added, finish or change status."""
    row = con.execute("""
        SELECT count(*), max(trial_id), count(*) FILTER (WHERE status = 'running'),
               max(finished_at), (SELECT count(*) FROM metric_record)
        FROM trial_record
    """).fetchall()
    return tuple(row[0]) if row else ()
