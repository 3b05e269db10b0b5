"""Scores: both models fitted and written to customer_scores in one transaction; the CLI."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from crm_core import cli, scoring
from crm_core.store import Store


@pytest.fixture
def demo_copy(demo_store_path, tmp_path, monkeypatch) -> Store:
    path = tmp_path / "crm.duckdb"
    shutil.copy(demo_store_path, path)
    monkeypatch.setenv("CRM_DATABASE_URL", f"duckdb:///{path}")
    store = Store(f"duckdb:///{path}")
    yield store
    store.dispose()


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


def test_scores_replace_all_rows_and_roll_back_on_error(demo_copy, monkeypatch):
    frame = pd.DataFrame({"customer_id": [999_999], "clv": [1.0], "model_version": ["old"]})
    scoring.write_scores(demo_copy, frame)
    scoring.score(demo_copy)
    assert demo_copy.scalar("select count(*) from customer_scores where model_version='old'") == 0
    before = demo_copy.read_df("select * from customer_scores order by customer_id")

    def broken(conn, table_name, frame, upsert=False):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo_copy, "insert_df", broken)
    with pytest.raises(RuntimeError):
        scoring.write_scores(demo_copy, before.head(3))
    after = demo_copy.read_df("select * from customer_scores order by customer_id")
    pd.testing.assert_frame_equal(before, after)


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


def test_cli_on_an_empty_store_is_one_clear_line(store, capsys):
    assert cli.main(["clv"]) == 2
    assert "import `orders`" in capsys.readouterr().err
