"""Turning a trial's lazy graph into a Dask graph, running it, and recording each trial's end.

Each trial gets its own copy of the graph with its own keys and parameter values, so a grid of
trials is one Dask computation whose independent trials run in parallel.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

from dask._task_spec import Task, TaskRef

from tuixp.execution.schedulers import Scheduler
from tuixp.execution.steps import StepSpec, TrialContext, run_step

if TYPE_CHECKING:
    from tuixp.experiment import Experiment, Node, TrialOutcome, _Plan


def build_graph(
    node: Node, trials: list[tuple[TrialContext, dict[str, Any]]]
) -> tuple[dict[str, Any], list[tuple[str, dict[str, str]]]]:
    """The Dask graph of all ``trials`` and, per trial, its result key and persisted keys."""
    dsk: dict[str, Any] = {}
    keys = [_add_trial(dsk, node, ctx, values) for ctx, values in trials]
    return dsk, keys


def _add_trial(
    dsk: dict[str, Any], node: Node, ctx: TrialContext, values: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """Add one trial's copy of the graph ending at ``node``, with its own keys and values."""
    from tuixp.experiment import Node, ParamNode

    memo: dict[int, str] = {}
    persist: dict[str, str] = {}
    tag = ctx.trial_uuid[:8]

    def conv(x: Any) -> Any:
        if isinstance(x, ParamNode):
            return values[x.name]
        if isinstance(x, Node):
            return TaskRef(visit(x))
        if isinstance(x, list):
            return [conv(i) for i in x]
        if isinstance(x, tuple):
            return tuple(conv(i) for i in x)
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x

    def visit(n: Node) -> str:
        if n.index in memo:
            return memo[n.index]
        key = f"{n.step.name}-{ctx.trial_id}-{tag}-{n.index}"
        memo[n.index] = key
        spec = StepSpec(n.step.name, n.step.func, n.step.kind)
        args = [conv(a) for a in n.args]
        kwargs = {k: conv(v) for k, v in n.kwargs.items()}
        dsk[key] = Task(key, partial(run_step, ctx, spec, key), *args, **kwargs)
        if n.step.kind == "persist":
            persist[n.step.name] = key
        return key

    return visit(node), persist


def _local_callbacks(plans: list["_Plan"], ex: "Experiment", outputs: dict[str, Any]) -> Any:
    """Dask callbacks that finish each trial as soon as its result is in (grids stream)."""
    from dask.callbacks import Callback

    by_result = {p.result_key: p for p in plans}
    waiting: dict[str, set[str]] = {}
    for p in plans:
        waiting[p.result_key] = {p.result_key, *p.persist_keys.values()}
    owner_of = {k: p.result_key for p in plans for k in waiting[p.result_key]}
    done: set[str] = set()

    def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        rk = owner_of.get(key)
        if rk is None:
            return
        outputs[key] = result
        pending = waiting[rk]
        pending.discard(key)
        if not pending and rk not in done:
            done.add(rk)
            outcomes[rk] = ex._finish_plan(by_result[rk], outputs)

    outcomes: dict[str, "TrialOutcome"] = {}
    return Callback(posttask=posttask), outcomes


def execute(ex: "Experiment", sched: Scheduler, dsk: dict[str, Any],
            plans: list["_Plan"]) -> list["TrialOutcome"]:
    """Run the graph and record every trial's end: succeeded, failed or interrupted."""
    from tuixp.experiment import TrialOutcome

    wanted = [k for p in plans for k in (p.result_key, *p.persist_keys.values())]
    outputs: dict[str, Any] = {}
    outcomes: dict[str, TrialOutcome] = {}
    try:
        if sched.kind == "local":
            cb, outcomes = _local_callbacks(plans, ex, outputs)
            values = sched.get(dsk, wanted, callbacks=[cb._callback])
        else:
            values = sched.get(dsk, wanted)
        outputs.update(zip(wanted, values))
    except BaseException as exc:
        # Ctrl-C, a scheduler that gave up (KilledWorker), a lost connection: every trial not
        # finished yet ends here, with the reason, never left running.
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = "interrupted" if interrupted else "failed"
        for p in plans:
            if p.result_key in outcomes:
                continue
            p.recorder.finish(status, finished_at=time.time(), error=exc,
                              error_type=type(exc).__name__, message=str(exc) or type(exc).__name__)
            outcomes[p.result_key] = TrialOutcome(p.ctx.trial_id, p.params, status, error=exc)
        if interrupted:
            raise
        return [outcomes[p.result_key] for p in plans]
    for p in plans:
        if p.result_key not in outcomes:
            outcomes[p.result_key] = ex._finish_plan(p, outputs)
    return [outcomes[p.result_key] for p in plans]
