"""Bundles: a store's trials as one self-contained, compressed, versioned file.

A bundle is a zip file holding ``manifest.json`` (format, format version, schema version, the
store it came from), one Parquet file (zstd) per shared table in ``tables/``, and the persisted
outputs the trials refer to in ``objects/`` (named by content hash, as in ``NAME.objects/``).
``tuixp export --bundle`` writes one, ``tuixp push`` writes one into a remote folder, and
``tuixp merge`` / ``tuixp pull`` read them (docs/sharing.md).

``SHARED_TABLES`` is the one list of what travels: a new table whose rows belong to a trial (or
that a trial refers to) is one entry there, and merge and export both follow it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from tuixp.errors import NotAStore, SchemaTooNew, StoreError
from tuixp.store import schema

BUNDLE_FORMAT = "tuixp-bundle"
BUNDLE_FORMAT_VERSION = 1
BUNDLE_SUFFIX = ".tuixp-bundle"


@dataclass(frozen=True)
class SharedTable:
    """A table that travels in a bundle: ``trial`` names its trial-uuid column for the tables
    whose rows belong to one trial (rows go where their trial goes: an updated trial's are
    replaced); ``key`` is the columns that make a row unique for the tables whose rows are
    kept from both sides, each once (texts, code and package sets, experiments; and, with
    ``trial`` too, the events of a trial such as its annotations)."""

    name: str
    trial: str | None = None
    key: tuple[str, ...] = ()


# What a merge copies, in the order it copies it. Trials first; their rows; what they refer to.
SHARED_TABLES = (
    SharedTable("trial_record", trial="uuid"),
    SharedTable("param_record", trial="trial_uuid"),
    SharedTable("metric_record", trial="trial_uuid"),
    SharedTable("step_record", trial="trial_uuid"),
    SharedTable("persisted_record", trial="trial_uuid"),
    SharedTable("artifact_record", trial="trial_uuid"),
    # Annotations are events with their own uuid: both sides' are kept (a union by uuid).
    SharedTable("annotation_record", trial="trial_uuid", key=("uuid",)),
    SharedTable("experiment_record", key=("name",)),
    SharedTable("blob", key=("hash",)),
    SharedTable("code_set", key=("hash", "ord")),
    SharedTable("package_set", key=("hash", "name")),
)

# The texts a set of trials refers to, by the column that holds the hash.
_BLOB_REFS = ("environment_hash", "git_hash", "traceback_hash")


def store_uuid(con: duckdb.DuckDBPyConnection) -> str:
    """The identity of the store open on ``con`` (made at creation or by the schema-5 migration)."""
    row = con.execute("SELECT value FROM tuixp_meta WHERE key = 'store_uuid'").fetchone()
    if row is None:
        raise StoreError("The store has no identity (it was not upgraded to schema 7).")
    return str(row[0])


def sql_text(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Snapshot:
    """A store's shared tables (or some of its trials) as Parquet files in a folder, with the
    folder their persisted outputs are read from: what a merge reads, from a store or a bundle."""

    tables_dir: Path
    objects_dir: Path
    manifest: dict[str, Any]
    objects: list[tuple[str, str]] = field(default_factory=list)  # (hash, format)
    artifacts_dir: Path | None = None  # NAME.artifacts/ (or the bundle's artifacts/)
    artifact_blobs: set[str] = field(default_factory=set)

    def table(self, name: str) -> Path:
        return self.tables_dir / f"{name}.parquet"

    @property
    def store_uuid(self) -> str:
        return str(self.manifest["store_uuid"])

    @property
    def bundle_id(self) -> str | None:
        got = self.manifest.get("bundle_id")
        return str(got) if got else None


def write_snapshot(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    objects_dir: Path,
    where: str = "TRUE",
    artifacts_dir: Path | None = None,
) -> Snapshot:
    """Write the trials of the store open on ``con`` that match ``where`` (SQL over
    ``trial_record``), their rows and what they refer to, as Parquet files in ``folder``.

    Everything is read in one transaction, so the files agree with each other even while
    another process ingests into the store between two statements (it cannot: ``con`` holds
    the file, but a read-only connection to a store on a shared disk might not).
    """
    tables = folder / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    con.execute("BEGIN")
    try:
        chosen = f"(SELECT uuid FROM trial_record WHERE {where})"
        trials = f"(SELECT * FROM trial_record WHERE {where})"
        selects = {
            "trial_record": f"SELECT * FROM trial_record WHERE {where}",
            "experiment_record": "SELECT * FROM experiment_record WHERE name IN "
            f"(SELECT DISTINCT experiment FROM {trials})",
            "code_set": "SELECT * FROM code_set WHERE hash IN "
            f"(SELECT DISTINCT code_hash FROM {trials})",
            "package_set": "SELECT * FROM package_set WHERE hash IN "
            f"(SELECT DISTINCT packages_hash FROM {trials})",
            "blob": "SELECT * FROM blob WHERE hash IN ("
            + " UNION ".join(f"SELECT {c} FROM {trials}" for c in _BLOB_REFS)
            + " UNION SELECT source_hash FROM code_set WHERE hash IN "
            f"(SELECT DISTINCT code_hash FROM {trials}))",
        }
        counts: dict[str, int] = {}
        for t in SHARED_TABLES:
            query = selects.get(t.name)
            if query is None:
                query = f"SELECT * FROM {t.name} WHERE {t.trial} IN {chosen}"
            target = tables / f"{t.name}.parquet"
            con.execute(
                f"COPY ({query}) TO {sql_text(str(target))} (FORMAT parquet, COMPRESSION zstd)"
            )
            row = con.execute(f"SELECT count(*) FROM read_parquet({sql_text(str(target))})")
            counts[t.name] = int(row.fetchone()[0])  # type: ignore[index]
        objects = [
            (str(h), str(f))
            for h, f in con.execute(
                "SELECT DISTINCT object_hash, format FROM persisted_record "
                f"WHERE trial_uuid IN {chosen} AND object_hash IS NOT NULL"
            ).fetchall()
        ]
        blobs: set[str] = set()
        if artifacts_dir is not None:
            from tuixp.store.artifacts import ArtifactStore

            artifacts = ArtifactStore(artifacts_dir)
            for kind, digest in con.execute(
                "SELECT DISTINCT kind, hash FROM artifact_record "
                f"WHERE trial_uuid IN {chosen} AND hash IS NOT NULL"
            ).fetchall():
                blobs |= artifacts.blobs_of(str(kind), str(digest))
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "schema_version": schema.SCHEMA_VERSION,
            "store_uuid": store_uuid(con),
            "host": socket.gethostname(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tables": counts,
            "objects": len(objects) + len(blobs),  # persisted outputs and artifact blobs
        }
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return Snapshot(tables, objects_dir, manifest, objects, artifacts_dir, blobs)


def artifact_blob(root: Path, digest: str) -> Path:
    """Where ``NAME.artifacts/`` keeps a blob (ArtifactStore.blob)."""
    return root / "blobs" / digest[:2] / digest


def object_path(root: Path, digest: str, fmt: str) -> Path:
    """Where ``NAME.objects/`` (and a bundle's ``objects/``) keeps an output (ObjectStore.path_of)."""
    return root / digest[:2] / f"{digest}.{fmt}"


def write_bundle(snapshot: Snapshot, target: Path, bundle_id: str | None = None) -> dict[str, Any]:
    """Zip ``snapshot`` into the file ``target``, which is written complete or not at all:
    built under a hidden temporary name beside it, fsynced, then hard-linked into place (a file
    already at ``target`` is never replaced: FileExistsError). Returns the manifest written."""
    manifest = dict(snapshot.manifest)
    manifest["bundle_id"] = bundle_id or uuid.uuid4().hex
    missing = 0
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for t in SHARED_TABLES:
                # Parquet is compressed already (zstd): stored as is.
                zf.write(snapshot.table(t.name), f"tables/{t.name}.parquet", zipfile.ZIP_STORED)
            for digest, fmt in snapshot.objects:
                src = object_path(snapshot.objects_dir, digest, fmt)
                if not src.is_file():
                    missing += 1
                    continue
                zf.write(src, f"objects/{digest[:2]}/{digest}.{fmt}", zipfile.ZIP_DEFLATED)
            for digest in sorted(snapshot.artifact_blobs):
                if snapshot.artifacts_dir is None:
                    break
                src = artifact_blob(snapshot.artifacts_dir, digest)
                if not src.is_file():
                    missing += 1
                    continue
                zf.write(src, f"artifacts/blobs/{digest[:2]}/{digest}", zipfile.ZIP_DEFLATED)
            manifest["objects_missing"] = missing
            # Last: a zip cut short has no manifest (and no central directory) and is refused.
            zf.writestr("manifest.json", json.dumps(manifest, indent=1), zipfile.ZIP_DEFLATED)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, target)  # atomic, and never over an existing file
        except FileExistsError:
            raise
        except OSError:
            # No hard links here (some network and FAT filesystems): rename, refusing to
            # replace a file already there.
            if target.exists():
                raise FileExistsError(target) from None
            os.rename(tmp, target)
        _sync_folder(target.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return manifest


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_manifest(manifest: Any, where: Path) -> dict[str, Any]:
    """The manifest if this tuixp can merge its bundle; NotAStore / SchemaTooNew if not."""
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise NotAStore(f"{where} is not a tuixp store or bundle (no tuixp bundle manifest).")
    fv = manifest.get("format_version")
    sv = manifest.get("schema_version")
    if not isinstance(fv, int) or not isinstance(sv, int) or not manifest.get("store_uuid"):
        raise NotAStore(f"{where} has a damaged bundle manifest (no format or schema version).")
    if fv > BUNDLE_FORMAT_VERSION:
        raise SchemaTooNew(
            f"{where} is a bundle of a newer format ({fv}; this tuixp reads up to "
            f"{BUNDLE_FORMAT_VERSION}). Upgrade tuixp to merge it; nothing was changed."
        )
    if sv > schema.SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{where} was written by a newer tuixp (schema {sv}; this tuixp reads up to "
            f"{schema.SCHEMA_VERSION}). Upgrade tuixp to merge it; nothing was changed."
        )
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """The checked manifest of the bundle file ``path`` (only the manifest is read)."""
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                raw = zf.read("manifest.json")
            except KeyError:
                raise NotAStore(
                    f"{path} is not a tuixp store or bundle (a zip file without a manifest)."
                ) from None
    except zipfile.BadZipFile as exc:
        raise NotAStore(f"{path} is not a readable tuixp bundle ({exc}).") from None
    except OSError as exc:
        raise StoreError(f"Cannot read {path}: {exc.strerror}.") from None
    try:
        manifest = json.loads(raw)
    except ValueError:
        manifest = None
    return check_manifest(manifest, path)


def is_bundle_file(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


@contextlib.contextmanager
def open_bundle(path: Path) -> Iterator[Snapshot]:
    """The bundle file ``path`` unpacked in a temporary folder, checked whole (each member's
    CRC) before anything is merged from it; the folder is removed afterwards."""
    manifest = read_manifest(path)
    folder = Path(tempfile.mkdtemp(prefix="tuixp-bundle-"))
    try:
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    name = info.filename
                    parts = Path(name).parts
                    if name.startswith("/") or ".." in parts or not parts:
                        raise NotAStore(f"{path} holds a file outside the bundle ({name!r}).")
                    if parts[0] not in ("tables", "objects", "artifacts") or info.is_dir():
                        continue
                    dest = folder.joinpath(*parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise NotAStore(f"{path} is a damaged tuixp bundle ({exc}).") from None
        except OSError as exc:
            raise StoreError(f"Cannot unpack the bundle {path}: {exc.strerror or exc}.") from None
        tables = folder / "tables"
        for t in SHARED_TABLES:
            if not (tables / f"{t.name}.parquet").is_file():
                raise NotAStore(f"{path} is a damaged tuixp bundle (no {t.name} table).")
        yield Snapshot(tables, folder / "objects", manifest, artifacts_dir=folder / "artifacts")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def copy_object(src: Path, dest: Path, digest: str) -> bool:
    """Copy one persisted output into a store's objects folder, complete or not at all, if its
    content matches its hash; False when it is missing or damaged (nothing is written)."""
    if dest.exists():
        return True
    try:
        data = src.read_bytes()
    except OSError:
        return False
    if hashlib.sha256(data).hexdigest() != digest:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True
