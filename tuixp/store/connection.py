"""Opening a store's DuckDB file: the one bounded-wait open, creating a new file, the schema.

Every connection to a store file goes through ``open_database``: it waits (bounded) while
another process holds the file, creates a missing store complete under a hidden name before
putting it in place, replaces a 0-byte file an interrupted creation left, and turns DuckDB's
errors into tuixp's (busy, read-only, damaged, not a store). ``ensure_schema`` and
``check_schema`` bring a connection's schema up to date or refuse a newer one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path

import duckdb

from tuixp.errors import (
    NotAStore,
    SchemaTooNew,
    StoreBusy,
    StoreDamaged,
    StoreError,
    StoreReadOnly,
)
from tuixp.store import schema
from tuixp.store.journal import journal_dir
from tuixp.store.paths import StorePaths

logger = logging.getLogger("tuixp")

DEFAULT_STORE = "tuixp.duckdb"
LOCK_TIMEOUT = float(os.environ.get("TUIXP_LOCK_TIMEOUT", "30"))
# A 0-byte database file younger than this may be a creation in progress (by an older tuixp or
# another DuckDB client): it is waited for, never replaced.
EMPTY_FILE_GRACE = 2.0
# DuckDB's words for a file that is a DuckDB database but cannot be read back whole.
_DAMAGED = re.compile(
    r"could not read enough bytes|checksum|corrupt|truncat|invalid block|malformed", re.I
)
# DuckDB's words for a write the filesystem refused: the store can still be read.
CANNOT_WRITE = re.compile(
    r"no space left|disk full|could not write|read-only|permission denied|quota", re.I
)
# Never fetch or load an extension behind the user's back: opening a SQLite file would otherwise
# download sqlite_scanner from the network.
CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "default_block_size": "16384",
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}

FileId = tuple[int, int]  # (device, inode) of a file


def resolve_store_path(store: str | os.PathLike[str] | None = None) -> Path:
    """``store`` argument, else ``$TUIXP_STORE``, else ``tuixp.duckdb`` in the current directory."""
    raw = store if store is not None else os.environ.get("TUIXP_STORE") or DEFAULT_STORE
    return Path(raw).expanduser().resolve()


def is_lock_error(exc: BaseException) -> bool:
    return "lock" in str(exc).lower()


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def write_failure_cause(exc: BaseException) -> str:
    """The most telling part of a DuckDB write error: "No space left on device" if it says so."""
    text = str(exc)
    for words in ("No space left on device", "Disk quota exceeded", "Read-only file system"):
        if words.lower() in text.lower():
            return words
    return first_line(exc)


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failure, keeping the failure's own error: when DuckDB has already
    aborted the transaction (a COMMIT that hit a full disk), ROLLBACK raises "no transaction is
    active", which would hide "No space left on device"."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


_guards: dict[Path, threading.RLock] = {}
_guards_lock = threading.Lock()


def guard_for(path: Path) -> threading.RLock:
    """One lock per store file per process: two Store objects of one file take turns."""
    with _guards_lock:
        return _guards.setdefault(path, threading.RLock())


def file_id(path: Path) -> FileId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


# -- the schema --------------------------------------------------------------------------------
def schema_version(con: duckdb.DuckDBPyConnection, path: Path) -> int | None:
    try:  # the common case, without a catalog scan (about 10 ms a connection)
        rows = con.execute("SELECT value FROM tuixp_meta WHERE key = 'schema_version'").fetchall()
        if rows:
            return int(rows[0][0])
    except duckdb.CatalogException:
        pass
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    if "tuixp_meta" not in tables:
        if tables:
            raise NotAStore(
                f"{path} is a DuckDB file but not a tuixp store (it has no tuixp_meta table)."
            )
        return None
    row = con.execute("SELECT value FROM tuixp_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a store without a schema, or with a newer one than this tuixp reads."""
    version = schema_version(con, path)
    if version is None:
        raise StoreError(f"{path} is empty: run a trial first.")
    if version > schema.SCHEMA_VERSION:
        raise _too_new(path, version)


def _too_new(path: Path, version: int) -> SchemaTooNew:
    return SchemaTooNew(
        f"{path} was written by a newer tuixp (schema {version}; this tuixp reads up to "
        f"{schema.SCHEMA_VERSION}). Upgrade tuixp to use it; nothing was changed."
    )


