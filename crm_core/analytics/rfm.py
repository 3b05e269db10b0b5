"""RFM: recency, frequency and monetary value scored 1-5 by quintiles, and named segments.

Scores are tie-aware quintiles: ``score = 1 + floor(5 * (rank - 1) / n)`` with ``rank`` the
lowest rank of tied values (SQL ``RANK()``), so equal values always get equal scores and a
value shared by most customers (a single order, say) gives one score to all of them.
Recency is days since the last completed order up to the as-of date (whole history);
frequency and monetary count completed orders inside the chosen window. Every customer
with a completed order up to the as-of date gets exactly one segment: the first rule of
``RFM_SEGMENTS`` (an R x F rule table, in order of precedence) that matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd
import sqlalchemy as sa

from crm_core.filters import IS_PURCHASE, Filters, customer_scope
from crm_core.schema import orders
from crm_core.store import Store


@dataclass(frozen=True)
class SegmentRule:
    """One named RFM segment: inclusive ranges of R and F scores, and what it means."""

    name: str
    r: tuple[int, int]
    f: tuple[int, int]
    description: str

    def matches(self, r: int, f: int) -> bool:
        """Whether scores (r, f) fall in this rule's ranges."""
        return self.r[0] <= r <= self.r[1] and self.f[0] <= f <= self.f[1]


RFM_SEGMENTS: tuple[SegmentRule, ...] = (
    SegmentRule("Champions", (5, 5), (4, 5), "Bought very recently and buy often."),
    SegmentRule("Loyal", (3, 4), (4, 5), "Buy often; bought fairly recently."),
    SegmentRule("Potential loyalist", (4, 5), (2, 3), "Recent buyers with a few orders."),
    SegmentRule("New", (5, 5), (1, 1), "First order very recently."),
    SegmentRule("Promising", (4, 4), (1, 1), "Recent one-time buyers."),
    SegmentRule("Needs attention", (3, 3), (3, 3), "Average recency and frequency."),
    SegmentRule("About to sleep", (3, 3), (1, 2), "Below-average recency and frequency."),
    SegmentRule("Can't lose them", (1, 2), (5, 5), "Used to buy most often; long gone."),
    SegmentRule("At risk", (1, 2), (3, 4), "Bought often, but long ago."),
    SegmentRule("Hibernating", (2, 2), (1, 2), "Few orders, long ago."),
    SegmentRule("Lost", (1, 5), (1, 5), "Everyone else: lowest recency, few orders."),
)
"""The segment rule table in order of precedence: the first matching rule wins."""

SEGMENT_NAMES: tuple[str, ...] = tuple(rule.name for rule in RFM_SEGMENTS)

WINDOWS: dict[str, int | None] = {
    "All history": None,
    "Last 2 years": 730,
    "Last 12 months": 365,
    "Last 6 months": 182,
}
"""Windows for frequency and monetary value (None = all history, as in the 360 table)."""


def segment_for(r: int, f: int, rules: tuple[SegmentRule, ...] = RFM_SEGMENTS) -> str:
    """The segment of scores (r, f): the first rule that matches."""
    for rule in rules:
        if rule.matches(r, f):
            return rule.name
    raise ValueError(f"RFM rule table does not cover r={r}, f={f}")


def rule_table(rules: tuple[SegmentRule, ...] = RFM_SEGMENTS) -> pd.DataFrame:
    """The rule table as shown on the segmentation page."""
    return pd.DataFrame(
        {
            "precedence": range(1, len(rules) + 1),
            "segment": [r.name for r in rules],
            "R score": [f"{r.r[0]}-{r.r[1]}" if r.r[0] != r.r[1] else str(r.r[0]) for r in rules],
            "F score": [f"{r.f[0]}-{r.f[1]}" if r.f[0] != r.f[1] else str(r.f[0]) for r in rules],
            "meaning": [r.description for r in rules],
        }
    )


def quintile_scores(
    value: sa.ColumnElement, name: str, *, higher_is_better: bool = True
) -> sa.Subquery:
    """(value, score): the 1-5 tie-aware quintile score of each distinct `value` in its table.

    Grouping by value first sorts a few hundred distinct recencies or order counts instead
    of every customer: rank - 1 is the number of customers with a better-placed value.
    """
    order = value.asc() if higher_is_better else value.desc()
    customers = sa.func.count()
    ranked_before = sa.func.sum(customers).over(order_by=order) - customers
    share = ranked_before * 5.0 / sa.func.sum(customers).over()
    return (
        sa.select(
            value.label("value"), sa.cast(1 + sa.func.floor(share), sa.Integer).label("score")
        )
        .group_by(value)
        .subquery(name)
    )


def segment_case(
    r: sa.ColumnElement, f: sa.ColumnElement, rules: tuple[SegmentRule, ...] = RFM_SEGMENTS
) -> sa.ColumnElement:
    """SQL CASE that names the segment of scores (r, f), rules in order of precedence."""
    whens = [(sa.and_(r.between(*rule.r), f.between(*rule.f)), rule.name) for rule in rules]
    return sa.case(*whens, else_=sa.null())


