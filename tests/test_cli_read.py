"""``tuixp ls / show / diff / sql / export / demo`` on stores made by real trials (CliRunner)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT
from tests.test_cli_units import (
    SCRIPT,
    ingest,
    invoke,
    one_error_line,
    store_snapshot,
    write_script,
)
from tuixp.store.store import Store


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store with experiment quick: trials 1-2 succeeded, 3 failed, 4 after a code change.

    Shared by the tests of this module, which only read it (several check it is unchanged).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(ROOT / ".venv" / "cache"))  # as conftest does
        yield _record(tmp_path_factory.mktemp("recorded"))


def _record(tmp_path: Path) -> Path:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    assert invoke("run", script, "--grid", "a=1,4", "--store", store).exit_code == 0
    assert invoke("run", script, "a=-2", "model=lasso", "--store", store).exit_code == 1
    script.write_text(script.read_text().replace("return a + b", "return a + b + 1"))
    assert invoke("run", script, "a=1", "--store", store).exit_code == 0
    other = tmp_path / "other"
    other.mkdir()
    second = write_script(other, name="second_experiment_with_a_long_name")
    assert invoke("run", second, "a=5", "--store", store).exit_code == 0
    ingest(store)
    return store


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ls_lists_experiments(recorded: Path) -> None:
    result = invoke("ls", "--store", recorded, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = {r["experiment"]: r for r in json.loads(result.stdout)}
    quick = rows["quick"]
    assert (quick["trials"], quick["succeeded"], quick["failed"]) == (4, 3, 1)
    assert quick["min_result"] == pytest.approx(10 / 6)
    assert quick["max_result"] == pytest.approx(10 / 3)
    assert rows["second_experiment_with_a_long_name"]["trials"] == 1
    table = invoke("ls", "--store", recorded, "--format", "table")
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "EXPERIMENT",
        "TRIALS",
        "OK",
        "FAILED",
        "RUNNING",
        "LAST",
        "RUN",
        "RESULT",
    ]
    assert quick["goal"] is None and quick["best_result"] is None  # the script did not say
    assert all(len(line) <= 80 for line in lines)
    quick_line = next(line for line in lines if line.startswith("quick "))
    assert quick_line.split()[1:4] == ["4", "3", "1"]


def test_ls_lists_an_experiments_trials(recorded: Path) -> None:
    result = invoke("ls", "quick", "--store", recorded)  # CSV: not a terminal
    assert result.exit_code == 0, result.stderr
    rows = parse_csv(result.stdout)
    assert [r["trial_id"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["status"] for r in rows] == ["succeeded", "succeeded", "failed", "succeeded"]
    assert [r["a"] for r in rows] == ["1", "4", "-2", "1"]
    assert rows[2]["model"] == "lasso" and rows[2]["error"].startswith("ZeroDivisionError")
    assert [r["changed"] for r in rows] == ["", "", "", "code"]
    assert float(rows[0]["result"]) == pytest.approx(10 / 3)
    assert all(float(r["elapsed_s"]) >= 0 for r in rows)


def test_ls_table_fits_80_columns_and_shows_what_varies(recorded: Path) -> None:
    result = invoke("ls", "quick", "--store", recorded, "-f", "table")
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert lines[0].split()[:4] == ["TRIAL", "STATUS", "CDEI", "PARAMS"]
    assert "a=-2 model=lasso" in lines[3]
    assert lines[4].split()[2] == "C···"  # the code changed before trial 4
    assert "same in every trial shown: b=2" in result.stderr


def test_ls_limit_all_and_status(recorded: Path) -> None:
    latest = parse_csv(invoke("ls", "quick", "-n", "2", "--store", recorded).stdout)
    assert [r["trial_id"] for r in latest] == ["3", "4"]
    table = invoke("ls", "quick", "-n", "2", "--store", recorded, "-f", "table")
    assert "latest 2 of 4 trials" in table.stderr
    everything = parse_csv(invoke("ls", "quick", "-n", "1", "--all", "--store", recorded).stdout)
    assert len(everything) == 4
    failed = parse_csv(invoke("ls", "quick", "--status", "failed", "--store", recorded).stdout)
    assert [r["trial_id"] for r in failed] == ["3"]


def _ids(*args: str) -> list[int]:
    result = invoke("ls", *args)
    assert result.exit_code == 0, result.stderr
    return [int(r["trial_id"]) for r in parse_csv(result.stdout)]


def _by_sql(store: Path, sql: str) -> list[int]:
    """The answer from the public views, written here in plain SQL (not the window's)."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        return [r[0] for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def test_ls_where_and_sort_select_as_the_tui_does(recorded: Path) -> None:
    from tuixp.store.window import TrialQuery
    from tuixp.tui.data import StoreReader

    store = str(recorded)
    assert _ids("quick", "--where", "a > 0", "--store", store) == _by_sql(
        recorded,
        "SELECT trial_id FROM trials WHERE experiment = 'quick' AND params.a::INT > 0 "
        "ORDER BY trial_id",
    )  # the latest, oldest first, as without --where
    by_a = _ids("quick", "--sort", "a", "--store", store)
    assert by_a == _by_sql(
        recorded,
        "SELECT trial_id FROM trials WHERE experiment = 'quick' ORDER BY params.a::INT, trial_id",
    )
    by_loss = _ids("quick", "--sort", "loss:desc", "-n", "3", "--store", store)
    assert by_loss == _by_sql(
        recorded,
        "SELECT trial_id FROM metrics WHERE experiment = 'quick' GROUP BY trial_id "
        "ORDER BY arg_max(value, epoch) DESC, trial_id DESC LIMIT 3",
    )
    both = _ids("quick", "--where", "status = 'succeeded'", "--sort", "result", "--store", store)
    assert both == _by_sql(
        recorded,
        "SELECT trial_id FROM trials WHERE experiment = 'quick' AND status = 'succeeded' "
        "ORDER BY result_value, trial_id",
    )
    assert _ids("quick", "--where", "model = 'lasso'", "--status", "failed", "--store", store) == [
        3
    ]
    assert (
        _ids("quick", "--where", "model = 'lasso'", "--status", "succeeded", "--store", store) == []
    )
    # The same selection and order as the TUI's table (its newest-first default aside).
    window = StoreReader(recorded).trials(TrialQuery("quick", "a > 0", "loss", False), 0, 10)
    assert window is not None
    assert _ids("quick", "--where", "a > 0", "--sort", "loss", "--store", store) == [
        r.trial_id for r in window.rows
    ]
    table = invoke(
        "ls", "quick", "--sort", "result:desc", "-n", "2", "--store", store, "-f", "table"
    )
    assert "first 2 of 4 trials by result descending" in table.stderr
    table = invoke("ls", "quick", "--where", "a > 0", "-n", "1", "--store", store, "-f", "table")
    assert "latest 1 of 3 trials matching --where" in table.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--where", "nope > 1"], "--where: No column named 'nope'"),
        (["--where", "a >"], "--where: "),
        (["--where", "(SELECT 1)"], "--where: A filter is a condition over the trial columns"),
        (["--where", "read_text('/etc/passwd') = ''"], "--where: "),
        (["--where", "model > 1"], "--where: The filter does not work"),
        (["--where", "a > 0) OR (a < 0"], "--where: "),
        (["--sort", "nope"], "--sort: No column named 'nope'"),
        (["--sort", "a:sideways"], "--sort takes COLUMN, COLUMN:asc or COLUMN:desc"),
        (["--sort", ":desc"], "--sort takes COLUMN, COLUMN:asc or COLUMN:desc"),
    ],
)
def test_ls_bad_where_or_sort_is_one_line_exit_2(
    recorded: Path, args: list[str], message: str
) -> None:
    before = store_snapshot(recorded)
    result = invoke("ls", "quick", *args, "--store", recorded)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in one_error_line(result)
    assert result.stdout == ""
    assert store_snapshot(recorded) == before


