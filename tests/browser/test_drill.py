"""In the real app: click an RFM treemap tile and a funnel bar, save each drill-down as a
segment, check the saved definitions are rules, import more data, and see both sizes follow."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from crm_core import features, segments
from crm_core.analytics import funnels
from crm_core.filters import default_filters
from crm_core.ingest import import_file
from crm_core.store import Store
from tests.browser.conftest import (
    TIMEOUT_MS,
    copy_store_with_users,
    problems,
    sign_in,
    start_app,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _count(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text))


def _panel(page, key: str):
    panel = page.locator(f".st-key-{key}_panel")
    panel.wait_for(timeout=TIMEOUT_MS)
    return panel


def _save_from_panel(page, key: str, name: str) -> int:
    """Save the drill panel's customers as `name`; the count the panel showed."""
    panel = _panel(page, key)
    shown = _count(panel.locator('[data-testid="stMetricValue"]').first.inner_text())
    panel.get_by_label("Segment name").fill(name)
    panel.get_by_role("button", name="Save as segment").click()
    page.get_by_text(f"Saved segment '{name}'").wait_for(timeout=TIMEOUT_MS)
    return shown


def _size_in_builder(page, base_url: str, name: str) -> int:
    page.goto(f"{base_url}/segment_builder")
    wait_idle(page)
    page.get_by_role("tab", name="Saved segments").click()
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.get_by_role("combobox", name="Segment", exact=True)
    )
    box.get_by_role("combobox").click()
    page.get_by_role("option", name=name, exact=True).click()
    wait_idle(page)
    page.get_by_role("button", name="Open in the builder").click()
    wait_idle(page)
    page.get_by_role("tab", name="Build").click()
    page.get_by_text(f"Editing {name}").wait_for(timeout=TIMEOUT_MS)
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Customers").first
    return _count(metric.locator('[data-testid="stMetricValue"]').inner_text())