def ensure_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Create the schema in an empty database, or migrate an older one, in one transaction."""
    version = schema_version(con, path)
    if version is not None and version > schema.SCHEMA_VERSION:
        raise _too_new(path, version)
    if version == schema.SCHEMA_VERSION:
        return
    con.execute("BEGIN")
    try:
        if version is None:
            con.execute(schema.TABLES)
            con.execute(
                "INSERT OR REPLACE INTO tuixp_meta VALUES ('schema_version', ?), ('kind', ?)",
                [str(schema.SCHEMA_VERSION), schema.STORE_MARK],
            )
        else:
            for v in range(version, schema.SCHEMA_VERSION):
                con.execute(schema.MIGRATIONS[v])
            con.execute(
                "UPDATE tuixp_meta SET value = ? WHERE key = 'schema_version'",
                [str(schema.SCHEMA_VERSION)],
            )
        con.execute(schema.VIEWS)
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise


# -- creating the database ---------------------------------------------------------------------
# A new store is built under a hidden name of its own (schema committed, checkpointed and
# fsynced) and then hard-linked into place, which fails if the name exists: every process
# that opens the store sees either no file or a complete one, and a file once in place is
# never deleted or replaced. (DuckDB creating the file in place left it 0 bytes and
# unlocked for a moment: another process took it for an unfinished creation and deleted it
# while the first committed trials into it, and the journals behind them went too.)


def _creation_error(path: Path, exc: BaseException) -> StoreError:
    text = str(exc).lower()
    errno_ = getattr(exc, "errno", None)
    if "no space left" in text or "disk full" in text or errno_ in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(
            f"Cannot create the store {path}: the disk is full (No space left on "
            f"device). Trials recorded so far are safe in {journal_dir(path)}; free "
            "some space."
        )
    if (
        "permission" in text
        or "read-only" in text
        or errno_ in (errno.EACCES, errno.EPERM, errno.EROFS)
    ):
        return StoreReadOnly(
            f"Cannot create the store {path}: its folder {path.parent} cannot be "
            f"written ({first_line(exc)})."
        )
    return StoreError(f"Cannot create the store {path}: {first_line(exc)}")


def _build_new_file(path: Path) -> Path:
    """A complete, empty store under a hidden name beside ``path``; the caller places it."""
    tmp = StorePaths(path).new_file(f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        con = duckdb.connect(str(tmp), config=CONFIG)
        try:
            ensure_schema(con, path)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except (duckdb.Error, OSError) as exc:
        _discard(tmp)
        raise _creation_error(path, exc) from exc
    return tmp


def _discard(tmp: Path) -> None:
    for p in (tmp, StorePaths(tmp).wal):
        with contextlib.suppress(OSError):
            p.unlink()


def _sync_folder(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def create(path: Path) -> None:
    """Put a new store at ``path`` unless another process did first (then use theirs)."""
    tmp = _build_new_file(path)
    try:
        try:
            os.link(tmp, path)  # atomic, and never replaces an existing store
        except FileExistsError:
            return  # another process created it first: that file is the store
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise _creation_error(path, exc) from exc
            _place_without_links(path, tmp)
        _sync_folder(path)
        logger.debug("Created the store %s", path)
    finally:
        _discard(tmp)


def _place_without_links(path: Path, tmp: Path) -> None:
    """A filesystem without hard links: rename into place under a lock on the folder."""
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for one rename, by creators only
        if not path.exists():
            os.rename(tmp, path)
    finally:
        os.close(fd)


def _replace_empty_file(path: Path) -> bool:
    """Replace a 0-byte database file nobody is creating; False while someone may be.

    tuixp never leaves one (it creates the file complete, see ``create``), but an older
    tuixp killed mid-creation did, and DuckDB refuses a 0-byte file forever. A file that
    DuckDB holds, or that is younger than a creation takes, is left alone: the caller waits.
    The replacement happens while this process holds DuckDB's lock on the empty file, so
    two processes never both replace it.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # DuckDB has it: someone is creating or opening it right now
        st = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return True
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or st.st_size != 0:
            return True  # replaced or filled meanwhile: open what is there now
        if time.time() - st.st_mtime < EMPTY_FILE_GRACE:
            return False
        tmp = _build_new_file(path)
        try:
            os.rename(tmp, path)
        finally:
            _discard(tmp)
        _sync_folder(path)
        logger.info("Replaced the empty database file %s left by an interrupted creation", path)
        return True
    finally:
        os.close(fd)


