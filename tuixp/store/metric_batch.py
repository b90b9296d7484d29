"""Metric points in bulk: one ``metric_batch`` journal event holds many points as columns.

A trial that logs every step logs millions of points. As one JSON line a point, each cost
~150 bytes of journal and a Python loop at ingest (~37,000 points/s). The recorder
(``tuixp.execution.metric_buffer``) buffers a trial's points in memory and journals them as one
event: the trial, the metric names once, and each column packed as little-endian binary in
base64 (exact for every float, NaN and infinities included; ~47 bytes a point):

    {"t": "metric_batch", "trial_uuid": ..., "experiment": ..., "trial_id": 3,
     "n": 250000, "names": ["acc", "loss"], "seq": 1201, "enc": "b64le",
     "cols": {"name": <uint16 index into names>, "epoch": <int64>, "value": <float64>,
              "type": <uint8: 0 int, 1 float, 2 bool>, "recorded_at": <float64 Unix seconds>,
              "value_int": <int64, present when an int was saved>}}

``seq`` numbers the batch's first point; the points follow in the order they were saved.
Encoding needs only the standard library (the API process does not import NumPy for it);
``decode`` and ``insert_batches`` (ingest) read the columns with NumPy and hand them to DuckDB
as Arrow chunks over the decoded buffers, a trial's batches a statement.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from typing import TYPE_CHECKING, Any

from tuixp.store.schema import METRIC_VALUE_TYPES

if TYPE_CHECKING:
    import duckdb

ENCODING = "b64le"
# column -> (array typecode when encoding, NumPy dtype when decoding); value_int is optional.
COLUMNS: dict[str, tuple[str, str]] = {
    "name": ("H", "<u2"),
    "epoch": ("q", "<i8"),
    "value": ("d", "<f8"),
    "type": ("B", "u1"),
    "recorded_at": ("d", "<f8"),
    "value_int": ("q", "<i8"),
}
REQUIRED = ("name", "epoch", "value", "type", "recorded_at")
TYPE_CODES = {name: code for code, name in enumerate(METRIC_VALUE_TYPES)}  # int 0, float 1, bool 2
MAX_NAMES = 65_535  # the name column is uint16
_TS_RANGE = (-6.2e10, 2.5e11)  # years 1 to 9999, as the ingest's check of single events


def pack(values: array) -> str:  # type: ignore[type-arg]
    """An array's bytes, little-endian, in base64."""
    if sys.byteorder != "little" and values.itemsize > 1:
        values = array(values.typecode, values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


SMALL = 5_000  # points: a batch this small is read without NumPy (a short run never loads it)


def decode(ev: dict[str, Any]) -> str | None:
    """Why a ``metric_batch`` event cannot be ingested, or None: its columns are then NumPy
    arrays in ``ev["_arrays"]`` (the packed text is dropped), or for a batch of at most
    ``SMALL`` points its rows in ``ev["_rows"]``. Every column is checked whole."""
    n, names, cols = ev.get("n"), ev.get("names"), ev.get("cols")
    # This process's own batch, kept as the arrays it was packed from (JournalWriter.kept):
    # the same columns, without the JSON and base64 to read back.
    raw = ev.pop("_columns", None)
    if raw is not None:
        cols = raw
    if ev.get("enc") != ENCODING:
        return f"unknown metric batch encoding {ev.get('enc')!r} (written by a newer tuixp?)"
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return "metric batch without a point count"
    if not isinstance(names, list) or not all(isinstance(x, str) and x for x in names):
        return "metric batch names are not a list of names"
    if len(names) > MAX_NAMES or not isinstance(cols, dict):
        return "metric batch without its columns"
    if not isinstance(ev.get("seq", 0), int):
        return "metric batch seq is not an integer"
    if n <= SMALL and raw is None:
        return _decode_small(ev, n, names, cols)
    import numpy as np

    arrays = {}
    for col, (_, dtype) in COLUMNS.items():
        text = cols.get(col)
        if text is None:
            if col in REQUIRED:
                return f"metric batch without column {col}"
            continue
        # A kept column is an array.array of this process: its own byte order.
        kind = np.dtype(dtype).newbyteorder("=") if raw is not None else np.dtype(dtype)
        if raw is not None:
            data = memoryview(text).cast("B")
        else:
            try:
                data = memoryview(binascii.a2b_base64(text))
            except (TypeError, ValueError):
                return f"metric batch column {col} is not base64"
        if len(data) != n * kind.itemsize:
            return f"metric batch column {col} does not hold {n} values"
        arrays[col] = np.frombuffer(data, dtype=kind)
    if n:
        if int(arrays["name"].max()) >= len(names):
            return "metric batch names a metric it does not list"
        if int(arrays["type"].max()) >= len(METRIC_VALUE_TYPES):
            return "unknown metric value type"
        at = arrays["recorded_at"]
        if not bool(np.all((at >= _TS_RANGE[0]) & (at <= _TS_RANGE[1]))):
            return "metric batch recorded_at out of range"
        if "value_int" not in arrays and bool(np.any(arrays["type"] == TYPE_CODES["int"])):
            return "metric batch has ints without their exact values"
    try:
        for x in names:
            x.encode("utf-8")
    except UnicodeEncodeError:
        return "metric batch names are not valid text"
    ev["_arrays"] = arrays
    ev.pop("cols", None)
    return None


def _decode_small(ev: dict[str, Any], n: int, names: list[str], cols: dict[str, Any]) -> str | None:
    """``decode`` with the standard library only: the batch as metric rows in ``ev["_rows"]``."""
    arrays: dict[str, array] = {}  # type: ignore[type-arg]
    for col, (code, _) in COLUMNS.items():
        text = cols.get(col)
        if text is None:
            if col in REQUIRED:
                return f"metric batch without column {col}"
            continue
        try:
            raw = binascii.a2b_base64(text)
        except (TypeError, ValueError):
            return f"metric batch column {col} is not base64"
        values = array(code)
        if len(raw) != n * values.itemsize:
            return f"metric batch column {col} does not hold {n} values"
        values.frombytes(raw)
        if sys.byteorder != "little" and values.itemsize > 1:
            values.byteswap()
        arrays[col] = values
    try:
        for x in names:
            x.encode("utf-8")
    except UnicodeEncodeError:
        return "metric batch names are not valid text"
    if n:
        if max(arrays["name"]) >= len(names):
            return "metric batch names a metric it does not list"
        if max(arrays["type"]) >= len(METRIC_VALUE_TYPES):
            return "unknown metric value type"
        if not all(_TS_RANGE[0] <= t <= _TS_RANGE[1] for t in arrays["recorded_at"]):
            return "metric batch recorded_at out of range"
        if "value_int" not in arrays and TYPE_CODES["int"] in arrays["type"]:
            return "metric batch has ints without their exact values"
    ints = arrays.get("value_int")
    first = int(ev.get("seq", 0))
    trial = {k: ev[k] for k in ("trial_uuid", "experiment", "trial_id")}
    ev["_rows"] = [
        {
            **trial,
            "name": names[arrays["name"][i]],
            "epoch": arrays["epoch"][i],
            "value": arrays["value"][i],
            "recorded_at": arrays["recorded_at"][i],
            "seq": first + i,
            "value_type": METRIC_VALUE_TYPES[arrays["type"][i]],
            "value_int": ints[i] if ints is not None and arrays["type"][i] == 0 else None,
        }
        for i in range(n)
    ]
    del ev["cols"]
    return None


def _global_names(events: list[dict[str, Any]]) -> tuple[list[str], list[Any]]:
    """One trial's metric names over all its batches (in journal order), and each batch's name
    column as indices into them (the batch's own array when its names start the list)."""
    import numpy as np

    index: dict[str, int] = {}
    columns = []
    for ev in events:
        local = [index.setdefault(x, len(index)) for x in ev["names"]]
        column = ev["_arrays"]["name"]
        if local != list(range(len(local))):
            column = np.array(local, dtype=np.int32)[column]
        columns.append(column)
    return list(index), columns


def _one_point_each(events: list[dict[str, Any]], names: list[Any], count: int) -> bool:
    """Whether no (name, epoch) is saved twice among these batches, checked without sorting in
    the common case: every batch's points in rising (epoch, name) order, each batch after the
    last. Otherwise (points saved out of order, or again) False: the caller sorts."""
    import numpy as np

    last = None
    for ev, name in zip(events, names, strict=True):
        epoch = ev["_arrays"]["epoch"]
        if not len(epoch):
            continue
        lo, hi = int(epoch.min()), int(epoch.max())
        if max(abs(lo), abs(hi)) >= (1 << 62) // max(count, 1):
            return False  # (epoch, name) would not fit one int64: take the sort
        key = epoch * count + name
        if len(key) > 1 and not bool(np.all(key[1:] > key[:-1])):
            return False
        if last is not None and int(key[0]) <= last:
            return False
        last = int(key[-1])
    return True


def _trial_points(events: list[dict[str, Any]], names: list[Any]) -> dict[str, Any]:
    """One trial's batches as one set of columns, over one list of names."""
    import numpy as np

    parts: dict[str, list[Any]] = {c: [] for c in (*COLUMNS, "seq")}
    for ev, name in zip(events, names, strict=True):
        arrays, n = ev["_arrays"], ev["n"]
        parts["name"].append(name.astype(np.int32))
        for col in ("epoch", "value", "type", "recorded_at"):
            parts[col].append(arrays[col])
        parts["value_int"].append(arrays.get("value_int", np.zeros(n, dtype=np.int64)))
        parts["seq"].append(np.arange(n, dtype=np.int64) + int(ev.get("seq", 0)))
    return {c: np.concatenate(v) for c, v in parts.items()}


def _last_of_each_key(cols: dict[str, Any]) -> dict[str, Any]:
    """The points with one per (name, epoch), the last saved: what saving a point twice keeps."""
    import numpy as np

    order = np.lexsort((np.arange(len(cols["epoch"])), cols["epoch"], cols["name"]))
    n, e = cols["name"][order], cols["epoch"][order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (n[1:] != n[:-1]) | (e[1:] != e[:-1])
    keep = np.sort(order[last])
    return {c: v[keep] for c, v in cols.items()}


def _staged_table(events: list[dict[str, Any]], names: list[Any], count: int) -> Any:
    """The trial's points as one Arrow chunk for DuckDB to scan: the batches' columns joined
    (sorted and kept once each when a point was saved twice). One chunk, not one a batch:
    DuckDB's parallel scan of several chunks leaves row groups that the checkpoint at the
    connection's close writes again (0.2 s for a million points). ``recorded_at`` is staged as
    microseconds, rounded half to even as DuckDB's ``to_timestamp`` does (0.1 s less than
    converting in SQL). The Arrow arrays are made from their buffers: ``pa.array`` of a NumPy
    array imports pandas (a quarter of a second of the first ingest), and DuckDB's own scan
    of NumPy columns reads NaN as NULL."""
    import numpy as np
    import pyarrow as pa

    from tuixp.store.staging import numpy_array as column

    cols = _trial_points(events, names)
    if not _one_point_each(events, names, count):
        cols = _last_of_each_key(cols)
    micros = np.rint(cols["recorded_at"] * 1e6).astype(np.int64)
    arrays = {
        "name": column(cols["name"]),
        "epoch": column(cols["epoch"]),
        "value": column(cols["value"]),
        "recorded_at": column(micros, pa.timestamp("us", tz="UTC")),
        "seq": column(cols["seq"]),
        "type": column(cols["type"]),
        "value_int": column(cols["value_int"]),
    }
    return pa.Table.from_batches([pa.record_batch(list(arrays.values()), names=list(arrays))])


def insert_batches(con: duckdb.DuckDBPyConnection, events: list[dict[str, Any]]) -> int:
    """Insert the points of decoded ``metric_batch`` events (``decode``), in one statement a
    trial, and fold them into the trials' metric summaries; a point whose (trial, name,
    epoch) is stored already replaces it (that trial is then summarised again from all its
    rows). The caller holds the transaction. Returns the number of points inserted."""
    from tuixp.store import metric_summary

    by_trial: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for ev in events:
        by_trial.setdefault((ev["trial_uuid"], ev["experiment"], ev["trial_id"]), []).append(ev)
    inserted = 0
    replaced: dict[str, int] = {}
    for (uuid, experiment, trial_id), evs in by_trial.items():
        evs = [e for e in evs if e["n"]]
        if not evs:
            continue
        names, name_columns = _global_names(evs)
        staged = _staged_table(evs, name_columns, len(names))
        con.register("_staged_metric_batch", staged)
        try:
            ranges = con.execute(
                "SELECT ?[name + 1], min(epoch), max(epoch) FROM _staged_metric_batch GROUP BY name",
                [names],
            ).fetchall()
            clash = con.execute(
                "SELECT count(*) FROM metric_record m JOIN (SELECT unnest(?) AS name, "
                "unnest(?) AS lo, unnest(?) AS hi) r ON m.name = r.name AND m.epoch BETWEEN "
                "r.lo AND r.hi WHERE m.trial_id = ? AND m.trial_uuid = ?",
                [[r[0] for r in ranges], [r[1] for r in ranges], [r[2] for r in ranges]]
                + [trial_id, uuid],
            ).fetchone()
            if clash and clash[0]:
                con.execute(
                    "DELETE FROM metric_record m USING _staged_metric_batch s WHERE m.trial_id = ? "
                    "AND m.trial_uuid = ? AND m.name = ?[s.name + 1] AND m.epoch = s.epoch",
                    [trial_id, uuid, names],
                )
                replaced[uuid] = trial_id
            ints = any("value_int" in ev["_arrays"] for ev in evs)
            con.execute(
                "INSERT INTO metric_record (trial_uuid, experiment, trial_id, name, epoch, value, "
                "recorded_at, seq, value_type, value_int) SELECT ?, ?, ?, ?[name + 1], epoch, "
                "value, recorded_at, seq, ?[type + 1], "
                + (f"CASE WHEN type = {TYPE_CODES['int']} THEN value_int END" if ints else "NULL")
                + " FROM _staged_metric_batch",
                [uuid, experiment, trial_id, names, list(METRIC_VALUE_TYPES)],
            )
            if uuid not in replaced:
                metric_summary.add_points(
                    con,
                    "SELECT ?::VARCHAR AS trial_uuid, ?::VARCHAR AS experiment, "
                    "?::INTEGER AS trial_id, ?[name + 1] AS name, epoch, value "
                    "FROM _staged_metric_batch",
                    [uuid, experiment, trial_id, names],
                )
        finally:
            con.unregister("_staged_metric_batch")
        inserted += staged.num_rows
    metric_summary.resummarize(con, replaced)
    return inserted
