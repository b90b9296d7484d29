"""The owner's side of a trial: turns its lifecycle into journal events and progress events.

One ``TrialRecorder`` per trial, in the process that owns the store. Steps running in this
process call it live (from their worker threads); steps elsewhere hand their records back with
their output and ``absorb`` replays them here; steps on a cluster also publish them live and
``on_remote`` takes them. Whatever arrives twice by two routes (a step's record, a metric) is
recorded once.

A trial is *queued* from its start until its first step starts (a grid's trials wait for the
scheduler's threads or workers): each step's start is journaled as a ``running`` step row, so
readers tell queued trials (no step row yet) from running ones, and the trial's end carries its
first step's start, which becomes its ``started_at``: its elapsed time leaves the wait out (the
wait is kept in its notes). Durations come from the monotonic clock, anchored at a wall-clock
start, so a clock that jumps back never makes an elapsed time negative.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tuixp.capture.seed import seeding_notes, seeding_problem
from tuixp.execution import metric_buffer, metric_news, remote_metrics
from tuixp.execution.events import Listener, ProgressEvent
from tuixp.execution.sampler import SAMPLER
from tuixp.execution.steps import StepRecord
from tuixp.store import events as journal_events
from tuixp.store.flags import QUEUE_NOTE
from tuixp.store.store import Store

logger = logging.getLogger("tuixp")
QUEUE_NOTE_AFTER = 0.1  # seconds of waiting for a first step worth a note on the trial


def result_fields(value: Any) -> dict[str, Any]:
    """How a result is kept: JSON when it round-trips, else its repr; numbers also as a double."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an int beyond a double has no number
            number = float(value) if math.isfinite(float(value)) else None
    elif type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        try:
            value = value.item()
            number = float(value) if math.isfinite(float(value)) else None
        except (TypeError, ValueError, OverflowError):
            pass
    try:
        text = json.dumps(value, allow_nan=False)
        if json.loads(text) != value:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        try:
            r = repr(value)
        except Exception:  # noqa: BLE001 - a result whose repr fails is still a result
            r = f"<{type(value).__name__} object: its repr failed>"
        text = json.dumps(r if len(r) <= 10_000 else r[:10_000] + "...")
    return {"result": text, "result_type": str(type(value)), "result_value": number}


