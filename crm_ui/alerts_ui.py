"""Alerts and schedules in the app: cached reads, the rule and schedule forms, the tables."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import available_timezones

import pandas as pd
import streamlit as st

from crm_core import alerts, auth, delivery, metrics, schedules
from crm_core.errors import CRMError
from crm_core.filters import Filters
from crm_ui import data, tables
from crm_ui.data import store

CRON_PRESETS = {
    "Every day at 07:00": "0 7 * * *",
    "Mondays at 07:00": "0 7 * * 1",
    "The 1st of the month at 07:00": "0 7 1 * *",
    "Custom": "",
}
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
)
SCHEDULE_KINDS = {
    "alert": ("An alert rule", "subscribe_alerts"),
    "report": ("A report", "schedule_reports"),
    "export": ("An export of a segment", "schedule_exports"),
}
"""kind -> (words, the action a role needs to schedule it)."""
RESULT_BADGES = {
    "sent": "✅ sent",
    "fired": "🔔 fired",
    "quiet": "✅ quiet",
    "repeat": "🔁 already sent",
    "running": "⏳ running",
    "skipped": "⏭ skipped",
    "failed": "❌ failed",
    "delivery_failed": "⚠️ delivery failed",
}
FAILED = ("failed", "delivery_failed")
SECRET_KEY = "sched_secret"
"""Session key of a new webhook's (schedule name, secret), shown once then dropped."""


# --- cached reads and writes ----------------------------------------------------------------


@data.reads("alert_rules", show_spinner=False, ttl=60)
def saved_alerts() -> pd.DataFrame:
    """Live alert rules, latest version each, with the rule in words."""
    return alerts.list_alerts(store())


@data.reads(
    "orders",
    "customers",
    "survey_responses",
    "segments",
    "segment_sizes",
    "score_runs",
    show_spinner="Replaying the rule over the last 12 months...",
    ttl=600,
)
def backtest(definition_json: str) -> alerts.Backtest:
    """The rule's backtest (the definition as JSON text, so the cache key is exact)."""
    return alerts.backtest(store(), json.loads(definition_json))


@data.reads("schedules", "schedule_runs", show_spinner=False, ttl=30)
def schedule_list() -> pd.DataFrame:
    """Every schedule with its last run (webhook secrets hidden)."""
    return schedules.list_schedules(store())


@data.reads("schedules", "schedule_runs", "deliveries", show_spinner=False, ttl=30)
def run_log(limit: int = 200) -> pd.DataFrame:
    """The newest runs with their deliveries."""
    return schedules.runs(store(), limit=limit)


def written(*tables_: str) -> None:
    """Forget cached reads of the tables a write changed."""
    data.tables_changed(*tables_)


def rule_key(definition: dict[str, Any]) -> str:
    """The checked rule as stable JSON (the backtest's cache key); AlertError if invalid."""
    return json.dumps(alerts.validate(definition), sort_keys=True)


def delete_schedule(name: str, user: auth.User) -> str:
    """Delete schedule `name` and forget cached schedule reads; its name."""
    schedules.delete_schedule(store(), name, by=user.username)
    written("schedules")
    return name


def visible(frame: pd.DataFrame, user: auth.User, column: str = "owner") -> pd.DataFrame:
    """The rows `user` may see: their own, or all for an admin."""
    if user.can("manage_all_schedules") or frame.empty:
        return frame
    return frame[frame[column] == user.username]


def may_manage(user: auth.User, owner: str | None) -> bool:
    """Whether `user` may change (pause, delete) something owned by `owner`."""
    return user.can("manage_all_schedules") or owner == user.username


# --- the alert rule form --------------------------------------------------------------------


