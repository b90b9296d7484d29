"""What each headless part of tuixp pulls in, checked in a fresh interpreter (after Harlequin's
test_import_hygiene): the core never loads the UI, the store never loads Dask, and the CLI's
modules load neither the TUI nor Dask until a command needs them. import-linter checks the
same arrows statically (pyproject.toml); this checks what really ends up in ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, env_with_path
from tuixp.store.store import Store

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
            "tuixp.verdict",
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


# -- private names stay in their module ---------------------------------------------------------
PACKAGE = ROOT / "tuixp"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_names_crossing(path: Path, source: str | None = None) -> list[str]:
    """Where the module at ``path`` reaches another tuixp module's private name: ``from M import
    _x`` (relative imports too), or ``_x`` read off a module it imported (``from P import M``,
    ``import M as m``, then ``m._x``)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    found: list[str] = []
    modules: dict[str, str] = {}  # a local name -> the tuixp module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, *([origin] if origin else [])])
            if not origin.startswith("tuixp"):
                continue
            for alias in node.names:
                if _private(alias.name) and origin != here:
                    found.append(
                        f"{path.relative_to(ROOT)}:{node.lineno} from {origin} import {alias.name}"
                    )
                if _is_module(f"{origin}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tuixp") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _private(node.attr)
            and modules[node.value.id] != here
        ):
            found.append(
                f"{path.relative_to(ROOT)}:{node.lineno} {modules[node.value.id]}.{node.attr}"
            )
    return found


def test_no_module_reaches_another_modules_private_names() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in private_names_crossing(path)]
    assert found == [], "make these public or move them:\n" + "\n".join(found)


def test_the_private_name_check_sees_each_way_in() -> None:
    """The check itself: each way of reaching a private name is caught, public ones are not."""
    probe = (
        "from tuixp.graph import _x, walk\n"
        "from ..store import _y\n"
        "from tuixp.store import flags\n"
        "import tuixp.store.journal as journal\n"
        "flags._z, flags.text, journal._w, self_thing._v\n"
    )
    hits = private_names_crossing(PACKAGE / "store" / "probe.py", probe)
    assert [h.split(" ", 1)[1] for h in hits] == [
        "from tuixp.graph import _x",
        "from tuixp.store import _y",
        "tuixp.store.flags._z",
        "tuixp.store.journal._w",
    ]


# What `tuixp run` of a small script needs is Dask, DuckDB, pygit2 and the standard library: these
# cost ~450 ms together at first use and the run needs none of them (docs/benchmarks.md, "fast
# start"). pyarrow (and through it NumPy and pandas) is for big ingest batches only; pydantic is
# what typer would use to type the options.
RUN_PATH_FORBIDDEN = ("pandas", "pyarrow", "numpy", "pydantic", "textual", "distributed")


def test_tuixp_run_of_a_small_script_keeps_heavy_imports_out(tmp_path: Path) -> None:
    script = tmp_path / "small.py"
    script.write_text(
        "import tuixp\n"
        "ex = tuixp.Experiment('small')\n"
        "a = ex.parameter('a')\n"
        "@ex\n"
        "def double(a):\n"
        "    return a * 2\n"
        "@ex.result\n"
        "def score(d):\n"
        "    ex.save_metric('loss', epoch=0, value=0.5)\n"
        "    return d + 1\n"
        "r = score(double(a))\n"
    )
    store = tmp_path / "s.duckdb"
    code = (
        "import atexit, sys\n"
        "from tuixp.cli import app\n"
        # registered first, so it runs last: after the trial and the ingest at exit
        f"atexit.register(lambda: print(sorted(m for m in {RUN_PATH_FORBIDDEN!r} "
        "if m in sys.modules), file=sys.__stdout__))\n"
        f"app(['run', {str(script)!r}, 'a=1', '--store', {str(store)!r}, '--format', 'json'], "
        "prog_name='tuixp')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env_with_path(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert json.loads("\n".join(lines[:-1]))[0]["result"] == 3  # the trial ran, recorded
    assert lines[-1] == "[]", f"tuixp run imports {lines[-1]}"
    with Store(store).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM metrics").fetchone() == (1,)


def test_reading_metrics_back_and_the_tui_sorting_by_one_keep_pandas_out(tmp_path: Path) -> None:
    """pandas is for DataFrames (load_metric, get_history): a training run's points read as
    arrays and the TUI's summary and sort by a metric never import it (pyarrow's ``pa.array``
    and ``to_numpy`` do, a quarter of a second each process)."""
    store = tmp_path / "s.duckdb"
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        import tuixp
        ex = tuixp.Experiment("short", store={str(store)!r})
        k = ex.parameter("k")

        @ex.result
        def train(k):
            for i in range(k):  # 3,000 points: the ingest stages them through Arrow
                ex.log_metrics({{"loss": 1.0 / (i + 1), "acc": i / k, "n": i}})
            return k

        train(k).compute(k=1000)
        train(k).compute(k=3)
        points = ex.metric_points("loss", 1)
        assert len(points.value) == 1000 and points.value[-1] == 1.0 / 1000
        print("read", "pandas" in sys.modules)

        async def browse():
            from tuixp.tui.app import create_app

            app = create_app(Path({str(store)!r}), poll_interval=3600)
            async with app.run_test(size=(120, 30)) as pilot:
                for _ in range(200):
                    if app.browse.table.total == 2 and app.reader.summary("short").ready:
                        break
                    await pilot.pause(0.05)
                app.sort_by("loss")
                table = app.browse.table
                for _ in range(200):
                    if app.query_state.sort == "loss" and table.loaded and table.pending is None:
                        break
                    await pilot.pause(0.05)
                rows = sorted(r.trial_id for r in table.visible_rows())
                print("tui", "pandas" in sys.modules, app.query_state.sort, rows)

        asyncio.run(browse())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["read False", "tui False loss [1, 2]"], done.stdout
