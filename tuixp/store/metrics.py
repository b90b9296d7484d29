"""Reading metric points: ``load_metric``'s DataFrame, and points with both axes for plots.

Both read columns (NumPy through DuckDB), never a Python tuple a point: 250,000 points of one
trial load in a fraction of a second. The values come back with the type they were saved with
(schema 4: int, float, bool); rows from before schema 4 have no type and are read as tuixp
read them then (a trial's whole numbers as ints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import duckdb

from tuixp.errors import MetricNotFound, TrialIDNotFoundError

_TYPES = ("int", "float", "bool")  # value_type codes 0, 1, 2 (3: untyped, before schema 4)
SYSTEM_PREFIX = "sys/"  # system metrics (CPU, memory, GPU): never a user's metric in best or sort


def load_metric(
    con: duckdb.DuckDBPyConnection, experiment: str, name: str, trial_ids: list[int]
) -> Any:
    """daskperiment's ``load_metric``: a DataFrame indexed by ``Epoch``, one column per trial.

    Each trial's column has the dtype daskperiment's had (it built a DataFrame of the saved
    values): all ints -> int64, all bools -> bool, floats (or ints and floats) -> float64, bools
    mixed with numbers -> object. Aligning trials on their epochs then fills gaps with NaN: an
    int column with a gap becomes float64 and a bool one object, as ``pd.concat`` does."""
    import pandas as pd

    _require_metric(con, experiment, name)
    found = con.execute(
        "SELECT trial_id, epoch, value, CASE value_type WHEN 'int' THEN 0 WHEN 'float' THEN 1 "
        "WHEN 'bool' THEN 2 ELSE 3 END::UTINYINT AS value_type, "
        "coalesce(value_int, 0) AS value_int, value_int IS NULL AS no_int FROM metric_record "
        "WHERE experiment = ? AND name = ? AND list_contains(?, trial_id) ORDER BY trial_id, epoch",
        [experiment, name, trial_ids],
    ).fetchnumpy()
    tids = found["trial_id"]
    bounds = {}
    if len(tids):
        starts = [0, *(i + 1 for i in (tids[1:] != tids[:-1]).nonzero()[0].tolist()), len(tids)]
        bounds = {int(tids[a]): (a, b) for a, b in zip(starts[:-1], starts[1:])}
    for tid in trial_ids:
        if tid not in bounds:  # daskperiment's answer for a trial without this metric
            raise TrialIDNotFoundError(f"Unable to find trial id: {tid}")
    columns = []
    for tid in trial_ids:
        a, b = bounds[tid]
        part = {k: v[a:b] for k, v in found.items()}
        columns.append(pd.Series(_saved_values(part), index=part["epoch"], name=tid))
    wide = pd.concat(columns, axis=1).sort_index()
    wide.index.name = "Epoch"
    wide.columns.name = "Trial ID"
    return wide


def _saved_values(part: dict[str, Any]) -> Any:
    """One trial's values as saved: a NumPy array of one type, or a list when they mix."""
    import numpy as np

    if np.ma.is_masked(part["value"]):
        return _saved_list(part)  # a hand-written journal line's NULL among them
    count = np.bincount(part["value_type"], minlength=4)  # int, float, bool, untyped
    exact = not bool(part["no_int"][part["value_type"] == 0].any())
    if not count[2] and not count[3] and (exact or not count[0]):
        if not count[1]:
            return np.asarray(part["value_int"], dtype=np.int64)
        return np.asarray(part["value"], dtype=np.float64)
    if count[2] == len(part["value"]) and bool(np.isfinite(part["value"]).all()):
        return np.asarray(part["value"]) != 0
    return _saved_list(part)  # bools with numbers, untyped rows, hand-written lines


def _saved_list(part: dict[str, Any]) -> list[Any]:
    """The values one by one, as tuixp read them before it read columns. Rows from before
    schema 4 have no type: a trial's whole numbers among them come back as ints."""
    values = part["value"].tolist()
    value_types = [(*_TYPES, "")[t] for t in part["value_type"].tolist()]
    ints = part["value_int"].tolist()
    no_int = part["no_int"].tolist()
    untyped = [v for v, t in zip(values, value_types) if not t]
    whole = all(v == v and abs(v) < 2**53 and float(v).is_integer() for v in untyped)
    out: list[Any] = []
    for value, value_type, value_int, missing in zip(values, value_types, ints, no_int):
        if value_type == "int" and not missing:
            out.append(value_int)
        elif value is None or value != value or value in (math.inf, -math.inf):
            out.append(value)  # a hand-written journal line's NULL, NaN or infinity: as stored
        elif value_type == "bool":
            out.append(bool(value))
        elif value_type == "int" or (not value_type and whole):
            out.append(int(value))
        else:
            out.append(value)
    return out


