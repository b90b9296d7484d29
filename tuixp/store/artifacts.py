"""Artifacts: files and folders a step logs (checkpoints, plots, predictions), kept beside the
store in ``NAME.artifacts/``, content-addressed by SHA-256.

=============================  ===============================================================
``blobs/<h[:2]>/<h>``          one file's bytes, stored once however many trials log it
                               (read-only; a folder's manifest is a blob too)
``dirs/<h>/``                  a folder artifact laid out again from its manifest, made on
                               the first ``get_artifact`` (hard links to the blobs, else copies)
=============================  ===============================================================

A file artifact's hash is its bytes' hash; a folder's is its manifest's: the JSON list of its
regular files ``[[relative path, hash, size], ...]`` sorted by path. Each trial's artifacts are
rows of ``artifact_record`` (name, kind ``file`` or ``dir``, hash, size, file count), journaled
like every other record; a blob no row references is deleted by ``tuixp gc`` and by
``remove_trial_artifacts`` (``tuixp rm --purge``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuixp.errors import StoreError, TuixpError

CHUNK = 1 << 20
NAME_MAX = 200
PREVIEW_BYTES = 64 * 1024  # the most of an artifact a preview reads
PREVIEW_LINES = 40


class ArtifactError(TuixpError):
    """An artifact that cannot be logged or found (bad path, bad name, unknown name)."""


@dataclass(frozen=True)
class Artifact:
    """What a trial records of one logged artifact."""

    name: str
    kind: str  # "file" or "dir"
    hash: str
    size: int  # bytes: the file's, or the sum of the folder's files
    files: int  # 1 for a file; the folder's regular files


def check_name(name: str) -> str:
    """An artifact's name: what ``tuixp artifact -o`` writes it as, so one safe file name."""
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise ArtifactError(f"An artifact name must be a non-empty file name, not {name!r}")
    if len(name) > NAME_MAX or "/" in name or "\\" in name or "\x00" in name:
        raise ArtifactError(
            f"An artifact name must be one file name (no '/' or '\\\\', at most {NAME_MAX} "
            f"characters), not {name[:60]!r}"
        )
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ArtifactError(f"An artifact name has no control characters: {name!r}")
    return name


