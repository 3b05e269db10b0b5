"""Campaign ROI: multi-touch attribution of order revenue, and incrementality from controls.

A touch is a customer's contact with a campaign before an order: a message sent to the
treatment group (campaign_contacts.sent_at), a campaign-tagged event (open, click, visit)
or the order's own campaign tag. Each attribution model splits every attributed order's
amount over the touches inside the lookback window, so the credits of an order always sum
to its amount. Incrementality compares treatment with the held-out control group.

Filters. Orders count inside the period and, under a country or channel filter, only those
of the slice (`completed_orders_where`), so attributed revenue is the slice's revenue. Spend
is scoped the same way (see `spend_shares`): a campaign's spend in a slice is its spend x
the slice's share of the campaign's contacts, so the country slices add up to the total.
Incrementality keeps the campaigns that overlap the period and the contacts whose customer
is in the filters' scope (`customer_scope`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crm_core.errors import CRMError
from crm_core.filters import IS_PURCHASE, Filters, completed_orders_where, customer_scope
from crm_core.schema import campaign_contacts, campaigns, events, orders
from crm_core.store import Store

Z_95 = 1.959963984540054
SOURCE_TABLES = ("campaigns", "campaign_contacts", "orders", "events", "customers")
"""What ROI and incrementality read."""

TIME_DECAY_HALF_LIFE_DAYS = 7.0
"""Time decay: a touch this many days before the order counts half as much as one at it."""
POSITION_ENDS_SHARE = 0.4
"""Position-based: the first and the last touch get 40% each, the middle ones share 20%."""
DEFAULT_MODEL = "last_touch"
"""The attribution model the view opens with."""


def _first_touch(touches: pd.DataFrame) -> np.ndarray:
    return (touches["rank"] == 0).to_numpy(dtype=float)


def _last_touch(touches: pd.DataFrame) -> np.ndarray:
    return (touches["rank"] == touches["touches"] - 1).to_numpy(dtype=float)


def _linear(touches: pd.DataFrame) -> np.ndarray:
    return np.ones(len(touches))


def _time_decay(touches: pd.DataFrame) -> np.ndarray:
    age_days = (touches["ordered_at"] - touches["touched_at"]).dt.total_seconds() / 86_400
    return np.power(0.5, age_days.to_numpy() / TIME_DECAY_HALF_LIFE_DAYS)


def _position_based(touches: pd.DataFrame) -> np.ndarray:
    n = touches["touches"].to_numpy()
    rank = touches["rank"].to_numpy()
    ends = (rank == 0) | (rank == n - 1)
    middle_share = (1 - 2 * POSITION_ENDS_SHARE) / np.maximum(n - 2, 1)
    weights = np.where(ends, POSITION_ENDS_SHARE, middle_share)
    return np.where(n == 1, 1.0, np.where(n == 2, 0.5, weights))


ATTRIBUTION_MODELS: dict[str, tuple[str, Callable[[pd.DataFrame], np.ndarray]]] = {
    "first_touch": ("First touch: all credit to the first campaign touch.", _first_touch),
    "last_touch": ("Last touch: all credit to the last campaign touch.", _last_touch),
    "linear": ("Linear: credit split equally over every touch.", _linear),
    "time_decay": (
        f"Time decay: touches closer to the order get more (half-life "
        f"{TIME_DECAY_HALF_LIFE_DAYS:g} days).",
        _time_decay,
    ),
    "position_based": (
        "Position-based (U-shaped): 40% first, 40% last, 20% shared by the middle touches.",
        _position_based,
    ),
}
"""Attribution model name -> (description, weights of each touch before normalising)."""


def _touch_sources() -> sa.Subquery:
    sends = sa.select(
        campaign_contacts.c.customer_id,
        campaign_contacts.c.campaign_id,
        campaign_contacts.c.sent_at.label("touched_at"),
    ).where(campaign_contacts.c.test_group == "treatment")
    tagged_events = sa.select(
        events.c.customer_id, events.c.campaign_id, events.c.occurred_at.label("touched_at")
    ).where(events.c.campaign_id.is_not(None))
    tagged_orders = sa.select(
        orders.c.customer_id, orders.c.campaign_id, orders.c.ordered_at.label("touched_at")
    ).where(orders.c.campaign_id.is_not(None))
    return sa.union_all(sends, tagged_events, tagged_orders).subquery("touches")


def order_touches(store: Store, filters: Filters, lookback_days: int = 30) -> pd.DataFrame:
    """Every (order, touch) pair with the touch in the lookback window before the order."""
    touches = _touch_sources()
    window = sa.bindparam("lookback", timedelta(days=lookback_days), type_=sa.Interval())
    first_order = (
        sa.select(orders.c.customer_id, sa.func.min(orders.c.ordered_at).label("first_at"))
        .where(IS_PURCHASE)
        .group_by(orders.c.customer_id)
        .subquery("first_order")
    )
    stmt = (
        sa.select(
            orders.c.order_id,
            orders.c.customer_id,
            orders.c.ordered_at,
            orders.c.amount,
            (orders.c.ordered_at == first_order.c.first_at).label("first_order"),
            touches.c.campaign_id,
            touches.c.touched_at,
        )
        .join_from(orders, touches, orders.c.customer_id == touches.c.customer_id)
        .join(first_order, first_order.c.customer_id == orders.c.customer_id)
        .where(
            *completed_orders_where(filters),
            orders.c.ordered_at >= filters.start_ts,
            orders.c.ordered_at < filters.end_ts,
            touches.c.touched_at <= orders.c.ordered_at,
            touches.c.touched_at >= orders.c.ordered_at - window,
        )
    )
    frame = store.read_df(stmt)
    frame = frame.sort_values(["order_id", "touched_at", "campaign_id"], kind="stable")
    frame["rank"] = frame.groupby("order_id").cumcount()
    frame["touches"] = frame.groupby("order_id")["order_id"].transform("size")
    return frame.reset_index(drop=True)


def attribute(touches: pd.DataFrame, model: str) -> pd.DataFrame:
    """Credit of each touch under `model`: credit sums to the order's amount per order."""
    if model not in ATTRIBUTION_MODELS:
        raise KeyError(model)
    result = touches.copy()
    weights = ATTRIBUTION_MODELS[model][1](result)
    total = pd.Series(weights, index=result.index).groupby(result["order_id"]).transform("sum")
    result["share"] = weights / total.to_numpy()
    result["credit"] = result["share"] * result["amount"]
    return result


