"""Helpers for the reliability tests: real writer processes, a store checker, small filesystems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tuixp.store import PUBLIC_VIEWS, Store

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROCS = HERE / "procs.py"


def proc_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TUIXP_LOCK_TIMEOUT", "20")
    env.update(extra)
    return env


def start_writer(store: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(PROCS), "write", "--store", str(store), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=proc_env(**extra),
    )


def run_writer(store: Path, *args: str, timeout: float = 120, **extra: str) -> "Finished":
    p = start_writer(store, *args, **extra)
    out, err = p.communicate(timeout=timeout)
    return Finished(p.returncode, out, err)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def completed(self) -> list[dict[str, Any]]:
        """The trials this writer saw finish (printed after compute() returned)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


@dataclass
class StoreState:
    """Everything a test checks about a store, read after DuckDB's own checks passed."""

    trials: dict[int, dict[str, Any]] = field(default_factory=dict)
    params: dict[int, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[int, dict[int, float]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def by_status(self, status: str) -> list[int]:
        return sorted(t for t, r in self.trials.items() if r["status"] == status)


def verify_store(path: Path, experiment: str = "rel") -> StoreState:
    """Open ``path`` as tuixp does (ingesting journals), then check it the hard way.

    DuckDB 2.0.1 has no ``PRAGMA integrity_check``; the closest is to read every block: a full
    scan of every table, the storage metadata of every table, every public view (their JSON
    casts fail on a malformed value) and a forced checkpoint that rewrites what changed.
    """
    state = StoreState()
    with Store(path).connect() as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            ).fetchall()
        ]
        for t in tables:
            state.rows[t] = len(con.execute(f'SELECT * FROM "{t}"').fetchall())
            con.execute(f"SELECT * FROM pragma_storage_info('{t}')").fetchall()
        for v in PUBLIC_VIEWS:
            con.execute(f"SELECT * FROM {v}").fetchall()
        con.execute("FORCE CHECKPOINT")
        dup = con.execute(
            "SELECT experiment, trial_id, count(*) FROM trial_record "
            "GROUP BY ALL HAVING count(*) > 1"
        ).fetchall()
        assert not dup, f"trial ids used twice: {dup}"
        cur = con.execute(
            "SELECT trial_id, status, result, error, uuid FROM trials WHERE experiment = ?",
            [experiment],
        )
        for tid, status, result, error, u in cur.fetchall():
            state.trials[tid] = {
                "status": status,
                "result": result and json.loads(result),
                "error": error,
                "uuid": u,
            }
        for tid, name, value in con.execute(
            "SELECT trial_id, name, value FROM params WHERE experiment = ?", [experiment]
        ).fetchall():
            state.params.setdefault(tid, {})[name] = json.loads(value)
        for tid, epoch, value in con.execute(
            "SELECT trial_id, epoch, value FROM metrics WHERE experiment = ? AND name = 'loss'",
            [experiment],
        ).fetchall():
            state.metrics.setdefault(tid, {})[epoch] = value
    return state


def assert_trial_intact(state: StoreState, tid: int) -> None:
    """A succeeded trial of procs.py carries exactly what its writer sent: nothing half-written."""
    from tests.reliability.procs import expected_metrics, expected_params, expected_result

    params = state.params.get(tid, {})
    assert set(params) == {"worker", "i", "label", "x"}, (tid, params)
    w, i = params["worker"], params["i"]
    assert params == expected_params(w, i), tid
    assert state.trials[tid]["status"] == "succeeded", (tid, state.trials[tid])
    assert state.trials[tid]["result"] == expected_result(w, i), tid
    assert state.metrics.get(tid) == expected_metrics(w, i), (tid, state.metrics.get(tid))


def file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Any]:
    """Mount small tmpfs folders (root only); unmounted at the end of the test."""
    mounted: list[Path] = []

    def mount(size: str = "2m") -> Path:
        where = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


def duckdb_tables(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        )
    finally:
        con.close()
