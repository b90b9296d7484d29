"""What a run is doing right now, in one line: the running step, its latest epoch and metrics.

``tuixp run``'s text progress shows ``train · epoch 12 · loss 0.31 · acc 0.69`` (the step that
is running, the latest epoch it saved a metric at, and the latest value of each metric it saved,
so a metric saved every tenth epoch stays on the line) instead of the last step that finished.
``LiveSteps`` keeps that state from the progress events; it is plain data, fed under the
caller's lock. Metric points arrive in batches (``metrics`` events, a few a second whatever the
training loop saves: ``tuixp.execution.metric_news``), so only each batch's last point of each
metric is looked at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEP = " · "
MAX_METRICS = 4  # metrics on the line; more are left out (the line must fit a terminal)


def fmt_metric(value: Any) -> str:
    """A metric value, short: four significant digits, ints as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


@dataclass
class _Task:
    trial_id: int
    step: str
    started: float
    epoch: Any = None
    values: dict[str, Any] = field(default_factory=dict)


class LiveSteps:
    """The tasks running now, and for each its latest epoch and each metric's latest value."""

    def __init__(self) -> None:
        self.tasks: dict[str, _Task] = {}  # by Dask key, in start order
        self.latest: str | None = None  # the key whose news came last
        self.changed = False  # the line changed since ``line()`` was last read

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "task_started" and event.key is not None:
            self.tasks[event.key] = _Task(event.trial_id, event.step or "?", event.time)
            self.latest = event.key
        elif kind in ("task_finished", "task_failed") and event.key is not None:
            self.tasks.pop(event.key, None)
            if self.latest == event.key:
                self.latest = next(reversed(self.tasks), None)
        elif kind == "trial_finished":
            for key in [k for k, t in self.tasks.items() if t.trial_id == event.trial_id]:
                del self.tasks[key]
            if self.latest not in self.tasks:
                self.latest = next(reversed(self.tasks), None)
        elif kind == "metrics":
            self._metrics(event)
            return
        else:
            return
        self.changed = True

    def _metrics(self, event: Any) -> None:
        from tuixp.store.metric_names import is_system_metric

        points = (event.data or {}).get("points") or {}
        # system samples are not the step's own progress
        latest = [
            (name, cols["epoch"][-1], cols["value"][-1])
            for name, cols in points.items()
            if not is_system_metric(str(name)) and cols.get("epoch") and cols.get("value")
        ]
        if not latest:
            return
        task = self._task_of(event.trial_id, event.step)
        if task is None:
            return
        for name, epoch, value in latest:
            if task.epoch is None or not _before(epoch, task.epoch):
                task.epoch = epoch
            task.values[name] = value
        self.changed = True

    def _task_of(self, trial_id: int, step: str | None) -> _Task | None:
        """The running task of this trial and step (the newest, if a retry runs twice)."""
        found = None
        for key, task in self.tasks.items():
            if task.trial_id == trial_id and (step is None or task.step == step):
                found = key
        if found is not None:
            self.latest = found
            return self.tasks[found]
        return None

    def line(self, with_trial: bool | None = None) -> str:
        """``train · epoch 12 · loss 0.31``: the task with the latest news; ``#3 train ...``
        when several trials run; ``trial 3 · train ...`` with ``with_trial``; ``""`` when
        nothing runs."""
        self.changed = False
        if self.latest is None or self.latest not in self.tasks:
            return ""
        task = self.tasks[self.latest]
        several = len({t.trial_id for t in self.tasks.values()}) > 1
        if with_trial:
            parts = [f"trial {task.trial_id}", task.step]
        else:
            parts = [f"#{task.trial_id} {task.step}" if several else task.step]
        if task.epoch is not None:
            parts.append(f"epoch {task.epoch}")
        shown = list(task.values.items())
        parts += [f"{name} {fmt_metric(value)}" for name, value in shown[:MAX_METRICS]]
        if len(shown) > MAX_METRICS:
            parts.append(f"+{len(shown) - MAX_METRICS} more")
        return SEP.join(parts)


def _before(a: Any, b: Any) -> bool:
    try:
        return bool(a < b)
    except TypeError:
        return False
