"""Monthly cohort retention: the share of each first-purchase cohort still buying N months on."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from crm_core.filters import Filters, completed_orders_where, month_end
from crm_core.schema import orders
from crm_core.store import Store


def _month_index(column: sa.ColumnElement) -> sa.ColumnElement:
    """Months since year 0, so that differences count calendar months (portable SQL)."""
    return sa.extract("year", column) * 12 + sa.extract("month", column)


def cohort_retention(store: Store, filters: Filters, max_months: int = 12) -> pd.DataFrame:
    """Rows: month of the first purchase, for customers whose first purchase falls in the
    period (the New customers KPI counts the same people); columns: months since (0..12).

    Values are shares of the cohort's customers with a completed order in that month;
    month 0 is 1.0 by definition. Cells after the period's end are missing, not zero. A
    cohort month the period covers only in part is labelled "(partial)".
    """
    scope = [*completed_orders_where(filters), orders.c.ordered_at < filters.end_ts]
    first = (
        sa.select(orders.c.customer_id, sa.func.min(orders.c.ordered_at).label("first_at"))
        .where(*scope)
        .group_by(orders.c.customer_id)
        .having(sa.func.min(orders.c.ordered_at) >= filters.start_ts)
        .subquery("first_purchase")
    )
    activity = (
        sa.select(orders.c.customer_id, _month_index(orders.c.ordered_at).label("month_index"))
        .where(*scope)
        .distinct()
        .subquery("activity")
    )
    cohort_index = _month_index(first.c.first_at)
    offset = (activity.c.month_index - cohort_index).label("months_since")
    stmt = (
        sa.select(cohort_index.label("cohort_index"), offset, sa.func.count().label("customers"))
        .join_from(activity, first, activity.c.customer_id == first.c.customer_id)
        .where(offset <= max_months)
        .group_by(cohort_index, offset)
    )
    counts = store.read_df(stmt)
    if counts.empty:
        return pd.DataFrame()
    counts["cohort_index"] = counts["cohort_index"].astype(int)
    counts["months_since"] = counts["months_since"].astype(int)
    grid = counts.pivot_table(
        index="cohort_index", columns="months_since", values="customers", aggfunc="sum"
    )
    sizes = grid[0]
    shares = grid.reindex(columns=range(max_months + 1)).div(sizes, axis=0).fillna(0.0)
    end_index = filters.end.year * 12 + filters.end.month
    future = shares.index.to_numpy()[:, None] + shares.columns.to_numpy()[None, :] > end_index
    shares = shares.mask(future)
    start_index = filters.start.year * 12 + filters.start.month
    partial = {start_index} if filters.start.day > 1 else set()
    if filters.end != month_end(filters.end):
        partial.add(end_index)
    shares.index = [
        f"{(i - 1) // 12:04d}-{(i - 1) % 12 + 1:02d}" + (" (partial)" if i in partial else "")
        for i in shares.index.astype(int)
    ]
    shares.index.name = "cohort"
    shares.columns.name = "months_since_first_purchase"
    shares.insert(0, "customers", sizes.astype(int).to_numpy())
    return shares
