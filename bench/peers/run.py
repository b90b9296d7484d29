"""Benchmarks against the tools users would pick instead: daskperiment, MLflow and Sacred.

Every tool runs the same workloads in the same run, each workload in a process of its own and
timed inside it (imports apart):
  1. record N trials of the quickstart graph (2 parameters, 1 result, 1 metric): time per trial
     over the first and the last 100, total, disk used, files created;
  2. read the history back as a DataFrame;
  3. find the 10 best trials by the metric;
  4. (tuixp and daskperiment, which both always capture the environment, the package list and
     the code) one trial per fresh process, as from a shell.
Each peer runs in its own virtual environment, made once from PyPI under
``~/.cache/tuixp-bench/venvs/NAME`` (``$TUIXP_BENCH_CACHE`` moves it) and reused; tuixp runs from
the interpreter running this script. The workload scripts beside this file are ours and call each
tool's public API; they are copied with graph.py into a temporary folder outside any git
repository, so no tool spends time on the state of this repository.

Writes the tables to docs/benchmarks/peers.md (the quick and the full figures are kept side by
side: a run replaces only its own) and prints them. Exits 1 if a tool could not be installed or
run, or read back a wrong answer; the part still says what was measured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import common  # noqa: E402 - bench/ is not a package
import graph  # noqa: E402

PART = "peers"
FULL_SIZES = (1_000, 10_000)
QUICK_SIZES = (200, 1_000)
WORKLOAD_TIMEOUT = 4 * 3600.0
# daskperiment looks at __main__.__file__ to tell a script from a notebook; under ``python -c``
# there is none, so it does not parse our arguments as trial parameters.
INTERACTIVE_SHIM = (
    "import sys; p = sys.argv[1]; sys.argv = sys.argv[1:]; "
    "exec(compile(open(p).read(), p, 'exec'), {'__name__': '__main__'})"
)


@dataclass(frozen=True)
class Tool:
    name: str
    requirements: tuple[str, ...]  # what pip installs in its venv; () runs in this interpreter
    stores: str  # how it keeps trials, for the reader
    captures: str  # what it records about the world of each trial
    interactive: bool = False

    @property
    def script(self) -> str:
        return f"workload_{self.name}.py"


TOOLS = {
    "tuixp": Tool(
        "tuixp",
        (),
        "one DuckDB file + per-process journal",
        "environment, packages, code, git (texts stored once by hash)",
    ),
    "daskperiment": Tool(
        "daskperiment",
        ("daskperiment==0.5.0", "pymongo<4"),
        "local backend: pickles and text files",
        "environment, packages, code (files per trial)",
        interactive=True,
    ),
    "mlflow": Tool(
        "mlflow",
        ("mlflow==3.17.2",),
        "SQLite (`sqlite:///mlflow.db`)",
        "nothing by default (no packages or environment)",
    ),
    "sacred": Tool(
        "sacred",
        ("sacred==0.8.7", "pandas"),
        "FileStorageObserver: JSON per run",
        "host, imported packages, sources (sources once by hash)",
    ),
}
PEERS = [name for name in TOOLS if name != "tuixp"]


class BenchError(Exception):
    """A tool could not be installed or a workload did not finish: said once, with its log."""


# -- virtual environments ------------------------------------------------------------------------
def cache_root() -> Path:
    raw = os.environ.get("TUIXP_BENCH_CACHE")
    return Path(raw) if raw else Path.home() / ".cache" / "tuixp-bench"


def tool_python(tool: Tool) -> Path:
    if not tool.requirements:
        return Path(sys.executable)
    return cache_root() / "venvs" / tool.name / "bin" / "python"


def ensure_venv(tool: Tool) -> Path:
    """The tool's interpreter, its venv made from PyPI the first time (or when pins change)."""
    python = tool_python(tool)
    if not tool.requirements:
        return python
    venv = python.parent.parent
    marker = venv / "tuixp-bench-requirements.txt"
    wanted = "\n".join(tool.requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    log = cache_root() / "logs" / f"install-{tool.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"Creating {venv} ({', '.join(tool.requirements)}); log: {log}", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            *tool.requirements,
        ],
    ]
    with log.open("w") as out:
        for cmd in steps:
            try:
                done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=3600)
            except subprocess.TimeoutExpired as exc:
                raise BenchError(f"installing {tool.name} took over an hour; see {log}") from exc
            if done.returncode != 0:
                raise BenchError(
                    f"could not install {tool.name} ({' '.join(tool.requirements)}): "
                    f"`{' '.join(cmd[:4])} ...` exited {done.returncode}; "
                    f"last lines of {log}:\n" + _tail(log)
                )
    marker.write_text(wanted)
    return python


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(line for line in text[-lines:])


