"""An admin deactivates a user in the real app; that user's open session ends and they
cannot sign in again (the login form shows an error and no page content)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.app.conftest import PASSWORDS
from tests.browser.conftest import (
    TIMEOUT_MS,
    AppServer,
    copy_store_with_users,
    page_state,
    problems,
    sign_in,
    start_app,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def users_server(
    demo_store_path: Path, tmp_path_factory: pytest.TempPathFactory, chromium_path: str
) -> Iterator[AppServer]:
    """A server of its own: deactivating a user here must not touch the shared app_server."""
    folder = tmp_path_factory.mktemp("browser_users")
    server = start_app(copy_store_with_users(demo_store_path, folder), folder)
    yield server
    server.stop()


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`."""
    box = page.locator('[data-testid="stSelectbox"]').filter(
        has=page.get_by_role("combobox", name=label, exact=True)
    )
    box.get_by_role("button", name="Open").click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def shows_no_app(page) -> None:
    """The login form is there and nothing of the app is."""
    page.wait_for_selector("input[type=password]", timeout=TIMEOUT_MS)
    assert page.get_by_role("button", name="Sign out").count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    assert page.locator('[data-testid="stMetricValue"]').count() == 0
    assert page.locator('[data-testid="stDataFrame"]').count() == 0


def test_deactivated_user_is_signed_out_and_cannot_sign_in(browser, users_server, screenshots):
    admin = browser.new_context(viewport={"width": 1400, "height": 1600})
    analyst = browser.new_context()
    stranger = browser.new_context()
    for context in (admin, analyst, stranger):
        context.set_default_timeout(TIMEOUT_MS)
    try:
        # The analyst is signed in (with a login cookie) before the admin acts.
        analyst_page = analyst.new_page()
        sign_in(analyst_page, users_server.url, "analyst")
        assert problems(analyst_page) == []

        page = admin.new_page()
        sign_in(page, users_server.url, "admin")
        page.locator('[data-testid="stSidebarNav"]').get_by_role(
            "link", name="Users & audit"
        ).click()
        page.get_by_text("Manage a user").wait_for()
        wait_idle(page)
        choose(page, "User", "analyst")
        page.locator('[data-testid="stRadio"]').get_by_text("Deactivate", exact=True).click()
        wait_idle(page)
        button = page.get_by_role("button", name="Deactivate", exact=True)
        assert button.is_disabled()  # not before the confirmation
        page.get_by_text("Yes, deactivate analyst").click()
        wait_idle(page)
        button.click()
        page.get_by_text("Deactivated analyst: they can no longer sign in.").wait_for()
        wait_idle(page)
        assert problems(page) == []
        page.screenshot(path=screenshots / "admin_user_deactivated.png", full_page=True)

        # The analyst's open tab: the next load (the cookie would sign them in) signs out.
        analyst_page.reload()
        note = analyst_page.get_by_text("You were signed out")
        try:
            note.wait_for(timeout=TIMEOUT_MS // 2)
        except PlaywrightTimeoutError:
            # Seen once in a clean run under load, never alone: say what the page showed and
            # load it once more (the sign-out must still happen then)
            warnings.warn(
                f"no sign-out note after the reload; it showed: {page_state(analyst_page)}",
                stacklevel=2,
            )
            analyst_page.reload()
        note.wait_for()
        wait_idle(analyst_page)
        shows_no_app(analyst_page)

        # A fresh browser: the right password no longer signs the analyst in.
        fresh = stranger.new_page()
        fresh.goto(users_server.url)
        fresh.wait_for_selector("input[type=password]")
        fresh.get_by_label("Username").fill("analyst")
        fresh.locator("input[type=password]").fill(PASSWORDS["analyst"])
        fresh.get_by_role("button", name="Sign in").click()
        fresh.get_by_text("Username or password is incorrect").wait_for()
        wait_idle(fresh)
        shows_no_app(fresh)
        fresh.screenshot(path=screenshots / "deactivated_user_sign_in.png", full_page=True)
    finally:
        for context in (admin, analyst, stranger):
            context.close()
