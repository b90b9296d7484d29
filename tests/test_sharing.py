"""Sharing trials across stores: identity, origin, ``tuixp merge``, ``export --bundle``.

The stores are recorded by real processes (one script run per "machine"), the merges go through
the command line, and every check compares what the two stores hold.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import ROOT, env_with_path
from tests.test_cli_units import invoke, one_error_line, store_snapshot
from tuixp.store import schema
from tuixp.store.store import Store

RECORDER = textwrap.dedent(
    """
    import pathlib
    import sys
    import tempfile

    import tuixp

    ex = tuixp.Experiment("shared", store=sys.argv[1])
    a = ex.parameter("a")


    @ex.persist
    def double(a):
        return [a, a * 2]


    @ex.result
    def score(d):
        for epoch in range(3):
            ex.save_metric("loss", epoch=epoch, value=d[1] / (epoch + 1))
        folder = pathlib.Path(tempfile.mkdtemp())
        (folder / "model.txt").write_text(f"weights {d}")
        (folder / "run" / "sub").mkdir(parents=True)
        (folder / "run" / "sub" / "log.txt").write_text(f"log {d[0]}")
        ex.log_artifact(folder / "model.txt")
        ex.log_artifact(folder / "run")
        return sum(d)


    result = score(double(a))
    for value in sys.argv[2:]:
        ex.set_parameters(a=int(value))
        result.compute()
    """
)


def record(tmp_path: Path, store: Path, *values: int) -> None:
    """Record one trial per value into ``store`` from a separate Python process."""
    script = tmp_path / "recorder.py"
    if not script.exists():
        script.write_text(RECORDER)
    done = subprocess.run(
        [sys.executable, str(script), str(store), *map(str, values)],
        env=env_with_path(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def run_cli(*args: Any, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuixp", *map(str, args)],
        env=env_with_path(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def trials(store: Path) -> list[tuple[Any, ...]]:
    with Store(store).connect() as con:
        return con.execute(
            "SELECT trial_id, uuid, status, result, origin, origin_trial_id, origin_store "
            "FROM trials ORDER BY trial_id"
        ).fetchall()


def content(store: Path) -> dict[str, Any]:
    """What each trial recorded, by UUID, without its local id: equal in two stores that hold
    the same trials."""
    out: dict[str, Any] = {}
    with Store(store).connect() as con:
        for row in con.execute(
            "SELECT uuid, status, started_at, finished_at, seed, params, result, error, "
            "host, code_hash, environment_hash, packages_hash, git_hash, data_inputs, "
            "origin_store, origin_trial_id FROM trials"
        ).fetchall():
            out[row[0]] = {"trial": row[1:]}
        for table, cols in (
            ("metric_record", "name, epoch, value, value_type, value_int, recorded_at"),
            ("step_record", "key, step, started_at, finished_at, status, output_hash"),
            ("param_record", "name, value"),
            ("persisted_record", "step, object_hash, format, size"),
            ("artifact_record", "name, kind, hash, size, files, step"),
        ):
            for uuid, rows in con.execute(
                f"SELECT trial_uuid, list(({cols}) ORDER BY {cols}) FROM {table} GROUP BY 1"
            ).fetchall():
                out[uuid][table] = rows
        for uuid, env, code in con.execute(
            "SELECT t.uuid, e.environment, (SELECT list(source ORDER BY ord) FROM code c "
            "WHERE c.experiment = t.experiment AND c.trial_id = t.trial_id) "
            "FROM trials t JOIN environments e USING (experiment, trial_id)"
        ).fetchall():
            out[uuid]["texts"] = (env, code)
    return out


@pytest.fixture(scope="module")
def recorded_machines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("machines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(ROOT / ".venv" / "cache"))  # as conftest does
        record(folder, folder / "laptop.duckdb", 1, 2, 3)
        record(folder, folder / "gpu.duckdb", 10, 20)
    return folder


@pytest.fixture
def machines(tmp_path: Path, recorded_machines: Path) -> tuple[Path, Path]:
    """Two stores recorded by separate processes: laptop (3 trials), gpu (2 trials); each
    test gets its own copy of both (their files and everything beside them)."""
    for item in recorded_machines.iterdir():
        if item.is_dir():
            shutil.copytree(item, tmp_path / item.name)
        else:
            shutil.copy2(item, tmp_path / item.name)
    return tmp_path / "laptop.duckdb", tmp_path / "gpu.duckdb"


# -- identity and origin ------------------------------------------------------------------------
def test_every_store_gets_its_own_identity(machines: tuple[Path, Path]) -> None:
    ids = []
    for store in machines:
        with Store(store).connect() as con:
            rows = con.execute("SELECT value FROM tuixp_meta WHERE key = 'store_uuid'").fetchall()
        assert len(rows) == 1 and len(rows[0][0]) == 36
        ids.append(rows[0][0])
    assert ids[0] != ids[1]
    # A trial recorded here: its origin is this store and its own id, and no label.
    for row in trials(machines[0]):
        assert row[4] is None and row[5] == row[0] and row[6] == ids[0]


def test_schema_4_store_gets_an_identity_when_migrated(tmp_path: Path) -> None:
    store = tmp_path / "old.duckdb"
    record(tmp_path, store, 1)
    con = duckdb.connect(str(store))
    con.execute(schema._DROP_VIEWS + "DROP INDEX trial_by_experiment;")
    con.execute("ALTER TABLE trial_record DROP COLUMN origin_store")
    con.execute("ALTER TABLE trial_record DROP COLUMN origin_trial_id")
    con.execute("DROP TABLE bundle_merged; DROP TABLE remote_trial;")
    con.execute("DELETE FROM tuixp_meta WHERE key = 'store_uuid'")
    con.execute("UPDATE tuixp_meta SET value = '4' WHERE key = 'schema_version'")
    con.close()
    rows = trials(store)
    assert len(rows) == 1 and rows[0][4] is None and rows[0][5] == 1
    with Store(store).connect() as con:
        version, uuid = con.execute(
            "SELECT max(value) FILTER (WHERE key = 'schema_version'), "
            "max(value) FILTER (WHERE key = 'store_uuid') FROM tuixp_meta"
        ).fetchone()
    assert version == str(schema.SCHEMA_VERSION) and len(uuid) == 36
    assert rows[0][6] == uuid


# -- merge ---------------------------------------------------------------------------------------
def test_merge_brings_everything_and_again_adds_nothing(
    tmp_path: Path, machines: tuple[Path, Path]
) -> None:
    laptop, gpu = machines
    before = content(laptop)
    done = run_cli("merge", laptop, "--store", gpu)
    assert done.returncode == 0, done.stderr
    assert "shared: added 3 as #3-#5" in done.stdout
    rows = trials(gpu)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    with Store(laptop).connect() as con:
        laptop_id = con.execute("SELECT value FROM tuixp_meta WHERE key = 'store_uuid'").fetchone()
    merged = rows[2:]
    import socket

    host = socket.gethostname()
    assert [r[4] for r in merged] == [f"{host} #1", f"{host} #2", f"{host} #3"]
    assert [r[5] for r in merged] == [1, 2, 3] and {r[6] for r in merged} == {laptop_id[0]}
    # Everything each trial recorded came along, unchanged but for its local id.
    after = content(gpu)
    for uuid, recorded in before.items():
        assert after[uuid] == recorded
    # Its persisted output reads back in the target (the object was copied by content hash).
    import tuixp

    ex = tuixp.Experiment("shared", store=str(gpu))
    assert ex.get_persisted("double", trial_id=4) == [2, 4]
    assert ex.load_metric("loss", trial_id=[5])[5].tolist() == [6.0, 3.0, 2.0]
    # And its artifacts, a file and a folder (their blobs copied by content hash).
    assert ex.get_artifact("model.txt", trial_id=4).read_text() == "weights [2, 4]"
    assert (ex.get_artifact("run", trial_id=5) / "sub" / "log.txt").read_text() == "log 3"
    # Again: nothing added, every trial skipped.
    again = run_cli("merge", laptop, "--store", gpu, "--format", "json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["totals"] == {"added": 0, "updated": 0, "skipped": 3, "conflicts": 0}
    assert [r[:2] for r in trials(gpu)] == [r[:2] for r in rows]


def test_merge_both_ways_gives_the_same_trials(machines: tuple[Path, Path]) -> None:
    laptop, gpu = machines
    assert invoke("merge", laptop, "--store", gpu).exit_code == 0
    assert invoke("merge", gpu, "--store", laptop).exit_code == 0
    a, b = content(laptop), content(gpu)
    assert len(a) == 5 and a == b
    # Local ids differ, origins agree.
    origins_a = {r[1]: (r[6], r[5]) for r in trials(laptop)}
    origins_b = {r[1]: (r[6], r[5]) for r in trials(gpu)}
    assert origins_a == origins_b


def test_dry_run_shows_the_merge_and_writes_nothing(machines: tuple[Path, Path]) -> None:
    laptop, gpu = machines
    before = store_snapshot(gpu)
    ids_before = (gpu.parent / "gpu.duckdb.ids").read_text()
    done = invoke("merge", laptop, "--store", gpu, "--dry-run")
    assert done.exit_code == 0, done.stderr
    assert "shared: would add 3" in done.stdout and "dry run: nothing written" in done.stdout
    assert store_snapshot(gpu) == before
    assert (gpu.parent / "gpu.duckdb.ids").read_text() == ids_before
    assert not (gpu.parent / "gpu.duckdb.objects" / "x").exists()


def test_merged_ids_come_from_the_writers_allocator(
    tmp_path: Path, machines: tuple[Path, Path]
) -> None:
    laptop, gpu = machines
    assert invoke("merge", laptop, "--store", gpu).exit_code == 0
    record(tmp_path, gpu, 30)  # a writer after the merge continues after the merged ids
    assert [r[0] for r in trials(gpu)] == [1, 2, 3, 4, 5, 6]
    assert trials(gpu)[-1][4] is None


def test_conflicts_are_reported_and_this_stores_copy_kept(machines: tuple[Path, Path]) -> None:
    laptop, gpu = machines
    assert invoke("merge", laptop, "--store", gpu).exit_code == 0
    with Store(gpu).connect() as con:  # the same trial, recorded differently here
        con.execute("UPDATE trial_record SET result = '99' WHERE trial_id = 4")
        con.execute("INSERT INTO experiment_record VALUES ('shared2', now(), 'x', 'max')")
    done = invoke("merge", laptop, "--store", gpu, "--format", "json")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["totals"]["conflicts"] == 1 and report["totals"]["skipped"] == 2
    assert len(report["conflicts"]) == 1 and report["conflicts"][0].startswith("shared #4 (")
    with Store(gpu).connect() as con:
        assert con.execute("SELECT result FROM trial_record WHERE trial_id = 4").fetchone() == (
            "99",
        )


@pytest.mark.parametrize("kind", ["text", "duckdb", "newer", "truncated", "folder", "missing"])
def test_a_source_that_cannot_be_merged_is_refused(
    tmp_path: Path, machines: tuple[Path, Path], kind: str
) -> None:
    laptop, gpu = machines
    source = tmp_path / "source"
    if kind == "text":
        source.write_text("hello\n")
    elif kind == "duckdb":
        con = duckdb.connect(str(source))
        con.execute("CREATE TABLE x (a INTEGER)")
        con.close()
    elif kind == "newer":
        source = tmp_path / "newer.duckdb"
        record(tmp_path, source, 7)
        con = duckdb.connect(str(source))
        con.execute("UPDATE tuixp_meta SET value = '99' WHERE key = 'schema_version'")
        con.close()
    elif kind == "truncated":
        bundle = tmp_path / "whole.tuixp-bundle"
        assert invoke("export", "--bundle", bundle, "--store", laptop).exit_code == 0
        data = bundle.read_bytes()
        source.write_bytes(data[: len(data) // 2])
    elif kind == "folder":
        source.mkdir()
    before = store_snapshot(gpu)
    done = invoke("merge", source, "--store", gpu)
    assert done.exit_code == 2, (done.stdout, done.stderr)
    line = one_error_line(done)
    words = {
        "text": "not a tuixp store or bundle",
        "duckdb": "not a tuixp store",
        "newer": "newer tuixp",
        "truncated": "bundle",
        "folder": "is a folder",
        "missing": "no such file",
    }
    assert words[kind] in line
    assert store_snapshot(gpu) == before


def test_a_bundle_from_a_newer_tuixp_is_refused(
    tmp_path: Path, machines: tuple[Path, Path]
) -> None:
    laptop, gpu = machines
    bundle = tmp_path / "b.tuixp-bundle"
    assert invoke("export", "--bundle", bundle, "--store", laptop).exit_code == 0
    newer = tmp_path / "newer.tuixp-bundle"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(newer, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "manifest.json":
                manifest = json.loads(data)
                manifest["schema_version"] = schema.SCHEMA_VERSION + 1
                data = json.dumps(manifest).encode()
            out.writestr(info, data)
    before = store_snapshot(gpu)
    done = invoke("merge", newer, "--store", gpu)
    assert done.exit_code == 2 and "newer tuixp" in one_error_line(done)
    assert store_snapshot(gpu) == before


# -- export --bundle ------------------------------------------------------------------------------
def test_export_bundle_and_merge_it(tmp_path: Path, machines: tuple[Path, Path]) -> None:
    laptop, gpu = machines
    bundle = tmp_path / "laptop.tuixp-bundle"
    done = invoke("export", "--bundle", bundle, "--store", laptop)
    assert done.exit_code == 0, done.stderr
    assert (
        "3 trial(s), 9 metric value(s), 12 file(s) of persisted outputs and artifacts"
        in done.stdout
    )
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = set(zf.namelist())
    assert manifest["format"] == "tuixp-bundle" and manifest["format_version"] == 1
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    assert "tables/trial_record.parquet" in names and any(n.startswith("objects/") for n in names)
    # A bundle is never overwritten.
    again = invoke("export", "--bundle", bundle, "--store", laptop)
    assert again.exit_code == 2 and "exists already" in one_error_line(again)
    before = content(laptop)
    assert invoke("merge", bundle, "--store", gpu).exit_code == 0
    after = content(gpu)
    assert all(after[u] == c for u, c in before.items())
    import tuixp

    assert tuixp.Experiment("shared", store=str(gpu)).get_persisted("double", 5) == [3, 6]
    second = invoke("merge", bundle, "--store", gpu, "--format", "json")
    assert json.loads(second.stdout)["totals"]["added"] == 0


def test_export_bundle_of_some_experiments_since_a_date(
    tmp_path: Path, machines: tuple[Path, Path]
) -> None:
    laptop, gpu = machines
    with Store(laptop).connect() as con:
        con.execute(
            "UPDATE trial_record SET started_at = TIMESTAMPTZ '2020-01-01 00:00:00+00' "
            "WHERE trial_id = 1"
        )
    bundle = tmp_path / "recent.tuixp-bundle"
    done = invoke(
        "export", "--bundle", bundle, "shared", "--since", "2021-06-01", "--store", laptop
    )
    assert done.exit_code == 0, done.stderr
    assert "2 trial(s)" in done.stdout
    unknown = invoke("export", "--bundle", tmp_path / "x.tuixp-bundle", "nope", "--store", laptop)
    assert unknown.exit_code == 2 and "nope" in one_error_line(unknown)
    bad = invoke(
        "export", "--bundle", tmp_path / "y.tuixp-bundle", "--since", "soon", "--store", laptop
    )
    assert bad.exit_code == 2 and "not a date" in one_error_line(bad)
    assert not (tmp_path / "x.tuixp-bundle").exists() and not (tmp_path / "y.tuixp-bundle").exists()


def test_ls_and_show_name_a_merged_trials_origin(machines: tuple[Path, Path]) -> None:
    import socket

    laptop, gpu = machines
    assert invoke("merge", laptop, "--store", gpu).exit_code == 0
    host = socket.gethostname()
    table = invoke("ls", "shared", "--store", gpu, "--format", "table")
    assert table.exit_code == 0, table.stderr
    lines = [line.strip() for line in table.stdout.splitlines()]
    assert any(line.startswith(f"4 ({host} #2)") for line in lines), table.stdout
    assert any(line.startswith("1 ") for line in lines)  # recorded here: no origin
    listed = json.loads(invoke("ls", "shared", "--store", gpu, "--format", "json").stdout)
    assert {r["trial_id"]: r["origin"] for r in listed} == {
        1: None,
        2: None,
        3: f"{host} #1",
        4: f"{host} #2",
        5: f"{host} #3",
    }
    shown = invoke("show", "shared", "5", "--store", gpu)
    assert shown.stdout.splitlines()[0].startswith(f"shared trial 5 ({host} #3): succeeded")
    doc = json.loads(invoke("show", "shared", "5", "--store", gpu, "--format", "json").stdout)
    assert doc["origin"]["trial_id"] == 3 and doc["origin"]["label"] == f"{host} #3"


def test_filter_trials_by_origin_and_host(machines: tuple[Path, Path]) -> None:
    import socket

    laptop, gpu = machines
    assert invoke("merge", laptop, "--store", gpu).exit_code == 0
    host = socket.gethostname()

    def ids(where: str) -> list[int]:
        done = invoke("ls", "shared", "--where", where, "--store", gpu, "--format", "json")
        assert done.exit_code == 0, done.stderr
        return sorted(r["trial_id"] for r in json.loads(done.stdout))

    assert ids("merged") == [3, 4, 5]
    assert ids("not merged") == [1, 2]
    assert ids(f"origin = '{host} #2'") == [4]
    assert ids(f"host = '{host}' and merged") == [3, 4, 5]


def test_diff_compares_a_merged_trial_with_a_local_one(machines: tuple[Path, Path]) -> None:
    laptop, gpu = machines
    assert invoke("merge", laptop, "--store", gpu).exit_code == 0
    done = invoke("diff", "shared", "1", "4", "--store", gpu, "--format", "json")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["trials"] == [1, 4]
    # a=10 recorded here, a=2 on the laptop: the merged trial compares like any other.
    assert report["params"] == [{"name": "a", "status": "changed", "old": 10, "new": 2}]
    results = {r["name"]: (r["old"], r["new"]) for r in report["results"]}
    assert results["result"] == (30, 6) and results["loss (last)"][1] == 4 / 3
    assert [c["step"] for c in report["code"]] == ["double", "score", "<script>"]


def test_annotations_travel_and_a_different_name_is_a_conflict(
    machines: tuple[Path, Path],
) -> None:
    laptop, gpu = machines
    assert invoke("name", "shared", "1", "baseline", "--store", laptop).exit_code == 0
    assert invoke("star", "shared", "2", "--store", laptop).exit_code == 0
    assert invoke("merge", laptop, "--store", gpu).exit_code == 0
    listed = json.loads(invoke("ls", "shared", "--store", gpu, "--format", "json").stdout)
    by_id = {r["trial_id"]: r for r in listed}
    assert by_id[3]["name"] == "baseline" and by_id[4]["starred"] is True
    # Both sides rename the same trial: the next merge reports it and keeps both events.
    assert invoke("name", "shared", "3", "gpu-name", "--store", gpu).exit_code == 0
    assert invoke("name", "shared", "1", "laptop-name", "--store", laptop).exit_code == 0
    done = invoke("merge", laptop, "--store", gpu, "--format", "json")
    report = json.loads(done.stdout)
    assert any(
        c.startswith("shared #3: name 'gpu-name' here and 'laptop-name' in the source")
        for c in report["conflicts"]
    ), report["conflicts"]
    assert invoke("merge", gpu, "--store", laptop).exit_code == 0
    events = {}
    for store in (laptop, gpu):
        with Store(store).connect() as con:
            events[store] = sorted(
                con.execute(
                    "SELECT uuid, trial_uuid, action, value FROM annotation_record"
                ).fetchall()
            )
    assert len(events[laptop]) == 4 and events[laptop] == events[gpu]
