"""The chunks a step away from its trial's owner sends its metric points in
(tuixp.execution.remote_metrics): every point kept, in order, ints exact, from either byte
order; a chunk sealed when it is full, and sent (or kept unsent) as it is sealed."""

from __future__ import annotations

import sys
from array import array
from typing import Any

from tuixp.execution import remote_metrics
from tuixp.execution.remote_metrics import RemotePoints, columns
from tuixp.store.metric_batch import TYPE_CODES

FLOAT, INT = TYPE_CODES["float"], TYPE_CODES["int"]


def _save(points: RemotePoints, n: int) -> None:
    for i in range(n):
        points.add("loss", i, 1.0 / (i + 1), FLOAT, None)
        points.add("seen", i, float(i), INT, i * 3)


def test_a_chunk_keeps_every_point_in_order_with_exact_ints() -> None:
    points = RemotePoints("train", None)
    _save(points, 1000)
    chunks = points.close()
    assert len(chunks) == 1 and points.unsent == chunks  # nothing to send it to
    chunk = chunks[0]
    assert chunk["step"] == "train" and chunk["names"] == ["loss", "seen"]
    name, epoch, value, typ, at = columns(chunk)
    assert list(name) == [0, 1] * 1000
    assert list(epoch) == [i for i in range(1000) for _ in (0, 1)]
    assert list(value) == [v for i in range(1000) for v in (1.0 / (i + 1), float(i))]
    assert list(typ) == [FLOAT, INT] * 1000
    assert list(at) == sorted(at) and len(at) == 2000
    assert chunk["ints"] == [[2 * i + 1, i * 3] for i in range(1000)]
    assert points.close() == chunks  # closing again sends nothing new


def test_a_chunk_from_the_other_byte_order_reads_the_same() -> None:
    points = RemotePoints("train", None)
    _save(points, 10)
    (chunk,) = points.close()
    swapped: dict[str, Any] = dict(chunk, order="big" if sys.byteorder == "little" else "little")
    for field, code in (("name", "H"), ("epoch", "q"), ("value", "d"), ("type", "B"), ("at", "d")):
        column = array(code)
        column.frombytes(chunk[field])
        column.byteswap()
        swapped[field] = column.tobytes()
    assert [list(c) for c in columns(swapped)] == [list(c) for c in columns(chunk)]


def test_a_full_chunk_is_sealed_and_sent_at_once(monkeypatch: Any) -> None:
    monkeypatch.setattr(remote_metrics, "MAX_CHUNK", 100)
    calls: list[dict[str, Any]] = []

    def publish(chunk: dict[str, Any]) -> bool:  # takes the first two, then the link is gone
        calls.append(chunk)
        return len(calls) <= 2

    points = RemotePoints("train", publish)
    _save(points, 160)  # 320 points: three chunks sealed full as they fill, 20 left
    assert len(calls) == 3 and points.chunks == calls
    chunks = points.close()
    assert len(calls) == 4 and chunks == calls
    assert [len(columns(c)[1]) for c in chunks] == [100, 100, 100, 20]
    assert points.unsent == chunks[2:]  # the two not sent: they go with the step's record
    epochs = [e for c in chunks for e in columns(c)[1]]
    assert epochs == [i for i in range(160) for _ in (0, 1)]