# -- opening -----------------------------------------------------------------------------------
def open_database(
    path: Path,
    read_only: bool,
    timeout: float,
    config: dict[str, str | bool | int | float | list[str]] | None = None,
) -> tuple[duckdb.DuckDBPyConnection, FileId | None]:
    """Open the store file, waiting at most ``timeout`` s while another process holds it.

    A missing store is created (unless ``read_only``); a file this process cannot write is
    opened read-only (ask DuckDB's ``access_mode`` which it got). Returns the connection and
    the (device, inode) of the file it is to, which is the file at ``path`` when it opened.
    ``config`` is DuckDB's configuration (``CONFIG`` by default).
    """
    if path.is_dir():
        raise NotAStore(f"{path} is a folder, not a tuixp store: give the path of the store file.")
    if not path.exists():
        if read_only:
            raise StoreError(f"No tuixp store at {path}: run a trial first.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreReadOnly(f"Cannot create the store folder {path.parent}: {exc}") from exc
        create(path)
    elif not read_only and not os.access(path, os.W_OK):
        read_only = True
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        before = file_id(path)
        if before is None and not read_only:
            create(path)  # removed since: never let DuckDB create it in place
            continue
        try:
            # Small blocks: a store of a few thousand trials stays a few MB, not 256 KB a
            # column segment. The setting only applies when the file is created, but every
            # connection passes it: DuckDB refuses a second connection in one process whose
            # configuration differs from the first's.
            con = duckdb.connect(
                str(path), read_only=read_only, config=dict(CONFIG if config is None else config)
            )
        except duckdb.IOException as exc:
            if is_lock_error(exc):
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"The store {path} is held by another process; gave up after "
                        f"{timeout:g} s. Try again when it is done (TUIXP_LOCK_TIMEOUT sets "
                        "the wait)."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 1.5, 0.2)
                continue
            text = str(exc).lower()
            if "permission" in text or "read-only" in text:
                if not read_only:
                    read_only = True
                    continue
                raise StoreReadOnly(f"Cannot open the store {path}: {first_line(exc)}") from exc
            if "no space left" in text or "disk full" in text:
                raise StoreError(
                    f"Cannot open the store {path}: the disk is full. Trials recorded "
                    f"so far are safe in {journal_dir(path)}; free some space."
                ) from exc
            with contextlib.suppress(OSError):
                st = path.stat()
                if st.st_size == 0:
                    old = time.time() - st.st_mtime >= EMPTY_FILE_GRACE
                    if read_only or not _replace_empty_file(path):
                        if time.monotonic() >= deadline or (read_only and old):
                            raise NotAStore(
                                f"{path} is an empty file, not a tuixp store (a "
                                "creation that never finished?). Delete it and run again: "
                                "trials not yet in it wait in "
                                f"{journal_dir(path)}."
                            ) from exc
                        time.sleep(delay)
                        delay = min(delay * 1.5, 0.2)
                    continue
            raise _unreadable(path, exc) from exc
        except duckdb.Error as exc:
            raise _unreadable(path, exc) from exc
        if before is not None and file_id(path) == before:
            return con, before
        # The name was pointed at another file while DuckDB opened it: open again, so the
        # connection is to the file every process will open.
        con.close()


def _unreadable(path: Path, exc: BaseException) -> StoreError:
    """What to say about a file DuckDB will not open: damaged, or not a store at all."""
    if _DAMAGED.search(str(exc)):
        return StoreDamaged(
            f"The store {path} is damaged (DuckDB: {first_line(exc)}), probably "
            "truncated or overwritten. Nothing was changed: restore it from a backup, or "
            "move it aside and run again to start a new store (trials not yet in it wait in "
            f"{journal_dir(path)} and go into the store that opens next)."
        )
    return NotAStore(f"{path} is not a tuixp store (DuckDB could not open it: {first_line(exc)}).")
