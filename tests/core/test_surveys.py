"""NPS and CSAT figures on hand-computed examples."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from crm_core.analytics import surveys
from crm_core.filters import Filters
from tests.core import tiny


def test_nps_from_counts_matches_hand_computation():
    # 5 promoters, 3 passives, 2 detractors of 10: NPS = 50% - 20% = 30.
    score = surveys.nps_from_counts(5, 3, 2)
    assert score.value == pytest.approx(30.0)
    variance = (0.5 + 0.2 - 0.3**2) / 10
    half = 100 * 1.959963984540054 * math.sqrt(variance)
    assert (score.low, score.high) == (pytest.approx(30 - half), pytest.approx(30 + half))
    assert score.responses == 10 and not score.enough


def test_nps_interval_is_clipped_and_empty_is_none():
    assert surveys.nps_from_counts(3, 0, 0).high == 100.0
    assert surveys.nps_from_counts(0, 0, 0).value is None


def test_csat_wilson_interval_matches_hand_computation():
    # Wilson 95% for 8 of 10: centre (0.8 + z²/20)/(1 + z²/10).
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    score = surveys.csat_from_counts(8, 10)
    assert score.value == pytest.approx(0.8)
    assert (score.low, score.high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert surveys.csat_from_counts(10, 10).high == pytest.approx(1.0)
    assert 0 < surveys.csat_from_counts(0, 10).high < 0.35


def test_summary_on_tiny_store(store):
    tiny.load(store)
    scores = surveys.summary(store, tiny.PERIOD)
    assert scores["nps"].value == pytest.approx(0.0) and scores["nps"].responses == 5
    assert scores["csat"].value == pytest.approx(2 / 3) and scores["csat"].responses == 3
    assert surveys.has_responses(store)


def test_breakdown_and_distribution(store):
    tiny.load(store)
    by_country = surveys.breakdown(store, tiny.PERIOD, "country").set_index("country")
    # GB now: c3 (7, passive) and c4 (3, detractor) -> -50; US: 10, 9, 0 -> (2 - 1) / 3.
    assert by_country.loc["GB", "nps"] == pytest.approx(-50.0)
    assert by_country.loc["US", "nps"] == pytest.approx(100 / 3)
    dist = surveys.score_distribution(store, tiny.PERIOD)
    assert dist[dist.survey == "nps"]["responses"].sum() == 5


def test_trend_by_month(store):
    tiny.load(store)
    trend = surveys.monthly_trend(store, Filters(start=date(2024, 1, 1), end=date(2024, 2, 29)))
    assert list(trend["nps"]) == [pytest.approx(50.0), pytest.approx(0.0)]
    assert list(trend["nps_responses"]) == [2, 5]


def test_distinguishing_terms_separate_detractors_from_promoters():
    comments = pd.DataFrame(
        {
            "comment": [
                "late delivery again",
                "late delivery and rude support",
                "rude support late delivery",
                "great quality fast shipping",
                "fast shipping great quality",
                "great quality love it",
            ],
            "bucket": ["detractor"] * 3 + ["promoter"] * 3,
        }
    )
    terms = surveys.distinguishing_terms(comments)
    detractor_terms = set(terms[terms.side == "detractors"]["term"])
    promoter_terms = set(terms[terms.side == "promoters"]["term"])
    assert {"late delivery", "rude support"} <= detractor_terms
    assert {"great quality", "fast shipping"} <= promoter_terms
    assert surveys.distinguishing_terms(comments.head(3)).empty


def test_respondent_churn_by_bucket(store):
    tiny.load(store)
    frame = surveys.respondents(
        store, Filters(start=date(2024, 1, 1), end=date(2024, 2, 29)), churn_days=20
    )
    by_customer = frame.set_index("customer_id")
    # c1 answered 2024-02-02 and bought 02-05 -> stayed; c4 answered 02-02, only a refund after.
    assert by_customer.loc[1, "churned"] == False  # noqa: E712
    assert by_customer.loc[4, "churned"] == True  # noqa: E712
    assert by_customer.loc[4, "bucket"] == "detractor"
    # c1's latest answer (same minute as its 10, later response id) is a 0: a detractor
    # who stayed; c4 is a detractor who left.
    rates = surveys.churn_by_bucket(frame).set_index("bucket")
    assert rates.loc["detractor", "churn_rate"] == pytest.approx(0.5)


def test_demo_detractors_churn_more_than_promoters(demo_store):
    filters = Filters(start=date(2024, 7, 1), end=date(2026, 3, 31))
    rates = surveys.churn_by_bucket(surveys.respondents(demo_store, filters)).set_index("bucket")
    assert rates.loc["detractor", "churn_rate"] > rates.loc["promoter", "churn_rate"]


def test_detractor_value_falls_back_to_revenue_then_uses_clv(store):
    tiny.load(store)
    value = surveys.detractor_value(store, tiny.PERIOD)
    # Latest NPS answers: c1 0 (detractor, 180 revenue in the year), c2 9 (promoter, 210),
    # c3 7 (passive, 80), c4 3 (detractor, 60; its February order was refunded).
    assert value["basis"] == "revenue in the last 12 months"
    assert value["detractors"] == 2
    assert value["revenue_at_risk"] == pytest.approx(180 + 60)
    with store.begin() as conn:
        store.insert_df(
            conn,
            "customer_scores",
            pd.DataFrame({"customer_id": [1, 2, 3, 4], "clv": [100.0, 300.0, 50.0, 50.0]}),
        )
    value = surveys.detractor_value(store, tiny.PERIOD)
    assert value["basis"] == "predicted CLV"
    assert value["revenue_at_risk"] == pytest.approx(150.0)
    assert value["weighted_nps"] == pytest.approx(100 * (300 - 150) / 500)
    assert sorted(surveys.detractor_ids(store, tiny.PERIOD)) == [1, 4]


def test_breakdown_by_rfm_segment(store):
    tiny.load(store)
    by_segment = surveys.breakdown(store, tiny.PERIOD, "RFM segment")
    assert by_segment["nps_responses"].sum() == 5
    assert not by_segment["RFM segment"].isna().any()
