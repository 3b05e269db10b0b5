"""Users, bcrypt password hashes, roles, and what each role may see and do.

The role matrix is data (VIEW_ROLES, ACTION_ROLES); the navigation, every page's own check,
the CLI and README read it from here.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import bcrypt
import sqlalchemy as sa

from crm_core import audit
from crm_core.config import Settings, get_settings
from crm_core.errors import AuthError, NotAllowedError
from crm_core.schema import app_users, home_pins
from crm_core.store import Store, utcnow

ROLES: tuple[str, ...] = ("admin", "manager", "marketer", "analyst")
ROLE_HELP = {
    "admin": "Everything, including data import, users and the export log.",
    "manager": "KPI overview and aggregate reports; no personal data, no exports.",
    "marketer": "Segments and exports of target lists, with contact details.",
    "analyst": "All analyses and models; personal data masked.",
}

_ALL = frozenset(ROLES)
_NO_MANAGER = frozenset({"admin", "marketer", "analyst"})

VIEW_ROLES: dict[str, frozenset[str]] = {
    "home": _ALL,
    "overview": _ALL,
    "customer_360": _NO_MANAGER,
    "segmentation": _NO_MANAGER,
    "segment_builder": _NO_MANAGER,
    "clv": _ALL,
    "churn": _ALL,
    "surveys": _ALL,
    "campaigns": _ALL,
    "recommendations": _NO_MANAGER,
    "funnels": _ALL,
    "data_import": frozenset({"admin"}),
    "admin": frozenset({"admin"}),
    "glossary": _ALL,
    "alerts": _ALL,
    "data_quality": frozenset({"admin", "analyst"}),
    "duplicates": frozenset({"admin"}),
    "privacy": frozenset({"admin"}),
}
"""Which roles may open each view (pages also check this themselves)."""

ACTION_ROLES: dict[str, frozenset[str]] = {
    "see_pii": frozenset({"admin", "marketer"}),
    "export_lists": frozenset({"admin", "marketer", "analyst"}),
    "export_pii": frozenset({"admin", "marketer"}),
    "save_segments": _NO_MANAGER,
    "import_data": frozenset({"admin"}),
    "manage_users": frozenset({"admin"}),
    "view_export_log": frozenset({"admin"}),
    "publish_home": frozenset({"admin"}),
    "manage_alerts": frozenset({"admin", "manager", "analyst"}),
    "subscribe_alerts": _ALL,
    "schedule_reports": frozenset({"admin", "manager", "marketer"}),
    "schedule_exports": frozenset({"admin", "marketer"}),
    "manage_all_schedules": frozenset({"admin"}),
    "deliver_to_folder": frozenset({"admin"}),
    "merge_customers": frozenset({"admin"}),
    "privacy_requests": frozenset({"admin"}),
}
"""Which roles may take each action."""

ACTION_HELP = {
    "see_pii": "See names, e-mails, phones and other personal data unmasked",
    "export_lists": "Export target lists (without personal columns)",
    "export_pii": "Export target lists with personal columns",
    "save_segments": "Save, edit and delete segments",
    "import_data": "Import data files",
    "manage_users": "Add, deactivate, remove users; change roles; reset passwords",
    "view_export_log": "Read the audit log (and verify it) and the export log",
    "publish_home": "Publish a Home page as the default for a role",
    "manage_alerts": "Create, backtest and delete their own alert rules",
    "subscribe_alerts": "Schedule a saved alert rule to be checked and delivered",
    "schedule_reports": (
        "Schedule the KPI overview or their Home page as a report by e-mail, webhook or folder"
    ),
    "schedule_exports": "Schedule exports of their own saved segments",
    "manage_all_schedules": "See, run, pause and delete everyone's schedules and alert rules",
    "deliver_to_folder": "Deliver scheduled reports and exports to a folder on the server",
    "merge_customers": "Find duplicate customers, merge them and undo merges",
    "privacy_requests": (
        "Hand a person their data, erase a person with proof, set retention, manage suppressions"
    ),
}

MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")


@dataclass(frozen=True)
class User:
    """A signed-in person."""

    username: str
    name: str
    role: str
    email: str | None = None
    active: bool = True

    def can(self, action: str) -> bool:
        """Whether this user's role may take `action`."""
        return can(self.role, action)


