"""Every trial's result and last value of every metric, in memory: what sorts a million trials
by a metric without aggregating every metric row (``MetricSummary``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from tuixp.store.columns import quote_str
from tuixp.store.staging import numpy_array

RESULT = "(result)"  # the summary's series of trial results (not a metric name: not an identifier)


def _numpy(column: Any) -> np.ndarray:
    """A numeric Arrow column without NULLs as a NumPy array on its buffer: pyarrow's own
    ``to_numpy`` imports pandas (a quarter of a second of the TUI's first summary)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        raise ValueError("a column with NULLs")  # the query fills them
    dtype = np.dtype(_NUMPY_TYPES[str(arr.type)])
    buffer = arr.buffers()[1]
    return np.frombuffer(buffer, dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


_NUMPY_TYPES = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "float": np.float32,
    "double": np.float64,
}


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
            "SELECT name, trial_id, coalesce(arg_max(value, epoch), 'NaN'::DOUBLE) AS value, "
            "count(*)::INTEGER AS n "
            f"FROM metric_record WHERE {bounds} GROUP BY name, trial_id UNION ALL "
            f"SELECT {quote_str(RESULT)}, trial_id, result_value::DOUBLE, 1 FROM trial_record "
            f"WHERE {bounds} AND result_value IS NOT NULL",
            params=args,
        ).to_arrow_table()
        if not table.num_rows:
            return []
        # Names as dictionary codes: no Python string per row (a slice has ~350,000 rows).
        names = table["name"].combine_chunks().dictionary_encode()
        codes = _numpy(names.indices)
        ids = _numpy(table["trial_id"]).astype(np.int32)
        values = _numpy(table["value"]).astype(np.float64)
        counts = _numpy(table["n"]).astype(np.int32)
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
        arrays = [numpy_array(ids.astype(np.int32)), numpy_array(values)]  # no pandas import
        return pa.Table.from_batches([pa.record_batch(arrays, names=["trial_id", "value"])])
