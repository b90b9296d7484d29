"""Read-only SQL over a store, for ``tuixp sql`` and the TUI's SQL screen.

Three fences, each enough on its own for the statements people actually type:
1. only one statement, and only a query (``SELECT``, ``WITH``, ``FROM``, ``DESCRIBE``, ``SHOW``,
   ``SUMMARIZE``, or ``EXPLAIN [ANALYZE]`` of one of those: an ``EXPLAIN ANALYZE`` runs what it
   explains, so it is judged by that): anything else is refused before the store is opened;
2. the database is opened ``read_only``, so a write that slipped through fails in DuckDB;
3. ``enable_external_access`` is off and the configuration locked, so a query cannot read or
   write other files (``read_csv``, ``COPY``, ``ATTACH``), load extensions or turn that back on.
   DuckDB still allows its spill folder (``temp_directory``, ``<store>.tmp/``) with external
   access off, so the sandbox has none: no folder is reachable from SQL at all.

Journals are ingested first (through ``Store.connect``) so the answer includes trials that
finished a moment ago.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from tuixp.errors import ReadOnlyQuery, StoreBusy, StoreError, TuixpError
from tuixp.store.connection import LOCK_TIMEOUT, guard_for, is_lock_error, resolve_store_path
from tuixp.store.journal import journal_files
from tuixp.store.store import get_store

_SANDBOX: dict[str, str | bool] = {
    "enable_external_access": False,
    # No spill folder: DuckDB lets SQL write into it even with external access off (an
    # EXPLAIN ANALYZE COPY ... TO '<store>.tmp/x.csv' did). A query too big for memory fails.
    "temp_directory": "",
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows than were asked for


def check_query(sql: str) -> str:
    """The one read-only statement in ``sql``; ``ReadOnlyQuery`` names what is refused."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise TuixpError(f"SQL error: {_first_line(exc)}") from None
    if not statements:
        raise ReadOnlyQuery("no SQL statement given")
    if len(statements) > 1:
        raise ReadOnlyQuery(f"give one statement at a time (got {len(statements)})")
    kind = statements[0].type.name
    if kind == "EXPLAIN":
        kind = _explained_kind(statements[0].query)
    if kind != "SELECT":
        raise ReadOnlyQuery(
            f"{kind} statements are refused: the store is read-only here (only queries: SELECT, "
            "WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN of a query)"
        )
    return sql


_SKIP = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)
_WORD = re.compile(r"[A-Za-z_]+")


def _explained_kind(statement: str) -> str:
    """The kind of statement an ``EXPLAIN [ANALYZE] [(options)] ...`` explains ("EXPLAIN ..."
    when it cannot tell: refused). ``EXPLAIN (SELECT 1)`` and ``EXPLAIN (FORMAT json) SELECT 1``
    read alike up to the parenthesis, so both readings are tried and every one that parses must
    be a query."""
    at = _SKIP.match(statement, 0).end()  # type: ignore[union-attr]
    word = _WORD.match(statement, at)
    if word is None or word.group().upper() != "EXPLAIN":
        return "EXPLAIN"
    at = _SKIP.match(statement, word.end()).end()  # type: ignore[union-attr]
    word = _WORD.match(statement, at)
    if word is not None and word.group().upper() in ("ANALYZE", "ANALYSE"):
        at = _SKIP.match(statement, word.end()).end()  # type: ignore[union-attr]
    rest = statement[at:]
    readings = [rest]
    if rest.startswith("("):
        close = _closing_parenthesis(rest)
        if close is None:
            return "EXPLAIN"
        readings.append(rest[close + 1 :])
    kinds = []
    for text in readings:
        try:
            found = duckdb.extract_statements(text)
        except duckdb.Error:
            continue
        if len(found) == 1:
            kinds.append(found[0].type.name)
        elif found:
            return "EXPLAIN of several"
    if not kinds:
        return "EXPLAIN"
    bad = [k for k in kinds if k != "SELECT"]
    return f"EXPLAIN {bad[0]}" if bad else "SELECT"


def _closing_parenthesis(text: str) -> int | None:
    """Where the parenthesis opening ``text`` closes (quotes and comments skipped)."""
    depth, i = 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            end = text.find(ch, i + 1)
            while end != -1 and text.startswith(ch, end + 1):
                end = text.find(ch, end + 2)
            if end == -1:
                return None
            i = end + 1
            continue
        if text.startswith(("--", "/*"), i):
            i = _SKIP.match(text, i).end()  # type: ignore[union-attr]
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def require_store(path: Path) -> Path:
    """``path`` if a store is there (its database, or journals not yet ingested)."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a tuixp store")
    if not path.exists() and not any(True for _ in journal_files(path)):
        raise StoreError(f"No tuixp store at {path}: run a trial first, or give --store PATH.")
    return path


@contextlib.contextmanager
def sandboxed(
    path: str | Path, timeout: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only, no-external-access connection to the store, closed on exit.

    Holds this process's lock on the store file meanwhile: DuckDB refuses two connections of
    one file with different settings inside one process.
    """
    path = resolve_store_path(path)
    deadline = time.monotonic() + (LOCK_TIMEOUT if timeout is None else timeout)
    delay = 0.01
    with guard_for(path):
        while True:
            try:
                con = duckdb.connect(str(path), read_only=True, config=dict(_SANDBOX))
                break
            except duckdb.IOException as exc:
                if not is_lock_error(exc):
                    raise StoreError(f"Cannot open the store {path}: {_first_line(exc)}") from exc
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"The store {path} is held by another process; try again when it is "
                        "done (TUIXP_LOCK_TIMEOUT sets the wait)."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 1.5, 0.2)
            except duckdb.Error as exc:
                raise StoreError(f"Cannot open the store {path}: {_first_line(exc)}") from exc
        try:
            yield con
        finally:
            con.close()


def ingest(path: str | Path) -> None:
    """Bring finished trials from the journals into the database (the usual brief write)."""
    with get_store(path).connect():
        pass


@contextlib.contextmanager
def execute(
    path: str | Path,
    sql: str,
    ingest_first: bool = True,
    on_connect: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> Iterator[Any]:
    """Run one read-only query; yields the DuckDB cursor to ``fetchmany`` from.

    Raises ``ReadOnlyQuery`` for a refused statement or a file it may not reach, and
    ``TuixpError`` for one DuckDB rejects (a syntax error, an unknown table). ``on_connect``
    gets the connection before the query starts, so another thread can ``interrupt()`` it.
    """
    check_query(sql)
    path = require_store(resolve_store_path(path))
    if ingest_first:
        ingest(path)
    with sandboxed(path) as con:
        if on_connect is not None:
            on_connect(con)
        try:
            cur = con.execute(sql)
        except duckdb.PermissionException as exc:
            raise ReadOnlyQuery(f"not allowed here: {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise TuixpError(f"SQL error: {_first_line(exc)}") from None
        yield cur


def query(
    path: str | Path,
    sql: str,
    max_rows: int | None = None,
    ingest_first: bool = True,
    on_connect: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> QueryResult:
    """Run one read-only query and fetch at most ``max_rows`` rows (all when None)."""
    with execute(path, sql, ingest_first, on_connect) as cur:
        columns = [d[0] for d in cur.description or []]
        types = [str(d[1]) for d in cur.description or []]
        if max_rows is None:
            return QueryResult(columns, types, cur.fetchall(), False)
        rows = cur.fetchmany(max_rows + 1)
        return QueryResult(columns, types, rows[:max_rows], len(rows) > max_rows)