@dataclass(frozen=True)
class Points:
    """One metric of one trial, as columns for a plot: the epoch axis and the wall-time axis
    (``recorded_at``, Unix seconds; ``elapsed`` is seconds since the trial's first point)."""

    trial_id: int
    name: str
    epoch: Any  # NumPy int64, ascending
    recorded_at: Any  # NumPy float64, Unix seconds
    value: Any  # NumPy float64 (ints and bools as numbers)

    @property
    def elapsed(self) -> Any:
        return self.recorded_at - self.recorded_at.min() if len(self.recorded_at) else self.value

    def __len__(self) -> int:
        return len(self.epoch)


def trial_metric_points(
    con: duckdb.DuckDBPyConnection, experiment: str, name: str, trial_id: int
) -> Points:
    """One metric of one trial as ``Points`` (``Experiment.metric_points``); raises as
    ``load_metric`` does: MetricNotFound for a name never saved, TrialIDNotFoundError for a
    trial that did not save it."""
    import numpy as np

    found = con.execute(
        "SELECT epoch, epoch(recorded_at)::DOUBLE AS recorded_at, value FROM metric_record "
        "WHERE experiment = ? AND name = ? AND trial_id = ? ORDER BY epoch",
        [experiment, name, trial_id],
    ).fetchnumpy()
    if not len(found["epoch"]):
        _require_metric(con, experiment, name)
        raise TrialIDNotFoundError(f"Unable to find trial id: {trial_id}")
    return Points(
        trial_id,
        name,
        np.asarray(found["epoch"], dtype=np.int64),
        _floats(found["recorded_at"]),
        _floats(found["value"]),
    )


def _require_metric(con: duckdb.DuckDBPyConnection, experiment: str, name: str) -> None:
    """Raise daskperiment's MetricNotFound unless some trial of ``experiment`` saved ``name``."""
    if not con.execute(
        "SELECT 1 FROM metric_record WHERE experiment = ? AND name = ? LIMIT 1", [experiment, name]
    ).fetchone():
        raise MetricNotFound(f"Unable to find saved metric with specified key: {name}")


def _floats(column: Any) -> Any:
    """A fetched column as float64, NULL as NaN."""
    import numpy as np

    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)


def metric_points(
    con: duckdb.DuckDBPyConnection,
    experiment: str,
    trial_ids: list[int],
    names: list[str] | None = None,
) -> dict[str, dict[int, Points]]:
    """Every point of these trials' metrics (``names``, or all), ``{metric: {trial_id:
    Points}}``, each ordered by epoch, with both axes: epoch and wall time."""
    import numpy as np

    out: dict[str, dict[int, Points]] = {}
    if not trial_ids:
        return out
    where = "experiment = ? AND list_contains(?, trial_id)"
    args: list[Any] = [experiment, trial_ids]
    if names is not None:
        where += " AND list_contains(?, name)"
        args.append(names)
    found = con.execute(
        f"SELECT name, trial_id, epoch, epoch(recorded_at)::DOUBLE AS recorded_at, value "
        f"FROM metric_record WHERE {where} ORDER BY name, trial_id, epoch",
        args,
    ).fetchnumpy()
    n = len(found["epoch"])
    if not n:
        return out
    name_col, tid_col = found["name"], found["trial_id"]
    cut = np.ones(n, dtype=bool)
    cut[1:] = (name_col[1:] != name_col[:-1]) | (tid_col[1:] != tid_col[:-1])
    starts = [*cut.nonzero()[0].tolist(), n]
    recorded = _floats(found["recorded_at"])
    for a, b in zip(starts[:-1], starts[1:]):
        name, tid = str(name_col[a]), int(tid_col[a])
        out.setdefault(name, {})[tid] = Points(
            tid,
            name,
            np.asarray(found["epoch"][a:b], dtype=np.int64),
            recorded[a:b],
            _floats(found["value"][a:b]),
        )
    return out
