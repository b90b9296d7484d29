"""Metric points reach listeners in batches (``tuixp.execution.metric_news``): real trials with a
listener, every point carried in order, far fewer events than points, the last point shown, and
a point saved before a long pause shown during it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import tuixp
from tuixp.cli.live import fmt_metric
from tuixp.cli.run import TextProgress
from tuixp.execution.events import ProgressEvent
from tuixp.execution.metric_news import MAX_BATCH

N = 200_000


def _joined(events: list[ProgressEvent], name: str) -> tuple[list[int], list[float]]:
    epochs: list[int] = []
    values: list[float] = []
    for ev in events:
        if ev.kind == "metrics" and name in ev.data["points"]:
            epochs += ev.data["points"][name]["epoch"]
            values += ev.data["points"][name]["value"]
    return epochs, values


def test_a_listener_gets_every_point_in_far_fewer_events(store_path: Path) -> None:
    ex = tuixp.Experiment("many", store=store_path)
    ex.system_metrics = False  # only the step\'s own points

    @ex.result
    def train() -> int:
        for i in range(N):
            ex.save_metric("loss", epoch=i, value=1.0 / (i + 1))
            if i % 10 == 0:
                ex.log_metrics({"acc": i / N})  # its own counter: epochs 0, 1, 2, ...
        return N

    events: list[ProgressEvent] = []
    assert train().compute(listeners=[events.append]) == N
    kinds = [ev.kind for ev in events]
    assert "metric" not in kinds  # no event a point any more
    batches = [ev for ev in events if ev.kind == "metrics"]
    assert 0 < len(batches) <= 200 < N  # a few a second, whatever the loop saves
    sizes = [sum(len(c["epoch"]) for c in ev.data["points"].values()) for ev in batches]
    assert max(sizes) <= MAX_BATCH  # a JSON line stays bounded
    assert all(ev.step == "train" and ev.trial_id == 1 for ev in batches)
    # every point, in the order saved, nothing twice
    epochs, values = _joined(events, "loss")
    assert epochs == list(range(N))
    assert values == [1.0 / (i + 1) for i in range(N)]
    acc_epochs, acc_values = _joined(events, "acc")
    assert acc_epochs == list(range(N // 10))
    assert acc_values == [i / N for i in range(0, N, 10)]
    # the batches come between the step's start and its end; the last one ends on the last point
    started, finished = kinds.index("task_started"), kinds.index("task_finished")
    assert all(started < kinds.index("metrics") and i < finished for i in _at(kinds, "metrics"))
    assert batches[-1].data["points"]["loss"]["epoch"][-1] == N - 1
    # and the store has them all, as without a listener
    assert len(ex.load_metric("loss", 1)) == N


def _at(kinds: list[str], kind: str) -> list[int]:
    return [i for i, k in enumerate(kinds) if k == kind]


def test_points_saved_before_a_pause_are_shown_during_it(store_path: Path) -> None:
    """The step waits until its listener has seen its last point: the batch went out on the
    ticker's tick, not at the step's end (else the step would wait for ever: here, 60 s)."""
    ex = tuixp.Experiment("pause", store=store_path)
    ex.system_metrics = False  # only the step\'s own points
    seen = threading.Event()
    events: list[ProgressEvent] = []

    def listener(ev: ProgressEvent) -> None:
        events.append(ev)
        if ev.kind == "metrics" and 2 in ev.data["points"].get("loss", {}).get("epoch", []):
            seen.set()

    @ex.result
    def train() -> bool:
        for epoch in range(3):
            ex.save_metric("loss", epoch=epoch, value=0.5**epoch)
        return seen.wait(60)

    assert train().compute(listeners=[listener]) is True
    assert _joined(events, "loss") == ([0, 1, 2], [1.0, 0.5, 0.25])


def test_text_progress_shows_the_latest_epoch_and_metric_of_a_long_loop(
    store_path: Path,
) -> None:
    """``tuixp run``'s text progress (off a terminal: its live line) during a real run of many
    points: the running step, its last epoch and each metric's last value."""
    ex = tuixp.Experiment("textlive", store=store_path)
    ex.system_metrics = False  # only the step\'s own points
    text = TextProgress(trials=1, steps_per_trial=1)
    shown = threading.Event()
    lines: list[str] = []
    last = N - 1

    def listener(ev: ProgressEvent) -> None:
        text(ev)
        if ev.kind == "metrics":
            with text.lock:
                line = text.live.line()
            if f"epoch {last}" in line:
                lines.append(line)
                shown.set()

    @ex.result
    def train() -> bool:
        for i in range(N):
            ex.log_metrics({"loss": 1.0 / (i + 1), "acc": i / N}, epoch=i)
        return shown.wait(60)

    assert train().compute(listeners=[listener]) is True
    loss, acc = fmt_metric(1.0 / N), fmt_metric(last / N)
    assert lines[0] == f"train · epoch {last} · loss {loss} · acc {acc}"
    assert text.finished == 1


def test_a_listener_that_fails_on_a_batch_costs_the_trial_nothing(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ex = tuixp.Experiment("brittle", store=store_path)
    ex.system_metrics = False
    kinds: list[str] = []

    def listener(ev: ProgressEvent) -> None:
        kinds.append(ev.kind)
        if ev.kind == "metrics":
            raise RuntimeError("the listener broke")

    @ex.result
    def train() -> int:
        for epoch in range(5):
            ex.save_metric("loss", epoch=epoch, value=1.0)
        return 5

    with caplog.at_level(logging.WARNING, logger="tuixp"):
        assert train().compute(listeners=[listener]) == 5
    assert "A progress listener failed on metric points: the listener broke" in caplog.text
    assert kinds[-2:] == ["task_finished", "trial_finished"] and "metrics" in kinds
    assert len(ex.load_metric("loss", 1)) == 5
    assert ex.get_history()["Result"].tolist() == [5]
