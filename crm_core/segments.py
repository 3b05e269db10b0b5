"""Segments: rules as data (JSON) -> SQLAlchemy expression over customer_360; save, version, size.

A definition is ``{"match": "all" | "any", "rules": [rule or group, ...]}``; a rule is
``{"field": ..., "op": ..., "value": ...}`` and a group is a nested definition. Fields and
operators come from an allow-list derived from the 360 fields (features.py): customer_360's
columns, and the contact details that rules reach in customers through a semi-join. Values
are always bound parameters. Each save of a segment is a new version in `segments`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from crm_core import auth, display, features, schema
from crm_core.analytics import funnels
from crm_core.errors import CRMError, NotAllowedError
from crm_core.filters import IS_PURCHASE, Filters
from crm_core.metrics import NPS_DETRACTOR_MAX, NPS_PROMOTER_MIN
from crm_core.privacy import mask_pii
from crm_core.schema import customers, segments
from crm_core.store import Store, live_id, lock_tables, next_id, next_version, utcnow

customer_360 = features.customer_360


TABLES_WRITTEN = ("segments", "segment_sizes")
"""What saving, deleting or restoring a segment writes (for the app's caches)."""


class SegmentError(CRMError):
    """A segment definition, name or saved segment that cannot be used as given."""


segment_sizes = schema.segment_sizes
"""Size of a segment version each time it is saved, refreshed or exported."""

OP_LABELS: dict[str, str] = {
    "eq": "equals",
    "ne": "not equals",
    "gt": "greater than",
    "gte": "at least",
    "lt": "less than",
    "lte": "at most",
    "between": "between",
    "in": "in list",
    "not_in": "not in list",
    "contains": "contains",
    "is_null": "is empty",
    "not_null": "is not empty",
    "within_last_days": "within the last N days",
    "within_next_days": "within the next N days",
}
"""Every operator and the words the builder shows for it."""

OPS_BY_KIND: dict[str, tuple[str, ...]] = {
    "number": (
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "in",
        "not_in",
        "is_null",
        "not_null",
    ),
    "text": ("eq", "ne", "in", "not_in", "contains", "is_null", "not_null"),
    "boolean": ("eq", "ne", "is_null", "not_null"),
    "date": (
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "within_last_days",
        "within_next_days",
        "is_null",
        "not_null",
    ),
}
"""Which operators fit each kind of field."""

FIELDS: dict[str, str] = {
    name: features.field_kind(c) for name, c in features.FIELD_COLUMNS.items() if name != "as_of"
}
"""The allow-list: every 360 field a rule may use (contact details included), and its kind."""

SHARE_FIELDS: frozenset[str] = frozenset(
    name for name, c in features.FIELD_COLUMNS.items() if c.info.get("share")
)
"""Fields that hold a share between 0 and 1 (declared with ``share`` in features.py): rules
store them as 0-1, the builder shows and takes them as percent."""

MATCHES = ("all", "any")
NO_VALUE_OPS = frozenset({"is_null", "not_null"})
DAY_COUNT_OPS = frozenset({"within_last_days", "within_next_days"})
"""Operators whose value is a number of days from the as-of date."""
MAX_NAME_LENGTH = 80


# --- validation and compilation ---------------------------------------------------------


def _describe(path: str, rule: Mapping[str, Any]) -> str:
    value = rule.get("value")
    shown = "" if value is None else f" {value!r}"
    return f"rule {path} ({rule.get('field')} {rule.get('op')}{shown})"


def _number(value: Any, where: str) -> float | int:
    if isinstance(value, bool):
        raise SegmentError(f"{where}: {value!r} is not a number.")
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value).replace(",", "").strip())
    except ValueError:
        raise SegmentError(f"{where}: {value!r} is not a number.") from None
    return int(number) if number.is_integer() else number


def _date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise SegmentError(f"{where}: {value!r} is not a date; use YYYY-MM-DD.") from None


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise SegmentError(f"{where}: {value!r} is not true or false.")


