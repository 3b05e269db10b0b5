"""AppTest: the KPI overview for each role, with filters, and its empty states."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.metrics import METRICS
from tests.app.conftest import APP, private_store, sign_in
from tests.core import tiny


@pytest.mark.parametrize("role", ["admin", "manager", "marketer", "analyst"])
def test_overview_shows_every_kpi_with_help(signed_in, role):
    at = signed_in(role)
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert labels == [m.label for m in METRICS.values()]
    assert all(m.help for m in at.metric)
    revenue = at.metric[0]
    assert revenue.value.startswith("$") and revenue.value != "$0.00"
    assert len(at.get("plotly_chart")) == 2  # trend and cohorts


def test_overview_honours_sidebar_filters(signed_in):
    at = signed_in("manager")
    everything = at.metric[0].value
    at.sidebar.multiselect(key="filter_countries").select("US").run()
    assert not at.exception
    assert at.metric[0].value != everything


def test_empty_store_shows_empty_state(tmp_path, monkeypatch):
    private_store(tmp_path, monkeypatch)
    at = sign_in("manager")
    assert not at.exception
    assert any("No orders in the store yet" in i.value for i in at.info)


def test_store_without_surveys_shows_na_not_error(tmp_path, monkeypatch):
    private_store(tmp_path, monkeypatch, lambda store: tiny.load(store, surveys=False))
    at = sign_in("manager")
    assert not at.exception
    nps = next(m for m in at.metric if m.label == "NPS")
    assert nps.value == "n/a" and "import `survey_responses`" in nps.help


def test_no_users_explains_how_to_create_the_admin(tmp_path, monkeypatch):
    private_store(tmp_path, monkeypatch, users=False)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert any("No users yet" in e.value for e in at.error)


def test_overview_on_real_cdnow_data(tmp_path, monkeypatch):
    from crm_core import datasets

    private_store(tmp_path, monkeypatch, datasets.load_cdnow)
    at = sign_in("manager")
    assert not at.exception
    figures = {m.label: m.value for m in at.metric}
    assert figures["Orders"] != "n/a" and figures["NPS"] == "n/a" and figures["CSAT"] == "n/a"
    assert "1998" in at.caption[0].value  # CDNOW's last purchases are in June 1998
