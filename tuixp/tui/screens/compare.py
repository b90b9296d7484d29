"""Compare trials side by side: parameters and results, code, environment, metrics.

Opened with two or more marked trials (``C`` on the trial table) or with one trial and its
previous one (``v``). The parameter table shows every trial as a column; the code, environment
and the likely causes compare the first trial (the reference) with one other (``n`` picks the
next), because a diff reads as "from this to that". Above the parameters, each trial's name,
star, tags and note (``tuixp curation``). All reads happen in one thread worker; every
difference shown comes from ``tuixp.diff``. Re-running a trial (``R``, ``y``) is
``tuixp.tui.screens.rerun``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from tuixp import diff
from tuixp.errors import TuixpError
from tuixp.tui.data import TrialDetail
from tuixp.tui.format import fmt_number
from tuixp.tui.screens.rerun import rerun
from tuixp.tui.screens.scrolling import ScrollsActivePane
from tuixp.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from tuixp.tui.app import TuixpApp

TABS = [("params", "Params"), ("code", "Code"), ("environment", "Env"), ("metrics", "Metrics")]
UNIFIED_BELOW = 120  # columns: narrower terminals get the unified code view by default
GIT_DIFF_STEP = diff.GIT_DIFF_STEP
NOTE_WIDTH = (24, 80)  # a note's cell: at least, at most (by the terminal's width)


class ComparisonLoaded(Message):
    """The compared trials were read (``details`` in the order of the columns)."""

    def __init__(self, details: list[TrialDetail]) -> None:
        super().__init__()
        self.details = details


class ComparisonFailed(Message):
    """The trials could not be read (no previous trial, store busy or gone)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class CompareToggled(Message):
    """A view option changed: ``only_differences``, ``unified`` or the compared ``pair``."""

    def __init__(self, option: str, value: Any) -> None:
        super().__init__()
        self.option = option
        self.value = value


# -- helpers ----------------------------------------------------------------------------------
def document(d: TrialDetail) -> dict[str, Any]:
    """A trial as ``tuixp.diff`` compares it (the CLI's ``tuixp diff`` builds the same)."""
    tid = d.trial_id
    return {
        "trial": d.trial,
        "code": d.code,
        "environment": d.environment,
        "steps_ran": [s["step"] for s in d.steps] if d.steps else None,
        "metrics": {name: series.get(tid, []) for name, series in d.metrics.items()},
    }


def result_rows(details: Sequence[TrialDetail]) -> list[diff.ParamRow]:
    """Rows of the table below the parameters (``tuixp.diff.result_rows``)."""
    return diff.result_rows([document(d) for d in details])


def _cell(value: Any, width: int = 24) -> str:
    if value is diff.MISSING or value == "":
        return "—"
    if isinstance(value, float):
        return fmt_number(value, 10)
    return diff.short(value, width)


def _highlighted_lines(source: str, lexer: str) -> list[Text]:
    """Each line of ``source`` with syntax colour (highlighted whole, so strings span lines)."""
    text = Syntax(source, lexer, background_color="default").highlight(source)
    text.style = ""
    lines = text.split("\n", allow_blank=True)
    return list(lines)


