"""Users, hashes, the lock after failed logins, and the role matrix."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from crm_core import auth
from crm_core.config import Settings
from crm_core.errors import AuthError, NotAllowedError
from crm_core.schema import app_users

PASSWORD = "correct horse battery"


def test_add_user_stores_bcrypt_hash_never_the_password(store):
    auth.add_user(store, "mia", "marketer", PASSWORD, name="Mia")
    stored = store.scalar(sa.select(app_users.c.password_hash))
    assert stored.startswith("$2") and PASSWORD not in stored
    assert auth.check_password(PASSWORD, stored)
    assert not auth.check_password("wrong password!", stored)
    assert auth.get_user(store, "mia") == auth.User("mia", "Mia", "marketer", None)


@pytest.mark.parametrize(
    "username,role,password,message",
    [
        ("Mia", "marketer", PASSWORD, "not valid"),
        ("mia", "boss", PASSWORD, "Unknown role 'boss'"),
        ("mia", "marketer", "short", "too short"),
    ],
)
def test_bad_users_are_refused_with_clear_errors(store, username, role, password, message):
    with pytest.raises(AuthError, match=message):
        auth.add_user(store, username, role, password)


def test_duplicate_user_refused(store):
    auth.add_user(store, "mia", "marketer", PASSWORD)
    with pytest.raises(AuthError, match="already exists"):
        auth.add_user(store, "mia", "analyst", PASSWORD)


def test_ensure_admin_only_on_first_start(store):
    password = auth.ensure_admin(store)
    assert password and len(password) >= auth.MIN_PASSWORD_LENGTH
    assert auth.get_user(store, "admin").role == "admin"
    assert auth.ensure_admin(store) is None
    assert auth.ensure_admin.__doc__


def test_generated_passwords_differ():
    assert auth.generate_password() != auth.generate_password()


def test_failed_logins_lock_then_expire_and_reset_unlocks(store):
    settings = Settings(max_login_attempts=3, lockout_minutes=15)
    auth.add_user(store, "mia", "marketer", PASSWORD)
    for _ in range(3):
        assert not auth.is_locked(store, "mia", settings)
        auth.record_login(store, "mia", success=False)
    assert auth.is_locked(store, "mia", settings)
    creds = auth.authenticator_credentials(store, settings)
    assert creds["usernames"]["mia"]["failed_login_attempts"] == 3
    # The lock lapses after lockout_minutes.
    with store.begin() as conn:
        conn.execute(
            app_users.update().values(
                last_failed_at=app_users.c.last_failed_at - timedelta(hours=1)
            )
        )
    assert not auth.is_locked(store, "mia", settings)
    assert (
        auth.authenticator_credentials(store, settings)["usernames"]["mia"]["failed_login_attempts"]
        == 0
    )
    # A reset unlocks at once and changes the password.
    auth.record_login(store, "mia", success=False)
    auth.record_login(store, "mia", success=False)
    auth.record_login(store, "mia", success=False)
    new_password = auth.reset_password(store, "mia")
    assert not auth.is_locked(store, "mia", settings)
    stored = store.scalar(sa.select(app_users.c.password_hash))
    assert auth.check_password(new_password, stored)


def test_success_clears_failed_count(store):
    auth.add_user(store, "mia", "marketer", PASSWORD)
    auth.record_login(store, "mia", success=False)
    auth.record_login(store, "mia", success=True)
    assert store.scalar(sa.select(app_users.c.failed_logins)) == 0


def test_reset_unknown_user(store):
    with pytest.raises(AuthError, match="No user 'ghost'"):
        auth.reset_password(store, "ghost", PASSWORD)


def test_credentials_hold_hashes_and_roles(store):
    auth.add_user(store, "ann", "analyst", PASSWORD)
    user = auth.authenticator_credentials(store)["usernames"]["ann"]
    assert user["roles"] == ["analyst"] and user["password"].startswith("$2")


def test_cookie_key_is_random_and_kept(tmp_path):
    settings = Settings(data_dir=tmp_path)
    key = auth.cookie_key(settings)
    assert len(key) == 64 and auth.cookie_key(settings) == key
    assert (tmp_path / ".cookie_key").stat().st_mode & 0o077 == 0
    assert auth.cookie_key(Settings(data_dir=tmp_path / "other")) != key


def test_role_matrix_keeps_pii_and_exports_from_managers():
    assert not auth.can("manager", "see_pii")
    assert not auth.can("manager", "export_lists")
    assert not auth.can("manager", "export_pii")
    assert not auth.may_view("manager", "customer_360")
    assert auth.may_view("manager", "overview")
    assert all(auth.may_view("admin", view) for view in auth.VIEW_ROLES)
    assert not auth.may_view("analyst", "data_import")
    assert not auth.can("analyst", "see_pii")
    assert auth.can("marketer", "export_pii")
    assert not auth.can("admin", "no_such_action")


def test_require_view_names_role_and_allowed_roles():
    auth.require_view("admin", "data_import")
    with pytest.raises(
        NotAllowedError, match=r"Not allowed: the manager role .*\(allowed: admin\)"
    ):
        auth.require_view("manager", "data_import")
    with pytest.raises(NotAllowedError):
        auth.require_view(None, "overview")
