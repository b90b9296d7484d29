"""The main screen: experiments on the left, the selected experiment's trials on the right."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, Label, OptionList

from tuixp.tui.screens.curate import Curated, CuratingScreen
from tuixp.tui.widgets.experiment_list import ExperimentList
from tuixp.tui.widgets.status_bar import StatusBar
from tuixp.tui.widgets.trial_table import TrialTable


class FilterInput(Input):
    """The WHERE box: enter applies, escape goes back to the table."""

    BINDINGS = [Binding("escape", "leave", "Back to table", show=True)]

    def action_leave(self) -> None:
        self.screen.query_one(TrialTable).focus()


class BrowseScreen(CuratingScreen):
    """Experiments and trials; every action has a key shown in the footer (the curation keys:
    ``CuratingScreen``)."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", show=True),
        Binding("e", "experiments", "Experiments", show=False),
        Binding("t", "trials", "Trials", show=False),
        Binding("c", "clear_marks", "Clear marks", show=False),
        Binding("C", "compare", "Compare", show=True),
        Binding("v", "compare_previous", "Vs previous", show=False),
        Binding("x", "clear_filter", "Clear filter", show=False),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("D", "deleted", "Deleted trials", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="main"):
            yield ExperimentList(id="experiments")
            with Vertical(id="right"):
                with Horizontal(id="filter-row"):
                    yield Label("where", id="filter-label")
                    yield FilterInput(
                        placeholder="SQL condition, e.g. status = 'failed' or lr > 0.01",
                        id="filter",
                    )
                yield TrialTable(id="trials", clock=self.tuixp.clock)
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TrialTable).focus()
        self.tuixp.poll(force=True)

    @property
    def table(self) -> TrialTable:
        return self.query_one(TrialTable)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    # -- widgets to app ---------------------------------------------------------------------
    @on(OptionList.OptionHighlighted, "#experiments")
    def _experiment_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None:
            self.tuixp.select_experiment(event.option.id)

    @on(OptionList.OptionSelected, "#experiments")
    def _experiment_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.tuixp.select_experiment(event.option.id)
        self.table.focus()

    @on(TrialTable.WindowNeeded)
    def _window_needed(self, event: TrialTable.WindowNeeded) -> None:
        self.tuixp.load_window(event.offset, event.limit)

    @on(TrialTable.Opened)
    def _opened(self, event: TrialTable.Opened) -> None:
        self.tuixp.open_trial(event.row.trial_id)

    @on(TrialTable.MarkToggled)
    def _mark(self, event: TrialTable.MarkToggled) -> None:
        self.tuixp.toggle_mark(event.trial_id)

    @on(TrialTable.SortRequested)
    def _sort(self, event: TrialTable.SortRequested) -> None:
        self.tuixp.sort_by(event.column)

    @on(TrialTable.Highlighted)
    def _highlighted(self, event: TrialTable.Highlighted) -> None:
        self.tuixp.update_status()

    @on(Input.Submitted, "#filter")
    def _filter(self, event: Input.Submitted) -> None:
        self.tuixp.filter_by(event.value)

    # -- actions -----------------------------------------------------------------------------
    def action_filter(self) -> None:
        self.query_one(FilterInput).focus()

    def action_experiments(self) -> None:
        self.query_one(ExperimentList).focus()

    def action_trials(self) -> None:
        self.table.focus()

    def action_clear_marks(self) -> None:
        self.tuixp.clear_marks()

    def action_compare(self) -> None:
        """Compare the marked trials (one mark: with the trial under the cursor)."""
        ids = set(self.tuixp.marked())
        row = self.table.current_row
        if len(ids) == 1 and row is not None:
            ids.add(row.trial_id)
        if not self.tuixp.open_compare(frozenset(ids)):
            self.notify(
                "Mark two or more trials with space to compare them "
                "(or press v: this trial vs the previous one).",
                severity="warning",
            )

    def action_compare_previous(self) -> None:
        row = self.table.current_row
        if row is not None:
            self.tuixp.compare_previous(row.trial_id)

    def action_clear_filter(self) -> None:
        self.query_one(FilterInput).value = ""
        self.tuixp.filter_by("")

    def action_refresh(self) -> None:
        self.tuixp.poll(force=True)

    # -- curating (tuixp.tui.screens.curate) ---------------------------------------------------
    def curated(self) -> Curated | None:
        row = self.table.current_row
        exp, q = self.tuixp.experiment, self.tuixp.query_state
        if row is None or exp is None:
            return None
        deleted = q is not None and q.deleted  # the deleted view lists only deleted trials
        return Curated(exp, row.trial_id, row.name, row.note, row.tags, row.starred, deleted)

    def action_deleted(self) -> None:
        q = self.tuixp.query_state
        self.tuixp.show_deleted(not (q is not None and q.deleted))
