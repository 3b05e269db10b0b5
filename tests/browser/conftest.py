"""The real app in a real browser: `streamlit run app.py` on a free loopback port over a copy
of the demo store, driven by Playwright in the system's headless Chromium (no download).

- `CRM_CHROMIUM` names the browser binary (default /usr/bin/chromium; `make test` installs
  the Debian package `chromium` when it is missing).
- `CRM_TEST_BROWSER=require` (what `make test` sets) makes a missing browser an error;
  otherwise these tests are skipped with the reason.
- Screenshots of every view go to `CRM_SCREENSHOTS` (default test-artifacts/screenshots).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from crm_core.store import Store
from tests.app.conftest import PASSWORDS, add_role_users
from tests.pg_server import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CRM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("CRM_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))
TIMEOUT_MS = 120_000
AUTH_COOKIE = "crm_insights_auth"  # crm_ui.auth_ui


@dataclass
class AppServer:
    """A running `streamlit run app.py` and the store it serves."""

    url: str
    store_path: Path
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server (and with it release the DuckDB file)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_app(
    store_path: Path, folder: Path, url: str | None = None, env: dict[str, str] | None = None
) -> AppServer:
    """Serve app.py over the DuckDB store at `store_path` (or the store at `url`, e.g. a
    PostgreSQL schema) on a free 127.0.0.1 port, with `env` added to its environment."""
    port = free_port()
    log = folder / f"streamlit-{port}.log"
    env = {
        **os.environ,
        "CRM_DATABASE_URL": url or f"duckdb:///{store_path}",
        "CRM_DATA_DIR": str(store_path.parent),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = AppServer(f"http://127.0.0.1:{port}", store_path, process, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{server.log_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"streamlit did not answer within 90 s:\n{server.log_text()}")


def copy_store_with_users(demo_store_path: Path, folder: Path) -> Path:
    """A copy of the session demo store with one user per role (tests.app.conftest)."""
    path = folder / "crm.duckdb"
    shutil.copy(demo_store_path, path)
    store = Store(f"duckdb:///{path}")
    add_role_users(store)
    store.dispose()
    return path


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium, or a skip (an error under CRM_TEST_BROWSER=require)."""
    if not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CRM_CHROMIUM)"
        if os.environ.get("CRM_TEST_BROWSER") == "require":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path: str):
    """One headless Chromium for the session (sync Playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def app_server(
    demo_store_path: Path, tmp_path_factory: pytest.TempPathFactory, chromium_path: str
) -> Iterator[AppServer]:
    """The app over a copy of the demo store with one user per role, for the session."""
    folder = tmp_path_factory.mktemp("browser")
    server = start_app(copy_store_with_users(demo_store_path, folder), folder)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Folder for screenshots of every view (named by `make test`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


# --- page helpers ----------------------------------------------------------------------


def wait_idle(page, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until the script run is over and the page has settled."""
    app = page.locator('[data-testid="stApp"]')
    app.wait_for(timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    settled = 0
    while time.monotonic() < deadline:
        state = app.get_attribute("data-test-script-state")
        running = page.locator('[data-testid="stStatusWidget"]').count()
        settled = settled + 1 if state == "notRunning" and not running else 0
        if settled >= 3:  # idle for a moment: no rerun right behind (cookie, sign-in)
            return
        time.sleep(0.25)
    raise AssertionError(f"the app is still running after {timeout_ms} ms")


def sign_in(page, base_url: str, username: str, password: str | None = None) -> None:
    """Open the app and sign in through the login form; wait for the sidebar."""
    page.goto(base_url)
    page.wait_for_selector("input[type=password]", timeout=TIMEOUT_MS)
    wait_idle(page)  # the sign-in cookie's rerun redraws the form: fill it after that
    for attempt in (1, 2):
        page.get_by_label("Username").fill(username)
        page.locator("input[type=password]").fill(password or PASSWORDS[username])
        page.get_by_role("button", name="Sign in").click()
        try:
            page.get_by_role("button", name="Sign out").wait_for(timeout=TIMEOUT_MS // 2)
            break
        except PlaywrightTimeoutError:
            # a click lost to a rerun leaves the filled form on screen and says nothing; a
            # refused password says so and fails here
            if not page.locator("input[type=password]").count():  # signing in, slowly
                page.get_by_role("button", name="Sign out").wait_for(timeout=TIMEOUT_MS)
                break
            refused = page.get_by_text("Username or password is incorrect").count() > 0
            if attempt == 2 or refused:
                raise
    wait_idle(page)
    wait_for_login_cookie(page)


def wait_for_login_cookie(page, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until the browser holds the sign-in cookie.

    The app sets it from a component in the run after signing in, and the browser stores it
    a moment after that run is over; a `goto` before then opens a session that is not signed
    in (seen on a loaded CI machine).
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        if any(cookie["name"] == AUTH_COOKIE for cookie in page.context.cookies()):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {AUTH_COOKIE} cookie {timeout_ms} ms after signing in")


def page_state(page) -> str:
    """What a page shows, for a failure message: URL, script state, sign-in form, text."""
    app = page.locator('[data-testid="stApp"]')
    state = app.get_attribute("data-test-script-state") if app.count() else "no app"
    login = page.locator("input[type=password]").count() > 0
    main = page.locator('[data-testid="stMain"]')
    text = (main if main.count() else page.locator("body")).inner_text()[:600]
    text = text.replace("\n", " | ")
    return f"url={page.url} script={state} login_form={login} text={text!r}"


def problems(page) -> list[str]:
    """Exceptions and error boxes on the page, as text."""
    found = []
    for selector in ('[data-testid="stException"]', '[data-testid="stAlertContentError"]'):
        loc = page.locator(selector)
        found += [loc.nth(i).inner_text() for i in range(loc.count())]
    return found


def at_view(key: str):
    """URL predicate: the page of view `key` (the default view, home, lives at /)."""

    def matches(url: str) -> bool:
        path = urlparse(url).path.rstrip("/")
        return path.endswith(f"/{key}") or (key == "home" and path == "")

    return matches


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failure, add the end of each app server's log to the report: CI keeps no files."""
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, AppServer):
                tail = "\n".join(value.log_text().splitlines()[-60:])
                report.sections.append((f"streamlit log of {name} (last 60 lines)", tail))
    return report
