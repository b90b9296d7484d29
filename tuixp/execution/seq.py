"""The sequence numbers of this process's metric points: they keep a metric's points in the order
they were saved, whichever batch or journal line carried them."""

from __future__ import annotations

import threading

_seq_lock = threading.Lock()
_seq = [0]


def next_seq() -> int:
    with _seq_lock:
        _seq[0] += 1
        return _seq[0]


def reserve_seq(n: int) -> int:
    """The first of ``n`` consecutive sequence numbers (a batch of metric points)."""
    with _seq_lock:
        first = _seq[0] + 1
        _seq[0] += n
        return first
