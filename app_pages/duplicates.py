"""Duplicates for admins: find likely duplicate customers, review and merge them, undo."""

import streamlit as st

from crm_ui import auth_ui, duplicates_ui, widgets

user = auth_ui.require_view("duplicates")
st.title("Duplicates")
widgets.filter_note("duplicates")
st.caption(
    "A person who signed up twice is two customers: their orders, scores and consent are split "
    "between them. Find duplicates compares every live customer's name, e-mail, phone, city "
    "and birth date with a record-linkage model (Splink) and lists the likely pairs, grouped "
    "into clusters. Review each cluster: merge it into one customer, mark it as different "
    "people, or put it off. Every merge can be undone exactly."
)

st.subheader("Find duplicates")
duplicates_ui.find_panel(user)

st.subheader("Review queue")
duplicates_ui.queue_panel(user)

st.subheader("Merge history")
duplicates_ui.history_panel(user)
