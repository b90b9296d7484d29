"""Progress events: one type for everything a run reports, whatever the scheduler.

The same objects feed ``tuixp run --progress jsonl`` (docs/events.md), the TUI's live view and
the store's ``steps`` view.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

KINDS = (
    "trial_started",
    "trial_finished",
    "task_started",
    "task_finished",
    "task_failed",
    "metrics",  # a batch of metric points (tuixp.execution.metric_news)
)


@dataclass
class ProgressEvent:
    kind: str
    experiment: str
    trial_id: int
    time: float
    key: str | None = None
    step: str | None = None
    worker: str | None = None
    status: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # Shallow: ``asdict`` would copy a batch of metric points first (1.3 us a point).
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d = {k: v for k, v in d.items() if v is not None and v != {}}
        return json.dumps(d, default=repr, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> "ProgressEvent":
        d = json.loads(line)
        return cls(**{k: d[k] for k in d if k in cls.__dataclass_fields__})


Listener = Callable[[ProgressEvent], None]
