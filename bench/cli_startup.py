"""How fast the command line answers: `--help` of every command, and `tuixp ls` on 100,000 trials.

Each figure is the wall time of a fresh process, as a person at a shell sees it, measured with
its baselines in the same run and interleaved with them: `python -c pass` (the interpreter
alone), `python -c "import typer"` (the CLI framework's floor) and, for the listings, a fresh
process that opens the same store with DuckDB and counts its trials, and for `tuixp run` of a
trivial script, plain Python computing the same Dask graph. Targets (issue 3): every help under
300 ms; `tuixp ls` on a store of 100,000 trials under 1 s; (issue 20) `tuixp run` of a trivial
script at most 1.3x the plain script.

    .venv/bin/python bench/cli_startup.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

PY = sys.executable
TUIXP = (
    [str(Path(PY).with_name("tuixp"))]
    if Path(PY).with_name("tuixp").exists()
    else [PY, "-m", "tuixp"]
)
COMMANDS = ("run", "ls", "show", "diff", "sql", "export", "demo", "ui")
HELP_TARGET = 0.300
LS_TARGET = 1.0
RUN_TARGET = 1.3  # tuixp run of a trivial script, against plain Python computing the same graph
TRIVIAL = """
import tuixp

ex = tuixp.Experiment("trivial")
a = ex.parameter("a")


@ex
def double(a):
    return a * 2


@ex.result
def score(d):
    return d + 1


result = score(double(a))
"""
PLAIN_DASK = """
import dask


@dask.delayed
def double(a):
    return a * 2


@dask.delayed
def score(d):
    return d + 1


print(score(double(1)).compute())
"""


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-500:]!r}")
    return seconds


def measure(
    variants: dict[str, list[str]], repeats: int, env: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Median and friends of each variant's wall time, variants interleaved, one warm-up each."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for cmd in variants.values():
        wall(cmd, env)  # warm the OS file cache, as a second invocation would be
    for _ in range(repeats):
        for name, cmd in variants.items():
            samples[name].append(wall(cmd, env))
    return {name: common.summary(s) for name, s in samples.items()}


def main() -> int:
    args = common.arguments(__doc__.splitlines()[0]).parse_args()
    repeats = 5 if args.quick else 15
    trials = 100_000
    with tempfile.TemporaryDirectory(prefix="tuixp-bench-cli-") as tmp:
        # As after `pip install`: bytecode cached (here in a folder of our own, written by the
        # warm-up runs), whatever PYTHONDONTWRITEBYTECODE says in this shell.
        env = dict(os.environ)
        env.pop("TUIXP_STORE", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        env["PYTHONPATH"] = str(common.ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        # As in this repository's shell: installed packages have their bytecode, tuixp's own
        # modules (an editable install) are compiled by every process.
        uncached = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"}
        uncached["PYTHONDONTWRITEBYTECODE"] = "1"
        load_before = os.getloadavg()[0]
        helps: dict[str, list[str]] = {
            "python -c pass (baseline)": [PY, "-c", "pass"],
            "python -c 'import typer' (floor)": [PY, "-c", "import typer"],
            "tuixp --help": [*TUIXP, "--help"],
            "python -m tuixp --help": [PY, "-m", "tuixp", "--help"],
        }
        helps.update({f"tuixp {c} --help": [*TUIXP, c, "--help"] for c in COMMANDS})
        help_figures = measure(helps, repeats, env)
        cold = measure(
            {"tuixp run --help, no bytecode cache": [*TUIXP, "run", "--help"]}, repeats, uncached
        )

        trivial, plain = Path(tmp) / "trivial.py", Path(tmp) / "plain_dask.py"
        trivial.write_text(TRIVIAL)
        plain.write_text(PLAIN_DASK)
        run_store = Path(tmp) / "run.duckdb"
        runs = measure(
            {
                "python plain_dask.py (baseline)": [PY, str(plain)],
                "tuixp run trivial.py a=1": [
                    *TUIXP,
                    "run",
                    str(trivial),
                    "a=1",
                    "--store",
                    str(run_store),
                    "--format",
                    "table",
                ],
            },
            repeats,
            env,
        )

        store = Path(tmp) / "big.duckdb"
        sys.path.insert(0, str(common.ROOT))
        from tuixp.store.synthetic import generate

        with common.timed() as made:
            generate(store, trials, experiment="search")
        count = (
            "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            "con.execute('SELECT count(*) FROM trials').fetchall()"
        )
        listings = {
            "python: duckdb.connect + count(*) (baseline)": [PY, "-c", count, str(store)],
            "tuixp ls": [*TUIXP, "ls", "--store", str(store), "--format", "table"],
            "tuixp ls search (latest 50)": [
                *TUIXP,
                "ls",
                "search",
                "--store",
                str(store),
                "--format",
                "table",
            ],
            "tuixp ls search --status failed": [
                *TUIXP,
                "ls",
                "search",
                "--status",
                "failed",
                "--store",
                str(store),
                "--format",
                "table",
            ],
            "tuixp show search 50000": [*TUIXP, "show", "search", "50000", "--store", str(store)],
            "tuixp ls search --all --format csv": [
                *TUIXP,
                "ls",
                "search",
                "--all",
                "--store",
                str(store),
                "--format",
                "csv",
            ],
        }
        ls_figures = measure(listings, max(3, repeats // 3), env)

    worst_help = max(
        v["median"] for k, v in help_figures.items() if k.startswith(("tuixp", "python -m"))
    )
    ls_median = ls_figures["tuixp ls"]["median"]
    ls_trials_median = ls_figures["tuixp ls search (latest 50)"]["median"]
    base = help_figures["python -c pass (baseline)"]["median"]
    ls_base = ls_figures["python: duckdb.connect + count(*) (baseline)"]["median"]
    run_base = runs["python plain_dask.py (baseline)"]["median"]
    run_median = runs["tuixp run trivial.py a=1"]["median"]
    run_ratio = run_median / run_base
    met_run = "met" if run_ratio <= RUN_TARGET else "NOT met"

    def rows(figures: dict[str, dict[str, float]]) -> list[list[str]]:
        return [
            [
                f"`{name}`",
                common.fmt_ms(f["median"]),
                common.fmt_ms(f["min"]),
                common.fmt_ms(f["p90"]),
                common.fmt_ms(f["median"] - base),
            ]
            for name, f in figures.items()
        ]

    headers = ["command", "median (ms)", "best (ms)", "p90 (ms)", "over `python -c pass` (ms)"]
    met = "met" if worst_help < HELP_TARGET else "NOT met"
    met_ls = "met" if max(ls_median, ls_trials_median) < LS_TARGET else "NOT met"
    part = f"""## Command line startup (bench/cli_startup.py)