def _hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class ArtifactStore:
    """The ``NAME.artifacts/`` folder of a store (``StorePaths.artifacts``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob(self, digest: str) -> Path:
        return self.root / "blobs" / digest[:2] / digest

    def _put_file(self, src: Path) -> tuple[str, int]:
        """Store one file's bytes once; its hash and size. Copied to a temporary file first and
        hashed from the copy, so a file changed while it is read is stored as it was copied."""
        tmp_dir = self.root / "blobs"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=".in-")
        try:
            h = hashlib.sha256()
            size = 0
            with open(src, "rb") as f, os.fdopen(fd, "wb") as out:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            digest = h.hexdigest()
            target = self.blob(digest)
            if target.exists():
                os.utime(target)  # fresh again: `tuixp gc` spares recent files
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return digest, size

    def _put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.blob(digest)
        if target.exists():
            os.utime(target)
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".in-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return digest

    def put(self, path: str | os.PathLike[str], name: str | None = None) -> Artifact:
        """Store the file or folder at ``path`` under ``name`` (default: its base name)."""
        src = Path(path).expanduser()
        if name is None:
            name = src.resolve().name if src.exists() else src.name
        check_name(name)
        if src.is_file():
            digest, size = self._put_file(src)
            return Artifact(name, "file", digest, size, 1)
        if src.is_dir():
            entries: list[tuple[str, str, int]] = []
            for f in sorted(src.rglob("*")):
                if f.is_file():  # symlinks to files are followed; other entries are skipped
                    digest, size = self._put_file(f)
                    entries.append((f.relative_to(src).as_posix(), digest, size))
            manifest = json.dumps({"files": entries}, separators=(",", ":")).encode()
            digest = self._put_bytes(manifest)
            return Artifact(name, "dir", digest, sum(e[2] for e in entries), len(entries))
        what = "does not exist" if not src.exists() else "is not a file or a folder"
        raise ArtifactError(f"Cannot log artifact {name!r}: {src} {what}")

    def _checked_blob(self, digest: str, what: str) -> Path:
        path = self.blob(digest)
        try:
            found, _ = _hash_file(path)
        except OSError as exc:
            raise StoreError(
                f"The artifact {what} cannot be read ({exc.strerror}): {path} was moved or "
                "deleted. The trial's record is intact; only these bytes are gone."
            ) from exc
        if found != digest:
            raise StoreError(
                f"The artifact {what} is damaged ({path} no longer matches its hash). The "
                "trial's record is intact."
            )
        return path

    def manifest(self, digest: str) -> list[tuple[str, str, int]]:
        """A folder artifact's files: (relative path, hash, size)."""
        path = self._checked_blob(digest, "folder's manifest")
        return [(p, h, int(s)) for p, h, s in json.loads(path.read_bytes())["files"]]

    def local_path(self, art: Artifact) -> Path:
        """A local path to the artifact's bytes, checked against its hash: the blob of a file,
        the laid-out folder of a folder. Treat it as read-only."""
        if art.kind == "file":
            return self._checked_blob(art.hash, repr(art.name))
        target = self.root / "dirs" / art.hash
        files = self.manifest(art.hash)
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".dir-"))
        try:
            for rel, digest, _ in files:
                blob = self._checked_blob(digest, f"{art.name}/{rel}")
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(blob, dest)
                except OSError:
                    shutil.copyfile(blob, dest)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.is_dir():  # not another process that laid it out first
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    def copy_to(self, art: Artifact, dest: Path) -> Path:
        """Copy the artifact to ``dest`` (into it when it is a folder); the path written.
        An existing file or folder there is never overwritten."""
        target = dest / art.name if dest.is_dir() else dest
        if target.exists() or target.is_symlink():
            raise ArtifactError(f"{target} exists: not overwritten")
        if not target.parent.is_dir():
            raise ArtifactError(f"{target.parent} is not a folder")
        src = self.local_path(art)
        if art.kind == "file":
            shutil.copyfile(src, target)
        else:
            shutil.copytree(src, target, copy_function=shutil.copyfile)
        return target

    def blobs_of(self, kind: str, digest: str) -> set[str]:
        """The blobs an artifact needs (a folder's manifest and files; a missing or damaged
        manifest: the manifest alone, so nothing it may name is deleted by mistake)."""
        if kind != "dir":
            return {digest}
        try:
            return {digest, *(h for _, h, _ in self.manifest(digest))}
        except (StoreError, ValueError, KeyError, TypeError):
            return {digest}

    def garbage_collect(
        self, referenced: set[tuple[str, str]], dry_run: bool = False, min_age_s: float = 600.0
    ) -> tuple[int, int]:
        """Delete the blobs and laid-out folders no ``(kind, hash)`` in ``referenced`` needs;
        files written in the last ``min_age_s`` seconds are spared (a running trial's artifact
        may not have reached the database yet). (files, bytes) freed."""
        if not self.root.is_dir():
            return 0, 0
        keep: set[str] = set()
        for kind, digest in referenced:
            keep |= self.blobs_of(kind, digest)
        cutoff = time.time() - min_age_s
        files = freed = 0
        for f in (self.root / "blobs").glob("*/*"):
            try:
                st = f.stat()
            except OSError:
                continue
            if f.name in keep or st.st_mtime > cutoff:
                continue
            files += 1
            freed += st.st_size
            if not dry_run:
                f.unlink(missing_ok=True)
        dirs = self.root / "dirs"
        for d in dirs.glob("*") if dirs.is_dir() else ():
            if d.name in keep or d.stat().st_mtime > cutoff:
                continue
            if not dry_run:
                shutil.rmtree(d, ignore_errors=True)  # hard links: the blobs' bytes are counted
        return files, freed


# -- the records ------------------------------------------------------------------------------

_COLUMNS = "name, kind, hash, size, files"


def listed(con: Any, experiment: str, trial_id: int) -> list[Artifact]:
    """The artifacts of a trial, by name."""
    rows = con.execute(
        f"SELECT {_COLUMNS} FROM artifact_record WHERE experiment = ? AND trial_id = ? "
        "ORDER BY name",
        [experiment, trial_id],
    ).fetchall()
    return [Artifact(*r) for r in rows]


def find(con: Any, experiment: str, trial_id: int, name: str) -> Artifact:
    """Artifact ``name`` of a trial; ``ArtifactError`` naming the trial's artifacts if none."""
    for art in listed(con, experiment, trial_id):
        if art.name == name:
            return art
    names = ", ".join(a.name for a in listed(con, experiment, trial_id)) or "none"
    raise ArtifactError(
        f"Unable to find artifact {name!r} in trial {trial_id} of {experiment} (its artifacts: "
        f"{names})"
    )


