"""System metrics sampled while a trial runs (issue 20, item 4): CPU % and RSS of the owner's
process tree, and per-GPU utilisation and memory when nvidia-smi (or NVML) is there, stored as
``sys/`` metrics; configurable, off with one switch.

There is no GPU on these machines. The GPU path is tested through the one thing that can run
here: an executable named ``nvidia-smi`` on ``PATH`` that prints the CSV the real tool prints
for the query tuixp sends (``--query-gpu=index,utilization.gpu,memory.used,memory.total
--format=csv,noheader,nounits``), including the ``[N/A]`` a real driver prints for a field it
does not support. NVML through ``pynvml`` is not installed here and is not tested.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import tuixp
from tuixp.capture.system import NVIDIA_SMI_QUERY, parse_nvidia_smi
from tuixp.errors import TuixpError
from tuixp.execution.sampler import DEFAULT_EVERY, SAMPLER, interval
from tuixp.store.metric_names import is_system_metric, system_metric_sql, user_metric_sql
from tuixp.store.store import Store

from .conftest import env_with_path

TUIXP = str(Path(sys.executable).with_name("tuixp"))
HOLD_S = 1.2  # how long the steps below keep busy: several sampling intervals of 0.1 s


def metric_rows(store: Path) -> list[tuple[int, str, int, float]]:
    with Store(store).connect() as con:
        return con.execute(
            "SELECT trial_id, name, epoch, value FROM metrics ORDER BY trial_id, name, epoch"
        ).fetchall()


def _sampled(readings: int) -> bool:
    """Whether the sampler has taken ``readings`` readings for a trial it watches now."""
    with SAMPLER._cond:
        return any(w.epoch >= readings for w in SAMPLER._watched.values())


def busy_experiment(store: Path, every: object = 0.1):  # type: ignore[no-untyped-def]
    ex = tuixp.Experiment("busy", store=store)
    ex.system_metrics = every
    n = ex.parameter("n")

    @ex.result
    def spin(n):
        ex.save_metric("rss", epoch=0, value=psutil.Process().memory_info().rss / (1 << 20))
        end, x = time.monotonic() + HOLD_S, 0
        # A busy loop: the process is on the CPU. Kept busy past HOLD_S (at most 30 s more)
        # until the sampler took two readings for this trial: late in a long test session, a
        # process with hundreds of leftover threads makes a reading of its tree take longer
        # than HOLD_S (a file read a thread, each waiting for the GIL this loop holds).
        # Sampling as the run has it: the experiment's setting, or $TUIXP_SYSTEM_METRICS.
        sampled = interval(ex.system_metrics) is not None
        while time.monotonic() < end or (
            sampled and not _sampled(2) and time.monotonic() < end + 30
        ):
            x += n
        return x

    return ex, spin(n)


def test_a_trial_records_cpu_and_rss_under_sys(store_path: Path) -> None:
    ex, node = busy_experiment(store_path)
    node.compute(n=1)
    rows = metric_rows(store_path)
    names = {name for _, name, _, _ in rows}
    assert {"sys/cpu_percent", "sys/rss_mb", "rss"} <= names
    rss = [v for _, name, _, v in rows if name == "sys/rss_mb"]
    (own,) = [v for _, name, _, v in rows if name == "rss"]  # psutil's, read in the step
    assert all(own / 1.5 < v < own * 1.5 for v in rss), (rss, own)  # this process is the tree
    cpu = [v for _, name, _, v in rows if name == "sys/cpu_percent"]
    assert cpu and all(v >= 0 for v in cpu)
    epochs = [e for _, name, e, _ in rows if name == "sys/rss_mb"]
    assert epochs == list(range(len(epochs)))  # one epoch a sample, from 0
    # The rule that keeps them out of the user's metrics, in Python and in SQL.
    assert {n for n in names if is_system_metric(n)} == names - {"rss"}
    with Store(store_path).connect() as con:
        user = con.execute(f"SELECT DISTINCT name FROM metrics WHERE {user_metric_sql()}")
        assert user.fetchall() == [("rss",)]
        system = con.execute(f"SELECT count(*) FROM metrics WHERE {system_metric_sql()}")
        assert system.fetchone()[0] == len(rows) - 1
    # Readable from Python like any metric (their names are not identifiers).
    frame = ex.load_metric("sys/rss_mb", 1)
    assert frame[1].tolist() == rss


def test_off_with_one_switch_and_the_default(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex, node = busy_experiment(store_path, every=False)
    node.compute(n=1)
    assert {name for _, name, _, _ in metric_rows(store_path)} == {"rss"}
    # The environment's switch, for `tuixp run` and every experiment that does not say.
    ex.system_metrics = None
    monkeypatch.setenv("TUIXP_SYSTEM_METRICS", "off")
    node.compute(n=2)
    assert {name for t, name, _, _ in metric_rows(store_path) if t == 2} == {"rss"}
    monkeypatch.setenv("TUIXP_SYSTEM_METRICS", "0.1")
    node.compute(n=3)
    assert "sys/rss_mb" in {name for t, name, _, _ in metric_rows(store_path) if t == 3}
    monkeypatch.delenv("TUIXP_SYSTEM_METRICS")
    assert interval(None) == DEFAULT_EVERY == 5.0
    assert interval(0) is None and interval(False) is None and interval(2) == 2.0


@pytest.mark.parametrize("bad", ["fast", -1, float("nan")])
def test_a_bad_setting_is_refused_when_set(store_path: Path, bad: object) -> None:
    ex = tuixp.Experiment("bad_setting", store=store_path)
    with pytest.raises(TuixpError, match="system_metrics must be seconds"):
        ex.system_metrics = bad
    assert ex.system_metrics is None
    assert not store_path.exists()


def test_nvidia_smi_csv_is_parsed_as_the_real_tool_prints_it() -> None:
    text = "0, 37, 1024, 16384\n1, [N/A], 512, 8192\n2, [Not Supported], [N/A], [N/A]\n\nNo devices were found\n"
    assert parse_nvidia_smi(text) == [
        {"index": 0, "util_percent": 37.0, "memory_mb": 1024.0, "memory_percent": 6.25},
        {"index": 1, "memory_mb": 512.0, "memory_percent": 6.25},
        {"index": 2},
    ]


FAKE_NVIDIA_SMI = """#!/bin/sh
# A stand-in for nvidia-smi (no GPU on this machine): prints what the real tool prints.
case "$*" in
  *utilization.gpu*) printf '0, 37, 1024, 16384\\n1, [N/A], 2048, 8192\\n' ;;
  *driver_version*) printf 'Fake GPU A, 16384 MiB, 555.42\\nFake GPU B, 8192 MiB, 555.42\\n' ;;
  *) exit 9 ;;
