"""Cached model fits for the CLV and churn views, keyed on every setting the analyst picks."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from crm_core.analytics import churn, clv
from crm_core.filters import Filters
from crm_ui import data


@data.reads(*clv.SOURCE_TABLES, show_spinner=False, ttl=600)
def order_span(countries: tuple[str, ...], channels: tuple[str, ...]) -> tuple[date, date] | None:
    """First and last day with a completed order in these countries and channels."""
    return clv.data_span(data.store(), Filters(date.min, date.max, countries, channels))


def model_span_or_stop(filters: Filters | None) -> tuple[date, date]:
    """The order span the models can use, or an empty state that stops the page."""
    span = filters and order_span(filters.countries, filters.channels)
    if not span:
        st.info(
            "No completed orders to model yet. An admin can import `customers` and `orders` on "
            "the Data import page, or run `python -m crm_core import orders FILE`."
        )
        st.stop()
    return span[0], min(span[1], filters.end)


def default_calibration_end(first: date, last: date) -> date:
    """The calibration end suggested before the analyst picks one."""
    return clv.default_calibration_end(first, last)


@data.reads(
    *clv.SOURCE_TABLES,
    show_spinner="Fitting the purchase and spend models (first time for these settings)...",
    ttl=3600,
    max_entries=16,
)
def clv_report(settings: clv.CLVSettings) -> clv.CLVReport:
    """Backtest, parameters and per-customer CLV (CRMError when the data are too thin)."""
    return clv.analyse(data.store(), settings)


@data.reads(
    *churn.SOURCE_TABLES,
    show_spinner="Training and validating the churn model (first time for these settings)...",
    ttl=3600,
    max_entries=16,
)
def churn_report(settings: churn.ChurnSettings) -> churn.ChurnReport:
    """Out-of-time validation, drivers and current risk per customer."""
    return churn.analyse(data.store(), settings)


@data.reads(
    *churn.SOURCE_TABLES,
    "customer_scores",
    show_spinner=False,
    ttl=3600,
    max_entries=16,
)
def value_at_risk(
    churn_settings: churn.ChurnSettings, clv_settings: clv.CLVSettings
) -> pd.DataFrame:
    """Churn risk beside CLV and P(alive), sorted by value at risk (risk x CLV)."""
    values = clv_report(clv_settings).customers
    return churn.value_at_risk(churn_report(churn_settings).scores, values)


@data.reads(
    *churn.SOURCE_TABLES,
    "customer_scores",
    show_spinner=False,
    ttl=3600,
    max_entries=16,
)
def band_summary(
    churn_settings: churn.ChurnSettings, clv_settings: clv.CLVSettings
) -> pd.DataFrame:
    """Customers, risk, CLV and value at risk per risk band."""
    return churn.band_summary(value_at_risk(churn_settings, clv_settings))


@data.reads(*clv.SOURCE_TABLES, "customer_360", show_spinner=False, ttl=3600, max_entries=16)
def clv_breakdowns(settings: clv.CLVSettings) -> dict[str, pd.DataFrame]:
    """CLV by RFM segment, acquisition channel and country, and the top customers."""
    values = clv_report(settings).customers
    return {
        "rfm_segment": clv.group_clv(values, "rfm_segment"),
        "acquisition_channel": clv.group_clv(values, "acquisition_channel"),
        "country": clv.group_clv(values, "country"),
        "top": clv.top_customers(values),
        "histogram": clv.clv_histogram_values(values).to_frame(),
    }


def money(value: float) -> str:
    """Money as the overview shows it ($1.2k, $3.40M)."""
    if abs(value) >= 1_000_000:
        return f"${value / 1_000_000:,.2f}M"
    if abs(value) >= 10_000:
        return f"${value / 1_000:,.1f}k"
    return f"${value:,.2f}"


def show_not_ready(exc: clv.NotReadyError) -> None:
    """Say what is missing instead of showing numbers."""
    st.warning(
        "Not enough data for this model yet:\n\n"
        + "\n".join(f"- {problem}" for problem in exc.problems)
    )


WINDOW_WORDS = {7: "7 days", 30: "30 days", 90: "90 days"}


def next_purchase_panel(report: clv.CLVReport) -> None:
    """The next-purchase predictions and their backtest at the calibration end."""
    from crm_core.analytics import next_purchase
    from crm_core.figures import model_charts
    from crm_ui import widgets

    values = report.customers
    st.caption(
        "From the purchase model: each customer's chance of at least one purchase in the next "
        "7, 30 and 90 days after the data's end, and the window in which the next purchase is "
        "expected (from the day its chance reaches 25% to the day it reaches 75%). Scoring "
        "writes them with the scores, for segments ('next purchase from within the next 14 "
        "days'), exports and the customer profile."
    )
    cards = st.container(horizontal=True)
    for days in next_purchase.WINDOWS_DAYS:
        column = values[f"p_purchase_{days}d"]
        cards.container().metric(
            f"Expected buyers in {WINDOW_WORDS[days]}",
            f"{column.sum():,.0f}",
            help=f"The sum of every customer's chance of buying within {days} days: how many "
            f"of the {len(values):,} customers the model expects to buy. Mean chance "
            f"{column.mean():.1%}.",
            border=True,
        )
    due = values["next_purchase_from"].notna() & (
        values["next_purchase_from"] <= pd.Timestamp(report.observation_end) + pd.Timedelta(days=14)
    )
    st.caption(
        f"{int(due.sum()):,} customers are due within 14 days of "
        f"{report.observation_end:%d %b %Y} (their window starts by then); "
        f"{int(values['next_purchase_from'].isna().sum()):,} stay below a 25% chance of buying "
        f"again within two years, and {int(values['next_purchase_to'].isna().sum()):,} below "
        "75% (no window end)."
    )
    table = report.next_purchase
    st.markdown("**Backtest at the calibration end**")
    if table.empty:
        st.info(
            "The holdout after the calibration end is shorter than 7 days: move the "
            "calibration end earlier (Model settings) to check the predictions."
        )
        return
    errors = next_purchase.calibration_error(table)
    st.caption(
        f"The calibration fit (data to {report.calibration_end:%d %b %Y}) predicted each "
        "customer's chance of buying in the days after it; the bars are the share that did, "
        "by decile of the prediction. "
        + "; ".join(
            f"{int(r.window_days)} days: predicted {r.predicted:.1%}, bought {r.actual:.1%} "
            f"(worst decile off by {r.worst_decile_gap * 100:.1f} points)"
            for r in errors.itertuples()
        )
        + "."
    )
    windows = [int(d) for d in table["window_days"].unique()]
    window = (
        st.segmented_control(
            "Window",
            windows,
            default=windows[-1],
            format_func=lambda d: WINDOW_WORDS.get(d, f"{d} days"),
            key="np_window",
            help="Windows longer than the holdout are left out.",
        )
        or windows[-1]
    )
    widgets.chart_with_download(
        model_charts.next_purchase_backtest(table, window),
        table,
        "next_purchase_backtest.csv",
        "Download the next-purchase backtest (CSV)",
    )
