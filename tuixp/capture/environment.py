"""What a trial's world was: platform, CPU, GPUs, Python and installed packages.

Captured per trial but cheaply: what cannot change inside a process (platform, Python) is read
once; the CPU record is cached per host on disk (py-cpuinfo takes about a second); the package
list is re-read only when a folder on ``sys.path`` changed (an install or upgrade touches it).
Noise that is not a change (CPU MHz, shell mode) is never recorded.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_packages: tuple[tuple[float, ...], dict[str, str]] | None = None

CPU_KEYS = (
    "brand_raw",
    "arch",
    "bits",
    "count",
    "vendor_id_raw",
    "family",
    "model",
    "stepping",
    "l2_cache_size",
    "l3_cache_size",
    "flags",
)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tuixp"


@functools.lru_cache(maxsize=1)
def capture_platform() -> dict[str, Any]:
    return {
        "system": platform.system(),
        "release": platform.release(),
        "version": platform.version(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
    }


@functools.lru_cache(maxsize=1)
def capture_python() -> dict[str, Any]:
    prefix, base = sys.prefix, getattr(sys, "base_prefix", sys.prefix)
    return {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "executable": sys.executable,
        "venv": prefix if prefix != base else None,
        "conda": os.environ.get("CONDA_DEFAULT_ENV"),
    }


@functools.lru_cache(maxsize=1)
def capture_cpu() -> dict[str, Any]:
    """The CPU record, cached per host in ``~/.cache/tuixp`` (an uncached read takes ~1 s)."""
    path = _cache_dir() / f"cpuinfo-{socket.gethostname()}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    try:
        import cpuinfo

        info = cpuinfo.get_cpu_info()
        record = {k: info.get(k) for k in CPU_KEYS}
    except Exception as exc:  # noqa: BLE001 - record what we can
        record = {"count": os.cpu_count(), "note": f"py-cpuinfo failed: {exc}"}
    record["count"] = record.get("count") or os.cpu_count()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    except OSError:
        pass
    return record


@functools.lru_cache(maxsize=1)
def capture_gpus() -> list[dict[str, Any]]:
    """GPUs seen by ``nvidia-smi`` (name, memory, driver); an empty list when there are none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return gpus


def _path_stamps() -> tuple[float, ...]:
    stamps = []
    for entry in sys.path:
        try:
            stamps.append(os.stat(entry or ".").st_mtime_ns)
        except OSError:
            stamps.append(0)
    return tuple(stamps)


def capture_packages() -> dict[str, str]:
    """``{name: version}`` of installed distributions, re-read when ``sys.path`` folders change."""
    global _packages
    stamps = _path_stamps()
    with _lock:
        if _packages is not None and _packages[0] == stamps:
            return _packages[1]
        found: dict[str, str] = {}
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name:
                found[name] = dist.version
        packages = dict(sorted(found.items(), key=lambda kv: kv[0].lower()))
        _packages = (stamps, packages)
        return packages


def clear_cache() -> None:
    global _packages
    _packages = None


def capture_environment() -> dict[str, Any]:
    """The environment document of a trial (packages and git are recorded separately)."""
    return {
        "platform": capture_platform(),
        "cpu": capture_cpu(),
        "gpu": capture_gpus(),
        "python": capture_python(),
    }
