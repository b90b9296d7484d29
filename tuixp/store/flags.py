"""A trial's change flags: one set, in one order, for ``tuixp ls``, ``tuixp show`` and the TUI.

A flag says what is different about a trial compared with the one before it (``changes``,
written by ``tuixp.trial.world`` when the trial started) or what the purity check found when it
ended (its ``notes``). They read as a fixed-width word, ``C·E·``: one letter a flag, ``·`` where
it is not set, so columns line up and a flag is always in the same place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

BLANK = "·"


@dataclass(frozen=True)
class Flag:
    letter: str
    name: str  # the column a filter or sort uses (``columns.TRIAL_COLUMNS``)
    meaning: str


FLAGS: tuple[Flag, ...] = (
    Flag("C", "code_changed", "the code of a step (or the script) changed"),
    Flag("D", "data_changed", "a data input's content changed (ex.data_file)"),
    Flag("E", "env_changed", "the environment changed: packages, python, platform, cpu or git"),
    Flag("I", "impure", "a step gave another output for an input it had seen (purity check)"),
)
HEADER = "".join(f.letter for f in FLAGS)  # "CDEI": the column's title
LEGEND = ", ".join(f"{f.letter} {f.meaning}" for f in FLAGS)

# ``changes[].kind`` (tuixp.trial.world) -> the flag it sets.
_KINDS = {"code": "C", "data": "D", "environment": "E"}
IMPURE_NOTE = "impure:"  # the purity check's notes begin with it


def _listed(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value) if isinstance(value, (list, tuple)) else []


def letters(changes: Any, notes: Any) -> set[str]:
    """The letters set for a trial with these ``changes`` and ``notes`` (lists or JSON text)."""
    kinds = {str(c.get("kind")) for c in _listed(changes) if isinstance(c, dict)}
    found = {_KINDS[k] for k in kinds if k in _KINDS}
    if any(str(n).startswith(IMPURE_NOTE) for n in _listed(notes)):
        found.add("I")
    return found


def text(changes: Any = None, notes: Any = None, set_letters: Iterable[str] | None = None) -> str:
    """The flags as shown: ``C·E·`` (``set_letters`` instead of ``changes``/``notes``)."""
    on = set(set_letters) if set_letters is not None else letters(changes, notes)
    return "".join(f.letter if f.letter in on else BLANK for f in FLAGS)


def describe(changes: Any, notes: Any) -> list[str]:
    """One line per flag that is set: ``C  the code of a step ... changed``."""
    on = letters(changes, notes)
    return [f"{f.letter}  {f.meaning}" for f in FLAGS if f.letter in on]


# A trial that waited for the scheduler says how long in its notes (its started_at is its first
# step's start): the recorder writes this, and whoever needs when it was queued reads it back.
QUEUE_NOTE = "queued {:.1f} s before its first step started"
_QUEUE_NOTE = re.compile(r"^queued ([0-9.]+) s before its first step started$")


def queued_seconds(notes: Any) -> float:
    """How long a trial waited for its first step, from its notes (list or JSON text); 0 if
    it did not say (it waited less than a tenth of a second, or it ran before tuixp said)."""
    if isinstance(notes, str):
        notes = _notes_list(notes)
    for note in notes if isinstance(notes, list) else []:
        m = _QUEUE_NOTE.match(str(note))
        if m:
            return float(m.group(1))
    return 0.0


def _notes_list(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return []
