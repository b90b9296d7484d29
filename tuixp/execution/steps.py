"""What runs inside each Dask task: one step of one trial, on any scheduler.

``run_step`` never lets a step's exception escape: it returns a ``StepFailure`` that the
downstream steps pass along, so one failing trial of a grid fails only itself and the process
that owns the store still learns what every finished step did. Steps running in the owner's
process report live to its recorder; elsewhere (processes, cluster workers) they carry their
records with their output, and on a dask.distributed cluster also publish them live.
"""

from __future__ import annotations

import contextvars
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from tuixp.capture.hashing import content_hash, fingerprint_inputs
from tuixp.capture.seed import StepSeeding, step_seed
from tuixp.execution.remote_metrics import RemotePoints
from tuixp.store.metric_batch import TYPE_CODES


@dataclass(frozen=True)
class TrialContext:
    """What a task needs to know of its trial; small and picklable."""

    experiment: str
    trial_uuid: str
    trial_id: int
    seed: int
    owner_pid: int
    owner_host: str
    purity: bool = True
    # The dask.distributed event topic the owner listens on; steps on cluster workers publish
    # their start, metrics and end there, so the owner learns them live and even when a later
    # step of the trial fails or its worker dies.
    channel: str | None = None
    # The store's file: a step on this machine stores its logged artifacts beside it.
    store_path: str | None = None


@dataclass(frozen=True)
class StepSpec:
    name: str
    func: Callable[..., Any]
    kind: str  # "step", "persist" or "result"


@dataclass
class StepRecord:
    key: str
    step: str
    started_at: float
    finished_at: float
    status: str
    worker: str
    input_hash: str | None = None
    output_hash: str | None = None
    input_repr: str | None = None  # one line: type, shape and hash of each argument
    error: str | None = None
    # The points of a step that ran away from the owner, as chunks (remote_metrics).
    metrics: list[dict[str, Any]] = field(default_factory=list)
    # What the step's seed did (capture.seed.StepSeeding.outcome); the owner puts it in the
    # trial's notes and warns when the seed may not reproduce the step's result.
    seeding: dict[str, Any] | None = None
    input_text: str | None = None  # the arguments' repr, bounded (kept in an impure trial's notes)
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # what log_artifact stored
    # Annotation events the step wrote for its trial (``ex.note(text)`` inside it), journaled by
    # the owner; each has its own uuid, so one that also arrived live is stored once.
    annotations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StepOutput:
    value: Any
    records: dict[str, StepRecord]


@dataclass
class StepFailure:
    """A failed step, passed down the graph in place of its output."""

    key: str
    step: str
    error: BaseException
    error_type: str
    message: str
    traceback: str
    records: dict[str, StepRecord]


@dataclass
class StepScope:
    ctx: TrialContext
    step: str
    key: str
    # The step's points when it runs away from the owner (None: straight into the owner's
    # buffer, through ``local``).
    remote: RemotePoints | None
    local: Any  # the owner's recorder when the step runs in the owner's process, else None
    # The last epoch this step saved of each metric: ``log_metrics`` without an epoch goes on
    # from it (0 first). Read and written through ``epochs``.
    saved_epochs: dict[str, int] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    # log_metrics' short path: the names and epoch of its latest call, put in saved_epochs
    # when they are next read (a dict update a call would cost as much as saving its points).
    # Its calls between two reads all have the same names, so the latest is all there is.
    last_floats: tuple[tuple[str, ...], int] | None = None

    @property
    def epochs(self) -> dict[str, int]:
        if self.last_floats is not None:
            keys, epoch = self.last_floats
            self.last_floats = None
            self.saved_epochs.update(dict.fromkeys(keys, epoch))
        return self.saved_epochs


current_scope: contextvars.ContextVar[StepScope | None] = contextvars.ContextVar(
    "tuixp_step_scope", default=None
)

# Recorders of the trials this process owns, by trial uuid: the live path for local steps.
RECORDERS: dict[str, Any] = {}


def _distributed_worker() -> Any:
    """The dask.distributed Worker running this task, or None outside a cluster worker."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        return get_worker()
    except ValueError:
        return None


def worker_name() -> str:
    worker = _distributed_worker()
    if worker is not None:
        return str(worker.address)
    name = f"{socket.gethostname()}:{os.getpid()}"
    thread = threading.current_thread().name
    return f"{name}/{thread}"


def publish(ctx: TrialContext, kind: str, payload: dict[str, Any]) -> bool:
    """Send an event of this step to the owner through the cluster; False when there is none."""
    if ctx.channel is None:
        return False
    worker = _distributed_worker()
    if worker is None:
        return False
    return _log_event(worker, ctx, kind, payload)


def _log_event(worker: Any, ctx: TrialContext, kind: str, payload: dict[str, Any]) -> bool:
    try:  # from any thread: the worker hands it to its event loop
        worker.log_event(ctx.channel, {"kind": kind, "uuid": ctx.trial_uuid, **payload})
    except Exception:  # noqa: BLE001 - the record still travels with the step's output
        return False
    return True


def _remote_points(ctx: TrialContext, step: str) -> RemotePoints:
    """Where a step away from the trial's owner keeps its metric points: sent live in chunks
    on a cluster (the worker is found here, in the task's thread, for the ticker's sends too),
    else only with the step's record."""
    worker = _distributed_worker() if ctx.channel is not None else None
    if worker is None:
        return RemotePoints(step, None)
    return RemotePoints(step, lambda chunk: _log_event(worker, ctx, "metrics", {"chunk": chunk}))


