"""``StorePaths`` names the files tuixp really writes beside a store, and only those."""

from __future__ import annotations

from pathlib import Path

import tuixp
from tests.test_cache import Pipeline
from tuixp.demo import run_demo
from tuixp.store.paths import StorePaths
from tuixp.tui.screens.sql import append_history, load_history


def _beside(folder: Path, store: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name != store.name}


def test_the_files_beside_a_store_after_real_trials_are_the_ones_store_paths_names(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "stores"
    folder.mkdir()
    store = folder / "lab.duckdb"
    data = tmp_path / "data.txt"
    data.write_text("1\n2\n3\n")
    paths = StorePaths(store)

    p = Pipeline(store, data)  # a cached step: objects and the cache index
    assert p.node.compute() == 13.0
    p.ex.set_parameters(c=5)
    assert p.node.compute() == 17.0
    art = tuixp.Experiment("logs_a_file", store=store)

    @art.result
    def logs():
        data.with_name("plot.txt").write_text("a plot")
        art.log_artifact(data.with_name("plot.txt"))  # the artifacts folder
        return 1

    logs().compute()
    assert art.get_artifact("plot.txt").read_text() == "a plot"
    run_demo(store, say=lambda _line: None)  # the demo's folder, more trials, a persisted step
    append_history(store, "SELECT 1")  # what the SQL console keeps
    assert load_history(store)[-1] == "SELECT 1"

    named = {name: path.name for name, path in paths.beside().items()}
    found = _beside(folder, store)
    # every file on disk is one StorePaths names ...
    assert found <= set(named.values()), found - set(named.values())
    # ... and each of these was written where StorePaths says
    for name in ("journal", "ids", "objects", "artifacts", "state", "cache", "sql_history", "demo"):
        assert getattr(paths, name).exists(), name
    assert paths.journal.is_dir() and any(paths.journal.iterdir())
    assert (paths.state / "cached_pj.json").is_file()
    assert (paths.cache / "cached_pj").is_dir()
    assert (paths.demo / "demo_experiment.py").is_file()
    assert paths.ids.is_file() and paths.sql_history.is_file()
    assert {p.parent for p in paths.beside().values()} == {folder}
    assert paths.new_file("x").parent == folder and paths.new_file("x").name.startswith(".")
