"""Planning the trials of one ``compute()``: everything that can be refused is checked, then
each trial gets its id, seed, context and recorder, reusable cached steps are replaced by their
stored outputs, and the ``TrialPlan``s go to ``tuixp.execution.runner``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuixp import errors, purity
from tuixp.cache import CacheEntry, DataFile, StepCache, cache_key, data_hash, token
from tuixp.capture.environment import changed_distributions, code_imports
from tuixp.capture.hashing import text_hash
from tuixp.capture.seed import apply_seed, new_seed
from tuixp.execution import steps as steps_mod
from tuixp.execution.events import Listener
from tuixp.execution.recorder import TrialRecorder
from tuixp.execution.sampler import interval as sample_interval
from tuixp.execution.steps import TrialContext
from tuixp.graph import (
    UNDEFINED,
    Node,
    ParamNode,
    TrialOutcome,
    child_nodes,
    data_files,
    graph_nodes,
    script_hint,
    substitute,
    walk,
)
from tuixp.store import events as journal_events
from tuixp.store.objects import ObjectStore
from tuixp.trial.finish import finish_trial, record_reused, start_purity_load
from tuixp.trial.world import CodeWarnedFilter, StateFile, capture_world, texts_and_refs

if TYPE_CHECKING:
    from tuixp.execution.schedulers import Scheduler
    from tuixp.experiment import Experiment

logger = logging.getLogger("tuixp")


@dataclass
class TrialPlan:
    ctx: TrialContext
    params: dict[str, Any]
    recorder: TrialRecorder
    recorded: dict[str, Any]
    result_key: str
    persist_keys: dict[str, str]
    cache_keys: dict[str, str] = field(default_factory=dict)  # cached step -> its cache key
    reused: dict[str, CacheEntry] = field(default_factory=dict)  # step -> entry it reused
    # cached step -> the modules its code and the code of the steps it reads import
    cache_imports: dict[str, set[str]] = field(default_factory=dict)
    source_hashes: dict[str, str] = field(default_factory=dict)  # step -> its source's hash
    context: str = ""  # what else its steps' outputs may depend on (tuixp.purity)


def run_trials(
    ex: Experiment,
    node: Node,
    points: list[dict[str, Any]],
    seed: int | None,
    scheduler: str | None,
    listeners: list[Listener],
    cache: bool = True,
    worker_timeout: float | None = None,
) -> list[TrialOutcome]:
    """Plan, run and record one trial per point (``Node.compute`` and ``compute_grid``)."""
    # Dask is imported at the first trial, not with tuixp.experiment (a script starts sooner).
    from tuixp.execution.runner import execute
    from tuixp.execution.schedulers import get_scheduler

    script_hint["ran"] = True
    # 1. Everything that can be refused is checked before a trial id is used.
    param_sets = [ex._values(p) for p in points]
    recorded = [_normalize_params(v) for v in param_sets]
    sched = get_scheduler(scheduler, worker_timeout=worker_timeout)
    # 2. The world the trials run in, and what changed in it since the previous trial.
    world, changes = _world_and_changes(ex, node)
    texts, refs = texts_and_refs(ex, world)
    start_purity_load(ex)
    # 3. One plan a trial: its id, seed, context and recorder.
    plans = _new_plans(ex, param_sets, recorded, seed, sched, listeners, world, refs)
    # 4. The Dask graph of all the trials, reusable cached steps replaced by their outputs.
    dsk = _graph(ex, node, plans, world, cache)
    # 5. Every trial's start journaled, then the run; each trial is finished by finish_trial.
    _start(ex, plans, sched.name, changes, world, refs, texts, seed)
    if sched.kind == "local" and sched.name != "processes":
        apply_seed(plans[0].ctx.seed)
    try:
        outcomes = execute(
            ex.store, ex.id, sched, dsk, plans, lambda plan, out: finish_trial(ex, plan, out)
        )
        for o in outcomes:
            logger.info("Finished Experiment (trial id=%d)", o.trial_id)
        return outcomes
    finally:
        for plan in plans:
            steps_mod.RECORDERS.pop(plan.ctx.trial_uuid, None)


def _world_and_changes(ex: Experiment, node: Node) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The world as it is now (with the data inputs' hashes) and its changes since the previous
    trial, warned once; the store path is checked first (refused: nothing written)."""
    world = capture_world(ex)
    world["data"] = {d: data_hash(d) for d in data_files(node)}
    ex.store.check_target()  # a store path that cannot be used: refused, nothing written
    if ex._state is None:
        ex._state = StateFile(ex.store.path, ex.id)
    with CodeWarnedFilter(ex._code_warned):  # warned when the step was redefined
        changes = ex._state.compare_and_update(world)
    ex._code_warned.clear()
    if world["unreadable"]:
        logger.warning(
            "Source not available for step(s) %s; their code is recorded by hash only",
            ", ".join(world["unreadable"]),
        )
    return world, changes


