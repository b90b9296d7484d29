"""The tuixp TUI: the app, its state (experiment, query, marks) and every read of the store.

The app owns the state and the workers; screens and widgets post messages to it. Every store
read happens in a thread worker that opens the store, reads, closes it and posts a message, so the
UI never waits on DuckDB and other processes can write between refreshes. The store is polled
about once a second by re-arming a timer when each poll has finished (never overlapping polls).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from tuixp.errors import StoreError, TuixpError
from tuixp.store import columns, filters
from tuixp.store.window import FilterError, TrialQuery
from tuixp.tui.commands import TuixpCommands
from tuixp.tui.data import StoreReader
from tuixp.tui.format import fmt_number
from tuixp.tui.launcher import Launches
from tuixp.tui.messages import (
    Annotated,
    FilterRejected,
    MarksChanged,
    PollFinished,
    QueryChanged,
    StoreProblem,
    StoreRefreshed,
    TrialsLoaded,
)
from tuixp.tui.screens.browse import BrowseScreen
from tuixp.tui.screens.curate import CuratingScreen
from tuixp.tui.screens.detail import DetailScreen
from tuixp.tui.screens.help import HelpScreen
from tuixp.tui.screens.progress import LaunchUpdated, handle_update

POLL_INTERVAL = 1.0
THEMES = {
    "dark": "textual-dark",
    "light": "textual-light",
    "ansi": "ansi-dark",
    "ansi-light": "ansi-light",
}


class TuixpApp(App[None]):
    """Browse the experiments and trials of one tuixp store."""

    CSS_PATH = "app.tcss"
    TITLE = "tuixp"
    COMMANDS = App.COMMANDS | {TuixpCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit", show=True),
        Binding("question_mark", "help", "Help", show=True, key_display="?"),
        Binding("L", "launch", "Launch", show=True),
        Binding("colon", "sql", "SQL", show=True, key_display=":"),
    ]

    def __init__(
        self,
        store_path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] | None = None,
        poll_interval: float = POLL_INTERVAL,
        theme: str | None = None,
        connect_timeout: float = 0.5,
    ) -> None:
        super().__init__()
        self.reader = StoreReader(Path(store_path), timeout=connect_timeout)
        self.clock = clock or time.time
        self.poll_interval = poll_interval
        self.experiments: list[dict[str, Any]] = []
        self.experiment: str | None = None
        self.query_state: TrialQuery | None = None
        self.marks: dict[str, frozenset[int]] = {}
        self.fingerprint: tuple[Any, ...] | None = None
        self.generation = 0
        self._polling = False
        self._poll_again = False  # a forced poll came while one ran
        self._adopting = False  # a new query's first window is being read
        self._poll_timer: Any = None
        self._summary_building: str | None = None  # the experiment whose summary is being built
        self._last_error = ""  # the last unexpected failure notified
        self.filter_problem = ""  # why the typed filter was refused: shown until the next one
        self.sub_title = self.reader.path.name
        self.launches = Launches(clock=self.clock)
        if theme:
            self.theme = THEMES.get(theme, theme)

    # -- lifecycle ---------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.push_screen(BrowseScreen())
        self.set_interval(1.0, self._tick)

    @property
    def browse(self) -> BrowseScreen:
        for screen in self.screen_stack:
            if isinstance(screen, BrowseScreen):
                return screen
        raise LookupError("the browse screen is not open")

    def _tick(self) -> None:
        """Running trials' elapsed time moves every second without a store read."""
        try:
            table = self.browse.table
        except LookupError:
            return
        if any(r.status == "running" for r in table.visible_rows()):
            table.refresh()
        if isinstance(self.screen, DetailScreen):
            self.screen.tick()

    # -- polling -----------------------------------------------------------------------------
    def poll(self, force: bool = False) -> None:
        """Read the store again (experiments; the shown window if anything changed)."""
        if self._polling:
            # A forced poll (after a write) must see the write: read again once this one ends.
            self._poll_again = self._poll_again or force
            return
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        self._polling = True
        try:
            table = self.browse.table
            offset, limit = table.window_for(int(table.scroll_offset.y))
        except LookupError:
            offset, limit = 0, 100
        known = None if force else self.fingerprint
        self._poll_worker(self.query_state, offset, limit, known, self.generation)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll_worker(
        self,
        query: TrialQuery | None,
        offset: int,
        limit: int,
        known: tuple[Any, ...] | None,
        generation: int,
    ) -> None:
        delivered = False

        def deliver(snap: Any) -> None:
            nonlocal delivered
            delivered = True
            self.post_message(StoreRefreshed(snap, generation))

        try:
            if self.reader.snapshot(query, offset, limit, known, deliver) is None:
                delivered = True  # nothing changed on disk: nothing was read
        except (FilterError, StoreError) as exc:
            self.post_message(StoreProblem(str(exc), from_poll=True))
        finally:
            if delivered:
                self.post_message(PollFinished())

    def _rearm(self) -> None:
        self._polling = False
        if self._poll_timer is not None:
            self._poll_timer.stop()
        if self._poll_again:
            self._poll_again = False
            self.poll(force=True)
            return
        self._poll_timer = self.set_timer(self.poll_interval, self.poll)

    @on(StoreRefreshed)
    def _refreshed(self, message: StoreRefreshed) -> None:
        snap = message.snapshot
        self._last_error = ""  # the store reads again: a new failure is news
        self.fingerprint = snap.fingerprint
        self.experiments = snap.experiments
        browse = self.browse
        browse.status.problem = self.filter_problem
        browse.query_one("#experiments").show(snap.experiments, self.experiment)  # type: ignore[attr-defined]
        names = [e["experiment"] for e in snap.experiments]
        if self.experiment is None and snap.trials is not None:
            # The first poll read the most recent experiment's window: show it at once.
            self.experiment = snap.trials.query.experiment
            self.query_state = snap.trials.query
            self.post_message(QueryChanged(snap.trials.query))
        elif self.experiment is None and names:
            self.select_experiment(names[0])
        elif self.experiment is not None and self.experiment not in names:
            browse.table.empty_text = f"No trials of {self.experiment} in this store."
        if (
            snap.trials is not None
            and message.generation == self.generation
            and snap.trials.query == self.query_state
        ):
            t = snap.trials
            browse.table.show_window(t.layout, t.total, t.offset, t.rows, replace=True)
        elif not names:
            browse.table.empty_text = "No trials yet: run one and it shows here."
            browse.table.loaded = True
            browse.table.refresh()
        self.update_status()
        if isinstance(self.screen, DetailScreen):
            self.screen.store_changed()

    @on(PollFinished)
    def _poll_done(self) -> None:
        """The poll's worker is done: arm the next poll, and build the summary if it needs it."""
        self._rearm()
        exp = self.experiment
        if (
            exp is not None
            and exp != self._summary_building
            and not self.reader.summary(exp).prepared
        ):
            self._summary_building = exp
            self._summary_worker(exp)

    @work(thread=True, exclusive=True, group="summary", exit_on_error=False)
    def _summary_worker(self, experiment: str) -> None:
        """Every trial's result and metrics in memory, so sorting by them needs no scan."""
        worker = get_current_worker()
        try:
            self.reader.build_summary(
                experiment, lambda: worker.is_cancelled or self.experiment != experiment
            )
        except StoreError:
            pass  # the poll says what is wrong with the store; the next poll starts again
        finally:
            self.call_from_thread(self._summary_done, experiment)

    def _summary_done(self, experiment: str) -> None:
        if self._summary_building == experiment:
            self._summary_building = None

    @on(StoreProblem)
    def _problem(self, message: StoreProblem) -> None:
        if not message.from_poll:
            self._adopting = False
        self.browse.status.problem = message.message
        if message.from_poll:
            self._rearm()

    # -- the trial query ---------------------------------------------------------------------
    def select_experiment(self, name: str) -> None:
        if name == self.experiment:
            return
        self.experiment = name
        try:
            browse = self.browse
            browse.query_one("#filter").value = ""  # type: ignore[attr-defined]
            experiments = browse.query_one("#experiments")
            names = [e["experiment"] for e in self.experiments]
            if name in names and experiments.highlighted != names.index(name):  # type: ignore[attr-defined]
                experiments.highlighted = names.index(name)  # type: ignore[attr-defined]
        except LookupError:
            pass
        self.set_query(TrialQuery(name))

    def set_query(self, query: TrialQuery) -> None:
        """Show ``query``: read its first window; the table changes when it arrives."""
        self.filter_problem = ""
        self.generation += 1
        self._adopting = True
        self._window_worker(query, 0, self._limit(), self.generation, True)

    def _limit(self) -> int:
        try:
            return self.browse.table.window_for(0)[1]
        except LookupError:
            return 100

    def load_window(self, offset: int, limit: int) -> None:
        # While a new query is on its way, its first window replaces every row: a read of the
        # old query's rows would only cancel it (the window worker is exclusive).
        if self.query_state is not None and not self._adopting:
            self._window_worker(self.query_state, offset, limit, self.generation, False)

    @work(thread=True, exclusive=True, group="window", exit_on_error=False)
    def _window_worker(
        self, query: TrialQuery, offset: int, limit: int, generation: int, adopt: bool
    ) -> None:
        # Only the latest request matters (the table asks again for rows it still lacks):
        # one overtaken while it waited for the store gives way without reading.
        worker = get_current_worker()
        try:
            win = self.reader.trials(query, offset, limit, lambda: worker.is_cancelled)
            if win is None:
                return
        except FilterError as exc:
            self.post_message(FilterRejected(query, str(exc)))
        except StoreError as exc:
            self.post_message(StoreProblem(str(exc)))
        else:
            self.post_message(TrialsLoaded(win, generation, adopt))

    @on(TrialsLoaded)
    def _trials_loaded(self, message: TrialsLoaded) -> None:
        win = message.window
        if message.generation != self.generation:
            return
        table = self.browse.table
        if message.replace:
            self._adopting = False
            if win.query != self.query_state:
                self.query_state = win.query
                table.reset(win.query.sort, win.query.descending)
                self.post_message(QueryChanged(win.query))
                self._large_params_notice(win)
            table.show_window(win.layout, win.total, win.offset, win.rows, replace=True)
        elif win.query == self.query_state:
            table.show_window(win.layout, win.total, win.offset, win.rows)
        self.browse.status.problem = self.filter_problem
        self.update_status()

    def _large_params_notice(self, win: Any) -> None:
        """Say so when a sort or filter by a parameter cannot compare some trials: parameter
        documents over PARSE_LIMIT are not parsed in SQL (they would not fit in memory)."""
        lay, q = win.layout, win.query
        names = {c.name for c in lay.params}
        if not lay.unparsed or not names:
            return
        used = {q.sort} | (filters.parse(q.where, [c.name for c in lay.columns]).columns)
        if used & names:
            mb = columns.PARSE_LIMIT // (1024 * 1024)
            self.notify(
                f"{lay.unparsed:,} trial(s) hold parameters over {mb} MB: sorting or filtering "
                "by a parameter does not compare them (they sort last, a filter skips them).",
                title="Large parameters",
                severity="warning",
            )

    @on(FilterRejected)
    def _filter_rejected(self, message: FilterRejected) -> None:
        self._adopting = False
        self.filter_problem = message.message  # a poll or a scroll does not wipe it
        browse = self.browse
        browse.status.problem = message.message
        browse.query_one("#filter").add_class("-invalid")

    @on(QueryChanged)
    def _query_changed(self, message: QueryChanged) -> None:
        try:
            self.browse.query_one("#filter").remove_class("-invalid")
        except LookupError:
            pass

    def sort_by(self, column: str) -> None:
        if self.query_state is None:
            return
        q = self.query_state
        descending = not q.descending if q.sort == column else True
        self.set_query(replace(q, sort=column, descending=descending))

    def filter_by(self, where: str) -> None:
        if self.query_state is None:
            return
        self.set_query(replace(self.query_state, where=where.strip()))

    # -- marks -------------------------------------------------------------------------------
    def marked(self, experiment: str | None = None) -> frozenset[int]:
        exp = experiment or self.experiment
        return self.marks.get(exp, frozenset()) if exp else frozenset()

    def toggle_mark(self, trial_id: int) -> None:
        if self.experiment is None:
            return
        marks = set(self.marked())
        marks ^= {trial_id}
        self._set_marks(self.experiment, frozenset(marks))

    def clear_marks(self) -> None:
        if self.experiment is not None and self.marked():
            self._set_marks(self.experiment, frozenset())

    def _set_marks(self, experiment: str, marks: frozenset[int]) -> None:
        self.marks[experiment] = marks
        self.browse.table.set_marks(marks)
        self.post_message(MarksChanged(experiment, marks))
        self.update_status()

    # -- curating ----------------------------------------------------------------------------
    def annotate(
        self, experiment: str, trial_ids: list[int], action: str, values: list[Any] | None = None
    ) -> None:
        """Write annotation events for these trials (tuixp.curation), then read the store."""
        self._annotate_worker(experiment, trial_ids, action, values or [None])

    @work(thread=True, group="annotate", exit_on_error=False)
    def _annotate_worker(
        self, experiment: str, trial_ids: list[int], action: str, values: list[Any]
    ) -> None:
        from tuixp import curation
        from tuixp.store.store import get_store

        try:
            curation.annotate(get_store(self.reader.path), experiment, trial_ids, action, values)
        except TuixpError as exc:
            self.call_from_thread(self.notify, str(exc), title="Not saved", severity="error")
            return
        self.post_message(Annotated(experiment, trial_ids, action))

    @on(Annotated)
    def _annotated(self, message: Annotated) -> None:
        """Read the store again, and let each open screen showing a trial follow."""
        self.poll(force=True)
        for screen in list(self.screen_stack):
            if isinstance(screen, CuratingScreen):
                screen.annotated(message)

    def show_deleted(self, on: bool) -> None:
        """Show the deleted trials (and only them), or the others again."""
        if self.query_state is not None and self.query_state.deleted != on:
            self.set_query(replace(self.query_state, deleted=on))

    # -- screens -----------------------------------------------------------------------------
    def open_trial(self, trial_id: int) -> None:
        if self.experiment is not None:
            self.push_screen(DetailScreen(self.experiment, trial_id))

    def action_launch(self) -> None:
        """The launch form, prefilled from the trial on screen (detail) or under the cursor."""
        from tuixp.tui.screens.launch import LaunchScreen
        from tuixp.tui.screens.progress import ProgressScreen

        if isinstance(self.screen, (LaunchScreen, ProgressScreen)):
            return
        trial_id = None
        experiment: str | None
        if isinstance(self.screen, DetailScreen):
            experiment, trial_id = self.screen.experiment, self.screen.trial_id
        else:
            experiment = self.experiment
            try:
                row = self.browse.table.current_row
                trial_id = row.trial_id if row is not None else None
            except LookupError:
                pass
        self.push_screen(LaunchScreen(experiment, trial_id))

    def launch_form(self) -> Screen[None]:
        """A new launch form, not prefilled from a trial (the runs screen's ``n``)."""
        from tuixp.tui.screens.launch import LaunchScreen

        return LaunchScreen()

    def action_runs(self) -> None:
        from tuixp.tui.screens.launch import LaunchScreen
        from tuixp.tui.screens.progress import ProgressScreen

        if not isinstance(self.screen, (LaunchScreen, ProgressScreen)):
            self.push_screen(ProgressScreen())

    @on(LaunchUpdated)
    def _launch_updated(self, message: LaunchUpdated) -> None:
        handle_update(self, message)

    def on_unmount(self) -> None:
        self.launches.shutdown()

    def action_sql(self) -> None:
        from tuixp.tui.screens.sql import SqlScreen

        if not isinstance(self.screen, SqlScreen):
            self.push_screen(SqlScreen())

    def open_compare(self, trial_ids: list[int] | frozenset[int]) -> bool:
        """Compare two or more trials of the shown experiment; False if fewer were given."""
        from tuixp.tui.screens.compare import CompareScreen

        if self.experiment is None or len(set(trial_ids)) < 2:
            return False
        self.push_screen(CompareScreen(self.experiment, sorted(set(trial_ids))))
        return True

    def compare_previous(self, trial_id: int, experiment: str | None = None) -> None:
        """Compare a trial with the trial before it."""
        from tuixp.tui.screens.compare import CompareScreen

        exp = experiment or self.experiment
        if exp is not None:
            self.push_screen(CompareScreen(exp, [trial_id], previous=True))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def update_status(self) -> None:
        try:
            browse = self.browse
        except LookupError:
            return
        table = browse.table
        parts = []
        if self.experiment:
            parts.append(self.experiment)
            parts.append(
                f"{table.total:,} trials"
                + (" (filtered)" if self.query_state and self.query_state.where else "")
                + (" deleted" if self.query_state and self.query_state.deleted else "")
            )
            row = table.current_row
            if row is not None:
                part = f"#{row.trial_id} {row.status}"
                if row.result_value is not None:
                    part += f" result {fmt_number(row.result_value)}"
                parts.append(part)
            marks = self.marked()
            if marks:
                parts.append(
                    f"marked: {', '.join('#' + str(m) for m in sorted(marks)[:6])}"
                    + ("…" if len(marks) > 6 else "")
                )
        browse.status.info = " │ ".join(parts)

    # -- failures ----------------------------------------------------------------------------
    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = str(error) if isinstance(error, TuixpError) else f"{type(error).__name__}: {error}"
        if text != self._last_error:  # a poll failing the same way each second says it once
            self._last_error = text
            self.notify(text, title="Could not read the store", severity="error")
        try:
            self.browse.status.problem = text
        except LookupError:
            pass
        if event.worker.group == "poll":
            self._rearm()
        elif event.worker.group == "window":
            self._adopting = False


