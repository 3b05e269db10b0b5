"""KPIs on the tiny exact store, checked against hand-computed figures."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd
import pytest

from crm_core.analytics.cohorts import cohort_retention
from crm_core.filters import Filters, default_filters, order_date_range
from crm_core.metrics import METRICS, compute_kpis, format_change, format_value, revenue_trend
from tests.core import tiny

pytestmark = pytest.mark.both_stores  # every test here runs on DuckDB and PostgreSQL


@pytest.fixture
def tiny_store(store):
    return tiny.load(store)


def values(kpis):
    return {name: (k.value, k.previous) for name, k in kpis.items()}


def test_every_metric_has_label_description_and_format():
    for metric in METRICS.values():
        assert metric.label and len(metric.description) > 20
        assert metric.format in {"money", "count", "percent", "score"}


def test_kpis_match_hand_computed_figures(tiny_store):
    got = values(compute_kpis(tiny_store, tiny.PERIOD))
    assert got["revenue"] == (pytest.approx(170.0), pytest.approx(300.0))
    assert got["orders"] == (4, 2)
    assert got["aov"] == (pytest.approx(42.5), pytest.approx(150.0))
    assert got["active_customers"] == (3, 2)
    assert got["new_customers"] == (1, 2)
    assert got["repeat_purchase_rate"] == (pytest.approx(1 / 3), 0.0)
    # Current: both customers active in January bought again in February.
    # Previous: the only customer active before (c4, December) did not buy in January.
    assert got["retention_rate"] == (1.0, 0.0)
    assert got["churn_rate"] == (0.0, 1.0)
    # NPS now: 10, 9, 7, 3, 0 -> (2 - 2) / 5; before: 10, 8 -> (1 - 0) / 2.
    assert got["nps"] == (pytest.approx(0.0), pytest.approx(50.0))
    assert got["csat"] == (pytest.approx(2 / 3), None)


def test_an_order_before_the_three_periods_makes_a_customer_not_new(tiny_store):
    older = tiny.ORDERS.iloc[[4]].assign(order_id=10, ordered_at=pd.Timestamp("2023-06-01"))
    with tiny_store.begin() as conn:
        tiny_store.insert_df(conn, "orders", older)  # c3 bought long before February
    got = values(compute_kpis(tiny_store, tiny.PERIOD))
    assert got["new_customers"] == (0, 2) and got["active_customers"] == (3, 2)


def test_changes_are_relative_for_money_and_points_for_rates(tiny_store):
    kpis = compute_kpis(tiny_store, tiny.PERIOD)
    assert kpis["revenue"].change == pytest.approx((170 - 300) / 300)
    assert format_change(kpis["revenue"]) == "-43.3%"
    assert kpis["nps"].change == pytest.approx(-50.0)
    assert format_change(kpis["nps"]) == "-50.0 pts"
    assert format_change(kpis["retention_rate"]) == "+100.0 pts"
    assert kpis["csat"].change is None
    assert format_value(METRICS["csat"], None) == "n/a"


def test_country_filter(tiny_store):
    got = values(compute_kpis(tiny_store, replace(tiny.PERIOD, countries=("GB",))))
    assert got["revenue"] == (pytest.approx(80.0), 0.0)
    assert got["active_customers"] == (1, 0)
    assert got["retention_rate"] == (None, 0.0)
    # GB answers now: c3 (7), c4 (3) -> 0 promoters, 1 detractor of 2.
    assert got["nps"][0] == pytest.approx(-50.0)


def test_channel_filter(tiny_store):
    got = values(compute_kpis(tiny_store, replace(tiny.PERIOD, channels=("web",))))
    assert got["revenue"] == (pytest.approx(140.0), pytest.approx(100.0))
    assert got["orders"] == (3, 1)


def test_no_surveys_gives_none_not_error(store):
    tiny.load(store, surveys=False)
    kpis = compute_kpis(store, tiny.PERIOD)
    assert kpis["nps"].value is None and kpis["csat"].value is None
    assert kpis["revenue"].value == pytest.approx(170.0)


def test_empty_store_has_no_default_period(store):
    assert order_date_range(store) is None
    assert default_filters(store) is None


def test_default_period_ends_at_last_order(tiny_store):
    filters = default_filters(tiny_store)
    assert filters.end.isoformat() == "2024-03-01"
    assert filters.start.isoformat() == "2023-03-03"  # 365 days, even before the first order


def test_trend_of_a_month_is_drawn_by_day_with_every_day_listed(tiny_store):
    trend = revenue_trend(tiny_store, tiny.PERIOD)
    assert trend["grain"].unique().tolist() == ["day"]
    assert len(trend) == 29 and not trend["partial"].any()
    assert trend["revenue"].sum() == 170.0 and trend["orders"].sum() == 4
    feb5 = trend.set_index("period").loc[pd.Timestamp("2024-02-05")]
    assert (feb5["revenue"], feb5["orders"], feb5["active_customers"]) == (50.0, 1, 1)


def test_trend_by_month_marks_partial_months(tiny_store):
    period = Filters(start=date(2023, 12, 15), end=date(2024, 2, 29))
    trend = revenue_trend(tiny_store, period, grain="month")
    assert trend["period"].dt.strftime("%Y-%m").tolist() == ["2023-12", "2024-01", "2024-02"]
    assert trend["partial"].tolist() == [True, False, False]
    assert trend["orders"].tolist() == [1, 2, 4]


def test_trend_of_a_quarter_is_drawn_by_week(tiny_store):
    period = Filters(start=date(2024, 1, 3), end=date(2024, 2, 29))  # Wednesday .. Thursday
    trend = revenue_trend(tiny_store, period)
    assert trend["grain"].iloc[0] == "week"
    assert trend["period"].dt.day_of_week.unique().tolist() == [0]  # weeks start on Monday
    assert trend["partial"].iloc[0] and trend["partial"].iloc[-1]
    assert not trend["partial"].iloc[1:-1].any()
    assert trend["orders"].sum() == 6


@pytest.mark.parametrize(
    "start,end,countries",
    [
        ("2024-02-10", "2024-02-10", ()),  # one day
        ("2024-02-01", "2024-02-29", ()),
        ("2024-01-15", "2024-02-29", ("US",)),
        ("2023-12-01", "2024-03-01", ()),
    ],
)
def test_new_customers_equal_the_cohort_grid(tiny_store, start, end, countries):
    period = Filters(
        start=date.fromisoformat(start), end=date.fromisoformat(end), countries=countries
    )
    new = compute_kpis(tiny_store, period)["new_customers"].value
    grid = cohort_retention(tiny_store, period)
    assert (0 if grid.empty else int(grid["customers"].sum())) == new


def test_comparison_with_the_same_period_a_year_earlier(tiny_store):
    period = replace(tiny.PERIOD, compare="year_ago")
    assert period.comparison() == replace(period, start=date(2023, 2, 1), end=date(2023, 2, 28))
    kpis = compute_kpis(tiny_store, period)
    assert kpis["revenue"].value == pytest.approx(170.0)
    assert kpis["revenue"].previous == 0.0  # nothing sold in February 2023
    assert kpis["new_customers"].previous == 0


@pytest.mark.parametrize(
    "name,value,text",
    [
        ("revenue", 8_014_321.5, "$8.01M"),
        ("revenue", 65_432.1, "$65.4k"),
        ("revenue", 1_234.5, "$1,234.50"),
        ("orders", 100_521, "100,521"),
        ("orders", 2_500_000, "2.50M"),
        ("churn_rate", 0.4123, "41.2%"),
        ("nps", 12.84, "12.8"),
    ],
)
def test_format_value_fits_a_kpi_card(name, value, text):
    assert format_value(METRICS[name], value) == text


def test_month_to_date_is_compared_with_the_same_days_of_the_month_before(tiny_store):
    to_date = Filters(date(2024, 2, 1), date(2024, 2, 20), preset="month_to_date")
    kpis = compute_kpis(tiny_store, to_date)
    assert kpis["revenue"].previous == pytest.approx(300.0)  # 1-20 Jan: orders 1 and 4
    by_hand = compute_kpis(tiny_store, replace(to_date, preset=None))
    assert by_hand["revenue"].previous == pytest.approx(200.0)  # 12-31 Jan: order 4 only
    assert kpis["revenue"].value == by_hand["revenue"].value
