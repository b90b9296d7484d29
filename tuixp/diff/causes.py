"""What most likely explains a different result (``explain``): the causes, ranked."""

from __future__ import annotations

import ast
import json
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuixp.diff.code import compare_code, unified_diff
from tuixp.diff.environment import compare_environment
from tuixp.diff.values import MISSING, SAME, entry_status

# -- what most likely explains a different result ----------------------------------------------
# Import names whose distribution is named otherwise (the common ones; a mapping from the
# running interpreter can be passed to ``explain`` for the rest).
IMPORT_ALIASES: dict[str, tuple[str, ...]] = {
    "sklearn": ("scikit-learn",),
    "skimage": ("scikit-image",),
    "PIL": ("pillow",),
    "yaml": ("pyyaml",),
    "cv2": ("opencv-python", "opencv-python-headless"),
    "bs4": ("beautifulsoup4",),
    "dateutil": ("python-dateutil",),
    "jwt": ("pyjwt",),
    "Crypto": ("pycryptodome",),
    "attr": ("attrs",),
    "google": ("protobuf",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "torch": ("torch",),
}


def normalize_package(name: str) -> str:
    """A distribution or import name as packaging compares them (PEP 503): ``Foo_Bar`` -> foo-bar."""
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(sources: Iterable[str]) -> set[str]:
    """Top-level module names imported anywhere in these sources (steps and the script).

    Read with ``ast``; a source that does not parse (a step's fragment, say) is scanned line by
    line for ``import x`` / ``from x import``.
    """
    found: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(textwrap.dedent(source))
        except (SyntaxError, ValueError):
            for m in re.finditer(
                r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", source, re.MULTILINE
            ):
                found.add((m.group(1) or m.group(2)).split(".")[0])
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def imported_packages(
    sources: Iterable[str], distributions: Mapping[str, Sequence[str]] | None = None
) -> set[str]:
    """Normalized distribution names the sources import (``sklearn`` -> ``scikit-learn``).

    ``distributions`` is ``importlib.metadata.packages_distributions()`` or the like: import
    name -> distribution names; without it the import name itself and ``IMPORT_ALIASES`` count.
    """
    out: set[str] = set()
    for module in imported_modules(sources):
        out.add(normalize_package(module))
        out.update(normalize_package(d) for d in IMPORT_ALIASES.get(module, ()))
        if distributions is not None:
            out.update(normalize_package(d) for d in distributions.get(module, ()))
    return out


# Why a trial's result may differ from another's, most likely first.
CAUSE_ORDER = (
    "code",
    "package",
    "seed",
    "commit",
    "uncommitted",
    "data",
    "python",
    "code_not_run",
    "other_package",
)
CAUSE_TITLES = {
    "code": "code changed in a step that ran",
    "package": "version changed of a package the code imports",
    "seed": "different seed",
    "commit": "different git commit",
    "uncommitted": "different uncommitted changes",
    "data": "data input changed",
    "python": "different Python",
    "code_not_run": "code changed in a step that did not run",
    "other_package": "packages changed that the code does not import",
}


@dataclass(frozen=True)
class Cause:
    """One difference that may explain a different result; ``kind`` is one of ``CAUSE_ORDER``."""

    kind: str
    name: str
    old: Any
    new: Any
    detail: str = ""

    @property
    def title(self) -> str:
        return CAUSE_TITLES[self.kind]


def trial_data_inputs(trial: Mapping[str, Any]) -> dict[str, Any]:
    value = trial.get("data_inputs")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


def explain(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    distributions: Mapping[str, Sequence[str]] | None = None,
) -> list[Cause]:
    """The differences between two trials that most likely explain a different result, in order.

    Each trial is ``{"trial": queries.trial(...), "code": ..., "environment": ...,
    "steps_ran": [step names]}`` (``steps_ran`` absent: every step counts as run). Order:
    code of a step that ran, versions of packages the code imports, seed, git commit,
    uncommitted changes, data inputs, Python, then code of steps that did not run and the
    packages nothing imports. Parameters are not here: the parameter table shows them.
    """
    causes: list[Cause] = []
    ta, tb = old.get("trial") or {}, new.get("trial") or {}
    ran: set[str] | None = None
    if old.get("steps_ran") is not None or new.get("steps_ran") is not None:
        ran = set(old.get("steps_ran") or ()) | set(new.get("steps_ran") or ())
    for change in compare_code(old.get("code") or {}, new.get("code") or {}):
        if change.status == SAME:
            continue
        # The script runs whenever a trial does: its changes count as code that ran.
        did_run = ran is None or change.step in ran or change.step == "<script>"
        detail = f"+{change.added_lines} -{change.removed_lines} lines"
        causes.append(
            Cause(
                "code" if did_run else "code_not_run", change.step, change.old, change.new, detail
            )
        )
    sources = [*(old.get("code") or {}).values(), *(new.get("code") or {}).values()]
    imported = imported_packages(sources, distributions)
    env = compare_environment(old.get("environment") or {}, new.get("environment") or {})
    for c in env.groups.get("packages", []):
        kind = "package" if normalize_package(c.name) in imported else "other_package"
        causes.append(Cause(kind, c.name, c.old, c.new, c.status))
    if ta.get("seed") != tb.get("seed"):
        causes.append(Cause("seed", "seed", ta.get("seed"), tb.get("seed")))
    git = {c.name: c for c in env.groups.get("git", [])}
    if "commit" in git:
        causes.append(Cause("commit", "commit", git["commit"].old, git["commit"].new))
    if "diff" in git:
        a, b = git["diff"].old, git["diff"].new
        a, b = ("" if a is MISSING else a or ""), ("" if b is MISSING else b or "")
        lines = unified_diff(a, b, "before", "after")
        detail = f"{len([x for x in lines.splitlines() if x[:1] in '+-']) - 2} lines differ"
        causes.append(Cause("uncommitted", "git diff", a, b, detail))
    da, db = trial_data_inputs(ta), trial_data_inputs(tb)
    for path in sorted({*da, *db}):
        a, b = da.get(path, MISSING), db.get(path, MISSING)
        status = entry_status(a, b)
        if status != SAME:
            causes.append(Cause("data", path, a, b, status))
    for c in env.groups.get("python", []):
        if c.name in ("version", "implementation"):
            causes.append(Cause("python", c.name, c.old, c.new))
    rank = {k: i for i, k in enumerate(CAUSE_ORDER)}
    return sorted(causes, key=lambda c: rank[c.kind])
