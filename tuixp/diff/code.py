"""Step code compared: ``compare_code`` (what changed, as unified diffs) and the side-by-side
rows the compare screen draws (``side_by_side``, ``unified_rows``)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tuixp.diff.values import ADDED, CHANGED, REMOVED, SAME


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
