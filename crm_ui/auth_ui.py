"""Login gate (streamlit-authenticator over the store's users), role checks, logout."""

from __future__ import annotations

import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.utilities import LoginError

from crm_core import auth
from crm_core.config import get_settings
from crm_core.errors import NotAllowedError
from crm_core.store import Store
from crm_ui.data import store

_USER_KEY = "crm_user"
_AUTH_KEY = "crm_authenticator"
_COOKIE_ACTION = "crm_cookie_action"


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
        st.session_state[_USER_KEY] = user
        return user
    st.session_state.pop(_USER_KEY, None)
    if status is False:
        st.error("Username or password is incorrect.")
    return None


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
            st.session_state.pop(_USER_KEY, None)
            st.session_state[_COOKIE_ACTION] = "delete"
            st.rerun()  # show the login form now, not the page after it


def current_user() -> auth.User | None:
    """The signed-in user, set by the login gate in app.py."""
    return st.session_state.get(_USER_KEY)


def require_view(view: str) -> auth.User:
    """Stop the page with a clear 'not allowed' unless the user's role may open `view`."""
    user = current_user()
    try:
        auth.require_view(user.role if user else None, view)
    except NotAllowedError as exc:
        st.error(str(exc))
        st.stop()
    return user