esac
"""


@pytest.mark.slow
def test_tuixp_run_samples_gpus_through_nvidia_smi_on_path(tmp_path: Path) -> None:
    """A real `tuixp run` subprocess with a fake nvidia-smi first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    check = subprocess.run([str(smi), *NVIDIA_SMI_QUERY], capture_output=True, text=True)
    assert check.stdout.startswith("0, 37, 1024, 16384")
    script = tmp_path / "gpu.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            import tuixp

            ex = tuixp.Experiment("gpu")

            @ex.result
            def train():
                time.sleep({HOLD_S})
                return 1
            train()
            """
        )
    )
    store = tmp_path / "s.duckdb"
    env = env_with_path()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["TUIXP_SYSTEM_METRICS"] = "0.1"
    proc = subprocess.run(
        [TUIXP, "--store", str(store), "run", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = metric_rows(store)
    values = {(name, v) for _, name, _, v in rows}
    assert ("sys/gpu0/util_percent", 37.0) in values
    assert ("sys/gpu0/memory_mb", 1024.0) in values
    assert ("sys/gpu0/memory_percent", 6.25) in values
    assert ("sys/gpu1/memory_mb", 2048.0) in values
    assert "sys/gpu1/util_percent" not in {name for name, _ in values}  # [N/A]: not a reading
    # The environment's GPU list came from the same fake, through its own query.
    gpu_env = tuixp.Experiment("gpu", store=store).get_environment_record(1, "gpu")
    assert [g["name"] for g in gpu_env] == ["Fake GPU A", "Fake GPU B"]


@pytest.mark.slow
def test_the_process_scheduler_s_workers_are_in_the_sampled_tree(store_path: Path) -> None:
    """With scheduler='processes' the steps run in child processes: the owner samples its
    whole process tree, so memory a step holds in its worker shows in sys/rss_mb."""
    ex = tuixp.Experiment("children", store=store_path)
    ex.system_metrics = 0.1

    @ex.result
    def hold():
        import os
        import time

        import numpy as np

        block = np.ones(100 << 17)  # 100 MiB of float64, touched
        time.sleep(HOLD_S * 2)
        return (os.getpid(), float(block[-1]))

    pid, _ = hold().compute(scheduler="processes")
    assert pid != os.getpid()
    rss = [v for _, name, _, v in metric_rows(store_path) if name == "sys/rss_mb"]
    own = psutil.Process().memory_info().rss / (1 << 20)
    assert max(rss) > own + 80, (rss, own)


def test_system_metrics_are_no_column_of_the_trial_table(store_path: Path) -> None:
    """The trial table (TUI and ``tuixp ls``) sorts by its metric columns: sys/ is none of them."""
    from tuixp.store import window
    from tuixp.store.columns import layout

    _, node = busy_experiment(store_path)
    node.compute(n=1)
    node.compute(n=2)
    with Store(store_path).connect() as con:
        lay = layout(con, "busy")
        assert [c.source for c in lay.metrics] == ["rss"]
        page = window.page(con, lay, window.TrialQuery("busy", sort="rss"), 0, 10)
        assert len(page) == 2
        assert all(not is_system_metric(name) for row in page for name in row.metrics)
