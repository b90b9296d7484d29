"""The TUI started without a terminal (a script, cron, ``< /dev/null``, ``> out``) refuses in one
line with exit 2, instead of spinning at full CPU on a stdin at end of file."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.tui.conftest import env_for_subprocess
from tuixp.store import synthetic

TUIXP = ROOT / ".venv" / "bin" / "tuixp"
WAIT = 60  # seconds: a refusal takes one start-up; a TUI that started would never end


def _store(folder: Path) -> tuple[Path, dict[str, int]]:
    """A real store, and its folder's files with their sizes (a refusal changes none)."""
    store = folder / "trials.duckdb"
    synthetic.generate(store, 5, experiment="demo")
    return store, _files(folder)


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def _tuixp(*args: str) -> list[str]:
    exe = [str(TUIXP)] if TUIXP.exists() else [sys.executable, "-m", "tuixp"]
    return [*exe, *args]


@pytest.mark.parametrize(
    "command",
    [
        ["--store", "{store}"],
        ["ui", "--store", "{store}"],
        ["python -m tuixp.tui", "--store", "{store}"],
    ],
)
def test_no_terminal_on_stdin_is_refused(tmp_path: Path, command: list[str]) -> None:
    store, before = _store(tmp_path / "store")
    args = [a.format(store=store) for a in command]
    argv = (
        [sys.executable, "-m", "tuixp.tui", *args[1:]]
        if args[0].startswith("python")
        else _tuixp(*args)
    )
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for_subprocess(),
            timeout=WAIT,
        )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a terminal, and stdin is not one" in lines[0], lines
    assert "tuixp ls, show, diff or sql" in lines[0]  # what to use instead
    assert out.read_text() == ""  # no escape codes
    assert _files(store.parent) == before  # nothing written


def test_output_to_a_file_is_refused_even_with_keys_on_a_terminal(tmp_path: Path) -> None:
    """stdin and stderr a terminal (a pty), stdout redirected: ``tuixp > out``."""
    store, before = _store(tmp_path)
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            _tuixp("--store", str(store)),
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=follower,
            env=env_for_subprocess(),
            timeout=WAIT,
        )
        os.set_blocking(leader, False)
        try:
            said = os.read(leader, 65536).decode(errors="replace")
        except BlockingIOError:
            said = ""
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2, said[-2000:]
    assert "needs a terminal, and stdout is not one" in said, said[-2000:]
    assert done.stdout == b""
    assert _files(tmp_path) == before
