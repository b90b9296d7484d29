"""The SQL screen: a read-only query box over the store, with history, examples and the views.

Queries go through ``tuixp.store.sql`` (one statement, a query only, a read-only sandboxed
connection), so a writing statement is refused with a message and the store stays as it was.
Each query runs in a thread worker that hands its connection back first, so a long one can be
cancelled with ``con.interrupt()``. The history is kept beside the store, one JSON line a query,
in ``<store>.sql_history``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TextArea, Tree

from tuixp.errors import TuixpError
from tuixp.store import sql as store_sql
from tuixp.store.paths import StorePaths
from tuixp.store.schema import PUBLIC_VIEWS
from tuixp.tui.format import fmt_cell

if TYPE_CHECKING:
    from tuixp.tui.app import TuixpApp

MAX_ROWS = 1000  # rows shown in the table; the query may select more (the message says so)
HISTORY_KEPT = 500  # entries read back from the history file

EXAMPLES: list[tuple[str, str]] = [
    (
        "best trial per experiment (by its goal)",
        """\
SELECT t.experiment, e.goal,
       CASE e.goal WHEN 'min' THEN first(t.trial_id ORDER BY t.result_value, t.trial_id)
            ELSE first(t.trial_id ORDER BY t.result_value DESC, t.trial_id) END AS best_trial,
       CASE e.goal WHEN 'min' THEN min(t.result_value)
                   ELSE max(t.result_value) END AS best_result, count(*) AS trials
FROM trials t LEFT JOIN experiments e USING (experiment)
WHERE t.status = 'succeeded' GROUP BY t.experiment, e.goal ORDER BY t.experiment""",
    ),
    (
        "a metric at epoch N across trials",
        """\
SELECT experiment, trial_id, value AS loss_at_epoch_3
FROM metrics WHERE name = 'loss' AND epoch = 3
ORDER BY value LIMIT 20""",
    ),
    (
        "which step is slowest",
        """\
SELECT experiment, step, count(*) AS runs, round(avg(elapsed_s), 4) AS mean_s,
       round(max(elapsed_s), 4) AS max_s
FROM steps GROUP BY experiment, step ORDER BY mean_s DESC""",
    ),
    (
        "failed trials and their errors",
        """\
SELECT experiment, trial_id, started_at, error
FROM trials WHERE status = 'failed' ORDER BY started_at DESC""",
    ),
    (
        "parameters of the latest trials",
        """\
