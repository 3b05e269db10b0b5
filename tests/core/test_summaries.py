"""Plain-language summaries: sentences computed from the figures, and honest empty cases."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from crm_core import summaries
from crm_core.analytics import churn, clv, rfm
from crm_core.analytics.surveys import ScoreSummary
from crm_core.metrics import KPIValue


def _kpis(**values: tuple[float | None, float | None]) -> dict[str, KPIValue]:
    base = {
        "revenue": (120_000.0, 100_000.0),
        "orders": (1_500, 1_400),
        "aov": (80.0, 71.4),
        "active_customers": (900, 850),
        "new_customers": (200, 180),
        "repeat_purchase_rate": (0.3, 0.28),
        "retention_rate": (0.588, 0.6),
        "churn_rate": (0.412, 0.4),
        "nps": (23.4, 20.0),
        "csat": (0.81, 0.8),
    }
    base.update(values)
    return {name: KPIValue(name, v, p) for name, (v, p) in base.items()}


def test_overview_names_the_churn_rate_from_the_kpi():
    text = " ".join(summaries.overview(_kpis()))
    assert "Churn rate 41.2%" in text
    assert "did not buy in this one" in text
    assert "1,500 orders" in text and "900 active customers" in text
    other = " ".join(summaries.overview(_kpis(churn_rate=(0.25, 0.4))))
    assert "Churn rate 25.0%" in other and "41.2%" not in other


def test_overview_empty_period_and_no_answers():
    assert "No completed orders" in summaries.overview(_kpis(orders=(0, 0)))[0]
    text = " ".join(summaries.overview(_kpis(nps=(None, None), csat=(None, None))))
    assert "No NPS or CSAT answers" in text
    no_before = " ".join(summaries.overview(_kpis(churn_rate=(None, None))))
    assert "no churn rate yet" in no_before


def _scores(segments: dict[str, tuple[int, float]]) -> pd.DataFrame:
    rows = []
    for name, (n, spend) in segments.items():
        rows += [
            {
                "customer_id": len(rows) + i,
                "rfm_segment": name,
                "monetary": spend / n,
                "recency_days": 10.0,
                "frequency": 2,
            }
            for i in range(n)
        ]
    return pd.DataFrame(rows)


def test_segmentation_sentences_follow_the_segment_sizes():
    summary = rfm.segment_summary(_scores({"Champions": (10, 5_000.0), "Lost": (30, 1_000.0)}))
    text = " ".join(summaries.segmentation(summary))
    assert text.startswith("40 customers fall into 2 RFM segments; the largest is Lost with 30")
    assert "Champions are 25.0% of the customers and hold 83.3% of the spend" in text
    assert "win back" not in text
    summary = rfm.segment_summary(
        _scores({"Champions": (10, 5_000.0), "At risk": (50, 9_000.0), "Lost": (30, 1_000.0)})
    )
    text = " ".join(summaries.segmentation(summary))
    assert "the largest is At risk with 50" in text
    assert "50 customers (55.6%; At risk) bought often but not lately" in text


def test_segmentation_empty():
    empty = rfm.segment_summary(pd.DataFrame())
    assert summaries.segmentation(empty) == [
        "No customer in this filter has bought by the end of the period."
    ]


def _backtest(predicted: float, actual: float, mae: float = 0.4) -> clv.Backtest:
    return clv.Backtest(
        calibration_end=date(2025, 6, 30),
        observation_end=date(2026, 6, 30),
        holdout_units=365.0,
        params={},
        by_frequency=pd.DataFrame(),
        period_histogram=pd.DataFrame(),
        actual_total=actual,
        predicted_total=predicted,
        mae=mae,
    )


def _clv_report(values: list[float], alive: list[float], bt: clv.Backtest) -> clv.CLVReport:
    customers = pd.DataFrame({"customer_id": range(len(values)), "clv": values, "p_alive": alive})
    return clv.CLVReport(
        settings=clv.CLVSettings(horizon_months=12),
        calibration_end=bt.calibration_end,
        observation_end=bt.observation_end,
        params={},
        backtest=bt,
        customers=customers,
        expected_matrix=pd.DataFrame(),
        alive_matrix=pd.DataFrame(),
        fit_seconds=0.0,
    )


def test_clv_summary_sums_values_and_states_the_backtest():
    values = [1_000.0] + [100.0] * 9
    report = _clv_report(values, [0.9] * 5 + [0.2] * 5, _backtest(110.0, 100.0))
    text = " ".join(summaries.clv(report))
    assert "The 10 customers valued are expected to spend $1,900.00 over the next 12 months" in text
    assert "$190.00 each on average" in text
    assert "The 1 customer with the highest CLV (the top 10%) hold 52.6% of it" in text
    assert "5 customers (50.0%) are probably still customers" in text
    assert "10.0% above" in text
    lower = _clv_report(values, [0.9] * 10, _backtest(80.0, 100.0))
    text = " ".join(summaries.clv(lower))
    assert "10 customers (100.0%) are probably still customers" in text
    assert "20.0% below" in text


def test_clv_backtest_sentences_and_empty_holdout():
    said = summaries.backtest(_backtest(110.0, 100.0, mae=0.42), "days")
    assert "predicted 110 purchases against 100 real ones: 10.0% too many" in said["total_error"]
    assert "misses by 0.42 purchases" in said["mae"]
    nobody = summaries.backtest(_backtest(3.0, 0.0), "days")
    assert "nobody bought" in nobody["total_error"]


def test_clv_empty():
    report = _clv_report([], [], _backtest(0.0, 0.0))
    assert "No customers to value" in summaries.clv(report)[0]


def _churn_report(risks: list[float], y_valid: np.ndarray, p_valid: np.ndarray):
    scores = pd.DataFrame({"customer_id": range(len(risks)), "churn_risk": risks})
    scores["churn_band"] = churn.band(scores["churn_risk"].to_numpy())
    base = np.full(len(y_valid), y_valid.mean())
    metrics = pd.DataFrame(
        {"model": churn.evaluate(y_valid, p_valid), "baseline": churn.evaluate(y_valid, base)}
    ).T
    drivers = pd.DataFrame(
        {
            "feature": ["recency_days", "tickets"],
            "importance": [0.05, 0.2],
            "label": [churn.FEATURES["recency_days"], churn.FEATURES["tickets"]],
            "sentence": ["Customers with a recency of 30 or more churn 2.0x as often.", "T."],
        }
    )
    return churn.ChurnReport(
        settings=churn.ChurnSettings(window_days=60),
        train_cutoff=date(2025, 1, 1),
        valid_cutoff=date(2025, 3, 1),
        as_of=date(2025, 5, 1),
        n_train=len(y_valid),
        n_valid=len(y_valid),
        churn_rate_valid=float(y_valid.mean()),
        metrics=metrics,
        calibration=pd.DataFrame({"predicted": [0.2, 0.8], "observed": [0.1, 0.9]}),
        gains=churn.gains(y_valid, {"model": p_valid, "baseline": base}),
        drivers=drivers,
        dependence={},
        scores=scores,
        train_seconds=0.0,
    )


def _bands(report, clv_each: float) -> pd.DataFrame:
    values = pd.DataFrame({"customer_id": report.scores["customer_id"], "clv": clv_each})
    values["p_alive"] = 0.5
    return churn.band_summary(churn.value_at_risk(report.scores, values))


Y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
P = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.5, 0.7, 0.1])


def test_churn_summary_counts_high_risk_and_their_value():
    report = _churn_report([0.9, 0.7, 0.65, 0.2, 0.1], Y, P)
    text = " ".join(summaries.churn(report, _bands(report, 1_000.0)))
    assert text.startswith(
        "3 customers (60.0% of the 5 active in the last year, erased customers left out) are "
        "at high"
    )
    assert "60% or higher chance that they buy nothing in the next 60 days" in text
    assert "They hold $3,000.00 of 12-month value (CLV), $2,250.00 of it at risk" in text
    assert f"The strongest driver is {churn.FEATURES['tickets']}" in text
    fewer = _churn_report([0.9, 0.2, 0.2, 0.2, 0.1], Y, P)
    text = " ".join(summaries.churn(fewer, _bands(fewer, 500.0)))
    assert text.startswith("1 customer (20.0% of the 5")
    assert "$500.00 of 12-month value" in text


def test_churn_summary_nobody_high_or_nobody_scored():
    calm = _churn_report([0.2, 0.1], Y, P)
    said = summaries.churn(calm, _bands(calm, 100.0))
    assert said[0].startswith("0 customers (0.0% of the 2")
    assert not any("They hold" in s for s in said)
    empty = _churn_report([], Y, P)
    assert "No customers active in the last year" in summaries.churn(empty, pd.DataFrame())[0]


def test_churn_metrics_in_business_words():
    report = _churn_report([0.5], Y, P)
    said = summaries.churn_metrics(report)
    auc = report.metric("roc_auc")
    assert said["roc_auc"].startswith(f"In {100 * auc:.0f} of 100 pairs of a customer who left")
    assert "ranks the leaver as riskier" in said["roc_auc"]
    assert "50.0% when picking at random (the validation churn share)" in said["pr_auc"]
    assert f"{report.metric('brier'):.3f}" in said["brier"] and "0.250" in said["brier"]
    assert "differ by 10.0 points on average" in said["calibration"]
    assert "Contacting the riskiest 20% of customers reaches" in said["gains"]
    better = _churn_report([0.5], Y, np.where(Y == 1, 0.9, 0.1))
    assert summaries.churn_metrics(better)["roc_auc"].startswith("In 100 of 100 pairs")


def test_survey_summary_from_scores_value_and_buckets():
    nps, csat = ScoreSummary(23.4, 19.0, 27.8, 1_234), ScoreSummary(0.81, 0.78, 0.84, 900)
    value = {"detractors": 120, "revenue_at_risk": 45_000.0, "basis": "predicted CLV"}
    buckets = pd.DataFrame(
        {"bucket": ["detractor", "promoter"], "respondents": [100, 200], "churn_rate": [0.4, 0.2]}
    )
    text = " ".join(summaries.surveys(nps, csat, value, buckets))
    assert "NPS is 23.4 from 1,234 answers (95% interval 19.0 to 27.8)" in text
    assert "CSAT is 81.0% from 900 answers" in text
    assert "120 detractors (latest NPS answer 0-6) hold $45.0k of predicted CLV" in text
    assert "40.0% of detractors bought nothing" in text and "leave more often" in text
    thin = summaries.surveys(ScoreSummary(10.0, -20.0, 40.0, 12), csat, value, buckets)
    assert "NPS rest on fewer than 30 answers" in thin[0]


def test_survey_summary_without_answers():
    none = ScoreSummary(None, None, None, 0)
    said = summaries.surveys(none, none, {"detractors": 0, "revenue_at_risk": None}, pd.DataFrame())
    assert said == ["No NPS or CSAT answers in this period and filter."]


def test_campaign_summary_and_control_groups():
    roi = pd.DataFrame(
        {"name": ["Spring", "Autumn"], "spend": [1_000.0, 3_000.0], "roi": [2.0, -0.5]}
    )
    totals = {"campaigns": 2, "spend": 4_000.0, "revenue": 4_500.0, "roi": 0.125}
    lift = pd.DataFrame(
        {"lift_low": [0.01, -0.02, None], "incremental_revenue": [1_200.0, 300.0, 0.0]}
    )
    text = " ".join(summaries.campaigns(roi, totals, "last_touch", lift))
    assert "2 campaigns spent $4,000.00 and are credited with $4,500.00" in text
    assert "last-touch attribution: ROI 12.5%" in text
    assert "Best return: Spring (ROI 200.0%); weakest: Autumn (ROI -50.0%)" in text
    assert "1 of 3 campaigns raised conversion beyond doubt" in text
    assert "added $1,500.00 of revenue" in text
    no_control = " ".join(summaries.campaigns(roi, totals, "linear", pd.DataFrame()))
    assert "held out a control group" in no_control
    assert summaries.campaigns(roi.iloc[0:0], totals, "linear")[0].startswith("No campaigns")


def _steps(counts: list[int]) -> pd.DataFrame:
    names = ["visit", "add_to_cart", "checkout", "purchase"][: len(counts)]
    previous = [None, *counts[:-1]]
    return pd.DataFrame(
        {
            "step": range(1, len(counts) + 1),
            "event_type": names,
            "customers": counts,
            "conversion_from_previous": [
                c / p if p else None for c, p in zip(counts, previous, strict=True)
            ],
        }
    )


def test_funnel_summary_finds_the_biggest_drop():
    text = " ".join(summaries.funnel(_steps([1_000, 600, 500, 250]), 7))
    assert "Of 1,000 customers who did visit, 250 (25.0%) went on to purchase within 7 days" in text
    assert "The biggest drop is from checkout to purchase: 50.0%" in text
    text = " ".join(summaries.funnel(_steps([1_000, 300, 270, 250]), 14))
    assert "from visit to add to cart: 70.0%" in text and "within 14 days" in text
    assert "No customer did 'visit'" in summaries.funnel(_steps([0, 0]), 7)[0]


def test_lead_summary():
    stages = pd.DataFrame({"stage": ["lead", "won"], "leads": [200, 20]})
    sources = pd.DataFrame({"source": ["ads", "partner"], "win_rate": [0.1, 0.5]})
    text = " ".join(summaries.leads(stages, sources))
    assert "200 leads were created in the period; 20 (10.0%) have been won so far" in text
    assert "partner (50.0%)" in text
    assert summaries.leads(pd.DataFrame({"stage": ["lead"], "leads": [0]}), sources) == [
        "No leads created in this period."
    ]


@pytest.mark.parametrize(
    ("name", "value", "kind", "expected"),
    [
        ("clv", 1_234_567.0, "money", "$1.23M"),
        ("customers", 6934, "count", "6,934"),
        ("no_such_money_field", 1_500_000.0, "money", "$1.5M"),
        ("no_such_field", None, "percent", "n/a"),
    ],
)
def test_numbers_go_through_display_or_the_fallback(name, value, kind, expected):
    assert summaries.show(name, value, kind) == expected


def test_clv_backtest_without_a_forecast_says_so():
    said = summaries.backtest(_backtest(float("nan"), 100.0, mae=float("nan")), "weeks")
    assert "gave no purchase forecast" in said["total_error"]
    assert said["mae"] == "No per-customer error without a forecast."
    report = _clv_report([100.0, 50.0], [0.9, 0.1], _backtest(float("nan"), 100.0))
    assert len(summaries.clv(report)) == 2


def test_in_short_percent_never_rounds_a_near_total_to_all():
    assert summaries._percent(0.995) == "99.5%"
    assert summaries._percent(0.42) == "42%"
    assert summaries._percent(0.05) == "5.0%"
