"""Export a bundle, push to and pull from a folder remote (docs/sharing.md).

A remote is a folder every machine can reach (a mounted share, a synced folder, a USB disk).
``push`` writes the trials this store has that the remote does not hold yet as ONE new bundle
file there, under a name nobody else uses (time, host, this store's id, a random part), built
under a hidden temporary name and hard-linked into place: nothing in the remote is ever
rewritten, several machines can push at once, and a push killed midway leaves only a hidden
``.NAME.part-*`` file that ``pull`` ignores. ``pull`` merges every bundle of the remote it has
not merged yet, each in its own transaction, and remembers it (table ``bundle_merged``); what
the remote holds is remembered per trial (table ``remote_trial``) so a trial pulled from the
remote is never pushed back, and a trial pushed while running is pushed again once it finished.
"""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tuixp.errors import StoreBusy, StoreError, UsageError
from tuixp.store.bundle import (
    BUNDLE_SUFFIX,
    open_bundle,
    read_manifest,
    sql_text,
    store_uuid,
    write_bundle,
    write_snapshot,
)
from tuixp.store.merge import MergeReport, merge_snapshot, note_remote_trials
from tuixp.store.paths import StorePaths
from tuixp.store.store import Store


def parse_since(text: str) -> float:
    """``--since DATE``: an ISO date or date and time (local time unless it says its zone), as
    epoch seconds; UsageError for anything else."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is not a date: give YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return when.astimezone().timestamp() if when.tzinfo is None else when.timestamp()


@dataclass
class ExportReport:
    path: str
    trials: int
    objects: int
    objects_missing: int
    tables: dict[str, int] = field(default_factory=dict)


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise UsageError(f"{path} exists already: give a new file name (nothing is overwritten)")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent} is not a folder")


def export_bundle(
    store: Store,
    path: Path,
    experiments: list[str] | None = None,
    since: float | None = None,
) -> ExportReport:
    """``tuixp export --bundle PATH [EXPERIMENT...] [--since DATE]``: the chosen trials, all
    they recorded and the outputs they persisted, as one bundle file at ``path`` (new)."""
    _refuse_existing(path)
    folder = Path(tempfile.mkdtemp(prefix="tuixp-export-"))
    try:
        with store.connect() as con:
            if experiments:
                known = {
                    r[0]
                    for r in con.execute("SELECT DISTINCT experiment FROM trial_record").fetchall()
                }
                unknown = [e for e in experiments if e not in known]
                if unknown:
                    raise UsageError(f"no trial of experiment {unknown[0]!r} in {store.path}")
            where = ["TRUE"]
            if experiments:
                where.append("experiment IN (" + ", ".join(sql_text(e) for e in experiments) + ")")
            if since is not None:
                where.append(f"started_at >= to_timestamp({float(since)!r})")
            snapshot = write_snapshot(
                con,
                folder,
                store.objects_dir,
                " AND ".join(where),
                artifacts_dir=StorePaths(store.path).artifacts,
            )
        manifest = write_bundle(snapshot, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return ExportReport(
        path=str(path),
        trials=manifest["tables"]["trial_record"],
        objects=manifest["objects"] - manifest["objects_missing"],
        objects_missing=manifest["objects_missing"],
        tables=manifest["tables"],
    )


def remote_folder(remote: str | Path) -> Path:
    """The folder of a remote, which must exist (a share that is not mounted must not become a
    local folder by accident); UsageError otherwise."""
    text = str(remote)
    if re.match(r"^[a-z][a-z0-9+.-]*://", text):
        raise UsageError(
            f"{text}: only folder remotes are supported (mount it, e.g. with sshfs, and give "
            "the folder)"
        )
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder (is the share mounted?)")
    return folder.resolve()


def _bundle_name(store_id: str) -> str:
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname())[:40] or "host"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{host}-{store_id[:8]}-{uuid.uuid4().hex[:12]}{BUNDLE_SUFFIX}"


@dataclass
class PushReport:
    remote: str
    bundle: str | None
    trials: int
    objects: int


# A trial the remote does not hold, or holds running while it has finished here.
_NOT_IN_REMOTE = (
    "NOT EXISTS (SELECT 1 FROM remote_trial r WHERE r.remote = {remote} "
    "AND r.trial_uuid = trial_record.uuid "
    "AND (r.status <> 'running' OR trial_record.status = 'running'))"
)


def push(store: Store, remote: str | Path) -> PushReport:
    """``tuixp push REMOTE``: this store's trials the remote lacks, as one new bundle there."""
    folder = remote_folder(remote)
    key = str(folder)
    work = Path(tempfile.mkdtemp(prefix="tuixp-push-"))
    try:
        # The database is held while the trials are read, not while the bundle is written
        # into the (maybe slow) remote.
        with store.connect() as con:
            own = store_uuid(con)
            snapshot = write_snapshot(
                con,
                work,
                store.objects_dir,
                _NOT_IN_REMOTE.format(remote=sql_text(key)),
                artifacts_dir=StorePaths(store.path).artifacts,
            )
        trials = snapshot.manifest["tables"]["trial_record"]
        if not trials:
            return PushReport(key, None, 0, 0)
        name = _bundle_name(own)
        manifest = write_bundle(snapshot, folder / name)
        pushed = f"(SELECT uuid, status FROM read_parquet({sql_text(str(snapshot.table('trial_record')))}))"
        with store.connect() as con:
            con.execute("BEGIN")
            try:
                note_remote_trials(con, key, pushed)
                con.execute(
                    "INSERT OR IGNORE INTO bundle_merged VALUES (?, ?, ?, ?, now(), 0)",
                    [manifest["bundle_id"], key, name, own],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return PushReport(key, name, trials, manifest["objects"] - manifest["objects_missing"])


@dataclass
class PullReport:
    remote: str
    merged: list[tuple[str, MergeReport]] = field(default_factory=list)
    known: int = 0  # bundles merged (or pushed from here) before
    failed: list[tuple[str, str]] = field(default_factory=list)


def remote_bundles(folder: Path) -> list[Path]:
    """The complete bundles in a remote, oldest name first (hidden temporary files left out)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.name.endswith(BUNDLE_SUFFIX) and not p.name.startswith(".") and p.is_file()
    )


def pull(store: Store, remote: str | Path) -> PullReport:
    """``tuixp pull REMOTE``: merge every bundle of the remote not merged here yet."""
    folder = remote_folder(remote)
    key = str(folder)
    report = PullReport(key)
    with store.connect() as con:
        done = con.execute(
            "SELECT name, bundle_id FROM bundle_merged WHERE remote = ?", [key]
        ).fetchall()
    names = {n for n, _ in done}
    ids = {i for _, i in done}
    for path in remote_bundles(folder):
        if path.name in names:
            report.known += 1
            continue
        try:
            manifest = read_manifest(path)
            if manifest.get("bundle_id") in ids:
                report.known += 1
                continue
            with open_bundle(path) as snapshot:
                merged = merge_snapshot(
                    store, snapshot, source_label=path.name, remote=key, bundle_name=path.name
                )
        except StoreBusy:
            raise
        except StoreError as exc:
            report.failed.append((path.name, str(exc)))
            continue
        report.merged.append((path.name, merged))
    return report
