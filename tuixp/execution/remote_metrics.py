"""A step's metric points when the step runs away from its trial's owner: in a process pool's
child or on a cluster worker. They travel to the owner in chunks of columns, not one message a
point.

A chunk is a plain dict (msgpack and pickle both carry it): ``cid`` (its id, so a chunk that
arrives twice, live and again with the step's record, is counted once), ``step``, ``names``
(the chunk's distinct metric names), ``order`` (the sender's byte order) and one column of
machine values a field, as bytes (a message of bytes is sent as it is, where a list is walked
value by value): ``name`` (uint16 indexes into ``names``), ``epoch`` (int64), ``value``
(float64), ``type`` (uint8, ``metric_batch.TYPE_CODES``), ``at`` (float64 wall time), and
``ints``: ``[position, exact value]`` of each int (rare).

On a cluster the chunk that is filling is sent on the owner's event topic when it is
``metric_buffer.FLUSH_INTERVAL`` old (0.5 s by default; checked at each point and by a ticker
thread while the step runs, so a step that saved a point and then computes for a minute still
shows it) or holds ``MAX_CHUNK`` points, and the rest at the step's end. Every chunk also
travels with the step's record. A worker killed mid-step loses the points of its step saved
since the last chunk went, about one interval of them at most.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from array import array
from collections.abc import Callable
from typing import Any

from tuixp.execution.metric_buffer import FLUSH_INTERVAL
from tuixp.execution.ticker import Ticker
from tuixp.store.metric_batch import MAX_NAMES

MAX_CHUNK = 100_000


class RemotePoints:
    """The points one step saved, in the process that runs it (not the trial's owner)."""

    def __init__(self, step: str, publish: Callable[[dict[str, Any]], bool] | None) -> None:
        self.step = step
        self._publish = publish  # sends a chunk to the owner live; None: with the record only
        self._lock = threading.Lock()  # the columns
        self._send_lock = threading.Lock()  # chunks go in the order they were sealed
        self.chunks: list[dict[str, Any]] = []  # every chunk sealed, in order
        self.unsent: list[dict[str, Any]] = []  # those not sent live
        self._watched = False
        self._reset()

    def _reset(self) -> None:
        self._names: dict[str, int] = {}
        self._name = array("H")
        self._epoch = array("q")
        self._value = array("d")
        self._type = array("B")
        self._at = array("d")
        self._ints: list[list[int]] = []
        self._first = 0.0

    def add(self, name: str, epoch: int, value: float, type_code: int, exact: int | None) -> None:
        now = time.time()
        with self._lock:
            code = self._names.get(name)
            if code is None:
                code = self._names[name] = len(self._names)
            if not self._epoch:
                self._first = now
            if exact is not None:
                self._ints.append([len(self._epoch), exact])
            self._name.append(code)
            self._epoch.append(epoch)
            self._value.append(value)
            self._type.append(type_code)
            self._at.append(now)
            due = (
                now - self._first >= FLUSH_INTERVAL
                or len(self._epoch) >= MAX_CHUNK
                or len(self._names) >= MAX_NAMES - 1
            )
        if due:
            self.send()
        elif self._publish is not None and not self._watched:
            self._watched = True
            _TICKER.watch(self)

    def _seal(self) -> dict[str, Any] | None:
        with self._lock:
            if not self._epoch:
                return None
            chunk = {
                "cid": uuid.uuid4().hex,
                "step": self.step,
                "names": list(self._names),
                "order": sys.byteorder,
                "name": self._name.tobytes(),
                "epoch": self._epoch.tobytes(),
                "value": self._value.tobytes(),
                "type": self._type.tobytes(),
                "at": self._at.tobytes(),
                "ints": self._ints,
            }
            self._reset()
            self.chunks.append(chunk)
        return chunk

    def send(self) -> None:
        """Seal the points waiting into a chunk and send it (kept unsent when it cannot go)."""
        with self._send_lock:
            chunk = self._seal()
            if chunk is not None and (self._publish is None or not self._publish(chunk)):
                self.unsent.append(chunk)

    def close(self) -> list[dict[str, Any]]:
        """The step has ended: send what waits; every chunk, for the step's record."""
        self.stop()
        self.send()
        return self.chunks

    def stop(self) -> None:
        """No more ticks (also for a step that ended by a BaseException, with no record)."""
        if self._watched:
            _TICKER.forget(self)


def _tick(points: RemotePoints) -> None:
    if points._epoch:
        points.send()


_TICKER = Ticker("tuixp-remote-metrics", lambda: FLUSH_INTERVAL, _tick)


def columns(chunk: dict[str, Any]) -> tuple[array, array, array, array, array]:
    """A chunk's ``name``, ``epoch``, ``value``, ``type`` and ``at`` columns as arrays in this
    machine's byte order."""
    out = []
    for field, code in (("name", "H"), ("epoch", "q"), ("value", "d"), ("type", "B"), ("at", "d")):
        column = array(code)
        column.frombytes(chunk[field])
        if chunk.get("order", sys.byteorder) != sys.byteorder:
            column.byteswap()
        out.append(column)
    name, epoch, value, typ, at = out
    return name, epoch, value, typ, at
