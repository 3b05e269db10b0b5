"""Monthly charts label their x axis by month, also with a single month of data (a lone
point or bar otherwise gets plotly's millisecond ticks: "23:59:59.9996 Oct 31, 2026")."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_core.figures import charts, insight_charts


def one_month() -> pd.Series:
    return pd.Series([pd.Timestamp("2026-10-01")], name="month")


def assert_month_axis(fig, first: str, last: str, dtick: str = "M1") -> None:
    axis = fig.layout.xaxis
    assert axis.tickformat == "%b %Y"
    assert axis.dtick == dtick
    low, high = (pd.Timestamp(v) for v in axis.range)
    assert low < pd.Timestamp(first) and pd.Timestamp(last) < high
    assert high - low >= pd.Timedelta(days=28)  # a month at least, not milliseconds


def test_spend_by_month_for_one_month_shows_the_month():
    table = pd.DataFrame({"month": one_month(), "revenue": [120.0], "orders": [2]})
    fig = insight_charts.monthly_spend(table)
    assert_month_axis(fig, "2026-10-01", "2026-10-01")
    assert fig.data[0].width >= 15 * 86_400_000  # a visible bar, not 1 ms


def test_one_month_survey_and_conversion_trends_show_the_month():
    trend = pd.DataFrame(
        {
            "month": one_month(),
            "nps": [20.0],
            "nps_low": [10.0],
            "nps_high": [30.0],
            "nps_responses": [40],
            "conversion": [0.25],
            "entered": [8],
        }
    )
    assert_month_axis(insight_charts.score_trend(trend, "nps", "NPS"), "2026-10-01", "2026-10-01")
    assert_month_axis(insight_charts.conversion_trend(trend), "2026-10-01", "2026-10-01")


@pytest.mark.parametrize(("months", "dtick"), [(5, "M1"), (12, "M1"), (30, "M3"), (100, "M12")])
def test_longer_histories_keep_at_most_twelve_month_labels(months, dtick):
    month = pd.Series(pd.date_range("2020-01-01", periods=months, freq="MS"), name="month")
    table = pd.DataFrame({"month": month, "revenue": 1.0, "orders": 1})
    fig = insight_charts.monthly_spend(table)
    assert_month_axis(fig, "2020-01-01", str(month.iloc[-1].date()), dtick)


def test_the_overviews_trend_for_one_period_has_a_range_around_it():
    trend = pd.DataFrame(
        {
            "period": [pd.Timestamp("2026-10-01")],
            "revenue": [100.0],
            "active_customers": [3],
            "partial": [False],
            "grain": ["month"],
        }
    )
    fig = charts.revenue_active_trend(trend)
    axis = fig.layout.xaxis
    assert axis.tickformat == "%b %Y"
    assert list(axis.tickvals) == [pd.Timestamp("2026-10-01")]
    low, high = (pd.Timestamp(v) for v in axis.range)
    assert high - low >= pd.Timedelta(days=28)
    assert fig.data[0].width >= 15 * 86_400_000