SPEND_BASES: dict[str, str] = {
    "all": "no country or channel filter: the campaign's whole spend",
    "contacts": "share of the campaign's contacts (campaign_contacts) in the slice",
    "reach": "no contacts: share of the customers with a campaign-tagged event or order",
    "none": "no contacts and no tagged customers: the spend cannot be placed in a slice",
}
"""How a campaign's spend was split under the filters (the `spend_basis` column)."""

SPEND_RULE = (
    "Under a country or channel filter a campaign's spend is its spend x the slice's share "
    "of the campaign's contacts (the campaign_contacts rows, treatment and control, whose "
    "customer is in the filter: country of the customer; for a channel, customers who ever "
    "bought through it, as everywhere in the app). A campaign without contacts (paid search "
    "or social) is split by the customers it reached (campaign-tagged events and orders); "
    "one that reached nobody known keeps its spend only in the unfiltered view. Country "
    "slices add up to the total; channel slices overlap, since a customer can buy through "
    "several channels. A campaign that overlaps the period counts with its whole spend."
)
"""The spend rule in words, as the JSON report states it (the page's caption says the same)."""


def _overlapping(filters: Filters) -> sa.ColumnElement[bool]:
    """Campaigns whose started_at..ended_at intersects the period (open-ended: still running)."""
    return sa.and_(
        campaigns.c.started_at < filters.end_ts,
        sa.or_(campaigns.c.ended_at.is_(None), campaigns.c.ended_at >= filters.start_ts),
    )


