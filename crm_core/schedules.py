"""Schedules: alerts, reports and exports that run on a cron expression in a time zone.

A schedule is a row of `schedules` (what runs, when, where it goes, whose rights it uses).
`claim` lets exactly one scheduler take a due schedule (a conditional UPDATE: the row is
claimed only while it is due, not paused and not claimed by someone else, so two
schedulers on one PostgreSQL store never run it twice). `run_schedule` runs the job, logs
it in `schedule_runs` (running -> its result), delivers through `crm_core.delivery` (each
delivery in `deliveries`, with the run's id) and moves `next_due_at` to the first slot
after NOW: a schedule whose slots were missed while the app was down runs once, not once
per missed slot. A failing job or delivery is a result in the log, never an exception.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import sqlalchemy as sa
from cronsim import CronSim, CronSimError

from crm_core import auth
from crm_core.config import get_settings
from crm_core.errors import CRMError, ScheduleError
from crm_core.filters import plural
from crm_core.reports import SCHEDULED_REPORTS
from crm_core.schema import (
    SCHEDULE_KINDS,
    deliveries,
    schedule_runs,
    schedules,
)
from crm_core.store import Store, lock_tables, next_id, utcnow

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 80
REPORT_TARGETS = SCHEDULED_REPORTS
RETENTION_TARGET = "policies"
"""The target of every retention schedule: all the retention policies in force."""
"""Reports a schedule can send: the KPI overview, or the owner's Home page (pinned views)."""
EXPORT_FORMATS = ("csv", "xlsx", "parquet")
EXPORT_CHANNELS = ("email", "sms", "none")
RUN_TABLES = (
    "schedules",
    "schedule_runs",
    "deliveries",
    "export_log",
    "segment_sizes",
    "campaigns",
    "campaign_contacts",
)
"""What a run may write: its slot and log, deliveries, an export's audit row, the segment's
size and, with a control group, its campaign (the app forgets cached reads of these)."""
OK_RESULTS = ("fired", "quiet", "sent", "repeat")
"""Results of a run that went as it should (the CLI exits 0)."""
DEFAULT_LEASE = timedelta(minutes=30)
"""How long a claim holds: a scheduler that died mid-run leaves the job to others after it."""
DEFAULT_TIMEZONE = "UTC"
DELIVERY_BACKOFF: tuple[float, ...] = (1.0, 4.0, 16.0)
"""Seconds between a failed delivery's tries (tests set zeros)."""


@dataclass(frozen=True)
class Schedule:
    """One schedule as stored (options and destinations decoded)."""

    schedule_id: int
    name: str
    kind: str
    target: str
    cron: str
    timezone: str
    destinations: list[dict[str, Any]]
    owner: str
    options: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    next_due_at: datetime | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Run:
    """One run of a schedule, as logged in `schedule_runs`."""

    run_id: int
    schedule_id: int
    schedule_name: str
    due_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    result: str
    message: str
    detail: dict[str, Any]
    runner: str
    file_path: str | None = None
    delivery_ids: list[int] = field(default_factory=list)


# --- validation --------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name` (ScheduleError if unknown)."""
    try:
        return ZoneInfo(str(name or "").strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"Time zone: got {name!r}; allowed: an IANA zone name such as UTC, "
            "Europe/Berlin or America/New_York."
        ) from None


def next_due(cron: str, timezone: str, after: datetime) -> datetime:
    """The first slot of `cron` (read in `timezone`) strictly after `after` (naive UTC), as
    naive UTC. Across DST changes it behaves like cron: a time skipped in spring runs at the
    first minute after the gap, a time repeated in autumn runs once."""
    tz = zone(timezone)
    local = after.replace(tzinfo=UTC).astimezone(tz)
    try:
        slot = next(CronSim(check_cron(cron), local))
    except (CronSimError, StopIteration) as exc:
        raise ScheduleError(f"Cron {cron!r}: no next run ({exc}).") from None
    return slot.astimezone(UTC).replace(tzinfo=None)


def check_cron(cron: str) -> str:
    """`cron` normalised, if it is a valid five-field expression (ScheduleError if not)."""
    text = " ".join(str(cron or "").split())
    if len(text.split(" ")) != 5:
        raise ScheduleError(
            f"Cron: got {cron!r}; allowed: five fields 'minute hour day month weekday', "
            "e.g. '0 7 * * *' (07:00 daily) or '0 8 * * MON' (Mondays 08:00)."
        )
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ScheduleError(
            f"Cron: got {cron!r} ({exc}); allowed: five fields 'minute hour day month "
            "weekday', e.g. '0 7 * * *'."
        ) from None
    return text


