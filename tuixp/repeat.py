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
renders the verdict document with ``render``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuixp import diff
from tuixp.errors import TuixpError

SAME, DIFFERS, NOT_CHECKED = "same", "differs", "not_checked"
REPRODUCED, DIFFERENT, NOT_VERIFIED = "reproduced", "differs", "not_verified"
# What a hash column may hold instead of a hash when the output's hash could not be trusted.
_UNCHECKED_MARKS = frozenset({"", "not checked", "not_checked", "unchecked", "unstable"})
LOCAL_SCHEDULERS = ("threads", "processes", "sync")
NOTEBOOK_SUFFIXES = (".ipynb",)
IMPURITY = "impurity"
IMPURITY_TITLE = "same input, different output: the step is not deterministic"


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


def is_checked(value: Any) -> bool:
    """Whether a recorded hash is one that can be compared (not NULL, not "not checked")."""
    return isinstance(value, str) and value.strip().lower() not in _UNCHECKED_MARKS


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


# -- comparing two recorded trials ---------------------------------------------------------------
def _step_rows(con: Any, experiment: str, trial_id: int) -> list[dict[str, Any]]:
    cur = con.execute(
        """
        SELECT key, step, status, input_hash, output_hash, error, reused_from FROM steps
        WHERE experiment = ? AND trial_id = ? ORDER BY started_at, key""",
        [experiment, trial_id],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _index(key: str) -> int:
    """The graph node a step's key names (``step-trial-tag-index``); a reused step has none."""
    tail = key.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _occurrences(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], Mapping[str, Any]]:
    """Each step record by (step name, occurrence): the n-th call of that step in the graph."""
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_name.setdefault(r["step"], []).append(r)
    out = {}
    for name, found in by_name.items():
        for i, r in enumerate(sorted(found, key=lambda r: (_index(r["key"]), r["key"]))):
            out[(name, i)] = r
    return out


def _side(r: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "key": r["key"],
        "status": r["status"],
        "input_hash": r["input_hash"],
        "output_hash": r["output_hash"],
        "error": r["error"],
        "reused_from": r["reused_from"],
    }


def compare_step(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    original_gap: str | None = None,
    code_changed: bool = False,
) -> tuple[str, str]:
    """(``same`` | ``differs`` | ``not_checked``, why) for one step of both trials.

    ``original_gap``: why the original may lack steps (it reused a cached step, so the steps
    upstream of it did not run; it was interrupted; a step failed); a step only the repeat has
    is then not checked. ``code_changed``: the step's source differs between the two trials.
    """
    if old is None and new is None:
        return NOT_CHECKED, "recorded in neither trial"
    if old is None:
        if original_gap:
            return NOT_CHECKED, f"not run by the original ({original_gap})"
        return DIFFERS, "only in the repeat"
    if new is None:
        return DIFFERS, "only in the original"
    ok = ("succeeded", "reused")
    if (old["status"] in ok) != (new["status"] in ok):
        return DIFFERS, f"{old['status']}, then {new['status']}"
    if old["status"] not in ok:
        if (old["error"] or "") == (new["error"] or ""):
            return SAME, "failed the same way in both"
        return DIFFERS, "failed in both, differently"
    oh, nh = old["output_hash"], new["output_hash"]
    if not is_checked(oh) or not is_checked(nh):
        side = (
            "either trial"
            if not is_checked(oh) and not is_checked(nh)
            else ("the original" if not is_checked(oh) else "the repeat")
        )
        return NOT_CHECKED, f"no trusted hash in {side}"
    if oh == nh:
        return SAME, "same output hash"
    if code_changed:
        return DIFFERS, "its code changed"
    if inputs_same(old, new):
        return DIFFERS, "same input and code"
    return DIFFERS, "its input differs"


def inputs_same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool | None:
    """Whether a step got the same input in both trials (None: not known)."""
    a, b = old.get("input_hash"), new.get("input_hash")
    if not is_checked(a) or not is_checked(b):
        return None
    return bool(a == b)


