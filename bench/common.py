"""Helpers every benchmark may use: the machine it ran on, timing, disk use, markdown parts.

Standard library only, so a benchmark starts fast and this module runs under any interpreter.

The convention for a benchmark ``bench/NAME.py`` (or ``bench/NAME/run.py``):
- it accepts ``--quick`` (small sizes, for ``make bench``; a few minutes at most) and runs its
  full sizes without it;
- it prints its figures and writes them to ``docs/benchmarks/NAME.md`` with ``write_part``:
  markdown starting with a level-2 heading, figures measured in the same run as their baseline.
  ``write_part`` puts the time it wrote the part (UTC) on the file's first line, an HTML comment
  that ``read_part`` takes off again, so that docs/benchmarks.md can say how old a part is;
- anything written by hand about a benchmark's figures (an A/B run, an explanation, a figure
  measured apart) goes in ``docs/benchmarks/NAME.notes.md``, which no benchmark writes:
  ``bench/run_all.py`` places it right after the part, and the next run only rewrites the part;
- it exits non-zero when it could not measure what it promises (``bench/run_all.py`` then says
  so in docs/benchmarks.md instead of hiding it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS_DIR = ROOT / "docs" / "benchmarks"
NOTES_SUFFIX = ".notes.md"  # docs/benchmarks/NAME.notes.md: hand-written, never by a benchmark
# The first line write_part gives a part: when the benchmark wrote it, in UTC.
RECORDED = (
    "<!-- written by its benchmark {when} UTC; the next run rewrites this file: "
    "hand-written notes go in {name}.notes.md -->"
)
RECORDED_RE = re.compile(r"<!-- written by its benchmark (\d{4}-\d\d-\d\d \d\d:\d\d) UTC\b.*-->")
PACKAGES = ("tuixp", "dask", "distributed", "duckdb", "pyarrow", "pandas", "numpy", "textual")


def arguments(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--quick`` flag every benchmark accepts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, as `make bench` runs it (a few minutes at most)",
    )
    return parser


# -- the machine -------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_info(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """What a reader needs to compare figures across machines, as printable strings."""
    memory = _memory_bytes()
    versions = package_versions(packages)
    return {
        "CPU": _cpu_model(),
        "Cores": str(os.cpu_count() or "unknown"),
        "RAM": f"{memory / 2**30:.1f} GiB" if memory else "unknown",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "tuixp commit": _git_commit(ROOT),
    }


def machine_line(info: dict[str, str] | None = None) -> str:
    """The machine in one line, for a part that was measured apart from the rest."""
    info = info or machine_info()
    return f"{info['CPU']}, {info['Cores']} cores, {info['RAM']}, {info['OS']}, {info['Python']}"


# -- measuring ---------------------------------------------------------------------------------
class Stopwatch:
    """``with timed() as t: ...`` then ``t.seconds``."""

    seconds: float = 0.0


@contextlib.contextmanager
def timed() -> Iterator[Stopwatch]:
    watch = Stopwatch()
    start = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - start


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Mean, median, 90th percentile, min and max of a list of measurements."""
    if not samples:
        raise ValueError("no samples to summarize")
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "mean": statistics.fmean(ordered),
        "median": statistics.median(ordered),
        "p90": p90,
        "min": ordered[0],
        "max": ordered[-1],
    }


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """The median of ``repeat`` timings of ``fn()``, in seconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def disk_usage(path: Path) -> tuple[int, int, int]:
    """(bytes allocated on disk, apparent bytes, number of files) under ``path``."""
    allocated = apparent = files = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue  # removed while we walked
            files += 1
            apparent += st.st_size
            allocated += getattr(st, "st_blocks", 0) * 512 or st.st_size
    return allocated, apparent, files


# -- writing figures ---------------------------------------------------------------------------
def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:,.0f}"


def fmt_s(seconds: float) -> str:
    return (
        f"{seconds:.3f}"
        if seconds < 1
        else f"{seconds:.2f}"
        if seconds < 100
        else f"{seconds:,.0f}"
    )


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:,.0f}x"


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], right: Iterable[int] = ()
) -> str:
    """A GitHub markdown table; columns in ``right`` are right-aligned (numbers)."""
    align = set(right)
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if i in align else "---" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_part(
    name: str, markdown: str, parts_dir: Path | None = None, when: dt.datetime | None = None
) -> Path:
    """Write ``docs/benchmarks/NAME.md`` (atomically: a reader never sees half a part), its
    first line saying when (``when``, default now; UTC). ``NAME.notes.md`` is not touched."""
    if name.endswith(".notes"):
        raise ValueError(f"{name}.md is hand-written notes: no benchmark writes it")
    folder = parts_dir or Path(os.environ.get("TUIXP_BENCH_PARTS") or PARTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    stamp = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    header = RECORDED.format(when=stamp.strftime("%Y-%m-%d %H:%M"), name=name)
    tmp = path.with_suffix(f".md.{os.getpid()}.tmp")
    tmp.write_text(header + "\n" + markdown.strip() + "\n")
    os.replace(tmp, path)
    return path


def read_part(path: Path) -> tuple[str, str | None]:
    """A part's markdown without the line ``write_part`` put first, and the time on that line
    (``YYYY-MM-DD HH:MM``, UTC), or None for a part that has no such line."""
    text = path.read_text().strip()
    first, _, rest = text.partition("\n")
    match = RECORDED_RE.fullmatch(first.strip())
    if match is None:
        return text, None
    return rest.strip(), match.group(1)


def publish(name: str, markdown: str, quick: bool) -> Path | None:
    """Print a benchmark's section and write it as its part, except that a ``--quick`` run
    leaves a part already written (by a full run) as it is and only prints."""
    print(markdown)
    folder = Path(os.environ.get("TUIXP_BENCH_PARTS") or PARTS_DIR)
    if quick and (folder / f"{name}.md").exists():
        print(f"(--quick: the documented {name} figures are the full run's; not written)")
        return None
    return write_part(name, markdown)
