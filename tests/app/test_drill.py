"""AppTest: drill from a chart element (the "Drill into..." select box) to its customers,
save them as a rule segment, open the builder on it, and open a customer by link."""

from __future__ import annotations

import json
import re

import pandas as pd

from crm_core import segments
from crm_core.filters import PURCHASE_STATUS
from crm_core.store import get_store
from tests.app.conftest import errors, sign_in


def _saved(name: str) -> dict:
    table = segments.list_segments(get_store())
    row = table[table["name"] == name].iloc[0]
    return json.loads(row["definition"])


def _save(at, key: str, name: str) -> None:
    at.text_input(key=f"{key}_name").input(name)
    next(b for b in at.button if b.label == "Save as segment").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert any(f"Saved segment '{name}'" in s.value for s in at.success)


def test_rfm_tile_drill_saves_the_rules(own_store):
    at = sign_in("marketer", page="app_pages/segmentation.py")
    at.selectbox(key="rfm_treemap_pick").select("Champions").run()
    assert not at.exception and not errors(at)
    assert any("Customers behind: RFM segment Champions" in m.value for m in at.markdown)
    assert any("RFM segment equals Champions" in c.value for c in at.caption)
    assert next(m for m in at.metric if m.label == "Customers").value != "0"
    _save(at, "drill_rfm_tile", "Champions from the treemap")
    definition = _saved("Champions from the treemap")
    assert definition["rules"] == [{"field": "rfm_segment", "op": "eq", "value": "Champions"}]


def test_rfm_on_another_window_shows_both_counts(own_store):
    at = sign_in("analyst", page="app_pages/segmentation.py")
    window = next(s for s in at.selectbox if s.label == "Frequency and monetary window")
    window.select("Last 6 months").run()
    at.selectbox(key="rfm_treemap_pick").select("Loyal").run()
    assert not at.exception and not errors(at)
    assert any("the page counted" in w.value for w in at.warning)
    at.radio(key="drill_rfm_tile_what").set_value("fixed").run()
    _save(at, "drill_rfm_tile", "Loyal as on the page")
    assert segments.is_fixed_list(_saved("Loyal as on the page"))
    table = segments.list_segments(get_store())
    description = table.loc[table["name"] == "Loyal as on the page", "description"].iloc[0]
    assert "FIXED LIST" in description


def test_funnel_dropoff_drill_saves_a_funnel_rule_and_the_builder_shows_it(own_store):
    at = sign_in("marketer", page="app_pages/funnels.py")
    at.selectbox(key="event_funnel_pick").select("2").run()
    assert not at.exception and not errors(at)
    assert not at.warning, [w.value for w in at.warning]  # the rule is the page exactly
    _save(at, "drill_funnel", "Dropped after product view")
    definition = _saved("Dropped after product view")
    assert definition["rules"][0]["op"] == "dropped_after"
    assert definition["rules"][0]["funnel"]["steps"][:2] == ["visit", "product_view"]
    at.switch_page("app_pages/segment_builder.py").run()
    segment = next(s for s in at.selectbox if s.label == "Segment")
    segment.select("Dropped after product view").run()
    next(b for b in at.button if b.label == "Open in the builder").click().run()
    assert not at.exception and not errors(at)
    assert any("Funnel rule:" in m.value and "dropped after step 2" in m.value for m in at.markdown)
    remove = [b for b in at.button if b.label == "Remove"]
    assert len(remove) == 1


def test_manager_drills_into_a_cohort_cell_without_save(app_env):
    at = sign_in("manager")
    pick = at.selectbox(key="cohort_grid_pick")
    pick.select(pick.options[1]).run()
    assert not at.exception and not errors(at)
    assert any("Customers behind: First purchase in" in m.value for m in at.markdown)
    assert not [b for b in at.button if b.label == "Save as segment"]


def test_customer_360_opens_the_linked_customer(app_env):
    at = sign_in("analyst", page=None)
    at.query_params["customer_id"] = "42"
    at.switch_page("app_pages/customer_360.py").run()
    assert not at.exception and not errors(at)
    assert any("#42" in h.value for h in at.subheader)


