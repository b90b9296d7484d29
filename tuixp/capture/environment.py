"""What a trial's world was: platform, CPU, GPUs, Python and installed packages.

Captured per trial but cheaply: what cannot change inside a process (platform, Python) is read
once; the CPU record is cached per host on disk (py-cpuinfo takes about a second); the package
list is cached on disk too and re-read only when a folder on ``sys.path`` changed (an install or
upgrade touches it).
Noise that is not a change (CPU MHz, shell mode) is never recorded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_packages: tuple[tuple[Any, ...], dict[str, str]] | None = None
_packages_fresh = False  # the next capture_packages reads the distributions, not the disk cache
RACY_SECONDS = 2.0  # a package list read this soon after a sys.path folder changed is re-read

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


def _resolved(path: str | None) -> str | None:
    return os.path.realpath(path) if path else None


@functools.lru_cache(maxsize=1)
def capture_python() -> dict[str, Any]:
    """The interpreter's identity: what it is, not the path it was started by.

    ``venv/bin/python``, ``venv/bin/python3.11`` and ``proj/../venv/bin/python`` are one
    interpreter: ``executable`` is the real file (symlinks and ``..`` resolved) and ``venv`` the
    resolved prefix of the virtual environment, so the same interpreter always gives the same
    record and another venv or another Python a different one.
    """
    prefix, base = sys.prefix, getattr(sys, "base_prefix", sys.prefix)
    return {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "executable": _resolved(sys.executable),
        "venv": _resolved(prefix) if prefix != base else None,
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


DIST_SUFFIXES = (".dist-info", ".egg-info", ".egg")


def _dist_stamps() -> tuple[Any, ...]:
    """What the package list depends on: each ``sys.path`` folder's distribution folders
    (``*.dist-info``, ``*.egg-info``, ``*.egg``) with their modification times, and each file
    on ``sys.path`` (a zip) with its own. A project folder on ``sys.path`` (the script's, which
    often holds the store and changes at every trial) counts only for the distributions in it.
    About 2 ms for a site-packages of 200 distributions."""
    stamps: list[Any] = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                found = sorted(
                    (e.name, e.stat().st_mtime_ns) for e in it if e.name.endswith(DIST_SUFFIXES)
                )
        except NotADirectoryError:
            try:
                found = [("", os.stat(entry).st_mtime_ns)]
            except OSError:
                found = []
        except OSError:
            found = []
        stamps.append((entry, found))
    return tuple((entry, tuple(found)) for entry, found in stamps)


def capture_packages() -> dict[str, str]:
    """``{name: version}`` of installed distributions, re-read when ``sys.path`` folders change.

    Reading every distribution's metadata takes ~0.1 s (200 distributions), a fifth of a
    ``tuixp run`` of a small script: the list is kept on disk (``~/.cache/tuixp``) for the
    distribution folders on ``sys.path`` as they are (``_dist_stamps``), so a new process reads
    one file; an install, an upgrade or an uninstall adds or removes one and the list is read
    again (in this process too).
    """
    global _packages, _packages_fresh
    stamps = _dist_stamps()
    with _lock:
        if _packages is not None and _packages[0] == stamps:
            return _packages[1]
        fresh = _packages_fresh
    ident = hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:24]
    path = _cache_dir() / f"packages-{ident}.json"
    newest = max((m for _, found in stamps for _, m in found), default=0)
    packages: dict[str, str] | None = None
    try:
        loaded = json.loads(path.read_text()) if not fresh else None
        # Trusted only if the folders had not changed for a while when it was read: a folder
        # changed within the same clock tick as that read could change again without its
        # modification time moving (as git's "racy" index entries).
        if (
            isinstance(loaded, dict)
            and isinstance(loaded.get("read_at"), (int, float))
            and loaded["read_at"] - newest / 1e9 > RACY_SECONDS
            and isinstance(loaded.get("packages"), dict)
        ):
            packages = loaded["packages"]
    except (OSError, ValueError):
        pass
    if packages is None:
        read_at = time.time()
        found: dict[str, str] = {}
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name:  # the first on sys.path, as import would find it
                found.setdefault(name, dist.version)
        packages = dict(sorted(found.items(), key=lambda kv: kv[0].lower()))
        _write_cache(path, {"read_at": read_at, "packages": packages})
    with _lock:
        _packages = (stamps, packages)
        _packages_fresh = False
    return packages


def _path_ident(stamps: tuple[float, ...]) -> str:
    """A name for what ``sys.path`` holds now: its folders and their modification times."""
    return hashlib.sha256(json.dumps([sys.path, stamps]).encode()).hexdigest()[:24]


def _write_cache(path: Path, value: Any) -> None:
    """Write ``value`` as JSON at ``path`` whole or not at all (a cache: failures are fine)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(value))
        os.replace(tmp, path)
    except OSError:
        pass


