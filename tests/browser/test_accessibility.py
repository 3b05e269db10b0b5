"""Accessibility: axe-core (bundled with axe-playwright-python, nothing fetched) on the sign-in
page and on every view as an admin; any serious or critical violation fails, apart from the
few listed in STREAMLIT_MARKUP that come from Streamlit's own markup, which the app cannot
change. The same walk proves that nothing leaves the machine: the browser blocks (and
records) every request to a host other than the app's own loopback address."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from crm_ui.views import VIEWS
from tests.browser.conftest import TIMEOUT_MS, problems, sign_in, wait_idle
from tests.browser.test_widths import new_context, open_view, top_customer_id

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# rule id -> the element (CSS selector) whose violations of that rule are Streamlit's own.
STREAMLIT_MARKUP = {
    # Streamlit 1.67's sidebar navigation with sections renders <ul stSidebarNavItems>
    # whose children are <div>s (a section's heading and its <li> links), so axe's "list"
    # (a <ul> holds only <li>) and "listitem" (an <li> sits in a <ul>) fail for every link.
    # The markup is the frontend's; the sections are how the app groups its views.
    "list": '[data-testid="stSidebarNavItems"]',
    "listitem": '[data-testid="stSidebarNavItems"]',
}

RUN_AXE = """async ([allowed, options]) => {
  const result = await axe.run(document, options);
  const ours = (rule, node) => {
    const el = document.querySelector(node.target[node.target.length - 1]);
    return !(allowed[rule] && el && el.closest(allowed[rule]));
  };
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({rule: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.filter(n => ours(v.id, n))
                        .map(n => `${n.target.join(' ')}: ${n.html.slice(0, 160)} ` +
                                  (n.any[0] ? n.any[0].message : ''))}))
    .filter(v => v.nodes.length > 0);
}"""


@pytest.fixture(scope="module")
def top_customer(demo_store_path) -> int:
    """The customer whose Customer 360 page the tests open."""
    return top_customer_id(demo_store_path)


def axe_violations(page, options: dict | None = None) -> list[dict]:
    """Serious and critical axe-core violations on the page, Streamlit's own left out."""
    from axe_playwright_python.base import AXE_SCRIPT

    if not page.evaluate("() => typeof axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT)
    found = page.evaluate(RUN_AXE, [STREAMLIT_MARKUP, options or {"resultTypes": ["violations"]}])
    running = page.locator('[data-testid="stStatusWidget"]').count() or any(
        "stBaseButton-header" in node for violation in found for node in violation["nodes"]
    )  # the header's "Stop" of a rerun that has ended by now
    if found and running:
        # a rerun began while axe ran (e.g. the sign-in cookie's, late on a busy machine):
        # judge the settled page, not Streamlit's "Running... Stop" indicator
        wait_idle(page)
        found = page.evaluate(
            RUN_AXE, [STREAMLIT_MARKUP, options or {"resultTypes": ["violations"]}]
        )
    return found


def unnamed_icon_buttons(page) -> list[str]:
    """Buttons and links whose accessible name is an icon's (e.g. "delete icon")."""
    icon_name = re.compile(r"(^|\s)icon$|^:material")
    found = []
    for role in ("button", "link"):
        loc = page.get_by_role(role, name=icon_name)
        found += [f"{role}: {loc.nth(i).inner_html()[:120]}" for i in range(loc.count())]
    return found


LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def test_every_view_is_accessible_and_requests_nothing_outside_the_machine(
    browser, app_server, top_customer
):
    context = new_context(browser, 1440)
    outside: list[str] = []

    def guard(route) -> None:
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or url.hostname in LOOPBACK:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    found: dict[str, list] = {}
    try:
        page = context.new_page()
        page.goto(app_server.url)
        page.wait_for_selector("input[type=password]", timeout=TIMEOUT_MS)
        wait_idle(page)
        if violations := axe_violations(page):
            found["sign-in"] = violations
        sign_in(page, app_server.url, "admin")
        for view in VIEWS:
            open_view(page, app_server.url, view.key, top_customer)
            assert problems(page) == [], view.key
            violations = axe_violations(page) + unnamed_icon_buttons(page)
            if violations:
                found[view.key] = violations
    finally:
        context.close()
    assert outside == [], "requests to hosts outside the machine"
    assert found == {}, "\n".join(f"{key}: {value}" for key, value in found.items())


def test_dark_mode_has_enough_contrast(browser, app_server, top_customer):
    """The contrast check again in dark mode, on the views with the most text and colour."""
    context = new_context(browser, 1440, color_scheme="dark")
    found: dict[str, list] = {}
    try:
        page = context.new_page()
        sign_in(page, app_server.url, "admin")
        for key in ("overview", "segment_builder", "churn"):
            open_view(page, app_server.url, key, top_customer)
            contrast = {"runOnly": ["color-contrast"], "resultTypes": ["violations"]}
            if violations := axe_violations(page, contrast):
                found[key] = violations
    finally:
        context.close()
    assert found == {}, found
