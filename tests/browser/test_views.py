"""Every role signs in, opens each of its views, is refused the others, and signs out."""

from __future__ import annotations

import pytest

from crm_core import auth
from crm_ui.views import VIEWS
from tests.browser.conftest import TIMEOUT_MS, at_view, problems, sign_in, slug, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEY_TEXT = {
    "overview": [
        "Revenue",
        "Orders",
        "Active customers",
        "Retention rate",
        "NPS",
        "CSAT",
        "Revenue and active customers by month",
        "Cohort retention",
    ],
    "data_import": ["File to import", "Upload a file to start", "History and undo", "Scores"],
    "admin": ["Users", "Add a user", "Reset a password", "Role matrix", "Export log"],
}
"""Text each view must show besides its title (views not listed: the title and no error)."""

KEY_METRICS = {"overview": 10}
"""Number of KPI cards with a value a view must show."""

REGISTERED = {view.key for view in VIEWS}


def open_view(page, view) -> None:
    """Click the view in the sidebar (Streamlit shows no navigation for a single page)."""
    link = page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=view.title)
    if link.count():
        link.click()
        page.wait_for_url(at_view(view.key), wait_until="commit")
    wait_idle(page)
    page.locator("h1").first.wait_for(timeout=TIMEOUT_MS)


def check_view(page, view, screenshot, who: str) -> None:
    """Open `view`, save a screenshot, and check it shows its key text and figures, no error."""
    open_view(page, view)
    page.screenshot(path=screenshot, full_page=True)
    assert problems(page) == [], f"{who} on {view.key}"
    main = page.locator('[data-testid="stMain"]').inner_text()
    for text in KEY_TEXT.get(view.key, []):
        assert text in main, f"{view.key} shows {text!r} for {who}"
    values = page.locator('[data-testid="stMetricValue"]')
    if view.key in KEY_METRICS:
        assert values.count() == KEY_METRICS[view.key]
        shown = [values.nth(i).inner_text() for i in range(values.count())]
        assert all(v and v != "n/a" for v in shown), shown


@pytest.mark.parametrize("role", auth.ROLES)
def test_role_sees_its_views_is_refused_others_and_signs_out(
    browser, app_server, screenshots, role
):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    try:
        sign_in(page, app_server.url, role)
        mine = [v for v in VIEWS if auth.may_view(role, v.key)]
        nav = page.locator('[data-testid="stSidebarNav"]')
        listed = {
            nav.get_by_role("link").nth(i).inner_text().strip().splitlines()[-1]
            for i in range(nav.get_by_role("link").count())
        }
        expected = {v.title for v in mine} if len(mine) > 1 else set()
        assert listed == expected, "the navigation lists exactly the role's views"

        for view in mine:
            check_view(page, view, screenshots / f"{role}_{slug(view.key)}.png", role)

        for view in [v for v in VIEWS if not auth.may_view(role, v.key)]:
            page.goto(f"{app_server.url}/{view.key}")
            page.get_by_text("Not allowed").first.wait_for(timeout=TIMEOUT_MS)
            wait_idle(page)
            main = page.locator('[data-testid="stMain"]').inner_text()
            assert "Not allowed" in main and f"the {role} role may not open" in main
            for text in KEY_TEXT.get(view.key, []):
                if text not in KEY_TEXT["overview"]:
                    assert text not in main.replace("Not allowed", ""), (view.key, text)
            page.screenshot(path=screenshots / f"{role}_{slug(view.key)}_refused.png")

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_selector("input[type=password]", timeout=TIMEOUT_MS)
        wait_idle(page)
        page.screenshot(path=screenshots / f"{role}_signed_out.png")
        page.reload()  # the sign-in cookie is gone too: a reload shows the form again
        page.wait_for_selector("input[type=password]", timeout=TIMEOUT_MS)
        wait_idle(page)
        assert page.get_by_role("button", name="Sign out").count() == 0
    finally:
        context.close()


def test_wrong_password_is_refused(browser, app_server):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(app_server.url)
        page.wait_for_selector("input[type=password]", timeout=TIMEOUT_MS)
        page.get_by_label("Username").fill("analyst")
        page.locator("input[type=password]").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Username or password is incorrect").wait_for(timeout=TIMEOUT_MS)
        assert page.get_by_role("button", name="Sign out").count() == 0
    finally:
        context.close()


@pytest.mark.skipif(
    "segment_builder" not in REGISTERED,
    reason="the segment builder page is not registered in crm_ui/views.py yet",
)
def test_marketer_builds_saves_and_exports_a_segment(browser, app_server, screenshots):
    """Build a segment with one rule, save it, export it, and read the downloaded file."""
    import pandas as pd

    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, app_server.url, "marketer")
        open_view(page, next(v for v in VIEWS if v.key == "segment_builder"))
        page.get_by_role("button", name="Add rule").click()
        wait_idle(page)
        page.get_by_label("Name", exact=True).fill("Browser test segment")
        page.get_by_role("button", name="Save segment").click()
        page.get_by_text("Saved Browser test segment version 1").wait_for()
        wait_idle(page)
        assert problems(page) == []
        page.screenshot(path=screenshots / "marketer_segment_saved.png", full_page=True)
        page.get_by_role("tab", name="Export").click()
        page.get_by_role("button", name="Export", exact=True).click()
        page.get_by_text("Exported").first.wait_for()
        wait_idle(page)
        assert problems(page) == []
        page.screenshot(path=screenshots / "marketer_segment_exported.png", full_page=True)
        with page.expect_download() as info:
            page.get_by_role("button", name="Download").first.click()
        download = info.value
        name = download.suggested_filename
        path = download.path()
        if name.endswith(".csv"):
            frame = pd.read_csv(path)
        elif name.endswith(".parquet"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_excel(path)
        assert len(frame) > 0, name
    finally:
        context.close()