def clear_cache() -> None:
    """Forget what was read: the next capture reads the packages again (not from the disk)."""
    global _packages, _modules, _packages_fresh
    _packages = None
    _modules = None
    _packages_fresh = True


def capture_environment() -> dict[str, Any]:
    """The environment document of a trial: every group of ``ENV_GROUPS`` that has a capture
    (packages and git are recorded separately)."""
    return {g.name: g.capture() for g in ENV_GROUPS if g.capture is not None}


# -- the registry of environment groups --------------------------------------------------------
def _platform_summary(env: dict[str, Any]) -> list[str]:
    # daskperiment's platform section holds the device lines too.
    plat, cpu, gpus = env.get("platform") or {}, env.get("cpu") or {}, env.get("gpu") or []
    return [
        f"Platform Information: {plat.get('system')}-{plat.get('release')}-{plat.get('machine')}",
        f"Device CPU Count: {cpu.get('count')}",
        "Device GPUs: " + (", ".join(g.get("name", "?") for g in gpus) if gpus else "none"),
    ]


def _python_summary(env: dict[str, Any]) -> list[str]:
    py = env.get("python") or {}
    return [
        f"Python Implementation: {py.get('implementation')}",
        f"Python Version: {py.get('version')}",
        f"Python Virtual Environment: {py.get('venv') or 'none'}",
    ]


def _git_summary(env: dict[str, Any]) -> list[str]:
    git = env.get("git") or {}
    return [
        f"Git Repository: {git.get('repository')}",
        f"Git Active Branch: {git.get('branch')}",
        f"Git HEAD Commit: {git.get('commit')}",
        f"Git Uncommitted Changes: {'yes' if git.get('dirty') else 'no'}",
    ]


@dataclass(frozen=True)
class EnvGroup:
    """One group of a trial's environment record and everything tuixp does with it.

    Adding an environment field or group is one entry of ``ENV_GROUPS``: the capture, the change
    warning between trials (``tuixp.trial.world``), the comparison of two trials (``tuixp.diff``),
    the ``get_environment`` summary and categories, and the TUI's detail screen all read it.
    """

    name: str  # the key in the environment document
    capture: Callable[[], Any] | None = None  # reads it now; None: recorded elsewhere
    compared: tuple[str, ...] = ()  # the fields a comparison lists first, in this order
    watched: tuple[str, ...] = ()  # the fields whose change from the previous trial warns
    paths: frozenset[str] = frozenset()  # watched fields that are paths (compared resolved)
    noise: frozenset[str] = frozenset()  # fields that vary without meaning anything changed
    summary: Callable[[dict[str, Any]], list[str]] | None = None  # its get_environment() lines
    table: bool = False  # shown field by field on the TUI's detail screen
    # How a comparison reads it: "fields" (a record), "devices" (a list compared whole),
    # "versions" (``{name: version}``), and where it comes in a comparison (packages first).
    kind: str = "fields"
    diff_rank: int = 0


# In the order people read a trial's environment (the warnings and the detail screen follow it).
ENV_GROUPS: tuple[EnvGroup, ...] = (
    EnvGroup(
        "platform",
        capture_platform,
        compared=("system", "release", "version", "machine", "hostname"),
        watched=("system", "release", "machine", "hostname"),
        summary=_platform_summary,
        table=True,
        diff_rank=2,
    ),
    EnvGroup(
        "python",
        capture_python,
        compared=("implementation", "version", "executable", "venv", "conda"),
        watched=("implementation", "version", "executable", "venv"),
        paths=frozenset({"executable", "venv"}),
        summary=_python_summary,
        table=True,
        diff_rank=1,
    ),
    EnvGroup(
        "cpu",
        capture_cpu,
        compared=CPU_KEYS,
        watched=("brand_raw", "arch", "count"),
        noise=frozenset({"hz_actual", "hz_actual_friendly"}),
        table=True,
        diff_rank=3,
    ),
    EnvGroup("gpu", capture_gpus, kind="devices", diff_rank=4),
    EnvGroup(
        "git",
        compared=("repository", "branch", "commit", "dirty", "detached", "untracked", "diff"),
        watched=("repository", "branch", "commit"),
        noise=frozenset({"notes"}),
        summary=_git_summary,
        diff_rank=5,
    ),
    EnvGroup("packages", kind="versions", diff_rank=0),
)


def env_group(name: str) -> EnvGroup:
    """The registry entry called ``name`` (KeyError for a name that is not one)."""
    for g in ENV_GROUPS:
        if g.name == name:
            return g
    raise KeyError(name)


