"""Icon buttons have names that say what they do (a screen reader read every rule's remove
button as "delete icon")."""

from __future__ import annotations

import pytest

from tests.browser.conftest import TIMEOUT_MS, problems, sign_in, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_segment_builder_remove_buttons_are_named(browser, app_server):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, app_server.url, "marketer")
        page.goto(f"{app_server.url}/segment_builder")
        wait_idle(page)
        page.get_by_role("button", name="Add rule").first.click()
        wait_idle(page)
        page.get_by_role("button", name="Add group").first.click()
        wait_idle(page)
        assert page.get_by_role("button", name="Remove", exact=True).count() == 2
        assert page.get_by_role("button", name="Remove group", exact=True).count() == 1
        for icon_only in ("delete", "delete icon", "add", "add_box"):
            assert page.get_by_role("button", name=icon_only, exact=True).count() == 0
        assert problems(page) == []
    finally:
        context.close()
