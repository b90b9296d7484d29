"""bench/run_all.py and the peers harness's bookkeeping, on fake benchmarks: no real one runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.bench_modules import load

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def run_all():
    return load("bench_run_all", BENCH / "run_all.py")


@pytest.fixture(scope="module")
def peers():
    return load("bench_peers_run", BENCH / "peers" / "run.py")


def _sections(doc: str) -> list[str]:
    return [line[3:] for line in doc.splitlines() if line.startswith("## ")]


def test_assemble_orders_parts_and_reports_failures(run_all, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "peers.md").write_text("## Against peers\n\npeers figures\n")
    (parts / "grid.md").write_text("## Grids\n\n### detail\n\nold grid figures\n")
    (parts / "trial_overhead.md").write_text("no heading here\n")
    # Written by its benchmark on 2030-01-01: a part not run this time says that date.
    (parts / "zz_extra.md").write_text(
        "<!-- written by its benchmark 2030-01-01 09:30 UTC -->\n## Extra\n\nextra figures\n"
    )
    runs = [
        run_all.BenchRun("peers", 0, 12.5, ["done"], wrote_part=True),
        run_all.BenchRun(
            "grid", 3, 1.25, ["Traceback (most recent call last):", "ValueError: grid exploded"]
        ),
        run_all.BenchRun("trial_overhead", 0, 2.0, [], wrote_part=True),
        run_all.BenchRun("tui_scale", None, 900.0, ["(killed after 900 s)"]),
    ]
    machine = {"CPU": "Fake CPU 3000", "Cores": "2"}
    doc = run_all.assemble(parts, runs, machine, "2030-01-02 03:04 UTC", quick=True)

    assert _sections(doc) == [
        "Machine",
        "This run",
        "trial_overhead",
        "grid: FAILED (exit 3)",
        "tui_scale: FAILED (timed out)",
        "Against peers",
        "Extra",
    ]
    assert "| CPU | Fake CPU 3000 |" in doc
    assert "2030-01-02 03:04 UTC, quick sizes" in doc
    assert "**2 benchmark(s) failed: grid, tui_scale.**" in doc
    failure = doc.split("## grid: FAILED (exit 3)")[1].split("\n## ")[0]
    assert "ValueError: grid exploded" in failure
    assert "from an earlier run" in failure and "old grid figures" in failure
    assert "### Grids" in failure and "#### detail" in failure  # the stale part nests under it
    assert "(killed after 900 s)" in doc
    # A part whose bench did not run this time is kept, and says so.
    extra = doc.split("## Extra")[1]
    assert "extra figures" in extra and "Not run this time" in extra
    assert "this section is from 2030-01-01 09:30._" in extra
    assert "<!--" not in extra  # the line that dates the part is not shown
    assert "Not run this time" not in doc.split("## Against peers")[1].split("## Extra")[0]


def test_discover_skips_helpers_and_orders_benches(run_all, tmp_path: Path) -> None:
    for name in (
        "common.py",
        "run_all.py",
        "_scratch.py",
        "zeta.py",
        "grid.py",
        "trial_overhead.py",
    ):
        (tmp_path / name).write_text("")
    (tmp_path / "peers").mkdir()
    (tmp_path / "peers" / "run.py").write_text("")
    (tmp_path / "notes").mkdir()  # a folder without run.py is not a benchmark
    assert [b.name for b in run_all.discover(tmp_path)] == [
        "trial_overhead",
        "grid",
        "peers",
        "zeta",
    ]


FAKE_OK = """
import sys
import common
common.write_part("{name}", "## {title}\\n\\nquick={{}}\\n".format("--quick" in sys.argv))
print("{name} measured")
"""
FAKE_FAIL = """
import sys
print("about to fail")
sys.exit("grid could not measure anything")
"""


def _fake_benches(root: Path) -> Path:
    bench = root / "bench"
    (bench / "peers").mkdir(parents=True)
    (bench / "peers" / "run.py").write_text(
        textwrap.dedent(FAKE_OK.format(name="peers", title="Fake peers"))
    )
    (bench / "zeta.py").write_text(textwrap.dedent(FAKE_OK.format(name="zeta", title="Zeta")))
    (bench / "grid.py").write_text(textwrap.dedent(FAKE_FAIL))
    return bench


def _run_all(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--bench-dir",
            str(root / "bench"),
            "--parts-dir",
            str(root / "parts"),
            "--out",
            str(root / "benchmarks.md"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_all_runs_fake_benches_and_reports_the_failed_one(tmp_path: Path) -> None:
    _fake_benches(tmp_path)
    done = _run_all(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[grid] grid could not measure anything" in done.stdout
    assert "== grid: FAILED (exit 1)" in done.stdout
    assert "1 failed (grid)" in done.stdout
    doc = (tmp_path / "benchmarks.md").read_text()
    assert _sections(doc) == ["Machine", "This run", "grid: FAILED (exit 1)", "Fake peers", "Zeta"]
    assert "quick=True" in doc.split("## Fake peers")[1]  # `make bench` passes --quick
    assert "| grid | FAILED (exit 1) |" in doc
    assert "grid could not measure anything" in doc.split("## grid")[1]
    assert (
        "Not written yet, skipped: trial_overhead, ingest, step_cache, hashing, "
        "concurrent_writers, reader_conflicts, cli_startup, tui_scale"
    ) in done.stdout
    assert "peers_metrics" not in done.stdout  # its script is run by hand, not by run_all

    full = _run_all(tmp_path, "--full", "--only", "zeta")
    assert full.returncode == 0, full.stdout + full.stderr
    doc = (tmp_path / "benchmarks.md").read_text()
    assert "quick=False" in doc.split("## Zeta")[1]
    assert "full sizes" in doc
    # The parts of benchmarks not run this time stay, marked as such.
    assert "Not run this time" in doc.split("## Fake peers")[1]


def test_run_all_assembles_without_running_anything(tmp_path: Path) -> None:
    bench = _fake_benches(tmp_path)
    (bench / "grid.py").write_text("raise SystemExit('must not run')\n")
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "grid.md").write_text("## Grids\n\ngrid figures\n")
    done = _run_all(tmp_path, "--assemble-only")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "must not run" not in done.stdout
    doc = (tmp_path / "benchmarks.md").read_text()
    assert "No benchmark ran" in doc and "grid figures" in doc
    assert _sections(doc) == ["Machine", "This run", "Grids"]


def test_run_all_kills_a_bench_past_its_timeout(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "slow.py").write_text("import time\nprint('starting', flush=True)\ntime.sleep(60)\n")
    done = _run_all(tmp_path, "--timeout", "1")
    assert done.returncode == 1
    doc = (tmp_path / "benchmarks.md").read_text()
    assert "## slow: FAILED (timed out)" in doc
    assert "starting" in doc and "(killed after 1 s)" in doc


def test_run_all_refuses_an_unknown_bench(tmp_path: Path) -> None:
    _fake_benches(tmp_path)
    done = _run_all(tmp_path, "--only", "nope")
    assert done.returncode == 2
    assert "No such benchmark: nope" in done.stderr
    assert not (tmp_path / "benchmarks.md").exists()


def test_peers_part_keeps_the_other_sizes(peers) -> None:
    first = peers.merge_part("", "quick", "### Quick sizes: A")
    assert "### Quick sizes: A" in first and "Full sizes: not measured yet" in first
    both = peers.merge_part(first, "full", "### Full sizes: B")
    assert both.index("### Full sizes: B") < both.index("### Quick sizes: A")
    again = peers.merge_part(both, "quick", "### Quick sizes: C")
    assert "### Full sizes: B" in again and "### Quick sizes: C" in again
    assert "Quick sizes: A" not in again and "not measured yet" not in again
    assert again.startswith("## Against daskperiment, MLflow and Sacred")


def test_peers_targets_say_by_how_much_one_is_missed(peers) -> None:
    met = peers.Target("disk", "daskperiment", 20, 31.0, "allocated").row()
    missed = peers.Target("per trial", "mlflow", 5, 4.0, "last 100").row()
    unknown = peers.Target("per trial", "mlflow", 5, None, "last 100").row()
    assert met[2] == "met"
    assert missed[2] == "**missed**: 4.0x of 5x (1.2x short)"
    assert unknown[2] == "unknown"


def test_peers_expected_answers_and_timing_summary() -> None:
    graph = load("bench_peers_graph", BENCH / "peers" / "graph.py")
    top = graph.expected_top(500)
    assert len(top) == 10 and top == sorted(top, reverse=True) and len(set(top)) == 10
    assert top[0] == max(graph.score(p["a"] + p["b"]) for p in map(graph.params, range(1, 501)))
    times = [1.0] + [0.002] * 100 + [0.004] * 100
    s = graph.summarize(times)
    assert s["first_trial_ms"] == 1000.0
    assert s["first_ms"] == pytest.approx(2.0) and s["last_ms"] == pytest.approx(4.0)
    assert s["loop_s"] == pytest.approx(1.6)


def _measured(peers, last_ms: float, disk: int, read_s: float, version: str = "1.0"):
    record = {
        "version": version,
        "first_trial_ms": 100.0,
        "first_ms": last_ms,
        "first_median_ms": last_ms,
        "last_ms": last_ms,
        "last_median_ms": last_ms,
        "total_s": last_ms,
        "import_s": 0.5,
    }
    reads = {"import_s": 0.5, "first_s": read_s, "again_s": read_s}
    return peers.Measured(
        record=record, history=dict(reads), top10=dict(reads), disk=(disk, disk, 3)
    )


def test_peers_report_computes_ratios_and_verdicts(peers) -> None:
    results = {
        "tuixp": _measured(peers, last_ms=4.0, disk=1_000_000, read_s=0.01),
        "daskperiment": _measured(peers, last_ms=60.0, disk=10_000_000, read_s=0.2),
        "mlflow": _measured(peers, last_ms=12.0, disk=3_000_000, read_s=0.04),
        "sacred": peers.Measured(error="could not install sacred (sacred==0.8.7): exit 1\nno net"),
    }
    text = peers.render(
        [1_000],
        {1_000: results},
        {},
        0,
        quick=False,
        started="then",
        elapsed=60.0,
        profile=None,
        loads=(1.0, 2.0),
    )
    rows = {
        line.split("|")[1].strip(): line
        for line in text.splitlines()
        if line.startswith("| ") and "x" in line
    }
    assert (
        "15.0x (mean of the last 100 trials) | met"
        in rows["per-trial cost at 1,000 trials: 10x below daskperiment's"]
    )
    assert (
        "3.0x (mean of the last 100 trials) | **missed**: 3.0x of 5x (1.7x short)"
        in rows["per-trial cost at 1,000 trials: 5x below MLflow's"]
    )
    assert "**missed**: 10.0x of 20x (2.0x short)" in rows["disk: 20x smaller than daskperiment's"]
    # cold read = import + first call: (0.5 + 0.04) / (0.5 + 0.01)
    assert (
        f"{(0.54 / 0.51):.1f}x"
        in rows["history read-back cold: 5x faster than MLflow's search_runs"]
    )
    assert "| sacred |" in text and "failed" in text.split("| sacred |")[1].splitlines()[0]
    assert "**Could not measure** sacred: could not install sacred" in text
    assert "Checked: tuixp, daskperiment, mlflow each read back 1,000 history rows" in text
