"""AppTest: the Alerts & schedules page per role; alert backtest, save, test now; scheduled
exports run by hand; a failed webhook delivery in the history."""

from __future__ import annotations

import pytest

from crm_core import auth, schedules, segments
from crm_core.store import get_store
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
    assert any("sent" in s.value and "Exported" in s.value for s in at.success)
    log = schedules.runs(get_store(), "weekly-us")
    assert log["result"].tolist() == ["sent"]
    kept = log.loc[0, "file_path"]
    assert kept.startswith(str(own_store.parent / "exports"))
    assert (own_store.parent / "exports").joinpath(kept.rsplit("/", 1)[-1]).is_file()


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
    assert any("delivery failed" in e for e in errors(at)), errors(at)
    at.run()
    assert not [w for w in at.warning if "never shown again" in w.value]
    assert any("could not deliver" in w.value for w in at.warning)
    history = at.dataframe[-1].value
    assert "⚠️ delivery failed" in history.iloc[:, 0].tolist()


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
    assert schedules.runs(get_store(), "us-to-outbox")["result"].tolist() == ["sent"]
