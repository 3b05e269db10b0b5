"""Drill-down: from a clicked chart element or table row to the customers behind it.

A `Selection` says in words what was clicked and holds the segment definition (rules, see
segments.py) that selects the same customers, with the sidebar filters as rules too:
countries -> ``country in [...]``; sales channels -> "has an order through the channel
(any status, ever)", which is what `filters.customer_scope` means. Saving it stores the
rules, so the segment follows new data. Only where no rule can say it (or the rule would
mean something else than the page counted, and the user prefers the page's customers) is
a fixed list of ids saved, and then the description says that it is a fixed list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from crm_core import display, segments
from crm_core.analytics import rfm
from crm_core.filters import Filters, month_end
from crm_core.store import Store


@dataclass(frozen=True)
class Selection:
    """What was clicked, in words, and the rules behind it (None: only a fixed list)."""

    title: str
    definition: dict[str, Any] | None
    page_ids: tuple[int, ...] | None = None
    """The customers the page counted for this element, when it has them (to compare)."""
    page_basis: str | None = None
    """How the page counted them, when the rule may select other customers (e.g. RFM as of
    the period's last day against the 360 table's segment as of the last order)."""
    fixed_reason: str | None = None
    """Why no rule can express the selection (then only the fixed list can be saved)."""
    customer_id: int | None = None
    """A single customer (a table row): open them in Customer 360."""
    description: str = ""
    name: str = ""
    """A short default name for the saved segment (else the title)."""

    @property
    def rule_based(self) -> bool:
        """Whether rules express the selection."""
        return self.definition is not None


@dataclass(frozen=True)
class Agreement:
    """The rule's customers against the page's: counts, and whether they are the same."""

    rule_count: int | None
    page_count: int | None
    same: bool


def _filters_words(filters: Filters) -> str:
    parts = []
    if filters.countries:
        parts.append("country " + ", ".join(filters.countries))
    if filters.channels:
        parts.append("bought through " + " or ".join(filters.channels))
    return f" ({'; '.join(parts)})" if parts else ""


def scope_rules(filters: Filters | None) -> list[dict[str, Any]]:
    """The sidebar's countries and channels as rules (the same customers as customer_scope)."""
    if filters is None:
        return []
    rules: list[dict[str, Any]] = []
    if filters.countries:
        rules.append({"field": "country", "op": "in", "value": list(filters.countries)})
    if filters.channels:
        rules.append(
            {"activity": "orders", "op": "has", "channel": list(filters.channels), "status": "any"}
        )
    return rules


def _definition(*rules: dict[str, Any]) -> dict[str, Any]:
    return segments.validate({"match": "all", "rules": list(rules)})


def fixed_definition(ids: list[int] | tuple[int, ...]) -> dict[str, Any]:
    """A definition that is a fixed list of customer ids (never follows new data)."""
    return {"match": "all", "rules": [{"field": "customer_id", "op": "in", "value": list(ids)}]}


def _rfm_basis(as_of: date, window_days: int | None) -> str:
    window = next((k for k, v in rfm.WINDOWS.items() if v == window_days), f"{window_days} days")
    return (
        f"The page scores RFM as of {as_of:%d %b %Y} with frequency and spend over "
        f"'{window}'; the rule uses each customer's segment in the customer 360 table (as of "
        "the last order in the store, all history), which follows new data."
    )


def rfm_tile(
    segment: str,
    filters: Filters | None,
    *,
    as_of: date,
    window_days: int | None,
    page_ids: list[int] | None = None,
) -> Selection:
    """An RFM treemap tile: rfm_segment = `segment` and the sidebar's scope."""
    if segment not in rfm.SEGMENT_NAMES:
        raise segments.SegmentError(
            f"RFM segment {segment!r} is unknown; allowed: {', '.join(rfm.SEGMENT_NAMES)}."
        )
    scope = _filters_words(filters) if filters else ""
    return Selection(
        title=f"RFM segment {segment}{scope}",
        definition=_definition(
            {"field": "rfm_segment", "op": "eq", "value": segment}, *scope_rules(filters)
        ),
        page_ids=None if page_ids is None else tuple(page_ids),
        page_basis=_rfm_basis(as_of, window_days),
        description=f"RFM segment {segment}{scope}, from the Segmentation page.",
        name=segment,
    )