class CompareScreen(ScrollsActivePane, Screen[None]):
    """Trials of ``experiment`` side by side; ``previous=True`` compares one trial with the last
    trial before it."""

    SCROLL_PREFIX = "compare-"

    BINDINGS = [
        Binding("escape,backspace", "back", "Back", show=True),
        Binding("d", "only_differences", "Only diffs", show=True),
        Binding("u", "unified", "Unified/split", show=True),
        Binding("n", "next_pair", "Next trial", show=True),
        Binding("m", "next_metric", "Metric", show=False),
        Binding("R", "rerun", "Re-run", show=True),
        Binding("X", "repeat", "Repeat & check", show=False),
        Binding("y", "copy_command", "Copy run command", show=False),
        Binding("1", "tab('params')", "Params", show=False),
        Binding("2", "tab('code')", "Code", show=False),
        Binding("3", "tab('environment')", "Env", show=False),
        Binding("4", "tab('metrics')", "Metrics", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("j", "scroll_down", "Down", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    def __init__(self, experiment: str, trial_ids: Sequence[int], previous: bool = False) -> None:
        super().__init__()
        self.experiment = experiment
        self.trial_ids = list(trial_ids) if previous else sorted(set(trial_ids))
        self.previous = previous
        self.details: list[TrialDetail] | None = None
        self.only_differences = False
        self.unified: bool | None = None  # None: by the terminal's width
        self.pair = 1  # the trial compared with the reference (the first column)
        self.metric_index = 0

    @property
    def tuixp(self) -> "TuixpApp":
        return cast("TuixpApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with TabbedContent(id="compare-tabs", initial="params"):
            for i, (pane_id, title) in enumerate(TABS, 1):
                with TabPane(f"{i} {title}", id=pane_id):
                    if pane_id == "params":
                        yield Static("Loading…", id="params-head")
                        yield DataTable(id="params-table", cursor_type="row", zebra_stripes=False)
                    elif pane_id == "metrics":
                        yield PlotextPlot(id="compare-plot")
                    else:
                        yield Static("", id=f"{pane_id}-head", classes="compare-head")
                        with VerticalScroll(id=f"compare-{pane_id}-scroll"):
                            yield Static("Loading…", id=f"compare-{pane_id}-body")
        yield StatusBar(id="compare-status")
        yield Footer()

    def on_mount(self) -> None:
        ids = self.trial_ids
        what = (
            f"#{ids[0]} and the previous trial"
            if self.previous
            else ", ".join(f"#{t}" for t in ids)
        )
        self.title = f"{self.experiment}: compare {what}"
        self._load_worker(self.trial_ids, self.previous)

    # -- loading -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def _load_worker(self, ids: list[int], previous: bool) -> None:
        try:
            details = self.tuixp.reader.details(self.experiment, ids, previous)
            if details is None:
                self.post_message(
                    ComparisonFailed(f"Trial #{ids[0]} has no previous trial to compare with.")
                )
                return
        except TuixpError as exc:
            self.post_message(ComparisonFailed(f"Could not read the trials: {exc}"))
            return
        self.post_message(ComparisonLoaded(details))

    @on(ComparisonFailed)
    def _failed(self, message: ComparisonFailed) -> None:
        self.query_one("#compare-status", StatusBar).problem = message.message
        self.query_one("#params-head", Static).update(Text(message.message, style="bold"))
        self.notify(message.message, severity="warning")

    @on(ComparisonLoaded)
    def _loaded(self, message: ComparisonLoaded) -> None:
        self.details = message.details
        self.trial_ids = [d.trial_id for d in message.details]
        self.title = f"{self.experiment}: compare " + ", ".join(f"#{t}" for t in self.trial_ids)
        self.refresh_bindings()
        self._show_all()

    def _show_all(self) -> None:
        self._show_params()
        self._show_code()
        self._show_environment()
        self._show_plot()
        self._show_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_pair":
            return len(self.trial_ids) > 2
        return True

    @property
    def reference(self) -> TrialDetail:
        assert self.details is not None
        return self.details[0]

    @property
    def other(self) -> TrialDetail:
        assert self.details is not None
        return self.details[self.pair]

    def _pair_label(self) -> str:
        text = f"#{self.reference.trial_id} → #{self.other.trial_id}"
        if self.details is not None and len(self.details) > 2:
            text += f"  (n: next of {len(self.details) - 1})"
        return text

    def _show_status(self) -> None:
        assert self.details is not None
        mode = "unified" if self.is_unified() else "side by side"
        only = "only differences" if self.only_differences else "all rows"
        self.query_one(
            "#compare-status", StatusBar
        ).info = f"{len(self.details)} trials │ {only} │ code {mode} │ {self._pair_label()}"

    def is_unified(self) -> bool:
        if self.unified is not None:
            return self.unified
        return self.app.size.width < UNIFIED_BELOW

    # -- parameters and results --------------------------------------------------------------
    def table_rows(self) -> list[tuple[str, diff.ParamRow]]:
        """``(section, row)`` of the parameter table as shown (after "only differences")."""
        assert self.details is not None
        params = diff.param_table([d.trial.get("params") or {} for d in self.details])
        rows = [("parameter", r) for r in params] + [
            ("result", r) for r in result_rows(self.details)
        ]
        if self.only_differences:
            rows = [(s, r) for s, r in rows if r.differs]
        return rows

    def annotation_rows(self) -> list[tuple[str, list[str]]]:
        """``(label, cells)``: each trial's name, star, tags and note (its first line, cut to
        the room a column has), a row for each that some compared trial has."""
        assert self.details is not None
        marks = [d.annotation for d in self.details]
        # The room left by the label column and the columns of the trials without a note
        # (each as wide as its widest cell, plus the table's padding), shared by the others.
        shown = self.table_rows()
        used = max([len(r.name) + 2 for _, r in shown] + [6]) + 2
        for i, (d, a) in enumerate(zip(self.details, marks)):
            if not a.note:
                cells = [_cell(r.values[i]) for _, r in shown]
                used += max(map(len, [*cells, f"#{d.trial_id}", ", ".join(a.tags), a.name or ""]))
                used += 2
        noted = sum(1 for a in marks if a.note) or 1
        room = (self.app.size.width - used - 4) // noted - 2
        width = max(NOTE_WIDTH[0], min(NOTE_WIDTH[1], room))

        def note(text: str | None) -> str:
            lines = (text or "").strip().splitlines()
            first = lines[0] if lines else ""
            more = len(lines) > 1 or len(first) > width
            return first[: width - 1] + "…" if more else first

        rows = [
            ("name", [a.name or "" for a in marks]),
            ("★", ["★" if a.starred else "" for a in marks]),
            ("tags", [", ".join(a.tags) for a in marks]),
            ("note", [note(a.note) for a in marks]),
        ]
        return [(label, cells) for label, cells in rows if any(cells)]

    def _show_params(self) -> None:
        assert self.details is not None
        table = self.query_one("#params-table", DataTable)
        table.clear(columns=True)
        table.add_column("", key="name")
        for d in self.details:
            table.add_column(f"#{d.trial_id}", key=str(d.trial_id))
        for label, texts in self.annotation_rows():  # the trials' own labels, never filtered
            style = "bold yellow" if label == "★" else "italic"
            table.add_row(Text("  " + label, style="italic"), *(Text(c, style) for c in texts))
        rows = self.table_rows()
        every = self.table_rows() if not self.only_differences else None
        differ = sum(1 for _, r in rows if r.differs)
        total = len(every) if every is not None else None
        for section, row in rows:
            first = row.values[0]
            name = Text(
                ("≠ " if row.differs else "  ") + row.name,
                style="bold yellow" if row.differs else ("" if section == "parameter" else "dim"),
            )
            cells: list[Any] = [name]
            for i, value in enumerate(row.values):
                style = "bold yellow" if i > 0 and not diff.same(value, first) else ""
                cells.append(Text(_cell(value), style=style))
            table.add_row(*cells)
        if not rows:
            table.add_row(Text("  no differences", style="dim"), *[""] * len(self.details))
        shown = (
            "only the rows that differ"
            if self.only_differences
            else f"{differ} of {total} rows differ"
        )
        self.query_one("#params-head", Static).update(
            Text.assemble(
                (f"{len(self.details)} trials", "bold"),
                f" · {shown} · ",
                ("d", "bold"),
                ": " + ("show all rows" if self.only_differences else "show only differences"),
            )
        )

    # -- code --------------------------------------------------------------------------------
    def code_changes(self) -> list[diff.CodeChange]:
        return diff.compare_code(
            diff.sources(document(self.reference)),
            diff.sources(document(self.other)),
            (f"#{self.reference.trial_id}", f"#{self.other.trial_id}"),
        )

    def _show_code(self) -> None:
        changes = self.code_changes()
        changed = [c for c in changes if c.status != diff.SAME]
        unified = self.is_unified()
        head = Text.assemble(
            (f"Code {self._pair_label()}", "bold"),
            f" · {len(changed)} of {len(changes)} changed · ",
            ("u", "bold"),
            ": " + ("side by side" if unified else "unified"),
        )
        self.query_one("#code-head", Static).update(head)
        parts: list[Any] = []
        for c in changed:
            label = "the script" if c.step == "<script>" else c.step
            parts.append(
                Text.assemble(
                    (label, "bold underline"), f"  {c.status}  +{c.added_lines} -{c.removed_lines}"
                )
            )
            parts.append(self._diff_table(c, unified))
            parts.append(Text(""))
        same = [
            ("the script" if c.step == "<script>" else c.step)
            for c in changes
            if c.status == diff.SAME
        ]
        if same:
            parts.append(Text("unchanged: " + ", ".join(same), style="dim"))
        if not changes:
            parts.append(Text("No code recorded for these trials."))
        self.query_one("#compare-code-body", Static).update(Group(*parts))

    def _diff_table(self, change: diff.CodeChange, unified: bool) -> Table:
        lexer = "diff" if change.step == GIT_DIFF_STEP else "python"
        old, new = change.old or "", change.new or ""
        old_lines, new_lines = _highlighted_lines(old, lexer), _highlighted_lines(new, lexer)
        rows = diff.side_by_side(old, new)
        dark = self.app.current_theme.dark
        removed = "on #4a1f1f" if dark else "on #ffdcdc"
        added = "on #1c3f22" if dark else "on #d8f5d8"
        width = len(str(max(len(old_lines), len(new_lines), 1)))
        table = Table(box=None, show_header=False, padding=(0, 1, 0, 0), expand=True)

        def line(lines: list[Text], no: int | None, style: str) -> Text:
            if no is None:
                return Text("")
            text = lines[no - 1].copy() if no - 1 < len(lines) else Text("")
            if style:
                text.stylize(style)
            return text

        def number(no: int | None, style: str) -> Text:
            return Text(
                str(no) if no is not None else "", style=f"dim {style}".strip(), justify="right"
            )

        if unified:
            table.add_column(width=width, no_wrap=True)
            table.add_column(width=width, no_wrap=True)
            table.add_column(width=1, no_wrap=True)
            table.add_column(ratio=1, overflow="fold")
            for sign, old_no, new_no, text in diff.unified_rows(rows):
                if sign == "…":
                    table.add_row("", "", Text("⋯", style="dim"), Text(text, style="dim italic"))
                    continue
                style = removed if sign == "-" else added if sign == "+" else ""
                body = (
                    line(old_lines, old_no, style)
                    if sign == "-"
                    else line(new_lines, new_no, style)
                )
                sign_style = "bold red" if sign == "-" else "bold green" if sign == "+" else ""
                table.add_row(
                    number(old_no, ""), number(new_no, ""), Text(sign, style=sign_style), body
                )
            return table
        table.add_column(width=width, no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        table.add_column(width=width, no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        for row in rows:
            if isinstance(row, diff.Gap):
                gap = Text(f"⋯ {row.count} unchanged lines", style="dim italic")
                table.add_row("", gap, "", gap.copy())
                continue
            changed = row.tag != "equal"
            table.add_row(
                number(row.old_no, ""),
                line(old_lines, row.old_no, removed if changed else ""),
                number(row.new_no, ""),
                line(new_lines, row.new_no, added if changed else ""),
            )
        return table

    # -- environment -------------------------------------------------------------------------
    def causes(self) -> list[diff.Cause]:
        return diff.explain(document(self.reference), document(self.other))

    def _show_environment(self) -> None:
        a, b = self.reference, self.other
        self.query_one("#environment-head", Static).update(
            Text(f"Environment {self._pair_label()}", style="bold")
        )
        parts: list[Any] = [Text("Likely causes, most likely first", style="bold underline")]
        causes = self.causes()
        if not causes:
            parts.append(
                Text(
                    "Nothing here explains a different result: same code, packages, "
                    "seed, commit and data inputs. Look at the parameters (1).",
                    style="dim",
                )
            )
        for i, cause in enumerate(causes, 1):
            parts.append(
                Text.assemble(f"{i:>2}. ", (cause.title, "bold"), ": ", diff.cause_text(cause))
            )
        parts.append(Text(""))
        env = diff.compare_environment(a.environment, b.environment)
        if not env:
            parts.append(Text("The environments are the same.", style="dim"))
        for group, changes in env.groups.items():
            parts.append(Text(group, style="bold underline"))
            if group == "packages":
                for status, title in (
                    (diff.CHANGED, "changed version"),
                    (diff.ADDED, "added"),
                    (diff.REMOVED, "removed"),
                ):
                    these = [c for c in changes if c.status == status]
                    if these:
                        parts.append(Text(f"  {title} ({len(these)})", style="italic"))
                        parts += [Text(f"    {c.name}  {_arrow(c.old, c.new)}") for c in these]
            else:
                for c in changes:
                    if group == "git" and c.name == "diff":
                        parts.append(Text("  diff  differs (the Code tab shows both)"))
                    else:
                        parts.append(Text(f"  {c.name}  {_arrow(c.old, c.new)}"))
            parts.append(Text(""))
        self.query_one("#compare-environment-body", Static).update(Group(*parts))

    # -- metrics -----------------------------------------------------------------------------
    def metric_names(self) -> list[str]:
        if not self.details:
            return []
        return sorted(self.details[0].points)

    def _show_plot(self) -> None:
        plot = self.query_one("#compare-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        names = self.metric_names()
        if not names or self.details is None:
            plt.title("No metrics recorded for these trials")
            plot.refresh()
            return
        from tuixp.tui.plotting import PlotOptions, plot_dots, prepare

        shown = names if self.metric_index == 0 else [names[self.metric_index - 1]]
        # Each series cut to the plot's width in braille dots (min and max a column), as the
        # detail screen's plot does: plotext given a million points takes seconds.
        dots = plot_dots(plot.size.width or self.app.size.width)
        self.plot_drawn: dict[tuple[str, int], int] = {}  # points handed to plotext
        for name in shown:
            for tid, points in sorted(self.details[0].points[name].items()):
                xs, ys = prepare(points, PlotOptions(), dots)
                self.plot_drawn[name, tid] = len(xs)
                plt.plot(xs, ys, label=f"{name} #{tid}", marker="braille")
        which = "all metrics" if self.metric_index == 0 else shown[0]
        plt.title(f"{which} by epoch  [m: next metric]")
        plt.xlabel("epoch")
        plot.refresh()

    # -- actions -----------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_only_differences(self) -> None:
        self.only_differences = not self.only_differences
        self.post_message(CompareToggled("only_differences", self.only_differences))
        if self.details is not None:
            self._show_params()
            self._show_status()

    def action_unified(self) -> None:
        self.unified = not self.is_unified()
        self.post_message(CompareToggled("unified", self.unified))
        if self.details is not None:
            self._show_code()
            self._show_status()

    def action_next_pair(self) -> None:
        if self.details is None or len(self.details) < 3:
            return
        self.pair = self.pair % (len(self.details) - 1) + 1
        self.post_message(CompareToggled("pair", self.other.trial_id))
        self._show_code()
        self._show_environment()
        self._show_status()

    def action_next_metric(self) -> None:
        names = self.metric_names()
        self.metric_index = (self.metric_index + 1) % (len(names) + 1) if names else 0
        self.query_one(TabbedContent).active = "metrics"
        self._show_plot()

    def action_rerun(self) -> None:
        """The compared trial (the second column, or the one ``n`` chose) in the launch form."""
        if self.details is not None:
            rerun(self.tuixp, self.experiment, self.other.trial)

    def action_repeat(self) -> None:
        """``tuixp repeat`` of the compared trial: run again, each step's output checked."""
        from tuixp.tui.screens.progress import start_repeat

        if self.details is not None:
            start_repeat(self.tuixp, self.experiment, self.other.trial)

    def action_copy_command(self) -> None:
        if self.details is not None:
            rerun(self.tuixp, self.experiment, self.other.trial, launch=False)

    def on_resize(self) -> None:
        if self.details is not None and self.unified is None:
            self._show_code()
            self._show_status()


def _arrow(old: Any, new: Any) -> str:
    return f"{diff.short(old, 30)} → {diff.short(new, 30)}"
