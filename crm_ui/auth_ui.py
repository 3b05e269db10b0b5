"""Login gate (streamlit-authenticator over the store's users), role checks, logout."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.utilities import LoginError

from crm_core import auth
from crm_core.config import get_settings
from crm_core.errors import CRMError, NotAllowedError
from crm_core.store import Store
from crm_ui import tables
from crm_ui.data import store
from crm_ui.session import USER_KEY, current_user

_AUTH_KEY = "crm_authenticator"
_COOKIE_ACTION = "crm_cookie_action"
_SIGNED_OUT_NOTE = (
    "You were signed out: your account was deactivated or removed. Ask an admin if you "
    "still need access."
)


def login_gate() -> auth.User | None:
    """Show the login form until someone signs in; return the signed-in user."""
    settings = get_settings()
    current = store()
    credentials = auth.authenticator_credentials(current, settings)
    if not credentials["usernames"]:
        st.error(
            "No users yet. Run `make run` or `python -m crm_core init` once: it creates "
            "the admin account and prints its password."
        )
        return None
    attempts_before = {
        name: user["failed_login_attempts"] for name, user in credentials["usernames"].items()
    }
    authenticator = stauth.Authenticate(
        credentials,
        cookie_name="crm_insights_auth",
        cookie_key=auth.cookie_key(settings),
        cookie_expiry_days=settings.cookie_expiry_days,
        auto_hash=False,
        login_sleep_time=0.05,
    )
    st.session_state[_AUTH_KEY] = authenticator
    _audit_refused_attempts(authenticator, current, credentials)
    signed_out = _sign_out_inactive(authenticator, credentials)
    try:
        authenticator.login(
            location="main",
            max_login_attempts=settings.max_login_attempts,
            key="login",
            fields={"Form name": "Sign in to CRM Insights", "Login": "Sign in"},
            callback=lambda event: _signed_in_with_form(current, event["username"]),
        )
    except LoginError as exc:
        st.error(
            f"{exc}: this account is locked for {settings.lockout_minutes} minutes after "
            f"{settings.max_login_attempts} failed sign-ins. An admin can unlock it with "
            "`python -m crm_core users reset NAME`."
        )
    for name, user in credentials["usernames"].items():
        if user.get("failed_login_attempts", 0) > attempts_before.get(name, 0):
            auth.record_login(current, name, success=False)
    status = st.session_state.get("authentication_status")
    action = st.session_state.pop(_COOKIE_ACTION, None)
    if action == "delete":
        authenticator.cookie_controller.delete_cookie()
    if status:
        if action == "set_after_rerun":
            # Draw the app without the login form above it; the cookie is set in that next
            # run because a rerun drops the cookie component before its script runs.
            st.session_state[_COOKIE_ACTION] = "set"
            st.rerun()
        if action == "set":
            authenticator.cookie_controller.set_cookie()
        user = auth.get_user(current, st.session_state["username"])
        st.session_state[USER_KEY] = user
        return user
    st.session_state.pop(USER_KEY, None)
    if signed_out:
        st.error(_SIGNED_OUT_NOTE)
    elif status is False:
        st.error("Username or password is incorrect.")
    return None


def _audit_refused_attempts(authenticator: stauth.Authenticate, store: Store, known: dict) -> None:
    """Audit the sign-ins the counting below does not see: an unknown username, and any
    attempt on a locked account (a known user's wrong password is counted and audited by
    `auth.record_login`)."""
    model = authenticator.authentication_controller.authentication_model
    login = model.login

    def audited(username: str | None, password: str | None, *args: Any, **kwargs: Any) -> Any:
        try:
            ok = login(username, password, *args, **kwargs)
        except LoginError:
            if username and password:
                auth.audit_refused_sign_in(store, username, locked=True)
            raise
        if username and password and ok is False and username not in known["usernames"]:
            auth.audit_refused_sign_in(store, username, locked=False)
        return ok

    model.login = audited


def _sign_out_inactive(authenticator: stauth.Authenticate, credentials: dict) -> bool:
    """End the session, and drop the cookie, of a user who was deactivated or removed.

    Only active users are in `credentials`: a session signed in earlier, or a login cookie
    naming anyone else, is signed out here before the login form is drawn.
    """
    active = credentials["usernames"]
    if st.session_state.get("authentication_status"):
        stale = st.session_state.get("username") not in active
    else:
        token = authenticator.cookie_controller.get_cookie()
        stale = bool(token) and token.get("username") not in active
    if not stale:
        return False
    authenticator.authentication_controller.logout()  # clears the session, skips the cookie
    st.session_state.pop(USER_KEY, None)
    st.session_state[_COOKIE_ACTION] = "delete"
    return True


def _signed_in_with_form(store: Store, username: str) -> None:
    """Clear the failed-login count and plan the rerun that hides the form."""
    auth.record_login(store, username, success=True)
    st.session_state[_COOKIE_ACTION] = "set_after_rerun"


def logout_button() -> None:
    """A sign-out button in the sidebar."""
    authenticator = st.session_state.get(_AUTH_KEY)
    if authenticator is not None and st.session_state.get("authentication_status"):
        authenticator.logout("Sign out", location="sidebar", key="sign_out")
        if not st.session_state.get("authentication_status"):
            st.session_state.pop(USER_KEY, None)
            st.session_state[_COOKIE_ACTION] = "delete"
            st.rerun()  # show the login form now, not the page after it


def require_view(view: str) -> auth.User:
    """Stop the page with a clear 'not allowed' unless the user's role may open `view`."""
    user = current_user()
    try:
        auth.require_view(user.role if user else None, view)
    except NotAllowedError as exc:
        st.error(str(exc))
        st.stop()
    return user