def _new_plans(
    ex: Experiment,
    param_sets: list[dict[str, Any]],
    recorded: list[dict[str, Any]],
    seed: int | None,
    sched: Scheduler,
    listeners: list[Listener],
    world: dict[str, Any],
    refs: dict[str, Any],
) -> list[TrialPlan]:
    base_seed = seed if seed is not None else ex.seed
    source_hashes = {name: text_hash(src) for name, src in world["code"].items()}
    context = purity.world_context(world, refs["packages_hash"])
    sample_every = sample_interval(ex.system_metrics)
    ids = ex.store.counter.next_ids(ex.id, len(param_sets))
    plans: list[TrialPlan] = []
    for trial_id, values, rec_values in zip(ids, param_sets, recorded):
        trial_seed = base_seed if base_seed is not None else new_seed()
        u = uuidlib.uuid4().hex
        ctx = TrialContext(
            ex.id,
            u,
            trial_id,
            trial_seed,
            os.getpid(),
            socket.gethostname(),
            channel=sched.channel,
            store_path=str(ex.store.path),
        )
        rec = TrialRecorder(ex.store, ex.id, trial_id, u, listeners, sample_every=sample_every)
        plans.append(
            TrialPlan(
                ctx,
                values,
                rec,
                rec_values,
                "",
                {},
                source_hashes=source_hashes,
                context=context,
            )
        )
    return plans


def _graph(
    ex: Experiment, node: Node, plans: list[TrialPlan], world: dict[str, Any], cache: bool
) -> dict[str, Any]:
    """The Dask graph of every trial; each plan learns its result and persisted keys."""
    from tuixp.execution.runner import build_graph

    if cache and any(n.step.cache for n in graph_nodes(node)):
        py = world["environment"]["python"]
        python = f"{py.get('implementation')} {py.get('version')}"
        dsk = {}
        for plan in plans:
            trial_node = plan_cache(ex, node, plan, world["data"], python)
            part, ((result_key, persist_keys),) = build_graph(trial_node, [(plan.ctx, plan.params)])
            dsk.update(part)
            plan.result_key, plan.persist_keys = result_key, persist_keys
        return dsk
    dsk, keys = build_graph(node, [(p.ctx, p.params) for p in plans])
    for plan, (result_key, persist_keys) in zip(plans, keys):
        plan.result_key, plan.persist_keys = result_key, persist_keys
    return dsk


def _start(
    ex: Experiment,
    plans: list[TrialPlan],
    scheduler: str,
    changes: list[dict[str, str]],
    world: dict[str, Any],
    refs: dict[str, Any],
    texts: list[dict[str, Any]],
    seed: int | None,
) -> None:
    """Journal each trial's start (the world's new texts with the first) and its reused steps."""
    started = time.time()
    begun: list[TrialPlan] = []
    try:
        for i, plan in enumerate(plans):
            steps_mod.RECORDERS[plan.ctx.trial_uuid] = plan.recorder
            started_event = journal_events.trial_started(
                plan.ctx.trial_uuid,
                ex.id,
                plan.ctx.trial_id,
                started,
                plan.ctx.seed,
                plan.recorded,
                host=plan.ctx.owner_host,
                pid=plan.ctx.owner_pid,
                script=ex.script,
                scheduler=scheduler,
                changes=changes,
                data=world["data"],
                **refs,
            )
            plan.recorder.start(started_event, texts if i == 0 else [])
            begun.append(plan)
            _log_started(plan, seed is not None or ex.seed is not None)
            if plan.reused:
                record_reused(ex, plan)
    except BaseException as exc:
        # A start the store refused (a full disk): end the trials already started, or they
        # would show as running for as long as this process lives.
        for plan in plans:
            steps_mod.RECORDERS.pop(plan.ctx.trial_uuid, None)
        for plan in begun:
            try:
                plan.recorder.finish("failed", error=exc)
            except Exception:  # noqa: BLE001 - still full: it ends as interrupted later
                logger.debug("could not record the end of trial %d", plan.ctx.trial_id)
        raise


def _log_started(plan: TrialPlan, seed_given: bool) -> None:
    """daskperiment's INFO lines at a trial's start."""
    tid = plan.ctx.trial_id
    logger.info("Started Experiment (trial id=%d)", tid)
    logger.info("Parameters: %s", describe_params(plan.params))
    if seed_given:
        logger.info("Random seed is initialized with given seed: %d", plan.ctx.seed)
    else:
        msg = "Random seed is not provided, initialized with generated seed: %d"
        logger.info(msg, plan.ctx.seed)


