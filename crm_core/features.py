"""The customer 360 table: one row per customer with every field segments, models and exports use.

It is derived data, materialised in the store as ``customer_360`` by one INSERT ... SELECT
(rebuilt in one transaction), so a segment preview reads one table and never rescans the
orders. Contact details (names, e-mail, phone) are not copied: they are read from
customers where they are used (`CONTACT_FIELDS`). The columns are declared once in
`crm_core.schema` (with the other derived tables); the segment builder's allow-list of fields,
types and operators comes from that declaration.
"As of" is the day of the last completed order in the store, so recency makes sense on
historical data (the demo ends 2026-06-30).
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from crm_core import schema
from crm_core.analytics import rfm
from crm_core.filters import IS_PURCHASE, order_date_range
from crm_core.schema import (
    campaign_contacts,
    customer_recommendations,
    customer_scores,
    customers,
    orders,
    products,
    support_tickets,
    survey_responses,
)
from crm_core.store import Store, utcnow

RECENT_DAYS = 90
"""Window of the orders_90d and revenue_90d fields."""


customer_360 = schema.customer_360
"""One row per customer; derived, rebuilt by `refresh` (declared in crm_core.schema)."""
# The RFM segment names come from the RFM rules, which import crm_core.schema.
customer_360.c.rfm_segment.info["choices"] = rfm.SEGMENT_NAMES

customer_clusters = schema.customer_clusters
"""Cluster assignments saved from the segmentation page (kept across 360 rebuilds)."""

CONTACT_FIELDS: tuple[str, ...] = ("first_name", "last_name", "email", "phone")
"""Contact details: fields of the 360 view that are read from `customers` where they are
used (rules, samples, exports) and never copied into customer_360, so an erasure applies at
once and a rebuild writes no million unique strings (they were a quarter of its time)."""

FIELD_COLUMNS: dict[str, sa.Column] = {
    "customer_id": customer_360.c.customer_id,
    **{name: customers.c[name] for name in CONTACT_FIELDS},
    **{c.name: c for c in customer_360.columns if c.name != "customer_id"},
}
"""Every 360 field by name: customer_360's columns plus the contact details in customers."""

_FINGERPRINT_KEY = "customer_360_fingerprint"


def as_of_date(store: Store) -> date | None:
    """Day of the last completed order (None when there are no orders)."""
    span = order_date_range(store)
    return None if span is None else span[1]


def _average_order(monetary: sa.ColumnElement, frequency: sa.ColumnElement) -> sa.ColumnElement:
    """Spend per order to the cent, half a cent rounded up, alike on every engine: a DOUBLE
    quotient rounds 36.245 down on DuckDB (its binary value is 36.24499...) and up on Spark,
    so the cents are divided as whole numbers."""
    cents = sa.cast(monetary * 100, sa.BigInteger)
    orders_n = sa.func.nullif(frequency, 0)
    return sa.func.floor(sa.cast(2 * cents + orders_n, sa.Double) / (2 * orders_n)) / 100


