"""Admin: users and roles, the role matrix, the audit log and the export log."""

import pandas as pd
import streamlit as st

from crm_core import auth
from crm_ui import audit_ui, auth_ui, data, export_ui, tables, widgets
from crm_ui.views import VIEWS

me = auth_ui.require_view("admin")
st.title("Users & audit")
widgets.filter_note("admin")
store = data.store()

st.subheader("Users")
auth_ui.users_admin(store, me)

st.subheader("Role matrix")
matrix = pd.DataFrame(auth.role_matrix({view.key: view.title for view in VIEWS}))
tables.show_table(
    matrix,
    height=tables.full_height(len(matrix)),
    column_config={"view or action": st.column_config.TextColumn(width="large")},
)

st.subheader("Audit log")
audit_ui.audit_section()

st.subheader("Export log")
st.caption("Every user's exports, newest first; a file still kept can be downloaded again.")
export_ui.history_panel(auth_ui.current_user(), own_only=False)
