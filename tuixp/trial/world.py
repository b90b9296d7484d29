"""The world a trial runs in, and what changed in it since the previous trial.

``capture_world`` reads the code, script, environment, packages and git state as they are now;
``texts_and_refs`` turns them into the journal events of texts not yet journaled and the hashes
a trial row refers to. ``StateFile`` detects what changed since the previous trial of an
experiment, in any process: the last trial's code and environment of each experiment are kept in a small state file beside
the store (``<store>.state/<experiment>.json``), read again only when another process rewrote
it, so the check costs a ``stat`` a trial and still sees changes made by other processes.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuixp.capture.code import script_source
from tuixp.capture.environment import capture_environment, capture_packages
from tuixp.capture.git import capture_git
from tuixp.capture.hashing import canonical_json, text_hash
from tuixp.store import events as journal_events

if TYPE_CHECKING:
    from tuixp.experiment import Experiment

from tuixp.capture.environment import ENV_GROUPS, env_group
from tuixp.store.paths import StorePaths

logger = logging.getLogger("tuixp")

# Environment fields compared between trials (the registry's watched fields of the groups the
# environment document holds); anything else in the record is informative only.
ENV_FIELDS = {g.name: g.watched for g in ENV_GROUPS if g.capture is not None and g.watched}
_GIT_FIELDS = env_group("git").watched

# Fields that are paths: compared resolved, so records made before tuixp resolved them (the path
# as typed: ``venv/bin/python`` or ``venv/bin/python3.11``) compare equal to the resolved ones.
_PATH_FIELDS = {(g.name, f) for g in ENV_GROUPS for f in g.paths}


def _comparable(category: str, name: str, value: Any) -> Any:
    if (category, name) in _PATH_FIELDS and isinstance(value, str) and value:
        return os.path.realpath(value)
    return value


def unified(old: str, new: str, name: str, n: int = 2, limit: int = 60) -> str:
    lines = list(
        difflib.unified_diff(
            old.splitlines(),
            new.splitlines(),
            f"{name} (previous)",
            f"{name} (current)",
            n=n,
            lineterm="",
        )
    )
    if len(lines) > limit:
        lines = lines[:limit] + [f"... {len(lines) - limit} more lines"]
    return "\n".join(lines)


def package_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new), key=str.lower):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"+ {name}=={b}")
        elif b is None:
            out.append(f"- {name}=={a}")
        else:
            out.append(f"~ {name} {a} -> {b}")
    return out


class StateFile:
    """The last trial's code and environment of one experiment, shared by all processes."""

    def __init__(self, store_path: Path, experiment: str) -> None:
        self.path = StorePaths(store_path).state / f"{experiment}.json"
        self._stamp: tuple[int, int] | None = None
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _stamp_now(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
            return (st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    def read(self) -> dict[str, Any]:
        stamp = self._stamp_now()
        if stamp != self._stamp:
            try:
                self._data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._data = {}
            self._stamp = stamp
        return self._data

    def write(self, data: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)
            self._data = data
            self._stamp = self._stamp_now()
        except OSError as exc:
            logger.debug("could not write %s: %s", self.path, exc)

    def compare_and_update(self, world: dict[str, Any]) -> list[dict[str, str]]:
        """The changes from the recorded state to ``world``; logs each; records ``world``."""
        with self._lock:
            prev = self.read()
            changes: list[dict[str, str]] = []
            if prev:
                changes = compare(prev, world)
            for c in changes:
                logger.warning("%s: %s\n%s", c["message"], c["name"], c["diff"])
            state = {
                "code": world["code"],
                "environment": world["environment"],
                "packages": world["packages"],
                "git": {
                    k: world["git"].get(k) for k in ("repository", "branch", "commit", "dirty")
                },
                "script": world.get("script_hash"),
                "data": world.get("data", {}),
            }
            if state != {k: prev.get(k) for k in state}:
                self.write(state)
            return changes


def compare(prev: dict[str, Any], world: dict[str, Any]) -> list[dict[str, str]]:
    changes: list[dict[str, str]] = []
    old_code: dict[str, str] = prev.get("code", {})
    for step, source in world["code"].items():
        before = old_code.get(step)
        if before is not None and before != source:
            changes.append(
                {
                    "kind": "code",
                    "name": step,
                    "message": "Code context has been changed",
                    "diff": unified(before, source, step),
                }
            )
    old_data: dict[str, str] = prev.get("data") or {}
    for path, digest in (world.get("data") or {}).items():
        before = old_data.get(path)
        if before is not None and before != digest:
            changes.append(
                {
                    "kind": "data",
                    "name": path,
                    "message": "Data input has been changed",
                    "diff": f"~ content hash: {before} -> {digest}",
                }
            )
    old_env = prev.get("environment", {})
    for category, fields in ENV_FIELDS.items():
        a = old_env.get(category) or {}
        b = world["environment"].get(category) or {}
        lines = [
            f"~ {f}: {a.get(f)} -> {b.get(f)}"
            for f in fields
            if _comparable(category, f, a.get(f)) != _comparable(category, f, b.get(f))
        ]
        if lines:
            changes.append(
                {
                    "kind": "environment",
                    "name": category,
                    "message": "Environment information has been changed",
                    "diff": "\n".join(lines),
                }
            )
    if "packages" in prev:
        lines = package_changes(prev["packages"], world["packages"])
        if lines:
            shown = lines[:30] + ([f"... {len(lines) - 30} more"] if len(lines) > 30 else [])
            changes.append(
                {
                    "kind": "environment",
                    "name": "packages",
                    "message": "Environment information has been changed",
                    "diff": "\n".join(shown),
                }
            )
    old_git = prev.get("git") or {}
    new_git = world["git"]
    git_lines = [
        f"~ {f}: {old_git.get(f)} -> {new_git.get(f)}"
        for f in _GIT_FIELDS
        if old_git.get(f) != new_git.get(f)
    ]
    if git_lines:
        changes.append(
            {
                "kind": "environment",
                "name": "git",
                "message": "Environment information has been changed",
                "diff": "\n".join(git_lines),
            }
        )
    return changes


def capture_world(ex: Experiment) -> dict[str, Any]:
    """Code, environment, packages and git state as they are now."""
    code = {name: s.source for name, s in ex._steps.items()}
    script_text = script_source(ex.script)
    start = os.path.dirname(ex.script) if ex.script else os.getcwd()
    return {
        "code": code,
        "unreadable": [n for n, s in ex._steps.items() if not s.source_readable],
        "script_text": script_text,
        "script_hash": text_hash(script_text) if script_text else None,
        "environment": capture_environment(),
        "packages": capture_packages(),
        "git": capture_git(start or "."),
    }


def texts_and_refs(
    ex: Experiment, world: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Journal events for texts not yet journaled, and the hashes a trial row refers to."""
    store = ex.store
    blobs: dict[str, str] = {}
    code_rows = []
    for i, (name, source) in enumerate(world["code"].items()):
        h = text_hash(source)
        blobs[h] = source
        code_rows.append({"ord": i, "step": name, "source_hash": h})
    if world["script_text"]:
        code_rows.append(
            {"ord": len(code_rows), "step": "<script>", "source_hash": world["script_hash"]}
        )
        blobs[world["script_hash"]] = world["script_text"]
    code_hash = text_hash(canonical_json(code_rows))
    env_text = canonical_json(world["environment"])
    env_hash = text_hash(env_text)
    blobs[env_hash] = env_text
    git_doc = dict(world["git"])
    git_text = canonical_json(git_doc)
    git_hash = text_hash(git_text)
    blobs[git_hash] = git_text
    packages_hash = text_hash(canonical_json(world["packages"]))
    events = store.blob_events(blobs)
    marks = store.blob_events({f"code_set:{code_hash}": "", f"package_set:{packages_hash}": ""})
    for m in marks:
        kind, h = m["hash"].split(":", 1)
        if kind == "code_set":
            events.append(journal_events.code_set(h, code_rows))
        else:
            events.append(journal_events.package_set(h, world["packages"]))
    if not ex._announced:
        ex._announced = True
        events.append(journal_events.experiment(ex.id, time.time(), ex.script, goal=ex.goal))
    refs = {
        "code_hash": code_hash,
        "environment_hash": env_hash,
        "packages_hash": packages_hash,
        "git_hash": git_hash,
        "git_commit": git_doc.get("commit"),
        "git_branch": git_doc.get("branch"),
        "git_dirty": bool(git_doc.get("dirty")),
    }
    return events, refs


class CodeWarnedFilter(logging.Filter):
    """Drops the compute-time warning of a code change already warned, with the same diff,
    when the step was redefined in this process (a notebook user saw each one twice)."""

    def __init__(self, warned: dict[str, str]) -> None:
        super().__init__()
        self.warned = dict(warned)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 3
            and args[0] == "Code context has been changed"
        ):
            return self.warned.get(str(args[1])) != args[2]
        return True

    def __enter__(self) -> None:
        if self.warned:
            logger.addFilter(self)

    def __exit__(self, *exc: Any) -> None:
        logger.removeFilter(self)
