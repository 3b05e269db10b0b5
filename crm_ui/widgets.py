"""Small reusable pieces of page layout."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st


def chart_with_download(figure: go.Figure, table: pd.DataFrame, file_name: str, label: str) -> None:
    """A Plotly chart (its toolbar saves a PNG) with a CSV download of the figures behind it."""
    st.plotly_chart(figure, width="stretch")
    st.download_button(label, table.to_csv(index=False).encode(), file_name, mime="text/csv")
