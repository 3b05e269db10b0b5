"""AppTest: the Alerts & schedules page per role; alert backtest, save, test now; scheduled
exports run by hand; a failed webhook delivery in the history."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_core import alerts, auth, schedules, segments
from crm_core.figures import alerts_charts
from crm_core.store import get_store
from crm_ui import alerts_ui
from tests.app.conftest import errors, sign_in

PAGE = "app_pages/alerts.py"


def _open(role: str):
    at = sign_in(role)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


@pytest.mark.parametrize("role", auth.ROLES)
def test_page_opens_for_each_role(own_store, role):
    at = _open(role)
    assert not errors(at)
    assert [t.label for t in at.tabs] == ["Alerts", "Schedules", "History"]
    kinds = at.radio(key="sc_kind").options
    assert ("An export of a segment" in kinds) == auth.can(role, "schedule_exports")
    assert bool([b for b in at.button if b.label == "Backtest"]) == auth.can(role, "manage_alerts")


def test_manager_backtests_saves_and_tests_a_revenue_alert(own_store):
    at = _open("manager")
    at.radio(key="al_measure").set_value("kpi").run()
    at.selectbox(key="al_metric").select("revenue").run()
    at.selectbox(key="al_grain").select("month").run()
    at.radio(key="al_condition").set_value("threshold").run()
    at.selectbox(key="al_op").select("below").run()
    at.number_input(key="al_value").set_value(1e12).run()  # every month is below: fires
    assert not [b for b in at.button if b.label == "Save alert"]  # no save before a backtest
    _button(at, "Backtest").click().run()
    assert not at.exception and not errors(at)
    assert any(i.value.startswith("Would have fired") for i in at.info), [i.value for i in at.info]
    assert len(at.get("plotly_chart")) == 1
    next(t for t in at.text_input if t.label == "Name").input("Revenue floor")
    _button(at, "Save alert").click().run()
    assert not at.exception and not errors(at)
    assert any("Saved alert Revenue floor (version 1)" in s.value for s in at.success)
    _button(at, "Test now").click().run()
    assert not at.exception and not errors(at)
    assert any("Revenue" in w.value for w in at.warning), [w.value for w in at.warning]


def _save_segment(name: str, owner: str) -> None:
    segments.save_segment(
        get_store(),
        name,
        {"match": "all", "rules": [{"field": "country", "op": "eq", "value": "US"}]},
        owner=owner,
        role="marketer",
    )


def test_marketer_schedules_and_runs_an_export_of_their_segment(own_store):
    _save_segment("US buyers", "marketer")
    _save_segment("Admin list", "admin")
    at = _open("marketer")
    at.radio(key="sc_kind").set_value("export").run()
    offered = at.selectbox(key="sc_target_export").options
    assert "US buyers" in offered and "Admin list" not in offered  # only their own
    assert not [t for t in at.text_input if t.label == "Folder"]  # folders: admins only
    at.selectbox(key="sc_target_export").select("US buyers").run()
    at.text_input(key="sc_name").input("weekly-us").run()
    _button(at, "Create schedule").click().run()
    assert not at.exception and not errors(at)
    assert any("Created schedule weekly-us" in s.value for s in at.success)
    _button(at, "Run now").click().run()
    assert not at.exception and not errors(at)
    assert any(s.value.startswith("Sent: Exported") for s in at.success)
    log = schedules.runs(get_store(), "weekly-us")
    assert log["result"].tolist() == ["sent"]
    kept = log.loc[0, "file_path"]
    assert kept.startswith(str(own_store.parent / "exports"))
    assert (own_store.parent / "exports").joinpath(kept.rsplit("/", 1)[-1]).is_file()
    at.run()
    assert at.dataframe[0].value.loc[0, "last_result"] == "Sent"
    history = at.dataframe[-1].value
    assert history.loc[0, "result"] == "Sent"
    # a marketer may not deliver to folders: the file's name, not the server's path
    assert history.loc[0, "file_path"] == kept.rsplit("/", 1)[-1]
    assert not any(str(own_store.parent) in str(v) for v in history.iloc[0].tolist())


def test_export_of_someone_elses_segment_is_refused(own_store):
    _save_segment("Admin list", "admin")
    at = _open("marketer")
    at.radio(key="sc_kind").set_value("export").run()
    assert at.selectbox(key="sc_target_export").options == []
    assert _button(at, "Create schedule").disabled


def test_history_shows_a_failed_webhook_delivery(own_store, monkeypatch):
    monkeypatch.setattr(schedules, "DELIVERY_BACKOFF", (0.0,))
    at = _open("manager")
    at.radio(key="sc_kind").set_value("report").run()
    at.text_input(key="sc_name").input("kpis-to-hook").run()
    at.text_input(key="sc_webhook").input("http://127.0.0.1:9/hook").run()  # port 9: closed
    _button(at, "Create schedule").click().run()
    assert not at.exception and not errors(at)
    assert any("never shown again" in w.value for w in at.warning)  # the secret, once
    assert len(at.code) == 1
    _button(at, "Run now").click().run()
    assert not at.exception
    assert any(e.startswith("Delivery failed:") for e in errors(at)), errors(at)
    at.run()
    assert not [w for w in at.warning if "never shown again" in w.value]
    assert any("could not deliver" in w.value for w in at.warning)
    history = at.dataframe[-1].value
    assert "Delivery failed" in history.iloc[:, 0].tolist()


def test_admin_delivers_an_export_to_a_folder(own_store, tmp_path):
    _save_segment("US buyers", "marketer")
    outbox = tmp_path / "outbox"
    at = _open("admin")
    at.radio(key="sc_kind").set_value("export").run()
    at.selectbox(key="sc_target_export").select("US buyers").run()  # anyone's, for an admin
    at.text_input(key="sc_name").input("us-to-outbox").run()
    at.text_input(key="sc_folder").input(str(outbox)).run()
    _button(at, "Create schedule").click().run()
    assert not at.exception and not errors(at)
    _button(at, "Run now").click().run()
    assert not at.exception and not errors(at)
    names = sorted(p.name for p in outbox.iterdir())
    assert any(n.endswith(".csv") for n in names) and any(
        n.endswith(".manifest.json") for n in names
    ), names
    log = schedules.runs(get_store(), "us-to-outbox")
    assert log["result"].tolist() == ["sent"]
    at.run()
    history = at.dataframe[-1].value
    assert history.loc[0, "file_path"] == log.loc[0, "file_path"]  # an admin: the full path
    assert str(outbox) in history.loc[0, "deliveries"]


def _open_tab(at) -> str:
    """The label of the tab the page opens on (the tab container's selected index)."""

    def find(node):
        if getattr(node, "type", None) == "tab_container":
            return node
        for child in getattr(node, "children", {}).values():
            if (hit := find(child)) is not None:
                return hit
        return None

    container = find(at.main)
    return [t.label for t in at.tabs][container.proto.tab_container.default_tab_index]


def test_create_and_delete_keep_the_schedules_tab_open(own_store):
    at = sign_in("manager")
    at.switch_page(PAGE)
    at.session_state[alerts_ui.TAB_KEY] = "Schedules"  # the reader opened the Schedules tab
    at.run()
    assert _open_tab(at) == "Schedules"
    at.radio(key="sc_kind").set_value("report").run()
    at.text_input(key="sc_name").input("daily-kpis").run()
    at.text_input(key="sc_emails").input("ops@example.com").run()
    _button(at, "Create schedule").click().run()
    assert not at.exception and not errors(at)
    assert any("Created schedule daily-kpis" in s.value for s in at.success)
    assert _open_tab(at) == "Schedules"  # the flash above the tabs did not reset them
    assert at.session_state[alerts_ui.TAB_KEY] == "Schedules"
    table = at.dataframe[0].value
    assert table.loc[0, "name"] == "daily-kpis"
    assert table.loc[0, "when"] == "Every day at 07:00 (UTC)"
    assert table.loc[0, "last_result"] == "Never run"
    summary = next(c.value for c in at.caption if c.value.startswith("**Report: KPI overview**"))
    assert "Every day at 07:00 (UTC)" in summary and "ops@example.com" in summary
    # a delete needs a tick first: the button stays disabled until then
    assert _button(at, "Delete schedule").disabled  # AppTest, like a browser, cannot click it
    at.checkbox(key="sc_delete_sure_daily-kpis").check().run()
    assert not _button(at, "Delete schedule").disabled
    _button(at, "Delete schedule").click().run()
    assert not at.exception and not errors(at)
    assert any("Deleted schedule daily-kpis" in s.value for s in at.success)
    assert _open_tab(at) == "Schedules"
    assert schedules.list_schedules(get_store()).empty


def test_deleting_an_alert_rule_asks_first(own_store):
    at = _open("manager")
    at.radio(key="al_measure").set_value("kpi").run()
    at.radio(key="al_condition").set_value("threshold").run()
    _button(at, "Backtest").click().run()
    next(t for t in at.text_input if t.label == "Name").input("Orders floor")
    _button(at, "Save alert").click().run()
    assert not at.exception and not errors(at)
    assert _button(at, "Delete alert").disabled
    at.checkbox(key="al_delete_sure_Orders floor").check().run()
    _button(at, "Delete alert").click().run()
    assert not at.exception and not errors(at)
    assert any("Deleted alert Orders floor" in s.value for s in at.success)
    assert alerts.list_alerts(get_store()).empty


def test_results_and_schedules_read_in_words():
    assert set(alerts_ui.RESULT_BADGES) >= {*schedules.OK_RESULTS, *alerts_ui.FAILED, "running"}
    for words in alerts_ui.RESULT_BADGES.values():  # no emoji: the server's fonts lack them
        assert words.isascii() and words[0].isupper(), words
    assert alerts_ui.result_words("quiet") == "Quiet (did not fire)"
    assert alerts_ui.result_words("repeat") == "Already sent (repeat)"
    assert alerts_ui.result_words(None) == "Never run"
    assert alerts_ui.cron_words("0 7 * * 1") == "Mondays at 07:00"
    assert alerts_ui.cron_words("30 6 * * 1-5") == "At 06:30, Monday through Friday"
    assert alerts_ui.cron_words("every day") == "Custom schedule (every day)"


def test_a_percent_threshold_is_typed_in_percent(own_store):
    at = _open("analyst")
    at.radio(key="al_measure").set_value("kpi").run()
    at.selectbox(key="al_metric").select("repeat_purchase_rate").run()
    at.selectbox(key="al_grain").select("month").run()
    at.radio(key="al_condition").set_value("threshold").run()
    assert at.number_input(key="al_value").label == "Threshold (%)"
    at.number_input(key="al_value").set_value(40).run()
    _button(at, "Backtest").click().run()
    assert not at.exception and not errors(at)
    next(t for t in at.text_input if t.label == "Name").input("Repeat rate floor")
    _button(at, "Save alert").click().run()
    assert not at.exception and not errors(at)
    saved = alerts.load_alert(get_store(), "Repeat rate floor").definition
    assert saved["condition"]["value"] == pytest.approx(0.4)
    at.selectbox(key="al_metric").select("revenue").run()
    assert at.number_input(key="al_value").label == "Threshold"


def test_a_fall_is_at_most_100_percent(own_store):
    at = _open("manager")
    at.radio(key="al_condition").set_value("change").run()
    at.selectbox(key="al_direction").select("up").run()
    at.number_input(key="al_percent").set_value(150).run()
    assert not at.exception
    at.selectbox(key="al_direction").select("down").run()
    assert not at.exception and not errors(at)
    assert at.number_input(key="al_percent").max == 100
    assert at.number_input(key="al_percent").value == 100
    assert at.number_input(key="al_percent").min == 0.1


def test_a_change_rule_names_its_reference_in_the_chart():
    frame = pd.DataFrame(
        {
            "period_start": pd.date_range("2026-01-01", periods=3, freq="MS"),
            "value": [10.0, 8.0, 12.0],
            "expected": [9.0, 11.0, 10.0],
            "lower": [8.1, 9.9, 9.0],
            "upper": [float("nan")] * 3,
            "fired": [False, True, False],
        }
    )
    year = {"kind": "change", "against": "year_ago", "direction": "down", "percent": 10}
    names = {t.name for t in alerts_charts.backtest_chart(frame, "Revenue", "money", year).data}
    assert "A year earlier" in names and "Expected" not in names
    previous = {**year, "against": "previous"}
    names = {t.name for t in alerts_charts.backtest_chart(frame, "Revenue", "money", previous).data}
    assert "Previous period" in names
    anomaly = {"kind": "anomaly", "level": 0.95}
    names = {t.name for t in alerts_charts.backtest_chart(frame, "Revenue", "money", anomaly).data}
    assert "Expected" in names


def test_a_marketer_is_told_who_creates_alert_rules(own_store):
    at = _open("marketer")
    said = " ".join(c.value for c in at.caption)
    assert (
        "Your role (marketer) subscribes to alert rules on the Schedules tab; managers, "
        "analysts and admins create them." in said
    ), said
    assert not [c for c in _open("manager").caption if "subscribes to alert rules" in c.value]
