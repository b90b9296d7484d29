"""Curating the history: annotate trials, delete and restore them, purge them for good.

The one entry point the Python API, the command line and the TUI share, above the store (the
purge also drops the step cache's entries of the purged trials, which ``tuixp.store`` does not
read). The events and how they combine are in ``tuixp.store.annotation``; the purge's removals
in ``tuixp.store.purge``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tuixp.store import annotation
from tuixp.store import purge as purging
from tuixp.store.store import Store

# annotate(store, experiment, trial_ids, action, values): checks everything, then journals and
# ingests the events (see tuixp.store.annotation).
annotate = annotation.annotate
ACTIONS = annotation.ACTIONS


def plan_purge(
    store: Store, experiment: str, trial_ids: Sequence[int | str] | None
) -> purging.PurgePlan:
    """What purging these trials (the experiment's deleted ones when None) would remove."""
    with store.connect() as con:
        return purging.plan(con, experiment, list(trial_ids) if trial_ids is not None else None)


def purge(store: Store, planned: purging.PurgePlan) -> purging.PurgeReport:
    """Remove the planned trials for good (``plan_purge`` first; a person confirms between)."""
    from tuixp.cache import all_cache_objects, forget_trials

    def kept_files(ids: list[int]) -> set[str]:
        forget_trials(store.path, planned.experiment, set(ids))
        return all_cache_objects(store.path)

    with store.connect() as con:
        return purging.execute(store, con, planned, kept_files)
