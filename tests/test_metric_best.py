"""Best values: per trial and metric the lowest, highest and last value and the epoch of the best.

The best follows each metric's goal (``ex.metric_goal``), else the experiment's goal for its
result, else 'min'; it is the first epoch that reached it; NaN never counts; a point saved again
is summarised again. The view ``metric_best`` exposes it, the trial table's ``best_<name>``
columns show and sort by it, and system metrics (``sys/...``) never count in either.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import tuixp
from tuixp import errors
from tuixp.store import Store, schema
from tuixp.store.columns import layout
from tuixp.store.paths import StorePaths
from tuixp.store.window import TrialQuery, page_ids, rows_for

BEST = (
    'SELECT trial_id, name, goal, best, best_epoch, "min", "max", "last", last_epoch, points '
    "FROM metric_best ORDER BY name, trial_id"
)


def _rows(store_path: Path, sql: str) -> list[tuple]:
    with Store(store_path).connect() as con:
        return con.execute(sql).fetchall()


def _three_trials(store_path: Path, goal: str | None = None) -> tuixp.Experiment:
    ex = tuixp.Experiment("best", store=store_path, goal=goal)
    shift = ex.parameter("shift")

    @ex.result
    def train(shift):
        # loss is lowest (0.1) at epoch `shift`, twice in trial 1 (epochs 1 and 3: the first
        # counts); acc is highest at epoch `shift` too; a NaN point never counts as a best
        curve = {1: [0.5, 0.1, 0.3, 0.1], 2: [0.9, 0.8, 0.2, 0.4], 3: [0.6, 0.5, 0.4, 0.3]}
        for loss in curve[shift]:
            ex.log_metrics({"loss": loss, "acc": 1 - loss})
        ex.log_metrics({"loss": math.nan})
        return shift

    for value in (1, 2, 3):
        ex.set_parameters(shift=value)
        train(shift).compute()
    return ex


def test_best_follows_the_goals_and_ignores_nan(store_path: Path) -> None:
    ex = _three_trials(store_path, goal="min")
    ex.metric_goal("acc", "max")
    rows = _rows(store_path, BEST)
    acc = [r for r in rows if r[1] == "acc"]
    loss = [r for r in rows if r[1] == "loss"]
    assert [(r[0], r[2], r[4]) for r in acc] == [(1, "max", 1), (2, "max", 2), (3, "max", 3)]
    assert [r[3] for r in acc] == pytest.approx([0.9, 0.8, 0.7])
    # loss: goal from the experiment; the best is the first epoch reaching it; NaN is the last
    # value (epoch 4) but never the lowest or highest
    assert [(r[0], r[2], r[3], r[4]) for r in loss] == [
        (1, "min", 0.1, 1),
        (2, "min", 0.2, 2),
        (3, "min", 0.3, 3),
    ]
    assert [(r[6], r[8], r[9]) for r in loss] == [(0.5, 4, 5), (0.9, 4, 5), (0.6, 4, 5)]
    assert all(math.isnan(r[7]) for r in loss)
    ex.metric_goal("loss", "max")  # a later word on the goal changes every trial's best
    assert [(r[2], r[3], r[4]) for r in _rows(store_path, BEST) if r[1] == "loss"] == [
        ("max", 0.5, 0),
        ("max", 0.9, 0),
        ("max", 0.6, 0),
    ]


def test_without_any_goal_the_best_is_the_lowest(store_path: Path) -> None:
    _three_trials(store_path)
    assert {r[2] for r in _rows(store_path, BEST)} == {"min"}
    with pytest.raises(errors.TuixpError, match="goal must be 'min'"):
        tuixp.Experiment("best", store=store_path).metric_goal("acc", "highest")


def test_a_point_saved_again_is_summarised_again(store_path: Path) -> None:
    ex = tuixp.Experiment("again", store=store_path)

    @ex
    def first():
        ex.save_metric("loss", epoch=0, value=0.1)
        ex.save_metric("loss", epoch=1, value=0.5)
        return 1

    @ex.result
    def second(x):
        ex.save_metric("loss", epoch=0, value=0.9)  # the lowest is gone: 0.5 is the best now
        return x

    second(first()).compute()
    assert _rows(store_path, BEST) == [(1, "loss", "min", 0.5, 1, 0.5, 0.9, 0.5, 1, 2)]


def test_the_table_shows_and_sorts_by_the_best_and_never_by_system_metrics(
    store_path: Path,
) -> None:
    ex = _three_trials(store_path, goal="min")
    ex.metric_goal("acc", "max")
    # a system metric (issue 20 item 4 writes them; here a journal line as its writer would)
    journal = StorePaths(store_path).journal
    journal.mkdir(exist_ok=True)
    with Store(store_path).connect() as con:
        uuid = con.execute("SELECT uuid FROM trial_record WHERE trial_id = 1").fetchone()[0]
    line = {"t": "metric", "trial_uuid": uuid, "experiment": "best", "trial_id": 1}
    line.update(name="sys/cpu", epoch=0, value=99.0, recorded_at=1.0)
    (journal / "sampler-1-00000000.jsonl").write_text(json.dumps(line) + "\n")
    with Store(store_path).connect() as con:
        assert con.execute("SELECT count(*) FROM metrics WHERE name = 'sys/cpu'").fetchone() == (1,)
        lay = layout(con, "best")
        assert [c.name for c in lay.metrics] == ["acc", "loss"]
        assert [c.name for c in lay.bests] == ["best_acc", "best_loss"]
        assert "sys/cpu" not in {c.source for c in lay.columns}
        # by best loss, lowest first: 1 (0.1), 2 (0.2), 3 (0.3); the last loss is NaN in all
        ascending = TrialQuery("best", sort="best_loss", descending=False)
        assert page_ids(con, lay, ascending, 0, 10) == [1, 2, 3]
        by_acc = TrialQuery("best", sort="best_acc", descending=True)
        assert page_ids(con, lay, by_acc, 0, 10) == [1, 2, 3]
        assert page_ids(con, lay, TrialQuery("best", where="best_loss > 0.15"), 0, 10) == [3, 2]
        rows = {r.trial_id: r for r in rows_for(con, lay, [1, 2, 3])}
        assert rows[2].best == pytest.approx({"acc": 0.8, "loss": 0.2})
        assert rows[2].metrics["acc"] == pytest.approx(0.6)  # the last value stays beside it
        assert (
            con.execute("SELECT count(*) FROM metric_best WHERE name LIKE 'sys/%'").fetchone()[0]
            == 0
        )


def test_an_older_store_gains_the_summaries_of_its_metrics(store_path: Path) -> None:
    _three_trials(store_path, goal="min")
    import duckdb

    with Store(store_path).connect():
        pass  # everything ingested
    con = duckdb.connect(str(store_path), config={"default_block_size": "16384"})
    try:
        con.execute(schema._DROP_VIEWS)
        con.execute("DROP TABLE metric_summary; DROP TABLE metric_goal")
        # the version before this migration (metric_summary, metric_goal)
        con.execute(
            "UPDATE tuixp_meta SET value = ? WHERE key = 'schema_version'",
            [str(schema.SCHEMA_VERSION - 1)],
        )
    finally:
        con.close()
    rows = _rows(store_path, BEST)
    assert len(rows) == 6
    assert [(r[0], r[3]) for r in rows if r[1] == "loss"] == [(1, 0.1), (2, 0.2), (3, 0.3)]


def test_tuixp_ls_sorts_and_filters_by_the_best(store_path: Path) -> None:
    import subprocess

    from tests.conftest import env_with_path, python

    ex = _three_trials(store_path, goal="min")
    ex.metric_goal("acc", "max")
    with Store(store_path).connect():
        pass

    def ls(*args: str) -> list[int]:
        done = subprocess.run(
            [
                python(),
                "-m",
                "tuixp",
                "--store",
                str(store_path),
                "ls",
                "best",
                *args,
                "-f",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env_with_path(),
        )
        assert done.returncode == 0, done.stderr
        return [row["trial_id"] for row in json.loads(done.stdout)]

    assert ls("--sort", "best_loss") == [1, 2, 3]
    assert ls("--sort", "best_loss:desc") == [3, 2, 1]
    assert ls("--sort", "best_acc:desc", "--where", "best_acc < 0.85") == [2, 3]
