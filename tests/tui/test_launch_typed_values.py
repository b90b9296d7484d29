"""The launch form types a recorded value back with the command line's printer
(``tuixp.values.format_value``), so that any recorded string reads back as itself.

Before issue 16 the form had its own printer, which raised on a recorded string that opens like
a literal (``"[abc"``) and so could not open on that trial.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from textual.widgets import Input

from tests.tui.conftest import env_for_subprocess
from tests.tui.helpers import loaded, wait_for
from tuixp.tui.app import create_app
from tuixp.tui.screens.launch import LaunchScreen, ParamRow
from tuixp.values import parse_value

SCRIPT = textwrap.dedent("""
    import tuixp

    ex = tuixp.Experiment("words")
    tag = ex.parameter("tag")


    @ex.result
    def echo(tag):
        return len(tag)


    s = echo(tag)
""")


async def test_the_form_opens_on_a_string_that_looks_like_a_literal(tmp_path: Path) -> None:
    script, store = tmp_path / "words.py", tmp_path / "words.duckdb"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, "-m", "tuixp", "run", str(script), "tag='[abc'", "--store", str(store)],
        capture_output=True,
        text=True,
        env=env_for_subprocess(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    app = create_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, total=1)
        app.push_screen(LaunchScreen("words", 1))
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, LaunchScreen) and app.screen.choice is not None,
            what="the launch form",
        )
        await pilot.pause()
        row = next(r for r in app.screen.query(ParamRow) if r.param == "tag")
        typed = row.query_one(".param-value", Input).value
        assert typed == "'[abc'"
        assert parse_value(app.screen.build_request().params["tag"], "tag") == "[abc"
