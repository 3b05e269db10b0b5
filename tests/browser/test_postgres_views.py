"""The real server over a PostgreSQL store: admin signs in and opens every view in Chromium.

The store is a copy of the session's PostgreSQL demo store (tests/stores.py) with one user
per role; `streamlit run app.py` reaches it through `CRM_DATABASE_URL`, as a deployment would.
Screenshots land next to the DuckDB ones as `postgresql_admin_<view>.png`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_core.store import Store
from crm_ui.views import VIEWS
from tests.app.conftest import add_role_users
from tests.browser.conftest import AppServer, sign_in, slug, start_app
from tests.browser.test_views import check_view
from tests.stores import PgSchemas

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def pg_app_server(
    pg_schemas: PgSchemas,
    pg_demo_schema: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    chromium_path: str,
) -> Iterator[AppServer]:
    """The app over a copy of the PostgreSQL demo store with one user per role."""
    name, url = pg_schemas.copy(pg_demo_schema[0], "browser")
    store = Store(url)
    add_role_users(store)
    store.dispose()
    folder = tmp_path_factory.mktemp("browser_pg")  # the cookie key; no DuckDB file is made
    server = start_app(folder / "crm.duckdb", folder, url=url)
    yield server
    server.stop()
    pg_schemas.drop(name)


def test_admin_opens_every_view_on_postgresql(browser, pg_app_server, screenshots):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    try:
        sign_in(page, pg_app_server.url, "admin")
        for view in VIEWS:
            shot = screenshots / f"postgresql_admin_{slug(view.key)}.png"
            check_view(page, view, shot, "admin on PostgreSQL")
        assert "Traceback" not in pg_app_server.log_text()
    finally:
        context.close()