def test_ls_where_needs_an_experiment(recorded: Path) -> None:
    result = invoke("ls", "--where", "a > 0", "--store", recorded)
    assert result.exit_code == 2
    assert "give EXPERIMENT" in one_error_line(result)


def test_show_prints_everything_recorded(recorded: Path) -> None:
    result = invoke("show", "quick", "3", "--store", recorded)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith("quick trial 3: failed")
    for expected in (
        "ZeroDivisionError: division by zero",
        "Traceback (most recent call last)",
        "model  lasso",
        "loss       3",
        "prepare  succeeded",
        "score    failed",
        "Python Version:",
        "def score(s, model):",
        "return 10 / s",
    ):
        assert expected in text, expected
    assert all(len(line) <= 80 for line in text.splitlines() if not line.startswith("  "))


def test_show_json_and_latest(recorded: Path) -> None:
    result = invoke("show", "quick", "latest", "--store", recorded, "-f", "json")
    doc = json.loads(result.stdout)
    assert doc["trial_id"] == 4 and doc["status"] == "succeeded"
    assert doc["params"] == {"a": 1, "b": 2, "model": "ridge"}
    assert doc["result"] == pytest.approx(10 / 4)
    assert "return a + b + 1" in doc["code"]["prepare"]
    assert "<script>" in doc["code"]
    # s = a + b + 1 = 4 after the code change: loss = 1 / (epoch + 1 + 4)
    assert doc["metric_values"]["loss"] == [
        [0, pytest.approx(1 / 5)],
        [1, pytest.approx(1 / 6)],
        [2, pytest.approx(1 / 7)],
    ]
    assert doc["environment"]["packages"]["duckdb"]
    assert [c["kind"] for c in doc["changes"]] == ["code"]


