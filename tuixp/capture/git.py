"""The git state of a trial through pygit2: repository, branch, commit, dirty flag, the diff.

Each case records what it can and says what it could not: not a repository, a repository with
no commits, a detached HEAD, untracked files.
"""

from __future__ import annotations

import os
import time
from typing import Any

_STATUS_CACHE_S = 1.0
_cache: dict[str, tuple[float, tuple[Any, ...], dict[str, Any]]] = {}
MAX_DIFF_BYTES = 2_000_000


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def capture_git(start: str) -> dict[str, Any]:
    """The git record for the repository holding ``start`` (a folder), or why there is none."""
    try:
        import pygit2
    except ImportError:  # pragma: no cover - a declared dependency
        return _none("pygit2 is not installed")
    found = pygit2.discover_repository(start)
    if found is None:
        return _none(f"not a git repository: {start}")
    gitdir = str(found)
    key = (
        _mtime(os.path.join(gitdir, "HEAD")),
        _mtime(os.path.join(gitdir, "index")),
        _mtime(os.path.join(gitdir, "refs", "heads")),
        _mtime(os.path.join(gitdir, "packed-refs")),
    )
    hit = _cache.get(gitdir)
    now = time.monotonic()
    if hit is not None and hit[1] == key and now - hit[0] < _STATUS_CACHE_S:
        return hit[2]
    record = _read(pygit2, gitdir)
    _cache[gitdir] = (now, key, record)
    return record


def _none(why: str) -> dict[str, Any]:
    return {
        "repository": None,
        "branch": None,
        "detached": False,
        "commit": None,
        "dirty": False,
        "untracked": [],
        "diff": "",
        "notes": [why],
    }


def clear_cache() -> None:
    _cache.clear()


def _read(pygit2: Any, gitdir: str) -> dict[str, Any]:
    repo = pygit2.Repository(gitdir)
    workdir = repo.workdir.rstrip("/") if repo.workdir else None
    record: dict[str, Any] = {
        "repository": workdir or gitdir,
        "branch": None,
        "detached": False,
        "commit": None,
        "dirty": False,
        "untracked": [],
        "diff": "",
        "notes": [],
    }
    if repo.head_is_unborn:
        record["notes"].append("the repository has no commits yet")
        try:
            record["branch"] = repo.references["HEAD"].target.removeprefix("refs/heads/")
        except Exception:  # noqa: BLE001
            pass
    else:
        record["commit"] = str(repo.head.target)
        if repo.head_is_detached:
            record["detached"] = True
            record["notes"].append("HEAD is detached")
        else:
            record["branch"] = repo.head.shorthand
    try:
        status = repo.status()
    except Exception as exc:  # noqa: BLE001
        record["notes"].append(f"could not read the working tree status: {exc}")
        return record
    untracked = sorted(p for p, f in status.items() if f & pygit2.GIT_STATUS_WT_NEW)
    changed = [
        p for p, f in status.items() if not f & pygit2.GIT_STATUS_IGNORED and p not in untracked
    ]
    record["untracked"] = untracked
    record["dirty"] = bool(changed)
    if changed:
        try:
            if repo.head_is_unborn:
                diff = repo.index.diff_to_workdir()
            else:
                diff = repo.head.peel(pygit2.Tree).diff_to_workdir()
            patch = diff.patch or ""
        except Exception as exc:  # noqa: BLE001
            patch = ""
            record["notes"].append(f"could not compute the uncommitted diff: {exc}")
        if len(patch) > MAX_DIFF_BYTES:
            record["notes"].append(f"uncommitted diff cut at {MAX_DIFF_BYTES} bytes")
            patch = patch[:MAX_DIFF_BYTES]
        record["diff"] = patch
    if untracked:
        record["notes"].append(f"{len(untracked)} untracked file(s), not in the diff")
    return record
