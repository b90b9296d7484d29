"""Verified reproduction (``tuixp repeat``): run a recorded trial again and check every step.

A trial is re-run with its recorded parameters and seed on the code as it is now, through the
same path as ``tuixp run`` (the command line's script loader and ``Node.compute_grid``), and is
recorded as a new trial. Then each step's recorded output hash is compared with the original's
(the ``steps`` view), in the graph's order, upstream first:

- ``same``: both trials recorded the same output hash (or failed with the same error);
- ``differs``: the hashes differ, or one trial's step failed and the other's did not, or the
  step is in one trial's graph only;
- ``not_checked``: either side has no trustworthy hash (NULL, or marked "not checked" because
  the output's hash is not stable across processes), or the original never ran the step (its
  output was reused from the step cache). Such a step is neither reproduced nor different.

The verdict is ``reproduced`` (bit for bit: every step ``same``), ``differs`` (naming the first
differing step in graph order, with the likely causes of ``tuixp.diff.explain``, the ranking
the compare screen shows) or ``not_verified``. Everything before the run that can be refused is
refused first (``RepeatRefused``, a ``TuixpError``): unknown experiment or trial, a trial still
running, a trial without a script (a notebook's), a script that is gone, a script that no longer
defines the experiment, its result step or a recorded parameter.

This module imports neither typer nor textual: the CLI registers it as a command and hands it
its script loader; the TUI runs ``tuixp repeat ... --progress jsonl`` in a child process and
renders the verdict document with ``tuixp.verdict.render``. The comparison of the two recorded
trials and the verdict document are ``tuixp.verdict``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuixp.errors import TuixpError
from tuixp.verdict import verify

LOCAL_SCHEDULERS = ("threads", "processes", "sync")
NOTEBOOK_SUFFIXES = (".ipynb",)


class RepeatRefused(TuixpError):
    """The trial cannot be repeated as asked; nothing was run or written."""


# -- what is repeated ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RepeatPlan:
    """A recorded trial to run again: where its script is and what it ran with."""

    store: Path
    experiment: str
    trial_id: int
    script: Path
    params: dict[str, Any]
    seed: int | None
    scheduler: str | None  # the recorded one
    status: str
    steps: tuple[str, ...]  # step names the original recorded (its code, in order)


def read_plan(store: Path, experiment: str, trial: int | str) -> RepeatPlan:
    """The recorded trial ``trial`` (an id or ``"latest"``) of ``experiment``, checked.

    Refuses (``RepeatRefused``, ``ExperimentNotFound``, ``TrialNotFound``) what cannot be
    repeated; reads the store and writes nothing to it.
    """
    from tuixp.store import queries
    from tuixp.store.sql import require_store
    from tuixp.store.store import get_store

    st = get_store(require_store(store))
    with st.connect() as con:
        trial_id = _resolve(con, experiment, trial)
        rec = queries.trial(con, experiment, trial_id)
        code = queries.code(con, experiment, trial_id)
    where = f"trial {trial_id} of {experiment}"
    if rec["status"] == "running":
        raise RepeatRefused(f"{where} is still running: repeat it once it has ended")
    script = rec.get("script")
    if not script:
        raise RepeatRefused(
            f"{where} has no script to run again (it was recorded from a notebook or an "
            "interactive session): only trials recorded from a script file can be repeated"
        )
    path = Path(script)
    if path.suffix.lower() in NOTEBOOK_SUFFIXES:
        raise RepeatRefused(
            f"{where} was recorded from the notebook {path.name}: only trials recorded from a "
            "script file can be repeated"
        )
    if not path.is_file():
        raise RepeatRefused(f"the script of {where} is gone: {path} does not exist any more")
    return RepeatPlan(
        store=st.path,
        experiment=experiment,
        trial_id=trial_id,
        script=path,
        params=dict(rec["params"] or {}),
        seed=rec.get("seed"),
        scheduler=rec.get("scheduler"),
        status=rec["status"],
        steps=tuple(s for s in code if not s.startswith("<")),
    )


def _resolve(con: Any, experiment: str, trial: int | str) -> int:
    from tuixp.errors import TrialNotFound
    from tuixp.store import queries

    queries.require_experiment(con, experiment)
    last = con.execute(
        "SELECT max(trial_id) FROM trial_record WHERE experiment = ?", [experiment]
    ).fetchone()[0]
    if trial == "latest":
        return int(last)
    found = con.execute(
        "SELECT 1 FROM trial_record WHERE experiment = ? AND trial_id = ?", [experiment, trial]
    ).fetchone()
    if found is None:
        raise TrialNotFound(
            f"Unable to find trial id: {trial} (experiment {experiment} has trials 1 to {last})"
        )
    return int(trial)


def pick_result(plan: RepeatPlan, loaded: Any, name: str | None = None) -> Any:
    """The result node of the loaded script that the recorded trial ran.

    ``loaded`` is what the command line's script loader returns (``.results``: variable name
    -> result node, ``.pick(name)``). With ``name``, that node. Otherwise the script's result
    node of this experiment whose step the trial recorded; refused if none or several fit.
    """
    if name is not None:
        node = loaded.pick(name)
    else:
        mine = [n for n in loaded.results.values() if n.ex.id == plan.experiment]
        if not mine:
            others = sorted({n.ex.id for n in loaded.results.values()})
            raise RepeatRefused(
                f"{plan.script.name} no longer has a result node of experiment "
                f"{plan.experiment}" + (f" (it has: {', '.join(others)})" if others else "")
            )
        fitting = [n for n in mine if n.step.name in plan.steps] or mine
        if len(fitting) > 1:
            steps = ", ".join(n.step.name for n in fitting)
            raise RepeatRefused(
                f"{plan.script.name} has several result nodes that trial {plan.trial_id} "
                f"may have run ({steps}): pick one with --result NAME"
            )
        node = fitting[0]
    if node.ex.id != plan.experiment:
        raise RepeatRefused(
            f"result node {name} of {plan.script.name} belongs to experiment {node.ex.id}, "
            f"not {plan.experiment}"
        )
    return node


def check_parameters(plan: RepeatPlan, ex: Any) -> None:
    """Refuse when the current code cannot take the recorded parameters as they were."""
    declared = ex.parameter_names
    gone = [n for n in plan.params if n not in declared]
    if gone:
        raise RepeatRefused(
            f"trial {plan.trial_id} was run with parameter {gone[0]}, which {plan.script.name} "
            f"no longer declares (its parameters: {', '.join(declared) or 'none'})"
        )
    try:
        ex.check_parameters(plan.params)
    except TuixpError as exc:
        missing = str(exc).rpartition(": ")[2]
        raise RepeatRefused(
            f"{plan.script.name} now needs parameter(s) {missing}, which trial "
            f"{plan.trial_id} did not record"
        ) from None


def scheduler_for(plan: RepeatPlan, asked: str | None) -> str | None:
    """The scheduler the repeat runs on: the one asked for, else the recorded one when it is
    local, else the default (a recorded cluster may be gone)."""
    if asked:
        return asked
    return plan.scheduler if plan.scheduler in LOCAL_SCHEDULERS else None


# -- running it ----------------------------------------------------------------------------------
def repeat_trial(
    store: Path,
    experiment: str,
    trial: int | str,
    load_script: Callable[[Path], Any] | None = None,
    use_store: Callable[[Any, Path], None] | None = None,
    scheduler: str | None = None,
    result: str | None = None,
    listeners: Iterable[Any] = (),
    on_plan: Callable[[RepeatPlan], None] | None = None,
) -> dict[str, Any]:
    """Re-run the trial on the current code, record it, and return the verdict document.

    The script is loaded and run exactly as ``tuixp run`` does: ``load_script`` and
    ``use_store`` are ``tuixp.scripts``' unless given. Every refusal happens before the run.
    """
    from tuixp import scripts
    from tuixp.execution.schedulers import resolve_name

    load_script = load_script or scripts.load_script
    use_store = use_store or scripts.use_store

    plan = read_plan(store, experiment, trial)
    chosen = scheduler_for(plan, scheduler)
    kind = resolve_name(chosen)  # an unknown scheduler is refused before the script loads
    loaded = load_script(plan.script)
    node = pick_result(plan, loaded, result)
    ex = node.ex
    check_parameters(plan, ex)
    if kind not in ("threads", "sync"):
        import cloudpickle

        # As tuixp run: the script is not importable by name in worker processes.
        cloudpickle.register_pickle_by_value(loaded.module)
    use_store(loaded, plan.store)
    if on_plan is not None:
        on_plan(plan)
    ex.set_parameters(**plan.params)
    # Every step is computed again: a step reused from the cache would verify nothing.
    outcomes = node.compute_grid(
        {}, seed=plan.seed, scheduler=chosen, listeners=list(listeners), cache=False
    )
    return verify(plan.store, experiment, plan.trial_id, outcomes[0].trial_id, graph_order(node))


def graph_order(node: Any) -> list[tuple[str, int]]:
    """``(step name, node index)`` of every step call of the graph ending at ``node``, each
    after the steps it takes as input (depth first, in argument order)."""
    order: list[tuple[str, int]] = []
    seen: set[int] = set()

    def inputs(n: Any) -> list[Any]:
        from tuixp.graph import Node

        found: list[Any] = []
        stack: list[Any] = [list(n.args), list(n.kwargs.values())]
        while stack:
            x = stack.pop(0)
            if isinstance(x, Node):
                found.append(x)
            elif isinstance(x, (list, tuple)):
                stack[0:0] = list(x)
            elif isinstance(x, dict):
                stack[0:0] = list(x.values())
        return found

    def visit(root: Any) -> None:
        # Iterative post-order: graphs can be deeper than Python's recursion limit.
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            n, done = stack.pop()
            if done:
                order.append((n.step.name, n.index))
                continue
            if n.index in seen:
                continue
            seen.add(n.index)
            stack.append((n, True))
            stack.extend((m, False) for m in reversed(inputs(n)) if m.index not in seen)

    visit(node)
    return order
