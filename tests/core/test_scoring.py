"""Scores: both models fitted and written to customer_scores in one transaction; the CLI.

The tests that read or write the store run on DuckDB and PostgreSQL (`both_stores`); the
model fits themselves are the same Python on both, so the CLI fits run on DuckDB only, and
`test_model_inputs_are_identical_on_duckdb_and_postgresql` checks that both stores hand the
models the same data.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import cli, scoring
from crm_core.analytics import churn, clv
from crm_core.schema import orders
from crm_core.store import Store


@pytest.mark.both_stores
def test_score_writes_every_customer_with_a_version(demo_copy):
    result = scoring.score(demo_copy)
    scores = demo_copy.read_df("select * from customer_scores order by customer_id")
    assert len(scores) == result.rows == len(result.clv_report.customers)
    assert scores["customer_id"].is_unique
    assert (scores["model_version"] == result.model_version).all()
    assert result.model_version.startswith("clv=bgnbd+gg;churn=hgb;window=90d;data_to=")
    assert scores["clv"].ge(0).all() and scores["p_alive"].between(0, 1).all()
    scored = scores["churn_risk"].notna()
    assert scored.sum() == len(result.churn_report.scores)
    assert set(scores.loc[scored, "churn_band"]) <= {"low", "medium", "high"}
    assert scores.loc[~scored, "churn_band"].isna().all()
    assert any("ROC AUC" in line for line in result.summary_lines())
    high = scores["churn_band"] == "high"
    assert scores.loc[~high, "churn_reasons"].isna().all()  # reasons only where someone acts
    reasons = scores.loc[high, "churn_reasons"].dropna()
    assert len(reasons) >= 0.5 * high.sum() > 0
    assert reasons.str.contains(r"\(odds x\d+\.\d\)").all()


@pytest.mark.both_stores
def test_scores_replace_all_rows_and_roll_back_on_error(demo_copy, monkeypatch):
    frame = pd.DataFrame({"customer_id": [999_999], "clv": [1.0], "model_version": ["old"]})
    scoring.write_scores(demo_copy, frame)
    new = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "clv": [10.5, 0.0, 3.25, 7.0],
            "p_alive": [0.9, 0.1, 0.5, 0.7],
            "churn_risk": [0.2, None, 0.6, 0.4],
            "churn_band": ["low", None, "high", "medium"],
            "model_version": "new",
            "scored_at": pd.Timestamp("2024-03-01 12:00"),
        }
    )
    assert scoring.write_scores(demo_copy, new) == 4
    assert demo_copy.scalar("select count(*) from customer_scores where model_version='old'") == 0
    before = demo_copy.read_df("select * from customer_scores order by customer_id")
    assert before["customer_id"].tolist() == [1, 2, 3, 4]
    assert before["churn_band"].isna().tolist() == [False, True, False, False]

    def broken(conn, table_name, frame, upsert=False):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo_copy, "insert_df", broken)
    with pytest.raises(RuntimeError):
        scoring.write_scores(demo_copy, before.head(3))
    after = demo_copy.read_df("select * from customer_scores order by customer_id")
    pd.testing.assert_frame_equal(before, after)


def test_model_inputs_are_identical_on_duckdb_and_postgresql(demo_store_path, pg_demo_store_url):
    """The store's part of scoring (the CLV summary and churn features in SQL) is the same on
    both backends, so the fits (plain Python, tested on DuckDB) see the same numbers."""
    inputs = {}
    for name, url in (("duckdb", f"duckdb:///{demo_store_path}"), ("pg", pg_demo_store_url)):
        opened = Store(url)
        first, last = clv.data_span(opened)
        summary = clv.rfm_summary(
            opened, clv.default_calibration_end(first, last), observation_end=last
        )
        dataset = churn.build_dataset(opened, last - timedelta(days=90), labelled=True)
        inputs[name] = (first, last, summary, dataset)
        opened.dispose()
    duck, pg = inputs["duckdb"], inputs["pg"]
    assert duck[:2] == pg[:2]
    assert len(duck[2]) > 100 and len(duck[3]) > 100
    pd.testing.assert_frame_equal(duck[2], pg[2], check_dtype=False)
    # In the same row order too: the churn fit depends on it.
    pd.testing.assert_frame_equal(duck[3], pg[3], check_dtype=False)


def test_cli_clv_prints_published_cdnow_parameters(store, capsys):
    from crm_core import datasets

    datasets.load_cdnow(store)
    argv = ["clv", "--calibration-end", "1997-09-30", "--time-unit", "weeks", "--json"]
    assert cli.main(argv) == 0
    figures = json.loads(capsys.readouterr().out)
    published = {**datasets.CDNOW_PUBLISHED_BGNBD, "p": 6.25, "q": 3.74, "v": 15.44}
    for name, value in published.items():
        assert figures["calibration_params"][name] == pytest.approx(value, abs=0.006)
    assert figures["backtest"]["holdout_units"] == 39.0


def test_cli_churn_and_score(demo_copy, capsys):
    assert cli.main(["churn", "--json", "--model", "logit"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["metrics"]["model"]["roc_auc"] > figures["metrics"]["baseline"]["roc_auc"]
    assert figures["drivers"] and "says" in figures["drivers"][0]
    assert cli.main(["score", "--quiet"]) == 0
    assert "Scored" in capsys.readouterr().out


def test_free_repeat_orders_do_not_stop_scoring_for_everyone(demo_copy, capsys):
    """Real data: a repeat buyer whose orders were all free used to stop `score` for all."""
    repeat = demo_copy.read_df(
        "SELECT customer_id FROM orders WHERE status = 'completed' "
        "GROUP BY customer_id HAVING count(DISTINCT CAST(ordered_at AS DATE)) >= 3 "
        "ORDER BY customer_id LIMIT 2"
    )["customer_id"].tolist()
    with demo_copy.begin() as conn:
        conn.execute(sa.update(orders).where(orders.c.customer_id.in_(repeat)).values(amount=0))
    assert cli.main(["score", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 repeat customer(s) with a zero or negative average spend" in out
    spend_notes = [line for line in out.splitlines() if "repeat customer(s)" in line]
    assert spend_notes  # each says which fit it belongs to: their counts may differ
    assert all(
        line.startswith(("Note: CLV backtest fit", "Note: CLV fit on all data (to "))
        for line in spend_notes
    ), spend_notes
    scores = demo_copy.read_df("SELECT customer_id, clv FROM customer_scores")
    assert len(scores) > 1000
    assert (scores.set_index("customer_id").loc[repeat, "clv"] == 0).all()


@pytest.mark.both_stores
def test_cli_on_an_empty_store_is_one_clear_line(store, capsys):
    assert cli.main(["clv"]) == 2
    assert "import `orders`" in capsys.readouterr().err


@pytest.mark.both_stores
def test_next_purchase_is_scored_and_due_customers_are_a_segment(demo_copy):
    from crm_core import features, segments

    scoring.score(demo_copy)
    features.ensure_fresh(demo_copy)
    scores = demo_copy.read_df(
        "select customer_id, p_purchase_7d, p_purchase_90d, next_purchase_from, "
        "next_purchase_to from customer_scores"
    )
    assert scores["p_purchase_90d"].between(0, 1).all()
    assert (scores["p_purchase_7d"] <= scores["p_purchase_90d"]).all()
    assert scores["next_purchase_from"].notna().sum() > len(scores) / 2
    as_of = segments.store_as_of(demo_copy)
    start = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    due = scores["next_purchase_from"].notna() & (
        pd.to_datetime(scores["next_purchase_from"]) < start + pd.Timedelta(days=14)
    )
    rule = {"field": "next_purchase_from", "op": "within_next_days", "value": 14}
    preview = segments.preview(demo_copy, {"match": "all", "rules": [rule]}, "admin")
    assert preview.customers == int(due.sum()) > 0
    in_360 = demo_copy.read_df("select p_purchase_30d from customer_360")["p_purchase_30d"]
    assert in_360.notna().sum() == len(scores)