def _audience() -> sa.Subquery:
    """(campaign, customer, basis): the contacts, or the tagged reach of a contactless one."""
    cc = campaign_contacts.c
    contacted = sa.select(
        cc.campaign_id, cc.customer_id, sa.literal_column("'contacts'").label("basis")
    )
    reached = sa.union(
        sa.select(events.c.campaign_id, events.c.customer_id).where(
            events.c.campaign_id.is_not(None), events.c.customer_id.is_not(None)
        ),
        sa.select(orders.c.campaign_id, orders.c.customer_id).where(
            orders.c.campaign_id.is_not(None), orders.c.customer_id.is_not(None)
        ),
    ).subquery("reached")
    reach_only = sa.select(
        reached.c.campaign_id, reached.c.customer_id, sa.literal_column("'reach'").label("basis")
    ).where(reached.c.campaign_id.not_in(sa.select(cc.campaign_id).distinct()))
    return sa.union_all(contacted, reach_only).subquery("audience")


def spend_shares(store: Store, filters: Filters) -> pd.DataFrame:
    """Per campaign: the share of its spend that falls in the filters' slice, and its basis.

    Spend in a slice = spend x (the campaign's contacts whose customer is in the filters'
    country and channel scope) / (all its contacts); see SPEND_RULE and SPEND_BASES. With no
    country or channel filter the share is 1 for every campaign; under a filter a campaign
    with no known audience gets share NaN (its spend is not placed in any slice).
    Columns: campaign_id, audience, in_scope, spend_share, spend_basis.
    """
    catalogue = store.read_df(sa.select(campaigns.c.campaign_id))
    if not filters.countries and not filters.channels:
        return catalogue.assign(
            audience=np.nan, in_scope=np.nan, spend_share=1.0, spend_basis="all"
        )
    audience = _audience()
    in_scope = sa.case((sa.and_(*customer_scope(audience.c.customer_id, filters)), 1), else_=0)
    counts = store.read_df(
        sa.select(
            audience.c.campaign_id,
            sa.func.max(audience.c.basis).label("spend_basis"),
            sa.func.count().label("audience"),
            sa.func.sum(in_scope).label("in_scope"),
        ).group_by(audience.c.campaign_id)
    )
    table = catalogue.merge(counts, on="campaign_id", how="left")
    table["audience"] = table["audience"].astype(float)
    table["in_scope"] = table["in_scope"].astype(float)
    known = table["audience"] > 0
    table["spend_share"] = np.where(
        known, table["in_scope"] / table["audience"].where(known), np.nan
    )
    table["spend_basis"] = table["spend_basis"].where(known, "none")
    return table[["campaign_id", "audience", "in_scope", "spend_share", "spend_basis"]]


