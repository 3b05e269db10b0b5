"""The shared filters every view honours (date range, countries, channels), as SQL clauses."""

from __future__ import annotations

import calendar
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from crm_core.errors import CRMError
from crm_core.schema import customers, orders
from crm_core.store import Store, utcnow


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
    compare: str = "previous"
    """What changes are measured against: "previous" (the period before: the previous
    calendar month, quarter or year for those presets, else the days of equal length just
    before) or "year_ago" (the same days a year earlier)."""
    preset: str | None = None
    """The period preset the days came from (None: chosen by hand)."""

    @property
    def days(self) -> int:
        """Length of the period in days (both ends included)."""
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The period of equal length just before this one, same countries and channels."""
        return replace(
            self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1)
        )

    def year_ago(self) -> Filters:
        """The same days one year earlier (29 February becomes the 28th)."""
        return replace(self, start=_year_earlier(self.start), end=_year_earlier(self.end))

    def comparison(self) -> Filters:
        """The period changes are measured against, as chosen in `compare`: for a calendar
        preset the previous month, quarter or year (to the same day for "to date")."""
        if self.compare not in COMPARISONS:
            raise ValueError(f"compare must be one of {', '.join(COMPARISONS)}")
        if self.compare == "year_ago":
            return self.year_ago()
        months = CALENDAR_MONTHS.get(self.preset or "")
        if months is None:
            return self.previous()
        end = _shift_months(self.end, -months)
        if not self.preset.endswith("_to_date"):
            end = month_end(end)  # a whole month, quarter or year
        return replace(self, start=_shift_months(self.start, -months), end=end)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (ISO dates, lists), read back by `from_dict`."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "countries": list(self.countries),
            "channels": list(self.channels),
            "compare": self.compare,
            "preset": self.preset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Filters:
        """Filters from `to_dict`'s form (CRMError naming the bad key and value)."""
        try:
            filters = cls(
                start=date.fromisoformat(str(data["start"])),
                end=date.fromisoformat(str(data["end"])),
                countries=tuple(data.get("countries") or ()),
                channels=tuple(data.get("channels") or ()),
                compare=str(data.get("compare") or "previous"),
                preset=data.get("preset") or None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CRMError(
                f"Stored filters {dict(data)!r} cannot be read ({exc}); expected start and end "
                "as ISO dates, countries and channels as lists. Pin the item again."
            ) from exc
        if (
            filters.compare not in COMPARISONS
            or filters.preset not in (None, *PRESETS)
            or filters.start > filters.end
        ):
            raise CRMError(
                f"Stored filters {dict(data)!r}: compare must be one of "
                f"{', '.join(COMPARISONS)}, preset one of {', '.join(PRESETS)} or empty, and "
                "start not after end. Pin the item again."
            )
        return filters

    @property
    def start_ts(self) -> datetime:
        """First instant of the period."""
        return datetime.combine(self.start, time.min)

    @property
    def end_ts(self) -> datetime:
        """First instant after the period (exclusive bound)."""
        return datetime.combine(self.end + timedelta(days=1), time.min)


COMPARISONS = {
    "previous": "Previous period",
    "year_ago": "Same period last year",
}
"""Ways to compare a period, and how the pages say them."""


CALENDAR_MONTHS = {
    "month_to_date": 1,
    "last_month": 1,
    "quarter_to_date": 3,
    "last_quarter": 3,
    "year_to_date": 12,
    "last_year": 12,
}
"""Calendar presets, by how many months back their previous period lies."""


def _shift_months(day: date, months: int) -> date:
    first = _month_start(day, -months)
    return first.replace(day=min(day.day, month_end(first).day))


def _year_earlier(day: date) -> date:
    if day.month == 2 and day.day == 29:
        return date(day.year - 1, 2, 28)
    return day.replace(year=day.year - 1)


def _month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def month_end(day: date) -> date:
    """The last day of `day`'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


ONE_DAY = timedelta(days=1)

PRESETS: dict[str, str] = {
    "last_7_days": "Last 7 days",
    "last_30_days": "Last 30 days",
    "last_90_days": "Last 90 days",
    "last_12_months": "Last 12 months",
    "month_to_date": "Month to date",
    "quarter_to_date": "Quarter to date",
    "year_to_date": "Year to date",
    "last_month": "Last full month",
    "last_quarter": "Last full quarter",
    "last_year": "Last full year",
}
"""Period presets, all anchored on the store's last data day (not on today), so a store
whose data ends months ago still shows full periods. Default: last_12_months."""
DEFAULT_PRESET = "last_12_months"


def preset_range(preset: str, last_day: date) -> tuple[date, date]:
    """First and last day of `preset` for data that ends on `last_day` (both included).

    "Last full month/quarter/year" is the last one that ended on or before `last_day`.
    """
    if preset.startswith("last_") and preset.endswith("_days"):
        days = int(preset.split("_")[1])
        return last_day - timedelta(days=days - 1), last_day
    quarter_start = _month_start(last_day, (last_day.month - 1) % 3)
    if preset == "last_12_months":
        return last_day - timedelta(days=364), last_day
    if preset == "month_to_date":
        return last_day.replace(day=1), last_day
    if preset == "quarter_to_date":
        return quarter_start, last_day
    if preset == "year_to_date":
        return date(last_day.year, 1, 1), last_day
    if preset == "last_month":
        end = last_day if last_day == month_end(last_day) else last_day.replace(day=1) - ONE_DAY
        return end.replace(day=1), end
    if preset == "last_quarter":
        quarter_end = month_end(_month_start(quarter_start, -2))
        end = last_day if last_day == quarter_end else quarter_start - ONE_DAY
        return _month_start(end, 2), end
    if preset == "last_year":
        end = (
            last_day
            if (last_day.month, last_day.day) == (12, 31)
            else date(last_day.year - 1, 12, 31)
        )
        return date(end.year, 1, 1), end
    raise ValueError(f"unknown period preset {preset!r}; allowed: {', '.join(PRESETS)}")


def plural(count: int, noun: str) -> str:
    """A count with its noun: 1 day, 7 days."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def freshness(last_day: date, today: date) -> str:
    """How current the data is, e.g. "Data through 30 Jun 2026, 152 days before today"."""
    age = (today - last_day).days
    when = {0: "today", 1: "yesterday"}.get(age)
    if when is None:
        when = f"{age:,} days before today" if age > 0 else f"{-age:,} days after today"
    return f"Data through {last_day:%d %b %Y} ({when})."


PURCHASE_STATUS = "completed"
"""The order status that makes an order a purchase (see `IS_PURCHASE`)."""

IS_PURCHASE: sa.ColumnElement[bool] = sa.or_(
    orders.c.status == PURCHASE_STATUS, orders.c.status.is_(None)
)
"""Which orders count, defined once for every KPI, model and the 360 table: an order is a
purchase when its status is completed, or empty (a file imported without a status column
lists sales). Refunded and cancelled orders are not purchases: they add no revenue and no
order, and make no customer active or a repeat buyer (churn counts refunds as a feature of
their own). A purchase of zero value (free or fully discounted) counts as an order, a
purchase day and an active customer, and adds 0 to revenue and spend."""


def completed_orders_where(filters: Filters) -> list[sa.ColumnElement[bool]]:
    """Conditions on `orders` for purchases (`IS_PURCHASE`) in the filters' countries and
    channels."""
    conditions: list[sa.ColumnElement[bool]] = [IS_PURCHASE]
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
    """First and last day with a purchase (`IS_PURCHASE`), or None when there is none.

    Purchases dated after today (UTC) are left out: a mistyped year in an import must not
    move the data's end, every period and the 360 table's as-of date into the future.
    """
    tomorrow = datetime.combine(utcnow().date() + timedelta(days=1), time.min)
    stmt = sa.select(sa.func.min(orders.c.ordered_at), sa.func.max(orders.c.ordered_at)).where(
        IS_PURCHASE, orders.c.ordered_at < tomorrow
    )
    first, last = store.row(stmt)
    if first is None:
        return None
    return first.date(), last.date()


def default_filters(store: Store, days: int = 365) -> Filters | None:
    """The last `days` days up to the last order (None when there are no orders)."""
    span = order_date_range(store)
    if span is None:
        return None
    _first, last = span
    return Filters(start=last - timedelta(days=days - 1), end=last)


def filter_options(store: Store) -> dict[str, list[str]]:
    """Distinct countries and order channels for the sidebar's choices."""
    countries = store.values(
        sa.select(customers.c.country)
        .where(customers.c.country.is_not(None))
        .distinct()
        .order_by(customers.c.country)
    )
    channels = store.values(
        sa.select(orders.c.channel)
        .where(orders.c.channel.is_not(None))
        .distinct()
        .order_by(orders.c.channel)
    )
    return {"countries": countries, "channels": channels}


def match_choices(given: tuple[str, ...], allowed: list[str], what: str) -> tuple[str, ...]:
    """`given` spelled as the store spells them (any case); an unknown one is an error that
    lists the nearest allowed values, since it would silently select nobody."""
    by_lower = {value.lower(): value for value in allowed}
    matched = []
    for value in given:
        if value.lower() not in by_lower:
            near = difflib.get_close_matches(value, allowed, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise CRMError(
                f"{what} {value!r} is not in the store.{hint} Allowed: {', '.join(allowed)}."
            )
        matched.append(by_lower[value.lower()])
    return tuple(matched)