def alert_definition(filters: Filters | None, segment_names: list[str]) -> dict[str, Any]:
    """The measure and condition widgets; the definition as chosen (checked by crm_core)."""
    kinds = {"kpi": "A KPI", "segment_size": "A saved segment's size", "score": "A score aggregate"}
    kind = st.radio(
        "Watch",
        list(kinds),
        format_func=kinds.get,
        horizontal=True,
        key="al_measure",
        help="A KPI of the overview, the size of a saved segment (as recorded at each save, "
        "export or measure), or a figure of the latest scoring run.",
    )
    if kind == "kpi":
        left, right = st.columns(2)
        metric = left.selectbox(
            "KPI",
            list(metrics.METRICS),
            format_func=lambda m: metrics.METRICS[m].label,
            key="al_metric",
            help="Defined once in the glossary, as on the KPI overview.",
        )
        grain = right.selectbox(
            "Per",
            alerts.GRAINS,
            index=1,
            format_func=str.capitalize,
            key="al_grain",
            help="The rule checks the last complete day, week or month.",
        )
        countries = list(filters.countries) if filters else []
        channels = list(filters.channels) if filters else []
        scope = ", ".join(countries + channels) or "all countries and channels"
        st.caption(f"Scope, from the sidebar's filters: {scope}.")
        measure: dict[str, Any] = {
            "kind": "kpi",
            "metric": metric,
            "grain": grain,
            "countries": countries,
            "channels": channels,
        }
    elif kind == "segment_size":
        if not segment_names:
            st.info("No saved segments yet: save one in the Segment builder first.")
        segment = st.selectbox("Segment", segment_names, key="al_segment")
        measure = {"kind": "segment_size", "segment": segment or ""}
    else:
        aggregate = st.selectbox(
            "Score aggregate",
            list(alerts.SCORE_AGGREGATES),
            format_func=lambda a: alerts.SCORE_AGGREGATES[a].label,
            key="al_aggregate",
            help="Recorded at each scoring run (python -m crm_core score).",
        )
        measure = {"kind": "score", "aggregate": aggregate}
    return {"measure": measure, "condition": _condition(measure)}


def _condition(measure: dict[str, Any]) -> dict[str, Any]:
    words = {
        "threshold": "Crosses a threshold",
        "change": "Changes by a percentage",
        "anomaly": "Is unusual (anomaly)",
    }
    kind = st.radio(
        "Fire when it",
        alerts.CONDITIONS,
        format_func=words.get,
        horizontal=True,
        key="al_condition",
        help="Anomaly: the value falls outside the prediction interval of a seasonal "
        "forecast fitted on its own history.",
    )
    left, right = st.columns(2)
    if kind == "threshold":
        op = left.selectbox("Fire when the value is", alerts.OPS, key="al_op")
        percent = alerts.measure_metric(measure).format == "percent"
        value = right.number_input(
            "Threshold",
            value=0.0,
            key="al_value",
            help="In the measure's unit"
            + (": a share, 0.25 for 25%." if percent else " (money in the store's currency)."),
        )
        return {"kind": "threshold", "op": op, "value": float(value)}
    if kind == "change":
        against = left.selectbox(
            "Against",
            list(alerts.AGAINST),
            format_func=alerts.AGAINST.get,
            key="al_against",
        )
        direction = right.selectbox(
            "Direction",
            alerts.DIRECTIONS,
            key="al_direction",
            help="down: fires on a fall; up: on a rise; either: on both.",
        )
        percent = st.number_input("By at least (%)", min_value=0.1, value=20.0, key="al_percent")
        return {
            "kind": "change",
            "against": against,
            "direction": direction,
            "percent": float(percent),
        }
    level = left.select_slider(
        "Expected range",
        options=[0.8, 0.9, 0.95, 0.99],
        value=alerts.default_level(measure.get("grain")),
        format_func=lambda v: f"{v:.0%}",
        key=f"al_level_{measure.get('grain', 'none')}",
        help="The prediction interval's level: wider (99%) fires less often. A daily rule "
        "starts at 99%: it checks 365 days a year, and at 95% even a perfect forecast would "
        "fire about 18 times.",
    )
    return {"kind": "anomaly", "level": float(level)}


# --- the schedule form ----------------------------------------------------------------------


def zones() -> list[str]:
    """Time zones, the common ones first."""
    rest = sorted(z for z in available_timezones() if z not in COMMON_ZONES)
    return [*COMMON_ZONES, *rest]


def allowed_kinds(user: auth.User) -> list[str]:
    """The schedule kinds `user`'s role may create."""
    return [kind for kind, (_, action) in SCHEDULE_KINDS.items() if user.can(action)]


def export_targets(user: auth.User, saved: pd.DataFrame) -> list[str]:
    """Saved segments `user` may schedule exports of: their own (all for an admin)."""
    if saved.empty:
        return []
    return visible(saved, user)["name"].tolist()


