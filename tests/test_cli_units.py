"""The CLI's small parts (NAME=VALUE parsing, tables, formats), and helpers the CLI tests share.

``store_snapshot`` reads everything a store holds (every table of the database, the ids file,
the journals, the state files, the persisted objects) so a test can show that a refused
command left the store exactly as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tuixp import cli

# -- helpers shared by the CLI tests ----------------------------------------------------------
SCRIPT = """
import tuixp

ex = tuixp.Experiment("{name}"{store})
a = ex.parameter("a")
b = ex.parameter("b", default=2)
model = ex.parameter("model", default="ridge")

@ex
def prepare(a, b):
    print("prepare ran")
    return a + b

@ex.result
def score(s, model):
    for epoch in range(3):
        ex.save_metric("loss", epoch=epoch, value=1.0 / (epoch + 1 + abs(s)))
    return 10 / s

s = score(prepare(a, b), model)

if __name__ == "__main__":
    open({marker!r}, "w").write("the main block ran")
"""


def write_script(
    folder: Path, name: str = "quick", store: Path | None = None, filename: str = "exp.py"
) -> Path:
    path = folder / filename
    marker = str(folder / "main-block-ran")
    path.write_text(
        SCRIPT.format(name=name, marker=marker, store=f", store={str(store)!r}" if store else "")
    )
    return path


def invoke(*args: Any, env: dict[str, str] | None = None, input_text: str | None = None) -> Any:
    """Run the CLI in this process; stdout and stderr apart, exceptions left for the test."""
    runner = CliRunner()
    return runner.invoke(
        cli.app, [str(a) for a in args], env=env, input=input_text, catch_exceptions=False
    )


def store_snapshot(store: Path) -> dict[str, Any]:
    """Everything the store holds, comparable with ==."""
    from tuixp.store.store import Store

    snap: dict[str, Any] = {}
    if store.exists():
        with Store(store).connect(read_only=True) as con:
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                    "ORDER BY table_name"
                ).fetchall()
            ]
            for table in tables:
                rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
                snap[f"table:{table}"] = sorted(repr(r) for r in rows)
    for suffix in (".ids", ".journal", ".state", ".objects"):
        side = store.with_name(store.name + suffix)
        if side.is_file():
            snap[suffix] = side.read_bytes()
        elif side.is_dir():
            snap[suffix] = {
                str(p.relative_to(side)): p.read_bytes()
                for p in sorted(side.rglob("*"))
                if p.is_file()
            }
    snap["files"] = sorted(p.name for p in store.parent.glob(store.name + "*"))
    return snap


def ingest(store: Path) -> None:
    from tuixp.store.store import Store

    with Store(store).connect():
        pass


def one_error_line(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tuixp: "), lines[0]
    return lines[0]


# -- parsing NAME=VALUE --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [
        ("1", 1),
        ("-2.5", -2.5),
        ("1e-3", 0.001),
        ("True", True),
        ("None", None),
        ("[1, 2]", [1, 2]),
        ("{'k': 1}", {"k": 1}),
        ("'quoted'", "quoted"),
        ("ridge", "ridge"),
        ("adam-v2", "adam-v2"),
        ("/data/train.csv", "/data/train.csv"),
        ("1.2.3", "1.2.3"),
        ("two words", "two words"),
    ],
)
def test_values_are_python_literals_and_bare_words_are_strings(text: str, value: Any) -> None:
    parsed = cli.parse_value(text, "x")
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("text", ["[1, 2", "(1,", "'open", "{'k': 1", ""])
def test_a_broken_literal_is_refused(text: str) -> None:
    with pytest.raises(cli.CliError, match="malformed value for x"):
        cli.parse_value(text, "x")


@pytest.mark.parametrize(
    "text, message",
    [
        ("a", "expected NAME=VALUE"),
        ("=1", "is not a parameter name"),
        ("1a=2", "is not a parameter name"),
        ("a-b=2", "is not a parameter name"),
    ],
)
def test_malformed_assignments(text: str, message: str) -> None:
    with pytest.raises(cli.CliError, match=message):
        cli.parse_assignment(text)


def test_grid_values_split_on_top_level_commas_only() -> None:
    assert cli.split_values("1,2,3") == ["1", "2", "3"]
    assert cli.split_values("[1,2],[3,4]") == ["[1,2]", "[3,4]"]
    assert cli.split_values("'a,b',c") == ["'a,b'", "c"]
    assert cli.split_values(r"'a\',b',c") == [r"'a\',b'", "c"]
    fixed, grid = cli.parse_parameters(["b=3"], ["a=1,2.5,x", "pair=(1, 2),(3, 4)"])
    assert fixed == {"b": 3}
    assert grid == {"a": [1, 2.5, "x"], "pair": [(1, 2), (3, 4)]}


@pytest.mark.parametrize(
    "assignments, grids, message",
    [
        (["a=1", "a=2"], [], "given twice"),
        (["a=1"], ["a=2,3"], "both as a=... and in --grid"),
        ([], ["a=1", "a=2"], "--grid a is given twice"),
        ([], ["a=1,,2"], "an empty value"),
        ([], ["a=1,"], "an empty value"),
    ],
)
def test_parameter_clashes_are_refused(
    assignments: list[str], grids: list[str], message: str
) -> None:
    with pytest.raises(cli.CliError, match=message):
        cli.parse_parameters(assignments, grids)


# -- tables ------------------------------------------------------------------------------------
def test_tables_fit_the_width_and_elide_the_widest_cells() -> None:
    headers = ["TRIAL", "STATUS", "PARAMS", "RESULT"]
    rows = [["1", "succeeded", "lr=0.1 " * 20, "x" * 50], ["12", "failed", "a=1", "boom"]]
    text = cli.render_table(headers, rows, width=60, right=[0])
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert lines[0].startswith("TRIAL  STATUS")
    assert "…" in lines[1]
    assert lines[2].startswith("   12  failed")  # right-aligned ids


def test_kept_columns_give_way_last() -> None:
    rows = [["p" * 40, "r" * 40]]
    kept = cli.render_table(["PARAMS", "RESULT"], rows, width=50, keep=[0])
    widths = [len(cell.rstrip("…")) for cell in kept.splitlines()[1].split("  ")]
    assert widths[0] > widths[1]


def test_short_tables_are_left_alone() -> None:
    assert cli.render_table(["A", "B"], [["1", "2"]], width=80) == "A  B\n1  2"


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.0123, "0.01s"),
        (12.34, "12.3s"),
        (75, "1m15s"),
        (3 * 3600 + 125, "3h02m"),
        (None, ""),
    ],
)
def test_elapsed_times_read_well(seconds: float | None, text: str) -> None:
    assert cli.fmt_elapsed(seconds) == text


def test_unknown_format_is_refused() -> None:
    with pytest.raises(cli.CliError, match="unknown format 'xml'"):
        cli.output_format("xml")
    assert cli.output_format("JSON") == "json"
    assert cli.output_format(None) == "csv"  # not a terminal


def test_store_snapshot_sees_a_change(tmp_path: Path) -> None:
    """The helper the refusal tests rely on notices a new trial."""
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    assert invoke("run", script, "a=1", "--store", store).exit_code == 0
    ingest(store)
    before = store_snapshot(store)
    assert invoke("run", script, "a=2", "--store", store).exit_code == 0
    ingest(store)
    assert store_snapshot(store) != before