def campaign_roi(
    store: Store, filters: Filters, model: str, lookback_days: int = 30
) -> pd.DataFrame:
    """Per campaign overlapping the period: sliced spend, conversions, revenue, ROI, ROAS, CPA.

    Revenue is attributed from the slice's completed orders in the period; `spend` is the
    campaign's spend in the slice (`total_spend` x `spend_share`, see `spend_shares`), and
    ROI, ROAS and CPA are computed from it (NaN where the spend is unknown or zero).
    """
    if model not in ATTRIBUTION_MODELS:
        raise CRMError(
            f"Attribution model {model!r} is not known; allowed: {', '.join(ATTRIBUTION_MODELS)}."
        )
    if lookback_days < 1:
        raise CRMError(f"The lookback window must be at least 1 day; got {lookback_days}.")
    credited = attribute(order_touches(store, filters, lookback_days), model)
    credited["new_customer_credit"] = credited["share"] * credited["first_order"].astype(float)
    per_campaign = (
        credited.groupby("campaign_id")
        .agg(
            conversions=("share", "sum"),
            revenue=("credit", "sum"),
            new_customers=("new_customer_credit", "sum"),
        )
        .reset_index()
    )
    catalogue = store.read_df(
        sa.select(
            campaigns.c.campaign_id,
            campaigns.c.name,
            campaigns.c.channel,
            campaigns.c.objective,
            campaigns.c.started_at,
            campaigns.c.spend.label("total_spend"),
        ).where(_overlapping(filters))
    )
    table = catalogue.merge(per_campaign, on="campaign_id", how="left").fillna(
        {"conversions": 0.0, "revenue": 0.0, "new_customers": 0.0}
    )
    table = table.merge(spend_shares(store, filters), on="campaign_id", how="left")
    table["total_spend"] = table["total_spend"].astype(float)
    table["spend"] = table["total_spend"] * table["spend_share"]
    spend = table["spend"]
    paid = spend > 0
    table["roi"] = np.where(paid, (table["revenue"] - spend) / spend.where(paid), np.nan)
    table["roas"] = np.where(paid, table["revenue"] / spend.where(paid), np.nan)
    converted = table["conversions"] > 0
    table["cpa"] = np.where(converted, spend / table["conversions"].where(converted), np.nan)
    return table.sort_values("revenue", ascending=False).reset_index(drop=True)


def roi_totals(table: pd.DataFrame) -> dict[str, Any]:
    """Totals of a `campaign_roi` table: sliced spend, revenue, ROI, conversions, unplaced spend.

    `unplaced_spend` is the spend of campaigns that could not be placed in the slice (basis
    "none"; they have no touches, hence no attributed revenue either).
    """
    spend = float(table["spend"].sum()) if len(table) else 0.0
    revenue = float(table["revenue"].sum()) if len(table) else 0.0
    unplaced = table["spend_share"].isna() if len(table) else pd.Series(dtype=bool)
    return {
        "campaigns": len(table),
        "spend": spend,
        "revenue": revenue,
        "roi": (revenue - spend) / spend if spend else None,
        "conversions": float(table["conversions"].sum()) if len(table) else 0.0,
        "unplaced_campaigns": int(unplaced.sum()),
        "unplaced_spend": float(table.loc[unplaced, "total_spend"].sum()) if len(table) else 0.0,
    }


def _diff_ci(mean_t: float, var_t: float, n_t: int, mean_c: float, var_c: float, n_c: int):
    diff = mean_t - mean_c
    if n_t < 2 or n_c < 2:
        return diff, None, None
    half = Z_95 * math.sqrt(var_t / n_t + var_c / n_c)
    return diff, diff - half, diff + half


