"""The shared filters every view honours (date range, countries, channels), as SQL clauses."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from crm_core.schema import customers, orders
from crm_core.store import Store


@dataclass(frozen=True)
class Filters:
    """Date range (inclusive days) plus optional countries and sales channels.

    Order-based figures keep only orders in the chosen channels; customer-based figures
    (surveys, cohorts) keep customers who ever bought through one of them. An empty tuple
    means "all".
    """

    start: date
    end: date
    countries: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        """Length of the period in days (both ends included)."""
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The period of equal length just before this one, same countries and channels."""
        return replace(
            self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1)
        )

    @property
    def start_ts(self) -> datetime:
        """First instant of the period."""
        return datetime.combine(self.start, time.min)

    @property
    def end_ts(self) -> datetime:
        """First instant after the period (exclusive bound)."""
        return datetime.combine(self.end + timedelta(days=1), time.min)


def completed_orders_where(filters: Filters) -> list[sa.ColumnElement[bool]]:
    """Conditions on `orders` for completed orders in the filters' countries and channels."""
    conditions: list[sa.ColumnElement[bool]] = [orders.c.status == "completed"]
    if filters.channels:
        conditions.append(orders.c.channel.in_(filters.channels))
    if filters.countries:
        conditions.append(
            orders.c.customer_id.in_(
                sa.select(customers.c.customer_id).where(customers.c.country.in_(filters.countries))
            )
        )
    return conditions


def customer_scope(column: sa.ColumnElement, filters: Filters) -> list[sa.ColumnElement[bool]]:
    """Conditions that keep rows whose customer `column` is in the filters' scope."""
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.countries:
        conditions.append(
            column.in_(
                sa.select(customers.c.customer_id).where(customers.c.country.in_(filters.countries))
            )
        )
    if filters.channels:
        conditions.append(
            column.in_(
                sa.select(orders.c.customer_id).where(orders.c.channel.in_(filters.channels))
            )
        )
    return conditions


def order_date_range(store: Store) -> tuple[date, date] | None:
    """First and last day with a completed order, or None when there are no orders."""
    stmt = sa.select(sa.func.min(orders.c.ordered_at), sa.func.max(orders.c.ordered_at)).where(
        orders.c.status == "completed"
    )
    with store.connect() as conn:
        first, last = conn.execute(stmt).one()
    if first is None:
        return None
    return first.date(), last.date()


def default_filters(store: Store, days: int = 365) -> Filters | None:
    """The last `days` days up to the last order (None when there are no orders)."""
    span = order_date_range(store)
    if span is None:
        return None
    first, last = span
    return Filters(start=max(first, last - timedelta(days=days - 1)), end=last)


def filter_options(store: Store) -> dict[str, list[str]]:
    """Distinct countries and order channels for the sidebar's choices."""
    with store.connect() as conn:
        countries = conn.execute(
            sa.select(customers.c.country)
            .where(customers.c.country.is_not(None))
            .distinct()
            .order_by(customers.c.country)
        ).scalars()
        country_list = list(countries)
        channels = conn.execute(
            sa.select(orders.c.channel)
            .where(orders.c.channel.is_not(None))
            .distinct()
            .order_by(orders.c.channel)
        ).scalars()
        return {"countries": country_list, "channels": list(channels)}
