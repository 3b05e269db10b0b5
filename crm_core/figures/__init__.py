"""Plotly figure builders: the app's pages and the scheduled reports draw the same charts
(plain Python and Plotly, no Streamlit, so a report rendered outside the app can use them)."""
