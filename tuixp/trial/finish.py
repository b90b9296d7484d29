"""Finishing a trial: its outputs become persisted objects, its purity is checked, the cache is
filled, and its end is recorded (``trial_finished``).

``finish_trial`` is the ``finish`` callable ``tuixp.execution.runner.execute`` calls for each
trial whose outputs are all in. Reused steps (cache hits found while planning) are recorded
here too, at the trial's start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from tuixp import errors, purity
from tuixp.cache import CacheEntry, StepCache
from tuixp.capture.environment import imported_distributions
from tuixp.execution.steps import StepFailure, StepOutput
from tuixp.graph import TrialOutcome
from tuixp.store import events as journal_events
from tuixp.store.objects import ObjectStore

if TYPE_CHECKING:
    from tuixp.experiment import Experiment
    from tuixp.trial.plan import TrialPlan

logger = logging.getLogger("tuixp")

PURITY_LOAD_WAIT_S = 10.0  # at most this long a trial's end waits to read earlier outputs


def _size(path: Any) -> int | None:
    try:
        return int(os.path.getsize(path))
    except OSError:
        return None


def finish_trial(ex: Experiment, plan: TrialPlan, outputs: dict[str, Any]) -> TrialOutcome:
    """Record a trial's end from its outputs (result and persisted keys)."""
    rec = plan.recorder
    out = outputs.get(plan.result_key)
    if isinstance(out, StepFailure):
        rec.absorb(out.records)
        rec.finish(
            "failed",
            error=out.error,
            error_type=out.error_type,
            message=out.message,
            traceback_text=out.traceback,
        )
        logger.error(
            "Trial %d of %s failed in step %s: %s: %s",
            plan.ctx.trial_id,
            ex.id,
            out.step,
            out.error_type,
            out.message,
        )
        return TrialOutcome(plan.ctx.trial_id, plan.params, "failed", error=out.error)
    assert isinstance(out, StepOutput), out
    rec.absorb(out.records)
    notes, kept = persist(ex, plan, outputs)
    notes += check_purity(ex, plan)
    fill_cache(ex, plan, kept)
    rec.finish("succeeded", result=out.value, notes=notes)
    return TrialOutcome(plan.ctx.trial_id, plan.params, "succeeded", result=out.value)


def persist(
    ex: Experiment, plan: TrialPlan, outputs: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """Keep persisted outputs; the notes on what could not be kept, and what was, by step."""
    notes = []
    kept: dict[str, tuple[str, str]] = {}
    objects = ObjectStore(ex.store.objects_dir)
    events = []
    for step, key in plan.persist_keys.items():
        out = outputs.get(key)
        if not isinstance(out, StepOutput):
            continue
        try:
            digest, fmt, size = objects.put(out.value)
        except Exception as exc:  # noqa: BLE001 - the trial stands; say what was not kept
            notes.append(f"could not persist the output of {step}: {type(exc).__name__}: {exc}")
            logger.warning("Could not persist the output of %s: %s", step, exc)
            continue
        kept[step] = (digest, fmt)
        logger.info("Saved the output of %s (trial id=%d)", step, plan.ctx.trial_id)
        ids = (plan.ctx.trial_uuid, ex.id, plan.ctx.trial_id)
        events.append(journal_events.persisted(*ids, step, digest, fmt, size))
    if events:
        ex.store.record(events)
    return notes, kept


def start_purity_load(ex: Experiment) -> None:
    """Read earlier outputs by (step, purity key) from the store, in the background.

    The steps never wait for it; a trial's end waits for it at most ``PURITY_LOAD_WAIT_S``
    (a short trial in a new process, ``tuixp run``, ends before the read does and would
    compare with nothing). A store busy longer: the check uses what this process has seen.
    """
    if ex._purity is not None:
        return
    ex._purity = {}
    loaded = ex._purity_loaded = threading.Event()
    if not ex.store.path.exists():
        loaded.set()
        return

    def load() -> None:
        try:
            with ex.store.connect(timeout=PURITY_LOAD_WAIT_S / 2) as con:
                found = purity.load_history(con, ex.id)
            with ex._purity_lock:
                assert ex._purity is not None
                for k, v in found.items():
                    ex._purity.setdefault(k, v)
        except errors.StoreError as exc:
            logger.debug("purity check: earlier outputs not read (%s)", exc)
        finally:
            loaded.set()

    threading.Thread(target=load, name="tuixp-purity-load", daemon=True).start()


def check_purity(ex: Experiment, plan: TrialPlan) -> list[str]:
    rec = plan.recorder
    loaded = getattr(ex, "_purity_loaded", None)
    if loaded is not None and not loaded.wait(PURITY_LOAD_WAIT_S):
        logger.debug("purity check: earlier outputs still being read; compared with this process's")
    with ex._purity_lock:
        seen = ex._purity if ex._purity is not None else {}
        notes, impure = purity.check(
            seen, rec.steps_seen.values(), rec.trial_id, plan.source_hashes, plan.context
        )
    for step in impure:
        StepCache(ex.store.path, ex.id).mark_impure(step)
    return notes


# -- the step cache --------------------------------------------------------------------


def record_reused(ex: Experiment, plan: TrialPlan) -> None:
    objects = ObjectStore(ex.store.objects_dir)
    now = time.time()
    events = []
    for step, entry in plan.reused.items():
        key = f"{step}-{plan.ctx.trial_id}-reused"
        ids = (plan.ctx.trial_uuid, ex.id, plan.ctx.trial_id)
        events.append(
            journal_events.step(
                *ids,
                key,
                step,
                now,
                now,
                "reused",
                None,
                input_hash=None,
                output_hash=entry.output_hash,
                reused_from=entry.trial_id,
            )
        )
        size = _size(objects.path_of(entry.object_hash, entry.format))
        events.append(journal_events.persisted(*ids, step, entry.object_hash, entry.format, size))
        plan.recorder.emit(
            "task_finished",
            now,
            key=key,
            step=step,
            status="reused",
            data={"reused_from": entry.trial_id, "elapsed": 0.0},
        )
        logger.info("Step %s reused from trial %d", step, entry.trial_id)
    ex.store.record(events)


def fill_cache(ex: Experiment, plan: TrialPlan, kept: dict[str, tuple[str, str]]) -> None:
    """After a succeeded trial: cache entries for the cached steps it computed."""
    if not plan.cache_keys:
        return
    cache = StepCache(ex.store.path, ex.id)
    impure = cache.impure_steps()
    outputs = {
        r.step: r.output_hash for r in plan.recorder.steps_seen.values() if r.status == "succeeded"
    }
    for step, key in plan.cache_keys.items():
        if step in plan.reused or step in impure or step not in kept:
            continue
        digest, fmt = kept[step]
        packages = imported_distributions(plan.cache_imports.get(step, ()))
        cache.put(
            key, CacheEntry(step, plan.ctx.trial_id, digest, fmt, outputs.get(step), packages)
        )
