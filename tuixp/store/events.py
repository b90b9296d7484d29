"""The journal's vocabulary: one constructor and one checker per kind of event.

A journal line is one JSON object whose ``t`` names its kind. Every writer builds its events
here (the record path in ``tuixp.trial``, ``tuixp.execution.recorder``, the store's text
dedup), so the fields of each kind are written down once. Ingest (``tuixp.store.ingest``)
reads them back by kind, and ``check_event`` checks each line before it is ingested (a line
may come from an older or newer tuixp, or a person): each kind's checker follows its
constructor and checks the fields by the types of the columns they go into
(``tuixp.store.schema.COLUMNS``).

A constructor returns the plain dict that is journaled; optional fields are included only when
given, so a line holds exactly what its writer knew. An optional field this module does not
know is refused (a misspelt field would otherwise be journaled and silently never stored),
except in a metric, which carries the step's own record of the call.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tuixp.store import schema

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
    "metric_goal",
    "persisted",
    "artifact",
    "trial_finished",
    "annotation",
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


# -- checking ----------------------------------------------------------------------------------
# A journal line is input like any other: written by this tuixp, an older or newer one, a process
# that died mid-write, or a person. One line DuckDB cannot take must not stop a store from
# opening, so every event is checked (and its text made storable) before the ingest transaction:
# each kind's checker follows its constructor below, and checks each field by the type of the
# column it is stored in (``schema.COLUMNS``).

# The table each kind that is one row of a table goes into.
EVENT_TABLE = {
    "blob": "blob",
    "experiment": "experiment_record",
    "metric": "metric_record",
    "step": "step_record",
    "persisted": "persisted_record",
    "artifact": "artifact_record",
    "annotation": "annotation_record",
}
STATUSES = ("succeeded", "failed", "interrupted")  # how a trial can end
_JSON_TEXT = ("result", "notes")  # fields a writer sends as JSON text, stored as such
_JSON_OBJECTS = ("params", "changes", "data")  # trial_started fields stored after json.dumps
# Years 1 to 9999: what DuckDB, Python and pandas all read back.
_TS_RANGE = (-6.2e10, 2.5e11)

_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(text: str) -> str:
    """``text`` as valid UTF-8: a lone surrogate (a bad escape, a mis-decoded name) becomes U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def storable_json(value: Any) -> Any:
    """A decoded JSON value DuckDB's JSON type reads back: text fixed, NaN and inf as strings."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return [storable_json(v) for v in value]
    if isinstance(value, dict):
        return {storable_text(str(k)): storable_json(v) for k, v in value.items()}
    return value


def _json_text(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        return json.dumps(storable_text(text))  # keep what was sent, as a JSON string
    clean = storable_json(value)
    return text if clean == value else json.dumps(clean)


def _field_problem(ev: dict[str, Any], name: str, typ: str, expr: str | None) -> str | None:
    """Check (and normalise in place) one field against its column; the reason if it is wrong."""
    v = ev.get(name)
    if v is None:
        return None
    if typ == "string":
        if not isinstance(v, str):
            return f"{name} is not text"
        ev[name] = storable_text(v)
    elif typ == "bool":
        if not isinstance(v, bool):
            return f"{name} is not true or false"
    elif typ in ("int32", "int64"):
        if isinstance(v, bool) or not isinstance(v, int):
            return f"{name} is not an integer"
        limit = 1 << (31 if typ == "int32" else 63)
        if not -limit <= v < limit:
            return f"{name} is out of range"
    else:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{name} is not a number"
        try:
            v = float(v)
        except OverflowError:
            return f"{name} is too large"
        if expr is not None and not _TS_RANGE[0] < v < _TS_RANGE[1]:
            return f"{name} is not a time"
        ev[name] = v
    return None


def _row_problem(ev: dict[str, Any], table: str, skip: tuple[str, ...] = ()) -> str | None:
    for name, typ, expr in schema.COLUMNS[table]:
        if name not in skip:
            why = _field_problem(ev, name, typ, expr)
            if why:
                return why
    return None


def experiment(name: str, created_at: float, script: str | None, **fields: Any) -> Event:
    """An experiment announced (or its goal changed): ``goal`` is 'min', 'max' or None."""
    return _with(
        "experiment",
        {"t": "experiment", "name": name, "created_at": created_at, "script": script},
        fields,
    )


def _check_experiment(ev: Event) -> str | None:
    return _row_problem(ev, "experiment_record")


def blob(hash: str, text: str) -> Event:
    """A text stored once by its hash: a step's source, the script, an environment, a traceback."""
    return {"t": "blob", "hash": hash, "text": text}


def _check_blob(ev: Event) -> str | None:
    return _row_problem(ev, "blob")


def code_set(hash: str, rows: Iterable[dict[str, Any]]) -> Event:
    """The code of a trial: ``rows`` of ``{ord, step, source_hash}``, under the set's ``hash``."""
    return {"t": "code_set", "rows": [{"hash": hash, **r} for r in rows]}


def _check_code_set(ev: Event) -> str | None:
    rows = ev.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return "code_set rows are not a list of rows"
    for r in rows:
        if r.get("hash") is None or r.get("ord") is None:
            return "code_set row without hash or ord"
        why = _row_problem(r, "code_set")
        if why:
            return why
    return None


def package_set(hash: str, packages: Mapping[str, str | None]) -> Event:
    """The installed distributions of a trial, ``{name: version}``, under the set's ``hash``."""
    return {"t": "package_set", "hash": hash, "packages": packages}