def can(role: str, action: str) -> bool:
    """Whether `role` may take `action` (unknown actions are refused)."""
    return role in ACTION_ROLES.get(action, frozenset())


def may_view(role: str, view: str) -> bool:
    """Whether `role` may open `view` (unknown views are refused)."""
    return role in VIEW_ROLES.get(view, frozenset())


def require_view(role: str | None, view: str) -> None:
    """Raise NotAllowedError unless `role` may open `view`."""
    if role is None or not may_view(role, view):
        allowed = ", ".join(sorted(VIEW_ROLES.get(view, ())))
        raise NotAllowedError(
            f"Not allowed: the {role or 'anonymous'} role may not open this view "
            f"(allowed: {allowed}). Ask an admin if you need it."
        )


def hash_password(password: str) -> str:
    """bcrypt hash of `password` (what the store keeps; never the password)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def check_password(password: str, password_hash: str) -> bool:
    """Whether `password` matches the stored bcrypt hash."""
    return bcrypt.checkpw(password.encode(), password_hash.encode())


def generate_password() -> str:
    """A random password for a new admin or a reset (printed once, never stored)."""
    return secrets.token_urlsafe(12)


def _check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(
            f"Password too short: got {len(password)} characters, "
            f"need at least {MIN_PASSWORD_LENGTH}."
        )


def add_user(
    store: Store,
    username: str,
    role: str,
    password: str,
    *,
    name: str | None = None,
    email: str | None = None,
    by: str | None = None,
) -> User:
    """Create a user with a bcrypt-hashed password (`by`: the admin, None from the CLI)."""
    if not _USERNAME.match(username):
        raise AuthError(
            f"Username {username!r} is not valid: use 2-32 lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter."
        )
    if not role:
        raise AuthError(f"No role chosen for {username!r}; allowed: {', '.join(ROLES)}.")
    if role not in ROLES:
        raise AuthError(f"Unknown role {role!r}; allowed: {', '.join(ROLES)}.")
    _check_new_password(password)
    with store.begin() as conn:
        exists = conn.execute(
            sa.select(app_users.c.username).where(app_users.c.username == username)
        ).first()
        if exists:
            raise AuthError(f"User {username!r} already exists; use `users reset` to change it.")
        conn.execute(
            app_users.insert().values(
                username=username,
                name=name or username,
                email=email,
                role=role,
                password_hash=hash_password(password),
                created_at=utcnow(),
                failed_logins=0,
            )
        )
        audit.record(
            conn, "user_added", actor=by, target=f"user {username}", details={"role": role}
        )
    return User(username=username, name=name or username, role=role, email=email)


def reset_password(
    store: Store, username: str, password: str | None = None, *, by: str | None = None
) -> str:
    """Set a new password (random if none is given) and unlock the account; returns it."""
    new_password = password or generate_password()
    _check_new_password(new_password)
    with store.begin() as conn:
        result = conn.execute(
            app_users.update()
            .where(app_users.c.username == username)
            .values(password_hash=hash_password(new_password), failed_logins=0, last_failed_at=None)
        )
        if result.rowcount == 0:
            raise AuthError(f"No user {username!r}; see `python -m crm_core users list`.")
        audit.record(conn, "password_reset", actor=by, target=f"user {username}")
    return new_password


def list_users(store: Store) -> list[dict]:
    """Every user without the password hash, for the admin page and the CLI."""
    stmt = sa.select(
        app_users.c.username,
        app_users.c.name,
        app_users.c.email,
        app_users.c.role,
        app_users.c.deactivated_at.is_(None).label("active"),
        app_users.c.last_login_at,
        app_users.c.created_at,
        app_users.c.failed_logins,
    ).order_by(app_users.c.username)
    with store.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]


def get_user(store: Store, username: str) -> User | None:
    """The user called `username` (active or not), or None."""
    stmt = sa.select(app_users).where(app_users.c.username == username)
    with store.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return User(
        username=row.username,
        name=row.name,
        role=row.role,
        email=row.email,
        active=row.deactivated_at is None,
    )


# --- lifecycle: deactivate, reactivate, change role, remove ------------------------------

_ACTIVE = app_users.c.deactivated_at.is_(None)


def _existing(conn: sa.Connection, username: str) -> sa.Row:
    row = conn.execute(
        sa.select(app_users.c.username, app_users.c.role, app_users.c.deactivated_at).where(
            app_users.c.username == username
        )
    ).first()
    if row is None:
        raise AuthError(f"No user {username!r}; see `python -m crm_core users list`.")
    return row


def _refuse_self(username: str, by: str | None, doing: str) -> None:
    if by is not None and by == username:
        raise AuthError(
            f"You cannot {doing} your own account ({username!r}); ask another admin to do it."
        )


def _refuse_last_admin(conn: sa.Connection, row: sa.Row, doing: str) -> None:
    """Refuse when `row` is the only active admin (the store would have no admin left)."""
    if row.role != "admin" or row.deactivated_at is not None:
        return
    others = conn.execute(
        sa.select(sa.func.count())
        .select_from(app_users)
        .where(app_users.c.role == "admin", _ACTIVE, app_users.c.username != row.username)
    ).scalar()
    if not others:
        raise AuthError(
            f"Cannot {doing} {row.username!r}: it is the last active admin, and the store "
            "needs one. Make another user admin first "
            "(`python -m crm_core users set-role NAME admin`)."
        )


def deactivate_user(store: Store, username: str, *, by: str | None = None) -> None:
    """Stop `username` from signing in (their sessions end on their next page load).

    `by` is the admin taking the action (None from the CLI): nobody deactivates themselves.
    """
    _refuse_self(username, by, "deactivate")
    with store.begin() as conn:
        row = _existing(conn, username)
        if row.deactivated_at is not None:
            return
        _refuse_last_admin(conn, row, "deactivate")
        conn.execute(
            app_users.update()
            .where(app_users.c.username == username)
            .values(deactivated_at=utcnow())
        )
        audit.record(conn, "user_deactivated", actor=by, target=f"user {username}")


def activate_user(store: Store, username: str, *, by: str | None = None) -> None:
    """Let a deactivated user sign in again (password and role unchanged)."""
    with store.begin() as conn:
        row = _existing(conn, username)
        conn.execute(
            app_users.update()
            .where(app_users.c.username == username)
            .values(deactivated_at=None, failed_logins=0, last_failed_at=None)
        )
        if row.deactivated_at is not None:
            audit.record(conn, "user_activated", actor=by, target=f"user {username}")


def set_role(store: Store, username: str, role: str, *, by: str | None = None) -> None:
    """Give `username` another role; the last active admin keeps theirs."""
    if role not in ROLES:
        raise AuthError(f"Unknown role {role!r}; allowed: {', '.join(ROLES)}.")
    with store.begin() as conn:
        row = _existing(conn, username)
        if row.role == role:
            return
        if row.role == "admin":
            _refuse_self(username, by, "demote")
            _refuse_last_admin(conn, row, "demote")
        conn.execute(app_users.update().where(app_users.c.username == username).values(role=role))
        audit.record(
            conn,
            "role_changed",
            actor=by,
            target=f"user {username}",
            details={"old_role": row.role, "new_role": role},
        )


def remove_user(store: Store, username: str, *, by: str | None = None) -> None:
    """Delete `username`'s login and Home pins (a new user of that name starts afresh);
    their export log rows and segments stay as they are."""
    _refuse_self(username, by, "remove")
    with store.begin() as conn:
        row = _existing(conn, username)
        _refuse_last_admin(conn, row, "remove")
        conn.execute(app_users.delete().where(app_users.c.username == username))
        conn.execute(home_pins.delete().where(home_pins.c.owner == username))
        audit.record(
            conn, "user_removed", actor=by, target=f"user {username}", details={"role": row.role}
        )


def ensure_admin(store: Store) -> str | None:
    """On first start (no users at all) create `admin` with a random password and return it."""
    with store.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(app_users)).scalar()
    if count:
        return None
    password = generate_password()
    add_user(store, "admin", "admin", password, name="Administrator")
    return password


def is_locked(store: Store, username: str, settings: Settings | None = None) -> bool:
    """Whether too many failed logins in a row have locked `username` for now."""
    settings = settings or get_settings()
    stmt = sa.select(app_users.c.failed_logins, app_users.c.last_failed_at).where(
        app_users.c.username == username
    )
    with store.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None or row.failed_logins < settings.max_login_attempts:
        return False
    return _lock_active(row.last_failed_at, settings)


def _lock_active(last_failed_at: datetime | None, settings: Settings) -> bool:
    if last_failed_at is None:
        return False
    return utcnow() - last_failed_at < timedelta(minutes=settings.lockout_minutes)


def record_login(
    store: Store, username: str, *, success: bool, settings: Settings | None = None
) -> None:
    """Count a failed login (for the lock), or clear the count and note the sign-in time.

    A failure is audited ("sign_in_failed"), and the one that locks the account too
    ("locked_out"); only a known user's name is written, never what else was typed.
    """
    values = (
        {"failed_logins": 0, "last_failed_at": None, "last_login_at": utcnow()}
        if success
        else {"failed_logins": app_users.c.failed_logins + 1, "last_failed_at": utcnow()}
    )
    with store.begin() as conn:
        conn.execute(app_users.update().where(app_users.c.username == username).values(**values))
        if success:
            return
        failed = conn.execute(
            sa.select(app_users.c.failed_logins).where(app_users.c.username == username)
        ).scalar()
        if failed is None:  # no such user: do not write what was typed (it may be an e-mail)
            audit.record(conn, "sign_in_failed", actor=None, target="an unknown username")
            return
        target = f"user {username}"
        audit.record(
            conn, "sign_in_failed", actor=None, target=target, details={"failed_in_a_row": failed}
        )
        limit = (settings or get_settings()).max_login_attempts
        if failed == limit:
            audit.record(
                conn, "locked_out", actor=None, target=target, details={"failed_in_a_row": failed}
            )


def audit_refused_sign_in(store: Store, username: str, *, locked: bool) -> None:
    """Audit a sign-in refused without a password check being counted: an unknown username
    (what was typed is not written: it may be an e-mail) or any attempt while locked."""
    with store.begin() as conn:
        known = conn.execute(
            sa.select(app_users.c.username).where(app_users.c.username == username)
        ).scalar()
        target = f"user {username}" if known else "an unknown username"
        details = {"while_locked": True} if locked else None
        audit.record(conn, "sign_in_failed", actor=None, target=target, details=details)


def authenticator_credentials(store: Store, settings: Settings | None = None) -> dict:
    """Active users in the shape streamlit-authenticator expects, with hashes only.

    Deactivated users are left out, so they cannot sign in, nor back in with a cookie.
    `failed_login_attempts` is the stored count while the lock is active and 0 once it
    has expired, so the authenticator's own max_login_attempts enforces the lock.
    """
    settings = settings or get_settings()
    stmt = sa.select(app_users).where(_ACTIVE)
    with store.connect() as conn:
        rows = conn.execute(stmt).all()
    users = {}
    for row in rows:
        attempts = row.failed_logins if _lock_active(row.last_failed_at, settings) else 0
        users[row.username] = {
            "name": row.name,
            "email": row.email or f"{row.username}@localhost",
            "password": row.password_hash,
            "roles": [row.role],
            "failed_login_attempts": attempts,
            "logged_in": False,
        }
    return {"usernames": users}


def cookie_key(settings: Settings | None = None) -> str:
    """The random secret that signs login cookies: made on first use, kept in data_dir."""
    settings = settings or get_settings()
    path = Path(settings.data_dir) / ".cookie_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def role_matrix(titles: Mapping[str, str] | None = None) -> list[dict[str, object]]:
    """One row per view and action with a yes/no per role (admin page and README); `titles`
    names the views as the menu does ("Open Customer 360")."""
    rows: list[dict[str, object]] = []
    for view, roles in VIEW_ROLES.items():
        name = f"Open {titles[view]}" if titles and view in titles else f"view: {view}"
        rows.append({"view or action": name, **{r: r in roles for r in ROLES}})
    for action, roles in ACTION_ROLES.items():
        rows.append({"view or action": ACTION_HELP[action], **{r: r in roles for r in ROLES}})
    return rows
