"""Every KPI defined once: name, label, description, format, direction and formula.

Each KPI is a formula over one aggregate row per period. The rows come from two queries
(orders, surveys) that cover the current, previous and pre-previous periods in one scan,
so the overview's ten figures and their changes cost two queries, not twenty.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_core.filters import Filters, completed_orders_where, customer_scope
from crm_core.schema import orders, survey_responses
from crm_core.store import Store

NPS_PROMOTER_MIN = 9
"""NPS scores 9-10 are promoters."""
NPS_DETRACTOR_MAX = 6
"""NPS scores 0-6 are detractors (7-8 are passives)."""
CSAT_SATISFIED_MIN = 4
"""CSAT scores 4-5 (on 1-5) count as satisfied."""

PERIODS = ("current", "previous", "before_previous")


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not denominator or numerator is None:
        return None
    return float(numerator) / float(denominator)


@dataclass(frozen=True)
class Metric:
    """One KPI: how it is shown, what it means, and how it is computed from aggregates."""

    name: str
    label: str
    description: str
    format: str  # money | count | percent | score
    higher_is_better: bool
    formula: Callable[[Mapping[str, float]], float | None]


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(
            "revenue",
            "Revenue",
            "Sum of completed order amounts in the period (refunds and cancellations excluded).",
            "money",
            True,
            lambda a: a["revenue"],
        ),
        Metric(
            "orders",
            "Orders",
            "Number of completed orders in the period.",
            "count",
            True,
            lambda a: a["orders"],
        ),
        Metric(
            "aov",
            "Average order value",
            "Revenue divided by the number of completed orders.",
            "money",
            True,
            lambda a: _ratio(a["revenue"], a["orders"]),
        ),
        Metric(
            "active_customers",
            "Active customers",
            "Customers with at least one completed order in the period.",
            "count",
            True,
            lambda a: a["active"],
        ),
        Metric(
            "new_customers",
            "New customers",
            "Customers whose first completed order ever falls in the period.",
            "count",
            True,
            lambda a: a["new"],
        ),
        Metric(
            "repeat_purchase_rate",
            "Repeat rate",
            "Share of the period's active customers who placed two or more orders in it.",
            "percent",
            True,
            lambda a: _ratio(a["repeat"], a["active"]),
        ),
        Metric(
            "retention_rate",
            "Retention rate",
            "Share of customers active in the previous period of equal length who bought "
            "again in this one.",
            "percent",
            True,
            lambda a: _ratio(a["retained"], a["active_before"]),
        ),
        Metric(
            "churn_rate",
            "Churn rate",
            "Share of customers active in the previous period of equal length who did not "
            "buy in this one (1 - retention rate).",
            "percent",
            False,
            lambda a: (
                None
                if not a["active_before"]
                else 1.0 - float(a["retained"]) / float(a["active_before"])
            ),
        ),
        Metric(
            "nps",
            "NPS",
            f"Net Promoter Score: % promoters ({NPS_PROMOTER_MIN}-10) minus % detractors "
            f"(0-{NPS_DETRACTOR_MAX}) among NPS answers in the period; -100 to 100.",
            "score",
            True,
            lambda a: (
                None
                if not a["nps_n"]
                else 100.0 * (float(a["promoters"]) - float(a["detractors"])) / float(a["nps_n"])
            ),
        ),
        Metric(
            "csat",
            "CSAT",
            f"Customer satisfaction: share of CSAT answers (1-5) of {CSAT_SATISFIED_MIN} or 5 "
            "in the period.",
            "percent",
            True,
            lambda a: _ratio(a["satisfied"], a["csat_n"]),
        ),
    ]
}


@dataclass(frozen=True)
class KPIValue:
    """A KPI's value in the period, the previous period's, and the change between them."""

    name: str
    value: float | None
    previous: float | None

    @property
    def metric(self) -> Metric:
        """The KPI's definition."""
        return METRICS[self.name]

    @property
    def change(self) -> float | None:
        """Relative change for counts and money, absolute (points) for rates and scores."""
        if self.value is None or self.previous is None:
            return None
        if self.metric.format in ("percent", "score"):
            return self.value - self.previous
        if self.previous == 0:
            return None
        return (self.value - self.previous) / abs(self.previous)


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _period_bounds(filters: Filters) -> list[tuple[str, Filters]]:
    prev = filters.previous()
    return list(zip(PERIODS, [filters, prev, prev.previous()], strict=True))


