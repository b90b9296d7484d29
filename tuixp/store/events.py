"""The journal's vocabulary: one constructor per kind of event a writer appends.

A journal line is one JSON object whose ``t`` names its kind. Every writer builds its events
here (the record path in ``tuixp.trial``, ``tuixp.execution.recorder``, the store's text
dedup), so the fields of each kind are written down once. The ingest reads them back by kind
and ``tuixp.store.db.check_event`` checks each line before it is ingested (a line may come from
an older or newer tuixp, or a person).

A constructor returns the plain dict that is journaled; optional fields are included only when
given, so a line holds exactly what its writer knew. An optional field this module does not
know is refused (a misspelt field would otherwise be journaled and silently never stored),
except in a metric, which carries the step's own record of the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Event = dict[str, Any]

# The kinds of event, in the order a trial writes them.
KINDS = (
    "experiment",
    "blob",
    "code_set",
    "package_set",
    "trial_started",
    "step",
    "metric",
    "metric_batch",
    "persisted",
    "trial_finished",
)

# The optional fields each kind may carry beyond its constructor's required arguments.
_OPTIONAL: dict[str, tuple[str, ...] | None] = {
    "experiment": ("goal",),
    "trial_started": (
        "host",
        "pid",
        "script",
        "scheduler",
        "changes",
        "data",
        "code_hash",
        "environment_hash",
        "packages_hash",
        "git_hash",
        "git_commit",
        "git_branch",
        "git_dirty",
    ),
    "step": ("input_hash", "output_hash", "error", "reused_from"),
    # A metric carries what the step's ``save_metric`` recorded (tuixp.execution.steps) as is.
    "metric": None,
    "trial_finished": (
        "result",
        "result_type",
        "result_value",
        "error_type",
        "error_message",
        "traceback_hash",
        "started_at",
        "notes",
    ),
}


def _with(kind: str, event: Event, fields: dict[str, Any]) -> Event:
    known = _OPTIONAL.get(kind, ())
    unknown = sorted(set(fields) - set(known)) if known is not None else []
    if unknown:
        raise TypeError(f"a {kind} event has no field {unknown[0]!r}")
    event.update(fields)
    return event


def experiment(name: str, created_at: float, script: str | None, **fields: Any) -> Event:
    """An experiment announced (or its goal changed): ``goal`` is 'min', 'max' or None."""
    return _with(
        "experiment",
        {"t": "experiment", "name": name, "created_at": created_at, "script": script},
        fields,
    )


def blob(hash: str, text: str) -> Event:
    """A text stored once by its hash: a step's source, the script, an environment, a traceback."""
    return {"t": "blob", "hash": hash, "text": text}


def code_set(hash: str, rows: Iterable[dict[str, Any]]) -> Event:
    """The code of a trial: ``rows`` of ``{ord, step, source_hash}``, under the set's ``hash``."""
    return {"t": "code_set", "rows": [{"hash": hash, **r} for r in rows]}


def package_set(hash: str, packages: Mapping[str, str | None]) -> Event:
    """The installed distributions of a trial, ``{name: version}``, under the set's ``hash``."""
    return {"t": "package_set", "hash": hash, "packages": packages}


def trial_started(
    uuid: str,
    experiment: str,
    trial_id: int,
    started_at: float | None,
    seed: int | None,
    params: dict[str, Any],
    **fields: Any,
) -> Event:
    """A trial began: who runs it, with what, and the hashes of its code and world."""
    event = {
        "t": "trial_started",
        "uuid": uuid,
        "experiment": experiment,
        "trial_id": trial_id,
        "started_at": started_at,
        "seed": seed,
        "params": params,
    }
    return _with("trial_started", event, fields)


def _trial(trial_uuid: str, experiment: str, trial_id: int) -> Event:
    return {"trial_uuid": trial_uuid, "experiment": experiment, "trial_id": trial_id}


def step(
    trial_uuid: str,
    experiment: str,
    trial_id: int,
    key: str,
    step: str,
    started_at: float,
    finished_at: float | None,
    status: str,
    worker: Any,
    **fields: Any,
) -> Event:
    """A step of a trial started (``finished_at`` None, status 'running'), ended, or was reused."""
    event = {
        "t": "step",
        **_trial(trial_uuid, experiment, trial_id),
        "key": key,
        "step": step,
        "started_at": started_at,
        "finished_at": finished_at,
        "status": status,
        "worker": worker,
    }
    return _with("step", event, fields)


def metric(
    trial_uuid: str,
    experiment: str,
    trial_id: int,
    name: str,
    epoch: int,
    value: float,
    recorded_at: float | None,
    **fields: Any,
) -> Event:
    """One ``save_metric`` call."""
    event = {
        "t": "metric",
        **_trial(trial_uuid, experiment, trial_id),
        "name": name,
        "epoch": epoch,
        "value": value,
        "recorded_at": recorded_at,
    }
    return _with("metric", event, fields)


def metric_batch(
    trial_uuid: str,
    experiment: str,
    trial_id: int,
    n: int,
    names: list[str],
    seq: int,
    cols: dict[str, str],
) -> Event:
    """``n`` points of a trial saved since its last batch, as packed columns
    (``tuixp.store.metric_batch``): the recorder's buffer, flushed."""
    from tuixp.store.metric_batch import ENCODING

    return {
        "t": "metric_batch",
        **_trial(trial_uuid, experiment, trial_id),
        "n": n,
        "names": names,
        "seq": seq,
        "enc": ENCODING,
        "cols": cols,
    }


def persisted(
    trial_uuid: str,
    experiment: str,
    trial_id: int,
    step: str,
    object_hash: str,
    format: str,
    size: int | None,
) -> Event:
    """A step's output kept in the object store (computed by the trial, or reused)."""
    return {
        "t": "persisted",
        **_trial(trial_uuid, experiment, trial_id),
        "step": step,
        "object_hash": object_hash,
        "format": format,
        "size": size,
    }


def trial_finished(uuid: str, status: str, finished_at: float | None, **fields: Any) -> Event:
    """A trial ended: 'succeeded' (with its result), 'failed' or 'interrupted' (with why)."""
    event = {"t": "trial_finished", "uuid": uuid, "status": status, "finished_at": finished_at}
    return _with("trial_finished", event, fields)
