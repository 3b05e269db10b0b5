"""Any width, either theme: an admin opens every view at 1440, 1024, 800 and 390 px (a phone)
and nothing is cut off: no KPI card's label, figure or change ends in "…", the page does not
scroll sideways, no element runs past the right edge, and the segment builder's controls are
all on screen. On the phone the navigation closes after a choice. Dark mode follows the
system setting. A screenshot of every view at every width goes to the screenshots folder."""

from __future__ import annotations

import pytest

from crm_core.store import Store
from crm_ui import links
from crm_ui.views import VIEWS
from tests.browser.conftest import TIMEOUT_MS, at_view, problems, sign_in, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (1440, 1024, 800, 390)
PHONE = 390
# A phone as Chromium emulates it: Streamlit's sidebar closes after a page is chosen on a
# device whose user agent says "mobile" (what a phone's browser sends), not merely in a
# narrow desktop window.
PHONE_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

# Everything measured in one round trip: cut-off KPI cards, sideways scrolling, elements
# past the right edge, the app's background colour.
MEASURE = """() => {
  const cut = [];
  for (const metric of document.querySelectorAll('[data-testid="stMetric"]')) {
    const parts = metric.querySelectorAll('[data-testid="stMetricLabel"], ' +
      '[data-testid="stMetricValue"], [data-testid="stMetricDelta"]');
    for (const part of parts) {
      for (const el of [part, ...part.querySelectorAll('*')]) {
        const text = (el.innerText || '').trim();
        if (el.scrollWidth > el.clientWidth + 1 || text.endsWith('…')) {
          cut.push(`${part.dataset.testid} "${part.innerText.trim()}" ` +
                   `(${el.scrollWidth} > ${el.clientWidth} px)`);
          break;
        }
      }
    }
  }
  const width = window.innerWidth;
  const sideways = [document.documentElement, document.body,
                    document.querySelector('[data-testid="stMain"]')]
    .filter(el => el && el.scrollWidth > el.clientWidth + 1)
    .map(el => `${el.dataset.testid || el.tagName} ${el.scrollWidth} > ${el.clientWidth} px`);
  const elements = '[data-testid="stMain"] [data-testid="stElementContainer"]';
  const past = [...document.querySelectorAll(elements)]
    .filter(el => el.checkVisibility())
    .map(el => [el, el.getBoundingClientRect()])
    .filter(([el, r]) => r.width > 0 && r.right > width + 1)
    .map(([el, r]) => `${el.innerText.trim().slice(0, 40) || el.className.slice(0, 40)}: ` +
                      `right edge at ${Math.round(r.right)} px`);
  const background = getComputedStyle(document.querySelector('[data-testid="stApp"]'))
    .backgroundColor;
  return {cut, sideways, past, background};
}"""

# The segment builder's fields, operators, values and buttons: each wholly on screen and
# no button label cut off.
BUILDER = """() => {
  const width = window.innerWidth;
  const tab = document.querySelector('[data-testid="stMain"] [role="tabpanel"]');
  const controls = tab.querySelectorAll('[data-baseweb="select"], input, button');
  const off = [];
  for (const el of controls) {
    if (!el.checkVisibility()) continue;
    const r = el.getBoundingClientRect();
    const name = (el.innerText || el.getAttribute('aria-label') || el.tagName).trim();
    if (r.width > 0 && (r.left < -1 || r.right > width + 1)) {
      off.push(`${name.slice(0, 30)}: ${Math.round(r.left)}-${Math.round(r.right)} px`);
    }
    const label = el.tagName === 'BUTTON' ? el.querySelector('p') : null;
    if (label && label.scrollWidth > label.clientWidth + 1) off.push(`${name}: label cut`);
  }
  return {count: controls.length, off};
}"""


