"""Each trial's metric summary (``metric_summary``: points, lowest, highest, last, with their
epochs), kept up to date by ingest, merge and purge.

Points that only add to a metric (the common case: a training loop's next epochs) are folded
into the summary it has (``add_points``): the work is the new points', never the trial's
millions of stored ones. When a point replaced one stored before (a metric saved again for the
same epoch), the replaced one may have been the lowest or the highest, so the trial's metrics
are summarised again from all their rows (``resummarize``).
"""

from __future__ import annotations

from typing import Any

import duckdb

from tuixp.store import schema

_OK = "NOT isnan(value)"  # NaN is never a lowest or a highest


def resummarize(con: duckdb.DuckDBPyConnection, trials: dict[str, Any]) -> None:
    """Summarise again the metrics of these trials (``{uuid: trial id}``) from all their stored
    rows. Only the trials' id range is read (zone maps skip the rest of the table)."""
    if not trials:
        return
    keys = list(trials)
    ids = [i for i in trials.values() if isinstance(i, int)]
    near = f" AND trial_id BETWEEN {min(ids)} AND {max(ids)}" if len(ids) == len(keys) else ""
    con.execute(f"DELETE FROM metric_summary WHERE list_contains(?, trial_uuid){near}", [keys])
    con.execute(
        schema.summarize_metrics(f"WHERE list_contains($keys, trial_uuid){near}").rstrip(";"),
        {"keys": keys},
    )


def resummarize_selected(con: duckdb.DuckDBPyConnection, trial_uuids: str) -> None:
    """Summarise again, from all their rows, the trials the query ``trial_uuids`` selects (the
    trials a merge brought: their rows came without summaries)."""
    con.execute(f"DELETE FROM metric_summary WHERE trial_uuid IN ({trial_uuids})")
    con.execute(
        schema.summarize_metrics(f"WHERE trial_uuid IN ({trial_uuids})").rstrip(";"),
    )


def forget(con: duckdb.DuckDBPyConnection, trial_uuids: list[str]) -> None:
    """Drop these trials' summaries (a purge removed their rows)."""
    con.execute("DELETE FROM metric_summary WHERE list_contains(?, trial_uuid)", [trial_uuids])


def add_points(
    con: duckdb.DuckDBPyConnection, points: str, params: list[Any] | None = None
) -> None:
    """Fold new points into their trials' summaries. ``points`` is a query (with ``params``)
    giving ``trial_uuid, experiment, trial_id, name, epoch, value`` for points that are all in
    ``metric_record`` now and replaced none stored before (one per trial, name and epoch).

    A metric's summary stands for its stored points by three of them: its lowest, its highest
    and its last (which carries the count); aggregating those with the new points gives what
    aggregating every point would (the earliest epoch of a tie, NaN never lowest or highest)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _summary_new AS
        WITH n AS ({points}),
        old AS (
            SELECT s.* FROM metric_summary s
            WHERE EXISTS (SELECT 1 FROM n WHERE n.trial_uuid = s.trial_uuid AND n.name = s.name)
        ),
        pts AS (
            SELECT trial_uuid, experiment, trial_id, name, epoch, value,
                   1::BIGINT AS w, true AS extreme, true AS latest FROM n
            UNION ALL
            SELECT trial_uuid, experiment, trial_id, name, last_epoch, last_value, points,
                   false, true FROM old
            UNION ALL
            SELECT trial_uuid, experiment, trial_id, name, min_epoch, min_value, 0, true, false
            FROM old WHERE min_value IS NOT NULL
            UNION ALL
            SELECT trial_uuid, experiment, trial_id, name, max_epoch, max_value, 0, true, false
            FROM old WHERE max_value IS NOT NULL
        )
        SELECT trial_uuid, any_value(experiment) AS experiment, any_value(trial_id) AS trial_id,
               name, sum(w)::BIGINT AS points,
               min(value) FILTER (WHERE extreme AND {_OK}) AS min_value,
               arg_min(epoch, (value, epoch)) FILTER (WHERE extreme AND {_OK}) AS min_epoch,
               max(value) FILTER (WHERE extreme AND {_OK}) AS max_value,
               arg_min(epoch, (-value, epoch)) FILTER (WHERE extreme AND {_OK}) AS max_epoch,
               arg_max(value, epoch) FILTER (WHERE latest) AS last_value,
               max(epoch) FILTER (WHERE latest) AS last_epoch
        FROM pts GROUP BY trial_uuid, name
        """,
        params or [],
    )
    try:
        con.execute(
            "DELETE FROM metric_summary s USING _summary_new n "
            "WHERE s.trial_uuid = n.trial_uuid AND s.name = n.name"
        )
        con.execute(
            "INSERT INTO metric_summary SELECT trial_uuid, experiment, trial_id, name, points, "
            "min_value, min_epoch, max_value, max_epoch, last_value, last_epoch FROM _summary_new"
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _summary_new")