def _scalar(kind: str, value: Any, where: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise SegmentError(f"{where}: a value is needed.")
    if kind == "number":
        return _number(value, where)
    if kind == "date":
        return _date(value, where).isoformat()
    if kind == "boolean":
        return _boolean(value, where)
    return str(value)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [value]


def _check_share(field: str, values: list[Any], where: str) -> None:
    """Refuse a share outside 0-1, suggesting the percent read as a share."""
    for value in values:
        if 0 <= value <= 1:
            continue
        hint = f"did you mean {value / 100:g}?" if 1 < value <= 100 else "e.g. 0.6 for 60%."
        raise SegmentError(f"{where}: {field} is a share between 0 and 1; {hint}")


def _check_rule(rule: Any, path: str) -> dict[str, Any]:
    checked = _check_value(rule, path)
    if checked["field"] in SHARE_FIELDS and "value" in checked:
        value = checked["value"]
        _check_share(
            checked["field"], value if isinstance(value, list) else [value], _describe(path, rule)
        )
    return checked


def _check_value(rule: Any, path: str) -> dict[str, Any]:
    if not isinstance(rule, Mapping):
        raise SegmentError(f"rule {path}: expected an object with field, op and value.")
    where = _describe(path, rule)
    field, op = rule.get("field"), rule.get("op")
    if field not in FIELDS:
        raise SegmentError(f"{where}: unknown field {field!r}. Allowed: {', '.join(FIELDS)}.")
    kind = FIELDS[field]
    if op not in OP_LABELS:
        raise SegmentError(f"{where}: unknown operator {op!r}. Allowed: {', '.join(OP_LABELS)}.")
    if op not in OPS_BY_KIND[kind]:
        raise SegmentError(
            f"{where}: operator {op!r} does not fit the {kind} field {field!r}. "
            f"Allowed: {', '.join(OPS_BY_KIND[kind])}."
        )
    value = rule.get("value")
    if op in NO_VALUE_OPS:
        return {"field": field, "op": op}
    if op == "between":
        parts = _as_list(value)
        if len(parts) != 2:
            raise SegmentError(f"{where}: between needs two values, from and to.")
        low, high = (_scalar(kind, v, where) for v in parts)
        if low > high:
            raise SegmentError(f"{where}: from {low!r} is after to {high!r}.")
        return {"field": field, "op": op, "value": [low, high]}
    if op in ("in", "not_in"):
        parts = _as_list(value)
        if not parts:
            raise SegmentError(f"{where}: the list is empty; give at least one value.")
        return {"field": field, "op": op, "value": [_scalar(kind, v, where) for v in parts]}
    if op in DAY_COUNT_OPS:
        days = _number(value, where)
        if not float(days).is_integer() or days < 1:
            raise SegmentError(f"{where}: the number of days must be a whole number >= 1.")
        return {"field": field, "op": op, "value": int(days)}
    return {"field": field, "op": op, "value": _scalar(kind, value, where)}


# --- rule kinds beyond a field: activity and funnel ------------------------------------

ACTIVITY_SOURCES = ("orders", "events", "campaigns", "surveys")
"""orders and events (what the customer did), campaigns (which campaign contacted them or
held them out: campaign_contacts) and surveys (what they answered: survey_responses)."""
ACTIVITY_OPS: dict[str, str] = {
    "has": "has",
    "has_not": "has no",
    "first_in": "has their first",
}
"""Activity rules: the customer has (or has no) orders/events/campaign contacts/survey
answers matching the rule, or their first one falls in the rule's days."""
ORDER_STATUSES = ("purchase", "any")
"""purchase: orders that count as purchases (filters.IS_PURCHASE); any: every order."""
CONTACT_GROUPS = ("treatment", "control", "any", "reached")
"""A campaign rule's group: treatment (sent the campaign), control (held out of it), any of
the two, or reached (an event or order tagged with the campaign: how a paid campaign without
contacts reaches customers)."""
NPS_BUCKETS: dict[str, tuple[int, int]] = {
    "detractor": (0, NPS_DETRACTOR_MAX),
    "passive": (NPS_DETRACTOR_MAX + 1, NPS_PROMOTER_MIN - 1),
    "promoter": (NPS_PROMOTER_MIN, 10),
}
"""NPS answers by bucket (the scores of crm_core.metrics: 0-6, 7-8, 9-10)."""
FUNNEL_OPS: dict[str, str] = {
    "dropped_after": "dropped after step",
    "reached": "reached step",
}
"""Funnel rules: customers of an event funnel (crm_core.analytics.funnels) who stopped
after step k, or who reached step k or further."""
_SOURCE_KEYS: dict[str, frozenset[str]] = {
    "orders": frozenset({"channel", "status"}),
    "events": frozenset({"channel", "event_type"}),
    "campaigns": frozenset({"campaign", "group"}),
    "surveys": frozenset({"survey", "touchpoint", "bucket"}),
}
"""The keys each activity source takes besides activity, op, from and to."""
_ACTIVITY_KEYS = frozenset({"activity", "op", "from", "to"}).union(*_SOURCE_KEYS.values())
_FUNNEL_KEYS = frozenset({"funnel", "op", "step"})
_FUNNEL_SPEC_KEYS = frozenset({"steps", "order", "window_days", "from", "to"})


def rule_kind(rule: Mapping[str, Any]) -> str:
    """ "group", "activity", "funnel" or "field": what kind of rule a (checked) rule is."""
    for kind in ("rules", "activity", "funnel"):
        if kind in rule:
            return "group" if kind == "rules" else kind
    return "field"


def _unknown_keys(rule: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(rule) - allowed)
    if extra:
        raise SegmentError(
            f"{where}: unknown key {extra[0]!r}. Allowed: {', '.join(sorted(allowed))}."
        )


def _date_range(spec: Mapping[str, Any], where: str, *, required: bool) -> dict[str, str]:
    """The optional (or required) from/to days of a rule, as ISO dates, from <= to."""
    found: dict[str, str] = {}
    for key in ("from", "to"):
        if spec.get(key) in (None, ""):
            if required:
                raise SegmentError(f"{where}: {key!r} is needed (a date, YYYY-MM-DD).")
            continue
        found[key] = _date(spec[key], where).isoformat()
    if "from" in found and "to" in found and found["from"] > found["to"]:
        raise SegmentError(f"{where}: from {found['from']} is after to {found['to']}.")
    return found


def _texts(value: Any, where: str, key: str) -> list[str]:
    values = [str(v).strip() for v in _as_list(value) if str(v).strip()]
    if not values:
        raise SegmentError(f"{where}: {key} is an empty list; give at least one value.")
    return values


def _choices(value: Any, allowed: tuple[str, ...] | list[str], where: str, key: str) -> list[str]:
    """A list of values each of which must be one of `allowed`."""
    values = _texts(value, where, key)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise SegmentError(f"{where}: unknown {key} {unknown[0]!r}; allowed: {', '.join(allowed)}.")
    return values


def _campaign_ids(value: Any, where: str) -> list[int]:
    """Campaign numbers: whole numbers >= 1 (at least one)."""
    if value in (None, "", []):
        raise SegmentError(f"{where}: campaign is needed (a list of campaign numbers).")
    ids = []
    for part in _as_list(value):
        number = _number(part, f"{where}: campaign")
        if not float(number).is_integer() or number < 1:
            raise SegmentError(f"{where}: campaign {part!r} is not a campaign number (1, 2, ...).")
        ids.append(int(number))
    return ids


def _check_source_keys(rule: Mapping[str, Any], source: str, where: str) -> None:
    """Refuse a key that belongs to another activity source ("event_type fits events only")."""
    for key in sorted(set(rule) - _SOURCE_KEYS[source] - {"activity", "op", "from", "to"}):
        owners = [s for s, keys in _SOURCE_KEYS.items() if key in keys]
        raise SegmentError(f"{where}: {key} fits {' and '.join(owners)} only, not {source}.")


def _check_activity(rule: Mapping[str, Any], path: str) -> dict[str, Any]:
    """An activity rule checked and normalised, e.g. ``{"activity": "orders", "op": "has",
    "channel": ["web"], "from": "2026-01-01", "to": "2026-01-31"}``, ``{"activity":
    "campaigns", "op": "has", "campaign": [12], "group": "treatment"}`` or ``{"activity":
    "surveys", "op": "has", "survey": "nps", "bucket": ["detractor"]}``."""
    where = f"rule {path} (activity {rule.get('activity')!r} {rule.get('op')!r})"
    _unknown_keys(rule, _ACTIVITY_KEYS, where)
    source, op = rule.get("activity"), rule.get("op", "has")
    if source not in ACTIVITY_SOURCES:
        raise SegmentError(
            f"{where}: activity is {source!r}; allowed: {', '.join(ACTIVITY_SOURCES)}."
        )
    if op not in ACTIVITY_OPS:
        raise SegmentError(f"{where}: op is {op!r}; allowed: {', '.join(ACTIVITY_OPS)}.")
    given = {k: v for k, v in rule.items() if v not in (None, "", [])}
    _check_source_keys(given, source, where)
    checked: dict[str, Any] = {"activity": source, "op": op}
    checked.update(_date_range(rule, where, required=op == "first_in"))
    if "channel" in given:
        checked["channel"] = _texts(given["channel"], where, "channel")
    if "event_type" in given:
        checked["event_type"] = _choices(
            given["event_type"], schema.EVENT_TYPES, where, "event type"
        )
    if source == "orders":
        status = rule.get("status", "purchase")
        if status not in ORDER_STATUSES:
            raise SegmentError(
                f"{where}: status is {status!r}; allowed: {', '.join(ORDER_STATUSES)} "
                "(purchase: completed orders only)."
            )
        checked["status"] = status
    if source == "campaigns":
        checked["campaign"] = _campaign_ids(given.get("campaign"), where)
        group = given.get("group", "treatment")
        if group not in CONTACT_GROUPS:
            raise SegmentError(
                f"{where}: group is {group!r}; allowed: {', '.join(CONTACT_GROUPS)} "
                "(treatment: sent the campaign; control: held out of it; reached: an event "
                "or order tagged with it)."
            )
        checked["group"] = group
    if source == "surveys":
        survey = given.get("survey")
        if survey not in schema.SURVEYS:
            raise SegmentError(
                f"{where}: survey is {survey!r}; allowed: {', '.join(schema.SURVEYS)}."
            )
        checked["survey"] = survey
        if "touchpoint" in given:
            checked["touchpoint"] = _texts(given["touchpoint"], where, "touchpoint")
        if "bucket" in given:
            if survey != "nps":
                raise SegmentError(
                    f"{where}: bucket fits the nps survey only (detractor 0-6, passive 7-8, "
                    f"promoter 9-10), not {survey}."
                )
            buckets = _choices(given["bucket"], list(NPS_BUCKETS), where, "bucket")
            checked["bucket"] = [b for b in NPS_BUCKETS if b in buckets]  # one order
    return checked


def _check_funnel(rule: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A funnel rule checked and normalised: ``{"funnel": {"steps": [...], "order":
    "strict", "window_days": 7, "from": "2026-01-01", "to": "2026-03-31"}, "op":
    "dropped_after", "step": 2}``."""
    where = f"rule {path} (funnel {rule.get('op')!r} step {rule.get('step')!r})"
    _unknown_keys(rule, _FUNNEL_KEYS, where)
    spec = rule.get("funnel")
    if not isinstance(spec, Mapping):
        raise SegmentError(f"{where}: funnel must be an object with steps, order, window_days.")
    _unknown_keys(spec, _FUNNEL_SPEC_KEYS, where)
    steps = spec.get("steps")
    if not isinstance(steps, list | tuple):
        raise SegmentError(f"{where}: steps must be a list of event types.")
    steps = [str(s) for s in steps]
    order = spec.get("order", "strict")
    window = _number(spec.get("window_days", 7), where)
    if not float(window).is_integer():
        raise SegmentError(f"{where}: window_days must be a whole number of days.")
    try:
        funnels.validate_steps(steps, order, int(window))
    except CRMError as exc:
        raise SegmentError(f"{where}: {exc}") from None
    op = rule.get("op")
    if op not in FUNNEL_OPS:
        raise SegmentError(f"{where}: op is {op!r}; allowed: {', '.join(FUNNEL_OPS)}.")
    step = _number(rule.get("step"), where) if rule.get("step") is not None else None
    last = len(steps) - 1 if op == "dropped_after" else len(steps)
    if step is None or not float(step).is_integer() or not 1 <= step <= last:
        raise SegmentError(f"{where}: step must be a whole number from 1 to {last}.")
    period = _date_range(spec, where, required=True)
    return {
        "funnel": {"steps": steps, "order": order, "window_days": int(window), **period},
        "op": op,
        "step": int(step),
    }


def _activity_table(rule: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """The table an activity rule reads, its time column, and its conditions."""
    source = rule["activity"]
    if source == "campaigns" and rule["group"] == "reached":
        ev, od = schema.events.c, schema.orders.c
        tagged = sa.union_all(
            sa.select(ev.customer_id, ev.occurred_at.label("at")).where(
                ev.campaign_id.in_(rule["campaign"])
            ),
            sa.select(od.customer_id, od.ordered_at.label("at")).where(
                od.campaign_id.in_(rule["campaign"])
            ),
        ).subquery("reached")
        return tagged, tagged.c.at, []
    if source == "campaigns":
        cc = schema.campaign_contacts
        conditions: list[Any] = [cc.c.campaign_id.in_(rule["campaign"])]
        if rule["group"] != "any":
            conditions.append(cc.c.test_group == rule["group"])
        return cc, cc.c.sent_at, conditions
    if source == "surveys":
        sr = schema.survey_responses
        conditions = [sr.c.survey == rule["survey"]]
        if rule.get("touchpoint"):
            conditions.append(_lower(sr.c.touchpoint).in_(_lower(rule["touchpoint"])))
        if rule.get("bucket"):
            ranges = [NPS_BUCKETS[b] for b in rule["bucket"]]
            conditions.append(sa.or_(*[sr.c.score.between(lo, hi) for lo, hi in ranges]))
        return sr, sr.c.answered_at, conditions
    table = schema.orders if source == "orders" else schema.events
    when = table.c.ordered_at if source == "orders" else table.c.occurred_at
    conditions = []
    if rule.get("status") == "purchase":
        conditions.append(IS_PURCHASE)
    if rule.get("channel"):
        conditions.append(_lower(table.c.channel).in_(_lower(rule["channel"])))
    if rule.get("event_type"):
        conditions.append(table.c.event_type.in_(rule["event_type"]))
    return table, when, conditions


def _activity_clause(rule: dict[str, Any]) -> sa.ColumnElement[bool]:
    table, when, conditions = _activity_table(rule)
    days = []
    if "from" in rule:
        days.append(lambda column: column >= _day(rule["from"]))
    if "to" in rule:
        days.append(lambda column: column < _day(rule["to"], 1))
    members = sa.select(table.c.customer_id).where(*conditions)
    if rule["op"] == "first_in":
        first = sa.func.min(when)
        members = members.group_by(table.c.customer_id).having(sa.and_(*[d(first) for d in days]))
    else:
        members = members.where(*[d(when) for d in days])
    if rule["op"] == "has_not":
        return customer_360.c.customer_id.not_in(members)
    return customer_360.c.customer_id.in_(members)


def _funnel_clause(rule: dict[str, Any]) -> sa.ColumnElement[bool]:
    spec = rule["funnel"]
    period = Filters(start=date.fromisoformat(spec["from"]), end=date.fromisoformat(spec["to"]))
    step = {rule["op"]: rule["step"]}
    members = funnels.customers_query(
        spec["steps"], period, order=spec["order"], window_days=spec["window_days"], **step
    )
    return customer_360.c.customer_id.in_(members)


def _day_text(value: str) -> str:
    return f"{date.fromisoformat(value):%d %b %Y}"


def _days_words(rule: Mapping[str, Any], *, ever: bool = True) -> str:
    if "from" in rule and "to" in rule:
        return f" between {_day_text(rule['from'])} and {_day_text(rule['to'])}"
    if "from" in rule:
        return f" on or after {_day_text(rule['from'])}"
    if "to" in rule:
        return f" on or before {_day_text(rule['to'])}"
    return " (ever)" if ever else ""


def _describe_contact(rule: Mapping[str, Any]) -> str:
    """A campaign or survey rule in words, without its days: "was sent campaign #12
    (treatment)", "answered the NPS survey as a detractor (0-6) at support"."""
    op = rule["op"]
    if rule["activity"] == "campaigns":
        ids = " or ".join(f"#{int(c)}" for c in rule["campaign"])
        noun = "campaign" if len(rule["campaign"]) == 1 else "campaigns"
        group = rule["group"]
        if group == "reached":
            lead = {"has": "was", "has_not": "was not", "first_in": "was first"}[op]
            return f"{lead} reached by {noun} {ids} (a visit or order tagged with it)"
        verb = {"treatment": "sent", "control": "held out of", "any": "picked for"}[group]
        shown = {"treatment": "treatment", "control": "control group", "any": "either group"}
        lead = {"has": "was", "has_not": "was not", "first_in": "was first"}[op]
        return f"{lead} {verb} {noun} {ids} ({shown[group]})"
    lead = {"has": "answered", "has_not": "did not answer", "first_in": "first answered"}[op]
    words = f"{lead} the {rule['survey'].upper()} survey"
    if rule.get("bucket"):
        low_high = {b: NPS_BUCKETS[b] for b in rule["bucket"]}
        words += " as a " + " or ".join(f"{b} ({lo}-{hi})" for b, (lo, hi) in low_high.items())
    if rule.get("touchpoint"):
        places = display.value_labels("touchpoint", rule["touchpoint"])
        words += " at " + " or ".join(p.lower() for p in places)
    return words


def describe_rule(rule: Mapping[str, Any]) -> str:
    """One (checked) rule or group in words, e.g. "country in list US, GB"."""
    kind = rule_kind(rule)
    if kind == "group":
        joiner = " and " if rule["match"] == "all" else " or "
        return "(" + joiner.join(describe_rule(r) for r in rule["rules"]) + ")"
    if kind == "activity" and rule["activity"] in ("campaigns", "surveys"):
        return _describe_contact(rule) + _days_words(rule, ever=rule["activity"] == "surveys")
    if kind == "activity":
        noun = "purchase" if rule.get("status") == "purchase" else "order"
        if rule["activity"] == "events":
            types = rule.get("event_type") or ["event"]
            noun = " or ".join(display.humanise(e).lower() for e in types)
        article = "an" if noun[0] in "aeiou" else "a"
        words = {
            "has": f"has {article} {noun}",
            "has_not": f"has no {noun}",
            "first_in": f"made their first {noun}",
        }[rule["op"]]
        if rule.get("channel"):
            words += f" through {' or '.join(rule['channel'])}"
        if rule.get("status") == "any":
            words += " (any status)"
        return words + _days_words(rule)
    if kind == "funnel":
        spec, k = rule["funnel"], rule["step"]
        steps = [display.humanise(step).lower() for step in spec["steps"]]
        if rule["op"] == "dropped_after":
            what = f"dropped after step {k} ({steps[k - 1]}; did not do {steps[k]})"
        else:
            what = f"reached step {k} ({steps[k - 1]}) or further"
        return (
            f"{what} of the funnel {' > '.join(steps)} ({spec['order']} order, "
            f"{spec['window_days']}-day window, entered {_day_text(spec['from'])} - "
            f"{_day_text(spec['to'])})"
        )
    value = rule.get("value")
    if rule["field"] == "customer_id" and rule["op"] in ("in", "not_in"):
        shown = f"a fixed list of {len(value):,} ids"
    else:  # codes in words ("paid_search" -> "Paid search"); numbers and dates as given
        values = value if isinstance(value, list) else [] if value is None else [value]
        shown = ", ".join(
            display.value_label(rule["field"], v) if isinstance(v, str) else str(v) for v in values
        )
    if SHARE_FIELDS.intersection([rule["field"]]) and value is not None:
        values = value if isinstance(value, list) else [value]
        shown = ", ".join(f"{100 * float(v):g}%" for v in values)
    return f"{display.label(rule['field'])} {OP_LABELS[rule['op']]} {shown}".strip()


def describe(definition: Any) -> str:
    """A definition in words: its rules joined by "and" / "or"."""
    checked = validate(definition)
    joiner = " and " if checked["match"] == "all" else " or "
    return joiner.join(describe_rule(rule) for rule in checked["rules"])


def is_fixed_list(definition: Any) -> bool:
    """Whether a definition is only a fixed list of customer ids (it never follows new data)."""
    checked = validate(definition)
    return all(
        rule_kind(r) == "field" and r["field"] == "customer_id" and r["op"] == "in"
        for r in checked["rules"]
    )


def validate(definition: Any, _path: str = "") -> dict[str, Any]:
    """The definition checked and normalised (typed values); SegmentError naming the rule."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as exc:
            raise SegmentError(f"The segment definition is not valid JSON: {exc}.") from None
    group = f"group {_path}" if _path else "The segment"
    if not isinstance(definition, Mapping):
        raise SegmentError(f"{group}: expected an object {{'match': ..., 'rules': [...]}}.")
    match = definition.get("match", "all")
    if match not in MATCHES:
        raise SegmentError(f"{group}: match is {match!r}; allowed: all, any.")
    rules = definition.get("rules")
    if not isinstance(rules, list) or not rules:
        raise SegmentError(f"{group} has no rules; add at least one rule.")
    checked = []
    for number, rule in enumerate(rules, start=1):
        path = f"{_path}.{number}" if _path else str(number)
        if isinstance(rule, Mapping) and "rules" in rule:
            checked.append(validate(rule, path))
        elif isinstance(rule, Mapping) and "activity" in rule:
            checked.append(_check_activity(rule, path))
        elif isinstance(rule, Mapping) and "funnel" in rule:
            checked.append(_check_funnel(rule, path))
        else:
            checked.append(_check_rule(rule, path))
    return {"match": match, "rules": checked}


def _day(value: str, days: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(value) + timedelta(days=days), time.min)


def _rule_clause(rule: dict[str, Any], as_of: date) -> sa.ColumnElement[bool]:
    if "activity" in rule:
        return _activity_clause(rule)
    if "funnel" in rule:
        return _funnel_clause(rule)
    if rule["field"] in features.CONTACT_FIELDS:  # kept in customers: a semi-join
        matching = sa.select(customers.c.customer_id).where(_condition(rule, as_of))
        return customer_360.c.customer_id.in_(matching)
    return _condition(rule, as_of)


def _condition(rule: dict[str, Any], as_of: date) -> sa.ColumnElement[bool]:
    column = features.FIELD_COLUMNS[rule["field"]]
    kind, op, value = FIELDS[rule["field"]], rule["op"], rule.get("value")
    if op == "is_null":
        return column.is_(None)
    if op == "not_null":
        return column.is_not(None)
    if op == "within_last_days":
        start = datetime.combine(as_of - timedelta(days=value - 1), time.min)
        return sa.and_(column >= start, column < datetime.combine(as_of, time.min) + timedelta(1))
    if op == "within_next_days":  # the N days after the as-of day ("due in the next 14 days")
        start = datetime.combine(as_of, time.min) + timedelta(days=1)
        return sa.and_(column >= start, column < start + timedelta(days=value))
    if kind == "date":  # whole days: "at most 2026-01-31" includes that day
        if op == "between":
            return sa.and_(column >= _day(value[0]), column < _day(value[1], 1))
        bounds = {"gt": (">=", 1), "gte": (">=", 0), "lt": ("<", 0), "lte": ("<", 1)}
        operator, shift = bounds[op]
        return column >= _day(value, shift) if operator == ">=" else column < _day(value, shift)
    if kind == "text" and op in ("eq", "ne", "in", "not_in"):  # case does not matter
        column, value = _lower(column), _lower(value)
    if op == "eq":
        return column == value
    if op == "ne":  # "not equals" keeps customers with no value
        return sa.or_(column != value, column.is_(None))
    if op == "gt":
        return column > value
    if op == "gte":
        return column >= value
    if op == "lt":
        return column < value
    if op == "lte":
        return column <= value
    if op == "between":
        return column.between(value[0], value[1])
    if op == "in":
        return column.in_(value)
    if op == "not_in":
        return sa.or_(column.not_in(value), column.is_(None))
    if op == "contains":
        return column.icontains(value, autoescape=True)
    raise SegmentError(f"Operator {op!r} is not supported.")  # unreachable after validate


def _lower(value: Any) -> Any:
    """lower() in SQL of a column, a value or each value of a list (one folding for both)."""
    if isinstance(value, list):
        return [sa.func.lower(sa.literal(v, sa.String)) for v in value]
    if isinstance(value, sa.ColumnElement):
        return sa.func.lower(value)
    return sa.func.lower(sa.literal(value, sa.String))


def _compile_group(group: dict[str, Any], as_of: date) -> sa.ColumnElement[bool]:
    clauses = [
        _compile_group(rule, as_of) if "rules" in rule else _rule_clause(rule, as_of)
        for rule in group["rules"]
    ]
    return sa.and_(*clauses) if group["match"] == "all" else sa.or_(*clauses)


def compile_rules(definition: Any, as_of: date) -> sa.ColumnElement[bool]:
    """A WHERE clause over customer_360 with bound values (as_of anchors within_last_days)."""
    return _compile_group(validate(definition), as_of)


def fields_used(definition: dict[str, Any]) -> list[str]:
    """The fields a (validated) definition refers to, in order, without repeats."""
    names: list[str] = []
    for rule in definition["rules"]:
        if "field" not in rule and "rules" not in rule:  # activity and funnel rules
            continue
        for name in fields_used(rule) if "rules" in rule else [rule["field"]]:
            if name not in names:
                names.append(name)
    return names


PERSONAL_FIELDS: frozenset[str] = frozenset(
    name for name, c in features.FIELD_COLUMNS.items() if c.info.get("pii")
)
"""Fields that hold personal data (declared `pii`)."""


def fields_for_role(role: str | None) -> list[str]:
    """The fields `role` may select customers by: personal ones only with personal data."""
    if role is None or auth.can(role, "see_pii"):
        return list(FIELDS)
    return [name for name in FIELDS if name not in PERSONAL_FIELDS]


def check_fields_for_role(definition: dict[str, Any], role: str | None) -> None:
    """Refuse rules on personal fields for roles without personal data: `email eq ...`
    would find the very person the masking hides from them."""
    used = [f for f in fields_used(definition) if f not in fields_for_role(role)]
    if used:
        raise NotAllowedError(
            f"Rules on {', '.join(used)}: the {role} role may not select customers by "
            "personal data. Use other fields (country, rfm_segment, clv, ...) or ask a "
            "marketer."
        )


HIDDEN_VALUE = "(personal data hidden)"


def redact_definition(definition: Any, role: str | None) -> Any:
    """`definition` with the values of rules on personal fields hidden from roles without
    personal data (a marketer's `email eq ...` must not show the address to an analyst)."""
    if role is None or auth.can(role, "see_pii") or not isinstance(definition, dict):
        return definition
    rules = []
    for rule in definition.get("rules", []):
        if isinstance(rule, dict) and "rules" in rule:
            rules.append(redact_definition(rule, role))
        elif isinstance(rule, dict) and rule.get("field") in PERSONAL_FIELDS and "value" in rule:
            rules.append({**rule, "value": HIDDEN_VALUE})
        else:
            rules.append(rule)
    return {**definition, "rules": rules}


# --- preview -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What a definition selects now: size, share, value, risk, a masked sample and the SQL."""

    customers: int
    base: int
    revenue: float
    avg_clv: float | None
    avg_churn_risk: float | None
    sample: pd.DataFrame
    sql: str
    as_of: date | None
    warnings: tuple[str, ...] = ()

    @property
    def share(self) -> float:
        """Share of all customers in the segment."""
        return self.customers / self.base if self.base else 0.0


SAMPLE_COLUMNS = (  # id, name and total spend first: they fit on screen at 1440 px
    "customer_id",
    "first_name",
    "last_name",
    "monetary",
    "clv",
    "churn_risk",
    "rfm_segment",
    "country",
    "email",
    "recency_days",
    "frequency",
    "p_purchase_30d",
    "next_purchase_from",
)


def store_as_of(store: Store) -> date | None:
    """The 360 table's as-of date (None when it is empty)."""
    as_of = store.scalar(sa.select(sa.func.max(customer_360.c.as_of)))
    return None if as_of is None else pd.Timestamp(as_of).date()


def show_sql(store: Store, where: sa.ColumnElement[bool]) -> str:
    """The segment's SQL with literal values rendered, for display only (never executed)."""
    stmt = sa.select(customer_360.c.customer_id).where(where)
    try:
        compiled = stmt.compile(
            dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
        )
    except sa.exc.CompileError:
        compiled = stmt.compile(dialect=store.engine.dialect)
    return str(compiled)


def preview(store: Store, definition: Any, role: str, sample_size: int = 10) -> Preview:
    """Count, share, revenue, average CLV and churn risk, and a sample masked for `role`."""
    checked = validate(definition)
    check_fields_for_role(checked, role)
    features.ensure_tables(store)
    as_of = store_as_of(store) or utcnow().date()
    where = _compile_group(checked, as_of)
    c = customer_360.c
    stmt = sa.select(
        sa.func.count().label("base"),
        sa.func.sum(sa.case((where, 1), else_=0)).label("customers"),
        sa.func.sum(sa.case((where, c.monetary), else_=0)).label("revenue"),
        sa.func.avg(sa.case((where, c.clv))).label("avg_clv"),
        sa.func.avg(sa.case((where, c.churn_risk))).label("avg_churn_risk"),
    )
    row = store.row(stmt)
    columns = list(SAMPLE_COLUMNS) + [f for f in fields_used(checked) if f not in SAMPLE_COLUMNS]
    sample = store.read_df(_top_spenders(where, columns, sample_size))
    return Preview(
        customers=int(row.customers or 0),
        base=int(row.base or 0),
        revenue=float(row.revenue or 0),
        avg_clv=None if row.avg_clv is None else float(row.avg_clv),
        avg_churn_risk=None if row.avg_churn_risk is None else float(row.avg_churn_risk),
        sample=mask_pii(sample, role),
        sql=show_sql(store, where),
        as_of=as_of,
        warnings=tuple(value_warnings(store, checked)),
    )


MAX_KNOWN_VALUES = 1000
"""A text field with more distinct values than this gets no "nearest values" hint."""


MAX_CHOICES = 60
"""A field with at most this many distinct values is offered as choices in the builder."""


def field_choices(store: Store, field: str) -> list[str]:
    """The values the builder offers for `field` (empty: type a value instead).

    A field's declared choices; else the distinct values of a non-personal text field, or of
    a field declared ``few_values`` (gender, cluster), when there are at most MAX_CHOICES.
    """
    column = features.FIELD_COLUMNS[field]
    if column.info.get("choices"):
        return [str(v) for v in column.info["choices"]]
    kind, few = FIELDS.get(field), column.info.get("few_values")
    if not (kind == "text" and not column.info.get("pii")) and not few:
        return []
    stmt = sa.select(column).where(column.is_not(None)).distinct().limit(MAX_CHOICES + 1)
    values = sorted(store.values(stmt))
    return [str(v) for v in values] if len(values) <= MAX_CHOICES else []


def _text_rules(group: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, rule) of each rule that compares a text field with given values."""
    for number, rule in enumerate(group["rules"], start=1):
        path = f"{prefix}.{number}" if prefix else str(number)
        if "rules" in rule:
            yield from _text_rules(rule, path)
        elif "field" not in rule:  # activity and funnel rules
            continue
        elif FIELDS[rule["field"]] == "text" and rule["op"] in ("eq", "ne", "in", "not_in"):
            yield path, rule


def _known_values(store: Store, field: str, values: list[str]) -> tuple[set[str], list[str]]:
    """(which of `values`, lower-cased, some customer has; the field's values to suggest)."""
    column = features.FIELD_COLUMNS[field]
    if not column.info.get("pii"):  # a personal field's values are never suggested
        stmt = sa.select(column).where(column.is_not(None)).distinct().limit(MAX_KNOWN_VALUES + 1)
        known = sorted(str(v) for v in store.values(stmt))
        if len(known) <= MAX_KNOWN_VALUES:
            return {v.lower() for v in known}, known
    lowered = sa.func.lower(column)
    stmt = (
        sa.select(lowered)
        .where(lowered.in_([sa.func.lower(sa.literal(v, sa.String)) for v in values]))
        .distinct()
    )
    return {str(v) for v in store.values(stmt)}, []


def value_warnings(store: Store, definition: Any) -> list[str]:
    """A warning for each text value that no customer has, with the nearest existing values."""
    warnings = []
    for path, rule in _text_rules(validate(definition)):
        field = rule["field"]
        values = rule["value"] if isinstance(rule["value"], list) else [rule["value"]]
        found, known = _known_values(store, field, values)
        by_lower = {v.lower(): v for v in known}
        for value in values:
            if value.lower() in found:
                continue
            message = f"rule {path}: no customer has {field} {value!r}"
            near = difflib.get_close_matches(value.lower(), list(by_lower), n=3, cutoff=0.5)
            if near:
                message += "; nearest values: " + ", ".join(by_lower[v] for v in near)
            elif known:
                more = ", ..." if len(known) > 8 else ""
                message += "; its values are: " + ", ".join(known[:8]) + more
            warnings.append(message + ".")
    return warnings


def _top_spenders(where: sa.ColumnElement[bool], columns: list[str], limit: int) -> sa.Select:
    """The `limit` members who spent most, with `columns`; contact details joined to them only."""
    c = customer_360.c
    order = ("monetary", "customer_id")
    own = [n for n in dict.fromkeys([*order, *columns]) if n not in features.CONTACT_FIELDS]
    top = (
        sa.select(*[c[n] for n in own])
        .where(where)
        .order_by(c.monetary.desc(), c.customer_id)
        .limit(limit)
        .subquery("top_spenders")
    )
    picked = [customers.c[n] if n in features.CONTACT_FIELDS else top.c[n] for n in columns]
    return (
        sa.select(*[col.label(n) for col, n in zip(picked, columns, strict=True)])
        .join_from(top, customers, customers.c.customer_id == top.c.customer_id)
        .order_by(top.c.monetary.desc(), top.c.customer_id)
    )


def member_ids(store: Store, definition: Any) -> list[int]:
    """Customer ids a definition selects now."""
    as_of = store_as_of(store) or utcnow().date()
    stmt = sa.select(customer_360.c.customer_id).where(compile_rules(definition, as_of))
    return [int(v) for v in store.values(stmt.order_by(customer_360.c.customer_id))]


# --- saved segments ----------------------------------------------------------------------


@dataclass(frozen=True)
class SavedSegment:
    """One version of a saved segment."""

    segment_id: int
    version: int
    name: str
    description: str | None
    definition: dict[str, Any]
    owner: str | None
    created_at: datetime


def ensure_tables(store: Store) -> None:
    """Create segment_sizes (and the 360 tables) if the store lacks them."""
    features.ensure_tables(store)
    if "segment_sizes" not in store.table_names():
        with store.begin() as conn:
            segment_sizes.create(conn, checkfirst=True)


def _check_may_save(role: str | None) -> None:
    if role is not None and not auth.can(role, "save_segments"):
        raise NotAllowedError(f"Not allowed: the {role} role may not save or delete segments.")


def save_segment(
    store: Store,
    name: str,
    definition: Any,
    *,
    owner: str,
    description: str | None = None,
    segment_id: int | None = None,
    role: str | None = None,
) -> SavedSegment:
    """Save a new segment, or a new version of `segment_id`; records its size now."""
    _check_may_save(role)
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise SegmentError(f"Segment name: got {name!r}; give 1-{MAX_NAME_LENGTH} characters.")
    checked = validate(definition)
    check_fields_for_role(checked, role)
    ensure_tables(store)
    now = utcnow()
    with store.begin() as conn:
        lock_tables(conn, segments)  # name check and next id: one saver at a time
        clash = live_id(conn, segments.c.segment_id, name)
        if clash is not None and clash != segment_id:
            raise SegmentError(
                f"A segment called {name!r} already exists; open it to save a new version, "
                "or choose another name."
            )
        if segment_id is None:
            segment_id, version = next_id(conn, segments.c.segment_id), 1
        else:
            version = next_version(conn, segments.c.segment_id, segment_id)
            if version is None:
                raise SegmentError(f"Segment {segment_id} does not exist or was deleted.")
        conn.execute(
            segments.insert().values(
                segment_id=segment_id,
                version=version,
                name=name,
                description=description or None,
                definition=json.dumps(checked),
                owner=owner,
                created_at=now,
            )
        )
    saved = SavedSegment(segment_id, version, name, description, checked, owner, now)
    record_size(store, saved)
    return saved


def _row_to_segment(row: Any) -> SavedSegment:
    return SavedSegment(
        segment_id=int(row.segment_id),
        version=int(row.version),
        name=row.name,
        description=row.description,
        definition=json.loads(row.definition),
        owner=row.owner,
        created_at=row.created_at,
    )


def load_segment(store: Store, name: str, version: int | None = None) -> SavedSegment:
    """The latest (or a given) version of the live segment called `name`."""
    with store.connect() as conn:
        segment_id = live_id(conn, segments.c.segment_id, name)
        if segment_id is None:
            known = ", ".join(list_segments(store)["name"]) or "none yet"
            raise SegmentError(f"No saved segment called {name!r}. Saved segments: {known}.")
        stmt = sa.select(segments).where(segments.c.segment_id == segment_id)
        if version is not None:
            stmt = stmt.where(segments.c.version == version)
        row = conn.execute(stmt.order_by(segments.c.version.desc()).limit(1)).first()
    if row is None:
        raise SegmentError(f"Segment {name!r} has no version {version}.")
    return _row_to_segment(row)


def _latest_versions(*, deleted: bool) -> sa.Subquery:
    """Each live (or deleted) segment's latest version number."""
    gone = segments.c.deleted_at.is_not(None) if deleted else segments.c.deleted_at.is_(None)
    return (
        sa.select(segments.c.segment_id, sa.func.max(segments.c.version).label("version"))
        .where(gone)
        .group_by(segments.c.segment_id)
        .subquery("latest")
    )


def list_segments(store: Store) -> pd.DataFrame:
    """Live segments, latest version each, with their latest recorded size."""
    ensure_tables(store)
    latest = _latest_versions(deleted=False)
    size = sa.select(
        segment_sizes.c.segment_id,
        segment_sizes.c.customers,
        segment_sizes.c.measured_at,
        sa.func.row_number()
        .over(
            partition_by=segment_sizes.c.segment_id,
            order_by=segment_sizes.c.measured_at.desc(),
        )
        .label("nth"),
    ).subquery("sizes")
    stmt = (
        sa.select(
            segments.c.segment_id,
            segments.c.name,
            segments.c.version,
            segments.c.description,
            segments.c.owner,
            segments.c.created_at.label("saved_at"),
            size.c.customers,
            size.c.measured_at.label("size_measured_at"),
            segments.c.definition,
        )
        .join_from(
            segments,
            latest,
            sa.and_(
                segments.c.segment_id == latest.c.segment_id,
                segments.c.version == latest.c.version,
            ),
        )
        .outerjoin(size, sa.and_(size.c.segment_id == segments.c.segment_id, size.c.nth == 1))
        .order_by(segments.c.name)
    )
    return store.read_df(stmt)


def segment_versions(store: Store, segment_id: int) -> pd.DataFrame:
    """Every version of a segment, newest first."""
    stmt = (
        sa.select(
            segments.c.version,
            segments.c.name,
            segments.c.owner,
            segments.c.created_at,
            segments.c.description,
            segments.c.definition,
        )
        .where(segments.c.segment_id == segment_id)
        .order_by(segments.c.version.desc())
    )
    return store.read_df(stmt)


def size_history(store: Store, segment_id: int) -> pd.DataFrame:
    """Recorded sizes of a segment over time (each save, refresh and export)."""
    ensure_tables(store)
    stmt = (
        sa.select(segment_sizes)
        .where(segment_sizes.c.segment_id == segment_id)
        .order_by(segment_sizes.c.measured_at)
    )
    return store.read_df(stmt)


def record_size(store: Store, segment: SavedSegment) -> int:
    """Measure the segment on the current 360 table and record it; returns its size."""
    ensure_tables(store)
    as_of = store_as_of(store)
    if as_of is None:
        return 0  # no 360 rows yet: nothing to measure
    where = compile_rules(segment.definition, as_of)
    stmt = sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(customer_360.c.monetary), 0)
    ).where(where)
    count, revenue = store.row(stmt)  # read from the 360, wherever it lives
    with store.begin() as conn:
        conn.execute(
            segment_sizes.insert().values(
                segment_id=segment.segment_id,
                version=segment.version,
                measured_at=utcnow(),
                customers=int(count),
                revenue=float(revenue),
                as_of=as_of,
            )
        )
    return int(count)


def record_all_sizes(store: Store) -> dict[str, int]:
    """Measure every saved segment (latest version) now and record it: name -> size."""
    return {
        name: record_size(store, load_segment(store, name)) for name in list_segments(store)["name"]
    }


def duplicate_segment(
    store: Store, name: str, new_name: str, *, owner: str, role: str | None = None
) -> SavedSegment:
    """Save a copy of segment `name` (latest version) as a new segment `new_name`."""
    source = load_segment(store, name)
    return save_segment(
        store,
        new_name,
        source.definition,
        owner=owner,
        description=f"Copy of {source.name} v{source.version}. {source.description or ''}".strip(),
        role=role,
    )


def _check_owner_or_admin(segment_name: str, owner: str | None, user: auth.User, act: str) -> None:
    _check_may_save(user.role)
    if user.role != "admin" and user.username != owner:
        raise NotAllowedError(
            f"Not allowed: segment {segment_name!r} belongs to {owner or 'nobody'}; only its "
            f"owner or an admin may {act} it. Ask {owner or 'an admin'} or an admin, or "
            "duplicate it to get a copy of your own."
        )


def delete_segment(store: Store, name: str, *, user: auth.User) -> int:
    """Mark every version of segment `name` deleted (restorable; exports keep their record).

    Only the segment's owner or an admin may delete it (NotAllowedError otherwise); returns
    the segment's id.
    """
    segment = load_segment(store, name)
    _check_owner_or_admin(segment.name, segment.owner, user, "delete")
    with store.begin() as conn:
        conn.execute(
            segments.update()
            .where(segments.c.segment_id == segment.segment_id)
            .values(deleted_at=utcnow(), deleted_by=user.username)
        )
    return segment.segment_id


def deleted_segments(store: Store, user: auth.User | None = None) -> pd.DataFrame:
    """Deleted segments (latest version each), newest deletion first; only those `user` may
    restore (their own; an admin's: all) when a user is given."""
    ensure_tables(store)
    latest = _latest_versions(deleted=True)
    stmt = (
        sa.select(
            segments.c.segment_id,
            segments.c.name,
            segments.c.version,
            segments.c.description,
            segments.c.owner,
            segments.c.deleted_at,
            segments.c.deleted_by,
        )
        .join_from(
            segments,
            latest,
            sa.and_(
                segments.c.segment_id == latest.c.segment_id,
                segments.c.version == latest.c.version,
            ),
        )
        .order_by(segments.c.deleted_at.desc(), segments.c.segment_id.desc())
    )
    if user is not None and user.role != "admin":
        stmt = stmt.where(segments.c.owner == user.username)
    return store.read_df(stmt)


def restore_segment(
    store: Store, name: str, *, user: auth.User, segment_id: int | None = None
) -> SavedSegment:
    """Bring back the deleted segment `name` (the latest deleted one of that name, or
    `segment_id`) with every version; its owner or an admin only."""
    ensure_tables(store)
    stmt = sa.select(segments.c.segment_id, segments.c.owner, segments.c.name).where(
        segments.c.deleted_at.is_not(None)
    )
    if segment_id is not None:
        stmt = stmt.where(segments.c.segment_id == segment_id)
    else:
        stmt = stmt.where(sa.func.lower(segments.c.name) == (name or "").strip().lower())
    with store.connect() as conn:
        row = conn.execute(
            stmt.order_by(segments.c.deleted_at.desc(), segments.c.version.desc()).limit(1)
        ).first()
    if row is None:
        gone = ", ".join(deleted_segments(store, user)["name"]) or "none"
        raise SegmentError(
            f"No deleted segment called {name!r}. Deleted segments you may restore: {gone}."
        )
    _check_owner_or_admin(row.name, row.owner, user, "restore")
    with store.begin() as conn:
        lock_tables(conn, segments)  # the name check and the restore: one writer at a time
        if live_id(conn, segments.c.segment_id, row.name) is not None:
            raise SegmentError(
                f"A segment called {row.name!r} exists already; rename or delete it, then "
                "restore this one."
            )
        conn.execute(
            segments.update()
            .where(segments.c.segment_id == row.segment_id)
            .values(deleted_at=None, deleted_by=None)
        )
    return load_segment(store, row.name)


def segments_of(store: Store, customer_id: int) -> list[str]:
    """Names of the saved segments (latest versions) that the customer belongs to now."""
    as_of = store_as_of(store)
    saved = list_segments(store)
    if as_of is None or saved.empty:
        return []
    names = []
    for name in saved["name"]:
        where = compile_rules(load_segment(store, name).definition, as_of)
        stmt = sa.select(customer_360.c.customer_id).where(
            where, customer_360.c.customer_id == customer_id
        )
        with store.connect() as conn:
            if conn.execute(stmt.limit(1)).first() is not None:
                names.append(name)
    return names
