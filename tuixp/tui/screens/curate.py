"""Curating from the TUI: the keys of the trial table and the detail screen, and their modals.

``CuratingScreen`` holds the keys (star, tags, note, name, delete, restore) once for every
screen that shows a trial; the screen says which trial (``curated``). Each modal returns what
was typed (None when cancelled); the app writes it as annotation events (``TuixpApp.annotate``,
through ``tuixp.curation``) in a thread worker, then tells the screens (``annotated``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Label, TextArea

if TYPE_CHECKING:
    from tuixp.tui.app import TuixpApp
    from tuixp.tui.messages import Annotated


@dataclass(frozen=True)
class Curated:
    """The trial a curation key acts on, with the annotations it has now."""

    experiment: str
    trial_id: int
    name: str | None = None
    note: str | None = None
    tags: list[str] = field(default_factory=list)
    starred: bool = False
    deleted: bool = False


class CuratingScreen(Screen[None]):
    """A screen showing a trial (the table's current row, the detail's trial): its keys."""

    BINDINGS = [
        Binding("n", "note", "Note", show=False),
        Binding("a", "tags", "Tags", show=False),
        Binding("N", "name", "Name", show=False),
        Binding("asterisk", "star", "Star", show=False, key_display="*"),
        Binding("d", "delete", "Delete", show=False),
        Binding("u", "restore", "Restore", show=False),
    ]

    @property
    def tuixp(self) -> "TuixpApp":
        return cast("TuixpApp", self.app)

    def curated(self) -> Curated | None:
        """The trial the keys act on (None: none, or not read yet)."""
        raise NotImplementedError

    def annotated(self, message: "Annotated") -> None:
        """Annotation events were written (by this screen or another): nothing by default."""

    def action_note(self) -> None:
        t = self.curated()
        if t is None:
            return

        def save(text: str | None) -> None:
            if text is not None and text.strip() != (t.note or ""):
                self.tuixp.annotate(t.experiment, [t.trial_id], "note", [text])

        self.app.push_screen(NoteEditor(f"Note of trial {t.trial_id}", t.note or ""), save)

    def action_name(self) -> None:
        t = self.curated()
        if t is None:
            return

        def save(text: str | None) -> None:
            if text is not None and text.strip() != (t.name or ""):
                self.tuixp.annotate(t.experiment, [t.trial_id], "name", [text])

        self.app.push_screen(LineEditor(f"Name of trial {t.trial_id}", t.name or ""), save)

    def action_tags(self) -> None:
        t = self.curated()
        if t is None:
            return

        def save(text: str | None) -> None:
            if text is None:
                return
            wanted = list(dict.fromkeys(text.split()))
            added = [tag for tag in wanted if tag not in t.tags]
            removed = [tag for tag in t.tags if tag not in wanted]
            if added:
                self.tuixp.annotate(t.experiment, [t.trial_id], "tag", added)
            if removed:
                self.tuixp.annotate(t.experiment, [t.trial_id], "untag", removed)

        self.app.push_screen(
            LineEditor(f"Tags of trial {t.trial_id} (space separated)", " ".join(t.tags)), save
        )

    def action_star(self) -> None:
        t = self.curated()
        if t is not None:
            self.tuixp.annotate(t.experiment, [t.trial_id], "unstar" if t.starred else "star")

    def action_delete(self) -> None:
        t = self.curated()
        if t is None or t.deleted:
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.tuixp.annotate(t.experiment, [t.trial_id], "delete")

        question = (
            f"Delete trial {t.trial_id} of {t.experiment}? (u in the deleted view, D, restores)"
        )
        self.app.push_screen(Confirm(question), answer)

    def action_restore(self) -> None:
        t = self.curated()
        if t is not None and t.deleted:
            self.tuixp.annotate(t.experiment, [t.trial_id], "restore")


class NoteEditor(ModalScreen[str | None]):
    """A small editor for a trial's note: ctrl+s saves, escape cancels."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", show=True, priority=True),
        Binding("escape", "cancel", "Cancel", show=True),
    ]
    DEFAULT_CSS = """
    NoteEditor { align: center middle; }
    NoteEditor > Vertical { width: 70; height: 14; border: round $accent; background: $surface; }
    NoteEditor TextArea { height: 1fr; }
    """

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text}  (ctrl+s saves, escape cancels)")
            yield TextArea(self.text, id="note")

    def action_save(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class LineEditor(ModalScreen[str | None]):
    """One line: a trial's tags (space separated) or its name. enter saves, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=True)]
    DEFAULT_CSS = """
    LineEditor { align: center middle; }
    LineEditor > Vertical { width: 70; height: 5; border: round $accent; background: $surface; }
    """

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text}  (enter saves, escape cancels)")
            yield Input(self.text, id="line")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    """A yes/no question: y confirms, n or escape does not."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", show=True),
        Binding("n,escape", "answer(False)", "No", show=True),
    ]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 60; height: 5; border: round $warning; background: $surface; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Label("y: yes   n: no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