def order_aggregates(store: Store, filters: Filters) -> dict[str, dict[str, float]]:
    """Order aggregates per period (current, previous, before_previous): totals in one scan
    grouped by period, per-customer counts (active, repeat, new, retained) in one GROUP BY
    customer of few columns."""
    periods = _period_bounds(filters)
    where = [*completed_orders_where(filters), orders.c.ordered_at < filters.end_ts]
    in_period = {
        name: sa.and_(orders.c.ordered_at >= p.start_ts, orders.c.ordered_at < p.end_ts)
        for name, p in periods
    }
    period = sa.case(*[(cond, name) for name, cond in in_period.items()]).label("period")
    totals = (
        sa.select(
            period,
            sa.func.sum(orders.c.amount).label("revenue"),
            sa.func.count().label("orders"),
        )
        .where(*where, orders.c.ordered_at >= periods[-1][1].start_ts)
        .group_by(period)
    )
    # Each order's period number (len(periods) = older): the periods are contiguous and the
    # WHERE bounds them above, so one comparison per period places it. The numbers are
    # inlined: DuckDB runs a FILTER on a bound number a fifth slower than on a constant.
    number = [sa.literal_column(str(i)) for i in range(len(periods) + 1)]
    period_no = sa.case(
        *[(orders.c.ordered_at >= p.start_ts, number[i]) for i, (_, p) in enumerate(periods)],
        else_=number[-1],
    )
    numbered = sa.select(orders.c.customer_id, period_no.label("no")).where(*where).subquery()
    per_customer = (
        sa.select(
            numbered.c.customer_id,
            *[
                sa.func.count().filter(numbered.c.no == number[i]).label(f"n_{name}")
                for i, name in enumerate([*in_period, "older"])
            ],
        )
        .group_by(numbered.c.customer_id)
        .subquery("per_customer")
    )
    pc = per_customer.c
    cols = []
    for i, (name, _period) in enumerate(periods):
        cols += [
            sa.func.count().filter(pc[f"n_{name}"] > 0).label(f"{name}__active"),
            sa.func.count().filter(pc[f"n_{name}"] >= 2).label(f"{name}__repeat"),
            # new: first order in the period, i.e. an order in it and none before it
            sa.func.count()
            .filter(
                pc[f"n_{name}"] > 0,
                pc.n_older == 0,
                *[pc[f"n_{earlier}"] == 0 for earlier, _ in periods[i + 1 :]],
            )
            .label(f"{name}__new"),
        ]
        if i + 1 < len(periods):
            before = periods[i + 1][0]
            cols += [
                sa.func.count().filter(pc[f"n_{before}"] > 0).label(f"{name}__active_before"),
                sa.func.count()
                .filter(pc[f"n_{name}"] > 0, pc[f"n_{before}"] > 0)
                .label(f"{name}__retained"),
            ]
    row = store.read_df(sa.select(*cols)).iloc[0].to_dict()
    for name, _ in periods:
        row[f"{name}__revenue"], row[f"{name}__orders"] = 0.0, 0
    for total in store.read_df(totals).itertuples():
        row[f"{total.period}__revenue"] = total.revenue
        row[f"{total.period}__orders"] = total.orders
    return _split_by_period(row)


def survey_aggregates(store: Store, filters: Filters) -> dict[str, dict[str, float]]:
    """NPS and CSAT answer counts per period (current, previous) in one scan."""
    sr = survey_responses.c
    periods = _period_bounds(filters)[:2]
    cols = []
    for name, period in periods:
        in_period = sa.and_(sr.answered_at >= period.start_ts, sr.answered_at < period.end_ts)
        nps = sa.and_(in_period, sr.survey == "nps")
        csat = sa.and_(in_period, sr.survey == "csat")
        cols += [
            _count_if(nps).label(f"{name}__nps_n"),
            _count_if(sa.and_(nps, sr.score >= NPS_PROMOTER_MIN)).label(f"{name}__promoters"),
            _count_if(sa.and_(nps, sr.score <= NPS_DETRACTOR_MAX)).label(f"{name}__detractors"),
            _count_if(csat).label(f"{name}__csat_n"),
            _count_if(sa.and_(csat, sr.score >= CSAT_SATISFIED_MIN)).label(f"{name}__satisfied"),
        ]
    stmt = sa.select(*cols).where(
        sr.answered_at >= periods[-1][1].start_ts,
        sr.answered_at < filters.end_ts,
        *customer_scope(sr.customer_id, filters),
    )
    row = store.read_df(stmt).iloc[0].to_dict()
    return _split_by_period(row)


