"""Event and lead funnels on hand-computed examples."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from crm_core.analytics import funnels
from crm_core.errors import CRMError
from crm_core.filters import Filters

MARCH = Filters(start=date(2024, 3, 1), end=date(2024, 3, 31))
STEPS = ["visit", "add_to_cart", "purchase"]

EVENTS = [  # customer, type, time
    (1, "visit", "2024-03-01 10:00"),
    (1, "add_to_cart", "2024-03-01 10:05"),
    (1, "purchase", "2024-03-01 10:30"),
    (2, "visit", "2024-03-02 10:00"),
    (2, "purchase", "2024-03-02 10:10"),  # skipped the cart
    (3, "visit", "2024-03-03 10:00"),
    (3, "add_to_cart", "2024-03-12 10:00"),  # nine days later: outside a 7-day window
    (4, "add_to_cart", "2024-03-04 09:00"),  # before entering the funnel
    (4, "visit", "2024-03-04 10:00"),
    (4, "purchase", "2024-03-04 11:00"),
    (5, "visit", "2024-03-05 10:00"),
    (5, "purchase", "2024-03-05 10:10"),  # purchase before cart: only counts in any order
    (5, "add_to_cart", "2024-03-05 10:20"),
    (6, "visit", "2024-02-20 10:00"),  # before the period: never enters
]


@pytest.fixture
def funnel_store(store):
    frame = pd.DataFrame(EVENTS, columns=["customer_id", "event_type", "occurred_at"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"])
    frame.insert(0, "event_id", range(1, len(frame) + 1))
    frame["channel"] = ["web"] * 5 + ["app"] * 9
    with store.begin() as conn:
        store.insert_df(
            conn,
            "customers",
            pd.DataFrame(
                {
                    "customer_id": range(1, 7),
                    "country": ["US", "US", "GB", "GB", "US", "US"],
                    "signup_at": pd.Timestamp("2024-01-01"),
                }
            ),
        )
        store.insert_df(conn, "events", frame)
    return store


def test_strict_funnel_counts(funnel_store):
    result = funnels.event_funnel(funnel_store, MARCH, STEPS, order="strict", window_days=7)
    assert result.steps["customers"].tolist() == [5, 2, 1]
    assert result.steps["dropped"].tolist() == [0, 3, 1]
    assert result.steps["conversion_from_previous"].tolist() == [1.0, 0.4, 0.5]
    assert result.overall_conversion == pytest.approx(0.2)
    # cart after visit: c1 5 minutes, c5 20 minutes -> median 12.5 minutes
    assert result.steps["median_minutes_from_previous"][1] == pytest.approx(12.5)
    assert sorted(result.dropped_at(1)) == [2, 3, 4]
    assert result.dropped_at(2) == [5]
    assert "funnel_entry" in result.sql and "event_type" in result.sql


def test_any_order_funnel_counts(funnel_store):
    result = funnels.event_funnel(funnel_store, MARCH, STEPS, order="any", window_days=7)
    assert result.steps["customers"].tolist() == [5, 2, 2]


def test_longer_window_lets_slow_customers_convert(funnel_store):
    result = funnels.event_funnel(funnel_store, MARCH, STEPS, order="strict", window_days=10)
    assert result.steps["customers"].tolist() == [5, 3, 1]


def test_breakdowns_and_trend(funnel_store):
    result = funnels.event_funnel(funnel_store, MARCH, STEPS, window_days=7)
    by_country = funnels.funnel_breakdown(funnel_store, result, "country").set_index("country")
    assert by_country.loc["US", "visit"] == 3 and by_country.loc["US", "purchase"] == 1
    assert by_country.loc["GB", "visit"] == 2 and by_country.loc["GB", "purchase"] == 0
    by_channel = funnels.funnel_breakdown(funnel_store, result, "channel").set_index("channel")
    assert by_channel["visit"].sum() == 5
    by_segment = funnels.funnel_breakdown(funnel_store, result, "RFM segment")
    assert by_segment["visit"].sum() == 5  # customers without orders have no segment yet
    trend = funnels.funnel_trend(result)
    assert trend["entered"].tolist() == [5] and trend["converted"].tolist() == [1]


@pytest.mark.parametrize(
    "steps,order,window,message",
    [
        (["visit"], "strict", 7, "2 to 10 steps"),
        (["visit", "teleport"], "strict", 7, "Unknown event type 'teleport'"),
        (["visit", "purchase"], "sideways", 7, "Unknown step order"),
        (["visit", "purchase"], "strict", 0, "at least 1 day"),
    ],
)
def test_bad_funnels_are_clear_errors(store, steps, order, window, message):
    with pytest.raises(CRMError, match=message):
        funnels.event_funnel(store, MARCH, steps, order=order, window_days=window)


def test_empty_store_gives_zero_funnel(store):
    result = funnels.event_funnel(store, MARCH, STEPS)
    assert result.steps["customers"].tolist() == [0, 0, 0]
    assert result.overall_conversion is None


def test_lead_funnel_and_sources(store):
    stages = ["lead", "mql", "sql", "opportunity", "won", "lost", "won"]
    with store.begin() as conn:
        store.insert_df(
            conn,
            "leads",
            pd.DataFrame(
                {
                    "lead_id": range(1, 8),
                    "created_at": pd.Timestamp("2024-03-02"),
                    "stage_changed_at": pd.Timestamp("2024-03-10"),
                    "source": ["a", "a", "a", "b", "a", "a", "b"],
                    "stage": stages,
                    "deal_value": [None, None, 100.0, 200.0, 300.0, 50.0, 500.0],
                }
            ),
        )
    funnel = funnels.lead_funnel(store, MARCH)
    assert funnel["leads"].tolist() == [7, 6, 5, 3, 2]
    sources = funnels.leads_by_source(store, MARCH).set_index("source")
    assert sources.loc["a", "win_rate"] == pytest.approx(0.5)  # 1 won, 1 lost
    assert sources.loc["b", "won_value"] == pytest.approx(500.0)
    ages = funnels.lead_stage_ages(store, MARCH).set_index("stage")
    assert ages.loc["lead", "open_leads"] == 1


def test_demo_web_funnel_narrows(demo_store):
    filters = Filters(start=date(2025, 7, 1), end=date(2026, 6, 30))
    result = funnels.event_funnel(demo_store, filters, list(funnels.DEFAULT_STEPS))
    counts = result.steps["customers"].tolist()
    assert counts[0] > 0 and all(a >= b for a, b in zip(counts, counts[1:], strict=False))
    assert counts[-1] > 0