SELECT experiment, trial_id, name, value
FROM params ORDER BY trial_id DESC, name LIMIT 50""",
    ),
]


def history_path(store: Path) -> Path:
    return StorePaths(store).sql_history


def load_history(store: Path) -> list[str]:
    """Earlier queries, oldest first; a damaged line is skipped, a missing file is no history."""
    try:
        lines = history_path(store).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out: list[str] = []
    for line in lines[-HISTORY_KEPT:]:
        try:
            text = json.loads(line).get("sql")
        except (ValueError, AttributeError):
            continue
        if isinstance(text, str) and text.strip() and (not out or out[-1] != text):
            out.append(text)
    return out


def append_history(store: Path, text: str) -> None:
    """Add a query to the history; a read-only folder only loses the history, not the query."""
    try:
        with history_path(store).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"sql": text, "at": time.time()}) + "\n")
    except OSError:
        pass


# -- messages: one per stage -------------------------------------------------------------------
class QuerySubmitted(Message):
    def __init__(self, sql: str) -> None:
        super().__init__()
        self.sql = sql


@dataclass
class QueryOutcome:
    sql: str
    result: store_sql.QueryResult | None = None
    error: str | None = None
    refused: bool = False
    cancelled: bool = False


class QueryFinished(Message):
    """A query ended: rows, or why not (refused, a DuckDB error, cancelled)."""

    def __init__(self, outcome: QueryOutcome) -> None:
        super().__init__()
        self.outcome = outcome


class SchemaLoaded(Message):
    """The public views and their columns, for the list beside the editor."""

    def __init__(self, columns: dict[str, list[tuple[str, str]]], error: str | None) -> None:
        super().__init__()
        self.columns = columns
        self.error = error


class SqlScreen(Screen[None]):
    """Type a query, ctrl+enter runs it; the store cannot be changed from here."""

    BINDINGS = [
        Binding("ctrl+enter,ctrl+j,f5", "run", "Run", show=True, priority=True),
        Binding("f2", "example", "Example", show=True, priority=True),
        Binding("ctrl+up,alt+up", "history(-1)", "Prev query", show=True, priority=True),
        Binding("ctrl+down,alt+down", "history(1)", "Next query", show=False, priority=True),
        Binding("ctrl+g", "cancel", "Cancel", show=True, priority=True),
        Binding("f3", "focus_next_pane", "Editor/results", show=False),
        Binding("escape", "back", "Back", show=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.history: list[str] = []
        self.history_index = 0
        self.example_index = -1
        self.running = False
        self.outcome: QueryOutcome | None = None
        self._con: Any = None
        self._draft = ""

    @property
    def tuixp(self) -> "TuixpApp":
        return cast("TuixpApp", self.app)

    @property
    def store(self) -> Path:
        return self.tuixp.reader.path

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="sql-main"):
            with Vertical(id="sql-left"):
                yield TextArea(id="sql-editor", soft_wrap=True, show_line_numbers=False)
                yield Static("", id="sql-message")
                yield DataTable(id="sql-results", zebra_stripes=True, cursor_type="row")
            tree: Tree[str] = Tree("views", id="sql-schema")
            tree.show_root = False
            yield tree
        yield Footer()

    def on_mount(self) -> None:
        self.title = "tuixp · SQL"
        self.history = load_history(self.store)
        self.history_index = len(self.history)
        editor = self.query_one("#sql-editor", TextArea)
        editor.text = self.history[-1] if self.history else EXAMPLES[0][1]
        editor.focus()
        self._say("ctrl+enter runs the query (read-only) · F2 an example · ctrl+↑ history", "")
        self._load_schema()

    # -- the views beside the editor -----------------------------------------------------------
    @work(thread=True, group="sql-schema", exit_on_error=False)
    def _load_schema(self) -> None:
        names = ", ".join(f"'{v}'" for v in PUBLIC_VIEWS)
        columns: dict[str, list[tuple[str, str]]] = {v: [] for v in PUBLIC_VIEWS}
        try:
            res = store_sql.query(
                self.store,
                (
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    f"WHERE table_name IN ({names}) ORDER BY table_name, ordinal_position"
                ),
                ingest_first=False,
            )
        except TuixpError as exc:
            self.post_message(SchemaLoaded({}, str(exc)))
            return
        for view, column, kind in res.rows:
            columns[view].append((column, kind))
        self.post_message(SchemaLoaded(columns, None))

    @on(SchemaLoaded)
    def _schema_loaded(self, message: SchemaLoaded) -> None:
        tree = self.query_one("#sql-schema", Tree)
        tree.clear()
        if message.error:
            tree.root.add_leaf(Text(message.error, style="dim"))
            return
        for view, columns in message.columns.items():
            node = tree.root.add(Text(view, style="bold"), data=view, expand=False)
            for column, kind in columns:
                label = Text.assemble(column, "\u00a0", (kind.lower(), "dim"))
                node.add_leaf(label, data=column)
        first = tree.root.children[0] if tree.root.children else None
        if first is not None:
            first.expand()

    @on(Tree.NodeSelected, "#sql-schema")
    def _insert_name(self, event: Tree.NodeSelected[str]) -> None:
        if event.node.data and not event.node.allow_expand:
            editor = self.query_one("#sql-editor", TextArea)
            editor.insert(event.node.data)

    # -- running a query -----------------------------------------------------------------------
    def action_run(self) -> None:
        text = self.query_one("#sql-editor", TextArea).text.strip()
        if not text:
            self._say("Type a query first (F2 inserts an example).", "-error")
            return
        if self.running:
            self._say("A query is still running: ctrl+g cancels it.", "-error")
            return
        self.post_message(QuerySubmitted(text))

    @on(QuerySubmitted)
    def _submitted(self, message: QuerySubmitted) -> None:
        text = message.sql
        if not self.history or self.history[-1] != text:
            self.history.append(text)
            append_history(self.store, text)
        self.history_index = len(self.history)
        self.running = True
        self._say("Running… (ctrl+g cancels)", "")
        self._run_worker(text)

    def _keep_connection(self, con: Any) -> None:
        self._con = con

    @work(thread=True, exclusive=True, group="sql", exit_on_error=False)
    def _run_worker(self, text: str) -> None:
        outcome = QueryOutcome(text)
        try:
            outcome.result = store_sql.query(
                self.store, text, max_rows=MAX_ROWS, on_connect=self._keep_connection
            )
        except store_sql.ReadOnlyQuery as exc:
            outcome.error, outcome.refused = f"Refused: {exc}", True
        except TuixpError as exc:
            outcome.error = str(exc)
            outcome.cancelled = "INTERRUPT" in str(exc).upper()
        finally:
            self._con = None
        self.post_message(QueryFinished(outcome))

    def action_cancel(self) -> None:
        con = self._con
        if self.running and con is not None:
            con.interrupt()
            self._say("Cancelling…", "")
        elif not self.running:
            self._say("No query is running.", "")

    @on(QueryFinished)
    def _finished(self, message: QueryFinished) -> None:
        self.running = False
        out = self.outcome = message.outcome
        table = self.query_one("#sql-results", DataTable)
        if out.cancelled:
            self._say("Query cancelled.", "-error")
            return
        if out.error is not None or out.result is None:
            self._say(out.error or "no result", "-error")
            return
        res = out.result
        table.clear(columns=True)
        for name in res.columns:
            table.add_column(name, key=name)
        table.add_rows([[fmt_cell(v) for v in row] for row in res.rows])
        n = len(res.rows)
        if res.truncated:
            self._say(
                f"First {n:,} rows shown (the query selects more; add a LIMIT or "
                "use tuixp sql --format csv for all).",
                "-warning",
            )
        else:
            self._say(f"{n:,} row{'s' if n != 1 else ''} · {len(res.columns)} columns", "")

    def _say(self, text: str, cls: str) -> None:
        msg = self.query_one("#sql-message", Static)
        msg.set_classes(cls)
        msg.update(Text(text, no_wrap=True, overflow="ellipsis"))

    # -- editor helpers ------------------------------------------------------------------------
    def action_example(self) -> None:
        self.example_index = (self.example_index + 1) % len(EXAMPLES)
        title, text = EXAMPLES[self.example_index]
        editor = self.query_one("#sql-editor", TextArea)
        editor.text = text
        editor.focus()
        self._say(
            f"Example {self.example_index + 1}/{len(EXAMPLES)}: {title} "
            "(F2 for the next, ctrl+enter runs it)",
            "",
        )

    def action_history(self, step: int) -> None:
        if not self.history:
            self._say("No earlier queries yet.", "")
            return
        editor = self.query_one("#sql-editor", TextArea)
        if self.history_index == len(self.history):
            self._draft = editor.text
        index = max(0, min(len(self.history), self.history_index + step))
        self.history_index = index
        editor.text = self.history[index] if index < len(self.history) else self._draft
        where = f"{index + 1}/{len(self.history)}" if index < len(self.history) else "new"
        self._say(f"History {where}", "")

    def action_focus_next_pane(self) -> None:
        editor = self.query_one("#sql-editor", TextArea)
        if editor.has_focus:
            self.query_one("#sql-results", DataTable).focus()
        else:
            editor.focus()

    def action_back(self) -> None:
        self.dismiss()
