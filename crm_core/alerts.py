"""Alert rules as data: what is measured, when it fires, and how it would have fired.

A rule is a JSON definition of a measure and a condition:

- measure: a KPI of `metrics.METRICS` (with countries/channels filters) at a grain (day, week,
  month: the value of the last complete bucket ending on or before the day evaluated), a
  saved segment's size (its recorded sizes in `segment_sizes`) or a score aggregate (one row
  per scoring run in `score_runs`);
- condition: a threshold (below/above), a change against the previous bucket or the same
  bucket a year earlier, or an anomaly: the value falls outside the prediction interval of a
  seasonal forecast (statsmodels SARIMAX) fitted on the measure's own history before it.

Rules are saved versioned like segments (a save adds a version; delete is soft). `evaluate`
says whether a rule fires now, in a sentence a manager reads; `backtest` replays the last 12
months (refitting the forecast once a month, not per point) and says how often it would have
fired.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from threadpoolctl import threadpool_limits

from crm_core import auth, metrics, segments
from crm_core.errors import AlertError, CRMError
from crm_core.filters import (
    Filters,
    completed_orders_where,
    customer_scope,
    filter_options,
    match_choices,
    order_date_range,
    plural,
)
from crm_core.metrics import METRICS, Metric
from crm_core.schema import (
    ALERT_MEASURES,
    alert_rules,
    orders,
    schedules,
    score_runs,
    survey_responses,
)
from crm_core.store import Store, live_id, lock_tables, next_id, next_version, utcnow

TABLES_WRITTEN = ("alert_rules",)
"""What saving or deleting a rule writes, for the app's caches."""

GRAINS = ("day", "week", "month")
CONDITIONS = ("threshold", "change", "anomaly")
OPS = ("below", "above")
AGAINST = {"previous": "the previous period", "year_ago": "the same period a year earlier"}
DIRECTIONS = ("down", "up", "either")
DEFAULT_LEVEL = 0.95
DAILY_LEVEL = 0.99
"""The default interval of a daily rule: it checks 365 days a year, so at 95% even a perfect
forecast would fire about 18 times a year."""
"""Prediction interval of an anomaly rule when none is given."""
MAX_NAME_LENGTH = 80
BACKTEST_MONTHS = 12
OUTLIER_Z = 3.5
"""A past value whose one-step forecast error exceeds this many standard errors is an outlier:
left out (as missing) when the forecast is fitted."""
MIN_HISTORY = 8
"""Fewest past values an anomaly forecast is fitted on."""
SEASONAL_PERIODS = {"day": 7, "week": 52, "month": 12}
"""Seasonal period of a grain (days: the week; weeks and months: the year), used when the
history holds at least two full periods."""

MAX_HISTORY = {"day": 730, "week": 520, "month": 240}
"""Most recent values a forecast is fitted on (older ones add time, not accuracy)."""

YEAR_LAG = 364
"""Days back to the same weekday a year earlier: a daily forecast's regressor."""
YEARLY_MIN_DAYS = YEAR_LAG + 56
"""Days of history (about 14 months) a daily forecast needs before it uses yearly regressors
(last year's value on the same weekday, Fourier terms of the year): eight weeks are then
fitted with last year's values beside them. With less, it uses the weekly period only."""
YEAR_HARMONICS = 4
"""Fourier pairs (sine, cosine) of the year in a daily forecast with yearly regressors."""
WEEK_HARMONICS = 2
"""Fourier pairs of the week in a daily forecast with yearly regressors."""

SCORE_AGGREGATES: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(
            "mean_churn_risk",
            "Mean churn risk",
            "Average churn risk of the scored customers at a scoring run.",
            "percent",
            False,
            lambda row: row["mean_churn_risk"],
        ),
        Metric(
            "value_at_risk",
            "Value at risk",
            "Sum over customers of churn risk x predicted CLV at a scoring run.",
            "money",
            False,
            lambda row: row["value_at_risk"],
        ),
        Metric(
            "mean_clv",
            "Mean CLV",
            "Average predicted customer lifetime value at a scoring run.",
            "money",
            True,
            lambda row: row["mean_clv"],
        ),
        Metric(
            "total_clv",
            "Total CLV",
            "Sum of predicted customer lifetime values at a scoring run.",
            "money",
            True,
            lambda row: row["total_clv"],
        ),
        Metric(
            "mean_p_alive",
            "Mean P(alive)",
            "Average probability that a scored customer is still a customer.",
            "percent",
            True,
            lambda row: row["mean_p_alive"],
        ),
    ]
}
"""Score aggregates an alert may watch (columns of `score_runs`)."""

_MEASURE_KEYS = {
    "kpi": {"kind", "metric", "grain", "countries", "channels"},
    "segment_size": {"kind", "segment"},
    "score": {"kind", "aggregate"},
}
_CONDITION_KEYS = {
    "threshold": {"kind", "op", "value"},
    "change": {"kind", "against", "direction", "percent"},
    "anomaly": {"kind", "level"},
}


# --- validation and words -------------------------------------------------------------------


def _problem(what: str, got: Any, allowed: str, fix: str) -> AlertError:
    return AlertError(f"Alert rule, {what}: got {got!r}; allowed: {allowed}. {fix}")


def _choice(spec: Mapping[str, Any], key: str, allowed: tuple[str, ...] | list[str], where: str):
    value = spec.get(key)
    if value not in allowed:
        raise _problem(
            f"{where}.{key}",
            value,
            ", ".join(allowed),
            f"Set {where}.{key} to one of them.",
        )
    return value


