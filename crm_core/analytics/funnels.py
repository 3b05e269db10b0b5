"""Funnels counted by customer: web/app event funnels and the lead lifecycle funnel.

Event funnel: a customer enters at their first event of the first step in the period.
In strict order each next step must come after the previous one; in any order the steps may
happen in any sequence after entry. Every step must happen within the conversion window
after entry. The first matching event is taken at each step (as most analytics tools do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crm_core import features
from crm_core.errors import CRMError
from crm_core.filters import Filters, customer_scope
from crm_core.schema import EVENT_TYPES, LEAD_STAGES, customers, events, leads
from crm_core.store import Store

EVENT_SOURCE_TABLES = ("events", "customers", "orders")
"""What the event funnel reads (events; customers and orders for the filter scope)."""

DEFAULT_STEPS = ("visit", "product_view", "add_to_cart", "checkout", "purchase")
ORDERS = ("strict", "any")
MIN_STEPS, MAX_STEPS = 2, 10
FUNNEL_BREAKDOWNS = ("channel", "country", "RFM segment")
"""channel: where the customer entered the funnel; country: the customer's country;
RFM segment: the customer's segment today."""

LEAD_FUNNEL = ("lead", "mql", "sql", "opportunity", "won")
LOST_REACHED = "sql"
"""Lost leads count as having reached the stages up to SQL (where a deal is valued)."""


@dataclass
class FunnelResult:
    """Step counts, per-customer progress, and the SQL that selected the events."""

    steps: pd.DataFrame
    customers: pd.DataFrame
    sql: str
    step_names: list[str] = field(default_factory=list)

    @property
    def overall_conversion(self) -> float | None:
        """Share of entrants who reached the last step."""
        entered = int(self.steps["customers"].iloc[0]) if len(self.steps) else 0
        return None if entered == 0 else float(self.steps["customers"].iloc[-1]) / entered

    def dropped_at(self, step: int) -> list[int]:
        """Customers who reached step `step` (1-based) but not the next one."""
        reached = self.customers["reached"]
        return self.customers.loc[reached == step, "customer_id"].astype(int).tolist()


def validate_steps(steps: list[str], order: str, window_days: int) -> None:
    """Raise CRMError naming what is wrong with a funnel definition."""
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise CRMError(
            f"A funnel needs {MIN_STEPS} to {MAX_STEPS} steps; got {len(steps)}. "
            "Add or remove steps."
        )
    unknown = [s for s in steps if s not in EVENT_TYPES]
    if unknown:
        raise CRMError(f"Unknown event type {unknown[0]!r}; allowed: {', '.join(EVENT_TYPES)}.")
    if order not in ORDERS:
        raise CRMError(f"Unknown step order {order!r}; allowed: {', '.join(ORDERS)}.")
    if window_days < 1:
        raise CRMError(f"The conversion window must be at least 1 day; got {window_days}.")


