"""AppTest fixtures: a store with one user per role, and a signed-in app runner."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from crm_core import auth
from crm_core.store import Store, close_all

APP = Path(__file__).resolve().parents[2] / "app.py"
PASSWORDS = {role: f"{role}-password-123" for role in auth.ROLES}


def add_role_users(store: Store) -> None:
    """One user per role, named after the role."""
    for role, password in PASSWORDS.items():
        auth.add_user(store, role, role, password, name=role.title())


@pytest.fixture(scope="session")
def app_store_path(demo_store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session demo store with one user per role."""
    path = tmp_path_factory.mktemp("app") / "crm.duckdb"
    shutil.copy(demo_store_path, path)
    store = Store(f"duckdb:///{path}")
    add_role_users(store)
    store.dispose()
    return path


def use_store(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Point the app at the store in `path`, with fresh Streamlit caches."""
    monkeypatch.setenv("CRM_DATABASE_URL", f"duckdb:///{path}")
    monkeypatch.setenv("CRM_DATA_DIR", str(path.parent))
    st.cache_data.clear()
    st.cache_resource.clear()
    close_all()


def private_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fill: Callable[[Store], object] | None = None,
    *,
    users: bool = True,
) -> Path:
    """A fresh store in tmp_path, filled by `fill`, with one user per role; the app reads it."""
    path = tmp_path / "crm.duckdb"
    store = Store(f"duckdb:///{path}")
    store.init_schema()
    if fill is not None:
        fill(store)
    if users:
        add_role_users(store)
    store.dispose()
    use_store(monkeypatch, path)
    return path


@pytest.fixture
def app_env(app_store_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The app reads the demo store with role users."""
    use_store(monkeypatch, app_store_path)
    yield app_store_path
    close_all()


@pytest.fixture
def own_store(app_store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the app store, for tests that write."""
    path = tmp_path / "crm.duckdb"
    shutil.copy(app_store_path, path)
    use_store(monkeypatch, path)
    return path


def sign_in(
    username: str, password: str | None = None, page: str | None = "app_pages/overview.py"
) -> AppTest:
    """Run the app and submit the login form; once signed in, open `page` (the KPI overview
    unless told otherwise; None: stay on the default page, Home)."""
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.text_input[0].input(username)
    at.text_input[1].input(password if password is not None else PASSWORDS[username])
    at.button[0].click().run()
    if page is not None and "crm_user" in at.session_state and at.session_state["crm_user"]:
        at.switch_page(page).run()
    return at


@pytest.fixture
def signed_in(app_env: Path) -> Callable[..., AppTest]:
    """sign_in(role) on the demo store."""
    return sign_in


def errors(at: AppTest) -> list[str]:
    """Error messages shown on the page."""
    return [e.value for e in at.error]