def _number(value: Any, where: str, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _problem(where, value, "a finite number", fix)
    return float(value)


def _keys(spec: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise _problem(where, spec, "an object with " + ", ".join(sorted(allowed)), "Give one.")
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise _problem(
            f"{where} key {unknown[0]}",
            unknown[0],
            ", ".join(sorted(allowed)),
            f"Remove {unknown[0]!r} or fix its spelling.",
        )
    return dict(spec)


def _texts(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise _problem(where, value, "a list of names", f"Give {where} as a list, e.g. ['US'].")
    return [v.strip() for v in value]


def _check_measure(spec: Any) -> dict[str, Any]:
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if kind not in ALERT_MEASURES:
        raise _problem(
            "measure.kind", kind, ", ".join(ALERT_MEASURES), "Say what the alert watches."
        )
    spec = _keys(spec, _MEASURE_KEYS[kind], "measure")
    if kind == "kpi":
        return {
            "kind": kind,
            "metric": _choice(spec, "metric", list(METRICS), "measure"),
            "grain": _choice(spec, "grain", GRAINS, "measure"),
            "countries": _texts(spec.get("countries"), "measure.countries"),
            "channels": _texts(spec.get("channels"), "measure.channels"),
        }
    if kind == "segment_size":
        name = spec.get("segment")
        if not isinstance(name, str) or not name.strip():
            raise _problem(
                "measure.segment", name, "a saved segment's name", "Name a saved segment."
            )
        return {"kind": kind, "segment": name.strip()}
    return {
        "kind": kind,
        "aggregate": _choice(spec, "aggregate", list(SCORE_AGGREGATES), "measure"),
    }


def _check_condition(spec: Any) -> dict[str, Any]:
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if kind not in CONDITIONS:
        raise _problem(
            "condition.kind", kind, ", ".join(CONDITIONS), "Say when the alert should fire."
        )
    spec = _keys(spec, _CONDITION_KEYS[kind], "condition")
    if kind == "threshold":
        return {
            "kind": kind,
            "op": _choice(spec, "op", OPS, "condition"),
            "value": _number(spec.get("value"), "condition.value", "Give the threshold."),
        }
    if kind == "change":
        percent = _number(spec.get("percent"), "condition.percent", "Give e.g. 20 for 20%.")
        if percent <= 0:
            raise _problem(
                "condition.percent", percent, "a number above 0", "Give e.g. 20 for 20%."
            )
        if spec.get("direction") == "down" and percent > 100:
            raise _problem(
                "condition.percent",
                percent,
                "up to 100 for a fall (a value cannot fall by more than 100%)",
                "Give e.g. 20 for a fall of 20% or more.",
            )
        return {
            "kind": kind,
            "against": _choice(spec, "against", list(AGAINST), "condition"),
            "direction": _choice(spec, "direction", DIRECTIONS, "condition"),
            "percent": percent,
        }
    level = spec.get("level", DEFAULT_LEVEL)
    level = _number(level, "condition.level", "Give e.g. 0.95 for a 95% interval.")
    if not 0.5 <= level < 1:
        raise _problem(
            "condition.level", level, "0.5 to 0.999", "Give e.g. 0.95 for a 95% interval."
        )
    return {"kind": kind, "level": level}


def default_level(grain: str | None) -> float:
    """The anomaly interval a rule gets unless one is chosen: 99% per day, else 95%."""
    return DAILY_LEVEL if grain == "day" else DEFAULT_LEVEL


def validate(definition: Any) -> dict[str, Any]:
    """The definition checked and normalised (a JSON string is parsed); AlertError says what
    is wrong, what was given, what is allowed and how to fix it."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except ValueError as exc:
            raise _problem("definition", definition[:80], "JSON", f"Fix the JSON ({exc}).") from exc
    spec = _keys(definition, {"measure", "condition"}, "definition")
    for key in ("measure", "condition"):
        if key not in spec:
            raise _problem(key, None, "an object", f"Add a {key} to the rule.")
    measure = _check_measure(spec["measure"])
    condition = _check_condition(spec["condition"])
    metric = measure_metric(measure)
    if condition["kind"] == "threshold" and metric.format == "percent":
        value = condition["value"]
        if not 0 <= value <= 1:
            hint = f" Did you mean {value / 100:g} ({value:g}%)?" if 1 < value <= 100 else ""
            raise _problem(
                "condition.value",
                value,
                f"a share from 0 to 1 for {metric.label} (0.4 = 40%)",
                f"Give the threshold as a share.{hint}",
            )
    return {"measure": measure, "condition": condition}


def measure_metric(measure: Mapping[str, Any]) -> Metric:
    """The Metric (label, format, direction) of a validated measure."""
    if measure["kind"] == "kpi":
        return METRICS[measure["metric"]]
    if measure["kind"] == "score":
        return SCORE_AGGREGATES[measure["aggregate"]]
    return Metric(
        "segment_size",
        f"Size of segment {measure['segment']}",
        "Customers in the saved segment, as recorded at each save, refresh and export.",
        "count",
        True,
        lambda row: row["customers"],
    )


def _measure_words(measure: Mapping[str, Any]) -> str:
    metric = measure_metric(measure)
    if measure["kind"] == "kpi":
        scope = []
        if measure["countries"]:
            scope.append("in " + ", ".join(measure["countries"]))
        if measure["channels"]:
            scope.append("through " + ", ".join(measure["channels"]))
        words = f"{metric.label} per {measure['grain']}"
        return " ".join([words, *scope])
    if measure["kind"] == "score":
        return f"{metric.label} at each scoring run"
    return metric.label


def _fmt(metric: Metric, value: float | None) -> str:
    return metrics.format_value(metric, value)


def describe(definition: Any) -> str:
    """The rule in words, e.g. "Orders per week: alert when outside the 95% forecast range"."""
    rule = validate(definition)
    measure, cond = rule["measure"], rule["condition"]
    metric = measure_metric(measure)
    if cond["kind"] == "threshold":
        when = f"alert when below {_fmt(metric, cond['value'])}"
        if cond["op"] == "above":
            when = f"alert when above {_fmt(metric, cond['value'])}"
    elif cond["kind"] == "change":
        way = {"down": "falls", "up": "rises", "either": "moves"}[cond["direction"]]
        when = (
            f"alert when it {way} by {cond['percent']:g}% or more against "
            f"{AGAINST[cond['against']]}"
        )
    else:
        when = (
            f"alert when outside the {100 * cond['level']:g}% range of a seasonal forecast "
            "fitted on its own history"
        )
    return f"{_measure_words(measure)}: {when}."


# --- saved rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedAlert:
    """One version of a saved alert rule."""

    alert_id: int
    version: int
    name: str
    definition: dict[str, Any]
    owner: str | None
    description: str | None
    created_at: datetime


def _acting_user(store: Store, username: str, action: str) -> auth.User:
    """The user acting on alert rules, whose role must allow `action`."""
    user = auth.get_user(store, username)
    if user is None:
        raise AlertError(
            f"Alert rules: no user {username!r}; act as an existing user (see "
            "`python -m crm_core users list`)."
        )
    if not auth.can(user.role, action):
        allowed = ", ".join(sorted(auth.ACTION_ROLES[action]))
        raise AlertError(
            f"Not allowed: the {user.role} role may not create or change alert rules "
            f"(allowed: {allowed}); it may subscribe to saved rules on a schedule."
        )
    return user


def _may_change(user: auth.User, rule_owner: str | None, name: str) -> None:
    """Only a rule's owner or an admin changes or deletes it: a rule another user's schedules
    evaluate must not change under them."""
    if rule_owner != user.username and not auth.can(user.role, "manage_all_schedules"):
        raise AlertError(
            f"Not allowed: alert {name!r} belongs to {rule_owner or 'nobody'}; only its owner "
            "or an admin may change or delete it. Save yours under another name."
        )


def save_alert(
    store: Store, name: str, definition: Any, *, owner: str, description: str = ""
) -> SavedAlert:
    """Save rule `name` as user `owner`: a new alert, or a new version of the live alert of
    that name (its owner's or, for an admin, anyone's: the rule keeps its owner)."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise _problem(
            "name", name, f"1-{MAX_NAME_LENGTH} characters", "Give the alert a short name."
        )
    checked = validate(definition)
    user = _acting_user(store, owner, "manage_alerts")
    now = utcnow()
    with store.begin() as conn:
        lock_tables(conn, alert_rules)  # the name check and the next id: one saver at a time
        alert_id = live_id(conn, alert_rules.c.alert_id, name)
        if alert_id is None:
            alert_id, version = next_id(conn, alert_rules.c.alert_id), 1
        else:  # live, so never None: a deletion marks every version
            owner = conn.execute(
                sa.select(alert_rules.c.owner)
                .where(alert_rules.c.alert_id == alert_id)
                .order_by(alert_rules.c.version.desc())
                .limit(1)
            ).scalar()
            _may_change(user, owner, name)
            version = next_version(conn, alert_rules.c.alert_id, alert_id)
        conn.execute(
            alert_rules.insert().values(
                alert_id=alert_id,
                version=version,
                name=name,
                description=description or None,
                definition=json.dumps(checked),
                owner=owner,
                created_at=now,
            )
        )
    return SavedAlert(alert_id, version, name, checked, owner, description or None, now)


def _row_to_alert(row: Any) -> SavedAlert:
    return SavedAlert(
        alert_id=int(row.alert_id),
        version=int(row.version),
        name=row.name,
        definition=json.loads(row.definition),
        owner=row.owner,
        description=row.description,
        created_at=row.created_at,
    )


def load_alert(store: Store, name: str, version: int | None = None) -> SavedAlert:
    """The latest (or a given) version of the live alert called `name` (AlertError if none)."""
    with store.connect() as conn:
        alert_id = live_id(conn, alert_rules.c.alert_id, name or "")
        row = None
        if alert_id is not None:
            stmt = sa.select(alert_rules).where(alert_rules.c.alert_id == alert_id)
            if version is not None:
                stmt = stmt.where(alert_rules.c.version == version)
            row = conn.execute(stmt.order_by(alert_rules.c.version.desc()).limit(1)).first()
    if row is None:
        known = ", ".join(list_alerts(store)["name"]) or "none yet"
        what = f"alert {name!r}" + (f" version {version}" if version is not None else "")
        raise AlertError(
            f"No saved {what}. Saved alerts: {known}. Check the name, or add it with "
            "`python -m crm_core alerts add`."
        )
    return _row_to_alert(row)


def list_alerts(store: Store) -> pd.DataFrame:
    """Live alerts, latest version each: name, version, rule (in words), owner, saved_at,
    description, definition (JSON)."""
    latest = (
        sa.select(alert_rules.c.alert_id, sa.func.max(alert_rules.c.version).label("version"))
        .where(alert_rules.c.deleted_at.is_(None))
        .group_by(alert_rules.c.alert_id)
        .subquery("latest")
    )
    stmt = (
        sa.select(
            alert_rules.c.alert_id,
            alert_rules.c.name,
            alert_rules.c.version,
            alert_rules.c.owner,
            alert_rules.c.created_at.label("saved_at"),
            alert_rules.c.description,
            alert_rules.c.definition,
        )
        .join_from(
            alert_rules,
            latest,
            sa.and_(
                alert_rules.c.alert_id == latest.c.alert_id,
                alert_rules.c.version == latest.c.version,
            ),
        )
        .order_by(sa.func.lower(alert_rules.c.name))
    )
    frame = store.read_df(stmt)
    frame.insert(3, "rule", [describe(d) for d in frame["definition"]])
    return frame


def delete_alert(store: Store, name: str, *, by: str) -> int:
    """Mark every version of alert `name` deleted (kept for the record); returns its id.
    Refused while a schedule still evaluates it (its runs would fail from then on)."""
    alert = load_alert(store, name)
    _may_change(_acting_user(store, by, "subscribe_alerts"), alert.owner, alert.name)
    with store.connect() as conn:
        users = conn.execute(
            sa.select(schedules.c.name)
            .where(schedules.c.kind == "alert", schedules.c.target == alert.name)
            .order_by(schedules.c.name)
        ).scalars()
        in_use = list(users)
    if in_use:
        raise AlertError(
            f"Alert {alert.name!r} is evaluated by the schedule(s) {', '.join(in_use)}; remove "
            "them first (Alerts & schedules, or `python -m crm_core schedules remove NAME`)."
        )
    with store.begin() as conn:
        conn.execute(
            alert_rules.update()
            .where(alert_rules.c.alert_id == alert.alert_id)
            .values(deleted_at=utcnow(), deleted_by=by)
        )
    return alert.alert_id


# --- the measure's history ------------------------------------------------------------------


def _last_complete(grain: str, at: date) -> pd.Period:
    """The last bucket of `grain` ending on or before `at`."""
    period = pd.Period(at, freq=metrics.TREND_GRAINS[grain])
    if period.end_time.date() > at:
        period -= 1
    return period


def _interval(grain: str) -> sa.ColumnElement:
    return sa.literal_column(f"INTERVAL '1 {grain}'")  # a constant of GRAINS, not user input


def _normalise(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.tz_localize(None).dt.normalize()


def _kpi_aggregates(store: Store, measure: Mapping[str, Any], end: date) -> pd.DataFrame:
    """Per bucket, the aggregates `metrics.METRICS` formulas read (revenue, orders, active,
    repeat, new, retained, active_before, survey counts): orders in one grouped query over
    (customer, bucket) rows, surveys in another, only when the KPI needs them."""
    grain = measure["grain"]
    filters = Filters(
        start=end,
        end=end,
        countries=tuple(measure["countries"]),
        channels=tuple(measure["channels"]),
    )
    if measure["metric"] not in ("nps", "csat"):
        bucket = sa.func.date_trunc(grain, orders.c.ordered_at)
        per = (
            sa.select(
                orders.c.customer_id,
                bucket.label("bucket"),
                sa.func.count().label("n"),
                sa.func.sum(orders.c.amount).label("amount"),
            )
            .where(*completed_orders_where(filters), orders.c.ordered_at < filters.end_ts)
            .group_by(orders.c.customer_id, bucket)
            .subquery("per_customer")
        )
        prev = (
            sa.func.lag(per.c.bucket)
            .over(partition_by=per.c.customer_id, order_by=per.c.bucket)
            .label("prev")
        )
        rows = sa.select(per.c.bucket, per.c.n, per.c.amount, prev).subquery("rows")
        r = rows.c
        stmt = sa.select(
            r.bucket,
            sa.func.sum(r.amount).label("revenue"),
            sa.func.sum(r.n).label("orders"),
            sa.func.count().label("active"),
            sa.func.count().filter(r.n >= 2).label("repeat"),
            sa.func.count().filter(r.prev.is_(None)).label("new"),
            sa.func.count().filter(r.prev + _interval(grain) == r.bucket).label("retained"),
        ).group_by(r.bucket)
    else:
        sr = survey_responses.c
        bucket = sa.func.date_trunc(grain, sr.answered_at).label("bucket")
        nps, csat = sr.survey == "nps", sr.survey == "csat"
        count = sa.func.count
        stmt = (
            sa.select(
                bucket,
                count().filter(nps).label("nps_n"),
                count().filter(nps, sr.score >= metrics.NPS_PROMOTER_MIN).label("promoters"),
                count().filter(nps, sr.score <= metrics.NPS_DETRACTOR_MAX).label("detractors"),
                count().filter(csat).label("csat_n"),
                count().filter(csat, sr.score >= metrics.CSAT_SATISFIED_MIN).label("satisfied"),
            )
            .where(sr.answered_at < filters.end_ts, *customer_scope(sr.customer_id, filters))
            .group_by(bucket)
        )
    frame = store.read_df(stmt)
    frame["bucket"] = _normalise(frame["bucket"])
    return frame.set_index("bucket").sort_index().astype(float)


def _kpi_series(store: Store, measure: Mapping[str, Any], at: date) -> pd.DataFrame:
    grain = measure["grain"]
    metric = METRICS[measure["metric"]]
    aggregates = _kpi_aggregates(store, measure, at)
    last = _last_complete(grain, at)
    if aggregates.empty or aggregates.index[0] > last.start_time:
        return _frame([], [], [])
    first = pd.Period(aggregates.index[0], freq=last.freq)
    buckets = pd.period_range(first, last, freq=last.freq)
    starts = buckets.start_time.normalize()
    aggregates = aggregates.reindex(starts, fill_value=0.0)
    if "active" in aggregates:
        aggregates["active_before"] = aggregates["active"].shift(1, fill_value=0.0)
    values = [metric.formula(row) for row in aggregates.to_dict("records")]
    return _frame(starts, buckets.end_time.normalize(), values)


def _frame(starts: Any, ends: Any, values: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period_start": pd.to_datetime(pd.Series(starts, dtype="datetime64[us]")),
            "period_end": pd.to_datetime(pd.Series(ends, dtype="datetime64[us]")),
            "value": pd.Series([np.nan if v is None else float(v) for v in values], dtype=float),
        }
    )


def _measurements(frame: pd.DataFrame, when: str, value: str, at: date) -> pd.DataFrame:
    """Recorded measurements up to `at`, the last one of each day."""
    if frame.empty:
        return _frame([], [], [])
    frame = frame.assign(day=pd.to_datetime(frame[when]).dt.normalize()).sort_values(when)
    frame = frame[frame["day"] <= pd.Timestamp(at)].groupby("day", as_index=False).last()
    return _frame(frame["day"], frame["day"], frame[value].tolist())


def series(store: Store, definition: Any, at: date | None = None) -> pd.DataFrame:
    """The measure's history up to `at` (default: its latest data): period_start,
    period_end, value; one row per complete bucket for a KPI, per day measured otherwise."""
    measure = validate(definition)["measure"]
    at = at or default_at(store, measure)
    if measure["kind"] == "kpi":
        options = filter_options(store)
        try:  # spelled as the store spells them ("us" -> "US"), or an error naming the choices
            measure["countries"] = list(
                match_choices(tuple(measure["countries"]), options["countries"], "Country")
            )
            measure["channels"] = list(
                match_choices(tuple(measure["channels"]), options["channels"], "Channel")
            )
        except CRMError as exc:
            raise AlertError(f"Alert rule, measure filters: {exc}") from exc
        return _kpi_series(store, measure, at)
    if measure["kind"] == "segment_size":
        try:
            segment = segments.load_segment(store, measure["segment"])
        except CRMError as exc:
            raise AlertError(f"Alert rule, measure.segment: {exc}") from exc
        history = segments.size_history(store, segment.segment_id)
        return _measurements(history, "measured_at", "customers", at)
    runs = store.read_df(sa.select(score_runs).order_by(score_runs.c.scored_at))
    return _measurements(runs, "scored_at", measure["aggregate"], at)


def default_at(store: Store, measure: Mapping[str, Any]) -> date:
    """The day a rule is evaluated at when none is given: the measure's latest data (the last
    purchase, survey answer, segment size or scoring run), so a store loaded up to a past day
    reads its last complete period rather than empty days since."""
    if measure["kind"] == "kpi" and measure["metric"] in ("nps", "csat"):
        last = store.scalar(sa.select(sa.func.max(survey_responses.c.answered_at)))
    elif measure["kind"] == "kpi":
        span = order_date_range(store)
        last = span[1] if span else None
    elif measure["kind"] == "score":
        last = store.scalar(sa.select(sa.func.max(score_runs.c.scored_at)))
    else:
        last = None  # every recorded size counts
    if last is None:
        return utcnow().date()
    return last.date() if isinstance(last, datetime) else last


# --- forecasts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    """Expected values and their prediction interval for the next `len(mean)` points."""

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    model: str
    outliers: int = 0
    """Past values set aside as outliers before the fit."""


def _model_spec(n: int, grain: str | None) -> tuple[tuple[int, int, int], tuple[int, ...], str]:
    period = SEASONAL_PERIODS.get(grain or "")
    order = (1, 1, 1) if n >= 30 else (0, 1, 1)
    yearly = f"; no yearly terms: under {YEARLY_MIN_DAYS} days of history" if grain == "day" else ""
    if period and n >= 2 * period:
        seasonal = (0, 1, 0, period)
        words = f"SARIMAX{order}x(0,1,0,{period}) (seasonal period {period} {grain}s{yearly})"
    else:
        seasonal = (0, 0, 0, 0)
        why = f"under {2 * period} {grain}s of history" if period else "irregular measurements"
        words = f"ARIMA{order} without seasonality ({why}{yearly})"
    return order, seasonal, words


def _yearly_exog(source: np.ndarray, steps: int) -> np.ndarray:
    """Regressors of a daily series from its day `YEAR_LAG` to `steps` days past its end: the
    value on the same weekday a year earlier, and Fourier terms of the year and the week (on
    the day's position: the fitted coefficients absorb the phase)."""
    t = np.arange(YEAR_LAG, len(source) + steps)
    columns = [source[t - YEAR_LAG]]
    for period, pairs in ((365.25, YEAR_HARMONICS), (7.0, WEEK_HARMONICS)):
        for k in range(1, pairs + 1):
            angle = 2 * np.pi * k * t / period
            columns += [np.sin(angle), np.cos(angle)]
    return np.column_stack(columns)


def _filled(y: np.ndarray) -> np.ndarray:
    """`y` with missing values interpolated (a regressor may not be missing)."""
    return pd.Series(y).interpolate(limit_direction="both").to_numpy(copy=True)


def forecast(history: np.ndarray, steps: int, grain: str | None, level: float) -> Forecast:
    """Fit statsmodels SARIMAX on `history` (log(1 + x) when it is never negative) and
    predict the next `steps` values with a `level` prediction interval."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX  # slow to import: only when used

    history = np.asarray(history, dtype=float)
    history = history[-MAX_HISTORY.get(grain or "", 365) - (YEAR_LAG if grain == "day" else 0) :]
    known = int(np.count_nonzero(~np.isnan(history)))
    if known < MIN_HISTORY:
        raise AlertError(
            f"Anomaly rule: got {known} past values; allowed: at least {MIN_HISTORY}. "
            "Wait for more history, or use a threshold or change rule."
        )
    log = bool(np.nanmin(history) >= 0)
    y = np.log1p(history) if log else history
    yearly = grain == "day" and len(y) >= YEARLY_MIN_DAYS and steps <= YEAR_LAG
    if yearly:  # regression on last year's same weekday and the seasons, ARIMA errors
        source = _filled(y)
        y = y[YEAR_LAG:]
        order, seasonal = (1, 1, 1), (0, 0, 0, 0)
        words = (
            f"SARIMAX{order} with yearly regressors (last year's value on the same weekday, "
            f"{YEAR_HARMONICS} Fourier pairs of the year, {WEEK_HARMONICS} of the week)"
        )
    else:
        y = y[-MAX_HISTORY.get(grain or "", 365) :]
        order, seasonal, words = _model_spec(len(y), grain)
    spec = {"order": order, "seasonal_order": seasonal, "concentrate_scale": True}
    if yearly:  # regression coefficients in the state (Kalman filter): fewer parameters to
        spec["mle_regression"] = False  # optimise, and their uncertainty in the interval
    exog = _yearly_exog(source, steps) if yearly else None
    past = None if exog is None else exog[: len(y)]
    # One BLAS thread: the matrices are tiny, and threads fighting over a busy machine's cores
    # made each fit several times slower.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # convergence chatter on short or flat series
        fitted = _fit(SARIMAX, y, spec, past)
        # Past outliers (an outage) become missing values, which the Kalman filter skips, and
        # the model is fitted again: otherwise the weeks after an outage, and the same weeks a
        # year later, would read as unusual.
        errors = np.abs(fitted.standardized_forecasts_error[0])
        outliers = np.zeros(len(y), dtype=bool)
        outliers[fitted.loglikelihood_burn :] = errors[fitted.loglikelihood_burn :] > OUTLIER_Z
        if outliers.any():
            if yearly:  # next year's regressor reads the expected value, not the outage
                source[YEAR_LAG:][outliers] = fitted.fittedvalues[outliers]
                exog = _yearly_exog(source, steps)
                past = exog[: len(y)]
            y = np.where(outliers, np.nan, y)
            fitted = _fit(SARIMAX, y, spec, past)
        future = None if exog is None else exog[len(y) :]
        frame = fitted.get_forecast(steps, exog=future).summary_frame(alpha=1 - level)
    mean = frame["mean"].to_numpy()
    lower, upper = frame["mean_ci_lower"].to_numpy(), frame["mean_ci_upper"].to_numpy()
    if log:
        mean, lower, upper = (np.expm1(a) for a in (mean, lower, upper))
        lower = np.maximum(lower, 0.0)
        words += " on log(1 + value)"
    return Forecast(mean, lower, upper, words, int(outliers.sum()))


def _fit(sarimax: type, y: np.ndarray, spec: dict[str, Any], exog: np.ndarray | None) -> Any:
    """Parameters from the model on the differenced series (a small state: fast), then one
    Kalman pass of the same model on the levels, which forecasts the levels."""
    fast = sarimax(y, exog, **spec, simple_differencing=True).fit(disp=False, cov_type="none")
    return sarimax(y, exog, **spec).filter(fast.params, cov_type="none")


# --- evaluation -----------------------------------------------------------------------------


@dataclass
class AlertResult:
    """Whether a rule fires for a period, with the figures and a sentence saying why."""

    fired: bool
    value: float | None
    reference: float | None
    lower: float | None
    upper: float | None
    period: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


def _period_words(grain: str | None, start: pd.Timestamp) -> str:
    day = start.date()
    if grain == "week":
        return f"the week of {day:%d %b %Y}"
    if grain == "month":
        return f"{day:%B %Y}"
    if grain == "day":
        return f"{day:%d %b %Y}"
    return f"{day:%d %b %Y} (latest measurement)"


def _grain(measure: Mapping[str, Any]) -> str | None:
    return measure.get("grain") if measure["kind"] == "kpi" else None


def _reference_index(frame: pd.DataFrame, i: int, against: str, grain: str | None) -> int | None:
    """Row of the value row `i` is compared with: the one before, or a year earlier."""
    if against == "previous":
        return i - 1 if i >= 1 else None
    start = frame["period_start"].iloc[i]
    year = pd.Timedelta(weeks=52) if grain == "week" else pd.DateOffset(years=1)
    target = start - year
    if grain is None:  # irregular measurements: the last one on or before that day
        earlier = np.flatnonzero(frame["period_start"].to_numpy() <= np.datetime64(target))
        return int(earlier[-1]) if len(earlier) else None
    hit = np.flatnonzero(frame["period_start"].to_numpy() == np.datetime64(target))
    return int(hit[0]) if len(hit) else None


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _check(condition: Mapping[str, Any], value: float | None, ref: float | None) -> bool:
    """Whether a threshold or change condition fires for `value` (against `ref`)."""
    if value is None:
        return False
    if condition["kind"] == "threshold":
        limit = condition["value"]
        return value < limit if condition["op"] == "below" else value > limit
    if ref is None or ref == 0:
        return False
    change = (value - ref) / abs(ref)
    size = condition["percent"] / 100.0
    return {
        "down": change <= -size,
        "up": change >= size,
        "either": abs(change) >= size,
    }[condition["direction"]]


def _change_bounds(condition: Mapping[str, Any], ref: float | None) -> tuple[float | None, ...]:
    if ref is None:
        return None, None
    size = condition["percent"] / 100.0
    lower = ref - size * abs(ref) if condition["direction"] in ("down", "either") else None
    upper = ref + size * abs(ref) if condition["direction"] in ("up", "either") else None
    return lower, upper


def _rule_message(
    rule: Mapping[str, Any],
    metric: Metric,
    period: str,
    value: float | None,
    ref: float | None,
    lower: float | None,
    upper: float | None,
    fired: bool,
    ref_period: str | None = None,
) -> str:
    cond = rule["condition"]
    on = "in" if period.startswith("the week") or period[0].isalpha() else "on"
    head = f"{metric.label} {on} {period}"
    if value is None:
        return f"{head}: no value (no data to compute it from); the alert does not fire."
    shown = _fmt(metric, value)
    if cond["kind"] == "threshold":
        side = cond["op"]
        limit = _fmt(metric, cond["value"])
        if fired:
            return f"{head}: {shown}, {side} the alert threshold of {limit}."
        return f"{head}: {shown}, not {side} the alert threshold of {limit}; all normal."
    if cond["kind"] == "change":
        against = ref_period or AGAINST[cond["against"]]
        if ref is None or ref == 0:
            return f"{head}: {shown}; there is no value for {against} to compare with."
        change = (value - ref) / abs(ref)
        way = "up" if change >= 0 else "down"
        text = f"{head}: {shown}, {way} {abs(change):.1%} from {_fmt(metric, ref)} in {against}"
        if fired:
            return f"{text} (the alert fires at a {cond['percent']:g}% change {cond['direction']})."
        return f"{text}; under the {cond['percent']:g}% alert level, all normal."
    span = f"{_fmt(metric, lower)} to {_fmt(metric, upper)}"
    if fired:
        side = "below" if value < lower else "above"
        return (
            f"{head}: {shown}, {side} the expected range of {span} "
            f"(forecast {_fmt(metric, ref)}): unusual."
        )
    return f"{head}: {shown}, within the expected range of {span}; all normal."


def evaluate(store: Store, definition: Any, at: date | None = None) -> AlertResult:
    """Whether the rule fires for the last complete period on or before `at` (default: the
    measure's latest data), with a one-sentence message and JSON-able detail."""
    rule = validate(definition)
    measure, cond = rule["measure"], rule["condition"]
    at = at or default_at(store, measure)
    frame = series(store, rule, at)
    metric = measure_metric(measure)
    grain = _grain(measure)
    detail: dict[str, Any] = {"rule": describe(rule), "at": at.isoformat(), "measure": measure}
    if frame.empty:
        message = f"{metric.label}: no data on or before {at:%d %b %Y}; the alert does not fire."
        return AlertResult(False, None, None, None, None, "no period", message, detail)
    i = len(frame) - 1
    start = frame["period_start"].iloc[i]
    period = _period_words(grain, start)
    value = _num(frame["value"].iloc[i])
    ref = lower = upper = None
    ref_period = None
    if cond["kind"] == "threshold":
        fired = _check(cond, value, None)
        lower, upper = (cond["value"], None) if cond["op"] == "below" else (None, cond["value"])
    elif cond["kind"] == "change":
        j = _reference_index(frame, i, cond["against"], grain)
        if j is not None:
            ref = _num(frame["value"].iloc[j])
            ref_period = _period_words(grain, frame["period_start"].iloc[j])
            detail["reference_period_start"] = frame["period_start"].iloc[j].date().isoformat()
        fired = _check(cond, value, ref)
        lower, upper = _change_bounds(cond, ref)
    else:
        history = _trim_start(_past(frame["value"].iloc[:i].to_numpy(dtype=float), grain), grain)
        fc = forecast(history, 1, grain, cond["level"])
        ref, lower, upper = float(fc.mean[0]), float(fc.lower[0]), float(fc.upper[0])
        fired = value is not None and not lower <= value <= upper
        detail.update(
            model=fc.model,
            history_points=len(history),
            outliers_left_out=fc.outliers,
            level=cond["level"],
        )
    message = _rule_message(rule, metric, period, value, ref, lower, upper, fired, ref_period)
    detail["period_start"] = start.date().isoformat()
    return AlertResult(fired, value, ref, lower, upper, period, message, detail)


def _past(values: np.ndarray, grain: str | None) -> np.ndarray:
    """The values a forecast is fitted on: missing ones dropped, except in a daily series,
    which keeps its days in place (a year back must be 364 positions back)."""
    return values if grain == "day" else values[~np.isnan(values)]


def _trim_start(history: np.ndarray, grain: str | None) -> np.ndarray:
    """Drop the first bucket (usually partial: the data starts mid-period) of a long series."""
    return history[1:] if grain is not None and len(history) > 2 * MIN_HISTORY else history


# --- backtest -------------------------------------------------------------------------------


@dataclass
class Backtest:
    """How a rule would have fired over past periods: the frame for a chart (period_start,
    value, expected, lower, upper, fired), the days it fired, and a sentence."""

    frame: pd.DataFrame
    firings: list[date]
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


def backtest(
    store: Store, definition: Any, end: date | None = None, months: int = BACKTEST_MONTHS
) -> Backtest:
    """Replay the rule over the periods of the last `months` months up to `end` (default:
    the measure's latest data). An anomaly forecast is refitted once a month on the history
    before that month (a rolling origin), as `evaluate` would have fitted it then."""
    rule = validate(definition)
    measure, cond = rule["measure"], rule["condition"]
    end = end or default_at(store, measure)
    frame = series(store, rule, end).reset_index(drop=True)
    grain = _grain(measure)
    metric = measure_metric(measure)
    first = pd.Timestamp(end) - pd.DateOffset(months=months) + pd.Timedelta(days=1)
    window = np.flatnonzero(frame["period_start"].to_numpy() >= np.datetime64(first))
    out = pd.DataFrame(
        {
            "period_start": frame["period_start"].iloc[window].to_numpy(),
            "value": frame["value"].iloc[window].to_numpy(),
            "expected": np.nan,
            "lower": np.nan,
            "upper": np.nan,
            "fired": False,
        }
    )
    detail: dict[str, Any] = {"rule": describe(rule), "end": end.isoformat(), "months": months}
    if cond["kind"] == "anomaly":
        models = _backtest_anomaly(frame, window, out, grain, cond["level"])
        detail["models"] = models
    else:
        for k, i in enumerate(window):
            value = _num(frame["value"].iloc[i])
            ref = None
            if cond["kind"] == "change":
                j = _reference_index(frame, int(i), cond["against"], grain)
                ref = None if j is None else _num(frame["value"].iloc[j])
                lower, upper = _change_bounds(cond, ref)
            elif cond["op"] == "below":
                lower, upper = cond["value"], None
            else:
                lower, upper = None, cond["value"]
            out.loc[k, ["expected", "lower", "upper"]] = [
                np.nan if x is None else x for x in (ref, lower, upper)
            ]
            out.loc[k, "fired"] = _check(cond, value, ref)
    out["fired"] = out["fired"].astype(bool)
    firings = [ts.date() for ts in out.loc[out["fired"], "period_start"]]
    # A period counts as checked when the rule could be judged: it has a value and, for a
    # change or an anomaly, something to compare it with.
    judged = out["value"].notna() & (out["expected"].notna() | (cond["kind"] == "threshold"))
    checked = int(judged.sum())
    detail["checked"] = checked
    if checked:
        summary = _summary(firings, checked, months, grain, metric)
    else:
        summary = _not_enough(cond, len(out), grain)
    return Backtest(out, firings, summary, detail)


def _not_enough(cond: Mapping[str, Any], points: int, grain: str | None) -> str:
    """Why a backtest could judge no period yet, and what it needs."""
    unit = {"day": "day", "week": "week", "month": "month"}.get(grain or "", "measurement")
    have = plural(points, unit if grain else "measurement")
    need = {
        "anomaly": f"an anomaly rule needs at least {MIN_HISTORY} earlier values to learn from",
        "change": "a change rule needs the period it compares with",
        "threshold": "a threshold rule needs a value",
    }[cond["kind"]]
    recorded = "recorded" if grain is None else "with data"
    return f"Not enough history yet to backtest: {have} {recorded}; {need}."


def _backtest_anomaly(
    frame: pd.DataFrame, window: np.ndarray, out: pd.DataFrame, grain: str | None, level: float
) -> list[str]:
    """Fill `out` month by month: fit on everything before the month, forecast its points."""
    values = frame["value"].to_numpy(dtype=float)
    months = pd.Series(frame["period_start"].iloc[window].dt.to_period("M").to_numpy())
    models: list[str] = []
    for _, positions in months.groupby(months, sort=True).groups.items():
        rows = window[np.asarray(positions)]
        origin = int(rows[0])
        history = _trim_start(_past(values[:origin], grain), grain)
        if np.count_nonzero(~np.isnan(history)) < MIN_HISTORY:
            continue  # too little history yet: these points stay unchecked
        steps = int(rows[-1]) - origin + 1
        fc = forecast(history, steps, grain, level)
        if fc.model not in models:
            models.append(fc.model)
        for k, row in zip(positions, rows, strict=True):
            h = int(row) - origin
            value = values[row]
            fired = bool(np.isfinite(value) and not fc.lower[h] <= value <= fc.upper[h])
            out.loc[k, ["expected", "lower", "upper"]] = [fc.mean[h], fc.lower[h], fc.upper[h]]
            out.loc[k, "fired"] = fired
    return models


def _summary(
    firings: list[date], checked: int, months: int, grain: str | None, metric: Metric
) -> str:
    unit = {"day": "day", "week": "week", "month": "month"}.get(grain or "", "measurement")
    span = f"in the last {months} months ({plural(checked, unit)} checked)"
    if not firings:
        return f"Would not have fired {span}."
    times = "once" if len(firings) == 1 else f"{len(firings)} times"
    days = ", ".join(_period_words(grain, pd.Timestamp(d)) for d in firings[:12])
    more = f" and {len(firings) - 12} more" if len(firings) > 12 else ""
    return f"Would have fired {times} {span}: {days}{more}."
