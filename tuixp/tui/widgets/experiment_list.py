"""The experiments of a store: name, trial counts, last run and best result, one entry each."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tuixp.tui.format import fmt_number, fmt_time


def fmt_count(n: int) -> str:
    """A count in at most 5 cells: 9,999 then 10k, 999k, 1.2M (the list is narrow)."""
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M".replace(".0M", "M")


def describe(exp: dict[str, Any]) -> Text:
    """Three short lines: the name, the counts, the best (or highest) result and when it last ran."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(exp["experiment"], style="bold")
    text.append("\n")
    text.append(f"{fmt_count(exp['trials'])} trials")
    if exp.get("failed"):
        text.append(f" {fmt_count(exp['failed'])} failed", style="red")
    if exp.get("running"):
        text.append(f" {fmt_count(exp['running'])} running", style="yellow")
    text.append("\n")
    # "best" only when the experiment said which end is best (Experiment(goal=): the query
    # gives best_result only then); otherwise the highest result, called what it is.
    if exp.get("best_result") is not None:
        text.append(f"best {fmt_number(exp['best_result'], 7)} ", style="green")
    elif exp.get("max_result") is not None:
        text.append(f"max {fmt_number(exp['max_result'], 7)} ", style="green")
    text.append(fmt_time(exp.get("last_run")), style="dim")
    return text


class ExperimentList(OptionList):
    """Experiments, most recently run first; keeps the highlighted one across refreshes."""

    BINDINGS = [
        Binding("k", "cursor_up", "Up", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("g", "first", "First", show=False),
        Binding("G", "last", "Last", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.experiments: list[dict[str, Any]] = []

    def show(self, experiments: list[dict[str, Any]], selected: str | None) -> None:
        """Redraw only when something changed, keeping ``selected`` highlighted."""
        if experiments == self.experiments:
            return
        self.experiments = experiments
        with self.app.batch_update():
            self.set_options(Option(describe(e), id=e["experiment"]) for e in experiments)
            names = [e["experiment"] for e in experiments]
            if selected in names:
                self.highlighted = names.index(selected)
            elif names:
                self.highlighted = 0
