"""Run every benchmark of the project and assemble docs/benchmarks.md (what `make bench` does).

A benchmark is ``bench/NAME.py`` or ``bench/NAME/run.py``; each accepts ``--quick`` and writes its
figures to ``docs/benchmarks/NAME.md`` (see bench/common.py), the time it wrote them on the part's
first line. This script runs them one after the other (``--quick`` unless ``--full``), then writes
docs/benchmarks.md: the machine and the date, a summary of the run, and every part of
docs/benchmarks/ in a fixed order (``ORDER``, then by name), none left out. A missing benchmark is
skipped; one that fails or times out is reported in the output and in the document, next to its
last figures if an earlier run left some, and the script then exits 1.

docs/benchmarks.md is made from the files of docs/benchmarks/ only, so it is never edited by
hand. What a person writes about a benchmark's figures goes in ``docs/benchmarks/NAME.notes.md``,
which no benchmark writes: it is placed right after the part ``NAME.md`` (or alone, when there is
no such part), and running the benchmark again rewrites the part and keeps the notes. A part whose
benchmark did not run this time says when it was written, from its first line; a part without
that line (one written before the line existed) says nothing of its date rather than guess it.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - the bench folder is not a package

# Parts appear in this order; parts not listed here follow, by name.
ORDER = (
    "trial_overhead",
    "ingest",
    "grid",
    "step_cache",
    "hashing",
    "concurrent_writers",
    "reader_conflicts",
    "cli_startup",
    "tui_scale",
    "system_metrics",
    "tui_metric_plot",
    "tui_compare_plot",
    "metrics_volume",
    "live_metrics",
    "remote_metrics",
    "short_run_read",
    "peers_metrics",
    "merge",
    "peers",
)
NOT_BENCHMARKS = {"run_all", "common", "tui_frames", "tui_fastdatatable"}  # helpers of benches
# Parts written by a script that `make bench` does not run (run it by hand to rewrite the part).
BY_HAND = {"peers_metrics": "bench/peers/metrics_heavy.py"}
TAIL_LINES = 15


@dataclass
class Bench:
    name: str
    script: Path


@dataclass
class BenchRun:
    name: str
    returncode: int | None  # None: killed after the timeout
    seconds: float
    tail: list[str] = field(default_factory=list)
    wrote_part: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def status(self) -> str:
        if self.returncode is None:
            return "FAILED (timed out)"
        if self.returncode != 0:
            return f"FAILED (exit {self.returncode})"
        return "ok" if self.wrote_part else "ok (section not rewritten)"


def order_key(name: str) -> tuple[int, str]:
    return (ORDER.index(name), "") if name in ORDER else (len(ORDER), name)


def discover(bench_dir: Path) -> list[Bench]:
    """``bench/NAME.py`` and ``bench/NAME/run.py``, in the documented order."""
    found = {}
    for path in bench_dir.glob("*.py"):
        if path.stem not in NOT_BENCHMARKS and not path.stem.startswith("_"):
            found[path.stem] = Bench(path.stem, path)
    for path in bench_dir.glob("*/run.py"):
        name = path.parent.name
        if not name.startswith(("_", ".")):
            found.setdefault(name, Bench(name, path))
    return sorted(found.values(), key=lambda b: order_key(b.name))


def run_bench(bench: Bench, quick: bool, parts_dir: Path, timeout: float) -> BenchRun:
    """Run one benchmark, echoing its output with its name, and keep its last lines."""
    cmd = [sys.executable, str(bench.script)] + (["--quick"] if quick else [])
    env = dict(os.environ)
    env["TUIXP_BENCH_PARTS"] = str(parts_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent), str(common.ROOT), env.get("PYTHONPATH", "")]
    )
    part = parts_dir / f"{bench.name}.md"
    before = part.stat().st_mtime_ns if part.exists() else None
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    print(f"== {bench.name}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=common.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    assert proc.stdout is not None
    stream = proc.stdout

    def echo() -> None:
        for line in stream:
            line = line.rstrip("\n")
            tail.append(line)
            print(f"[{bench.name}] {line}", flush=True)

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    returncode: int | None
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole session: the bench's children go too
        proc.wait()
        returncode = None
    reader.join(timeout=10)
    if returncode is None:
        tail.append(f"(killed after {timeout:.0f} s)")
    seconds = time.perf_counter() - start
    after = part.stat().st_mtime_ns if part.exists() else None
    run = BenchRun(
        bench.name,
        returncode,
        seconds,
        list(tail),
        wrote_part=after is not None and after != before,
    )
    print(f"== {bench.name}: {run.status} in {seconds:.1f} s", flush=True)
    return run


def _part_text(path: Path, name: str) -> tuple[str, str | None]:
    """A part (or notes) file's markdown, with a heading if it had none, and its written time."""
    text, recorded = common.read_part(path)
    if not text.startswith("## "):
        text = f"## {name}\n\n{text}"
    return text, recorded


