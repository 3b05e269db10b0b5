"""Small reusable pieces of page layout."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crm_ui import tables
from crm_ui.views import VIEWS


def chart_with_download(figure: go.Figure, table: pd.DataFrame, file_name: str, label: str) -> None:
    """A Plotly chart (its toolbar saves a PNG) with a CSV download of the figures behind it."""
    st.plotly_chart(figure, width="stretch")
    st.download_button(label, tables.csv_bytes(table), file_name, mime="text/csv")


def filter_note(view_key: str) -> None:
    """Under a view's title: what the sidebar filters do here, and what they do not and why."""
    note = next(v.filters_note for v in VIEWS if v.key == view_key)
    if note:
        st.caption(f":material/filter_alt: {note}")
