"""The signed-in user in the browser session: set by the login gate (auth_ui), read by any
part of the UI (a module of its own so that tables can ask without importing the gate)."""

from __future__ import annotations

import streamlit as st

from crm_core import auth

USER_KEY = "crm_user"
"""The session-state key that holds the signed-in `auth.User`."""


def current_user() -> auth.User | None:
    """The signed-in user, set by the login gate in app.py."""
    return st.session_state.get(USER_KEY)
