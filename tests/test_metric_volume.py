"""Metrics at volume: points buffered in memory and journaled as ``metric_batch`` events.

``log_metrics`` (several metrics at once, epochs counted when omitted), the batch's ingest
(a point saved twice keeps the last value, in one batch or across two), a damaged batch line set
aside without losing anything else, both axes of every point (epoch and wall time), and what a
``kill -9`` mid-training keeps: every point journaled before it, a prefix, never a gap.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from array import array
from pathlib import Path

import pytest

import tuixp
from tuixp import errors
from tuixp.execution import metric_buffer
from tuixp.store import Store, events, metric_batch
from tuixp.store.metrics import metric_points
from tuixp.store.paths import StorePaths


def _rows(store_path: Path, sql: str) -> list[tuple]:
    with Store(store_path).connect() as con:
        return con.execute(sql).fetchall()


def test_log_metrics_counts_epochs_per_metric_and_keeps_types(store_path: Path) -> None:
    ex = tuixp.Experiment("dl", store=store_path)

    @ex.result
    def train():
        for step in range(3):
            ex.log_metrics({"loss": 1.0 / (step + 1), "correct": step, "ok": step % 2 == 0})
        ex.save_metric("val", epoch=10, value=0.5)
        ex.log_metrics({"val": 0.25})  # goes on after save_metric's epoch 10
        ex.log_metrics({"loss": 0.1}, epoch=3_000_000_000)  # a global step past 32 bits
        return 0

    train().compute()
    loss = ex.load_metric("loss", 1)
    assert loss.index.tolist() == [0, 1, 2, 3_000_000_000]
    assert loss[1].tolist() == [1.0, 0.5, 1.0 / 3, 0.1]
    correct = ex.load_metric("correct", 1)
    assert str(correct[1].dtype) == "int64" and correct[1].tolist() == [0, 1, 2]
    ok = ex.load_metric("ok", 1)
    assert str(ok[1].dtype) == "bool" and ok[1].tolist() == [True, False, True]
    assert ex.load_metric("val", 1)[1].to_dict() == {10: 0.5, 11: 0.25}
    types = _rows(
        store_path, "SELECT DISTINCT name, value_type FROM metrics ORDER BY name"
    )  # the batch path keeps schema 4's types
    assert types == [("correct", "int"), ("loss", "float"), ("ok", "bool"), ("val", "float")]


def test_log_metrics_short_path_keeps_every_point_in_the_order_saved(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Floats at an epoch under the last call's names go in as one tuple a call; every other
    # call takes the long way. Mixed, across flushes (a small MAX_POINTS), nothing is lost or
    # reordered, and epochs counted afterwards go on from the last one saved.
    monkeypatch.setattr(metric_buffer, "MAX_POINTS", 7)
    ex = tuixp.Experiment("dl", store=store_path)
    saved: list[tuple[str, int, float]] = []

    def log(values: dict, epoch: int) -> None:
        ex.log_metrics(values, epoch=epoch)
        saved.extend((k, epoch, float(v)) for k, v in values.items())

    @ex.result
    def train():
        for i in range(20):
            log({"loss": 1.0 / (i + 1), "acc": i / 20}, i)  # short, after the first
            if i % 6 == 2:
                log({"loss": 0.5, "acc": 1}, 100 + i)  # an int: the long way
            if i % 6 == 4:
                ex.save_metric("lr", epoch=i, value=0.01 * i)
                saved.append(("lr", i, 0.01 * i))
            if i % 9 == 8:
                log({"acc": 0.5}, 200 + i)  # other names: long, then short for them
                log({"acc": 0.75}, 300 + i)
        ex.log_metrics({"loss": 0.0})  # counted on from the epoch of the last loss saved (19)
        saved.append(("loss", 20, 0.0))
        return 0

    train().compute()
    got = _rows(store_path, "SELECT name, epoch, value FROM metric_record ORDER BY seq")
    assert got == saved
    assert len(got) == len({(n, e) for n, e, _ in got})


def test_log_metrics_refuses_the_whole_call_on_a_bad_name_or_value(store_path: Path) -> None:
    ex = tuixp.Experiment("dl", store=store_path)
    refused = []

    @ex.result
    def train():
        for bad in ({"loss": 0.5, "not a name": 1.0}, {"loss": 0.5, "acc": "high"}, [("a", 1)]):
            try:
                ex.log_metrics(bad)  # type: ignore[arg-type]
            except errors.TuixpError as exc:
                refused.append(str(exc))
        ex.save_metric("kept", epoch=0, value=1)
        return 0

    train().compute()
    assert len(refused) == 3
    assert "Metric name must be valid as python identifier: not a name" in refused[0]
    assert refused[1].startswith("Metric acc:")
    assert "mapping" in refused[2]
    assert _rows(store_path, "SELECT name FROM metrics") == [("kept",)]
    with pytest.raises(errors.TrialIDNotFoundError):
        ex.log_metrics({"loss": 1.0})  # outside a trial, as save_metric


@pytest.mark.parametrize("small", [5_000, 0], ids=["rows", "columns"])
def test_a_point_saved_twice_keeps_the_last_value_in_one_batch_and_across_batches(
    store_path: Path, monkeypatch: pytest.MonkeyPatch, small: int
) -> None:
    # Both ingest paths: a small batch as rows, a big one as NumPy columns through Arrow.
    monkeypatch.setattr(metric_batch, "SMALL", small)
    ex = tuixp.Experiment("dl", store=store_path)

    @ex.result
    def train():
        ex.save_metric("loss", epoch=0, value=1.0)
        ex.save_metric("loss", epoch=1, value=0.5)
        ex.save_metric("loss", epoch=0, value=0.75)  # the same epoch, same batch
        return 0

    @ex
    def first():
        ex.save_metric("acc", epoch=0, value=0.1)
        ex.save_metric("acc", epoch=1, value=0.2)
        return 1

    @ex.result
    def second(x):
        ex.save_metric("acc", epoch=1, value=0.3)  # again, in a later batch (after first's end)
        return x

    train().compute()
    assert ex.load_metric("loss", 1)[1].to_dict() == {0: 0.75, 1: 0.5}
    second(first()).compute()
    assert ex.load_metric("acc", 2)[2].to_dict() == {0: 0.1, 1: 0.3}
    assert _rows(store_path, "SELECT count(*) FROM metrics WHERE trial_id = 2") == [(2,)]


@pytest.mark.parametrize("again", [False, True], ids=["each-once", "one-saved-twice"])
def test_both_ingest_paths_store_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, again: bool
) -> None:
    # One batch ingested as rows (a small batch) and as NumPy columns through Arrow (in order,
    # or sorted when a point is saved twice): the same rows, to the microsecond, with each
    # type, an int a float cannot hold, NaN, and times between two microseconds (rounded alike).
    points = [  # name, epoch, value, type, the int's exact value, recorded_at
        ("loss", 0, 0.5, "float", 0, 1_700_000_000.0000005),
        ("steps", 0, float(2**60 + 1), "int", 2**60 + 1, 1_700_000_000.0000015),
        ("done", 0, 1.0, "bool", 0, 1_700_000_000.25),
        ("loss", 1, math.nan, "float", 0, 1_700_000_001.0),
        ("steps", 1, -3.0, "int", -3, 1_700_000_001.5),
    ]
    if again:
        points.append(("loss", 0, 0.25, "float", 0, 1_700_000_002.0))  # the later value is kept
    names = ["loss", "steps", "done"]
    cols = {
        "name": metric_batch.pack(array("H", [names.index(p[0]) for p in points])),
        "epoch": metric_batch.pack(array("q", [p[1] for p in points])),
        "value": metric_batch.pack(array("d", [p[2] for p in points])),
        "type": metric_batch.pack(array("B", [metric_batch.TYPE_CODES[p[3]] for p in points])),
        "recorded_at": metric_batch.pack(array("d", [p[5] for p in points])),
        "value_int": metric_batch.pack(array("q", [p[4] for p in points])),
    }
    uuid = "c" * 32
    got = {}
    for small in (5_000, 0):
        monkeypatch.setattr(metric_batch, "SMALL", small)
        store = Store(tmp_path / f"s{small}.duckdb")
        store.record([events.trial_started(uuid, "e", 1, time.time(), 0, {})])
        store.record([events.metric_batch(uuid, "e", 1, len(points), names, 0, cols)], sync=True)
        got[small] = _rows(
            store.path,
            "SELECT name, epoch, value::VARCHAR, value_type, value_int, epoch_us(recorded_at), "
            "seq FROM metric_record ORDER BY name, epoch",
        )
    assert got[5_000] == got[0]
    assert [r[:5] for r in got[0]] == [
        ("done", 0, "1.0", "bool", None),
        ("loss", 0, "0.25" if again else "0.5", "float", None),
        ("loss", 1, "nan", "float", None),
        ("steps", 0, str(float(2**60 + 1)), "int", 2**60 + 1),
        ("steps", 1, "-3.0", "int", -3),
    ]
    micros = [r[5] for r in got[0]]
    assert micros == [1_700_000_000_250_000, 1_700_000_002_000_000 if again else
                      1_700_000_000_000_000, 1_700_000_001_000_000, 1_700_000_000_000_002,
                      1_700_000_001_500_000]  # fmt: skip


def test_the_writers_own_ingest_takes_its_kept_batches_and_stores_what_parsing_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process that journaled a batch ingests it from the arrays it packed (no JSON, no
    # base64); a copy of the same store and journal, read by parsing, gets the same rows.
    store = tmp_path / "own.duckdb"
    ex = tuixp.Experiment("own", store=store)

    @ex.result
    def train():
        for i in range(3_000):  # 12,000 points: a NumPy batch, below the end-of-run ingest
            ex.log_metrics({"loss": 1.0 / (i + 1), "acc": i / 3_000, "n": i, "ok": i % 2 == 0})
        ex.save_metric("loss", epoch=0, value=0.5)  # saved again: the later value is kept
        return 0

    train().compute()
    writer = ex.store.journal
    assert writer.path is not None
    name = writer.path.name
    assert len(writer.kept(name)) == 1  # kept, not ingested yet
    copy = tmp_path / "copy.duckdb"  # a store made from a copy of the journal alone
    shutil.copytree(StorePaths(store).journal, StorePaths(copy).journal)
    sql = (
        "SELECT name, epoch, value::VARCHAR, value_type, value_int, recorded_at, seq "
        "FROM metric_record ORDER BY name, epoch"
    )
    unpacked: list[int] = []
    a2b = metric_batch.binascii.a2b_base64
    monkeypatch.setattr(
        metric_batch.binascii, "a2b_base64", lambda text: unpacked.append(1) or a2b(text)
    )
    with ex.store.connect() as con:  # the writer's own ingest
        own = con.execute(sql).fetchall()
    assert not unpacked  # nothing unpacked from base64: the kept arrays were taken
    assert writer.kept(name) == {} and writer._kept_points == 0  # let go once ingested
    parsed = _rows(copy, sql)  # another Store: it parses the lines
    assert unpacked and own == parsed and len(own) == 4 * 3_000
    assert own[3_000][:5] == ("loss", 0, "0.5", "float", None)


def test_a_damaged_batch_line_is_set_aside_and_the_rest_is_stored(store_path: Path) -> None:
    ex = tuixp.Experiment("dl", store=store_path)

    @ex.result
    def train():
        for i in range(5):
            ex.log_metrics({"loss": 1.0 / (i + 1)})
        return 0

    train().compute()
    journal = StorePaths(store_path).journal
    journal.mkdir(exist_ok=True)
    bad = {
        "t": "metric_batch",
        "trial_uuid": "x" * 32,
        "experiment": "dl",
        "trial_id": 1,
        "n": 3,  # its columns hold 2 values
        "names": ["loss"],
        "seq": 1,
        "enc": "b64le",
        "cols": {"name": "AAAAAA==", "epoch": "", "value": "", "type": "", "recorded_at": ""},
    }
    (journal / "person-1-00000000.jsonl").write_text(json.dumps(bad) + "\n")
    assert _rows(store_path, "SELECT count(*) FROM metrics") == [(5,)]
    rejected = list((journal / "rejected").glob("*.txt"))
    assert len(rejected) == 1
    assert "metric batch column name does not hold 3 values" in rejected[0].read_text()


def test_metric_points_have_both_axes(store_path: Path) -> None:
    ex = tuixp.Experiment("dl", store=store_path)

    @ex.result
    def train():
        for i in range(4):
            ex.log_metrics({"loss": 1.0 / (i + 1), "acc": i / 4})
        return 0

    before = time.time()
    train().compute()
    after = time.time()
    with Store(store_path).connect() as con:
        points = metric_points(con, "dl", [1])
        only_loss = metric_points(con, "dl", [1], names=["loss"])
    assert sorted(points) == ["acc", "loss"] and list(only_loss) == ["loss"]
    loss = points["loss"][1]
    assert loss.epoch.tolist() == [0, 1, 2, 3]
    assert loss.value.tolist() == [1.0, 0.5, 1.0 / 3, 0.25]
    assert all(before <= t <= after for t in loss.recorded_at.tolist())
    assert loss.recorded_at.tolist() == sorted(loss.recorded_at.tolist())
    assert loss.elapsed[0] == 0.0 and len(loss) == 4


def test_ex_metric_points_reads_one_trials_metric_as_arrays(store_path: Path) -> None:
    ex = tuixp.Experiment("dl", store=store_path)

    lr = ex.parameter("lr")

    @ex.result
    def train(lr):
        for i in (2, 0, 1):  # saved out of order: read back by epoch
            ex.log_metrics({"loss": lr / (i + 1), "steps": i, "ok": i == 1}, epoch=i)
        ex.save_metric("loss", epoch=3, value=float("nan"))
        return 0

    ex.set_parameters(lr=1.0)
    train(lr).compute()
    ex.set_parameters(lr=2.0)
    train(lr).compute()
    latest = ex.metric_points("loss")
    assert latest.trial_id == 2 and latest.epoch.tolist() == [0, 1, 2, 3]
    assert latest.value[:3].tolist() == [2.0, 1.0, 2.0 / 3] and math.isnan(latest.value[3])
    first = ex.metric_points("loss", 1)
    assert first.value[:3].tolist() == [1.0, 0.5, 1.0 / 3]
    assert str(first.epoch.dtype) == "int64" and str(first.value.dtype) == "float64"
    assert ex.metric_points("steps", 1).value.tolist() == [0.0, 1.0, 2.0]  # ints as numbers
    assert ex.metric_points("ok", 1).value.tolist() == [0.0, 1.0, 0.0]
    # By epoch, so the times of points saved out of order are not in order: 2 came first.
    at = first.recorded_at.tolist()
    assert at[2] <= at[0] <= at[1] <= at[3] and first.elapsed[2] == 0.0 and len(first) == 4
    with pytest.raises(errors.MetricNotFound, match="never"):
        ex.metric_points("never")
    with pytest.raises(errors.TrialIDNotFoundError, match="Unable to find trial id: 9"):
        ex.metric_points("loss", 9)


TRAINER = """
import sys, tuixp
ex = tuixp.Experiment("killed", store=sys.argv[1])

