"""Read queries over an open store connection, shared by the Python API, the CLI and the TUI."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from tuixp.errors import ExperimentNotFound, TrialNotFound


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def experiments(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One row per experiment: trial counts by status, last start, lowest and highest result,
    its goal (``min``, ``max`` or None when the experiment did not say) and the best result by
    that goal (None without one)."""
    rows = con.execute("""
        SELECT t.*, e.goal,
               CASE e.goal WHEN 'min' THEN t.min_result WHEN 'max' THEN t.max_result END
        FROM (SELECT experiment, count(*) AS trials,
                     count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                     count(*) FILTER (WHERE status = 'failed') AS failed,
                     count(*) FILTER (WHERE status = 'running') AS running,
                     count(*) FILTER (WHERE status = 'interrupted') AS interrupted,
                     max(started_at) AS last_run,
                     min(result_value) AS min_result, max(result_value) AS max_result,
                     max(trial_id) AS last_trial
              FROM trial_record WHERE uuid NOT IN (  -- deleted trials (tuixp rm) do not count
                  SELECT trial_uuid FROM trial_annotation WHERE deleted_at IS NOT NULL)
              GROUP BY experiment) t
        LEFT JOIN experiment_record e ON e.name = t.experiment
        ORDER BY t.last_run DESC NULLS LAST, t.experiment
    """).fetchall()
    cols = [
        "experiment",
        "trials",
        "succeeded",
        "failed",
        "running",
        "interrupted",
        "last_run",
        "min_result",
        "max_result",
        "last_trial",
        "goal",
        "best_result",
    ]
    return [dict(zip(cols, r)) for r in rows]


def experiment_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT experiment FROM trial_record ORDER BY experiment"
        ).fetchall()
    ]


def require_experiment(con: duckdb.DuckDBPyConnection, experiment: str) -> None:
    if not con.execute(
        "SELECT 1 FROM trial_record WHERE experiment = ? LIMIT 1", [experiment]
    ).fetchone():
        known = experiment_names(con)
        hint = f" Known: {', '.join(known)}." if known else " The store has no trials yet."
        raise ExperimentNotFound(f"Unable to find experiment: {experiment}.{hint}")


def param_names(con: duckdb.DuckDBPyConnection, experiment: str) -> list[str]:
    """Parameter names of an experiment, in the order they first appeared."""
    rows = con.execute(
        """
        SELECT name FROM param_record WHERE experiment = ?
        GROUP BY name ORDER BY min(trial_id), name
    """,
        [experiment],
    ).fetchall()
    return [r[0] for r in rows]


def trial(con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int) -> dict[str, Any]:
    cur = con.execute(
        """
        SELECT t.*, epoch(finished_at) - epoch(started_at) AS elapsed_s, b.text AS traceback
        FROM trial_record t LEFT JOIN blob b ON b.hash = t.traceback_hash
        WHERE experiment = ? AND trial_id = ?
    """,
        [experiment, trial_id],
    )
    row = cur.fetchone()
    if row is None:
        raise TrialNotFound(f"Unable to find trial id: {trial_id}")
    cols = [d[0] for d in cur.description]
    rec = dict(zip(cols, row))
    rec["params"] = _loads(rec["params"]) or {}
    rec["result"] = _loads(rec["result"])
    rec["changes"] = _loads(rec["changes"]) or []
    rec["notes"] = _loads(rec["notes"]) or []
    return rec


def code(con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int) -> dict[str, str]:
    rows = con.execute(
        """
        SELECT c.step, b.text FROM trial_record t JOIN code_set c ON c.hash = t.code_hash
        LEFT JOIN blob b ON b.hash = c.source_hash
        WHERE t.experiment = ? AND t.trial_id = ? ORDER BY c.ord
    """,
        [experiment, trial_id],
    ).fetchall()
    return {step: text or "" for step, text in rows}


def environment(con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int) -> dict[str, Any]:
    row = con.execute(
        """
        SELECT e.text, g.text, t.packages_hash FROM trial_record t
        LEFT JOIN blob e ON e.hash = t.environment_hash
        LEFT JOIN blob g ON g.hash = t.git_hash
        WHERE t.experiment = ? AND t.trial_id = ?
    """,
        [experiment, trial_id],
    ).fetchone()
    if row is None:
        raise TrialNotFound(f"Unable to find trial id: {trial_id}")
    env = _loads(row[0]) or {}
    env["git"] = _loads(row[1]) or {}
    env["packages"] = dict(
        con.execute(
            "SELECT name, version FROM package_set WHERE hash = ? ORDER BY lower(name)", [row[2]]
        ).fetchall()
    )
    return env


def persisted(
    con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int, step: str
) -> tuple[str, str] | None:
    row = con.execute(
        "SELECT object_hash, format FROM persisted_record WHERE experiment = ? AND trial_id = ? "
        "AND step = ?",
        [experiment, trial_id, step],
    ).fetchone()
    return (row[0], row[1]) if row else None