def compare_steps(
    old_rows: Sequence[Mapping[str, Any]],
    new_rows: Sequence[Mapping[str, Any]],
    order: Sequence[tuple[str, int]] = (),
    code_changed: Iterable[str] = (),
    original_status: str = "succeeded",
) -> list[dict[str, Any]]:
    """Every step of both trials, in graph order (``order``: the repeat's ``graph_order``;
    steps it does not name follow, in the order they ran), compared. ``code_changed``: the
    steps whose source differs between the two trials; ``original_status``: how the original
    ended (an interrupted or failed trial did not run every step)."""
    old, new = _occurrences(old_rows), _occurrences(new_rows)
    changed = set(code_changed)
    gap = (
        "it reused a later step"
        if any(r["status"] == "reused" for r in old_rows)
        else "it was interrupted"
        if original_status == "interrupted"
        else "a step before it failed"
        if original_status == "failed"
        else None
    )
    calls: dict[str, list[int]] = {}
    for name, index in order:
        calls.setdefault(name, []).append(index)
    # A step called n times is matched by its n-th call (node indexes differ between processes,
    # their order does not: the script builds its graph in the same order every time).
    ranked = [(name, sorted(calls[name]).index(index)) for name, index in order]
    for found in (new, old):
        ranked += [k for k in found if k not in ranked]
    counts = {name: sum(1 for n, _ in ranked if n == name) for name, _ in ranked}
    out = []
    for name, occurrence in ranked:
        a, b = old.get((name, occurrence)), new.get((name, occurrence))
        if a is None and b is None:
            continue  # downstream of a step that failed in both: neither trial has it to compare
        status, why = compare_step(a, b, gap, name in changed)
        out.append(
            {
                "step": name,
                "occurrence": occurrence if counts[name] > 1 else None,
                "status": status,
                "reason": why,
                "inputs_same": inputs_same(a, b) if a is not None and b is not None else None,
                "original": _side(a),
                "repeat": _side(b),
            }
        )
    return out


def _cause_doc(cause: diff.Cause, step: str | None) -> dict[str, Any]:
    # Sources and git diffs are long: their size is in ``detail``; ``tuixp diff`` shows them.
    long = cause.kind in ("code", "code_not_run", "uncommitted")
    return {
        "kind": cause.kind,
        "title": cause.title,
        "name": cause.name,
        "old": None if long or cause.old is diff.MISSING else cause.old,
        "new": None if long or cause.new is diff.MISSING else cause.new,
        "detail": cause.detail,
        "this_step": step is not None and cause.name == step,
    }