# -- running workloads ---------------------------------------------------------------------------
@dataclass
class Runner:
    scripts: Path  # the temporary copy of the workload scripts and graph.py
    logs: Path
    pythons: dict[str, Path]

    def command(self, tool: Tool, args: list[str]) -> list[str]:
        script = str(self.scripts / tool.script)
        python = str(self.pythons[tool.name])
        if tool.interactive:
            return [python, "-c", INTERACTIVE_SHIM, script, *args]
        return [python, script, *args]

    def run(
        self,
        tool: Tool,
        action: str,
        workdir: Path,
        tag: str,
        n: int = 0,
        i: int = 1,
        profile: Path | None = None,
    ) -> dict[str, Any]:
        """Run one workload; its result line, plus ``process_s`` timed from outside."""
        args = [action, "--dir", str(workdir), "--n", str(n), "--i", str(i)]
        if profile is not None:
            args += ["--profile", str(profile)]
        log = self.logs / f"{tag}-{tool.name}-{action}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PYTHONPATH"] = str(self.scripts)
        start = time.perf_counter()
        with log.open("w") as out:
            try:
                done = subprocess.run(
                    self.command(tool, args),
                    cwd=workdir,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=WORKLOAD_TIMEOUT,
                )
            except subprocess.TimeoutExpired as exc:
                raise BenchError(
                    f"{tool.name} {action} did not finish in {WORKLOAD_TIMEOUT:.0f} s; see {log}"
                ) from exc
        process_s = time.perf_counter() - start
        result = None
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(graph.RESULT_MARK):
                result = json.loads(line[len(graph.RESULT_MARK) :])
        if done.returncode != 0 or result is None:
            raise BenchError(
                f"{tool.name} {action} exited {done.returncode} without a result; "
                f"last lines of {log}:\n" + _tail(log)
            )
        result["process_s"] = process_s
        return result


@dataclass
class Measured:
    """One tool at one size: what it cost, or why it could not be measured."""

    record: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)
    top10: dict[str, Any] = field(default_factory=dict)
    disk: tuple[int, int, int] = (0, 0, 0)
    problems: list[str] = field(default_factory=list)
    error: str | None = None


def measure(runner: Runner, tool: Tool, n: int, base: Path, keep: bool) -> Measured:
    workdir = base / f"{tool.name}-{n}"
    workdir.mkdir(parents=True)
    m = Measured()
    try:
        print(f"  {tool.name}: recording {n:,} trials", flush=True)
        m.record = runner.run(tool, "record", workdir, f"n{n}", n=n)
        m.disk = common.disk_usage(workdir)
        m.history = runner.run(tool, "history", workdir, f"n{n}")
        m.top10 = runner.run(tool, "top10", workdir, f"n{n}")
    except BenchError as exc:
        m.error = str(exc)
        print(f"  {tool.name}: FAILED: {exc}", flush=True)
        return m
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    expected = graph.rounded(graph.expected_top(n))
    for key in ("rows", "rows_again"):
        if m.history[key] != n:
            m.problems.append(f"history has {m.history[key]} rows, not {n}")
    for key in ("top", "top_again"):
        if graph.rounded(m.top10[key]) != expected:
            m.problems.append(f"top-10 scores differ from the expected ones: {m.top10[key]}")
    r = m.record
    print(
        f"  {tool.name}: {common.fmt_ms(r['first_ms'] / 1e3)} ms/trial first 100, "
        f"{common.fmt_ms(r['last_ms'] / 1e3)} ms last 100, {common.fmt_s(r['total_s'])} s total, "
        f"{common.fmt_bytes(m.disk[0])} in {m.disk[2]:,} files; history "
        f"{common.fmt_s(m.history['first_s'])} s, top-10 {common.fmt_s(m.top10['first_s'])} s"
        + (f"; WRONG: {'; '.join(m.problems)}" if m.problems else ""),
        flush=True,
    )
    return m


