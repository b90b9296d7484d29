"""End to end in a real terminal: tuixp in tmux at 80x24, keys sent, the screen read back."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tui.conftest import env_for_subprocess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"
    ),
]


class Tmux:
    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.name = f"tuixp-test-{uuid.uuid4().hex[:8]}"
        exports = " ".join(
            f"{k}='{v}'"
            for k, v in env.items()
            if k in ("PYTHONPATH", "TZ", "XDG_CACHE_HOME", "TUIXP_LOCK_TIMEOUT")
        )
        cmd = f"env {exports} TERM=xterm-256color " + " ".join(command)
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "80", "-y", "24", cmd], check=True
        )
        subprocess.run(["tmux", "set-option", "-t", self.name, "remain-on-exit", "on"], check=True)

    def screen(self) -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait(self, condition: Callable[[str], bool], what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if condition(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"gave up waiting for {what}; the screen was:\n{text}")

    def pane_dead(self) -> bool:
        out = subprocess.run(
            ["tmux", "display-message", "-p", "-t", self.name, "#{pane_dead}"],
            capture_output=True,
            text=True,
        )
        return out.stdout.strip() == "1"

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def _command(store: Path) -> list[str]:
    """``tuixp ui`` as a user types it, or the TUI module when the CLI is not installed."""
    cli = Path(sys.executable).with_name("tuixp")
    if cli.exists():
        return [str(cli), "ui", "--store", str(store)]
    return [sys.executable, "-m", "tuixp.tui", "--store", str(store)]


def test_tuixp_in_tmux_80x24(real_store: Path) -> None:
    tmux = Tmux(_command(real_store), env_for_subprocess())
    try:
        screen = tmux.wait(
            lambda s: "classify" in s and "regression" in s and "✓ ok" in s,
            "the experiments and trials",
        )
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert "Quit" in lines[-1] and "Help" in lines[-1]  # the footer shows the keys
        tmux.keys("e")
        time.sleep(0.3)  # keys typed by a person arrive apart; the focus moves between them
        tmux.keys("j")
        tmux.wait(
            lambda s: "regression │ 10 trials" in s and "✗ failed" in s, "the regression trials"
        )
        tmux.keys("Enter")
        time.sleep(0.3)
        tmux.keys("G")
        tmux.wait(lambda s: "#1 succeeded" in s, "the cursor on the last trial")
        tmux.keys("g", "Enter")
        screen = tmux.wait(lambda s: "Overview" in s and "Parameters" in s, "the trial detail")
        assert "regression #10" in screen and "✗ failed" in screen
        tmux.keys("7")
        tmux.wait(lambda s: "load_data" in s and "train" in s, "the steps tab")
        # Escape then a key at once reads as alt+key in a terminal: wait between them.
        tmux.keys("Escape")
        tmux.wait(lambda s: "where" in s and "Parameters" not in s, "the trials again")
        tmux.keys("?")
        tmux.wait(lambda s: "tuixp keys" in s, "the help screen")
        tmux.keys("Escape")
        tmux.wait(lambda s: "tuixp keys" not in s, "the help screen to close")
        tmux.keys("q")
        deadline = time.monotonic() + 15
        while not tmux.pane_dead() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tmux.pane_dead(), "tuixp did not quit on q"
        # The terminal is restored: no alternate screen left, no stray escape codes.
        final = tmux.screen()
        assert "Quit" not in final and "\x1b" not in final
    finally:
        tmux.close()