# --- the admin page's Users block --------------------------------------------------------

_FLASH = "crm_users_flash"
_PICKED = "crm_manage_user"
_CONFIRMED = {"reset": "reset the password of", "deactivate": "deactivate", "remove": "remove"}
_USER_COLUMNS = {
    "username": st.column_config.TextColumn("Username"),
    "name": st.column_config.TextColumn("Name"),
    "email": st.column_config.TextColumn("E-mail"),
    "role": st.column_config.TextColumn("Role"),
    "active": st.column_config.CheckboxColumn("Active"),
    "last_login_at": st.column_config.DatetimeColumn(
        "Last sign-in (UTC)", format=tables.DATETIME_FORMAT
    ),
    "created_at": st.column_config.DatetimeColumn("Created (UTC)", format=tables.DATETIME_FORMAT),
    "failed_logins": st.column_config.NumberColumn("Failed sign-ins"),
}


def users_admin(current: Store, me: auth.User) -> None:
    """The users table, the add-a-user form and the manage-a-user panel (admins only)."""
    for kind, text in st.session_state.pop(_FLASH, []):
        (st.success if kind == "success" else st.error)(text)
    users = auth.list_users(current)
    tables.show_table(pd.DataFrame(users, columns=list(_USER_COLUMNS)))
    left, right = st.columns(2)
    with left:
        _add_user_form(current)
    with right:
        _manage_user(current, me, users)


def _flash(kind: str, text: str) -> None:
    """Keep a message for the run that follows a button's callback."""
    st.session_state.setdefault(_FLASH, []).append((kind, text))


def _add_user_form(current: Store) -> None:
    with st.form("add_user", clear_on_submit=True):
        st.markdown("**Add a user**")
        st.text_input(
            "Username", key="new_user_name", help="2-32 lower-case letters, digits, '.', '_', '-'."
        )
        st.text_input("Full name", key="new_user_full_name")
        st.text_input("E-mail", key="new_user_email")
        st.selectbox(
            "Role",
            auth.ROLES,
            index=None,
            placeholder="Choose a role",
            key="new_user_role",
            help="\n".join(f"- {r}: {h}" for r, h in auth.ROLE_HELP.items()),
        )
        st.text_input(
            "Password",
            type="password",
            key="new_user_password",
            help=f"At least {auth.MIN_PASSWORD_LENGTH} characters.",
        )
        st.form_submit_button("Add user", on_click=_add_user, args=(current,))


