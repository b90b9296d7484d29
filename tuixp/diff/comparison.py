"""The whole comparison, as ``tuixp diff`` and the compare screen both show it (``compare``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuixp.diff.causes import Cause, explain, trial_data_inputs
from tuixp.diff.code import CodeChange, compare_code
from tuixp.diff.environment import EnvDiff, compare_environment
from tuixp.diff.values import (
    MISSING,
    SAME,
    ParamChange,
    ParamRow,
    compare_params,
    param_table,
    short,
)


# -- all of it ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialDiff:
    params: list[ParamChange]
    code: list[CodeChange]
    environment: EnvDiff

    @property
    def params_changed(self) -> list[ParamChange]:
        return [p for p in self.params if p.status != SAME]

    @property
    def code_changed(self) -> list[CodeChange]:
        return [c for c in self.code if c.status != SAME]


def compare_trials(
    old: Mapping[str, Any], new: Mapping[str, Any], labels: tuple[str, str] = ("before", "after")
) -> TrialDiff:
    """Both trials as ``{"params": ..., "code": ..., "environment": ...}``."""
    return TrialDiff(
        compare_params(old.get("params") or {}, new.get("params") or {}),
        compare_code(old.get("code") or {}, new.get("code") or {}, labels),
        compare_environment(old.get("environment") or {}, new.get("environment") or {}),
    )


# -- the whole comparison, as ``tuixp diff`` and the compare screen both show it ----------------
# A trial is given as a "trial document": ``{"trial": queries.trial(...), "code": ...,
# "environment": ..., "steps_ran": [step names] or None, "metrics": {name: [(epoch, value)]}}``.
GIT_DIFF_STEP = "git diff (uncommitted)"
ELAPSED_ROW = "elapsed s"  # shown, never counted as a difference: run time always varies


def _elapsed(trial: Mapping[str, Any]) -> Any:
    value = trial.get("elapsed_s")
    return round(value, 2) if isinstance(value, (int, float)) else MISSING


def _last(series: Sequence[Sequence[Any]] | None) -> Any:
    return series[-1][1] if series else MISSING


def _commit(trial: Mapping[str, Any]) -> Any:
    commit = trial.get("git_commit")
    if not commit:
        return MISSING
    return str(commit)[:12] + ("+" if trial.get("git_dirty") else "")


def result_rows(docs: Sequence[Mapping[str, Any]]) -> list[ParamRow]:
    """The rows below the parameters: result, status, seed, commit, elapsed time, each data
    input's content hash and each metric's last value, across the trials."""
    trials = [d.get("trial") or {} for d in docs]
    fields: list[tuple[str, list[Any]]] = [
        (
            "result",
            [
                t.get("result", MISSING) if t.get("status") == "succeeded" else MISSING
                for t in trials
            ],
        ),
        ("status", [t.get("status", MISSING) for t in trials]),
        ("seed", [t.get("seed", MISSING) for t in trials]),
        ("commit", [_commit(t) for t in trials]),
        (ELAPSED_ROW, [_elapsed(t) for t in trials]),
    ]
    data = [trial_data_inputs(t) for t in trials]
    for path in sorted({p for d in data for p in d}):
        values = [d.get(path, MISSING) for d in data]
        fields.append((f"data {path}", [v[:12] if isinstance(v, str) else v for v in values]))
    metrics = [d.get("metrics") or {} for d in docs]
    for name in sorted({n for m in metrics for n in m}):
        fields.append((f"{name} (last)", [_last(m.get(name)) for m in metrics]))
    rows = []
    for name, values in fields:
        table = param_table([{name: v} if v is not MISSING else {} for v in values])
        differs = table[0].differs if table and name != ELAPSED_ROW else False
        rows.append(ParamRow(name, tuple(values), differs))
    return rows


def sources(doc: Mapping[str, Any]) -> dict[str, str]:
    """A trial's step sources, with git's uncommitted diff as one more "step" to compare."""
    code = dict(doc.get("code") or {})
    git_diff = ((doc.get("environment") or {}).get("git") or {}).get("diff")
    if git_diff:
        code[GIT_DIFF_STEP] = git_diff
    return code


@dataclass(frozen=True)
class Comparison:
    """Everything the compare screen shows of two or more trials: the parameter and result
    table of all of them, and code, environment and likely causes from the first (the
    reference) to ``other``."""

    trial_ids: tuple[int, ...]
    params: list[ParamRow]
    results: list[ParamRow]
    code: list[CodeChange]
    environment: EnvDiff
    causes: list[Cause]
    other: int = 1

    @property
    def rows(self) -> list[tuple[str, ParamRow]]:
        """``(section, row)``: parameters, then results."""
        return [("parameter", r) for r in self.params] + [("result", r) for r in self.results]

    @property
    def code_changed(self) -> list[CodeChange]:
        return [c for c in self.code if c.status != SAME]


def compare(
    docs: Sequence[Mapping[str, Any]],
    other: int = 1,
    labels: tuple[str, str] | None = None,
    distributions: Mapping[str, Sequence[str]] | None = None,
) -> Comparison:
    """Compare trial documents: the table of all of them, and ``docs[0]`` against
    ``docs[other]`` for code (git's uncommitted diff included), environment and causes."""
    if len(docs) < 2:
        raise ValueError("a comparison needs two trials or more")
    ids = tuple(int((d.get("trial") or {}).get("trial_id") or 0) for d in docs)
    a, b = docs[0], docs[other]
    labels = labels or (f"#{ids[0]}", f"#{ids[other]}")
    return Comparison(
        trial_ids=ids,
        params=param_table([(d.get("trial") or {}).get("params") or {} for d in docs]),
        results=result_rows(docs),
        code=compare_code(sources(a), sources(b), labels),
        environment=compare_environment(a.get("environment") or {}, b.get("environment") or {}),
        causes=explain(a, b, distributions),
        other=other,
    )


def cause_text(cause: Cause) -> str:
    """A cause's detail on one line for people (what follows its title)."""

    def arrow(old: Any, new: Any) -> str:
        return f"{short(old, 30)} → {short(new, 30)}"

    if cause.kind in ("code", "code_not_run"):
        name = "the script" if cause.name == "<script>" else cause.name
        return f"{name} ({cause.detail})"
    if cause.kind in ("package", "other_package"):
        return f"{cause.name} {arrow(cause.old, cause.new)}"
    if cause.kind == "commit":
        return arrow((cause.old or "")[:12] or None, (cause.new or "")[:12] or None)
    if cause.kind == "uncommitted":
        return cause.detail
    if cause.kind == "data":
        old = cause.old[:12] if isinstance(cause.old, str) else cause.old
        new = cause.new[:12] if isinstance(cause.new, str) else cause.new
        return f"{cause.name} {arrow(old, new)}"
    return arrow(cause.old, cause.new)
