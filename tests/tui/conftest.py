"""Fixtures for the TUI tests: a real store made by running real trials, made stable for snapshots.

The trials run through ``tuixp.Experiment`` (real Dask, real journal, real DuckDB); afterwards
the times, hosts and pids are set to fixed values so that screenshots are the same on every
machine and every run. Everything else (parameters, results, metrics, code, outputs, errors) is
what the trials recorded.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tuixp.store.store import Store

BASE = "2025-06-15 09:00:00+00"


class Centroids:
    """Not JSON, not an array: a step returning it is persisted as a pickle."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __repr__(self) -> str:
        return f"Centroids(k={self.k})"


def _build(path: Path) -> None:
    import numpy as np
    import pandas as pd

    import tuixp

    ex = tuixp.Experiment("regression", store=path)
    lr = ex.parameter("lr")
    depth = ex.parameter("depth")
    model = ex.parameter("model")

    @ex.persist
    def load_data(depth):
        return pd.DataFrame(
            {"x": np.arange(8, dtype=float), "y": np.arange(8, dtype=float) * depth}
        )

    @ex
    def train(data, lr, model):
        if lr > 1:
            raise FloatingPointError("loss diverged: learning rate too large")
        for epoch in range(4):
            ex.save_metric("loss", epoch=epoch, value=round(1 / (1 + epoch * lr * 10), 4))
            ex.save_metric("accuracy", epoch=epoch, value=round(0.5 + epoch * lr, 4))
        return {"model": model, "weight": float(data["y"].sum()) * lr}

    @ex.result
    def score(fitted):
        return round(fitted["weight"] / 100, 4)

    s = score(train(load_data(depth), lr, model))
    ex.metric_goal("accuracy", "max")  # the best accuracy is the highest (loss: 'min')
    ex.set_parameters(lr=0.05, depth=3, model="ridge")
    s.compute(seed=1)
    s.compute_grid(seed=2, lr=[0.01, 0.1], depth=[2, 4], model=["ridge", "lasso"])
    with pytest.raises(FloatingPointError):
        s.compute(seed=3, lr=5.0)

    other = tuixp.Experiment("classify", store=path, goal="max")
    k = other.parameter("k")

    @other.persist
    def fit(k):
        return Centroids(k)

    @other.result
    def evaluate(c):
        return c.k * 0.25

    e = evaluate(fit(k))
    for value in (1, 2, 3):
        e.compute(seed=value, k=value)
    for store in {ex.store, other.store}:
        store.journal.close()


def _stabilise(path: Path) -> None:
    with Store(path).connect() as con:
        con.execute(f"""
            UPDATE trial_record SET
              started_at = TIMESTAMPTZ '{BASE}' + to_seconds((trial_id - 1) * 90
                + CASE experiment WHEN 'classify' THEN 3600 ELSE 0 END),
              finished_at = TIMESTAMPTZ '{BASE}' + to_seconds((trial_id - 1) * 90
                + CASE experiment WHEN 'classify' THEN 3600 ELSE 0 END + 1.25),
              host = 'trainbox', pid = 4242, script = 'train.py',
              git_commit = NULL, git_branch = NULL, git_dirty = false""")
        con.execute("""
            UPDATE step_record SET started_at = x.s, finished_at = x.s + to_seconds(0.2),
                   worker = 'thread'
            FROM (SELECT s.trial_uuid, s.key, t.started_at + to_seconds(0.25 * (row_number()
                    OVER (PARTITION BY s.trial_uuid ORDER BY s.started_at, s.step) - 1)) AS s
                  FROM step_record s JOIN trial_record t ON t.uuid = s.trial_uuid) x
            WHERE step_record.trial_uuid = x.trial_uuid AND step_record.key = x.key""")
        con.execute("UPDATE metric_record SET recorded_at = TIMESTAMPTZ '2025-06-15 09:00:00+00'")
        # Tracebacks name the checkout's folder and the line numbers of tuixp's own files, which
        # differ between machines and commits: fix them so the snapshots do not.
        for h, text in con.execute(
            "SELECT b.hash, b.text FROM blob b JOIN trial_record t ON t.traceback_hash = b.hash"
        ).fetchall():
            fixed = text.replace(str(ROOT), "/src/tuixp")
            fixed = re.sub(r'(/src/tuixp/tuixp/[\w/]+\.py", line )\d+', r"\g<1>100", fixed)
            con.execute("UPDATE blob SET text = ? WHERE hash = ?", [fixed, h])


@pytest.fixture(scope="session")
def _template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tui_store")
    path = root / "trials.duckdb"
    _build(path)
    _stabilise(path)
    return path


@pytest.fixture
def real_store(_template_store: Path, tmp_path: Path) -> Path:
    """A private copy of the real store (tests may add trials or hold it)."""
    dest = tmp_path / "trials.duckdb"
    shutil.copy(_template_store, dest)
    objects = _template_store.with_name(_template_store.name + ".objects")
    shutil.copytree(objects, dest.with_name(dest.name + ".objects"))
    ids = _template_store.with_name(_template_store.name + ".ids")
    if ids.exists():
        shutil.copy(ids, dest.with_name(dest.name + ".ids"))
    return dest


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Times show in local time: make local time UTC so screens are the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    time.tzset()


FIXED_NOW = 1_750_000_000.0 + 86_400


def fixed_clock() -> float:
    return FIXED_NOW


def env_for_subprocess() -> dict[str, str]:
    from tests.conftest import env_with_path

    env = env_with_path()
    env["TZ"] = "UTC"
    env.pop("TUIXP_STORE", None)
    return env


os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh event loop (Pilot needs one; no plugin required)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
    return None
