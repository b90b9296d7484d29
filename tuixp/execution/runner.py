"""Turning a trial's lazy graph into a Dask graph, running it, and recording each trial's end.

Each trial gets its own copy of the graph with its own keys and parameter values, so a grid of
trials is one Dask computation whose independent trials run in parallel, and each trial is
finished (recorded, its outputs persisted) as soon as its own outputs are in.

Progress reaches the trial's recorder by three routes, one per kind of scheduler:
- threads, sync: the steps run in this process and report live (``steps.RECORDERS``);
- processes: Dask callbacks passed to this call report each task when it is handed to a child
  process (pretask) and its record when its output comes back (posttask);
- dask.distributed: steps publish their start, metric chunks (``remote_metrics``) and record
  on the cluster's event topic of this client (``steps.publish``), and futures bring each
  trial's outputs as they complete.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from dask._task_spec import Dict, GraphNode, List, Task, TaskRef, Tuple

from tuixp.execution import steps as steps_mod
from tuixp.execution.schedulers import (
    ClusterWatch,
    Scheduler,
    SchedulerLost,
    cancellation,
    drop_client,
)
from tuixp.execution.steps import (
    StepFailure,
    StepOutput,
    StepSpec,
    TrialContext,
    run_op,
    run_step,
)
from tuixp.graph import Node, ParamNode, TrialOutcome, walk

if TYPE_CHECKING:
    from tuixp.execution.recorder import TrialRecorder
    from tuixp.store.store import Store

logger = logging.getLogger("tuixp")


class Plan(Protocol):
    """What the runner reads of a trial's plan (``tuixp.trial.plan.TrialPlan``)."""

    ctx: TrialContext
    params: dict[str, Any]
    recorder: TrialRecorder
    result_key: str
    persist_keys: dict[str, str]


# Records a trial's end from its outputs (by key) and says how it ended: tuixp.trial.finish.
Finish = Callable[[Any, dict[str, Any]], TrialOutcome]


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
    memo: dict[int, str] = {}
    persist: dict[str, str] = {}
    tag = ctx.trial_uuid[:8]

    def conv(x: Any) -> Any:
        if isinstance(x, ParamNode):
            return values[x.name]
        if isinstance(x, Node):
            return TaskRef(visit(x))
        return x

    def visit(n: Node) -> str:
        if n.index in memo:
            return memo[n.index]
        key = f"{n.step.name}-{ctx.trial_id}-{tag}-{n.index}"
        memo[n.index] = key
        spec = StepSpec(n.step.name, n.step.func, n.step.kind)
        args = [walk(a, conv, _container) for a in n.args]
        kwargs = {k: walk(v, conv, _container) for k, v in n.kwargs.items()}
        run = run_op if n.step.kind == "op" else run_step  # an operator (a + 1) is not recorded
        dsk[key] = Task(key, partial(run, ctx, spec, key), *args, **kwargs)
        if n.step.kind == "persist":
            persist[n.step.name] = key
        return key

    return visit(node), persist


def _is_ref(x: Any) -> bool:
    return isinstance(x, (TaskRef, GraphNode))


def _container(original: Any, items: Any) -> Any:
    """A container holding steps' outputs must be a task of its own for Dask to fill it in
    (``[prep(a), prep(b)]`` as an argument); one holding plain values stays as it is."""
    if isinstance(original, dict):
        return Dict(items) if any(map(_is_ref, items.values())) else items
    if isinstance(original, list):
        return List(*items) if any(map(_is_ref, items)) else items
    return Tuple(*items) if any(map(_is_ref, items)) else tuple(items)


def _task_owners(dsk: dict[str, Any], plans: Sequence[Plan]) -> dict[str, tuple[Plan, str]]:
    """Every task of the graph: its trial and step name (each task carries its context)."""
    by_uuid = {p.ctx.trial_uuid: p for p in plans}
    owners = {}
    for key, task in dsk.items():
        func = getattr(task, "func", None)
        if isinstance(func, partial) and func.func is run_step:
            ctx, spec = func.args[0], func.args[1]
            plan = by_uuid.get(ctx.trial_uuid)
            if plan is not None:
                owners[key] = (plan, spec.name)
    return owners