@dataclass
class Cold:
    """Workload 4: one trial per fresh process."""

    process_s: list[float] = field(default_factory=list)
    import_s: list[float] = field(default_factory=list)
    trial_s: list[float] = field(default_factory=list)
    disk: tuple[int, int, int] = (0, 0, 0)
    problems: list[str] = field(default_factory=list)
    error: str | None = None


def measure_cold(runner: Runner, tool: Tool, k: int, base: Path, keep: bool) -> Cold:
    workdir = base / f"{tool.name}-cold"
    workdir.mkdir(parents=True)
    c = Cold()
    print(f"  {tool.name}: {k} trials, one process each", flush=True)
    try:
        for i in range(1, k + 1):
            one = runner.run(tool, "one", workdir, f"cold{i}", i=i)
            c.process_s.append(one["process_s"])
            c.import_s.append(one["import_s"])
            c.trial_s.append(one["trial_s"])
        c.disk = common.disk_usage(workdir)
        rows = runner.run(tool, "history", workdir, "cold")["rows"]
        if rows != k:
            c.problems.append(f"history has {rows} rows after {k} processes, not {k}")
    except BenchError as exc:
        c.error = str(exc)
        print(f"  {tool.name}: FAILED: {exc}", flush=True)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return c


def profile_tuixp(runner: Runner, n: int, base: Path) -> str:
    """Where tuixp's time per trial goes: cProfile of the recording loop, top functions."""
    workdir = base / f"tuixp-profile-{n}"
    workdir.mkdir(parents=True)
    out = base / "tuixp-record.prof"
    runner.run(TOOLS["tuixp"], "record", workdir, f"profile{n}", n=n, profile=out)
    stats = pstats.Stats(str(out))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (path, line, func), (_, ncalls, tt, ct, _) in sorted(
        stats.stats.items(), key=lambda kv: kv[1][3], reverse=True
    )[:25]:  # type: ignore[attr-defined]
        where = f"{_short(path)}:{line}({func})" if line else func
        per = 1e3 / (n - 1)
        rows.append((f"`{where}`", f"{ncalls:,}", f"{ct * per:.3f}", f"{tt * per:.3f}"))
    shutil.rmtree(workdir, ignore_errors=True)
    return (
        f"cProfile of tuixp's recording loop, trials 2 to {n:,} ({total:.1f} s under the "
        "profiler, which slows every call), the 25 largest by cumulative time, per "
        "trial:\n\n"
        + common.markdown_table(
            ["function", "calls", "cumulative ms/trial", "own ms/trial"], rows, right=[1, 2, 3]
        )
    )


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", str(common.ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return os.path.basename(path) if path.startswith("/") else path


# -- the report ----------------------------------------------------------------------------------
def ratio(peer: float, ours: float) -> float | None:
    return peer / ours if ours > 0 and peer > 0 else None


def fmt_ratio(r: float | None) -> str:
    return common.fmt_ratio(r) if r is not None else "n/a"


READS = [
    ("history cold", "history", "cold"),
    ("history warm", "history", "again_s"),
    ("top-10 cold", "top10", "cold"),
    ("top-10 warm", "top10", "again_s"),
]


def read_seconds(m: Measured, which: str, how: str) -> float:
    d = m.history if which == "history" else m.top10
    # cold: a fresh process's import of the tool, opening the store and the first call.
    return d["import_s"] + d["first_s"] if how == "cold" else d[how]


