"""AppTest: NPS/CSAT, campaign ROI, funnels and the customer 360 profile, per role."""

from __future__ import annotations

import pytest

from tests.app.conftest import errors, private_store, sign_in
from tests.core import tiny

ROLES = ["admin", "manager", "marketer", "analyst"]


def open_page(signed_in, role: str, page: str):
    at = signed_in(role)
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("role", ROLES)
def test_surveys_page_shows_scores_with_intervals(signed_in, role):
    at = open_page(signed_in, role, "surveys")
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["NPS", "CSAT", "Revenue at risk from detractors"]
    assert at.metric[0].value != "n/a"
    assert any("95% interval" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) >= 4


@pytest.mark.parametrize("role", ROLES)
def test_campaigns_page_shows_roi_and_lift(signed_in, role):
    at = open_page(signed_in, role, "campaigns")
    assert [m.label for m in at.metric] == ["Spend", "Attributed revenue", "ROI", "Conversions"]
    assert at.metric[0].value.startswith("$")
    assert len(at.dataframe) == 2  # attributed and incremental tables


def test_campaigns_page_changes_with_attribution_model(signed_in):
    at = open_page(signed_in, "marketer", "campaigns")
    last_touch = at.metric[1].value
    at.selectbox[0].select("first_touch").run()
    assert not at.exception
    assert at.metric[1].value != last_touch or at.metric[1].value.startswith("$")


@pytest.mark.parametrize("role", ROLES)
def test_funnels_page(signed_in, role):
    at = open_page(signed_in, role, "funnels")
    assert at.metric[0].label == "Overall conversion"
    assert at.metric[0].value.endswith("%") and at.metric[0].value != "0.0%"
    assert any("SELECT" in c.value for c in at.code)


def test_funnel_with_one_step_is_a_clear_error(signed_in):
    at = open_page(signed_in, "analyst", "funnels")
    at.multiselect[0].set_value(["visit"]).run()
    assert not at.exception
    assert any("2 to 10 steps" in e for e in errors(at))


@pytest.mark.parametrize("role,masked", [("marketer", False), ("analyst", True), ("admin", False)])
def test_customer_360_masks_pii_for_roles_that_may_not_see_it(signed_in, role, masked):
    at = open_page(signed_in, role, "customer_360")
    assert any("Type a" in i.value for i in at.info)
    at.text_input[0].input("1").run()
    assert not at.exception
    assert at.metric[0].label == "Completed orders"
    picked = at.selectbox(key="profile_pick")
    assert ("***@" in picked.format_func(picked.value)) is masked


def test_customer_360_unknown_customer(signed_in):
    at = open_page(signed_in, "marketer", "customer_360")
    at.text_input[0].input("nobody-by-this-name").run()
    assert any("No customer matches" in w.value for w in at.warning)


def test_manager_may_not_open_customer_360(signed_in):
    at = open_page(signed_in, "manager", "customer_360")
    assert any(e.startswith("Not allowed") for e in errors(at))


def test_store_without_surveys_or_events_shows_empty_states(tmp_path, monkeypatch):
    private_store(tmp_path, monkeypatch, lambda store: tiny.load(store, surveys=False))
    at = sign_in("analyst")
    for page, text in [
        ("surveys", "No survey answers yet"),
        ("campaigns", "No campaigns ran"),
        ("funnels", "No customer did 'visit'"),
    ]:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        assert any(text in i.value for i in at.info), (page, [i.value for i in at.info])


def test_detractors_are_one_click_from_a_saved_segment(own_store):
    at = sign_in("marketer")
    at.switch_page("app_pages/surveys.py").run()
    next(b for b in at.button if b.label == "Save as segment").click().run()
    assert not at.exception
    assert any("Saved segment 'NPS detractors'" in s.value for s in at.success), errors(at)
    from crm_core import segments
    from crm_core.store import get_store

    saved = segments.load_segment(get_store(), "NPS detractors")
    assert saved.definition["rules"][0] == {"field": "nps_latest", "op": "lte", "value": 6}


def test_funnel_drop_offs_are_one_click_from_a_saved_segment(own_store):
    at = sign_in("analyst")
    at.switch_page("app_pages/funnels.py").run()
    at.selectbox(key="event_funnel_pick").select("1").run()  # or click the funnel's bar
    next(b for b in at.button if b.label == "Save as segment").click().run()
    assert not at.exception
    assert any("Saved segment 'Dropped after visit'" in s.value for s in at.success), errors(at)


def test_managers_cannot_save_segments_from_views(signed_in):
    at = signed_in("manager")
    at.switch_page("app_pages/funnels.py").run()
    assert not any(b.label == "Save as segment" for b in at.button)
