"""What ``tuixp merge`` (and ``tuixp pull``) report: per experiment, the trials added,
updated, skipped and in conflict, or what a dry run would do (``tuixp.store.merge``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExperimentMerge:
    experiment: str
    added: int = 0
    updated: int = 0
    skipped: int = 0
    conflicts: int = 0
    first_id: int | None = None
    last_id: int | None = None


@dataclass
class MergeReport:
    """What a merge added, updated, skipped and found in conflict (or would, in a dry run)."""

    source: str
    source_store: str
    source_host: str | None
    target: str
    dry_run: bool
    experiments: dict[str, ExperimentMerge] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    objects_copied: int = 0
    objects_missing: int = 0

    def totals(self) -> dict[str, int]:
        keys = ("added", "updated", "skipped", "conflicts")
        return {k: sum(getattr(e, k) for e in self.experiments.values()) for k in keys}

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_store": self.source_store,
            "source_host": self.source_host,
            "target": self.target,
            "dry_run": self.dry_run,
            "totals": self.totals(),
            "experiments": [vars(e) for e in self.experiments.values()],
            "conflicts": self.conflicts,
            "objects_copied": self.objects_copied,
            "objects_missing": self.objects_missing,
            "notes": self.notes,
        }
