"""Sharing while other processes work: writers recording during a merge, a trial still running
at the source, several machines pushing at once, and kill -9 in the middle of a merge and of a
push. Every wait is bounded and says what it waits for."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import env_with_path
from tests.test_sharing import machines, record, recorded_machines, run_cli  # noqa: F401
from tuixp.store import synthetic
from tuixp.store.bundle import open_bundle, read_manifest
from tuixp.store.sharing import remote_bundles
from tuixp.store.store import Store


def spawn(*args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        env=env_with_path(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")


def rows(store: Path, sql: str) -> list[tuple[Any, ...]]:
    with Store(store).connect() as con:
        return con.execute(sql).fetchall()


# -- a trial running at the source ---------------------------------------------------------------
LIVE = textwrap.dedent(
    """
    import pathlib, sys, time
    import tuixp

    ex = tuixp.Experiment("live", store=sys.argv[1])
    go = pathlib.Path(sys.argv[2])


    @ex.result
    def slow():
        ex.save_metric("loss", epoch=0, value=1.0)
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ex.save_metric("loss", epoch=1, value=0.5)
        return 7


    slow().compute()
    """
)


def test_a_running_trial_is_merged_running_then_updated_when_it_ends(tmp_path: Path) -> None:
    source, target = tmp_path / "box.duckdb", tmp_path / "here.duckdb"
    script, go = tmp_path / "live.py", tmp_path / "go"
    script.write_text(LIVE)
    writer = spawn(script, source, go)
    try:

        def merged_running() -> bool:
            done = run_cli("merge", source, "--store", target, "--format", "json")
            return done.returncode == 0 and bool(
                rows(target, "SELECT 1 FROM trials WHERE status = 'running'")
            )

        wait_for("the running trial to reach the target", merged_running)
        # This store has no journal of it: its ingest leaves it running, merged from there.
        [(status, origin)] = rows(target, "SELECT status, origin FROM trials")
        assert status == "running" and origin.endswith(" #1")
        go.touch()
        writer.wait(timeout=60)
        assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=10)
    done = run_cli("merge", source, "--store", target, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["updated"] == 1
    assert rows(target, "SELECT trial_id, status, result FROM trials") == [(1, "succeeded", "7")]
    assert rows(target, "SELECT epoch, value FROM metrics ORDER BY epoch") == [(0, 1.0), (1, 0.5)]
    again = run_cli("merge", source, "--store", target, "--format", "json")
    assert json.loads(again.stdout)["totals"] == {
        "added": 0,
        "updated": 0,
        "skipped": 1,
        "conflicts": 0,
    }


# -- writers during a merge -----------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys
    import tuixp

    ex = tuixp.Experiment("search", store=sys.argv[1])
    lr = ex.parameter("lr")


    @ex.result
    def fit(lr):
        return lr * 2


    for i in range(int(sys.argv[2])):
        ex.set_parameters(lr=i)
        fit(lr).compute()
    """
)


def test_merge_while_a_writer_records_into_the_target(tmp_path: Path) -> None:
    source, target = tmp_path / "gpu.duckdb", tmp_path / "here.duckdb"
    synthetic.generate(source, trials=3000, experiment="search")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    record_n = 40
    writer = spawn(script, target, record_n)
    try:
        wait_for("the writer's first trial", lambda: Path(f"{target}.ids").exists())
        merged = spawn("-m", "tuixp", "merge", source, "--store", target)
        out, err = merged.communicate(timeout=120)
        assert merged.returncode == 0, err
        writer.wait(timeout=120)
        assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    finally:
        for p in (writer,):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    got = rows(
        target,
        "SELECT count(*), count(DISTINCT trial_id), count(origin), max(trial_id) FROM trials "
        "WHERE experiment = 'search'",
    )
    assert got == [(3000 + record_n, 3000 + record_n, 3000, 3000 + record_n)]
    assert rows(target, "SELECT count(*) FROM metrics WHERE trial_id IS NULL") == [(0,)]


