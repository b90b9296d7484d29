"""The columns of the trial table: what a filter or a sort can name, and how a cell is read.

One place for the column list (``TRIAL_COLUMNS``, then each parameter and metric of the
experiment: ``layout``); the filter grammar over these names is ``tuixp.store.filters``, the
windowed queries over them ``tuixp.store.window``.

Columns a filter or a sort can name: the trial's own (``trial_id``, ``status``, ``result``,
``elapsed``, ``started``, ``finished``, ``seed``, ``commit``, ``branch``, ``dirty``, ``error``,
``host``, ``code_changed``, ``data_changed``, ``env_changed``, ``impure``: the change flags of
``tuixp.store.flags``; ``origin``, ``merged``: where a merged trial was recorded), each parameter by its name and each
metric by its name (its value at the last epoch) and its best value as ``best_<name>`` (by the
metric's goal: view ``metric_best``). A parameter or metric whose name is taken by an earlier
column is reachable as ``param_<name>`` or ``metric_<name>``. System metrics (``sys/...``) are
no column: they never count in a sort. Then the trial's annotations: ``starred``, ``tags``
(a list: ``contains(tags, 'paper')``), ``name``, ``note`` (``trial_<name>`` when a parameter or
metric has the name).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import duckdb

from tuixp.store.filters import FilterError
from tuixp.store.metric_names import user_metric_sql

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
    kind: str  # "trial", "param", "metric" or "best" (a metric's best value)
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
    # Sharing (docs/sharing.md): where a merged trial was recorded, "gpu-box #12" (NULL for a
    # trial recorded here), and whether it was merged from another store.
    Column(
        "origin",
        "trial",
        "CASE WHEN t.origin_store IS NULL THEN NULL "
        "ELSE coalesce(t.host, '?') || ' #' || t.origin_trial_id END",
    ),
    Column("merged", "trial", "t.origin_store IS NOT NULL", "BOOLEAN"),
)


# A trial's annotations (tuixp.store.annotation), over ``a``, the trial_annotation view joined
# to every trial. They come after the parameters and metrics: a parameter named ``name`` keeps
# its name, and the annotation is then ``trial_name``.
ANNOTATION_COLUMNS: tuple[Column, ...] = (
    Column("starred", "annotation", "coalesce(a.starred, false)", "BOOLEAN"),
    Column("tags", "annotation", "coalesce(a.tags, []::VARCHAR[])", "VARCHAR[]"),
    Column("name", "annotation", "a.name"),
    Column("note", "annotation", "a.note"),
)


@dataclass(frozen=True)
class Layout:
    """The columns of one experiment's trials: its own, its parameters, its metrics."""

    experiment: str
    params: tuple[Column, ...] = ()
    metrics: tuple[Column, ...] = ()
    unparsed: int = 0  # sampled trials whose parameters are too long to filter or sort by
    bests: tuple[Column, ...] = ()  # each metric's best value (``metric_best``), by the metric

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*TRIAL_COLUMNS, *self.params, *self.metrics, *self.bests, *self.annotations)

    @property
    def annotations(self) -> tuple[Column, ...]:
        """The annotation columns, each renamed ``trial_<name>`` when a parameter or a metric
        has its name."""
        taken = {c.name for c in (*TRIAL_COLUMNS, *self.params, *self.metrics, *self.bests)}
        return tuple(
            c if c.name not in taken else Column(f"trial_{c.name}", c.kind, c.sql, c.type)
            for c in ANNOTATION_COLUMNS
        )

    def annotation(self, name: str) -> Column:
        """The annotation column ``name`` (``starred``, ``tags``, ``name``, ``note``) under the
        name it has in this layout (``trial_<name>`` when a parameter or metric took it)."""
        for base, c in zip(ANNOTATION_COLUMNS, self.annotations):
            if base.name == name:
                return c
        raise KeyError(name)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise FilterError(
            f"No column named {name!r}. Columns: " + ", ".join(c.name for c in self.columns)
        )


