"""The customer 360 profile: find a customer, then everything we know about them."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_core import display, features, privacy, segments
from crm_core.errors import NotAllowedError
from crm_core.filters import PURCHASE_STATUS
from crm_core.schema import (
    campaign_contacts,
    campaigns,
    customer_scores,
    customers,
    events,
    orders,
    support_tickets,
    survey_responses,
)
from crm_core.store import Store

SOURCE_TABLES = (
    "customers",
    "customer_scores",
    "orders",
    "events",
    "survey_responses",
    "support_tickets",
    "campaign_contacts",
    "campaigns",
)
"""What a customer's profile and history read."""

PROFILE_FIELDS = tuple(
    c.name
    for c in customers.columns
    if c.name not in ("customer_id", "first_name", "last_name", "erased_at")
    and not c.info.get("bookkeeping")
)
"""Customer columns the profile lists (the name is its heading)."""

SEARCH_LIMIT = 50
RECENT_EVENTS = 200


SEARCH_COLUMNS = ("customer_id", "first_name", "last_name", "email", "phone", "country")
MIN_PHONE_DIGITS = 6
"""A search text with at least this many digits (and more than an id) also matches phones."""


def _digits_only(column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.regexp_replace(sa.func.coalesce(column, ""), "[^0-9]", "", "g")


def search(store: Store, text: str, role: str, limit: int = SEARCH_LIMIT) -> pd.DataFrame:
    """Customers whose id equals `text`, or (for roles that see personal data) whose name,
    e-mail or phone contains it (any case); personal columns masked for other roles.

    Roles without personal data search by customer id only: finding someone by their
    e-mail would hand over the profile the masking is meant to keep from them.
    """
    text = text.strip()
    if not text:
        return pd.DataFrame(columns=list(SEARCH_COLUMNS))
    exact_id = customers.c.customer_id == int(text) if text.isdigit() else sa.false()
    conditions = [exact_id]
    if privacy.may_see_pii(role):
        pattern = f"%{text.lower()}%"
        full_name = sa.func.lower(
            sa.func.coalesce(customers.c.first_name, "")
            + " "
            + sa.func.coalesce(customers.c.last_name, "")
        )
        conditions += [sa.func.lower(customers.c.email).like(pattern), full_name.like(pattern)]
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) >= MIN_PHONE_DIGITS and not set(text) - set("0123456789+-() ."):
            conditions.append(_digits_only(customers.c.phone).like(f"%{digits}%"))
    elif not text.isdigit():
        raise NotAllowedError(
            f"Your role ({role}) may not search by name, e-mail or phone, "
            "which are personal data. Search by customer id (digits only) instead."
        )
    stmt = (
        sa.select(*(customers.c[name] for name in SEARCH_COLUMNS))
        .where(sa.or_(*conditions), customers.c.erased_at.is_(None))
        .order_by(sa.case((exact_id, 0), else_=1), customers.c.customer_id)
        .limit(limit)
    )
    return privacy.mask_pii(store.read_df(stmt), role)


def customer(store: Store, customer_id: int, role: str) -> dict | None:
    """The customer's profile and consent, with model scores when scoring has run; personal
    fields masked unless `role` may see them."""
    stmt = (
        sa.select(
            customers,
            customer_scores.c.clv,
            customer_scores.c.p_alive,
            customer_scores.c.churn_risk,
            customer_scores.c.churn_band,
            customer_scores.c.churn_reasons,
            customer_scores.c.p_purchase_7d,
            customer_scores.c.p_purchase_30d,
            customer_scores.c.p_purchase_90d,
            customer_scores.c.next_purchase_from,
            customer_scores.c.next_purchase_to,
            customer_scores.c.scored_at,
        )
        .join_from(
            customers,
            customer_scores,
            customers.c.customer_id == customer_scores.c.customer_id,
            isouter=True,
        )
        .where(customers.c.customer_id == customer_id)
    )
    frame = privacy.mask_pii(store.read_df(stmt), role)
    return None if frame.empty else frame.iloc[0].to_dict()