class _Trials:
    """The trials of one run: which outputs each still waits for; each trial is finished as
    soon as all of them are in, so a grid's trials end one by one, not all at the end."""

    def __init__(
        self, experiment: str, dsk: dict[str, Any], plans: Sequence[Plan], finish: Finish
    ) -> None:
        self.experiment = experiment
        self.finish = finish
        self.dsk = dsk
        self.plans = plans
        self.owners = _task_owners(dsk, plans)
        self.waiting = {p.result_key: {p.result_key, *p.persist_keys.values()} for p in plans}
        self.wanted = {k: p for p in plans for k in self.waiting[p.result_key]}
        self.outputs: dict[str, Any] = {}
        self.outcomes: dict[str, TrialOutcome] = {}
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def keys(self) -> list[str]:
        return [k for p in self.plans for k in (p.result_key, *p.persist_keys.values())]

    def _claim(self, plan: Plan) -> bool:
        """True once per trial: the caller is the one who records its end."""
        with self._lock:
            if plan.result_key in self._claimed:
                return False
            self._claimed.add(plan.result_key)
            return True

    def arrived(self, key: str, value: Any) -> None:
        """An output the owner asked for is here; finish its trial if it was the last one."""
        plan = self.wanted.get(key)
        if plan is None:
            return
        with self._lock:
            self.outputs[key] = value
            pending = self.waiting[plan.result_key]
            pending.discard(key)
            if pending:
                return
        if not self._claim(plan):
            return
        try:
            outcome = self.finish(plan, self.outputs)
        except Exception as exc:  # noqa: BLE001 - recording the end must not lose the trial
            outcome = self._record_end(plan, "failed", exc)
        self.outcomes[plan.result_key] = outcome
        for k in (plan.result_key, *plan.persist_keys.values()):
            self.outputs.pop(k, None)  # the trial is recorded: free its outputs

    def end(self, plan: Plan, status: str, exc: BaseException) -> None:
        """End a trial that will get no result: interrupted, or failed for a reason outside
        its steps (a worker that died too often, a lost cluster)."""
        if self._claim(plan):
            self.outcomes[plan.result_key] = self._record_end(plan, status, exc)

    def _record_end(self, plan: Plan, status: str, exc: BaseException) -> TrialOutcome:
        message = str(exc) or type(exc).__name__
        plan.recorder.finish(
            status,
            finished_at=time.time(),
            error=exc,
            error_type=type(exc).__name__,
            message=message,
        )
        if status == "failed":
            logger.error(
                "Trial %d of %s failed: %s: %s",
                plan.ctx.trial_id,
                self.experiment,
                type(exc).__name__,
                message,
            )
        return TrialOutcome(plan.ctx.trial_id, plan.params, status, error=exc)

    def end_all(self, status: str, exc: BaseException) -> None:
        for p in self.plans:
            self.end(p, status, exc)

    def results(self) -> list[TrialOutcome]:
        lost = RuntimeError("the scheduler returned no output for this trial")
        for p in self.plans:
            self.end(p, "failed", lost)  # a no-op for every trial that has ended
        return [self.outcomes[p.result_key] for p in self.plans]

    # -- local schedulers ------------------------------------------------------------------
    def callback(self, report_starts: bool) -> Any:
        """Dask callbacks for one local computation, passed to that call only.

        ``report_starts``: the steps run in other processes, so the owner reports each task's
        start when it hands it to the pool (its worker is not known yet) and its end when its
        output comes back with the records and metrics the step carried.
        """
        from dask.callbacks import Callback

        def pretask(key: Any, dsk: Any, state: Any) -> None:
            found = self.owners.get(key)
            if found is not None:
                found[0].recorder.on_task_started(key, found[1], time.time(), None)

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            found = self.owners.get(key)
            if found is not None and isinstance(result, (StepOutput, StepFailure)):
                found[0].recorder.absorb(result.records)
            self.arrived(key, result)

        return Callback(pretask=pretask if report_starts else None, posttask=posttask)

    def run_local(self, sched: Scheduler) -> None:
        cb = self.callback(report_starts=sched.name == "processes")
        keys = self.keys()
        values = sched.run_local(self.dsk, keys, callbacks=[cb._callback])
        for key, value in zip(keys, values):
            self.arrived(key, value)  # already there for every key posttask saw

    # -- dask.distributed --------------------------------------------------------------------
    def run_distributed(self, sched: Scheduler) -> None:
        client = sched.client
        _listen(client, sched.channel)
        keys = self.keys()
        futures = dict(zip(keys, client.get(self.dsk, keys, sync=False)))
        watch = ClusterWatch(sched, list(futures.values()))
        try:
            with watch:
                self._gather(client, futures, sched, watch)
        except BaseException:
            client.cancel(list(futures.values()))
            raise
        if any(isinstance(o.error, SchedulerLost) for o in self.outcomes.values()):
            drop_client(client)

    def _gather(
        self, client: Any, futures: dict[str, Any], sched: Scheduler, watch: ClusterWatch
    ) -> None:
        from distributed import as_completed

        for future in as_completed(list(futures.values()), loop=client.loop):
            key = future.key
            futures.pop(key, None)
            plan = self.wanted[key]
            if future.status == "cancelled":
                # By us when another output of its trial failed (the trial has ended, and
                # this is a no-op), by the watch when no worker is left, or by the client
                # when it lost the scheduler: say which.
                if plan.result_key not in self._claimed:
                    self.end(plan, "failed", cancellation(future, watch.address, watch))
                continue
            try:
                value = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died too often, a lost cluster
                self.end(plan, "failed", exc)
                # The trial's other outputs are of no use now; the rest of a grid runs on.
                client.cancel([futures[k] for k in self.waiting[plan.result_key] if k in futures])
                continue
            self.arrived(key, value)