def test_diff_parameters_code_and_environment(recorded: Path) -> None:
    result = invoke("diff", "quick", "1", "4", "--store", recorded)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "Parameters\n----------\n  no differences" in text
    assert "--- prepare (trial 1)\n+++ prepare (trial 4)" in text
    assert "-    return a + b\n+    return a + b + 1" in text
    assert "Environment\n-----------\n  no differences" in text
    params = invoke("diff", "quick", "1", "3", "--params", "--store", recorded)
    assert "Code" not in params.stdout
    lines = params.stdout.splitlines()
    assert any(line.split() == ["a", "1", "-2", "changed"] for line in lines)
    assert any(line.split() == ["model", "ridge", "lasso", "changed"] for line in lines)
    assert "same: b" in params.stdout
    doc = json.loads(
        invoke("diff", "quick", "1", "4", "-f", "json", "--code", "--store", recorded).stdout
    )
    assert doc["trials"] == [1, 4] and "params" not in doc
    assert {c["step"]: c["status"] for c in doc["code"]}["prepare"] == "changed"


@pytest.mark.parametrize(
    "args, message",
    [
        (["ls", "nope"], "Unable to find experiment: nope. Known: quick, second_experiment_with"),
        (["show", "nope", "1"], "Unable to find experiment: nope"),
        (["show", "quick", "9"], "Unable to find trial id: 9 (experiment quick has trials 1 to 4)"),
        (["show", "quick", "x"], "not a trial id: 'x'"),
        (["show", "quick", "0"], "trial ids start at 1"),
        (["diff", "quick", "1", "99"], "Unable to find trial id: 99"),
        (["show", "quick", "1", "-f", "csv"], "unknown format 'csv': use table, json"),
        (["ls", "--status", "done"], "unknown status 'done'"),
        (["ls", "quick", "--limit", "0"], "--limit must be at least 1"),
        (["sql", "DROP VIEW trials"], "DROP statements are refused"),
        (["sql", "DELETE FROM trial_record"], "DELETE statements are refused"),
        (["sql", "INSERT INTO blob VALUES ('a', 'b')"], "INSERT statements are refused"),
        (["sql", "UPDATE trial_record SET status = 'x'"], "UPDATE statements are refused"),
        (["sql", "CREATE TABLE t AS SELECT 1"], "CREATE statements are refused"),
        (["sql", "ATTACH 'x.duckdb'"], "ATTACH statements are refused"),
        (["sql", "COPY trial_record TO 'x.csv'"], "COPY statements are refused"),
        (["sql", "SELECT 1; DROP VIEW trials"], "give one statement at a time"),
        (["sql", "SELECT * FROM read_csv('/etc/passwd')"], "not allowed here"),
        (["sql", "SELEC 1"], "SQL error: Parser Error"),
        (["sql", "SELECT * FROM nothing_here"], "SQL error: Catalog Error"),
        (["export", "{out}", "--format", "xlsx"], "unknown export format 'xlsx'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_the_store_unchanged(
    recorded: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    before = store_snapshot(recorded)
    result = invoke(*[a.format(out=tmp_path / "out") for a in args], "--store", recorded)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in one_error_line(result)
    assert store_snapshot(recorded) == before


@pytest.mark.parametrize(
    "command",
    [
        ["ls"],
        ["ls", "quick"],
        ["show", "quick", "1"],
        ["diff", "quick", "1", "2"],
        ["sql", "SELECT 1"],
        ["export", "out"],
    ],
)
def test_no_store_is_refused_and_none_is_created(tmp_path: Path, command: list[str]) -> None:
    store = tmp_path / "missing.duckdb"
    result = invoke(*command, "--store", store)
    assert result.exit_code == 2
    assert f"No tuixp store at {store}" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_sql_reads_the_views(recorded: Path) -> None:
    result = invoke(
        "sql",
        "SELECT trial_id, status, params->>'a' AS a FROM trials "
        "WHERE experiment = 'quick' ORDER BY trial_id",
        "--store",
        recorded,
    )
    assert result.exit_code == 0, result.stderr
    assert parse_csv(result.stdout) == [
        {"trial_id": "1", "status": "succeeded", "a": "1"},
        {"trial_id": "2", "status": "succeeded", "a": "4"},
        {"trial_id": "3", "status": "failed", "a": "-2"},
        {"trial_id": "4", "status": "succeeded", "a": "1"},
    ]
    doc = json.loads(
        invoke(
            "sql",
            "SELECT name, count(*) AS n FROM metrics GROUP BY name",
            "--store",
            recorded,
            "-f",
            "json",
        ).stdout
    )
    assert doc == [{"name": "loss", "n": 15}]
    table = invoke(
        "sql",
        "SELECT trial_id FROM trials ORDER BY trial_id",
        "--store",
        recorded,
        "-f",
        "table",
        "--max-rows",
        "2",
    )
    assert table.stdout.split() == ["trial_id", "1", "1"]
    assert "first 2 rows shown" in table.stderr
    piped = invoke(
        "sql", "-", "--store", recorded, "-f", "json", input_text="SELECT count(*) AS n FROM trials"
    )
    assert json.loads(piped.stdout) == [{"n": 5}]


def test_sql_sees_trials_still_in_the_journal(tmp_path: Path) -> None:
    import tuixp

    store = tmp_path / "s.duckdb"
    ex = tuixp.Experiment("journaled", store=store)
    x = ex.parameter("x")

    @ex.result
    def f(x):
        return x * 2

    f(x).compute(x=21)
    result = invoke(
        "sql",
        "SELECT result FROM trials WHERE experiment = 'journaled'",
        "--store",
        store,
        "-f",
        "json",
    )
    assert json.loads(result.stdout) == [{"result": "42"}]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_writes_every_view(recorded: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "export"
    before = store_snapshot(recorded)
    result = invoke("export", out, "--format", fmt, "--store", recorded)
    assert result.exit_code == 0, result.stderr
    from tuixp.store.schema import PUBLIC_VIEWS

    assert sorted(p.name for p in out.iterdir()) == sorted(f"{v}.{fmt}" for v in PUBLIC_VIEWS)
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    con = duckdb.connect()
    with Store(recorded).connect(read_only=True) as store_con:
        for view in PUBLIC_VIEWS:
            want = store_con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
            got = con.execute(
                f"SELECT count(*) FROM {reader}('{out / (view + '.' + fmt)}')"
            ).fetchone()[0]
            assert got == want, view
    trials = con.execute(
        f"SELECT trial_id, status FROM {reader}('{out}/trials.{fmt}') "
        "WHERE experiment = 'quick' ORDER BY trial_id"
    ).fetchall()
    assert trials == [(1, "succeeded"), (2, "succeeded"), (3, "failed"), (4, "succeeded")]
    assert store_snapshot(recorded) == before


def test_demo_records_something_to_look_at(tmp_path: Path) -> None:
    store = tmp_path / "demo" / "tuixp.duckdb"
    result = invoke("demo", "--store", store)
    assert result.exit_code == 0, result.stderr
    assert "Recorded 10 trials of experiment demo (trials 1 to 10, 1 failed)" in result.stdout
    with Store(store).connect() as con:
        statuses = con.execute(
            "SELECT status, count(*) FROM trials WHERE experiment = 'demo' "
            "GROUP BY status ORDER BY status"
        ).fetchall()
        assert statuses == [("failed", 1), ("succeeded", 9)]
        grid = con.execute(
            "SELECT DISTINCT params->>'lr', params->>'model' FROM trials "
            "WHERE trial_id BETWEEN 2 AND 7"
        ).fetchall()
        assert len(grid) == 6
        epochs = con.execute(
            "SELECT count(DISTINCT epoch) FROM metrics WHERE name = 'loss' AND trial_id = 1"
        ).fetchone()[0]
        assert epochs == 25
        persisted = con.execute("SELECT count(*), min(format) FROM persisted").fetchone()
        assert persisted == (9, "npy")
        changed = con.execute(
            "SELECT trial_id FROM trials, unnest(CAST(changes AS JSON[])) c "
            "WHERE c.c->>'kind' = 'code' ORDER BY trial_id"
        ).fetchall()
        assert changed == [(9,), (10,)]  # both trials of the run after the edit
        code = dict(
            con.execute(
                "SELECT trial_id, source FROM code WHERE step = 'train' AND trial_id IN (1, 10)"
            ).fetchall()
        )
        scripts = con.execute("SELECT DISTINCT script FROM trials").fetchall()
    assert scripts == [(str(store.parent / "tuixp.duckdb.demo" / "demo_experiment.py"),)]
    assert "w -= lr * grad" in code[1] and "decaying step size" in code[10]
    diff = invoke("diff", "demo", "1", "10", "--code", "--store", store)
    assert "+        w -= lr / (1.0 + 0.05 * epoch) * grad" in diff.stdout


def test_ui_refuses_a_folder(tmp_path: Path) -> None:
    result = invoke("ui", "--store", tmp_path)
    assert result.exit_code == 2
    assert "is a folder, not a store file" in one_error_line(result)


def test_script_used_by_the_fixtures_is_valid_python() -> None:
    compile(SCRIPT.format(name="x", marker="m", store=""), "script", "exec")


def test_ls_on_many_trials_shows_the_latest(tmp_path: Path) -> None:
    from tuixp.store.synthetic import generate

    store = generate(tmp_path / "big.duckdb", 5_000, experiment="search")
    table = invoke("ls", "search", "--store", store, "-f", "table")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 51 and all(len(line) <= 80 for line in lines)
    assert lines[1].split()[0] == "4951" and lines[-1].split()[0] == "5000"
    assert "latest 50 of 5000 trials" in table.stderr
    every = parse_csv(invoke("ls", "search", "--all", "--store", store).stdout)
    assert [int(r["trial_id"]) for r in every] == list(range(1, 5001))
    assert set(every[0]) >= {"lr", "depth", "model"}
    experiments = json.loads(invoke("ls", "--store", store, "-f", "json").stdout)
    assert experiments[0]["experiment"] == "search" and experiments[0]["trials"] == 5000


def test_diff_shows_a_git_change_in_the_environment(tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    store = tmp_path / "store" / "s.duckdb"
    script = write_script(repo)
    git("init", "-q")
    git("add", "exp.py")
    git("commit", "-q", "-m", "first")
    first = git("rev-parse", "HEAD")
    assert invoke("run", script, "a=1", "--store", store).exit_code == 0
    script.write_text(script.read_text().replace("return 10 / s", "return 20 / s"))
    git("commit", "-q", "-am", "second")
    second = git("rev-parse", "HEAD")
    assert invoke("run", script, "a=1", "--store", store).exit_code == 0
    result = invoke("diff", "quick", "1", "2", "--env", "--store", store)
    assert result.exit_code == 0, result.stderr
    assert "  git:\n" in result.stdout
    assert f"    ~ commit: {first[:12]} -> {second[:12]}\n" in result.stdout
    assert "packages:" not in result.stdout and "Code" not in result.stdout
    doc = json.loads(invoke("diff", "quick", "1", "2", "-f", "json", "--store", store).stdout)
    assert doc["environment"]["git"] == [
        {"name": "commit", "status": "changed", "old": first, "new": second}
    ]
    ls = invoke("ls", "quick", "--store", store, "-f", "table")
    assert first[:7] in ls.stdout and second[:7] in ls.stdout


def test_sql_values_of_every_kind(recorded: Path) -> None:
    query = (
        "SELECT 1.50::DECIMAL(5, 2) AS d, DATE '2025-06-15' AS day, INTERVAL 90 SECOND AS i, "
        "[1, 2] AS l, {'k': 'v'} AS s, NULL AS n, 'x' AS t"
    )
    doc = json.loads(invoke("sql", query, "--store", recorded, "-f", "json").stdout)
    assert doc == [
        {
            "d": 1.5,
            "day": "2025-06-15",
            "i": 90.0,
            "l": [1, 2],
            "s": {"k": "v"},
            "n": None,
            "t": "x",
        }
    ]
    rows = parse_csv(invoke("sql", query, "--store", recorded, "-f", "csv").stdout)
    assert rows == [
        {
            "d": "1.50",
            "day": "2025-06-15",
            "i": "0:01:30",
            "l": "[1,2]",
            "s": '{"k":"v"}',
            "n": "",
            "t": "x",
        }
    ]
    table = invoke("sql", query, "--store", recorded, "-f", "table").stdout.splitlines()
    assert table[1].split() == ["1.50", "2025-06-15", "0:01:30", "[1,2]", '{"k":"v"}', "x"]