def referenced(con: Any) -> set[tuple[str, str]]:
    """Every ``(kind, hash)`` a trial's artifact refers to."""
    rows = con.execute("SELECT DISTINCT kind, hash FROM artifact_record").fetchall()
    return {(k, h) for k, h in rows}


def of_trials(con: Any, uuids: list[str]) -> set[tuple[str, str]]:
    """The ``(kind, hash)`` of every artifact these trials (by uuid) logged."""
    rows = con.execute(
        "SELECT DISTINCT kind, hash FROM artifact_record WHERE list_contains(?, trial_uuid)",
        [uuids],
    ).fetchall()
    return {(r[0], r[1]) for r in rows}


def free_unreferenced(con: Any, store_path: Path, gone: set[tuple[str, str]]) -> tuple[int, int]:
    """After the rows of ``gone`` artifacts were removed (``tuixp rm --purge``): delete their
    blobs and laid-out folders that no artifact still recorded needs; (files, bytes) freed."""
    from tuixp.store.paths import StorePaths

    store = ArtifactStore(StorePaths(store_path).artifacts)
    keep: set[str] = set()
    for kind, digest in referenced(con):
        keep |= store.blobs_of(kind, digest)
    needed: set[str] = set()
    for kind, digest in gone:
        with contextlib.suppress(OSError, ValueError):
            needed |= store.blobs_of(kind, digest)
    files = freed = 0
    for digest in sorted(needed - keep):
        blob = store.blob(digest)
        try:
            size = blob.stat().st_size
            blob.unlink()
        except OSError:
            continue
        files += 1
        freed += size
    still = {digest for _, digest in referenced(con)}
    for kind, digest in gone:
        if kind == "dir" and digest not in still:
            shutil.rmtree(store.root / "dirs" / digest, ignore_errors=True)
    return files, freed


def remove_trial_artifacts(
    con: Any, store_path: Path, experiment: str, trial_id: int
) -> tuple[int, int]:
    """For ``tuixp rm --purge``: delete a trial's artifact rows and every blob (and laid-out
    folder) of them that no other trial's artifact needs; (files, bytes) freed. Runs on the
    caller's connection (inside its transaction, if it opened one); the files are deleted after
    the rows, so a failure leaves at worst unreferenced files for ``tuixp gc``."""
    gone = {(art.kind, art.hash) for art in listed(con, experiment, trial_id)}
    con.execute(
        "DELETE FROM artifact_record WHERE experiment = ? AND trial_id = ?", [experiment, trial_id]
    )
    return free_unreferenced(con, store_path, gone)


# -- a safe preview ---------------------------------------------------------------------------


def printable(line: str) -> str:
    """A line with every control or format character (escape sequences, carriage returns, bidi
    overrides) shown as U+FFFD, tabs as spaces: nothing in it can move a terminal's cursor."""
    return "".join(
        " " * 4
        if c == "\t"
        else "\ufffd"
        if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")
        else c
        for c in line
    )


def preview_text(path: Path, name: str, limit: int = PREVIEW_BYTES) -> str:
    """At most ``PREVIEW_LINES`` lines of a text or CSV artifact, from its first ``limit`` bytes,
    safe to print; a binary file (a NUL byte, or not UTF-8) is named, not shown."""
    with open(path, "rb") as f:
        head = f.read(limit + 1)
    total = os.path.getsize(path)
    cut = len(head) > limit
    head = head[:limit]
    if b"\x00" in head:
        return f"{name}: binary, {total:,} bytes (not shown)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not cut or exc.start < len(head) - 4:  # not merely a character cut at the limit
            return f"{name}: binary or not UTF-8, {total:,} bytes (not shown)"
        text = head[: exc.start].decode("utf-8")
    lines = text.splitlines()
    more = cut or len(lines) > PREVIEW_LINES
    lines = lines[:PREVIEW_LINES]
    if name.lower().endswith((".csv", ".tsv")) and lines:
        lines = _csv_lines(lines, "\t" if name.lower().endswith(".tsv") else ",")
    body = "\n".join(printable(line)[:200] for line in lines)
    tail = f"\n… (first {len(lines)} lines of {total:,} bytes)" if more else ""
    return f"{name}: {total:,} bytes\n\n{body}{tail}"


def _csv_lines(lines: list[str], delimiter: str) -> list[str]:
    """CSV rows as aligned columns (at most 12, each at most 24 characters wide)."""
    rows: list[list[Any]] = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    rows = [[printable(str(c))[:24] for c in r[:12]] for r in rows]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
