"""The environment of a trial as text in daskperiment 0.5.0's words (``get_environment``).

tuixp records the environment as structured documents (``Experiment.get_environment_record``
and the store's ``environments`` view); daskperiment's users read it as ``Label: value`` lines.
This module turns the first into the second: the same labels in the same order, with a value
tuixp does not record said so, and tuixp's extra facts (GPUs, the uncommitted diff) after.
"""

from __future__ import annotations

import os
import sys
from typing import Any

CATEGORIES = (
    "platform",
    "cpu",
    "python",
    "numpy",
    "scipy",
    "pandas",
    "conda",
    "git",
    "requirements",
)
NOT_RECORDED = "not recorded"

# daskperiment's cpu labels in its order, by the cpuinfo field tuixp keeps (the clock speeds,
# noise that changes between runs, are not recorded).
_CPU_LABELS = (
    ("python_version", "Python Version"),
    ("cpuinfo_version_string", "Cpuinfo Version"),
    ("vendor_id_raw", "Vendor ID"),
    ("hardware_raw", "Hardware Raw"),
    ("brand_raw", "Brand"),
    ("arch", "Arch"),
    ("bits", "Bits"),
    ("count", "Count"),
    ("arch_string_raw", "Raw Arch String"),
    ("l1_data_cache_size", "L1 Data Cache Size"),
    ("l1_instruction_cache_size", "L1 Instruction Cache Size"),
    ("l2_cache_size", "L2 Cache Size"),
    ("l2_cache_line_size", "L2 Cache Line Size"),
    ("l2_cache_associativity", "L2 Cache Associativity"),
    ("l3_cache_size", "L3 Cache Size"),
    ("stepping", "Stepping"),
    ("model", "Model"),
    ("family", "Family"),
    ("processor_type", "Processor Type"),
    ("extended_model", "Extended Model"),
    ("extended_family", "Extended Family"),
    ("flags", "Flags"),
)


def shell_mode() -> str:
    """How this process runs Python, in daskperiment's words."""
    ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = type(ipython()).__name__ if ipython is not None and ipython() is not None else None
    if shell == "ZMQInteractiveShell":
        return "Jupyter Notebook"
    if shell == "TerminalInteractiveShell":
        return "IPython Terminal"
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:
        return "Interactive Terminal"
    under_pytest = os.path.basename(path) == "pytest" or path.endswith("pytest/__main__.py")
    return "Test" if under_pytest else "File"


def _platform(env: dict[str, Any]) -> list[str]:
    plat, cpu = env.get("platform") or {}, env.get("cpu") or {}
    name = plat.get("description") or "-".join(  # description: a trial imported from daskperiment
        str(plat[k]) for k in ("system", "release", "machine") if plat.get(k)
    )
    return [
        f"Platform Information: {name or NOT_RECORDED}",
        f"Device CPU Count: {cpu.get('count')}",
    ]


def _venv(py: dict[str, Any]) -> str:
    venv = py.get("venv")
    return f"Python venv Name: {os.path.basename(str(venv))}" if venv else "Python venv: False"


def _python(env: dict[str, Any], shell: str | None) -> list[str]:
    py = env.get("python") or {}
    return [
        f"Python Implementation: {py.get('implementation')}",
        f"Python Version: {py.get('version')}",
        f"Python Shell Mode: {shell or NOT_RECORDED}",
        _venv(py),
        f"tuixp Version: {(env.get('packages') or {}).get('tuixp', NOT_RECORDED)}",
    ]


def _git(env: dict[str, Any]) -> list[str]:
    git = env.get("git") or {}
    if not git.get("repository"):
        return [
            "Git Repository: Not Git Controlled",
            "Git Active Branch: Not Git Controlled",
            "Git HEAD Commit: Not Git Controlled",
        ]
    branch = "DETACHED" if git.get("detached") else git.get("branch")
    commit = git.get("commit") or "no commit yet"
    dirty = " (DIRTY)" if git.get("dirty") else ""
    return [
        f"Git Repository: {git['repository']}",
        f"Git Active Branch: {branch}",
        f"Git HEAD Commit: {commit}{dirty}",
    ]


def summary(env: dict[str, Any], shell: str | None = None) -> str:
    """daskperiment's ``get_environment()``: platform, python and git lines, then tuixp's."""
    gpus = env.get("gpu") or []
    extras = ["Device GPUs: " + (", ".join(str(g.get("name", "?")) for g in gpus) or "none")]
    return "\n".join(_platform(env) + _python(env, shell) + _git(env) + extras)


def category_text(env: dict[str, Any], category: str, shell: str | None = None) -> str:
    """daskperiment's ``get_environment(category=...)`` text for one category."""
    packages: dict[str, str] = env.get("packages") or {}
    py = env.get("python") or {}
    if category == "platform":
        return "\n".join(_platform(env))
    if category == "cpu":
        cpu = env.get("cpu") or {}
        lines = []
        for key, label in _CPU_LABELS:
            if key in cpu:
                value = cpu[key]
                lines.append(
                    f"{label}: {','.join(map(str, value)) if isinstance(value, list) else value}"
                )
        return "\n".join(lines)
    if category == "python":
        venv = py.get("venv")
        return "\n".join(
            [
                f"Python Implementation: {py.get('implementation')}",
                f"Python Version: {py.get('version')}",
                f"Python Shell Mode: {shell or NOT_RECORDED}",
                f"Python Prefix: {venv or NOT_RECORDED}",
                f"Python Executable: {py.get('executable')}",
                f"Python venv Flag: {bool(venv)}",
                f"Python venv Name: {os.path.basename(str(venv)) if venv else ''}",
                f"tuixp Version: {packages.get('tuixp', NOT_RECORDED)}",
            ]
        )
    if category in ("numpy", "scipy", "pandas"):
        version = packages.get(category)
        label = {"numpy": "NumPy", "scipy": "SciPy", "pandas": "pandas"}[category]
        if version is None:
            return f"{label} is not installed"
        return f"{label} Version: {version}"
    if category == "conda":
        conda = py.get("conda")
        return f"conda environment: {conda}" if conda else "conda is not installed"
    if category == "git":
        git = env.get("git") or {}
        lines = _git(env) + [f"Git Dirty Flag: {bool(git.get('dirty'))}"]  # False outside git
        if git.get("repository"):
            if git.get("diff"):
                lines.append("Git Uncommitted Diff:\n" + str(git["diff"]).rstrip("\n"))
        return "\n".join(lines)
    if category == "requirements":
        return "\n".join(f"{n}=={v}" for n, v in packages.items())
    raise ValueError(f"Category must be either {', '.join(CATEGORIES)}, given: {category}")