def progress_query(
    steps: list[str], filters: Filters, *, order: str = "strict", window_days: int = 7
) -> sa.Select:
    """One row per customer who entered the funnel: customer_id, entered_at, channel (of
    entry), t1..tN (when each step was reached, NULL if not) and `reached` (the last step
    reached, 1..N). The one definition of the event funnel: the view counts it, and segment
    rules (`dropped_after`, `reached`) select customers from it.

    Entry: the customer's first event of step 1 in the period. Strict order: each next step
    is the first event of its type at or after the previous step (strictly after when it is
    the same event type); any order: the first event of each type from entry on. Every step
    must happen within the conversion window after entry.
    """
    window = sa.literal(timedelta(days=window_days), sa.Interval())
    first = (
        sa.select(
            events.c.customer_id,
            events.c.occurred_at,
            events.c.channel,
            sa.func.row_number()
            .over(
                partition_by=events.c.customer_id,
                order_by=(events.c.occurred_at, events.c.event_id),
            )
            .label("nth"),
        )
        .where(
            events.c.event_type == steps[0],
            events.c.occurred_at >= filters.start_ts,
            events.c.occurred_at < filters.end_ts,
            *customer_scope(events.c.customer_id, filters),
        )
        .subquery("funnel_first")
    )
    entry = (
        sa.select(first.c.customer_id, first.c.occurred_at.label("entered_at"), first.c.channel)
        .where(first.c.nth == 1)
        .cte("funnel_entry", nesting=True)
    )
    later = events.alias("later")
    times: list[sa.ColumnElement] = [entry.c.entered_at]
    joined: sa.FromClause = entry
    if order == "strict":
        previous = entry
        previous_time = entry.c.entered_at
        for i, step in enumerate(steps[1:], start=2):
            after = (
                later.c.occurred_at > previous_time
                if step == steps[i - 2]
                else later.c.occurred_at >= previous_time
            )
            stage = (
                sa.select(
                    previous.c.customer_id,
                    previous.c.entered_at,
                    sa.func.min(later.c.occurred_at).label("t"),
                )
                .join_from(previous, later, later.c.customer_id == previous.c.customer_id)
                .where(
                    later.c.event_type == step,
                    after,
                    later.c.occurred_at <= previous.c.entered_at + window,
                )
                .group_by(previous.c.customer_id, previous.c.entered_at)
                .cte(f"funnel_step_{i}", nesting=True)
            )
            joined = joined.outerjoin(stage, stage.c.customer_id == entry.c.customer_id)
            times.append(stage.c.t)
            previous, previous_time = stage, stage.c.t
    else:
        firsts = (
            sa.select(
                entry.c.customer_id,
                *[
                    sa.func.min(sa.case((later.c.event_type == step, later.c.occurred_at))).label(
                        f"a{i}"
                    )
                    for i, step in enumerate(steps[1:], start=2)
                ],
            )
            .join_from(entry, later, later.c.customer_id == entry.c.customer_id)
            .where(
                later.c.event_type.in_(sorted(set(steps[1:]))),
                later.c.occurred_at >= entry.c.entered_at,
                later.c.occurred_at <= entry.c.entered_at + window,
            )
            .group_by(entry.c.customer_id)
            .cte("funnel_firsts", nesting=True)
        )
        joined = joined.outerjoin(firsts, firsts.c.customer_id == entry.c.customer_id)
        present: list[sa.ColumnElement[bool]] = []
        for i in range(2, len(steps) + 1):
            present.append(firsts.c[f"a{i}"].is_not(None))
            times.append(sa.case((sa.and_(*present), firsts.c[f"a{i}"])))
    reached = sa.case(*[(times[i - 1].is_not(None), i) for i in range(len(steps), 1, -1)], else_=1)
    return sa.select(
        entry.c.customer_id,
        entry.c.entered_at,
        entry.c.channel,
        *[t.label(f"t{i}") for i, t in enumerate(times, start=1)],
        reached.label("reached"),
    ).select_from(joined)


def customers_query(
    steps: list[str],
    filters: Filters,
    *,
    order: str = "strict",
    window_days: int = 7,
    dropped_after: int | None = None,
    reached: int | None = None,
) -> sa.Select:
    """customer_id of the funnel's customers who dropped after step `dropped_after` (reached
    it, not the next one) or who reached step `reached` (or further): for segment rules."""
    progress = progress_query(steps, filters, order=order, window_days=window_days).subquery(
        "funnel_progress"
    )
    stmt = sa.select(progress.c.customer_id)
    if dropped_after is not None:
        stmt = stmt.where(progress.c.reached == dropped_after)
    if reached is not None:
        stmt = stmt.where(progress.c.reached >= reached)
    return stmt


