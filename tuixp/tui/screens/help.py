"""The help screen (``?``): every key of every screen, in one place."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Everywhere",
        [
            ("?", "this help"),
            ("ctrl+p", "command palette: sort, filter, open, marks, themes…"),
            (":", "SQL screen: read-only queries over the store's views"),
            ("L", "launch trials (form prefilled from the trial on screen)"),
            ("q", "quit (the terminal is restored)"),
            ("tab shift+tab", "next / previous pane"),
        ],
    ),
    (
        "Experiments and trials",
        [
            ("j k  ↓ ↑", "move down / up"),
            ("g G  home end", "first / last trial"),
            ("ctrl+f ctrl+b", "page down / up (or the page keys)"),
            ("h l  ← →", "choose a column"),
            ("s", "sort by that column (again: reverse)"),
            ("/", "filter with a SQL condition, e.g. status = 'failed'"),
            ("x", "clear the filter"),
            ("space", "mark the trial for comparison (again: unmark)"),
            ("c", "clear the marks"),
            ("C", "compare the marked trials (one mark: with the trial under the cursor)"),
            ("v", "compare the trial with the one before it"),
            ("enter", "open the trial"),
            ("e  t", "go to the experiments / the trials"),
            ("r", "read the store now (it refreshes every second)"),
            ("* a n N", "star / tags / note (ctrl+s saves) / name of the trial"),
            ("d  u", "delete the trial (asks y/n) / restore it (in the deleted view)"),
            ("D", "the deleted trials, and back"),
        ],
    ),
    (
        "Trial detail",
        [
            ("1 … 7", "overview, metrics, code, env, git, outputs, steps"),
            ("m", "metrics plot: one metric alone, the next, then all in panels"),
            ("l", "metrics plot: log scale on y (again: linear)"),
            ("s", "metrics plot: smoothing (none, mean of 1%, of 10% of the points)"),
            ("w", "metrics plot: x by epoch or by time since each trial's first point"),
            ("p", "preview the selected persisted output"),
            ("P", "load a pickled output (only after p asked)"),
            ("v", "compare with the previous trial"),
            ("R", "re-run: the launch form with this trial's parameters"),
            ("X", "repeat: run it again, check each step's output"),
            ("* a n N", "star / tags / note / name of the trial (shown in the overview)"),
            ("d  u", "delete the trial, back to the table / restore a deleted one"),
            ("j k g G", "scroll"),
            ("escape", "back to the trials"),
        ],
    ),
    (
        "Compare",
        [
            ("1 … 4", "params, code, env, metrics"),
            ("d", "only the rows that differ"),
            ("u", "unified / side-by-side code diff"),
            ("n", "next trial against the first one"),
            ("m", "next metric"),
            ("R  y", "re-run with these parameters / copy the tuixp run line"),
            ("X", "repeat the compared trial, check each step's output"),
        ],
    ),
    (
        "Launch and runs",
        [
            ("ctrl+enter ctrl+j", "launch (a child tuixp run)"),
            ("ctrl+r", "the runs and their live progress"),
            ("c", "cancel the selected run (its trials end interrupted)"),
            ("n  m", "new launch / next metric"),
        ],
    ),
    (
        "SQL",
        [
            ("ctrl+enter ctrl+j f5", "run the query (read-only)"),
            ("f2", "insert an example query"),
            ("ctrl+↑ ctrl+↓", "previous / next query from the history"),
            ("ctrl+g", "cancel a running query"),
        ],
    ),
]

FILTER_NOTE = (
    "A filter can use trial_id status result elapsed started finished seed commit branch dirty "
    "error host code_changed data_changed env_changed impure, each parameter and each metric "
    "(its last value) by name, starred tags name note (contains(tags, 'paper')), with = <> < > LIKE IN BETWEEN IS NULL AND OR NOT: model = 'ridge' "
    "AND loss < 0.2 (no subqueries, no files: queries go to the SQL screen). The CDEI column "
    "flags a changed Code, Data input or Environment since the previous trial, or an Impure step."
)


def help_text() -> Group:
    """Every key, one line each, so the whole help fits a small terminal."""
    parts: list[Any] = [Text("tuixp keys", style="bold"), Text("")]
    for title, keys in SECTIONS:
        parts.append(Text(title, style="bold underline"))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True, min_width=14)
        grid.add_column()
        for key, action in keys:
            grid.add_row(key, action)
        parts += [grid, Text("")]
    parts.append(Text(FILTER_NOTE, style="dim"))
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """Keys of every screen; escape, q or ? closes it."""

    DEFAULT_CSS = """
    #help-body { padding: 0 1; }
    """

    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close", show=True),
        Binding("j,down", "scroll_down", "Down", show=False),
        Binding("k,up", "scroll_up", "Up", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_text(), id="help-body")

    def action_close(self) -> None:
        self.dismiss()

    def action_scroll_down(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_up(animate=False)