def verify(
    store: Path,
    experiment: str,
    original: int,
    repeat: int,
    order: Sequence[tuple[str, int]] = (),
) -> dict[str, Any]:
    """The verdict document comparing two recorded trials step by step (JSON-ready)."""
    from tuixp.store import queries
    from tuixp.store.store import get_store

    docs: list[dict[str, Any]] = []
    with get_store(store).connect() as con:
        for tid in (original, repeat):
            rows = _step_rows(con, experiment, tid)
            docs.append(
                {
                    "trial": queries.trial(con, experiment, tid),
                    "code": queries.code(con, experiment, tid),
                    "environment": queries.environment(con, experiment, tid),
                    "steps_ran": sorted({r["step"] for r in rows if r["status"] != "reused"}),
                    "rows": rows,
                }
            )
        beside = _ran_beside(con, experiment, original)
    changed = [
        c.step for c in diff.compare_code(docs[0]["code"], docs[1]["code"]) if c.status != diff.SAME
    ]
    ta, tb = docs[0]["trial"], docs[1]["trial"]
    steps = compare_steps(docs[0]["rows"], docs[1]["rows"], order, changed, ta["status"])
    first = next((s for s in steps if s["status"] == DIFFERS), None)
    # An interrupted original never got to its end: how the repeat ends is not a difference.
    status_differs = ta["status"] != tb["status"] and ta["status"] != "interrupted"
    every_step_same = bool(steps) and all(s["status"] == SAME for s in steps)
    if first is None and ta["status"] == tb["status"] and every_step_same:
        verdict = REPRODUCED
    elif first is not None or status_differs:
        verdict = DIFFERENT
    else:
        verdict = NOT_VERIFIED
    causes: list[dict[str, Any]] = []
    if verdict == DIFFERENT:
        step = first["step"] if first else None
        causes = [_cause_doc(c, step) for c in diff.explain(docs[0], docs[1])]
        if first is not None and first["inputs_same"] and step not in changed:
            causes.append(
                {
                    "kind": IMPURITY,
                    "title": IMPURITY_TITLE,
                    "name": step,
                    "old": first["original"]["output_hash"],
                    "new": first["repeat"]["output_hash"],
                    "detail": "unseeded randomness, the clock, a file or a service it reads"
                    + (
                        f"; trial {original} ran beside trial(s) "
                        f"{', '.join(map(str, beside))} in one process"
                        if beside
                        else ""
                    ),
                    "this_step": True,
                }
            )
    return {
        "experiment": experiment,
        "store": str(store),
        "original": original,
        "repeat": repeat,
        "verdict": verdict,
        "reproduced": verdict == REPRODUCED,
        "first_difference": first,
        "steps": steps,
        "counts": {
            k: sum(1 for s in steps if s["status"] == k) for k in (SAME, DIFFERS, NOT_CHECKED)
        },
        "status": {"original": ta["status"], "repeat": tb["status"]},
        "result": {"original": ta["result"], "repeat": tb["result"]},
        "error": {
            "original": _error(ta),
            "repeat": _error(tb),
        },
        "ran_beside": beside,
        "seed": ta.get("seed"),
        "params": ta["params"],
        "script": ta.get("script"),
        "causes": causes,
    }


def _ran_beside(con: Any, experiment: str, trial_id: int) -> list[int]:
    """Trials of the experiment that ran at the same time as this one, in the same process
    (a grid's other points): a step that shares state with them may not repeat alone."""
    from tuixp.store.flags import queued_seconds

    rows = con.execute(
        """
        SELECT o.trial_id, epoch(t.started_at), epoch(coalesce(t.finished_at, now())), t.notes,
               epoch(o.started_at), epoch(coalesce(o.finished_at, now())), o.notes
        FROM trial_record t JOIN trial_record o
          ON o.experiment = t.experiment AND o.host = t.host AND o.pid = t.pid
         AND o.trial_id <> t.trial_id
        WHERE t.experiment = ? AND t.trial_id = ? ORDER BY o.trial_id""",
        [experiment, trial_id],
    ).fetchall()
    # From when each was queued (a trial's started_at is its first step's start) to its end.
    return [
        int(tid)
        for tid, t0, t1, tnotes, o0, o1, onotes in rows
        if o0 - queued_seconds(onotes) < t1 and o1 > t0 - queued_seconds(tnotes)
    ]


def _error(trial: Mapping[str, Any]) -> str | None:
    if not trial.get("error_type"):
        return None
    return f"{trial['error_type']}: {trial.get('error_message') or ''}".rstrip(": ")


# -- for people ------------------------------------------------------------------------------
def headline(doc: Mapping[str, Any]) -> str:
    """One line: what the repeat showed."""
    where = f"trial {doc['original']} of {doc['experiment']}, repeated as trial {doc['repeat']}"
    counts = doc["counts"]
    total = sum(counts.values())
    if doc["verdict"] == REPRODUCED:
        again = ", the same failure" if doc["status"]["original"] == "failed" else ""
        return f"{where}: reproduced bit for bit ({total} of {total} steps the same{again})"
    if doc["verdict"] == DIFFERENT:
        first = doc.get("first_difference")
        if first is not None:
            return f"{where}: differs, first at step {_name(first)} ({first['reason']})"
        status = doc["status"]
        return f"{where}: differs: {status['original']} then {status['repeat']}"
    return (
        f"{where}: not verified ({counts[NOT_CHECKED]} of {total} steps could not be checked, "
        "none differs)"
    )


