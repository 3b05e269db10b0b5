"""Streamlit glue: cached store and queries, auth UI, sidebar filters, Plotly figures."""