def build_select(as_of: date) -> sa.Select:
    """The SELECT that computes every 360 field for every customer as of `as_of`."""
    end = datetime.combine(as_of + timedelta(days=1), time.min)
    recent = end - timedelta(days=RECENT_DAYS)
    done = sa.and_(IS_PURCHASE, orders.c.ordered_at < end)
    is_recent = orders.c.ordered_at >= recent
    totals = (
        sa.select(
            orders.c.customer_id,
            sa.func.min(orders.c.ordered_at).label("first_order_at"),
            sa.func.max(orders.c.ordered_at).label("last_order_at"),
            sa.func.count().label("frequency"),
            sa.func.sum(orders.c.amount).label("monetary"),
            sa.func.count().filter(is_recent).label("orders_90d"),
            sa.func.sum(orders.c.amount).filter(is_recent).label("revenue_90d"),
            sa.cast(
                sa.literal(as_of, sa.Date) - sa.cast(sa.func.max(orders.c.ordered_at), sa.Date),
                sa.Integer,
            ).label("recency_days"),
        )
        .where(done)
        .group_by(orders.c.customer_id)
        .cte("order_totals")
    )
    ords = rfm.scored(totals).subquery("ords")
    answered = survey_responses.c.answered_at < end
    latest_nps = (
        sa.select(
            survey_responses.c.customer_id,
            survey_responses.c.score,
            sa.func.row_number()
            .over(
                partition_by=survey_responses.c.customer_id,
                order_by=(survey_responses.c.answered_at.desc(), survey_responses.c.response_id),
            )
            .label("nth"),
        )
        .where(survey_responses.c.survey == "nps", answered)
        .subquery("nps_ranked")
    )
    nps = (
        sa.select(latest_nps.c.customer_id, latest_nps.c.score.label("nps_latest"))
        .where(latest_nps.c.nth == 1)
        .subquery("nps")
    )
    csat = (
        sa.select(
            survey_responses.c.customer_id,
            sa.func.avg(survey_responses.c.score).label("csat_avg"),
        )
        .where(survey_responses.c.survey == "csat", answered)
        .group_by(survey_responses.c.customer_id)
        .subquery("csat")
    )
    tickets = (
        sa.select(support_tickets.c.customer_id, sa.func.count().label("open_tickets"))
        .where(sa.func.coalesce(support_tickets.c.status, "open") != "closed")
        .group_by(support_tickets.c.customer_id)
        .subquery("tickets")
    )
    cc = campaign_contacts.c
    contacts = (
        sa.select(
            cc.customer_id,
            sa.func.count().label("campaigns_received"),
            sa.func.count(cc.opened_at).label("campaign_opens"),
            sa.func.count(cc.clicked_at).label("campaign_clicks"),
        )
        .where(cc.test_group == "treatment")
        .group_by(cc.customer_id)
        .subquery("contacts")
    )
    best = (
        sa.select(
            customer_recommendations.c.customer_id,
            products.c.name.label("next_best_product"),
        )
        .join(products, products.c.product_id == customer_recommendations.c.product_id)
        .where(customer_recommendations.c.rank == 1)
        .subquery("best")
    )
    ls = schema.lead_scores  # the leads open at the last lead scoring, with their customer
    open_leads = (
        sa.select(
            ls.c.customer_id,
            ls.c.win_probability.label("lead_score"),
            sa.func.row_number()
            .over(
                partition_by=ls.c.customer_id,
                order_by=(ls.c.created_at.desc(), ls.c.lead_id.desc()),
            )
            .label("nth"),
        )
        .where(ls.c.customer_id.is_not(None))
        .subquery("open_leads_ranked")
    )
    latest_lead = (
        sa.select(open_leads.c.customer_id, open_leads.c.lead_score)
        .where(open_leads.c.nth == 1)
        .subquery("latest_lead")
    )
    cid = customers.c.customer_id
    zero = sa.literal(0)
    fields = {
        "customer_id": cid,
        **{c.name: customers.c[c.name] for c in customer_360.columns if c.name in customers.c},
        "first_order_at": ords.c.first_order_at,
        "last_order_at": ords.c.last_order_at,
        "recency_days": ords.c.recency_days,
        "frequency": sa.func.coalesce(ords.c.frequency, zero),
        "monetary": sa.func.coalesce(ords.c.monetary, zero),
        "avg_order_value": _average_order(ords.c.monetary, ords.c.frequency),
        "orders_90d": sa.func.coalesce(ords.c.orders_90d, zero),
        "revenue_90d": sa.func.coalesce(ords.c.revenue_90d, zero),
        "tenure_days": sa.cast(
            sa.literal(as_of, sa.Date) - sa.cast(customers.c.signup_at, sa.Date), sa.Integer
        ),
        "r_score": ords.c.r_score,
        "f_score": ords.c.f_score,
        "m_score": ords.c.m_score,
        "rfm_score": ords.c.rfm_score,
        "rfm_segment": ords.c.rfm_segment,
        "cluster": customer_clusters.c.cluster,
        "nps_latest": nps.c.nps_latest,
        "csat_avg": csat.c.csat_avg,
        "open_tickets": sa.func.coalesce(tickets.c.open_tickets, zero),
        "campaigns_received": sa.func.coalesce(contacts.c.campaigns_received, zero),
        "campaign_opens": sa.func.coalesce(contacts.c.campaign_opens, zero),
        "campaign_clicks": sa.func.coalesce(contacts.c.campaign_clicks, zero),
        "clv": customer_scores.c.clv,
        "p_alive": customer_scores.c.p_alive,
        "churn_risk": customer_scores.c.churn_risk,
        "churn_band": customer_scores.c.churn_band,
        **{
            name: customer_scores.c[name]
            for name in (
                "p_purchase_7d",
                "p_purchase_30d",
                "p_purchase_90d",
                "next_purchase_from",
                "next_purchase_to",
            )
        },
        "next_best_product": best.c.next_best_product,
        "lead_score": latest_lead.c.lead_score,
        "as_of": sa.literal(as_of, sa.Date),
    }
    missing = {c.name for c in customer_360.columns} ^ set(fields)
    assert not missing, f"customer_360 columns and build fields differ: {missing}"
    joined = (
        customers.outerjoin(ords, ords.c.customer_id == cid)
        .outerjoin(customer_clusters, customer_clusters.c.customer_id == cid)
        .outerjoin(nps, nps.c.customer_id == cid)
        .outerjoin(csat, csat.c.customer_id == cid)
        .outerjoin(tickets, tickets.c.customer_id == cid)
        .outerjoin(contacts, contacts.c.customer_id == cid)
        .outerjoin(customer_scores, customer_scores.c.customer_id == cid)
        .outerjoin(latest_lead, latest_lead.c.customer_id == cid)
        .outerjoin(best, best.c.customer_id == cid)
    )
    columns = [fields[c.name].label(c.name) for c in customer_360.columns]
    return sa.select(*columns).select_from(joined)