def destinations_widgets(user: auth.User, kind: str) -> list[dict[str, Any]]:
    """E-mail, webhook and (admins) folder inputs; the destinations (webhook secret new)."""
    emails = st.text_input(
        "E-mail to",
        key="sc_emails",
        placeholder="ops@example.com, ceo@example.com",
        help="Comma-separated addresses; sent through the CRM_SMTP_URL server.",
    )
    url = st.text_input(
        "Webhook URL",
        key="sc_webhook",
        placeholder="https://hooks.example.com/crm",
        help="An HTTPS POST of a JSON payload, signed with HMAC-SHA256 (headers "
        "X-CRM-Timestamp, X-CRM-Signature); the secret is shown once after creation.",
    )
    folder = ""
    if user.can("deliver_to_folder"):
        folder = st.text_input(
            "Folder",
            key="sc_folder",
            help="An absolute folder on the server the file (or report) is written to.",
        )
    out: list[dict[str, Any]] = []
    addresses = [a.strip() for a in emails.replace(";", ",").split(",") if a.strip()]
    if addresses:
        out.append({"kind": "email", "to": addresses})
    if url.strip():
        out.append({"kind": "webhook", "url": url.strip(), "secret": delivery.new_secret()})
    if folder.strip():
        out.append({"kind": "folder", "path": folder.strip()})
    if kind == "export" and not out:
        st.caption("No destination: the file is only written to the server's exports folder.")
    return out


def cron_widgets() -> tuple[str, str]:
    """(cron, time zone) from a preset or a custom expression."""
    left, right = st.columns(2)
    preset = left.selectbox("When", list(CRON_PRESETS), key="sc_preset")
    cron = CRON_PRESETS[preset]
    if preset == "Custom":
        cron = left.text_input(
            "Cron expression",
            value="0 7 * * 1-5",
            key="sc_cron",
            help="Five fields: minute hour day-of-month month weekday, e.g. '30 6 * * 1-5' "
            "(weekdays at 06:30).",
        )
    zone = right.selectbox(
        "Time zone",
        zones(),
        key="sc_zone",
        help="The cron times are read in this zone (daylight saving included).",
    )
    return cron, zone


REPORT_NAMES = {
    "overview": "KPI overview",
    "home": "My Home page (pinned KPIs and charts)",
}
"""The report targets (crm_core.schedules.REPORT_TARGETS) as the form names them."""


def new_schedule(
    user: auth.User, kind: str | None, alert_names: list[str], segs: pd.DataFrame
) -> None:
    """The rest of the new-schedule form for `kind`: target, name, when, options, where;
    creates it (the owner: `user`) and shows a new webhook's secret once."""
    if kind == "alert":
        targets = alert_names
    elif kind == "report":
        targets = list(schedules.REPORT_TARGETS)
    else:
        targets = export_targets(user, segs)
    target = st.selectbox(
        "What",
        targets,
        key=f"sc_target_{kind}",
        format_func=REPORT_NAMES.get if kind == "report" else str,
        help="Reports: the KPI overview, or your Home page as it is when the report is sent "
        "(its pinned KPIs and charts, each with its own filters). Exports: your own saved "
        "segments (an admin: anyone's).",
    )
    if not targets:
        st.info("Nothing to schedule yet: save an alert rule or a segment of yours first.")
    name = st.text_input("Schedule name", key="sc_name", help="Unique, e.g. daily-kpis.")
    cron, zone = cron_widgets()
    options = {}
    if kind == "export":
        left, right = st.columns(2)
        options["format"] = left.selectbox("Format", schedules.EXPORT_FORMATS, key="sc_format")
        options["channel"] = right.selectbox(
            "Channel",
            schedules.EXPORT_CHANNELS,
            key="sc_channel",
            help="Which consent the customers must have (email / sms), or none.",
        )
    destinations = destinations_widgets(user, kind)
    if st.button("Create schedule", disabled=not targets or kind is None):
        created = guard(
            schedules.add_schedule,
            store(),
            name,
            kind=kind,
            target=target,
            cron=cron,
            timezone=zone,
            destinations=destinations,
            owner=user.username,
            options=options,
        )
        if created is not None:
            written("schedules")
            hook = next((d for d in destinations if d["kind"] == "webhook"), None)
            if hook:
                st.session_state[SECRET_KEY] = (created.name, hook["secret"])
            flash(
                f"Created schedule {created.name}; next run "
                f"{next_due_local(created.next_due_at, created.timezone)}."
            )
            st.rerun()


