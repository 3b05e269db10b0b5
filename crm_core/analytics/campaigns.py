"""Campaign ROI: multi-touch attribution of order revenue, and incrementality from controls.

A touch is a customer's contact with a campaign before an order: a message sent to the
treatment group (campaign_contacts.sent_at), a campaign-tagged event (open, click, visit)
or the order's own campaign tag. Each attribution model splits every attributed order's
amount over the touches inside the lookback window, so the credits of an order always sum
to its amount. Incrementality compares treatment with the held-out control group.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crm_core.filters import Filters, completed_orders_where
from crm_core.schema import campaign_contacts, campaigns, events, orders
from crm_core.store import Store

Z_95 = 1.959963984540054
TIME_DECAY_HALF_LIFE_DAYS = 7.0
"""Time decay: a touch this many days before the order counts half as much as one at it."""
POSITION_ENDS_SHARE = 0.4
"""Position-based: the first and the last touch get 40% each, the middle ones share 20%."""


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
        .where(orders.c.status == "completed")
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


def campaign_roi(
    store: Store, filters: Filters, model: str, lookback_days: int = 30
) -> pd.DataFrame:
    """Per campaign: spend, conversions, attributed revenue, ROI, ROAS, CPA, new customers."""
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
            campaigns.c.spend,
        ).where(
            campaigns.c.started_at < filters.end_ts,
            sa.or_(campaigns.c.ended_at.is_(None), campaigns.c.ended_at >= filters.start_ts),
        )
    )
    table = catalogue.merge(per_campaign, on="campaign_id", how="left").fillna(
        {"conversions": 0.0, "revenue": 0.0, "new_customers": 0.0}
    )
    spend = table["spend"].astype(float)
    table["roi"] = np.where(spend > 0, (table["revenue"] - spend) / spend.where(spend > 0), np.nan)
    table["roas"] = np.where(spend > 0, table["revenue"] / spend.where(spend > 0), np.nan)
    table["cpa"] = np.where(
        table["conversions"] > 0,
        spend / table["conversions"].where(table["conversions"] > 0),
        np.nan,
    )
    return table.sort_values("revenue", ascending=False).reset_index(drop=True)


def _diff_ci(mean_t: float, var_t: float, n_t: int, mean_c: float, var_c: float, n_c: int):
    diff = mean_t - mean_c
    if n_t < 2 or n_c < 2:
        return diff, None, None
    half = Z_95 * math.sqrt(var_t / n_t + var_c / n_c)
    return diff, diff - half, diff + half


def incrementality(store: Store, window_days: int = 30) -> pd.DataFrame:
    """Treatment against control for every campaign with a control group.

    Outcome: completed orders within `window_days` after the send. Gives conversion rates,
    revenue per customer, the absolute lift in conversion with a 95% interval (normal
    approximation), incremental revenue (lift in revenue per customer x treated customers)
    with its interval, and incremental ROI against the campaign's spend.
    """
    cc = campaign_contacts.c
    window = sa.bindparam("window", timedelta(days=window_days), type_=sa.Interval())
    per_customer = (
        sa.select(
            cc.campaign_id,
            cc.customer_id,
            cc.test_group,
            sa.func.count(orders.c.order_id).label("orders"),
            sa.func.coalesce(sa.func.sum(orders.c.amount), 0).label("revenue"),
        )
        .join_from(
            campaign_contacts,
            orders,
            sa.and_(
                orders.c.customer_id == cc.customer_id,
                orders.c.status == "completed",
                orders.c.ordered_at > cc.sent_at,
                orders.c.ordered_at <= cc.sent_at + window,
            ),
            isouter=True,
        )
        .group_by(cc.campaign_id, cc.customer_id, cc.test_group)
        .subquery("per_customer")
    )
    pc = per_customer.c
    converted = sa.case((pc.orders > 0, 1.0), else_=0.0)
    stmt = sa.select(
        pc.campaign_id,
        pc.test_group,
        sa.func.count().label("customers"),
        sa.func.avg(converted).label("conversion"),
        sa.func.avg(pc.revenue).label("revenue_per_customer"),
        sa.func.var_samp(pc.revenue).label("revenue_variance"),
    ).group_by(pc.campaign_id, pc.test_group)
    groups = store.read_df(stmt)
    if groups.empty or "control" not in set(groups["test_group"]):
        return pd.DataFrame()
    wide = groups.pivot(index="campaign_id", columns="test_group")
    wide.columns = [f"{metric}_{group}" for metric, group in wide.columns]
    wide = wide.dropna(subset=["customers_control", "customers_treatment"]).reset_index()
    catalogue = store.read_df(
        sa.select(campaigns.c.campaign_id, campaigns.c.name, campaigns.c.channel, campaigns.c.spend)
    )
    rows = []
    for row in wide.merge(catalogue, on="campaign_id").itertuples(index=False):
        n_t, n_c = int(row.customers_treatment), int(row.customers_control)
        p_t, p_c = float(row.conversion_treatment), float(row.conversion_control)
        lift, lift_low, lift_high = _diff_ci(p_t, p_t * (1 - p_t), n_t, p_c, p_c * (1 - p_c), n_c)
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
        spend = float(row.spend or 0)
        incremental = rev_diff * n_t
        rows.append(
            {
                "campaign_id": row.campaign_id,
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
                "spend": spend,
                "incremental_roi": (incremental - spend) / spend if spend else None,
            }
        )
    return pd.DataFrame(rows)