def _add_user(current: Store) -> None:
    state = st.session_state
    try:
        user = auth.add_user(
            current,
            state["new_user_name"],
            state["new_user_role"] or "",
            state["new_user_password"],
            name=state["new_user_full_name"] or None,
            email=state["new_user_email"] or None,
            by=getattr(current_user(), "username", None),
        )
    except CRMError as exc:
        _flash("error", str(exc))
    else:
        _flash("success", f"Added {user.username} ({user.role}).")


def _manage_user(current: Store, me: auth.User, users: list[dict]) -> None:
    st.markdown("**Manage a user**")
    by_name = {u["username"]: u for u in users}
    if st.session_state.get(_PICKED) not in by_name:
        st.session_state[_PICKED] = None  # removed since it was picked
    who = st.selectbox("User", list(by_name), index=None, placeholder="Choose a user", key=_PICKED)
    if who is None:
        st.caption(
            "Reset a password, change a role, deactivate, reactivate or remove a user: "
            "choose the user first."
        )
        return
    user = by_name[who]
    last = user["last_login_at"]
    seen = f"last sign-in {last:%Y-%m-%d %H:%M} UTC" if last else "never signed in"
    status = "active" if user["active"] else "deactivated"
    st.caption(f"{user['name']}: {user['role']}, {status}, {seen}.")
    if who == me.username:
        st.caption("This is you: another admin can change your role, deactivate or remove you.")
        actions = ["Reset password"]
    else:
        switch = "Deactivate" if user["active"] else "Reactivate"
        actions = ["Change role", "Reset password", switch, "Remove"]
    action = st.radio("Action", actions, horizontal=True)
    if action == "Change role":
        st.selectbox("New role", auth.ROLES, index=auth.ROLES.index(user["role"]), key="new_role")
        st.button("Change role", on_click=_apply, args=(current, "set_role", who, me.username))
        return
    if action == "Reactivate":
        st.caption("They can sign in again with their old password.")
        st.button("Reactivate", on_click=_apply, args=(current, "activate", who, me.username))
        return
    key = {"Reset password": "reset", "Deactivate": "deactivate", "Remove": "remove"}[action]
    st.caption(
        {
            "reset": "A new random password is shown once; the old one stops working and "
            "the account is unlocked.",
            "deactivate": "They cannot sign in, and an open session ends on its next page "
            "load. Reactivate them at any time.",
            "remove": "Their login is deleted; the export log and their segments keep their "
            "name. This cannot be undone (deactivate instead to keep the account).",
        }[key]
    )
    confirmed = st.checkbox(f"Yes, {_CONFIRMED[key]} {who}", key=f"confirm_{key}_{who}")
    st.button(
        action,
        type="primary",
        disabled=not confirmed,
        on_click=_apply,
        args=(current, key, who, me.username),
    )


def _apply(current: Store, action: str, who: str, by: str) -> None:
    """Run one manage-a-user action (a button's callback) and keep its message."""
    state = st.session_state
    confirm_key = f"confirm_{action}_{who}"
    if action in _CONFIRMED and not state.get(confirm_key):
        _flash("error", f"Tick 'Yes, {_CONFIRMED[action]} {who}' first; nothing was changed.")
        return
    state.pop(confirm_key, None)
    try:
        if action == "set_role":
            auth.set_role(current, who, state["new_role"], by=by)
            message = f"{who} is now {state['new_role']}."
        elif action == "activate":
            auth.activate_user(current, who, by=by)
            message = f"Reactivated {who}: they can sign in again."
        elif action == "deactivate":
            auth.deactivate_user(current, who, by=by)
            message = f"Deactivated {who}: they can no longer sign in."
        elif action == "remove":
            auth.remove_user(current, who, by=by)
            state[_PICKED] = None
            message = f"Removed {who}; their export log rows and segments stay."
        else:
            password = auth.reset_password(current, who, by=by)
            message = f"New password for {who}: `{password}` (shown only now)."
    except CRMError as exc:
        _flash("error", str(exc))
    else:
        _flash("success", message)
