"""Admin: users and roles, the role matrix, and the export audit log."""

import pandas as pd
import streamlit as st

from crm_core import auth
from crm_core.errors import CRMError
from crm_core.export import read_export_log
from crm_ui import auth_ui, data

auth_ui.require_view("admin")
st.title("Users & audit")
store = data.store()

st.subheader("Users")
st.dataframe(pd.DataFrame(auth.list_users(store)), hide_index=True)

left, right = st.columns(2)
with left, st.form("add_user", clear_on_submit=True):
    st.markdown("**Add a user**")
    username = st.text_input("Username", help="2-32 lower-case letters, digits, '.', '_', '-'.")
    name = st.text_input("Full name")
    email = st.text_input("E-mail")
    role = st.selectbox(
        "Role", auth.ROLES, help="\n".join(f"- {r}: {h}" for r, h in auth.ROLE_HELP.items())
    )
    password = st.text_input(
        "Password", type="password", help=f"At least {auth.MIN_PASSWORD_LENGTH} characters."
    )
    if st.form_submit_button("Add user"):
        try:
            auth.add_user(store, username, role, password, name=name or None, email=email or None)
            st.success(f"Added {username} ({role}).")
        except CRMError as exc:
            st.error(str(exc))

with right, st.form("reset_password"):
    st.markdown("**Reset a password**")
    who = st.selectbox("User", [u["username"] for u in auth.list_users(store)])
    st.caption("A new random password is shown once; the account is unlocked.")
    if st.form_submit_button("Reset password"):
        try:
            new_password = auth.reset_password(store, who)
            st.success(f"New password for {who}: `{new_password}` (shown only now).")
        except CRMError as exc:
            st.error(str(exc))

st.subheader("Role matrix")
matrix = pd.DataFrame(auth.role_matrix())
st.dataframe(matrix, hide_index=True, height=36 * (len(matrix) + 1) + 2)

st.subheader("Export log")
log = read_export_log(store)
if log.empty:
    st.info("No exports yet. Every export of a target list will be recorded here.")
else:
    st.dataframe(log, hide_index=True)
