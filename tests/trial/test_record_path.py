"""The record path's structure: no import circle, the journal vocabulary agrees with its checker,
nodes still travel by pickle (cluster runs)."""

from __future__ import annotations

import pickle
from array import array
from pathlib import Path

import grimp
import pytest

import tuixp
from tuixp.graph import Node, walk
from tuixp.store import events
from tuixp.store.events import check_event
from tuixp.store.metric_batch import pack

# The one circle left, in the UI (issue 16 item 2, another part of the refactor).
UI = ("tuixp.cli", "tuixp.demo", "tuixp.tui")


def _circles(package: str) -> list[list[str]]:
    """Every set of the package's modules that import each other, imports in functions
    included (only ``if TYPE_CHECKING:`` imports are free)."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    modules = sorted(graph.modules)
    edges = {
        m: sorted(set(graph.find_modules_directly_imported_by(m)) & set(modules)) for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:  # Tarjan's strongly connected components, without recursion
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
            if i < len(edges[v]):
                work.append((v, i + 1))
                w = edges[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return found


def test_no_import_circle_outside_the_ui() -> None:
    circles = _circles("tuixp")
    core = [c for c in circles if not all(m.startswith(UI) for m in c)]
    assert core == [], core


def test_the_circle_finder_finds_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: two modules that import each other inside functions."""
    pkg = tmp_path / "circ"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from circ import b\n")
    (pkg / "b.py").write_text("def g():\n    from circ import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from circ import a\n"
    )
    (pkg / "d.py").write_text("from circ import c\n")
    assert _circles("circ") == [["circ.a", "circ.b"]]


def test_every_constructed_event_passes_the_checker() -> None:
    ids = ("u" * 32, "ex", 1)
    built = [
        events.experiment("ex", 1.0, None, goal="min"),
        events.blob("h", "text"),
        events.code_set("c", [{"ord": 0, "step": "s", "source_hash": "h"}]),
        events.package_set("p", {"numpy": "2.0", "gone": None}),
        events.trial_started(*ids, 1.0, 7, {"a": 1}, scheduler="sync", changes=[], data={}),
        events.step(*ids, "k", "s", 1.0, None, "running", None),
        events.step(*ids, "k", "s", 1.0, 2.0, "reused", None, output_hash="o", reused_from=1),
        events.metric(*ids, "loss", 0, 0.5, 1.5, seq=1, step="s"),
        events.metric_batch(
            *ids,
            2,
            ["loss"],
            1,
            {
                "name": pack(array("H", [0, 0])),
                "epoch": pack(array("q", [0, 1])),
                "value": pack(array("d", [0.5, 0.25])),
                "type": pack(array("B", [1, 1])),
                "recorded_at": pack(array("d", [1.5, 1.6])),
            },
        ),
        events.metric_goal("ex", "acc", "max"),
        events.persisted(*ids, "s", "o", "npy", 10),
        events.artifact(*ids, "model.pt", "file", "h" * 64, 10, 1, "s", 1.5),
        events.annotation("a" * 32, *ids, "tag", "baseline", 1.5, "me@host"),
        events.trial_finished("u" * 32, "succeeded", 2.0, result="1", notes="[]"),
        events.trial_finished("u" * 32, "failed", 2.0, error_type="E", error_message="m"),
    ]
    assert [e["t"] for e in built if e["t"] not in events.KINDS] == []
    assert {e["t"] for e in built} == set(events.KINDS)
    assert [(e["t"], check_event(e)) for e in built if check_event(e) is not None] == []


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError, match="no field 'reuse_from'"):
        events.step("u", "ex", 1, "k", "s", 1.0, 2.0, "reused", None, reuse_from=1)


def test_walk_rebuilds_containers_and_reaches_every_leaf() -> None:
    value = {"a": [1, (2, {"b": 3})], "c": 4}
    assert walk(value, lambda x: x * 10) == {"a": [10, (20, {"b": 30})], "c": 40}
    as_lists = walk(value, str, lambda original, items: items)
    assert as_lists == {"a": ["1", ["2", {"b": "3"}]], "c": "4"}


def double(a: int) -> int:
    return 2 * a


def plus(x: int, a: int) -> int:
    return x + a


def test_a_node_survives_pickling(store_path: Path) -> None:
    """A graph pickled (as a cluster run ships it) and loaded computes the same trial."""
    ex = tuixp.Experiment("pickled", store=store_path)
    a = ex.parameter("a")
    node = ex.result(plus)(ex(double)(a), a)
    copy = pickle.loads(pickle.dumps(node))
    assert isinstance(copy, Node)
    assert (copy.step.name, copy.args[0].step.name) == ("plus", "double")
    assert copy.compute(a=3, scheduler="sync") == 9
