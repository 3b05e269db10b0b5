"""crm_core.display: every field a marketer sees has a label and a format by its kind."""

from __future__ import annotations

import datetime as dt
import math
import re

import pandas as pd
import pytest

from crm_core import display
from crm_core.metrics import METRICS
from crm_core.schema import customer_360

SNAKE = re.compile(r"[a-z0-9]+_[a-z0-9_]+")


@pytest.mark.parametrize("name", [c.name for c in customer_360.columns])
def test_every_customer_360_field_has_a_human_label(name):
    shown = display.describe(name)
    assert shown.kind in display.KINDS
    assert shown.label and not SNAKE.fullmatch(shown.label) and "_" not in shown.label


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_has_its_declared_label_and_kind(name):
    shown = display.describe(name)
    assert shown.label == METRICS[name].label
    assert "_" not in shown.label
    assert shown.kind == METRICS[name].format


def test_declared_table_uses_known_kinds_and_labels():
    for name, (label, kind, _) in display.COLUMNS.items():
        assert kind in display.KINDS, name
        assert "_" not in label, name


@pytest.mark.parametrize(
    ("name", "label", "kind"),
    [
        ("clv", "Predicted CLV", "money"),
        ("p_alive", "P(alive)", "percent"),
        ("churn_risk", "Churn risk", "percent"),
        ("rfm_segment", "RFM segment", "text"),
        ("recency_days", "Days since last order", "days"),
        ("orders_90d", "Orders (90 days)", "count"),
        ("customer_id", "Customer ID", "customer_id"),
        ("amount", "Amount", "money"),
        ("ordered_at", "Ordered", "datetime"),
        ("last_order_at", "Last order", "date"),
        ("consent_email", "E-mail consent", "boolean"),
        ("win_rate", "Win rate", "percent"),
        ("some_new_thing_at", "Some new thing", "datetime"),
    ],
)
def test_labels_and_kinds_come_from_the_declarations(name, label, kind):
    assert display.describe(name) == display.Display(name, label, kind, display.describe(name).help)


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("revenue", 1234.5, "$1,234.50"),
        ("clv", 7927.2509, "$7,927.25"),
        ("value_at_risk", -12.0, "-$12.00"),
        ("churn_risk", 0.4123, "41.2%"),
        ("share", 1, "100.0%"),
        ("customers", 4838.0, "4,838"),
        ("orders_90d", 12, "12"),
        ("recency_days", 31.1007, "31.1"),
        ("csat_avg", 4.0, "4"),
        ("order_id", 42.0, "42"),
        ("customer_id", 7, "7"),
        ("last_order_at", dt.datetime(2026, 6, 30, 14, 5), "30 Jun 2026"),
        ("ordered_at", dt.datetime(2026, 6, 30, 14, 5), "30 Jun 2026, 14:05"),
        ("ordered_at", dt.datetime(2026, 6, 30), "30 Jun 2026"),
        ("as_of", dt.date(2026, 6, 30), "30 Jun 2026"),
        ("consent_sms", True, "Yes"),
        ("country", "DE", "DE"),
    ],
)
def test_values_are_formatted_by_kind(name, value, text):
    assert display.format_value(name, value) == text


@pytest.mark.parametrize("missing", [None, math.nan, pd.NA, pd.NaT])
@pytest.mark.parametrize("name", ["revenue", "churn_risk", "customers", "ordered_at", "country"])
def test_a_missing_value_is_empty(name, missing):
    assert display.format_value(name, missing) == ""


def test_short_money_fits_a_card():
    assert display.format_value("revenue", 1_234_567.0, short=True) == "$1.23M"
    assert display.format_value("revenue", 45_678.9, short=True) == "$45.7k"
    assert display.format_value("revenue", 999.5, short=True) == "$999.50"


def test_axis_titles_carry_their_unit():
    assert display.axis_title("revenue") == "Revenue ($)"
    assert display.axis_title("share") == "Share of customers (%)"
    assert display.axis_title("customers") == "Customers"
    assert display.axis_title("median_days_in_stage") == "Median days in stage"
    assert display.hover_template("revenue") == "$%{y:,.2f}"
    assert display.tick_format("customers")["tickformat"] == ",d"
    assert display.tick_format("revenue")["tickprefix"] == display.CURRENCY


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("acquisition_channel", "paid_search", "Paid search"),
        ("acquisition channel", "organic_search", "Organic search"),
        ("touchpoint", "post_purchase", "Post-purchase"),
        ("event_type", "add_to_cart", "Add to cart"),
        ("event_type", "product_view", "Product view"),
        ("stage", "mql", "MQL"),
        ("stage", "sql", "SQL"),
        ("survey", "nps", "NPS"),
        ("churn_band", "high", "High"),
        ("bucket", "detractor", "Detractor"),
        ("country", "DE", "DE"),
        ("rfm_segment", "Champions", "Champions"),
        ("first_name", "ann", "ann"),  # a name is no code
        ("churn_band", None, ""),
    ],
)
def test_codes_of_a_coded_field_read_as_words(name, value, text):
    assert display.value_label(name, value) == text


def test_category_ticks_keep_the_codes_and_show_words():
    ticks = display.category_ticks("churn_band", ["low", "high", "low"])
    assert ticks["tickvals"] == ["low", "high"]
    assert ticks["ticktext"] == ["Low", "High"]


@pytest.mark.parametrize(
    ("share", "shown"),
    [(0.995, "99.5%"), (0.9996, ">99.9%"), (1.0, "100.0%"), (0.0004, "<0.1%"), (0.0, "0.0%")],
)
def test_format_share_never_rounds_to_all_or_none(share, shown):
    assert display.format_share(share) == shown


def test_format_share_in_whole_percent():
    assert display.format_share(0.996, 0) == ">99%"
    assert display.format_share(0.004, 0) == "<1%"
    assert display.format_share(0.42, 0) == "42%"