def find_parts(parts_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The generated parts (``NAME.md``) and the hand-written notes (``NAME.notes.md``)."""
    parts: dict[str, Path] = {}
    notes: dict[str, Path] = {}
    if parts_dir.is_dir():
        for path in parts_dir.glob("*.md"):
            if path.name.endswith(common.NOTES_SUFFIX):
                notes[path.name[: -len(common.NOTES_SUFFIX)]] = path
            else:
                parts[path.stem] = path
    return parts, notes


def assemble(
    parts_dir: Path, runs: list[BenchRun], machine: dict[str, str], date: str, quick: bool
) -> str:
    """docs/benchmarks.md from the parts and notes in ``parts_dir`` and what happened in this run.

    Each name's section is its part, then (if the part is from an earlier run) when it was
    written, then its notes; sections are two blank lines apart."""
    by_name = {r.name: r for r in runs}
    parts, notes = find_parts(parts_dir)
    names = sorted(set(parts) | set(notes) | set(by_name), key=order_key)
    sizes = "quick sizes (`--quick`)" if quick else "full sizes"
    out = [
        "# tuixp benchmarks",
        "",
        "Generated by `bench/run_all.py` from the files in `docs/benchmarks/`; do not edit it by "
        "hand. Regenerate with `make bench`, which runs every benchmark at its quick sizes, or "
        "`.venv/bin/python bench/run_all.py --full` for the full sizes (`--only NAME` runs one; "
        "`--assemble-only` runs none and rebuilds this file from the sections). Each benchmark is "
        "`bench/NAME.py` or `bench/NAME/run.py`; it accepts `--quick` and writes its section to "
        "`docs/benchmarks/NAME.md`, which this file gathers in a fixed order. What is written by "
        "hand about a benchmark's figures goes in `docs/benchmarks/NAME.notes.md`, which no "
        "benchmark writes: it is placed after that benchmark's section and outlives its next "
        "run. "
        "Figures are measured on the machine below; ratios are against a baseline measured in "
        "the same run. Times are UTC.",
        "",
        f"Last run: {date}, {sizes}." if runs else f"Assembled: {date}, no benchmark run.",
        "",
        "## Machine",
        "",
        common.markdown_table(["", ""], machine.items()),
        "",
        "## This run",
        "",
    ]
    if runs:
        out.append(
            common.markdown_table(
                ["benchmark", "status", "time (s)"],
                [
                    (r.name, r.status, f"{r.seconds:.1f}")
                    for r in sorted(runs, key=lambda r: order_key(r.name))
                ],
                right=[2],
            )
        )
    else:
        out.append("No benchmark ran: the sections below are as their benchmarks last wrote them.")
    failed = [r.name for r in runs if not r.ok]
    if failed:
        out += [
            "",
            f"**{len(failed)} benchmark(s) failed: {', '.join(failed)}.** Their sections "
            "below say what happened.",
        ]
    for name in names:
        out += ["", "", _section(name, by_name.get(name), parts.get(name), notes.get(name))]
    return "\n".join(out).rstrip() + "\n"


def _section(name: str, run: BenchRun | None, part: Path | None, notes: Path | None) -> str:
    """One name's section: its part and what this run did to it, then its notes."""
    blocks: list[str] = []
    demote = run is not None and not run.ok
    if demote:
        assert run is not None
        blocks += [
            f"## {name}: {run.status}",
            f"`{name}` {run.status.lower()} after {run.seconds:.1f} s in this run. "
            "Its last lines of output:",
            "\n".join(["```", *run.tail, "```"]),
        ]
        if part is not None:
            blocks += [
                "The figures below are from an earlier run and were not confirmed by this one.",
                _demote(_part_text(part, name)[0]),
            ]
    elif part is None:
        if run is not None:
            blocks += [f"## {name}", f"`{name}` ran but wrote no `docs/benchmarks/{name}.md`."]
    else:
        text, recorded = _part_text(part, name)
        blocks.append(text)
        if run is None and recorded is not None:
            blocks.append(
                "_Not run this time (no benchmark script, or not selected); "
                f"this section is from {recorded}._"
            )
        elif run is not None and not run.wrote_part:
            blocks.append(
                "_The benchmark ran but did not rewrite this section; it is from an "
                f"earlier run{f' ({recorded})' if recorded else ''}._"
            )
    if notes is not None:
        text = common.read_part(notes)[0]
        if not blocks and not text.startswith("## "):
            text = f"## {name}\n\n{text}"
        blocks.append(_demote(text) if demote else text)
    return "\n\n".join(blocks)


def _demote(text: str) -> str:
    """A stale part nested under its failure heading: its headings go one level down."""
    return "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full sizes (default: --quick)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this benchmark (repeatable); other parts are kept",
    )
    parser.add_argument("--bench-dir", type=Path, default=common.ROOT / "bench")
    parser.add_argument("--parts-dir", type=Path, default=common.PARTS_DIR)
    parser.add_argument("--out", type=Path, default=common.ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--assemble-only",
        action="store_true",
        help="run nothing: rebuild the document from the parts as they are",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one benchmark may take (default 900 quick, 14400 full)",
    )
    args = parser.parse_args(argv)
    quick = not args.full
    timeout = args.timeout or (900.0 if quick else 14400.0)
    benches = discover(args.bench_dir)
    unknown = set(args.only) - {b.name for b in benches}
    if unknown:
        print(
            f"No such benchmark: {', '.join(sorted(unknown))}. Found: "
            f"{', '.join(b.name for b in benches) or 'none'}.",
            file=sys.stderr,
        )
        return 2
    if args.only:
        benches = [b for b in benches if b.name in args.only]
    if args.assemble_only:
        benches = []
    args.parts_dir.mkdir(parents=True, exist_ok=True)
    found = {b.name for b in discover(args.bench_dir)}
    missing = [n for n in ORDER if n not in found and n not in BY_HAND]
    if missing:
        print(f"Not written yet, skipped: {', '.join(missing)}", flush=True)
    date = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    runs = [run_bench(b, quick, args.parts_dir, timeout) for b in benches]
    doc = assemble(args.parts_dir, runs, common.machine_info(), date, quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(doc)
    failed = [r for r in runs if not r.ok]
    print(
        f"Wrote {args.out}: {len(runs)} benchmark(s) run, {len(failed)} failed"
        + (f" ({', '.join(r.name for r in failed)})" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
