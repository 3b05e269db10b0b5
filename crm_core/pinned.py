"""What a pinned KPI or chart shows, computed from the store alone (no app), so a scheduled
report of a Home page carries the figures the page draws.

`content(store, pin)` gives a pin's figure (or KPI), the numbers behind it as a table and,
when there is nothing to draw, a sentence saying why. The settings a pin keeps are turned
into the analyses' settings here (`churn_settings`, `clv_settings`, ...), for the app's
Home page (crm_ui.pins, which adds its caches) and for reports alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from crm_core import auth, features, home, metrics, segments
from crm_core.analytics import campaigns, churn, clv, cohorts, funnels, rfm, surveys
from crm_core.errors import CRMError
from crm_core.filters import DEFAULT_PRESET, Filters, default_filters
from crm_core.store import Store

HISTOGRAM_BINS = 50
"""Bins of the CLV distribution, in the chart and in its table."""


@dataclass
class PinContent:
    """What one pin shows now: a KPI or a figure, its numbers, or why there is nothing."""

    pin: home.Pin
    filters: Filters | None
    figure: go.Figure | None = None
    table: pd.DataFrame | None = None
    kpi: metrics.KPIValue | None = None
    caption: str | None = None
    empty: str | None = None
    """Why nothing is drawn (no data in the period, a model not ready, a refused view)."""


# --- a pin's settings as the analyses' settings --------------------------------------------


def standard_filters(latest: Filters | None) -> Filters | None:
    """The sidebar's default filters (the last 12 months up to the last order), which a pin
    pinned without filters uses."""
    return latest and replace(latest, preset=DEFAULT_PRESET)


def pin_filters(pin: home.Pin, latest: Filters | None) -> Filters | None:
    """The filters `pin` is drawn with now, given the store's default filters `latest` (a
    preset counts back from the last data day; None: no orders yet)."""
    if latest is None or pin.filters is None:
        return standard_filters(latest)
    return home.current(pin.filters, latest.end)


def model_span(store: Store, filters: Filters) -> tuple[date, date] | None:
    """First day with a completed order and the model's end (the period's end or the last
    order, whichever is first), in the filter's countries and channels."""
    span = clv.data_span(store, Filters(date.min, date.max, filters.countries, filters.channels))
    if not span:
        return None
    return span[0], min(span[1], filters.end)


def churn_settings(pin: home.Pin, filters: Filters, span: tuple[date, date]) -> churn.ChurnSettings:
    """The churn model a risk-bands pin was pinned with, as of the end of `span`."""
    return churn.ChurnSettings(
        model=pin.settings.get("model", "hgb"),
        window_days=int(pin.settings.get("window_days", churn.DEFAULT_WINDOW_DAYS)),
        as_of=span[1],
        countries=filters.countries,
        channels=filters.channels,
    )


def clv_settings(pin: home.Pin, filters: Filters, span: tuple[date, date]) -> clv.CLVSettings:
    """The CLV model a pin was pinned with; a calibration end outside `span` falls back to
    the default one."""
    first, last = span
    chosen = pin.settings.get("calibration_end")
    calibration_end = date.fromisoformat(chosen) if chosen else None
    if calibration_end is None or not first < calibration_end < last:
        calibration_end = clv.default_calibration_end(first, last)
    return clv.CLVSettings(
        model=pin.settings.get("model", "bgnbd"),
        time_unit=pin.settings.get("time_unit", "days"),
        calibration_end=calibration_end,
        observation_end=last,
        horizon_months=int(pin.settings.get("horizon_months", 12)),
        monthly_discount=float(pin.settings.get("monthly_discount", 0.01)),
        countries=filters.countries,
        channels=filters.channels,
    )


def risk_clv_settings(filters: Filters, span: tuple[date, date]) -> clv.CLVSettings:
    """The CLV model beside churn risk (value at risk): the default model up to `span`'s end."""
    return clv.CLVSettings(
        observation_end=span[1], countries=filters.countries, channels=filters.channels
    )


