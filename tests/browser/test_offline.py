"""Nothing leaves the machine: an admin opens every view while the browser blocks (and
records) every request to a host other than the app's own loopback address."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from crm_ui.views import VIEWS
from tests.browser.conftest import TIMEOUT_MS, problems, sign_in, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def test_no_view_makes_a_request_outside_the_machine(browser, app_server):
    outside: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    context.set_default_timeout(TIMEOUT_MS)

    def guard(route) -> None:
        url = route.request.url
        scheme = urlparse(url).scheme
        if scheme in ("data", "blob") or urlparse(url).hostname in LOOPBACK:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    try:
        page = context.new_page()
        sign_in(page, app_server.url, "admin")
        for view in VIEWS:
            page.goto(f"{app_server.url}/{view.key}")
            wait_idle(page)
            assert problems(page) == [], view.key
    finally:
        context.close()
    assert outside == []