SOURCE_TABLES: frozenset[str] = frozenset(
    {
        "customers",
        "orders",
        "campaign_contacts",
        "survey_responses",
        "support_tickets",
        "customer_scores",
        "customer_clusters",
        "lead_scores",
        "customer_recommendations",
    }
)
"""The tables customer_360 is built from: a write to any of them makes it stale."""


def _fingerprint(store: Store) -> str:
    """Counts and latest timestamps of the 360 sources: change with any import or scoring."""
    parts = [
        sa.select(sa.func.count(), sa.func.max(orders.c.ordered_at), sa.func.sum(orders.c.amount)),
        sa.select(sa.func.count(), sa.func.max(customers.c.signup_at)).select_from(customers),
        sa.select(sa.func.count(), sa.func.max(customer_scores.c.scored_at)),
        sa.select(sa.func.count(), sa.func.max(survey_responses.c.answered_at)),
        sa.select(sa.func.count(), sa.func.count(support_tickets.c.closed_at)),
        sa.select(sa.func.count(), sa.func.count(campaign_contacts.c.opened_at)),
        sa.select(sa.func.count(), sa.func.max(customer_clusters.c.saved_at)),
        sa.select(sa.func.count(), sa.func.max(schema.lead_scores.c.scored_at)),
    ]
    values = [store.read_df(p).iloc[0].tolist() for p in parts]
    values.append([as_of_date(store)])  # a future-dated order comes into range with time
    return json.dumps(values, default=str)


def _stored_fingerprint(store: Store) -> str | None:
    meta = schema.schema_meta
    with store.connect() as conn:
        return conn.execute(sa.select(meta.c.value).where(meta.c.key == _FINGERPRINT_KEY)).scalar()


def mark_stale(conn: sa.Connection) -> None:
    """Make the next ensure_fresh rebuild customer_360 (call inside an import or scoring)."""
    meta = schema.schema_meta
    conn.execute(meta.delete().where(meta.c.key == _FINGERPRINT_KEY))


def ensure_tables(store: Store) -> None:
    """Create customer_360, customer_clusters and customer_recommendations if the store lacks
    them (derived tables)."""
    if {"customer_360", "customer_clusters", "customer_recommendations"} <= store.table_names():
        return
    with store.begin() as conn:
        customer_360.create(conn, checkfirst=True)
        customer_clusters.create(conn, checkfirst=True)
        customer_recommendations.create(conn, checkfirst=True)


def refresh(store: Store) -> int:
    """Rebuild customer_360 in one transaction (after imports and scoring); returns its rows."""
    store.require_tables("customers", "orders")
    ensure_tables(store)
    as_of = as_of_date(store) or utcnow().date()
    fingerprint = _fingerprint(store)
    meta = schema.schema_meta

    def remember(conn: sa.Connection) -> None:
        conn.execute(meta.delete().where(meta.c.key == _FINGERPRINT_KEY))
        conn.execute(meta.insert().values(key=_FINGERPRINT_KEY, value=fingerprint))

    return store.rebuild_table(customer_360, build_select(as_of), after=remember)


def ensure_fresh(store: Store) -> bool:
    """Rebuild customer_360 when its sources changed since the last build; True if rebuilt."""
    store.require_tables("customers", "orders")
    ensure_tables(store)
    if _stored_fingerprint(store) == _fingerprint(store):
        return False
    refresh(store)
    return True


def field_kind(column: sa.Column) -> str:
    """number, text, boolean or date: what a segment rule may do with this 360 field."""
    type_ = column.type
    if isinstance(type_, sa.Boolean):
        return "boolean"
    if isinstance(type_, sa.Date | sa.DateTime):
        return "date"
    if isinstance(type_, sa.Integer | sa.Numeric | sa.Float):
        return "number"
    return "text"


def field_docs() -> list[dict[str, object]]:
    """Every 360 field, contact details included: kind, meaning, whether it is personal."""
    return [
        {
            "field": c.name,
            "kind": field_kind(c),
            "personal": bool(c.info.get("pii")),
            "meaning": c.info.get("doc", ""),
        }
        for c in FIELD_COLUMNS.values()
    ]
