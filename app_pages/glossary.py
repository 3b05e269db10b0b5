"""Glossary: every term the views use, what it is not, and where it is shown."""

import streamlit as st

from crm_core import glossary
from crm_ui import auth_ui, widgets

auth_ui.require_view("glossary")
st.title("Glossary")
widgets.filter_note("glossary")
st.markdown(
    "Three different numbers are all loosely called *churn*; the app keeps them apart: the "
    "**churn rate** (a KPI: the share of last period's buyers who did not buy in this one), "
    "the **churn risk** (the churn model's probability that a customer buys nothing in the "
    "churn window) and **P(alive)** (the CLV model's probability that a customer is still a "
    "customer). The help on each figure (hover the ? icon beside it) says the same as this page."
)
text = st.text_input(
    "Search terms", placeholder="e.g. churn, AUC, CLV", help="Every word must appear in the entry."
)
found = glossary.search(text)
st.caption(f"{len(found)} of {len(glossary.TERMS)} terms")
if not found:
    st.info(f"No term matches '{text}'. Try one word, such as 'churn' or 'value'.")
for entry in found:
    with st.container(border=True):
        st.markdown(f"#### {entry.name}\n{entry.definition}")
        st.markdown(
            f"**How it is computed.** {entry.computed}\n\n"
            f"**Where it is shown.** {entry.shown}"
            + (f"\n\n**What it is not.** {entry.not_}" if entry.not_ else "")
        )
        if entry.confused_with:
            names = ", ".join(glossary.term(key).name for key in entry.confused_with)
            st.caption(f"See also: {names}")