def size_section(n: int, results: dict[str, Measured]) -> list[str]:
    ok = {name: m for name, m in results.items() if m.error is None}
    out = [f"#### {n:,} trials", ""]
    rows = []
    for name, m in results.items():
        if m.error is not None:
            rows.append((name, "", "failed", "", "", "", "", "", "", "", "", ""))
            continue
        r = m.record
        rows.append(
            (
                f"**{name}**" if name == "tuixp" else name,
                r["version"],
                common.fmt_ms(r["first_trial_ms"] / 1e3),
                _mean_median(r, "first"),
                _mean_median(r, "last"),
                common.fmt_s(r["total_s"]),
                common.fmt_bytes(m.disk[0]),
                f"{m.disk[2]:,}",
                *(common.fmt_s(read_seconds(m, which, how)) for _, which, how in READS),
            )
        )
    out.append(
        common.markdown_table(
            [
                "tool",
                "version",
                "first trial (ms)",
                "ms/trial, next 100: mean (median)",
                "ms/trial, last 100: mean (median)",
                "total (s)",
                "disk",
                "files",
                "history cold (s)",
                "history warm (s)",
                "top-10 cold (s)",
                "top-10 warm (s)",
            ],
            rows,
            right=range(2, 12),
        )
    )
    ours = ok.get("tuixp")
    if ours is not None and len(ok) > 1:
        ratios = []
        for name, m in ok.items():
            if name == "tuixp":
                continue
            ratios.append(
                (
                    name,
                    fmt_ratio(ratio(m.record["first_ms"], ours.record["first_ms"])),
                    fmt_ratio(ratio(m.record["last_ms"], ours.record["last_ms"])),
                    fmt_ratio(ratio(m.record["total_s"], ours.record["total_s"])),
                    fmt_ratio(ratio(m.disk[0], ours.disk[0])),
                    fmt_ratio(ratio(m.disk[2], ours.disk[2])),
                    *(
                        fmt_ratio(ratio(read_seconds(m, w, h), read_seconds(ours, w, h)))
                        for _, w, h in READS
                    ),
                )
            )
        out += [
            "",
            f"Peer / tuixp at {n:,} trials (above 1x: tuixp is faster or smaller):",
            "",
            common.markdown_table(
                [
                    "peer",
                    "next 100",
                    "last 100",
                    "total",
                    "disk",
                    "files",
                    *(label for label, _, _ in READS),
                ],
                ratios,
                right=range(1, 10),
            ),
        ]
    problems = [f"{name}: {p}" for name, m in results.items() for p in m.problems]
    errors = [f"{name}: {m.error}" for name, m in results.items() if m.error]
    if problems:
        out += ["", "**Wrong answers:** " + "; ".join(problems)]
    for e in errors:
        out += [
            "",
            "**Could not measure** " + e.split("\n", 1)[0],
            "",
            "```",
            *e.split("\n")[1:],
            "```",
        ]
    if not problems and ok:
        out += [
            "",
            f"Checked: {', '.join(ok)} each read back {n:,} history rows and found the "
            "same 10 best scores as computed by the harness.",
        ]
    return out


def _mean_median(record: dict[str, Any], edge: str) -> str:
    return (
        f"{common.fmt_ms(record[f'{edge}_ms'] / 1e3)} "
        f"({common.fmt_ms(record[f'{edge}_median_ms'] / 1e3)})"
    )