def _name(step: Mapping[str, Any]) -> str:
    occurrence = step.get("occurrence")
    return step["step"] if occurrence is None else f"{step['step']}[{occurrence}]"


def _hash(side: Mapping[str, Any] | None) -> str:
    if side is None:
        return "—"
    if side["status"] not in ("succeeded", "reused"):
        return side["status"]
    value = side["output_hash"]
    return value[:10] if is_checked(value) else "not checked"


def cause_line(cause: Mapping[str, Any]) -> str:
    """One likely cause on one line: its title and what changed."""
    name = "the script" if cause["name"] == "<script>" else cause["name"]
    kind = cause["kind"]
    if kind in ("code", "code_not_run"):
        what = f"{name} ({cause['detail']})"
    elif kind == "uncommitted":
        what = cause["detail"]
    elif kind == IMPURITY:
        what = f"{name} ({cause['detail']})"
    else:
        old, new = cause.get("old"), cause.get("new")
        if kind == "commit":
            old, new = (old or "")[:12] or None, (new or "")[:12] or None
        arrow = f"{diff.short(old, 30)} -> {diff.short(new, 30)}"
        what = arrow if kind in ("seed", "commit", "python") else f"{name} {arrow}"
    mark = "  (this step)" if cause.get("this_step") and kind != IMPURITY else ""
    return f"{cause['title']}: {what}{mark}"


def render(doc: Mapping[str, Any], width: int = 80) -> str:
    """The verdict for people: the headline, each step compared, the results, the causes."""
    out = [headline(doc)]
    rows = [
        [
            _name(s),
            _hash(s["original"]),
            _hash(s["repeat"]),
            s["status"].replace("_", " ") + (f": {s['reason']}" if s["status"] != SAME else ""),
        ]
        for s in doc["steps"]
    ]
    if rows:
        headers = ["STEP", f"TRIAL {doc['original']}", f"TRIAL {doc['repeat']}", "CHECK"]
        out.append("")
        out.append(_table(headers, rows, width))
    status, result, error = doc["status"], doc["result"], doc["error"]
    out.append("")
    for label, key in (
        (f"trial {doc['original']}", "original"),
        (f"trial {doc['repeat']}", "repeat"),
    ):
        shown = (
            f"result {diff.short(result[key], 40)}"
            if status[key] == "succeeded"
            else f"{status[key]}" + (f": {error[key]}" if error[key] else "")
        )
        out.append(f"{label}: {shown}")
    if doc["verdict"] == NOT_VERIFIED:
        out.append("")
        out.append("A step without a trusted output hash (one that is not the same for the same")
        out.append("value in two processes) can be neither confirmed nor refuted.")
    elif doc["verdict"] == DIFFERENT:
        out.append("")
        if doc["causes"]:
            out.append("Likely causes, most likely first:")
            out += [f"  {i}. {cause_line(c)}" for i, c in enumerate(doc["causes"], 1)]
        else:
            out.append("Likely causes: nothing recorded differs (code, packages, seed, git, data,")
            out.append("  Python are the same): a step depends on something tuixp does not record")
    return "\n".join(out)


def _table(headers: list[str], rows: list[list[str]], width: int) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fixed = 2 + sum(widths[:-1]) + 2 * (len(headers) - 1)  # the indent, the columns, the gaps
    widths[-1] = max(len(headers[-1]), min(widths[-1], width - fixed))

    def line(cells: list[str]) -> str:
        parts = []
        for i, c in enumerate(cells):
            c = c if len(c) <= widths[i] else c[: max(widths[i] - 1, 0)] + "…"
            parts.append(c.ljust(widths[i]))
        return ("  " + "  ".join(parts)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def to_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, default=str)
