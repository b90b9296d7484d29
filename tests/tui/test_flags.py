"""One set of change flags, in one order, in ``tuixp ls``, ``tuixp show`` and the TUI (issue 15
item 9): C code, D data, E environment, I impure.

Three trials recorded by real processes in a real git repository:

1. the first: nothing to compare with, ``····``;
2. the same again: the step ``noisy`` (which returns the clock) gave another output for the
   input it had in trial 1, with nothing else changed: ``···I``;
3. the data file changed: ``·D··`` (an output that differs once a data input changed is not
   called impure: the change is the likelier cause);
4. another process after the script was edited and committed (the code and the git commit
   changed), with another input for ``noisy``: ``C·E·``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli.test_cli_subprocess import tuixp
from tests.conftest import env_with_path
from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded
from tuixp.store import flags
from tuixp.tui.app import create_app

SCRIPT = textwrap.dedent("""
    import sys
    import time

    import tuixp

    ex = tuixp.Experiment("flags", store=sys.argv[1])
    x = ex.parameter("x")
    rows = ex.data_file(sys.argv[2])


    @ex
    def load(path):
        with open(path) as f:
            return f.read()


    @ex
    def noisy(x):
        return time.time_ns()  # another output every time: impure


    @ex.result
    def score(text, n, x):
        return len(text) + x


    node = score(load(rows), noisy(x), x)
    if __name__ == "__main__":
        if sys.argv[3] == "first":
            node.compute(x=1)
            node.compute(x=1)
            with open(sys.argv[2], "a") as f:
                f.write("more rows\\n")
            node.compute(x=1)
        else:
            node.compute(x=2)
""")
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def _python(script: Path, store: Path, data: Path, which: str) -> None:
    done = subprocess.run(
        [sys.executable, str(script), str(store), str(data), which],
        capture_output=True,
        text=True,
        env=env_with_path(),
        cwd=script.parent,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def flagged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("flags")
    store, script, data = repo / "store.duckdb", repo / "exp.py", repo / "rows.txt"
    script.write_text(SCRIPT)
    data.write_text("a b c\n")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    for args in (["init", "-q", "-b", "main"], ["add", "exp.py"], ["commit", "-qm", "one"]):
        subprocess.run([*GIT, *args], cwd=repo, check=True, env=env, timeout=30)
    _python(script, store, data, "first")
    script.write_text(SCRIPT.replace("len(text) + x", "len(text) + x + 1"))
    subprocess.run([*GIT, "commit", "-qam", "two"], cwd=repo, check=True, env=env, timeout=30)
    _python(script, store, data, "second")
    return store


EXPECTED = {1: "····", 2: "···I", 3: "·D··", 4: "C·E·"}


def test_the_flags_are_defined_once() -> None:
    assert flags.HEADER == "CDEI"
    assert flags.text([{"kind": "data"}], ["impure: noisy (same input as trial 1)"]) == "·D·I"
    assert flags.text('[{"kind": "code"}, {"kind": "environment"}]', "[]") == "C·E·"


def test_ls_shows_every_flag(flagged: Path) -> None:
    doc = json.loads(tuixp("ls", "flags", "-f", "json", "--store", flagged).stdout)
    assert {r["trial_id"]: r["flags"] for r in doc} == EXPECTED
    table = tuixp("ls", "flags", "-f", "table", "--store", flagged)
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["TRIAL", "STATUS", "CDEI"]
    assert all(len(line) <= 80 for line in lines)
    assert {int(line.split()[0]): line.split()[2] for line in lines[1:]} == EXPECTED


def test_show_names_the_flags(flagged: Path) -> None:
    for tid, text in EXPECTED.items():
        shown = tuixp("show", "flags", str(tid), "--store", flagged).stdout
        assert f"  flags      {text}" in shown.splitlines()
        doc = json.loads(tuixp("show", "flags", str(tid), "-f", "json", "--store", flagged).stdout)
        assert doc["flags"] == text
    shown = tuixp("show", "flags", "3", "--store", flagged).stdout
    assert "             D  a data input's content changed (ex.data_file)" in shown
    shown = tuixp("show", "flags", "2", "--store", flagged).stdout
    assert "             I  a step gave another output for an input it had seen" in shown


async def test_the_trial_table_shows_every_flag_at_80_columns(flagged: Path) -> None:
    app = create_app(flagged, clock=fixed_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, total=4)
        table = app.browse.table
        header = table.render_line(0).text
        assert header.split()[1:4] == ["★", "status", "CDEI"]
        shown = {}
        for y in (1, 2, 3, 4):
            cells = table.render_line(y).text.split()
            shown[int(cells[0])] = cells[3]  # "#", status mark and word, flags
        assert shown == EXPECTED
        # Narrower than the table and scrolled to its last column: the flags are still there.
        await pilot.resize_terminal(64, 24)
        await pilot.pause()
        await pilot.press(*["right"] * len(table.columns))
        await pilot.pause()
        assert table.scroll_offset.x > 0
        header = table.render_line(0).text
        assert header.split()[1:4] == ["★", "status", "CDEI"] and "commit" in header
        assert table.render_line(1).text.split()[3] == EXPECTED[4]