_listening: set[str] = set()
_listening_lock = threading.Lock()


def _listen(client: Any, channel: str | None) -> None:
    """Route the events steps publish on the cluster to the recorders of this process."""
    if channel is None:
        return
    with _listening_lock:
        if channel in _listening:
            return
        _listening.add(channel)

    def handle(event: tuple[float, Any]) -> None:
        msg = event[1]
        recorder = steps_mod.RECORDERS.get(str(msg.get("uuid"))) if isinstance(msg, dict) else None
        if recorder is not None:
            try:
                recorder.on_remote(msg)
            except Exception:  # noqa: BLE001 - never break the client's event loop
                logger.exception("tuixp: could not record an event from the cluster")

    client.subscribe_topic(channel, handle)


def execute(
    store: Store,
    experiment: str,
    sched: Scheduler,
    dsk: dict[str, Any],
    plans: Sequence[Plan],
    finish: Finish,
) -> list[TrialOutcome]:
    """Run the graph and record every trial's end: succeeded, failed or interrupted.

    ``finish(plan, outputs)`` records a trial whose outputs are all in (tuixp.trial.finish);
    the runner records the end of a trial that gets none.
    """
    # Every trial's start is on disk before its first step runs: one fsync for the whole run.
    store.record([], sync=True)
    trials = _Trials(experiment, dsk, plans, finish)
    try:
        if sched.kind == "local":
            trials.run_local(sched)
        else:
            trials.run_distributed(sched)
    except KeyboardInterrupt as exc:
        trials.end_all("interrupted", exc)
        raise
    except BaseException as exc:
        # A scheduler that gave up, a lost connection: every trial not finished yet ends here,
        # with the reason, never left running.
        trials.end_all("failed", exc)
    store.catch_up()
    return trials.results()
