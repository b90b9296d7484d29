"""tuixp.diff on real recorded trials: what changed between them, and what most likely explains it.

Four trials of one experiment run through ``tuixp.Experiment`` in a real git repository, with a
real (minimal) installed package the script imports, and a data file:

1. lr=0.1, seed 1, commit A, fastmath 1.0, data v1
2. lr=0.05, everything else as 1 (only a parameter differs)
3. lr=0.05, seed 1, the step ``train`` edited and not committed, fastmath 1.1, an unrelated
   package added
4. lr=0.05, seed 2, the edit committed (commit B), the data file changed

``record_compare_trials`` is also what the compare screen's tests and snapshots read.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tuixp import diff
from tuixp.diff import CHANGED, SAME
from tuixp.store import queries
from tuixp.store.store import Store

EXPERIMENT = "house"

SCRIPT = textwrap.dedent('''
    """A small regression whose trials the compare tests read."""
    import fastmath

    import tuixp

    ex = tuixp.Experiment("house", store=STORE)
    lr = ex.parameter("lr")
    data = ex.data_file(DATA)


    @ex
    def load(path):
        with open(path) as f:
            return [float(x) for x in f.read().split()]


    @ex
    def train(rows, lr):
        w = 0.0
        for epoch in range(5):
            w = w + lr * (sum(rows) - w)
            ex.save_metric("loss", epoch=epoch, value=round(1 / (1 + w), 4))
        return fastmath.scale(w)


    @ex.result
    def score(w):
        return round(w, 4)


    node = score(train(load(data), lr))
''')

# Commits made at fixed times by a fixed author have the same hash on every machine.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_AUTHOR_DATE": "2025-06-15T09:00:00+00:00",
    "GIT_COMMITTER_DATE": "2025-06-15T09:00:00+00:00",
}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def _install(site: Path, version: str) -> None:
    """A real installed distribution (what pip leaves) with a module the script imports."""
    for old in site.glob("fastmath-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    dist = site / f"fastmath-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fastmath\nVersion: {version}\n")
    (site / "fastmath").mkdir(exist_ok=True)
    (site / "fastmath" / "__init__.py").write_text("def scale(x):\n    return x / 10\n")


def _other(site: Path) -> None:
    dist = site / "unrelated_tool-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: unrelated-tool\nVersion: 0.3\n")


def _trial(script: Path, store: Path, data: Path, seed: int, lr: float) -> None:
    from tuixp.capture import environment, git

    environment.clear_cache()  # folder mtimes may not move within one clock tick
    git.clear_cache()
    ns = runpy.run_path(str(script), init_globals={"STORE": str(store), "DATA": str(data)})
    ns["node"].compute(seed=seed, lr=lr)
    ns["ex"].store.journal.close()


def record_compare_trials(root: Path) -> Path:
    """Record the four trials described above under ``root``; return the store's path."""
    repo, site = root / "repo", root / "site"
    repo.mkdir()
    site.mkdir()
    store = root / "store" / "trials.duckdb"
    script, data = repo / "house.py", repo / "rows.txt"
    script.write_text(SCRIPT)
    data.write_text("1 2 3\n")
    _install(site, "1.0")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "house.py", "rows.txt")
    _git(repo, "commit", "-q", "-m", "first")
    old_env = os.environ.get("TUIXP_SCRIPT")
    os.environ["TUIXP_SCRIPT"] = str(script)
    sys.path.insert(0, str(site))
    try:
        _trial(script, store, data, seed=1, lr=0.1)
        _trial(script, store, data, seed=1, lr=0.05)
        script.write_text(
            SCRIPT.replace("w = w + lr * (sum(rows) - w)", "w = w + lr * (sum(rows) - w) * 0.9")
        )
        _install(site, "1.1")
        _other(site)
        _trial(script, store, data, seed=1, lr=0.05)
        _git(repo, "commit", "-q", "-am", "slower learning")
        data.write_text("1 2 3 4\n")
        _trial(script, store, data, seed=2, lr=0.05)
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("fastmath", None)
        if old_env is None:
            os.environ.pop("TUIXP_SCRIPT", None)
        else:
            os.environ["TUIXP_SCRIPT"] = old_env
    return store


@pytest.fixture(scope="module")
def recorded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_compare_trials(tmp_path_factory.mktemp("diff_recorded"))


