"""AppTest: drill from a chart element (the "Drill into..." select box) to its customers,
save them as a rule segment, open the builder on it, and open a customer by link."""

from __future__ import annotations

import json

from crm_core import segments
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
