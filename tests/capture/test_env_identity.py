"""The interpreter is recorded by what it is, not by the path it was started with."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.trial.test_purity import project, run
from tuixp.capture.environment import capture_python
from tuixp.trial.world import compare

PYTHON_CHANGED = "Environment information has been changed: python"
SCRIPT = """
import tuixp

ex = tuixp.Experiment("which_python")

@ex.result
def answer():
    return 42

result = answer()
"""


def _venv_bin() -> Path:
    if sys.prefix == getattr(sys, "base_prefix", sys.prefix):
        pytest.skip("the tests do not run in a virtual environment")
    return Path(sys.prefix) / "bin"


def test_one_venv_started_by_three_paths_is_one_python(tmp_path: Path) -> None:
    bin_dir = _venv_bin()
    versioned = bin_dir / f"python{sys.version_info.major}.{sys.version_info.minor}"
    plain = bin_dir / "python"
    if not versioned.exists() or not plain.exists():
        pytest.skip(f"{bin_dir} lacks python or {versioned.name}")
    repo = project(tmp_path, SCRIPT)
    # proj/../<venv>/bin/python, relative to the project, as a person types it.
    dotted = os.path.join("..", os.path.relpath(bin_dir, tmp_path), "python")
    assert dotted.startswith("../") and (repo / dotted).exists()
    seen = []
    for exe in (str(plain), str(versioned), dotted, str(plain), str(versioned)):
        seen.append(run(repo, exe=exe).stderr)
    assert not any(PYTHON_CHANGED in err for err in seen), seen
    # The record names the interpreter, resolved: the same file whichever path started it.
    from tuixp.store import Store

    with Store(repo / "store.duckdb").connect() as con:
        rows = con.execute(
            "SELECT DISTINCT environment_hash, json_extract_string(environment, '$.python.executable'), "
            "json_extract_string(environment, '$.python.venv') FROM environments"
        ).fetchall()
    assert len(rows) == 1, rows
    _, executable, venv = rows[0]
    assert executable == os.path.realpath(sys.executable) and venv == os.path.realpath(sys.prefix)


def _world(python: dict[str, object]) -> dict[str, object]:
    return {
        "code": {},
        "environment": {"python": python},
        "packages": {},
        "git": {},
    }


def test_records_made_with_the_typed_path_compare_resolved(tmp_path: Path) -> None:
    bin_dir = _venv_bin()
    now = capture_python()
    # What tuixp recorded before it resolved paths: sys.executable as typed.
    typed = {**now, "executable": str(bin_dir / "python"), "venv": sys.prefix}
    state = {"environment": {"python": typed}, "code": {}}
    assert [c for c in compare(state, _world(now)) if c["name"] == "python"] == []
    assert [c for c in compare({"environment": {"python": now}, "code": {}}, _world(typed))] == []


def test_another_venv_or_another_version_is_still_a_change(tmp_path: Path) -> None:
    now = capture_python()
    other_venv = {**now, "venv": str(tmp_path / "other-venv")}
    changes = compare({"environment": {"python": other_venv}, "code": {}}, _world(now))
    assert [c["name"] for c in changes] == ["python"]
    assert "venv" in changes[0]["diff"]
    other_version = {**now, "version": "3.10.0"}
    changes = compare({"environment": {"python": other_version}, "code": {}}, _world(now))
    assert [c["name"] for c in changes] == ["python"] and "version" in changes[0]["diff"]