def history(
    con: duckdb.DuckDBPyConnection,
    experiment: str,
    declared: list[str],
    verbose: bool = False,
    status: bool = False,
) -> Any:
    """daskperiment's history DataFrame, indexed by ``Trial ID``, with its columns exactly;
    ``status=True`` (tuixp's own) adds a final ``Status`` column (running, failed, ...)."""
    import pandas as pd

    names = list(declared) or param_names(con, experiment)
    rows = con.execute(
        """
        SELECT trial_id, params, result, result_type, status, started_at, finished_at, seed,
               error_type, error_message
        FROM trial_record WHERE experiment = ? ORDER BY trial_id
    """,
        [experiment],
    ).fetchall()
    records = []
    for tid, params, result, rtype, state, started, finished, seed, etype, emsg in rows:
        p = _loads(params) or {}
        rec: dict[str, Any] = {"Trial ID": tid}
        for n in names:  # a trial without the parameter: NaN, as daskperiment's (None is a value)
            rec[n] = p[n] if n in p else float("nan")
        if verbose:
            rec["Seed"] = seed
        rec["Result"] = _loads(result)
        if verbose:
            # daskperiment's type of the result: the string "None" when there is none
            rec["Result Type"] = rtype if state == "succeeded" and rtype else "None"
        rec["Success"] = state == "succeeded"
        rec["Finished"] = finished.astimezone().replace(tzinfo=None) if finished else pd.NaT
        rec["Process Time"] = (finished - started) if finished and started else pd.NaT
        rec["Description"] = f"{etype}({emsg})" if etype else float("nan")
        if status:
            rec["Status"] = state
        records.append(rec)
    if not records:
        names = []  # daskperiment's empty history has no parameter columns
    cols = (
        ["Trial ID", *names]
        + (["Seed"] if verbose else [])
        + ["Result"]
        + (["Result Type"] if verbose else [])
        + ["Success", "Finished", "Process Time", "Description"]
        + (["Status"] if status else [])
    )
    df = pd.DataFrame(records, columns=cols).set_index("Trial ID")
    if not records:
        df["Finished"] = pd.Series(dtype="datetime64[ns]")
        df["Process Time"] = pd.Series(dtype="timedelta64[ns]")
    else:
        df["Finished"] = pd.to_datetime(df["Finished"])
        df["Process Time"] = pd.to_timedelta(df["Process Time"])
    return df


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


# -- what the trial detail screen shows, beyond ``trial`` ----------------------------------------
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
        WHERE experiment = ? AND trial_id BETWEEN ? AND ? AND list_contains(?, trial_id)
        ORDER BY name, trial_id, epoch
    """,
        [experiment, min(trial_ids), max(trial_ids), trial_ids],
    ).fetchall():
        out.setdefault(name, {}).setdefault(tid, []).append((epoch, value))
    return out


def metric_summaries(
    con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int
) -> list[dict[str, Any]]:
    """Each metric of a trial, by name: how many epochs, the first and last epoch, the value at
    the last epoch, the lowest and the highest value (``tuixp show``'s metrics table)."""
    cur = con.execute(
        """
        SELECT name, count(*) AS epochs, min(epoch) AS first_epoch, max(epoch) AS last_epoch,
               arg_max(value, epoch) AS last, min(value) AS min, max(value) AS max
        FROM metric_record WHERE experiment = ? AND trial_id = ? GROUP BY name ORDER BY name
    """,
        [experiment, trial_id],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def previous_trial(con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int) -> int | None:
    """The id of the trial of ``experiment`` recorded just before ``trial_id``, if there is one."""
    row = con.execute(
        "SELECT max(trial_id) FROM trial_record WHERE experiment = ? AND trial_id < ?",
        [experiment, trial_id],
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def launch_sources(
    con: duckdb.DuckDBPyConnection, prefer: tuple[str, int] | None = None
) -> list[dict[str, Any]]:
    """Every experiment with a recorded script, most recently started first, and the trial a
    new launch starts from: its latest (or ``prefer``'s trial for ``prefer``'s experiment),
    with that trial's parameters, seed, scheduler, script and steps (``<script>`` and the
    like left out). An experiment whose chosen trial does not exist is left out. One query."""
    want_exp, want_id = prefer if prefer is not None else (None, None)
    rows = con.execute(
        """
        WITH latest AS (
            SELECT experiment, arg_max(script, trial_id) AS script, max(trial_id) AS latest,
                   max(started_at) AS last_start
            FROM trial_record WHERE script IS NOT NULL GROUP BY experiment)
        SELECT l.experiment, t.script, l.script, t.trial_id, t.params, t.seed,
               t.scheduler,
               (SELECT list(c.step ORDER BY c.ord) FROM code_set c
                WHERE c.hash = t.code_hash AND coalesce(NOT starts_with(c.step, '<'), true))
        FROM latest l JOIN trial_record t ON t.experiment = l.experiment
         AND t.trial_id = CASE WHEN l.experiment = $1 THEN $2 ELSE l.latest END
        ORDER BY l.last_start DESC, l.experiment
    """,
        [want_exp, want_id],
    ).fetchall()
    cols = [
        "experiment",
        "script",
        "latest_script",
        "trial_id",
        "params",
        "seed",
        "scheduler",
        "steps",
    ]
    out = []
    for row in rows:
        doc = dict(zip(cols, row))
        params = _loads(doc["params"])
        doc["params"] = params if isinstance(params, dict) else {}
        doc["steps"] = list(doc["steps"] or [])
        latest_script = doc.pop("latest_script")
        doc["script"] = doc["script"] or latest_script
        out.append(doc)
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
