"""The step cache follows the packages a step can use, not every ``pip install``.

Real installs: tiny wheels built here, installed by ``pip install --target`` into a folder on the
script's ``PYTHONPATH`` (no network, no venv), between real ``tuixp run`` processes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.conftest import env_with_path
from tests.trial.test_purity import git, query

SCRIPT = """
import probe_top  # imported by the script: in the process when the steps run
import tuixp

ex = tuixp.Experiment("pkg_pj")
k = ex.parameter("k", default=2)

@ex.cached
def top(k):
    return k * len(probe_top.VERSION)

@ex.cached
def lazy(k):
    import probe_lazy  # imported inside the step only (on a worker process here)

    return k + len(probe_lazy.VERSION)

@ex.result
def total(a, b):
    return a + b

result = total(top(k), lazy(k))
"""


def build_wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of one module ``NAME.py`` holding ``VERSION``."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tuixp-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


def pip_install(target: Path, *wheels: Path) -> None:
    """``pip install --target``; an upgrade removes the old version's metadata first, as pip does
    in an environment (``--target`` itself leaves the old ``.dist-info`` beside the new one)."""
    for wheel in wheels:
        for old in target.glob(f"{wheel.name.split('-')[0]}-*.dist-info"):
            shutil.rmtree(old)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--upgrade"]
        + ["--disable-pip-version-check", "--target", str(target), *map(str, wheels)],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow
def test_an_unrelated_install_keeps_the_cache_an_upgrade_of_an_import_does_not(
    tmp_path: Path,
) -> None:
    wheels, target, repo = tmp_path / "wheels", tmp_path / "site", tmp_path / "proj"
    for d in (wheels, target, repo):
        d.mkdir()
    (repo / "train.py").write_text(textwrap.dedent(SCRIPT))
    (repo / ".gitignore").write_text("store.duckdb*\n__pycache__/\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    env = env_with_path()
    env["PYTHONPATH"] = str(target) + os.pathsep + env["PYTHONPATH"]

    def run() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "tuixp", "run", "train.py", "--store", "store.duckdb"]
            + ["--scheduler", "processes"],
            cwd=repo,
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        return result.stderr

    def statuses(trial_id: int) -> dict[str, str]:
        rows = query(repo, f"SELECT step, status FROM steps WHERE trial_id = {trial_id}")
        return dict(rows)

    pip_install(
        target, build_wheel(wheels, "probe_top", "1.0"), build_wheel(wheels, "probe_lazy", "1.0")
    )
    run()
    assert statuses(1) == {"top": "succeeded", "lazy": "succeeded", "total": "succeeded"}
    run()
    assert statuses(2) == {"top": "reused", "lazy": "reused", "total": "succeeded"}

    pip_install(target, build_wheel(wheels, "six_probe", "1.16"))  # imported by nothing
    err = run()
    assert "+ six_probe==1.16" in err  # the install is reported ...
    assert statuses(3) == {"top": "reused", "lazy": "reused", "total": "succeeded"}  # ... kept

    pip_install(target, build_wheel(wheels, "probe_lazy", "2.0"))  # what `lazy` imports
    run()
    assert statuses(4) == {"top": "reused", "lazy": "succeeded", "total": "succeeded"}

    pip_install(target, build_wheel(wheels, "probe_top", "2.0"))  # what the script imports
    run()
    assert statuses(5)["top"] == "succeeded"
    results = [r for (r,) in query(repo, "SELECT result FROM trials ORDER BY trial_id")]
    assert results == ["11"] * 5  # 2 * len("1.0") + (2 + len("1.0")), and so with "2.0"