def cold_section(cold: dict[str, Cold], k: int) -> list[str]:
    out = [
        f"#### One trial per fresh process ({k} processes each)",
        "",
        "Both tools capture the environment, the package list and the code of every trial; "
        "here nothing is warm. Wall time of the whole process (interpreter start, imports, "
        "capture, the trial, writing it), the import of the tool, and the time from defining "
        "the experiment to the result inside the process; medians. Disk per trial is the "
        "folder's total over the trials: a DuckDB file starts at a few hundred KB that all "
        "trials share, so tuixp's figure falls as trials are added (see the tables above).",
    ]
    rows = []
    for name, c in cold.items():
        if c.error is not None:
            rows.append((name, "failed", "", "", "", ""))
            continue
        rows.append(
            (
                name,
                common.fmt_s(common.summary(c.process_s)["median"]),
                common.fmt_s(common.summary(c.import_s)["median"]),
                common.fmt_ms(common.summary(c.trial_s)["median"]),
                common.fmt_bytes(c.disk[0] / k),
                f"{c.disk[2] / k:.1f}",
            )
        )
    out += [
        "",
        common.markdown_table(
            [
                "tool",
                "process (s)",
                "import (s)",
                "define + trial (ms)",
                "disk per trial",
                "files per trial",
            ],
            rows,
            right=range(1, 6),
        ),
    ]
    ours, theirs = cold.get("tuixp"), cold.get("daskperiment")
    if ours and theirs and ours.error is None and theirs.error is None:

        def med(x: list[float]) -> float:
            return common.summary(x)["median"]

        out += [
            "",
            "daskperiment / tuixp: process "
            f"{fmt_ratio(ratio(med(theirs.process_s), med(ours.process_s)))}, define + trial "
            f"{fmt_ratio(ratio(med(theirs.trial_s), med(ours.trial_s)))}, disk per trial "
            f"{fmt_ratio(ratio(theirs.disk[0], ours.disk[0]))}.",
        ]
    for name, c in cold.items():
        if c.error:
            out += ["", f"**Could not measure {name}:** " + c.error.split("\n", 1)[0]]
        for p in c.problems:
            out += ["", f"**Wrong answer, {name}:** {p}"]
    return out


@dataclass
class Target:
    label: str
    peer: str
    need: float
    value: float | None
    how: str

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value >= self.need

    def row(self) -> tuple[str, str, str]:
        if self.value is None:
            return (self.label, "not measured", "unknown")
        if self.met:
            verdict = "met"
        else:
            verdict = (
                f"**missed**: {fmt_ratio(self.value)} of {self.need:g}x "
                f"({self.need / self.value:.1f}x short)"
            )
        return (self.label, f"{fmt_ratio(self.value)} ({self.how})", verdict)


def targets(n: int, results: dict[str, Measured]) -> list[Target]:
    """The issue's targets, judged at the largest size of the run."""
    ours = results.get("tuixp")

    def get(peer: str, f: Any) -> float | None:
        m = results.get(peer)
        if ours is None or m is None or ours.error or m.error:
            return None
        return ratio(f(m), f(ours))

    def last(m: Measured) -> float:
        return m.record["last_ms"]

    out = [
        Target(
            f"per-trial cost at {n:,} trials: 10x below daskperiment's",
            "daskperiment",
            10,
            get("daskperiment", last),
            "mean of the last 100 trials",
        ),
        Target(
            f"per-trial cost at {n:,} trials: 5x below MLflow's",
            "mlflow",
            5,
            get("mlflow", last),
            "mean of the last 100 trials",
        ),
    ]
    for label, which, how in READS:
        out.append(
            Target(
                f"{label.replace('history', 'history read-back')}: 5x faster than "
                "MLflow's search_runs",
                "mlflow",
                5,
                get("mlflow", lambda m, w=which, h=how: read_seconds(m, w, h)),
                f"{n:,} trials",
            )
        )
    out.append(
        Target(
            "disk: 20x smaller than daskperiment's",
            "daskperiment",
            20,
            get("daskperiment", lambda m: m.disk[0]),
            f"{n:,} trials, allocated bytes",
        )
    )
    return out