def funnel_options(pin: home.Pin) -> tuple[tuple[str, ...], str, int]:
    """A funnel pin's steps, order and window in days."""
    return (
        tuple(pin.settings.get("steps", funnels.DEFAULT_STEPS)),
        pin.settings.get("order", funnels.ORDERS[0]),
        int(pin.settings.get("window_days", 7)),
    )


def campaign_options(pin: home.Pin) -> tuple[str, int]:
    """A campaign ROI pin's attribution model and lookback in days."""
    return (
        pin.settings.get("model", campaigns.DEFAULT_MODEL),
        int(pin.settings.get("lookback_days", 30)),
    )


def rfm_window(pin: home.Pin) -> int | None:
    """An RFM pin's window in days (None: all history)."""
    return rfm.WINDOWS[pin.settings.get("window", next(iter(rfm.WINDOWS)))]


def histogram_table(values: pd.Series, bins: int = HISTOGRAM_BINS) -> pd.DataFrame:
    """Customers per CLV bin: the numbers behind the CLV distribution chart."""
    if values.empty:
        return pd.DataFrame(columns=["clv_from", "clv_to", "customers"])
    counts, edges = np.histogram(values.to_numpy(dtype=float), bins=bins)
    return pd.DataFrame({"clv_from": edges[:-1], "clv_to": edges[1:], "customers": counts})


# --- what each pinnable item shows ----------------------------------------------------------

_Computer = Callable[[Store, home.Pin, Filters, PinContent], None]


def _kpi(
    store: Store,
    pin: home.Pin,
    filters: Filters,
    out: PinContent,
    kpis: dict[str, metrics.KPIValue] | None = None,
) -> None:
    from crm_core.reports import kpi_frame

    out.kpi = (kpis or metrics.compute_kpis(store, filters))[pin.item]
    out.table = kpi_frame({pin.item: out.kpi}, filters)


def _revenue_trend(store: Store, pin: home.Pin, filters: Filters, out: PinContent) -> None:
    from crm_core.figures import charts

    trend = metrics.revenue_trend(store, filters)
    if not trend["orders"].any():
        out.empty = "No completed orders in this period and filter."
        return
    out.figure, out.table = charts.revenue_active_trend(trend), trend


def _cohorts(store: Store, pin: home.Pin, filters: Filters, out: PinContent) -> None:
    from crm_core.figures import charts

    grid = cohorts.cohort_retention(store, filters)
    if grid.empty:
        out.empty = "No first purchases in this period and filter."
        return
    out.figure, out.table = charts.cohort_heatmap(grid), grid.reset_index()


def _rfm_treemap(store: Store, pin: home.Pin, filters: Filters, out: PinContent) -> None:
    from crm_core.figures import segment_charts

    features.ensure_fresh(store)
    last_order = segments.store_as_of(store)
    if last_order is None:
        out.empty = "No orders in the store yet."
        return
    scores = rfm.rfm_scores(store, min(filters.end, last_order), rfm_window(pin), filters)
    if scores.empty:
        out.empty = "No customer in this filter has bought by the end of the period."
        return
    summary = rfm.segment_summary(scores)
    out.figure, out.table = segment_charts.segment_treemap(summary), summary


def _span_or_empty(store: Store, filters: Filters, out: PinContent) -> tuple[date, date] | None:
    span = model_span(store, filters)
    if span is None:
        out.empty = "No completed orders to model in these countries and channels."
    return span


def _risk_bands(store: Store, pin: home.Pin, filters: Filters, out: PinContent) -> None:
    from crm_core.figures import model_charts

    span = _span_or_empty(store, filters, out)
    if span is None:
        return
    report = churn.analyse(store, churn_settings(pin, filters, span))
    values = clv.analyse(store, risk_clv_settings(filters, span)).customers
    bands = churn.band_summary(churn.value_at_risk(report.scores, values))
    if bands.empty:
        out.empty = "No customers active in the last year to score."
        return
    out.figure, out.table = model_charts.risk_bands(bands), bands


