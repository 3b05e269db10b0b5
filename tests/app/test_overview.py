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
    assert any(
        "Jun 1998" in c.value for c in at.main.caption
    )  # CDNOW's last purchases are in June 1998


def test_presets_count_back_from_the_last_data_day(signed_in):
    at = signed_in("manager")
    last_day = at.session_state["crm_filters"].end
    assert any(c.value.startswith(f"Data through {last_day:%d %b %Y}") for c in at.sidebar.caption)
    at.sidebar.selectbox(key="filter_preset").select("last_7_days").run()
    assert not at.exception
    filters = at.session_state["crm_filters"]
    assert (filters.end, filters.days) == (last_day, 7)
    assert any("(7 days)" in c.value for c in at.sidebar.caption)
    assert any(s.value == "Revenue and active customers by day" for s in at.subheader)
    at.sidebar.selectbox(key="filter_preset").select("last_year").run()
    filters = at.session_state["crm_filters"]
    assert (filters.start.month, filters.start.day, filters.end.month, filters.end.day) == (
        1,
        1,
        12,
        31,
    )
    assert filters.days in (365, 366)


def test_one_day_period_and_year_ago_comparison(signed_in):
    at = signed_in("manager")
    last_day = at.session_state["crm_filters"].end
    at.sidebar.selectbox(key="filter_preset").select("custom").run()
    at.sidebar.date_input(key="filter_dates").set_value((last_day, last_day)).run()
    assert not at.exception
    assert at.session_state["crm_filters"].days == 1
    at.sidebar.selectbox(key="filter_compare").select("year_ago").run()
    assert not at.exception
    caption = " ".join(c.value for c in at.caption)
    assert "the same period last year" in caption
    assert f"{last_day.replace(year=last_day.year - 1):%d %b %Y}" in caption