@ex.result
def train():
    i = 0
    while True:
        ex.log_metrics({"loss": 1.0 / (i + 1), "step": i})
        i += 1
        if i % 20000 == 0:
            print(i, flush=True)

train().compute()
"""


@pytest.mark.slow
def test_kill_9_mid_training_keeps_every_journaled_point(store_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "trainer.py"
    script.write_text(textwrap.dedent(TRAINER))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = StorePaths(store_path).journal
    try:
        # Wait (60 s at most) until the flusher has journaled a batch while the trial runs.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # a complete batch line (a line still being written would be cut by the kill)
            data = [p.read_bytes() for p in journal.glob("*.jsonl")]
            if any(b'"metric_batch"' in d[: d.rfind(b"\n")] for d in data):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        else:
            pytest.fail("no metric batch was journaled within 60 s")
        assert proc.stdout is not None
        logged = int(proc.stdout.readline())  # it has logged at least this many steps
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert _rows(store_path, "SELECT status FROM trials") == [("interrupted",)]
    rows = _rows(
        store_path,
        "SELECT name, count(*), min(epoch), max(epoch) FROM metrics GROUP BY name ORDER BY name",
    )
    assert [r[0] for r in rows] == ["loss", "step"]
    for _, count, lo, hi in rows:
        assert lo == 0 and hi == count - 1  # a prefix: no point lost before the last kept
        assert count >= 1
    steps = _rows(store_path, "SELECT epoch, value, value_type FROM metrics WHERE name = 'step'")
    assert all(epoch == value and t == "int" for epoch, value, t in steps)
    assert logged >= 20000