def history(store: Store, customer_id: int, role: str) -> dict[str, pd.DataFrame]:
    """Orders, recent events, survey answers, tickets and campaign contacts of one customer
    (survey comments only for roles that see personal data)."""
    orders_stmt = (
        sa.select(
            orders.c.order_id,
            orders.c.ordered_at,
            orders.c.amount,
            orders.c["items"],
            orders.c.channel,
            orders.c.category,
            orders.c.status,
            campaigns.c.name.label("campaign"),
        )
        .join_from(orders, campaigns, orders.c.campaign_id == campaigns.c.campaign_id, isouter=True)
        .where(orders.c.customer_id == customer_id)
        .order_by(orders.c.ordered_at.desc())
    )
    events_stmt = (
        sa.select(events.c.occurred_at, events.c.event_type, events.c.channel, events.c.session_id)
        .where(events.c.customer_id == customer_id)
        .order_by(events.c.occurred_at.desc())
        .limit(RECENT_EVENTS)
    )
    surveys_stmt = (
        sa.select(
            survey_responses.c.answered_at,
            survey_responses.c.survey,
            survey_responses.c.score,
            survey_responses.c.touchpoint,
            survey_responses.c.comment,
        )
        .where(survey_responses.c.customer_id == customer_id)
        .order_by(survey_responses.c.answered_at.desc())
    )
    tickets_stmt = (
        sa.select(
            support_tickets.c.opened_at,
            support_tickets.c.closed_at,
            support_tickets.c.channel,
            support_tickets.c.category,
            support_tickets.c.priority,
            support_tickets.c.status,
        )
        .where(support_tickets.c.customer_id == customer_id)
        .order_by(support_tickets.c.opened_at.desc())
    )
    contacts_stmt = (
        sa.select(
            campaigns.c.name.label("campaign"),
            campaigns.c.channel,
            campaign_contacts.c.sent_at,
            campaign_contacts.c.test_group,
            campaign_contacts.c.opened_at,
            campaign_contacts.c.clicked_at,
        )
        .join_from(
            campaign_contacts, campaigns, campaign_contacts.c.campaign_id == campaigns.c.campaign_id
        )
        .where(campaign_contacts.c.customer_id == customer_id)
        .order_by(campaign_contacts.c.sent_at.desc())
    )
    return {
        "orders": store.read_df(orders_stmt),
        "events": store.read_df(events_stmt),
        "surveys": privacy.mask_pii(store.read_df(surveys_stmt), role),
        "tickets": store.read_df(tickets_stmt),
        "campaigns": store.read_df(contacts_stmt),
    }


def monthly_spend(order_history: pd.DataFrame) -> pd.DataFrame:
    """Purchase value and count per month (`filters.IS_PURCHASE`), for the profile's chart."""
    done = order_history[order_history["status"].fillna(PURCHASE_STATUS) == PURCHASE_STATUS]
    if done.empty:
        return pd.DataFrame(columns=["month", "revenue", "orders"])
    month = done["ordered_at"].dt.to_period("M").dt.to_timestamp()
    table = done.groupby(month).agg(revenue=("amount", "sum"), orders=("order_id", "size"))
    table.index.name = "month"
    return table.reset_index()


def segment_facts(store: Store, customer_id: int) -> dict[str, object]:
    """The customer's RFM segment and score, saved cluster, and saved segments they are in."""
    features.ensure_fresh(store)
    table = features.customer_360
    stmt = sa.select(table.c.rfm_segment, table.c.rfm_score, table.c.cluster).where(
        table.c.customer_id == customer_id
    )
    row = store.row(stmt)
    facts = row._asdict() if row else {"rfm_segment": None, "rfm_score": None, "cluster": None}
    facts["segments"] = segments.segments_of(store, customer_id)
    return facts


def next_purchase_words(person: dict[str, Any]) -> str | None:
    """The profile's next-purchase line ("Next purchase expected 2 Jul - 8 Jul 2026 ..."),
    None before scoring."""
    chances = [person.get(f"p_purchase_{d}d") for d in (7, 30, 90)]
    if any(v is None or pd.isna(v) for v in chances):
        return None
    start, end = person.get("next_purchase_from"), person.get("next_purchase_to")
    if start is None or pd.isna(start):
        when = "unlikely: the chance of a purchase stays below 25% for two years"
    elif end is None or pd.isna(end):
        when = (
            f"even chances at best: 25% by {pd.Timestamp(start):%d %b %Y}, and below 75% for "
            "two years"
        )
    else:
        when = (
            f"most likely between {pd.Timestamp(start):%d %b} and {pd.Timestamp(end):%d %b %Y} "
            "(25% and 75% chance by then)"
        )
    odds = ", ".join(
        f"{display.format_share(v, 0)} within {d} days"
        for v, d in zip(chances, (7, 30, 90), strict=True)
    )
    return f"**Next purchase:** {when}; chance of buying {odds}."
