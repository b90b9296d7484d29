"""The line above the footer: store, selection, marks, filter state and store problems."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    """One line; ``problem`` (a busy store, a refused filter) shows in the warning colour."""

    info: reactive[str] = reactive("")
    problem: reactive[str] = reactive("")

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.problem:
            text.append(self.problem, style="bold")
            self.add_class("-problem")
        else:
            self.remove_class("-problem")
            text.append(self.info)
        return text
