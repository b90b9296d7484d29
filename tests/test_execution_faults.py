"""Runs that meet a fault outside their steps (issue 14): a bad worker timeout, and Ctrl-C of
a run whose steps are inside torch.

The cluster faults themselves (every worker killed, the scheduler killed) are in
tests/test_distributed.py, beside the real cluster they need.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import tuixp
from tuixp.execution.schedulers import SchedulerError

from .test_cli_units import invoke

SCRIPT = """
import tuixp

ex = tuixp.Experiment("plain")
a = ex.parameter("a", default=1)


@ex.result
def double(a):
    return a * 2


s = double(a)
"""


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_bad_worker_timeout_is_refused_before_anything_is_written(
    tmp_path: Path, value: str
) -> None:
    script = tmp_path / "plain.py"
    script.write_text(SCRIPT)
    store = tmp_path / "s.duckdb"
    done = invoke("run", script, "--worker-timeout", value, "--store", store)
    assert done.exit_code == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuixp: Invalid --worker-timeout: "), lines
    assert "a number above 0" in lines[0]
    assert list(tmp_path.iterdir()) == [script]  # no store, no journal, no ids file


def test_a_bad_worker_timeout_in_the_environment_is_refused(tmp_path: Path) -> None:
    """Checked before the cluster is reached (this address has none), for a cluster run."""
    script = tmp_path / "plain.py"
    script.write_text(SCRIPT)
    store = tmp_path / "s.duckdb"
    done = invoke(
        "run",
        script,
        "--scheduler",
        "tcp://127.0.0.1:9",
        "--store",
        store,
        env={"TUIXP_WORKER_TIMEOUT": "soon"},
    )
    assert done.exit_code == 2
    assert done.stderr.startswith("tuixp: Invalid $TUIXP_WORKER_TIMEOUT: 'soon'."), done.stderr
    assert list(tmp_path.iterdir()) == [script]


def test_a_bad_worker_timeout_in_python_uses_no_trial_id(store_path: Path) -> None:
    ex = tuixp.Experiment("plain", store=store_path)
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return a * 2

    with pytest.raises(SchedulerError, match="Invalid worker_timeout: -5"):
        double(a).compute(a=1, worker_timeout=-5)
    assert double(a).compute(a=1, worker_timeout=30) == 2  # ignored off a cluster
    assert ex.trial_id == 1
