"""The files beside a store: the one place that names them.

A store is one DuckDB file, ``NAME``; everything else tuixp keeps for it sits beside it, named
after it:

========================  ====================================================================
``NAME.wal``              DuckDB's write-ahead log (DuckDB names it; tuixp watches it)
``NAME.journal/``         one JSON-lines journal per writing process (``store.journal``)
``NAME.ids``              the trial-id counter and its lock (``store.ids``)
``NAME.objects/``         persisted step outputs, content-addressed (``store.objects``)
``NAME.artifacts/``       logged artifacts (files, folders), content-addressed (``store.artifacts``)
``NAME.state/``           the last trial's code and environment per experiment (``changes``)
``NAME.cache/``           the step cache index per experiment (``cache``)
``NAME.sql_history``      the TUI SQL console's history (``tui.screens.sql``)
``NAME.demo/``            the demo's copy of its script (``demo``)
``.NAME.new-TAG``         a new store being built before it is moved into place (``store.db``)
========================  ====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StorePaths:
    """The paths of the files beside the store ``db``; nothing is created or checked."""

    db: Path

    def _beside(self, suffix: str) -> Path:
        return self.db.with_name(self.db.name + suffix)

    @property
    def wal(self) -> Path:
        return self._beside(".wal")

    @property
    def journal(self) -> Path:
        return self._beside(".journal")

    @property
    def ids(self) -> Path:
        return self._beside(".ids")

    @property
    def objects(self) -> Path:
        return self._beside(".objects")

    @property
    def artifacts(self) -> Path:
        return self._beside(".artifacts")

    @property
    def state(self) -> Path:
        return self._beside(".state")

    @property
    def cache(self) -> Path:
        return self._beside(".cache")

    @property
    def sql_history(self) -> Path:
        return self._beside(".sql_history")

    @property
    def demo(self) -> Path:
        return self._beside(".demo")

    def new_file(self, tag: str) -> Path:
        """A hidden name beside the store for a new store file being built (``.NAME.new-TAG``)."""
        return self.db.with_name(f".{self.db.name}.new-{tag}")

    def beside(self) -> dict[str, Path]:
        """Every file and folder tuixp may keep beside the store, by name (the database's own
        WAL included, the short-lived new-store files not)."""
        names = (
            "wal",
            "journal",
            "ids",
            "objects",
            "artifacts",
            "state",
            "cache",
            "sql_history",
            "demo",
        )
        return {n: getattr(self, n) for n in names}
