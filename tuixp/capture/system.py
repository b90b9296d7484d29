"""Readings of the machine while a trial runs: CPU and memory of this process and its children,
utilisation and memory of each NVIDIA GPU.

``tuixp.execution.sampler`` calls these every few seconds and stores them as ``sys/`` metrics.
Every reader returns what it could read and nothing else: a machine without GPUs, a process
psutil cannot see, or a GPU field the driver reports as ``[N/A]`` gives fewer readings, never
an error.

GPUs are read through NVIDIA's management library when ``pynvml`` (the ``nvidia-ml-py``
distribution) imports and initialises, else through ``nvidia-smi`` on ``PATH``, else not at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

# nvidia-smi's own CSV: one line a GPU, "0, 37, 1024, 16384" (index, utilisation in %, memory
# used and total in MiB), as `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` prints.
NVIDIA_SMI_QUERY = (
    "--query-gpu=index,utilization.gpu,memory.used,memory.total",
    "--format=csv,noheader,nounits",
)
NVIDIA_SMI_TIMEOUT_S = 5.0  # one reading waits at most this long for nvidia-smi


class ProcessTree:
    """CPU % and resident memory of a process and all its descendants (the process scheduler's
    worker processes, a local cluster's nannies and workers), between two readings.

    On Linux it reads ``/proc`` directly, a few small files a process: a training step that
    holds the GIL makes every file read wait for it, and psutil's listing of children scans
    every process of the machine (a reading took 0.8 s on a loaded machine). Elsewhere psutil.
    """

    PROC = Path("/proc")

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid or os.getpid()
        self._cpu: dict[int, float] = {}  # CPU seconds of each process at the last reading
        self._at: float | None = None  # wall clock of the last reading
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def pids(self) -> list[int]:
        """This process and its live descendants."""
        if (self.PROC / str(self.pid) / "task").is_dir():
            found, todo = [], [self.pid]
            while todo:
                pid = todo.pop()
                found.append(pid)
                try:
                    tasks = os.listdir(self.PROC / str(pid) / "task")
                except OSError:
                    continue
                for tid in tasks:
                    try:
                        text = (self.PROC / str(pid) / "task" / tid / "children").read_text()
                    except OSError:
                        continue
                    todo.extend(int(c) for c in text.split())
            return found
        try:
            import psutil
        except ImportError:
            return []
        try:
            root = psutil.Process(self.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.Error:
            return []

    def _usage(self, pid: int) -> tuple[float, int] | None:
        """(CPU seconds, resident bytes) of one process, or None when it is gone."""
        proc = self.PROC / str(pid)
        try:
            stat = (proc / "stat").read_text()
            statm = (proc / "statm").read_text()
        except OSError:
            return self._usage_psutil(pid) if not self.PROC.is_dir() else None
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) ": state is field 3
        cpu = (int(fields[11]) + int(fields[12])) / self._tick  # utime, stime
        return cpu, int(statm.split()[1]) * self._page

    def _usage_psutil(self, pid: int) -> tuple[float, int] | None:
        try:
            import psutil

            p = psutil.Process(pid)
            with p.oneshot():
                times = p.cpu_times()
                return times.user + times.system, p.memory_info().rss
        except Exception:  # noqa: BLE001 - gone, not visible, or no psutil
            return None

    def read(self) -> dict[str, float]:
        """``cpu_percent`` (100 is one core busy, over the time since the previous reading; absent
        at the first) and ``rss_mb`` (resident memory, summed over the tree)."""
        cpu: dict[int, float] = {}
        rss = 0
        for pid in self.pids():
            usage = self._usage(pid)
            if usage is not None:
                cpu[pid], resident = usage
                rss += resident
        now = time.time()  # after the reading: a slow reading must not inflate the percentage
        out: dict[str, float] = {"rss_mb": rss / (1 << 20)} if cpu else {}
        if self._at is not None and now > self._at and cpu:
            # A process not there at the last reading was born since: all its time is new.
            used = sum(max(0.0, t - self._cpu.get(pid, 0.0)) for pid, t in cpu.items())
            out["cpu_percent"] = 100.0 * used / (now - self._at)
        self._cpu, self._at = cpu, now
        return out


def parse_nvidia_smi(text: str) -> list[dict[str, float]]:
    """The GPUs in nvidia-smi's CSV (``NVIDIA_SMI_QUERY``): per GPU its ``index`` and whichever
    of ``util_percent``, ``memory_mb``, ``memory_percent`` it reported (``[N/A]`` and
    ``[Not Supported]`` fields are left out; a line that is not a GPU is skipped)."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        try:
            index = int(parts[0])
        except ValueError:
            continue
        values: list[float | None] = []
        for p in parts[1:]:
            try:
                values.append(float(p))
            except ValueError:  # "[N/A]", "[Not Supported]"
                values.append(None)
        util, used, total = values
        gpu: dict[str, float] = {"index": index}
        if util is not None:
            gpu["util_percent"] = util
        if used is not None:
            gpu["memory_mb"] = used
            if total:
                gpu["memory_percent"] = 100.0 * used / total
        gpus.append(gpu)
    return gpus


class GpuReader:
    """Reads every NVIDIA GPU's utilisation and memory; finds its source once, at first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: str | None = None  # "nvml", "nvidia-smi" or "none", once found
        self._nvml: Any = None
        self._smi: str | None = None

    @property
    def source(self) -> str:
        """Where GPU readings come from here: 'nvml', 'nvidia-smi' or 'none'."""
        with self._lock:
            if self._source is None:
                self._source = self._find()
            return self._source

    def _find(self) -> str:
        try:
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            self._nvml = pynvml
            return "nvml"
        except Exception:  # noqa: BLE001 - not installed, or no driver: try nvidia-smi
            pass
        self._smi = shutil.which("nvidia-smi")
        return "nvidia-smi" if self._smi else "none"

    def read(self) -> list[dict[str, float]]:
        source = self.source
        if source == "nvml":
            return self._read_nvml()
        if source == "nvidia-smi":
            assert self._smi is not None
            try:
                out = subprocess.run(
                    [self._smi, *NVIDIA_SMI_QUERY],
                    capture_output=True,
                    text=True,
                    timeout=NVIDIA_SMI_TIMEOUT_S,
                    check=True,
                ).stdout
            except (OSError, subprocess.SubprocessError):
                return []
            return parse_nvidia_smi(out)
        return []

    def _read_nvml(self) -> list[dict[str, float]]:
        nvml = self._nvml
        gpus = []
        try:
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                gpu: dict[str, float] = {"index": i}
                try:
                    gpu["util_percent"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                except nvml.NVMLError:
                    pass
                try:
                    mem = nvml.nvmlDeviceGetMemoryInfo(handle)
                    gpu["memory_mb"] = mem.used / (1 << 20)
                    if mem.total:
                        gpu["memory_percent"] = 100.0 * mem.used / mem.total
                except nvml.NVMLError:
                    pass
                gpus.append(gpu)
        except Exception:  # noqa: BLE001 - a driver that went away: no GPU readings
            return []
        return gpus


def readings(tree: ProcessTree, gpus: GpuReader) -> dict[str, float]:
    """One sample: ``{name: value}`` (``cpu_percent``, ``rss_mb``, ``gpu0/util_percent``, ...);
    the sampler stores each under the ``sys/`` prefix (``tuixp.store.metric_names``)."""
    out = dict(tree.read())
    for gpu in gpus.read():
        i = int(gpu["index"])
        for field in ("util_percent", "memory_mb", "memory_percent"):
            if field in gpu:
                out[f"gpu{i}/{field}"] = gpu[field]
    return out