# --- tables ---------------------------------------------------------------------------------


def next_due_local(when: Any, zone: str) -> str:
    """A naive UTC time as the schedule's local time ("paused" when none)."""
    if when is None or pd.isna(when):
        return "—"
    local = pd.Timestamp(when).tz_localize("UTC").tz_convert(schedules.zone(zone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def schedule_table(frame: pd.DataFrame) -> None:
    """The schedules in words: what, when (next due in its zone), where, whose, last result."""
    shown = pd.DataFrame(
        {
            "name": frame["name"],
            "kind": frame["kind"],
            "target": frame["target"],
            "cron": frame["cron"],
            "next_due": [
                "paused" if p else next_due_local(w, z)
                for p, w, z in zip(
                    frame["paused"], frame["next_due_at"], frame["timezone"], strict=True
                )
            ],
            "destinations": [
                "; ".join(delivery.describe(d) for d in ds) or "exports folder only"
                for ds in frame["destinations"]
            ],
            "owner": frame["owner"],
            "last_result": [
                RESULT_BADGES.get(r, "") if isinstance(r, str) else "never run"
                for r in frame["last_result"]
            ],
        }
    )
    tables.show_table(
        shown,
        column_config={
            "next_due": "Next run (its time zone)",
            "destinations": "Delivered to",
            "last_result": "Last run",
            "cron": "Cron",
        },
    )


def _deliveries_words(items: list[dict[str, Any]]) -> str:
    words = []
    for d in items:
        text = f"{d['kind']} {d['target']}: {d['status']}"
        if d["status"] == "failed":
            text += f" after {d['attempts']} tries ({d['error']})"
        words.append(text)
    return "; ".join(words) or "none"


def history_table(frame: pd.DataFrame) -> None:
    """The run log, failures first at a glance (a badge, and a warning above the table)."""
    failed = frame[frame["result"].isin(FAILED)]
    if not failed.empty:
        st.warning(
            f"{len(failed)} of these runs failed or could not deliver: "
            + ", ".join(sorted(set(failed["schedule_name"].fillna("?")))),
            icon=":material/error:",
        )
    shown = pd.DataFrame(
        {
            "result": [RESULT_BADGES.get(r, r) for r in frame["result"]],
            "job": frame["schedule_name"],
            "due_at": frame["due_at"],
            "started_at": frame["started_at"],
            "finished_at": frame["finished_at"],
            "message": frame["message"],
            "deliveries": [_deliveries_words(d) for d in frame["deliveries"]],
            "file_path": frame["file_path"],
            "runner": frame["runner"],
        }
    )
    tables.show_table(
        shown,
        column_config={
            "result": "Result",
            "job": "Job",
            "due_at": "Due (UTC; empty: run by hand)",
            "started_at": "Started (UTC)",
            "finished_at": "Finished (UTC)",
            "message": "Message",
            "deliveries": "Deliveries",
            "file_path": "File kept at",
            "runner": "Runner",
        },
    )


def show_secret_once() -> None:
    """The signing secret of a webhook just created (once: dropped after this run)."""
    if (shown := st.session_state.pop(SECRET_KEY, None)) is None:
        return
    name, secret = shown
    st.warning(
        f"Signing secret of the webhook of **{name}**: copy it now into the receiver; it is "
        "never shown again (listings hide it).",
        icon=":material/key:",
    )
    st.code(secret, language=None)


def flash(text: str, kind: str = "success") -> None:
    """Keep a message for the next run of the page (after st.rerun)."""
    st.session_state["al_flash"] = (kind, text)


def show_flash() -> None:
    """Show the kept message once."""
    if (kept := st.session_state.pop("al_flash", None)) is not None:
        getattr(st, kept[0])(kept[1])


def guard(action: Any, *args: Any, **kwargs: Any) -> Any:
    """Call `action`; a CRMError is shown with st.error (None returned)."""
    try:
        return action(*args, **kwargs)
    except CRMError as exc:
        st.error(str(exc))
        return None
