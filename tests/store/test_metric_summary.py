"""The metric summaries ingest keeps (``tuixp.store.metric_summary``) are what summarising
every stored point again gives, whatever arrives: points in order or not, saved twice, NaN,
single events and batches (both the small path and the NumPy one), over several ingests; and a
merge and a purge keep them right."""

from __future__ import annotations

import math
import tempfile
import time
from array import array
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuixp.store import Store, events, metric_batch, schema
from tuixp.store.merge import merge
from tuixp.store.purge import execute, plan

TRIALS = ("a" * 32, "b" * 32)
NAMES = ("loss", "acc")

point = st.tuples(
    st.sampled_from(NAMES),
    st.integers(min_value=-3, max_value=12),
    st.one_of(st.floats(min_value=-5, max_value=5), st.just(math.nan)),
)
write = st.tuples(
    st.integers(min_value=0, max_value=1),  # the trial
    st.booleans(),  # a batch (True) or single events
    st.lists(point, min_size=1, max_size=12),
)
rounds = st.lists(st.lists(write, min_size=1, max_size=4), min_size=1, max_size=4)


def _batch(trial: int, points: list[tuple[str, int, float]], seq: int) -> dict:
    names = sorted({p[0] for p in points}, key=NAMES.index)
    cols = {
        "name": metric_batch.pack(array("H", [names.index(p[0]) for p in points])),
        "epoch": metric_batch.pack(array("q", [p[1] for p in points])),
        "value": metric_batch.pack(array("d", [p[2] for p in points])),
        "type": metric_batch.pack(array("B", [metric_batch.TYPE_CODES["float"]] * len(points))),
        "recorded_at": metric_batch.pack(array("d", [time.time()] * len(points))),
    }
    return events.metric_batch(TRIALS[trial], "e", trial + 1, len(points), names, seq, cols)


def _single(trial: int, p: tuple[str, int, float], seq: int) -> dict:
    return events.metric(
        TRIALS[trial], "e", trial + 1, p[0], p[1], p[2], time.time(), seq=seq,
        value_type="float", value_int=None, step="train", key="train-1",
    )  # fmt: skip


def _summaries(con) -> list[tuple]:
    rows = con.execute("SELECT * FROM metric_summary ORDER BY trial_uuid, name").fetchall()
    return [tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in r) for r in rows]


def _recomputed(con) -> list[tuple]:
    select = schema.summarize_metrics().removeprefix("INSERT INTO metric_summary ").rstrip(";")
    rows = con.execute(f"SELECT * FROM ({select}) ORDER BY trial_uuid, name").fetchall()
    return [tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in r) for r in rows]


@pytest.mark.parametrize("numpy_path", [False, True], ids=["small-batches", "numpy-batches"])
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rounds=rounds)
def test_the_summary_kept_is_the_summary_of_every_stored_point(
    numpy_path: bool, rounds: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metric_batch, "SMALL", 0 if numpy_path else 5_000)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s.duckdb")
        seq = 0
        store.record(
            [events.trial_started(u, "e", i + 1, time.time(), 0, {}) for i, u in enumerate(TRIALS)]
        )
        for writes in rounds:
            evs = []
            for trial, as_batch, points in writes:
                if as_batch:
                    evs.append(_batch(trial, points, seq))
                else:
                    evs.extend(_single(trial, p, seq + k) for k, p in enumerate(points))
                seq += len(points)
            store.record(evs, sync=True)
            with store.connect() as con:
                kept = _summaries(con)
                assert kept == _recomputed(con)
                assert kept  # every round saved a point
                nulls = con.execute("SELECT count(*) FROM metric_record WHERE value IS NULL")
                assert nulls.fetchone() == (0,)  # NaN is stored as NaN, never as NULL


def test_batches_of_one_trial_with_their_names_in_different_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ingest of three batches: the names of the second are not a prefix of the first's,
    so its name column is mapped to the trial's (the others' are not): every point is stored."""
    monkeypatch.setattr(metric_batch, "SMALL", 0)
    store = Store(tmp_path / "s.duckdb")
    store.record([events.trial_started(TRIALS[0], "e", 1, time.time(), 0, {})])
    store.record(
        [
            _batch(0, [("acc", 0, 0.4)], 0),  # the trial's names: acc, then loss
            _batch(0, [("acc", 1, 0.5), ("loss", 1, 0.9)], 1),  # its own: loss, acc
            _batch(0, [("acc", 2, 0.6)], 3),
        ],
        sync=True,
    )
    with store.connect() as con:
        got = con.execute("SELECT name, epoch, value FROM metric_record ORDER BY name, epoch")
        assert got.fetchall() == [
            ("acc", 0, 0.4), ("acc", 1, 0.5), ("acc", 2, 0.6), ("loss", 1, 0.9)
        ]  # fmt: skip
        assert _summaries(con) == _recomputed(con)


def test_nan_in_a_batch_saved_out_of_order_stays_nan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch that must be sorted (epochs out of order) keeps a NaN as NaN, and its last
    value is that NaN (hypothesis found it stored as NULL, skipped as the last value)."""
    monkeypatch.setattr(metric_batch, "SMALL", 0)
    store = Store(tmp_path / "s.duckdb")
    store.record([events.trial_started(TRIALS[0], "e", 1, time.time(), 0, {})])
    store.record([_batch(0, [("acc", 1, math.nan), ("acc", -1, 1.0)], 0)], sync=True)
    store.record([_single(0, ("acc", 0, 0.0), 2)], sync=True)
    with store.connect() as con:
        rows = con.execute("SELECT epoch, isnan(value) FROM metric_record ORDER BY epoch")
        assert rows.fetchall() == [(-1, False), (0, False), (1, True)]
        last = con.execute("SELECT last_epoch, isnan(last_value) FROM metric_summary")
        assert last.fetchall() == [(1, True)]
        assert _summaries(con) == _recomputed(con)


def _trial_with_points(path: Path, points: list[tuple[str, int, float]]) -> Store:
    store = Store(path)
    store.record([events.trial_started(TRIALS[0], "e", 1, time.time(), 0, {})])
    store.record([_batch(0, points, 0)], sync=True)
    store.record([events.trial_finished(TRIALS[0], "succeeded", time.time())], sync=True)
    return store


def test_a_merged_trial_comes_with_its_summary(tmp_path: Path) -> None:
    _trial_with_points(tmp_path / "a.duckdb", [("loss", 0, 3.0), ("loss", 1, 1.0), ("acc", 0, 0.5)])
    target = Store(tmp_path / "b.duckdb")
    merge(tmp_path / "a.duckdb", target)
    with target.connect() as con:
        got = con.execute(
            "SELECT name, points, min_value, max_value, last_value FROM metric_summary "
            "ORDER BY name"
        ).fetchall()
        assert got == [("acc", 1, 0.5, 0.5, 0.5), ("loss", 2, 1.0, 3.0, 1.0)]
        assert _summaries(con) == _recomputed(con)


def test_a_purged_trial_leaves_no_summary(tmp_path: Path) -> None:
    store = _trial_with_points(tmp_path / "a.duckdb", [("loss", 0, 3.0)])
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM metric_summary").fetchone() == (1,)
        planned = plan(con, "e", [1])
    with store.connect() as con:
        execute(store, con, planned)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM metric_summary").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM metric_best").fetchone() == (0,)
