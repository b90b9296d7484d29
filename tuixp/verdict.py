"""The verdict of ``tuixp repeat``: two recorded trials compared step by step, for people and JSON.

``verify`` compares each step's recorded output hash of the original and the repeat in the
graph's order (``same``, ``differs``, ``not_checked``; see ``tuixp.repeat``) and returns the
verdict document (``reproduced``, ``differs`` with the first differing step and the likely
causes of ``tuixp.diff.explain``, or ``not_verified``); ``render`` and ``headline`` write it for
people, ``to_json`` as JSON. It reads the store and imports neither typer nor textual.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuixp import diff

SAME, DIFFERS, NOT_CHECKED = "same", "differs", "not_checked"
REPRODUCED, DIFFERENT, NOT_VERIFIED = "reproduced", "differs", "not_verified"
# What a hash column may hold instead of a hash when the output's hash could not be trusted.
_UNCHECKED_MARKS = frozenset({"", "not checked", "not_checked", "unchecked", "unstable"})
IMPURITY = "impurity"
IMPURITY_TITLE = "same input, different output: the step is not deterministic"


def is_checked(value: Any) -> bool:
    """Whether a recorded hash is one that can be compared (not NULL, not "not checked")."""
    return isinstance(value, str) and value.strip().lower() not in _UNCHECKED_MARKS


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
