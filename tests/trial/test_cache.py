"""The step cache and data inputs: reuse exactly when nothing a step depends on changed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import tuixp
from tests.store.test_store_keys import SCHEMA_2_VIEWS, _raw
from tuixp.cache import garbage_collect
from tuixp.store import Store, schema


class Pipeline:
    """load(data file) -> prepare (cached, reads param k) -> score (reads param c)."""

    def __init__(self, store: Path, data: Path) -> None:
        self.calls = {"load": 0, "prepare": 0, "score": 0}
        ex = self.ex = tuixp.Experiment("cached_pj", store=store)
        self.k, self.c = ex.parameter("k", default=2), ex.parameter("c", default=1)
        self.data = ex.data_file(data)
        calls = self.calls

        @ex
        def load(path):
            calls["load"] += 1
            return np.loadtxt(path)

        @ex.cached
        def prepare(x, k):
            calls["prepare"] += 1
            return x * k

        @ex.result
        def score(p, c):
            calls["score"] += 1
            return float(p.sum() + c)

        self.prepare_step = prepare
        self.node = score(prepare(load(self.data), self.k), self.c)

    def steps(self, trial_id: int) -> dict[str, tuple[str, int | None]]:
        with Store(self.ex.store.path).connect() as con:
            rows = con.execute(
                "SELECT step, status, reused_from FROM steps WHERE experiment = ? AND trial_id = ?",
                [self.ex.id, trial_id],
            ).fetchall()
        return {step: (status, reused) for step, status, reused in rows}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.txt"
    path.write_text("1\n2\n3\n")
    return path


def test_reuse_when_only_the_last_step_changes(store_path: Path, data: Path) -> None:
    p = Pipeline(store_path, data)
    assert p.node.compute() == 13.0
    p.ex.set_parameters(c=5)
    assert p.node.compute() == 17.0
    assert p.calls == {"load": 1, "prepare": 1, "score": 2}  # load and prepare skipped
    assert p.steps(2) == {"prepare": ("reused", 1), "score": ("succeeded", None)}
    np.testing.assert_array_equal(p.ex.get_persisted("prepare", 2), [2.0, 4.0, 6.0])
    assert p.node.compute(cache=False) == 17.0
    assert p.calls == {"load": 2, "prepare": 2, "score": 3}


def test_no_reuse_when_a_parameter_reaching_the_step_changes(store_path: Path, data: Path) -> None:
    p = Pipeline(store_path, data)
    p.node.compute()
    p.ex.set_parameters(k=3)
    assert p.node.compute() == 19.0
    assert p.calls["prepare"] == 2
    p.ex.set_parameters(k=2)
    p.node.compute()  # back to k=2: trial 1's output is reused
    assert p.calls["prepare"] == 2
    assert p.steps(3)["prepare"] == ("reused", 1)


def test_no_reuse_when_the_data_file_changes(
    store_path: Path, data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = Pipeline(store_path, data)
    p.node.compute()
    data.write_text("1\n2\n4\n")
    os.utime(data, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    with caplog.at_level(logging.WARNING, logger="tuixp"):
        assert p.node.compute() == 15.0
    assert p.calls["prepare"] == 2
    assert f"Data input has been changed: {data}" in caplog.text
    with Store(store_path).connect() as con:
        inputs = [
            json.loads(r[0])
            for r in con.execute("SELECT data_inputs FROM trials ORDER BY trial_id").fetchall()
        ]
    assert list(inputs[0]) == [str(data)] and inputs[0] != inputs[1]


def test_no_reuse_when_the_step_source_changes(
    store_path: Path, data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = Pipeline(store_path, data)
    p.node.compute()
    ex = p.ex

    @ex.cached
    def prepare(x, k):
        return x * k + 1

    score = ex._steps["score"]
    load = ex._steps["load"]
    node = score(prepare(load(p.data), p.k), p.c)
    assert node.compute() == 16.0  # computed anew: (2+4+6) + 3 + 1
    with Store(store_path).connect() as con:
        statuses = con.execute(
            "SELECT status FROM steps WHERE trial_id = 2 AND step = 'prepare'"
        ).fetchall()
    assert statuses == [("succeeded",)]


def _dist(site: Path, name: str, version: str, module: str | None = None) -> None:
    """A distribution as an installer leaves it: ``NAME-VERSION.dist-info`` and its module."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if module is not None:
        (site / f"{module}.py").write_text(f"VERSION = {version!r}\n")
        (info / "RECORD").write_text(f"{module}.py,,\n{info.name}/METADATA,,\n")