def rf_cell(
    r: int,
    f: int,
    filters: Filters | None,
    *,
    as_of: date,
    window_days: int | None,
    page_ids: list[int] | None = None,
) -> Selection:
    """An R x F grid cell: r_score = r and f_score = f and the sidebar's scope."""
    scope = _filters_words(filters) if filters else ""
    return Selection(
        title=f"R score {r}, F score {f}{scope}",
        definition=_definition(
            {"field": "r_score", "op": "eq", "value": int(r)},
            {"field": "f_score", "op": "eq", "value": int(f)},
            *scope_rules(filters),
        ),
        page_ids=None if page_ids is None else tuple(page_ids),
        page_basis=_rfm_basis(as_of, window_days),
        description=f"R score {r} and F score {f}{scope}, from the Segmentation page's grid.",
        name=f"R{r} F{f}",
    )


def churn_band(band: str, filters: Filters | None, page_ids: list[int] | None = None) -> Selection:
    """A churn-risk band: churn_band = `band` (from the last scoring) and the sidebar's scope."""
    scope = _filters_words(filters) if filters else ""
    return Selection(
        title=f"{band.capitalize()} churn risk{scope}",
        definition=_definition(
            {"field": "churn_band", "op": "eq", "value": band}, *scope_rules(filters)
        ),
        page_ids=None if page_ids is None else tuple(page_ids),
        page_basis="The page scores churn risk with the model and window chosen here; the "
        "rule uses the churn band of the last scoring run (customer 360), which follows new "
        "data each time scoring runs.",
        description=f"Customers in the {band} churn-risk band{scope}, from the Churn risk page.",
        name=f"{band.capitalize()} churn risk",
    )


def funnel_dropoff(
    steps: list[str] | tuple[str, ...],
    order: str,
    window_days: int,
    filters: Filters,
    step: int,
    page_ids: list[int] | None = None,
) -> Selection:
    """Customers who entered the event funnel in the period and stopped after `step`."""
    steps = list(steps)
    funnel = {
        "steps": steps,
        "order": order,
        "window_days": int(window_days),
        "from": filters.start.isoformat(),
        "to": filters.end.isoformat(),
    }
    rule = {"funnel": funnel, "op": "dropped_after", "step": int(step)}
    scope = _filters_words(filters)
    words = display.value_labels("event_type", steps)  # "add_to_cart" -> "Add to cart"
    done, missed = words[step - 1], words[step].lower()
    return Selection(
        title=f"Dropped after step {step} ({done}; did not reach {missed}){scope}",
        definition=_definition(rule, *scope_rules(filters)),
        page_ids=None if page_ids is None else tuple(page_ids),
        description=f"Entered the funnel {' > '.join(words)} between {filters.start} and "
        f"{filters.end} and stopped after {done.lower()}{scope}.",
        name=f"Dropped after {done.lower()}",
    )