def _check_name(name: str) -> str:
    text = (name or "").strip()
    if not text or len(text) > MAX_NAME_LENGTH or not re.fullmatch(r"[\w .@:+-]+", text):
        raise ScheduleError(
            f"Schedule name: got {name!r}; give 1-{MAX_NAME_LENGTH} letters, digits, spaces "
            "or . _ - @ : +, e.g. daily-kpis."
        )
    return text


def _check_options(kind: str, options: dict[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    if kind == "export":
        fmt = options.setdefault("format", "csv")
        if fmt not in EXPORT_FORMATS:
            raise ScheduleError(
                f"Export format: got {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}."
            )
        channel = options.setdefault("channel", "email")
        if channel not in EXPORT_CHANNELS:
            raise ScheduleError(
                f"Export channel: got {channel!r}; allowed: {', '.join(EXPORT_CHANNELS)}."
            )
    if kind == "report":
        compare = options.setdefault("compare", "previous")
        if compare not in ("previous", "year_ago"):
            raise ScheduleError(f"Report comparison: got {compare!r}; allowed: previous, year_ago.")
    return options


def _owner(store: Store, owner: str) -> auth.User:
    """The schedule's owner: an existing user, whose rights the schedule runs with."""
    user = auth.get_user(store, owner)
    if user is None:
        raise ScheduleError(
            f"Schedule owner: no user {owner!r}; the schedule runs with its owner's rights (the "
            "owner's role decides, for example, an export's personal columns), so give an "
            "existing user (see `python -m crm_core users list`)."
        )
    return user


def _check_target(store: Store, kind: str, target: str, user: auth.User, options: dict) -> str:
    """The job's target, checked now so that a typo fails at `add`, not at 7 am."""
    target = (target or "").strip()
    if kind == "report":
        if target not in REPORT_TARGETS:
            raise ScheduleError(
                f"Report: got {target!r}; allowed: {', '.join(REPORT_TARGETS)} (overview: the "
                "KPI overview; home: the owner's Home page with its pinned KPIs and charts)."
            )
        if target == "home":
            from crm_core import home

            if not home.pins_for(store, user):
                raise ScheduleError(
                    f"Home report: {user.username} has no pins and the {user.role} role has no "
                    "published default Home, so there would be nothing to send. Pin KPIs or "
                    "charts from the views first (Pin to home)."
                )
    elif kind == "alert":
        from crm_core import alerts

        target = alerts.load_alert(store, target).name
    elif kind == "retention":
        if target not in ("", RETENTION_TARGET):
            raise ScheduleError(
                f"Retention: got {target!r}; a retention schedule applies every policy "
                f"(target {RETENTION_TARGET!r})."
            )
        target = RETENTION_TARGET
    else:
        from crm_core import export, segments

        target = segments.load_segment(store, target).name
        export._check_request(
            user.role, options["channel"], options["format"], options.get("columns") or [], 0.0
        )
    return target


KIND_ACTIONS = {
    "alert": "subscribe_alerts",
    "report": "schedule_reports",
    "export": "schedule_exports",
    "retention": "privacy_requests",
}
"""The action (crm_core.auth.ACTION_ROLES) a schedule's owner needs for each kind."""


def _check_kind(user: auth.User, kind: str) -> None:
    """The owner's role may schedule this kind of job at all (checked before the target)."""
    if not auth.can(user.role, KIND_ACTIONS[kind]):
        raise ScheduleError(
            f"Schedule owner {user.username!r}: the {user.role} role may not schedule {kind}s "
            f"(allowed: {', '.join(sorted(auth.ACTION_ROLES[KIND_ACTIONS[kind]]))})."
        )


def _check_rights(
    store: Store, kind: str, target: str, user: auth.User, destinations: list[dict[str, Any]]
) -> None:
    """The owner's role may schedule this kind (a marketer exports only their own segments;
    other roles deliver to folders inside the data folder only), so page and CLI agree."""
    if kind == "export" and not auth.can(user.role, "manage_all_schedules"):
        from crm_core import segments

        segment_owner = segments.load_segment(store, target).owner
        if segment_owner != user.username:
            raise ScheduleError(
                f"Export of {target!r}: it belongs to {segment_owner or 'nobody'}; a "
                f"{user.role} schedules exports of their own segments only (ask an admin)."
            )
    if auth.can(user.role, "deliver_to_folder"):
        return
    data_dir = get_settings().data_dir.resolve()
    for destination in destinations:
        folder = Path(destination.get("path", "")).resolve()
        if destination["kind"] == "folder" and (
            folder == data_dir or not folder.is_relative_to(data_dir)
        ):
            raise ScheduleError(
                f"Folder destination {str(folder)!r}: the {user.role} role may deliver only to "
                f"folders inside the app's data folder ({data_dir}, e.g. {data_dir / 'outbox'}); "
                "admins may name any folder on the server."
            )


def _validate_destinations(value: Any) -> list[dict[str, Any]]:
    """Checked destinations; none at all is [] (an export may only be written to disk)."""
    from crm_core import delivery

    if value is None or (isinstance(value, list | tuple | str) and not value):
        return []
    return delivery.validate_destinations(value)


# --- reading and writing schedules -------------------------------------------------------


def _row_to_schedule(row: Any) -> Schedule:
    return Schedule(
        schedule_id=int(row.schedule_id),
        name=row.name,
        kind=row.kind,
        target=row.target,
        cron=row.cron,
        timezone=row.timezone,
        destinations=json.loads(row.destinations or "[]"),
        owner=row.owner,
        options=json.loads(row.options or "{}"),
        paused=bool(row.paused),
        next_due_at=row.next_due_at,
        claimed_by=row.claimed_by,
        claimed_until=row.claimed_until,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _find(conn: sa.Connection, name: str) -> Any:
    return conn.execute(
        sa.select(schedules).where(sa.func.lower(schedules.c.name) == (name or "").strip().lower())
    ).first()


def add_schedule(
    store: Store,
    name: str,
    *,
    kind: str,
    target: str,
    cron: str,
    timezone: str = DEFAULT_TIMEZONE,
    destinations: Any,
    owner: str,
    options: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Check and save a new schedule; its first run is the first slot after `now`."""
    name = _check_name(name)
    if kind not in SCHEDULE_KINDS:
        raise ScheduleError(f"Schedule kind: got {kind!r}; allowed: {', '.join(SCHEDULE_KINDS)}.")
    cron = check_cron(cron)
    timezone = str(zone(timezone).key)
    owner = (owner or "").strip()
    if not owner:
        raise ScheduleError("Schedule owner: give the user whose rights the schedule uses.")
    checked_destinations = _validate_destinations(destinations)
    if not checked_destinations and kind not in ("export", "retention"):
        raise ScheduleError(
            f"A {kind} schedule needs at least one destination: an e-mail address, a webhook "
            "or a folder (an export without one is only written to the exports folder)."
        )
    checked_options = _check_options(kind, options)
    user = _owner(store, owner)
    _check_kind(user, kind)
    target = _check_target(store, kind, target, user, checked_options)
    _check_rights(store, kind, target, user, checked_destinations)
    now = now or utcnow()
    due = next_due(cron, timezone, now)
    with store.begin() as conn:
        lock_tables(conn, schedules)  # name check and next id: one writer at a time
        if _find(conn, name) is not None:
            raise ScheduleError(
                f"A schedule called {name!r} already exists; choose another name, or pause it."
            )
        schedule_id = next_id(conn, schedules.c.schedule_id)
        conn.execute(
            schedules.insert().values(
                schedule_id=schedule_id,
                name=name,
                kind=kind,
                target=target,
                options=json.dumps(checked_options),
                cron=cron,
                timezone=timezone,
                destinations=json.dumps(checked_destinations),
                owner=owner,
                paused=False,
                next_due_at=due,
                created_at=now,
                updated_at=now,
            )
        )
    return load_schedule(store, name)


def load_schedule(store: Store, name: str) -> Schedule:
    """The schedule called `name` (ScheduleError naming the known ones if there is none)."""
    with store.connect() as conn:
        row = _find(conn, name)
        if row is None:
            known = conn.execute(sa.select(schedules.c.name).order_by(schedules.c.name)).scalars()
            raise ScheduleError(
                f"No schedule called {name!r}. Schedules: {', '.join(known) or 'none yet'}."
            )
    return _row_to_schedule(row)


def get_schedule(store: Store, schedule_id: int) -> Schedule:
    """The schedule with id `schedule_id`."""
    with store.connect() as conn:
        row = conn.execute(
            sa.select(schedules).where(schedules.c.schedule_id == int(schedule_id))
        ).first()
    if row is None:
        raise ScheduleError(f"Schedule {schedule_id} does not exist.")
    return _row_to_schedule(row)


def list_schedules(store: Store) -> pd.DataFrame:
    """Every schedule with its last run; destinations with webhook secrets hidden."""
    from crm_core import delivery

    last = (
        sa.select(
            schedule_runs.c.schedule_id,
            sa.func.max(schedule_runs.c.run_id).label("run_id"),
        )
        .group_by(schedule_runs.c.schedule_id)
        .subquery("last")
    )
    stmt = (
        sa.select(
            schedules.c.schedule_id,
            schedules.c.name,
            schedules.c.kind,
            schedules.c.target,
            schedules.c.cron,
            schedules.c.timezone,
            schedules.c.destinations,
            schedules.c.options,
            schedules.c.owner,
            schedules.c.paused,
            schedules.c.next_due_at,
            schedule_runs.c.started_at.label("last_run_at"),
            schedule_runs.c.result.label("last_result"),
            schedule_runs.c.message.label("last_message"),
        )
        .outerjoin(last, last.c.schedule_id == schedules.c.schedule_id)
        .outerjoin(schedule_runs, schedule_runs.c.run_id == last.c.run_id)
        .order_by(schedules.c.name)
    )
    frame = store.read_df(stmt)
    frame["destinations"] = [
        delivery.redact(json.loads(text or "[]")) for text in frame["destinations"]
    ]
    frame["options"] = [json.loads(text or "{}") for text in frame["options"]]
    frame["paused"] = frame["paused"].astype(bool)
    return frame


def _may_manage(store: Store, schedule: Schedule, by: str) -> None:
    """Only a schedule's owner or an admin pauses, resumes or removes it."""
    user = auth.get_user(store, by)
    if user is None:
        raise ScheduleError(
            f"Schedule {schedule.name!r}: no user {by!r}; act as an existing user (see "
            "`python -m crm_core users list`)."
        )
    if user.username != schedule.owner and not auth.can(user.role, "manage_all_schedules"):
        raise ScheduleError(
            f"Not allowed: schedule {schedule.name!r} belongs to {schedule.owner}; only its "
            "owner or an admin may pause, resume or remove it."
        )


def _set_paused(store: Store, name: str, paused: bool, by: str, now: datetime | None) -> Schedule:
    schedule = load_schedule(store, name)
    _may_manage(store, schedule, by)
    now = now or utcnow()
    due = None if paused else next_due(schedule.cron, schedule.timezone, now)
    with store.begin() as conn:
        conn.execute(
            schedules.update()
            .where(schedules.c.schedule_id == schedule.schedule_id)
            .values(paused=paused, next_due_at=due, updated_at=now)
        )
    log.info("schedule %s %s by %s", schedule.name, "paused" if paused else "resumed", by)
    return load_schedule(store, name)


def pause(store: Store, name: str, *, by: str, now: datetime | None = None) -> Schedule:
    """Stop a schedule from running (its next slot is cleared) until `resume`."""
    return _set_paused(store, name, True, by, now)


def resume(store: Store, name: str, *, by: str, now: datetime | None = None) -> Schedule:
    """Run a paused schedule again from its first slot after now (missed slots are skipped)."""
    return _set_paused(store, name, False, by, now)


def delete_schedule(store: Store, name: str, *, by: str) -> None:
    """Remove a schedule (its owner or an admin); its run log and deliveries stay."""
    schedule = load_schedule(store, name)
    _may_manage(store, schedule, by)
    with store.begin() as conn:
        conn.execute(schedules.delete().where(schedules.c.schedule_id == schedule.schedule_id))
    log.info("schedule %s deleted by %s", schedule.name, by)


# --- claiming and running ----------------------------------------------------------------


def due_schedules(store: Store, now: datetime) -> list[Schedule]:
    """Schedules due at `now`: not paused, slot reached, no live claim (earliest first)."""
    c = schedules.c
    stmt = (
        sa.select(schedules)
        .where(
            sa.not_(c.paused),
            c.next_due_at.is_not(None),
            c.next_due_at <= now,
            sa.or_(c.claimed_until.is_(None), c.claimed_until < now),
        )
        .order_by(c.next_due_at, c.schedule_id)
    )
    with store.connect() as conn:
        return [_row_to_schedule(row) for row in conn.execute(stmt)]


def claim(
    store: Store,
    schedule_id: int,
    *,
    runner: str,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
) -> bool:
    """Take a due schedule for `runner` until now + `lease`; True for exactly one claimer.

    One conditional UPDATE in a transaction: on PostgreSQL a second claimer waits for the
    first one's row lock and then finds the row claimed (0 rows); DuckDB's writers take
    turns (and a write-write conflict counts as "someone else won").
    """
    c = schedules.c
    stmt = (
        schedules.update()
        .where(
            c.schedule_id == int(schedule_id),
            sa.or_(c.claimed_until.is_(None), c.claimed_until < now),
            c.next_due_at.is_not(None),
            c.next_due_at <= now,
            sa.not_(c.paused),
        )
        .values(claimed_by=runner, claimed_until=now + lease)
        .returning(c.schedule_id)
    )
    try:
        with store.begin() as conn:
            won = conn.execute(stmt).first() is not None
    except sa.exc.DBAPIError as exc:
        if _lost_race(exc):
            return False
        raise
    return won


def _lost_race(exc: sa.exc.DBAPIError) -> bool:
    """Whether a write failed only because a concurrent transaction wrote the same row or key
    first (DuckDB: a write-write conflict, or a duplicate key found at commit)."""
    text = str(exc.orig).lower()
    return any(
        words in text for words in ("conflict", "serializ", "duplicate key", "constraint violation")
    )


def release(store: Store, schedule_id: int, *, runner: str) -> None:
    """Give up `runner`'s claim on a schedule (without running it)."""
    with store.begin() as conn:
        conn.execute(
            schedules.update()
            .where(schedules.c.schedule_id == int(schedule_id), schedules.c.claimed_by == runner)
            .values(claimed_by=None, claimed_until=None)
        )


def release_abandoned(store: Store, host: str, alive: Callable[[int], bool]) -> list[str]:
    """Free the claims of runners on `host` whose process is gone (`alive(pid)` False; e.g.
    the app was stopped mid-run) and close their `running` rows as failed; their names.
    Without this the job would wait for the claim's lease to lapse."""
    prefix = f"{host}:"
    with store.connect() as conn:
        claimed = conn.execute(
            sa.select(schedules.c.schedule_id, schedules.c.claimed_by).where(
                schedules.c.claimed_by.is_not(None)
            )
        ).all()
    freed: list[str] = []
    for schedule_id, runner in claimed:
        pid = runner[len(prefix) :] if runner.startswith(prefix) else ""
        if not pid.isdigit() or alive(int(pid)):
            continue
        with store.begin() as conn:
            conn.execute(
                schedule_runs.update()
                .where(
                    schedule_runs.c.schedule_id == schedule_id,
                    schedule_runs.c.runner == runner,
                    schedule_runs.c.result == "running",
                )
                .values(
                    result="failed",
                    message=f"The scheduler {runner} stopped during the run; it runs again.",
                )
            )
            conn.execute(
                schedules.update()
                .where(schedules.c.schedule_id == schedule_id, schedules.c.claimed_by == runner)
                .values(claimed_by=None, claimed_until=None)
            )
        freed.append(runner)
    return freed


@dataclass
class _Outcome:
    """What a job produced: its result, words, figures, the message to deliver, a file."""

    result: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    deliver: Any = None  # a delivery.Message, or None: nothing to send
    file_path: str | None = None


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


GRAIN_DAYS = {"day": 1, "week": 7, "month": 31}
"""Days of one period of an alert's grain: data older than that before today is stale."""


def _last_sent(store: Store, schedule: Schedule) -> tuple[int, dict[str, Any]] | None:
    """The schedule's last delivered firing (a run with result "fired"): its id and detail."""
    with store.connect() as conn:
        row = conn.execute(
            sa.select(schedule_runs.c.run_id, schedule_runs.c.detail)
            .where(
                schedule_runs.c.schedule_id == schedule.schedule_id,
                schedule_runs.c.result == "fired",
            )
            .order_by(schedule_runs.c.run_id.desc())
            .limit(1)
        ).first()
    return None if row is None else (int(row.run_id), json.loads(row.detail or "{}"))


def _data_ends(measure: dict[str, Any], at_text: str | None, now: datetime) -> str | None:
    """Words saying a KPI's data ends on a day ("The data ends on 30 Jun 2026.") when its
    latest data is more than one period of its grain before today, else None."""
    days = GRAIN_DAYS.get(measure.get("grain") or "") if measure.get("kind") == "kpi" else None
    if days is None or not at_text:
        return None
    at = datetime.fromisoformat(at_text).date()
    if (now.date() - at).days <= days:
        return None
    return f"The data ends on {at:%d %b %Y}."


def _run_alert(
    store: Store, schedule: Schedule, *, now: datetime | None = None, force: bool = False
) -> _Outcome:
    """Evaluate the schedule's alert and deliver it when it fires, once per period: a due run
    whose period was already sent (same rule version) delivers nothing and says so, unless
    `force` (a run by hand). A KPI whose data stopped says on which day it ends."""
    from crm_core import alerts, delivery

    saved = alerts.load_alert(store, schedule.target)
    result = alerts.evaluate(store, saved.definition)
    facts = dict(result.detail or {})
    stale = _data_ends(facts.get("measure") or {}, facts.get("at"), now or utcnow())
    if stale:
        result.message = f"{result.message} {stale}"
        result.detail = {**facts, "data_ends": facts["at"]}
    detail = {
        "alert": saved.name,
        "version": saved.version,
        "fired": bool(result.fired),
        "value": result.value,
        "reference": result.reference,
        "lower": result.lower,
        "upper": result.upper,
        "period": result.period,
        **(result.detail or {}),
    }
    if not result.fired:
        return _Outcome("quiet", result.message, detail)
    last = None if force else _last_sent(store, schedule)
    if (
        last is not None
        and last[1].get("period_start") == detail.get("period_start")
        and last[1].get("version") == saved.version
    ):
        words = f"Already sent for {result.period}; no new period since."
        if stale:
            words = f"{words} {stale}"
        return _Outcome("repeat", words, {**detail, "already_sent_by_run": last[0]})
    describe = getattr(alerts, "describe", None)
    rule = describe(saved.definition) if describe else ""
    html = (
        f'<div style="font-family:Arial,sans-serif"><h2 style="margin:0 0 8px">'
        f"Alert: {_escape(saved.name)}</h2><p>{_escape(result.message)}</p>"
        f'<p style="color:#555">Rule: {_escape(rule)}<br>Period: {_escape(result.period)}</p>'
        f'<p style="color:#888;font-size:12px">Schedule {_escape(schedule.name)}</p></div>'
    )
    message = delivery.Message(
        subject=f"CRM alert: {saved.name}",
        text=f"{result.message}\n\nRule: {rule}\nPeriod: {result.period}\n",
        html=html,
        attachments=[],
        images=[],
        payload={"schedule": schedule.name, "kind": "alert", **_json_safe(detail)},
        kind="alert",
    )
    return _Outcome("fired", result.message, detail, message)


def _escape(text: Any) -> str:
    import html

    return html.escape(str(text if text is not None else ""))


def _run_as(store: Store, schedule: Schedule) -> auth.User:
    """The schedule's owner, whose rights the run uses (ScheduleError if they were removed)."""
    user = auth.get_user(store, schedule.owner)
    if user is None:
        raise ScheduleError(
            f"The schedule's owner {schedule.owner!r} no longer exists; give the schedule "
            "another owner (delete it and add it again)."
        )
    return user


def _run_report(store: Store, schedule: Schedule) -> _Outcome:
    from crm_core import reports
    from crm_core.filters import default_filters

    if schedule.target == reports.HOME_REPORT:
        user = _run_as(store, schedule)
        message = reports.home_report(store, user, title=schedule.options.get("title"))
        pins = len(message.payload["pins"])
        detail = {"report": schedule.target, "home_of": user.username, "pins": pins}
        words = f"Home page of {user.username} ({plural(pins, 'pin')})"
        return _Outcome("sent", words, detail, message)
    filters = reports.resolve_filters(
        default_filters(store), compare=schedule.options.get("compare", "previous")
    )
    message = reports.overview_report(store, filters, title=schedule.options.get("title"))
    detail = {"report": schedule.target, "start": str(filters.start), "end": str(filters.end)}
    words = f"KPI overview, {filters.start:%d %b %Y} – {filters.end:%d %b %Y}"
    return _Outcome("sent", words, detail, message)


def _run_export(store: Store, schedule: Schedule) -> _Outcome:
    from crm_core import delivery, export

    user = _run_as(store, schedule)
    # Written into <data_dir>/exports first: a failed delivery never loses the file.
    result = export.export_segment(
        store,
        schedule.target,
        user=user,
        channel=schedule.options.get("channel", "email"),
        fmt=schedule.options.get("format", "csv"),
        columns=schedule.options.get("columns") or None,
    )
    detail = {
        "export_id": result.export_id,
        "segment": result.segment_name,
        "version": result.segment_version,
        "rows": result.rows,
        "selected": result.selected,
        "excluded": result.excluded,
        "format": result.format,
        "sha256": result.sha256,
        "file": result.path.name,
    }
    words = (
        f"Exported {result.rows:,} of {result.selected:,} customers of {result.segment_name!r} "
        f"v{result.segment_version} to {result.path.name}"
    )
    message = delivery.Message(
        subject=f"CRM export: {result.segment_name} ({result.rows:,} customers)",
        text=words + ".\n",
        html=f'<p style="font-family:Arial,sans-serif">{_escape(words)}.</p>',
        attachments=[
            delivery.Attachment(
                result.path.name,
                result.path.read_bytes(),
                export.MIME_TYPES.get(result.format, "application/octet-stream"),
            ),
            delivery.Attachment(
                result.manifest_path.name,
                result.manifest_path.read_bytes(),
                "application/json",
            ),
        ],
        images=[],
        payload={"schedule": schedule.name, "kind": "export", **_json_safe(detail)},
        kind="export",
    )
    return _Outcome("sent", words, detail, message, str(Path(result.path).resolve()))


def _run_retention(store: Store, schedule: Schedule) -> _Outcome:
    from crm_core import delivery, retention

    user = _run_as(store, schedule)
    run = retention.apply(store, by=user.username)
    words = " ".join(run.summary())
    detail = {"rows": run.rows, "actions": run.actions}
    message = delivery.Message(
        subject="CRM retention applied",
        text=words + "\n",
        html=f'<p style="font-family:Arial,sans-serif">{_escape(words)}</p>',
        attachments=[],
        images=[],
        payload={"schedule": schedule.name, "kind": "retention", **_json_safe(detail)},
        kind="retention",
    )
    return _Outcome("sent", words, detail, message)


JOBS = {
    "alert": _run_alert,
    "report": _run_report,
    "export": _run_export,
    "retention": _run_retention,
}


def _start_run(
    store: Store, schedule: Schedule, *, due_at: datetime | None, now: datetime, runner: str
) -> int:
    """Insert the run's `running` row; its id. PostgreSQL: the table lock makes ids take
    turns; DuckDB with two engines in one process: a clash on the id is tried again."""
    for attempt in range(5):
        try:
            with store.begin() as conn:
                lock_tables(conn, schedule_runs)
                run_id = next_id(conn, schedule_runs.c.run_id)
                conn.execute(
                    schedule_runs.insert().values(
                        run_id=run_id,
                        schedule_id=schedule.schedule_id,
                        due_at=due_at,
                        started_at=now,
                        result="running",
                        runner=runner,
                    )
                )
            return run_id
        except sa.exc.DBAPIError as exc:
            if not (_lost_race(exc) or isinstance(exc, sa.exc.IntegrityError)) or attempt == 4:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def run_schedule(
    store: Store,
    schedule: Schedule,
    *,
    due_at: datetime | None,
    now: datetime | None = None,
    runner: str,
    force: bool | None = None,
) -> Run:
    """Run one schedule now: log it, run the job, deliver, and (for a slot, `due_at` given)
    move next_due_at to the first slot after `now` and release the claim. A run by hand
    (`due_at` None) leaves the schedule's slots alone. Never raises for a failing job.
    `force` (default: a run by hand) delivers an alert whose period was already sent."""
    now = now or utcnow()
    started = time.monotonic()
    run_id = _start_run(store, schedule, due_at=due_at, now=now, runner=runner)
    outcome = _Outcome("failed", "")
    try:
        job = JOBS[schedule.kind]
        if job is _run_alert:  # a run by hand delivers even a period already sent
            forced = due_at is None if force is None else force
            outcome = _run_alert(store, schedule, now=now, force=forced)
        else:
            outcome = job(store, schedule)
        if outcome.deliver is not None and schedule.destinations:
            outcome = _deliver(store, schedule, outcome, run_id)
    except CRMError as exc:
        outcome = _Outcome("failed", str(exc), outcome.detail, None, outcome.file_path)
    except Exception as exc:  # a bug or an outage: logged, and the loop goes on
        log.exception("schedule %s run %s failed", schedule.name, run_id)
        outcome = _Outcome(
            "failed", f"{type(exc).__name__}: {exc}", outcome.detail, None, outcome.file_path
        )
    finished = now + timedelta(seconds=time.monotonic() - started)
    _finish(store, schedule, run_id, outcome, finished, due_at=due_at, now=now, runner=runner)
    return load_run(store, run_id)


def _deliver(store: Store, schedule: Schedule, outcome: _Outcome, run_id: int) -> _Outcome:
    """Send the outcome's message to every destination; failures become delivery_failed."""
    from crm_core import delivery

    try:
        delivery.deliver(
            store,
            outcome.deliver,
            schedule.destinations,
            run_id=run_id,
            retries=len(DELIVERY_BACKOFF),
            backoff_seconds=DELIVERY_BACKOFF,
        )
    except Exception as exc:  # deliver should not raise; if it does, the run says so
        log.exception("schedule %s run %s: delivery raised", schedule.name, run_id)
        outcome.result = "delivery_failed"
        outcome.message = (
            outcome.message.rstrip(".") + f". Delivery failed: {type(exc).__name__}: {exc}"
        )
        return outcome
    failed = store.read_df(
        sa.select(deliveries.c.kind, deliveries.c.target, deliveries.c.error).where(
            deliveries.c.run_id == run_id, deliveries.c.status == "failed"
        )
    )
    if len(failed):
        outcome.result = "delivery_failed"
        outcome.message = (
            outcome.message.rstrip(".")
            + ". Delivery failed: "
            + "; ".join(f"{row.kind} {row.target}: {row.error}" for row in failed.itertuples())
        )
        if outcome.file_path:  # the name only: the app shows messages to every role
            outcome.message += (
                f" (the file is kept in the exports folder as {Path(outcome.file_path).name})"
            )
    return outcome


def _finish(
    store: Store,
    schedule: Schedule,
    run_id: int,
    outcome: _Outcome,
    finished: datetime,
    *,
    due_at: datetime | None,
    now: datetime,
    runner: str,
) -> None:
    """Write the run's result; for a slot, set the next slot after `now` and release."""
    with store.begin() as conn:
        conn.execute(
            schedule_runs.update()
            .where(schedule_runs.c.run_id == run_id)
            .values(
                result=outcome.result,
                message=outcome.message,
                detail=json.dumps(_json_safe(outcome.detail)),
                finished_at=finished,
                file_path=outcome.file_path,
            )
        )
        if due_at is None:
            return
        current = conn.execute(
            sa.select(schedules.c.paused, schedules.c.cron, schedules.c.timezone).where(
                schedules.c.schedule_id == schedule.schedule_id
            )
        ).first()
        if current is None:  # deleted while it ran
            return
        values: dict[str, Any] = {"claimed_by": None, "claimed_until": None}
        values["next_due_at"] = (
            None if current.paused else next_due(current.cron, current.timezone, now)
        )
        conn.execute(
            schedules.update()
            .where(schedules.c.schedule_id == schedule.schedule_id)
            .values(**values)
        )


def _runs_stmt() -> sa.Select:
    return sa.select(schedule_runs, schedules.c.name.label("schedule_name")).outerjoin(
        schedules, schedules.c.schedule_id == schedule_runs.c.schedule_id
    )


def _delivery_ids(store: Store, run_ids: list[int]) -> dict[int, list[int]]:
    if not run_ids:
        return {}
    found = store.read_df(
        sa.select(deliveries.c.run_id, deliveries.c.delivery_id)
        .where(deliveries.c.run_id.in_(run_ids))
        .order_by(deliveries.c.delivery_id)
    )
    ids: dict[int, list[int]] = {}
    for run_id, delivery_id in zip(found["run_id"], found["delivery_id"], strict=True):
        ids.setdefault(int(run_id), []).append(int(delivery_id))
    return ids


def load_run(store: Store, run_id: int) -> Run:
    """One run of the log, with its delivery ids."""
    with store.connect() as conn:
        row = conn.execute(_runs_stmt().where(schedule_runs.c.run_id == int(run_id))).first()
    if row is None:
        raise ScheduleError(f"Run {run_id} does not exist.")
    return Run(
        run_id=int(row.run_id),
        schedule_id=int(row.schedule_id),
        schedule_name=row.schedule_name or "",
        due_at=row.due_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        result=row.result,
        message=row.message or "",
        detail=json.loads(row.detail or "{}"),
        runner=row.runner or "",
        file_path=row.file_path,
        delivery_ids=_delivery_ids(store, [int(row.run_id)]).get(int(row.run_id), []),
    )


def runs(store: Store, name: str | None = None, limit: int = 100) -> pd.DataFrame:
    """The run log, newest first (one schedule's with `name`), with each run's deliveries:
    `delivery_ids` and `deliveries` (a list of {kind, target, status, attempts, error})."""
    stmt = _runs_stmt().order_by(schedule_runs.c.run_id.desc()).limit(int(limit))
    if name is not None:
        stmt = stmt.where(schedule_runs.c.schedule_id == load_schedule(store, name).schedule_id)
    frame = store.read_df(stmt)
    run_ids = [int(r) for r in frame["run_id"]]
    sent = (
        store.read_df(
            sa.select(deliveries)
            .where(deliveries.c.run_id.in_(run_ids))
            .order_by(deliveries.c.delivery_id)
        )
        if run_ids
        else pd.DataFrame(columns=[c.name for c in deliveries.columns])
    )
    by_run: dict[int, list[dict[str, Any]]] = {}
    for row in sent.itertuples(index=False):
        by_run.setdefault(int(row.run_id), []).append(
            {
                "delivery_id": int(row.delivery_id),
                "kind": row.kind,
                "target": row.target,
                "status": row.status,
                "attempts": int(row.attempts),
                "error": row.error if isinstance(row.error, str) else None,
            }
        )
    frame["deliveries"] = [by_run.get(r, []) for r in run_ids]
    frame["delivery_ids"] = [[d["delivery_id"] for d in by_run.get(r, [])] for r in run_ids]
    return frame
