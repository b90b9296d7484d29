"""A trial's metric points in memory, journaled in batches: logging a point costs microseconds.

``save_metric`` and ``log_metrics`` in a step of the owner's process append to the trial's
``MetricBuffer`` (a few typed arrays; no event dict, no file write). The buffer becomes one
``metric_batch`` journal event (``tuixp.store.metric_batch``) when one of these comes first:

- the flusher thread's tick, every ``FLUSH_INTERVAL`` seconds (``$TUIXP_METRIC_FLUSH``, 0.5 by
  default), so live views stay live: a point is in the journal within about that long;
- ``MAX_POINTS`` points are waiting (memory and journal lines stay bounded);
- the end of a step (its points are journaled before its end) and the end of the trial (before
  ``trial_finished``, which is fsynced: a finished trial has all its points);
- the interpreter's exit.

A process killed with ``kill -9`` loses the points it saved since its last flush, at most
about one interval of them, never more; the points already journaled are kept, and the trial
becomes ``interrupted`` (docs/reliability.md). The flusher never touches DuckDB: it only
appends to this process's journal.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from array import array
from typing import Any

from tuixp.execution.seq import reserve_seq
from tuixp.execution.ticker import Ticker
from tuixp.store import events as journal_events
from tuixp.store.metric_batch import MAX_NAMES, TYPE_CODES, pack

logger = logging.getLogger("tuixp")


def _interval() -> float:
    try:
        value = float(os.environ.get("TUIXP_METRIC_FLUSH", "0.5"))
    except ValueError:
        return 0.5
    return min(max(value, 0.01), 1.0)  # at least every second, whatever the setting


FLUSH_INTERVAL = _interval()
MAX_POINTS = 250_000
INT, FLOAT, BOOL = TYPE_CODES["int"], TYPE_CODES["float"], TYPE_CODES["bool"]


class MetricBuffer:
    """The points of one trial saved since its last flush, as columns."""

    def __init__(self, store: Any, trial_uuid: str, experiment: str, trial_id: int) -> None:
        self.store = store
        self.trial = (trial_uuid, experiment, trial_id)
        self._lock = threading.Lock()  # the columns
        self._flush_lock = threading.Lock()  # batches reach the journal in the order taken
        self._watched = False  # flushed by the flusher thread from the first point on
        self._reset()

    def _reset(self) -> None:
        self._names: dict[str, int] = {}
        self._name = array("H")
        self._epoch = array("q")
        self._value = array("d")
        self._type = array("B")
        self._at = array("d")
        self._ints: dict[int, int] = {}  # position -> an int's exact value (ints are rare)
        self._n = 0
        # The names of the last call of add_many (all in _names), their codes, and as many
        # float type codes: what add_floats extends the columns with.
        self._keys: tuple[str, ...] | None = None
        self._key_codes = array("H")
        self._key_floats = array("B")

    def add(
        self,
        name: str,
        epoch: int,
        value: float,
        type_code: int,
        exact: int | None,
        at: float | None = None,
    ) -> None:
        """One point, saved at ``at`` (now if None). ``type_code``: INT, FLOAT or BOOL;
        ``exact``: an int's exact value. The hot path of a training loop: kept short."""
        if not self._watched:
            self._watched = True
            watch(self)
        with self._lock:
            code = self._names.get(name)
            if code is None:
                code = self._new_name(name)
            self._name.append(code)
            self._epoch.append(epoch)
            self._value.append(value)
            self._type.append(type_code)
            self._at.append(time.time() if at is None else at)
            if exact is not None:
                self._ints[len(self._epoch) - 1] = exact
            self._n += 1
            full = self._n >= MAX_POINTS
        if full:
            self.flush()

    def add_many(self, points: list[tuple[str, int, float, str, int | None]]) -> None:
        """Several points saved together, now: ``(name, epoch, value, type name, an int's
        exact value)`` each (``log_metrics``)."""
        if not self._watched:
            self._watched = True
            watch(self)
        at = time.time()
        with self._lock:
            names = self._names
            for name, epoch, value, type_name, exact in points:
                code = names.get(name)
                if code is None:
                    code = self._new_name(name)
                self._name.append(code)
                self._epoch.append(epoch)
                self._value.append(value)
                self._type.append(TYPE_CODES[type_name])
                self._at.append(at)
                if exact is not None:
                    self._ints[len(self._epoch) - 1] = exact
            self._n += len(points)
            self._keys = tuple(p[0] for p in points)
            self._key_codes = array("H", [names[k] for k in self._keys])
            self._key_floats = array("B", [FLOAT]) * len(points)
            full = self._n >= MAX_POINTS
        if full:
            self.flush()

    def add_columns(
        self,
        names: list[str],
        columns: tuple[array, array, array, array, array],
        ints: list[list[int]],
    ) -> None:
        """Points saved elsewhere, each at its own wall time: the columns of a chunk a step
        away from the owner sent (``remote_metrics.columns``): ``name`` (indexes into
        ``names``), ``epoch``, ``value``, ``type``, ``at``; ``ints``, ``[position, exact]``."""
        name, epoch, value, typ, at = columns
        if not self._watched:
            self._watched = True
            watch(self)
        with self._lock:
            codes = []
            for metric in names:
                code = self._names.get(metric)
                codes.append(self._new_name(metric) if code is None else code)
            base = len(self._epoch)
            if codes == list(range(len(codes))):
                self._name.extend(name)
            else:
                self._name.extend(array("H", [codes[c] for c in name]))
            self._epoch.extend(epoch)
            self._value.extend(value)
            self._type.extend(typ)
            self._at.extend(at)
            for position, exact in ints:
                self._ints[base + position] = exact
            self._n += len(epoch)
            full = self._n >= MAX_POINTS
        if full:
            self.flush()

    def _new_name(self, name: str) -> int:
        """Give ``name`` the next code (under the lock); the buffer is full once the codes run
        out: flushed by the caller, as for too many points."""
        code = self._names[name] = len(self._names)
        if code + 1 >= MAX_NAMES:
            self._n = MAX_POINTS
        return code

    def add_floats(self, keys: tuple[str, ...], values: tuple[float, ...], epoch: int) -> bool:
        """``log_metrics``' usual call, saved now: floats at one epoch under the names of the
        last ``add_many`` (the caller checked both). False, and nothing saved, for other
        names: the caller takes the long way. A training loop's shortest path: each column
        is extended once a call, not appended to once a point."""
        with self._lock:
            if keys != self._keys:
                return False
            k = len(values)
            self._name.extend(self._key_codes)
            self._epoch.extend((epoch,) * k)
            self._value.extend(values)
            self._type.extend(self._key_floats)
            self._at.extend((time.time(),) * k)
            self._n += k
            full = self._n >= MAX_POINTS
        if full:
            self.flush()
        return True

    def __len__(self) -> int:
        return len(self._epoch)

    def _take(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        with self._lock:
            n = len(self._epoch)
            if not n:
                return None
            names = list(self._names)
            name, epoch, value, typ, at, exact = (
                self._name,
                self._epoch,
                self._value,
                self._type,
                self._at,
                self._ints,
            )
            self._reset()
        cols = {
            "name": pack(name),
            "epoch": pack(epoch),
            "value": pack(value),
            "type": pack(typ),
            "recorded_at": pack(at),
        }
        # The arrays themselves too: this process's ingest takes them instead of the line.
        arrays = {"name": name, "epoch": epoch, "value": value, "type": typ, "recorded_at": at}
        if exact:
            ints = array("q", bytes(8 * n))
            for at_point, v in exact.items():
                ints[at_point] = v
            cols["value_int"] = pack(ints)
            arrays["value_int"] = ints
        event = journal_events.metric_batch(*self.trial, n, names, reserve_seq(n), cols)
        return event, arrays

    def flush(self) -> int:
        """Journal the waiting points as one event; the number of points written."""
        with self._flush_lock:
            taken = self._take()
            if taken is None:
                return 0
            event, arrays = taken
            self.store.record([event], columns=[arrays])
            self.store.metric_points_journaled(event["n"])
            return int(event["n"])


# -- the flusher: one daemon thread while some trial of this process has a buffer ------------------
def _flush_quietly(buffer: MetricBuffer) -> None:
    try:
        buffer.flush()
    except Exception as exc:  # noqa: BLE001 - a background flush must not kill the thread
        logger.warning("Could not journal metric points of trial %s: %s", buffer.trial[2], exc)


_FLUSHER = Ticker(
    "tuixp-metrics",
    lambda: FLUSH_INTERVAL,
    lambda buffer: _flush_quietly(buffer) if len(buffer) else None,
)
_exit_hook = [False]
_exit_lock = threading.Lock()


def watch(buffer: MetricBuffer) -> None:
    """Flush ``buffer`` every interval from now until ``forget``, and at the interpreter's exit."""
    with _exit_lock:
        if not _exit_hook[0]:
            _exit_hook[0] = True
            atexit.register(flush_all)
    _FLUSHER.watch(buffer)


def forget(buffer: MetricBuffer) -> None:
    _FLUSHER.forget(buffer)


def flush_all() -> None:
    """Journal every waiting point now (the exit hook; tests)."""
    for buffer in _FLUSHER.watched():
        _flush_quietly(buffer)