Wall time of a fresh process, as a shell user sees it; {repeats} runs of each command, all
commands interleaved, after one warm-up run each. `tuixp --help` imports typer and the standard
library only: dask, duckdb, pandas and textual load inside the commands that use them.
Target: every help under {HELP_TARGET * 1000:.0f} ms ({met}: the slowest median is
{common.fmt_ms(worst_help)} ms).

{common.markdown_table(headers, rows(help_figures), right=[1, 2, 3, 4])}

Without bytecode for tuixp's own modules (an editable install under
`PYTHONDONTWRITEBYTECODE=1`, as in this repository's shell) every process compiles them again:
`tuixp run --help` then takes {common.fmt_ms(cold["tuixp run --help, no bytecode cache"]["median"])}
ms (median).
Typer 0.29 validates every option it processes with pydantic (70-100 ms to import); the root
group keeps `--store` and `--help` out of that path, so no help imports pydantic.

### `tuixp ls` on {trials:,} trials

A synthetic store (`tuixp.store.synthetic.generate`, {common.fmt_s(made.seconds)} s to write) of
{trials:,} trials of one experiment with parameters, metrics and steps. `ls` asks DuckDB for the
latest 50 trials only (`--limit`, `--all`); the experiments list is one GROUP BY.
Target: under {LS_TARGET:.0f} s ({met_ls}: {common.fmt_ms(ls_median)} ms for `tuixp ls`,
{common.fmt_ms(ls_trials_median)} ms for an experiment's trials). Most of it is imports (duckdb,
and pyarrow through `tuixp.store`): a fresh Python that opens the store with DuckDB and counts
its trials takes {common.fmt_ms(ls_base)} ms, and `tuixp ls` {common.fmt_ratio(ls_median / ls_base)}
that; the queries themselves take a few tens of milliseconds.

{common.markdown_table(headers, rows(ls_figures), right=[1, 2, 3, 4])}

### `tuixp run` of a trivial script (fast start, issue 20 item 9)

A script of two steps (`double(a)`, then `score(d)`), run with `tuixp run trivial.py a=1`
into a store in the same folder (each run adds a trial), against a plain Python script computing
the same Dask graph with `dask.delayed` (`python plain_dask.py`), interleaved, {repeats} runs
each. Target: at most {RUN_TARGET:.1f}x the plain script ({met_run}: {common.fmt_ms(run_median)}
ms against {common.fmt_ms(run_base)} ms, {common.fmt_ratio(run_ratio)}). Before this session's
changes: 1.13 s against 0.53 s (2.1x). The run records everything it did before (parameters,
result, steps, code, environment, packages, git); what it no longer pays for at start:
pydantic (typer types the options without it: `tuixp/cli/coercion.py`), pyarrow, NumPy and
pandas (a small ingest batch is staged through DuckDB list parameters, `tuixp/store/staging.py`;
`pa.array` imports pandas), and reading every installed distribution's metadata (the package
list is cached on disk, keyed by the distribution folders on `sys.path`). The plain script
imports dask.distributed (`.compute()` looks for a client), which tuixp's threaded run does not.

{common.markdown_table(headers, rows(runs), right=[1, 2, 3, 4])}

Measured {time.strftime("%Y-%m-%d")} on {common.machine_line()}, shared with other work (load
average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end);
`.venv/bin/python bench/cli_startup.py{" --quick" if args.quick else ""}`.
"""
    print(part)
    common.write_part("cli_startup", part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