def _split_by_period(row: Mapping[str, object]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, value in row.items():
        period, name = key.split("__", 1)
        out.setdefault(period, {})[name] = 0.0 if pd.isna(value) else float(value)
    return out


def compute_kpis(store: Store, filters: Filters) -> dict[str, KPIValue]:
    """Every KPI for the period and the one it is compared with (`Filters.comparison`: the
    period before, or the same days a year earlier)."""
    aggregates = order_aggregates(store, filters)
    surveys = survey_aggregates(store, filters)
    rows = {
        "current": {**aggregates["current"], **surveys["current"]},
        "previous": {**aggregates["previous"], **surveys["previous"]},
    }
    compared = filters.comparison()
    if compared != filters.previous():  # a year earlier, or the previous calendar month...
        rows["previous"] = {
            **order_aggregates(store, compared)["current"],
            **survey_aggregates(store, compared)["current"],
        }
    result = {}
    for name, metric in METRICS.items():
        values = []
        for period in ("current", "previous"):
            row = rows[period]
            row.setdefault("active_before", 0.0)
            row.setdefault("retained", 0.0)
            values.append(metric.formula(row))
        result[name] = KPIValue(name=name, value=values[0], previous=values[1])
    return result


def json_ready(value: Any) -> Any:
    """`value` with each float to 12 significant digits (in dicts and lists too), so that
    the last-bit noise of another engine's sum (1240886.3900000001) prints as 1240886.39."""
    if isinstance(value, float):
        return float(f"{value:.12g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    return value


def kpis_as_dict(kpis: Mapping[str, KPIValue], filters: Filters) -> dict:
    """KPIs as plain JSON-ready data (the CLI's --json and tests)."""
    return json_ready(
        {
            "start": filters.start.isoformat(),
            "end": filters.end.isoformat(),
            "compare": filters.compare,
            "previous_start": filters.comparison().start.isoformat(),
            "previous_end": filters.comparison().end.isoformat(),
            "countries": list(filters.countries),
            "channels": list(filters.channels),
            "kpis": {
                name: {
                    "label": k.metric.label,
                    "value": k.value,
                    "previous": k.previous,
                    "change": k.change,
                    "format": k.metric.format,
                    "description": k.metric.description,
                }
                for name, k in kpis.items()
            },
        }
    )


TREND_GRAINS = {"day": "D", "week": "W-SUN", "month": "M"}
"""Trend buckets and their pandas period frequency (weeks run Monday to Sunday, as
date_trunc's do)."""


def trend_grain(filters: Filters) -> str:
    """The bucket a period is drawn by: days up to a month, weeks up to half a year."""
    if filters.days <= 31:
        return "day"
    if filters.days <= 183:
        return "week"
    return "month"


def revenue_trend(store: Store, filters: Filters, grain: str | None = None) -> pd.DataFrame:
    """Revenue, orders and active customers per day, week or month of the period.

    Every bucket of the period is listed (zero when nothing was sold); `partial` marks a
    week or month the period covers only in part, so a chart can say so instead of drawing
    a short month as a slump.
    """
    grain = grain or trend_grain(filters)
    if grain not in TREND_GRAINS:
        raise ValueError(f"grain must be one of {', '.join(TREND_GRAINS)}")
    bucket = sa.func.date_trunc(grain, orders.c.ordered_at).label("period")
    stmt = (
        sa.select(
            bucket,
            sa.func.sum(orders.c.amount).label("revenue"),
            sa.func.count().label("orders"),
            sa.func.count(sa.distinct(orders.c.customer_id)).label("active_customers"),
        )
        .where(
            *completed_orders_where(filters),
            orders.c.ordered_at >= filters.start_ts,
            orders.c.ordered_at < filters.end_ts,
        )
        .group_by(bucket)
    )
    frame = store.read_df(stmt)
    frame["period"] = pd.to_datetime(frame["period"]).dt.tz_localize(None).dt.normalize()
    first = pd.Timestamp(filters.start).to_period(TREND_GRAINS[grain])
    buckets = pd.period_range(first, pd.Timestamp(filters.end), freq=first.freq)
    starts = buckets.start_time.normalize()
    frame = frame.set_index("period").reindex(starts, fill_value=0).rename_axis("period")
    frame = frame.reset_index()
    for col in ("revenue", "orders", "active_customers"):
        frame[col] = frame[col].astype(float)
    ends = buckets.end_time.normalize()
    frame["partial"] = (starts < pd.Timestamp(filters.start)) | (ends > pd.Timestamp(filters.end))
    frame["grain"] = grain
    return frame


def format_value(metric: Metric, value: float | None, currency: str = "$") -> str:
    """A KPI value as the overview shows it ("n/a" when there is no data)."""
    if value is None:
        return "n/a"
    if metric.format == "money":
        if abs(value) >= 1_000_000:
            return f"{currency}{value / 1_000_000:,.2f}M"
        if abs(value) >= 10_000:
            return f"{currency}{value / 1_000:,.1f}k"
        return f"{currency}{value:,.2f}"
    if metric.format == "count":
        return f"{value / 1_000_000:,.2f}M" if abs(value) >= 1_000_000 else f"{value:,.0f}"
    if metric.format == "percent":
        return f"{100 * value:.1f}%"
    return f"{value:.1f}"


def format_change(kpi: KPIValue) -> str | None:
    """The change as st.metric's delta text ("+3.2%", "-1.5 pts"), or None."""
    change = kpi.change
    if change is None:
        return None
    if kpi.metric.format == "percent":
        return f"{100 * change:+.1f} pts"
    if kpi.metric.format == "score":
        return f"{change:+.1f} pts"
    return f"{100 * change:+.1f}%"
