"""Pure comparisons of recorded trials: parameters, step code, environment.

Inputs are the plain data the store hands out (``queries.trial(...)["params"]``,
``queries.code(...)``, ``queries.environment(...)``); outputs are small frozen dataclasses.
Nothing here reads a store or prints: ``tuixp diff`` and the TUI's compare screen both render
the same answers.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class _Missing:
    """Stands for "this trial has no such entry", which is not the same as a value of None."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()

# Statuses of one compared entry, from the first trial to the second.
SAME, CHANGED, ADDED, REMOVED = "same", "changed", "added", "removed"

# Environment groups in the order people read them; the fields of each group that are compared
# (anything else in the record is compared too, after these).
ENV_GROUPS: dict[str, tuple[str, ...]] = {
    "packages": (),
    "python": ("implementation", "version", "executable", "venv", "conda"),
    "platform": ("system", "release", "version", "machine", "hostname"),
    "cpu": ("brand_raw", "arch", "bits", "count", "vendor_id_raw", "family", "model", "stepping",
            "l2_cache_size", "l3_cache_size", "flags"),
    "gpu": (),
    "git": ("repository", "branch", "commit", "dirty", "detached", "untracked", "diff"),
}
# Fields that vary without meaning anything changed (the platform's build string is kept).
_ENV_NOISE: dict[str, frozenset[str]] = {"cpu": frozenset({"hz_actual", "hz_actual_friendly"}),
                                         "git": frozenset({"notes"})}


def _status(old: Any, new: Any) -> str:
    if old is MISSING:
        return ADDED
    if new is MISSING:
        return REMOVED
    return SAME if _same(old, new) else CHANGED


def _same(a: Any, b: Any) -> bool:
    # 1 and 1.0 are the same parameter value; True and 1 are not (JSON keeps them apart).
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


# -- parameters --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamChange:
    """One parameter of two trials: its value in each (``MISSING`` when a trial has none)."""

    name: str
    old: Any
    new: Any
    status: str


def compare_params(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ParamChange]:
    """Every parameter of either trial, in first-seen order, with what happened to it."""
    names = list(old) + [n for n in new if n not in old]
    out = []
    for name in names:
        a, b = old.get(name, MISSING), new.get(name, MISSING)
        out.append(ParamChange(name, a, b, _status(a, b)))
    return out


@dataclass(frozen=True)
class ParamRow:
    """One parameter across several trials (the compare screen's table): differs if any does."""

    name: str
    values: tuple[Any, ...]
    differs: bool


def param_table(trials: Sequence[Mapping[str, Any]]) -> list[ParamRow]:
    """Parameters of two or more trials side by side, in first-seen order."""
    names: list[str] = []
    for params in trials:
        names.extend(n for n in params if n not in names)
    rows = []
    for name in names:
        values = tuple(p.get(name, MISSING) for p in trials)
        first = values[0]
        differs = any(
            (v is MISSING) != (first is MISSING) or not _same(v, first) for v in values[1:]
        )
        rows.append(ParamRow(name, values, differs))
    return rows


# -- code --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeChange:
    """One step's source in two trials and their unified diff ("" when the same)."""

    step: str
    status: str
    old: str | None
    new: str | None
    diff: str = ""

    @property
    def added_lines(self) -> int:
        return sum(1 for line in self.diff.splitlines()
                   if line.startswith("+") and not line.startswith("+++"))

    @property
    def removed_lines(self) -> int:
        return sum(1 for line in self.diff.splitlines()
                   if line.startswith("-") and not line.startswith("---"))


def unified_diff(old: str, new: str, old_label: str, new_label: str, context: int = 3) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), old_label, new_label,
                                 n=context, lineterm="")
    return "\n".join(lines)