def _wilson(successes: float, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion."""
    p = successes / n
    z2 = Z_95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return centre - half, centre + half


def proportion_diff_ci(p_t: float, n_t: int, p_c: float, n_c: int):
    """Difference of two proportions with Newcombe's hybrid score 95% interval (method 10
    of Newcombe 1998): unlike the normal approximation it stays honest when a group
    converts 0% or 100% or is small (0 of 25 in control is not a certain 0%)."""
    diff = p_t - p_c
    if n_t < 1 or n_c < 1:
        return diff, None, None
    low_t, high_t = _wilson(p_t * n_t, n_t)
    low_c, high_c = _wilson(p_c * n_c, n_c)
    low = diff - math.sqrt((p_t - low_t) ** 2 + (high_c - p_c) ** 2)
    high = diff + math.sqrt((high_t - p_t) ** 2 + (p_c - low_c) ** 2)
    return diff, low, high


def incrementality(store: Store, filters: Filters, window_days: int = 30) -> pd.DataFrame:
    """Treatment against control for every campaign with a control group, under the filters.

    Campaigns: those whose started_at..ended_at overlaps the period. Customers: their
    contacts whose customer is in the filters' country and channel scope (`customer_scope`).
    Outcome: completed orders (in the filters' channels, if any) within `window_days` after
    the send, which may run past the period's end; `outcome_complete` is False (and
    `outcome_days_observed` says how many days the data cover) when the window runs past
    the last day with data. Gives conversion rates, revenue per customer, the absolute lift
    in conversion with Newcombe's hybrid score 95% interval,
    incremental revenue (lift in revenue per customer x treated customers) with its
    interval, and incremental ROI against the campaign's spend in the slice (`spend_shares`).
    """
    if window_days < 1:
        raise CRMError(f"The outcome window must be at least 1 day; got {window_days}.")
    cc = campaign_contacts.c
    window = sa.bindparam("window", timedelta(days=window_days), type_=sa.Interval())
    outcome = [
        orders.c.customer_id == cc.customer_id,
        IS_PURCHASE,
        orders.c.ordered_at > cc.sent_at,
        orders.c.ordered_at <= cc.sent_at + window,
    ]
    if filters.channels:
        outcome.append(orders.c.channel.in_(filters.channels))
    per_customer = (
        sa.select(
            cc.campaign_id,
            cc.customer_id,
            cc.test_group,
            sa.func.max(cc.sent_at).label("sent_at"),
            sa.func.count(orders.c.order_id).label("orders"),
            # DOUBLE: the mean and variance below are then the same on every engine (Spark
            # rounds an average of DECIMAL to 6 places).
            sa.cast(sa.func.coalesce(sa.func.sum(orders.c.amount), 0), sa.Double).label("revenue"),
        )
        .join_from(campaign_contacts, orders, sa.and_(*outcome), isouter=True)
        .where(
            cc.campaign_id.in_(sa.select(campaigns.c.campaign_id).where(_overlapping(filters))),
            *customer_scope(cc.customer_id, filters),
        )
        .group_by(cc.campaign_id, cc.customer_id, cc.test_group)
        .subquery("per_customer")
    )
    pc = per_customer.c
    converted = sa.cast(sa.case((pc.orders > 0, 1), else_=0), sa.Double)  # Spark: 1.0 is DECIMAL
    stmt = sa.select(
        pc.campaign_id,
        pc.test_group,
        sa.func.max(pc.sent_at).label("last_sent_at"),
        sa.func.count().label("customers"),
        sa.func.avg(converted).label("conversion"),
        sa.func.avg(pc.revenue).label("revenue_per_customer"),
        sa.func.var_samp(pc.revenue).label("revenue_variance"),
    ).group_by(pc.campaign_id, pc.test_group)
    groups = store.read_df(stmt)
    if groups.empty or "control" not in set(groups["test_group"]):
        return pd.DataFrame()
    for column in ("customers", "conversion", "revenue_per_customer", "revenue_variance"):
        # PostgreSQL gives Decimal and None (var_samp of one row) where DuckDB gives floats.
        groups[column] = pd.to_numeric(groups[column], errors="coerce").astype(float)
    last_sent = pd.to_datetime(groups.groupby("campaign_id")["last_sent_at"].max())
    groups = groups.drop(columns=["last_sent_at"])
    wide = groups.pivot(index="campaign_id", columns="test_group")
    wide.columns = [f"{metric}_{group}" for metric, group in wide.columns]
    wide = wide.dropna(subset=["customers_control", "customers_treatment"]).reset_index()
    catalogue = store.read_df(
        sa.select(
            campaigns.c.campaign_id,
            campaigns.c.name,
            campaigns.c.channel,
            campaigns.c.spend.label("total_spend"),
        )
    ).merge(spend_shares(store, filters), on="campaign_id", how="left")
    last_purchase = sa.select(sa.func.max(orders.c.ordered_at)).where(IS_PURCHASE)
    last_order = store.read_df(last_purchase).iloc[0, 0]
    # no purchase at all (a lake without orders yet): no day after any send was observed
    data_end = (
        None
        if pd.isna(last_order)
        else pd.Timestamp(last_order).tz_localize(None).normalize() + pd.Timedelta(days=1)
    )
    rows = []
    for row in wide.merge(catalogue, on="campaign_id").itertuples(index=False):
        n_t, n_c = int(row.customers_treatment), int(row.customers_control)
        p_t, p_c = float(row.conversion_treatment), float(row.conversion_control)
        lift, lift_low, lift_high = proportion_diff_ci(p_t, n_t, p_c, n_c)
        rev_t, rev_c = (
            float(row.revenue_per_customer_treatment),
            float(row.revenue_per_customer_control),
        )
        rev_diff, rev_low, rev_high = _diff_ci(
            rev_t,
            float(np.nan_to_num(row.revenue_variance_treatment)),
            n_t,
            rev_c,
            float(np.nan_to_num(row.revenue_variance_control)),
            n_c,
        )
        total_spend = float(row.total_spend or 0)
        spend = total_spend * float(row.spend_share)
        incremental = rev_diff * n_t
        sent = last_sent[row.campaign_id]
        seen = 0.0 if data_end is None else (data_end - sent).total_seconds() / 86_400
        rows.append(
            {
                "campaign_id": int(row.campaign_id),
                "name": row.name,
                "channel": row.channel,
                "treatment_customers": n_t,
                "control_customers": n_c,
                "conversion_treatment": p_t,
                "conversion_control": p_c,
                "lift": lift,
                "lift_low": lift_low,
                "lift_high": lift_high,
                "relative_lift": lift / p_c if p_c else None,
                "revenue_per_customer_treatment": rev_t,
                "revenue_per_customer_control": rev_c,
                "incremental_revenue": incremental,
                "incremental_revenue_low": None if rev_low is None else rev_low * n_t,
                "incremental_revenue_high": None if rev_high is None else rev_high * n_t,
                "total_spend": total_spend,
                "spend_share": float(row.spend_share),
                "spend": spend,
                "incremental_roi": (incremental - spend) / spend if spend else None,
                "outcome_days_observed": max(0, min(window_days, int(seen))),
                "outcome_complete": seen >= window_days,
            }
        )
    return pd.DataFrame(rows)


ROI_COLUMNS = [
    "campaign_id",
    "name",
    "channel",
    "objective",
    "started_at",
    "total_spend",
    "spend_share",
    "spend_basis",
    "spend",
    "conversions",
    "revenue",
    "roi",
    "roas",
    "cpa",
    "new_customers",
]
"""The columns of the ROI table in the JSON report, in order."""


def _json_value(value: Any) -> Any:
    """One cell as plain JSON data: NaN/NaT -> None, numpy -> Python, times -> ISO text."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_rows(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts."""
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    return [
        {key: _json_value(value) for key, value in record.items()}
        for record in frame.to_dict("records")
    ]


def report(
    store: Store,
    filters: Filters,
    model: str = DEFAULT_MODEL,
    lookback_days: int = 30,
    window_days: int = 30,
) -> dict[str, Any]:
    """The campaign view's figures as JSON-ready data: filters, totals, ROI and lift rows."""
    roi = campaign_roi(store, filters, model, lookback_days)
    lift = incrementality(store, filters, window_days)
    return {
        "view": "campaigns",
        "filters": {
            "start": filters.start.isoformat(),
            "end": filters.end.isoformat(),
            "countries": list(filters.countries),
            "channels": list(filters.channels),
        },
        "model": model,
        "lookback_days": lookback_days,
        "window_days": window_days,
        "spend_rule": SPEND_RULE,
        "spend_bases": dict(SPEND_BASES),
        "totals": {key: _json_value(value) for key, value in roi_totals(roi).items()},
        "campaigns": _json_rows(roi, ROI_COLUMNS),
        "incrementality": _json_rows(lift),
    }