def cohort_cell(cohort: str, months_since: int, filters: Filters) -> Selection:
    """A cohort cell: first purchase in month `cohort` (YYYY-MM) of the period and a purchase
    `months_since` months later (as the cohort heatmap counts them, in the sidebar's scope)."""
    year, month = (int(part) for part in cohort[:7].split("-"))
    first_day = max(date(year, month, 1), filters.start)
    last_day = min(month_end(date(year, month, 1)), filters.end)
    index = year * 12 + month - 1 + int(months_since)
    later = date(index // 12, index % 12 + 1, 1)
    channel = {"channel": list(filters.channels)} if filters.channels else {}
    rules: list[dict[str, Any]] = [
        {
            "activity": "orders",
            "op": "first_in",
            "from": first_day.isoformat(),
            "to": last_day.isoformat(),
            "status": "purchase",
            **channel,
        }
    ]
    if months_since:
        rules.append(
            {
                "activity": "orders",
                "op": "has",
                "from": later.isoformat(),
                "to": min(month_end(later), filters.end).isoformat(),
                "status": "purchase",
                **channel,
            }
        )
    if filters.countries:
        rules.append({"field": "country", "op": "in", "value": list(filters.countries)})
    scope = _filters_words(filters)
    again = f", bought again {months_since} months later" if months_since else ""
    return Selection(
        title=f"First purchase in {cohort[:7]}{again}{scope}",
        definition=_definition(*rules),
        description=f"Cohort {cohort[:7]}{again}{scope}, from the KPI overview.",
        name=f"Cohort {cohort[:7]}" + (f" month {months_since}" if months_since else ""),
    )


def customer(customer_id: int, title: str | None = None) -> Selection:
    """One customer (a table row): open their 360 profile."""
    return Selection(
        title=title or f"Customer #{int(customer_id)}",
        definition=_definition({"field": "customer_id", "op": "eq", "value": int(customer_id)}),
        customer_id=int(customer_id),
        description=f"Customer #{int(customer_id)}.",
    )


def fixed_list(title: str, ids: list[int], reason: str) -> Selection:
    """A selection no rule can express: only the list of ids, which says that it is fixed."""
    return Selection(
        title=title,
        definition=None,
        page_ids=tuple(int(i) for i in ids),
        fixed_reason=reason,
        description=f"{title}. Fixed list of {len(ids):,} customers: {reason}",
    )


def fixed_description(selection: Selection) -> str:
    """What a saved fixed list says about itself."""
    count = len(selection.page_ids or ())
    reason = selection.fixed_reason or "the customers the page counted"
    return (
        f"{selection.title}. FIXED LIST of {count:,} customer ids as counted on the page "
        f"({reason}); it does not change with new data."
    )


def ids(store: Store, selection: Selection) -> list[int]:
    """The customers the selection holds now (the rule's; else the page's fixed list)."""
    if selection.definition is None:
        return list(selection.page_ids or ())
    return segments.member_ids(store, selection.definition)


def count(store: Store, selection: Selection) -> int:
    """How many customers the selection holds now."""
    return len(ids(store, selection))


def agreement(store: Store, selection: Selection) -> Agreement:
    """The rule's customers against the page's (same: the rule reproduces the page)."""
    page = None if selection.page_ids is None else set(selection.page_ids)
    if selection.definition is None:
        return Agreement(None, len(page or ()), False)
    rule = set(ids(store, selection))
    return Agreement(len(rule), None if page is None else len(page), page is None or rule == page)


def sample(store: Store, selection: Selection, role: str, size: int = 10) -> pd.DataFrame:
    """Up to `size` customers of the selection (top spenders), personal data masked for
    `role` (crm_core.privacy.mask_pii: only roles that see personal data see contacts)."""
    definition = selection.definition or fixed_definition(selection.page_ids or ())
    if not selection.definition and not selection.page_ids:
        return pd.DataFrame(columns=list(segments.SAMPLE_COLUMNS))
    return segments.preview(store, definition, role, sample_size=size).sample


def to_save(selection: Selection, *, fixed: bool = False) -> tuple[dict[str, Any], str]:
    """(definition, description) to save: the rules, or (only when asked or when no rule
    can express it) the page's fixed list, whose description says it is fixed."""
    if selection.definition is not None and not fixed:
        return selection.definition, selection.description
    if not selection.page_ids:
        raise segments.SegmentError(
            f"{selection.title}: there is no list of customers to save; save the rule instead."
        )
    return fixed_definition(selection.page_ids), fixed_description(selection)
