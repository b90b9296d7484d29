"""The installed ``tuixp`` console script and ``python -m tuixp``, as real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.test_cli_units import store_snapshot, write_script
from tests.conftest import ROOT, env_with_path

TUIXP = ROOT / ".venv" / "bin" / "tuixp"
COMMANDS = ("run", "ls", "show", "diff", "repeat", "sql", "export", "demo", "ui")
# pydantic: typer validates the options it processes with it; a help must not need it.
HEAVY = ("dask", "duckdb", "pandas", "pyarrow", "numpy", "textual", "distributed", "pydantic")


def tuixp(
    *args: object, cwd: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    exe = [str(TUIXP)] if TUIXP.exists() else [sys.executable, "-m", "tuixp"]
    return subprocess.run(
        [*exe, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        env=env_with_path(),
        timeout=timeout,
    )


def test_help_lists_every_command() -> None:
    for result in (
        tuixp("--help"),
        subprocess.run(
            [sys.executable, "-m", "tuixp", "--help"],
            capture_output=True,
            text=True,
            env=env_with_path(),
        ),
    ):
        assert result.returncode == 0, result.stderr
        for command in COMMANDS:
            assert f"  {command} " in result.stdout
    for command in COMMANDS:
        result = tuixp(command, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Usage: tuixp {command} ")


def test_help_imports_nothing_heavy() -> None:
    """What keeps `tuixp --help` fast: no dask, duckdb, pandas or textual until a command runs."""
    code = (
        "import sys\n"
        "from tuixp.cli import app\n"
        f"for args in [['--help'], *[[c, '--help'] for c in {list(COMMANDS)!r}]]:\n"
        "    try:\n"
        "        app(args, prog_name='tuixp')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (args, exc.code)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env_with_path()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_run_ls_show_sql_through_real_processes(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    run = tuixp(
        "run",
        script,
        "b=1",
        "--grid",
        "a=1,3",
        "--seed",
        3,
        "--progress",
        "jsonl",
        "--store",
        store,
    )
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert {e["kind"] for e in events} == {
        "trial_started",
        "task_started",
        "task_finished",
        "metrics",
        "trial_finished",
        "run_finished",
    }
    finished = {e["trial_id"]: e for e in events if e["kind"] == "trial_finished"}
    assert json.loads(finished[1]["data"]["result"]) == 5.0
    assert json.loads(finished[2]["data"]["result"]) == 2.5
    assert "prepare ran" in run.stderr
    # the run's process ingested its journal at exit: a read-only look sees both trials
    ls = tuixp("ls", "quick", "--store", store, "--format", "json")
    assert ls.returncode == 0, ls.stderr
    assert [(t["trial_id"], t["status"]) for t in json.loads(ls.stdout)] == [
        (1, "succeeded"),
        (2, "succeeded"),
    ]
    show = tuixp("show", "quick", 2, "--store", store)
    assert show.returncode == 0 and "quick trial 2: succeeded" in show.stdout
    assert "seed       3" in show.stdout
    sql = tuixp(
        "sql",
        "-",
        "--store",
        store,
        "--format",
        "csv",
        stdin="SELECT trial_id, seed FROM trials ORDER BY trial_id",
    )
    assert sql.stdout.splitlines() == ["trial_id,seed", "1,3", "2,3"]
    table = tuixp("ls", "--store", store)  # piped: CSV by default
    assert table.stdout.splitlines()[0].startswith("experiment,trials,succeeded,failed")


@pytest.fixture(scope="module")
def one_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one trial of quick, its script exp.py and a script without experiment."""
    tmp_path = tmp_path_factory.mktemp("one_trial")
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    (tmp_path / "empty.py").write_text("VALUE = 1\n")
    assert tuixp("run", script, "a=1", "--store", store).returncode == 0
    tuixp("ls", "--store", store)  # ingest, so the snapshots compare a settled store
    return store


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "{script}", "nope=1"], "unknown parameter nope"),
        (["run", "{script}", "a=1", "b"], "malformed parameter 'b'"),
        (["run", "{missing}"], "script not found"),
        (["run", "{empty}"], "defines no tuixp Experiment"),
        (["show", "quick", "7"], "Unable to find trial id: 7"),
        (["ls", "unknown"], "Unable to find experiment: unknown"),
        (["sql", "DROP VIEW trials"], "DROP statements are refused"),
        (["sql", "DELETE FROM trial_record"], "DELETE statements are refused"),
        (["sql", "INSERT INTO blob VALUES ('x', 'y')"], "INSERT statements are refused"),
    ],
)
def test_bad_input_in_a_real_process(one_trial: Path, args: list[str], message: str) -> None:
    store = one_trial
    tmp_path = store.parent
    script = tmp_path / "exp.py"
    before = store_snapshot(store)
    paths = {"script": script, "missing": tmp_path / "missing.py", "empty": tmp_path / "empty.py"}
    result = tuixp(*[a.format(**paths) for a in args], "--store", store)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuixp: ") and message in lines[0], lines
    assert store_snapshot(store) == before