def _json_type(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int}:
        return "BIGINT"
    if kinds and kinds <= {int, float}:
        return "DOUBLE"
    if kinds == {bool}:
        return "BOOLEAN"
    return "VARCHAR"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def cut_text(column: str) -> str:
    """SQL for the first TEXT_LIMIT characters of a JSON text column, and whether it was cut."""
    return f"left({column}, {TEXT_LIMIT}), length({column}) > {TEXT_LIMIT}"


_LARGE_PARAMS: dict[str, dict[str, Any]] = {}  # trial uuid -> its parameters, cells cut short
_LARGE_KEPT = 512


def cell(value: Any) -> Any:
    """A parameter value as the table can hold it: long texts and containers cut short."""
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def params_of(
    con: duckdb.DuckDBPyConnection, uuid: str, text: str | None, cut: bool
) -> dict[str, Any]:
    """A trial's parameters for the table from its (possibly cut) JSON text."""
    if not cut:
        values = loads(text, {}) or {}
        return values if isinstance(values, dict) else {}
    found = _LARGE_PARAMS.get(uuid)
    if found is None:
        try:
            row = con.execute("SELECT params FROM trial_record WHERE uuid = ?", [uuid]).fetchone()
            whole = json.loads(row[0]) if row and row[0] else {}
            found = {k: cell(v) for k, v in whole.items()} if isinstance(whole, dict) else {}
            del row, whole
        except (duckdb.OutOfMemoryException, ValueError):
            found = prefix_params(text or "")  # too big even alone: what the first part holds
        if len(_LARGE_PARAMS) >= _LARGE_KEPT:
            _LARGE_PARAMS.pop(next(iter(_LARGE_PARAMS)))
        _LARGE_PARAMS[uuid] = found
    return found


_BLANKS = re.compile(r"[\s,:]*")


def prefix_params(text: str) -> dict[str, Any]:
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
        out[str(key)] = cell(value)
    return out


def layout(con: duckdb.DuckDBPyConnection, experiment: str) -> Layout:
    """Parameter names and types (from the latest trials) and metric names of ``experiment``."""
    rows = con.execute(
        f"SELECT uuid, {cut_text('params')}, length(params) > {PARSE_LIMIT} FROM trial_record "
        "WHERE experiment = ? ORDER BY trial_id DESC LIMIT ?",
        [experiment, SAMPLE_TRIALS],
    ).fetchall()
    seen: dict[str, list[Any]] = {}
    for uuid, text, cut, _ in reversed(rows):
        for k, v in params_of(con, uuid, text, cut).items():
            seen.setdefault(k, []).append(v)
    unparsed = sum(1 for row in rows if row[3])
    taken = {c.name for c in TRIAL_COLUMNS}
    params = []
    for name, values in seen.items():
        typ = _json_type(values)
        path = quote_str("$." + json.dumps(name))
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
            # System metrics (sys/...) are not the user's: no column, no sort (metric_names).
            f"SELECT DISTINCT name FROM metric_record WHERE experiment = ? "
            f"AND {user_metric_sql()} ORDER BY name",
            [experiment],
        ).fetchall()
    ]
    metrics: list[Column] = []
    for name in metric_names:
        col_name = name if name not in taken else f"metric_{name}"
        taken.add(col_name)
        metrics.append(Column(col_name, "metric", f"m_{len(metrics)}.value", "DOUBLE", name))
    bests: list[Column] = []
    for name in metric_names:
        col_name = f"best_{name}" if f"best_{name}" not in taken else f"metric_best_{name}"
        taken.add(col_name)
        bests.append(Column(col_name, "best", f"b_{len(bests)}.best", "DOUBLE", name))
    return Layout(experiment, tuple(params), tuple(metrics), unparsed, tuple(bests))


def loads(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return text