# -- kill -9 in the middle of a merge -------------------------------------------------------------
@pytest.mark.slow
def test_kill_9_mid_merge_leaves_nothing_half_merged_and_a_rerun_completes_it(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "big.duckdb", tmp_path / "here.duckdb"
    n = 60_000
    synthetic.generate(source, trials=n, experiment="search")
    synthetic.generate(target, trials=5, experiment="local")
    before = rows(target, "SELECT count(*) FROM trial_record")
    metrics_before = rows(target, "SELECT count(*) FROM metric_record")
    merger = spawn("-m", "tuixp", "merge", source, "--store", target)
    try:
        assert merger.stderr is not None
        line = merger.stderr.readline()  # bounded: the merge says this before its transaction
        assert "writing 60000 trials" in line, line
        time.sleep(0.2)
        os.kill(merger.pid, signal.SIGKILL)
        merger.wait(timeout=30)
    finally:
        if merger.poll() is None:
            merger.kill()
            merger.wait(timeout=10)
    after = rows(target, "SELECT count(*) FROM trial_record")
    # All or nothing: never some of the source's trials, never trials without their rows.
    assert after in (before, [(before[0][0] + n,)])
    if after == before:
        assert rows(target, "SELECT count(*) FROM metric_record") == metrics_before
    orphans = rows(
        target,
        "SELECT count(*) FROM metric_record m WHERE NOT EXISTS "
        "(SELECT 1 FROM trial_record t WHERE t.uuid = m.trial_uuid)",
    )
    assert orphans == [(0,)]
    done = run_cli("merge", source, "--store", target, "--format", "json", timeout=300)
    assert done.returncode == 0, done.stderr
    assert rows(
        target, "SELECT count(*), count(DISTINCT trial_id) FROM trials WHERE experiment = 'search'"
    ) == [(n, n)]
    assert rows(target, "SELECT count(*) FROM metric_record WHERE experiment = 'search'") == [
        (n * 3 * 2,)
    ]


# -- push / pull ----------------------------------------------------------------------------------
def test_push_pull_through_a_folder(tmp_path: Path, machines: tuple[Path, Path]) -> None:  # noqa: F811
    laptop, gpu = machines
    remote = tmp_path / "share"
    remote.mkdir()
    pushed = run_cli("push", remote, "--store", laptop)
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed 3 trial(s) and 12 file(s) of outputs and artifacts" in pushed.stdout
    assert run_cli("push", remote, "--store", laptop).stdout.startswith("nothing to push")
    pulled = run_cli("pull", remote, "--store", gpu)
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled 1 new bundle(s)" in pulled.stdout and "3 trial(s) added" in pulled.stdout
    again = run_cli("pull", remote, "--store", gpu)
    assert "pulled 0 new bundle(s)" in again.stdout and "1 bundle(s) merged before" in again.stdout
    # gpu pushes only its own trials: the three it pulled are in the remote already.
    back = run_cli("push", remote, "--store", gpu, "--format", "json")
    assert json.loads(back.stdout)["trials"] == 2
    # laptop pulls gpu's two, and never its own bundle back.
    mine = run_cli("pull", remote, "--store", laptop, "--format", "json")
    report = json.loads(mine.stdout)
    assert [m["totals"]["added"] for m in report["merged"]] == [2] and report["known"] == 1
    uuids = {s: {r[0] for r in rows(s, "SELECT uuid FROM trials")} for s in (laptop, gpu)}
    assert len(uuids[laptop]) == 5 and uuids[laptop] == uuids[gpu]


def test_push_refuses_what_is_not_a_folder(tmp_path: Path, machines: tuple[Path, Path]) -> None:  # noqa: F811
    laptop, _ = machines
    for remote, words in (
        (tmp_path / "nowhere", "is not a folder (is the share mounted?)"),
        ("ssh://box/share", "only folder remotes"),
    ):
        done = run_cli("push", remote, "--store", laptop)
        assert done.returncode == 2 and words in done.stderr, done.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.slow
def test_several_machines_push_at_once(tmp_path: Path, machines: tuple[Path, Path]) -> None:  # noqa: F811
    laptop, gpu = machines
    stores = [laptop, gpu]
    for i in range(4):
        stores.append(synthetic.generate(tmp_path / f"node{i}.duckdb", 200, experiment=f"n{i}"))
    remote = tmp_path / "share"
    remote.mkdir()
    pushers = [spawn("-m", "tuixp", "push", remote, "--store", s) for s in stores]
    for p in pushers:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    bundles = remote_bundles(remote)
    assert len(bundles) == len(stores) and len({b.name for b in bundles}) == len(stores)
    assert not [p for p in remote.iterdir() if p.name.startswith(".")]
    fresh = tmp_path / "fresh.duckdb"
    pulled = run_cli("pull", remote, "--store", fresh, "--format", "json")
    assert pulled.returncode == 0, pulled.stderr
    assert len(json.loads(pulled.stdout)["merged"]) == len(stores)
    assert rows(fresh, "SELECT count(*), count(DISTINCT uuid) FROM trials") == [
        (5 + 4 * 200, 5 + 4 * 200)
    ]
    assert (
        json.loads(run_cli("pull", remote, "--store", fresh, "--format", "json").stdout)["merged"]
        == []
    )


def _part_file_or_end(pusher: subprocess.Popen[str], remote: Path) -> bool:
    return pusher.poll() is not None or any(".part-" in p.name for p in remote.iterdir())


# One trial keeping a 96 MiB artifact of random bytes: compressing it keeps the push's temporary
# bundle file there for seconds (2.4 s on a quiet machine), not the few tenths of a second 60,000
# trials alone take, which a loaded CI machine missed three times in a row.
BIG_ARTIFACT = textwrap.dedent(
    """
    import os, pathlib, sys
    import tuixp

    ex = tuixp.Experiment("blob", store=sys.argv[1])
    weights = pathlib.Path(sys.argv[2])
    weights.write_bytes(os.urandom(96 * 2**20))


    @ex.result
    def keep():
        ex.log_artifact(weights, name="weights")
        return 1


    keep().compute()
    """
)


@pytest.mark.slow
def test_kill_9_mid_push_leaves_no_bundle_and_a_rerun_pushes_everything(tmp_path: Path) -> None:
    store = synthetic.generate(tmp_path / "big.duckdb", 60_000, experiment="search")
    script = tmp_path / "big_artifact.py"
    script.write_text(BIG_ARTIFACT)
    done = subprocess.run(
        [sys.executable, str(script), str(store), str(tmp_path / "weights.bin")],
        env=env_with_path(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    n = 60_001
    # A push can still end between two looks on a loaded machine: an attempt that never saw the
    # temporary file (the push ended) is made again.
    for attempt in range(3):
        remote = tmp_path / f"share{attempt}"
        remote.mkdir()
        pusher = spawn("-m", "tuixp", "push", remote, "--store", store)
        try:
            wait_for(
                "the push's temporary bundle file, or the push's end",
                partial(_part_file_or_end, pusher, remote),
                timeout=120,
            )
            if pusher.poll() is None:
                os.kill(pusher.pid, signal.SIGKILL)
                pusher.wait(timeout=30)
                break
            pusher.communicate(timeout=30)
        finally:
            if pusher.poll() is None:
                pusher.kill()
                pusher.wait(timeout=10)
    else:
        pytest.fail("three pushes ended before their temporary bundle file was seen")
    assert pusher.returncode == -signal.SIGKILL
    # Nothing half-written a puller would take: the kill lands before the bundle is linked into
    # place (only the hidden temporary file is left), or after (the bundle is whole: the push
    # was killed while it removed its temporary file).
    before = remote_bundles(remote)
    for whole in before:
        assert read_manifest(whole)["tables"]["trial_record"] == n
    done = run_cli("push", remote, "--store", store, "--format", "json", timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["trials"] in ((0, n) if before else (n,))
    bundles = remote_bundles(remote)
    assert bundles
    for bundle in bundles:
        assert read_manifest(bundle)["tables"]["trial_record"] == n
        with open_bundle(bundle) as snapshot:
            assert snapshot.table("metric_record").is_file()
    fresh = tmp_path / "fresh.duckdb"
    pulled = run_cli("pull", remote, "--store", fresh, "--format", "json", timeout=300)
    assert pulled.returncode == 0, pulled.stderr
    assert rows(fresh, "SELECT count(*), count(DISTINCT uuid) FROM trials") == [(n, n)]
    # The artifact came through whole.
    shown = run_cli("artifact", "blob", "1", "weights", "--store", fresh)
    assert shown.returncode == 0, shown.stderr
    assert Path(shown.stdout.strip()).read_bytes() == (tmp_path / "weights.bin").read_bytes()
    for extra in ("big.duckdb.objects", "big.duckdb.artifacts", "fresh.duckdb.artifacts"):
        shutil.rmtree(tmp_path / extra, ignore_errors=True)


@pytest.mark.parametrize("damage", ["truncated", "not-a-zip"])
def test_pull_skips_a_damaged_bundle_and_merges_the_rest(
    tmp_path: Path,
    machines: tuple[Path, Path],  # noqa: F811
    damage: str,
) -> None:
    laptop, gpu = machines
    remote = tmp_path / "share"
    remote.mkdir()
    assert run_cli("push", remote, "--store", laptop).returncode == 0
    [good] = remote_bundles(remote)
    bad = remote / ("0000-" + good.name)
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"hello")
    done = run_cli("pull", remote, "--store", gpu, "--format", "json")
    assert done.returncode == 1
    assert f"{bad.name} not merged" in done.stderr
    assert [m["totals"]["added"] for m in json.loads(done.stdout)["merged"]] == [3]
