"""The Data import page in Chromium: a Shopify orders export uploaded, recognised, mapped,
previewed and imported, then undone from the history; a screenshot of each step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.test_data_import import SHOPIFY
from tests.browser.conftest import (
    TIMEOUT_MS,
    AppServer,
    copy_store_with_users,
    problems,
    sign_in,
    start_app,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def import_server(
    demo_store_path: Path, tmp_path_factory: pytest.TempPathFactory, chromium_path: str
) -> Iterator[tuple[AppServer, Path]]:
    """A server of its own: the test writes to its store."""
    folder = tmp_path_factory.mktemp("browser_import")
    path = copy_store_with_users(demo_store_path, folder)
    server = start_app(path, folder)
    yield server, path
    server.stop()


def test_shopify_export_mapped_previewed_imported_and_undone(
    browser, import_server, screenshots, tmp_path
):
    server, _store_path = import_server
    export = tmp_path / "orders_export.csv"
    export.write_text(SHOPIFY, encoding="utf-8")
    context = browser.new_context(viewport={"width": 1400, "height": 2400})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, server.url, "admin")
        page.goto(f"{server.url}/data_import")
        wait_idle(page)
        page.screenshot(path=screenshots / "import_1_start.png", full_page=True)

        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
            str(export)
        )
        page.get_by_text("The first 20 rows read without problems.").wait_for()
        wait_idle(page)
        page.screenshot(path=screenshots / "import_2_mapped_and_previewed.png", full_page=True)
        assert (
            page.get_by_role("textbox", name="Platform (source of ids)").input_value() == "shopify"
        )
        assert page.get_by_role("tab", name="order_items").count() == 1
        assert problems(page) == []

        page.get_by_role("button", name="Import", exact=True).click()
        page.get_by_text("Imported orders_export.csv as batch").wait_for()
        wait_idle(page)
        assert problems(page) == []
        page.screenshot(path=screenshots / "import_3_imported.png", full_page=True)
        main = page.locator('[data-testid="stMain"]')
        assert "2 orders, 3 order_items" in main.inner_text()

        page.get_by_role("tab", name="History and undo").click()
        page.get_by_text("Undo an import").wait_for()
        page.get_by_text("Yes, undo this import").click()
        page.get_by_role("button", name="Undo import").click()
        undone = page.get_by_text("Undid import")
        undone.wait_for()
        wait_idle(page)
        assert "removed" in undone.inner_text() and "orders 2" in undone.inner_text()
        page.screenshot(path=screenshots / "import_4_history_undone.png", full_page=True)
        assert problems(page) == []
    finally:
        context.close()
