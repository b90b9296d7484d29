"""Re-run only what changed: data inputs and a step cache across trials.

A cached step (``@ex.cached`` or ``@ex.persist(cache=True)``) has a *cache key* computed before
the graph is submitted, from what determines its output: the hash of its source, the cache keys
of the steps it reads, the content hashes of its parameter and literal inputs and of the data
files it reads, and the Python version. A succeeded trial leaves, per cached step, an entry
``<store>.cache/<experiment>/<key>.json`` pointing at the persisted output and naming the
versions of the distributions the step could depend on: those with a module imported in the
process when the trial ran, or imported by the code of a step of its graph. A later trial with
the same key loads it instead of computing the step, so the step and everything above it never
reach a scheduler, if every one of those distributions is still installed at the same version:
installing or upgrading an unrelated package keeps the cache, upgrading one the step imports does
not. Entries of steps flagged impure are never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuixp.capture.hashing import content_hash
from tuixp.store.paths import StorePaths

logger = logging.getLogger("tuixp")

_file_hashes: dict[tuple[str, int, int], str] = {}
_file_lock = threading.Lock()


def file_hash(path: Path) -> str:
    """Content hash of a file; re-read only when its size or mtime changed."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _file_lock:
        found = _file_hashes.get(key)
    if found is not None:
        return found
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = h.hexdigest()[:32]
    with _file_lock:
        _file_hashes[key] = digest
    return digest


def data_hash(path: str | os.PathLike[str]) -> str:
    """Content hash of a file or of a folder (its files' relative paths and contents)."""
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(str(f.relative_to(p)).encode() + b"\0" + file_hash(f).encode() + b"\0")
        return "dir:" + h.hexdigest()[:32]
    if p.is_file():
        return file_hash(p)
    raise FileNotFoundError(f"Data input not found: {p}")


class DataFile(str):
    """A file or folder a trial reads: a ``str`` (its absolute path) that tuixp knows to hash.

    Passed to a step, it arrives as the path; its content hash is recorded with each trial, a
    change is reported like a code change, and it is part of the cache key of the steps reading it.
    """

    def __new__(cls, path: str | os.PathLike[str]) -> "DataFile":
        return super().__new__(cls, str(Path(path).expanduser().resolve()))

    def __repr__(self) -> str:
        return f"DataFile({str(self)!r})"


def token(value: Any) -> str:
    """The content hash of an input, the same in every process; a Dask token (at worst a cache
    miss in another process) for a value with no stable content hash."""
    digest = content_hash(value)
    if digest is not None:
        return digest
    from dask.base import tokenize

    return "dask:" + tokenize(value, ensure_deterministic=False)


def cache_key(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts, default=repr, sort_keys=True).encode()).hexdigest()[:40]


@dataclass
class CacheEntry:
    step: str
    trial_id: int
    object_hash: str
    format: str
    output_hash: str | None
    # {distribution: version} the step could depend on (see the module); None in entries
    # written before tuixp recorded them, which are never reused.
    packages: dict[str, str] | None = None


class StepCache:
    """The cache index of one experiment: one small JSON file per cache key."""

    def __init__(self, store_path: Path, experiment: str) -> None:
        self.root = StorePaths(store_path).cache / experiment
        self.impure_path = self.root / "_impure.json"

    def get(self, key: str) -> CacheEntry | None:
        try:
            data = json.loads((self.root / f"{key}.json").read_text())
            return CacheEntry(**data)
        except (OSError, ValueError, TypeError):
            return None

    def put(self, key: str, entry: CacheEntry) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(entry.__dict__))
            os.replace(tmp, self.root / f"{key}.json")
        except OSError as exc:
            logger.warning("Could not write the step cache entry of %s: %s", entry.step, exc)

    def impure_steps(self) -> set[str]:
        try:
            return set(json.loads(self.impure_path.read_text()))
        except (OSError, ValueError):
            return set()

    def mark_impure(self, step: str) -> None:
        steps = self.impure_steps() | {step}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f"._impure.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(sorted(steps)))
            os.replace(tmp, self.impure_path)
        except OSError as exc:
            logger.warning("Could not record that %s is impure: %s", step, exc)

    def entries(self) -> list[CacheEntry]:
        out = []
        if self.root.is_dir():
            for f in self.root.glob("*.json"):
                if f.name.startswith("_"):
                    continue
                e = self.get(f.stem)
                if e is not None:
                    out.append(e)
        return out


def all_cache_objects(store_path: Path) -> set[str]:
    """Object hashes referenced by any experiment's cache entries."""
    root = StorePaths(store_path).cache
    found = set()
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir():
                found |= {e.object_hash for e in StepCache(store_path, d.name).entries()}
    return found


def forget_trials(store_path: Path, experiment: str, trial_ids: set[int]) -> int:
    """Drop the cache entries that point at these trials' outputs (``tuixp rm --purge``): a
    purged trial's output is never reused. How many entries went."""
    cache = StepCache(store_path, experiment)
    removed = 0
    if not cache.root.is_dir():
        return 0
    for f in cache.root.glob("*.json"):
        if f.name.startswith("_"):
            continue
        entry = cache.get(f.stem)
        if entry is not None and entry.trial_id in trial_ids:
            try:
                f.unlink()
            except OSError:
                continue
            removed += 1
    return removed


def garbage_collect(
    store_path: Path, referenced: set[str], dry_run: bool = False, min_age_s: float = 600.0
) -> tuple[int, int]:
    """Delete stored objects that no trial and no cache entry references; (files, bytes) freed.

    Files written or re-used in the last ``min_age_s`` seconds are spared: a trial running in
    another process may have stored one whose record has not reached the database yet.
    """
    import time

    objects = StorePaths(store_path).objects
    cutoff = time.time() - min_age_s
    keep = referenced | all_cache_objects(store_path)
    files = freed = 0
    if not objects.is_dir():
        return 0, 0
    for f in objects.rglob("*"):
        if not f.is_file():
            continue
        digest = f.name.split(".", 1)[0]
        if digest in keep or f.stat().st_mtime > cutoff:
            continue
        files += 1
        freed += f.stat().st_size
        if not dry_run:
            f.unlink()
    return files, freed