def event_funnel(
    store: Store,
    filters: Filters,
    steps: list[str],
    *,
    order: str = "strict",
    window_days: int = 7,
) -> FunnelResult:
    """Customers reaching each step, conversion and drop-off, median time between steps."""
    validate_steps(steps, order, window_days)
    query = progress_query(steps, filters, order=order, window_days=window_days)
    progress = store.read_df(query.order_by(sa.text("customer_id")))
    sql = str(query.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": False}))
    for column in ["entered_at", *[f"t{i}" for i in range(1, len(steps) + 1)]]:
        progress[column] = pd.to_datetime(progress[column])
    progress["reached"] = progress["reached"].astype("int64")
    for i in range(2, len(steps) + 1):
        if f"t{i}" not in progress:
            progress[f"t{i}"] = pd.NaT
    rows = []
    for i, step in enumerate(steps, start=1):
        count = int((progress["reached"] >= i).sum())
        previous = rows[-1]["customers"] if rows else count
        if i == 1:
            median_minutes = None
        else:
            gap = (progress[f"t{i}"] - progress[f"t{i - 1}"]).dropna()
            median_minutes = float(gap.dt.total_seconds().median() / 60) if len(gap) else None
        rows.append(
            {
                "step": i,
                "event_type": step,
                "customers": count,
                "conversion_from_start": count / rows[0]["customers"]
                if rows and rows[0]["customers"]
                else (1.0 if count else None),
                "conversion_from_previous": count / previous if previous else None,
                "dropped": previous - count,
                "median_minutes_from_previous": median_minutes,
            }
        )
    return FunnelResult(steps=pd.DataFrame(rows), customers=progress, sql=sql, step_names=steps)


def funnel_breakdown(store: Store, result: FunnelResult, by: str) -> pd.DataFrame:
    """Customers reaching each step per value of `by` (channel of entry or country)."""
    if by not in FUNNEL_BREAKDOWNS:
        raise CRMError(f"Unknown breakdown {by!r}; allowed: {', '.join(FUNNEL_BREAKDOWNS)}.")
    progress = result.customers
    if by != "channel":
        if by == "country":
            column = customers.c.country
        else:
            features.ensure_fresh(store)
            column = features.customer_360.c.rfm_segment
        values = store.read_df(
            sa.select(column.table.c.customer_id, column.label(by)).where(
                column.table.c.customer_id.in_(sa.bindparam("ids", expanding=True))
            ),
            {"ids": progress["customer_id"].astype(int).tolist() or [-1]},
        )
        progress = progress.merge(values, on="customer_id", how="left")
    group = progress[by].astype(object).fillna("(unknown)")
    table = {
        name: progress.groupby(group)["reached"].apply(lambda r, i=i: int((r >= i).sum()))
        for i, name in enumerate(result.step_names, start=1)
    }
    frame = pd.DataFrame(table)
    frame["conversion"] = frame.iloc[:, -1] / frame.iloc[:, 0].where(frame.iloc[:, 0] > 0)
    frame.index.name = by
    return frame.sort_values(frame.columns[0], ascending=False).reset_index()


def funnel_trend(result: FunnelResult) -> pd.DataFrame:
    """Entrants and overall conversion by month of entry."""
    progress = result.customers
    if progress.empty:
        return pd.DataFrame(columns=["month", "entered", "converted", "conversion"])
    month = progress["entered_at"].dt.to_period("M").dt.to_timestamp()
    last = len(result.step_names)
    trend = progress.groupby(month).agg(
        entered=("customer_id", "size"), converted=("reached", lambda r: int((r >= last).sum()))
    )
    trend["conversion"] = trend["converted"] / trend["entered"]
    trend.index.name = "month"
    return trend.reset_index()


def lead_funnel(store: Store, filters: Filters) -> pd.DataFrame:
    """Leads created in the period reaching each lifecycle stage, with conversion between."""
    rank = {stage: i for i, stage in enumerate(LEAD_FUNNEL)}
    created = store.read_df(
        sa.select(leads.c.stage).where(
            leads.c.created_at >= filters.start_ts, leads.c.created_at < filters.end_ts
        )
    )
    reached_rank = created["stage"].map(lambda s: rank.get(s, rank[LOST_REACHED]))
    rows = []
    for stage, i in rank.items():
        count = int((reached_rank >= i).sum())
        previous = rows[-1]["leads"] if rows else count
        rows.append(
            {
                "stage": stage,
                "leads": count,
                "conversion_from_previous": count / previous if previous else None,
            }
        )
    return pd.DataFrame(rows)


def lead_stage_ages(store: Store, filters: Filters) -> pd.DataFrame:
    """Open leads per stage and the median days they have spent in it (as of the last change)."""
    open_stages = [s for s in LEAD_STAGES if s not in ("won", "lost")]
    frame = store.read_df(
        sa.select(leads.c.stage, leads.c.stage_changed_at, leads.c.created_at).where(
            leads.c.created_at >= filters.start_ts,
            leads.c.created_at < filters.end_ts,
            leads.c.stage.in_(open_stages),
        )
    )
    as_of = store.scalar(sa.select(sa.func.max(leads.c.stage_changed_at)))
    if frame.empty or as_of is None:
        return pd.DataFrame(columns=["stage", "open_leads", "median_days_in_stage"])
    since = frame["stage_changed_at"].fillna(frame["created_at"])
    frame["days"] = (pd.Timestamp(as_of) - since).dt.total_seconds() / 86_400
    table = frame.groupby("stage")["days"].agg(open_leads="size", median_days_in_stage="median")
    return table.reindex(open_stages).dropna(how="all").reset_index()


def leads_by_source(store: Store, filters: Filters) -> pd.DataFrame:
    """Per lead source: leads, won, lost, win rate (won / closed), won and average deal value."""
    frame = store.read_df(
        sa.select(leads.c.source, leads.c.stage, leads.c.deal_value).where(
            leads.c.created_at >= filters.start_ts, leads.c.created_at < filters.end_ts
        )
    )
    if frame.empty:
        return pd.DataFrame(
            columns=["source", "leads", "won", "lost", "win_rate", "won_value", "avg_deal"]
        )
    frame["source"] = frame["source"].astype(object).fillna("(unknown)")
    won = frame["stage"] == "won"
    frame["won_value"] = np.where(won, frame["deal_value"].fillna(0), 0.0)
    table = frame.groupby("source").agg(
        leads=("stage", "size"),
        won=("stage", lambda s: int((s == "won").sum())),
        lost=("stage", lambda s: int((s == "lost").sum())),
        won_value=("won_value", "sum"),
    )
    closed = table["won"] + table["lost"]
    table["win_rate"] = table["won"] / closed.where(closed > 0)
    table["avg_deal"] = table["won_value"] / table["won"].where(table["won"] > 0)
    return table.sort_values("leads", ascending=False).reset_index()
