"""Alerts and schedules in the app: cached reads, the rule and schedule forms, the tables."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any
from zoneinfo import available_timezones

import pandas as pd
import streamlit as st
from cron_descriptor import (
    ExpressionDescriptor,
    FormatException,
    MissingFieldException,
    Options,
    WrongArgumentException,
)

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
    "retention": ("Retention (apply the retention policies)", "privacy_requests"),
}
"""kind -> (words, the action a role needs to schedule it)."""
RESULT_BADGES = {
    "fired": "Fired",
    "quiet": "Quiet (did not fire)",
    "sent": "Sent",
    "delivery_failed": "Delivery failed",
    "failed": "Failed",
    "repeat": "Already sent (repeat)",
    "running": "Running",
    "skipped": "Skipped",
}
"""A run's result in words, used everywhere on the page (no emoji: the server's Chromium and
some e-mail clients have no emoji font, and draw an empty box)."""
FAILED = ("failed", "delivery_failed")
TABS = ("Alerts", "Schedules", "History")
TAB_KEY = "al_tab"
"""Session key of the open tab (st.tabs tracks it, so a rerun keeps it open)."""
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


def who_creates_alerts(user: auth.User) -> str:
    """Why `user` sees no new-rule form: their role subscribes, and which roles create rules."""
    may = auth.ACTION_ROLES["manage_alerts"]
    roles = [r for r in auth.ROLES if r in may and r != "admin"] + (
        ["admin"] if "admin" in may else []
    )
    names = [f"{r}s" for r in roles]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
    return (
        f"Your role ({user.role}) subscribes to alert rules on the Schedules tab; "
        f"{listed} create them."
    )


def confirm_delete(what: str, name: str, key: str, help_: str) -> bool:
    """A "Yes, delete `what` `name`" tick box and a Delete button that stays disabled until
    it is ticked (as segments and users are deleted); whether both were done."""
    row = st.container(horizontal=True, vertical_alignment="center")
    sure = row.checkbox(f"Yes, delete {what} {name}", key=f"{key}_sure_{name}", help=help_)
    clicked = row.button(f"Delete {what}", type="primary", disabled=not sure, key=f"{key}_go")
    return bool(clicked and sure)


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
            "Threshold (%)" if percent else "Threshold",
            value=0.0,
            key="al_value",
            help="In percent: 40 for 40%."
            if percent
            else "In the measure's unit (money in the store's currency).",
        )
        if percent:
            value = value / 100.0  # a share, as the rule keeps it
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
        most = 100.0 if direction == "down" else None  # a fall cannot exceed 100%
        if most is not None and st.session_state.get("al_percent", 0.0) > most:
            st.session_state["al_percent"] = most
        percent = st.number_input(
            "By at least (%)",
            min_value=0.1,
            max_value=most,
            value=20.0,
            key="al_percent",
            help="A fall: at most 100%." if most else "Against the reference period's value.",
        )
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
    if kind == "retention" and not out:
        st.caption("No destination: each run is in the History tab and the audit log.")
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
RETENTION_NAMES = {"policies": "Every retention policy (see the Privacy page)"}


def new_schedule(
    user: auth.User, kind: str | None, alert_names: list[str], segs: pd.DataFrame
) -> None:
    """The rest of the new-schedule form for `kind`: target, name, when, options, where;
    creates it (the owner: `user`) and shows a new webhook's secret once."""
    if kind == "alert":
        targets = alert_names
    elif kind == "report":
        targets = list(schedules.REPORT_TARGETS)
    elif kind == "retention":
        targets = [schedules.RETENTION_TARGET]
    else:
        targets = export_targets(user, segs)
    target = st.selectbox(
        "What",
        targets,
        key=f"sc_target_{kind}",
        format_func=(REPORT_NAMES | RETENTION_NAMES).get
        if kind in ("report", "retention")
        else str,
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


_CRON_WORDS = {cron: words for words, cron in CRON_PRESETS.items() if cron}
_CRON_OPTIONS = Options()
_CRON_OPTIONS.use_24hour_time_format = True
KIND_WORDS = {"alert": "Alert", "report": "Report", "export": "Export", "retention": "Retention"}
WRAPPED_ROW_HEIGHT = 80
"""Rows this high let long text wrap onto three lines (Streamlit 1.67 wraps a cell's text
only when a row is taller than 4rem). Column widths below are in px and add up to about the
960 px a page has at 1440 px with the sidebar open: the columns a reader needs come first,
and on a narrower screen the rest scrolls sideways instead of being cut."""
HISTORY_ROW_HEIGHT = 110
"""History rows hold five lines: a failed delivery's message is long."""


def cron_words(cron: str) -> str:
    """A cron expression in words: a preset's own ("Mondays at 07:00"), else a sentence
    (cron-descriptor: "At 06:30, Monday through Friday"), else "Custom schedule (cron)"."""
    if cron in _CRON_WORDS:
        return _CRON_WORDS[cron]
    try:
        return ExpressionDescriptor(cron, _CRON_OPTIONS).get_description()
    except (FormatException, MissingFieldException, WrongArgumentException):
        return f"Custom schedule ({cron})"


def result_words(result: Any) -> str:
    """A run's result in words (RESULT_BADGES); "Never run" when there is none."""
    if not isinstance(result, str):
        return "Never run"
    return RESULT_BADGES.get(result, result.replace("_", " ").capitalize())


def shown_path(path: Any, user: auth.User) -> str:
    """Where a file is kept, as `user` may read it: the full server path for a role that may
    deliver to folders (admins), only the file name for the others."""
    if not isinstance(path, str) or not path:
        return ""
    return path if auth.can(user.role, "deliver_to_folder") else PurePath(path).name


def shown_message(message: Any, path: Any, user: auth.User) -> str:
    """A run's message with the kept file's server path cut to its name for `user`."""
    text = message if isinstance(message, str) else ""
    if isinstance(path, str) and path:
        text = text.replace(path, shown_path(path, user))
    return text


def schedule_table(frame: pd.DataFrame) -> None:
    """The schedules in words, the columns a reader needs first (name, next run, last run),
    then what, when, where and whose; long text wraps."""
    shown = pd.DataFrame(
        {
            "name": frame["name"],
            "next_due": [
                "Paused" if p else next_due_local(w, z)
                for p, w, z in zip(
                    frame["paused"], frame["next_due_at"], frame["timezone"], strict=True
                )
            ],
            "last_result": [result_words(r) for r in frame["last_result"]],
            "what": [
                f"{KIND_WORDS.get(k, k)}: {REPORT_NAMES.get(t, t) if k == 'report' else t}"
                for k, t in zip(frame["kind"], frame["target"], strict=True)
            ],
            "when": [
                f"{cron_words(c)} ({z})"
                for c, z in zip(frame["cron"], frame["timezone"], strict=True)
            ],
            "destinations": [
                "; ".join(delivery.describe(d) for d in ds) or "Exports folder only"
                for ds in frame["destinations"]
            ],
            "owner": frame["owner"],
        }
    )
    text = st.column_config.TextColumn
    tables.show_table(
        shown,
        column_config={
            "name": text("Name", width=150),
            "next_due": text("Next run", width=140, help="In the schedule's time zone."),
            "last_result": text("Last run", width=90),
            "what": text("What", width=160),
            "when": text("When", width=160, help="The schedule's times, in its zone."),
            "destinations": text("Delivered to", width=190),
            "owner": text("Owner", width=80),
        },
        row_height=WRAPPED_ROW_HEIGHT,
    )


def alerts_table(saved: pd.DataFrame) -> None:
    """The saved alert rules: name, the rule in words (wrapped), owner, version, saved."""
    text = st.column_config.TextColumn
    tables.show_table(
        saved[["name", "rule", "owner", "version", "saved_at"]],
        column_config={
            "name": text("Name", width=180),
            "rule": text("Rule", width=460),
            "owner": text("Owner", width=80),
            "version": {"label": "Version", "width": 70},
            "saved_at": {"label": "Saved", "width": 150},
        },
        row_height=WRAPPED_ROW_HEIGHT,
    )


_MARKDOWN = str.maketrans({c: f"\\{c}" for c in "\\`*_[]<>#|~$"})


def plain(text: Any) -> str:
    """`text` with Markdown's special characters escaped (names and messages shown as
    written: no italics from underscores, no maths from dollars, no links)."""
    return str(text).translate(_MARKDOWN)


def schedule_summary(row: pd.Series) -> str:
    """One schedule in a sentence under its picker (readable where the table scrolls)."""
    what = f"{KIND_WORDS.get(row['kind'], row['kind'])}: " + (
        REPORT_NAMES.get(row["target"], row["target"]) if row["kind"] == "report" else row["target"]
    )
    where = "; ".join(delivery.describe(d) for d in row["destinations"]) or "exports folder only"
    last = result_words(row["last_result"])
    if isinstance(row["last_result"], str) and not pd.isna(row["last_run_at"]):
        last += f" on {pd.Timestamp(row['last_run_at']):%d %b %Y %H:%M} UTC"
    next_run = "paused" if row["paused"] else next_due_local(row["next_due_at"], row["timezone"])
    return (
        f"**{plain(what)}**, {plain(cron_words(row['cron']))} ({row['timezone']}), to "
        f"{plain(where)}; owner {plain(row['owner'] or 'nobody')}. Next run: {next_run}. "
        f"Last run: {last}."
    )


def _deliveries_words(items: list[dict[str, Any]], user: auth.User) -> str:
    words = []
    for d in items:
        target = shown_path(d["target"], user) if d["kind"] == "folder" else d["target"]
        text = f"{d['kind']} {target}: {d['status']}"
        if d["status"] == "failed":
            text += f" after {d['attempts']} tries ({d['error']})"
        words.append(text)
    return "; ".join(words) or "None"


def history_table(frame: pd.DataFrame, user: auth.User) -> None:
    """The run log, failures first at a glance (a warning above the table), the result in
    words and the message wrapped; a kept file's full path only for roles that deliver to
    folders (the others see its name)."""
    failed = frame[frame["result"].isin(FAILED)]
    if not failed.empty:
        latest = failed.drop_duplicates("schedule_name").head(5)  # newest first: the last one
        st.warning(
            f"{len(failed)} of these runs failed or could not deliver: "
            + plain(", ".join(sorted(set(failed["schedule_name"].fillna("?")))))
            + ". The latest of each:\n\n"
            + "\n".join(
                f"- **{plain(row.schedule_name)}** ({result_words(row.result)}, "
                f"{pd.Timestamp(row.started_at):%d %b %Y %H:%M} UTC): "
                f"{plain(shown_message(row.message, row.file_path, user))}"
                for row in latest.itertuples(index=False)
            ),
            icon=":material/error:",
        )
    shown = pd.DataFrame(
        {
            "result": [result_words(r) for r in frame["result"]],
            "job": frame["schedule_name"],
            "message": [
                shown_message(m, p, user)
                for m, p in zip(frame["message"], frame["file_path"], strict=True)
            ],
            "started_at": frame["started_at"],
            "deliveries": [_deliveries_words(d, user) for d in frame["deliveries"]],
            "file_path": [shown_path(p, user) for p in frame["file_path"]],
            "due_at": frame["due_at"],
            "finished_at": frame["finished_at"],
            "runner": frame["runner"],
        }
    )
    text = st.column_config.TextColumn
    tables.show_table(
        shown,
        column_config={
            "result": text("Result", width=90),
            "job": text("Job", width=130),
            "message": text("Message", width=350),
            "started_at": {"label": "Started (UTC)", "width": 140},
            "deliveries": text("Deliveries", width=250),
            "file_path": text(
                "File kept at" if auth.can(user.role, "deliver_to_folder") else "File kept",
                width=250,
            ),
            "due_at": {"label": "Due (UTC; empty: run by hand)", "width": 140},
            "finished_at": {"label": "Finished (UTC)", "width": 140},
            "runner": text("Runner", width=80),
        },
        row_height=HISTORY_ROW_HEIGHT,
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
