"""The Python API against a real store: daskperiment's quickstart and the behaviour DESIGN.md owes."""

from __future__ import annotations

import json
import logging
import math
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import tuixp
from tuixp import errors
from tuixp.store import Store

from .conftest import env_with_path


def quickstart(store: Path) -> tuple[tuixp.Experiment, object]:
    ex = tuixp.Experiment("demo_pj", store=store)
    a = ex.parameter("a")
    b = ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.persist
    def features(d):
        return np.arange(d) * 2.0

    @ex.result
    def calculate_score(s):
        for epoch in range(100):
            ex.save_metric("loss", epoch=epoch, value=1.0 / (epoch + 1) + len(s))
        return 10 / len(s)

    return ex, calculate_score(features(prepare_data(a, b)))


def test_quickstart_flow(store_path: Path) -> None:
    ex, s = quickstart(store_path)
    assert ex.trial_id == 0
    with pytest.raises(
        errors.ParameterError,
        match="Parameters are not defined. Use Experiment.set_parameters to initialize: a, b",
    ):
        s.compute()
    assert ex.trial_id == 0  # refused before any trial id was used

    ex.set_parameters(a=1, b=2)
    assert s.compute(seed=1) == pytest.approx(10 / 3)
    ex.set_parameters(a=0, b=0)
    with pytest.raises(ZeroDivisionError):
        s.compute()
    ex.set_parameters(a=3, b=2)
    assert s.compute() == 2.0
    assert ex.trial_id == 3

    hist = ex.get_history()
    assert hist.index.name == "Trial ID"
    assert list(hist.columns) == [
        "a",
        "b",
        "Result",
        "Success",
        "Finished",
        "Process Time",
        "Description",
    ]
    assert hist["Success"].tolist() == [True, False, True]
    assert hist.loc[2, "Description"] == "ZeroDivisionError(division by zero)"
    assert math.isnan(hist.loc[1, "Description"])
    assert pd.api.types.is_datetime64_any_dtype(hist["Finished"])
    assert pd.api.types.is_timedelta64_dtype(hist["Process Time"])
    verbose = ex.get_history(verbose=True)
    assert verbose.loc[1, "Seed"] == 1
    assert verbose.loc[3, "Result Type"] == "<class 'float'>"

    assert ex.get_parameters(1) == {"a": 1, "b": 2}
    np.testing.assert_array_equal(ex.get_persisted("features", 3), np.arange(5) * 2.0)
    loss = ex.load_metric("loss", [1, 3])
    assert loss.index.name == "Epoch"
    assert list(loss.columns) == [1, 3]
    assert len(loss) == 100
    assert loss.loc[0, 1] == pytest.approx(1.0 + 3)
    assert loss.loc[99, 3] == pytest.approx(0.01 + 5)
    with pytest.raises(
        errors.MetricNotFound, match="Unable to find saved metric with specified key: acc"
    ):
        ex.load_metric("acc", 1)
    with pytest.raises(errors.TrialNotFound, match="Unable to find trial id: 7"):
        ex.get_parameters(7)
    with pytest.raises(errors.TrialNotFound, match="Unable to find trial id: 0"):
        ex.get_code(0)
    assert "def calculate_score(s):" in ex.get_code(1)


