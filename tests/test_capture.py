"""Capture edge cases against real git repositories made in a temp folder."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

import tuixp
from tuixp.capture import environment, git

GIT = [
    "git",
    "-c",
    "user.name=t",
    "-c",
    "user.email=t@example.com",
    "-c",
    "init.defaultBranch=main",
]


def sh(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(autouse=True)
def _fresh_git_cache() -> None:
    git.clear_cache()


def make_experiment(repo: Path, store: Path) -> tuple[tuixp.Experiment, object]:
    ex = tuixp.Experiment("gitexp", store=store)
    ex.script = str(repo / "exp.py")  # as if the experiment's script lived in the repo
    a = ex.parameter("a", default=1)

    @ex.result
    def f(a):
        return a

    return ex, f(a)


def test_not_a_repository(tmp_path: Path) -> None:
    record = git.capture_git(str(tmp_path))
    assert record["repository"] is None
    assert record["notes"] == [f"not a git repository: {tmp_path}"]


def test_repository_without_commits_with_untracked_file(tmp_path: Path) -> None:
    sh(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    record = git.capture_git(str(tmp_path))
    assert record["commit"] is None
    assert record["branch"] == "main"
    assert record["untracked"] == ["a.py"]
    assert "the repository has no commits yet" in record["notes"]
    assert "1 untracked file(s), not in the diff" in record["notes"]


def test_dirty_diff_detached_head_and_commit_between_trials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    sh(repo, "init", "-q")
    (repo / "model.py").write_text("lr = 0.1\n")
    sh(repo, "add", "model.py")
    sh(repo, "commit", "-qm", "first")
    first = sh(repo, "rev-parse", "HEAD")
    ex, node = make_experiment(repo, tmp_path / "s.duckdb")

    node.compute()  # 1: clean
    (repo / "model.py").write_text("lr = 0.2\n")
    git.clear_cache()
    node.compute()  # 2: dirty, the diff is kept
    sh(repo, "commit", "-qam", "second")
    second = sh(repo, "rev-parse", "HEAD")
    git.clear_cache()
    with caplog.at_level(logging.WARNING, logger="tuixp"):
        node.compute()  # 3: a new commit shows as an environment change
    assert "Environment information has been changed: git" in caplog.text
    assert f"~ commit: {first} -> {second}" in caplog.text
    sh(repo, "checkout", "-q", "--detach", first)
    git.clear_cache()
    node.compute()  # 4: detached

    g1, g2, g3, g4 = (ex.get_environment_record(i, category="git") for i in (1, 2, 3, 4))
    assert (g1["commit"], g1["branch"], g1["dirty"], g1["diff"]) == (first, "main", False, "")
    assert g2["dirty"] is True
    assert "-lr = 0.1" in g2["diff"] and "+lr = 0.2" in g2["diff"]
    assert (g3["commit"], g3["dirty"]) == (second, False)
    assert g4["detached"] is True and g4["branch"] is None and g4["commit"] == first
    assert "HEAD is detached" in g4["notes"]
    summary = ex.get_environment_record(2)
    assert f"Git HEAD Commit: {first}" in summary
    assert "Git Uncommitted Changes: yes" in summary


def test_cpu_record_is_cached_per_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    environment.capture_cpu.cache_clear()
    try:
        first = environment.capture_cpu()
        cached = list((tmp_path / "tuixp").glob("cpuinfo-*.json"))
        assert len(cached) == 1
        environment.capture_cpu.cache_clear()
        assert environment.capture_cpu() == first  # read back from the file
        assert "hz_actual" not in first and "hz_actual_friendly" not in first
    finally:
        environment.capture_cpu.cache_clear()


def test_packages_reread_only_when_sys_path_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = environment.capture_packages()
    assert environment.capture_packages() is first  # nothing changed: the same object
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    dist = site / "probe_dist-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-dist\nVersion: 0.1\n")
    after = environment.capture_packages()
    assert after["probe-dist"] == "0.1"
    assert "probe-dist" not in first


def test_the_package_list_is_read_from_disk_by_new_processes_until_an_install(
    tmp_path: Path,
) -> None:
    """Each process reads the list from its cache file while the distribution folders stay as
    they are; a project folder that changes (it holds the store) does not count; an install or
    an uninstall does, in the next process."""
    import json
    import os
    import sys
    import time

    from tests.conftest import env_with_path

    site, project = tmp_path / "site", tmp_path / "project"
    site.mkdir()
    project.mkdir()
    old = time.time() - 60  # installed a minute ago: the cache may trust it
    dist = site / "probe_dist-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-dist\nVersion: 0.1\n")
    os.utime(dist, (old, old))
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(project)!r}, {str(site)!r}]\n"
        "from importlib import metadata\n"
        "reads = []\n"
        "real = metadata.distributions\n"
        "metadata.distributions = lambda *a, **k: reads.append(1) or real(*a, **k)\n"
        "from tuixp.capture import environment\n"
        "packages = environment.capture_packages()\n"
        "print(json.dumps([bool(reads), packages.get('probe-dist'), len(packages)]))\n"
    )
    env = {**env_with_path(), "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def run() -> list[object]:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    read, version, count = run()
    assert (read, version) == (True, "0.1")  # no cache yet: read
    assert run() == [False, "0.1", count]  # from the cache file
    (project / "trials.duckdb.journal").mkdir()  # the project folder changes
    assert run() == [False, "0.1", count]
    upgrade = site / "probe_dist-0.2.dist-info"
    dist.rename(upgrade)
    (upgrade / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-dist\nVersion: 0.2\n")
    os.utime(upgrade)  # installed now
    assert run()[:2] == [True, "0.2"]  # an upgrade: read again
    assert run()[:2] == [True, "0.2"]  # just installed: not trusted from the cache yet
    os.utime(upgrade, (old, old))
    run()
    assert run()[:2] == [False, "0.2"]  # settled: from the cache again
    (upgrade / "METADATA").unlink()
    upgrade.rmdir()
    read, version, fewer = run()
    assert (read, version, fewer) == (True, None, count - 1)  # uninstalled
