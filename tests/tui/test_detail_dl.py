"""The detail screen of a deep-learning trial (issue 20, items 4 and 5): its system metrics in
the overview (mean and max, apart from the user's metrics) and in the plot after them, and its
artifacts in the Outputs tab with a safe preview (bounded, no control characters). Pilot tests
and SVG snapshots, on a store recorded by a real trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import OptionList

import tuixp
from tests.tui.conftest import fixed_clock
from tests.tui.helpers import loaded, wait_for
from tests.tui.test_detail import _text
from tuixp.store import events
from tuixp.store.store import Store
from tuixp.tui.app import create_app
from tuixp.tui.messages import OutputLoaded
from tuixp.tui.screens.detail import DetailScreen

CSV = "epoch,loss,note\n0,0.9,start\n1,0.5,\x1b[2J\x1b[31mred\x1b]0;pwned\x07\n2,0.25,done\n"
SYSTEM = {"sys/cpu_percent": [50.0, 150.0, 100.0], "sys/rss_mb": [300.0, 340.0, 320.0]}


@pytest.fixture
def dl_store(tmp_path: Path) -> Path:
    store = tmp_path / "dl.duckdb"
    work = tmp_path / "work"
    work.mkdir()
    ex = tuixp.Experiment("dl", store=store)
    ex.system_metrics = False  # the samples below are fixed, for a stable screen

    @ex.result
    def train():
        for epoch, loss in enumerate((0.9, 0.5, 0.25)):
            ex.save_metric("loss", epoch=epoch, value=loss)
        (work / "history.csv").write_text(CSV)
        ex.log_artifact(work / "history.csv")
        (work / "ckpt" / "opt").mkdir(parents=True)
        (work / "ckpt" / "model.bin").write_bytes(b"\x00\x01" * 500)
        (work / "ckpt" / "opt" / "state.bin").write_bytes(b"\x02" * 24)
        ex.log_artifact(work / "ckpt", name="checkpoint")
        return 0.25

    train().compute(seed=7)
    st = Store(store)
    with st.connect() as con:
        (uuid,) = con.execute("SELECT uuid FROM trial_record").fetchone()
    # System samples as the sampler journals them (recorder.on_metric), with fixed values.
    st.record(
        [
            events.metric(uuid, "dl", 1, name, i, v, 1_750_000_000.0 + i, value_type="float")
            for name, values in SYSTEM.items()
            for i, v in enumerate(values)
        ]
    )
    with st.connect() as con:  # ingested, and the trial's times fixed for the snapshots
        con.execute(
            "UPDATE trial_record SET started_at = to_timestamp(1750000000), "
            "finished_at = to_timestamp(1750000012), host = 'gpu-box', pid = 4242, "
            "git_commit = '0123456789abcdef', git_dirty = false, script = 'train.py'"
        )
        con.execute(
            "UPDATE step_record SET started_at = to_timestamp(1750000000), "
            "finished_at = to_timestamp(1750000012)"
        )
    return store


async def _open(pilot: Any) -> DetailScreen:
    app = pilot.app
    await loaded(pilot)
    app.select_experiment("dl")
    await loaded(pilot)
    app.open_trial(1)
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, DetailScreen) and app.screen.detail is not None,
        what="the trial detail",
    )
    return app.screen


async def _preview(pilot: Any, screen: DetailScreen, index: int, messages: list) -> str:
    await pilot.press("6")
    screen.query_one("#output-list", OptionList).highlighted = index
    count = len([m for m in messages if isinstance(m, OutputLoaded)])
    await pilot.press("p")
    await wait_for(
        pilot,
        lambda: len([m for m in messages if isinstance(m, OutputLoaded)]) > count,
        what="the artifact preview",
    )
    await pilot.pause()
    return _text(screen, "#output-preview")


async def test_system_metrics_are_apart_from_the_users_in_the_overview_and_plot(
    dl_store: Path,
) -> None:
    app = create_app(dl_store, clock=fixed_clock, poll_interval=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(pilot)
        text = _text(screen, "#overview-body")
        metrics = text.split("Metrics (last epoch)")[1].split("System")[0]
        assert "loss" in metrics and "sys/" not in metrics and "cpu_percent" not in metrics
        system = text.split("System (sampled while it ran: mean, max)")[1]
        assert "cpu_percent  100, 150 (3 samples)" in system
        assert "rss_mb       320, 340 (3 samples)" in system
        # The plot's "all metrics" are the user's; the system ones come after, one by one.
        assert screen.metric_names() == ["loss", "sys/cpu_percent", "sys/rss_mb"]


async def test_artifacts_are_listed_with_a_safe_preview(dl_store: Path) -> None:
    messages: list = []
    app = create_app(dl_store, clock=fixed_clock, poll_interval=3600)
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        screen = await _open(pilot)
        options = screen.query_one("#output-list", OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels == [
            "artifact  checkpoint  dir  1,024 bytes",
            f"artifact  history.csv  file  {len(CSV.encode()):,} bytes",
        ]
        csv_text = await _preview(pilot, screen, 1, messages)
        assert "\x1b" not in csv_text and "\x07" not in csv_text
        assert "epoch  loss  note" in csv_text
        assert "1      0.5   \ufffd[2J\ufffd[31mred\ufffd]0;pwned\ufffd" in csv_text
        folder = await _preview(pilot, screen, 0, messages)
        assert "checkpoint/: 2 files, 1,024 bytes" in folder
        assert "model.bin  1,000 bytes" in folder and "opt/state.bin  24 bytes" in folder


def _snap_app(store: Path) -> Any:
    return create_app(store, clock=fixed_clock, poll_interval=3600)


def test_detail_artifact_preview_80x24(dl_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        screen = await _open(pilot)
        await pilot.press("6")
        screen.query_one("#output-list", OptionList).highlighted = 1
        await pilot.press("p")
        await wait_for(
            pilot,
            lambda: "epoch" in _text(screen, "#output-preview"),
            what="the CSV preview",
        )

    assert snap_compare(_snap_app(dl_store), terminal_size=(80, 24), run_before=run_before)


def test_detail_system_metrics_80x24(dl_store: Path, snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _open(pilot)
        await pilot.press("G")  # the overview's end: metrics, then the system's
        await pilot.pause(0.2)

    assert snap_compare(_snap_app(dl_store), terminal_size=(80, 24), run_before=run_before)