def render(
    sizes: list[int],
    results: dict[int, dict[str, Measured]],
    cold: dict[str, Cold],
    k: int,
    quick: bool,
    started: str,
    elapsed: float,
    profile: str | None,
    loads: tuple[float, float],
) -> str:
    largest = max(sizes)
    label = "Quick sizes" if quick else "Full sizes" if tuple(sizes) == FULL_SIZES else "Sizes"
    tgts = targets(largest, results[largest])
    out = [
        f"### {label}: {', '.join(f'{n:,}' for n in sizes)} trials",
        "",
        f"Measured {started} in {elapsed / 60:.1f} min on {common.machine_line()}; load "
        f"average {loads[0]:.1f} at the start and {loads[1]:.1f} at the end (other work on "
        "the machine slows every tool alike, but not evenly).",
        "",
        f"Targets from issue 9, judged at {largest:,} trials"
        + (
            " (the quick sizes stop at 1,000; the issue's figure is 10,000: see the full sizes)"
            if quick
            else ""
        )
        + ":",
        "",
        common.markdown_table(
            ["target", "measured (peer / tuixp)", "verdict"], [t.row() for t in tgts]
        ),
    ]
    for n in sizes:
        out += [""] + size_section(n, results[n])
    if cold:
        out += [""] + cold_section(cold, k)
    if profile:
        out += ["", "#### Where tuixp's time per trial goes", "", profile]
    return "\n".join(out)


INTRO = (
    """## Against daskperiment, MLflow and Sacred

`bench/peers/run.py` runs the same workloads on tuixp and on the tools users would pick instead,
in the same run: (1) record N trials of the quickstart graph (parameters `a` and `b`, a step
`a + b`, a result step that saves the metric `score` and returns `10 / s`); (2) read the history
back as a DataFrame; (3) find the 10 best trials by `score`; (4) tuixp against daskperiment with
the capture of the environment, the package list and the code included: both tools capture them
with every trial of (1), always, and (4) adds the case where nothing is warm, one trial per fresh
process, as from a shell.
Every workload runs in a process of its own and is timed inside it. The first trial is shown
apart: it pays for whatever a tool imports or opens lazily (tuixp imports Dask and DuckDB then;
daskperiment and MLflow at import). *Cold* read times add the import of the tool to the first
call (a fresh process: import, open the store, read), *warm* ones repeat the call in the same
process. Disk is what the tool left in its folder (allocated blocks, as `du`).
Each peer runs in its own venv made from PyPI (`~/.cache/tuixp-bench/venvs`); the workload
scripts (`bench/peers/workload_*.py`) are ours and call the tools' public APIs. MLflow and Sacred
call the two steps as plain Python functions (they have no graph): tuixp and daskperiment pay for
Dask, and MLflow records no environment by default.

| tool | keeps trials in | captures per trial |
|---|---|---|
"""
    + "\n".join(f"| {t.name} | {t.stores} | {t.captures} |" for t in TOOLS.values())
    + """

Regenerate: `.venv/bin/python bench/peers/run.py` (full sizes, 1,000 and 10,000 trials: the
better part of an hour on 2 cores) or `--quick` (200 and 1,000; what `make bench` runs). Options:
`--tools tuixp,mlflow`, `--sizes 500,2000`, `--cold K`, `--profile`, `--keep`."""
)

MARK = "<!-- peers:{kind}:{edge} -->"