def test_cache_follows_the_packages_a_step_imports_not_every_install(
    store_path: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    _dist(site, "cache-probe", "1.0", module="cache_probe")
    p = Pipeline(store_path, data)
    ex = p.ex

    calls = []

    @ex.cached
    def prepare(x, k):
        import cache_probe  # imported inside the step: found in its code

        calls.append(cache_probe.VERSION)
        return x * k

    node = ex._steps["score"](prepare(ex._steps["load"](p.data), p.k), p.c)
    node.compute()
    node.compute()
    assert len(calls) == 1  # reused
    _dist(site, "unrelated-probe", "2.0")  # an unrelated install: the cache stands
    node.compute()
    assert len(calls) == 1
    assert p.steps(3)["prepare"] == ("reused", 1)
    shutil.rmtree(site / "cache_probe-1.0.dist-info")
    _dist(site, "cache-probe", "1.1")  # an upgrade of what the step imports: computed anew
    node.compute()
    assert len(calls) == 2
    assert p.steps(4)["prepare"][0] == "succeeded"


def test_impure_step_is_never_reused(store_path: Path) -> None:
    ex = tuixp.Experiment("impure_cache", store=store_path)
    x = ex.parameter("x", default=1)
    state = {"n": 0}

    @ex.cached
    def noisy(x):
        state["n"] += 1
        return x + state["n"]

    @ex.result
    def out(v, x):
        return v

    node = out(noisy(x), x)
    node.compute(cache=False)
    node.compute(cache=False)  # same input, different output: flagged impure
    n = state["n"]
    node.compute()
    node.compute()
    assert state["n"] == n + 2  # computed every time once flagged


def test_missing_or_corrupt_cached_output_is_recomputed(
    store_path: Path, data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = Pipeline(store_path, data)
    p.node.compute()
    objects = store_path.with_name(store_path.name + ".objects")
    (obj,) = [f for f in objects.rglob("*.npy")]
    obj.write_bytes(b"corrupt")
    with caplog.at_level(logging.WARNING, logger="tuixp"):
        assert p.node.compute() == 13.0
    assert "missing or corrupt" in caplog.text
    assert p.calls["prepare"] == 2
    obj.unlink()
    # trial 2 wrote a new entry pointing at the same content; remove it again: still right
    for f in objects.rglob("*.npy"):
        f.unlink()
    assert p.node.compute() == 13.0
    assert p.calls["prepare"] == 3


def test_cache_with_process_scheduler(store_path: Path, tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    from tests.conftest import env_with_path

    script = tmp_path / "cached.py"
    script.write_text(
        textwrap.dedent(f"""
        import tuixp
        ex = tuixp.Experiment("proc_cache", store={str(store_path)!r})
        k = ex.parameter("k", default=2)
        c = ex.parameter("c", default=1)
        @ex.cached
        def prepare(k):
            return list(range(k))
        @ex.result
        def score(p, c):
            return sum(p) + c
        node = score(prepare(k), c)
        if __name__ == "__main__":
            print(node.compute(scheduler="processes"))
            ex.set_parameters(c=10)
            print(node.compute(scheduler="processes"))
    """)
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env_with_path(),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "11"]
    with Store(store_path).connect() as con:
        assert con.execute(
            "SELECT status, reused_from FROM steps WHERE trial_id = 2 AND step = 'prepare'"
        ).fetchall() == [("reused", 1)]


def test_gc_frees_unreferenced_objects(store_path: Path, data: Path) -> None:
    p = Pipeline(store_path, data)
    p.node.compute()
    objects = store_path.with_name(store_path.name + ".objects")
    stray = objects / "zz" / ("f" * 64 + ".json")
    stray.parent.mkdir(parents=True)
    stray.write_text("[1]")
    with Store(store_path).connect() as con:
        referenced = {r[0] for r in con.execute("SELECT object_hash FROM persisted").fetchall()}
    assert garbage_collect(store_path, referenced) == (0, 0)  # too recent: may be in flight
    files, freed = garbage_collect(store_path, referenced, min_age_s=0)
    assert (files, freed) == (1, 3)
    assert not stray.exists()
    assert len(list(objects.rglob("*.npy"))) == 1  # the referenced output stays


def test_schema_1_store_is_migrated(store_path: Path) -> None:
    ex = tuixp.Experiment("old", store=store_path)
    ex.result(lambda: 42)
    ex._steps["<lambda>"]().compute()
    with Store(store_path).connect():
        pass
    with _raw(store_path) as con:  # the background ingest of the trial keeps off meanwhile
        for view in schema.PUBLIC_VIEWS:
            con.execute(f"DROP VIEW {view}")
        con.execute("DROP INDEX trial_by_experiment")
        con.execute("ALTER TABLE trial_record DROP COLUMN data_inputs")
        con.execute("ALTER TABLE experiment_record DROP COLUMN goal")  # schema 3's
        con.execute("CREATE INDEX trial_by_experiment ON trial_record (experiment, trial_id)")
        con.execute(SCHEMA_2_VIEWS.replace(", CAST(data_inputs AS JSON) AS data_inputs", ""))
        con.execute("UPDATE tuixp_meta SET value = '1' WHERE key = 'schema_version'")
    with Store(store_path).connect() as con:
        assert con.execute(
            "SELECT value FROM tuixp_meta WHERE key = 'schema_version'"
        ).fetchone() == (str(schema.SCHEMA_VERSION),)
        assert con.execute("SELECT trial_id, result, data_inputs FROM trials").fetchall() == [
            (1, "42", None)
        ]


def test_tuixp_gc_command(store_path: Path, data: Path) -> None:
    from typer.testing import CliRunner

    from tuixp.cli import app

    p = Pipeline(store_path, data)
    p.node.compute()
    objects = store_path.with_name(store_path.name + ".objects")
    stray = objects / "zz" / ("e" * 64 + ".json")
    stray.parent.mkdir(parents=True)
    stray.write_text("[12]")
    runner = CliRunner()
    dry = runner.invoke(app, ["gc", "--store", str(store_path), "--min-age", "0", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would free 1 file(s), 4 bytes" in dry.output and stray.exists()
    done = runner.invoke(app, ["gc", "--store", str(store_path), "--min-age", "0"])
    assert done.exit_code == 0, done.output
    assert "freed 1 file(s), 4 bytes; 1 output(s) kept" in done.output
    assert not stray.exists()
    np.testing.assert_array_equal(p.ex.get_persisted("prepare", 1), [2.0, 4.0, 6.0])
