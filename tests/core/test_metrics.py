"""KPIs on the tiny exact store, checked against hand-computed figures."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from crm_core.filters import default_filters, order_date_range
from crm_core.metrics import METRICS, compute_kpis, format_change, format_value, monthly_trend
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
    assert filters.start.isoformat() == "2023-12-20"  # the first order is later than a year back


def test_monthly_trend(tiny_store):
    trend = monthly_trend(tiny_store, tiny.PERIOD)
    assert len(trend) == 1
    row = trend.iloc[0]
    assert (row["revenue"], row["orders"], row["active_customers"]) == (170.0, 4, 3)


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