def create_app(store_path: str | os.PathLike[str], **options: Any) -> TuixpApp:
    """The app on ``store_path``: what ``run``, the tests and the screenshots all start."""
    return TuixpApp(store_path, **options)


class NoTerminal(TuixpError):
    """The TUI was started without a terminal to read keys from and draw on."""


def require_terminal(streams: dict[str, Any] | None = None) -> None:
    """Refuse to start without a terminal: with stdin at end of file (``< /dev/null``, cron, a
    pipe) Textual's input loop spins at full CPU, and output redirected to a file fills it with
    escape codes. ``NoTerminal`` names the stream that is not one."""
    import sys

    found = streams or {"stdin": sys.stdin, "stdout": sys.stdout, "stderr": sys.stderr}
    for name, stream in found.items():
        try:
            ok = stream is not None and stream.isatty()
        except (AttributeError, ValueError):  # closed, or not a file at all
            ok = False
        if not ok:
            raise NoTerminal(
                f"the TUI needs a terminal, and {name} is not one; from a script or a pipe use "
                "tuixp ls, show, diff or sql (--format csv|json)"
            )


def run(store_path: Path) -> None:
    """Open the TUI on ``store_path`` until the user quits (the CLI's ``tuixp`` / ``tuixp ui``)."""
    require_terminal()
    theme = os.environ.get("TUIXP_THEME") or None
    create_app(store_path, theme=theme).run()
