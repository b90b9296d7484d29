"""The trial table: a ScrollView that draws only the rows on screen, asking for them a window at a time.

It never holds all the trials. It keeps the rows it was given (the window on screen plus a
margin, a few windows at most) and, when a line it must draw is missing, posts ``WindowNeeded``;
the app reads that window from DuckDB in a worker and hands it back with ``show_window``. The
header line stays put; the mark, id, star, status and change-flag columns stay put when
scrolling sideways.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuixp.store import flags
from tuixp.store.columns import Layout
from tuixp.store.window import TrialRow
from tuixp.tui.format import STATUS_TEXT, fmt_elapsed, fmt_number, fmt_time

MAX_CACHED_ROWS = 2000


@dataclass(frozen=True)
class DisplayColumn:
    """A column as drawn: ``sort`` is the name the store sorts and filters by."""

    sort: str
    header: str
    width: int
    value: Callable[[TrialRow, float], tuple[str, str]]  # (text, component class or "")
    right: bool = False


def _status(row: TrialRow, now: float) -> tuple[str, str]:
    # A status this version does not know (a newer tuixp wrote it) is shown as it is, plainly.
    if row.status in STATUS_TEXT:
        return STATUS_TEXT[row.status], f"trial-table--{row.status}"
    return str(row.status), "trial-table--dim"


def _elapsed(row: TrialRow, now: float) -> tuple[str, str]:
    if row.started_at is None or row.status == "queued":
        return "", ""  # a queued trial's time starts with its first step
    end = row.finished_at.timestamp() if row.finished_at is not None else now
    return fmt_elapsed(end - row.started_at.timestamp()), ""


def _flags(row: TrialRow, now: float) -> tuple[str, str]:
    text = row.flags
    return text, "trial-table--flag" if text.strip(flags.BLANK) else "trial-table--dim"


def _param(key: str, width: int) -> Callable[[TrialRow, float], tuple[str, str]]:
    def value(row: TrialRow, now: float) -> tuple[str, str]:
        if key in row.params and row.params[key] is None:
            return "None", ""  # a value the trial ran with (max_depth=None), not a blank
        return fmt_number(row.params.get(key), width), ""

    return value


def _metric(key: str, width: int) -> Callable[[TrialRow, float], tuple[str, str]]:
    return lambda row, now: (fmt_number(row.metrics.get(key), width), "")


def _best(key: str, width: int) -> Callable[[TrialRow, float], tuple[str, str]]:
    return lambda row, now: (fmt_number(row.best.get(key), width), "")


def _tags(row: TrialRow, now: float) -> tuple[str, str]:
    return ", ".join(row.tags), "trial-table--tags"


# Columns shown only once a row that needs them was shown (for the same layout): most
# experiments have no merged trial, no name and no tag, and the table keeps their room.
OPTIONAL = ("origin", "name", "tags")


def optional_columns(rows: list[TrialRow]) -> frozenset[str]:
    """Which of the OPTIONAL columns these rows need."""
    return frozenset(
        k
        for k, needed in (
            ("origin", any(r.origin for r in rows)),
            ("name", any(r.name for r in rows)),
            ("tags", any(r.tags for r in rows)),
        )
        if needed
    )


def display_columns(
    lay: Layout, id_width: int = 6, optional: frozenset[str] = frozenset()
) -> list[DisplayColumn]:
    """The columns for an experiment: id, star, status and the change flags
    (``tuixp.store.flags``) fixed, then the outcome (result, metrics), the trial's tags and
    name, parameters, and the trial's own. The flags and the outcome come first so that at 80
    columns they are on screen without scrolling sideways, however many parameters there are.
    ``id_width`` fits the longest trial id shown so far; ``optional`` are the OPTIONAL columns
    to show."""
    cols = [
        DisplayColumn("trial_id", "#", id_width, lambda r, n: (str(r.trial_id), ""), right=True),
        # Two wide: the header holds the sort arrow too. A sort puts the starred trials first.
        DisplayColumn(
            lay.annotation("starred").name,
            "★",
            2,
            lambda r, n: ("★" if r.starred else "", "trial-table--star"),
        ),
        DisplayColumn("status", "status", 11, _status),
        DisplayColumn("code_changed", flags.HEADER, len(flags.HEADER), _flags),
        DisplayColumn(
            "result",
            "result",
            9,
            lambda r, n: (
                fmt_number(r.result_value if r.result_value is not None else r.result, 9),
                "trial-table--result",
            ),
            right=True,
        ),
    ]
    bests = {b.source: b for b in lay.bests}
    for m in lay.metrics:
        width = max(7, min(10, len(m.name)))
        cols.append(DisplayColumn(m.name, m.name, width, _metric(m.source, width), right=True))
        b = bests.get(m.source)
        if b is not None:  # the best value by the metric's goal, beside the last one
            width = max(7, min(10, len(b.name)))
            cols.append(DisplayColumn(b.name, b.name, width, _best(b.source, width), right=True))
    if "tags" in optional:  # a sort orders the tag lists (alphabetically by their first tag)
        cols.append(DisplayColumn(lay.annotation("tags").name, "tags", 14, _tags))
    if "name" in optional:
        name = lay.annotation("name").name
        cols.append(DisplayColumn(name, "name", 12, lambda r, n: (r.name or "", "")))
    for p in lay.params:
        width = max(8 if p.numeric else 6, min(10, len(p.name)))
        cols.append(DisplayColumn(p.name, p.name, width, _param(p.source, width), right=p.numeric))
    cols += [
        DisplayColumn("elapsed", "elapsed", 7, _elapsed, right=True),
        DisplayColumn("started", "started", 11, lambda r, n: (fmt_time(r.started_at), "")),
        DisplayColumn(
            "commit",
            "commit",
            8,
            lambda r, n: (
                ((r.commit or "")[:7] + ("*" if r.dirty else "")) if r.commit else "",
                "",
            ),
        ),
    ]
    if (
        "origin" in optional
    ):  # some trial shown was merged from another store: where it was recorded
        cols.append(DisplayColumn("origin", "origin", 16, lambda r, n: (r.origin or "", "")))
    return cols


FIXED_COLUMNS = 4  # id, star, status and the flags stay on screen when scrolling sideways
MARK_WIDTH = 2


class TrialTable(ScrollView, can_focus=True):
    """Trials of one experiment, drawn a line at a time from a window of rows."""

    COMPONENT_CLASSES = {
        "trial-table--header",
        "trial-table--header-sorted",
        "trial-table--cursor",
        "trial-table--column-cursor",
        "trial-table--succeeded",
        "trial-table--failed",
        "trial-table--queued",
        "trial-table--running",
        "trial-table--interrupted",
        "trial-table--mark",
        "trial-table--result",
        "trial-table--flag",
        "trial-table--star",
        "trial-table--tags",
        "trial-table--dim",
        "trial-table--loading",
    }

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("left,h", "column_left", "Column left", show=False),
        Binding("right,l", "column_right", "Column right", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("enter", "open", "Open", show=True),
        Binding("space", "mark", "Mark", show=True),
        Binding("s", "sort", "Sort", show=True),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True)
    cursor_column: reactive[int] = reactive(0)

    class WindowNeeded(Message):
        """Rows ``offset`` to ``offset + limit`` must be read for the table to draw."""

        def __init__(self, table: "TrialTable", offset: int, limit: int) -> None:
            super().__init__()
            self.table = table
            self.offset = offset
            self.limit = limit

    class Highlighted(Message):
        def __init__(self, table: "TrialTable", row: TrialRow | None) -> None:
            super().__init__()
            self.table = table
            self.row = row

    class Opened(Message):
        def __init__(self, table: "TrialTable", row: TrialRow) -> None:
            super().__init__()
            self.table = table
            self.row = row

    class MarkToggled(Message):
        def __init__(self, table: "TrialTable", trial_id: int) -> None:
            super().__init__()
            self.table = table
            self.trial_id = trial_id

    class SortRequested(Message):
        def __init__(self, table: "TrialTable", column: str) -> None:
            super().__init__()
            self.table = table
            self.column = column

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.clock = clock or time.time
        self.layout_info: Layout | None = None
        self.columns: list[DisplayColumn] = []
        self.total = 0
        self.rows: dict[int, TrialRow] = {}
        self.marks: frozenset[int] = frozenset()
        self.sort_column = "trial_id"
        self.sort_descending = True
        self.pending: tuple[int, int] | None = None
        self.loaded = False  # a window has arrived since the last reset
        self.empty_text = "No trials yet."
        self.id_width = 6  # grows to the longest id shown (a millionth trial has 7 digits)
        self.optional: frozenset[str] = frozenset()  # OPTIONAL columns needed by rows shown

    # -- data in ---------------------------------------------------------------------------
    def reset(self, sort: str = "trial_id", descending: bool = True) -> None:
        """Forget every row (the query changed); the next draw asks for a window."""
        self.rows.clear()
        self.pending = None
        self.loaded = False
        self.sort_column, self.sort_descending = sort, descending
        self.cursor_row = 0
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def show_window(
        self, lay: Layout, total: int, offset: int, rows: list[TrialRow], replace: bool = False
    ) -> None:
        """Rows ``offset..`` of ``total``; ``replace`` drops the rows kept from before."""
        id_width = max([self.id_width, *(len(str(r.trial_id)) for r in rows)])
        optional = optional_columns(rows)
        if lay == self.layout_info:
            optional |= self.optional
        if lay != self.layout_info or id_width != self.id_width or optional != self.optional:
            self.layout_info, self.id_width, self.optional = lay, id_width, optional
            self.columns = display_columns(lay, id_width, optional)
            self.cursor_column = min(self.cursor_column, len(self.columns) - 1)
        if replace or total != self.total:
            self.rows.clear()
        self.total = total
        for i, row in enumerate(rows):
            self.rows[offset + i] = row
        if len(self.rows) > MAX_CACHED_ROWS:
            keep = range(offset - MAX_CACHED_ROWS // 2, offset + MAX_CACHED_ROWS // 2)
            self.rows = {k: v for k, v in self.rows.items() if k in keep}
        self.pending = None
        self.loaded = True
        self.virtual_size = Size(self._full_width(), total + 1)
        if self.cursor_row >= total:
            self.cursor_row = max(0, total - 1)
        self.refresh()
        self.post_message(self.Highlighted(self, self.current_row))

    def set_marks(self, marks: frozenset[int]) -> None:
        self.marks = marks
        self.refresh()

    @property
    def current_row(self) -> TrialRow | None:
        return self.rows.get(self.cursor_row)

    def visible_rows(self) -> list[TrialRow]:
        top = int(self.scroll_offset.y)
        return [self.rows[i] for i in range(top, top + self.body_height) if i in self.rows]

    @property
    def body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def window_for(self, top: int) -> tuple[int, int]:
        """The window to read around screen top ``top``: a screen above, two below."""
        h = self.body_height
        offset = max(0, top - h)
        return offset, 4 * h

    # -- drawing ---------------------------------------------------------------------------
    def _full_width(self) -> int:
        return MARK_WIDTH + sum(c.width + 1 for c in self.columns)

    def _fixed_width(self) -> int:
        return MARK_WIDTH + sum(c.width + 1 for c in self.columns[:FIXED_COLUMNS])

    def _cell(self, text: str, col: DisplayColumn) -> str:
        if len(text) > col.width:
            text = text[: col.width - 1] + "…"
        return (text.rjust(col.width) if col.right else text.ljust(col.width)) + " "

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not self.columns:
            text = "Loading…" if y == 0 and not self.loaded else ""
            return Strip([Segment(text.ljust(width), base)]).crop(0, width)
        if y == 0:
            strip = self._header()
        else:
            index = int(self.scroll_offset.y) + y - 1
            if index >= self.total:
                if self.total == 0 and y == 1 and self.loaded:
                    style = self.get_component_rich_style("trial-table--dim")
                    return Strip([Segment(self.empty_text.ljust(width), style)]).crop(0, width)
                return Strip.blank(width, base)
            row = self.rows.get(index)
            if row is None:
                self._need(index)
                style = self.get_component_rich_style("trial-table--loading")
                strip = Strip([Segment(" " * MARK_WIDTH + "…".rjust(self.columns[0].width), style)])
            else:
                strip = self._row(index, row)
        return self._scrolled(strip, width, base)

    def _scrolled(self, strip: Strip, width: int, base: Style) -> Strip:
        fixed = self._fixed_width()
        scroll_x = int(self.scroll_offset.x)
        left = strip.crop_extend(0, fixed, base)
        right = strip.crop_extend(fixed + scroll_x, fixed + scroll_x + max(0, width - fixed), base)
        return Strip.join([left, right]).crop(0, width)

    def _header(self) -> Strip:
        head = self.get_component_rich_style("trial-table--header")
        sorted_style = self.get_component_rich_style("trial-table--header-sorted")
        col_cursor = self.get_component_rich_style("trial-table--column-cursor")
        segs = [Segment(" " * MARK_WIDTH, head)]
        for i, col in enumerate(self.columns):
            label = col.header
            style = head
            if col.sort == self.sort_column:
                label = label + ("▼" if self.sort_descending else "▲")
                style = sorted_style
            if i == self.cursor_column and self.has_focus:
                style = style + col_cursor
            segs.append(Segment(self._cell(label, col), style))
        return Strip(segs)

    def _row(self, index: int, row: TrialRow) -> Strip:
        now = self.clock()
        base = self.rich_style
        cursor = index == self.cursor_row
        cursor_style = self.get_component_rich_style("trial-table--cursor") if cursor else None
        marked = row.trial_id in self.marks
        mark_style = self.get_component_rich_style("trial-table--mark")
        segs = [Segment("▌ " if marked else "  ", mark_style if marked else base)]
        for col in self.columns:
            text, cls = col.value(row, now)
            style = self.get_component_rich_style(cls) if cls else base
            segs.append(Segment(self._cell(text, col), style))
        if cursor_style is not None:
            # On top of each cell's own style: the cursor's background must win.
            segs = [Segment(text, (style or base) + cursor_style) for text, style, _ in segs]
        return Strip(segs)

    def _need(self, index: int) -> None:
        top = int(self.scroll_offset.y)
        if self.pending is not None:
            lo, n = self.pending
            if lo <= index < lo + n:
                return
        offset, limit = self.window_for(top if top <= index < top + self.body_height else index)
        self.pending = (offset, limit)
        self.post_message(self.WindowNeeded(self, offset, limit))

    # -- moving ----------------------------------------------------------------------------
    def watch_cursor_row(self, old: int, new: int) -> None:
        self._ensure_cursor_visible()
        self.refresh()
        self.post_message(self.Highlighted(self, self.current_row))

    def watch_cursor_column(self, old: int, new: int) -> None:
        if not self.columns or new < FIXED_COLUMNS:
            self.refresh()
            return
        start = MARK_WIDTH + sum(c.width + 1 for c in self.columns[FIXED_COLUMNS:new])
        end = start + self.columns[new].width + 1
        view = self.scrollable_content_region.width - self._fixed_width()
        x = int(self.scroll_offset.x)
        if start - MARK_WIDTH < x:
            self.scroll_to(x=start - MARK_WIDTH, animate=False)
        elif end - MARK_WIDTH > x + view:
            self.scroll_to(x=end - MARK_WIDTH - view, animate=False)
        self.refresh()

    def _ensure_cursor_visible(self) -> None:
        top = int(self.scroll_offset.y)
        h = self.body_height
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + h:
            self.scroll_to(y=self.cursor_row - h + 1, animate=False)

    def _move(self, row: int) -> None:
        if self.total:
            self.cursor_row = max(0, min(self.total - 1, row))

    def action_cursor_up(self) -> None:
        self._move(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._move(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self._move(self.cursor_row - self.body_height)

    def action_page_down(self) -> None:
        self._move(self.cursor_row + self.body_height)

    def action_first(self) -> None:
        self._move(0)

    def action_last(self) -> None:
        self._move(self.total - 1)

    def action_column_left(self) -> None:
        self.cursor_column = max(0, self.cursor_column - 1)

    def action_column_right(self) -> None:
        if self.columns:
            self.cursor_column = min(len(self.columns) - 1, self.cursor_column + 1)

    def action_open(self) -> None:
        row = self.current_row
        if row is not None:
            self.post_message(self.Opened(self, row))

    def action_mark(self) -> None:
        row = self.current_row
        if row is not None:
            self.post_message(self.MarkToggled(self, row.trial_id))
            self._move(self.cursor_row + 1)

    def action_sort(self) -> None:
        if self.columns:
            self.post_message(self.SortRequested(self, self.columns[self.cursor_column].sort))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            return
        self._move(int(self.scroll_offset.y) + offset.y - 1)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_resize(self) -> None:
        self.virtual_size = Size(self._full_width(), self.total + 1)
        self.refresh()