def test_a_manager_sees_the_customers_but_is_offered_nothing_they_cannot_do(own_store):
    """Managers may not save segments nor open Customer 360: no save choice, no save button,
    no "pick a row" and no links to the 360 in the drill panel (the demo store is not
    scored, so the band's rule and the page disagree: a saver would get a choice)."""
    at = sign_in("manager", page="app_pages/churn.py")
    at.selectbox(key="risk_bands_pick").select("high").run()
    assert not at.exception and not errors(at)
    assert any("Customers behind" in m.value for m in at.markdown)
    assert any("the page counted" in w.value for w in at.warning)
    assert "drill_band_what" not in at.session_state  # no save choice
    assert not [b for b in at.button if b.label == "Save as segment"]
    assert not any("Customer 360" in c.value for c in at.caption)
    assert not any("save them as a segment" in c.value for c in at.caption)
    for table in at.dataframe:
        config = json.loads(table.proto.columns)
        assert all(c.get("type_config", {}).get("type") != "link" for c in config.values())


# --- the other drillable charts -----------------------------------------------------------


def _count(at) -> int:
    return int(next(m for m in at.metric if m.label == "Customers").value.replace(",", ""))


def _panel_title(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**Customers behind:"))


def _table(name: str):
    import sqlalchemy as sa

    from crm_core import schema

    return get_store().read_df(sa.select(schema.metadata.tables[name]))


def test_clv_country_bar_drills_into_the_countrys_customers(own_store):
    at = sign_in("marketer", page="app_pages/clv.py")
    country = _table("customers")["country"].mode()[0]
    at.selectbox(key="clv_by_country_pick").select(country).run()
    assert not at.exception and not errors(at)
    assert f"Country {country}" in _panel_title(at)
    assert any(f"Country equals {country}" in c.value for c in at.caption)
    people = _table("customers")
    assert _count(at) == int((people["country"] == country).sum())
    _save(at, "drill_clv_country", "Country from CLV")
    assert _saved("Country from CLV")["rules"] == [
        {"field": "country", "op": "eq", "value": country}
    ]


def test_revenue_trend_month_drills_into_its_buyers(own_store):
    at = sign_in("marketer")
    pick = at.selectbox(key="revenue_trend_pick")
    option = pick.options[-2]  # the last whole month: "Mar 2026: 312 active customers"
    month = pd.Timestamp(option.split(":")[0]).date()
    active = int(option.split(": ")[1].split()[0].replace(",", ""))
    pick.select(month.isoformat()).run()
    assert not at.exception and not errors(at)
    assert f"Bought in {month:%b %Y}" in _panel_title(at)
    orders = _table("orders")
    when = pd.to_datetime(orders["ordered_at"])
    bought = orders[
        (when.dt.year == month.year)
        & (when.dt.month == month.month)
        & ((orders["status"] == PURCHASE_STATUS) | orders["status"].isna())
    ]
    assert _count(at) == active == bought["customer_id"].nunique()
    _save(at, "drill_trend", "Bought that month")
    rule = _saved("Bought that month")["rules"][0]
    assert rule["activity"] == "orders" and rule["status"] == "purchase"
    assert rule["from"] == month.isoformat()


def test_campaign_bar_drills_into_its_treatment_group(own_store):
    at = sign_in("marketer", page="app_pages/campaigns.py")
    pick = at.selectbox(key="campaign_roi_pick")
    sent = next(o for o in pick.options[1:] if not o.endswith("no contacts"))
    campaign = int(re.search(r"\(#(\d+)\)$", sent).group(1))
    pick.select(str(campaign)).run()
    assert not at.exception and not errors(at)
    assert f"(#{campaign})" in _panel_title(at)
    assert any(f"was sent campaign #{campaign} (treatment)" in c.value for c in at.caption)
    contacts = _table("campaign_contacts")
    sent = contacts[(contacts["campaign_id"] == campaign) & (contacts["test_group"] == "treatment")]
    assert _count(at) == sent["customer_id"].nunique() > 0
    _save(at, "drill_campaign", "Sent that campaign")
    assert _saved("Sent that campaign")["rules"] == [
        {"activity": "campaigns", "op": "has", "campaign": [campaign], "group": "treatment"}
    ]


def test_nps_breakdown_drills_into_detractors_of_a_group(own_store):
    at = sign_in("marketer", page="app_pages/surveys.py")
    at.selectbox(key="nps_by_touchpoint_pick").select("post_purchase").run()
    assert not at.exception and not errors(at)
    at.radio(key="drill_nps_bucket").set_value("detractor").run()
    assert not at.exception and not errors(at)
    assert "Detractors in the NPS survey at post-purchase" in _panel_title(at)
    filters = at.session_state["crm_filters"]
    answers = _table("survey_responses")
    when = pd.to_datetime(answers["answered_at"])
    start, end = pd.Timestamp(filters.start), pd.Timestamp(filters.end) + pd.Timedelta(days=1)
    mine = answers[
        (answers["survey"] == "nps")
        & (answers["touchpoint"] == "post_purchase")
        & (answers["score"] <= 6)
        & (when >= start)
        & (when < end)
    ]
    assert _count(at) == mine["customer_id"].nunique() > 0
    by = next(s for s in at.selectbox if s.label == "Break down by")
    by.select("country").run()
    country = _table("customers")["country"].mode()[0]
    at.selectbox(key="nps_by_country_pick").select(country).run()
    at.radio(key="drill_nps_bucket").set_value("detractor").run()
    assert not at.exception and not errors(at)
    assert f"Detractors in the NPS survey with Country {country}" in _panel_title(at)
    _save(at, "drill_nps", "Detractors there")
    rules = _saved("Detractors there")["rules"]
    assert rules[0]["activity"] == "surveys" and rules[0]["bucket"] == ["detractor"]
    assert rules[1] == {"field": "country", "op": "eq", "value": country}


def test_movement_cell_is_saved_as_a_fixed_list(own_store):
    at = sign_in("marketer", page="app_pages/segmentation.py")
    pick = at.selectbox(key="rfm_movement_pick")
    moved, count = pick.options[1].rsplit(": ", 1)  # the largest move
    before, now = moved.split(" → ")
    pick.select(f"{before}|{now}").run()
    assert not at.exception and not errors(at)
    assert any("No rule can express this selection" in i.value for i in at.info)
    assert _count(at) == int(count.split()[0].replace(",", ""))
    _save(at, "drill_movement", "Movers")
    definition = _saved("Movers")
    assert segments.is_fixed_list(definition)
    table = segments.list_segments(get_store())
    assert "FIXED LIST" in table.loc[table["name"] == "Movers", "description"].iloc[0]


def test_cluster_drill_matches_once_clusters_are_saved(own_store):
    at = sign_in("marketer", page="app_pages/segmentation.py")
    at.toggle(key="run_clustering").set_value(True).run()
    pick = at.selectbox(key="cluster_profile_pick")
    size = int(re.search(r"\(([\d,]+) customers\)", pick.options[1]).group(1).replace(",", ""))
    pick.select("0").run()
    assert not at.exception and not errors(at)
    assert any("Save clusters to the customer 360 table first" in w.value for w in at.warning)
    next(b for b in at.button if b.label.startswith("Save clusters")).click().run()
    assert not at.exception and not errors(at)
    assert not any("the page counted" in w.value for w in at.warning)
    assert _count(at) == size
    _save(at, "drill_cluster", "Cluster zero")
    assert _saved("Cluster zero")["rules"] == [{"field": "cluster", "op": "eq", "value": 0}]


def test_a_paid_campaign_without_contacts_drills_into_whom_it_reached(own_store):
    at = sign_in("marketer", page="app_pages/campaigns.py")
    pick = at.selectbox(key="campaign_roi_pick")
    paid = next(o for o in pick.options[1:] if o.endswith("no contacts"))
    campaign = int(re.search(r"\(#(\d+)\): reached", paid).group(1))
    pick.select(str(campaign)).run()
    assert not at.exception and not errors(at)
    assert any(f"was reached by campaign #{campaign}" in c.value for c in at.caption)
    events, orders = _table("events"), _table("orders")
    reached = set(events.loc[events["campaign_id"] == campaign, "customer_id"].dropna())
    reached |= set(orders.loc[orders["campaign_id"] == campaign, "customer_id"].dropna())
    assert _count(at) == len(reached) > 0