# ``get_environment(category=...)`` names: daskperiment's, in its order (its views of the packages
# and of python among them), then any group of the registry they do not name.
_PACKAGE_VIEWS = ("numpy", "scipy", "pandas")
_DASKPERIMENT_CATEGORIES = (
    "platform",
    "cpu",
    "gpu",
    "python",
    *_PACKAGE_VIEWS,
    "conda",
    "git",
    "requirements",
    "packages",
)
ENV_CATEGORIES = _DASKPERIMENT_CATEGORIES + tuple(
    g.name for g in ENV_GROUPS if g.name not in _DASKPERIMENT_CATEGORIES
)


def environment_view(env: dict[str, Any], category: str | None) -> Any:
    """daskperiment's ``get_environment``: a summary, or one category's full record."""
    if category is None:
        return [line for g in ENV_GROUPS if g.summary is not None for line in g.summary(env)]
    if category not in ENV_CATEGORIES:
        raise ValueError(
            f"Unknown environment category: {category}. Use one of " + ", ".join(ENV_CATEGORIES)
        )
    packages = env.get("packages") or {}
    if category in _PACKAGE_VIEWS:
        return {"version": packages.get(category)}
    if category == "requirements":
        return [f"{n}=={v}" for n, v in packages.items()]
    if category == "conda":
        return {"environment": (env.get("python") or {}).get("conda")}
    return env.get(category)


_modules: tuple[tuple[float, ...], dict[str, list[str]]] | None = None


def module_distributions() -> dict[str, list[str]]:
    """``{top-level import name: [distribution names]}`` of the installed distributions.

    Reading every distribution's file list takes ~0.4 s with torch installed, so the map is kept
    on disk (``~/.cache/tuixp``) for the current ``sys.path`` folders and re-read only when one of
    them changed (an install or an upgrade touches it).
    """
    global _modules
    stamps = _path_stamps()
    with _lock:
        if _modules is not None and _modules[0] == stamps:
            return _modules[1]
    path = _cache_dir() / f"modules-{_path_ident(stamps)}.json"
    found: dict[str, list[str]] | None = None
    try:
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            found = loaded
    except (OSError, ValueError):
        pass
    if found is None:
        found = {k: sorted(set(v)) for k, v in metadata.packages_distributions().items()}
        _write_cache(path, found)
    with _lock:
        _modules = (stamps, found)
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_distributions(extra_modules: Iterable[str] = ()) -> dict[str, str]:
    """``{distribution: version}`` of the distributions whose modules are imported now.

    The modules are those in ``sys.modules`` and ``extra_modules`` (dotted names are reduced to
    their top-level package). Modules that no installed distribution provides (the standard
    library, the project's own files) are left out: their code is recorded otherwise.
    """
    tops = {m.partition(".")[0] for m in list(sys.modules)}
    tops |= {m.partition(".")[0] for m in extra_modules}
    owners = module_distributions()
    installed = {_normal(name): (name, version) for name, version in capture_packages().items()}
    out: dict[str, str] = {}
    for top in tops:
        for dist in owners.get(top, ()):
            found = installed.get(_normal(dist))
            if found is not None:
                out[found[0]] = found[1]
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def changed_distributions(recorded: dict[str, str]) -> list[str]:
    """Of ``recorded`` ``{distribution: version}``, those installed now at another version or not
    at all, as ``name old -> new`` lines (empty: all are as recorded)."""
    installed = {_normal(name): version for name, version in capture_packages().items()}
    out = []
    for name, version in recorded.items():
        now = installed.get(_normal(name))
        if now != version:
            out.append(f"{name} {version} -> {now or 'not installed'}")
    return out


def code_imports(func: Any) -> frozenset[str]:
    """The modules a function's code imports (``import x``, ``from x import y``), nested
    functions included; relative imports are left out (they are the project's own code)."""
    code = getattr(func, "__code__", None)
    return _code_imports(code) if code is not None else frozenset()


@functools.lru_cache(maxsize=4096)
def _code_imports(top: Any) -> frozenset[str]:
    import dis

    found: set[str] = set()
    stack = [top]
    while stack:
        code = stack.pop()
        level = 0
        for ins in dis.get_instructions(code):
            if ins.opname == "LOAD_CONST" and isinstance(ins.argval, int):
                level = ins.argval
            elif ins.opname == "IMPORT_NAME":
                if level == 0 and isinstance(ins.argval, str):
                    found.add(ins.argval)
                level = 0
        stack.extend(c for c in code.co_consts if type(c).__name__ == "code")
    return frozenset(found)