def _check_package_set(ev: Event) -> str | None:
    packages = ev.get("packages")
    if (
        not isinstance(ev["hash"], str)
        or not isinstance(packages, dict)
        or not all(isinstance(v, (str, type(None))) for v in packages.values())
    ):
        return "package_set is not a mapping of names to versions"
    ev["packages"] = {storable_text(str(k)): v and storable_text(v) for k, v in packages.items()}
    return None


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


def _check_trial_started(ev: Event) -> str | None:
    why = _row_problem(ev, "trial_record", skip=("params", "changes", "data_inputs"))
    if why:
        return why
    if not isinstance(ev.get("params") or {}, dict):
        return "params is not a mapping"
    for name in _JSON_OBJECTS:
        if ev.get(name) is not None:
            ev[name] = storable_json(ev[name])
    return None


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


def _check_step(ev: Event) -> str | None:
    return _row_problem(ev, "step_record")


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


def _check_metric(ev: Event) -> str | None:
    if ev.get("value_type") not in (None, *schema.METRIC_VALUE_TYPES):
        return "unknown metric value type"
    return _row_problem(ev, "metric_record")


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


def _check_persisted(ev: Event) -> str | None:
    return _row_problem(ev, "persisted_record")


def artifact(
    trial_uuid: str,
    experiment: str,
    trial_id: int,
    name: str,
    kind: str,
    hash: str,
    size: int,
    files: int,
    step: str | None,
    recorded_at: float,
) -> Event:
    """A file ('file') or folder ('dir') a step logged, stored by hash in ``NAME.artifacts/``."""
    return {
        "t": "artifact",
        **_trial(trial_uuid, experiment, trial_id),
        "name": name,
        "kind": kind,
        "hash": hash,
        "size": size,
        "files": files,
        "step": step,
        "recorded_at": recorded_at,
    }


def _check_artifact(ev: Event) -> str | None:
    if ev["kind"] not in schema.ARTIFACT_KINDS:
        return "unknown artifact kind"
    return _row_problem(ev, "artifact_record")


def trial_finished(uuid: str, status: str, finished_at: float | None, **fields: Any) -> Event:
    """A trial ended: 'succeeded' (with its result), 'failed' or 'interrupted' (with why)."""
    event = {"t": "trial_finished", "uuid": uuid, "status": status, "finished_at": finished_at}
    return _with("trial_finished", event, fields)


def _check_trial_finished(ev: Event) -> str | None:
    if ev["status"] not in STATUSES:
        return "unknown trial status"
    why = _row_problem(ev, "trial_record")
    if why:
        return why
    for name in _JSON_TEXT:
        if ev.get(name) is not None:
            ev[name] = _json_text(ev[name])
    return None


def annotation(
    uuid: str,
    trial_uuid: str,
    experiment: str,
    trial_id: int,
    action: str,
    value: str | None,
    recorded_at: float,
    author: str,
) -> Event:
    """A note, name, tag, untag, star, unstar, delete or restore of a trial
    (``tuixp.store.annotation``): its own ``uuid``, so a merge of stores stores it once."""
    return {
        "t": "annotation",
        "uuid": uuid,
        **_trial(trial_uuid, experiment, trial_id),
        "action": action,
        "value": value,
        "recorded_at": recorded_at,
        "author": author,
    }


def _check_annotation(ev: Event) -> str | None:
    return _row_problem(ev, "annotation_record")


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


def _check_metric_batch(ev: Event) -> str | None:
    from tuixp.store import metric_batch

    why = _row_problem(ev, "metric_record", skip=("name", "epoch", "value", "recorded_at"))
    return why or metric_batch.decode(ev)


def metric_goal(experiment: str, name: str, goal: str) -> Event:
    """Whether a metric's best value is its lowest ('min') or its highest ('max')."""
    return {"t": "metric_goal", "experiment": experiment, "name": name, "goal": goal}


def _check_metric_goal(ev: Event) -> str | None:
    if ev["goal"] not in ("min", "max"):
        return "unknown metric goal"
    if not isinstance(ev["experiment"], str) or not isinstance(ev["name"], str):
        return "metric goal without its experiment and metric names"
    return None


# Each kind's required fields (checked first) and its checker.
_CHECKS: dict[str, tuple[tuple[str, ...], Callable[[Event], str | None]]] = {
    "experiment": (("name",), _check_experiment),
    "blob": (("hash",), _check_blob),
    "code_set": ((), _check_code_set),
    "package_set": (("hash",), _check_package_set),
    "trial_started": (("uuid", "experiment", "trial_id"), _check_trial_started),
    "step": (("trial_uuid", "key"), _check_step),
    "metric": (("trial_uuid", "name", "epoch"), _check_metric),
    "metric_batch": (("trial_uuid", "experiment", "trial_id"), _check_metric_batch),
    "metric_goal": (("experiment", "name", "goal"), _check_metric_goal),
    "persisted": (("trial_uuid", "step"), _check_persisted),
    "artifact": (("trial_uuid", "name", "kind", "hash"), _check_artifact),
    "trial_finished": (("uuid", "status"), _check_trial_finished),
    "annotation": (("uuid", "trial_uuid", "action", "recorded_at"), _check_annotation),
}


def check_event(ev: Event) -> str | None:
    """Why ``ev`` cannot be ingested, or None once it is made storable (it is changed in place)."""
    kind = ev["t"]
    known = _CHECKS.get(kind)
    if known is None:
        return f"unknown event type {kind!r} (written by a newer tuixp?)"
    required, check = known
    for name in required:
        if ev.get(name) is None:
            return f"{kind} event without {name}"
    try:
        return check(ev)
    except RecursionError:
        return "nested too deeply"
