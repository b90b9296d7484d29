"""The command palette's tuixp commands (ctrl+p): they depend on the screen and its state."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tuixp.tui.app import TuixpApp
    from tuixp.tui.screens.curate import CuratingScreen


class TuixpCommands(Provider):
    """Browse: sort by each column, filters, marks, experiments. Detail: tabs, metrics, outputs.
    Both: the curation keys on the trial they show (star, tags, note, name, delete, restore)."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        from tuixp.tui.screens.browse import BrowseScreen
        from tuixp.tui.screens.compare import TABS as COMPARE_TABS
        from tuixp.tui.screens.compare import CompareScreen
        from tuixp.tui.screens.detail import TABS, DetailScreen

        app = cast("TuixpApp", self.app)
        screen = self.screen
        out: list[tuple[str, Callable[[], Any], str]] = []
        if isinstance(screen, BrowseScreen):
            table = screen.table
            q = app.query_state
            for col in table.columns:
                out.append(
                    (
                        f"Sort by {col.sort}",
                        partial(app.sort_by, col.sort),
                        "sort the trials (again: reverse)",
                    )
                )
            row = table.current_row
            if row is not None:
                out.append(
                    (
                        f"Open trial #{row.trial_id}",
                        partial(app.open_trial, row.trial_id),
                        "parameters, metrics, code, environment, outputs",
                    )
                )
                verb = "Unmark" if row.trial_id in app.marked() else "Mark"
                out.append(
                    (
                        f"{verb} trial #{row.trial_id} for comparison",
                        partial(app.toggle_mark, row.trial_id),
                        "space in the table",
                    )
                )
            if app.marked():
                out.append(("Clear marks", app.clear_marks, f"{len(app.marked())} marked"))
            if len(app.marked()) >= 2:
                out.append(
                    (
                        "Compare the marked trials",
                        screen.action_compare,
                        "C: parameters, code, environment, metrics side by side",
                    )
                )
            if row is not None:
                out.append(
                    (
                        f"Compare trial #{row.trial_id} with the previous one",
                        screen.action_compare_previous,
                        "v",
                    )
                )
            out += self._curation(screen)
            deleted_view = q is not None and q.deleted
            out.append(
                (
                    "Show the trials" if deleted_view else "Show deleted trials",
                    screen.action_deleted,
                    "D: the deleted view (u restores)",
                )
            )
            out.append(("Filter trials", screen.action_filter, "a SQL condition over the columns"))
            if q is not None and q.where:
                out.append(("Clear filter", screen.action_clear_filter, q.where))
            for status in ("failed", "running", "succeeded", "interrupted"):
                out.append(
                    (
                        f"Show only {status} trials",
                        partial(app.filter_by, f"status = '{status}'"),
                        "filter",
                    )
                )
            for exp in app.experiments:
                name = exp["experiment"]
                if name != app.experiment:
                    out.append(
                        (
                            f"Switch to experiment {name}",
                            partial(app.select_experiment, name),
                            f"{exp['trials']} trials",
                        )
                    )
            out.append(("Refresh now", partial(app.poll, True), "read the store again"))
        elif isinstance(screen, DetailScreen):
            for i, (pane, title) in enumerate(TABS, 1):
                out.append((f"Show {title.lower()}", partial(screen.action_tab, pane), f"key {i}"))
            for name in screen.metric_names():
                out.append((f"Plot metric {name}", partial(self._plot, screen, name), "metrics"))
            out.append(("Plot: log scale on or off", screen.action_plot_log, "l"))
            out.append(("Plot: next smoothing level", screen.action_plot_smooth, "s"))
            out.append(("Plot: x by epoch or by wall time", screen.action_plot_x, "w"))
            out += self._curation(screen)
            out.append(("Preview persisted output", screen.action_preview, "outputs"))
            out.append(("Back to trials", screen.action_back, "escape"))
            out.append(
                (
                    f"Compare trial #{screen.trial_id} with the previous one",
                    screen.action_compare_previous,
                    "v",
                )
            )
            out.append(("Re-run with these parameters", screen.action_rerun, "R"))
            out.append(
                (
                    "Repeat this trial and check every step's output",
                    screen.action_repeat,
                    "X: tuixp repeat in a child process",
                )
            )
        elif isinstance(screen, CompareScreen):
            for i, (pane, title) in enumerate(COMPARE_TABS, 1):
                out.append((f"Show {title.lower()}", partial(screen.action_tab, pane), f"key {i}"))
            out.append(
                (
                    "Show only the rows that differ"
                    if not screen.only_differences
                    else "Show every row",
                    screen.action_only_differences,
                    "d",
                )
            )
            out.append(("Code: unified / side by side", screen.action_unified, "u"))
            if len(screen.trial_ids) > 2:
                out.append(("Compare with the next trial", screen.action_next_pair, "n"))
            out.append(("Re-run the compared trial with its parameters", screen.action_rerun, "R"))
            out.append(("Copy the tuixp run command", screen.action_copy_command, "y"))
            out.append(
                (
                    "Repeat the compared trial and check every step's output",
                    screen.action_repeat,
                    "X: tuixp repeat in a child process",
                )
            )
            out.append(("Back", screen.action_back, "escape"))
        out.append(
            (
                "Launch a trial",
                app.action_launch,
                "L: tuixp run in a child process, form prefilled from the selected trial",
            )
        )
        if app.launches.items:
            out.append(
                (
                    "Show launched runs",
                    app.action_runs,
                    f"{len(app.launches.running)} running of {len(app.launches.items)}",
                )
            )
        out.append(("SQL query", app.action_sql, ": read-only queries over the store's views"))
        out.append(("Help: keys", app.action_help, "?"))
        for label, theme in (
            ("light", "textual-light"),
            ("dark", "textual-dark"),
            ("16 colours", "ansi-dark"),
        ):
            out.append((f"Use the {label} theme", partial(setattr, app, "theme", theme), "theme"))
        return out

    @staticmethod
    def _curation(screen: CuratingScreen) -> list[tuple[str, Callable[[], Any], str]]:
        """The curation keys as commands, on the trial the screen shows (none: no trial)."""
        t = screen.curated()
        if t is None:
            return []
        n = f"trial #{t.trial_id}"
        out: list[tuple[str, Callable[[], Any], str]] = [
            (f"{'Unstar' if t.starred else 'Star'} {n}", screen.action_star, "*"),
            (f"Tag {n}", screen.action_tags, "a: add or remove tags"),
            (f"Note on {n}", screen.action_note, "n: a note in a small editor"),
            (f"Name {n}", screen.action_name, "N: a short name"),
        ]
        if t.deleted:
            out.append((f"Restore {n}", screen.action_restore, "u"))
        else:
            out.append((f"Delete {n}", screen.action_delete, "d: after a confirm (u restores)"))
        return out

    @staticmethod
    def _plot(screen: Any, name: str) -> None:
        screen.metric_index = screen.metric_names().index(name) + 1
        screen.action_tab("metrics")
        screen._show_plot()

    async def discover(self) -> Hits:
        for label, command, help_text in self._commands():
            yield DiscoveryHit(label, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for label, command, help_text in self._commands():
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), command, text=label, help=help_text)
