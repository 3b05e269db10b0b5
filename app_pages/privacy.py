"""Privacy for admins: access requests and erasures with their proofs, retention policies,
and the suppression list."""

import streamlit as st

from crm_ui import auth_ui, privacy_ui, suppressions_ui, widgets

user = auth_ui.require_view("privacy")
st.title("Privacy")
widgets.filter_note("privacy")
st.caption(
    "What the store holds about people, and for how long. A person's data is handed over or "
    "erased from their profile (Customer 360); each request is listed here, an erasure with "
    "its proof. Retention policies delete or anonymise old rows; the suppression list holds "
    "addresses that no export may contain."
)

st.subheader("Access requests and erasures")
privacy_ui.requests_section()

st.subheader("Retention")
privacy_ui.retention_section(user)

st.subheader("Suppression list")
suppressions_ui.suppressions_section(user)
