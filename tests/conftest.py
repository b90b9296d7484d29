"""Shared fixtures: every test gets its own store in a temp folder, and no global state leaks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TUIXP_STORE", raising=False)
    monkeypatch.delenv("TUIXP_SCHEDULER", raising=False)
    monkeypatch.setenv("TUIXP_LOCK_TIMEOUT", "20")
    # No sys/ metrics in other tests' trials (a trial over 5 s would gain some); the tests of
    # system metrics ask for them (tests/test_system_metrics.py).
    monkeypatch.setenv("TUIXP_SYSTEM_METRICS", "off")
    # The CPU record is cached per host under XDG_CACHE_HOME; keep one shared across tests.
    monkeypatch.setenv("XDG_CACHE_HOME", str(ROOT / ".venv" / "cache"))


def python() -> str:
    return sys.executable


def env_with_path() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env
