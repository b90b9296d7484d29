"""Pure comparisons of recorded trials: parameters, step code, environment.

Inputs are the plain data the store hands out (``queries.trial(...)["params"]``,
``queries.code(...)``, ``queries.environment(...)``); outputs are small frozen dataclasses.
Nothing here reads a store or prints: ``tuixp diff`` and the TUI's compare screen both render
the same answers.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuixp.capture.environment import ENV_GROUPS as ENV_REGISTRY


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

# Environment groups in the order a comparison lists them (the registry's ``diff_rank``); the
# fields of each group that are compared first (anything else in the record is compared too,
# after these) and those that vary without meaning anything changed.
_DIFF_GROUPS = sorted(ENV_REGISTRY, key=lambda g: g.diff_rank)
ENV_GROUPS: dict[str, tuple[str, ...]] = {g.name: g.compared for g in _DIFF_GROUPS}
_ENV_NOISE: dict[str, frozenset[str]] = {g.name: g.noise for g in _DIFF_GROUPS if g.noise}


def _status(old: Any, new: Any) -> str:
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
        return sum(
            1
            for line in self.diff.splitlines()
            if line.startswith("+") and not line.startswith("+++")
        )

    @property
    def removed_lines(self) -> int:
        return sum(
            1
            for line in self.diff.splitlines()
            if line.startswith("-") and not line.startswith("---")
        )


def unified_diff(old: str, new: str, old_label: str, new_label: str, context: int = 3) -> str:
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_label, new_label, n=context, lineterm=""
    )
    return "\n".join(lines)


def compare_code(
    old: Mapping[str, str],
    new: Mapping[str, str],
    labels: tuple[str, str] = ("before", "after"),
    context: int = 3,
) -> list[CodeChange]:
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
        diff = (
            ""
            if status == SAME
            else unified_diff(
                a or "", b or "", f"{step} ({labels[0]})", f"{step} ({labels[1]})", context
            )
        )
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
        status = _status(old, new)
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
                status = _status(a, b)
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


def compare_trials(
    old: Mapping[str, Any], new: Mapping[str, Any], labels: tuple[str, str] = ("before", "after")
) -> TrialDiff:
    """Both trials as ``{"params": ..., "code": ..., "environment": ...}``."""
    return TrialDiff(
        compare_params(old.get("params") or {}, new.get("params") or {}),
        compare_code(old.get("code") or {}, new.get("code") or {}, labels),
        compare_environment(old.get("environment") or {}, new.get("environment") or {}),
    )


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


# -- side-by-side code -------------------------------------------------------------------------
@dataclass(frozen=True)
class SideRow:
    """One row of a side-by-side diff: a line of each side (None where that side has none).

    ``tag`` is difflib's: ``equal``, ``replace``, ``delete`` (only the old side) or ``insert``.
    Line numbers count from 1.
    """

    tag: str
    old_no: int | None
    old: str | None
    new_no: int | None
    new: str | None


@dataclass(frozen=True)
class Gap:
    """Unchanged lines left out of a diff with context: how many, and where they start."""

    old_no: int
    new_no: int
    count: int


def side_by_side(old: str, new: str, context: int | None = 3) -> list[SideRow | Gap]:
    """Rows pairing the old and new lines; runs of unchanged lines beyond ``context`` become a Gap.

    ``context=None`` keeps every line. A replaced block pairs lines one to one and pads the
    shorter side, so both columns stay aligned.
    """
    a, b = old.splitlines(), new.splitlines()
    rows: list[SideRow | Gap] = []
    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for n, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            span = i2 - i1
            keep_head = 0 if n == 0 else span
            keep_tail = 0 if n == len(opcodes) - 1 else span
            if context is not None:
                keep_head, keep_tail = min(keep_head, context), min(keep_tail, context)
            # A gap of one line would take the room of the line itself: show it instead.
            if context is None or keep_head + keep_tail >= span - 1:
                rows += [
                    SideRow("equal", i + 1, a[i], j + 1, b[j])
                    for i, j in zip(range(i1, i2), range(j1, j2))
                ]
                continue
            rows += [
                SideRow("equal", i1 + k + 1, a[i1 + k], j1 + k + 1, b[j1 + k])
                for k in range(keep_head)
            ]
            skipped = span - keep_head - keep_tail
            rows.append(Gap(i1 + keep_head + 1, j1 + keep_head + 1, skipped))
            rows += [
                SideRow(
                    "equal",
                    i2 - keep_tail + k + 1,
                    a[i2 - keep_tail + k],
                    j2 - keep_tail + k + 1,
                    b[j2 - keep_tail + k],
                )
                for k in range(keep_tail)
            ]
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            rows.append(
                SideRow(
                    tag,
                    i + 1 if i < i2 else None,
                    a[i] if i < i2 else None,
                    j + 1 if j < j2 else None,
                    b[j] if j < j2 else None,
                )
            )
    return rows


def unified_rows(rows: Sequence[SideRow | Gap]) -> list[tuple[str, int | None, int | None, str]]:
    """The same rows one above the other: ``(sign, old_no, new_no, text)``, removals first.

    ``sign`` is ``" "`` (unchanged), ``"-"``, ``"+"`` or ``"…"`` (a Gap; its text says how many
    lines were left out).
    """
    out: list[tuple[str, int | None, int | None, str]] = []
    minus: list[tuple[str, int | None, int | None, str]] = []
    plus: list[tuple[str, int | None, int | None, str]] = []

    def flush() -> None:
        out.extend(minus)
        out.extend(plus)
        minus.clear()
        plus.clear()

    for row in rows:
        if isinstance(row, Gap):
            flush()
            out.append(("…", row.old_no, row.new_no, f"{row.count} unchanged lines"))
        elif row.tag == "equal":
            flush()
            out.append((" ", row.old_no, row.new_no, row.old or ""))
        else:
            if row.old is not None:
                minus.append(("-", row.old_no, None, row.old))
            if row.new is not None:
                plus.append(("+", None, row.new_no, row.new))
    flush()
    return out


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


def _data_inputs(trial: Mapping[str, Any]) -> dict[str, Any]:
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
    da, db = _data_inputs(ta), _data_inputs(tb)
    for path in sorted({*da, *db}):
        a, b = da.get(path, MISSING), db.get(path, MISSING)
        status = _status(a, b)
        if status != SAME:
            causes.append(Cause("data", path, a, b, status))
    for c in env.groups.get("python", []):
        if c.name in ("version", "implementation"):
            causes.append(Cause("python", c.name, c.old, c.new))
    rank = {k: i for i, k in enumerate(CAUSE_ORDER)}
    return sorted(causes, key=lambda c: rank[c.kind])


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
    data = [_data_inputs(t) for t in trials]
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
