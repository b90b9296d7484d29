"""The pieces the CLI, the TUI and the demo share (issue 16 item 3): the ``NAME=VALUE`` grammar
(``tuixp.values``), script loading (``tuixp.scripts``) and the public ``Experiment`` names the
command line uses instead of its private attributes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tuixp import errors, scripts, values
from tuixp.store import Store

SCRIPT = textwrap.dedent("""
    import tuixp

    ex = tuixp.Experiment("shared", store="elsewhere.duckdb")
    lr = ex.parameter("lr", default=0.1)
    model = ex.parameter("model")


    @ex.result
    def fit(lr, model):
        return f"{model}:{lr}"


    s = fit(lr, model)
""")


def test_every_typed_value_prints_back_as_itself() -> None:
    cases = [
        "ridge",
        "two words",
        "ridge-1",
        "[abc",  # opens like a literal: the form's old printer raised on it
        "",
        "None",
        "1",
        0.1,
        -3,
        True,
        None,
        [1, "a"],
        {"a": (1, 2)},
    ]
    for value in cases:
        text = values.format_value(value)
        assert values.parse_value(text, "x") == value, (value, text)
    assert values.format_value("ridge") == "ridge"  # a bare word stays bare
    assert values.format_value("two words") == "'two words'"


def test_bad_input_is_a_usage_error_with_exit_code_2() -> None:
    with pytest.raises(errors.UsageError, match="is not a Python literal") as bad:
        values.parse_value("(1, 2", "shape")
    assert isinstance(bad.value, errors.TuixpError) and bad.value.code == 2
    with pytest.raises(errors.UsageError, match="an empty value"):
        values.parse_parameters([], ["lr=1,,2"])
    with pytest.raises(errors.UsageError, match="given both"):
        values.parse_parameters(["lr=1"], ["lr=1,2"])
    assert values.parse_parameters(["m=ridge"], ["lr=0.1, [1, 2]"]) == (
        {"m": "ridge"},
        {"lr": [0.1, [1, 2]]},
    )
    from tuixp.cli import CliError

    assert CliError is errors.UsageError  # the command line's old name


def test_a_loaded_script_records_where_the_command_line_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the script's own store="elsewhere.duckdb" would be
    path = tmp_path / "shared.py"
    path.write_text(SCRIPT)
    target = tmp_path / "chosen.duckdb"
    loaded = scripts.load_script(path)
    node = loaded.pick(None)
    ex = node.ex
    assert [e.id for e in loaded.experiments] == ["shared"] and ex.script == str(path.resolve())
    assert ex.parameter_names == ["lr", "model"]
    with pytest.raises(errors.ParameterUndefinedError, match="model"):
        ex.check_parameters({"lr": 0.5})
    with pytest.raises(errors.ParameterUndeclaredError, match="depth"):
        ex.check_parameters({"depth": 3, "model": "a"})
    assert ex.check_parameters({"model": "a"}) == {"lr": 0.1, "model": "a"}
    scripts.use_store(loaded, target)
    ex.set_parameters(model="ridge")
    assert node.compute(seed=1) == "ridge:0.1"
    assert ex.store.path == target.resolve()
    assert not (tmp_path / "elsewhere.duckdb").exists()
    with Store(target).connect() as con:
        assert con.execute("SELECT experiment, status FROM trials").fetchall() == [
            ("shared", "succeeded")
        ]


def test_a_missing_or_broken_script_is_one_usage_error(tmp_path: Path) -> None:
    with pytest.raises(errors.UsageError, match="script not found"):
        scripts.load_script(tmp_path / "nope.py")
    broken = tmp_path / "broken.py"
    broken.write_text("import tuixp\n\nraise RuntimeError('no data')\n")
    with pytest.raises(errors.UsageError, match=r"broken.py failed while being loaded: line 3: "):
        scripts.load_script(broken)
