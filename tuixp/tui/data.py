"""What the TUI reads from the store, one short connection at a time (runs in worker threads).

Each call opens the store (which ingests other processes' journals: that is how their new trials
appear), asks its questions, and closes it, so other processes can write between refreshes. Calls
from several worker threads are serialised: one connection of this process at a time.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from tuixp.errors import StoreError
from tuixp.store import annotation, artifacts, columns, queries, window
from tuixp.store.annotation import Annotation
from tuixp.store.artifacts import Artifact, ArtifactStore, preview_text, printable
from tuixp.store.journal import journal_files, writer_is_alive
from tuixp.store.objects import ObjectStore
from tuixp.store.paths import StorePaths
from tuixp.store.store import Store
from tuixp.store.summary import MetricSummary
from tuixp.tui.plotting import MetricPoints

CONNECT_TIMEOUT = 0.5  # seconds to wait for another process before saying the store is busy
SUMMARY_BUDGET = 0.25  # seconds the summary builder holds the store at a time
INGEST_EVERY = 1.5  # seconds between the TUI's ingests while writers only add journal lines
MEMORY_LIMIT = "128MB"  # DuckDB's buffers in the TUI: it reads windows, it rarely needs more
MEMORY_RETRY = "1GB"  # once, for a read that needed more (trials with parameters of many MB)


T = TypeVar("T")


class StoreMissing(StoreError):
    """The store file does not exist (yet)."""


@dataclass
class TrialWindow:
    """A window of one query's rows, and how many rows the query selects in all."""

    query: window.TrialQuery
    layout: columns.Layout
    total: int
    offset: int
    rows: list[window.TrialRow]


@dataclass
class Snapshot:
    """One refresh: the experiments, and the window of the shown experiment's trials."""

    experiments: list[dict[str, Any]]
    fingerprint: tuple[Any, ...]
    trials: TrialWindow | None = None


@dataclass
class TrialDetail:
    """Everything the trial detail screen shows, read in one connection.

    ``points`` holds every metric of the trial and of the overlaid trials as arrays
    (``{metric: {trial_id: MetricPoints}}``); ``metrics`` is the same as lists of
    ``(epoch, value)``, made on first use (the compare screen's tables want them so).
    """

    experiment: str
    trial_id: int
    trial: dict[str, Any]
    code: dict[str, str]
    environment: dict[str, Any]
    steps: list[dict[str, Any]]
    persisted: list[dict[str, Any]]
    points: dict[str, dict[int, MetricPoints]] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    # name, note, tags, star and deletion (tuixp.store.annotation)
    annotation: Annotation = field(default_factory=Annotation)

    @functools.cached_property
    def metrics(self) -> dict[str, dict[int, list[tuple[int, float]]]]:
        return {
            name: {tid: list(zip(p.epoch.tolist(), p.value.tolist())) for tid, p in series.items()}
            for name, series in self.points.items()
        }


