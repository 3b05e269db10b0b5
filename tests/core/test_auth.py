"""Users, hashes, the lock after failed logins, and the role matrix."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from crm_core import audit, auth
from crm_core.config import Settings
from crm_core.errors import AuthError, NotAllowedError
from crm_core.schema import app_users, export_log, segments
from crm_core.store import utcnow

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
        ("mia", "", PASSWORD, "No role chosen for 'mia'; allowed: admin, manager"),
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


# --- lifecycle: deactivate, reactivate, change role, remove ------------------------------


def _admin_and_mia(store) -> None:
    auth.add_user(store, "admin", "admin", PASSWORD)
    auth.add_user(store, "mia", "marketer", PASSWORD)


@pytest.mark.both_stores
def test_deactivate_reactivate_set_role_and_remove(store):
    _admin_and_mia(store)
    auth.deactivate_user(store, "mia", by="admin")
    assert auth.get_user(store, "mia").active is False
    assert "mia" not in auth.authenticator_credentials(store)["usernames"]
    listed = {u["username"]: u for u in auth.list_users(store)}
    assert listed["mia"]["active"] is False and listed["admin"]["active"] is True
    auth.deactivate_user(store, "mia")  # again: nothing changes, no error
    auth.activate_user(store, "mia")
    assert auth.get_user(store, "mia").active is True
    creds = auth.authenticator_credentials(store)["usernames"]
    assert creds["mia"]["roles"] == ["marketer"]
    assert auth.check_password(PASSWORD, creds["mia"]["password"])  # same password as before
    auth.set_role(store, "mia", "analyst", by="admin")
    assert auth.get_user(store, "mia").role == "analyst"
    auth.remove_user(store, "mia", by="admin")
    assert auth.get_user(store, "mia") is None
    assert [u["username"] for u in auth.list_users(store)] == ["admin"]


@pytest.mark.both_stores
def test_lifecycle_of_an_unknown_user_or_role_is_refused(store):
    _admin_and_mia(store)
    for change in (auth.deactivate_user, auth.activate_user, auth.remove_user):
        with pytest.raises(AuthError, match="No user 'ghost'; see `python -m crm_core users"):
            change(store, "ghost")
    with pytest.raises(AuthError, match="No user 'ghost'"):
        auth.set_role(store, "ghost", "analyst")
    with pytest.raises(AuthError, match=r"Unknown role 'boss'; allowed: admin, manager"):
        auth.set_role(store, "mia", "boss")


@pytest.mark.both_stores
def test_last_active_admin_cannot_be_removed_deactivated_or_demoted(store):
    _admin_and_mia(store)
    last = "Cannot {} 'admin': it is the last active admin"
    with pytest.raises(AuthError, match=last.format("remove")):
        auth.remove_user(store, "admin")
    with pytest.raises(AuthError, match=last.format("deactivate")):
        auth.deactivate_user(store, "admin")
    with pytest.raises(AuthError, match=last.format("demote")):
        auth.set_role(store, "admin", "analyst")
    assert auth.get_user(store, "admin") == auth.User("admin", "admin", "admin", None, True)
    # A deactivated second admin does not count; an active one does.
    auth.add_user(store, "boss", "admin", PASSWORD)
    auth.deactivate_user(store, "boss")
    with pytest.raises(AuthError, match=last.format("remove")):
        auth.remove_user(store, "admin")
    auth.activate_user(store, "boss")
    auth.set_role(store, "admin", "manager")
    assert auth.get_user(store, "admin").role == "manager"
    with pytest.raises(AuthError, match="Cannot remove 'boss': it is the last active admin"):
        auth.remove_user(store, "boss")


def test_nobody_deactivates_removes_or_demotes_themselves(store):
    _admin_and_mia(store)
    auth.add_user(store, "boss", "admin", PASSWORD)
    for change, verb in (
        (auth.deactivate_user, "deactivate"),
        (auth.remove_user, "remove"),
        (lambda s, u, by: auth.set_role(s, u, "analyst", by=by), "demote"),
    ):
        with pytest.raises(AuthError, match=f"You cannot {verb} your own account \\('boss'\\)"):
            change(store, "boss", by="boss")
    assert auth.get_user(store, "boss") == auth.User("boss", "boss", "admin", None, True)
    auth.remove_user(store, "boss", by="admin")  # another admin may
    assert auth.get_user(store, "boss") is None


@pytest.mark.both_stores
def test_removing_a_user_keeps_their_export_log_rows_and_segments(store):
    _admin_and_mia(store)
    now = utcnow()
    with store.begin() as conn:
        conn.execute(
            segments.insert().values(
                segment_id=1, version=1, name="VIPs", definition="{}", owner="mia", created_at=now
            )
        )
        details = {"export_id": 1, "segment_name": "VIPs", "rows": 3}
        audit.record(conn, "export", actor="mia", target="export 1", details=details)
    auth.remove_user(store, "mia", by="admin")
    assert store.scalar(sa.select(segments.c.owner)) == "mia"
    assert store.scalar(sa.select(export_log.c.exported_by)) == "mia"
    assert store.scalar(sa.select(sa.func.count()).select_from(export_log)) == 1


def test_deactivated_user_is_left_out_of_the_credentials_and_locks_are_cleared(store):
    settings = Settings(max_login_attempts=3, lockout_minutes=15)
    _admin_and_mia(store)
    for _ in range(3):
        auth.record_login(store, "mia", success=False)
    auth.deactivate_user(store, "mia")
    assert set(auth.authenticator_credentials(store, settings)["usernames"]) == {"admin"}
    auth.activate_user(store, "mia")
    creds = auth.authenticator_credentials(store, settings)["usernames"]
    assert creds["mia"]["failed_login_attempts"] == 0 and not auth.is_locked(store, "mia", settings)


@pytest.mark.both_stores
def test_last_sign_in_is_recorded_on_success_only(store):
    _admin_and_mia(store)
    assert {u["last_login_at"] for u in auth.list_users(store)} == {None}
    auth.record_login(store, "mia", success=False)
    assert (
        next(u for u in auth.list_users(store) if u["username"] == "mia")["last_login_at"] is None
    )
    before = utcnow()
    auth.record_login(store, "mia", success=True)
    users = {u["username"]: u for u in auth.list_users(store)}
    assert before <= users["mia"]["last_login_at"] <= utcnow()
    assert users["admin"]["last_login_at"] is None


def test_an_older_store_gains_the_lifecycle_columns_and_its_users_stay_active(store):
    auth.add_user(store, "admin", "admin", PASSWORD)
    with store.begin() as conn:
        conn.execute(sa.text("ALTER TABLE app_users DROP COLUMN deactivated_at"))
        conn.execute(sa.text("ALTER TABLE app_users DROP COLUMN last_login_at"))
    changes = store.init_schema()
    assert "added column app_users.deactivated_at" in changes
    assert "added column app_users.last_login_at" in changes
    assert auth.get_user(store, "admin").active
    assert list(auth.authenticator_credentials(store)["usernames"]) == ["admin"]
