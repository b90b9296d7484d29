"""Windowed trial queries (tuixp.store.window) against answers computed independently in pandas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tuixp.store import columns, synthetic, window
from tuixp.store.store import Store
from tuixp.store.summary import RESULT, MetricSummary
from tuixp.store.window import FilterError, TrialQuery


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("window") / "syn.duckdb"
    synthetic.generate(path, 1500, experiment="search", seed=7)
    synthetic.generate(path, 40, experiment="other", seed=8, epochs=0)
    return path


def _frame(path: Path) -> pd.DataFrame:
    """Every trial of ``search`` with its parameters and last metrics, read plainly."""
    with Store(path).connect() as con:
        trials = con.execute(
            "SELECT trial_id, status, result_value, params FROM trial_record "
            "WHERE experiment = 'search'"
        ).fetchdf()
        metrics = con.execute(
            "SELECT trial_id, name, epoch, value FROM metric_record WHERE experiment = 'search'"
        ).fetchdf()
    params = pd.DataFrame([json.loads(p) for p in trials.pop("params")])
    df = pd.concat([trials, params], axis=1)
    last = metrics.sort_values("epoch").groupby(["trial_id", "name"])["value"].last().unstack()
    return df.merge(last, left_on="trial_id", right_index=True, how="left")


def test_layout_names_params_and_metrics(synthetic_store: Path) -> None:
    with Store(synthetic_store).connect() as con:
        lay = columns.layout(con, "search")
        other = columns.layout(con, "other")
    assert [(c.name, c.type) for c in lay.params] == [
        ("lr", "DOUBLE"),
        ("depth", "BIGINT"),
        ("model", "VARCHAR"),
    ]
    assert [c.name for c in lay.metrics] == ["accuracy", "loss"]
    assert other.metrics == ()


@pytest.mark.parametrize(
    "sort,descending",
    [
        ("trial_id", True),
        ("result", True),
        ("result", False),
        ("loss", False),
        ("lr", True),
        ("model", False),
        ("accuracy", True),
    ],
)
def test_pages_follow_the_order(synthetic_store: Path, sort: str, descending: bool) -> None:
    df = _frame(synthetic_store)
    key = {"result": "result_value"}.get(sort, sort)
    expected = df.sort_values(
        [key, "trial_id"], ascending=[not descending, not descending], na_position="last"
    )["trial_id"].tolist()
    q = TrialQuery("search", sort=sort, descending=descending)
    summary = MetricSummary("search")
    with Store(synthetic_store).connect() as con:
        lay = columns.layout(con, "search")
        assert window.count(con, lay, q) == 1500
        got, with_summary = [], []
        for offset in range(0, 1500, 400):
            got += [r.trial_id for r in window.page(con, lay, q, offset, 400)]
        assert window.position(con, lay, q, expected[777]) == 777
        while not summary.ready:
            summary.refresh(con)
        for offset in range(0, 1500, 400):  # metrics sorted in memory, the rest in SQL
            rows = window.page(con, lay, q, offset, 400, summary)
            with_summary += [r.trial_id for r in rows]
    assert got == expected
    assert with_summary == expected


def test_filter_over_params_metrics_and_columns(synthetic_store: Path) -> None:
    df = _frame(synthetic_store)
    mask = (df["model"] == "ridge") & (df["loss"] < 0.3) & (df["status"] == "succeeded")
    q = TrialQuery(
        "search",
        where="model = 'ridge' AND loss < 0.3 AND status = 'succeeded'",
        sort="lr",
        descending=False,
    )
    with Store(synthetic_store).connect() as con:
        lay = columns.layout(con, "search")
        assert window.count(con, lay, q) == int(mask.sum()) > 0
        rows = window.page(con, lay, q, 0, 5000)
    assert sorted(r.trial_id for r in rows) == sorted(df[mask]["trial_id"])
    lrs = [r.params["lr"] for r in rows]
    assert lrs == sorted(lrs)
    assert all(r.metrics["loss"] < 0.3 for r in rows)


@pytest.mark.parametrize(
    "bad,says",
    [
        ("1=1; DELETE FROM trial_record", "Not a SQL condition"),
        ("nosuch > 1", "nosuch"),
        ("lr >", "Not a SQL condition"),
        ("model > 1", "does not work"),
    ],
)
def test_bad_filters_are_refused_and_nothing_changes(
    synthetic_store: Path, bad: str, says: str
) -> None:
    with Store(synthetic_store).connect() as con:
        lay = columns.layout(con, "search")
        with pytest.raises(FilterError, match=says):
            window.count(con, lay, TrialQuery("search", where=bad))
        assert con.execute("SELECT count(*) FROM trial_record").fetchone()[0] == 1540


SECRET = "s3cret-line-of-a-file-the-filter-must-not-read"
ATTACKS = [
    # Each read a file through the TUI's read-write connection before the filter was parsed.
    ("(SELECT count(*) FROM read_csv('{secret}')) > 0", "cannot hold a query"),
    ("trial_id = (SELECT content FROM read_text('{secret}'))::INT", "cannot hold a query"),
    ("trial_id = (SELECT content FROM read_text('/etc/passwd'))::INT", "cannot hold a query"),
    ("trial_id IN (SELECT 1 FROM read_text('{secret}'))", "cannot hold a query"),
    ("read_text('{secret}') IS NOT NULL", "cannot call read_text()"),
    ("length(getenv('HOME')) > 0", "cannot call getenv()"),
    ("status = 'x' OR EXISTS (SELECT 1)", "cannot call EXISTS()"),
    ("status = current_setting('temp_directory')", "cannot call current_setting()"),
    ("lr::BLOB IS NULL", "cannot convert to BLOB"),
    ("status = 'x' UNION SELECT 1", "expected AND, OR or the end"),
    ("1=1 -- a comment", "no comment"),
]


@pytest.mark.parametrize("attack,says", ATTACKS)
def test_filters_cannot_reach_files_or_run_queries(
    synthetic_store: Path, tmp_path: Path, attack: str, says: str
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text(f"token\n{SECRET}\n")
    where = attack.format(secret=secret)
    with Store(synthetic_store).connect() as con:
        lay = columns.layout(con, "search")
        for call in (window.count, lambda *a: window.page(*a, 0, 10)):
            with pytest.raises(FilterError) as caught:
                call(con, lay, TrialQuery("search", where=where))
            text = str(caught.value)
            assert says in text, text
            assert SECRET not in text and "root:" not in text
            assert len(text.splitlines()) == 1


@pytest.mark.parametrize(
    "where,mask",
    [
        ("MODEL = 'ridge' and LR < 0.01", lambda d: (d["model"] == "ridge") & (d["lr"] < 0.01)),
        ("\"model\" IN ('ridge', 'lasso')", lambda d: d["model"].isin(["ridge", "lasso"])),
        ("model NOT LIKE 'r%'", lambda d: ~d["model"].str.startswith("r")),
        (
            "depth BETWEEN 3 AND 5 AND NOT status = 'failed'",
            lambda d: d["depth"].between(3, 5) & (d["status"] != "failed"),
        ),
        ("result IS NULL", lambda d: d["result_value"].isna()),
        (
            "trial_id % 7 = 0 OR -loss > -0.1",
            lambda d: (d["trial_id"] % 7 == 0) | (d["loss"] < 0.1),
        ),
        (
            "upper(model) = 'RIDGE' AND lr::VARCHAR LIKE '0.0%'",
            lambda d: (d["model"] == "ridge") & d["lr"].astype(str).str.startswith("0.0"),
        ),
        ("started > now() - INTERVAL 100000 DAYS", lambda d: d["trial_id"] > 0),
    ],
)
def test_the_filter_grammar_selects_what_pandas_does(
    synthetic_store: Path, where: str, mask: Any
) -> None:
    df = _frame(synthetic_store)
    expected = sorted(df[mask(df)]["trial_id"])
    with Store(synthetic_store).connect() as con:
        lay = columns.layout(con, "search")
        q = TrialQuery("search", where=where)
        assert window.count(con, lay, q) == len(expected) > 0
        rows = window.page(con, lay, q, 0, 5000)
    assert sorted(r.trial_id for r in rows) == expected


def test_unknown_sort_column_is_a_clear_error(synthetic_store: Path) -> None:
    with Store(synthetic_store).connect() as con:
        lay = columns.layout(con, "search")
        with pytest.raises(FilterError, match="No column named 'bogus'"):
            window.page(con, lay, TrialQuery("search", sort="bogus"), 0, 10)


def test_rows_carry_flags_and_errors(synthetic_store: Path) -> None:
    with Store(synthetic_store).connect() as con:
        con.execute("""UPDATE trial_record SET changes = '[{"kind": "code", "name": "train"}]',
                       notes = '["impure: train (same input as trial 3)"]'
                       WHERE experiment = 'other' AND trial_id = 5""")
        lay = columns.layout(con, "other")
        (row,) = window.rows_for(con, lay, [5])
        flagged = window.count(con, lay, TrialQuery("other", where="code_changed AND impure"))
        failed = window.page(con, lay, TrialQuery("other", where="status = 'failed'"), 0, 1)
    assert row.code_changed and row.impure and not row.env_changed
    assert flagged == 1
    assert failed and failed[0].error.startswith("FloatingPointError")


def test_metric_summary_tops_up_and_matches_the_store(tmp_path: Path) -> None:
    path = tmp_path / "grow.duckdb"
    synthetic.generate(path, 300, experiment="search", seed=1)
    summary = MetricSummary("search")
    sorted_by_loss = TrialQuery("search", sort="loss", descending=False)
    with Store(path).connect() as con:
        results = con.execute("SELECT count(result_value) FROM trial_record").fetchall()[0][0]
        assert 0 < results < 300  # failed trials have none
        # One slice: 300 trials' metric rows and results.
        assert summary.refresh(con) and summary.rows == 300 * 2 * 3 + results
        assert not summary.refresh(con)  # nothing changed, nothing read
        # A trial that is still running: its later metrics must not be missed.
        con.execute("UPDATE trial_record SET status = 'running' WHERE trial_id = 250")
        summary.refresh(con)
        assert summary.settled_below == 250
    synthetic.generate(path, 200, experiment="search", seed=2)  # trials 301-500
    with Store(path).connect() as con:
        con.execute("UPDATE metric_record SET value = -1 WHERE trial_id = 250 AND name = 'loss'")
        # It finished with a result larger than any other's.
        con.execute(
            "UPDATE trial_record SET status = 'succeeded', result_value = 1e9 WHERE trial_id = 250"
        )
        con.execute(
            "INSERT INTO metric_record BY NAME SELECT trial_uuid, experiment, trial_id, name, "
            "epoch + 10 AS epoch, -2 AS value, recorded_at, seq FROM metric_record "
            "WHERE trial_id = 250 AND name = 'loss' AND epoch = 0"
        )
        assert summary.refresh(con)
        fresh = MetricSummary("search")
        fresh.refresh(con)
        for name in ("loss", "accuracy", RESULT):
            assert (summary.by_name[name][0] == fresh.by_name[name][0]).all()
            assert (summary.by_name[name][1] == fresh.by_name[name][1]).all()
        assert summary.values("loss", [250, 499, 9999]) == {
            250: -2.0,
            499: fresh.values("loss", [499])[499],
        }
        lay = columns.layout(con, "search")
        with_summary = window.page(con, lay, sorted_by_loss, 0, 500, summary)
        without = window.page(con, lay, sorted_by_loss, 0, 500)
        by_result = {
            d: [
                [
                    r.trial_id
                    for r in window.page(
                        con, lay, TrialQuery("search", sort="result", descending=d), 0, 500, s
                    )
                ]
                for s in (summary, None)
            ]
            for d in (True, False)
        }
        with_result = con.execute(
            "SELECT count(result_value) FROM trial_record WHERE experiment = 'search'"
        ).fetchall()[0][0]
    assert [r.trial_id for r in with_summary] == [r.trial_id for r in without]
    assert [r.metrics for r in with_summary] == [r.metrics for r in without]
    assert with_summary[0].trial_id == 250
    # Sorted by result in memory as DuckDB sorts it: trials without a result last, either way.
    for in_memory, in_duckdb in by_result.values():
        assert in_memory == in_duckdb and len(in_memory) == 500
    # Trial 250's result is the largest: first going down, last of those with one going up.
    assert by_result[True][0][0] == 250 and by_result[False][0][with_result - 1] == 250


def test_metric_summary_builds_a_slice_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "slices.duckdb"
    synthetic.generate(path, 250, experiment="search", seed=3)
    monkeypatch.setattr(MetricSummary, "SLICE", 100)
    summary = MetricSummary("search")
    q = TrialQuery("search", sort="accuracy")
    with Store(path).connect() as con:
        lay = columns.layout(con, "search")
        expected = [r.trial_id for r in window.page(con, lay, q, 0, 250)]
        steps = 0
        while not summary.ready:
            # Not ready yet: the queries aggregate by themselves and agree.
            assert [r.trial_id for r in window.page(con, lay, q, 0, 250, summary)] == expected
            summary.refresh(con)
            steps += 1
        results = con.execute("SELECT count(result_value) FROM trial_record").fetchall()[0][0]
        assert steps == 3 and summary.rows == 250 * 2 * 3 + results
        assert [r.trial_id for r in window.page(con, lay, q, 0, 250, summary)] == expected


@pytest.mark.parametrize("descending", [True, False])
def test_default_order_with_gaps_in_trial_ids(tmp_path: Path, descending: bool) -> None:
    """The fast path for dense ids must not be taken when ids have gaps."""
    path = tmp_path / "gaps.duckdb"
    synthetic.generate(path, 60, experiment="search", seed=4)
    q = TrialQuery("search", descending=descending)
    with Store(path).connect() as con:
        lay = columns.layout(con, "search")
        dense = [r.trial_id for r in window.page(con, lay, q, 10, 20)]
        assert dense == (list(range(50, 30, -1)) if descending else list(range(11, 31)))
        con.execute("DELETE FROM trial_record WHERE trial_id IN (45, 46, 12)")
        gappy = [r.trial_id for r in window.page(con, lay, q, 10, 20)]
        ids = sorted(set(range(1, 61)) - {45, 46, 12}, reverse=descending)
        assert gappy == ids[10:30]
        assert [r.trial_id for r in window.page(con, lay, q, 50, 20)] == ids[50:]


@pytest.mark.parametrize("descending", [True, False])
def test_in_memory_metric_order_puts_trials_without_it_last(
    tmp_path: Path, descending: bool
) -> None:
    path = tmp_path / "holes.duckdb"
    synthetic.generate(path, 120, experiment="search", seed=5)
    q = TrialQuery("search", sort="loss", descending=descending)
    with Store(path).connect() as con:
        con.execute("DELETE FROM metric_record WHERE trial_id IN (3, 50, 51, 119)")
        con.execute(
            "UPDATE metric_record SET value = 0.5 WHERE name = 'loss' AND epoch = 2 "
            "AND trial_id IN (7, 8, 9)"
        )  # ties: broken by trial id
        lay = columns.layout(con, "search")
        summary = MetricSummary("search")
        while not summary.ready:
            summary.refresh(con)
        in_sql = [r.trial_id for r in window.page(con, lay, q, 0, 200)]
        in_memory = [r.trial_id for r in window.page(con, lay, q, 0, 200, summary)]
    assert in_memory == in_sql
    assert in_sql[-4:] == ([119, 51, 50, 3] if descending else [3, 50, 51, 119])


def test_a_cut_parameter_text_keeps_what_it_holds() -> None:
    cut = '{"lr": 0.1, "tags": ["a", "b"], "text": "' + "x" * 500
    assert columns.prefix_params(cut) == {"lr": 0.1, "tags": '["a", "b"]', "text": "x" * 200 + "…"}
    assert columns.prefix_params('{"lr": 0.1, "te') == {"lr": 0.1}
    assert columns.prefix_params("") == {}


@pytest.mark.slow
def test_trials_with_parameters_of_many_mb_are_read_within_bounds(tmp_path: Path) -> None:
    """Five trials of 30 MB parameters: a scan holds them all at once, more than the TUI's
    128 MB for DuckDB. The reader retries once with more; the cells are cut short."""
    from tuixp.tui.data import StoreReader

    path = tmp_path / "big.duckdb"
    synthetic.generate(path, 40, experiment="search", seed=9)
    with Store(path).connect() as con:
        con.execute(
            "UPDATE trial_record SET params = json_object('model', repeat(chr(96 + trial_id % 26),"
            " 30000000), 'lr', trial_id / 100) WHERE trial_id BETWEEN 11 AND 15"
        )
    reader = StoreReader(path)
    for sort in ("trial_id", "model", "lr"):
        win = reader.trials(TrialQuery("search", sort=sort, descending=False), 0, 100)
        assert win is not None and win.total == 40 and len(win.rows) == 40
        big = {r.trial_id: r.params for r in win.rows if 11 <= r.trial_id <= 15}
        assert big[12] == {"model": "l" * 200 + "…", "lr": 0.12}
        if sort == "model":  # the five are not compared: last, by id
            assert [r.trial_id for r in win.rows][-5:] == [11, 12, 13, 14, 15]
    assert win.layout.unparsed == 5
    snap = reader.snapshot(None, 0, 100)
    assert snap is not None and snap.trials is not None and snap.trials.total == 40
