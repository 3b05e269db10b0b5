"""Alerts & schedules: alert rules with a backtest, schedules of alerts, reports and exports,
and the run history."""

import streamlit as st

from crm_core import alerts, schedules
from crm_core.figures import alerts_charts
from crm_ui import alerts_ui, auth_ui, filters_ui, segment_ui, widgets
from crm_ui.alerts_ui import guard
from crm_ui.data import store

user = auth_ui.require_view("alerts")
st.title("Alerts & schedules")
widgets.filter_note("alerts")
alerts_ui.show_flash()
alerts_ui.show_secret_once()
saved = alerts_ui.saved_alerts()
segs = segment_ui.saved_segments()
# Keyed tabs that track the open one: a rerun (a flash message after Create or Delete) keeps
# the reader on the tab they were on instead of jumping back to the first.
alert_tab, schedule_tab, history_tab = st.tabs(
    list(alerts_ui.TABS), key=alerts_ui.TAB_KEY, on_change="rerun"
)

with alert_tab:
    if saved.empty:
        st.info("No alert rules yet." + (" Create one below." if user.can("manage_alerts") else ""))
    else:
        alerts_ui.alerts_table(saved)
        pick = st.selectbox("Alert", saved["name"].tolist(), help="Test or delete this rule.")
        owner = saved.loc[saved["name"] == pick, "owner"].iloc[0]
        if st.button("Test now", help="Evaluate the rule on the latest data; nothing is sent."):
            rule = guard(alerts.load_alert, store(), pick)
            result = rule and guard(alerts.evaluate, store(), rule.definition)
            if result:
                (st.warning if result.fired else st.success)(result.message)
        may_delete = alerts_ui.may_manage(user, owner) and user.can("manage_alerts")
        if (
            may_delete
            and alerts_ui.confirm_delete(
                "alert", pick, "al_delete", "Hidden from lists; its versions are kept."
            )
            and guard(alerts.delete_alert, store(), pick, by=user.username) is not None
        ):
            alerts_ui.written(*alerts.TABLES_WRITTEN)
            alerts_ui.flash(f"Deleted alert {pick}.")
            st.rerun()
    if user.can("manage_alerts"):
        st.subheader("New alert rule")
        names = segs["name"].tolist() if not segs.empty else []
        definition = alerts_ui.alert_definition(filters_ui.current_filters(), names)
        key = guard(alerts_ui.rule_key, definition)
        if key and st.button("Backtest", help="Replay the rule over the last 12 months."):
            st.session_state["al_tested"] = key
        if key and st.session_state.get("al_tested") == key:
            result = guard(alerts_ui.backtest, key)
            if result is not None:
                st.info(result.summary)
                metric = alerts.measure_metric(definition["measure"])
                chart = alerts_charts.backtest_chart(
                    result.frame, metric.label, metric.format, definition["condition"]
                )
                st.plotly_chart(chart, width="stretch")
                with st.form("save_alert"):
                    name = st.text_input("Name", help="Unique among alert rules.")
                    description = st.text_input("Description", help="Optional: why it matters.")
                    if st.form_submit_button("Save alert"):
                        done = guard(
                            alerts.save_alert,
                            store(),
                            name,
                            definition,
                            owner=user.username,
                            description=description,
                        )
                        if done is not None:
                            alerts_ui.written(*alerts.TABLES_WRITTEN)
                            alerts_ui.flash(f"Saved alert {done.name} (version {done.version}).")
                            st.session_state.pop("al_tested", None)
                            st.rerun()
        elif key:
            st.caption("Run the backtest to see how often the rule would have fired; then save.")
    else:
        st.caption(alerts_ui.who_creates_alerts(user))

with schedule_tab:
    mine = alerts_ui.visible(alerts_ui.schedule_list(), user)
    if mine.empty:
        st.info(
            "No schedules yet."
            if user.can("manage_all_schedules")
            else "You have no schedules yet."
        )
    else:
        table = st.container()  # drawn last: a Run now or Pause below shows in it at once
        pick = st.selectbox("Schedule", mine["name"].tolist(), help="Run, pause or delete it.")
        row = mine.loc[mine["name"] == pick].iloc[0]
        summary = st.empty()
        buttons = st.container(horizontal=True)
        if buttons.button("Run now", help="Run and deliver now; its next slot stays as it is."):
            job = guard(schedules.load_schedule, store(), pick)
            with st.spinner(
                f"Running {pick} and delivering it (a destination that does not answer is "
                "tried 3 times, 1 s and 4 s apart)...",
                show_time=True,
            ):
                run = job and schedules.run_schedule(store(), job, due_at=None, runner="app")
            if run:
                alerts_ui.written(*schedules.RUN_TABLES)
                shown = st.error if run.result in alerts_ui.FAILED else st.success
                said = alerts_ui.shown_message(run.message, run.file_path, user)
                shown(f"{alerts_ui.result_words(run.result)}: {said}")
        mine_to_change = alerts_ui.may_manage(user, row["owner"])
        change = schedules.resume if row["paused"] else schedules.pause
        if (
            mine_to_change
            and buttons.button("Resume" if row["paused"] else "Pause", help="Paused: no runs.")
            and guard(change, store(), pick, by=user.username) is not None
        ):
            alerts_ui.written("schedules")
            st.rerun()
        if (
            mine_to_change
            and alerts_ui.confirm_delete("schedule", pick, "sc_delete", "Its run history stays.")
            and guard(alerts_ui.delete_schedule, pick, user) is not None
        ):
            alerts_ui.flash(f"Deleted schedule {pick}; its history stays.")
            st.rerun()
        mine = alerts_ui.visible(alerts_ui.schedule_list(), user)  # as the actions left it
        with table:
            alerts_ui.schedule_table(mine)
        for _, now in mine.loc[mine["name"] == pick].iterrows():
            summary.caption(alerts_ui.schedule_summary(now))
    kinds = alerts_ui.allowed_kinds(user)
    st.subheader("New schedule")
    kind = st.radio(
        "Schedule",
        kinds,
        format_func=lambda k: alerts_ui.SCHEDULE_KINDS[k][0],
        horizontal=True,
        key="sc_kind",
    )
    alerts_ui.new_schedule(user, kind, saved["name"].tolist(), segs)

with history_tab:
    log = alerts_ui.run_log()
    names = set(alerts_ui.visible(alerts_ui.schedule_list(), user)["name"])
    if not user.can("manage_all_schedules"):
        log = log[log["schedule_name"].isin(names)]
    if log.empty:
        st.info("No runs yet: a schedule's runs (and Run now) show here.")
    else:
        alerts_ui.history_table(log, user)
