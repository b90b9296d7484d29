"""A --store that cannot be a store is refused before anything is written (issue 14 item 12).

Before: ``tuixp run --store notes.txt`` (or a folder, or someone else's DuckDB file) was refused
only when the store was first opened, after ``NAME.ids`` and ``NAME.state/`` had been created
beside it, and ``tuixp ui`` on a store that does not exist (a mistyped path) opened an empty
TUI waiting for it. Now the store path is checked before the first trial, and every read
command, the TUI included, says in one line that there is no store (exit 2). Record commands
(run, demo, compute) still create a new store, and its folder, as the rest of the suite expects.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import tuixp
from tuixp import errors

from .conftest import proc_env

SCRIPT = """\
import tuixp
ex = tuixp.Experiment("paths")
a = ex.parameter("a")

@ex.result
def twice(a):
    return a * 2

result = twice(a)
"""


def tuixp_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("tuixp"))
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, env=proc_env(), timeout=60, cwd=cwd
    )


def in_a_terminal(args: list[str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run tuixp with a pseudo-terminal as stdin, stdout and stderr; its exit code and output."""
    import os
    import pty
    import select
    import time

    exe = str(Path(sys.executable).with_name("tuixp"))
    master, slave = pty.openpty()
    p = subprocess.Popen(
        [exe, *args], stdin=slave, stdout=slave, stderr=slave, env=proc_env(), cwd=cwd
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal: it ended
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        else:
            p.kill()
            raise AssertionError(f"tuixp {' '.join(args)} still running after {timeout} s")
        return p.wait(timeout=30), out.decode(errors="replace").replace("\r", "")
    finally:
        os.close(master)


def listing(where: Path) -> list[str]:
    return sorted(str(p.relative_to(where)) for p in where.rglob("*"))


def _text(p: Path) -> None:
    p.write_text("name,score\nalice,3\n")


def _folder(p: Path) -> None:
    p.mkdir()


def _foreign(p: Path) -> None:
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE sales (id INTEGER)")
    con.close()


KINDS = {"text file": _text, "folder": _folder, "other DuckDB file": _foreign}


@pytest.mark.parametrize("kind", list(KINDS))
def test_run_on_a_path_that_is_not_a_store_writes_nothing(tmp_path: Path, kind: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "exp.py").write_text(SCRIPT)
    target = work / "data.duckdb"
    KINDS[kind](target)
    before = listing(work)
    done = tuixp_cli("run", str(tmp_path / "exp.py"), "a=1", "--store", str(target), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0], done.stderr
    assert "not a tuixp store" in lines[0], lines
    assert listing(work) == before, "nothing may be written beside a refused store"


@pytest.mark.parametrize("kind", list(KINDS))
def test_compute_on_a_path_that_is_not_a_store_writes_nothing(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "data.duckdb"
    KINDS[kind](target)
    before = listing(tmp_path)
    ex = tuixp.Experiment("paths", store=target)
    a = ex.parameter("a")

    @ex.result
    def twice(a):
        return a * 2

    with pytest.raises(errors.NotAStore, match="not a tuixp store"):
        twice(a).compute(a=1)
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    "command",
    [["ls"], ["show", "paths", "1"], ["diff", "paths", "1", "2"], ["sql", "SELECT 1"], ["ui"]],
)
def test_read_commands_on_a_missing_store_say_so_and_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "missing.duckdb"
    if command == ["ui"]:  # the TUI first wants a terminal: give it one
        code, text = in_a_terminal(["ui", "--store", str(missing)], cwd=tmp_path)
        lines = text.strip().splitlines()
        assert code == 2, text
        assert lines == [
            f"tuixp: No tuixp store at {missing}: run a trial first, or give --store PATH."
        ]
        assert listing(tmp_path) == []
        return
    done = tuixp_cli(*command, "--store", str(missing), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"tuixp: No tuixp store at {missing}: run a trial first, or give --store PATH."
    ]
    assert listing(tmp_path) == []


def test_python_reads_of_a_store_never_recorded_create_nothing(tmp_path: Path) -> None:
    """A mistyped ``store=`` asked for its history is empty and leaves no file or folder: only a
    trial creates a store (issue 14 item 12)."""
    path = tmp_path / "mistyped" / "trials.duckdb"
    ex = tuixp.Experiment("nothing_here", store=path)
    a = ex.parameter("a")
    assert ex.trial_id == 0
    history = ex.get_history(verbose=True)
    assert history.empty and history.index.name == "Trial ID"
    with pytest.raises(errors.TrialIDNotFoundError, match="Unable to find trial id: 1"):
        ex.load_metric("loss", 1)
    with pytest.raises(errors.TrialIDNotFoundError):
        ex.get_parameters(1)
    assert not (tmp_path / "mistyped").exists()

    @ex.result
    def same(a):
        return a

    assert same(a).compute(a=3) == 3  # recording creates it
    assert ex.trial_id == 1 and list(ex.get_history()["Result"]) == [3]
