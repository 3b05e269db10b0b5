"""The real app with CRM_ANALYTICS_URL: its views read the facts through Spark Connect and
show the same figures as the app on DuckDB.

The app's store is a copy of the demo store whose facts and 360 were written to a Parquet
lake and then deleted from it (users, segments and scores stay), so every figure on the
page came from Spark; a Spark Connect server in local mode (local[2], 127.0.0.1) serves it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_core import features, schema, spark
from crm_core.store import Store
from tests.browser.conftest import (
    TIMEOUT_MS,
    AppServer,
    copy_store_with_users,
    problems,
    sign_in,
    start_app,
    wait_idle,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not spark.java_available() and os.environ.get("CRM_TEST_SPARK") != "require",
        reason="Spark needs Java 17 (make test installs it and sets CRM_TEST_SPARK=require)",
    ),
]


@pytest.fixture(scope="module")
def spark_app_server(
    demo_store_path: Path, tmp_path_factory: pytest.TempPathFactory, chromium_path: str
) -> Iterator[AppServer]:
    """The app over a store without facts, its analytics on a local Spark over the lake."""
    folder = tmp_path_factory.mktemp("browser_spark")
    path = copy_store_with_users(demo_store_path, folder)
    store = Store(f"duckdb:///{path}")
    features.ensure_fresh(store)
    lake = folder / "lake"
    spark.lake_sync(store, lake)
    with store.begin() as conn:
        for name in spark.ANALYTICS_TABLES:
            conn.execute(schema.table(name).delete())
    store.dispose()
    server = spark.start_server(folder, java_options=spark.QUICK_JVM)
    try:
        app = start_app(
            path,
            folder,
            env={"CRM_ANALYTICS_URL": server.url, "CRM_LAKE_DIR": str(lake)},
        )
        yield app
        app.stop()
    finally:
        server.stop()


def kpi_cards(page, base_url: str) -> list[str]:
    """The KPI overview's cards (label, figure, change) as the admin sees them."""
    page.goto(f"{base_url}/overview")
    wait_idle(page)
    cards = page.locator('[data-testid="stMetric"]')
    cards.first.wait_for(timeout=TIMEOUT_MS)
    assert problems(page) == []
    return [cards.nth(i).inner_text() for i in range(cards.count())]


def test_the_kpi_overview_on_spark_shows_duckdbs_figures(
    browser, app_server, spark_app_server, screenshots
):
    figures = {}
    for name, server in (("duckdb", app_server), ("spark", spark_app_server)):
        context = browser.new_context(viewport={"width": 1440, "height": 1800})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = context.new_page()
            sign_in(page, server.url, "admin")
            figures[name] = kpi_cards(page, server.url)
            page.screenshot(path=screenshots / f"{name}_admin_overview.png", full_page=True)
        finally:
            context.close()
    assert len(figures["duckdb"]) >= 8
    assert figures["spark"] == figures["duckdb"]
    assert "Traceback" not in spark_app_server.log_text()
