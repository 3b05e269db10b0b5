"""Lead scoring: features as of a cutoff on a tiny exact pipeline, the model against the
source-only baseline on the demo, the MQL threshold, lead_score in the 360 table, the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_core import features, ingest, scoring
from crm_core.analytics import lead_scoring
from crm_core.analytics.clv import NotReadyError
from crm_core.store import Store, close_all
from tests.core.test_cli import run_cli

CUTOFF = date(2026, 1, 15)  # features as of the end of this day (2026-01-16 00:00)

LEADS_CSV = """lead_id,customer_id,created_at,source,stage,stage_changed_at,deal_value
1,,2026-01-01 12:00:00,referral,sql,2026-01-20 00:00:00,1000
2,,2026-01-03 00:00:00,webinar,won,2026-01-20 00:00:00,500
3,,2025-12-01 00:00:00,content,lost,2026-01-05 00:00:00,
4,,2026-01-16 08:00:00,partner,lead,2026-01-16 08:00:00,
5,,2026-01-02 00:00:00,paid_search,mql,2026-01-08 00:00:00,
6,,2024-06-01 00:00:00,content,lead,2024-06-01 00:00:00,
"""
ACTIVITIES_CSV = """activity_id,lead_id,occurred_at,kind
1,1,2026-01-02 12:00:00,email_open
2,1,2026-01-05 00:00:00,email_open
3,1,2026-01-12 12:00:00,meeting
4,1,2026-01-25 00:00:00,page_view
5,2,2026-01-10 00:00:00,call
"""
CHANGES_CSV = """change_id,lead_id,changed_at,stage
1,1,2026-01-10 00:00:00,mql
2,1,2026-01-20 00:00:00,sql
"""


@pytest.fixture
def pipeline(store: Store, tmp_path: Path) -> Store:
    """Six leads, their activities and stage changes, loaded through the importer."""
    files = []
    for name, text in (
        ("leads", LEADS_CSV),
        ("lead_activities", ACTIVITIES_CSV),
        ("lead_stage_changes", CHANGES_CSV),
    ):
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
        files.append((name, path))
    results = ingest.import_files(store, files)
    assert [r.rows for r in results] == [6, 5, 2]
    return store


@pytest.mark.both_stores
def test_snapshot_features_use_only_what_was_recorded_before_the_cutoff(pipeline):
    data = lead_scoring.read_leads(pipeline)
    snap = lead_scoring.snapshot(data, CUTOFF, window_days=30).set_index("lead_id")
    # 3 was lost before the cutoff, 4 created after it, 6 is stale (over a year old)
    assert sorted(snap.index) == [1, 2, 5]
    one = snap.loc[1]
    assert one["age_days"] == pytest.approx(14.5)
    assert (one["stage_rank"], one["days_in_stage"]) == (1, 6.0)  # mql since 10 Jan
    assert (one["email_opens"], one["meetings"], one["page_views"]) == (2, 1, 0)
    assert one["activities_recent"] == 3  # 2 Jan 12:00 is within 14 days of 16 Jan 00:00
    assert one["days_since_activity"] == pytest.approx(3.5)
    assert one["won"] == 0
    two = snap.loc[2]  # no stage history, won on 20 Jan: a lead since creation at the cutoff
    assert (two["stage_rank"], two["days_in_stage"], two["calls"]) == (0, 13.0, 1)
    assert two["won"] == 1
    assert (
        lead_scoring.snapshot(data, CUTOFF, window_days=3).set_index("lead_id").loc[2, "won"] == 0
    )
    five = snap.loc[5]  # no stage history, an MQL since 8 Jan (before the cutoff)
    assert (five["stage_rank"], five["days_in_stage"]) == (1, 8.0)
    assert np.isnan(five["days_since_activity"]) and five["activities_recent"] == 0


def test_too_short_a_pipeline_says_what_is_missing(pipeline):
    with pytest.raises(
        NotReadyError,
        match="Lead scoring: the training cutoffs have 7 open leads of which 0 were won",
    ):
        lead_scoring.analyse(pipeline)


def test_unknown_model_is_refused_with_the_allowed_ones(pipeline):
    with pytest.raises(Exception, match="allowed: hgb, logit"):
        lead_scoring.analyse(pipeline, lead_scoring.LeadSettings(model="forest"))


# --- on the demo ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_report(demo_store_path: Path) -> Iterator[lead_scoring.LeadReport]:
    store = Store(f"duckdb:///{demo_store_path}")
    yield lead_scoring.analyse(store)
    store.dispose()
    close_all()


def test_demo_leads_carry_source_and_engagement_signals(demo_store):
    leads = demo_store.read_df(
        "SELECT l.lead_id, l.source, l.stage, COUNT(a.activity_id) AS activities "
        "FROM leads l LEFT JOIN lead_activities a ON a.lead_id = l.lead_id "
        "WHERE l.stage IN ('won', 'lost') GROUP BY l.lead_id, l.source, l.stage"
    )
    won = leads["stage"] == "won"
    by_source = won.groupby(leads["source"]).mean()
    assert by_source["referral"] > by_source["paid_search"] + 0.2
    assert leads.loc[won, "activities"].mean() > 1.2 * leads.loc[~won, "activities"].mean()


def test_lead_model_beats_the_source_only_baseline_on_the_demo(demo_report):
    model, baseline = demo_report.metric("roc_auc"), demo_report.metric("roc_auc", "baseline")
    assert baseline > 0.6  # the source alone says something ...
    assert model > baseline + 0.1 and model > 0.85  # ... engagement and stage say much more
    assert demo_report.metric("brier") < demo_report.metric("brier", "baseline")
    assert demo_report.train_cutoffs[-1] < demo_report.valid_cutoffs[0]


def test_lead_model_is_calibrated_on_the_later_window(demo_report):
    cal = demo_report.calibration
    assert cal["leads"].sum() == demo_report.n_valid and len(cal) == 10
    overall = np.average(cal["predicted"], weights=cal["leads"])
    assert overall == pytest.approx(demo_report.win_rate_valid, abs=0.01)
    assert (cal["predicted"] - cal["actual"]).abs().max() < 0.06
    assert cal["actual"].iloc[-1] > 5 * cal["actual"].iloc[:5].mean()


def test_open_leads_are_scored_with_reasons_in_words(demo_report):
    scores = demo_report.scores
    assert len(scores) > 100 and scores["lead_id"].is_unique
    assert scores["stage"].isin(lead_scoring.OPEN_STAGES).all()
    assert scores["age_days"].max() <= lead_scoring.ACTIVE_DAYS
    assert scores["win_probability"].between(0, 1).all()
    assert scores["win_probability"].is_monotonic_decreasing
    top = scores["lead_score_reasons"].head(10)
    assert top.notna().all() and top.str.contains(r"\(odds x\d").all()
    words = set(lead_scoring.FEATURES.values()) | {"source", "no activity yet"}
    assert all(any(w in r for w in words) for r in top)


def test_mql_threshold_fills_the_weekly_capacity(demo_report):
    report = demo_report
    p = report.scores["win_probability"].to_numpy()
    previous = None
    for per_week in (1, 5, 10, 20):
        cap = report.capacity(per_week)
        assert cap.share == pytest.approx(min(1.0, per_week / report.weekly_volume))
        new_above = (report.recent_scores >= cap.threshold).mean()
        assert new_above == pytest.approx(cap.share, abs=0.05)
        assert cap.leads_above == (p >= cap.threshold).sum()
        assert cap.expected_wins == pytest.approx(p[p >= cap.threshold].sum())
        if previous is not None:
            assert cap.threshold <= previous.threshold
            assert cap.expected_wins >= previous.expected_wins
        previous = cap
    everyone = report.capacity(10_000)
    assert everyone.share == 1.0 and everyone.threshold == pytest.approx(report.recent_scores.min())
    assert everyone.calls_everyone and everyone.sentence().startswith("Call every new lead")
    days = report.settings.window_days
    assert f"won within {days} days of {report.as_of:%d %b %Y}" in everyone.sentence()
    assert not report.capacity(1).calls_everyone
    assert report.capacity(1).sentence().startswith("Calling 1 lead a week out of")
    with pytest.raises(Exception, match="at least 1 lead a week"):
        report.capacity(0)


# --- written scores, the 360 field, the CLI -------------------------------------------------


@pytest.mark.both_stores
def test_scoring_run_writes_lead_scores_and_the_360_lead_score(demo_copy):
    result = scoring.score(demo_copy)
    assert result.lead_report is not None and "leads" not in result.left_out
    assert any(line.startswith("Leads (") for line in result.summary_lines())
    stored = demo_copy.read_df("SELECT * FROM lead_scores")
    assert len(stored) == len(result.lead_report.scores)
    assert stored["model_version"].str.startswith("leads=hgb;window=120d;data_to=").all()
    features.refresh(demo_copy)
    got = demo_copy.read_df("SELECT customer_id, lead_score FROM customer_360")
    leads = demo_copy.read_df(
        "SELECT l.customer_id, l.lead_id, l.created_at, s.win_probability FROM leads l "
        "JOIN lead_scores s ON s.lead_id = l.lead_id WHERE l.customer_id IS NOT NULL"
    )
    latest = leads.sort_values(["created_at", "lead_id"]).groupby("customer_id").tail(1)
    expected = latest.set_index("customer_id")["win_probability"]
    got = got.set_index("customer_id")["lead_score"]
    assert len(expected) > 10
    assert np.allclose(got.loc[expected.index].astype(float), expected.astype(float))
    assert got.drop(expected.index).isna().all()  # no open scored lead: empty


def test_cli_leads_score_json_with_capacity(demo_copy, capsys):
    code, out, _ = run_cli(capsys, "leads", "score", "--json", "--capacity", "10", "--top", "3")
    assert code == 0
    figures = json.loads(out)
    metrics = figures["metrics"]
    assert metrics["model"]["roc_auc"] > metrics["baseline"]["roc_auc"]
    assert len(figures["calibration"]) == 10 and len(figures["top_leads"]) == 3
    assert figures["capacity"]["per_week"] == 10
    assert figures["capacity"]["expected_wins"] > 0
    code, out, _ = run_cli(capsys, "leads", "score", "--capacity", "10")
    assert "baseline  roc_auc" in out and "to be won within 120 days" in out
    assert pd.notna(demo_copy.scalar("SELECT MAX(scored_at) FROM lead_scores"))


def test_a_look_back_as_of_a_past_day_writes_nothing(demo_copy, capsys):
    code, _, _ = run_cli(capsys, "leads", "score", "--json")
    assert code == 0
    stored = demo_copy.read_df("SELECT * FROM lead_scores ORDER BY lead_id")
    code, out, _ = run_cli(capsys, "leads", "score", "--json", "--as-of", "2026-01-31")
    figures = json.loads(out)
    assert code == 0 and figures["written"] is False and "look back" in figures["note"]
    pd.testing.assert_frame_equal(
        stored, demo_copy.read_df("SELECT * FROM lead_scores ORDER BY lead_id")
    )


def test_leads_without_stage_history_or_activities_are_still_scored(demo_copy):
    """An export of leads alone (no stage changes, no activities; the 1M benchmark store
    was one) is scored from source and stage dates, not stopped by an IndexError."""
    with demo_copy.begin() as conn:
        conn.exec_driver_sql("DELETE FROM lead_stage_changes")
        conn.exec_driver_sql("DELETE FROM lead_activities")
    report = lead_scoring.analyse(demo_copy, lead_scoring.LeadSettings())
    assert len(report.scores) > 0
    assert report.scores["win_probability"].between(0, 1).all()