@pytest.fixture(scope="module")
def recorded(recorded_store: Path) -> dict[int, dict[str, Any]]:
    store = recorded_store
    out = {}
    with Store(store).connect() as con:
        for tid in (1, 2, 3, 4):
            out[tid] = {
                "trial": queries.trial(con, EXPERIMENT, tid),
                "params": queries.trial(con, EXPERIMENT, tid)["params"],
                "code": queries.code(con, EXPERIMENT, tid),
                "environment": queries.environment(con, EXPERIMENT, tid),
                "steps_ran": [s["step"] for s in queries.steps(con, EXPERIMENT, tid)],
            }
    return out


def test_the_trials_recorded_what_the_test_means(recorded: dict[int, dict[str, Any]]) -> None:
    assert [recorded[t]["trial"]["status"] for t in (1, 2, 3, 4)] == ["succeeded"] * 4
    assert recorded[1]["environment"]["packages"]["fastmath"] == "1.0"
    assert recorded[3]["environment"]["packages"]["fastmath"] == "1.1"
    assert sorted(recorded[1]["steps_ran"]) == ["load", "score", "train"]
    assert recorded[3]["environment"]["git"]["dirty"] is True


def test_only_a_parameter_differs(recorded: dict[int, dict[str, Any]]) -> None:
    result = diff.compare_trials(recorded[1], recorded[2])
    assert [(p.name, p.old, p.new) for p in result.params_changed] == [("lr", 0.1, 0.05)]
    assert result.code_changed == [] and not result.environment
    assert diff.explain(recorded[1], recorded[2]) == []


def test_uncommitted_code_and_package_changes(recorded: dict[int, dict[str, Any]]) -> None:
    result = diff.compare_trials(recorded[2], recorded[3], ("#2", "#3"))
    assert result.params_changed == []
    assert {c.step: c.status for c in result.code} == {
        "load": SAME,
        "train": CHANGED,
        "score": SAME,
        "<script>": CHANGED,
    }
    train = next(c for c in result.code if c.step == "train")
    assert "+        w = w + lr * (sum(rows) - w) * 0.9" in train.diff.splitlines()
    groups = result.environment.groups
    assert [(c.name, c.old, c.new, c.status) for c in groups["packages"]] == [
        ("fastmath", "1.0", "1.1", CHANGED),
        ("unrelated-tool", diff.MISSING, "0.3", "added"),
    ]
    assert {c.name for c in groups["git"]} == {"dirty", "diff"}
    assert "* 0.9" in next(c.new for c in groups["git"] if c.name == "diff")


def test_likely_causes_come_in_order(recorded: dict[int, dict[str, Any]]) -> None:
    causes = diff.explain(recorded[2], recorded[3])
    assert [(c.kind, c.name) for c in causes] == [
        ("code", "train"),
        ("code", "<script>"),
        ("package", "fastmath"),
        ("uncommitted", "git diff"),
        ("other_package", "unrelated-tool"),
    ]
    assert causes[0].detail == "+1 -1 lines"
    assert (causes[2].old, causes[2].new) == ("1.0", "1.1")


def test_commit_seed_and_data_changes(recorded: dict[int, dict[str, Any]]) -> None:
    commits = [recorded[t]["environment"]["git"]["commit"] for t in (3, 4)]
    assert commits[0] != commits[1]
    causes = diff.explain(recorded[3], recorded[4])
    kinds = [c.kind for c in causes]
    assert kinds == ["seed", "commit", "uncommitted", "data"]
    seed, commit, _, data = causes
    assert (seed.old, seed.new) == (1, 2)
    assert (commit.old, commit.new) == tuple(commits)
    assert data.name.endswith("rows.txt") and data.old != data.new and data.detail == CHANGED
    # The committed edit is the same code: no code cause between 3 and 4.
    assert diff.compare_trials(recorded[3], recorded[4]).code_changed == []


def test_everything_between_the_first_and_the_last(recorded: dict[int, dict[str, Any]]) -> None:
    kinds = [c.kind for c in diff.explain(recorded[1], recorded[4])]
    # rows.txt is tracked: changing it left trial 4 with an uncommitted diff.
    assert kinds == [
        "code",
        "code",
        "package",
        "seed",
        "commit",
        "uncommitted",
        "data",
        "other_package",
    ]
    rows = diff.param_table([recorded[t]["params"] for t in (1, 2, 3, 4)])
    assert [(r.name, r.values, r.differs) for r in rows] == [("lr", (0.1, 0.05, 0.05, 0.05), True)]


