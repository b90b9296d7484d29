"""docs/benchmarks.md is what bench/run_all.py assembles from docs/benchmarks/, notes included.

No benchmark runs here: the assembler reads the committed parts, or fake parts in a temporary
folder written by the real ``common.write_part``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.bench_modules import load

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
PARTS = ROOT / "docs" / "benchmarks"


@pytest.fixture(scope="module")
def run_all():
    return load("bench_run_all_doc", BENCH / "run_all.py")


@pytest.fixture(scope="module")
def common(run_all):
    return sys.modules["common"]  # the module run_all.py imports from bench/


def _header(doc: str) -> tuple[str, dict[str, str]]:
    """The date and the machine table of an assembled document with no benchmark run."""
    lines = doc.splitlines()
    (date,) = [
        line.removeprefix("Assembled: ").removesuffix(", no benchmark run.")
        for line in lines
        if line.startswith("Assembled: ")
    ]
    table = lines[lines.index("## Machine") + 4 : lines.index("## This run") - 1]
    machine = {}
    for row in table:
        key, value = row.removeprefix("| ").removesuffix(" |").split(" | ", 1)
        machine[key] = value
    return date, machine


def test_the_committed_parts_assemble_into_the_committed_document(run_all) -> None:
    committed = DOC.read_text()
    date, machine = _header(committed)
    assert machine["CPU"] and "tuixp commit" in machine
    assembled = run_all.assemble(PARTS, [], machine, date, quick=True)
    # The document holds nothing but what the parts and notes hold: every line survives.
    assert assembled.splitlines() == committed.splitlines()
    assert assembled == committed


def _without_header(doc: str) -> list[str]:
    """The document less the lines that describe this assembly (its date, the machine)."""
    lines = doc.splitlines()
    start, end = lines.index("## Machine"), lines.index("## This run")
    return [
        line
        for i, line in enumerate(lines)
        if not line.startswith(("Assembled: ", "Last run: ")) and not start < i < end
    ]


def test_assemble_only_rewrites_the_committed_document_as_it_is(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--assemble-only", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _without_header(out.read_text()) == _without_header(DOC.read_text())


def test_every_committed_part_is_in_the_document(run_all) -> None:
    doc = DOC.read_text()
    parts, notes = run_all.find_parts(PARTS)
    assert set(notes) <= set(parts)  # every note belongs to a benchmark's part
    for path in [*parts.values(), *notes.values()]:
        text = run_all.common.read_part(path)[0]
        assert text in doc, path.name
    # in ORDER: a section the assembler does not know would go last, by name
    assert set(parts) <= set(run_all.ORDER)


FAKE = """
import sys
import common
common.write_part("zeta", "## Zeta\\n\\n| figure |\\n|---:|\\n| {} |\\n".format(sys.argv[-1]))
"""


def test_a_benchmark_run_rewrites_its_part_and_keeps_its_notes(common, tmp_path: Path) -> None:
    bench, parts, out = tmp_path / "bench", tmp_path / "parts", tmp_path / "benchmarks.md"
    bench.mkdir()
    (bench / "zeta.py").write_text(textwrap.dedent(FAKE))
    (bench / "grid.py").write_text("raise SystemExit('grid must not run')\n")
    # An earlier run of each benchmark, and notes written by hand about zeta's figures.
    old = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)
    common.write_part("zeta", "## Zeta\n\n| figure |\n|---:|\n| 111 |\n", parts, when=old)
    common.write_part("grid", "## Grids\n\ngrid figures\n", parts, when=old)
    notes = "The 111 above was measured on a quiet machine; see issue 99.\n\n### A/B by hand\n"
    (parts / "zeta.notes.md").write_text(notes)
    os.utime(parts / "grid.md", (0, 0))  # the file's own time is not the part's date

    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--bench-dir",
            str(bench),
            "--parts-dir",
            str(parts),
            "--out",
            str(out),
            "--only",
            "zeta",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "grid must not run" not in done.stdout
    assert (parts / "zeta.notes.md").read_text() == notes  # no benchmark writes notes
    part, recorded = common.read_part(parts / "zeta.md")
    assert "| --quick |" in part and "111" not in part  # `make bench` passes --quick
    assert recorded is not None and recorded != "2030-01-02 03:04"

    doc = out.read_text()
    zeta = doc.split("## Zeta")[1]
    # The new figures, then the notes, unchanged; no stale-date line: zeta ran this time.
    assert zeta.index("| --quick |") < zeta.index(notes.strip())
    assert "Not run this time" not in zeta and "<!--" not in doc
    grids = doc.split("## Grids")[1].split("## Zeta")[0]
    assert "grid figures" in grids
    assert "this section is from 2030-01-02 03:04._" in grids


def test_a_part_says_when_its_benchmark_wrote_it(run_all, common, tmp_path: Path) -> None:
    when = dt.datetime(2031, 5, 6, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    path = common.write_part("grid", "## Grids\n\nfigures\n", tmp_path, when=when)
    assert (
        path.read_text()
        .splitlines()[0]
        .startswith("<!-- written by its benchmark 2031-05-06 10:30 UTC")
    )
    assert common.read_part(path) == ("## Grids\n\nfigures", "2031-05-06 10:30")
    # A part from before parts were dated, another one unknown to ORDER, and notes alone.
    (tmp_path / "step_cache.md").write_text("## Step cache\n\nold figures\n")
    (tmp_path / "aaa_new.md").write_text("## New\n\nnew figures\n")
    (tmp_path / "zz_only.notes.md").write_text("written by hand, no benchmark\n")
    doc = run_all.assemble(tmp_path, [], {"CPU": "x"}, "2031-06-01 00:00 UTC", quick=True)

    sections = [line for line in doc.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Machine",
        "## This run",
        "## Grids",
        "## Step cache",
        "## New",
        "## zz_only",
    ]
    assert (
        "_Not run this time (no benchmark script, or not selected); this section is from "
        "2031-05-06 10:30._"
    ) in doc.split("## Grids")[1]
    # Undated: nothing is said of its date rather than the assembly's or the file's time.
    assert "Not run this time" not in doc.split("## Step cache")[1].split("## New")[0]
    assert "written by hand, no benchmark" in doc.split("## zz_only")[1]


def test_no_benchmark_writes_notes(common, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hand-written notes"):
        common.write_part("grid.notes", "## Grids\n", tmp_path)
    assert not list(tmp_path.iterdir())
