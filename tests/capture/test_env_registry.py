"""The registry of environment groups drives every consumer: capture, change warnings, the
comparison of two trials, the ``get_environment`` categories and summary, the detail screen."""

from __future__ import annotations

from typing import Any

from tuixp.capture.environment import (
    ENV_CATEGORIES,
    ENV_GROUPS,
    capture_environment,
    env_group,
    environment_view,
)
from tuixp.diff import compare_environment
from tuixp.trial.world import compare


def _record() -> dict[str, Any]:
    """A real environment record of this process, with git and packages as the store adds them."""
    env = capture_environment()
    env["git"] = {"repository": "/r", "branch": "main", "commit": "a" * 40, "dirty": False}
    env["packages"] = {"numpy": "1.0"}
    return env


def _changed(value: Any) -> Any:
    return (
        f"{value}-changed" if not isinstance(value, int) or isinstance(value, bool) else value + 1
    )


def test_capture_records_every_group_that_has_a_capture() -> None:
    env = capture_environment()
    assert list(env) == [g.name for g in ENV_GROUPS if g.capture is not None]
    assert {"platform", "python", "cpu", "gpu"} <= set(env)


def test_every_watched_field_of_every_group_warns_when_it_changes() -> None:
    env = _record()
    checked = 0
    for g in ENV_GROUPS:
        for name in g.watched:
            old = {k: (dict(v) if isinstance(v, dict) else v) for k, v in env.items()}
            new = {k: (dict(v) if isinstance(v, dict) else v) for k, v in env.items()}
            new[g.name][name] = _changed(old[g.name].get(name))
            prev = {"code": {}, "environment": old, "git": old["git"]}
            world = {"code": {}, "environment": new, "packages": {}, "git": new["git"]}
            found = [c for c in compare(prev, world) if c["name"] == g.name]
            assert len(found) == 1 and f"~ {name}:" in found[0]["diff"], (g.name, name, found)
            checked += 1
    assert checked >= 10


def test_every_compared_field_and_no_noise_field_shows_in_a_comparison() -> None:
    env = _record()
    checked = 0
    for g in ENV_GROUPS:
        if g.kind != "fields":
            continue
        for name in (*g.compared, *sorted(g.noise)):
            new = dict(env)
            new[g.name] = {**(env.get(g.name) or {}), name: _changed((env[g.name]).get(name))}
            groups = compare_environment(env, new).groups
            if name in g.noise:
                assert groups == {}, (g.name, name, groups)
            else:
                assert [(c.group, c.name) for c in groups[g.name]] == [(g.name, name)]
            checked += 1
    # the devices and versions groups are compared too
    gpu = {**env, "gpu": [{"name": "X"}]}
    assert list(compare_environment(env, gpu).groups) == [env_group("gpu").name]
    pkgs = {**env, "packages": {"numpy": "2.0"}}
    assert [c.name for c in compare_environment(env, pkgs).changes] == ["numpy"]
    assert checked >= 20


def test_the_comparison_lists_groups_in_the_registry_rank() -> None:
    env = _record()
    new = {g.name: {"x": 1} for g in ENV_GROUPS if g.kind == "fields"}
    new["gpu"] = [{"name": "X"}]
    new["packages"] = {"numpy": "2.0"}
    groups = list(compare_environment(env, new).groups)
    assert groups == [g.name for g in sorted(ENV_GROUPS, key=lambda g: g.diff_rank)]


def test_every_group_is_a_category_and_its_summary_is_in_the_summary() -> None:
    env = _record()
    for g in ENV_GROUPS:
        assert g.name in ENV_CATEGORIES
        assert environment_view(env, g.name) == env.get(g.name)
    lines = environment_view(env, None)
    expected = [line for g in ENV_GROUPS if g.summary is not None for line in g.summary(env)]
    assert lines == expected and len(lines) == 10
    assert lines[0].startswith("Platform Information: ")
    assert "Git HEAD Commit: " + "a" * 40 in lines