def merge_part(existing: str, kind: str, section: str) -> str:
    """The part with this run's section (``quick`` or ``full``) replaced, the other one kept."""
    sections = {}
    for other in ("full", "quick"):
        start, end = MARK.format(kind=other, edge="start"), MARK.format(kind=other, edge="end")
        if start in existing and end in existing:
            sections[other] = existing.split(start, 1)[1].split(end, 1)[0].strip()
    sections[kind] = section.strip()
    if "full" not in sections:
        sections["full"] = (
            "### Full sizes: not measured yet\n\nRun `.venv/bin/python "
            "bench/peers/run.py` to measure 1,000 and 10,000 trials."
        )
    out = [INTRO]
    for other in ("full", "quick"):
        if other in sections:
            out += [
                "",
                MARK.format(kind=other, edge="start"),
                sections[other],
                MARK.format(kind=other, edge="end"),
            ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = common.arguments(__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", help="comma-separated trial counts (default 1000,10000; --quick 200,1000)"
    )
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated, among {', '.join(TOOLS)}"
    )
    parser.add_argument(
        "--cold", type=int, help="processes of one trial each (default 20; --quick 8; 0 skips)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile tuixp recording the smallest size"
    )
    parser.add_argument("--keep", action="store_true", help="keep the tools' folders and logs")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the part")
    args = parser.parse_args(argv)
    try:
        sizes = (
            [int(s.replace("_", "")) for s in args.sizes.split(",")]
            if args.sizes
            else list(QUICK_SIZES if args.quick else FULL_SIZES)
        )
    except ValueError:
        parser.error(f"--sizes takes comma-separated integers, not {args.sizes!r}")
    if any(n <= graph.EDGE for n in sizes):
        parser.error(f"every size must be above {graph.EDGE} (trials timed at each end)")
    names = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in names if t not in TOOLS]
    if unknown or "tuixp" not in names:
        parser.error(
            f"--tools takes names among {', '.join(TOOLS)} and must include tuixp"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    k = args.cold if args.cold is not None else (8 if args.quick else 20)
    started_at = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()

    failures: list[str] = []
    pythons: dict[str, Path] = {}
    for name in names:
        try:
            pythons[name] = ensure_venv(TOOLS[name])
        except BenchError as exc:
            failures.append(str(exc))
            print(f"{name}: {exc}", flush=True)
    tools = [TOOLS[n] for n in names if n in pythons]

    base = Path(tempfile.mkdtemp(prefix="tuixp-bench-peers-"))
    scripts = base / "scripts"
    scripts.mkdir()
    for f in ["graph.py", *(t.script for t in TOOLS.values())]:
        shutil.copy2(HERE / f, scripts / f)
    logs = cache_root() / "logs" / "peers-last"  # outlives the run, for a failure's details
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    runner = Runner(scripts, logs, pythons)
    print(f"Working in {base}; logs in {logs}", flush=True)
    try:
        results: dict[int, dict[str, Measured]] = {}
        for n in sizes:
            print(f"{n:,} trials:", flush=True)
            results[n] = {}
            for tool in tools:
                results[n][tool.name] = measure(runner, tool, n, base, args.keep)
            for name in names:
                if name not in pythons:
                    results[n][name] = Measured(error=f"not installed: see above ({name})")
        cold: dict[str, Cold] = {}
        if k > 0:
            print("One trial per process:", flush=True)
            for tool in tools:
                if tool.name in ("tuixp", "daskperiment"):
                    cold[tool.name] = measure_cold(runner, tool, k, base, args.keep)
        profile = profile_tuixp(runner, min(sizes), base) if args.profile else None
    finally:
        if args.keep:
            print(f"Kept {base}", flush=True)
        else:
            shutil.rmtree(base, ignore_errors=True)

    section = render(
        sizes,
        results,
        cold,
        k,
        args.quick,
        started_at,
        time.perf_counter() - t0,
        profile,
        (load_start, os.getloadavg()[0]),
    )
    print()
    print(section)
    standard = tuple(sizes) == (QUICK_SIZES if args.quick else FULL_SIZES)
    if not standard and not args.no_write:
        print(
            "\nOther sizes than the documented ones: printed only, "
            f"docs/benchmarks/{PART}.md left as it was."
        )
    elif not args.no_write:
        parts = Path(os.environ.get("TUIXP_BENCH_PARTS") or common.PARTS_DIR)
        path = parts / f"{PART}.md"
        existing = path.read_text() if path.exists() else ""
        common.write_part(
            PART, merge_part(existing, "quick" if args.quick else "full", section), parts
        )
        print(f"\nWrote {path}")
    for n in sizes:
        for name, m in results[n].items():
            if m.error:
                failures.append(f"{name} at {n:,}: {m.error.splitlines()[0]}")
            failures += [f"{name} at {n:,}: {p}" for p in m.problems]
    for name, c in cold.items():
        if c.error:
            failures.append(f"{name}, one trial per process: {c.error.splitlines()[0]}")
        failures += [f"{name}, one trial per process: {p}" for p in c.problems]
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