def _unwrap(value: Any, records: dict[str, StepRecord]) -> tuple[Any, StepFailure | None]:
    """The plain value of a step argument, looking inside lists, tuples and dicts."""
    if isinstance(value, StepOutput):
        records.update(value.records)
        return value.value, None
    if isinstance(value, StepFailure):
        records.update(value.records)
        return None, value
    if isinstance(value, (list, tuple)):
        failure = None
        items = []
        for item in value:
            v, f = _unwrap(item, records)
            failure = failure or f
            items.append(v)
        return (items if isinstance(value, list) else type(value)(items)), failure
    if isinstance(value, dict):
        failure = None
        out = {}
        for k, item in value.items():
            out[k], f = _unwrap(item, records)
            failure = failure or f
        return out, failure
    return value, None


# tuixp's own source files, as the interpreter names them (and resolved, for a symlinked install)
_TUIXP = tuple({str(p.parent.parent) + os.sep for p in (Path(__file__), Path(__file__).resolve())})


def step_traceback(exc: BaseException) -> str:
    """The traceback of a step's exception from the step's own code on: the frames of tuixp
    that called it are left out (all of it when every frame is tuixp's own)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_TUIXP):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _picklable_error(exc: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def run_step(ctx: TrialContext, spec: StepSpec, key: str, *args: Any, **kwargs: Any) -> Any:
    seeding = StepSeeding(step_seed(ctx.seed, spec.name), spec.name, spec.func)
    # Waits for the process's random generators (capture.seed): a step waiting for them has
    # not started, and its recorded start and elapsed time leave the wait out.
    with seeding.held():
        return _run_step(seeding, ctx, spec, key, *args, **kwargs)


def _run_step(
    seeding: StepSeeding, ctx: TrialContext, spec: StepSpec, key: str, *args: Any, **kwargs: Any
) -> Any:
    records: dict[str, StepRecord] = {}
    upstream_failure: StepFailure | None = None
    plain_args = []
    for a in args:
        v, failed = _unwrap(a, records)
        upstream_failure = upstream_failure or failed
        plain_args.append(v)
    plain_kwargs = {}
    for k, a in kwargs.items():
        v, failed = _unwrap(a, records)
        upstream_failure = upstream_failure or failed
        plain_kwargs[k] = v
    if upstream_failure is not None:
        upstream_failure.records = records
        return upstream_failure
    local = RECORDERS.get(ctx.trial_uuid) if os.getpid() == ctx.owner_pid else None
    remote = None if local is not None else _remote_points(ctx, spec.name)
    scope = StepScope(ctx, spec.name, key, remote, local)
    token = current_scope.set(scope)
    worker = worker_name()
    started, clock = time.time(), time.monotonic()  # durations from the monotonic clock
    if local is not None:
        local.on_task_started(key, spec.name, started, worker)
    else:
        publish(
            ctx, "task_started", {"key": key, "step": spec.name, "time": started, "worker": worker}
        )
    # Before the step runs: it may change its arguments in place.
    inputs = fingerprint_inputs(plain_args, plain_kwargs) if ctx.purity else None
    input_hash = inputs.hash if inputs is not None else None
    try:
        with seeding:
            value = spec.func(*plain_args, **plain_kwargs)
    except Exception as exc:  # noqa: BLE001 - reported to the owner, who re-raises it
        finished = started + (time.monotonic() - clock)
        tb = step_traceback(exc)
        record = StepRecord(
            key,
            spec.name,
            started,
            finished,
            "failed",
            worker,
            input_hash,
            None,
            None,
            f"{type(exc).__name__}: {exc}",
            remote.close() if remote is not None else [],
            seeding.outcome or None,
            annotations=scope.annotations,
        )
        record.artifacts = scope.artifacts
        if local is not None:
            local.on_step(record)
        else:
            records[key] = record
            _publish_record(ctx, record, remote)
        return StepFailure(
            key, spec.name, _picklable_error(exc), type(exc).__name__, str(exc), tb, records
        )
    finally:
        current_scope.reset(token)
        if remote is not None:
            remote.stop()
    finished = started + (time.monotonic() - clock)
    output_hash = content_hash(value) if ctx.purity else None
    record = StepRecord(
        key,
        spec.name,
        started,
        finished,
        "succeeded",
        worker,
        input_hash,
        output_hash,
        inputs.summary if inputs is not None else None,
        None,
        remote.close() if remote is not None else [],
        seeding.outcome or None,
        inputs.text if inputs is not None else None,
        annotations=scope.annotations,
    )
    record.artifacts = scope.artifacts
    if local is not None:
        local.on_step(record)
    else:
        records[key] = record
        _publish_record(ctx, record, remote)
    return StepOutput(value, records)


def _publish_record(ctx: TrialContext, record: StepRecord, remote: RemotePoints | None) -> None:
    """The step's end, live on a cluster: its record with only the chunks that did not go live
    (each chunk also travels with the step's output)."""
    if ctx.channel is None:
        return
    fields = {f.name: getattr(record, f.name) for f in dataclass_fields(record)}
    fields["metrics"] = remote.unsent if remote is not None else []
    publish(ctx, "step", {"record": fields})


def run_op(ctx: TrialContext, spec: StepSpec, key: str, *args: Any, **kwargs: Any) -> Any:
    """An operator node of the graph (``a + 1`` on parameters or outputs): its arguments are
    unwrapped and its value passed on like a step's, but it records nothing of its own."""
    records: dict[str, StepRecord] = {}
    plain_args = []
    failure: StepFailure | None = None
    for a in args:
        v, failed = _unwrap(a, records)
        failure = failure or failed
        plain_args.append(v)
    plain_kwargs = {}
    for k, a in kwargs.items():
        plain_kwargs[k], failed = _unwrap(a, records)
        failure = failure or failed
    if failure is not None:
        failure.records = records
        return failure
    try:
        return StepOutput(spec.func(*plain_args, **plain_kwargs), records)
    except Exception as exc:  # noqa: BLE001 - fails the trial like a step would
        return StepFailure(
            key,
            spec.name,
            _picklable_error(exc),
            type(exc).__name__,
            str(exc),
            step_traceback(exc),
            records,
        )


def record_metric(
    name: str, epoch: Any, value: Any, value_type: str = "float", value_int: int | None = None
) -> None:
    scope = current_scope.get()
    if scope is None:
        raise ValueError("save_metric can only be called inside a step while a trial runs")
    scope.epochs[name] = epoch
    local = scope.local
    if local is not None:  # the owner's process: straight into the trial's buffer
        if local.listeners or local.finished:  # shown live, or late news: the long way
            local.add_metric(scope.step, name, epoch, value, value_type, value_int)
        else:
            local.metrics.add(name, epoch, value, TYPE_CODES[value_type], value_int)
        return
    # Away from the owner: into the step's chunks (tuixp.execution.remote_metrics).
    assert scope.remote is not None
    scope.remote.add(name, int(epoch), float(value), TYPE_CODES[value_type], value_int)


def quiet_buffer(scope: Any) -> Any:
    """The trial's metric buffer when points can go straight into it (this process owns the
    trial, nothing shows them live, the trial has not ended), else None."""
    local = scope.local
    if local is None or local.listeners or local.finished:
        return None
    return local.metrics


def record_metrics(scope: Any, points: list[tuple[str, int, float, str, int | None]]) -> None:
    """Several points saved at once in the step ``scope`` (``log_metrics``): one wall time and
    one trip into the trial's buffer for all of them, when nothing watches them live."""
    buffer = quiet_buffer(scope)
    if buffer is None:
        for point in points:
            record_metric(*point)
        return
    epochs = scope.epochs
    for point in points:
        epochs[point[0]] = point[1]
    buffer.add_many(points)


def record_artifact(path: Any, name: str | None) -> dict[str, Any]:
    """Store the file or folder at ``path`` beside the trial's store and record it."""
    from tuixp.store.artifacts import ArtifactError, ArtifactStore
    from tuixp.store.paths import StorePaths

    scope = current_scope.get()
    if scope is None:
        raise ValueError("log_artifact can only be called inside a step while a trial runs")
    ctx = scope.ctx
    if ctx.store_path is None or socket.gethostname() != ctx.owner_host:
        # The bytes would land on this worker's disk, not beside the store.
        raise ArtifactError(
            f"log_artifact runs on the machine that holds the store ({ctx.owner_host}); this "
            f"step runs on {socket.gethostname()}: return the data from an @ex.persist step"
        )
    art = ArtifactStore(StorePaths(Path(ctx.store_path)).artifacts).put(path, name)
    event = {
        "name": art.name,
        "kind": art.kind,
        "hash": art.hash,
        "size": art.size,
        "files": art.files,
        "step": scope.step,
        "recorded_at": time.time(),
        "aid": uuid.uuid4().hex[:16],  # counted once, whichever route it takes to the owner
    }
    if scope.local is not None:
        scope.local.on_artifact(event)
    else:
        scope.artifacts.append(event)
        publish(ctx, "artifact", {"artifact": event})
    return event


def record_annotations(events: list[dict[str, Any]]) -> None:
    """Annotation events for the running step's trial (``ex.note(text)`` inside a step): the
    owner journals them now when the step runs in its process, else they travel back with the
    step's record (and live through the cluster)."""
    scope = current_scope.get()
    if scope is None:
        raise ValueError("an annotation without a trial id can only be made inside a step")
    if scope.local is not None:
        scope.local.store.record(events)
    else:
        scope.annotations.extend(events)
        publish(scope.ctx, "annotation", {"events": events})