def scored(totals: sa.CTE) -> sa.Select:
    """Per-customer aggregates with r/f/m scores, the 3-digit rfm_score and rfm_segment added.

    `totals` (a CTE: it is read four times) must have customer_id, recency_days, frequency
    and monetary; all of its columns come through.
    """
    t = totals.c
    # Ranked as DOUBLE: same order and ties as the cents, cheaper than a 128-bit decimal.
    monetary = sa.cast(t.monetary, sa.Double)
    r = quintile_scores(t.recency_days, "r_scores", higher_is_better=False)
    f = quintile_scores(t.frequency, "f_scores")
    m = quintile_scores(monetary, "m_scores")
    r_score, f_score, m_score = r.c.score, f.c.score, m.c.score
    return sa.select(
        totals,
        r_score.label("r_score"),
        f_score.label("f_score"),
        m_score.label("m_score"),
        (
            sa.cast(r_score, sa.String) + sa.cast(f_score, sa.String) + sa.cast(m_score, sa.String)
        ).label("rfm_score"),
        segment_case(r_score, f_score).label("rfm_segment"),
    ).select_from(
        totals.join(r, r.c.value == t.recency_days)
        .join(f, f.c.value == t.frequency)
        .join(m, m.c.value == monetary)
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min)


def order_aggregates(as_of: date, window_days: int | None = None) -> sa.Select:
    """Per customer with a completed order up to `as_of`: recency, frequency, monetary.

    Frequency and monetary count only orders in the last `window_days` days (None: all).
    """
    end = _day_start(as_of + timedelta(days=1))
    in_window = (
        sa.true()
        if window_days is None
        else orders.c.ordered_at >= _day_start(as_of - timedelta(days=window_days - 1))
    )
    last = sa.func.max(orders.c.ordered_at)
    return (
        sa.select(
            orders.c.customer_id,
            sa.cast(sa.literal(as_of, sa.Date) - sa.cast(last, sa.Date), sa.Integer).label(
                "recency_days"
            ),
            sa.func.sum(sa.case((in_window, 1), else_=0)).label("frequency"),
            sa.func.coalesce(sa.func.sum(sa.case((in_window, orders.c.amount), else_=0)), 0).label(
                "monetary"
            ),
        )
        .where(IS_PURCHASE, orders.c.ordered_at < end)
        .group_by(orders.c.customer_id)
    )


def rfm_scores(
    store: Store, as_of: date, window_days: int | None = None, filters: Filters | None = None
) -> pd.DataFrame:
    """One row per buyer: recency_days, frequency, monetary, r/f/m scores, rfm_segment.

    Scores are ranked over every buyer, so a customer's segment does not depend on the
    filter; `filters` (countries, channels) only chooses which customers are returned.
    """
    every_buyer = scored(order_aggregates(as_of, window_days).cte("rfm_aggregates")).subquery()
    stmt = sa.select(every_buyer)
    if filters is not None:
        stmt = stmt.where(*customer_scope(every_buyer.c.customer_id, filters))
    frame = store.read_df(stmt.order_by(every_buyer.c.customer_id))
    for col in ("recency_days", "frequency", "r_score", "f_score", "m_score"):
        frame[col] = frame[col].astype("int64")
    frame["monetary"] = frame["monetary"].astype(float)
    return frame


def segment_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Customers, share, revenue (monetary) and mean scores per segment, in rule order."""
    if scores.empty:
        return pd.DataFrame(columns=["segment", "customers", "share", "revenue", "avg_recency"])
    grouped = scores.groupby("rfm_segment", observed=True).agg(
        customers=("customer_id", "size"),
        revenue=("monetary", "sum"),
        avg_recency=("recency_days", "mean"),
        avg_frequency=("frequency", "mean"),
    )
    grouped = grouped.reindex([n for n in SEGMENT_NAMES if n in grouped.index])
    grouped["share"] = grouped["customers"] / grouped["customers"].sum()
    return grouped.rename_axis("segment").reset_index()


def rf_grid(scores: pd.DataFrame) -> pd.DataFrame:
    """Customers per (R score, F score): rows R 5..1, columns F 1..5."""
    grid = pd.crosstab(scores["r_score"], scores["f_score"])
    return grid.reindex(index=[5, 4, 3, 2, 1], columns=[1, 2, 3, 4, 5], fill_value=0)


def segment_moves(
    store: Store,
    as_of: date,
    window_days: int | None = None,
    compare_days: int = 90,
    filters: Filters | None = None,
) -> pd.DataFrame:
    """Each customer's segment `compare_days` before `as_of` and at `as_of`: customer_id,
    from_segment, to_segment ("No orders yet" when they had no order by the earlier date)."""
    now = rfm_scores(store, as_of, window_days, filters)[["customer_id", "rfm_segment"]]
    before = rfm_scores(store, as_of - timedelta(days=compare_days), window_days, filters)
    merged = now.merge(
        before[["customer_id", "rfm_segment"]],
        on="customer_id",
        how="left",
        suffixes=("", "_before"),
    )
    merged["rfm_segment_before"] = merged["rfm_segment_before"].fillna("No orders yet")
    return merged.rename(
        columns={"rfm_segment_before": "from_segment", "rfm_segment": "to_segment"}
    )[["customer_id", "from_segment", "to_segment"]]


def segment_movement(
    store: Store,
    as_of: date,
    window_days: int | None = None,
    compare_days: int = 90,
    filters: Filters | None = None,
) -> pd.DataFrame:
    """Customers by (segment `compare_days` before `as_of`, segment at `as_of`).

    Customers without an order by the earlier date come from "No orders yet".
    """
    moves = segment_moves(store, as_of, window_days, compare_days, filters)
    return (
        moves.groupby(["from_segment", "to_segment"], observed=True)
        .size()
        .rename("customers")
        .reset_index()
    )