def compare_code(old: Mapping[str, str], new: Mapping[str, str],
                 labels: tuple[str, str] = ("before", "after"),
                 context: int = 3) -> list[CodeChange]:
    """Each step's source in both trials (the ``<script>`` entry too), with a unified diff."""
    steps = list(old) + [s for s in new if s not in old]
    out = []
    for step in steps:
        a, b = old.get(step), new.get(step)
        if a is None:
            status = ADDED
        elif b is None:
            status = REMOVED
        else:
            status = SAME if a == b else CHANGED
        diff = "" if status == SAME else unified_diff(
            a or "", b or "", f"{step} ({labels[0]})", f"{step} ({labels[1]})", context)
        out.append(CodeChange(step, status, a, b, diff))
    return out


# -- environment -------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvChange:
    """One environment entry that differs: a package's version or a field of a group."""

    group: str
    name: str
    old: Any
    new: Any
    status: str


@dataclass(frozen=True)
class EnvDiff:
    """The environment entries that differ, grouped packages / python / platform / cpu / gpu / git."""

    changes: tuple[EnvChange, ...] = field(default_factory=tuple)

    @property
    def groups(self) -> dict[str, list[EnvChange]]:
        """Only the groups with a difference, in ``ENV_GROUPS`` order."""
        out: dict[str, list[EnvChange]] = {}
        for c in self.changes:
            out.setdefault(c.group, []).append(c)
        order = list(ENV_GROUPS)
        return {g: out[g] for g in sorted(out, key=lambda g: order.index(g) if g in order
                                          else len(order))}

    def __bool__(self) -> bool:
        return bool(self.changes)


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _compare_fields(group: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[EnvChange]:
    known = ENV_GROUPS.get(group, ())
    noise = _ENV_NOISE.get(group, frozenset())
    names = [n for n in known if n in a or n in b]
    names += sorted(n for n in {*a, *b} if n not in known and n not in noise)
    out = []
    for name in names:
        old, new = a.get(name, MISSING), b.get(name, MISSING)
        status = _status(old, new)
        if status != SAME:
            out.append(EnvChange(group, name, old, new, status))
    return out


def compare_environment(old: Mapping[str, Any], new: Mapping[str, Any]) -> EnvDiff:
    """What differs between two environment records (as ``queries.environment`` returns them)."""
    changes: list[EnvChange] = []
    pa, pb = _as_dict(old.get("packages")), _as_dict(new.get("packages"))
    for name in sorted({*pa, *pb}, key=str.lower):
        a, b = pa.get(name, MISSING), pb.get(name, MISSING)
        status = _status(a, b)
        if status != SAME:
            changes.append(EnvChange("packages", name, a, b, status))
    for group in ("python", "platform", "cpu"):
        changes += _compare_fields(group, _as_dict(old.get(group)), _as_dict(new.get(group)))
    ga, gb = old.get("gpu") or [], new.get("gpu") or []
    if _canonical(ga) != _canonical(gb):
        changes.append(EnvChange("gpu", "devices", ga, gb, CHANGED))
    changes += _compare_fields("git", _as_dict(old.get("git")), _as_dict(new.get("git")))
    known = {"packages", "python", "platform", "cpu", "gpu", "git"}
    for group in sorted({*old, *new} - known):
        a, b = old.get(group, MISSING), new.get(group, MISSING)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += _compare_fields(group, a, b)
        elif _status(a, b) != SAME:
            changes.append(EnvChange(group, group, a, b, _status(a, b)))
    return EnvDiff(tuple(changes))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


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


def compare_trials(old: Mapping[str, Any], new: Mapping[str, Any],
                   labels: tuple[str, str] = ("before", "after")) -> TrialDiff:
    """Both trials as ``{"params": ..., "code": ..., "environment": ...}``."""
    return TrialDiff(
        compare_params(old.get("params") or {}, new.get("params") or {}),
        compare_code(old.get("code") or {}, new.get("code") or {}, labels),
        compare_environment(old.get("environment") or {}, new.get("environment") or {}),
    )


def short(value: Any, width: int = 60) -> str:
    """A value on one line for people: strings bare, others as compact JSON, long ones elided."""
    if value is MISSING:
        return "(none)"
    if isinstance(value, str):
        text = value
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = json.dumps(value, default=repr, separators=(",", ":"))
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"