def _clv_histogram(store: Store, pin: home.Pin, filters: Filters, out: PinContent) -> None:
    from crm_core.figures import model_charts

    span = _span_or_empty(store, filters, out)
    if span is None:
        return
    report = clv.analyse(store, clv_settings(pin, filters, span))
    values = clv.clv_histogram_values(report.customers)
    out.figure = model_charts.clv_histogram(values.to_frame(), "$")
    out.table = histogram_table(values)


def _event_funnel(store: Store, pin: home.Pin, filters: Filters, out: PinContent) -> None:
    from crm_core.figures import insight_charts

    steps, order, window_days = funnel_options(pin)
    result = funnels.event_funnel(store, filters, list(steps), order=order, window_days=window_days)
    if not result.steps["customers"].iloc[0]:
        out.empty = f"No customer did '{steps[0]}' in this period."
        return
    out.caption = f"Overall conversion {result.overall_conversion:.1%}"
    out.figure, out.table = insight_charts.funnel(result.steps), result.steps


def _campaign_roi(store: Store, pin: home.Pin, filters: Filters, out: PinContent) -> None:
    from crm_core.figures import insight_charts

    model, lookback_days = campaign_options(pin)
    roi = campaigns.campaign_roi(store, filters, model, lookback_days)
    if roi.empty:
        out.empty = "No campaigns ran in this period."
        return
    out.figure, out.table = insight_charts.roi_bars(roi), roi


def _nps_trend(store: Store, pin: home.Pin, filters: Filters, out: PinContent) -> None:
    from crm_core.figures import insight_charts

    if not surveys.has_responses(store):
        out.empty = "No survey answers yet."
        return
    trend = surveys.monthly_trend(store, filters)
    out.figure, out.table = insight_charts.score_trend(trend, "nps", pin.title), trend


COMPUTE: dict[tuple[str, str], _Computer] = {
    **{("overview", name): _kpi for name in metrics.METRICS},
    ("overview", "revenue_trend"): _revenue_trend,
    ("overview", "cohort_retention"): _cohorts,
    ("segmentation", "rfm_treemap"): _rfm_treemap,
    ("churn", "risk_bands"): _risk_bands,
    ("clv", "clv_histogram"): _clv_histogram,
    ("funnels", "event_funnel"): _event_funnel,
    ("campaigns", "campaign_roi"): _campaign_roi,
    ("surveys", "nps_trend"): _nps_trend,
}
"""How each pinnable item (crm_core.home.PINNABLE) computes what it shows."""


def content(store: Store, pin: home.Pin, latest: Filters | None = None) -> PinContent:
    """What `pin` shows now, with its own filters and settings (`latest`: the store's
    default filters, read when not given). Never raises for one pin: a model that is not
    ready or an analysis error becomes the pin's `empty` sentence."""
    latest = latest if latest is not None else default_filters(store)
    filters = pin_filters(pin, latest)
    out = PinContent(pin, filters)
    compute = COMPUTE.get((pin.view, pin.item))
    if compute is None:
        out.empty = f"{pin.title} can no longer be pinned ({pin.view}/{pin.item}); remove it."
    elif filters is None:
        out.empty = "No orders in the store yet."
    else:
        try:
            compute(store, pin, filters, out)
        except clv.NotReadyError as exc:
            out.empty = "Not enough data for this model yet: " + "; ".join(exc.problems)
        except CRMError as exc:
            out.empty = str(exc)
    return out


def home_contents(store: Store, user: auth.User) -> list[PinContent]:
    """What `user`'s Home page shows now, pin by pin (their own pins, or their role's
    published default; views their role may not open are left out)."""
    latest = default_filters(store)
    contents = []
    kpis: dict[Filters, dict[str, metrics.KPIValue]] = {}  # every KPI of a filter at once
    for pin in home.pins_for(store, user):
        filters = pin_filters(pin, latest)
        if COMPUTE.get((pin.view, pin.item)) is _kpi and filters is not None:
            if filters not in kpis:
                kpis[filters] = metrics.compute_kpis(store, filters)
            item = PinContent(pin, filters)
            _kpi(store, pin, filters, item, kpis[filters])
            contents.append(item)
        else:
            contents.append(content(store, pin, latest))
    return contents
