"""In the real app: period presets and a one-day period, and no personal data reaching the
browser of a role without it (every websocket message of a walk through its views)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm_core import auth
from crm_core.filters import default_filters, preset_range
from crm_core.store import Store
from crm_ui.views import VIEWS
from tests.app.test_personal_data import customer_with_everything, found, personal_values
from tests.browser.conftest import TIMEOUT_MS, problems, sign_in, wait_idle
from tests.browser.test_views import open_view

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def choose_in_sidebar(page, label: str, option: str) -> None:
    """Pick `option` in the sidebar selectbox labelled `label`."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    box = sidebar.locator('[data-testid="stSelectbox"]').filter(
        has=page.get_by_role("combobox", name=label, exact=True)
    )
    box.get_by_role("combobox").click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def sidebar_text(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def test_presets_and_a_one_day_period(browser, app_server, screenshots, demo_store_path):
    store = Store(f"duckdb:///{demo_store_path}")  # the server's store is a copy of it
    last_day = default_filters(store).end
    store.dispose()
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, app_server.url, "manager")
        page.goto(f"{app_server.url}/overview")  # Home is the default page
        wait_idle(page)
        assert f"Data through {last_day:%d %b %Y}" in sidebar_text(page)
        assert "(365 days)" in sidebar_text(page)

        choose_in_sidebar(page, "Period", "Last 7 days")
        start = last_day - timedelta(days=6)
        assert f"{start:%d %b %Y} – {last_day:%d %b %Y} (7 days)" in sidebar_text(page)
        page.get_by_text("Revenue and active customers by day").wait_for()
        assert problems(page) == []
        page.screenshot(path=screenshots / "manager_last_7_days.png", full_page=True)

        choose_in_sidebar(page, "Period", "Last full month")
        first, last = preset_range("last_month", last_day)
        assert f"{first:%d %b %Y} – {last:%d %b %Y}" in sidebar_text(page)

        choose_in_sidebar(page, "Period", "Custom dates")
        # The default custom range runs from the 1st of the last month to the last day:
        # typing the last day into the start's day field makes it one day.
        start_day = page.get_by_role("spinbutton", name="day, From – to start date")
        start_day.click()
        page.keyboard.type(f"{last_day.day:02d}")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        page.locator('[data-testid="stMain"] h1').first.click()  # leave the field
        wait_idle(page)
        page.locator('[data-testid="stSidebar"]').get_by_text("(1 day)").wait_for()
        main = page.locator('[data-testid="stMain"]').inner_text()
        assert "Revenue and active customers by day" in main
        assert problems(page) == []
        page.screenshot(path=screenshots / "manager_one_day.png", full_page=True)
    finally:
        context.close()


def walk_and_record(browser, url: str, role: str, customer_id: int, only: str | None = None):
    """Every websocket message the browser of `role` receives while it opens its views."""
    received: list[bytes] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    def listen(ws) -> None:
        ws.on(
            "framereceived",
            lambda payload: received.append(
                payload if isinstance(payload, bytes) else payload.encode()
            ),
        )

    page.on("websocket", listen)
    try:
        sign_in(page, url, role)
        for view in VIEWS:
            if not auth.may_view(role, view.key) or only not in (None, view.key):
                continue
            open_view(page, view)
            if view.key == "customer_360":
                box = page.get_by_role("textbox", name="Find a customer")
                box.fill(str(customer_id))
                box.press("Enter")
                wait_idle(page)
                page.get_by_text("Completed orders").first.wait_for()
            assert problems(page) == [], (role, view.key, problems(page))
    finally:
        context.close()
    return b"".join(received)


def test_no_personal_data_reaches_the_browser_of_a_role_without_it(
    browser, app_server, demo_store_path
):
    store = Store(f"duckdb:///{demo_store_path}")  # the server holds its copy open
    values, customer_id = personal_values(store), customer_with_everything(store)
    store.dispose()
    shown = walk_and_record(browser, app_server.url, "marketer", customer_id, "customer_360")
    assert {"e-mail", "phone", "comment"} <= set(found(shown, values)), "the scan can see"
    for role in [r for r in auth.ROLES if not auth.can(r, "see_pii")]:
        received = walk_and_record(browser, app_server.url, role, customer_id)
        assert found(received, values) == {}, role
