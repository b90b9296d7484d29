"""Environments compared, group by group of the registry (``tuixp.capture.environment``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tuixp.capture.environment import ENV_GROUPS as ENV_REGISTRY
from tuixp.diff.values import CHANGED, MISSING, SAME, entry_status

# Environment groups in the order a comparison lists them (the registry's ``diff_rank``); the
# fields of each group that are compared first (anything else in the record is compared too,
# after these) and those that vary without meaning anything changed.
_DIFF_GROUPS = sorted(ENV_REGISTRY, key=lambda g: g.diff_rank)
ENV_GROUPS: dict[str, tuple[str, ...]] = {g.name: g.compared for g in _DIFF_GROUPS}
_ENV_NOISE: dict[str, frozenset[str]] = {g.name: g.noise for g in _DIFF_GROUPS if g.noise}


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
        return {
            g: out[g]
            for g in sorted(out, key=lambda g: order.index(g) if g in order else len(order))
        }

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
        status = entry_status(old, new)
        if status != SAME:
            out.append(EnvChange(group, name, old, new, status))
    return out


def compare_environment(old: Mapping[str, Any], new: Mapping[str, Any]) -> EnvDiff:
    """What differs between two environment records (as ``queries.environment`` returns them)."""
    changes: list[EnvChange] = []
    for g in _DIFF_GROUPS:
        if g.kind == "versions":
            pa, pb = _as_dict(old.get(g.name)), _as_dict(new.get(g.name))
            for name in sorted({*pa, *pb}, key=str.lower):
                a, b = pa.get(name, MISSING), pb.get(name, MISSING)
                status = entry_status(a, b)
                if status != SAME:
                    changes.append(EnvChange(g.name, name, a, b, status))
        elif g.kind == "devices":
            ga, gb = old.get(g.name) or [], new.get(g.name) or []
            if _canonical(ga) != _canonical(gb):
                changes.append(EnvChange(g.name, "devices", ga, gb, CHANGED))
        else:
            changes += _compare_fields(g.name, _as_dict(old.get(g.name)), _as_dict(new.get(g.name)))
    known = set(ENV_GROUPS)
    for group in sorted({*old, *new} - known):
        a, b = old.get(group, MISSING), new.get(group, MISSING)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += _compare_fields(group, a, b)
        elif entry_status(a, b) != SAME:
            changes.append(EnvChange(group, group, a, b, entry_status(a, b)))
    return EnvDiff(tuple(changes))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)