def test_side_by_side_rows_of_a_recorded_step(recorded: dict[int, dict[str, Any]]) -> None:
    old, new = recorded[1]["code"]["train"], recorded[3]["code"]["train"]
    rows = diff.side_by_side(old, new, context=1)
    changed = [r for r in rows if isinstance(r, diff.SideRow) and r.tag != "equal"]
    assert len(changed) == 1 and changed[0].tag == "replace"
    assert changed[0].old_no == changed[0].new_no == 5
    assert changed[0].new is not None and changed[0].new.endswith("* 0.9")
    gaps = [r for r in rows if isinstance(r, diff.Gap)]
    assert [(g.old_no, g.count) for g in gaps] == [(1, 3)]  # a lone line is shown, not a gap
    assert isinstance(rows[-1], diff.SideRow) and rows[-1].old_no == 7
    full = diff.side_by_side(old, new, context=None)
    assert len(full) == len(old.splitlines())
    uni = diff.unified_rows(rows)
    assert [(s, o, n) for s, o, n, _ in uni if s in "+-"] == [("-", 5, None), ("+", None, 5)]


def test_imports_found_in_recorded_sources(recorded: dict[int, dict[str, Any]]) -> None:
    code = recorded[1]["code"]
    assert {"fastmath", "tuixp"} <= diff.imported_modules(code.values())
    assert diff.imported_modules([code["train"]]) == set()
    assert "scikit-learn" in diff.imported_packages(["from sklearn.linear_model import Ridge"])
    assert diff.imported_packages(["import foo_bar"], {"foo_bar": ["Foo.Bar"]}) == {"foo-bar"}
    # A fragment that does not parse is still scanned.
    assert diff.imported_modules(["    import numpy as np\n  x = ("]) == {"numpy"}


def test_data_inputs_are_json_in_the_store(recorded: dict[int, dict[str, Any]]) -> None:
    raw = recorded[4]["trial"]["data_inputs"]
    assert isinstance(json.loads(raw) if isinstance(raw, str) else raw, dict)


# -- tuixp diff shows what the compare screen shows ------------------------------------------
def test_cli_diff_shows_seed_result_data_metrics_and_causes(recorded_store: Path) -> None:
    """Trials 3 and 4 differ in seed, commit, data file and result, not in parameters: the
    command line said only "git" before (issue 15 item 8)."""
    from tests.test_cli_subprocess import tuixp

    table = tuixp("diff", EXPERIMENT, "3", "4", "--store", recorded_store)
    assert table.returncode == 0, table.stderr
    lines = [line.split() for line in table.stdout.splitlines()]
    assert ["seed", "1", "2", "changed"] in lines
    assert ["status", "succeeded", "succeeded"] in lines
    result = next(line for line in lines if line[:1] == ["result"])
    assert result[-1] == "changed" and result[1] != result[2]
    assert any(line[:2] == ["loss", "(last)"] and line[-1] == "changed" for line in lines)
    data = next(line for line in lines if line[:1] == ["data"])
    assert data[1].endswith("rows.txt") and data[-1] == "changed"
    text = table.stdout
    assert "Likely causes, most likely first" in text
    assert "   1. different seed: 1 → 2" in text
    assert "data input changed: " in text and "rows.txt" in text

    doc = json.loads(
        tuixp("diff", EXPERIMENT, "3", "4", "-f", "json", "--store", recorded_store).stdout
    )
    results = {r["name"]: r for r in doc["results"]}
    assert (results["seed"]["old"], results["seed"]["new"], results["seed"]["differs"]) == (
        1,
        2,
        True,
    )
    assert results["status"] == {
        "name": "status",
        "old": "succeeded",
        "new": "succeeded",
        "differs": False,
    }
    assert results["result"]["differs"] and results["loss (last)"]["differs"]
    (data_row,) = [r for n, r in results.items() if n.startswith("data ")]
    assert data_row["differs"] and data_row["old"] != data_row["new"]
    assert [c["kind"] for c in doc["causes"]] == ["seed", "commit", "uncommitted", "data"]


def test_cli_diff_and_compare_screen_read_the_same_rows(recorded_store: Path) -> None:
    """The CLI's rows are the compare screen's: built by tuixp.diff from the same reads."""
    from tests.test_cli_subprocess import tuixp
    from tuixp.tui.data import StoreReader
    from tuixp.tui.screens.compare import result_rows

    reader = StoreReader(recorded_store, timeout=10)
    details = [reader.detail(EXPERIMENT, 2, [2, 4]), reader.detail(EXPERIMENT, 4, [])]
    screen = [(r.name, r.differs) for r in result_rows(details)]
    doc = json.loads(
        tuixp("diff", EXPERIMENT, "2", "4", "-f", "json", "--store", recorded_store).stdout
    )
    assert [(r["name"], r["differs"]) for r in doc["results"]] == screen
    assert [p["name"] for p in doc["params"]] == ["lr"]
