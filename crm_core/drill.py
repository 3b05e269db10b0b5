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
from datetime import date, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_core import display, schema, segments
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
        description=f"Entered the funnel {' > '.join(words)} {days_words(filters)} and "
        f"stopped after {done.lower()}{scope}.",
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
    month = month_words(cohort)
    return Selection(
        title=f"First purchase in {month}{again}{scope}",
        definition=_definition(*rules),
        description=f"Cohort {month}{again}{scope}, from the KPI overview.",
        name=f"Cohort {month}" + (f" month {months_since}" if months_since else ""),
    )


def days_words(filters: Filters) -> str:
    """The period in words: "between 1 Mar 2026 and 31 Mar 2026", "on 30 Nov 2025"."""
    if filters.start == filters.end:
        return f"on {filters.start:%-d %b %Y}"
    return f"between {filters.start:%-d %b %Y} and {filters.end:%-d %b %Y}"


def month_words(cohort: str) -> str:
    """A cohort month as people write it: "2025-11" -> "Nov 2025"."""
    year, month = (int(part) for part in cohort[:7].split("-"))
    return f"{date(year, month, 1):%b %Y}"


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


# --- selections of the other drillable charts -----------------------------------------------

NULL_GROUPS = frozenset({"unknown", "(unknown)", "(none)"})
"""Group labels that pages show for a missing value: their rule is ``<field> is empty``."""


def _field_rule(field: str, value: Any) -> dict[str, Any]:
    """``field eq value``, or ``field is_null`` for a missing value (None, "(unknown)")."""
    if value is None or (isinstance(value, str) and value in NULL_GROUPS):
        return {"field": field, "op": "is_null"}
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return {"field": field, "op": "eq", "value": value}


def _group_words(field: str, value: Any) -> str:
    if value is None or (isinstance(value, str) and value in NULL_GROUPS):
        return f"{display.label(field)} unknown"
    return f"{display.label(field)} {display.value_label(field, value)}"


def field_group(
    field: str,
    value: Any,
    filters: Filters | None,
    *,
    page_name: str,
    page_ids: list[int] | None = None,
    page_basis: str | None = None,
) -> Selection:
    """A bar of a chart by one customer field (country, acquisition channel, RFM segment,
    cluster...): ``field eq value`` (``is empty`` for an unknown group) and the sidebar's
    scope."""
    scope = _filters_words(filters) if filters else ""
    words = _group_words(field, value)
    return Selection(
        title=f"{words}{scope}",
        definition=_definition(_field_rule(field, value), *scope_rules(filters)),
        page_ids=None if page_ids is None else tuple(int(i) for i in page_ids),
        page_basis=page_basis,
        description=f"{words}{scope}, from the {page_name} page.",
        name=words,
    )


TREND_GRAINS = ("day", "week", "month")


def _period_end(start: date, grain: str) -> date:
    if grain == "day":
        return start
    if grain == "week":
        return start + timedelta(days=6)
    if grain == "month":
        return month_end(start)
    raise segments.SegmentError(f"Trend grain {grain!r} is unknown; allowed: day, week, month.")


def period_words(start: date, grain: str) -> str:
    """A trend bucket in words: "Mar 2026", "the week of 02 Mar 2026", "02 Mar 2026"."""
    if grain == "month":
        return f"{start:%b %Y}"
    if grain == "week":
        return f"the week of {start:%d %b %Y}"
    return f"{start:%d %b %Y}"


def trend_period(start: date, grain: str, filters: Filters) -> Selection:
    """A day, week or month of the revenue trend: customers with a purchase in it (clipped
    to the period, through the sidebar's channels) in the sidebar's countries, i.e. the
    trend's active customers of that bucket."""
    first_day = max(start, filters.start)
    last_day = min(_period_end(start, grain), filters.end)
    channel = {"channel": list(filters.channels)} if filters.channels else {}
    rules: list[dict[str, Any]] = [
        {
            "activity": "orders",
            "op": "has",
            "status": "purchase",
            "from": first_day.isoformat(),
            "to": last_day.isoformat(),
            **channel,
        }
    ]
    if filters.countries:
        rules.append({"field": "country", "op": "in", "value": list(filters.countries)})
    scope = _filters_words(filters)
    when = period_words(start, grain)
    part = (
        f"{first_day:%-d %b %Y}"
        if first_day == last_day
        else f"{first_day:%-d %b} - {last_day:%-d %b %Y}"
    )
    clipped = (
        f" (the period's part: {part})"
        if (first_day, last_day) != (start, _period_end(start, grain))
        else ""
    )
    return Selection(
        title=f"Bought in {when}{clipped}{scope}",
        definition=_definition(*rules),
        description=f"Customers with a purchase in {when}{clipped}{scope}, from the KPI "
        "overview's revenue trend.",
        name=f"Bought in {when}",
    )


