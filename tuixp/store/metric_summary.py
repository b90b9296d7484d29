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


SUMMARY_COLUMNS = (
    "trial_uuid, experiment, trial_id, name, points, min_value, min_epoch, max_value, "
    "max_epoch, last_value, last_epoch"
)


def add_points(
    con: duckdb.DuckDBPyConnection, points: str, params: list[Any] | None = None
) -> None:
    """Fold new points into their trials' summaries. ``points`` is a query (with ``params``)
    giving ``trial_uuid, experiment, trial_id, name, epoch, value`` for points that are all in
    ``metric_record`` now and replaced none stored before (one per trial, name and epoch)."""
    select = schema.summarize_metrics().removeprefix("INSERT INTO metric_summary ").rstrip(";")
    _fold(con, select.replace("FROM metric_record", f"FROM ({points})"), params)


def _fold(con: duckdb.DuckDBPyConnection, summaries: str, params: list[Any] | None) -> None:
    """Fold summaries of new points into their trials' summaries. ``summaries`` is a query
    (with ``params``) giving rows of ``metric_summary``'s columns, in its order, for points
    that replaced none stored before: two summaries of disjoint points make the summary of
    them all (the earliest epoch of a tie, NaN never lowest or highest)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _summary_new AS
        WITH n ({SUMMARY_COLUMNS}) AS ({summaries}),
        both_ AS (
            SELECT {SUMMARY_COLUMNS} FROM n
            UNION ALL
            SELECT {SUMMARY_COLUMNS} FROM metric_summary s
            WHERE EXISTS (SELECT 1 FROM n WHERE n.trial_uuid = s.trial_uuid AND n.name = s.name)
        )
        SELECT trial_uuid, any_value(experiment) AS experiment, any_value(trial_id) AS trial_id,
               name, sum(points)::BIGINT AS points, min(min_value) AS min_value,
               arg_min(min_epoch, (min_value, min_epoch))
                   FILTER (WHERE min_value IS NOT NULL) AS min_epoch,
               max(max_value) AS max_value,
               arg_min(max_epoch, (-max_value, max_epoch))
                   FILTER (WHERE max_value IS NOT NULL) AS max_epoch,
               arg_max(last_value, last_epoch) AS last_value, max(last_epoch) AS last_epoch
        FROM both_ GROUP BY trial_uuid, name
        """,
        params or [],
    )
    try:
        con.execute(
            "DELETE FROM metric_summary s USING _summary_new n "
            "WHERE s.trial_uuid = n.trial_uuid AND s.name = n.name"
        )
        con.execute(f"INSERT INTO metric_summary SELECT {SUMMARY_COLUMNS} FROM _summary_new")
    finally:
        con.execute("DROP TABLE IF EXISTS _summary_new")
