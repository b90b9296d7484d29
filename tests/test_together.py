"""Cross-feature checks (annotations x sharing x artifacts), through the real `tuixp` command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import pathlib, tempfile
    import tuixp

    ex = tuixp.Experiment("train")
    lr = ex.parameter("lr")

    @ex.result
    def fit(lr):
        folder = pathlib.Path(tempfile.mkdtemp())
        (folder / "model.txt").write_text(f"weights {lr}")
        ex.log_artifact(folder / "model.txt")
        return lr * 10

    s = fit(lr)
    """
)


def tuixp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuixp", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(SCRIPT)
    done = tuixp(tmp_path, "run", "train.py", "--grid", "lr=0.1,0.2")
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_show_of_a_deleted_trial_says_it_is_deleted(project: Path) -> None:
    assert tuixp(project, "rm", "train", "2").returncode == 0
    for args in (("show", "train", "2"), ("diff", "train", "1", "2")):
        done = tuixp(project, *args)
        assert done.returncode == 2
        assert (
            done.stderr.strip()
            == "tuixp: trial 2 of train is deleted (tuixp restore train 2 brings it back)"
        )


def test_purge_frees_the_artifacts_of_the_trial(project: Path) -> None:
    blobs = project / "tuixp.duckdb.artifacts"
    before = {p for p in blobs.rglob("*") if p.is_file()}
    assert tuixp(project, "rm", "train", "2").returncode == 0
    assert tuixp(project, "rm", "train", "--purge", "-y").returncode == 0
    after = {p for p in blobs.rglob("*") if p.is_file()}
    assert len(after) == len(before) - 1
    rows = tuixp(project, "sql", "SELECT count(*) AS n FROM artifact_record", "--format", "csv")
    assert rows.stdout.split() == ["n", "1"]


def test_merge_dry_run_writes_nothing(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("other")
    done = tuixp(other, "merge", str(project / "tuixp.duckdb"), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert list(other.iterdir()) == []