@dataclass
class TrialRecorder:
    store: Store
    experiment: str
    trial_id: int
    uuid: str
    listeners: list[Listener] = field(default_factory=list)
    steps_seen: dict[str, StepRecord] = field(default_factory=dict)
    finished: bool = False
    # Seconds between system-metric samples while the trial runs (``execution.sampler``); None: off.
    sample_every: float | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        # Tasks that said they started and have no record yet: (step, start time, worker).
        self._running: dict[str, tuple[str, float, str | None]] = {}
        self._metric_ids: set[str] = set()  # the chunks of remote steps received (their cid)
        self._artifact_ids: set[str] = set()
        self._finishing = False
        # (wall clock, monotonic clock) at the trial's start and at its first step's start.
        self._began: tuple[float, float] = (time.time(), time.monotonic())
        self._first_step: tuple[float, float] | None = None
        # Metric points wait here until the next flush (tuixp.execution.metric_buffer).
        self.metrics = metric_buffer.MetricBuffer(
            self.store, self.uuid, self.experiment, self.trial_id
        )
        # ... and wait there to be shown, in batches (tuixp.execution.metric_news).
        self.news = metric_news.MetricNews(self._send_metrics)

    def _clock_at(self, wall: float) -> tuple[float, float]:
        """``wall`` (a time just past, maybe on another machine) with this process's monotonic
        reading at that moment; a wall time ahead of ours counts as now."""
        return wall, time.monotonic() - max(0.0, time.time() - wall)

    def _now(self) -> float:
        """Now, as a wall-clock time that never goes back past the trial's starts: the anchor
        plus the monotonic time since."""
        wall, mono = self._first_step or self._began
        return wall + (time.monotonic() - mono)

    def _step_began(self, wall: float) -> None:
        """A step started at ``wall``: the first one ends the trial's queued time. Locked."""
        if self._first_step is None:
            self._first_step = self._clock_at(wall)

    def emit(self, kind: str, t: float | None = None, **kw: Any) -> None:
        # Once the trial has finished, late news (a step thread that outlived a Ctrl-C, a
        # duplicate from the cluster) is still stored but no longer shown: listeners see every
        # trial's events between its trial_started and its trial_finished.
        if not self.listeners or (self.finished and kind != "trial_finished"):
            return
        ev = ProgressEvent(kind, self.experiment, self.trial_id, t or time.time(), **kw)
        for listener in self.listeners:
            listener(ev)

    def start(self, started: dict[str, Any], texts: list[dict[str, Any]]) -> None:
        """Journal the trial's start. Not synced here: ``runner.execute`` syncs the journal once
        for all the trials of a run before any step runs (a grid of 64 trials paid 64 fsyncs)."""
        self._began = self._clock_at(started["started_at"])
        self.store.trial_began()
        try:
            self.store.record([*texts, started])
        except BaseException:
            self.store.trial_ended()  # it never started: the store's count must not keep it
            raise
        if self.sample_every:
            SAMPLER.watch(self, self.sample_every)
        self.emit(
            "trial_started",
            started["started_at"],
            data={"params": started.get("params", {}), "seed": started.get("seed")},
        )

    def _step_event(
        self, key: str, step: str, started: float, finished: float | None, status: str, worker: Any
    ) -> dict[str, Any]:
        return journal_events.step(
            self.uuid, self.experiment, self.trial_id, key, step, started, finished, status, worker
        )

    def on_task_started(self, key: str, step: str, t: float, worker: str | None) -> None:
        with self._lock:
            if key in self.steps_seen:
                return
            again = key in self._running  # a retry, or the same news by a second route
            self._running[key] = (step, t, worker)
            self._step_began(t)
            if not again:
                # Journaled under the lock: the step's end (``on_step``) is always written after.
                self.store.record([self._step_event(key, step, t, None, "running", worker)])
        self.emit("task_started", t, key=key, step=step, worker=worker)

    def add_metric(
        self,
        step: str,
        name: str,
        epoch: int,
        value: float,
        value_type: str,
        value_int: int | None,
        recorded_at: float | None = None,
    ) -> None:
        """A point saved by a step: buffered (journaled at the next flush), shown live in the
        next batch (``metric_news``). (``steps.record_metric`` does the same for a step in this
        process, inlined, when nothing listens.)"""
        self.metrics.add(
            name, epoch, value, _TYPE_CODES.get(value_type, _FLOAT), value_int, recorded_at
        )
        if self.finished:  # late news (a step thread that outlived a Ctrl-C): journaled now
            self.metrics.flush()
        if self.listeners and not self.finished:
            self.news.add(step or None, name, epoch, value)

    def _send_metrics(self, step: str | None, points: metric_news.Points) -> None:
        """One batch of points to the listeners: a ``metrics`` event (docs/events.md)."""
        self.emit("metrics", step=step, data={"points": points})

    def on_metric(self, event: dict[str, Any]) -> None:
        """One point as an event dict (a system metric reading, ``sampler.system_metric``)."""
        self.add_metric(
            event.get("step") or "",
            event["name"],
            int(event["epoch"]),
            float(event["value"]),
            event.get("value_type") or "float",
            event.get("value_int"),
            event.get("recorded_at"),
        )

    def on_metric_chunk(self, chunk: dict[str, Any]) -> None:
        """Points of a step away from the owner, in one chunk (``remote_metrics``); a chunk
        that arrives twice (live, then with the step's record) is counted once."""
        with self._lock:
            if chunk["cid"] in self._metric_ids:
                return
            self._metric_ids.add(chunk["cid"])
        cols = remote_metrics.columns(chunk)
        names = chunk["names"]
        self.metrics.add_columns(names, cols, chunk["ints"])
        if self.finished:  # late news: journaled now
            self.metrics.flush()
        if self.listeners and not self.finished:
            step = chunk.get("step") or None
            for code, epoch, value in zip(cols[0], cols[1], cols[2]):
                self.news.add(step, names[code], epoch, value)

    def on_artifact(self, event: dict[str, Any]) -> None:
        """A file or folder a step stored with ``log_artifact`` (``steps.record_artifact``)."""
        with self._lock:
            if event["aid"] in self._artifact_ids:
                return
            self._artifact_ids.add(event["aid"])
        fields = {k: v for k, v in event.items() if k != "aid"}
        self.store.record(
            [journal_events.artifact(self.uuid, self.experiment, self.trial_id, **fields)]
        )

    def on_step(self, rec: StepRecord) -> None:
        with self._lock:
            if rec.key in self.steps_seen:
                return
            self.steps_seen[rec.key] = rec
            self._running.pop(rec.key, None)
            self._step_began(rec.started_at)
        for chunk in rec.metrics:
            self.on_metric_chunk(chunk)
        self.metrics.flush()  # the step's points are journaled before its end
        self.news.flush()  # ... and shown before it
        for a in rec.artifacts:
            self.on_artifact(a)
        if rec.annotations:
            self.store.record(rec.annotations)
        problem = seeding_problem(rec.seeding)
        if problem:
            logger.warning(
                "Seed may not reproduce step %s of trial %d of %s: %s",
                rec.step,
                self.trial_id,
                self.experiment,
                problem,
            )
        step_event = journal_events.step(
            self.uuid,
            self.experiment,
            self.trial_id,
            rec.key,
            rec.step,
            rec.started_at,
            rec.finished_at,
            rec.status,
            rec.worker,
            input_hash=rec.input_hash,
            output_hash=rec.output_hash,
            error=rec.error,
        )
        self.store.record([step_event])
        kind = "task_finished" if rec.status == "succeeded" else "task_failed"
        self.emit(
            kind,
            rec.finished_at,
            key=rec.key,
            step=rec.step,
            worker=rec.worker,
            status=rec.status,
            data={
                "started": rec.started_at,
                "elapsed": rec.finished_at - rec.started_at,
                **({"error": rec.error} if rec.error else {}),
            },
        )

    def absorb(self, records: dict[str, StepRecord]) -> None:
        """Records that travelled back with a remote step's output."""
        for rec in sorted(records.values(), key=lambda r: r.started_at):
            self.on_step(rec)

    def on_remote(self, msg: dict[str, Any]) -> None:
        """An event a step published from a cluster worker (see ``steps.publish``)."""
        kind = msg.get("kind")
        if kind == "task_started":
            self.on_task_started(msg["key"], msg["step"], msg["time"], msg.get("worker"))
        elif kind == "metrics":
            self.on_metric_chunk(msg["chunk"])
        elif kind == "artifact":
            self.on_artifact(msg["artifact"])
        elif kind == "annotation":
            self.store.record(msg["events"])
        elif kind == "step":
            self.on_step(StepRecord(**msg["record"]))

    def _end_unfinished_tasks(self, status: str, finished_at: float, reason: str | None) -> None:
        """Tasks that started and never reported an end take the trial's end as theirs."""
        with self._lock:
            running, self._running = self._running, {}
        for key, (step, started_at, worker) in running.items():
            self.on_step(
                StepRecord(
                    key,
                    step,
                    started_at,
                    max(finished_at, started_at),
                    status,
                    worker or "",
                    error=reason,
                )
            )

    def finish(
        self,
        status: str,
        finished_at: float | None = None,
        result: Any = None,
        error: BaseException | None = None,
        error_type: str | None = None,
        message: str | None = None,
        traceback_text: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
        with self._lock:
            if self.finished or self._finishing:
                return
            self._finishing = True
        SAMPLER.unwatch(self)  # before the end is journaled: no sample follows it
        start = (self._first_step or self._began)[0]
        if not finished_at or finished_at < start:  # a wall clock read after it was set back
            finished_at = self._now()
        if status != "succeeded":
            reason = message if message is not None else (str(error) if error else None)
            kind = error_type or (type(error).__name__ if error is not None else status)
            self._end_unfinished_tasks(
                status if status == "interrupted" else "failed",
                finished_at,
                f"{kind}: {reason}" if reason else kind,
            )
        self.news.flush()  # every point shown before the trial's end
        self.finished = True
        self.news.close()
        fields: dict[str, Any] = {}
        texts = []
        if status == "succeeded":
            fields.update(result_fields(result))
        else:
            if error is not None:
                error_type = error_type or type(error).__name__
                message = message if message is not None else str(error)
            fields["error_type"] = error_type
            fields["error_message"] = message
            if traceback_text:
                from tuixp.capture.hashing import text_hash

                h = text_hash(traceback_text)
                fields["traceback_hash"] = h
                texts = self.store.blob_events({h: traceback_text})
        with self._lock:
            steps = sorted(self.steps_seen.values(), key=lambda r: r.started_at)
        notes = [*(notes or []), *seeding_notes((r.step, r.seeding) for r in steps)]
        if self._first_step is not None:
            # The trial ran from its first step's start: its elapsed time leaves the queue out.
            fields["started_at"] = self._first_step[0]
            waited = self._first_step[1] - self._began[1]
            if waited >= QUEUE_NOTE_AFTER:
                notes.append(QUEUE_NOTE.format(waited))
        if notes:
            fields["notes"] = json.dumps(notes)
        event = journal_events.trial_finished(self.uuid, status, finished_at, **fields)
        try:
            try:
                self.metrics.flush()  # every point before the end, which is fsynced
            finally:
                metric_buffer.forget(self.metrics)
            self.store.record([*texts, event], sync=True)
        finally:
            self.store.trial_ended()
        self.emit(
            "trial_finished",
            finished_at,
            status=status,
            data={
                "result": event.get("result"),
                "error": event.get("error_type"),
                "message": event.get("error_message"),
            },
        )


_TYPE_CODES = metric_buffer.TYPE_CODES
_FLOAT = metric_buffer.FLOAT
