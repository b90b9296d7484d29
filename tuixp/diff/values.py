"""The values a comparison compares: ``MISSING``, the statuses of an entry, ``same``, one-line
values (``short``), and the parameters of trials (``compare_params``, ``param_table``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def entry_status(old: Any, new: Any) -> str:
    if old is MISSING:
        return ADDED
    if new is MISSING:
        return REMOVED
    return SAME if _same(old, new) else CHANGED


def same(a: Any, b: Any) -> bool:
    """Whether two recorded values are the same (``MISSING`` only equals ``MISSING``)."""
    if a is MISSING or b is MISSING:
        return a is b
    return _same(a, b)


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
        out.append(ParamChange(name, a, b, entry_status(a, b)))
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


def short(value: Any, width: int = 60) -> str:
    """A value on one line for people: strings bare, None and booleans as Python writes them
    (``max_depth=None`` is a value, not a blank), others as compact JSON, long ones elided."""
    if value is MISSING:
        return "(none)"
    if value is None or isinstance(value, bool):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = json.dumps(value, default=repr, separators=(",", ":"))
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"