def luminance(css_colour: str) -> float:
    """Relative luminance (0 black - 1 white) of an `rgb(r, g, b)` colour."""
    channels = [int(v) / 255 for v in css_colour[css_colour.index("(") + 1 : -1].split(",")[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def new_context(browser, width: int, **options):
    """A browser context `width` px wide; at PHONE px a phone (touch, mobile user agent)."""
    if width == PHONE:
        options |= {"is_mobile": True, "has_touch": True, "user_agent": PHONE_AGENT}
    context = browser.new_context(
        viewport={"width": width, "height": 844 if width == PHONE else 1000}, **options
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


def open_view(page, base_url: str, key: str, customer_id: int) -> None:
    """Open view `key` (Customer 360 on a profile, the builder with a rule and a group)."""
    path = links.customer_url(customer_id) if key == "customer_360" else key
    page.goto(f"{base_url}/{path}")
    wait_idle(page)
    if page.get_by_text("Page not found").count():  # the default view lives at /
        page.goto(base_url)
        wait_idle(page)
    if key == "segment_builder":
        page.get_by_role("button", name="Add rule").first.click()
        wait_idle(page)
        page.get_by_role("button", name="Add group").first.click()
        wait_idle(page)


def top_customer_id(store_path) -> int:
    """The customer with the most revenue (the longest figures on the 360 cards)."""
    store = Store(f"duckdb:///{store_path}")
    try:
        return int(
            store.scalar(
                "SELECT customer_id FROM orders WHERE status = 'completed' "
                "GROUP BY customer_id ORDER BY sum(amount) DESC LIMIT 1"
            )
        )
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def top_customer(demo_store_path) -> int:
    """The customer whose Customer 360 page the tests open."""
    return top_customer_id(demo_store_path)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_view_fits_the_width(browser, app_server, screenshots, top_customer, width):
    context = new_context(browser, width)
    found: dict[str, list[str]] = {}
    try:
        page = context.new_page()
        sign_in(page, app_server.url, "admin")
        for view in VIEWS:
            open_view(page, app_server.url, view.key, top_customer)
            page.screenshot(path=screenshots / f"width_{width}_{view.key}.png")
            seen = page.evaluate(MEASURE)
            assert luminance(seen["background"]) > 0.8, (view.key, seen["background"])
            issues = problems(page) + seen["cut"] + seen["sideways"] + seen["past"]
            if view.key == "segment_builder":
                builder = page.evaluate(BUILDER)
                assert builder["count"] >= 8, builder  # two rules: field, operator, value...
                issues += builder["off"]
            if issues:
                found[view.key] = issues
        if width == PHONE:
            phone_navigation_closes_the_sidebar(page, screenshots)
    finally:
        context.close()
    assert found == {}, f"at {width} px: {found}"


def phone_navigation_closes_the_sidebar(page, screenshots) -> None:
    """Open the sidebar, choose a page: the page opens and the sidebar is closed again."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_attribute("data-collapsed") == "true"  # closed on a phone at first
    page.locator('[data-testid="stExpandSidebarButton"]').click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stSidebar\"]').dataset.collapsed === 'false'"
    )
    target = next(v for v in VIEWS if v.key == "surveys")
    nav = page.locator('[data-testid="stSidebarNav"]')
    if not nav.get_by_role("link", name=target.title).count():
        nav.locator('[data-testid="stSidebarNavViewButton"]').click()  # "View n more"
    page.wait_for_function(  # slid in over the page
        "() => document.querySelector('[data-testid=\"stSidebar\"]')"
        ".getBoundingClientRect().left >= 0"
    )
    page.screenshot(path=screenshots / f"width_{PHONE}_navigation_open.png")
    nav.get_by_role("link", name=target.title).click()
    page.wait_for_url(at_view(target.key))
    wait_idle(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stSidebar\"]').dataset.collapsed === 'true'"
    )
    box = sidebar.bounding_box()
    assert box is None or box["x"] + box["width"] <= 1, box  # slid off the screen
    title = page.locator('[data-testid="stMain"] h1').first.bounding_box()
    assert title is not None and title["x"] >= 0, title  # the chosen page, uncovered
    page.screenshot(path=screenshots / f"width_{PHONE}_navigation_closed.png")


@pytest.mark.parametrize("width", (1440, PHONE))
def test_dark_mode_follows_the_system_setting(browser, app_server, screenshots, width):
    context = new_context(browser, width, color_scheme="dark")
    try:
        page = context.new_page()
        sign_in(page, app_server.url, "admin")
        open_view(page, app_server.url, "overview", 0)
        page.screenshot(path=screenshots / f"dark_{width}_overview.png")
        page.locator('[data-testid="stMain"]').evaluate("el => el.scrollTo(0, 1000)")
        page.screenshot(path=screenshots / f"dark_{width}_overview_charts.png")
        seen = page.evaluate(MEASURE)
        text = page.locator('[data-testid="stMetricValue"]').first.evaluate(
            "el => getComputedStyle(el).color"
        )
        assert problems(page) == []
    finally:
        context.close()
    assert luminance(seen["background"]) < 0.05, seen["background"]
    assert luminance(text) > 0.6, text  # light figures on the dark background


def test_the_app_menu_switches_between_light_and_dark(browser, app_server, screenshots):
    """A light system, then the user's choice in the app menu: Dark, and it stays dark
    after a reload; Light brings it back."""
    context = new_context(browser, 1440, color_scheme="light")
    try:
        page = context.new_page()
        sign_in(page, app_server.url, "admin")
        background = page.locator('[data-testid="stApp"]')

        def colour() -> str:
            return background.evaluate("el => getComputedStyle(el).backgroundColor")

        assert luminance(colour()) > 0.8, colour()
        page.locator('[data-testid="stMainMenu"]').click()
        page.locator('[data-testid="stMainMenuItem-theme-Dark"]').click()
        page.wait_for_function(
            "() => getComputedStyle(document.querySelector('[data-testid=stApp]'))"
            ".backgroundColor !== 'rgb(255, 255, 255)'"
        )
        assert luminance(colour()) < 0.05, colour()
        page.reload()
        wait_idle(page)
        assert luminance(colour()) < 0.05, "the choice is kept after a reload"
        page.screenshot(path=screenshots / "theme_chosen_dark.png")
        page.locator('[data-testid="stMainMenu"]').click()
        page.locator('[data-testid="stMainMenuItem-theme-Light"]').click()
        page.wait_for_function(
            "() => getComputedStyle(document.querySelector('[data-testid=stApp]'))"
            ".backgroundColor === 'rgb(255, 255, 255)'"
        )
    finally:
        context.close()