class StoreReader:
    """The TUI's access to one store: short connections, one at a time, bounded waits."""

    def __init__(self, path: Path, timeout: float = CONNECT_TIMEOUT) -> None:
        self.store = Store(path)
        self.path = self.store.path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._layouts: dict[str, tuple[tuple[Any, ...], columns.Layout]] = {}
        self.summaries: dict[str, MetricSummary] = {}
        self._waiting = 0  # reads for the screen waiting for the lock (they go first)
        self._count_lock = threading.Lock()
        self._disk: tuple[Any, ...] | None = None  # the files as the last poll found them
        self._ingested: tuple[Any, ...] | None = None  # the journals after our last ingest
        self._ingested_at = 0.0
        self._deferred = False  # the last connection left journal lines for a later ingest
        self.polls_skipped = 0

    def disk_state(self) -> tuple[Any, ...]:
        """The store's files as they are now, without opening the database: equal twice, no
        process wrote to the store (or its journals) in between and no writer died."""
        state: list[Any] = []
        for path in (self.path, StorePaths(self.path).wal):
            try:
                st = path.stat()
                state.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                state.append(None)
        for journal in journal_files(self.path):
            try:
                st = journal.stat()
            except OSError:
                continue
            state.append((journal.name, st.st_size, st.st_mtime_ns, writer_is_alive(journal)))
        return tuple(state)

    def _settled(self, query: window.TrialQuery | None) -> bool:
        """No summary work is left for the shown experiment (a poll would only do that)."""
        if query is None:
            return False
        summary = self.summaries.get(query.experiment)
        return summary is not None and summary.prepared

    def summary(self, experiment: str) -> MetricSummary:
        found = self.summaries.get(experiment)
        if found is None:
            found = self.summaries[experiment] = MetricSummary(experiment)
        return found

    def _journals_state(self) -> tuple[Any, ...]:
        """The journals as they are now: equal twice, there is nothing new to ingest."""
        state: list[Any] = []
        for journal in journal_files(self.path):
            try:
                st = journal.stat()
            except OSError:
                continue
            state.append((journal.name, st.st_size, writer_is_alive(journal)))
        return tuple(state)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        """A read-only connection, after a short read-write one that ingests, if there is news.

        DuckDB lets any number of read-only connections share the file, but none beside a
        read-write one: reading through a read-only connection keeps the TUI out of the way of
        other readers (``tuixp sql``, a plain ``duckdb.connect(store, read_only=True)``) while
        it runs its queries; the file is held read-write only for the ingest itself, and only
        when a journal grew, appeared, went or lost its writer since the last one.
        """
        if not self.path.exists() and not self._journals_state():
            # Opening would create an empty store; wait for a trial to create it instead. With
            # journals beside it, trials were recorded (by a writer that has not ingested yet,
            # or that died first): opening creates the store from them.
            raise StoreMissing(
                f"No tuixp store at {self.path} yet. Run a trial with store={str(self.path)!r} "
                "(or tuixp run SCRIPT --store PATH); it will show here by itself."
            )
        journals = self._journals_state()
        self._deferred = False
        if journals != self._ingested:
            # While writers are only adding lines, ingest at most every INGEST_EVERY seconds
            # (they ingest themselves after each burst of trials); at once for a first look, a
            # writer that died or a new one.
            due = time.monotonic() - self._ingested_at >= INGEST_EVERY
            dead = any(not alive for _, _, alive in journals)
            names = {j[0] for j in journals} != {j[0] for j in self._ingested or ()}
            if self._ingested is None or due or dead or names:
                with self.store.connect(timeout=self.timeout):
                    pass  # ingest (and bring the schema up to date), then free the write lock
                self._ingested = self._journals_state()
                self._ingested_at = time.monotonic()
            else:
                self._deferred = True  # the next poll must not take the store as unchanged
        with self.store.connect(read_only=True, timeout=self.timeout) as con:
            yield con

    @contextlib.contextmanager
    def _urgent(self) -> Iterator[None]:
        """The lock, for a read someone is waiting for: background work yields to it."""
        with self._count_lock:
            self._waiting += 1
        self._lock.acquire()
        with self._count_lock:
            self._waiting -= 1
        try:
            yield
        finally:
            self._lock.release()

    def _prepare(self, con: Any) -> None:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")

    def _roomy(self, con: Any, read: Callable[[], T]) -> T:
        """``read()``, again with MEMORY_RETRY if it ran out of DuckDB's usual memory: a scan of
        trials whose parameters take tens of MB each holds them all at once."""
        try:
            return read()
        except duckdb.OutOfMemoryException:
            pass
        con.execute(f"SET memory_limit = '{MEMORY_RETRY}'")
        try:
            return read()
        except duckdb.OutOfMemoryException as exc:
            first = str(exc).strip().splitlines()[0]
            raise StoreError(
                f"Not enough memory to read these trials, even with {MEMORY_RETRY} ({first}): "
                "some hold parameters or results of many MB. Try tuixp sql with a narrower query."
            ) from None
        finally:
            con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")

    def _layout(self, con: Any, experiment: str, fp: tuple[Any, ...]) -> columns.Layout:
        cached = self._layouts.get(experiment)
        if cached is not None and cached[0] == fp:
            return cached[1]
        lay = columns.layout(con, experiment)
        self._layouts[experiment] = (fp, lay)
        return lay

    def snapshot(
        self,
        query: window.TrialQuery | None,
        offset: int,
        limit: int,
        known: tuple[Any, ...] | None = None,
        deliver: Callable[[Snapshot], None] | None = None,
    ) -> Snapshot | None:
        """Experiments and a window of trials; skips what did not change.

        ``known`` is the fingerprint of the caller's last snapshot. When the store's files are
        as the last poll found them, ``known`` is given and the summary has nothing left to do,
        the database is not opened at all and the result is None. When ``known`` still holds
        and no trial is running, the window is not read again (``trials`` is None). Without a
        query, the window is the most recently run experiment's. ``deliver`` gets the snapshot
        as soon as it is read; the summary of the shown experiment is then brought up to date
        in the same connection, so the first screen does not wait for it.
        """
        with self._urgent():
            disk = self.disk_state()
            if known is not None and disk == self._disk and self._settled(query):
                self.polls_skipped += 1
                return None
            with self._connect() as con:
                self._prepare(con)
                snap = self._roomy(
                    con, lambda: self._snapshot(con, query, offset, limit, known, deliver)
                )
            # Taken before reading: a write since shows at the next poll, and so do journal
            # lines whose ingest was put off.
            self._disk = None if self._deferred else disk
            return snap

    def _snapshot(
        self,
        con: Any,
        query: window.TrialQuery | None,
        offset: int,
        limit: int,
        known: tuple[Any, ...] | None,
        deliver: Callable[[Snapshot], None] | None,
    ) -> Snapshot:
        fp = window.fingerprint(con)
        exps = queries.experiments(con)
        trials = None
        running = bool(fp and fp[2])
        names = [e["experiment"] for e in exps]
        if query is None and names:
            query = window.TrialQuery(names[0])
        if query is not None and (known != fp or running) and query.experiment in names:
            trials = self._window(con, query, offset, limit, fp)
        snap = Snapshot(exps, fp, trials)
        if deliver is not None:
            deliver(snap)
        if query is not None and query.experiment in names:
            summary = self.summaries.get(query.experiment)
            if summary is not None and summary.ready:
                summary.refresh(con)  # top up: only trials new or running since are read
        return snap

    def build_summary(
        self,
        experiment: str,
        cancelled: Callable[[], bool] = lambda: False,
        budget: float = SUMMARY_BUDGET,
    ) -> bool:
        """Build and sort ``experiment``'s summary, giving way to every other read.

        The store is opened for at most ``budget`` seconds at a time (other processes write in
        between) and this process's reads for the screen and polls go first: they wait for one
        slice at most. True once the summary is ready and sorted.
        """
        summary = self.summary(experiment)
        while not cancelled():
            if self._waiting:
                time.sleep(0.005)
                continue
            with self._lock:
                if summary.prepared:
                    return True
                if cancelled():
                    break
                deadline = time.monotonic() + budget
                if not summary.ready:
                    with self._connect() as con:
                        self._prepare(con)
                        summary.refresh(con)
                        while (
                            not summary.ready
                            and not self._waiting
                            and time.monotonic() < deadline
                            and not cancelled()
                        ):
                            summary.refresh(con)
                else:
                    summary.prepare(deadline, lambda: bool(self._waiting) or cancelled())
                    if not summary.prepared and not self._waiting and not cancelled():
                        return False  # nothing more it can sort (should not happen): stop
            time.sleep(0.002)  # let a waiting thread, or another process, take the store
        return False

    def _window(
        self, con: Any, query: window.TrialQuery, offset: int, limit: int, fp: tuple[Any, ...]
    ) -> TrialWindow:
        lay = self._layout(con, query.experiment, fp)
        summary = self.summaries.get(query.experiment)
        total = window.count(con, lay, query, summary)
        offset = max(0, min(offset, max(0, total - limit)))
        rows = window.page(con, lay, query, offset, limit, summary)
        return TrialWindow(query, lay, total, offset, rows)

    def trials(
        self,
        query: window.TrialQuery,
        offset: int,
        limit: int,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> TrialWindow | None:
        """A window of trials (the count too: the filter or the store may have changed it).

        None if ``cancelled()`` says, once the store is ours, that nobody wants it any more.
        """
        with self._urgent():
            if cancelled():
                return None
            with self._connect() as con:
                self._prepare(con)
                fp = window.fingerprint(con)
                return self._roomy(con, lambda: self._window(con, query, offset, limit, fp))

    def detail(self, experiment: str, trial_id: int, overlay: list[int]) -> TrialDetail:
        """One trial's record, code, environment, steps, outputs; metrics of it and ``overlay``."""
        with self._urgent(), self._connect() as con:
            self._prepare(con)
            return _detail(con, experiment, trial_id, overlay)

    def details(
        self, experiment: str, trial_ids: list[int], previous: bool = False
    ) -> list[TrialDetail] | None:
        """The detail of each trial, the first one's metrics overlaid with the others', in one
        connection. With ``previous``, ``trial_ids[0]`` and the trial recorded before it
        (``queries.previous_trial``), the earlier first; None if it has none."""
        with self._urgent(), self._connect() as con:
            self._prepare(con)
            if previous:
                latest = _detail(con, experiment, trial_ids[0], [])
                earlier = queries.previous_trial(con, experiment, trial_ids[0])
                if earlier is None:
                    return None
                return [_detail(con, experiment, earlier, [earlier, trial_ids[0]]), latest]
            return [
                _detail(con, experiment, tid, trial_ids if i == 0 else [])
                for i, tid in enumerate(trial_ids)
            ]

    def launch_sources(self, prefer: tuple[str, int] | None) -> list[dict[str, Any]]:
        """What the launch form starts from (``queries.launch_sources``), in one connection."""
        with self._urgent(), self._connect() as con:
            self._prepare(con)
            return queries.launch_sources(con, prefer)

    def preview_artifact(self, art: Artifact) -> str:
        """A safe, bounded text of an artifact: a text or CSV file's first lines, a folder's
        files, a binary file's size."""
        files = ArtifactStore(StorePaths(self.path).artifacts)
        path = files.local_path(art)  # checked against its hash
        if art.kind == "file":
            return preview_text(path, art.name)
        listing = files.manifest(art.hash)
        lines = [f"{rel}  {size:,} bytes" for rel, _, size in listing[:40]]
        more = [f"… {len(listing) - 40} more files"] if len(listing) > 40 else []
        head = f"{art.name}/: {art.files} files, {art.size:,} bytes\n\n"
        return head + "\n".join(printable(line) for line in lines + more)

    def load_output(self, object_hash: str, fmt: str) -> Any:
        """A persisted output, read from the objects folder (never a pickle unless asked)."""
        return ObjectStore(self.store.objects_dir).get(object_hash, fmt)


def _detail(con: Any, experiment: str, trial_id: int, overlay: list[int]) -> TrialDetail:
    rec = queries.trial(con, experiment, trial_id)
    ids = [trial_id] + [t for t in overlay if t != trial_id]
    return TrialDetail(
        experiment=experiment,
        trial_id=trial_id,
        trial=rec,
        code=queries.code(con, experiment, trial_id),
        environment=queries.environment(con, experiment, trial_id),
        steps=queries.steps(con, experiment, trial_id),
        persisted=queries.persisted_outputs(con, experiment, trial_id),
        points=metric_points(con, experiment, ids),
        artifacts=artifacts.listed(con, experiment, trial_id),
        annotation=annotation.of_trial(con, experiment, trial_id),
    )


def metric_points(
    con: Any, experiment: str, trial_ids: list[int]
) -> dict[str, dict[int, MetricPoints]]:
    """Every metric of these trials as arrays: ``{metric: {trial_id: MetricPoints}}``.

    One query per series, straight into NumPy (a million points in a few tens of ms; a list of
    tuples would take a second): epoch, value and wall time (``recorded_at``, NaN where a point
    has none). Rows are stored in the order they were saved, usually the epochs' order; the
    points are sorted by epoch here only when they are not.
    """
    out: dict[str, dict[int, MetricPoints]] = {}
    if not trial_ids:
        return out
    groups = con.execute(
        "SELECT name, trial_id FROM metric_record WHERE experiment = ? "
        "AND list_contains(?, trial_id) GROUP BY name, trial_id ORDER BY name, trial_id",
        [experiment, trial_ids],
    ).fetchall()
    for name, tid in groups:
        cols = con.execute(
            "SELECT epoch, value, epoch(recorded_at) AS wall FROM metric_record "
            "WHERE experiment = ? AND trial_id = ? AND name = ?",
            [experiment, tid, name],
        ).fetchnumpy()
        out.setdefault(name, {})[tid] = MetricPoints.of(
            _filled(cols["epoch"], 0),
            _filled(cols["value"], float("nan")),
            _filled(cols["wall"], float("nan")),
        )
    return out


def _filled(column: Any, missing: Any) -> Any:
    """A fetched column as a plain array: NULLs (a masked array) as ``missing``."""
    import numpy as np

    if isinstance(column, np.ma.MaskedArray):
        return column.filled(missing)
    return column


def preview(value: Any, rows: int = 20) -> str:
    """A short text preview of a persisted output: a DataFrame's head, an array's, or JSON."""
    mod = type(value).__module__
    name = type(value).__name__
    if mod.startswith("pandas") and name == "DataFrame":
        head = value.head(rows).to_string(max_cols=12, max_colwidth=24)
        return f"DataFrame {value.shape[0]} rows x {value.shape[1]} columns\n\n{head}"
    if mod == "numpy" and name == "ndarray":
        import numpy as np

        with np.printoptions(threshold=200, edgeitems=5, linewidth=76):
            body = np.array2string(value)
        return f"ndarray shape {value.shape} dtype {value.dtype}\n\n{body}"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.nn.Module):  # loaded from torch-module
        name = f"{name} (torch module)"
        value = value.state_dict()
    if isinstance(value, dict) and value and all(hasattr(v, "dtype") for v in value.values()):
        # A torch state_dict (or any dict of tensors): one line a tensor, never their values.
        items = list(value.items())
        lines = [f"{k}: {tuple(v.shape)} {v.dtype}" for k, v in items[: rows * 3]]
        more = [f"... {len(items) - rows * 3} more tensors"] if len(items) > rows * 3 else []
        return f"{name} of {len(items)} tensors\n\n" + "\n".join(lines + more)
    import json
    import pprint

    try:
        text = json.dumps(value, indent=2, default=repr)
    except (TypeError, ValueError):
        text = pprint.pformat(value, width=76)
    lines = text.splitlines()
    if len(lines) > rows * 3:
        lines = lines[: rows * 3] + [f"... {len(lines) - rows * 3} more lines"]
    return f"{name}\n\n" + "\n".join(lines)