def test_drill_from_treemap_and_funnel_saves_rules_that_follow_an_import(
    browser, demo_store_path, tmp_path, screenshots
):
    path = copy_store_with_users(demo_store_path, tmp_path)
    store = Store(f"duckdb:///{path}")
    features.ensure_fresh(store)
    filters = default_filters(store)
    with store.connect() as conn:
        loyal = conn.execute(
            sa.select(features.customer_360.c.customer_id)
            .where(features.customer_360.c.rfm_segment == "Loyal")
            .order_by(features.customer_360.c.customer_id)
            .limit(3)
        ).scalars()
        loyal = list(loyal)
        max_order = conn.execute(sa.text("select max(order_id) from orders")).scalar()
        max_event = conn.execute(sa.text("select max(event_id) from events")).scalar()
    entered = set(
        funnels.event_funnel(store, filters, list(funnels.DEFAULT_STEPS)).customers["customer_id"]
    )
    newcomers = [c for c in range(1, 1500) if c not in entered][:4]
    store.dispose()

    server = start_app(path, tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        sign_in(page, server.url, "marketer")
        page.goto(f"{server.url}/segmentation")
        wait_idle(page)
        tile = page.locator('[data-testid="stPlotlyChart"] g.slice').filter(has_text="Champions")
        tile.first.click(force=True)
        wait_idle(page)
        panel = _panel(page, "drill_rfm_tile")
        assert "RFM segment Champions" in panel.inner_text()
        page.screenshot(path=str(screenshots / "drill_rfm_treemap.png"), full_page=True)
        champions_before = _save_from_panel(page, "drill_rfm_tile", "Champions (drill)")

        page.goto(f"{server.url}/funnels")
        wait_idle(page)
        bars = page.locator('[data-testid="stPlotlyChart"]').first.locator("g.point")
        bars.nth(2).click(force=True)  # step 3's bar: who dropped after step 2
        wait_idle(page)
        panel = _panel(page, "drill_funnel")
        assert "Dropped after step 2" in panel.inner_text()
        assert "rule selects" not in panel.inner_text()  # the rule is the page's drop-off
        page.screenshot(path=str(screenshots / "drill_funnel.png"), full_page=True)
        dropped_before = _save_from_panel(page, "drill_funnel", "Dropped after view (drill)")
        assert not problems(page), problems(page)
        page.close()
    finally:
        server.stop()

    store = Store(f"duckdb:///{path}")
    for name in ("Champions (drill)", "Dropped after view (drill)"):
        definition = segments.load_segment(store, name).definition
        assert not segments.is_fixed_list(definition), json.dumps(definition)[:300]
        assert all(r.get("field") != "customer_id" for r in definition["rules"])
    last = filters.end
    pd.DataFrame(
        {
            "order_id": [max_order + 1 + i for i in range(len(loyal))],
            "customer_id": loyal,
            "ordered_at": [f"{last} 12:00:00"] * len(loyal),
            "amount": [80.0] * len(loyal),
            "channel": ["web"] * len(loyal),
            "status": ["completed"] * len(loyal),
        }
    ).to_csv(tmp_path / "orders_later.csv", index=False)
    when = f"{last - timedelta(days=20)} 10:00:00"
    pd.DataFrame(
        {
            "event_id": [max_event + 1 + i for i in range(2 * len(newcomers))],
            "customer_id": newcomers * 2,
            "occurred_at": [when] * len(newcomers) + [when.replace("10:00", "10:05")] * 4,
            "event_type": ["visit"] * len(newcomers) + ["product_view"] * len(newcomers),
            "channel": ["web"] * 2 * len(newcomers),
        }
    ).to_csv(tmp_path / "events_later.csv", index=False)
    import_file(store, "orders", tmp_path / "orders_later.csv", user="admin")
    import_file(store, "events", tmp_path / "events_later.csv", user="admin")
    store.dispose()

    server = start_app(path, tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        sign_in(page, server.url, "marketer")
        dropped_after = _size_in_builder(page, server.url, "Dropped after view (drill)")
        page.screenshot(path=str(screenshots / "drill_segment_after_import.png"), full_page=True)
        champions_after = _size_in_builder(page, server.url, "Champions (drill)")
        assert not problems(page), problems(page)
        page.close()
    finally:
        server.stop()
    assert dropped_after == dropped_before + len(newcomers)
    assert champions_after > champions_before


def _chosen(page, chart: str) -> str:
    """The text the "Drill into..." select box of chart `chart` shows (it follows a click on
    the chart; drill_ui keys it <chart>_pick)."""
    return page.locator(f".st-key-{chart}_pick").get_by_role("combobox").input_value()


@pytest.mark.parametrize(
    ("view", "chart", "point", "key", "chart_key"),
    [
        ("segmentation", 1, 24, "drill_rf_cell", "rf_grid"),  # the R x F grid, its last cell
        ("overview", 1, 1, "drill_cohort", "cohort_grid"),  # the cohort grid: first cohort, month 1
    ],
)
def test_a_heatmap_cell_is_clicked_into_its_customers(
    browser, app_server, screenshots, view, chart, point, key, chart_key
):
    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    try:
        sign_in(page, app_server.url, "marketer")
        page.goto(f"{app_server.url}/{view}")
        wait_idle(page)
        grid = page.locator('[data-testid="stPlotlyChart"]').nth(chart)
        grid.locator(".scatterlayer .trace .point").nth(point).click(force=True)
        wait_idle(page)
        panel = _panel(page, key)
        shown = _count(panel.locator('[data-testid="stMetricValue"]').first.inner_text())
        chosen = _chosen(page, chart_key)
        in_option = re.search(r"([\d,]+) customers", chosen)
        assert in_option and shown == _count(in_option.group(1)), (chosen, shown)
        page.screenshot(path=str(screenshots / f"{key}.png"), full_page=True)
        assert not problems(page), problems(page)
    finally:
        page.close()