def plan_cache(
    ex: Experiment, node: Node, plan: TrialPlan, data: dict[str, str], python: str
) -> Node:
    """The graph of one trial with reusable cached steps replaced by their stored outputs.

    Cache keys are computed top-down from the graph's structure before anything runs, so a
    reused step and everything it depends on never reach a scheduler. An entry is reused
    only if the distributions it names are installed at the versions it names (tuixp.cache).
    """
    values = plan.params
    keys: dict[int, str] = {}

    def key_of(x: Any) -> Any:
        if isinstance(x, ParamNode):
            return ["param", token(values[x.name])]
        if isinstance(x, DataFile):
            return ["data", data[str(x)]]
        if isinstance(x, Node):
            if x.index not in keys:
                keys[x.index] = cache_key(
                    [
                        x.step.name,
                        text_hash(x.step.source),
                        walk(list(x.args), key_of, _key_container),
                        walk(dict(sorted(x.kwargs.items())), key_of, _key_container),
                        python,
                        "cache-2",  # keys of entries that name their packages
                    ]
                )
            return keys[x.index]
        return ["literal", token(x)]

    walk(node, key_of, _key_container)
    cache = StepCache(ex.store.path, ex.id)
    impure = cache.impure_steps()
    objects = ObjectStore(ex.store.objects_dir)
    reused_values: dict[int, Any] = {}

    def find(n: Node) -> None:
        if n.index in reused_values:
            return
        if n.step.cache:
            plan.cache_keys[n.step.name] = keys[n.index]
            plan.cache_imports[n.step.name] = set().union(
                *(code_imports(m.step.func) for m in graph_nodes(n))
            )
        if n.step.cache and n is not node:  # the node asked for is always computed
            upstream = {m.step.name for m in graph_nodes(n)}
            entry = cache.get(keys[n.index]) if not (upstream & impure) else None
            stale = changed_distributions(entry.packages or {}) if entry is not None else []
            if entry is not None and (entry.packages is None or stale):
                logger.info(
                    "Step %s not reused from trial %d: %s",
                    n.step.name,
                    entry.trial_id,
                    ", ".join(stale) or "its packages are not recorded",
                )
                entry = None
            if entry is not None:
                try:
                    reused_values[n.index] = objects.get(entry.object_hash, entry.format)
                    plan.reused[n.step.name] = entry
                    return
                except Exception as exc:  # noqa: BLE001 - recompute, never a wrong result
                    logger.warning(
                        "The cached output of %s from trial %d is missing or "
                        "corrupt (%s); computing it again",
                        n.step.name,
                        entry.trial_id,
                        exc,
                    )
        for child in child_nodes(n):
            find(child)

    find(node)
    return substitute(node, reused_values) if reused_values else node


def _key_container(original: Any, items: Any) -> Any:
    """How a cache key holds a list, a tuple (both as lists) and a dict (its keys as text)."""
    return {str(k): v for k, v in items.items()} if isinstance(original, dict) else items


def describe_params(values: Mapping[str, Any]) -> str:
    """Parameters as daskperiment logged them: ``a=1<class 'int'>, b=Undefined``."""
    return ", ".join(
        f"{n}={v}" if v is UNDEFINED else f"{n}={v}{type(v)}" for n, v in values.items()
    )


def _normalize_params(values: dict[str, Any]) -> dict[str, Any]:
    """Parameters as strict JSON values (numpy scalars become numbers); refuse what is not.

    NaN and infinities are kept as the strings "nan", "inf" and "-inf": strict JSON has no
    words for them and the store's JSON columns must stay readable by any client.
    """
    import json
    import math

    def strict(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return repr(v)
        if isinstance(v, list):
            return [strict(i) for i in v]
        if isinstance(v, dict):
            return {k: strict(i) for k, i in v.items()}
        return v

    out = {}
    for name, value in values.items():
        if _nested_deeper_than(value, MAX_PARAM_DEPTH):
            raise errors.ParameterError(
                f"Parameter {name} cannot be recorded: it is nested more than {MAX_PARAM_DEPTH} "
                "levels deep (lists and dicts inside each other, or a list that holds itself)."
            )
        try:
            clean = json.loads(json.dumps(value, allow_nan=True, default=_refuse))
        except (TypeError, ValueError, RecursionError) as exc:
            raise errors.ParameterError(
                f"Parameter {name} cannot be recorded: {exc}. Use numbers, strings, booleans, "
                "None, or lists and dicts of them."
            ) from None
        out[name] = strict(clean)
    return out


MAX_PARAM_DEPTH = 100  # deeper values hit Python's recursion limit here, in Dask or in readers


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists, tuples and dicts in ``value`` nest more than ``limit`` levels (no recursion:
    it must work where recursion would not)."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    deepest: dict[int, int] = {}  # a list held twice is walked again only from deeper down
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth >= limit:
                return True
            if deepest.get(id(item), -1) >= depth:
                continue
            deepest[id(item)] = depth
            children = item.values() if isinstance(item, dict) else item
            todo.extend((child, depth + 1) for child in children)
    return False


def _refuse(obj: Any) -> Any:
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):
        return obj.item() if getattr(obj, "shape", ()) == () else obj.tolist()
    raise TypeError(f"a value of type {type(obj).__name__} is not JSON")
