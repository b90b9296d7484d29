"""What each headless part of tuixp pulls in, checked in a fresh interpreter (after Harlequin's
test_import_hygiene): the core never loads the UI, the store never loads Dask, and the CLI's
modules load neither the TUI nor Dask until a command needs them. import-linter checks the
same arrows statically (pyproject.toml); this checks what really ends up in ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import env_with_path

UI = ("textual", "typer")
DASK = ("dask", "distributed")

CASES = {
    # pyarrow (~40 ms) is imported on the first write, not by `import tuixp` (docs/benchmarks.md)
    "the Python API": (["tuixp", "tuixp.experiment"], (*UI, "pyarrow")),
    "the store": (
        [
            "tuixp.store",
            "tuixp.store.store",
            "tuixp.store.connection",
            "tuixp.store.ingest",
            "tuixp.store.window",
            "tuixp.store.columns",
            "tuixp.store.summary",
            "tuixp.store.sql",
            "tuixp.store.queries",
            "tuixp.store.synthetic",
            "tuixp.store.paths",
            "tuixp.store.filters",
            "tuixp.store.flags",
            "tuixp.store.events",
        ],
        UI + DASK,
    ),
    "the record path and its helpers": (
        [
            "tuixp.experiment",
            "tuixp.graph",
            "tuixp.trial.world",
            "tuixp.trial.plan",
            "tuixp.trial.finish",
            "tuixp.capture",
            "tuixp.execution",
            "tuixp.diff",
            "tuixp.cache",
            "tuixp.purity",
            "tuixp.repeat",
            "tuixp.values",
            "tuixp.scripts",
            "tuixp.daskperiment_text",
            "tuixp.daskperiment_import",
        ],
        UI,
    ),
    "the TUI's reader and launcher": (["tuixp.tui.data", "tuixp.tui.launcher"], ("textual",)),
    "the CLI before a command runs": (["tuixp.cli"], ("textual", *DASK)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_imports_stay_in_their_layer(case: str) -> None:
    modules, forbidden = CASES[case]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in {forbidden!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env_with_path(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"{case} imports {done.stdout.strip()}"