def campaign_contacts(
    campaign_id: int,
    name: str,
    filters: Filters | None,
    group: str = "treatment",
) -> Selection:
    """A campaign's bar: the customers it was sent to (treatment; or its control group; or,
    for a paid campaign without contacts, those it reached: a visit or order tagged with it)
    in the sidebar's scope."""
    scope = _filters_words(filters) if filters else ""
    who = {
        "treatment": "Sent",
        "control": "Held out of",
        "any": "Picked for",
        "reached": "Reached by",
    }[group]
    rule = {"activity": "campaigns", "op": "has", "campaign": [int(campaign_id)], "group": group}
    return Selection(
        title=f"{who} campaign {name} (#{int(campaign_id)}){scope}",
        definition=_definition(rule, *scope_rules(filters)),
        description=f"{who} campaign {name} (#{int(campaign_id)}){scope}, from the Campaign "
        "ROI page.",
        name=f"{who} {name}"[: segments.MAX_NAME_LENGTH],
    )


SURVEY_BREAKDOWN_FIELDS = {
    "country": "country",
    "acquisition channel": "acquisition_channel",
    "RFM segment": "rfm_segment",
}
"""The survey breakdowns (analytics.surveys.BREAKDOWNS) that are customer 360 fields; the
touchpoint is the answer's own and goes in the survey rule."""

BUCKET_WORDS = {
    "detractor": "Detractors (0-6)",
    "passive": "Passives (7-8)",
    "promoter": "Promoters (9-10)",
}


def survey_group(
    by: str,
    value: Any,
    filters: Filters,
    survey: str = "nps",
    bucket: str | None = None,
    page_ids: list[int] | None = None,
) -> Selection:
    """A group bar of the survey breakdown: customers who answered `survey` in the period
    (as a detractor, passive or promoter when `bucket` is given) within the group."""
    survey_rule: dict[str, Any] = {
        "activity": "surveys",
        "op": "has",
        "survey": survey,
        "from": filters.start.isoformat(),
        "to": filters.end.isoformat(),
    }
    if bucket:
        survey_rule["bucket"] = [bucket]
    rules: list[dict[str, Any]] = [survey_rule]
    if by == "touchpoint":
        if value is None or value in NULL_GROUPS:
            raise segments.SegmentError(
                "Survey answers without a touchpoint: no rule can select them; pick a touchpoint."
            )
        survey_rule["touchpoint"] = [str(value)]
        words = f"at {display.value_label('touchpoint', value).lower()}"
    elif by in SURVEY_BREAKDOWN_FIELDS:
        field = SURVEY_BREAKDOWN_FIELDS[by]
        rules.append(_field_rule(field, value))
        words = f"with {_group_words(field, value)}"
    else:
        allowed = ", ".join(["touchpoint", *SURVEY_BREAKDOWN_FIELDS])
        raise segments.SegmentError(f"Survey breakdown {by!r} is unknown; allowed: {allowed}.")
    scope = _filters_words(filters)
    who = BUCKET_WORDS[bucket].split(" (")[0] if bucket else "Respondents"
    title = f"{who} in the {survey.upper()} survey {words}{scope}"
    return Selection(
        title=title,
        definition=_definition(*rules, *scope_rules(filters)),
        page_ids=None if page_ids is None else tuple(int(i) for i in page_ids),
        description=f"{title}, answered {days_words(filters)}, from the NPS & CSAT page.",
        name=f"{who} {words}"[: segments.MAX_NAME_LENGTH],
    )


def movement_cell(
    from_segment: str, to_segment: str, ids: list[int], compare_days: int, as_of: date
) -> Selection:
    """A cell of the RFM movement heatmap: only a fixed list (a customer's segment on an
    earlier day is not stored, so no rule can say who moved)."""
    moved = (
        f"Stayed {from_segment}"
        if from_segment == to_segment
        else f"Moved from {from_segment} to {to_segment}"
    )
    return fixed_list(
        f"{moved} in the {compare_days} days to {as_of:%d %b %Y}",
        ids,
        "a customer's RFM segment on an earlier day is not stored, so no rule can say who "
        "moved between segments",
    )


def cluster(
    k: int, page_ids: list[int] | None, *, fit_words: str, n_clusters: int | None = None
) -> Selection:
    """A cluster of the k-means profile: ``cluster eq k`` (the field 'Save clusters to the
    customer 360 table' writes), compared with the page's fit."""
    return Selection(
        title=f"Cluster {int(k)}",
        definition=_definition({"field": "cluster", "op": "eq", "value": int(k)}),
        page_ids=None if page_ids is None else tuple(int(i) for i in page_ids),
        page_basis=f"The page's clusters come from this fit ({fit_words}); the rule uses the "
        "cluster saved in the customer 360 table, from the last 'Save clusters'. Save clusters "
        "to the customer 360 table first to make the rule match.",
        description=f"Cluster {int(k)} of the k-means clustering ({fit_words}), from the "
        "Segmentation page.",
        name=f"Cluster {int(k)}" + (f" of {n_clusters}" if n_clusters else ""),
    )


def contacted_campaigns(store: Store) -> list[int]:
    """The campaigns that have contacts (campaign_contacts rows)."""
    cc = schema.campaign_contacts.c
    return [int(c) for c in store.values(sa.select(cc.campaign_id).distinct())]
