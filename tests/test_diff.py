"""tuixp.diff: pure comparisons of recorded trials (parameters, code, environment)."""

from __future__ import annotations

from typing import Any

from tuixp import diff
from tuixp.diff import ADDED, CHANGED, MISSING, REMOVED, SAME


def test_parameters_changed_added_removed_and_same() -> None:
    changes = diff.compare_params(
        {"lr": 0.1, "depth": 3, "model": "ridge", "old": 1},
        {"lr": 0.01, "depth": 3.0, "model": "ridge", "new": [1]},
    )
    assert [(c.name, c.status) for c in changes] == [
        ("lr", CHANGED),
        ("depth", SAME),
        ("model", SAME),
        ("old", REMOVED),
        ("new", ADDED),
    ]
    by_name = {c.name: c for c in changes}
    assert (by_name["lr"].old, by_name["lr"].new) == (0.1, 0.01)
    assert by_name["old"].new is MISSING and by_name["new"].old is MISSING


def test_booleans_are_not_numbers_and_none_is_not_missing() -> None:
    changes = {
        c.name: c.status
        for c in diff.compare_params(
            {"flag": True, "n": 1, "opt": None}, {"flag": 1, "n": True, "opt": None}
        )
    }
    assert changes == {"flag": CHANGED, "n": CHANGED, "opt": SAME}
    assert diff.compare_params({"opt": None}, {})[0].status == REMOVED


def test_parameter_table_of_three_trials() -> None:
    rows = diff.param_table([{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "c": 2}])
    assert [(r.name, r.values, r.differs) for r in rows] == [
        ("a", (1, 1, 1), False),
        ("b", ("x", "y", MISSING), True),
        ("c", (MISSING, MISSING, 2), True),
    ]
    assert diff.param_table([{"a": 1}])[0].differs is False


def test_code_diff_per_step() -> None:
    old = {
        "load": "def load():\n    return 1\n",
        "train": "def train(d):\n    return d\n",
        "gone": "def gone():\n    pass\n",
    }
    new = {
        "load": "def load():\n    return 1\n",
        "train": "def train(d):\n    return d * 2\n",
        "fresh": "def fresh():\n    pass\n",
    }
    changes = {c.step: c for c in diff.compare_code(old, new, ("trial 1", "trial 2"))}
    assert {s: c.status for s, c in changes.items()} == {
        "load": SAME,
        "train": CHANGED,
        "gone": REMOVED,
        "fresh": ADDED,
    }
    assert changes["load"].diff == ""
    lines = changes["train"].diff.splitlines()
    assert lines[:2] == ["--- train (trial 1)", "+++ train (trial 2)"]
    assert "-    return d" in lines and "+    return d * 2" in lines
    assert (changes["train"].added_lines, changes["train"].removed_lines) == (1, 1)
    assert changes["gone"].removed_lines == 2 and changes["gone"].added_lines == 0
    assert changes["fresh"].new == new["fresh"] and changes["fresh"].old is None


def env(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "platform": {
            "system": "Linux",
            "release": "6.1",
            "machine": "x86_64",
            "hostname": "box",
            "version": "#1",
        },
        "python": {
            "implementation": "CPython",
            "version": "3.11.9",
            "executable": "/v/python",
            "venv": "/v",
            "conda": None,
        },
        "cpu": {"brand_raw": "Xeon", "count": 8, "hz_actual": "2.1 GHz"},
        "gpu": [],
        "git": {
            "repository": "/p",
            "branch": "main",
            "commit": "a" * 40,
            "dirty": False,
            "diff": "",
            "notes": [],
        },
        "packages": {"numpy": "2.1.0", "pandas": "2.2.3", "Dask": "2026.8.0"},
    }
    for key, value in over.items():
        if isinstance(value, dict) and key != "packages":
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def test_same_environment_has_no_differences() -> None:
    result = diff.compare_environment(env(), env())
    assert not result and result.groups == {}


def test_environment_differences_are_grouped_in_reading_order() -> None:
    new = env(
        packages={"numpy": "2.2.0", "Dask": "2026.8.0", "scipy": "1.14"},
        python={"version": "3.12.1"},
        platform={"hostname": "other"},
        cpu={"count": 16},
        git={"commit": "b" * 40, "dirty": True},
        gpu=[{"name": "A100"}],
    )
    result = diff.compare_environment(env(), new)
    groups = result.groups
    assert list(groups) == ["packages", "python", "platform", "cpu", "gpu", "git"]
    assert [(c.name, c.status, c.old, c.new) for c in groups["packages"]] == [
        ("numpy", CHANGED, "2.1.0", "2.2.0"),
        ("pandas", REMOVED, "2.2.3", MISSING),
        ("scipy", ADDED, MISSING, "1.14"),
    ]
    assert [(c.name, c.old, c.new) for c in groups["python"]] == [("version", "3.11.9", "3.12.1")]
    assert [c.name for c in groups["platform"]] == ["hostname"]
    assert [(c.name, c.new) for c in groups["cpu"]] == [("count", 16)]
    assert [c.name for c in groups["git"]] == ["commit", "dirty"]
    assert groups["gpu"][0].new == [{"name": "A100"}]


def test_noise_is_not_a_difference() -> None:
    new = env(cpu={"hz_actual": "3.4 GHz"}, git={"notes": ["HEAD is detached"]})
    assert not diff.compare_environment(env(), new)


def test_compare_trials_puts_it_together() -> None:
    a = {"params": {"lr": 0.1}, "code": {"f": "x = 1\n"}, "environment": env()}
    b = {
        "params": {"lr": 0.2},
        "code": {"f": "x = 2\n"},
        "environment": env(python={"version": "3.12.0"}),
    }
    result = diff.compare_trials(a, b, ("t1", "t2"))
    assert [p.name for p in result.params_changed] == ["lr"]
    assert [c.step for c in result.code_changed] == ["f"]
    assert "--- f (t1)" in result.code[0].diff
    assert list(result.environment.groups) == ["python"]


def test_short_values_for_people() -> None:
    assert diff.short("ridge") == "ridge"
    assert diff.short(0.1) == "0.1"
    assert diff.short({"a": [1, 2]}) == '{"a":[1,2]}'
    assert diff.short(MISSING) == "(none)"
    assert diff.short("x" * 100, 10) == "xxxxxxxxx…"
    assert diff.short("two\nlines") == "two lines"
