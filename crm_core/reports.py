"""Every view's figures as plain JSON-ready data, under the same filters as the app.

`python -m crm_core report VIEW --json` prints these; scripts, notebooks and tests read the
numbers the pages show without a browser. Each report says which filters it used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd

from crm_core import metrics
from crm_core.analytics import churn, clv, cohorts, funnels, rfm, surveys
from crm_core.errors import CRMError
from crm_core.filters import Filters
from crm_core.store import Store


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready rows (dates as ISO text, missing values as null)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _filters(filters: Filters) -> dict[str, Any]:
    return {
        "start": filters.start.isoformat(),
        "end": filters.end.isoformat(),
        "compare": filters.compare,
        "countries": list(filters.countries),
        "channels": list(filters.channels),
    }


def overview(store: Store, filters: Filters) -> dict[str, Any]:
    """KPIs against the comparison period, the revenue trend and the cohort grid."""
    kpis = metrics.kpis_as_dict(metrics.compute_kpis(store, filters), filters)
    grid = cohorts.cohort_retention(store, filters)
    return {
        **kpis,
        "trend": records(metrics.revenue_trend(store, filters)),
        "cohorts": records(grid.reset_index()) if not grid.empty else [],
    }


def segmentation(store: Store, filters: Filters, window_days: int | None = None) -> dict[str, Any]:
    """RFM as of the period's last day for the filter's customers: segment sizes, R x F grid."""
    scores = rfm.rfm_scores(store, filters.end, window_days, filters)
    grid = rfm.rf_grid(scores) if not scores.empty else pd.DataFrame()
    return {
        "as_of": filters.end.isoformat(),
        "window_days": window_days,
        "customers": len(scores),
        "segments": records(rfm.segment_summary(scores)),
        "rf_grid": {
            f"R{r}": {f"F{f}": int(grid.loc[r, f]) for f in grid.columns} for r in grid.index
        },
    }


def survey_report(store: Store, filters: Filters) -> dict[str, Any]:
    """NPS and CSAT with intervals, the monthly trend and the touchpoint breakdown."""
    summary = surveys.summary(store, filters)
    return {
        "scores": {
            name: {
                "value": s.value,
                "low": s.low,
                "high": s.high,
                "responses": s.responses,
            }
            for name, s in summary.items()
        },
        "trend": records(surveys.monthly_trend(store, filters)),
        "by_touchpoint": records(surveys.breakdown(store, filters, "touchpoint")),
    }


def funnel_report(
    store: Store,
    filters: Filters,
    steps: tuple[str, ...] = funnels.DEFAULT_STEPS,
    order: str = "strict",
    window_days: int = 7,
) -> dict[str, Any]:
    """The event funnel's steps (customers, conversion, drop-off) and the lead funnel."""
    result = funnels.event_funnel(store, filters, list(steps), order=order, window_days=window_days)
    return {
        "steps": records(result.steps),
        "order": order,
        "window_days": window_days,
        "leads": records(funnels.lead_funnel(store, filters)),
    }


def _model_end(store: Store, filters: Filters) -> date:
    """The last day the models may use: the period's end, or the filter's last order."""
    span = clv.data_span(store, filters)
    if span is None:
        raise CRMError("No completed orders in this filter: nothing to model.")
    return min(span[1], filters.end)


def clv_report(store: Store, filters: Filters) -> dict[str, Any]:
    """CLV model parameters and backtest over the filter's customers, data to the period end."""
    report = clv.analyse(
        store,
        clv.CLVSettings(
            observation_end=_model_end(store, filters),
            countries=filters.countries,
            channels=filters.channels,
        ),
    )
    return {**report.as_dict(), "customers": len(report.customers)}


def churn_report(store: Store, filters: Filters) -> dict[str, Any]:
    """Churn validation figures, drivers and risk bands as of the period's last day."""
    report = churn.analyse(
        store,
        churn.ChurnSettings(
            as_of=_model_end(store, filters),
            countries=filters.countries,
            channels=filters.channels,
        ),
    )
    return report.as_dict()


def campaign_report(store: Store, filters: Filters) -> dict[str, Any]:
    """Campaign ROI (last-touch, 30-day lookback) and incrementality under the filters."""
    from crm_core.analytics import campaigns

    return campaigns.report(store, filters)


REPORTS: dict[str, Callable[[Store, Filters], dict[str, Any]]] = {
    "overview": overview,
    "segmentation": segmentation,
    "campaigns": campaign_report,
    "surveys": survey_report,
    "funnels": funnel_report,
    "clv": clv_report,
    "churn": churn_report,
}
"""The views whose figures `report` prints, by name."""


def report(store: Store, view: str, filters: Filters) -> dict[str, Any]:
    """One view's figures under `filters`, with the filters it used."""
    if view not in REPORTS:
        raise CRMError(f"Unknown view {view!r}; choose one of: {', '.join(REPORTS)}.")
    if filters.end < filters.start:
        raise CRMError(f"--end {filters.end} is before --start {filters.start}.")
    figures = REPORTS[view](store, filters)
    return {"view": view, **figures, "filters": _filters(filters)}


def resolve_filters(
    default: Filters | None,
    start: date | None = None,
    end: date | None = None,
    countries: tuple[str, ...] = (),
    channels: tuple[str, ...] = (),
    compare: str = "previous",
) -> Filters:
    """The CLI's filters: the given days, else the app's default period (last 12 months)."""
    if default is None and (start is None or end is None):
        raise CRMError("The store has no orders; give --start and --end, or import orders.")
    base = default or Filters(start=start, end=end)
    return replace(
        base,
        start=start or base.start,
        end=end or base.end,
        countries=countries,
        channels=channels,
        compare=compare,
    )