def test_store_reopened_in_new_process_continues_ids(store_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "exp.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, tuixp
        ex = tuixp.Experiment("demo_pj", store={str(store_path)!r})
        a = ex.parameter("a")
        @ex.result
        def double(a):
            ex.save_metric("m", epoch=ex.current_trial_id, value=a)
            return a * 2
        node = double(a)
        ex.set_parameters(a=int(sys.argv[1]))
        print(node.compute(), ex.trial_id)
    """)
    )
    for i in (1, 2):
        out = subprocess.run(
            [sys.executable, str(script), str(i * 10)],
            capture_output=True,
            text=True,
            env=env_with_path(),
            timeout=60,
            check=True,
        ).stdout
        assert out.split() == [str(i * 20), str(i)]
    with duckdb.connect(str(store_path), read_only=True) as con:
        rows = con.execute(
            "SELECT trial_id, status, result, params->>'a' FROM trials ORDER BY trial_id"
        ).fetchall()
    assert rows == [(1, "succeeded", "20", "10"), (2, "succeeded", "40", "20")]
    ex = tuixp.Experiment("demo_pj", store=store_path)
    assert ex.trial_id == 2
    assert ex.load_metric("m", [1, 2]).loc[2, 2] == 20.0


def test_failed_trial_records_error_and_traceback(store_path: Path) -> None:
    ex = tuixp.Experiment("fails", store=store_path)
    x = ex.parameter("x", default=0)

    @ex.result
    def boom(x):
        raise RuntimeError(f"bad value {x}")

    with pytest.raises(RuntimeError, match="bad value 0"):
        boom(x).compute()
    with Store(store_path).connect() as con:
        row = con.execute("SELECT status, error FROM trials").fetchone()
        tb = con.execute(
            "SELECT b.text FROM trial_record t JOIN blob b ON b.hash = t.traceback_hash"
        ).fetchone()[0]
        step = con.execute("SELECT step, status, error FROM steps").fetchone()
    assert row == ("failed", "RuntimeError: bad value 0")
    assert "Traceback" in tb and "raise RuntimeError" in tb
    assert step == ("boom", "failed", "RuntimeError: bad value 0")
    # The traceback starts at the step's own code: tuixp's frames that called it are left out.
    frames = [line for line in tb.splitlines() if line.startswith("  File ")]
    assert frames and __file__ in frames[0] and "in boom" in frames[0], tb
    assert not any(str(Path(tuixp.__file__).parent) in f for f in frames), tb


def test_undeclared_and_invalid_names(store_path: Path) -> None:
    with pytest.raises(ValueError, match="Experiment ID must be valid as python identifier: 1x"):
        tuixp.Experiment("1x", store=store_path)
    ex = tuixp.Experiment("names", store=store_path)
    ex.parameter("a")
    with pytest.raises(
        ValueError, match="Parameter is not declared. Use Experiment.parameter to declare: zz"
    ):
        ex.set_parameters(zz=1)
    with pytest.raises(ValueError, match="Current Trial ID only exists during a trial execution"):
        _ = ex.current_trial_id
    # Outside a step: daskperiment's error, as current_trial_id's (issue 21).
    with pytest.raises(
        errors.TrialIDNotFoundError, match="Current Trial ID only exists during a trial execution"
    ):
        ex.save_metric("loss", 1, 0.5)


def test_parameter_defaults_and_redeclaration(store_path: Path) -> None:
    ex = tuixp.Experiment("defaults", store=store_path)
    lr = ex.parameter("lr", default=0.1)
    assert ex.parameter("lr") is lr

    @ex.result
    def f(lr):
        return lr * 10

    assert f(lr).compute() == 1.0
    ex.set_parameters(lr=0.2)
    assert f(lr).compute() == 2.0
    assert ex.get_parameters() == {"lr": 0.2}


def test_seed_makes_trials_repeatable(store_path: Path) -> None:
    ex = tuixp.Experiment("seeded", store=store_path)
    n = ex.parameter("n", default=5)

    @ex
    def draw(n):
        return [random.random() for _ in range(n)]

    @ex.result
    def total(xs):
        return sum(xs) + float(np.random.rand())

    node = total(draw(n))
    assert node.compute(seed=1) == node.compute(seed=1)
    assert node.compute(seed=1) != node.compute(seed=2)
    assert node.compute(scheduler="sync", seed=7) == node.compute(scheduler="threads", seed=7)
    seeds = ex.get_history(verbose=True)["Seed"].tolist()
    assert seeds[:5] == [1, 1, 1, 2, 7]
    node.compute()
    node.compute()  # no seed given: a generated one is recorded, each trial its own
    generated = ex.get_history(verbose=True)["Seed"].tolist()[-2:]
    assert all(isinstance(s, int) for s in generated) and generated[0] != generated[1]


def test_purity_warning(store_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ex = tuixp.Experiment("impure", store=store_path)
    x = ex.parameter("x", default=7)
    counter = {"n": 0}

    @ex.result
    def calculate_score(x):
        counter["n"] += 1
        return x + counter["n"]

    node = calculate_score(x)
    with caplog.at_level(logging.WARNING, logger="tuixp"):
        node.compute()
        assert "changed with the same input" not in caplog.text
        node.compute()
    assert (
        "Experiment step result is changed with the same input: (step: calculate_score, "
        "args: (7,), kwargs: {})"
    ) in caplog.text
    with Store(store_path).connect() as con:
        notes = con.execute("SELECT notes FROM trial_record WHERE trial_id = 2").fetchone()[0]
    assert "impure: calculate_score" in notes


def test_code_change_across_processes(store_path: Path, tmp_path: Path) -> None:
    def script(body: str) -> Path:
        path = tmp_path / "exp.py"
        path.write_text(
            textwrap.dedent(f"""
            import tuixp
            ex = tuixp.Experiment("code_pj", store={str(store_path)!r})
            a = ex.parameter("a", default=2)
            @ex.result
            def score(a):
                return {body}
            print(score(a).compute())
        """)
        )
        return path

    run = [sys.executable, str(script("a * 10"))]
    first = subprocess.run(run, capture_output=True, text=True, env=env_with_path(), timeout=60)
    assert first.returncode == 0, first.stderr
    assert "Code context has been changed" not in first.stderr
    second = subprocess.run(
        [sys.executable, str(script("a * 100"))],
        capture_output=True,
        text=True,
        env=env_with_path(),
        timeout=60,
    )
    assert second.returncode == 0, second.stderr
    assert "Code context has been changed: score" in second.stderr
    assert "-    return a * 10" in second.stderr and "+    return a * 100" in second.stderr
    with Store(store_path).connect() as con:
        changes = json.loads(
            con.execute("SELECT changes FROM trial_record WHERE trial_id = 2").fetchone()[0]
        )
        sources = con.execute(
            "SELECT trial_id, source FROM code WHERE step = 'score' ORDER BY trial_id"
        ).fetchall()
    assert changes[0]["kind"] == "code" and changes[0]["name"] == "score"
    assert "a * 10\n" in sources[0][1] and "a * 100\n" in sources[1][1]


def test_package_install_between_trials_is_seen(
    store_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    ex = tuixp.Experiment("pkgs", store=store_path)
    a = ex.parameter("a", default=1)

    @ex.result
    def f(a):
        return a

    node = f(a)
    node.compute()
    # A real (minimal) installed distribution: what pip leaves behind.
    dist = site / "tuixp_probe_pkg-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tuixp-probe-pkg\nVersion: 1.2.3\n")
    with caplog.at_level(logging.WARNING, logger="tuixp"):
        node.compute()
    assert "Environment information has been changed: packages" in caplog.text
    assert "+ tuixp-probe-pkg==1.2.3" in caplog.text
    assert "tuixp-probe-pkg==1.2.3" in ex.get_environment(2, category="requirements")
    assert "tuixp-probe-pkg==1.2.3" not in ex.get_environment(1, category="requirements")


def test_environment_categories(store_path: Path) -> None:
    ex = tuixp.Experiment("envs", store=store_path)
    ex.result(lambda: 1)
    node = ex._steps["<lambda>"]()
    node.compute()
    summary = ex.get_environment_record(1)
    assert any(line.startswith("Python Version: ") for line in summary)
    assert ex.get_environment_record(1, category="python")["version"] == sys.version.split()[0]
    assert ex.get_environment_record(1, category="cpu")["count"] >= 1
    assert ex.get_environment_record(1, category="gpu") == []  # none on this machine
    assert "hz_actual" not in ex.get_environment_record(1, category="cpu")  # noise is not recorded
    assert ex.get_environment_record(1, category="numpy")["version"] == np.__version__
    with pytest.raises(ValueError, match="Unknown environment category"):
        ex.get_environment_record(1, category="nope")


def test_unreadable_source_is_recorded_by_hash(store_path: Path) -> None:
    code = textwrap.dedent(f"""
        import tuixp
        ex = tuixp.Experiment("nosrc", store={str(store_path)!r})
        a = ex.parameter("a", default=3)
        def f(a): return a + 1
        node = ex.result(f)(a)
        print(node.compute())
        print(ex.get_code(1))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env_with_path(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("4\n")
    assert "# source not available" in out.stdout and "# bytecode hash:" in out.stdout
    assert "Source not available for step(s) f" in out.stderr


def test_texts_are_stored_once(store_path: Path) -> None:
    ex = tuixp.Experiment("dedup", store=store_path)
    a = ex.parameter("a")

    @ex.result
    def f(a):
        return a

    node = f(a)
    for i in range(30):
        ex.set_parameters(a=i)
        node.compute()
    with Store(store_path).connect() as con:
        assert con.execute(
            "SELECT count(DISTINCT packages_hash), count(DISTINCT environment_hash), "
            "count(DISTINCT code_hash) FROM trials"
        ).fetchone() == (1, 1, 1)
        n_pkgs = con.execute("SELECT count(*) FROM package_set").fetchone()[0]
        assert n_pkgs == len(ex.get_environment_record(1, category="requirements"))
        assert con.execute("SELECT count(*) FROM packages").fetchone()[0] == 30 * n_pkgs
        assert con.execute("SELECT count(*) FROM params").fetchone()[0] == 30


def test_grid_runs_one_trial_per_point(store_path: Path) -> None:
    ex = tuixp.Experiment("grid", store=store_path)
    a, b = ex.parameter("a"), ex.parameter("b", default=1)

    @ex.result
    def ratio(a, b):
        return a / b

    outcomes = ratio(a, b).compute_grid(a=[1, 2], b=[0, 4])
    assert [(o.params, o.status) for o in outcomes] == [
        ({"a": 1, "b": 0}, "failed"),
        ({"a": 1, "b": 4}, "succeeded"),
        ({"a": 2, "b": 0}, "failed"),
        ({"a": 2, "b": 4}, "succeeded"),
    ]
    assert [o.trial_id for o in outcomes] == [1, 2, 3, 4]
    assert outcomes[3].result == 0.5
    assert isinstance(outcomes[0].error, ZeroDivisionError)


def test_killed_process_leaves_interrupted_trial(store_path: Path, tmp_path: Path) -> None:
    flag = tmp_path / "started"
    code = textwrap.dedent(f"""
        import time, pathlib, tuixp
        ex = tuixp.Experiment("killed", store={str(store_path)!r})
        @ex.result
        def slow():
            pathlib.Path({str(flag)!r}).write_text("x")
            time.sleep(60)
        ex._steps["slow"]().compute()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env_with_path())
    try:
        for _ in range(600):
            if flag.exists():
                break
            if proc.poll() is not None:
                pytest.fail("the trial process exited early")
            import time

            time.sleep(0.05)
        else:
            pytest.fail("the trial never started")
    finally:
        proc.kill()
        proc.wait(10)
    with Store(store_path).connect() as con:
        row = con.execute("SELECT trial_id, status, error FROM trials").fetchone()
        assert row[0] == 1 and row[1] == "interrupted"
        assert "ended before the trial did" in row[2]
        # Its journal is gone once ingested: nothing is left to replay.
    assert list((store_path.parent / (store_path.name + ".journal")).glob("*.jsonl")) == []


def test_plain_duckdb_reads_the_views(store_path: Path) -> None:
    ex, s = quickstart(store_path)
    ex.set_parameters(a=1, b=1)
    s.compute()
    with Store(store_path).connect():
        pass  # ingest what the journal holds
    con = duckdb.connect(str(store_path), read_only=True)
    try:
        row = con.execute(
            "SELECT experiment, trial_id, status, started_at, finished_at, seed, "
            "result, error, params FROM trials"
        ).fetchone()
        assert row[0:3] == ("demo_pj", 1, "succeeded")
        assert json.loads(row[8]) == {"a": 1, "b": 1}
        assert con.execute("SELECT count(*) FROM metrics WHERE name = 'loss'").fetchone()[0] == 100
        steps = con.execute("SELECT step FROM steps ORDER BY started_at").fetchall()
        assert [r[0] for r in steps] == ["prepare_data", "features", "calculate_score"]
        assert con.execute("SELECT count(*) FROM code WHERE step = 'features'").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM environments").fetchone()[0] == 1
        assert con.execute("SELECT format FROM persisted").fetchone()[0] == "npy"
    finally:
        con.close()


def _nested(depth: int, inner: object = 1) -> object:
    value = inner
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def test_deeply_nested_parameters_are_a_parameter_error(store_path: Path) -> None:
    """~500 to 1,000 levels raised a raw RecursionError (issue 14 item 9); deeper, or a cycle,
    must not hang or crash either. Nothing is recorded and no trial id is used."""
    ex = tuixp.Experiment("deep_params", store=store_path)
    p = ex.parameter("p")

    @ex.result
    def echo(p):
        return 1

    cycle: list[object] = []
    cycle.append(cycle)
    for value in (_nested(990), _nested(700), _nested(450), _nested(1000), _nested(10**5), cycle):
        with pytest.raises(errors.ParameterError, match="Parameter p cannot be recorded: it is "):
            echo(p).compute(scheduler="sync", p=value)
        with pytest.raises(errors.ParameterError, match="nested more than 100 levels"):
            echo(p).compute_grid(scheduler="sync", p=[1, value])
    assert ex.trial_id == 0
    assert echo(p).compute(scheduler="sync", p=_nested(99)) == 1  # 100 levels: recorded
    assert ex.get_parameters(1) == {"p": _nested(99)}
