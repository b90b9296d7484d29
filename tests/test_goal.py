"""Which result is best: ``Experiment(goal="min" | "max")``, kept in the store, shown as "best".

Without a goal nothing is called best: the TUI shows the highest result as "max", ``tuixp ls``
the lowest and the highest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tuixp
from tests.cli.test_cli_units import invoke
from tuixp import errors
from tuixp.store import Store, queries
from tuixp.tui.widgets.experiment_list import describe


def _record(store: Path, name: str, goal: str | None, values: list[float]) -> None:
    ex = tuixp.Experiment(name, store=store, goal=goal)
    x = ex.parameter("x")

    @ex.result
    def same(x):
        return x

    node = same(x)
    for v in values:
        node.compute(x=v)
    ex.store.journal.close()


def _experiments(store: Path) -> dict[str, dict]:
    with Store(store).connect() as con:
        return {e["experiment"]: e for e in queries.experiments(con)}


@pytest.mark.parametrize("bad", ["minimize", "MIN", 1, ""])
def test_an_unknown_goal_is_refused_with_the_choices(bad: object) -> None:
    with pytest.raises(errors.TuixpError, match="goal must be 'min' .* or 'max'"):
        tuixp.Experiment("g", goal=bad)  # type: ignore[arg-type]


def test_best_follows_the_goal(store_path: Path) -> None:
    _record(store_path, "loss_pj", "min", [0.5, 0.125, 0.75])
    _record(store_path, "acc_pj", "max", [0.5, 0.875, 0.75])
    _record(store_path, "unsaid", None, [0.5, 0.25])
    found = _experiments(store_path)
    assert (found["loss_pj"]["goal"], found["loss_pj"]["best_result"]) == ("min", 0.125)
    assert (found["acc_pj"]["goal"], found["acc_pj"]["best_result"]) == ("max", 0.875)
    assert (found["unsaid"]["goal"], found["unsaid"]["best_result"]) == (None, None)
    # The TUI's experiment list: "best" by the goal; without one, the highest, called "max".
    assert "best 0.125" in describe(found["loss_pj"]).plain
    assert "best 0.875" in describe(found["acc_pj"]).plain
    unsaid = describe(found["unsaid"]).plain
    assert "max 0.5" in unsaid and "best" not in unsaid
    # tuixp ls: the goal and the best result, as JSON and in the table.
    rows = {
        r["experiment"]: r
        for r in json.loads(invoke("ls", "--store", store_path, "--format", "json").stdout)
    }
    assert (rows["loss_pj"]["goal"], rows["loss_pj"]["best_result"]) == ("min", 0.125)
    table = invoke("ls", "--store", store_path, "--format", "table").stdout.splitlines()
    assert all(len(line) <= 80 for line in table)
    loss = next(line for line in table if line.startswith("loss_pj"))
    assert loss.rstrip().endswith("best 0.125 (min)")
    unsaid = next(line for line in table if line.startswith("unsaid"))
    assert unsaid.rstrip().endswith("0.25 .. 0.5")  # no goal: the range, nothing called best


def test_a_later_process_that_says_the_goal_has_the_last_word(store_path: Path) -> None:
    _record(store_path, "pj", None, [1.0, 2.0])
    assert _experiments(store_path)["pj"]["goal"] is None
    _record(store_path, "pj", "min", [3.0])
    assert _experiments(store_path)["pj"]["best_result"] == 1.0
    _record(store_path, "pj", None, [0.5])  # saying nothing changes nothing
    assert (
        _experiments(store_path)["pj"]["goal"],
        _experiments(store_path)["pj"]["best_result"],
    ) == ("min", 0.5)
    _record(store_path, "pj", "max", [0.25])
    assert _experiments(store_path)["pj"]["best_result"] == 3.0
