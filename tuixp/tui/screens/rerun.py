"""Running a trial again from the TUI: the launch form prefilled from it, or its command line.

The detail screen's and the compare screen's ``R`` and ``y``.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tuixp.values import format_value

if TYPE_CHECKING:
    from tuixp.tui.app import TuixpApp

# A parameter value as ``tuixp run`` reads it back (the name the tests import).
cli_value = format_value


def rerun_command(trial: dict[str, Any], store: str) -> str:
    """The ``tuixp run`` line that runs a trial again with its parameters and seed."""
    parts = ["tuixp", "run", trial.get("script") or "SCRIPT"]
    parts += [f"{k}={format_value(v)}" for k, v in (trial.get("params") or {}).items()]
    if trial.get("seed") is not None:
        parts += ["--seed", str(trial["seed"])]
    parts += ["--store", store]
    return " ".join(shlex.quote(p) for p in parts)


def rerun(app: "TuixpApp", experiment: str, trial: dict[str, Any], launch: bool = True) -> None:
    """Open the launch form prefilled from this trial if the app has one (``launch``), else
    show the equivalent ``tuixp run`` command line and copy it to the clipboard."""
    if launch:
        try:
            from tuixp.tui.screens.launch import LaunchScreen
        except ImportError:  # the launch form is not part of this build
            pass
        else:
            app.push_screen(LaunchScreen(experiment, trial.get("trial_id")))
            return
    command = rerun_command(trial, str(app.reader.path))
    app.copy_to_clipboard(command)
    app.push_screen(RerunScreen(command))


class RerunScreen(ModalScreen[None]):
    """The ``tuixp run`` line that runs a trial again; it is already on the clipboard."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close", show=True)]

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def compose(self) -> ComposeResult:
        with Vertical(id="rerun"):
            yield Static(Text("Re-run with these parameters", style="bold"))
            yield Static(Text(self.command), id="rerun-command")
            yield Static(
                Text(
                    "Copied to the clipboard (OSC 52). Paste it in a shell; escape closes this.",
                    style="dim",
                )
            )

    def action_close(self) -> None:
        self.dismiss()