SLEEPY = """
import time
import tuixp
ex = tuixp.Experiment("sleepy")
seconds = ex.parameter("seconds", default=60)

@ex.result
def nap(seconds):
    time.sleep(seconds)
    return seconds

r = nap(seconds)
"""


def test_ctrl_c_records_the_trial_as_interrupted_and_exits_130(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = tmp_path / "sleepy.py"
    script.write_text(SLEEPY)
    exe = [str(TUIXP)] if TUIXP.exists() else [sys.executable, "-m", "tuixp"]
    proc = subprocess.Popen(
        [*exe, "run", str(script), "--progress", "jsonl", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_path(),
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line)["kind"] == "task_started":
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "tuixp: interrupted"
    last = json.loads(rest.splitlines()[-1])
    assert (last["kind"], last["status"]) == ("trial_finished", "interrupted")
    shown = tuixp("ls", "sleepy", "--store", store, "--format", "json")
    assert [t["status"] for t in json.loads(shown.stdout)] == ["interrupted"]


def run_on_a_terminal(*args: object) -> tuple[int, str]:
    """tuixp with stdout and stderr on a pseudo-terminal (80 columns); what it wrote there."""
    import pty
    import termios

    leader, follower = pty.openpty()
    termios.tcsetwinsize(follower, (24, 80))
    exe = [str(TUIXP)] if TUIXP.exists() else [sys.executable, "-m", "tuixp"]
    env = {**env_with_path(), "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    proc = subprocess.Popen(
        [*exe, *map(str, args)], stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_tables_and_a_progress_bar(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    code, screen = run_on_a_terminal("run", script, "--grid", "a=1,-2", "--store", store)
    assert code == 1, screen
    assert "TRIAL  STATUS" in screen  # a table, not CSV
    assert "trial 1 succeeded (" in screen and "trial 2 failed (" in screen
    assert "(2/2)" in screen
    assert "\x1b[" in screen  # the progress bar drew on the terminal
    code, screen = run_on_a_terminal("ls", "quick", "--store", store)
    assert code == 0
    lines = [line for line in screen.splitlines() if line.strip()]
    assert lines[0].startswith("TRIAL  STATUS")
    assert all(len(line) <= 80 for line in lines)


@pytest.mark.slow
def test_a_script_runs_on_a_dask_cluster(tmp_path: Path) -> None:
    """Worker processes cannot import the script by name: its functions travel by value."""
    store = tmp_path / "s.duckdb"
    script = tmp_path / "demo_experiment.py"
    shutil.copy(ROOT / "tuixp" / "demo_experiment.py", script)
    result = tuixp(
        "run",
        script,
        "--grid",
        "model=linear,quadratic",
        "--scheduler",
        "distributed",
        "--store",
        store,
        "--format",
        "json",
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    trials = json.loads(result.stdout)
    assert [t["status"] for t in trials] == ["succeeded", "succeeded"]
    assert all(0 < t["result"] < 1 for t in trials)


@pytest.mark.slow
def test_processes_scheduler(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = tmp_path / "demo_experiment.py"
    shutil.copy(ROOT / "tuixp" / "demo_experiment.py", script)
    result = tuixp(
        "run",
        script,
        "--grid",
        "lr=0.1,0.2",
        "--scheduler",
        "processes",
        "--store",
        store,
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    assert [t["status"] for t in json.loads(result.stdout)] == ["succeeded", "succeeded"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tuixp_without_a_command_opens_the_tui(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path, name="shown_in_tui")
    assert tuixp("run", script, "a=1", "--store", store).returncode == 0
    name = f"tuixp-cli-{uuid.uuid4().hex[:8]}"
    env = env_with_path()
    exports = " ".join(f"{k}='{env[k]}'" for k in ("PYTHONPATH", "XDG_CACHE_HOME") if k in env)
    exe = TUIXP if TUIXP.exists() else f"{sys.executable} -m tuixp"
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "80",
            "-y",
            "24",
            f"env {exports} TERM=xterm-256color {exe} --store {store}; echo exit=$?; sleep 30",
        ],
        check=True,
    )
    try:

        def screen() -> str:
            return subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True
            ).stdout

        deadline = time.monotonic() + 60
        while "shown_in_tui" not in screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "shown_in_tui" in screen(), screen()
        subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=True)
        deadline = time.monotonic() + 30
        while "exit=" not in screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "exit=0" in screen(), screen()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_without_the_tui_one_line_says_so(tmp_path: Path) -> None:
    # sys.modules[name] = None makes `import name` fail, as when the TUI is not installed
    code = (
        "import sys\nsys.modules['tuixp.tui.app'] = None\nfrom tuixp.cli import main\n"
        f"sys.argv = ['tuixp', '--store', {str(tmp_path / 's.duckdb')!r}]\nmain()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env_with_path()
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuixp: the TUI is not available"), lines
    assert list(tmp_path.iterdir()) == []
